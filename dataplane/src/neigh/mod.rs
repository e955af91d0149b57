//! Next-hop MAC resolution from the kernel's routing and neighbour tables.
//!
//! There is no static MAC configuration anywhere in xvs: the destination MAC of every frame the
//! director sends comes from the kernel, read over rtnetlink.
//!
//! # Contract
//!
//! - [`NeighbourTable`] is an immutable snapshot of the IPv4 routes of the main table and the
//!   IPv4 neighbour entries of the interfaces the director uses. Workers only read it:
//!   [`NeighbourTable::next_hop_mac`] is allocation-free, lock-free and makes no syscall.
//! - A lookup does what the kernel's forwarding would: longest-prefix match over the routes of
//!   the *outgoing* interface (a connected route makes the destination itself the next hop, a
//!   route with a gateway makes the gateway the next hop), then the neighbour entry of that
//!   next hop on that interface. Only entries in a usable state count (REACHABLE, STALE,
//!   DELAY, PROBE, PERMANENT, NOARP) and only with a non-zero MAC; INCOMPLETE, FAILED and NONE
//!   never do.
//! - On a miss the worker gets a [`NextHopMiss`] naming the address to resolve and pushes it to
//!   the neighbour thread, which calls [`Netlink::resolve`] and later publishes a fresh
//!   [`Netlink::dump`].
//! - [`Netlink`] is a synchronous rtnetlink client (netlink-sys socket, messages of
//!   netlink-packet-route, no async runtime). One per thread that needs it, never on a worker.
//!   Every request that changes state asks for an ACK, and a kernel NACK comes back as an
//!   [`std::io::Error`] carrying the errno of the ACK (`raw_os_error()`).
//! - [`Netlink::resolve`] and [`Netlink::manage`] never clobber an entry they should not touch:
//!   PERMANENT/NOARP entries of an operator and externally learnt entries are left alone, and an
//!   existing entry's MAC is never changed (the private `netlink` submodule documents how
//!   NTF_USE and NTF_MANAGED are sent and why).

mod netlink;
#[cfg(test)]
mod root_tests;

pub use netlink::{Link, Netlink};

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;

/// Neighbour (NUD_*) state bits as the kernel reports them in [`Neighbour::state`].
pub mod nud {
    pub use libc::{
        NUD_DELAY as DELAY, NUD_FAILED as FAILED, NUD_INCOMPLETE as INCOMPLETE, NUD_NOARP as NOARP,
        NUD_NONE as NONE, NUD_PERMANENT as PERMANENT, NUD_PROBE as PROBE,
        NUD_REACHABLE as REACHABLE, NUD_STALE as STALE,
    };
    /// States whose link-layer address may be used to send a frame.
    pub const USABLE: u16 = REACHABLE | STALE | DELAY | PROBE | PERMANENT | NOARP;
}

/// An IPv4 route of the main table, reduced to what next-hop selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Outgoing interface.
    pub ifindex: u32,
    /// Destination network (host bits are ignored).
    pub dst: Ipv4Addr,
    /// Prefix length, 0..=32 (0 is the default route); a longer one makes the route ignored.
    pub prefix_len: u8,
    /// Next hop; `None` (or 0.0.0.0) for a connected route, where the destination itself is
    /// the next hop.
    pub gateway: Option<Ipv4Addr>,
}

/// An IPv4 neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: Ipv4Addr,
    /// Link-layer address; all zeros when the kernel has none (never used for sending).
    pub mac: [u8; 6],
    /// NUD_* state bits, see [`nud`].
    pub state: u16,
}

/// No usable MAC for a destination: `next_hop` is the address whose resolution would fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHopMiss {
    pub ifindex: u32,
    /// The route's gateway, or the destination itself (connected route or no route).
    pub next_hop: Ipv4Addr,
    /// No route of the interface covers the destination (`next_hop` is then the destination;
    /// resolving it only helps if it is on-link).
    pub no_route: bool,
}

/// A route compiled for matching: `dst & mask == net`.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    net: u32,
    mask: u32,
    /// 0 for a connected route.
    gateway: u32,
}

/// Routes of one interface, longest prefix first.
#[derive(Debug, Clone)]
struct IfRoutes {
    ifindex: u32,
    routes: Box<[Prefix]>,
}

/// An immutable view of routes and neighbours for the interfaces the director uses.
#[derive(Debug, Clone, Default)]
pub struct NeighbourTable {
    /// A handful of interfaces: a linear scan beats hashing.
    ifaces: Vec<IfRoutes>,
    /// Usable neighbours keyed by [`key`].
    neighbours: HashMap<u64, [u8; 6], SeededState>,
}

impl NeighbourTable {
    /// Builds a table. Among routes of the same interface and prefix length the first one in
    /// `routes` wins (pass them in kernel preference order, lowest metric first; [`Netlink`]
    /// does). Neighbours in an unusable state or with an all-zero MAC are dropped; of duplicate
    /// entries the first one is kept.
    pub fn new(routes: Vec<Route>, neighbours: Vec<Neighbour>) -> Self {
        let mut per_if: Vec<(u32, Vec<(u8, Prefix)>)> = Vec::new();
        for r in routes.into_iter().filter(|r| r.prefix_len <= 32) {
            let mask = prefix_mask(r.prefix_len);
            let p = Prefix {
                net: u32::from(r.dst) & mask,
                mask,
                gateway: r.gateway.map_or(0, u32::from),
            };
            match per_if.iter_mut().find(|(i, _)| *i == r.ifindex) {
                Some((_, v)) => v.push((r.prefix_len, p)),
                None => per_if.push((r.ifindex, vec![(r.prefix_len, p)])),
            }
        }
        let ifaces = per_if
            .into_iter()
            .map(|(ifindex, mut v)| {
                // Stable: keeps the caller's preference among equal prefix lengths.
                v.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
                IfRoutes {
                    ifindex,
                    routes: v.into_iter().map(|(_, p)| p).collect(),
                }
            })
            .collect();
        let mut map = HashMap::with_capacity_and_hasher(neighbours.len(), SeededState::default());
        for n in neighbours {
            if n.state & nud::USABLE != 0 && n.mac != [0; 6] {
                map.entry(key(n.ifindex, n.addr)).or_insert(n.mac);
            }
        }
        NeighbourTable {
            ifaces,
            neighbours: map,
        }
    }

    /// The MAC to send a frame for `dst` out of interface `ifindex`: the usable neighbour entry
    /// of its [`NeighbourTable::next_hop`]. `Err` names the address to resolve.
    /// Allocation-free; no syscall.
    #[inline]
    pub fn next_hop_mac(&self, ifindex: u32, dst: Ipv4Addr) -> Result<[u8; 6], NextHopMiss> {
        let next_hop = self.next_hop(ifindex, dst)?;
        self.mac(ifindex, next_hop).ok_or(NextHopMiss {
            ifindex,
            next_hop,
            no_route: false,
        })
    }

    /// The next hop of a frame for `dst` out of interface `ifindex`: longest-prefix match over
    /// that interface's routes (a connected route means `dst` itself, a route with a gateway
    /// the gateway). `Err` when no route of the interface covers `dst`.
    #[inline]
    pub fn next_hop(&self, ifindex: u32, dst: Ipv4Addr) -> Result<Ipv4Addr, NextHopMiss> {
        let d = u32::from(dst);
        let route = self
            .ifaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .and_then(|i| i.routes.iter().find(|p| d & p.mask == p.net));
        let Some(route) = route else {
            return Err(NextHopMiss {
                ifindex,
                next_hop: dst,
                no_route: true,
            });
        };
        Ok(if route.gateway == 0 {
            dst
        } else {
            Ipv4Addr::from(route.gateway)
        })
    }

    /// Every usable neighbour: (ifindex, address, MAC).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Ipv4Addr, [u8; 6])> + '_ {
        self.neighbours
            .iter()
            .map(|(&k, &mac)| ((k >> 32) as u32, Ipv4Addr::from(k as u32), mac))
    }

    /// The usable MAC of neighbour `addr` on `ifindex`, without any routing.
    #[inline]
    pub fn mac(&self, ifindex: u32, addr: Ipv4Addr) -> Option<[u8; 6]> {
        self.neighbours.get(&key(ifindex, addr)).copied()
    }

    /// Number of usable neighbour entries.
    pub fn len(&self) -> usize {
        self.neighbours.len()
    }

    /// True when the table holds no usable neighbour.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty()
    }
}

fn prefix_mask(len: u8) -> u32 {
    match len {
        0 => 0,
        l => u32::MAX << (32 - u32::from(l.min(32))),
    }
}

#[inline]
fn key(ifindex: u32, addr: Ipv4Addr) -> u64 {
    (u64::from(ifindex) << 32) | u64::from(u32::from(addr))
}

/// Hasher state for the neighbour map: one multiply-xorshift mix of a single `u64` key with a
/// per-table random seed (SipHash would cost more than the rest of the lookup; the seed keeps
/// collisions unpredictable from outside).
#[derive(Debug, Clone, Copy)]
struct SeededState {
    seed: u64,
}

impl Default for SeededState {
    fn default() -> Self {
        // std's RandomState carries random keys; hashing nothing exposes a value derived
        // from them.
        SeededState {
            seed: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        }
    }
}

impl BuildHasher for SeededState {
    type Hasher = U64Hasher;
    fn build_hasher(&self) -> U64Hasher {
        U64Hasher(self.seed)
    }
}

/// Hashes exactly what it is given through `write_u64` (the only path used for `u64` keys).
#[derive(Debug, Clone, Copy)]
struct U64Hasher(u64);

impl Hasher for U64Hasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        // murmur3 fmix64 of seed ^ x: every input bit reaches the high and low bits.
        let mut h = self.0 ^ x;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        self.0 = h;
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn route(ifindex: u32, net: &str, len: u8, gw: Option<&str>) -> Route {
        Route {
            ifindex,
            dst: ip(net),
            prefix_len: len,
            gateway: gw.map(ip),
        }
    }
    fn neigh(ifindex: u32, addr: &str, mac: [u8; 6], state: u16) -> Neighbour {
        Neighbour {
            ifindex,
            addr: ip(addr),
            mac,
            state,
        }
    }
    fn miss(ifindex: u32, next_hop: &str, no_route: bool) -> Result<[u8; 6], NextHopMiss> {
        Err(NextHopMiss {
            ifindex,
            next_hop: ip(next_hop),
            no_route,
        })
    }

    #[test]
    fn connected_route_uses_destination() {
        let t = NeighbourTable::new(
            vec![route(2, "198.19.0.0", 24, None)],
            vec![neigh(2, "198.19.0.148", A, nud::REACHABLE)],
        );
        assert_eq!(t.next_hop_mac(2, ip("198.19.0.148")), Ok(A));
        assert_eq!(
            t.next_hop_mac(2, ip("198.19.0.137")),
            miss(2, "198.19.0.137", false)
        );
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
    }

    #[test]
    fn gateway_route_uses_gateway() {
        let t = NeighbourTable::new(
            vec![
                route(2, "198.18.0.0", 24, None),
                route(2, "198.19.7.0", 24, Some("198.18.0.1")),
            ],
            vec![neigh(2, "198.18.0.1", B, nud::STALE)],
        );
        assert_eq!(t.next_hop_mac(2, ip("198.19.7.9")), Ok(B));
        let t = NeighbourTable::new(vec![route(2, "198.19.7.0", 24, Some("198.18.0.1"))], vec![]);
        assert_eq!(
            t.next_hop_mac(2, ip("198.19.7.9")),
            miss(2, "198.18.0.1", false)
        );
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let routes = vec![
            route(2, "0.0.0.0", 0, Some("198.18.0.1")),
            route(2, "198.19.7.128", 25, Some("198.18.0.3")),
            route(2, "198.19.0.0", 16, Some("198.18.0.2")),
            route(2, "198.18.0.0", 24, None),
        ];
        let neighbours = vec![
            neigh(2, "198.18.0.1", A, nud::REACHABLE),
            neigh(2, "198.18.0.2", B, nud::DELAY),
            neigh(2, "198.18.0.3", C, nud::PROBE),
        ];
        for rot in 0..routes.len() {
            let mut r = routes.clone();
            r.rotate_left(rot);
            let t = NeighbourTable::new(r, neighbours.clone());
            assert_eq!(t.next_hop_mac(2, ip("198.19.7.200")), Ok(C));
            assert_eq!(t.next_hop_mac(2, ip("198.19.7.100")), Ok(B));
            assert_eq!(t.next_hop_mac(2, ip("198.19.200.1")), Ok(B));
            assert_eq!(t.next_hop_mac(2, ip("203.0.113.1")), Ok(A));
            assert_eq!(t.next_hop_mac(2, ip("198.18.0.2")), Ok(B));
        }
    }

    #[test]
    fn default_route_and_host_bits_ignored() {
        // dst with host bits set still denotes its network.
        let t = NeighbourTable::new(
            vec![
                route(3, "1.2.3.4", 0, Some("198.18.0.1")),
                route(3, "198.18.0.77", 24, None),
            ],
            vec![
                neigh(3, "198.18.0.1", A, nud::PERMANENT),
                neigh(3, "198.18.0.5", B, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac(3, ip("8.8.8.8")), Ok(A));
        assert_eq!(t.next_hop_mac(3, ip("198.18.0.5")), Ok(B));
    }

    #[test]
    fn equal_prefixes_keep_given_preference() {
        let t = NeighbourTable::new(
            vec![
                route(2, "0.0.0.0", 0, Some("198.18.0.1")),
                route(2, "0.0.0.0", 0, Some("198.18.0.2")),
            ],
            vec![
                neigh(2, "198.18.0.1", A, nud::REACHABLE),
                neigh(2, "198.18.0.2", B, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac(2, ip("8.8.8.8")), Ok(A));
    }

    #[test]
    fn unusable_states_and_zero_mac_ignored() {
        let routes = vec![route(2, "198.18.0.0", 24, None)];
        for state in [nud::INCOMPLETE, nud::FAILED, nud::NONE] {
            let t = NeighbourTable::new(routes.clone(), vec![neigh(2, "198.18.0.9", A, state)]);
            assert_eq!(
                t.next_hop_mac(2, ip("198.18.0.9")),
                miss(2, "198.18.0.9", false)
            );
            assert!(t.is_empty());
        }
        for state in [
            nud::REACHABLE,
            nud::STALE,
            nud::DELAY,
            nud::PROBE,
            nud::PERMANENT,
            nud::NOARP,
        ] {
            let t = NeighbourTable::new(routes.clone(), vec![neigh(2, "198.18.0.9", A, state)]);
            assert_eq!(
                t.next_hop_mac(2, ip("198.18.0.9")),
                Ok(A),
                "state {state:#x}"
            );
        }
        // NOARP without a link-layer address (reported as zeros) is not usable.
        let t = NeighbourTable::new(routes, vec![neigh(2, "198.18.0.9", [0; 6], nud::NOARP)]);
        assert_eq!(
            t.next_hop_mac(2, ip("198.18.0.9")),
            miss(2, "198.18.0.9", false)
        );
    }

    #[test]
    fn other_interface_ignored() {
        let t = NeighbourTable::new(
            vec![
                route(2, "198.18.0.0", 24, None),
                route(3, "198.19.0.0", 24, None),
            ],
            vec![
                neigh(3, "198.18.0.9", A, nud::REACHABLE),
                neigh(2, "198.19.0.9", B, nud::REACHABLE),
            ],
        );
        // Route on 2 but the neighbour is on 3.
        assert_eq!(
            t.next_hop_mac(2, ip("198.18.0.9")),
            miss(2, "198.18.0.9", false)
        );
        // Interface 2 has no route for 198.19/24 even though 3 has, and a neighbour on 2 exists.
        assert_eq!(
            t.next_hop_mac(2, ip("198.19.0.9")),
            miss(2, "198.19.0.9", true)
        );
        // Unknown interface.
        assert_eq!(
            t.next_hop_mac(9, ip("198.18.0.9")),
            miss(9, "198.18.0.9", true)
        );
    }

    #[test]
    fn miss_without_route() {
        let t = NeighbourTable::new(vec![route(2, "198.18.0.0", 24, None)], vec![]);
        assert_eq!(
            t.next_hop_mac(2, ip("203.0.113.5")),
            miss(2, "203.0.113.5", true)
        );
        let t = NeighbourTable::default();
        assert_eq!(
            t.next_hop_mac(2, ip("198.18.0.1")),
            miss(2, "198.18.0.1", true)
        );
        assert!(t.is_empty());
    }

    #[test]
    fn host_route_and_invalid_prefix() {
        let t = NeighbourTable::new(
            vec![
                route(2, "198.18.0.0", 24, None),
                route(2, "198.18.0.50", 32, Some("198.18.0.1")),
                route(2, "198.18.0.60", 33, Some("198.18.0.1")),
            ],
            vec![
                neigh(2, "198.18.0.1", A, nud::REACHABLE),
                neigh(2, "198.18.0.50", B, nud::REACHABLE),
                neigh(2, "198.18.0.60", C, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac(2, ip("198.18.0.50")), Ok(A));
        assert_eq!(t.next_hop_mac(2, ip("198.18.0.60")), Ok(C));
    }

    #[test]
    fn duplicate_neighbour_first_kept() {
        let t = NeighbourTable::new(
            vec![route(2, "198.18.0.0", 24, None)],
            vec![
                neigh(2, "198.18.0.9", A, nud::REACHABLE),
                neigh(2, "198.18.0.9", B, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac(2, ip("198.18.0.9")), Ok(A));
        assert_eq!(t.len(), 1);
        assert_eq!(t.mac(2, ip("198.18.0.9")), Some(A));
        assert_eq!(t.mac(3, ip("198.18.0.9")), None);
    }
}
