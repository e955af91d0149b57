//! Rate estimation with IPVS's semantics (`net/netfilter/ipvs/ip_vs_est.c`), for `--rate`.
//!
//! Every 2 seconds the counters are sampled and each rate is moved a quarter of the way towards
//! the rate of the last interval (an exponentially weighted moving average with W = 1/4, about
//! an 8 s window). IPVS keeps the averages in fixed point so that integer arithmetic keeps the
//! fractions: connections and packets per second scaled by 2^10, bytes per second by 2^5, and
//! rounds when reading. The same arithmetic here gives the same figures as the kernel for the
//! same counters.

use crate::protocol::{Counters, Rates};
use std::time::Duration;

/// IPVS samples every 2 s (`2 * HZ`).
pub const TICK: Duration = Duration::from_secs(2);

/// The averages of one service or real server, in IPVS's fixed point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimator {
    last: Counters,
    /// Per second, scaled by 2^10.
    cps: i64,
    inpps: i64,
    outpps: i64,
    /// Per second, scaled by 2^5.
    inbps: i64,
    outbps: i64,
}

impl Estimator {
    /// Starts from `now`'s counters with all rates 0 (also what `-Z` does:
    /// `ip_vs_zero_estimator`).
    pub fn new(now: Counters) -> Self {
        Estimator {
            last: now,
            ..Default::default()
        }
    }

    /// One 2-second tick with the current counters.
    pub fn tick(&mut self, now: Counters) {
        // Differences over 2 s, scaled: <<9 is (x / 2) << 10, <<4 is (x / 2) << 5.
        let step = |avg: &mut i64, cur: u64, last: u64, shift: u32| {
            let rate = (cur.wrapping_sub(last) as i64) << shift;
            *avg += (rate - *avg) >> 2;
        };
        step(&mut self.cps, now.conns, self.last.conns, 9);
        step(&mut self.inpps, now.inpkts, self.last.inpkts, 9);
        step(&mut self.outpps, now.outpkts, self.last.outpkts, 9);
        step(&mut self.inbps, now.inbytes, self.last.inbytes, 4);
        step(&mut self.outbps, now.outbytes, self.last.outbytes, 4);
        self.last = now;
    }

    /// The rates per second, rounded as `ip_vs_read_estimator` does.
    pub fn rates(&self) -> Rates {
        let read = |avg: i64, half: i64, shift: u32| ((avg + half) >> shift).max(0) as u64;
        Rates {
            cps: read(self.cps, 0x1ff, 10),
            inpps: read(self.inpps, 0x1ff, 10),
            outpps: read(self.outpps, 0x1ff, 10),
            inbps: read(self.inbps, 0xf, 5),
            outbps: read(self.outbps, 0xf, 5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(conns: u64, pkts: u64, bytes: u64) -> Counters {
        Counters {
            conns,
            inpkts: pkts,
            outpkts: pkts * 2,
            inbytes: bytes,
            outbytes: bytes * 3,
        }
    }

    #[test]
    fn converges_to_a_steady_rate_with_weight_one_quarter() {
        // 100 conn/s, 1000 pkt/s, 64000 B/s for long enough.
        let mut e = Estimator::new(Counters::default());
        let mut rates = Vec::new();
        for t in 1..=40u64 {
            e.tick(counters(200 * t, 2000 * t, 128_000 * t));
            rates.push(e.rates().cps);
        }
        // First tick: a quarter of the way (25), then 43.75 -> 44 (rounded), ...
        assert_eq!(&rates[..3], &[25, 44, 58]);
        let r = e.rates();
        // The shift truncates, so an average stops climbing 3 units (in fixed point) below
        // its target: bytes, scaled by only 2^5 with a 0xf bias, read one below (as in IPVS).
        assert_eq!(
            (r.cps, r.inpps, r.outpps, r.inbps, r.outbps),
            (100, 1000, 2000, 63_999, 191_998)
        );
    }

    #[test]
    fn decays_when_traffic_stops_and_zero_restarts() {
        let mut e = Estimator::new(Counters::default());
        for t in 1..=30u64 {
            e.tick(counters(20 * t, 0, 0));
        }
        assert_eq!(e.rates().cps, 10);
        let idle = counters(600, 0, 0);
        e.tick(idle);
        // 7.5 (less the converging remainder) reads 7: IPVS's bias (0x1ff) rounds halves down.
        assert_eq!(e.rates().cps, 7);
        for _ in 0..40 {
            e.tick(idle);
        }
        assert_eq!(e.rates(), Rates::default());

        let zeroed = Estimator::new(counters(600, 5, 5));
        assert_eq!(zeroed.rates(), Rates::default());
    }

    #[test]
    fn small_rates_read_as_the_kernel_reads_them() {
        // 1 connection per tick is 0.5 conn/s: 512 in fixed point, read (512 + 511) >> 10 = 0.
        let mut e = Estimator::new(Counters::default());
        for t in 1..=60u64 {
            e.tick(counters(t, 0, 0));
        }
        assert_eq!(e.rates().cps, 0);
        // 3 per tick, 1.5 conn/s, reads 1; 4 per tick reads 2.
        let mut e = Estimator::new(Counters::default());
        for t in 1..=60u64 {
            e.tick(counters(3 * t, 0, 0));
        }
        assert_eq!(e.rates().cps, 1);
        let mut e = Estimator::new(Counters::default());
        for t in 1..=60u64 {
            e.tick(counters(4 * t, 0, 0));
        }
        assert_eq!(e.rates().cps, 2);
    }
}
