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
use std::net::IpAddr;
use std::str::FromStr;

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

/// What a policy knows about a real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dest {
    /// The server's address and port: its identity for hashing policies (mh), so that two
    /// directors with the same configuration build the same tables.
    pub addr: IpAddr,
    pub port: u16,
    /// 0..=65535; 0 quiesces the server (no new connections, established ones keep flowing).
    pub weight: u32,
    /// `-x`: no new connections while active + inactive connections reach it (0: no limit).
    pub upper_threshold: u32,
    /// `-y`: an overloaded server takes new connections again below it (see
    /// [`Dest::overload_cleared`]).
    pub lower_threshold: u32,
}

/// The indexes of `dests` in their canonical order: by address, then port (then list order,
/// for duplicates). The hashing policies (`mh`, `sh`) build their tables in this order, so
/// that directors with the same servers build the same tables whatever order the servers
/// were added in, or re-added after a restart: what several directors behind ECMP need to
/// send a flow to the same server. IPVS builds in list order; for servers added in ascending
/// order the two agree.
pub fn canonical_order(dests: &[Dest]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..dests.len()).collect();
    order.sort_by_key(|&i| (dests[i].addr, dests[i].port, i));
    order
}

impl Dest {
    /// A server with weight `weight` and no thresholds.
    pub fn new(addr: impl Into<IpAddr>, port: u16, weight: u32) -> Self {
        Dest {
            addr: addr.into(),
            port,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    /// IPVS marks a server overloaded when its connections reach the upper threshold (and
    /// keeps the mark until [`Dest::overload_cleared`]; see [`Load::overloaded`]).
    #[inline]
    pub fn is_overloaded(&self, connections: u64) -> bool {
        self.upper_threshold > 0 && connections >= u64::from(self.upper_threshold)
    }

    /// Whether the server may take a new connection: weight above 0 and not overloaded.
    #[inline]
    pub fn is_available(&self, connections: u64) -> bool {
        self.weight > 0 && !self.is_overloaded(connections)
    }

    /// [`Dest::is_available`] for server `dest` of a pick, reading its connection count only
    /// when an upper threshold makes it matter (in the dataplane a count is a sum over workers).
    #[inline]
    pub fn accepts<L: Load + ?Sized>(&self, load: &L, dest: usize) -> bool {
        self.weight > 0 && (self.upper_threshold == 0 || !load.overloaded(dest, self))
    }

    /// IPVS's rule for leaving the overloaded state: below the lower threshold, or below three
    /// quarters of the upper one when no lower threshold is set (ip_vs_unbind_dest).
    #[inline]
    pub fn overload_cleared(&self, connections: u64) -> bool {
        if self.lower_threshold > 0 {
            connections < u64::from(self.lower_threshold)
        } else {
            connections * 4 < u64::from(self.upper_threshold) * 3
        }
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
    /// Whether server `dest` (described by `d`, which has an upper threshold) is overloaded.
    /// This default decides from the current count; a load that can remember the state (the
    /// dataplane's) applies IPVS's hysteresis: overloaded from the upper threshold until
    /// [`Dest::overload_cleared`].
    fn overloaded(&self, dest: usize, d: &Dest) -> bool {
        d.is_overloaded(self.connections(dest))
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

/// IPVS's 32-bit fold of an address for its hashing schedulers (`addr_fold` in
/// ip_vs_sh.c, ip_vs_dh.c, ip_vs_mh.c, ip_vs_lblc.c, ip_vs_lblcr.c), in host order: an IPv4
/// address itself, an IPv6 address's four 32-bit words XORed together.
#[inline]
pub fn fold(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let w = u128::from(a);
            (w >> 96) as u32 ^ (w >> 64) as u32 ^ (w >> 32) as u32 ^ w as u32
        }
    }
}

/// The new connection being scheduled, as hashing policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flow {
    pub proto: u8,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
}

/// `-b` scheduler flags, as IPVS keeps them: a service's generic flag bits
/// `IP_VS_SVC_F_SCHED1` (`fallback`) and `IP_VS_SVC_F_SCHED2` (`port`), which `sh` and `mh`
/// read as their fallback and port flags and every other scheduler ignores.
///
/// ipvsadm 1.31 (`parse_sched_flags`, `print_sched_flags`) names the bits per scheduler:
///
/// | bit | `sh` | `mh` | any scheduler |
/// |---|---|---|---|
/// | SCHED1 (`fallback`) | `sh-fallback` | `mh-fallback` | `flag-1` |
/// | SCHED2 (`port`) | `sh-port` | `mh-port` | `flag-2` |
/// | SCHED3 | - | - | `flag-3` |
///
/// `flag-1`/`flag-2` are accepted with every scheduler (on `sh`, `flag-1` is `sh-fallback`);
/// `sh-*` only with `sh` and `mh-*` only with `mh` ("incompatible scheduler flag"), a check
/// ipvsadm makes (the kernel only sees bits). Listings name the bits as ipvsadm prints them:
/// `sh-*` for `sh`, `mh-*` for `mh`, `flag-N` for the others. SCHED3 is read by no IPVS
/// scheduler and xvs does not keep it: `flag-3` is refused ([`Flags::from_names`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `sh-fallback` / `mh-fallback` (`flag-1`): if the hashed server is unavailable, take
    /// another.
    pub fallback: bool,
    /// `sh-port` / `mh-port` (`flag-2`): hash the client port too.
    pub port: bool,
}

impl Flags {
    /// The flags named by `names` (ipvsadm's `-b` list, split at the commas) for a service
    /// scheduled by `kind`. Errors are ipvsadm's messages, naming the flag:
    /// "invalid scheduler flag `x'" for a name ipvsadm does not know, "incompatible scheduler
    /// flag `sh-port'" for `sh-*` on a scheduler other than `sh` (`mh-*` likewise); `flag-3`
    /// is refused as kept by no xvs (or IPVS) scheduler.
    pub fn from_names<S: AsRef<str>>(kind: SchedulerKind, names: &[S]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for name in names {
            let name = name.as_ref();
            let (owner, fallback) = match name {
                "flag-1" => (None, true),
                "flag-2" => (None, false),
                "flag-3" => {
                    return Err(format!(
                        "scheduler flag `{name}' (IP_VS_SVC_F_SCHED3) is used by no IPVS \
                         scheduler and is not supported"
                    ))
                }
                "sh-fallback" => (Some(SchedulerKind::SourceHashing), true),
                "sh-port" => (Some(SchedulerKind::SourceHashing), false),
                "mh-fallback" => (Some(SchedulerKind::Maglev), true),
                "mh-port" => (Some(SchedulerKind::Maglev), false),
                _ => return Err(format!("invalid scheduler flag `{name}'")),
            };
            if owner.is_some_and(|owner| owner != kind) {
                return Err(format!("incompatible scheduler flag `{name}'"));
            }
            if fallback {
                flags.fallback = true;
            } else {
                flags.port = true;
            }
        }
        Ok(flags)
    }

    /// The names ipvsadm's `print_sched_flags` gives these flags on a service scheduled by
    /// `kind`, in its order (fallback, then port); empty when no flag is set.
    pub fn names(self, kind: SchedulerKind) -> Vec<&'static str> {
        let (fallback, port) = match kind {
            SchedulerKind::SourceHashing => ("sh-fallback", "sh-port"),
            SchedulerKind::Maglev => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        let mut names = Vec::new();
        if self.fallback {
            names.push(fallback);
        }
        if self.port {
            names.push(port);
        }
        names
    }
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
    TwoRandomChoices,
    LocalityLeastConnection,
    LocalityLeastConnectionReplicated,
}

impl SchedulerKind {
    /// ipvsadm's default when `-s` is omitted.
    pub const IPVSADM_DEFAULT: &'static str = "wlc";

    pub const ALL: [SchedulerKind; 14] = [
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
        SchedulerKind::TwoRandomChoices,
        SchedulerKind::LocalityLeastConnection,
        SchedulerKind::LocalityLeastConnectionReplicated,
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
            SchedulerKind::TwoRandomChoices => "twos",
            SchedulerKind::LocalityLeastConnection => "lblc",
            SchedulerKind::LocalityLeastConnectionReplicated => "lblcr",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name that is not one of IPVS's (xvs implements them all).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler '{0}' (IPVS schedulers: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)")]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL
            .iter()
            .find(|k| k.name() == name)
            .copied()
            .ok_or_else(|| UnknownScheduler(name.to_string()))
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
    TwoRandomChoices(twos::TwoRandomChoices),
    LocalityLeastConnection(lblc::LocalityLeastConnection),
    LocalityLeastConnectionReplicated(lblcr::LocalityLeastConnectionReplicated),
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
            SchedulerKind::TwoRandomChoices => {
                Scheduler::TwoRandomChoices(twos::TwoRandomChoices::new(dests))
            }
            SchedulerKind::LocalityLeastConnection => {
                Scheduler::LocalityLeastConnection(lblc::LocalityLeastConnection::new(dests))
            }
            SchedulerKind::LocalityLeastConnectionReplicated => {
                Scheduler::LocalityLeastConnectionReplicated(
                    lblcr::LocalityLeastConnectionReplicated::new(dests),
                )
            }
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
            Scheduler::TwoRandomChoices(_) => SchedulerKind::TwoRandomChoices,
            Scheduler::LocalityLeastConnection(_) => SchedulerKind::LocalityLeastConnection,
            Scheduler::LocalityLeastConnectionReplicated(_) => {
                SchedulerKind::LocalityLeastConnectionReplicated
            }
        }
    }

    /// Whether every director with the same servers picks the same one for a flow, from the
    /// flow and the servers alone (no counts, no rotation): the hashing policies. A flow that
    /// ECMP moves to another director may be scheduled there mid-flow (`--sloppy-tcp`) only
    /// with these, since it lands on the server it already talks to.
    pub fn is_consistent(&self) -> bool {
        matches!(
            self,
            Scheduler::Maglev(_) | Scheduler::SourceHashing(_) | Scheduler::DestinationHashing(_)
        )
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
            Scheduler::TwoRandomChoices(s) => s.pick(dests, load),
            Scheduler::LocalityLeastConnection(s) => s.pick(dests, load, flow),
            Scheduler::LocalityLeastConnectionReplicated(s) => s.pick(dests, load, flow),
        }
    }
}

/// Helpers shared by the policies' unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Dest;
    use std::net::Ipv4Addr;

    /// Servers 198.19.0.0 + i with the given weights, port 80.
    pub fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Dest::new(Ipv4Addr::from(0xC613_0000 + i as u32), 80, w))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn names_resolve_or_explain() {
        for kind in SchedulerKind::ALL {
            assert_eq!(kind.name().parse::<SchedulerKind>(), Ok(kind));
        }
        // Every name IPVS knows is implemented.
        let ipvs_names = [
            "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
            "twos",
        ];
        for name in ipvs_names {
            assert!(name.parse::<SchedulerKind>().is_ok(), "{name}");
        }
        assert!(matches!(
            "fastest".parse::<SchedulerKind>(),
            Err(UnknownScheduler(_))
        ));
    }

    proptest::proptest! {
        /// Scale-out behind ECMP: separate instances built from the same servers in any order
        /// (as directors that added them differently, or after a restart) send every flow to
        /// the same server, with and without fallback and port hashing.
        #[test]
        fn hashing_policies_agree_whatever_the_server_order(
            servers in proptest::collection::btree_map((0u32..64, 1u16..4), 0u32..4, 1..12),
            shuffle in proptest::collection::vec(proptest::prelude::any::<u32>(), 12),
            fallback in proptest::prelude::any::<bool>(),
            port in proptest::prelude::any::<bool>(),
            clients in proptest::collection::vec(
                (proptest::prelude::any::<u32>(), proptest::prelude::any::<u16>()), 64),
        ) {
            let dests: Vec<Dest> = servers
                .iter()
                .map(|(&(host, port), &weight)| {
                    Dest::new(Ipv4Addr::from(0xC613_0000 | host), port, weight)
                })
                .collect();
            let mut shuffled = dests.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, shuffle[i] as usize % (i + 1));
            }
            let flags = Flags { fallback, port };
            for kind in [
                SchedulerKind::Maglev,
                SchedulerKind::SourceHashing,
                SchedulerKind::DestinationHashing,
            ] {
                let a = Scheduler::new(kind, &dests, flags);
                let b = Scheduler::new(kind, &shuffled, flags);
                for &(client, cport) in &clients {
                    let flow = Flow {
                        proto: 6,
                        caddr: Ipv4Addr::from(0xC612_0000 | client >> 15).into(),
                        cport,
                        vaddr: Ipv4Addr::new(198, 18, 0, 129).into(),
                        vport: 80,
                    };
                    let server = |s: &Scheduler, d: &[Dest]| {
                        s.pick(d, &NoLoad, &flow).map(|i| (d[i].addr, d[i].port))
                    };
                    proptest::prop_assert_eq!(
                        server(&a, &dests),
                        server(&b, &shuffled),
                        "{:?}",
                        kind
                    );
                }
            }
        }
    }

    #[test]
    fn ipv6_addresses_fold_as_ipvs_folds_them() {
        use std::net::Ipv6Addr;
        assert_eq!(fold(Ipv4Addr::new(198, 18, 0, 1).into()), 0xC612_0001);
        let v6: Ipv6Addr = "2001:2::1".parse().unwrap();
        assert_eq!(fold(v6.into()), 0x2001_0002 ^ 1);
        let v6: Ipv6Addr = "2001:2:0:1:8000::ff".parse().unwrap();
        assert_eq!(
            fold(v6.into()),
            0x2001_0002 ^ 0x0000_0001 ^ 0x8000_0000 ^ 0x0000_00ff
        );
    }

    proptest::proptest! {
        /// IPVS hashes an IPv6 address by its fold alone, so every hashing policy sends an IPv6
        /// flow where it sends the IPv4 flow whose addresses are those folds, to IPv6 servers
        /// placed where the IPv4 servers of the same folds are.
        #[test]
        fn hashing_policies_treat_an_ipv6_address_as_its_fold(
            servers in proptest::collection::vec((proptest::prelude::any::<u32>(), 1u32..4), 1..12),
            clients in proptest::collection::vec(
                (proptest::prelude::any::<u128>(), proptest::prelude::any::<u128>(),
                 proptest::prelude::any::<u16>()), 32),
            port in proptest::prelude::any::<bool>(),
        ) {
            let v6 = |a: u128| IpAddr::from(std::net::Ipv6Addr::from(a));
            let v4 = |a: u128| IpAddr::from(Ipv4Addr::from(fold(v6(a))));
            // Servers `::x` fold to `x` and sort as `x` does, so both lists build their tables
            // in the same canonical order; clients and VIPs are any addresses.
            let dests6: Vec<Dest> =
                servers.iter().map(|&(a, w)| Dest::new(v6(a.into()), 80, w)).collect();
            let dests4: Vec<Dest> =
                servers.iter().map(|&(a, w)| Dest::new(v4(a.into()), 80, w)).collect();
            let flags = Flags { fallback: false, port };
            for kind in [
                SchedulerKind::Maglev,
                SchedulerKind::SourceHashing,
                SchedulerKind::DestinationHashing,
                SchedulerKind::LocalityLeastConnection,
                SchedulerKind::LocalityLeastConnectionReplicated,
            ] {
                let s6 = Scheduler::new(kind, &dests6, flags);
                let s4 = Scheduler::new(kind, &dests4, flags);
                for &(client, vip, cport) in &clients {
                    let flow = |addr: &dyn Fn(u128) -> IpAddr| Flow {
                        proto: 6,
                        caddr: addr(client),
                        cport,
                        vaddr: addr(vip),
                        vport: 80,
                    };
                    proptest::prop_assert_eq!(
                        s6.pick(&dests6, &NoLoad, &flow(&v6)),
                        s4.pick(&dests4, &NoLoad, &flow(&v4)),
                        "{:?}",
                        kind
                    );
                }
            }
        }
    }

    #[test]
    fn flag_names_parse_as_ipvsadm_does() {
        use SchedulerKind::*;
        let f = |fallback, port| Flags { fallback, port };
        let ok: &[(SchedulerKind, &[&str], Flags)] = &[
            (SourceHashing, &[], f(false, false)),
            (SourceHashing, &["sh-fallback"], f(true, false)),
            (SourceHashing, &["sh-port"], f(false, true)),
            (SourceHashing, &["sh-port", "sh-fallback"], f(true, true)),
            (SourceHashing, &["sh-port", "sh-port"], f(false, true)),
            // The generic names of the same bits.
            (SourceHashing, &["flag-1"], f(true, false)),
            (SourceHashing, &["flag-1", "sh-port"], f(true, true)),
            (Maglev, &["mh-fallback", "mh-port"], f(true, true)),
            (Maglev, &["flag-2"], f(false, true)),
            // Any scheduler takes flag-1 and flag-2 (IPVS stores them; only sh and mh read
            // them).
            (RoundRobin, &["flag-1"], f(true, false)),
            (
                WeightedLeastConnection,
                &["flag-1", "flag-2"],
                f(true, true),
            ),
        ];
        for (kind, names, flags) in ok {
            assert_eq!(
                Flags::from_names(*kind, names),
                Ok(*flags),
                "{kind} {names:?}"
            );
        }
        let bad: &[(SchedulerKind, &[&str], &str)] = &[
            (
                RoundRobin,
                &["sh-port"],
                "incompatible scheduler flag `sh-port'",
            ),
            (
                Maglev,
                &["sh-fallback"],
                "incompatible scheduler flag `sh-fallback'",
            ),
            (
                SourceHashing,
                &["mh-port"],
                "incompatible scheduler flag `mh-port'",
            ),
            (
                WeightedLeastConnection,
                &["mh-fallback"],
                "incompatible scheduler flag `mh-fallback'",
            ),
            (
                SourceHashing,
                &["sh-port", "fallback"],
                "invalid scheduler flag `fallback'",
            ),
            (
                SourceHashing,
                &["SH-PORT"],
                "invalid scheduler flag `SH-PORT'",
            ),
            (SourceHashing, &[""], "invalid scheduler flag `'"),
            (
                RoundRobin,
                &["flag-3"],
                "scheduler flag `flag-3' (IP_VS_SVC_F_SCHED3) is used by no IPVS scheduler and \
                 is not supported",
            ),
        ];
        for (kind, names, message) in bad {
            assert_eq!(
                Flags::from_names(*kind, names),
                Err(message.to_string()),
                "{kind} {names:?}"
            );
        }
    }

    #[test]
    fn flag_names_print_as_ipvsadm_does() {
        let both = Flags {
            fallback: true,
            port: true,
        };
        let port = Flags {
            fallback: false,
            port: true,
        };
        assert_eq!(
            both.names(SchedulerKind::SourceHashing),
            ["sh-fallback", "sh-port"]
        );
        assert_eq!(
            both.names(SchedulerKind::Maglev),
            ["mh-fallback", "mh-port"]
        );
        assert_eq!(both.names(SchedulerKind::RoundRobin), ["flag-1", "flag-2"]);
        assert_eq!(port.names(SchedulerKind::Maglev), ["mh-port"]);
        assert!(Flags::default()
            .names(SchedulerKind::SourceHashing)
            .is_empty());
        // Names round-trip for every scheduler.
        for kind in SchedulerKind::ALL {
            for flags in [Flags::default(), port, both] {
                assert_eq!(Flags::from_names(kind, &flags.names(kind)), Ok(flags));
            }
        }
    }

    #[test]
    fn succeed_keeps_rotation() {
        let dests = [Dest::new(Ipv4Addr::new(198, 19, 0, 1), 80, 1); 3];
        let flow = Flow {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 1).into(),
            cport: 1000,
            vaddr: Ipv4Addr::new(198, 18, 0, 129).into(),
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
