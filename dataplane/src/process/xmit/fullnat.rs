//! FullNAT (DPVS's `--fullnat`): both endpoints are translated, so the real server answers
//! the director whatever its routes. A request CIP:cport -> VIP:vport leaves by the internal
//! interface as LIP:lport -> RIP:rport (the local address and port the connection took,
//! [`crate::fullnat`]); the reply RIP:rport -> LIP:lport leaves by the external one as
//! VIP:vport -> CIP:cport. The TTL is decremented as by any router, and the real server may
//! sit behind routers (its next hop comes from the routes, as for NAT).
//!
//! ICMP errors are translated both ways, as the packet they quote would have been on its way
//! back: an error about a reply reaches the real server from LIP, quoting RIP:rport ->
//! LIP:lport; an error about a request reaches the client from the VIP, quoting CIP:cport ->
//! VIP:vport.

use super::nat::{send, Egress};
use super::{Env, Verdict};
use crate::conntrack::{Conn, Direction};
use crate::nat::{self, Endpoint};
use std::net::Ipv4Addr;

/// The new source and destination of a packet of `conn` travelling in `direction`.
#[inline]
fn endpoints(conn: &Conn, direction: Direction) -> [(Ipv4Addr, u16); 2] {
    match direction {
        Direction::Inbound => [(conn.laddr, conn.lport), (conn.daddr, conn.dport)],
        Direction::Outbound => [(conn.vaddr, conn.vport), (conn.caddr, conn.cport)],
    }
}

/// Translates a TCP/UDP packet of `conn` travelling in `direction` (its IPv4 packet is
/// `ip_len` bytes; `partial_checksum`: complete its transport checksum) and addresses it. Out
/// of line: NAT's path stays as short as it was.
#[inline(never)]
pub(in crate::process) fn transmit(
    frame: &mut [u8],
    ip_len: usize,
    partial_checksum: bool,
    env: &Env<'_>,
    conn: &Conn,
    direction: Direction,
) -> Verdict {
    let to = Egress::of(env.config, conn, direction);
    send(frame, ip_len, env, &to, |ip| {
        let [(saddr, sport), (daddr, dport)] = endpoints(conn, direction);
        nat::translate(ip, Endpoint::Source, saddr, sport);
        nat::translate(ip, Endpoint::Destination, daddr, dport);
        if partial_checksum {
            nat::complete_checksum(ip);
        }
    })
}

/// Translates an ICMP error (an IPv4 packet of `ip_len` bytes) about `conn`, which arrived
/// travelling in `direction`, and addresses it: its outer source and destination become
/// those a packet of `direction` gets, and the quote, which travelled the other way, the
/// opposite ones.
pub(in crate::process) fn transmit_icmp_error(
    frame: &mut [u8],
    ip_len: usize,
    env: &Env<'_>,
    conn: &Conn,
    direction: Direction,
) -> Verdict {
    let to = Egress::of(env.config, conn, direction);
    send(frame, ip_len, env, &to, |ip| {
        let [(saddr, sport), (daddr, dport)] = endpoints(conn, direction);
        nat::translate_icmp_error(ip, Endpoint::Source, saddr, sport);
        nat::translate_icmp_error(ip, Endpoint::Destination, daddr, dport);
    })
}
