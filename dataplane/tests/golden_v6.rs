//! Golden fixtures for the IPv6 packet path (`process6`), one table in order through one
//! director, as `golden` does for IPv4; then Packet Too Big, partial checksums, ownership and
//! a property over arbitrary bytes.
//!
//! What the director must do for IPv6 (IPVS's `ip_vs_nat_xmit_v6`, `ip_vs_dr_xmit_v6`,
//! `ip_vs_nat_icmp_v6`; DPVS's FullNAT): NAT66 rewrites the destination of requests to
//! RIP:rport and the source of replies to VIP:vport, FullNAT both endpoints, with the hop limit
//! decremented and every checksum right; DR forwards the packet untouched to the real server's
//! MAC; ICMPv6 errors about a connection are translated as the packet they quote would have
//! been. Expected frames are built from scratch by etherparse (every checksum computed in
//! full), so a single wrong byte fails; `l4_ok6` recomputes the TCP/UDP checksums too.
//! Tunnels have their own fixtures (`golden_tunnel6.rs`). Addresses: 2001:2::/48 (`common`'s
//! test network).

mod common;

use common::*;
use etherparse::{icmpv6, Icmpv6Type, PacketBuilder};
use proptest::prelude::*;
use std::net::Ipv6Addr;
use xvs_dataplane::conntrack::TcpState;
use xvs_dataplane::persist::prefix_mask6;
use xvs_dataplane::process::{client_endpoint6, Side, Verdict};
use xvs_dataplane::snapshot::{Method, Persistence, RealId, ServiceId, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::{DropReason, IcmpReason};

const SVC_WEB: ServiceId = 0; // TCP VIP6:80 -> 148:80, 137:8080 (NAT)
const SVC_DNS: ServiceId = 1; // UDP VIP6:53 -> 148:5353 (NAT)
const SVC_DR: ServiceId = 2; // TCP VIP6:443 -> 148:443 (DR)
const SVC_FNAT: ServiceId = 3; // TCP VIP6:9000 -> 137:9090 (FullNAT from LIP6)
const SVC_NEW: ServiceId = 4; // TCP VIP6:22 -> NEW_REAL6:22 (NAT), not resolved yet
const SVC_PERSIST: ServiceId = 6; // TCP VIP6:8000 -> 148, persistent (-M 64)
const SVC_MIXED: ServiceId = 7; // TCP VIP6:25 -> an IPv4 real server: not supported
const SVC_V4: ServiceId = 8; // TCP VIP:25 -> an IPv6 real server (through `process`)
const REAL_WEB_148: RealId = 0;
const REAL_WEB_137: RealId = 1;
const REAL_DNS_148: RealId = 2;
const REAL_FNAT_137: RealId = 4;
const NEW_REAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x140);

fn services() -> Vec<(
    xvs_dataplane::snapshot::Vip,
    xvs_dataplane::snapshot::Service,
)> {
    let (persist_vip, mut persistent) =
        service(SVC_PERSIST, PROTO_TCP, 8000, &[(6, REAL6_148, 8000, 1)]);
    persistent.persistence = Some(Persistence {
        timeout_secs: 300,
        netmask: prefix_mask6(64).into(),
    });
    // A service of one family whose real server is of the other.
    let cross = |id, vip: std::net::IpAddr, real: std::net::IpAddr| {
        let (mut v, mut s) = service(id, PROTO_TCP, 25, &[(id, REAL6_148, 25, 1)]);
        v.addr = vip;
        s.vip = v;
        s.reals[0].addr = real;
        (v, s)
    };
    vec![
        service(
            SVC_WEB,
            PROTO_TCP,
            80,
            &[
                (REAL_WEB_148, REAL6_148, 80, 1),
                (REAL_WEB_137, REAL6_137, 8080, 1),
            ],
        ),
        service(
            SVC_DNS,
            PROTO_UDP,
            53,
            &[(REAL_DNS_148, REAL6_148, 5353, 1)],
        ),
        service_by(
            Method::Route,
            SVC_DR,
            PROTO_TCP,
            443,
            &[(3, REAL6_148, 443, 1)],
        ),
        service_by(
            Method::FullNat,
            SVC_FNAT,
            PROTO_TCP,
            9000,
            &[(REAL_FNAT_137, REAL6_137, 9090, 1)],
        ),
        service(SVC_NEW, PROTO_TCP, 22, &[(5, NEW_REAL6, 22, 1)]),
        (persist_vip, persistent),
        cross(SVC_MIXED, VIP6.into(), REAL_148.into()),
        cross(SVC_V4, VIP.into(), REAL6_148.into()),
    ]
}

fn director() -> Director {
    Director::from_parts(snapshot_with(services()), dual_stack(), 64)
}

/// An Ethernet frame carrying an ICMPv6 message of `icmp_type` from `src` to `dst` with hop
/// limit `hop_limit`, whose body is `body` (the quote of an error).
fn icmp6(
    macs: ([u8; 6], [u8; 6]),
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    icmp_type: Icmpv6Type,
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv6(src.octets(), dst.octets(), hop_limit)
        .icmpv6(icmp_type)
        .write(&mut out, body)
        .unwrap();
    out
}

const TOO_BIG_1400: Icmpv6Type = Icmpv6Type::PacketTooBig { mtu: 1400 };
const HOP_LIMIT_EXCEEDED: Icmpv6Type =
    Icmpv6Type::TimeExceeded(icmpv6::TimeExceededCode::HopLimitExceeded);

/// Runs `steps` in order through `d` with `process6`: the verdicts, the frames that leave
/// (their TCP/UDP checksums recomputed in full) and the frames dropped, untouched.
fn run(d: &mut Director, steps: Vec<Fixture>) {
    for f in steps {
        let mut frame = f.input.clone();
        let got = d.process6(&mut frame, f.from);
        assert_eq!(got, f.verdict, "{}", f.description);
        match f.output {
            Some(expected) => {
                assert_frame_eq(&frame, &expected, f.description);
                let icmp = frame[IP + 6] == 58;
                assert!(
                    icmp || l4_ok6(&frame),
                    "{}: TCP/UDP checksum",
                    f.description
                );
            }
            None => assert_eq!(
                frame, f.input,
                "{}: a frame not forwarded is untouched",
                f.description
            ),
        }
    }
}

/// The table, in order through one director: the frame arriving, its verdict and the frame
/// that leaves.
fn fixtures() -> Vec<Fixture> {
    use Side::{External, Internal};
    let syn = Packet::tcp(c6(40000), vip6(80), SYN, 1000, 0);
    let syn_ack = Packet::tcp(r148_6(80), c6(40000), SYN | ACK, 5000, 1001);
    let ack = Packet::tcp(c6(40000), vip6(80), ACK, 1001, 5001);
    // Behind Hop-by-Hop and Destination Options headers, which stay as they are.
    let request = Packet::tcp(c6(40000), vip6(80), PSH | ACK, 1001, 5001)
        .with_payload(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        .with_hop_by_hop(&PADN)
        .with_dst_options(&PADN);
    let response =
        Packet::tcp(r148_6(80), c6(40000), PSH | ACK, 5001, 1031).with_payload(&[7; 600]);
    let syn2 = Packet::tcp(c6(40001), vip6(80), SYN, 7000, 0);
    // A Routing header whose segments are exhausted: VIP6 is the final destination.
    let routed = Packet::tcp(c6(40002), vip6(80), SYN, 9000, 0).with_routing(0);
    let dns = Packet::udp(c6(5300), vip6(53)).with_payload(b"\x12\x34query");
    let dns_answer = Packet::udp(r148_6(5353), c6(5300)).with_payload(b"\x12\x34answer");
    let dr_syn = Packet::tcp(c6(40100), vip6(443), SYN, 1, 0).with_ttl(2);
    let fnat_syn = Packet::tcp(c6(40200), vip6(9000), SYN, 1, 0);
    let fnat_syn_ack = Packet::tcp(r137_6(9090), l6(1024), SYN | ACK, 9, 2);
    // What the real servers saw of the requests, and the client of the response.
    let request_out = request.forwarded(c6(40000), r148_6(80));
    let response_out = response.forwarded(vip6(80), c6(40000));
    let fnat_syn_out = fnat_syn.forwarded(l6(1024), r137_6(9090));
    vec![
        forward(
            "SYN: scheduled to .148, destination RIP:80, hop limit 63",
            External,
            syn.frame(CLIENT_MAC, EXT_MAC),
            syn.forwarded(c6(40000), r148_6(80))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "SYN-ACK leaves as VIP:80 -> CIP:40000",
            Internal,
            syn_ack.frame(REAL_148_MAC, INT_MAC),
            syn_ack
                .forwarded(vip6(80), c6(40000))
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "handshake ACK",
            External,
            ack.frame(CLIENT_MAC, EXT_MAC),
            ack.forwarded(c6(40000), r148_6(80))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "request behind Hop-by-Hop and Destination Options headers",
            External,
            request.frame(CLIENT_MAC, EXT_MAC),
            request_out.frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "response with payload",
            Internal,
            response.frame(REAL_148_MAC, INT_MAC),
            response_out.frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "second SYN: round robin to .137:8080",
            External,
            syn2.frame(CLIENT_MAC, EXT_MAC),
            syn2.forwarded(c6(40001), r137_6(8080))
                .frame(INT_MAC, REAL_137_MAC),
        ),
        forward(
            "a Routing header without segments left: forwarded, the header kept",
            External,
            routed.frame(CLIENT_MAC, EXT_MAC),
            routed
                .forwarded(c6(40002), r148_6(80))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        dropped(
            "a Routing header with segments left: VIP6 is not the final destination",
            External,
            Packet::tcp(c6(40003), vip6(80), SYN, 1, 0)
                .with_routing(1)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::RoutingHeader,
        ),
        forward(
            "UDP query to RIP:5353",
            External,
            dns.frame(CLIENT_MAC, EXT_MAC),
            dns.forwarded(c6(5300), r148_6(5353))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "UDP answer from VIP:53",
            Internal,
            dns_answer.frame(REAL_148_MAC, INT_MAC),
            dns_answer
                .forwarded(vip6(53), c6(5300))
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        dropped(
            "UDP with checksum 0: invalid in IPv6",
            External,
            Packet::udp(c6(5301), vip6(53))
                .without_udp_checksum()
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Malformed,
        ),
        forward(
            "DR: the packet untouched (hop limit 2 stays 2), to .148's MAC",
            External,
            dr_syn.frame(CLIENT_MAC, EXT_MAC),
            dr_syn.frame(INT_MAC, REAL_148_MAC),
        ),
        dropped(
            "a packet from a DR real server's RIP:rport is no reply",
            Internal,
            Packet::tcp(r148_6(443), c6(40100), ACK, 1, 2).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        forward(
            "FullNAT SYN: LIP:1024 -> RIP:9090",
            External,
            fnat_syn.frame(CLIENT_MAC, EXT_MAC),
            fnat_syn_out.frame(INT_MAC, REAL_137_MAC),
        ),
        forward(
            "FullNAT SYN-ACK to LIP:1024 leaves as VIP:9000 -> CIP:40200",
            Internal,
            fnat_syn_ack.frame(REAL_137_MAC, INT_MAC),
            fnat_syn_ack
                .forwarded(vip6(9000), c6(40200))
                .frame(EXT_MAC, CLIENT_MAC),
        ),
        dropped(
            "a new flow from the local address",
            External,
            Packet::tcp(l6(1024), vip6(9000), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::LocalSource,
        ),
        forward(
            "Packet Too Big from the real server about a request: to the client from the VIP, \
             quoting CIP:40000 -> VIP:80",
            Internal,
            icmp6(
                (REAL_148_MAC, INT_MAC),
                (REAL6_148, CLIENT6),
                64,
                TOO_BIG_1400,
                &request_out.ip_packet(),
            ),
            icmp6(
                (EXT_MAC, CLIENT_MAC),
                (VIP6, CLIENT6),
                63,
                TOO_BIG_1400,
                &request.with_ttl(request_out.ttl).ip_packet(),
            ),
        ),
        forward(
            "Time Exceeded from the client's gateway about a response: to the real server, \
             quoting RIP:80 -> CIP:40000",
            External,
            icmp6(
                (GATEWAY_MAC, EXT_MAC),
                (GATEWAY6, VIP6),
                64,
                HOP_LIMIT_EXCEEDED,
                &response_out.ip_packet()[..48],
            ),
            icmp6(
                (INT_MAC, REAL_148_MAC),
                (GATEWAY6, REAL6_148),
                63,
                HOP_LIMIT_EXCEEDED,
                &response.with_ttl(response_out.ttl).ip_packet()[..48],
            ),
        ),
        forward(
            "FullNAT: Packet Too Big from the real server about a request, to the client from \
             the VIP, quoting CIP:40200 -> VIP:9000",
            Internal,
            icmp6(
                (REAL_137_MAC, INT_MAC),
                (REAL6_137, LIP6),
                64,
                TOO_BIG_1400,
                &fnat_syn_out.ip_packet(),
            ),
            icmp6(
                (EXT_MAC, CLIENT_MAC),
                (VIP6, CLIENT6),
                63,
                TOO_BIG_1400,
                &fnat_syn.with_ttl(fnat_syn_out.ttl).ip_packet(),
            ),
        ),
        dropped(
            "an error about a flow the director does not know",
            Internal,
            icmp6(
                (REAL_148_MAC, INT_MAC),
                (REAL6_148, CLIENT6),
                64,
                TOO_BIG_1400,
                &Packet::tcp(c6(1), r148_6(80), ACK, 1, 1).ip_packet(),
            ),
            DropReason::NoConnection,
        ),
        dropped(
            "hop limit 1",
            External,
            Packet::tcp(c6(40000), vip6(80), ACK, 1031, 5601)
                .with_ttl(1)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::TtlExceeded,
        ),
        dropped(
            "a fragment (first, more to come)",
            External,
            Packet::tcp(c6(40004), vip6(80), SYN, 1, 0)
                .with_fragment(true, 0)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "no service on VIP:8080",
            External,
            Packet::tcp(c6(40005), vip6(8080), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoService,
        ),
        dropped(
            "a mid-flow segment of no connection",
            External,
            Packet::tcp(c6(40006), vip6(80), ACK, 1, 1).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoConnection,
        ),
        Fixture {
            description: "the real server's MAC is not resolved yet",
            from: External,
            input: Packet::tcp(c6(40007), vip6(22), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            verdict: Verdict::Unresolved {
                ifindex: INT_IF,
                addr: NEW_REAL6.into(),
            },
            output: None,
        },
        forward(
            "a persistent service: scheduled (and its template recorded)",
            External,
            Packet::tcp(c6(40009), vip6(8000), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            Packet::tcp(c6(40009), vip6(8000), SYN, 1, 0)
                .forwarded(c6(40009), r148_6(8000))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        dropped(
            "an IPv4 real server",
            External,
            Packet::tcp(c6(40010), vip6(25), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::RealFamily,
        ),
        dropped(
            "Neighbour Solicitation: the kernel's",
            External,
            icmp6(
                (CLIENT_MAC, EXT_MAC),
                (CLIENT6, VIP6),
                255,
                Icmpv6Type::Unknown {
                    type_u8: 135,
                    code_u8: 0,
                    bytes5to8: [0; 4],
                },
                &VIP6.octets(),
            ),
            DropReason::UnsupportedProtocol,
        ),
        dropped(
            "echo request: the kernel's",
            External,
            icmp6(
                (CLIENT_MAC, EXT_MAC),
                (CLIENT6, VIP6),
                64,
                Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader { id: 1, seq: 1 }),
                b"ping",
            ),
            DropReason::UnsupportedProtocol,
        ),
        dropped(
            "an IPv4 frame",
            External,
            Packet::tcp(at(CLIENT, 40000), at(VIP, 80), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::Malformed,
        ),
    ]
}

#[test]
fn golden_ipv6() {
    let mut d = director();
    run(&mut d, fixtures());

    // NAT and FullNAT see both halves (IPVS's full TCP table), DR the client's only.
    let conn = |cport: u16| d.conns6.iter().find(|c| c.cport == cport).copied().unwrap();
    assert_eq!(conn(40000).state, TcpState::Established);
    assert_eq!(conn(40200).state, TcpState::SynRecv);
    assert_eq!(
        (conn(40200).laddr, conn(40200).lport),
        (LIP6, 1024),
        "FullNAT's local endpoint"
    );
    assert_eq!(conn(40100).method, Method::Route);
    // And 40007's, made before its next hop was found unresolved (the worker holds the frame
    // and tries again).
    assert_eq!(
        d.conns6.len(),
        8,
        "40000, 40001, 40002, 5300, 40100, 40200, 40007, 40009"
    );
    assert!(d.conns.is_empty(), "the IPv4 table is not touched");
    let web = d.stats.services[SVC_WEB as usize].totals();
    assert_eq!((web.conns, web.inpkts, web.outpkts), (3, 5, 2));
    let dns = d.stats.reals[REAL_DNS_148 as usize].traffic.totals();
    assert_eq!((dns.conns, dns.inpkts, dns.outpkts), (1, 1, 1));
    let icmp = |dir: usize, reason: IcmpReason| d.stats.icmp[dir][reason as usize].get();
    assert_eq!(icmp(1, IcmpReason::FragNeeded), 2, "Packet Too Big, out");
    assert_eq!(icmp(0, IcmpReason::TimeExceeded), 1, "Time Exceeded, in");
}

/// `-p 300 -M 64` over round robin: new connections from any client of one /64 stick to the
/// first one's server, where the same service without persistence alternates; another /64
/// gets a template of its own, the scheduler's next server.
#[test]
fn persistent_ipv6_service_keeps_a_client_prefix_on_one_server() {
    const PERSISTENT: ServiceId = 0;
    const PLAIN: ServiceId = 1;
    let reals = |id: RealId, port| [(id, REAL6_148, port, 1), (id + 1, REAL6_137, port, 1)];
    let (key, mut persistent) = service(PERSISTENT, PROTO_TCP, 8000, &reals(0, 8000));
    persistent.persistence = Some(Persistence {
        timeout_secs: 300,
        netmask: prefix_mask6(64).into(),
    });
    let mut d = Director::from_parts(
        snapshot_with([
            (key, persistent),
            service(PLAIN, PROTO_TCP, 8001, &reals(2, 8001)),
        ]),
        dual_stack(),
        64,
    );
    let syn = |d: &mut Director, client: Ipv6Addr, port: u16, vport: u16| -> Ipv6Addr {
        let mut frame =
            Packet::tcp(at6(client, port), vip6(vport), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
        assert_eq!(
            d.process6(&mut frame, Side::External),
            Verdict::Forward(Side::Internal),
            "{client} port {port}"
        );
        etherparse::Ipv6HeaderSlice::from_slice(&frame[IP..])
            .unwrap()
            .destination_addr()
    };
    // Two clients of 2001:2::/64 (CLIENT6 is 2001:2::201).
    let neighbour = Ipv6Addr::new(0x2001, 2, 0, 0, 0xa, 0, 0, 0x202);
    let clients = [CLIENT6, neighbour];
    let plain: Vec<_> = (0..4)
        .map(|i| syn(&mut d, clients[i % 2], 41000 + i as u16, 8001))
        .collect();
    assert_eq!(plain, [REAL6_148, REAL6_137, REAL6_148, REAL6_137]);
    for i in 0..6 {
        let real = syn(&mut d, clients[i % 2], 40000 + i as u16, 8000);
        assert_eq!(real, REAL6_148, "connection {i}: the /64's server");
    }
    // 2001:2:0:5::/64 is another prefix: a template of its own, round robin's next server.
    let other = Ipv6Addr::new(0x2001, 2, 0, 5, 0, 0, 0, 0x201);
    assert_eq!(syn(&mut d, other, 50000, 8000), REAL6_137);
    assert_eq!(syn(&mut d, other, 50001, 8000), REAL6_137);
    assert_eq!(syn(&mut d, CLIENT6, 50002, 8000), REAL6_148);

    // .148 fails its health check (weight 0 and failed): the /64's template is not honoured
    // any more, its clients go to the scheduler (and stay on its pick).
    let down = [(0, REAL6_148, 8000, 0), (1, REAL6_137, 8000, 1)];
    let (key, mut persistent) = service(PERSISTENT, PROTO_TCP, 8000, &down);
    persistent.persistence = d.config.services[&key].persistence;
    persistent.reals[0].failed = true;
    d.config = snapshot_with([(key, persistent)]);
    assert_eq!(syn(&mut d, neighbour, 50003, 8000), REAL6_137);
    assert_eq!(syn(&mut d, CLIENT6, 50004, 8000), REAL6_137);
}

/// A new IPv4 flow to a service whose real server is IPv6 is refused through `process`.
#[test]
fn ipv4_flow_to_an_ipv6_real_server_is_refused() {
    let mut d = director();
    let input = Packet::tcp(at(CLIENT, 40000), at(VIP, 25), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    let mut frame = input.clone();
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Drop(DropReason::RealFamily)
    );
    assert_eq!(frame, input);
    assert!(d.conns.is_empty());
}

/// A packet longer than the egress MTU is answered with Packet Too Big from the arrival
/// interface's address, back out of the arrival side to the MAC it came from; both ways.
#[test]
fn oversize_packets_are_answered_with_packet_too_big() {
    let mut d = director();
    let syn = Packet::tcp(c6(41000), vip6(80), SYN, 1, 0);
    let mut frame = syn.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    d.config.internal.mtu = 1400;
    d.config.external.mtu = 1400;

    // 1500 bytes: 40 + 20 + 1440.
    let big = Packet::tcp(c6(41000), vip6(80), ACK, 2, 2).with_payload(&[0x5a; 1440]);
    let ip = big.ip_packet();
    assert_eq!(ip.len(), 1500);
    let mut frame = big.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::External)
    );
    let expected = icmp6(
        (EXT_MAC, CLIENT_MAC),
        (EXT_ADDR6, CLIENT6),
        64,
        TOO_BIG_1400,
        &ip[..1232],
    );
    assert_eq!(expected.len(), 14 + 1280, "the minimum MTU, no more");
    assert_frame_eq(&frame, &expected, "Packet Too Big to the client");

    let reply = Packet::tcp(r148_6(80), c6(41000), ACK, 2, 2).with_payload(&[0xa5; 1440]);
    let mut frame = reply.frame(REAL_148_MAC, INT_MAC);
    assert_eq!(
        d.process6(&mut frame, Side::Internal),
        Verdict::Forward(Side::Internal)
    );
    let expected = icmp6(
        (INT_MAC, REAL_148_MAC),
        (DIP6, REAL6_148),
        64,
        TOO_BIG_1400,
        &reply.ip_packet()[..1232],
    );
    assert_frame_eq(&frame, &expected, "Packet Too Big to the real server");
    assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 2);

    // A packet that fits passes; without an address to answer from, a packet too big is
    // dropped (the verdict's drop, counted by the worker), untouched.
    let fits = Packet::tcp(c6(41000), vip6(80), ACK, 2, 2).with_payload(&[0x5a; 1340]);
    let mut frame = fits.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    d.config.external.addr6 = None;
    let input = big.frame(CLIENT_MAC, EXT_MAC);
    d.assert_drops6(&input, DropReason::TooBig);
    assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 2);
    // An answered packet counts as the service's traffic, as a tunnel's answered with
    // "fragmentation needed" does; the dropped one does not.
    let web = d.stats.services[SVC_WEB as usize].totals();
    assert_eq!((web.inpkts, web.outpkts), (3, 1));
}

/// A partial checksum (left by an offloading sender) is completed, whatever the method.
#[test]
fn partial_checksums_are_completed() {
    let mut d = director();
    let syn = Packet::tcp(c6(42000), vip6(80), SYN, 1, 0).with_payload(b"data");
    let mut frame = with_partial_checksum6(syn.frame(CLIENT_MAC, EXT_MAC), IP + 40, PROTO_TCP);
    assert_ne!(frame, syn.frame(CLIENT_MAC, EXT_MAC));
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let expected = syn
        .forwarded(c6(42000), r148_6(80))
        .frame(INT_MAC, REAL_148_MAC);
    assert_frame_eq(&frame, &expected, "NAT: completed");

    let dns = Packet::udp(c6(42001), vip6(53))
        .with_payload(b"q")
        .with_dst_options(&PADN);
    let mut frame = with_partial_checksum6(dns.frame(CLIENT_MAC, EXT_MAC), IP + 48, PROTO_UDP);
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let expected = dns
        .forwarded(c6(42001), r148_6(5353))
        .frame(INT_MAC, REAL_148_MAC);
    assert_frame_eq(
        &frame,
        &expected,
        "UDP behind an extension header: completed",
    );

    let dr = Packet::tcp(c6(42002), vip6(443), SYN, 1, 0).with_payload(b"data");
    let mut frame = with_partial_checksum6(dr.frame(CLIENT_MAC, EXT_MAC), IP + 40, PROTO_TCP);
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    assert_frame_eq(&frame, &dr.frame(INT_MAC, REAL_148_MAC), "DR: completed");
}

/// The client endpoint decides the owner worker: the source of requests, the destination of
/// replies, the quoted client of an error; nothing for frames `process6` drops anyway.
#[test]
fn client_endpoints() {
    let request = Packet::tcp(c6(43000), vip6(80), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    let reply = Packet::tcp(r148_6(80), c6(43000), ACK, 1, 1).frame(REAL_148_MAC, INT_MAC);
    let error = icmp6(
        (REAL_148_MAC, INT_MAC),
        (REAL6_148, CLIENT6),
        64,
        TOO_BIG_1400,
        &Packet::tcp(c6(43000), r148_6(80), ACK, 1, 1).ip_packet(),
    );
    let endpoint = Some((CLIENT6, 43000));
    assert_eq!(client_endpoint6(&request, Side::External), endpoint);
    assert_eq!(client_endpoint6(&reply, Side::Internal), endpoint);
    assert_eq!(client_endpoint6(&error, Side::Internal), endpoint);
    let fragment = Packet::tcp(c6(43000), vip6(80), SYN, 1, 0)
        .with_fragment(false, 8)
        .frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(client_endpoint6(&fragment, Side::External), None);
    assert_eq!(client_endpoint6(&request[..50], Side::External), None);
}

/// A valid Ethernet and IPv6 header, with addresses and next header among those the director
/// cares about, before arbitrary bytes.
fn arbitrary_frame() -> impl Strategy<Value = (Vec<u8>, Side)> {
    let addr = prop_oneof![
        Just(CLIENT6),
        Just(VIP6),
        Just(REAL6_148),
        Just(REAL6_137),
        Just(LIP6),
        any::<u128>().prop_map(Ipv6Addr::from),
    ];
    let next_header = prop_oneof![
        Just(0u8),
        Just(6),
        Just(17),
        Just(43),
        Just(44),
        Just(58),
        Just(60),
        any::<u8>(),
    ];
    (
        addr.clone(),
        addr,
        next_header,
        any::<u8>(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec(any::<u8>(), 0..1600),
        any::<bool>(),
    )
        .prop_map(|(src, dst, next, hop_limit, payload_len, body, internal)| {
            let mut frame = vec![0u8; 14 + 40];
            frame[..6].copy_from_slice(&EXT_MAC);
            frame[6..12].copy_from_slice(&CLIENT_MAC);
            frame[12..14].copy_from_slice(&[0x86, 0xdd]);
            frame[14] = 0x60;
            let len = payload_len.unwrap_or(body.len().min(usize::from(u16::MAX)) as u16);
            frame[18..20].copy_from_slice(&len.to_be_bytes());
            frame[20] = next;
            frame[21] = hop_limit;
            frame[22..38].copy_from_slice(&src.octets());
            frame[38..54].copy_from_slice(&dst.octets());
            frame.extend_from_slice(&body);
            let side = if internal {
                Side::Internal
            } else {
                Side::External
            };
            (frame, side)
        })
}

proptest! {
    /// Whatever follows a valid Ethernet and IPv6 header, `process6` and `client_endpoint6`
    /// do not panic, and the table's count matches its entries.
    #[test]
    fn arbitrary_bytes_never_panic(
        frames in proptest::collection::vec(arbitrary_frame(), 1..8),
        small_mtu in any::<bool>(),
    ) {
        let mut d = director();
        if small_mtu {
            d.config.internal.mtu = 1280;
            d.config.external.mtu = 1280;
        }
        for (frame, side) in frames {
            let _ = client_endpoint6(&frame, side);
            let mut frame = frame;
            let _ = d.process6(&mut frame, side);
        }
        prop_assert_eq!(d.conns6.len(), d.conns6.iter().count());
    }
}

/// Writes the table as seeds of the `process` fuzz target (whose director has IPv6 services
/// too). Run by hand (docs/testing.md): into `$XVS_FUZZ_SEEDS`, default fuzz/seeds.
#[test]
#[ignore = "writes files: run by hand to refresh fuzz/seeds"]
fn write_fuzz_seeds() {
    let fixtures = fixtures();
    let dir = fuzz_seed_dir("process");
    for (n, f) in fixtures.iter().enumerate() {
        let record = fuzz_record(&f.input, f.from, 0);
        std::fs::write(dir.join(format!("ipv6-{n:02}")), record).unwrap();
    }
    let table: Vec<u8> = fixtures
        .iter()
        .flat_map(|f| fuzz_record(&f.input, f.from, 0))
        .collect();
    std::fs::write(dir.join("ipv6-table"), table).unwrap();
}
