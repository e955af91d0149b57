//! Golden packet fixtures for [`process`], Katran style.
//!
//! Each fixture is `{ description, from, input frame, expected verdict, expected output frame }`
//! and the table runs in order through one director (one connection table, one set of counters),
//! so later fixtures see the connections earlier ones opened, as a real director would.
//!
//! Contract of these tests:
//! - Input frames and expected output frames are both built with etherparse (an implementation
//!   independent of ours): the expected frame is the input with the rewrite LVS-NAT must do
//!   (MACs: director's egress MAC -> next hop's MAC; TTL - 1; DNAT to RIP:rport on the way in,
//!   SNAT to VIP:vport on the way out) and checksums computed from scratch by etherparse. The
//!   output of `process` must equal it byte for byte.
//! - One output is also written out below as literal bytes ([`GOLDEN_SYN_TO_REAL`]), so a
//!   regression in etherparse cannot hide one in us.
//! - A frame that is not forwarded must be left untouched.
//! - Counters are checked against what the table sent.

mod common;
#[path = "common/golden_table.rs"]
mod golden_table;

use common::*;
use etherparse::{NetHeaders, PacketHeaders, PayloadSlice, TransportHeader};
use golden_table::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use xvs_dataplane::conntrack::{dump_connections, ConnDump, ConnTable, Dumper, TcpState};
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{RealId, ServiceId, Vip, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::{DropReason, EvictReason, TrafficTotals};
use xvs_scheduler::{Flow, NoLoad};

// The table, its services and its director: common/golden_table.rs.

#[test]
fn golden_fixtures() {
    let (director, _, _) = run_table();
    // Connection states after the table: the first flow completed its handshake.
    let state_of = |cport: u16| {
        director
            .conns
            .iter()
            .find(|c| c.caddr == CLIENT && c.cport == cport)
            .map(|c| c.state)
    };
    assert_eq!(state_of(40000), Some(TcpState::Established));
    assert_eq!(state_of(40002), Some(TcpState::Established));
    assert_eq!(state_of(40001), Some(TcpState::SynRecv));
    assert_eq!(state_of(40003), Some(TcpState::SynRecv));
    // Nothing dropped left a connection behind: 4 on VIP:80, 2 on VIP:53, 1 on VIP:8080.
    assert_eq!(director.conns.len(), 7);
    assert_eq!(director.stats.conns.get(), 7);
}

/// IPVS's active/inactive split: a connection is active only once ESTABLISHED.
#[test]
fn established_flow_counts_as_active() {
    let mut d = Director::new();
    let syn = first_syn();
    let syn_ack = Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), SYN | ACK, 5000, 1001);
    let ack = Packet::tcp(at(CLIENT, 40000), at(VIP, 80), ACK, 1001, 5001);
    let gauges = |d: &Director| {
        let real = &d.stats.reals[REAL_HTTP_148 as usize];
        (real.active.get(), real.inactive.get())
    };

    d.process(&mut syn.frame(CLIENT_MAC, EXT_MAC), Side::External);
    assert_eq!(gauges(&d), (0, 1), "SYN_RECV is inactive");
    d.process(&mut syn_ack.frame(REAL_148_MAC, INT_MAC), Side::Internal);
    assert_eq!(gauges(&d), (0, 1), "still SYN_RECV after the SYN-ACK");
    let verdict = d.process(&mut ack.frame(CLIENT_MAC, EXT_MAC), Side::External);
    assert_eq!(verdict, Verdict::Forward(Side::Internal));
    assert_eq!(gauges(&d), (1, 0), "ESTABLISHED is active");
    assert_eq!(
        d.conns.iter().next().map(|c| c.state),
        Some(TcpState::Established)
    );
}

/// `ipvsadm -L -c` material: connections opened by frames are listed by a worker answering
/// the control thread, with IPVS's state names and the time each has left.
#[test]
fn connection_listing_shows_states_and_time_left() {
    let mut d = Director::new();
    let vip_80 = at(VIP, 80);
    let c = |port| at(CLIENT, port);
    let frames = [
        // 40000 -> .148:80 (rr's first), established, then the server closes: FIN_WAIT.
        (first_syn(), Side::External),
        (
            Packet::tcp(at(REAL_148, 80), c(40000), SYN | ACK, 5000, 1001),
            Side::Internal,
        ),
        (
            Packet::tcp(c(40000), vip_80, ACK, 1001, 5001),
            Side::External,
        ),
        (
            Packet::tcp(at(REAL_148, 80), c(40000), FIN | ACK, 5001, 1001),
            Side::Internal,
        ),
        // 40001 -> .137:80 (rr's second): SYN_RECV.
        (Packet::tcp(c(40001), vip_80, SYN, 7000, 0), Side::External),
        // UDP 5353 -> .148:53.
        (Packet::udp(c(5353), at(VIP, 53)), Side::External),
        // 40002 -> VIP:8080 -> .148:8000 (port translation): SYN_RECV.
        (
            Packet::tcp(c(40002), at(VIP, 8080), SYN, 11000, 0),
            Side::External,
        ),
    ];
    for (packet, from) in &frames {
        let mac = match from {
            Side::External => CLIENT_MAC,
            Side::Internal => REAL_148_MAC,
        };
        let dst = if *from == Side::External {
            EXT_MAC
        } else {
            INT_MAC
        };
        let verdict = d.process(&mut packet.frame(mac, dst), *from);
        assert!(
            matches!(verdict, Verdict::Forward(_)),
            "{packet:?}: {verdict:?}"
        );
    }

    // The table's owner answers on its own thread, 2.5 s after the traffic.
    let slot = Arc::new(ConnDump::new());
    let mut dumper = Dumper::new(Arc::clone(&slot), 2);
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (conns, stop) = (
            std::mem::replace(&mut d.conns, ConnTable::with_capacity(1)),
            Arc::clone(&stop),
        );
        let conns6 = ConnTable::<Ipv6Addr>::new(1, 1);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if !dumper.serve(&conns, &conns6, NOW_MS + 2_500) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let result = dump_connections(&[slot], Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();

    assert_eq!((result.workers_missing, result.truncated), (0, false));
    let mut listed: Vec<_> = result
        .entries
        .iter()
        .map(|e| {
            (
                e.proto,
                SocketAddrV4::new(e.client, e.client_port),
                SocketAddrV4::new(e.vip, e.vport),
                SocketAddrV4::new(e.real, e.rport),
                e.state,
                e.expires_ms,
            )
        })
        .collect();
    listed.sort_by_key(|l| l.1.port());
    assert_eq!(
        listed,
        [
            (
                PROTO_UDP,
                c(5353),
                at(VIP, 53),
                at(REAL_148, 53),
                "UDP",
                297_500
            ),
            (
                PROTO_TCP,
                c(40000),
                vip_80,
                at(REAL_148, 80),
                "FIN_WAIT",
                117_500
            ),
            (
                PROTO_TCP,
                c(40001),
                vip_80,
                at(REAL_137, 80),
                "SYN_RECV",
                57_500
            ),
            (
                PROTO_TCP,
                c(40002),
                at(VIP, 8080),
                at(REAL_148, 8000),
                "SYN_RECV",
                57_500
            ),
        ]
    );
}

/// The output of the first fixture, written out by hand from RFC 791/9293 (checksums computed
/// separately), so that a regression in etherparse cannot hide one in us:
/// SYN 198.18.0.201:40000 -> 198.19.0.148:80, seq 1000, window 64240, TTL 63, DF, id 0x1c46,
/// from the internal interface's MAC to the real server's.
const GOLDEN_SYN_TO_REAL: [u8; 54] = [
    // Ethernet: dst 02:00:00:00:01:48, src 02:00:00:00:00:11, IPv4
    0x02, 0x00, 0x00, 0x00, 0x01, 0x48, 0x02, 0x00, 0x00, 0x00, 0x00, 0x11, 0x08, 0x00,
    // IPv4: v4 ihl 5, tos 0, len 40, id 0x1c46, DF, ttl 63, tcp, checksum, src, dst
    0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x3f, 0x06, 0x92, 0x07, 198, 18, 0, 201, 198,
    19, 0, 148,
    // TCP: 40000 -> 80, seq 1000, ack 0, offset 5, SYN, window 64240, checksum, urgent 0
    0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x50, 0x02, 0xfa, 0xf0,
    0x86, 0xf6, 0x00, 0x00,
];

#[test]
fn golden_bytes_of_the_first_syn() {
    let syn = first_syn();
    assert_frame_eq(
        &syn.dnat(at(REAL_148, 80)).frame(INT_MAC, REAL_148_MAC),
        &GOLDEN_SYN_TO_REAL,
        "etherparse's expectation",
    );
    let mut frame = syn.frame(CLIENT_MAC, EXT_MAC);
    let verdict = Director::new().process(&mut frame, Side::External);
    assert_eq!(verdict, Verdict::Forward(Side::Internal));
    assert_frame_eq(&frame, &GOLDEN_SYN_TO_REAL, "process");
}

/// Every proper prefix of a valid frame is a truncated frame: dropped as malformed, no panic.
#[test]
fn truncated_frames_are_malformed() {
    let frames = [
        first_syn().frame(CLIENT_MAC, EXT_MAC),
        Packet::tcp(at(CLIENT, 40000), at(VIP, 80), PSH | ACK, 1, 1)
            .with_payload(b"some data")
            .frame(CLIENT_MAC, EXT_MAC),
        Packet::udp(at(CLIENT, 5353), at(VIP, 53))
            .with_payload(b"query")
            .frame(CLIENT_MAC, EXT_MAC),
    ];
    for full in frames {
        for from in [Side::External, Side::Internal] {
            let mut d = Director::new();
            for len in 0..full.len() {
                let mut frame = full[..len].to_vec();
                assert_eq!(
                    d.process(&mut frame, from),
                    Verdict::Drop(DropReason::Malformed),
                    "prefix of {len} of {} bytes, from {from:?}",
                    full.len()
                );
                assert_eq!(frame, full[..len], "a dropped frame is left untouched");
            }
        }
    }
}

/// A connection table full of connections that completed their handshakes refuses new flows
/// and keeps serving the ones it has.
#[test]
fn full_table_refuses_new_flows_only() {
    let mut d = Director::with(NeighbourTable::new(routes(), neighbours()), 1);
    let first = first_syn();
    let second = Packet::tcp(at(CLIENT, 40001), at(VIP, 80), SYN, 7000, 0);
    let ack = Packet::tcp(at(CLIENT, 40000), at(VIP, 80), ACK, 1001, 5001);
    let reply = Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), SYN | ACK, 5000, 1001);

    let mut frame = first.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let mut frame = reply.frame(REAL_148_MAC, INT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::Internal),
        Verdict::Forward(Side::External)
    );
    let mut frame = ack.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    assert_frame_eq(
        &frame,
        &ack.dnat(at(REAL_148, 80)).frame(INT_MAC, REAL_148_MAC),
        "ACK of the first flow",
    );
    // Full of an established connection: nothing may give way.
    let mut frame = second.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Drop(DropReason::TableFull)
    );
    assert_frame_eq(&frame, &second.frame(CLIENT_MAC, EXT_MAC), "refused SYN");
    // The refused flow did not take a turn: round robin still owes .137 the next one.
    let http = Vip {
        proto: PROTO_TCP,
        addr: VIP.into(),
        port: 80,
    };
    let flow = Flow {
        proto: PROTO_TCP,
        caddr: CLIENT.into(),
        cport: 40002,
        vaddr: VIP.into(),
        vport: 80,
    };
    let next = d
        .config
        .service(&http)
        .and_then(|s| s.schedule(&NoLoad, &flow));
    assert_eq!(next.map(|r| r.addr), Some(REAL_137.into()));
    let mut frame = ack.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal),
        "the established flow goes on"
    );
    // The refused flow was not counted as a connection.
    assert_eq!(d.stats.services[SVC_HTTP as usize].conns.get(), 1);
    assert_eq!(d.conns.len(), 1);
}

/// A full table whose oldest entry is still half-open (a SYN never answered: a flood) evicts
/// it for a new flow instead of refusing (docs/floods.md).
#[test]
fn full_table_evicts_a_half_open_entry_for_a_new_flow() {
    let mut d = Director::with(NeighbourTable::new(routes(), neighbours()), 1);
    let first = first_syn();
    let second = Packet::tcp(at(CLIENT, 40001), at(VIP, 80), SYN, 7000, 0);
    let late_ack = Packet::tcp(at(CLIENT, 40000), at(VIP, 80), ACK, 1001, 5001);
    for syn in [&first, &second] {
        let mut frame = syn.frame(CLIENT_MAC, EXT_MAC);
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Forward(Side::Internal)
        );
    }
    assert_eq!(d.stats.evictions[EvictReason::TableFull as usize].get(), 1);
    assert_eq!(d.conns.len(), 1);
    // The evicted handshake's ACK finds no connection.
    let mut frame = late_ack.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Drop(DropReason::NoConnection)
    );
}

/// Rule: TCP/UDP checksums are not verified by the director. A segment that arrives with a bad
/// checksum is forwarded (not dropped, not "fixed"), and the incremental update (RFC 1624)
/// carries the error through: the receiver sees a checksum off by exactly as much as the one
/// the sender sent, and drops the segment itself, as it would have without a director.
/// (The one exception, a *partial* checksum left by a sender's offload, is completed: see
/// [`partial_checksums_from_offloading_senders_are_completed`].)
#[test]
fn bad_tcp_checksum_is_forwarded_still_bad() {
    let syn = first_syn();
    let good_in = syn.frame(CLIENT_MAC, EXT_MAC);
    let good_out = syn.dnat(at(REAL_148, 80)).frame(INT_MAC, REAL_148_MAC);
    let csum = L4_AT + 16..L4_AT + 18;
    let field = |f: &[u8]| u16::from_be_bytes([f[csum.start], f[csum.start + 1]]);

    let mut frame = good_in.clone();
    let bad = field(&good_in) ^ 0x5a5a;
    frame[csum.clone()].copy_from_slice(&bad.to_be_bytes());
    let verdict = Director::new().process(&mut frame, Side::External);
    assert_eq!(verdict, Verdict::Forward(Side::Internal));

    // Everything but the TCP checksum is exactly the good output.
    assert_eq!(frame[..csum.start], good_out[..csum.start]);
    assert_eq!(frame[csum.end..], good_out[csum.end..]);
    assert!(!l4_ok(&frame[IP..]), "the checksum must still be invalid");
    // The error, as a ones'-complement difference of the sums, is unchanged.
    let error = |actual: u16, good: u16| {
        (u32::from(!actual) % 0xffff + 0xffff - u32::from(!good) % 0xffff) % 0xffff
    };
    let error_in = error(bad, field(&good_in));
    assert_ne!(error_in, 0);
    assert_eq!(error(field(&frame), field(&good_out)), error_in);
}

/// A sender with checksum offload (a veth or virtio peer) hands over frames whose TCP/UDP
/// checksum field holds only the folded pseudo-header sum, for a NIC to complete. No NIC will
/// downstream of the director, so `process` completes it: the output carries the full checksum,
/// exactly as etherparse computes it for the rewritten segment.
#[test]
fn partial_checksums_from_offloading_senders_are_completed() {
    let mut d = Director::new();
    let syn = first_syn();
    let syn_ack = Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), SYN | ACK, 5000, 1001)
        .with_payload(b"offloaded");
    let query = Packet::udp(at(CLIENT, 5353), at(VIP, 53)).with_payload(b"offloaded query");
    let cases = [
        (
            "TCP SYN in",
            Side::External,
            syn.frame(CLIENT_MAC, EXT_MAC),
            syn.dnat(at(REAL_148, 80)).frame(INT_MAC, REAL_148_MAC),
        ),
        (
            "TCP reply out",
            Side::Internal,
            syn_ack.frame(REAL_148_MAC, INT_MAC),
            syn_ack.snat(at(VIP, 80)).frame(EXT_MAC, CLIENT_MAC),
        ),
        (
            "UDP in",
            Side::External,
            query.frame(CLIENT_MAC, EXT_MAC),
            query.dnat(at(REAL_148, 53)).frame(INT_MAC, REAL_148_MAC),
        ),
    ];
    for (what, from, full, expected) in cases {
        let mut frame = with_partial_checksum(full.clone());
        assert_ne!(
            frame, full,
            "{what}: the partial checksum differs from the full one"
        );
        assert!(
            !l4_ok(&frame[IP..]),
            "{what}: a partial checksum is not valid"
        );
        assert!(
            matches!(d.process(&mut frame, from), Verdict::Forward(_)),
            "{what}"
        );
        assert_frame_eq(&frame, &expected, what);
    }
}

/// A next hop without a MAC yields `Unresolved` naming the address to resolve (the real, the
/// client, or the gateway in front of a remote client), a destination without a route
/// `Drop(NoRoute)`; the frame is left untouched either way.
#[test]
fn unresolved_next_hops_and_missing_routes() {
    let syn = first_syn();
    let reply = Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), SYN | ACK, 5000, 1001);
    let remote_syn = Packet::tcp(at(REMOTE_CLIENT, 50000), at(VIP, 80), SYN, 9000, 0);
    let remote_reply = Packet::tcp(
        at(REAL_148, 80),
        at(REMOTE_CLIENT, 50000),
        SYN | ACK,
        1,
        9001,
    );
    let without = |addr: Ipv4Addr| {
        let neighbours = neighbours()
            .into_iter()
            .filter(|n| n.addr != addr)
            .collect();
        NeighbourTable::new(routes(), neighbours)
    };
    let check = |d: &mut Director, input: Vec<u8>, from: Side, verdict: Verdict| {
        let mut frame = input.clone();
        assert_eq!(d.process(&mut frame, from), verdict);
        if !matches!(verdict, Verdict::Forward(_)) {
            assert_frame_eq(&frame, &input, "not forwarded: left untouched");
        }
    };

    // The real server's MAC is unknown.
    let mut d = Director::with(without(REAL_148), 16);
    check(
        &mut d,
        syn.frame(CLIENT_MAC, EXT_MAC),
        Side::External,
        Verdict::Unresolved {
            ifindex: INT_IF,
            addr: REAL_148.into(),
        },
    );

    // The client's MAC is unknown: the reply cannot leave.
    let mut d = Director::with(without(CLIENT), 16);
    check(
        &mut d,
        syn.frame(CLIENT_MAC, EXT_MAC),
        Side::External,
        Verdict::Forward(Side::Internal),
    );
    check(
        &mut d,
        reply.frame(REAL_148_MAC, INT_MAC),
        Side::Internal,
        Verdict::Unresolved {
            ifindex: EXT_IF,
            addr: CLIENT.into(),
        },
    );

    // A remote client's reply waits for the gateway, not for the client.
    let mut d = Director::with(without(GATEWAY), 16);
    check(
        &mut d,
        remote_syn.frame(GATEWAY_MAC, EXT_MAC),
        Side::External,
        Verdict::Forward(Side::Internal),
    );
    check(
        &mut d,
        remote_reply.frame(REAL_148_MAC, INT_MAC),
        Side::Internal,
        Verdict::Unresolved {
            ifindex: EXT_IF,
            addr: GATEWAY.into(),
        },
    );

    // No route towards the real servers at all.
    let external_only = routes()
        .into_iter()
        .filter(|r| r.ifindex != INT_IF)
        .collect();
    let mut d = Director::with(NeighbourTable::new(external_only, neighbours()), 16);
    check(
        &mut d,
        syn.frame(CLIENT_MAC, EXT_MAC),
        Side::External,
        Verdict::Drop(DropReason::NoRoute),
    );
}

/// ipvsadm's `--stats` counters after the table: connections, packets, and bytes as IPv4
/// total lengths (Ethernet header and padding excluded), per service and per real server.
#[test]
fn counters_match_the_traffic_sent() {
    let (d, fixtures, _) = run_table();
    let service = |id: ServiceId| d.stats.services[id as usize].totals();
    let real = |id: RealId| d.stats.reals[id as usize].traffic.totals();
    let conns_pkts = |t: TrafficTotals| (t.conns, t.inpkts, t.outpkts);

    // Counted by hand from the table.
    assert_eq!(conns_pkts(service(SVC_HTTP)), (4, 7, 4));
    assert_eq!(conns_pkts(real(REAL_HTTP_148)), (2, 5, 4));
    assert_eq!(conns_pkts(real(REAL_HTTP_137)), (2, 2, 0));
    assert_eq!(conns_pkts(service(SVC_DNS)), (2, 2, 2));
    assert_eq!(conns_pkts(real(REAL_DNS_148)), (1, 1, 1));
    assert_eq!(conns_pkts(real(REAL_DNS_137)), (1, 1, 1));
    assert_eq!(conns_pkts(service(SVC_MAPPED)), (1, 3, 2));
    assert_eq!(conns_pkts(real(REAL_MAPPED_148)), (1, 3, 2));
    assert_eq!(service(SVC_DRAINED), TrafficTotals::default());

    // Bytes: the IPv4 total length of every forwarded frame, read from the frame itself.
    let mut services = [TrafficTotals::default(); 4];
    let mut reals = [TrafficTotals::default(); 5];
    for f in fixtures.iter().filter(|f| f.output.is_some()) {
        let input = &f.input;
        let ip_len = u64::from(u16::from_be_bytes([input[IP + 2], input[IP + 3]]));
        let port = |at: usize| u16::from_be_bytes([input[at], input[at + 1]]);
        let src = Ipv4Addr::new(input[26], input[27], input[28], input[29]);
        let proto = input[IP + 9];
        let (s, r) = match f.from {
            // Inbound: the real is the one the output went to.
            Side::External => {
                let out = f.output.as_deref().unwrap();
                let dst = Ipv4Addr::new(out[30], out[31], out[32], out[33]);
                let dport = u16::from_be_bytes([out[L4_AT + 2], out[L4_AT + 3]]);
                d.real_at(proto, dst, dport)
            }
            Side::Internal => d.real_at(proto, src, port(L4_AT)),
        };
        let (st, rt) = (&mut services[s as usize], &mut reals[r as usize]);
        match f.from {
            Side::External => {
                st.inbytes += ip_len;
                rt.inbytes += ip_len;
            }
            Side::Internal => {
                st.outbytes += ip_len;
                rt.outbytes += ip_len;
            }
        }
    }
    for (id, expected) in services.iter().enumerate() {
        let t = service(id as ServiceId);
        assert_eq!(
            (t.inbytes, t.outbytes),
            (expected.inbytes, expected.outbytes)
        );
    }
    for (id, expected) in reals.iter().enumerate() {
        let t = real(id as RealId);
        assert_eq!(
            (t.inbytes, t.outbytes),
            (expected.inbytes, expected.outbytes)
        );
    }
    // One by hand: 40-byte SYNs (x3: 40000, 40001, remote) + the padded one (40, not 46),
    // 40-byte ACKs (x2: 40000, remote), 40 + 29 request.
    assert_eq!(service(SVC_HTTP).inbytes, 40 * 6 + 69);
}

/// Independent check of every forwarded frame: etherparse parses it and recomputes its IPv4
/// header checksum and its TCP/UDP checksum from scratch; each must match the frame's.
#[test]
fn forwarded_frames_have_valid_checksums() {
    let (_, fixtures, outputs) = run_table();
    let mut checked = 0;
    for (f, frame) in fixtures.iter().zip(&outputs) {
        if !matches!(f.verdict, Verdict::Forward(_)) {
            continue;
        }
        let headers = PacketHeaders::from_ethernet_slice(frame).expect(f.description);
        let Some(NetHeaders::Ipv4(ip, _)) = &headers.net else {
            panic!("{}: not IPv4", f.description)
        };
        assert_eq!(
            ip.header_checksum,
            ip.calc_header_checksum(),
            "{}",
            f.description
        );
        match (&headers.transport, &headers.payload) {
            (Some(TransportHeader::Tcp(tcp)), PayloadSlice::Tcp(payload)) => {
                assert_eq!(
                    tcp.checksum,
                    tcp.calc_checksum_ipv4(ip, payload).unwrap(),
                    "{}",
                    f.description
                );
            }
            (Some(TransportHeader::Udp(udp)), PayloadSlice::Udp(payload)) => {
                let input_had_none = f.input[L4_AT + 6..L4_AT + 8] == [0, 0];
                let expected = if input_had_none {
                    0
                } else {
                    udp.calc_checksum_ipv4(ip, payload).unwrap()
                };
                assert_eq!(udp.checksum, expected, "{}", f.description);
            }
            other => panic!("{}: unexpected transport {other:?}", f.description),
        }
        assert!(l4_ok(&frame[IP..]), "{}", f.description);
        checked += 1;
    }
    assert_eq!(checked, 20);
}

// ---------------------------------------------------------------------------------------------
// No allocation on the hot path
// ---------------------------------------------------------------------------------------------

/// Counts allocations made by the current thread (other test threads do not disturb it).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// Safety: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local Cell with a const initialiser, which itself never allocates.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // Safety: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // Safety: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // Safety: same contract as ours.
        unsafe { std::alloc::System.realloc(ptr, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The whole fixture table (new flows, established flows, replies, every drop reason, table
/// full, unresolved next hops) goes through `process` without a single allocation.
#[test]
fn process_never_allocates() {
    let mut director = Director::new();
    let fixtures = fixtures();
    // Inputs are copied into preallocated buffers before counting starts.
    let mut frames: Vec<Vec<u8>> = fixtures.iter().map(|f| f.input.clone()).collect();
    let mut full = Director::with(NeighbourTable::new(routes(), neighbours()), 1);
    let mut unresolved = Director::with(NeighbourTable::default(), 1024);
    let mut spare: Vec<Vec<u8>> = fixtures.iter().map(|f| f.input.clone()).collect();

    let before = ALLOCATIONS.with(|n| n.get());
    for (fixture, frame) in fixtures.iter().zip(frames.iter_mut()) {
        director.process(frame, fixture.from);
    }
    for (fixture, frame) in fixtures.iter().zip(spare.iter_mut()) {
        full.process(frame, fixture.from);
        unresolved.process(frame, fixture.from);
    }
    let during = ALLOCATIONS.with(|n| n.get()) - before;
    assert_eq!(during, 0, "process allocated {during} times");
    assert!(!director.conns.is_empty(), "the table did open connections");
}

// ---------------------------------------------------------------------------------------------
// Persistence
// ---------------------------------------------------------------------------------------------

/// `-p 300 -M 255.255.255.0` over round robin: a client's new connections (any port) stick to
/// the first one's server, another /24 gets the next server, and a template whose server was
/// removed from the service sends the client back to the scheduler.
#[test]
fn persistent_service_keeps_a_client_group_on_one_server() {
    let persistent = |reals: &[(RealId, Ipv4Addr, u16, u32)]| {
        let (vip, mut svc) = service(SVC_HTTP, PROTO_TCP, 80, reals);
        svc.persistence = Some(xvs_dataplane::snapshot::Persistence {
            timeout_secs: 300,
            netmask: Ipv4Addr::new(255, 255, 255, 0).into(),
        });
        (vip, svc)
    };
    let both = [
        (REAL_HTTP_148, REAL_148, 80, 1),
        (REAL_HTTP_137, REAL_137, 80, 1),
    ];
    let mut d = Director::from_parts(
        snapshot_with([persistent(&both)]),
        NeighbourTable::new(routes(), neighbours()),
        64,
    );
    let syn_from = |d: &mut Director, client: Ipv4Addr, port: u16| -> Ipv4Addr {
        let mac = if client == CLIENT {
            CLIENT_MAC
        } else {
            GATEWAY_MAC
        };
        let mut frame = Packet::tcp(at(client, port), at(VIP, 80), SYN, 1, 0).frame(mac, EXT_MAC);
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Forward(Side::Internal)
        );
        let ip = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..]).unwrap();
        ip.destination_addr()
    };
    for port in 40000..40006 {
        assert_eq!(syn_from(&mut d, CLIENT, port), REAL_148, "port {port}");
    }
    // 198.18.1.50 is another /24: a new template, the scheduler's next server.
    assert_eq!(syn_from(&mut d, REMOTE_CLIENT, 50000), REAL_137);
    assert_eq!(syn_from(&mut d, REMOTE_CLIENT, 50001), REAL_137);

    // .148 removed from the service (the template table stays): its clients are scheduled again.
    d.config = snapshot_with([persistent(&both[1..])]);
    assert_eq!(syn_from(&mut d, CLIENT, 41000), REAL_137);
    assert_eq!(syn_from(&mut d, CLIENT, 41001), REAL_137);

    // .137 fails its health check (weight 0 and failed): REMOTE_CLIENT's template to it is not
    // honoured, its next connection goes to .148. A quiesced (weight 0) server that did not fail
    // keeps its persistent clients, as in IPVS.
    let quiesced = [
        (REAL_HTTP_148, REAL_148, 80, 1),
        (REAL_HTTP_137, REAL_137, 80, 0),
    ];
    d.config = snapshot_with([persistent(&quiesced)]);
    assert_eq!(syn_from(&mut d, REMOTE_CLIENT, 50002), REAL_137);
    let (vip, mut svc) = persistent(&quiesced);
    svc.reals[1].failed = true;
    d.config = snapshot_with([(vip, svc)]);
    assert_eq!(syn_from(&mut d, REMOTE_CLIENT, 50003), REAL_148);
    assert_eq!(syn_from(&mut d, REMOTE_CLIENT, 50004), REAL_148);
}

// ---------------------------------------------------------------------------------------------
// Fuzzing seeds
// ---------------------------------------------------------------------------------------------

/// Writes the fixture inputs as seed corpora for the cargo-fuzz targets (fuzz/): raw frames
/// for `frame_parser`; records `[control][len: u16 BE][frame]` for `process` (control bit 0:
/// arrived on the internal side; bits 1-3: recompute the IPv4 checksum, the TCP/UDP checksum,
/// make that partial; see fuzz/fuzz_targets/process.rs), one seed per fixture, the whole table
/// as one sequence, and the table again with partial TCP/UDP checksums.
/// Run by hand (docs/testing.md): into `$XVS_FUZZ_SEEDS`, default fuzz/seeds.
#[test]
#[ignore = "writes files: run by hand to refresh fuzz/seeds"]
fn write_fuzz_seeds() {
    let record =
        |fixture: &Fixture, control: u8| fuzz_record(&fixture.input, fixture.from, control);
    let write = |target: &str, name: String, bytes: &[u8]| {
        std::fs::write(fuzz_seed_dir(target).join(name), bytes).unwrap();
    };
    let fixtures = fixtures();
    for (n, fixture) in fixtures.iter().enumerate() {
        write("frame_parser", format!("golden-{n:02}"), &fixture.input);
        write("process", format!("golden-{n:02}"), &record(fixture, 0));
    }
    let table: Vec<u8> = fixtures.iter().flat_map(|f| record(f, 0)).collect();
    write("process", "golden-table".into(), &table);
    // Bits 1, 2, 3: valid IPv4 header checksum, TCP/UDP checksum replaced by a partial one.
    let partial: Vec<u8> = fixtures.iter().flat_map(|f| record(f, 0b1110)).collect();
    write("process", "golden-table-partial".into(), &partial);
}
