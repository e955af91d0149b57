//! IPv4 packets (RFC 791).
//!
//! Contract: [`Packet::new_checked`] accepts a buffer only if
//! `20 <= header_len <= total_len <= buffer.len()` and the version is 4 (`Truncated` for a
//! buffer shorter than 20 bytes or than `total_len`, `Malformed` otherwise). After that every
//! getter is infallible; [`Packet::header`] and [`Packet::payload`] stop at `header_len` and
//! `total_len` respectively, so Ethernet padding past `total_len` is never seen. Options are
//! not parsed (see [`Packet::has_options`]); the checksum is not checked by `new_checked`
//! (see [`Packet::verify_checksum`]).

use std::net::Ipv4Addr;

// Shared with IPv6 (wire/ip.rs); still reachable here as `wire::ipv4::IpProtocol`.
pub use super::ip::IpProtocol;
use super::{read_u16, write_u16, Error, Field, Result};
use crate::checksum;

mod field {
    use super::Field;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = field::DST_ADDR.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FLAGS_MASK: u16 = 0xe000;
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of a header without options, as `Ipv4Packet::MIN_HEADER_LEN` (in generic code,
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

    /// Validates the version and the two length fields against each other and the buffer.
    ///
    /// `Truncated` if the buffer is shorter than 20 bytes or than `total_len`; `Malformed` if
    /// the version is not 4, `header_len < 20` or `header_len > total_len`.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        let (header_len, total_len) = (self.header_len(), self.total_len());
        if self.version() != 4 || header_len < MIN_HEADER_LEN || header_len > total_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// DSCP and ECN, the former type-of-service byte.
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total length in bytes, header included.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// The DF flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// The MF flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this packet is a fragment: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        self.buffer.as_ref()[field::PROTOCOL].into()
    }

    /// Header checksum.
    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Whether the header carries options (`header_len > 20`).
    #[inline]
    pub fn has_options(&self) -> bool {
        self.header_len() > MIN_HEADER_LEN
    }

    /// Whether the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0
    }

    /// The header, options included: bytes `0..header_len`.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload: bytes `header_len..total_len` (padding after `total_len` excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version, keeping the IHL.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4), keeping the version.
    #[inline]
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets DSCP and ECN.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length in bytes.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Clears the three flag bits, keeping the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.update_flg_off(FLAGS_MASK, 0);
    }

    /// Sets or clears DF.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.update_flg_off(FLAG_DF, if value { FLAG_DF } else { 0 });
    }

    /// Sets or clears MF.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.update_flg_off(FLAG_MF, if value { FLAG_MF } else { 0 });
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        self.update_flg_off(OFFSET_MASK, offset >> 3);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the header checksum.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.header());
        self.set_checksum(value);
    }

    /// The payload, mutably: bytes `header_len..total_len`.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..self.total_len();
        &mut self.buffer.as_mut()[range]
    }

    #[inline]
    fn update_flg_off(&mut self, mask: u16, bits: u16) {
        let old = read_u16(self.buffer.as_ref(), field::FLG_OFF);
        write_u16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (old & !mask) | (bits & mask),
        );
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

    /// 10.0.0.1 -> 10.0.0.2, UDP, DF, TTL 64, 4 payload bytes, then 2 bytes of padding.
    static PACKET_BYTES: [u8; 26] = [
        0x45, 0x00, 0x00, 0x18, // version 4, IHL 5, DSCP/ECN 0, total length 24
        0x12, 0x34, 0x40, 0x00, // ident 0x1234, DF, offset 0
        0x40, 0x11, 0x14, 0x9f, // TTL 64, UDP, checksum
        0x0a, 0x00, 0x00, 0x01, // src
        0x0a, 0x00, 0x00, 0x02, // dst
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0x00, 0x00, // Ethernet padding
    ];

    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0x1234);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Udp);
        assert_eq!(packet.checksum(), 0x149f);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(!packet.has_options());
        assert!(packet.verify_checksum());
        assert_eq!(packet.header(), &PACKET_BYTES[..20]);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);

        let (header, _) = etherparse::Ipv4Header::from_slice(&PACKET_BYTES).unwrap();
        assert_eq!(header.calc_header_checksum(), packet.checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 26];
        bytes[24..].fill(0);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp_ecn(0);
        packet.set_total_len(24);
        packet.set_ident(0x1234);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::Udp);
        packet.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        packet.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        packet.fill_checksum();
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);

        let (header, payload) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        assert_eq!(header.total_len, 24);
        assert_eq!(header.identification, 0x1234);
        assert!(header.dont_fragment);
        assert_eq!(header.time_to_live, 64);
        assert_eq!(header.protocol, etherparse::IpNumber::UDP);
        assert_eq!(header.source, [10, 0, 0, 1]);
        assert_eq!(header.destination, [10, 0, 0, 2]);
        assert_eq!(header.header_checksum, header.calc_header_checksum());
        assert_eq!(&payload[..4], &PAYLOAD_BYTES);
    }

    #[test]
    fn test_fragments() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        assert!(packet.is_fragment() && packet.more_frags() && packet.dont_frag());
        packet.clear_flags();
        assert!(!packet.is_fragment() && !packet.dont_frag());
        packet.set_frag_offset(1480);
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment() && !packet.more_frags());
        assert_eq!(&bytes[6..8], &[0x00, 185]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Packet::MIN_HEADER_LEN, 20);
        for len in 0..24 {
            assert_eq!(
                Packet::new_checked(&PACKET_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        assert!(Packet::new_checked(&PACKET_BYTES[..24]).is_ok());
    }

    #[test]
    fn test_total_len_overflow() {
        let mut bytes = PACKET_BYTES;
        bytes[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn test_total_len_underflow() {
        let mut bytes = PACKET_BYTES;
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn test_bad_header_len() {
        for ihl in [0u8, 4] {
            let mut bytes = PACKET_BYTES;
            bytes[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Malformed
            );
        }
        // IHL 7: a 28-byte header in a 24-byte packet.
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x47;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn test_bad_version() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed
        );
    }

    #[test]
    fn test_options() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL), empty payload.
        let mut bytes = [0u8; 24];
        bytes[..20].copy_from_slice(&PACKET_BYTES[..20]);
        bytes[20..].copy_from_slice(&[1, 1, 1, 0]);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_header_len(24);
        packet.fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.has_options());
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.header().len(), 24);
        assert!(packet.payload().is_empty());
        assert!(packet.verify_checksum());
        let (header, _) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        assert_eq!(header.options.as_slice(), &[1, 1, 1, 0]);
        assert_eq!(header.header_checksum, header.calc_header_checksum());
    }

    #[test]
    fn test_bad_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[8] = 63; // TTL changed, checksum not updated
        assert!(!Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.fill_checksum();
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_protocol() {
        for (value, protocol) in [
            (1, IpProtocol::Icmp),
            (6, IpProtocol::Tcp),
            (17, IpProtocol::Udp),
            (47, IpProtocol::Unknown(47)),
        ] {
            assert_eq!(IpProtocol::from(value), protocol);
            assert_eq!(u8::from(protocol), value);
        }
    }

    fn etherparse_header() -> impl Strategy<Value = etherparse::Ipv4Header> {
        (
            (any::<u8>(), any::<u16>(), any::<bool>(), any::<bool>()),
            (
                0u16..0x2000,
                any::<u8>(),
                any::<u8>(),
                any::<[u8; 4]>(),
                any::<[u8; 4]>(),
            ),
            (0usize..=10, any::<[u8; 40]>(), any::<Option<u16>>()),
        )
            .prop_map(
                |((tos, ident, df, mf), (off, ttl, proto, src, dst), (words, opts, sum))| {
                    let options = etherparse::Ipv4Options::try_from(&opts[..words * 4]).unwrap();
                    let mut h = etherparse::Ipv4Header {
                        dscp: etherparse::Ipv4Dscp::try_new(tos >> 2).unwrap(),
                        ecn: etherparse::Ipv4Ecn::try_new(tos & 3).unwrap(),
                        total_len: (20 + words * 4) as u16,
                        identification: ident,
                        dont_fragment: df,
                        more_fragments: mf,
                        fragment_offset: etherparse::IpFragOffset::try_new(off).unwrap(),
                        time_to_live: ttl,
                        protocol: etherparse::IpNumber(proto),
                        header_checksum: 0,
                        source: src,
                        destination: dst,
                        options,
                    };
                    // Mostly correct checksums, sometimes a random (usually wrong) one.
                    h.header_checksum = sum.unwrap_or_else(|| h.calc_header_checksum());
                    h
                },
            )
    }

    proptest! {
        #[test]
        fn prop_agrees_with_etherparse(header in etherparse_header()) {
            let bytes = header.to_bytes();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(
                packet.verify_checksum(),
                header.header_checksum == header.calc_header_checksum()
            );
            prop_assert_eq!(packet.header_len(), header.header_len());
            prop_assert_eq!(packet.dscp_ecn(), (header.dscp.value() << 2) | header.ecn.value());
            prop_assert_eq!(packet.ident(), header.identification);
            prop_assert_eq!(packet.dont_frag(), header.dont_fragment);
            prop_assert_eq!(packet.more_frags(), header.more_fragments);
            prop_assert_eq!(packet.frag_offset(), header.fragment_offset.byte_offset());
            prop_assert_eq!(packet.ttl(), header.time_to_live);
            prop_assert_eq!(u8::from(packet.protocol()), header.protocol.0);
            prop_assert_eq!(packet.src_addr().octets(), header.source);
            prop_assert_eq!(packet.dst_addr().octets(), header.destination);
        }

        #[test]
        fn prop_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.header(), packet.payload(), packet.verify_checksum());
                let _ = (packet.src_addr(), packet.dst_addr(), packet.frag_offset());
            }
        }
    }
}
