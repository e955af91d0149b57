//! IPv6 packets: the fixed header (RFC 8200 section 3).
//!
//! Contract: [`Packet::new_checked`] accepts a buffer only if the version is 6 and
//! `40 + payload_len <= buffer.len()` (`Truncated` for a buffer shorter than 40 bytes or than
//! `40 + payload_len`, `Malformed` for another version). After that every getter is
//! infallible; [`Packet::payload`] stops at `40 + payload_len`, so Ethernet padding is never
//! seen. The payload starts with the extension headers, if any: this view does not parse them,
//! [`ipv6ext::upper_layer`](super::ipv6ext::upper_layer) walks them to the upper-layer header.
//! IPv6 has no header checksum.
//!
//! Jumbograms (RFC 2675: payload length 0 and a Jumbo Payload option in a Hop-by-Hop header)
//! are not supported: a payload length of 0 means an empty payload, so a jumbogram's
//! Hop-by-Hop header lies beyond [`Packet::payload`] and the extension-header walk reports it
//! truncated. They cannot occur on an Ethernet link anyway (a 64 KiB MTU at least).

use std::net::Ipv6Addr;

use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, IpProtocol, Result};

mod field {
    use super::Field;

    /// Version (4 bits), traffic class (8), flow label (20).
    pub const VER_TC_FLOW: Field = 0..4;
    pub const LENGTH: Field = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Field = 8..24;
    pub const DST_ADDR: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

const TC_SHIFT: u32 = 20;
const TC_MASK: u32 = 0x0ff0_0000;
const FLOW_MASK: u32 = 0x000f_ffff;

/// A view of an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of the fixed header, as `Ipv6Packet::HEADER_LEN` (in generic code, use the module
    /// constant [`HEADER_LEN`]).
    pub const HEADER_LEN: usize = HEADER_LEN;
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without validation.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Validates the version and the payload length against the buffer.
    ///
    /// `Truncated` if the buffer is shorter than 40 bytes or than `40 + payload_len`;
    /// `Malformed` if the version is not 6.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if self.total_len() > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class: DSCP and ECN, as IPv4's second byte.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((self.ver_tc_flow() & TC_MASK) >> TC_SHIFT) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_MASK
    }

    /// Payload length in bytes: everything after the fixed header, extension headers included.
    #[inline]
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Length of the whole packet in bytes: `40 + payload_len`.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Type of the header after this one: an extension header (`Unknown(0)`, `Unknown(44)`...,
    /// see [`ipv6ext`](super::ipv6ext)) or the upper-layer protocol.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::NXT_HDR].into()
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC_ADDR])
    }

    /// Destination address (with a Routing header whose segments are not exhausted, not the
    /// final one).
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST_ADDR])
    }

    /// The fixed header: bytes `0..40`.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN]
    }

    /// The payload, extension headers included: bytes `40..40 + payload_len` (padding
    /// excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    #[inline]
    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version, keeping the traffic class and flow label.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_TC_FLOW.start];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the traffic class, keeping the version and flow label.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let word = (self.ver_tc_flow() & !TC_MASK) | (u32::from(value) << TC_SHIFT);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    /// Sets the flow label (its low 20 bits), keeping the version and traffic class.
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let word = (self.ver_tc_flow() & !FLOW_MASK) | (value & FLOW_MASK);
        write_u32(self.buffer.as_mut(), field::VER_TC_FLOW, word);
    }

    /// Sets the payload length in bytes.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, mutably: bytes `40..40 + payload_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The address in a 16-byte field.
#[inline]
fn addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 2);

    /// 2001:2::1 -> 2001:2::2, traffic class 0x12, flow label 0x34567, UDP, hop limit 64,
    /// 8 payload bytes, then 2 bytes of padding.
    static PACKET_BYTES: [u8; 50] = [
        0x61, 0x23, 0x45, 0x67, // version 6, traffic class 0x12, flow label 0x34567
        0x00, 0x08, 0x11, 0x40, // payload length 8, next header UDP, hop limit 64
        0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // src
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, //
        0x20, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, // dst
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, //
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, // payload
        0x00, 0x00, // Ethernet padding
    ];

    static PAYLOAD_BYTES: [u8; 8] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(packet.traffic_class(), 0x12);
        assert_eq!(packet.flow_label(), 0x34567);
        assert_eq!(packet.payload_len(), 8);
        assert_eq!(packet.total_len(), 48);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.hop_limit(), 64);
        assert_eq!(packet.src_addr(), SRC);
        assert_eq!(packet.dst_addr(), DST);
        assert_eq!(packet.header(), &PACKET_BYTES[..40]);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);

        let (header, payload) = etherparse::Ipv6Header::from_slice(&PACKET_BYTES).unwrap();
        assert_eq!(header.traffic_class, 0x12);
        assert_eq!(header.flow_label.value(), 0x34567);
        assert_eq!(&payload[..8], &PAYLOAD_BYTES);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 50];
        bytes[48..].fill(0);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(6);
        packet.set_traffic_class(0x12);
        packet.set_flow_label(0xfff3_4567); // bits above the low 20 are ignored
        packet.set_payload_len(8);
        packet.set_next_header(IpProtocol::Udp);
        packet.set_hop_limit(64);
        packet.set_src_addr(SRC);
        packet.set_dst_addr(DST);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);

        let (header, _) = etherparse::Ipv6Header::from_slice(&bytes).unwrap();
        assert_eq!(header.payload_length, 8);
        assert_eq!(header.next_header, etherparse::IpNumber::UDP);
        assert_eq!(header.hop_limit, 64);
        assert_eq!(header.source_addr(), SRC);
        assert_eq!(header.destination_addr(), DST);
    }

    #[test]
    fn test_setters_keep_neighbours() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_traffic_class(0xff);
        assert_eq!((packet.version(), packet.flow_label()), (6, 0x34567));
        packet.set_flow_label(0);
        assert_eq!((packet.version(), packet.traffic_class()), (6, 0xff));
        packet.set_version(4);
        assert_eq!((packet.traffic_class(), packet.flow_label()), (0xff, 0));
        assert_eq!(&bytes[..4], &[0x4f, 0xf0, 0x00, 0x00]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Packet::HEADER_LEN, 40);
        for len in 0..48 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Packet::new_checked(&PACKET_BYTES[..48]).is_ok());
    }

    #[test]
    fn test_payload_len_overflow() {
        let mut bytes = PACKET_BYTES;
        bytes[4..6].copy_from_slice(&11u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        bytes[4..6].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        // Exactly the buffer: the padding becomes payload.
        bytes[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bytes[..]).unwrap().payload().len(), 10);
    }

    #[test]
    fn test_empty_payload() {
        // Payload length 0 is an empty payload, also before a Hop-by-Hop header (no
        // jumbograms).
        let mut bytes = PACKET_BYTES;
        bytes[4..6].fill(0);
        bytes[6] = 0;
        let packet = Packet::new_checked(&bytes[..40]).unwrap();
        assert!(packet.payload().is_empty());
        assert_eq!(packet.total_len(), 40);
        assert_eq!(packet.next_header(), IpProtocol::Unknown(0));
    }

    #[test]
    fn test_bad_version() {
        for version in [0u8, 4, 7, 15] {
            let mut bytes = PACKET_BYTES;
            bytes[0] = (version << 4) | 0x01;
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Malformed
            );
        }
        // A short buffer is truncated whatever its version.
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&bytes[..20]).unwrap_err(),
            Error::Truncated
        );
    }

    fn etherparse_header() -> impl Strategy<Value = etherparse::Ipv6Header> {
        (
            any::<u8>(),
            0u32..=0xf_ffff,
            any::<u8>(),
            any::<u8>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
        )
            .prop_map(|(tc, flow, next, hop, src, dst)| etherparse::Ipv6Header {
                traffic_class: tc,
                flow_label: etherparse::Ipv6FlowLabel::try_new(flow).unwrap(),
                payload_length: 0,
                next_header: etherparse::IpNumber(next),
                hop_limit: hop,
                source: src,
                destination: dst,
            })
    }

    proptest! {
        #[test]
        fn prop_agrees_with_etherparse(
            mut header in etherparse_header(),
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            padding in 0usize..8,
        ) {
            header.payload_length = payload.len() as u16;
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            bytes.resize(bytes.len() + padding, 0);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.version(), 6);
            prop_assert_eq!(packet.traffic_class(), header.traffic_class);
            prop_assert_eq!(packet.flow_label(), header.flow_label.value());
            prop_assert_eq!(packet.payload_len(), usize::from(header.payload_length));
            prop_assert_eq!(u8::from(packet.next_header()), header.next_header.0);
            prop_assert_eq!(packet.hop_limit(), header.hop_limit);
            prop_assert_eq!(packet.src_addr(), header.source_addr());
            prop_assert_eq!(packet.dst_addr(), header.destination_addr());
            prop_assert_eq!(packet.header(), &header.to_bytes()[..]);
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn prop_setters_round_trip(header in etherparse_header(), len in any::<u16>()) {
            let mut bytes = [0u8; HEADER_LEN];
            let mut packet = Packet::new_unchecked(&mut bytes[..]);
            packet.set_version(6);
            packet.set_traffic_class(header.traffic_class);
            packet.set_flow_label(header.flow_label.value());
            packet.set_payload_len(len);
            packet.set_next_header(header.next_header.0.into());
            packet.set_hop_limit(header.hop_limit);
            packet.set_src_addr(header.source_addr());
            packet.set_dst_addr(header.destination_addr());
            let mut expected = header.clone();
            expected.payload_length = len;
            prop_assert_eq!(&bytes, &expected.to_bytes());
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.header(), packet.payload(), packet.next_header());
                let _ = (packet.traffic_class(), packet.flow_label(), packet.hop_limit());
                let _ = (packet.src_addr(), packet.dst_addr(), packet.total_len());
            }
        }
    }
}
