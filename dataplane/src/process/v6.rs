//! The IPv6 packet path: [`process6`], the twin of [`super::process`] over a table of IPv6
//! connections (`ConnTable<Ipv6Addr>`), and [`client_endpoint6`], which decides a frame's
//! owner worker as [`super::client_endpoint`] does.
//!
//! This module owns what is IPv6's own: the parser (fixed header, extension headers, TCP/UDP,
//! ICMPv6 errors via `icmp::parse6`) and IPv6's [`Family`] implementation (neighbour lookups,
//! the NAT66 rewrites of [`crate::nat6`], the outer IPv6 header of tunnels, Packet Too Big).
//! Admission of new flows, TCP states, counters and the NAT, DR, tunnel and FullNAT
//! transmitters are the generic code `process.rs` and `xmit/` share with IPv4, so every packet
//! goes through the same steps and checks as its IPv4 twin: NAT66 as IPVS's
//! `ip_vs_nat_xmit_v6`, DR as `ip_vs_dr_xmit_v6`, tunnels (IPv6 in IPv6, GUE and GRE over
//! IPv6) as `ip_vs_tunnel_xmit_v6`, ICMPv6 errors about a connection translated as
//! `ip_vs_nat_icmp_v6`, never creating one.
//!
//! Refused, each counted by reason, never a panic:
//! - any packet with a Fragment header (`Fragment`): the director does not reassemble (as
//!   for IPv4, the XDP program steers fragments of VIP traffic by address alone, to die here);
//! - a Routing header with segments left (`RoutingHeader`): the destination address is not
//!   the final one, so neither the service nor the pseudo-header's address is known;
//! - a chain of extension headers that cannot be walked (`Malformed`), more than
//!   [`ipv6ext::MAX_EXTENSION_HEADERS`] included;
//! - UDP with checksum 0 (`Malformed`): RFC 8200 section 8.1, "IPv6 receivers must discard
//!   UDP packets containing a zero checksum", and no incremental update can make it valid;
//! - ICMPv6 other than an error about TCP/UDP (Neighbour Discovery, echo:
//!   `UnsupportedProtocol`): the kernel's, to which the XDP program passes them;
//! - hop limit <= 1 (`TtlExceeded`), as IPv4's TTL;
//! - new flows to an IPv4 real server (`RealFamily`): IPVS tunnels across families, this
//!   dataplane does not yet, and refuses rather than serves differently.
//!
//! Persistent services keep their IPv6 clients' templates in [`crate::persist::Templates6`],
//! the clients masked by the service's prefix length (`-M 64`), as IPv4 ones are by netmask.
//!
//! IPv6 routers never fragment (RFC 8200 section 5): a packet longer than its egress
//! interface's MTU is answered with ICMPv6 Packet Too Big (next-hop MTU: that MTU) from the
//! arrival interface's IPv6 address, sent back out of the arrival side to the MAC the frame
//! came from, and counted as `TooBig`, as `xmit/tun.rs` answers an IPv4 packet too big for
//! its tunnel. A packet too big for its tunnel gets the same, with the MTU left inside it. Without an address on the arrival interface, or about an ICMPv6 error (RFC 4443
//! section 2.4(e)), it is dropped as `TooBig` unanswered. Not rate-limited.
//!
//! Not here yet: batches (`process6` parses, hashes and looks up one frame at a time, without
//! the IPv4 path's prefetching stages) and the one-armed side test.

use super::family::Family;
use super::{
    icmp, process_parsed, transport, xmit, Env, FrameBuf, Headers, Parsed, Side, Verdict,
    ETHERNET_HEADER_LEN,
};
use crate::conntrack::{Conn, ConnTable, Direction};
use crate::encap;
use crate::nat::Endpoint;
use crate::nat6;
use crate::neigh::NeighbourTable;
use crate::persist::masked6;
use crate::snapshot::{Interface, RealId, ServiceId, Snapshot, Tunnel, PROTO_UDP};
use crate::stats::{DropReason, WorkerStats};
use crate::wire::ipv6ext::{self, ExtError};
use crate::wire::{ipv6, EtherType, EthernetFrame, IpProtocol, Ipv6Packet, UdpPacket};
use std::net::{IpAddr, Ipv6Addr};

/// The client endpoint of the IPv6 `frame` arriving on `from` (see
/// [`super::Packet::client_endpoint`]): what [`crate::conntrack::owner_of`] decides its
/// owner worker by. `None` for frames [`process6`] drops anyway.
pub fn client_endpoint6(frame: &[u8], from: Side) -> Option<(Ipv6Addr, u16)> {
    parse(frame).ok().map(|parsed| parsed.client_endpoint(from))
}

/// Processes one IPv6 frame that arrived on `from`, rewriting it in place when it is
/// forwarded (or replacing it with a Packet Too Big): [`super::process`] for IPv6, over the
/// worker's IPv6 connection table.
pub fn process6<F: FrameBuf + ?Sized>(
    frame: &mut F,
    from: Side,
    env: &Env<'_>,
    conns: &mut ConnTable<Ipv6Addr>,
    stats: &WorkerStats,
) -> Verdict {
    match parse(frame.bytes()) {
        Ok(parsed) => process_parsed(frame, &parsed, from, None, env, conns, stats),
        Err(reason) => Verdict::Drop(reason),
    }
}

fn parse(frame: &[u8]) -> Result<Parsed<Ipv6Addr>, DropReason> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    if ethernet.ethertype() != EtherType::Ipv6 {
        return Err(DropReason::Malformed);
    }
    let ip = Ipv6Packet::new_checked(ethernet.payload()).map_err(|_| DropReason::Malformed)?;
    let upper = ipv6ext::upper_layer(&ip).map_err(|e| match e {
        ExtError::DuplicateFragment => DropReason::Fragment,
        ExtError::Truncated | ExtError::TooManyHeaders | ExtError::HopByHopNotFirst => {
            DropReason::Malformed
        }
    })?;
    if upper.fragment.is_some() {
        return Err(DropReason::Fragment);
    }
    if upper.routing_pending {
        return Err(DropReason::RoutingHeader);
    }
    let l4 = &ip.payload()[upper.offset..];
    let (proto, src_port, dst_port, tcp_flags) = match upper.protocol {
        IpProtocol::Icmpv6 => return icmp::parse6(&ip, &upper).map(Parsed::IcmpError),
        protocol => transport(protocol, l4)?,
    };
    // A UDP header `transport` checked.
    if proto == PROTO_UDP && UdpPacket::new_unchecked(l4).checksum() == 0 {
        return Err(DropReason::Malformed);
    }
    if ip.hop_limit() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    // At most 40 + 8 headers of 2 KiB: fits.
    let l4_offset = ipv6::HEADER_LEN + upper.offset;
    Ok(Parsed::Flow(Headers {
        proto,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        src_port,
        dst_port,
        tcp_flags,
        ip_len: ip.total_len(),
        l4_offset: l4_offset as u16,
        partial_checksum: nat6::has_partial_checksum(ip.into_inner(), l4_offset, upper.protocol),
    }))
}

impl Family for Ipv6Addr {
    type L4Offset = u16;

    #[inline]
    fn local_addrs(config: &Snapshot) -> &[Self] {
        &config.local_addrs6
    }

    #[inline]
    fn persistence_group(client: Self, netmask: IpAddr) -> Self {
        match netmask {
            IpAddr::V6(netmask) => masked6(client, netmask),
            IpAddr::V4(_) => client,
        }
    }

    #[inline]
    fn template(env: &Env<'_>, service: ServiceId, group: Self, now_s: u32) -> Option<RealId> {
        env.templates6.get(service, group, now_s)
    }

    #[inline]
    fn record_template(
        env: &Env<'_>,
        service: ServiceId,
        group: Self,
        real: RealId,
        now_s: u32,
        expires_s: u32,
    ) {
        env.templates6.put(service, group, real, now_s, expires_s);
    }

    #[inline]
    fn too_big<F: FrameBuf + ?Sized>(
        frame: &mut F,
        ip_len: usize,
        direction: Direction,
        env: &Env<'_>,
        stats: &WorkerStats,
    ) -> Option<Verdict> {
        let config = env.config;
        let (arrival, egress, side) = match direction {
            Direction::Inbound => (&config.external, &config.internal, Side::External),
            Direction::Outbound => (&config.internal, &config.external, Side::Internal),
        };
        let mtu = usize::from(egress.mtu);
        if mtu == 0 || ip_len <= mtu {
            return None;
        }
        let verdict = packet_too_big(frame, ip_len, mtu, arrival, side);
        // The packet is dropped either way; a `Drop` verdict is counted by whoever acts on it:
        // count here only when the error takes the frame's place (as `xmit/tun.rs`).
        if matches!(verdict, Verdict::Forward(_)) {
            stats.count_drop(DropReason::TooBig);
        }
        Some(verdict)
    }

    #[inline]
    fn tunnel_overhead(tunnel: &Tunnel) -> usize {
        tunnel.overhead6()
    }

    /// The interface's global IPv6 address (IPVS takes the route's source address, which the
    /// kernel picks among the same).
    #[inline]
    fn tunnel_source(egress: &Interface) -> Option<Self> {
        egress.addr6
    }

    /// The hop limit is decremented first, as IPVS's `decrement_ttl` does before
    /// `ip_vs_tunnel_xmit_v6` copies it into the outer header: the director is a hop.
    #[inline]
    fn encapsulate(
        outer: &mut [u8],
        inner: &mut [u8],
        tunnel: &Tunnel,
        src: Self,
        conn: &Conn<Self>,
    ) {
        nat6::decrement_hop_limit(inner);
        encap::write_outer6(outer, inner, tunnel, src, conn.daddr, conn);
    }

    /// Packet Too Big from the external interface's address, as for any IPv6 packet too big
    /// for its egress ([`Family::too_big`]), with the MTU left inside the tunnel.
    #[cold]
    fn too_big_for_tunnel<F: FrameBuf + ?Sized>(
        frame: &mut F,
        ip_len: usize,
        mtu: usize,
        env: &Env<'_>,
        _: &Conn<Self>,
    ) -> Verdict {
        packet_too_big(frame, ip_len, mtu, &env.config.external, Side::External)
    }

    #[inline]
    fn next_hop_mac(
        neighbours: &NeighbourTable,
        ifindex: u32,
        addr: Self,
    ) -> Result<[u8; 6], Verdict> {
        neighbours
            .next_hop_mac_v6(ifindex, addr)
            .map_err(|m| xmit::miss(m.ifindex, IpAddr::V6(m.next_hop), m.no_route))
    }

    #[inline]
    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<Self> {
        neighbours.next_hop_v6(ifindex, addr).ok()
    }

    #[inline]
    fn mac(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<[u8; 6]> {
        neighbours.mac_v6(ifindex, addr)
    }

    #[inline]
    fn decrement_ttl(ip: &mut [u8]) {
        nat6::decrement_hop_limit(ip);
    }

    #[inline]
    fn translate(ip: &mut [u8], l4: u16, proto: u8, endpoint: Endpoint, addr: Self, port: u16) {
        nat6::translate(ip, l4.into(), proto.into(), endpoint, addr, port);
    }

    #[inline]
    fn complete_checksum(ip: &mut [u8], l4: u16, proto: u8) {
        nat6::complete_checksum(ip, l4.into(), proto.into());
    }

    fn translate_icmp_error(ip: &mut [u8], l4: u16, outer: Endpoint, addr: Self, port: u16) {
        // `icmp::parse6` checked all that nat6 needs: it cannot refuse.
        let translated = nat6::translate_icmp_error(ip, l4.into(), outer, addr, port);
        debug_assert!(translated, "an ICMPv6 error icmp::parse6 accepted");
    }
}

/// Puts in `frame`'s place an ICMPv6 Packet Too Big (next-hop MTU `mtu`) about its IP packet
/// (`ip_len` bytes), from `arrival`'s IPv6 address to the packet's source, and sends it back
/// the way the packet came: out of `arrival` (the interface of `side`), to the MAC the frame
/// came from. Where none may be sent (no IPv6 address on `arrival`, a packet none may be sent
/// about: [`nat6::packet_too_big`]) or the frame cannot take the message's length, the packet
/// is dropped and the frame left as it was.
#[cold]
fn packet_too_big<F: FrameBuf + ?Sized>(
    frame: &mut F,
    ip_len: usize,
    mtu: usize,
    arrival: &Interface,
    side: Side,
) -> Verdict {
    let Some(src) = arrival.addr6 else {
        return Verdict::Drop(DropReason::TooBig);
    };
    let bytes = frame.bytes();
    let ip = &bytes[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip_len];
    let Some(len) = nat6::packet_too_big_len(ip) else {
        return Verdict::Drop(DropReason::TooBig);
    };
    let mut sender = [0u8; 6];
    sender.copy_from_slice(&bytes[6..12]);
    // The message quotes the packet's first `len - 48` bytes, which the new length keeps.
    if !frame.set_len(ETHERNET_HEADER_LEN + len) {
        return Verdict::Drop(DropReason::TooBig);
    }
    let quote_len = len - nat6::ERROR_HEADERS_LEN;
    // RFC 8200 section 5: no IPv6 link has an MTU below 1280 bytes.
    let mtu = mtu.clamp(nat6::MIN_MTU, u32::MAX as usize) as u32;
    let bytes = frame.bytes();
    let ip = &mut bytes[ETHERNET_HEADER_LEN..];
    if nat6::packet_too_big_in_place(ip, quote_len, mtu, src).is_none() {
        // Not reached: the same packet was found eligible above.
        return Verdict::Drop(DropReason::TooBig);
    }
    xmit::address(bytes, arrival.mac, sender);
    Verdict::Forward(side)
}
