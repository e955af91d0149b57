//! xvs-scheduler: IPVS scheduling policies behind one interface.
//!
//! A [`Scheduler`] is built by the control plane for one virtual service (tables such as
//! Maglev's are computed then) and lives inside the immutable configuration snapshot that
//! workers read. Workers call [`Scheduler::pick`] for each new connection with the servers
//! ([`Dest`]), their live connection counts ([`Load`]) and the flow ([`Flow`]): picks are
//! lock-free (at most a compare-and-swap on a shared cursor) and never allocate. Policies are
//! chosen by their ipvsadm name ([`SchedulerKind`]); each lives in its own module with its
//! algorithm explained in the module header.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

pub mod dh;
pub mod fo;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

/// What a policy knows about a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// The server's address and port: its identity for hashing policies (mh), so that two
    /// directors with the same configuration build the same tables.
    pub addr: Ipv4Addr,
    pub port: u16,
    /// 0..=65535; 0 quiesces the server (no new connections, established ones keep flowing).
    pub weight: u32,
    /// `-x`: no new connections while active + inactive connections reach it (0: no limit).
    pub upper_threshold: u32,
    /// `-y`: kept for listings; see [`Dest::is_overloaded`] for how thresholds apply.
    pub lower_threshold: u32,
}

impl Dest {
    /// A server with weight `weight` and no thresholds.
    pub fn new(addr: Ipv4Addr, port: u16, weight: u32) -> Self {
        Dest {
            addr,
            port,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// IPVS marks a server overloaded when its connections reach the upper threshold. (IPVS
    /// then keeps the mark until they fall below the lower threshold; xvs decides from the
    /// current count alone, so no shared mutable flag is needed.)
    #[inline]
    pub fn is_overloaded(&self, connections: u64) -> bool {
        self.upper_threshold > 0 && connections >= u64::from(self.upper_threshold)
    }

    /// Whether the server may take a new connection: weight above 0 and not overloaded.
    #[inline]
    pub fn is_available(&self, connections: u64) -> bool {
        self.weight > 0 && !self.is_overloaded(connections)
    }
}

/// Live connection counts of the servers, by index into the `dests` slice of a pick.
///
/// The dataplane sums each worker's single-writer counters with relaxed loads, so a count may
/// lag the truth by the connections other workers opened or closed during the pick. IPVS's own
/// counters are read without a lock too; least-connection policies only need the order of
/// magnitude, and the error is bounded by the picks in flight.
pub trait Load {
    /// ESTABLISHED connections.
    fn active(&self, dest: usize) -> u64;
    /// Connections in any other state (and every UDP one).
    fn inactive(&self, dest: usize) -> u64;
    /// Both together.
    fn connections(&self, dest: usize) -> u64 {
        self.active(dest) + self.inactive(dest)
    }
}

/// No connections anywhere (tests, and policies that ignore load).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLoad;

impl Load for NoLoad {
    fn active(&self, _: usize) -> u64 {
        0
    }
    fn inactive(&self, _: usize) -> u64 {
        0
    }
}

impl Load for [(u64, u64)] {
    fn active(&self, dest: usize) -> u64 {
        self.get(dest).map_or(0, |c| c.0)
    }
    fn inactive(&self, dest: usize) -> u64 {
        self.get(dest).map_or(0, |c| c.1)
    }
}

/// The new connection being scheduled, as hashing policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub proto: u8,
    pub caddr: Ipv4Addr,
    pub cport: u16,
    pub vaddr: Ipv4Addr,
    pub vport: u16,
}

/// `-b` scheduler flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `sh-fallback` / `mh-fallback`: if the hashed server is unavailable, take another.
    pub fallback: bool,
    /// `sh-port` / `mh-port`: hash the client port too.
    pub port: bool,
}

/// The ipvsadm name of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnection,
    WeightedLeastConnection,
    ShortestExpectedDelay,
    NeverQueue,
    SourceHashing,
    DestinationHashing,
    Maglev,
    WeightedFailover,
    WeightedOverflow,
}

impl SchedulerKind {
    /// ipvsadm's default when `-s` is omitted.
    pub const IPVSADM_DEFAULT: &'static str = "wlc";

    pub const ALL: [SchedulerKind; 11] = [
        SchedulerKind::RoundRobin,
        SchedulerKind::WeightedRoundRobin,
        SchedulerKind::LeastConnection,
        SchedulerKind::WeightedLeastConnection,
        SchedulerKind::ShortestExpectedDelay,
        SchedulerKind::NeverQueue,
        SchedulerKind::SourceHashing,
        SchedulerKind::DestinationHashing,
        SchedulerKind::Maglev,
        SchedulerKind::WeightedFailover,
        SchedulerKind::WeightedOverflow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::RoundRobin => "rr",
            SchedulerKind::WeightedRoundRobin => "wrr",
            SchedulerKind::LeastConnection => "lc",
            SchedulerKind::WeightedLeastConnection => "wlc",
            SchedulerKind::ShortestExpectedDelay => "sed",
            SchedulerKind::NeverQueue => "nq",
            SchedulerKind::SourceHashing => "sh",
            SchedulerKind::DestinationHashing => "dh",
            SchedulerKind::Maglev => "mh",
            SchedulerKind::WeightedFailover => "fo",
            SchedulerKind::WeightedOverflow => "ovf",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every scheduler name IPVS knows, to tell "not implemented yet" apart from "no such thing".
const IPVS_NAMES: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownScheduler {
    #[error("scheduler '{0}' is an IPVS scheduler that xvs does not implement yet (available: rr wrr lc wlc sed nq sh dh mh fo ovf)")]
    NotImplemented(String),
    #[error("unknown scheduler '{0}' (IPVS schedulers: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)")]
    Unknown(String),
}

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if let Some(kind) = SchedulerKind::ALL.iter().find(|k| k.name() == name) {
            return Ok(*kind);
        }
        if IPVS_NAMES.contains(&name) {
            Err(UnknownScheduler::NotImplemented(name.to_string()))
        } else {
            Err(UnknownScheduler::Unknown(name.to_string()))
        }
    }
}

/// A policy instance for one service: a closed enum, so a pick is a direct call.
#[derive(Debug)]
pub enum Scheduler {
    RoundRobin(rr::RoundRobin),
    WeightedRoundRobin(wrr::WeightedRoundRobin),
    LeastConnection(lc::LeastConnection),
    WeightedLeastConnection(wlc::WeightedLeastConnection),
    ShortestExpectedDelay(sed::ShortestExpectedDelay),
    NeverQueue(nq::NeverQueue),
    SourceHashing(sh::SourceHashing),
    DestinationHashing(dh::DestinationHashing),
    Maglev(mh::Maglev),
    WeightedFailover(fo::WeightedFailover),
    WeightedOverflow(ovf::WeightedOverflow),
}

impl Scheduler {
    /// A scheduler of `kind` for `dests` (tables are built here, never during a pick).
    pub fn new(kind: SchedulerKind, dests: &[Dest], flags: Flags) -> Self {
        match kind {
            SchedulerKind::RoundRobin => Scheduler::RoundRobin(rr::RoundRobin::default()),
            SchedulerKind::WeightedRoundRobin => {
                Scheduler::WeightedRoundRobin(wrr::WeightedRoundRobin::new(dests))
            }
            SchedulerKind::LeastConnection => Scheduler::LeastConnection(lc::LeastConnection),
            SchedulerKind::WeightedLeastConnection => {
                Scheduler::WeightedLeastConnection(wlc::WeightedLeastConnection)
            }
            SchedulerKind::ShortestExpectedDelay => {
                Scheduler::ShortestExpectedDelay(sed::ShortestExpectedDelay)
            }
            SchedulerKind::NeverQueue => Scheduler::NeverQueue(nq::NeverQueue),
            SchedulerKind::SourceHashing => {
                Scheduler::SourceHashing(sh::SourceHashing::new(dests, flags))
            }
            SchedulerKind::DestinationHashing => {
                Scheduler::DestinationHashing(dh::DestinationHashing::new(dests))
            }
            SchedulerKind::Maglev => Scheduler::Maglev(mh::Maglev::new(dests, flags)),
            SchedulerKind::WeightedFailover => Scheduler::WeightedFailover(fo::WeightedFailover),
            SchedulerKind::WeightedOverflow => Scheduler::WeightedOverflow(ovf::WeightedOverflow),
        }
    }

    /// A scheduler for a new configuration snapshot, carrying over the rotation of `previous`
    /// when it is the same round-robin policy (wrr as IPVS's ip_vs_wrr_dest_changed does), so
    /// a reconfiguration does not restart it.
    pub fn succeed(
        kind: SchedulerKind,
        dests: &[Dest],
        flags: Flags,
        previous: Option<&Scheduler>,
    ) -> Self {
        match (kind, previous) {
            (SchedulerKind::RoundRobin, Some(Scheduler::RoundRobin(rr))) => {
                Scheduler::RoundRobin(rr::RoundRobin::starting_at(rr.position()))
            }
            (SchedulerKind::WeightedRoundRobin, Some(Scheduler::WeightedRoundRobin(wrr))) => {
                Scheduler::WeightedRoundRobin(wrr::WeightedRoundRobin::succeeding(dests, wrr))
            }
            (kind, _) => Scheduler::new(kind, dests, flags),
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::RoundRobin(_) => SchedulerKind::RoundRobin,
            Scheduler::WeightedRoundRobin(_) => SchedulerKind::WeightedRoundRobin,
            Scheduler::LeastConnection(_) => SchedulerKind::LeastConnection,
            Scheduler::WeightedLeastConnection(_) => SchedulerKind::WeightedLeastConnection,
            Scheduler::ShortestExpectedDelay(_) => SchedulerKind::ShortestExpectedDelay,
            Scheduler::NeverQueue(_) => SchedulerKind::NeverQueue,
            Scheduler::SourceHashing(_) => SchedulerKind::SourceHashing,
            Scheduler::DestinationHashing(_) => SchedulerKind::DestinationHashing,
            Scheduler::Maglev(_) => SchedulerKind::Maglev,
            Scheduler::WeightedFailover(_) => SchedulerKind::WeightedFailover,
            Scheduler::WeightedOverflow(_) => SchedulerKind::WeightedOverflow,
        }
    }

    /// Index into `dests` of the server for a new connection, or `None` when no server may
    /// take one (all quiesced or overloaded, or none configured).
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        match self {
            Scheduler::RoundRobin(s) => s.pick(dests, load),
            Scheduler::WeightedRoundRobin(s) => s.pick(dests, load),
            Scheduler::LeastConnection(s) => s.pick(dests, load),
            Scheduler::WeightedLeastConnection(s) => s.pick(dests, load),
            Scheduler::ShortestExpectedDelay(s) => s.pick(dests, load),
            Scheduler::NeverQueue(s) => s.pick(dests, load),
            Scheduler::SourceHashing(s) => s.pick(dests, load, flow),
            Scheduler::DestinationHashing(s) => s.pick(dests, load, flow),
            Scheduler::Maglev(s) => s.pick(dests, load, flow),
            Scheduler::WeightedFailover(s) => s.pick(dests, load),
            Scheduler::WeightedOverflow(s) => s.pick(dests, load),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_explain() {
        for kind in SchedulerKind::ALL {
            assert_eq!(kind.name().parse::<SchedulerKind>(), Ok(kind));
        }
        assert!(matches!(
            "lblc".parse::<SchedulerKind>(),
            Err(UnknownScheduler::NotImplemented(_))
        ));
        assert!(matches!(
            "fastest".parse::<SchedulerKind>(),
            Err(UnknownScheduler::Unknown(_))
        ));
    }

    #[test]
    fn succeed_keeps_rotation() {
        let dests = [Dest::new(Ipv4Addr::new(198, 19, 0, 1), 80, 1); 3];
        let flow = Flow {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 1),
            cport: 1000,
            vaddr: Ipv4Addr::new(198, 18, 0, 129),
            vport: 80,
        };
        let old = Scheduler::new(SchedulerKind::RoundRobin, &dests, Flags::default());
        assert_eq!(old.pick(&dests, &NoLoad, &flow), Some(0));
        let new = Scheduler::succeed(
            SchedulerKind::RoundRobin,
            &dests,
            Flags::default(),
            Some(&old),
        );
        assert_eq!(new.pick(&dests, &NoLoad, &flow), Some(1));
    }
}
