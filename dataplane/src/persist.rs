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
//!
//! [`Templates6`] is the same table for IPv6 clients (masked by the service's prefix length,
//! IPVS's `-M 64`). Its key, a 128-bit address and a service, does not fit one atomic word, so
//! a slot is four `AtomicU64`s, `tag`, `hi`, `lo` (the address) and `value`, published as a
//! sequence lock is:
//!
//! - `tag` is 0 (never used), *busy* (a writer owns the slot) or *live* (`service`, with the
//!   address in `hi`/`lo`), each busy or live state carrying the slot's version, which every
//!   claim increments: no tag value comes back (for 2^30 claims of one slot).
//! - A writer claims an empty or expired slot by a compare-and-swap of its tag to busy with
//!   the next version, stores the address words and the value (Release), then publishes the
//!   tag live with that version (Release).
//! - A reader loads the tag (Acquire), skips the slot unless it is live for the service,
//!   loads the address words and the value (Acquire), and loads the tag again: any change
//!   means another writer claimed the slot meanwhile (it cannot have stored anything the
//!   reader saw without its claim being visible to the second load), and is a miss. So a
//!   lookup returns the value published with exactly the address it compared, never another
//!   client's server; a miss only costs a fresh schedule.
//! - A refresh of one's own live slot compare-and-swaps the value read with it: if another
//!   client claimed the slot since, its value differs (every claim writes an expiry later than
//!   the one it replaced, which had passed), the swap fails and the newer template stands.
//! - As with IPv4, a claim and a refresh of the same slot racing may drop the refresh: the
//!   client's next connection is scheduled afresh.

use crate::snapshot::{RealId, ServiceId};
use std::net::{Ipv4Addr, Ipv6Addr};
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

/// The splitmix64 step and finaliser.
#[inline(always)]
fn mix(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
        // Over the keyed value: clients cannot aim at one window.
        let z = mix(key ^ self.seed);
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

/// `addr & netmask`, for IPv6.
#[inline]
pub fn masked6(addr: Ipv6Addr, netmask: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(addr) & u128::from(netmask))
}

/// The IPv6 netmask of prefix length `len` (`/64`: `ffff:ffff:ffff:ffff::`); 128 and beyond:
/// all ones.
pub fn prefix_mask6(len: u8) -> Ipv6Addr {
    let zeros = 128 - u32::from(len.min(128));
    Ipv6Addr::from(u128::MAX.checked_shl(zeros).unwrap_or(0))
}

/// The prefix length of the contiguous IPv6 netmask `mask` (its leading ones).
pub fn prefix_len6(mask: Ipv6Addr) -> u8 {
    u128::from(mask).leading_ones() as u8
}

// The tag of a `Templates6` slot: bits 0..32 the service, then the states, then the version.
const TAG_SERVICE: u64 = 0xffff_ffff;
const TAG_LIVE: u64 = 1 << 32;
const TAG_BUSY: u64 = 1 << 33;
const TAG_VERSION_SHIFT: u32 = 34;

/// Two slots to a cache line.
#[derive(Debug, Default)]
#[repr(align(32))]
struct Slot6 {
    tag: AtomicU64,
    hi: AtomicU64,
    lo: AtomicU64,
    value: AtomicU64,
}

/// The templates of every persistent IPv6 service of one director: [`Templates`] for IPv6
/// clients, each slot published as the module doc describes.
#[derive(Debug)]
pub struct Templates6 {
    slots: Box<[Slot6]>,
    seed: u64,
}

/// The address words of `client`.
#[inline]
fn words(client: Ipv6Addr) -> (u64, u64) {
    let bits = u128::from(client);
    ((bits >> 64) as u64, bits as u64)
}

impl Slot6 {
    /// The tag and value of this slot if it holds a template of `service` for the address
    /// `hi`/`lo`, read consistently (see the module doc), whether expired or not.
    #[inline]
    fn read(&self, service: ServiceId, hi: u64, lo: u64) -> Option<(u64, u64)> {
        let tag = self.tag.load(Ordering::Acquire);
        if tag & (TAG_BUSY | TAG_LIVE | TAG_SERVICE) != TAG_LIVE | u64::from(service) {
            return None;
        }
        if self.hi.load(Ordering::Acquire) != hi || self.lo.load(Ordering::Acquire) != lo {
            return None;
        }
        let value = self.value.load(Ordering::Acquire);
        // Unchanged: no writer claimed the slot since the first load, so the words and the
        // value are those published with `tag`.
        (self.tag.load(Ordering::Acquire) == tag).then_some((tag, value))
    }
}

impl Templates6 {
    /// A table of at least `slots` slots (rounded up to a power of two), all allocated now.
    pub fn new(slots: usize, seed: u64) -> Self {
        let n = slots.max(WINDOW).next_power_of_two();
        Templates6 {
            slots: (0..n).map(|_| Slot6::default()).collect(),
            seed,
        }
    }

    fn window(&self, service: ServiceId, hi: u64, lo: u64) -> impl Iterator<Item = &Slot6> {
        let z = mix(mix(mix(hi ^ self.seed) ^ lo) ^ u64::from(service));
        let mask = self.slots.len() - 1;
        let start = z as usize & mask;
        (0..WINDOW).map(move |i| &self.slots[(start + i) & mask])
    }

    /// The real server of `client`'s live template for `service`, if any.
    #[inline]
    pub fn get(&self, service: ServiceId, client: Ipv6Addr, now_s: u32) -> Option<RealId> {
        let (hi, lo) = words(client);
        self.window(service, hi, lo).find_map(|slot| {
            let (_, value) = slot.read(service, hi, lo)?;
            let (real, expires) = unpack(value);
            (expires > now_s).then_some(real)
        })
    }

    /// Records (or refreshes) `client` -> `real` for `service` until `expires_s`; false when
    /// no slot was free.
    #[inline]
    pub fn put(
        &self,
        service: ServiceId,
        client: Ipv6Addr,
        real: RealId,
        now_s: u32,
        expires_s: u32,
    ) -> bool {
        let (hi, lo) = words(client);
        let value = value(real, expires_s);
        for slot in self.window(service, hi, lo) {
            if let Some((_, old)) = slot.read(service, hi, lo) {
                // Fails only if the value changed since: another refresh of this client (whose
                // template stands) or another client's claim (which must not be overwritten).
                let _ =
                    slot.value
                        .compare_exchange(old, value, Ordering::AcqRel, Ordering::Relaxed);
                return true;
            }
        }
        for slot in self.window(service, hi, lo) {
            let current = slot.tag.load(Ordering::Acquire);
            let free = current == 0
                || (current & TAG_BUSY == 0
                    && unpack(slot.value.load(Ordering::Acquire)).1 <= now_s);
            if !free {
                continue;
            }
            let version = (current >> TAG_VERSION_SHIFT).wrapping_add(1) << TAG_VERSION_SHIFT;
            if slot
                .tag
                .compare_exchange(
                    current,
                    version | TAG_BUSY,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                slot.hi.store(hi, Ordering::Release);
                slot.lo.store(lo, Ordering::Release);
                slot.value.store(value, Ordering::Release);
                slot.tag
                    .store(version | TAG_LIVE | u64::from(service), Ordering::Release);
                return true;
            }
        }
        false
    }
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

    fn client6(group: u16, host: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, group, 0, 0, 0, host)
    }

    #[test]
    fn templates6_map_refresh_and_expire() {
        let t = Templates6::new(64, 7);
        assert_eq!(t.get(1, client6(0, 1), 0), None);
        assert!(t.put(1, client6(0, 1), 5, 0, 300));
        assert_eq!(t.get(1, client6(0, 1), 299), Some(5));
        assert_eq!(t.get(1, client6(0, 1), 300), None, "expired");
        assert_eq!(t.get(2, client6(0, 1), 0), None, "other service");
        assert_eq!(t.get(1, client6(0, 2), 0), None, "other client");
        assert_eq!(t.get(1, client6(1, 1), 0), None, "other high word");
        assert!(t.put(1, client6(0, 1), 6, 299, 600));
        assert_eq!(t.get(1, client6(0, 1), 500), Some(6), "refreshed");
        // An expired template is still refreshed in place, not duplicated.
        assert!(t.put(1, client6(0, 1), 7, 700, 1000));
        assert_eq!(t.get(1, client6(0, 1), 800), Some(7));
    }

    #[test]
    fn templates6_group_by_prefix() {
        let t = Templates6::new(64, 9);
        let m64 = prefix_mask6(64);
        let m48 = prefix_mask6(48);
        let (a, b) = (client6(1, 0x10), client6(1, 0x20));
        assert_eq!(masked6(a, m64), masked6(b, m64), "one /64");
        assert!(t.put(3, masked6(a, m64), 11, 0, 100));
        assert_eq!(t.get(3, masked6(b, m64), 1), Some(11), "b shares a's /64");
        assert_eq!(t.get(3, b, 1), None, "unmasked: another key");
        // 2001:2:0:2::/64 is another /64 but the same /48.
        let c = client6(2, 0x10);
        assert_eq!(t.get(3, masked6(c, m64), 1), None);
        assert!(t.put(3, masked6(c, m48), 12, 0, 100));
        assert_eq!(t.get(3, masked6(a, m48), 1), Some(12), "a shares c's /48");
        assert_eq!(
            t.get(3, masked6(a, m64), 1),
            Some(11),
            "the /64 key is apart"
        );
    }

    #[test]
    fn prefix_masks() {
        assert_eq!(prefix_mask6(128), Ipv6Addr::from(u128::MAX));
        assert_eq!(prefix_mask6(0), Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            prefix_mask6(64),
            "ffff:ffff:ffff:ffff::".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(prefix_mask6(1), "8000::".parse::<Ipv6Addr>().unwrap());
        for len in 0..=128 {
            assert_eq!(prefix_len6(prefix_mask6(len)), len);
        }
        assert_eq!(
            masked6(client6(7, 9), prefix_mask6(56)),
            Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0)
        );
    }

    #[test]
    fn templates6_expired_slots_are_reused_and_a_full_window_refuses() {
        let t = Templates6::new(8, 1);
        for i in 0..8 {
            assert!(t.put(1, client6(0, i), u32::from(i), 0, 10));
        }
        assert!(!t.put(1, client6(0, 100), 1, 5, 10), "all live: no room");
        assert!(
            t.put(1, client6(0, 100), 1, 10, 20),
            "expired ones make room"
        );
        assert_eq!(t.get(1, client6(0, 100), 15), Some(1));
        assert_eq!(t.get(1, client6(0, 0), 5), None, "or its slot was taken");
    }

    #[test]
    fn templates6_concurrent_puts_never_mix_clients() {
        let t = Templates6::new(1 << 12, 3);
        std::thread::scope(|s| {
            for w in 0..4u32 {
                let t = &t;
                s.spawn(move || {
                    for i in 0..2000u16 {
                        let n = i % 500;
                        t.put(1, client6(n % 7, n), u32::from(n), 0, 1000 + w);
                    }
                });
            }
        });
        for n in 0..500u16 {
            let c = client6(n % 7, n);
            assert_eq!(t.get(1, c, 0), Some(u32::from(n)), "client {c}");
        }
    }

    /// The real server every client of `stress6` is given: its own, found by nobody else.
    fn real_of(client: Ipv6Addr) -> RealId {
        (u128::from(client) % 1_000_003) as RealId
    }

    /// Writers claim, refresh and reclaim the slots of one window over and over (every
    /// template is expired for them as soon as it is made, alive for the reader) while a
    /// reader looks clients up: a lookup finds a client's own server or nothing.
    fn stress6(clients: &[Ipv6Addr], slots: usize, rounds: u32) {
        let t = Templates6::new(slots, 5);
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let writers: Vec<_> = (0..2u32)
                .map(|w| {
                    let t = &t;
                    s.spawn(move || {
                        for now in 1..=rounds {
                            for (i, &c) in clients.iter().enumerate() {
                                if (i as u32 + w) % 2 == 0 {
                                    t.put(9, c, real_of(c), now, now);
                                }
                            }
                        }
                    })
                })
                .collect();
            let reader = s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for &c in clients {
                        if let Some(real) = t.get(9, c, 0) {
                            assert_eq!(real, real_of(c), "client {c} got another's server");
                        }
                    }
                }
            });
            for w in writers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            reader.join().unwrap();
        });
    }

    #[test]
    fn templates6_lookups_under_reclaiming_puts_never_mix_clients() {
        // Clients differing in one address word only, in both, and in the service's stead.
        let clients: Vec<Ipv6Addr> = (0..24u16)
            .map(|i| client6(i % 3, i / 3))
            .chain([Ipv6Addr::new(0x2001, 2, 0xffff, 0, 0, 0, 0, 1)])
            .collect();
        stress6(&clients, 8, 3000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

        /// Arbitrary clients of 2001:2::/48 (many sharing a word), tables of one or a few
        /// windows.
        #[test]
        fn templates6_never_return_another_clients_server(
            hosts in proptest::collection::hash_set((0u16..4, 0u64..8, 0u64..4), 2..24),
            windows in 1usize..4,
        ) {
            let clients: Vec<Ipv6Addr> = hosts
                .into_iter()
                .map(|(g, mid, low)| {
                    Ipv6Addr::from((0x2001_0002_0000u128 << 80) | (u128::from(g) << 64)
                        | (u128::from(mid) << 32) | u128::from(low))
                })
                .collect();
            stress6(&clients, windows * WINDOW, 300);
        }
    }

    #[test]
    fn netmask_groups_clients() {
        let m = Ipv4Addr::new(255, 255, 255, 0);
        assert_eq!(masked(client(7), m), client(0));
        assert_eq!(masked(client(7), Ipv4Addr::BROADCAST), client(7));
    }
}
