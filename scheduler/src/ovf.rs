//! Weighted overflow (`ovf`), as IPVS's ip_vs_ovf.c.
//!
//! New connections go to the server with the highest weight until its active (ESTABLISHED)
//! connections exceed its weight, then overflow to the next highest, and so on: the weight is a
//! connection budget rather than a share. ip_vs_ovf_schedule walks the list once and skips a
//! server that is overloaded, quiesced, or over its budget:
//!
//! ```c
//! if ((dest->flags & IP_VS_DEST_F_OVERLOAD) ||
//!     atomic_read(&dest->activeconns) > w ||
//!     w == 0)
//!         continue;
//! if (!h || w > hw) {
//! ```
//!
//! So a server is still eligible while `active <= weight` (a server of weight 4 takes a fifth
//! connection, and is skipped once it holds five), the first eligible server of the highest
//! weight wins ties, and only active connections count against the budget (IPVS notes that this
//! may not suit UDP, whose connections are never active); the upper threshold, as everywhere,
//! counts active and inactive ones. No state, no allocation: a pick is one pass over the servers.

use crate::{Dest, Load};

#[derive(Debug, Default)]
pub struct WeightedOverflow;

impl WeightedOverflow {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, dest) in dests.iter().enumerate() {
            let w = dest.weight;
            if w == 0 || load.active(i) > u64::from(w) || dest.is_overloaded(load.connections(i)) {
                continue;
            }
            if best.is_none() || w > hw {
                best = Some(i);
                hw = w;
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn highest_weight_first_in_list_on_ties() {
        assert_eq!(WeightedOverflow.pick(&dests(&[1, 5, 3]), &NoLoad), Some(1));
        assert_eq!(
            WeightedOverflow.pick(&dests(&[2, 7, 7, 1]), &NoLoad),
            Some(1)
        );
        assert_eq!(WeightedOverflow.pick(&dests(&[0, 4]), &NoLoad), Some(1));
    }

    #[test]
    fn overflows_once_active_exceeds_weight() {
        let d = dests(&[4, 2, 2]);
        // At its weight the primary still takes connections (activeconns > w skips it).
        let load: &[(u64, u64)] = &[(4, 0), (0, 0), (0, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), Some(0));
        // Over it: the first of the next highest.
        let load: &[(u64, u64)] = &[(5, 0), (0, 0), (0, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), Some(1));
        let load: &[(u64, u64)] = &[(5, 0), (3, 0), (2, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), Some(2));
        let load: &[(u64, u64)] = &[(5, 0), (3, 0), (3, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), None);
        // Inactive connections do not count against the weight.
        let load: &[(u64, u64)] = &[(0, 1000), (0, 0), (0, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), Some(0));
    }

    #[test]
    fn fills_servers_in_turn() {
        // Opening connections one by one (all staying active): 5 go to A (active 0..=4),
        // then 3 to B, 3 to C, then nothing.
        let d = dests(&[4, 2, 2]);
        let mut load = [(0u64, 0u64); 3];
        let mut order = Vec::new();
        while let Some(i) = WeightedOverflow.pick(&d, load.as_slice()) {
            order.push(i);
            load[i].0 += 1;
        }
        assert_eq!(order, [0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn skips_overloaded_and_quiesced() {
        let mut d = dests(&[4, 2, 0]);
        d[0].upper_threshold = 3;
        // Active 1 + inactive 2 reaches A's threshold, though 1 <= weight.
        let load: &[(u64, u64)] = &[(1, 2), (0, 0), (0, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), Some(1));
        let load: &[(u64, u64)] = &[(1, 2), (3, 0), (0, 0)];
        assert_eq!(WeightedOverflow.pick(&d, load), None);
        assert_eq!(WeightedOverflow.pick(&[], &NoLoad), None);
    }

    proptest! {
        /// The pick is the first eligible server (weight > 0, active <= weight, not overloaded)
        /// of the highest weight among the eligible ones; None exactly when none is eligible.
        #[test]
        fn first_of_the_heaviest_eligible(
            servers in proptest::collection::vec((0u32..6, 0u32..8, 0u64..8, 0u64..4), 0..12),
        ) {
            let d: Vec<Dest> = servers
                .iter()
                .enumerate()
                .map(|(i, &(w, x, _, _))| Dest {
                    upper_threshold: x,
                    ..Dest::new(Ipv4Addr::new(198, 19, 0, i as u8), 80, w)
                })
                .collect();
            let load: Vec<(u64, u64)> = servers.iter().map(|&(_, _, a, n)| (a, n)).collect();
            let eligible: Vec<usize> = (0..d.len())
                .filter(|&i| {
                    d[i].accepts(load.as_slice(), i) && load[i].0 <= u64::from(d[i].weight)
                })
                .collect();
            let max = eligible.iter().map(|&i| d[i].weight).max();
            let expected = eligible.iter().copied().find(|&i| Some(d[i].weight) == max);
            prop_assert_eq!(WeightedOverflow.pick(&d, load.as_slice()), expected);
        }
    }
}
