//! ICMP errors about translated connections, as IPVS's `ip_vs_in_icmp`/`ip_vs_out_icmp` and
//! `ip_vs_nat_icmp` handle them, so that path MTU discovery, "port unreachable" and
//! traceroute work through the director.
//!
//! An error (destination unreachable, "fragmentation needed" included, time exceeded,
//! parameter problem) quotes the IPv4 header and at least 8 bytes of the packet that caused it;
//! the quote is that packet as it travelled, so reversing its tuple gives the key of the
//! connection it belongs to:
//! - From the external side (a router towards the client, or the client): the quote is one of
//!   our replies, VIP:vport -> CIP:cport. Reversed, it is the connection's inbound key. The
//!   error goes to the real server: outer destination VIP -> RIP, quoted source VIP:vport ->
//!   RIP:rport.
//! - From the internal side (the real server, or a router behind the director): the quote is a
//!   request as we forwarded it, CIP:cport -> RIP:rport. Reversed, it is the reply key. The
//!   error goes to the client: outer source -> VIP, quoted destination RIP:rport -> VIP:vport.
//!   Like IPVS, the outer source becomes the VIP whoever sent the error: an internal router's
//!   address would reveal the inside and is often unroutable for the client, whose stack
//!   matches the error by the quote anyway.
//!
//! - FullNAT (`xmit/fullnat.rs`) translates the other outer address and quoted endpoint too:
//!   the quote of a request left from LIP:lport, so an error about it is addressed to the LIP
//!   (whose reversed quote is the reply key); an error about a reply reaches the real server
//!   from the LIP.
//!
//! Rules: an error must be addressed to the source of the packet it quotes (the VIP, or the
//! client), and its connection must be in the table; otherwise it is dropped as
//! `NoConnection`. An error never creates a connection and never touches one: no state change
//! (as IPVS) and no timer refresh (IPVS re-arms the timer as a side effect of the lookup; an
//! error is no sign of life, and an off-path sender must not keep entries alive). Translated
//! errors are counted per [`IcmpReason`] and direction, not in the service's traffic counters.
//! Checksums are updated incrementally ([`crate::nat::translate_icmp_error`]), the TTL decremented and
//! the frame addressed to the next hop as any forwarded frame.

use super::{xmit, Env, FrameBuf, Side, Verdict};
use crate::conntrack::{ConnTable, Direction, FlowKey};
use crate::snapshot::{Method, PROTO_TCP, PROTO_UDP};
use crate::stats::{DropReason, IcmpReason, WorkerStats};
use crate::wire::{icmp, ipv4, IcmpPacket, IpProtocol, Ipv4Packet};
use std::net::Ipv4Addr;

/// Bytes of the quoted transport header the director reads: both ports.
const QUOTED_L4_LEN: usize = 8;

/// The fields of an ICMP error that passed every check.
#[derive(Debug, Clone, Copy)]
pub(super) struct IcmpError {
    reason: IcmpReason,
    /// Outer destination.
    dst: Ipv4Addr,
    /// The quoted packet's tuple, as it travelled.
    quoted: FlowKey,
    /// Outer IPv4 total length: the extent of the rewrite.
    ip_len: usize,
}

impl IcmpError {
    /// The client endpoint of the quoted packet: its destination when it was one of our
    /// replies (the error came from the external side), its source when it was a request.
    pub(super) fn client_endpoint(&self, from: Side) -> (Ipv4Addr, u16) {
        match from {
            Side::External => (self.quoted.dst, self.quoted.dst_port),
            Side::Internal => (self.quoted.src, self.quoted.src_port),
        }
    }
}

/// Checks an ICMP message whose IPv4 header `ip` passed [`super::parse`]'s checks. Anything
/// but an error about a TCP/UDP packet whose ports are quoted is refused: informational
/// messages (echo...) as `UnsupportedProtocol`, as are quotes of other protocols; a quote too
/// short for an IPv4 header and 8 bytes as `Malformed`; a quoted non-first fragment (no ports)
/// as `Fragment`; a quoted header with options (we never forward one) as `IpOptions`.
pub(super) fn parse(ip: &Ipv4Packet<&[u8]>) -> Result<IcmpError, DropReason> {
    let message = IcmpPacket::new_checked(ip.payload()).map_err(|_| DropReason::Malformed)?;
    let reason = match (message.msg_type(), message.msg_code()) {
        (icmp::DEST_UNREACHABLE, icmp::CODE_FRAG_NEEDED) => IcmpReason::FragNeeded,
        (icmp::DEST_UNREACHABLE, _) => IcmpReason::Unreachable,
        (icmp::TIME_EXCEEDED, _) => IcmpReason::TimeExceeded,
        (icmp::PARAMETER_PROBLEM, _) => IcmpReason::ParameterProblem,
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    let quote = message.data();
    if quote.len() < ipv4::MIN_HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    // Unchecked: the quoted total length is the original packet's, longer than the quote.
    let quoted = Ipv4Packet::new_unchecked(quote);
    if quoted.version() != 4 || quoted.header_len() < ipv4::MIN_HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    if quoted.has_options() {
        return Err(DropReason::IpOptions);
    }
    if quoted.frag_offset() != 0 {
        return Err(DropReason::Fragment);
    }
    let proto = match quoted.protocol() {
        IpProtocol::Tcp => PROTO_TCP,
        IpProtocol::Udp => PROTO_UDP,
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    let l4 = &quote[ipv4::MIN_HEADER_LEN..];
    if l4.len() < QUOTED_L4_LEN {
        return Err(DropReason::Malformed);
    }
    if ip.ttl() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    Ok(IcmpError {
        reason,
        dst: ip.dst_addr(),
        quoted: FlowKey {
            proto,
            src: quoted.src_addr(),
            src_port: port(0),
            dst: quoted.dst_addr(),
            dst_port: port(2),
        },
        ip_len: ip.total_len(),
    })
}

/// Translates and forwards an ICMP error about one of our connections, or drops it.
pub(super) fn process<F: FrameBuf + ?Sized>(
    frame: &mut F,
    e: &IcmpError,
    from: Side,
    env: &Env<'_>,
    conns: &mut ConnTable,
    stats: &WorkerStats,
) -> Verdict {
    let q = &e.quoted;
    // An error goes back to where the packet it quotes came from.
    if e.dst != q.src {
        return Verdict::Drop(DropReason::NoConnection);
    }
    let key = FlowKey {
        proto: q.proto,
        src: q.dst,
        src_port: q.dst_port,
        dst: q.src,
        dst_port: q.src_port,
    };
    // WorkerStats::icmp is indexed "in" (0), "out" (1).
    let (direction, counters) = match from {
        Side::External => (Direction::Inbound, &stats.icmp[0]),
        Side::Internal => (Direction::Outbound, &stats.icmp[1]),
    };
    let Some(conn) = conns.lookup(&key, direction, env.now_ms, stats).copied() else {
        return Verdict::Drop(DropReason::NoConnection);
    };
    let verdict = match conn.method {
        Method::Masq => {
            xmit::nat::transmit_icmp_error(frame.bytes(), e.ip_len, env, &conn, direction)
        }
        // The real server sent the reply the error quotes from the VIP itself: it gets the
        // error as it is (IPVS hands it to the DR transmitter). Errors from the internal side
        // quote requests the real server received; their reversal is no reply key of a DR
        // connection, so they never get here.
        Method::Route => xmit::dr::transmit(frame.bytes(), env, &conn),
        Method::Tunnel(tunnel) => xmit::tun::transmit(frame, e.ip_len, env, &conn, tunnel, stats),
        Method::FullNat => {
            xmit::fullnat::transmit_icmp_error(frame.bytes(), e.ip_len, env, &conn, direction)
        }
    };
    if matches!(verdict, Verdict::Forward(_)) {
        counters[e.reason as usize].add(1);
    }
    verdict
}
