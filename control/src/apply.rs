//! The configuration model: validates commands, builds snapshots, keeps the XDP maps in step.
//!
//! [`Director`] owns the configuration (virtual services and their real servers). A change is
//! made on a copy, validated completely, and only then committed: a new dataplane
//! [`Snapshot`] is published to the workers and the XDP steering maps and managed neighbour
//! entries are brought in line. A rejected command leaves everything untouched.
//!
//! Nothing is lost by reconfiguration: connection entries carry their own NAT addresses, so
//! established connections to a real server (or service) that was removed keep flowing until
//! they end. Such a server stays "draining": its traffic is still steered to the workers until
//! its last connection expires, then its steering entry and counter slot are released
//! ([`Director::housekeeping`]).

use crate::estimator::{self, Estimator};
use crate::health::{ProbeSource, Target};
use crate::monitor::{Monitor, Transition};
use crate::protocol::{
    CheckSpec, Command, ConnectionInfo, ConnectionsReply, Counters, ErrorCode, Forward, ListReply,
    Netmask, Protocol, RealInfo, RealKey, Reply, ServiceInfo, ServiceKey, Sloppy, StatsReply,
    Timeouts as TimeoutsReply, TunnelChecksum, TunnelKind, TunnelSpec, VersionInfo,
    WorkerStats as WorkerStatsReply, DEFAULT_NETMASK, DEFAULT_PREFIX_LEN, MAX_PERSISTENT_TIMEOUT,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use xvs_dataplane::conntrack::{dump_connections, Address, ConnDump, ConnEntry, DumpResult};
use xvs_dataplane::fastpath::{ConnId, FastFamily};
use xvs_dataplane::persist::{prefix_len6, prefix_mask6};
use xvs_dataplane::process::Side;
use xvs_dataplane::publish::Publisher;
use xvs_dataplane::snapshot::{
    Encap, Interface, Method, Persistence, RealId, RealServer, Service, ServiceId, Snapshot,
    Timeouts, Tunnel, Vip, PROTO_TCP, PROTO_UDP,
};
use xvs_dataplane::stats::{TrafficTotals, WorkerStats, MAX_REALS, MAX_SERVICES};
use xvs_dataplane::xsk::{QueueCounters, SocketCounters};
use xvs_scheduler::{Dest, Flags, Scheduler, SchedulerKind, UnknownScheduler};

mod family;

/// What `ipvsadm -L` shows as `(size=N)`: IPVS's default connection hash size.
pub const CONN_TAB_SIZE: u32 = 4096;
const MAX_WEIGHT: u32 = 65535;
/// How long `connections` waits for the workers' answers.
const DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest connection timeout `--set` accepts, seconds: IPVS refuses more than
/// `INT_MAX / HZ` (HZ = 1000).
const MAX_CONN_TIMEOUT: u32 = i32::MAX as u32 / 1000;

/// How configuration reaches the kernel side of the dataplane: the XDP programs' endpoint
/// maps and the managed neighbour entries. A trait so the model is testable without root.
pub trait Steering {
    /// Redirect (or stop redirecting) traffic to this VIP:port on the external interface.
    fn set_service(&mut self, vip: Vip, on: bool) -> io::Result<()>;
    /// Redirect (or stop redirecting) traffic from this real server on the internal interface.
    fn set_real(&mut self, real: Vip, on: bool) -> io::Result<()>;
    /// Keep (or stop keeping) the real server's MAC resolved (by ARP or neighbour discovery).
    fn set_neighbour(&mut self, addr: IpAddr, on: bool);
    /// Whether `addr` is on a network of the internal interface (a connected route of it, of
    /// `addr`'s family), as a direct-routing real server must be. Without routes to read
    /// (tests), every address is.
    fn on_internal_link(&mut self, _addr: IpAddr) -> io::Result<bool> {
        Ok(true)
    }
    /// Claim (or give back) a FullNAT local address: frames to it from steered real servers
    /// go to the workers, even where it is one of the director's own addresses (whose
    /// frames otherwise go to its kernel).
    fn set_fullnat_addr(&mut self, _addr: IpAddr, _on: bool) -> io::Result<()> {
        Ok(())
    }
    /// What the XDP program did with the frames of one rx queue.
    fn queue_counters(&self, _side: Side, _queue: u32) -> QueueCounters {
        QueueCounters::default()
    }
    /// The kernel's drop counters of the AF_XDP socket of one rx queue.
    fn socket_counters(&self, _side: Side, _queue: u32) -> SocketCounters {
        SocketCounters::default()
    }
    /// Traffic the XDP fast path forwarded for a service / a real server slot (the workers
    /// count the rest).
    fn fast_service_traffic(&self, _id: ServiceId) -> TrafficTotals {
        TrafficTotals::default()
    }
    fn fast_real_traffic(&self, _id: RealId) -> TrafficTotals {
        TrafficTotals::default()
    }
    /// When the fast path last forwarded a packet of each connection of family `A` on it, in
    /// CLOCK_MONOTONIC nanoseconds; `None` without a fast path.
    fn fast_last_seen<A: FastFamily>(&self) -> Option<HashMap<ConnId<A>, u64>> {
        None
    }
    /// While a capture runs, every frame goes to the workers (where the tap is): the XDP
    /// fast path is switched off, and back on after it.
    fn set_capturing(&mut self, _on: bool) -> io::Result<()> {
        Ok(())
    }
}

/// A worker as the control plane sees it.
#[derive(Debug, Clone)]
pub struct WorkerHandle {
    pub stats: Arc<WorkerStats>,
    pub core: Option<u32>,
    /// The rx queues whose sockets it owns.
    pub queues: Vec<(Side, u32)>,
    /// Where it answers requests for a copy of its connection entries.
    pub conns: Arc<ConnDump>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    UnknownScheduler(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("service {0} already exists")]
    ServiceExists(ServiceKey),
    #[error("no such service: {0}")]
    NoSuchService(ServiceKey),
    #[error("real server {real} already exists in service {service}")]
    RealExists { service: ServiceKey, real: RealKey },
    #[error("no such real server {real} in service {service}")]
    NoSuchReal { service: ServiceKey, real: RealKey },
    #[error("{0}")]
    Internal(String),
    /// A command of a batch (or of a configuration) failed: nothing of it was applied.
    #[error("command {position} of {total} ({command}): {error}")]
    InBatch {
        /// 1-based.
        position: usize,
        total: usize,
        command: &'static str,
        error: Box<ApplyError>,
    },
}

impl ApplyError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ApplyError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            ApplyError::UnknownScheduler(_) => ErrorCode::UnknownScheduler,
            ApplyError::Unsupported(_) => ErrorCode::Unsupported,
            ApplyError::ServiceExists(_) => ErrorCode::ServiceExists,
            ApplyError::NoSuchService(_) => ErrorCode::NoSuchService,
            ApplyError::RealExists { .. } => ErrorCode::RealExists,
            ApplyError::NoSuchReal { .. } => ErrorCode::NoSuchReal,
            ApplyError::Internal(_) => ErrorCode::Internal,
            ApplyError::InBatch { error, .. } => error.code(),
        }
    }
}

/// The slot id of a service or real server made by a change not yet committed: slots are
/// only taken once the whole change is known to be valid ([`Director::assign_slots`]).
const NEW_SLOT: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
struct RealConfig {
    key: RealKey,
    weight: u32,
    /// `-g` / `-m`: how its packets are forwarded.
    method: Method,
    /// `-x` / `-y`; `lower_threshold <= upper_threshold` always holds.
    upper_threshold: u32,
    lower_threshold: u32,
    id: RealId,
}

/// A service of the model. Its key (and its real servers') are the protocol's, IPv4 or IPv6;
/// [`family`] has checked what the dataplane can forward (an IPv6 service has no tunnelled
/// real server; a real server has its service's family).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServiceConfig {
    scheduler: SchedulerKind,
    /// `-b`: the flag bits, kept (as IPVS keeps them) when only the scheduler changes.
    flags: Flags,
    /// `-p [timeout] [-M netmask]`; `None`: not persistent. The netmask has the service's
    /// family (an IPv6 prefix length as its mask). A non-persistent service keeps no netmask
    /// (IPVS keeps one but neither uses nor lists it).
    persistence: Option<Persistence>,
    id: ServiceId,
    /// In the order they were added: the round-robin order.
    reals: Vec<RealConfig>,
    /// Health check of every real server (`set_check`).
    check: Option<CheckSpec>,
    /// `set_conn_limit`; 0: none.
    max_conns: u32,
    /// `add_laddr`: FullNAT's local addresses (of the service's family), in the order they
    /// were added.
    local_addrs: Vec<IpAddr>,
}

/// Everything a configuration command can change; commands work on a copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Config {
    services: BTreeMap<ServiceKey, ServiceConfig>,
    timeouts: Timeouts,
    /// `set_sloppy`.
    sloppy: Sloppy,
}

/// A change being prepared: the next configuration and what committing it implies.
#[derive(Debug, Default)]
struct Transaction {
    next: Config,
    /// Real servers it removes (they drain if they have connections).
    removed: Vec<Draining>,
    /// `zero` requests: counters to reset at commit (`None`: every service).
    zero: Vec<Option<ServiceKey>>,
}

/// A removed real server whose connections are still flowing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Draining {
    service: ServiceKey,
    service_id: ServiceId,
    /// The whole service was removed (its VIP stays steered while this drains).
    service_removed: bool,
    real: RealKey,
    real_id: RealId,
    /// Its method: only a masqueraded (or FullNAT) server's replies stay steered while it
    /// drains.
    method: Method,
}

/// A FullNAT local address that left the configuration while connections of its service
/// may still use it: it stays claimed ([`Steering::set_fullnat_addr`]) until the FullNAT
/// real servers its service had then have no connection left.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RetiredLaddr {
    addr: IpAddr,
    reals: Vec<RealId>,
}

/// Counter slots: allocated per service / real server, reused after release.
#[derive(Debug)]
struct SlotPool {
    free: Vec<u32>,
    next: u32,
    max: u32,
}

impl SlotPool {
    fn new(max: usize) -> Self {
        SlotPool {
            free: Vec::new(),
            next: 0,
            max: max as u32,
        }
    }

    fn available(&self) -> usize {
        self.free.len() + (self.max - self.next) as usize
    }

    fn take(&mut self) -> Option<u32> {
        self.free.pop().or_else(|| {
            (self.next < self.max).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }

    fn give_back(&mut self, slot: u32) {
        self.free.push(slot);
    }
}

/// The control plane's model of one director.
pub struct Director<S: Steering> {
    config: Config,
    draining: Vec<Draining>,
    publisher: Publisher<Snapshot>,
    external: Interface,
    internal: Interface,
    steering: S,
    steered_services: BTreeSet<Vip>,
    steered_reals: BTreeSet<Vip>,
    managed_neighbours: BTreeSet<IpAddr>,
    /// FullNAT local addresses claimed from the kernel: configured or retired.
    claimed_laddrs: BTreeSet<IpAddr>,
    retired_laddrs: Vec<RetiredLaddr>,
    workers: Vec<WorkerHandle>,
    service_slots: SlotPool,
    real_slots: SlotPool,
    /// Counter values of a slot when it was (re)allocated or zeroed: reports show traffic
    /// since then.
    service_base: Vec<TrafficTotals>,
    real_base: Vec<TrafficTotals>,
    /// `--rate` estimators by slot, ticked by [`Director::housekeeping`].
    service_rates: Vec<Estimator>,
    real_rates: Vec<Estimator>,
    last_rate_tick: Instant,
    conn_max: u64,
    /// The IPv6 tables' capacity ([`Director::set_conn_max6`]).
    conn_max6: u64,
    /// Health-check state of the checked real servers.
    health: Monitor,
    /// `xvsd --sloppy-tcp --sloppy-udp`: what a configuration that does not `set_sloppy`
    /// (a `replace`, `xvsd --config`) starts from.
    default_sloppy: Sloppy,
    /// The addresses health checks leave from ([`Director::start_health_checks`]): never a
    /// FullNAT local address, whose replies go to the workers.
    health_source: ProbeSource,
    /// What `xvsd --announce` announces now ([`Director::set_announced`]), for listings.
    announced: Option<Vec<IpAddr>>,
}

impl<S: Steering> Director<S> {
    pub fn new(
        publisher: Publisher<Snapshot>,
        external: Interface,
        internal: Interface,
        steering: S,
        workers: Vec<WorkerHandle>,
        conn_max: u64,
    ) -> Self {
        Director {
            config: Config::default(),
            draining: Vec::new(),
            publisher,
            external,
            internal,
            steering,
            steered_services: BTreeSet::new(),
            steered_reals: BTreeSet::new(),
            managed_neighbours: BTreeSet::new(),
            claimed_laddrs: BTreeSet::new(),
            retired_laddrs: Vec::new(),
            workers,
            service_slots: SlotPool::new(MAX_SERVICES),
            real_slots: SlotPool::new(MAX_REALS),
            service_base: vec![TrafficTotals::default(); MAX_SERVICES],
            real_base: vec![TrafficTotals::default(); MAX_REALS],
            service_rates: vec![Estimator::default(); MAX_SERVICES],
            real_rates: vec![Estimator::default(); MAX_REALS],
            last_rate_tick: Instant::now(),
            conn_max,
            conn_max6: 0,
            health: Monitor::default(),
            default_sloppy: Sloppy::default(),
            health_source: ProbeSource::KERNEL,
            announced: None,
        }
    }

    /// `xvsd --sloppy-tcp --sloppy-udp`: sets them now and makes them what a `replace` that
    /// does not set them keeps.
    pub fn set_default_sloppy(&mut self, sloppy: Sloppy) -> Result<Reply, ApplyError> {
        self.default_sloppy = sloppy;
        self.execute(Command::SetSloppy {
            tcp: sloppy.tcp,
            udp: sloppy.udp,
        })
    }

    pub fn steering(&self) -> &S {
        &self.steering
    }

    /// The IPv6 connection tables' capacity (`--conn-max6`), for the stats reply.
    pub fn set_conn_max6(&mut self, conn_max6: u64) {
        self.conn_max6 = conn_max6;
    }

    /// See [`Steering::set_capturing`].
    pub fn set_capturing(&mut self, on: bool) -> io::Result<()> {
        self.steering.set_capturing(on)
    }

    /// Starts probing the real servers of services that have a check, from `source` (the
    /// director's internal address) when given. Without it checks are configured and listed
    /// but nothing probes (unit tests feed results through [`Director::record_health`]).
    pub fn start_health_checks(&mut self, source: ProbeSource) -> io::Result<()> {
        self.health_source = source;
        self.health.start_probes(source)
    }

    /// Applies the health-check results that arrived since the last call; a server that
    /// flipped gets its effective weight (0 while down) in a new snapshot. Returns the flips,
    /// for the log. Call it from the control loop's tick.
    pub fn poll_health(&mut self) -> Vec<Transition> {
        let flips = self.health.drain();
        if !flips.is_empty() {
            self.publish();
        }
        flips
    }

    /// Applies one probe result (what [`Director::poll_health`] does for each result).
    pub fn record_health(&mut self, result: crate::health::CheckResult) -> Option<Transition> {
        let flip = self.health.record(result)?;
        self.publish();
        Some(flip)
    }

    /// Executes one protocol command.
    pub fn execute(&mut self, command: Command) -> Result<Reply, ApplyError> {
        match command {
            Command::Version => Ok(Reply::Version(VersionInfo {
                daemon: env!("CARGO_PKG_VERSION").to_string(),
                ipvs: crate::protocol::IPVS_VERSION.to_string(),
                protocol: crate::protocol::PROTOCOL_VERSION,
            })),
            Command::List => Ok(Reply::List(self.list())),
            Command::Stats => Ok(Reply::Stats(self.stats())),
            Command::Timeouts => Ok(Reply::Timeouts(timeouts_reply(self.config.timeouts))),
            Command::Connections => Ok(Reply::Connections(self.connections())),
            // Served by the client's own thread (crate::capture), which streams it.
            Command::Capture { .. } => Err(ApplyError::Unsupported(
                "capture is only served alone on a control connection, by xvsd".into(),
            )),
            Command::Batch { commands } => {
                let mut tx = self.transaction();
                apply_all(&mut tx, commands, false)?;
                self.commit(tx)
            }
            Command::Replace { commands } => {
                let mut desired = Transaction::default();
                desired.next.sloppy = self.default_sloppy;
                apply_all(&mut desired, commands, true)?;
                let tx = reconcile(&self.config, desired.next);
                self.commit(tx)
            }
            change => {
                let mut tx = self.transaction();
                apply(&mut tx, change)?;
                self.commit(tx)
            }
        }
    }

    fn transaction(&self) -> Transaction {
        Transaction {
            next: self.config.clone(),
            ..Default::default()
        }
    }

    /// Takes a slot for every new service and real server of `next`, or refuses the whole
    /// change (taking nothing) when there are not enough.
    fn assign_slots(&mut self, next: &mut Config) -> Result<(), ApplyError> {
        let new_services = next.services.values().filter(|s| s.id == NEW_SLOT).count();
        let new_reals = next
            .services
            .values()
            .flat_map(|s| &s.reals)
            .filter(|r| r.id == NEW_SLOT)
            .count();
        if new_services > self.service_slots.available() {
            return Err(ApplyError::InvalidArgument(format!(
                "too many virtual services (at most {MAX_SERVICES})"
            )));
        }
        if new_reals > self.real_slots.available() {
            return Err(ApplyError::InvalidArgument(format!(
                "too many real servers (at most {MAX_REALS} over all services)"
            )));
        }
        for service in next.services.values_mut() {
            if service.id == NEW_SLOT {
                service.id = self.service_slots.take().unwrap_or_default();
                self.restart_service_counters(service.id);
            }
            for real in &mut service.reals {
                if real.id == NEW_SLOT {
                    real.id = self.real_slots.take().unwrap_or_default();
                    self.restart_real_counters(real.id);
                }
            }
        }
        Ok(())
    }

    /// Refuses direct routing to a real server that is not on a network of the internal
    /// interface: the frame keeps the VIP as destination, so a router in between would send
    /// it back. Checked for real servers that become direct-routed in this change only, so a
    /// route that later disappears does not block unrelated changes (the dataplane then drops
    /// their packets as `no_route`).
    fn check_direct_routes(&mut self, next: &Config) -> Result<(), ApplyError> {
        for (key, service) in &next.services {
            let before = self.config.services.get(key);
            for r in service.reals.iter().filter(|r| r.method == Method::Route) {
                let was_routed = before
                    .and_then(|s| s.reals.iter().find(|c| c.key == r.key))
                    .is_some_and(|c| c.method == Method::Route);
                if was_routed {
                    continue;
                }
                let on_link = self.steering.on_internal_link(r.key.addr).map_err(|e| {
                    ApplyError::Internal(format!("reading the routes for {}: {e}", r.key.addr))
                })?;
                if !on_link {
                    return Err(ApplyError::InvalidArgument(format!(
                        "direct routing (-g) needs real server {} on a network of the internal \
                         interface (a connected route), since its frames keep the VIP as \
                         destination; use masquerading (-m) to reach it through a router",
                        r.key.addr
                    )));
                }
            }
        }
        Ok(())
    }

    /// Refuses tunnelling (`-i`) to an IPv6 real server while the internal interface has no
    /// global IPv6 address: the tunnel's outer header leaves from it (as IPVS takes the
    /// route's source address), so without one the dataplane could only drop the packets
    /// (`no_route`). IPv4 tunnels leave from the interface's IPv4 address, which xvsd needs
    /// anyway.
    fn check_tunnel_sources(&self, next: &Config) -> Result<(), ApplyError> {
        if self.internal.addr6.is_some() {
            return Ok(());
        }
        let tunnelled6 = next.services.iter().find_map(|(key, service)| {
            let real = service
                .reals
                .iter()
                .find(|r| r.key.addr.is_ipv6() && matches!(r.method, Method::Tunnel(_)))?;
            Some((key, real))
        });
        match tunnelled6 {
            Some((key, real)) => Err(ApplyError::InvalidArgument(format!(
                "tunnelling (-i) to IPv6 real server {} of service {key} needs a global IPv6 \
                 address on the internal interface, the source of the outer IPv6 header; it \
                 has none (add one and restart xvsd)",
                real.key
            ))),
            None => Ok(()),
        }
    }

    /// Refuses a configuration whose FullNAT cannot work: a service with FullNAT real servers
    /// and no local address (replies need one), or a local address that is also a VIP (its
    /// frames would be taken for requests) or the internal interface's primary address (the
    /// director's own connections, health checks included, leave from it, and their replies
    /// would go to the workers). Each address is compared within its family: with the IPv4
    /// VIPs and primary address, or with the IPv6 ones.
    fn check_local_addrs(&self, next: &Config) -> Result<(), ApplyError> {
        let vips: BTreeSet<IpAddr> = next.services.keys().map(|k| k.addr).collect();
        for (key, service) in &next.services {
            if service.local_addrs.is_empty()
                && service.reals.iter().any(|r| r.method == Method::FullNat)
            {
                return Err(ApplyError::InvalidArgument(format!(
                    "service {key} has FullNAT (--fullnat) real servers but no local address: \
                     add one with --add-laddr -z LIP"
                )));
            }
            for addr in &service.local_addrs {
                if vips.contains(addr) {
                    return Err(ApplyError::InvalidArgument(format!(
                        "local address {addr} of service {key} is a virtual service address"
                    )));
                }
                let primary = self.health_source.contains(*addr)
                    || match *addr {
                        IpAddr::V4(a) => a == self.internal.addr,
                        IpAddr::V6(a) => Some(a) == self.internal.addr6,
                    };
                if primary {
                    return Err(ApplyError::InvalidArgument(format!(
                        "local address {addr} of service {key} is the internal interface's \
                         primary address, which the director's own connections (health \
                         checks) use: give FullNAT another address"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Local addresses `next` no longer has in a service whose real servers may still have
    /// FullNAT connections using them: every real server of the service, configured or
    /// draining, whatever its method now (a connection keeps the method it was made with).
    fn retire_local_addrs(&mut self, next: &Config) {
        for (key, service) in &self.config.services {
            let kept = next.services.get(key).map(|s| &s.local_addrs);
            let configured = service.reals.iter().map(|r| r.id);
            let draining = self
                .draining
                .iter()
                .filter(|d| d.service == *key)
                .map(|d| d.real_id);
            let reals: Vec<RealId> = configured
                .chain(draining)
                .filter(|&id| id != NEW_SLOT)
                .collect();
            for addr in &service.local_addrs {
                if !reals.is_empty() && !kept.is_some_and(|k| k.contains(addr)) {
                    self.retired_laddrs.push(RetiredLaddr {
                        addr: *addr,
                        reals: reals.clone(),
                    });
                }
            }
        }
    }

    /// Reports of this slot start from zero now (new owner, or `zero`).
    fn restart_service_counters(&mut self, id: ServiceId) {
        self.service_base[id as usize] = self.service_totals_raw(id);
        self.service_rates[id as usize] = Estimator::default();
    }

    fn restart_real_counters(&mut self, id: RealId) {
        self.real_base[id as usize] = self.real_totals_raw(id).0;
        self.real_rates[id as usize] = Estimator::default();
    }

    /// Makes the transaction's configuration the running one, all or nothing.
    fn commit(&mut self, mut tx: Transaction) -> Result<Reply, ApplyError> {
        self.check_direct_routes(&tx.next)?;
        self.check_tunnel_sources(&tx.next)?;
        self.check_local_addrs(&tx.next)?;
        self.assign_slots(&mut tx.next)?;
        self.retire_local_addrs(&tx.next);
        self.config = tx.next;
        for gone in tx.removed {
            // Added and removed within one batch: it never had a slot.
            if gone.real_id == NEW_SLOT {
                continue;
            }
            if self.real_connections(gone.real_id) > 0 {
                self.draining.push(gone);
            } else {
                self.real_slots.give_back(gone.real_id);
            }
        }
        for service in tx.zero {
            self.zero(service);
        }
        self.release_unused_service_slots();
        self.health.sync(self.check_targets(), Instant::now());
        self.publish();
        self.sync_steering()?;
        Ok(Reply::Done(Default::default()))
    }

    /// `ipvsadm -Z`: traffic counters and rates of one service (or all) and its real servers
    /// restart from zero.
    fn zero(&mut self, service: Option<ServiceKey>) {
        let slots: Vec<(ServiceId, Vec<RealId>)> = self
            .config
            .services
            .iter()
            .filter(|(key, _)| service.is_none_or(|s| s == **key))
            .map(|(_, c)| (c.id, c.reals.iter().map(|r| r.id).collect()))
            .collect();
        for (service_id, reals) in slots {
            self.restart_service_counters(service_id);
            for id in reals {
                self.restart_real_counters(id);
            }
        }
    }

    /// Traffic of a service since its slot was taken or zeroed.
    fn service_counters(&self, id: ServiceId) -> Counters {
        counters(
            self.service_totals_raw(id)
                .since(self.service_base[id as usize]),
        )
    }

    /// Traffic, active and inactive connections of a real server (traffic since its slot was
    /// taken or zeroed).
    fn real_counters(&self, id: RealId) -> (Counters, u64, u64) {
        let (traffic, active, inactive) = self.real_totals_raw(id);
        (
            counters(traffic.since(self.real_base[id as usize])),
            active,
            inactive,
        )
    }

    /// One estimator tick for every service and real server, every [`estimator::TICK`].
    fn tick_rates(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_rate_tick) < estimator::TICK {
            return;
        }
        self.last_rate_tick = now;
        let slots: Vec<(ServiceId, Vec<RealId>)> = self
            .config
            .services
            .values()
            .map(|c| (c.id, c.reals.iter().map(|r| r.id).collect()))
            .collect();
        for (service_id, reals) in slots {
            let now = self.service_counters(service_id);
            self.service_rates[service_id as usize].tick(now);
            for id in reals {
                let now = self.real_counters(id).0;
                self.real_rates[id as usize].tick(now);
            }
        }
    }

    /// Every real server of every service that has a check.
    fn check_targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for (service, config) in &self.config.services {
            let Some(spec) = &config.check else { continue };
            for r in &config.reals {
                targets.push(Target {
                    service: *service,
                    real: r.key,
                    spec: spec.clone(),
                });
            }
        }
        targets
    }

    /// Builds and publishes the snapshot of the current configuration, carrying over each
    /// scheduler's position. A real server whose check says down has weight 0 in it.
    fn publish(&mut self) {
        let previous = self.publisher.current();
        let services = self
            .config
            .services
            .iter()
            .map(|(key, config)| {
                let vip = vip_of(key);
                let old = previous.service(&vip).map(|s| &s.scheduler);
                let down = |r: &RealConfig| self.health.is_down(key, &r.key);
                let dests: Box<[Dest]> = config
                    .reals
                    .iter()
                    .map(|r| Dest {
                        upper_threshold: r.upper_threshold,
                        lower_threshold: r.lower_threshold,
                        ..Dest::new(r.key.addr, r.key.port, if down(r) { 0 } else { r.weight })
                    })
                    .collect();
                let service = Service {
                    id: config.id,
                    vip,
                    scheduler: Scheduler::succeed(config.scheduler, &dests, config.flags, old),
                    dests,
                    reals: config
                        .reals
                        .iter()
                        .map(|r| RealServer {
                            id: r.id,
                            addr: r.key.addr,
                            port: r.key.port,
                            method: r.method,
                            failed: down(r),
                        })
                        .collect(),
                    persistence: config.persistence,
                    max_conns: config.max_conns,
                    local_addrs: config.local_addrs.iter().copied().collect(),
                };
                (vip, service)
            })
            .collect();
        let draining = self
            .draining
            .iter()
            .filter(|d| d.service_removed)
            .map(|d| d.service.addr);
        let vip_addrs: BTreeSet<IpAddr> = self
            .config
            .services
            .keys()
            .map(|k| k.addr)
            .chain(draining)
            .collect();
        let (vip_addrs, vip_addrs6) = by_family(vip_addrs);
        let (local_addrs, local_addrs6) = by_family(self.local_addrs_in_use());
        self.publisher.publish(Snapshot {
            external: self.external,
            internal: self.internal,
            timeouts: self.config.timeouts,
            services,
            vip_addrs,
            vip_addrs6,
            local_addrs,
            local_addrs6,
            sloppy_tcp: self.config.sloppy.tcp,
        });
    }

    /// FullNAT local addresses connections may use: configured, or retired.
    fn local_addrs_in_use(&self) -> BTreeSet<IpAddr> {
        let configured = self.config.services.values().flat_map(|s| &s.local_addrs);
        let retired = self.retired_laddrs.iter().map(|r| &r.addr);
        configured.chain(retired).copied().collect()
    }

    /// Brings XDP steering and managed neighbours in line with services and draining servers.
    fn sync_steering(&mut self) -> Result<(), ApplyError> {
        let mut services = BTreeSet::new();
        let mut reals = BTreeSet::new();
        let mut neighbours = BTreeSet::new();
        let laddrs = self.local_addrs_in_use();
        // Only NAT's and FullNAT's replies come from RIP:rport (others answer from the VIP).
        // A tunnel's or FullNAT's real server may sit behind a router: it is resolved on
        // demand, not kept resolved.
        let on_link = |m: Method| matches!(m, Method::Masq | Method::Route);
        for (key, config) in &self.config.services {
            services.insert(vip_of(key));
            for r in &config.reals {
                if r.method.sees_replies() {
                    reals.insert(real_endpoint(key.proto, &r.key));
                }
                if on_link(r.method) {
                    neighbours.insert(r.key.addr);
                }
            }
        }
        for d in &self.draining {
            if d.service_removed {
                services.insert(vip_of(&d.service));
            }
            if d.method.sees_replies() {
                reals.insert(real_endpoint(d.service.proto, &d.real));
            }
            if on_link(d.method) {
                neighbours.insert(d.real.addr);
            }
        }
        let failed = |what: &str, e: io::Error| {
            ApplyError::Internal(format!("updating the XDP steering map for {what}: {e}"))
        };
        // Add before removing: traffic is never unsteered in between.
        for vip in services.difference(&self.steered_services) {
            self.steering
                .set_service(*vip, true)
                .map_err(|e| failed("a service", e))?;
        }
        for real in reals.difference(&self.steered_reals) {
            self.steering
                .set_real(*real, true)
                .map_err(|e| failed("a real server", e))?;
        }
        for addr in laddrs.difference(&self.claimed_laddrs) {
            self.steering
                .set_fullnat_addr(*addr, true)
                .map_err(|e| failed("a local address", e))?;
        }
        for addr in self.claimed_laddrs.difference(&laddrs) {
            self.steering
                .set_fullnat_addr(*addr, false)
                .map_err(|e| failed("a local address", e))?;
        }
        for vip in self.steered_services.difference(&services) {
            self.steering
                .set_service(*vip, false)
                .map_err(|e| failed("a service", e))?;
        }
        for real in self.steered_reals.difference(&reals) {
            self.steering
                .set_real(*real, false)
                .map_err(|e| failed("a real server", e))?;
        }
        for addr in neighbours.difference(&self.managed_neighbours) {
            self.steering.set_neighbour(*addr, true);
        }
        for addr in self.managed_neighbours.difference(&neighbours) {
            self.steering.set_neighbour(*addr, false);
        }
        self.steered_services = services;
        self.steered_reals = reals;
        self.managed_neighbours = neighbours;
        self.claimed_laddrs = laddrs;
        Ok(())
    }

    /// Releases draining servers whose last connection is gone and frees old snapshots. Call
    /// it periodically from the control thread.
    pub fn housekeeping(&mut self) {
        let before = self.draining.len();
        let drained: Vec<Draining> = {
            let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.draining)
                .into_iter()
                .partition(|d| self.real_connections(d.real_id) == 0);
            self.draining = still;
            done
        };
        for d in &drained {
            self.real_slots.give_back(d.real_id);
        }
        let retired = self.retired_laddrs.len();
        let retired_laddrs = std::mem::take(&mut self.retired_laddrs);
        self.retired_laddrs = retired_laddrs
            .into_iter()
            .filter(|r| r.reals.iter().any(|&id| self.real_connections(id) > 0))
            .collect();
        if self.draining.len() != before || self.retired_laddrs.len() != retired {
            self.release_unused_service_slots();
            if let Err(e) = self.sync_steering() {
                eprintln!("xvsd: {e}");
            }
        }
        self.tick_rates(Instant::now());
        self.publisher.collect();
    }

    /// Gives back slots of removed services that nothing refers to any more.
    fn release_unused_service_slots(&mut self) {
        let in_use: BTreeSet<ServiceId> = self
            .config
            .services
            .values()
            .map(|s| s.id)
            .chain(self.draining.iter().map(|d| d.service_id))
            .collect();
        let allocated = self.service_slots.next;
        let free: BTreeSet<u32> = self.service_slots.free.iter().copied().collect();
        for id in 0..allocated {
            if !in_use.contains(&id) && !free.contains(&id) {
                self.service_slots.give_back(id);
            }
        }
    }

    fn real_connections(&self, id: RealId) -> u64 {
        let (_, active, inactive) = self.real_totals_raw(id);
        active + inactive
    }

    fn service_totals_raw(&self, id: ServiceId) -> TrafficTotals {
        let mut t = self.steering.fast_service_traffic(id);
        for w in &self.workers {
            if let Some(s) = w.stats.service(id) {
                t += s.totals();
            }
        }
        t
    }

    /// Traffic, active and inactive connections of a real server slot, over all workers.
    fn real_totals_raw(&self, id: RealId) -> (TrafficTotals, u64, u64) {
        let mut t = self.steering.fast_real_traffic(id);
        let (mut active, mut inactive) = (0i64, 0i64);
        for w in &self.workers {
            if let Some(r) = w.stats.real(id) {
                t += r.traffic.totals();
                active += r.active.get();
                inactive += r.inactive.get();
            }
        }
        (t, active.max(0) as u64, inactive.max(0) as u64)
    }

    /// Records what `xvsd --announce` announces, for `list` (and the metrics).
    pub fn set_announced(&mut self, vips: impl IntoIterator<Item = IpAddr>) {
        self.announced = Some(vips.into_iter().collect());
    }

    /// The VIPs (both families) with a service that has at least `min_servers` real servers
    /// taking new connections (weight above 0 and not down by a health check): what a
    /// director behind ECMP may announce (see crate::announce).
    pub fn servable_vips(&self, min_servers: u32) -> BTreeSet<IpAddr> {
        self.config
            .services
            .iter()
            .filter(|(key, config)| {
                let available = config
                    .reals
                    .iter()
                    .filter(|r| r.weight > 0 && !self.health.is_down(key, &r.key))
                    .count();
                available >= min_servers as usize
            })
            .map(|(key, _)| key.addr)
            .collect()
    }

    /// Everything `ipvsadm -L` shows: services, real servers, connection counts, counters.
    pub fn list(&self) -> ListReply {
        let now = Instant::now();
        let services = self
            .config
            .services
            .iter()
            .map(|(key, config)| ServiceInfo {
                service: *key,
                scheduler: config.scheduler.name().to_string(),
                sched_flags: config
                    .flags
                    .names(config.scheduler)
                    .into_iter()
                    .map(String::from)
                    .collect(),
                persistent: config.persistence.map(|p| p.timeout_secs),
                netmask: config
                    .persistence
                    .map_or(Netmask::default_for(key.addr), |p| {
                        listed_netmask(p.netmask)
                    }),
                stats: self.service_counters(config.id),
                rates: self.service_rates[config.id as usize].rates(),
                check: config.check.clone(),
                max_conns: config.max_conns,
                local_addrs: config.local_addrs.clone(),
                reals: config
                    .reals
                    .iter()
                    .map(|r| {
                        let (stats, active, inactive) = self.real_counters(r.id);
                        let (forward, tunnel) = forward_of(r.method);
                        RealInfo {
                            real: r.key,
                            forward,
                            tunnel,
                            weight: r.weight,
                            upper_threshold: r.upper_threshold,
                            lower_threshold: r.lower_threshold,
                            active_conns: active,
                            inactive_conns: inactive,
                            // Templates are not counted per real server yet.
                            persist_conns: 0,
                            stats,
                            rates: self.real_rates[r.id as usize].rates(),
                            health: self.health.info(key, &r.key, now),
                        }
                    })
                    .collect(),
            })
            .collect();
        ListReply {
            conn_tab_size: CONN_TAB_SIZE,
            conn_max: self.conn_max,
            sloppy: self.config.sloppy,
            announced: self.announced.clone(),
            services,
        }
    }

    /// Every worker's connection entries (`ipvsadm -L -c`), of both families. Workers answer
    /// between batches; one that does not within [`DUMP_TIMEOUT`] is counted as missing.
    fn connections(&self) -> ConnectionsReply {
        let slots: Vec<Arc<ConnDump>> = self.workers.iter().map(|w| Arc::clone(&w.conns)).collect();
        let mut dump = dump_connections(&slots, DUMP_TIMEOUT);
        self.fast_path_expiry(&mut dump.entries);
        self.fast_path_expiry(&mut dump.entries6);
        connections_reply(dump)
    }

    /// Entries on the fast path were last seen by their worker when installed (or settled):
    /// their expiry counts from the fast path's last-seen stamps, as the worker's sweep will.
    fn fast_path_expiry<A: FastFamily>(&self, entries: &mut [ConnEntry<A>]) {
        if !entries.iter().any(|e| e.fast) {
            return;
        }
        let Some(seen) = self.steering.fast_last_seen::<A>() else {
            return;
        };
        let now_ns = xvs_dataplane::fastpath::monotonic_ns();
        let timeouts = &self.config.timeouts;
        for e in entries.iter_mut().filter(|e| e.fast) {
            let id = (e.proto, e.client, e.client_port, e.real, e.rport);
            let Some(&last) = seen.get(&id) else {
                continue;
            };
            let timeout_s = if e.proto == PROTO_UDP {
                timeouts.udp
            } else {
                timeouts.tcp
            };
            let ago_ms = now_ns.saturating_sub(last) / 1_000_000;
            let left = (u64::from(timeout_s) * 1000).saturating_sub(ago_ms);
            e.expires_ms = e.expires_ms.max(left);
        }
    }

    /// Per-worker packet counters and connection table occupancy.
    pub fn stats(&self) -> StatsReply {
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let xdp = w
                    .queues
                    .iter()
                    .fold(QueueCounters::default(), |acc, (side, q)| {
                        let c = self.steering.queue_counters(*side, *q);
                        QueueCounters {
                            redirected: acc.redirected + c.redirected,
                            passed: acc.passed + c.passed,
                            fast: acc.fast + c.fast,
                        }
                    });
                let sockets = w
                    .queues
                    .iter()
                    .fold(SocketCounters::default(), |acc, (side, q)| {
                        acc + self.steering.socket_counters(*side, *q)
                    });
                WorkerStatsReply {
                    worker: i as u32,
                    core: w.core,
                    rx: w.stats.rx.get(),
                    tx: w.stats.tx.get(),
                    handed_off: w.stats.handed_off.get(),
                    handed_in: w.stats.handed_in.get(),
                    held: w.stats.held.get().max(0) as u64,
                    redirected: xdp.redirected,
                    passed: xdp.passed,
                    xsk_rx_ring_full: sockets.rx_ring_full,
                    xsk_rx_dropped: sockets.rx_dropped,
                    fast_forwarded: xdp.fast,
                    fast_installs: w.stats.fast_installs.get(),
                    fast_removals: w.stats.fast_removals.get(),
                    fast_refused: w.stats.fast_refused.get(),
                    drops: w
                        .stats
                        .drops_by_name()
                        .map(|(name, n)| (name.to_string(), n))
                        .collect(),
                    icmp: w.stats.icmp_by_name().fold(
                        BTreeMap::new(),
                        |mut by_direction: BTreeMap<String, BTreeMap<String, u64>>,
                         (dir, reason, n)| {
                            by_direction
                                .entry(dir.to_string())
                                .or_default()
                                .insert(reason.to_string(), n);
                            by_direction
                        },
                    ),
                    evictions: w
                        .stats
                        .evictions_by_name()
                        .map(|(name, n)| (name.to_string(), n))
                        .collect(),
                    conns: w.stats.conns.get().max(0) as u64,
                }
            })
            .collect::<Vec<_>>();
        StatsReply {
            conn_count: workers.iter().map(|w| w.conns).sum(),
            conn_max: self.conn_max,
            conn_max6: self.conn_max6,
            workers,
        }
    }
}

/// The `connections` result of `dump`: its IPv4 entries, then its IPv6 ones (xvsadm sorts
/// them).
fn connections_reply(dump: DumpResult) -> ConnectionsReply {
    fn info<A: Address + Into<IpAddr>>(e: ConnEntry<A>) -> ConnectionInfo {
        ConnectionInfo {
            proto: if e.proto == PROTO_UDP {
                Protocol::Udp
            } else {
                Protocol::Tcp
            },
            state: e.state.to_string(),
            expires_ms: e.expires_ms,
            client: e.client.into(),
            client_port: e.client_port,
            vip: e.vip.into(),
            vport: e.vport,
            real: e.real.into(),
            rport: e.rport,
            laddr: e.local.map(|(addr, _)| addr.into()),
            lport: e.local.map(|(_, port)| port),
        }
    }
    let mut connections = Vec::with_capacity(dump.entries.len() + dump.entries6.len());
    connections.extend(dump.entries.into_iter().map(info));
    connections.extend(dump.entries6.into_iter().map(info));
    ConnectionsReply {
        connections,
        workers_missing: dump.workers_missing,
        truncated: dump.truncated,
    }
}

/// Applies a configuration command to the transaction's copy of the configuration, recording
/// the real servers it removes. New services and real servers get [`NEW_SLOT`]. Addresses
/// pass [`family`]'s checks first: IPVS's rules, then what the dataplane can forward.
fn apply(tx: &mut Transaction, command: Command) -> Result<(), ApplyError> {
    family::check_families(&command)?;
    family::check_dataplane(&command)?;
    let Transaction {
        next:
            Config {
                services: next,
                timeouts,
                sloppy,
            },
        removed,
        zero,
    } = tx;
    match command {
        Command::AddService {
            service,
            scheduler,
            sched_flags,
            persistent,
            netmask,
        } => {
            let timeout = validate_persistent_timeout(persistent)?.flatten();
            let netmask =
                validate_netmask(&service, netmask)?.unwrap_or(default_netmask(service.addr));
            if service.port == 0 && timeout.is_some() {
                return Err(ApplyError::Unsupported(format!(
                    "a persistent service on port 0 (every port of {}) is not supported",
                    service.addr
                )));
            }
            validate_service(&service)?;
            let scheduler = parse_scheduler(scheduler.as_deref())?;
            let flags = parse_flags(scheduler, sched_flags.as_deref())?.unwrap_or_default();
            if next.contains_key(&service) {
                return Err(ApplyError::ServiceExists(service));
            }
            next.insert(
                service,
                ServiceConfig {
                    scheduler,
                    flags,
                    persistence: timeout.map(|timeout_secs| Persistence {
                        timeout_secs,
                        netmask,
                    }),
                    id: NEW_SLOT,
                    reals: Vec::new(),
                    check: None,
                    max_conns: 0,
                    local_addrs: Vec::new(),
                },
            );
        }
        Command::EditService {
            service,
            scheduler,
            sched_flags,
            persistent,
            netmask,
        } => {
            let timeout = validate_persistent_timeout(persistent)?;
            let netmask = validate_netmask(&service, netmask)?;
            let scheduler = parse_scheduler(scheduler.as_deref())?;
            let flags = parse_flags(scheduler, sched_flags.as_deref())?;
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            config.scheduler = scheduler;
            if let Some(flags) = flags {
                config.flags = flags;
            }
            // Only new connections see the change: established ones keep their real
            // server, and the templates already made live on (their own timeout).
            let current = config.persistence;
            let timeout = timeout.unwrap_or(current.map(|p| p.timeout_secs));
            let netmask =
                netmask.unwrap_or(current.map_or(default_netmask(service.addr), |p| p.netmask));
            config.persistence = timeout.map(|timeout_secs| Persistence {
                timeout_secs,
                netmask,
            });
        }
        Command::DelService { service } => {
            let config = next
                .remove(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            retire_service(service, config, removed);
        }
        Command::Clear => {
            for (service, config) in std::mem::take(next) {
                retire_service(service, config, removed);
            }
        }
        Command::AddReal {
            service,
            real,
            weight,
            forward,
            tunnel,
            upper_threshold,
            lower_threshold,
        } => {
            validate_real(&real)?;
            let forward = forward.unwrap_or(Forward::Masq);
            let method = validate_forward(forward, tunnel, None, &service, &real)?;
            let weight = validate_weight(weight.unwrap_or(1))?;
            let (upper_threshold, lower_threshold) =
                validate_thresholds(upper_threshold.unwrap_or(0), lower_threshold.unwrap_or(0))?;
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            if config.reals.iter().any(|r| r.key == real) {
                return Err(ApplyError::RealExists { service, real });
            }
            config.reals.push(RealConfig {
                key: real,
                weight,
                method,
                upper_threshold,
                lower_threshold,
                id: NEW_SLOT,
            });
        }
        Command::EditReal {
            service,
            real,
            weight,
            forward,
            tunnel,
            upper_threshold,
            lower_threshold,
        } => {
            let weight = weight.map(validate_weight).transpose()?;
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            let entry = config
                .reals
                .iter_mut()
                .find(|r| r.key == real)
                .ok_or(ApplyError::NoSuchReal { service, real })?;
            let method = match (forward, tunnel) {
                (Some(f), _) => Some(validate_forward(
                    f,
                    tunnel,
                    Some(entry.method),
                    &service,
                    &real,
                )?),
                (None, Some(_)) => {
                    return Err(ApplyError::InvalidArgument(
                        "tunnel options go with the tunnelling method (-i)".into(),
                    ))
                }
                (None, None) => None,
            };
            // Absent thresholds keep their value; the pair must still be in order.
            let (upper, lower) = validate_thresholds(
                upper_threshold.unwrap_or(entry.upper_threshold),
                lower_threshold.unwrap_or(entry.lower_threshold),
            )?;
            if let Some(weight) = weight {
                entry.weight = weight;
            }
            // Connections keep the method they were made with, as in IPVS.
            if let Some(method) = method {
                entry.method = method;
            }
            entry.upper_threshold = upper;
            entry.lower_threshold = lower;
        }
        Command::DelReal { service, real } => {
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            let i = config
                .reals
                .iter()
                .position(|r| r.key == real)
                .ok_or(ApplyError::NoSuchReal { service, real })?;
            let gone = config.reals.remove(i);
            removed.push(Draining {
                service,
                service_id: config.id,
                service_removed: false,
                real,
                real_id: gone.id,
                method: gone.method,
            });
        }
        Command::Zero { service } => {
            if let Some(service) = service {
                if !next.contains_key(&service) {
                    return Err(ApplyError::NoSuchService(service));
                }
            }
            zero.push(service);
        }
        Command::SetTimeouts { tcp, tcpfin, udp } => {
            let keep = |new: u32, old: u32, what: &str| -> Result<u32, ApplyError> {
                match new {
                    0 => Ok(old),
                    n if n > MAX_CONN_TIMEOUT => Err(ApplyError::InvalidArgument(format!(
                        "{what} timeout {n} s is above the maximum ({MAX_CONN_TIMEOUT} s)"
                    ))),
                    n => Ok(n),
                }
            };
            *timeouts = Timeouts {
                tcp: keep(tcp, timeouts.tcp, "tcp")?,
                tcpfin: keep(tcpfin, timeouts.tcpfin, "tcpfin")?,
                udp: keep(udp, timeouts.udp, "udp")?,
            };
        }
        Command::SetCheck { service, check } => {
            if let Some(spec) = &check {
                validate_check(spec)?;
            }
            next.get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?
                .check = check;
        }
        Command::SetConnLimit { service, max_conns } => {
            next.get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?
                .max_conns = max_conns;
        }
        Command::SetSloppy { tcp, udp } => *sloppy = Sloppy { tcp, udp },
        Command::AddLaddr { service, addr } => {
            if !unicast_host(addr) {
                return Err(ApplyError::InvalidArgument(format!(
                    "local address {addr} is not a unicast host address"
                )));
            }
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            if config.local_addrs.contains(&addr) {
                return Err(ApplyError::InvalidArgument(format!(
                    "local address {addr} already exists in service {service}"
                )));
            }
            config.local_addrs.push(addr);
        }
        Command::DelLaddr { service, addr } => {
            let config = next
                .get_mut(&service)
                .ok_or(ApplyError::NoSuchService(service))?;
            let before = config.local_addrs.len();
            config.local_addrs.retain(|&a| a != addr);
            if config.local_addrs.len() == before {
                return Err(ApplyError::InvalidArgument(format!(
                    "no such local address {addr} in service {service}"
                )));
            }
        }
        Command::Version
        | Command::List
        | Command::Stats
        | Command::Timeouts
        | Command::Connections
        | Command::Batch { .. }
        | Command::Replace { .. }
        | Command::Capture { .. } => {
            return Err(ApplyError::InvalidArgument(format!(
                "{} does not change the configuration and cannot be part of a batch",
                command_name(&command)
            )))
        }
    }
    Ok(())
}

/// Applies `commands` in order to `tx`; the first failure names its position. `replace`
/// builds a whole configuration, where resetting counters (`zero`) has no meaning.
fn apply_all(
    tx: &mut Transaction,
    commands: Vec<Command>,
    replace: bool,
) -> Result<(), ApplyError> {
    let total = commands.len();
    for (i, command) in commands.into_iter().enumerate() {
        let name = command_name(&command);
        let result = if replace && matches!(command, Command::Zero { .. }) {
            Err(ApplyError::InvalidArgument(
                "zero resets counters; it cannot be part of a configuration".into(),
            ))
        } else {
            apply(tx, command)
        };
        result.map_err(|error| ApplyError::InBatch {
            position: i + 1,
            total,
            command: name,
            error: Box::new(error),
        })?;
    }
    Ok(())
}

/// The transaction that turns `current` into `desired`: what both have keeps its slots (so
/// its counters, rates and connections), what only `current` has is retired (it drains).
fn reconcile(current: &Config, mut desired: Config) -> Transaction {
    let mut removed = Vec::new();
    for (key, cur) in &current.services {
        let Some(want) = desired.services.get_mut(key) else {
            retire_service(*key, cur.clone(), &mut removed);
            continue;
        };
        want.id = cur.id;
        for r in &mut want.reals {
            if let Some(c) = cur.reals.iter().find(|c| c.key == r.key) {
                r.id = c.id;
            }
        }
        for c in &cur.reals {
            if !want.reals.iter().any(|r| r.key == c.key) {
                removed.push(Draining {
                    service: *key,
                    service_id: cur.id,
                    service_removed: false,
                    real: c.key,
                    real_id: c.id,
                    method: c.method,
                });
            }
        }
    }
    Transaction {
        next: desired,
        removed,
        zero: Vec::new(),
    }
}

/// The protocol name of a command, for messages.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Version => "version",
        Command::AddService { .. } => "add_service",
        Command::EditService { .. } => "edit_service",
        Command::DelService { .. } => "del_service",
        Command::Clear => "clear",
        Command::AddReal { .. } => "add_real",
        Command::EditReal { .. } => "edit_real",
        Command::DelReal { .. } => "del_real",
        Command::List => "list",
        Command::Stats => "stats",
        Command::Zero { .. } => "zero",
        Command::SetTimeouts { .. } => "set_timeouts",
        Command::Timeouts => "timeouts",
        Command::Connections => "connections",
        Command::Batch { .. } => "batch",
        Command::Replace { .. } => "replace",
        Command::SetCheck { .. } => "set_check",
        Command::SetConnLimit { .. } => "set_conn_limit",
        Command::AddLaddr { .. } => "add_laddr",
        Command::DelLaddr { .. } => "del_laddr",
        Command::SetSloppy { .. } => "set_sloppy",
        Command::Capture { .. } => "capture",
    }
}

fn timeouts_reply(t: Timeouts) -> TimeoutsReply {
    TimeoutsReply {
        tcp: t.tcp,
        tcpfin: t.tcpfin,
        udp: t.udp,
    }
}

fn retire_service(service: ServiceKey, config: ServiceConfig, removed: &mut Vec<Draining>) {
    for r in config.reals {
        removed.push(Draining {
            service,
            service_id: config.id,
            service_removed: true,
            real: r.key,
            real_id: r.id,
            method: r.method,
        });
    }
}

fn counters(t: TrafficTotals) -> Counters {
    Counters {
        conns: t.conns,
        inpkts: t.inpkts,
        outpkts: t.outpkts,
        inbytes: t.inbytes,
        outbytes: t.outbytes,
    }
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

fn vip_of(key: &ServiceKey) -> Vip {
    Vip {
        proto: proto_number(key.proto),
        addr: key.addr,
        port: key.port,
    }
}

fn real_endpoint(proto: Protocol, real: &RealKey) -> Vip {
    Vip {
        proto: proto_number(proto),
        addr: real.addr,
        port: real.port,
    }
}

/// Splits addresses into the IPv4 and the IPv6 ones, in their order: the snapshot keeps the
/// per-packet address tests per family.
fn by_family(addrs: impl IntoIterator<Item = IpAddr>) -> (Vec<Ipv4Addr>, Vec<Ipv6Addr>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for addr in addrs {
        match addr {
            IpAddr::V4(a) => v4.push(a),
            IpAddr::V6(a) => v6.push(a),
        }
    }
    (v4, v6)
}

fn parse_scheduler(name: Option<&str>) -> Result<SchedulerKind, ApplyError> {
    let name = name.unwrap_or(SchedulerKind::IPVSADM_DEFAULT);
    name.parse()
        .map_err(|e: UnknownScheduler| ApplyError::UnknownScheduler(e.to_string()))
}

/// `-b` flag names for a service scheduled by `kind`; `None` when the request has none.
fn parse_flags(kind: SchedulerKind, names: Option<&[String]>) -> Result<Option<Flags>, ApplyError> {
    names
        .map(|names| {
            Flags::from_names(kind, names)
                .map_err(|e| ApplyError::InvalidArgument(format!("{e} (scheduler {kind})")))
        })
        .transpose()
}

/// IPVS's ip_vs_add_dest / ip_vs_edit_dest check: the lower threshold may not exceed the upper
/// one, even when the upper one is 0 (no limit), where IPVS answers ERANGE.
fn validate_thresholds(upper: u32, lower: u32) -> Result<(u32, u32), ApplyError> {
    if lower > upper {
        return Err(ApplyError::InvalidArgument(format!(
            "lower threshold {lower} is higher than upper threshold {upper}"
        )));
    }
    Ok((upper, lower))
}

/// `persistent`: `Some(None)` for 0 (not persistent), `Some(Some(t))` for a timeout in
/// 1..=MAX_PERSISTENT_TIMEOUT (ipvsadm's `parse_timeout(optarg, 1, MAX_TIMEOUT)`; IPVS itself
/// takes any value), `None` when absent.
fn validate_persistent_timeout(timeout: Option<u32>) -> Result<Option<Option<u32>>, ApplyError> {
    match timeout {
        None => Ok(None),
        Some(0) => Ok(Some(None)),
        Some(t) if t <= MAX_PERSISTENT_TIMEOUT => Ok(Some(Some(t))),
        Some(t) => Err(ApplyError::InvalidArgument(format!(
            "persistence timeout {t} is out of range (1..={MAX_PERSISTENT_TIMEOUT} seconds, \
             0: not persistent)"
        ))),
    }
}

/// `-M` of a service ([`family::check_families`] has matched the netmask's kind to the
/// service's family), as the mask the dataplane ANDs client addresses with: for an IPv4
/// service a contiguous mask, as a prefix length would give (IPVS ANDs the client address with
/// whatever 32 bits it is given; ipvsadm takes anything inet_aton reads); for an IPv6 service
/// the mask of its prefix length (1..=128, checked by [`family::check_families`]).
fn validate_netmask(
    service: &ServiceKey,
    mask: Option<Netmask>,
) -> Result<Option<IpAddr>, ApplyError> {
    match mask {
        Some(Netmask::Mask(mask)) => {
            let bits = u32::from(mask);
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(ApplyError::InvalidArgument(format!(
                    "netmask {mask} is not contiguous (ones, then zeros)"
                )));
            }
            Ok(Some(mask.into()))
        }
        Some(Netmask::PrefixLen(len)) if service.addr.is_ipv6() => {
            Ok(Some(prefix_mask6(len).into()))
        }
        Some(Netmask::PrefixLen(len)) => Err(ApplyError::InvalidArgument(format!(
            "prefix length {len} does not fit service {service}, which takes a dotted netmask"
        ))),
        None => Ok(None),
    }
}

/// The persistence netmask of a service at `addr` given no `-M`: 255.255.255.255, or for IPv6
/// the mask of IPVS's default prefix length, 128: per client address.
fn default_netmask(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => DEFAULT_NETMASK.into(),
        IpAddr::V6(_) => prefix_mask6(DEFAULT_PREFIX_LEN).into(),
    }
}

/// A persistence netmask as the protocol lists it: an IPv4 mask, or an IPv6 prefix length.
fn listed_netmask(netmask: IpAddr) -> Netmask {
    match netmask {
        IpAddr::V4(mask) => Netmask::Mask(mask),
        IpAddr::V6(mask) => Netmask::PrefixLen(prefix_len6(mask)),
    }
}

/// An address that can be a unicast host on a network.
fn unicast_host(addr: IpAddr) -> bool {
    let broadcast = matches!(addr, IpAddr::V4(a) if a.is_broadcast());
    !(addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() || broadcast)
}

fn validate_service(s: &ServiceKey) -> Result<(), ApplyError> {
    if s.port == 0 {
        return Err(ApplyError::InvalidArgument(format!(
            "port 0 is not a valid service port ({} {})",
            s.proto.ipvsadm_name(),
            SocketAddr::new(s.addr, 0)
        )));
    }
    if !unicast_host(s.addr) {
        return Err(ApplyError::InvalidArgument(format!(
            "{} is not a unicast address a virtual service can use",
            s.addr
        )));
    }
    Ok(())
}

fn validate_check(spec: &CheckSpec) -> Result<(), ApplyError> {
    crate::health::validate(spec)
        .map_err(|e| ApplyError::InvalidArgument(format!("health check: {e}")))
}

fn validate_real(r: &RealKey) -> Result<(), ApplyError> {
    if r.port == 0 {
        return Err(ApplyError::InvalidArgument(format!(
            "port 0 is not a valid real server port ({})",
            SocketAddr::new(r.addr, 0)
        )));
    }
    if !unicast_host(r.addr) {
        return Err(ApplyError::InvalidArgument(format!(
            "{} is not a unicast address a real server can have",
            r.addr
        )));
    }
    Ok(())
}

fn validate_weight(w: u32) -> Result<u32, ApplyError> {
    if w > MAX_WEIGHT {
        return Err(ApplyError::InvalidArgument(format!(
            "weight {w} is out of range (0..={MAX_WEIGHT})"
        )));
    }
    Ok(w)
}

/// The protocol's names of `method`.
fn forward_of(method: Method) -> (Forward, Option<TunnelSpec>) {
    match method {
        Method::Masq => (Forward::Masq, None),
        Method::Route => (Forward::Route, None),
        Method::FullNat => (Forward::FullNat, None),
        Method::Tunnel(t) => (
            Forward::Tunnel,
            Some(TunnelSpec {
                kind: match t.encap {
                    Encap::Ipip => TunnelKind::Ipip,
                    Encap::Gue => TunnelKind::Gue,
                    Encap::Gre => TunnelKind::Gre,
                },
                port: (t.encap == Encap::Gue).then_some(t.port),
                checksum: match t.checksum {
                    true => TunnelChecksum::Csum,
                    false => TunnelChecksum::NoCsum,
                },
            }),
        ),
    }
}

/// The dataplane's method for `f` (with `tunnel`'s options) of `real` in `service`, or why it
/// cannot be used; `previous`: the real server's method before an edit, whose tunnel options
/// a `-e -i` without options keeps.
fn validate_forward(
    f: Forward,
    tunnel: Option<TunnelSpec>,
    previous: Option<Method>,
    service: &ServiceKey,
    real: &RealKey,
) -> Result<Method, ApplyError> {
    let name = match f {
        Forward::Masq => "masquerading (-m)",
        Forward::Route => "direct routing (-g)",
        Forward::Tunnel => "tunnelling (-i)",
        Forward::FullNat => "FullNAT (--fullnat)",
    };
    if tunnel.is_some() && f != Forward::Tunnel {
        return Err(ApplyError::InvalidArgument(format!(
            "tunnel options go with tunnelling (-i), not {name}"
        )));
    }
    // ipvsadm sets the port itself for -g and -i; a JSON client may not.
    if matches!(f, Forward::Route | Forward::Tunnel) && real.port != service.port {
        return Err(ApplyError::InvalidArgument(format!(
            "{name} leaves the packet's destination port as it is: real server {real} must \
             use the service's port {}",
            service.port
        )));
    }
    match f {
        Forward::Masq => Ok(Method::Masq),
        Forward::Route => Ok(Method::Route),
        Forward::FullNat => Ok(Method::FullNat),
        Forward::Tunnel => {
            let spec = match (tunnel, previous) {
                (Some(spec), _) => spec,
                (None, Some(Method::Tunnel(t))) => return Ok(Method::Tunnel(t)),
                (None, _) => TunnelSpec::default(),
            };
            validate_tunnel(spec).map(Method::Tunnel)
        }
    }
}

/// A tunnel's encapsulation from ipvsadm's options, with IPVS's rules on them.
fn validate_tunnel(spec: TunnelSpec) -> Result<Tunnel, ApplyError> {
    let invalid = |m: &str| Err(ApplyError::InvalidArgument(m.into()));
    let encap = match spec.kind {
        TunnelKind::Ipip => Encap::Ipip,
        TunnelKind::Gue => Encap::Gue,
        TunnelKind::Gre => Encap::Gre,
    };
    let port = match (encap, spec.port) {
        (Encap::Gue, Some(port)) if port != 0 => port,
        (Encap::Gue, _) => return invalid("--tun-type gue needs --tun-port (1..65535)"),
        (_, Some(_)) => return invalid("--tun-port goes with --tun-type gue only"),
        (_, None) => 0,
    };
    let checksum =
        match (encap, spec.checksum) {
            (_, TunnelChecksum::NoCsum) => false,
            (Encap::Ipip, _) => {
                return invalid(
                    "ipip carries no checksum: --tun-csum and --tun-remcsum go with gue or gre",
                )
            }
            (Encap::Gre, TunnelChecksum::RemCsum) => {
                return invalid("--tun-remcsum goes with --tun-type gue only")
            }
            (Encap::Gue, TunnelChecksum::RemCsum) => return Err(ApplyError::Unsupported(
                "--tun-remcsum (GUE remote checksum offload) is not implemented; use --tun-csum \
                 or --tun-nocsum"
                    .into(),
            )),
            (_, TunnelChecksum::Csum) => true,
        };
    Ok(Tunnel {
        encap,
        port,
        checksum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_scheduler::{Flow, NoLoad};

    /// A listing of both families: IPv4 entries, then IPv6 ones, each as an `IpAddr`;
    /// xvsadm prints them in `-L`'s order, in ipvsadm 1.31's format.
    #[test]
    fn connections_of_both_families() {
        let entry = |proto, cport, state, expires_ms| ConnEntry {
            proto,
            client: Ipv4Addr::new(198, 18, 0, 201),
            client_port: cport,
            vip: Ipv4Addr::new(198, 18, 0, 129),
            vport: 80,
            real: Ipv4Addr::new(198, 19, 0, 148),
            rport: 80,
            state,
            expires_ms,
            fast: false,
            local: None,
        };
        let v6 = |net, host| Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host);
        let entry6 = |proto, cport, state, expires_ms| ConnEntry {
            proto,
            client: v6(0, 0x201),
            client_port: cport,
            vip: v6(0, 0x129),
            vport: 80,
            real: v6(1, 0x148),
            rport: 80,
            state,
            expires_ms,
            fast: false,
            local: None,
        };
        let dump = DumpResult {
            entries: vec![entry(PROTO_TCP, 40000, "ESTABLISHED", 899_500)],
            entries6: vec![
                entry6(PROTO_UDP, 40002, "UDP", 299_000),
                entry6(PROTO_TCP, 40001, "SYN_RECV", 59_999),
            ],
            workers_missing: 0,
            truncated: false,
        };
        let reply = connections_reply(dump);
        let clients: Vec<SocketAddr> = reply
            .connections
            .iter()
            .map(|c| SocketAddr::new(c.client, c.client_port))
            .collect();
        assert_eq!(
            clients,
            [
                "198.18.0.201:40000".parse().unwrap(),
                "[2001:2::201]:40002".parse().unwrap(),
                "[2001:2::201]:40001".parse().unwrap(),
            ]
        );
        assert_eq!(reply.connections[1].proto, Protocol::Udp);
        assert_eq!(reply.connections[2].real, IpAddr::V6(v6(1, 0x148)));

        let args: Vec<String> = vec!["-Lnc".into()];
        let Ok(crate::ipvsadm::Invocation::Connections(opts)) = crate::ipvsadm::parse(&args) else {
            panic!("-Lnc");
        };
        assert_eq!(
            crate::ipvsadm::format_connections(&reply, &opts),
            "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.18.0.201:40000 198.18.0.129:80    198.19.0.148:80
TCP 00:59  SYN_RECV    [2001:2::201]:40001 [2001:2::129]:80   [2001:2:0:1::148]:80
UDP 04:59  UDP         [2001:2::201]:40002 [2001:2::129]:80   [2001:2:0:1::148]:80
"
        );
    }

    /// Records steering changes instead of touching BPF maps.
    #[derive(Default)]
    struct FakeSteering {
        services: BTreeSet<Vip>,
        reals: BTreeSet<Vip>,
        neighbours: BTreeSet<IpAddr>,
        /// Addresses the internal interface reaches through a router only.
        off_link: BTreeSet<IpAddr>,
        /// FullNAT local addresses claimed from the kernel.
        laddrs: BTreeSet<IpAddr>,
    }

    impl Steering for FakeSteering {
        fn set_service(&mut self, vip: Vip, on: bool) -> io::Result<()> {
            if on {
                assert!(self.services.insert(vip), "steered twice");
            } else {
                assert!(self.services.remove(&vip), "unsteered twice");
            }
            Ok(())
        }
        fn set_real(&mut self, real: Vip, on: bool) -> io::Result<()> {
            if on {
                assert!(self.reals.insert(real), "steered twice");
            } else {
                assert!(self.reals.remove(&real), "unsteered twice");
            }
            Ok(())
        }
        fn set_neighbour(&mut self, addr: IpAddr, on: bool) {
            if on {
                self.neighbours.insert(addr);
            } else {
                self.neighbours.remove(&addr);
            }
        }
        fn on_internal_link(&mut self, addr: IpAddr) -> io::Result<bool> {
            Ok(!self.off_link.contains(&addr))
        }
        fn set_fullnat_addr(&mut self, addr: IpAddr, on: bool) -> io::Result<()> {
            if on {
                assert!(self.laddrs.insert(addr), "claimed twice");
            } else {
                assert!(self.laddrs.remove(&addr), "given back twice");
            }
            Ok(())
        }
    }

    fn director() -> (
        Director<FakeSteering>,
        xvs_dataplane::publish::Reader<Snapshot>,
        Arc<WorkerStats>,
    ) {
        let publisher = Publisher::new(Snapshot::default());
        let reader = publisher.reader();
        let stats = Arc::new(WorkerStats::default());
        let d = Director::new(
            publisher,
            Interface::default(),
            Interface::default(),
            FakeSteering::default(),
            vec![WorkerHandle {
                stats: Arc::clone(&stats),
                core: None,
                queues: vec![(Side::External, 0), (Side::Internal, 0)],
                conns: Arc::new(ConnDump::new()),
            }],
            1000,
        );
        (d, reader, stats)
    }

    fn any_flow() -> Flow {
        Flow {
            proto: PROTO_TCP,
            caddr: Ipv4Addr::new(198, 18, 0, 201).into(),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 129).into(),
            vport: 80,
        }
    }

    fn svc() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 129).into(),
            port: 80,
        }
    }

    fn real(last: u8) -> RealKey {
        RealKey {
            addr: Ipv4Addr::new(198, 19, 0, last).into(),
            port: 80,
        }
    }

    fn add_seed(d: &mut Director<FakeSteering>) {
        d.execute(Command::AddService {
            service: svc(),
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent: None,
            netmask: None,
        })
        .unwrap();
        for r in [148, 137] {
            d.execute(Command::AddReal {
                service: svc(),
                real: real(r),
                weight: None,
                forward: Some(Forward::Masq),
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            })
            .unwrap();
        }
    }

    fn add_real_by(forward: Forward, r: RealKey) -> Command {
        Command::AddReal {
            service: svc(),
            real: r,
            weight: None,
            forward: Some(forward),
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        }
    }

    #[test]
    fn direct_routing_reaches_snapshot_listing_and_steering() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        d.execute(add_real_by(Forward::Route, real(9))).unwrap();
        let snapshot = Arc::clone(reader.current());
        let service = snapshot.services.values().next().unwrap();
        let methods: Vec<_> = service.reals.iter().map(|r| (r.addr, r.method)).collect();
        assert!(
            methods.contains(&(real(9).addr, Method::Route)),
            "{methods:?}"
        );
        assert!(
            methods.contains(&(real(148).addr, Method::Masq)),
            "{methods:?}"
        );
        let Reply::List(list) = d.execute(Command::List).unwrap() else {
            panic!("list")
        };
        let forwards: Vec<_> = list.services[0]
            .reals
            .iter()
            .map(|r| (r.real, r.forward))
            .collect();
        assert!(
            forwards.contains(&(real(9), Forward::Route)),
            "{forwards:?}"
        );
        // Its replies never come from RIP:rport: no steering of them; its MAC stays managed.
        assert!(!d.steering.reals.iter().any(|v| v.addr == real(9).addr));
        assert!(d.steering.reals.iter().any(|v| v.addr == real(148).addr));
        assert!(d.steering.neighbours.contains(&real(9).addr));
        // -e to masquerading brings its replies back to the director.
        d.execute(Command::EditReal {
            service: svc(),
            real: real(9),
            weight: None,
            forward: Some(Forward::Masq),
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        })
        .unwrap();
        assert!(d.steering.reals.iter().any(|v| v.addr == real(9).addr));
    }

    const LIP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 160));
    const LIP2: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 161));

    fn laddr(add: bool, addr: impl Into<IpAddr>) -> Command {
        let addr = addr.into();
        match add {
            true => Command::AddLaddr {
                service: svc(),
                addr,
            },
            false => Command::DelLaddr {
                service: svc(),
                addr,
            },
        }
    }

    #[test]
    fn fullnat_needs_a_local_address_and_reaches_snapshot_listing_and_steering() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        // FullNAT may translate the port too (unlike -g and -i).
        let far = RealKey {
            addr: Ipv4Addr::new(198, 19, 7, 1).into(),
            port: 8080,
        };
        let e = d.execute(add_real_by(Forward::FullNat, far)).unwrap_err();
        assert!(e.to_string().contains("no local address"), "{e}");
        d.execute(laddr(true, LIP)).unwrap();
        d.execute(laddr(true, LIP2)).unwrap();
        d.execute(add_real_by(Forward::FullNat, far)).unwrap();

        let snapshot = Arc::clone(reader.current());
        let service = snapshot.services.values().next().unwrap();
        assert_eq!(&service.local_addrs[..], &[LIP, LIP2]);
        assert!(service
            .reals
            .iter()
            .any(|r| r.addr == far.addr && r.port == 8080 && r.method == Method::FullNat));
        let Reply::List(list) = d.execute(Command::List).unwrap() else {
            panic!("list")
        };
        assert_eq!(list.services[0].local_addrs, [LIP, LIP2]);
        assert!(list.services[0]
            .reals
            .iter()
            .any(|r| r.real == far && r.forward == Forward::FullNat));
        // Its replies come from RIP:rport to a claimed local address; a real server behind
        // a router is resolved on demand, not kept resolved.
        assert!(d
            .steering
            .reals
            .contains(&real_endpoint(Protocol::Tcp, &far)));
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP, LIP2]));
        assert!(!d.steering.neighbours.contains(&far.addr));

        // The last local address of a service with FullNAT real servers stays.
        d.execute(laddr(false, LIP)).unwrap();
        let e = d.execute(laddr(false, LIP2)).unwrap_err();
        assert!(e.to_string().contains("no local address"), "{e}");
        assert_eq!(d.config.services[&svc()].local_addrs, [LIP2]);
    }

    /// `set_sloppy` reaches the snapshot and the listing; a `replace` that does not set it
    /// goes back to the daemon's default (`xvsd --sloppy-tcp`), not to off.
    #[test]
    fn sloppy_settings_reach_the_snapshot_and_replace_keeps_the_default() {
        let (mut d, mut reader, _) = director();
        d.set_default_sloppy(Sloppy {
            tcp: true,
            udp: false,
        })
        .unwrap();
        assert!(reader.current().sloppy_tcp);
        d.execute(Command::SetSloppy {
            tcp: false,
            udp: true,
        })
        .unwrap();
        assert!(!reader.current().sloppy_tcp);
        let Reply::List(list) = d.execute(Command::List).unwrap() else {
            panic!("list")
        };
        assert_eq!(
            list.sloppy,
            Sloppy {
                tcp: false,
                udp: true
            }
        );
        d.execute(Command::Replace { commands: vec![] }).unwrap();
        assert!(reader.current().sloppy_tcp, "the daemon's default again");
        d.execute(Command::Replace {
            commands: vec![Command::SetSloppy {
                tcp: false,
                udp: false,
            }],
        })
        .unwrap();
        assert!(!reader.current().sloppy_tcp, "the file's setting");
    }

    #[test]
    fn bad_local_addresses_are_refused_and_change_nothing() {
        let (mut d, _, _) = director();
        d.internal.addr = Ipv4Addr::new(198, 19, 0, 152);
        // Health checks leave from this one (an address the kernel listed first).
        d.health_source = ProbeSource {
            v4: Some(Ipv4Addr::new(198, 19, 0, 153)),
            v6: None,
        };
        add_seed(&mut d);
        d.execute(laddr(true, LIP)).unwrap();
        let before = d.config.clone();
        for (command, message) in [
            (laddr(true, LIP), "already exists"),
            (laddr(false, LIP2), "no such local address"),
            (
                laddr(true, Ipv4Addr::BROADCAST),
                "not a unicast host address",
            ),
            (
                laddr(true, Ipv4Addr::UNSPECIFIED),
                "not a unicast host address",
            ),
            (laddr(true, svc().addr), "is a virtual service address"),
            (
                laddr(true, Ipv4Addr::new(198, 19, 0, 152)),
                "internal interface's primary address",
            ),
            (
                laddr(true, Ipv4Addr::new(198, 19, 0, 153)),
                "internal interface's primary address",
            ),
            (
                Command::AddLaddr {
                    service: ServiceKey { port: 81, ..svc() },
                    addr: LIP2,
                },
                "no such service",
            ),
        ] {
            let e = d.execute(command).unwrap_err();
            assert!(e.to_string().contains(message), "{e} (wanted {message})");
            assert_eq!(d.config, before);
        }
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP]));
    }

    /// A local address that leaves the configuration stays claimed while FullNAT connections
    /// of its service may use it, then goes back to the kernel.
    #[test]
    fn a_removed_local_address_stays_claimed_until_its_connections_are_gone() {
        let (mut d, _, stats) = director();
        add_seed(&mut d);
        d.execute(laddr(true, LIP)).unwrap();
        d.execute(laddr(true, LIP2)).unwrap();
        d.execute(add_real_by(Forward::FullNat, real(9))).unwrap();
        let id = d.config.services[&svc()].reals[2].id;
        stats.real(id).unwrap().active.add(1);
        d.execute(laddr(false, LIP)).unwrap();
        assert!(d.steering.laddrs.contains(&LIP), "connections may use it");
        d.housekeeping();
        assert!(d.steering.laddrs.contains(&LIP));
        stats.real(id).unwrap().active.add(-1);
        d.housekeeping();
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP2]), "given back");
        // Removing the service: the same, for all its local addresses.
        stats.real(id).unwrap().inactive.add(1);
        d.execute(Command::Clear).unwrap();
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP2]));
        stats.real(id).unwrap().inactive.add(-1);
        d.housekeeping();
        assert!(d.steering.laddrs.is_empty());
    }

    /// A FullNAT real server removed first drains; its service's local address removed
    /// next stays claimed for the draining connections too.
    #[test]
    fn a_local_address_stays_claimed_for_a_draining_real_server() {
        let (mut d, _, stats) = director();
        add_seed(&mut d);
        d.execute(laddr(true, LIP)).unwrap();
        d.execute(add_real_by(Forward::FullNat, real(9))).unwrap();
        let id = d.config.services[&svc()].reals[2].id;
        stats.real(id).unwrap().active.add(1);
        d.execute(Command::DelReal {
            service: svc(),
            real: real(9),
        })
        .unwrap();
        d.execute(laddr(false, LIP)).unwrap();
        assert!(
            d.steering.laddrs.contains(&LIP),
            "the draining connections use it"
        );
        d.housekeeping();
        assert!(d.steering.laddrs.contains(&LIP), "still draining");
        stats.real(id).unwrap().active.add(-1);
        d.housekeeping();
        assert!(d.steering.laddrs.is_empty(), "given back once drained");
    }

    #[test]
    fn tunnels_reach_the_snapshot_and_an_edit_keeps_their_options() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        let gue = TunnelSpec {
            kind: TunnelKind::Gue,
            port: Some(6080),
            checksum: TunnelChecksum::Csum,
        };
        // Behind a router is fine for a tunnel: no connected route needed.
        let far = RealKey {
            addr: Ipv4Addr::new(198, 19, 7, 1).into(),
            port: 80,
        };
        d.steering.off_link.insert(far.addr);
        d.execute(Command::AddReal {
            service: svc(),
            real: far,
            weight: None,
            forward: Some(Forward::Tunnel),
            tunnel: Some(gue),
            upper_threshold: None,
            lower_threshold: None,
        })
        .unwrap();
        let expected = Method::Tunnel(Tunnel {
            encap: Encap::Gue,
            port: 6080,
            checksum: true,
        });
        let method_of = |reader: &mut xvs_dataplane::publish::Reader<Snapshot>| {
            let snapshot = Arc::clone(reader.current());
            let service = snapshot.services.values().next().unwrap();
            service
                .reals
                .iter()
                .find(|r| r.addr == far.addr)
                .unwrap()
                .method
        };
        assert_eq!(method_of(&mut reader), expected);
        // Not a managed neighbour (it may sit behind a router), its replies never steered.
        assert!(!d.steering.neighbours.contains(&far.addr));
        assert!(!d.steering.reals.iter().any(|v| v.addr == far.addr));
        // -e -i without options keeps them; the listing shows them.
        d.execute(Command::EditReal {
            service: svc(),
            real: far,
            weight: Some(3),
            forward: Some(Forward::Tunnel),
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        })
        .unwrap();
        assert_eq!(method_of(&mut reader), expected);
        let Reply::List(list) = d.execute(Command::List).unwrap() else {
            panic!("list")
        };
        let info = list.services[0]
            .reals
            .iter()
            .find(|r| r.real == far)
            .unwrap();
        assert_eq!((info.forward, info.tunnel), (Forward::Tunnel, Some(gue)));
    }

    /// An IPv6 service tunnels to IPv6 real servers (ipip naming IPv6 in IPv6, GUE, GRE) once
    /// the internal interface has an IPv6 address: published with their tunnels, listed with
    /// them, neither resolved nor steered (replies never come back).
    #[test]
    fn ipv6_tunnels_reach_the_snapshot_and_the_listing() {
        let (mut d, mut reader, _) = director();
        d.internal.addr6 = Some("2001:2:0:1::152".parse().unwrap());
        d.execute(add_svc(v6(), None, None)).unwrap();
        let gue = TunnelSpec {
            kind: TunnelKind::Gue,
            port: Some(6080),
            checksum: TunnelChecksum::NoCsum,
        };
        let gre = TunnelSpec {
            kind: TunnelKind::Gre,
            port: None,
            checksum: TunnelChecksum::Csum,
        };
        let specs = [TunnelSpec::default(), gue, gre];
        for (i, spec) in specs.into_iter().enumerate() {
            d.execute(Command::AddReal {
                service: v6(),
                real: real6(0x11 + i as u16),
                weight: None,
                forward: Some(Forward::Tunnel),
                tunnel: Some(spec),
                upper_threshold: None,
                lower_threshold: None,
            })
            .unwrap();
        }
        let snapshot = Arc::clone(reader.current());
        let service = snapshot.services.values().next().unwrap();
        let methods: Vec<Method> = service.reals.iter().map(|r| r.method).collect();
        let tunnel = |encap, port, checksum| {
            Method::Tunnel(Tunnel {
                encap,
                port,
                checksum,
            })
        };
        assert_eq!(
            methods,
            [
                tunnel(Encap::Ipip, 0, false),
                tunnel(Encap::Gue, 6080, false),
                tunnel(Encap::Gre, 0, true),
            ]
        );
        assert_eq!(snapshot.vip_addrs6, [v6().addr]);
        assert!(d.steering.neighbours.is_empty() && d.steering.reals.is_empty());
        let listed = list(&mut d);
        let tunnels: Vec<_> = listed.services[0]
            .reals
            .iter()
            .map(|r| (r.forward, r.tunnel))
            .collect();
        let specs = specs.map(|s| (Forward::Tunnel, Some(s)));
        assert_eq!(tunnels, specs);
    }

    #[test]
    fn direct_routing_refuses_a_real_server_behind_a_router() {
        let (mut d, _, _) = director();
        add_seed(&mut d);
        let far = RealKey {
            addr: Ipv4Addr::new(198, 19, 7, 1).into(),
            port: 80,
        };
        d.steering.off_link.insert(far.addr);
        let before = d.config.services.clone();
        let err = d.execute(add_real_by(Forward::Route, far)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("198.19.7.1"), "{err}");
        assert!(err.to_string().contains("connected route"), "{err}");
        assert_eq!(d.config.services, before, "nothing changed");
        // The same server is fine masqueraded, but may not be switched to direct routing.
        d.execute(add_real_by(Forward::Masq, far)).unwrap();
        let edit = Command::EditReal {
            service: svc(),
            real: far,
            weight: None,
            forward: Some(Forward::Route),
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        };
        assert_eq!(
            d.execute(edit).unwrap_err().code(),
            ErrorCode::InvalidArgument
        );
        // A direct-routed server whose route went away later does not block other changes.
        d.execute(add_real_by(Forward::Route, real(9))).unwrap();
        d.steering.off_link.insert(real(9).addr);
        d.execute(add_real_by(Forward::Masq, real(10))).unwrap();
    }

    #[test]
    fn seed_configuration_reaches_snapshot_and_steering() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        assert_eq!(service.reals.len(), 2);
        assert_eq!(
            service.schedule(&NoLoad, &any_flow()).unwrap().addr,
            Ipv4Addr::new(198, 19, 0, 148)
        );
        assert_eq!(
            service.schedule(&NoLoad, &any_flow()).unwrap().addr,
            Ipv4Addr::new(198, 19, 0, 137)
        );
        assert!(d.steering().services.contains(&vip_of(&svc())));
        assert_eq!(d.steering().reals.len(), 2);
        assert_eq!(d.steering().neighbours.len(), 2);
        let Reply::List(list) = d.execute(Command::List).unwrap() else {
            panic!()
        };
        assert_eq!(list.services[0].reals[0].real, real(148));
        assert_eq!(list.services[0].reals[0].weight, 1);
    }

    fn v6() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: "2001:2::129".parse().unwrap(),
            port: 80,
        }
    }

    fn real6(last: u16) -> RealKey {
        RealKey {
            addr: Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, last).into(),
            port: 80,
        }
    }

    fn add_svc(service: ServiceKey, persistent: Option<u32>, netmask: Option<Netmask>) -> Command {
        Command::AddService {
            service,
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent,
            netmask,
        }
    }

    fn add_rs(service: ServiceKey, real: RealKey, forward: Option<Forward>) -> Command {
        Command::AddReal {
            service,
            real,
            weight: None,
            forward,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        }
    }

    fn edit_rs(service: ServiceKey, real: RealKey, forward: Option<Forward>) -> Command {
        Command::EditReal {
            service,
            real,
            weight: Some(2),
            forward,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        }
    }

    /// IPVS's family rules (`invalid_argument`), what the dataplane cannot forward yet
    /// (`unsupported`: a tunnel across families) and an IPv6 tunnel without an IPv6 address on
    /// the internal interface (`invalid_argument`) are refused; nothing changes, in a batch or
    /// a configuration either.
    #[test]
    fn ipv6_limits_are_refused_and_change_nothing() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        d.execute(add_svc(v6(), None, None)).unwrap();
        d.execute(add_rs(v6(), real6(0x11), Some(Forward::Masq)))
            .unwrap();
        let before = d.config.services.clone();
        let listed = list(&mut d);
        let published = Arc::clone(reader.current());
        let steered = (d.steering.services.clone(), d.steering.neighbours.clone());

        let v6_81 = ServiceKey { port: 81, ..v6() };
        let r6 = real6(0x11);
        let lip6: IpAddr = "2001:2:0:1::160".parse().unwrap();
        let unsupported = ErrorCode::Unsupported;
        let invalid = ErrorCode::InvalidArgument;
        let mixed = "is allowed only for tunneling (-i), as in IPVS";
        let across = "this xvsd's dataplane does not forward across families yet";
        let cases: Vec<(Command, ErrorCode, &str)> =
            vec![
            (
                add_svc(v6_81, Some(600), Some(Ipv4Addr::new(255, 255, 255, 0).into())),
                invalid,
                "netmask 255.255.255.0 does not fit IPv6 service TCP [2001:2::129]:81: an IPv6 \
                 service's persistence granularity is a prefix length (1..=128)",
            ),
            (
                add_svc(v6_81, Some(600), Some(Netmask::PrefixLen(0))),
                invalid,
                "prefix length 0 of IPv6 service TCP [2001:2::129]:81 is out of range (1..=128)",
            ),
            (
                add_svc(v6_81, None, Some(Netmask::PrefixLen(129))),
                invalid,
                "out of range (1..=128)",
            ),
            (
                add_svc(
                    ServiceKey { port: 81, ..svc() },
                    Some(600),
                    Some(Netmask::PrefixLen(24)),
                ),
                invalid,
                "prefix length 24 does not fit IPv4 service TCP 198.18.0.129:81: an IPv4 \
                 service's persistence granularity is a dotted netmask",
            ),
            (
                Command::EditService {
                    service: svc(),
                    scheduler: None,
                    sched_flags: None,
                    persistent: Some(60),
                    netmask: Some(Netmask::PrefixLen(24)),
                },
                invalid,
                "does not fit IPv4 service",
            ),
            (
                add_rs(svc(), r6, Some(Forward::Masq)),
                invalid,
                "real server 2001:2:0:1::11 is IPv6 and service TCP 198.18.0.129:80 IPv4: a real \
                 server of another address family than its service is allowed only for \
                 tunneling (-i), as in IPVS, not with masquerading (-m) (ipvsadm: \"Different \
                 address family is allowed only for tunneling servers\")",
            ),
            // add_real's default method is masquerading.
            (add_rs(svc(), r6, None), invalid, mixed),
            (add_rs(svc(), r6, Some(Forward::Route)), invalid, mixed),
            (add_rs(svc(), r6, Some(Forward::FullNat)), invalid, mixed),
            (edit_rs(svc(), r6, Some(Forward::Masq)), invalid, mixed),
            (
                add_rs(v6(), real(148), Some(Forward::Masq)),
                invalid,
                "real server 198.19.0.148 is IPv4 and service TCP [2001:2::129]:80 IPv6",
            ),
            (edit_rs(v6(), real(148), Some(Forward::Route)), invalid, mixed),
            // A tunnel may cross families in IPVS, not in this dataplane yet.
            (
                add_rs(svc(), r6, Some(Forward::Tunnel)),
                unsupported,
                "real server [2001:2:0:1::11]:80 is IPv6 and service TCP 198.18.0.129:80 IPv4: \
                 IPVS tunnels to a real server of another address family than its service, but \
                 this xvsd's dataplane does not forward across families yet",
            ),
            (add_rs(v6(), real(148), Some(Forward::Tunnel)), unsupported, across),
            // An IPv6 tunnel leaves from the internal interface's IPv6 address: it has none.
            (
                add_rs(v6(), real6(0x12), Some(Forward::Tunnel)),
                invalid,
                "tunnelling (-i) to IPv6 real server [2001:2:0:1::12]:80 of service TCP \
                 [2001:2::129]:80 needs a global IPv6 address on the internal interface",
            ),
            (
                edit_rs(v6(), r6, Some(Forward::Tunnel)),
                invalid,
                "needs a global IPv6 address on the internal interface",
            ),
            (
                laddr(true, lip6),
                invalid,
                "local address 2001:2:0:1::160 is IPv6 and service TCP 198.18.0.129:80 IPv4: a \
                 FullNAT local address has its service's address family",
            ),
            (
                Command::AddLaddr {
                    service: v6(),
                    addr: LIP,
                },
                invalid,
                "local address 198.19.0.160 is IPv4 and service TCP [2001:2::129]:80 IPv6",
            ),
            // A batch with a valid change before: all or nothing.
            (
                Command::Batch {
                    commands: vec![
                        add_svc(ServiceKey { port: 81, ..svc() }, None, None),
                        add_svc(v6_81, Some(600), Some(Netmask::PrefixLen(64))),
                        add_rs(v6_81, RealKey { port: 81, ..real6(0x12) }, Some(Forward::Tunnel)),
                    ],
                },
                invalid,
                "tunnelling (-i) to IPv6 real server [2001:2:0:1::12]:81 of service TCP \
                 [2001:2::129]:81 needs",
            ),
            // A configuration (xvsd --config) with an IPv6 tunnel is refused whole.
            (
                Command::Replace {
                    commands: vec![
                        add_svc(svc(), None, None),
                        add_rs(svc(), real(148), Some(Forward::Masq)),
                        add_svc(v6(), None, None),
                        add_rs(v6(), r6, Some(Forward::Tunnel)),
                    ],
                },
                invalid,
                "needs a global IPv6 address",
            ),
        ];
        for (command, code, message) in cases {
            let err = d.execute(command.clone()).unwrap_err();
            assert_eq!(err.code(), code, "{command:?}: {err}");
            assert!(err.to_string().contains(message), "{command:?}: {err}");
            assert_eq!(
                d.config.services, before,
                "{command:?} changed the configuration"
            );
            assert_eq!(list(&mut d), listed, "{command:?} changed the listing");
        }
        assert!(
            Arc::ptr_eq(reader.current(), &published),
            "nothing published"
        );
        assert_eq!(
            (d.steering.services.clone(), d.steering.neighbours.clone()),
            steered
        );
        // The configuration still takes changes; a persistent IPv4 service lists its mask.
        d.execute(add_svc(
            ServiceKey { port: 81, ..svc() },
            Some(600),
            Some(Ipv4Addr::new(255, 255, 255, 0).into()),
        ))
        .unwrap();
        let listed = list(&mut d);
        let s81 = listed
            .services
            .iter()
            .find(|s| s.service.port == 81)
            .unwrap();
        assert_eq!(s81.netmask, Netmask::Mask(Ipv4Addr::new(255, 255, 255, 0)));
        let seed = listed.services.iter().find(|s| s.service == svc()).unwrap();
        assert_eq!(seed.netmask, Netmask::Mask(DEFAULT_NETMASK));
    }

    /// An IPv6 service with masqueraded and direct-routed IPv6 real servers: published with
    /// IPv6 addresses, its VIP in the snapshot's IPv6 VIPs (still while it drains), its
    /// replies steered and its on-link servers kept resolved; announced beside the IPv4 VIP.
    #[test]
    fn ipv6_services_reach_snapshot_listing_and_steering() {
        let (mut d, mut reader, stats) = director();
        add_seed(&mut d);
        d.execute(add_svc(v6(), None, None)).unwrap();
        // -M without -p: checked, and kept by no one (not persistent).
        d.execute(Command::EditService {
            service: v6(),
            scheduler: Some("wrr".into()),
            sched_flags: None,
            persistent: Some(0),
            netmask: Some(Netmask::PrefixLen(64)),
        })
        .unwrap();
        d.execute(Command::AddReal {
            service: v6(),
            real: real6(0x11),
            weight: Some(2),
            forward: Some(Forward::Masq),
            tunnel: None,
            upper_threshold: Some(100),
            lower_threshold: Some(50),
        })
        .unwrap();
        d.execute(add_rs(v6(), real6(0x12), None)).unwrap();

        let snapshot = Arc::clone(reader.current());
        assert_eq!(snapshot.vip_addrs6, [v6().addr]);
        assert_eq!(snapshot.vip_addrs, [svc().addr]);
        let service = snapshot.service(&vip_of(&v6())).unwrap();
        let reals: Vec<_> = service.reals.iter().map(|r| (r.addr, r.method)).collect();
        assert_eq!(
            reals,
            [
                (real6(0x11).addr, Method::Masq),
                (real6(0x12).addr, Method::Masq)
            ]
        );
        assert!(service.reals.iter().all(|r| r.addr.is_ipv6()));
        assert_eq!(
            (service.dests[0].weight, service.dests[0].upper_threshold),
            (2, 100)
        );
        let flow = Flow {
            proto: PROTO_TCP,
            caddr: "2001:2:1::201".parse().unwrap(),
            cport: 40000,
            vaddr: v6().addr,
            vport: 80,
        };
        let picked = service.schedule(&NoLoad, &flow).unwrap().addr;
        assert!(
            [real6(0x11).addr, real6(0x12).addr].contains(&picked),
            "{picked}"
        );

        // Steered as IPv4 services are: the VIP, the masqueraded servers' replies, their MACs.
        assert!(d.steering.services.contains(&vip_of(&v6())));
        for r in [real6(0x11), real6(0x12)] {
            assert!(d.steering.reals.contains(&real_endpoint(Protocol::Tcp, &r)));
            assert!(d.steering.neighbours.contains(&r.addr));
        }
        // Direct routing: on-link only, kept resolved, replies not steered.
        d.steering.off_link.insert(real6(0x7001).addr);
        let e = d
            .execute(add_rs(v6(), real6(0x7001), Some(Forward::Route)))
            .unwrap_err();
        assert!(e.to_string().contains("connected route"), "{e}");
        d.execute(add_rs(v6(), real6(0x13), Some(Forward::Route)))
            .unwrap();
        assert!(d.steering.neighbours.contains(&real6(0x13).addr));
        assert!(!d.steering.reals.iter().any(|v| v.addr == real6(0x13).addr));

        let listed = list(&mut d);
        let info = listed.services.iter().find(|s| s.service == v6()).unwrap();
        assert_eq!(info.scheduler, "wrr");
        assert_eq!(info.netmask, Netmask::PrefixLen(128));
        let forwards: Vec<_> = info.reals.iter().map(|r| (r.real, r.forward)).collect();
        assert_eq!(
            forwards,
            [
                (real6(0x11), Forward::Masq),
                (real6(0x12), Forward::Masq),
                (real6(0x13), Forward::Route)
            ]
        );
        // Both families' VIPs are announced.
        assert_eq!(
            d.servable_vips(1),
            BTreeSet::from([IpAddr::from([198, 18, 0, 129]), v6().addr])
        );

        // Removed with a connection left: its VIP stays steered and published while it
        // drains.
        let id = d.config.services[&v6()].reals[0].id;
        stats.real(id).unwrap().active.add(1);
        d.execute(Command::DelService { service: v6() }).unwrap();
        assert_eq!(reader.current().vip_addrs6, [v6().addr]);
        assert!(reader.current().service(&vip_of(&v6())).is_none());
        assert!(d.steering.services.contains(&vip_of(&v6())));
        assert!(!d.steering.neighbours.contains(&real6(0x12).addr));
        stats.real(id).unwrap().active.add(-1);
        d.housekeeping();
        assert!(!d.steering.services.contains(&vip_of(&v6())));
        assert!(!d.steering.neighbours.contains(&real6(0x11).addr));
    }

    /// FullNAT of an IPv6 service: its IPv6 local addresses go to the snapshot's IPv6 local
    /// addresses (the IPv4 ones to the IPv4 list) and are claimed; each is checked against the
    /// VIPs and the primary address of its own family.
    #[test]
    fn ipv6_fullnat_local_addresses_reach_snapshot_and_steering() {
        let (mut d, mut reader, _) = director();
        let lip6: IpAddr = "2001:2:0:1::160".parse().unwrap();
        d.internal.addr6 = Some("2001:2:0:1::152".parse().unwrap());
        add_seed(&mut d);
        d.execute(laddr(true, LIP)).unwrap();
        d.execute(add_svc(v6(), None, None)).unwrap();
        let far = RealKey {
            addr: "2001:2:7::1".parse().unwrap(),
            port: 8080,
        };
        let e = d
            .execute(add_rs(v6(), far, Some(Forward::FullNat)))
            .unwrap_err();
        assert!(e.to_string().contains("no local address"), "{e}");
        d.execute(Command::AddLaddr {
            service: v6(),
            addr: lip6,
        })
        .unwrap();
        d.execute(add_rs(v6(), far, Some(Forward::FullNat)))
            .unwrap();

        let snapshot = Arc::clone(reader.current());
        assert_eq!(snapshot.local_addrs, [LIP]);
        assert_eq!(snapshot.local_addrs6, [lip6]);
        let service = snapshot.service(&vip_of(&v6())).unwrap();
        assert_eq!(&service.local_addrs[..], &[lip6]);
        assert!(service
            .reals
            .iter()
            .any(|r| r.addr == far.addr && r.port == 8080 && r.method == Method::FullNat));
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP, lip6]));
        assert!(d
            .steering
            .reals
            .contains(&real_endpoint(Protocol::Tcp, &far)));
        assert!(!d.steering.neighbours.contains(&far.addr));
        let listed = list(&mut d);
        let info = listed.services.iter().find(|s| s.service == v6()).unwrap();
        assert_eq!(info.local_addrs, [lip6]);

        // Compared within its family: an IPv6 VIP, the internal interface's IPv6 address.
        d.execute(add_svc(
            ServiceKey {
                addr: "2001:2::130".parse().unwrap(),
                ..v6()
            },
            None,
            None,
        ))
        .unwrap();
        let before = d.config.clone();
        for (addr, message) in [
            ("2001:2::130", "is a virtual service address"),
            ("2001:2:0:1::152", "internal interface's primary address"),
        ] {
            let e = d
                .execute(Command::AddLaddr {
                    service: v6(),
                    addr: addr.parse().unwrap(),
                })
                .unwrap_err();
            assert!(e.to_string().contains(message), "{e} (wanted {message})");
            assert_eq!(d.config, before);
        }
        d.execute(Command::DelLaddr {
            service: v6(),
            addr: lip6,
        })
        .unwrap_err();
        d.execute(Command::DelReal {
            service: v6(),
            real: far,
        })
        .unwrap();
        d.execute(Command::DelLaddr {
            service: v6(),
            addr: lip6,
        })
        .unwrap();
        assert_eq!(reader.current().local_addrs6, [] as [Ipv6Addr; 0]);
        assert_eq!(d.steering.laddrs, BTreeSet::from([LIP]));
    }

    /// `xvsadm` lines of an IPv6 configuration, as xvsd takes them, and every listing of it:
    /// nothing in the listings panics on IPv6. (`-Lnc` shows the workers' connections, which
    /// are IPv4 only for now: IPv6 connections do not appear in it yet.)
    #[test]
    fn xvsadm_ipv6_configuration_applies_and_lists() {
        use crate::ipvsadm::{self, Invocation};
        let invocation = |line: &str| {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            ipvsadm::parse(&args).unwrap_or_else(|e| panic!("{line}: {e}"))
        };
        let (mut d, mut reader, _) = director();
        for line in [
            "-A -t [2001:2::129]:80 -s wlc",
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::11]:80 -m -w 3 -x 100 -y 50",
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::12]:80 -g",
            "-A -u [2001:2::129]:53 -s mh -b mh-port",
            "-a -u [2001:2::129]:53 -r [2001:2:0:1::11]:5353 -m",
            "-A -t [2001:2::130]:443 -s rr",
            "--add-laddr -t [2001:2::130]:443 -z 2001:2:0:1::160",
            "-a -t [2001:2::130]:443 -r [2001:2:7::1]:8443 --fullnat",
            "-E -t [2001:2::129]:80 -s wrr -p 300 -M 64",
        ] {
            let Invocation::Apply(command) = invocation(line) else {
                panic!("{line}")
            };
            d.execute(command).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        // Tunnels (ipvsadm's "ipip" is IPv6 in IPv6 here) once the internal interface has an
        // IPv6 address, their source.
        let tunnels = [
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::13]:80 -i",
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::14]:80 -i --tun-type gue --tun-port 6080",
        ];
        let Invocation::Apply(command) = invocation(tunnels[0]) else {
            panic!("{}", tunnels[0])
        };
        let e = d.execute(command).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument, "{}: {e}", tunnels[0]);
        assert!(
            e.to_string().contains("needs a global IPv6 address"),
            "{}: {e}",
            tunnels[0]
        );
        d.internal.addr6 = Some("2001:2:0:1::152".parse().unwrap());
        for line in tunnels {
            let Invocation::Apply(command) = invocation(line) else {
                panic!("{line}")
            };
            d.execute(command).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        assert_eq!(reader.current().services.len(), 3);
        assert_eq!(reader.current().local_addrs6.len(), 1);

        let listed = list(&mut d);
        let Invocation::List(opts) = invocation("-Ln") else {
            panic!("-Ln")
        };
        let text = ipvsadm::format_list(&listed, &opts).unwrap();
        assert!(
            text.contains("TCP  [2001:2::129]:80 wrr persistent 300 mask 64"),
            "{text}"
        );
        assert!(
            text.contains("  -> [2001:2:0:1::11]:80          Masq    3"),
            "{text}"
        );
        assert!(
            text.contains("  -> [2001:2:0:1::12]:80          Route"),
            "{text}"
        );
        for real in ["13", "14"] {
            let row = format!("  -> [2001:2:0:1::{real}]:80          Tunnel  1");
            assert!(text.contains(&row), "{text}");
        }
        for line in [
            "-Ln --stats",
            "-Ln --rate",
            "-Ln --thresholds",
            "-Ln --persistent-conn",
            "-L -n -t [2001:2::129]:80",
        ] {
            let Invocation::List(opts) = invocation(line) else {
                panic!("{line}")
            };
            ipvsadm::format_list(&listed, &opts).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
        let Invocation::Health(opts) = invocation("-L --health") else {
            panic!("--health")
        };
        ipvsadm::format_health(&listed, &opts).unwrap();
        // -S gives back lines xvsadm takes again.
        let saved = ipvsadm::format_save(&listed);
        assert!(saved.contains("-A -t [2001:2::129]:80 -s wrr"), "{saved}");
        assert!(saved.contains("2001:2:0:1::160"), "{saved}");
        assert!(
            saved.contains("-r [2001:2:0:1::13]:80 -i -w 1 --tun-type ipip\n")
                && saved.contains(
                    "-r [2001:2:0:1::14]:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum"
                ),
            "{saved}"
        );
        for line in saved.lines() {
            let args: Vec<String> = line.split_whitespace().map(String::from).collect();
            ipvsadm::parse(&args).unwrap_or_else(|e| panic!("-S line {line:?}: {e}"));
        }
        let Reply::Connections(conns) = d.execute(Command::Connections).unwrap() else {
            panic!("connections")
        };
        let Invocation::Connections(opts) = invocation("-Lnc") else {
            panic!("-Lnc")
        };
        let text = ipvsadm::format_connections(&conns, &opts);
        assert!(text.starts_with("IPVS connection entries\n"), "{text}");
        let Invocation::Laddrs(opts) = invocation("--get-laddr") else {
            panic!("--get-laddr")
        };
        let text = ipvsadm::format_laddrs(&listed, &conns, &opts).unwrap();
        assert!(text.contains("2001:2:0:1::160"), "{text}");
    }

    #[test]
    fn bad_input_is_refused_and_changes_nothing() {
        let (mut d, _, _) = director();
        add_seed(&mut d);
        let before = d.config.services.clone();
        let cases: Vec<(Command, ErrorCode)> = vec![
            (
                Command::AddService {
                    service: svc(),
                    scheduler: Some("rr".into()),
                    sched_flags: None,
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::ServiceExists,
            ),
            (
                Command::AddService {
                    service: ServiceKey { port: 0, ..svc() },
                    scheduler: Some("rr".into()),
                    sched_flags: None,
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: Some("fastest".into()),
                    sched_flags: None,
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::UnknownScheduler,
            ),
            (
                Command::AddReal {
                    service: svc(),
                    real: real(148),
                    weight: None,
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::RealExists,
            ),
            (
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: Some(70000),
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                // GUE needs a port; remote checksum offload is not implemented.
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: Some(Forward::Tunnel),
                    tunnel: Some(TunnelSpec {
                        kind: TunnelKind::Gue,
                        port: None,
                        checksum: TunnelChecksum::NoCsum,
                    }),
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: Some(Forward::Tunnel),
                    tunnel: Some(TunnelSpec {
                        kind: TunnelKind::Gue,
                        port: Some(6080),
                        checksum: TunnelChecksum::RemCsum,
                    }),
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::Unsupported,
            ),
            (
                // Tunnel options without the tunnelling method.
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: Some(Forward::Route),
                    tunnel: Some(TunnelSpec::default()),
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                // No checksum in IP in IP.
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: Some(Forward::Tunnel),
                    tunnel: Some(TunnelSpec {
                        checksum: TunnelChecksum::Csum,
                        ..TunnelSpec::default()
                    }),
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                // Direct routing cannot change the port.
                Command::AddReal {
                    service: svc(),
                    real: RealKey {
                        port: 8080,
                        ..real(9)
                    },
                    weight: None,
                    forward: Some(Forward::Route),
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddReal {
                    service: ServiceKey { port: 81, ..svc() },
                    real: real(9),
                    weight: None,
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::NoSuchService,
            ),
            (
                Command::DelReal {
                    service: svc(),
                    real: real(9),
                },
                ErrorCode::NoSuchReal,
            ),
            (
                Command::DelService {
                    service: ServiceKey { port: 81, ..svc() },
                },
                ErrorCode::NoSuchService,
            ),
            (
                Command::EditReal {
                    service: svc(),
                    real: real(148),
                    weight: Some(65536),
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: None,
                },
                ErrorCode::InvalidArgument,
            ),
            // Scheduler flags ipvsadm would refuse, and IPVS's threshold order.
            (
                Command::AddService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: Some("sh".into()),
                    sched_flags: Some(vec!["sh-port".into(), "mh-port".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: None,
                    sched_flags: Some(vec!["sh-fallback".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: Some("rr".into()),
                    sched_flags: Some(vec!["fallback".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::AddService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: Some("rr".into()),
                    sched_flags: Some(vec!["flag-3".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::EditService {
                    service: svc(),
                    scheduler: Some("rr".into()),
                    sched_flags: Some(vec!["sh-port".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::EditService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: Some("sh".into()),
                    sched_flags: Some(vec!["sh-port".into()]),
                    persistent: None,
                    netmask: None,
                },
                ErrorCode::NoSuchService,
            ),
            (
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: None,
                    tunnel: None,
                    upper_threshold: Some(5),
                    lower_threshold: Some(6),
                },
                ErrorCode::InvalidArgument,
            ),
            (
                // An upper threshold of 0 is "no limit", yet IPVS still wants lower <= upper.
                Command::AddReal {
                    service: svc(),
                    real: real(9),
                    weight: None,
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: Some(1),
                },
                ErrorCode::InvalidArgument,
            ),
            (
                // The upper threshold absent from an edit keeps its value (0 here).
                Command::EditReal {
                    service: svc(),
                    real: real(148),
                    weight: None,
                    forward: None,
                    tunnel: None,
                    upper_threshold: None,
                    lower_threshold: Some(1),
                },
                ErrorCode::InvalidArgument,
            ),
            // Persistence: ipvsadm's timeout range, contiguous masks, no port 0.
            (
                persistent_service(81, Some(MAX_PERSISTENT_TIMEOUT + 1), None),
                ErrorCode::InvalidArgument,
            ),
            (
                persistent_service(81, Some(60), Some([255, 0, 255, 0])),
                ErrorCode::InvalidArgument,
            ),
            (
                // Checked even where it would be dropped (no persistence).
                persistent_service(81, None, Some([255, 255, 255, 1])),
                ErrorCode::InvalidArgument,
            ),
            (
                persistent_service(0, Some(60), None),
                ErrorCode::Unsupported,
            ),
            (
                persistent_service(0, Some(0), None),
                ErrorCode::InvalidArgument,
            ),
            (
                persistent_service(80, Some(60), None),
                ErrorCode::ServiceExists,
            ),
            (
                Command::EditService {
                    service: svc(),
                    scheduler: None,
                    sched_flags: None,
                    persistent: Some(u32::MAX),
                    netmask: None,
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::EditService {
                    service: svc(),
                    scheduler: None,
                    sched_flags: None,
                    persistent: Some(60),
                    netmask: Some(Ipv4Addr::new(0, 255, 255, 255).into()),
                },
                ErrorCode::InvalidArgument,
            ),
            (
                Command::EditService {
                    service: ServiceKey { port: 81, ..svc() },
                    scheduler: None,
                    sched_flags: None,
                    persistent: Some(60),
                    netmask: None,
                },
                ErrorCode::NoSuchService,
            ),
        ];
        for (command, code) in cases {
            let err = d.execute(command.clone()).unwrap_err();
            assert_eq!(err.code(), code, "{command:?}: {err}");
            assert_eq!(
                d.config.services, before,
                "{command:?} changed the configuration"
            );
        }
    }

    /// An IPv6 service's persistence: `-M` a prefix length, published as its mask and listed
    /// as the length; 128 when none is given; an edit keeps what it does not say, and 0 turns
    /// persistence off.
    #[test]
    fn ipv6_persistence_reaches_the_snapshot_and_the_listing() {
        let (mut d, mut reader, _) = director();
        let published = |reader: &mut xvs_dataplane::publish::Reader<Snapshot>, service| {
            let snap = reader.current();
            snap.service(&vip_of(&service)).unwrap().persistence
        };
        let listed = |d: &mut Director<FakeSteering>, service| {
            let listed = list(d);
            let info = listed.services.iter().find(|s| s.service == service);
            info.map(|s| (s.persistent, s.netmask)).unwrap()
        };
        let p = |timeout_secs, len| {
            Some(Persistence {
                timeout_secs,
                netmask: prefix_mask6(len).into(),
            })
        };
        let edit = |persistent, netmask| Command::EditService {
            service: v6(),
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent,
            netmask,
        };
        let v6_81 = ServiceKey { port: 81, ..v6() };
        d.execute(add_svc(v6(), Some(300), Some(Netmask::PrefixLen(64))))
            .unwrap();
        d.execute(add_svc(v6_81, Some(60), None)).unwrap();
        let mask64: IpAddr = "ffff:ffff:ffff:ffff::".parse().unwrap();
        assert_eq!(
            published(&mut reader, v6()).map(|p| (p.timeout_secs, p.netmask)),
            Some((300, mask64))
        );
        assert_eq!(listed(&mut d, v6()), (Some(300), Netmask::PrefixLen(64)));
        assert_eq!(published(&mut reader, v6_81), p(60, 128), "IPVS's default");
        assert_eq!(listed(&mut d, v6_81), (Some(60), Netmask::PrefixLen(128)));

        d.execute(edit(Some(600), None)).unwrap();
        assert_eq!(published(&mut reader, v6()), p(600, 64), "the prefix kept");
        d.execute(edit(None, Some(Netmask::PrefixLen(48)))).unwrap();
        assert_eq!(published(&mut reader, v6()), p(600, 48), "the timeout kept");
        assert_eq!(listed(&mut d, v6()), (Some(600), Netmask::PrefixLen(48)));
        d.execute(edit(Some(0), None)).unwrap();
        assert_eq!(published(&mut reader, v6()), None);
        assert_eq!(listed(&mut d, v6()), (None, Netmask::PrefixLen(128)));
    }

    fn persistent_service(port: u16, persistent: Option<u32>, netmask: Option<[u8; 4]>) -> Command {
        Command::AddService {
            service: ServiceKey { port, ..svc() },
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent,
            netmask: netmask.map(|m| Ipv4Addr::from(m).into()),
        }
    }

    fn edit_persistence(
        d: &mut Director<FakeSteering>,
        persistent: Option<u32>,
        netmask: Option<[u8; 4]>,
    ) {
        d.execute(Command::EditService {
            service: svc(),
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent,
            netmask: netmask.map(|m| Ipv4Addr::from(m).into()),
        })
        .unwrap();
    }

    /// What the snapshot and the listing say of the seed service's persistence.
    fn persistence_of(
        d: &mut Director<FakeSteering>,
        reader: &mut xvs_dataplane::publish::Reader<Snapshot>,
        service: ServiceKey,
    ) -> (Option<Persistence>, Option<u32>, Ipv4Addr) {
        let snap = reader.current();
        let published = snap.service(&vip_of(&service)).unwrap().persistence;
        let listed = list(d);
        let info = listed
            .services
            .iter()
            .find(|s| s.service == service)
            .unwrap();
        let Netmask::Mask(netmask) = info.netmask else {
            panic!("{:?}: {}", info.service, info.netmask)
        };
        (published, info.persistent, netmask)
    }

    #[test]
    fn persistence_reaches_the_snapshot_and_the_listing() {
        let (mut d, mut reader, stats) = director();
        let p = |timeout_secs, netmask: [u8; 4]| {
            Some(Persistence {
                timeout_secs,
                netmask: Ipv4Addr::from(netmask).into(),
            })
        };
        let all = Ipv4Addr::BROADCAST;
        // Absent, 0, and a mask without persistence: not persistent, listed /32.
        for (port, persistent, netmask) in [
            (81, None, None),
            (82, Some(0), None),
            (83, None, Some([255, 255, 255, 0])),
        ] {
            d.execute(persistent_service(port, persistent, netmask))
                .unwrap();
            let key = ServiceKey { port, ..svc() };
            assert_eq!(
                persistence_of(&mut d, &mut reader, key),
                (None, None, all),
                "{port}"
            );
        }
        // -p 600 -M 255.255.255.0; -p with the whole range's ends.
        d.execute(persistent_service(80, Some(600), Some([255, 255, 255, 0])))
            .unwrap();
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()),
            (
                p(600, [255, 255, 255, 0]),
                Some(600),
                Ipv4Addr::new(255, 255, 255, 0)
            )
        );
        d.execute(persistent_service(84, Some(1), Some([0, 0, 0, 0])))
            .unwrap();
        d.execute(persistent_service(85, Some(MAX_PERSISTENT_TIMEOUT), None))
            .unwrap();
        let key = |port| ServiceKey { port, ..svc() };
        assert_eq!(
            persistence_of(&mut d, &mut reader, key(84)),
            (p(1, [0, 0, 0, 0]), Some(1), Ipv4Addr::UNSPECIFIED)
        );
        assert_eq!(
            persistence_of(&mut d, &mut reader, key(85)),
            (p(MAX_PERSISTENT_TIMEOUT, [255; 4]), Some(2_678_400), all)
        );

        // Edits: established connections and counters stay where they are.
        for last in [148, 137] {
            d.execute(Command::AddReal {
                service: svc(),
                real: real(last),
                weight: None,
                forward: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            })
            .unwrap();
        }
        let service_id = d.config.services[&svc()].id;
        let real_id = d.config.services[&svc()].reals[0].id;
        stats.real(real_id).unwrap().active.add(2);
        let steered = d.steering().services.clone();

        // Nothing said: unchanged.
        edit_persistence(&mut d, None, None);
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()).0,
            p(600, [255, 255, 255, 0])
        );
        // A new mask keeps the timeout; a new timeout keeps the mask.
        edit_persistence(&mut d, None, Some([255, 255, 0, 0]));
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()).0,
            p(600, [255, 255, 0, 0])
        );
        edit_persistence(&mut d, Some(30), None);
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()).0,
            p(30, [255, 255, 0, 0])
        );
        // 0 turns it off, and the mask goes with it.
        edit_persistence(&mut d, Some(0), Some([255, 255, 255, 0]));
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()),
            (None, None, all)
        );
        // A mask alone does not turn it on.
        edit_persistence(&mut d, None, Some([255, 255, 255, 0]));
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()),
            (None, None, all)
        );
        // On again without a mask: /32, not the mask it had before.
        edit_persistence(&mut d, Some(45), None);
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()),
            (p(45, [255; 4]), Some(45), all)
        );
        // What xvsadm -E sends: everything.
        edit_persistence(&mut d, Some(360), Some([255, 255, 255, 255]));
        assert_eq!(
            persistence_of(&mut d, &mut reader, svc()).0,
            p(360, [255; 4])
        );

        // Same service slot, same real servers, connection counts intact, steering untouched.
        let config = &d.config.services[&svc()];
        assert_eq!(config.id, service_id);
        assert_eq!(config.reals[0].id, real_id);
        assert_eq!(d.steering().services, steered);
        let listed = list(&mut d);
        let info = listed.services.iter().find(|s| s.service == svc()).unwrap();
        assert_eq!(info.reals.len(), 2);
        assert_eq!(info.reals[0].active_conns, 2);
        assert_eq!(info.reals[0].persist_conns, 0);
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        assert_eq!(service.id, service_id);
        assert!(service.schedule(&NoLoad, &any_flow()).is_some());
    }

    #[test]
    fn removed_real_with_connections_keeps_steering_until_drained() {
        let (mut d, _, stats) = director();
        add_seed(&mut d);
        let id = d.config.services[&svc()].reals[0].id;
        stats.real(id).unwrap().active.add(1);
        d.execute(Command::DelReal {
            service: svc(),
            real: real(148),
        })
        .unwrap();
        let endpoint = real_endpoint(Protocol::Tcp, &real(148));
        assert!(d.steering().reals.contains(&endpoint), "still draining");
        d.housekeeping();
        assert!(d.steering().reals.contains(&endpoint));
        stats.real(id).unwrap().active.add(-1);
        d.housekeeping();
        assert!(!d.steering().reals.contains(&endpoint), "drained");
        // Clear removes the rest; nothing is connected so everything goes at once.
        d.execute(Command::Clear).unwrap();
        assert!(d.steering().services.is_empty() && d.steering().reals.is_empty());
        assert!(d.steering().neighbours.is_empty());
    }

    #[test]
    fn weight_zero_quiesces() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        d.execute(Command::EditReal {
            service: svc(),
            real: real(148),
            weight: Some(0),
            forward: None,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        })
        .unwrap();
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        for _ in 0..4 {
            assert_eq!(
                service.schedule(&NoLoad, &any_flow()).unwrap().addr,
                Ipv4Addr::new(198, 19, 0, 137)
            );
        }
    }

    fn list(d: &mut Director<FakeSteering>) -> ListReply {
        match d.execute(Command::List).unwrap() {
            Reply::List(list) => list,
            other => panic!("{other:?}"),
        }
    }

    fn edit_thresholds(
        d: &mut Director<FakeSteering>,
        last: u8,
        weight: Option<u32>,
        upper: Option<u32>,
        lower: Option<u32>,
    ) -> Result<Reply, ApplyError> {
        d.execute(Command::EditReal {
            service: svc(),
            real: real(last),
            weight,
            forward: None,
            tunnel: None,
            upper_threshold: upper,
            lower_threshold: lower,
        })
    }

    #[test]
    fn thresholds_reach_the_snapshot_and_the_listing() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        edit_thresholds(&mut d, 148, None, Some(100), Some(50)).unwrap();
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        let d148 = service.dests[0];
        assert_eq!(d148.addr, Ipv4Addr::new(198, 19, 0, 148));
        assert_eq!((d148.upper_threshold, d148.lower_threshold), (100, 50));
        assert_eq!((d148.weight, service.dests[1].upper_threshold), (1, 0));
        let r = &list(&mut d).services[0].reals[0];
        assert_eq!((r.upper_threshold, r.lower_threshold), (100, 50));

        // An edit without thresholds keeps them; one with them replaces them.
        edit_thresholds(&mut d, 148, Some(3), None, None).unwrap();
        let r = &list(&mut d).services[0].reals[0];
        assert_eq!(
            (r.weight, r.upper_threshold, r.lower_threshold),
            (3, 100, 50)
        );
        edit_thresholds(&mut d, 148, None, Some(1), Some(0)).unwrap();
        let r = &list(&mut d).services[0].reals[0];
        assert_eq!((r.upper_threshold, r.lower_threshold), (1, 0));
        let err = edit_thresholds(&mut d, 148, None, Some(5), Some(6)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "lower threshold 6 is higher than upper threshold 5"
        );
        // u32's whole range is accepted (ipvsadm itself stops at INT_MAX).
        d.execute(Command::AddReal {
            service: svc(),
            real: real(9),
            weight: None,
            forward: None,
            tunnel: None,
            upper_threshold: Some(u32::MAX),
            lower_threshold: Some(u32::MAX),
        })
        .unwrap();

        // The scheduler sees them: .148 (one connection, upper threshold 1) is overloaded, so
        // round robin skips it.
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        let load: &[(u64, u64)] = &[(0, 1), (0, 0), (0, 0)];
        for _ in 0..6 {
            let pick = service.schedule(load, &any_flow()).unwrap().addr;
            assert_ne!(pick, Ipv4Addr::new(198, 19, 0, 148));
        }
        assert!(service.schedule(&NoLoad, &any_flow()).is_some());
    }

    #[test]
    fn sched_flags_reach_the_scheduler_and_the_listing() {
        let (mut d, mut reader, _) = director();
        let sh = ServiceKey { port: 443, ..svc() };
        d.execute(Command::AddService {
            service: sh,
            scheduler: Some("sh".into()),
            // flag-1 is sh-fallback's generic name; it is listed under the sh name.
            sched_flags: Some(vec!["flag-1".into()]),
            persistent: None,
            netmask: None,
        })
        .unwrap();
        for last in [148, 137] {
            d.execute(Command::AddReal {
                service: sh,
                real: real(last),
                weight: None,
                forward: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            })
            .unwrap();
        }
        assert_eq!(list(&mut d).services[0].sched_flags, ["sh-fallback"]);
        let hashed = {
            let snap = reader.current();
            let service = snap.service(&vip_of(&sh)).unwrap();
            service.schedule(&NoLoad, &any_flow()).unwrap().addr
        };
        let other = if hashed == Ipv4Addr::new(198, 19, 0, 148) {
            Ipv4Addr::new(198, 19, 0, 137)
        } else {
            Ipv4Addr::new(198, 19, 0, 148)
        };
        // Quiesce the server the client hashes to: sh-fallback takes the other one.
        d.execute(Command::EditReal {
            service: sh,
            real: RealKey {
                addr: hashed,
                port: 80,
            },
            weight: Some(0),
            forward: None,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        })
        .unwrap();
        let pick = |reader: &mut xvs_dataplane::publish::Reader<Snapshot>| {
            let snap = reader.current();
            let service = snap.service(&vip_of(&sh)).unwrap();
            service.schedule(&NoLoad, &any_flow()).map(|r| r.addr)
        };
        assert_eq!(pick(&mut reader), Some(other.into()));

        // An edit without sched_flags keeps them.
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("sh".into()),
            sched_flags: None,
            persistent: None,
            netmask: None,
        })
        .unwrap();
        assert_eq!(pick(&mut reader), Some(other.into()));
        // Both flags, in ipvsadm's order whatever the request's.
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("sh".into()),
            sched_flags: Some(vec!["sh-port".into(), "sh-fallback".into()]),
            persistent: None,
            netmask: None,
        })
        .unwrap();
        assert_eq!(
            list(&mut d).services[0].sched_flags,
            ["sh-fallback", "sh-port"]
        );
        // Cleared: without fallback the quiesced server's clients get no server (IPVS's "no
        // destination available"; weights 0 and 1 build the same alternating table as 1 and 1).
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("sh".into()),
            sched_flags: Some(vec![]),
            persistent: None,
            netmask: None,
        })
        .unwrap();
        assert!(list(&mut d).services[0].sched_flags.is_empty());
        assert_eq!(pick(&mut reader), None);

        // IPVS keeps the flag bits when only the scheduler changes; ipvsadm lists them under
        // the generic names for a scheduler other than sh and mh.
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("sh".into()),
            sched_flags: Some(vec!["sh-port".into()]),
            persistent: None,
            netmask: None,
        })
        .unwrap();
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("mh".into()),
            sched_flags: None,
            persistent: None,
            netmask: None,
        })
        .unwrap();
        assert_eq!(list(&mut d).services[0].sched_flags, ["mh-port"]);
        d.execute(Command::EditService {
            service: sh,
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent: None,
            netmask: None,
        })
        .unwrap();
        assert_eq!(list(&mut d).services[0].sched_flags, ["flag-2"]);
        // Names are checked against the scheduler of the request, with ipvsadm's words.
        let err = d
            .execute(Command::EditService {
                service: sh,
                scheduler: Some("rr".into()),
                sched_flags: Some(vec!["sh-port".into()]),
                persistent: None,
                netmask: None,
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "incompatible scheduler flag `sh-port' (scheduler rr)"
        );
    }

    fn add_service(port: u16) -> Command {
        Command::AddService {
            service: ServiceKey { port, ..svc() },
            scheduler: Some("rr".into()),
            sched_flags: None,
            persistent: None,
            netmask: None,
        }
    }

    fn add_real(port: u16, last: u8, weight: u32) -> Command {
        Command::AddReal {
            service: ServiceKey { port, ..svc() },
            real: RealKey { port, ..real(last) },
            weight: Some(weight),
            forward: None,
            tunnel: None,
            upper_threshold: None,
            lower_threshold: None,
        }
    }

    #[test]
    fn a_batch_applies_all_or_nothing() {
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        let before = d.config.clone();
        let published = Arc::as_ptr(reader.current());
        let (services_free, reals_free) = (d.service_slots.available(), d.real_slots.available());
        // The third command fails: the first two must not be applied either.
        let err = d
            .execute(Command::Batch {
                commands: vec![add_service(443), add_real(443, 148, 2), add_service(80)],
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ServiceExists);
        assert_eq!(
            err.to_string(),
            "command 3 of 3 (add_service): service TCP 198.18.0.129:80 already exists"
        );
        assert_eq!(d.config, before);
        assert_eq!(
            Arc::as_ptr(reader.current()),
            published,
            "nothing published"
        );
        assert_eq!(d.service_slots.available(), services_free, "no slot leaked");
        assert_eq!(d.real_slots.available(), reals_free);
        // Listings cannot be batched.
        let err = d
            .execute(Command::Batch {
                commands: vec![Command::List],
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);

        // A valid batch lands at once, including what it adds and removes again.
        d.execute(Command::Batch {
            commands: vec![
                add_service(443),
                add_real(443, 148, 2),
                add_real(443, 137, 1),
                Command::DelReal {
                    service: ServiceKey { port: 443, ..svc() },
                    real: RealKey {
                        port: 443,
                        ..real(137)
                    },
                },
                Command::SetTimeouts {
                    tcp: 60,
                    tcpfin: 0,
                    udp: 0,
                },
            ],
        })
        .unwrap();
        let snap = reader.current();
        let https = snap
            .service(&vip_of(&ServiceKey { port: 443, ..svc() }))
            .unwrap();
        assert_eq!(https.reals.len(), 1);
        assert_eq!(snap.timeouts.tcp, 60);
        assert_eq!(d.real_slots.available(), reals_free - 1);
    }

    #[test]
    fn replace_applies_the_difference_and_keeps_what_stays() {
        let (mut d, mut reader, stats) = director();
        add_seed(&mut d);
        let kept_id = d.config.services[&svc()].reals[1].id; // .137
        let gone_id = d.config.services[&svc()].reals[0].id; // .148
        stats.real(kept_id).unwrap().traffic.conns.add(5);
        stats.real(gone_id).unwrap().active.add(1);
        // The file: the same service, .137 with a new weight, .148 gone, a new service.
        d.execute(Command::Replace {
            commands: vec![
                add_service(80),
                add_real(80, 137, 3),
                add_service(443),
                add_real(443, 140, 1),
            ],
        })
        .unwrap();
        let kept = &d.config.services[&svc()];
        assert_eq!(kept.reals.len(), 1);
        assert_eq!((kept.reals[0].id, kept.reals[0].weight), (kept_id, 3));
        let list = list(&mut d);
        assert_eq!(list.services[0].reals[0].stats.conns, 5, "counters kept");
        assert_eq!(list.services.len(), 2);
        // The removed server's connection keeps it steered while it drains.
        let endpoint = real_endpoint(Protocol::Tcp, &real(148));
        assert!(d.steering().reals.contains(&endpoint));
        assert!(reader
            .current()
            .service(&vip_of(&ServiceKey { port: 443, ..svc() }))
            .is_some());

        // A bad configuration changes nothing and says where it failed.
        let before = d.config.clone();
        let err = d
            .execute(Command::Replace {
                commands: vec![add_service(80), add_real(81, 137, 1)],
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoSuchService);
        assert!(
            err.to_string().starts_with("command 2 of 2 (add_real)"),
            "{err}"
        );
        assert_eq!(d.config, before);
        // Replacing with the same configuration is a no-op for ids.
        d.execute(Command::Replace {
            commands: vec![
                add_service(80),
                add_real(80, 137, 3),
                add_service(443),
                add_real(443, 140, 1),
            ],
        })
        .unwrap();
        assert_eq!(d.config, before);
    }

    #[test]
    fn zero_resets_counters_of_one_service_or_all() {
        let (mut d, _, stats) = director();
        add_seed(&mut d);
        d.execute(add_service(443)).unwrap();
        d.execute(add_real(443, 140, 1)).unwrap();
        for service in d.config.services.values() {
            stats.service(service.id).unwrap().conns.add(7);
            stats
                .real(service.reals[0].id)
                .unwrap()
                .traffic
                .conns
                .add(7);
        }
        d.execute(Command::Zero {
            service: Some(svc()),
        })
        .unwrap();
        let l = list(&mut d);
        let conns = |l: &ListReply| -> Vec<u64> {
            l.services
                .iter()
                .flat_map(|s| {
                    std::iter::once(s.stats.conns).chain(s.reals.iter().map(|r| r.stats.conns))
                })
                .collect()
        };
        // Service 80 first (sorted), its two reals, then 443 and its real.
        assert_eq!(conns(&l), vec![0, 0, 0, 7, 7]);
        d.execute(Command::Zero { service: None }).unwrap();
        assert_eq!(conns(&list(&mut d)), vec![0, 0, 0, 0, 0]);
        let err = d
            .execute(Command::Zero {
                service: Some(ServiceKey {
                    port: 8080,
                    ..svc()
                }),
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NoSuchService);
    }

    #[test]
    fn timeouts_are_set_kept_with_zero_and_bounded() {
        let (mut d, mut reader, _) = director();
        let get = |d: &mut Director<FakeSteering>| match d.execute(Command::Timeouts).unwrap() {
            Reply::Timeouts(t) => (t.tcp, t.tcpfin, t.udp),
            other => panic!("{other:?}"),
        };
        assert_eq!(get(&mut d), (900, 120, 300));
        d.execute(Command::SetTimeouts {
            tcp: 3600,
            tcpfin: 0,
            udp: 30,
        })
        .unwrap();
        assert_eq!(get(&mut d), (3600, 120, 30));
        assert_eq!(reader.current().timeouts.udp, 30);
        let err = d
            .execute(Command::SetTimeouts {
                tcp: 0,
                tcpfin: 2_147_484,
                udp: 0,
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("tcpfin"), "{err}");
        assert_eq!(get(&mut d), (3600, 120, 30));
    }

    #[test]
    fn rates_follow_ipvs_estimator_ticks() {
        let (mut d, _, stats) = director();
        add_seed(&mut d);
        let id = d.config.services[&svc()].id;
        let start = d.last_rate_tick;
        // 200 connections every 2 s (100 conn/s) for 40 ticks.
        for k in 1..=40u32 {
            stats.service(id).unwrap().conns.add(200);
            d.tick_rates(start + estimator::TICK * k);
        }
        assert_eq!(list(&mut d).services[0].rates.cps, 100);
        // A tick less than 2 s after the last one does nothing.
        stats.service(id).unwrap().conns.add(10_000);
        d.tick_rates(start + estimator::TICK * 40 + std::time::Duration::from_millis(500));
        assert_eq!(list(&mut d).services[0].rates.cps, 100);
        d.execute(Command::Zero { service: None }).unwrap();
        assert_eq!(list(&mut d).services[0].rates.cps, 0);
    }

    #[test]
    fn a_failed_check_quiesces_the_server_until_it_rises_again() {
        use crate::health::CheckResult;
        use crate::protocol::{CheckKind, HealthState};
        let (mut d, mut reader, _) = director();
        add_seed(&mut d);
        let spec = CheckSpec {
            rise: 2,
            fall: 3,
            ..CheckSpec::new(CheckKind::Tcp)
        };
        d.execute(Command::SetCheck {
            service: svc(),
            check: Some(spec.clone()),
        })
        .unwrap();
        let result = |last: u8, ok: bool| CheckResult {
            service: svc(),
            real: real(last),
            ok,
            error: (!ok).then(|| "connect: Connection refused".to_string()),
            at: Instant::now(),
        };
        let weights = |reader: &mut xvs_dataplane::publish::Reader<Snapshot>| {
            let snap = reader.current();
            let service = snap.service(&vip_of(&svc())).unwrap();
            service
                .dests
                .iter()
                .zip(service.reals.iter())
                .map(|(dest, r)| (dest.weight, r.failed))
                .collect::<Vec<_>>()
        };
        // Servers start up; two failures of .148 are not yet `fall` (3).
        assert_eq!(weights(&mut reader), [(1, false), (1, false)]);
        assert_eq!(d.record_health(result(148, false)), None);
        assert_eq!(d.record_health(result(148, false)), None);
        let flip = d
            .record_health(result(148, false))
            .expect("down on the third failure");
        assert_eq!((flip.real, flip.state), (real(148), HealthState::Down));
        assert_eq!(weights(&mut reader), [(0, true), (1, false)]);
        // What a director behind ECMP announces follows: one server left of two.
        let vip = BTreeSet::from([IpAddr::from([198, 18, 0, 129])]);
        assert_eq!(
            (d.servable_vips(1), d.servable_vips(2)),
            (vip.clone(), BTreeSet::new())
        );
        // New connections all go to .137 now.
        let snap = reader.current();
        let service = snap.service(&vip_of(&svc())).unwrap();
        for _ in 0..4 {
            assert_eq!(
                service.schedule(&NoLoad, &any_flow()).unwrap().addr,
                real(137).addr
            );
        }
        // The listing keeps the configured weight and shows the health.
        let listed = list(&mut d);
        let r148 = &listed.services[0].reals[0];
        assert_eq!(r148.weight, 1);
        let health = r148.health.as_ref().unwrap();
        assert_eq!((health.state, health.checks_failed), (HealthState::Down, 3));
        assert_eq!(
            health.last_error.as_deref(),
            Some("connect: Connection refused")
        );
        assert_eq!(
            listed.services[0].reals[1].health.as_ref().unwrap().state,
            HealthState::Up
        );
        assert_eq!(listed.services[0].check, Some(spec));

        // An unrelated change keeps the state; `rise` successes bring it back.
        d.execute(add_real(80, 200, 1)).unwrap();
        assert!(d.health.is_down(&svc(), &real(148)));
        assert_eq!(d.record_health(result(148, true)), None);
        let flip = d
            .record_health(result(148, true))
            .expect("up on the second success");
        assert_eq!(flip.state, HealthState::Up);
        assert_eq!(weights(&mut reader)[..2], [(1, false), (1, false)]);

        // Without a check nothing is tracked: results are ignored and health is not listed.
        d.record_health(result(137, false));
        d.execute(Command::SetCheck {
            service: svc(),
            check: None,
        })
        .unwrap();
        for _ in 0..5 {
            assert_eq!(d.record_health(result(137, false)), None);
        }
        assert!(list(&mut d).services[0]
            .reals
            .iter()
            .all(|r| r.health.is_none()));
    }

    #[test]
    fn a_bad_check_is_refused() {
        use crate::protocol::CheckKind;
        let (mut d, _, _) = director();
        add_seed(&mut d);
        let bad = CheckSpec {
            rise: 0,
            ..CheckSpec::new(CheckKind::Tcp)
        };
        let err = d
            .execute(Command::SetCheck {
                service: svc(),
                check: Some(bad),
            })
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("rise"), "{err}");
        assert_eq!(list(&mut d).services[0].check, None);
    }

    #[test]
    fn a_connection_limit_reaches_the_snapshot_and_the_listing() {
        let (mut d, reader, _) = director();
        add_seed(&mut d);
        let limit = |d: &mut Director<FakeSteering>,
                     reader: &mut xvs_dataplane::publish::Reader<Snapshot>| {
            let listed = list(d).services[0].max_conns;
            let published = reader.current().service(&vip_of(&svc())).unwrap().max_conns;
            (listed, published)
        };
        let mut reader = reader;
        assert_eq!(limit(&mut d, &mut reader), (0, 0));
        let set = Command::SetConnLimit {
            service: svc(),
            max_conns: 5000,
        };
        let json = serde_json::to_string(&crate::protocol::Request::new(set.clone())).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"cmd":"set_conn_limit","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"max_conns":5000}"#
        );
        d.execute(set).unwrap();
        assert_eq!(limit(&mut d, &mut reader), (5000, 5000));
        let other = ServiceKey { port: 81, ..svc() };
        assert!(matches!(
            d.execute(Command::SetConnLimit {
                service: other,
                max_conns: 1
            }),
            Err(ApplyError::NoSuchService(_))
        ));
        d.execute(Command::SetConnLimit {
            service: svc(),
            max_conns: 0,
        })
        .unwrap();
        assert_eq!(limit(&mut d, &mut reader), (0, 0));
    }

    /// A reload (`replace` from the `--config` text, as on SIGHUP) makes the connection
    /// limits what the file says, as for checks: kept where the file has `--conn-limit`,
    /// changed where it differs, removed where it has none; and `xvsadm -E` without
    /// `--conn-limit` leaves a limit alone.
    #[test]
    fn replace_makes_the_connection_limits_what_the_file_says() {
        let (mut d, mut reader, _) = director();
        let reload = |d: &mut Director<FakeSteering>, text: &str| {
            let commands = crate::config_file::parse(text).unwrap();
            d.execute(Command::Replace { commands }).unwrap();
        };
        let limits = |d: &mut Director<FakeSteering>,
                      reader: &mut xvs_dataplane::publish::Reader<Snapshot>| {
            let listed: Vec<_> = list(d)
                .services
                .iter()
                .map(|s| (s.service.port, s.max_conns))
                .collect();
            let snap = reader.current();
            for &(port, max_conns) in &listed {
                let key = ServiceKey { port, ..svc() };
                assert_eq!(snap.service(&vip_of(&key)).unwrap().max_conns, max_conns);
            }
            listed
        };
        let file = "\
-A -t 198.18.0.129:80 -s rr --conn-limit 5000
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
-A -t 198.18.0.129:443 -s rr --check tcp --conn-limit 7
";
        reload(&mut d, file);
        assert_eq!(limits(&mut d, &mut reader), vec![(80, 5000), (443, 7)]);
        let id = d.config.services[&svc()].id;
        // The same file again: the limits stay (and the service keeps its slot).
        reload(&mut d, file);
        assert_eq!(limits(&mut d, &mut reader), vec![(80, 5000), (443, 7)]);
        assert_eq!(d.config.services[&svc()].id, id);
        // -E without --conn-limit leaves it alone.
        let edit = match crate::ipvsadm::parse(
            &["-E", "-t", "198.18.0.129:443", "-s", "wrr"].map(String::from),
        ) {
            Ok(crate::ipvsadm::Invocation::Apply(command)) => command,
            other => panic!("{other:?}"),
        };
        d.execute(edit).unwrap();
        assert_eq!(limits(&mut d, &mut reader), vec![(80, 5000), (443, 7)]);
        // A file without the option removes the limit; one with another value changes it.
        reload(
            &mut d,
            "\
-A -t 198.18.0.129:80 -s rr
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
-A -t 198.18.0.129:443 -s rr --check tcp --conn-limit 9
",
        );
        assert_eq!(limits(&mut d, &mut reader), vec![(80, 0), (443, 9)]);
        assert_eq!(d.config.services[&svc()].id, id);
    }

    /// `xvsadm -S` of a rich table, restored with `xvsadm -R` into a fresh director, lists
    /// the same configuration and saves to the same text.
    #[test]
    fn save_and_restore_reproduce_the_configuration() {
        use crate::ipvsadm::{format_save, parse_restore};
        let (mut d, _, _) = director();
        let text = "\
-A -t 198.18.0.129:80 -s wrr --check http --check-path /healthz --check-status 204 --rise 3 \
--conn-limit 20000
-a -t 198.18.0.129:80 -r 198.19.0.137:8080 -m -w 3 -x 100 -y 10
-a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 0
-A -t 198.18.0.129:443 -s sh -p 600 -M 255.255.255.0 -b sh-fallback,sh-port --conn-limit 1
-a -t 198.18.0.129:443 -r 198.19.0.148:443 -m -w 1
-A -u 198.18.0.129:53 -s mh -b mh-port --check tcp --check-port 53 --check-interval 0.5
-a -u 198.18.0.129:53 -r 198.19.0.137:53 -m -w 2
-a -u 198.18.0.129:53 -r 198.19.0.148:53 -m -w 5
";
        d.execute(parse_restore(text).unwrap()).unwrap();
        let original = list(&mut d);
        let saved = format_save(&original);

        let (mut restored, _, _) = director();
        restored.execute(parse_restore(&saved).unwrap()).unwrap();
        let copy = list(&mut restored);
        assert_eq!(format_save(&copy), saved);
        let config = |l: &ListReply| {
            l.services
                .iter()
                .map(|s| {
                    let reals: Vec<_> = s
                        .reals
                        .iter()
                        .map(|r| (r.real, r.weight, r.upper_threshold, r.lower_threshold))
                        .collect();
                    let svc = (s.service, s.scheduler.clone(), s.sched_flags.clone());
                    let check = (s.check.clone(), s.max_conns);
                    (svc, s.persistent, s.netmask, check, reals)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(config(&copy), config(&original));
        assert_eq!(original.services.len(), 3);
        // The text as given is what -S prints (sorted services: TCP before UDP, by port).
        let mut given: Vec<&str> = text.lines().collect();
        let mut printed: Vec<&str> = saved.lines().collect();
        given.sort_unstable();
        printed.sort_unstable();
        assert_eq!(printed, given);
    }
}
