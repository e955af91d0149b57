//! Masquerading (`-m`, LVS-NAT), IPVS's `ip_vs_nat_xmit` and `ip_vs_nat_icmp`: requests leave
//! by the internal interface with RIP:rport as destination, replies by the external one with
//! VIP:vport as source; the TTL is decremented as by any router. The byte-level rewrites live
//! in [`crate::nat`] (IPv6: [`crate::nat6`], IPVS's `ip_vs_nat_xmit_v6`).

use super::{address, next_hop, Env, Verdict};
use crate::conntrack::{Address, Conn, Direction};
use crate::nat::Endpoint;
use crate::process::family::Family;
use crate::process::icmp::IcmpError;
use crate::process::{Headers, Side, ETHERNET_HEADER_LEN};
use crate::snapshot::{Interface, Snapshot};

/// Where a frame of a connection goes: out of `egress` (the interface of `side`), to the
/// next hop towards `next_hop`. Requests go to the real server, replies (and errors towards
/// the client) to the client.
pub(super) struct Egress<'a, A> {
    pub(super) egress: &'a Interface,
    pub(super) side: Side,
    pub(super) next_hop: A,
}

impl<'a, A: Address> Egress<'a, A> {
    #[inline]
    pub(super) fn of(config: &'a Snapshot, conn: &Conn<A>, direction: Direction) -> Self {
        match direction {
            Direction::Inbound => Egress {
                egress: &config.internal,
                side: Side::Internal,
                next_hop: conn.daddr,
            },
            Direction::Outbound => Egress {
                egress: &config.external,
                side: Side::External,
                next_hop: conn.caddr,
            },
        }
    }
}

/// The endpoint NAT rewrites in a frame of `conn` travelling in `direction`, and what it
/// becomes: the destination of requests becomes RIP:rport, the source of replies VIP:vport.
#[inline]
fn rewrite<A: Address>(conn: &Conn<A>, direction: Direction) -> (Endpoint, A, u16) {
    match direction {
        Direction::Inbound => (Endpoint::Destination, conn.daddr, conn.dport),
        Direction::Outbound => (Endpoint::Source, conn.vaddr, conn.vport),
    }
}

/// Translates the TCP/UDP packet `h` of `conn` travelling in `direction` (completing a partial
/// transport checksum) and addresses it.
#[inline]
pub(in crate::process) fn transmit<A: Family>(
    frame: &mut [u8],
    h: &Headers<A>,
    env: &Env<'_>,
    conn: &Conn<A>,
    direction: Direction,
) -> Verdict {
    // Both from one match on the direction (computed in the closure, after the next-hop
    // lookup, the rewrite cost a second one: callgrind, +13 instructions per packet).
    let (endpoint, addr, port) = rewrite(conn, direction);
    let to = Egress::of(env.config, conn, direction);
    let (l4, proto, partial_checksum) = (h.l4_offset, h.proto, h.partial_checksum);
    send(frame, h.ip_len, env, &to, |ip| {
        A::translate(ip, l4, proto, endpoint, addr, port);
        if partial_checksum {
            A::complete_checksum(ip, l4, proto);
        }
    })
}

/// Translates the ICMP error `e` about `conn`, which arrived travelling in `direction`, and
/// addresses it.
pub(in crate::process) fn transmit_icmp_error<A: Family>(
    frame: &mut [u8],
    e: &IcmpError<A>,
    env: &Env<'_>,
    conn: &Conn<A>,
    direction: Direction,
) -> Verdict {
    let (endpoint, addr, port) = rewrite(conn, direction);
    let to = Egress::of(env.config, conn, direction);
    let l4 = e.l4_offset;
    send(frame, e.ip_len, env, &to, |ip| {
        A::translate_icmp_error(ip, l4, endpoint, addr, port)
    })
}

/// What the translating methods have in common: the next hop first (an unresolved one
/// leaves the frame as it is), then `translate` on the IP packet (`ip_len` bytes), the TTL
/// (hop limit), the MACs.
#[inline]
pub(super) fn send<A: Family>(
    frame: &mut [u8],
    ip_len: usize,
    env: &Env<'_>,
    to: &Egress<'_, A>,
    translate: impl FnOnce(&mut [u8]),
) -> Verdict {
    let mac = match next_hop(env, to.egress.ifindex, to.next_hop) {
        Ok(mac) => mac,
        Err(verdict) => return verdict,
    };
    let ip = &mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip_len];
    translate(ip);
    A::decrement_ttl(ip);
    address(frame, to.egress.mac, mac);
    Verdict::Forward(to.side)
}
