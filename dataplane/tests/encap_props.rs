//! Property tests of tunnelling: for random client packets (TCP or UDP, any TTL, TOS, DF,
//! identification, payload, with or without a UDP checksum) through `process` to a tunnelled
//! service of every encapsulation, the frame that leaves decapsulates, as the real server's
//! kernel would take it apart, to exactly the packet that arrived, and every outer checksum
//! holds: the outer IPv4 header's always, GUE's UDP and GRE's when `--tun-csum` asks for them
//! (and a UDP checksum field of 0 otherwise).
//!
//! The same for IPv6 through `process6` (any client address, hop limit, traffic class, flow
//! label, payload): the packet that arrived comes out of the tunnel with its hop limit
//! decremented and nothing else changed, in an outer IPv6 header that copies its traffic class
//! and hop limit.

mod common;

use common::*;
use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, UdpHeaderSlice};
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xvs_dataplane::neigh::{KernelTables, NeighbourTable};
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Encap, Method, Tunnel, PROTO_TCP, PROTO_UDP};

const GUE_PORT: u16 = 6080;

fn tunnel() -> impl Strategy<Value = Tunnel> {
    (
        prop_oneof![Just(Encap::Ipip), Just(Encap::Gue), Just(Encap::Gre)],
        any::<bool>(),
    )
        .prop_map(|(encap, checksum)| Tunnel {
            encap,
            port: if encap == Encap::Gue { GUE_PORT } else { 0 },
            checksum: checksum && encap != Encap::Ipip,
        })
}

/// A client's first packet to the VIP: a TCP SYN to :80 or a UDP datagram to :53, small
/// enough for the tunnel.
fn request() -> impl Strategy<Value = (Packet, u8, bool)> {
    (
        any::<u32>(),
        1024u16..,
        any::<bool>(),
        any::<bool>(),
        2u8..=255,
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..1400),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(
            |(client, cport, tcp, udp_checksum, ttl, ident, payload, tos, df)| {
                let src = SocketAddrV4::new(Ipv4Addr::from(client), cport);
                let packet = if tcp {
                    Packet::tcp(src, at(VIP, 80), SYN, 1, 0)
                } else if udp_checksum {
                    Packet::udp(src, at(VIP, 53))
                } else {
                    Packet::udp(src, at(VIP, 53)).without_udp_checksum()
                };
                (
                    Packet {
                        ttl,
                        ident,
                        payload,
                        ..packet
                    },
                    tos,
                    df,
                )
            },
        )
}

/// `packet`'s frame from the client, with `tos` and DF as given.
fn frame_of(packet: &Packet, tos: u8, df: bool) -> Vec<u8> {
    let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
    frame[IP + 1] = tos;
    frame[IP + 6] = (frame[IP + 6] & !0x40) | if df { 0x40 } else { 0 };
    frame[IP + 10..IP + 12].fill(0);
    let sum = internet_checksum(&[&frame[IP..IP + 20]]);
    frame[IP + 10..IP + 12].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// A client's first IPv6 packet to VIP6: a TCP SYN to :80 or a UDP datagram to :53 (with its
/// checksum: IPv6 has no "none"), from any address, small enough for every tunnel; and its
/// traffic class and flow label.
fn request6() -> impl Strategy<Value = (Packet<SocketAddrV6>, u8, u32)> {
    (
        any::<u128>(),
        1024u16..,
        any::<bool>(),
        2u8..=255,
        proptest::collection::vec(any::<u8>(), 0..1388),
        any::<u8>(),
        0u32..1 << 20,
    )
        .prop_map(|(client, cport, tcp, hop_limit, payload, tc, label)| {
            let src = SocketAddrV6::new(Ipv6Addr::from(client), cport, 0, 0);
            let packet = if tcp {
                Packet::tcp(src, at6(VIP6, 80), SYN, 1, 0)
            } else {
                Packet::udp(src, at6(VIP6, 53))
            };
            let packet = Packet {
                ttl: hop_limit,
                payload,
                ..packet
            };
            (packet, tc, label)
        })
}

/// `packet`'s frame from the client, with traffic class `tc` and flow label `label`.
fn frame_of6(packet: &Packet<SocketAddrV6>, tc: u8, label: u32) -> Vec<u8> {
    let mut frame = packet.frame(CLIENT_MAC, EXT_MAC);
    let word = 6 << 28 | u32::from(tc) << 20 | label;
    frame[IP..IP + 4].copy_from_slice(&word.to_be_bytes());
    frame
}

fn director(tunnel: Tunnel) -> Director {
    let method = Method::Tunnel(tunnel);
    let config = snapshot_with([
        service_by(method, 0, PROTO_TCP, 80, &[(0, REAL_148, 80, 1)]),
        service_by(method, 1, PROTO_UDP, 53, &[(1, REAL_148, 53, 1)]),
    ]);
    let neighbours = NeighbourTable::new(
        vec![
            route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
            route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
            route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
        ],
        vec![neighbour(INT_IF, REAL_148, REAL_148_MAC)],
    );
    Director::from_parts(config, neighbours, 16)
}

/// [`director`] for IPv6: TCP VIP6:80 and UDP VIP6:53 tunnelled to REAL6_148.
fn director6(tunnel: Tunnel) -> Director {
    let method = Method::Tunnel(tunnel);
    let config = snapshot_with([
        service_by(method, 0, PROTO_TCP, 80, &[(0, REAL6_148, 80, 1)]),
        service_by(method, 1, PROTO_UDP, 53, &[(1, REAL6_148, 53, 1)]),
    ]);
    let neighbours = NeighbourTable::from(KernelTables {
        routes6: vec![
            route6(INT_IF, Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0), 64, None),
            route6(EXT_IF, Ipv6Addr::UNSPECIFIED, 0, Some(GATEWAY6)),
        ],
        neighbours6: vec![neighbour6(INT_IF, REAL6_148, REAL_148_MAC)],
        ..KernelTables::default()
    });
    Director::from_parts(config, neighbours, 16)
}

/// Takes apart what follows the outer IP header (`rest`, of protocol `protocol`) as the real
/// server's kernel would for `tunnel` (checking GUE's UDP header, its checksum over
/// `udp_sum(udp header, payload)` or 0, and GRE's header and checksum), and returns the
/// packet carried, of the family GUE calls `gue_protocol` and GRE `gre_type`.
fn decapsulate(
    rest: &[u8],
    protocol: u8,
    tunnel: Tunnel,
    (gue_protocol, gre_type): (u8, [u8; 2]),
    udp_sum: impl Fn(&etherparse::UdpHeader, &[u8]) -> u16,
) -> Result<&[u8], TestCaseError> {
    match tunnel.encap {
        Encap::Ipip => {
            prop_assert_eq!(protocol, gue_protocol, "IP in IP names the packet's family");
            Ok(rest)
        }
        Encap::Gue => {
            prop_assert_eq!(protocol, 17);
            let udp = UdpHeaderSlice::from_slice(rest).expect("a UDP header");
            prop_assert_eq!(udp.destination_port(), GUE_PORT);
            prop_assert!(udp.source_port() >= 49152);
            prop_assert_eq!(usize::from(udp.length()), rest.len());
            let sum = udp.checksum();
            if tunnel.checksum {
                prop_assert_eq!(sum, udp_sum(&udp.to_header(), &rest[8..]));
            } else {
                prop_assert_eq!(sum, 0);
            }
            prop_assert_eq!(&rest[8..12], &[0, gue_protocol, 0, 0]);
            Ok(&rest[12..])
        }
        Encap::Gre => {
            prop_assert_eq!(protocol, 47);
            prop_assert_eq!(&rest[1..4], &[0, gre_type[0], gre_type[1]]);
            if tunnel.checksum {
                prop_assert_eq!(rest[0], 0x80);
                prop_assert_eq!(internet_checksum(&[rest]), 0, "GRE checksum");
                Ok(&rest[8..])
            } else {
                prop_assert_eq!(rest[0], 0);
                Ok(&rest[4..])
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tunnelled_packets_decapsulate_to_what_arrived(
        tunnel in tunnel(),
        (packet, tos, df) in request(),
    ) {
        let input = frame_of(&packet, tos, df);
        let mut frame = input.clone();
        let mut d = director(tunnel);
        prop_assert_eq!(d.process(&mut frame, Side::External), Verdict::Forward(Side::Internal));
        prop_assert_eq!(&frame[..12], &[REAL_148_MAC, INT_MAC].concat()[..]);

        let outer = Ipv4HeaderSlice::from_slice(&frame[IP..]).expect("an outer IPv4 header");
        let header = outer.to_header();
        prop_assert_eq!(header.calc_header_checksum(), outer.header_checksum());
        prop_assert_eq!(outer.source_addr(), DIP);
        prop_assert_eq!(outer.destination_addr(), REAL_148);
        prop_assert_eq!(usize::from(outer.total_len()), frame.len() - IP);
        prop_assert_eq!((outer.ttl(), outer.dont_fragment()), (input[IP + 8], df));
        prop_assert_eq!(frame[IP + 1], tos);
        let rest = &frame[IP + 20..];
        let udp_sum = |udp: &etherparse::UdpHeader, payload: &[u8]| {
            udp.calc_checksum_ipv4(&header, payload).expect("a checksum")
        };
        let inner = decapsulate(rest, outer.protocol().0, tunnel, (4, [8, 0]), udp_sum)?;
        prop_assert_eq!(inner, &input[IP..]);
    }

    #[test]
    fn tunnelled_ipv6_packets_decapsulate_to_what_arrived(
        tunnel in tunnel(),
        (packet, tc, label) in request6(),
    ) {
        let input = frame_of6(&packet, tc, label);
        let mut frame = input.clone();
        let mut d = director6(tunnel);
        prop_assert_eq!(d.process6(&mut frame, Side::External), Verdict::Forward(Side::Internal));
        prop_assert_eq!(&frame[..14], &[&REAL_148_MAC[..], &INT_MAC, &[0x86, 0xdd]].concat()[..]);

        let outer = Ipv6HeaderSlice::from_slice(&frame[IP..]).expect("an outer IPv6 header");
        let header = outer.to_header();
        prop_assert_eq!(outer.source_addr(), DIP6);
        prop_assert_eq!(outer.destination_addr(), REAL6_148);
        prop_assert_eq!(usize::from(outer.payload_length()), frame.len() - IP - 40);
        prop_assert_eq!(outer.hop_limit(), packet.ttl - 1);
        prop_assert_eq!(outer.traffic_class(), tc);
        prop_assert!(outer.flow_label().value() != 0, "labelled");
        let udp_sum = |udp: &etherparse::UdpHeader, payload: &[u8]| {
            udp.calc_checksum_ipv6(&header, payload).expect("a checksum")
        };
        let rest = &frame[IP + 40..];
        let inner = decapsulate(rest, outer.next_header().0, tunnel, (41, [0x86, 0xdd]), udp_sum)?;
        let mut expected = input[IP..].to_vec();
        expected[7] -= 1;
        prop_assert_eq!(inner, &expected[..], "the packet, its hop limit decremented");
    }
}
