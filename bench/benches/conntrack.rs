//! The connection table alone: a lookup that hits, and an insert, in a table holding 1K, 1M and
//! 10M entries; and its memory, in bytes per entry.
//!
//! Entry `j` is a TCP connection 10.x.y.z:40000 -> 198.18.0.129:80 with client address
//! 10.0.0.0 + j (so 16M distinct clients), to real 198.19.0.148 or .137. Each size's table is
//! built and filled once, outside the timing (at 10M that takes seconds and about 0.8 GiB).
//!
//! - `lookup-hit/N`: the inbound tuple of a present entry, visiting the entries with a large
//!   stride (modulo N), so that at 1M and 10M nearly every lookup misses the caches, as a
//!   worker serving that many flows would, one lookup at a time (each waits for its misses).
//! - `lookup-batch/N`: the same lookups in batches of 64 as a worker stages them: hash every
//!   key and prefetch its bucket (`ConnTable::prefetch`), then prefetch every candidate entry
//!   (`prefetch_entry`), then `lookup_hashed` each; so the misses of a batch overlap. Issue
//!   10's target: at 10M within 3x of at 1K.
//! - `insert/N`: a new entry into a table holding N; after each 1024 inserts the new entries
//!   are removed again, untimed, so the table stays at N.
//!
//! Before timing each size it prints `ConnTable::allocated_bytes` and the bytes per entry
//! (issue 5's target: 10M entries in at most 1 GiB; `dataplane/tests/conntrack_memory.rs`
//! checks the figure against the allocator).
//!
//! Run with `cargo bench -p xvs-bench --bench conntrack` (`-- --warm-up-time 1
//! --measurement-time 2` for a short run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use xvs_dataplane::conntrack::{Conn, ConnTable, Direction, TcpState};
use xvs_dataplane::snapshot::PROTO_TCP;
use xvs_dataplane::stats::WorkerStats;

const SIZES: [usize; 3] = [1_000, 1_000_000, 10_000_000];
/// Lookups per batch in `lookup-batch`, as a worker's receive batch.
const BATCH: usize = 64;
/// Inserts per timed chunk, removed again before the next one.
const CHUNK: usize = 1024;
/// A prime larger than every size, hence coprime to each: the lookup order's stride.
const STRIDE: usize = 2_654_435_761;
/// The expiry of the entries the insert bench adds: before the removal pass's clock.
const INSERTED_EXPIRES_MS: u64 = 1;

fn conn(j: usize) -> Conn {
    Conn {
        proto: PROTO_TCP,
        caddr: Ipv4Addr::from(0x0a00_0000 + j as u32),
        cport: 40_000,
        vaddr: Ipv4Addr::new(198, 18, 0, 129),
        vport: 80,
        daddr: if j % 2 == 0 {
            Ipv4Addr::new(198, 19, 0, 148)
        } else {
            Ipv4Addr::new(198, 19, 0, 137)
        },
        dport: 80,
        service: 0,
        real: (j % 2) as u32,
        method: xvs_dataplane::snapshot::Method::Masq,
        laddr: Ipv4Addr::from(0x0a00_0000 + j as u32),
        lport: 40_000,
        state: TcpState::Established,
        expires_ms: u64::MAX,
    }
}

/// A table holding entries `0..n`, with room for a chunk of inserts more.
fn filled(n: usize, stats: &WorkerStats) -> ConnTable {
    let start = Instant::now();
    let mut t = ConnTable::with_capacity(n + CHUNK);
    for j in 0..n {
        t.insert(conn(j), stats).expect("room for every entry");
    }
    let bytes = t.allocated_bytes();
    eprintln!(
        "conntrack: {n} entries (capacity {}): {bytes} bytes allocated ({:.3} GiB), {:.1} bytes \
         per entry of capacity; filled in {:.1?}",
        t.capacity(),
        bytes as f64 / (1u64 << 30) as f64,
        bytes as f64 / t.capacity() as f64,
        start.elapsed()
    );
    t
}

fn conntrack(c: &mut Criterion) {
    let stats = WorkerStats::default();
    let mut group = c.benchmark_group("conntrack");
    group.throughput(Throughput::Elements(1));
    for n in SIZES {
        let mut table = filled(n, &stats);
        let stride = STRIDE % n;
        let mut j = 0usize;
        group.bench_function(BenchmarkId::new("lookup-hit", n), |b| {
            b.iter(|| {
                j += stride;
                if j >= n {
                    j -= n;
                }
                let key = conn(j).inbound_key();
                let found = table.lookup(black_box(&key), Direction::Inbound, 0, &stats);
                assert!(found.is_some());
                black_box(found.map(|c| c.real))
            })
        });
        let mut j = 0usize;
        group.bench_function(BenchmarkId::new("lookup-batch", n), |b| {
            b.iter_custom(|iters| {
                let mut keys = [conn(0).inbound_key(); BATCH];
                let mut hashes = [0u64; BATCH];
                let mut left = iters as usize;
                let start = Instant::now();
                while left > 0 {
                    let m = left.min(BATCH);
                    left -= m;
                    for (key, hash) in keys[..m].iter_mut().zip(&mut hashes[..m]) {
                        j += stride;
                        if j >= n {
                            j -= n;
                        }
                        *key = conn(j).inbound_key();
                        *hash = table.hash(black_box(key), Direction::Inbound);
                        table.prefetch(*hash, Direction::Inbound);
                    }
                    for hash in &hashes[..m] {
                        black_box(table.prefetch_entry(*hash, Direction::Inbound));
                    }
                    for (key, hash) in keys[..m].iter().zip(&hashes[..m]) {
                        let found = table.lookup_hashed(key, *hash, Direction::Inbound, 0, &stats);
                        assert!(found.is_some());
                        black_box(found.map(|c| c.real));
                    }
                }
                start.elapsed()
            })
        });
        group.bench_function(BenchmarkId::new("insert", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let m = left.min(CHUNK);
                    left -= m;
                    let start = Instant::now();
                    for k in 0..m {
                        let mut new = conn(n + k);
                        new.expires_ms = INSERTED_EXPIRES_MS;
                        black_box(table.insert(black_box(new), &stats).is_ok());
                    }
                    total += start.elapsed();
                    // A lookup after its deadline removes an entry.
                    for k in 0..m {
                        let key = conn(n + k).inbound_key();
                        let gone = table.lookup(&key, Direction::Inbound, 2, &stats);
                        assert!(gone.is_none());
                    }
                    assert_eq!(table.len(), n);
                }
                total
            })
        });
        drop(table);
    }
    group.finish();
}

criterion_group!(benches, conntrack);
criterion_main!(benches);
