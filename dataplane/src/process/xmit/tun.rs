//! Tunnelling (`-i`), IPVS's `ip_vs_tunnel_xmit` and `ip_vs_tunnel_xmit_v6`: the IP packet is
//! wrapped in an outer header of its own family from the director's address on the internal
//! interface to the real server (and a GUE or GRE header: [`crate::encap`]), and leaves by the
//! internal interface towards the next hop the routes give: unlike direct routing, the real
//! server may sit behind routers. It decapsulates the packet, holds the VIP and answers the
//! client directly. One transmitter for both families; what differs ([`Family`]'s
//! `tunnel_*`, `encapsulate` and `too_big_for_tunnel`) is the outer header, its source
//! address and the answer to a packet too big. An IPv4 packet travels unchanged; an IPv6
//! one with its hop limit decremented, as IPVS's `decrement_ttl` does for both (this IPv4
//! path keeps the TTL, as its direct routing does). Without an address of the packet's
//! family on the internal interface (no outer source) the packet is dropped as `no_route`,
//! as IPVS's route lookup fails without a source address (control refuses the
//! configuration first).
//!
//! Too big once wrapped (longer than the internal interface's MTU): IPv4 with DF set, the
//! client gets ICMP "fragmentation needed" from the VIP with the MTU left for it (the egress
//! MTU less the tunnel's overhead), as IPVS sends it, so path MTU discovery settles below the
//! tunnel; IPv6, ICMPv6 Packet Too Big with that MTU (at least 1280) from the external
//! interface's IPv6 address, as any IPv6 packet too big for its egress
//! (`process/v6.rs`). The packet itself is dropped (`too_big`). IPv4 without DF, an ICMP
//! error (never answered with one), or a frame buffer without room: dropped (`too_big`):
//! IPVS would fragment the outer IPv4 packet, which xvs does not do.

use super::{address, next_hop, Env, Verdict};
use crate::checksum;
use crate::conntrack::Conn;
use crate::process::buf::insert_gap;
use crate::process::family::Family;
use crate::process::{FrameBuf, Side, ETHERNET_HEADER_LEN};
use crate::snapshot::Tunnel;
use crate::stats::{DropReason, WorkerStats};

const IP_HEADER_LEN: usize = 20;
/// The quote of an ICMP error: the IPv4 header and 8 bytes of what follows (RFC 792).
const QUOTE_LEN: usize = IP_HEADER_LEN + 8;
/// Ethernet, IPv4 and ICMP headers, and the quote.
const FRAG_NEEDED_LEN: usize = ETHERNET_HEADER_LEN + IP_HEADER_LEN + 8 + QUOTE_LEN;
const PROTO_ICMP: u8 = 1;
const DF: u8 = 0x40;

/// Wraps the IP packet of `frame` (`ip_len` bytes: a TCP/UDP packet of `conn`, or an ICMP
/// error about one) for `conn`'s real server, and addresses it. Out of line: the other
/// methods' path stays as short as it was.
#[inline(never)]
pub(in crate::process) fn transmit<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    ip_len: usize,
    env: &Env<'_>,
    conn: &Conn<A>,
    tunnel: Tunnel,
    stats: &WorkerStats,
) -> Verdict {
    let egress = &env.config.internal;
    let overhead = A::tunnel_overhead(&tunnel);
    let mtu = usize::from(egress.mtu);
    if mtu != 0 && ip_len + overhead > mtu {
        let verdict = A::too_big_for_tunnel(frame, ip_len, mtu.saturating_sub(overhead), env, conn);
        // The packet is dropped either way; a `Drop` verdict is counted by whoever acts on it,
        // an unresolved client is tried again later: count here only when the ICMP takes the
        // frame's place.
        if matches!(verdict, Verdict::Forward(_)) {
            stats.count_drop(DropReason::TooBig);
        }
        return verdict;
    }
    let Some(src) = A::tunnel_source(egress) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let mac = match next_hop(env, egress.ifindex, conn.daddr) {
        Ok(mac) => mac,
        Err(verdict) => return verdict,
    };
    // Only the IP packet goes into the tunnel (not what pads a short frame).
    if !frame.set_len(ETHERNET_HEADER_LEN + ip_len)
        || !insert_gap(frame, ETHERNET_HEADER_LEN, overhead)
    {
        return Verdict::Drop(DropReason::TooBig);
    }
    let bytes = frame.bytes();
    let (outer, inner) = bytes[ETHERNET_HEADER_LEN..].split_at_mut(overhead);
    A::encapsulate(outer, inner, &tunnel, src, conn);
    address(bytes, egress.mac, mac);
    Verdict::Forward(Side::Internal)
}

/// Puts in `frame`'s place an ICMP "fragmentation needed" (next-hop MTU `mtu`) about its IP
/// packet, from the VIP to the client, and addresses it to the client's next hop; or drops
/// the frame where none may be sent (see the module doc): IPv4's
/// [`Family::too_big_for_tunnel`].
pub(in crate::process) fn frag_needed<F: FrameBuf + ?Sized>(
    frame: &mut F,
    mtu: usize,
    env: &Env<'_>,
    conn: &Conn,
) -> Verdict {
    let bytes = frame.bytes();
    let ip = &bytes[ETHERNET_HEADER_LEN..];
    if ip[6] & DF == 0 || ip[9] == PROTO_ICMP || ip.len() < QUOTE_LEN {
        return Verdict::Drop(DropReason::TooBig);
    }
    let egress = &env.config.external;
    let mac = match next_hop(env, egress.ifindex, conn.caddr) {
        Ok(mac) => mac,
        Err(verdict) => return verdict,
    };
    let mut quote = [0u8; QUOTE_LEN];
    quote.copy_from_slice(&ip[..QUOTE_LEN]);
    if !frame.set_len(FRAG_NEEDED_LEN) {
        return Verdict::Drop(DropReason::TooBig);
    }
    let bytes = frame.bytes();
    let total = (FRAG_NEEDED_LEN - ETHERNET_HEADER_LEN) as u16;
    let (ip, icmp) = bytes[ETHERNET_HEADER_LEN..].split_at_mut(IP_HEADER_LEN);
    // TOS 0xc0 (internetwork control) and TTL 64, as the kernel's icmp_send.
    ip.copy_from_slice(&[
        0x45, 0xc0, 0, 0, 0, 0, 0, 0, 64, PROTO_ICMP, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[12..16].copy_from_slice(&conn.vaddr.octets());
    ip[16..20].copy_from_slice(&conn.caddr.octets());
    let sum = checksum::finish(checksum::sum(ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    // Destination unreachable, fragmentation needed and DF set (RFC 1191).
    icmp[..8].copy_from_slice(&[3, 4, 0, 0, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&(mtu.min(usize::from(u16::MAX)) as u16).to_be_bytes());
    icmp[8..].copy_from_slice(&quote);
    let sum = checksum::finish(checksum::sum(icmp));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    bytes[12..14].copy_from_slice(&[0x08, 0x00]);
    address(bytes, egress.mac, mac);
    Verdict::Forward(Side::External)
}
