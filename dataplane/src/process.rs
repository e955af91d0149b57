//! The heart of the director: one frame in, one verdict out.
//!
//! [`process`] is a pure function of (frame, configuration snapshot, neighbour table,
//! connection table, clock): no socket, no syscall, no allocation, no lock. Tests, fuzzers and
//! benchmarks call it directly. Workers split it so that a frame is parsed once and a batch's
//! table lookups overlap: [`Packet::parse`] (whose client endpoint decides the owner worker),
//! then for a batch of packets [`Packet::prefetch`] and [`Packet::prefetch_entry`], then
//! [`process_packet`] on each; [`process_batch`] is that sequence over a slice of frames. Both
//! paths give the same verdicts and bytes (a property test checks it).
//!
//! What it does, as LVS-NAT:
//! - From the external side, CIP:cport -> VIP:vport: find the connection (or schedule a real
//!   server for a new one: a UDP datagram or a TCP SYN), rewrite the destination to RIP:rport,
//!   decrement the TTL, address the frame to the real server's MAC from the internal interface.
//! - From the internal side, RIP:rport -> CIP:cport: find the connection, rewrite the source to
//!   VIP:vport, decrement the TTL, address the frame to the client's next hop from the external
//!   interface.
//! - The other methods differ in what the transmitter of the connection's method does
//!   (`process/xmit`): direct routing and tunnels forward requests only; FullNAT also
//!   rewrites the client's endpoint to a local address and port of the director, where the
//!   real server's replies come back.
//! - ICMP errors (destination unreachable, "fragmentation needed" included, time exceeded,
//!   parameter problem) about a connection in the table, from either side: translated as
//!   IPVS's `ip_vs_nat_icmp` does and forwarded to the other side, so path MTU discovery works
//!   through the director (`process/icmp.rs` states the rules). They never create or touch a connection.
//!
//! What it refuses (each counted by reason, never a panic): anything that is not a well-formed
//! IPv4 TCP/UDP packet or ICMP error about one, bad IPv4 header checksums, fragments, IP
//! options, TTL <= 1, packets with no service or connection, and frames whose next hop is not
//! resolved yet (the verdict then asks for resolution).
//!
//! IPv6 has its twin, [`process6`] (`process/v6.rs`), over a connection table of its own: the
//! new-flow admission, the state and counter updates and the transmitters are the same generic
//! code for both families; what differs per family (headers, neighbour lookups, the NAT byte
//! rewrites, persistence, tunnels, the MTU) is the `Family` trait's (`process/family.rs`).
//!
//! Fragments, the rule: the director does not reassemble, so every fragment, first or not, of
//! traffic to a VIP address or from a real server address is dropped here and counted as
//! `Fragment`. The XDP program redirects them all to the workers by address alone (a non-first
//! fragment has no ports), so none reaches the kernel, which would otherwise forward a real
//! server's non-first fragment un-translated to the client (leaking the RIP) where
//! `ip_forward` is on. Fragments to the director's own addresses go to its kernel as before.
//!
//! TCP/UDP checksums are not verified: the incremental update keeps a bad one bad, so the end
//! host drops it as it would have without us. A *partial* checksum (left by a sender's
//! checksum offload, as veth and virtio peers deliver them) is completed over the whole
//! segment, since no NIC downstream will.

mod buf;
mod family;
mod icmp;
mod v6;
mod xmit;

pub use buf::FrameBuf;
pub use v6::{client_endpoint6, process6};

use crate::conntrack::{Conn, ConnTable, Direction, FlowKey, TcpState};
use crate::nat;
use crate::neigh::NeighbourTable;
use crate::persist::{Templates, Templates6};
use crate::snapshot::{Method, Service, Snapshot, Vip, PROTO_TCP, PROTO_UDP};
use crate::stats::{DropReason, WorkerStats};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use family::Family;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The side of the director a frame arrived on or leaves by: the clients' or the real
/// servers'. Every method needs the two roles (requests come from clients, replies and errors
/// about requests from the servers' side), whatever the interfaces: on a one-armed director
/// both sides are the one interface, and the worker tells them apart by destination
/// ([`one_armed_side`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The clients' side: requests to the VIPs arrive here, replies leave here.
    External,
    /// The real servers' side: requests leave here (forwarded, tunnelled or translated),
    /// NAT and FullNAT replies arrive here.
    Internal,
}

/// What to do with a frame after [`process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place: transmit it out of this side.
    Forward(Side),
    Drop(DropReason),
    /// Drop it: the next hop `addr` on `ifindex` has no MAC yet; ask for resolution.
    Unresolved {
        ifindex: u32,
        addr: IpAddr,
    },
}

/// Read-only inputs shared by a batch.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub config: &'a Snapshot,
    pub neighbours: &'a NeighbourTable,
    /// Monotonic milliseconds, read once per batch.
    pub now_ms: u64,
    /// Every worker's counters (this one's included), for schedulers that weigh connection
    /// counts; empty where none are known (the counts then read as zero).
    pub workers: &'a [Arc<WorkerStats>],
    /// Persistence templates, shared by all workers.
    pub templates: &'a Templates,
    /// Persistence templates of IPv6 clients, shared by all workers.
    pub templates6: &'a Templates6,
    /// Overload marks of real servers with thresholds (`-x/-y`), by real server id, shared by
    /// all workers; empty where no state is kept (overload then follows the current count).
    pub overload: &'a [AtomicBool],
}

const ETHERNET_HEADER_LEN: usize = 14;

/// The fields of a frame of family `A` that passed every check.
#[derive(Debug, Clone, Copy)]
struct Headers<A: Family = Ipv4Addr> {
    proto: u8,
    src: A,
    dst: A,
    src_port: u16,
    dst_port: u16,
    tcp_flags: u8,
    /// The IP packet's length (IPv4 total length; IPv6 40 + payload length): the IPVS byte
    /// count and the extent of the NAT rewrite.
    ip_len: usize,
    /// Where the TCP/UDP header is in the IP packet ([`Family::L4Offset`]).
    l4_offset: A::L4Offset,
    /// The TCP/UDP checksum is partial (sender offload): complete it after the rewrite.
    partial_checksum: bool,
}

impl<A: Family> Headers<A> {
    /// The packet's own 5-tuple, as the connection table indexes it.
    #[inline]
    fn flow_key(&self) -> FlowKey<A> {
        FlowKey {
            proto: self.proto,
            src: self.src,
            src_port: self.src_port,
            dst: self.dst,
            dst_port: self.dst_port,
        }
    }
}

/// A well-formed packet of family `A` [`process`] (or [`process6`]) may handle.
#[derive(Debug, Clone, Copy)]
enum Parsed<A: Family = Ipv4Addr> {
    /// TCP or UDP.
    Flow(Headers<A>),
    /// An ICMP error quoting a TCP or UDP packet.
    IcmpError(icmp::IcmpError<A>),
}

impl<A: Family> Parsed<A> {
    /// See [`Packet::client_endpoint`].
    #[inline]
    fn client_endpoint(&self, from: Side) -> (A, u16) {
        match self {
            Parsed::Flow(h) => match from {
                Side::External => (h.src, h.src_port),
                Side::Internal => (h.dst, h.dst_port),
            },
            Parsed::IcmpError(e) => e.client_endpoint(from),
        }
    }
}

fn parse(frame: &[u8]) -> Result<Parsed, DropReason> {
    let ethernet = EthernetFrame::new_checked(frame).map_err(|_| DropReason::Malformed)?;
    if ethernet.ethertype() != EtherType::Ipv4 {
        return Err(DropReason::NotIpv4);
    }
    let ip = Ipv4Packet::new_checked(ethernet.payload()).map_err(|_| DropReason::Malformed)?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadIpChecksum);
    }
    if ip.is_fragment() {
        return Err(DropReason::Fragment);
    }
    if ip.has_options() {
        return Err(DropReason::IpOptions);
    }
    let (proto, src_port, dst_port, tcp_flags) = match ip.protocol() {
        // A separate branch after dispatch: TCP and UDP pay nothing for it.
        IpProtocol::Icmp => return icmp::parse(&ip).map(Parsed::IcmpError),
        protocol @ (IpProtocol::Tcp | IpProtocol::Udp) => transport(protocol, ip.payload())?,
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    if ip.ttl() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    Ok(Parsed::Flow(Headers {
        proto,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        src_port,
        dst_port,
        tcp_flags,
        ip_len: ip.total_len(),
        l4_offset: (),
        partial_checksum: nat::has_partial_checksum(ip.into_inner()),
    }))
}

/// The protocol number, ports and TCP flags of the TCP/UDP header at the start of `l4` (the IP
/// payload, of `protocol`); anything else is refused.
// Always inlined: called apart, the IPv4 parse cost 30 instructions more a packet (callgrind).
#[inline(always)]
fn transport(protocol: IpProtocol, l4: &[u8]) -> Result<(u8, u16, u16, u8), DropReason> {
    match protocol {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
            Ok((
                PROTO_TCP,
                tcp.src_port(),
                tcp.dst_port(),
                tcp.flags().bits(),
            ))
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(l4).map_err(|_| DropReason::Malformed)?;
            Ok((PROTO_UDP, udp.src_port(), udp.dst_port(), 0))
        }
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

/// A frame parsed once, with the side it arrived on: Katran's `packet_description`. The
/// worker decides ownership from it ([`Packet::client_endpoint`]), a batch prefetches with it
/// ([`Packet::prefetch`], [`Packet::prefetch_entry`]) and [`process_packet`] works on it, so
/// that no frame is parsed twice. It describes the frame's bytes as [`Packet::parse`] read
/// them: process it with those bytes, unchanged.
#[derive(Debug, Clone, Copy)]
pub struct Packet {
    from: Side,
    parsed: Result<Parsed, DropReason>,
    /// The hash of its lookup key in the table that prefetched it (`None`: not hashed yet).
    hash: Option<u64>,
}

impl Packet {
    /// Parses `frame`, arrived on `from`. Never fails: a frame [`process`] refuses parses into
    /// a packet whose verdict is that drop.
    #[inline]
    pub fn parse(frame: &[u8], from: Side) -> Self {
        Packet {
            from,
            parsed: parse(frame),
            hash: None,
        }
    }

    /// The side it arrived on.
    pub fn from(&self) -> Side {
        self.from
    }

    /// The frame is not IPv4 (it may be IPv6, for [`process6`]; [`process_packet`] drops it).
    #[inline]
    pub fn is_not_ipv4(&self) -> bool {
        matches!(self.parsed, Err(DropReason::NotIpv4))
    }

    /// A well-formed TCP or UDP packet (not an ICMP error, not a drop).
    #[inline]
    pub fn is_flow(&self) -> bool {
        matches!(self.parsed, Ok(Parsed::Flow(_)))
    }

    /// The client endpoint (CIP, cport): the source of requests, the destination of replies
    /// (for FullNAT the local address and port, which hash to the same worker), and for an
    /// ICMP error that of the packet it quotes. It decides which worker owns the
    /// frame ([`crate::conntrack::owner_of`]). `None` for frames [`process`] drops anyway.
    #[inline]
    pub fn client_endpoint(&self) -> Option<(Ipv4Addr, u16)> {
        Some(self.parsed.as_ref().ok()?.client_endpoint(self.from))
    }

    /// The tuple [`process_packet`] looks up first and in which index: none for drops and
    /// ICMP errors (rare: they are looked up unbatched).
    #[inline]
    fn lookup_key(&self) -> Option<(FlowKey, Direction)> {
        match &self.parsed {
            Ok(Parsed::Flow(h)) => Some((h.flow_key(), direction_from(self.from))),
            _ => None,
        }
    }

    /// Batch stage 1: hashes its lookup key in `conns` (the table that will process it) and
    /// prefetches the index bucket the lookup will read. A hint: no effect on the verdict.
    #[inline]
    pub fn prefetch(&mut self, conns: &ConnTable) {
        if let Some((key, direction)) = self.lookup_key() {
            let hash = conns.hash(&key, direction);
            conns.prefetch(hash, direction);
            self.hash = Some(hash);
        }
    }

    /// Batch stage 2, after stage 1 of the rest of the batch: prefetches the connection entry
    /// the lookup will most likely compare or, for a request whose bucket holds no candidate
    /// (most likely a new flow; `new_flows` counts them in the batch), what its insert will
    /// touch. A hint: no effect on the verdict.
    #[inline]
    pub fn prefetch_entry(&self, conns: &ConnTable, new_flows: &mut usize) {
        if let (Some(hash), Ok(Parsed::Flow(h))) = (self.hash, &self.parsed) {
            let direction = direction_from(self.from);
            if !conns.prefetch_entry(hash, direction) && direction == Direction::Inbound {
                conns.prefetch_insert(*new_flows, &h.flow_key());
                *new_flows += 1;
            }
        }
    }
}

/// The index a frame arriving on `from` is looked up in.
#[inline]
fn direction_from(from: Side) -> Direction {
    match from {
        Side::External => Direction::Inbound,
        Side::Internal => Direction::Outbound,
    }
}

/// The side a frame arriving on a one-armed director's only interface plays: a request
/// (external) when it is addressed to a VIP address of `config`, else a reply or an error
/// about a forwarded request (internal). Anything too short to say is called external:
/// [`process`] drops it either way.
#[inline]
pub fn one_armed_side(frame: &[u8], config: &Snapshot) -> Side {
    const DST: usize = ETHERNET_HEADER_LEN + 16;
    const DST6: usize = ETHERNET_HEADER_LEN + 24;
    if is_ipv6(frame) {
        return match frame
            .get(DST6..DST6 + 16)
            .and_then(|d| <[u8; 16]>::try_from(d).ok())
        {
            Some(dst) if !config.vip_addrs6.contains(&dst.into()) => Side::Internal,
            _ => Side::External,
        };
    }
    match frame.get(DST..DST + 4) {
        Some(&[a, b, c, d]) if !config.vip_addrs.contains(&Ipv4Addr::new(a, b, c, d)) => {
            Side::Internal
        }
        _ => Side::External,
    }
}

/// Whether `frame` is an Ethernet frame of type IPv6 (for [`process6`], not [`process`]).
#[inline]
pub fn is_ipv6(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&[0x86, 0xdd])
}

/// The client endpoint of `frame` arriving on `from`: [`Packet::client_endpoint`] of a packet
/// parsed for the purpose.
pub fn client_endpoint(frame: &[u8], from: Side) -> Option<(Ipv4Addr, u16)> {
    Packet::parse(frame, from).client_endpoint()
}

/// Processes one frame that arrived on `from`, rewriting it in place when it is forwarded:
/// [`process_packet`] of the frame parsed now.
pub fn process<F: FrameBuf + ?Sized>(
    frame: &mut F,
    from: Side,
    env: &Env<'_>,
    conns: &mut ConnTable,
    stats: &WorkerStats,
) -> Verdict {
    let packet = Packet::parse(frame.bytes(), from);
    process_packet(frame, &packet, env, conns, stats)
}

/// Processes `packet`, parsed from `frame`, rewriting the frame in place when it is
/// forwarded. A packet prefetched ([`Packet::prefetch`]) must be processed with the same table.
#[inline]
pub fn process_packet<F: FrameBuf + ?Sized>(
    frame: &mut F,
    packet: &Packet,
    env: &Env<'_>,
    conns: &mut ConnTable,
    stats: &WorkerStats,
) -> Verdict {
    match &packet.parsed {
        Ok(parsed) => process_parsed(frame, parsed, packet.from, packet.hash, env, conns, stats),
        Err(reason) => Verdict::Drop(*reason),
    }
}

/// [`process_packet`] of a packet of either family that passed its checks (`hash`: its
/// lookup key's, if a batch computed it). Always inlined: called apart, the IPv4 path paid a
/// seven-argument call per packet (callgrind).
#[inline(always)]
fn process_parsed<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    parsed: &Parsed<A>,
    from: Side,
    hash: Option<u64>,
    env: &Env<'_>,
    conns: &mut ConnTable<A>,
    stats: &WorkerStats,
) -> Verdict {
    let headers = match parsed {
        Parsed::Flow(h) => h,
        Parsed::IcmpError(e) => return icmp::process(frame, e, from, env, conns, stats),
    };
    let key = headers.flow_key();
    let hash = hash.unwrap_or_else(|| conns.hash(&key, direction_from(from)));
    match from {
        Side::External => inbound(frame, headers, &key, hash, env, conns, stats),
        Side::Internal => outbound(frame, headers, &key, hash, env, conns, stats),
    }
}

/// Most frames [`process_batch`] stages at once (its packets live on the stack).
pub const MAX_BATCH: usize = 64;

/// Processes `frames`, all arrived on `from`, as a worker does a received batch, in stages of
/// at most [`MAX_BATCH`] frames: parse each, prefetch each one's index bucket, then each one's
/// entry (where the table is large enough for it to pay: [`ConnTable::worth_prefetching`]),
/// then process each in order; `verdict(i, v)` receives frame `i`'s verdict. Gives the same
/// verdicts and bytes as [`process`] on each frame in turn.
pub fn process_batch<F: FrameBuf>(
    frames: &mut [F],
    from: Side,
    env: &Env<'_>,
    conns: &mut ConnTable,
    stats: &WorkerStats,
    mut verdict: impl FnMut(usize, Verdict),
) {
    let mut packets = [Packet {
        from,
        parsed: Err(DropReason::Malformed),
        hash: None,
    }; MAX_BATCH];
    for (c, chunk) in frames.chunks_mut(MAX_BATCH).enumerate() {
        let packets = &mut packets[..chunk.len()];
        for (packet, frame) in packets.iter_mut().zip(chunk.iter_mut()) {
            *packet = Packet::parse(frame.bytes(), from);
        }
        if conns.worth_prefetching() {
            for packet in packets.iter_mut() {
                packet.prefetch(conns);
            }
            let mut new_flows = 0;
            for packet in packets.iter() {
                packet.prefetch_entry(conns, &mut new_flows);
            }
        }
        for (i, (packet, frame)) in packets.iter().zip(chunk.iter_mut()).enumerate() {
            let v = process_packet(frame, packet, env, conns, stats);
            verdict(c * MAX_BATCH + i, v);
        }
    }
}

/// A TCP segment that may open a connection: SYN without ACK or RST.
fn opens_connection<A: Family>(h: &Headers<A>) -> bool {
    h.proto != PROTO_TCP || h.tcp_flags & (0x02 | 0x10 | 0x04) == 0x02
}

/// `--sloppy-tcp`: a TCP segment of a flow with no entry here, other than a RST (as IPVS's
/// tcp_conn_schedule), opens one when the service's scheduler sends it where any director
/// would (Maglev, source hashing): the mid-flow takeover of scale-out behind ECMP. (UDP
/// needs nothing: any datagram opens a connection.)
#[cold]
fn takes_over<A: Family>(h: &Headers<A>, config: &Snapshot, service: &Service) -> bool {
    config.sloppy_tcp && h.tcp_flags & 0x04 == 0 && service.scheduler.is_consistent()
}

fn inbound<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    h: &Headers<A>,
    key: &FlowKey<A>,
    hash: u64,
    env: &Env<'_>,
    conns: &mut ConnTable<A>,
    stats: &WorkerStats,
) -> Verdict {
    let config = env.config;
    let conn = match conns.lookup_hashed(key, hash, Direction::Inbound, env.now_ms, stats) {
        Some(conn) => conn,
        None => {
            let vip = Vip {
                proto: h.proto,
                addr: h.dst.into(),
                port: h.dst_port,
            };
            let Some(service) = config.service(&vip) else {
                return Verdict::Drop(DropReason::NoService);
            };
            let sloppy = !opens_connection(h);
            if sloppy && !takes_over(h, config, service) {
                return Verdict::Drop(DropReason::NoConnection);
            }
            if A::local_addrs(config).contains(&h.src) {
                return Verdict::Drop(DropReason::LocalSource);
            }
            // Checked before scheduling so a refused flow does not take a server's turn.
            if let Some(limit) = service.max_conns_per_worker(env.workers.len()) {
                if conns.service_len(service.id) >= limit
                    && !conns.evict_half_open_of(service.id, stats)
                {
                    return Verdict::Drop(DropReason::ServiceLimit);
                }
            }
            if !conns.make_room(stats) {
                return Verdict::Drop(DropReason::TableFull);
            }
            let real = match A::choose_real(service, h, env) {
                Ok(real) => real,
                Err(reason) => return Verdict::Drop(reason),
            };
            let Some(daddr) = A::from_ip(real.addr) else {
                return Verdict::Drop(DropReason::RealFamily);
            };
            // FullNAT: a local port whose replies come back to this worker; none left is a
            // refusal, never a live port given twice.
            let (laddr, lport) = match real.method {
                Method::FullNat => match conns.take_local_port(&service.local_addrs) {
                    Some(local) => local,
                    None => return Verdict::Drop(DropReason::NoLocalPort),
                },
                _ => (h.src, h.src_port),
            };
            let new = Conn {
                proto: h.proto,
                caddr: h.src,
                cport: h.src_port,
                vaddr: h.dst,
                vport: h.dst_port,
                daddr,
                dport: real.port,
                service: service.id,
                real: real.id,
                method: real.method,
                laddr,
                lport,
                // A flow taken over mid-flow was established where it came from (IPVS leaves
                // it in CLOSE, with a 10 s timeout, which a pause longer than that ends).
                state: match sloppy {
                    true => TcpState::Established,
                    false => TcpState::None,
                },
                expires_ms: 0,
            };
            match conns.insert(new, stats) {
                Ok(conn) => {
                    if let Some(s) = stats.service(service.id) {
                        s.conns.add(1);
                    }
                    if let Some(r) = stats.real(real.id) {
                        r.traffic.conns.add(1);
                    }
                    conn
                }
                Err(_) => {
                    if new.method == Method::FullNat {
                        conns.give_back_local_port(laddr, lport);
                    }
                    return Verdict::Drop(DropReason::TableFull);
                }
            }
        }
    };
    forward(frame, h, env, conn, Direction::Inbound, stats)
}

fn outbound<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    h: &Headers<A>,
    key: &FlowKey<A>,
    hash: u64,
    env: &Env<'_>,
    conns: &mut ConnTable<A>,
    stats: &WorkerStats,
) -> Verdict {
    let Some(conn) = conns.lookup_hashed(key, hash, Direction::Outbound, env.now_ms, stats) else {
        return Verdict::Drop(DropReason::NoConnection);
    };
    // Only NAT's and FullNAT's replies come back through the director: a real server of
    // another method answers from the VIP, so a packet from RIP:rport is none of its
    // connection's business.
    if !conn.method.sees_replies() {
        return Verdict::Drop(DropReason::NoConnection);
    }
    forward(frame, h, env, conn, Direction::Outbound, stats)
}

/// Updates `conn` for a segment travelling in `direction`, hands the frame to the transmitter
/// of the connection's method and counts it when it leaves.
#[inline]
fn forward<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    h: &Headers<A>,
    env: &Env<'_>,
    conn: &mut Conn<A>,
    direction: Direction,
    stats: &WorkerStats,
) -> Verdict {
    ConnTable::touch(
        conn,
        direction,
        h.tcp_flags,
        &env.config.timeouts,
        env.now_ms,
        stats,
    );
    let conn = *conn;
    let verdict = transmit(frame, h, env, &conn, direction, stats);
    if matches!(verdict, Verdict::Forward(_)) {
        let traffic = [
            stats.service(conn.service),
            stats.real(conn.real).map(|r| &r.traffic),
        ];
        for t in traffic.into_iter().flatten() {
            match direction {
                Direction::Inbound => t.count_in(h.ip_len),
                Direction::Outbound => t.count_out(h.ip_len),
            }
        }
    }
    verdict
}

/// Hands a TCP/UDP packet of `conn` travelling in `direction` to the transmitter of the
/// connection's method (after the family's MTU check, [`Family::too_big`]; a tunnel checks
/// its own, its overhead included).
#[inline]
fn transmit<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    h: &Headers<A>,
    env: &Env<'_>,
    conn: &Conn<A>,
    direction: Direction,
    stats: &WorkerStats,
) -> Verdict {
    let method = match conn.method {
        Method::Tunnel(tunnel) => {
            complete_partial_checksum(frame.bytes(), h);
            return xmit::tun::transmit(frame, h.ip_len, env, conn, tunnel, stats);
        }
        method => method,
    };
    if let Some(verdict) = A::too_big(frame, h.ip_len, direction, env, stats) {
        return verdict;
    }
    let frame = frame.bytes();
    match method {
        Method::Route => {
            complete_partial_checksum(frame, h);
            xmit::dr::transmit(frame, env, conn)
        }
        Method::FullNat => xmit::fullnat::transmit(frame, h, env, conn, direction),
        // Masquerading (tunnels went their way above).
        _ => xmit::nat::transmit(frame, h, env, conn, direction),
    }
}

/// Completes a partial TCP/UDP checksum (a sender's offload) of a packet that leaves with its
/// transport header unchanged: nobody downstream will.
#[inline]
fn complete_partial_checksum<A: Family>(frame: &mut [u8], h: &Headers<A>) {
    if h.partial_checksum {
        let ip = &mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + h.ip_len];
        A::complete_checksum(ip, h.l4_offset, h.proto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_armed_side_follows_the_destination() {
        let vip = Ipv4Addr::new(198, 18, 0, 129);
        let config = Snapshot {
            vip_addrs: vec![Ipv4Addr::new(198, 18, 0, 7), vip],
            ..Default::default()
        };
        let mut frame = [0u8; 64];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[30..34].copy_from_slice(&vip.octets());
        assert_eq!(one_armed_side(&frame, &config), Side::External);
        frame[30..34].copy_from_slice(&[198, 18, 0, 201]);
        assert_eq!(one_armed_side(&frame, &config), Side::Internal);
        // IPv6: by the IPv6 VIPs.
        let vip6: std::net::Ipv6Addr = "2001:2::129".parse().unwrap();
        let config6 = Snapshot {
            vip_addrs6: vec![vip6],
            ..Default::default()
        };
        let mut frame6 = [0u8; 64];
        frame6[12..14].copy_from_slice(&[0x86, 0xdd]);
        frame6[38..54].copy_from_slice(&vip6.octets());
        assert_eq!(one_armed_side(&frame6, &config6), Side::External);
        frame6[53] = 0x30;
        assert_eq!(one_armed_side(&frame6, &config6), Side::Internal);
        // Too short to say: external (and dropped there as malformed).
        assert_eq!(one_armed_side(&frame[..33], &config), Side::External);
    }
}
