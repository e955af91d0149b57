//! Listing every worker's connections for the control thread (`ipvsadm -L -c`).
//!
//! A table has a single writer, its worker, so only that worker can read it. Each worker owns
//! a [`ConnDump`] slot. The control thread asks for a listing by bumping the slot's request
//! generation ([`dump_connections`]); the worker's [`Dumper::serve`] checks it once per loop
//! iteration (one relaxed load of a line nobody writes in between) and, when asked, copies its
//! live entries a chunk of slots per iteration, so that a large table never stalls its packets.
//! The finished copy is handed over under the slot's mutex, the only lock, taken once per dump
//! and never on the packet path, and the caller is woken.
//!
//! A worker has a table per family: it copies its IPv4 table, then its IPv6 table, in chunks
//! of the same number of slots (a chunk that finishes the IPv4 table goes on into the IPv6
//! one), and answers with both lists at once; [`DumpResult`] keeps them apart.
//!
//! An idle worker sleeps in `ppoll` for at most its `idle_wait` (a fraction of a millisecond)
//! and a dump in progress counts as work, so an answer takes that plus one iteration per chunk.
//! The listing is consistent per entry, not across the table (as IPVS's, which walks its hash
//! buckets one at a time): a connection opened or closed during the copy may be missing or
//! present. A cap on entries per worker, both families together, bounds the memory a huge
//! table can take (IPv4 entries first: a worker whose IPv4 table reaches it lists no IPv6
//! ones); the result says when it cut a listing short.

use super::{Address, Conn, ConnTable};
use crate::snapshot::{Method, PROTO_TCP};
use crossbeam::utils::CachePadded;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Entries a worker lists at most unless told otherwise.
pub const DEFAULT_DUMP_LIMIT: usize = 1_000_000;

/// Table slots a worker copies per loop iteration while a dump is in progress.
pub const DEFAULT_DUMP_CHUNK: usize = 1024;

/// A connection as `ipvsadm -L -c` shows it, of a table of family `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnEntry<A: Address = Ipv4Addr> {
    pub proto: u8,
    pub client: A,
    pub client_port: u16,
    pub vip: A,
    pub vport: u16,
    pub real: A,
    pub rport: u16,
    /// IPVS's state name ([`super::TcpState::name`]) for TCP, `UDP` for UDP.
    pub state: &'static str,
    /// Milliseconds left before the entry expires (for an entry on the fast path, as its
    /// worker last saw it: the fast path's last-seen stamps may push it later).
    pub expires_ms: u64,
    /// On the XDP fast path ([`super::FastState::Installed`]).
    pub fast: bool,
    /// FullNAT: the local address and port the connection leaves from.
    pub local: Option<(A, u16)>,
}

impl<A: Address> ConnEntry<A> {
    /// `conn` as seen at `now_ms` (the clock of its table), which it must outlive.
    pub fn new(conn: &Conn<A>, now_ms: u64) -> Self {
        Self::with_fast(conn, now_ms, false)
    }

    /// [`ConnEntry::new`] of an entry whose fast-path state is `fast`.
    pub fn with_fast(conn: &Conn<A>, now_ms: u64, fast: bool) -> Self {
        ConnEntry {
            proto: conn.proto,
            client: conn.caddr,
            client_port: conn.cport,
            vip: conn.vaddr,
            vport: conn.vport,
            real: conn.daddr,
            rport: conn.dport,
            state: if conn.proto == PROTO_TCP {
                conn.state.name()
            } else {
                "UDP"
            },
            expires_ms: conn.expires_ms.saturating_sub(now_ms),
            fast,
            local: (conn.method == Method::FullNat).then_some((conn.laddr, conn.lport)),
        }
    }
}

/// Where a partial copy of a table stands ([`ConnTable::export`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Slots remain: call again from the returned cursor.
    More,
    /// Every live entry was copied, or `truncated` because the limit was reached first.
    Done { truncated: bool },
}

impl<A: Address> ConnTable<A> {
    /// Copies the live entries among at most `slots` slots from `*cursor` into `out` (as seen
    /// at `now_ms`) and advances the cursor, never letting `out` grow beyond `limit`. Entries
    /// past their expiry, not swept yet, count as gone, as [`ConnTable::lookup`] treats them,
    /// unless they are on the fast path (the sweep settles those).
    pub fn export(
        &self,
        cursor: &mut usize,
        slots: usize,
        now_ms: u64,
        limit: usize,
        out: &mut Vec<ConnEntry<A>>,
    ) -> Export {
        let end = self.slab.len().min(cursor.saturating_add(slots.max(1)));
        while *cursor < end {
            let entry = &self.slab[*cursor];
            let fast = entry.fast == super::FastState::Installed;
            if entry.live && (entry.conn.expires_ms > now_ms || fast) {
                if out.len() >= limit {
                    return Export::Done { truncated: true };
                }
                out.push(ConnEntry::with_fast(&entry.conn, now_ms, fast));
            }
            *cursor += 1;
        }
        if *cursor >= self.slab.len() {
            Export::Done { truncated: false }
        } else {
            Export::More
        }
    }
}

/// The meeting point of the control thread and one worker.
pub struct ConnDump {
    /// Generation of the latest request; written by the control thread only, read by the
    /// worker every iteration, hence on a line of its own.
    requested: CachePadded<AtomicU64>,
    /// Entry limit of the latest request (published by the `requested` bump).
    limit: AtomicUsize,
    reply: Mutex<Reply>,
    answered: Condvar,
}

#[derive(Default)]
struct Reply {
    /// The request this answers (0: none yet).
    generation: u64,
    listing: Listing,
}

/// One worker's answer: its IPv4 entries, then its IPv6 ones.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listing {
    entries: Vec<ConnEntry>,
    entries6: Vec<ConnEntry<Ipv6Addr>>,
    truncated: bool,
}

impl std::fmt::Debug for ConnDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnDump")
            .field("requested", &self.requested.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ConnDump {
    pub fn new() -> Self {
        ConnDump {
            requested: CachePadded::new(AtomicU64::new(0)),
            limit: AtomicUsize::new(DEFAULT_DUMP_LIMIT),
            reply: Mutex::new(Reply::default()),
            answered: Condvar::new(),
        }
    }

    /// A panic while the lock was held cannot leave a `Reply` inconsistent (it is replaced
    /// whole), so a poisoned lock is used as is.
    fn reply(&self) -> MutexGuard<'_, Reply> {
        self.reply.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the worker for at most `limit` entries; returns the request's generation.
    fn request(&self, limit: usize) -> u64 {
        self.limit.store(limit, Ordering::Relaxed);
        self.requested.fetch_add(1, Ordering::Release) + 1
    }

    /// Waits until `deadline` for the answer to request `generation` and takes it.
    fn take(&self, generation: u64, deadline: Instant) -> Option<Listing> {
        let mut reply = self.reply();
        while reply.generation != generation {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            reply = self
                .answered
                .wait_timeout(reply, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        Some(std::mem::take(&mut reply.listing))
    }
}

impl Default for ConnDump {
    fn default() -> Self {
        Self::new()
    }
}

/// Every worker's connections, as [`dump_connections`] collected them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpResult {
    /// IPv4 connections.
    pub entries: Vec<ConnEntry>,
    /// IPv6 connections.
    pub entries6: Vec<ConnEntry<Ipv6Addr>>,
    /// Workers that did not answer before the timeout; their entries are missing.
    pub workers_missing: u32,
    /// Some worker had more entries than the limit and listed only that many.
    pub truncated: bool,
}

/// Serialises callers: a slot holds one answer at a time, taken by the caller that asked.
static CALLERS: Mutex<()> = Mutex::new(());

/// [`dump_connections_limited`] with [`DEFAULT_DUMP_LIMIT`].
pub fn dump_connections(slots: &[Arc<ConnDump>], timeout: Duration) -> DumpResult {
    dump_connections_limited(slots, DEFAULT_DUMP_LIMIT, timeout)
}

/// Asks every worker behind `slots` at once for its live entries (at most `limit` each) and
/// gathers the answers that arrive within `timeout`. For the control thread; blocks it.
pub fn dump_connections_limited(
    slots: &[Arc<ConnDump>],
    limit: usize,
    timeout: Duration,
) -> DumpResult {
    let _one_at_a_time = CALLERS.lock().unwrap_or_else(PoisonError::into_inner);
    let deadline = Instant::now() + timeout;
    let generations: Vec<u64> = slots.iter().map(|slot| slot.request(limit)).collect();
    let mut result = DumpResult::default();
    for (slot, generation) in slots.iter().zip(generations) {
        match slot.take(generation, deadline) {
            Some(listing) => {
                result.entries.extend(listing.entries);
                result.entries6.extend(listing.entries6);
                result.truncated |= listing.truncated;
            }
            None => result.workers_missing += 1,
        }
    }
    result
}

/// A worker's side of its [`ConnDump`]: the request it last answered and the copy in progress.
pub struct Dumper {
    slot: Arc<ConnDump>,
    chunk: usize,
    answered: u64,
    /// The request being copied (equal to `answered` when none is).
    generation: u64,
    /// The next slot to copy, of the IPv6 table once `ipv6`, else of the IPv4 one.
    cursor: usize,
    ipv6: bool,
    /// Entries at most, both families together.
    limit: usize,
    entries: Vec<ConnEntry>,
    entries6: Vec<ConnEntry<Ipv6Addr>>,
}

impl Dumper {
    /// A dumper answering requests on `slot`, copying `chunk` table slots per iteration.
    pub fn new(slot: Arc<ConnDump>, chunk: usize) -> Self {
        Dumper {
            slot,
            chunk: chunk.max(1),
            answered: 0,
            generation: 0,
            cursor: 0,
            ipv6: false,
            limit: 0,
            entries: Vec::new(),
            entries6: Vec::new(),
        }
    }

    /// The slot the control thread asks on.
    pub fn slot(&self) -> &Arc<ConnDump> {
        &self.slot
    }

    /// Once per loop iteration: when a dump is requested, copies the next chunk of `table`
    /// (IPv4) or, once that is done, of `table6` (IPv6), and answers once both are complete.
    /// Returns whether it did any work (a dump in progress keeps an idle worker from
    /// sleeping).
    #[inline]
    pub fn serve(&mut self, table: &ConnTable, table6: &ConnTable<Ipv6Addr>, now_ms: u64) -> bool {
        let requested = self.slot.requested.load(Ordering::Relaxed);
        if requested == self.answered {
            return false;
        }
        self.step(table, table6, now_ms);
        true
    }

    #[cold]
    #[inline(never)]
    fn step(&mut self, table: &ConnTable, table6: &ConnTable<Ipv6Addr>, now_ms: u64) {
        // Acquire pairs with the request's Release: the limit stored before it is visible.
        let requested = self.slot.requested.load(Ordering::Acquire);
        if requested != self.generation {
            // A new request, or one superseding a copy whose caller gave up: start over.
            self.generation = requested;
            self.cursor = 0;
            self.ipv6 = false;
            self.limit = self.slot.limit.load(Ordering::Relaxed);
            self.entries.clear();
            self.entries6.clear();
            let reserve = table.len().min(self.limit);
            self.entries.reserve(reserve);
            self.entries6
                .reserve(table6.len().min(self.limit - reserve));
        }
        let mut slots = self.chunk;
        if !self.ipv6 {
            let start = self.cursor;
            match table.export(
                &mut self.cursor,
                slots,
                now_ms,
                self.limit,
                &mut self.entries,
            ) {
                Export::More => return,
                Export::Done { truncated: true } => return self.answer(true),
                Export::Done { truncated: false } => {
                    // The rest of the chunk goes to the IPv6 table.
                    slots -= (self.cursor - start).min(slots);
                    self.ipv6 = true;
                    self.cursor = 0;
                }
            }
        }
        // An IPv6 table that never held an entry has nothing to copy: answer now rather than
        // an iteration later (an IPv4-only worker takes as many iterations as before).
        if table6.slots() == 0 {
            return self.answer(false);
        }
        if slots == 0 {
            return;
        }
        let limit6 = self.limit - self.entries.len();
        if let Export::Done { truncated } =
            table6.export(&mut self.cursor, slots, now_ms, limit6, &mut self.entries6)
        {
            self.answer(truncated);
        }
    }

    /// Hands the finished copy over and wakes the caller.
    fn answer(&mut self, truncated: bool) {
        *self.slot.reply() = Reply {
            generation: self.generation,
            listing: Listing {
                entries: std::mem::take(&mut self.entries),
                entries6: std::mem::take(&mut self.entries6),
                truncated,
            },
        };
        self.answered = self.generation;
        self.slot.answered.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::{Direction, TcpState};
    use crate::snapshot::{Timeouts, PROTO_UDP};
    use crate::stats::WorkerStats;
    use std::sync::atomic::AtomicBool;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 201);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);
    const REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 148);

    fn conn(cport: u16, proto: u8, state: TcpState, expires_ms: u64) -> Conn {
        Conn {
            proto,
            caddr: CLIENT,
            cport,
            vaddr: VIP,
            vport: 80,
            daddr: REAL,
            dport: 8080,
            service: 0,
            real: 1,
            method: crate::snapshot::Method::Masq,
            laddr: CLIENT,
            lport: cport,
            state,
            expires_ms,
        }
    }

    fn table_of<A: Address>(conns: &[Conn<A>]) -> ConnTable<A> {
        let stats = WorkerStats::default();
        let mut t = ConnTable::new(conns.len().max(1), conns.len().max(1));
        for c in conns {
            t.insert(*c, &stats).unwrap();
        }
        t
    }

    fn v6(net: u16, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host)
    }

    /// An IPv6 masqueraded connection from [2001:2::201]:`cport` to [2001:2::129]:80.
    fn conn6(cport: u16, proto: u8, state: TcpState, expires_ms: u64) -> Conn<Ipv6Addr> {
        Conn {
            proto,
            caddr: v6(0, 0x201),
            cport,
            vaddr: v6(0, 0x129),
            vport: 80,
            daddr: v6(1, 0x148),
            dport: 80,
            service: 1,
            real: 2,
            method: Method::Masq,
            laddr: v6(0, 0x201),
            lport: cport,
            state,
            expires_ms,
        }
    }

    fn no_ipv6() -> ConnTable<Ipv6Addr> {
        ConnTable::new(1, 1)
    }

    fn no_ipv4() -> ConnTable {
        ConnTable::with_capacity(1)
    }

    /// Everything [`ConnTable::export`] lists at `now_ms`, `chunk` slots at a time.
    fn export_all(
        t: &ConnTable,
        chunk: usize,
        now_ms: u64,
        limit: usize,
    ) -> (Vec<ConnEntry>, bool) {
        let (mut cursor, mut out) = (0, Vec::new());
        for _ in 0..=t.capacity() {
            if let Export::Done { truncated } =
                t.export(&mut cursor, chunk, now_ms, limit, &mut out)
            {
                return (out, truncated);
            }
        }
        panic!("export did not finish");
    }

    fn sorted<A: Address>(mut entries: Vec<ConnEntry<A>>) -> Vec<ConnEntry<A>> {
        entries.sort_by_key(|e| e.client_port);
        entries
    }

    #[test]
    fn an_ipv6_table_lists_its_entries() {
        let addr = |net, host| Ipv6Addr::new(0x2001, 2, 0, net, 0, 0, 0, host);
        let stats = WorkerStats::default();
        let mut t = ConnTable::<Ipv6Addr>::new(4, 2);
        let c = Conn {
            proto: PROTO_TCP,
            caddr: addr(0x12, 0xc9),
            cport: 40001,
            vaddr: addr(0x12, 0x81),
            vport: 80,
            daddr: addr(0x13, 0x94),
            dport: 8080,
            service: 0,
            real: 1,
            method: Method::FullNat,
            laddr: addr(0x13, 0xa0),
            lport: 2000,
            state: TcpState::Established,
            expires_ms: 10_000,
        };
        t.insert(c, &stats).unwrap();
        let (mut cursor, mut out) = (0, Vec::new());
        let export = t.export(&mut cursor, 8, 4_000, 10, &mut out);
        assert_eq!(export, Export::Done { truncated: false });
        let expect = ConnEntry {
            proto: PROTO_TCP,
            client: c.caddr,
            client_port: 40001,
            vip: c.vaddr,
            vport: 80,
            real: c.daddr,
            rport: 8080,
            state: "ESTABLISHED",
            expires_ms: 6_000,
            fast: false,
            local: Some((c.laddr, 2000)),
        };
        assert_eq!(out, [expect]);
    }

    #[test]
    fn entries_show_addresses_state_and_time_left() {
        let stats = WorkerStats::default();
        let timeouts = Timeouts::default();
        let mut t = ConnTable::with_capacity(8);
        // A TCP connection through its handshake, as `process` drives it, at t = 5 s.
        let e = t
            .insert(conn(40001, PROTO_TCP, TcpState::None, 0), &stats)
            .unwrap();
        ConnTable::touch(e, Direction::Inbound, 0x02, &timeouts, 5_000, &stats);
        let e = t
            .insert(conn(40002, PROTO_TCP, TcpState::None, 0), &stats)
            .unwrap();
        for (d, flags) in [
            (Direction::Inbound, 0x02),
            (Direction::Outbound, 0x12),
            (Direction::Inbound, 0x10),
        ] {
            ConnTable::touch(e, d, flags, &timeouts, 5_000, &stats);
        }
        let e = t
            .insert(conn(40003, PROTO_UDP, TcpState::None, 0), &stats)
            .unwrap();
        ConnTable::touch(e, Direction::Inbound, 0, &timeouts, 5_000, &stats);
        // Expired at 6 s but not swept yet: no longer listed.
        t.insert(conn(40004, PROTO_TCP, TcpState::Close, 6_000), &stats)
            .unwrap();

        let (entries, truncated) = export_all(&t, 2, 6_000, usize::MAX);
        assert!(!truncated);
        let expect = |cport, proto, state, expires_ms| ConnEntry {
            proto,
            client: CLIENT,
            client_port: cport,
            vip: VIP,
            vport: 80,
            real: REAL,
            rport: 8080,
            state,
            expires_ms,
            fast: false,
            local: None,
        };
        assert_eq!(
            sorted(entries),
            [
                // SYN_RECV lives 60 s, ESTABLISHED 900 s, UDP 300 s; one second has passed.
                expect(40001, PROTO_TCP, "SYN_RECV", 59_000),
                expect(40002, PROTO_TCP, "ESTABLISHED", 899_000),
                expect(40003, PROTO_UDP, "UDP", 299_000),
            ]
        );
    }

    #[test]
    fn every_state_has_its_ipvs_name() {
        let names: Vec<&str> = [
            TcpState::None,
            TcpState::Established,
            TcpState::SynSent,
            TcpState::SynRecv,
            TcpState::FinWait,
            TcpState::TimeWait,
            TcpState::Close,
            TcpState::CloseWait,
            TcpState::LastAck,
            TcpState::Listen,
            TcpState::SynAck,
        ]
        .into_iter()
        .map(|s| ConnEntry::new(&conn(1, PROTO_TCP, s, 10), 0).state)
        .collect();
        assert_eq!(
            names,
            [
                "NONE",
                "ESTABLISHED",
                "SYN_SENT",
                "SYN_RECV",
                "FIN_WAIT",
                "TIME_WAIT",
                "CLOSE",
                "CLOSE_WAIT",
                "LAST_ACK",
                "LISTEN",
                "SYNACK"
            ]
        );
    }

    #[test]
    fn export_skips_freed_slots_and_respects_the_limit() {
        let stats = WorkerStats::default();
        let conns: Vec<Conn> = (1..=10)
            .map(|p| conn(p, PROTO_TCP, TcpState::Established, 60_000))
            .collect();
        let mut t = table_of(&conns);
        // Free two slots in the middle (expired and looked up).
        for c in &conns[3..5] {
            t.lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                .unwrap()
                .expires_ms = 0;
            assert!(t
                .lookup(&c.inbound_key(), Direction::Inbound, 1, &stats)
                .is_none());
        }
        let (all, truncated) = export_all(&t, 3, 0, 8);
        assert!(!truncated, "exactly 8 live entries fit a limit of 8");
        let ports: Vec<u16> = sorted(all).iter().map(|e| e.client_port).collect();
        assert_eq!(ports, [1, 2, 3, 6, 7, 8, 9, 10]);

        let (some, truncated) = export_all(&t, 3, 0, 5);
        assert!(truncated);
        assert_eq!(some.len(), 5);
    }

    /// A stand-in for the worker loop (workers need AF_XDP sockets, hence root): serve once
    /// per iteration, sleeping like an idle worker when there is nothing to do. The thread
    /// returns how many iterations had dump work.
    struct FakeWorker {
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<u32>,
    }

    impl FakeWorker {
        fn spawn(
            mut dumper: Dumper,
            table: ConnTable,
            table6: ConnTable<Ipv6Addr>,
            now_ms: u64,
        ) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let stop_worker = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let mut busy_iterations = 0;
                while !stop_worker.load(Ordering::Relaxed) {
                    if dumper.serve(&table, &table6, now_ms) {
                        busy_iterations += 1;
                    } else {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                busy_iterations
            });
            FakeWorker { stop, thread }
        }

        fn stop(self) -> u32 {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.join().unwrap()
        }
    }

    #[test]
    fn workers_answer_requests_across_threads() {
        let a: Vec<Conn> = (1..=100)
            .map(|p| conn(p, PROTO_TCP, TcpState::Established, 10_000))
            .collect();
        let b: Vec<Conn> = (101..=150)
            .map(|p| conn(p, PROTO_UDP, TcpState::None, 10_000))
            .collect();
        let b6: Vec<Conn<Ipv6Addr>> = (201..=220)
            .map(|p| conn6(p, PROTO_TCP, TcpState::Established, 10_000))
            .collect();
        // Chunks of 8 slots: the first worker needs 13 iterations for one dump, the second
        // 9 (50 IPv4 slots, then 20 IPv6 ones).
        let slots: Vec<Arc<ConnDump>> = (0..2).map(|_| Arc::new(ConnDump::new())).collect();
        let workers = [
            FakeWorker::spawn(
                Dumper::new(Arc::clone(&slots[0]), 8),
                table_of(&a),
                no_ipv6(),
                4_000,
            ),
            FakeWorker::spawn(
                Dumper::new(Arc::clone(&slots[1]), 8),
                table_of(&b),
                table_of(&b6),
                4_000,
            ),
        ];

        for _ in 0..3 {
            let result = dump_connections(&slots, Duration::from_secs(10));
            assert_eq!((result.workers_missing, result.truncated), (0, false));
            let entries = sorted(result.entries);
            assert_eq!(entries.len(), 150);
            assert!(entries.iter().all(|e| e.expires_ms == 6_000));
            assert_eq!(entries[0].state, "ESTABLISHED");
            assert_eq!(entries[149].state, "UDP");
            assert!(entries.iter().zip(1..).all(|(e, p)| e.client_port == p));
            let entries6 = sorted(result.entries6);
            assert!(entries6
                .iter()
                .zip(201..=220)
                .all(|(e, p)| e.client_port == p
                    && e.client == v6(0, 0x201)
                    && e.expires_ms == 6_000));
            assert_eq!(entries6.len(), 20);
        }

        // 30 a worker: the second lists its 50 IPv4 entries no further than 30.
        let capped = dump_connections_limited(&slots, 30, Duration::from_secs(10));
        assert_eq!(
            (
                capped.entries.len(),
                capped.entries6.len(),
                capped.truncated
            ),
            (60, 0, true)
        );
        // 60 a worker: the second has room for 10 of its IPv6 entries.
        let capped = dump_connections_limited(&slots, 60, Duration::from_secs(10));
        assert_eq!(
            (
                capped.entries.len(),
                capped.entries6.len(),
                capped.truncated
            ),
            (110, 10, true)
        );

        let iterations: Vec<u32> = workers.into_iter().map(FakeWorker::stop).collect();
        // Five dumps; the first worker needs 13 iterations a full one, 4 for a listing capped
        // at 30 and 8 for one capped at 60; the second 9 a full one, 4, and 8 (slots 56..64,
        // the IPv6 table's 0..6, meet the limit).
        assert_eq!(iterations, [3 * 13 + 4 + 8, 3 * 9 + 4 + 8]);
    }

    #[test]
    fn a_silent_worker_is_reported_missing_and_a_late_answer_is_not_taken() {
        let table = table_of(&[conn(1, PROTO_TCP, TcpState::Established, 10_000)]);
        let slot = Arc::new(ConnDump::new());
        let mut dumper = Dumper::new(Arc::clone(&slot), 64);
        let slots = [Arc::clone(&slot)];

        let result = dump_connections(&slots, Duration::from_millis(20));
        assert_eq!((result.entries.len(), result.workers_missing), (0, 1));
        // The worker wakes up late and answers the abandoned request.
        let table6 = no_ipv6();
        assert!(dumper.serve(&table, &table6, 0));
        assert!(
            !dumper.serve(&table, &table6, 0),
            "answered: nothing more to do"
        );

        // The next caller gets the answer to its own request, not the stale one.
        let worker = FakeWorker::spawn(dumper, table, no_ipv6(), 9_000);
        let result = dump_connections(&slots, Duration::from_secs(10));
        assert_eq!(worker.stop(), 1);
        assert_eq!(result.workers_missing, 0);
        assert_eq!(result.entries.len(), 1);
        assert_eq!(
            result.entries[0].expires_ms, 1_000,
            "listed at the later clock"
        );
    }

    #[test]
    fn a_new_request_restarts_a_copy_in_progress() {
        let conns: Vec<Conn> = (1..=10)
            .map(|p| conn(p, PROTO_TCP, TcpState::Established, 10_000))
            .collect();
        let table = table_of(&conns);
        let slot = Arc::new(ConnDump::new());
        let table6 = table_of(&[conn6(1, PROTO_TCP, TcpState::Established, 10_000)]);
        let mut dumper = Dumper::new(Arc::clone(&slot), 3);
        let first = slot.request(100);
        assert!(dumper.serve(&table, &table6, 0), "copied slots 0..3");
        // Its caller gave up; another asks with a smaller limit.
        let second = slot.request(4);
        let mut iterations = 0;
        while dumper.serve(&table, &table6, 0) {
            iterations += 1;
        }
        assert_eq!(iterations, 2, "0..3, then 3..6 where the limit stops it");
        let soon = Instant::now() + Duration::from_millis(1);
        assert_eq!(slot.take(first, soon), None);
        let listing = slot.take(second, soon).unwrap();
        assert_eq!(
            (
                listing.entries.len(),
                listing.entries6.len(),
                listing.truncated
            ),
            (4, 0, true)
        );

        // Restarted while in the IPv6 table: the new copy starts over from the IPv4 one.
        let third = slot.request(100);
        for _ in 0..4 {
            assert!(dumper.serve(&table, &table6, 0));
        }
        assert!(dumper.ipv6, "IPv4 slots 0..10 copied, the IPv6 table begun");
        let fourth = slot.request(100);
        let mut iterations = 0;
        while dumper.serve(&table, &table6, 0) {
            iterations += 1;
        }
        assert_eq!(iterations, 4, "10 IPv4 slots and 1 IPv6 one, 3 a time");
        assert_eq!(slot.take(third, soon), None);
        let listing = slot.take(fourth, soon).unwrap();
        assert_eq!(
            (
                listing.entries.len(),
                listing.entries6.len(),
                listing.truncated
            ),
            (10, 1, false)
        );
    }

    /// Runs `dumper` on a request for at most `limit` entries until it answers; returns the
    /// answer and the iterations it took.
    fn serve_one(
        dumper: &mut Dumper,
        table: &ConnTable,
        table6: &ConnTable<Ipv6Addr>,
        now_ms: u64,
        limit: usize,
    ) -> (Listing, u32) {
        let generation = dumper.slot().request(limit);
        let mut iterations = 0;
        while dumper.serve(table, table6, now_ms) {
            iterations += 1;
        }
        let soon = Instant::now() + Duration::from_millis(1);
        (dumper.slot().take(generation, soon).unwrap(), iterations)
    }

    /// IPv4 entries first, then IPv6 ones, in chunks that run on from one table into the
    /// next; both in one answer.
    #[test]
    fn a_listing_carries_both_families() {
        let conns: Vec<Conn> = (1..=10)
            .map(|p| conn(p, PROTO_TCP, TcpState::Established, 10_000))
            .collect();
        let mut conns6: Vec<Conn<Ipv6Addr>> = (101..=107)
            .map(|p| conn6(p, PROTO_TCP, TcpState::Established, 10_000))
            .collect();
        conns6.push(conn6(108, PROTO_UDP, TcpState::None, 10_000));
        // Expired, not swept: not listed, but its slot is visited.
        conns6.push(conn6(109, PROTO_TCP, TcpState::Close, 3_000));
        conns6.push(conn6(110, PROTO_TCP, TcpState::SynRecv, 64_000));
        let (table, table6) = (table_of(&conns), table_of(&conns6));

        // 10 + 10 slots, 4 a time: 0..4, 4..8, 8..10 and 0..2, 2..6, 6..10.
        let mut dumper = Dumper::new(Arc::new(ConnDump::new()), 4);
        let (listing, iterations) = serve_one(&mut dumper, &table, &table6, 4_000, 100);
        assert_eq!(iterations, 5);
        assert!(!listing.truncated);
        let ports: Vec<u16> = sorted(listing.entries)
            .iter()
            .map(|e| e.client_port)
            .collect();
        assert_eq!(ports, (1..=10).collect::<Vec<_>>());
        let entry6 = |cport, proto, state, expires_ms| ConnEntry {
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
        let mut expect: Vec<_> = (101..=107)
            .map(|p| entry6(p, PROTO_TCP, "ESTABLISHED", 6_000))
            .collect();
        expect.push(entry6(108, PROTO_UDP, "UDP", 6_000));
        expect.push(entry6(110, PROTO_TCP, "SYN_RECV", 60_000));
        assert_eq!(sorted(listing.entries6), expect);

        // A chunk that ends with the IPv4 table: the IPv6 one starts with the next chunk.
        let mut dumper = Dumper::new(Arc::new(ConnDump::new()), 5);
        let (listing, iterations) = serve_one(&mut dumper, &table, &table6, 4_000, 100);
        assert_eq!(iterations, 4, "0..5, 5..10, then 0..5, 5..10");
        assert_eq!((listing.entries.len(), listing.entries6.len()), (10, 9));

        // An IPv6 table alone, and the limit over both families.
        let (listing, iterations) = serve_one(&mut dumper, &no_ipv4(), &table6, 4_000, 100);
        assert_eq!(iterations, 2);
        assert_eq!((listing.entries.len(), listing.entries6.len()), (0, 9));
        for (limit, listed, truncated) in [(19, (10, 9), false), (18, (10, 8), true)] {
            let (listing, _) = serve_one(&mut dumper, &table, &table6, 4_000, limit);
            let got = (listing.entries.len(), listing.entries6.len());
            assert_eq!((got, listing.truncated), (listed, truncated), "{limit}");
        }
        let (listing, iterations) = serve_one(&mut dumper, &table, &table6, 4_000, 9);
        assert_eq!(iterations, 2, "the IPv4 table's 10th entry ends it");
        assert_eq!((listing.entries.len(), listing.entries6.len()), (9, 0));
        assert!(listing.truncated);
    }
}
