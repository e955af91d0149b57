//! `xvs-bench connrate`: new TCP connections per second through one target, measured with
//! `wrk` and `Connection: close` against nginx on the real servers (see
//! [`Rig::connection_rate`]). Runs alternate between the targets asked for, and the median of
//! the repetitions is printed for each. `--family 6`: wrk connects to `[VIP6]:80` (nginx
//! listens on both families), and each median line says "ipv6".

use crate::rig::{self, Rig, RigArgs, Target};
use anyhow::{ensure, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Targets, alternating (comma list).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Xvs, Target::Nft])]
    pub targets: Vec<Target>,
    /// Seconds per run.
    #[arg(long, default_value_t = 5)]
    pub duration: u32,
    /// Concurrent connections of wrk.
    #[arg(long, default_value_t = 32)]
    pub connections: u32,
    /// Runs per target.
    #[arg(long, default_value_t = 3)]
    pub repetitions: usize,
    /// One short run per target: a check that the command works.
    #[arg(long)]
    pub smoke: bool,
    #[command(flatten)]
    pub rig: RigArgs,
}

pub fn run(a: &Args) -> Result<()> {
    rig::install_interrupt_handler()?;
    ensure!(!a.targets.is_empty(), "--targets names no target");
    let (duration, repetitions) = if a.smoke {
        (1, 1)
    } else {
        (a.duration, a.repetitions.max(1))
    };
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); a.targets.len()];
    for rep in 0..repetitions {
        for (i, &target) in a.targets.iter().enumerate() {
            let mut r = Rig::build(target, &a.rig)?;
            let result = r.connection_rate(duration, a.connections)?;
            drop(r);
            println!(
                "  [{target}] run {}: {:.0} connections/s, {} errors",
                rep + 1,
                result.per_second,
                result.errors
            );
            ensure!(
                result.errors == 0,
                "{target}: wrk saw {} errors",
                result.errors
            );
            rates[i].push(result.per_second);
        }
    }
    for (target, mut runs) in a.targets.iter().zip(rates) {
        runs.sort_by(f64::total_cmp);
        println!(
            "{target}: median {:.0} new TCP connections/s ({} run(s), {} concurrent, {duration} s each{})",
            runs[runs.len() / 2],
            runs.len(),
            a.connections,
            a.rig.family.header_note()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::rig::ConnRate;

    #[test]
    fn wrk_summary_is_read() {
        let out = "Running 5s test @ http://198.18.0.129:80/\n  1 threads and 32 connections\n\
                   \x20 12000 requests in 5.00s, 2.00MB read\n\
                   \x20 Socket errors: connect 1, read 2, write 0, timeout 3\n\
                   \x20 Non-2xx or 3xx responses: 4\n\
                   Requests/sec:   2400.50\nTransfer/sec:    409.60KB\n";
        assert_eq!(
            ConnRate::parse(out).unwrap(),
            ConnRate {
                per_second: 2400.5,
                errors: 10
            }
        );
        assert!(ConnRate::parse("nothing").is_err());
    }
}
