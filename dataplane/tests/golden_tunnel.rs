//! Golden fixtures for tunnelling (`-i`): IP in IP, GUE and GRE, as IPVS's `ip_vs_tunnel_xmit`
//! sends them, one table per case through one director.
//!
//! Expected frames are built here with etherparse (outer IPv4 and UDP headers and their
//! checksums computed by it, GUE and GRE headers written from their specifications), around
//! the client's IP packet exactly as it arrived: from the internal interface's MAC to the next
//! hop's, outer source the director's internal address, TOS, TTL, identification and DF
//! copied from the inner header. The MTU rule: a packet too big once wrapped gets ICMP
//! "fragmentation needed" from the VIP with the MTU left inside the tunnel, when DF is set.

mod common;

use common::*;
use etherparse::{
    EtherType, Ethernet2Header, Icmpv4Header, Icmpv4Type, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header,
    PacketBuilder, UdpHeader,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::conntrack::TcpState;
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Encap, Method, Tunnel, PROTO_TCP, PROTO_UDP};
use xvs_dataplane::stats::DropReason;

/// A real server in another subnet, behind the internal network's router.
const FAR_REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 7, 1);

/// TCP VIP:80 and UDP VIP:53 tunnelled by `tunnel` to .148, TCP VIP:25 to a real server
/// behind a router.
fn director(tunnel: Tunnel) -> Director {
    let method = Method::Tunnel(tunnel);
    let config = snapshot_with([
        service_by(method, 0, PROTO_TCP, 80, &[(0, REAL_148, 80, 1)]),
        service_by(method, 1, PROTO_UDP, 53, &[(1, REAL_148, 53, 1)]),
        service_by(method, 2, PROTO_TCP, 25, &[(2, FAR_REAL, 25, 1)]),
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

/// The outer IPv4 header IPVS writes for `inner` (an IPv4 packet) towards `real`.
fn outer_ip(inner: &[u8], protocol: u8, extra: usize, real: Ipv4Addr) -> Ipv4Header {
    let mut ip = Ipv4Header::new(
        (extra + inner.len()) as u16,
        inner[8],
        IpNumber(protocol),
        DIP.octets(),
        real.octets(),
    )
    .unwrap();
    ip.dscp = Ipv4Dscp::try_new(inner[1] >> 2).unwrap();
    ip.ecn = Ipv4Ecn::try_new(inner[1] & 3).unwrap();
    ip.identification = u16::from_be_bytes([inner[4], inner[5]]);
    ip.dont_fragment = inner[6] & 0x40 != 0;
    ip.header_checksum = ip.calc_header_checksum();
    ip
}

fn ethernet(dst: [u8; 6]) -> Vec<u8> {
    Ethernet2Header {
        source: INT_MAC,
        destination: dst,
        ether_type: EtherType::IPV4,
    }
    .to_bytes()
    .to_vec()
}

/// What the director must send for `packet` tunnelled by `tunnel` to `real` via the next hop
/// `mac`; `gue_source`: the UDP source port the output chose (checked for its range).
fn tunnelled(
    packet: &Packet,
    tunnel: Tunnel,
    real: Ipv4Addr,
    mac: [u8; 6],
    gue_source: u16,
) -> Vec<u8> {
    let inner = packet.ip_packet();
    let mut out = ethernet(mac);
    match tunnel.encap {
        Encap::Ipip => {
            out.extend_from_slice(&outer_ip(&inner, 4, 0, real).to_bytes());
        }
        Encap::Gue => {
            let mut payload = vec![0, 4, 0, 0];
            payload.extend_from_slice(&inner);
            let ip = outer_ip(&inner, 17, 8 + 4, real);
            let udp = if tunnel.checksum {
                UdpHeader::with_ipv4_checksum(gue_source, tunnel.port, &ip, &payload).unwrap()
            } else {
                UdpHeader::without_ipv4_checksum(gue_source, tunnel.port, payload.len()).unwrap()
            };
            out.extend_from_slice(&ip.to_bytes());
            out.extend_from_slice(&udp.to_bytes());
            out.extend_from_slice(&[0, 4, 0, 0]);
        }
        Encap::Gre => {
            let mut gre = vec![if tunnel.checksum { 0x80 } else { 0 }, 0, 0x08, 0x00];
            if tunnel.checksum {
                gre.extend_from_slice(&[0, 0, 0, 0]);
                let sum = internet_checksum(&[&gre, &inner]);
                gre[4..6].copy_from_slice(&sum.to_be_bytes());
            }
            out.extend_from_slice(&outer_ip(&inner, 47, gre.len(), real).to_bytes());
            out.extend_from_slice(&gre);
        }
    }
    out.extend_from_slice(&inner);
    out
}

/// The GUE source port of a tunnelled frame, 0 for other encapsulations.
fn gue_source(frame: &[u8]) -> u16 {
    if frame.len() > 14 + 22 && frame[14 + 9] == 17 {
        u16::from_be_bytes([frame[34], frame[35]])
    } else {
        0
    }
}

fn c(port: u16) -> SocketAddrV4 {
    at(CLIENT, port)
}

/// A SYN, the handshake's ACK, a request with payload and a UDP datagram through `tunnel`,
/// compared byte for byte; a real server behind a router gets the tunnel via the router.
fn check_encapsulation(tunnel: Tunnel) {
    let mut d = director(tunnel);
    let vip_80 = at(VIP, 80);
    let packets = [
        (
            Packet::tcp(c(40000), vip_80, SYN, 1000, 0),
            REAL_148,
            REAL_148_MAC,
        ),
        (
            Packet::tcp(c(40000), vip_80, ACK, 1001, 1),
            REAL_148,
            REAL_148_MAC,
        ),
        (
            Packet::tcp(c(40000), vip_80, PSH | ACK, 1001, 1)
                .with_payload(b"GET / HTTP/1.1\r\n\r\n"),
            REAL_148,
            REAL_148_MAC,
        ),
        (
            Packet::udp(c(5300), at(VIP, 53)).with_payload(b"query"),
            REAL_148,
            REAL_148_MAC,
        ),
        (
            Packet::udp(c(5301), at(VIP, 53))
                .with_payload(b"no checksum")
                .without_udp_checksum(),
            REAL_148,
            REAL_148_MAC,
        ),
        (
            Packet::tcp(c(40100), at(VIP, 25), SYN, 1, 0),
            FAR_REAL,
            ROUTER_MAC,
        ),
    ];
    for (packet, real, mac) in packets {
        let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
        let what = format!("{tunnel:?} {packet:?}");
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Forward(Side::Internal),
            "{what}"
        );
        let source = gue_source(&frame);
        if tunnel.encap == Encap::Gue {
            assert!(source >= 49152, "{what}: GUE source port {source}");
        }
        assert_frame_eq(
            &frame,
            &tunnelled(&packet, tunnel, real, mac, source),
            &what,
        );
    }
    // The director sees requests only: IPVS's INPUT-ONLY states.
    let state = d.conns.iter().find(|c| c.cport == 40000).map(|c| c.state);
    assert_eq!(state, Some(TcpState::Established));
    let web = d.stats.services[0].totals();
    assert_eq!((web.conns, web.inpkts, web.outpkts), (1, 3, 0));
}

#[test]
fn ipip() {
    check_encapsulation(IPIP);
}

#[test]
fn gue_with_and_without_checksum() {
    with_and_without_checksum(Encap::Gue, check_encapsulation);
}

#[test]
fn gre_with_and_without_checksum() {
    with_and_without_checksum(Encap::Gre, check_encapsulation);
}

/// The GUE source port follows the connection: one flow, one port (the real server's RSS
/// keeps it on one queue); another client port may get another.
#[test]
fn gue_source_port_is_stable_per_connection() {
    let tunnel = GUE;
    let mut d = director(tunnel);
    let ports: Vec<u16> = [(SYN, 1), (ACK, 2), (ACK, 3)]
        .iter()
        .map(|&(flags, seq)| {
            let mut frame =
                Packet::tcp(c(41000), at(VIP, 80), flags, seq, 1).frame(CLIENT_MAC, EXT_MAC);
            d.process(&mut frame, Side::External);
            gue_source(&frame)
        })
        .collect();
    assert!(
        ports.iter().all(|&p| p == ports[0] && p >= 49152),
        "{ports:?}"
    );
}

/// Too big once wrapped: with DF, ICMP "fragmentation needed" from the VIP to the client with
/// the MTU left inside the tunnel (1500 - 20 for IP in IP), the packet dropped; without DF
/// dropped; an ICMP error is never answered with one. Counted as `too_big`.
#[test]
fn too_big_for_the_tunnel_gets_fragmentation_needed() {
    let mut d = director(IPIP);
    let vip_80 = at(VIP, 80);
    let mut syn = Packet::tcp(c(42000), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut syn, Side::External),
        Verdict::Forward(Side::Internal)
    );
    // 1481 bytes of IP: 1501 once wrapped.
    let big = Packet::tcp(c(42000), vip_80, ACK, 2, 1).with_payload(&[7; 1481 - 40]);
    let input = big.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(input.len(), 14 + 1481);
    let mut frame = input.clone();
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::External)
    );
    let quote = &input[14..14 + 28];
    let mut expected = Vec::new();
    let mut ip =
        Ipv4Header::new(8 + 28, 64, IpNumber::ICMP, VIP.octets(), CLIENT.octets()).unwrap();
    ip.dscp = Ipv4Dscp::try_new(0xc0 >> 2).unwrap();
    ip.dont_fragment = false;
    ip.identification = 0;
    ip.header_checksum = ip.calc_header_checksum();
    let icmp = Icmpv4Header::with_checksum(
        Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1480 },
        ),
        quote,
    );
    expected.extend_from_slice(
        &Ethernet2Header {
            source: EXT_MAC,
            destination: CLIENT_MAC,
            ether_type: EtherType::IPV4,
        }
        .to_bytes(),
    );
    expected.extend_from_slice(&ip.to_bytes());
    expected.extend_from_slice(&icmp.to_bytes());
    expected.extend_from_slice(quote);
    assert_frame_eq(&frame, &expected, "fragmentation needed");
    assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 1);

    // Without DF: dropped, untouched.
    let mut no_df = input.clone();
    no_df[14 + 6] &= !0x40;
    no_df[24..26].fill(0);
    let sum = internet_checksum(&[&no_df[14..34]]);
    no_df[24..26].copy_from_slice(&sum.to_be_bytes());
    let before = no_df.clone();
    assert_eq!(
        d.process(&mut no_df, Side::External),
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(no_df, before);
    // That drop is counted by whoever acts on the verdict (the worker), not twice.
    assert_eq!(d.stats.drops[DropReason::TooBig as usize].get(), 1);
    // One byte less fits: 1480 + 20 = 1500.
    let fits = Packet::tcp(c(42000), vip_80, ACK, 2, 1).with_payload(&[7; 1480 - 40]);
    let mut frame = fits.frame(CLIENT_MAC, EXT_MAC);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    assert_frame_eq(
        &frame,
        &tunnelled(&fits, IPIP, REAL_148, REAL_148_MAC, 0),
        "1480 bytes fit",
    );
}

/// A frame whose buffer cannot grow (a fixed slice) cannot be tunnelled: dropped as too big,
/// left untouched.
#[test]
fn a_frame_without_room_is_dropped() {
    let mut d = director(IPIP);
    let syn = Packet::tcp(c(43000), at(VIP, 80), SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    let mut fixed = syn.clone();
    assert_eq!(
        d.process(&mut fixed[..], Side::External),
        Verdict::Drop(DropReason::TooBig)
    );
    assert_eq!(fixed, syn);
}

/// An ICMP error about a reply the real server sent from the VIP reaches it through the
/// tunnel, as IPVS hands it to the connection's transmitter; an echo to the VIP is not ours.
#[test]
fn icmp_error_about_a_reply_goes_through_the_tunnel() {
    let mut d = director(IPIP);
    let vip_80 = at(VIP, 80);
    let mut syn = Packet::tcp(c(44000), vip_80, SYN, 1, 0).frame(CLIENT_MAC, EXT_MAC);
    d.process(&mut syn, Side::External);
    let reply = Packet::tcp(vip_80, c(44000), ACK, 9, 2).ip_packet();
    let mut error = Vec::new();
    PacketBuilder::ethernet2(GATEWAY_MAC, EXT_MAC)
        .ipv4(GATEWAY.octets(), VIP.octets(), 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut error, &reply[..28])
        .unwrap();
    let inner = error[14..].to_vec();
    let mut frame = error.clone();
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let mut expected = ethernet(REAL_148_MAC);
    expected.extend_from_slice(&outer_ip(&inner, 4, 0, REAL_148).to_bytes());
    expected.extend_from_slice(&inner);
    assert_frame_eq(&frame, &expected, "the error, tunnelled");
}
