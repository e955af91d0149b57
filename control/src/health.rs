//! Health checks of real servers: what keepalived's TCP_CHECK and HTTP_GET give LVS, built in.
//!
//! This module owns the checks and nothing else:
//! - [`validate`]: which [`CheckSpec`]s the checker can run.
//! - [`Tracker`]: one real server's rise/fall state machine, fed with probe results.
//! - [`probe`]: one TCP or HTTP check, bounded by the spec's `timeout_ms`.
//! - [`Checker`]: the threads that probe a set of [`Target`]s on schedule and report every
//!   [`CheckResult`] on a channel. It knows nothing of the Director: the caller feeds the
//!   results to its trackers and quiesces the servers that go down.
//!
//! # Scheduling
//! No thread per target. One scheduler thread keeps every target in a deadline queue (a
//! min-heap on the time of its next probe) and hands due probes to a small fixed pool of probe
//! threads ([`PROBE_THREADS`]); the results come back through the scheduler, which forwards
//! them. A target has at most one probe in flight: its next probe is queued when the result
//! comes back, one interval after the previous probe started (at once if that is past). A new
//! target is probed at once; its second probe comes at a random point of the second half of
//! the following interval, so that targets added together (at start, after a reload) spread
//! over the interval instead of probing in lockstep. [`Checker::set_targets`] only posts the new
//! set to the scheduler; targets whose service, real server and spec are unchanged keep their
//! schedule. When every probe thread is busy (servers that do not answer, long timeouts), due
//! probes wait in the queue, oldest first: checks come late rather than never. The pool gets
//! through about `PROBE_THREADS / timeout` silent servers per second.
//!
//! Probes use non-blocking sockets and wait with `poll` in slices of at most 50 ms, watching a
//! stop flag, so that dropping the [`Checker`] is prompt whatever the timeouts.
//!
//! # Source address
//! Probes connect from the director's own address on the real servers' side (the
//! [`ProbeSource`] of [`Checker::start`], one per family), as a keepalived director's checks
//! do. That address is on the real
//! servers' link and is their default gateway (LVS-NAT needs them to route through the
//! director), so the answers come straight back to it; they are addressed to the director
//! itself, not to a client, and the XDP program passes such frames to the kernel, where the
//! probe's socket lives, instead of un-NATing them. Binding explicitly keeps the kernel from
//! picking another of its addresses (the VIP side's) whose replies would not come back this
//! way; for IPv6, where the kernel prefers the address with the longest prefix in common with
//! the destination, it would pick a FullNAT local address added as a /128 next to the real
//! servers. The bind uses `IP_BIND_ADDRESS_NO_PORT`, so the local port is picked per 4-tuple at
//! connect time and frequent probes (and their TIME_WAITs) cannot exhaust the ports of one
//! address.

use crate::protocol::{CheckKind, CheckSpec, HealthInfo, HealthState, RealKey, ServiceKey};
use crossbeam::channel::{self, Receiver, Sender, TrySendError};
use socket2::{Domain, Protocol, Socket, Type};
use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Shortest `interval_ms` accepted.
pub const MIN_INTERVAL_MS: u32 = 100;
/// Longest `interval_ms` accepted (an hour).
pub const MAX_INTERVAL_MS: u32 = 3_600_000;
/// Shortest `timeout_ms` accepted (the longest is `interval_ms`).
pub const MIN_TIMEOUT_MS: u32 = 100;
/// Largest `rise` and `fall`.
pub const MAX_RISE_FALL: u32 = 100;
/// Longest HTTP `path`, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Probe threads of a [`Checker`] started with [`Checker::start`].
pub const PROBE_THREADS: usize = 8;

/// The most of an HTTP answer read to find its status line.
const MAX_STATUS_LINE: usize = 4096;
/// Longest wait between two looks at the stop flag.
const STOP_SLICE: Duration = Duration::from_millis(50);

/// Rejects a spec the checker cannot run, with a message naming the field.
pub fn validate(spec: &CheckSpec) -> Result<(), String> {
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&spec.interval_ms) {
        return Err(format!(
            "interval_ms {} out of range {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}",
            spec.interval_ms
        ));
    }
    if !(MIN_TIMEOUT_MS..=spec.interval_ms).contains(&spec.timeout_ms) {
        return Err(format!(
            "timeout_ms {} out of range {MIN_TIMEOUT_MS}..={} (at most interval_ms)",
            spec.timeout_ms, spec.interval_ms
        ));
    }
    for (name, value) in [("rise", spec.rise), ("fall", spec.fall)] {
        if !(1..=MAX_RISE_FALL).contains(&value) {
            return Err(format!("{name} {value} out of range 1..={MAX_RISE_FALL}"));
        }
    }
    if spec.port == Some(0) {
        return Err("port 0 is not a port to check".into());
    }
    let http = spec.kind == CheckKind::Http;
    if let Some(path) = &spec.path {
        if !http {
            return Err("path is only for http checks".into());
        }
        if !path.starts_with('/') {
            return Err("path must start with '/'".into());
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(format!("path longer than {MAX_PATH_BYTES} bytes"));
        }
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("path must be printable ASCII without spaces".into());
        }
    }
    if let Some(status) = spec.expect_status {
        if !http {
            return Err("expect_status is only for http checks".into());
        }
        if !(100..=599).contains(&status) {
            return Err(format!("expect_status {status} out of range 100..=599"));
        }
    }
    Ok(())
}

/// One real server's rise/fall state machine.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: HealthState,
    /// Consecutive results equal to `last_ok`.
    streak: u32,
    last_ok: Option<bool>,
    passed: u64,
    failed: u64,
    last_error: Option<String>,
    /// The last flip, or creation.
    since: Instant,
}

impl Tracker {
    /// Starts Up (a new server is trusted until it fails, as keepalived does), streak 0.
    pub fn new(now: Instant) -> Self {
        Tracker {
            state: HealthState::Up,
            streak: 0,
            last_ok: None,
            passed: 0,
            failed: 0,
            last_error: None,
            since: now,
        }
    }

    /// Records one probe result; returns `Some(new_state)` when the state flips: Up -> Down
    /// after `fall` consecutive failures, Down -> Up after `rise` consecutive successes.
    /// `error` (why the probe failed) is kept as `last_error`; successes leave it.
    pub fn record(
        &mut self,
        spec: &CheckSpec,
        ok: bool,
        error: Option<String>,
        now: Instant,
    ) -> Option<HealthState> {
        self.streak = if self.last_ok == Some(ok) {
            self.streak.saturating_add(1)
        } else {
            1
        };
        self.last_ok = Some(ok);
        let flip = if ok {
            self.passed += 1;
            (self.state == HealthState::Down && self.streak >= spec.rise).then_some(HealthState::Up)
        } else {
            self.failed += 1;
            self.last_error = Some(error.unwrap_or_else(|| "check failed".into()));
            (self.state == HealthState::Up && self.streak >= spec.fall).then_some(HealthState::Down)
        };
        if let Some(state) = flip {
            self.state = state;
            self.since = now;
        }
        flip
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    /// The protocol's view; `since_secs` is the time since the last flip (or creation).
    pub fn info(&self, now: Instant) -> HealthInfo {
        HealthInfo {
            state: self.state,
            streak: self.streak,
            checks_passed: self.passed,
            checks_failed: self.failed,
            last_error: self.last_error.clone(),
            since_secs: now.saturating_duration_since(self.since).as_secs(),
        }
    }
}

/// One real server of one service to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub service: ServiceKey,
    pub real: RealKey,
    pub spec: CheckSpec,
}

impl Target {
    /// Where the probe connects: the real server, on the spec's port or else its own.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.real.addr, self.spec.port.unwrap_or(self.real.port))
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub service: ServiceKey,
    pub real: RealKey,
    pub ok: bool,
    /// Why it failed (`None` when `ok`).
    pub error: Option<String>,
    /// When the probe finished.
    pub at: Instant,
}

/// The addresses probes leave from, one per family (module doc, "Source address"); a family
/// without one leaves from the address the kernel picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSource {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl ProbeSource {
    /// No address: the kernel picks (unit tests, which probe loopback).
    pub const KERNEL: ProbeSource = ProbeSource { v4: None, v6: None };

    /// Whether probes may leave from `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4 == Some(a),
            IpAddr::V6(a) => self.v6 == Some(a),
        }
    }

    /// The address to bind a probe of `target` to (port 0), if its family has one.
    fn for_target(&self, target: SocketAddr) -> Option<SocketAddr> {
        let addr = match target {
            SocketAddr::V4(_) => IpAddr::from(self.v4?),
            SocketAddr::V6(_) => IpAddr::from(self.v6?),
        };
        Some(SocketAddr::new(addr, 0))
    }
}

/// Runs one check of `spec` against `addr`, connecting from `source`'s address of its family
/// (or the kernel's pick); returns why it failed.
/// The whole probe (connect, request, answer) takes at most `timeout_ms`.
pub fn probe(spec: &CheckSpec, addr: SocketAddr, source: ProbeSource) -> Result<(), String> {
    probe_until(spec, addr, source, &AtomicBool::new(false))
}

/// Why a probe failed, before it is worded.
#[derive(Debug)]
enum Fail {
    Timeout,
    Stopped,
    Io(&'static str, io::Error),
    Closed,
    Malformed,
    Status(u16, Option<u16>),
}

impl Fail {
    fn describe(&self, timeout_ms: u32) -> String {
        match self {
            Fail::Timeout => format!("timeout after {timeout_ms} ms"),
            Fail::Stopped => "checker stopped".into(),
            Fail::Io(what, e) => format!("{what}: {}", OsError(e)),
            Fail::Closed => "connection closed before the HTTP status line".into(),
            Fail::Malformed => "malformed HTTP status line".into(),
            Fail::Status(got, None) => format!("HTTP status {got}, expected 2xx"),
            Fail::Status(got, Some(want)) => format!("HTTP status {got}, expected {want}"),
        }
    }
}

/// An `io::Error` without std's " (os error N)" suffix: "Connection refused".
struct OsError<'a>(&'a io::Error);

impl fmt::Display for OsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.write_str(text.find(" (os error ").map_or(&text[..], |i| &text[..i]))
    }
}

fn probe_until(
    spec: &CheckSpec,
    addr: SocketAddr,
    source: ProbeSource,
    stop: &AtomicBool,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_millis(u64::from(spec.timeout_ms.max(1)));
    let run = || -> Result<(), Fail> {
        let stream = connect(addr, source, deadline, stop)?;
        match spec.kind {
            CheckKind::Tcp => Ok(()),
            CheckKind::Http => http(stream, spec, addr, deadline, stop),
        }
    };
    run().map_err(|fail| fail.describe(spec.timeout_ms))
}

fn connect(
    addr: SocketAddr,
    source: ProbeSource,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<TcpStream, Fail> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| Fail::Io("socket", e))?;
    if let Some(local) = source.for_target(addr) {
        bind_address_no_port(&sock);
        sock.bind(&local.into()).map_err(|e| Fail::Io("bind", e))?;
    }
    sock.set_nonblocking(true)
        .map_err(|e| Fail::Io("socket", e))?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            wait(sock.as_raw_fd(), libc::POLLOUT, deadline, stop)?;
            if let Some(e) = sock.take_error().map_err(|e| Fail::Io("connect", e))? {
                return Err(Fail::Io("connect", e));
            }
        }
        Err(e) => return Err(Fail::Io("connect", e)),
    }
    Ok(sock.into())
}

/// Lets the kernel pick the local port at connect time, per 4-tuple, rather than at bind
/// time, per address (Linux 4.2). Without it (older kernels) the bind still works.
fn bind_address_no_port(sock: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: the descriptor is the open socket `sock` owns; optval points at a c_int that
    // lives across the call and optlen is its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Waits until `fd` is ready for `events` (or has an error, which the next operation
/// reports), the deadline passes or the checker stops.
fn wait(
    fd: RawFd,
    events: libc::c_short,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<(), Fail> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Fail::Stopped);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::Timeout);
        }
        // Rounded up: a 0 ms poll would spin until the deadline.
        let ms = left.min(STOP_SLICE).as_micros().div_ceil(1000) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd, exclusively borrowed for the call (nfds = 1);
        // poll only writes its `revents`.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return Ok(());
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(Fail::Io("poll", e));
            }
        }
    }
}

fn http(
    mut stream: TcpStream,
    spec: &CheckSpec,
    addr: SocketAddr,
    deadline: Instant,
    stop: &AtomicBool,
) -> Result<(), Fail> {
    let fd = stream.as_raw_fd();
    // RFC 9110 7.2: the port goes into Host unless it is the scheme's default; an IPv6
    // address in brackets (RFC 3986 3.2.2), with a port or without.
    let host = match addr {
        SocketAddr::V4(a) if a.port() == 80 => a.ip().to_string(),
        SocketAddr::V6(a) if a.port() == 80 => format!("[{}]", a.ip()),
        _ => addr.to_string(),
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: xvs-health/{}\r\nConnection: close\r\n\r\n",
        spec.path.as_deref().unwrap_or("/"),
        env!("CARGO_PKG_VERSION"),
    );
    let mut sent = 0;
    while sent < request.len() {
        match stream.write(&request.as_bytes()[sent..]) {
            Ok(0) => return Err(Fail::Closed),
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(fd, libc::POLLOUT, deadline, stop)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Fail::Io("send", e)),
        }
    }
    let mut buf = [0u8; MAX_STATUS_LINE];
    let mut len = 0;
    let line_end = loop {
        if let Some(end) = buf[..len].iter().position(|&b| b == b'\n') {
            break end;
        }
        if len == buf.len() {
            return Err(Fail::Malformed);
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) if len == 0 => return Err(Fail::Closed),
            // A status line the server closed without ending.
            Ok(0) => break len,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait(fd, libc::POLLIN, deadline, stop)?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Fail::Io("read", e)),
        }
    };
    let status = parse_status_line(&buf[..line_end]).ok_or(Fail::Malformed)?;
    let good = match spec.expect_status {
        None => (200..300).contains(&status),
        Some(want) => status == want,
    };
    if good {
        Ok(())
    } else {
        Err(Fail::Status(status, spec.expect_status))
    }
}

/// The status code of `HTTP/x.y NNN [reason]` (the line without its `\n`).
fn parse_status_line(line: &[u8]) -> Option<u16> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let version = &rest[..space];
    if version.is_empty() || !version.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let rest = &rest[space + 1..];
    let code = rest.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    Some(
        code.iter()
            .fold(0, |acc, &d| acc * 10 + u16::from(d - b'0')),
    )
}

type Key = (ServiceKey, RealKey);

/// A probe handed to a probe thread.
struct Job {
    key: Key,
    generation: u64,
    spec: CheckSpec,
    addr: SocketAddr,
}

/// A probe thread's answer.
struct Done {
    key: Key,
    generation: u64,
    started: Instant,
    outcome: Result<(), String>,
    at: Instant,
}

struct Entry {
    target: Target,
    /// Distinguishes this target from an earlier one with the same key (and another spec)
    /// whose probe may still be in flight.
    generation: u64,
    /// The sequence number of this entry's live heap item; older items are stale.
    queued: Option<u64>,
    /// No result yet: the next probe gets the spreading jitter.
    first: bool,
}

/// The scheduler thread's state: which targets exist, when each is due, which are in
/// flight. Pure bookkeeping, no I/O.
struct Schedule {
    entries: HashMap<Key, Entry>,
    /// Probes in flight, by key, with the generation they were started for.
    in_flight: HashMap<Key, u64>,
    /// Min-heap of (due, sequence, key); items whose sequence is not their entry's `queued`
    /// are stale and skipped (lazy deletion).
    heap: BinaryHeap<Reverse<(Instant, u64, Key)>>,
    seq: u64,
    generation: u64,
    random: RandomState,
}

impl Schedule {
    fn new() -> Self {
        Schedule {
            entries: HashMap::new(),
            in_flight: HashMap::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            generation: 0,
            random: RandomState::new(),
        }
    }

    fn push(
        heap: &mut BinaryHeap<Reverse<(Instant, u64, Key)>>,
        seq: &mut u64,
        entry: &mut Entry,
        due: Instant,
    ) {
        *seq += 1;
        entry.queued = Some(*seq);
        heap.push(Reverse((
            due,
            *seq,
            (entry.target.service, entry.target.real),
        )));
    }

    /// Replaces the targets (the first of duplicates wins). Unchanged ones keep their
    /// schedule; new and changed ones are due at once, or when their key's probe in flight
    /// comes back.
    fn set_targets(&mut self, targets: Vec<Target>, now: Instant) {
        let mut next = HashMap::with_capacity(targets.len());
        for target in targets {
            let key = (target.service, target.real);
            if next.contains_key(&key) {
                continue;
            }
            let entry = match self.entries.remove(&key) {
                Some(old) if old.target == target => old,
                _ => {
                    self.generation += 1;
                    let mut entry = Entry {
                        target,
                        generation: self.generation,
                        queued: None,
                        first: true,
                    };
                    if !self.in_flight.contains_key(&key) {
                        Self::push(&mut self.heap, &mut self.seq, &mut entry, now);
                    }
                    entry
                }
            };
            next.insert(key, entry);
        }
        self.entries = next;
        if self.heap.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, seq, key))| {
                entries.get(key).is_some_and(|e| e.queued == Some(*seq))
            });
        }
    }

    /// When the earliest queued probe is due.
    fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((due, seq, key))) = self.heap.peek() {
            if self
                .entries
                .get(key)
                .is_some_and(|e| e.queued == Some(*seq))
            {
                return Some(*due);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes the earliest probe due by `now`, marking it in flight.
    fn pop_due(&mut self, now: Instant) -> Option<Job> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        let Reverse((_, _, key)) = self.heap.pop()?;
        let entry = self.entries.get_mut(&key)?;
        entry.queued = None;
        self.in_flight.insert(key, entry.generation);
        Some(Job {
            key,
            generation: entry.generation,
            spec: entry.target.spec.clone(),
            addr: entry.target.addr(),
        })
    }

    /// Takes a probe's answer back: queues the key's next probe and returns the result to
    /// report, or `None` when the target was removed or replaced meanwhile.
    fn finish(&mut self, done: Done) -> Option<CheckResult> {
        self.in_flight.remove(&done.key);
        let entry = self.entries.get_mut(&done.key)?;
        if entry.generation != done.generation {
            // Replaced while in flight: the new spec's first probe, now.
            Self::push(&mut self.heap, &mut self.seq, entry, done.at);
            return None;
        }
        let interval = Duration::from_millis(u64::from(
            entry.target.spec.interval_ms.max(MIN_INTERVAL_MS),
        ));
        let wait = if entry.first {
            entry.first = false;
            // Uniform in (interval / 2, interval]: spreads targets that started together.
            let mut h = self.random.build_hasher();
            h.write_u64(self.seq);
            let half = interval / 2;
            let nanos = half.as_nanos() as u64;
            half + Duration::from_nanos(h.finish() % nanos.max(1) + 1)
        } else {
            interval
        };
        Self::push(
            &mut self.heap,
            &mut self.seq,
            entry,
            (done.started + wait).max(done.at),
        );
        let (ok, error) = match done.outcome {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        Some(CheckResult {
            service: done.key.0,
            real: done.key.1,
            ok,
            error,
            at: done.at,
        })
    }
}

/// Probes targets on schedule from a scheduler thread and a pool of probe threads (see the
/// module doc). Dropping it stops and joins them all, promptly (within about 50 ms).
pub struct Checker {
    control: Option<Sender<Vec<Target>>>,
    stop: Arc<AtomicBool>,
    scheduler: Option<JoinHandle<()>>,
    probers: Vec<JoinHandle<()>>,
}

impl Checker {
    /// Starts the checker threads ([`PROBE_THREADS`] probe threads). Probes connect from
    /// `source`'s address of their family when it has one (bound to it, port 0, before
    /// connecting).
    ///
    /// Results go to `results` with `try_send`: on a bounded channel that is full they are
    /// dropped (the next probe reports again), so use an unbounded one or one with room.
    pub fn start(results: Sender<CheckResult>, source: ProbeSource) -> io::Result<Checker> {
        Self::start_with_threads(results, source, PROBE_THREADS)
    }

    /// [`Checker::start`] with `threads` probe threads (at least 1).
    pub fn start_with_threads(
        results: Sender<CheckResult>,
        source: ProbeSource,
        threads: usize,
    ) -> io::Result<Checker> {
        let threads = threads.max(1);
        let (control, control_rx) = channel::unbounded();
        let (job_tx, job_rx) = channel::unbounded::<Job>();
        let (done_tx, done_rx) = channel::unbounded::<Done>();
        let mut checker = Checker {
            control: Some(control),
            stop: Arc::new(AtomicBool::new(false)),
            scheduler: None,
            probers: Vec::with_capacity(threads),
        };
        // The scheduler first: it owns the job sender, so if a probe thread fails to start,
        // dropping the checker still disconnects the ones that did.
        checker.scheduler = Some(thread::Builder::new().name("xvs-health".into()).spawn(
            move || {
                crate::privileges::thread_start();
                scheduler(control_rx, job_tx, done_rx, results, threads)
            },
        )?);
        for i in 0..threads {
            let (jobs, done, stop) = (job_rx.clone(), done_tx.clone(), checker.stop.clone());
            checker.probers.push(
                thread::Builder::new()
                    .name(format!("xvs-probe-{i}"))
                    .spawn(move || {
                        crate::privileges::thread_start();
                        prober(jobs, done, source, &stop)
                    })?,
            );
        }
        Ok(checker)
    }

    /// Replaces the set of targets: unchanged targets (same service, real server and spec)
    /// keep their schedule, new ones are probed at once, removed ones stop (a result already
    /// in flight for a removed target is dropped). Never blocks: the set is posted to the
    /// scheduler thread, which applies the latest one. Specs should have passed
    /// [`validate`].
    pub fn set_targets(&self, targets: Vec<Target>) {
        if let Some(control) = &self.control {
            // Fails only if the scheduler is gone (it panicked): nothing left to tell.
            let _ = control.send(targets);
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Disconnecting the control channel ends the scheduler, which drops the job sender,
        // which ends the probe threads once their probe (cut short by `stop`) returns.
        self.control = None;
        if let Some(scheduler) = self.scheduler.take() {
            let _ = scheduler.join();
        }
        for prober in self.probers.drain(..) {
            let _ = prober.join();
        }
    }
}

fn scheduler(
    control: Receiver<Vec<Target>>,
    jobs: Sender<Job>,
    done: Receiver<Done>,
    results: Sender<CheckResult>,
    threads: usize,
) {
    let mut schedule = Schedule::new();
    let mut busy = 0;
    loop {
        let now = Instant::now();
        while busy < threads {
            let Some(job) = schedule.pop_due(now) else {
                break;
            };
            if jobs.send(job).is_err() {
                return;
            }
            busy += 1;
        }
        // With every thread busy only an answer (or new targets) can start the next probe.
        let timer = match schedule.next_due() {
            Some(due) if busy < threads => channel::after(due.saturating_duration_since(now)),
            _ => channel::never(),
        };
        crossbeam::select! {
            recv(control) -> targets => {
                let Ok(mut targets) = targets else { return };
                // Only the latest of several queued sets matters.
                while let Ok(newer) = control.try_recv() {
                    targets = newer;
                }
                schedule.set_targets(targets, Instant::now());
            }
            recv(done) -> answer => {
                let Ok(answer) = answer else { return };
                busy -= 1;
                if let Some(result) = schedule.finish(answer) {
                    match results.try_send(result) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        // Nobody listens any more; keep going until dropped.
                        Err(TrySendError::Disconnected(_)) => {}
                    }
                }
            }
            recv(timer) -> _ => {}
        }
    }
}

fn prober(jobs: Receiver<Job>, done: Sender<Done>, source: ProbeSource, stop: &AtomicBool) {
    for job in jobs {
        let started = Instant::now();
        let outcome = probe_until(&job.spec, job.addr, source, stop);
        let answer = Done {
            key: job.key,
            generation: job.generation,
            started,
            outcome,
            at: Instant::now(),
        };
        if done.send(answer).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol as L4;
    use std::net::TcpListener;

    /// Probes of loopback servers bound to loopback, as the daemon binds them to its DIPs.
    const LOOPBACK: ProbeSource = ProbeSource {
        v4: Some(Ipv4Addr::LOCALHOST),
        v6: Some(Ipv6Addr::LOCALHOST),
    };

    fn http_spec() -> CheckSpec {
        CheckSpec::new(CheckKind::Http)
    }

    #[test]
    fn validate_table() {
        let tcp = CheckSpec::new(CheckKind::Tcp);
        let good = [
            tcp.clone(),
            http_spec(),
            CheckSpec {
                interval_ms: 100,
                timeout_ms: 100,
                rise: 1,
                fall: 100,
                port: Some(8080),
                ..tcp.clone()
            },
            CheckSpec {
                interval_ms: 3_600_000,
                timeout_ms: 3_600_000,
                path: Some("/healthz?full=1&x=%20".into()),
                expect_status: Some(599),
                ..http_spec()
            },
            CheckSpec {
                path: Some(format!("/{}", "a".repeat(1023))),
                expect_status: Some(100),
                ..http_spec()
            },
        ];
        for spec in &good {
            assert_eq!(validate(spec), Ok(()), "{spec:?}");
        }
        let bad: [(CheckSpec, &str); 15] = [
            (
                CheckSpec {
                    interval_ms: 99,
                    timeout_ms: 99,
                    ..tcp.clone()
                },
                "interval_ms",
            ),
            (
                CheckSpec {
                    interval_ms: 3_600_001,
                    ..tcp.clone()
                },
                "interval_ms",
            ),
            (
                CheckSpec {
                    timeout_ms: 99,
                    ..tcp.clone()
                },
                "timeout_ms",
            ),
            (
                CheckSpec {
                    timeout_ms: 2001,
                    ..tcp.clone()
                },
                "timeout_ms",
            ),
            (
                CheckSpec {
                    rise: 0,
                    ..tcp.clone()
                },
                "rise",
            ),
            (
                CheckSpec {
                    rise: 101,
                    ..tcp.clone()
                },
                "rise",
            ),
            (
                CheckSpec {
                    fall: 0,
                    ..tcp.clone()
                },
                "fall",
            ),
            (
                CheckSpec {
                    port: Some(0),
                    ..tcp.clone()
                },
                "port",
            ),
            (
                CheckSpec {
                    path: Some("/".into()),
                    ..tcp.clone()
                },
                "path",
            ),
            (
                CheckSpec {
                    path: Some("health".into()),
                    ..http_spec()
                },
                "path",
            ),
            (
                CheckSpec {
                    path: Some("/a b".into()),
                    ..http_spec()
                },
                "path",
            ),
            (
                CheckSpec {
                    path: Some("/\u{e9}".into()),
                    ..http_spec()
                },
                "path",
            ),
            (
                CheckSpec {
                    path: Some(format!("/{}", "a".repeat(1024))),
                    ..http_spec()
                },
                "path",
            ),
            (
                CheckSpec {
                    expect_status: Some(200),
                    ..tcp.clone()
                },
                "expect_status",
            ),
            (
                CheckSpec {
                    expect_status: Some(600),
                    ..http_spec()
                },
                "expect_status",
            ),
        ];
        for (spec, field) in &bad {
            let err = validate(spec).expect_err(field);
            assert!(err.starts_with(field), "{err:?} should name {field}");
        }
        assert!(validate(&CheckSpec {
            expect_status: Some(99),
            ..http_spec()
        })
        .is_err());
        assert!(validate(&CheckSpec {
            path: Some("/a\r\nX: y".into()),
            ..http_spec()
        })
        .is_err());
    }

    #[test]
    fn tracker_falls_and_rises_exactly() {
        let spec = CheckSpec {
            rise: 2,
            fall: 3,
            ..CheckSpec::new(CheckKind::Tcp)
        };
        let t0 = Instant::now();
        let mut t = Tracker::new(t0);
        assert_eq!(t.state(), HealthState::Up);
        assert_eq!(t.info(t0).streak, 0);
        let fail = |t: &mut Tracker, at: Instant| {
            t.record(&spec, false, Some("connect: Connection refused".into()), at)
        };
        // Two failures, then a success resets the failure streak.
        assert_eq!(fail(&mut t, t0), None);
        assert_eq!(fail(&mut t, t0), None);
        assert_eq!(t.record(&spec, true, None, t0), None);
        assert_eq!(t.info(t0).streak, 1);
        // Down exactly on the third consecutive failure, once.
        assert_eq!(fail(&mut t, t0), None);
        assert_eq!(fail(&mut t, t0), None);
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(fail(&mut t, t1), Some(HealthState::Down));
        assert_eq!(fail(&mut t, t1), None);
        assert_eq!(t.state(), HealthState::Down);
        let info = t.info(t1 + Duration::from_millis(2500));
        assert_eq!(info.state, HealthState::Down);
        assert_eq!(info.streak, 4);
        assert_eq!((info.checks_passed, info.checks_failed), (1, 6));
        assert_eq!(
            info.last_error.as_deref(),
            Some("connect: Connection refused")
        );
        assert_eq!(info.since_secs, 2);
        // Up exactly on the second consecutive success; a failure in between starts over.
        assert_eq!(t.record(&spec, true, None, t1), None);
        assert_eq!(fail(&mut t, t1), None);
        assert_eq!(t.record(&spec, true, None, t1), None);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(t.record(&spec, true, None, t2), Some(HealthState::Up));
        assert_eq!(t.record(&spec, true, None, t2), None);
        let info = t.info(t2);
        assert_eq!(
            (info.state, info.streak, info.since_secs),
            (HealthState::Up, 3, 0)
        );
        assert_eq!((info.checks_passed, info.checks_failed), (5, 7));
        // The last error stays after successes; a failure without a reason gets a generic one.
        assert_eq!(
            info.last_error.as_deref(),
            Some("connect: Connection refused")
        );
        t.record(&spec, false, None, t2);
        assert_eq!(t.info(t2).last_error.as_deref(), Some("check failed"));
        // fall 1: the first failure takes it down.
        let one = CheckSpec {
            fall: 1,
            rise: 1,
            ..spec.clone()
        };
        let mut t = Tracker::new(t0);
        assert_eq!(t.record(&one, false, None, t0), Some(HealthState::Down));
        assert_eq!(t.record(&one, true, None, t0), Some(HealthState::Up));
    }

    /// An address nothing listens on: a port just released.
    fn closed_port() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    fn listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// Accepts and closes connections forever (the thread is left behind).
    fn accept_forever(l: TcpListener) {
        thread::spawn(move || {
            for s in l.incoming() {
                drop(s);
            }
        });
    }

    #[test]
    fn tcp_probe_ok_and_refused() {
        let spec = CheckSpec::new(CheckKind::Tcp);
        let (l, addr) = listener();
        assert_eq!(probe(&spec, addr, ProbeSource::KERNEL), Ok(()));
        assert_eq!(probe(&spec, addr, LOOPBACK), Ok(()));
        let (_peer, from) = l.accept().unwrap();
        assert_eq!(from.ip(), std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            probe(&spec, closed_port(), ProbeSource::KERNEL),
            Err("connect: Connection refused".into())
        );
    }

    /// Serves one connection: reads the request head, answers `answer`, closes; hands the
    /// request back.
    fn serve_once(answer: &'static [u8]) -> (SocketAddr, thread::JoinHandle<String>) {
        let (l, addr) = listener();
        (addr, serve_once_on(l, answer))
    }

    /// [`serve_once`] on a listener of the caller's.
    fn serve_once_on(l: TcpListener, answer: &'static [u8]) -> thread::JoinHandle<String> {
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            String::from_utf8(req).unwrap()
        })
    }

    /// An IPv6 real server is checked over IPv6 from the IPv6 source (the IPv4 one is not used
    /// for it; a source of the wrong family would fail the bind), with its address in
    /// brackets in Host. Skipped where the machine has no IPv6 loopback.
    #[test]
    fn ipv6_probes() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            eprintln!("ipv6_probes: no IPv6 loopback here, skipped");
            return;
        };
        let addr = l.local_addr().unwrap();
        let h = serve_once_on(l, b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(probe(&http_spec(), addr, LOOPBACK), Ok(()));
        let req = h.join().unwrap();
        assert!(
            req.contains(&format!("\r\nHost: [::1]:{}\r\n", addr.port())),
            "{req}"
        );
    }

    #[test]
    fn http_probe_answers() {
        let spec = CheckSpec {
            path: Some("/healthz".into()),
            ..http_spec()
        };
        let (addr, h) = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        assert_eq!(probe(&spec, addr, LOOPBACK), Ok(()));
        let req = h.join().unwrap();
        assert_eq!(
            req,
            format!(
                "GET /healthz HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: xvs-health/{}\r\nConnection: close\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
        );

        let (addr, _h) = serve_once(b"HTTP/1.0 503 Service Unavailable\r\n\r\n");
        assert_eq!(
            probe(&http_spec(), addr, ProbeSource::KERNEL),
            Err("HTTP status 503, expected 2xx".into())
        );
        let (addr, _h) = serve_once(b"HTTP/1.0 204\r\n\r\n");
        assert_eq!(probe(&http_spec(), addr, ProbeSource::KERNEL), Ok(()));
        let expect = CheckSpec {
            expect_status: Some(301),
            ..http_spec()
        };
        let (addr, _h) = serve_once(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(
            probe(&expect, addr, ProbeSource::KERNEL),
            Err("HTTP status 200, expected 301".into())
        );
        let (addr, _h) = serve_once(b"HTTP/1.1 301 Moved\r\n\r\n");
        assert_eq!(probe(&expect, addr, ProbeSource::KERNEL), Ok(()));
        let (addr, _h) = serve_once(b"SSH-2.0-OpenSSH_9.6\r\n");
        assert_eq!(
            probe(&http_spec(), addr, ProbeSource::KERNEL),
            Err("malformed HTTP status line".into())
        );
        let (addr, _h) = serve_once(b"");
        assert_eq!(
            probe(&http_spec(), addr, ProbeSource::KERNEL),
            Err("connection closed before the HTTP status line".into())
        );
        assert_eq!(
            probe(&http_spec(), closed_port(), ProbeSource::KERNEL),
            Err("connect: Connection refused".into())
        );
    }

    #[test]
    fn http_probe_times_out() {
        // The kernel completes the handshake from the backlog; nobody ever answers.
        let (_l, addr) = listener();
        let spec = CheckSpec {
            timeout_ms: 200,
            interval_ms: 1000,
            ..http_spec()
        };
        let t = Instant::now();
        assert_eq!(
            probe(&spec, addr, ProbeSource::KERNEL),
            Err("timeout after 200 ms".into())
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(400),
            "{took:?}"
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 404"), Some(404));
        assert_eq!(parse_status_line(b"HTTP/2 503 "), Some(503));
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000",
            b"HTTP/1.1 2x0",
            b"http/1.1 200",
            b"HTTP/ 200",
            b"HTTP/1.1  200",
        ] {
            assert_eq!(
                parse_status_line(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn target(port: u16, spec: &CheckSpec) -> Target {
        Target {
            service: ServiceKey {
                proto: L4::Tcp,
                addr: Ipv4Addr::new(198, 18, 0, 1).into(),
                port: 80,
            },
            real: RealKey {
                addr: Ipv4Addr::LOCALHOST.into(),
                port,
            },
            spec: spec.clone(),
        }
    }

    #[test]
    fn schedule_keeps_unchanged_targets_and_one_probe_in_flight() {
        let spec = CheckSpec::new(CheckKind::Tcp);
        let (a, b) = (target(1, &spec), target(2, &spec));
        let t0 = Instant::now();
        let mut s = Schedule::new();
        s.set_targets(vec![a.clone(), b.clone(), a.clone()], t0);
        assert_eq!(s.entries.len(), 2);
        // Both due at once.
        let ja = s.pop_due(t0).unwrap();
        let jb = s.pop_due(t0).unwrap();
        assert!(
            s.pop_due(t0 + Duration::from_secs(10)).is_none(),
            "in flight: not due again"
        );
        assert_eq!((ja.key.1.port, jb.key.1.port), (1, 2));
        let answer = |job: &Job, at: Instant| Done {
            key: job.key,
            generation: job.generation,
            started: at,
            outcome: Ok(()),
            at,
        };
        // The second probe comes within (interval / 2, interval].
        assert!(s.finish(answer(&ja, t0)).unwrap().ok);
        let due = s.next_due().unwrap();
        assert!(due > t0 + Duration::from_millis(1000) && due <= t0 + Duration::from_millis(2000));
        // The same set again: a's schedule stays. b changes spec while in flight: its answer
        // is dropped and the new spec is probed at once after it.
        let queued = s.entries[&ja.key].queued;
        let b2 = target(
            2,
            &CheckSpec {
                port: Some(9),
                ..spec.clone()
            },
        );
        let t1 = t0 + Duration::from_millis(10);
        s.set_targets(vec![a.clone(), b2], t1);
        assert_eq!(s.entries[&ja.key].queued, queued);
        assert!(s.pop_due(t1).is_none(), "b still in flight");
        assert!(s.finish(answer(&jb, t1)).is_none());
        let jb2 = s.pop_due(t1).unwrap();
        assert_eq!(jb2.addr.port(), 9);
        // Removing a: its queued probe never comes; b's answer is reported.
        s.set_targets(
            vec![target(
                2,
                &CheckSpec {
                    port: Some(9),
                    ..spec.clone()
                },
            )],
            t1,
        );
        assert!(s.pop_due(t1 + Duration::from_secs(10)).is_none());
        let r = s.finish(answer(&jb2, t1)).unwrap();
        assert_eq!(r.real.port, 2);
        // Removed while in flight: the answer is dropped.
        let jb3 = s.pop_due(t1 + Duration::from_secs(10)).unwrap();
        s.set_targets(vec![], t1);
        assert!(s.finish(answer(&jb3, t1)).is_none());
        assert!(s.next_due().is_none());
    }

    #[test]
    fn checker_end_to_end() {
        let (l, up) = listener();
        accept_forever(l);
        let down = closed_port();
        let spec = CheckSpec {
            interval_ms: 100,
            timeout_ms: 100,
            ..CheckSpec::new(CheckKind::Tcp)
        };
        let (up, down) = (target(up.port(), &spec), target(down.port(), &spec));
        let (tx, rx) = channel::unbounded();
        let checker = Checker::start(tx, LOOPBACK).unwrap();
        let start = Instant::now();
        checker.set_targets(vec![up.clone(), down.clone()]);
        let collect = |until: Instant| {
            let mut got = Vec::new();
            while let Ok(r) = rx.recv_deadline(until) {
                got.push(r);
            }
            got
        };
        let got = collect(start + Duration::from_millis(350));
        let of = |got: &[CheckResult], t: &Target| -> Vec<CheckResult> {
            got.iter()
                .filter(|r| r.real == t.real && r.service == t.service)
                .cloned()
                .collect()
        };
        let (u, d) = (of(&got, &up), of(&got, &down));
        assert!(u.len() >= 2 && d.len() >= 2, "{got:?}");
        assert!(
            u[0].at - start < Duration::from_millis(50),
            "first probe at once"
        );
        assert!(u.iter().all(|r| r.ok && r.error.is_none()));
        assert!(d
            .iter()
            .all(|r| !r.ok && r.error.as_deref() == Some("connect: Connection refused")));

        checker.set_targets(vec![up.clone()]);
        // Let a probe in flight come back, then watch.
        collect(Instant::now() + Duration::from_millis(30));
        let got = collect(Instant::now() + Duration::from_millis(300));
        assert!(of(&got, &down).is_empty(), "{got:?}");
        assert!(of(&got, &up).len() >= 2, "{got:?}");

        let t = Instant::now();
        drop(checker);
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn drop_cuts_a_long_probe_short() {
        let (_l, addr) = listener();
        let spec = CheckSpec {
            interval_ms: 60_000,
            timeout_ms: 60_000,
            ..http_spec()
        };
        let (tx, rx) = channel::unbounded();
        let checker = Checker::start_with_threads(tx, ProbeSource::KERNEL, 1).unwrap();
        checker.set_targets(vec![target(addr.port(), &spec)]);
        thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        drop(checker);
        assert!(
            t.elapsed() < Duration::from_millis(200),
            "{:?}",
            t.elapsed()
        );
        assert!(rx.try_recv().is_err());
    }
}
