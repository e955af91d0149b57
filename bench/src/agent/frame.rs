//! Ethernet and IP headers of the agents' frames in either family, and the one's-complement
//! checksums they carry (RFC 1071): the generators' UDP datagrams ([`super::gen`]) and TCP
//! segments ([`super::tcp`]) are written here, and the responder reads segments here.
//!
//! Headers have the simplest shape of their family: IPv4 without options (DF, TTL 64, the
//! caller's identification), IPv6 without extension headers (hop limit 64, traffic class and
//! flow label 0). A received frame of any other shape is not the benchmark's ([`parse_ip`]
//! says `None`).

use super::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ethernet header (no VLAN tag).
pub const ETH_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

impl Family {
    /// The IP header the agents write: 20 bytes (IPv4, no options) or 40 (IPv6, no
    /// extension headers).
    pub fn ip_header_len(self) -> usize {
        match self {
            Family::V4 => 20,
            Family::V6 => 40,
        }
    }

    pub fn ethertype(self) -> u16 {
        match self {
            Family::V4 => ETHERTYPE_IPV4,
            Family::V6 => ETHERTYPE_IPV6,
        }
    }
}

/// One's-complement sum of 16-bit big-endian words (RFC 1071), not yet folded; an odd last
/// byte is padded with zero.
pub fn sum16(data: &[u8]) -> u32 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += u32::from(w);
    }
    s
}

/// Folds a [`sum16`] to 16 bits and complements it: the checksum field's value (0 when a
/// sum over a correct header, checksum field included, is verified).
pub fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Source and destination of one header, of one family. A pair of mixed families (which
/// the agents refuse in their arguments) is written as IPv6, the IPv4 one mapped
/// (`::ffff:a.b.c.d`), so that no input makes a malformed header.
#[derive(Debug, Clone, Copy)]
enum Pair {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Pair {
    fn new(src: IpAddr, dst: IpAddr) -> Pair {
        let v6 = |a: IpAddr| match a {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Pair::V4(s, d),
            _ => Pair::V6(v6(src), v6(dst)),
        }
    }
}

/// The transport checksum's pseudo-header sum, not folded: addresses, protocol and segment
/// length (RFC 768 and 793 for IPv4; RFC 8200 section 8.1 for IPv6, whose upper-layer
/// length is 32 bits).
pub fn pseudo_sum(src: IpAddr, dst: IpAddr, proto: u8, l4_len: usize) -> u32 {
    let len = l4_len as u32;
    let addrs = match Pair::new(src, dst) {
        Pair::V4(s, d) => sum16(&s.octets()) + sum16(&d.octets()),
        Pair::V6(s, d) => sum16(&s.octets()) + sum16(&d.octets()),
    };
    addrs + u32::from(proto) + (len >> 16) + (len & 0xffff)
}

/// The Ethernet and IP headers of one frame.
#[derive(Debug, Clone, Copy)]
pub struct IpHeader {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The transport protocol ([`IPPROTO_UDP`], [`IPPROTO_TCP`]).
    pub proto: u8,
    /// IPv4's identification field (IPv6's fixed header has none).
    pub ident: u16,
}

impl IpHeader {
    pub fn family(&self) -> Family {
        match Pair::new(self.src, self.dst) {
            Pair::V4(..) => Family::V4,
            Pair::V6(..) => Family::V6,
        }
    }

    /// Bytes of the Ethernet and IP headers: where the transport segment starts.
    pub fn len(&self) -> usize {
        ETH_LEN + self.family().ip_header_len()
    }

    /// Writes both headers into `f[..self.len()]`, for a transport segment of `l4_len` bytes
    /// that follows them. `f` must hold [`IpHeader::len`] bytes.
    pub fn write(&self, f: &mut [u8], l4_len: usize) {
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&self.family().ethertype().to_be_bytes());
        let ip = &mut f[ETH_LEN..self.len()];
        ip.fill(0);
        match Pair::new(self.src, self.dst) {
            Pair::V4(src, dst) => {
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
                ip[4..6].copy_from_slice(&self.ident.to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 64;
                ip[9] = self.proto;
                ip[12..16].copy_from_slice(&src.octets());
                ip[16..20].copy_from_slice(&dst.octets());
                let c = fold(sum16(ip));
                ip[10..12].copy_from_slice(&c.to_be_bytes());
            }
            Pair::V6(src, dst) => {
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                ip[6] = self.proto;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&src.octets());
                ip[24..40].copy_from_slice(&dst.octets());
            }
        }
    }

    /// [`pseudo_sum`] of these headers' addresses and protocol.
    pub fn pseudo_sum(&self, l4_len: usize) -> u32 {
        pseudo_sum(self.src, self.dst, self.proto, l4_len)
    }
}

/// The IP packet of a received frame, of the shape the agents write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpView<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// IPv4's identification; 0 for IPv6.
    pub ident: u16,
    /// The IPv4 header's checksum verifies (IPv6 has none: always true).
    pub header_ok: bool,
    /// The transport segment: the IP payload, without the frame's padding.
    pub l4: &'a [u8],
}

/// Reads the IP packet of `frame`: IPv4 without options or IPv6 without extension headers,
/// its length within the frame; `None` for anything else.
pub fn parse_ip(frame: &[u8]) -> Option<IpView<'_>> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_LEN..)?;
    match ethertype {
        ETHERTYPE_IPV4 => {
            if ip.len() < 20 || ip[0] != 0x45 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let l4 = ip.get(20..total)?;
            let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
            Some(IpView {
                src: addr(12).into(),
                dst: addr(16).into(),
                proto: ip[9],
                ident: u16::from_be_bytes([ip[4], ip[5]]),
                header_ok: fold(sum16(&ip[..20])) == 0,
                l4,
            })
        }
        ETHERTYPE_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let l4 = ip.get(40..40 + payload)?;
            let addr = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&ip[at..at + 16]);
                Ipv6Addr::from(o)
            };
            Some(IpView {
                src: addr(8).into(),
                dst: addr(24).into(),
                proto: ip[6],
                ident: 0,
                header_ok: true,
                l4,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: (IpAddr, IpAddr) = (
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)),
        IpAddr::V4(Ipv4Addr::new(198, 18, 0, 129)),
    );
    const V6: (IpAddr, IpAddr) = (
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129)),
    );

    fn header((src, dst): (IpAddr, IpAddr), ident: u16) -> IpHeader {
        IpHeader {
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            src,
            dst,
            proto: IPPROTO_UDP,
            ident,
        }
    }

    #[test]
    fn headers_of_both_families_read_back() {
        for (pair, len, ethertype) in [(V4, 34, [8, 0]), (V6, 54, [0x86, 0xdd])] {
            let h = header(pair, 7);
            assert_eq!(h.len(), len);
            let mut f = vec![0xee; len + 10];
            h.write(&mut f, 10);
            assert_eq!(f[12..14], ethertype);
            let v = parse_ip(&f).expect("our own header");
            assert_eq!((v.src, v.dst, v.proto), (pair.0, pair.1, IPPROTO_UDP));
            assert!(v.header_ok);
            assert_eq!(v.l4.len(), 10);
            // A truncated frame, or a length beyond it, is not read.
            assert_eq!(parse_ip(&f[..len + 9]), None);
            assert_eq!(parse_ip(&f[..len - 1]), None);
        }
        let mut f = vec![0; 34 + 8];
        header(V4, 7).write(&mut f, 8);
        f[22] -= 1; // TTL without the checksum's update
        assert!(!parse_ip(&f).unwrap().header_ok);
        f[14] = 0x46; // options: not ours
        assert_eq!(parse_ip(&f), None);
        assert_eq!(parse_ip(&[0u8; 13]), None);
    }

    /// The IPv6 header against etherparse's reading of it.
    #[test]
    fn ipv6_header_matches_etherparse() {
        let mut f = vec![0; 54 + 8];
        header(V6, 7).write(&mut f, 8);
        let (eth, rest) = etherparse::Ethernet2Header::from_slice(&f).unwrap();
        assert_eq!(eth.ether_type, etherparse::EtherType::IPV6);
        let (ip, _) = etherparse::Ipv6Header::from_slice(rest).unwrap();
        assert_eq!(ip.payload_length, 8);
        assert_eq!(ip.next_header, etherparse::IpNumber::UDP);
        assert_eq!(ip.hop_limit, 64);
        assert_eq!(IpAddr::from(ip.source), V6.0);
        assert_eq!(IpAddr::from(ip.destination), V6.1);
    }

    #[test]
    fn mixed_families_make_an_ipv6_header_with_the_ipv4_address_mapped() {
        let h = header((V6.0, V4.1), 0);
        assert_eq!(h.family(), Family::V6);
        let mut f = vec![0; 54];
        h.write(&mut f, 0);
        let v = parse_ip(&f).unwrap();
        assert_eq!(
            v.dst,
            IpAddr::V6(Ipv4Addr::new(198, 18, 0, 129).to_ipv6_mapped())
        );
    }
}
