//! [`Family`]: what the packet path does differently per address family, so that the rest of
//! it (new-flow admission, state and counters, the NAT, DR and FullNAT transmitters, ICMP
//! errors) is one generic body for both, as IPVS's `ip_vs_xmit.c` shares its transmitters
//! between `AF_INET` and `AF_INET6` through per-family helpers. Each family's code is
//! monomorphised: the IPv4 path compiles to what it was before IPv6 existed (its hooks that do
//! nothing, such as [`Family::too_big`], are inlined away).
//!
//! The IPv4 implementation is here; the IPv6 one is in `v6.rs`, beside the IPv6 parser.

use super::{xmit, Env, FrameBuf, Headers, Verdict};
use crate::conntrack::{Address, Conn, Direction};
use crate::encap;
use crate::nat::{self, Endpoint};
use crate::neigh::NeighbourTable;
use crate::persist::masked;
use crate::snapshot::{Interface, RealId, RealServer, Service, ServiceId, Snapshot, Tunnel};
use crate::stats::{DropReason, ServiceLoad, WorkerStats};
use std::net::{IpAddr, Ipv4Addr};
use xvs_scheduler::Flow;

/// An address family as the packet path sees it.
pub(super) trait Family: Address {
    /// Where the TCP/UDP (or ICMP) header of a parsed packet is, as this family's rewrites
    /// need it: nothing for IPv4, whose header is 20 bytes (options are refused), so that its
    /// parsed packets stay as small as they were; the offset in the IP packet for IPv6 (40 and
    /// the extension headers).
    type L4Offset: Copy + std::fmt::Debug;

    /// The FullNAT local addresses of this family: no new flow may come from one.
    fn local_addrs(config: &Snapshot) -> &[Self];

    /// The real server for a new connection `h` to `service`, or why there is none: its
    /// client's persistence template if the service is persistent and the template's server
    /// is still configured and not failed (IPVS keeps a client there even at weight 0), else
    /// the scheduler's pick (recorded as the new template).
    fn choose_real<'s>(
        service: &'s Service,
        h: &Headers<Self>,
        env: &Env<'_>,
    ) -> Result<&'s RealServer, DropReason> {
        let load = load(service, env);
        let flow = flow(h);
        match service.persistence {
            None => service.schedule(&load, &flow),
            Some(persistence) => {
                let group = Self::persistence_group(h.src, persistence.netmask);
                let now_s = (env.now_ms / 1000) as u32;
                let real = Self::template(env, service.id, group, now_s)
                    .and_then(|id| service.reals.iter().find(|r| r.id == id && !r.failed))
                    .or_else(|| service.schedule(&load, &flow));
                if let Some(real) = real {
                    let expires = now_s.saturating_add(persistence.timeout_secs);
                    Self::record_template(env, service.id, group, real.id, now_s, expires);
                }
                real
            }
        }
        .ok_or(DropReason::NoRealServer)
    }

    /// The persistence group of `client` under `netmask` (a mask of the other family, which
    /// control never publishes, groups nothing: each address alone).
    fn persistence_group(client: Self, netmask: IpAddr) -> Self;

    /// The real server of `group`'s live template for `service` (shared by all workers).
    fn template(env: &Env<'_>, service: ServiceId, group: Self, now_s: u32) -> Option<RealId>;

    /// Records (or refreshes) `group` -> `real` for `service` until `expires_s`.
    fn record_template(
        env: &Env<'_>,
        service: ServiceId,
        group: Self,
        real: RealId,
        now_s: u32,
        expires_s: u32,
    );

    /// The verdict for a packet of `ip_len` bytes travelling in `direction` that does not fit
    /// its egress interface's MTU (the frame then holds what is sent instead, if anything);
    /// `None` to transmit it.
    fn too_big<F: FrameBuf + ?Sized>(
        frame: &mut F,
        ip_len: usize,
        direction: Direction,
        env: &Env<'_>,
        stats: &WorkerStats,
    ) -> Option<Verdict>;

    /// Tunnelling (`-i`): the bytes `tunnel` adds in front of a packet of this family.
    fn tunnel_overhead(tunnel: &Tunnel) -> usize;

    /// Tunnelling: the outer source of packets tunnelled out of `egress`, its address of this
    /// family (IPVS: the route's source address), if it has one.
    fn tunnel_source(egress: &Interface) -> Option<Self>;

    /// Tunnelling: wraps the IP packet `inner` of `conn`, writing the outer headers of
    /// `tunnel` from `src` into `outer` ([`Family::tunnel_overhead`] bytes) and making of
    /// `inner` what the real server receives (IPv6: its hop limit decremented).
    fn encapsulate(
        outer: &mut [u8],
        inner: &mut [u8],
        tunnel: &Tunnel,
        src: Self,
        conn: &Conn<Self>,
    );

    /// Tunnelling: the verdict for a frame of `conn` whose IP packet (`ip_len` bytes) is too
    /// big for its tunnel, `mtu` bytes being left for it inside (the frame then holds what is
    /// sent instead, if anything): ICMP "fragmentation needed" or Packet Too Big to the
    /// client, or a drop.
    fn too_big_for_tunnel<F: FrameBuf + ?Sized>(
        frame: &mut F,
        ip_len: usize,
        mtu: usize,
        env: &Env<'_>,
        conn: &Conn<Self>,
    ) -> Verdict;

    /// The MAC of the next hop towards `addr` out of `ifindex`, or the verdict for a frame
    /// that cannot be sent yet ([`xmit::miss`]).
    fn next_hop_mac(
        neighbours: &NeighbourTable,
        ifindex: u32,
        addr: Self,
    ) -> Result<[u8; 6], Verdict>;

    /// The next hop towards `addr` out of `ifindex` the routes give, if any.
    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<Self>;

    /// The usable MAC of neighbour `addr` on `ifindex`, without routing.
    fn mac(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<[u8; 6]>;

    /// Decrements the TTL (hop limit) of the IP packet `ip` as a router does.
    fn decrement_ttl(ip: &mut [u8]);

    /// Sets `endpoint`'s address and port of the TCP/UDP packet `ip` (whose transport header is
    /// at `l4`, of protocol `proto`) to `addr:port`, updating the checksums.
    fn translate(
        ip: &mut [u8],
        l4: Self::L4Offset,
        proto: u8,
        endpoint: Endpoint,
        addr: Self,
        port: u16,
    );

    /// Computes the TCP/UDP checksum of `ip` over the whole segment.
    fn complete_checksum(ip: &mut [u8], l4: Self::L4Offset, proto: u8);

    /// Rewrites the ICMP error `ip` (whose ICMP header is at `l4`) about a translated packet:
    /// its outer `outer` endpoint becomes `addr`, and the quoted packet's opposite endpoint
    /// `addr:port`.
    fn translate_icmp_error(
        ip: &mut [u8],
        l4: Self::L4Offset,
        outer: Endpoint,
        addr: Self,
        port: u16,
    );
}

/// The servers' loads a scheduler of `service` weighs.
#[inline]
fn load<'s>(service: &'s Service, env: &Env<'s>) -> ServiceLoad<'s> {
    ServiceLoad {
        reals: &service.reals,
        workers: env.workers,
        overload: env.overload,
    }
}

/// The flow a scheduler sees of `h`.
#[inline]
fn flow<A: Family>(h: &Headers<A>) -> Flow {
    Flow {
        proto: h.proto,
        caddr: h.src.into(),
        cport: h.src_port,
        vaddr: h.dst.into(),
        vport: h.dst_port,
    }
}

impl Family for Ipv4Addr {
    type L4Offset = ();

    #[inline(always)]
    fn local_addrs(config: &Snapshot) -> &[Self] {
        &config.local_addrs
    }

    #[inline(always)]
    fn persistence_group(client: Self, netmask: IpAddr) -> Self {
        match netmask {
            IpAddr::V4(netmask) => masked(client, netmask),
            IpAddr::V6(_) => client,
        }
    }

    #[inline(always)]
    fn template(env: &Env<'_>, service: ServiceId, group: Self, now_s: u32) -> Option<RealId> {
        env.templates.get(service, group, now_s)
    }

    #[inline(always)]
    fn record_template(
        env: &Env<'_>,
        service: ServiceId,
        group: Self,
        real: RealId,
        now_s: u32,
        expires_s: u32,
    ) {
        env.templates.put(service, group, real, now_s, expires_s);
    }

    /// None: IPv4 routers fragment, and only a tunnel's headers make a packet grow
    /// (`xmit/tun.rs` checks its own MTU: [`Family::too_big_for_tunnel`]).
    #[inline(always)]
    fn too_big<F: FrameBuf + ?Sized>(
        _: &mut F,
        _: usize,
        _: Direction,
        _: &Env<'_>,
        _: &WorkerStats,
    ) -> Option<Verdict> {
        None
    }

    #[inline(always)]
    fn tunnel_overhead(tunnel: &Tunnel) -> usize {
        tunnel.overhead()
    }

    #[inline(always)]
    fn tunnel_source(egress: &Interface) -> Option<Self> {
        Some(egress.addr)
    }

    #[inline(always)]
    fn encapsulate(
        outer: &mut [u8],
        inner: &mut [u8],
        tunnel: &Tunnel,
        src: Self,
        conn: &Conn<Self>,
    ) {
        encap::write_outer(outer, inner, tunnel, src, conn.daddr, conn);
    }

    #[inline(always)]
    fn too_big_for_tunnel<F: FrameBuf + ?Sized>(
        frame: &mut F,
        _: usize,
        mtu: usize,
        env: &Env<'_>,
        conn: &Conn<Self>,
    ) -> Verdict {
        xmit::tun::frag_needed(frame, mtu, env, conn)
    }

    #[inline(always)]
    fn next_hop_mac(
        neighbours: &NeighbourTable,
        ifindex: u32,
        addr: Self,
    ) -> Result<[u8; 6], Verdict> {
        neighbours
            .next_hop_mac(ifindex, addr)
            .map_err(|m| xmit::miss(m.ifindex, IpAddr::V4(m.next_hop), m.no_route))
    }

    #[inline(always)]
    fn next_hop(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<Self> {
        neighbours.next_hop(ifindex, addr).ok()
    }

    #[inline(always)]
    fn mac(neighbours: &NeighbourTable, ifindex: u32, addr: Self) -> Option<[u8; 6]> {
        neighbours.mac(ifindex, addr)
    }

    #[inline(always)]
    fn decrement_ttl(ip: &mut [u8]) {
        nat::decrement_ttl(ip);
    }

    #[inline(always)]
    fn translate(ip: &mut [u8], _: (), _: u8, endpoint: Endpoint, addr: Self, port: u16) {
        nat::translate(ip, endpoint, addr, port);
    }

    #[inline(always)]
    fn complete_checksum(ip: &mut [u8], _: (), _: u8) {
        nat::complete_checksum(ip);
    }

    #[inline(always)]
    fn translate_icmp_error(ip: &mut [u8], _: (), outer: Endpoint, addr: Self, port: u16) {
        nat::translate_icmp_error(ip, outer, addr, port);
    }
}
