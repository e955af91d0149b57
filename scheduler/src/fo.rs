//! Weighted failover (`fo`), as IPVS's ip_vs_fo.c.
//!
//! Every new connection goes to the server with the highest weight among those that can take
//! one; the others are standbys, used only when it is overloaded (upper threshold reached) or
//! quiesced (weight 0). Operators fail over by reweighting. ip_vs_fo_schedule walks the list
//! once and keeps a server only when its weight is strictly above the best so far (which starts
//! at 0):
//!
//! ```c
//! if (!(dest->flags & IP_VS_DEST_F_OVERLOAD) &&
//!     atomic_read(&dest->weight) > hw) {
//! ```
//!
//! so among servers of equal highest weight the first in list order wins, and a server of
//! weight 0 never does. No state, no allocation: a pick is one pass over the servers.

use crate::{Dest, Load};

#[derive(Debug, Default)]
pub struct WeightedFailover;

impl WeightedFailover {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        let mut best: Option<usize> = None;
        let mut hw = 0;
        for (i, dest) in dests.iter().enumerate() {
            if dest.weight > hw && !dest.is_overloaded(load.connections(i)) {
                best = Some(i);
                hw = dest.weight;
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
        assert_eq!(WeightedFailover.pick(&dests(&[1, 5, 3]), &NoLoad), Some(1));
        assert_eq!(
            WeightedFailover.pick(&dests(&[2, 7, 7, 1]), &NoLoad),
            Some(1)
        );
        // Stateless: the same server every time.
        let d = dests(&[4, 9]);
        for _ in 0..5 {
            assert_eq!(WeightedFailover.pick(&d, &NoLoad), Some(1));
        }
    }

    #[test]
    fn fails_over_when_overloaded_or_quiesced() {
        let mut d = dests(&[10, 5, 5]);
        d[0].upper_threshold = 3;
        // Primary at its threshold (active + inactive = 3): the first of the two standbys.
        let load: &[(u64, u64)] = &[(1, 2), (50, 50), (0, 0)];
        assert_eq!(WeightedFailover.pick(&d, load), Some(1));
        let load: &[(u64, u64)] = &[(1, 1), (0, 0), (0, 0)];
        assert_eq!(WeightedFailover.pick(&d, load), Some(0));
        d[0].weight = 0;
        assert_eq!(WeightedFailover.pick(&d, &NoLoad), Some(1));
    }

    #[test]
    fn none_when_nothing_available() {
        assert_eq!(WeightedFailover.pick(&[], &NoLoad), None);
        assert_eq!(WeightedFailover.pick(&dests(&[0, 0]), &NoLoad), None);
        let mut d = dests(&[2, 1]);
        d[0].upper_threshold = 1;
        d[1].upper_threshold = 1;
        let load: &[(u64, u64)] = &[(0, 1), (1, 0)];
        assert_eq!(WeightedFailover.pick(&d, load), None);
    }

    proptest! {
        /// The pick is the first available server of the highest weight among the available
        /// ones; None exactly when none is available.
        #[test]
        fn first_of_the_heaviest_available(
            servers in proptest::collection::vec((0u32..6, 0u32..3, 0u64..3), 0..12),
        ) {
            let d: Vec<Dest> = servers
                .iter()
                .enumerate()
                .map(|(i, &(w, x, _))| Dest {
                    upper_threshold: x,
                    ..Dest::new(Ipv4Addr::new(198, 19, 0, i as u8), 80, w)
                })
                .collect();
            let load: Vec<(u64, u64)> = servers.iter().map(|&(_, _, c)| (c, 0)).collect();
            let available: Vec<usize> =
                (0..d.len()).filter(|&i| d[i].accepts(load.as_slice(), i)).collect();
            let max = available.iter().map(|&i| d[i].weight).max();
            let expected = available.iter().copied().find(|&i| Some(d[i].weight) == max);
            prop_assert_eq!(WeightedFailover.pick(&d, load.as_slice()), expected);
        }
    }
}
