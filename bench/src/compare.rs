//! `xvs-bench compare`: xvs (with its XDP fast path), xvs with every packet through its AF_XDP
//! workers (`xvs-afxdp`), nftables NAT, plain routing and xvs's AF_XDP mechanism without NAT
//! (`xskfwd`) on the same topology, side by side (`--targets` picks some). Each repetition builds a fresh rig per target, in an order that rotates from one
//! repetition to the next (xvs nft direct, nft direct xvs, ...), and measures there the
//! throughput (max-rate trial + search for < 0.1% loss) and the latency at one offered load
//! common to all targets. The table gives medians over the repetitions and the ratios
//! xvs/nft, xvs/xvs-afxdp, xvs-afxdp/nft and xvs-afxdp/xskfwd; the latency histograms of all repetitions are merged per target and written as
//! `DIR/<target>.hgrm` plus one `DIR/latency.svg` with every target. `--proto tcp` measures
//! the throughput with TCP conversations; the latency runs stay UDP request/response.
//! `--family 6` compares over IPv6 (xvs's IPv6 services against nftables NAT66) the targets
//! that forward it ([`Target::supports`]; by default all of those), and the table's header
//! says so.

use crate::agent::ping::{histogram_from, new_histogram};
use crate::agent::{Family, Proto};
use crate::report::{self, median};
use crate::rig::{self, Load, Rig, RigArgs, Target};
use crate::throughput;
use anyhow::{ensure, Context, Result};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// Seconds per throughput trial and of the latency run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Requests per second of the latency runs (the same for every target).
    #[arg(long, default_value_t = 10_000.0)]
    pub latency_rate: f64,
    /// UDP packets per second crossing the director during the latency runs, from the XDP
    /// generator (0: none): latency at equal load for every target.
    #[arg(long, default_value_t = 0.0)]
    pub latency_load: f64,
    /// Ethernet frame size including FCS [default: 64; 84 with --family 6].
    #[arg(long)]
    pub frame_size: Option<usize>,
    /// Throughput with UDP datagrams or TCP conversations (latency is always UDP).
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
    /// Most search trials per throughput measurement.
    #[arg(long, default_value_t = 6)]
    pub max_trials: usize,
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// A few seconds in all (short trials, one repetition, low rate): for CI.
    #[arg(long)]
    pub smoke: bool,
    /// The targets, in the order of the first repetition (later ones rotate it) [default:
    /// xvs, xvs-afxdp, nft, direct, xskfwd; those that forward IPv6 with --family 6].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub targets: Option<Vec<Target>>,
    #[command(flatten)]
    pub rig: RigArgs,
}

/// What one target gave in one repetition.
#[derive(Debug, Clone)]
struct Sample {
    throughput_pps: f64,
    generator_bound: bool,
    max_forwarded_pps: f64,
    forwarded: u64,
    p50_us: f64,
    p99_us: f64,
    lost: u64,
}

/// Medians of one target's samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub target: Target,
    pub throughput_pps: f64,
    pub generator_bound: bool,
    pub max_forwarded_pps: f64,
    pub forwarded: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub lost: u64,
}

fn row(target: Target, samples: &[Sample]) -> Row {
    let m = |f: fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    Row {
        target,
        throughput_pps: m(|s| s.throughput_pps),
        generator_bound: samples.iter().any(|s| s.generator_bound),
        max_forwarded_pps: m(|s| s.max_forwarded_pps),
        forwarded: samples.iter().map(|s| s.forwarded).sum(),
        p50_us: m(|s| s.p50_us),
        p99_us: m(|s| s.p99_us),
        lost: samples.iter().map(|s| s.lost).sum(),
    }
}

/// The comparison table (medians) and the xvs/nft ratios.
pub fn table(rows: &[Row], repetitions: usize, latency_rate: f64, family: Family) -> String {
    let mut s = format!(
        "\nmedians of {repetitions} repetition(s); latency at {latency_rate:.0} req/s for every target{}\n",
        family.header_note()
    );
    let _ = writeln!(
        s,
        "{:<17} {:>16} {:>16} {:>14} {:>10} {:>10} {:>8}",
        "target", "throughput_pps", "max_fwd_pps", "forwarded_pkts", "p50_us", "p99_us", "lost"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:<17} {:>15.0}{} {:>16.0} {:>14} {:>10.1} {:>10.1} {:>8}",
            r.target.name(),
            r.throughput_pps,
            if r.generator_bound { "+" } else { " " },
            r.max_forwarded_pps,
            r.forwarded,
            r.p50_us,
            r.p99_us,
            r.lost
        );
    }
    let find = |t: Target| rows.iter().find(|r| r.target == t);
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        }
    };
    // xvs against the kernel's NAT and its own AF_XDP path; that path against the kernel's
    // NAT and against its mechanism without the NAT.
    for (one, other) in [
        (Target::Xvs, Target::Nft),
        (Target::Xvs, Target::XvsAfxdp),
        (Target::XvsAfxdp, Target::Nft),
        (Target::XvsAfxdp, Target::Xskfwd),
    ] {
        if let (Some(x), Some(n)) = (find(one), find(other)) {
            let _ = writeln!(
                s,
                "{:<17} {:>16} {:>16} {:>14} {:>10} {:>10}",
                format!("{one}/{other}"),
                ratio(x.throughput_pps, n.throughput_pps),
                ratio(x.max_forwarded_pps, n.max_forwarded_pps),
                "",
                ratio(x.p50_us, n.p50_us),
                ratio(x.p99_us, n.p99_us)
            );
        }
    }
    if rows.iter().any(|r| r.generator_bound) {
        s.push_str("+ the generator could not saturate this target: a lower bound\n");
    }
    s
}

pub fn run(a: &Args) -> Result<()> {
    rig::install_interrupt_handler()?;
    let (reps, duration, latency_rate, max_trials) = if a.smoke {
        (1, 0.3, 200.0, 1)
    } else {
        (
            a.repetitions.max(1),
            a.duration,
            a.latency_rate,
            a.max_trials,
        )
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let family = a.rig.family;
    let load = Load {
        family,
        proto: a.proto,
        rate: 0.0,
        duration,
        frame_size: throughput::frame_size(a.frame_size, family),
        flows: a.flows,
    };
    let targets: Vec<Target> = a.targets.clone().unwrap_or_else(|| Target::all_of(family));
    let targets = &targets;
    ensure!(!targets.is_empty(), "--targets: name at least one");
    if let Some(t) = targets.iter().find(|t| !t.supports(family)) {
        anyhow::bail!(
            "target {t} does not forward IPv{}: leave it out of --targets",
            family.number()
        );
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    let mut hists: Vec<Histogram<u64>> = targets.iter().map(|_| new_histogram()).collect();
    for rep in 0..reps {
        for k in 0..targets.len() {
            let ti = (rep + k) % targets.len();
            let target = targets[ti];
            let r =
                Rig::build(target, &a.rig).with_context(|| format!("building the {target} rig"))?;
            println!(
                "repetition {}/{reps}, target {target}, {} ({} generator); {}",
                rep + 1,
                family.traffic(a.proto),
                r.generator().name(),
                r.cores()
            );
            let o = throughput::measure(&r, load, max_trials)?;
            let p = r.latency(latency_rate, duration, a.latency_load)?;
            drop(r);
            print!("{}", report::throughput_summary(target, &o));
            print!("{}", report::latency_summary(target, &p));
            hists[ti]
                .add(histogram_from(&p.hist))
                .context("merging histograms")?;
            samples[ti].push(Sample {
                throughput_pps: o.throughput_pps,
                generator_bound: o.generator_bound,
                max_forwarded_pps: o.max_trial.forwarded_pps(),
                forwarded: o.max_trial.forwarded()
                    + o.trials.iter().map(|t| t.forwarded()).sum::<u64>(),
                p50_us: p.p50_us,
                p99_us: p.p99_us,
                lost: p.lost,
            });
        }
    }
    let rows: Vec<Row> = targets
        .iter()
        .zip(&samples)
        .map(|(t, s)| row(*t, s))
        .collect();
    print!("{}", table(&rows, reps, latency_rate, family));
    let mut series = Vec::new();
    for (t, h) in targets.iter().zip(hists) {
        report::write_hgrm(&a.out.join(format!("{t}.hgrm")), &h)?;
        series.push((t.to_string(), h));
    }
    let svg = a.out.join("latency.svg");
    report::write_svg(
        &svg,
        &format!("latency at {latency_rate:.0} req/s"),
        &series,
    )?;
    println!(
        "wrote {}/TARGET.hgrm for each target and {}",
        a.out.display(),
        svg.display()
    );
    for r in &rows {
        ensure!(r.forwarded > 0, "{} forwarded nothing", r.target);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_every_target_and_ratio() {
        let mk = |target, tp, p50| Row {
            target,
            throughput_pps: tp,
            generator_bound: false,
            max_forwarded_pps: tp,
            forwarded: 10,
            p50_us: p50,
            p99_us: p50 * 2.0,
            lost: 0,
        };
        let t = table(
            &[
                mk(Target::Xvs, 300.0, 20.0),
                mk(Target::XvsAfxdp, 150.0, 30.0),
                mk(Target::Nft, 200.0, 40.0),
                mk(Target::Direct, 400.0, 10.0),
            ],
            3,
            1000.0,
            Family::V4,
        );
        assert!(!t.contains("ipv6"));
        let t6 = table(&[mk(Target::Xvs, 300.0, 20.0)], 1, 1000.0, Family::V6);
        assert!(
            t6.contains("latency at 1000 req/s for every target, ipv6\n"),
            "{t6}"
        );
        for needle in [
            "xvs ",
            "xvs-afxdp ",
            "nft ",
            "direct ",
            "xvs/nft",
            "xvs/xvs-afxdp",
            "xvs-afxdp/nft",
            "1.50",
            "0.50",
            "2.00",
            "0.75",
        ] {
            assert!(t.contains(needle), "{needle} in {t}");
        }
    }
}
