//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Contract:
//! - [`sum`], [`pseudo_header`] and [`pseudo_header_v6`] return *partial* sums:
//!   ones'-complement accumulations that are not yet folded or complemented, so that several can
//!   be added together (`finish(pseudo_header(..) + sum(segment))`). Each is at most
//!   `0xffff * 19`, so thousands of them can be added in a `u32` without overflow.
//! - [`fold`] performs the end-around carry, [`finish`] folds and complements: the value that
//!   goes into a header's checksum field.
//! - A buffer whose checksum field holds the correct value checks out as `data(buf) == 0`
//!   (its ones'-complement sum is `0xffff`, RFC 1071 section 1, "(3)").
//! - [`update_u16`], [`update_u32`], [`update_addr`] and [`update_addr_v6`] implement RFC 1624
//!   eqn. 3 and nothing else: they never special-case UDP's "0 means no checksum" rule; callers that rewrite UDP
//!   headers must skip the update when the field is 0 (and send a computed 0 as `0xffff`).
//!
//! All functions are pure, allocation-free and cannot panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Ones'-complement accumulation of `data` as big-endian 16-bit words; an odd trailing byte is
/// padded with a zero byte on the right.
///
/// RFC 1071 section 1: "Adjacent octets to be checksummed are paired to form 16-bit integers,
/// and the 1's complement sum of these 16-bit integers is formed." The result is congruent to
/// that sum (mod `0xffff`) and at most `0xffff`; it is zero only if every byte of `data` is zero.
#[inline]
#[must_use]
pub fn sum(data: &[u8]) -> u32 {
    // Summing big-endian 32-bit words is equivalent because 2^16 = 1 (mod 2^16 - 1)
    // (RFC 1071 section 2(A), "Parallel Summation"); a u64 cannot overflow below 16 GiB.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_be_bytes(tail));
    // Fold 64 -> 16 bits with end-around carries.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    u32::from(fold(acc as u32))
}

/// Folds a 32-bit partial sum to 16 bits with end-around carry (not complemented).
///
/// RFC 1071 section 4.1: `while (sum>>16) sum = (sum & 0xffff) + (sum >> 16);`
#[inline]
#[must_use]
pub fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16); // at most 0x1_fffe
    let sum = (sum & 0xffff) + (sum >> 16); // at most 0xffff
    sum as u16
}

/// The checksum field value for a partial sum: `!fold(sum)`.
#[inline]
#[must_use]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The Internet checksum of `data`: `finish(sum(data))`.
///
/// Computed over a header whose checksum field is zero this is the value to store; computed over
/// a header with its checksum in place it is 0 exactly when the checksum is correct.
#[inline]
#[must_use]
pub fn data(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Partial sum of the IPv4 pseudo-header of TCP and UDP (RFC 793 section 3.1, RFC 768):
/// source address, destination address, zero, protocol, TCP/UDP length.
#[inline]
#[must_use]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    [
        u16::from_be_bytes([s0, s1]),
        u16::from_be_bytes([s2, s3]),
        u16::from_be_bytes([d0, d1]),
        u16::from_be_bytes([d2, d3]),
        u16::from(protocol),
        length,
    ]
    .iter()
    .map(|&w| u32::from(w))
    .sum()
}

/// Partial sum of the IPv6 pseudo-header of TCP, UDP and ICMPv6 (RFC 8200 section 8.1):
/// source address, destination address, 32-bit upper-layer packet length, three zero bytes,
/// next header.
///
/// `upper_len` is the upper-layer length: the IPv6 payload length minus the extension headers
/// before the upper-layer header, or the length the protocol carries itself (UDP's length
/// field). `next_header` is the upper-layer protocol (6, 17, 58), not the IPv6 header's next
/// header field when extension headers follow it. RFC 8200: "If the IPv6 packet contains a
/// Routing header, the Destination Address used in the pseudo-header is that of the final
/// destination" -- choosing it is the caller's business.
#[inline]
#[must_use]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, upper_len: u32) -> u32 {
    let addrs: u32 = src
        .segments()
        .iter()
        .chain(dst.segments().iter())
        .map(|&w| u32::from(w))
        .sum();
    addrs + (upper_len >> 16) + (upper_len & 0xffff) + u32::from(next_header)
}

/// The pseudo-header of either family, for views that serve both (TCP, UDP): [`pseudo_header`]
/// with `length` cut to its 16-bit field (an IPv4 payload always fits), or [`pseudo_header_v6`].
///
/// A mixed pair is a programming error: debug builds panic; release builds sum the IPv4
/// address as IPv4-mapped (`::ffff:a.b.c.d`), giving a checksum that matches nothing.
#[inline]
#[must_use]
pub(crate) fn pseudo_header_ip(src: IpAddr, dst: IpAddr, protocol: u8, length: usize) -> u32 {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => pseudo_header(src, dst, protocol, length as u16),
        (src, dst) => {
            debug_assert!(
                src.is_ipv6() && dst.is_ipv6(),
                "pseudo-header over mixed address families: {src} -> {dst}"
            );
            let v6 = |addr: IpAddr| match addr {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            pseudo_header_v6(v6(src), v6(dst), protocol, length as u32)
        }
    }
}

/// Incrementally updates `checksum` after the 16-bit word `old` of the covered data became
/// `new`.
///
/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`. Unlike eqn. 2 (`HC' = HC - ~m - m'`) it cannot
/// produce `-0` (`0xffff`) for data that is not all zeros. A checksum of 0 is treated like any
/// other value: the UDP "no checksum" rule is the caller's business.
#[inline]
#[must_use]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    // ~HC + ~m + m'
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    // ~(...)
    finish(sum)
}

/// [`update_u16`] for an aligned 32-bit field, applying RFC 1624 eqn. 3 to both halves at once:
/// `HC' = ~(~HC + ~m_hi + ~m_lo + m'_hi + m'_lo)`.
#[inline]
#[must_use]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let (old_hi, old_lo) = ((old >> 16) as u16, old as u16);
    let (new_hi, new_lo) = ((new >> 16) as u16, new as u16);
    let sum = u32::from(!checksum)
        + u32::from(!old_hi)
        + u32::from(!old_lo)
        + u32::from(new_hi)
        + u32::from(new_lo);
    finish(sum)
}

/// [`update_u32`] for an IPv4 address (in the IPv4 header or in a TCP/UDP pseudo-header).
#[inline]
#[must_use]
pub fn update_addr(checksum: u16, old: Ipv4Addr, new: Ipv4Addr) -> u16 {
    update_u32(checksum, u32::from(old), u32::from(new))
}

/// [`update_u16`] for an IPv6 address (in a TCP/UDP/ICMPv6 pseudo-header; IPv6 has no header
/// checksum), applying RFC 1624 eqn. 3 to its eight words at once:
/// `HC' = ~(~HC + sum(~m_i) + sum(m'_i))`.
#[inline]
#[must_use]
pub fn update_addr_v6(checksum: u16, old: Ipv6Addr, new: Ipv6Addr) -> u16 {
    let sum = old
        .segments()
        .iter()
        .zip(new.segments())
        .fold(u32::from(!checksum), |acc, (&m, m_new)| {
            acc + u32::from(!m) + u32::from(m_new)
        });
    finish(sum)
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 section 4.1, transcribed: 16-bit words, 32-bit accumulator.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [b] = chunks.remainder() {
            sum += u32::from(*b) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn test_rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
        // Byte-order independence (RFC 1071 section 2(B)): swapped input, swapped sum.
        let swapped = [0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6];
        assert_eq!(fold(sum(&swapped)), 0xf2dd);
    }

    #[test]
    fn test_odd_length_and_empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(data(&[]), 0xffff);
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x0001_fffe), 0xffff);
        assert_eq!(finish(0), 0xffff);
    }

    #[test]
    fn test_ipv4_header() {
        // 192.168.0.1 -> 192.168.0.199, UDP, checksum b861.
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&header), 0);
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(data(&header), 0xb861);
    }

    #[test]
    fn test_pseudo_header() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut bytes = [0u8; 12];
        bytes[0..4].copy_from_slice(&src.octets());
        bytes[4..8].copy_from_slice(&dst.octets());
        bytes[9] = 6;
        bytes[10..12].copy_from_slice(&1480u16.to_be_bytes());
        assert_eq!(fold(pseudo_header(src, dst, 6, 1480)), fold(sum(&bytes)));
    }

    /// The RFC 8200 section 8.1 pseudo-header, byte for byte.
    fn pseudo_bytes_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> [u8; 40] {
        let mut bytes = [0u8; 40];
        bytes[0..16].copy_from_slice(&src.octets());
        bytes[16..32].copy_from_slice(&dst.octets());
        bytes[32..36].copy_from_slice(&len.to_be_bytes());
        bytes[39] = next_header;
        bytes
    }

    #[test]
    fn test_pseudo_header_v6() {
        let src: Ipv6Addr = "2001:2::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:2:ffff::ffff:2".parse().unwrap();
        for len in [0, 20, 1480, 0x1_0004, u32::MAX] {
            let bytes = pseudo_bytes_v6(src, dst, 17, len);
            assert_eq!(fold(pseudo_header_v6(src, dst, 17, len)), fold(sum(&bytes)));
        }
        // The bound the module contract promises.
        let ones = Ipv6Addr::from(u128::MAX);
        assert!(pseudo_header_v6(ones, ones, 0xff, u32::MAX) <= 0xffff * 19);
    }

    #[test]
    fn test_pseudo_header_ip() {
        let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(
            pseudo_header_ip(a.into(), b.into(), 6, 40),
            pseudo_header(a, b, 6, 40)
        );
        let (a6, b6) = (a.to_ipv6_mapped(), b.to_ipv6_compatible());
        assert_eq!(
            pseudo_header_ip(a6.into(), b6.into(), 6, 0x1_0000),
            pseudo_header_v6(a6, b6, 6, 0x1_0000)
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "mixed address families")]
    fn test_pseudo_header_ip_mixed() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let _ = pseudo_header_ip(a.into(), a.to_ipv6_mapped().into(), 6, 40);
    }

    #[test]
    fn test_update_rfc1624_example() {
        // RFC 1624 section 4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000
        // (eqn. 2 would have given 0xffff).
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    /// A random buffer of 2..1500 even length with its checksum stored in bytes 0..2.
    fn checksummed() -> impl Strategy<Value = Vec<u8>> {
        (1usize..750).prop_flat_map(|words| {
            proptest::collection::vec(any::<u8>(), words * 2).prop_map(|mut buf| {
                buf[0] = 0;
                buf[1] = 0;
                let c = data(&buf);
                buf[0..2].copy_from_slice(&c.to_be_bytes());
                buf
            })
        })
    }

    /// Checks an incrementally updated checksum against a full recompute.
    fn assert_matches_recompute(mut buf: Vec<u8>, updated: u16) -> Result<(), TestCaseError> {
        buf[0] = 0;
        buf[1] = 0;
        // All-zero data is the one case where the two representations of zero differ.
        prop_assume!(buf.iter().any(|&b| b != 0));
        prop_assert_eq!(updated, data(&buf));
        buf[0..2].copy_from_slice(&updated.to_be_bytes());
        prop_assert_eq!(data(&buf), 0);
        Ok(())
    }

    proptest! {
        #[test]
        fn prop_sum_matches_reference(buf in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(data(&buf), reference(&buf));
        }

        #[test]
        fn prop_update_u16(mut buf in checksummed(), pos in any::<prop::sample::Index>(),
                           new in any::<u16>()) {
            prop_assume!(buf.len() >= 4);
            let at = 2 + 2 * pos.index(buf.len() / 2 - 1);
            let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
            buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let updated = update_u16(u16::from_be_bytes([buf[0], buf[1]]), old, new);
            assert_matches_recompute(buf, updated)?;
        }

        #[test]
        fn prop_update_u32(mut buf in checksummed(), pos in any::<prop::sample::Index>(),
                           new in any::<u32>()) {
            prop_assume!(buf.len() >= 6);
            let at = 2 + 2 * pos.index(buf.len() / 2 - 2);
            let old = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            buf[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let updated = update_u32(u16::from_be_bytes([buf[0], buf[1]]), old, new);
            assert_matches_recompute(buf, updated)?;
        }

        #[test]
        fn prop_pseudo_header_v6(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
                                 next_header in any::<u8>(), len in any::<u32>()) {
            let (src, dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst));
            let bytes = pseudo_bytes_v6(src, dst, next_header, len);
            prop_assert_eq!(
                fold(pseudo_header_v6(src, dst, next_header, len)),
                fold(sum(&bytes))
            );
        }

        #[test]
        fn prop_update_addr_v6(mut buf in checksummed(), pos in any::<prop::sample::Index>(),
                               new in any::<[u8; 16]>()) {
            prop_assume!(buf.len() >= 18);
            let at = 2 + 2 * pos.index(buf.len() / 2 - 8);
            let mut old = [0u8; 16];
            old.copy_from_slice(&buf[at..at + 16]);
            buf[at..at + 16].copy_from_slice(&new);
            let updated = update_addr_v6(
                u16::from_be_bytes([buf[0], buf[1]]),
                old.into(),
                new.into(),
            );
            assert_matches_recompute(buf, updated)?;
        }

        /// The pseudo-header case: a checksum over pseudo-header and segment, updated for a new
        /// source address, equals the one recomputed with it.
        #[test]
        fn prop_update_addr_v6_pseudo_header(
            src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), new in any::<[u8; 16]>(),
            segment in proptest::collection::vec(any::<u8>(), 8..200),
        ) {
            let (src, dst, new) = (Ipv6Addr::from(src), Ipv6Addr::from(dst), Ipv6Addr::from(new));
            let len = segment.len() as u32;
            let full = |src| finish(pseudo_header_v6(src, dst, 17, len) + sum(&segment));
            let updated = update_addr_v6(full(src), src, new);
            // Exactly equal: the pseudo-header's next header makes the data non-zero, so
            // neither side can be -0 (0xffff).
            prop_assert_eq!(updated, full(new));
        }

        #[test]
        fn prop_update_addr(mut buf in checksummed(), pos in any::<prop::sample::Index>(),
                            new in any::<[u8; 4]>()) {
            prop_assume!(buf.len() >= 6);
            let at = 2 + 2 * pos.index(buf.len() / 2 - 2);
            let old = Ipv4Addr::new(buf[at], buf[at + 1], buf[at + 2], buf[at + 3]);
            buf[at..at + 4].copy_from_slice(&new);
            let updated = update_addr(u16::from_be_bytes([buf[0], buf[1]]), old, new.into());
            assert_matches_recompute(buf, updated)?;
        }
    }
}
