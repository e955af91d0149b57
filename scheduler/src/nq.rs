//! Never queue (`nq`), as IPVS's net/netfilter/ipvs/ip_vs_nq.c.
//!
//! A two-speed model: when a server is idle, the new connection goes there rather than wait
//! behind a faster one; when none is idle it goes where its expected delay is shortest, as sed
//! ([`crate::sed`]): least `(active + 1) / weight`. Compared with sed, nq trades a little delay
//! for each job for better use of the whole cluster (Weinrib and Shenker, INFOCOM'88).
//!
//! "Idle" is IPVS's `atomic_read(&dest->activeconns) == 0`: no active connections, whatever the
//! inactive ones. IPVS scans the servers once in list order, skipping overloaded and weight-0
//! ones ([`Dest::is_available`]), and returns the first idle server the moment it meets it, even
//! if a faster idle server comes later in the list. Until then it tracks the least
//! `(active + 1) / weight` with sed's cross-multiplication, a later server replacing the best so
//! far only when strictly better (`loh * dest->weight > doh * least->weight`), so ties go to the
//! earliest server. No server available: `None`.
//!
//! Products are taken in `u128`, so nothing overflows. Counts are read without locking and may
//! lag other workers' simultaneous picks, as in IPVS. A pick is one pass (stopping at the first
//! idle server) and never allocates.

use crate::sed::expected_delay_overhead;
use crate::wlc::least_per_weight;
use crate::{Dest, Load};

#[derive(Debug, Default)]
pub struct NeverQueue;

impl NeverQueue {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        // The first available idle server wins at once (ip_vs_nq.c), else the sed choice.
        let idle = (0..dests.len()).find(|&i| dests[i].accepts(load, i) && load.active(i) == 0);
        idle.or_else(|| {
            least_per_weight(dests, load, 0..dests.len(), |i| {
                expected_delay_overhead(load.active(i))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sed::ShortestExpectedDelay;
    use crate::test_support::dests;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn pick(dests: &[Dest], loads: &[(u64, u64)]) -> Option<usize> {
        NeverQueue.pick(dests, loads)
    }

    #[test]
    fn an_idle_server_wins_over_a_faster_busy_one() {
        // sed: 1/1 against 2/100, the fast server; nq: the idle one.
        let d = dests(&[100, 1]);
        let loads = [(1, 0), (0, 0)];
        assert_eq!(pick(&d, &loads), Some(1));
        assert_eq!(ShortestExpectedDelay.pick(&d, &loads[..]), Some(0));
    }

    #[test]
    fn the_first_idle_server_wins_whatever_its_weight() {
        let d = dests(&[1, 50, 100]);
        assert_eq!(pick(&d, &[(3, 0), (0, 0), (0, 0)]), Some(1));
        // Inactive connections do not make a server busy.
        assert_eq!(pick(&d, &[(0, 900), (0, 0), (0, 0)]), Some(0));
        // An idle but quiesced or overloaded server does not count.
        let mut d = dests(&[0, 1, 1, 1]);
        d[1].upper_threshold = 5;
        assert_eq!(pick(&d, &[(0, 0), (0, 5), (1, 0), (0, 0)]), Some(3));
    }

    #[test]
    fn with_none_idle_picks_least_expected_delay() {
        let d = dests(&[1, 3, 2]);
        // (active + 1) / weight: 3, 5/3, 2.
        assert_eq!(pick(&d, &[(2, 0), (4, 0), (3, 0)]), Some(1));
        // Inactive connections do not count: 2, 5/3, 2.
        assert_eq!(pick(&d, &[(1, 0), (4, 500), (3, 0)]), Some(1));
    }

    #[test]
    fn ties_go_to_the_earliest_server() {
        // (1+1)/1 == (3+1)/2 == (5+1)/3.
        let d = dests(&[1, 2, 3]);
        assert_eq!(pick(&d, &[(1, 0), (3, 0), (5, 0)]), Some(0));
        let d = dests(&[3, 2, 1]);
        assert_eq!(pick(&d, &[(5, 0), (3, 0), (1, 0)]), Some(0));
        assert_eq!(pick(&d, &[(6, 0), (3, 0), (1, 0)]), Some(1));
    }

    #[test]
    fn never_picks_quiesced_or_overloaded() {
        let d = dests(&[0, 1, 1]);
        assert_eq!(pick(&d, &[(0, 0), (9, 0), (5, 0)]), Some(2));
        let d = dests(&[1, 0]);
        assert_eq!(pick(&d, &[(5, 0), (0, 0)]), Some(0));
        let mut d = dests(&[10, 1]);
        d[0].upper_threshold = 4;
        assert_eq!(pick(&d, &[(1, 3), (7, 0)]), Some(1));
        assert_eq!(pick(&d, &[(1, 2), (7, 0)]), Some(0));
    }

    #[test]
    fn none_when_no_server_is_available() {
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&dests(&[0, 0]), &[(0, 0), (0, 0)]), None);
        let mut d = dests(&[0, 5]);
        d[1].upper_threshold = 1;
        assert_eq!(pick(&d, &[(0, 0), (0, 1)]), None);
    }

    #[test]
    fn huge_counts_and_weights_do_not_overflow() {
        let d = dests(&[u32::MAX, u32::MAX - 1]);
        assert_eq!(pick(&d, &[(u64::MAX - 1, 0), (u64::MAX - 1, 0)]), Some(0));
        let d = dests(&[1, u32::MAX]);
        // (2^64 - 1) / (2^32 - 1) = 2^32 + 1: a tie, then one more connection tips it.
        assert_eq!(pick(&d, &[(1 << 32, 0), (u64::MAX - 1, 0)]), Some(0));
        assert_eq!(pick(&d, &[((1 << 32) + 1, 0), (u64::MAX - 1, 0)]), Some(1));
    }

    /// Weights in 0..100, small ones often, so that ties are common.
    fn weight() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..4, 0u32..100]
    }

    /// (weight, upper threshold, active, inactive) per server. Counts are mostly small (so
    /// idle servers and ties are common), sometimes huge.
    fn servers() -> impl Strategy<Value = Vec<(u32, u32, u64, u64)>> {
        let count = || prop_oneof![4 => 0u64..6, 1 => 0u64..(u64::MAX / 4)];
        let threshold = prop_oneof![Just(0u32), 1u32..12];
        proptest::collection::vec((weight(), threshold, count(), count()), 0..12)
    }

    proptest! {
        /// The pick is the first available idle server if there is one, else the first available
        /// server of least `(active + 1) / weight`, checked by cross-multiplication against every
        /// other server; `None` exactly when no server is available.
        #[test]
        fn picks_first_idle_else_least_expected_delay(servers in servers()) {
            let d: Vec<Dest> = servers
                .iter()
                .enumerate()
                .map(|(i, &(w, u, _, _))| Dest {
                    upper_threshold: u,
                    ..Dest::new(Ipv4Addr::new(198, 19, 0, i as u8), 80, w)
                })
                .collect();
            let loads: Vec<(u64, u64)> = servers.iter().map(|s| (s.2, s.3)).collect();
            let available: Vec<bool> =
                d.iter().zip(&loads).map(|(x, l)| x.is_available(l.0 + l.1)).collect();
            let idle: Vec<bool> = (0..d.len()).map(|i| available[i] && loads[i].0 == 0).collect();
            let delay: Vec<u128> = loads.iter().map(|l| u128::from(l.0) + 1).collect();
            let weight: Vec<u128> = d.iter().map(|x| u128::from(x.weight)).collect();
            // delay[a] / weight[a] compared with delay[b] / weight[b].
            let cmp = |a: usize, b: usize| (delay[a] * weight[b]).cmp(&(delay[b] * weight[a]));

            let picked = pick(&d, &loads);
            prop_assert_eq!(picked.is_none(), !available.contains(&true));
            if let Some(p) = picked {
                prop_assert!(available[p]);
                if idle.contains(&true) {
                    prop_assert!(idle[p]);
                    prop_assert!(!idle[..p].contains(&true), "an earlier server is idle");
                } else {
                    for j in (0..d.len()).filter(|&j| available[j]) {
                        prop_assert!(cmp(p, j).is_le(), "{} is faster than {}", j, p);
                        if j < p {
                            prop_assert!(cmp(j, p).is_gt(), "{} ties {} earlier", j, p);
                        }
                    }
                }
            }
        }
    }
}
