//! The rig: a namespace topology (client, director, N real servers behind a bridge; see
//! [`xvs_control::topology`]) with one *target* in the director namespace, and the agents
//! that measure through it.
//!
//! Targets, all serving UDP and TCP `VIP:9000` (and TCP `VIP:80`, the connection-rate
//! service) round-robin over every real:
//! - [`Target::Xvs`]: `xvsd --workers W`, configured with `xvsadm` (`-A -u VIP:9000 -s rr`,
//!   `-A -t ...`, every real with `-m`); its veths' NAPI polls (where copy-mode AF_XDP copies frames)
//!   run in threads pinned to the director's cores, not on the generator's.
//!   Established flows take xvsd's XDP fast path (its default `--fast-path xdp`).
//! - [`Target::XvsAfxdp`]: the same with `--fast-path off`: every packet through the AF_XDP
//!   workers.
//! - [`Target::Nft`]: the kernel's own NAT: `ip_forward=1` and an nftables
//!   `dnat to numgen inc mod N map {...}` rule; conntrack un-NATs the replies.
//! - [`Target::Direct`]: no load balancer: the director only routes (`ip_forward=1`) and the
//!   generator addresses the real servers themselves. The ceiling of the topology.
//! - [`Target::Xskfwd`]: xvs's mechanism without its work: [`agent::xskfwd`] forwards over
//!   the same XDP program, UMEM, sockets, rings and placement as xvsd, rewriting MACs only;
//!   the generator addresses the real servers themselves. The ceiling of xvs's design.
//!
//! For the kernel targets, RPS on the director's interfaces puts the forwarding softirq on
//! the director's cores (a veth without XDP would run it on the sender's CPU).
//!
//! IPv6 (`--family 6`): the topology is built dual-stack ([`TopologySpec::dual_stack`]) and
//! every address the rig uses is the IPv6 twin of its IPv4 one ([`topology::ipv6_of`]): the
//! generator's sources 2001:2::10 to 2001:2::4f (counted in the last 32 bits), VIP6
//! 2001:2::129, the reals 2001:2:0:1::10 up, FullNAT's local address 2001:2:0:1::250, the
//! latency client 2001:2::201. xvs gets the IPv6 services only (`-A -u [VIP6]:9000`...), `nft`
//! an `ip6` NAT table (NAT66), `nft` and `direct` IPv6 forwarding; the IPv4 addresses stay
//! beside them, unused. `xskfwd` is IPv4 only ([`Target::supports`]).
//!
//! TCP runs need a return path that no kernel interferes with ([`Rig::route_replies`]): the
//! director has permanent neighbour entries for the generator's source addresses (the client
//! namespace does not own them, so nothing answers ARP for them), the client namespace drops
//! the TCP segments from the benchmark port in prerouting (counting them: the replies that
//! came back), and every real server's namespace drops the segments to it in prerouting, so
//! that only the [`responder`](crate::agent::responder), which reads them before the IP stack,
//! answers.
//!
//! CPU placement: `gen_cores` (generator threads), `director_cores` (xvsd, which pins worker
//! `i` to the `i`-th core of its affinity; the NAPI threads; RPS for the kernel targets) and
//! `sink_cores` (sink/echo agent `i` on `sink_cores[i % len]`, and RPS of the reals' eth0).
//!
//! Cleanup: the [`Rig`] owns the director process and the [`Topology`]; dropping it (also
//! while unwinding from an error) stops xvsd, kills every agent left and deletes the
//! namespaces. SIGINT/SIGTERM only raise a flag ([`install_interrupt_handler`]) that the
//! benchmarks check between steps, so Ctrl-C unwinds through the same path.

use crate::agent::gen::{GenReport, TcpLayout};
use crate::agent::ping::PingReport;
use crate::agent::sink::SinkReport;
use crate::agent::{self, nth_address, Family, Proto, BENCH_PORT};
use crate::isolation::Isolation;
use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use xvs_control::capture::background::BackgroundCapture;
use xvs_control::director::{find_binary, DirectorProcess};
use xvs_control::protocol::{Command, Reply};
use xvs_control::topology::{self, RealSpec, Topology, TopologySpec, SWITCH_DIRECTOR_PORT};

/// Namespace prefix of every rig (stale ones of killed runs are removed at start).
pub const PREFIX: &str = "xvsb";
/// TCP port of the connection-rate service.
pub const TCP_PORT: u16 = 80;
/// First address of the generator's source pool (198.18.0.10 ..= .73; IPv6: its twin
/// 2001:2::10 ..= 2001:2::4f).
pub const GEN_SRC_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
/// Size of the generator's source address pool.
pub const GEN_SRC_COUNT: u32 = 64;
/// The generator's end of the softirq placement's hop, and the hop's receiving end.
const GEN_IF: &str = "gen0";
const HOP_IF: &str = "gen1";
/// How long agents get to bind their sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between the end of a trial's traffic and the sinks' stop: frames in flight land.
const DRAIN: Duration = Duration::from_millis(300);

static INTERRUPTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes SIGINT/SIGTERM raise a flag instead of killing the orchestrator.
pub fn install_interrupt_handler() -> Result<()> {
    let flag = INTERRUPTED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(flag)).context("installing signal handler")?;
    }
    Ok(())
}

/// Fails once SIGINT/SIGTERM arrived: called between steps so that the rig unwinds.
pub fn check_interrupted() -> Result<()> {
    if INTERRUPTED.get().is_some_and(|f| f.load(Ordering::Relaxed)) {
        bail!("interrupted");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Xvs,
    XvsAfxdp,
    /// xvs while `xvsadm capture` (both sides, no filter) runs: the cost of a capture. Only
    /// when asked for (not in [`Target::ALL`]).
    XvsCapture,
    Nft,
    Direct,
    Xskfwd,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Xvs,
        Target::XvsAfxdp,
        Target::Nft,
        Target::Direct,
        Target::Xskfwd,
    ];
    /// Whether the target forwards `family`: all but `xskfwd`, whose forwarder reads IPv4
    /// destinations only.
    pub fn supports(self, family: Family) -> bool {
        family == Family::V4 || self != Target::Xskfwd
    }

    /// The targets of [`Target::ALL`] that forward `family`.
    pub fn all_of(family: Family) -> Vec<Target> {
        Target::ALL
            .into_iter()
            .filter(|t| t.supports(family))
            .collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Xvs => "xvs",
            Target::XvsAfxdp => "xvs-afxdp",
            Target::XvsCapture => "xvs-capture",
            Target::Nft => "nft",
            Target::Direct => "direct",
            Target::Xskfwd => "xskfwd",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// [`RigArgs::xvs_method`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XvsMethod {
    Masq,
    Route,
    Fullnat,
}

/// The director's FullNAT local address with `--xvs-method fullnat` (outside the reals' .10
/// to .209).
const FULLNAT_LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 250);

/// Rig options shared by every benchmark command.
#[derive(Debug, Clone, clap::Args)]
pub struct RigArgs {
    /// IP version of the traffic: 4, or 6 (the IPv6 twins of every address, xvs's IPv6
    /// services, nftables NAT66; docs/benchmarks.md, "IPv6").
    #[arg(long, value_enum, default_value = "4")]
    pub family: Family,
    /// Real servers (sinks / echo responders).
    #[arg(long, default_value_t = 2)]
    pub reals: usize,
    /// xvsd workers (and veth queues).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Cores of the generator threads (comma list; default: 0).
    #[arg(long, value_parser = agent::parse_cores)]
    pub gen_cores: Option<::std::vec::Vec<usize>>,
    /// Cores of the director: xvsd, its NAPI threads, RPS (default: the last `workers` CPUs).
    #[arg(long, value_parser = agent::parse_cores)]
    pub director_cores: Option<::std::vec::Vec<usize>>,
    /// Cores of the sinks / echo responders and of the real servers' receive (default:
    /// every CPU that is not a director core: the real servers' work is not the director's).
    #[arg(long, value_parser = agent::parse_cores)]
    pub sink_cores: Option<::std::vec::Vec<usize>>,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub gen_threads: usize,
    /// xvsd's `--idle`: workers sleep when idle (adaptive) or poll busily (busy).
    #[arg(long, default_value = "adaptive", value_parser = ["adaptive", "busy"])]
    pub xvs_idle: String,
    /// xvsd's `--busy-poll`: its workers run the veths' receive NAPI themselves.
    #[arg(long)]
    pub xvs_busy_poll: bool,
    /// xvsd's `--worker-priority` (default: xvsd's own).
    #[arg(long)]
    pub xvs_worker_priority: Option<u8>,
    /// xvsd's `--threaded-napi` in the softirq placement: xvsd moves its veths' receive into
    /// pinned threads (in the threads placement xvs always runs with it).
    #[arg(long)]
    pub xvs_threaded_napi: bool,
    /// xvsd's `--fast-path-after N` (default: xvsd's own).
    #[arg(long)]
    pub xvs_fast_path_after: Option<u8>,
    /// xvsd's `--conn-max N` (default: xvsd's own); it also sizes the fast path's flow map.
    #[arg(long)]
    pub xvs_conn_max: Option<usize>,
    /// How xvs forwards the UDP service to its real servers: `masq` (`-m`, NAT, as the
    /// kernel targets do) or `route` (`-g`, direct routing: the frames reach the sinks with the
    /// VIP as destination, MACs rewritten only) or `fullnat` (`--fullnat` from the local
    /// address 198.19.0.250: both endpoints rewritten). TCP stays masqueraded (its responders
    /// answer through the director).
    #[arg(long, value_enum, default_value_t = XvsMethod::Masq)]
    pub xvs_method: XvsMethod,
    /// Where the director's receive work runs (see [`Placement`]).
    #[arg(long, value_enum, default_value_t = Placement::Threads)]
    pub placement: Placement,
    /// How frames are made and UDP datagrams counted (see [`Generator`]; default: xdp in
    /// the threads placement, packet in the softirq one).
    #[arg(long, value_enum)]
    pub generator: Option<Generator>,
    /// TCP conversations' layout in the generator's ring (see `TcpLayout`; default: staggered
    /// with the XDP generator, phased with the packet generator, which has only that).
    #[arg(long, value_enum)]
    pub tcp_layout: Option<TcpLayout>,
    /// TCP: data segments per conversation (8: a short request and response; more: a
    /// keep-alive connection or a download, most of whose segments an established flow
    /// carries).
    #[arg(long, default_value_t = 8)]
    pub tcp_data_segments: usize,
    /// Move every other movable task off the director's cores during each throughput trial,
    /// and back afterwards (as `tuna --isolate` does; see [`crate::isolation`]).
    #[arg(long)]
    pub isolate: bool,
}

/// The generator of the throughput trials, and the sink of UDP ones (TCP conversations are
/// always answered and counted by the responders on the reals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// `agent gen` (AF_PACKET, sendmmsg) and a UDP socket (`agent sink`) on every real
    /// server: frames are skbs with little headroom, as a local sender's are.
    Packet,
    /// `agent xdpgen` (BPF_PROG_RUN live frames redirected into the client's veth; TCP
    /// conversations of frames up to 132 bytes) and, for UDP, `agent xdpsink` (an XDP counter
    /// on the switch's port of the director's internal veth): frames reach the director as a
    /// NIC's do (no skb, XDP's full headroom; the kernel targets' veth builds one skb per
    /// frame, as a driver does), and generating and counting cost the other core little.
    /// Threads placement only. See [`agent::xdp`].
    Xdp,
}

impl Generator {
    /// The generator of `args`: the one given, else the default of its placement.
    pub fn of(args: &RigArgs) -> Generator {
        args.generator.unwrap_or(match args.placement {
            Placement::Threads => Generator::Xdp,
            Placement::Softirq => Generator::Packet,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Generator::Packet => "packet",
            Generator::Xdp => "xdp",
        }
    }
}

/// Where the director's receive work (the veth NAPI poll: XDP, the copy-mode AF_XDP copy, the
/// kernel's forwarding) runs. Both put it on the director's cores; they differ in how it
/// competes with the director's own threads there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Placement {
    /// In NAPI kernel threads pinned to the director's cores (xvs), or RPS softirq there
    /// (nft, direct): the scheduler shares the core between them and xvsd's workers.
    Threads,
    /// In softirq on the director's cores, as a NIC interrupt affined there would put it:
    /// softirq preempts every thread. veth schedules its NAPI on the CPU that transmits into
    /// it, so the generator sends into a hop in the client namespace (a veth pair `gen0` ->
    /// `gen1`, RPS of `gen1` on the director's cores, `tc` u32 + mirred from `gen1` to `eth0`) whose
    /// softirq on a director core transmits every frame to `ext0`. The hop costs the director's
    /// cores the same for every target.
    Softirq,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::Threads => "threads",
            Placement::Softirq => "softirq",
        }
    }
}

/// The CPU placement in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cores {
    pub gen: Vec<usize>,
    pub director: Vec<usize>,
    pub sink: Vec<usize>,
    pub placement: Placement,
}

impl Cores {
    /// Explicit lists win; defaults: generator on CPU 0, director on the last `workers`
    /// CPUs (all of them when there are too few), sinks on every other CPU (not pinned when
    /// the director has them all). Sinks left free would land on the director's core, where
    /// they take its time and, under a realtime worker, wait for it (a latency artifact).
    pub fn resolve(args: &RigArgs, cpus: usize) -> Cores {
        let cpus = cpus.max(1);
        let w = args.workers.clamp(1, cpus);
        let director: Vec<usize> = args
            .director_cores
            .clone()
            .unwrap_or_else(|| ((cpus - w).max(if cpus > 1 { 1 } else { 0 })..cpus).collect());
        let sink = args
            .sink_cores
            .clone()
            .unwrap_or_else(|| (0..cpus).filter(|c| !director.contains(c)).collect());
        Cores {
            gen: args.gen_cores.clone().unwrap_or_else(|| vec![0]),
            director,
            sink,
            placement: args.placement,
        }
    }
}

fn list(cores: &[usize]) -> String {
    if cores.is_empty() {
        "any".to_string()
    } else {
        cores
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Cores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "generator cores {}, director cores {} (receive in {}), sink cores {}",
            list(&self.gen),
            list(&self.director),
            self.placement.name(),
            list(&self.sink)
        )
    }
}

/// A sysfs CPU bitmap ("rps_cpus" format) of `cores`.
pub fn cpu_mask(cores: &[usize]) -> String {
    let top = cores.iter().copied().max().unwrap_or(0);
    let groups = top / 32 + 1;
    (0..groups)
        .rev()
        .map(|g| {
            let word = cores
                .iter()
                .filter(|&&c| c / 32 == g)
                .fold(0u32, |w, &c| w | 1 << (c % 32));
            format!("{word:08x}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Real server `i`'s address: 198.19.0.(10 + i).
pub fn real_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 0, 10 + i as u8)
}

/// The rig's address `v4` in `family`: itself, or its IPv6 twin ([`topology::ipv6_of`]).
pub fn in_family(family: Family, v4: Ipv4Addr) -> IpAddr {
    match family {
        Family::V4 => v4.into(),
        Family::V6 => topology::ipv6_of(v4).into(),
    }
}

/// The frames of `family` when no size is asked for: 64 bytes, RFC 2544's smallest, for
/// IPv4; for IPv6 the frame that carries the same UDP payload (18 bytes; IPv6's header is 20
/// bytes longer), so that the two families' figures compare equal datagrams.
pub fn default_frame_size(family: Family) -> usize {
    match family {
        Family::V4 => 64,
        Family::V6 => 84,
    }
}

/// The traffic of one throughput trial.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub family: Family,
    pub proto: Proto,
    /// Packets per second; 0 = as fast as the generator can.
    pub rate: f64,
    pub duration: f64,
    pub frame_size: usize,
    pub flows: u32,
}

/// What one trial measured.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub load: Load,
    pub gen: GenReport,
    pub sinks: Vec<SinkReport>,
    /// TCP: the responders' SYN/ACKs and FIN/ACKs that reached the client namespace.
    pub replies_returned: Option<u64>,
    /// Where frames were dropped during the trial.
    pub drops: DropCounters,
}

/// Frames dropped on the way through the director, by place (counter deltas over a trial).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Frames the generator's interface dropped: `veth_ring` in the threads placement, the
    /// hop's backlog in the softirq placement.
    pub generator_if: u64,
    /// The softirq placement's hop: `gen1`'s backlog was full.
    pub hop: u64,
    /// The director's external veth ring was full (the peer `eth0`'s `tx_dropped`): the
    /// receive side did not keep up, as a NIC's RX ring overflows.
    pub veth_ring: u64,
    /// The director's internal veth ring was full (the peer `p-dir`'s `tx_dropped`): replies
    /// from the real servers lost on the way in.
    pub int_veth_ring: u64,
    /// The kernel's per-CPU input backlogs overflowed (`/proc/net/softnet_stat`, all CPUs).
    pub backlog: u64,
    /// xvs: frames its XDP programs redirected, and frames its workers received.
    pub xdp_redirected: u64,
    pub worker_rx: u64,
    /// xvs: redirected frames the kernel dropped at a full RX ring, or for want of a frame.
    pub xsk_ring_full: u64,
    pub xsk_no_frame: u64,
    /// xvs: frames the workers dropped for a full TX ring, or a full hand-off ring.
    pub tx_full: u64,
    pub handoff_full: u64,
}

impl DropCounters {
    fn since(&self, before: &DropCounters) -> DropCounters {
        DropCounters {
            generator_if: self.generator_if.saturating_sub(before.generator_if),
            hop: self.hop.saturating_sub(before.hop),
            int_veth_ring: self.int_veth_ring.saturating_sub(before.int_veth_ring),
            veth_ring: self.veth_ring.saturating_sub(before.veth_ring),
            backlog: self.backlog.saturating_sub(before.backlog),
            xdp_redirected: self.xdp_redirected.saturating_sub(before.xdp_redirected),
            worker_rx: self.worker_rx.saturating_sub(before.worker_rx),
            xsk_ring_full: self.xsk_ring_full.saturating_sub(before.xsk_ring_full),
            xsk_no_frame: self.xsk_no_frame.saturating_sub(before.xsk_no_frame),
            tx_full: self.tx_full.saturating_sub(before.tx_full),
            handoff_full: self.handoff_full.saturating_sub(before.handoff_full),
        }
    }

    /// The non-zero drops, as `place N` pairs.
    pub fn describe(&self) -> String {
        [
            ("veth ring", self.veth_ring),
            ("hop backlog", self.hop),
            ("int0 veth ring", self.int_veth_ring),
            ("backlog", self.backlog),
            (
                "xsk (redirected - rx)",
                self.xdp_redirected.saturating_sub(self.worker_rx),
            ),
            ("xsk ring full", self.xsk_ring_full),
            ("xsk no frame", self.xsk_no_frame),
            ("tx ring full", self.tx_full),
            ("hand-off full", self.handoff_full),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// The sum of the "dropped" column (the second) of `/proc/net/softnet_stat`.
fn softnet_dropped(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .sum()
}

impl TrialResult {
    /// Frames the generator handed to the kernel: those it accepted and those its interface
    /// dropped (the director's full veth ring, a NIC's RX ring overflowing; or the softirq
    /// placement's hop's full backlog): offered, and lost. Not the generator's own error
    /// count, which counts every retry of a refused batch.
    pub fn offered(&self) -> u64 {
        self.gen.sent + self.drops.generator_if
    }
    pub fn forwarded(&self) -> u64 {
        self.sinks.iter().map(|s| s.received).sum()
    }
    pub fn offered_pps(&self) -> f64 {
        self.offered() as f64 / self.gen.elapsed_s.max(1e-9)
    }
    pub fn forwarded_pps(&self) -> f64 {
        self.forwarded() as f64 / self.gen.elapsed_s.max(1e-9)
    }
    /// Fraction lost (0 when nothing was offered); negative if more arrived than was sent.
    pub fn loss(&self) -> f64 {
        if self.offered() == 0 {
            return 0.0;
        }
        (self.offered() as f64 - self.forwarded() as f64) / self.offered() as f64
    }
    /// The generator fell more than 2% short of a requested rate.
    pub fn generator_limited(&self) -> bool {
        self.load.rate > 0.0 && self.offered_pps() < 0.98 * self.load.rate
    }
    /// Datagrams the sinks' own receive buffers dropped (the sinks, not the target, lost them).
    pub fn sink_drops(&self) -> u64 {
        self.sinks.iter().map(|s| s.rcvbuf_errors).sum()
    }
    /// TCP: SYN/ACKs and FIN/ACKs the responders sent.
    pub fn replies_sent(&self) -> u64 {
        self.sinks.iter().map(|s| s.replies).sum()
    }
    /// TCP: segments that reached a responder with a wrong checksum (not forwarded).
    pub fn bad_checksums(&self) -> u64 {
        self.sinks.iter().map(|s| s.bad_checksum).sum()
    }
}

/// An agent running in a namespace, killed if dropped before [`Agent::finish`].
struct Agent {
    child: Option<Child>,
    what: String,
}

impl Agent {
    fn stop(&mut self) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child, not reaped yet: the pid is still ours.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
    }

    /// Waits (bounded) for the agent to exit and parses its report.
    fn finish<T: serde::de::DeserializeOwned>(mut self, timeout: Duration) -> Result<T> {
        let mut child = self.child.take().context("agent already finished")?;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(mut s) = child.stdout.take() {
            s.read_to_string(&mut out)?;
        }
        if let Some(mut s) = child.stderr.take() {
            s.read_to_string(&mut err)?;
        }
        ensure!(
            status.success(),
            "{} failed ({status}): {}",
            self.what,
            err.trim()
        );
        agent::parse_report(&out).with_context(|| format!("{}: {}", self.what, err.trim()))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What `wrk` reported for one connection-rate run.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnRate {
    /// Completed requests (each on its own connection) per second.
    pub per_second: f64,
    /// Connect, read, write and timeout errors, and non-2xx answers.
    pub errors: u64,
}

impl ConnRate {
    /// Reads wrk's summary: `Requests/sec: N`, `Socket errors: connect A, read B, write C,
    /// timeout D` and `Non-2xx or 3xx responses: E` (the last two only when non-zero).
    pub fn parse(wrk: &str) -> Result<ConnRate> {
        let per_second = wrk
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .with_context(|| format!("no Requests/sec in wrk's output:\n{wrk}"))?;
        let mut errors = 0;
        for line in wrk.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("Socket errors:") {
                errors += rest
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
                errors += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
        Ok(ConnRate { per_second, errors })
    }
}

/// A built topology with a running target.
/// A capture of everything (both sides, no filter) read and thrown away, as by `xvsadm
/// capture -w /dev/null`, for [`Target::XvsCapture`]. Its reader is director work: it runs
/// on the director's cores (and `--isolate` leaves it there), not beside the generator.
type BenchCapture = BackgroundCapture<()>;

fn start_bench_capture(control: &std::path::Path, cores: &[usize]) -> Result<BenchCapture> {
    let command = Command::Capture {
        interface: None,
        filter: None,
        count: None,
    };
    let cores = cores.to_vec();
    let place = move || {
        if let Err(e) = set_affinity(0, &cores) {
            eprintln!("xvs-bench: the capture reader stays unpinned: {e:#}");
        }
        // As xvsadm capture does.
        xvs_control::capture::yield_to_forwarding();
    };
    BackgroundCapture::start(control, command, place, (), |_, _, _| {})
        .context("starting the capture")
}

pub struct Rig {
    // Field order is drop order: the capture ends, then xvsd stops, before its namespaces go.
    capture: Option<BenchCapture>,
    director: Option<DirectorProcess>,
    /// The `xskfwd` target's forwarder.
    forwarder: Option<Agent>,
    topo: Topology,
    target: Target,
    cores: Cores,
    gen_threads: usize,
    generator: Generator,
    tcp_layout: Option<TcpLayout>,
    tcp_data_segments: usize,
    exe: PathBuf,
    ext_mac: String,
    /// `--isolate`: throughput trials run with the director's cores to themselves.
    isolate: bool,
    /// The sources the XDP sink counts UDP datagrams from: the generator's, or FullNAT's local
    /// address when xvs forwards by `--fullnat`.
    sink_sources: (IpAddr, u32),
    family: Family,
}

impl Rig {
    /// Builds the topology and starts `target` on it.
    pub fn build(target: Target, args: &RigArgs) -> Result<Rig> {
        ensure!(
            topology::is_root(),
            "the benchmarks need root (network namespaces)"
        );
        ensure!((1..=200).contains(&args.reals), "--reals must be 1..=200");
        ensure!((1..=64).contains(&args.workers), "--workers must be 1..=64");
        ensure!(args.gen_threads >= 1, "--gen-threads must be >= 1");
        ensure!(
            target.supports(args.family),
            "target {target} does not forward IPv{} (its forwarder reads IPv4 destinations only)",
            args.family.number()
        );
        let generator = Generator::of(args);
        ensure!(
            generator == Generator::Packet || args.placement == Placement::Threads,
            "--generator xdp sends straight into the client's veth (no hop to put its receive \
             in softirq on the director's cores): it needs --placement threads"
        );
        ensure!(
            generator == Generator::Xdp || args.tcp_layout != Some(TcpLayout::Staggered),
            "--tcp-layout staggered needs --generator xdp (the packet generator's ring has no \
             first pass to hold conversations back)"
        );
        check_interrupted()?;
        topology::cleanup_stale(PREFIX);
        let cpus = topology::online_cpus();
        let cores = Cores::resolve(args, cpus);
        for c in cores.gen.iter().chain(&cores.director).chain(&cores.sink) {
            ensure!(
                *c < cpus,
                "core {c} does not exist (this machine has {cpus} CPUs)"
            );
        }
        // The orchestrator (it polls its agents while a trial runs) and whatever it starts
        // unpinned stay off the director's cores; xvsd gets them explicitly.
        let others: Vec<usize> = (0..cpus).filter(|c| !cores.director.contains(c)).collect();
        if !others.is_empty() {
            set_affinity(0, &others)?;
        }
        let spec = TopologySpec {
            prefix: PREFIX.to_string(),
            queues: args.workers as u32,
            reals: (0..args.reals)
                .map(|i| RealSpec {
                    addr: real_addr(i),
                    page: format!("real{i}"),
                })
                .collect(),
            // Dual stack: their IPv6 twins too, FullNAT's local address included.
            director_addrs: match args.xvs_method {
                XvsMethod::Fullnat => vec![FULLNAT_LIP],
                _ => Vec::new(),
            },
            dual_stack: args.family == Family::V6,
            ..TopologySpec::seed()
        };
        let topo = Topology::build(&spec)?;
        let exe = std::env::current_exe().context("locating xvs-bench")?;
        let ext_mac = topo
            .run_in(
                topo.director_ns(),
                &["cat", &format!("/sys/class/net/{}/address", topo.ext_if())],
            )?
            .trim()
            .to_string();
        let mut rig = Rig {
            capture: None,
            director: None,
            forwarder: None,
            topo,
            target,
            cores,
            gen_threads: args.gen_threads,
            generator,
            tcp_layout: args.tcp_layout,
            tcp_data_segments: args.tcp_data_segments,
            exe,
            ext_mac,
            isolate: args.isolate,
            sink_sources: match (target, args.xvs_method) {
                (Target::Xvs | Target::XvsAfxdp | Target::XvsCapture, XvsMethod::Fullnat) => {
                    (in_family(args.family, FULLNAT_LIP), 1)
                }
                _ => (in_family(args.family, GEN_SRC_BASE), GEN_SRC_COUNT),
            },
            family: args.family,
        };
        rig.place_softirqs()?;
        if args.placement == Placement::Softirq {
            rig.build_hop()?;
        }
        rig.route_replies()?;
        match target {
            Target::Xvs => rig.start_xvs(args, "xdp")?,
            Target::XvsAfxdp => rig.start_xvs(args, "off")?,
            Target::XvsCapture => {
                rig.start_xvs(args, "xdp")?;
                let control = rig
                    .director
                    .as_ref()
                    .map(|d| d.control_path().to_path_buf());
                let cores = rig.cores.director.clone();
                rig.capture = control
                    .map(|c| start_bench_capture(&c, &cores))
                    .transpose()?;
            }
            Target::Nft => {
                rig.forwarding_on()?;
                rig.install_nft()?;
            }
            Target::Direct => rig.forwarding_on()?,
            Target::Xskfwd => {}
        }
        // Resolve the reals' MACs in the director's kernel (xvsd reads that table too), so
        // that the first frames of a trial do not wait for ARP.
        for r in rig.reals() {
            rig.topo
                .run_in(
                    rig.topo.director_ns(),
                    &["ping", "-c1", "-W1", &r.to_string()],
                )
                .with_context(|| format!("director cannot reach real {r}"))?;
        }
        if target == Target::Xskfwd {
            // It reads the reals' MACs from the kernel, resolved just above.
            rig.start_xskfwd()?;
        }
        if generator == Generator::Xdp {
            rig.prepare_xdp_generator()?;
        }
        rig.place_peers()?;
        Ok(rig)
    }

    pub fn target(&self) -> Target {
        self.target
    }
    pub fn cores(&self) -> &Cores {
        &self.cores
    }
    pub fn generator(&self) -> Generator {
        self.generator
    }
    /// The VIP in the rig's family.
    fn vip(&self) -> IpAddr {
        in_family(self.family, self.topo.vip())
    }

    /// The real servers' addresses in the rig's family.
    fn reals(&self) -> Vec<IpAddr> {
        self.topo
            .reals()
            .iter()
            .map(|r| in_family(self.family, r.addr))
            .collect()
    }

    /// What the generator and the latency client address: the VIP, or the reals themselves.
    fn destinations(&self) -> Vec<IpAddr> {
        match self.target {
            Target::Direct | Target::Xskfwd => self.reals(),
            Target::Xvs | Target::XvsAfxdp | Target::XvsCapture | Target::Nft => {
                vec![self.vip()]
            }
        }
    }

    /// [`Rig::destinations`] as the agents' `--dst` comma list.
    fn destinations_arg(&self) -> String {
        self.destinations()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn sh(&self, ns: &str, script: &str) -> Result<String> {
        self.topo.run_in(ns, &["sh", "-c", script])
    }

    /// RPS masks: the director's interfaces on the director's cores, the reals' on the
    /// sinks' cores (when given).
    fn place_softirqs(&self) -> Result<()> {
        if !self.cores.director.is_empty() {
            let d = self.topo.director_ns().to_string();
            self.set_rps(&d, self.topo.ext_if(), &self.cores.director)?;
            self.set_rps(&d, self.topo.int_if(), &self.cores.director)?;
        }
        if !self.cores.sink.is_empty() {
            for i in 0..self.topo.reals().len() {
                let core = self.cores.sink[i % self.cores.sink.len()];
                self.set_rps(self.topo.real_ns(i), topology::HOST_IF, &[core])?;
            }
        }
        Ok(())
    }

    /// RPS of every rx queue of `ifname` (namespace `ns`) on `cores`.
    fn set_rps(&self, ns: &str, ifname: &str, cores: &[usize]) -> Result<()> {
        let mask = cpu_mask(cores);
        for i in 0..self.topo.queues() {
            self.sh(
                ns,
                &format!("echo {mask} > /sys/class/net/{ifname}/queues/rx-{i}/rps_cpus"),
            )?;
        }
        Ok(())
    }

    /// The TCP return path (see the module's doc): permanent neighbours for the generator's
    /// sources on the director, and the prerouting drops of the client and the reals.
    fn route_replies(&self) -> Result<()> {
        let client_mac = self
            .topo
            .run_in(
                self.topo.client_ns(),
                &[
                    "cat",
                    &format!("/sys/class/net/{}/address", topology::HOST_IF),
                ],
            )?
            .trim()
            .to_string();
        let base = in_family(self.family, GEN_SRC_BASE);
        let batch: String = (0..GEN_SRC_COUNT)
            .map(|i| {
                let a = nth_address(base, i);
                format!(
                    "neigh replace {a} lladdr {client_mac} dev {} nud permanent\n",
                    self.topo.ext_if()
                )
            })
            .collect();
        let path = self.topo.work_dir().join("neigh.batch");
        std::fs::write(&path, batch)?;
        self.topo
            .run_in(
                self.topo.director_ns(),
                &["ip", "-batch", &path.to_string_lossy()],
            )
            .context("neighbour entries for the generator's sources")?;
        // Counted: the responders' answers; not counted: the RSTs of a director whose NAT let
        // a segment through to its own stack.
        let client = Self::drop_ruleset(
            self.family,
            &[
            &format!(
                "tcp sport {BENCH_PORT} tcp flags & (fin | syn | rst | ack) {{ syn | ack, fin | ack }} counter"
            ),
                &format!("tcp sport {BENCH_PORT}"),
            ],
        );
        self.load_nft(self.topo.client_ns(), "client.nft", &client)?;
        let real = Self::drop_ruleset(self.family, &[&format!("tcp dport {BENCH_PORT}")]);
        for i in 0..self.topo.reals().len() {
            self.load_nft(self.topo.real_ns(i), &format!("real{i}.nft"), &real)?;
        }
        Ok(())
    }

    /// A table of `family` that drops what each of `matches` selects before routing.
    fn drop_ruleset(family: Family, matches: &[&str]) -> String {
        let rules: String = matches.iter().map(|m| format!("    {m} drop\n")).collect();
        let table = nft_family(family);
        format!(
            "table {table} xvsbench {{\n\
             \x20 chain prerouting {{\n\
             \x20   type filter hook prerouting priority -300; policy accept;\n\
             {rules}\
             \x20 }}\n\
             }}\n"
        )
    }

    /// Packets counted so far by the client namespace's first drop rule (the responders'
    /// SYN/ACKs and FIN/ACKs that came back).
    fn replies_counter(&self) -> Result<u64> {
        let out = self.topo.run_in(
            self.topo.client_ns(),
            &[
                nft_binary()?,
                "list",
                "table",
                nft_family(self.family),
                "xvsbench",
            ],
        )?;
        parse_counter(&out).with_context(|| format!("no counter in {out:?}"))
    }

    /// The director's kernel forwards the rig's family.
    fn forwarding_on(&self) -> Result<()> {
        let setting = match self.family {
            Family::V4 => "net.ipv4.ip_forward=1",
            Family::V6 => "net.ipv6.conf.all.forwarding=1",
        };
        self.topo
            .run_in(self.topo.director_ns(), &["sysctl", "-q", "-w", setting])?;
        Ok(())
    }

    /// The nftables ruleset of the `nft` target: NAT44, or NAT66 in an `ip6` table, by the
    /// VIP's family (the reals' must be the same).
    pub fn nft_ruleset(vip: IpAddr, reals: &[IpAddr]) -> String {
        let map = reals
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{i} : {r}"))
            .collect::<Vec<_>>()
            .join(", ");
        let n = reals.len();
        let ip = nft_family(Family::of(vip));
        format!(
            "table {ip} xvsbench {{\n\
             \x20 chain prerouting {{\n\
             \x20   type nat hook prerouting priority dstnat; policy accept;\n\
             \x20   {ip} daddr {vip} udp dport {BENCH_PORT} dnat to numgen inc mod {n} map {{ {map} }}\n\
             \x20   {ip} daddr {vip} tcp dport {BENCH_PORT} dnat to numgen inc mod {n} map {{ {map} }}\n\
             \x20   {ip} daddr {vip} tcp dport {TCP_PORT} dnat to numgen inc mod {n} map {{ {map} }}\n\
             \x20 }}\n\
             }}\n"
        )
    }

    fn install_nft(&self) -> Result<()> {
        let ruleset = Self::nft_ruleset(self.vip(), &self.reals());
        self.load_nft(self.topo.director_ns(), "nat.nft", &ruleset)
    }

    /// Loads `ruleset` (written to `work_dir/file`) into namespace `ns`.
    fn load_nft(&self, ns: &str, file: &str, ruleset: &str) -> Result<()> {
        let path = self.topo.work_dir().join(file);
        std::fs::write(&path, ruleset)?;
        self.topo
            .run_in(ns, &[nft_binary()?, "-f", &path.to_string_lossy()])
            .with_context(|| format!("loading the nftables ruleset {file}"))?;
        Ok(())
    }

    /// xvsd with `--fast-path fast_path`.
    fn start_xvs(&mut self, args: &RigArgs, fast_path: &str) -> Result<()> {
        let xvsd = find_binary("xvsd")?;
        let xvsadm = find_binary("xvsadm")?;
        let w = args.workers.to_string();
        let mut flags = vec![
            "--workers",
            &w,
            "--idle",
            &args.xvs_idle,
            "--fast-path",
            fast_path,
        ];
        if args.xvs_busy_poll {
            flags.push("--busy-poll");
        }
        // In the threads placement xvsd places its receive threads itself, as an operator's
        // would (`--threaded-napi` also ranks the replies' receive above the workers).
        if args.xvs_threaded_napi || self.cores.placement == Placement::Threads {
            flags.push("--threaded-napi");
        }
        let priority = args.xvs_worker_priority.map(|p| p.to_string());
        if let Some(p) = &priority {
            flags.extend(["--worker-priority", p]);
        }
        let after = args.xvs_fast_path_after.map(|n| n.to_string());
        if let Some(n) = &after {
            flags.extend(["--fast-path-after", n]);
        }
        let conn_max = args.xvs_conn_max.map(|n| n.to_string());
        if let Some(n) = &conn_max {
            flags.extend(["--conn-max", n]);
        }
        // xvsd pins its workers to the CPUs of its affinity: start it with the director's.
        let director = with_affinity(&self.cores.director, || {
            DirectorProcess::start(&self.topo, &xvsd, &flags)
        })?;
        // ipvsadm's syntax: VIP:port, [VIP6]:port (as SocketAddr writes them).
        let (vip, reals) = (self.vip(), self.reals());
        for (flag, port) in [("-u", BENCH_PORT), ("-t", BENCH_PORT), ("-t", TCP_PORT)] {
            let service = SocketAddr::new(vip, port).to_string();
            director.xvsadm(&xvsadm, &["-A", flag, &service, "-s", "rr"])?;
            let method = match (flag, args.xvs_method) {
                ("-u", XvsMethod::Route) => "-g",
                ("-u", XvsMethod::Fullnat) => {
                    let lip = in_family(self.family, FULLNAT_LIP).to_string();
                    director.xvsadm(&xvsadm, &["--add-laddr", "-z", &lip, flag, &service])?;
                    "--fullnat"
                }
                _ => "-m",
            };
            for r in &reals {
                let real = SocketAddr::new(*r, port).to_string();
                director.xvsadm(&xvsadm, &["-a", flag, &service, "-r", &real, method])?;
            }
        }
        self.director = Some(director);
        Ok(())
    }

    /// [`Target::Xskfwd`]: the forwarder in the director namespace, on the director's cores,
    /// the NAPI threads placed as for xvs.
    fn start_xskfwd(&mut self) -> Result<()> {
        let client_mac = self
            .sh(
                self.topo.client_ns(),
                &format!("cat /sys/class/net/{}/address", topology::HOST_IF),
            )?
            .trim()
            .to_string();
        let ready = self.topo.work_dir().join("xskfwd.ready");
        let _ = std::fs::remove_file(&ready);
        let reals: Vec<String> = self
            .topo
            .reals()
            .iter()
            .map(|r| r.addr.to_string())
            .collect();
        let args = vec![
            "--external".to_string(),
            self.topo.ext_if().to_string(),
            "--internal".to_string(),
            self.topo.int_if().to_string(),
            "--reals".to_string(),
            reals.join(","),
            "--client-mac".to_string(),
            client_mac,
            "--cores".to_string(),
            list(&self.cores.director),
            "--ready".to_string(),
            ready.to_string_lossy().into_owned(),
        ];
        let mut agent = self.spawn_agent(self.topo.director_ns(), "xskfwd", &args)?;
        wait_ready(std::slice::from_mut(&mut agent), &[ready], "xskfwd")?;
        self.forwarder = Some(agent);
        match self.cores.placement {
            Placement::Threads => self.pin_napi_threads(),
            Placement::Softirq => Ok(()),
        }
    }

    /// The hop of [`Placement::Softirq`]: `gen0` (the generator's) -> `gen1`, RPS'd to the
    /// director's cores, mirrored by tc to `eth0`, so `ext0`'s NAPI is scheduled there.
    fn build_hop(&self) -> Result<()> {
        let c = self.topo.client_ns().to_string();
        let q = self.topo.queues();
        let mask = cpu_mask(&self.cores.director);
        let mut script = format!(
            "set -e\nip link add name {GEN_IF} numtxqueues {q} numrxqueues {q} type veth peer name {HOP_IF} numtxqueues {q} numrxqueues {q}\n\
             ip link set {GEN_IF} up\nip link set {HOP_IF} up\n\
             tc qdisc add dev {HOP_IF} ingress\n\
             tc filter add dev {HOP_IF} ingress u32 match u32 0 0 action mirred egress redirect dev {}\n",
            topology::HOST_IF
        );
        for i in 0..q {
            script.push_str(&format!(
                "echo {mask} > /sys/class/net/{HOP_IF}/queues/rx-{i}/rps_cpus\n"
            ));
        }
        self.sh(&c, &script)
            .context("building the softirq placement's hop (veth, RPS, tc mirred)")?;
        Ok(())
    }

    /// The interface the generator sends on.
    fn gen_iface(&self) -> &'static str {
        match self.cores.placement {
            Placement::Threads => topology::HOST_IF,
            Placement::Softirq => GEN_IF,
        }
    }

    /// Counters of every place a frame can be dropped on its way through the director.
    fn drop_counters(&self) -> Result<DropCounters> {
        let tx_dropped = |ns: &str, ifname: &str| -> Result<u64> {
            self.sh(
                ns,
                &format!("cat /sys/class/net/{ifname}/statistics/tx_dropped"),
            )?
            .trim()
            .parse::<u64>()
            .with_context(|| format!("reading {ifname}'s tx_dropped"))
        };
        let client = self.topo.client_ns();
        let client_tx_dropped = tx_dropped(client, topology::HOST_IF)?;
        let hop = match self.cores.placement {
            Placement::Threads => 0,
            Placement::Softirq => tx_dropped(client, GEN_IF)?,
        };
        let int_veth_ring = tx_dropped(self.topo.sw_ns(), SWITCH_DIRECTOR_PORT)?;
        let generator_if = match self.cores.placement {
            Placement::Threads => client_tx_dropped,
            Placement::Softirq => hop,
        };
        let backlog = std::fs::read_to_string("/proc/net/softnet_stat")
            .map(|t| softnet_dropped(&t))
            .unwrap_or(0);
        let mut counters = DropCounters {
            generator_if,
            hop,
            int_veth_ring,
            veth_ring: client_tx_dropped,
            backlog,
            ..DropCounters::default()
        };
        if let Some(d) = &self.director {
            let reply = d.client()?.call(Command::Stats)?;
            let Reply::Stats(stats) = reply else {
                bail!("xvsd answered the stats command with {reply:?}");
            };
            for w in &stats.workers {
                counters.xdp_redirected += w.redirected;
                counters.worker_rx += w.rx;
                counters.xsk_ring_full += w.xsk_rx_ring_full;
                counters.xsk_no_frame += w.xsk_rx_dropped;
                counters.tx_full += w.drops.get("tx_full").copied().unwrap_or(0);
                counters.handoff_full += w.drops.get("handoff_full").copied().unwrap_or(0);
            }
        }
        Ok(counters)
    }

    /// Threaded NAPI on the director's veths, the poll threads pinned to the director's
    /// cores: otherwise the XDP program and the copy into the UMEM run in the softirq of
    /// whichever CPU sent the frame (the generator's).
    fn pin_napi_threads(&self) -> Result<()> {
        let d = self.topo.director_ns().to_string();
        let ifnames = [self.topo.ext_if(), self.topo.int_if()];
        self.pin_napi(&d, &ifnames, &self.cores.director)?;
        Ok(())
    }

    /// Threaded NAPI on `ifnames` of namespace `ns`, the poll threads pinned to `cores`;
    /// returns their pids.
    fn pin_napi(&self, ns: &str, ifnames: &[&str], cores: &[usize]) -> Result<Vec<i32>> {
        if cores.is_empty() {
            return Ok(Vec::new());
        }
        let before = napi_threads();
        for ifname in ifnames {
            self.sh(ns, &format!("echo 1 > /sys/class/net/{ifname}/threaded"))
                .with_context(|| format!("threaded NAPI on {ifname}"))?;
        }
        // Ours are the threads that appeared just now with our interface names.
        let ours: Vec<i32> = napi_threads()
            .into_iter()
            .filter(|(pid, name)| {
                !before.iter().any(|(p, _)| p == pid)
                    && ifnames
                        .iter()
                        .any(|i| name.starts_with(&format!("napi/{i}-")))
            })
            .map(|(pid, _)| pid)
            .collect();
        for pid in &ours {
            set_affinity(*pid, cores).with_context(|| format!("pinning NAPI thread {pid}"))?;
        }
        if ours.is_empty() {
            eprintln!(
                "xvs-bench: warning: no NAPI thread found for {}",
                ifnames.join(", ")
            );
        }
        Ok(ours)
    }

    /// [`Generator::Xdp`]: the director's veths take XDP frames for every target (the
    /// generator's on the external one, the XDP sink's TCP answers on the internal one; GRO
    /// on: a veth without XDP accepts them only so), their receive in threads on the
    /// director's cores for the kernel targets too (xvs's are there already).
    fn prepare_xdp_generator(&self) -> Result<()> {
        if matches!(self.target, Target::Nft | Target::Direct) {
            let d = self.topo.director_ns().to_string();
            let ifaces = [self.topo.ext_if(), self.topo.int_if()];
            for iface in ifaces {
                self.sh(&d, &format!("ethtool -K {iface} gro on >/dev/null"))
                    .with_context(|| format!("GRO on the director's {iface}"))?;
            }
            self.pin_napi(&d, &ifaces, &self.cores.director)?;
        }
        Ok(())
    }

    /// Keeps the switch's side of the director's internal veth off the director's cores:
    /// what enters `p-dir` (bridging to the reals, or the XDP sink) runs on the sink cores.
    /// veth runs a peer's receive on the CPU that transmitted into it (the director's) unless
    /// it is threaded, and an skb that cannot take veth's GRO path (the kernel's forwarded
    /// ones, AF_XDP copy-mode transmissions) goes to that CPU's backlog unless RPS sends it
    /// elsewhere: behind a NIC this would be other machines' work. With the XDP generator,
    /// `p-dir`'s thread runs at realtime priority: the generator spins on that core (it paces
    /// itself in the kernel), and a sink thread waiting for its time slice would let the
    /// port's 256-frame ring overflow, a loss that is not the director's. (The client's
    /// `eth0`, which receives replies, stays as veth places it: in a NAPI thread of its own
    /// on the generator's core, it held replies from the AF_XDP path back for more than a
    /// second in one latency run of three.)
    fn place_peers(&self) -> Result<()> {
        let sink_cores = if self.cores.sink.is_empty() {
            &self.cores.gen
        } else {
            &self.cores.sink
        };
        if sink_cores.is_empty() {
            return Ok(());
        }
        let sw = self.topo.sw_ns().to_string();
        self.set_rps(&sw, SWITCH_DIRECTOR_PORT, sink_cores)?;
        let threads = self.pin_napi(&sw, &[SWITCH_DIRECTOR_PORT], sink_cores)?;
        if self.generator == Generator::Xdp {
            for pid in threads {
                let param = libc::sched_param { sched_priority: 50 };
                // SAFETY: a plain system call on a kernel thread's pid with a live parameter.
                let rc = unsafe { libc::sched_setscheduler(pid, libc::SCHED_FIFO, &param) };
                ensure!(
                    rc == 0,
                    "realtime priority for the sink's NAPI thread {pid}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(())
    }

    fn spawn_agent(&self, ns: &str, kind: &str, args: &[String]) -> Result<Agent> {
        let mut c = self.topo.command_in(ns, &self.exe.to_string_lossy());
        c.arg("agent").arg(kind).args(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().with_context(|| format!("starting {c:?}"))?;
        Ok(Agent {
            child: Some(child),
            what: format!("agent {kind} in {ns}"),
        })
    }

    /// Starts a sink or echo agent on every real server and waits until all are bound.
    fn start_responders(&self, kind: &str, limit: f64) -> Result<Vec<Agent>> {
        let mut agents = Vec::new();
        let mut ready = Vec::new();
        for i in 0..self.topo.reals().len() {
            let file = self.topo.work_dir().join(format!("{kind}{i}.ready"));
            let _ = std::fs::remove_file(&file);
            let mut args = vec![
                "--duration".to_string(),
                format!("{limit}"),
                "--ready".to_string(),
                file.to_string_lossy().into_owned(),
            ];
            if !self.cores.sink.is_empty() {
                args.push("--cores".into());
                args.push(self.cores.sink[i % self.cores.sink.len()].to_string());
            }
            args.extend(["--family".into(), self.family.number().into()]);
            agents.push(self.spawn_agent(self.topo.real_ns(i), kind, &args)?);
            ready.push(file);
        }
        wait_ready(&mut agents, &ready, kind)?;
        Ok(agents)
    }

    /// [`Generator::Xdp`]'s sink, attached to the switch's port of the director's internal
    /// veth until the agent stops.
    fn start_xdp_sink(&self, proto: Proto, limit: f64) -> Result<Vec<Agent>> {
        let file = self.topo.work_dir().join("xdpsink.ready");
        let _ = std::fs::remove_file(&file);
        let args = vec![
            "--proto".to_string(),
            proto.name().to_string(),
            "--src-base".to_string(),
            self.sink_sources.0.to_string(),
            "--src-count".to_string(),
            self.sink_sources.1.to_string(),
            "--family".to_string(),
            self.family.number().to_string(),
            "--iface".to_string(),
            SWITCH_DIRECTOR_PORT.to_string(),
            "--duration".to_string(),
            format!("{limit}"),
            "--ready".to_string(),
            file.to_string_lossy().into_owned(),
        ];
        let mut agents = vec![self.spawn_agent(self.topo.sw_ns(), "xdpsink", &args)?];
        wait_ready(&mut agents, &[file], "xdpsink")?;
        Ok(agents)
    }

    /// The generator agent's kind and its arguments for `load`.
    fn generator_args(&self, load: &Load) -> (&'static str, Vec<String>) {
        let xdp = self.generator == Generator::Xdp;
        let mut args: Vec<String> = vec![
            "--iface".into(),
            self.gen_iface().into(),
            "--dst-mac".into(),
            self.ext_mac.clone(),
            "--src-base".into(),
            in_family(self.family, GEN_SRC_BASE).to_string(),
            "--src-count".into(),
            GEN_SRC_COUNT.to_string(),
            "--dst".into(),
            self.destinations_arg(),
            "--flows".into(),
            load.flows.to_string(),
            "--frame-size".into(),
            load.frame_size.to_string(),
            "--rate".into(),
            format!("{}", load.rate.round()),
            "--duration".into(),
            format!("{}", load.duration),
            "--proto".into(),
            load.proto.name().into(),
        ];
        if !xdp {
            args.extend(["--threads".into(), self.gen_threads.to_string()]);
        }
        if load.proto == Proto::Tcp {
            args.extend(["--data-segments".into(), self.tcp_data_segments.to_string()]);
        }
        if let Some(layout) = self.tcp_layout {
            let name = layout.to_possible_value().expect("no skipped variants");
            args.extend(["--tcp-layout".into(), name.get_name().into()]);
        }
        if !self.cores.gen.is_empty() {
            args.push("--cores".into());
            args.push(list(&self.cores.gen));
        }
        (if xdp { "xdpgen" } else { "gen" }, args)
    }

    /// One throughput trial: sinks (UDP) or responders (TCP) up, the generator runs `load`,
    /// the sinks report.
    pub fn trial(&self, load: Load) -> Result<TrialResult> {
        check_interrupted()?;
        self.ensure_director_alive()?;
        let limit = load.duration + 30.0;
        let xdp = self.generator == Generator::Xdp;
        let sinks = match load.proto {
            _ if xdp => self.start_xdp_sink(load.proto, limit)?,
            Proto::Udp => self.start_responders("sink", limit)?,
            Proto::Tcp => self.start_responders("responder", limit)?,
        };
        let replies0 = match load.proto {
            Proto::Udp => None,
            Proto::Tcp => Some(self.replies_counter()?),
        };
        // Dropped at the end of the trial: the other tasks get the director's cores back.
        let _isolation = self.isolate.then(|| Isolation::of(&self.cores.director));
        let drops0 = self.drop_counters()?;
        let (kind, gen_args) = self.generator_args(&load);
        let mut args: Vec<String> = vec!["agent".into(), kind.into()];
        args.extend(gen_args);
        let exe = self.exe.to_string_lossy().into_owned();
        let mut full: Vec<&str> = vec![&exe];
        full.extend(args.iter().map(String::as_str));
        let out = self
            .topo
            .run_in_timeout(
                self.topo.client_ns(),
                &full,
                Duration::from_secs_f64(load.duration + 30.0),
            )
            .context("generator")?;
        let gen: GenReport = agent::parse_report(&out)?;
        std::thread::sleep(DRAIN);
        let mut sinks = sinks;
        for s in &mut sinks {
            s.stop();
        }
        let reports = sinks
            .into_iter()
            .map(|s| s.finish::<SinkReport>(Duration::from_secs(5)))
            .collect::<Result<Vec<_>>>()?;
        // A signal during the trial also stopped the agents early: their counts are partial.
        check_interrupted()?;
        let replies_returned = match replies0 {
            Some(before) => Some(self.replies_counter()?.saturating_sub(before)),
            None => None,
        };
        let drops = self.drop_counters()?.since(&drops0);
        Ok(TrialResult {
            load,
            gen,
            sinks: reports,
            replies_returned,
            drops,
        })
    }

    /// Open-loop latency at `rate` requests per second for `duration` seconds through the
    /// target, answered by echo agents on the reals.
    ///
    /// With `load_pps` > 0, UDP datagrams of the family's default size
    /// ([`default_frame_size`]: 64 bytes in IPv4) from the XDP generator (1,024 flows,
    /// counted and dropped by the XDP sink) cross the director meanwhile, from half a second
    /// before the first request until after the last: latency at that load.
    pub fn latency(&self, rate: f64, duration: f64, load_pps: f64) -> Result<PingReport> {
        check_interrupted()?;
        self.ensure_director_alive()?;
        let echos = self.start_responders("echo", duration + 30.0)?;
        let background = if load_pps > 0.0 {
            ensure!(
                self.generator == Generator::Xdp,
                "a background load needs the XDP generator (--generator xdp)"
            );
            let sinks = self.start_xdp_sink(Proto::Udp, duration + 30.0)?;
            let load = Load {
                family: self.family,
                proto: Proto::Udp,
                rate: load_pps,
                duration: duration + 1.5,
                frame_size: default_frame_size(self.family),
                flows: 1024,
            };
            let (kind, args) = self.generator_args(&load);
            let gen = self.spawn_agent(self.topo.client_ns(), kind, &args)?;
            std::thread::sleep(Duration::from_millis(500));
            Some((gen, sinks))
        } else {
            None
        };
        let dst = self.destinations_arg();
        let exe = self.exe.to_string_lossy().into_owned();
        let (rate_s, dur_s, src) = (
            format!("{rate}"),
            format!("{duration}"),
            in_family(self.family, self.topo.client_addr()).to_string(),
        );
        let cores = list(&self.cores.gen);
        let mut args = vec![
            exe.as_str(),
            "agent",
            "ping",
            "--src",
            &src,
            "--dst",
            &dst,
            "--rate",
            &rate_s,
            "--duration",
            &dur_s,
        ];
        if !self.cores.gen.is_empty() {
            args.extend(["--cores", &cores]);
        }
        let out = self
            .topo
            .run_in_timeout(
                self.topo.client_ns(),
                &args,
                Duration::from_secs_f64(duration + 30.0),
            )
            .context("latency client")?;
        let report: PingReport = agent::parse_report(&out)?;
        if let Some((gen, mut sinks)) = background {
            let gen: GenReport = gen.finish(Duration::from_secs(30))?;
            std::thread::sleep(DRAIN);
            for s in &mut sinks {
                s.stop();
            }
            let forwarded: u64 = sinks
                .into_iter()
                .map(|s| {
                    s.finish::<SinkReport>(Duration::from_secs(5))
                        .map(|r| r.received)
                })
                .sum::<Result<u64>>()?;
            println!(
                "{}: background load {:.0} pps offered, {:.0} pps forwarded ({} of {} frames) during the latency run",
                self.target,
                gen.offered_pps,
                forwarded as f64 / gen.elapsed_s.max(1e-9),
                forwarded,
                gen.sent
            );
        }
        let mut echos = echos;
        for e in &mut echos {
            e.stop();
        }
        for e in echos {
            e.finish::<agent::echo::EchoReport>(Duration::from_secs(5))?;
        }
        check_interrupted()?;
        Ok(report)
    }

    /// New TCP connections per second: nginx on every real server, `wrk` in the client
    /// namespace with `connections` concurrent connections, each request on a fresh
    /// connection (`Connection: close`: SYN, SYN/ACK, ACK, request, response, FIN both ways
    /// through the director), for `duration` seconds.
    pub fn connection_rate(&mut self, duration: u32, connections: u32) -> Result<ConnRate> {
        check_interrupted()?;
        self.ensure_director_alive()?;
        self.topo.start_web_servers()?;
        let url = format!(
            "http://{}/",
            SocketAddr::new(self.destinations()[0], TCP_PORT)
        );
        let (c, d) = (connections.to_string(), format!("{duration}s"));
        let mut args = vec![
            "wrk",
            "-t1",
            "-c",
            &c,
            "-d",
            &d,
            "-H",
            "Connection: close",
            &url,
        ];
        let cores = list(&self.cores.gen);
        if !self.cores.gen.is_empty() {
            args.splice(0..0, ["taskset", "-c", &cores]);
        }
        let out = self
            .topo
            .run_in_timeout(
                self.topo.client_ns(),
                &args,
                Duration::from_secs(u64::from(duration) + 30),
            )
            .context("wrk")?;
        check_interrupted()?;
        ConnRate::parse(&out)
    }

    fn ensure_director_alive(&self) -> Result<()> {
        if let Some(pid) = self
            .forwarder
            .as_ref()
            .and_then(|f| f.child.as_ref())
            .map(|c| c.id())
        {
            // Exited (a zombie until reaped) or gone: its /proc stat says so.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
            ensure!(
                matches!(state, Some(c) if c != 'Z'),
                "the xskfwd forwarder has exited"
            );
        }
        if let Some(d) = &self.director {
            // is_running needs &mut; a cheap check through the control socket instead.
            d.client()
                .with_context(|| format!("xvsd is not answering; its log:\n{}", d.log()))?;
        }
        Ok(())
    }
}

/// Waits (bounded) until every file of `ready` exists; fails if an agent exits first.
fn wait_ready(agents: &mut [Agent], ready: &[PathBuf], kind: &str) -> Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    while !ready.iter().all(|f| f.exists()) {
        for a in agents.iter_mut() {
            if let Some(c) = a.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    let mut err = String::new();
                    if let Some(mut e) = c.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    bail!("{} exited during start-up ({st}): {}", a.what, err.trim());
                }
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{kind} agents not ready within {READY_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// nftables' name of the table family of `family`'s traffic.
fn nft_family(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn nft_binary() -> Result<&'static str> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("nft not found (Debian package nftables; scripts/setup.sh installs it)")
}

/// The packet count of the first `counter packets N bytes M` in `nft list` output.
pub fn parse_counter(nft: &str) -> Option<u64> {
    let rest = &nft[nft.find("counter packets ")? + "counter packets ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Runs `f` with the calling thread's CPU affinity set to `cores` (children spawned meanwhile
/// inherit it), then restores it. No-op with no cores.
fn with_affinity<T>(cores: &[usize], f: impl FnOnce() -> Result<T>) -> Result<T> {
    if cores.is_empty() {
        return f();
    }
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `old` is a live cpu_set_t of the size we pass.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old) };
    ensure!(
        rc == 0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    set_affinity(0, cores)?;
    let r = f();
    // SAFETY: `old` is the set read above, of the size we pass.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &old) };
    r
}

/// sched_setaffinity(pid, cores); pid 0 = the calling thread.
fn set_affinity(pid: i32, cores: &[usize]) -> Result<()> {
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cores {
        // SAFETY: CPU_SET writes one bit of the live set; c < CPU_SETSIZE was checked by the
        // caller against the number of CPUs.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a live cpu_set_t of the size we pass.
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    ensure!(
        rc == 0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// (pid, comm) of every kernel NAPI thread ("napi/IFNAME-ID").
fn napi_threads() -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            let comm = comm.trim();
            comm.starts_with("napi/").then(|| (pid, comm.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(cpu_mask(&[0]), "00000001");
        assert_eq!(cpu_mask(&[1]), "00000002");
        assert_eq!(cpu_mask(&[0, 3]), "00000009");
        assert_eq!(cpu_mask(&[33]), "00000002,00000000");
    }

    fn args(workers: usize) -> RigArgs {
        RigArgs {
            family: Family::V4,
            reals: 2,
            workers,
            gen_cores: None,
            director_cores: None,
            sink_cores: None,
            gen_threads: 1,
            xvs_idle: "adaptive".into(),
            xvs_busy_poll: false,
            xvs_worker_priority: None,
            xvs_threaded_napi: false,
            xvs_fast_path_after: None,
            xvs_conn_max: None,
            xvs_method: XvsMethod::Masq,
            placement: Placement::Threads,
            generator: None,
            tcp_layout: None,
            tcp_data_segments: 8,
            isolate: false,
        }
    }

    #[test]
    fn the_generator_defaults_to_xdp_where_it_can_run() {
        let mut a = args(1);
        assert_eq!(Generator::of(&a), Generator::Xdp);
        a.placement = Placement::Softirq;
        assert_eq!(Generator::of(&a), Generator::Packet);
        a.generator = Some(Generator::Xdp);
        assert_eq!(Generator::of(&a), Generator::Xdp);
    }

    #[test]
    fn default_cores() {
        let c = Cores::resolve(&args(1), 2);
        assert_eq!((c.gen, c.director, c.sink), (vec![0], vec![1], vec![0]));
        let c = Cores::resolve(&args(2), 8);
        assert_eq!(c.director, vec![6, 7]);
        assert_eq!(c.sink, vec![0, 1, 2, 3, 4, 5]);
        // Two workers on two CPUs: the director keeps CPU 1 only, away from the generator.
        let c = Cores::resolve(&args(2), 2);
        assert_eq!(c.director, vec![1]);
        let c = Cores::resolve(&args(1), 1);
        assert_eq!((c.gen, c.director, c.sink), (vec![0], vec![0], vec![]));
        let mut a = args(1);
        a.director_cores = Some(vec![0, 1]);
        assert_eq!(Cores::resolve(&a, 2).director, vec![0, 1]);
    }

    #[test]
    fn nft_rules_map_every_real() {
        let reals = |family| {
            [
                in_family(family, real_addr(0)),
                in_family(family, real_addr(1)),
            ]
        };
        let r = Rig::nft_ruleset(in_family(Family::V4, topology::VIP), &reals(Family::V4));
        assert!(r.starts_with("table ip xvsbench {"));
        assert!(r.contains(
            "ip daddr 198.18.0.129 udp dport 9000 dnat to numgen inc mod 2 map { 0 : 198.19.0.10, 1 : 198.19.0.11 }"
        ));
        assert!(r.contains("tcp dport 80"));
        assert!(r.contains("ip daddr 198.18.0.129 tcp dport 9000 dnat to numgen inc mod 2"));
        // NAT66: an ip6 table, the IPv6 twins.
        let r = Rig::nft_ruleset(in_family(Family::V6, topology::VIP), &reals(Family::V6));
        assert!(r.starts_with("table ip6 xvsbench {"), "{r}");
        assert!(r.contains(
            "ip6 daddr 2001:2::129 udp dport 9000 dnat to numgen inc mod 2 map { 0 : 2001:2:0:1::10, 1 : 2001:2:0:1::11 }"
        ), "{r}");
        assert!(r.contains("ip6 daddr 2001:2::129 tcp dport 80 dnat"));
    }

    #[test]
    fn only_xskfwd_is_ipv4_only() {
        assert_eq!(Target::all_of(Family::V4), Target::ALL.to_vec());
        assert_eq!(
            Target::all_of(Family::V6),
            vec![Target::Xvs, Target::XvsAfxdp, Target::Nft, Target::Direct]
        );
        assert!(Target::XvsCapture.supports(Family::V6));
        assert_eq!(
            in_family(Family::V6, GEN_SRC_BASE),
            "2001:2::10".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            nth_address(in_family(Family::V6, GEN_SRC_BASE), GEN_SRC_COUNT - 1),
            "2001:2::4f".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn drops_are_deltas_named_by_place() {
        let before = DropCounters {
            generator_if: 10,
            veth_ring: 10,
            xdp_redirected: 100,
            worker_rx: 90,
            xsk_ring_full: 10,
            ..DropCounters::default()
        };
        let after = DropCounters {
            generator_if: 15,
            veth_ring: 15,
            xdp_redirected: 200,
            worker_rx: 180,
            xsk_ring_full: 20,
            tx_full: 3,
            ..DropCounters::default()
        };
        let d = after.since(&before);
        assert_eq!(d.generator_if, 5);
        assert_eq!(
            d.describe(),
            "veth ring 5, xsk (redirected - rx) 10, xsk ring full 10, tx ring full 3"
        );
        assert_eq!(DropCounters::default().describe(), "");
    }

    #[test]
    fn softnet_drops_sum_the_second_column_of_every_cpu() {
        let text = "0000a000 00000002 00000000\n0000b000 00000010 00000001\n";
        assert_eq!(softnet_dropped(text), 18);
        assert_eq!(softnet_dropped(""), 0);
    }

    #[test]
    fn counters_parse() {
        let out = "table ip xvsbench {\n\tchain prerouting {\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\ttcp sport 9000 counter packets 1234 bytes 74040 drop\n\t}\n}\n";
        assert_eq!(parse_counter(out), Some(1234));
        assert_eq!(parse_counter("table ip x {}"), None);
        let r = Rig::drop_ruleset(Family::V4, &["tcp sport 9000 counter", "udp sport 9"]);
        assert!(r.starts_with("table ip xvsbench {"));
        assert!(r.contains("\n    tcp sport 9000 counter drop\n    udp sport 9 drop\n  }"));
        let r = Rig::drop_ruleset(Family::V6, &["tcp dport 9000"]);
        assert!(r.starts_with("table ip6 xvsbench {"));
    }
}
