//! In-place NAT rewrites of IPv4 TCP/UDP packets with incremental checksum updates.
//!
//! LVS-NAT changes one endpoint per direction: the destination of requests (VIP:vport becomes
//! RIP:rport) and the source of replies (RIP:rport becomes VIP:vport). Each changed 16-bit word
//! is folded into the IPv4 header checksum and the TCP/UDP checksum (whose pseudo-header covers
//! the addresses) with RFC 1624 eqn. 3, so the cost does not depend on the payload length and a
//! checksum that was wrong on arrival stays wrong (the end host still drops it).
//!
//! Callers pass a buffer starting at the IPv4 header that [`crate::process`] has validated:
//! `Ipv4Packet::new_checked` and the L4 view's `new_checked` both succeeded on it.

use crate::checksum;
use crate::wire::{IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use std::net::Ipv4Addr;

/// Which endpoint of a packet a translation rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Source,
    Destination,
}

impl Endpoint {
    #[inline]
    fn pick<T>(self, source: T, destination: T) -> T {
        match self {
            Endpoint::Source => source,
            Endpoint::Destination => destination,
        }
    }
}

/// Sets `endpoint`'s address and port to `addr:port`, updating both checksums.
/// A UDP checksum of 0 ("none", RFC 768) stays 0.
#[inline]
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
        IpProtocol::Icmp | IpProtocol::Unknown(_) => {}
    }
}

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
        IpProtocol::Icmp | IpProtocol::Unknown(_) => {}
    }
}
