//! Ethernet II frames (IEEE 802.3 with an EtherType, no FCS).
//!
//! Contract: [`Frame::new_checked`] accepts any buffer of at least [`HEADER_LEN`] bytes; every
//! getter of the returned frame is then infallible. VLAN tags are not parsed: a tagged frame
//! reports [`EtherType::Vlan`] and its payload starts at the tag control information.

use core::fmt;

use super::{read_u16, write_u16, Error, Field, Result};

mod field {
    use super::Field;

    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: usize = 14;
}

/// Length of an Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A MAC-48 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// Copies an address out of a six-byte slice; `None` for any other length.
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Option<Address> {
        bytes.try_into().ok().map(Address)
    }

    /// The six bytes.
    #[inline]
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// `ff:ff:ff:ff:ff:ff`.
    #[inline]
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The group bit is set (broadcast included).
    #[inline]
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Neither multicast nor broadcast.
    #[inline]
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl From<[u8; 6]> for Address {
    #[inline]
    fn from(bytes: [u8; 6]) -> Self {
        Address(bytes)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// 0x0800
    Ipv4,
    /// 0x0806
    Arp,
    /// 0x86dd
    Ipv6,
    /// 0x8100 (IEEE 802.1Q tag)
    Vlan,
    /// Anything else.
    Unknown(u16),
}

impl From<u16> for EtherType {
    #[inline]
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    #[inline]
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl Frame<&[u8]> {
    /// Length of an Ethernet II header, as `EthernetFrame::HEADER_LEN` (in generic code, use
    /// the module constant [`HEADER_LEN`]).
    pub const HEADER_LEN: usize = HEADER_LEN;
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buffer` without validation.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
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

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST]);
        Address(a)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC]);
        Address(a)
    }

    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        read_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// Everything after the header (padding included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// Everything after the header, mutably.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod test {
    use super::*;

    static FRAME_BYTES: [u8; 18] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // src
        0x08, 0x00, // IPv4
        0xaa, 0xbb, 0xcc, 0xdd, // payload
    ];

    #[test]
    fn test_deconstruct() {
        let frame = Frame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), Address([0x02, 0, 0, 0, 0, 0x01]));
        assert_eq!(frame.src_addr(), Address([0x02, 0, 0, 0, 0, 0x02]));
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 18];
        let mut frame = Frame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(Address([0x02, 0, 0, 0, 0, 0x01]));
        frame.set_src_addr(Address([0x02, 0, 0, 0, 0, 0x02]));
        frame.set_ethertype(EtherType::Ipv4);
        frame
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(bytes, FRAME_BYTES);

        let (eth, rest) = etherparse::Ethernet2Header::from_slice(&bytes).unwrap();
        assert_eq!(eth.destination, [0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(eth.source, [0x02, 0, 0, 0, 0, 0x02]);
        assert_eq!(eth.ether_type, etherparse::EtherType::IPV4);
        assert_eq!(rest, &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(Frame::HEADER_LEN, 14);
        for len in 0..HEADER_LEN {
            assert_eq!(
                Frame::new_checked(&FRAME_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
        let frame = Frame::new_checked(&FRAME_BYTES[..HEADER_LEN]).unwrap();
        assert!(frame.payload().is_empty());
    }

    #[test]
    fn test_ethertype() {
        for (value, ty) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88cc, EtherType::Unknown(0x88cc)),
        ] {
            assert_eq!(EtherType::from(value), ty);
            assert_eq!(u16::from(ty), value);
        }
    }

    #[test]
    fn test_address() {
        let a = Address([0x02, 0xab, 0, 0x10, 0xff, 0x01]);
        assert_eq!(a.to_string(), "02:ab:00:10:ff:01");
        assert!(a.is_unicast() && !a.is_multicast() && !a.is_broadcast());
        assert!(Address::BROADCAST.is_broadcast() && Address::BROADCAST.is_multicast());
        assert_eq!(
            Address::from_bytes(&[1, 2, 3, 4, 5, 6]),
            Some(Address([1, 2, 3, 4, 5, 6]))
        );
        assert_eq!(Address::from_bytes(&[1, 2, 3]), None);
    }
}
