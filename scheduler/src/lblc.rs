//! Locality-based least connection (`lblc`), after IPVS's net/netfilter/ipvs/ip_vs_lblc.c.
//!
//! Made for cache clusters: the *destination* address of a request (the virtual address the
//! client asked for, `flow.vaddr`) picks the server, so that requests for the same site keep
//! going to the same cache. IPVS keeps a table `daddr -> server`:
//!
//! * An entry exists and its server may take connections (available, weight above 0) and is not
//!   overloaded in lblc's sense: use that server. lblc's `is_overloaded(dest, svc)` is not the
//!   upper threshold: a server is overloaded when its *active* connections exceed its weight
//!   **and** some server of the service has fewer than half its weight in active connections
//!   (`activeconns * 2 < weight`), that is when there is somewhere clearly better to go.
//! * Otherwise (no entry, or its server is unusable or overloaded) schedule by weighted least
//!   connection over all servers (`__ip_vs_lblc_schedule`, the comparison of [`crate::wlc`]:
//!   `overhead / weight` with `overhead = active * 256 + inactive`, ties to the earliest server)
//!   and record the choice for that address (`ip_vs_lblc_new` replaces the server of an existing
//!   entry). No server available: `None`.
//!
//! Where xvs differs, and why:
//!
//! * The table. IPVS chains entries in 1024 buckets (`IP_VS_LBLC_TAB_BITS` 10, hashed with
//!   `hash_32(daddr)`), stamps each with its last use and lets a timer drop entries idle longer
//!   than the sysctl `lblc_expiration` (24 h by default), more eagerly once the table holds more
//!   than 16 entries per bucket. xvs keeps no clock in a pick: its table is a fixed array of
//!   [`SLOTS`] words allocated by [`LocalityLeastConnection::new`], indexed by the same
//!   multiplicative hash (`daddr * 0x61C88647`, top bits), one entry per slot. An address that
//!   hashes onto an occupied slot overwrites it (it is a cache: the evicted address is simply
//!   scheduled afresh by wlc next time). So the table is bounded by construction and entries
//!   never expire by age; they are replaced by collisions instead.
//! * The upper threshold. IPVS reuses the cached server without looking at its
//!   `IP_VS_DEST_F_OVERLOAD` flag; xvs requires [`Dest::accepts`] (weight above 0 and below the
//!   upper threshold) like every xvs policy, so a pick is never a server that may not take a
//!   connection.
//! * Reconfiguration. Entries hold server *indexes*, which mean nothing in another server list,
//!   so a new configuration starts with an empty table (`Scheduler::succeed` builds a new one);
//!   IPVS keeps entries across edits (holding a reference to the server). Locality is relearnt
//!   from wlc picks.
//! * Servers at index 65535 and beyond can be picked but are not recorded (16-bit index).
//!
//! Each slot is one `AtomicU64`: bit 48 valid, bits 16..48 the address, bits 0..16 the server
//! index. An IPv6 address is kept as its 32-bit fold ([`crate::fold`], what IPVS hashes it
//! by): two IPv6 destinations with the same fold share an entry, which, as with a collision,
//! costs locality, never correctness. A pick is a load, one or two passes over the servers, and at most one
//! compare-and-swap that it does not retry: lock-free, allocation-free, and never torn (the
//! whole entry is one word). Concurrent picks for colliding addresses may overwrite each other's
//! entry; that loses locality for a connection, never correctness.

use crate::lc::conn_overhead;
use crate::wlc::{least_per_weight, WeightedLeastConnection};
use crate::{fold, Dest, Flow, Load};
use std::sync::atomic::{AtomicU64, Ordering};

/// log2 of the number of table slots.
pub const SLOT_BITS: u32 = 12;
/// Table slots (entries) per service: 4096, 32 KiB.
pub const SLOTS: usize = 1 << SLOT_BITS;

const VALID: u64 = 1 << 48;
const NO_INDEX: usize = 0xFFFF;

/// The slot of destination address `addr`: the kernel's `hash_32(addr, bits)`.
#[inline]
pub(crate) fn slot_of(addr: u32, bits: u32) -> usize {
    (addr.wrapping_mul(0x61C8_8647) >> (32 - bits)) as usize
}

/// lblc's/lblcr's `is_overloaded(dest, svc)`: the server has more active connections than its
/// weight while some server has fewer than half of its own.
#[inline]
pub(crate) fn lblc_overloaded<L: Load + ?Sized>(dests: &[Dest], load: &L, i: usize) -> bool {
    if u128::from(load.active(i)) > u128::from(dests[i].weight) {
        return (0..dests.len())
            .any(|d| u128::from(load.active(d)) * 2 < u128::from(dests[d].weight));
    }
    false
}

/// The least-loaded server among `members` (IPVS list order), as wlc compares them.
#[inline]
pub(crate) fn least_of<L, I>(dests: &[Dest], load: &L, members: I) -> Option<usize>
where
    L: Load + ?Sized,
    I: IntoIterator<Item = usize>,
{
    least_per_weight(dests, load, members, |i| {
        conn_overhead(load.active(i), load.inactive(i))
    })
}

#[inline]
fn pack(addr: u32, index: usize) -> u64 {
    VALID | (u64::from(addr) << 16) | index as u64
}

#[derive(Debug)]
pub struct LocalityLeastConnection {
    /// `valid | addr << 16 | index`, 0 when empty.
    table: Box<[AtomicU64]>,
}

impl LocalityLeastConnection {
    /// An empty table for `dests` (one per configuration: indexes are not carried over).
    pub fn new(dests: &[Dest]) -> Self {
        let _ = dests;
        LocalityLeastConnection {
            table: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        let addr = fold(flow.vaddr);
        let slot = &self.table[slot_of(addr, SLOT_BITS)];
        let seen = slot.load(Ordering::Relaxed);
        if seen & VALID != 0 && (seen >> 16) as u32 == addr {
            let i = (seen & 0xFFFF) as usize;
            if i < dests.len() && dests[i].accepts(load, i) && !lblc_overloaded(dests, load, i) {
                return Some(i);
            }
        }
        let chosen = WeightedLeastConnection.pick(dests, load)?;
        if chosen < NO_INDEX {
            let entry = pack(addr, chosen);
            if entry != seen {
                // One try: if another worker changed the slot meanwhile, its entry is as good.
                let _ = slot.compare_exchange(seen, entry, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        Some(chosen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
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

    #[test]
    fn same_destination_sticks_while_usable() {
        let d = dests(&[1, 1, 1]);
        let s = LocalityLeastConnection::new(&d);
        let a = u32::from(Ipv4Addr::new(192, 0, 2, 10));
        // Empty servers: wlc takes the first one, and the entry keeps it there although the
        // others become lighter.
        assert_eq!(s.pick(&d, &[(0, 0), (0, 0), (0, 0)][..], &flow(a)), Some(0));
        assert_eq!(s.pick(&d, &[(1, 0), (0, 0), (0, 0)][..], &flow(a)), Some(0));
        // Active 1 is not more than weight 1: not overloaded in lblc's sense.
        assert_eq!(s.pick(&d, &[(1, 9), (0, 0), (0, 0)][..], &flow(a)), Some(0));
        // Client address and ports play no part.
        let mut f = flow(a);
        f.caddr = Ipv4Addr::new(198, 51, 100, 1).into();
        f.cport = 1;
        assert_eq!(s.pick(&d, &[(1, 0), (0, 0), (0, 0)][..], &f), Some(0));
        // Another destination address gets its own wlc choice.
        let b = u32::from(Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(s.pick(&d, &[(1, 0), (0, 0), (0, 0)][..], &flow(b)), Some(1));
        assert_eq!(s.pick(&d, &[(1, 0), (1, 0), (0, 0)][..], &flow(b)), Some(1));
    }

    #[test]
    fn falls_back_to_wlc_and_records_it() {
        let mut d = dests(&[2, 2, 4]);
        let s = LocalityLeastConnection::new(&d);
        let a = 0x0A00_0001;
        assert_eq!(s.pick(&d, &crate::NoLoad, &flow(a)), Some(0));
        // Overloaded in lblc's sense: 3 active > weight 2 and server 2 has 1 * 2 < 4.
        let load: &[(u64, u64)] = &[(3, 0), (2, 0), (1, 0)];
        assert_eq!(s.pick(&d, load, &flow(a)), Some(2));
        // The entry now says 2.
        assert_eq!(s.pick(&d, &[(0, 0), (0, 0), (3, 0)][..], &flow(a)), Some(2));
        // Active above weight alone is not enough: nobody has less than half its weight.
        let load: &[(u64, u64)] = &[(1, 0), (1, 0), (5, 0)];
        assert_eq!(s.pick(&d, load, &flow(a)), Some(2));
        // Quiesced: wlc elsewhere.
        d[2].weight = 0;
        assert_eq!(s.pick(&d, &[(4, 0), (3, 0), (0, 0)][..], &flow(a)), Some(1));
        // Upper threshold reached: wlc elsewhere.
        d[1].upper_threshold = 5;
        assert_eq!(s.pick(&d, &[(9, 0), (2, 3), (0, 0)][..], &flow(a)), Some(0));
    }

    #[test]
    fn never_quiesced_and_none_when_nothing_available() {
        let d = dests(&[0, 3, 0]);
        let s = LocalityLeastConnection::new(&d);
        for a in 0..200 {
            assert_eq!(s.pick(&d, &crate::NoLoad, &flow(a)), Some(1));
        }
        let d = dests(&[0, 0]);
        assert_eq!(s.pick(&d, &crate::NoLoad, &flow(1)), None);
        assert_eq!(s.pick(&[], &crate::NoLoad, &flow(1)), None);
        let mut d = dests(&[1, 1]);
        d[0].upper_threshold = 1;
        d[1].upper_threshold = 1;
        assert_eq!(s.pick(&d, &[(1, 0), (0, 1)][..], &flow(1)), None);
        // An entry pointing past a shorter server list is ignored.
        let s = LocalityLeastConnection::new(&[]);
        let long = dests(&[1, 1, 1, 1]);
        assert_eq!(
            s.pick(&long, &[(1, 0), (1, 0), (1, 0), (0, 0)][..], &flow(7)),
            Some(3)
        );
        assert_eq!(s.pick(&dests(&[1, 1]), &crate::NoLoad, &flow(7)), Some(0));
    }

    #[test]
    fn concurrent_picks_only_return_available_servers() {
        let mut d = dests(&[3, 0, 1, 5, 2, 1]);
        d[4].upper_threshold = 2;
        let s = LocalityLeastConnection::new(&d);
        let loads: [&[(u64, u64)]; 3] = [
            &[(0, 0), (0, 0), (0, 0), (0, 0), (0, 0), (0, 0)],
            &[(9, 0), (0, 0), (0, 0), (9, 0), (2, 0), (0, 0)],
            &[(0, 0), (0, 0), (9, 0), (1, 0), (1, 1), (3, 0)],
        ];
        std::thread::scope(|scope| {
            for t in 0..4u32 {
                let (s, d) = (&s, &d);
                scope.spawn(move || {
                    for n in 0..20_000u32 {
                        let load = loads[((n + t) % 3) as usize];
                        // 8192 addresses over 4096 slots: plenty of collisions.
                        let a = n.wrapping_mul(2_654_435_761) % 8192;
                        let i = s.pick(d, load, &flow(a)).unwrap();
                        assert!(d[i].accepts(load, i));
                    }
                });
            }
        });
    }

    /// The IPVS algorithm with a map for a table (same slots, same overwrite rule).
    fn model(
        table: &mut HashMap<usize, (u32, usize)>,
        d: &[Dest],
        load: &[(u64, u64)],
        a: u32,
    ) -> Option<usize> {
        let slot = slot_of(a, SLOT_BITS);
        if let Some(&(addr, i)) = table.get(&slot) {
            if addr == a && i < d.len() && d[i].accepts(load, i) && !lblc_overloaded(d, load, i) {
                return Some(i);
            }
        }
        let i = WeightedLeastConnection.pick(d, load)?;
        table.insert(slot, (a, i));
        Some(i)
    }

    proptest! {
        #[test]
        fn matches_the_sequential_algorithm(
            weights in proptest::collection::vec(0u32..6, 1..8),
            thresholds in proptest::collection::vec(0u32..4, 8),
            steps in proptest::collection::vec(
                (0u32..6, proptest::collection::vec((0u64..8, 0u64..4), 8)), 1..60),
        ) {
            let mut d = dests(&weights);
            for (x, &t) in d.iter_mut().zip(&thresholds) {
                x.upper_threshold = t;
            }
            let s = LocalityLeastConnection::new(&d);
            let mut table = HashMap::new();
            for (a, load) in steps {
                let load = &load[..d.len()];
                // Six addresses; 1, 4182 and 6766 share a slot.
                let a = [1, 2, 3, 4182, 0xC0A8_0001, 6766][a as usize];
                let got = s.pick(&d, load, &flow(a));
                prop_assert_eq!(got, model(&mut table, &d, load, a));
                match got {
                    Some(i) => prop_assert!(d[i].accepts(load, i)),
                    None => prop_assert!((0..d.len()).all(|i| !d[i].accepts(load, i))),
                }
            }
        }
    }
}
