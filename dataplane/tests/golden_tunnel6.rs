//! Golden fixtures for tunnelling IPv6 services (`-i` to IPv6 real servers): IPv6 in IPv6,
//! GUE and GRE over IPv6, as IPVS's `ip_vs_tunnel_xmit_v6` sends them, through `process6`.
//!
//! Expected frames are built here with etherparse (the outer IPv6 header and GUE's UDP
//! header and checksum computed by it, GUE and GRE headers written from their
//! specifications) around the client's IPv6 packet with its hop limit decremented: from the
//! internal interface's MAC to the next hop's, outer source the director's IPv6 address on the
//! internal interface, traffic class and hop limit copied from the inner header, flow label a
//! hash of the connection (read from the output, then checked to be the same for every packet
//! of a connection). The MTU rule: a packet too big once wrapped gets ICMPv6 Packet Too Big
//! from the external interface's address with the MTU left inside the tunnel.

mod common;

use common::*;
use etherparse::{
    EtherType, Ethernet2Header, Icmpv6Type, IpNumber, Ipv6FlowLabel, Ipv6Header, PacketBuilder,
    UdpHeader,
};
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};
use xvs_dataplane::conntrack::TcpState;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{
    Encap, Method, RealId, Service, ServiceId, Tunnel, Vip, PROTO_TCP, PROTO_UDP,
};
use xvs_dataplane::stats::{DropReason, IcmpReason};

/// A real server in another subnet, behind the internal network's router.
const FAR_REAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 7, 0, 0, 0, 1);
/// A real server whose MAC is not known yet.
const NEW_REAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x140);
/// The client's traffic class (DSCP EF, ECT(0)) and flow label, which the inner header keeps.
const TRAFFIC_CLASS: u8 = 0xba;
const CLIENT_LABEL: u32 = 0x5_4321;
const IPV6: u8 = 41;

/// TCP VIP6:80 and UDP VIP6:53 tunnelled by `tunnel` to 148, TCP VIP6:25 to a real server
/// behind a router, TCP VIP6:22 to one not resolved yet; TCP VIP6:8443 to an IPv4 real server
/// and TCP VIP:8443 to an IPv6 one, tunnels across families.
fn director(tunnel: Tunnel) -> Director {
    let method = Method::Tunnel(tunnel);
    let across = |id: ServiceId, real: RealId, vip: IpAddr, addr: IpAddr| -> (Vip, Service) {
        let (mut v, mut s) = service_by(method, id, PROTO_TCP, 8443, &[(real, REAL6_148, 8443, 1)]);
        v.addr = vip;
        s.vip = v;
        s.reals[0].addr = addr;
        (v, s)
    };
    let config = snapshot_with([
        service_by(method, 0, PROTO_TCP, 80, &[(0, REAL6_148, 80, 1)]),
        service_by(method, 1, PROTO_UDP, 53, &[(1, REAL6_148, 53, 1)]),
        service_by(method, 2, PROTO_TCP, 25, &[(2, FAR_REAL6, 25, 1)]),
        service_by(method, 3, PROTO_TCP, 22, &[(3, NEW_REAL6, 22, 1)]),
        across(4, 4, VIP6.into(), REAL_148.into()),
        across(5, 5, VIP.into(), REAL6_148.into()),
    ]);
    Director::from_parts(config, dual_stack(), 64)
}

/// `packet`'s frame from the client, with [`TRAFFIC_CLASS`] and [`CLIENT_LABEL`] (no
/// checksum covers them).
fn from_client(packet: &Packet<SocketAddrV6>) -> Vec<u8> {
    let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
    let word = 6 << 28 | u32::from(TRAFFIC_CLASS) << 20 | CLIENT_LABEL;
    frame[IP..IP + 4].copy_from_slice(&word.to_be_bytes());
    frame
}

/// The outer header's flow label of a tunnelled frame.
fn flow_label(frame: &[u8]) -> u32 {
    u32::from_be_bytes([frame[IP], frame[IP + 1], frame[IP + 2], frame[IP + 3]]) & 0xf_ffff
}

/// The GUE source port of a tunnelled frame, 0 for other encapsulations.
fn gue_source(frame: &[u8]) -> u16 {
    match frame[IP + 6] {
        17 => u16::from_be_bytes([frame[IP + 40], frame[IP + 41]]),
        _ => 0,
    }
}

/// What the director must send for the IP packet `input` (a frame's bytes after Ethernet)
/// tunnelled by `tunnel` to `real` via the next hop `mac`, with the outer flow label `label`
/// and GUE source port `gue_source` the output chose (checked apart).
fn tunnelled(
    input: &[u8],
    tunnel: Tunnel,
    real: Ipv6Addr,
    mac: [u8; 6],
    label: u32,
    gue_source: u16,
) -> Vec<u8> {
    let mut inner = input.to_vec();
    inner[7] -= 1;
    let mut ip = Ipv6Header {
        traffic_class: (inner[0] << 4) | (inner[1] >> 4),
        flow_label: Ipv6FlowLabel::try_new(label).unwrap(),
        payload_length: 0,
        next_header: IpNumber(IPV6),
        hop_limit: inner[7],
        source: DIP6.octets(),
        destination: real.octets(),
    };
    let encap = match tunnel.encap {
        Encap::Ipip => Vec::new(),
        Encap::Gue => {
            let payload = [&[0, IPV6, 0, 0][..], &inner].concat();
            ip.next_header = IpNumber::UDP;
            ip.payload_length = (8 + payload.len()) as u16;
            let udp = match tunnel.checksum {
                true => {
                    UdpHeader::with_ipv6_checksum(gue_source, tunnel.port, &ip, &payload).unwrap()
                }
                // --tun-nocsum: 0, RFC 6935's exception for tunnels.
                false => UdpHeader {
                    source_port: gue_source,
                    destination_port: tunnel.port,
                    length: (8 + payload.len()) as u16,
                    checksum: 0,
                },
            };
            [&udp.to_bytes()[..], &[0, IPV6, 0, 0]].concat()
        }
        Encap::Gre => {
            ip.next_header = IpNumber::GRE;
            let mut gre = vec![if tunnel.checksum { 0x80 } else { 0 }, 0, 0x86, 0xdd];
            if tunnel.checksum {
                gre.extend_from_slice(&[0, 0, 0, 0]);
                let sum = internet_checksum(&[&gre, &inner]);
                gre[4..6].copy_from_slice(&sum.to_be_bytes());
            }
            gre
        }
    };
    ip.payload_length = (encap.len() + inner.len()) as u16;
    let ethernet = Ethernet2Header {
        source: INT_MAC,
        destination: mac,
        ether_type: EtherType::IPV6,
    };
    [&ethernet.to_bytes()[..], &ip.to_bytes(), &encap, &inner].concat()
}

/// A SYN, the handshake's ACK, a request with payload, a UDP datagram and a request with a
/// partial checksum through `tunnel`, compared byte for byte; a real server behind a router
/// gets the tunnel via the router. Every packet of a connection carries one flow label.
fn check_encapsulation(tunnel: Tunnel) {
    let mut d = director(tunnel);
    let vip_80 = vip6(80);
    let request =
        Packet::tcp(c6(40000), vip_80, PSH | ACK, 1001, 1).with_payload(b"GET / HTTP/1.1\r\n\r\n");
    let partial =
        from_client(&Packet::tcp(c6(40000), vip_80, PSH | ACK, 1019, 1).with_payload(b"partial"));
    let to_148 = (REAL6_148, REAL_148_MAC);
    // What arrives, what the real server must find in the tunnel (hop limit aside: the same
    // packet, but for a partial checksum, which it gets completed) and where it goes.
    let packets = [
        (
            from_client(&Packet::tcp(c6(40000), vip_80, SYN, 1000, 0)),
            None,
            to_148,
        ),
        (
            from_client(&Packet::tcp(c6(40000), vip_80, ACK, 1001, 1)),
            None,
            to_148,
        ),
        (from_client(&request), None, to_148),
        (
            with_partial_checksum6(partial.clone(), IP + 40, PROTO_TCP),
            Some(partial),
            to_148,
        ),
        (
            from_client(&Packet::udp(c6(5300), vip6(53)).with_payload(b"query")),
            None,
            to_148,
        ),
        (
            from_client(&Packet::tcp(c6(40100), vip6(25), SYN, 1, 0)),
            None,
            (FAR_REAL6, ROUTER_MAC),
        ),
    ];
    let mut labels = Vec::new();
    for (i, (input, completed, (real, mac))) in packets.into_iter().enumerate() {
        let mut frame = input.clone();
        let what = format!("{tunnel:?} packet {i}");
        assert_eq!(
            d.process6(&mut frame, Side::External),
            Verdict::Forward(Side::Internal),
            "{what}"
        );
        let (label, source) = (flow_label(&frame), gue_source(&frame));
        assert!(label != 0, "{what}: flow label 0 (unlabelled)");
        if tunnel.encap == Encap::Gue {
            assert!(source >= 49152, "{what}: GUE source port {source}");
        }
        let inner = &completed.as_ref().unwrap_or(&input)[IP..];
        let expected = tunnelled(inner, tunnel, real, mac, label, source);
        assert_frame_eq(&frame, &expected, &what);
        labels.push((label, source));
    }
    assert!(
        labels[..4].iter().all(|l| *l == labels[0]),
        "one connection, one flow label and GUE port: {labels:?}"
    );
    // The director sees requests only: IPVS's INPUT-ONLY states.
    let state = d.conns6.iter().find(|c| c.cport == 40000).map(|c| c.state);
    assert_eq!(state, Some(TcpState::Established));
    let web = d.stats.services[0].totals();
    assert_eq!((web.conns, web.inpkts, web.outpkts), (1, 4, 0));
    assert!(d.conns.is_empty(), "the IPv4 table is not touched");
}

#[test]
fn ip6ip6() {
    check_encapsulation(IPIP);
}

#[test]
fn gue_over_ipv6_with_and_without_checksum() {
    with_and_without_checksum(Encap::Gue, check_encapsulation);
}

#[test]
fn gre_over_ipv6_with_and_without_checksum() {
    with_and_without_checksum(Encap::Gre, check_encapsulation);
}

/// Connections from other client ports spread over flow labels and GUE source ports.
#[test]
fn connections_spread_over_flow_labels() {
    let mut d = director(GUE);
    let mut labels = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    for port in 41000..41016 {
        let mut frame = from_client(&Packet::tcp(c6(port), vip6(80), SYN, 1, 0));
        d.process6(&mut frame, Side::External);
        labels.insert(flow_label(&frame));
        ports.insert(gue_source(&frame));
    }
    assert!(labels.len() >= 14, "{labels:?}");
    assert!(ports.len() >= 14, "{ports:?}");
}

/// The Packet Too Big a client must get for `ip` (a packet it sent) with next-hop MTU `mtu`:
/// from the external interface's address, back to the client's MAC, quoting as much as fits
/// the minimum MTU.
fn packet_too_big(ip: &[u8], mtu: u32) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(EXT_MAC, CLIENT_MAC)
        .ipv6(EXT_ADDR6.octets(), CLIENT6.octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu })
        .write(&mut out, &ip[..ip.len().min(1232)])
        .unwrap();
    out
}

/// Too big once wrapped: Packet Too Big to the client with the MTU left inside the tunnel
/// (1500 - 40 for IPv6 in IPv6, - 52 for GUE), the packet dropped, counted as `too_big`;
/// one byte less passes.
#[test]
fn too_big_for_the_tunnel_gets_packet_too_big() {
    let gue = Tunnel {
        encap: Encap::Gue,
        port: GUE_PORT,
        checksum: true,
    };
    for (tunnel, fit) in [(IPIP, 1460), (gue, 1448)] {
        let mut d = director(tunnel);
        let mut syn = from_client(&Packet::tcp(c6(42000), vip6(80), SYN, 1, 0));
        d.process6(&mut syn, Side::External);
        let big = Packet::tcp(c6(42000), vip6(80), ACK, 2, 1).with_payload(&vec![7; fit + 1 - 60]);
        let input = from_client(&big);
        assert_eq!(input.len(), IP + fit + 1);
        let mut frame = input.clone();
        assert_eq!(
            d.process6(&mut frame, Side::External),
            Verdict::Forward(Side::External),
            "{tunnel:?}"
        );
        let expected = packet_too_big(&input[IP..], fit as u32);
        assert_frame_eq(
            &frame,
            &expected,
            "Packet Too Big, the MTU left in the tunnel",
        );
        assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 1);

        let fits = Packet::tcp(c6(42000), vip6(80), ACK, 2, 1).with_payload(&vec![7; fit - 60]);
        let input = from_client(&fits);
        let mut frame = input.clone();
        assert_eq!(
            d.process6(&mut frame, Side::External),
            Verdict::Forward(Side::Internal),
            "{tunnel:?}: {fit} bytes fit"
        );
        assert_eq!(frame.len(), IP + 1500, "{tunnel:?}");
        let (label, source) = (flow_label(&frame), gue_source(&frame));
        let expected = tunnelled(&input[IP..], tunnel, REAL6_148, REAL_148_MAC, label, source);
        assert_frame_eq(&frame, &expected, "the largest packet that fits");
    }
}

/// With an internal MTU below 1280 + the overhead, the Packet Too Big says 1280 (RFC 8200: no
/// IPv6 link has less; IPVS drops such packets unanswered). An ICMPv6 error too big for the
/// tunnel is dropped unanswered (RFC 4443 section 2.4(e)), untouched.
#[test]
fn small_mtus_and_icmp_errors_too_big_for_the_tunnel() {
    let mut d = director(GUE);
    d.config.internal.mtu = 1300;
    let mut syn = from_client(&Packet::tcp(c6(43000), vip6(80), SYN, 1, 0));
    d.process6(&mut syn, Side::External);
    let big = from_client(&Packet::tcp(c6(43000), vip6(80), ACK, 2, 1).with_payload(&[1; 1200]));
    let mut frame = big.clone();
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Forward(Side::External)
    );
    assert_frame_eq(&frame, &packet_too_big(&big[IP..], 1280), "clamped to 1280");

    // A Packet Too Big from a router towards the client about a reply, 1280 bytes long.
    let reply = Packet::tcp(vip6(80), c6(43000), ACK, 9, 2).with_payload(&[2; 1400]);
    let quote = &reply.ip_packet()[..1232];
    let mut error = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, EXT_MAC)
        .ipv6(GATEWAY6.octets(), VIP6.octets(), 64)
        .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1280 })
        .write(&mut error, quote)
        .unwrap();
    d.assert_drops6(&error, DropReason::TooBig);
    // Only the answered packet is counted here; the verdict's drop is the worker's to count.
    assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 1);
}

/// An ICMPv6 error about a reply the real server sent from the VIP reaches it through the
/// tunnel (hop limit decremented, as any forwarded packet), as IPVS hands it to the
/// connection's transmitter; counted as an error "in".
#[test]
fn icmp_error_about_a_reply_goes_through_the_tunnel() {
    for tunnel in [
        IPIP,
        Tunnel {
            encap: Encap::Gre,
            port: 0,
            checksum: true,
        },
    ] {
        let mut d = director(tunnel);
        let mut syn = from_client(&Packet::tcp(c6(44000), vip6(80), SYN, 1, 0));
        d.process6(&mut syn, Side::External);
        let label = flow_label(&syn);
        let reply = Packet::tcp(vip6(80), c6(44000), ACK, 9, 2).ip_packet();
        let mut error = Vec::new();
        PacketBuilder::ethernet2(GATEWAY_MAC, EXT_MAC)
            .ipv6(GATEWAY6.octets(), VIP6.octets(), 64)
            .icmpv6(Icmpv6Type::PacketTooBig { mtu: 1400 })
            .write(&mut error, &reply)
            .unwrap();
        let mut frame = error.clone();
        assert_eq!(
            d.process6(&mut frame, Side::External),
            Verdict::Forward(Side::Internal),
            "{tunnel:?}"
        );
        let expected = tunnelled(&error[IP..], tunnel, REAL6_148, REAL_148_MAC, label, 0);
        assert_frame_eq(&frame, &expected, "the error, tunnelled");
        let errors_in = &d.stats.icmp[0];
        assert_eq!(errors_in[IcmpReason::FragNeeded as usize].get(), 1);
    }
}

/// Without an IPv6 address on the internal interface there is no outer source: dropped as
/// `no_route` (IPVS's route lookup fails likewise), untouched. A frame whose buffer cannot
/// grow is dropped as too big; a real server without a MAC yet asks for its resolution.
#[test]
fn no_source_no_room_no_mac() {
    let mut d = director(IPIP);
    let syn = from_client(&Packet::tcp(c6(45000), vip6(80), SYN, 1, 0));
    let mut fixed = syn.clone();
    assert_eq!(
        d.process6(&mut fixed[..], Side::External),
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(fixed, syn);
    let mut frame = from_client(&Packet::tcp(c6(45001), vip6(22), SYN, 1, 0));
    assert_eq!(
        d.process6(&mut frame, Side::External),
        Verdict::Unresolved {
            ifindex: INT_IF,
            addr: NEW_REAL6.into(),
        }
    );
    d.config.internal.addr6 = None;
    d.assert_drops6(&syn, DropReason::NoRoute);
}

/// IPVS tunnels across families; this dataplane does not: a new flow of either family to a
/// tunnelled real server of the other is refused, untouched.
#[test]
fn tunnels_across_families_are_refused() {
    let mut d = director(IPIP);
    let input = from_client(&Packet::tcp(c6(46000), vip6(8443), SYN, 1, 0));
    d.assert_drops6(&input, DropReason::RealFamily);
    let input = Packet::tcp(at(CLIENT, 46000), at(VIP, 8443), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    let mut frame = input.clone();
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Drop(DropReason::RealFamily)
    );
    assert_eq!(frame, input);
    assert!(d.conns.is_empty() && d.conns6.is_empty());
}

/// Writes a tunnelled IPv6 connection (SYN, request, a packet too big for the tunnel) as a
/// seed of the `process` fuzz target, whose TCP VIP6:8443 is tunnelled by GUE. Run by hand
/// (docs/testing.md): into `$XVS_FUZZ_SEEDS`, default fuzz/seeds.
#[test]
#[ignore = "writes files: run by hand to refresh fuzz/seeds"]
fn write_fuzz_seeds() {
    let to = vip6(8443);
    let frames = [
        from_client(&Packet::tcp(c6(47000), to, SYN, 1, 0)),
        from_client(&Packet::tcp(c6(47000), to, PSH | ACK, 2, 1).with_payload(b"GET /")),
        from_client(&Packet::tcp(c6(47000), to, ACK, 7, 1).with_payload(&[7; 1440])),
    ];
    let records: Vec<u8> = frames
        .iter()
        .flat_map(|f| fuzz_record(f, Side::External, 0))
        .collect();
    std::fs::write(fuzz_seed_dir("process").join("ipv6-tunnel"), records).unwrap();
}
