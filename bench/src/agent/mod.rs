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
//! Every agent speaks IPv4 or IPv6 ([`Family`]): the generators, the latency client and the
//! XDP sink take the family of the addresses they are given, the sockets of the others
//! `--family`. Frames of both families are built and read by [`frame`].
//!
//! - [`frame`]: Ethernet and IP headers and checksums of both families;
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
pub mod frame;
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
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// The IP version of the benchmark's traffic (`--family 4|6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Family {
    #[default]
    #[value(name = "4")]
    V4,
    #[value(name = "6")]
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// What `--family` takes: "4" or "6".
    pub fn number(self) -> &'static str {
        match self {
            Family::V4 => "4",
            Family::V6 => "6",
        }
    }

    /// `proto`'s name in reports: "udp", "tcp" for IPv4 (as before IPv6 came), "udp6", "tcp6".
    pub fn traffic(self, proto: Proto) -> String {
        match self {
            Family::V4 => proto.name().to_string(),
            Family::V6 => format!("{}6", proto.name()),
        }
    }

    /// Added to a report's header line: nothing for IPv4 (whose lines read as before IPv6
    /// came), ", ipv6" for IPv6.
    pub fn header_note(self) -> &'static str {
        match self {
            Family::V4 => "",
            Family::V6 => ", ipv6",
        }
    }

    /// The unspecified address (what a socket of this family binds to receive on all).
    pub fn unspecified(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Family::V6 => Ipv6Addr::UNSPECIFIED.into(),
        }
    }
}

/// `base` with `i` added to its last 32 bits (wrapping there: an IPv6 address never carries
/// into its prefix): address `i` of a pool, as both generators and the XDP sink number them.
pub fn nth_address(base: IpAddr, i: u32) -> IpAddr {
    match base {
        IpAddr::V4(a) => Ipv4Addr::from(u32::from(a).wrapping_add(i)).into(),
        IpAddr::V6(a) => {
            let mut w = a.segments();
            let low = (u32::from(w[6]) << 16 | u32::from(w[7])).wrapping_add(i);
            w[6] = (low >> 16) as u16;
            w[7] = low as u16;
            Ipv6Addr::from(w).into()
        }
    }
}

/// The last 32 bits of `addr` (all of an IPv4 address), host order: what [`nth_address`]
/// counts in.
pub fn low_word(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    }
}

/// Fails unless every address of `addrs` is of `family`: the agents' address arguments must
/// agree (a frame has one IP header).
pub fn ensure_family(family: Family, what: &str, addrs: &[IpAddr]) -> Result<()> {
    if let Some(a) = addrs.iter().find(|a| Family::of(**a) != family) {
        anyhow::bail!(
            "{what} {a} is not an IPv{} address like the others",
            family.number()
        );
    }
    Ok(())
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
    fn pools_count_in_the_last_32_bits() {
        let v4: IpAddr = "198.18.0.10".parse().unwrap();
        assert_eq!(
            nth_address(v4, 63),
            "198.18.0.73".parse::<IpAddr>().unwrap()
        );
        let v6: IpAddr = "2001:2::10".parse().unwrap();
        assert_eq!(
            nth_address(v6, 0x3f),
            "2001:2::4f".parse::<IpAddr>().unwrap()
        );
        assert_eq!(low_word(v6), 0x10);
        assert_eq!(low_word(v4), u32::from(Ipv4Addr::new(198, 18, 0, 10)));
        // Wraps in the last word, never into the prefix.
        let top: IpAddr = "2001:2::ffff:ffff".parse().unwrap();
        assert_eq!(nth_address(top, 1), "2001:2::".parse::<IpAddr>().unwrap());
        assert!(ensure_family(Family::V6, "--dst", &[v6, v4]).is_err());
        assert!(ensure_family(Family::V4, "--dst", &[v4]).is_ok());
        assert_eq!(Family::V6.traffic(Proto::Udp), "udp6");
        assert_eq!(Family::V4.traffic(Proto::Tcp), "tcp");
    }

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
