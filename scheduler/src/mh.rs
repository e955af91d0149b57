//! Maglev hashing (`mh`), as IPVS's ip_vs_mh.c (with its `mh-fallback` and `mh-port` flags),
//! after Maglev (Eisenbud et al., NSDI 2016, section 3.4).
//!
//! A lookup table of M slots (M prime, 65537 by default) maps a hash of the client to a server.
//! It is built once, in [`Maglev::new`], as ip_vs_mh_permutate and ip_vs_mh_populate build it:
//! - every server gets a preference list, the permutation `offset, offset + skip,
//!   offset + 2 skip, ... (mod M)` of all slots, with `offset = h1(server) mod M` and
//!   `skip = h2(server) mod (M - 1) + 1` (M prime and 1 <= skip < M, so every slot appears once);
//! - servers take turns, in their canonical order ([`crate::canonical_order`]: by address and
//!   port; IPVS takes them in list order), each claiming the next slot of its list that is
//!   still empty, until every slot is claimed. A server has `turns` consecutive claims per round, its
//!   weight divided by the gcd of the positive weights, shifted right until the largest has at
//!   most `(floor(log2 M) + 1) / 2` bits (IPVS: `(lw / gcd) >> rshift`, at least 1 for a positive
//!   weight; IP_VS_MH_TAB_BITS, 8 bits for M = 65537); a server of weight 0 claims nothing.
//!
//! So slots split in proportion to the turns (every claim takes exactly one slot, so each server
//! is within one round of its share), and since each server's preferences do not depend on the
//! others, adding or removing one of N servers moves about 1/N of the slots plus a little. That
//! bound is statistical, as in the paper: over 20,000 random sets of 2 to 100 servers at
//! M = 65537, removing one moved more than 1/N + 1% of the table 24 times (worst 1/N + 4.7%).
//! 19 of those had two servers whose skips collide (chance about N^2 / 2(M - 1), 7% for 100
//! servers): such servers walk the same cycle of slots and claim along it alternately, so a
//! change elsewhere that shifts their turns can swap long runs of slots between them (far more
//! than 1% for a handful of servers, where a collision is rarer still).
//!
//! Hashes are the kernel's: `ip_vs_mh_hashkey(addr, port, key, offset) =
//! hsiphash(&v, 4, key)` with `v = offset + ntohs(port) + ntohl(addr)` (u32, wrapping), where
//! hsiphash on a 64-bit kernel is SipHash-1-3 with a 128-bit key, its 64-bit result truncated to
//! 32 bits (lib/siphash.c; checked here against lib/siphash_kunit.c's vectors), and `v` is
//! hashed as its 4 little-endian bytes (the kernel hashes `v` in memory: x86-64, arm64). h1 and
//! h2 use IPVS's fixed keys (generate_hash_secret): h1 both halves 2654435761, h2 both halves
//! 2654446892. A server's identity is its address and port (h1/h2 of `addr` + `port`; as in IPVS,
//! servers whose address plus port are equal share a preference list, and they still take turns
//! along it). Nothing is seeded per process and the order of the list does not matter, so two
//! directors with the same servers build identical tables (as scale-out behind ECMP needs), and
//! with `with_table_size(dests, flags, 4093)` (IPVS's default size, CONFIG_IP_VS_MH_TAB_INDEX
//! 12) the same table as IPVS on a little-endian 64-bit kernel for servers added in ascending
//! order.
//!
//! A pick hashes the client address (`flow.caddr`, plus its port with `mh-port` for TCP, UDP and
//! SCTP, as ip_vs_mh_get_port) with h1 into a slot: `hashkey(caddr, port, h1, 0) mod M`. If that
//! slot's server is available (weight above 0, not overloaded) it is the answer. Otherwise,
//! without `mh-fallback`, there is none; with it, ip_vs_mh_get_fallback rehashes the client with
//! `roffset = (offset + ihash) mod M` for `offset` in 0..M and takes the first available server
//! found. When no server owning a slot is available at all that walk can only fail, so xvs
//! answers none at once (same result, without up to M hashes per new connection). Picks read the
//! table and never allocate.
//!
//! IPVS builds the table from each server's `last_weight`, the last weight it had above 0, so
//! setting a server's weight to 0 keeps its slots and only diverts its clients (or drops them
//! without fallback). `pick` takes the current servers separately from the table, so a control
//! plane that wants exactly that builds with the last positive weights and picks with the
//! current ones; built from weight 0 a server simply has no slots.

use crate::{fold, Dest, Flags, Flow, Load};
use std::fmt;
use std::net::IpAddr;

/// The default table size M: prime, as Maglev's paper and Katran use. (IPVS's default is 4093,
/// and its choices are 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071.)
pub const DEFAULT_TABLE_SIZE: usize = 65_537;
/// Larger sizes asked of [`Maglev::with_table_size`] are clamped to this (then raised to the
/// next prime, as any size is).
pub const MAX_TABLE_SIZE: usize = 1 << 24;
/// Servers past this index get no slots (the table stores `u16` indices; IPVS itself refuses
/// more servers than slots).
pub const MAX_DESTS: usize = u16::MAX as usize;

/// An unclaimed slot while building, and never in a built table.
const EMPTY: u16 = u16::MAX;

/// hsiphash key: `hsiphash_key_t`, two `unsigned long` (u64 on 64-bit kernels).
type Key = [u64; 2];
/// ip_vs_mh.c generate_hash_secret: `hash1`, for offsets and for clients.
const HASH1: Key = [2_654_435_761, 2_654_435_761];
/// ip_vs_mh.c generate_hash_secret: `hash2`, for skips.
const HASH2: Key = [2_654_446_892, 2_654_446_892];

/// lib/siphash.c SIPROUND.
#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// lib/siphash.c `hsiphash` on a 64-bit kernel: SipHash-1-3 (one compression round per 8-byte
/// word, three finalisation rounds) truncated to its low 32 bits.
fn hsiphash(data: &[u8], key: &Key) -> u32 {
    // PREAMBLE
    let mut v = [
        0x736f_6d65_7073_6575 ^ key[0],
        0x646f_7261_6e64_6f6d ^ key[1],
        0x6c79_6765_6e65_7261 ^ key[0],
        0x7465_6462_7974_6573 ^ key[1],
    ];
    let mut b = (data.len() as u64) << 56;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut m = [0u8; 8];
        m.copy_from_slice(w);
        let m = u64::from_le_bytes(m);
        v[3] ^= m;
        sipround(&mut v);
        v[0] ^= m;
    }
    for (i, &byte) in words.remainder().iter().enumerate() {
        b |= u64::from(byte) << (8 * i);
    }
    // HPOSTAMBLE
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    ((v[0] ^ v[1]) ^ (v[2] ^ v[3])) as u32
}

/// ip_vs_mh_hashkey: `port` in host order (0 unless hashing ports); IPv6 addresses folded.
#[inline]
fn hashkey(addr: impl Into<IpAddr>, port: u16, key: &Key, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(u32::from(port))
        .wrapping_add(fold(addr.into()));
    hsiphash(&v.to_le_bytes(), key)
}

/// ip_vs_mh_get_port: the client port for TCP, UDP and SCTP, 0 for anything else.
#[inline]
fn hash_port(flow: &Flow, flags: Flags) -> u16 {
    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const SCTP: u8 = 132;
    match flow.proto {
        TCP | UDP | SCTP if flags.port => flow.cport,
        _ => 0,
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn is_prime(n: usize) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// IP_VS_MH_TAB_BITS for a table of `m` slots: IPVS takes half of CONFIG_IP_VS_MH_TAB_INDEX,
/// the bit length of its table sizes (e.g. 12 for 4093, giving 6); generalised to any `m`.
fn turn_bits(m: usize) -> u32 {
    // (floor(log2 m) + 1) / 2
    m.ilog2().div_ceil(2)
}

/// Turns per round for each server: ip_vs_mh_gcd_weight, ip_vs_mh_shift_weight and
/// `((lw / gcd) >> rshift) ?: (lw != 0)` of ip_vs_mh_permutate. All 0 when no weight is
/// positive.
fn turns(dests: &[Dest], m: usize) -> impl Iterator<Item = u32> + '_ {
    let g = dests
        .iter()
        .map(|d| d.weight)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    let max = dests.iter().map(|d| d.weight).max().unwrap_or(0);
    // fls(max / gcd) - IP_VS_MH_TAB_BITS, at least 0 (0 when no weight is positive)
    let shift = max.checked_div(g).map_or(0, |mw| {
        (u32::BITS - mw.leading_zeros()).saturating_sub(turn_bits(m))
    });
    dests.iter().enumerate().map(move |(i, d)| {
        if g == 0 || i >= MAX_DESTS {
            return 0;
        }
        match (d.weight / g) >> shift {
            0 => u32::from(d.weight != 0),
            t => t,
        }
    })
}

pub struct Maglev {
    /// Slot -> index into `dests`: every slot is claimed, or the table is empty (no server has
    /// a positive weight).
    table: Box<[u16]>,
    /// M, prime.
    m: u32,
    /// Slots per server, by index into `dests` (for listings, and the fallback's short cut).
    slots: Box<[u32]>,
    flags: Flags,
}

impl fmt::Debug for Maglev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maglev")
            .field("table_size", &self.m)
            .field("slots", &self.slots)
            .field("flags", &self.flags)
            .finish()
    }
}

impl Default for Maglev {
    fn default() -> Self {
        Maglev::new(&[], Flags::default())
    }
}

impl Maglev {
    /// The table of [`DEFAULT_TABLE_SIZE`] slots for `dests` (in their canonical order).
    pub fn new(dests: &[Dest], flags: Flags) -> Self {
        Maglev::with_table_size(dests, flags, DEFAULT_TABLE_SIZE)
    }

    /// The table of `m` slots for `dests` (in their canonical order). `m` should be prime (Maglev needs it
    /// for every skip to reach every slot); any other value is raised to the next prime, after
    /// being clamped to 2..=[`MAX_TABLE_SIZE`].
    pub fn with_table_size(dests: &[Dest], flags: Flags, m: usize) -> Self {
        let mut m = m.clamp(2, MAX_TABLE_SIZE);
        while !is_prime(m) {
            m += 1;
        }
        let m32 = m as u32; // m <= 2^24 + a few
        let mut slots = vec![0u32; dests.len()].into_boxed_slice();

        // ip_vs_mh_permutate: (offset, skip, perm, turns) per server.
        struct Setup {
            skip: usize,
            perm: usize,
            turns: u32,
        }
        let mut setup: Vec<Setup> = dests
            .iter()
            .zip(turns(dests, m))
            .map(|(d, turns)| {
                if turns == 0 {
                    return Setup {
                        skip: 1,
                        perm: 0,
                        turns,
                    };
                }
                let offset = hashkey(d.addr, d.port, &HASH1, 0) % m32;
                let skip = hashkey(d.addr, d.port, &HASH2, 0) % (m32 - 1) + 1;
                Setup {
                    skip: skip as usize,
                    perm: offset as usize,
                    turns,
                }
            })
            .collect();
        if setup.iter().all(|s| s.turns == 0) {
            return Maglev {
                table: Box::new([]),
                m: m32,
                slots,
                flags,
            };
        }

        // ip_vs_mh_populate: servers take `turns` claims each, in canonical order, round after
        // round, until every slot is claimed.
        let order = crate::canonical_order(dests);
        let mut table = vec![EMPTY; m].into_boxed_slice();
        let mut n = 0;
        'fill: loop {
            for &i in &order {
                let s = &mut setup[i];
                for _ in 0..s.turns {
                    // M prime and 0 < skip < M: the walk reaches every slot, and one is empty.
                    while table[s.perm] != EMPTY {
                        s.perm += s.skip;
                        if s.perm >= m {
                            s.perm -= m;
                        }
                    }
                    // i < MAX_DESTS (turns() gives 0 past it), so it fits and is not EMPTY.
                    table[s.perm] = i as u16;
                    slots[i] += 1;
                    n += 1;
                    if n == m {
                        break 'fill;
                    }
                }
            }
        }
        Maglev {
            table,
            m: m32,
            slots,
            flags,
        }
    }

    /// M, the number of slots.
    pub fn table_size(&self) -> usize {
        self.m as usize
    }

    /// How many slots each server (by index into `dests`) owns.
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// The server owning slot `s`, if any (none only when no server had a weight).
    pub fn slot(&self, s: usize) -> Option<usize> {
        self.table.get(s).map(|&i| usize::from(i))
    }

    /// ip_vs_mh_get, or ip_vs_mh_get_fallback with `mh-fallback`.
    #[inline]
    pub fn pick<L: Load + ?Sized>(&self, dests: &[Dest], load: &L, flow: &Flow) -> Option<usize> {
        if self.table.is_empty() {
            return None;
        }
        let port = hash_port(flow, self.flags);
        let available = |i: usize| dests.get(i).is_some_and(|d| d.accepts(load, i));

        let ihash = hashkey(flow.caddr, port, &HASH1, 0) % self.m;
        let first = usize::from(self.table[ihash as usize]);
        if available(first) {
            return Some(first);
        }
        if !self.flags.fallback {
            return None;
        }
        // The walk below can only succeed on a slot of an available server: without one, skip
        // its up to M hashes.
        let any = self
            .slots
            .iter()
            .enumerate()
            .any(|(i, &n)| n > 0 && available(i));
        if !any {
            return None;
        }
        // "loop around the table starting from ihash to find a new dest"
        for offset in 0..self.m {
            let roffset = (offset + ihash) % self.m;
            let hash = hashkey(flow.caddr, port, &HASH1, roffset) % self.m;
            let i = usize::from(self.table[hash as usize]);
            if available(i) {
                return Some(i);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::dests;
    use crate::NoLoad;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn flow(caddr: impl Into<std::net::IpAddr>, cport: u16) -> Flow {
        Flow {
            proto: 6,
            caddr: caddr.into(),
            cport,
            vaddr: Ipv4Addr::new(198, 18, 0, 129).into(),
            vport: 80,
        }
    }

    /// A client address from a counter (splitmix64).
    fn client(n: u64) -> Ipv4Addr {
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ipv4Addr::from((z ^ (z >> 31)) as u32)
    }

    fn fallback() -> Flags {
        Flags {
            fallback: true,
            port: false,
        }
    }

    fn counts(mh: &Maglev, n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for s in 0..mh.table_size() {
            c[mh.slot(s).unwrap()] += 1;
        }
        c
    }

    /// lib/siphash_kunit.c: key 00..0f, input 00..(len-1), BITS_PER_LONG == 64.
    #[test]
    fn hsiphash_matches_kernel_vectors() {
        const VECTORS: [u32; 64] = [
            0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
            0x9bb11140, 0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7,
            0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040,
            0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35,
            0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e,
            0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944,
            0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46,
            0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
            0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
            0xb7bbb3a8,
        ];
        let key = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];
        let input: Vec<u8> = (0..64).collect();
        for (len, &want) in VECTORS.iter().enumerate() {
            assert_eq!(hsiphash(&input[..len], &key), want, "length {len}");
        }
        // hsiphash_1u32(0x03020100) is vector 4: the 4-byte little-endian form hashkey uses.
        assert_eq!(hsiphash(&0x0302_0100u32.to_le_bytes(), &key), VECTORS[4]);
    }

    #[test]
    fn turns_follow_ip_vs_mh_permutate() {
        let t = |w: &[u32], m| turns(&dests(w), m).collect::<Vec<_>>();
        // Divided by the gcd.
        assert_eq!(t(&[4, 0, 8, 12], 65_537), [1, 0, 2, 3]);
        // 8 bits for 65537 (index 17), 6 for 4093 (IPVS's default, index 12), 4 for 251.
        assert_eq!(
            (turn_bits(65_537), turn_bits(4093), turn_bits(251)),
            (8, 6, 4)
        );
        assert_eq!(turn_bits(131_071), 8);
        // 300 has 9 bits: shifted right once; 1 >> 1 is 0, raised to 1.
        assert_eq!(t(&[300, 1, 100], 65_537), [150, 1, 50]);
        // At 4093: 6 bits, so 300 >> 3.
        assert_eq!(t(&[300, 1, 100], 4093), [37, 1, 12]);
        assert_eq!(t(&[0, 0], 65_537), [0, 0]);
    }

    #[test]
    fn table_sizes_are_prime() {
        let d = dests(&[1, 1]);
        for (asked, got) in [
            (0, 2),
            (1, 2),
            (251, 251),
            (4093, 4093),
            (4094, 4099),
            (65_536, 65_537),
        ] {
            assert_eq!(
                Maglev::with_table_size(&d, Flags::default(), asked).table_size(),
                got
            );
        }
        assert_eq!(
            Maglev::new(&d, Flags::default()).table_size(),
            DEFAULT_TABLE_SIZE
        );
        // Tiny tables still fill every slot.
        let mh = Maglev::with_table_size(&dests(&[1, 1, 1]), Flags::default(), 2);
        assert_eq!(counts(&mh, 3).iter().sum::<usize>(), 2);
    }

    #[test]
    fn deterministic_tables_and_picks() {
        let d = dests(&[1, 2, 3, 1, 1]);
        let a = Maglev::new(&d, Flags::default());
        let b = Maglev::new(&d, Flags::default());
        assert_eq!(a.table, b.table);
        assert_eq!(a.slots, b.slots);
        for n in 0..2000 {
            let f = flow(client(n), n as u16);
            let i = a.pick(&d, &NoLoad, &f);
            assert!(i.is_some());
            assert_eq!(i, a.pick(&d, &NoLoad, &f));
            assert_eq!(i, b.pick(&d, &NoLoad, &f));
            // Without mh-port the client port does not matter.
            assert_eq!(i, a.pick(&d, &NoLoad, &flow(f.caddr, 9)));
        }
    }

    /// Frozen outputs, so that a change of hash or build order (or any per-process seeding)
    /// shows. They were also checked against a C transcription of lib/siphash.c and
    /// ip_vs_mh_permutate/ip_vs_mh_populate.
    #[test]
    fn golden_table() {
        let d = [
            Dest::new(Ipv4Addr::new(10, 0, 0, 1), 80, 1),
            Dest::new(Ipv4Addr::new(10, 0, 0, 2), 80, 2),
            Dest::new(Ipv4Addr::new(10, 0, 0, 3), 8080, 1),
        ];
        let mh = Maglev::with_table_size(&d, Flags::default(), 251);
        let first: Vec<_> = (0..24).map(|s| mh.slot(s).unwrap()).collect();
        assert_eq!(first, GOLDEN_FIRST_SLOTS);
        assert_eq!(mh.slots(), GOLDEN_SLOTS);
        assert_eq!(
            hashkey(Ipv4Addr::new(10, 0, 0, 1), 80, &HASH1, 0),
            GOLDEN_H1
        );
        assert_eq!(
            hashkey(Ipv4Addr::new(10, 0, 0, 1), 80, &HASH2, 0),
            GOLDEN_H2
        );
        let big = Maglev::new(&d, Flags::default());
        let picks: Vec<_> = (1..=8)
            .map(|n| {
                big.pick(&d, &NoLoad, &flow(Ipv4Addr::new(192, 0, 2, n), 0))
                    .unwrap()
            })
            .collect();
        assert_eq!(picks, GOLDEN_PICKS);
    }

    const GOLDEN_FIRST_SLOTS: [usize; 24] = [
        2, 2, 1, 1, 2, 0, 1, 1, 1, 0, 0, 0, 2, 1, 1, 2, 1, 1, 1, 2, 2, 1, 1, 0,
    ];
    const GOLDEN_SLOTS: [u32; 3] = [63, 126, 62];
    const GOLDEN_H1: u32 = 1_134_300_350;
    const GOLDEN_H2: u32 = 2_545_146_951;
    const GOLDEN_PICKS: [usize; 8] = [1, 0, 1, 1, 0, 1, 0, 0];

    /// 40 servers of weights 0, 3, 6, ... 18 at IPVS's default size: FNV-1a of the whole
    /// table (slot owner + 1, as u32), frozen and checked against the C transcription.
    #[test]
    fn golden_weighted_table_at_ipvs_default_size() {
        let d: Vec<Dest> = (0..40)
            .map(|i| Dest::new(Ipv4Addr::from(0xC613_0000 + i), 80, (i % 7) * 3))
            .collect();
        let mh = Maglev::with_table_size(&d, Flags::default(), 4093);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for s in 0..4093 {
            h ^= mh.slot(s).unwrap() as u64 + 1;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(h, 1_413_793_699_525_626_431);
    }

    #[test]
    fn shares_are_fair() {
        for n in [1usize, 2, 3, 7, 10, 100] {
            let mh = Maglev::new(&dests(&vec![1; n]), Flags::default());
            let m = mh.table_size() as f64;
            for (i, &c) in counts(&mh, n).iter().enumerate() {
                assert!(
                    (c as f64 - m / n as f64).abs() <= 0.01 * m,
                    "{n} servers: {i} has {c}"
                );
            }
        }
    }

    #[test]
    fn weight_zero_gets_no_slots_and_no_weights_no_table() {
        let d = dests(&[1, 0, 2]);
        let mh = Maglev::new(&d, fallback());
        assert_eq!(mh.slots()[1], 0);
        let c = counts(&mh, 3);
        assert!(((c[2] as f64 / c[0] as f64) - 2.0).abs() < 0.01);
        for w in [&[][..], &[0, 0][..]] {
            let d = dests(w);
            for flags in [Flags::default(), fallback()] {
                let mh = Maglev::new(&d, flags);
                assert_eq!(mh.slot(0), None);
                assert_eq!(mh.pick(&d, &NoLoad, &flow(client(1), 1)), None);
            }
        }
    }

    #[test]
    fn fallback_skips_unavailable_and_none_without_it() {
        // Built with three equal servers; then server 1 is quiesced (weight 0 kept in its
        // slots, as IPVS's last_weight keeps them) and server 2 overloaded.
        let built = dests(&[1, 1, 1]);
        let mut now = built.clone();
        now[1].weight = 0;
        now[2].upper_threshold = 5;
        let load: [(u64, u64); 3] = [(0, 0), (0, 0), (3, 2)];
        let plain = Maglev::new(&built, Flags::default());
        let fb = Maglev::new(&built, fallback());
        let (mut none, mut moved) = (0, 0);
        for n in 0..20_000 {
            let f = flow(client(n), 0);
            let owner = plain.pick(&built, &NoLoad, &f).unwrap();
            assert_eq!(fb.pick(&built, &NoLoad, &f), Some(owner));
            match plain.pick(&now, &load[..], &f) {
                Some(i) => assert_eq!((i, owner), (0, 0)),
                None => {
                    assert_ne!(owner, 0);
                    none += 1;
                }
            }
            // Clients of server 0 stay; the others move to it, the only one available.
            assert_eq!(fb.pick(&now, &load[..], &f), Some(0));
            moved += usize::from(owner != 0);
        }
        assert_eq!(none, moved);
        assert!(none > 10_000);
        // Nothing available: None either way.
        let down: [(u64, u64); 3] = [(0, 0), (0, 0), (9, 9)];
        let mut gone = now.clone();
        gone[0].weight = 0;
        assert_eq!(fb.pick(&gone, &down[..], &flow(client(5), 0)), None);
        assert_eq!(plain.pick(&gone, &down[..], &flow(client(5), 0)), None);
    }

    #[test]
    fn fallback_rehashes_as_ip_vs_mh_get_fallback() {
        // Ten servers, only server 7 down: the fallback answer is the first available server on
        // the kernel's rehash walk, transcribed here independently of pick.
        let d = dests(&[1; 10]);
        let mh = Maglev::with_table_size(&d, fallback(), 4093);
        let mut now = d.clone();
        now[7].weight = 0;
        let mut checked = 0;
        for n in 0..5000 {
            let f = flow(client(n), 0);
            let m = 4093u32;
            let ihash = hashkey(f.caddr, 0, &HASH1, 0) % m;
            if mh.slot(ihash as usize) != Some(7) {
                continue;
            }
            let want = (0..m)
                .map(|o| hashkey(f.caddr, 0, &HASH1, (o + ihash) % m) % m)
                .map(|h| mh.slot(h as usize).unwrap())
                .find(|&i| i != 7);
            assert_eq!(mh.pick(&now, &NoLoad, &f), want);
            checked += 1;
        }
        assert!(checked > 100);
    }

    #[test]
    fn port_is_hashed_only_with_the_flag() {
        let d = dests(&[1; 16]);
        let mh = Maglev::new(
            &d,
            Flags {
                fallback: false,
                port: true,
            },
        );
        let c = Ipv4Addr::new(10, 9, 8, 7);
        let by_port: std::collections::BTreeSet<_> = (0..64)
            .map(|p| mh.pick(&d, &NoLoad, &flow(c, 2000 + p)))
            .collect();
        assert!(by_port.len() > 4);
        let icmp = |p| Flow {
            proto: 1,
            ..flow(c, p)
        };
        let first = mh.pick(&d, &NoLoad, &icmp(0));
        assert!((0..64).all(|p| mh.pick(&d, &NoLoad, &icmp(p)) == first));
    }

    /// Slots whose owner (by identity) differs between two tables.
    fn moved(a: &Maglev, da: &[Dest], b: &Maglev, db: &[Dest]) -> usize {
        (0..a.table_size())
            .filter(|&s| {
                let x = &da[a.slot(s).unwrap()];
                let y = &db[b.slot(s).unwrap()];
                (x.addr, x.port) != (y.addr, y.port)
            })
            .count()
    }

    fn skip(d: &Dest, m: usize) -> u32 {
        hashkey(d.addr, d.port, &HASH2, 0) % (m as u32 - 1) + 1
    }

    fn distinct_skips(d: &[Dest], m: usize) -> bool {
        let mut skips: Vec<u32> = d.iter().map(|d| skip(d, m)).collect();
        skips.sort_unstable();
        skips.windows(2).all(|w| w[0] != w[1])
    }

    /// Maglev's known weak spot, in IPVS as in the paper: two servers with the same skip walk
    /// the same cycle of slots and claim them alternately, so a third server's removal, which
    /// shifts their turns, can swap long runs of slots between the two.
    #[test]
    fn two_servers_sharing_a_skip_can_cascade() {
        let mut d: Vec<Dest> = (0..33)
            .map(|i| Dest::new(Ipv4Addr::from(2_670_751_436u32 + i), 8080, 1))
            .collect();
        assert_eq!(
            (skip(&d[8], 65_537), skip(&d[32], 65_537)),
            (10_026, 10_026)
        );
        let removal = |d: &[Dest]| {
            let before = Maglev::new(d, Flags::default());
            let after = Maglev::new(&d[1..], Flags::default());
            moved(&before, d, &after, &d[1..])
        };
        let bound = 65_537 / 33 + 655;
        assert_eq!(removal(&d), 3660);
        // The same servers but the last with a skip of its own: back within 1/N + 1%.
        d[32].addr = Ipv4Addr::new(10, 99, 99, 99).into();
        assert!(distinct_skips(&d, 65_537));
        assert!(removal(&d) <= bound);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Up to 100 equal servers at M = 65537: each owns M/N slots within 1% of the table.
        #[test]
        fn equal_weights_fair_within_one_percent(n in 1usize..=100, base in any::<u32>()) {
            let d: Vec<Dest> = (0..n)
                .map(|i| Dest::new(Ipv4Addr::from(base.wrapping_add(i as u32 * 7919)), 80, 1))
                .collect();
            let mh = Maglev::new(&d, Flags::default());
            let m = mh.table_size() as f64;
            for &c in mh.slots() {
                prop_assert!((f64::from(c) - m / n as f64).abs() <= 0.01 * m);
            }
        }

        /// Weighted servers own slots in proportion to their weights, within 1% of the table.
        #[test]
        fn weighted_shares_proportional(weights in proptest::collection::vec(0u32..=20, 1..=30)) {
            let d = dests(&weights);
            let mh = Maglev::new(&d, Flags::default());
            let total: u32 = weights.iter().sum();
            let m = mh.table_size() as f64;
            for (i, &c) in mh.slots().iter().enumerate() {
                let ideal = if total == 0 { 0.0 } else { m * f64::from(weights[i]) / f64::from(total) };
                prop_assert!((f64::from(c) - ideal).abs() <= 0.01 * m, "{}: {} vs {}", i, c, ideal);
            }
        }

        /// Clients spread like the slots (within 1% of the clients).
        #[test]
        fn clients_spread_like_slots(n in 1usize..=20, seed in any::<u64>()) {
            let d = dests(&vec![1; n]);
            let mh = Maglev::with_table_size(&d, Flags::default(), 4093);
            let clients = 100_000u64;
            let mut got: HashMap<usize, u64> = HashMap::new();
            for c in 0..clients {
                *got.entry(mh.pick(&d, &NoLoad, &flow(client(seed.wrapping_add(c)), 0)).unwrap()).or_default() += 1;
            }
            for (i, &s) in mh.slots().iter().enumerate() {
                let by_slots = f64::from(s) / 4093.0;
                let by_clients = got.get(&i).copied().unwrap_or(0) as f64 / clients as f64;
                prop_assert!((by_slots - by_clients).abs() < 0.01);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 24,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x6d68_6d61_676c_6576),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Removing one of N servers remaps at most 1/N + 1% of the table, when no two servers
        /// share a skip (see `two_servers_sharing_a_skip_can_cascade`; about N^2 / 131072 of
        /// server sets, 7% at N = 100, are set aside). The bound is typical, not absolute (see
        /// the module header: about 1 in 4,000 such sets exceeds it), so the sample is drawn from
        /// a fixed seed and the suite stays deterministic.
        #[test]
        fn removal_disrupts_about_one_nth(n in 2usize..=100, gone in any::<prop::sample::Index>(), base in any::<u32>()) {
            let d: Vec<Dest> = (0..n)
                .map(|i| Dest::new(Ipv4Addr::from(base.wrapping_add(i as u32)), 8080, 1))
                .collect();
            prop_assume!(distinct_skips(&d, DEFAULT_TABLE_SIZE));
            let mut fewer = d.clone();
            fewer.remove(gone.index(n));
            let before = Maglev::new(&d, Flags::default());
            let after = Maglev::new(&fewer, Flags::default());
            let m = before.table_size() as f64;
            let moved = moved(&before, &d, &after, &fewer) as f64;
            prop_assert!(moved <= m * (1.0 / n as f64 + 0.01), "{} of {} moved, n = {}", moved, m, n);
        }
    }
}
