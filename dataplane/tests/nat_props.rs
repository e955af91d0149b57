//! Property tests of the NAT rewrite and of `process` as a whole.
//!
//! - [`translate`] round trip: rewriting one endpoint and rewriting it back gives the original
//!   bytes exactly, and the rewritten packet is exactly what etherparse builds from scratch for
//!   the new addresses (so its checksums are the full recompute's, representation included).
//!   A second property forces the checksums onto the ones'-complement zero boundary
//!   (TCP/IPv4 field 0x0000, UDP 0xffff), where an incremental update could produce the other
//!   representation of zero.
//! - `process` round trip: a client's packet goes in, the real's reply comes out with the VIP
//!   as its source, checksums valid; un-NAT of the inbound rewrite gives the original packet.
//! - `process` never panics, whatever the bytes, and whatever it forwards has a valid IPv4
//!   header checksum and a TCP/UDP checksum exactly as valid as it was on arrival.

mod common;

use common::*;
use etherparse::{NetHeaders, PacketHeaders, PayloadSlice, TransportHeader};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use std::net::{Ipv4Addr, SocketAddrV4};
use xvs_dataplane::checksum;
use xvs_dataplane::nat::{translate, Endpoint};
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Method, PROTO_TCP, PROTO_UDP};

// ---------------------------------------------------------------------------------------------
// Packets
// ---------------------------------------------------------------------------------------------

/// The packet builder is `common`'s [`Packet`]; what only these properties need of it:
impl Packet {
    fn endpoint(&self, endpoint: Endpoint) -> SocketAddrV4 {
        match endpoint {
            Endpoint::Source => self.src,
            Endpoint::Destination => self.dst,
        }
    }

    /// The same packet with `endpoint` replaced by `to`.
    fn with_endpoint(&self, endpoint: Endpoint, to: SocketAddrV4) -> Packet {
        let mut packet = self.clone();
        match endpoint {
            Endpoint::Source => packet.src = to,
            Endpoint::Destination => packet.dst = to,
        }
        packet
    }

    /// This packet with the identification and the last (aligned) payload word chosen so that
    /// both its sums land on the ones'-complement zero boundary: IPv4 header checksum 0x0000,
    /// TCP checksum 0x0000, UDP checksum 0xffff (a computed 0 is sent as all ones, RFC 768).
    fn with_zero_sums(mut self) -> Packet {
        if self.payload.len() % 2 == 1 {
            self.payload.push(0);
        }
        if self.payload.is_empty() {
            self.payload.extend([0, 0]);
        }
        let n = self.payload.len();
        self.payload[n - 2..].fill(0);
        self.ident = 0;
        let packet = self.ip_packet();
        // Adding x to a word moves the sum s to s + x; s + x = 0xffff makes the checksum 0.
        let mut header = packet[..20].to_vec();
        header[10..12].fill(0);
        self.ident = 0xffff - ones_sum(&[&header]);
        let (segment_sum, _) = l4_sum(&packet, true);
        let word = 0xffff - segment_sum;
        self.payload[n - 2..].copy_from_slice(&word.to_be_bytes());
        self
    }
}

/// The receiver's check of the IPv4 header checksum (RFC 1071: the sum, checksum included, is
/// all ones); [`l4_ok`] is the one of the TCP/UDP checksum.
fn ip_header_ok(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    ones_sum(&[&ip[..ihl]]) == 0xffff
}

/// Full recompute by etherparse: the IPv4 header checksum and the TCP/UDP checksum stored in
/// the packet are exactly the ones etherparse computes (UDP 0 "none" excepted).
fn etherparse_checksums(ip: &[u8]) -> Result<(), TestCaseError> {
    let headers =
        PacketHeaders::from_ip_slice(ip).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let Some(NetHeaders::Ipv4(header, _)) = &headers.net else {
        return Err(TestCaseError::fail("not IPv4"));
    };
    prop_assert_eq!(header.header_checksum, header.calc_header_checksum());
    match (&headers.transport, &headers.payload) {
        (Some(TransportHeader::Tcp(tcp)), PayloadSlice::Tcp(payload)) => {
            prop_assert_eq!(
                tcp.checksum,
                tcp.calc_checksum_ipv4(header, payload).unwrap()
            );
        }
        (Some(TransportHeader::Udp(udp)), PayloadSlice::Udp(payload)) => {
            if udp.checksum != 0 {
                prop_assert_eq!(
                    udp.checksum,
                    udp.calc_checksum_ipv4(header, payload).unwrap()
                );
            }
        }
        other => return Err(TestCaseError::fail(format!("unexpected {other:?}"))),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn socket() -> impl Strategy<Value = SocketAddrV4> {
    (addr(), any::<u16>()).prop_map(|(a, p)| SocketAddrV4::new(a, p))
}

fn l4() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u8>(), any::<u32>(), any::<u32>(), any::<u16>()).prop_map(
            |(flags, seq, ack, window)| L4::Tcp {
                flags,
                seq,
                ack,
                window
            }
        ),
        any::<bool>().prop_map(|checksum| L4::Udp { checksum }),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

fn spec() -> impl Strategy<Value = Packet> {
    (socket(), socket(), 2u8..=255, any::<u16>(), l4(), payload()).prop_map(
        |(src, dst, ttl, ident, l4, payload)| Packet {
            ttl,
            ident,
            payload,
            ..Packet::new(src, dst, l4)
        },
    )
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![Just(Endpoint::Source), Just(Endpoint::Destination)]
}

// ---------------------------------------------------------------------------------------------
// translate
// ---------------------------------------------------------------------------------------------

/// translate(endpoint -> to) then translate(endpoint -> original) is the identity, and the
/// packet in between is exactly what etherparse builds for the rewritten fields.
fn check_round_trip(
    spec: &Packet,
    endpoint: Endpoint,
    to: SocketAddrV4,
) -> Result<(), TestCaseError> {
    let original = spec.ip_packet();
    let mut packet = original.clone();
    translate(&mut packet, endpoint, *to.ip(), to.port());
    etherparse_checksums(&packet)?;
    prop_assert_eq!(&packet, &spec.with_endpoint(endpoint, to).ip_packet());
    if spec.proto() == PROTO_UDP && matches!(spec.l4, L4::Udp { checksum: false }) {
        prop_assert_eq!(&packet[26..28], &[0, 0], "UDP checksum 0 stays 0");
    }
    let back = spec.endpoint(endpoint);
    translate(&mut packet, endpoint, *back.ip(), back.port());
    prop_assert_eq!(packet, original);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn translate_round_trip(spec in spec(), endpoint in endpoint(), to in socket()) {
        check_round_trip(&spec, endpoint, to)?;
    }

    /// The same with the original's or the rewritten packet's checksums forced onto the zero
    /// boundary, where 0x0000 and 0xffff both mean zero: RFC 1624 eqn. 3 must land on the
    /// representation a full recompute gives (0x0000 for IPv4/TCP, 0xffff for UDP).
    #[test]
    fn translate_round_trip_at_the_zero_boundary(
        spec in spec(),
        endpoint in endpoint(),
        to in socket(),
        force_original in any::<bool>(),
    ) {
        let (spec, forced) = if force_original {
            let spec = spec.with_zero_sums();
            (spec.clone(), spec)
        } else {
            let forced = spec.with_endpoint(endpoint, to).with_zero_sums();
            let spec = Packet { ident: forced.ident, payload: forced.payload.clone(), ..spec };
            (spec, forced)
        };
        // The forcing worked: the boundary representation is what etherparse produced.
        let packet = forced.ip_packet();
        prop_assert_eq!(&packet[10..12], &[0, 0]);
        let field = &packet[20 + if forced.proto() == PROTO_TCP { 16 } else { 6 }..][..2];
        match forced.l4 {
            L4::Tcp { .. } => prop_assert_eq!(field, &[0, 0]),
            L4::Udp { checksum: true } => prop_assert_eq!(field, &[0xff, 0xff]),
            L4::Udp { checksum: false } => prop_assert_eq!(field, &[0, 0]),
        }
        check_round_trip(&spec, endpoint, to)?;
    }
}

// ---------------------------------------------------------------------------------------------
// process
// ---------------------------------------------------------------------------------------------

/// The one real server of these properties: the test network's .148.
const REAL: Ipv4Addr = REAL_148;
const REAL_MAC: [u8; 6] = REAL_148_MAC;
/// TCP VIP:80 -> REAL:8080 and UDP VIP:53 -> REAL:5353: ports are translated too.
const TCP_VPORT: u16 = 80;
const TCP_RPORT: u16 = 8080;
const UDP_VPORT: u16 = 53;
const UDP_RPORT: u16 = 5353;

impl Director {
    /// A director where every client is behind the gateway (only a default route outside), so
    /// that any random client address is reachable.
    fn new() -> Self {
        Self::by(Method::Masq)
    }

    /// [`Director::new`] whose real servers are reached by `method`.
    fn by(method: Method) -> Self {
        let config = snapshot_with([
            service_by(method, 0, PROTO_TCP, TCP_VPORT, &[(0, REAL, TCP_RPORT, 1)]),
            service_by(method, 1, PROTO_UDP, UDP_VPORT, &[(1, REAL, UDP_RPORT, 1)]),
        ]);
        let routes = vec![
            route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
            route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
        ];
        let neighbours = vec![
            neighbour(EXT_IF, GATEWAY, GATEWAY_MAC),
            neighbour(INT_IF, REAL, REAL_MAC),
        ];
        Director::from_parts(config, NeighbourTable::new(routes, neighbours), 64)
    }
}

/// A client's first packet to the VIP: a TCP SYN to port 80 or a UDP datagram to port 53.
fn request() -> impl Strategy<Value = Packet> {
    let tcp = (any::<u32>(), any::<u16>()).prop_map(|(seq, window)| {
        (
            TCP_VPORT,
            L4::Tcp {
                flags: SYN,
                seq,
                ack: 0,
                window,
            },
        )
    });
    let udp = any::<bool>().prop_map(|checksum| (UDP_VPORT, L4::Udp { checksum }));
    (
        socket(),
        prop_oneof![tcp, udp],
        2u8..=255,
        any::<u16>(),
        payload(),
    )
        .prop_map(|(src, (vport, l4), ttl, ident, payload)| Packet {
            ttl,
            ident,
            payload,
            ..Packet::new(src, SocketAddrV4::new(VIP, vport), l4)
        })
}

const ETH: usize = 14;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// un-NAT(NAT(p)) == p: the inbound rewrite, undone by translating the destination back to
    /// VIP:vport and restoring the TTL (RFC 1624 on the TTL/protocol word), is the identity on
    /// the IP packet.
    #[test]
    fn inbound_nat_is_undone_by_the_inverse_rewrite(request in request()) {
        let mut d = Director::new();
        let input = request.frame(GATEWAY_MAC, EXT_MAC);
        let mut frame = input.clone();
        prop_assert_eq!(d.process(&mut frame, Side::External), Verdict::Forward(Side::Internal));
        prop_assert_eq!(&frame[..12], &[REAL_MAC, INT_MAC].concat()[..]);
        let rport = if request.proto() == PROTO_TCP { TCP_RPORT } else { UDP_RPORT };
        let expected = request
            .with_endpoint(Endpoint::Destination, SocketAddrV4::new(REAL, rport))
            .with_ttl(request.ttl - 1);
        prop_assert_eq!(&frame[ETH..], &expected.ip_packet()[..]);

        let ip = &mut frame[ETH..];
        translate(ip, Endpoint::Destination, VIP, request.dst.port());
        let (ttl, proto) = (ip[8], ip[9]);
        let sum = u16::from_be_bytes([ip[10], ip[11]]);
        let sum = checksum::update_u16(
            sum,
            u16::from_be_bytes([ttl, proto]),
            u16::from_be_bytes([ttl + 1, proto]),
        );
        ip[8] = ttl + 1;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        prop_assert_eq!(&frame[ETH..], &input[ETH..]);
    }

    /// The full round trip through `process`: the client's packet in, the real's reply (its
    /// addresses and ports swapped from what the real received, a new payload) out; the reply
    /// leaves from VIP:vport to the client, towards the gateway, with valid checksums. For
    /// NAT and for FullNAT, whose real server received it from the local address.
    #[test]
    fn reply_leaves_from_the_vip(
        request in request(),
        reply_payload in payload(),
        reply_ttl in 2u8..=255,
        reply_ident in any::<u16>(),
        fullnat in any::<bool>(),
    ) {
        // A client at the local address itself is refused (`local_source`).
        prop_assume!(!fullnat || *request.src.ip() != LIP);
        let method = if fullnat { Method::FullNat } else { Method::Masq };
        let mut d = Director::by(method);
        let mut frame = request.frame(GATEWAY_MAC, EXT_MAC);
        prop_assert_eq!(d.process(&mut frame, Side::External), Verdict::Forward(Side::Internal));

        // What the real server received, as etherparse reads it.
        let received = PacketHeaders::from_ethernet_slice(&frame).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = &received.net else { panic!("not IPv4") };
        let (sport, dport) = match &received.transport {
            Some(TransportHeader::Tcp(t)) => (t.source_port, t.destination_port),
            Some(TransportHeader::Udp(u)) => (u.source_port, u.destination_port),
            other => panic!("{other:?}"),
        };
        let src = SocketAddrV4::new(ip.destination.into(), dport);
        let dst = SocketAddrV4::new(ip.source.into(), sport);
        let from = if fullnat { LIP } else { *request.src.ip() };
        prop_assert_eq!(*dst.ip(), from, "the real server's peer");
        let l4 = match request.l4 {
            L4::Tcp { seq, window, .. } => L4::Tcp {
                flags: SYN | ACK,
                seq: seq ^ 0x5555_5555,
                ack: seq.wrapping_add(1),
                window,
            },
            udp => udp,
        };
        let reply = Packet {
            ttl: reply_ttl,
            ident: reply_ident,
            payload: reply_payload,
            ..Packet::new(src, dst, l4)
        };
        let mut frame = reply.frame(REAL_MAC, INT_MAC);
        prop_assert_eq!(d.process(&mut frame, Side::Internal), Verdict::Forward(Side::External));

        let out = PacketHeaders::from_ethernet_slice(&frame).unwrap();
        let Some(NetHeaders::Ipv4(ip, _)) = &out.net else { panic!("not IPv4") };
        let (sport, dport) = match &out.transport {
            Some(TransportHeader::Tcp(t)) => (t.source_port, t.destination_port),
            Some(TransportHeader::Udp(u)) => (u.source_port, u.destination_port),
            other => panic!("{other:?}"),
        };
        prop_assert_eq!(Ipv4Addr::from(ip.source), VIP);
        prop_assert_eq!(sport, request.dst.port());
        prop_assert_eq!(Ipv4Addr::from(ip.destination), *request.src.ip());
        prop_assert_eq!(dport, request.src.port());
        etherparse_checksums(&frame[ETH..])?;
        let expected = reply
            .with_endpoint(Endpoint::Source, request.dst)
            .with_endpoint(Endpoint::Destination, request.src)
            .with_ttl(reply_ttl - 1)
            .frame(EXT_MAC, GATEWAY_MAC);
        prop_assert_eq!(frame, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// process never panics
// ---------------------------------------------------------------------------------------------

/// Whether the TCP/UDP checksum field holds a *partial* checksum, as a sender with checksum
/// offload leaves it: the folded pseudo-header sum (addresses, protocol, IP payload length).
fn l4_partial(ip: &[u8]) -> bool {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let at = ihl + if ip[9] == PROTO_TCP { 16 } else { 6 };
    let field = u16::from_be_bytes([ip[at], ip[at + 1]]);
    let length = ((total - ihl) as u16).to_be_bytes();
    field != 0 && field == ones_sum(&[&ip[12..20], &[0, ip[9]], &length])
}

/// What must hold for any frame: no panic (implicit), and a forwarded frame keeps its length
/// and has a valid IPv4 header checksum and a TCP/UDP checksum exactly as valid as on arrival
/// (or valid, when it arrived partial: `process` completes those); a frame that is not
/// forwarded is untouched.
fn check_any(d: &mut Director, input: &[u8], from: Side) -> Result<Verdict, TestCaseError> {
    let mut frame = input.to_vec();
    let verdict = d.process(&mut frame, from);
    if let Verdict::Forward(_) = verdict {
        prop_assert_eq!(frame.len(), input.len());
        prop_assert!(ip_header_ok(&frame[ETH..]), "output IPv4 header checksum");
        let expected = l4_ok(&input[ETH..]) || l4_partial(&input[ETH..]);
        prop_assert_eq!(l4_ok(&frame[ETH..]), expected, "L4 checksum validity");
    } else {
        prop_assert_eq!(&frame[..], input);
    }
    Ok(verdict)
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::External), Just(Side::Internal)]
}

/// Bytes that get past the Ethernet and IPv4 checks and then are anything: a version 4 header
/// with a valid checksum whose fields are mostly plausible (IHL 5, total length = what follows,
/// no fragment bits, TCP/UDP to a service port) and sometimes random, followed by random bytes
/// (the TCP/UDP header and payload, or IPv4 options when the IHL says so), half the time with
/// a plausible TCP data offset or UDP length.
fn garbage_behind_an_ipv4_header() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 20),
        prop_oneof![3 => Just(5u8), 1 => 0u8..=15],
        prop_oneof![Just(None), any::<u16>().prop_map(Some)],
        prop_oneof![Just(0x4000u16), any::<u16>()],
        prop_oneof![Just(6u8), Just(17), any::<u8>()],
        prop_oneof![Just(REAL), addr()],
        prop_oneof![Just(VIP), Just(REAL), addr()],
        prop_oneof![Just(TCP_VPORT), Just(UDP_VPORT), any::<u16>()],
        proptest::collection::vec(any::<u8>(), 0..120),
        any::<bool>(),
    )
        .prop_map(
            |(mut header, ihl, total_len, frag, proto, src, dst, dport, mut rest, plausible)| {
                header[0] = 0x40 | ihl;
                let total_len = total_len.unwrap_or((20 + rest.len()) as u16);
                header[2..4].copy_from_slice(&total_len.to_be_bytes());
                header[6..8].copy_from_slice(&frag.to_be_bytes());
                header[9] = proto;
                header[12..16].copy_from_slice(&src.octets());
                header[16..20].copy_from_slice(&dst.octets());
                if rest.len() >= 4 {
                    rest[2..4].copy_from_slice(&dport.to_be_bytes());
                }
                // Half the time, a TCP SYN with data offset 5 or a UDP length that fits.
                if plausible && proto == PROTO_TCP && rest.len() >= 20 {
                    rest[12..14].copy_from_slice(&[0x50, 0x02]);
                }
                if plausible && proto == PROTO_UDP && rest.len() >= 8 {
                    let len = rest.len() as u16;
                    rest[4..6].copy_from_slice(&len.to_be_bytes());
                }
                let mut frame = [INT_MAC, EXT_MAC].concat();
                frame.extend([0x08, 0x00]);
                frame.extend(&header);
                frame.extend(rest);
                // Options, if any, are the first bytes of `rest`; the checksum covers them.
                let ihl = usize::from(ihl) * 4;
                if frame.len() >= ETH + ihl.max(20) {
                    frame[ETH + 10..ETH + 12].fill(0);
                    let sum = !ones_sum(&[&frame[ETH..ETH + ihl.max(20)]]);
                    frame[ETH + 10..ETH + 12].copy_from_slice(&sum.to_be_bytes());
                }
                frame
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn process_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..1600),
        from in side(),
    ) {
        check_any(&mut Director::new(), &bytes, from)?;
    }

    #[test]
    fn process_never_panics_behind_a_valid_ipv4_header(
        frame in garbage_behind_an_ipv4_header(),
        from in side(),
    ) {
        check_any(&mut Director::new(), &frame, from)?;
    }

    /// Valid frames with a few bytes flipped: a client's first packet (External), and the
    /// real's reply to it once the connection exists (Internal).
    #[test]
    fn process_never_panics_on_mutated_frames(
        request in request(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let mutate = |frame: &[u8]| {
            let mut frame = frame.to_vec();
            for (i, x) in &flips {
                let at = i.index(frame.len());
                frame[at] ^= x;
            }
            frame
        };
        let mut d = Director::new();
        let syn = request.frame(GATEWAY_MAC, EXT_MAC);
        check_any(&mut d, &mutate(&syn), Side::External)?;

        // Now with the connection in place, a mutated reply.
        let mut d = Director::new();
        let mut frame = syn.clone();
        prop_assert_eq!(d.process(&mut frame, Side::External), Verdict::Forward(Side::Internal));
        let rport = if request.proto() == PROTO_TCP { TCP_RPORT } else { UDP_RPORT };
        let reply = Packet {
            src: SocketAddrV4::new(REAL, rport),
            dst: request.src,
            ..request.clone()
        };
        let reply = reply.frame(REAL_MAC, INT_MAC);
        check_any(&mut d, &mutate(&reply), Side::Internal)?;
        // And the unmutated reply still goes through.
        prop_assert_eq!(check_any(&mut d, &reply, Side::Internal)?, Verdict::Forward(Side::External));
    }
}

/// A frame of one of a few flows (clients 198.18.1.1-3, ports 1000-1003): a request to the
/// TCP or UDP VIP from outside, or the real server's reply from inside, with any TCP flags;
/// sometimes with a byte flipped.
fn flow_frame() -> impl Strategy<Value = (Side, Vec<u8>)> {
    (
        1u8..=3,
        1000u16..1004,
        any::<bool>(),
        prop_oneof![
            Just(SYN),
            Just(ACK),
            Just(SYN | ACK),
            Just(RST),
            Just(FIN | ACK)
        ],
        side(),
        prop_oneof![4 => Just(None), 1 => (any::<prop::sample::Index>(), 1u8..=255).prop_map(Some)],
    )
        .prop_map(|(client, cport, tcp, flags, from, flip)| {
            let client = SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, client), cport);
            let (vport, rport, l4) = if tcp {
                let l4 = L4::Tcp {
                    flags,
                    seq: 1,
                    ack: 1,
                    window: 1024,
                };
                (TCP_VPORT, TCP_RPORT, l4)
            } else {
                (UDP_VPORT, UDP_RPORT, L4::Udp { checksum: true })
            };
            let mut frame = match from {
                Side::External => Packet::new(client, SocketAddrV4::new(VIP, vport), l4)
                    .frame(GATEWAY_MAC, EXT_MAC),
                Side::Internal => {
                    Packet::new(SocketAddrV4::new(REAL, rport), client, l4).frame(REAL_MAC, INT_MAC)
                }
            };
            if let Some((i, x)) = flip {
                let at = i.index(frame.len());
                frame[at] ^= x;
            }
            (from, frame)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `process_batch` (parse all, prefetch, then process each) gives every frame the verdict
    /// and bytes `process` gives it one by one, and leaves the same connections behind, with
    /// the prefetch stages (forced on this small table) or without.
    #[test]
    fn a_batch_is_processed_as_its_frames_one_by_one(
        batches in proptest::collection::vec(
            (side(), proptest::collection::vec(flow_frame(), 0..80)),
            1..6,
        ),
        prefetch in any::<bool>(),
    ) {
        let (mut one, mut batched) = (Director::new(), Director::new());
        if prefetch {
            batched.conns.set_prefetch_min_entries(0);
        }
        for (from, frames) in batches {
            // A batch arrives on one side: keep the frames of that side.
            let mut frames: Vec<Vec<u8>> =
                frames.into_iter().filter(|(s, _)| *s == from).map(|(_, f)| f).collect();
            let mut expected = frames.clone();
            let verdicts: Vec<Verdict> =
                expected.iter_mut().map(|f| one.process(f, from)).collect();
            let mut got = vec![None; frames.len()];
            batched.process_batch(&mut frames, from, |i, v| got[i] = Some(v));
            prop_assert_eq!(got, verdicts.into_iter().map(Some).collect::<Vec<_>>());
            prop_assert_eq!(&frames, &expected);
        }
        let conns = |d: &Director| {
            let mut c: Vec<_> = d.conns.iter().map(|c| format!("{c:?}")).collect();
            c.sort();
            c
        };
        prop_assert_eq!(conns(&one), conns(&batched));
        prop_assert_eq!(one.stats.conns.get(), batched.stats.conns.get());
    }
}
