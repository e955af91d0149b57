//! FullNAT's local ports: the (local address, port) a worker gives a new connection.
//!
//! With FullNAT (DPVS's `--fullnat`) a request leaves from one of the service's local addresses
//! (LIP) and a port of the director, and the real server answers to that LIP:lport. The
//! answer must reach the worker that owns the connection without a shared table: a worker
//! owns every frame whose client endpoint hashes to it ([`owner_of`]), and a reply's client
//! endpoint is its destination, LIP:lport. So each worker hands out only the ports that
//! [`owner_of`] maps to itself: per local address, it keeps the free ones of the port range
//! in a queue of its own. Nothing is shared between workers (no lock, no atomic), taking and
//! giving back allocate nothing, and every port is someone's: the workers' pools partition
//! the range.
//!
//! Freed ports go to the back of the queue, so a port is reused as late as possible (the real
//! server may still hold the previous connection of the same LIP:lport in TIME_WAIT). When a
//! worker has no free port left on any local address of a service, [`LocalPorts::take`]
//! returns `None`: the new flow is refused and counted, never given a live port.
//!
//! Each worker's connection table holds its pools ([`crate::conntrack::ConnTable`]): a new
//! FullNAT entry takes a port, its removal (whatever the cause) gives it back. A pool, once
//! made, stays when its address leaves the configuration: connections of that address may
//! still be live, and if the address comes back its pool must still know which ports they hold.

use crate::conntrack::owner_of;
use crate::family::Address;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;

/// The ports FullNAT uses by default: the dynamic range (RFC 6335), as DPVS does.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 1024..=65535;

/// One worker's free local ports, per local address (of family `A`: a worker has one pool
/// set per family, in the table of that family).
#[derive(Debug)]
pub struct LocalPorts<A: Address = Ipv4Addr> {
    worker: usize,
    workers: usize,
    seed: u64,
    range: RangeInclusive<u16>,
    pools: Vec<Pool<A>>,
    /// Where the next [`LocalPorts::take`] starts among a service's addresses.
    next: usize,
}

#[derive(Debug)]
struct Pool<A> {
    addr: A,
    free: VecDeque<u16>,
    /// Ports of this worker in the range for this address (taken or free).
    size: usize,
}

impl<A: Address> LocalPorts<A> {
    /// The pools of worker `worker` of `workers` (whose [`owner_of`] seed is `seed`), over
    /// `range`; no address yet.
    pub fn new(worker: usize, workers: usize, seed: u64, range: RangeInclusive<u16>) -> Self {
        LocalPorts {
            worker,
            workers,
            seed,
            range,
            pools: Vec::new(),
            next: 0,
        }
    }

    /// Makes `addr` a local address this worker hands out ports of (nothing if it already
    /// is). Builds its pool: one hash per port of the range, so call it when the configuration
    /// changes, not per packet.
    pub fn add_addr(&mut self, addr: A) {
        if self.pool(addr).is_some() {
            return;
        }
        let free: VecDeque<u16> = self
            .range
            .clone()
            .filter(|&port| owner_of(addr, port, self.workers, self.seed) == self.worker)
            .collect();
        self.pools.push(Pool {
            addr,
            size: free.len(),
            free,
        });
    }

    /// A free local address and port among `addrs` (a service's local addresses), taking
    /// them in turn from one call to the next; `None` when none of them has a free port left
    /// on this worker. An address not added yet is added now ([`LocalPorts::add_addr`]).
    pub fn take(&mut self, addrs: &[A]) -> Option<(A, u16)> {
        self.take_among(addrs.len(), |i| Some(addrs[i]))
    }

    /// [`LocalPorts::take`] among addresses of both families, as a snapshot holds them: those
    /// of the other family are skipped.
    pub fn take_ip<T: Copy + Into<IpAddr>>(&mut self, addrs: &[T]) -> Option<(A, u16)> {
        self.take_among(addrs.len(), |i| A::from_ip(addrs[i].into()))
    }

    /// [`LocalPorts::take`] among `n` addresses, the `i`th being `addr(i)` (`None`: skipped).
    #[inline]
    fn take_among(&mut self, n: usize, addr: impl Fn(usize) -> Option<A>) -> Option<(A, u16)> {
        for i in 0..n {
            let Some(addr) = addr((self.next + i) % n) else {
                continue;
            };
            let pool = match self.pools.iter().position(|p| p.addr == addr) {
                Some(at) => &mut self.pools[at],
                None => {
                    self.add_addr(addr);
                    self.pools.last_mut().expect("just added")
                }
            };
            if let Some(port) = pool.free.pop_front() {
                self.next = (self.next + i + 1) % n;
                return Some((addr, port));
            }
        }
        None
    }

    /// Returns a port [`LocalPorts::take`] gave, once its connection is gone.
    pub fn give_back(&mut self, addr: A, port: u16) {
        let (workers, seed, worker) = (self.workers, self.seed, self.worker);
        let Some(pool) = self.pools.iter_mut().find(|p| p.addr == addr) else {
            return;
        };
        // A port of another worker, or one given back twice, would break the partition or
        // the pool's size: refused (and a bug of the caller in debug builds).
        let ours = self.range.contains(&port) && owner_of(addr, port, workers, seed) == worker;
        debug_assert!(
            ours && pool.free.len() < pool.size,
            "{addr}:{port} given back"
        );
        if ours && pool.free.len() < pool.size {
            pool.free.push_back(port);
        }
    }

    /// Free ports of `addr` on this worker (0 for an address it does not have).
    pub fn free(&self, addr: A) -> usize {
        self.pool(addr).map_or(0, |p| p.free.len())
    }

    fn pool(&self, addr: A) -> Option<&Pool<A>> {
        self.pools.iter().find(|p| p.addr == addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::testing::{for_both_families, TestAddr};
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use std::collections::HashSet;
    use std::net::Ipv6Addr;

    // Every test runs once per family (`tests::<name>::v4`, `tests::<name>::v6`).
    for_both_families!(
        a_reply_to_a_taken_port_comes_back_to_its_worker,
        the_workers_pools_partition_the_range,
        exhaustion_refuses_and_a_port_given_back_is_reused_last,
        addresses_are_taken_in_turn_and_one_exhausted_leaves_the_others,
    );

    /// Local address `n` (IPv4 198.19.0.160 + n, IPv6 2001:2:0:13::a0 + n).
    fn lip<A: TestAddr>(n: u8) -> A {
        A::test_addr(19, 160 + n)
    }

    fn a_reply_to_a_taken_port_comes_back_to_its_worker<A: TestAddr>() {
        let (workers, seed) = (4, 0x5eed);
        for worker in 0..workers {
            let mut ports = LocalPorts::new(worker, workers, seed, DEFAULT_PORTS);
            ports.add_addr(lip::<A>(0));
            for _ in 0..1000 {
                let (addr, port) = ports.take(&[lip(0)]).unwrap();
                assert_eq!(owner_of(addr, port, workers, seed), worker);
            }
        }
    }

    fn the_workers_pools_partition_the_range<A: TestAddr>() {
        let (workers, seed) = (3, 7);
        let mut seen = HashSet::new();
        let mut sizes = Vec::new();
        for worker in 0..workers {
            let mut ports = LocalPorts::new(worker, workers, seed, 40000..=40999);
            ports.add_addr(lip::<A>(0));
            sizes.push(ports.free(lip(0)));
            while let Some((_, port)) = ports.take(&[lip(0)]) {
                assert!(seen.insert(port), "port {port} in two pools");
            }
        }
        assert_eq!(seen.len(), 1000);
        // And the owner hash spreads them.
        assert!(sizes.iter().all(|&n| n > 250), "{sizes:?}");
    }

    fn exhaustion_refuses_and_a_port_given_back_is_reused_last<A: TestAddr>() {
        let lip = lip::<A>(0);
        let mut ports = LocalPorts::new(0, 1, 0, 5000..=5002);
        ports.add_addr(lip);
        let taken: Vec<_> = (0..3).map(|_| ports.take(&[lip]).unwrap().1).collect();
        assert_eq!(taken, [5000, 5001, 5002]);
        assert_eq!(ports.take(&[lip]), None, "exhausted: never a live port");
        ports.give_back(lip, 5001);
        assert_eq!(ports.take(&[lip]), Some((lip, 5001)));
        ports.give_back(lip, 5000);
        ports.give_back(lip, 5002);
        assert_eq!(ports.take(&[lip]), Some((lip, 5000)), "oldest freed first");
    }

    fn addresses_are_taken_in_turn_and_one_exhausted_leaves_the_others<A: TestAddr>() {
        let (lip1, lip2) = (lip::<A>(0), lip::<A>(1));
        let mut ports = LocalPorts::new(0, 1, 0, 6000..=6001);
        ports.add_addr(lip1);
        ports.add_addr(lip2);
        let addrs = [lip1, lip2];
        let got: Vec<_> = (0..4).map(|_| ports.take(&addrs).unwrap()).collect();
        assert_eq!(
            got,
            [(lip1, 6000), (lip2, 6000), (lip1, 6001), (lip2, 6001)]
        );
        assert_eq!(ports.take(&addrs), None);
        ports.give_back(lip2, 6000);
        assert_eq!(ports.take(&addrs), Some((lip2, 6000)));
        // An address without a pool gets one; a port given back for an unknown address is
        // ignored.
        let lip3 = A::test_addr(19, 9);
        assert_eq!(ports.take(&[lip3]), Some((lip3, 6000)));
        ports.give_back(A::test_addr(19, 10), 6000);
        assert_eq!(ports.free(A::test_addr(19, 10)), 0);
    }

    /// Any sequence of takes and give-backs: no port is held twice, every port taken is
    /// this worker's, and free + held stays the pool's size.
    fn never_a_port_twice<A: TestAddr>(ops: Vec<(bool, u8)>) -> Result<(), TestCaseError> {
        let (workers, seed) = (2, 99);
        let lip = lip::<A>(0);
        let mut ports = LocalPorts::new(1, workers, seed, 30000..=30199);
        ports.add_addr(lip);
        let size = ports.free(lip);
        let mut held: Vec<u16> = Vec::new();
        for (take, pick) in ops {
            if take || held.is_empty() {
                match ports.take(&[lip]) {
                    Some((_, port)) => {
                        prop_assert!(!held.contains(&port));
                        prop_assert_eq!(owner_of(lip, port, workers, seed), 1);
                        held.push(port);
                    }
                    None => prop_assert_eq!(held.len(), size),
                }
            } else {
                let port = held.swap_remove(usize::from(pick) % held.len());
                ports.give_back(lip, port);
            }
            prop_assert_eq!(ports.free(lip) + held.len(), size);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn never_a_port_twice_v4(ops in proptest::collection::vec(any::<(bool, u8)>(), 1..400)) {
            never_a_port_twice::<Ipv4Addr>(ops)?;
        }

        #[test]
        fn never_a_port_twice_v6(ops in proptest::collection::vec(any::<(bool, u8)>(), 1..400)) {
            never_a_port_twice::<Ipv6Addr>(ops)?;
        }
    }
}
