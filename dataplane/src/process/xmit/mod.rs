//! The transmitters: one per forwarding method, as IPVS's ip_vs_xmit.c has one per method.
//! Each takes a frame of a known connection (or an ICMP error about one) whose lookup, state
//! and counters [`super`] has handled, makes it what the method sends, addresses it to its
//! next hop and names the interface it leaves by.
//!
//! - [`nat`]: masquerading (`-m`), both directions.
//! - [`dr`]: direct routing (`-g`), requests only.
//! - [`tun`]: tunnelling (`-i`), requests only.
//! - [`fullnat`]: FullNAT (`--fullnat`), both directions, both endpoints.
//!
//! All serve both address families: what differs per family is [`Family`]'s.

pub(super) mod dr;
pub(super) mod fullnat;
pub(super) mod nat;
pub(super) mod tun;

use super::family::Family;
use super::{Env, Verdict};
use crate::stats::DropReason;
use crate::wire::{EthernetAddress, EthernetFrame};
use std::net::IpAddr;

/// The MAC of the next hop towards `addr` out of `ifindex`, or the verdict for a frame that
/// cannot be sent yet.
#[inline]
fn next_hop<A: Family>(env: &Env<'_>, ifindex: u32, addr: A) -> Result<[u8; 6], Verdict> {
    A::next_hop_mac(env.neighbours, ifindex, addr)
}

/// The verdict for a frame whose next hop `next_hop` on `ifindex` has no usable MAC: a drop
/// when no route covers the destination, else a request to resolve it.
#[inline]
pub(super) fn miss(ifindex: u32, next_hop: IpAddr, no_route: bool) -> Verdict {
    if no_route {
        Verdict::Drop(DropReason::NoRoute)
    } else {
        Verdict::Unresolved {
            ifindex,
            addr: next_hop,
        }
    }
}

/// Sets the frame's Ethernet addresses.
#[inline]
pub(super) fn address(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    let mut ethernet = EthernetFrame::new_unchecked(frame);
    ethernet.set_src_addr(EthernetAddress(src));
    ethernet.set_dst_addr(EthernetAddress(dst));
}
