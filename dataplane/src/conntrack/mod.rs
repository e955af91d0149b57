//! Connection tables: one per worker, bounded, preallocated, never locked.
//!
//! # Which worker owns a flow
//! veth (and NICs without flow steering) deliver a real server's reply on whatever queue the
//! sender hashed it to, so the two directions of a flow routinely arrive at different workers
//! (platform.md measured a 106/94 split). DPVS's NAT mode broke on exactly this. xvs assigns
//! every flow to one owner worker by a hash of its **client endpoint** (CIP, cport): both
//! directions carry it (as the source of requests and the destination of replies), so any
//! worker can compute the owner of any frame without a lookup ([`owner_of`]). A worker that
//! receives a frame of a flow it does not own hands the frame descriptor to the owner over a
//! lock-free ring (see [`crate::worker`]); the owner alone reads and writes the flow's entry.
//! A FullNAT reply carries the director's local address and port instead of the client's
//! endpoint: the owner took a port that hashes to itself ([`crate::fullnat`]), so the same
//! rule finds it.
//! Hence a table needs no lock, and both directions always meet the same entry.
//!
//! # The table
//! Each entry is indexed under both its inbound tuple (CIP:cport -> VIP:vport) and its reply
//! tuple (RIP:rport -> CIP:cport), as in DPVS. Entries live in a slab allocated (and committed) once at start.
//! Each index (`conntrack/index.rs`) is an array of 64-byte buckets of 10 slot numbers with
//! a 16-bit tag of their hash each, and nothing else: a probe reads one bucket line, filters
//! its ways on the tags and compares a candidate's key in its slab entry, so each tuple is
//! stored once, in its entry. A removal finds its way by slot number under the key's hash,
//! without reading other entries, and leaves no tombstone.
//!
//! The indexes have twice as many ways as the table has slots, so they never fill, never
//! grow and never rehash: inserts and removals never allocate and never stall.
//!
//! # Batches and memory
//! Once a table outgrows the caches, a lookup waits for two dependent misses (the bucket,
//! then the entry). A worker hides them across a batch, as DPDK's `rte_hash_lookup_bulk` and
//! VPP's graph nodes do: it hashes every packet's key ([`ConnTable::hash`]) and prefetches its
//! bucket ([`ConnTable::prefetch`]), then prefetches each candidate entry
//! ([`ConnTable::prefetch_entry`]), then looks each key up ([`ConnTable::lookup_hashed`]).
//! The slab and the indexes live on 2 MiB-aligned memory advised for transparent huge pages
//! (`conntrack/hw.rs`), so that a lookup in a table of hundreds of MB does not also miss the
//! TLB; where THP is off they are on 4 KiB pages, silently.
//!
//! Established entries are never evicted: see *Half-open entries* for what is.
//!
//! Memory per entry of capacity (of an IPv4 table; IPv6: see *Address families*): 56 bytes of
//! slab (the connection, 48 since FullNAT's local address and port joined it, and the slot's
//! state), 4 of free list, 4 of half-open FIFO (an 8-byte record per two entries), and for
//! the two indexes 64 bytes per 10 ways, with the power of two at or above 2 x capacity / 10
//! buckets each: 12.8 to 25.6 bytes per index; plus 16 KiB of per-service counts and 12 KiB
//! of fast-path queues per table; arrays of 2 MiB or more are rounded up to whole huge pages.
//! 10M entries take 0.85 GiB (91 bytes per entry: 2^21 buckets per index),
//! `dataplane/tests/conntrack_memory.rs` checks it.
//!
//! The indexes hash with aHash under random per-process keys: as fast as a non-cryptographic
//! hash (SipHash cost about a third of an established packet's processing), and clients cannot
//! predict collisions to flood a bucket. A tuple is hashed as one 128-bit word (one keyed
//! multiply-fold), and a removal recomputes its two hashes rather than storing them in the
//! entry (16 bytes more per entry, to save a few nanoseconds off the packet path). The reply
//! index hashes only the client's endpoint (protocol, address, port), which a request carries:
//! a batch can then prefetch a new flow's reply bucket before the scheduler has picked its real
//! server (half the cost of a new flow at 1Mi flows). Entries share a reply bucket only when
//! one client port reaches several virtual services, at most one entry per service.
//!
//! # Expiry
//! An entry expires `timeout` seconds after its last packet, the timeout depending on its TCP
//! state (IPVS's table, see [`tcp_state`]) or the UDP timeout. Workers reclaim expired entries
//! a few at a time ([`ConnTable::expire`], bounded work per batch), and a lookup that finds an
//! expired entry treats it as gone, so expiry never stalls a worker.
//!
//! # Half-open entries
//! A TCP entry is *half-open* from the client's SYN until the handshake completes (IPVS's
//! SYN_RECV; the client's ACK makes it ESTABLISHED). A flood of SYNs from spoofed addresses
//! makes only half-open entries, and with a table that only refuses when full they would take
//! every slot for 60 s and starve legitimate clients. So, like nf_conntrack's early drop of
//! unassured entries, half-open entries are the ones that give way:
//! - every new half-open entry gets a record (slot, generation) at the tail of a FIFO of
//!   `half_open_limit` records (half the table by default), preallocated with the table;
//! - a new entry that finds the FIFO full pops its oldest record; if that entry is still the
//!   same one (live, same generation) and still half-open, it is evicted. So at most
//!   `half_open_limit` half-open entries exist, and a handshake has until `half_open_limit`
//!   newer SYNs have arrived to complete: under a flood of R SYNs/s per worker, limit/R seconds;
//! - a new flow that finds the table full evicts the oldest half-open entry (popping at most
//!   [`EVICT_SCAN`] records: stale ones, of entries that completed or went, are dropped on
//!   the way) and is refused only when none is found;
//! - a new flow to a service at its connection limit may evict the oldest half-open entry of
//!   that service among the first [`EVICT_SCAN`] records.
//!
//! Stale records cost nothing but their place: a completed entry's record ages out as newer
//! SYNs arrive. Evictions are counted by [`EvictReason`]. A slot's generation is a wrapping
//! `u32`: a record could only be mistaken for a later entry of its slot after 2^32 reuses of
//! that slot while it waits, and even then only a half-open TCP entry would be evicted.
//!
//! # The XDP fast path
//! An entry a worker has put on the fast path ([`crate::fastpath`]) is *installed*
//! ([`FastState::Installed`]): its packets mostly bypass the worker, so its own expiry time
//! says nothing. A lookup never treats an installed entry as expired, and the sweep does not
//! remove it either: it reports it ([`ConnTable::next_fast_expired`]) for the worker to read
//! the program's last-seen stamps and settle it ([`ConnTable::settle_fast`]). Every removal of
//! an installed entry, whatever its cause, is queued for the worker to take out of the maps
//! ([`ConnTable::next_fast_removed`]), so no map entry outlives its connection.
//!
//! # Address families
//! A table holds the connections of one family: [`ConnTable<A>`], [`Conn<A>`] and
//! [`FlowKey<A>`] are generic over the address type `A` ([`Address`], sealed: [`Ipv4Addr`]
//! or [`std::net::Ipv6Addr`]), and default to `Ipv4Addr`, so `ConnTable` alone is the IPv4
//! table (and `ConnTable::with_capacity` makes one; [`ConnTable::new`] makes any family's). A
//! worker keeps one table per family. Holding `IpAddr`s (17 bytes each) in one table would
//! take an IPv4 connection from 48 bytes to about 100 and put a branch on the family into
//! every hash and key compare; generics keep the IPv4 entry, its hashes and its code exactly
//! as they were (monomorphised, no runtime dispatch), and size each family's entries for its
//! own addresses. What differs per family is in [`Address`]: the inbound tuple's hash (IPv4:
//! one 128-bit word, one keyed fold; IPv6: its 37 bytes as two 128-bit words and a 64-bit
//! one, to the same keyed hasher), the reply index's client-endpoint hash, and the word
//! [`owner_of`] mixes (IPv6: the address folded to 64 bits). FullNAT's local ports
//! ([`LocalPorts`]) are per family too.
//!
//! An IPv6 connection takes 96 bytes and its slab entry 104 (IPv4: 48 and 56); the free
//! list, half-open FIFO, indexes and per-service counts cost the same in both families (the
//! fast-path queues, of connections, twice as much: 24 KiB), so an IPv6 table takes 48 bytes
//! more per entry of capacity: 138.9 instead of 91.1 at 10M entries (1.29 GiB).
//!
//! # Listing
//! Only the owner reads its table, so the control thread asks each worker for a copy of its
//! entries through a [`ConnDump`] slot ([`dump`] describes the exchange). A table of any
//! family copies its entries ([`ConnTable::export`], [`ConnEntry<A>`]); a worker answers
//! with both of its tables' entries.

pub mod dump;
mod hw;
mod index;
pub mod tcp_state;

pub use crate::family::Address;
use crate::fullnat::{self, LocalPorts};
use crate::snapshot::{Method, RealId, ServiceId, Timeouts, PROTO_TCP};
use crate::stats::{EvictReason, WorkerStats, MAX_SERVICES};
pub use dump::{
    dump_connections, dump_connections_limited, ConnDump, ConnEntry, DumpResult, Dumper,
};
use hw::{commit, prefetch, HugeVec};
use index::Index;
use std::net::Ipv4Addr;
pub use tcp_state::{Direction, TcpState};

/// A directional 5-tuple of family `A`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey<A: Address = Ipv4Addr> {
    pub proto: u8,
    pub src: A,
    pub src_port: u16,
    pub dst: A,
    pub dst_port: u16,
}

/// A connection through the director, in IPVS's vocabulary: client (caddr:cport), virtual
/// service (vaddr:vport), destination real server (daddr:dport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conn<A: Address = Ipv4Addr> {
    pub proto: u8,
    pub caddr: A,
    pub cport: u16,
    pub vaddr: A,
    pub vport: u16,
    pub daddr: A,
    pub dport: u16,
    pub service: ServiceId,
    pub real: RealId,
    /// The real server's forwarding method when the connection was made: it keeps it even if
    /// the server's method is edited later, as in IPVS.
    pub method: Method,
    /// Where the real server's replies go (DPVS's laddr:lport): for FullNAT a local address
    /// and port of the director, which requests leave from; for the other methods the
    /// client's own endpoint (caddr:cport), so that the reply key needs no branch.
    pub laddr: A,
    pub lport: u16,
    /// TCP state; UDP entries stay in `TcpState::None` and use the UDP timeout.
    pub state: TcpState,
    /// Monotonic milliseconds after which the entry is dead.
    pub expires_ms: u64,
}

impl<A: Address> Conn<A> {
    /// CIP:cport -> VIP:vport, as requests arrive.
    pub fn inbound_key(&self) -> FlowKey<A> {
        FlowKey {
            proto: self.proto,
            src: self.caddr,
            src_port: self.cport,
            dst: self.vaddr,
            dst_port: self.vport,
        }
    }

    /// RIP:rport -> CIP:cport, as replies arrive (RIP:rport -> LIP:lport for FullNAT).
    pub fn reply_key(&self) -> FlowKey<A> {
        FlowKey {
            proto: self.proto,
            src: self.daddr,
            src_port: self.dport,
            dst: self.laddr,
            dst_port: self.lport,
        }
    }

    /// The tuple the index of `direction` holds the entry under.
    #[inline]
    fn key(&self, direction: Direction) -> FlowKey<A> {
        match direction {
            Direction::Inbound => self.inbound_key(),
            Direction::Outbound => self.reply_key(),
        }
    }

    /// A TCP entry whose handshake has not completed: the only kind ever evicted.
    #[inline]
    pub fn is_half_open(&self) -> bool {
        self.proto == PROTO_TCP && matches!(self.state, TcpState::None | TcpState::SynRecv)
    }

    /// IPVS counts a connection as active only while ESTABLISHED; UDP ones are inactive.
    pub fn is_active(&self) -> bool {
        self.proto == PROTO_TCP && self.state == TcpState::Established
    }

    fn timeout_secs(&self, timeouts: &Timeouts) -> u32 {
        if self.proto == PROTO_TCP {
            self.state.timeout(timeouts)
        } else {
            timeouts.udp
        }
    }
}

/// The worker that owns every frame of the flow whose client endpoint is `caddr:cport`.
/// Deterministic in its inputs, so all workers agree; `seed` (shared by the workers of one
/// director) keeps clients from choosing their worker. The endpoint enters as one 64-bit word
/// ([`Address::owner_word`]): an IPv4 address and port side by side, an IPv6 address folded to
/// 64 bits with the port mixed into its low 16.
#[inline]
pub fn owner_of<A: Address>(caddr: A, cport: u16, workers: usize, seed: u64) -> usize {
    if workers <= 1 {
        return 0;
    }
    let x = A::owner_word(caddr, cport) ^ seed;
    // splitmix64 finaliser: cheap and well mixed.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    // Multiply-shift maps the top 32 bits onto 0..workers without a division.
    (((z >> 32) * workers as u64) >> 32) as usize
}

/// Live entries from which batches prefetch ([`ConnTable::worth_prefetching`]): 8Ki entries
/// touch 8Ki slab entries (384 KiB) and up to 16Ki bucket lines (1 MiB), about an L2 cache.
pub const PREFETCH_MIN_ENTRIES: usize = 8 << 10;

/// Room reserved for the fast-path queues of a table: a worker drains them after every packet
/// and iteration, so they hold a batch's worth at most; beyond it they grow (never losing an
/// entry).
const FAST_QUEUE_RESERVE: usize = 256;

/// An installed entry the sweep found past its own expiry: [`ConnTable::next_fast_expired`].
#[derive(Debug, Clone, Copy)]
pub struct FastExpired(Record);

/// Index of an entry in the slab.
type Slot = u32;

struct Entry<A: Address> {
    conn: Conn<A>,
    live: bool,
    fast: FastState,
    /// Bumped each time the slot takes a new entry, so a [`Record`] knows its entry.
    generation: u32,
}

/// Whether an entry is on the XDP fast path (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FastState {
    /// Its packets all reach the worker.
    #[default]
    Off,
    /// The program may carry it and the worker has forwarded this many of its packets since
    /// (it installs the connection after `--fast-path-after` of them).
    Waiting(u8),
    /// The worker queued its install in the fast path's maps (which may have refused it).
    Installed,
}

/// How many records an eviction looks at before giving up (bounded work per packet).
pub const EVICT_SCAN: usize = 64;

/// A half-open entry's place in the eviction FIFO.
#[derive(Debug, Clone, Copy)]
struct Record {
    slot: Slot,
    generation: u32,
}

/// The FIFO of half-open records: a ring over a vector reserved at its full length, filled
/// in order the first time round (so only touched pages are committed).
struct HalfOpen {
    ring: Vec<Record>,
    limit: usize,
    head: usize,
    len: usize,
}

impl HalfOpen {
    fn with_limit(limit: usize) -> Self {
        HalfOpen {
            ring: Vec::with_capacity(limit),
            limit,
            head: 0,
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == self.limit
    }

    /// Appends `record`; the FIFO must not be full.
    fn push(&mut self, record: Record) {
        debug_assert!(!self.is_full());
        // The tail is the number of pushes so far modulo `limit`, which equals `ring.len()`
        // until the ring has been filled once.
        let tail = (self.head + self.len) % self.limit;
        if tail == self.ring.len() {
            self.ring.push(record);
        } else {
            self.ring[tail] = record;
        }
        self.len += 1;
    }

    fn pop(&mut self) -> Option<Record> {
        if self.len == 0 {
            return None;
        }
        let record = self.ring[self.head];
        self.head = (self.head + 1) % self.limit;
        self.len -= 1;
        Some(record)
    }

    /// The `i`-th oldest record.
    fn get(&self, i: usize) -> Option<Record> {
        (i < self.len).then(|| self.ring[(self.head + i) % self.limit])
    }
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    Full,
}

/// One worker's connection table of family `A` (see the module documentation).
pub struct ConnTable<A: Address = Ipv4Addr> {
    slab: HugeVec<Entry<A>>,
    free: Vec<Slot>,
    /// Live slots by inbound tuple.
    by_client: Index,
    /// Live slots by reply tuple.
    by_real: Index,
    hasher: ahash::RandomState,
    capacity: usize,
    len: usize,
    sweep_cursor: usize,
    half_open: HalfOpen,
    /// Live entries per service id (ids beyond [`MAX_SERVICES`] are not counted).
    per_service: Box<[u32]>,
    /// See [`ConnTable::worth_prefetching`].
    prefetch_min_entries: usize,
    /// The slot of the entry the last lookup found or the last insert made.
    last_slot: Option<Slot>,
    /// Installed entries removed since the worker last looked: their map entries must go.
    fast_removed: Vec<Conn<A>>,
    /// Installed entries the sweep found past their own expiry, with their generation.
    fast_expired: Vec<Record>,
    /// FullNAT's local ports of this table's worker: taken for new FullNAT entries, given
    /// back when they go.
    local_ports: LocalPorts<A>,
}

/// The IPv4 table's constructors, so that `ConnTable::with_capacity(n)` needs no annotation
/// (a type parameter's default does not guide inference in expressions); any family's table
/// is made with [`ConnTable::new`].
impl ConnTable {
    /// An IPv4 table for at most `capacity` connections, half of which may be half-open, all
    /// memory reserved and touched now.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::new(capacity, capacity / 2)
    }

    /// An IPv4 table for at most `capacity` connections of which at most `half_open_limit` (at
    /// least 1, at most `capacity`) are half-open.
    pub fn with_limits(capacity: usize, half_open_limit: usize) -> Self {
        Self::new(capacity, half_open_limit)
    }
}

impl<A: Address> ConnTable<A> {
    /// A table of family `A` for at most `capacity` connections of which at most
    /// `half_open_limit` (at least 1, at most `capacity`) are half-open, all memory reserved
    /// and touched now: `ConnTable::<Ipv6Addr>::new(capacity, capacity / 2)`.
    pub fn new(capacity: usize, half_open_limit: usize) -> Self {
        let capacity = capacity.max(1);
        let half_open_limit = half_open_limit.clamp(1, capacity);
        let mut slab = HugeVec::with_capacity(capacity);
        let mut free = Vec::with_capacity(capacity);
        let mut half_open = HalfOpen::with_limit(half_open_limit);
        // Backed now, as the indexes are: no page fault on the hot path as the table fills.
        commit(slab.spare_capacity_mut());
        commit(free.spare_capacity_mut());
        commit(half_open.ring.spare_capacity_mut());
        ConnTable {
            slab,
            free,
            by_client: Index::with_capacity(capacity),
            by_real: Index::with_capacity(capacity),
            hasher: ahash::RandomState::new(),
            capacity,
            len: 0,
            sweep_cursor: 0,
            half_open,
            per_service: vec![0; MAX_SERVICES].into_boxed_slice(),
            prefetch_min_entries: PREFETCH_MIN_ENTRIES,
            last_slot: None,
            fast_removed: Vec::with_capacity(FAST_QUEUE_RESERVE),
            fast_expired: Vec::with_capacity(FAST_QUEUE_RESERVE),
            local_ports: LocalPorts::new(0, 1, 0, fullnat::DEFAULT_PORTS),
        }
    }

    /// Makes this the table of worker `worker` of `workers` (whose [`owner_of`] seed is
    /// `seed`) for FullNAT: it then hands out only the local ports whose replies reach that
    /// worker. Call it before the first FullNAT connection (a table alone is worker 0 of 1).
    pub fn set_worker(&mut self, worker: usize, workers: usize, seed: u64) {
        self.local_ports = LocalPorts::new(worker, workers, seed, fullnat::DEFAULT_PORTS);
    }

    /// Prepares the local-port pool of `addr` (a hash per port: call it when the
    /// configuration changes, so that the first connection does not pay for it).
    pub fn add_local_addr(&mut self, addr: A) {
        self.local_ports.add_addr(addr);
    }

    /// A free local address and port among `addrs` (of this family, or `IpAddr`s of which
    /// the other family's are skipped) for a new FullNAT connection; `None` when this worker
    /// has none left (the flow is refused, never given a live port).
    #[inline]
    pub fn take_local_port<T: Copy + Into<std::net::IpAddr>>(
        &mut self,
        addrs: &[T],
    ) -> Option<(A, u16)> {
        self.local_ports.take_ip(addrs)
    }

    /// Gives back a port [`ConnTable::take_local_port`] gave for a connection that was not
    /// inserted after all (removals give theirs back themselves).
    pub fn give_back_local_port(&mut self, addr: A, port: u16) {
        self.local_ports.give_back(addr, port);
    }

    /// Free local ports of `addr` for this worker.
    pub fn free_local_ports(&self, addr: A) -> usize {
        self.local_ports.free(addr)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether every slot is taken (an insert then has to evict a half-open entry).
    pub fn is_full(&self) -> bool {
        self.len >= self.capacity
    }

    /// Most half-open entries at once.
    pub fn half_open_limit(&self) -> usize {
        self.half_open.limit
    }

    /// Live entries of service `id`.
    pub fn service_len(&self, id: ServiceId) -> u32 {
        self.per_service.get(id as usize).copied().unwrap_or(0)
    }

    /// Bytes the table holds on the heap, all reserved by [`ConnTable::with_limits`]: the
    /// slab, the free list, the two indexes, the half-open FIFO and the per-service counts.
    pub fn allocated_bytes(&self) -> usize {
        self.slab.allocated_bytes()
            + self.free.capacity() * std::mem::size_of::<Slot>()
            + self.by_client.allocated_bytes()
            + self.by_real.allocated_bytes()
            + self.half_open.ring.capacity() * std::mem::size_of::<Record>()
            + self.per_service.len() * std::mem::size_of::<u32>()
            + self.fast_removed.capacity() * std::mem::size_of::<Conn<A>>()
            + self.fast_expired.capacity() * std::mem::size_of::<Record>()
    }

    /// Whether `record` still designates a live half-open entry.
    #[inline]
    fn is_half_open(&self, record: Record) -> bool {
        let entry = &self.slab[record.slot as usize];
        entry.live && entry.generation == record.generation && entry.conn.is_half_open()
    }

    /// Makes room for a new entry: when the table is full, evicts the oldest half-open entry
    /// ([`EvictReason::TableFull`]). False when the table stays full (the flow is refused).
    #[inline]
    pub fn make_room(&mut self, stats: &WorkerStats) -> bool {
        if !self.is_full() {
            return true;
        }
        for _ in 0..EVICT_SCAN {
            let Some(record) = self.half_open.pop() else {
                return false;
            };
            if self.is_half_open(record) {
                self.evict(record.slot, EvictReason::TableFull, stats);
                return true;
            }
        }
        false
    }

    /// Evicts the oldest half-open entry of `service` among the [`EVICT_SCAN`] oldest records
    /// ([`EvictReason::ServiceLimit`]); false if there is none. Its record stays behind, stale.
    #[inline]
    pub fn evict_half_open_of(&mut self, service: ServiceId, stats: &WorkerStats) -> bool {
        for i in 0..EVICT_SCAN {
            let Some(record) = self.half_open.get(i) else {
                return false;
            };
            if self.is_half_open(record) && self.slab[record.slot as usize].conn.service == service
            {
                self.evict(record.slot, EvictReason::ServiceLimit, stats);
                return true;
            }
        }
        false
    }

    fn evict(&mut self, slot: Slot, reason: EvictReason, stats: &WorkerStats) {
        self.remove(slot, stats);
        stats.count_eviction(reason);
    }

    /// The hash of `key` in the index of `direction` (keyed per table): what
    /// [`ConnTable::prefetch`] and [`ConnTable::lookup_hashed`] take. The reply index hashes
    /// the client's endpoint alone (the reply tuple's destination), so that a new flow's
    /// reply bucket is known before the scheduler picks its real server, and a batch can
    /// prefetch it ([`ConnTable::prefetch_insert`]). Keys are still compared whole; entries
    /// sharing a client endpoint (one source port to several virtual services) share a bucket.
    #[inline]
    pub fn hash(&self, key: &FlowKey<A>, direction: Direction) -> u64 {
        match direction {
            Direction::Inbound => A::tuple_hash(
                &self.hasher,
                key.proto,
                key.src,
                key.src_port,
                key.dst,
                key.dst_port,
            ),
            Direction::Outbound => self.client_hash(key.proto, key.dst, key.dst_port),
        }
    }

    /// The reply index's hash of a client endpoint (see [`ConnTable::hash`]).
    #[inline]
    fn client_hash(&self, proto: u8, addr: A, port: u16) -> u64 {
        A::endpoint_hash(&self.hasher, proto, addr, port)
    }

    #[inline]
    fn index(&self, direction: Direction) -> &Index {
        match direction {
            Direction::Inbound => &self.by_client,
            Direction::Outbound => &self.by_real,
        }
    }

    /// Whether a batch should prefetch before its lookups ([`ConnTable::prefetch`],
    /// [`ConnTable::prefetch_entry`]): only once the live entries and their buckets outgrow
    /// the core's L2 cache ([`PREFETCH_MIN_ENTRIES`]). Below that every line is already in
    /// cache and the stages would only add instructions.
    #[inline]
    pub fn worth_prefetching(&self) -> bool {
        self.len >= self.prefetch_min_entries
    }

    /// Sets the live entries from which [`ConnTable::worth_prefetching`] holds (default
    /// [`PREFETCH_MIN_ENTRIES`]); tests set 0 to run the prefetch stages on small tables.
    pub fn set_prefetch_min_entries(&mut self, entries: usize) {
        self.prefetch_min_entries = entries;
    }

    /// Batch stage 1: asks the CPU for the index bucket a lookup of `hash` in `direction` will
    /// read. A hint: no effect on results.
    #[inline]
    pub fn prefetch(&self, hash: u64, direction: Direction) {
        self.index(direction).prefetch(hash);
    }

    /// Batch stage 2, once the bucket had time to arrive: asks the CPU for the slab entry a
    /// lookup of `hash` in `direction` will most likely compare (the first whose tag matches).
    /// False when the home bucket holds no candidate: most likely a new flow. A hint: no
    /// effect on results.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64, direction: Direction) -> bool {
        match self.index(direction).candidate(hash) {
            Some(slot) => {
                self.prefetch_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Batch stage 2 for the `nth` likely new flow of a batch (0 for the first), arrived with
    /// `inbound_key`: asks the CPU for what its insert will touch: its reply bucket, the free
    /// slot it will take and, where half-open entries are at their limit, the index buckets of
    /// the oldest half-open entry it will evict. A hint: no effect on results.
    #[inline]
    pub fn prefetch_insert(&self, nth: usize, inbound_key: &FlowKey<A>) {
        self.by_real.prefetch(self.client_hash(
            inbound_key.proto,
            inbound_key.src,
            inbound_key.src_port,
        ));
        if let Some(&slot) = self.free.len().checked_sub(nth + 1).map(|i| &self.free[i]) {
            self.prefetch_slot(slot);
        }
        if self.half_open.is_full() || self.is_full() {
            if let Some(record) = self.half_open.get(nth) {
                // Its entry is read now (the FIFO is in arrival order, so these are near each
                // other), to prefetch the two buckets its removal will write.
                let entry = &self.slab[record.slot as usize];
                if entry.live && entry.generation == record.generation {
                    for direction in [Direction::Inbound, Direction::Outbound] {
                        let hash = self.hash(&entry.conn.key(direction), direction);
                        self.index(direction).prefetch(hash);
                    }
                }
            }
        }
    }

    #[inline]
    fn prefetch_slot(&self, slot: Slot) {
        if let Some(entry) = self.slab.get(slot as usize) {
            // An entry may straddle two lines: ask for both ends.
            prefetch(entry);
            prefetch(
                (entry as *const Entry<A>)
                    .cast::<u8>()
                    .wrapping_add(std::mem::size_of::<Entry<A>>() - 1),
            );
        }
    }

    /// The live entry indexed under `key` in `direction` (inbound tuple for
    /// [`Direction::Inbound`], reply tuple for [`Direction::Outbound`]). An expired entry is
    /// removed and reported as absent. Callers may change an entry's state and expiry, never
    /// its addresses or ports (the indexes hold it under them).
    #[inline]
    pub fn lookup(
        &mut self,
        key: &FlowKey<A>,
        direction: Direction,
        now_ms: u64,
        stats: &WorkerStats,
    ) -> Option<&mut Conn<A>> {
        let hash = self.hash(key, direction);
        self.lookup_hashed(key, hash, direction, now_ms, stats)
    }

    /// [`ConnTable::lookup`] on behalf of a packet that is not one of the entry's own (an ICMP
    /// error quoting one of them): the entry found is not the one [`ConnTable::take_last`]
    /// reports, so the error does not count as one of its packets on the fast path's account.
    pub fn lookup_quoted(
        &mut self,
        key: &FlowKey<A>,
        direction: Direction,
        now_ms: u64,
        stats: &WorkerStats,
    ) -> Option<Conn<A>> {
        let last = self.last_slot;
        let conn = self.lookup(key, direction, now_ms, stats).copied();
        self.last_slot = last;
        conn
    }

    /// [`ConnTable::lookup`] of a key already hashed by [`ConnTable::hash`] (of this table:
    /// another table's hash finds nothing).
    #[inline]
    pub fn lookup_hashed(
        &mut self,
        key: &FlowKey<A>,
        hash: u64,
        direction: Direction,
        now_ms: u64,
        stats: &WorkerStats,
    ) -> Option<&mut Conn<A>> {
        let slab = &self.slab;
        let slot = self
            .index(direction)
            .find(hash, |s| slab[s as usize].conn.key(direction) == *key)?;
        let entry = &self.slab[slot as usize];
        if entry.conn.expires_ms <= now_ms && entry.fast != FastState::Installed {
            self.remove(slot, stats);
            return None;
        }
        self.last_slot = Some(slot);
        Some(&mut self.slab[slot as usize].conn)
    }

    /// Adds a new connection (its `state` and `expires_ms` as the caller set them) and counts
    /// it, evicting a half-open entry if it needs the room ([`ConnTable::make_room`]) or is
    /// half-open itself and the half-open FIFO is full. Fails when the table is full of
    /// entries that may not be evicted.
    pub fn insert(
        &mut self,
        conn: Conn<A>,
        stats: &WorkerStats,
    ) -> Result<&mut Conn<A>, InsertError> {
        if !self.make_room(stats) {
            return Err(InsertError::Full);
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                let entry = &mut self.slab[slot as usize];
                *entry = Entry {
                    conn,
                    live: true,
                    fast: FastState::Off,
                    generation: entry.generation.wrapping_add(1),
                };
                slot
            }
            None => {
                self.slab.push(Entry {
                    conn,
                    live: true,
                    fast: FastState::Off,
                    generation: 0,
                });
                (self.slab.len() - 1) as Slot
            }
        };
        self.len += 1;
        stats.conns.add(1);
        if let Some(n) = self.per_service.get_mut(conn.service as usize) {
            *n += 1;
        }
        if let Some(real) = stats.real(conn.real) {
            if conn.is_active() {
                real.active.add(1);
            } else {
                real.inactive.add(1);
            }
        }
        // A stale entry under the same key (e.g. expired, not yet swept) is replaced.
        for direction in [Direction::Inbound, Direction::Outbound] {
            let key = conn.key(direction);
            let hash = self.hash(&key, direction);
            let slab = &self.slab;
            let same_key = |s: Slot| slab[s as usize].conn.key(direction) == key;
            let index = match direction {
                Direction::Inbound => &mut self.by_client,
                Direction::Outbound => &mut self.by_real,
            };
            if let Some(old) = index.insert(hash, slot, same_key) {
                self.remove(old, stats);
            }
        }
        if conn.is_half_open() {
            if self.half_open.is_full() {
                if let Some(oldest) = self.half_open.pop() {
                    if self.is_half_open(oldest) {
                        self.evict(oldest.slot, EvictReason::HalfOpenLimit, stats);
                    }
                }
            }
            let generation = self.slab[slot as usize].generation;
            self.half_open.push(Record { slot, generation });
        }
        self.last_slot = Some(slot);
        Ok(&mut self.slab[slot as usize].conn)
    }

    /// Applies a segment to a TCP entry's state (keeping IPVS's active/inactive counts right)
    /// and refreshes its timeout; for UDP only the timeout is refreshed.
    #[inline]
    pub fn touch(
        conn: &mut Conn<A>,
        direction: Direction,
        tcp_flags: u8,
        timeouts: &Timeouts,
        now_ms: u64,
        stats: &WorkerStats,
    ) {
        if conn.proto == PROTO_TCP {
            let was_active = conn.is_active();
            conn.state =
                tcp_state::next_state(conn.state, direction, tcp_flags, conn.method.input_only());
            let active = conn.is_active();
            if was_active != active {
                if let Some(real) = stats.real(conn.real) {
                    let d = if active { 1 } else { -1 };
                    real.active.add(d);
                    real.inactive.add(-d);
                }
            }
        }
        conn.expires_ms = now_ms + u64::from(conn.timeout_secs(timeouts)) * 1000;
    }

    /// Slots the slab has used (live or free): what a whole expiry sweep visits.
    pub fn slots(&self) -> usize {
        self.slab.len()
    }

    /// Reclaims expired entries among the next `budget` slots; returns how many it removed.
    pub fn expire(&mut self, now_ms: u64, budget: usize, stats: &WorkerStats) -> usize {
        let n = self.slab.len();
        if n == 0 {
            return 0;
        }
        let mut removed = 0;
        for _ in 0..budget.min(n) {
            self.sweep_cursor = (self.sweep_cursor + 1) % n;
            let entry = &self.slab[self.sweep_cursor];
            if entry.live && entry.conn.expires_ms <= now_ms {
                if entry.fast == FastState::Installed {
                    self.fast_expired.push(Record {
                        slot: self.sweep_cursor as Slot,
                        generation: entry.generation,
                    });
                    continue;
                }
                self.remove(self.sweep_cursor as Slot, stats);
                removed += 1;
            }
        }
        removed
    }

    /// The entry the last lookup found (but [`ConnTable::lookup_quoted`]) or the last insert
    /// made, and its fast-path state, once (the worker's fast-path bookkeeping after a
    /// forwarded packet).
    #[inline]
    pub fn take_last(&mut self) -> Option<(&Conn<A>, &mut FastState)> {
        let slot = self.last_slot.take()?;
        let entry = &mut self.slab[slot as usize];
        entry.live.then_some((&entry.conn, &mut entry.fast))
    }

    /// The next installed entry removed since the last call (its map entries must go).
    #[inline]
    pub fn next_fast_removed(&mut self) -> Option<Conn<A>> {
        self.fast_removed.pop()
    }

    /// The next installed entry the sweep found past its own expiry (see
    /// [`ConnTable::settle_fast`]), if it is still that entry and installed.
    pub fn next_fast_expired(&mut self) -> Option<(FastExpired, Conn<A>)> {
        while let Some(record) = self.fast_expired.pop() {
            let entry = &self.slab[record.slot as usize];
            if entry.live
                && entry.generation == record.generation
                && entry.fast == FastState::Installed
            {
                return Some((FastExpired(record), entry.conn));
            }
        }
        None
    }

    /// Settles an installed entry past its own expiry: `last_seen_ms` is when the fast path
    /// last forwarded one of its packets (`None`: never, or not installed after all). It lives
    /// on for its timeout from the later of that and its own last packet, or is removed.
    pub fn settle_fast(
        &mut self,
        expired: FastExpired,
        last_seen_ms: Option<u64>,
        timeouts: &Timeouts,
        now_ms: u64,
        stats: &WorkerStats,
    ) {
        let record = expired.0;
        let entry = &mut self.slab[record.slot as usize];
        if !entry.live || entry.generation != record.generation {
            return;
        }
        let timeout_ms = u64::from(entry.conn.timeout_secs(timeouts)) * 1000;
        if let Some(seen) = last_seen_ms {
            let expires = seen.saturating_add(timeout_ms).max(entry.conn.expires_ms);
            if expires > now_ms {
                entry.conn.expires_ms = expires;
                return;
            }
        }
        self.remove(record.slot, stats);
    }

    /// Calls `f` on each installed entry among at most `budget` slots from `*cursor`, which it
    /// advances; returns true once the cursor has passed the last slot.
    pub fn for_each_installed(
        &mut self,
        cursor: &mut usize,
        budget: usize,
        mut f: impl FnMut(&Conn<A>, &mut FastState),
    ) -> bool {
        let end = self.slab.len().min(cursor.saturating_add(budget));
        for entry in &mut self.slab[*cursor..end] {
            if entry.live && entry.fast == FastState::Installed {
                f(&entry.conn, &mut entry.fast);
            }
        }
        *cursor = end;
        end >= self.slab.len()
    }

    /// Every live connection (for listings; not for the hot path).
    pub fn iter(&self) -> impl Iterator<Item = &Conn<A>> {
        self.slab.iter().filter(|e| e.live).map(|e| &e.conn)
    }

    /// Takes a live slot out of whichever indexes hold it (an insert may already have replaced
    /// it in one) and frees it.
    fn remove(&mut self, slot: Slot, stats: &WorkerStats) {
        let entry = &self.slab[slot as usize];
        if !entry.live {
            return;
        }
        let conn = entry.conn;
        for direction in [Direction::Inbound, Direction::Outbound] {
            let hash = self.hash(&conn.key(direction), direction);
            match direction {
                Direction::Inbound => self.by_client.remove(hash, slot),
                Direction::Outbound => self.by_real.remove(hash, slot),
            };
        }
        if self.slab[slot as usize].fast == FastState::Installed {
            self.fast_removed.push(conn);
        }
        if conn.method == Method::FullNat {
            self.local_ports.give_back(conn.laddr, conn.lport);
        }
        self.slab[slot as usize].live = false;
        self.free.push(slot);
        self.len -= 1;
        stats.conns.add(-1);
        if let Some(n) = self.per_service.get_mut(conn.service as usize) {
            *n -= 1;
        }
        if let Some(real) = stats.real(conn.real) {
            if conn.is_active() {
                real.active.add(-1);
            } else {
                real.inactive.add(-1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::testing::{for_both_families, TestAddr};
    use crate::snapshot::PROTO_UDP;
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use std::net::Ipv6Addr;

    // Every test below but the sizes and the IPv4 hash's is generic over the family and runs
    // once per family (`tests::<name>::v4`, `tests::<name>::v6`).
    for_both_families!(
        both_directions_find_the_same_entry,
        one_client_endpoint_to_many_services_keeps_its_replies_apart,
        installed_entries_are_settled_by_the_worker_not_expired_by_the_table,
        a_stale_report_of_a_reused_slot_settles_nothing,
        full_table_refuses_new_flows_and_keeps_established_ones,
        full_table_evicts_the_oldest_half_open_entry,
        a_handshake_has_until_limit_newer_syns_arrive,
        a_reused_slot_is_not_mistaken_for_its_old_entry,
        a_service_at_its_limit_evicts_its_own_half_open_entries,
        state_changes_move_active_and_inactive_counts,
        expired_entries_vanish_on_lookup,
        an_insert_replaces_a_stale_entry_under_either_tuple,
        prefetched_and_hashed_lookups_find_what_lookup_finds,
        hashes_differ_per_field,
        owner_is_stable_and_spreads,
        a_fullnat_entry_takes_a_port_its_replies_reach_and_gives_it_back,
        only_an_entrys_own_packets_are_reported_to_the_fast_path,
    );

    fn conn<A: TestAddr>(cport: u16, proto: u8) -> Conn<A> {
        Conn {
            proto,
            caddr: A::test_addr(18, 201),
            cport,
            vaddr: A::test_addr(18, 129),
            vport: 80,
            daddr: A::test_addr(19, 148),
            dport: 80,
            service: 0,
            real: 1,
            method: Method::Masq,
            laddr: A::test_addr(18, 201),
            lport: cport,
            state: TcpState::SynRecv,
            expires_ms: 60_000,
        }
    }

    /// [`ConnTable::with_capacity`] of any family.
    fn table<A: TestAddr>(capacity: usize) -> ConnTable<A> {
        ConnTable::new(capacity, capacity / 2)
    }

    fn both_directions_find_the_same_entry<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(4);
        let c = conn(40000, PROTO_TCP);
        t.insert(c, &stats).unwrap();
        assert_eq!(
            t.lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                .copied(),
            Some(c)
        );
        assert_eq!(
            t.lookup(&c.reply_key(), Direction::Outbound, 0, &stats)
                .copied(),
            Some(c)
        );
        // The tuples are not interchangeable.
        assert!(t
            .lookup(&c.reply_key(), Direction::Inbound, 0, &stats)
            .is_none());
        assert_eq!(stats.real(1).unwrap().inactive.get(), 1);
    }

    fn one_client_endpoint_to_many_services_keeps_its_replies_apart<A: TestAddr>() {
        // The reply index hashes the client endpoint alone: these all share one bucket (and
        // overflow it), and replies must still find each its own entry, before and after
        // removals.
        let stats = WorkerStats::default();
        let mut t = table::<A>(64);
        let conns: Vec<Conn<A>> = (0..25u8)
            .map(|i| Conn {
                vport: 8000 + u16::from(i),
                daddr: A::test_addr(19, 10 + i % 3),
                dport: 9000 + u16::from(i),
                real: u32::from(i % 3) + 1,
                ..conn(40000, PROTO_TCP)
            })
            .collect();
        for c in &conns {
            t.insert(*c, &stats).unwrap();
        }
        let reply_hash = t.hash(&conns[0].reply_key(), Direction::Outbound);
        assert!(conns
            .iter()
            .all(|c| t.hash(&c.reply_key(), Direction::Outbound) == reply_hash));
        for (i, c) in conns.iter().enumerate() {
            if i % 2 == 0 {
                let slot = t
                    .by_client
                    .find(t.hash(&c.inbound_key(), Direction::Inbound), |s| {
                        t.slab[s as usize].conn == *c
                    });
                t.remove(slot.expect("inserted"), &stats);
            }
        }
        for (i, c) in conns.iter().enumerate() {
            let found = t
                .lookup(&c.reply_key(), Direction::Outbound, 0, &stats)
                .copied();
            assert_eq!(found, (i % 2 == 1).then_some(*c), "connection {i}");
        }
    }

    /// The slab's entry size is the memory budget's (module doc, `conntrack_memory`): a
    /// field more must be paid for there.
    #[test]
    fn a_connection_takes_48_bytes_and_its_slot_56() {
        assert_eq!(std::mem::size_of::<Conn>(), 48);
        assert_eq!(std::mem::size_of::<Entry<Ipv4Addr>>(), 56);
    }

    /// An IPv6 table's entries (module doc, *Address families*).
    #[test]
    fn an_ipv6_connection_takes_96_bytes_and_its_slot_104() {
        assert_eq!(std::mem::size_of::<Conn<Ipv6Addr>>(), 96);
        assert_eq!(std::mem::size_of::<Entry<Ipv6Addr>>(), 104);
    }

    fn established<A: TestAddr>(cport: u16) -> Conn<A> {
        Conn {
            state: TcpState::Established,
            ..conn(cport, PROTO_TCP)
        }
    }

    fn present<A: TestAddr>(t: &mut ConnTable<A>, c: &Conn<A>, stats: &WorkerStats) -> bool {
        t.lookup(&c.inbound_key(), Direction::Inbound, 0, stats)
            .is_some()
    }

    fn evictions(stats: &WorkerStats, reason: EvictReason) -> u64 {
        stats.evictions[reason as usize].get()
    }

    /// Inserts `c` (expiring at `expires_ms`) and marks it installed on the fast path.
    fn install<A: TestAddr>(
        t: &mut ConnTable<A>,
        c: Conn<A>,
        expires_ms: u64,
        stats: &WorkerStats,
    ) {
        t.insert(Conn { expires_ms, ..c }, stats).unwrap();
        let (_, state) = t.take_last().unwrap();
        *state = FastState::Installed;
    }

    /// `take_last` reports the entry of the last lookup or insert once, but not one an ICMP
    /// error found (`lookup_quoted`), which leaves the report as it was.
    fn only_an_entrys_own_packets_are_reported_to_the_fast_path<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(8);
        let (a, b) = (established(1), established(2));
        t.insert(a, &stats).unwrap();
        t.insert(b, &stats).unwrap();
        assert_eq!(t.take_last().map(|(c, _)| c.cport), Some(2));
        assert!(t.take_last().is_none(), "reported once");
        let quoted = t.lookup_quoted(&a.reply_key(), Direction::Outbound, 0, &stats);
        assert_eq!(quoted.map(|c| c.cport), Some(1));
        assert!(
            t.take_last().is_none(),
            "an ICMP error's lookup is not reported"
        );
        assert!(present(&mut t, &a, &stats));
        t.lookup_quoted(&b.inbound_key(), Direction::Inbound, 0, &stats);
        assert_eq!(t.take_last().map(|(c, _)| c.cport), Some(1));
    }

    fn installed_entries_are_settled_by_the_worker_not_expired_by_the_table<A: TestAddr>() {
        let stats = WorkerStats::default();
        let timeouts = Timeouts::default();
        let mut t = table::<A>(8);
        let (fast, slow) = (established(1), established(2));
        install(&mut t, fast, 1_000, &stats);
        t.insert(
            Conn {
                expires_ms: 1_000,
                ..slow
            },
            &stats,
        )
        .unwrap();
        // Past their own expiry: a lookup still finds the installed one only.
        let now = 5_000;
        assert!(t
            .lookup(&fast.inbound_key(), Direction::Inbound, now, &stats)
            .is_some());
        assert!(t
            .lookup(&slow.inbound_key(), Direction::Inbound, now, &stats)
            .is_none());
        // The sweep reports it instead of removing it.
        assert_eq!(t.expire(now, 8, &stats), 0);
        let (expired, conn) = t.next_fast_expired().unwrap();
        assert_eq!(conn.cport, 1);
        assert!(t.next_fast_expired().is_none());
        // Seen by the fast path 1 s ago: lives on for the ESTABLISHED timeout from then.
        t.settle_fast(expired, Some(now - 1_000), &timeouts, now, &stats);
        let left = t
            .lookup(&fast.inbound_key(), Direction::Inbound, now, &stats)
            .unwrap()
            .expires_ms;
        assert_eq!(left, now - 1_000 + u64::from(timeouts.tcp) * 1000);
        assert!(t.next_fast_removed().is_none());

        // Not seen since: removed, and its map entries queued for removal.
        let later = left + 1;
        t.expire(later, 8, &stats);
        let (expired, _) = t.next_fast_expired().unwrap();
        t.settle_fast(expired, None, &timeouts, later, &stats);
        assert_eq!(t.len(), 0);
        assert_eq!(t.next_fast_removed().map(|c| c.cport), Some(1));
        assert!(t.next_fast_removed().is_none());
    }

    fn a_stale_report_of_a_reused_slot_settles_nothing<A: TestAddr>() {
        let stats = WorkerStats::default();
        let timeouts = Timeouts::default();
        let mut t = table::<A>(1);
        install(&mut t, established(1), 1_000, &stats);
        t.expire(5_000, 1, &stats);
        // The entry goes (replaced by another under the same slot) before it is settled.
        let report = t.fast_expired.last().copied().unwrap();
        let slot = report.slot;
        t.remove(slot, &stats);
        assert_eq!(t.next_fast_removed().map(|c| c.cport), Some(1));
        t.insert(established(2), &stats).unwrap();
        assert!(t.next_fast_expired().is_none(), "a report of a gone entry");
        t.settle_fast(FastExpired(report), None, &timeouts, 5_000, &stats);
        assert!(present(&mut t, &established(2), &stats));
    }

    fn full_table_refuses_new_flows_and_keeps_established_ones<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(2);
        t.insert(established(1), &stats).unwrap();
        t.insert(established(2), &stats).unwrap();
        assert!(!t.make_room(&stats));
        assert_eq!(
            t.insert(conn(3, PROTO_TCP), &stats).err(),
            Some(InsertError::Full)
        );
        assert!(present(&mut t, &established(1), &stats));
        assert_eq!(t.len(), 2);
        assert_eq!(stats.evictions.iter().map(|c| c.get()).sum::<u64>(), 0);
    }

    fn full_table_evicts_the_oldest_half_open_entry<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = ConnTable::<A>::new(3, 3);
        t.insert(conn(1, PROTO_TCP), &stats).unwrap();
        t.insert(established(2), &stats).unwrap();
        t.insert(conn(3, PROTO_TCP), &stats).unwrap();
        t.insert(conn(4, PROTO_UDP), &stats).unwrap();
        // Full; not refused: port 1 is the oldest half-open entry, so port 4 takes its place.
        assert_eq!(t.len(), 3);
        assert!(!present(&mut t, &conn(1, PROTO_TCP), &stats));
        assert!(present(&mut t, &established(2), &stats));
        assert!(present(&mut t, &conn(3, PROTO_TCP), &stats));
        assert_eq!(evictions(&stats, EvictReason::TableFull), 1);
    }

    fn a_handshake_has_until_limit_newer_syns_arrive<A: TestAddr>() {
        let stats = WorkerStats::default();
        let timeouts = Timeouts::default();
        let mut t = ConnTable::<A>::new(100, 4);
        t.insert(conn(1, PROTO_TCP), &stats).unwrap();
        // Port 2 completes its handshake: its record goes stale and never evicts it.
        let e = t.insert(conn(2, PROTO_TCP), &stats).unwrap();
        ConnTable::touch(e, Direction::Inbound, 0x10, &timeouts, 0, &stats);
        for port in 3..=4 {
            t.insert(conn(port, PROTO_TCP), &stats).unwrap();
        }
        assert_eq!(evictions(&stats, EvictReason::HalfOpenLimit), 0);
        // The fifth SYN evicts the first, still half-open; the sixth pops port 2's stale record.
        t.insert(conn(5, PROTO_TCP), &stats).unwrap();
        assert!(!present(&mut t, &conn(1, PROTO_TCP), &stats));
        t.insert(conn(6, PROTO_TCP), &stats).unwrap();
        assert!(present(&mut t, &established(2), &stats));
        assert_eq!(evictions(&stats, EvictReason::HalfOpenLimit), 1);
        assert_eq!(t.len(), 5);
        // A UDP flow is never half-open.
        t.insert(conn(8, PROTO_UDP), &stats).unwrap();
        assert_eq!(t.len(), 6);
    }

    fn a_reused_slot_is_not_mistaken_for_its_old_entry<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = ConnTable::<A>::new(1, 1);
        t.insert(conn(1, PROTO_TCP), &stats).unwrap();
        // Port 1 is evicted (table full); port 2 takes the same slot with a new generation.
        t.insert(conn(2, PROTO_TCP), &stats).unwrap();
        assert_eq!(evictions(&stats, EvictReason::TableFull), 1);
        assert!(present(&mut t, &conn(2, PROTO_TCP), &stats));
        assert_eq!(t.service_len(0), 1);
    }

    fn a_service_at_its_limit_evicts_its_own_half_open_entries<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(100);
        let other = Conn {
            service: 1,
            ..conn(1, PROTO_TCP)
        };
        t.insert(other, &stats).unwrap();
        t.insert(established(2), &stats).unwrap();
        t.insert(conn(3, PROTO_TCP), &stats).unwrap();
        assert_eq!((t.service_len(0), t.service_len(1)), (2, 1));
        assert!(t.evict_half_open_of(0, &stats));
        assert!(!present(&mut t, &conn(3, PROTO_TCP), &stats));
        assert!(present(&mut t, &other, &stats));
        assert!(
            !t.evict_half_open_of(0, &stats),
            "only an established entry is left"
        );
        assert_eq!(evictions(&stats, EvictReason::ServiceLimit), 1);
        assert_eq!((t.service_len(0), t.service_len(1)), (1, 1));
    }

    fn state_changes_move_active_and_inactive_counts<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(2);
        let c = conn(7, PROTO_TCP);
        let timeouts = Timeouts::default();
        let e = t.insert(c, &stats).unwrap();
        ConnTable::touch(e, Direction::Inbound, 0x10, &timeouts, 0, &stats);
        assert_eq!(e.state, TcpState::Established);
        assert_eq!(e.expires_ms, 900_000);
        let real = stats.real(1).unwrap();
        assert_eq!((real.active.get(), real.inactive.get()), (1, 0));
        ConnTable::touch(e, Direction::Inbound, 0x04, &timeouts, 0, &stats);
        assert_eq!((real.active.get(), real.inactive.get()), (0, 1));
        assert_eq!(t.expire(20_000, 10, &stats), 1, "CLOSE lives 10 s");
        assert_eq!(
            (real.active.get(), real.inactive.get(), stats.conns.get()),
            (0, 0, 0)
        );
    }

    fn expired_entries_vanish_on_lookup<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(2);
        let c = conn(9, PROTO_UDP);
        t.insert(c, &stats).unwrap();
        assert!(t
            .lookup(&c.reply_key(), Direction::Outbound, 60_000, &stats)
            .is_none());
        assert!(t.is_empty());
        assert!(t
            .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
            .is_none());
    }

    fn an_insert_replaces_a_stale_entry_under_either_tuple<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(4);
        let old = conn(5, PROTO_TCP);
        t.insert(old, &stats).unwrap();
        // Same client tuple, another real: replaces `old` in both indexes.
        let new = Conn {
            daddr: A::test_addr(19, 137),
            ..old
        };
        t.insert(new, &stats).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(stats.conns.get(), 1);
        assert!(t
            .lookup(&old.reply_key(), Direction::Outbound, 0, &stats)
            .is_none());
        let found = t.lookup(&new.inbound_key(), Direction::Inbound, 0, &stats);
        assert_eq!(found.copied(), Some(new));
        // Same reply tuple, another VIP port: replaces `new` under both tuples as well.
        let other = Conn { vport: 8080, ..new };
        t.insert(other, &stats).unwrap();
        assert_eq!(t.len(), 1);
        assert!(t
            .lookup(&new.inbound_key(), Direction::Inbound, 0, &stats)
            .is_none());
        assert_eq!(
            t.lookup(&other.reply_key(), Direction::Outbound, 0, &stats)
                .copied(),
            Some(other)
        );
        assert_eq!(t.iter().count(), 1);
    }

    fn prefetched_and_hashed_lookups_find_what_lookup_finds<A: TestAddr>() {
        let stats = WorkerStats::default();
        let mut t = table::<A>(64);
        for port in 0..40 {
            t.insert(established(port), &stats).unwrap();
        }
        for port in 0..50 {
            let c = established(port);
            for (key, direction) in [
                (c.inbound_key(), Direction::Inbound),
                (c.reply_key(), Direction::Outbound),
            ] {
                let hash = t.hash(&key, direction);
                t.prefetch(hash, direction);
                // A present key always has a candidate (an absent one has none but for a
                // 16-bit tag collision).
                assert!(t.prefetch_entry(hash, direction) || port >= 40);
                t.prefetch_insert(0, &c.inbound_key());
                let hashed = t.lookup_hashed(&key, hash, direction, 0, &stats).copied();
                assert_eq!(hashed, t.lookup(&key, direction, 0, &stats).copied());
                assert_eq!(hashed.is_some(), port < 40, "port {port}");
            }
        }
        // Another table's hashes are keyed differently.
        let other = table::<A>(64);
        let key = established(1).inbound_key();
        assert_ne!(
            other.hash(&key, Direction::Inbound),
            t.hash(&key, Direction::Inbound)
        );
    }

    /// Each field of a tuple enters its inbound hash; the reply hash takes the destination
    /// endpoint (the client's) alone.
    fn hashes_differ_per_field<A: TestAddr>() {
        let t = table::<A>(1);
        let k = conn::<A>(1, PROTO_TCP).inbound_key();
        let other = A::test_addr(1, 2);
        let variants = [
            FlowKey { proto: 17, ..k },
            FlowKey { src: other, ..k },
            FlowKey { src_port: 2, ..k },
            FlowKey { dst: other, ..k },
            FlowKey { dst_port: 81, ..k },
        ];
        let hash = |k: &FlowKey<A>, d| t.hash(k, d);
        for v in variants {
            assert_ne!(
                hash(&v, Direction::Inbound),
                hash(&k, Direction::Inbound),
                "{v:?}"
            );
        }
        for v in &variants[..3] {
            assert_eq!(
                hash(v, Direction::Outbound) == hash(&k, Direction::Outbound),
                v.proto == k.proto
            );
        }
        for v in &variants[3..] {
            assert_ne!(hash(v, Direction::Outbound), hash(&k, Direction::Outbound));
        }
    }

    /// An IPv4 tuple still hashes as the one 128-bit word it did before the table was
    /// generic (and an endpoint as one 64-bit word), under the same keyed hasher.
    #[test]
    fn ipv4_hashes_are_the_packed_tuple() {
        let packed = |k: &FlowKey| {
            u128::from(k.proto) << 96
                | u128::from(u32::from(k.src)) << 64
                | u128::from(k.src_port) << 48
                | u128::from(u32::from(k.dst)) << 16
                | u128::from(k.dst_port)
        };
        let t = ConnTable::with_capacity(1);
        let c: Conn = conn(40000, PROTO_TCP);
        let k = c.inbound_key();
        assert_eq!(
            t.hash(&k, Direction::Inbound),
            t.hasher.hash_one(packed(&k))
        );
        let r = c.reply_key();
        let endpoint =
            u64::from(r.proto) << 48 | u64::from(u32::from(r.dst)) << 16 | u64::from(r.dst_port);
        assert_eq!(t.hash(&r, Direction::Outbound), t.hasher.hash_one(endpoint));
        // The packing is injective.
        let variants = [
            FlowKey { proto: 17, ..k },
            FlowKey {
                src: Ipv4Addr::new(1, 2, 3, 4),
                ..k
            },
            FlowKey { src_port: 2, ..k },
            FlowKey {
                dst: Ipv4Addr::new(1, 2, 3, 4),
                ..k
            },
            FlowKey { dst_port: 81, ..k },
        ];
        for v in variants {
            assert_ne!(packed(&v), packed(&k), "{v:?}");
        }
    }

    fn owner_is_stable_and_spreads<A: TestAddr>() {
        let a = A::test_addr(18, 201);
        let mut counts = [0usize; 2];
        for port in 1024..3024 {
            let o = owner_of(a, port, 2, 42);
            assert_eq!(o, owner_of(a, port, 2, 42));
            counts[o] += 1;
        }
        assert!(counts[0] > 800 && counts[1] > 800, "{counts:?}");
        assert_eq!(owner_of(a, 1, 1, 42), 0);
    }

    /// FullNAT: each worker's table takes only local ports whose replies (to LIP:lport) reach
    /// it, finds the entry by that reply tuple, and gives the port back when the entry goes.
    fn a_fullnat_entry_takes_a_port_its_replies_reach_and_gives_it_back<A: TestAddr>() {
        let stats = WorkerStats::default();
        let (workers, seed) = (3, 0x5eed);
        let lips = [A::test_addr(19, 160), A::test_addr(19, 161)];
        for worker in 0..workers {
            let mut t = table::<A>(64);
            t.set_worker(worker, workers, seed);
            for lip in lips {
                t.add_local_addr(lip);
            }
            let free =
                |t: &ConnTable<A>| lips.iter().map(|&a| t.free_local_ports(a)).sum::<usize>();
            let before = free(&t);
            assert!(
                before > 20_000,
                "{before} ports of 2 x 64512 for worker {worker}"
            );
            let mut conns = Vec::new();
            for cport in 0..10 {
                let (laddr, lport) = t.take_local_port(&lips).unwrap();
                assert_eq!(owner_of(laddr, lport, workers, seed), worker);
                let c = Conn {
                    method: Method::FullNat,
                    laddr,
                    lport,
                    ..established(cport)
                };
                t.insert(c, &stats).unwrap();
                conns.push(c);
            }
            // A port taken for a flow that was refused after all goes back by hand.
            let (laddr, lport) = t.take_local_port(&lips).unwrap();
            t.give_back_local_port(laddr, lport);
            assert_eq!(free(&t), before - 10);
            for c in &conns {
                let reply = c.reply_key();
                assert_eq!((reply.dst, reply.dst_port), (c.laddr, c.lport));
                assert_eq!(owner_of(reply.dst, reply.dst_port, workers, seed), worker);
                let found = t.lookup(&reply, Direction::Outbound, 0, &stats).copied();
                assert_eq!(found, Some(*c));
            }
            // [`conn`]'s entries expire at 60 s.
            assert_eq!(t.expire(60_000, 64, &stats), 10);
            assert_eq!(free(&t), before);
        }
    }

    /// Churn far beyond capacity: occupancy stays exact, the index never grows, and every
    /// live entry is reachable from both tuples.
    fn churn_keeps_indexes_consistent<A: TestAddr>(
        ops: Vec<(u16, bool)>,
    ) -> Result<(), TestCaseError> {
        let stats = WorkerStats::default();
        let mut t = table::<A>(16);
        let index_cap = (t.by_client.allocated_bytes(), t.by_real.allocated_bytes());
        let mut live = std::collections::HashSet::new();
        for (port, add) in ops {
            let c = established::<A>(port);
            if add {
                if live.contains(&port) {
                    continue;
                }
                if t.insert(c, &stats).is_ok() {
                    live.insert(port);
                } else {
                    prop_assert_eq!(live.len(), 16);
                }
            } else if live.remove(&port) {
                // Expire exactly this one by looking it up after its deadline.
                let e = t
                    .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                    .unwrap();
                e.expires_ms = 0;
                prop_assert!(t
                    .lookup(&c.reply_key(), Direction::Outbound, 1, &stats)
                    .is_none());
            }
            prop_assert_eq!(t.len(), live.len());
            prop_assert_eq!(stats.conns.get(), live.len() as i64);
        }
        for port in &live {
            let c = established::<A>(*port);
            prop_assert!(t
                .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                .is_some());
            prop_assert!(t
                .lookup(&c.reply_key(), Direction::Outbound, 0, &stats)
                .is_some());
        }
        prop_assert_eq!(
            (t.by_client.allocated_bytes(), t.by_real.allocated_bytes()),
            index_cap
        );
        Ok(())
    }

    /// Any mix of SYNs, completed handshakes, resets and expiries, far beyond capacity:
    /// an entry that completed its handshake is never evicted, the half-open entries never
    /// exceed their limit, and nothing allocates.
    fn only_half_open_entries_give_way<A: TestAddr>(
        ops: Vec<(u16, u8)>,
        limit: usize,
    ) -> Result<(), TestCaseError> {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        const RST: u8 = 0x04;
        let stats = WorkerStats::default();
        let timeouts = Timeouts::default();
        let mut t = ConnTable::<A>::new(24, limit);
        let bytes = t.allocated_bytes();
        let capacities = |t: &ConnTable<A>| {
            (
                t.slab.allocated_bytes(),
                t.free.capacity(),
                t.by_client.allocated_bytes(),
                t.by_real.allocated_bytes(),
                t.half_open.ring.capacity(),
            )
        };
        let before = capacities(&t);
        // Ports whose entries completed their handshake, and that we have not removed.
        let mut completed = std::collections::HashSet::new();
        for (port, op) in ops {
            let c = conn::<A>(port, PROTO_TCP);
            let found = t
                .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                .is_some();
            match op {
                // A SYN of a new flow.
                0 if !found => {
                    let syn = Conn {
                        state: TcpState::None,
                        ..c
                    };
                    if let Ok(e) = t.insert(syn, &stats) {
                        ConnTable::touch(e, Direction::Inbound, SYN, &timeouts, 0, &stats);
                    }
                }
                // The client's ACK, or a reset: the entry is no longer half-open.
                1 | 2 if found => {
                    let flags = if op == 1 { ACK } else { RST | ACK };
                    let e = t
                        .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                        .unwrap();
                    if e.state == TcpState::SynRecv && flags == ACK {
                        ConnTable::touch(e, Direction::Inbound, flags, &timeouts, 0, &stats);
                        completed.insert(port);
                    } else if e.state != TcpState::SynRecv {
                        ConnTable::touch(e, Direction::Inbound, flags, &timeouts, 0, &stats);
                    }
                }
                // Expiry.
                3 if found => {
                    let e = t
                        .lookup(&c.inbound_key(), Direction::Inbound, 0, &stats)
                        .unwrap();
                    e.expires_ms = 0;
                    prop_assert!(t
                        .lookup(&c.reply_key(), Direction::Outbound, 1, &stats)
                        .is_none());
                    completed.remove(&port);
                }
                _ => {}
            }
            for port in &completed {
                let c = conn::<A>(*port, PROTO_TCP);
                let e = t.lookup(&c.inbound_key(), Direction::Inbound, 0, &stats);
                prop_assert!(
                    e.is_some_and(|e| !e.is_half_open()),
                    "port {} evicted",
                    port
                );
            }
            let half_open = t.iter().filter(|c| c.is_half_open()).count();
            prop_assert!(
                half_open <= limit,
                "{} half-open, limit {}",
                half_open,
                limit
            );
            prop_assert_eq!(t.len(), t.iter().count());
            prop_assert_eq!(t.service_len(0) as usize, t.len());
            prop_assert_eq!(stats.conns.get(), t.len() as i64);
        }
        prop_assert_eq!(capacities(&t), before);
        prop_assert_eq!(t.allocated_bytes(), bytes);
        Ok(())
    }

    proptest! {
        #[test]
        fn churn_keeps_indexes_consistent_v4(ops in proptest::collection::vec((0u16..64, any::<bool>()), 1..600)) {
            churn_keeps_indexes_consistent::<Ipv4Addr>(ops)?;
        }

        #[test]
        fn churn_keeps_indexes_consistent_v6(ops in proptest::collection::vec((0u16..64, any::<bool>()), 1..600)) {
            churn_keeps_indexes_consistent::<Ipv6Addr>(ops)?;
        }

        #[test]
        fn only_half_open_entries_give_way_v4(
            ops in proptest::collection::vec((0u16..96, 0u8..4), 1..800),
            limit in 1usize..24,
        ) {
            only_half_open_entries_give_way::<Ipv4Addr>(ops, limit)?;
        }

        #[test]
        fn only_half_open_entries_give_way_v6(
            ops in proptest::collection::vec((0u16..96, 0u8..4), 1..800),
            limit in 1usize..24,
        ) {
            only_half_open_entries_give_way::<Ipv6Addr>(ops, limit)?;
        }
    }
}
