//! The capture tap: copies of the frames the workers receive and transmit, for `xvsadm
//! capture` (control::capture reads them).
//!
//! Cost: while no capture runs, a worker pays one relaxed load per batch ([`CaptureTap::wanted`]).
//! While one runs, each frame of a wanted side is copied (at most [`SNAPLEN`] bytes) as one
//! record into the worker's own byte ring ([`TapWriter`]); a worker never waits: when the ring
//! has no room, the frame is left out of the capture and counted ([`CaptureTap::drops`]).
//!
//! Why a single-producer byte ring (rtrb): xvsd drains the rings on a core without a worker
//! (control::capture::service), so every copy crosses cores. Records packed one after another
//! cost the worker a few sequential cache lines and no atomic read-modify-write; the earlier
//! pair of shared queues of 4 KiB slots cost two contended compare-and-swaps and a TLB miss per
//! copy, and forwarded 0.54x as much at full load once the collector ran on another core.
//! The rings' memory is reserved at start and touched only by a capture.

use crate::process::Side;
use rtrb::{Consumer, Producer, RingBuffer};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of a frame a capture keeps: a whole UMEM frame at the default frame size.
pub const SNAPLEN: usize = 4096;

/// A record's header: original length (u32), kept length (u16), flags (u8: bit 0 internal
/// side, bit 1 transmitted), one spare byte, timestamp (u64), little-endian.
const RECORD_HEADER: usize = 16;
const FLAG_INTERNAL: u8 = 1;
const FLAG_TRANSMITTED: u8 = 2;

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

/// One captured frame, as [`CaptureTap::drain`] hands it out.
pub struct TapFrame<'a> {
    pub side: Side,
    /// Transmitted by the director (else received).
    pub transmitted: bool,
    /// The frame's length; `data` holds at most [`SNAPLEN`] bytes of it.
    pub orig_len: u32,
    /// When the worker saw it, ns since the Unix epoch.
    pub ts_ns: u64,
    pub data: &'a [u8],
}

/// A worker's end of its ring: only that worker writes it, so it needs no lock.
pub struct TapWriter {
    ring: Producer<u8>,
}

/// The collector's ends of the rings, and room to reassemble a record that wraps.
struct Readers {
    rings: Vec<Consumer<u8>>,
    record: Box<[u8]>,
}

/// Shared by the workers (producers, one ring each) and the capture collector (consumer).
pub struct CaptureTap {
    /// [`side_bit`]s of the sides some capture wants; 0: none runs.
    wanted: AtomicU32,
    /// Each worker's [`TapWriter`], until it takes it ([`CaptureTap::writer`]).
    writers: Mutex<Vec<Option<Producer<u8>>>>,
    readers: Mutex<Readers>,
    drops: AtomicU64,
}

impl CaptureTap {
    /// A tap for `workers` workers with `bytes_per_worker` bytes of ring each (at least one
    /// whole record of [`SNAPLEN`] bytes).
    pub fn new(workers: usize, bytes_per_worker: usize) -> Self {
        let bytes = bytes_per_worker.max(RECORD_HEADER + SNAPLEN);
        let (writers, rings) = (0..workers)
            .map(|_| {
                let (producer, consumer) = RingBuffer::new(bytes);
                (Some(producer), consumer)
            })
            .unzip();
        CaptureTap {
            wanted: AtomicU32::new(0),
            writers: Mutex::new(writers),
            readers: Mutex::new(Readers {
                rings,
                record: vec![0; RECORD_HEADER + SNAPLEN].into_boxed_slice(),
            }),
            drops: AtomicU64::new(0),
        }
    }

    /// Worker `worker`'s end of its ring; `None` if taken already (or no such worker).
    pub fn writer(&self, worker: usize) -> Option<TapWriter> {
        let mut writers = self.writers.lock().unwrap_or_else(|e| e.into_inner());
        let ring = writers.get_mut(worker)?.take()?;
        Some(TapWriter { ring })
    }

    /// The sides wanted now: one relaxed load, what a worker checks once per batch.
    #[inline]
    pub fn wanted(&self) -> u32 {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Makes the workers copy frames of `sides`.
    pub fn enable(&self, sides: u32) {
        self.wanted.store(sides, Ordering::Relaxed);
    }

    /// Makes the workers stop copying.
    pub fn disable(&self) {
        self.wanted.store(0, Ordering::Relaxed);
    }

    /// Copies `bytes`, seen on `side` at `ts_ns` ([`now_ns`], read once per batch: the clock
    /// costs more than a small frame's copy), into `writer`'s ring; with no room the frame is
    /// counted as dropped.
    #[inline]
    pub fn copy(
        &self,
        writer: &mut TapWriter,
        side: Side,
        transmitted: bool,
        bytes: &[u8],
        ts_ns: u64,
    ) {
        let len = bytes.len().min(SNAPLEN);
        let Ok(mut chunk) = writer.ring.write_chunk(RECORD_HEADER + len) else {
            self.drops.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut header = [0u8; RECORD_HEADER];
        header[0..4].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        header[4..6].copy_from_slice(&(len as u16).to_le_bytes());
        header[6] = match side {
            Side::External => 0,
            Side::Internal => FLAG_INTERNAL,
        } | if transmitted { FLAG_TRANSMITTED } else { 0 };
        header[8..16].copy_from_slice(&ts_ns.to_le_bytes());
        let (first, second) = chunk.as_mut_slices();
        write_split(first, second, 0, &header);
        write_split(first, second, RECORD_HEADER, &bytes[..len]);
        chunk.commit_all();
    }

    /// Hands every record waiting, worker by worker, to `each`; returns how many.
    pub fn drain(&self, mut each: impl FnMut(&TapFrame)) -> usize {
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let Readers { rings, record } = &mut *readers;
        let mut n = 0;
        for ring in rings.iter_mut() {
            while ring.slots() >= RECORD_HEADER {
                // A record is committed whole, so its header promises its data.
                let len = {
                    let Ok(header) = ring.read_chunk(RECORD_HEADER) else {
                        break;
                    };
                    let (first, second) = header.as_slices();
                    read_split(first, second, &mut record[..RECORD_HEADER]);
                    usize::from(u16::from_le_bytes([record[4], record[5]])).min(SNAPLEN)
                };
                let Ok(whole) = ring.read_chunk(RECORD_HEADER + len) else {
                    break;
                };
                let (first, second) = whole.as_slices();
                read_split(first, second, &mut record[..RECORD_HEADER + len]);
                whole.commit_all();
                let flags = record[6];
                each(&TapFrame {
                    side: match flags & FLAG_INTERNAL {
                        0 => Side::External,
                        _ => Side::Internal,
                    },
                    transmitted: flags & FLAG_TRANSMITTED != 0,
                    orig_len: u32::from_le_bytes([record[0], record[1], record[2], record[3]]),
                    ts_ns: u64::from_le_bytes(record[8..16].try_into().unwrap_or_default()),
                    data: &record[RECORD_HEADER..RECORD_HEADER + len],
                });
                n += 1;
            }
        }
        n
    }

    /// Frames the workers left out for want of room, since the start.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }
}

/// Writes `src` at `at` of the region made of `first` then `second` (a chunk that wraps).
#[inline]
fn write_split(first: &mut [u8], second: &mut [u8], at: usize, src: &[u8]) {
    let split = first.len();
    if at >= split {
        second[at - split..][..src.len()].copy_from_slice(src);
        return;
    }
    let in_first = (split - at).min(src.len());
    first[at..at + in_first].copy_from_slice(&src[..in_first]);
    second[..src.len() - in_first].copy_from_slice(&src[in_first..]);
}

/// Fills `dst` from the region made of `first` then `second`.
#[inline]
fn read_split(first: &[u8], second: &[u8], dst: &mut [u8]) {
    let in_first = first.len().min(dst.len());
    dst[..in_first].copy_from_slice(&first[..in_first]);
    let rest = dst.len() - in_first;
    dst[in_first..].copy_from_slice(&second[..rest]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a drain saw: (side, transmitted, orig_len, len, first byte, ts).
    fn drained(tap: &CaptureTap) -> Vec<(Side, bool, u32, usize, u8, u64)> {
        let mut seen = Vec::new();
        tap.drain(|f| {
            seen.push((
                f.side,
                f.transmitted,
                f.orig_len,
                f.data.len(),
                f.data[0],
                f.ts_ns,
            ))
        });
        seen
    }

    #[test]
    fn each_worker_takes_its_writer_once() {
        let tap = CaptureTap::new(2, 0);
        assert!(tap.writer(0).is_some());
        assert!(tap.writer(0).is_none(), "taken");
        assert!(tap.writer(1).is_some());
        assert!(tap.writer(2).is_none(), "no such worker");
        assert_eq!(tap.wanted(), 0);
    }

    #[test]
    fn frames_come_out_in_order_truncated_and_a_full_ring_drops() {
        // Room for exactly three 60-byte records past one of SNAPLEN bytes.
        let room = 4 * RECORD_HEADER + SNAPLEN + 3 * 60;
        let tap = CaptureTap::new(2, room);
        let (mut w0, mut w1) = (tap.writer(0).unwrap(), tap.writer(1).unwrap());
        tap.enable(side_bit(Side::Internal));
        assert_eq!(tap.wanted(), 2);
        let big = vec![7u8; SNAPLEN + 100];
        tap.copy(&mut w1, Side::Internal, true, &big, 9);
        tap.copy(&mut w0, Side::External, false, &big, 1);
        for i in 0..3u8 {
            tap.copy(&mut w0, Side::External, false, &[i; 60], 2);
        }
        // Worker 0's ring is full now.
        tap.copy(&mut w0, Side::External, false, &[9; 60], 3);
        assert_eq!(tap.drops(), 1);
        let full = SNAPLEN + 100;
        assert_eq!(
            drained(&tap),
            [
                (Side::External, false, full as u32, SNAPLEN, 7, 1),
                (Side::External, false, 60, 60, 0, 2),
                (Side::External, false, 60, 60, 1, 2),
                (Side::External, false, 60, 60, 2, 2),
                (Side::Internal, true, full as u32, SNAPLEN, 7, 9),
            ]
        );
        assert!(drained(&tap).is_empty());
        tap.disable();
        assert_eq!(tap.wanted(), 0);
    }

    #[test]
    fn records_that_wrap_around_the_ring_come_out_whole() {
        let tap = CaptureTap::new(1, RECORD_HEADER + SNAPLEN);
        let mut w = tap.writer(0).unwrap();
        // Frames of every length from 1 to 300 bytes, drained every few, so that records
        // (header and data) wrap at every offset.
        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for len in 1..=300usize {
            let frame: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            tap.copy(&mut w, Side::Internal, len % 2 == 0, &frame, len as u64);
            expected.push((len % 2 == 0, frame));
            if len % 5 == 0 {
                tap.drain(|f| seen.push((f.transmitted, f.data.to_vec())));
            }
        }
        tap.drain(|f| seen.push((f.transmitted, f.data.to_vec())));
        assert_eq!(tap.drops(), 0);
        assert_eq!(seen, expected);
    }
}
