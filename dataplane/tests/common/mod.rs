//! What the integration tests `golden`, `odd_packets` and `nat_props` share: the test network
//! (both families), a director around [`process`] and [`process6`], a TCP/UDP packet builder on
//! etherparse for IPv4 and IPv6, an RFC 1071 checksum written out here so that the tests do not
//! trust the crate's, and the golden fixture table's rows.
//!
//! Each test binary includes this module with `mod common;`.

// Every test binary compiles its own copy of this module and uses only part of it, so an item
// used by one binary alone would be dead code in the other: allowed for the whole module, the
// usual idiom for `tests/common`.
#![allow(dead_code)]

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Header, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header,
    Ipv6RawExtHeader, PacketBuilder, PacketBuilderStep, TcpHeader,
};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use xvs_dataplane::conntrack::ConnTable;
use xvs_dataplane::neigh::{
    nud, KernelTables, Neighbour, Neighbour6, NeighbourTable, Route, Route6,
};
use xvs_dataplane::persist::{Templates, Templates6};
use xvs_dataplane::process::{process, process6, process_batch, Env, FrameBuf, Side, Verdict};
use xvs_dataplane::snapshot::{
    Encap, Interface, Method, RealId, RealServer, Service, ServiceId, Snapshot, Tunnel, Vip,
    PROTO_TCP, PROTO_UDP,
};
use xvs_dataplane::stats::{DropReason, WorkerStats};
use xvs_scheduler::{Dest, Flags, Scheduler, SchedulerKind};

// ---------------------------------------------------------------------------------------------
// The test network
//
//   client 198.18.0.201 ----+
//                           |  198.18.0.0/24        +-----------+  198.19.0.0/24
//   gateway 198.18.0.1 -----+---- ifindex 2 (ext) --| director  |-- ifindex 3 (int) --+-- .148
//     (remote client                                 +-----------+                     +-- .137
//      198.18.1.50 behind it)       VIP 198.18.0.129
//
// Each test file sets up its own services, routes and neighbours on it. IPv6 numbers the same
// hosts in 2001:2::/48: 198.18.0.x is 2001:2::x, 198.19.0.x is 2001:2:0:1::x (x in hex).
// ---------------------------------------------------------------------------------------------

pub const EXT_IF: u32 = 2;
pub const INT_IF: u32 = 3;
pub const EXT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xe1];
/// "i1": the internal interface.
pub const INT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const REAL_148_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x48];
pub const REAL_137_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x01, 0x37];

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 201);
/// Not on the external link: reached through the default route's gateway.
pub const REMOTE_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 50);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const REAL_148: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 148);
pub const REAL_137: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 137);
/// The director's address on the internal interface.
pub const DIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 152);
/// FullNAT's local address of every service [`service_by`] makes with `Method::FullNat`.
pub const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 160);

/// The IPv6 twins of the addresses above.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x201);
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 1);
pub const REAL6_148: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x148);
pub const REAL6_137: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x137);
pub const LIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x160);
/// The director's addresses on the external and internal interfaces: the sources of the
/// Packet Too Big it sends there.
pub const EXT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0xe1);
pub const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x152);

/// The clock of every batch in these tests; no entry comes near expiring.
pub const NOW_MS: u64 = 1_000;

/// TCP flags, as [`L4::Tcp`] takes them.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const ECE: u8 = 0x40;
pub const CWR: u8 = 0x80;

pub fn at(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, port)
}

pub fn at6(addr: Ipv6Addr, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(addr, port, 0, 0)
}

/// The IPv6 test network's endpoints: the client's, the VIP's, the real servers', LIP6's.
pub fn c6(port: u16) -> SocketAddrV6 {
    at6(CLIENT6, port)
}

pub fn vip6(port: u16) -> SocketAddrV6 {
    at6(VIP6, port)
}

pub fn r148_6(port: u16) -> SocketAddrV6 {
    at6(REAL6_148, port)
}

pub fn r137_6(port: u16) -> SocketAddrV6 {
    at6(REAL6_137, port)
}

pub fn l6(port: u16) -> SocketAddrV6 {
    at6(LIP6, port)
}

/// An address family of the test network: its VIP and FullNAT local address.
pub trait Family: Copy + Into<IpAddr> {
    const VIP: Self;
    const LIP: Self;
}

impl Family for Ipv4Addr {
    const VIP: Self = VIP;
    const LIP: Self = LIP;
}

impl Family for Ipv6Addr {
    const VIP: Self = VIP6;
    const LIP: Self = LIP6;
}

/// A round-robin service on `VIP:port` (`VIP6:port` for IPv6 real servers) whose real servers
/// are `(id, addr, port, weight)`, masqueraded.
pub fn service<A: Family>(
    id: ServiceId,
    proto: u8,
    port: u16,
    reals: &[(RealId, A, u16, u32)],
) -> (Vip, Service) {
    service_by(Method::Masq, id, proto, port, reals)
}

/// [`service`] whose real servers are reached by `method`.
pub fn service_by<A: Family>(
    method: Method,
    id: ServiceId,
    proto: u8,
    port: u16,
    reals: &[(RealId, A, u16, u32)],
) -> (Vip, Service) {
    let vip = Vip {
        proto,
        addr: A::VIP.into(),
        port,
    };
    let dests: Box<[Dest]> = reals
        .iter()
        .map(|&(_, addr, port, weight)| Dest::new(addr, port, weight))
        .collect();
    let service = Service {
        id,
        vip,
        scheduler: Scheduler::new(SchedulerKind::RoundRobin, &dests, Flags::default()),
        dests,
        reals: reals
            .iter()
            .map(|&(id, addr, port, _)| RealServer {
                id,
                addr: addr.into(),
                port,
                method,
                failed: false,
            })
            .collect(),
        persistence: None,
        max_conns: 0,
        local_addrs: match method {
            Method::FullNat => [A::LIP.into()].into(),
            _ => Box::default(),
        },
    };
    (vip, service)
}

/// The director's configuration: the external and internal interfaces (with an IPv6 address
/// each), default timeouts and these services.
pub fn snapshot_with(services: impl IntoIterator<Item = (Vip, Service)>) -> Snapshot {
    let services: xvs_dataplane::snapshot::ServiceMap = services.into_iter().collect();
    let mut local_addrs: Vec<IpAddr> = services
        .values()
        .flat_map(|s| s.local_addrs.iter().copied())
        .collect();
    local_addrs.sort();
    local_addrs.dedup();
    let v4 = |a: &IpAddr| match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    };
    let v6 = |a: &IpAddr| match a {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    };
    Snapshot {
        external: Interface {
            ifindex: EXT_IF,
            mac: EXT_MAC,
            addr: VIP,
            addr6: Some(EXT_ADDR6),
            mtu: 1500,
        },
        internal: Interface {
            ifindex: INT_IF,
            mac: INT_MAC,
            addr: DIP,
            addr6: Some(DIP6),
            mtu: 1500,
        },
        timeouts: Default::default(),
        services,
        vip_addrs: vec![VIP],
        vip_addrs6: vec![VIP6],
        local_addrs: local_addrs.iter().filter_map(v4).collect(),
        local_addrs6: local_addrs.iter().filter_map(v6).collect(),
        sloppy_tcp: false,
    }
}

pub fn route(ifindex: u32, dst: Ipv4Addr, prefix_len: u8, gateway: Option<Ipv4Addr>) -> Route {
    Route {
        ifindex,
        dst,
        prefix_len,
        gateway,
    }
}

pub fn neighbour(ifindex: u32, addr: Ipv4Addr, mac: [u8; 6]) -> Neighbour {
    Neighbour {
        ifindex,
        addr,
        mac,
        state: nud::REACHABLE,
    }
}

pub fn route6(ifindex: u32, dst: Ipv6Addr, prefix_len: u8, gateway: Option<Ipv6Addr>) -> Route6 {
    Route6 {
        ifindex,
        dst,
        prefix_len,
        gateway,
    }
}

pub fn neighbour6(ifindex: u32, addr: Ipv6Addr, mac: [u8; 6]) -> Neighbour6 {
    Neighbour6 {
        ifindex,
        addr,
        mac,
        state: nud::REACHABLE,
    }
}

/// The router on the internal link in front of 198.19.7.0/24 and 2001:2:0:7::/64, where the
/// tests that need one put a real server in another subnet; its MAC.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
pub const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 1);
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// The tunnels of the tunnel tests: ipip, and GUE to [`GUE_PORT`] without a checksum.
pub const IPIP: Tunnel = Tunnel {
    encap: Encap::Ipip,
    port: 0,
    checksum: false,
};
pub const GUE_PORT: u16 = 6080;
pub const GUE: Tunnel = Tunnel {
    encap: Encap::Gue,
    port: GUE_PORT,
    checksum: false,
};

/// Runs `check` on the `encap` tunnel (to [`GUE_PORT`] for GUE) without, then with, a
/// checksum.
pub fn with_and_without_checksum(encap: Encap, check: impl Fn(Tunnel)) {
    let port = if encap == Encap::Gue { GUE_PORT } else { 0 };
    for checksum in [false, true] {
        check(Tunnel {
            encap,
            port,
            checksum,
        });
    }
}

/// The IPv6 test network's routes: both links (2001:2::/64 outside, 2001:2:0:1::/64 inside),
/// 2001:2:0:7::/64 through [`ROUTER6`], the rest through [`GATEWAY6`].
pub fn routes6() -> Vec<Route6> {
    vec![
        route6(EXT_IF, Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 64, None),
        route6(INT_IF, Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0), 64, None),
        route6(
            INT_IF,
            Ipv6Addr::new(0x2001, 2, 0, 7, 0, 0, 0, 0),
            64,
            Some(ROUTER6),
        ),
        route6(EXT_IF, Ipv6Addr::UNSPECIFIED, 0, Some(GATEWAY6)),
    ]
}

/// The IPv6 test network's neighbours: the client and the gateway outside, the real servers
/// 148 and 137 and [`ROUTER6`] inside.
pub fn neighbours6() -> Vec<Neighbour6> {
    vec![
        neighbour6(EXT_IF, CLIENT6, CLIENT_MAC),
        neighbour6(EXT_IF, GATEWAY6, GATEWAY_MAC),
        neighbour6(INT_IF, REAL6_148, REAL_148_MAC),
        neighbour6(INT_IF, REAL6_137, REAL_137_MAC),
        neighbour6(INT_IF, ROUTER6, ROUTER_MAC),
    ]
}

/// The dual-stack tables of the IPv6 tests: [`routes6`] and [`neighbours6`], and for the
/// services across families IPv4's two links (198.18.0.0/24, 198.19.0.0/24) with the client
/// and .148 on them.
pub fn dual_stack() -> NeighbourTable {
    NeighbourTable::from(KernelTables {
        routes: vec![
            route(EXT_IF, Ipv4Addr::new(198, 18, 0, 0), 24, None),
            route(INT_IF, Ipv4Addr::new(198, 19, 0, 0), 24, None),
        ],
        neighbours: vec![
            neighbour(EXT_IF, CLIENT, CLIENT_MAC),
            neighbour(INT_IF, REAL_148, REAL_148_MAC),
        ],
        routes6: routes6(),
        neighbours6: neighbours6(),
    })
}

/// A director with its own configuration, connection tables (one per family) and counters.
/// Each test file adds its own constructors.
pub struct Director {
    pub config: Snapshot,
    pub neighbours: NeighbourTable,
    pub conns: ConnTable,
    pub conns6: ConnTable<Ipv6Addr>,
    pub stats: WorkerStats,
    pub templates: Templates,
    pub templates6: Templates6,
}

/// The environment of one batch at [`NOW_MS`], with no other worker, template or overload
/// state than the fixture's.
fn test_env<'a>(
    config: &'a Snapshot,
    neighbours: &'a NeighbourTable,
    templates: &'a Templates,
    templates6: &'a Templates6,
) -> Env<'a> {
    Env {
        config,
        neighbours,
        now_ms: NOW_MS,
        workers: &[],
        templates,
        templates6,
        overload: &[],
    }
}

impl Director {
    pub fn from_parts(config: Snapshot, neighbours: NeighbourTable, capacity: usize) -> Self {
        Director {
            config,
            neighbours,
            conns: ConnTable::with_capacity(capacity),
            conns6: ConnTable::new(capacity, capacity / 2),
            stats: WorkerStats::default(),
            templates: Templates::new(64, 0),
            templates6: Templates6::new(64, 0),
        }
    }

    /// One frame through [`process`] at [`NOW_MS`] (a `Vec` may change its length, a slice
    /// may not).
    pub fn process<F: FrameBuf + ?Sized>(&mut self, frame: &mut F, from: Side) -> Verdict {
        let env = test_env(
            &self.config,
            &self.neighbours,
            &self.templates,
            &self.templates6,
        );
        process(frame, from, &env, &mut self.conns, &self.stats)
    }

    /// One IPv6 frame through [`process6`] at [`NOW_MS`].
    pub fn process6<F: FrameBuf + ?Sized>(&mut self, frame: &mut F, from: Side) -> Verdict {
        let env = test_env(
            &self.config,
            &self.neighbours,
            &self.templates,
            &self.templates6,
        );
        process6(frame, from, &env, &mut self.conns6, &self.stats)
    }

    /// Runs `input`, arriving from outside, through `process6`: it must be dropped for
    /// `reason`, untouched.
    pub fn assert_drops6(&mut self, input: &[u8], reason: DropReason) {
        let mut frame = input.to_vec();
        let verdict = self.process6(&mut frame, Side::External);
        assert_eq!(verdict, Verdict::Drop(reason));
        assert_eq!(
            frame, input,
            "a frame dropped for {reason:?} must stay untouched"
        );
    }

    /// Frames arrived on `from` through [`process_batch`] at [`NOW_MS`].
    pub fn process_batch(
        &mut self,
        frames: &mut [Vec<u8>],
        from: Side,
        verdict: impl FnMut(usize, Verdict),
    ) {
        let env = test_env(
            &self.config,
            &self.neighbours,
            &self.templates,
            &self.templates6,
        );
        process_batch(frames, from, &env, &mut self.conns, &self.stats, verdict)
    }
}

// ---------------------------------------------------------------------------------------------
// Packet builder (etherparse underneath)
// ---------------------------------------------------------------------------------------------

/// Transport part of a test packet.
#[derive(Debug, Clone, Copy)]
pub enum L4 {
    /// `flags`: any of [`FIN`], [`SYN`], [`RST`], [`PSH`], [`ACK`], [`ECE`], [`CWR`]; other bits
    /// are ignored.
    Tcp {
        flags: u8,
        seq: u32,
        ack: u32,
        window: u16,
    },
    /// `checksum: false`: the field is 0, "no checksum" (RFC 768).
    Udp { checksum: bool },
}

/// A TCP/UDP endpoint of either family, as [`Packet`] takes them.
pub trait Socket: Copy + std::fmt::Debug {
    fn port(&self) -> u16;
    /// The IP header (and IPv6 extension headers) of `packet`.
    fn ip_headers(packet: &Packet<Self>) -> IpHeaders;
}

impl Socket for SocketAddrV4 {
    fn port(&self) -> u16 {
        SocketAddrV4::port(self)
    }

    fn ip_headers(packet: &Packet<Self>) -> IpHeaders {
        let (more_fragments, offset) = packet.fragment;
        let header = Ipv4Header {
            identification: packet.ident,
            dont_fragment: !more_fragments && offset == 0,
            more_fragments,
            fragment_offset: IpFragOffset::try_new(offset).unwrap(),
            time_to_live: packet.ttl,
            source: packet.src.ip().octets(),
            destination: packet.dst.ip().octets(),
            options: packet.options.as_slice().try_into().unwrap(),
            ..Default::default()
        };
        IpHeaders::Ipv4(header, Default::default())
    }
}

impl Socket for SocketAddrV6 {
    fn port(&self) -> u16 {
        SocketAddrV6::port(self)
    }

    /// `ipv6_exts`, and a Fragment header when `fragment` is set (identification `ident`).
    fn ip_headers(packet: &Packet<Self>) -> IpHeaders {
        let header = Ipv6Header {
            hop_limit: packet.ttl,
            source: packet.src.ip().octets(),
            destination: packet.dst.ip().octets(),
            ..Default::default()
        };
        let mut exts = packet.ipv6_exts.clone();
        let (more_fragments, offset) = packet.fragment;
        if more_fragments || offset != 0 {
            exts.fragment = Some(Ipv6FragmentHeader::new(
                IpNumber::TCP,
                IpFragOffset::try_new(offset).unwrap(),
                more_fragments,
                u32::from(packet.ident),
            ));
        }
        IpHeaders::Ipv6(header, exts)
    }
}

/// A TCP/UDP packet described by its fields, IPv4 or (with [`SocketAddrV6`] endpoints) IPv6;
/// [`Packet::frame`] and [`Packet::ip_packet`] serialize it.
#[derive(Debug, Clone)]
pub struct Packet<S = SocketAddrV4> {
    pub src: S,
    pub dst: S,
    /// IPv6: the hop limit.
    pub ttl: u8,
    pub ident: u16,
    pub l4: L4,
    pub payload: Vec<u8>,
    /// (MF, fragment offset in 8-byte units). IPv4: DF is set when neither is; IPv6: a Fragment
    /// header is added when either is.
    pub fragment: (bool, u16),
    /// IPv4 only.
    pub options: Vec<u8>,
    /// IPv6 only: the extension headers before the TCP/UDP header (next headers are filled in).
    pub ipv6_exts: Ipv6Extensions,
}

impl<S: Socket> Packet<S> {
    /// A packet with TTL 64, identification 0x1c46, no payload, not fragmented, no options.
    pub fn new(src: S, dst: S, l4: L4) -> Self {
        Packet {
            src,
            dst,
            ttl: 64,
            ident: 0x1c46,
            l4,
            payload: Vec::new(),
            fragment: (false, 0),
            options: Vec::new(),
            ipv6_exts: Ipv6Extensions::default(),
        }
    }

    /// TCP with window 64240.
    pub fn tcp(src: S, dst: S, flags: u8, seq: u32, ack: u32) -> Self {
        let l4 = L4::Tcp {
            flags,
            seq,
            ack,
            window: 64240,
        };
        Packet::new(src, dst, l4)
    }

    /// UDP with a checksum.
    pub fn udp(src: S, dst: S) -> Self {
        Packet::new(src, dst, L4::Udp { checksum: true })
    }

    pub fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => PROTO_TCP,
            L4::Udp { .. } => PROTO_UDP,
        }
    }

    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// UDP with the checksum field 0: "no checksum" (RFC 768).
    pub fn without_udp_checksum(mut self) -> Self {
        self.l4 = L4::Udp { checksum: false };
        self
    }

    pub fn with_src(mut self, src: S) -> Self {
        self.src = src;
        self
    }

    pub fn with_dst(mut self, dst: S) -> Self {
        self.dst = dst;
        self
    }

    pub fn with_ttl(mut self, ttl: u8) -> Self {
        self.ttl = ttl;
        self
    }

    pub fn with_fragment(mut self, more_fragments: bool, offset_units: u16) -> Self {
        self.fragment = (more_fragments, offset_units);
        self
    }

    pub fn with_options(mut self, options: &[u8]) -> Self {
        self.options = options.to_vec();
        self
    }

    /// This packet as a translating director forwards it: from `src` to `dst`, TTL (hop
    /// limit) - 1.
    pub fn forwarded(&self, src: S, dst: S) -> Self {
        self.clone()
            .with_src(src)
            .with_dst(dst)
            .with_ttl(self.ttl - 1)
    }

    /// Serializes the transport header and payload after `step`.
    fn build(&self, step: PacketBuilderStep<IpHeaders>) -> Vec<u8> {
        let mut out = Vec::new();
        match self.l4 {
            L4::Tcp {
                flags,
                seq,
                ack,
                window,
            } => {
                let mut tcp = TcpHeader::new(self.src.port(), self.dst.port(), seq, window);
                tcp.fin = flags & FIN != 0;
                tcp.syn = flags & SYN != 0;
                tcp.rst = flags & RST != 0;
                tcp.psh = flags & PSH != 0;
                tcp.ack = flags & ACK != 0;
                tcp.ece = flags & ECE != 0;
                tcp.cwr = flags & CWR != 0;
                tcp.acknowledgment_number = ack;
                step.tcp_header(tcp).write(&mut out, &self.payload).unwrap();
            }
            L4::Udp { checksum } => {
                step.udp(self.src.port(), self.dst.port())
                    .write(&mut out, &self.payload)
                    .unwrap();
                if !checksum {
                    // The checksum is the last field of the 8-byte header before the payload.
                    let at = out.len() - self.payload.len() - 2;
                    out[at..at + 2].fill(0);
                }
            }
        }
        out
    }

    /// The IP packet, no link header.
    pub fn ip_packet(&self) -> Vec<u8> {
        self.build(PacketBuilder::ip(S::ip_headers(self)))
    }

    /// An Ethernet frame carrying this packet.
    pub fn frame(&self, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        self.build(PacketBuilder::ethernet2(src_mac, dst_mac).ip(S::ip_headers(self)))
    }
}

/// IPv6 extension headers, each given by its bytes after next header and length (6 + 8k).
impl Packet<SocketAddrV6> {
    pub fn with_hop_by_hop(mut self, options: &[u8]) -> Self {
        self.ipv6_exts.hop_by_hop_options = Some(raw_ext(options));
        self
    }

    pub fn with_dst_options(mut self, options: &[u8]) -> Self {
        self.ipv6_exts.destination_options = Some(raw_ext(options));
        self
    }

    /// A Routing header of type 0 (deprecated, but any type would do) with `segments_left`.
    pub fn with_routing(mut self, segments_left: u8) -> Self {
        let mut raw = [0u8; 22];
        raw[1] = segments_left;
        self.ipv6_exts.routing = Some(etherparse::Ipv6RoutingExtensions {
            routing: raw_ext(&raw),
            final_destination_options: None,
        });
        self
    }
}

/// Padding option PadN filling the 6 bytes after next header and length of an 8-byte
/// options header.
pub const PADN: [u8; 6] = [1, 4, 0, 0, 0, 0];

fn raw_ext(bytes: &[u8]) -> Ipv6RawExtHeader {
    Ipv6RawExtHeader::new_raw(IpNumber::TCP, bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Checksums, written out here so that the tests do not trust the crate's
// ---------------------------------------------------------------------------------------------

/// RFC 1071 ones'-complement sum, folded, not complemented: 0x0000 only for all-zero data.
pub fn ones_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in chunks {
        let mut words = chunk.chunks_exact(2);
        for w in &mut words {
            sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = words.remainder() {
            sum += u32::from(*b) << 8;
        }
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// RFC 1071 Internet checksum: the complement of [`ones_sum`].
pub fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    !ones_sum(chunks)
}

/// The ones'-complement sum of an IPv4 packet's pseudo-header and TCP/UDP segment (UDP up to
/// its length field), with the checksum field counted as 0 when `without_checksum`; and whether
/// the packet is UDP with checksum 0 ("none").
pub fn l4_sum(ip: &[u8], without_checksum: bool) -> (u16, bool) {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let proto = ip[9];
    let mut segment = ip[ihl..total].to_vec();
    let (len, at) = if proto == PROTO_UDP {
        (usize::from(u16::from_be_bytes([segment[4], segment[5]])), 6)
    } else {
        (segment.len(), 16)
    };
    let none = proto == PROTO_UDP && segment[6..8] == [0, 0];
    if without_checksum {
        segment[at..at + 2].fill(0);
    }
    let length = (len as u16).to_be_bytes();
    let sum = ones_sum(&[&ip[12..20], &[0, proto], &length, &segment[..len]]);
    (sum, none)
}

/// The receiver's check of the TCP/UDP checksum of an IPv4 packet (RFC 1071: the sum over the
/// pseudo-header and segment, checksum included, is all ones). UDP checksum 0 means none.
pub fn l4_ok(ip: &[u8]) -> bool {
    let (sum, none) = l4_sum(ip, false);
    none || sum == 0xffff
}

/// The receiver's check of the TCP/UDP checksum of an Ethernet/IPv6 frame, behind its
/// extension headers: the sum over the pseudo-header (RFC 8200 section 8.1: addresses, upper
/// layer length, next header) and the segment is all ones. A UDP 0 is invalid in IPv6.
pub fn l4_ok6(frame: &[u8]) -> bool {
    let sliced = etherparse::SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv6(ip)) = sliced.net else {
        panic!("not IPv6");
    };
    let header = ip.header();
    let payload = ip.payload();
    let segment = payload.payload;
    let length = (segment.len() as u32).to_be_bytes();
    let next_header = [0, 0, 0, payload.ip_number.0];
    let (src, dst) = (header.source(), header.destination());
    ones_sum(&[&src, &dst, &length, &next_header, segment]) == 0xffff
}

/// Offset of the IPv4 header in a frame, and of the TCP/UDP header behind a 20-byte one.
pub const IP: usize = 14;
pub const L4_AT: usize = IP + 20;

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        let sep = if i % 16 == 0 { "\n    " } else { " " };
        write!(s, "{sep}{b:02x}").unwrap();
    }
    s
}

pub fn assert_frame_eq(actual: &[u8], expected: &[u8], what: &str) {
    assert!(
        actual == expected,
        "{what}: frames differ\n  actual:{}\n  expected:{}",
        hex(actual),
        hex(expected)
    );
}

/// The frame with its TCP/UDP checksum replaced by the partial one an offloading sender
/// leaves: the ones'-complement sum of the pseudo-header (addresses, protocol, segment
/// length), folded, not inverted.
pub fn with_partial_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let ip = &frame[IP..];
    let (proto, len) = (ip[9], u16::from_be_bytes([ip[2], ip[3]]) - 20);
    let partial = !internet_checksum(&[&ip[12..20], &[0, proto], &len.to_be_bytes()]);
    let at = L4_AT + if proto == 6 { 16 } else { 6 };
    frame[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    frame
}

/// [`with_partial_checksum`] for an Ethernet/IPv6 frame whose `proto` header is at `l4` in
/// the frame: the folded pseudo-header sum, not inverted.
pub fn with_partial_checksum6(mut frame: Vec<u8>, l4: usize, proto: u8) -> Vec<u8> {
    let ip = &frame[IP..];
    let len = ((frame.len() - l4) as u32).to_be_bytes();
    let partial = ones_sum(&[&ip[8..40], &len, &[0, 0, 0, proto]]);
    let at = l4 + if proto == PROTO_TCP { 16 } else { 6 };
    frame[at..at + 2].copy_from_slice(&partial.to_be_bytes());
    frame
}

/// A golden fixture: a frame arriving on one side, the verdict it must get and, when it is
/// forwarded, the exact frame that must leave.
pub struct Fixture {
    pub description: &'static str,
    pub from: Side,
    pub input: Vec<u8>,
    pub verdict: Verdict,
    /// The frame as it must leave, for `Forward` verdicts.
    pub output: Option<Vec<u8>>,
}

pub fn forward(description: &'static str, from: Side, input: Vec<u8>, output: Vec<u8>) -> Fixture {
    let to = match from {
        Side::External => Side::Internal,
        Side::Internal => Side::External,
    };
    Fixture {
        description,
        from,
        input,
        verdict: Verdict::Forward(to),
        output: Some(output),
    }
}

pub fn dropped(
    description: &'static str,
    from: Side,
    input: Vec<u8>,
    reason: DropReason,
) -> Fixture {
    Fixture {
        description,
        from,
        input,
        verdict: Verdict::Drop(reason),
        output: None,
    }
}

/// One record of the `process` fuzz target's input (fuzz/fuzz_targets/process.rs):
/// `[control | side][len u16 BE][frame]`, for seeds written from the fixtures.
pub fn fuzz_record(frame: &[u8], from: Side, control: u8) -> Vec<u8> {
    let side = u8::from(from == Side::Internal);
    let len = u16::try_from(frame.len()).unwrap().to_be_bytes();
    [&[control | side][..], &len, frame].concat()
}

/// Where `write_fuzz_seeds` tests put seeds: `$XVS_FUZZ_SEEDS` or the fuzz crate's seeds.
pub fn fuzz_seed_dir(target: &str) -> std::path::PathBuf {
    let root = std::env::var_os("XVS_FUZZ_SEEDS").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds"),
        std::path::PathBuf::from,
    );
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
