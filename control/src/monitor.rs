//! What the director knows about its real servers' health: one [`Tracker`] per (service, real
//! server) whose service has a check, the [`Checker`] probing them, and the results it sends.
//!
//! The control thread owns it (inside the [`crate::apply::Director`]): after every committed
//! change it gets the new set of targets ([`Monitor::sync`]); on every control-loop tick it
//! drains the probe results ([`Monitor::drain`]) and, when a server flips between up and down,
//! the director publishes a snapshot in which a failed server has weight 0 (no new
//! connections; established ones keep flowing, as when keepalived quiesces a server).
//! A server starts up: adding a checked server never blackholes it while the first probes run.

use crate::health::{CheckResult, Checker, ProbeSource, Target, Tracker};
use crate::protocol::{HealthInfo, HealthState, RealKey, ServiceKey};
use crossbeam::channel::Receiver;
use std::collections::BTreeMap;
use std::time::Instant;

/// A real server's state flip, for the daemon's log.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub service: ServiceKey,
    pub real: RealKey,
    pub state: HealthState,
    pub error: Option<String>,
}

/// Trackers, and the probing threads when checks run for real.
#[derive(Default)]
pub struct Monitor {
    trackers: BTreeMap<(ServiceKey, RealKey), (Target, Tracker)>,
    probes: Option<(Checker, Receiver<CheckResult>)>,
}

impl Monitor {
    /// Starts the probing threads; probes leave from `source` (the director's internal
    /// addresses). Without this, trackers exist but only [`Monitor::record`] feeds
    /// them (unit tests).
    pub fn start_probes(&mut self, source: ProbeSource) -> std::io::Result<()> {
        // Unbounded: the checker drops results rather than block on a full channel; the
        // control loop drains it every tick.
        let (sender, receiver) = crossbeam::channel::unbounded();
        let checker = Checker::start(sender, source)?;
        checker.set_targets(self.targets());
        self.probes = Some((checker, receiver));
        Ok(())
    }

    /// Makes `targets` the checked set: trackers of servers still checked keep their state
    /// (also when the check's parameters change), new ones start up, others are forgotten.
    pub fn sync(&mut self, targets: Vec<Target>, now: Instant) {
        let mut next = BTreeMap::new();
        for target in targets {
            let key = (target.service, target.real);
            let tracker = match self.trackers.remove(&key) {
                Some((_, tracker)) => tracker,
                None => Tracker::new(now),
            };
            next.insert(key, (target, tracker));
        }
        self.trackers = next;
        // The checker keeps the schedule of targets that did not change.
        if let Some((checker, _)) = &self.probes {
            checker.set_targets(self.targets());
        }
    }

    fn targets(&self) -> Vec<Target> {
        self.trackers.values().map(|(t, _)| t.clone()).collect()
    }

    /// Applies every probe result that arrived; returns the servers that flipped.
    pub fn drain(&mut self) -> Vec<Transition> {
        let results: Vec<CheckResult> = match &self.probes {
            Some((_, receiver)) => receiver.try_iter().collect(),
            None => Vec::new(),
        };
        results.into_iter().filter_map(|r| self.record(r)).collect()
    }

    /// Applies one probe result; `Some` when the server flipped. Results for servers no
    /// longer checked (a probe in flight during a change) are ignored.
    pub fn record(&mut self, result: CheckResult) -> Option<Transition> {
        let (target, tracker) = self.trackers.get_mut(&(result.service, result.real))?;
        let error = result.error.clone();
        let state = tracker.record(&target.spec, result.ok, result.error, result.at)?;
        Some(Transition {
            service: result.service,
            real: result.real,
            state,
            error,
        })
    }

    /// Whether the check of `real` in `service` says it is down.
    pub fn is_down(&self, service: &ServiceKey, real: &RealKey) -> bool {
        self.trackers
            .get(&(*service, *real))
            .is_some_and(|(_, t)| t.state() == HealthState::Down)
    }

    /// What `-L --health` shows for `real` in `service`; `None` when it is not checked.
    pub fn info(&self, service: &ServiceKey, real: &RealKey, now: Instant) -> Option<HealthInfo> {
        self.trackers
            .get(&(*service, *real))
            .map(|(_, t)| t.info(now))
    }
}
