//! Weighted least connection (`wlc`, ipvsadm's default), as IPVS's
//! net/netfilter/ipvs/ip_vs_wlc.c.
//!
//! Each new connection goes to the server with the least connection overhead per unit of weight:
//!
//! ```text
//!     overhead / weight,   overhead = active * 256 + inactive
//! ```
//!
//! with the overhead of lc ([`crate::lc`], IPVS's `ip_vs_dest_conn_overhead()`). A server of
//! weight 2 is expected to carry twice the connections of one of weight 1.
//!
//! IPVS does it without division ("no floats in kernel mode"): with positive weights,
//! `h1/w1 > h2/w2` exactly when `h1*w2 > h2*w1`. It takes the first available server (weight
//! above 0, not overloaded) as the least loaded so far, then scans the rest in list order; a
//! server replaces it only when strictly lighter, `loh * dest->weight > doh * least->weight`, so
//! ties go to the earliest server. (IPVS's second pass skips only overloaded servers; a weight-0
//! server can never win it, since `loh * 0 > doh * w` is false. Here both are skipped up front
//! with [`Dest::is_available`].) No server available: `None`.
//!
//! Overheads (at most 2^72) and weights (at most 2^32) are multiplied in `u128`, so nothing
//! overflows (IPVS uses 64-bit products of 32-bit values). Counts are read without locking and
//! may lag other workers' simultaneous picks, as in IPVS. A pick is one pass and never allocates.
//!
//! Fed only by its own picks, wlc keeps every server within one connection of its share in this
//! sense: removing one connection from any server leaves it no more loaded per weight than any
//! other (`(a_i - 1) * w_j <= a_j * w_i`). So no server ever holds a whole connection more than
//! its share `N * w_i / W`, and after any multiple of the total weight `W` the counts are exactly
//! proportional. A server can fall further behind its share in between: empty servers tie at
//! overhead 0, so each one, however light, takes a connection before any takes a second.

use crate::lc::conn_overhead;
use crate::{Dest, Load};

#[derive(Debug, Default)]
pub struct WeightedLeastConnection;

impl WeightedLeastConnection {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        least_per_weight(dests, load, 0..dests.len(), |i| {
            conn_overhead(load.active(i), load.inactive(i))
        })
    }
}

/// Among `candidates` (in list order), the server that accepts a connection and minimises
/// `overhead(i) / weight`, compared without division as IPVS does (`loh * w > doh * lw`, in
/// u128 so nothing overflows); ties keep the earlier server. wlc, sed, nq, lblc and lblcr differ
/// only in their overhead and candidates.
#[inline]
pub(crate) fn least_per_weight<L, I>(
    dests: &[Dest],
    load: &L,
    candidates: I,
    overhead: impl Fn(usize) -> u128,
) -> Option<usize>
where
    L: Load + ?Sized,
    I: IntoIterator<Item = usize>,
{
    // (index, overhead, weight) of the least loaded available server so far.
    let mut least: Option<(usize, u128, u128)> = None;
    for i in candidates {
        if i >= dests.len() || !dests[i].accepts(load, i) {
            continue;
        }
        let doh = overhead(i);
        let weight = u128::from(dests[i].weight);
        if least.is_none_or(|(_, loh, lw)| loh * weight > doh * lw) {
            least = Some((i, doh, weight));
        }
    }
    least.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn pick(dests: &[Dest], loads: &[(u64, u64)]) -> Option<usize> {
        WeightedLeastConnection.pick(dests, loads)
    }

    #[test]
    fn picks_least_overhead_per_weight() {
        let d = dests(&[1, 3, 2]);
        // Overhead per weight: 512, 341.3, 384.
        assert_eq!(pick(&d, &[(2, 0), (4, 0), (3, 0)]), Some(1));
        // 256, 341.3, 384.
        assert_eq!(pick(&d, &[(1, 0), (4, 0), (3, 0)]), Some(0));
        // Inactive connections count 1/256 of an active one: 256 vs 256 + 1/3.
        let d = dests(&[1, 3]);
        assert_eq!(pick(&d, &[(1, 0), (3, 1)]), Some(0));
        assert_eq!(pick(&d, &[(1, 1), (3, 1)]), Some(1));
    }

    #[test]
    fn ties_go_to_the_earliest_server() {
        // 2/1 == 4/2 == 6/3.
        let d = dests(&[1, 2, 3]);
        assert_eq!(pick(&d, &[(2, 0), (4, 0), (6, 0)]), Some(0));
        let d = dests(&[3, 2, 1]);
        assert_eq!(pick(&d, &[(6, 0), (4, 0), (2, 0)]), Some(0));
        assert_eq!(pick(&d, &[(6, 0), (4, 0), (1, 255)]), Some(2));
        // All empty: the first server.
        assert_eq!(pick(&d, &[(0, 0), (0, 0), (0, 0)]), Some(0));
    }

    #[test]
    fn never_picks_quiesced_or_overloaded() {
        // The idle server has weight 0: quiesced, even though 0 * anything ties.
        let d = dests(&[0, 1, 1]);
        assert_eq!(pick(&d, &[(0, 0), (9, 0), (5, 0)]), Some(2));
        let d = dests(&[1, 0]);
        assert_eq!(pick(&d, &[(5, 0), (0, 0)]), Some(0));
        // The lightest server has reached its upper threshold (active + inactive = 4).
        let mut d = dests(&[10, 1]);
        d[0].upper_threshold = 4;
        assert_eq!(pick(&d, &[(2, 2), (7, 0)]), Some(1));
        assert_eq!(pick(&d, &[(2, 1), (7, 0)]), Some(0));
    }

    #[test]
    fn none_when_no_server_is_available() {
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&dests(&[0, 0]), &[(0, 0), (0, 0)]), None);
        let mut d = dests(&[0, 5]);
        d[1].upper_threshold = 1;
        assert_eq!(pick(&d, &[(0, 0), (1, 0)]), None);
    }

    #[test]
    fn huge_counts_and_weights_do_not_overflow() {
        let big = u64::MAX / 2;
        let d = dests(&[u32::MAX, u32::MAX - 1]);
        // big*256 / (2^32 - 1) < big*256 / (2^32 - 2).
        assert_eq!(pick(&d, &[(big, 0), (big, 0)]), Some(0));
        let d = dests(&[1, u32::MAX]);
        assert_eq!(pick(&d, &[(1, 0), (big, big)]), Some(0));
        // 2^40 / 1 against big * 257 / (2^32 - 1), about 2^39.
        assert_eq!(pick(&d, &[(1 << 32, 0), (big, big)]), Some(1));
    }

    /// Empty servers tie at overhead 0, so each gets a connection before any gets a second,
    /// whatever the weights: after 10 picks over weights [100, 1 × 9] every server holds one,
    /// though the first server's share is 9.2. (Its share catches up later.)
    #[test]
    fn empty_servers_each_take_one_first() {
        let mut weights = vec![1; 10];
        weights[0] = 100;
        let d = dests(&weights);
        let mut loads = vec![(0u64, 0u64); d.len()];
        for _ in 0..10 {
            let i = pick(&d, &loads).unwrap();
            loads[i].0 += 1;
        }
        assert!(loads.iter().all(|&l| l == (1, 0)));
        for _ in 10..109 {
            let i = pick(&d, &loads).unwrap();
            loads[i].0 += 1;
        }
        assert_eq!(loads[0], (100, 0));
    }

    /// Weights in 0..100, small ones often, so that ties are common.
    fn weight() -> impl Strategy<Value = u32> {
        prop_oneof![0u32..4, 0u32..100]
    }

    /// (weight, upper threshold, active, inactive) per server. Counts are mostly small, with
    /// inactive ones around 256 (one active connection's worth) so that ties across the two
    /// kinds are common, and sometimes huge.
    fn servers() -> impl Strategy<Value = Vec<(u32, u32, u64, u64)>> {
        let huge = 0u64..(u64::MAX / 4);
        let active = prop_oneof![3 => 0u64..3, 1 => huge.clone()];
        let inactive = prop_oneof![2 => 0u64..3, 2 => 250u64..262, 1 => huge];
        let threshold = prop_oneof![Just(0u32), 1u32..300];
        proptest::collection::vec((weight(), threshold, active, inactive), 0..12)
    }

    proptest! {
        /// The pick is the first available server of least `(active * 256 + inactive) / weight`,
        /// checked by cross-multiplication against every other server, and `None` exactly when
        /// no server is available.
        #[test]
        fn picks_the_first_least_overhead_per_weight(servers in servers()) {
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
            let overhead: Vec<u128> =
                loads.iter().map(|l| u128::from(l.0) * 256 + u128::from(l.1)).collect();
            let weight: Vec<u128> = d.iter().map(|x| u128::from(x.weight)).collect();
            // overhead[a] / weight[a] compared with overhead[b] / weight[b].
            let cmp = |a: usize, b: usize| (overhead[a] * weight[b]).cmp(&(overhead[b] * weight[a]));

            let picked = pick(&d, &loads);
            prop_assert_eq!(picked.is_none(), !available.contains(&true));
            if let Some(p) = picked {
                prop_assert!(available[p]);
                for j in (0..d.len()).filter(|&j| available[j]) {
                    prop_assert!(cmp(p, j).is_le(), "{} is lighter than {}", j, p);
                    if j < p {
                        prop_assert!(cmp(j, p).is_gt(), "{} ties {} earlier", j, p);
                    }
                }
            }
        }

        /// Starting empty, picking and opening one connection at a time: no server ever holds a
        /// connection more than its share beyond any other (`(a_i - 1) / w_i <= a_j / w_j`),
        /// hence never a whole connection above `N * w_i / W`; after every multiple of the total
        /// weight `W` the counts are exactly proportional to the weights; weight 0 gets none.
        #[test]
        fn counts_stay_proportional_to_weights(
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
                    // a_i < n * w_i / W + 1.
                    prop_assert!(a_i * total < n * w_i + total, "{} over its share after {}", i, n);
                    for (j, (a_j, _)) in loads.iter().enumerate() {
                        let w_j = u64::from(weights[j]);
                        prop_assert!(a_i.saturating_sub(1) * w_j <= a_j * w_i);
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
