//! ns per [`Scheduler::pick`] for every policy, with 2, 16 and 1000 real servers.
//!
//! Each group is one policy (its ipvsadm name) and each parameter a server count. Servers sit in
//! 198.19.0.0/16 with weights spread over 1..=10 and varied live connection counts (every
//! server has at least one active connection, so nq scans the whole list rather than stopping
//! at an idle server). Flows cycle through 4096 clients in 198.18.0.0/16 with varied ports, and
//! a few virtual addresses in 198.18.255.0/28, so that sh, mh (both with their `-port` flag)
//! and dh hash into many buckets rather than one. Tables (wrr's marks, sh/dh buckets, the
//! Maglev table) are built before timing: only picks are measured.
//!
//! Two further groups, `sh-fallback` and `mh-fallback`, quiesce every fourth server (weight 0 at
//! pick time, tables built with the positive weights) so that about a quarter of the picks take
//! the fallback walk.
//!
//! A last group, `wlc-4-workers`, runs the default policy against a load shaped like the
//! dataplane's `ServiceLoad`: each count is the sum of 4 workers' relaxed atomic counters (read
//! here from one thread, so without the cache-line traffic of live workers).
//!
//! Run with `cargo bench -p xvs-scheduler --bench picks` (`-- --quick` for a short run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::sync::atomic::{AtomicI64, Ordering};
use xvs_scheduler::{Dest, Flags, Flow, Load, Scheduler, SchedulerKind};

/// Server counts: the smallest pool, a typical one, and a large one.
const SIZES: [usize; 3] = [2, 16, 1000];
/// Distinct flows per run (a power of two, so cycling through them is a mask).
const FLOWS: usize = 4096;

/// splitmix64: a fixed, dependency-free source of varied numbers.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` real servers 198.19.x.y:80 with weights 1..=10.
fn dests(n: usize) -> Vec<Dest> {
    (0..n)
        .map(|i| {
            let host = i as u16 + 1;
            let addr = Ipv4Addr::new(198, 19, (host >> 8) as u8, host as u8);
            Dest::new(addr, 80, 1 + (mix(i as u64) % 10) as u32)
        })
        .collect()
}

/// (active, inactive) per server: 1..=100 active, 0..=499 inactive.
fn load(n: usize) -> Vec<(u64, u64)> {
    (0..n as u64)
        .map(|i| (1 + mix(i ^ 0xAC) % 100, mix(i ^ 0x1AC) % 500))
        .collect()
}

/// Per-worker (active, inactive) gauges summed on every read, as the dataplane's
/// `ServiceLoad` does; `load(n)` split unevenly over the workers.
struct Workers(Vec<Vec<(AtomicI64, AtomicI64)>>);

impl Workers {
    fn new(n: usize, workers: u64) -> Self {
        let total = load(n);
        Workers(
            (0..workers)
                .map(|w| {
                    let share = |c: u64| {
                        let part = c / workers;
                        let rest = if w == 0 { c % workers } else { 0 };
                        AtomicI64::new((part + rest) as i64)
                    };
                    total.iter().map(|&(a, i)| (share(a), share(i))).collect()
                })
                .collect(),
        )
    }

    fn sum(&self, dest: usize, gauge: impl Fn(&(AtomicI64, AtomicI64)) -> &AtomicI64) -> u64 {
        let total: i64 = self
            .0
            .iter()
            .filter_map(|w| w.get(dest))
            .map(|c| gauge(c).load(Ordering::Relaxed))
            .sum();
        total.max(0) as u64
    }
}

impl Load for Workers {
    fn active(&self, dest: usize) -> u64 {
        self.sum(dest, |c| &c.0)
    }
    fn inactive(&self, dest: usize) -> u64 {
        self.sum(dest, |c| &c.1)
    }
}

/// TCP flows from clients in 198.18.0.0/16 (ports 1024..=65535) to VIPs in 198.18.255.0/28.
fn flows() -> Vec<Flow> {
    (0..FLOWS as u64)
        .map(|i| {
            let r = mix(i);
            Flow {
                proto: 6,
                caddr: Ipv4Addr::new(198, 18, (r % 255) as u8, (r >> 8) as u8).into(),
                cport: 1024 + ((r >> 16) % (65536 - 1024)) as u16,
                vaddr: Ipv4Addr::new(198, 18, 255, (r >> 40) as u8 & 15).into(),
                vport: 80,
            }
        })
        .collect()
}

/// One group named `name`, one benchmark per server count; `quiesce` sets the weight of
/// matching servers to 0 after the scheduler is built, `load` gives the counts for `n` servers.
fn bench_kind<L: Deref<Target = T>, T: Load + ?Sized>(
    c: &mut Criterion,
    name: &str,
    kind: SchedulerKind,
    flags: Flags,
    quiesce: fn(usize) -> bool,
    load: fn(usize) -> L,
) {
    let flows = flows();
    let mut group = c.benchmark_group(name);
    for n in SIZES {
        let mut dests = dests(n);
        let load = load(n);
        let sched = Scheduler::new(kind, &dests, flags);
        for (i, d) in dests.iter_mut().enumerate() {
            if quiesce(i) {
                d.weight = 0;
            }
        }
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            let mut k = 0usize;
            b.iter(|| {
                let flow = &flows[k & (FLOWS - 1)];
                k = k.wrapping_add(1);
                sched.pick(black_box(&dests), black_box(&*load), black_box(flow))
            });
        });
    }
    group.finish();
}

fn picks(c: &mut Criterion) {
    // sh-port / mh-port on, so the client port is hashed too; fallback on, which costs nothing
    // while the hashed server is available (always, in these groups).
    let flags = Flags {
        fallback: true,
        port: true,
    };
    for kind in SchedulerKind::ALL {
        bench_kind(c, kind.name(), kind, flags, |_| false, load);
    }
    bench_kind(
        c,
        "sh-fallback",
        SchedulerKind::SourceHashing,
        flags,
        |i| i % 4 == 0,
        load,
    );
    bench_kind(
        c,
        "mh-fallback",
        SchedulerKind::Maglev,
        flags,
        |i| i % 4 == 0,
        load,
    );
    bench_kind(
        c,
        "wlc-4-workers",
        SchedulerKind::WeightedLeastConnection,
        flags,
        |_| false,
        |n| Box::new(Workers::new(n, 4)),
    );
}

criterion_group!(benches, picks);
criterion_main!(benches);
