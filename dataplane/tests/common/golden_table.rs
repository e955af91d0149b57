//! The golden fixture table and the director it runs through, shared by `golden` (which runs
//! it through [`process`](xvs_dataplane::process::process)) and `xdp_fast_path` (which runs
//! the same inputs through the XDP program's fast path and compares).
//!
//! Test binaries that use it include it after `common`:
//! `mod common; #[path = "common/golden_table.rs"] mod golden_table;` (not from `common`
//! itself: other binaries define a `Director::new` of their own).

// Each binary uses only part of the table's helpers (see `common`).
#![allow(dead_code)]

use crate::common::*;
use etherparse::{EtherType, Ethernet2Header, PacketBuilder};
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::neigh::{Neighbour, NeighbourTable, Route};
use xvs_dataplane::process::Side;
use xvs_dataplane::snapshot::{RealId, ServiceId, Snapshot, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::DropReason;

// ---------------------------------------------------------------------------------------------
// The services, routes and neighbours of the test network (see `common`)
// ---------------------------------------------------------------------------------------------

/// Services and real servers, with the counter slots they use.
pub const SVC_HTTP: ServiceId = 0; // TCP VIP:80 -> .148:80, .137:80
pub const SVC_DNS: ServiceId = 1; // UDP VIP:53 -> .148:53, .137:53
pub const SVC_MAPPED: ServiceId = 2; // TCP VIP:8080 -> .148:8000 (port translation)
pub const SVC_DRAINED: ServiceId = 3; // TCP VIP:443 -> both reals at weight 0
pub const REAL_HTTP_148: RealId = 0;
pub const REAL_HTTP_137: RealId = 1;
pub const REAL_DNS_148: RealId = 2;
pub const REAL_DNS_137: RealId = 3;
pub const REAL_MAPPED_148: RealId = 4;

pub fn snapshot() -> Snapshot {
    snapshot_with([
        service(
            SVC_HTTP,
            PROTO_TCP,
            80,
            &[
                (REAL_HTTP_148, REAL_148, 80, 1),
                (REAL_HTTP_137, REAL_137, 80, 1),
            ],
        ),
        service(
            SVC_DNS,
            PROTO_UDP,
            53,
            &[
                (REAL_DNS_148, REAL_148, 53, 1),
                (REAL_DNS_137, REAL_137, 53, 1),
            ],
        ),
        service(
            SVC_MAPPED,
            PROTO_TCP,
            8080,
            &[(REAL_MAPPED_148, REAL_148, 8000, 1)],
        ),
        service(
            SVC_DRAINED,
            PROTO_TCP,
            443,
            &[(5, REAL_148, 443, 0), (6, REAL_137, 443, 0)],
        ),
    ])
}

pub fn routes() -> Vec<Route> {
    vec![
        route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
        route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
        route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
    ]
}

pub fn neighbours() -> Vec<Neighbour> {
    vec![
        neighbour(EXT_IF, CLIENT, CLIENT_MAC),
        neighbour(EXT_IF, GATEWAY, GATEWAY_MAC),
        neighbour(INT_IF, REAL_148, REAL_148_MAC),
        neighbour(INT_IF, REAL_137, REAL_137_MAC),
    ]
}

/// The director of these tests: the services above, the full routing and neighbour tables.
impl Director {
    pub fn new() -> Self {
        Self::with(NeighbourTable::new(routes(), neighbours()), 1024)
    }

    pub fn with(neighbours: NeighbourTable, capacity: usize) -> Self {
        Director::from_parts(snapshot(), neighbours, capacity)
    }

    /// The (service, real) whose real server is `proto` `addr:port`, from the configuration.
    pub fn real_at(&self, proto: u8, addr: Ipv4Addr, port: u16) -> (ServiceId, RealId) {
        self.config
            .services
            .values()
            .filter(|s| s.vip.proto == proto)
            .find_map(|s| {
                s.reals
                    .iter()
                    .find(|r| r.addr == addr && r.port == port)
                    .map(|r| (s.id, r.id))
            })
            .expect("a configured real server")
    }
}

/// The LVS-NAT rewrites the fixtures expect (see the module documentation).
impl Packet {
    /// What the director must send for this packet arriving from a client: DNAT to `real`,
    /// TTL - 1.
    pub fn dnat(&self, real: SocketAddrV4) -> Self {
        self.clone().with_dst(real).with_ttl(self.ttl - 1)
    }

    /// What the director must send for this reply of a real server: SNAT to `vip`, TTL - 1.
    pub fn snat(&self, vip: SocketAddrV4) -> Self {
        self.clone().with_src(vip).with_ttl(self.ttl - 1)
    }
}

pub fn arp_request() -> Vec<u8> {
    let mut frame = Ethernet2Header {
        source: CLIENT_MAC,
        destination: [0xff; 6],
        ether_type: EtherType::ARP,
    }
    .to_bytes()
    .to_vec();
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, op request: who has VIP, tell CLIENT.
    frame.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&CLIENT_MAC);
    frame.extend_from_slice(&CLIENT.octets());
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&VIP.octets());
    frame
}

pub fn ipv6_syn() -> Vec<u8> {
    let mut out = Vec::new();
    let src: std::net::Ipv6Addr = "2001:2::c9".parse().unwrap();
    let dst: std::net::Ipv6Addr = "2001:2::81".parse().unwrap();
    PacketBuilder::ethernet2(CLIENT_MAC, EXT_MAC)
        .ipv6(src.octets(), dst.octets(), 64)
        .tcp(40000, 80, 1000, 64240)
        .syn()
        .write(&mut out, &[])
        .unwrap();
    out
}

pub fn icmp_echo_to_vip() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, EXT_MAC)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .icmpv4_echo_request(0x4242, 1)
        .write(&mut out, b"ping")
        .unwrap();
    out
}

/// Rewrites the IPv4 header checksum of `frame` after a test has edited the header.
pub fn fix_ip_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[IP] & 0x0f) * 4;
    frame[IP + 10..IP + 12].fill(0);
    let sum = internet_checksum(&[&frame[IP..IP + ihl]]);
    frame[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// The fixture table
// ---------------------------------------------------------------------------------------------

/// The first SYN of the table: client 198.18.0.201:40000 -> VIP:80.
pub fn first_syn() -> Packet {
    Packet::tcp(at(CLIENT, 40000), at(VIP, 80), SYN, 1000, 0)
}

pub fn fixtures() -> Vec<Fixture> {
    use Side::{External, Internal};
    let vip_80 = at(VIP, 80);
    let vip_53 = at(VIP, 53);
    let vip_8080 = at(VIP, 8080);
    let r148_80 = at(REAL_148, 80);
    let r137_80 = at(REAL_137, 80);
    let r148_53 = at(REAL_148, 53);
    let r137_53 = at(REAL_137, 53);
    let c = |port| at(CLIENT, port);

    let syn = first_syn();
    let syn_ack = Packet::tcp(r148_80, c(40000), SYN | ACK, 5000, 1001);
    let syn2 = Packet::tcp(c(40001), vip_80, SYN, 7000, 0);
    let ack = Packet::tcp(c(40000), vip_80, ACK, 1001, 5001);
    let request = Packet::tcp(c(40000), vip_80, PSH | ACK, 1001, 5001)
        .with_payload(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
    let response = Packet::tcp(r148_80, c(40000), PSH | ACK, 5001, 1030)
        .with_payload(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let query = Packet::udp(c(5353), vip_53).with_payload(b"\x12\x34\x01\x00 query");
    let query_nosum = Packet::udp(c(5354), vip_53)
        .with_payload(b"\x56\x78\x01\x00 no checksum")
        .without_udp_checksum();
    let answer = Packet::udp(r148_53, c(5353)).with_payload(b"\x12\x34\x81\x80 answer");
    let answer_nosum = Packet::udp(r137_53, c(5354))
        .with_payload(b"\x56\x78\x81\x80 answer, no checksum")
        .without_udp_checksum();
    let remote_syn = Packet::tcp(at(REMOTE_CLIENT, 50000), vip_80, SYN, 9000, 0);
    let remote_syn_ack = Packet::tcp(r148_80, at(REMOTE_CLIENT, 50000), SYN | ACK, 3000, 9001);
    let mapped_syn = Packet::tcp(c(40002), vip_8080, SYN, 11000, 0);
    let mapped_syn_ack = Packet::tcp(at(REAL_148, 8000), c(40002), SYN | ACK, 12000, 11001);
    let padded_syn = Packet::tcp(c(40003), vip_80, SYN, 13000, 0);
    let remote_ack = Packet::tcp(at(REMOTE_CLIENT, 50000), vip_80, ACK, 9001, 3001);
    let remote_data = Packet::tcp(r148_80, at(REMOTE_CLIENT, 50000), PSH | ACK, 3001, 9001)
        .with_payload(b"HTTP/1.1 204 No Content\r\n\r\n");
    let mapped_ack = Packet::tcp(c(40002), vip_8080, ACK, 11001, 12001);
    let mapped_data = Packet::tcp(c(40002), vip_8080, PSH | ACK | ECE | CWR, 11001, 12001)
        .with_payload(b"PUT /x");
    let mapped_reply =
        Packet::tcp(at(REAL_148, 8000), c(40002), PSH | ACK, 12001, 11007).with_payload(b"stored");
    const PAD: [u8; 6] = [0; 6];

    let mut bad_ip_checksum = Packet::tcp(c(40010), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    bad_ip_checksum[IP + 11] ^= 0x01;
    let mut data_offset_4 = Packet::tcp(c(40022), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    data_offset_4[L4_AT + 12] = 0x40;
    let mut ip_len_beyond_frame =
        Packet::tcp(c(40024), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    ip_len_beyond_frame[IP + 3] += 1;
    fix_ip_checksum(&mut ip_len_beyond_frame);
    let mut ip_len_inside_tcp_header =
        Packet::tcp(c(40025), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    ip_len_inside_tcp_header[IP + 3] = 20 + 19;
    fix_ip_checksum(&mut ip_len_inside_tcp_header);

    vec![
        // --- 1-4: a TCP connection, both directions ---
        forward(
            "SYN to VIP:80 goes to the first real (rr starts in insertion order), DNATed",
            External,
            syn.frame(CLIENT_MAC, EXT_MAC),
            syn.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "the real's SYN-ACK leaves SNATed to VIP:80 towards the client's MAC",
            Internal,
            syn_ack.frame(REAL_148_MAC, INT_MAC),
            syn_ack.snat(vip_80).frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "a SYN from another client port goes to the second real (rr)",
            External,
            syn2.frame(CLIENT_MAC, EXT_MAC),
            syn2.dnat(r137_80).frame(INT_MAC, REAL_137_MAC),
        ),
        forward(
            "the client's ACK follows its connection to the first real (ESTABLISHED)",
            External,
            ack.frame(CLIENT_MAC, EXT_MAC),
            ack.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "request data follows the same real",
            External,
            request.frame(CLIENT_MAC, EXT_MAC),
            request.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "response data leaves SNATed",
            Internal,
            response.frame(REAL_148_MAC, INT_MAC),
            response.snat(vip_80).frame(EXT_MAC, CLIENT_MAC),
        ),
        // --- 5: UDP, with and without checksum ---
        forward(
            "UDP datagram to VIP:53 goes to the first real",
            External,
            query.frame(CLIENT_MAC, EXT_MAC),
            query.dnat(r148_53).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "UDP datagram without checksum: the field stays 0 after DNAT",
            External,
            query_nosum.frame(CLIENT_MAC, EXT_MAC),
            query_nosum.dnat(r137_53).frame(INT_MAC, REAL_137_MAC),
        ),
        forward(
            "UDP answer leaves SNATed to VIP:53",
            Internal,
            answer.frame(REAL_148_MAC, INT_MAC),
            answer.snat(vip_53).frame(EXT_MAC, CLIENT_MAC),
        ),
        forward(
            "UDP answer without checksum: the field stays 0 after SNAT",
            Internal,
            answer_nosum.frame(REAL_137_MAC, INT_MAC),
            answer_nosum.snat(vip_53).frame(EXT_MAC, CLIENT_MAC),
        ),
        // --- 6: a client behind a router ---
        forward(
            "SYN from a remote client (arriving from the gateway) is DNATed as any other",
            External,
            remote_syn.frame(GATEWAY_MAC, EXT_MAC),
            remote_syn.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "the reply to a remote client goes to the gateway's MAC, not the client's",
            Internal,
            remote_syn_ack.frame(REAL_148_MAC, INT_MAC),
            remote_syn_ack.snat(vip_80).frame(EXT_MAC, GATEWAY_MAC),
        ),
        // --- port translation (vport != rport) ---
        forward(
            "SYN to VIP:8080 is DNATed to port 8000 of the real",
            External,
            mapped_syn.frame(CLIENT_MAC, EXT_MAC),
            mapped_syn
                .dnat(at(REAL_148, 8000))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "the reply from port 8000 leaves from VIP:8080",
            Internal,
            mapped_syn_ack.frame(REAL_148_MAC, INT_MAC),
            mapped_syn_ack.snat(vip_8080).frame(EXT_MAC, CLIENT_MAC),
        ),
        // --- Ethernet padding: a 54-byte SYN padded to the 60-byte minimum ---
        forward(
            "Ethernet padding after the IP packet is carried unchanged (and not counted)",
            External,
            [padded_syn.frame(CLIENT_MAC, EXT_MAC), PAD.to_vec()].concat(),
            [
                padded_syn.dnat(r137_80).frame(INT_MAC, REAL_137_MAC),
                PAD.to_vec(),
            ]
            .concat(),
        ),
        // --- 7: drops, each with its reason ---
        dropped(
            "ARP (the XDP program passes it to the kernel; process must refuse it anyway)",
            External,
            arp_request(),
            DropReason::NotIpv4,
        ),
        dropped("IPv6", External, ipv6_syn(), DropReason::NotIpv4),
        dropped(
            "bad IPv4 header checksum",
            External,
            bad_ip_checksum,
            DropReason::BadIpChecksum,
        ),
        dropped(
            "first fragment (MF set, offset 0)",
            External,
            Packet::tcp(c(40011), vip_80, SYN, 1, 0)
                .with_fragment(true, 0)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "non-first fragment (last one: MF clear, offset 1480)",
            External,
            Packet::tcp(c(40012), vip_80, SYN, 1, 0)
                .with_fragment(false, 185)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::Fragment,
        ),
        dropped(
            "IPv4 options (NOP NOP NOP EOL)",
            External,
            Packet::tcp(c(40013), vip_80, SYN, 1, 0)
                .with_options(&[1, 1, 1, 0])
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::IpOptions,
        ),
        dropped(
            "TTL 1 would reach 0 when forwarded",
            External,
            Packet::tcp(c(40014), vip_80, SYN, 1, 0)
                .with_ttl(1)
                .frame(CLIENT_MAC, EXT_MAC),
            DropReason::TtlExceeded,
        ),
        dropped(
            "ICMP echo request to the VIP",
            External,
            icmp_echo_to_vip(),
            DropReason::UnsupportedProtocol,
        ),
        dropped(
            "TCP to VIP:81, no such service",
            External,
            Packet::tcp(c(40015), at(VIP, 81), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoService,
        ),
        dropped(
            "UDP to VIP:80, the service is TCP only",
            External,
            Packet::udp(c(40016), vip_80).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoService,
        ),
        dropped(
            "TCP ACK without a connection (only a SYN may open one)",
            External,
            Packet::tcp(c(40020), vip_80, ACK, 1, 1).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "SYN-ACK from the client side does not open a connection either",
            External,
            Packet::tcp(c(40026), vip_80, SYN | ACK, 1, 1).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "reply from a real with no connection",
            Internal,
            Packet::tcp(r148_80, c(40021), SYN | ACK, 1, 1).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "a real server cannot open a connection through the director",
            Internal,
            Packet::tcp(r148_80, c(40027), SYN, 1, 0).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        dropped(
            "TCP data offset 4 (< 5)",
            External,
            data_offset_4,
            DropReason::Malformed,
        ),
        dropped(
            "IPv4 total length one byte beyond the frame",
            External,
            ip_len_beyond_frame,
            DropReason::Malformed,
        ),
        dropped(
            "IPv4 total length ends inside the TCP header",
            External,
            ip_len_inside_tcp_header,
            DropReason::Malformed,
        ),
        dropped(
            "service whose reals all have weight 0",
            External,
            Packet::tcp(c(40023), at(VIP, 443), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC),
            DropReason::NoRealServer,
        ),
        // --- 8: established segments through a gateway and with port translation (after the
        // drops, so that the rows above keep their numbers; xdp_fast_path also expects the XDP
        // fast path to forward these) ---
        forward(
            "the remote client's ACK (from the gateway) completes its handshake",
            External,
            remote_ack.frame(GATEWAY_MAC, EXT_MAC),
            remote_ack.dnat(r148_80).frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "data to the remote client leaves for the gateway's MAC",
            Internal,
            remote_data.frame(REAL_148_MAC, INT_MAC),
            remote_data.snat(vip_80).frame(EXT_MAC, GATEWAY_MAC),
        ),
        forward(
            "the client's ACK to VIP:8080 completes that handshake",
            External,
            mapped_ack.frame(CLIENT_MAC, EXT_MAC),
            mapped_ack
                .dnat(at(REAL_148, 8000))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "data with ECE and CWR set to VIP:8080 goes to port 8000, flags untouched",
            External,
            mapped_data.frame(CLIENT_MAC, EXT_MAC),
            mapped_data
                .dnat(at(REAL_148, 8000))
                .frame(INT_MAC, REAL_148_MAC),
        ),
        forward(
            "data from port 8000 leaves from VIP:8080",
            Internal,
            mapped_reply.frame(REAL_148_MAC, INT_MAC),
            mapped_reply.snat(vip_8080).frame(EXT_MAC, CLIENT_MAC),
        ),
    ]
}

/// Runs one fixture, checks its verdict and output, and returns the frame after `process`.
pub fn run(director: &mut Director, fixture: &Fixture) -> Vec<u8> {
    let mut frame = fixture.input.clone();
    let verdict = director.process(&mut frame, fixture.from);
    assert_eq!(verdict, fixture.verdict, "{}", fixture.description);
    match &fixture.output {
        Some(expected) => assert_frame_eq(&frame, expected, fixture.description),
        None => assert_frame_eq(
            &frame,
            &fixture.input,
            &format!("{} (not forwarded: left untouched)", fixture.description),
        ),
    }
    frame
}

/// Runs the whole table in order through one director.
pub fn run_table() -> (Director, Vec<Fixture>, Vec<Vec<u8>>) {
    let mut director = Director::new();
    let fixtures = fixtures();
    let outputs = fixtures.iter().map(|f| run(&mut director, f)).collect();
    (director, fixtures, outputs)
}
