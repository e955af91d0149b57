//! `xvs-bench throughput`: packets per second through one target.
//!
//! Method (after RFC 2544, section 26.1): a first trial at the generator's full speed gives
//! the offered and forwarded rates and the loss; then a binary search over the offered
//! rate finds the highest rate forwarded with less than [`LOSS_THRESHOLD`] loss, within a
//! bounded number of trials. The search starts from the max trial's forwarded rate (a good
//! first guess), keeps the highest passing rate `lo` and the lowest failing rate `hi`, and
//! stops when `hi - lo` is within [`PRECISION`] of `hi` or the trials run out. If the
//! max-rate trial itself loses less than the threshold, the generator could not saturate
//! the target: the throughput is then only a lower bound, and the report says so.
//!
//! `--family 6` runs the same over IPv6 (see [`rig`]): the report calls the traffic "udp6"
//! or "tcp6", and frames default to 84 bytes, which carry the same UDP payload as IPv4's 64.
//!
//! `--proto tcp` offers whole TCP conversations instead of UDP datagrams (see
//! [`agent::gen`](crate::agent::gen)): packets are then segments, forwarded ones are those that
//! reached the responders, and the search is the same. `--rate R` runs one trial at `R` pps
//! instead of the max-rate trial and the search.

use crate::agent::{Family, Proto};
use crate::report;
use crate::rig::{self, Load, Rig, RigArgs, Target, TrialResult};
use anyhow::Result;

/// Loss below which a trial passes (0.1 %).
pub const LOSS_THRESHOLD: f64 = 0.001;
/// The search stops when the passing and failing rates are this close (relative).
pub const PRECISION: f64 = 0.02;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub target: Target,
    /// Ethernet frame size including FCS [default: 64; 84 with --family 6].
    #[arg(long)]
    pub frame_size: Option<usize>,
    /// UDP datagrams, or TCP conversations (SYN, data, FIN, ACK) answered by the reals.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// Flows (source address and port pairs).
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
    /// Seconds per trial.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Most search trials after the max-rate trial.
    #[arg(long, default_value_t = 8)]
    pub max_trials: usize,
    /// Seconds of short trials, one search step: a check that the command works.
    #[arg(long)]
    pub smoke: bool,
    /// One trial at this offered rate (pps) instead of the max-rate trial and the search.
    #[arg(long)]
    pub rate: Option<f64>,
    #[command(flatten)]
    pub rig: RigArgs,
}

/// The frame size of `--frame-size` (`given`), else `family`'s default
/// ([`rig::default_frame_size`]).
pub fn frame_size(given: Option<usize>, family: Family) -> usize {
    given.unwrap_or(rig::default_frame_size(family))
}

/// The outcome of a max-rate trial and a search.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub max_trial: TrialResult,
    pub trials: Vec<TrialResult>,
    /// Highest offered rate that passed (pps); 0 when none did.
    pub throughput_pps: f64,
    /// The max-rate trial passed: the generator, not the target, set the limit.
    pub generator_bound: bool,
}

/// Binary search over rates in (0, `max_offered`] with `trial(rate)`; `first` is the first
/// rate tried. Returns the trials in order and the best passing offered rate.
pub fn search(
    max_offered: f64,
    first: f64,
    max_trials: usize,
    mut trial: impl FnMut(f64) -> Result<TrialResult>,
) -> Result<(Vec<TrialResult>, f64)> {
    let (mut lo, mut hi) = (0.0f64, max_offered);
    let mut best = 0.0f64;
    let mut rate = first.clamp(1.0, max_offered.max(1.0));
    let mut trials = Vec::new();
    for _ in 0..max_trials {
        let t = trial(rate)?;
        let passed = t.loss() < LOSS_THRESHOLD && t.offered() > 0;
        // What was really offered is what counts: a generator that fell short of `rate`
        // tested a lower rate.
        let offered = t.offered_pps().min(rate);
        if passed {
            lo = lo.max(offered);
            best = best.max(offered);
        } else {
            hi = hi.min(rate);
        }
        trials.push(t);
        if hi <= lo || (hi - lo) <= PRECISION * hi {
            break;
        }
        rate = (lo + hi) / 2.0;
    }
    Ok((trials, best))
}

/// Max-rate trial plus search on a built rig, printing each trial.
pub fn measure(rig: &Rig, load: Load, max_trials: usize) -> Result<Outcome> {
    let max_trial = rig.trial(Load { rate: 0.0, ..load })?;
    println!("{}", report::trial_line(rig.target(), "max", &max_trial));
    let generator_bound = max_trial.loss() < LOSS_THRESHOLD;
    let (trials, mut throughput_pps) = if generator_bound {
        (Vec::new(), max_trial.offered_pps())
    } else {
        let mut n = 0;
        search(
            max_trial.offered_pps(),
            max_trial.forwarded_pps(),
            max_trials,
            |rate| {
                n += 1;
                let t = rig.trial(Load { rate, ..load })?;
                println!("{}", report::trial_line(rig.target(), &format!("{n}"), &t));
                Ok(t)
            },
        )?
    };
    if throughput_pps == 0.0 && generator_bound {
        throughput_pps = max_trial.offered_pps();
    }
    Ok(Outcome {
        max_trial,
        trials,
        throughput_pps,
        generator_bound,
    })
}

pub fn run(a: &Args) -> Result<()> {
    rig::install_interrupt_handler()?;
    let (duration, max_trials) = if a.smoke {
        (0.5, 1)
    } else {
        (a.duration, a.max_trials)
    };
    let frame_size = frame_size(a.frame_size, a.rig.family);
    let r = Rig::build(a.target, &a.rig)?;
    println!(
        "throughput: target {}, {} ({} generator), {} real(s), {} worker(s), {frame_size}-byte frames, {} flows, {duration} s trials; {}",
        a.target,
        a.rig.family.traffic(a.proto),
        r.generator().name(),
        a.rig.reals,
        a.rig.workers,
        a.flows,
        r.cores()
    );
    let load = Load {
        family: a.rig.family,
        proto: a.proto,
        rate: 0.0,
        duration,
        frame_size,
        flows: a.flows,
    };
    if let Some(rate) = a.rate {
        anyhow::ensure!(rate > 0.0, "--rate must be > 0");
        let t = r.trial(Load { rate, ..load })?;
        println!("{}", report::trial_line(a.target, "1", &t));
        print!("{}", report::trial_summary(a.target, &t));
        return Ok(());
    }
    let o = measure(&r, load, max_trials)?;
    print!("{}", report::throughput_summary(a.target, &o));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::gen::GenReport;
    use crate::agent::sink::SinkReport;

    /// A simulated target that forwards at most `cap` pps.
    fn fake(rate: f64, cap: f64) -> TrialResult {
        let sent = rate as u64;
        TrialResult {
            load: Load {
                family: Family::V4,
                proto: Proto::Udp,
                rate,
                duration: 1.0,
                frame_size: 64,
                flows: 1,
            },
            gen: GenReport {
                sent,
                errors: 0,
                elapsed_s: 1.0,
                rate,
                offered_pps: rate,
            },
            sinks: vec![SinkReport {
                received: sent.min(cap as u64),
                ..Default::default()
            }],
            replies_returned: None,
            drops: Default::default(),
        }
    }

    #[test]
    fn frames_default_to_the_same_datagram_in_both_families() {
        assert_eq!(frame_size(None, Family::V4), 64);
        assert_eq!(frame_size(None, Family::V6), 84);
        assert_eq!(frame_size(Some(128), Family::V6), 128);
        // 64 - 4 (FCS) - 14 - 20 - 8 = 84 - 4 - 14 - 40 - 8: the same 18-byte payload.
        use crate::agent::gen::{udp_headers_len, FCS_LEN};
        assert_eq!(
            64 - FCS_LEN - udp_headers_len(Family::V4),
            84 - FCS_LEN - udp_headers_len(Family::V6)
        );
    }

    #[test]
    fn search_converges_on_capacity() {
        let (trials, best) =
            search(1_000_000.0, 600_000.0, 20, |r| Ok(fake(r, 300_000.0))).unwrap();
        assert!(
            (300_000.0 * (1.0 - 2.0 * PRECISION)..=300_000.0).contains(&best),
            "{best}"
        );
        assert!(trials.len() < 20);
    }

    #[test]
    fn search_is_bounded() {
        let (trials, best) = search(1_000_000.0, 600_000.0, 3, |r| Ok(fake(r, 300_000.0))).unwrap();
        assert_eq!(trials.len(), 3);
        assert!(best > 0.0 && best <= 300_000.0);
    }

    #[test]
    fn search_with_nothing_passing_reports_zero() {
        let (_, best) = search(1000.0, 500.0, 5, |r| Ok(fake(r, 0.0))).unwrap();
        assert_eq!(best, 0.0);
    }
}
