//! Locality-based least connection with replication (`lblcr`), after IPVS's
//! net/netfilter/ipvs/ip_vs_lblcr.c.
//!
//! Like [`crate::lblc`], the *destination* address of a request (`flow.vaddr`) picks the
//! server, for cache clusters; but a popular address may be served by a *set* of servers that
//! grows when its members are busy. IPVS's `ip_vs_lblcr_schedule`:
//!
//! * An entry for the address exists: take the least-loaded member of its set
//!   (`ip_vs_dest_set_min`: members that are available with weight above 0, compared as wlc
//!   does, `overhead / weight` with `overhead = active * 256 + inactive`, ties to the member
//!   listed first). If there is one and it is not overloaded in lblc's sense (more active
//!   connections than its weight **while** some server of the service has fewer than half its
//!   weight, `is_overloaded(dest, svc)`), use it.
//! * Otherwise schedule by weighted least connection over all servers (`__ip_vs_lblcr_schedule`,
//!   the comparison of [`crate::wlc`]), add that server to the set (`ip_vs_dest_set_insert`,
//!   which puts it at the head of the list, and does nothing if it is already a member), and
//!   use it.
//! * No entry: the wlc choice, recorded as a new entry with a one-member set.
//! * No server available: `None`.
//!
//! IPVS also shrinks sets: when a set has more than one member and has not changed for the
//! sysctl `lblcr_expiration` (24 h by default; `time_after(jiffies, en->set.lastmod +
//! sysctl_lblcr_expiration(svc))`), a pick removes its most loaded member
//! (`ip_vs_dest_set_max`); and a timer drops entries idle for long. xvs keeps no clock in a pick,
//! so instead:
//!
//! * A set holds at most [`MEMBERS`] (4) servers. When a fifth must join, one member makes room:
//!   a member that is no longer in the server list or has weight 0 if there is one, else the
//!   most loaded one by `ip_vs_dest_set_max`'s rule (first member with weight above 0, replaced
//!   by one with a strictly higher `overhead / weight`). Sets never shrink by age.
//! * The table is a fixed array of [`SLOTS`] entries allocated by
//!   [`LocalityLeastConnectionReplicated::new`], indexed by the kernel's `hash_32(daddr)`; an
//!   address hashing onto an occupied slot replaces its entry (a cache: the evicted address is
//!   scheduled afresh next time). So nothing expires by age; collisions evict.
//! * Members must pass [`Dest::accepts`] (weight above 0, below the upper threshold), as in
//!   `ip_vs_dest_set_min`.
//! * Entries hold server *indexes*, meaningless in another server list, so a new configuration
//!   starts with an empty table (`Scheduler::succeed` builds a new one; IPVS keeps its sets
//!   across edits). Servers at index 65535 and beyond can be picked but are never recorded.
//!
//! Each slot is two `AtomicU64`s: the key (bit 32 valid, the address below, an IPv6 address's
//! 32-bit fold as in [`crate::lblc`]) and the set (four
//! 16-bit server indexes, 0xFFFF for an empty place, newest first). A set is changed as a whole
//! with compare-and-swap (a bounded number of tries), so members are never lost or duplicated
//! by concurrent inserts. Key and set are two words, so a pick that races with the replacement
//! of the slot's address may read the other address's set: it then takes an accepting server
//! chosen by the same rules, losing locality for that connection only. Picks never lock and
//! never allocate.

use crate::lblc::{lblc_overloaded, least_of, slot_of};
use crate::lc::conn_overhead;
use crate::wlc::WeightedLeastConnection;
use crate::{fold, Dest, Flow, Load};
use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the number of table slots.
pub const SLOT_BITS: u32 = 12;
/// Table slots (entries) per service: 4096, 64 KiB.
pub const SLOTS: usize = 1 << SLOT_BITS;
/// The most servers in one address's set.
pub const MEMBERS: usize = 4;

const VALID: u64 = 1 << 32;
const EMPTY: u16 = 0xFFFF;
const EMPTY_SET: u64 = u64::MAX;
/// Tries of one set update before giving up on recording (the pick itself is already made).
const TRIES: usize = 8;

#[inline]
fn members(set: u64) -> [u16; MEMBERS] {
    [
        set as u16,
        (set >> 16) as u16,
        (set >> 32) as u16,
        (set >> 48) as u16,
    ]
}

#[inline]
fn pack(m: [u16; MEMBERS]) -> u64 {
    u64::from(m[0]) | u64::from(m[1]) << 16 | u64::from(m[2]) << 32 | u64::from(m[3]) << 48
}

#[inline]
fn live(set: u64) -> impl Iterator<Item = usize> {
    members(set)
        .into_iter()
        .filter(|&m| m != EMPTY)
        .map(usize::from)
}

/// `set` with `new` (< 0xFFFF) added at the head, or `set` itself if `new` is a member. A full
/// set first drops a member that cannot serve (gone from the list, weight 0), else its most
/// loaded member (`ip_vs_dest_set_max`).
fn insert<L: Load + ?Sized>(set: u64, new: usize, dests: &[Dest], load: &L) -> u64 {
    let mut m = members(set);
    if m.contains(&(new as u16)) {
        return set;
    }
    let victim = match m.iter().position(|&x| x == EMPTY) {
        Some(p) => p,
        None => m
            .iter()
            .position(|&x| usize::from(x) >= dests.len() || dests[usize::from(x)].weight == 0)
            .or_else(|| most_loaded(&m, dests, load))
            .unwrap_or(MEMBERS - 1),
    };
    // Shift the members before the victim's place one down, and put the newcomer first.
    m.copy_within(0..victim, 1);
    m[0] = new as u16;
    pack(m)
}

/// `ip_vs_dest_set_max`: position of the first member with weight above 0, replaced by any later
/// one (weight above 0) with a strictly higher overhead per weight.
fn most_loaded<L: Load + ?Sized>(m: &[u16; MEMBERS], dests: &[Dest], load: &L) -> Option<usize> {
    let mut most: Option<(usize, u128, u128)> = None;
    for (p, &x) in m.iter().enumerate() {
        let i = usize::from(x);
        if i >= dests.len() || dests[i].weight == 0 {
            continue;
        }
        let doh = conn_overhead(load.active(i), load.inactive(i));
        let weight = u128::from(dests[i].weight);
        if most.is_none_or(|(_, moh, mw)| moh * weight < doh * mw) {
            most = Some((p, doh, weight));
        }
    }
    most.map(|(p, _, _)| p)
}

#[derive(Debug)]
pub struct LocalityLeastConnectionReplicated {
    /// `VALID | addr`, 0 when empty.
    keys: Box<[AtomicU64]>,
    /// Four 16-bit member indexes, [`EMPTY`] for none.
    sets: Box<[AtomicU64]>,
}

impl LocalityLeastConnectionReplicated {
    /// An empty table for `dests` (one per configuration: indexes are not carried over).
    pub fn new(dests: &[Dest]) -> Self {
        let _ = dests;
        LocalityLeastConnectionReplicated {
            keys: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            sets: (0..SLOTS).map(|_| AtomicU64::new(EMPTY_SET)).collect(),
        }
    }

    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        let addr = fold(flow.vaddr);
        let key = VALID | u64::from(addr);
        let slot = slot_of(addr, SLOT_BITS);
        let (keys, sets) = (&self.keys[slot], &self.sets[slot]);
        if keys.load(Ordering::Acquire) == key {
            let mut set = sets.load(Ordering::Acquire);
            if let Some(i) = least_of(dests, load, live(set)) {
                if !lblc_overloaded(dests, load, i) {
                    return Some(i);
                }
            }
            let chosen = WeightedLeastConnection.pick(dests, load)?;
            if chosen < usize::from(EMPTY) {
                for _ in 0..TRIES {
                    let grown = insert(set, chosen, dests, load);
                    if grown == set {
                        break;
                    }
                    match sets.compare_exchange_weak(
                        set,
                        grown,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(seen) => set = seen,
                    }
                }
            }
            return Some(chosen);
        }
        let chosen = WeightedLeastConnection.pick(dests, load)?;
        if chosen < usize::from(EMPTY) {
            // The set first, then the key that makes it this address's: a pick that still sees
            // the old key may meet the new set, which only costs locality.
            sets.store(
                pack([chosen as u16, EMPTY, EMPTY, EMPTY]),
                Ordering::Release,
            );
            keys.store(key, Ordering::Release);
        }
        Some(chosen)
    }

    /// The members recorded for destination address `vaddr` (tests, listings).
    pub fn members_of(&self, vaddr: impl Into<std::net::IpAddr>) -> Vec<usize> {
        let addr = fold(vaddr.into());
        let slot = slot_of(addr, SLOT_BITS);
        if self.keys[slot].load(Ordering::Acquire) != VALID | u64::from(addr) {
            return Vec::new();
        }
        live(self.sets[slot].load(Ordering::Acquire)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn flow(vaddr: u32) -> Flow {
        Flow {
            proto: 6,
            caddr: Ipv4Addr::new(203, 0, 113, 7).into(),
            cport: 40000,
            vaddr: Ipv4Addr::from(vaddr).into(),
            vport: 80,
        }
    }

    const A: u32 = 0xC000_020A;

    #[test]
    fn sticks_then_grows_under_overload() {
        let d = dests(&[2, 2, 2, 4]);
        let s = LocalityLeastConnectionReplicated::new(&d);
        let va = Ipv4Addr::from(A);
        assert_eq!(s.pick(&d, &NoLoad, &flow(A)), Some(0));
        assert_eq!(s.members_of(va), [0]);
        // Busy but not more active than its weight: stays.
        let load: &[(u64, u64)] = &[(2, 50), (0, 0), (0, 0), (0, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(0));
        // 3 > 2 while server 1 has 0 * 2 < 2: wlc over all (server 1) joins the set.
        let load: &[(u64, u64)] = &[(3, 0), (0, 0), (1, 0), (1, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(1));
        assert_eq!(s.members_of(va), [1, 0]);
        // Then the least-loaded member is used, whichever it is.
        let load: &[(u64, u64)] = &[(1, 0), (2, 0), (0, 0), (0, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(0));
        let load: &[(u64, u64)] = &[(2, 0), (1, 0), (0, 0), (0, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(1));
        // Ties go to the member listed first (the newest).
        assert_eq!(s.pick(&d, &NoLoad, &flow(A)), Some(1));
        // Both members overloaded: server 3 joins.
        let load: &[(u64, u64)] = &[(3, 0), (3, 0), (2, 0), (1, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(3));
        assert_eq!(s.members_of(va), [3, 1, 0]);
    }

    #[test]
    fn full_set_drops_its_most_loaded_member() {
        let d = dests(&[1, 1, 1, 1, 1, 1]);
        let s = LocalityLeastConnectionReplicated::new(&d);
        let va = Ipv4Addr::from(A);
        // Grow to 0, 1, 2, 3: each time the members have 2 active (more than weight 1) and the
        // next server none (less than half its weight), so wlc takes the next one.
        let steps: [&[(u64, u64)]; 4] = [
            &[(0, 0); 6],
            &[(2, 0), (0, 0), (1, 0), (1, 0), (1, 0), (1, 0)],
            &[(2, 0), (2, 0), (0, 0), (1, 0), (1, 0), (1, 0)],
            &[(2, 0), (2, 0), (2, 0), (0, 0), (1, 0), (1, 0)],
        ];
        for (i, load) in steps.iter().enumerate() {
            assert_eq!(s.pick(&d, *load, &flow(A)), Some(i));
        }
        assert_eq!(s.members_of(va), [3, 2, 1, 0]);
        // All members overloaded (server 5 has 0 active), member 2 the most loaded: 4 replaces
        // it.
        let load: &[(u64, u64)] = &[(2, 0), (2, 0), (5, 0), (2, 0), (0, 0), (1, 0)];
        assert_eq!(s.pick(&d, load, &flow(A)), Some(4));
        assert_eq!(s.members_of(va), [4, 3, 1, 0]);
        // A quiesced member goes first.
        let mut d2 = d.clone();
        d2[0].weight = 0;
        let load: &[(u64, u64)] = &[(0, 0), (2, 0), (9, 0), (2, 0), (2, 0), (0, 0)];
        assert_eq!(s.pick(&d2, load, &flow(A)), Some(5));
        assert_eq!(s.members_of(va), [5, 4, 3, 1]);
    }

    #[test]
    fn never_quiesced_and_none_when_nothing_available() {
        let d = dests(&[0, 3, 0]);
        let s = LocalityLeastConnectionReplicated::new(&d);
        for a in 0..200 {
            assert_eq!(s.pick(&d, &NoLoad, &flow(a)), Some(1));
        }
        // Member 1 quiesced, the set has nothing usable: wlc elsewhere, and it joins.
        let d2 = dests(&[1, 0, 1]);
        assert_eq!(s.pick(&d2, &NoLoad, &flow(5)), Some(0));
        assert_eq!(s.members_of(Ipv4Addr::from(5)), [0, 1]);
        assert_eq!(s.pick(&dests(&[0, 0]), &NoLoad, &flow(5)), None);
        assert_eq!(s.pick(&[], &NoLoad, &flow(5)), None);
        let mut d3 = dests(&[1, 1]);
        d3[0].upper_threshold = 1;
        d3[1].upper_threshold = 1;
        assert_eq!(s.pick(&d3, &[(1, 0), (0, 1)][..], &flow(5)), None);
    }

    #[test]
    fn concurrent_picks_only_return_available_servers() {
        let mut d = dests(&[3, 0, 1, 5, 2, 1, 1]);
        d[4].upper_threshold = 2;
        let s = LocalityLeastConnectionReplicated::new(&d);
        let loads: [&[(u64, u64)]; 3] = [
            &[(0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)],
            &[(9, 0), (0, 0), (0, 0), (9, 0), (2, 0), (0, 0), (4, 0)],
            &[(0, 0), (0, 0), (9, 0), (1, 0), (1, 1), (3, 0), (0, 0)],
        ];
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let (s, d) = (&s, &d);
                scope.spawn(move || {
                    for n in 0..20_000u32 {
                        let load = loads[((n + t) % 3) as usize];
                        let a = n.wrapping_mul(2_654_435_761) % 8192;
                        let i = s.pick(d, load, &flow(a)).unwrap();
                        assert!(d[i].accepts(load, i));
                    }
                });
            }
        });
        for a in 0..8192 {
            let m = s.members_of(Ipv4Addr::from(a));
            assert!(m.len() <= MEMBERS && m.iter().all(|&i| i < d.len()));
            let mut sorted = m.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), m.len(), "duplicate member in {m:?}");
        }
    }

    /// The algorithm with a map for a table (same slots, same capacity and eviction rules).
    fn model(
        table: &mut HashMap<usize, (u32, u64)>,
        d: &[Dest],
        load: &[(u64, u64)],
        a: u32,
    ) -> Option<usize> {
        let slot = slot_of(a, SLOT_BITS);
        match table.get(&slot).copied() {
            Some((addr, set)) if addr == a => {
                let min = live(set)
                    .filter(|&i| i < d.len() && d[i].accepts(load, i))
                    .fold(None::<usize>, |least, i| match least {
                        Some(l)
                            if conn_overhead(load[l].0, load[l].1) * u128::from(d[i].weight)
                                <= conn_overhead(load[i].0, load[i].1)
                                    * u128::from(d[l].weight) =>
                        {
                            Some(l)
                        }
                        _ => Some(i),
                    });
                if let Some(i) = min {
                    if !lblc_overloaded(d, load, i) {
                        return Some(i);
                    }
                }
                let i = WeightedLeastConnection.pick(d, load)?;
                table.insert(slot, (a, insert(set, i, d, load)));
                Some(i)
            }
            _ => {
                let i = WeightedLeastConnection.pick(d, load)?;
                table.insert(slot, (a, pack([i as u16, EMPTY, EMPTY, EMPTY])));
                Some(i)
            }
        }
    }

    proptest! {
        #[test]
        fn matches_the_sequential_algorithm(
            weights in proptest::collection::vec(0u32..6, 1..9),
            thresholds in proptest::collection::vec(0u32..4, 9),
            steps in proptest::collection::vec(
                (0u32..6, proptest::collection::vec((0u64..8, 0u64..4), 9)), 1..60),
        ) {
            let mut d = dests(&weights);
            for (x, &t) in d.iter_mut().zip(&thresholds) {
                x.upper_threshold = t;
            }
            let s = LocalityLeastConnectionReplicated::new(&d);
            let mut table = HashMap::new();
            for (a, load) in steps {
                let load = &load[..d.len()];
                let a = [1, 2, 3, 4182, 0xC0A8_0001, 6766][a as usize];
                let got = s.pick(&d, load, &flow(a));
                prop_assert_eq!(got, model(&mut table, &d, load, a));
                match got {
                    Some(i) => prop_assert!(d[i].accepts(load, i)),
                    None => prop_assert!((0..d.len()).all(|i| !d[i].accepts(load, i))),
                }
                let m = s.members_of(Ipv4Addr::from(a));
                prop_assert!(m.len() <= MEMBERS);
                if let Some(i) = got {
                    // The server picked is always recorded for the address or was already a
                    // member (a slot taken over by another address aside).
                    prop_assert!(m.contains(&i));
                }
            }
        }
    }
}
