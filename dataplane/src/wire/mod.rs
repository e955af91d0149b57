//! Zero-copy views of the packet formats the director reads and rewrites.
//!
//! IPv4 (`ipv4`, `icmp`) and IPv6 (`ipv6`, `ipv6ext`, `icmpv6`) share `ip::IpProtocol` and the
//! TCP and UDP views, whose checksums take the addresses of either family.
//!
//! Modelled on smoltcp's `src/wire/`: each format is a `Packet<T: AsRef<[u8]>>` (for Ethernet,
//! `Frame<T>`) wrapping a borrowed or owned buffer, with byte ranges named in a private
//! `mod field`.
//!
//! Contract shared by every view:
//! - `new_unchecked(buffer)` wraps without validation; accessors may then panic on a short
//!   buffer.
//! - `new_checked(buffer)` calls `check_len()` once and only wraps a buffer for which **no
//!   getter can panic**, whatever its bytes: frames come from the Internet.
//! - Setters live in `impl<T: AsRef<[u8]> + AsMut<[u8]>>`. Setters that change a length field
//!   (`set_total_len`, `set_header_len`, `set_len`, `set_payload_len`) can invalidate that
//!   guarantee; call `check_len()` again after using them on untrusted data.
//! - Nothing allocates, nothing is `unsafe`; multi-byte fields are big-endian on the wire.
//! - Walks over variable chains (`ipv6ext::walk`) follow the same rule as `new_checked`: they
//!   return an error rather than panic, whatever the bytes.

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod ipv6ext;
pub mod tcp;
pub mod udp;

use core::fmt;

pub use arp::Packet as ArpPacket;
pub use ethernet::{Address as EthernetAddress, EtherType, Frame as EthernetFrame};
pub use icmp::Packet as IcmpPacket;
pub use icmpv6::Packet as Icmpv6Packet;
pub use ip::IpProtocol;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use ipv6ext::{
    ExtError as Ipv6ExtError, Fragment as Ipv6Fragment, UpperLayer as Ipv6UpperLayer,
};
pub use tcp::{Flags as TcpFlags, Packet as TcpPacket};
pub use udp::Packet as UdpPacket;

/// Why a buffer was refused by `new_checked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header or than a length field says.
    Truncated,
    /// A field holds a value the format forbids (bad version, header length below minimum...).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
        })
    }
}

impl std::error::Error for Error {}

/// Result of validating a buffer.
pub type Result<T> = core::result::Result<T, Error>;

/// A byte range of a header.
pub type Field = core::ops::Range<usize>;

/// Reads the big-endian `u16` at `field` (which must be two bytes long).
#[inline]
fn read_u16(buf: &[u8], field: Field) -> u16 {
    let b = &buf[field];
    u16::from_be_bytes([b[0], b[1]])
}

/// Reads the big-endian `u32` at `field` (which must be four bytes long).
#[inline]
fn read_u32(buf: &[u8], field: Field) -> u32 {
    let b = &buf[field];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Writes `value` big-endian at `field` (which must be two bytes long).
#[inline]
fn write_u16(buf: &mut [u8], field: Field, value: u16) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian at `field` (which must be four bytes long).
#[inline]
fn write_u32(buf: &mut [u8], field: Field, value: u32) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}
