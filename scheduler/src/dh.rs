//! Destination hashing (`dh`), as IPVS's ip_vs_dh.c.
//!
//! A 256-bucket table (IP_VS_DH_TAB_BITS = 8) maps a hash of the packet's destination address
//! to a server. It was meant for cache clusters, where a firewall-mark service catches traffic
//! to many destinations and each destination should always hit the same cache; in an xvs
//! service the destination is the virtual address (`flow.vaddr`), so every connection to one
//! virtual address goes to the same server while that server is available.
//!
//! The table is filled once, in [`DestinationHashing::new`], as ip_vs_dh_reassign fills it:
//! bucket `b` belongs to server `b mod n` (servers in their canonical order,
//! [`crate::canonical_order`], where IPVS takes its list order; one bucket each per round;
//! weights are not used, and only the first 256 servers get a bucket). The bucket of an address
//! is ip_vs_dh_hashkey, `hash_32(ntohl(daddr), 8)`: the top 8 bits of
//! `daddr * 0x61C88647 (mod 2^32)` (include/linux/hash.h's golden-ratio hash; kernels before
//! the switch to `hash_32` used the low 8 bits of `daddr * 2654435761` instead). The arithmetic
//! is the kernel's, so for the same servers (added to IPVS in ascending order) xvs and IPVS
//! agree on every address, and xvs directors agree whatever order they added them in.
//!
//! A pick returns the bucket's server if it is available (weight above 0, not overloaded),
//! otherwise none: dh has no fallback in IPVS either (ip_vs_dh_schedule returns NULL and the
//! service's cache-bypass, if any, takes over). Picks never allocate; the table is boxed so
//! that the [`Scheduler`](crate::Scheduler) enum stays small.

use crate::{fold, Dest, Flow, Load};
use std::net::IpAddr;

/// IP_VS_DH_TAB_BITS (the default CONFIG_IP_VS_DH_TAB_BITS).
pub const TAB_BITS: u32 = 8;
/// IP_VS_DH_TAB_SIZE: 256 buckets.
pub const TAB_SIZE: usize = 1 << TAB_BITS;
/// A bucket with no server (IPVS's NULL), only when there are no servers.
const EMPTY: u16 = u16::MAX;

/// include/linux/hash.h `GOLDEN_RATIO_32`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// ip_vs_dh_hashkey: include/linux/hash.h `hash_32(ntohl(addr_fold), IP_VS_DH_TAB_BITS)`.
#[inline]
fn hashkey(addr: impl Into<IpAddr>) -> usize {
    (fold(addr.into()).wrapping_mul(GOLDEN_RATIO_32) >> (32 - TAB_BITS)) as usize
}

#[derive(Debug)]
pub struct DestinationHashing {
    /// Bucket -> index into `dests` (< 256), [`EMPTY`] when there are no servers.
    buckets: Box<[u16; TAB_SIZE]>,
}

impl Default for DestinationHashing {
    fn default() -> Self {
        DestinationHashing::new(&[])
    }
}

impl DestinationHashing {
    /// The table for `dests` in their canonical order, as ip_vs_dh_reassign builds it.
    pub fn new(dests: &[Dest]) -> Self {
        let mut buckets = Box::new([EMPTY; TAB_SIZE]);
        let order = crate::canonical_order(dests);
        if !dests.is_empty() {
            for (b, slot) in buckets.iter_mut().enumerate() {
                // An index of `dests`, which holds fewer than u16::MAX servers (EMPTY).
                *slot = order[b % order.len()] as u16;
            }
        }
        DestinationHashing { buckets }
    }

    /// The server `dests[i]` owning bucket `b`, if any (for listings and tests).
    pub fn bucket(&self, b: usize) -> Option<usize> {
        match self.buckets.get(b) {
            Some(&i) if i != EMPTY => Some(usize::from(i)),
            _ => None,
        }
    }

    /// ip_vs_dh_schedule: the server of the destination's bucket, if it may take a connection.
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        let i = self.bucket(hashkey(flow.vaddr))?;
        dests
            .get(i)
            .is_some_and(|d| d.accepts(load, i))
            .then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use std::net::Ipv4Addr;

    fn flow(
        caddr: impl Into<std::net::IpAddr>,
        cport: u16,
        vaddr: impl Into<std::net::IpAddr>,
    ) -> Flow {
        Flow {
            proto: 6,
            caddr: caddr.into(),
            cport,
            vaddr: vaddr.into(),
            vport: 80,
        }
    }

    #[test]
    fn hash_is_the_kernels() {
        // hash_32(x, 8) = top byte of x * 0x61C88647 (mod 2^32).
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 1)), 0x61);
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 2)), 0xC3);
        // 0x0A000001 * 0x61C88647 = 0xC6000000 + 0x61C88647 = 0x27C88647 (mod 2^32).
        assert_eq!(hashkey(Ipv4Addr::new(10, 0, 0, 1)), 0x27);
        assert_eq!(hashkey(Ipv4Addr::new(0, 0, 0, 0)), 0);
    }

    #[test]
    fn buckets_follow_ip_vs_dh_reassign() {
        let dh = DestinationHashing::new(&dests(&[5, 0, 1]));
        assert!((0..TAB_SIZE).all(|b| dh.bucket(b) == Some(b % 3)));
        // More servers than buckets: only the first 256 get one.
        let many: Vec<Dest> = (0..300)
            .map(|i| Dest::new(Ipv4Addr::from(0xC613_0000 + i), 80, 1))
            .collect();
        let dh = DestinationHashing::new(&many);
        assert!((0..TAB_SIZE).all(|b| dh.bucket(b) == Some(b)));
        assert_eq!(DestinationHashing::new(&[]).bucket(0), None);
    }

    #[test]
    fn stable_per_destination_whatever_the_client() {
        let d = dests(&[1, 1, 1, 1, 1]);
        let dh = DestinationHashing::new(&d);
        let again = DestinationHashing::new(&d);
        assert_eq!(dh.buckets, again.buckets);
        let mut servers = std::collections::BTreeSet::new();
        for v in 0..64u8 {
            let vaddr = Ipv4Addr::new(198, 18, v, 129);
            let first = dh.pick(&d, &NoLoad, &flow(Ipv4Addr::new(10, 0, 0, 1), 1, vaddr));
            // The frozen kernel formula decides the server, whatever the client.
            let want = (u32::from(vaddr).wrapping_mul(0x61C8_8647) >> 24) as usize % 5;
            assert_eq!(first, Some(want));
            for c in 0..50u8 {
                let f = flow(Ipv4Addr::new(10, c, 7, c), 1000 + u16::from(c), vaddr);
                assert_eq!(dh.pick(&d, &NoLoad, &f), first);
                assert_eq!(again.pick(&d, &NoLoad, &f), first);
            }
            servers.insert(first);
        }
        // Different destinations spread over the servers.
        assert_eq!(servers.len(), 5);
    }

    #[test]
    fn unavailable_is_none() {
        let vaddr = Ipv4Addr::new(10, 0, 0, 1); // bucket 0x27 = 39, server 39 % 3 = 0
        let f = flow(Ipv4Addr::new(192, 0, 2, 1), 1234, vaddr);
        let mut d = dests(&[1, 1, 1]);
        let dh = DestinationHashing::new(&d);
        assert_eq!(dh.pick(&d, &NoLoad, &f), Some(0));
        // Overloaded by its upper threshold.
        d[0].upper_threshold = 2;
        let load: [(u64, u64); 3] = [(1, 1), (0, 0), (0, 0)];
        assert_eq!(dh.pick(&d, &load[..], &f), None);
        assert_eq!(dh.pick(&d, &NoLoad, &f), Some(0));
        // Quiesced.
        d[0].weight = 0;
        assert_eq!(dh.pick(&d, &NoLoad, &f), None);
        // No servers.
        assert_eq!(DestinationHashing::new(&[]).pick(&[], &NoLoad, &f), None);
    }
}
