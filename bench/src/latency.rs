//! `xvs-bench latency`: round-trip latency through one target at a fixed, open-loop request
//! rate (see [`crate::agent::ping`] for the method), answered by UDP echo responders on the
//! real servers. Prints p50/p90/p99/p99.9/max and writes `DIR/<target>.hgrm` (HdrHistogram
//! percentile distribution, microseconds) and `DIR/<target>.svg` (its plot). `--family 6`:
//! requests and the background load over IPv6 (the header line says ", ipv6").

use crate::agent::ping::histogram_from;
use crate::report;
use crate::rig::{self, Rig, RigArgs, Target};
use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, value_enum)]
    pub target: Target,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// UDP packets per second crossing the director meanwhile, from the XDP generator
    /// (0: none).
    #[arg(long, default_value_t = 0.0)]
    pub load: f64,
    /// Where to write <target>.hgrm and <target>.svg.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// A second at a low rate: a check that the command works.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub rig: RigArgs,
}

pub fn run(a: &Args) -> Result<()> {
    rig::install_interrupt_handler()?;
    let (rate, duration) = if a.smoke {
        (200.0, 0.5)
    } else {
        (a.rate, a.duration)
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let r = Rig::build(a.target, &a.rig)?;
    println!(
        "latency: target {}{}, {} real(s), {} worker(s), {rate} req/s for {duration} s; {}",
        a.target,
        a.rig.family.header_note(),
        a.rig.reals,
        a.rig.workers,
        r.cores()
    );
    let p = r.latency(rate, duration, a.load)?;
    drop(r);
    print!("{}", report::latency_summary(a.target, &p));
    let h = histogram_from(&p.hist);
    let hgrm = a.out.join(format!("{}.hgrm", a.target));
    let svg = a.out.join(format!("{}.svg", a.target));
    report::write_hgrm(&hgrm, &h)?;
    report::write_svg(
        &svg,
        &format!("{} latency at {rate} req/s", a.target),
        &[(a.target.to_string(), h)],
    )?;
    println!("wrote {} and {}", hgrm.display(), svg.display());
    anyhow::ensure!(p.received > 0, "no answer came back through {}", a.target);
    Ok(())
}
