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

/// Where a frame of a connection goes and what NAT writes into it. Requests go to the real
/// server (the destination becomes RIP:rport); replies, and errors towards the client, leave
/// from the VIP (the source becomes VIP:vport).
struct Rewrite<'a> {
    egress: &'a Interface,
    side: Side,
    endpoint: Endpoint,
    addr: Ipv4Addr,
    port: u16,
    next_hop: Ipv4Addr,
}

impl<'a> Rewrite<'a> {
    #[inline]
    fn of(config: &'a Snapshot, conn: &Conn, direction: Direction) -> Self {
        match direction {
            Direction::Inbound => Rewrite {
                egress: &config.internal,
                side: Side::Internal,
                endpoint: Endpoint::Destination,
                addr: conn.daddr,
                port: conn.dport,
                next_hop: conn.daddr,
            },
            Direction::Outbound => Rewrite {
                egress: &config.external,
                side: Side::External,
                endpoint: Endpoint::Source,
                addr: conn.vaddr,
                port: conn.vport,
                next_hop: conn.caddr,
            },
        }
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
    send(frame, ip_len, env, conn, direction, |ip, r| {
        nat::translate(ip, r.endpoint, r.addr, r.port);
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
    send(frame, ip_len, env, conn, direction, |ip, r| {
        nat::translate_icmp_error(ip, r.endpoint, r.addr, r.port)
    })
}

/// What both have in common: the next hop first (an unresolved one leaves the frame as it
/// is), then `translate` on the IPv4 packet, the TTL, the MACs.
#[inline]
fn send(
    frame: &mut [u8],
    ip_len: usize,
    env: &Env<'_>,
    conn: &Conn,
    direction: Direction,
    translate: impl FnOnce(&mut [u8], &Rewrite<'_>),
) -> Verdict {
    let r = Rewrite::of(env.config, conn, direction);
    let mac = match next_hop(env, r.egress.ifindex, r.next_hop) {
        Ok(mac) => mac,
        Err(verdict) => return verdict,
    };
    let ip = &mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip_len];
    translate(ip, &r);
    nat::decrement_ttl(ip);
    address(frame, r.egress.mac, mac);
    Verdict::Forward(r.side)
}
