//! Weighted random twos choice (`twos`), as IPVS's net/netfilter/ipvs/ip_vs_twos.c.
//!
//! The "power of two random choices" (Mitzenmacher): draw two servers at random and give the
//! connection to the less loaded of the two. Picking the least loaded of all servers (wlc)
//! makes every director send its new connections to the same server until the counts it sees
//! catch up; two random candidates spread a burst while still steering away from busy servers.
//!
//! IPVS draws the candidates with probability proportional to weight. A first pass over the
//! servers sums the weights of the available ones (weight above 0, not overloaded) and returns
//! `NULL` when there are none. Two random numbers are drawn from the total, then a second pass
//! subtracts each available server's weight from both: a candidate is the server at which its
//! number runs out. The connection goes to the second candidate only when it is strictly less
//! loaded per weight than the first, with wlc's overhead (`active * 256 + inactive`, see
//! [`crate::wlc`]) compared without division, `weight2 * overhead1 > weight1 * overhead2`; ties
//! (and two draws of the same server) go to the first.
//!
//! Differences from IPVS:
//!
//! - IPVS draws `prandom_u32() % (total + 1)` and takes the server at which the number reaches
//!   `<= 0`, so the first available server gets `weight + 1` of the `total + 1` outcomes (an
//!   off-by-one bias). Here a number is drawn uniformly from `[0, total)` and taken by the
//!   server whose cumulative weight first exceeds it, so each server is drawn with probability
//!   exactly `weight / total` (up to the `total / 2^64` bias of the multiply-shift reduction).
//! - Randomness comes from a per-scheduler splitmix64 generator: one atomic `u64` that a pick
//!   advances by two steps of an odd constant (one per candidate) with a single `fetch_add`,
//!   each output then mixed with splitmix64's finaliser. Concurrent workers never block each
//!   other, never draw the same numbers, and never allocate. The state is seeded in
//!   [`TwoRandomChoices::new`] from a fixed constant and a hash of the server list (addresses,
//!   ports, weights), so picks are reproducible for a given configuration (tests rely on it).
//!   The numbers only spread load; they are not meant to be unpredictable.
//! - Overhead products are taken in `u128` (IPVS uses `int`), so nothing overflows.
//! - A server's availability ([`Dest::accepts`]) is checked again in the second pass, and a
//!   connection count may change in between (as IPVS's overload flag may). Should a draw then
//!   run past the last available server, it falls back to the last server the second pass found
//!   available (IPVS keeps the last server of its first pass); if none is left, `None`.
//!
//! A pick is two passes at most over the servers (the second stops once both candidates are
//! found) and never allocates.

use crate::lc::conn_overhead;
use crate::{Dest, Load};
use std::sync::atomic::{AtomicU64, Ordering};

/// splitmix64's increment (the golden ratio in 64 bits; odd, so the state visits every value).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Fixed part of the seed, mixed with a hash of the server list.
const SEED: u64 = 0x7477_6f73_5f78_7673; // "twos_xvs"

/// splitmix64's finaliser: a bijection of `u64` that spreads every input bit over the output.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in `[0, bound)` from 64 random bits (Lemire's multiply-shift: no division).
#[inline]
fn below(random: u64, bound: u64) -> u64 {
    ((u128::from(random) * u128::from(bound)) >> 64) as u64
}

#[derive(Debug)]
pub struct TwoRandomChoices {
    /// splitmix64 state: each pick takes the next two outputs.
    state: AtomicU64,
}

impl TwoRandomChoices {
    /// A scheduler for `dests`, seeded from a fixed constant and the server list.
    pub fn new(dests: &[Dest]) -> Self {
        let seed = dests.iter().fold(SEED, |h, d| {
            let key = (u64::from(crate::fold(d.addr)) << 32)
                ^ (u64::from(d.port) << 16)
                ^ u64::from(d.weight).rotate_left(48);
            mix(h ^ key).wrapping_add(GAMMA)
        });
        TwoRandomChoices {
            state: AtomicU64::new(seed),
        }
    }

    /// Two random 64-bit numbers: the next two splitmix64 outputs, reserved with one atomic add.
    #[inline]
    fn draw2(&self) -> (u64, u64) {
        let s = self
            .state
            .fetch_add(GAMMA.wrapping_mul(2), Ordering::Relaxed);
        (
            mix(s.wrapping_add(GAMMA)),
            mix(s.wrapping_add(GAMMA.wrapping_mul(2))),
        )
    }

    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L) -> Option<usize> {
        let total: u64 = dests
            .iter()
            .enumerate()
            .filter(|&(i, d)| d.accepts(load, i))
            .map(|(_, d)| u64::from(d.weight))
            .sum();
        if total == 0 {
            return None;
        }
        let (a, b) = self.draw2();
        choose(dests, load, below(a, total), below(b, total))
    }
}

/// The pick for draws `r1` and `r2` in `[0, total)`, `total` the weight of the available
/// servers: each candidate is the available server whose cumulative weight first exceeds its
/// draw; the second wins only when strictly less loaded per weight.
#[inline]
fn choose<L: Load + ?Sized>(dests: &[Dest], load: &L, r1: u64, r2: u64) -> Option<usize> {
    let mut first: Option<usize> = None;
    let mut second: Option<usize> = None;
    let mut last = None;
    let mut cumulative = 0u64;
    for (i, dest) in dests.iter().enumerate() {
        if !dest.accepts(load, i) {
            continue;
        }
        last = Some(i);
        cumulative += u64::from(dest.weight);
        if first.is_none() && r1 < cumulative {
            first = Some(i);
        }
        if second.is_none() && r2 < cumulative {
            second = Some(i);
        }
        if first.is_some() && second.is_some() {
            break;
        }
    }
    // A draw past the end: a server became overloaded since the total was taken.
    let (c1, c2) = (first.or(last)?, second.or(last)?);
    if c1 == c2 {
        return Some(c1);
    }
    let (w1, w2) = (u128::from(dests[c1].weight), u128::from(dests[c2].weight));
    let oh1 = conn_overhead(load.active(c1), load.inactive(c1));
    let oh2 = conn_overhead(load.active(c2), load.inactive(c2));
    Some(if w2 * oh1 > w1 * oh2 { c2 } else { c1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_less_loaded_candidate_wins() {
        let d = dests(&[1, 3]);
        // Server 0 takes draw 0, server 1 draws 1..4. Overhead per weight: 512 vs 341.3.
        let loads = [(2, 0), (4, 0)];
        assert_eq!(choose(&d, &loads[..], 0, 1), Some(1));
        assert_eq!(choose(&d, &loads[..], 3, 0), Some(1));
        // 256 vs 341.3.
        let loads = [(1, 0), (4, 0)];
        assert_eq!(choose(&d, &loads[..], 0, 2), Some(0));
        assert_eq!(choose(&d, &loads[..], 2, 0), Some(0));
        // Ties go to the first candidate: 256 vs 256.
        let loads = [(1, 0), (3, 0)];
        assert_eq!(choose(&d, &loads[..], 0, 1), Some(0));
        assert_eq!(choose(&d, &loads[..], 1, 0), Some(1));
        // Both draws on one server: it is taken, however loaded.
        let loads = [(9, 0), (0, 0)];
        assert_eq!(choose(&d, &loads[..], 0, 0), Some(0));
    }

    #[test]
    fn draws_skip_unavailable_servers() {
        let mut d = dests(&[2, 0, 3]);
        d[2].upper_threshold = 5;
        let loads = [(0, 0), (0, 0), (0, 0)];
        // Weight 0 takes no draw: 0..2 is server 0, 2..5 server 2.
        assert_eq!(choose(&d, &loads[..], 1, 1), Some(0));
        assert_eq!(choose(&d, &loads[..], 2, 2), Some(2));
        // Server 2 overloaded (5 connections): a draw past the end falls back to server 0.
        let loads = [(0, 0), (0, 0), (4, 1)];
        assert_eq!(choose(&d, &loads[..], 4, 4), Some(0));
        assert_eq!(choose(&d, &loads[..], 0, 0), Some(0));
    }

    #[test]
    fn lighter_server_wins_three_picks_in_four() {
        // Equal weights, server 0 busy: it wins only when both draws land on it (1 in 4).
        let d = dests(&[1, 1]);
        let loads = [(10u64, 0u64), (0, 0)];
        let twos = TwoRandomChoices::new(&d);
        let busy = (0..40_000)
            .filter(|_| twos.pick(&d, &loads[..]) == Some(0))
            .count();
        assert!(
            (9_000..11_000).contains(&busy),
            "busy server picked {busy} times"
        );
    }

    #[test]
    fn weight_zero_is_never_picked_while_another_server_is_eligible() {
        let d = dests(&[0, 1, 0]);
        let twos = TwoRandomChoices::new(&d);
        // The idle server has weight 0: quiesced.
        let loads = [(0u64, 0u64), (1_000, 0), (0, 0)];
        for _ in 0..1_000 {
            assert_eq!(twos.pick(&d, &loads[..]), Some(1));
        }
    }

    #[test]
    fn none_when_no_server_is_available() {
        let twos = TwoRandomChoices::new(&[]);
        assert_eq!(twos.pick(&[], &NoLoad), None);
        assert_eq!(twos.pick(&dests(&[0, 0]), &NoLoad), None);
        let mut d = dests(&[0, 5]);
        d[1].upper_threshold = 1;
        assert_eq!(twos.pick(&d, &[(0, 0), (1, 0)][..]), None);
    }

    #[test]
    fn same_configuration_same_picks() {
        let d = dests(&[3, 1, 4, 1, 5]);
        let (a, b) = (TwoRandomChoices::new(&d), TwoRandomChoices::new(&d));
        for _ in 0..100 {
            assert_eq!(a.pick(&d, &NoLoad), b.pick(&d, &NoLoad));
        }
    }

    #[test]
    fn huge_weights_and_counts_do_not_overflow() {
        let big = u64::MAX / 2;
        let d = dests(&[u32::MAX; 4]);
        let twos = TwoRandomChoices::new(&d);
        let loads = [(big, big), (big, 0), (1, 0), (big, big)];
        for _ in 0..100 {
            assert!(twos.pick(&d, &loads[..]).is_some());
        }
        assert_eq!(choose(&d, &loads[..], 0, u64::from(u32::MAX) * 2), Some(2));
    }

    /// No connections by the overhead, yet `connections` reaches 1 on the marked servers: equal
    /// loads with some servers overloaded (at an upper threshold of 1).
    struct Overloaded(Vec<bool>);

    impl Load for Overloaded {
        fn active(&self, _: usize) -> u64 {
            0
        }
        fn inactive(&self, _: usize) -> u64 {
            0
        }
        fn connections(&self, dest: usize) -> u64 {
            u64::from(self.0[dest])
        }
    }

    proptest! {
        /// With equal loads the first candidate always wins, so picks follow the weights:
        /// Pearson's chi-square over the available servers stays within a wide tolerance
        /// (mean df, standard deviation sqrt(2 df)), and unavailable servers get nothing.
        #[test]
        fn picks_are_proportional_to_weight(
            servers in proptest::collection::vec(
                (prop_oneof![1 => Just(0u32), 6 => 1u32..100], any::<bool>()),
                1..12,
            ),
        ) {
            let mut d = dests(&servers.iter().map(|s| s.0).collect::<Vec<_>>());
            // Overheads all 0 (so every comparison ties); servers marked overloaded have an
            // upper threshold of 1, which their connection count reaches.
            let loads = Overloaded(servers.iter().map(|s| s.1).collect());
            for (i, &(_, overloaded)) in servers.iter().enumerate() {
                if overloaded {
                    d[i].upper_threshold = 1;
                }
            }
            let available: Vec<bool> = d.iter().map(|x| x.is_available(1)).collect();
            let total: u64 = d
                .iter()
                .zip(&available)
                .filter(|(_, &a)| a)
                .map(|(x, _)| u64::from(x.weight))
                .sum();
            let twos = TwoRandomChoices::new(&d);
            let n = 20_000u64;
            let mut counts = vec![0u64; d.len()];
            for _ in 0..n {
                match twos.pick(&d, &loads) {
                    Some(i) => counts[i] += 1,
                    None => {
                        prop_assert_eq!(total, 0);
                        return Ok(());
                    }
                }
            }
            prop_assert!(total > 0);
            let mut chi2 = 0.0;
            let mut df = -1.0f64;
            for i in 0..d.len() {
                if !available[i] {
                    prop_assert_eq!(counts[i], 0, "unavailable server {} picked", i);
                    continue;
                }
                let expected = n as f64 * f64::from(d[i].weight) / total as f64;
                chi2 += (counts[i] as f64 - expected).powi(2) / expected;
                df += 1.0;
            }
            let limit = df + 8.0 * (2.0 * df).sqrt() + 10.0;
            prop_assert!(chi2 <= limit, "chi2 {} over {} ({:?})", chi2, limit, counts);
        }

        /// Any weights, thresholds and loads: every pick is an available server, and `None`
        /// exactly when there is none.
        #[test]
        fn never_picks_an_unavailable_server(
            servers in proptest::collection::vec(
                (0u32..5, prop_oneof![Just(0u32), 1u32..4], 0u64..4, 0u64..300),
                0..10,
            ),
        ) {
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
            let twos = TwoRandomChoices::new(&d);
            for _ in 0..64 {
                let picked = twos.pick(&d, &loads[..]);
                prop_assert_eq!(picked.is_none(), !available.contains(&true));
                if let Some(p) = picked {
                    prop_assert!(available[p], "picked unavailable {}", p);
                }
            }
        }
    }
}
