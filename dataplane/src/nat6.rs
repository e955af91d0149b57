//! In-place NAT66 rewrites of IPv6 TCP/UDP packets, and of the ICMPv6 errors about them, with
//! incremental checksum updates; and the ICMPv6 "packet too big" the director sends.
//!
//! The IPv6 counterpart of [`crate::nat`], with the same vocabulary ([`Endpoint`]) and the same
//! rule: each changed 16-bit word is folded into the checksums that cover it with RFC 1624
//! eqn. 3, so the cost does not depend on the payload length and a checksum that was wrong on
//! arrival stays wrong by the same amount (the end host still drops the packet). What IPv6
//! changes:
//! - There is no header checksum. An address change only touches the upper-layer checksum,
//!   whose pseudo-header covers both addresses (RFC 8200 section 8.1); the hop limit is
//!   covered by nothing.
//! - Extension headers may sit between the fixed header and the TCP/UDP header: callers pass
//!   the upper-layer header's offset, `40 + UpperLayer::offset` from
//!   [`ipv6ext::upper_layer`], and its protocol.
//! - The UDP checksum is mandatory (RFC 8200 section 8.1: "IPv6 receivers must discard UDP
//!   packets containing a zero checksum"). A computed 0 is sent as `0xffff`; a received 0 is
//!   not a checksum at all, and the caller drops such a packet before translating it (IPVS
//!   instead computes a full checksum into it, the fallback of its UDP handlers when the
//!   field is 0, forwarding as checked what its sender never checksummed). If one gets here
//!   anyway, its addresses and ports are rewritten and the 0 stays 0: the packet stays exactly
//!   as invalid as it arrived, and no incremental update can turn it into a valid one.
//! - ICMPv6's checksum covers a pseudo-header too (RFC 4443 section 2.3): rewriting the outer
//!   address of an error, or of any ICMPv6 message, changes it.
//!
//! An ICMPv6 error about a translated packet quotes that packet as it travelled, so its quote
//! is translated like the packet would have been on its way back (IPVS's
//! `ip_vs_nat_icmp_v6`, which leaves the quoted TCP/UDP checksum as it was and has the ICMPv6
//! checksum recomputed in full; here the quoted checksum is translated too, as
//! [`crate::nat::translate_icmp_error`] does, and every checksum is updated incrementally):
//! [`translate_icmp_error`].
//!
//! A packet that does not fit the egress MTU is answered with [`packet_too_big`] (IPv6 routers
//! never fragment: there is no DF bit to look at, RFC 8200 section 5).
//!
//! Callers pass a buffer starting at the IPv6 header on which `Ipv6Packet::new_checked`
//! succeeded, and the [`ipv6ext::UpperLayer`] they computed for it (a TCP/UDP view's
//! `new_checked` succeeded at its offset). Nothing here allocates.

use crate::checksum;
use crate::nat::Endpoint;
use crate::wire::{
    icmpv6, ipv6, ipv6ext, Icmpv6Packet, IpProtocol, Ipv6Packet, TcpPacket, UdpPacket,
};
use std::net::Ipv6Addr;

/// The IPv6 minimum link MTU (RFC 8200 section 5): no ICMPv6 error may be longer.
pub const MIN_MTU: usize = 1280;

/// The IPv6 and ICMPv6 headers of an error message.
pub const ERROR_HEADERS_LEN: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;

/// Most bytes of the invoking packet an ICMPv6 error quotes: RFC 4443 section 2.4(c), "as much
/// of invoking packet as possible without the ICMPv6 packet exceeding the minimum IPv6 MTU".
pub const MAX_QUOTE_LEN: usize = MIN_MTU - ERROR_HEADERS_LEN;

/// Hop limit of the errors the director sends: Linux's `icmp6_send` uses the route's hop
/// limit, which is the interface's (`net.ipv6.conf.*.hop_limit`, 64 by default).
pub const ERROR_HOP_LIMIT: u8 = 64;

/// Bytes of a TCP header up to the end of its checksum field.
const TCP_CHECKSUM_END: usize = 18;

/// Bytes of the quoted transport header an error must hold: both ports (and UDP's checksum).
const QUOTED_L4_LEN: usize = 8;

/// TCP's and UDP's next-header numbers, as the pseudo-header carries them.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// Sets `endpoint`'s address of the IPv6 header at the start of `ip` (at least 40 bytes),
/// returning the old one.
#[inline]
fn set_addr(ip: &mut [u8], endpoint: Endpoint, addr: Ipv6Addr) -> Ipv6Addr {
    let mut packet = Ipv6Packet::new_unchecked(ip);
    match endpoint {
        Endpoint::Source => {
            let old = packet.src_addr();
            packet.set_src_addr(addr);
            old
        }
        Endpoint::Destination => {
            let old = packet.dst_addr();
            packet.set_dst_addr(addr);
            old
        }
    }
}

/// Sets `endpoint`'s port of the TCP header at the start of `l4`, returning the old one.
#[inline]
fn set_tcp_port(l4: &mut [u8], endpoint: Endpoint, port: u16) -> u16 {
    let mut tcp = TcpPacket::new_unchecked(l4);
    let old = endpoint.pick(tcp.src_port(), tcp.dst_port());
    match endpoint {
        Endpoint::Source => tcp.set_src_port(port),
        Endpoint::Destination => tcp.set_dst_port(port),
    }
    old
}

/// Sets `endpoint`'s port of the UDP header at the start of `l4`, returning the old one.
#[inline]
fn set_udp_port(l4: &mut [u8], endpoint: Endpoint, port: u16) -> u16 {
    let mut udp = UdpPacket::new_unchecked(l4);
    let old = endpoint.pick(udp.src_port(), udp.dst_port());
    match endpoint {
        Endpoint::Source => udp.set_src_port(port),
        Endpoint::Destination => udp.set_dst_port(port),
    }
    old
}

/// A UDP checksum after an address and a port changed; `None` for a received 0, which stays
/// 0 (see the module doc). A computed 0 is sent as all ones (RFC 768, RFC 8200 section 8.1).
#[inline]
fn udp_checksum_update(
    sum: u16,
    old_addr: Ipv6Addr,
    addr: Ipv6Addr,
    old_port: u16,
    port: u16,
) -> Option<u16> {
    if sum == 0 {
        return None;
    }
    let new = checksum::update_addr_v6(sum, old_addr, addr);
    let new = checksum::update_u16(new, old_port, port);
    Some(if new == 0 { 0xffff } else { new })
}

/// Sets `endpoint`'s address (IPv6 header) and port (TCP/UDP header at `l4_offset`, of
/// `protocol`) to `addr:port`, updating the TCP/UDP checksum. Always inlined, as
/// [`crate::nat::translate`].
///
/// `l4_offset` is the upper-layer header's offset from the start of `ip`:
/// `40 + UpperLayer::offset`. A UDP checksum of 0 stays 0 (the caller drops such packets
/// first: see the module doc). For ICMPv6 (`protocol` [`IpProtocol::Icmpv6`]) only the
/// address changes and the ICMPv6 checksum follows it; `port` is ignored. Other protocols only
/// get the address.
#[inline(always)]
pub fn translate(
    ip: &mut [u8],
    l4_offset: usize,
    protocol: IpProtocol,
    endpoint: Endpoint,
    addr: Ipv6Addr,
    port: u16,
) {
    let old_addr = set_addr(ip, endpoint, addr);
    let l4 = &mut ip[l4_offset..];
    match protocol {
        IpProtocol::Tcp => {
            let old_port = set_tcp_port(l4, endpoint, port);
            let mut tcp = TcpPacket::new_unchecked(l4);
            let sum = checksum::update_addr_v6(tcp.checksum(), old_addr, addr);
            tcp.set_checksum(checksum::update_u16(sum, old_port, port));
        }
        IpProtocol::Udp => {
            let old_port = set_udp_port(l4, endpoint, port);
            let mut udp = UdpPacket::new_unchecked(l4);
            if let Some(sum) = udp_checksum_update(udp.checksum(), old_addr, addr, old_port, port) {
                udp.set_checksum(sum);
            }
        }
        IpProtocol::Icmpv6 => {
            let mut icmp = Icmpv6Packet::new_unchecked(l4);
            icmp.set_checksum(checksum::update_addr_v6(icmp.checksum(), old_addr, addr));
        }
        IpProtocol::Icmp | IpProtocol::Unknown(_) => {}
    }
}

/// Where the transport header quoted by an ICMPv6 error is.
#[derive(Debug, Clone, Copy)]
struct Quoted {
    protocol: IpProtocol,
    /// Offset of the quoted TCP/UDP header in the outer packet.
    start: usize,
    /// End of the quote (of the outer packet's payload) in the outer packet.
    end: usize,
}

/// Finds the quoted transport header of the ICMPv6 error at `l4_offset` of `ip`, or `None`
/// where the message does not hold what [`translate_icmp_error`] needs (see there).
fn quoted_transport(ip: &[u8], l4_offset: usize) -> Option<Quoted> {
    let end = Ipv6Packet::new_checked(ip).ok()?.total_len();
    let message = Icmpv6Packet::new_checked(ip.get(l4_offset..end)?).ok()?;
    if !message.is_error() {
        return None;
    }
    let quote = message.data();
    if quote.len() < ipv6::HEADER_LEN {
        return None;
    }
    // Unchecked: the quoted payload length is the original packet's, longer than the quote.
    let quoted = Ipv6Packet::new_unchecked(quote);
    let upper = ipv6ext::walk(quoted.next_header().into(), &quote[ipv6::HEADER_LEN..]).ok()?;
    // A non-first fragment quotes data, not a header.
    if upper.fragment.is_some_and(|f| !f.is_first()) {
        return None;
    }
    if !matches!(upper.protocol, IpProtocol::Tcp | IpProtocol::Udp) {
        return None;
    }
    let l4 = ipv6::HEADER_LEN + upper.offset;
    if quote.len() < l4 + QUOTED_L4_LEN {
        return None;
    }
    Some(Quoted {
        protocol: upper.protocol,
        start: l4_offset + icmpv6::HEADER_LEN + l4,
        end,
    })
}

/// Rewrites an ICMPv6 error about a translated packet: the outer header's `outer` endpoint
/// becomes `addr`, and the quoted packet, which travelled the other way, gets `addr:port` as
/// its opposite endpoint (quoted IPv6 address, quoted TCP/UDP port, and the quoted TCP/UDP
/// checksum where the quote holds it: UDP's always, TCP's from 18 quoted bytes on; a UDP 0
/// stays 0). The ICMPv6 checksum, which covers the pseudo-header with the outer addresses and
/// the whole message with the quote, is updated by RFC 1624 for every changed word: a wrong one
/// stays wrong.
///
/// `l4_offset` is the ICMPv6 header's offset from the start of `ip` (`40 +
/// UpperLayer::offset`). The caller has checked that the message is an error (types 0..=127)
/// whose quote holds the IPv6 header, all its extension headers and at least the first 8
/// bytes of a TCP or UDP header, that the quote is not of a non-first fragment, and that the
/// outer header has no Routing header with segments left (the pseudo-header would then hold
/// another destination). The quote is found again here with [`ipv6ext::walk`]; where it does
/// not hold all that, `ip` is left as it was and `false` returned.
pub fn translate_icmp_error(
    ip: &mut [u8],
    l4_offset: usize,
    outer: Endpoint,
    addr: Ipv6Addr,
    port: u16,
) -> bool {
    let Some(quoted) = quoted_transport(ip, l4_offset) else {
        return false;
    };
    let old_outer = set_addr(ip, outer, addr);
    // The quoted packet went the other way: its endpoint on our side is the opposite one.
    let inner = outer.opposite();
    let old_quoted = set_addr(&mut ip[l4_offset + icmpv6::HEADER_LEN..], inner, addr);

    // Only the quoted bytes exist: the quoted header's payload length is the original one.
    let l4 = &mut ip[quoted.start..quoted.end];
    let (old_port, l4_sum) = match quoted.protocol {
        IpProtocol::Tcp => {
            let old_port = set_tcp_port(l4, inner, port);
            let l4_sum = (l4.len() >= TCP_CHECKSUM_END).then(|| {
                let mut tcp = TcpPacket::new_unchecked(&mut *l4);
                let old = tcp.checksum();
                let new = checksum::update_addr_v6(old, old_quoted, addr);
                let new = checksum::update_u16(new, old_port, port);
                tcp.set_checksum(new);
                (old, new)
            });
            (old_port, l4_sum)
        }
        _ => {
            let old_port = set_udp_port(l4, inner, port);
            let mut udp = UdpPacket::new_unchecked(&mut *l4);
            let old = udp.checksum();
            let l4_sum = udp_checksum_update(old, old_quoted, addr, old_port, port).map(|new| {
                udp.set_checksum(new);
                (old, new)
            });
            (old_port, l4_sum)
        }
    };

    let mut icmp = Icmpv6Packet::new_unchecked(&mut ip[l4_offset..]);
    // The pseudo-header's address, then each changed word of the message.
    let mut sum = checksum::update_addr_v6(icmp.checksum(), old_outer, addr);
    sum = checksum::update_addr_v6(sum, old_quoted, addr);
    sum = checksum::update_u16(sum, old_port, port);
    if let Some((old, new)) = l4_sum {
        sum = checksum::update_u16(sum, old, new);
    }
    icmp.set_checksum(sum);
    true
}

/// Decrements the hop limit as a router does (no checksum covers it). The caller has checked
/// that it is above 1; a 0 stays 0.
#[inline]
pub fn decrement_hop_limit(ip: &mut [u8]) {
    let mut packet = Ipv6Packet::new_unchecked(ip);
    let hop_limit = packet.hop_limit();
    packet.set_hop_limit(hop_limit.saturating_sub(1));
}

/// Whether the TCP/UDP checksum (at `l4_offset`, of `protocol`) of `ip` is a *partial* one:
/// only the folded pseudo-header sum, which a sender with checksum offload leaves for its NIC
/// to complete (see [`crate::nat::has_partial_checksum`]). The pseudo-header's length is the
/// segment's for TCP, the length field's for UDP, as the senders compute it.
#[inline]
pub fn has_partial_checksum(ip: &[u8], l4_offset: usize, protocol: IpProtocol) -> bool {
    let packet = Ipv6Packet::new_unchecked(ip);
    let l4 = &ip[l4_offset..packet.total_len()];
    let (next_header, len, field) = match protocol {
        IpProtocol::Tcp => (PROTO_TCP, l4.len(), TcpPacket::new_unchecked(l4).checksum()),
        IpProtocol::Udp => {
            let udp = UdpPacket::new_unchecked(l4);
            (PROTO_UDP, udp.len(), udp.checksum())
        }
        IpProtocol::Icmp | IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => return false,
    };
    // Below 64 KiB: the payload length field bounds it.
    let pseudo = checksum::pseudo_header_v6(
        packet.src_addr(),
        packet.dst_addr(),
        next_header,
        len as u32,
    );
    field != 0 && field == checksum::fold(pseudo)
}

/// Computes the TCP/UDP checksum (at `l4_offset`, of `protocol`) of `ip` over the whole
/// segment (for frames that arrived with a partial checksum: nobody downstream will complete
/// it). A computed UDP 0 is sent as `0xffff`.
pub fn complete_checksum(ip: &mut [u8], l4_offset: usize, protocol: IpProtocol) {
    let packet = Ipv6Packet::new_unchecked(&*ip);
    let (src, dst, end) = (packet.src_addr(), packet.dst_addr(), packet.total_len());
    let l4 = &mut ip[l4_offset..end];
    match protocol {
        IpProtocol::Tcp => TcpPacket::new_unchecked(l4).fill_checksum(src, dst),
        IpProtocol::Udp => UdpPacket::new_unchecked(l4).fill_checksum(src, dst),
        IpProtocol::Icmp | IpProtocol::Icmpv6 | IpProtocol::Unknown(_) => {}
    }
}

/// Writes into `out` an ICMPv6 Packet Too Big (type 2, code 0, next-hop MTU `mtu`) from `src`
/// (the director's address the client sent to: the VIP) to the source of `packet`, quoting as
/// much of `packet` as fits in [`MIN_MTU`] (at most [`MAX_QUOTE_LEN`] bytes, RFC 4443 section
/// 2.4(c)), and returns its length; `None` where nothing is to be sent (see below) or `out`
/// cannot hold the whole message.
///
/// `packet` is the offending IPv6 packet from its fixed header on (bytes past its payload
/// length, Ethernet padding, are not quoted). The header is as Linux's `icmp6_send` writes
/// it: traffic class 0, flow label 0, hop limit [`ERROR_HOP_LIMIT`]. `mtu` is sent as given;
/// the caller keeps it at or above [`MIN_MTU`] (RFC 8200 section 5).
///
/// `None`, as RFC 4443 section 2.4(e) says: for a packet shorter than an IPv6 header, from the
/// unspecified or a multicast address, or carrying an ICMPv6 error (one whose upper layer, as
/// far as the walk gets, is ICMPv6 with a type below 128; Linux's `is_ineligible`). Rate
/// limiting (section 2.4(f)) and where the message goes are the caller's business.
pub fn packet_too_big(packet: &[u8], mtu: u32, src: Ipv6Addr, out: &mut [u8]) -> Option<usize> {
    let quote_len = quote_len(packet)?;
    let out = out.get_mut(..ERROR_HEADERS_LEN + quote_len)?;
    out[ERROR_HEADERS_LEN..].copy_from_slice(&packet[..quote_len]);
    Some(finish_packet_too_big(out, mtu, src))
}

/// The length of the message [`packet_too_big`] writes about `packet`, or `None` where none may
/// be sent: for a caller that sizes the buffer first (a frame whose length must be set before
/// [`packet_too_big_in_place`] writes into it).
pub fn packet_too_big_len(packet: &[u8]) -> Option<usize> {
    Some(ERROR_HEADERS_LEN + quote_len(packet)?)
}

/// [`packet_too_big`] in the offending packet's place: `buf` holds it in its first
/// `packet_len` bytes and gets the message from its start (the quote moves up by 48 bytes, no
/// copy on the side), so that a frame buffer can be reused as it is, as `frag_needed` does for
/// IPv4. `None` leaves `buf` as it was.
pub fn packet_too_big_in_place(
    buf: &mut [u8],
    packet_len: usize,
    mtu: u32,
    src: Ipv6Addr,
) -> Option<usize> {
    let quote_len = quote_len(buf.get(..packet_len)?)?;
    let len = ERROR_HEADERS_LEN + quote_len;
    if buf.len() < len {
        return None;
    }
    buf.copy_within(..quote_len, ERROR_HEADERS_LEN);
    Some(finish_packet_too_big(&mut buf[..len], mtu, src))
}

/// How much of `packet` an error about it quotes, or `None` where no error may be sent about it
/// (see [`packet_too_big`]).
fn quote_len(packet: &[u8]) -> Option<usize> {
    if packet.len() < ipv6::HEADER_LEN {
        return None;
    }
    let ip = Ipv6Packet::new_unchecked(packet);
    let source = ip.src_addr();
    if source.is_unspecified() || source.is_multicast() {
        return None;
    }
    let end = ip.total_len().min(packet.len());
    // RFC 4443 section 2.4(e.1): never about an ICMPv6 error. A chain the walk cannot follow
    // is no ICMPv6 error, as in Linux's `is_ineligible`; a non-first fragment holds no type.
    if let Ok(upper) = ipv6ext::walk(ip.next_header().into(), &packet[ipv6::HEADER_LEN..end]) {
        let first = upper.fragment.is_none_or(|f| f.is_first());
        if upper.protocol == IpProtocol::Icmpv6 && first {
            match packet[..end].get(ipv6::HEADER_LEN + upper.offset) {
                Some(&msg_type) if msg_type >= icmpv6::ECHO_REQUEST => {}
                _ => return None,
            }
        }
    }
    Some(end.min(MAX_QUOTE_LEN))
}

/// Writes the headers of a Packet Too Big into `out`, whose bytes from 48 on hold the quote and
/// which is exactly the message's length, and returns that length.
fn finish_packet_too_big(out: &mut [u8], mtu: u32, src: Ipv6Addr) -> usize {
    let len = out.len();
    let dst = Ipv6Packet::new_unchecked(&out[ERROR_HEADERS_LEN..]).src_addr();
    let (header, message) = out.split_at_mut(ipv6::HEADER_LEN);
    header.fill(0);
    let mut ip = Ipv6Packet::new_unchecked(header);
    ip.set_version(6);
    // At most 1240: the quote is capped.
    ip.set_payload_len(message.len() as u16);
    ip.set_next_header(IpProtocol::Icmpv6);
    ip.set_hop_limit(ERROR_HOP_LIMIT);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let mut icmp = Icmpv6Packet::new_unchecked(message);
    icmp.set_msg_type(icmpv6::PACKET_TOO_BIG);
    icmp.set_msg_code(0);
    icmp.set_mtu(mtu);
    icmp.fill_checksum(src, dst);
    len
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::ipv6ext::{DST_OPTIONS, FRAGMENT, HOP_BY_HOP, ROUTING};
    use etherparse::{
        icmpv6::DestUnreachableCode, Icmpv6Header, Icmpv6Type, IpNumber, Ipv6FlowLabel, Ipv6Header,
        Ipv6RawExtHeader, TcpHeader, TcpOptionElement, UdpHeader,
    };
    use proptest::prelude::*;

    const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x100);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129);
    const REAL: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x11);
    /// A router between the director and the client.
    const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 2, 0, 0, 0, 1);

    /// PadN filling the 6 bytes after next header and length of an 8-byte options header.
    const PADN: [u8; 6] = [1, 4, 0, 0, 0, 0];

    // -----------------------------------------------------------------------------------------
    // Packets built from scratch by etherparse
    // -----------------------------------------------------------------------------------------

    /// An extension header: its bytes after next header and length (6 + 8k of them).
    #[derive(Debug, Clone)]
    enum Ext {
        HopByHop(Vec<u8>),
        DstOptions(Vec<u8>),
        /// Segments left (byte 1) is 0: the destination address is the final one.
        Routing(Vec<u8>),
    }

    impl Ext {
        fn number(&self) -> u8 {
            match self {
                Ext::HopByHop(_) => HOP_BY_HOP,
                Ext::DstOptions(_) => DST_OPTIONS,
                Ext::Routing(_) => ROUTING,
            }
        }

        fn raw(&self) -> &[u8] {
            match self {
                Ext::HopByHop(raw) | Ext::DstOptions(raw) | Ext::Routing(raw) => raw,
            }
        }
    }

    /// The serialized chain before `last`, and the fixed header's next header.
    fn chain(exts: &[Ext], last: u8) -> (u8, Vec<u8>) {
        let mut bytes = Vec::new();
        for (i, ext) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(last, Ext::number);
            let header = Ipv6RawExtHeader::new_raw(IpNumber(next), ext.raw()).unwrap();
            bytes.extend_from_slice(&header.to_bytes());
        }
        (exts.first().map_or(last, Ext::number), bytes)
    }

    /// An IPv6 packet from `src` to `dst`: `exts`, then `upper` (of protocol `last`).
    fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, exts: &[Ext], last: u8, upper: &[u8]) -> Vec<u8> {
        let (first, mut payload) = chain(exts, last);
        payload.extend_from_slice(upper);
        let header = Ipv6Header {
            traffic_class: 0x28,
            flow_label: Ipv6FlowLabel::try_new(0x1_2345).unwrap(),
            payload_length: payload.len() as u16,
            next_header: IpNumber(first),
            hop_limit: 64,
            source: src.octets(),
            destination: dst.octets(),
        };
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        bytes
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Proto {
        Tcp,
        Udp,
    }

    impl Proto {
        fn protocol(self) -> IpProtocol {
            match self {
                Proto::Tcp => IpProtocol::Tcp,
                Proto::Udp => IpProtocol::Udp,
            }
        }
    }

    /// A TCP or UDP packet over IPv6.
    #[derive(Debug, Clone)]
    struct Spec {
        proto: Proto,
        src: (Ipv6Addr, u16),
        dst: (Ipv6Addr, u16),
        /// TCP: a SYN with options (MSS, SACK permitted, window scale), else ACK|PSH.
        syn: bool,
        exts: Vec<Ext>,
        payload: Vec<u8>,
    }

    impl Spec {
        fn endpoint(&self, endpoint: Endpoint) -> (Ipv6Addr, u16) {
            endpoint.pick(self.src, self.dst)
        }

        /// The same packet with `endpoint` replaced by `addr:port`.
        fn with(&self, endpoint: Endpoint, addr: Ipv6Addr, port: u16) -> Spec {
            let mut spec = self.clone();
            match endpoint {
                Endpoint::Source => spec.src = (addr, port),
                Endpoint::Destination => spec.dst = (addr, port),
            }
            spec
        }

        fn l4_offset(&self) -> usize {
            ipv6::HEADER_LEN + chain(&self.exts, 0).1.len()
        }

        /// The packet, every checksum computed from scratch by etherparse.
        fn build(&self) -> Vec<u8> {
            let (src, dst) = (self.src.0.octets(), self.dst.0.octets());
            let mut upper = match self.proto {
                Proto::Tcp => {
                    let mut h = TcpHeader::new(self.src.1, self.dst.1, 0x0102_0304, 64800);
                    if self.syn {
                        h.syn = true;
                        h.set_options(&[
                            TcpOptionElement::MaximumSegmentSize(1440),
                            TcpOptionElement::SelectiveAcknowledgementPermitted,
                            TcpOptionElement::WindowScale(7),
                        ])
                        .unwrap();
                    } else {
                        h.ack = true;
                        h.psh = true;
                        h.acknowledgment_number = 0x0a0b_0c0d;
                    }
                    h.checksum = h.calc_checksum_ipv6_raw(src, dst, &self.payload).unwrap();
                    h.to_bytes().to_vec()
                }
                Proto::Udp => {
                    let mut h = UdpHeader {
                        source_port: self.src.1,
                        destination_port: self.dst.1,
                        length: (UdpHeader::LEN + self.payload.len()) as u16,
                        checksum: 0,
                    };
                    h.checksum = h.calc_checksum_ipv6_raw(src, dst, &self.payload).unwrap();
                    h.to_bytes().to_vec()
                }
            };
            upper.extend_from_slice(&self.payload);
            let last = u8::from(self.proto.protocol());
            ipv6(self.src.0, self.dst.0, &self.exts, last, &upper)
        }
    }

    /// An ICMPv6 error from `src` to `dst` behind `exts`, quoting `quote`, its checksum
    /// computed by etherparse; and the ICMPv6 header's offset.
    fn icmp_error(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        exts: &[Ext],
        icmp_type: Icmpv6Type,
        quote: &[u8],
    ) -> (Vec<u8>, usize) {
        let header =
            Icmpv6Header::with_checksum(icmp_type, src.octets(), dst.octets(), quote).unwrap();
        let mut message = header.to_bytes().to_vec();
        message.extend_from_slice(quote);
        let offset = ipv6::HEADER_LEN + chain(exts, 0).1.len();
        (ipv6(src, dst, exts, 58, &message), offset)
    }

    /// `fold(pseudo-header + segment)` of the TCP/UDP/ICMPv6 segment at `l4_offset`: 0xffff
    /// exactly when its checksum is right, and unchanged by a translation that keeps a wrong
    /// checksum wrong by the same amount.
    fn residual(ip: &[u8], l4_offset: usize, next_header: u8) -> u16 {
        let packet = Ipv6Packet::new_checked(ip).unwrap();
        let segment = &ip[l4_offset..packet.total_len()];
        let pseudo = checksum::pseudo_header_v6(
            packet.src_addr(),
            packet.dst_addr(),
            next_header,
            segment.len() as u32,
        );
        checksum::fold(pseudo + checksum::sum(segment))
    }

    fn tcp_syn(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16)) -> Spec {
        Spec {
            proto: Proto::Tcp,
            src,
            dst,
            syn: true,
            exts: Vec::new(),
            payload: Vec::new(),
        }
    }

    fn udp(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), payload: &[u8]) -> Spec {
        Spec {
            proto: Proto::Udp,
            src,
            dst,
            syn: false,
            exts: Vec::new(),
            payload: payload.to_vec(),
        }
    }

    /// Translates `spec`'s packet and checks it against the packet built with the new
    /// endpoint, and against the wire views' checksum verification.
    fn assert_translates(spec: &Spec, endpoint: Endpoint, addr: Ipv6Addr, port: u16) {
        let mut bytes = spec.build();
        let l4 = spec.l4_offset();
        let packet = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let upper = ipv6ext::upper_layer(&packet).unwrap();
        assert_eq!(ipv6::HEADER_LEN + upper.offset, l4);
        assert_eq!(upper.protocol, spec.proto.protocol());

        translate(&mut bytes, l4, spec.proto.protocol(), endpoint, addr, port);
        let expected = spec.with(endpoint, addr, port);
        assert_eq!(bytes, expected.build());
        let (src, dst) = (expected.src.0, expected.dst.0);
        match spec.proto {
            Proto::Tcp => assert!(TcpPacket::new_checked(&bytes[l4..])
                .unwrap()
                .verify_checksum(src, dst)),
            Proto::Udp => assert!(UdpPacket::new_checked(&bytes[l4..])
                .unwrap()
                .verify_checksum(src, dst)),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Golden packets
    // -----------------------------------------------------------------------------------------

    #[test]
    fn test_tcp_syn_dnat_then_snat() {
        // The client's SYN to the VIP goes to the real server...
        let syn = tcp_syn((CLIENT, 40000), (VIP, 80));
        assert_translates(&syn, Endpoint::Destination, REAL, 8080);
        // ... whose SYN-ACK leaves from the VIP.
        let mut syn_ack = tcp_syn((REAL, 8080), (CLIENT, 40000));
        syn_ack.payload = b"syn-ack".to_vec();
        assert_translates(&syn_ack, Endpoint::Source, VIP, 80);
    }

    /// UDP [2001:2::100]:40000 -> [2001:2:0:1::11]:5353 "hello", hop limit 64: the client's
    /// datagram to [2001:2::129]:53 after DNAT. Checksum 0xc9c0 computed by hand: pseudo-header
    /// and segment sum to 0x363f.
    static UDP_DNAT: [u8; 53] = [
        0x62, 0x81, 0x23, 0x45, // version 6, traffic class 0x28, flow label 0x12345
        0x00, 0x0d, 0x11, 0x40, // payload length 13, UDP, hop limit 64
        0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // src 2001:2::100
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, //
        0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, // dst 2001:2:0:1::11
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x11, //
        0x9c, 0x40, 0x14, 0xe9, 0x00, 0x0d, 0xc9, 0xc0, // 40000 -> 5353, length 13, checksum
        b'h', b'e', b'l', b'l', b'o',
    ];

    #[test]
    fn test_udp_dnat_then_snat() {
        let request = udp((CLIENT, 40000), (VIP, 53), b"hello");
        let mut bytes = request.build();
        translate(
            &mut bytes,
            40,
            IpProtocol::Udp,
            Endpoint::Destination,
            REAL,
            5353,
        );
        assert_eq!(bytes, UDP_DNAT);
        assert_translates(&request, Endpoint::Destination, REAL, 5353);

        let reply = udp((REAL, 5353), (CLIENT, 40000), b"world!");
        assert_translates(&reply, Endpoint::Source, VIP, 53);
    }

    /// The hand computation behind [`UDP_DNAT`]'s checksum.
    #[test]
    fn test_udp_golden_checksum_by_hand() {
        // Pseudo-header: addresses, length 13, next header 17; then the UDP header without its
        // checksum, and "hello" padded with a zero byte.
        let words: [u32; 16 + 4 + 3 + 3] = [
            0x2001, 0x0002, 0, 0, 0, 0, 0, 0x0100, // src
            0x2001, 0x0002, 0, 0x0001, 0, 0, 0, 0x0011, // dst
            0, 13, 0, 17, // length, zeros, next header
            0x9c40, 0x14e9, 0x000d, // ports, length
            0x6865, 0x6c6c, 0x6f00, // "hello"
        ];
        let sum: u32 = words.iter().sum();
        assert_eq!(checksum::fold(sum), 0x363f);
        assert_eq!(!0x363fu16, 0xc9c0);
        assert_eq!(&UDP_DNAT[46..48], &[0xc9, 0xc0]);
    }

    #[test]
    fn test_extension_chain_dnat_then_snat() {
        let request = Spec {
            proto: Proto::Tcp,
            src: (CLIENT, 40000),
            dst: (VIP, 80),
            syn: false,
            exts: vec![Ext::HopByHop(PADN.to_vec()), Ext::DstOptions(PADN.to_vec())],
            payload: b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n".to_vec(),
        };
        assert_eq!(request.l4_offset(), 56);
        let bytes = request.build();
        assert_eq!(&bytes[6..7], &[HOP_BY_HOP]);
        assert_eq!(&bytes[40..42], &[DST_OPTIONS, 0]);
        assert_eq!(&bytes[48..50], &[6, 0]);
        assert_translates(&request, Endpoint::Destination, REAL, 8080);

        let mut reply = request.clone();
        reply.src = (REAL, 8080);
        reply.dst = (CLIENT, 40000);
        reply.payload = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        assert_translates(&reply, Endpoint::Source, VIP, 80);

        // And UDP behind a Routing header whose segments are done.
        let mut datagram = udp((CLIENT, 40000), (VIP, 53), b"query");
        datagram.exts = vec![
            Ext::HopByHop(PADN.to_vec()),
            Ext::Routing(vec![4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ];
        assert_eq!(datagram.l4_offset(), 64);
        assert_translates(&datagram, Endpoint::Destination, REAL, 5353);
    }

    #[test]
    fn test_udp_zero_checksum_stays_zero() {
        let mut bytes = udp((CLIENT, 40000), (VIP, 53), b"hello").build();
        bytes[46..48].fill(0);
        translate(
            &mut bytes,
            40,
            IpProtocol::Udp,
            Endpoint::Destination,
            REAL,
            5353,
        );
        let udp = UdpPacket::new_checked(&bytes[40..]).unwrap();
        assert_eq!((udp.dst_port(), udp.checksum()), (5353, 0));
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]).unwrap().dst_addr(),
            REAL
        );
        // Invalid over IPv6, as it arrived.
        assert!(!udp.verify_checksum(CLIENT, REAL));
    }

    #[test]
    fn test_translate_icmpv6() {
        // An echo request: the address changes, the checksum follows, the port is ignored.
        let echo = etherparse::IcmpEchoHeader { id: 7, seq: 1 };
        let (mut bytes, l4) = icmp_error(CLIENT, VIP, &[], Icmpv6Type::EchoRequest(echo), b"ping");
        translate(
            &mut bytes,
            l4,
            IpProtocol::Icmpv6,
            Endpoint::Destination,
            REAL,
            9,
        );
        let (expected, _) = icmp_error(CLIENT, REAL, &[], Icmpv6Type::EchoRequest(echo), b"ping");
        assert_eq!(bytes, expected);
        // Other protocols: the address only.
        let mut bytes = udp((CLIENT, 40000), (VIP, 53), b"x").build();
        let original = bytes.clone();
        translate(
            &mut bytes,
            40,
            IpProtocol::Unknown(132),
            Endpoint::Source,
            REAL,
            9,
        );
        assert_eq!(&bytes[8..24], &REAL.octets());
        assert_eq!(&bytes[..8], &original[..8]);
        assert_eq!(&bytes[24..], &original[24..]);
    }

    #[test]
    fn test_decrement_hop_limit() {
        let mut bytes = tcp_syn((CLIENT, 40000), (VIP, 80)).build();
        let original = bytes.clone();
        decrement_hop_limit(&mut bytes);
        assert_eq!(bytes[7], 63);
        assert_eq!(&bytes[..7], &original[..7]);
        assert_eq!(&bytes[8..], &original[8..]);
        bytes[7] = 0;
        decrement_hop_limit(&mut bytes);
        assert_eq!(bytes[7], 0);
    }

    /// `spec`'s packet with its TCP/UDP checksum replaced by the folded pseudo-header sum, as
    /// a sender with checksum offload leaves it.
    fn partial(spec: &Spec) -> Vec<u8> {
        let mut bytes = spec.build();
        let l4 = spec.l4_offset();
        let len = (bytes.len() - l4) as u32;
        let next_header = u8::from(spec.proto.protocol());
        let pseudo = checksum::pseudo_header_v6(spec.src.0, spec.dst.0, next_header, len);
        let at = l4 + if spec.proto == Proto::Tcp { 16 } else { 6 };
        bytes[at..at + 2].copy_from_slice(&checksum::fold(pseudo).to_be_bytes());
        bytes
    }

    #[test]
    fn test_partial_checksum() {
        let mut tcp = tcp_syn((REAL, 8080), (CLIENT, 40000));
        tcp.exts = vec![Ext::DstOptions(PADN.to_vec())];
        tcp.payload = b"data".to_vec();
        let udp = udp((REAL, 5353), (CLIENT, 40000), b"answer");
        for spec in [tcp, udp] {
            let (l4, protocol) = (spec.l4_offset(), spec.proto.protocol());
            let full = spec.build();
            assert!(!has_partial_checksum(&full, l4, protocol));
            let mut bytes = partial(&spec);
            assert!(has_partial_checksum(&bytes, l4, protocol));
            // Translated (which folds the port's change into the partial sum too), then
            // completed.
            translate(&mut bytes, l4, protocol, Endpoint::Source, VIP, 80);
            let expected = spec.with(Endpoint::Source, VIP, 80);
            complete_checksum(&mut bytes, l4, protocol);
            assert_eq!(bytes, expected.build());
            assert!(!has_partial_checksum(&bytes, l4, protocol));
            // Ethernet padding is not part of the segment.
            let mut padded = partial(&spec);
            padded.extend_from_slice(&[0xee; 6]);
            assert!(has_partial_checksum(&padded, l4, protocol));
            complete_checksum(&mut padded, l4, protocol);
            assert_eq!(&padded[..full.len()], &full[..]);
            assert_eq!(&padded[full.len()..], &[0xee; 6]);
        }
        assert!(!has_partial_checksum(
            &full_icmp_echo(),
            40,
            IpProtocol::Icmpv6
        ));
    }

    fn full_icmp_echo() -> Vec<u8> {
        let echo = etherparse::IcmpEchoHeader { id: 7, seq: 1 };
        icmp_error(CLIENT, VIP, &[], Icmpv6Type::EchoRequest(echo), b"ping").0
    }

    // -----------------------------------------------------------------------------------------
    // ICMPv6 errors
    // -----------------------------------------------------------------------------------------

    /// Translates the error quoting `spec`'s packet (cut at `quote_len`) from `from` to `to`,
    /// and checks it against the error built from scratch about the packet translated the
    /// other way.
    #[allow(clippy::too_many_arguments)]
    fn assert_translates_error(
        spec: &Spec,
        quote_len: usize,
        (from, to): (Ipv6Addr, Ipv6Addr),
        exts: &[Ext],
        icmp_type: Icmpv6Type,
        outer: Endpoint,
        addr: Ipv6Addr,
        port: u16,
    ) -> Vec<u8> {
        let packet = spec.build();
        let (mut bytes, l4) = icmp_error(from, to, exts, icmp_type, &packet[..quote_len]);
        assert!(translate_icmp_error(&mut bytes, l4, outer, addr, port));

        let mut quote = packet.clone();
        let inner = outer.opposite();
        translate(
            &mut quote,
            spec.l4_offset(),
            spec.proto.protocol(),
            inner,
            addr,
            port,
        );
        quote.truncate(quote_len);
        // Half a TCP checksum is quoted as it was: only a whole one is updated.
        let checksum_at = spec.l4_offset() + 16;
        if spec.proto == Proto::Tcp && quote_len == checksum_at + 1 {
            quote[checksum_at] = packet[checksum_at];
        }
        let (from, to) = outer.pick((addr, to), (from, addr));
        let (expected, _) = icmp_error(from, to, exts, icmp_type, &quote);
        assert_eq!(bytes, expected);
        let message = Icmpv6Packet::new_checked(&bytes[l4..]).unwrap();
        assert!(message.verify_checksum(from, to));
        // The quoted endpoint, as expected.
        let quoted = Ipv6Packet::new_unchecked(message.data());
        let quoted_addr = inner.pick(quoted.src_addr(), quoted.dst_addr());
        let at = icmpv6::HEADER_LEN + spec.l4_offset() + inner.pick(0, 2);
        let quoted_port = u16::from_be_bytes([bytes[l4 + at], bytes[l4 + at + 1]]);
        assert_eq!((quoted_addr, quoted_port), (addr, port));
        bytes
    }

    #[test]
    fn test_icmp_error_from_external() {
        // A router on the client's side cannot forward one of our replies, VIP:80 -> client
        // (a full-size segment behind a Destination Options header), and tells the VIP: the
        // real server gets it, about its own reply from REAL:8080.
        let mut reply = tcp_syn((VIP, 80), (CLIENT, 40000));
        reply.syn = false;
        reply.exts = vec![Ext::DstOptions(PADN.to_vec())];
        reply.payload = vec![0x5a; 1400];
        let quote_len = MAX_QUOTE_LEN;
        let mtu = Icmpv6Type::PacketTooBig { mtu: 1400 };
        let bytes = assert_translates_error(
            &reply,
            quote_len,
            (ROUTER, VIP),
            &[],
            mtu,
            Endpoint::Destination,
            REAL,
            8080,
        );
        assert_eq!(bytes.len(), MIN_MTU);
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..]).unwrap().dst_addr(),
            REAL
        );
        assert_eq!(&bytes[48 + 8..48 + 24], &REAL.octets());
    }

    #[test]
    fn test_icmp_error_from_internal() {
        // The real server has no socket for the client's datagram CLIENT:40000 -> REAL:5353,
        // whole in the quote: the client gets the error from the VIP about VIP:53. The error
        // carries a Hop-by-Hop header itself.
        let request = udp((CLIENT, 40000), (REAL, 5353), b"query");
        let quote_len = request.build().len();
        let unreachable = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
        let bytes = assert_translates_error(
            &request,
            quote_len,
            (REAL, CLIENT),
            &[Ext::HopByHop(PADN.to_vec())],
            unreachable,
            Endpoint::Source,
            VIP,
            53,
        );
        // The whole quoted datagram checks out with its quoted addresses.
        let quote = &bytes[48 + 8..];
        let quoted = Ipv6Packet::new_checked(quote).unwrap();
        assert_eq!(quoted.dst_addr(), VIP);
        let udp = UdpPacket::new_checked(quoted.payload()).unwrap();
        assert_eq!(udp.dst_port(), 53);
        assert!(udp.verify_checksum(CLIENT, VIP));
    }

    #[test]
    fn test_icmp_error_short_tcp_quote() {
        // 8 bytes of TCP behind a chain: ports only, no checksum to update; then 17 and 18.
        let mut request = tcp_syn((CLIENT, 40000), (REAL, 8080));
        request.exts = vec![
            Ext::HopByHop(PADN.to_vec()),
            Ext::Routing(vec![4, 0, 0, 0, 0, 0]),
            Ext::DstOptions(PADN.to_vec()),
        ];
        let l4 = request.l4_offset();
        for quoted_l4 in [8, 17, 18, 19] {
            let exceeded =
                Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded);
            assert_translates_error(
                &request,
                l4 + quoted_l4,
                (ROUTER, CLIENT),
                &[],
                exceeded,
                Endpoint::Source,
                VIP,
                80,
            );
        }
    }

    #[test]
    fn test_icmp_error_refused() {
        let request = udp((CLIENT, 40000), (REAL, 5353), b"query");
        let packet = request.build();
        let unreachable = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
        let refused = |mut bytes: Vec<u8>, l4: usize| {
            let original = bytes.clone();
            assert!(!translate_icmp_error(
                &mut bytes,
                l4,
                Endpoint::Source,
                VIP,
                53
            ));
            assert_eq!(bytes, original);
        };
        // Quotes too short: no IPv6 header, fewer than 8 bytes of UDP.
        for len in [0, 39, 40, 47] {
            let (bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &packet[..len]);
            refused(bytes, l4);
        }
        // An informational message.
        refused(full_icmp_echo(), 40);
        // A wrong offset.
        let (bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &packet);
        refused(bytes.clone(), l4 + 8);
        refused(bytes.clone(), bytes.len());
        refused(bytes, usize::MAX);
        // A quote of ICMPv6.
        let (bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &full_icmp_echo());
        refused(bytes, l4);
        // A quote cut inside its extension headers.
        let mut chained = request.clone();
        chained.exts = vec![Ext::DstOptions(vec![0; 14])];
        let (bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &chained.build()[..50]);
        refused(bytes, l4);
        // A quoted non-first fragment: its "ports" are data.
        let mut fragment = packet.clone();
        fragment[6] = FRAGMENT;
        let header = [17, 0, 0x05, 0x00, 0, 0, 0, 1]; // offset 160, M clear
        fragment.splice(40..40, header);
        let (bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &fragment);
        refused(bytes, l4);
        // A quoted first fragment is translated.
        let mut fragment = packet.clone();
        fragment[6] = FRAGMENT;
        fragment.splice(40..40, [17, 0, 0x00, 0x01, 0, 0, 0, 1]);
        let (mut bytes, l4) = icmp_error(REAL, CLIENT, &[], unreachable, &fragment);
        assert!(translate_icmp_error(
            &mut bytes,
            l4,
            Endpoint::Source,
            VIP,
            53
        ));
        assert!(Icmpv6Packet::new_checked(&bytes[l4..])
            .unwrap()
            .verify_checksum(VIP, CLIENT));
    }

    // -----------------------------------------------------------------------------------------
    // Packet too big
    // -----------------------------------------------------------------------------------------

    /// Checks a Packet Too Big about `packet` with etherparse, and returns its quote.
    fn assert_packet_too_big<'a>(error: &'a [u8], packet: &[u8], mtu: u32) -> &'a [u8] {
        assert!(error.len() <= MIN_MTU);
        let (ip, rest) = Ipv6Header::from_slice(error).unwrap();
        assert_eq!(ip.source_addr(), VIP);
        assert_eq!(&ip.destination, &packet[8..24]);
        assert_eq!(ip.next_header, IpNumber::IPV6_ICMP);
        assert_eq!(ip.hop_limit, ERROR_HOP_LIMIT);
        assert_eq!((ip.traffic_class, ip.flow_label.value()), (0, 0));
        assert_eq!(
            usize::from(ip.payload_length),
            error.len() - ipv6::HEADER_LEN
        );
        let (icmp, quote) = Icmpv6Header::from_slice(rest).unwrap();
        assert_eq!(icmp.icmp_type, Icmpv6Type::PacketTooBig { mtu });
        let expected =
            Icmpv6Header::with_checksum(icmp.icmp_type, ip.source, ip.destination, quote).unwrap();
        assert_eq!(icmp.checksum, expected.checksum);
        assert!(Icmpv6Packet::new_checked(rest)
            .unwrap()
            .verify_checksum(ip.source_addr(), ip.destination_addr()));
        assert_eq!(quote, &packet[..quote.len()]);
        quote
    }

    #[test]
    fn test_packet_too_big() {
        // A 1500-byte segment from the client that does not fit a 1400-byte egress.
        let mut spec = tcp_syn((CLIENT, 40000), (VIP, 80));
        spec.syn = false;
        spec.payload = vec![0xa5; 1500 - 60];
        let packet = spec.build();
        assert_eq!(packet.len(), 1500);
        let mut out = [0u8; 2048];
        let len = packet_too_big(&packet, 1400, VIP, &mut out).unwrap();
        assert_eq!(len, MIN_MTU);
        assert_eq!(packet_too_big_len(&packet), Some(len));
        let quote = assert_packet_too_big(&out[..len], &packet, 1400);
        assert_eq!(quote.len(), MAX_QUOTE_LEN);
        assert_eq!(&out[..8], &[0x60, 0, 0, 0, 0x04, 0xd8, 58, 64]);
        assert_eq!(&out[40..48], &[2, 0, out[42], out[43], 0, 0, 0x05, 0x78]);

        // In the frame's place: the same bytes.
        let mut frame = [0u8; 2048];
        frame[..packet.len()].copy_from_slice(&packet);
        assert_eq!(
            packet_too_big_in_place(&mut frame, packet.len(), 1400, VIP),
            Some(len)
        );
        assert_eq!(&frame[..len], &out[..len]);

        // A short packet is quoted whole, without its Ethernet padding.
        let small = udp((CLIENT, 40000), (VIP, 53), b"x").build();
        let mut padded = small.clone();
        padded.resize(60, 0);
        let len = packet_too_big(&padded, 1280, VIP, &mut out).unwrap();
        assert_eq!(len, ERROR_HEADERS_LEN + small.len());
        assert_eq!(assert_packet_too_big(&out[..len], &small, 1280), &small[..]);
        let mut frame = padded.clone();
        frame.resize(200, 0xff);
        assert_eq!(
            packet_too_big_in_place(&mut frame, padded.len(), 1280, VIP),
            Some(len)
        );
        assert_eq!(&frame[..len], &out[..len]);
    }

    #[test]
    fn test_packet_too_big_refused() {
        let mut out = [0u8; 2048];
        let packet = udp((CLIENT, 40000), (VIP, 53), b"x").build();
        // No room.
        let need = ERROR_HEADERS_LEN + packet.len();
        assert_eq!(
            packet_too_big(&packet, 1280, VIP, &mut out[..need - 1]),
            None
        );
        assert_eq!(
            packet_too_big(&packet, 1280, VIP, &mut out[..need]),
            Some(need)
        );
        let mut frame = packet.clone();
        frame.resize(need - 1, 0);
        let original = frame.clone();
        assert_eq!(
            packet_too_big_in_place(&mut frame, packet.len(), 1280, VIP),
            None
        );
        assert_eq!(frame, original);
        assert_eq!(packet_too_big_in_place(&mut frame, need, 1280, VIP), None);
        // Shorter than an IPv6 header.
        assert_eq!(packet_too_big(&packet[..39], 1280, VIP, &mut out), None);
        // Sources that do not identify one node.
        for source in [Ipv6Addr::UNSPECIFIED, "ff02::1".parse().unwrap()] {
            let mut bytes = packet.clone();
            bytes[8..24].copy_from_slice(&source.octets());
            assert_eq!(packet_too_big(&bytes, 1280, VIP, &mut out), None);
        }
        // An ICMPv6 error, also behind extension headers; an echo request is answered.
        let unreachable = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
        let exts = [Ext::HopByHop(PADN.to_vec()), Ext::DstOptions(PADN.to_vec())];
        for exts in [&[][..], &exts[..]] {
            let (error, _) = icmp_error(CLIENT, VIP, exts, unreachable, &packet);
            assert_eq!(packet_too_big(&error, 1280, VIP, &mut out), None);
            assert_eq!(packet_too_big_len(&error), None);
        }
        let echo = full_icmp_echo();
        let len = packet_too_big(&echo, 1280, VIP, &mut out).unwrap();
        assert_packet_too_big(&out[..len], &echo, 1280);
        // A chain the walk cannot follow is no ICMPv6 error: answered.
        let mut broken = packet.clone();
        broken[6] = DST_OPTIONS;
        broken[41] = 0xff;
        assert!(packet_too_big(&broken, 1280, VIP, &mut out).is_some());
    }

    // -----------------------------------------------------------------------------------------
    // Properties
    // -----------------------------------------------------------------------------------------

    /// Addresses of 2001:2::/48.
    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        any::<[u16; 5]>().prop_map(|[a, b, c, d, e]| Ipv6Addr::new(0x2001, 2, 0, a, b, c, d, e))
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        prop_oneof![Just(Endpoint::Source), Just(Endpoint::Destination)]
    }

    /// Raw bytes of an options or routing header: 6 + 8k.
    fn raw_ext() -> impl Strategy<Value = Vec<u8>> {
        (0usize..3).prop_flat_map(|k| proptest::collection::vec(any::<u8>(), 6 + 8 * k))
    }

    /// A chain: an optional Hop-by-Hop header first, then Destination Options and Routing
    /// headers (segments left 0).
    fn exts() -> impl Strategy<Value = Vec<Ext>> {
        let rest = prop_oneof![
            raw_ext().prop_map(Ext::DstOptions),
            raw_ext().prop_map(|mut raw| {
                raw[1] = 0;
                Ext::Routing(raw)
            }),
        ];
        (
            proptest::option::of(raw_ext()),
            proptest::collection::vec(rest, 0..4),
        )
            .prop_map(|(hop_by_hop, rest)| {
                hop_by_hop
                    .map(Ext::HopByHop)
                    .into_iter()
                    .chain(rest)
                    .collect()
            })
    }

    prop_compose! {
        fn spec(max_payload: usize)(
            tcp in any::<bool>(),
            syn in any::<bool>(),
            src in addr(), sport in any::<u16>(),
            dst in addr(), dport in any::<u16>(),
            exts in exts(),
            payload in proptest::collection::vec(any::<u8>(), 0..max_payload),
        ) -> Spec {
            Spec {
                proto: if tcp { Proto::Tcp } else { Proto::Udp },
                src: (src, sport),
                dst: (dst, dport),
                syn,
                exts,
                payload,
            }
        }
    }

    fn error_type() -> impl Strategy<Value = Icmpv6Type> {
        (1u8..=4, any::<u8>(), any::<[u8; 4]>()).prop_map(|(type_u8, code_u8, bytes5to8)| {
            Icmpv6Type::Unknown {
                type_u8,
                code_u8,
                bytes5to8,
            }
        })
    }

    /// Adds `delta` to a checksum field, ones'-complement.
    fn corrupt(bytes: &mut [u8], at: usize, delta: u16) {
        let old = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
        let new = checksum::fold(u32::from(old) + u32::from(delta));
        bytes[at..at + 2].copy_from_slice(&new.to_be_bytes());
    }

    proptest! {
        /// The incremental update gives exactly the packet built from scratch with the new
        /// endpoint (checksum representation included), and translating back gives the
        /// original.
        #[test]
        fn prop_translate_matches_rebuild(
            spec in spec(300), endpoint in endpoint(), addr in addr(), port in any::<u16>(),
        ) {
            let original = spec.build();
            let (l4, protocol) = (spec.l4_offset(), spec.proto.protocol());
            let mut bytes = original.clone();
            translate(&mut bytes, l4, protocol, endpoint, addr, port);
            prop_assert_eq!(&bytes, &spec.with(endpoint, addr, port).build());
            let (old_addr, old_port) = spec.endpoint(endpoint);
            translate(&mut bytes, l4, protocol, endpoint, old_addr, old_port);
            prop_assert_eq!(&bytes, &original);
        }

        /// A checksum that was wrong stays wrong by the same amount.
        #[test]
        fn prop_wrong_checksum_stays_wrong(
            spec in spec(300), endpoint in endpoint(), addr in addr(), port in any::<u16>(),
            delta in 1u16..0xffff,
        ) {
            let (l4, protocol) = (spec.l4_offset(), spec.proto.protocol());
            let next_header = u8::from(protocol);
            let mut bytes = spec.build();
            let at = l4 + if spec.proto == Proto::Tcp { 16 } else { 6 };
            corrupt(&mut bytes, at, delta);
            // A UDP 0 is "no checksum", not a wrong one.
            prop_assume!(spec.proto == Proto::Tcp || bytes[at..at + 2] != [0, 0]);
            let before = residual(&bytes, l4, next_header);
            prop_assert_ne!(before, 0xffff);
            translate(&mut bytes, l4, protocol, endpoint, addr, port);
            prop_assert_eq!(residual(&bytes, l4, next_header), before);
        }

        /// A partial checksum stays partial through a translation and is then completed to
        /// the full one.
        #[test]
        fn prop_partial_checksum(
            spec in spec(300), endpoint in endpoint(), addr in addr(), port in any::<u16>(),
        ) {
            let (l4, protocol) = (spec.l4_offset(), spec.proto.protocol());
            let mut bytes = partial(&spec);
            prop_assert!(has_partial_checksum(&bytes, l4, protocol));
            // The port's change goes into the partial sum too: no longer the pseudo-header's,
            // and recomputed in full anyway (as `process` does: partial is decided before).
            translate(&mut bytes, l4, protocol, endpoint, addr, port);
            let expected = spec.with(endpoint, addr, port);
            complete_checksum(&mut bytes, l4, protocol);
            prop_assert_eq!(bytes, expected.build());
        }

        /// An error quoting a random packet cut anywhere after 8 bytes of its TCP/UDP header,
        /// behind a random chain of its own: translated, it is exactly the error built from
        /// scratch about the packet translated the other way, and its checksum verifies by
        /// full recomputation.
        #[test]
        fn prop_translate_icmp_error(
            spec in spec(1300), cut in any::<prop::sample::Index>(),
            router in addr(), outer_exts in exts(), icmp_type in error_type(),
            outer in endpoint(), addr in addr(), port in any::<u16>(),
        ) {
            let len = spec.build().len();
            let min = spec.l4_offset() + QUOTED_L4_LEN;
            let max = len.min(MAX_QUOTE_LEN);
            prop_assume!(min <= max);
            let quote_len = min + cut.index(max - min + 1);
            let bytes = assert_translates_error(
                &spec,
                quote_len,
                (router, spec.src.0),
                &outer_exts,
                icmp_type,
                outer,
                addr,
                port,
            );
            // A whole quote: its TCP/UDP checksum checks out with the quoted addresses.
            if quote_len == len {
                let l4 = ipv6::HEADER_LEN + chain(&outer_exts, 0).1.len();
                let quote = &bytes[l4 + icmpv6::HEADER_LEN..];
                let quoted = Ipv6Packet::new_checked(quote).unwrap();
                let (src, dst) = (quoted.src_addr(), quoted.dst_addr());
                let segment = &quote[spec.l4_offset()..];
                match spec.proto {
                    Proto::Tcp => prop_assert!(
                        TcpPacket::new_checked(segment).unwrap().verify_checksum(src, dst)
                    ),
                    Proto::Udp => prop_assert!(
                        UdpPacket::new_checked(segment).unwrap().verify_checksum(src, dst)
                    ),
                }
            }
        }

        /// A wrong ICMPv6 checksum stays wrong by the same amount.
        #[test]
        fn prop_icmp_error_wrong_checksum_stays_wrong(
            spec in spec(100), router in addr(), outer in endpoint(), addr in addr(),
            port in any::<u16>(), delta in 1u16..0xffff,
        ) {
            let packet = spec.build();
            let unreachable = Icmpv6Type::DestinationUnreachable(DestUnreachableCode::Port);
            let (mut bytes, l4) = icmp_error(router, spec.src.0, &[], unreachable, &packet);
            corrupt(&mut bytes, l4 + 2, delta);
            let before = residual(&bytes, l4, 58);
            prop_assert_ne!(before, 0xffff);
            prop_assert!(translate_icmp_error(&mut bytes, l4, outer, addr, port));
            prop_assert_eq!(residual(&bytes, l4, 58), before);
        }

        /// Packet Too Big about any TCP/UDP packet: a valid ICMPv6 message of at most 1280
        /// bytes whose quote is a prefix of the packet, the same in place.
        #[test]
        fn prop_packet_too_big(
            spec in spec(1600), mtu in 1280u32..9000, padding in 0usize..8,
        ) {
            let packet = spec.build();
            let mut padded = packet.clone();
            padded.resize(packet.len() + padding, 0);
            let mut out = [0u8; 1400];
            let len = packet_too_big(&padded, mtu, VIP, &mut out).unwrap();
            prop_assert_eq!(len, ERROR_HEADERS_LEN + packet.len().min(MAX_QUOTE_LEN));
            assert_packet_too_big(&out[..len], &packet, mtu);
            let mut frame = padded.clone();
            frame.resize(frame.len().max(len), 0xff);
            let in_place = packet_too_big_in_place(&mut frame, padded.len(), mtu, VIP);
            prop_assert_eq!(in_place, Some(len));
            prop_assert_eq!(&frame[..len], &out[..len]);
        }

        /// Nothing panics whatever the bytes, and a refused error is left as it was.
        #[test]
        fn prop_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..200), l4 in 0usize..220,
        ) {
            let mut bytes = bytes;
            if bytes.len() > 6 {
                bytes[0] = 0x60;
            }
            let original = bytes.clone();
            if !translate_icmp_error(&mut bytes, l4, Endpoint::Source, VIP, 80) {
                prop_assert_eq!(&bytes, &original);
            }
            let mut out = [0u8; 300];
            let _ = packet_too_big(&bytes, 1280, VIP, &mut out);
            let len = bytes.len();
            let _ = packet_too_big_in_place(&mut bytes, len, 1280, VIP);
        }
    }
}
