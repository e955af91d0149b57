//! The XDP fast path (`fast_path` in bpf/xvs_xdp.c) against [`process`]: for every packet the
//! program may carry it must write exactly the bytes `process` writes, and it must leave every
//! other frame untouched for the workers.
//!
//! - `golden_fixtures_on_the_fast_path`: the golden table (common/golden_table.rs) runs through
//!   `process` as in `golden`; then every connection the table left that
//!   [`fastpath::may_carry`] allows is installed in the maps as a worker would, and each
//!   fixture's input is run once through the XDP instance of its side (`BPF_PROG_TEST_RUN`,
//!   not live: nothing is sent). Established segments without SYN, FIN or RST and UDP
//!   datagrams of installed flows must come out redirected and byte-for-byte equal to
//!   `process`'s output; everything else passed to the kernel untouched. The program's per-CPU
//!   traffic counters must add up to the packets and IP bytes it forwarded.
//! - `unusual_frames_of_installed_flows_stay_with_the_workers`: variants of established
//!   packets that `process` drops (malformed, bad IP checksum, TTL, options, fragments, ...)
//!   or that change a connection's state (SYN, FIN, RST), or whose next hop or egress the
//!   fast path may not use, are left untouched.
//! - `random_established_flows_match_process`: a property test over random flows (addresses
//!   in 198.18.0.0/15, ports, TTL, payload, TCP flags, UDP with or without checksum, wrong and
//!   partial TCP/UDP checksums, clients behind a gateway): the rewrite in both directions
//!   equals `process`'s, and a wrong IP header checksum leaves the frame alone.
//! - `ipv6_fixtures_on_the_fast_path`: IPv6 connections (NAT66 TCP and UDP, DR, FullNAT TCP
//!   and UDP, a client behind a gateway, a tunnelled one) opened through `process6` and
//!   installed; their established packets come out of the program byte-for-byte as `process6`
//!   writes them and as etherparse builds them (a UDP checksum computed to 0 sent as 0xffff),
//!   counted; the IPv6 packets the workers must see are left untouched.
//! - `random_established_ipv6_flows_match_process6`: the property test for IPv6 (addresses in
//!   2001:2::/48, NAT66, FullNAT and DR, traffic class and flow label, hop limit, wrong and
//!   partial checksums); a hop limit of 1 leaves the frame alone.
//!
//! The program and its maps need root (CAP_BPF, CAP_NET_ADMIN); without it each test says so
//! and passes, except under CI (`CI` set), where a skip is a failure. Each runs on a thread of its own in a fresh network namespace, where two
//! interfaces get the fixtures' ifindexes: the egress devmap and the test runs' ingress
//! ifindex must name existing interfaces.

mod common;
#[path = "common/golden_table.rs"]
mod golden_table;

use common::*;
use golden_table::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::process::Command;
use std::sync::Arc;
use xvs_dataplane::conntrack::Conn;
use xvs_dataplane::fastpath::{self, FastFamily, FastPath, FastPathMaps, FlowWriter, NextHopSync};
use xvs_dataplane::neigh::{KernelTables, Neighbour6, NeighbourTable};
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Encap, Method, RealId, ServiceId, Tunnel, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::{DropReason, TrafficTotals};
use xvs_dataplane::xsk::{Role, XdpProgram};

/// XDP actions (linux/bpf.h).
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const URG: u8 = 0x20;

// ---------------------------------------------------------------------------------------------
// A network namespace with the fixtures' interfaces, and the fast path in it
// ---------------------------------------------------------------------------------------------

fn is_root() -> bool {
    // Safety: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `test` on a thread of its own, in a fresh network namespace of that thread only, with
/// interfaces EXT_IF and INT_IF up; or skips it, saying why, when not root. The namespace and
/// its interfaces go with the thread.
fn in_fresh_netns(name: &str, test: impl FnOnce() + Send + 'static) {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name}: needs root, and CI must not skip it"
        );
        eprintln!("skipping {name}: needs root (BPF programs and maps, network namespaces)");
        return;
    }
    // A thread of our own: the test harness may run a test on the main thread, whose
    // namespace must not change.
    let run = std::thread::spawn(move || {
        // Safety: a plain system call; it moves this thread alone to a new namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        add_interfaces();
        test();
    });
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic);
    }
}

/// `ip` in this thread's namespace (a child inherits the namespace of the thread that forks).
fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?}: {e}"))
        .status
        .success()
}

/// Two interfaces with the ifindexes of the fixtures' external and internal sides: dummies, or
/// a veth pair where the kernel has no dummy driver. Nothing is ever sent on them.
fn add_interfaces() {
    let (ext, int) = ("xvs-ext", "xvs-int");
    let (ext_index, int_index) = (EXT_IF.to_string(), INT_IF.to_string());
    let dummies = ip(&["link", "add", ext, "index", &ext_index, "type", "dummy"])
        && ip(&["link", "add", int, "index", &int_index, "type", "dummy"]);
    if !dummies {
        eprintln!("no dummy interfaces here: a veth pair instead");
        let _ = ip(&["link", "del", ext]);
        assert!(
            ip(&[
                "link", "add", ext, "index", &ext_index, "type", "veth", "peer", "name", int,
                "index", &int_index,
            ]),
            "creating the test interfaces"
        );
    }
    for (name, index) in [(ext, EXT_IF), (int, INT_IF)] {
        assert!(ip(&["link", "set", name, "up"]), "ip link set {name} up");
        let c_name = CString::new(name).unwrap();
        // Safety: a valid C string. Unlike /sys (the mount namespace's view), the lookup sees
        // this thread's network namespace.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        assert_eq!(ifindex, index, "{name}");
    }
}

/// The fast path as xvsd sets it up: shared maps, both egresses open, one program instance
/// per side (loaded, not attached), a worker's flow writer and the neighbour thread's sync.
struct Rig {
    fast: Arc<FastPath>,
    external: XdpProgram,
    internal: XdpProgram,
    writer: FlowWriter,
    next_hops: NextHopSync,
}

impl Rig {
    fn new() -> Self {
        let maps = FastPathMaps::create(1024, 1024).expect("creating the fast path's maps");
        let fast = Arc::new(FastPath::new(maps, EXT_IF, INT_IF, 1));
        fast.set_egress(true, true)
            .expect("opening the external egress");
        fast.set_egress(false, true)
            .expect("opening the internal egress");
        let load = |ifindex, role| {
            XdpProgram::load(ifindex, role, Some(&fast.maps)).expect("loading the XDP program")
        };
        Rig {
            external: load(EXT_IF, Role::MatchDestination),
            internal: load(INT_IF, Role::MatchSource),
            writer: FlowWriter::new(Arc::clone(&fast)),
            next_hops: NextHopSync::new(Arc::clone(&fast)),
            fast,
        }
    }

    /// Installs every connection of `d` (both families) the fast path may carry, with `d`'s
    /// next hops, as the owning worker and the neighbour thread would. Returns the client
    /// endpoints (proto, CIP, cport) installed.
    fn install(&mut self, d: &Director) -> HashSet<(u8, IpAddr, u16)> {
        self.sync_next_hops(&d.neighbours);
        let mut installed = HashSet::new();
        self.install_table(d, d.conns.iter(), &mut installed);
        self.install_table(d, d.conns6.iter(), &mut installed);
        self.flush();
        installed
    }

    fn install_table<'c, A: FastFamily>(
        &mut self,
        d: &Director,
        conns: impl Iterator<Item = &'c Conn<A>>,
        installed: &mut HashSet<(u8, IpAddr, u16)>,
    ) {
        for conn in conns.filter(|c| fastpath::may_carry(*c)) {
            assert!(
                self.writer.install(conn, &d.config, &d.neighbours),
                "{conn:?}: nothing to install"
            );
            installed.insert((conn.proto, conn.caddr.into(), conn.cport));
        }
    }

    fn remove<A: FastFamily>(&mut self, conn: &Conn<A>) {
        self.writer.remove(conn);
        self.flush();
    }

    fn flush(&mut self) {
        assert_eq!(self.writer.flush(), 0, "the flows map refused an install");
    }

    fn sync_next_hops(&mut self, neighbours: &NeighbourTable) {
        self.next_hops
            .sync(neighbours)
            .expect("writing the next hops");
    }

    /// Runs the instance of side `from` once on `frame`: its action and the frame it left.
    fn run(&self, frame: &[u8], from: Side) -> (u32, Vec<u8>) {
        let (program, ifindex) = match from {
            Side::External => (&self.external, EXT_IF),
            Side::Internal => (&self.internal, INT_IF),
        };
        program.test_run(frame, ifindex).expect("BPF_PROG_TEST_RUN")
    }
}

/// Asserts that the program left `frame` alone: passed to the kernel (no endpoint is steered
/// to a socket in these tests), unmodified.
fn assert_left_alone(rig: &Rig, frame: &[u8], from: Side, what: &str) {
    let (action, out) = rig.run(frame, from);
    assert_eq!(action, XDP_PASS, "{what}: must be left to the workers");
    assert_frame_eq(&out, frame, &format!("{what} (left untouched)"));
}

// ---------------------------------------------------------------------------------------------
// Frame helpers (offsets of frames without VLAN tag or IP options: common's IP and L4_AT)
// ---------------------------------------------------------------------------------------------

fn u16_at(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

fn ip_addr_at(frame: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3])
}

/// Offset of the TCP/UDP checksum field.
fn l4_checksum_at(frame: &[u8]) -> usize {
    L4_AT + if frame[IP + 9] == PROTO_TCP { 16 } else { 6 }
}

/// The partial checksum a sender with offload leaves: the folded pseudo-header sum.
fn partial_checksum(frame: &[u8]) -> u16 {
    let ip = &frame[IP..];
    let len = u16_at(ip, 2) - 20;
    !internet_checksum(&[&ip[12..20], &[0, ip[9]], &len.to_be_bytes()])
}

fn has_partial_checksum(frame: &[u8]) -> bool {
    let field = u16_at(frame, l4_checksum_at(frame));
    field != 0 && field == partial_checksum(frame)
}

/// Sets URG and the urgent pointer of a TCP frame, with a checksum computed afresh.
fn with_urgent(mut frame: Vec<u8>, pointer: u16) -> Vec<u8> {
    frame[L4_AT + 13] |= URG;
    frame[L4_AT + 18..L4_AT + 20].copy_from_slice(&pointer.to_be_bytes());
    let (sum, _) = l4_sum(&frame[IP..], true);
    frame[L4_AT + 16..L4_AT + 18].copy_from_slice(&(!sum).to_be_bytes());
    frame
}

fn other(side: Side) -> Side {
    match side {
        Side::External => Side::Internal,
        Side::Internal => Side::External,
    }
}

// ---------------------------------------------------------------------------------------------
// Direct routing on the fast path
// ---------------------------------------------------------------------------------------------

/// Direct-routed flows: once installed, their requests leave the program exactly as `process`
/// sends them (the IP packet untouched, the real server's MAC), only the request direction is
/// installed (a packet from RIP:rport stays with the workers, which drop it), and a FIN still
/// goes to the workers.
#[test]
fn direct_routed_requests_on_the_fast_path() {
    in_fresh_netns("direct_routed_requests_on_the_fast_path", || {
        let config = snapshot_with([
            service_by(Method::Route, 0, PROTO_TCP, 80, &[(0, REAL_148, 80, 1)]),
            service_by(Method::Route, 1, PROTO_UDP, 53, &[(1, REAL_137, 53, 1)]),
        ]);
        let mut d = Director::from_parts(config, NeighbourTable::new(routes(), neighbours()), 64);
        let c = |port| at(CLIENT, port);
        let (vip_80, vip_53) = (at(VIP, 80), at(VIP, 53));
        for (packet, description) in [
            (Packet::tcp(c(41000), vip_80, SYN, 1, 0), "SYN"),
            (Packet::tcp(c(41000), vip_80, ACK, 2, 1), "ACK"),
            (
                Packet::udp(c(41001), vip_53).with_payload(b"q"),
                "first datagram",
            ),
        ] {
            let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
            assert_eq!(
                d.process(&mut frame, Side::External),
                Verdict::Forward(Side::Internal),
                "{description}"
            );
        }
        let mut rig = Rig::new();
        assert_eq!(rig.install(&d).len(), 2);

        let data = Packet::tcp(c(41000), vip_80, PSH | ACK, 2, 1).with_payload(b"GET /");
        let datagram = Packet::udp(c(41001), vip_53).with_payload(b"again");
        for (packet, mac) in [(&data, REAL_148_MAC), (&datagram, REAL_137_MAC)] {
            let input = packet.frame(CLIENT_MAC, EXT_MAC);
            let (action, out) = rig.run(&input, Side::External);
            assert_eq!(action, XDP_REDIRECT);
            let expected = packet.frame(INT_MAC, mac);
            assert_frame_eq(&out, &expected, "direct routing on the fast path");
            let mut by_process = input.clone();
            d.process(&mut by_process, Side::External);
            assert_frame_eq(&out, &by_process, "the fast path as process");
        }
        // No reply entry: a packet from RIP:rport to the client is the workers' to drop.
        let from_real = Packet::tcp(at(REAL_148, 80), c(41000), ACK, 1, 7);
        assert_left_alone(
            &rig,
            &from_real.frame(REAL_148_MAC, INT_MAC),
            Side::Internal,
            "a packet from a DR real server's RIP:rport",
        );
        // FIN still goes to the worker.
        let fin = Packet::tcp(c(41000), vip_80, FIN | ACK, 7, 1);
        assert_left_alone(
            &rig,
            &fin.frame(CLIENT_MAC, EXT_MAC),
            Side::External,
            "a DR FIN",
        );
    });
}

/// Tunnels without checksums: once installed, their requests leave the program wrapped
/// exactly as `process` wraps them (ipip, GUE, GRE; a short frame's padding left out); a
/// packet too big for the tunnel stays with the workers (which answer it with ICMP), and a
/// tunnel with a checksum is not installed.
#[test]
fn tunnelled_requests_on_the_fast_path() {
    in_fresh_netns("tunnelled_requests_on_the_fast_path", || {
        let tunnels = [
            (Encap::Ipip, 0, 41000),
            (Encap::Gue, 6080, 42000),
            (Encap::Gre, 0, 43000),
        ];
        for (encap, port, cport) in tunnels {
            let tunnel = Tunnel {
                encap,
                port,
                checksum: false,
            };
            let config = snapshot_with([
                service_by(
                    Method::Tunnel(tunnel),
                    0,
                    PROTO_TCP,
                    80,
                    &[(0, REAL_148, 80, 1)],
                ),
                service_by(
                    Method::Tunnel(Tunnel {
                        checksum: true,
                        ..tunnel
                    }),
                    1,
                    PROTO_UDP,
                    53,
                    &[(1, REAL_137, 53, 1)],
                ),
            ]);
            let mut d =
                Director::from_parts(config, NeighbourTable::new(routes(), neighbours()), 64);
            let c = |port| at(CLIENT, port);
            let vip_80 = at(VIP, 80);
            for packet in [
                Packet::tcp(c(cport), vip_80, SYN, 1, 0),
                Packet::tcp(c(cport), vip_80, ACK, 2, 1),
                Packet::udp(c(cport), at(VIP, 53)).with_payload(b"q"),
            ] {
                let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
                assert_eq!(
                    d.process(&mut frame, Side::External),
                    Verdict::Forward(Side::Internal),
                    "{encap:?}"
                );
            }
            let mut rig = Rig::new();
            // The TCP flow only: the checksummed tunnel stays with the workers.
            assert_eq!(rig.install(&d).len(), 1, "{encap:?}");
            for (packet, what) in [
                (
                    Packet::tcp(c(cport), vip_80, PSH | ACK, 2, 1).with_payload(b"GET /"),
                    "data",
                ),
                (Packet::tcp(c(cport), vip_80, ACK, 7, 1), "a short frame"),
            ] {
                let mut input = packet.frame(CLIENT_MAC, EXT_MAC);
                // Ethernet's minimum: 60 bytes, padded.
                input.resize(input.len().max(60), 0);
                let (action, out) = rig.run(&input, Side::External);
                assert_eq!(action, XDP_REDIRECT, "{encap:?} {what}");
                let mut by_process = input.clone();
                d.process(&mut by_process, Side::External);
                assert_frame_eq(&out, &by_process, &format!("{encap:?} {what}: as process"));
            }
            let big = Packet::tcp(c(cport), vip_80, ACK, 9, 1).with_payload(&[1; 1460]);
            assert_left_alone(
                &rig,
                &big.frame(CLIENT_MAC, EXT_MAC),
                Side::External,
                "too big for the tunnel",
            );
            let udp = Packet::udp(c(cport), at(VIP, 53)).with_payload(b"again");
            assert_left_alone(
                &rig,
                &udp.frame(CLIENT_MAC, EXT_MAC),
                Side::External,
                "a checksummed tunnel's datagram",
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The golden table on the fast path
// ---------------------------------------------------------------------------------------------

/// Whether the program must forward fixture `f`: `process` forwards it, it is TCP without
/// SYN, FIN or RST or it is UDP, its TCP/UDP checksum is not partial, and its connection was
/// installed.
fn takes_fast_path(f: &Fixture, installed: &HashSet<(u8, IpAddr, u16)>) -> bool {
    let input = &f.input;
    if !matches!(f.verdict, Verdict::Forward(_)) {
        return false;
    }
    let proto = input[IP + 9];
    let state_change = proto == PROTO_TCP && input[L4_AT + 13] & (SYN | FIN | RST) != 0;
    let client = match f.from {
        Side::External => (
            proto,
            ip_addr_at(input, IP + 12).into(),
            u16_at(input, L4_AT),
        ),
        Side::Internal => (
            proto,
            ip_addr_at(input, IP + 16).into(),
            u16_at(input, L4_AT + 2),
        ),
    };
    !state_change && !has_partial_checksum(input) && installed.contains(&client)
}

#[test]
fn golden_fixtures_on_the_fast_path() {
    in_fresh_netns("golden_fixtures_on_the_fast_path", || {
        let (director, fixtures, outputs) = run_table();
        let mut rig = Rig::new();
        let installed = rig.install(&director);
        // The table leaves TCP 40000 (-> .148:80), 40002 (-> .148:8000) and the remote
        // client's 50000 established, and two UDP flows.
        assert_eq!(installed.len(), 5, "installed: {installed:?}");

        let mut services = [TrafficTotals::default(); 4];
        let mut reals = [TrafficTotals::default(); 7];
        let mut fast = Vec::new();
        for (f, output) in fixtures.iter().zip(&outputs) {
            if !takes_fast_path(f, &installed) {
                assert_left_alone(&rig, &f.input, f.from, f.description);
                continue;
            }
            let (action, out) = rig.run(&f.input, f.from);
            assert_eq!(
                action, XDP_REDIRECT,
                "{}: must be redirected",
                f.description
            );
            assert_frame_eq(&out, output, &format!("{} (fast path)", f.description));
            fast.push(f);

            // What the program must have counted: the packet and its IPv4 total length.
            let proto = f.input[IP + 9];
            let ip_len = u64::from(u16_at(&f.input, IP + 2));
            let (s, r) = match f.from {
                Side::External => director.real_at(
                    proto,
                    ip_addr_at(output, IP + 16),
                    u16_at(output, L4_AT + 2),
                ),
                Side::Internal => director.real_at(
                    proto,
                    ip_addr_at(&f.input, IP + 12),
                    u16_at(&f.input, L4_AT),
                ),
            };
            for t in [&mut services[s as usize], &mut reals[r as usize]] {
                match f.from {
                    Side::External => {
                        t.inpkts += 1;
                        t.inbytes += ip_len;
                    }
                    Side::Internal => {
                        t.outpkts += 1;
                        t.outbytes += ip_len;
                    }
                }
            }
        }

        eprintln!(
            "{} of {} golden fixtures took the fast path:",
            fast.len(),
            fixtures.len()
        );
        for f in &fast {
            eprintln!("  {:?}: {}", f.from, f.description);
        }
        // By hand: 40000's ACK, request and response; the 4 UDP datagrams (2 queries, 2
        // answers); the remote client's ACK and data; 40002's ACK, data and reply.
        assert_eq!(fast.len(), 12);
        for (proto, from) in [
            (PROTO_TCP, Side::External),
            (PROTO_TCP, Side::Internal),
            (PROTO_UDP, Side::External),
            (PROTO_UDP, Side::Internal),
        ] {
            assert!(
                fast.iter()
                    .any(|f| f.input[IP + 9] == proto && f.from == from),
                "no fast-path fixture of protocol {proto} from {from:?}"
            );
        }

        // The program's own count of fast-path frames (rx queue 0 of each side) agrees.
        let queue = |p: &XdpProgram| p.queue_counters(0).expect("reading the queue counters");
        let (ext, int) = (queue(&rig.external), queue(&rig.internal));
        assert_eq!(ext.fast + int.fast, 12);
        assert_eq!(ext.passed + int.passed, fixtures.len() as u64 - 12);

        // The per-CPU traffic counters, summed, are exactly what the program forwarded.
        let counted = |t: TrafficTotals| (t.conns, t.inpkts, t.outpkts, t.inbytes, t.outbytes);
        for (id, expected) in services.iter().enumerate() {
            let t = rig.fast.maps.service_traffic(id as ServiceId);
            assert_eq!(counted(t), counted(*expected), "service {id}");
        }
        for (id, expected) in reals.iter().enumerate() {
            let t = rig.fast.maps.real_traffic(id as RealId);
            assert_eq!(counted(t), counted(*expected), "real server {id}");
        }
        let http = rig.fast.maps.service_traffic(SVC_HTTP);
        // By hand: in, 40000's ACK (40) and request (69), the remote ACK (40); out, 40000's
        // response (78) and the remote data (67).
        assert_eq!(
            (http.inpkts, http.outpkts, http.inbytes, http.outbytes),
            (3, 2, 40 + 69 + 40, 78 + 67)
        );
    });
}

// ---------------------------------------------------------------------------------------------
// What the fast path must leave to the workers
// ---------------------------------------------------------------------------------------------

/// Why the workers must see a frame.
#[derive(Debug)]
enum Workers {
    /// `process` drops it for this reason (the fast path must not forward what they drop).
    Drop(DropReason),
    /// A segment that changes the connection's state: SYN, FIN or RST.
    StateChange,
    /// A partial TCP/UDP checksum (sender offload): they complete it over the whole segment.
    PartialChecksum,
}

/// A copy of `frame` with `f` applied.
fn edit(frame: &[u8], f: &dyn Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut frame = frame.to_vec();
    f(&mut frame);
    frame
}

/// Recomputes the IPv4 header checksum after an edit of the header.
fn fixed(mut frame: Vec<u8>) -> Vec<u8> {
    fix_ip_checksum(&mut frame);
    frame
}

#[test]
fn unusual_frames_of_installed_flows_stay_with_the_workers() {
    in_fresh_netns(
        "unusual_frames_of_installed_flows_stay_with_the_workers",
        || {
            let (mut director, _, _) = run_table();
            let mut rig = Rig::new();
            rig.install(&director);

            // Established packets of installed flows (40000 -> .148:80, UDP 5353 -> .148:53).
            let request = Packet::tcp(at(CLIENT, 40000), at(VIP, 80), PSH | ACK, 1030, 5040)
                .with_payload(b"more");
            let response = Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), PSH | ACK, 5040, 1034)
                .with_payload(b"more back");
            let query = Packet::udp(at(CLIENT, 5353), at(VIP, 53)).with_payload(b"again");
            let tcp_in = request.frame(CLIENT_MAC, EXT_MAC);
            let tcp_out = response.frame(REAL_148_MAC, INT_MAC);
            let udp_in = query.frame(CLIENT_MAC, EXT_MAC);
            // As they are, they take the fast path: each case below differs by its oddity alone.
            for (frame, from) in [
                (&tcp_in, Side::External),
                (&tcp_out, Side::Internal),
                (&udp_in, Side::External),
            ] {
                let mut expected = frame.clone();
                let verdict = director.process(&mut expected, from);
                assert_eq!(verdict, Verdict::Forward(other(from)));
                let (action, out) = rig.run(frame, from);
                assert_eq!(action, XDP_REDIRECT);
                assert_frame_eq(&out, &expected, "established packet");
            }

            let ext = CLIENT_MAC;
            let partial = |frame: &Vec<u8>| {
                edit(frame, &|f| {
                    let at = l4_checksum_at(f);
                    let sum = partial_checksum(f);
                    f[at..at + 2].copy_from_slice(&sum.to_be_bytes());
                })
            };
            let vlan_tagged = {
                let mut f = tcp_in.clone();
                f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
                f
            };
            use Workers::{PartialChecksum, StateChange};
            let cases: Vec<(&str, Side, Vec<u8>, Workers)> = vec![
                (
                    "TTL 1",
                    Side::External,
                    request.clone().with_ttl(1).frame(ext, EXT_MAC),
                    Workers::Drop(DropReason::TtlExceeded),
                ),
                (
                    "TTL 0",
                    Side::Internal,
                    response.clone().with_ttl(0).frame(REAL_148_MAC, INT_MAC),
                    Workers::Drop(DropReason::TtlExceeded),
                ),
                (
                    "bad IPv4 header checksum",
                    Side::External,
                    edit(&tcp_in, &|f| f[IP + 10] ^= 0x40),
                    Workers::Drop(DropReason::BadIpChecksum),
                ),
                (
                    "IPv4 options",
                    Side::External,
                    request
                        .clone()
                        .with_options(&[1, 1, 1, 0])
                        .frame(ext, EXT_MAC),
                    Workers::Drop(DropReason::IpOptions),
                ),
                (
                    "first fragment",
                    Side::External,
                    request.clone().with_fragment(true, 0).frame(ext, EXT_MAC),
                    Workers::Drop(DropReason::Fragment),
                ),
                (
                    "last fragment",
                    Side::Internal,
                    response
                        .clone()
                        .with_fragment(false, 185)
                        .frame(REAL_148_MAC, INT_MAC),
                    Workers::Drop(DropReason::Fragment),
                ),
                (
                    "SYN",
                    Side::External,
                    Packet::tcp(at(CLIENT, 40000), at(VIP, 80), SYN, 1, 0).frame(ext, EXT_MAC),
                    StateChange,
                ),
                (
                    "FIN",
                    Side::Internal,
                    edit(&tcp_out, &|f| f[L4_AT + 13] |= FIN),
                    StateChange,
                ),
                (
                    "RST",
                    Side::External,
                    edit(&tcp_in, &|f| f[L4_AT + 13] = RST),
                    StateChange,
                ),
                (
                    "partial TCP checksum",
                    Side::External,
                    partial(&tcp_in),
                    PartialChecksum,
                ),
                (
                    "partial UDP checksum",
                    Side::External,
                    partial(&udp_in),
                    PartialChecksum,
                ),
                (
                    "TCP data offset 4 (< 5)",
                    Side::External,
                    edit(&tcp_in, &|f| f[L4_AT + 12] = 0x40),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "TCP data offset 15 in a 24-byte segment",
                    Side::External,
                    edit(&tcp_in, &|f| f[L4_AT + 12] = 0xf0),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "UDP length 7 (< 8)",
                    Side::External,
                    edit(&udp_in, &|f| {
                        f[L4_AT + 4..L4_AT + 6].copy_from_slice(&7u16.to_be_bytes())
                    }),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "UDP length beyond the IP packet",
                    Side::External,
                    edit(&udp_in, &|f| f[L4_AT + 5] += 1),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "IP version 6 in an IPv4 frame",
                    Side::External,
                    fixed(edit(&tcp_in, &|f| f[IP] = 0x65)),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "IPv4 total length one byte beyond the frame",
                    Side::External,
                    fixed(edit(&tcp_in, &|f| f[IP + 3] += 1)),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "IPv4 total length ending inside the TCP header",
                    Side::External,
                    fixed(edit(&tcp_in, &|f| f[IP + 3] = 20 + 19)),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "frame cut inside the TCP header",
                    Side::External,
                    tcp_in[..L4_AT + 10].to_vec(),
                    Workers::Drop(DropReason::Malformed),
                ),
                (
                    "VLAN-tagged",
                    Side::External,
                    vlan_tagged,
                    Workers::Drop(DropReason::NotIpv4),
                ),
            ];
            for (what, from, frame, workers) in &cases {
                if let Workers::Drop(reason) = workers {
                    let mut copy = frame.clone();
                    let verdict = Director::new().process(&mut copy, *from);
                    assert_eq!(verdict, Verdict::Drop(*reason), "{what}: process");
                }
                assert_left_alone(&rig, frame, *from, &format!("{what} ({workers:?})"));
            }

            let without_real = NeighbourTable::new(
                routes(),
                neighbours()
                    .into_iter()
                    .filter(|n| n.addr != REAL_148)
                    .collect(),
            );
            let conn = *director
                .conns
                .iter()
                .find(|c| c.caddr == CLIENT && c.cport == 40000)
                .unwrap();
            check_next_hop_egress_and_removal(
                &mut rig,
                (&tcp_in, &tcp_out),
                (&without_real, &director.neighbours),
                &conn,
            );
        },
    );
}

/// What an installed flow's established request `tcp_in` and response `tcp_out` must come
/// to, in either family: with no MAC for the real server (`without_real`, then `neighbours`
/// again) the requests wait for the workers to resolve it while the responses to the client
/// still take the fast path; with an egress closed to redirected frames the direction leaving
/// by it goes to the workers; once `conn` is removed, both directions do.
fn check_next_hop_egress_and_removal<A: FastFamily>(
    rig: &mut Rig,
    (tcp_in, tcp_out): (&[u8], &[u8]),
    (without_real, neighbours): (&NeighbourTable, &NeighbourTable),
    conn: &Conn<A>,
) {
    rig.sync_next_hops(without_real);
    assert_left_alone(rig, tcp_in, Side::External, "next hop without a MAC");
    assert_eq!(rig.run(tcp_out, Side::Internal).0, XDP_REDIRECT);
    rig.sync_next_hops(neighbours);
    assert_eq!(rig.run(tcp_in, Side::External).0, XDP_REDIRECT);

    rig.fast.set_egress(false, false).unwrap();
    assert_left_alone(rig, tcp_in, Side::External, "internal egress closed");
    assert_eq!(rig.run(tcp_out, Side::Internal).0, XDP_REDIRECT);
    rig.fast.set_egress(false, true).unwrap();
    rig.fast.set_egress(true, false).unwrap();
    assert_left_alone(rig, tcp_out, Side::Internal, "external egress closed");
    assert_eq!(rig.run(tcp_in, Side::External).0, XDP_REDIRECT);
    rig.fast.set_egress(true, true).unwrap();

    rig.remove(conn);
    assert_left_alone(rig, tcp_in, Side::External, "connection removed");
    assert_left_alone(rig, tcp_out, Side::Internal, "connection removed");
}

// ---------------------------------------------------------------------------------------------
// Random established flows
// ---------------------------------------------------------------------------------------------

/// What a case does to the TCP/UDP checksum of its packets.
#[derive(Debug, Clone, Copy)]
enum L4Checksum {
    Valid,
    /// XORed with this (non-zero): forwarded still wrong, by both.
    Wrong(u16),
    /// Partial (sender offload): `process` completes it; the program leaves it to the workers.
    Partial,
}

fn l4_checksum() -> impl Strategy<Value = L4Checksum> {
    prop_oneof![
        3 => Just(L4Checksum::Valid),
        1 => (1u16..).prop_map(L4Checksum::Wrong),
        1 => Just(L4Checksum::Partial),
    ]
}

fn mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 5]>().prop_map(|m| [0x02, m[0], m[1], m[2], m[3], m[4]])
}

/// A TCP/UDP endpoint of one family as the property tests build their flows from it.
trait Endpoint: Socket + Clone + 'static {
    type Addr: Family + Ord + std::fmt::Debug;
    /// The family's share of the test network (RFC 2544's or RFC 5180's benchmarking range).
    const RANGE: (Self::Addr, u8);
    /// A host route's prefix length.
    const HOST_LEN: u8;
    const ANY: Self::Addr;

    fn at(addr: Self::Addr, port: u16) -> Self;
    fn addr(&self) -> Self::Addr;
    /// The neighbour table of these routes `(ifindex, dst, prefix_len, gateway)` and
    /// neighbours `(ifindex, addr, mac)`.
    fn table(routes: Routes<Self::Addr>, neighbours: Neighbours<Self::Addr>) -> NeighbourTable;
}

type Routes<A> = Vec<(u32, A, u8, Option<A>)>;
type Neighbours<A> = Vec<(u32, A, [u8; 6])>;

impl Endpoint for SocketAddrV4 {
    type Addr = Ipv4Addr;
    const RANGE: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 18, 0, 0), 15);
    const HOST_LEN: u8 = 32;
    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    fn at(addr: Ipv4Addr, port: u16) -> Self {
        at(addr, port)
    }

    fn addr(&self) -> Ipv4Addr {
        *self.ip()
    }

    fn table(routes: Routes<Ipv4Addr>, neighbours: Neighbours<Ipv4Addr>) -> NeighbourTable {
        NeighbourTable::new(
            routes
                .into_iter()
                .map(|(i, d, l, g)| route(i, d, l, g))
                .collect(),
            neighbours
                .into_iter()
                .map(|(i, a, m)| neighbour(i, a, m))
                .collect(),
        )
    }
}

impl Endpoint for SocketAddrV6 {
    type Addr = Ipv6Addr;
    const RANGE: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48);
    const HOST_LEN: u8 = 128;
    const ANY: Ipv6Addr = Ipv6Addr::UNSPECIFIED;

    fn at(addr: Ipv6Addr, port: u16) -> Self {
        at6(addr, port)
    }

    fn addr(&self) -> Ipv6Addr {
        *self.ip()
    }

    fn table(routes: Routes<Ipv6Addr>, neighbours: Neighbours<Ipv6Addr>) -> NeighbourTable {
        NeighbourTable::from(KernelTables {
            routes6: routes
                .into_iter()
                .map(|(i, d, l, g)| route6(i, d, l, g))
                .collect(),
            neighbours6: neighbours
                .into_iter()
                .map(|(i, a, m)| neighbour6(i, a, m))
                .collect(),
            ..KernelTables::default()
        })
    }
}

/// What a random flow of either family is between: its endpoints, hosts and protocol.
#[derive(Debug, Clone)]
struct Flow<S: Endpoint> {
    client: S,
    vip: S,
    real: S,
    /// The client is behind this router (a default route through it), else on the link.
    gateway: Option<S::Addr>,
    /// The client's, the real server's and the gateway's.
    macs: [[u8; 6]; 3],
    udp: bool,
}

/// A flow between endpoints of `endpoint` (ports from 1), with a gateway from `addr` or none.
fn flow<S: Endpoint, E: Strategy<Value = S>>(
    endpoint: impl Fn() -> E,
    addr: impl Strategy<Value = S::Addr>,
) -> impl Strategy<Value = Flow<S>> {
    (
        endpoint(),
        endpoint(),
        endpoint(),
        proptest::option::of(addr),
        [mac(), mac(), mac()],
        any::<bool>(),
    )
        .prop_map(|(client, vip, real, gateway, macs, udp)| Flow {
            client,
            vip,
            real,
            gateway,
            macs,
            udp,
        })
}

impl<S: Endpoint> Flow<S> {
    /// Whether the client, VIP, real server, FullNAT local address and gateway are distinct
    /// hosts.
    fn distinct_hosts(&self) -> bool {
        let mut hosts = vec![
            self.client.addr(),
            self.vip.addr(),
            self.real.addr(),
            S::Addr::LIP,
        ];
        hosts.extend(self.gateway);
        let n = hosts.len();
        hosts.sort();
        hosts.dedup();
        hosts.len() == n
    }

    fn proto(&self) -> u8 {
        if self.udp {
            PROTO_UDP
        } else {
            PROTO_TCP
        }
    }

    /// The MAC frames from the client arrive from: its own, or its router's.
    fn client_side_mac(&self) -> [u8; 6] {
        self.macs[if self.gateway.is_some() { 2 } else { 0 }]
    }

    /// A director with one service, VIP:vport -> RIP:rport by `method`, and routes covering
    /// the family's range on both sides (the client's through its gateway where it has one).
    fn director(&self, method: Method) -> Director {
        let (mut vip, mut svc) = service_by(
            method,
            0,
            self.proto(),
            self.vip.port(),
            &[(0, self.real.addr(), self.real.port(), 1)],
        );
        vip.addr = self.vip.addr().into();
        svc.vip = vip;
        let (range, range_len) = S::RANGE;
        let [client_mac, real_mac, gateway_mac] = self.macs;
        let mut routes = vec![(INT_IF, range, range_len, None)];
        let mut neighbours = vec![(INT_IF, self.real.addr(), real_mac)];
        match self.gateway {
            Some(gw) => {
                routes.push((EXT_IF, gw, S::HOST_LEN, None));
                routes.push((EXT_IF, S::ANY, 0, Some(gw)));
                neighbours.push((EXT_IF, gw, gateway_mac));
            }
            None => {
                routes.push((EXT_IF, range, range_len, None));
                neighbours.push((EXT_IF, self.client.addr(), client_mac));
            }
        }
        Director::from_parts(
            snapshot_with([(vip, svc)]),
            S::table(routes, neighbours),
            16,
        )
    }

    /// A packet of the flow arriving on `from` (`flags` for TCP), finished by `finish`, as a
    /// frame. A real server answers a FullNAT connection at LIP:1024, which a lone table's
    /// first FullNAT connection takes.
    fn frame(
        &self,
        from: Side,
        fullnat: bool,
        flags: u8,
        finish: impl FnOnce(Packet<S>) -> Packet<S>,
    ) -> Vec<u8> {
        let (src, dst, src_mac, dst_mac) = match from {
            Side::External => (self.client, self.vip, self.client_side_mac(), EXT_MAC),
            Side::Internal if fullnat => {
                (self.real, S::at(S::Addr::LIP, 1024), self.macs[1], INT_MAC)
            }
            Side::Internal => (self.real, self.client, self.macs[1], INT_MAC),
        };
        let packet = if self.udp {
            Packet::udp(src, dst)
        } else {
            Packet::tcp(src, dst, flags, 0x1000_0000, 0x2000_0000)
        };
        finish(packet).frame(src_mac, dst_mac)
    }

    /// Opens the connection in `d` as clients and servers do: SYN, SYN-ACK (when the real
    /// server's replies come back through the director), ACK; or one datagram. `frame` builds
    /// each packet, `process` is the family's, `first` the connection it left.
    fn establish<A: FastFamily>(
        &self,
        d: &mut Director,
        sees_replies: bool,
        frame: impl Fn(Side, u8) -> Vec<u8>,
        process: fn(&mut Director, &mut Vec<u8>, Side) -> Verdict,
        first: fn(&Director) -> Option<Conn<A>>,
    ) -> Result<Conn<A>, TestCaseError> {
        let mut opening = vec![(Side::External, SYN)];
        if !self.udp {
            if sees_replies {
                opening.push((Side::Internal, SYN | ACK));
            }
            opening.push((Side::External, ACK));
        }
        for (from, flags) in opening {
            let mut frame = frame(from, flags);
            prop_assert_eq!(process(d, &mut frame, from), Verdict::Forward(other(from)));
        }
        let conn = first(d).unwrap();
        prop_assert!(fastpath::may_carry(&conn), "{:?}", conn);
        Ok(conn)
    }
}

/// Runs `check` with `d`'s connections installed in the maps as a worker would, then removes
/// `conn`, whatever the outcome.
fn with_installed<A: FastFamily>(
    rig: &RefCell<Rig>,
    d: &mut Director,
    conn: &Conn<A>,
    check: impl FnOnce(&Rig, &mut Director) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    rig.borrow_mut().install(d);
    let result = check(&rig.borrow(), d);
    rig.borrow_mut().remove(conn);
    result
}

/// `input` through the program against `expected`, what `name` (`process` or `process6`)
/// made of it: with a partial checksum it is left to the workers (they complete it over the
/// whole segment), else it comes out redirected, byte for byte as `expected`.
fn check_rewrite(
    rig: &Rig,
    input: &[u8],
    from: Side,
    expected: &[u8],
    partial: bool,
    name: &str,
) -> Result<(), TestCaseError> {
    if partial {
        return check_passed(rig, input, from, "partial checksum");
    }
    let (action, out) = rig.run(input, from);
    prop_assert_eq!(action, XDP_REDIRECT, "{:?}", from);
    prop_assert!(
        out == expected,
        "{:?}: the XDP rewrite differs from {}()'s\n  xdp:{}\n  {}:{}",
        from,
        name,
        hex(&out),
        name,
        hex(expected)
    );
    Ok(())
}

/// `frame` through the program: passed to the kernel untouched (`what` says why).
fn check_passed(rig: &Rig, frame: &[u8], from: Side, what: &str) -> Result<(), TestCaseError> {
    let (action, out) = rig.run(frame, from);
    prop_assert_eq!(action, XDP_PASS, "{:?}: {}", from, what);
    prop_assert_eq!(out.as_slice(), frame);
    Ok(())
}

/// Runs `check` over 128 cases of `cases()`, on one rig in a fresh namespace.
fn run_cases<C: std::fmt::Debug + 'static, S: Strategy<Value = C> + 'static>(
    name: &'static str,
    cases: fn() -> S,
    check: fn(&RefCell<Rig>, &C) -> Result<(), TestCaseError>,
) {
    in_fresh_netns(name, move || {
        let rig = RefCell::new(Rig::new());
        let mut runner = TestRunner::new(Config {
            cases: 128,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&cases(), |case| check(&rig, &case)) {
            panic!("{e}");
        }
    });
}

#[derive(Debug, Clone)]
struct Case {
    flow: Flow<SocketAddrV4>,
    /// FullNAT (both endpoints translated, from [`LIP`]) rather than NAT.
    fullnat: bool,
    /// TCP: any of ACK, PSH, URG, ECE, CWR (never SYN, FIN, RST).
    flags: u8,
    urgent: u16,
    /// UDP: a checksum, or 0 ("none").
    udp_checksum: bool,
    l4_checksum: L4Checksum,
    ttl: u8,
    ident: u16,
    payload: Vec<u8>,
    /// XORed into the IP header checksum for the bad-header check: never 0 or 0xffff, so the
    /// header is always wrong (0x0000 and 0xffff are the same sum).
    ip_checksum_error: u16,
}

/// An address in 198.18.0.0/15 (RFC 2544's benchmarking range).
fn addr() -> impl Strategy<Value = Ipv4Addr> {
    (0u32..1 << 17).prop_map(|host| Ipv4Addr::from(0xc612_0000 | host))
}

fn endpoint() -> impl Strategy<Value = SocketAddrV4> {
    (addr(), 1u16..).prop_map(|(a, p)| SocketAddrV4::new(a, p))
}

fn case() -> impl Strategy<Value = Case> {
    (
        flow(endpoint, addr()),
        (
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            l4_checksum(),
            any::<bool>(),
        ),
        (
            2u8..=255,
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), 0..200),
            1u16..0xffff,
        ),
    )
        .prop_map(
            |(
                flow,
                (flags, urgent, udp_checksum, l4_checksum, fullnat),
                (ttl, ident, payload, ip_checksum_error),
            )| Case {
                flow,
                fullnat,
                flags: flags & (ACK | PSH | URG | ECE | CWR),
                urgent,
                udp_checksum,
                l4_checksum,
                ttl,
                ident,
                payload,
                ip_checksum_error,
            },
        )
        .prop_filter("distinct hosts", |c| c.flow.distinct_hosts())
}

impl Case {
    fn method(&self) -> Method {
        if self.fullnat {
            Method::FullNat
        } else {
            Method::Masq
        }
    }

    /// A packet of the flow arriving on `from` (`flags` for TCP), as a frame.
    fn frame(&self, from: Side, flags: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        self.flow.frame(from, self.fullnat, flags, |packet| Packet {
            ttl,
            ident: self.ident,
            payload: payload.to_vec(),
            ..packet
        })
    }

    /// The case's packet arriving on `from`, with its flags, URG, UDP and TCP/UDP checksum
    /// choices applied.
    fn test_frame(&self, from: Side) -> Vec<u8> {
        let mut frame = self.frame(from, self.flags & !URG, self.ttl, &self.payload);
        let udp = self.flow.udp;
        if udp && !self.udp_checksum {
            frame[L4_AT + 6..L4_AT + 8].fill(0);
            return frame;
        }
        if !udp && self.flags & URG != 0 {
            frame = with_urgent(frame, self.urgent);
        }
        let at = l4_checksum_at(&frame);
        match self.l4_checksum {
            L4Checksum::Valid => {}
            L4Checksum::Wrong(error) => {
                let wrong = u16_at(&frame, at) ^ error;
                frame[at..at + 2].copy_from_slice(&wrong.to_be_bytes());
            }
            L4Checksum::Partial => {
                let partial = partial_checksum(&frame);
                frame[at..at + 2].copy_from_slice(&partial.to_be_bytes());
            }
        }
        frame
    }
}

/// One case: the connection established in `process`'s table and installed in the maps, then
/// each direction's packet through both; a wrong IPv4 header checksum is left alone.
fn check_case(rig: &RefCell<Rig>, case: &Case) -> Result<(), TestCaseError> {
    let mut d = case.flow.director(case.method());
    let conn = case.flow.establish(
        &mut d,
        true,
        |from, flags| case.frame(from, flags, 64, &[]),
        |d, frame, from| d.process(frame, from),
        |d| d.conns.iter().next().copied(),
    )?;
    with_installed(rig, &mut d, &conn, |rig, d| {
        for from in [Side::External, Side::Internal] {
            let input = case.test_frame(from);
            let mut expected = input.clone();
            prop_assert_eq!(
                d.process(&mut expected, from),
                Verdict::Forward(other(from))
            );
            let partial = has_partial_checksum(&input);
            check_rewrite(rig, &input, from, &expected, partial, "process")?;

            let mut bad_header = input.clone();
            let wrong = u16_at(&bad_header, IP + 10) ^ case.ip_checksum_error;
            bad_header[IP + 10..IP + 12].copy_from_slice(&wrong.to_be_bytes());
            check_passed(rig, &bad_header, from, "bad IPv4 header checksum")?;
        }
        Ok(())
    })
}

#[test]
fn random_established_flows_match_process() {
    run_cases("random_established_flows_match_process", case, check_case);
}

// ---------------------------------------------------------------------------------------------
// IPv6 on the fast path
// ---------------------------------------------------------------------------------------------

/// Offset of a TCP/UDP header right behind the fixed IPv6 header.
const L4_AT6: usize = IP + 40;

// The IPv6 director: real server ids are the service ids.
const SVC6_WEB: ServiceId = 0; // TCP VIP6:80 -> 148:80 (NAT)
const SVC6_DNS: ServiceId = 1; // UDP VIP6:53 -> 148:5353 (NAT)
const SVC6_DR: ServiceId = 2; // TCP VIP6:443 -> 148:443 (DR)
const SVC6_FNAT: ServiceId = 3; // TCP VIP6:9000 -> 137:9090 (FullNAT from LIP6)
const SVC6_FNAT_UDP: ServiceId = 4; // UDP VIP6:5353 -> 137:53 (FullNAT from LIP6)
const SVC6_TUN: ServiceId = 5; // TCP VIP6:8443 -> 148 (ipip, no checksum): not carried
/// A client behind GATEWAY6.
const REMOTE_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 0x50);

fn director6() -> Director {
    let tunnel = Method::Tunnel(IPIP);
    let services = [
        service(SVC6_WEB, PROTO_TCP, 80, &[(SVC6_WEB, REAL6_148, 80, 1)]),
        service(SVC6_DNS, PROTO_UDP, 53, &[(SVC6_DNS, REAL6_148, 5353, 1)]),
        service_by(
            Method::Route,
            SVC6_DR,
            PROTO_TCP,
            443,
            &[(SVC6_DR, REAL6_148, 443, 1)],
        ),
        service_by(
            Method::FullNat,
            SVC6_FNAT,
            PROTO_TCP,
            9000,
            &[(SVC6_FNAT, REAL6_137, 9090, 1)],
        ),
        service_by(
            Method::FullNat,
            SVC6_FNAT_UDP,
            PROTO_UDP,
            5353,
            &[(SVC6_FNAT_UDP, REAL6_137, 53, 1)],
        ),
        service_by(
            tunnel,
            SVC6_TUN,
            PROTO_TCP,
            8443,
            &[(SVC6_TUN, REAL6_148, 8443, 1)],
        ),
    ];
    Director::from_parts(snapshot_with(services), ipv6_tables(|_| true), 64)
}

/// The IPv6 test network's routes and those of its neighbours `keep` keeps.
fn ipv6_tables(keep: impl Fn(&Neighbour6) -> bool) -> NeighbourTable {
    NeighbourTable::from(KernelTables {
        routes6: routes6(),
        neighbours6: neighbours6().into_iter().filter(keep).collect(),
        ..KernelTables::default()
    })
}

/// `packet` as a frame arriving on `from`: from its source's MAC (the gateway's for a remote
/// client) to the director's.
fn frame6(packet: &Packet<SocketAddrV6>, from: Side) -> Vec<u8> {
    let src = *packet.src.ip();
    let mac = [
        (CLIENT6, CLIENT_MAC),
        (REAL6_148, REAL_148_MAC),
        (REAL6_137, REAL_137_MAC),
    ]
    .into_iter()
    .find_map(|(addr, mac)| (addr == src).then_some(mac))
    .unwrap_or(GATEWAY_MAC);
    let to = match from {
        Side::External => EXT_MAC,
        Side::Internal => INT_MAC,
    };
    packet.frame(mac, to)
}

/// The FullNAT local endpoint of the IPv6 connection from client port `cport`.
fn local6(d: &Director, cport: u16) -> SocketAddrV6 {
    let conn = d
        .conns6
        .iter()
        .find(|c| c.cport == cport)
        .unwrap_or_else(|| panic!("no connection from port {cport}"));
    at6(conn.laddr, conn.lport)
}

/// Opens the connections of [`director6`] as clients and servers do (TCP handshakes, first
/// datagrams), through `process6`; the tunnelled one is not asserted (the workers may or may
/// not serve IPv6 tunnels: the fast path never carries them).
fn open6(d: &mut Director) {
    let remote = |port| at6(REMOTE_CLIENT6, port);
    let step = |d: &mut Director, from: Side, packet: Packet<SocketAddrV6>| {
        let mut frame = frame6(&packet, from);
        let verdict = d.process6(&mut frame, from);
        assert_eq!(verdict, Verdict::Forward(other(from)), "{packet:?}");
    };
    let handshake = |d: &mut Director, client: SocketAddrV6, vip: SocketAddrV6, real| {
        step(d, Side::External, Packet::tcp(client, vip, SYN, 1000, 0));
        let reply_to = match real {
            Some(_) if vip.port() == 9000 => local6(d, client.port()),
            _ => client,
        };
        if let Some(real) = real {
            step(
                d,
                Side::Internal,
                Packet::tcp(real, reply_to, SYN | ACK, 5000, 1001),
            );
        }
        step(d, Side::External, Packet::tcp(client, vip, ACK, 1001, 5001));
    };
    handshake(d, c6(40000), vip6(80), Some(r148_6(80)));
    handshake(d, remote(50000), vip6(80), Some(r148_6(80)));
    // Direct routing: the real server answers the client directly.
    handshake(d, c6(40100), vip6(443), None);
    handshake(d, c6(40200), vip6(9000), Some(r137_6(9090)));
    step(
        d,
        Side::External,
        Packet::udp(c6(5300), vip6(53)).with_payload(b"query"),
    );
    step(
        d,
        Side::External,
        Packet::udp(c6(5400), vip6(5353)).with_payload(b"query"),
    );
    for flags in [SYN, ACK] {
        let mut frame = frame6(
            &Packet::tcp(c6(40300), vip6(8443), flags, 1, 0),
            Side::External,
        );
        let _ = d.process6(&mut frame, Side::External);
    }
}

/// A UDP payload of `prefix` and two more bytes chosen so that the datagram, as it leaves
/// translated to `src -> dst`, sums to all ones: its checksum computes to 0 and is sent as
/// 0xffff (RFC 768, RFC 8200 section 8.1).
fn payload_summing_to_zero(prefix: &[u8], src: SocketAddrV6, dst: SocketAddrV6) -> Vec<u8> {
    let mut payload = prefix.to_vec();
    if payload.len() % 2 == 1 {
        payload.push(0);
    }
    payload.extend([0, 0]);
    let len = (8 + payload.len()) as u16;
    let mut header = [0u8; 8];
    header[0..2].copy_from_slice(&src.port().to_be_bytes());
    header[2..4].copy_from_slice(&dst.port().to_be_bytes());
    header[4..6].copy_from_slice(&len.to_be_bytes());
    let sum = ones_sum(&[
        &src.ip().octets(),
        &dst.ip().octets(),
        &u32::from(len).to_be_bytes(),
        &[0, 0, 0, PROTO_UDP],
        &header,
        &payload,
    ]);
    let n = payload.len();
    payload[n - 2..].copy_from_slice(&(!sum).to_be_bytes());
    payload
}

/// The partial checksum an offloading sender leaves in an IPv6 frame whose TCP/UDP header
/// follows the fixed header: the folded pseudo-header sum (the segment's length for TCP, the
/// length field's for UDP).
fn partial_checksum6(frame: &[u8]) -> u16 {
    let proto = frame[IP + 6];
    let len = match proto {
        PROTO_UDP => u16_at(frame, L4_AT6 + 4),
        _ => u16_at(frame, IP + 4),
    };
    ones_sum(&[
        &frame[IP + 8..IP + 40],
        &u32::from(len).to_be_bytes(),
        &[0, 0, 0, proto],
    ])
}

fn l4_checksum_at6(frame: &[u8]) -> usize {
    L4_AT6 + if frame[IP + 6] == PROTO_TCP { 16 } else { 6 }
}

fn has_partial_checksum6(frame: &[u8]) -> bool {
    let field = u16_at(frame, l4_checksum_at6(frame));
    field != 0 && field == partial_checksum6(frame)
}

/// An IPv6 packet the fast path must forward: what it is, the side it arrives on, the packet,
/// the frame that must leave, and its service (and real server: their ids are equal).
type Fast6 = (&'static str, Side, Packet<SocketAddrV6>, Vec<u8>, ServiceId);

/// A [`Fast6`] row whose packet leaves translated to `src -> dst`, from the MAC `macs.0` to
/// `macs.1`.
fn fast6(
    what: &'static str,
    from: Side,
    packet: &Packet<SocketAddrV6>,
    (src, dst): (SocketAddrV6, SocketAddrV6),
    macs: ([u8; 6], [u8; 6]),
    svc: ServiceId,
) -> Fast6 {
    let leaves = packet.forwarded(src, dst).frame(macs.0, macs.1);
    (what, from, packet.clone(), leaves, svc)
}

/// IPv6 established packets the fast path must forward, each through `process6` and the
/// program, byte for byte against each other and against the frame built from scratch;
/// the program's traffic counters add up to them; and the IPv6 variants the workers must see
/// (extension headers, hop limit, fragments, state changes, partial checksums, UDP without a
/// checksum, malformed, larger than the egress MTU, tunnelled, no next-hop MAC, a closed
/// egress, a removed connection) are left alone.
#[test]
fn ipv6_fixtures_on_the_fast_path() {
    in_fresh_netns("ipv6_fixtures_on_the_fast_path", || {
        use Side::{External, Internal};
        let mut d = director6();
        open6(&mut d);
        let mut rig = Rig::new();
        let installed = rig.install(&d);
        let want: HashSet<(u8, IpAddr, u16)> = [
            (PROTO_TCP, CLIENT6, 40000),
            (PROTO_TCP, REMOTE_CLIENT6, 50000),
            (PROTO_TCP, CLIENT6, 40100),
            (PROTO_TCP, CLIENT6, 40200),
            (PROTO_UDP, CLIENT6, 5300),
            (PROTO_UDP, CLIENT6, 5400),
        ]
        .into_iter()
        .map(|(p, a, port)| (p, a.into(), port))
        .collect();
        assert_eq!(installed, want, "the tunnelled flow must not be installed");

        let (fnat, fnat_udp) = (local6(&d, 40200), local6(&d, 5400));
        let remote = at6(REMOTE_CLIENT6, 50000);
        let request =
            Packet::tcp(c6(40000), vip6(80), PSH | ACK, 1001, 5001).with_payload(b"GET /");
        let response =
            Packet::tcp(r148_6(80), c6(40000), PSH | ACK, 5001, 1006).with_payload(&[7; 600]);
        let query = Packet::udp(c6(5300), vip6(53)).with_payload(b"again");
        let zero = payload_summing_to_zero(b"to zero", c6(5300), r148_6(5353));
        let to_zero = Packet::udp(c6(5300), vip6(53)).with_payload(&zero);
        let dr = Packet::tcp(c6(40100), vip6(443), PSH | ACK, 1001, 1).with_payload(b"hello");
        let fnat_request =
            Packet::tcp(c6(40200), vip6(9000), PSH | ACK, 1001, 5001).with_payload(b"x");
        let fnat_reply = Packet::tcp(r137_6(9090), fnat, ACK, 5001, 1002);
        let fnat_query = Packet::udp(c6(5400), vip6(5353)).with_payload(b"q");
        let fnat_answer = Packet::udp(r137_6(53), fnat_udp).with_payload(b"a");
        let remote_request = Packet::tcp(remote, vip6(80), ACK | ECE | CWR, 1001, 5001);
        let remote_response =
            Packet::tcp(r148_6(80), remote, PSH | ACK, 5001, 1001).with_payload(b"r");
        // 40 + 20 + 1440: exactly the egress MTU.
        let full = Packet::tcp(c6(40000), vip6(80), ACK, 1006, 5601).with_payload(&[0x5a; 1440]);
        let to_148 = (INT_MAC, REAL_148_MAC);
        let to_137 = (INT_MAC, REAL_137_MAC);
        let to_client = (EXT_MAC, CLIENT_MAC);
        let answer = Packet::udp(r148_6(5353), c6(5300)).with_payload(b"answer");
        let fast: Vec<Fast6> = vec![
            fast6(
                "NAT66 request",
                External,
                &request,
                (c6(40000), r148_6(80)),
                to_148,
                SVC6_WEB,
            ),
            fast6(
                "NAT66 response",
                Internal,
                &response,
                (vip6(80), c6(40000)),
                to_client,
                SVC6_WEB,
            ),
            fast6(
                "hop limit 2 leaves as 1",
                External,
                &request.clone().with_ttl(2),
                (c6(40000), r148_6(80)),
                to_148,
                SVC6_WEB,
            ),
            fast6(
                "exactly the egress MTU",
                External,
                &full,
                (c6(40000), r148_6(80)),
                to_148,
                SVC6_WEB,
            ),
            fast6(
                "UDP query",
                External,
                &query,
                (c6(5300), r148_6(5353)),
                to_148,
                SVC6_DNS,
            ),
            fast6(
                "UDP answer",
                Internal,
                &answer,
                (vip6(53), c6(5300)),
                to_client,
                SVC6_DNS,
            ),
            fast6(
                "UDP whose new checksum computes to 0: sent as 0xffff",
                External,
                &to_zero,
                (c6(5300), r148_6(5353)),
                to_148,
                SVC6_DNS,
            ),
            (
                "DR: the packet untouched, hop limit too",
                External,
                dr.clone(),
                dr.frame(to_148.0, to_148.1),
                SVC6_DR,
            ),
            fast6(
                "FullNAT request",
                External,
                &fnat_request,
                (fnat, r137_6(9090)),
                to_137,
                SVC6_FNAT,
            ),
            fast6(
                "FullNAT reply",
                Internal,
                &fnat_reply,
                (vip6(9000), c6(40200)),
                to_client,
                SVC6_FNAT,
            ),
            fast6(
                "FullNAT UDP query",
                External,
                &fnat_query,
                (fnat_udp, r137_6(53)),
                to_137,
                SVC6_FNAT_UDP,
            ),
            fast6(
                "FullNAT UDP answer",
                Internal,
                &fnat_answer,
                (vip6(5353), c6(5400)),
                to_client,
                SVC6_FNAT_UDP,
            ),
            fast6(
                "a remote client's request (ECE, CWR), from its gateway",
                External,
                &remote_request,
                (remote, r148_6(80)),
                to_148,
                SVC6_WEB,
            ),
            fast6(
                "the response to a remote client, to its gateway's MAC",
                Internal,
                &remote_response,
                (vip6(80), remote),
                (EXT_MAC, GATEWAY_MAC),
                SVC6_WEB,
            ),
        ];
        let mut traffic = [TrafficTotals::default(); 6];
        for (what, from, packet, leaves, svc) in &fast {
            let input = frame6(packet, *from);
            let mut by_process = input.clone();
            assert_eq!(
                d.process6(&mut by_process, *from),
                Verdict::Forward(other(*from)),
                "{what}"
            );
            assert_frame_eq(&by_process, leaves, &format!("{what}: process6"));
            let (action, out) = rig.run(&input, *from);
            assert_eq!(action, XDP_REDIRECT, "{what}: must be redirected");
            assert_frame_eq(
                &out,
                &by_process,
                &format!("{what}: the fast path as process6"),
            );
            let ip_len = 40 + u64::from(u16_at(&input, IP + 4));
            let t = &mut traffic[*svc as usize];
            match from {
                External => (t.inpkts, t.inbytes) = (t.inpkts + 1, t.inbytes + ip_len),
                Internal => (t.outpkts, t.outbytes) = (t.outpkts + 1, t.outbytes + ip_len),
            }
        }
        let zero_out = frame6(&to_zero, External);
        let (_, out) = rig.run(&zero_out, External);
        assert_eq!(
            u16_at(&out, L4_AT6 + 6),
            0xffff,
            "a UDP checksum computed to 0"
        );

        // The per-CPU counters (service and real server ids are equal here) and the
        // program's own count of fast-path frames.
        let counted = |t: TrafficTotals| (t.inpkts, t.outpkts, t.inbytes, t.outbytes);
        for (id, expected) in traffic.iter().enumerate() {
            let mut expected = *expected;
            if id == SVC6_DNS as usize {
                // The extra run of the datagram summing to zero.
                expected.inpkts += 1;
                expected.inbytes += 40 + u64::from(u16_at(&zero_out, IP + 4));
            }
            let id = id as u32;
            assert_eq!(
                counted(rig.fast.maps.service_traffic(id)),
                counted(expected),
                "service {id}"
            );
            assert_eq!(
                counted(rig.fast.maps.real_traffic(id)),
                counted(expected),
                "real server {id}"
            );
        }
        let queue = |p: &XdpProgram| p.queue_counters(0).expect("reading the queue counters");
        assert_eq!(
            queue(&rig.external).fast + queue(&rig.internal).fast,
            fast.len() as u64 + 1
        );

        // What the workers must see.
        let tcp_in = frame6(&request, External);
        let tcp_out = frame6(&response, Internal);
        let udp_in = frame6(&query, External);
        let partial =
            |frame: &Vec<u8>| with_partial_checksum6(frame.clone(), L4_AT6, frame[IP + 6]);
        let too_big = Packet::tcp(c6(40000), vip6(80), ACK, 1006, 5601).with_payload(&[0x5a; 1441]);
        let cases: Vec<(&str, Side, Vec<u8>, Option<DropReason>)> = vec![
            (
                "hop limit 1",
                External,
                frame6(&request.clone().with_ttl(1), External),
                Some(DropReason::TtlExceeded),
            ),
            (
                "hop limit 0",
                Internal,
                frame6(&response.clone().with_ttl(0), Internal),
                Some(DropReason::TtlExceeded),
            ),
            (
                "behind a Hop-by-Hop Options header",
                External,
                frame6(&request.clone().with_hop_by_hop(&PADN), External),
                None,
            ),
            (
                "behind a Destination Options header",
                Internal,
                frame6(&response.clone().with_dst_options(&PADN), Internal),
                None,
            ),
            (
                "a fragment",
                External,
                frame6(&request.clone().with_fragment(true, 0), External),
                Some(DropReason::Fragment),
            ),
            (
                "SYN",
                External,
                frame6(&Packet::tcp(c6(40000), vip6(80), SYN, 1, 0), External),
                None,
            ),
            (
                "FIN",
                Internal,
                edit(&tcp_out, &|f| f[L4_AT6 + 13] |= FIN),
                None,
            ),
            (
                "RST",
                External,
                edit(&tcp_in, &|f| f[L4_AT6 + 13] = RST),
                None,
            ),
            ("partial TCP checksum", External, partial(&tcp_in), None),
            ("partial UDP checksum", External, partial(&udp_in), None),
            (
                "UDP checksum 0",
                External,
                frame6(&query.clone().without_udp_checksum(), External),
                Some(DropReason::Malformed),
            ),
            (
                "TCP data offset 4 (< 5)",
                External,
                edit(&tcp_in, &|f| f[L4_AT6 + 12] = 0x40),
                Some(DropReason::Malformed),
            ),
            (
                "TCP data offset 15 in a 25-byte segment",
                External,
                edit(&tcp_in, &|f| f[L4_AT6 + 12] = 0xf0),
                Some(DropReason::Malformed),
            ),
            (
                "UDP length 7 (< 8)",
                External,
                edit(&udp_in, &|f| {
                    f[L4_AT6 + 4..L4_AT6 + 6].copy_from_slice(&7u16.to_be_bytes())
                }),
                Some(DropReason::Malformed),
            ),
            (
                "UDP length beyond the payload",
                External,
                edit(&udp_in, &|f| f[L4_AT6 + 5] += 1),
                Some(DropReason::Malformed),
            ),
            (
                "IP version 4 in an IPv6 frame",
                External,
                edit(&tcp_in, &|f| f[IP] = 0x40),
                Some(DropReason::Malformed),
            ),
            (
                "payload length one byte beyond the frame",
                External,
                edit(&tcp_in, &|f| f[IP + 5] += 1),
                Some(DropReason::Malformed),
            ),
            (
                "payload length ending inside the TCP header",
                External,
                edit(&tcp_in, &|f| {
                    f[IP + 4..IP + 6].copy_from_slice(&19u16.to_be_bytes())
                }),
                Some(DropReason::Malformed),
            ),
            (
                "frame cut inside the TCP header",
                External,
                tcp_in[..L4_AT6 + 10].to_vec(),
                Some(DropReason::Malformed),
            ),
            (
                "one byte over the egress MTU (Packet Too Big)",
                External,
                frame6(&too_big, External),
                None,
            ),
            (
                "a tunnelled flow's segment",
                External,
                frame6(
                    &Packet::tcp(c6(40300), vip6(8443), ACK, 2, 1).with_payload(b"t"),
                    External,
                ),
                None,
            ),
            (
                "from a DR real server's RIP:rport",
                Internal,
                frame6(&Packet::tcp(r148_6(443), c6(40100), ACK, 1, 2), Internal),
                Some(DropReason::NoConnection),
            ),
        ];
        for (what, from, frame, reason) in &cases {
            if let Some(reason) = reason {
                let mut copy = frame.clone();
                let verdict = director6().process6(&mut copy, *from);
                assert_eq!(verdict, Verdict::Drop(*reason), "{what}: process6");
            }
            assert_left_alone(&rig, frame, *from, what);
        }
        let mut answered = frame6(&too_big, External);
        assert_eq!(
            d.process6(&mut answered, External),
            Verdict::Forward(External),
            "Packet Too Big"
        );

        let conn = *d.conns6.iter().find(|c| c.cport == 40000).unwrap();
        check_next_hop_egress_and_removal(
            &mut rig,
            (&tcp_in, &tcp_out),
            (&ipv6_tables(|n| n.addr != REAL6_148), &d.neighbours),
            &conn,
        );
        // The other connections stay.
        assert_eq!(rig.run(&udp_in, External).0, XDP_REDIRECT);
    });
}

/// A random established IPv6 flow: [`Case`]'s IPv6 twin, over NAT66, FullNAT and direct
/// routing.
#[derive(Debug, Clone)]
struct Case6 {
    flow: Flow<SocketAddrV6>,
    method: Method,
    /// TCP: any of ACK, PSH, ECE, CWR (never SYN, FIN, RST).
    flags: u8,
    l4_checksum: L4Checksum,
    hop_limit: u8,
    /// Traffic class and flow label (28 bits): left as they are by both.
    class_and_label: u32,
    payload: Vec<u8>,
}

/// An address in 2001:2::/48 (RFC 5180's benchmarking range).
fn addr6() -> impl Strategy<Value = Ipv6Addr> {
    (0u128..1 << 80).prop_map(|host| Ipv6Addr::from(0x2001_0002_0000u128 << 80 | host))
}

fn endpoint6() -> impl Strategy<Value = SocketAddrV6> {
    (addr6(), 1u16..).prop_map(|(a, p)| SocketAddrV6::new(a, p, 0, 0))
}

fn case6() -> impl Strategy<Value = Case6> {
    let method = prop_oneof![
        Just(Method::Masq),
        Just(Method::FullNat),
        Just(Method::Route)
    ];
    (
        flow(endpoint6, addr6()),
        (method, any::<u8>(), l4_checksum()),
        (
            2u8..=255,
            0u32..1 << 28,
            proptest::collection::vec(any::<u8>(), 0..200),
        ),
    )
        .prop_map(
            |(flow, (method, flags, l4_checksum), (hop_limit, class_and_label, payload))| Case6 {
                flow,
                method,
                flags: flags & (ACK | PSH | ECE | CWR),
                l4_checksum,
                hop_limit,
                class_and_label,
                payload,
            },
        )
        .prop_filter("distinct hosts", |c| c.flow.distinct_hosts())
}

impl Case6 {
    /// A packet of the flow arriving on `from` (`flags` for TCP), as a frame.
    fn frame(&self, from: Side, flags: u8, hop_limit: u8, payload: &[u8]) -> Vec<u8> {
        let fullnat = self.method == Method::FullNat;
        self.flow.frame(from, fullnat, flags, |packet| {
            packet.with_ttl(hop_limit).with_payload(payload)
        })
    }

    /// The case's packet arriving on `from`, with its flags, traffic class and flow label,
    /// and TCP/UDP checksum choice applied.
    fn test_frame(&self, from: Side) -> Vec<u8> {
        let mut frame = self.frame(from, self.flags, self.hop_limit, &self.payload);
        frame[IP..IP + 4].copy_from_slice(&(6 << 28 | self.class_and_label).to_be_bytes());
        let at = l4_checksum_at6(&frame);
        let valid = u16_at(&frame, at);
        let partial = partial_checksum6(&frame);
        let checksum = match self.l4_checksum {
            L4Checksum::Valid => valid,
            // Never 0 (no UDP checksum, which process6 drops) nor the partial sum.
            L4Checksum::Wrong(error) => [error, error.rotate_left(5), error.rotate_left(11)]
                .into_iter()
                .map(|e| valid ^ e)
                .find(|&w| w != 0 && w != partial)
                .unwrap_or(valid ^ error),
            L4Checksum::Partial => partial,
        };
        frame[at..at + 2].copy_from_slice(&checksum.to_be_bytes());
        frame
    }
}

/// One IPv6 case: the connection established in `process6`'s table and installed in the maps,
/// then each direction's packet through both; a hop limit of 1 is left to the workers, and so
/// is a direct-routed real server's packet (no reply entry).
fn check_case6(rig: &RefCell<Rig>, case: &Case6) -> Result<(), TestCaseError> {
    let mut d = case.flow.director(case.method);
    let conn = case.flow.establish(
        &mut d,
        case.method.sees_replies(),
        |from, flags| case.frame(from, flags, 64, &[]),
        |d, frame, from| d.process6(frame, from),
        |d| d.conns6.iter().next().copied(),
    )?;
    with_installed(rig, &mut d, &conn, |rig, d| {
        for from in [Side::External, Side::Internal] {
            let input = case.test_frame(from);
            if from == Side::Internal && !case.method.sees_replies() {
                check_passed(rig, &input, from, "a DR real server's packet")?;
                continue;
            }
            let mut expected = input.clone();
            prop_assert_eq!(
                d.process6(&mut expected, from),
                Verdict::Forward(other(from))
            );
            let partial = has_partial_checksum6(&input);
            check_rewrite(rig, &input, from, &expected, partial, "process6")?;

            let mut last_hop = input.clone();
            last_hop[IP + 7] = 1;
            check_passed(rig, &last_hop, from, "hop limit 1")?;
        }
        Ok(())
    })
}

#[test]
fn random_established_ipv6_flows_match_process6() {
    run_cases(
        "random_established_ipv6_flows_match_process6",
        case6,
        check_case6,
    );
}
