//! Round robin (`rr`), as IPVS's ip_vs_rr.c.
//!
//! Servers are taken in turn, in the order they were added, skipping those that cannot take new
//! connections (weight 0, or overloaded by their upper threshold). IPVS keeps the last chosen server under a spinlock; here the position
//! is one atomic cursor that a pick advances with compare-and-swap, so concurrent workers never
//! block each other and never allocate. Two workers picking at the same instant each get a
//! different server, so the rotation stays fair across workers.

use crate::{Dest, Load};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Index of the server the next pick starts looking at (modulo the server count).
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn starting_at(position: usize) -> Self {
        RoundRobin {
            next: AtomicUsize::new(position),
        }
    }

    /// Where the next pick starts, for carrying the rotation into a new snapshot.
    pub fn position(&self) -> usize {
        self.next.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        let n = dests.len();
        if n == 0 {
            return None;
        }
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let start = current % n;
            let chosen = (0..n)
                .map(|step| (start + step) % n)
                .find(|&i| dests[i].accepts(load, i))?;
            match self.next.compare_exchange_weak(
                current,
                chosen + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(chosen),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;

    #[test]
    fn rotates_in_insertion_order() {
        let rr = RoundRobin::default();
        let d = dests(&[1, 1]);
        let picks: Vec<_> = (0..5).map(|_| rr.pick(&d, &NoLoad).unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn skips_quiesced_and_reports_none() {
        let rr = RoundRobin::default();
        assert_eq!(rr.pick(&dests(&[0, 3, 0]), &NoLoad), Some(1));
        assert_eq!(rr.pick(&dests(&[0, 3, 0]), &NoLoad), Some(1));
        assert_eq!(rr.pick(&dests(&[0, 0]), &NoLoad), None);
        assert_eq!(rr.pick(&[], &NoLoad), None);
    }

    #[test]
    fn concurrent_picks_stay_balanced() {
        let rr = RoundRobin::default();
        let d = dests(&[1, 1, 1, 1]);
        let counts: Vec<AtomicUsize> = (0..4).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10_000 {
                        let i = rr.pick(&d, &NoLoad).unwrap();
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        for c in &counts {
            assert_eq!(c.load(Ordering::Relaxed), 10_000);
        }
    }

    proptest! {
        /// Over any whole number of rounds every available server gets exactly one pick per
        /// round and no quiesced server is ever picked.
        #[test]
        fn fair_and_never_picks_quiesced(weights in proptest::collection::vec(0u32..3, 1..20), rounds in 1usize..5) {
            let d = dests(&weights);
            let available = d.iter().filter(|x| x.is_available(0)).count();
            let rr = RoundRobin::default();
            let mut counts = vec![0usize; d.len()];
            for _ in 0..available * rounds {
                let i = rr.pick(&d, &NoLoad).unwrap();
                counts[i] += 1;
            }
            for (i, c) in counts.iter().enumerate() {
                prop_assert_eq!(*c, if d[i].is_available(0) { rounds } else { 0 });
            }
            if available == 0 {
                prop_assert_eq!(rr.pick(&d, &NoLoad), None);
            }
        }
    }
}
