//! ns per packet of `xvs_dataplane::process::process` over the `xvs-bench` fixture: the cases
//! `new` (SYN: schedule and insert), `established` (client ACK) and `reply` (server ACK), with
//! 1Ki flows (the table in cache) and 1Mi flows (it is not), in batches of 64 restored from
//! templates as `xvs-bench process` runs them (see `xvs_bench::fixture`).
//!
//! One criterion iteration is one packet (Throughput::Elements(1): the report adds packets/s).
//! Each packet's restore from its template (a 60-byte copy) is inside the timing, as a worker
//! would read a fresh frame; the `copy-only` line times the restore alone, to subtract. The end
//! of a round over the flows, where `new` empties the table, is left out of the timing. Every
//! verdict is checked: the bench panics rather than time drops.
//!
//! Run with `cargo bench -p xvs-bench --bench process` (`-- --warm-up-time 1
//! --measurement-time 2` for a short run).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use xvs_bench::fixture::{Case, Fixture, Misses, Replay};

/// Flow counts: a table that fits the caches, and one that does not.
const FLOWS: [usize; 2] = [1 << 10, 1 << 20];

/// Times `iters` packets of `case` (restore included, ends of rounds excluded).
fn timed(fixture: &mut Fixture, replay: &mut Replay, case: Case, iters: u64) -> Duration {
    let mut misses = Misses::default();
    let mut total = Duration::ZERO;
    let mut left = iters;
    let mut start = Instant::now();
    while left > 0 {
        let (frames, round_done) = replay.next_batch(left);
        left -= frames.len() as u64;
        misses.add(fixture.process_batch(case, frames));
        if round_done {
            total += start.elapsed();
            fixture.end_of_round(case);
            start = Instant::now();
        }
    }
    total += start.elapsed();
    assert_eq!(
        misses.count, 0,
        "{case}: frames not forwarded (first verdict {:?}): refusing to time drops",
        misses.first
    );
    total
}

fn process(c: &mut Criterion) {
    let mut group = c.benchmark_group("process");
    group.throughput(Throughput::Elements(1));
    for flows in FLOWS {
        for case in Case::ALL {
            let mut fixture = Fixture::new(flows);
            let mut replay = Replay::new(fixture.templates(case).expect("handshakes forwarded"));
            group.bench_function(BenchmarkId::new(case.to_string(), flows), |b| {
                b.iter_custom(|iters| timed(&mut fixture, &mut replay, case, iters))
            });
        }
        let mut fixture = Fixture::new(flows);
        let mut replay = Replay::new(fixture.templates(Case::Established).expect("handshakes"));
        group.bench_function(BenchmarkId::new("copy-only", flows), |b| {
            b.iter_custom(|iters| {
                let mut left = iters;
                let start = Instant::now();
                while left > 0 {
                    let (frames, _) = replay.next_batch(left);
                    left -= frames.len() as u64;
                    black_box(frames);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// What the capture tap adds to a worker's batch (`established`, 1Ki flows): `tap-idle`
/// looks at the tap once per batch as a worker does while no capture runs (the figure to
/// compare with `process/established/1024`); `tap-copying` also copies every frame into the
/// tap and, per batch, drains it as xvsd's collector would (its cost is the collector's, on
/// another thread, in xvsd).
fn capture_tap(c: &mut Criterion) {
    use xvs_dataplane::capture::{side_bit, CaptureTap};
    use xvs_dataplane::process::Side;
    let mut group = c.benchmark_group("capture");
    group.throughput(Throughput::Elements(1));
    let flows = 1 << 10;
    for copying in [false, true] {
        let tap = CaptureTap::new(1, 4 << 20);
        let mut writer = tap.writer(0).expect("a fresh tap's writer");
        if copying {
            tap.enable(side_bit(Side::External));
        }
        let mut fixture = Fixture::new(flows);
        let mut replay = Replay::new(
            fixture
                .templates(Case::Established)
                .expect("handshakes forwarded"),
        );
        let name = if copying { "tap-copying" } else { "tap-idle" };
        group.bench_function(BenchmarkId::new(name, flows), |b| {
            b.iter_custom(|iters| {
                let mut left = iters;
                let start = Instant::now();
                while left > 0 {
                    let (frames, round_done) = replay.next_batch(left);
                    left -= frames.len() as u64;
                    if black_box(tap.wanted()) & side_bit(Side::External) != 0 {
                        let now = xvs_dataplane::capture::now_ns();
                        for frame in frames.iter() {
                            tap.copy(&mut writer, Side::External, false, frame, now);
                        }
                        tap.drain(|frame| {
                            black_box(frame.data.len());
                        });
                    }
                    fixture.process_batch(Case::Established, frames);
                    if round_done {
                        fixture.end_of_round(Case::Established);
                    }
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, process, capture_tap);
criterion_main!(benches);
