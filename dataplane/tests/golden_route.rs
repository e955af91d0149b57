//! Golden fixtures for direct routing (`-g`), one table in order through one director, as
//! `golden` does for masquerading.
//!
//! What LVS-DR must do (IPVS's `ip_vs_dr_xmit`): the IP packet leaves exactly as it arrived —
//! addresses, ports, TTL, checksums — in a frame from the internal interface's MAC to the real
//! server's own MAC. Expected frames are the input packet rebuilt by etherparse with those MACs,
//! so a single changed byte of the IP packet fails. The director sees requests only: TCP
//! states follow IPVS's INPUT-ONLY table, OutPkts stays 0, a packet from RIP:rport is none of
//! a DR connection's business, and an ICMP error about a reply (which the real server sent from
//! the VIP) goes to that real server untouched.

mod common;

use common::*;
use etherparse::{Icmpv4Type, PacketBuilder};
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::conntrack::TcpState;
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Method, RealId, ServiceId, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::{DropReason, RealStats};

const SVC_WEB: ServiceId = 0; // TCP VIP:80 -> .148, .137 (DR)
const SVC_DNS: ServiceId = 1; // UDP VIP:53 -> .148 (DR)
const SVC_FAR: ServiceId = 2; // TCP VIP:25 -> 198.19.7.1, behind no connected route (DR)
const SVC_NEW: ServiceId = 3; // TCP VIP:22 -> .140, a neighbour not resolved yet (DR)
const REAL_WEB_148: RealId = 0;
const REAL_WEB_137: RealId = 1;
const REAL_DNS_148: RealId = 2;
const FAR_REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 7, 1);
const NEW_REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 140);

fn director() -> Director {
    let config = snapshot_with([
        service_by(
            Method::Route,
            SVC_WEB,
            PROTO_TCP,
            80,
            &[
                (REAL_WEB_148, REAL_148, 80, 1),
                (REAL_WEB_137, REAL_137, 80, 1),
            ],
        ),
        service_by(
            Method::Route,
            SVC_DNS,
            PROTO_UDP,
            53,
            &[(REAL_DNS_148, REAL_148, 53, 1)],
        ),
        service_by(
            Method::Route,
            SVC_FAR,
            PROTO_TCP,
            25,
            &[(3, FAR_REAL, 25, 1)],
        ),
        service_by(
            Method::Route,
            SVC_NEW,
            PROTO_TCP,
            22,
            &[(4, NEW_REAL, 22, 1)],
        ),
    ]);
    let neighbours = NeighbourTable::new(
        vec![
            route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
            route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
            // 198.19.7.0/24 sits behind a router of the internal network: a DR frame for the
            // VIP sent there would come straight back.
            route(
                INT_IF,
                Ipv4Addr::new(198, 19, 7, 0),
                24,
                Some(Ipv4Addr::new(198, 19, 0, 1)),
            ),
            route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
        ],
        vec![
            neighbour(EXT_IF, CLIENT, CLIENT_MAC),
            neighbour(EXT_IF, GATEWAY, GATEWAY_MAC),
            neighbour(INT_IF, REAL_148, REAL_148_MAC),
            neighbour(INT_IF, REAL_137, REAL_137_MAC),
            neighbour(
                INT_IF,
                Ipv4Addr::new(198, 19, 0, 1),
                [0x02, 0, 0, 0, 0, 0x02],
            ),
        ],
    );
    Director::from_parts(config, neighbours, 64)
}

/// `packet` from the client as the director receives it.
fn from_client(packet: &Packet) -> Vec<u8> {
    packet.frame(CLIENT_MAC, EXT_MAC)
}

/// The same IP packet, to the real server whose MAC is `mac`: all DR changes.
fn to_real(packet: &Packet, mac: [u8; 6]) -> Vec<u8> {
    packet.frame(INT_MAC, mac)
}

/// An ICMP "fragmentation needed" from the client's gateway to the VIP, about `quoted`
/// (a reply the real server sent from the VIP), quoting its header and 8 bytes.
fn frag_needed_about(quoted: &Packet, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut quote = quoted.ip_packet();
    quote.truncate(20 + 8);
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(GATEWAY.octets(), VIP.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut out, &quote)
        .unwrap();
    out
}

fn c(port: u16) -> SocketAddrV4 {
    at(CLIENT, port)
}

#[test]
fn golden_direct_routing() {
    use Side::{External, Internal};
    let vip_80 = at(VIP, 80);
    let syn = Packet::tcp(c(40000), vip_80, SYN, 1000, 0);
    let syn2 = Packet::tcp(c(40001), vip_80, SYN, 7000, 0);
    let ack = Packet::tcp(c(40000), vip_80, ACK, 1001, 5001);
    let request = Packet::tcp(c(40000), vip_80, PSH | ACK, 1001, 5001)
        .with_payload(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n");
    let fin = Packet::tcp(c(40000), vip_80, FIN | ACK, 1031, 6001);
    let last_ack = Packet::tcp(c(40000), vip_80, ACK, 1032, 6002);
    // The real server's answer, from the VIP: what a router's ICMP error quotes.
    let reply = Packet::tcp(vip_80, c(40000), PSH | ACK, 5001, 1031).with_payload(&[0; 1400]);
    let dns = Packet::udp(c(5300), at(VIP, 53)).with_payload(b"\x12\x34query");
    let dns_no_sum = Packet::udp(c(5301), at(VIP, 53))
        .with_payload(b"\x12\x35query")
        .without_udp_checksum();
    let ttl_one = Packet::tcp(c(40002), vip_80, SYN, 1, 0).with_ttl(2);

    let mut d = director();
    let steps = vec![
        forward(
            "SYN: scheduled to .148, the packet untouched, to .148's MAC",
            External,
            from_client(&syn),
            to_real(&syn, REAL_148_MAC),
        ),
        forward(
            "second SYN: round robin to .137",
            External,
            from_client(&syn2),
            to_real(&syn2, REAL_137_MAC),
        ),
        forward(
            "handshake ACK",
            External,
            from_client(&ack),
            to_real(&ack, REAL_148_MAC),
        ),
        forward(
            "request with payload",
            External,
            from_client(&request),
            to_real(&request, REAL_148_MAC),
        ),
        forward(
            "TTL 2 stays 2: the director routes nothing, as IPVS's DR",
            External,
            from_client(&ttl_one),
            to_real(&ttl_one, REAL_148_MAC),
        ),
        dropped(
            "a packet from RIP:rport to the client is no DR connection's reply",
            Internal,
            Packet::tcp(at(REAL_148, 80), c(40000), ACK, 5001, 1031).frame(REAL_148_MAC, INT_MAC),
            DropReason::NoConnection,
        ),
        forward(
            "an ICMP error about a reply the real server sent from the VIP goes to it untouched",
            External,
            frag_needed_about(&reply, GATEWAY_MAC, EXT_MAC),
            frag_needed_about(&reply, INT_MAC, REAL_148_MAC),
        ),
        forward(
            "client FIN",
            External,
            from_client(&fin),
            to_real(&fin, REAL_148_MAC),
        ),
        forward(
            "client's last ACK",
            External,
            from_client(&last_ack),
            to_real(&last_ack, REAL_148_MAC),
        ),
        forward(
            "UDP datagram",
            External,
            from_client(&dns),
            to_real(&dns, REAL_148_MAC),
        ),
        forward(
            "UDP without checksum keeps 0",
            External,
            from_client(&dns_no_sum),
            to_real(&dns_no_sum, REAL_148_MAC),
        ),
        dropped(
            "a real server behind a router cannot be direct-routed",
            External,
            from_client(&Packet::tcp(c(40100), at(VIP, 25), SYN, 1, 0)),
            DropReason::NoRoute,
        ),
        Fixture {
            description: "a real server without a MAC yet: resolve the real server itself",
            from: External,
            input: from_client(&Packet::tcp(c(40200), at(VIP, 22), SYN, 1, 0)),
            verdict: Verdict::Unresolved {
                ifindex: INT_IF,
                addr: NEW_REAL.into(),
            },
            output: None,
        },
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

    // INPUT-ONLY states: the client's FIN and last ACK leave the connection in FIN_WAIT.
    let state_of = |d: &Director, cport: u16| {
        d.conns
            .iter()
            .find(|c| c.cport == cport)
            .map(|c| (c.state, c.method))
    };
    assert_eq!(
        state_of(&d, 40000),
        Some((TcpState::FinWait, Method::Route))
    );
    assert_eq!(
        state_of(&d, 40001),
        Some((TcpState::SynRecv, Method::Route))
    );
    // Counted in, never out (ipvsadm shows OutPkts 0 for DR); the ICMP error is not traffic.
    let web = d.stats.services[SVC_WEB as usize].totals();
    assert_eq!((web.conns, web.inpkts, web.outpkts), (3, 7, 0));
    let dns = d.stats.reals[REAL_DNS_148 as usize].traffic.totals();
    assert_eq!((dns.conns, dns.inpkts, dns.outpkts), (2, 2, 0));
    assert_eq!(d.stats.icmp[0].iter().map(|c| c.get()).sum::<u64>(), 1);
}

/// ESTABLISHED is active, FIN_WAIT inactive, for DR as IPVS counts them.
#[test]
fn direct_routed_connections_count_as_active_then_inactive() {
    let mut d = director();
    let vip_80 = at(VIP, 80);
    let gauges = |real: &RealStats| (real.active.get(), real.inactive.get());
    for (flags, expected) in [(SYN, (0, 1)), (ACK, (1, 0)), (FIN | ACK, (0, 1))] {
        let mut frame = from_client(&Packet::tcp(c(41000), vip_80, flags, 1, 1));
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Forward(Side::Internal)
        );
        assert_eq!(
            gauges(&d.stats.reals[REAL_WEB_148 as usize]),
            expected,
            "{flags:#x}"
        );
    }
}

/// A partial checksum (left by an offloading sender) is completed, as for NAT: no NIC
/// downstream will.
#[test]
fn partial_checksum_is_completed() {
    let mut d = director();
    let syn = Packet::tcp(c(42000), at(VIP, 80), SYN, 1, 0).with_payload(b"data");
    let full = from_client(&syn);
    let mut frame = with_partial_checksum(full.clone());
    assert_ne!(frame, full);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    assert_frame_eq(&frame, &to_real(&syn, REAL_148_MAC), "completed checksum");
}
