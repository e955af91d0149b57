//! Shortest expected delay (`sed`), as IPVS's net/netfilter/ipvs/ip_vs_sed.c.
//!
//! Each new connection goes to the server where it would expect to finish soonest. With `C_i`
//! jobs already on server `i` and the weight `U_i` standing for its service rate, a new job
//! there expects a delay of
//!
//! ```text
//!     (C_i + 1) / U_i
//! ```
//!
//! (Weinrib and Shenker, "Greed is not enough: Adaptive load sharing in large heterogeneous
//! systems", INFOCOM'88). IPVS counts only active connections for `C_i`
//! (`ip_vs_sed_dest_overhead()` returns `activeconns + 1`); inactive ones do not count here,
//! except towards the upper threshold. The difference from wlc ([`crate::wlc`]) is the `+ 1` for
//! the incoming job: with servers empty, wlc sees every server at 0 and takes the first, where
//! sed takes the heaviest, since it would serve the job fastest. IPVS's comment: sed may
//! outperform wlc for big jobs when the weights vary a lot.
//!
//! The scan is wlc's: the first available server (weight above 0, not overloaded, see
//! [`Dest::is_available`]) is the best so far, and a later one replaces it only when strictly
//! better, `loh * dest->weight > doh * least->weight` (cross-multiplication instead of division),
//! so ties go to the earliest server. No server available: `None`.
//!
//! Products are taken in `u128` (overhead at most 2^64, weight at most 2^32), so nothing
//! overflows. Counts are read without locking and may lag other workers' simultaneous picks, as
//! in IPVS. A pick is one pass and never allocates.
//!
//! Fed only by its own picks, sed is D'Hondt's apportionment: after `N` picks every server holds
//! at least its share `N * w_i / W` less one connection, and after every multiple of the total
//! weight `W` the counts are exactly proportional; heavy servers may run more than one
//! connection ahead of their share in between.

use crate::wlc::least_per_weight;
use crate::{Dest, Load};

/// IPVS's `ip_vs_sed_dest_overhead()` (also nq's): the active connections plus the new one.
#[inline]
pub(crate) fn expected_delay_overhead(active: u64) -> u128 {
    u128::from(active) + 1
}

#[derive(Debug, Default)]
pub struct ShortestExpectedDelay;

impl ShortestExpectedDelay {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        least_per_weight(dests, load, 0..dests.len(), |i| {
            expected_delay_overhead(load.active(i))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::wlc::WeightedLeastConnection;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn pick(dests: &[Dest], loads: &[(u64, u64)]) -> Option<usize> {
        ShortestExpectedDelay.pick(dests, loads)
    }

    #[test]
    fn picks_least_expected_delay() {
        let d = dests(&[1, 3, 2]);
        // (active + 1) / weight: 3, 5/3, 2.
        assert_eq!(pick(&d, &[(2, 0), (4, 0), (3, 0)]), Some(1));
        // 1, 5/3, 2.
        assert_eq!(pick(&d, &[(0, 0), (4, 0), (3, 0)]), Some(0));
    }

    #[test]
    fn counts_the_incoming_connection_unlike_wlc() {
        // All empty: wlc sees 0 everywhere and takes the first; sed takes the heaviest.
        let d = dests(&[1, 10, 4]);
        let empty = [(0, 0), (0, 0), (0, 0)];
        assert_eq!(pick(&d, &empty), Some(1));
        assert_eq!(WeightedLeastConnection.pick(&d, &empty[..]), Some(0));
        // 1/1 against 2/10: sed keeps loading the fast server, wlc fills the idle one.
        let loads = [(0, 0), (1, 0), (0, 0)];
        assert_eq!(pick(&d, &loads), Some(1));
        assert_eq!(WeightedLeastConnection.pick(&d, &loads[..]), Some(0));
    }

    #[test]
    fn ignores_inactive_connections() {
        let d = dests(&[1, 1]);
        assert_eq!(pick(&d, &[(0, 1000), (0, 0)]), Some(0));
        assert_eq!(pick(&d, &[(1, 0), (0, 1000)]), Some(1));
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
        // Inactive connections count towards the upper threshold.
        let mut d = dests(&[10, 1]);
        d[0].upper_threshold = 4;
        assert_eq!(pick(&d, &[(0, 4), (7, 0)]), Some(1));
        assert_eq!(pick(&d, &[(0, 3), (7, 0)]), Some(0));
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
        assert_eq!(pick(&d, &[(0, 0), (u64::MAX - 1, 0)]), Some(0));
        // (2^64 - 1) / (2^32 - 1) = 2^32 + 1: a tie, then one more connection tips it.
        assert_eq!(pick(&d, &[(1 << 32, 0), (u64::MAX - 1, 0)]), Some(0));
        assert_eq!(pick(&d, &[((1 << 32) + 1, 0), (u64::MAX - 1, 0)]), Some(1));
    }

    /// D'Hondt favours heavy servers: over weights [100, 1 × 9] the first server takes the first
    /// 100 connections (share 91.7), since (a + 1) / 100 stays at or below 1 until then.
    #[test]
    fn heavy_servers_run_ahead_of_their_share() {
        let mut weights = vec![1; 10];
        weights[0] = 100;
        let d = dests(&weights);
        let mut loads = vec![(0u64, 0u64); d.len()];
        for _ in 0..100 {
            assert_eq!(pick(&d, &loads), Some(0));
            loads[0].0 += 1;
        }
        assert_eq!(pick(&d, &loads), Some(1));
    }

    /// Weights in 0..100, small ones often, so that ties are common.
    fn weight() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..4, 0u32..100]
    }

    /// (weight, upper threshold, active, inactive) per server. Counts are mostly small (so
    /// ties are common), sometimes huge.
    fn servers() -> impl Strategy<Value = Vec<(u32, u32, u64, u64)>> {
        let count = || prop_oneof![4 => 0u64..6, 1 => 0u64..(u64::MAX / 4)];
        let threshold = prop_oneof![Just(0u32), 1u32..12];
        proptest::collection::vec((weight(), threshold, count(), count()), 0..12)
    }

    proptest! {
        /// The pick is the first available server of least `(active + 1) / weight`, checked by
        /// cross-multiplication against every other server, and `None` exactly when no server is
        /// available.
        #[test]
        fn picks_the_first_least_expected_delay(servers in servers()) {
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
            let delay: Vec<u128> = loads.iter().map(|l| u128::from(l.0) + 1).collect();
            let weight: Vec<u128> = d.iter().map(|x| u128::from(x.weight)).collect();
            // delay[a] / weight[a] compared with delay[b] / weight[b].
            let cmp = |a: usize, b: usize| (delay[a] * weight[b]).cmp(&(delay[b] * weight[a]));

            let picked = pick(&d, &loads);
            prop_assert_eq!(picked.is_none(), !available.contains(&true));
            if let Some(p) = picked {
                prop_assert!(available[p]);
                for j in (0..d.len()).filter(|&j| available[j]) {
                    prop_assert!(cmp(p, j).is_le(), "{} is faster than {}", j, p);
                    if j < p {
                        prop_assert!(cmp(j, p).is_gt(), "{} ties {} earlier", j, p);
                    }
                }
            }
        }

        /// Starting empty, picking and opening one connection at a time: `a_i / w_i <=
        /// (a_j + 1) / w_j` for every pair, hence every server at least its share less one,
        /// `a_i > N * w_i / W - 1`; exact proportions after every multiple of `W`; weight 0 gets
        /// none.
        #[test]
        fn counts_keep_lower_quota(
            weights in proptest::collection::vec(prop_oneof![1 => Just(0u32), 6 => 1u32..100], 1..10),
            rounds in 1u64..4,
        ) {
            let d = dests(&weights);
            let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
            let mut loads = vec![(0u64, 0u64); d.len()];
            for n in 1..=total * rounds {
                let i = pick(&d, &loads).unwrap();
                loads[i].0 += 1;
                for (i, (a_i, _)) in loads.iter().enumerate() {
                    let w_i = u64::from(weights[i]);
                    prop_assert!((a_i + 1) * total > n * w_i, "{} under its share after {}", i, n);
                    for (j, (a_j, _)) in loads.iter().enumerate() {
                        let w_j = u64::from(weights[j]);
                        prop_assert!(a_i * w_j <= (a_j + 1) * w_i);
                    }
                }
                if n % total == 0 {
                    for (i, (a_i, _)) in loads.iter().enumerate() {
                        prop_assert_eq!(*a_i, n / total * u64::from(weights[i]));
                    }
                }
            }
        }
    }
}
