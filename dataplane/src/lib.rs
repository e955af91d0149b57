//! xvs-dataplane: the packet path of the director.
//!
//! - [`wire`]: zero-copy checked views of Ethernet, ARP, IPv4, TCP, UDP and ICMP.
//! - [`checksum`]: Internet checksum and RFC 1624 incremental updates.
//! - [`nat`], [`nat6`], [`encap`]: the byte rewrites of masquerading (IPv4, IPv6) and of tunnels.
//! - [`fullnat`]: FullNAT's per-worker local ports.
//! - [`snapshot`]: the immutable configuration a worker reads (services, real servers).
//! - [`conntrack`]: per-worker connection tables with IPVS's TCP state machine.
//! - [`family`]: what those tables ask of an address family (IPv4, IPv6).
//! - [`persist`]: persistence templates shared lock-free by all workers.
//! - [`process`]: the pure function `process(frame, snapshot, shard, now) -> Verdict`, and its
//!   IPv6 twin `process6` over a table of IPv6 connections.
//! - [`stats`]: per-worker counters, written by one worker and read lock-free by control.
//! - [`neigh`]: next-hop MAC resolution from the kernel's routing and neighbour tables.
//! - [`xsk`]: AF_XDP sockets and our XDP program (with `unsafe`; so do `conntrack::hw`'s
//!   huge-page memory, prefetch and SIMD compare, and the netlink neighbour reader).
//! - [`fastpath`]: the XDP fast path's maps: workers install decided flows, read back
//!   last-seen stamps and counters (its map syscalls are `unsafe` too).
//! - [`resolver`]: the thread that keeps next-hop MACs fresh for the workers.
//! - [`worker`]: the pinned poll-mode loop tying them together.
//! - [`capture`]: the tap that copies frames for `xvsadm capture` while one runs.
//! - [`publish`]: RCU-style publication of snapshots to workers.

pub mod capture;
pub mod checksum;
pub mod conntrack;
pub mod encap;
pub mod family;
pub mod fastpath;
pub mod fullnat;
pub mod nat;
pub mod nat6;
pub mod neigh;
pub mod persist;
pub mod process;
pub mod publish;
pub mod resolver;
pub mod snapshot;
pub mod stats;
pub mod wire;
pub mod worker;
pub mod xsk;
