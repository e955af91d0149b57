//! `xvs-bench`: benchmarks of the xvs director.
//!
//! - `process`: the pure packet-processing function ([`xvs_dataplane::process::process`]) in a
//!   loop, with no socket: ns/packet and per-batch latency percentiles (see [`process_bench`]).
//! - `throughput`, `latency`, `compare`: runs through a namespace topology ([`rig`]) with a
//!   target in the director namespace: xvs, nftables NAT or plain routing. The orchestrator
//!   never enters a namespace: it runs its own binary there as `xvs-bench agent ...`
//!   ([`agent`]), each agent printing one JSON report line.
//!
//! Exit status: 0 on success, 1 when a benchmark fails (e.g. a frame was not forwarded), 2 on a
//! usage error.

mod agent;
mod compare;
mod connrate;
mod isolation;
mod latency;
mod report;
mod rig;
mod throughput;

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
    /// Throughput (pps at < 0.1% loss) through a namespace topology and one target.
    Throughput(throughput::Args),
    /// Open-loop latency through a namespace topology and one target.
    Latency(latency::Args),
    /// xvs, nftables NAT and plain routing on the same topology, side by side.
    Compare(compare::Args),
    /// New TCP connections per second (wrk, Connection: close) through xvs and nftables.
    Connrate(connrate::Args),
    /// Runs inside a namespace on behalf of the other commands.
    #[command(hide = true, subcommand)]
    Agent(agent::AgentCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Process(args) => process_bench::run(args),
        Command::Throughput(args) => throughput::run(args),
        Command::Latency(args) => latency::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Connrate(args) => connrate::run(args),
        Command::Agent(cmd) => agent::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
