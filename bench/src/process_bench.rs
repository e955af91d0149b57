//! `xvs-bench process`: the cost of [`process`] alone, with no socket, on one thread.
//!
//! The fixture is the director of the golden tests: one TCP service 198.18.0.129:80, rr over
//! the reals 198.19.0.148:80 and 198.19.0.137:80; external interface ifindex 2, internal
//! ifindex 3; connected routes 198.18.0.0/24 (2) and 198.19.0.0/24 (3) with a neighbour entry
//! for every client and real. Flow `i` is client 198.18.0.(10 + i % 64), port 1024 + i / 64.
//! Frames are 60 bytes (64 on the wire): Ethernet, IPv4 without options, TCP without options
//! or payload, padded; built with the dataplane's own wire views.
//!
//! Cases, each on a fresh fixture, visiting the flows round-robin:
//! - `new`: the SYN of a flow the table does not hold (a schedule and an insert per packet).
//!   After each round over the flows the table is emptied, outside the timed region.
//! - `established`: an ACK from the client of an ESTABLISHED flow (handshake done untimed).
//! - `reply`: an ACK from the real server of an ESTABLISHED flow.
//!
//! [`process`] rewrites frames in place, so each packet is first restored from its template.
//! Method: frames go through in batches of [`BATCH`]; each batch copies its templates into a
//! batch buffer, then processes it, timed as a whole (copy included). A second pass runs the
//! same loop copying only; `net` is the difference. Every verdict is checked: a benchmark that
//! measured drops fails instead of printing figures.

use anyhow::{bail, ensure, Context, Result};
use hdrhistogram::Histogram;
use std::fmt;
use std::hint::black_box;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use xvs_dataplane::conntrack::ConnTable;
use xvs_dataplane::neigh::{nud, Neighbour, NeighbourTable, Route};
use xvs_dataplane::persist::Templates;
use xvs_dataplane::process::{process, Env, Side, Verdict};
use xvs_dataplane::snapshot::{Interface, RealServer, Service, Snapshot, Vip, PROTO_TCP};
use xvs_dataplane::stats::WorkerStats;
use xvs_dataplane::wire::{
    EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket,
};
use xvs_scheduler::{Dest, Flags, Scheduler, SchedulerKind};

/// Frames per timed batch (a typical AF_XDP receive batch).
pub const BATCH: usize = 64;
/// Packets per case with `--smoke`.
pub const SMOKE_PACKETS: u64 = 20_000;
/// Default `--flows`.
pub const DEFAULT_FLOWS: usize = 1024;

const FRAME_LEN: usize = 60;
type Frame = [u8; FRAME_LEN];

const EXT_IF: u32 = 2;
const INT_IF: u32 = 3;
const EXT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xe1];
const INT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const VIP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 129), 80);
const REALS: [(SocketAddrV4, [u8; 6]); 2] = [
    (
        SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 148), 80),
        [0x02, 0, 0, 0, 0x01, 0x48],
    ),
    (
        SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 137), 80),
        [0x02, 0, 0, 0, 0x01, 0x37],
    ),
];
/// Client addresses: 198.18.0.10 ..= 198.18.0.73.
const CLIENTS: usize = 64;
const FIRST_CLIENT: u8 = 10;
const FIRST_PORT: u16 = 1024;
/// Flows the client addresses and ports can make.
pub const MAX_FLOWS: usize = CLIENTS * (65536 - FIRST_PORT as usize);
/// The clock of every batch: no entry comes near expiring.
const NOW_MS: u64 = 1_000;

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

/// One benchmarked traffic pattern (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    New,
    Established,
    Reply,
}

impl Case {
    fn ingress(self) -> Side {
        match self {
            Case::New | Case::Established => Side::External,
            Case::Reply => Side::Internal,
        }
    }

    fn egress(self) -> Side {
        match self.ingress() {
            Side::External => Side::Internal,
            Side::Internal => Side::External,
        }
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Case::New => "new",
            Case::Established => "established",
            Case::Reply => "reply",
        })
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
    /// Traffic pattern.
    #[arg(long, value_enum, default_value_t = Kind::All)]
    pub kind: Kind,
    /// About 20k packets per case: a check that takes seconds (CI).
    #[arg(long, conflicts_with = "packets")]
    pub smoke: bool,
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

/// Measures `case` over `packets` packets on `fixture`: an untimed warm-up, the copy-only pass,
/// then the timed pass.
pub fn measure(case: Case, packets: u64, mut fixture: Fixture) -> Result<Report> {
    let templates = fixture.templates(case)?;
    let warm_up = (packets / 10).max(templates.len() as u64);
    let mut work = Work {
        fixture: &mut fixture,
        case,
        not_forwarded: 0,
        first_miss: None,
    };
    drive(&templates, warm_up, Some(&mut work));
    let (copy, _) = drive(&templates, packets, None);
    work.not_forwarded = 0;
    work.first_miss = None;
    let (total, batch_ps) = drive(&templates, packets, Some(&mut work));
    Ok(Report {
        case,
        packets,
        total,
        copy,
        batch_ps,
        not_forwarded: work.not_forwarded,
        first_miss: work.first_miss,
    })
}

/// What a timed batch does after restoring its frames.
struct Work<'a> {
    fixture: &'a mut Fixture,
    case: Case,
    not_forwarded: u64,
    first_miss: Option<Verdict>,
}

impl Work<'_> {
    #[inline]
    fn batch(&mut self, frames: &mut [Frame]) {
        let fx = &mut *self.fixture;
        let env = Env {
            config: &fx.snapshot,
            neighbours: &fx.neighbours,
            now_ms: NOW_MS,
            workers: &[],
            templates: &fx.templates,
            overload: &[],
        };
        let (from, expect) = (self.case.ingress(), Verdict::Forward(self.case.egress()));
        for frame in frames {
            let verdict = process(frame, from, &env, &mut fx.conns, &fx.stats);
            if verdict != expect {
                self.not_forwarded += 1;
                self.first_miss.get_or_insert(verdict);
            }
        }
    }

    /// Called between rounds over the flows, untimed: `new` forgets them all.
    fn end_of_round(&mut self) {
        if self.case == Case::New {
            let fx = &mut *self.fixture;
            fx.conns.expire(u64::MAX, fx.conns.capacity(), &fx.stats);
            debug_assert!(fx.conns.is_empty());
        }
    }
}

/// Sends `packets` frames from `templates` (round-robin) through batches: restore, then `work`
/// (or nothing but a `black_box` when `None`). Returns the total timed duration and the
/// per-batch time per packet in picoseconds.
fn drive(
    templates: &[Frame],
    packets: u64,
    mut work: Option<&mut Work<'_>>,
) -> (Duration, Histogram<u64>) {
    let mut batch_ps = Histogram::<u64>::new_with_max(10_000_000_000, 3).expect("valid bounds");
    let mut batch = [[0u8; FRAME_LEN]; BATCH];
    let mut total = Duration::ZERO;
    let mut cursor = 0;
    let mut left = packets;
    let mut last = Instant::now();
    while left > 0 {
        let n = BATCH
            .min(templates.len() - cursor)
            .min(left.min(BATCH as u64) as usize);
        let frames = &mut batch[..n];
        frames.copy_from_slice(&templates[cursor..cursor + n]);
        match work.as_deref_mut() {
            Some(work) => work.batch(frames),
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
        cursor += n;
        if cursor == templates.len() {
            cursor = 0;
            if let Some(work) = work.as_deref_mut() {
                work.end_of_round();
                last = Instant::now();
            }
        }
    }
    (total, batch_ps)
}

/// One director's state, as a worker holds it.
pub struct Fixture {
    snapshot: Snapshot,
    neighbours: NeighbourTable,
    conns: ConnTable,
    stats: WorkerStats,
    templates: Templates,
    flows: usize,
}

impl Fixture {
    /// A director with `flows` possible clients and a table that holds them all.
    pub fn new(flows: usize) -> Self {
        let reals: Box<[RealServer]> = REALS
            .iter()
            .zip(0..)
            .map(|(&(addr, _), id)| RealServer {
                id,
                addr: *addr.ip(),
                port: addr.port(),
                failed: false,
            })
            .collect();
        let vip = Vip {
            proto: PROTO_TCP,
            addr: *VIP.ip(),
            port: VIP.port(),
        };
        let dests: Box<[Dest]> = reals.iter().map(|r| Dest::new(r.addr, r.port, 1)).collect();
        let service = Service {
            id: 0,
            vip,
            scheduler: Scheduler::new(SchedulerKind::RoundRobin, &dests, Flags::default()),
            dests,
            reals,
            persistence: None,
        };
        let snapshot = Snapshot {
            external: Interface {
                ifindex: EXT_IF,
                mac: EXT_MAC,
            },
            internal: Interface {
                ifindex: INT_IF,
                mac: INT_MAC,
            },
            timeouts: Default::default(),
            services: [(vip, service)].into_iter().collect(),
        };
        let connected = |ifindex, dst| Route {
            ifindex,
            dst,
            prefix_len: 24,
            gateway: None,
        };
        let neighbour = |ifindex, addr, mac| Neighbour {
            ifindex,
            addr,
            mac,
            state: nud::REACHABLE,
        };
        let clients = (0..flows.min(CLIENTS)).map(|i| {
            let c = client(i);
            neighbour(EXT_IF, *c.ip(), client_mac(i))
        });
        let reals = REALS
            .iter()
            .map(|(addr, mac)| neighbour(INT_IF, *addr.ip(), *mac));
        let neighbours = NeighbourTable::new(
            vec![
                connected(EXT_IF, Ipv4Addr::new(198, 18, 0, 0)),
                connected(INT_IF, Ipv4Addr::new(198, 19, 0, 0)),
            ],
            clients.chain(reals).collect(),
        );
        Fixture {
            snapshot,
            neighbours,
            conns: ConnTable::with_capacity(flows),
            stats: WorkerStats::default(),
            templates: Templates::new(8, 0),
            flows,
        }
    }

    /// One template frame per flow for `case`, after the untimed handshakes it needs.
    fn templates(&mut self, case: Case) -> Result<Vec<Frame>> {
        (0..self.flows)
            .map(|i| {
                let (c, mac) = (client(i), client_mac(i));
                let syn = tcp_frame(mac, EXT_MAC, c, VIP, TcpFlags::SYN);
                if case == Case::New {
                    return Ok(syn);
                }
                let mut f = syn;
                self.forward(&mut f, Side::External)?;
                let real = rewritten_destination(&f)?;
                let real_mac = REALS
                    .iter()
                    .find(|(addr, _)| *addr == real)
                    .context("scheduled an unknown real server")?
                    .1;
                let mut f = tcp_frame(real_mac, INT_MAC, real, c, TcpFlags::SYN | TcpFlags::ACK);
                self.forward(&mut f, Side::Internal)?;
                let ack = tcp_frame(mac, EXT_MAC, c, VIP, TcpFlags::ACK);
                let mut f = ack;
                self.forward(&mut f, Side::External)?;
                Ok(match case {
                    Case::Established => ack,
                    _ => tcp_frame(real_mac, INT_MAC, real, c, TcpFlags::ACK),
                })
            })
            .collect()
    }

    /// Processes a set-up frame, which must be forwarded.
    fn forward(&mut self, frame: &mut Frame, from: Side) -> Result<()> {
        let env = Env {
            config: &self.snapshot,
            neighbours: &self.neighbours,
            now_ms: NOW_MS,
            workers: &[],
            templates: &self.templates,
            overload: &[],
        };
        match process(frame, from, &env, &mut self.conns, &self.stats) {
            Verdict::Forward(_) => Ok(()),
            other => bail!("set-up frame from {from:?} not forwarded: {other:?}"),
        }
    }
}

/// The client endpoint of flow `i`.
fn client(i: usize) -> SocketAddrV4 {
    let host = FIRST_CLIENT + (i % CLIENTS) as u8;
    let port = FIRST_PORT + (i / CLIENTS) as u16;
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, host), port)
}

fn client_mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0xc0, (i % CLIENTS) as u8]
}

/// A 60-byte Ethernet/IPv4/TCP frame with valid checksums, no options and no payload.
fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: TcpFlags,
) -> Frame {
    const IP_LEN: usize = 20 + 20;
    let mut frame = [0u8; FRAME_LEN];
    let mut ethernet = EthernetFrame::new_unchecked(&mut frame[..]);
    ethernet.set_dst_addr(EthernetAddress(dst_mac));
    ethernet.set_src_addr(EthernetAddress(src_mac));
    ethernet.set_ethertype(EtherType::Ipv4);
    let mut ip = Ipv4Packet::new_unchecked(&mut ethernet.payload_mut()[..IP_LEN]);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len(IP_LEN as u16);
    ip.set_ident(0x1234);
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::Tcp);
    ip.set_src_addr(*src.ip());
    ip.set_dst_addr(*dst.ip());
    ip.fill_checksum();
    let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
    tcp.set_src_port(src.port());
    tcp.set_dst_port(dst.port());
    tcp.set_seq_number(0x0100_0000);
    tcp.set_ack_number(if flags.ack() { 0x0200_0000 } else { 0 });
    tcp.set_header_len(20);
    tcp.set_flags(flags);
    tcp.set_window_len(65_535);
    tcp.fill_checksum(*src.ip(), *dst.ip());
    frame
}

/// Destination address and port of a frame (after DNAT: the real server's).
fn rewritten_destination(frame: &Frame) -> Result<SocketAddrV4> {
    let ethernet = EthernetFrame::new_checked(&frame[..])?;
    let ip = Ipv4Packet::new_checked(ethernet.payload())?;
    let tcp = TcpPacket::new_checked(ip.payload())?;
    Ok(SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()))
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
    use xvs_dataplane::stats::DropReason;

    /// The `--smoke` configuration: every frame of every case forwarded, figures positive.
    #[test]
    fn smoke_forwards_everything() {
        for &case in Kind::All.cases() {
            let report = measure(case, SMOKE_PACKETS, Fixture::new(DEFAULT_FLOWS)).unwrap();
            report.check().unwrap();
            assert_eq!(report.not_forwarded, 0, "{case}");
            assert!(report.ns_per_packet() > 0.0, "{case}");
            assert_eq!(
                report.batch_ps.len(),
                SMOKE_PACKETS.div_ceil(BATCH as u64),
                "{case}: one sample per batch"
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
    fn frames_and_clients_are_well_formed() {
        let f = tcp_frame(client_mac(0), EXT_MAC, client(0), VIP, TcpFlags::SYN);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(client(64 + 2), "198.18.0.12:1025".parse().unwrap());
        assert_eq!(client(MAX_FLOWS - 1), "198.18.0.73:65535".parse().unwrap());
        assert_eq!(thousands(5_000_000), "5,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(parse_packets("5_000_000"), Ok(5_000_000));
        assert!(parse_flows("0").is_err() && parse_flows(&(MAX_FLOWS + 1).to_string()).is_err());
    }
}
