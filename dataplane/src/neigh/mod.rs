//! Next-hop MAC resolution from the kernel's routing and neighbour tables.
//!
//! There is no static MAC configuration anywhere in xvs: the destination MAC of every frame the
//! director sends comes from the kernel, read over rtnetlink. Address resolution itself (ARP
//! for IPv4, Neighbour Discovery for IPv6) stays with the kernel.
//!
//! # Contract
//!
//! - [`NeighbourTable`] is an immutable snapshot of the unicast routes of the main table and
//!   the neighbour entries of the interfaces the director uses, for both address families:
//!   IPv4 ([`Route`], [`Neighbour`]) and IPv6 ([`Route6`], [`Neighbour6`]). Each family has maps
//!   of its own, so an IPv4 lookup costs what it did before IPv6 existed. [`Netlink::dump`]
//!   reads both families into one table: one publish hands workers a consistent pair.
//! - Workers only read it: [`NeighbourTable::next_hop_mac`] (IPv4) and
//!   [`NeighbourTable::next_hop_mac_v6`] are allocation-free, lock-free and make no syscall.
//! - A lookup does what the kernel's forwarding would, with the same rules in both families:
//!   longest-prefix match over the routes of the *outgoing* interface (a connected route makes
//!   the destination itself the next hop, a route with a gateway makes the gateway the next
//!   hop), then the neighbour entry of that next hop on that interface. Only entries in a
//!   usable state count (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP) and only with a
//!   non-zero MAC; INCOMPLETE, FAILED and NONE never do.
//! - Neighbours are keyed by (interface, address) in both families. IPv6 gateways are usually
//!   link-local (fe80::/10, the routers of router advertisements), meaningful only together
//!   with the interface: the same link-local address on two interfaces is two entries, and the
//!   fe80::/64 connected route of an interface (kept like every unicast route of the main
//!   table) makes a link-local destination its own next hop there.
//! - On a miss the worker gets a [`NextHopMiss`] (IPv4) or [`NextHopMiss6`] naming the address
//!   to resolve and pushes it to the neighbour thread, which calls [`Netlink::resolve`] and
//!   later publishes a fresh table ([`Netlink::dump`], or [`Netlink::tables`] to compare two
//!   reads before building one).
//! - [`Netlink`] is a synchronous rtnetlink client (netlink-sys socket, messages of
//!   netlink-packet-route, no async runtime). One per thread that needs it, never on a worker.
//!   Every request that changes state asks for an ACK, and a kernel NACK comes back as an
//!   [`std::io::Error`] carrying the errno of the ACK (`raw_os_error()`).
//! - [`Netlink::resolve`] and [`Netlink::manage`] take an address of either family and never
//!   clobber an entry they should not touch: PERMANENT/NOARP entries of an operator and
//!   externally learnt entries are left alone, and an existing entry's MAC is never changed
//!   (the private `netlink` submodule documents how NTF_USE and NTF_MANAGED are sent and why).

mod netlink;
#[cfg(test)]
mod root_tests;

pub use netlink::{Link, Netlink};

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Neighbour (NUD_*) state bits as the kernel reports them in [`Neighbour::state`] and
/// [`Neighbour6::state`] (the same for ARP and Neighbour Discovery).
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

/// An IPv6 route of the main table, reduced to what next-hop selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    /// Outgoing interface.
    pub ifindex: u32,
    /// Destination network (host bits are ignored).
    pub dst: Ipv6Addr,
    /// Prefix length, 0..=128 (0 is the default route); a longer one makes the route ignored.
    pub prefix_len: u8,
    /// Next hop, often link-local (fe80::/10); `None` (or ::) for a connected route, where
    /// the destination itself is the next hop.
    pub gateway: Option<Ipv6Addr>,
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

/// An IPv6 neighbour entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour6 {
    pub ifindex: u32,
    pub addr: Ipv6Addr,
    /// Link-layer address; all zeros when the kernel has none (never used for sending).
    pub mac: [u8; 6],
    /// NUD_* state bits, see [`nud`].
    pub state: u16,
}

/// No usable MAC for an IPv4 destination: `next_hop` is the address whose resolution would
/// fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHopMiss {
    pub ifindex: u32,
    /// The route's gateway, or the destination itself (connected route or no route).
    pub next_hop: Ipv4Addr,
    /// No route of the interface covers the destination (`next_hop` is then the destination;
    /// resolving it only helps if it is on-link).
    pub no_route: bool,
}

/// No usable MAC for an IPv6 destination: `next_hop` is the address whose resolution would
/// fix it (on `ifindex`: a link-local next hop means nothing without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHopMiss6 {
    pub ifindex: u32,
    /// The route's gateway, or the destination itself (connected route or no route).
    pub next_hop: Ipv6Addr,
    /// No route of the interface covers the destination (`next_hop` is then the destination;
    /// resolving it only helps if it is on-link).
    pub no_route: bool,
}

/// Routes and neighbours of both families as read from the kernel, before they become a
/// [`NeighbourTable`] (`NeighbourTable::from`). Two reads compare equal when nothing that
/// matters to a table changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelTables {
    /// In kernel preference order (lowest metric first), see [`NeighbourTable::new`].
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    /// In kernel preference order (lowest metric first).
    pub routes6: Vec<Route6>,
    pub neighbours6: Vec<Neighbour6>,
}

/// Address bits of one family for prefix matching: `u32` for IPv4, `u128` for IPv6 (0, the
/// unspecified address, stands for "no gateway").
trait Bits: Copy + Eq + std::ops::BitAnd<Output = Self> {
    /// Address length in bits: the longest valid prefix.
    const WIDTH: u8;
    /// The netmask of prefix length `len` (at most [`Bits::WIDTH`]).
    fn mask(len: u8) -> Self;
}

impl Bits for u32 {
    const WIDTH: u8 = 32;
    fn mask(len: u8) -> u32 {
        u32::MAX
            .checked_shl(u32::from(32 - len.min(32)))
            .unwrap_or(0)
    }
}

impl Bits for u128 {
    const WIDTH: u8 = 128;
    fn mask(len: u8) -> u128 {
        u128::MAX
            .checked_shl(u32::from(128 - len.min(128)))
            .unwrap_or(0)
    }
}

/// A route compiled for matching: `dst & mask == net`.
#[derive(Debug, Clone, Copy)]
struct Prefix<B> {
    net: B,
    mask: B,
    /// 0 (0.0.0.0, ::) for a connected route.
    gateway: B,
}

/// Routes of one interface, longest prefix first.
#[derive(Debug, Clone)]
struct IfRoutes<B> {
    ifindex: u32,
    routes: Box<[Prefix<B>]>,
}

/// Groups `(ifindex, dst, prefix_len, gateway)` routes per interface, longest prefix first;
/// among equal prefix lengths the earlier route wins. Prefix lengths over the family's width
/// are dropped.
fn compile<B: Bits>(routes: impl IntoIterator<Item = (u32, B, u8, B)>) -> Vec<IfRoutes<B>> {
    let mut all: Vec<(u32, u8, Prefix<B>)> = routes
        .into_iter()
        .filter(|&(_, _, len, _)| len <= B::WIDTH)
        .map(|(ifindex, dst, len, gateway)| {
            let mask = B::mask(len);
            let p = Prefix {
                net: dst & mask,
                mask,
                gateway,
            };
            (ifindex, len, p)
        })
        .collect();
    // Stable: keeps the caller's preference among equal prefix lengths.
    all.sort_by_key(|&(ifindex, len, _)| (ifindex, std::cmp::Reverse(len)));
    all.chunk_by(|x, y| x.0 == y.0)
        .map(|routes| IfRoutes {
            ifindex: routes[0].0,
            routes: routes.iter().map(|&(_, _, p)| p).collect(),
        })
        .collect()
}

/// The longest prefix among the routes of interface `ifindex` that covers `dst`.
#[inline]
fn longest_match<B: Bits>(ifaces: &[IfRoutes<B>], ifindex: u32, dst: B) -> Option<&Prefix<B>> {
    ifaces
        .iter()
        .find(|i| i.ifindex == ifindex)
        .and_then(|i| i.routes.iter().find(|p| dst & p.mask == p.net))
}

/// The usable `(key, mac, state)` entries as a map; of duplicate keys the first one is kept.
fn usable<K: Hash + Eq>(
    entries: impl ExactSizeIterator<Item = (K, [u8; 6], u16)>,
) -> HashMap<K, [u8; 6], SeededState> {
    let mut map = HashMap::with_capacity_and_hasher(entries.len(), SeededState::default());
    for (k, mac, state) in entries {
        if state & nud::USABLE != 0 && mac != [0; 6] {
            map.entry(k).or_insert(mac);
        }
    }
    map
}

/// An immutable view of routes and neighbours of both families for the interfaces the
/// director uses.
#[derive(Debug, Clone, Default)]
pub struct NeighbourTable {
    /// A handful of interfaces: a linear scan beats hashing.
    ifaces: Vec<IfRoutes<u32>>,
    /// Usable IPv4 neighbours keyed by [`key`].
    neighbours: HashMap<u64, [u8; 6], SeededState>,
    /// IPv6 routes per interface, apart so that IPv4 lookups never step over them.
    ifaces6: Vec<IfRoutes<u128>>,
    /// Usable IPv6 neighbours.
    neighbours6: HashMap<Key6, [u8; 6], SeededState>,
}

impl From<KernelTables> for NeighbourTable {
    /// Builds a dual-stack table, with the rules of [`NeighbourTable::new`] in each family.
    fn from(t: KernelTables) -> Self {
        let ifaces = compile(t.routes.into_iter().map(|r| {
            let gateway = r.gateway.map_or(0, u32::from);
            (r.ifindex, u32::from(r.dst), r.prefix_len, gateway)
        }));
        let ifaces6 = compile(t.routes6.into_iter().map(|r| {
            let gateway = r.gateway.map_or(0, u128::from);
            (r.ifindex, u128::from(r.dst), r.prefix_len, gateway)
        }));
        let neighbours = usable(
            t.neighbours
                .into_iter()
                .map(|n| (key(n.ifindex, n.addr), n.mac, n.state)),
        );
        let neighbours6 = usable(
            t.neighbours6
                .into_iter()
                .map(|n| (Key6::new(n.ifindex, n.addr), n.mac, n.state)),
        );
        NeighbourTable {
            ifaces,
            neighbours,
            ifaces6,
            neighbours6,
        }
    }
}

impl NeighbourTable {
    /// Builds an IPv4-only table (`NeighbourTable::from(KernelTables)` builds both families).
    /// Among routes of the same interface and prefix length the first one in `routes` wins
    /// (pass them in kernel preference order, lowest metric first; [`Netlink`] does).
    /// Neighbours in an unusable state or with an all-zero MAC are dropped; of duplicate
    /// entries the first one is kept.
    pub fn new(routes: Vec<Route>, neighbours: Vec<Neighbour>) -> Self {
        NeighbourTable::from(KernelTables {
            routes,
            neighbours,
            ..KernelTables::default()
        })
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
        match longest_match(&self.ifaces, ifindex, u32::from(dst)) {
            None => Err(NextHopMiss {
                ifindex,
                next_hop: dst,
                no_route: true,
            }),
            Some(route) if route.gateway == 0 => Ok(dst),
            Some(route) => Ok(Ipv4Addr::from(route.gateway)),
        }
    }

    /// The IPv6 twin of [`NeighbourTable::next_hop_mac`]: the usable neighbour entry of
    /// [`NeighbourTable::next_hop_v6`] on `ifindex`. Allocation-free; no syscall.
    #[inline]
    pub fn next_hop_mac_v6(&self, ifindex: u32, dst: Ipv6Addr) -> Result<[u8; 6], NextHopMiss6> {
        let next_hop = self.next_hop_v6(ifindex, dst)?;
        self.mac_v6(ifindex, next_hop).ok_or(NextHopMiss6 {
            ifindex,
            next_hop,
            no_route: false,
        })
    }

    /// The IPv6 twin of [`NeighbourTable::next_hop`]: longest-prefix match over the IPv6 routes
    /// of `ifindex`. The next hop is meant for `ifindex` (a link-local gateway means nothing
    /// elsewhere).
    #[inline]
    pub fn next_hop_v6(&self, ifindex: u32, dst: Ipv6Addr) -> Result<Ipv6Addr, NextHopMiss6> {
        match longest_match(&self.ifaces6, ifindex, u128::from(dst)) {
            None => Err(NextHopMiss6 {
                ifindex,
                next_hop: dst,
                no_route: true,
            }),
            Some(route) if route.gateway == 0 => Ok(dst),
            Some(route) => Ok(Ipv6Addr::from(route.gateway)),
        }
    }

    /// Every usable IPv4 neighbour: (ifindex, address, MAC).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Ipv4Addr, [u8; 6])> + '_ {
        self.neighbours
            .iter()
            .map(|(&k, &mac)| ((k >> 32) as u32, Ipv4Addr::from(k as u32), mac))
    }

    /// Every usable IPv6 neighbour: (ifindex, address, MAC).
    pub fn iter_v6(&self) -> impl Iterator<Item = (u32, Ipv6Addr, [u8; 6])> + '_ {
        self.neighbours6
            .iter()
            .map(|(k, &mac)| (k.ifindex, Ipv6Addr::from(k.addr), mac))
    }

    /// The usable MAC of IPv4 neighbour `addr` on `ifindex`, without any routing.
    #[inline]
    pub fn mac(&self, ifindex: u32, addr: Ipv4Addr) -> Option<[u8; 6]> {
        self.neighbours.get(&key(ifindex, addr)).copied()
    }

    /// The usable MAC of IPv6 neighbour `addr` on `ifindex`, without any routing.
    #[inline]
    pub fn mac_v6(&self, ifindex: u32, addr: Ipv6Addr) -> Option<[u8; 6]> {
        self.neighbours6.get(&Key6::new(ifindex, addr)).copied()
    }

    /// Number of usable neighbour entries, both families.
    pub fn len(&self) -> usize {
        self.neighbours.len() + self.neighbours6.len()
    }

    /// True when the table holds no usable neighbour of either family.
    pub fn is_empty(&self) -> bool {
        self.neighbours.is_empty() && self.neighbours6.is_empty()
    }
}

#[inline]
fn key(ifindex: u32, addr: Ipv4Addr) -> u64 {
    (u64::from(ifindex) << 32) | u64::from(u32::from(addr))
}

/// The key of an IPv6 neighbour: interface and address (a link-local address is only unique
/// per interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key6 {
    addr: u128,
    ifindex: u32,
}

impl Key6 {
    #[inline]
    fn new(ifindex: u32, addr: Ipv6Addr) -> Self {
        Key6 {
            addr: u128::from(addr),
            ifindex,
        }
    }
}

impl Hash for Key6 {
    /// Three `write_u64` calls, the only path [`U64Hasher`] mixes well.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.addr as u64);
        state.write_u64((self.addr >> 64) as u64);
        state.write_u64(u64::from(self.ifindex));
    }
}

/// Hasher state for the neighbour maps: one multiply-xorshift mix per `u64` of the key (one for
/// an IPv4 key, three for an IPv6 one) with a per-map random seed (SipHash would cost more than
/// the rest of the lookup; the seed keeps collisions unpredictable from outside).
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

/// Hashes exactly what it is given through `write_u64` (the only path the keys use: `u64`
/// keys directly, [`Key6`] through its `Hash`), each call mixing into the previous state.
#[derive(Debug, Clone, Copy)]
struct U64Hasher(u64);

impl Hasher for U64Hasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        // murmur3 fmix64 of state ^ x: every input bit reaches the high and low bits.
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

    // IPv6: the same rules, in maps of their own.

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    fn route6(ifindex: u32, net: &str, len: u8, gw: Option<&str>) -> Route6 {
        Route6 {
            ifindex,
            dst: ip6(net),
            prefix_len: len,
            gateway: gw.map(ip6),
        }
    }
    fn neigh6(ifindex: u32, addr: &str, mac: [u8; 6], state: u16) -> Neighbour6 {
        Neighbour6 {
            ifindex,
            addr: ip6(addr),
            mac,
            state,
        }
    }
    fn miss6(ifindex: u32, next_hop: &str, no_route: bool) -> Result<[u8; 6], NextHopMiss6> {
        Err(NextHopMiss6 {
            ifindex,
            next_hop: ip6(next_hop),
            no_route,
        })
    }
    fn table6(routes6: Vec<Route6>, neighbours6: Vec<Neighbour6>) -> NeighbourTable {
        NeighbourTable::from(KernelTables {
            routes6,
            neighbours6,
            ..KernelTables::default()
        })
    }

    #[test]
    fn v6_connected_route_uses_destination() {
        let t = table6(
            vec![route6(2, "2001:2:0:1::", 64, None)],
            vec![neigh6(2, "2001:2:0:1::148", A, nud::REACHABLE)],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::148")), Ok(A));
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("2001:2:0:1::137")),
            miss6(2, "2001:2:0:1::137", false)
        );
        assert_eq!(t.len(), 1);
        assert!(!t.is_empty());
    }

    #[test]
    fn v6_gateway_route_uses_gateway() {
        let t = table6(
            vec![
                route6(2, "2001:2:0:1::", 64, None),
                route6(2, "2001:2:7::", 48, Some("2001:2:0:1::1")),
            ],
            vec![neigh6(2, "2001:2:0:1::1", B, nud::STALE)],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:7::9")), Ok(B));
        assert_eq!(
            t.next_hop_v6(2, ip6("2001:2:7::9")),
            Ok(ip6("2001:2:0:1::1"))
        );
        let t = table6(
            vec![route6(2, "2001:2:7::", 48, Some("2001:2:0:1::1"))],
            vec![],
        );
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("2001:2:7::9")),
            miss6(2, "2001:2:0:1::1", false)
        );
    }

    #[test]
    fn v6_link_local_gateway_is_per_interface() {
        // Two uplinks whose routers both call themselves fe80::1, as router advertisements
        // typically make them.
        let routes = vec![
            route6(2, "fe80::", 64, None),
            route6(2, "::", 0, Some("fe80::1")),
            route6(3, "fe80::", 64, None),
            route6(3, "::", 0, Some("fe80::1")),
        ];
        let t = table6(
            routes.clone(),
            vec![
                neigh6(2, "fe80::1", A, nud::REACHABLE),
                neigh6(3, "fe80::1", B, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:99::1")), Ok(A));
        assert_eq!(t.next_hop_mac_v6(3, ip6("2001:2:99::1")), Ok(B));
        // A link-local destination is on-link through fe80::/64.
        assert_eq!(t.next_hop_mac_v6(2, ip6("fe80::1")), Ok(A));
        assert_eq!(t.mac_v6(3, ip6("fe80::1")), Some(B));
        assert_eq!(t.len(), 2);
        // The router is only known on interface 3: interface 2 misses, naming its own
        // fe80::1.
        let t = table6(routes, vec![neigh6(3, "fe80::1", B, nud::REACHABLE)]);
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("2001:2:99::1")),
            miss6(2, "fe80::1", false)
        );
        assert_eq!(t.next_hop_mac_v6(3, ip6("2001:2:99::1")), Ok(B));
    }

    #[test]
    fn v6_longest_prefix_wins_whatever_the_order() {
        let routes = vec![
            route6(2, "::", 0, Some("fe80::1")),
            route6(2, "2001:2:0:7:8000::", 65, Some("fe80::3")),
            route6(2, "2001:2::", 32, Some("fe80::2")),
            route6(2, "fe80::", 64, None),
            route6(2, "2001:2:0:1::", 64, None),
        ];
        let neighbours = vec![
            neigh6(2, "fe80::1", A, nud::REACHABLE),
            neigh6(2, "fe80::2", B, nud::DELAY),
            neigh6(2, "fe80::3", C, nud::PROBE),
            neigh6(2, "2001:2:0:1::2", B, nud::REACHABLE),
        ];
        for rot in 0..routes.len() {
            let mut r = routes.clone();
            r.rotate_left(rot);
            let t = table6(r, neighbours.clone());
            assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:7:8000::9")), Ok(C));
            assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:7:7fff::9")), Ok(B));
            assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:ffff::1")), Ok(B));
            assert_eq!(t.next_hop_mac_v6(2, ip6("2001:db9::1")), Ok(A));
            assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::2")), Ok(B));
        }
    }

    #[test]
    fn v6_prefix_edges() {
        let t = table6(
            vec![
                // Host bits of dst are ignored, also in the default route.
                route6(2, "2001:2::1", 0, Some("fe80::1")),
                route6(2, "2001:2:0:1::77", 64, None),
                route6(2, "2001:2:0:1::50", 128, Some("fe80::1")),
                route6(2, "2001:2:0:1::60", 129, Some("fe80::1")),
                // /127 and /61: masks that end inside a 16-bit group.
                route6(2, "2001:2:0:2::", 127, Some("fe80::2")),
                route6(2, "2001:2:0:18::", 61, Some("fe80::3")),
            ],
            vec![
                neigh6(2, "fe80::1", A, nud::PERMANENT),
                neigh6(2, "fe80::2", B, nud::REACHABLE),
                neigh6(2, "fe80::3", C, nud::REACHABLE),
                neigh6(2, "2001:2:0:1::5", B, nud::REACHABLE),
                neigh6(2, "2001:2:0:1::60", C, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2620:fe::fe")), Ok(A));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::5")), Ok(B));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::50")), Ok(A));
        // /129 is ignored: the connected /64 answers.
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::60")), Ok(C));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:2::1")), Ok(B));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:2::2")), Ok(A));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1f:ffff::1")), Ok(C));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:20::1")), Ok(A));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:17::1")), Ok(A));
    }

    #[test]
    fn v6_equal_prefixes_keep_given_preference() {
        let t = table6(
            vec![
                route6(2, "::", 0, Some("fe80::1")),
                route6(2, "::", 0, Some("fe80::2")),
            ],
            vec![
                neigh6(2, "fe80::1", A, nud::REACHABLE),
                neigh6(2, "fe80::2", B, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2::1")), Ok(A));
    }

    #[test]
    fn v6_unusable_states_and_zero_mac_ignored() {
        let routes = vec![route6(2, "2001:2:0:1::", 64, None)];
        let dst = "2001:2:0:1::9";
        for state in [nud::INCOMPLETE, nud::FAILED, nud::NONE] {
            let t = table6(routes.clone(), vec![neigh6(2, dst, A, state)]);
            assert_eq!(t.next_hop_mac_v6(2, ip6(dst)), miss6(2, dst, false));
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
            let t = table6(routes.clone(), vec![neigh6(2, dst, A, state)]);
            assert_eq!(t.next_hop_mac_v6(2, ip6(dst)), Ok(A), "state {state:#x}");
        }
        let t = table6(routes, vec![neigh6(2, dst, [0; 6], nud::NOARP)]);
        assert_eq!(t.next_hop_mac_v6(2, ip6(dst)), miss6(2, dst, false));
        assert!(t.is_empty());
    }

    #[test]
    fn v6_other_interface_ignored() {
        let t = table6(
            vec![
                route6(2, "2001:2:0:1::", 64, None),
                route6(3, "2001:2:0:2::", 64, None),
            ],
            vec![
                neigh6(3, "2001:2:0:1::9", A, nud::REACHABLE),
                neigh6(2, "2001:2:0:2::9", B, nud::REACHABLE),
            ],
        );
        // Route on 2 but the neighbour is on 3.
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("2001:2:0:1::9")),
            miss6(2, "2001:2:0:1::9", false)
        );
        // Interface 2 has no route for the prefix of 3, even with a neighbour on 2.
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("2001:2:0:2::9")),
            miss6(2, "2001:2:0:2::9", true)
        );
        // Unknown interface.
        assert_eq!(
            t.next_hop_mac_v6(9, ip6("2001:2:0:1::9")),
            miss6(9, "2001:2:0:1::9", true)
        );
        assert_eq!(t.mac_v6(3, ip6("2001:2:0:1::9")), Some(A));
        assert_eq!(t.mac_v6(2, ip6("2001:2:0:1::9")), None);
    }

    #[test]
    fn v6_duplicate_neighbour_first_kept() {
        let t = table6(
            vec![route6(2, "2001:2:0:1::", 64, None)],
            vec![
                neigh6(2, "2001:2:0:1::9", A, nud::REACHABLE),
                neigh6(2, "2001:2:0:1::9", B, nud::REACHABLE),
                neigh6(4, "2001:2:0:1::9", C, nud::REACHABLE),
            ],
        );
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2:0:1::9")), Ok(A));
        assert_eq!(t.len(), 2);
        let mut all: Vec<_> = t.iter_v6().collect();
        all.sort();
        assert_eq!(
            all,
            vec![(2, ip6("2001:2:0:1::9"), A), (4, ip6("2001:2:0:1::9"), C)]
        );
        assert_eq!(t.iter().count(), 0);
    }

    #[test]
    fn families_stay_apart() {
        let t = NeighbourTable::from(KernelTables {
            routes: vec![route(2, "0.0.0.0", 0, Some("198.18.0.1"))],
            neighbours: vec![
                neigh(2, "198.18.0.1", A, nud::REACHABLE),
                neigh(2, "198.18.0.9", C, nud::REACHABLE),
            ],
            routes6: vec![
                route6(2, "::", 0, Some("fe80::1")),
                route6(2, "fe80::", 64, None),
            ],
            neighbours6: vec![neigh6(2, "fe80::1", B, nud::REACHABLE)],
        });
        assert_eq!(t.next_hop_mac(2, ip("203.0.113.1")), Ok(A));
        assert_eq!(t.next_hop_mac_v6(2, ip6("2001:2::1")), Ok(B));
        assert_eq!(t.len(), 3);
        assert_eq!(t.iter().count(), 2);
        assert_eq!(
            t.iter_v6().collect::<Vec<_>>(),
            vec![(2, ip6("fe80::1"), B)]
        );
        // An IPv4-mapped address is an IPv6 destination: it never reaches the IPv4 maps.
        assert_eq!(t.mac_v6(2, ip6("::ffff:198.18.0.9")), None);
        assert_eq!(
            t.next_hop_mac_v6(2, ip6("::ffff:198.18.0.9")),
            Ok(B) // through the IPv6 default route
        );
        // An IPv4-only table answers no IPv6 lookup, and the other way round.
        let v4 = NeighbourTable::new(
            vec![route(2, "0.0.0.0", 0, Some("198.18.0.1"))],
            vec![neigh(2, "198.18.0.1", A, nud::REACHABLE)],
        );
        assert_eq!(
            v4.next_hop_mac_v6(2, ip6("2001:2::1")),
            miss6(2, "2001:2::1", true)
        );
        let v6 = table6(
            vec![route6(2, "::", 0, Some("fe80::1"))],
            vec![neigh6(2, "fe80::1", B, nud::REACHABLE)],
        );
        assert_eq!(
            v6.next_hop_mac(2, ip("203.0.113.1")),
            miss(2, "203.0.113.1", true)
        );
        assert!(NeighbourTable::default().is_empty());
    }
}
