//! The Internet's odd packets, each with a golden fixture and a decided behaviour
//! (docs/packets.md, "Odd packets", states the same table for operators).
//!
//! Fixtures are `{ description, from, input frame, expected verdict, expected output frame }`
//! as in `golden.rs`, run in order through one director after a few connections were opened.
//! Inputs and expected outputs are built with etherparse: an ICMP error's expected output is the
//! error IPVS's `ip_vs_nat_icmp` would send, with every checksum (outer IPv4, ICMP, quoted IPv4,
//! quoted TCP/UDP) computed from scratch; `process` must produce it byte for byte. A frame that
//! is not forwarded must be left untouched, and every verdict is counted.

mod common;

use common::*;
use etherparse::icmpv4::{DestUnreachableHeader, ParameterProblemHeader, TimeExceededCode};
use etherparse::{Icmpv4Type, PacketBuilder};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::process::{client_endpoint, process, Env, Side, Verdict};
use xvs_dataplane::snapshot::{ServiceId, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::{DropReason, IcmpReason};

const SVC_HTTP: ServiceId = 0; // TCP VIP:80 -> .148:80, .137:80
const SVC_DNS: ServiceId = 1; // UDP VIP:53 -> .148:53
const SVC_MAPPED: ServiceId = 2; // TCP VIP:8080 -> .148:8000

/// A router between the director and the real servers (it sends time-exceeded errors).
const INTERNAL_ROUTER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
const INTERNAL_ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x01];
/// Another address of the director's external side: not a VIP.
const OTHER_LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 130);
/// The fixtures run this long after the connections were opened, so that a refreshed timer
/// would show.
const LATER_MS: u64 = NOW_MS + 10_000;

fn director() -> Director {
    let config = snapshot_with([
        service(
            SVC_HTTP,
            PROTO_TCP,
            80,
            &[(0, REAL_148, 80, 1), (1, REAL_137, 80, 1)],
        ),
        service(SVC_DNS, PROTO_UDP, 53, &[(2, REAL_148, 53, 1)]),
        service(SVC_MAPPED, PROTO_TCP, 8080, &[(3, REAL_148, 8000, 1)]),
    ]);
    let routes = vec![
        route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
        route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
        route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
    ];
    let neighbours = vec![
        neighbour(EXT_IF, CLIENT, CLIENT_MAC),
        neighbour(EXT_IF, GATEWAY, GATEWAY_MAC),
        neighbour(INT_IF, REAL_148, REAL_148_MAC),
        neighbour(INT_IF, REAL_137, REAL_137_MAC),
    ];
    Director::from_parts(
        config,
        xvs_dataplane::neigh::NeighbourTable::new(routes, neighbours),
        64,
    )
}

/// One frame through `process` at `now_ms`.
fn process_at(d: &mut Director, frame: &mut [u8], from: Side, now_ms: u64) -> Verdict {
    let env = Env {
        config: &d.config,
        neighbours: &d.neighbours,
        now_ms,
        workers: &[],
        templates: &d.templates,
        templates6: &d.templates6,
        overload: &[],
    };
    process(frame, from, &env, &mut d.conns, &d.stats)
}

// ---------------------------------------------------------------------------------------------
// ICMP errors
// ---------------------------------------------------------------------------------------------

/// An ICMP error quoting the first `quote_len` bytes of `quoted` (as its sender saw it).
#[derive(Clone)]
struct IcmpError {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    kind: Icmpv4Type,
    quoted: Packet,
    quote_len: usize,
}

impl IcmpError {
    fn new(src: Ipv4Addr, dst: Ipv4Addr, kind: Icmpv4Type, quoted: Packet, len: usize) -> Self {
        IcmpError {
            src,
            dst,
            ttl: 64,
            kind,
            quoted,
            quote_len: len,
        }
    }

    fn frame(&self, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        let mut quote = self.quoted.ip_packet();
        quote.truncate(self.quote_len);
        let mut out = Vec::new();
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv4(self.src.octets(), self.dst.octets(), self.ttl)
            .icmpv4(self.kind.clone())
            .write(&mut out, &quote)
            .unwrap();
        out
    }

    /// What the director must send to the real server for an error about one of our replies
    /// (IPVS, `ip_vs_nat_icmp` outgoing=0): outer destination and quoted source -> `real`.
    fn to_real(&self, real: SocketAddrV4) -> Self {
        IcmpError {
            dst: *real.ip(),
            ttl: self.ttl - 1,
            quoted: self.quoted.clone().with_src(real),
            ..self.clone()
        }
    }

    /// What the director must send to the client for an error about a request it forwarded
    /// (IPVS, `ip_vs_nat_icmp` outgoing=1): outer source (whoever sent it) and quoted
    /// destination -> `vip`.
    fn to_client(&self, vip: SocketAddrV4) -> Self {
        IcmpError {
            src: *vip.ip(),
            ttl: self.ttl - 1,
            quoted: self.quoted.clone().with_dst(vip),
            ..self.clone()
        }
    }

    fn with_ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }
}

fn frag_needed(mtu: u16) -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
        next_hop_mtu: mtu,
    })
}

fn port_unreachable() -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::Port)
}

fn time_exceeded() -> Icmpv4Type {
    Icmpv4Type::TimeExceeded(TimeExceededCode::TtlExceededInTransit)
}

fn parameter_problem() -> Icmpv4Type {
    Icmpv4Type::ParameterProblem(ParameterProblemHeader::PointerIndicatesError(8))
}

// ---------------------------------------------------------------------------------------------
// The fixture table
// ---------------------------------------------------------------------------------------------

/// The connections the fixtures are about, opened at [`NOW_MS`]: TCP 40000 -> VIP:80 (.148),
/// UDP 5353 -> VIP:53 (.148), TCP 40002 -> VIP:8080 (.148:8000).
fn open_connections(d: &mut Director) {
    for (mut frame, from) in opening_frames() {
        let verdict = process_at(d, &mut frame, from, NOW_MS);
        assert!(matches!(verdict, Verdict::Forward(_)), "{}", hex(&frame));
    }
}

/// The frames that open the connections of [`open_connections`], with their sides.
fn opening_frames() -> Vec<(Vec<u8>, Side)> {
    let opening = [
        (
            Packet::tcp(at(CLIENT, 40000), at(VIP, 80), SYN, 1000, 0),
            Side::External,
        ),
        (
            Packet::tcp(at(REAL_148, 80), at(CLIENT, 40000), SYN | ACK, 5000, 1001),
            Side::Internal,
        ),
        (
            Packet::tcp(at(CLIENT, 40000), at(VIP, 80), ACK, 1001, 5001),
            Side::External,
        ),
        (Packet::udp(at(CLIENT, 5353), at(VIP, 53)), Side::External),
        (
            Packet::tcp(at(CLIENT, 40002), at(VIP, 8080), SYN, 11000, 0),
            Side::External,
        ),
    ];
    opening
        .into_iter()
        .map(|(packet, from)| {
            let (src, dst) = match from {
                Side::External => (CLIENT_MAC, EXT_MAC),
                Side::Internal => (REAL_148_MAC, INT_MAC),
            };
            (packet.frame(src, dst), from)
        })
        .collect()
}

/// Offsets in a frame without VLAN tag or IP options.
fn fixtures() -> Vec<Fixture> {
    use Side::{External, Internal};
    let c = |port| at(CLIENT, port);
    let (vip_80, vip_53, vip_8080) = (at(VIP, 80), at(VIP, 53), at(VIP, 8080));
    let (r148_80, r148_53, r148_8000) = (at(REAL_148, 80), at(REAL_148, 53), at(REAL_148, 8000));

    // Replies as the client side saw them (after our SNAT), and requests as the real servers
    // saw them (after our DNAT): what ICMP errors quote.
    let reply = Packet::tcp(vip_80, c(40000), PSH | ACK, 5001, 1001).with_payload(&[0x5a; 1400]);
    let mapped_reply = Packet::tcp(vip_8080, c(40002), ACK, 12001, 11001).with_payload(b"data");
    let dns_reply = Packet::udp(vip_53, c(5353)).with_payload(b"\x12\x34\x81\x80 answer");
    let request = Packet::tcp(c(40000), r148_80, PSH | ACK, 1001, 5001).with_payload(b"GET /");
    let mapped_request = Packet::tcp(c(40002), r148_8000, SYN, 11000, 0);
    let dns_request = Packet::udp(c(5353), r148_53).with_payload(b"\x12\x34\x01\x00 query");

    let ext_frag_needed =
        IcmpError::new(GATEWAY, VIP, frag_needed(1300), reply.clone(), 20 + 20 + 8);
    let ext_mapped = IcmpError::new(GATEWAY, VIP, frag_needed(1280), mapped_reply, 20 + 20);
    let ext_time_exceeded = IcmpError::new(GATEWAY, VIP, time_exceeded(), dns_reply, 20 + 8);
    let int_frag_needed = IcmpError::new(
        REAL_148,
        CLIENT,
        frag_needed(1400),
        request.clone(),
        20 + 20,
    );
    let int_time_exceeded = IcmpError::new(
        INTERNAL_ROUTER,
        CLIENT,
        time_exceeded(),
        mapped_request,
        20 + 8,
    );
    let int_port_unreachable =
        IcmpError::new(REAL_148, CLIENT, port_unreachable(), dns_request, 20 + 22);
    let int_parameter_problem = IcmpError::new(
        REAL_148,
        CLIENT,
        parameter_problem(),
        request.clone(),
        20 + 20,
    );

    let unknown_reply = Packet::tcp(vip_80, c(49999), ACK, 1, 1);
    let unknown_request = Packet::tcp(c(49999), r148_80, ACK, 1, 1);
    let truncated_quote = IcmpError::new(GATEWAY, VIP, frag_needed(1300), reply.clone(), 20 + 4);
    let quoted_fragment = IcmpError::new(
        GATEWAY,
        VIP,
        time_exceeded(),
        reply.clone().with_fragment(false, 185),
        20 + 8,
    );
    let quoted_options = IcmpError::new(
        GATEWAY,
        VIP,
        frag_needed(1300),
        reply.clone().with_options(&[1, 1, 1, 0]),
        24 + 8,
    );

    // Malformed TCP: data offset 4 (< 5), and 15 (60 bytes, beyond the 20-byte segment).
    let mut data_offset_4 = Packet::tcp(c(40020), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    data_offset_4[L4_AT + 12] = 0x40;
    let mut data_offset_15 = Packet::tcp(c(40021), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    data_offset_15[L4_AT + 12] = 0xf0;
    // 802.1Q tag (VLAN 100) in front of an IPv4 SYN.
    let plain = Packet::tcp(c(40022), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    let vlan = [&plain[..12], &[0x81, 0x00, 0x00, 0x64], &plain[12..]].concat();
    // A 9000-byte frame of the established connection.
    let jumbo =
        Packet::tcp(c(40000), vip_80, PSH | ACK, 1001, 5001)
            .with_payload(&vec![0x6a; 9000 - 14 - 20 - 20]);
    assert_eq!(jumbo.frame(CLIENT_MAC, EXT_MAC).len(), 9000);

    vec![
        // --- ICMP errors from the external side: to the real server ---
        forward(
            "frag needed (MTU 1300) from a router about our reply: to the real server",
            External,
            ext_frag_needed.frame(GATEWAY_MAC, EXT_MAC),
            ext_frag_needed
                .to_real(r148_80)
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "frag needed about a port-translated reply: quoted source VIP:8080 -> .148:8000",
            External,
            ext_mapped.frame(GATEWAY_MAC, EXT_MAC),
            ext_mapped.to_real(r148_8000).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "time exceeded about a UDP reply (28-byte quote): quoted UDP checksum updated",
            External,
            ext_time_exceeded.frame(GATEWAY_MAC, EXT_MAC),
            ext_time_exceeded
                .to_real(r148_53)
                .frame(INT_MAC, REAL_148_MAC),
        ),
        // --- ICMP errors from the internal side: to the client ---
        forward(
            "frag needed (MTU 1400) from the real server about a request: to the client",
            Internal,
            int_frag_needed.frame(REAL_148_MAC, INT_MAC),
            int_frag_needed.to_client(vip_80).frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "time exceeded from a router behind the director: its source becomes the VIP too",
            Internal,
            int_time_exceeded.frame(INTERNAL_ROUTER_MAC, INT_MAC),
            int_time_exceeded
                .to_client(vip_8080)
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "port unreachable from the real server (no UDP listener): to the client",
            Internal,
            int_port_unreachable.frame(REAL_148_MAC, INT_MAC),
            int_port_unreachable
                .to_client(vip_53)
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "parameter problem from the real server: to the client",
            Internal,
            int_parameter_problem.frame(REAL_148_MAC, INT_MAC),
            int_parameter_problem
                .to_client(vip_80)
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        // --- ICMP errors that are not ours ---
        dropped(
            "frag needed about an unknown flow (external): no connection",
            External,
            IcmpError::new(GATEWAY, VIP, frag_needed(1300), unknown_reply.clone(), 48)
                .frame(GATEWAY_MAC, EXT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "port unreachable about an unknown flow (internal): no connection",
            Internal,
            IcmpError::new(REAL_148, CLIENT, port_unreachable(), unknown_request, 28)
                .frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "an error not addressed to the quoted packet's source (the VIP)",
            External,
            IcmpError::new(GATEWAY, OTHER_LOCAL, frag_needed(1300), reply.clone(), 48)
                .frame(GATEWAY_MAC, EXT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "an error quoting less than an IPv4 header and 8 bytes",
            External,
            truncated_quote.frame(GATEWAY_MAC, EXT_MAC),
            DropReason::Malformed,
        ),
        dropped(
            "an error quoting a non-first fragment (no ports to match)",
            External,
            quoted_fragment.frame(GATEWAY_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "an error quoting a header with options (we never forward one)",
            External,
            quoted_options.frame(GATEWAY_MAC, EXT_MAC),
            DropReason::IpOptions,
        ),
        dropped(
            "an error with TTL 1",
            External,
            ext_frag_needed
                .clone()
                .with_ttl(1)
                .frame(GATEWAY_MAC, EXT_MAC),
            DropReason::TtlExceeded,
        ),
        // --- Fragments: never load-balanced, whichever side ---
        dropped(
            "first fragment (MF, offset 0) of a UDP datagram to VIP:53",
            External,
            Packet::udp(c(5353), vip_53)
                .with_fragment(true, 0)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "non-first fragment to the VIP (offset 1480, no ports)",
            External,
            Packet::udp(c(5353), vip_53)
                .with_fragment(false, 185)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "non-first fragment of a real server's reply (never forwarded un-NATed)",
            Internal,
            Packet::udp(r148_53, c(5353))
                .with_fragment(true, 185)
                .frame(REAL_148_MAC, INT_MAC),
            DropReason::Fragment,
        ),
        // --- Headers we refuse ---
        dropped(
            "IPv4 options (router alert)",
            External,
            Packet::tcp(c(40000), vip_80, ACK, 1001, 5001)
                .with_options(&[0x94, 0x04, 0x00, 0x00])
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::IpOptions,
        ),
        dropped(
            "TCP data offset 4 (< 5)",
            External,
            data_offset_4,
            DropReason::Malformed,
        ),
        dropped(
            "TCP data offset 15 (60 bytes) beyond the 20-byte segment",
            External,
            data_offset_15,
            DropReason::Malformed,
        ),
        dropped("empty frame", External, Vec::new(), DropReason::Malformed),
        dropped(
            "10-byte frame, shorter than an Ethernet header",
            Internal,
            plain[..10].to_vec(),
            DropReason::Malformed,
        ),
        dropped(
            "802.1Q VLAN-tagged IPv4 (the XDP program passes it to the kernel)",
            External,
            vlan,
            DropReason::NotIpv4,
        ),
        // --- Jumbo frames: process is length-agnostic ---
        forward(
            "9000-byte frame of an established connection: forwarded, length unchanged",
            External,
            jumbo.frame(CLIENT_MAC, EXT_MAC),
            jumbo.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        // --- The VIP on a port without a service (the XDP program passes these) ---
        dropped(
            "TCP SYN to VIP:81, no service",
            External,
            Packet::tcp(c(40023), at(VIP, 81), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoService,
        ),
        dropped(
            "UDP to VIP:9, no service",
            External,
            Packet::udp(c(40024), at(VIP, 9)).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoService,
        ),
    ]
}

impl Packet {
    /// DNAT to `real`, TTL - 1, as the director forwards a request.
    fn dnat(&self, real: SocketAddrV4) -> Self {
        self.clone().with_dst(real).with_ttl(self.ttl - 1)
    }
}

#[test]
fn odd_packets_have_decided_behaviours() {
    let mut d = director();
    open_connections(&mut d);
    let before: Vec<_> = d.conns.iter().copied().collect();
    let fixtures = fixtures();
    let mut drops: HashMap<DropReason, u64> = HashMap::new();
    for f in &fixtures {
        let mut frame = f.input.clone();
        let verdict = process_at(&mut d, &mut frame, f.from, LATER_MS);
        assert_eq!(verdict, f.verdict, "{}", f.description);
        let expected = f.output.as_ref().unwrap_or(&f.input);
        assert!(
            frame == *expected,
            "{}: frames differ\n  actual:\n    {}\n  expected:\n    {}",
            f.description,
            hex(&frame),
            hex(expected)
        );
        if let Verdict::Drop(reason) = verdict {
            *drops.entry(reason).or_default() += 1;
        }
    }

    // (Drops are counted by the worker from the verdict: `WorkerStats::count_drop`.)
    let tally = |r: DropReason| drops.get(&r).copied().unwrap_or(0);
    assert_eq!(tally(DropReason::NoConnection), 3);
    assert_eq!(tally(DropReason::Fragment), 4);
    // Translated ICMP errors, by direction and reason.
    let icmp = |dir: usize, r: IcmpReason| d.stats.icmp[dir][r as usize].get();
    assert_eq!(icmp(0, IcmpReason::FragNeeded), 2);
    assert_eq!(icmp(0, IcmpReason::TimeExceeded), 1);
    assert_eq!(icmp(1, IcmpReason::FragNeeded), 1);
    assert_eq!(icmp(1, IcmpReason::TimeExceeded), 1);
    assert_eq!(icmp(1, IcmpReason::Unreachable), 1);
    assert_eq!(icmp(1, IcmpReason::ParameterProblem), 1);
    let total: u64 = d.stats.icmp.iter().flatten().map(|c| c.get()).sum();
    assert_eq!(total, 7);

    // ICMP errors neither created connections nor touched them (no state change, no timer
    // refresh); only the jumbo data segment refreshed its connection's timer.
    let after: Vec<_> = d.conns.iter().copied().collect();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        if b.cport == 40000 {
            assert_eq!(a.state, b.state);
            assert!(
                a.expires_ms > b.expires_ms,
                "the jumbo segment refreshed it"
            );
        } else {
            assert_eq!(a, b, "an ICMP error changed {b:?}");
        }
    }
    // The jumbo frame was counted at its IP length.
    let http = d.stats.services[SVC_HTTP as usize].totals();
    assert_eq!(http.inbytes, 40 + 40 + (9000 - 14));
}

/// ICMP errors are handled by the worker that owns the connection they are about: the
/// ownership key is the quoted packet's client endpoint.
#[test]
fn icmp_errors_belong_to_the_quoted_client_endpoint() {
    let reply = Packet::tcp(at(VIP, 80), at(CLIENT, 40000), ACK, 1, 1);
    let request = Packet::tcp(at(CLIENT, 40000), at(REAL_148, 80), ACK, 1, 1);
    let from_client_side =
        IcmpError::new(GATEWAY, VIP, frag_needed(1300), reply, 28).frame(GATEWAY_MAC, EXT_MAC);
    let from_real_side = IcmpError::new(REAL_148, CLIENT, port_unreachable(), request, 28)
        .frame(REAL_148_MAC, INT_MAC);
    assert_eq!(
        client_endpoint(&from_client_side, Side::External),
        Some((CLIENT, 40000))
    );
    assert_eq!(
        client_endpoint(&from_real_side, Side::Internal),
        Some((CLIENT, 40000))
    );
}

/// Every forwarded ICMP error checks out for its receiver: the outer IPv4 checksum, the ICMP
/// checksum over the whole message, the quoted IPv4 header's checksum (checked here with the
/// tests' own RFC 1071 code, not the crate's).
#[test]
fn translated_icmp_errors_have_valid_checksums() {
    let mut d = director();
    open_connections(&mut d);
    let mut checked = 0;
    for f in fixtures() {
        let mut frame = f.input.clone();
        let verdict = process_at(&mut d, &mut frame, f.from, LATER_MS);
        if !matches!(verdict, Verdict::Forward(_)) || frame[IP + 9] != 1 {
            continue;
        }
        let total = usize::from(u16::from_be_bytes([frame[IP + 2], frame[IP + 3]]));
        let ip = &frame[IP..IP + total];
        assert_eq!(internet_checksum(&[&ip[..20]]), 0, "{}", f.description);
        assert_eq!(internet_checksum(&[&ip[20..]]), 0, "{}", f.description);
        assert_eq!(internet_checksum(&[&ip[28..48]]), 0, "{}", f.description);
        checked += 1;
    }
    assert_eq!(checked, 7);
}

/// Writes `process` fuzz seeds: the opening handshakes followed by one odd packet each, so
/// the fuzzer starts from translated ICMP errors and the other decided cases.
/// `cargo test --release -p xvs-dataplane --test odd_packets -- --ignored write_fuzz_seeds`
#[test]
#[ignore = "writes fuzz/seeds; run by hand when the fixtures change"]
fn write_fuzz_seeds() {
    let opening: Vec<u8> = opening_frames()
        .iter()
        .flat_map(|(frame, from)| fuzz_record(frame, *from, 0))
        .collect();
    let dir = fuzz_seed_dir("process");
    for (n, fixture) in fixtures().iter().enumerate() {
        let seed = [
            opening.clone(),
            fuzz_record(&fixture.input, fixture.from, 0),
        ]
        .concat();
        std::fs::write(dir.join(format!("odd-{n:02}")), seed).unwrap();
    }
}
