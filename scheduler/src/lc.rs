//! Least connection (`lc`), as IPVS's net/netfilter/ipvs/ip_vs_lc.c.
//!
//! Each new connection goes to the server with the least connection overhead, IPVS's estimate of
//! the work a server is doing (`ip_vs_dest_conn_overhead()` in include/net/ip_vs.h):
//!
//! ```text
//!     overhead = active * 256 + inactive
//! ```
//!
//! IPVS reckons an ESTABLISHED connection costs about 256 times as much as one in any other state
//! (TIME_WAIT, SYN_RECV, every UDP one), so inactive connections only break near-ties between
//! servers with the same number of active ones. (The comment in ip_vs_lc.c still says
//! `(activeconns<<5) + inactconns`; the code has used the shared `<<8` helper for years.)
//!
//! Weights play no part, except that a server of weight 0 is quiesced: it keeps its established
//! connections but gets no new ones. Overloaded servers (connections at their upper threshold)
//! are skipped too; both checks are [`Dest::is_available`]. The servers are scanned in list
//! order and one replaces the best so far only when its overhead is strictly lower
//! (`if (!least || doh < loh)`), so ties go to the earliest server. No server available: `None`
//! (IPVS logs "no destination available" and drops the connection).
//!
//! The overhead is computed in `u128`, so no count can overflow it (IPVS uses a 32-bit int). The
//! counts are read without locking and may lag the picks other workers make at the same
//! instant; IPVS reads its atomics the same way. A pick is one pass over the servers and never
//! allocates.

use crate::{Dest, Load};

/// IPVS's `ip_vs_dest_conn_overhead()`: `(activeconns << 8) + inactconns`, in `u128` so that no
/// count can overflow it (at most 2^72, which leaves room to multiply by a 32-bit weight).
#[inline]
pub(crate) fn conn_overhead(active: u64, inactive: u64) -> u128 {
    (u128::from(active) << 8) + u128::from(inactive)
}

#[derive(Debug, Default)]
pub struct LeastConnection;

impl LeastConnection {
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        // (index, overhead) of the least loaded available server so far.
        let mut least: Option<(usize, u128)> = None;
        for (i, dest) in dests.iter().enumerate() {
            if !dest.accepts(load, i) {
                continue;
            }
            let doh = conn_overhead(load.active(i), load.inactive(i));
            let better = match least {
                None => true,
                Some((_, loh)) => doh < loh,
            };
            if better {
                least = Some((i, doh));
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn pick(dests: &[Dest], loads: &[(u64, u64)]) -> Option<usize> {
        LeastConnection.pick(dests, loads)
    }

    #[test]
    fn picks_least_overhead() {
        let d = dests(&[1, 1, 1]);
        // Overheads 512, 556, 266.
        assert_eq!(pick(&d, &[(2, 0), (2, 44), (1, 10)]), Some(2));
        // No connections anywhere: the first server.
        assert_eq!(pick(&d, &[(0, 0), (0, 0), (0, 0)]), Some(0));
    }

    #[test]
    fn an_active_connection_weighs_256_inactive_ones() {
        let d = dests(&[1, 1]);
        // 256 vs 255: the server with 255 inactive connections is lighter.
        assert_eq!(pick(&d, &[(1, 0), (0, 255)]), Some(1));
        // 256 vs 257.
        assert_eq!(pick(&d, &[(1, 0), (0, 257)]), Some(0));
        // 256 vs 256: a tie, which the earlier server wins.
        assert_eq!(pick(&d, &[(1, 0), (0, 256)]), Some(0));
        assert_eq!(pick(&d, &[(0, 256), (1, 0)]), Some(0));
    }

    #[test]
    fn ties_go_to_the_earliest_server() {
        let d = dests(&[1, 1, 1, 1]);
        assert_eq!(pick(&d, &[(3, 0), (1, 5), (2, 0), (1, 5)]), Some(1));
    }

    #[test]
    fn weights_do_not_count() {
        // A heavier server gets no preference in lc (that is wlc).
        let d = dests(&[1, 100]);
        assert_eq!(pick(&d, &[(1, 0), (2, 0)]), Some(0));
        assert_eq!(pick(&d, &[(0, 0), (0, 0)]), Some(0));
    }

    #[test]
    fn never_picks_quiesced_or_overloaded() {
        // The idle server has weight 0: quiesced.
        let d = dests(&[0, 1, 1]);
        assert_eq!(pick(&d, &[(0, 0), (9, 0), (5, 0)]), Some(2));
        // The lightest server has reached its upper threshold (active + inactive = 4).
        let mut d = dests(&[1, 1]);
        d[0].upper_threshold = 4;
        assert_eq!(pick(&d, &[(1, 3), (7, 0)]), Some(1));
        // One below the threshold it may still take connections.
        assert_eq!(pick(&d, &[(1, 2), (7, 0)]), Some(0));
    }

    #[test]
    fn none_when_no_server_is_available() {
        assert_eq!(pick(&[], &[]), None);
        assert_eq!(pick(&dests(&[0, 0]), &[(0, 0), (0, 0)]), None);
        let mut d = dests(&[0, 1]);
        d[1].upper_threshold = 1;
        assert_eq!(pick(&d, &[(0, 0), (0, 1)]), None);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let d = dests(&[1, 1, 1]);
        let big = u64::MAX / 2;
        // (big - 1) * 256 + 255 is one less than big * 256.
        assert_eq!(pick(&d, &[(big, 0), (big, 1), (big - 1, 255)]), Some(2));
        assert_eq!(pick(&d, &[(big, big), (big, 0), (big, 1)]), Some(1));
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
        /// The pick is the first available server of least `active * 256 + inactive`, checked
        /// against every other server, and `None` exactly when no server is available.
        #[test]
        fn picks_the_first_least_overhead(servers in servers()) {
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

            let picked = pick(&d, &loads);
            prop_assert_eq!(picked.is_none(), !available.contains(&true));
            if let Some(p) = picked {
                prop_assert!(available[p]);
                for j in (0..d.len()).filter(|&j| available[j]) {
                    prop_assert!(overhead[p] <= overhead[j], "{} is lighter than {}", j, p);
                    if j < p {
                        prop_assert!(overhead[j] > overhead[p], "{} ties {} earlier", j, p);
                    }
                }
            }
        }
    }
}
