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
//!
//! ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter problem)
//! follow the same rules (IPVS's `ip_vs_in_icmp_v6` and `ip_vs_nat_icmp_v6`): [`parse6`]
//! checks them, [`process`] serves both families, and [`crate::nat6::translate_icmp_error`]
//! rewrites them. Packet Too Big plays the part of "fragmentation needed" and is counted as
//! such.

use super::family::Family;
use super::{xmit, Env, FrameBuf, Side, Verdict};
use crate::conntrack::{Address, ConnTable, Direction, FlowKey};
use crate::snapshot::{Method, PROTO_TCP, PROTO_UDP};
use crate::stats::{DropReason, IcmpReason, WorkerStats};
use crate::wire::{
    icmp, icmpv6, ipv4, ipv6, ipv6ext, IcmpPacket, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Bytes of the quoted transport header the director reads: both ports.
const QUOTED_L4_LEN: usize = 8;

/// The fields of an ICMP error of family `A` that passed every check.
#[derive(Debug, Clone, Copy)]
pub(super) struct IcmpError<A: Family = Ipv4Addr> {
    reason: IcmpReason,
    /// Outer destination.
    dst: A,
    /// The quoted packet's tuple, as it travelled.
    quoted: FlowKey<A>,
    /// Outer IP packet's length: the extent of the rewrite.
    pub(super) ip_len: usize,
    /// Where the ICMP header is in the IP packet ([`Family::L4Offset`]).
    pub(super) l4_offset: A::L4Offset,
}

impl<A: Family> IcmpError<A> {
    /// The client endpoint of the quoted packet: its destination when it was one of our
    /// replies (the error came from the external side), its source when it was a request.
    pub(super) fn client_endpoint(&self, from: Side) -> (A, u16) {
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
    let (src, dst) = (quoted.src_addr(), quoted.dst_addr());
    let quoted = quoted_key(quoted.protocol(), src, dst, &quote[ipv4::MIN_HEADER_LEN..])?;
    if ip.ttl() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    Ok(IcmpError {
        reason,
        dst: ip.dst_addr(),
        quoted,
        ip_len: ip.total_len(),
        l4_offset: (),
    })
}

/// The tuple of a quoted packet of `protocol` from `src` to `dst` whose transport header
/// starts the quoted bytes `l4`; refused as [`parse`] says unless it is TCP or UDP with both
/// ports quoted.
fn quoted_key<A: Address>(
    protocol: IpProtocol,
    src: A,
    dst: A,
    l4: &[u8],
) -> Result<FlowKey<A>, DropReason> {
    let proto = match protocol {
        IpProtocol::Tcp => PROTO_TCP,
        IpProtocol::Udp => PROTO_UDP,
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    if l4.len() < QUOTED_L4_LEN {
        return Err(DropReason::Malformed);
    }
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    Ok(FlowKey {
        proto,
        src,
        src_port: port(0),
        dst,
        dst_port: port(2),
    })
}

/// [`parse`] for ICMPv6: checks the ICMPv6 message of `ip` (an IPv6 packet without fragment
/// or pending Routing header, checked by the caller) whose header is at `upper`. The same
/// refusals, and a quoted non-first fragment (or a quote whose extension headers cannot be
/// walked) refused too: everything [`crate::nat6::translate_icmp_error`] needs is checked here.
pub(super) fn parse6(
    ip: &Ipv6Packet<&[u8]>,
    upper: &ipv6ext::UpperLayer,
) -> Result<IcmpError<Ipv6Addr>, DropReason> {
    let payload = ip.payload();
    let message =
        Icmpv6Packet::new_checked(&payload[upper.offset..]).map_err(|_| DropReason::Malformed)?;
    let reason = match message.msg_type() {
        icmpv6::DST_UNREACHABLE => IcmpReason::Unreachable,
        icmpv6::PACKET_TOO_BIG => IcmpReason::FragNeeded,
        icmpv6::TIME_EXCEEDED => IcmpReason::TimeExceeded,
        icmpv6::PARAM_PROBLEM => IcmpReason::ParameterProblem,
        // Neighbour Discovery, echo, MLD...: not ours (the kernel's).
        _ => return Err(DropReason::UnsupportedProtocol),
    };
    let quote = message.data();
    if quote.len() < ipv6::HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    // Unchecked: the quoted payload length is the original packet's, longer than the quote.
    let quoted = Ipv6Packet::new_unchecked(quote);
    if quoted.version() != 6 {
        return Err(DropReason::Malformed);
    }
    let quoted_upper = ipv6ext::walk(quoted.next_header().into(), &quote[ipv6::HEADER_LEN..])
        .map_err(|_| DropReason::Malformed)?;
    if quoted_upper.fragment.is_some_and(|f| !f.is_first()) {
        return Err(DropReason::Fragment);
    }
    let (src, dst) = (quoted.src_addr(), quoted.dst_addr());
    let l4 = &quote[ipv6::HEADER_LEN + quoted_upper.offset..];
    let quoted = quoted_key(quoted_upper.protocol, src, dst, l4)?;
    if ip.hop_limit() <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    Ok(IcmpError {
        reason,
        dst: ip.dst_addr(),
        quoted,
        ip_len: ip.total_len(),
        // At most 40 + 8 extension headers of 2 KiB: fits.
        l4_offset: (ipv6::HEADER_LEN + upper.offset) as u16,
    })
}

/// Translates and forwards an ICMP error about one of our connections, or drops it.
pub(super) fn process<A: Family, F: FrameBuf + ?Sized>(
    frame: &mut F,
    e: &IcmpError<A>,
    from: Side,
    env: &Env<'_>,
    conns: &mut ConnTable<A>,
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
    // Not one of the connection's own packets: the fast path's bookkeeping does not see it.
    let Some(conn) = conns.lookup_quoted(&key, direction, env.now_ms, stats) else {
        return Verdict::Drop(DropReason::NoConnection);
    };
    // A tunnel checks its egress MTU itself, its overhead included.
    let too_big = match conn.method {
        Method::Tunnel(_) => None,
        _ => A::too_big(frame, e.ip_len, direction, env, stats),
    };
    if let Some(verdict) = too_big {
        return verdict;
    }
    let verdict = match conn.method {
        Method::Masq => xmit::nat::transmit_icmp_error(frame.bytes(), e, env, &conn, direction),
        // The real server sent the reply the error quotes from the VIP itself: it gets the
        // error as it is (IPVS hands it to the DR transmitter). Errors from the internal side
        // quote requests the real server received; their reversal is no reply key of a DR
        // connection, so they never get here.
        Method::Route => xmit::dr::transmit(frame.bytes(), env, &conn),
        // Likewise through its tunnel (IPVS's tunnel transmitter).
        Method::Tunnel(tunnel) => xmit::tun::transmit(frame, e.ip_len, env, &conn, tunnel, stats),
        Method::FullNat => {
            xmit::fullnat::transmit_icmp_error(frame.bytes(), e, env, &conn, direction)
        }
    };
    if matches!(verdict, Verdict::Forward(_)) {
        counters[e.reason as usize].add(1);
    }
    verdict
}
