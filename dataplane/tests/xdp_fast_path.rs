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
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::sync::Arc;
use xvs_dataplane::conntrack::Conn;
use xvs_dataplane::fastpath::{self, FastPath, FastPathMaps, FlowWriter, NextHopSync};
use xvs_dataplane::neigh::NeighbourTable;
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
        let maps = FastPathMaps::create(1024).expect("creating the fast path's maps");
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

    /// Installs every connection of `d` the fast path may carry, with `d`'s next hops, as the
    /// owning worker and the neighbour thread would. Returns the client endpoints
    /// (proto, CIP, cport) installed.
    fn install(&mut self, d: &Director) -> HashSet<(u8, Ipv4Addr, u16)> {
        self.sync_next_hops(&d.neighbours);
        let mut installed = HashSet::new();
        for conn in d.conns.iter().filter(|c| fastpath::may_carry(c)) {
            assert!(
                self.writer.install(conn, &d.config, &d.neighbours),
                "{conn:?}: nothing to install"
            );
            installed.insert((conn.proto, conn.caddr, conn.cport));
        }
        self.flush();
        installed
    }

    fn remove(&mut self, conn: &Conn) {
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
fn takes_fast_path(f: &Fixture, installed: &HashSet<(u8, Ipv4Addr, u16)>) -> bool {
    let input = &f.input;
    if !matches!(f.verdict, Verdict::Forward(_)) {
        return false;
    }
    let proto = input[IP + 9];
    let state_change = proto == PROTO_TCP && input[L4_AT + 13] & (SYN | FIN | RST) != 0;
    let client = match f.from {
        Side::External => (proto, ip_addr_at(input, IP + 12), u16_at(input, L4_AT)),
        Side::Internal => (proto, ip_addr_at(input, IP + 16), u16_at(input, L4_AT + 2)),
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

            let edit = |frame: &Vec<u8>, f: &dyn Fn(&mut Vec<u8>)| {
                let mut frame = frame.clone();
                f(&mut frame);
                frame
            };
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

            // A next hop without a MAC: the real's flows wait for the workers to resolve it,
            // the replies to the client still take the fast path.
            let without_real = NeighbourTable::new(
                routes(),
                neighbours()
                    .into_iter()
                    .filter(|n| n.addr != REAL_148)
                    .collect(),
            );
            rig.sync_next_hops(&without_real);
            assert_left_alone(&rig, &tcp_in, Side::External, "next hop without a MAC");
            assert_eq!(rig.run(&tcp_out, Side::Internal).0, XDP_REDIRECT);
            rig.sync_next_hops(&director.neighbours);
            assert_eq!(rig.run(&tcp_in, Side::External).0, XDP_REDIRECT);

            // An egress closed to redirected frames: the flows leaving by it go to the workers.
            rig.fast.set_egress(false, false).unwrap();
            assert_left_alone(&rig, &tcp_in, Side::External, "internal egress closed");
            assert_eq!(rig.run(&tcp_out, Side::Internal).0, XDP_REDIRECT);
            rig.fast.set_egress(false, true).unwrap();
            rig.fast.set_egress(true, false).unwrap();
            assert_left_alone(&rig, &tcp_out, Side::Internal, "external egress closed");
            assert_eq!(rig.run(&tcp_in, Side::External).0, XDP_REDIRECT);
            rig.fast.set_egress(true, true).unwrap();

            // A removed connection goes back to the workers.
            let conn = *director
                .conns
                .iter()
                .find(|c| c.caddr == CLIENT && c.cport == 40000)
                .unwrap();
            rig.remove(&conn);
            assert_left_alone(&rig, &tcp_in, Side::External, "connection removed");
            assert_left_alone(&rig, &tcp_out, Side::Internal, "connection removed");
        },
    );
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

#[derive(Debug, Clone)]
struct Case {
    client: SocketAddrV4,
    vip: SocketAddrV4,
    real: SocketAddrV4,
    /// The client is behind this router (a default route through it), else on the link.
    gateway: Option<Ipv4Addr>,
    macs: [[u8; 6]; 3],
    udp: bool,
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

fn mac() -> impl Strategy<Value = [u8; 6]> {
    any::<[u8; 5]>().prop_map(|m| [0x02, m[0], m[1], m[2], m[3], m[4]])
}

fn case() -> impl Strategy<Value = Case> {
    let l4_checksum = prop_oneof![
        3 => Just(L4Checksum::Valid),
        1 => (1u16..).prop_map(L4Checksum::Wrong),
        1 => Just(L4Checksum::Partial),
    ];
    (
        (
            endpoint(),
            endpoint(),
            endpoint(),
            proptest::option::of(addr()),
            [mac(), mac(), mac()],
        ),
        (
            any::<bool>(),
            any::<u8>(),
            any::<u16>(),
            any::<bool>(),
            l4_checksum,
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
                (client, vip, real, gateway, macs),
                (udp, flags, urgent, udp_checksum, l4_checksum, fullnat),
                (ttl, ident, payload, ip_checksum_error),
            )| Case {
                client,
                vip,
                real,
                gateway,
                macs,
                udp,
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
        .prop_filter("distinct hosts", |c| {
            let mut hosts = vec![*c.client.ip(), *c.vip.ip(), *c.real.ip(), LIP];
            hosts.extend(c.gateway);
            let n = hosts.len();
            hosts.sort();
            hosts.dedup();
            hosts.len() == n
        })
}

impl Case {
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

    /// A director with one service, VIP:vport -> RIP:rport, and routes covering the range on
    /// both sides (the client's through its gateway where it has one).
    fn director(&self) -> Director {
        let range = Ipv4Addr::new(198, 18, 0, 0);
        let (vip, mut svc) = {
            let (mut vip, svc) = service(
                0,
                self.proto(),
                self.vip.port(),
                &[(0, *self.real.ip(), self.real.port(), 1)],
            );
            vip.addr = (*self.vip.ip()).into();
            (vip, svc)
        };
        svc.vip = vip;
        if self.fullnat {
            svc.reals[0].method = Method::FullNat;
            svc.local_addrs = [LIP.into()].into();
        }
        let [client_mac, real_mac, gateway_mac] = self.macs;
        let mut routes = vec![route(INT_IF, range, 15, None)];
        let mut neighbours = vec![neighbour(INT_IF, *self.real.ip(), real_mac)];
        match self.gateway {
            Some(gw) => {
                routes.push(route(EXT_IF, gw, 32, None));
                routes.push(route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(gw)));
                neighbours.push(neighbour(EXT_IF, gw, gateway_mac));
            }
            None => {
                routes.push(route(EXT_IF, range, 15, None));
                neighbours.push(neighbour(EXT_IF, *self.client.ip(), client_mac));
            }
        }
        Director::from_parts(
            snapshot_with([(vip, svc)]),
            NeighbourTable::new(routes, neighbours),
            16,
        )
    }

    /// A packet of the flow arriving on `from` (`flags` for TCP), as a frame.
    fn frame(&self, from: Side, flags: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst, src_mac, dst_mac) = match from {
            Side::External => (self.client, self.vip, self.client_side_mac(), EXT_MAC),
            // A lone table's first FullNAT connection takes LIP:1024.
            Side::Internal if self.fullnat => (self.real, at(LIP, 1024), self.macs[1], INT_MAC),
            Side::Internal => (self.real, self.client, self.macs[1], INT_MAC),
        };
        let packet = if self.udp {
            Packet::udp(src, dst)
        } else {
            Packet::tcp(src, dst, flags, 0x1000_0000, 0x2000_0000)
        };
        Packet {
            ttl,
            ident: self.ident,
            payload: payload.to_vec(),
            ..packet
        }
        .frame(src_mac, dst_mac)
    }

    /// The case's packet arriving on `from`, with its flags, URG, UDP and TCP/UDP checksum
    /// choices applied.
    fn test_frame(&self, from: Side) -> Vec<u8> {
        let mut frame = self.frame(from, self.flags & !URG, self.ttl, &self.payload);
        if self.udp && !self.udp_checksum {
            frame[L4_AT + 6..L4_AT + 8].fill(0);
            return frame;
        }
        if !self.udp && self.flags & URG != 0 {
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

    /// Opens the connection in `d` as clients and servers do: SYN, SYN-ACK, ACK; or one
    /// datagram.
    fn establish(&self, d: &mut Director) -> Result<Conn, TestCaseError> {
        let mut opening = vec![(Side::External, SYN)];
        if !self.udp {
            opening.extend([(Side::Internal, SYN | ACK), (Side::External, ACK)]);
        }
        for (from, flags) in opening {
            let mut frame = self.frame(from, flags, 64, &[]);
            prop_assert_eq!(d.process(&mut frame, from), Verdict::Forward(other(from)));
        }
        let conn = *d.conns.iter().next().unwrap();
        prop_assert!(fastpath::may_carry(&conn), "{:?}", conn);
        Ok(conn)
    }
}

/// One case: the connection established in `process`'s table and installed in the maps, then
/// each direction's packet through both.
fn check_case(rig: &RefCell<Rig>, case: &Case) -> Result<(), TestCaseError> {
    let mut d = case.director();
    let conn = case.establish(&mut d)?;
    rig.borrow_mut().install(&d);
    let result = (|| {
        let rig = rig.borrow();
        for from in [Side::External, Side::Internal] {
            let input = case.test_frame(from);
            let mut expected = input.clone();
            prop_assert_eq!(
                d.process(&mut expected, from),
                Verdict::Forward(other(from))
            );
            let (action, out) = rig.run(&input, from);
            if has_partial_checksum(&input) {
                // The workers complete it over the whole segment.
                prop_assert_eq!(action, XDP_PASS, "{:?}: partial checksum", from);
                prop_assert_eq!(&out, &input);
            } else {
                prop_assert_eq!(action, XDP_REDIRECT, "{:?}", from);
                prop_assert!(
                    out == expected,
                    "{:?}: the XDP rewrite differs from process()'s\n  xdp:{}\n  process:{}",
                    from,
                    hex(&out),
                    hex(&expected)
                );
            }

            let mut bad_header = input.clone();
            let wrong = u16_at(&bad_header, IP + 10) ^ case.ip_checksum_error;
            bad_header[IP + 10..IP + 12].copy_from_slice(&wrong.to_be_bytes());
            let (action, out) = rig.run(&bad_header, from);
            prop_assert_eq!(action, XDP_PASS, "{:?}: bad IPv4 header checksum", from);
            prop_assert_eq!(&out, &bad_header);
        }
        Ok(())
    })();
    rig.borrow_mut().remove(&conn);
    result
}

#[test]
fn random_established_flows_match_process() {
    in_fresh_netns("random_established_flows_match_process", || {
        let rig = RefCell::new(Rig::new());
        let mut runner = TestRunner::new(Config {
            cases: 128,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&case(), |case| check_case(&rig, &case)) {
            panic!("{e}");
        }
    });
}
