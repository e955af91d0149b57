//! The director the hot-path benchmarks drive: one worker's state and the frames of its flows.
//!
//! The director is that of the golden tests: one TCP service 198.18.0.129:80, rr over the reals
//! 198.19.0.148:80 and 198.19.0.137:80; external interface ifindex 2, internal ifindex 3;
//! connected routes 198.18.0.0/24 (2) and 198.19.0.0/24 (3) with a neighbour entry for every
//! client and real. Flow `i` is client 198.18.0.(10 + i % 64), port 1024 + i / 64. Frames are
//! 60 bytes (64 on the wire): Ethernet, IPv4 without options, TCP without options or payload,
//! padded; built with the dataplane's own wire views.
//!
//! Three traffic patterns ([`Case`]), each visiting the flows round-robin:
//! - `new`: the SYN of a flow the table does not hold (a schedule and an insert per packet).
//!   After each round over the flows the table is emptied ([`Fixture::end_of_round`]), a step
//!   the benchmarks leave out of their figures.
//! - `established`: an ACK from the client of an ESTABLISHED flow (handshake done untimed).
//! - `reply`: an ACK from the real server of an ESTABLISHED flow.
//!
//! [`process`] rewrites frames in place, so each packet is first restored from its template:
//! [`Replay`] copies the next batch of templates into a batch buffer, and
//! [`Fixture::process_batch`] runs it. `xvs-bench process`, the criterion benches
//! (`bench/benches/process.rs`) and the instruction counts (`bench/callgrind.sh`) share both.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::conntrack::ConnTable;
use xvs_dataplane::neigh::{nud, Neighbour, NeighbourTable, Route};
use xvs_dataplane::persist::{Templates, Templates6};
use xvs_dataplane::process::{process, process_batch, Env, Side, Verdict};
use xvs_dataplane::snapshot::{Interface, Method, RealServer, Service, Snapshot, Vip, PROTO_TCP};
use xvs_dataplane::stats::WorkerStats;
use xvs_dataplane::wire::{
    EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket,
};
use xvs_scheduler::{Dest, Flags, Scheduler, SchedulerKind};

/// Frames per batch (a typical AF_XDP receive batch).
pub const BATCH: usize = 64;
/// Bytes per frame (64 on the wire with the FCS).
pub const FRAME_LEN: usize = 60;
/// One frame's bytes.
pub type Frame = [u8; FRAME_LEN];

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

/// One benchmarked traffic pattern (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    New,
    Established,
    Reply,
}

impl Case {
    /// Every case, in the order the benchmarks report them.
    pub const ALL: [Case; 3] = [Case::New, Case::Established, Case::Reply];

    /// The side the case's frames arrive on.
    pub fn ingress(self) -> Side {
        match self {
            Case::New | Case::Established => Side::External,
            Case::Reply => Side::Internal,
        }
    }

    /// The side they must leave by.
    pub fn egress(self) -> Side {
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

/// Frames of a batch whose verdict was not the expected `Forward`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Misses {
    pub count: u64,
    pub first: Option<Verdict>,
}

impl Misses {
    /// Adds `other`'s misses (keeping the earliest first verdict).
    pub fn add(&mut self, other: Misses) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

/// One director's state, as a worker holds it.
pub struct Fixture {
    pub(crate) snapshot: Snapshot,
    pub(crate) neighbours: NeighbourTable,
    pub(crate) conns: ConnTable,
    pub(crate) stats: WorkerStats,
    pub(crate) templates: Templates,
    pub(crate) templates6: Templates6,
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
                addr: (*addr.ip()).into(),
                port: addr.port(),
                method: Method::Masq,
                failed: false,
            })
            .collect();
        let vip = Vip {
            proto: PROTO_TCP,
            addr: (*VIP.ip()).into(),
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
            max_conns: 0,
            local_addrs: Box::default(),
        };
        let snapshot = Snapshot {
            external: Interface {
                ifindex: EXT_IF,
                mac: EXT_MAC,
                addr: Ipv4Addr::new(198, 18, 0, 129),
                addr6: None,
                mtu: 1500,
            },
            internal: Interface {
                ifindex: INT_IF,
                mac: INT_MAC,
                addr: Ipv4Addr::new(198, 19, 0, 152),
                addr6: None,
                mtu: 1500,
            },
            timeouts: Default::default(),
            services: [(vip, service)].into_iter().collect(),
            vip_addrs: vec![*VIP.ip()],
            vip_addrs6: Vec::new(),
            local_addrs: Vec::new(),
            local_addrs6: Vec::new(),
            sloppy_tcp: false,
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
            templates6: Templates6::new(8, 0),
            flows,
        }
    }

    /// One template frame per flow for `case`, after the untimed handshakes it needs.
    pub fn templates(&mut self, case: Case) -> Result<Vec<Frame>> {
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
            templates6: &self.templates6,
            overload: &[],
        };
        match process(frame, from, &env, &mut self.conns, &self.stats) {
            Verdict::Forward(_) => Ok(()),
            other => bail!("set-up frame from {from:?} not forwarded: {other:?}"),
        }
    }

    /// Distinct flows, visited round-robin.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// Connections the table holds now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Runs `frames` (restored `case` frames) through
    /// [`xvs_dataplane::process::process_batch`] (parse, prefetch where the table is large,
    /// then process each), as a worker runs a receive batch, and counts those not forwarded
    /// where `case` says. Never inlined, so that callgrind can count the instructions spent in
    /// it alone (`--toggle-collect`).
    #[inline(never)]
    pub fn process_batch(&mut self, case: Case, frames: &mut [Frame]) -> Misses {
        let env = Env {
            config: &self.snapshot,
            neighbours: &self.neighbours,
            now_ms: NOW_MS,
            workers: &[],
            templates: &self.templates,
            templates6: &self.templates6,
            overload: &[],
        };
        let (from, expect) = (case.ingress(), Verdict::Forward(case.egress()));
        let mut misses = Misses::default();
        process_batch(
            frames,
            from,
            &env,
            &mut self.conns,
            &self.stats,
            |_, verdict| {
                if verdict != expect {
                    misses.count += 1;
                    misses.first.get_or_insert(verdict);
                }
            },
        );
        misses
    }

    /// Called between rounds over the flows: `new` forgets them all, so that the next round's
    /// SYNs open connections again.
    pub fn end_of_round(&mut self, case: Case) {
        if case == Case::New {
            self.conns
                .expire(u64::MAX, self.conns.capacity(), &self.stats);
            debug_assert!(self.conns.is_empty());
        }
    }

    /// Sends `packets` frames of `case` through batches of [`BATCH`], untimed, ending rounds
    /// as they come: the loop `xvs-bench process --iterations` runs under callgrind.
    pub fn run(&mut self, case: Case, replay: &mut Replay, packets: u64) -> Misses {
        let mut misses = Misses::default();
        let mut left = packets;
        while left > 0 {
            let (frames, round_done) = replay.next_batch(left);
            left -= frames.len() as u64;
            misses.add(self.process_batch(case, frames));
            if round_done {
                self.end_of_round(case);
            }
        }
        misses
    }
}

/// Cycles through one template frame per flow, a batch at a time, restoring each frame
/// into a batch buffer ([`process`] rewrites frames in place).
pub struct Replay {
    templates: Vec<Frame>,
    cursor: usize,
    batch: [Frame; BATCH],
}

impl Replay {
    /// `templates` must not be empty.
    pub fn new(templates: Vec<Frame>) -> Self {
        assert!(!templates.is_empty(), "no frames to replay");
        Replay {
            templates,
            cursor: 0,
            batch: [[0; FRAME_LEN]; BATCH],
        }
    }

    /// Frames per round.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Never: see [`Replay::new`].
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The next batch: at most [`BATCH`] and `max` frames, fewer where the round over the
    /// flows ends (a batch never spans two rounds), copied from their templates. The flag
    /// says whether this batch ends a round.
    #[inline]
    pub fn next_batch(&mut self, max: u64) -> (&mut [Frame], bool) {
        let n = BATCH
            .min(self.templates.len() - self.cursor)
            .min(max.min(BATCH as u64) as usize);
        let frames = &mut self.batch[..n];
        frames.copy_from_slice(&self.templates[self.cursor..self.cursor + n]);
        self.cursor += n;
        let round_done = self.cursor == self.templates.len();
        if round_done {
            self.cursor = 0;
        }
        (frames, round_done)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_clients_are_well_formed() {
        let f = tcp_frame(client_mac(0), EXT_MAC, client(0), VIP, TcpFlags::SYN);
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
        assert_eq!(client(64 + 2), "198.18.0.12:1025".parse().unwrap());
        assert_eq!(client(MAX_FLOWS - 1), "198.18.0.73:65535".parse().unwrap());
    }

    /// `run` sends exactly the packets asked for, batches never span two rounds, and `new`
    /// empties the table at each round's end, so every SYN opens a connection.
    #[test]
    fn run_counts_packets_and_ends_rounds() {
        for &case in &Case::ALL {
            let mut fixture = Fixture::new(100);
            let mut replay = Replay::new(fixture.templates(case).unwrap());
            let before = fixture.stats.conns.get();
            let misses = fixture.run(case, &mut replay, 250);
            assert_eq!(misses, Misses::default(), "{case}");
            match case {
                // 2 full rounds forgotten, then 50 SYNs of the third.
                Case::New => assert_eq!(fixture.connections(), 50),
                _ => assert_eq!(fixture.stats.conns.get(), before, "{case}"),
            }
        }
        let mut replay = Replay::new(vec![[0; FRAME_LEN]; 100]);
        let sizes: Vec<_> = (0..4)
            .map(|_| {
                let (frames, done) = replay.next_batch(u64::MAX);
                (frames.len(), done)
            })
            .collect();
        assert_eq!(sizes, [(64, false), (36, true), (64, false), (36, true)]);
        assert_eq!(replay.next_batch(5).0.len(), 5);
    }
}
