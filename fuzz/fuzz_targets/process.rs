//! `process` (dataplane/src/process.rs) on arbitrary frame sequences through one director.
//!
//! The director: VIP 198.18.0.129, TCP :80 -> 198.19.0.148:80 and 198.19.0.137:8080, UDP :53
//! -> 198.19.0.148:53 and 198.19.0.137:5353, TCP :8080 -> 198.19.0.148:80 (round robin),
//! every next hop resolved except unknown hosts on the external /24, a small connection table
//! (so it fills up). TCP :80 is scheduled by source hashing and sloppy TCP is on, so its
//! mid-flow segments open connections too.
//!
//! Input: records `[control][len: u16 BE][frame: len bytes]` until the input ends (the last
//! frame takes what is left). `control` bits: 0 the side the frame arrives on (0 external,
//! 1 internal); 1 recompute its IPv4 header checksum first; 2 recompute its TCP/UDP checksum
//! first; 3 then replace that with a *partial* one (as an offloading sender leaves it);
//! 4-5 advance the clock by 0 s, 1 s, 61 s or 1000 s first (connections expire).
//! Bits 1-3 keep mutated frames from all dying at the checksum checks.
//!
//! Invariants, for every frame:
//! - `process` does not panic; a frame that is not forwarded is left untouched.
//! - A direct-routed frame (TCP :443, UDP :123, or an ICMP error about their replies) leaves by
//!   the internal side to a real server's MAC with nothing else changed (a partial TCP/UDP
//!   checksum completed); it has no round trip (the real server answers the client itself).
//! - A FullNAT frame (TCP :9000, UDP :9053, replies to the local address 198.19.0.160, ICMP
//!   errors about them) is checked as a NAT frame whose both endpoints are translated: inbound
//!   the source becomes the local address, outbound the destination becomes the client.
//! - Any other forwarded frame leaves by the other side, from that side's MAC, TTL - 1, with a valid
//!   IPv4 header checksum; only the translated endpoint (inbound: the destination, which
//!   becomes a real server of the VIP's service; outbound: the source, which becomes the VIP
//!   of a service of that real server), the MACs, the TTL and the checksums changed: every
//!   other byte (payload, padding after the IP packet) is the input's.
//! - Its TCP/UDP checksum is valid exactly when the input's was valid or partial (a bad one
//!   stays bad, RFC 1624; a UDP "no checksum" 0 stays 0).
//! - NAT round trip: the answer to a forwarded frame (built from the output by swapping
//!   addresses, ports and MACs) comes back through the other side translated to the original
//!   frame's endpoints: unNAT(NAT(p)) == p, both ways round.
//! - A forwarded ICMP error (about a connection: docs/packets.md) leaves by the other side,
//!   TTL - 1, valid IPv4 header checksum; only the outer translated address (inbound: the
//!   destination, a real server; outbound: the source, the VIP), the quoted packet's opposite
//!   endpoint and the checksums changed; the ICMP checksum and the quoted IPv4 header checksum
//!   are valid exactly when they were. Bit 2 of `control` also repairs an ICMP checksum.
//! - The connection table's count matches its entries.
//!
//! IPv6 frames (EtherType 0x86dd; bits 1-3 do not apply) go to `process6` through the same
//! director's IPv6 services ([`SERVICES6`]: NAT, DR, GUE tunnel and FullNAT on VIP
//! 2001:2::129) and IPv6 table, with these invariants: no panic; a frame not forwarded is
//! left untouched; a forwarded one is a well-formed IPv6 frame of the input's length, its hop
//! limit one lower (NAT, FullNAT) or its IPv6 header unchanged (DR); or, tunnelled, the
//! input's IPv6 packet with its hop limit one lower (and at most a completed checksum)
//! behind an outer IPv6 header from the DIP's twin and GUE's UDP and GUE headers; or, sent
//! back out of the side it came from, an ICMPv6 Packet Too Big of at most 1280 bytes from
//! that side's address, to the MAC the input came from, quoting the input; the IPv6 table's
//! count matches its entries.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;
use xvs_dataplane::conntrack::ConnTable;
use xvs_dataplane::neigh::{
    nud, KernelTables, Neighbour, Neighbour6, NeighbourTable, Route, Route6,
};
use xvs_dataplane::persist::{Templates, Templates6};
use xvs_dataplane::process::{client_endpoint6, process, process6, Env, Side, Verdict};
use xvs_dataplane::snapshot::{
    Encap, Interface, Method, RealServer, Service, Snapshot, Tunnel, Vip, PROTO_TCP, PROTO_UDP,
};
use xvs_dataplane::stats::WorkerStats;
use xvs_dataplane::wire::Ipv6Packet;
use xvs_scheduler::{Dest, Flags, Scheduler, SchedulerKind};

const EXT_IF: u32 = 2;
const INT_IF: u32 = 3;
const EXT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xe1];
const INT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const PROTO_ICMP: u8 = 1;
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);
const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 201);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const REAL_148: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 148);
const REAL_137: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 137);
/// (proto, vport, method, [(real, rport)]).
type ServiceDef<A = Ipv4Addr> = (u8, u16, Method, &'static [(A, u16)]);

/// The services. Two services share 198.19.0.148:80, as two VIPs of one
/// web server do: a client on both from one port makes two connections with one reply tuple.
/// TCP :443 and UDP :123 are direct-routed, TCP :8443 and UDP :4500 tunnelled, TCP :9000 and
/// UDP :9053 FullNAT (from [`LIP`]).
const SERVICES: [ServiceDef; 9] = [
    (
        PROTO_TCP,
        80,
        Method::Masq,
        &[(REAL_148, 80), (REAL_137, 8080)],
    ),
    (
        PROTO_UDP,
        53,
        Method::Masq,
        &[(REAL_148, 53), (REAL_137, 5353)],
    ),
    (PROTO_TCP, 8080, Method::Masq, &[(REAL_148, 80)]),
    (
        PROTO_TCP,
        443,
        Method::Route,
        &[(REAL_148, 443), (REAL_137, 443)],
    ),
    (PROTO_UDP, 123, Method::Route, &[(REAL_148, 123)]),
    (PROTO_TCP, 8443, GUE, &[(REAL_148, 8443)]),
    (PROTO_UDP, 4500, GRE, &[(REAL_137, 4500)]),
    (PROTO_TCP, 9000, Method::FullNat, &[(REAL_148, 9090)]),
    (PROTO_UDP, 9053, Method::FullNat, &[(REAL_137, 53)]),
];
/// FullNAT's local address.
const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 160);
const GUE: Method = Method::Tunnel(Tunnel {
    encap: Encap::Gue,
    port: 6080,
    checksum: true,
});
const GRE: Method = Method::Tunnel(Tunnel {
    encap: Encap::Gre,
    port: 0,
    checksum: true,
});
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x201);
const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
const REAL6_148: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x148);
const REAL6_137: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x137);
const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x160);
/// The director's IPv6 addresses on the external and internal interfaces.
const EXT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xe1);
const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x152);
/// The IPv6 services, on [`VIP6`]: TCP :80 and UDP :53 masqueraded, TCP :443 direct-routed,
/// TCP :8443 tunnelled (GUE with checksum), TCP :9000 FullNAT (from [`LIP6`]).
const SERVICES6: [ServiceDef<Ipv6Addr>; 5] = [
    (
        PROTO_TCP,
        80,
        Method::Masq,
        &[(REAL6_148, 80), (REAL6_137, 8080)],
    ),
    (PROTO_UDP, 53, Method::Masq, &[(REAL6_148, 53)]),
    (PROTO_TCP, 443, Method::Route, &[(REAL6_148, 443)]),
    (PROTO_TCP, 8443, GUE, &[(REAL6_148, 8443)]),
    (PROTO_TCP, 9000, Method::FullNat, &[(REAL6_137, 9090)]),
];
const CONN_CAPACITY: usize = 16;
const ETH: usize = 14;

fuzz_target!(|data: &[u8]| run(data));

struct Director {
    config: Snapshot,
    neighbours: NeighbourTable,
    templates: Templates,
    templates6: Templates6,
    conns: ConnTable,
    conns6: ConnTable<Ipv6Addr>,
    now_ms: u64,
}

/// Counters are outputs only (round robin ignores them): one set for the whole run.
fn stats() -> &'static WorkerStats {
    static STATS: OnceLock<WorkerStats> = OnceLock::new();
    STATS.get_or_init(WorkerStats::default)
}

impl Director {
    fn new() -> Self {
        let mut id = 0;
        let services: Vec<_> = SERVICES
            .iter()
            .enumerate()
            .map(|(sid, &def)| service(sid, &mut id, VIP, LIP, def))
            .collect();
        let services6: Vec<_> = SERVICES6
            .iter()
            .enumerate()
            .map(|(i, &def)| service(SERVICES.len() + i, &mut id, VIP6, LIP6, def))
            .collect();
        let config = Snapshot {
            external: Interface {
                ifindex: EXT_IF,
                mac: EXT_MAC,
                addr: Ipv4Addr::new(198, 18, 0, 129),
                addr6: Some(EXT_ADDR6),
                mtu: 1500,
            },
            internal: Interface {
                ifindex: INT_IF,
                mac: INT_MAC,
                addr: Ipv4Addr::new(198, 19, 0, 152),
                addr6: Some(DIP6),
                mtu: 1500,
            },
            timeouts: Default::default(),
            services: services.into_iter().chain(services6).collect(),
            vip_addrs: vec![VIP],
            vip_addrs6: vec![VIP6],
            local_addrs: vec![LIP],
            local_addrs6: vec![LIP6],
            sloppy_tcp: true,
        };
        let route = |ifindex, dst, prefix_len, gateway| Route {
            ifindex,
            dst,
            prefix_len,
            gateway,
        };
        let neighbour = |ifindex, addr, last| Neighbour {
            ifindex,
            addr,
            mac: [0x02, 0, 0, 0, 0x01, last],
            state: nud::REACHABLE,
        };
        let route6 = |ifindex, dst, prefix_len, gateway| Route6 {
            ifindex,
            dst,
            prefix_len,
            gateway,
        };
        let neighbour6 = |ifindex, addr, last| Neighbour6 {
            ifindex,
            addr,
            mac: [0x02, 0, 0, 0, 0x01, last],
            state: nud::REACHABLE,
        };
        let neighbours = NeighbourTable::from(KernelTables {
            routes: vec![
                route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
                route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
                route(EXT_IF, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY)),
            ],
            neighbours: vec![
                neighbour(EXT_IF, CLIENT, 0xc1),
                neighbour(EXT_IF, GATEWAY, 0x01),
                neighbour(INT_IF, REAL_148, 0x48),
                neighbour(INT_IF, REAL_137, 0x37),
            ],
            routes6: vec![
                route6(EXT_IF, Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 64, None),
                route6(INT_IF, Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0), 64, None),
                route6(EXT_IF, Ipv6Addr::UNSPECIFIED, 0, Some(GATEWAY6)),
            ],
            neighbours6: vec![
                neighbour6(EXT_IF, CLIENT6, 0xc1),
                neighbour6(EXT_IF, GATEWAY6, 0x01),
                neighbour6(INT_IF, REAL6_148, 0x48),
                neighbour6(INT_IF, REAL6_137, 0x37),
            ],
        });
        Director {
            config,
            neighbours,
            templates: Templates::new(64, 0),
            templates6: Templates6::new(64, 0),
            conns: ConnTable::with_capacity(CONN_CAPACITY),
            conns6: ConnTable::new(CONN_CAPACITY, CONN_CAPACITY / 2),
            now_ms: 1_000,
        }
    }

    fn process(&mut self, frame: &mut Vec<u8>, from: Side) -> Verdict {
        let env = env(
            &self.config,
            &self.neighbours,
            &self.templates,
            &self.templates6,
            self.now_ms,
        );
        process(frame, from, &env, &mut self.conns, stats())
    }

    fn process6(&mut self, frame: &mut Vec<u8>, from: Side) -> Verdict {
        let env = env(
            &self.config,
            &self.neighbours,
            &self.templates,
            &self.templates6,
            self.now_ms,
        );
        process6(frame, from, &env, &mut self.conns6, stats())
    }
}

/// The environment of a frame at `now_ms`, with no other worker or overload state.
fn env<'a>(
    config: &'a Snapshot,
    neighbours: &'a NeighbourTable,
    templates: &'a Templates,
    templates6: &'a Templates6,
    now_ms: u64,
) -> Env<'a> {
    Env {
        config,
        neighbours,
        now_ms,
        workers: &[],
        templates,
        templates6,
        overload: &[],
    }
}

/// Service `sid` of `def` on `vip`, its real servers numbered from `id` on; FullNAT ones from
/// `lip`.
fn service<A: Copy + Into<IpAddr>>(
    sid: usize,
    id: &mut u32,
    vip: A,
    lip: A,
    (proto, port, method, reals): ServiceDef<A>,
) -> (Vip, Service) {
    let vip = Vip {
        proto,
        addr: vip.into(),
        port,
    };
    let dests: Box<[Dest]> = reals.iter().map(|&(a, p)| Dest::new(a, p, 1)).collect();
    let reals = reals
        .iter()
        .map(|&(addr, port)| {
            *id += 1;
            RealServer {
                id: *id - 1,
                addr: addr.into(),
                port,
                method,
                failed: false,
            }
        })
        .collect();
    let service = Service {
        id: sid as u32,
        vip,
        // TCP :80 by source hashing: with sloppy TCP on, its mid-flow segments open
        // connections.
        scheduler: Scheduler::new(
            match sid {
                0 => SchedulerKind::SourceHashing,
                _ => SchedulerKind::RoundRobin,
            },
            &dests,
            Flags::default(),
        ),
        dests,
        reals,
        persistence: None,
        // The :8080 service has a small limit, so its refusals and evictions run.
        max_conns: if sid == 2 { 4 } else { 0 },
        local_addrs: match method {
            Method::FullNat => [lip.into()].into(),
            _ => Box::default(),
        },
    };
    (vip, service)
}

fn run(mut data: &[u8]) {
    let mut director = Director::new();
    let conns_before = stats().conns.get();
    while let Some((&control, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (rest.len(), &[][..]),
        };
        let (frame, rest) = rest.split_at(len.min(rest.len()));
        data = rest;

        let from = if control & 1 == 0 {
            Side::External
        } else {
            Side::Internal
        };
        director.now_ms += [0, 1_000, 61_000, 1_000_000][usize::from(control >> 4 & 3)];
        if frame.get(12..14) == Some(&[0x86, 0xdd][..]) {
            check_one6(&mut director, frame, from);
            continue;
        }
        let mut input = frame.to_vec();
        if control & 2 != 0 {
            fix_ip_checksum(&mut input);
        }
        if control & 4 != 0 {
            fix_l4_checksum(&mut input, control & 8 != 0);
        }
        if let Ok(forwarded) = check_one(&mut director, &input, from) {
            round_trip(&mut director, &input, &forwarded, from);
        }
    }
    let conns = &director.conns;
    assert_eq!(conns.len(), conns.iter().count(), "count vs entries");
    let conns6 = &director.conns6;
    assert_eq!(
        conns6.len(),
        conns6.iter().count(),
        "IPv6: count vs entries"
    );
    // Nothing else touches the shared gauge while this input runs.
    assert_eq!(
        stats().conns.get() - conns_before,
        (conns.len() + conns6.len()) as i64,
        "the connection gauge follows the tables"
    );
}

/// Runs one IPv6 frame and checks its invariants (see the module doc).
fn check_one6(director: &mut Director, input: &[u8], from: Side) {
    let _ = client_endpoint6(input, from);
    let mut frame = input.to_vec();
    let verdict = director.process6(&mut frame, from);
    let Verdict::Forward(to) = verdict else {
        assert_eq!(
            frame, input,
            "{verdict:?}: a frame not forwarded is left untouched"
        );
        return;
    };
    assert_eq!(frame[12..14], [0x86, 0xdd], "an IPv6 frame leaves");
    let ip = Ipv6Packet::new_checked(&frame[ETH..]).expect("a well-formed IPv6 packet");
    if to == from {
        let (mac, addr) = match from {
            Side::External => (EXT_MAC, EXT_ADDR6),
            Side::Internal => (INT_MAC, DIP6),
        };
        assert!(frame.len() <= ETH + 1280, "at most the minimum MTU");
        assert_eq!((frame[ETH + 6], frame[ETH + 40]), (58, 2), "Packet Too Big");
        assert_eq!(ip.src_addr(), addr, "from the arrival interface's address");
        assert_eq!(
            frame[..12],
            [&input[6..12], &mac[..]].concat(),
            "back to the sender"
        );
        let quote = &frame[ETH + 48..];
        assert_eq!(quote, &input[ETH..ETH + quote.len()], "quoting the packet");
        return;
    }
    if frame.len() != input.len() {
        check_tunnelled6(input, &frame, to);
        return;
    }
    if frame[ETH + 7] == input[ETH + 7] {
        assert_eq!(
            to,
            Side::Internal,
            "only direct routing leaves the hop limit"
        );
        assert_eq!(
            frame[ETH..ETH + 40],
            input[ETH..ETH + 40],
            "DR: the IPv6 header is untouched"
        );
    } else {
        assert_eq!(frame[ETH + 7], input[ETH + 7] - 1, "hop limit - 1");
    }
}

/// Runs one frame and checks the per-frame invariants; returns the output if forwarded.
fn check_one(director: &mut Director, input: &[u8], from: Side) -> Result<Vec<u8>, Verdict> {
    let mut frame = input.to_vec();
    let verdict = director.process(&mut frame, from);
    let Verdict::Forward(to) = verdict else {
        assert_eq!(
            frame, input,
            "{verdict:?}: a frame not forwarded is left untouched"
        );
        return Err(verdict);
    };
    let (egress_mac, translated) = match from {
        Side::External => (INT_MAC, Endpoint::Dst),
        Side::Internal => (EXT_MAC, Endpoint::Src),
    };
    match method_for(input) {
        Some(Method::Route) if from == Side::External => {
            check_direct_routed(input, &frame);
            // The real server answers the client itself: no round trip.
            return Err(verdict);
        }
        Some(Method::Tunnel(tunnel)) if from == Side::External => {
            check_tunnelled(input, &frame, &tunnel, to);
            return Err(verdict);
        }
        _ => {}
    }
    assert_ne!(to, from, "forwarded out of the other side");
    let fullnat = is_fullnat(input, from);
    if input.get(ETH + 9) == Some(&PROTO_ICMP) {
        check_icmp_error(input, &frame, from, egress_mac, fullnat);
        // An error is not answered: no round trip.
        return Err(verdict);
    }
    let i = Ipv4::parse(input).expect("process forwarded a well-formed IPv4 TCP/UDP frame");
    let o = Ipv4::parse(&frame).expect("the output is a well-formed frame");
    assert_eq!(frame[6..12], egress_mac, "from the egress interface's MAC");
    assert_eq!(frame[ETH + 8], input[ETH + 8] - 1, "TTL - 1");
    assert!(o.header_checksum_ok(&frame), "valid IPv4 header checksum");

    // Only the translated endpoint (both for FullNAT), MACs, TTL and checksums change.
    let mut expected = input.to_vec();
    expected[..12].copy_from_slice(&frame[..12]);
    for range in [ETH + 8..ETH + 9, ETH + 10..ETH + 12, o.l4_checksum_range()] {
        expected[range.clone()].copy_from_slice(&frame[range]);
    }
    let (both, one) = ([Endpoint::Src, Endpoint::Dst], [translated]);
    for endpoint in if fullnat { &both[..] } else { &one[..] } {
        let (addr, port) = endpoint.ranges(o.l4);
        expected[addr.clone()].copy_from_slice(&frame[addr]);
        expected[port.clone()].copy_from_slice(&frame[port]);
    }
    assert_eq!(frame, expected, "nothing but the NAT fields changed");

    // The new endpoint is what the configuration says.
    let proto = i.proto;
    match translated {
        Endpoint::Dst => {
            let (_, _, _, reals) = service_of(proto, i.dst(input)).expect("a configured VIP");
            assert!(reals.contains(&o.dst(&frame)), "DNAT to one of its reals");
            if fullnat {
                assert_eq!(o.src(&frame).0, LIP, "FullNAT: from the local address");
            }
        }
        Endpoint::Src => {
            let (vip, vport) = o.src(&frame);
            assert_eq!(vip, VIP, "SNAT to the VIP");
            let (_, _, method, reals) = service_of(proto, (vip, vport)).expect("a configured VIP");
            let expected = if fullnat {
                Method::FullNat
            } else {
                Method::Masq
            };
            assert_eq!(method, expected, "only NAT and FullNAT replies come back");
            assert!(
                reals.contains(&i.src(input)),
                "SNAT to a VIP:port of that real"
            );
        }
    }

    let (valid, partial, none) = i.l4_checksum(input);
    let (out_valid, _, out_none) = o.l4_checksum(&frame);
    assert_eq!(
        out_valid,
        valid || partial,
        "TCP/UDP checksum valid iff it was valid or partial (in: valid {valid}, partial {partial})"
    );
    assert_eq!(out_none, none, "UDP 'no checksum' is kept");
    Ok(frame)
}

/// The method of the service `input` belongs to, seen from the external side: that of the
/// service a TCP/UDP packet goes to, or whose reply an ICMP error quotes.
fn method_for(input: &[u8]) -> Option<Method> {
    let endpoint = if input.get(ETH + 9) == Some(&PROTO_ICMP) {
        let ihl = usize::from(input[ETH] & 0x0f) * 4;
        let quote = ETH + ihl + 8;
        let (Some(&qproto), Some(src), Some(qihl)) = (
            input.get(quote + 9),
            input.get(quote + 12..quote + 16),
            input.get(quote).map(|b| usize::from(b & 0x0f) * 4),
        ) else {
            return None;
        };
        let sport = input.get(quote + qihl..quote + qihl + 2)?;
        service_of(qproto, (addr(src), port(sport)))
    } else {
        let i = Ipv4::parse(input)?;
        service_of(i.proto, i.dst(input))
    };
    endpoint.map(|(_, _, method, _)| method)
}

/// The invariants of a tunnelled frame: out of the internal side with the outer headers of
/// `tunnel` (valid outer IPv4 checksum, from the DIP to a real server) around the input's IP
/// packet, unchanged but for a completed partial checksum; or, too big for the tunnel, an
/// ICMP "fragmentation needed" to the client out of the external side.
fn check_tunnelled(input: &[u8], frame: &[u8], tunnel: &Tunnel, to: Side) {
    if to == Side::External {
        assert_eq!(frame[ETH + 9], PROTO_ICMP, "fragmentation needed");
        assert_eq!(&frame[ETH + 20..ETH + 22], &[3, 4], "type 3 code 4");
        assert_eq!(
            &frame[ETH + 28..ETH + 28 + 28],
            &input[ETH..ETH + 28],
            "the quote"
        );
        return;
    }
    let overhead = tunnel.overhead();
    assert_eq!(frame[6..12], INT_MAC, "from the internal interface's MAC");
    assert_eq!(
        ones_sum(&[&frame[ETH..ETH + 20]]),
        0xffff,
        "valid outer header"
    );
    assert_eq!(frame[ETH + 12..ETH + 16], [198, 19, 0, 152], "from the DIP");
    let total = usize::from(port(&input[ETH + 2..]));
    let inner = &frame[ETH + overhead..];
    assert_eq!(inner.len(), total, "the IP packet, without padding");
    let mut expected = input[ETH..ETH + total].to_vec();
    if let Some(i) = Ipv4::parse(input) {
        let (valid, partial, _) = i.l4_checksum(input);
        if partial && !valid {
            let range = i.l4_checksum_range();
            let range = range.start - ETH..range.end - ETH;
            expected[range.clone()].copy_from_slice(&inner[range]);
        }
    }
    assert_eq!(inner, &expected[..], "the packet travels unchanged");
}

/// The invariants of a tunnelled IPv6 frame (see the module doc): out of the internal side,
/// an outer IPv6 header from the DIP's twin to the tunnelled real server, UDP to GUE's port
/// and a GUE header naming IPv6, then the input's IPv6 packet (without padding) with its hop
/// limit one lower, and no other change but a partial TCP/UDP checksum completed.
fn check_tunnelled6(input: &[u8], frame: &[u8], to: Side) {
    const OVERHEAD: usize = 40 + 8 + 4;
    assert_eq!(to, Side::Internal, "tunnelled towards the real server");
    assert_eq!(frame[6..12], INT_MAC, "from the internal interface's MAC");
    let outer = Ipv6Packet::new_checked(&frame[ETH..]).expect("an outer IPv6 header");
    assert_eq!(
        (outer.src_addr(), outer.dst_addr()),
        (DIP6, REAL6_148),
        "from the DIP's twin to the real server"
    );
    assert_eq!(u8::from(outer.next_header()), PROTO_UDP, "GUE");
    let udp = &frame[ETH + 40..];
    assert_eq!(udp[2..4], 6080u16.to_be_bytes(), "to the GUE port");
    assert_eq!(udp[8..12], [0, 41, 0, 0], "GUE carrying IPv6");
    let inner = &frame[ETH + OVERHEAD..];
    let packet = Ipv6Packet::new_checked(&input[ETH..]).expect("the input was IPv6");
    let mut expected = input[ETH..ETH + packet.total_len()].to_vec();
    assert_eq!(
        inner.len(),
        expected.len(),
        "the IP packet, without padding"
    );
    expected[7] -= 1;
    let changed: Vec<usize> = (0..inner.len())
        .filter(|&i| inner[i] != expected[i])
        .collect();
    assert!(
        changed.is_empty() || (changed.len() <= 2 && changed[changed.len() - 1] - changed[0] <= 1),
        "only the hop limit, and a completed checksum: bytes {changed:?} changed"
    );
}

/// The invariants of a direct-routed frame (see the module doc): out of the internal side to
/// a real server's MAC, and nothing else changed but a partial TCP/UDP checksum, completed.
fn check_direct_routed(input: &[u8], frame: &[u8]) {
    assert_eq!(frame[6..12], INT_MAC, "from the internal interface's MAC");
    assert_eq!(frame[..5], [0x02, 0, 0, 0, 0x01], "to a real server's MAC");
    let mut expected = input.to_vec();
    expected[..12].copy_from_slice(&frame[..12]);
    if let Some(i) = Ipv4::parse(input) {
        let (valid, partial, _) = i.l4_checksum(input);
        if partial && !valid {
            let range = i.l4_checksum_range();
            expected[range.clone()].copy_from_slice(&frame[range]);
            assert!(i.l4_checksum(frame).0, "a partial checksum is completed");
        }
    }
    assert_eq!(frame, expected, "direct routing changes the MACs only");
}

/// The invariants of a translated ICMP error (see the module doc).
fn check_icmp_error(input: &[u8], frame: &[u8], from: Side, egress_mac: [u8; 6], fullnat: bool) {
    assert_eq!(frame.len(), input.len(), "same length");
    let ihl = usize::from(input[ETH] & 0x0f) * 4;
    let total = usize::from(port(&input[ETH + 2..]));
    let (icmp, end) = (ETH + ihl, ETH + total);
    assert!(
        ihl >= 20 && end <= input.len() && icmp + 8 + 20 <= end,
        "a well-formed error"
    );
    let quote = icmp + 8;
    let qihl = usize::from(input[quote] & 0x0f) * 4;
    let ql4 = quote + qihl;
    let qproto = input[quote + 9];
    assert!(
        matches!(qproto, PROTO_TCP | PROTO_UDP) && ql4 + 8 <= end,
        "quotes a TCP/UDP header"
    );
    assert_eq!(frame[6..12], egress_mac, "from the egress interface's MAC");
    assert_eq!(frame[ETH + 8], input[ETH + 8] - 1, "TTL - 1");
    assert_eq!(
        ones_sum(&[&frame[ETH..icmp]]),
        0xffff,
        "valid IPv4 header checksum"
    );
    let icmp_ok = |f: &[u8]| ones_sum(&[&f[icmp..end]]) == 0xffff;
    assert_eq!(
        icmp_ok(frame),
        icmp_ok(input),
        "ICMP checksum valid iff it was"
    );
    let quoted_ip_ok = |f: &[u8]| ones_sum(&[&f[quote..ql4]]) == 0xffff;
    assert_eq!(
        quoted_ip_ok(frame),
        quoted_ip_ok(input),
        "quoted IPv4 checksum valid iff it was"
    );

    // Inbound, the outer destination (the VIP) and the quoted source (VIP:vport) become the
    // real server's; outbound, the outer source and the quoted destination become the VIP's.
    let (outer, quoted_addr, quoted_port) = match from {
        Side::External => (ETH + 16..ETH + 20, quote + 12..quote + 16, ql4..ql4 + 2),
        Side::Internal => (ETH + 12..ETH + 16, quote + 16..quote + 20, ql4 + 2..ql4 + 4),
    };
    assert_eq!(
        frame[outer.clone()],
        frame[quoted_addr.clone()],
        "outer = quoted"
    );
    let (new_addr, new_port) = (
        addr(&frame[quoted_addr.clone()]),
        port(&frame[quoted_port.clone()]),
    );
    match from {
        Side::External => assert!(
            SERVICES
                .iter()
                .any(|(p, _, _, reals)| *p == qproto && reals.contains(&(new_addr, new_port))),
            "the error goes to a real server"
        ),
        Side::Internal => assert!(
            new_addr == VIP
                && SERVICES
                    .iter()
                    .any(|(p, vport, _, _)| *p == qproto && *vport == new_port),
            "the error comes from a VIP:port"
        ),
    }
    let quoted_l4_checksum = if qproto == PROTO_TCP {
        ql4 + 16
    } else {
        ql4 + 6
    };
    // FullNAT also translates the other outer address (inbound the source becomes the local
    // address; outbound the destination, the client) and the other quoted endpoint.
    let (other_outer, other_addr, other_port) = match from {
        Side::External => (ETH + 12..ETH + 16, quote + 16..quote + 20, ql4 + 2..ql4 + 4),
        Side::Internal => (ETH + 16..ETH + 20, quote + 12..quote + 16, ql4..ql4 + 2),
    };
    if fullnat {
        assert_eq!(
            frame[other_outer.clone()],
            frame[other_addr.clone()],
            "FullNAT: the other outer address = the other quoted one"
        );
        if from == Side::External {
            assert_eq!(
                addr(&frame[other_outer.clone()]),
                LIP,
                "from the local address"
            );
        }
    }
    let mut expected = input.to_vec();
    let mut changed = vec![
        0..12,
        ETH + 8..ETH + 9,
        ETH + 10..ETH + 12,
        outer,
        icmp + 2..icmp + 4,
        quote + 10..quote + 12,
        quoted_addr,
        quoted_port,
        quoted_l4_checksum..(quoted_l4_checksum + 2).min(end),
    ];
    if fullnat {
        changed.extend([other_outer, other_addr, other_port]);
    }
    for range in changed {
        if range.start < range.end {
            expected[range.clone()].copy_from_slice(&frame[range]);
        }
    }
    assert_eq!(frame, &expected[..], "nothing but the NAT fields changed");
}

/// Answers the forwarded `output` of `input` (arrived on `from`) through the other side and
/// checks it comes back translated to `input`'s endpoints.
fn round_trip(director: &mut Director, input: &[u8], output: &[u8], from: Side) {
    let i = Ipv4::parse(input).expect("forwarded");
    let mut answer = output.to_vec();
    let o = Ipv4::parse(&answer).expect("forwarded");
    answer[0..6].copy_from_slice(&output[6..12]);
    answer[6..12].copy_from_slice(&output[0..6]);
    // Swapping addresses and ports keeps every checksum right; a fresh TTL does not.
    answer[ETH + 12..ETH + 16].copy_from_slice(&output[ETH + 16..ETH + 20]);
    answer[ETH + 16..ETH + 20].copy_from_slice(&output[ETH + 12..ETH + 16]);
    answer[o.l4..o.l4 + 2].copy_from_slice(&output[o.l4 + 2..o.l4 + 4]);
    answer[o.l4 + 2..o.l4 + 4].copy_from_slice(&output[o.l4..o.l4 + 2]);
    answer[ETH + 8] = 64;
    fix_ip_checksum(&mut answer);

    let back = match from {
        Side::External => Side::Internal,
        Side::Internal => Side::External,
    };
    let reply = match check_one(director, &answer, back) {
        Ok(reply) => reply,
        // Only an unresolved client (on the external /24, not in the neighbour table) may
        // keep the answer from going out.
        Err(Verdict::Unresolved {
            ifindex: EXT_IF,
            addr,
        }) if back == Side::Internal && addr == i.src(input).0 => return,
        Err(verdict) => panic!("the answer to a forwarded frame is forwarded too: {verdict:?}"),
    };
    let r = Ipv4::parse(&reply).expect("forwarded");
    assert_eq!(r.src(&reply), i.dst(input), "unNAT(NAT(p)): source");
    assert_eq!(r.dst(&reply), i.src(input), "unNAT(NAT(p)): destination");
}

/// Whether `input`, arriving on `from`, belongs to a FullNAT connection: from the external
/// side, it goes to (or an ICMP error quotes a reply from) a FullNAT service; from the
/// internal side, it is addressed to the local address.
fn is_fullnat(input: &[u8], from: Side) -> bool {
    match from {
        Side::External => method_for(input) == Some(Method::FullNat),
        Side::Internal => input.get(ETH + 16..ETH + 20).map(addr) == Some(LIP),
    }
}

fn service_of(proto: u8, (addr, port): (Ipv4Addr, u16)) -> Option<ServiceDef> {
    SERVICES
        .iter()
        .copied()
        .find(|&(p, vport, _, _)| p == proto && addr == VIP && vport == port)
}

#[derive(Clone, Copy)]
enum Endpoint {
    Src,
    Dst,
}

impl Endpoint {
    /// Byte ranges of this endpoint's address and port in a frame whose L4 header is at `l4`.
    fn ranges(self, l4: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        match self {
            Endpoint::Src => (ETH + 12..ETH + 16, l4..l4 + 2),
            Endpoint::Dst => (ETH + 16..ETH + 20, l4 + 2..l4 + 4),
        }
    }
}

/// An Ethernet + IPv4 + TCP/UDP frame, parsed here independently of the crate's views.
struct Ipv4 {
    /// Offset of the TCP/UDP header in the frame.
    l4: usize,
    /// Offset of the end of the IPv4 packet in the frame.
    end: usize,
    proto: u8,
}

impl Ipv4 {
    /// The layout of `frame` if it is Ethernet/IPv4 carrying a TCP/UDP header that fits.
    fn parse(frame: &[u8]) -> Option<Ipv4> {
        if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] || frame[ETH] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(frame[ETH] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([frame[ETH + 2], frame[ETH + 3]]));
        let proto = frame[ETH + 9];
        let min_l4 = match proto {
            PROTO_TCP => 20,
            PROTO_UDP => 8,
            _ => return None,
        };
        if ihl < 20 || total < ihl + min_l4 || ETH + total > frame.len() {
            return None;
        }
        Some(Ipv4 {
            l4: ETH + ihl,
            end: ETH + total,
            proto,
        })
    }

    fn src(&self, frame: &[u8]) -> (Ipv4Addr, u16) {
        (addr(&frame[ETH + 12..]), port(&frame[self.l4..]))
    }

    fn dst(&self, frame: &[u8]) -> (Ipv4Addr, u16) {
        (addr(&frame[ETH + 16..]), port(&frame[self.l4 + 2..]))
    }

    fn header_checksum_ok(&self, frame: &[u8]) -> bool {
        ones_sum(&[&frame[ETH..self.l4]]) == 0xffff
    }

    fn l4_checksum_range(&self) -> std::ops::Range<usize> {
        let at = self.l4 + if self.proto == PROTO_TCP { 16 } else { 6 };
        at..at + 2
    }

    /// Bytes the TCP/UDP checksum covers: the segment (UDP: up to its length field), or
    /// `None` for a UDP length that does not fit.
    fn segment<'f>(&self, frame: &'f [u8]) -> Option<&'f [u8]> {
        let segment = &frame[self.l4..self.end];
        if self.proto == PROTO_UDP {
            let len = usize::from(port(&segment[4..]));
            return (8..=segment.len()).contains(&len).then(|| &segment[..len]);
        }
        Some(segment)
    }

    /// The ones'-complement sum of the pseudo-header for a segment of `len` bytes.
    fn pseudo(&self, frame: &[u8], len: usize) -> u16 {
        ones_sum(&[
            &frame[ETH + 12..ETH + 20],
            &[0, self.proto],
            &(len as u16).to_be_bytes(),
        ])
    }

    /// (valid, partial, UDP "none") for the TCP/UDP checksum, as a receiver checks it and as
    /// process.rs defines a partial one (the folded pseudo-header sum over the IP payload).
    fn l4_checksum(&self, frame: &[u8]) -> (bool, bool, bool) {
        let field = self.l4_checksum_range();
        let value = u16::from_be_bytes([frame[field.start], frame[field.start + 1]]);
        let none = self.proto == PROTO_UDP && value == 0;
        let valid = none
            || self.segment(frame).is_some_and(|s| {
                let pseudo = self.pseudo(frame, s.len()).to_be_bytes();
                ones_sum(&[&pseudo[..], s]) == 0xffff
            });
        let partial = value != 0 && value == self.pseudo(frame, self.end - self.l4);
        (valid, partial, none)
    }
}

fn addr(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn port(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

/// RFC 1071 ones'-complement sum, folded, not complemented (written out here so that the
/// target does not trust the crate's checksum code).
fn ones_sum<T: AsRef<[u8]>>(chunks: &[T]) -> u16 {
    let mut sum: u64 = 0;
    for chunk in chunks {
        let mut words = chunk.as_ref().chunks_exact(2);
        for w in &mut words {
            sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = words.remainder() {
            sum += u64::from(*b) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Recomputes the IPv4 header checksum of an Ethernet/IPv4 frame whose header fits.
fn fix_ip_checksum(frame: &mut [u8]) {
    if frame.len() < ETH + 20 {
        return;
    }
    let ihl = usize::from(frame[ETH] & 0x0f) * 4;
    if ihl < 20 || frame.len() < ETH + ihl {
        return;
    }
    frame[ETH + 10..ETH + 12].fill(0);
    let sum = !ones_sum(&[&frame[ETH..ETH + ihl]]);
    frame[ETH + 10..ETH + 12].copy_from_slice(&sum.to_be_bytes());
}

/// Recomputes the TCP/UDP checksum (or, with `partial`, stores the partial one an offloading
/// sender leaves: the folded pseudo-header sum over the IP payload).
fn fix_l4_checksum(frame: &mut [u8], partial: bool) {
    let Some(p) = Ipv4::parse(frame) else {
        fix_icmp_checksum(frame);
        return;
    };
    let field = p.l4_checksum_range();
    let value = if partial {
        p.pseudo(frame, p.end - p.l4)
    } else {
        let Some(segment) = p.segment(frame) else {
            return;
        };
        let pseudo = p.pseudo(frame, segment.len()).to_be_bytes();
        // The sum with the field counted as 0: subtract it (ones' complement) from the sum.
        let old = [frame[field.start], frame[field.start + 1]];
        let sum = ones_sum(&[
            &pseudo[..],
            segment,
            &(!u16::from_be_bytes(old)).to_be_bytes(),
        ]);
        match !sum {
            0 if p.proto == PROTO_UDP => 0xffff,
            value => value,
        }
    };
    frame[field].copy_from_slice(&value.to_be_bytes());
}

/// Recomputes the ICMP checksum of an Ethernet/IPv4/ICMP frame whose lengths fit.
fn fix_icmp_checksum(frame: &mut [u8]) {
    if frame.len() < ETH + 20 || frame[12..14] != [0x08, 0x00] || frame[ETH + 9] != PROTO_ICMP {
        return;
    }
    let icmp = ETH + usize::from(frame[ETH] & 0x0f) * 4;
    let end = ETH + usize::from(port(&frame[ETH + 2..]));
    if icmp + 4 > end || end > frame.len() {
        return;
    }
    frame[icmp + 2..icmp + 4].fill(0);
    let sum = !ones_sum(&[&frame[icmp..end]]);
    frame[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
}
