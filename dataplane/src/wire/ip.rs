//! The protocol number both IP families share: IPv4's protocol field, IPv6's next header
//! (IANA "Assigned Internet Protocol Numbers").
//!
//! Only the upper-layer protocols the director dispatches on are named; everything else,
//! IPv6 extension headers included (see [`ipv6ext`](super::ipv6ext) for their numbers), is
//! `Unknown(n)` and round-trips unchanged through `u8`.

/// An IPv4 protocol or IPv6 next-header number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// 1
    Icmp,
    /// 6
    Tcp,
    /// 17
    Udp,
    /// 58
    Icmpv6,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(value: u8) -> Self {
        match value {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            58 => IpProtocol::Icmpv6,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(value: IpProtocol) -> Self {
        match value {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Unknown(other) => other,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_round_trip() {
        for (value, protocol) in [
            (1, IpProtocol::Icmp),
            (6, IpProtocol::Tcp),
            (17, IpProtocol::Udp),
            (58, IpProtocol::Icmpv6),
            (0, IpProtocol::Unknown(0)),
            (44, IpProtocol::Unknown(44)),
        ] {
            assert_eq!(IpProtocol::from(value), protocol);
            assert_eq!(u8::from(protocol), value);
        }
        for value in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(value)), value);
        }
    }
}
