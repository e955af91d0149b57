//! The poll-mode worker: a pinned thread that owns some queues of both interfaces.
//!
//! Each iteration ("batch"): read the clock once, pick up new snapshots (one atomic load each
//! when nothing changed), then for every port it owns: recycle completed TX frames, refill the
//! fill ring, take a batch of received frames. Each received frame is parsed once into a
//! [`Packet`]; a frame whose flow another worker owns ([`crate::conntrack`] explains ownership)
//! goes to that worker's hand-off ring with its packet; the rest, and the frames handed to us,
//! are processed in stages of up to [`MAX_BATCH`] (prefetch every packet's index bucket, then
//! every entry, then [`process_packet`] each in order, as `rte_hash_lookup_bulk` and VPP do),
//! so that the table's cache misses overlap; forwarded frames are put on the TX ring of
//! our port on the egress interface and the kernel is kicked once per port. Finally a few
//! expired connections are reclaimed, and a chunk of the connection table is copied if the
//! control thread asked for a listing ([`crate::conntrack::dump`]: one buffer and one lock per
//! listing). No lock, no allocation (every buffer is sized at start), no syscall per packet.
//!
//! With the XDP fast path ([`crate::fastpath`]), after each forwarded packet the worker puts its
//! connection on the fast path once the program may carry it and the worker has forwarded
//! `--fast-path-after` of its packets in that state, and takes it off when it may no longer (a
//! FIN, a RST, its real server gone); map writes are queued and flushed once per
//! iteration. Installed entries past their own expiry are settled from the program's last-seen
//! stamps, and after a configuration change a bounded sweep takes the connections of removed
//! real servers off the fast path. Both connection tables (IPv4 and IPv6) follow the same rules,
//! through the same generic code.
//!
//! A frame whose next hop has no MAC yet is held (up to `hold_frames`, for `hold_ms`, like the
//! kernel's ARP queue) and processed again as soon as the neighbour thread publishes a new
//! table, so the first packet to a freshly added real server is delayed, not lost.
//!
//! An idle worker sleeps in `ppoll` on its sockets and its mailbox's doorbell (an eventfd that
//! the workers which leave it hand-offs or returned frames write, once per batch, only while
//! it sleeps), for at most `idle_wait`, the pace of its housekeeping; expiry sweeps in
//! proportion to the time since its last sweep, so sleeping delays no expiry by much.
//!
//! Frames: every worker owns a fixed range of UMEM frames (its "home" range). A frame may
//! travel to another worker with a hand-off, and comes back to its home worker's return ring
//! once that worker's transmission completes or it is dropped, so no worker's fill rings starve.

use crate::capture::{side_bit, CaptureTap, TapWriter};
use crate::conntrack::dump::DEFAULT_DUMP_CHUNK;
use crate::conntrack::{owner_of, ConnDump, ConnTable, Dumper, FastState};
use crate::fastpath::{may_carry, real_configured, FastFamily, FlowWriter};
use crate::neigh::NeighbourTable;
use crate::persist::{Templates, Templates6};
use crate::process::{
    client_endpoint6, is_ipv6, one_armed_side, process6, process_packet, Env, FrameBuf, Packet,
    Side, Verdict, MAX_BATCH,
};
use crate::publish::Reader;
use crate::snapshot::Snapshot;
use crate::stats::{DropReason, WorkerStats};
use crate::xsk::{Frame, FrameMemory, Poller, Port};
use crossbeam::queue::ArrayQueue;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What other threads may send a worker.
pub struct Mailbox {
    /// Frames of flows this worker owns, received by another worker, parsed there.
    handoff: ArrayQueue<(Frame, Packet)>,
    /// Frames of this worker's home range coming back from another worker.
    returns: ArrayQueue<Frame>,
    /// Wakes this worker when it sleeps and another one left it frames.
    doorbell: Doorbell,
}

impl Mailbox {
    /// Capacities: `frames_per_worker` for returns (all of a home range can come back at once),
    /// `handoff` for hand-offs (beyond it frames are dropped and counted). Fails where the
    /// kernel gives no eventfd.
    pub fn new(frames_per_worker: usize, handoff: usize) -> io::Result<Self> {
        Ok(Mailbox {
            handoff: ArrayQueue::new(handoff.max(1)),
            returns: ArrayQueue::new(frames_per_worker.max(1)),
            doorbell: Doorbell::new()?,
        })
    }

    fn is_empty(&self) -> bool {
        self.handoff.is_empty() && self.returns.is_empty()
    }
}

/// An eventfd that a sleeping worker polls beside its sockets, rung by the workers that left
/// frames in its mailbox: hand-offs wait for no timeout, and an idle worker sleeps until
/// there is work (or housekeeping is due) instead of waking every few hundred microseconds.
/// Rung once per batch and only while its owner sleeps, so a busy director makes no system
/// call for it.
struct Doorbell {
    fd: OwnedFd,
    asleep: AtomicBool,
}

impl Doorbell {
    fn new() -> io::Result<Self> {
        // SAFETY: a plain system call; a valid descriptor is owned below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            // SAFETY: `fd` is a fresh descriptor nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            asleep: AtomicBool::new(false),
        })
    }

    /// The owner is about to sleep: from now on the others ring. The owner must look at its
    /// mailbox after this (and not sleep if it holds frames): a worker that filled it before
    /// saw no sleeper and did not ring.
    fn going_to_sleep(&self) {
        self.asleep.store(true, Ordering::SeqCst);
        // Dekker with `ring`: this store before the owner's look at the mailbox.
        fence(Ordering::SeqCst);
    }

    /// The owner is awake again; empties the eventfd if somebody rang.
    fn woke(&self) {
        if !self.asleep.swap(false, Ordering::SeqCst) {
            let mut count = 0u64;
            // SAFETY: reads 8 bytes into `count`; non-blocking, so an empty eventfd (the ring
            // came after the owner woke for another reason) returns EAGAIN at once.
            unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        }
    }

    /// Wakes the owner if it sleeps. Called after the frames were queued (and a fence).
    fn ring(&self) {
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::SeqCst) {
            let one = 1u64;
            // SAFETY: writes 8 bytes from `one` to an eventfd we own.
            unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }
}

/// A resolution request: next hop `addr` (either family) on interface `ifindex` had no MAC.
pub type ResolveRequest = (u32, IpAddr);

/// The queue of resolution requests from workers to the neighbour thread.
pub type ResolveQueue = ArrayQueue<ResolveRequest>;

/// Everything shared by the workers of one director.
#[derive(Clone)]
pub struct Shared {
    pub memory: FrameMemory,
    pub mailboxes: Arc<[Mailbox]>,
    pub frames_per_worker: usize,
    /// Seed of [`owner_of`], the same for every worker.
    pub owner_seed: u64,
    pub resolve: Arc<ArrayQueue<ResolveRequest>>,
    pub shutdown: Arc<AtomicBool>,
    /// Monotonic time origin of `now_ms`.
    pub epoch: Instant,
    /// Every worker's counters, indexed by worker id (schedulers read connection counts).
    pub stats: Arc<[Arc<WorkerStats>]>,
    /// Persistence templates of every persistent service.
    pub templates: Arc<Templates>,
    /// Persistence templates of IPv6 clients.
    pub templates6: Arc<Templates6>,
    /// Overload marks by real server id (IPVS's threshold hysteresis).
    pub overload: Arc<[AtomicBool]>,
    /// Where frames are copied while `xvsadm capture` runs.
    pub capture: Arc<CaptureTap>,
}

/// Tuning that does not change at run time.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// Most frames taken from the hand-off ring per iteration.
    pub batch: usize,
    /// Connection slots inspected for expiry per iteration.
    pub expiry_budget: usize,
    /// Iterations without work before the worker sleeps in `ppoll`; [`NEVER_WAIT`] makes it
    /// poll busily.
    pub spin_before_wait: u32,
    /// How long an idle worker sleeps when nothing wakes it (packets on its sockets, frames in
    /// its mailbox ring its doorbell): the pace of its housekeeping while idle (expiry, fast-path
    /// stamps, listings, configuration changes, frames held for a neighbour).
    pub idle_wait: Duration,
    /// Frames held while their next hop is being resolved (beyond it they are dropped).
    pub hold_frames: usize,
    /// How long a frame is held for resolution before it is dropped.
    pub hold_ms: u64,
    /// Connection slots copied per iteration while a listing is in progress.
    pub dump_chunk: usize,
    /// A worker that outranks the kernel's receive on its core (realtime) sleeps for a moment
    /// after handling this many frames without sleeping, so the receive threads get one poll
    /// each before the interfaces' rings overflow; 0 never does.
    pub yield_after: usize,
    /// Connection slots the fast-path sweep after a configuration change checks per iteration.
    pub fast_sweep_budget: usize,
    /// The ports are all on one interface that serves both sides (a one-armed director):
    /// each frame's side comes from its destination ([`crate::process::one_armed_side`]) and
    /// both sides transmit through the same ports.
    pub one_armed: bool,
    /// Capacity of the worker's IPv6 connection table (its own: an IPv6 entry takes about
    /// twice an IPv4 one's memory, all reserved at start).
    pub conns6: usize,
}

/// Longest time for expiry to sweep the whole connection table, however long its worker sleeps.
const EXPIRY_SWEEP_MS: usize = 1000;

/// [`WorkerOptions::spin_before_wait`] for a worker that never sleeps.
pub const NEVER_WAIT: u32 = u32::MAX;

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            batch: 64,
            expiry_budget: 64,
            spin_before_wait: 512,
            // Not longer: with 10 ms, CPU 1 of this VM idles deeper between packets and
            // latency under load rose (docs/benchmarks.md, *Worker idle strategy*).
            idle_wait: Duration::from_micros(200),
            hold_frames: 256,
            hold_ms: 1000,
            dump_chunk: DEFAULT_DUMP_CHUNK,
            yield_after: 0,
            fast_sweep_budget: 4096,
            one_armed: false,
            conns6: 1 << 16,
        }
    }
}

/// A worker: its inputs (snapshots and state shared with the other workers) and its core (rings,
/// buffers, connection table). Kept apart so a batch borrows the inputs while it mutates the
/// core, without touching any reference count per batch (those cache lines are shared by all
/// workers).
pub struct Worker {
    core: Core,
    config: Reader<Snapshot>,
    neighbours: Reader<NeighbourTable>,
    all_stats: Arc<[Arc<WorkerStats>]>,
    templates: Arc<Templates>,
    templates6: Arc<Templates6>,
    overload: Arc<[AtomicBool]>,
}

struct Core {
    id: usize,
    workers: usize,
    ports: Vec<Port>,
    /// Index in `ports` of the port that transmits out of each side.
    tx_external: usize,
    tx_internal: usize,
    shared: Shared,
    options: WorkerOptions,
    pool: Vec<Frame>,
    received: Vec<Frame>,
    /// This worker's end of its capture ring (`None` only if another worker took it).
    capture_writer: Option<TapWriter>,
    /// Frames of flows this worker owns, parsed, waiting for the staged processing of
    /// [`Core::process_mine`] (at most [`MAX_BATCH`]).
    mine: Vec<(Frame, Packet)>,
    completed: Vec<Frame>,
    out_external: Vec<Frame>,
    out_internal: Vec<Frame>,
    conns: ConnTable,
    /// IPv6 connections ([`process6`]).
    conns6: ConnTable<Ipv6Addr>,
    /// Answers the control thread's requests for a listing of `conns` and `conns6`.
    dumper: Dumper,
    stats: Arc<WorkerStats>,
    /// The neighbour table the held frames were last tried against.
    tried_neighbours: Arc<NeighbourTable>,
    /// Frames waiting for their next hop's MAC, oldest first (as the kernel's ARP queue).
    held: VecDeque<Held>,
    poller: Poller,
    /// Workers whose mailbox this batch left frames in: their doorbells ring at its end.
    bells: Vec<bool>,
    bells_due: bool,
    /// When expiry last swept (its budget grows with the time since).
    last_expiry_ms: u64,
    /// The XDP fast path's writer, when it is on.
    fast: Option<FlowWriter>,
    /// The configuration the fast-path entries were last checked against (its address).
    fast_config: usize,
    /// Where the fast-path sweep after a configuration change stands in `conns` and in
    /// `conns6` (`None`: no sweep).
    fast_sweep: Option<usize>,
    fast_sweep6: Option<usize>,
    /// The configuration whose FullNAT local addresses have their port pools (its address).
    local_addrs_config: usize,
}

/// A frame waiting for neighbour resolution.
struct Held {
    frame: Frame,
    side: Side,
    /// When it is dropped if the MAC is still unknown.
    deadline_ms: u64,
}

impl Worker {
    /// A worker over `ports` (at least one per side) starting with `frames` of its home range.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        workers: usize,
        ports: Vec<Port>,
        frames: Vec<Frame>,
        conn_capacity: usize,
        shared: Shared,
        options: WorkerOptions,
        stats: Arc<WorkerStats>,
        config: Reader<Snapshot>,
        neighbours: Reader<NeighbourTable>,
        fast: Option<FlowWriter>,
    ) -> Result<Self, String> {
        let find = |side| ports.iter().position(|p: &Port| p.side() == side);
        let tx_external = find(Side::External)
            .ok_or_else(|| format!("worker {id} has no queue on the external interface"))?;
        let tx_internal = match options.one_armed {
            true => tx_external,
            false => find(Side::Internal)
                .ok_or_else(|| format!("worker {id} has no queue on the internal interface"))?,
        };
        // Every buffer can hold every frame of the UMEM, so pushing never reallocates.
        let total = shared.frames_per_worker * workers;
        let mut pool = Vec::with_capacity(total);
        pool.extend(frames);
        let poller = Poller::new(&ports, Some(shared.mailboxes[id].doorbell.fd.as_raw_fd()));
        let tried_neighbours = Arc::clone(neighbours.cached());
        let mut conns = ConnTable::with_capacity(conn_capacity);
        conns.set_worker(id, workers, shared.owner_seed);
        let mut conns6 = ConnTable::<Ipv6Addr>::new(options.conns6, options.conns6 / 2);
        conns6.set_worker(id, workers, shared.owner_seed);
        let capture_writer = shared.capture.writer(id);
        Ok(Worker {
            all_stats: Arc::clone(&shared.stats),
            templates: Arc::clone(&shared.templates),
            templates6: Arc::clone(&shared.templates6),
            overload: Arc::clone(&shared.overload),
            core: Core {
                id,
                workers,
                ports,
                tx_external,
                tx_internal,
                shared,
                options,
                pool,
                received: Vec::with_capacity(total),
                capture_writer,
                mine: Vec::with_capacity(MAX_BATCH),
                completed: Vec::with_capacity(total),
                out_external: Vec::with_capacity(total),
                out_internal: Vec::with_capacity(total),
                conns,
                conns6,
                dumper: Dumper::new(Arc::new(ConnDump::new()), options.dump_chunk),
                stats,
                tried_neighbours,
                held: VecDeque::with_capacity(options.hold_frames),
                poller,
                bells: vec![false; workers],
                bells_due: false,
                last_expiry_ms: 0,
                fast,
                fast_config: 0,
                fast_sweep: None,
                fast_sweep6: None,
                local_addrs_config: 0,
            },
            config,
            neighbours,
        })
    }

    /// Runs until shutdown is requested.
    pub fn run(mut self) {
        let mut idle: u32 = 0;
        let mut since_sleep = 0;
        while !self.core.shared.shutdown.load(Ordering::Relaxed) {
            let work = self.iterate();
            if work > 0 {
                idle = 0;
                since_sleep += work;
                let yield_after = self.core.options.yield_after;
                if yield_after > 0 && since_sleep >= yield_after {
                    // The shortest sleep: a NAPI poll, once started, runs to its end (bottom
                    // halves off), so each waiting receive thread gets one.
                    std::thread::sleep(Duration::from_nanos(1));
                    since_sleep = 0;
                }
            } else {
                since_sleep = 0;
                idle = idle.saturating_add(1);
                let spin = self.core.options.spin_before_wait;
                if idle >= spin && spin != NEVER_WAIT {
                    let mailbox = &self.core.shared.mailboxes[self.core.id];
                    mailbox.doorbell.going_to_sleep();
                    if mailbox.is_empty() {
                        self.core.poller.wait(self.core.options.idle_wait);
                    }
                    mailbox.doorbell.woke();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
    }

    /// One batch over every port and mailbox; returns how many frames it handled (at least 1
    /// while a connection listing is in progress, so that the worker does not sleep; 0 when
    /// there was nothing to do).
    pub fn iterate(&mut self) -> usize {
        let now_ms = self.core.shared.epoch.elapsed().as_millis() as u64;
        let neighbours = self.neighbours.current();
        let env = Env {
            config: self.config.current(),
            neighbours,
            now_ms,
            workers: &self.all_stats,
            templates: &self.templates,
            templates6: &self.templates6,
            overload: &self.overload,
        };
        self.core.batch(&env, neighbours)
    }

    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.core.stats
    }

    /// Where the control thread asks this worker for its connections
    /// ([`crate::conntrack::dump_connections`]); take it before the worker starts running.
    pub fn conn_dump(&self) -> &Arc<ConnDump> {
        self.core.dumper.slot()
    }
}

impl Core {
    /// The body of [`Worker::iterate`]; `neighbours` is the table `env` points into.
    fn batch(&mut self, env: &Env<'_>, neighbours: &Arc<NeighbourTable>) -> usize {
        let now_ms = env.now_ms;
        self.prepare_local_addrs(env.config);
        let mut work = self.retry_held(env, neighbours);
        // The one look at the capture tap per batch: 0 while no capture runs.
        let tap = self.shared.capture.wanted();

        for i in 0..self.ports.len() {
            self.ports[i].reclaim(&mut self.completed);
            while let Some(frame) = self.completed.pop() {
                self.recycle(frame);
            }
            self.ports[i].refill(&mut self.pool);
            // Busy polling: the interface's frames reach the ring when we ask, and asking
            // every batch keeps the NAPI ours (the kernel's softirq yields it to us).
            self.ports[i].poll_napi();
            let n = self.ports[i].receive(&mut self.received);
            if n == 0 {
                continue;
            }
            work += n;
            self.stats.rx.add(n as u64);
            let side = self.ports[i].side();
            if tap & side_bit(side) != 0 {
                self.capture(side, false);
            }
            // In arrival order: popping from the end would reorder each flow's segments.
            // Taking the buffer out and putting it back keeps its capacity (no allocation).
            let mut received = std::mem::take(&mut self.received);
            for frame in received.drain(..) {
                self.dispatch(frame, side, env);
            }
            self.received = received;
            self.process_mine(env);
        }

        let mut handed_in = 0;
        for _ in 0..self.options.batch {
            let Some((frame, packet)) = self.shared.mailboxes[self.id].handoff.pop() else {
                break;
            };
            handed_in += 1;
            self.keep(frame, packet, env);
        }
        self.process_mine(env);
        if handed_in > 0 {
            work += handed_in;
            self.stats.handed_in.add(handed_in as u64);
        }
        while let Some(frame) = self.shared.mailboxes[self.id].returns.pop() {
            self.pool.push(frame);
        }

        work += self.flush(Side::Internal, tap) + self.flush(Side::External, tap);
        for port in &mut self.ports {
            // Errors other than "busy, try again" are not recoverable by retrying; the frames
            // stay on the ring and the next kick sends them.
            let _ = port.kick();
        }
        let held = self.held.len() as i64;
        if self.stats.held.get() != held {
            self.stats.held.set(held);
        }
        // Expiry keeps pace with time rather than with iterations: a worker that slept sweeps
        // more, so that the whole table is swept at least every EXPIRY_SWEEP_MS.
        let elapsed = now_ms.saturating_sub(self.last_expiry_ms) as usize;
        self.last_expiry_ms = now_ms;
        let budget =
            (self.conns.slots() * elapsed / EXPIRY_SWEEP_MS).max(self.options.expiry_budget);
        self.conns.expire(now_ms, budget, &self.stats);
        let budget6 =
            (self.conns6.slots() * elapsed / EXPIRY_SWEEP_MS).max(self.options.expiry_budget);
        self.conns6.expire(now_ms, budget6, &self.stats);
        self.ring_bells();
        if self.fast.is_some() {
            self.fast_path_upkeep(env);
        }
        // A listing in progress counts as work, so the worker does not sleep before finishing.
        let dumping = self.dumper.serve(&self.conns, &self.conns6, now_ms);
        if dumping {
            work.max(1)
        } else {
            work
        }
    }

    /// Parses a received frame and keeps it for processing here or hands it, with its parsed
    /// packet, to the worker that owns its flow.
    #[inline]
    fn dispatch(&mut self, mut frame: Frame, side: Side, env: &Env<'_>) {
        let one_armed = self.options.one_armed;
        let packet = self.shared.memory.with_bytes(&mut frame, |bytes| {
            let side = match one_armed {
                true => one_armed_side(bytes, env.config),
                false => side,
            };
            Packet::parse(bytes, side)
        });
        if self.workers > 1 {
            let (workers, seed) = (self.workers, self.shared.owner_seed);
            let owner = match packet.client_endpoint() {
                Some((addr, port)) => owner_of(addr, port, workers, seed),
                // IPv6 has no parsed `Packet` yet: its owner costs a parse of its own.
                None if packet.is_not_ipv4() => self
                    .shared
                    .memory
                    .with_bytes(&mut frame, |bytes| client_endpoint6(bytes, packet.from()))
                    .map_or(self.id, |(addr, port)| owner_of(addr, port, workers, seed)),
                None => self.id,
            };
            if owner != self.id {
                match self.shared.mailboxes[owner].handoff.push((frame, packet)) {
                    Ok(()) => {
                        self.stats.handed_off.add(1);
                        self.bells[owner] = true;
                        self.bells_due = true;
                    }
                    Err((frame, _)) => {
                        self.stats.count_drop(DropReason::HandoffFull);
                        self.recycle(frame);
                    }
                }
                return;
            }
        }
        self.keep(frame, packet, env);
    }

    /// Queues a frame this worker owns for [`Core::process_mine`], running it when a stage is
    /// full.
    #[inline]
    fn keep(&mut self, frame: Frame, packet: Packet, env: &Env<'_>) {
        self.mine.push((frame, packet));
        if self.mine.len() >= MAX_BATCH {
            self.process_mine(env);
        }
    }

    /// Processes the kept frames in stages: prefetch each one's index bucket, then each one's
    /// connection entry (the buckets having had the rest of the batch to arrive), where the
    /// table is large enough for it to pay, then process each in arrival order.
    fn process_mine(&mut self, env: &Env<'_>) {
        if self.mine.is_empty() {
            return;
        }
        // Taken out and put back: keeps its capacity (no allocation).
        let mut mine = std::mem::take(&mut self.mine);
        if self.conns.worth_prefetching() {
            for (_, packet) in mine.iter_mut() {
                packet.prefetch(&self.conns);
            }
            let mut new_flows = 0;
            for (_, packet) in mine.iter() {
                packet.prefetch_entry(&self.conns, &mut new_flows);
            }
        }
        for (frame, packet) in mine.drain(..) {
            self.handle(frame, &packet, env, None);
        }
        self.mine = mine;
    }

    /// Runs [`process_packet`] on a frame and acts on the verdict. `held_until` is the deadline
    /// of a frame coming back from the hold queue.
    #[inline]
    fn handle(
        &mut self,
        mut frame: Frame,
        packet: &Packet,
        env: &Env<'_>,
        held_until: Option<u64>,
    ) {
        let (conns, conns6, stats) = (&mut self.conns, &mut self.conns6, &*self.stats);
        let mut ipv6 = false;
        let verdict = self.shared.memory.with_buf(&mut frame, |buf| {
            if packet.is_not_ipv4() && is_ipv6(buf.bytes()) {
                ipv6 = true;
                return process6(buf, packet.from(), env, conns6, stats);
            }
            process_packet(buf, packet, env, conns, stats)
        });
        if let Some(writer) = self.fast.as_mut() {
            let stats = &*self.stats;
            match ipv6 {
                false => fast_path_after(&mut self.conns, writer, verdict, env, stats),
                true => fast_path_after(&mut self.conns6, writer, verdict, env, stats),
            }
        }
        match verdict {
            Verdict::Forward(Side::Internal) => self.out_internal.push(frame),
            Verdict::Forward(Side::External) => self.out_external.push(frame),
            Verdict::Drop(reason) => {
                self.stats.count_drop(reason);
                self.recycle(frame);
            }
            Verdict::Unresolved { ifindex, addr } => {
                // A full request queue already holds plenty of work for the resolver.
                let _ = self.shared.resolve.push((ifindex, addr));
                let deadline_ms = held_until.unwrap_or(env.now_ms + self.options.hold_ms);
                if deadline_ms > env.now_ms && self.held.len() < self.options.hold_frames {
                    self.held.push_back(Held {
                        frame,
                        side: packet.from(),
                        deadline_ms,
                    });
                } else {
                    self.stats.count_drop(DropReason::NeighbourMiss);
                    self.recycle(frame);
                }
            }
        }
    }

    /// Builds the port pool of every FullNAT local address of a new configuration now, off
    /// the path of the first connection that would take one.
    fn prepare_local_addrs(&mut self, config: &Snapshot) {
        let seen = config as *const Snapshot as usize;
        if seen == self.local_addrs_config {
            return;
        }
        self.local_addrs_config = seen;
        for service in config.services.values() {
            for &addr in service.local_addrs.iter() {
                match addr {
                    IpAddr::V4(addr) => self.conns.add_local_addr(addr),
                    IpAddr::V6(addr) => self.conns6.add_local_addr(addr),
                }
            }
        }
    }

    /// Once per iteration: settles installed entries of both tables past their own expiry
    /// from the program's last-seen stamps, sweeps a slice of each after a configuration
    /// change, and applies the queued map writes.
    fn fast_path_upkeep(&mut self, env: &Env<'_>) {
        let Some(writer) = self.fast.as_mut() else {
            return;
        };
        let config = env.config as *const Snapshot as usize;
        if config != self.fast_config {
            self.fast_config = config;
            self.fast_sweep = Some(0);
            self.fast_sweep6 = Some(0);
        }
        let (budget, stats) = (self.options.fast_sweep_budget, &*self.stats);
        fast_path_upkeep(
            &mut self.conns,
            writer,
            &mut self.fast_sweep,
            budget,
            env,
            stats,
        );
        fast_path_upkeep(
            &mut self.conns6,
            writer,
            &mut self.fast_sweep6,
            budget,
            env,
            stats,
        );
        let refused = writer.flush();
        if refused > 0 {
            self.stats.fast_refused.add(refused);
        }
    }

    /// Drops held frames whose time is up and, when the neighbour table changed, processes
    /// the others again. Returns how many frames it dealt with.
    fn retry_held(&mut self, env: &Env<'_>, neighbours: &Arc<NeighbourTable>) -> usize {
        while self
            .held
            .front()
            .is_some_and(|h| h.deadline_ms <= env.now_ms)
        {
            if let Some(h) = self.held.pop_front() {
                self.stats.count_drop(DropReason::NeighbourMiss);
                self.recycle(h.frame);
            }
        }
        if self.held.is_empty() || Arc::ptr_eq(neighbours, &self.tried_neighbours) {
            return 0;
        }
        self.tried_neighbours = Arc::clone(neighbours);
        // Each frame is tried once; those still unresolved go back to the queue.
        let n = self.held.len();
        for _ in 0..n {
            if let Some(mut h) = self.held.pop_front() {
                let packet = self
                    .shared
                    .memory
                    .with_bytes(&mut h.frame, |bytes| Packet::parse(bytes, h.side));
                self.handle(h.frame, &packet, env, Some(h.deadline_ms));
            }
        }
        n
    }

    /// Copies the frames just received on `side` (`transmitted` false) or about to be sent
    /// there into the capture tap.
    #[cold]
    fn capture(&mut self, side: Side, transmitted: bool) {
        let frames = match (transmitted, side) {
            (false, _) => &mut self.received,
            (true, Side::Internal) => &mut self.out_internal,
            (true, Side::External) => &mut self.out_external,
        };
        let Some(writer) = self.capture_writer.as_mut() else {
            return;
        };
        let (tap, memory) = (&self.shared.capture, &self.shared.memory);
        let now = crate::capture::now_ns();
        for frame in frames.iter_mut() {
            memory.with_bytes(frame, |bytes| {
                tap.copy(writer, side, transmitted, bytes, now)
            });
        }
    }

    /// Puts the frames for `side` on its TX ring; what does not fit is dropped (counted).
    /// `tap`: the capture tap's wanted sides.
    fn flush(&mut self, side: Side, tap: u32) -> usize {
        if tap & side_bit(side) != 0 {
            self.capture(side, true);
        }
        let (port, out) = match side {
            Side::Internal => (self.tx_internal, &mut self.out_internal),
            Side::External => (self.tx_external, &mut self.out_external),
        };
        if out.is_empty() {
            return 0;
        }
        let sent = self.ports[port].transmit(out);
        self.stats.tx.add(sent as u64);
        let mut unsent = std::mem::take(out);
        for frame in unsent.drain(..) {
            self.stats.count_drop(DropReason::TxFull);
            self.recycle(frame);
        }
        // Give the (now empty) buffer back so its capacity is reused.
        match side {
            Side::Internal => self.out_internal = unsent,
            Side::External => self.out_external = unsent,
        }
        sent
    }

    /// Returns a frame to its home worker's pool.
    #[inline]
    fn recycle(&mut self, frame: Frame) {
        let home = self.shared.memory.index_of(&frame) / self.shared.frames_per_worker;
        if home == self.id {
            self.pool.push(frame);
        } else if let Err(frame) = self.shared.mailboxes[home].returns.push(frame) {
            // Cannot happen (the ring holds a whole home range); keep the frame rather than
            // lose it.
            self.pool.push(frame);
        } else {
            // A sleeping worker needs its frames back to refill its fill rings.
            self.bells[home] = true;
            self.bells_due = true;
        }
    }

    /// Wakes the sleeping workers this batch left frames for.
    fn ring_bells(&mut self) {
        if !self.bells_due {
            return;
        }
        self.bells_due = false;
        // Dekker with `Doorbell::going_to_sleep`: the frames queued before the look at
        // `asleep`.
        fence(Ordering::SeqCst);
        for (worker, due) in self.bells.iter_mut().enumerate() {
            if std::mem::take(due) {
                self.shared.mailboxes[worker].doorbell.ring();
            }
        }
    }
}

/// Fast-path bookkeeping after a packet processed against `conns` (the table of its family):
/// takes the entries the table removed off the fast path, then, if the packet was forwarded,
/// puts its connection on the fast path or takes it off, as its state now allows. A packet
/// that is not one of a connection's own (an ICMP error about it) has no say:
/// [`ConnTable::take_last`] does not report its connection.
#[inline]
fn fast_path_after<A: FastFamily>(
    conns: &mut ConnTable<A>,
    writer: &mut FlowWriter,
    verdict: Verdict,
    env: &Env<'_>,
    stats: &WorkerStats,
) {
    take_off_removed(conns, writer, stats);
    let Some((conn, state)) = conns.take_last() else {
        return;
    };
    if !matches!(verdict, Verdict::Forward(_)) {
        return;
    }
    // Only the state decides removal here: a removed real server's entries are taken off
    // by the sweep after the configuration change.
    let carry = may_carry(conn);
    let waited = match *state {
        FastState::Installed if !carry => {
            writer.remove(conn);
            *state = FastState::Off;
            stats.fast_removals.add(1);
            return;
        }
        FastState::Installed => return,
        _ if !carry => {
            *state = FastState::Off;
            return;
        }
        FastState::Off => 1,
        FastState::Waiting(n) => n.saturating_add(1),
    };
    *state = if waited < writer.install_after() {
        FastState::Waiting(waited)
    } else if real_configured(conn, env.config) && writer.install(conn, env.config, env.neighbours)
    {
        stats.fast_installs.add(1);
        FastState::Installed
    } else {
        // Its real server is gone, or no egress or next hop takes it now: try again after
        // as many packets.
        FastState::Off
    };
}

/// Queues the removal of the installed entries `conns` let go since the last call.
#[inline]
fn take_off_removed<A: FastFamily>(
    conns: &mut ConnTable<A>,
    writer: &mut FlowWriter,
    stats: &WorkerStats,
) {
    while let Some(gone) = conns.next_fast_removed() {
        writer.remove(&gone);
        stats.fast_removals.add(1);
    }
}

/// [`Core::fast_path_upkeep`] of one table: settles its installed entries past their own
/// expiry, advances its sweep after a configuration change (`sweep`, by at most `budget`
/// slots), and queues the removals.
fn fast_path_upkeep<A: FastFamily>(
    conns: &mut ConnTable<A>,
    writer: &mut FlowWriter,
    sweep: &mut Option<usize>,
    budget: usize,
    env: &Env<'_>,
    stats: &WorkerStats,
) {
    while let Some((expired, conn)) = conns.next_fast_expired() {
        let seen = writer.last_seen_ms(&conn, env.now_ms);
        conns.settle_fast(expired, seen, &env.config.timeouts, env.now_ms, stats);
    }
    if let Some(cursor) = sweep.as_mut() {
        let done = conns.for_each_installed(cursor, budget, |conn, state| {
            if !real_configured(conn, env.config) {
                writer.remove(conn);
                *state = FastState::Off;
                stats.fast_removals.add(1);
            }
        });
        if done {
            *sweep = None;
        }
    }
    take_off_removed(conns, writer, stats);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `fd` becomes readable within `timeout`.
    fn readable(fd: &OwnedFd, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) == 1 }
    }

    #[test]
    fn a_doorbell_wakes_its_sleeping_owner_and_stays_silent_otherwise() {
        let bell = Arc::new(Doorbell::new().unwrap());
        // Awake: ringing makes no noise (no system call, nothing to read).
        bell.ring();
        assert!(!readable(&bell.fd, Duration::ZERO));

        bell.going_to_sleep();
        let ringer = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                bell.ring();
                bell.ring(); // a second worker: the owner is already being woken
            })
        };
        // Woken by the bell, long before a sleeping worker's timeout would end its sleep.
        assert!(readable(&bell.fd, Duration::from_secs(30)));
        bell.woke();
        ringer.join().unwrap();
        assert!(!readable(&bell.fd, Duration::ZERO), "woke() empties it");

        // Asleep and woken by something else: nothing was written, nothing to read.
        bell.going_to_sleep();
        bell.woke();
        assert!(!bell.asleep.load(Ordering::SeqCst));
        bell.ring();
        assert!(!readable(&bell.fd, Duration::ZERO));
    }
}
