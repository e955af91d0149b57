//! Weighted round robin (`wrr`), as IPVS's ip_vs_wrr.c (interleaved, with gcd stepping).
//!
//! Three numbers drive it (ip_vs_wrr.c, "The WRR algorithm depends on some caclulations"):
//! - `di`, the step: the greatest common divisor of the positive weights (1 if there are none);
//! - `mw`, the first required weight: the largest weight less `di - 1` (0 if no weight is
//!   positive), so that the last pass asks for weight >= 1 rather than >= di;
//! - `cw`, the weight a server needs right now: it starts at `mw`.
//!
//! A pick walks the servers in list order from just after the last chosen one and takes the first
//! with weight >= `cw` that is not overloaded. Each time the walk runs off the end of the list,
//! `cw` drops by `di` (back to `mw` once it reaches 0 or less) and the walk goes on from the first
//! server. So with weights A=3, B=2, C=1 the passes ask for weight >= 3, >= 2, >= 1 and one cycle
//! reads A, A B, A B C: a server of weight `w` gets `w / di` of every `sum / di` picks, interleaved
//! rather than in bursts. A server of weight 0 never qualifies (`cw` >= 1).
//!
//! `di` and `mw` are computed once, in [`WeightedRoundRobin::new`], as IPVS computes them when
//! servers are added, removed or edited (ip_vs_wrr_init_svc / ip_vs_wrr_dest_changed); a server
//! that is overloaded at pick time keeps its place in them, exactly as in IPVS. When the servers
//! able to take connections are missing from a pass the walk simply goes on, and it gives up the
//! way ip_vs_wrr_schedule does: once every server has been tried against weight >= 1
//! ("all destinations are overloaded"). That search is finite (at most about 2 * mw / di + 4
//! passes over the list) and is also capped by an explicit pass budget.
//!
//! IPVS keeps its mark (`cl`, the last chosen server or the list head, and `cw`) under the
//! service's scheduler lock. Here both live packed in one `AtomicU64`: a pick reads the mark,
//! runs ip_vs_wrr_schedule's loop as a pure function of it, and publishes the resulting mark with
//! a compare-and-swap, starting over from the mark it finds if another worker got there first.
//! Every successful pick is therefore one step of the sequential IPVS machine, so concurrent
//! workers together keep IPVS's exact proportions, without a lock and without allocating.

use crate::{Dest, Load};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// ip_vs_wrr_mark.mw: the largest weight minus (`di` - 1); 0 when no server has a weight.
    mw: u32,
    /// ip_vs_wrr_mark.di: the gcd of the positive weights, 1 when there are none.
    di: u32,
    /// The rest of ip_vs_wrr_mark: `cl` in the high 32 bits (0 for the list head, `i + 1` for
    /// server `i`, so that the next walk starts at index `cl`) and `cw` in the low 32 bits.
    mark: AtomicU64,
}

/// `cl` of a mark that designates the list head (IPVS's `&svc->destinations`).
const HEAD: u64 = 0;

#[inline]
fn pack(cl: u64, cw: u32) -> u64 {
    (cl << 32) | u64::from(cw)
}

#[inline]
fn unpack(mark: u64) -> (u64, u32) {
    (mark >> 32, mark as u32)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// ip_vs_wrr_gcd_weight and ip_vs_wrr_max_weight, then `mw = max - (di - 1)`: `(mw, di)`.
fn steps(dests: &[Dest]) -> (u32, u32) {
    let g = dests
        .iter()
        .map(|d| d.weight)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    let di = if g > 0 { g } else { 1 };
    let max = dests.iter().map(|d| d.weight).max().unwrap_or(0);
    // max is a multiple of di when positive, so max >= di; when it is 0, di is 1.
    (max - (di - 1), di)
}

impl Default for WeightedRoundRobin {
    fn default() -> Self {
        WeightedRoundRobin::new(&[])
    }
}

impl WeightedRoundRobin {
    /// ip_vs_wrr_init_svc: the mark at the list head, `cw = mw`.
    pub fn new(dests: &[Dest]) -> Self {
        let (mw, di) = steps(dests);
        WeightedRoundRobin {
            mw,
            di,
            mark: AtomicU64::new(pack(HEAD, mw)),
        }
    }

    /// ip_vs_wrr_dest_changed: the scheduler for edited `dests` that carries on from
    /// `previous`'s current weight, as IPVS does when a server is added, removed or reweighted
    /// (the walk restarts at the list head; `cw` is kept, clamped to the new `mw`, and when
    /// `di > 1` rounded to the pass that asks for the same multiple of `di`).
    pub fn succeeding(dests: &[Dest], previous: &WeightedRoundRobin) -> Self {
        let (mw, di) = steps(dests);
        let (_, mut cw) = unpack(previous.mark.load(Ordering::Relaxed));
        if cw > mw || cw == 0 {
            cw = mw;
        } else if di > 1 {
            cw = (cw / di) * di + 1;
        }
        WeightedRoundRobin {
            mw,
            di,
            mark: AtomicU64::new(pack(HEAD, cw)),
        }
    }

    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        // "No available dests?": IPVS leaves the mark as it is.
        if self.mw == 0 {
            return None;
        }
        let mut current = self.mark.load(Ordering::Relaxed);
        loop {
            let (chosen, next) = self.schedule(current, dests, load);
            // An unchanged mark (one server, say) needs no write: the pick is the one the
            // sequential machine makes from the mark just read.
            if next == current {
                return chosen;
            }
            match self.mark.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return chosen,
                Err(seen) => current = seen,
            }
        }
    }

    /// One run of ip_vs_wrr_schedule's loop from `mark`: the server it returns and the mark it
    /// leaves behind (also on failure, where IPVS stores `cl` and `cw` too).
    fn schedule<L: Load + ?Sized>(
        &self,
        mark: u64,
        dests: &[Dest],
        load: &L,
    ) -> (Option<usize>, u64) {
        let n = dests.len();
        let mw = i64::from(self.mw);
        let di = i64::from(self.di);
        let (cl, cw) = unpack(mark);
        // The mark of a scheduler built for a longer list: start from the head.
        let last = if cl > n as u64 { HEAD } else { cl };
        let mut cw = i64::from(cw);
        let mut pos = last as usize;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        // The IPVS loop ends by itself (see the module header); this only makes it obvious.
        let mut passes_left = 2 * (mw / di) + 4;
        loop {
            // list_for_each_entry_continue_rcu(dest, &svc->destinations, n_list)
            while pos < n {
                let dest = &dests[pos];
                if i64::from(dest.weight) >= cw && !dest.is_overloaded(load.connections(pos)) {
                    return (Some(pos), pack(pos as u64 + 1, cw as u32));
                }
                if stop == Some(pos) {
                    // err_over: mark->cl = dest
                    return (None, pack(pos as u64 + 1, cw as u32));
                }
                pos += 1;
            }
            cw -= di;
            if cw <= 0 {
                cw = mw;
                // "Stop if we tried last pass from first dest"
                if last_pass || last == HEAD {
                    return (None, pack(HEAD, cw as u32));
                }
                restarted = true;
            }
            last_pass = cw <= di;
            if last_pass && restarted && last != HEAD {
                // "now do the same for all dests up to 'last'"
                stop = Some(last as usize - 1);
            }
            pos = 0;
            passes_left -= 1;
            if passes_left <= 0 {
                return (None, mark);
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
    use std::sync::atomic::AtomicUsize;

    fn picks<L: Load + ?Sized>(
        wrr: &WeightedRoundRobin,
        d: &[Dest],
        load: &L,
        count: usize,
    ) -> Vec<Option<usize>> {
        (0..count).map(|_| wrr.pick(d, load)).collect()
    }

    fn counts(d: &[Dest], picks: &[Option<usize>]) -> Vec<usize> {
        let mut counts = vec![0; d.len()];
        for p in picks {
            counts[p.unwrap()] += 1;
        }
        counts
    }

    /// The older IPVS loop (before the `mw - (di - 1)` change): cursor at the head, `cw = 0`;
    /// step the cursor, and on leaving the head `cw -= di`, back to `mw` when <= 0; take the
    /// first server with weight >= cw. With static weights and no overload it must agree with
    /// the current one pick for pick.
    fn classic(weights: &[u32], count: usize) -> Vec<Option<usize>> {
        let n = weights.len();
        let di = weights
            .iter()
            .filter(|&&w| w > 0)
            .fold(0, |g, &w| if g > 0 { gcd(w, g) } else { w })
            .max(1);
        let mw = weights.iter().copied().max().unwrap_or(0);
        let (mut cl, mut cw): (Option<usize>, i64) = (None, 0);
        let mut out = Vec::new();
        for _ in 0..count {
            if n == 0 || mw == 0 {
                out.push(None);
                continue;
            }
            loop {
                match cl {
                    None => {
                        cl = Some(0);
                        cw -= i64::from(di);
                        if cw <= 0 {
                            cw = i64::from(mw);
                        }
                    }
                    Some(i) => cl = if i + 1 < n { Some(i + 1) } else { None },
                }
                if let Some(i) = cl {
                    if i64::from(weights[i]) >= cw {
                        out.push(Some(i));
                        break;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn interleaves_3_2_1_as_ipvs() {
        // Passes ask for weight >= 3, >= 2, >= 1: A | A B | A B C.
        let d = dests(&[3, 2, 1]);
        let wrr = WeightedRoundRobin::new(&d);
        let cycle = [0, 0, 1, 0, 1, 2].map(Some);
        assert_eq!(picks(&wrr, &d, &NoLoad, 6), cycle);
        assert_eq!(picks(&wrr, &d, &NoLoad, 6), cycle);
        assert_eq!(counts(&d, &picks(&wrr, &d, &NoLoad, 600)), [300, 200, 100]);
    }

    #[test]
    fn steps_by_gcd() {
        // di = 2, mw = 4 - 1 = 3: passes ask for >= 3 and >= 1, a cycle of 6 / 2 = 3 picks.
        let d = dests(&[2, 4]);
        let wrr = WeightedRoundRobin::new(&d);
        assert_eq!((wrr.mw, wrr.di), (3, 2));
        assert_eq!(picks(&wrr, &d, &NoLoad, 6), [1, 0, 1, 1, 0, 1].map(Some));
        // Equal weights are plain round robin, one pass per cycle.
        let d = dests(&[5, 5, 5]);
        let wrr = WeightedRoundRobin::new(&d);
        assert_eq!((wrr.mw, wrr.di), (1, 5));
        assert_eq!(picks(&wrr, &d, &NoLoad, 4), [0, 1, 2, 0].map(Some));
    }

    #[test]
    fn none_when_nothing_available() {
        let wrr = WeightedRoundRobin::new(&[]);
        assert_eq!(wrr.pick(&[], &NoLoad), None);
        let d = dests(&[0, 0]);
        let wrr = WeightedRoundRobin::new(&d);
        assert_eq!(wrr.pick(&d, &NoLoad), None);
        // Every server overloaded, from every position of the mark.
        let mut d = dests(&[3, 2, 1]);
        for x in &mut d {
            x.upper_threshold = 1;
        }
        let wrr = WeightedRoundRobin::new(&d);
        assert_eq!(picks(&wrr, &d, &NoLoad, 3), [0, 0, 1].map(Some));
        let busy: &[(u64, u64)] = &[(1, 0), (0, 1), (5, 5)];
        for _ in 0..10 {
            assert_eq!(wrr.pick(&d, busy), None);
        }
        // And the rotation resumes once they drain.
        assert!(wrr.pick(&d, &NoLoad).is_some());
    }

    #[test]
    fn skips_overloaded() {
        let mut d = dests(&[3, 2, 1]);
        d[0].upper_threshold = 10;
        let wrr = WeightedRoundRobin::new(&d);
        // A has 10 connections (active + inactive): its upper threshold is reached.
        let load: &[(u64, u64)] = &[(4, 6), (100, 100), (0, 0)];
        // Passes >= 3 (nobody), >= 2 (B), >= 1 (B C).
        assert_eq!(picks(&wrr, &d, load, 6), [1, 1, 2, 1, 1, 2].map(Some));
        // Below the threshold A is back.
        let load: &[(u64, u64)] = &[(4, 5), (0, 0), (0, 0)];
        assert_eq!(counts(&d, &picks(&wrr, &d, load, 60)), [30, 20, 10]);
    }

    #[test]
    fn lone_server_below_gcd_is_still_found() {
        // Built for weights 4:8 (di = 4, mw = 5), picked with A reweighted to 1 and B
        // overloaded: the last pass asks for weight >= 1, so A still gets picked.
        let built = dests(&[4, 8]);
        let wrr = WeightedRoundRobin::new(&built);
        let mut d = dests(&[1, 8]);
        d[1].upper_threshold = 1;
        let load: &[(u64, u64)] = &[(0, 0), (1, 0)];
        assert_eq!(picks(&wrr, &d, load, 3), [0, 0, 0].map(Some));
    }

    #[test]
    fn succeeding_keeps_the_current_weight() {
        let d = dests(&[3, 2, 1]);
        let wrr = WeightedRoundRobin::new(&d);
        assert_eq!(picks(&wrr, &d, &NoLoad, 2), [0, 0].map(Some)); // now in the >= 2 pass
        let d = dests(&[3, 2, 1, 2]);
        let next = WeightedRoundRobin::succeeding(&d, &wrr);
        // Restarts at the head, still asking for >= 2, then >= 1.
        assert_eq!(picks(&next, &d, &NoLoad, 6), [0, 1, 3, 0, 1, 2].map(Some));
        // A lower maximum clamps cw to the new mw.
        let d = dests(&[1, 1]);
        let next = WeightedRoundRobin::succeeding(&d, &WeightedRoundRobin::new(&dests(&[9])));
        assert_eq!(next.pick(&d, &NoLoad), Some(0));
    }

    #[test]
    fn concurrent_picks_keep_exact_totals() {
        let d = dests(&[5, 3, 0, 1, 7]);
        let wrr = WeightedRoundRobin::new(&d);
        let counts: Vec<AtomicUsize> = d.iter().map(|_| AtomicUsize::new(0)).collect();
        let cycles_per_thread = 2_500;
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..16 * cycles_per_thread {
                        let i = wrr.pick(&d, &NoLoad).unwrap();
                        counts[i].fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        for (c, x) in counts.iter().zip(&d) {
            assert_eq!(
                c.load(Ordering::Relaxed),
                x.weight as usize * 4 * cycles_per_thread
            );
        }
    }

    proptest! {
        /// Over `k` cycles (`k * sum` picks) every server gets exactly `k * weight` picks, and
        /// the sequence is the older IPVS loop's, pick for pick.
        #[test]
        fn exact_proportions(weights in proptest::collection::vec(0u32..20, 1..12), k in 1usize..4) {
            let d = dests(&weights);
            let wrr = WeightedRoundRobin::new(&d);
            let sum: usize = weights.iter().map(|&w| w as usize).sum();
            let got = picks(&wrr, &d, &NoLoad, sum * k);
            prop_assert_eq!(&got, &classic(&weights, sum * k));
            if sum == 0 {
                prop_assert_eq!(wrr.pick(&d, &NoLoad), None);
            } else {
                let counts = counts(&d, &got);
                for (c, &w) in counts.iter().zip(&weights) {
                    prop_assert_eq!(*c, w as usize * k);
                }
            }
        }

        /// With servers overloaded at random, a pick is an available server whenever one
        /// exists, and None otherwise; it never picks a quiesced or overloaded one.
        #[test]
        fn picks_only_available(
            weights in proptest::collection::vec(0u32..20, 1..12),
            rounds in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 12), 1..40),
        ) {
            let mut d = dests(&weights);
            for x in &mut d {
                x.upper_threshold = 1;
            }
            let wrr = WeightedRoundRobin::new(&d);
            for busy in rounds {
                let load: Vec<(u64, u64)> = busy[..d.len()].iter().map(|&b| (u64::from(b), 0)).collect();
                let any = (0..d.len()).any(|i| d[i].accepts(&load[..], i));
                match wrr.pick(&d, load.as_slice()) {
                    Some(i) => prop_assert!(d[i].accepts(&load[..], i)),
                    None => prop_assert!(!any),
                }
            }
        }
    }
}
