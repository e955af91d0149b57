//! ICMPv6 messages (RFC 4443).
//!
//! Contract: the buffer is the upper-layer segment of an IPv6 packet (its payload after any
//! extension headers, see [`ipv6ext`](super::ipv6ext)), ending where the payload ends.
//! [`Packet::new_checked`] accepts any buffer of at least [`HEADER_LEN`] bytes (else
//! `Truncated`); every getter is then infallible. The type and code are not validated. Error
//! messages ([`Packet::is_error`]) carry in [`Packet::data`] as much of the invoking packet as
//! fits in the minimum IPv6 MTU, from its IPv6 header on, which the caller parses with
//! [`Ipv6Packet::new_unchecked`](super::Ipv6Packet::new_unchecked) and
//! [`ipv6ext::walk`](super::ipv6ext::walk) (expect its payload length to exceed the quote).
//! Unlike ICMPv4's, the checksum covers the IPv6 pseudo-header (RFC 4443 section 2.3), with the
//! whole buffer as the upper-layer length: [`Packet::verify_checksum`] and
//! [`Packet::fill_checksum`] take the addresses.

use std::net::Ipv6Addr;

use super::{read_u16, read_u32, write_u16, write_u32, Error, Field, Result};
use crate::checksum;

mod field {
    use super::Field;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The message body's first four bytes.
    pub const REST: Field = 4..8;
    pub const MTU: Field = 4..8;
    pub const POINTER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
}

/// Length of the header (type, code, checksum, the four bytes that depend on the type).
pub const HEADER_LEN: usize = field::REST.end;

/// Next header of ICMPv6, as used in the pseudo-header.
const PROTOCOL: u8 = 58;

/// Type: destination unreachable (error).
pub const DST_UNREACHABLE: u8 = 1;
/// Type: packet too big (error; [`Packet::mtu`]).
pub const PACKET_TOO_BIG: u8 = 2;
/// Type: time exceeded (error).
pub const TIME_EXCEEDED: u8 = 3;
/// Type: parameter problem (error; [`Packet::pointer`]).
pub const PARAM_PROBLEM: u8 = 4;
/// Type: echo request.
pub const ECHO_REQUEST: u8 = 128;
/// Type: echo reply.
pub const ECHO_REPLY: u8 = 129;

/// Destination-unreachable code: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 4;
/// Time-exceeded code: hop limit exceeded in transit.
pub const CODE_HOP_LIMIT_EXCEEDED: u8 = 0;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of the header, as `Icmpv6Packet::HEADER_LEN` (in generic code, use the module
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

    /// Whether the message is an error (types 0..=127, RFC 4443 section 2.1), which quotes the
    /// invoking packet and must never be answered with another error.
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type() < 128
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

    /// MTU of the next-hop link, in a packet-too-big message.
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU)
    }

    /// Offset in the invoking packet of the offending byte, in a parameter-problem message.
    #[inline]
    pub fn pointer(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::POINTER)
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

    /// Bytes after the header: echo data, or the quoted packet of an error message.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Whether the checksum over the pseudo-header and the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.compute_checksum(src, dst) == 0
    }

    /// `finish(pseudo-header + buffer)`, with the checksum field as it is.
    #[inline]
    fn compute_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let data = self.buffer.as_ref();
        // Below 4 GiB: the 32-bit length field holds it.
        let pseudo = checksum::pseudo_header_v6(src, dst, PROTOCOL, data.len() as u32);
        checksum::finish(pseudo + checksum::sum(data))
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

    /// Sets the MTU of a packet-too-big message.
    #[inline]
    pub fn set_mtu(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::MTU, value);
    }

    /// Sets the pointer of a parameter-problem message.
    #[inline]
    pub fn set_pointer(&mut self, value: u32) {
        write_u32(self.buffer.as_mut(), field::POINTER, value);
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

    /// Bytes after the header, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let value = self.compute_checksum(src, dst);
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
    use crate::wire::{ipv6, ipv6ext, IpProtocol, Ipv6Packet};
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 1);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 2);

    /// Echo request 2001:2::1 -> 2001:2::2, ident 0x1234, sequence 1, data "abcdefgh".
    static ECHO_BYTES: [u8; 16] = [
        0x80, 0x00, 0x9b, 0xe1, // type, code, checksum
        0x12, 0x34, 0x00, 0x01, // ident, seq
        b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h',
    ];

    static DATA_BYTES: [u8; 8] = *b"abcdefgh";

    /// Packet too big (MTU 1280) from 2001:2::2 back to 2001:2::1, quoting the start of a
    /// 1500-byte TCP packet 2001:2::1 -> 2001:2::2 behind a Destination Options header.
    fn packet_too_big() -> Vec<u8> {
        let mut bytes = vec![0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00];
        let mut quoted = [0u8; 40];
        let mut ip = Ipv6Packet::new_unchecked(&mut quoted[..]);
        ip.set_version(6);
        ip.set_payload_len(1460);
        ip.set_next_header(IpProtocol::Unknown(ipv6ext::DST_OPTIONS));
        ip.set_hop_limit(63);
        ip.set_src_addr(SRC);
        ip.set_dst_addr(DST);
        bytes.extend_from_slice(&quoted);
        bytes.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // Dst options: PadN
        bytes.extend_from_slice(&[0xc0, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67]); // TCP
        bytes
    }

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), ECHO_REQUEST);
        assert_eq!(packet.msg_code(), 0);
        assert!(!packet.is_error());
        assert_eq!(packet.checksum(), 0x9be1);
        assert_eq!(packet.rest_of_header(), 0x1234_0001);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 1);
        assert_eq!(packet.data(), &DATA_BYTES);
        assert!(packet.verify_checksum(SRC, DST));
        // The pseudo-header counts: another address, or ICMPv4's rule (no pseudo-header),
        // does not verify.
        assert!(!packet.verify_checksum(SRC, Ipv6Addr::LOCALHOST));
        assert_ne!(crate::checksum::data(&ECHO_BYTES), 0);
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
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, ECHO_BYTES);

        let (header, data) = etherparse::Icmpv6Header::from_slice(&bytes).unwrap();
        let echo = etherparse::IcmpEchoHeader { id: 0x1234, seq: 1 };
        assert_eq!(header.icmp_type, etherparse::Icmpv6Type::EchoRequest(echo));
        assert_eq!(data, &DATA_BYTES);
        let expected = etherparse::Icmpv6Header::with_checksum(
            header.icmp_type,
            SRC.octets(),
            DST.octets(),
            data,
        )
        .unwrap();
        assert_eq!(header.checksum, expected.checksum);
    }

    #[test]
    fn test_packet_too_big() {
        let mut bytes = packet_too_big();
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(DST, SRC);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(DST, SRC));
        assert_eq!(packet.msg_type(), PACKET_TOO_BIG);
        assert!(packet.is_error());
        assert_eq!(packet.mtu(), 1280);
        let (header, _) = etherparse::Icmpv6Header::from_slice(&bytes).unwrap();
        assert_eq!(
            header.icmp_type,
            etherparse::Icmpv6Type::PacketTooBig { mtu: 1280 }
        );

        // The quote claims 1460 payload bytes: a checked view refuses it, an unchecked one and
        // the walk over what is there find the TCP ports.
        let quote = packet.data();
        assert!(Ipv6Packet::new_checked(quote).is_err());
        let quoted = Ipv6Packet::new_unchecked(quote);
        assert_eq!(quoted.dst_addr(), DST);
        let upper = ipv6ext::walk(quoted.next_header().into(), &quote[ipv6::HEADER_LEN..]).unwrap();
        assert_eq!(upper.protocol, IpProtocol::Tcp);
        assert_eq!(
            &quote[ipv6::HEADER_LEN + upper.offset..][..4],
            &[0xc0, 0x00, 0x00, 0x50]
        );
    }

    #[test]
    fn test_param_problem() {
        let mut bytes = packet_too_big();
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(PARAM_PROBLEM);
        packet.set_msg_code(1); // unrecognized next header
        packet.set_pointer(40);
        packet.fill_checksum(DST, SRC);
        assert_eq!(packet.pointer(), 40);
        assert!(packet.is_error());
        assert_eq!(&bytes[4..8], &[0, 0, 0, 40]);
        let (header, _) = etherparse::Icmpv6Header::from_slice(&bytes).unwrap();
        let etherparse::Icmpv6Type::ParameterProblem(problem) = header.icmp_type else {
            panic!("not a parameter problem: {header:?}");
        };
        assert_eq!(problem.pointer, 40);
    }

    #[test]
    fn test_types() {
        let mut bytes = ECHO_BYTES;
        for (msg_type, error) in [
            (DST_UNREACHABLE, true),
            (PACKET_TOO_BIG, true),
            (TIME_EXCEEDED, true),
            (PARAM_PROBLEM, true),
            (127, true),
            (ECHO_REQUEST, false),
            (ECHO_REPLY, false),
            (255, false),
        ] {
            bytes[0] = msg_type;
            assert_eq!(Packet::new_checked(&bytes[..]).unwrap().is_error(), error);
        }
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_mtu(0x0102_0304);
        assert_eq!(packet.rest_of_header(), 0x0102_0304);
        packet.set_rest_of_header(7);
        assert_eq!((packet.pointer(), packet.mtu()), (7, 7));
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
        assert!(!Packet::new_checked(&bytes[..])
            .unwrap()
            .verify_checksum(SRC, DST));
    }

    proptest! {
        #[test]
        fn prop_checksum_agrees_with_etherparse(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
            id in any::<u16>(), seq in any::<u16>(), mtu in any::<u32>(), reply in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..1400),
        ) {
            let echo = etherparse::IcmpEchoHeader { id, seq };
            let icmp_type = match (reply, mtu % 3) {
                (_, 0) => etherparse::Icmpv6Type::PacketTooBig { mtu },
                (true, _) => etherparse::Icmpv6Type::EchoReply(echo),
                (false, _) => etherparse::Icmpv6Type::EchoRequest(echo),
            };
            let header =
                etherparse::Icmpv6Header::with_checksum(icmp_type, src, dst, &data).unwrap();
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend_from_slice(&data);
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
            prop_assert!(packet.verify_checksum(src, dst));
            prop_assert_eq!(packet.is_error(), matches!(icmp_type, etherparse::Icmpv6Type::PacketTooBig { .. }));
            if packet.is_error() {
                prop_assert_eq!(packet.mtu(), mtu);
            } else {
                prop_assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (id, seq));
            }
            packet.fill_checksum(src, dst);
            prop_assert_eq!(packet.checksum(), header.checksum);
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.data(), packet.mtu(), packet.pointer(), packet.is_error());
                let _ = (packet.echo_ident(), packet.verify_checksum(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED));
            }
        }
    }
}
