//! `Scheduler::pick` never allocates: every policy, 2, 16 and 1000 servers, with and without
//! quiesced and overloaded servers.
//!
//! A counting global allocator forwards to [`System`] and counts every call (alloc,
//! alloc_zeroed, realloc, dealloc) made by the current thread, in a const-initialised
//! thread-local, so tests running in parallel on other threads do not disturb the count.
//! Schedulers, servers, loads and flows are all built before counting starts; only picks run
//! while counting.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use xvs_scheduler::{Dest, Flags, Flow, Load, NoLoad, Scheduler, SchedulerKind};

thread_local! {
    /// Allocator calls made by this thread since it started. Const-initialised and without a
    /// destructor, so reading it never allocates nor registers anything.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // try_with: a thread being torn down may still free memory after its locals are gone.
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
}

/// Allocator calls this thread made while running `f`.
fn calls_during<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = CALLS.with(Cell::get);
    let r = f();
    (CALLS.with(Cell::get) - before, r)
}

struct Counting;

// Safety: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator upholds exactly the contract `System` does; counting only touches a thread-local
// `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // Safety: our caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which is
        // what `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // Safety: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // Safety: `ptr` was allocated by this allocator, hence by `System`, with `layout`; our
        // caller guarantees `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count();
        // Safety: `ptr` was allocated by this allocator, hence by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SIZES: [usize; 3] = [2, 16, 1000];

/// Picks per run: fewer for 1000 servers, whose scans are 60 times longer (debug builds).
fn pick_count(servers: usize) -> usize {
    if servers > 100 {
        2_000
    } else {
        20_000
    }
}

/// splitmix64: varied, reproducible numbers without a dependency.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` servers 198.19.x.y:80, weights 1..=10.
fn dests(n: usize) -> Vec<Dest> {
    (0..n)
        .map(|i| {
            let host = i as u16 + 1;
            let addr = Ipv4Addr::new(198, 19, (host >> 8) as u8, host as u8);
            Dest::new(addr, 80, 1 + (mix(i as u64) % 10) as u32)
        })
        .collect()
}

/// Varied (active, inactive) counts, some servers idle.
fn load(n: usize) -> Vec<(u64, u64)> {
    (0..n as u64)
        .map(|i| (mix(i ^ 0xAC) % 100, mix(i ^ 0x1AC) % 500))
        .collect()
}

/// Clients in 198.18.0.0/16 with varied ports, VIPs in 198.18.255.0/28, TCP and UDP.
fn flows() -> Vec<Flow> {
    (0..1024u64)
        .map(|i| {
            let r = mix(i);
            Flow {
                proto: if r & 1 == 0 { 6 } else { 17 },
                caddr: Ipv4Addr::new(198, 18, (r % 255) as u8, (r >> 8) as u8).into(),
                cport: 1024 + ((r >> 16) % (65536 - 1024)) as u16,
                vaddr: Ipv4Addr::new(198, 18, 255, (r >> 40) as u8 & 15).into(),
                vport: 80,
            }
        })
        .collect()
}

/// Allocator calls during `count` picks (and how many found a server).
fn picks<L: Load + ?Sized>(
    sched: &Scheduler,
    dests: &[Dest],
    load: &L,
    flows: &[Flow],
    count: usize,
) -> (u64, usize) {
    calls_during(|| {
        (0..count)
            .filter(|&k| {
                let flow = &flows[k % flows.len()];
                std::hint::black_box(sched.pick(dests, load, flow)).is_some()
            })
            .count()
    })
}

/// The setups a pick can meet: all servers available; every third quiesced (weight 0 after
/// the tables were built, so sh/mh fall back); upper thresholds that overload some servers;
/// every server unavailable.
#[derive(Debug, Clone, Copy)]
enum Setup {
    Available,
    Quiesced,
    Overloaded,
    NoneAvailable,
}

fn check(kind: SchedulerKind, flags: Flags, setup: Setup) {
    let flows = flows();
    for n in SIZES {
        let mut dests = dests(n);
        let load = load(n);
        let sched = Scheduler::new(kind, &dests, flags);
        for (i, d) in dests.iter_mut().enumerate() {
            match setup {
                Setup::Available => {}
                Setup::Quiesced if i % 3 == 0 => d.weight = 0,
                Setup::Quiesced => {}
                Setup::Overloaded => d.upper_threshold = 300,
                Setup::NoneAvailable => d.weight = 0,
            }
        }
        let count = pick_count(n);
        let (calls, found) = picks(&sched, &dests, load.as_slice(), &flows, count);
        assert_eq!(
            calls, 0,
            "{kind} {flags:?} {setup:?} with {n} servers: {calls} allocator calls in {count} \
             picks ({found} found a server)"
        );
        let (calls, _) = picks(&sched, &dests, &NoLoad, &flows, count);
        assert_eq!(
            calls, 0,
            "{kind} {flags:?} {setup:?} with {n} servers, NoLoad"
        );
        if let Setup::NoneAvailable = setup {
            assert_eq!(found, 0, "{kind}: no server may take a connection");
        }
    }
}

#[test]
fn counter_sees_allocations() {
    let (calls, v) = calls_during(|| vec![0u8; 64]);
    assert!(calls >= 1, "the counting allocator is not in use");
    let (calls, ()) = calls_during(|| drop(v));
    assert_eq!(calls, 1);
}

#[test]
fn picks_never_allocate() {
    // Only sh and mh read the flags.
    let all_flags = [false, true]
        .into_iter()
        .flat_map(|fallback| [false, true].map(|port| Flags { fallback, port }));
    for kind in SchedulerKind::ALL {
        let hashing = matches!(kind, SchedulerKind::SourceHashing | SchedulerKind::Maglev);
        let flag_sets = all_flags.clone().take(if hashing { 4 } else { 1 });
        for flags in flag_sets {
            for setup in [
                Setup::Available,
                Setup::Quiesced,
                Setup::Overloaded,
                Setup::NoneAvailable,
            ] {
                check(kind, flags, setup);
            }
        }
    }
}
