//! Source hashing (`sh`), as IPVS's ip_vs_sh.c (with its `sh-fallback` and `sh-port` flags).
//!
//! A 256-bucket table (IP_VS_SH_TAB_BITS = 8) maps a hash of the client address to a server, so
//! a client keeps landing on the same server for as long as the server list does not change.
//!
//! The table is filled once, in [`SourceHashing::new`], as ip_vs_sh_reassign fills it, over the
//! servers in their canonical order ([`crate::canonical_order`]: by address and port, so that
//! directors with the same servers agree whatever order they were added in; IPVS walks its list
//! order): bucket 0, 1, 2, ... is given to the current server, and the walk moves on to the
//! next server (wrapping round to the first) once the current one has had `weight` consecutive
//! buckets. So
//! weights 3, 1 read `A A A B A A A B ...`, and a server's share of the buckets is its share of
//! the weights, rounded to the 256 buckets (a weight of 256 or more takes every remaining bucket).
//! As in IPVS, a server of weight 0 still takes one bucket per round (the kernel's
//! `++d_count >= weight` moves on after one bucket); a pick that hashes there finds it
//! unavailable, exactly as IPVS does. With no servers every bucket is empty.
//!
//! The bucket of a client is ip_vs_sh_hashkey:
//! `(offset + hash_32(ntohs(port) + ntohl(caddr), 8)) & 255`, where `hash_32` is
//! include/linux/hash.h's golden-ratio multiply `(val * 0x61C88647) >> (32 - bits)` on `u32`
//! (the top 8 bits of the product) and additions wrap. `port` is the client port with `sh-port`
//! for TCP, UDP and SCTP (ip_vs_sh_get_port), 0 otherwise; `offset` is 0 for the first look-up.
//! The arithmetic is the kernel's, so for the same servers, added to IPVS in ascending order,
//! xvs picks the same server as IPVS for every client.
//!
//! A pick returns the bucket's server when it is available (weight above 0, not overloaded).
//! Otherwise, without `sh-fallback`, there is no server (IPVS: "no destination available");
//! with it, ip_vs_sh_get_fallback rehashes with `roffset = (offset + ihash) % 256` for
//! `offset` in 0..256 and takes the first available server: since the hash of the same client
//! is `ihash`, that visits buckets `(2 * ihash + offset) & 255`, every bucket once, in the
//! kernel's order. Picks never allocate; the table is 512 bytes, boxed so that the
//! [`Scheduler`](crate::Scheduler) enum stays small.

use crate::{fold, Dest, Flags, Flow, Load};
use std::net::IpAddr;

/// IP_VS_SH_TAB_BITS (the default CONFIG_IP_VS_SH_TAB_BITS).
pub const TAB_BITS: u32 = 8;
/// IP_VS_SH_TAB_SIZE: 256 buckets.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
/// IP_VS_SH_TAB_MASK.
const TAB_MASK: u32 = (1 << TAB_BITS) - 1;
/// A bucket with no server (IPVS's NULL), only when there are no servers.
const EMPTY: u16 = u16::MAX;

/// include/linux/hash.h `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// include/linux/hash.h `hash_32`: the top `bits` bits of `val * GOLDEN_RATIO_32` (mod 2^32).
#[inline]
fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// ip_vs_sh_hashkey: `port` in host order (0 unless hashing ports); IPv6 addresses folded.
#[inline]
fn hashkey(addr: impl Into<IpAddr>, port: u16, offset: u32) -> usize {
    let h = hash_32(u32::from(port).wrapping_add(fold(addr.into())), TAB_BITS);
    (offset.wrapping_add(h) & TAB_MASK) as usize
}

/// ip_vs_sh_get_port: the client port for TCP, UDP and SCTP, 0 for anything else.
#[inline]
fn hash_port(flow: &Flow, flags: Flags) -> u16 {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const SCTP: u8 = 132;
    match flow.proto {
        TCP | UDP | SCTP if flags.port => flow.cport,
        _ => 0,
    }
}

#[derive(Debug)]
pub struct SourceHashing {
    /// Bucket -> index into `dests`, [`EMPTY`] when there are no servers. Only the first 256
    /// servers can ever own a bucket, so `u16` always holds the index.
    buckets: Box<[u16; TAB_SIZE]>,
    flags: Flags,
}

impl Default for SourceHashing {
    fn default() -> Self {
        SourceHashing::new(&[], Flags::default())
    }
}

impl SourceHashing {
    /// The table for `dests` in their canonical order, as ip_vs_sh_reassign builds it.
    pub fn new(dests: &[Dest], flags: Flags) -> Self {
        let mut buckets = Box::new([EMPTY; TAB_SIZE]);
        let order = crate::canonical_order(dests);
        if !dests.is_empty() {
            // `p` walks `order`; the bucket holds the server's index in `dests`.
            let mut p = 0usize;
            let mut d_count = 0u32;
            for b in buckets.iter_mut() {
                // An index of `dests`, which holds fewer than u16::MAX servers (EMPTY).
                *b = order[p] as u16;
                // "Don't move to next dest until filling weight"
                d_count += 1;
                if d_count >= dests[order[p]].weight {
                    p = (p + 1) % order.len();
                    d_count = 0;
                }
            }
        }
        SourceHashing { buckets, flags }
    }

    /// The server `dests[i]` owning bucket `b`, if any (for listings and tests).
    pub fn bucket(&self, b: usize) -> Option<usize> {
        match self.buckets.get(b) {
            Some(&i) if i != EMPTY => Some(usize::from(i)),
            _ => None,
        }
    }

    /// ip_vs_sh_get, or ip_vs_sh_get_fallback with `sh-fallback`.
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        let port = hash_port(flow, self.flags);
        let available = |i: usize| dests.get(i).is_some_and(|d| d.accepts(load, i));

        let ihash = hashkey(flow.caddr, port, 0);
        let first = self.bucket(ihash)?;
        if available(first) {
            return Some(first);
        }
        if !self.flags.fallback {
            return None;
        }
        // "loop around the table starting from ihash to find a new dest"
        for offset in 0..TAB_SIZE {
            let roffset = ((offset + ihash) % TAB_SIZE) as u32;
            let i = self.bucket(hashkey(flow.caddr, port, roffset))?;
            if available(i) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn flow(caddr: impl Into<std::net::IpAddr>, cport: u16) -> Flow {
        Flow {
            proto: 6,
            caddr: caddr.into(),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 129).into(),
            vport: 80,
        }
    }

    /// A client address from a counter: splitmix64, so tests do not depend on any RNG crate.
    fn client(n: u64) -> Ipv4Addr {
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ipv4Addr::from((z ^ (z >> 31)) as u32)
    }

    fn fallback() -> Flags {
        Flags {
            fallback: true,
            port: false,
        }
    }

    #[test]
    fn hash_is_the_kernels() {
        // hash_32(1, 8) = 0x61C88647 >> 24; hash_32(2, 8) = 0xC3910C8E >> 24.
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 1), 0, 0), 0x61);
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 2), 0, 0), 0xC3);
        // The port is added to the host-order address before hashing: 0.0.0.1 port 1 = 2.
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 1), 1, 0), 0xC3);
        // 10.0.0.1 = 0x0A000001: the product is 0xC6000000 + 0x61C88647 (mod 2^32).
        assert_eq!(0x0A00_0001u32.wrapping_mul(GOLDEN_RATIO_32), 0x27C8_8647);
        assert_eq!(hashkey(Ipv4Addr::new(10, 0, 0, 1), 0, 0), 0x27);
        // The offset is added after hashing, modulo the table.
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 2), 0, 0x40), 0x03);
    }

    #[test]
    fn buckets_follow_ip_vs_sh_reassign() {
        let sh = SourceHashing::new(&dests(&[3, 1, 0, 2]), Flags::default());
        let first: Vec<_> = (0..14).map(|b| sh.bucket(b).unwrap()).collect();
        // Weight 0 still takes one bucket per round, as in the kernel.
        assert_eq!(first, [0, 0, 0, 1, 2, 3, 3, 0, 0, 0, 1, 2, 3, 3]);
        let mut counts = [0; 4];
        for b in 0..TAB_SIZE {
            counts[sh.bucket(b).unwrap()] += 1;
        }
        // 36 rounds of 7 buckets, then A A A B.
        assert_eq!(counts, [111, 37, 36, 72]);
        // Weights of 256 and more take every remaining bucket.
        let big = SourceHashing::new(&dests(&[1, 300, 1]), Flags::default());
        assert_eq!(big.bucket(0), Some(0));
        assert!((1..TAB_SIZE).all(|b| big.bucket(b) == Some(1)));
        assert_eq!(SourceHashing::new(&[], Flags::default()).bucket(0), None);
    }

    #[test]
    fn same_client_same_server_and_tables_are_deterministic() {
        let d = dests(&[1, 2, 3, 4]);
        let a = SourceHashing::new(&d, Flags::default());
        let b = SourceHashing::new(&d, Flags::default());
        assert_eq!(a.buckets, b.buckets);
        for n in 0..1000 {
            let f = flow(client(n), 1000 + n as u16);
            let i = a.pick(&d, &NoLoad, &f);
            assert!(i.is_some());
            assert_eq!(i, b.pick(&d, &NoLoad, &f));
            // Without sh-port the client port does not matter.
            assert_eq!(i, a.pick(&d, &NoLoad, &flow(f.caddr, 7)));
        }
        // Frozen values: they can only change if the kernel arithmetic does.
        let picks: Vec<_> = (0..8)
            .map(|n| {
                a.pick(&d, &NoLoad, &flow(Ipv4Addr::new(10, 0, 0, n), 0))
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, golden_picks(&a));
    }

    /// The servers that clients 10.0.0.0..8 get, computed by hand from the kernel formulas.
    fn golden_picks(sh: &SourceHashing) -> Vec<usize> {
        (0..8u32)
            .map(|n| {
                let h = (0x0A00_0000u32 + n).wrapping_mul(0x61C8_8647) >> 24;
                sh.bucket(h as usize).unwrap()
            })
            .collect()
    }

    #[test]
    fn port_is_hashed_only_with_the_flag_and_for_port_protocols() {
        let d = dests(&[1; 8]);
        let sh = SourceHashing::new(
            &d,
            Flags {
                fallback: false,
                port: true,
            },
        );
        let c = Ipv4Addr::new(10, 1, 2, 3);
        let by_port: std::collections::BTreeSet<_> = (0..64)
            .map(|p| sh.pick(&d, &NoLoad, &flow(c, 1024 + p)))
            .collect();
        assert!(by_port.len() > 1);
        // ICMP has no port: every "port" maps as port 0.
        let icmp = |p| Flow {
            proto: 1,
            ..flow(c, p)
        };
        let first = sh.pick(&d, &NoLoad, &icmp(1));
        assert!((0..64).all(|p| sh.pick(&d, &NoLoad, &icmp(p)) == first));
    }

    #[test]
    fn unavailable_without_fallback_is_none() {
        // Server 1 is overloaded (upper threshold 1, one connection), server 2 quiesced.
        let mut d = dests(&[1, 1, 0, 1]);
        d[1].upper_threshold = 1;
        let load: [(u64, u64); 4] = [(0, 0), (1, 0), (0, 0), (0, 0)];
        let plain = SourceHashing::new(&d, Flags::default());
        let fb = SourceHashing::new(&d, fallback());
        let (mut none, mut picked) = (0, [0; 4]);
        for n in 0..10_000 {
            let f = flow(client(n), 0);
            let owner = plain.bucket(hashkey(f.caddr, 0, 0)).unwrap();
            match plain.pick(&d, &load[..], &f) {
                None => {
                    assert!(owner == 1 || owner == 2);
                    none += 1;
                }
                Some(i) => assert_eq!(i, owner),
            }
            let i = fb.pick(&d, &load[..], &f).unwrap();
            picked[i] += 1;
            if owner != 1 && owner != 2 {
                assert_eq!(i, owner);
            }
        }
        assert!(none > 0);
        assert_eq!((picked[1], picked[2]), (0, 0));
        assert!(picked[0] > 0 && picked[3] > 0);
    }

    #[test]
    fn fallback_walks_buckets_from_twice_the_hash() {
        // Bucket b belongs to server b % 4; servers 0 and 2 are down.
        let d = dests(&[1, 0, 1, 1]);
        let up = dests(&[1, 1, 1, 1]);
        let sh = SourceHashing::new(&up, fallback());
        let mut d2 = up.clone();
        d2[0].weight = 0;
        d2[2].weight = 0;
        let mut seen = 0;
        for n in 0..10_000 {
            let f = flow(client(n), 0);
            let ihash = hashkey(f.caddr, 0, 0);
            if ihash % 4 == 2 {
                // The kernel's walk starts at (2 * ihash) & 255, a bucket of server 0, then
                // server 1's: a naive walk from ihash + 1 would give server 3.
                assert_eq!(sh.pick(&d2, &NoLoad, &f), Some(1));
                seen += 1;
            }
        }
        assert!(seen > 0);
        // Everything down: None, with or without the flag.
        let down = dests(&[0, 0, 0, 0]);
        assert_eq!(sh.pick(&down, &NoLoad, &flow(client(1), 0)), None);
        assert_eq!(
            SourceHashing::new(&d, fallback()).pick(&down, &NoLoad, &flow(client(1), 0)),
            None
        );
    }

    #[test]
    fn no_servers_is_none() {
        for flags in [Flags::default(), fallback()] {
            let sh = SourceHashing::new(&[], flags);
            assert_eq!(sh.pick(&[], &NoLoad, &flow(client(3), 0)), None);
        }
    }

    #[test]
    fn shares_follow_weights() {
        // 1:2:3:4 into 256 buckets: 26, 52, 78, 100, i.e. within 2.5% of the weights.
        let d = dests(&[1, 2, 3, 4]);
        let sh = SourceHashing::new(&d, Flags::default());
        let n = 100_000;
        let mut counts = [0u32; 4];
        for c in 0..n {
            counts[sh.pick(&d, &NoLoad, &flow(client(c), 0)).unwrap()] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let share = f64::from(c) / n as f64;
            let want = f64::from(d[i].weight) / 10.0;
            assert!(
                (share / want - 1.0).abs() < 0.05,
                "server {i}: {share} vs {want}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Random clients spread as the buckets do (within 1% of the clients), and the buckets
        /// as the weights do (each server's bucket count within its weight of the ideal).
        #[test]
        fn clients_spread_as_buckets_and_weights(weights in proptest::collection::vec(1u32..=8, 1..12), seed in any::<u64>()) {
            let d = dests(&weights);
            let sh = SourceHashing::new(&d, Flags::default());
            let total: u32 = weights.iter().sum();
            let mut buckets = vec![0u32; d.len()];
            for b in 0..TAB_SIZE {
                buckets[sh.bucket(b).unwrap()] += 1;
            }
            let n = 100_000u64;
            let mut clients = vec![0u32; d.len()];
            for c in 0..n {
                clients[sh.pick(&d, &NoLoad, &flow(client(seed.wrapping_add(c)), 0)).unwrap()] += 1;
            }
            for i in 0..d.len() {
                let ideal = f64::from(weights[i]) * TAB_SIZE as f64 / f64::from(total);
                prop_assert!((f64::from(buckets[i]) - ideal).abs() <= f64::from(weights[i]));
                let by_buckets = f64::from(buckets[i]) / TAB_SIZE as f64;
                let by_clients = f64::from(clients[i]) / n as f64;
                prop_assert!((by_clients - by_buckets).abs() < 0.01, "{} vs {}", by_clients, by_buckets);
            }
        }
    }
}
