//! Per-worker counters: written by exactly one worker, read by the control thread, no locks.
//!
//! Every counter is an `AtomicU64` that its worker updates with a relaxed load and store (not a
//! read-modify-write: there is one writer, so no `lock`-prefixed instruction is needed) and that
//! control reads with relaxed loads and sums across workers. A reader may see one counter a few
//! packets behind another; totals are exact once traffic stops.

use crate::snapshot::RealServer;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use xvs_scheduler::Dest;

/// Upper bound on virtual services; their counter slots are preallocated per worker.
pub const MAX_SERVICES: usize = 4096;
/// Upper bound on real servers (summed over services); counter slots preallocated per worker.
pub const MAX_REALS: usize = 16384;

/// Why a frame was dropped. The discriminant indexes [`WorkerStats::drops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Ethernet/IPv4/TCP/UDP header shorter than its lengths say, or inconsistent lengths.
    Malformed,
    /// Not IPv4 (the XDP program only redirects IPv4; defensive).
    NotIpv4,
    /// IPv4 header checksum wrong.
    BadIpChecksum,
    /// IP fragment: not load-balanced (no ports in non-first fragments). IPv6: any packet with
    /// a Fragment header.
    Fragment,
    /// IPv4 options present: not load-balanced (as Katran).
    IpOptions,
    /// TTL (IPv6: hop limit) would reach 0 when forwarded.
    TtlExceeded,
    /// Neither TCP nor UDP, nor an ICMP error about either (ICMPv6 Neighbour Discovery and
    /// echo included: the XDP program leaves those to the kernel).
    UnsupportedProtocol,
    /// To a VIP:port with no service (e.g. just deleted).
    NoService,
    /// A TCP segment other than a SYN for an unknown connection, or a reply with no connection.
    NoConnection,
    /// The service has no real server that may take new connections.
    NoRealServer,
    /// The connection table (or this worker's share of it) is full of entries that may not be
    /// evicted (none is half-open): the new flow is refused. Established entries are never
    /// evicted.
    TableFull,
    /// The next hop's MAC is not resolved yet; resolution was requested.
    NeighbourMiss,
    /// No route to the next hop out of the egress interface.
    NoRoute,
    /// The owning worker's hand-off ring was full.
    HandoffFull,
    /// The transmit ring was full.
    TxFull,
    /// The service has its connection limit (`max_conns`, this worker's share) and none of
    /// its entries could be evicted: the new flow is refused.
    ServiceLimit,
    /// Too big for the tunnel to its real server (longer than the internal interface's MTU
    /// once encapsulated): answered with ICMP "fragmentation needed" when DF is set. IPv6:
    /// longer than the egress interface's MTU (routers never fragment IPv6), a tunnel's
    /// overhead included, answered with ICMPv6 Packet Too Big from the arrival interface's
    /// IPv6 address when it has one and the packet is no ICMPv6 error.
    TooBig,
    /// FullNAT: this worker has no free port left on any of the service's local addresses:
    /// the new flow is refused (add local addresses with `--add-laddr`).
    NoLocalPort,
    /// A new flow from one of FullNAT's local addresses: a spoofed source (the director's own
    /// address), whose replies would take the place of a FullNAT connection's.
    LocalSource,
    /// A new flow scheduled to a real server of the other address family (IPVS allows it for
    /// tunnels only): not supported.
    RealFamily,
    /// IPv6 with a Routing header whose segments are not exhausted: the destination address
    /// is not the final one, so the packet is not the director's to translate.
    RoutingHeader,
}

impl DropReason {
    pub const COUNT: usize = 21;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Malformed,
        DropReason::NotIpv4,
        DropReason::BadIpChecksum,
        DropReason::Fragment,
        DropReason::IpOptions,
        DropReason::TtlExceeded,
        DropReason::UnsupportedProtocol,
        DropReason::NoService,
        DropReason::NoConnection,
        DropReason::NoRealServer,
        DropReason::TableFull,
        DropReason::NeighbourMiss,
        DropReason::NoRoute,
        DropReason::HandoffFull,
        DropReason::TxFull,
        DropReason::ServiceLimit,
        DropReason::TooBig,
        DropReason::NoLocalPort,
        DropReason::LocalSource,
        DropReason::RealFamily,
        DropReason::RoutingHeader,
    ];

    /// Stable snake_case name used in the control protocol and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::Fragment => "fragment",
            DropReason::IpOptions => "ip_options",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::NoService => "no_service",
            DropReason::NoConnection => "no_connection",
            DropReason::NoRealServer => "no_real_server",
            DropReason::TableFull => "table_full",
            DropReason::NeighbourMiss => "neighbour_miss",
            DropReason::NoRoute => "no_route",
            DropReason::HandoffFull => "handoff_full",
            DropReason::TxFull => "tx_full",
            DropReason::ServiceLimit => "service_limit",
            DropReason::TooBig => "too_big",
            DropReason::NoLocalPort => "no_local_port",
            DropReason::LocalSource => "local_source",
            DropReason::RealFamily => "real_family",
            DropReason::RoutingHeader => "routing_header",
        }
    }
}

/// Why a half-open connection entry was evicted (see [`crate::conntrack`]). The discriminant
/// indexes [`WorkerStats::evictions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EvictReason {
    /// A new half-open entry found the half-open budget taken: the oldest one gave way.
    HalfOpenLimit,
    /// A new flow found the table full.
    TableFull,
    /// A new flow found its service at its connection limit.
    ServiceLimit,
}

impl EvictReason {
    pub const COUNT: usize = 3;
    pub const ALL: [EvictReason; EvictReason::COUNT] = [
        EvictReason::HalfOpenLimit,
        EvictReason::TableFull,
        EvictReason::ServiceLimit,
    ];

    /// Stable snake_case name used in the control protocol and metrics.
    pub fn name(self) -> &'static str {
        match self {
            EvictReason::HalfOpenLimit => "half_open_limit",
            EvictReason::TableFull => "table_full",
            EvictReason::ServiceLimit => "service_limit",
        }
    }
}

/// Why an ICMP error was translated: its type (and, for destination unreachable, whether it
/// is the "fragmentation needed" of path MTU discovery). The discriminant indexes
/// [`WorkerStats::icmp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IcmpReason {
    /// Destination unreachable, code 4: fragmentation needed and DF set (RFC 1191); ICMPv6
    /// Packet Too Big, its IPv6 counterpart (RFC 8201).
    FragNeeded,
    /// Destination unreachable, any other code (port unreachable, host unreachable...).
    Unreachable,
    /// Time exceeded (TTL reached 0 in transit, or reassembly timed out).
    TimeExceeded,
    /// Parameter problem.
    ParameterProblem,
}

impl IcmpReason {
    pub const COUNT: usize = 4;
    pub const ALL: [IcmpReason; IcmpReason::COUNT] = [
        IcmpReason::FragNeeded,
        IcmpReason::Unreachable,
        IcmpReason::TimeExceeded,
        IcmpReason::ParameterProblem,
    ];

    /// Stable snake_case name used in the control protocol and metrics.
    pub fn name(self) -> &'static str {
        match self {
            IcmpReason::FragNeeded => "frag_needed",
            IcmpReason::Unreachable => "unreachable",
            IcmpReason::TimeExceeded => "time_exceeded",
            IcmpReason::ParameterProblem => "parameter_problem",
        }
    }
}

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning worker may call this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge with a single writer (may go down).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Replaces the value. Only the owning worker may call this.
    #[inline]
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Traffic through a service or a real server, in ipvsadm's `--stats` terms. "In" is client to
/// server, "out" server to client; bytes are IP packet lengths, as IPVS counts them.
#[derive(Debug, Default)]
pub struct Traffic {
    pub conns: Counter,
    pub inpkts: Counter,
    pub outpkts: Counter,
    pub inbytes: Counter,
    pub outbytes: Counter,
}

/// A plain copy of [`Traffic`] for summing and reporting.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrafficTotals {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl Traffic {
    #[inline]
    pub fn count_in(&self, bytes: usize) {
        self.inpkts.add(1);
        self.inbytes.add(bytes as u64);
    }

    #[inline]
    pub fn count_out(&self, bytes: usize) {
        self.outpkts.add(1);
        self.outbytes.add(bytes as u64);
    }

    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            conns: self.conns.get(),
            inpkts: self.inpkts.get(),
            outpkts: self.outpkts.get(),
            inbytes: self.inbytes.get(),
            outbytes: self.outbytes.get(),
        }
    }
}

impl std::ops::AddAssign for TrafficTotals {
    fn add_assign(&mut self, o: Self) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
    }
}

impl TrafficTotals {
    /// `self - base`, for counters of a reused slot (saturating: never negative).
    pub fn since(self, base: TrafficTotals) -> TrafficTotals {
        TrafficTotals {
            conns: self.conns.saturating_sub(base.conns),
            inpkts: self.inpkts.saturating_sub(base.inpkts),
            outpkts: self.outpkts.saturating_sub(base.outpkts),
            inbytes: self.inbytes.saturating_sub(base.inbytes),
            outbytes: self.outbytes.saturating_sub(base.outbytes),
        }
    }
}

/// Per real server: traffic plus IPVS's active (ESTABLISHED) and inactive (other) connections.
#[derive(Debug, Default)]
pub struct RealStats {
    pub traffic: Traffic,
    pub active: Gauge,
    pub inactive: Gauge,
}

/// Everything one worker counts.
///
/// Every frame a worker takes (`rx` from its sockets, `handed_in` from other workers) ends in
/// exactly one of `tx`, `drops`, `handed_off`, or is still `held`; so once traffic stops,
/// `rx + handed_in == tx + sum(drops) + handed_off + held` for each worker.
#[derive(Debug)]
pub struct WorkerStats {
    pub rx: Counter,
    pub tx: Counter,
    /// Frames this worker passed to the worker owning their flow.
    pub handed_off: Counter,
    /// Frames other workers handed to this one (their flows are this worker's).
    pub handed_in: Counter,
    /// Frames waiting for their next hop's MAC now (set once per batch).
    pub held: Gauge,
    pub drops: [Counter; DropReason::COUNT],
    /// ICMP errors translated and forwarded, by reason: `[0]` from clients towards real
    /// servers ("in"), `[1]` from real servers towards clients ("out").
    pub icmp: [[Counter; IcmpReason::COUNT]; 2],
    /// Half-open connection entries evicted, by reason.
    pub evictions: [Counter; EvictReason::COUNT],
    /// Entries in this worker's connection tables, IPv4 and IPv6 (both count here).
    pub conns: Gauge,
    /// Connections this worker put on the XDP fast path, and took off it.
    pub fast_installs: Counter,
    pub fast_removals: Counter,
    /// Fast-path installs the map refused (full): those flows stay on the AF_XDP path.
    pub fast_refused: Counter,
    pub services: Box<[Traffic]>,
    pub reals: Box<[RealStats]>,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            rx: Counter::default(),
            tx: Counter::default(),
            handed_off: Counter::default(),
            handed_in: Counter::default(),
            held: Gauge::default(),
            drops: Default::default(),
            icmp: Default::default(),
            evictions: Default::default(),
            conns: Gauge::default(),
            fast_installs: Counter::default(),
            fast_removals: Counter::default(),
            fast_refused: Counter::default(),
            services: (0..MAX_SERVICES).map(|_| Traffic::default()).collect(),
            reals: (0..MAX_REALS).map(|_| RealStats::default()).collect(),
        }
    }
}

impl WorkerStats {
    #[inline]
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].add(1);
    }

    pub fn drops_by_name(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.drops[*r as usize].get()))
    }

    /// ICMP errors translated, as (direction "in" or "out", reason name, count).
    pub fn icmp_by_name(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        ["in", "out"]
            .into_iter()
            .zip(&self.icmp)
            .flat_map(|(dir, counters)| {
                IcmpReason::ALL
                    .iter()
                    .map(move |r| (dir, r.name(), counters[*r as usize].get()))
            })
    }

    #[inline]
    pub fn count_eviction(&self, reason: EvictReason) {
        self.evictions[reason as usize].add(1);
    }

    pub fn evictions_by_name(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        EvictReason::ALL
            .iter()
            .map(|r| (r.name(), self.evictions[*r as usize].get()))
    }

    #[inline]
    pub fn service(&self, id: u32) -> Option<&Traffic> {
        self.services.get(id as usize)
    }

    #[inline]
    pub fn real(&self, id: u32) -> Option<&RealStats> {
        self.reals.get(id as usize)
    }
}

/// The connection counts of one service's real servers, summed over every worker, as the
/// least-connection schedulers read them ([`xvs_scheduler::Load`]). Each term is a relaxed load
/// of a single-writer counter: a sum may miss connections opened or closed meanwhile by other
/// workers, which only shifts a least-connection choice by those few connections.
pub struct ServiceLoad<'a> {
    pub reals: &'a [RealServer],
    pub workers: &'a [Arc<WorkerStats>],
    /// IPVS's per-server overload mark, by real server id, shared by all workers (empty: decide
    /// from the current count alone).
    pub overload: &'a [AtomicBool],
}

impl ServiceLoad<'_> {
    fn sum(&self, dest: usize, gauge: impl Fn(&RealStats) -> i64) -> u64 {
        let Some(real) = self.reals.get(dest) else {
            return 0;
        };
        let total: i64 = self
            .workers
            .iter()
            .filter_map(|w| w.real(real.id))
            .map(gauge)
            .sum();
        total.max(0) as u64
    }
}

impl xvs_scheduler::Load for ServiceLoad<'_> {
    fn active(&self, dest: usize) -> u64 {
        self.sum(dest, |r| r.active.get())
    }

    fn inactive(&self, dest: usize) -> u64 {
        self.sum(dest, |r| r.inactive.get())
    }

    /// IPVS's hysteresis: marked at the upper threshold, unmarked only once
    /// [`Dest::overload_cleared`]. Workers race on the mark harmlessly: each writes what the
    /// counts it read imply.
    fn overloaded(&self, dest: usize, d: &Dest) -> bool {
        let connections = self.connections(dest);
        let Some(mark) = self
            .reals
            .get(dest)
            .and_then(|r| self.overload.get(r.id as usize))
        else {
            return d.is_overloaded(connections);
        };
        if mark.load(Ordering::Relaxed) {
            if d.overload_cleared(connections) {
                mark.store(false, Ordering::Relaxed);
                return false;
            }
            true
        } else if d.is_overloaded(connections) {
            mark.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reason_table_is_consistent() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        for (i, r) in EvictReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn icmp_reason_table_is_consistent() {
        for (i, r) in IcmpReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let s = WorkerStats::default();
        s.icmp[1][IcmpReason::TimeExceeded as usize].add(2);
        let named: Vec<_> = s.icmp_by_name().filter(|c| c.2 > 0).collect();
        assert_eq!(named, [("out", "time_exceeded", 2)]);
        assert_eq!(s.icmp_by_name().count(), 2 * IcmpReason::COUNT);
    }

    #[test]
    fn service_load_sums_workers() {
        use xvs_scheduler::Load;
        let workers: Vec<Arc<WorkerStats>> = (0..2).map(|_| Arc::default()).collect();
        let reals = [RealServer {
            id: 7,
            addr: std::net::Ipv4Addr::new(198, 19, 0, 1).into(),
            port: 80,
            method: crate::snapshot::Method::Masq,
            failed: false,
        }];
        workers[0].reals[7].active.add(2);
        workers[1].reals[7].active.add(1);
        workers[1].reals[7].inactive.add(4);
        let load = ServiceLoad {
            reals: &reals,
            workers: &workers,
            overload: &[],
        };
        assert_eq!(
            (load.active(0), load.inactive(0), load.connections(0)),
            (3, 4, 7)
        );
        assert_eq!(load.active(1), 0, "no such real server");
    }

    #[test]
    fn overload_marks_follow_ipvs_hysteresis() {
        use xvs_scheduler::Load;
        let workers: Vec<Arc<WorkerStats>> = vec![Arc::default()];
        let reals = [RealServer {
            id: 3,
            addr: std::net::Ipv4Addr::new(198, 19, 0, 1).into(),
            port: 80,
            method: crate::snapshot::Method::Masq,
            failed: false,
        }];
        let marks: Vec<AtomicBool> = (0..8).map(|_| AtomicBool::new(false)).collect();
        let load = ServiceLoad {
            reals: &reals,
            workers: &workers,
            overload: &marks,
        };
        let set = |n: i64| {
            let g = &workers[0].reals[3].inactive;
            g.add(n - g.get());
        };
        let mut d = Dest::new(reals[0].addr, 80, 1);
        d.upper_threshold = 4;
        d.lower_threshold = 2;
        for (connections, overloaded) in [
            (3, false),
            (4, true),
            (3, true),
            (2, true),
            (1, false),
            (3, false),
        ] {
            set(connections);
            assert_eq!(
                load.overloaded(0, &d),
                overloaded,
                "{connections} connections, -x 4 -y 2"
            );
        }
        // No lower threshold: cleared below three quarters of the upper one.
        d.lower_threshold = 0;
        for (connections, overloaded) in [(4, true), (3, true), (2, false)] {
            set(connections);
            assert_eq!(
                load.overloaded(0, &d),
                overloaded,
                "{connections} connections, -x 4"
            );
        }
    }

    #[test]
    fn counters_add_and_totals_subtract() {
        let s = WorkerStats::default();
        s.count_drop(DropReason::Fragment);
        s.count_drop(DropReason::Fragment);
        assert_eq!(s.drops[DropReason::Fragment as usize].get(), 2);
        let t = &s.services[3];
        t.count_in(100);
        t.count_out(40);
        let base = t.totals();
        t.count_in(10);
        assert_eq!(t.totals().since(base).inbytes, 10);
        assert_eq!(base.outbytes, 40);
    }
}
