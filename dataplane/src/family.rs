//! Address families: what a per-family table ([`crate::conntrack::ConnTable`],
//! [`crate::fullnat::LocalPorts`]) asks of its addresses.
//!
//! The connection table is generic over its address type rather than holding [`IpAddr`]s:
//! an `IpAddr` takes 17 bytes against an `Ipv4Addr`'s 4, so one table for both families would
//! grow every IPv4 entry from 48 bytes to about 100 (see the conntrack module documentation),
//! and put a branch on the family in every hash and compare of the hot path. Instead each
//! worker may keep one table per family; [`Address`] is what differs between them, resolved
//! at compile time (monomorphisation, no runtime dispatch).
//!
//! [`Address`] is sealed: implemented for [`Ipv4Addr`] and [`Ipv6Addr`] only.
//!
//! [`IpAddr`]: std::net::IpAddr

use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod sealed {
    pub trait Sealed {}
    impl Sealed for std::net::Ipv4Addr {}
    impl Sealed for std::net::Ipv6Addr {}
}

/// An address family's address, as the connection table and FullNAT's local ports use it.
///
/// The hashes are keyed by the caller's [`ahash::RandomState`], one fold per call of
/// `RandomState::hash_one`: IPv4 packs a whole tuple into one 128-bit word, IPv6 feeds its 37
/// bytes as two 128-bit words and one 64-bit word to the same keyed hasher.
pub trait Address:
    sealed::Sealed + Copy + Eq + Hash + Debug + Display + Send + Sync + Into<IpAddr> + 'static
{
    /// `addr` if it is of this family: the configuration ([`crate::snapshot`]) holds
    /// addresses of both.
    fn from_ip(addr: IpAddr) -> Option<Self>;

    /// The keyed hash of the 5-tuple `proto, src:src_port -> dst:dst_port` (the connection
    /// table's inbound index).
    fn tuple_hash(
        hasher: &ahash::RandomState,
        proto: u8,
        src: Self,
        src_port: u16,
        dst: Self,
        dst_port: u16,
    ) -> u64;

    /// The keyed hash of one endpoint `proto, addr:port` (the connection table's reply index,
    /// which hashes the client's endpoint alone).
    fn endpoint_hash(hasher: &ahash::RandomState, proto: u8, addr: Self, port: u16) -> u64;

    /// The 64-bit word [`crate::conntrack::owner_of`] mixes with its seed to pick the worker of
    /// endpoint `addr:port`. Distinct ports of one address always give distinct words (so
    /// FullNAT's ports of a local address spread over the workers).
    fn owner_word(addr: Self, port: u16) -> u64;
}

impl Address for Ipv4Addr {
    #[inline(always)]
    fn from_ip(addr: IpAddr) -> Option<Self> {
        match addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        }
    }

    /// The tuple as one word, so that hashing it is a single keyed fold (aHash's `write_u128`)
    /// rather than one per field.
    #[inline(always)]
    fn tuple_hash(
        hasher: &ahash::RandomState,
        proto: u8,
        src: Self,
        src_port: u16,
        dst: Self,
        dst_port: u16,
    ) -> u64 {
        hasher.hash_one(
            u128::from(proto) << 96
                | u128::from(u32::from(src)) << 64
                | u128::from(src_port) << 48
                | u128::from(u32::from(dst)) << 16
                | u128::from(dst_port),
        )
    }

    #[inline(always)]
    fn endpoint_hash(hasher: &ahash::RandomState, proto: u8, addr: Self, port: u16) -> u64 {
        hasher.hash_one(u64::from(proto) << 48 | u64::from(u32::from(addr)) << 16 | u64::from(port))
    }

    /// The address and port side by side (48 bits): exact.
    #[inline(always)]
    fn owner_word(addr: Self, port: u16) -> u64 {
        u64::from(u32::from(addr)) << 16 | u64::from(port)
    }
}

impl Address for Ipv6Addr {
    #[inline(always)]
    fn from_ip(addr: IpAddr) -> Option<Self> {
        match addr {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => None,
        }
    }

    /// The two addresses as two words and protocol and ports (40 bits) as a third: three folds
    /// of one keyed hasher.
    #[inline(always)]
    fn tuple_hash(
        hasher: &ahash::RandomState,
        proto: u8,
        src: Self,
        src_port: u16,
        dst: Self,
        dst_port: u16,
    ) -> u64 {
        hasher.hash_one((
            u128::from(src),
            u128::from(dst),
            u64::from(proto) << 32 | u64::from(src_port) << 16 | u64::from(dst_port),
        ))
    }

    #[inline(always)]
    fn endpoint_hash(hasher: &ahash::RandomState, proto: u8, addr: Self, port: u16) -> u64 {
        hasher.hash_one((u128::from(addr), u64::from(proto) << 16 | u64::from(port)))
    }

    /// The address folded to 64 bits (its two halves, network prefix and interface
    /// identifier, XORed), rotated by 16 bits and the port XORed into its low 16: for one
    /// address, a bijection of the port. Two addresses whose halves XOR alike share their
    /// owners, which a client could arrange but not steer: the seed still decides which
    /// worker that is.
    #[inline(always)]
    fn owner_word(addr: Self, port: u16) -> u64 {
        let a = u128::from(addr);
        let folded = (a >> 64) as u64 ^ a as u64;
        folded.rotate_left(16) ^ u64::from(port)
    }
}

/// What tests run for both families share: addresses, and a macro making one test per family.
#[cfg(test)]
pub(crate) mod testing {
    use super::Address;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An [`Address`] tests can make from two small numbers.
    pub trait TestAddr: Address {
        /// IPv4 `198.<net>.0.<host>` (198.18.0.0/15, for benchmarks); IPv6
        /// `2001:2:0:<net>::<host>` (2001:2::/48, likewise).
        fn test_addr(net: u8, host: u8) -> Self;
    }

    impl TestAddr for Ipv4Addr {
        fn test_addr(net: u8, host: u8) -> Self {
            Ipv4Addr::new(198, net, 0, host)
        }
    }

    impl TestAddr for Ipv6Addr {
        fn test_addr(net: u8, host: u8) -> Self {
            Ipv6Addr::new(0x2001, 2, 0, u16::from(net), 0, 0, 0, u16::from(host))
        }
    }

    /// For each generic test function `name::<A: TestAddr>()` listed, a module `name` of two
    /// tests, `v4` and `v6`, running it for each family.
    macro_rules! for_both_families {
        ($($name:ident),* $(,)?) => {
            $(
                mod $name {
                    #[test]
                    fn v4() {
                        super::$name::<std::net::Ipv4Addr>();
                    }

                    #[test]
                    fn v6() {
                        super::$name::<std::net::Ipv6Addr>();
                    }
                }
            )*
        };
    }
    pub(crate) use for_both_families;
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x20);

    #[test]
    fn ipv6_tuple_hashes_differ_per_field() {
        let h = ahash::RandomState::new();
        let base = Ipv6Addr::tuple_hash(&h, 6, A, 1000, B, 80);
        for other in [
            Ipv6Addr::tuple_hash(&h, 17, A, 1000, B, 80),
            Ipv6Addr::tuple_hash(&h, 6, B, 1000, B, 80),
            Ipv6Addr::tuple_hash(&h, 6, A, 1001, B, 80),
            Ipv6Addr::tuple_hash(&h, 6, A, 1000, A, 80),
            Ipv6Addr::tuple_hash(&h, 6, A, 1000, B, 81),
            // Swapped endpoints.
            Ipv6Addr::tuple_hash(&h, 6, B, 80, A, 1000),
        ] {
            assert_ne!(other, base);
        }
        assert_eq!(Ipv6Addr::tuple_hash(&h, 6, A, 1000, B, 80), base);
        assert_ne!(
            Ipv6Addr::endpoint_hash(&h, 6, A, 1000),
            Ipv6Addr::endpoint_hash(&h, 17, A, 1000)
        );
    }

    #[test]
    fn owner_words_are_distinct_per_port() {
        let mut seen = std::collections::HashSet::new();
        for port in 0..=u16::MAX {
            assert!(seen.insert(Ipv6Addr::owner_word(A, port)));
        }
        assert_eq!(
            Ipv4Addr::owner_word(Ipv4Addr::new(198, 18, 0, 201), 0x1234),
            0xc612_00c9_1234
        );
        // Every bit of the address counts.
        for bit in 0..128 {
            let flipped = Ipv6Addr::from(u128::from(A) ^ 1 << bit);
            assert_ne!(
                Ipv6Addr::owner_word(flipped, 80),
                Ipv6Addr::owner_word(A, 80)
            );
        }
    }
}
