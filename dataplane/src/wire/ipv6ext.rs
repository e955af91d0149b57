//! IPv6 extension headers (RFC 8200 section 4): the walk from the fixed header to the
//! upper-layer header.
//!
//! Contract: [`walk`] never panics, allocates nothing and reads only the bytes it is given:
//! every extension header's length is checked against them before the header is skipped. It
//! walks Hop-by-Hop Options (allowed only right after the fixed header, RFC 8200 section 4.1),
//! Routing, Fragment and Destination Options headers, at most [`MAX_EXTENSION_HEADERS`] of them,
//! and stops at the first other next-header value, which it reports as the upper-layer
//! protocol: TCP, UDP or ICMPv6, but also [`AH`], [`ESP`], [`NO_NEXT_HEADER`], Mobility or
//! anything unknown, which callers treat as unsupported. It also stops right after a non-first
//! fragment's Fragment header: what follows is the middle of the original packet, not a header.
//!
//! The walk reports facts and leaves policy to the caller: whether a Fragment header was seen
//! (to drop and count fragments) and whether a Routing header still has segments left (the
//! destination address is then not the final one; the caller does not translate such packets).
//! Option contents (Hop-by-Hop, Destination Options) are not interpreted.
//!
//! [`upper_layer`] walks a checked [`Ipv6Packet`]'s payload; [`walk`] any bytes, such as the
//! part of a packet quoted by an ICMPv6 error, whose payload length exceeds the quote.

use core::fmt;

use super::{read_u16, read_u32, Field, IpProtocol, Ipv6Packet};

/// Next header: Hop-by-Hop Options.
pub const HOP_BY_HOP: u8 = 0;
/// Next header: Routing.
pub const ROUTING: u8 = 43;
/// Next header: Fragment.
pub const FRAGMENT: u8 = 44;
/// Next header: Encapsulating Security Payload (RFC 4303); not walked.
pub const ESP: u8 = 50;
/// Next header: Authentication Header (RFC 4302); not walked.
pub const AH: u8 = 51;
/// Next header: No Next Header (RFC 8200 section 4.7); not walked.
pub const NO_NEXT_HEADER: u8 = 59;
/// Next header: Destination Options.
pub const DST_OPTIONS: u8 = 60;

/// Most extension headers [`walk`] goes through before giving up with
/// [`ExtError::TooManyHeaders`]. A legitimate chain holds at most five of the headers walked
/// here (RFC 8200 section 4.1: each once, Destination Options twice); the bound keeps the
/// per-packet work small whatever an attacker sends.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// Length of a Fragment header.
const FRAGMENT_LEN: usize = 8;

mod field {
    use super::Field;

    /// Every walked header starts with the next header; all but Fragment follow it with their
    /// length in 8-octet units, not counting the first 8 octets.
    pub const NXT_HDR: usize = 0;
    pub const HDR_EXT_LEN: usize = 1;
    /// Routing header.
    pub const SEGMENTS_LEFT: usize = 3;
    /// Fragment header.
    pub const FRAG_OFF_M: Field = 2..4;
    pub const FRAG_IDENT: Field = 4..8;
}

/// The Fragment header's M flag and offset mask (the offset counts 8-byte units, in the high
/// 13 bits).
const FLAG_M: u16 = 0x0001;
const OFFSET_MASK: u16 = 0xfff8;

/// Where the upper-layer header is, and what the walk saw on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpperLayer {
    /// The next-header value the walk stopped at. For a non-first fragment (see
    /// [`fragment`](Self::fragment)), the Fragment header's next header: the first header of
    /// the original packet's fragmentable part, which is not in this packet.
    pub protocol: IpProtocol,
    /// Offset of the upper-layer header **within the walked bytes** (the IPv6 payload): the
    /// length of the extension headers. At most the length of those bytes, so
    /// `&payload[offset..]` is the upper-layer segment and `payload.len() - offset` its length
    /// for the pseudo-header.
    pub offset: usize,
    /// The Fragment header, if the chain has one.
    pub fragment: Option<Fragment>,
    /// Whether a Routing header has a non-zero Segments Left: the destination address is not
    /// the final destination (RFC 8200 section 4.4).
    pub routing_pending: bool,
    /// Number of extension headers walked, at most [`MAX_EXTENSION_HEADERS`].
    pub ext_headers: usize,
}

/// The fields of a Fragment header (RFC 8200 section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Offset of this fragment's data in the original packet's fragmentable part, in bytes (a
    /// multiple of 8).
    pub offset: u16,
    /// The M flag: more fragments follow.
    pub more: bool,
    /// Identification.
    pub ident: u32,
}

impl Fragment {
    /// Whether the packet is part of a larger one: M set or a non-zero offset. A Fragment
    /// header with both clear is an atomic fragment (RFC 6946), a whole packet.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.more || self.offset != 0
    }

    /// Whether this is the first fragment (offset 0), the one that carries the upper-layer
    /// header.
    #[inline]
    pub fn is_first(&self) -> bool {
        self.offset == 0
    }
}

/// Why a walk failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtError {
    /// An extension header runs past the walked bytes (or its length byte is missing).
    Truncated,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers.
    TooManyHeaders,
    /// A Hop-by-Hop Options header anywhere but right after the fixed header (RFC 8200
    /// section 4.1: it "is restricted to appear immediately after an IPv6 header only").
    HopByHopNotFirst,
    /// A second Fragment header in one chain: which one would describe the packet is
    /// ambiguous.
    DuplicateFragment,
}

impl fmt::Display for ExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExtError::Truncated => "truncated IPv6 extension header",
            ExtError::TooManyHeaders => "too many IPv6 extension headers",
            ExtError::HopByHopNotFirst => "IPv6 hop-by-hop header not first",
            ExtError::DuplicateFragment => "two IPv6 fragment headers",
        })
    }
}

impl std::error::Error for ExtError {}

/// Walks the extension headers of a packet that [`Ipv6Packet::new_checked`] accepted, within
/// its payload (padding is never read); [`UpperLayer::offset`] is relative to
/// [`Ipv6Packet::payload`]. On an unchecked packet, `payload()` itself may panic.
#[inline]
pub fn upper_layer<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<UpperLayer, ExtError> {
    walk(packet.next_header().into(), packet.payload())
}

/// Walks the extension headers at the start of `data`, the bytes after an IPv6 fixed header
/// whose next header is `next_header`.
pub fn walk(next_header: u8, data: &[u8]) -> Result<UpperLayer, ExtError> {
    let mut next = next_header;
    let mut offset = 0;
    let mut fragment = None;
    let mut routing_pending = false;
    let mut count = 0;
    loop {
        match next {
            HOP_BY_HOP if count > 0 => return Err(ExtError::HopByHopNotFirst),
            HOP_BY_HOP | ROUTING | FRAGMENT | DST_OPTIONS => {}
            _ => break,
        }
        if count == MAX_EXTENSION_HEADERS {
            return Err(ExtError::TooManyHeaders);
        }
        let len = if next == FRAGMENT {
            FRAGMENT_LEN
        } else {
            let units = data
                .get(offset + field::HDR_EXT_LEN)
                .ok_or(ExtError::Truncated)?;
            (usize::from(*units) + 1) * 8
        };
        // `offset <= data.len()` and `len <= 2048`: no overflow.
        let header = data.get(offset..offset + len).ok_or(ExtError::Truncated)?;
        count += 1;
        offset += len;
        // Every walked header is at least 8 bytes long: the fixed indexes below are in bounds.
        let this = next;
        next = header[field::NXT_HDR];
        match this {
            ROUTING => routing_pending |= header[field::SEGMENTS_LEFT] != 0,
            FRAGMENT => {
                if fragment.is_some() {
                    return Err(ExtError::DuplicateFragment);
                }
                let off_m = read_u16(header, field::FRAG_OFF_M);
                let frag = Fragment {
                    offset: off_m & OFFSET_MASK,
                    more: off_m & FLAG_M != 0,
                    ident: read_u32(header, field::FRAG_IDENT),
                };
                fragment = Some(frag);
                if !frag.is_first() {
                    break;
                }
            }
            _ => {}
        }
    }
    Ok(UpperLayer {
        protocol: next.into(),
        offset,
        fragment,
        routing_pending,
        ext_headers: count,
    })
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::{ipv6, Error, TcpPacket, UdpPacket};
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    /// An 8-byte Hop-by-Hop, Destination Options or Routing header with `next` and `fill`
    /// after the length byte (Routing: type, segments left...).
    fn ext8(next: u8, fill: [u8; 6]) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[0] = next;
        h[2..].copy_from_slice(&fill);
        h
    }

    /// Padding option PadN covering the 6 bytes after next header and length.
    const PADN: [u8; 6] = [1, 4, 0, 0, 0, 0];

    fn frag(next: u8, offset: u16, more: bool, ident: u32) -> [u8; 8] {
        let mut h = [0u8; 8];
        h[0] = next;
        h[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
        h[4..].copy_from_slice(&ident.to_be_bytes());
        h
    }

    /// 8 bytes of a TCP header (ports 49152 -> 80, seq).
    const TCP8: [u8; 8] = [0xc0, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67];

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn test_no_extension_header() {
        let upper = walk(6, &TCP8).unwrap();
        assert_eq!(
            upper,
            UpperLayer {
                protocol: IpProtocol::Tcp,
                offset: 0,
                fragment: None,
                routing_pending: false,
                ext_headers: 0,
            }
        );
        // Nothing is read when there is nothing to walk.
        assert_eq!(walk(17, &[]).unwrap().protocol, IpProtocol::Udp);
    }

    #[test]
    fn test_each_header() {
        // Routing: type 4 (segment routing), no segment left.
        for (first, fill) in [
            (HOP_BY_HOP, PADN),
            (DST_OPTIONS, PADN),
            (ROUTING, [4, 0, 0, 0, 0, 0]),
        ] {
            let data = concat(&[&ext8(17, fill), &TCP8]);
            let upper = walk(first, &data).unwrap();
            assert_eq!(upper.protocol, IpProtocol::Udp);
            assert_eq!((upper.offset, upper.ext_headers), (8, 1));
            assert!(upper.fragment.is_none() && !upper.routing_pending);
        }
        // Hdr Ext Len 1: 16 bytes.
        let mut long = [0u8; 16];
        long[0] = 58;
        long[1] = 1;
        let data = concat(&[&long, &TCP8]);
        let upper = walk(DST_OPTIONS, &data).unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Icmpv6, 16));
    }

    #[test]
    fn test_routing_segments_left() {
        // Type 4 (segment routing), segments left 0: the destination is the final one.
        let done = concat(&[&ext8(6, [4, 0, 0, 0, 0, 0]), &TCP8]);
        assert!(!walk(ROUTING, &done).unwrap().routing_pending);
        let pending = concat(&[&ext8(6, [4, 2, 0, 0, 0, 0]), &TCP8]);
        let upper = walk(ROUTING, &pending).unwrap();
        assert!(upper.routing_pending);
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Tcp, 8));
        // Any of several Routing headers.
        let two = concat(&[
            &ext8(ROUTING, [4, 1, 0, 0, 0, 0]),
            &ext8(6, [4, 0, 0, 0, 0, 0]),
            &TCP8,
        ]);
        assert!(walk(ROUTING, &two).unwrap().routing_pending);
    }

    #[test]
    fn test_first_fragment() {
        // Offset 0, M set: the walk goes on to the upper-layer header.
        let data = concat(&[
            &frag(DST_OPTIONS, 0, true, 0xdead_beef),
            &ext8(6, PADN),
            &TCP8,
        ]);
        let upper = walk(FRAGMENT, &data).unwrap();
        let fragment = upper.fragment.unwrap();
        assert_eq!(
            fragment,
            Fragment {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            }
        );
        assert!(fragment.is_fragment() && fragment.is_first());
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Tcp, 16));
        assert_eq!(upper.ext_headers, 2);
    }

    #[test]
    fn test_non_first_fragment() {
        // Offset 1448: what follows looks like a Hop-by-Hop header but is fragment data.
        let data = concat(&[&frag(6, 1448, false, 7), &[0, 0xff, 0, 0]]);
        let upper = walk(FRAGMENT, &data).unwrap();
        let fragment = upper.fragment.unwrap();
        assert_eq!(
            (fragment.offset, fragment.more, fragment.ident),
            (1448, false, 7)
        );
        assert!(fragment.is_fragment() && !fragment.is_first());
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Tcp, 8));
        // Even with the next header an extension header.
        let data = concat(&[&frag(DST_OPTIONS, 8, true, 7), &[0xff]]);
        let upper = walk(FRAGMENT, &data).unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Unknown(60), 8));
    }

    #[test]
    fn test_atomic_fragment() {
        let data = concat(&[&frag(17, 0, false, 1), &TCP8]);
        let fragment = walk(FRAGMENT, &data).unwrap().fragment.unwrap();
        assert!(!fragment.is_fragment() && fragment.is_first());
    }

    #[test]
    fn test_duplicate_fragment() {
        let data = concat(&[&frag(FRAGMENT, 0, false, 1), &frag(6, 0, true, 2), &TCP8]);
        assert_eq!(walk(FRAGMENT, &data), Err(ExtError::DuplicateFragment));
    }

    #[test]
    fn test_chain() {
        // HbH -> Dst -> Routing (1 left) -> Fragment (first) -> Dst (16 bytes) -> TCP.
        let mut dst16 = [0u8; 16];
        dst16[0] = 6;
        dst16[1] = 1;
        let data = concat(&[
            &ext8(DST_OPTIONS, PADN),
            &ext8(ROUTING, PADN),
            &ext8(FRAGMENT, [0, 1, 0, 0, 0, 0]),
            &frag(DST_OPTIONS, 0, true, 9),
            &dst16,
            &TCP8,
        ]);
        let upper = walk(HOP_BY_HOP, &data).unwrap();
        assert_eq!(upper.protocol, IpProtocol::Tcp);
        assert_eq!((upper.offset, upper.ext_headers), (48, 5));
        assert!(upper.routing_pending);
        assert_eq!(upper.fragment.map(|f| f.ident), Some(9));
        assert_eq!(&data[upper.offset..], &TCP8);
    }

    #[test]
    fn test_header_limit() {
        let chain = |n: usize| {
            let mut data = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { 17 } else { DST_OPTIONS };
                data.extend_from_slice(&ext8(next, PADN));
            }
            data.extend_from_slice(&TCP8);
            data
        };
        let upper = walk(DST_OPTIONS, &chain(MAX_EXTENSION_HEADERS)).unwrap();
        assert_eq!(upper.ext_headers, MAX_EXTENSION_HEADERS);
        assert_eq!(upper.offset, 8 * MAX_EXTENSION_HEADERS);
        assert_eq!(
            walk(DST_OPTIONS, &chain(MAX_EXTENSION_HEADERS + 1)),
            Err(ExtError::TooManyHeaders)
        );
        assert_eq!(
            walk(DST_OPTIONS, &chain(100)),
            Err(ExtError::TooManyHeaders)
        );
    }

    #[test]
    fn test_truncated() {
        // Each cut inside the extension headers: the missing length byte, then the missing
        // rest of a header.
        let data = concat(&[&ext8(FRAGMENT, PADN), &frag(ROUTING, 0, true, 1), &{
            let mut r = [0u8; 16];
            r[0] = 6;
            r[1] = 1;
            r
        }]);
        for len in 0..data.len() {
            assert_eq!(
                walk(HOP_BY_HOP, &data[..len]),
                Err(ExtError::Truncated),
                "cut at {len}"
            );
        }
        let upper = walk(HOP_BY_HOP, &data).unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Tcp, 32));
        // A length far past the end.
        let mut huge = ext8(6, PADN);
        huge[1] = 0xff;
        assert_eq!(walk(DST_OPTIONS, &huge), Err(ExtError::Truncated));
    }

    #[test]
    fn test_hop_by_hop_not_first() {
        let data = concat(&[&ext8(HOP_BY_HOP, PADN), &ext8(6, PADN)]);
        assert_eq!(walk(DST_OPTIONS, &data), Err(ExtError::HopByHopNotFirst));
        assert_eq!(walk(HOP_BY_HOP, &data), Err(ExtError::HopByHopNotFirst));
    }

    #[test]
    fn test_not_walked() {
        // AH, ESP, No Next Header, Mobility: reported as they are, not skipped.
        for protocol in [AH, ESP, NO_NEXT_HEADER, 135] {
            let data = concat(&[&ext8(protocol, PADN), &[6, 4, 0, 0, 0, 0, 0, 0], &TCP8]);
            let upper = walk(DST_OPTIONS, &data).unwrap();
            assert_eq!(upper.protocol, IpProtocol::Unknown(protocol));
            assert_eq!(upper.offset, 8);
        }
    }

    /// 2001:2::1 -> 2001:2::2, Hop-by-Hop then UDP 53 -> 40000 "hello", 2 bytes padding.
    fn udp_packet() -> Vec<u8> {
        let mut bytes = vec![0u8; 40];
        let mut ip = Ipv6Packet::new_unchecked(&mut bytes[..]);
        ip.set_version(6);
        ip.set_payload_len(8 + 13);
        ip.set_next_header(IpProtocol::Unknown(HOP_BY_HOP));
        ip.set_hop_limit(64);
        ip.set_src_addr(Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1));
        ip.set_dst_addr(Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 2));
        bytes.extend_from_slice(&ext8(17, PADN));
        bytes.extend_from_slice(&[0x00, 0x35, 0x9c, 0x40, 0x00, 0x0d, 0x00, 0x00]);
        bytes.extend_from_slice(b"hello");
        bytes.extend_from_slice(&[0, 0]);
        bytes
    }

    #[test]
    fn test_upper_layer() {
        let mut bytes = udp_packet();
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let upper = upper_layer(&ip).unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Udp, 8));
        let udp = UdpPacket::new_checked(&ip.payload()[upper.offset..]).unwrap();
        assert_eq!((udp.src_port(), udp.payload()), (53, &b"hello"[..]));

        let offset = upper.offset;
        let mut ip = Ipv6Packet::new_checked(&mut bytes[..]).unwrap();
        let mut udp = UdpPacket::new_checked(&mut ip.payload_mut()[offset..]).unwrap();
        udp.fill_checksum(src, dst);
        assert!(udp.verify_checksum(src, dst));

        // The payload length, not the buffer, bounds the walk: here the header would end in
        // the padding.
        let mut bytes = udp_packet();
        bytes[4..6].copy_from_slice(&6u16.to_be_bytes());
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(upper_layer(&ip), Err(ExtError::Truncated));
        // A would-be jumbogram: payload length 0 before a Hop-by-Hop header.
        bytes[4..6].fill(0);
        let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(upper_layer(&ip), Err(ExtError::Truncated));
    }

    #[test]
    fn test_quoted_packet() {
        // An ICMPv6 error quotes a packet cut short: walk what is there.
        let bytes = udp_packet();
        let quote = &bytes[..52];
        assert_eq!(
            Ipv6Packet::new_checked(quote).unwrap_err(),
            Error::Truncated
        );
        let quoted = Ipv6Packet::new_unchecked(quote);
        let upper = walk(quoted.next_header().into(), &quote[ipv6::HEADER_LEN..]).unwrap();
        assert_eq!((upper.protocol, upper.offset), (IpProtocol::Udp, 8));
        assert_eq!(
            &quote[ipv6::HEADER_LEN + upper.offset..][..2],
            &[0x00, 0x35]
        );
    }

    /// An extension header of the chains the proptest builds.
    #[derive(Debug, Clone)]
    enum Ext {
        DstOptions(Vec<u8>),
        Routing(Vec<u8>),
        Fragment { offset: u16, more: bool, ident: u32 },
    }

    /// The header's raw payload (after next header and length): 6 + 8k bytes.
    fn raw_payload() -> impl Strategy<Value = Vec<u8>> {
        (0usize..4).prop_flat_map(|k| proptest::collection::vec(any::<u8>(), 6 + 8 * k))
    }

    fn ext() -> impl Strategy<Value = Ext> {
        prop_oneof![
            raw_payload().prop_map(Ext::DstOptions),
            raw_payload().prop_map(Ext::Routing),
            (0u16..0x2000, any::<bool>(), any::<u32>()).prop_map(|(offset, more, ident)| {
                Ext::Fragment {
                    offset,
                    more,
                    ident,
                }
            }),
        ]
    }

    /// The upper layer of the proptest packets.
    #[derive(Debug, Clone, Copy)]
    enum Upper {
        Tcp,
        Udp,
        Icmpv6,
        Other(u8),
    }

    fn upper() -> impl Strategy<Value = Upper> {
        prop_oneof![
            Just(Upper::Tcp),
            Just(Upper::Udp),
            Just(Upper::Icmpv6),
            // Anything etherparse does not walk either (it skips AH, which we do not).
            any::<u8>()
                .prop_filter("walked", |p| ![0, 43, 44, 51, 60].contains(p))
                .prop_map(Upper::Other),
        ]
    }

    /// Serializes the chain with etherparse, except Fragment headers: etherparse 0.16 puts
    /// their offset and M flag at the wrong bits (etherparse issue #150, fixed in 0.20). The
    /// fixed header's next header is returned.
    fn build_chain(hop_by_hop: &Option<Vec<u8>>, exts: &[Ext], last: u8) -> (u8, Vec<u8>) {
        use etherparse::{IpNumber, Ipv6RawExtHeader};
        let number = |e: &Ext| match e {
            Ext::DstOptions(_) => DST_OPTIONS,
            Ext::Routing(_) => ROUTING,
            Ext::Fragment { .. } => FRAGMENT,
        };
        let mut bytes = Vec::new();
        for (i, e) in exts.iter().enumerate() {
            let next = IpNumber(exts.get(i + 1).map_or(last, number));
            match e {
                Ext::DstOptions(p) | Ext::Routing(p) => {
                    let h = Ipv6RawExtHeader::new_raw(next, p).unwrap();
                    bytes.extend_from_slice(&h.to_bytes());
                }
                &Ext::Fragment {
                    offset,
                    more,
                    ident,
                } => bytes.extend_from_slice(&frag(next.0, offset << 3, more, ident)),
            }
        }
        let first = exts.first().map_or(last, number);
        match hop_by_hop {
            Some(p) => {
                let h = Ipv6RawExtHeader::new_raw(IpNumber(first), p).unwrap();
                let mut chain = h.to_bytes().to_vec();
                chain.extend_from_slice(&bytes);
                (HOP_BY_HOP, chain)
            }
            None => (first, bytes),
        }
    }

    /// The upper-layer segment, with its checksum computed by etherparse.
    fn build_upper(upper: Upper, src: [u8; 16], dst: [u8; 16], data: &[u8]) -> Vec<u8> {
        let mut bytes = match upper {
            Upper::Tcp => {
                let mut h = etherparse::TcpHeader::new(49152, 80, 1, 1024);
                h.checksum = h.calc_checksum_ipv6_raw(src, dst, data).unwrap();
                h.to_bytes().to_vec()
            }
            Upper::Udp => {
                let mut h = etherparse::UdpHeader {
                    source_port: 53,
                    destination_port: 40000,
                    length: (8 + data.len()) as u16,
                    checksum: 0,
                };
                h.checksum = h.calc_checksum_ipv6_raw(src, dst, data).unwrap();
                h.to_bytes().to_vec()
            }
            Upper::Icmpv6 => {
                let echo = etherparse::IcmpEchoHeader { id: 1, seq: 2 };
                let h = etherparse::Icmpv6Header::with_checksum(
                    etherparse::Icmpv6Type::EchoRequest(echo),
                    src,
                    dst,
                    data,
                )
                .unwrap();
                h.to_bytes().to_vec()
            }
            Upper::Other(_) => Vec::new(),
        };
        bytes.extend_from_slice(data);
        bytes
    }

    prop_compose! {
        /// A packet with a random chain: the chain as generated, and the frame bytes.
        fn chained_packet()(
            hop_by_hop in proptest::option::of(raw_payload()),
            exts in proptest::collection::vec(ext(), 0..11),
            upper in upper(),
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            padding in 0usize..4,
        ) -> (Option<Vec<u8>>, Vec<Ext>, Upper, Vec<u8>) {
            // At most one Fragment header, and nothing walkable after a non-first one: what
            // follows it is data.
            let mut chain = Vec::new();
            let mut seen_fragment = false;
            for e in exts {
                if let Ext::Fragment { offset, .. } = e {
                    if seen_fragment {
                        continue;
                    }
                    seen_fragment = true;
                    chain.push(e);
                    if offset != 0 {
                        break;
                    }
                } else {
                    chain.push(e);
                }
            }
            let last = match upper {
                Upper::Tcp => 6,
                Upper::Udp => 17,
                Upper::Icmpv6 => 58,
                Upper::Other(p) => p,
            };
            let (first, mut payload) = build_chain(&hop_by_hop, &chain, last);
            payload.extend_from_slice(&build_upper(upper, src, dst, &data));
            let header = etherparse::Ipv6Header {
                traffic_class: 0,
                flow_label: etherparse::Ipv6FlowLabel::ZERO,
                payload_length: payload.len() as u16,
                next_header: etherparse::IpNumber(first),
                hop_limit: 64,
                source: src,
                destination: dst,
            };
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            bytes.resize(bytes.len() + padding, 0xff);
            (hop_by_hop, chain, upper, bytes)
        }
    }

    proptest! {
        #[test]
        fn prop_agrees_with_etherparse(
            (hop_by_hop, chain, upper, bytes) in chained_packet()
        ) {
            let ip = Ipv6Packet::new_checked(&bytes[..]).unwrap();
            let walked = upper_layer(&ip);
            let count = chain.len() + usize::from(hop_by_hop.is_some());
            if count > MAX_EXTENSION_HEADERS {
                prop_assert_eq!(walked, Err(ExtError::TooManyHeaders));
                return Ok(());
            }
            let walked = walked.unwrap();
            let (exts, next, _) = etherparse::Ipv6ExtensionsSlice::from_slice(
                etherparse::IpNumber(bytes[6]),
                ip.payload(),
            )
            .unwrap();
            prop_assert_eq!(u8::from(walked.protocol), next.0);
            prop_assert_eq!(walked.offset, exts.slice().len());
            prop_assert_eq!(walked.ext_headers, count);
            // Fragment fields against the generated chain: etherparse 0.16 decodes them from
            // the wrong bits (see `build_chain`).
            let expected_fragment = chain.iter().find_map(|e| match *e {
                Ext::Fragment { offset, more, ident } => Some(Fragment {
                    offset: offset * 8,
                    more,
                    ident,
                }),
                _ => None,
            });
            prop_assert_eq!(walked.fragment, expected_fragment);
            let pending = chain
                .iter()
                .any(|e| matches!(e, Ext::Routing(p) if p[1] != 0));
            prop_assert_eq!(walked.routing_pending, pending);

            // The upper-layer view at the offset, checksummed over the final length.
            if walked.fragment.is_some_and(|f| !f.is_first()) {
                return Ok(());
            }
            let segment = &ip.payload()[walked.offset..];
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            match upper {
                Upper::Tcp => {
                    let tcp = TcpPacket::new_checked(segment).unwrap();
                    prop_assert_eq!(tcp.dst_port(), 80);
                    prop_assert!(tcp.verify_checksum(src, dst));
                }
                Upper::Udp => {
                    let udp = UdpPacket::new_checked(segment).unwrap();
                    prop_assert_eq!(udp.len(), segment.len());
                    prop_assert!(udp.verify_checksum(src, dst));
                }
                Upper::Icmpv6 => {
                    let icmp = crate::wire::Icmpv6Packet::new_checked(segment).unwrap();
                    prop_assert_eq!(icmp.echo_seq_no(), 2);
                    prop_assert!(icmp.verify_checksum(src, dst));
                }
                Upper::Other(p) => prop_assert_eq!(walked.protocol, IpProtocol::from(p)),
            }
        }

        #[test]
        fn prop_never_panics(
            next_header in prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()],
            data in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()],
                0..200,
            ),
        ) {
            if let Ok(upper) = walk(next_header, &data) {
                prop_assert!(upper.offset <= data.len());
                prop_assert!(upper.ext_headers <= MAX_EXTENSION_HEADERS);
            }
        }

        #[test]
        fn prop_never_panics_on_packets(bytes in proptest::collection::vec(any::<u8>(), 40..120)) {
            let mut bytes = bytes;
            bytes[0] = 0x60;
            if let Ok(ip) = Ipv6Packet::new_checked(&bytes[..]) {
                if let Ok(upper) = upper_layer(&ip) {
                    prop_assert!(upper.offset <= ip.payload().len());
                }
            }
        }
    }
}
