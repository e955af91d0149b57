//! Direct routing (`-g`), IPVS's `ip_vs_dr_xmit`: the IP packet leaves exactly as it arrived
//! (addresses, ports, TTL and checksums untouched), in a frame addressed to the real server's
//! own MAC. The real server holds the VIP itself (on its loopback) and answers the client
//! directly, so only requests, and ICMP errors about the replies, ever come this way.
//!
//! The real server must be on a network of the internal interface: its frame carries the VIP
//! as destination, so a router in between would send it straight back. A real server the
//! routes reach only through a gateway is dropped as `NoRoute` (the control plane refuses
//! such a configuration; this guards against routes changing under it).

use super::{address, Env, Verdict};
use crate::conntrack::Conn;
use crate::process::family::Family;
use crate::process::Side;
use crate::stats::DropReason;

/// Addresses `frame` to `conn`'s real server on the internal interface.
#[inline]
pub(in crate::process) fn transmit<A: Family>(
    frame: &mut [u8],
    env: &Env<'_>,
    conn: &Conn<A>,
) -> Verdict {
    let egress = &env.config.internal;
    match A::next_hop(env.neighbours, egress.ifindex, conn.daddr) {
        Some(next_hop) if next_hop == conn.daddr => {}
        _ => return Verdict::Drop(DropReason::NoRoute),
    }
    let Some(mac) = A::mac(env.neighbours, egress.ifindex, conn.daddr) else {
        return Verdict::Unresolved {
            ifindex: egress.ifindex,
            addr: conn.daddr.into(),
        };
    };
    address(frame, egress.mac, mac);
    Verdict::Forward(Side::Internal)
}
