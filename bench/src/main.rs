//! `xvs-bench`: benchmarks of the xvs director.
//!
//! - `process`: the pure packet-processing function ([`xvs_dataplane::process::process`]) in a
//!   loop, with no socket: ns/packet and per-batch latency percentiles (see [`process_bench`]).
//! - `throughput`, `latency`, `compare`: runs through a namespace topology, side by side with
//!   nftables NAT. Not implemented yet: they exit with status 2 and say so.
//!
//! Exit status: 0 on success, 1 when a benchmark fails (e.g. a frame was not forwarded), 2 on a
//! usage error or a subcommand that is not implemented yet.

use xvs_bench::process_bench;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "xvs-bench", version, about = "Benchmarks of the xvs director")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Time the packet-processing function alone (no socket, one thread).
    Process(process_bench::Args),
    /// Throughput through a namespace topology, side by side with nftables NAT (not implemented yet).
    Throughput,
    /// Latency through a namespace topology, side by side with nftables NAT (not implemented yet).
    Latency,
    /// xvs and nftables NAT on the same topology, side by side (not implemented yet).
    Compare,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Process(args) => {
            return match process_bench::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Throughput => "throughput",
        Command::Latency => "latency",
        Command::Compare => "compare",
    };
    eprintln!("error: xvs-bench {name}: not implemented yet: see issue 'Benchmarks'");
    ExitCode::from(2)
}
