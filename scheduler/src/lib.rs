//! xvs-scheduler: IPVS scheduling policies behind one interface.
//!
//! A [`Scheduler`] is built by the control plane for one virtual service and lives inside the
//! immutable configuration snapshot that workers read. Workers call [`Scheduler::pick`] for each
//! new connection: picks are lock-free (at most a compare-and-swap on a shared cursor) and never
//! allocate. Policies are chosen by their ipvsadm name ([`SchedulerKind`]); each lives in its own
//! module with its algorithm explained in the module header.

use std::fmt;
use std::str::FromStr;

pub mod rr;

/// What a policy may know about a real server when it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// 0..=65535; 0 quiesces the server (no new connections, established ones keep flowing).
    pub weight: u32,
}

impl Dest {
    /// Whether the server may take new connections.
    #[inline]
    pub fn is_available(&self) -> bool {
        self.weight > 0
    }
}

/// The ipvsadm name of a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    RoundRobin,
}

impl SchedulerKind {
    /// ipvsadm's default when `-s` is omitted is `wlc`; until it is implemented, callers decide
    /// what to do with a missing name (see [`SchedulerKind::from_str`]).
    pub const IPVSADM_DEFAULT: &'static str = "wlc";

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::RoundRobin => "rr",
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
    #[error(
        "scheduler '{0}' is an IPVS scheduler that xvs does not implement yet (available: rr)"
    )]
    NotImplemented(String),
    #[error("unknown scheduler '{0}' (IPVS schedulers: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)")]
    Unknown(String),
}

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "rr" => Ok(SchedulerKind::RoundRobin),
            other if IPVS_NAMES.contains(&other) => {
                Err(UnknownScheduler::NotImplemented(other.to_string()))
            }
            other => Err(UnknownScheduler::Unknown(other.to_string())),
        }
    }
}

/// A policy instance for one service: a closed enum, so a pick is a direct call.
#[derive(Debug)]
pub enum Scheduler {
    RoundRobin(rr::RoundRobin),
}

impl Scheduler {
    /// A fresh scheduler of `kind`.
    pub fn new(kind: SchedulerKind) -> Self {
        match kind {
            SchedulerKind::RoundRobin => Scheduler::RoundRobin(rr::RoundRobin::default()),
        }
    }

    /// A scheduler of `kind` for a new configuration snapshot, carrying over the position of
    /// `previous` when it is the same policy so that a reconfiguration does not restart the
    /// rotation.
    pub fn succeed(kind: SchedulerKind, previous: Option<&Scheduler>) -> Self {
        match (kind, previous) {
            (SchedulerKind::RoundRobin, Some(Scheduler::RoundRobin(rr))) => {
                Scheduler::RoundRobin(rr::RoundRobin::starting_at(rr.position()))
            }
            (kind, _) => Scheduler::new(kind),
        }
    }

    pub fn kind(&self) -> SchedulerKind {
        match self {
            Scheduler::RoundRobin(_) => SchedulerKind::RoundRobin,
        }
    }

    /// Index into `dests` of the server for a new connection, or `None` when no server is
    /// available (all quiesced, or none configured).
    #[inline]
    pub fn pick(&self, dests: &[Dest]) -> Option<usize> {
        match self {
            Scheduler::RoundRobin(rr) => rr.pick(dests),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_explain() {
        assert_eq!("rr".parse::<SchedulerKind>(), Ok(SchedulerKind::RoundRobin));
        assert!(matches!(
            "wlc".parse::<SchedulerKind>(),
            Err(UnknownScheduler::NotImplemented(_))
        ));
        assert!(matches!(
            "fastest".parse::<SchedulerKind>(),
            Err(UnknownScheduler::Unknown(_))
        ));
    }

    #[test]
    fn succeed_keeps_rotation() {
        let dests = [Dest { weight: 1 }; 3];
        let old = Scheduler::new(SchedulerKind::RoundRobin);
        assert_eq!(old.pick(&dests), Some(0));
        let new = Scheduler::succeed(SchedulerKind::RoundRobin, Some(&old));
        assert_eq!(new.pick(&dests), Some(1));
    }
}
