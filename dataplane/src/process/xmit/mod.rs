//! The transmitters: one per forwarding method, as IPVS's ip_vs_xmit.c has one per method.
//! Each takes a frame of a known connection (or an ICMP error about one) whose lookup, state
//! and counters [`super`] has handled, makes it what the method sends, addresses it to its
//! next hop and names the interface it leaves by.
//!
//! - [`nat`]: masquerading (`-m`), both directions.
//! - [`dr`]: direct routing (`-g`), requests only.
//! - [`tun`]: tunnelling (`-i`), requests only.
//! - [`fullnat`]: FullNAT (`--fullnat`), both directions, both endpoints.

pub(super) mod dr;
pub(super) mod fullnat;
pub(super) mod nat;
pub(super) mod tun;

use super::{Env, Verdict};
use crate::stats::DropReason;
use crate::wire::{EthernetAddress, EthernetFrame};
use std::net::Ipv4Addr;

/// The MAC of the next hop towards `addr` out of `ifindex`, or the verdict for a frame that
/// cannot be sent yet.
#[inline]
fn next_hop(env: &Env<'_>, ifindex: u32, addr: Ipv4Addr) -> Result<[u8; 6], Verdict> {
    env.neighbours.next_hop_mac(ifindex, addr).map_err(|miss| {
        if miss.no_route {
            Verdict::Drop(DropReason::NoRoute)
        } else {
            Verdict::Unresolved {
                ifindex: miss.ifindex,
                addr: miss.next_hop,
            }
        }
    })
}

/// Sets the frame's Ethernet addresses.
#[inline]
fn address(frame: &mut [u8], src: [u8; 6], dst: [u8; 6]) {
    let mut ethernet = EthernetFrame::new_unchecked(frame);
    ethernet.set_src_addr(EthernetAddress(src));
    ethernet.set_dst_addr(EthernetAddress(dst));
}
