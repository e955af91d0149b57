//! `xvs-bench process`: the cost of [`process`] alone, with no socket, on one thread.
//!
//! The director, its flows and the cases are those of [`crate::fixture`]: one TCP service, rr
//! over two reals, 60-byte frames; `new` (SYN: schedule and insert), `established` (client
//! ACK), `reply` (server ACK), each on a fresh fixture, visiting the flows round-robin.
//!
//! Method: frames go through in batches of [`BATCH`]; each batch copies its templates into a
//! batch buffer, then processes it, timed as a whole (copy included). A second pass runs the
//! same loop copying only; `net` is the difference. Every verdict is checked: a benchmark that
//! measured drops fails instead of printing figures. The end of a round over the flows (where
//! `new` empties the table) is left out of the timed region.
//!
//! `--iterations N` runs exactly N packets per case, untimed and without warm-up or copy pass,
//! for instruction counters: `bench/callgrind.sh` counts two values of N and divides the
//! difference, so that the set-up cancels out.
//!
//! [`process`]: xvs_dataplane::process::process

pub use crate::fixture::{Case, BATCH, MAX_FLOWS};
use crate::fixture::{Fixture, Misses, Replay, FRAME_LEN};
use anyhow::{ensure, Result};
use hdrhistogram::Histogram;
use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant};
use xvs_dataplane::process::Verdict;

/// Packets per case with `--smoke`.
pub const SMOKE_PACKETS: u64 = 20_000;
/// Default `--flows`.
pub const DEFAULT_FLOWS: usize = 1024;

/// Which cases `--kind` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Established,
    New,
    Reply,
    All,
}

impl Kind {
    fn cases(self) -> &'static [Case] {
        match self {
            Kind::Established => &[Case::Established],
            Kind::New => &[Case::New],
            Kind::Reply => &[Case::Reply],
            Kind::All => &[Case::New, Case::Established, Case::Reply],
        }
    }
}

/// `xvs-bench process` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Packets per case (underscores allowed).
    #[arg(long, default_value = "5_000_000", value_parser = parse_packets)]
    pub packets: u64,
    /// Distinct flows, visited round-robin.
    #[arg(long, default_value_t = DEFAULT_FLOWS, value_parser = parse_flows)]
    pub flows: usize,
    /// Traffic pattern (`--case` is the same option).
    #[arg(long, visible_alias = "case", value_enum, default_value_t = Kind::All)]
    pub kind: Kind,
    /// About 20k packets per case: a check that takes seconds (CI).
    #[arg(long, conflicts_with = "packets")]
    pub smoke: bool,
    /// Exactly this many packets per case, untimed, no warm-up and no copy pass: a fixed loop
    /// for instruction counters (bench/callgrind.sh). Prints no figures.
    #[arg(long, value_parser = parse_packets, conflicts_with_all = ["packets", "smoke"])]
    pub iterations: Option<u64>,
}

fn parse_count(s: &str) -> Result<u64, String> {
    s.replace('_', "")
        .parse()
        .map_err(|e| format!("'{s}': {e}"))
}

fn parse_packets(s: &str) -> Result<u64, String> {
    match parse_count(s)? {
        0 => Err("at least 1 packet".into()),
        n => Ok(n),
    }
}

fn parse_flows(s: &str) -> Result<usize, String> {
    match parse_count(s)? {
        n @ 1.. if n <= MAX_FLOWS as u64 => Ok(n as usize),
        _ => Err(format!("between 1 and {MAX_FLOWS}")),
    }
}

/// Runs the cases `args` asks for and prints their table; fails if any frame of any case was
/// not forwarded.
pub fn run(args: &Args) -> Result<()> {
    if let Some(iterations) = args.iterations {
        return count(args, iterations);
    }
    let packets = if args.smoke {
        SMOKE_PACKETS
    } else {
        args.packets
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; figures are only meaningful with --release");
    }
    println!(
        "xvs_dataplane::process::process, one thread, no socket: {} flows, {FRAME_LEN}-byte TCP \
         frames, batches of {BATCH}",
        thousands(args.flows as u64)
    );
    println!(
        "{:<12} {:>11} {:>8} {:>6} {:>8} {:>7} {:>8} {:>8} {:>9}",
        "case", "packets", "ns/pkt", "copy", "net", "Mpps", "p50", "p99", "max"
    );
    for &case in args.kind.cases() {
        let report = measure(case, packets, Fixture::new(args.flows))?;
        report.check()?;
        println!(
            "{:<12} {:>11} {:>8.1} {:>6.1} {:>8.1} {:>7.2} {:>8.1} {:>8.1} {:>9.1}",
            case,
            thousands(report.packets),
            report.ns_per_packet(),
            report.copy_ns_per_packet(),
            report.net_ns_per_packet(),
            report.mpps(),
            report.batch_ns_quantile(0.5),
            report.batch_ns_quantile(0.99),
            report.batch_ns_max(),
        );
        std::io::stdout().flush().ok();
    }
    println!(
        "ns/pkt: restore each frame from its template, then process it; total time / packets.\n\
         copy: the same loop restoring frames only. net = ns/pkt - copy; Mpps = 1000 / net.\n\
         p50/p99/max: per batch of {BATCH}, time / packets in ns, restore included."
    );
    Ok(())
}

/// The figures of one case.
#[derive(Debug)]
pub struct Report {
    pub case: Case,
    pub packets: u64,
    /// Copy-inclusive time of all timed batches.
    pub total: Duration,
    /// Time of the copy-only pass over as many packets.
    pub copy: Duration,
    /// Per-batch time per packet, in picoseconds (copy included).
    pub batch_ps: Histogram<u64>,
    /// Calls whose verdict was not the expected `Forward`.
    pub not_forwarded: u64,
    pub first_miss: Option<Verdict>,
}

impl Report {
    /// Copy-inclusive ns per packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.total.as_nanos() as f64 / self.packets as f64
    }

    pub fn copy_ns_per_packet(&self) -> f64 {
        self.copy.as_nanos() as f64 / self.packets as f64
    }

    /// ns per packet of `process` alone.
    pub fn net_ns_per_packet(&self) -> f64 {
        self.ns_per_packet() - self.copy_ns_per_packet()
    }

    pub fn mpps(&self) -> f64 {
        1_000.0 / self.net_ns_per_packet()
    }

    fn batch_ns_quantile(&self, q: f64) -> f64 {
        self.batch_ps.value_at_quantile(q) as f64 / 1_000.0
    }

    fn batch_ns_max(&self) -> f64 {
        self.batch_ps.max() as f64 / 1_000.0
    }

    /// Fails if any frame was not forwarded: the figures would then measure drops.
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.not_forwarded == 0,
            "{}: {} of {} frames were not forwarded (first verdict: {:?}); refusing to report \
             figures that measure drops",
            self.case,
            self.not_forwarded,
            self.packets,
            self.first_miss.expect("a miss was recorded"),
        );
        Ok(())
    }
}

/// `--iterations`: runs `iterations` packets of each case through [`Fixture::run`] and says
/// how many went through; fails if any was not forwarded.
fn count(args: &Args, iterations: u64) -> Result<()> {
    for &case in args.kind.cases() {
        let mut fixture = Fixture::new(args.flows);
        let mut replay = Replay::new(fixture.templates(case)?);
        let misses = fixture.run(case, &mut replay, iterations);
        ensure!(
            misses.count == 0,
            "{case}: {} of {iterations} frames were not forwarded (first verdict: {:?})",
            misses.count,
            misses.first.expect("a miss was recorded"),
        );
        println!(
            "{case}: {} packets over {} flows, all forwarded",
            thousands(iterations),
            thousands(args.flows as u64)
        );
    }
    Ok(())
}

/// Measures `case` over `packets` packets on `fixture`: an untimed warm-up, the copy-only pass,
/// then the timed pass. Each pass goes on from the flow where the previous one stopped, so
/// that `new` never sends the SYN of a flow the table still holds.
pub fn measure(case: Case, packets: u64, mut fixture: Fixture) -> Result<Report> {
    let mut replay = Replay::new(fixture.templates(case)?);
    let warm_up = (packets / 10).max(replay.len() as u64);
    drive(&mut replay, warm_up, Some((&mut fixture, case)));
    let (copy, _, _) = drive(&mut replay, packets, None);
    let (total, batch_ps, misses) = drive(&mut replay, packets, Some((&mut fixture, case)));
    Ok(Report {
        case,
        packets,
        total,
        copy,
        batch_ps,
        not_forwarded: misses.count,
        first_miss: misses.first,
    })
}

/// Sends `packets` frames from `replay` through batches: restore, then process them on the
/// fixture (or nothing but a `black_box` when `None`). Returns the total timed duration, the
/// per-batch time per packet in picoseconds, and the frames not forwarded. The end of a round
/// is not timed.
fn drive(
    replay: &mut Replay,
    packets: u64,
    mut work: Option<(&mut Fixture, Case)>,
) -> (Duration, Histogram<u64>, Misses) {
    let mut batch_ps = Histogram::<u64>::new_with_max(10_000_000_000, 3).expect("valid bounds");
    let mut misses = Misses::default();
    let mut total = Duration::ZERO;
    let mut left = packets;
    let mut last = Instant::now();
    while left > 0 {
        let (frames, round_done) = replay.next_batch(left);
        let n = frames.len();
        match work.as_mut() {
            Some((fixture, case)) => misses.add(fixture.process_batch(*case, frames)),
            None => {
                black_box(frames);
            }
        }
        let now = Instant::now();
        let elapsed = now - last;
        last = now;
        total += elapsed;
        batch_ps.saturating_record(elapsed.as_nanos() as u64 * 1_000 / n as u64);
        left -= n as u64;
        if round_done {
            if let Some((fixture, case)) = work.as_mut() {
                fixture.end_of_round(*case);
                last = Instant::now();
            }
        }
    }
    (total, batch_ps, misses)
}

/// `n` with comma thousands separators: 5,000,000.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() * 4 / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_dataplane::neigh::NeighbourTable;
    use xvs_dataplane::stats::DropReason;

    /// The `--smoke` configuration: every frame of every case forwarded, figures positive.
    #[test]
    fn smoke_forwards_everything() {
        for &case in Kind::All.cases() {
            let report = measure(case, SMOKE_PACKETS, Fixture::new(DEFAULT_FLOWS)).unwrap();
            report.check().unwrap();
            assert_eq!(report.not_forwarded, 0, "{case}");
            assert!(report.ns_per_packet() > 0.0, "{case}");
            // One sample per batch; a round's end cuts at most one batch short.
            let batches = SMOKE_PACKETS.div_ceil(BATCH as u64);
            let rounds = SMOKE_PACKETS.div_ceil(DEFAULT_FLOWS as u64);
            let samples = report.batch_ps.len();
            assert!(
                (batches..=batches + rounds).contains(&samples),
                "{case}: {samples} samples"
            );
        }
    }

    /// A benchmark that measures drops fails instead of reporting them as figures.
    #[test]
    fn drops_are_refused() {
        let mut fixture = Fixture::new(100);
        fixture.neighbours = NeighbourTable::default();
        let report = measure(Case::New, 1_000, fixture).unwrap();
        assert_eq!(report.not_forwarded, 1_000);
        assert_eq!(report.first_miss, Some(Verdict::Drop(DropReason::NoRoute)));
        assert!(report.check().is_err());
    }

    /// Flow counts that are not a multiple of the batch: rounds end mid-batch, and `new` still
    /// empties the table before it fills.
    #[test]
    fn small_and_odd_flow_counts() {
        for flows in [1, 3, 65, 130] {
            for &case in Kind::All.cases() {
                let report = measure(case, 1_000, Fixture::new(flows)).unwrap();
                report.check().unwrap();
            }
        }
    }

    #[test]
    fn counts_and_flow_limits_parse() {
        assert_eq!(thousands(5_000_000), "5,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(parse_packets("5_000_000"), Ok(5_000_000));
        assert!(parse_flows("0").is_err() && parse_flows(&(MAX_FLOWS + 1).to_string()).is_err());
    }

    /// `--case` names the same option as `--kind`; `--iterations` excludes the timed options.
    #[test]
    fn iterations_and_case_options() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["p", "--iterations", "1_000", "--case", "reply"]).unwrap();
        assert_eq!(
            (cli.args.iterations, cli.args.kind),
            (Some(1_000), Kind::Reply)
        );
        assert!(Cli::try_parse_from(["p", "--iterations", "10", "--smoke"]).is_err());
        assert!(Cli::try_parse_from(["p", "--iterations", "10", "--packets", "5"]).is_err());
        assert!(Cli::try_parse_from(["p", "--iterations", "0"]).is_err());
        let args = Cli::try_parse_from(["p", "--iterations", "200", "--flows", "65"])
            .unwrap()
            .args;
        run(&args).unwrap();
    }
}
