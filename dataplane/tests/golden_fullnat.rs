//! Golden fixtures for FullNAT (`--fullnat`), one table in order through one director, as
//! `golden` does for masquerading.
//!
//! What FullNAT must do (DPVS's `dp_vs_fnat_in_handler`/`out_handler`): a request
//! CIP:cport -> VIP:vport leaves as LIP:lport -> RIP:rport, the reply RIP:rport -> LIP:lport
//! as VIP:vport -> CIP:cport; the TTL is decremented, every checksum updated. The local port is
//! the table's own (a lone table is worker 0 of 1: ports in order from 1024), so the frames
//! are known to the byte. The real server may sit behind a router; ICMP errors are translated
//! both ways; a packet from RIP:rport to the client itself is no reply of a FullNAT
//! connection; no local port left refuses the flow (`no_local_port`), never reuses a live one;
//! a new flow from the local address itself is refused (`local_source`).

mod common;

use common::*;
use etherparse::{Icmpv4Type, PacketBuilder};
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::conntrack::{owner_of, TcpState};
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Method, RealId, ServiceId, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::DropReason;

const SVC_WEB: ServiceId = 0; // TCP VIP:80 -> .148:8080, 198.19.7.1:80 (behind a router)
const SVC_DNS: ServiceId = 1; // UDP VIP:53 -> .148:5353
const REAL_WEB_148: RealId = 0;
const REAL_FAR: RealId = 1;
const REAL_DNS_148: RealId = 2;
const FAR_REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 7, 1);

fn director() -> Director {
    let config = snapshot_with([
        service_by(
            Method::FullNat,
            SVC_WEB,
            PROTO_TCP,
            80,
            &[
                (REAL_WEB_148, REAL_148, 8080, 1),
                (REAL_FAR, FAR_REAL, 80, 1),
            ],
        ),
        service_by(
            Method::FullNat,
            SVC_DNS,
            PROTO_UDP,
            53,
            &[(REAL_DNS_148, REAL_148, 5353, 1)],
        ),
    ]);
    let neighbours = NeighbourTable::new(
        vec![
            route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
            route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
            route(INT_IF, Ipv4Addr::new(198, 19, 7, 0), 24, Some(ROUTER)),
            route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
        ],
        vec![
            neighbour(EXT_IF, CLIENT, CLIENT_MAC),
            neighbour(EXT_IF, GATEWAY, GATEWAY_MAC),
            neighbour(INT_IF, REAL_148, REAL_148_MAC),
            neighbour(INT_IF, ROUTER, ROUTER_MAC),
        ],
    );
    Director::from_parts(config, neighbours, 64)
}

fn c(port: u16) -> SocketAddrV4 {
    at(CLIENT, port)
}

fn l(port: u16) -> SocketAddrV4 {
    at(LIP, port)
}

/// `packet` with both endpoints replaced and the TTL one lower: what FullNAT sends.
fn translated(packet: &Packet, src: SocketAddrV4, dst: SocketAddrV4) -> Packet {
    packet
        .clone()
        .with_src(src)
        .with_dst(dst)
        .with_ttl(packet.ttl - 1)
}

/// An ICMP "fragmentation needed" (MTU 1400) from `src` to `dst` with TTL `ttl`, quoting the
/// IPv4 header and 8 bytes of `quoted`.
fn frag_needed(
    macs: ([u8; 6], [u8; 6]),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    quoted: &Packet,
) -> Vec<u8> {
    let mut quote = quoted.ip_packet();
    quote.truncate(20 + 8);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.octets(), dst.octets(), ttl)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut out, &quote)
        .unwrap();
    out
}

#[test]
fn golden_fullnat() {
    use Side::{External, Internal};
    let vip_80 = at(VIP, 80);
    let real_8080 = at(REAL_148, 8080);
    let syn = Packet::tcp(c(40000), vip_80, SYN, 1000, 0);
    let syn_ack = Packet::tcp(real_8080, l(1024), SYN | ACK, 5000, 1001);
    let ack = Packet::tcp(c(40000), vip_80, ACK, 1001, 5001);
    let request = Packet::tcp(c(40000), vip_80, PSH | ACK, 1001, 5001)
        .with_payload(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
    let response = Packet::tcp(real_8080, l(1024), PSH | ACK, 5001, 1031).with_payload(&[7; 600]);
    let syn_far = Packet::tcp(c(40001), vip_80, SYN, 7000, 0);
    let dns = Packet::udp(c(5300), at(VIP, 53)).with_payload(b"\x12\x34query");
    let dns_answer = Packet::udp(at(REAL_148, 5353), l(1026)).with_payload(b"\x12\x34answer");
    let dns_no_sum = Packet::udp(c(5301), at(VIP, 53))
        .with_payload(b"\x12\x35query")
        .without_udp_checksum();
    // What the real server and the client saw of the request and the response.
    let request_out = translated(&request, l(1024), real_8080);
    let response_out = translated(&response, vip_80, c(40000));

    let mut d = director();
    let steps = vec![
        forward(
            "SYN: scheduled to .148, LIP:1024 -> RIP:8080, TTL 63",
            External,
            syn.frame(CLIENT_MAC, EXT_MAC),
            translated(&syn, l(1024), real_8080).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "SYN-ACK to LIP:1024 leaves as VIP:80 -> CIP:40000",
            Internal,
            syn_ack.frame(REAL_148_MAC, INT_MAC),
            translated(&syn_ack, vip_80, c(40000)).frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "handshake ACK",
            External,
            ack.frame(CLIENT_MAC, EXT_MAC),
            translated(&ack, l(1024), real_8080).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "request with payload",
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
            "second SYN: round robin to the real server behind a router, LIP:1025",
            External,
            syn_far.frame(CLIENT_MAC, EXT_MAC),
            translated(&syn_far, l(1025), at(FAR_REAL, 80)).frame(INT_MAC, ROUTER_MAC),
        ),
        dropped(
            "a packet from RIP:rport to the client itself is no FullNAT reply",
            Internal,
            Packet::tcp(real_8080, c(40000), ACK, 5601, 1031).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "a new flow from the local address (spoofed) would shadow a FullNAT reply",
            External,
            Packet::tcp(l(1024), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::LocalSource,
        ),
        dropped(
            "a reply to a local port no connection holds",
            Internal,
            Packet::tcp(real_8080, l(1099), ACK, 1, 1).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        forward(
            "ICMP error from the real server about a request: to the client from the VIP, \
             quoting CIP:40000 -> VIP:80",
            Internal,
            frag_needed((REAL_148_MAC, INT_MAC), REAL_148, LIP, 64, &request_out),
            frag_needed(
                (EXT_MAC, CLIENT_MAC),
                VIP,
                CLIENT,
                63,
                &translated(&request_out, c(40000), vip_80).with_ttl(request_out.ttl),
            ),
        ),
        forward(
            "ICMP error from the client's gateway about a response: to the real server from \
             LIP, quoting RIP:8080 -> LIP:1024",
            External,
            frag_needed((GATEWAY_MAC, EXT_MAC), GATEWAY, VIP, 64, &response_out),
            frag_needed(
                (INT_MAC, REAL_148_MAC),
                LIP,
                REAL_148,
                63,
                &translated(&response_out, real_8080, l(1024)).with_ttl(response_out.ttl),
            ),
        ),
        forward(
            "UDP datagram: LIP:1026 -> RIP:5353",
            External,
            dns.frame(CLIENT_MAC, EXT_MAC),
            translated(&dns, l(1026), at(REAL_148, 5353)).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "UDP answer",
            Internal,
            dns_answer.frame(REAL_148_MAC, INT_MAC),
            translated(&dns_answer, at(VIP, 53), c(5300)).frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "UDP without checksum keeps 0",
            External,
            dns_no_sum.frame(CLIENT_MAC, EXT_MAC),
            translated(&dns_no_sum, l(1027), at(REAL_148, 5353)).frame(INT_MAC, REAL_148_MAC),
        ),
    ];
    for f in steps {
        let mut frame = f.input.clone();
        let got = d.process(&mut frame, f.from);
        assert_eq!(got, f.verdict, "{}", f.description);
        match f.output {
            Some(expected) => assert_frame_eq(&frame, &expected, f.description),
            None => assert_eq!(
                frame, f.input,
                "{}: a dropped frame is untouched",
                f.description
            ),
        }
    }

    // Both directions pass through: IPVS's full TCP table, traffic counted both ways.
    let conn = |cport: u16| d.conns.iter().find(|c| c.cport == cport).copied().unwrap();
    let first = conn(40000);
    assert_eq!(
        (first.state, first.method, first.laddr, first.lport),
        (TcpState::Established, Method::FullNat, LIP, 1024)
    );
    let web = d.stats.services[SVC_WEB as usize].totals();
    assert_eq!((web.conns, web.inpkts, web.outpkts), (2, 4, 2));
    assert_eq!(d.stats.icmp[0].iter().map(|c| c.get()).sum::<u64>(), 1);
    assert_eq!(d.stats.icmp[1].iter().map(|c| c.get()).sum::<u64>(), 1);
}

/// A partial checksum (left by an offloading sender) is completed after both rewrites.
#[test]
fn partial_checksum_is_completed() {
    let mut d = director();
    let syn = Packet::tcp(c(42000), at(VIP, 80), SYN, 1, 0).with_payload(b"data");
    let full = syn.frame(CLIENT_MAC, EXT_MAC);
    let mut frame = with_partial_checksum(full.clone());
    assert_ne!(frame, full);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let expected = translated(&syn, l(1024), at(REAL_148, 8080)).frame(INT_MAC, REAL_148_MAC);
    assert_frame_eq(&frame, &expected, "completed checksum");
}

/// One of 64 workers: its ports are those whose replies hash to it. When they are all taken
/// a new flow is refused as `no_local_port` (a live port is never handed out twice); a port
/// comes back when its connection goes.
#[test]
fn local_ports_run_out_and_come_back() {
    let (workers, seed) = (64, 0x5eed);
    let mut d = director();
    d.conns = xvs_dataplane::conntrack::ConnTable::with_capacity(4096);
    d.conns.set_worker(0, workers, seed);
    d.conns.add_local_addr(LIP);
    let ports = d.conns.free_local_ports(LIP);
    assert!(
        ports > 500 && ports < 1600,
        "{ports} ports for one worker of 64"
    );
    let mut taken = std::collections::HashSet::new();
    for i in 0..ports {
        let cport = 10_000 + i as u16;
        let mut frame = Packet::udp(c(cport), at(VIP, 53)).frame(CLIENT_MAC, EXT_MAC);
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Forward(Side::Internal)
        );
        let lport = u16::from_be_bytes([frame[34], frame[35]]);
        assert_eq!(owner_of(LIP, lport, workers, seed), 0, "port {lport}");
        assert!(taken.insert(lport), "port {lport} handed out twice");
    }
    let mut frame = Packet::udp(c(9999), at(VIP, 53)).frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Drop(DropReason::NoLocalPort)
    );
    // Expiry frees them all (the UDP timeout is 300 s).
    d.conns.expire(NOW_MS + 301_000, usize::MAX, &d.stats);
    assert!(d.conns.is_empty());
    assert_eq!(d.conns.free_local_ports(LIP), ports);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
}
