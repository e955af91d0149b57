//! ARP packets for Ethernet hardware and IPv4 protocol addresses (RFC 826).
//!
//! Contract: [`Packet::new_checked`] accepts a buffer of at least [`PACKET_LEN`] bytes whose
//! fixed header announces Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4); anything
//! shorter is `Truncated`, any other address format `Malformed`. Trailing bytes (Ethernet
//! padding) are ignored. Every getter of an accepted packet is infallible.

use std::net::Ipv4Addr;

use super::ethernet::Address;
use super::{read_u16, write_u16, Error, Field, Result};

mod field {
    use super::Field;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// Protocol type of IPv4 (its EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;
/// Operation: request.
pub const OP_REQUEST: u16 = 1;
/// Operation: reply.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl Packet<&[u8]> {
    /// Length of an Ethernet/IPv4 ARP packet (in generic code, use [`PACKET_LEN`]).
    pub const PACKET_LEN: usize = PACKET_LEN;
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

    /// `Err(Truncated)` if the buffer is shorter than [`PACKET_LEN`], `Err(Malformed)` if the
    /// packet is not Ethernet/IPv4 ARP.
    #[inline]
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if self.hardware_type() != HTYPE_ETHERNET
            || self.protocol_type() != PTYPE_IPV4
            || self.hardware_len() != 6
            || self.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// The wrapped buffer.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (0x0800 for IPv4).
    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    /// Hardware address length (6).
    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4).
    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation ([`OP_REQUEST`], [`OP_REPLY`], ...).
    #[inline]
    pub fn operation(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::OPER)
    }

    /// Sender hardware address.
    #[inline]
    pub fn source_hardware_addr(&self) -> Address {
        self.mac(field::SHA)
    }

    /// Sender protocol address.
    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        self.ip(field::SPA)
    }

    /// Target hardware address.
    #[inline]
    pub fn target_hardware_addr(&self) -> Address {
        self.mac(field::THA)
    }

    /// Target protocol address.
    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.ip(field::TPA)
    }

    #[inline]
    fn mac(&self, field: Field) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field]);
        Address(a)
    }

    #[inline]
    fn ip(&self, field: Field) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the fixed Ethernet/IPv4 header: htype 1, ptype 0x0800, hlen 6, plen 4.
    #[inline]
    pub fn set_ethernet_ipv4(&mut self) {
        self.set_hardware_type(HTYPE_ETHERNET);
        self.set_protocol_type(PTYPE_IPV4);
        self.set_hardware_len(6);
        self.set_protocol_len(4);
    }

    /// Sets the hardware type.
    #[inline]
    pub fn set_hardware_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    #[inline]
    pub fn set_protocol_type(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, value);
    }

    /// Sets the hardware address length.
    #[inline]
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    #[inline]
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    #[inline]
    pub fn set_operation(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::OPER, value);
    }

    /// Sets the sender hardware address.
    #[inline]
    pub fn set_source_hardware_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    #[inline]
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&addr.octets());
    }

    /// Sets the target hardware address.
    #[inline]
    pub fn set_target_hardware_addr(&mut self, addr: Address) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    #[inline]
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&addr.octets());
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

    /// Who has 10.0.0.1? Tell 10.0.0.2 (02:00:00:00:00:02).
    static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, // htype
        0x08, 0x00, // ptype
        0x06, 0x04, // hlen, plen
        0x00, 0x01, // request
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // sha
        0x0a, 0x00, 0x00, 0x02, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        0x0a, 0x00, 0x00, 0x01, // tpa
    ];

    #[test]
    fn test_deconstruct() {
        let packet = Packet::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), HTYPE_ETHERNET);
        assert_eq!(packet.protocol_type(), PTYPE_IPV4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), OP_REQUEST);
        assert_eq!(
            packet.source_hardware_addr(),
            Address([0x02, 0, 0, 0, 0, 0x02])
        );
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(packet.target_hardware_addr(), Address([0; 6]));
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_ethernet_ipv4();
        packet.set_operation(OP_REQUEST);
        packet.set_source_hardware_addr(Address([0x02, 0, 0, 0, 0, 0x02]));
        packet.set_source_protocol_addr(Ipv4Addr::new(10, 0, 0, 2));
        packet.set_target_hardware_addr(Address([0; 6]));
        packet.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(bytes, REQUEST_BYTES);
    }

    #[test]
    fn test_padding_ignored() {
        let mut bytes = [0u8; 46];
        bytes[..28].copy_from_slice(&REQUEST_BYTES);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
    }

    #[test]
    fn test_truncated() {
        for len in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&REQUEST_BYTES[..len]).unwrap_err(),
                Error::Truncated
            );
        }
    }

    #[test]
    fn test_malformed() {
        // htype, ptype, hlen, plen in turn.
        for (at, value) in [(1, 6), (2, 0x86), (4, 16), (5, 16)] {
            let mut bytes = REQUEST_BYTES;
            bytes[at] = value;
            assert_eq!(
                Packet::new_checked(&bytes[..]).unwrap_err(),
                Error::Malformed
            );
        }
    }
}
