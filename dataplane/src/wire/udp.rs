//! UDP datagrams (RFC 768), over IPv4 or IPv6.
//!
//! Contract: the buffer is the IPv4 payload, or the IPv6 payload after its extension headers.
//! [`Packet::new_checked`] accepts it only if `8 <= len <= buffer.len()`, where `len` is the
//! length field (`Truncated` for a buffer shorter than 8 bytes or than `len`, `Malformed` for
//! `len < 8`, which also refuses IPv6 jumbograms' 0); every getter is then infallible and
//! [`Packet::payload`] stops at `len`. The checksum covers the pseudo-header of the addresses'
//! family and bytes `0..len`. A checksum field of 0 means "no checksum" over IPv4 (RFC 768),
//! which [`Packet::verify_checksum`] accepts, and is invalid over IPv6 (RFC 8200 section 8.1:
//! "IPv6 receivers must discard UDP packets containing a zero checksum"), which it refuses;
//! [`Packet::fill_checksum`] never produces it. Both take `Ipv4Addr`, `Ipv6Addr` or `IpAddr`; a
//! source and destination of different families are a programming error (a panic in debug
//! builds, a meaningless checksum in release builds).

use std::net::IpAddr;

use super::{read_u16, write_u16, Error, Field, Result};
use crate::checksum;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// IP protocol number of UDP, as used in the pseudo-header.
const PROTOCOL: u8 = 17;

/// A view of a UDP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of the header, as `UdpPacket::HEADER_LEN` (in generic code, use the module
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

    /// `Truncated` if the buffer is shorter than 8 bytes or than the length field,
    /// `Malformed` if the length field is below 8.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let buf_len = self.buffer.as_ref().len();
        if buf_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = self.len();
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > buf_len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header and data, in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)] // a field, not a container length
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Checksum (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Data: bytes `8..len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }

    /// Whether the checksum over the pseudo-header and bytes `0..len` is correct; a checksum
    /// of 0 ("none") verifies over IPv4 and fails over IPv6.
    #[inline]
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        let (src, dst) = (src.into(), dst.into());
        if self.checksum() == 0 {
            debug_assert_eq!(src.is_ipv4(), dst.is_ipv4(), "mixed address families");
            return src.is_ipv4();
        }
        self.compute_checksum(src, dst) == 0
    }

    /// `finish(pseudo-header + bytes 0..len)`, with the checksum field as it is.
    #[inline]
    fn compute_checksum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let len = self.len();
        let pseudo = checksum::pseudo_header_ip(src, dst, PROTOCOL, len);
        checksum::finish(pseudo + checksum::sum(&self.buffer.as_ref()[..len]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Data, mutably: bytes `8..len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes the checksum over the pseudo-header and bytes `0..len` and stores it; a
    /// computed 0 is sent as `0xffff` in both families (RFC 768: "If the computed checksum is
    /// zero, it is transmitted as all ones"; RFC 8200 section 8.1 likewise).
    #[inline]
    pub fn fill_checksum(&mut self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        self.set_checksum(0);
        let value = match self.compute_checksum(src.into(), dst.into()) {
            0 => 0xffff,
            value => value,
        };
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// 10.0.0.1:53 -> 10.0.0.2:40000, payload "hello", then 2 bytes past the length field.
    static PACKET_BYTES: [u8; 15] = [
        0x00, 0x35, 0x9c, 0x40, // ports
        0x00, 0x0d, 0x0b, 0x8a, // length 13, checksum
        b'h', b'e', b'l', b'l', b'o', // payload
        0xff, 0xff, // trailing bytes, not covered
    ];

    static PAYLOAD_BYTES: [u8; 5] = *b"hello";

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 53);
        assert_eq!(packet.dst_port(), 40000);
        assert_eq!(packet.len(), 13);
        assert_eq!(packet.checksum(), 0x0b8a);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 15];
        bytes[13..].fill(0xff);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(53);
        packet.set_dst_port(40000);
        packet.set_len(13);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, PACKET_BYTES);

        let (header, payload) = etherparse::UdpHeader::from_slice(&bytes[..13]).unwrap();
        assert_eq!((header.source_port, header.destination_port), (53, 40000));
        assert_eq!(header.length, 13);
        let expected = header
            .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
            .unwrap();
        assert_eq!(header.checksum, expected);
    }

    #[test]
    fn test_truncated() {
        for len in 0..13 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Packet::new_checked(&PACKET_BYTES[..13]).is_ok());
    }

    #[test]
    fn test_bad_len() {
        for len in 0..8u16 {
            let mut bytes = PACKET_BYTES;
            bytes[4..6].copy_from_slice(&len.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Malformed
            );
        }
        let mut bytes = PACKET_BYTES;
        bytes[4..6].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
        // An empty datagram is legal.
        bytes[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert!(Packet::new_checked(&bytes[..])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn test_checksum_none() {
        let mut bytes = PACKET_BYTES;
        bytes[6..8].fill(0);
        bytes[8] = b'j';
        assert!(Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum(SRC, DST));
        bytes[6..8].copy_from_slice(&[0x0b, 0x8a]);
        assert!(!Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    #[test]
    fn test_checksum_zero_sent_as_ffff() {
        // Choose the one data word so that pseudo-header + datagram sum to 0xffff, i.e. the
        // computed checksum is 0.
        let mut bytes = [0u8; 10];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(1);
        packet.set_dst_port(2);
        packet.set_len(10);
        packet.fill_checksum(SRC, DST);
        let c = packet.checksum();
        packet.payload_mut().copy_from_slice(&c.to_be_bytes());
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
    }

    const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 2);

    #[test]
    fn test_checksum_ipv6() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(SRC6, DST6);
        assert_eq!(packet.checksum(), 0xdf83);
        assert!(packet.verify_checksum(SRC6, DST6));
        assert!(packet.verify_checksum(IpAddr::from(SRC6), IpAddr::from(DST6)));
        assert!(!packet.verify_checksum(SRC, DST));
        // Bytes past the length field stay out of it.
        assert_eq!(&bytes[13..], &[0xff, 0xff]);
        let (header, payload) = etherparse::UdpHeader::from_slice(&bytes[..13]).unwrap();
        let expected = header
            .calc_checksum_ipv6_raw(SRC6.octets(), DST6.octets(), payload)
            .unwrap();
        assert_eq!(header.checksum, expected);
        // The IPv4 checksum is untouched by the change of signature.
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(IpAddr::from(SRC), IpAddr::from(DST));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_checksum_none_ipv6() {
        // RFC 8200 section 8.1: a zero UDP checksum over IPv6 is discarded, even when the
        // datagram would otherwise be intact.
        let mut bytes = PACKET_BYTES;
        bytes[6..8].fill(0);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(SRC6, DST6));
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn test_checksum_zero_sent_as_ffff_ipv6() {
        let mut bytes = [0u8; 10];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(1);
        packet.set_dst_port(2);
        packet.set_len(10);
        packet.fill_checksum(SRC6, DST6);
        let c = packet.checksum();
        packet.payload_mut().copy_from_slice(&c.to_be_bytes());
        packet.fill_checksum(SRC6, DST6);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC6, DST6));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "mixed address families")]
    fn test_checksum_mixed_families() {
        let mut bytes = PACKET_BYTES;
        bytes[6..8].fill(0);
        let _ = Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum(SRC6, DST);
    }

    proptest! {
        #[test]
        fn prop_checksum_agrees_with_etherparse(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ports in any::<(u16, u16)>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let header =
                etherparse::UdpHeader::with_ipv4_checksum(ports.0, ports.1, &etherparse::Ipv4Header {
                    source: src,
                    destination: dst,
                    ..Default::default()
                }, &payload).unwrap();
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(src, dst));
            packet.fill_checksum(src, dst);
            prop_assert_eq!(packet.checksum(), header.checksum);
        }

        #[test]
        fn prop_checksum_ipv6_agrees_with_etherparse(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), ports in any::<(u16, u16)>(),
            payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let header =
                etherparse::UdpHeader::with_ipv6_checksum(ports.0, ports.1, &etherparse::Ipv6Header {
                    source: src,
                    destination: dst,
                    ..Default::default()
                }, &payload).unwrap();
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert_ne!(packet.checksum(), 0);
            prop_assert!(packet.verify_checksum(src, dst));
            packet.fill_checksum(src, dst);
            prop_assert_eq!(packet.checksum(), header.checksum);
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.payload(), packet.verify_checksum(SRC, DST));
            }
        }
    }
}
