//! What a connection table costs in memory: [`ConnTable::allocated_bytes`] matches what the
//! allocator handed out, and the bytes per entry at 10M entries against issue 5's target
//! (10M entries in at most 1 GiB).
//!
//! A counting global allocator forwards to [`System`] and adds up the bytes the current thread
//! asked for, in a const-initialised thread-local, so tests running in parallel on other
//! threads do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use xvs_dataplane::conntrack::ConnTable;

thread_local! {
    /// Bytes this thread allocated (reallocations count their new size).
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    // try_with: a thread being torn down may still allocate after its locals are gone.
    let _ = BYTES.try_with(|b| b.set(b.get() + bytes));
}

struct Counting;

// Safety: every method forwards to `System` with the caller's arguments unchanged, so this
// allocator upholds exactly the contract `System` does; counting only touches a thread-local
// `Cell` that never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // Safety: our caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // Safety: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // Safety: `ptr` was allocated by this allocator, hence by `System`, with `layout`; our
        // caller guarantees `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Safety: `ptr` was allocated by this allocator, hence by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A table for `capacity` entries and the bytes its construction allocated.
fn table(capacity: usize) -> (ConnTable, usize) {
    // The first table also allocates the hasher's process-wide random source: not its own.
    drop(ConnTable::with_capacity(1));
    let before = BYTES.with(Cell::get);
    let t = ConnTable::with_capacity(capacity);
    (t, BYTES.with(Cell::get) - before)
}

const GIB: usize = 1 << 30;
const TEN_MILLION: usize = 10_000_000;

/// The computed footprint is the allocated one, from tiny tables to a million entries.
#[test]
fn allocated_bytes_is_what_the_allocator_gave() {
    for capacity in [1, 2, 3, 5, 7, 100, 1024, 1_000_000] {
        let (t, allocated) = table(capacity);
        assert_eq!(t.allocated_bytes(), allocated, "capacity {capacity}");
    }
}

/// Only address space is reserved up front for the slab (touched as entries arrive); the
/// indexes' buckets are written, 268 MB at 10M, so building a 10M table here is cheap.
fn ten_million() -> usize {
    let (t, allocated) = table(TEN_MILLION);
    assert_eq!(t.allocated_bytes(), allocated);
    eprintln!(
        "ConnTable::with_capacity({TEN_MILLION}): {allocated} bytes ({:.2} GiB), {:.1} bytes \
         per entry",
        allocated as f64 / GIB as f64,
        allocated as f64 / TEN_MILLION as f64
    );
    allocated
}

/// Issue 5's target: slab (56 bytes per entry, in whole 2 MiB pages), free list (4),
/// half-open FIFO (4) and two indexes at load <= 1/2 of their ways (2^21 64-byte buckets of 10
/// ways each at 10M) take about 0.85 GiB.
#[test]
fn ten_million_entries_fit_in_one_gib() {
    assert!(ten_million() <= GIB);
}
