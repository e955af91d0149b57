//! `xvsd`: sets up the dataplane on two interfaces and serves the control socket.
//!
//! Start-up: read both interfaces over netlink (index, MAC), create the XDP fast path's maps
//! (unless `--fast-path off`), attach our XDP program to each through a BPF link (both
//! instances sharing those maps), open each interface to redirected frames while it can
//! transmit them (checked again every 2 s), create one UMEM and one AF_XDP socket per
//! (interface, queue), register the sockets in the programs' XSKMAPs, read the neighbour
//! tables, start the neighbour thread and one pinned worker per group of queues, then serve
//! the control socket on this thread until SIGINT/SIGTERM (and, with `--metrics`, Prometheus
//! scrapes, answered from this thread too); the control loop also drains health-check results
//! (probes leave from the internal interface's address, which the internal XDP program passes
//! to the kernel). Shutdown stops the workers, detaches the programs and removes the socket.
//! If the process is killed instead, the kernel closes the BPF links (detaching the programs),
//! the maps (never pinned) and the sockets; the next start replaces the stale control socket
//! file.

use crate::announce::{AnnounceOptions, Announcer};
use crate::apply::{Director, Steering, WorkerHandle};
use crate::capture::service::{capture_cpus, online_cpu_list, Captures, SetCapturing};
use crate::health::ProbeSource;
use crate::metrics::{self, MetricsServer, MetricsSource};
use crate::napi_tuning::{busy_poll_settings, threaded_napi_settings, NapiTuning, SYSFS_NET};
use crate::privileges;
use crate::protocol::{Command, HealthState};
use crate::server::{Access, ControlHandle, ControlLoop, ControlServer};
use anyhow::{bail, Context};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_dataplane::capture::CaptureTap;
use xvs_dataplane::fastpath::{
    ConnId, FastFamily, FastPath, FastPathMaps, FlowWriter, NextHopSync, DEFAULT_INSTALL_AFTER,
};
use xvs_dataplane::neigh::{KernelTables, NeighbourTable, Netlink};
use xvs_dataplane::persist::{Templates, Templates6};
use xvs_dataplane::process::Side;
use xvs_dataplane::publish::Publisher;
use xvs_dataplane::resolver::{self, Resolver};
use xvs_dataplane::snapshot::{Interface, Snapshot, Vip};
use xvs_dataplane::stats::{TrafficTotals, WorkerStats, MAX_REALS};
use xvs_dataplane::worker::{Mailbox, ResolveQueue, Shared, Worker, WorkerOptions, NEVER_WAIT};
use xvs_dataplane::xsk::{
    rx_queue_count, socket_counters, socket_napi_id, BindMode, BusyPoll, EndpointKey, FrameMemory,
    Port, PortOptions, QueueCounters, Role, SocketCounters, XdpMode, XdpProgram,
};

/// Slots of the shared persistence template table (16 bytes each): room for this many
/// persistent clients (groups) at once; beyond it new clients are scheduled without a template.
const PERSISTENCE_SLOTS: usize = 1 << 18;
/// Slots of the shared table of IPv6 clients' templates (32 bytes each).
const PERSISTENCE_SLOTS6: usize = 1 << 16;

/// Bytes of each worker's capture ring (reserved at start, touched only by a capture): about
/// 1,000 full-size frames or 45,000 small ones waiting for the collector, which drains every
/// millisecond.
const CAPTURE_RING_BYTES: usize = 4 << 20;
/// How long a capture's start or end waits for the control thread to switch the fast path.
const CAPTURE_SWITCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a scrape waits for the control thread; then it is answered 503.
const METRICS_TIMEOUT: Duration = Duration::from_secs(5);

/// What `xvsd --external IF --internal IF ...` asks for.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub external: String,
    pub internal: String,
    pub control: PathBuf,
    /// Default: one per queue, at most the number of cores.
    pub workers: Option<usize>,
    pub conn_max: usize,
    /// `--conn-max6`: the same for IPv6 connections (a table of their own).
    pub conn_max6: usize,
    pub xdp_mode: XdpMode,
    pub bind_mode: BindMode,
    pub ring_size: u32,
    /// UMEM frame size (a power of two, at least 2048).
    pub frame_size: u32,
    /// Who besides root may use the control socket.
    pub access: Access,
    /// `--config`: applied at start and re-read on SIGHUP.
    pub config: Option<PathBuf>,
    /// `--metrics`: where to serve Prometheus's `GET /metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--idle`: what a worker does when its rings are empty.
    pub idle: IdleStrategy,
    /// `--drop-privileges`: keep only [`privileges::KEPT`] once started.
    pub drop_privileges: bool,
    /// `--busy-poll`: workers run their interfaces' receive NAPI themselves.
    pub busy_poll: Option<BusyPoll>,
    /// `--worker-priority`: the workers' SCHED_FIFO priority, 0 for normal scheduling.
    pub worker_priority: u8,
    /// `--threaded-napi`: the interfaces' receive in kernel threads on the workers' cores.
    pub threaded_napi: bool,
    /// `--fast-path`: where established flows are forwarded.
    pub fast_path: FastPathMode,
    /// `--fast-path-after`: packets a worker forwards of a connection the fast path may carry
    /// before it installs it there.
    pub fast_path_after: u8,
    /// `--sloppy-tcp`, `--sloppy-udp`: the setting a configuration starts from.
    pub sloppy: crate::protocol::Sloppy,
    /// `--announce`: servable VIPs handed to a BGP daemon (see crate::announce).
    pub announce: Option<AnnounceOptions>,
}

/// Where packets of established flows are rewritten and forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastPathMode {
    /// In the XDP program, redirected from interface to interface; the workers install and
    /// remove the flows (see xvs_dataplane::fastpath).
    #[default]
    Xdp,
    /// Every packet through the AF_XDP workers.
    Off,
}

/// How often the control thread checks that the interfaces still take redirected frames.
const EGRESS_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Frames a realtime worker handles before it lets the receive threads of its core poll
/// once (see [`WorkerOptions::yield_after`]).
const REALTIME_YIELD_AFTER: usize = 128;

/// `--conn-max6`'s default: a quarter of `--conn-max`'s, since an IPv6 entry takes about twice
/// the memory of an IPv4 one (all reserved at start) and most directors carry IPv4 first.
pub const DEFAULT_CONN_MAX6: usize = 1 << 18;

/// The workers' default realtime priority (SCHED_FIFO's lowest): see [`set_worker_priority`].
pub const DEFAULT_WORKER_PRIORITY: u8 = 1;

/// What a worker does when its rings are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdleStrategy {
    /// Spin a while, then sleep in `ppoll` until a socket has frames, another worker hands
    /// frames over (its doorbell), or 200 us pass (housekeeping): an idle director uses
    /// little CPU.
    #[default]
    Adaptive,
    /// Never sleep: the lowest latency, one full core per worker even when idle.
    BusyPoll,
}

impl DaemonOptions {
    pub fn new(external: &str, internal: &str) -> Self {
        DaemonOptions {
            external: external.to_string(),
            internal: internal.to_string(),
            control: PathBuf::from(crate::client::DEFAULT_CONTROL_PATH),
            workers: None,
            conn_max: 1 << 20,
            conn_max6: DEFAULT_CONN_MAX6,
            xdp_mode: XdpMode::Auto,
            bind_mode: BindMode::Auto,
            ring_size: 1024,
            frame_size: 4096,
            access: Access::default(),
            config: None,
            metrics: None,
            idle: IdleStrategy::default(),
            drop_privileges: false,
            busy_poll: None,
            worker_priority: DEFAULT_WORKER_PRIORITY,
            threaded_napi: false,
            fast_path: FastPathMode::default(),
            fast_path_after: DEFAULT_INSTALL_AFTER,
            sloppy: Default::default(),
            announce: None,
        }
    }
}

/// The XDP programs and the neighbour thread, as the configuration model drives them.
struct XdpSteering {
    external: XdpProgram,
    /// `None` on a one-armed director: `external` steers both sides.
    internal: Option<XdpProgram>,
    resolver: Resolver,
    /// The AF_XDP socket of each rx queue (owned by a worker; only its counters are read).
    sockets: HashMap<(Side, u32), RawFd>,
    fast_path: Option<Arc<FastPath>>,
    /// Reads the internal interface's routes when a direct-routing real server is added.
    netlink: Netlink,
    /// The director's own addresses on the internal side (both families), which go to its
    /// kernel unless FullNAT claims one as a local address.
    dips: Vec<IpAddr>,
}

impl XdpSteering {
    /// The program that steers the real servers' side.
    fn internal(&mut self) -> &mut XdpProgram {
        self.internal.as_mut().unwrap_or(&mut self.external)
    }
}

impl Steering for XdpSteering {
    fn set_service(&mut self, vip: Vip, on: bool) -> io::Result<()> {
        let key = EndpointKey::new(vip.proto, vip.addr, vip.port);
        if on {
            self.external.add_endpoint(key)
        } else {
            self.external.remove_endpoint(key)
        }
    }

    fn set_real(&mut self, real: Vip, on: bool) -> io::Result<()> {
        let key = EndpointKey::new(real.proto, real.addr, real.port);
        if on {
            self.internal().add_endpoint(key)
        } else {
            self.internal().remove_endpoint(key)
        }
    }

    fn queue_counters(&self, side: Side, queue: u32) -> QueueCounters {
        let program = match side {
            Side::External => &self.external,
            Side::Internal => self.internal.as_ref().unwrap_or(&self.external),
        };
        program.queue_counters(queue).unwrap_or_default()
    }

    fn socket_counters(&self, side: Side, queue: u32) -> SocketCounters {
        self.sockets
            .get(&(side, queue))
            .and_then(|fd| socket_counters(*fd).ok())
            .unwrap_or_default()
    }

    fn fast_service_traffic(&self, id: u32) -> TrafficTotals {
        self.fast_path
            .as_ref()
            .map(|f| f.maps.service_traffic(id))
            .unwrap_or_default()
    }

    fn fast_real_traffic(&self, id: u32) -> TrafficTotals {
        self.fast_path
            .as_ref()
            .map(|f| f.maps.real_traffic(id))
            .unwrap_or_default()
    }

    fn fast_last_seen<A: FastFamily>(&self) -> Option<HashMap<ConnId<A>, u64>> {
        self.fast_path.as_ref()?.maps.last_seen::<A>().ok()
    }

    fn on_internal_link(&mut self, addr: IpAddr) -> io::Result<bool> {
        let ifindex = self.internal().ifindex();
        match addr {
            IpAddr::V4(addr) => {
                let routes = NeighbourTable::new(self.netlink.routes(&[ifindex])?, Vec::new());
                Ok(routes.next_hop(ifindex, addr).is_ok_and(|hop| hop == addr))
            }
            IpAddr::V6(addr) => {
                let routes = NeighbourTable::from(KernelTables {
                    routes6: self.netlink.routes6(&[ifindex])?,
                    ..KernelTables::default()
                });
                Ok(routes
                    .next_hop_v6(ifindex, addr)
                    .is_ok_and(|hop| hop == addr))
            }
        }
    }

    fn set_capturing(&mut self, on: bool) -> io::Result<()> {
        for program in [Some(&self.external), self.internal.as_ref()]
            .into_iter()
            .flatten()
        {
            program.set_fast_path(!on).map_err(io::Error::other)?;
        }
        Ok(())
    }

    fn set_fullnat_addr(&mut self, addr: IpAddr, on: bool) -> io::Result<()> {
        if !self.dips.contains(&addr) {
            return Ok(());
        }
        match on {
            true => self.internal().remove_local_address(addr),
            false => self.internal().add_local_address(addr),
        }
    }

    fn set_neighbour(&mut self, addr: IpAddr, on: bool) {
        let ifindex = self.internal().ifindex();
        self.resolver.send(if on {
            resolver::Command::Manage { ifindex, addr }
        } else {
            resolver::Command::Unmanage { ifindex, addr }
        });
    }
}

/// Runs the director until `shutdown` becomes true.
pub fn run(options: &DaemonOptions, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    if options.drop_privileges {
        // Threads restrict themselves as they start; this one once start-up is done.
        privileges::enable();
    }
    // The metrics port first: an unusable address fails before any interface is touched.
    // Scrapes wait for the control loop, which starts once the director is up.
    let control = ControlLoop::new();
    let metrics = options
        .metrics
        .map(|addr| start_metrics(addr, control.handle()))
        .transpose()?;
    // Before any interface is touched too: a daemon that does not answer, or a VIP to
    // announce that the configuration lacks, is a start-up error.
    if let Some(announce) = &options.announce {
        let configured = match &options.config {
            Some(path) => crate::announce::vips_of(&crate::config_file::load(path)?),
            None => Default::default(),
        };
        announce.check_vips(&configured)?;
    }
    let mut announcer = options.announce.clone().map(Announcer::start).transpose()?;
    let mut netlink = Netlink::open().context("opening rtnetlink")?;
    let ext_link = netlink
        .link(&options.external)
        .with_context(|| format!("external interface {:?}", options.external))?;
    let int_link = netlink
        .link(&options.internal)
        .with_context(|| format!("internal interface {:?}", options.internal))?;
    // One interface for both sides: the usual DR/TUN layout, one NIC. Its one XDP program
    // steers requests and replies; the workers tell them apart by destination.
    let one_armed = ext_link.ifindex == int_link.ifindex;
    // The MTU read now: a later change needs a restart (tunnels refuse by it).
    let interface = |link: &xvs_dataplane::neigh::Link| -> anyhow::Result<Interface> {
        Ok(Interface {
            ifindex: link.ifindex,
            mac: link.mac,
            addr: link
                .addrs
                .first()
                .map_or(Ipv4Addr::UNSPECIFIED, |&(addr, _)| addr),
            addr6: own_ipv6(
                &ip_addresses(&link.name)
                    .with_context(|| format!("reading the addresses of {}", link.name))?,
            ),
            mtu: u16::try_from(link.mtu).unwrap_or(u16::MAX),
        })
    };
    let external = interface(&ext_link)?;
    let internal = interface(&int_link)?;

    let ext_queues = rx_queue_count(&options.external)
        .with_context(|| format!("reading the queues of {}", options.external))?;
    let int_queues = rx_queue_count(&options.internal)
        .with_context(|| format!("reading the queues of {}", options.internal))?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let workers = plan_workers(
        options.workers,
        ext_queues,
        int_queues,
        cores.len().max(1),
        &options.external,
        &options.internal,
    )?;

    let fast_path = match options.fast_path {
        FastPathMode::Off => None,
        FastPathMode::Xdp => Some(Arc::new(FastPath::new(
            FastPathMaps::create(options.conn_max, options.conn_max6)
                .context("creating the fast path's maps")?,
            external.ifindex,
            internal.ifindex,
            options.fast_path_after,
        ))),
    };
    let fast_maps = fast_path.as_ref().map(|f| &f.maps);
    let ext_role = match one_armed {
        true => Role::MatchBoth,
        false => Role::MatchDestination,
    };
    let ext_program = XdpProgram::attach(external.ifindex, ext_role, options.xdp_mode, fast_maps)
        .with_context(|| format!("XDP on {}", options.external))?;
    let int_program = match one_armed {
        true => None,
        false => Some(
            XdpProgram::attach(
                internal.ifindex,
                Role::MatchSource,
                options.xdp_mode,
                fast_maps,
            )
            .with_context(|| format!("XDP on {}", options.internal))?,
        ),
    };
    let int_steering = int_program.as_ref().unwrap_or(&ext_program);
    let mut egress_check = fast_path
        .as_ref()
        .map(|f| EgressCheck::new(Arc::clone(f), options));
    if let Some(check) = egress_check.as_mut() {
        check.run();
    }
    // The director's own addresses on the internal side (its DIP): replies to its own
    // connections, health checks included, go to the kernel, not to the workers.
    let own_addrs: Vec<IpAddr> = ip_addresses(&options.internal)
        .with_context(|| format!("reading the addresses of {}", options.internal))?
        .into_iter()
        .map(|(addr, _)| addr)
        .collect();
    for addr in &own_addrs {
        int_steering
            .add_local_address(*addr)
            .with_context(|| format!("registering the local address {addr}"))?;
    }
    let dips = own_addrs;

    // Frames: each worker owns enough to keep every ring of its ports full twice over.
    let int_ports = if one_armed { 0 } else { int_queues };
    let ports_per_worker = ext_queues.div_ceil(workers as u32) + int_ports.div_ceil(workers as u32);
    let frames_per_worker = (ports_per_worker * options.ring_size * 2) as usize;
    let (memory, mut frames) =
        FrameMemory::new((frames_per_worker * workers) as u32, options.frame_size)?;
    let port_options = PortOptions {
        ring_size: options.ring_size,
        bind: options.bind_mode,
        batch: 64,
        busy_poll: options.busy_poll,
    };
    // Held until the end of `run`; restored after any exit (see napi_tuning).
    let sysfs = std::path::Path::new(SYSFS_NET);
    let ifaces: &[&str] = match one_armed {
        true => &[options.external.as_str()],
        false => &[options.external.as_str(), options.internal.as_str()],
    };
    let _busy_poll_tuning = options
        .busy_poll
        .map(|_| NapiTuning::apply(sysfs, ifaces, &busy_poll_settings()))
        .transpose()
        .context("--busy-poll")?;
    let _threaded_napi_tuning = if options.threaded_napi {
        let tuning = NapiTuning::apply(sysfs, ifaces, &threaded_napi_settings())
            .context("--threaded-napi")?;
        let reply_priority = reply_napi_priority(options);
        let interfaces = [
            (&options.external, external.ifindex, 0),
            (&options.internal, internal.ifindex, reply_priority),
        ];
        for &(name, ifindex, priority) in &interfaces[..ifaces.len()] {
            pin_napi_threads(name, ifindex, workers, &cores, priority)
                .with_context(|| format!("--threaded-napi: placing the NAPI threads of {name}"))?;
        }
        Some(tuning)
    } else {
        None
    };

    let mut worker_ports: Vec<Vec<Port>> = (0..workers).map(|_| Vec::new()).collect();
    let mut zero_copy = false;
    let mut sockets = HashMap::new();
    for (name, queues, side, program) in [
        (&options.external, ext_queues, Side::External, &ext_program),
        (&options.internal, int_ports, Side::Internal, int_steering),
    ] {
        for queue in 0..queues {
            let port = Port::open(&memory, name, queue, side, &port_options)?;
            program
                .register_socket(queue, port.fd())
                .with_context(|| format!("registering the socket of {name} queue {queue}"))?;
            zero_copy |= port.is_zero_copy();
            sockets.insert((side, queue), port.fd());
            worker_ports[queue as usize % workers].push(port);
        }
    }

    let resolve_queue = Arc::new(ResolveQueue::new(1024));
    let worker_stats: Arc<[Arc<WorkerStats>]> = (0..workers)
        .map(|_| Arc::new(WorkerStats::default()))
        .collect();
    let shared = Shared {
        memory,
        mailboxes: (0..workers)
            .map(|_| Mailbox::new(frames_per_worker, frames_per_worker))
            .collect::<io::Result<_>>()
            .context("creating the workers' doorbells (eventfd)")?,
        frames_per_worker,
        owner_seed: random_seed(),
        resolve: Arc::clone(&resolve_queue),
        shutdown: Arc::clone(&shutdown),
        epoch: Instant::now(),
        stats: Arc::clone(&worker_stats),
        templates: Arc::new(Templates::new(PERSISTENCE_SLOTS, random_seed())),
        templates6: Arc::new(Templates6::new(PERSISTENCE_SLOTS6, random_seed())),
        overload: (0..MAX_REALS).map(|_| AtomicBool::new(false)).collect(),
        capture: Arc::new(CaptureTap::new(workers, CAPTURE_RING_BYTES)),
    };
    let capture_tap = Arc::clone(&shared.capture);

    let config = Publisher::new(Snapshot {
        external,
        internal,
        ..Default::default()
    });
    let neighbours = Publisher::new(NeighbourTable::default());
    let neighbour_reader = neighbours.reader();
    let resolver = Resolver::spawn(
        if one_armed {
            vec![external.ifindex]
        } else {
            vec![external.ifindex, internal.ifindex]
        },
        neighbours,
        resolve_queue,
        Arc::clone(&shutdown),
        privileges::thread_start,
        fast_path.as_ref().map(|f| NextHopSync::new(Arc::clone(f))),
    )
    .context("starting the neighbour thread")?;

    let conn_capacity = options.conn_max.div_ceil(workers);
    let mut stats = Vec::new();
    let mut threads = Vec::new();
    for (id, ports) in worker_ports.into_iter().enumerate() {
        let home: Vec<_> = frames.drain(..frames_per_worker).collect();
        let own_stats = Arc::clone(&worker_stats[id]);
        let core = cores.get(id % cores.len().max(1)).copied();
        let worker_queues: Vec<_> = ports.iter().map(|p| (p.side(), p.queue())).collect();
        let worker = Worker::new(
            id,
            workers,
            ports,
            home,
            conn_capacity,
            shared.clone(),
            WorkerOptions {
                one_armed,
                conns6: options.conn_max6.div_ceil(workers),
                ..worker_options(options.idle, options.worker_priority > 0)
            },
            Arc::clone(&own_stats),
            config.reader(),
            neighbour_reader.clone(),
            fast_path.as_ref().map(|f| FlowWriter::new(Arc::clone(f))),
        )
        .map_err(anyhow::Error::msg)?;
        stats.push(WorkerHandle {
            stats: Arc::clone(&own_stats),
            core: core.map(|c| c.id as u32),
            queues: worker_queues,
            conns: Arc::clone(worker.conn_dump()),
        });
        let thread = std::thread::Builder::new()
            .name(format!("xvs-worker-{id}"))
            .spawn(move || {
                privileges::thread_start();
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                worker.run();
            })
            .context("starting a worker thread")?;
        let priority = set_worker_priority(&thread, options.worker_priority);
        threads.push(thread);
        priority?;
    }

    let captures = {
        // The fast path is the control thread's to switch.
        let handle = control.handle();
        let set_capturing: SetCapturing = Box::new(move |on| {
            handle
                .run(CAPTURE_SWITCH_TIMEOUT, move |director| {
                    director.set_capturing(on)
                })
                .unwrap_or_else(|| Err(io::Error::other("the control thread did not answer")))
        });
        // Worker `id` runs on `cores[id % len]`.
        let worker_cpus: Vec<usize> = cores.iter().take(workers).map(|c| c.id).collect();
        let own_cpus: Vec<usize> = cores.iter().map(|c| c.id).collect();
        let spare_cpus = capture_cpus(&own_cpus, &worker_cpus, &online_cpu_list());
        Captures::new(
            capture_tap,
            &options.external,
            &options.internal,
            set_capturing,
            Arc::clone(&shutdown),
            spare_cpus,
        )
    };
    let server = ControlServer::start(
        &options.control,
        options.access,
        control.handle(),
        Some(captures),
    )?;
    let interfaces = match one_armed {
        true => format!(
            "one arm {} ({ext_queues} queues) for both sides",
            options.external
        ),
        false => format!(
            "external {} ({ext_queues} queues), internal {} ({int_queues} queues)",
            options.external, options.internal
        ),
    };
    let started = format!(
        "xvsd: {interfaces}, {workers} worker(s) ({}), {} mode{}, control {}{}",
        match options.worker_priority {
            0 => "normal priority".to_string(),
            n => format!("SCHED_FIFO {n}"),
        },
        if zero_copy { "zero-copy" } else { "copy" },
        options.busy_poll.map_or(String::new(), |b| format!(
            ", busy polling (budget {})",
            b.budget
        )),
        server.path().display(),
        metrics.as_ref().map_or(String::new(), |m| format!(
            ", metrics http://{}/metrics",
            m.local_addr()
        ))
    );
    // One write: readers of the log (tests, supervisors) never see half of the line.
    eprintln!("{started}");
    let mut busy_poll_check = options.busy_poll.map(|_| BusyPollCheck::new(&sockets));
    // Health checks leave from the DIP, the address real servers already route back to: the
    // first IPv4 one, and the internal interface's own IPv6 one.
    let health_source = ProbeSource {
        v4: dips.iter().find_map(|addr| match addr {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        }),
        v6: internal.addr6,
    };
    let steering = XdpSteering {
        external: ext_program,
        internal: int_program,
        resolver,
        sockets,
        fast_path,
        netlink,
        dips,
    };
    let mut director = Director::new(
        config,
        external,
        internal,
        steering,
        stats,
        options.conn_max as u64,
    );
    director.set_conn_max6(options.conn_max6 as u64);
    director
        .set_default_sloppy(options.sloppy)
        .context("--sloppy-tcp/--sloppy-udp")?;
    director
        .start_health_checks(health_source)
        .context("starting the health checker")?;
    if let Some(path) = &options.config {
        let commands = crate::config_file::load(path)?;
        director
            .execute(Command::Replace { commands })
            .with_context(|| format!("applying the configuration {}", path.display()))?;
        eprintln!("xvsd: configuration {} applied", path.display());
    }
    if let Some(announcer) = announcer.as_mut() {
        announce(&mut director, announcer);
    }
    // SIGHUP re-reads --config; without one it is only logged (and never kills the daemon).
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("installing the SIGHUP handler")?;
    if options.drop_privileges {
        privileges::restrict_current_thread().context("--drop-privileges")?;
        eprintln!("xvsd: privileges dropped: only CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF kept");
    }
    control.run(&mut director, &shutdown, |director| {
        if let Some(check) = busy_poll_check.as_mut() {
            check.run(director, options);
        }
        if let Some(check) = egress_check.as_mut() {
            check.run();
        }
        if reload.swap(false, Ordering::Relaxed) {
            let announce = announcer.as_ref().map(|a| a.options());
            reload_config(director, options.config.as_deref(), announce);
        }
        for flip in director.poll_health() {
            let why = flip.error.map(|e| format!(": {e}")).unwrap_or_default();
            eprintln!(
                "xvsd: real server {} of {} is {}{why}",
                flip.real,
                flip.service,
                match flip.state {
                    HealthState::Up => "UP",
                    HealthState::Down => "DOWN (quiesced)",
                }
            );
        }
        if let Some(announcer) = announcer.as_mut() {
            announce(director, announcer);
        }
    });
    // Withdraw first: routers stop sending here while the workers still forward.
    drop(announcer);

    eprintln!("xvsd: shutting down");
    // Without its queue, scrapes still waiting for the control thread fail at once, so the
    // metrics server stops without waiting for them.
    drop(control);
    drop(metrics);
    for t in threads {
        let _ = t.join();
    }
    // Dropping the director detaches the XDP programs; the server removes its socket.
    drop(director);
    drop(server);
    Ok(())
}

/// Keeps each interface open to fast-path redirects exactly while it can transmit them
/// (`NETDEV_XDP_ACT_NDO_XMIT`: a veth loses it when its peer has neither an XDP program nor
/// GRO), and says so in the log at start and at every change.
struct EgressCheck {
    fast: Arc<FastPath>,
    names: [String; 2],
    ifindexes: [u32; 2],
    /// What was last applied (`None` before the first check).
    state: [Option<bool>; 2],
    next: Instant,
}

impl EgressCheck {
    fn new(fast: Arc<FastPath>, options: &DaemonOptions) -> Self {
        let (external, internal) = fast.interfaces();
        EgressCheck {
            fast,
            names: [options.external.clone(), options.internal.clone()],
            ifindexes: [external, internal],
            state: [None, None],
            next: Instant::now(),
        }
    }

    fn run(&mut self) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + EGRESS_CHECK_EVERY;
        for i in 0..2 {
            let (ok, why) = match crate::netdev::can_transmit_redirects(self.ifindexes[i]) {
                Ok(true) => (true, String::new()),
                Ok(false) => (
                    false,
                    " (no ndo_xdp_xmit: a driver without it, or a veth whose peer has neither \
                     an XDP program nor GRO enabled)"
                        .to_string(),
                ),
                Err(e) => (false, format!(" (cannot read its XDP features: {e:#})")),
            };
            if self.state[i] == Some(ok) {
                continue;
            }
            let external = i == 0;
            if let Err(e) = self.fast.set_egress(external, ok) {
                eprintln!("xvsd: fast path: updating {}: {e}", self.names[i]);
                continue;
            }
            self.state[i] = Some(ok);
            let what = if external { "replies" } else { "requests" };
            if ok {
                eprintln!(
                    "xvsd: fast path: established {what} leave {} from XDP",
                    self.names[i]
                );
            } else {
                eprintln!(
                    "xvsd: fast path: {} cannot take redirected frames{why}; {what} stay on the AF_XDP path",
                    self.names[i]
                );
            }
        }
    }
}

/// Tells the operator, once per socket, whether busy polling took hold: a socket's busy polls
/// run the NAPI it last received from, and a driver that gives its XDP receive queues no NAPI
/// id (veth) leaves them inert, the kernel receiving as without `--busy-poll`.
struct BusyPollCheck {
    /// The rx queues whose sockets are not settled yet.
    pending: Vec<(Side, u32)>,
    next: Instant,
}

impl BusyPollCheck {
    const EVERY: Duration = Duration::from_secs(2);

    fn new(sockets: &HashMap<(Side, u32), RawFd>) -> Self {
        let mut pending: Vec<_> = sockets.keys().copied().collect();
        pending.sort_unstable_by_key(|&(side, queue)| (side == Side::Internal, queue));
        BusyPollCheck {
            pending,
            next: Instant::now() + Self::EVERY,
        }
    }

    fn run(&mut self, director: &Director<XdpSteering>, options: &DaemonOptions) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + Self::EVERY;
        let steering = director.steering();
        self.pending.retain(|&(side, queue)| {
            let ifname = match side {
                Side::External => &options.external,
                Side::Internal => &options.internal,
            };
            let fd = steering.sockets[&(side, queue)];
            let id = socket_napi_id(fd).unwrap_or(0);
            if id != 0 {
                eprintln!("xvsd: busy polling {ifname} queue {queue} (NAPI {id})");
                return false;
            }
            if steering.queue_counters(side, queue).redirected == 0 {
                return true;
            }
            eprintln!(
                "xvsd: warning: busy polling has no effect on {ifname} queue {queue}: its socket received frames but has no NAPI id (the driver registers its XDP queue without one, as veth does); the kernel keeps receiving in softirq or NAPI threads"
            );
            false
        });
    }
}

/// Serves `GET /metrics` on `addr` with what the control thread reports.
fn start_metrics(
    addr: SocketAddr,
    control: ControlHandle<XdpSteering>,
) -> anyhow::Result<MetricsServer> {
    let source: MetricsSource = Arc::new(move || {
        // Only the copying happens on the control thread; the text is made here.
        control
            .run(METRICS_TIMEOUT, |director| {
                (director.list(), director.stats())
            })
            .map(|(list, stats)| metrics::render(&list, &stats))
    });
    MetricsServer::start(addr, source).with_context(|| format!("--metrics {addr}: cannot listen"))
}

/// SIGHUP: applies the configuration file again, or logs why the running configuration stays.
/// Brings the announcements in line with what `director` can serve now; logs changes.
fn announce<S: Steering>(director: &mut Director<S>, announcer: &mut Announcer) {
    let servable = director.servable_vips(announcer.options().min_servers);
    let (changes, errors) = announcer.update(&servable);
    director.set_announced(announcer.announced().iter().copied());
    for change in changes {
        eprintln!(
            "xvsd: VIP {} {}",
            change.vip,
            match change.announced {
                true => "announced",
                false => "withdrawn (no service of it has enough available real servers)",
            }
        );
    }
    for e in errors {
        eprintln!("xvsd: {e:#}");
    }
}

fn reload_config<S: Steering>(
    director: &mut Director<S>,
    path: Option<&std::path::Path>,
    announce: Option<&AnnounceOptions>,
) {
    let Some(path) = path else {
        eprintln!("xvsd: SIGHUP ignored: no --config file to reload");
        return;
    };
    let result = crate::config_file::load(path).and_then(|commands| {
        // The announcement settings must hold for the new configuration before it lands.
        if let Some(announce) = announce {
            announce
                .check_vips(&crate::announce::vips_of(&commands))
                .context("--announce")?;
            announce.daemon.check().context("--announce")?;
        }
        director
            .execute(Command::Replace { commands })
            .map_err(anyhow::Error::from)
    });
    match result {
        Ok(_) => eprintln!("xvsd: configuration {} reloaded", path.display()),
        Err(e) => eprintln!(
            "xvsd: reloading {} failed, the running configuration is unchanged: {e:#}",
            path.display()
        ),
    }
}

/// The addresses of interface `name` with their prefix lengths, both families (link-local
/// ones included), in the kernel's order (IPv6: the newest first within a scope).
fn ip_addresses(name: &str) -> io::Result<Vec<(IpAddr, u8)>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addrs = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: entry is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if ifname.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr of family sa_family.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in, and the netmask, when present,
                // one too.
                let (sin, mask) = unsafe {
                    (
                        &*ifa.ifa_addr.cast::<libc::sockaddr_in>(),
                        ifa.ifa_netmask.cast::<libc::sockaddr_in>().as_ref(),
                    )
                };
                let prefix = mask.map_or(32, |m| m.sin_addr.s_addr.count_ones() as u8);
                addrs.push((
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into(),
                    prefix,
                ));
            }
            libc::AF_INET6 => {
                // SAFETY: an AF_INET6 address is a sockaddr_in6, and the netmask, when
                // present, one too.
                let (sin6, mask) = unsafe {
                    (
                        &*ifa.ifa_addr.cast::<libc::sockaddr_in6>(),
                        ifa.ifa_netmask.cast::<libc::sockaddr_in6>().as_ref(),
                    )
                };
                let prefix = mask.map_or(128, |m| {
                    m.sin6_addr
                        .s6_addr
                        .iter()
                        .map(|b| b.count_ones())
                        .sum::<u32>() as u8
                });
                addrs.push((Ipv6Addr::from(sin6.sin6_addr.s6_addr).into(), prefix));
            }
            _ => {}
        }
    }
    // SAFETY: list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(addrs)
}

/// The IPv6 address the director itself sends from on an interface with `addrs`
/// ([`ip_addresses`]): Packet Too Big errors, health checks. A global one (the client must
/// route back to it), a subnet's address before a host's (/128: FullNAT local addresses and
/// the like, added beside it), and among equals the first configured (the kernel lists IPv6
/// addresses newest first). The kernel's own choice would differ: it prefers the address
/// with the longest prefix in common with the destination, which a /128 next to the real
/// servers often is.
fn own_ipv6(addrs: &[(IpAddr, u8)]) -> Option<Ipv6Addr> {
    addrs
        .iter()
        .rev()
        .filter_map(|&(addr, prefix)| match addr {
            IpAddr::V6(v6) if !v6.is_unicast_link_local() && !v6.is_loopback() => {
                Some((v6, prefix))
            }
            _ => None,
        })
        .min_by_key(|&(_, prefix)| prefix == 128)
        .map(|(v6, _)| v6)
}

fn worker_options(idle: IdleStrategy, realtime: bool) -> WorkerOptions {
    let defaults = WorkerOptions::default();
    WorkerOptions {
        spin_before_wait: match idle {
            // A realtime worker never spins: every moment it spins is taken from the kernel's
            // receive on its core, which it outranks.
            IdleStrategy::Adaptive if realtime => 0,
            IdleStrategy::Adaptive => defaults.spin_before_wait,
            IdleStrategy::BusyPoll => NEVER_WAIT,
        },
        yield_after: if realtime { REALTIME_YIELD_AFTER } else { 0 },
        ..defaults
    }
}

/// Gives a worker realtime priority `priority` (SCHED_FIFO; 0 leaves normal scheduling).
///
/// Why: with AF_XDP in copy mode the kernel's receive for a worker's queues (the NAPI poll:
/// XDP, the copy into the UMEM) runs on the worker's core, in softirq or in a NAPI thread.
/// Under a fair share, overload gives the kernel the time to receive frames that the worker
/// then has no time to forward: they die at the full RX ring after costing the most (a
/// receive livelock; forwarding fell to a third of the lossless rate). A realtime worker
/// outranks NAPI threads and ksoftirqd, so the kernel receives only while the worker has
/// nothing left to forward, and the excess is dropped at the interface's own ring, before any
/// work was spent on it. Softirq run on interrupt exit still outranks any thread: with NIC
/// interrupts on the workers' cores, threaded NAPI completes the scheme (docs/benchmarks.md).
/// A realtime worker sleeps as soon as its rings are empty (it never spins), so the kernel
/// throttles nothing; `--idle busy` is refused with it.
fn set_worker_priority<T>(thread: &std::thread::JoinHandle<T>, priority: u8) -> anyhow::Result<()> {
    use std::os::unix::thread::JoinHandleExt;
    set_thread_realtime(thread.as_pthread_t(), priority).map_err(|e| {
        anyhow::anyhow!(
            "--worker-priority {priority}: cannot make the workers SCHED_FIFO: {e} (it needs CAP_SYS_NICE and a realtime budget; --worker-priority 0 keeps normal scheduling)"
        )
    })
}

/// Makes the live thread `thread` SCHED_FIFO at `priority` (0 leaves it alone). Also used by
/// the benchmark's `xskfwd` forwarder, which must be scheduled as xvsd's workers are.
pub fn set_thread_realtime(thread: libc::pthread_t, priority: u8) -> io::Result<()> {
    if priority == 0 {
        return Ok(());
    }
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: the caller passes a live thread (not joined or detached-and-exited); `param`
    // is valid for the call.
    let rc = unsafe { libc::pthread_setschedparam(thread, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// The SCHED_FIFO priority of the internal interface's NAPI threads under `--threaded-napi`:
/// one above realtime workers, 0 (normal scheduling) otherwise.
///
/// Why: the internal interface receives the real servers' replies (SYN/ACK, FIN/ACK, data),
/// whose volume is bounded by the requests the workers forwarded, so receiving them first
/// cannot starve the workers (the receive livelock that ranks the external interface's
/// threads below them). Ranked below, replies wait while a worker handles a burst of
/// requests, and a burst of replies overflows the interface's ring (256 frames on veth with
/// XDP): that lost 0.2-0.6 % of SYN/ACKs and FIN/ACKs below the lossless rate
/// (docs/benchmarks.md). One interface serving both sides carries requests too: it stays below.
fn reply_napi_priority(options: &DaemonOptions) -> u8 {
    if options.worker_priority == 0
        || options.worker_priority >= 99
        || options.internal == options.external
    {
        0
    } else {
        options.worker_priority + 1
    }
}

/// Pins the NAPI thread of each RX queue of `ifname` to the core of the worker that owns the
/// queue (queue `q` belongs to worker `q % workers`, worker `w` runs on `cores[w % len]`),
/// and makes it SCHED_FIFO at `priority` (0: it keeps normal scheduling, below realtime
/// workers). Both vanish with the threads when the guardian turns `threaded` back off; where
/// it was already on, the guardian turns it off and on again, so the threads the operator gets
/// back have the kernel's defaults ([`crate::napi_tuning`]).
fn pin_napi_threads(
    ifname: &str,
    ifindex: u32,
    workers: usize,
    cores: &[core_affinity::CoreId],
    priority: u8,
) -> anyhow::Result<()> {
    if cores.is_empty() {
        return Ok(());
    }
    let threads = crate::netdev::rx_queue_threads(ifindex)?;
    if threads.is_empty() {
        bail!("{ifname} reports no threaded NAPI instance for its receive queues");
    }
    for (queue, tid) in threads {
        let core = cores[(queue as usize % workers) % cores.len()].id;
        // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `core` < CPU_SETSIZE (it is a CPU of this machine).
        unsafe { libc::CPU_SET(core, &mut set) };
        // SAFETY: sched_setaffinity reads a cpu_set_t of the given size.
        let rc = unsafe {
            libc::sched_setaffinity(tid as i32, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            bail!(
                "pinning NAPI thread {tid} (queue {queue}) to CPU {core}: {}",
                io::Error::last_os_error()
            );
        }
        if priority > 0 {
            let param = libc::sched_param {
                sched_priority: i32::from(priority),
            };
            // SAFETY: a plain system call on a thread id with a live parameter.
            if unsafe { libc::sched_setscheduler(tid as i32, libc::SCHED_FIFO, &param) } != 0 {
                bail!(
                    "SCHED_FIFO {priority} for NAPI thread {tid} (queue {queue}): {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
    Ok(())
}

/// How many workers: one per queue by default (at most one per core); each worker needs a
/// queue of its own on both interfaces, because a socket's rings belong to one thread.
fn plan_workers(
    requested: Option<usize>,
    ext_queues: u32,
    int_queues: u32,
    cores: usize,
    ext_name: &str,
    int_name: &str,
) -> anyhow::Result<usize> {
    let usable = ext_queues.min(int_queues) as usize;
    if usable == 0 {
        bail!("{ext_name} or {int_name} reports no receive queues");
    }
    match requested {
        Some(0) => bail!("--workers must be at least 1"),
        Some(n) if n > usable => bail!(
            "--workers {n} needs at least {n} queues on both interfaces ({ext_name} has {ext_queues}, {int_name} has {int_queues}); add queues with `ethtool -L IFACE combined {n}` or `rx {n} tx {n}`"
        ),
        Some(n) => Ok(n),
        None => Ok(usable.min(cores)),
    }
}

/// A per-start random seed (std's hasher keys come from the OS random source).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_ipv6_is_the_first_configured_subnet_address() {
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        // As the kernel lists them: newest global first, then link-local, IPv4 apart.
        let addrs = [
            (IpAddr::V4(Ipv4Addr::new(198, 19, 0, 152)), 24),
            (v6("2001:2:0:1::160"), 128),
            (v6("2001:2:0:1::153"), 64),
            (v6("2001:2:0:1::152"), 64),
            (v6("fe80::1"), 64),
        ];
        assert_eq!(own_ipv6(&addrs), Some("2001:2:0:1::152".parse().unwrap()));
        // Only host addresses: the first configured of them.
        assert_eq!(
            own_ipv6(&addrs[1..2]),
            Some("2001:2:0:1::160".parse().unwrap())
        );
        assert_eq!(own_ipv6(&[addrs[0], addrs[4]]), None, "link-local only");
    }

    #[test]
    fn replies_are_received_above_realtime_workers_and_only_then() {
        let mut options = DaemonOptions::new("ext0", "int0");
        assert_eq!(reply_napi_priority(&options), DEFAULT_WORKER_PRIORITY + 1);
        options.worker_priority = 40;
        assert_eq!(reply_napi_priority(&options), 41);
        for worker_priority in [0, 99] {
            options.worker_priority = worker_priority;
            assert_eq!(
                reply_napi_priority(&options),
                0,
                "workers at {worker_priority}"
            );
        }
        let mut one_arm = DaemonOptions::new("eth0", "eth0");
        one_arm.worker_priority = 1;
        assert_eq!(reply_napi_priority(&one_arm), 0);
    }

    #[test]
    fn worker_plan() {
        assert_eq!(plan_workers(None, 2, 2, 2, "a", "b").unwrap(), 2);
        assert_eq!(plan_workers(None, 4, 4, 2, "a", "b").unwrap(), 2);
        assert_eq!(plan_workers(None, 1, 2, 2, "a", "b").unwrap(), 1);
        assert_eq!(plan_workers(Some(1), 2, 2, 2, "a", "b").unwrap(), 1);
        let e = plan_workers(Some(2), 1, 2, 2, "ext0", "int0")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ext0 has 1"), "{e}");
        assert!(plan_workers(Some(0), 1, 1, 1, "a", "b").is_err());
    }
}
