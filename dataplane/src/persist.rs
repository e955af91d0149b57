//! Persistence templates (IPVS `-p [timeout] -M netmask`): client group -> real server.
//!
//! A new connection to a persistent service goes to the real server its client's earlier
//! connections went to, whichever worker owns it. Ownership hashes the client *port* too
//! ([`crate::conntrack::owner_of`]), so one client's connections are spread over workers and
//! the templates must be shared by all of them. [`Templates`] is one lock-free table: a fixed
//! array of slots of two `AtomicU64`s, the key `(valid bit, service, masked client address)`
//! and the value `(real server, expiry second)`.
//!
//! - A lookup probes a bounded window of slots from the key's hash; it re-reads the key after
//!   the value, so a slot taken over meanwhile by another client is seen as a miss.
//! - An insert refreshes the client's slot, or claims an empty or expired one with a
//!   compare-and-swap on the key and then stores the value. A full window means no template:
//!   the connection is scheduled as if the service were not persistent.
//! - Two workers scheduling the same new client at the same instant may each place a
//!   connection before either template is visible; the later template wins. IPVS serialises
//!   template creation under a lock; here it costs at most that first pair of connections.
//! - A template lives `timeout` seconds after the last new connection it placed (IPVS counts
//!   from the end of the last connection it controls), and is reclaimed lazily.

use crate::snapshot::{RealId, ServiceId};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots probed per lookup or insert.
const WINDOW: usize = 8;
const VALID: u64 = 1 << 63;

#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    value: AtomicU64,
}

/// The templates of every persistent service of one director.
#[derive(Debug)]
pub struct Templates {
    slots: Box<[Slot]>,
    seed: u64,
}

fn key(service: ServiceId, client: Ipv4Addr) -> u64 {
    VALID | (u64::from(service) << 32) | u64::from(u32::from(client))
}

fn value(real: RealId, expires_s: u32) -> u64 {
    (u64::from(real) << 32) | u64::from(expires_s)
}

fn unpack(value: u64) -> (RealId, u32) {
    ((value >> 32) as RealId, value as u32)
}

impl Templates {
    /// A table of at least `slots` slots (rounded up to a power of two), all allocated now.
    pub fn new(slots: usize, seed: u64) -> Self {
        let n = slots.max(WINDOW).next_power_of_two();
        Templates {
            slots: (0..n).map(|_| Slot::default()).collect(),
            seed,
        }
    }

    fn window(&self, key: u64) -> impl Iterator<Item = &Slot> {
        // splitmix64 finaliser over the keyed value: clients cannot aim at one window.
        let mut z = (key ^ self.seed).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let mask = self.slots.len() - 1;
        let start = z as usize & mask;
        (0..WINDOW).map(move |i| &self.slots[(start + i) & mask])
    }

    /// The real server of `client`'s live template for `service`, if any.
    #[inline]
    pub fn get(&self, service: ServiceId, client: Ipv4Addr, now_s: u32) -> Option<RealId> {
        let key = key(service, client);
        self.window(key).find_map(|slot| {
            if slot.key.load(Ordering::Acquire) != key {
                return None;
            }
            let (real, expires) = unpack(slot.value.load(Ordering::Acquire));
            // Still ours after reading the value, and not expired.
            (slot.key.load(Ordering::Acquire) == key && expires > now_s).then_some(real)
        })
    }

    /// Records (or refreshes) `client` -> `real` for `service` until `expires_s`; false when
    /// no slot was free.
    #[inline]
    pub fn put(
        &self,
        service: ServiceId,
        client: Ipv4Addr,
        real: RealId,
        now_s: u32,
        expires_s: u32,
    ) -> bool {
        let key = key(service, client);
        let value = value(real, expires_s);
        if let Some(slot) = self
            .window(key)
            .find(|slot| slot.key.load(Ordering::Acquire) == key)
        {
            slot.value.store(value, Ordering::Release);
            return true;
        }
        for slot in self.window(key) {
            let current = slot.key.load(Ordering::Acquire);
            let free = current == 0 || unpack(slot.value.load(Ordering::Acquire)).1 <= now_s;
            if !free {
                continue;
            }
            // The old value is expired (or never set), so a reader that sees our key before
            // our value reads a dead template: a miss, never another client's server.
            if slot
                .key
                .compare_exchange(current, key, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slot.value.store(value, Ordering::Release);
                return true;
            }
        }
        false
    }
}

/// `addr & netmask`.
#[inline]
pub fn masked(addr: Ipv4Addr, netmask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(addr) & u32::from(netmask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 0, last)
    }

    #[test]
    fn templates_map_refresh_and_expire() {
        let t = Templates::new(64, 7);
        assert_eq!(t.get(1, client(1), 0), None);
        assert!(t.put(1, client(1), 5, 0, 300));
        assert_eq!(t.get(1, client(1), 299), Some(5));
        assert_eq!(t.get(1, client(1), 300), None, "expired");
        assert_eq!(t.get(2, client(1), 0), None, "other service");
        assert_eq!(t.get(1, client(2), 0), None, "other client");
        assert!(t.put(1, client(1), 6, 299, 600));
        assert_eq!(t.get(1, client(1), 500), Some(6), "refreshed");
    }

    #[test]
    fn expired_slots_are_reused_and_a_full_window_refuses() {
        let t = Templates::new(8, 1);
        // Every key lands in the single window of an 8-slot table.
        for i in 0..8 {
            assert!(t.put(1, client(i), u32::from(i), 0, 10));
        }
        assert!(!t.put(1, client(100), 1, 5, 10), "all live: no room");
        assert!(t.put(1, client(100), 1, 10, 20), "expired ones make room");
        assert_eq!(t.get(1, client(100), 15), Some(1));
    }

    #[test]
    fn concurrent_puts_never_mix_clients() {
        let t = Templates::new(1 << 12, 3);
        std::thread::scope(|s| {
            for w in 0..4u32 {
                let t = &t;
                s.spawn(move || {
                    for i in 0..2000u32 {
                        let c = Ipv4Addr::from(0xc612_0000 | (i % 500));
                        t.put(1, c, i % 500, 0, 1000 + w);
                    }
                });
            }
        });
        for i in 0..500u32 {
            let c = Ipv4Addr::from(0xc612_0000 | i);
            assert_eq!(t.get(1, c, 0), Some(i), "client {c}");
        }
    }

    #[test]
    fn netmask_groups_clients() {
        let m = Ipv4Addr::new(255, 255, 255, 0);
        assert_eq!(masked(client(7), m), client(0));
        assert_eq!(masked(client(7), Ipv4Addr::BROADCAST), client(7));
    }
}
