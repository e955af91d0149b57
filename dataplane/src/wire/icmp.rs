//! ICMPv4 messages (RFC 792).
//!
//! Contract: the buffer is the IPv4 payload. [`Packet::new_checked`] accepts any buffer of at
//! least [`HEADER_LEN`] bytes (else `Truncated`); every getter is then infallible. The type and
//! code are not validated. For error messages ([`DEST_UNREACHABLE`], [`TIME_EXCEEDED`],
//! [`PARAMETER_PROBLEM`]) [`Packet::data`] holds the original datagram's IP header and at least
//! 8 bytes of it, which the caller parses with [`Ipv4Packet`](super::Ipv4Packet) (expect its
//! `total_len` to exceed what was quoted). The checksum covers the whole buffer.

use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use crate::checksum;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    pub const REST: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const NEXT_HOP_MTU: Field = 6..8;
}

/// Length of the header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = field::REST.end;

/// Type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Type: destination unreachable.
pub const DEST_UNREACHABLE: u8 = 3;
/// Type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Type: parameter problem.
pub const PARAMETER_PROBLEM: u8 = 12;

/// Destination-unreachable code: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Destination-unreachable code: fragmentation needed and DF set (RFC 1191 path MTU).
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMPv4 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of the header, as `IcmpPacket::HEADER_LEN` (in generic code, use the module
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

    /// `Err(Truncated)` if the buffer cannot hold the header.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type ([`ECHO_REQUEST`], ...).
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes 4..8, whose meaning depends on the type.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::REST)
    }

    /// Identifier of an echo request or reply.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Sequence number of an echo request or reply.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Bytes after the header: echo data, or the quoted datagram of an error message.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets bytes 4..8.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::REST, value);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    /// Bytes after the header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes the checksum over the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.buffer.as_ref());
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
    use crate::wire::{IpProtocol, Ipv4Packet};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// Echo request, ident 0x1234, sequence 1, data "abcdefgh".
    static ECHO_BYTES: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, // type, code, checksum
        0x12, 0x34, 0x00, 0x01, // ident, seq
        b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h',
    ];

    static DATA_BYTES: [u8; 8] = *b"abcdefgh";

    /// Fragmentation needed (MTU 1400) quoting a 1500-byte TCP packet 10.0.0.2 -> 10.0.0.1
    /// (its IP header and first 8 bytes: ports 80 -> 49152 and the sequence number).
    static FRAG_NEEDED_BYTES: [u8; 36] = [
        0x03, 0x04, 0x00, 0x00, // type, code, checksum (filled by the test)
        0x00, 0x00, 0x05, 0x78, // unused, next-hop MTU 1400
        0x45, 0x00, 0x05, 0xdc, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // quoted IP
        0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01, //
        0x00, 0x50, 0xc0, 0x00, 0x01, 0x23, 0x45, 0x67, // quoted TCP: ports, seq
    ];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0x5435);
        assert_eq!(packet.rest_of_header(), 0x1234_0001);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.data(), &DATA_BYTES);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 16];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(ECHO_REQUEST);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(1);
        packet.data_mut().copy_from_slice(&DATA_BYTES);
        packet.fill_checksum();
        assert_eq!(bytes, ECHO_BYTES);

        let (header, data) = etherparse::Icmpv4Header::from_slice(&bytes).unwrap();
        let echo = etherparse::IcmpEchoHeader { id: 0x1234, seq: 1 };
        assert_eq!(header.icmp_type, etherparse::Icmpv4Type::EchoRequest(echo));
        assert_eq!(data, &DATA_BYTES);
        let expected = etherparse::Icmpv4Header::with_checksum(header.icmp_type.clone(), data);
        assert_eq!(header.checksum, expected.checksum);
    }

    #[test]
    fn test_error_message() {
        let mut bytes = FRAG_NEEDED_BYTES;
        Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(packet.msg_type(), DEST_UNREACHABLE);
        assert_eq!(packet.msg_code(), CODE_FRAG_NEEDED);
        assert_eq!(packet.next_hop_mtu(), 1400);
        // The quoted header claims 1500 bytes: a checked view refuses it, an unchecked one
        // reads its fixed fields.
        let quoted = Ipv4Packet::new_unchecked(packet.data());
        assert!(Ipv4Packet::new_checked(packet.data()).is_err());
        assert_eq!(quoted.protocol(), IpProtocol::Tcp);
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(&packet.data()[quoted.header_len()..][..2], &[0x00, 0x50]);
    }

    #[test]
    fn test_truncated() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&ECHO_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Packet::new_checked(&ECHO_BYTES[..HEADER_LEN])
            .unwrap()
            .data()
            .is_empty());
    }

    #[test]
    fn test_bad_checksum() {
        let mut bytes = ECHO_BYTES;
        bytes[15] = b'!';
        assert!(!Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
    }

    proptest! {
        #[test]
        fn prop_checksum_agrees_with_etherparse(
            id in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let echo = etherparse::IcmpEchoHeader { id, seq };
            let header =
                etherparse::Icmpv4Header::with_checksum(etherparse::Icmpv4Type::EchoReply(echo), &data);
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&data);
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum());
            packet.fill_checksum();
            prop_assert_eq!(packet.checksum(), header.checksum);
        }
    }
}
