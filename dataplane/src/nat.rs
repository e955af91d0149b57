//! In-place NAT rewrites of IPv4 TCP/UDP packets, and of the ICMP errors about them, with
//! incremental checksum updates.
//!
//! LVS-NAT changes one endpoint per direction: the destination of requests (VIP:vport becomes
//! RIP:rport) and the source of replies (RIP:rport becomes VIP:vport). Each changed 16-bit word
//! is folded into the IPv4 header checksum and the TCP/UDP checksum (whose pseudo-header covers
//! the addresses) with RFC 1624 eqn. 3, so the cost does not depend on the payload length and a
//! checksum that was wrong on arrival stays wrong (the end host still drops it).
//!
//! An ICMP error about a translated packet quotes that packet as it travelled, so its quote is
//! translated like the packet would have been on its way back (IPVS's `ip_vs_nat_icmp`):
//! [`translate_icmp_error`].
//!
//! Callers pass a buffer starting at the IPv4 header that [`crate::process`] has validated:
//! `Ipv4Packet::new_checked` and the L4 view's `new_checked` both succeeded on it (for ICMP
//! errors, see [`translate_icmp_error`]).

use crate::checksum;
use crate::wire::{ipv4, IcmpPacket, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use std::net::Ipv4Addr;

/// Which endpoint of a packet a translation rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Source,
    Destination,
}

impl Endpoint {
    /// `source` or `destination`, as this endpoint says.
    #[inline]
    pub(crate) fn pick<T>(self, source: T, destination: T) -> T {
        match self {
            Endpoint::Source => source,
            Endpoint::Destination => destination,
        }
    }

    /// The other endpoint: the one a packet travelling the other way has in this one's place
    /// (an ICMP error's quote).
    #[inline]
    pub(crate) fn opposite(self) -> Endpoint {
        self.pick(Endpoint::Destination, Endpoint::Source)
    }
}

/// Sets `endpoint`'s address and port to `addr:port`, updating both checksums.
/// A UDP checksum of 0 ("none", RFC 768) stays 0. Always inlined: NAT's hot path pays no
/// call for it now that FullNAT calls it too (callgrind: +20 instructions per packet).
#[inline(always)]
pub fn translate(ip: &mut [u8], endpoint: Endpoint, addr: Ipv4Addr, port: u16) {
    let mut packet = Ipv4Packet::new_unchecked(&mut *ip);
    let old_addr = endpoint.pick(packet.src_addr(), packet.dst_addr());
    match endpoint {
        Endpoint::Source => packet.set_src_addr(addr),
        Endpoint::Destination => packet.set_dst_addr(addr),
    }
    packet.set_checksum(checksum::update_addr(packet.checksum(), old_addr, addr));
    let protocol = packet.protocol();
    let l4 = packet.payload_mut();
    match protocol {
        IpProtocol::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(l4);
            let old_port = endpoint.pick(tcp.src_port(), tcp.dst_port());
            match endpoint {
                Endpoint::Source => tcp.set_src_port(port),
                Endpoint::Destination => tcp.set_dst_port(port),
            }
            let sum = checksum::update_addr(tcp.checksum(), old_addr, addr);
            tcp.set_checksum(checksum::update_u16(sum, old_port, port));
        }
        IpProtocol::Udp => {
            let mut udp = UdpPacket::new_unchecked(l4);
            let old_port = endpoint.pick(udp.src_port(), udp.dst_port());
            match endpoint {
                Endpoint::Source => udp.set_src_port(port),
                Endpoint::Destination => udp.set_dst_port(port),
            }
            if udp.checksum() != 0 {
                let sum = checksum::update_addr(udp.checksum(), old_addr, addr);
                let sum = checksum::update_u16(sum, old_port, port);
                // A computed 0 is transmitted as all ones (RFC 768): 0 would mean "none".
                udp.set_checksum(if sum == 0 { 0xffff } else { sum });
            }
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => {}
    }
}

/// Rewrites an ICMP error about a translated packet: the outer header's `outer` endpoint
/// becomes `addr`, and the quoted packet, which travelled the other way, gets `addr:port` as
/// its opposite endpoint. Every checksum stays consistent with the bytes, each updated by RFC
/// 1624 (a wrong one stays wrong): the outer IPv4 header's, the quoted IPv4 header's, the
/// quoted TCP/UDP checksum where the quote holds it (UDP's always, TCP's from 18 quoted bytes
/// on; a UDP "none" stays 0), and the ICMP checksum, which covers the whole quote.
///
/// The caller has checked that `ip` is an ICMP message whose quote holds an IPv4 header without
/// options and at least the first 8 bytes of a TCP or UDP header.
pub fn translate_icmp_error(ip: &mut [u8], outer: Endpoint, addr: Ipv4Addr, port: u16) {
    let mut packet = Ipv4Packet::new_unchecked(&mut *ip);
    let old = outer.pick(packet.src_addr(), packet.dst_addr());
    match outer {
        Endpoint::Source => packet.set_src_addr(addr),
        Endpoint::Destination => packet.set_dst_addr(addr),
    }
    packet.set_checksum(checksum::update_addr(packet.checksum(), old, addr));

    let mut icmp = IcmpPacket::new_unchecked(packet.payload_mut());
    let mut sum = icmp.checksum();
    let quote = icmp.data_mut();
    // The quoted packet went the other way: its endpoint on our side is the opposite one.
    let inner = outer.opposite();
    let mut quoted = Ipv4Packet::new_unchecked(&mut *quote);
    let old_addr = inner.pick(quoted.src_addr(), quoted.dst_addr());
    match inner {
        Endpoint::Source => quoted.set_src_addr(addr),
        Endpoint::Destination => quoted.set_dst_addr(addr),
    }
    let old_ip_sum = quoted.checksum();
    let new_ip_sum = checksum::update_addr(old_ip_sum, old_addr, addr);
    quoted.set_checksum(new_ip_sum);
    let protocol = quoted.protocol();
    sum = checksum::update_addr(sum, old_addr, addr);
    sum = checksum::update_u16(sum, old_ip_sum, new_ip_sum);

    // Only the quoted bytes exist: the quoted header's total length is the original one.
    let l4 = &mut quote[ipv4::MIN_HEADER_LEN..];
    let l4_len = l4.len();
    let (old_port, old_l4_sum) = match protocol {
        IpProtocol::Tcp => {
            let mut tcp = TcpPacket::new_unchecked(&mut *l4);
            let old_port = inner.pick(tcp.src_port(), tcp.dst_port());
            match inner {
                Endpoint::Source => tcp.set_src_port(port),
                Endpoint::Destination => tcp.set_dst_port(port),
            }
            (
                old_port,
                (l4_len >= TCP_CHECKSUM_END).then(|| tcp.checksum()),
            )
        }
        IpProtocol::Udp => {
            let mut udp = UdpPacket::new_unchecked(&mut *l4);
            let old_port = inner.pick(udp.src_port(), udp.dst_port());
            match inner {
                Endpoint::Source => udp.set_src_port(port),
                Endpoint::Destination => udp.set_dst_port(port),
            }
            (old_port, Some(udp.checksum()).filter(|&c| c != 0))
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => return,
    };
    sum = checksum::update_u16(sum, old_port, port);
    if let Some(old_l4_sum) = old_l4_sum {
        let new = checksum::update_addr(old_l4_sum, old_addr, addr);
        let mut new = checksum::update_u16(new, old_port, port);
        match protocol {
            IpProtocol::Tcp => TcpPacket::new_unchecked(&mut *l4).set_checksum(new),
            _ => {
                // A computed 0 is transmitted as all ones (RFC 768).
                if new == 0 {
                    new = 0xffff;
                }
                UdpPacket::new_unchecked(&mut *l4).set_checksum(new);
            }
        }
        sum = checksum::update_u16(sum, old_l4_sum, new);
    }
    icmp.set_checksum(sum);
}

/// Bytes of a TCP header up to the end of its checksum field.
const TCP_CHECKSUM_END: usize = 18;

/// Decrements the TTL as a router does, updating the header checksum. The caller has checked
/// that the TTL is above 1.
#[inline]
pub fn decrement_ttl(ip: &mut [u8]) {
    let mut packet = Ipv4Packet::new_unchecked(ip);
    let ttl = packet.ttl();
    let protocol: u8 = packet.protocol().into();
    // TTL and protocol share one 16-bit word of the header.
    let old = u16::from_be_bytes([ttl, protocol]);
    let new = u16::from_be_bytes([ttl - 1, protocol]);
    packet.set_ttl(ttl - 1);
    packet.set_checksum(checksum::update_u16(packet.checksum(), old, new));
}

/// Whether the TCP/UDP checksum of `ip` is a *partial* one: only the folded pseudo-header sum,
/// which a sender with checksum offload leaves for its NIC to complete. A veth peer (or a VM's
/// virtio) hands such frames over as they are. A full checksum that happens to equal it is
/// recomputed to the same value by [`complete_checksum`], so treating it as partial is safe.
#[inline]
pub fn has_partial_checksum(ip: &[u8]) -> bool {
    let packet = Ipv4Packet::new_unchecked(ip);
    let l4 = packet.payload();
    let (protocol, field) = match packet.protocol() {
        IpProtocol::Tcp => (6, TcpPacket::new_unchecked(l4).checksum()),
        IpProtocol::Udp => (17, UdpPacket::new_unchecked(l4).checksum()),
        _ => return false,
    };
    let pseudo = checksum::pseudo_header(
        packet.src_addr(),
        packet.dst_addr(),
        protocol,
        l4.len() as u16,
    );
    field != 0 && field == checksum::fold(pseudo)
}

/// Computes the TCP/UDP checksum of `ip` over the whole segment (for frames that arrived with
/// a partial checksum: nobody downstream will complete it).
pub fn complete_checksum(ip: &mut [u8]) {
    let mut packet = Ipv4Packet::new_unchecked(ip);
    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    match packet.protocol() {
        IpProtocol::Tcp => TcpPacket::new_unchecked(packet.payload_mut()).fill_checksum(src, dst),
        IpProtocol::Udp => UdpPacket::new_unchecked(packet.payload_mut()).fill_checksum(src, dst),
        IpProtocol::Icmp | IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => {}
    }
}
