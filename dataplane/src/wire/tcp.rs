//! TCP segments (RFC 9293), over IPv4 or IPv6.
//!
//! Contract: the buffer is the TCP segment (header, options, data): the IPv4 payload, or the
//! IPv6 payload after its extension headers. [`Packet::new_checked`] accepts it only if
//! `20 <= header_len <= buffer.len()` (`Truncated` for a buffer shorter than 20 bytes or than
//! `header_len`, `Malformed` for a data offset below 5); every getter is then infallible.
//! Options are exposed as raw bytes and not parsed. The checksum covers the pseudo-header of the
//! addresses' family (RFC 9293 section 3.1, RFC 8200 section 8.1) and the whole buffer, so the
//! buffer must end where the IP payload ends (use
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload) or
//! [`Ipv6Packet::payload`](super::Ipv6Packet::payload)). `verify_checksum` and
//! `fill_checksum` take `Ipv4Addr`, `Ipv6Addr` or `IpAddr`; a source and destination of
//! different families are a programming error (a panic in debug builds, a meaningless
//! checksum in release builds).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::IpAddr;

use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use crate::checksum;

mod field {
    use super::Field;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::URGENT.end;

/// IP protocol number of TCP, as used in the pseudo-header.
const PROTOCOL: u8 = 6;

/// The eight flag bits of byte 13 (CWR ECE URG ACK PSH RST SYN FIN).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u8);

impl Flags {
    /// No more data from sender.
    pub const FIN: Flags = Flags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: Flags = Flags(0x02);
    /// Reset the connection.
    pub const RST: Flags = Flags(0x04);
    /// Push function.
    pub const PSH: Flags = Flags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: Flags = Flags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: Flags = Flags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: Flags = Flags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: Flags = Flags(0x80);

    /// Flags from the raw byte (every value is valid).
    #[inline]
    pub const fn from_bits(bits: u8) -> Flags {
        Flags(bits)
    }

    /// The raw byte.
    #[inline]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// No flag set.
    #[inline]
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Whether every flag of `other` is set in `self`.
    #[inline]
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// FIN is set.
    #[inline]
    pub const fn fin(self) -> bool {
        self.contains(Self::FIN)
    }

    /// SYN is set.
    #[inline]
    pub const fn syn(self) -> bool {
        self.contains(Self::SYN)
    }

    /// RST is set.
    #[inline]
    pub const fn rst(self) -> bool {
        self.contains(Self::RST)
    }

    /// PSH is set.
    #[inline]
    pub const fn psh(self) -> bool {
        self.contains(Self::PSH)
    }

    /// ACK is set.
    #[inline]
    pub const fn ack(self) -> bool {
        self.contains(Self::ACK)
    }

    /// URG is set.
    #[inline]
    pub const fn urg(self) -> bool {
        self.contains(Self::URG)
    }
}

impl BitOr for Flags {
    type Output = Flags;

    #[inline]
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl BitOrAssign for Flags {
    #[inline]
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for Flags {
    type Output = Flags;

    #[inline]
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
    }
}

impl From<u8> for Flags {
    #[inline]
    fn from(bits: u8) -> Self {
        Flags(bits)
    }
}

impl From<Flags> for u8 {
    #[inline]
    fn from(flags: Flags) -> Self {
        flags.0
    }
}

/// `SYN|ACK`, or `-` when empty.
impl fmt::Debug for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        if self.0 == 0 {
            return f.write_str("-");
        }
        let mut sep = "";
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                write!(f, "{sep}{name}")?;
                sep = "|";
            }
        }
        Ok(())
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A view of a TCP segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of a header without options, as `TcpPacket::MIN_HEADER_LEN` (in generic code,
    /// use the module constant [`MIN_HEADER_LEN`]).
    pub const MIN_HEADER_LEN: usize = MIN_HEADER_LEN;
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

    /// `Truncated` if the buffer is shorter than 20 bytes or than `header_len`, `Malformed` if
    /// `header_len < 20`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < MIN_HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The flags byte.
    #[inline]
    pub fn flags(&self) -> Flags {
        Flags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Raw options: bytes `20..header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[MIN_HEADER_LEN..self.header_len()]
    }

    /// Data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) -> bool {
        self.compute_checksum(src.into(), dst.into()) == 0
    }

    /// `finish(pseudo-header + buffer)`, with the checksum field as it is.
    #[inline]
    fn compute_checksum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let data = self.buffer.as_ref();
        let pseudo = checksum::pseudo_header_ip(src, dst, PROTOCOL, data.len());
        checksum::finish(pseudo + checksum::sum(data))
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4), keeping the
    /// reserved bits.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | (((len / 4) as u8) << 4);
    }

    /// Sets the flags byte.
    #[inline]
    pub fn set_flags(&mut self, flags: Flags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Sets the checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Data after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: impl Into<IpAddr>, dst: impl Into<IpAddr>) {
        self.set_checksum(0);
        let value = self.compute_checksum(src.into(), dst.into());
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

    /// 10.0.0.1:49152 -> 10.0.0.2:80, PSH|ACK, MSS option, payload "hello".
    static PACKET_BYTES: [u8; 29] = [
        0xc0, 0x00, 0x00, 0x50, // ports
        0x01, 0x23, 0x45, 0x67, // seq
        0x89, 0xab, 0xcd, 0xef, // ack
        0x60, 0x18, 0x72, 0x10, // data offset 6, PSH|ACK, window
        0x6f, 0xb0, 0x00, 0x00, // checksum, urgent pointer
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        b'h', b'e', b'l', b'l', b'o',
    ];

    static OPTION_BYTES: [u8; 4] = [0x02, 0x04, 0x05, 0xb4];
    static PAYLOAD_BYTES: [u8; 5] = *b"hello";

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 49152);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.header_len(), 24);
        let flags = packet.flags();
        assert!(flags.psh() && flags.ack());
        assert!(!flags.fin() && !flags.syn() && !flags.rst() && !flags.urg());
        assert_eq!(flags, Flags::PSH | Flags::ACK);
        assert_eq!(packet.window_len(), 0x7210);
        assert_eq!(packet.checksum(), 0x6fb0);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &OPTION_BYTES);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(10, 0, 0, 3)));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 29];
        bytes[12] = 0x00; // reserved bits
        bytes[20..24].copy_from_slice(&OPTION_BYTES);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_src_port(49152);
        packet.set_dst_port(80);
        packet.set_seq_number(0x0123_4567);
        packet.set_ack_number(0x89ab_cdef);
        packet.set_header_len(24);
        packet.set_flags(Flags::from_bits(0x18));
        packet.set_window_len(0x7210);
        packet.set_urgent_at(0);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, PACKET_BYTES);

        let (header, payload) = etherparse::TcpHeader::from_slice(&bytes).unwrap();
        assert_eq!((header.source_port, header.destination_port), (49152, 80));
        assert_eq!(header.sequence_number, 0x0123_4567);
        assert_eq!(header.acknowledgment_number, 0x89ab_cdef);
        assert!(header.psh && header.ack && !header.syn);
        assert_eq!(header.window_size, 0x7210);
        assert_eq!(header.options.as_slice(), &OPTION_BYTES);
        assert_eq!(payload, &PAYLOAD_BYTES);
        let expected = header
            .calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload)
            .unwrap();
        assert_eq!(header.checksum, expected);
    }

    #[test]
    fn test_truncated() {
        for len in 0..24 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        let packet = Packet::new_checked(&PACKET_BYTES[..24]).unwrap();
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn test_bad_header_len() {
        for offset in 0..5u8 {
            let mut bytes = PACKET_BYTES;
            bytes[12] = offset << 4;
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Malformed
            );
        }
        // Data offset 15 (60 bytes) in a 29-byte buffer.
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0xf0;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn test_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[28] = b'!';
        assert!(!Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 2);

    #[test]
    fn test_checksum_ipv6() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(SRC6, DST6);
        assert_eq!(packet.checksum(), 0x43aa);
        assert!(packet.verify_checksum(SRC6, DST6));
        assert!(packet.verify_checksum(IpAddr::from(SRC6), IpAddr::from(DST6)));
        assert!(!packet.verify_checksum(SRC6, Ipv6Addr::LOCALHOST));
        assert!(!packet.verify_checksum(SRC, DST));
        // The IPv4 checksum is untouched by the change of signature.
        packet.fill_checksum(IpAddr::from(SRC), IpAddr::from(DST));
        assert_eq!(bytes, PACKET_BYTES);

        let mut bytes = PACKET_BYTES;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(SRC6, DST6);
        let (header, payload) = etherparse::TcpHeader::from_slice(&bytes).unwrap();
        let expected = header
            .calc_checksum_ipv6_raw(SRC6.octets(), DST6.octets(), payload)
            .unwrap();
        assert_eq!(header.checksum, expected);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "mixed address families")]
    fn test_checksum_mixed_families() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        let _ = packet.verify_checksum(SRC, DST6);
    }

    #[test]
    fn test_flags() {
        let flags = Flags::SYN | Flags::ACK;
        assert_eq!(flags.bits(), 0x12);
        assert_eq!(Flags::from_bits(0x12), flags);
        assert!(flags.contains(Flags::SYN) && !flags.contains(Flags::SYN | Flags::FIN));
        assert_eq!(flags & Flags::SYN, Flags::SYN);
        assert_eq!(format!("{flags:?}"), "SYN|ACK");
        assert_eq!(Flags::empty().to_string(), "-");
        let mut f = Flags::FIN;
        f |= Flags::RST;
        assert!(f.fin() && f.rst() && !f.syn());
    }

    proptest! {
        #[test]
        fn prop_checksum_agrees_with_etherparse(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ports in any::<(u16, u16)>(),
            seq in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let mut header = etherparse::TcpHeader::new(ports.0, ports.1, seq, 1024);
            header.checksum = header.calc_checksum_ipv4_raw(src, dst, &payload).unwrap();
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
            seq in any::<u32>(), payload in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let mut header = etherparse::TcpHeader::new(ports.0, ports.1, seq, 1024);
            header.checksum = header.calc_checksum_ipv6_raw(src, dst, &payload).unwrap();
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&payload);
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(src, dst));
            packet.fill_checksum(src, dst);
            prop_assert_eq!(packet.checksum(), header.checksum);
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.options(), packet.payload(), packet.flags());
                let _ = packet.verify_checksum(SRC, DST);
            }
        }
    }
}
