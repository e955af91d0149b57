//! The XDP fast path's user-space side: the maps through which workers hand decided flows to
//! the XDP program, and what they read back.
//!
//! The workers stay the brain (design.md, "Next shape"): a worker schedules a flow, follows
//! its TCP states and timeouts and owns its connection-table entry, which stays the truth. Once
//! an entry is in a state the XDP program may repeat (TCP ESTABLISHED, UDP after its first
//! packet; or after more packets in that state: [`DEFAULT_INSTALL_AFTER`]), the worker
//! installs one [`FlowKey`] -> [`FlowValue`] per direction in its family's flow map (requests
//! only for direct routing and tunnels, whose replies bypass the director; none for tunnels
//! with a checksum);
//! the program then rewrites and redirects those packets itself (bpf/xvs_xdp.c), except SYN,
//! FIN and RST segments and anything unusual, which still reach the worker. The worker removes
//! both entries when the connection leaves that state or its entry goes (expiry, eviction,
//! replacement) or its real server leaves the configuration; the flow then continues on the
//! AF_XDP path as before.
//!
//! - Families: everything here is generic over [`FastFamily`] (IPv4, IPv6), as the connection
//!   tables are; each family has its own flow map (`xvs_flows`, `xvs_flows6`, sized from
//!   `--conn-max` and `--conn-max6`) and next-hop map (`xvs_next_hops`, `xvs_next_hops6`), so
//!   that IPv4 keys stay 16 bytes. The program carries IPv6 packets whose TCP/UDP header
//!   follows the fixed header directly (any extension header: the workers), rewritten as
//!   `process6` does (NAT66, FullNAT, direct routing; the hop limit decremented); one longer
//!   than its egress's MTU goes to the workers, which answer it with Packet Too Big. The
//!   program encapsulates IPv4 only: IPv6 tunnelled flows stay on the workers.
//! - Expiry: the program stamps `last_seen_ns` (CLOCK_MONOTONIC) on every packet it forwards.
//!   The connection table never expires an installed entry by itself; the worker reads the
//!   stamps when the entry's own timeout has passed ([`FlowWriter::last_seen_ms`]) and keeps or
//!   removes it by IPVS's timeouts.
//! - Counters: the program counts per service and per real server, per CPU, both families in
//!   the same maps (`xvs_service_traffic`, `xvs_real_traffic`: the ids are shared);
//!   [`FastPathMaps::service_traffic`] and [`FastPathMaps::real_traffic`] sum them for the
//!   control thread, which adds them to the workers' counters.
//! - Next hops: the value names the next hop's address, not its MAC; the next-hop maps hold
//!   the MACs, kept in step with the kernel's neighbour table by the neighbour thread
//!   ([`NextHopSync`]), so a changed MAC is one map update and a next hop that loses its MAC
//!   sends its flows back to the workers (which resolve it).
//! - Map writes are queued by each worker and flushed once per iteration in batched system
//!   calls ([`FlowWriter::flush`]): none per packet.
//! - A full flow map refuses an install: the flow stays on the AF_XDP path for good.

mod maps;

pub use maps::{possible_cpus, BpfMap};

use crate::conntrack::{Address, Conn, Direction, TcpState};
use crate::encap;
use crate::neigh::NeighbourTable;
use crate::snapshot::{Encap, Interface, Method, Snapshot, PROTO_TCP, PROTO_UDP};
use crate::stats::{TrafficTotals, MAX_REALS, MAX_SERVICES};
use libbpf_sys as bpf;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// An address family the fast path carries, and how its maps hold it: implemented for
/// [`Ipv4Addr`] and [`Ipv6Addr`] ([`Address`] is sealed). Keys and values have one layout per
/// family, `struct flow_key`/`flow_key6` and `struct flow_value`/`flow_value6` of
/// bpf/xvs_xdp.c.
pub trait FastFamily: Address {
    /// The address as the maps hold it: its bytes in network order.
    type Octets: Copy + Default + Eq + Hash + Debug + Send + Sync + 'static;
    /// Padding that puts [`FlowValue::last_seen_ns`] on 8 bytes (explicit, so that no byte
    /// handed to the kernel is uninitialised).
    type Pad: Copy + Default + Eq + Debug + Send + Sync + 'static;
    /// Whether the program wraps this family's tunnelled packets (IPv4's only).
    const CARRIES_TUNNELS: bool;

    fn octets(self) -> Self::Octets;

    fn from_octets(octets: Self::Octets) -> Self;

    /// The outer source of this family's tunnelled packets leaving by `egress`.
    fn tunnel_source(egress: &Interface) -> Self;

    /// The next hop towards `dst` out of `ifindex`, if a route covers it.
    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, dst: Self) -> Option<Self>;

    /// Every usable neighbour of this family: (ifindex, address, MAC).
    fn neighbours(table: &NeighbourTable) -> impl Iterator<Item = (u32, Self, [u8; 6])> + '_;

    /// This family's flow map.
    fn flows(maps: &FastPathMaps) -> &BpfMap;

    /// This family's next-hop map.
    fn next_hops(maps: &FastPathMaps) -> &BpfMap;

    /// This family's queue of a worker's writer.
    fn writes(writer: &mut FlowWriter) -> &mut Writes<Self>;
}

impl FastFamily for Ipv4Addr {
    type Octets = [u8; 4];
    type Pad = [u8; 0];
    const CARRIES_TUNNELS: bool = true;

    fn octets(self) -> [u8; 4] {
        Ipv4Addr::octets(&self)
    }

    fn from_octets(octets: [u8; 4]) -> Self {
        octets.into()
    }

    fn tunnel_source(egress: &Interface) -> Self {
        egress.addr
    }

    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, dst: Self) -> Option<Self> {
        neighbours.next_hop(ifindex, dst).ok()
    }

    fn neighbours(table: &NeighbourTable) -> impl Iterator<Item = (u32, Self, [u8; 6])> + '_ {
        table.iter()
    }

    fn flows(maps: &FastPathMaps) -> &BpfMap {
        &maps.flows
    }

    fn next_hops(maps: &FastPathMaps) -> &BpfMap {
        &maps.next_hops
    }

    fn writes(writer: &mut FlowWriter) -> &mut Writes<Self> {
        &mut writer.v4
    }
}

impl FastFamily for Ipv6Addr {
    type Octets = [u8; 16];
    type Pad = [u8; 4];
    const CARRIES_TUNNELS: bool = false;

    fn octets(self) -> [u8; 16] {
        Ipv6Addr::octets(&self)
    }

    fn from_octets(octets: [u8; 16]) -> Self {
        octets.into()
    }

    /// Never read: IPv6 tunnels are not carried.
    fn tunnel_source(egress: &Interface) -> Self {
        egress.addr6.unwrap_or(Ipv6Addr::UNSPECIFIED)
    }

    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, dst: Self) -> Option<Self> {
        neighbours.next_hop_v6(ifindex, dst).ok()
    }

    fn neighbours(table: &NeighbourTable) -> impl Iterator<Item = (u32, Self, [u8; 6])> + '_ {
        table.iter_v6()
    }

    fn flows(maps: &FastPathMaps) -> &BpfMap {
        &maps.flows6
    }

    fn next_hops(maps: &FastPathMaps) -> &BpfMap {
        &maps.next_hops6
    }

    fn writes(writer: &mut FlowWriter) -> &mut Writes<Self> {
        &mut writer.v6
    }
}

/// `struct flow_key` (IPv4) or `struct flow_key6` (IPv6) of bpf/xvs_xdp.c: the packet's tuple
/// as it arrives, in network byte order, and the side it arrives on (0 external: requests;
/// 1 internal: replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey<A: FastFamily = Ipv4Addr> {
    src: A::Octets,
    dst: A::Octets,
    src_port: [u8; 2],
    dst_port: [u8; 2],
    proto: u8,
    side: u8,
    pad: u16,
}

impl<A: FastFamily> Default for FlowKey<A> {
    fn default() -> Self {
        FlowKey {
            src: A::Octets::default(),
            dst: A::Octets::default(),
            src_port: [0; 2],
            dst_port: [0; 2],
            proto: 0,
            side: 0,
            pad: 0,
        }
    }
}

const SIDE_EXTERNAL: u8 = 0;
const SIDE_INTERNAL: u8 = 1;
const REWRITE_SOURCE: u8 = 0;
const REWRITE_DESTINATION: u8 = 1;
/// Direct routing: the packet is left as it is, only its MACs change.
const REWRITE_NONE: u8 = 2;
/// Tunnels without checksums: the packet is wrapped (`crate::encap`).
const REWRITE_IPIP: u8 = 3;
const REWRITE_GUE: u8 = 4;
const REWRITE_GRE: u8 = 5;
/// FullNAT: both endpoints (the destination from `addr`/`port`, the source from
/// `src_addr`/`src_port`).
const REWRITE_FULLNAT: u8 = 6;

/// The directions of `conn` the program carries: both for NAT and FullNAT, requests only for
/// direct routing and tunnels (their replies never reach the director, and a packet from
/// RIP:rport is no reply of theirs: the workers drop it); none for tunnels with a checksum
/// (the program does not sum whole packets), nor for tunnels of a family whose packets the
/// program does not wrap ([`FastFamily::CARRIES_TUNNELS`]).
fn directions<A: FastFamily>(conn: &Conn<A>) -> &'static [Direction] {
    match conn.method {
        Method::Masq | Method::FullNat => &[Direction::Inbound, Direction::Outbound],
        Method::Route => &[Direction::Inbound],
        Method::Tunnel(t) if t.checksum || !A::CARRIES_TUNNELS => &[],
        Method::Tunnel(_) => &[Direction::Inbound],
    }
}

impl<A: FastFamily> FlowKey<A> {
    /// The key of `conn`'s packets travelling in `direction`.
    pub fn of(conn: &Conn<A>, direction: Direction) -> Self {
        let k = match direction {
            Direction::Inbound => conn.inbound_key(),
            Direction::Outbound => conn.reply_key(),
        };
        FlowKey {
            src: k.src.octets(),
            dst: k.dst.octets(),
            src_port: k.src_port.to_be_bytes(),
            dst_port: k.dst_port.to_be_bytes(),
            proto: k.proto,
            side: match direction {
                Direction::Inbound => SIDE_EXTERNAL,
                Direction::Outbound => SIDE_INTERNAL,
            },
            pad: 0,
        }
    }

    /// The connection an entry (this key, its `value`) belongs to, as a listing names it:
    /// [`ConnId`]. Requests' keys name the client, their values the real server; replies'
    /// keys name both, but for FullNAT, whose replies' values name the client.
    pub fn connection(&self, value: &FlowValue<A>) -> ConnId<A> {
        let port = u16::from_be_bytes;
        let addr = A::from_octets;
        if self.side == SIDE_EXTERNAL {
            (
                self.proto,
                addr(self.src),
                port(self.src_port),
                addr(value.addr),
                port(value.port),
            )
        } else {
            let client = match value.rewrite {
                REWRITE_FULLNAT => (value.addr, value.port),
                _ => (self.dst, self.dst_port),
            };
            (
                self.proto,
                addr(client.0),
                port(client.1),
                addr(self.src),
                port(self.src_port),
            )
        }
    }
}

/// A connection as listings name it: (proto, CIP, cport, RIP, rport).
pub type ConnId<A = Ipv4Addr> = (u8, A, u16, A, u16);

/// `struct flow_value` (IPv4) or `struct flow_value6` (IPv6) of bpf/xvs_xdp.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct FlowValue<A: FastFamily = Ipv4Addr> {
    addr: A::Octets,
    port: [u8; 2],
    rewrite: u8,
    pad0: u8,
    egress_ifindex: u32,
    next_hop: A::Octets,
    service: u32,
    real: u32,
    src_mac: [u8; 6],
    /// The egress MTU (0: unknown): tunnels (IPv4) and every IPv6 packet.
    mtu: u16,
    /// Tunnels: the outer source address, GUE's UDP source port; FullNAT: the new source
    /// address and port (network byte order).
    src_addr: A::Octets,
    src_port: [u8; 2],
    pad2: u16,
    pad3: A::Pad,
    /// Written by the program: CLOCK_MONOTONIC (coarse) nanoseconds of its last packet.
    pub last_seen_ns: u64,
}

impl<A: FastFamily> Default for FlowValue<A> {
    fn default() -> Self {
        FlowValue {
            addr: A::Octets::default(),
            port: [0; 2],
            rewrite: 0,
            pad0: 0,
            egress_ifindex: 0,
            next_hop: A::Octets::default(),
            service: 0,
            real: 0,
            src_mac: [0; 6],
            mtu: 0,
            src_addr: A::Octets::default(),
            src_port: [0; 2],
            pad2: 0,
            pad3: A::Pad::default(),
            last_seen_ns: 0,
        }
    }
}

// The layouts bpf/xvs_xdp.c declares, without implicit padding.
const _: () = {
    use std::mem::size_of;
    assert!(size_of::<FlowKey<Ipv4Addr>>() == 16);
    assert!(size_of::<FlowKey<Ipv6Addr>>() == 40);
    assert!(size_of::<FlowValue<Ipv4Addr>>() == 48);
    assert!(size_of::<FlowValue<Ipv6Addr>>() == 88);
    assert!(size_of::<NextHopKey<Ipv4Addr>>() == 8);
    assert!(size_of::<NextHopKey<Ipv6Addr>>() == 20);
};

impl<A: FastFamily> FlowValue<A> {
    /// What the program writes into `conn`'s packets travelling in `direction`, as
    /// `process::forward` would, leaving by `egress` towards `next_hop`.
    pub fn of(conn: &Conn<A>, direction: Direction, egress: &Interface, next_hop: A) -> Self {
        // The tunnels' outer source (and GUE's source port), unless FullNAT names its own.
        let tunnel_src = (A::tunnel_source(egress), encap::gue_source_port(conn));
        let (rewrite, (addr, port), (src_addr, src_port)) = match (conn.method, direction) {
            (Method::Route, _) => (REWRITE_NONE, (conn.daddr, conn.dport), tunnel_src),
            (Method::Tunnel(t), _) => (
                match t.encap {
                    Encap::Ipip => REWRITE_IPIP,
                    Encap::Gue => REWRITE_GUE,
                    Encap::Gre => REWRITE_GRE,
                },
                (conn.daddr, t.port),
                tunnel_src,
            ),
            (Method::Masq, Direction::Inbound) => {
                (REWRITE_DESTINATION, (conn.daddr, conn.dport), tunnel_src)
            }
            (Method::Masq, Direction::Outbound) => {
                (REWRITE_SOURCE, (conn.vaddr, conn.vport), tunnel_src)
            }
            (Method::FullNat, Direction::Inbound) => (
                REWRITE_FULLNAT,
                (conn.daddr, conn.dport),
                (conn.laddr, conn.lport),
            ),
            (Method::FullNat, Direction::Outbound) => (
                REWRITE_FULLNAT,
                (conn.caddr, conn.cport),
                (conn.vaddr, conn.vport),
            ),
        };
        FlowValue {
            addr: addr.octets(),
            port: port.to_be_bytes(),
            rewrite,
            egress_ifindex: egress.ifindex,
            next_hop: next_hop.octets(),
            service: conn.service,
            real: conn.real,
            src_mac: egress.mac,
            mtu: egress.mtu,
            src_addr: src_addr.octets(),
            src_port: src_port.to_be_bytes(),
            ..FlowValue::default()
        }
    }
}

/// `struct next_hop_key` (IPv4) or `struct next_hop_key6` (IPv6) of bpf/xvs_xdp.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct NextHopKey<A: FastFamily = Ipv4Addr> {
    ifindex: u32,
    addr: A::Octets,
}

impl<A: FastFamily> NextHopKey<A> {
    fn new(ifindex: u32, addr: A) -> Self {
        NextHopKey {
            ifindex,
            addr: addr.octets(),
        }
    }
}

/// `struct traffic` of bpf/xvs_xdp.c: one CPU's count for one service or real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct TrafficCounters {
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Connection entries each worker's table could hold at most, summed: a flow map gets two
/// keys per connection (one per direction).
fn flow_entries(conn_max: usize) -> u32 {
    (conn_max.saturating_mul(2)).clamp(2, u32::MAX as usize) as u32
}

/// Next hops (neighbours with a MAC) the fast path can know at once, per family; beyond it,
/// flows towards the others stay on the AF_XDP path.
pub const NEXT_HOPS_MAX: u32 = 65536;

/// The fast path's maps, shared by both XDP program instances and every worker.
#[derive(Debug)]
pub struct FastPathMaps {
    flows: BpfMap,
    flows6: BpfMap,
    next_hops: BpfMap,
    next_hops6: BpfMap,
    egress: BpfMap,
    service_traffic: BpfMap,
    real_traffic: BpfMap,
}

/// A family's flow map for `conn_max` connections.
fn flow_map<A: FastFamily>(name: &std::ffi::CStr, conn_max: usize) -> io::Result<BpfMap> {
    BpfMap::create::<FlowKey<A>, FlowValue<A>>(
        bpf::BPF_MAP_TYPE_HASH,
        name,
        flow_entries(conn_max),
        bpf::BPF_F_NO_PREALLOC,
    )
}

/// A family's next-hop map: the MAC in the first 6 bytes of a `u64`.
fn next_hop_map<A: FastFamily>(name: &std::ffi::CStr) -> io::Result<BpfMap> {
    BpfMap::create::<NextHopKey<A>, u64>(bpf::BPF_MAP_TYPE_HASH, name, NEXT_HOPS_MAX, 0)
}

impl FastPathMaps {
    /// Creates the maps for a director of at most `conn_max` IPv4 and `conn_max6` IPv6
    /// connections.
    pub fn create(conn_max: usize, conn_max6: usize) -> io::Result<Self> {
        Ok(FastPathMaps {
            flows: flow_map::<Ipv4Addr>(c"xvs_flows", conn_max)?,
            flows6: flow_map::<Ipv6Addr>(c"xvs_flows6", conn_max6)?,
            next_hops: next_hop_map::<Ipv4Addr>(c"xvs_next_hops")?,
            next_hops6: next_hop_map::<Ipv6Addr>(c"xvs_next_hops6")?,
            egress: BpfMap::create::<u32, u32>(bpf::BPF_MAP_TYPE_DEVMAP_HASH, c"xvs_egress", 8, 0)?,
            service_traffic: BpfMap::create::<u32, TrafficCounters>(
                bpf::BPF_MAP_TYPE_PERCPU_ARRAY,
                c"xvs_svc_traffic",
                MAX_SERVICES as u32,
                0,
            )?,
            real_traffic: BpfMap::create::<u32, TrafficCounters>(
                bpf::BPF_MAP_TYPE_PERCPU_ARRAY,
                c"xvs_rs_traffic",
                MAX_REALS as u32,
                0,
            )?,
        })
    }

    /// The maps by the names the XDP object declares them under, for libbpf to reuse.
    pub fn by_name(&self) -> [(&'static std::ffi::CStr, std::os::fd::RawFd); 7] {
        [
            (c"xvs_flows", self.flows.fd()),
            (c"xvs_flows6", self.flows6.fd()),
            (c"xvs_next_hops", self.next_hops.fd()),
            (c"xvs_next_hops6", self.next_hops6.fd()),
            (c"xvs_egress", self.egress.fd()),
            (c"xvs_service_traffic", self.service_traffic.fd()),
            (c"xvs_real_traffic", self.real_traffic.fd()),
        ]
    }

    /// The fast path's traffic of service `id`, summed over CPUs (both families).
    pub fn service_traffic(&self, id: u32) -> TrafficTotals {
        sum_traffic(&self.service_traffic, id)
    }

    /// The fast path's traffic of real server `id`, summed over CPUs.
    pub fn real_traffic(&self, id: u32) -> TrafficTotals {
        sum_traffic(&self.real_traffic, id)
    }

    /// When each installed connection of family `A` last had a packet on the fast path: the
    /// later of its two directions, in CLOCK_MONOTONIC nanoseconds. For listings; one pass
    /// over the family's flow map.
    pub fn last_seen<A: FastFamily>(&self) -> io::Result<HashMap<ConnId<A>, u64>> {
        let mut seen: HashMap<ConnId<A>, u64> = HashMap::new();
        for (key, value) in A::flows(self).entries::<FlowKey<A>, FlowValue<A>>()? {
            let t = seen.entry(key.connection(&value)).or_default();
            *t = (*t).max(value.last_seen_ns);
        }
        Ok(seen)
    }
}

impl From<TrafficCounters> for TrafficTotals {
    fn from(c: TrafficCounters) -> Self {
        TrafficTotals {
            conns: 0,
            inpkts: c.inpkts,
            outpkts: c.outpkts,
            inbytes: c.inbytes,
            outbytes: c.outbytes,
        }
    }
}

fn sum_traffic(map: &BpfMap, id: u32) -> TrafficTotals {
    let per_cpu = map
        .lookup_percpu::<u32, TrafficCounters>(&id)
        .unwrap_or_default();
    per_cpu
        .into_iter()
        .fold(TrafficTotals::default(), |mut t, c| {
            t += c.into();
            t
        })
}

/// CLOCK_MONOTONIC now, in nanoseconds: the program's clock (its coarse variant differs by at
/// most a tick).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: ts is a valid timespec to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the workers may put on the fast path.
#[derive(Debug)]
pub struct FastPath {
    pub maps: FastPathMaps,
    /// Whether frames may be redirected out of the external interface (replies).
    external_ok: AtomicBool,
    /// Whether frames may be redirected out of the internal interface (requests).
    internal_ok: AtomicBool,
    external: u32,
    internal: u32,
    /// Packets a worker forwards of a connection the program may carry before installing it.
    install_after: u8,
}

/// Default of [`FastPath::new`]'s `install_after` (`xvsd --fast-path-after`): a connection
/// is installed as soon as its worker forwards a packet in a state the program may carry (the
/// handshake's last ACK, a UDP flow's first datagram). The frames of a flow already queued for
/// its worker when the install lands may be overtaken by the newer ones the program forwards;
/// installing at the handshake, before a server has anything to send, keeps that from
/// reordering a response in mid-stream (waiting for 4 packets did: tests/tests/seed.rs saw
/// it). docs/benchmarks.md measured 1 against 4: no difference in throughput.
pub const DEFAULT_INSTALL_AFTER: u8 = 1;

impl FastPath {
    /// The fast path between interfaces `external` and `internal` (ifindexes), neither of
    /// them open to redirected frames yet ([`FastPath::set_egress`]); connections are installed
    /// after `install_after` (at least 1) packets.
    pub fn new(maps: FastPathMaps, external: u32, internal: u32, install_after: u8) -> Self {
        FastPath {
            maps,
            external_ok: AtomicBool::new(false),
            internal_ok: AtomicBool::new(false),
            external,
            internal,
            install_after: install_after.max(1),
        }
    }

    /// The (external, internal) interfaces' indexes.
    pub fn interfaces(&self) -> (u32, u32) {
        (self.external, self.internal)
    }

    fn egress_ok(&self, direction: Direction) -> bool {
        match direction {
            Direction::Inbound => self.internal_ok.load(Ordering::Relaxed),
            Direction::Outbound => self.external_ok.load(Ordering::Relaxed),
        }
    }

    /// Opens or closes an interface (`external` or the internal one) to redirected frames:
    /// when closed, the program sends the flows leaving by it to the workers and workers stop
    /// installing them.
    pub fn set_egress(&self, external: bool, ok: bool) -> io::Result<()> {
        let (flag, ifindex) = if external {
            (&self.external_ok, self.external)
        } else {
            (&self.internal_ok, self.internal)
        };
        if ok {
            self.maps.egress.update(&ifindex, &ifindex)?;
        } else {
            self.maps.egress.delete(&ifindex)?;
        }
        flag.store(ok, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether the program may carry `conn`'s packets: TCP once ESTABLISHED (a segment without
/// SYN, FIN or RST changes nothing then), UDP always (only its timeout is refreshed); not
/// tunnelled ones with a checksum, nor IPv6 tunnelled ones.
pub fn may_carry<A: FastFamily>(conn: &Conn<A>) -> bool {
    if directions(conn).is_empty() {
        return false;
    }
    match conn.proto {
        PROTO_TCP => conn.state == TcpState::Established,
        PROTO_UDP => true,
        _ => false,
    }
}

/// Whether `conn`'s real server is still one of its service's in `config`: the flows of a
/// removed real server leave the fast path (they continue on the AF_XDP path until they end).
pub fn real_configured<A: Address>(conn: &Conn<A>, config: &Snapshot) -> bool {
    let vip = crate::snapshot::Vip {
        proto: conn.proto,
        addr: conn.vaddr.into(),
        port: conn.vport,
    };
    config
        .service(&vip)
        .is_some_and(|s| s.id == conn.service && s.reals.iter().any(|r| r.id == conn.real))
}

/// A queued change of a flow map.
#[derive(Debug, Clone, Copy)]
enum Op<A: FastFamily> {
    Install(FlowKey<A>, FlowValue<A>),
    Remove(FlowKey<A>),
}

/// A worker's queued changes of one family's flow map ([`FlowWriter`]), and the buffers its
/// batched system calls take.
pub struct Writes<A: FastFamily> {
    ops: Vec<Op<A>>,
    keys: Vec<FlowKey<A>>,
    values: Vec<FlowValue<A>>,
}

/// Queue room reserved per worker and family; more grows the queue (never loses a removal).
const QUEUE_RESERVE: usize = 4096;

impl<A: FastFamily> Writes<A> {
    fn new() -> Self {
        Writes {
            ops: Vec::with_capacity(QUEUE_RESERVE),
            keys: Vec::with_capacity(QUEUE_RESERVE),
            values: Vec::with_capacity(QUEUE_RESERVE),
        }
    }

    /// Applies the queued changes to `flows` in order, each run of installs or removals in
    /// one system call. Returns how many installs the map refused.
    fn flush(&mut self, flows: &BpfMap) -> u64 {
        let mut refused = 0;
        let mut i = 0;
        while i < self.ops.len() {
            self.keys.clear();
            self.values.clear();
            let installing = matches!(self.ops[i], Op::Install(..));
            while i < self.ops.len() {
                match (self.ops[i], installing) {
                    (Op::Install(k, v), true) => {
                        self.keys.push(k);
                        self.values.push(v);
                    }
                    (Op::Remove(k), false) => self.keys.push(k),
                    _ => break,
                }
                i += 1;
            }
            if installing {
                refused += flows.update_many(&self.keys, &self.values).len() as u64;
            } else {
                // Only a kernel without batch deletes fails here: delete one by one.
                if flows.delete_many(&self.keys).is_err() {
                    for key in &self.keys {
                        let _ = flows.delete(key);
                    }
                }
            }
        }
        self.ops.clear();
        refused
    }
}

/// One worker's writer: queues installs and removals as packets are processed and applies
/// them, in order, in batched system calls once per iteration.
pub struct FlowWriter {
    fast: Arc<FastPath>,
    v4: Writes<Ipv4Addr>,
    v6: Writes<Ipv6Addr>,
}

impl FlowWriter {
    pub fn new(fast: Arc<FastPath>) -> Self {
        FlowWriter {
            fast,
            v4: Writes::new(),
            v6: Writes::new(),
        }
    }

    /// Packets to forward of a connection the program may carry before installing it.
    pub fn install_after(&self) -> u8 {
        self.fast.install_after
    }

    /// Queues the install of `conn`'s directions whose egress can take redirected frames and
    /// whose next hop `neighbours` knows. Returns whether anything was queued.
    pub fn install<A: FastFamily>(
        &mut self,
        conn: &Conn<A>,
        config: &Snapshot,
        neighbours: &NeighbourTable,
    ) -> bool {
        let mut queued = false;
        for &direction in directions(conn) {
            if !self.fast.egress_ok(direction) {
                continue;
            }
            let (egress, dst) = match direction {
                Direction::Inbound => (&config.internal, conn.daddr),
                Direction::Outbound => (&config.external, conn.caddr),
            };
            let Some(next_hop) = A::next_hop(neighbours, egress.ifindex, dst) else {
                continue;
            };
            // Direct routing goes to the real server's own MAC, never through a gateway
            // (process/xmit/dr.rs drops such frames).
            if conn.method == Method::Route && next_hop != dst {
                continue;
            }
            let key = FlowKey::of(conn, direction);
            let value = FlowValue::of(conn, direction, egress, next_hop);
            A::writes(self).ops.push(Op::Install(key, value));
            queued = true;
        }
        queued
    }

    /// Queues the removal of `conn`'s directions.
    pub fn remove<A: FastFamily>(&mut self, conn: &Conn<A>) {
        for &direction in directions(conn) {
            A::writes(self)
                .ops
                .push(Op::Remove(FlowKey::of(conn, direction)));
        }
    }

    /// Applies the queued changes of both families in order, each run of installs or removals
    /// in one system call. Returns how many installs the maps refused (full, or another error
    /// of the kernel's): those flows stay on the AF_XDP path.
    pub fn flush(&mut self) -> u64 {
        let maps = &self.fast.maps;
        self.v4.flush(&maps.flows) + self.v6.flush(&maps.flows6)
    }

    /// When `conn` last had a packet on the fast path, in milliseconds of the worker's clock
    /// (`now_ms` being now); `None` if none since it was installed (or the map refused it).
    pub fn last_seen_ms<A: FastFamily>(&self, conn: &Conn<A>, now_ms: u64) -> Option<u64> {
        let flows = A::flows(&self.fast.maps);
        let mut latest = 0;
        for &direction in directions(conn) {
            let key = FlowKey::of(conn, direction);
            if let Ok(Some(v)) = flows.lookup::<FlowKey<A>, FlowValue<A>>(&key) {
                latest = latest.max(v.last_seen_ns);
            }
        }
        if latest == 0 {
            return None;
        }
        let ago_ms = monotonic_ns().saturating_sub(latest) / 1_000_000;
        Some(now_ms.saturating_sub(ago_ms))
    }
}

/// Keeps the next-hop maps equal to the usable neighbours of a [`NeighbourTable`], both
/// families: run by the neighbour thread each time it publishes a table.
pub struct NextHopSync {
    fast: Arc<FastPath>,
    synced: HashMap<(u32, Ipv4Addr), [u8; 6]>,
    synced6: HashMap<(u32, Ipv6Addr), [u8; 6]>,
}

impl NextHopSync {
    pub fn new(fast: Arc<FastPath>) -> Self {
        NextHopSync {
            fast,
            synced: HashMap::new(),
            synced6: HashMap::new(),
        }
    }

    /// Writes the entries that changed since the last call and deletes those that went.
    pub fn sync(&mut self, table: &NeighbourTable) -> io::Result<()> {
        let maps = &self.fast.maps;
        sync_next_hops(&maps.next_hops, &mut self.synced, table)?;
        sync_next_hops(&maps.next_hops6, &mut self.synced6, table)
    }
}

/// [`NextHopSync::sync`] of family `A`'s map, `synced` being what it holds.
fn sync_next_hops<A: FastFamily>(
    map: &BpfMap,
    synced: &mut HashMap<(u32, A), [u8; 6]>,
    table: &NeighbourTable,
) -> io::Result<()> {
    let now: HashMap<(u32, A), [u8; 6]> = A::neighbours(table)
        .map(|(ifindex, addr, mac)| ((ifindex, addr), mac))
        .collect();
    for (&(ifindex, addr), mac) in &now {
        if synced.get(&(ifindex, addr)) != Some(mac) {
            let mut value = [0u8; 8];
            value[..6].copy_from_slice(mac);
            map.update(&NextHopKey::new(ifindex, addr), &u64::from_ne_bytes(value))?;
        }
    }
    for &(ifindex, addr) in synced.keys() {
        if !now.contains_key(&(ifindex, addr)) {
            map.delete(&NextHopKey::new(ifindex, addr))?;
        }
    }
    *synced = now;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConnEntry;
    use crate::family::testing::{for_both_families, TestAddr};
    use crate::snapshot::Tunnel;

    fn conn<A: TestAddr>(method: Method) -> Conn<A> {
        Conn {
            proto: PROTO_TCP,
            caddr: A::test_addr(18, 201),
            cport: 40000,
            vaddr: A::test_addr(18, 129),
            vport: 80,
            daddr: A::test_addr(19, 148),
            dport: 8080,
            service: 0,
            real: 1,
            method,
            laddr: A::test_addr(18, 201),
            lport: 40000,
            state: TcpState::Established,
            expires_ms: 0,
        }
    }

    fn both_entries_of_a_connection_name_it_as_its_listing_does<A: TestAddr + FastFamily>() {
        let fullnat = Conn {
            laddr: A::test_addr(19, 160),
            lport: 1024,
            ..conn::<A>(Method::FullNat)
        };
        for conn in [conn::<A>(Method::Masq), fullnat] {
            let egress = Interface::default();
            let listed = ConnEntry::new(&conn, 0);
            let want = (
                listed.proto,
                listed.client,
                listed.client_port,
                listed.real,
                listed.rport,
            );
            for direction in [Direction::Inbound, Direction::Outbound] {
                let key = FlowKey::of(&conn, direction);
                let value = FlowValue::of(&conn, direction, &egress, conn.caddr);
                assert_eq!(key.connection(&value), want, "{direction:?}");
            }
            // Another VIP from the same client endpoint is another connection.
            let other = Conn {
                vport: 443,
                dport: 443,
                ..conn
            };
            let key = FlowKey::of(&other, Direction::Inbound);
            let value = FlowValue::of(&other, Direction::Inbound, &egress, other.caddr);
            assert_ne!(key.connection(&value), want);
        }
    }

    /// Tunnels are carried for IPv4 only, and never with a checksum.
    fn tunnels_are_carried_where_the_program_wraps_them<A: TestAddr + FastFamily>() {
        let tunnel = |checksum| {
            Method::Tunnel(Tunnel {
                encap: Encap::Ipip,
                port: 0,
                checksum,
            })
        };
        assert_eq!(may_carry(&conn::<A>(tunnel(false))), A::CARRIES_TUNNELS);
        assert!(!may_carry(&conn::<A>(tunnel(true))));
        for method in [Method::Masq, Method::Route, Method::FullNat] {
            assert!(may_carry(&conn::<A>(method)), "{method:?}");
        }
    }

    for_both_families!(
        both_entries_of_a_connection_name_it_as_its_listing_does,
        tunnels_are_carried_where_the_program_wraps_them,
    );
}
