//! Masquerading (`-m`, LVS-NAT), IPVS's `ip_vs_nat_xmit` and `ip_vs_nat_icmp`: requests leave
//! by the internal interface with RIP:rport as destination, replies by the external one with
//! VIP:vport as source; the TTL is decremented as by any router. The byte-level rewrites live
//! in [`crate::nat`].

use super::{address, next_hop, Env, Verdict};
use crate::conntrack::{Conn, Direction};
use crate::nat::{self, Endpoint};
use crate::process::{Side, ETHERNET_HEADER_LEN};
use crate::snapshot::{Interface, Snapshot};
use std::net::Ipv4Addr;

/// Where a frame of a connection goes: out of `egress` (the interface of `side`), to the
/// next hop towards `next_hop`. Requests go to the real server, replies (and errors towards
/// the client) to the client.
pub(super) struct Egress<'a> {
    pub(super) egress: &'a Interface,
    pub(super) side: Side,
    pub(super) next_hop: Ipv4Addr,
}

impl<'a> Egress<'a> {
    #[inline]
    pub(super) fn of(config: &'a Snapshot, conn: &Conn, direction: Direction) -> Self {
        match direction {
            Direction::Inbound => Egress {
                egress: &config.internal,
                side: Side::Internal,
                next_hop: conn.daddr,
            },
            Direction::Outbound => Egress {
                egress: &config.external,
                side: Side::External,
                next_hop: conn.caddr,
            },
        }
    }
}

/// The endpoint NAT rewrites in a frame of `conn` travelling in `direction`, and what it
/// becomes: the destination of requests becomes RIP:rport, the source of replies VIP:vport.
#[inline]
fn rewrite(conn: &Conn, direction: Direction) -> (Endpoint, Ipv4Addr, u16) {
    match direction {
        Direction::Inbound => (Endpoint::Destination, conn.daddr, conn.dport),
        Direction::Outbound => (Endpoint::Source, conn.vaddr, conn.vport),
    }
}

/// Translates a TCP/UDP packet of `conn` travelling in `direction` (its IPv4 packet is
/// `ip_len` bytes; `partial_checksum`: complete its transport checksum) and addresses it.
#[inline]
pub(in crate::process) fn transmit(
    frame: &mut [u8],
    ip_len: usize,
    partial_checksum: bool,
    env: &Env<'_>,
    conn: &Conn,
    direction: Direction,
) -> Verdict {
    // Both from one match on the direction (computed in the closure, after the next-hop
    // lookup, the rewrite cost a second one: callgrind, +13 instructions per packet).
    let (endpoint, addr, port) = rewrite(conn, direction);
    let to = Egress::of(env.config, conn, direction);
    send(frame, ip_len, env, &to, |ip| {
        nat::translate(ip, endpoint, addr, port);
        if partial_checksum {
            nat::complete_checksum(ip);
        }
    })
}

/// Translates an ICMP error (an IPv4 packet of `ip_len` bytes) about `conn`, which arrived
/// travelling in `direction`, and addresses it.
pub(in crate::process) fn transmit_icmp_error(
    frame: &mut [u8],
    ip_len: usize,
    env: &Env<'_>,
    conn: &Conn,
    direction: Direction,
) -> Verdict {
    let (endpoint, addr, port) = rewrite(conn, direction);
    let to = Egress::of(env.config, conn, direction);
    send(frame, ip_len, env, &to, |ip| {
        nat::translate_icmp_error(ip, endpoint, addr, port)
    })
}

/// What the translating methods have in common: the next hop first (an unresolved one
/// leaves the frame as it is), then `translate` on the IPv4 packet, the TTL, the MACs.
#[inline]
pub(super) fn send(
    frame: &mut [u8],
    ip_len: usize,
    env: &Env<'_>,
    to: &Egress<'_>,
    translate: impl FnOnce(&mut [u8]),
) -> Verdict {
    let mac = match next_hop(env, to.egress.ifindex, to.next_hop) {
        Ok(mac) => mac,
        Err(verdict) => return verdict,
    };
    let ip = &mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip_len];
    translate(ip);
    nat::decrement_ttl(ip);
    address(frame, to.egress.mac, mac);
    Verdict::Forward(to.side)
}
