//! Property tests of tunnelling: for random client packets (TCP or UDP, any TTL, TOS, DF,
//! identification, payload, with or without a UDP checksum) through `process` to a tunnelled
//! service of every encapsulation, the frame that leaves decapsulates, as the real server's
//! kernel would take it apart, to exactly the packet that arrived, and every outer checksum
//! holds: the outer IPv4 header's always, GUE's UDP and GRE's when `--tun-csum` asks for them
//! (and a UDP checksum field of 0 otherwise).

mod common;

use common::*;
use etherparse::{Ipv4HeaderSlice, UdpHeaderSlice};
use proptest::prelude::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::neigh::NeighbourTable;
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
        let inner = match tunnel.encap {
            Encap::Ipip => {
                prop_assert_eq!(outer.protocol().0, 4);
                rest
            }
            Encap::Gue => {
                prop_assert_eq!(outer.protocol().0, 17);
                let udp = UdpHeaderSlice::from_slice(rest).expect("a UDP header");
                prop_assert_eq!(udp.destination_port(), GUE_PORT);
                prop_assert!(udp.source_port() >= 49152);
                prop_assert_eq!(usize::from(udp.length()), rest.len());
                let sum = udp.checksum();
                if tunnel.checksum {
                    let expected = udp
                        .to_header()
                        .calc_checksum_ipv4(&header, &rest[8..])
                        .expect("a checksum");
                    prop_assert_eq!(sum, expected);
                } else {
                    prop_assert_eq!(sum, 0);
                }
                prop_assert_eq!(&rest[8..12], &[0, 4, 0, 0]);
                &rest[12..]
            }
            Encap::Gre => {
                prop_assert_eq!(outer.protocol().0, 47);
                prop_assert_eq!(&rest[1..4], &[0, 0x08, 0]);
                if tunnel.checksum {
                    prop_assert_eq!(rest[0], 0x80);
                    prop_assert_eq!(internet_checksum(&[rest]), 0, "GRE checksum");
                    &rest[8..]
                } else {
                    prop_assert_eq!(rest[0], 0);
                    &rest[4..]
                }
            }
        };
        prop_assert_eq!(inner, &input[IP..]);
    }
}
