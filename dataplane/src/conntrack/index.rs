//! One index of the connection table: slab slots by a tuple's hash, in cache-line buckets.
//!
//! The layout of DPDK's `rte_hash` and folly's F14: an array of 64-byte buckets (a power of
//! two of them, on huge pages: [`HugeVec`]), each holding [`WAYS`] slots with a 16-bit tag of
//! their hash. A tuple's hash picks its home bucket (low bits) and its tag (high 16 bits, never
//! 0, which marks a free way). A lookup reads the home bucket's line, compares tags and checks
//! each candidate's key in its slab entry (one false candidate in 65,535 per occupied way), so
//! a hit costs one bucket line and one slab entry, both of which a batch can prefetch from the
//! hash alone ([`Index::prefetch`], then [`Index::candidate`]).
//!
//! A full bucket overflows into the next ones (linear probing over buckets). Each bucket counts
//! the entries that probed past it (`overflow`, F14's outbound overflow count); a probe stops
//! at the first bucket whose count is 0, and a removal decrements the counts along its probe,
//! so removals need no tombstones and the table never needs rehashing. The table is sized at
//! least twice the entries it may hold (load <= 1/2 of the ways), so with 10 ways a bucket
//! overflows rarely (Poisson tail: about 3% of buckets at load 1/2) and a probe is nearly
//! always one line.

use super::hw::{lanes_equal, prefetch, HugeVec};

/// Slots per bucket: 10 tags (20 bytes), an overflow count (2), padding (2) and 10 slots (40)
/// make one 64-byte line.
pub const WAYS: usize = 10;

/// A free way's tag.
const FREE: u16 = 0;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u16; WAYS],
    /// Entries whose home bucket is at or before this one that live after it (saturates, and
    /// then stays, at `u16::MAX`).
    overflow: u16,
    _pad: u16,
    slots: [u32; WAYS],
}

impl Bucket {
    /// Bit `w` set for every way whose tag is `tag`, without a branch (one SIMD compare for
    /// ways 0-7), so that where in the bucket a flow sits costs no misprediction.
    #[inline]
    fn matches(&self, tag: u16) -> u32 {
        let (low, high) = self.tags.split_at(8);
        let low: &[u16; 8] = low.try_into().expect("8 low ways");
        lanes_equal(low, tag) | u32::from(high[0] == tag) << 8 | u32::from(high[1] == tag) << 9
    }
}

/// The ways set in `mask`, lowest first.
#[inline]
fn ways(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let w = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            w
        })
    })
}

const EMPTY: Bucket = Bucket {
    tags: [FREE; WAYS],
    overflow: 0,
    _pad: 0,
    slots: [0; WAYS],
};

/// Slab slots by hash; the caller compares keys (see the module documentation).
pub struct Index {
    buckets: HugeVec<Bucket>,
    mask: usize,
}

#[inline]
fn tag(hash: u64) -> u16 {
    let t = (hash >> 48) as u16;
    if t == FREE {
        1
    } else {
        t
    }
}

impl Index {
    /// An index for at most `entries` slots, every bucket written now (so that no page fault
    /// waits on the hot path and resident memory does not creep up as flows come and go).
    pub fn with_capacity(entries: usize) -> Self {
        let buckets = (2 * entries.max(1)).div_ceil(WAYS).next_power_of_two();
        let mut v = HugeVec::with_capacity(buckets);
        for _ in 0..buckets {
            v.push(EMPTY);
        }
        Index {
            buckets: v,
            mask: buckets - 1,
        }
    }

    /// Bytes of its bucket array.
    pub fn allocated_bytes(&self) -> usize {
        self.buckets.allocated_bytes()
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    #[inline]
    fn next(&self, b: usize) -> usize {
        (b + 1) & self.mask
    }

    /// Prefetches the home bucket of `hash`.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        prefetch(&self.buckets[self.home(hash)]);
    }

    /// The first slot in the home bucket of `hash` whose tag matches: the likely entry, to
    /// prefetch.
    #[inline]
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        let bucket = &self.buckets[self.home(hash)];
        ways(bucket.matches(tag(hash)))
            .next()
            .map(|w| bucket.slots[w])
    }

    /// The slot under `hash` for which `eq` holds.
    #[inline]
    pub fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = tag(hash);
        let mut b = self.home(hash);
        for _ in 0..=self.mask {
            let bucket = &self.buckets[b];
            for w in ways(bucket.matches(tag)) {
                if eq(bucket.slots[w]) {
                    return Some(bucket.slots[w]);
                }
            }
            if bucket.overflow == 0 {
                return None;
            }
            b = self.next(b);
        }
        None
    }

    /// Indexes `slot` under `hash`; if a slot for which `eq` holds (the same key) is already
    /// there, `slot` takes its way and the old slot is returned.
    #[inline]
    pub fn insert(&mut self, hash: u64, slot: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let (tag, home) = (tag(hash), self.home(hash));
        let mut b = home;
        for _ in 0..=self.mask {
            let bucket = &mut self.buckets[b];
            for w in ways(bucket.matches(tag)) {
                if eq(bucket.slots[w]) {
                    return Some(std::mem::replace(&mut bucket.slots[w], slot));
                }
            }
            if bucket.overflow == 0 {
                break;
            }
            b = self.next(b);
        }
        let mut b = home;
        for _ in 0..=self.mask {
            let bucket = &mut self.buckets[b];
            if let Some(w) = ways(bucket.matches(FREE)).next() {
                bucket.tags[w] = tag;
                bucket.slots[w] = slot;
                return None;
            }
            bucket.overflow = bucket.overflow.saturating_add(1);
            b = self.next(b);
        }
        // The index has twice as many ways as the table has slots, and a slot is indexed once.
        unreachable!("connection index full");
    }

    /// Removes `slot` from under `hash`; false if it is not there.
    #[inline]
    pub fn remove(&mut self, hash: u64, slot: u32) -> bool {
        let (tag, home) = (tag(hash), self.home(hash));
        let mut b = home;
        for _ in 0..=self.mask {
            let bucket = &mut self.buckets[b];
            if let Some(w) = ways(bucket.matches(tag)).find(|&w| bucket.slots[w] == slot) {
                bucket.tags[w] = FREE;
                // The buckets it had probed past no longer have it beyond them.
                let mut p = home;
                while p != b {
                    let o = &mut self.buckets[p].overflow;
                    if *o != u16::MAX {
                        *o -= 1;
                    }
                    p = self.next(p);
                }
                return true;
            }
            if bucket.overflow == 0 {
                return false;
            }
            b = self.next(b);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    #[test]
    fn matches_finds_every_way_of_a_tag() {
        let mut b = EMPTY;
        for w in [0, 3, 7, 8, 9] {
            b.tags[w] = 0xbeef;
        }
        b.tags[5] = 0xbeee;
        assert_eq!(b.matches(0xbeef), 1 | 1 << 3 | 1 << 7 | 1 << 8 | 1 << 9);
        assert_eq!(b.matches(0xbeee), 1 << 5);
        assert_eq!(b.matches(FREE), 1 << 1 | 1 << 2 | 1 << 4 | 1 << 6);
        assert_eq!(ways(b.matches(0xbeef)).collect::<Vec<_>>(), [0, 3, 7, 8, 9]);
    }

    #[test]
    fn sized_for_load_at_most_one_half() {
        for entries in [1, 5, 6, 100, 1_000_000] {
            let i = Index::with_capacity(entries);
            assert!(i.buckets.len() * WAYS >= 2 * entries, "{entries}");
            assert!(i.buckets.len().is_power_of_two());
        }
    }

    proptest! {
        /// Against a HashMap, with hashes forced into few buckets so that overflow chains form,
        /// wrap around and shrink again: every present key is found, no removed one is, and
        /// when the index is empty again every overflow count is back to 0.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec((0u32..64, any::<bool>(), 0u64..8), 1..500)) {
            // 64 keys at most: 13 buckets' worth of ways rounded up to 16 buckets.
            let mut index = Index::with_capacity(64);
            let mut model: HashMap<u32, u32> = HashMap::new();
            // Key k hashes to bucket (k * spread) % 4 at most: heavy collisions.
            let hash_of = |k: u32, spread: u64| ((u64::from(k) * 0x9e37_79b9) << 32) | (u64::from(k) * spread % 4);
            let mut spreads = HashMap::new();
            for (key, add, spread) in ops {
                let spread = *spreads.entry(key).or_insert(spread);
                let hash = hash_of(key, spread);
                // Slot numbers: key * 1000 + generation, so replaced slots differ.
                if add {
                    let slot = key * 1000 + model.get(&key).map_or(0, |s| s % 1000 + 1);
                    let old = index.insert(hash, slot, |s| s / 1000 == key);
                    prop_assert_eq!(old, model.insert(key, slot));
                } else if let Some(slot) = model.remove(&key) {
                    prop_assert!(index.remove(hash, slot));
                    prop_assert!(!index.remove(hash, slot));
                }
                for (&k, &s) in &model {
                    let h = hash_of(k, spreads[&k]);
                    prop_assert_eq!(index.find(h, |c| c / 1000 == k), Some(s));
                }
                prop_assert_eq!(index.find(hash, |c| c / 1000 == key), model.get(&key).copied());
            }
            for (k, s) in model.drain() {
                prop_assert!(index.remove(hash_of(k, spreads[&k]), s));
            }
            prop_assert!(index.buckets.iter().all(|b| b.overflow == 0 && b.tags == [FREE; WAYS]));
        }
    }
}
