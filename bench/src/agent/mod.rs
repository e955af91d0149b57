//! The agents: small programs that `xvs-bench` runs as its own hidden subcommand
//! (`xvs-bench agent KIND ...`) inside a namespace of the rig, through `ip netns exec`. The
//! orchestrator never enters a namespace itself.
//!
//! Contract: an agent pins its threads to `--cores` (when given), does its work, and prints
//! exactly one JSON line on stdout (its result, one of the `*Report` types, read back with
//! [`parse_report`]); diagnostics go to stderr. Long-running agents (`sink`, `echo`) create
//! their `--ready` file once their socket is bound, and stop on SIGTERM/SIGINT or at their
//! `--duration` limit, whichever comes first.
//!
//! - [`gen`]: UDP or TCP generator (AF_PACKET, many flows, paced or at full speed);
//! - [`sink`]: UDP receiver that counts (recvmmsg), one per real server;
//! - [`responder`]: the TCP counterpart of `sink`, which also answers SYNs and FINs
//!   (AF_PACKET; the conversations themselves are [`tcp`]'s pure functions);
//! - [`echo`]: UDP echo responder, one per real server, for latency;
//! - [`ping`]: open-loop latency client (scheduled send times, HdrHistogram);
//! - [`xdp`]: `xdpgen` and `xdpsink`, the UDP generator and sink of `--generator xdp`
//!   (frames that enter the director's veth as a NIC's do: no skb, full XDP headroom);
//! - [`xskfwd`]: AF_XDP forwarding without NAT in the director namespace, the ceiling of
//!   xvs's mechanism (the `xskfwd` target).

pub mod echo;
pub mod gen;
pub mod ping;
pub mod responder;
pub mod sink;
mod sys;
pub mod tcp;
pub mod xdp;
pub mod xskfwd;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The UDP and TCP port of the benchmark service: the VIP's and every real server's.
pub const BENCH_PORT: u16 = 9000;
/// First bytes of every payload the agents send: receivers ignore anything else.
pub const MAGIC: [u8; 4] = *b"XVSB";

/// The transport of the throughput runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Proto {
    /// Datagrams, one per frame, counted by `sink`s.
    #[default]
    Udp,
    /// Whole conversations (SYN, data, FIN, ACK) answered by `responder`s.
    Tcp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }
}

/// `xvs-bench agent KIND`: not for direct use.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// UDP or TCP generator.
    Gen(gen::Args),
    /// UDP counter.
    Sink(sink::Args),
    /// TCP counter and responder.
    Responder(responder::Args),
    /// UDP echo responder.
    Echo(echo::Args),
    /// Open-loop latency client.
    Ping(ping::Args),
    /// UDP or TCP generator in XDP (BPF_PROG_RUN live frames).
    Xdpgen(gen::Args),
    /// UDP counter in XDP on one interface.
    Xdpsink(sink::Args),
    /// AF_XDP forwarding without NAT: the ceiling of xvs's mechanism.
    Xskfwd(xskfwd::Args),
    /// Tunnel decapsulation in XDP on a real server (tests, where the kernel has none).
    Decap(sink::Args),
}

/// Runs one agent and prints its report line.
pub fn run(cmd: &AgentCommand) -> Result<()> {
    match cmd {
        AgentCommand::Gen(a) => print_report(&gen::run(a)?),
        AgentCommand::Sink(a) => print_report(&sink::run(a)?),
        AgentCommand::Responder(a) => print_report(&responder::run(a)?),
        AgentCommand::Echo(a) => print_report(&echo::run(a)?),
        AgentCommand::Ping(a) => print_report(&ping::run(a)?),
        AgentCommand::Xdpgen(a) => print_report(&xdp::run_gen(a)?),
        AgentCommand::Xdpsink(a) => print_report(&xdp::run_sink(a)?),
        AgentCommand::Xskfwd(a) => print_report(&xskfwd::run(a)?),
        AgentCommand::Decap(a) => print_report(&xdp::run_decap(a)?),
    }
}

fn print_report<T: Serialize>(report: &T) -> Result<()> {
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// The report in an agent's stdout: its last line that parses as `T`.
pub fn parse_report<T: DeserializeOwned>(stdout: &str) -> Result<T> {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l.trim()).ok())
        .with_context(|| format!("no report line in agent output {stdout:?}"))
}

/// Parses a comma list of CPU numbers ("0,2,3"); empty means "do not pin".
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .map_err(|e| format!("bad core number {c:?}: {e}"))
        })
        .collect()
}

/// Pins the calling thread to core `cores[i % len]`; no-op when `cores` is empty.
pub fn pin(cores: &[usize], i: usize) {
    if cores.is_empty() {
        return;
    }
    let id = cores[i % cores.len()];
    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
        eprintln!("xvs-bench agent: cannot pin to core {id}");
    }
}

/// A flag raised by SIGTERM or SIGINT.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("installing signal handler")?;
    }
    Ok(flag)
}

/// Tells the orchestrator that the agent is listening.
pub fn mark_ready(path: Option<&Path>) -> Result<()> {
    if let Some(p) = path {
        std::fs::write(p, b"ready\n").with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cores_parse() {
        assert_eq!(parse_cores("").unwrap(), Vec::<usize>::new());
        assert_eq!(parse_cores("0, 2,3").unwrap(), vec![0, 2, 3]);
        assert!(parse_cores("0,x").is_err());
    }

    #[test]
    fn report_is_last_json_line() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct R {
            a: u32,
        }
        let r: R = parse_report("noise\n{\"a\":1}\n{\"a\":2}\n").unwrap();
        assert_eq!(r, R { a: 2 });
        assert!(parse_report::<R>("nothing").is_err());
    }
}
