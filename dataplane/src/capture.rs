//! The capture tap: copies of the frames the workers receive and transmit, for `xvsadm
//! capture` (control::capture reads them).
//!
//! Cost: while no capture runs, a worker pays one relaxed load per batch ([`CaptureTap::wanted`]).
//! While one runs, each frame of a wanted side is copied (at most [`SNAPLEN`] bytes) into a
//! slot of the worker's own bounded ring; a worker never waits: with no free slot, the frame
//! is left out of the capture and counted ([`CaptureTap::drops`]). Slots are allocated when
//! the first capture starts ([`CaptureTap::enable`]), never on the packet path.

use crate::process::Side;
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of a frame a capture keeps: a whole UMEM frame at the default frame size.
pub const SNAPLEN: usize = 4096;

/// [`CaptureTap::wanted`]'s bit for frames of a side.
pub const fn side_bit(side: Side) -> u32 {
    match side {
        Side::External => 1,
        Side::Internal => 2,
    }
}

/// The time a capture records: ns since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One captured frame.
pub struct TapSlot {
    pub side: Side,
    /// Transmitted by the director (else received).
    pub transmitted: bool,
    /// The frame's length; `data[..len]` holds at most [`SNAPLEN`] bytes of it.
    pub orig_len: u32,
    pub len: u32,
    /// When the worker saw it, ns since the Unix epoch.
    pub ts_ns: u64,
    pub data: [u8; SNAPLEN],
}

/// One worker's ring: slots to fill and filled slots, both bounded and lock-free.
struct TapRing {
    free: ArrayQueue<Box<TapSlot>>,
    filled: ArrayQueue<Box<TapSlot>>,
}

/// Shared by the workers (producers, one ring each) and the capture collector (consumer).
pub struct CaptureTap {
    /// [`side_bit`]s of the sides some capture wants; 0: none runs.
    wanted: AtomicU32,
    rings: Box<[TapRing]>,
    slots_per_worker: usize,
    drops: AtomicU64,
}

impl CaptureTap {
    /// A tap for `workers` workers with room for `slots_per_worker` frames each (allocated by
    /// [`CaptureTap::enable`]).
    pub fn new(workers: usize, slots_per_worker: usize) -> Self {
        let slots_per_worker = slots_per_worker.max(1);
        CaptureTap {
            wanted: AtomicU32::new(0),
            rings: (0..workers)
                .map(|_| TapRing {
                    free: ArrayQueue::new(slots_per_worker),
                    filled: ArrayQueue::new(slots_per_worker),
                })
                .collect(),
            slots_per_worker,
            drops: AtomicU64::new(0),
        }
    }

    /// The sides wanted now: one relaxed load, what a worker checks once per batch.
    #[inline]
    pub fn wanted(&self) -> u32 {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Fills the rings' free slots (once) and makes the workers copy frames of `sides`.
    pub fn enable(&self, sides: u32) {
        for ring in self.rings.iter() {
            let have = ring.free.len() + ring.filled.len();
            for _ in have..self.slots_per_worker {
                let slot = Box::new(TapSlot {
                    side: Side::External,
                    transmitted: false,
                    orig_len: 0,
                    len: 0,
                    ts_ns: 0,
                    data: [0; SNAPLEN],
                });
                if ring.free.push(slot).is_err() {
                    break;
                }
            }
        }
        self.wanted.store(sides, Ordering::Relaxed);
    }

    /// Makes the workers stop copying (slots stay allocated for the next capture).
    pub fn disable(&self) {
        self.wanted.store(0, Ordering::Relaxed);
    }

    /// Worker `worker` copies `bytes`, seen on `side` at `ts_ns` ([`now_ns`], read once per
    /// batch: the clock costs more than a small frame's copy), into its ring; with no free slot
    /// the frame is counted as dropped.
    #[inline]
    pub fn copy(&self, worker: usize, side: Side, transmitted: bool, bytes: &[u8], ts_ns: u64) {
        let Some(ring) = self.rings.get(worker) else {
            return;
        };
        let Some(mut slot) = ring.free.pop() else {
            self.drops.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let len = bytes.len().min(SNAPLEN);
        slot.data[..len].copy_from_slice(&bytes[..len]);
        slot.side = side;
        slot.transmitted = transmitted;
        slot.orig_len = bytes.len() as u32;
        slot.len = len as u32;
        slot.ts_ns = ts_ns;
        // Cannot fail: the two queues together never hold more than their capacity.
        let _ = ring.filled.push(slot);
    }

    /// Hands every filled slot, worker by worker, to `each`, then frees it; returns how many.
    pub fn drain(&self, mut each: impl FnMut(&TapSlot)) -> usize {
        let mut n = 0;
        for ring in self.rings.iter() {
            while let Some(slot) = ring.filled.pop() {
                each(&slot);
                let _ = ring.free.push(slot);
                n += 1;
            }
        }
        n
    }

    /// Frames the workers left out for want of a free slot, since the start.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_copied_into_a_tap_never_enabled() {
        let tap = CaptureTap::new(2, 4);
        assert_eq!(tap.wanted(), 0);
        tap.copy(0, Side::External, false, &[1, 2, 3], 1);
        assert_eq!((tap.drain(|_| {}), tap.drops()), (0, 1));
    }

    #[test]
    fn frames_come_out_in_order_truncated_and_a_full_ring_drops() {
        let tap = CaptureTap::new(2, 3);
        tap.enable(side_bit(Side::Internal));
        assert_eq!(tap.wanted(), 2);
        let big = vec![7u8; SNAPLEN + 100];
        tap.copy(1, Side::Internal, true, &big, 1);
        for i in 0..3u8 {
            tap.copy(0, Side::External, false, &[i; 60], 1);
        }
        // Worker 0's ring is full now.
        tap.copy(0, Side::External, false, &[9; 60], 1);
        assert_eq!(tap.drops(), 1);
        let mut seen = Vec::new();
        tap.drain(|s| seen.push((s.side, s.transmitted, s.orig_len, s.len, s.data[0])));
        assert_eq!(
            seen,
            [
                (Side::External, false, 60, 60, 0),
                (Side::External, false, 60, 60, 1),
                (Side::External, false, 60, 60, 2),
                (
                    Side::Internal,
                    true,
                    SNAPLEN as u32 + 100,
                    SNAPLEN as u32,
                    7
                ),
            ]
        );
        // Slots are reused: the ring takes three again; enabling again adds none.
        tap.enable(3);
        for _ in 0..3 {
            tap.copy(0, Side::External, false, &[1; 60], 1);
        }
        assert_eq!((tap.drain(|_| {}), tap.drops()), (3, 1));
        tap.disable();
        assert_eq!(tap.wanted(), 0);
    }
}
