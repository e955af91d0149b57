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
use crate::conntrack::{Address, Conn, Direction};
use crate::nat::Endpoint;
use crate::process::family::Family;
use crate::process::icmp::IcmpError;
use crate::process::Headers;

/// The new source and destination of a packet of `conn` travelling in `direction`.
#[inline]
fn endpoints<A: Address>(conn: &Conn<A>, direction: Direction) -> [(A, u16); 2] {
    match direction {
        Direction::Inbound => [(conn.laddr, conn.lport), (conn.daddr, conn.dport)],
        Direction::Outbound => [(conn.vaddr, conn.vport), (conn.caddr, conn.cport)],
    }
}

/// Translates the TCP/UDP packet `h` of `conn` travelling in `direction` (completing a
/// partial transport checksum) and addresses it. Out of line: NAT's path stays as short as it
/// was.
#[inline(never)]
pub(in crate::process) fn transmit<A: Family>(
    frame: &mut [u8],
    h: &Headers<A>,
    env: &Env<'_>,
    conn: &Conn<A>,
    direction: Direction,
) -> Verdict {
    let to = Egress::of(env.config, conn, direction);
    let (l4, proto, partial_checksum) = (h.l4_offset, h.proto, h.partial_checksum);
    send(frame, h.ip_len, env, &to, |ip| {
        let [(saddr, sport), (daddr, dport)] = endpoints(conn, direction);
        A::translate(ip, l4, proto, Endpoint::Source, saddr, sport);
        A::translate(ip, l4, proto, Endpoint::Destination, daddr, dport);
        if partial_checksum {
            A::complete_checksum(ip, l4, proto);
        }
    })
}

/// Translates the ICMP error `e` about `conn`, which arrived travelling in `direction`, and
/// addresses it: its outer source and destination become those a packet of `direction` gets,
/// and the quote, which travelled the other way, the opposite ones.
pub(in crate::process) fn transmit_icmp_error<A: Family>(
    frame: &mut [u8],
    e: &IcmpError<A>,
    env: &Env<'_>,
    conn: &Conn<A>,
    direction: Direction,
) -> Verdict {
    let to = Egress::of(env.config, conn, direction);
    let l4 = e.l4_offset;
    send(frame, e.ip_len, env, &to, |ip| {
        let [(saddr, sport), (daddr, dport)] = endpoints(conn, direction);
        A::translate_icmp_error(ip, l4, Endpoint::Source, saddr, sport);
        A::translate_icmp_error(ip, l4, Endpoint::Destination, daddr, dport);
    })
}
