//! RCU-style publication of immutable snapshots from one writer thread to many workers.
//!
//! The writer (the control thread for configuration, the neighbour thread for MACs) builds a
//! complete new value and [`Publisher::publish`]es it; a worker's [`Reader::current`] checks one
//! atomic generation per batch and, only when it changed, takes the new `Arc` (lock-free, via
//! arc-swap). The writer keeps every replaced value in a retire list until no reader holds it any
//! more ([`Publisher::collect`]), so the last reference is always dropped off the hot path and a
//! worker never frees memory.

use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Shared<T> {
    current: ArcSwap<T>,
    generation: AtomicU64,
}

/// The single writer of a published value.
pub struct Publisher<T> {
    shared: Arc<Shared<T>>,
    retired: Vec<Arc<T>>,
}

impl<T> Publisher<T> {
    pub fn new(initial: T) -> Self {
        Publisher {
            shared: Arc::new(Shared {
                current: ArcSwap::from_pointee(initial),
                generation: AtomicU64::new(1),
            }),
            retired: Vec::new(),
        }
    }

    /// Makes `value` the current snapshot; readers see it at their next batch.
    pub fn publish(&mut self, value: T) {
        let old = self.shared.current.swap(Arc::new(value));
        self.shared.generation.fetch_add(1, Ordering::Release);
        self.retired.push(old);
        self.collect();
    }

    /// Frees replaced snapshots that no reader holds any more. Call it periodically.
    pub fn collect(&mut self) {
        self.retired.retain(|old| Arc::strong_count(old) > 1);
    }

    /// The value readers currently see.
    pub fn current(&self) -> Arc<T> {
        self.shared.current.load_full()
    }

    /// A reader for a worker thread.
    pub fn reader(&self) -> Reader<T> {
        Reader {
            shared: Arc::clone(&self.shared),
            cached: self.shared.current.load_full(),
            seen: self.shared.generation.load(Ordering::Acquire),
        }
    }

    /// How many replaced snapshots are still held by some reader.
    pub fn retired_len(&self) -> usize {
        self.retired.len()
    }
}

/// A worker's handle on a published value.
pub struct Reader<T> {
    shared: Arc<Shared<T>>,
    cached: Arc<T>,
    seen: u64,
}

impl<T> Reader<T> {
    /// The newest snapshot: one atomic load when nothing changed.
    #[inline]
    pub fn current(&mut self) -> &Arc<T> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.seen {
            // The old Arc is still in the publisher's retire list, so this never frees it.
            self.cached = self.shared.current.load_full();
            self.seen = generation;
        }
        &self.cached
    }

    /// The snapshot taken at the last [`Reader::current`] call, without checking for a newer one.
    #[inline]
    pub fn cached(&self) -> &Arc<T> {
        &self.cached
    }
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            shared: Arc::clone(&self.shared),
            cached: Arc::clone(&self.cached),
            seen: self.seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_new_values_and_old_ones_are_retired_until_released() {
        let mut publisher = Publisher::new(1u32);
        let mut reader = publisher.reader();
        assert_eq!(**reader.current(), 1);
        publisher.publish(2);
        assert_eq!(publisher.retired_len(), 1, "reader still holds 1");
        assert_eq!(**reader.current(), 2);
        publisher.collect();
        assert_eq!(publisher.retired_len(), 0);
        assert_eq!(*publisher.current(), 2);
    }
}
