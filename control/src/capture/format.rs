//! What `xvsadm capture` makes of the frames it receives: one tcpdump-style line per frame
//! ([`text_line`]) or a capture file ([`PcapWriter`], [`PcapngWriter`]) for tcpdump, Wireshark
//! and the like.
//!
//! The text follows tcpdump 4.99's `-nn -S` output for Ethernet frames, field for field where
//! it is decoded, so that the LVS tutorial's `tcpdump -i ens36 -nn port 80` lines read the
//! same, with these differences:
//! - the time is UTC (tcpdump prints local time): no time zone database is read;
//! - sequence numbers are absolute (tcpdump's `-S`): each line stands on its own;
//! - no application-layer decoding (tcpdump's HTTP, DNS... after `length N`); no IP options
//!   or checksums (tcpdump shows them only with `-v`);
//! - IP fragments are marked `(frag ID:LEN@OFFSET[+])`, tcpdump 3's notation;
//! - xvs's GUE tunnels (a UDP payload starting with a variant-0 GUE header for IPv4 or IPv6)
//!   are decoded as `UDP, length N: GUE: IP ...`, GRE's and IP-in-IP's inner packets as
//!   tcpdump does;
//! - non-IPv4/IPv6/ARP frames read `SRC > DST, ethertype NAME (0xTTTT), length N`, other IP
//!   protocols `ip-proto-N LEN`, without tcpdump's hex dumps or its decoders for them; rarer
//!   fields (MPTCP and TCP-AO options in hex; GRE routing, ICMP router advertisements' and
//!   ICMPv6 errors' details, IPv6 extension headers not decoded) are kept short;
//! - truncation reads `[|proto]` and a malformed TCP option `[bad opt]]`, with tcpdump's
//!   stray spaces and brackets left out.
//!
//! The bytes are untrusted: every read is bounds-checked and nothing here panics on any input.
//! The file writers build each record or block whole and hand it to `W` in one `write_all`,
//! keeping nothing back: flushing `W` is the caller's job.

use super::wire::{CapturedFrame, Direction, Side, SNAPLEN};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// How deep tunnels are unwrapped (IP-in-IP, GRE, GUE) before the rest is left undecoded: a
/// crafted packet of nested headers must not cost more than a few levels.
const MAX_NESTING: u8 = 4;

const ETH_HLEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_TEB: u16 = 0x6558;

const PROTO_ICMP: u8 = 1;
const PROTO_IPIP: u8 = 4;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_IPV6: u8 = 41;
const PROTO_GRE: u8 = 47;
const PROTO_ICMPV6: u8 = 58;
const PROTO_NONE: u8 = 59;

const TH_FIN: u8 = 0x01;
const TH_SYN: u8 = 0x02;
const TH_RST: u8 = 0x04;
const TH_ACK: u8 = 0x10;
const TH_URG: u8 = 0x20;

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// One line (no newline) for `frame`, seen on `interface`, in tcpdump's `-nn` style as
/// `tcpdump -i any` prints it: `HH:MM:SS.uuuuuu IFACE In  IP a.b.c.d.P > e.f.g.h.Q: ...`.
///
/// The time of day is UTC (tcpdump uses local time) and TCP sequence numbers are absolute (as
/// with tcpdump's `-S`); the module documentation lists the other differences.
pub fn text_line(frame: &CapturedFrame, interface: &str) -> String {
    let mut out = String::with_capacity(160);
    push_time_of_day(&mut out, frame.ts_ns);
    let direction = match frame.direction {
        Direction::Received => "In",
        Direction::Transmitted => "Out",
    };
    // tcpdump's `-i any` (LINUX_SLL2) columns: "%-5s " for the name, "%-3s " for the type.
    let _ = write!(out, " {interface:<5} {direction:<3} ");
    // The length on the wire; never less than what was captured, whatever the record says.
    let wire_len = (frame.orig_len as usize).max(frame.data.len());
    ethernet(&mut out, &frame.data, wire_len, 0);
    out
}

/// `HH:MM:SS.uuuuuu` of `ts_ns` (ns since the Unix epoch), UTC, microseconds truncated as
/// tcpdump does.
fn push_time_of_day(out: &mut String, ts_ns: u64) {
    let secs = ts_ns / 1_000_000_000;
    let micros = (ts_ns % 1_000_000_000) / 1_000;
    let of_day = secs % 86_400;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{micros:06}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
}

/// tcpdump's truncation marker, ` [|proto]`, without doubling a space already there.
fn trunc(out: &mut String, proto: &str) {
    if !out.ends_with(' ') {
        out.push(' ');
    }
    let _ = write!(out, "[|{proto}]");
}

fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    be32(b, at).map(Ipv4Addr::from)
}

fn ipv6_at(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let s: [u8; 16] = b.get(at..at.checked_add(16)?)?.try_into().ok()?;
    Some(Ipv6Addr::from(s))
}

/// A link-layer address as tcpdump writes one: hex bytes joined by ':'.
fn link_addr(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

/// tcpdump's name of an ethertype (a few of its table: those a director's links carry).
fn ethertype_name(t: u16) -> &'static str {
    match t {
        ETHERTYPE_IPV4 => "IPv4",
        ETHERTYPE_ARP => "ARP",
        ETHERTYPE_IPV6 => "IPv6",
        0x8035 => "Reverse ARP",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE D",
        0x8864 => "PPPoE S",
        0x888e => "EAPOL",
        0x88cc => "LLDP",
        0x88e5 => "802.1AE MACsec",
        0x88f7 => "PTP",
        0x8809 => "Slow Protocols",
        0x9000 => "Loopback",
        ETHERTYPE_TEB => "TEB",
        _ => "Unknown",
    }
}

/// An Ethernet frame of `length` bytes on the wire, `b` of them captured.
fn ethernet(out: &mut String, b: &[u8], length: usize, depth: u8) {
    let (Some(dst), Some(src), Some(ethertype)) = (b.get(0..6), b.get(6..12), be16(b, 12)) else {
        trunc(out, "ether");
        return;
    };
    let payload = b.get(ETH_HLEN..).unwrap_or_default();
    let payload_len = length.saturating_sub(ETH_HLEN);
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(out, payload, payload_len, depth),
        ETHERTYPE_IPV6 => ipv6(out, payload, payload_len, depth),
        ETHERTYPE_ARP => arp(out, payload, payload_len),
        // An 802.3 length rather than a type: LLC, not decoded.
        0..=1500 => {
            let _ = write!(
                out,
                "{} > {}, 802.3, length {length}",
                link_addr(src),
                link_addr(dst)
            );
        }
        t => {
            let _ = write!(
                out,
                "{} > {}, ethertype {} (0x{t:04x}), length {length}",
                link_addr(src),
                link_addr(dst),
                ethertype_name(t)
            );
        }
    }
}

/// An IPv4 packet of `length` bytes (from the link layer), `b` of them captured.
fn ipv4(out: &mut String, b: &[u8], length: usize, depth: u8) {
    let Some(vhl) = u8_at(b, 0) else {
        trunc(out, "ip");
        return;
    };
    let version = vhl >> 4;
    if version != 4 {
        if version == 6 {
            out.push_str("IP6, wrong link-layer encapsulation (invalid)");
        } else {
            let _ = write!(out, "IP{version} (invalid)");
        }
        return;
    }
    out.push_str("IP ");
    if b.len() < 20 {
        trunc(out, "ip");
        return;
    }
    if length < 20 {
        let _ = write!(out, "truncated-ip {length}");
        return;
    }
    let hlen = usize::from(vhl & 0x0f) * 4;
    if hlen < 20 {
        let _ = write!(out, "bad-hlen {hlen}");
        return;
    }
    // `b` holds the 20 bytes of a header without options: these reads do not fail.
    let (Some(total), Some(id), Some(off), Some(proto), Some(src), Some(dst)) = (
        be16(b, 2),
        be16(b, 4),
        be16(b, 6),
        u8_at(b, 9),
        ipv4_at(b, 12),
        ipv4_at(b, 16),
    ) else {
        trunc(out, "ip");
        return;
    };
    let total = usize::from(total);
    if length < total {
        let _ = write!(out, "truncated-ip - {} bytes missing! ", total - length);
    }
    if total < hlen {
        let _ = write!(out, "bad-len {total}");
        return;
    }
    // What follows the IP payload (Ethernet padding) is not the payload's.
    let b = &b[..b.len().min(total)];
    let payload_len = total - hlen;
    let frag_offset = usize::from(off & 0x1fff) * 8;
    let more_fragments = off & 0x2000 != 0;

    if frag_offset == 0 {
        if proto != PROTO_TCP && proto != PROTO_UDP {
            let _ = write!(out, "{src} > {dst}: ");
        }
        match b.get(hlen..) {
            Some(payload) => {
                let ip = Ip {
                    src: src.into(),
                    dst: dst.into(),
                    fragmented: more_fragments,
                };
                demux(out, payload, payload_len, proto, ip, depth)
            }
            None => {
                trunc(out, "ip");
                return;
            }
        }
    } else {
        let _ = write!(out, "{src} > {dst}: ip-proto-{proto}");
    }
    if more_fragments || frag_offset != 0 {
        let _ = write!(
            out,
            " (frag {id}:{payload_len}@{frag_offset}{})",
            if more_fragments { "+" } else { "" }
        );
    }
}

/// An IPv6 packet: its fixed header and the upper layers xvs's links may carry, extension
/// headers left undecoded.
fn ipv6(out: &mut String, b: &[u8], length: usize, depth: u8) {
    if b.len() < 40 {
        trunc(out, "ip6");
        return;
    }
    if length < 40 {
        let _ = write!(out, "truncated-ip6 {length}");
        return;
    }
    out.push_str("IP6 ");
    let (Some(vtc), Some(payload_len), Some(next), Some(src), Some(dst)) = (
        u8_at(b, 0),
        be16(b, 4),
        u8_at(b, 6),
        ipv6_at(b, 8),
        ipv6_at(b, 24),
    ) else {
        trunc(out, "ip6");
        return;
    };
    if vtc >> 4 != 6 {
        let _ = write!(out, "version error: {} != 6", vtc >> 4);
        return;
    }
    let payload_len = if payload_len == 0 {
        // A jumbogram (or a TSO packet): the rest of the frame.
        length - 40
    } else {
        let total = usize::from(payload_len) + 40;
        if length < total {
            let _ = write!(out, "truncated-ip6 - {} bytes missing! ", total - length);
        }
        usize::from(payload_len)
    };
    let b = &b[..b.len().min(40 + payload_len)];
    if next != PROTO_TCP && next != PROTO_UDP {
        let _ = write!(out, "{src} > {dst}: ");
    }
    let ip = Ip {
        src: src.into(),
        dst: dst.into(),
        // Fragment headers are extension headers, not decoded.
        fragmented: false,
    };
    demux(out, &b[40..], payload_len, next, ip, depth);
}

/// The IP header fields an upper layer prints or depends on.
#[derive(Clone, Copy)]
struct Ip {
    src: IpAddr,
    dst: IpAddr,
    /// More fragments follow: the payload is not whole.
    fragmented: bool,
}

/// The payload of an IP packet, protocol `proto`, `length` bytes long, `b` of them captured.
/// Before it, `out` has the addresses unless `proto` is TCP or UDP (those print them with
/// their ports).
fn demux(out: &mut String, b: &[u8], length: usize, proto: u8, ip: Ip, depth: u8) {
    let v6 = ip.src.is_ipv6();
    match proto {
        PROTO_TCP => tcp(out, b, length, ip),
        PROTO_UDP => udp(out, b, length, ip, depth),
        PROTO_ICMP if !v6 => {
            if icmp(out, b, length).is_none() {
                trunc(out, "icmp");
            }
        }
        PROTO_ICMPV6 if v6 => {
            if icmp6(out, b, length).is_none() {
                trunc(out, "icmp6");
            }
        }
        PROTO_IPIP if depth < MAX_NESTING => ipv4(out, b, length, depth + 1),
        PROTO_IPV6 if depth < MAX_NESTING => ipv6(out, b, length, depth + 1),
        PROTO_GRE if depth < MAX_NESTING => {
            if gre(out, b, length, depth + 1).is_none() {
                trunc(out, "gre");
            }
        }
        PROTO_NONE => out.push_str("no next header"),
        _ => {
            let _ = write!(out, "ip-proto-{proto} {length}");
        }
    }
}

/// `a.b.c.d.P > e.f.g.h.Q: ` (IPv6 addresses the same way, as tcpdump writes them).
fn push_endpoints(out: &mut String, ip: Ip, sport: u16, dport: u16) {
    let _ = write!(out, "{}.{sport} > {}.{dport}: ", ip.src, ip.dst);
}

/// A TCP segment: `length` bytes of IP payload, `b` of them captured.
fn tcp(out: &mut String, b: &[u8], length: usize, ip: Ip) {
    let (Some(sport), Some(dport)) = (be16(b, 0), be16(b, 2)) else {
        let _ = write!(out, "{} > {}:", ip.src, ip.dst);
        trunc(out, "tcp");
        return;
    };
    push_endpoints(out, ip, sport, dport);
    let (Some(seq), Some(ack), Some(off), Some(flags), Some(win), Some(urp)) = (
        be32(b, 4),
        be32(b, 8),
        u8_at(b, 12),
        u8_at(b, 13),
        be16(b, 14),
        be16(b, 18),
    ) else {
        trunc(out, "tcp");
        return;
    };
    let hlen = usize::from(off >> 4) * 4;
    if hlen < 20 {
        let _ = write!(
            out,
            "tcp {} [bad hdr length {hlen} - too short, < 20]",
            length.saturating_sub(hlen)
        );
        return;
    }
    out.push_str("Flags [");
    push_tcp_flags(out, flags);
    out.push(']');
    if hlen > length {
        let _ = write!(out, " [bad hdr length {hlen} - too long, > {length}]");
        return;
    }
    let data_len = length - hlen;
    if data_len > 0 || flags & (TH_SYN | TH_FIN | TH_RST) != 0 {
        let _ = write!(out, ", seq {seq}");
        if data_len > 0 {
            // Sequence space wraps: the end is taken modulo 2^32, as tcpdump's u_int does.
            let _ = write!(out, ":{}", seq.wrapping_add(data_len as u32));
        }
    }
    if flags & TH_ACK != 0 {
        let _ = write!(out, ", ack {ack}");
    }
    let _ = write!(out, ", win {win}");
    if flags & TH_URG != 0 {
        let _ = write!(out, ", urg {urp}");
    }
    if hlen > 20 {
        match tcp_options(out, b, hlen) {
            Some(true) => {}
            // A malformed option: tcpdump stops the line there.
            Some(false) => return,
            None => {
                trunc(out, "tcp");
                return;
            }
        }
    }
    let _ = write!(out, ", length {data_len}");
}

/// tcpdump's flag letters, in its table's order (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR),
/// `none` for none.
fn push_tcp_flags(out: &mut String, flags: u8) {
    if flags == 0 {
        out.push_str("none");
        return;
    }
    for (bit, letter) in [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ] {
        if flags & bit != 0 {
            out.push(letter);
        }
    }
}

/// `, options [...]` of a TCP header of `hlen` bytes (> 20), following tcpdump's walk over
/// them. `None` when the capture ends inside them, `Some(false)` for a malformed option
/// (`[bad opt]`, where tcpdump ends the line), `Some(true)` otherwise.
fn tcp_options(out: &mut String, b: &[u8], hlen: usize) -> Option<bool> {
    out.push_str(", options [");
    let mut cp = 20;
    // Option bytes the header declares and are not yet accounted for.
    let mut rem = hlen - 20;
    let mut first = true;
    while rem != 0 {
        if !first {
            out.push(',');
        }
        let opt = u8_at(b, cp)?;
        cp += 1;
        let len = if opt == 0 || opt == 1 {
            1
        } else {
            let len = usize::from(u8_at(b, cp)?);
            cp += 1;
            if len < 2 || len > rem {
                out.push_str("[bad opt]]");
                return Some(false);
            }
            rem -= 1;
            len
        };
        rem -= 1;
        match tcp_option_name(opt) {
            Some(name) => out.push_str(name),
            None => {
                let _ = write!(out, "unknown-{opt}");
            }
        }
        let Some(datalen) = tcp_option_value(out, b, cp, opt, len, rem)? else {
            out.push_str("[bad opt]]");
            return Some(false);
        };
        cp += datalen;
        rem -= datalen;
        let declared = datalen + if opt == 0 || opt == 1 { 1 } else { 2 };
        if declared != len {
            let _ = write!(out, "[len {len}]");
        }
        first = false;
        if opt == 0 {
            break;
        }
    }
    out.push(']');
    Some(true)
}

/// Prints the value of TCP option `opt` (declared `len` bytes long, kind and length
/// included), at `b[cp..]`, `rem` bytes of the header left: `Some(Some(n))` for the `n`
/// bytes of it consumed, `Some(None)` if it does not fit (`[bad opt]`), `None` if the
/// capture ends inside it.
fn tcp_option_value(
    out: &mut String,
    b: &[u8],
    cp: usize,
    opt: u8,
    len: usize,
    rem: usize,
) -> Option<Option<usize>> {
    let hex = |out: &mut String, from: usize, n: usize| -> Option<()> {
        for i in 0..n {
            let _ = write!(out, "{:02x}", u8_at(b, from + i)?);
        }
        Some(())
    };
    // Options of a fixed value size: the header must hold it, whatever `len` says.
    let fixed = match opt {
        2 | 20 | 28 => 2,
        3 => 1,
        6 | 7 | 11..=13 => 4,
        8 => 8,
        19 => 16,
        _ => 0,
    };
    if fixed > rem {
        return Some(None);
    }
    let datalen = match opt {
        0 | 1 | 4 => 0,
        2 => {
            let _ = write!(out, " {}", be16(b, cp)?);
            2
        }
        3 => {
            let _ = write!(out, " {}", u8_at(b, cp)?);
            1
        }
        6 | 7 | 11..=13 => {
            let _ = write!(out, " {}", be32(b, cp)?);
            4
        }
        8 => {
            let _ = write!(out, " val {} ecr {}", be32(b, cp)?, be32(b, cp + 4)?);
            8
        }
        19 => {
            out.push(' ');
            hex(out, cp, 16)?;
            16
        }
        20 => {
            let _ = write!(out, " cap {:02x} id {}", u8_at(b, cp)?, u8_at(b, cp + 1)?);
            2
        }
        28 => {
            let raw = be16(b, cp)?;
            // The low bit says minutes rather than seconds.
            let secs = if raw & 1 != 0 {
                u32::from(raw >> 1) * 60
            } else {
                u32::from(raw >> 1)
            };
            let _ = write!(out, " 0x{raw:x} {secs}");
            2
        }
        5 => {
            let datalen = len - 2;
            if datalen % 8 != 0 {
                out.push_str(" invalid sack");
            } else {
                let _ = write!(out, " {} ", datalen / 8);
                for i in (0..datalen).step_by(8) {
                    if i + 8 > rem {
                        return Some(None);
                    }
                    let _ = write!(out, "{{{}:{}}}", be32(b, cp + i)?, be32(b, cp + i + 4)?);
                }
            }
            datalen
        }
        34 => {
            out.push(' ');
            tcp_fastopen(out, b, cp, len - 2)?;
            len - 2
        }
        254 => {
            let datalen = len - 2;
            if datalen < 2 {
                return Some(None);
            }
            match be16(b, cp)? {
                0xf989 => {
                    out.push_str("-tfo");
                    tcp_fastopen(out, b, cp + 2, datalen - 2)?;
                }
                magic => {
                    let _ = write!(out, "-{magic:04x}");
                }
            }
            datalen
        }
        // Others (mptcp, tcp-ao and unknown ones): their bytes in hex, as tcpdump does for
        // unknown options.
        _ => {
            let datalen = len - 2;
            if datalen > 0 {
                out.push_str(" 0x");
                hex(out, cp, datalen)?;
            }
            datalen
        }
    };
    Some(Some(datalen))
}

/// A TCP Fast Open cookie (or its request) of `len` bytes at `b[at..]`.
fn tcp_fastopen(out: &mut String, b: &[u8], at: usize, len: usize) -> Option<()> {
    if len == 0 {
        out.push_str(" cookiereq");
    } else if len % 2 != 0 || !(4..=16).contains(&len) {
        out.push_str(" (invalid)");
    } else {
        out.push_str(" cookie ");
        for i in 0..len {
            let _ = write!(out, "{:02x}", u8_at(b, at + i)?);
        }
    }
    Some(())
}

/// tcpdump's name of a TCP option kind.
fn tcp_option_name(kind: u8) -> Option<&'static str> {
    Some(match kind {
        0 => "eol",
        1 => "nop",
        2 => "mss",
        3 => "wscale",
        4 => "sackOK",
        5 => "sack",
        6 => "echo",
        7 => "echoreply",
        8 => "TS",
        11 => "cc",
        12 => "ccnew",
        13 => "ccecho",
        19 => "md5",
        20 => "scps",
        28 => "uto",
        29 => "tcp-ao",
        30 => "mptcp",
        34 => "tfo",
        254 => "exp",
        _ => return None,
    })
}

/// A UDP datagram: `length` bytes of IP payload, `b` of them captured.
fn udp(out: &mut String, b: &[u8], length: usize, ip: Ip, depth: u8) {
    let (Some(sport), Some(dport)) = (be16(b, 0), be16(b, 2)) else {
        let _ = write!(out, "{} > {}:", ip.src, ip.dst);
        trunc(out, "udp");
        return;
    };
    push_endpoints(out, ip, sport, dport);
    if length < 8 {
        let _ = write!(out, "truncated-udp {length}");
        return;
    }
    let Some(ulen) = be16(b, 4) else {
        trunc(out, "udp");
        return;
    };
    let ulen = usize::from(ulen);
    if ulen < 8 {
        let _ = write!(out, "truncated-udplength {ulen}");
        return;
    }
    let (ulen, length) = (ulen - 8, length - 8);
    let Some(data) = b.get(8..) else {
        trunc(out, "udp");
        return;
    };
    // UDP's own length, unless the IP packet is shorter (and whole: a first fragment's
    // datagram goes on in the next ones).
    if ulen > length && !ip.fragmented {
        let _ = write!(out, "UDP, bad length {ulen} > {length}");
    } else {
        let _ = write!(out, "UDP, length {ulen}");
    }
    let data_len = ulen.min(length);
    // GUE variant 0 without options (what xvs's `--tun-type gue` sends, on a configurable
    // port): version, C bit and header length 0, protocol IPv4 or IPv6, no flags, then that
    // packet.
    if depth < MAX_NESTING && data_len > 4 {
        if let Some(&[0, proto @ (PROTO_IPIP | PROTO_IPV6), 0, 0, first, ..]) = data.get(..5) {
            let inner = &data[4..data.len().min(data_len)];
            match (proto, first >> 4) {
                (PROTO_IPIP, 4) => {
                    out.push_str(": GUE: ");
                    ipv4(out, inner, data_len - 4, depth + 1);
                }
                (PROTO_IPV6, 6) => {
                    out.push_str(": GUE: ");
                    ipv6(out, inner, data_len - 4, depth + 1);
                }
                _ => {}
            }
        }
    }
}

/// An ICMP message of `length` bytes; `None` when the capture ends inside what is printed.
fn icmp(out: &mut String, b: &[u8], length: usize) -> Option<()> {
    let icmp_type = u8_at(b, 0)?;
    let code = u8_at(b, 1)?;
    // The offending packet's header, in error messages.
    let inner_dst = || ipv4_at(b, 8 + 16);
    let text = match icmp_type {
        0 | 8 => format!(
            "echo {}, id {}, seq {}",
            if icmp_type == 8 { "request" } else { "reply" },
            be16(b, 4)?,
            be16(b, 6)?
        ),
        3 => {
            let d = inner_dst()?;
            match code {
                0 => format!("net {d} unreachable"),
                1 => format!("host {d} unreachable"),
                2 => format!("{d} protocol {} unreachable", u8_at(b, 8 + 9)?),
                3 => {
                    let inner_proto = u8_at(b, 8 + 9)?;
                    let inner_hlen = usize::from(u8_at(b, 8)? & 0x0f) * 4;
                    let dport = be16(b, 8 + inner_hlen + 2)?;
                    match inner_proto {
                        PROTO_TCP => format!("{d} tcp port {dport} unreachable"),
                        PROTO_UDP => format!("{d} udp port {dport} unreachable"),
                        p => format!("{d} protocol {p} port {dport} unreachable"),
                    }
                }
                4 => match be16(b, 6)? {
                    0 => format!("{d} unreachable - need to frag"),
                    mtu => format!("{d} unreachable - need to frag (mtu {mtu})"),
                },
                5 => format!("{d} unreachable - source route failed"),
                6 => format!("net {d} unreachable - unknown"),
                7 => format!("host {d} unreachable - unknown"),
                8 => format!("{d} unreachable - source host isolated"),
                9 => format!("net {d} unreachable - admin prohibited"),
                10 => format!("host {d} unreachable - admin prohibited"),
                11 => format!("net {d} unreachable - tos prohibited"),
                12 => format!("host {d} unreachable - tos prohibited"),
                13 => format!("host {d} unreachable - admin prohibited filter"),
                14 => format!("host {d} unreachable - host precedence violation"),
                15 => format!("host {d} unreachable - precedence cutoff"),
                c => format!("{d} unreachable - #{c}"),
            }
        }
        5 => {
            let (d, gw) = (inner_dst()?, ipv4_at(b, 4)?);
            match code {
                0 => format!("redirect {d} to net {gw}"),
                1 => format!("redirect {d} to host {gw}"),
                2 => format!("redirect-tos {d} to net {gw}"),
                3 => format!("redirect-tos {d} to host {gw}"),
                c => format!("redirect-#{c} {d} to {gw}"),
            }
        }
        11 => {
            inner_dst()?;
            match code {
                0 => "time exceeded in-transit".to_owned(),
                1 => "ip reassembly time exceeded".to_owned(),
                c => format!("time exceeded-#{c}"),
            }
        }
        12 => match code {
            0 => format!("parameter problem - octet {}", u8_at(b, 4)?),
            c => format!("parameter problem - code {c}"),
        },
        13 => format!("time stamp query id {} seq {}", be16(b, 4)?, be16(b, 6)?),
        14 => {
            let ms = |t: u32| {
                let (s, ms) = (t / 1000, t % 1000);
                format!("{:02}:{:02}:{:02}.{ms:03}", s / 3600, s / 60 % 60, s % 60)
            };
            format!(
                "time stamp reply id {} seq {}: org {}, recv {}, xmit {}",
                be16(b, 4)?,
                be16(b, 6)?,
                ms(be32(b, 8)?),
                ms(be32(b, 12)?),
                ms(be32(b, 16)?)
            )
        }
        18 => format!("address mask is 0x{:08x}", be32(b, 8)?),
        4 => "source quench".to_owned(),
        9 => "router advertisement".to_owned(),
        10 => "router solicitation".to_owned(),
        15 => "information request".to_owned(),
        16 => "information reply".to_owned(),
        17 => "address mask request".to_owned(),
        t => format!("type-#{t}"),
    };
    let _ = write!(out, "ICMP {text}, length {length}");
    Some(())
}

/// An ICMPv6 message of `length` bytes: its type and the fields tcpdump shows for the common
/// ones.
fn icmp6(out: &mut String, b: &[u8], length: usize) -> Option<()> {
    let icmp_type = u8_at(b, 0)?;
    let name = match icmp_type {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        130 => "multicast listener query",
        131 => "multicast listener report",
        132 => "multicast listener done",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect",
        143 => "multicast listener report v2",
        _ => "",
    };
    out.push_str("ICMP6, ");
    if name.is_empty() {
        let _ = write!(out, "unknown icmp6 type ({icmp_type})");
    } else {
        out.push_str(name);
    }
    match icmp_type {
        1 => {
            let _ = write!(
                out,
                ", {}",
                match u8_at(b, 1)? {
                    0 => "unreachable route",
                    1 => "unreachable prohibited",
                    2 => "beyond scope",
                    3 => "unreachable address",
                    4 => "unreachable port",
                    _ => "unknown unreach code",
                }
            );
        }
        2 => {
            let _ = write!(out, ", mtu {}", be32(b, 4)?);
        }
        128 | 129 => {
            let _ = write!(out, ", id {}, seq {}", be16(b, 4)?, be16(b, 6)?);
        }
        135 => {
            let _ = write!(out, ", who has {}", ipv6_at(b, 8)?);
        }
        136 => {
            let _ = write!(out, ", tgt is {}", ipv6_at(b, 8)?);
        }
        _ => {}
    }
    let _ = write!(out, ", length {length}");
    Some(())
}

/// A GRE packet (version 0 decoded, RFC 2784/2890) of `length` bytes, then its payload.
fn gre(out: &mut String, b: &[u8], length: usize, depth: u8) -> Option<()> {
    if length < 2 {
        return None;
    }
    let flags = be16(b, 0)?;
    let version = flags & 0x7;
    let _ = write!(out, "GREv{version}");
    match version {
        0 => {}
        // PPTP's enhanced GRE: not decoded.
        1 => {
            let _ = write!(out, ", length {length}");
            return Some(());
        }
        _ => {
            out.push_str(" ERROR: unknown-version");
            return Some(());
        }
    }
    let proto = be16(b, 2)?;
    let mut at = 4;
    if flags & 0xc000 != 0 {
        // Checksum (and reserved offset) present.
        let _ = write!(out, ", off 0x{:x}", be16(b, at + 2)?);
        at += 4;
    }
    if flags & 0x2000 != 0 {
        let _ = write!(out, ", key=0x{:x}", be32(b, at)?);
        at += 4;
    }
    if flags & 0x1000 != 0 {
        let _ = write!(out, ", seq {}", be32(b, at)?);
        at += 4;
    }
    let _ = write!(out, ", length {length}");
    // Source routing (RFC 1701) is obsolete: its payload is left undecoded.
    if flags & 0x4000 != 0 || at > length {
        return Some(());
    }
    out.push_str(": ");
    let inner = b.get(at..).unwrap_or_default();
    let inner_len = length - at;
    match proto {
        ETHERTYPE_IPV4 => ipv4(out, inner, inner_len, depth),
        ETHERTYPE_IPV6 => ipv6(out, inner, inner_len, depth),
        ETHERTYPE_TEB => ethernet(out, inner, inner_len, depth),
        p => {
            let _ = write!(out, "gre-proto-0x{p:x}");
        }
    }
    Some(())
}

/// An ARP packet of `length` bytes (Ethernet payload, padding included, as tcpdump counts).
fn arp(out: &mut String, b: &[u8], length: usize) {
    let (Some(hrd), Some(pro), Some(hln), Some(pln), Some(op)) =
        (be16(b, 0), be16(b, 2), u8_at(b, 4), u8_at(b, 5), be16(b, 6))
    else {
        trunc(out, "arp");
        return;
    };
    let (hln, pln) = (usize::from(hln), usize::from(pln));
    // Sender hardware and protocol addresses, target hardware and protocol addresses.
    let sha = 8;
    let spa = sha + hln;
    let tha = spa + pln;
    let tpa = tha + hln;
    if b.len() < tpa + pln {
        trunc(out, "arp");
        return;
    }
    out.push_str("ARP, ");
    if (pro != ETHERTYPE_IPV4 && pro != 0x1000) || pln != 4 || hln == 0 {
        let hardware = match hrd {
            1 => "Ethernet".to_owned(),
            h => format!("Unknown Hardware ({h})"),
        };
        let protocol = match ethertype_name(pro) {
            "Unknown" => format!("Unknown Protocol (0x{pro:04x})"),
            name => name.to_owned(),
        };
        let _ = write!(
            out,
            "{hardware} (len {hln}), {protocol} (len {pln}), length {length}"
        );
        return;
    }
    let addr = |at: usize, len: usize| link_addr(&b[at..at + len]);
    let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
    match op {
        1 => {
            let _ = write!(out, "Request who-has {}", ip(tpa));
            if b[tha..tha + hln].iter().any(|&x| x != 0) {
                let _ = write!(out, " ({})", addr(tha, hln));
            }
            let _ = write!(out, " tell {}", ip(spa));
        }
        2 => {
            let _ = write!(out, "Reply {} is-at {}", ip(spa), addr(sha, hln));
        }
        3 => {
            let _ = write!(
                out,
                "Reverse Request who-is {} tell {}",
                addr(tha, hln),
                addr(sha, hln)
            );
        }
        4 => {
            let _ = write!(out, "Reverse Reply {} at {}", addr(tha, hln), ip(tpa));
        }
        8 => {
            let _ = write!(
                out,
                "Inverse Request who-is {} tell {}",
                addr(tha, hln),
                addr(sha, hln)
            );
        }
        9 => {
            let _ = write!(out, "Inverse Reply {} at {}", addr(sha, hln), ip(spa));
        }
        op => {
            let _ = write!(out, "Unknown ({op})");
        }
    }
    let _ = write!(out, ", length {length}");
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// LINKTYPE_ETHERNET, for both formats.
const LINKTYPE_ETHERNET: u16 = 1;

/// The bytes of `frame` a file keeps (at most [`SNAPLEN`], the files' declared snapshot
/// length, whatever a hand-made frame holds) and its length on the wire (never less).
fn file_lengths(frame: &CapturedFrame) -> (&[u8], u32) {
    let data = &frame.data[..frame.data.len().min(SNAPLEN)];
    let orig_len = frame
        .orig_len
        .max(frame.data.len().try_into().unwrap_or(u32::MAX));
    (data, orig_len)
}

/// The file format of `xvsadm capture -w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Classic pcap, nanosecond timestamps: no interface names or directions.
    Pcap,
    /// pcapng: an interface per side, named, and each frame's direction.
    Pcapng,
}

impl OutputFormat {
    /// By the file's extension: `.pcap` is [`OutputFormat::Pcap`], anything else pcapng (which
    /// keeps more: interfaces and directions).
    pub fn for_path(path: &Path) -> OutputFormat {
        match path.extension() {
            Some(ext) if ext.eq_ignore_ascii_case("pcap") => OutputFormat::Pcap,
            _ => OutputFormat::Pcapng,
        }
    }
}

/// A classic pcap file (magic 0xa1b23c4d: nanosecond timestamps, version 2.4, LINKTYPE_ETHERNET,
/// snaplen [`SNAPLEN`]), little-endian.
pub struct PcapWriter<W> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header to `out`.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
        header.extend_from_slice(&2u16.to_le_bytes());
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone: UTC
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
        header.extend_from_slice(&u32::from(LINKTYPE_ETHERNET).to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out })
    }

    /// Writes one record for `frame`.
    pub fn write(&mut self, frame: &CapturedFrame) -> io::Result<()> {
        let (data, orig_len) = file_lengths(frame);
        let mut record = Vec::with_capacity(16 + data.len());
        // Seconds in 32 bits: enough until 2106.
        let secs = u32::try_from(frame.ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        record.extend_from_slice(&secs.to_le_bytes());
        record.extend_from_slice(&((frame.ts_ns % 1_000_000_000) as u32).to_le_bytes());
        record.extend_from_slice(&(data.len() as u32).to_le_bytes());
        record.extend_from_slice(&orig_len.to_le_bytes());
        record.extend_from_slice(data);
        self.out.write_all(&record)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_EPB: u32 = 6;
const OPT_ENDOFOPT: u16 = 0;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

/// Appends a pcapng option: code, length, value padded to 32 bits.
fn push_option(block: &mut Vec<u8>, code: u16, value: &[u8]) {
    block.extend_from_slice(&code.to_le_bytes());
    // Option values are at most 65535 bytes; longer (an absurd interface name) is cut.
    let value = &value[..value.len().min(usize::from(u16::MAX))];
    block.extend_from_slice(&(value.len() as u16).to_le_bytes());
    block.extend_from_slice(value);
    block.resize(block.len().next_multiple_of(4), 0);
}

/// Frames a pcapng block: type, total length, `body` (padded to 32 bits), total length.
fn write_block(out: &mut impl Write, block_type: u32, body: &[u8]) -> io::Result<()> {
    let padded = body.len().next_multiple_of(4);
    let total = u32::try_from(12 + padded)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "pcapng block too large"))?;
    let mut block = Vec::with_capacity(12 + padded);
    block.extend_from_slice(&block_type.to_le_bytes());
    block.extend_from_slice(&total.to_le_bytes());
    block.extend_from_slice(body);
    block.resize(8 + padded, 0);
    block.extend_from_slice(&total.to_le_bytes());
    out.write_all(&block)
}

/// A pcapng file, little-endian: a Section Header Block, an Interface Description Block per
/// interface (LINKTYPE_ETHERNET, snaplen [`SNAPLEN`], `if_name`, `if_tsresol` 9: nanoseconds),
/// then an Enhanced Packet Block per frame on the interface of its side, its direction in
/// `epb_flags`.
pub struct PcapngWriter<W> {
    out: W,
    /// The interface id of each side (index in the IDBs written), if it has one.
    external: Option<u32>,
    internal: Option<u32>,
}

impl<W: Write> PcapngWriter<W> {
    /// Writes the section header and the interfaces, `(name, side)` each: a frame goes to the
    /// first of its side.
    pub fn new(mut out: W, interfaces: &[(&str, Side)]) -> io::Result<Self> {
        let mut shb = Vec::with_capacity(48);
        shb.extend_from_slice(&0x1a2b_3c4d_u32.to_le_bytes()); // byte-order magic
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: not given
        push_option(&mut shb, SHB_USERAPPL, b"xvsadm capture");
        push_option(&mut shb, OPT_ENDOFOPT, &[]);
        write_block(&mut out, PCAPNG_SHB, &shb)?;

        let (mut external, mut internal) = (None, None);
        for (id, (name, side)) in interfaces.iter().enumerate() {
            let id = u32::try_from(id)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many interfaces"))?;
            let slot = match side {
                Side::External => &mut external,
                Side::Internal => &mut internal,
            };
            slot.get_or_insert(id);
            let mut idb = Vec::with_capacity(32 + name.len());
            idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
            idb.extend_from_slice(&0u16.to_le_bytes());
            idb.extend_from_slice(&(SNAPLEN as u32).to_le_bytes());
            push_option(&mut idb, IF_NAME, name.as_bytes());
            push_option(&mut idb, IF_TSRESOL, &[9]);
            push_option(&mut idb, OPT_ENDOFOPT, &[]);
            write_block(&mut out, PCAPNG_IDB, &idb)?;
        }
        Ok(PcapngWriter {
            out,
            external,
            internal,
        })
    }

    /// Writes an Enhanced Packet Block for `frame`; an error if no interface was declared for
    /// its side.
    pub fn write(&mut self, frame: &CapturedFrame) -> io::Result<()> {
        let interface = match frame.side {
            Side::External => self.external,
            Side::Internal => self.internal,
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no pcapng interface for the {:?} side", frame.side),
            )
        })?;
        let (data, orig_len) = file_lengths(frame);
        let mut epb = Vec::with_capacity(32 + data.len() + 12);
        epb.extend_from_slice(&interface.to_le_bytes());
        // In units of if_tsresol (ns), high word first.
        epb.extend_from_slice(&((frame.ts_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.ts_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&orig_len.to_le_bytes());
        epb.extend_from_slice(data);
        epb.resize(epb.len().next_multiple_of(4), 0);
        // Bits 0-1: 01 inbound, 10 outbound.
        let flags: u32 = match frame.direction {
            Direction::Received => 0b01,
            Direction::Transmitted => 0b10,
        };
        push_option(&mut epb, EPB_FLAGS, &flags.to_le_bytes());
        push_option(&mut epb, OPT_ENDOFOPT, &[]);
        write_block(&mut self.out, PCAPNG_EPB, &epb)
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Either file writer, chosen at run time (`-w FILE` by [`OutputFormat::for_path`]).
pub enum FileWriter<W> {
    Pcap(PcapWriter<W>),
    Pcapng(PcapngWriter<W>),
}

impl<W: Write> FileWriter<W> {
    /// Writes `format`'s header to `out`; `interfaces` are pcapng's (classic pcap has none).
    pub fn new(format: OutputFormat, out: W, interfaces: &[(&str, Side)]) -> io::Result<Self> {
        Ok(match format {
            OutputFormat::Pcap => FileWriter::Pcap(PcapWriter::new(out)?),
            OutputFormat::Pcapng => FileWriter::Pcapng(PcapngWriter::new(out, interfaces)?),
        })
    }

    pub fn write(&mut self, frame: &CapturedFrame) -> io::Result<()> {
        match self {
            FileWriter::Pcap(w) => w.write(frame),
            FileWriter::Pcapng(w) => w.write(frame),
        }
    }

    pub fn get_mut(&mut self) -> &mut W {
        match self {
            FileWriter::Pcap(w) => w.get_mut(),
            FileWriter::Pcapng(w) => w.get_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    // ---- frames built by hand, with valid checksums (tcpdump -v checks them) ----

    const TS: u64 = 1_764_000_000_123_456_789; // 2025-11-24 16:00:00.123456789 UTC
    const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const CIP: [u8; 4] = [198, 18, 0, 201];
    const VIP: [u8; 4] = [198, 18, 0, 129];
    const DIP: [u8; 4] = [198, 19, 0, 1];
    const RIP: [u8; 4] = [198, 19, 0, 148];
    const HTTP_GET: &[u8] =
        b"GET / HTTP/1.1\r\nHost: 198.18.0.129\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
    /// Linux's SYN options: mss 1460, sackOK, TS val 1 ecr 0, nop, wscale 7.
    const SYN_OPTIONS: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    fn checksum(parts: &[&[u8]]) -> u16 {
        let mut sum = 0u32;
        for part in parts {
            for pair in part.chunks(2) {
                let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
                sum += u32::from(word);
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = DIRECTOR_MAC.to_vec();
        f.extend_from_slice(&CLIENT_MAC);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4_with(
        proto: u8,
        src: [u8; 4],
        dst: [u8; 4],
        id: u16,
        frag: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut h = vec![0x45, 0];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h.extend_from_slice(&frag.to_be_bytes());
        h.extend_from_slice(&[64, proto, 0, 0]);
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        let sum = checksum(&[&h]);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    /// `packet` (an IPv4 packet without options) with 4 bytes of them: nop, nop, nop, eol.
    fn with_ip_options(packet: &[u8]) -> Vec<u8> {
        let mut p = packet[..20].to_vec();
        p.extend_from_slice(&[1, 1, 1, 0]);
        p.extend_from_slice(&packet[20..]);
        p[0] = 0x46;
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let sum = checksum(&[&p[..24]]);
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        ipv4_with(proto, src, dst, 0x1234, 0x4000, payload)
    }

    /// A transport checksum over the IPv4 pseudo header.
    fn l4_checksum(proto: u8, src: [u8; 4], dst: [u8; 4], segment: &[u8]) -> u16 {
        let mut pseudo = src.to_vec();
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        checksum(&[&pseudo, segment])
    }

    #[allow(clippy::too_many_arguments)]
    fn tcp(
        (src, sport): ([u8; 4], u16),
        (dst, dport): ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        win: u16,
        options: &[u8],
        data: &[u8],
    ) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&seq.to_be_bytes());
        s.extend_from_slice(&ack.to_be_bytes());
        s.push((((20 + options.len()) / 4) << 4) as u8);
        s.push(flags);
        s.extend_from_slice(&win.to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(options);
        s.extend_from_slice(data);
        let sum = l4_checksum(PROTO_TCP, src, dst, &s);
        s[16..18].copy_from_slice(&sum.to_be_bytes());
        eth(ETHERTYPE_IPV4, &ipv4(PROTO_TCP, src, dst, &s))
    }

    fn udp_segment(
        (src, sport): ([u8; 4], u16),
        (dst, dport): ([u8; 4], u16),
        data: &[u8],
    ) -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&sport.to_be_bytes());
        s.extend_from_slice(&dport.to_be_bytes());
        s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(data);
        let sum = l4_checksum(PROTO_UDP, src, dst, &s);
        s[6..8].copy_from_slice(&sum.to_be_bytes());
        s
    }

    fn icmp(
        src: [u8; 4],
        dst: [u8; 4],
        icmp_type: u8,
        code: u8,
        rest: [u8; 4],
        data: &[u8],
    ) -> Vec<u8> {
        let mut m = vec![icmp_type, code, 0, 0];
        m.extend_from_slice(&rest);
        m.extend_from_slice(data);
        let sum = checksum(&[&m]);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        eth(ETHERTYPE_IPV4, &ipv4(PROTO_ICMP, src, dst, &m))
    }

    fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4];
        a.extend_from_slice(&op.to_be_bytes());
        a.extend_from_slice(&sha);
        a.extend_from_slice(&spa);
        a.extend_from_slice(&tha);
        a.extend_from_slice(&tpa);
        eth(ETHERTYPE_ARP, &a)
    }

    fn ipv6_frame(next: u8, payload: &[u8]) -> Vec<u8> {
        let src: Ipv6Addr = "2001:2::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:2::2".parse().unwrap();
        let mut s = payload.to_vec();
        let sum_at = match next {
            PROTO_TCP => Some(16),
            PROTO_ICMPV6 => Some(2),
            _ => None,
        };
        if let Some(at) = sum_at {
            let mut pseudo = src.octets().to_vec();
            pseudo.extend_from_slice(&dst.octets());
            pseudo.extend_from_slice(&(s.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, next]);
            let sum = checksum(&[&pseudo, &s]);
            s[at..at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(s.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&s);
        eth(ETHERTYPE_IPV6, &p)
    }

    fn frame(side: Side, direction: Direction, data: Vec<u8>) -> CapturedFrame {
        CapturedFrame {
            side,
            direction,
            orig_len: data.len() as u32,
            ts_ns: TS,
            data,
        }
    }

    fn syn() -> Vec<u8> {
        tcp(
            (CIP, 40000),
            (VIP, 80),
            12345,
            0,
            TH_SYN,
            64240,
            &SYN_OPTIONS,
            &[],
        )
    }

    fn syn_ack() -> Vec<u8> {
        syn_ack_from((VIP, 80))
    }

    /// The SYN-ACK to [`syn`] as `server` sends it.
    fn syn_ack_from(server: ([u8; 4], u16)) -> Vec<u8> {
        let mut options = SYN_OPTIONS;
        options[8..16].copy_from_slice(&[0, 0, 0, 2, 0, 0, 0, 1]);
        tcp(
            server,
            (CIP, 40000),
            777,
            12346,
            TH_SYN | TH_ACK,
            65160,
            &options,
            &[],
        )
    }

    /// A frame, the line expected for it (after the time and interface columns), and whether
    /// tcpdump 4.99 (`-nn -S`) prints that line, or one that starts with it (application
    /// layer decoding, a hex dump, tcpdump's stray `>` after a truncated option list may
    /// follow), spaces aside (tcpdump doubles some before `[|proto]`): `false` where this
    /// module deviates on purpose (fragment marks, GUE).
    struct Golden {
        name: &'static str,
        data: Vec<u8>,
        orig_len: Option<u32>,
        text: &'static str,
        as_tcpdump: bool,
    }

    fn golden(name: &'static str, data: Vec<u8>, text: &'static str, as_tcpdump: bool) -> Golden {
        Golden {
            name,
            data,
            orig_len: None,
            text,
            as_tcpdump,
        }
    }

    /// `g` as captured with a snapshot length of `len`.
    fn snapped(mut g: Golden, len: usize) -> Golden {
        g.orig_len = Some(g.data.len() as u32);
        g.data.truncate(len);
        g
    }

    fn goldens() -> Vec<Golden> {
        let ts_options = [1, 1, 8, 10, 0, 0, 0, 3, 0, 0, 0, 2];
        let mut arp_padded = arp(1, CLIENT_MAC, CIP, [0; 6], VIP);
        arp_padded.resize(60, 0);
        let ping = |t| icmp(CIP, VIP, t, 0, [0x10, 0x92, 0, 1], &[0xa5; 56]);
        // The first 28 bytes of a UDP datagram that did not reach its port.
        let quoted = ipv4(
            PROTO_UDP,
            VIP,
            CIP,
            &udp_segment((VIP, 53), (CIP, 33434), b"x"),
        )[..28]
            .to_vec();
        let inner_syn = &syn()[ETH_HLEN..];
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend_from_slice(inner_syn);
        let mut gue = vec![0, 4, 0, 0];
        gue.extend_from_slice(inner_syn);
        let big = udp_segment((CIP, 40001), (VIP, 9999), &[7; 2000]);
        let mut icmp6_echo = vec![128, 0, 0, 0, 0x10, 0x92, 0, 1];
        icmp6_echo.extend_from_slice(&[0xa5; 56]);
        let tcp6 = {
            let mut s = Vec::new();
            s.extend_from_slice(&40000u16.to_be_bytes());
            s.extend_from_slice(&80u16.to_be_bytes());
            s.extend_from_slice(&12345u32.to_be_bytes());
            s.extend_from_slice(&0u32.to_be_bytes());
            s.extend_from_slice(&[0x50, TH_SYN, 0xfa, 0xf0, 0, 0, 0, 0]);
            s
        };
        vec![
            golden(
                "syn",
                syn(),
                "IP 198.18.0.201.40000 > 198.18.0.129.80: Flags [S], seq 12345, win 64240, \
                 options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0",
                true,
            ),
            golden(
                "syn-ack",
                syn_ack(),
                "IP 198.18.0.129.80 > 198.18.0.201.40000: Flags [S.], seq 777, ack 12346, \
                 win 65160, options [mss 1460,sackOK,TS val 2 ecr 1,nop,wscale 7], length 0",
                true,
            ),
            golden(
                "ack",
                tcp(
                    (CIP, 40000),
                    (VIP, 80),
                    12346,
                    778,
                    TH_ACK,
                    502,
                    &ts_options,
                    &[],
                ),
                "IP 198.18.0.201.40000 > 198.18.0.129.80: Flags [.], ack 778, win 502, \
                 options [nop,nop,TS val 3 ecr 2], length 0",
                true,
            ),
            golden(
                "psh-ack with payload",
                tcp(
                    (CIP, 40000),
                    (RIP, 80),
                    12346,
                    778,
                    0x18,
                    502,
                    &ts_options,
                    HTTP_GET,
                ),
                "IP 198.18.0.201.40000 > 198.19.0.148.80: Flags [P.], seq 12346:12422, ack 778, \
                 win 502, options [nop,nop,TS val 3 ecr 2], length 76",
                true,
            ),
            golden(
                "fin-ack",
                tcp(
                    (VIP, 80),
                    (CIP, 40000),
                    1000,
                    12424,
                    TH_FIN | TH_ACK,
                    509,
                    &[],
                    &[],
                ),
                "IP 198.18.0.129.80 > 198.18.0.201.40000: Flags [F.], seq 1000, ack 12424, \
                 win 509, length 0",
                true,
            ),
            golden(
                "rst",
                tcp((CIP, 40000), (VIP, 80), 12424, 0, TH_RST, 0, &[], &[]),
                "IP 198.18.0.201.40000 > 198.18.0.129.80: Flags [R], seq 12424, win 0, length 0",
                true,
            ),
            golden(
                "rst-ack",
                tcp((VIP, 80), (CIP, 40001), 0, 55, TH_RST | TH_ACK, 0, &[], &[]),
                "IP 198.18.0.129.80 > 198.18.0.201.40001: Flags [R.], seq 0, ack 55, win 0, \
                 length 0",
                true,
            ),
            golden(
                "every flag, sack, urgent",
                tcp(
                    (CIP, 40000),
                    (VIP, 80),
                    1,
                    2,
                    0xff,
                    3,
                    &[1, 1, 5, 10, 0, 0, 0, 10, 0, 0, 0, 20],
                    b"u",
                ),
                "IP 198.18.0.201.40000 > 198.18.0.129.80: Flags [FSRP.UEW], seq 1:2, ack 2, \
                 win 3, urg 0, options [nop,nop,sack 1 {10:20}], length 1",
                true,
            ),
            golden(
                "udp",
                eth(
                    ETHERTYPE_IPV4,
                    &ipv4(
                        PROTO_UDP,
                        CIP,
                        VIP,
                        &udp_segment((CIP, 40001), (VIP, 9999), b"hello"),
                    ),
                ),
                "IP 198.18.0.201.40001 > 198.18.0.129.9999: UDP, length 5",
                true,
            ),
            golden(
                "ip options",
                eth(
                    ETHERTYPE_IPV4,
                    &with_ip_options(&ipv4(
                        PROTO_UDP,
                        CIP,
                        VIP,
                        &udp_segment((CIP, 40001), (VIP, 9999), b"hello"),
                    )),
                ),
                "IP 198.18.0.201.40001 > 198.18.0.129.9999: UDP, length 5",
                true,
            ),
            golden(
                "icmp echo request",
                ping(8),
                "IP 198.18.0.201 > 198.18.0.129: ICMP echo request, id 4242, seq 1, length 64",
                true,
            ),
            golden(
                "icmp echo reply",
                ping(0),
                "IP 198.18.0.201 > 198.18.0.129: ICMP echo reply, id 4242, seq 1, length 64",
                true,
            ),
            golden(
                "icmp port unreachable",
                icmp(CIP, VIP, 3, 3, [0; 4], &quoted),
                "IP 198.18.0.201 > 198.18.0.129: ICMP 198.18.0.201 udp port 33434 unreachable, \
                 length 36",
                true,
            ),
            golden(
                "icmp need to frag",
                icmp(DIP, CIP, 3, 4, [0, 0, 0x05, 0xa0], &quoted),
                "IP 198.19.0.1 > 198.18.0.201: ICMP 198.18.0.201 unreachable - need to frag \
                 (mtu 1440), length 36",
                true,
            ),
            golden(
                "icmp other type",
                icmp(CIP, VIP, 42, 7, [0; 4], &[]),
                "IP 198.18.0.201 > 198.18.0.129: ICMP type-#42, length 8",
                true,
            ),
            golden(
                "arp request",
                arp(1, CLIENT_MAC, CIP, [0; 6], VIP),
                "ARP, Request who-has 198.18.0.129 tell 198.18.0.201, length 28",
                true,
            ),
            golden(
                "arp request, padded",
                arp_padded,
                "ARP, Request who-has 198.18.0.129 tell 198.18.0.201, length 46",
                true,
            ),
            golden(
                "arp reply",
                arp(2, DIRECTOR_MAC, VIP, CLIENT_MAC, CIP),
                "ARP, Reply 198.18.0.129 is-at 02:00:00:00:00:02, length 28",
                true,
            ),
            golden(
                "ipip",
                eth(ETHERTYPE_IPV4, &ipv4(PROTO_IPIP, DIP, RIP, inner_syn)),
                "IP 198.19.0.1 > 198.19.0.148: IP 198.18.0.201.40000 > 198.18.0.129.80: \
                 Flags [S], seq 12345, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,nop,\
                 wscale 7], length 0",
                true,
            ),
            golden(
                "gre",
                eth(ETHERTYPE_IPV4, &ipv4(PROTO_GRE, DIP, RIP, &gre)),
                "IP 198.19.0.1 > 198.19.0.148: GREv0, length 64: IP 198.18.0.201.40000 > \
                 198.18.0.129.80: Flags [S], seq 12345, win 64240, options [mss 1460,sackOK,\
                 TS val 1 ecr 0,nop,wscale 7], length 0",
                true,
            ),
            golden(
                "gue",
                eth(
                    ETHERTYPE_IPV4,
                    &ipv4(
                        PROTO_UDP,
                        DIP,
                        RIP,
                        &udp_segment((DIP, 50000), (RIP, 6080), &gue),
                    ),
                ),
                "IP 198.19.0.1.50000 > 198.19.0.148.6080: UDP, length 64: GUE: IP \
                 198.18.0.201.40000 > 198.18.0.129.80: Flags [S], seq 12345, win 64240, \
                 options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7], length 0",
                false,
            ),
            golden(
                "first fragment",
                eth(
                    ETHERTYPE_IPV4,
                    &ipv4_with(PROTO_UDP, CIP, VIP, 77, 0x2000, &big[..1480]),
                ),
                "IP 198.18.0.201.40001 > 198.18.0.129.9999: UDP, length 2000 (frag 77:1480@0+)",
                false,
            ),
            golden(
                "last fragment",
                eth(
                    ETHERTYPE_IPV4,
                    &ipv4_with(PROTO_UDP, CIP, VIP, 77, 1480 / 8, &big[1480..]),
                ),
                "IP 198.18.0.201 > 198.18.0.129: ip-proto-17 (frag 77:528@1480)",
                false,
            ),
            snapped(golden("snapped to 20 bytes", syn(), "IP [|ip]", true), 20),
            snapped(
                golden(
                    "snapped in the tcp header",
                    syn(),
                    "IP 198.18.0.201.40000 > 198.18.0.129.80: [|tcp]",
                    true,
                ),
                ETH_HLEN + 20 + 10,
            ),
            snapped(
                golden(
                    "snapped in the tcp options",
                    syn(),
                    "IP 198.18.0.201.40000 > 198.18.0.129.80: Flags [S], seq 12345, win 64240, \
                     options [mss 1460,sackOK,TS [|tcp]",
                    true,
                ),
                ETH_HLEN + 20 + 20 + 8,
            ),
            snapped(
                golden(
                    "snapped in the payload",
                    tcp((CIP, 40000), (RIP, 80), 5, 6, 0x18, 502, &[], HTTP_GET),
                    "IP 198.18.0.201.40000 > 198.19.0.148.80: Flags [P.], seq 5:81, ack 6, \
                     win 502, length 76",
                    true,
                ),
                ETH_HLEN + 20 + 20 + 10,
            ),
            golden(
                "shorter than its ip header says",
                syn()[..ETH_HLEN + 20 + 10].to_vec(),
                "IP truncated-ip - 30 bytes missing! 198.18.0.201.40000 > 198.18.0.129.80: [|tcp]",
                true,
            ),
            golden("runt", vec![1, 2, 3], "[|ether]", true),
            golden(
                "ipv6 tcp",
                ipv6_frame(PROTO_TCP, &tcp6),
                "IP6 2001:2::1.40000 > 2001:2::2.80: Flags [S], seq 12345, win 64240, length 0",
                true,
            ),
            golden(
                "ipv6 icmp6 echo",
                ipv6_frame(PROTO_ICMPV6, &icmp6_echo),
                "IP6 2001:2::1 > 2001:2::2: ICMP6, echo request, id 4242, seq 1, length 64",
                true,
            ),
            golden(
                "unknown ethertype",
                eth(0x88b5, &[0; 46]),
                "02:00:00:00:00:01 > 02:00:00:00:00:02, ethertype Unknown (0x88b5), length 60",
                true,
            ),
        ]
    }

    fn captured(g: &Golden) -> CapturedFrame {
        let mut f = frame(Side::External, Direction::Received, g.data.clone());
        if let Some(len) = g.orig_len {
            f.orig_len = len;
        }
        f
    }

    #[test]
    fn golden_lines() {
        for g in goldens() {
            assert_eq!(
                text_line(&captured(&g), "ext0"),
                format!("16:00:00.123456 ext0  In  {}", g.text),
                "{}",
                g.name
            );
        }
    }

    #[test]
    fn time_interface_and_direction_columns() {
        let mut f = frame(Side::Internal, Direction::Transmitted, syn());
        f.ts_ns = 86_399 * 1_000_000_000 + 999_999_999;
        assert!(text_line(&f, "int0").starts_with("23:59:59.999999 int0  Out IP 198.18.0.201."));
        f.ts_ns = 0;
        assert!(text_line(&f, "ens36").starts_with("00:00:00.000000 ens36 Out IP "));
        f.direction = Direction::Received;
        assert!(text_line(&f, "a-long-name").starts_with("00:00:00.000000 a-long-name In  IP "));
    }

    /// xorshift64*: deterministic pseudo-random bytes without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds: Vec<Vec<u8>> = goldens().into_iter().map(|g| g.data).collect();
        let mut pcap = PcapWriter::new(Vec::new()).unwrap();
        let sides = [("ext0", Side::External), ("int0", Side::Internal)];
        let mut pcapng = PcapngWriter::new(Vec::new(), &sides).unwrap();
        for i in 0..20_000 {
            let mut data = if i % 2 == 0 {
                // Random bytes, mostly behind a header that leads to a decoder.
                let len = rng.below(160);
                let mut d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if d.len() >= 15 {
                    let t = [0x0800u16, 0x86dd, 0x0806, rng.next() as u16][rng.below(4)];
                    d[12..14].copy_from_slice(&t.to_be_bytes());
                    if t == 0x0800 {
                        d[14] = 0x40 | (d[14] & 0x0f);
                    }
                }
                d
            } else {
                // A valid frame, mutated and cut.
                let mut d = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(4) {
                    let at = rng.below(d.len());
                    d[at] = rng.next() as u8;
                }
                d.truncate(rng.below(d.len() + 1));
                d
            };
            if i % 7 == 0 {
                data.extend((0..rng.below(64)).map(|_| rng.next() as u8));
            }
            let f = CapturedFrame {
                side: Side::External,
                direction: Direction::Received,
                orig_len: [0, data.len() as u32, rng.next() as u32, u32::MAX][rng.below(4)],
                ts_ns: rng.next(),
                data,
            };
            let line = text_line(&f, "ext0");
            assert!(!line.contains('\n'), "{line}");
            pcap.write(&f).unwrap();
            pcapng.write(&f).unwrap();
        }
        pcapng_blocks(&pcapng.into_inner());
    }

    // ---- files ----

    fn tcpdump() -> Option<PathBuf> {
        let found = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        if found.is_none() {
            eprintln!("tcpdump not found: checking the file layout only");
        }
        found
    }

    /// `tcpdump -nn -S -r FILE EXTRA...` in UTC: its lines, after checking it succeeded.
    fn run_tcpdump(tcpdump: &Path, file: &Path, extra: &[&str]) -> Vec<String> {
        let out = Command::new(tcpdump)
            .args(["-nn", "-S", "-r"])
            .arg(file)
            .args(extra)
            .env("TZ", "UTC")
            .output()
            .expect("run tcpdump");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tcpdump failed: {stderr}");
        assert!(
            !stderr.contains("error") && !stderr.contains("truncated"),
            "{stderr}"
        );
        // One line a packet: hex dumps (of what tcpdump does not decode) left out.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('\t'))
            .map(str::to_owned)
            .collect()
    }

    /// A file in the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            TempFile(std::env::temp_dir().join(format!("xvs-format-{}-{name}", std::process::id())))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// Three frames, one per side and direction but the fourth: a client's SYN received on
    /// the external side, sent on NAT'd to the real server on the internal side, whose
    /// SYN-ACK is received there.
    fn three_frames() -> Vec<CapturedFrame> {
        let nat_syn = tcp(
            (CIP, 40000),
            (RIP, 80),
            12345,
            0,
            TH_SYN,
            64240,
            &SYN_OPTIONS,
            &[],
        );
        let rs_syn_ack = syn_ack_from((RIP, 80));
        let mut frames = vec![
            frame(Side::External, Direction::Received, syn()),
            frame(Side::Internal, Direction::Transmitted, nat_syn),
            frame(Side::Internal, Direction::Received, rs_syn_ack),
        ];
        for (i, f) in frames.iter_mut().enumerate() {
            f.ts_ns += i as u64 * 1_000_000_123;
        }
        frames
    }

    /// The part of a text line after the time and interface columns.
    fn after_columns(line: &str) -> &str {
        let rest = line.split_once(' ').unwrap().1;
        rest.trim_start_matches(|c| c != ' ')
            .trim_start()
            .split_once(' ')
            .unwrap()
            .1
            .trim_start()
    }

    fn check_tcpdump_reads(file: &Path, frames: &[CapturedFrame]) {
        let Some(tcpdump) = tcpdump() else { return };
        let lines = run_tcpdump(&tcpdump, file, &[]);
        assert_eq!(lines.len(), frames.len(), "{lines:#?}");
        for (line, f) in lines.iter().zip(frames) {
            let mine = text_line(f, "x");
            // Same time (UTC, microseconds), same addresses, ports and fields.
            assert_eq!(line, &format!("{} {}", &mine[..15], after_columns(&mine)));
        }
        // Verbose: tcpdump checks the IP and TCP checksums too.
        let verbose = run_tcpdump(&tcpdump, file, &["-v"]);
        assert_eq!(verbose.iter().filter(|l| l.contains(" IP (")).count(), 3);
        assert_eq!(
            verbose.iter().filter(|l| l.contains("(correct)")).count(),
            3
        );
        assert!(
            !verbose
                .iter()
                .any(|l| l.contains("bad cksum") || l.contains("incorrect")),
            "{verbose:#?}"
        );
    }

    #[test]
    fn pcap_file() {
        let frames = three_frames();
        let file = TempFile::new("three.pcap");
        let mut w = PcapWriter::new(std::fs::File::create(&file.0).unwrap()).unwrap();
        for f in &frames {
            w.write(f).unwrap();
        }
        w.get_mut().flush().unwrap();
        drop(w);

        let bytes = std::fs::read(&file.0).unwrap();
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
        assert_eq!(u32_at(16), SNAPLEN as u32);
        assert_eq!(u32_at(20), 1);
        let mut at = 24;
        for f in &frames {
            assert_eq!(
                u64::from(u32_at(at)) * 1_000_000_000 + u64::from(u32_at(at + 4)),
                f.ts_ns
            );
            assert_eq!(u32_at(at + 8) as usize, f.data.len());
            assert_eq!(u32_at(at + 12), f.orig_len);
            assert_eq!(&bytes[at + 16..at + 16 + f.data.len()], &f.data[..]);
            at += 16 + f.data.len();
        }
        assert_eq!(at, bytes.len());
        check_tcpdump_reads(&file.0, &frames);
    }

    /// The blocks of a little-endian pcapng file: (type, body), checking each block's framing.
    fn pcapng_blocks(bytes: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
        let mut blocks = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = u32_at(at + 4) as usize;
            assert_eq!(
                len % 4,
                0,
                "block at {at}: length {len} not a multiple of 4"
            );
            assert_eq!(
                u32_at(at + len - 4) as usize,
                len,
                "block at {at}: trailing length"
            );
            blocks.push((u32_at(at), bytes[at + 8..at + len - 4].to_vec()));
            at += len;
        }
        assert_eq!(at, bytes.len());
        blocks
    }

    /// A block's options: (code, value) until opt_endofopt, which must end them.
    fn options(mut o: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut all = Vec::new();
        loop {
            let code = u16::from_le_bytes([o[0], o[1]]);
            let len = usize::from(u16::from_le_bytes([o[2], o[3]]));
            if code == 0 {
                assert_eq!((len, o.len()), (0, 4));
                return all;
            }
            all.push((code, o[4..4 + len].to_vec()));
            o = &o[4 + len.next_multiple_of(4)..];
        }
    }

    #[test]
    fn pcapng_file() {
        let frames = three_frames();
        let file = TempFile::new("three.pcapng");
        let interfaces = [("ext0", Side::External), ("int0", Side::Internal)];
        let mut w =
            PcapngWriter::new(std::fs::File::create(&file.0).unwrap(), &interfaces).unwrap();
        for f in &frames {
            w.write(f).unwrap();
        }
        drop(w);

        let bytes = std::fs::read(&file.0).unwrap();
        let blocks = pcapng_blocks(&bytes);
        assert_eq!(blocks.len(), 1 + 2 + 3);
        let (shb_type, shb) = &blocks[0];
        assert_eq!(*shb_type, 0x0a0d_0d0a);
        assert_eq!(&shb[..4], &0x1a2b_3c4d_u32.to_le_bytes());
        assert_eq!(&shb[4..8], &[1, 0, 0, 0]);
        assert_eq!(&shb[8..16], &[0xff; 8]);
        options(&shb[16..]);
        for (i, (name, _)) in interfaces.iter().enumerate() {
            let (t, idb) = &blocks[1 + i];
            assert_eq!(*t, 1);
            assert_eq!(&idb[..8], &[1, 0, 0, 0, 0, 0x10, 0, 0]);
            assert_eq!(
                options(&idb[8..]),
                [(2, name.as_bytes().to_vec()), (9, vec![9])]
            );
        }
        for (f, (t, epb)) in frames.iter().zip(&blocks[3..]) {
            assert_eq!(*t, 6);
            let u32_at = |i: usize| u32::from_le_bytes(epb[i..i + 4].try_into().unwrap());
            let interface = match f.side {
                Side::External => 0,
                Side::Internal => 1,
            };
            assert_eq!(u32_at(0), interface);
            assert_eq!(u64::from(u32_at(4)) << 32 | u64::from(u32_at(8)), f.ts_ns);
            assert_eq!(u32_at(12) as usize, f.data.len());
            assert_eq!(u32_at(16), f.orig_len);
            assert_eq!(&epb[20..20 + f.data.len()], &f.data[..]);
            let flags = match f.direction {
                Direction::Received => 1u32,
                Direction::Transmitted => 2,
            };
            let opts = options(&epb[20 + f.data.len().next_multiple_of(4)..]);
            assert_eq!(opts, [(2, flags.to_le_bytes().to_vec())]);
        }
        check_tcpdump_reads(&file.0, &frames);
    }

    #[test]
    fn pcapng_frame_of_a_side_without_interface_is_an_error() {
        let mut w = PcapngWriter::new(Vec::new(), &[("ext0", Side::External)]).unwrap();
        w.write(&frame(Side::External, Direction::Received, syn()))
            .unwrap();
        let err = w
            .write(&frame(Side::Internal, Direction::Received, syn()))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        pcapng_blocks(&w.into_inner());
    }

    #[test]
    fn files_cut_frames_to_snaplen() {
        let mut f = frame(Side::External, Direction::Received, vec![0xab; SNAPLEN + 3]);
        f.orig_len = 10;
        let mut pcap = PcapWriter::new(Vec::new()).unwrap();
        pcap.write(&f).unwrap();
        let bytes = pcap.into_inner();
        assert_eq!(bytes.len(), 24 + 16 + SNAPLEN);
        assert_eq!(&bytes[32..40], &[0, 0x10, 0, 0, 3, 0x10, 0, 0]);
        let mut ng = PcapngWriter::new(Vec::new(), &[("e", Side::External)]).unwrap();
        ng.write(&f).unwrap();
        let blocks = pcapng_blocks(&ng.into_inner());
        assert_eq!(blocks[2].1[12..20], [0, 0x10, 0, 0, 3, 0x10, 0, 0]);
    }

    #[test]
    fn output_format_by_extension() {
        assert_eq!(
            OutputFormat::for_path(Path::new("a.pcap")),
            OutputFormat::Pcap
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("/x/a.PCAP")),
            OutputFormat::Pcap
        );
        assert_eq!(
            OutputFormat::for_path(Path::new("a.pcapng")),
            OutputFormat::Pcapng
        );
        assert_eq!(OutputFormat::for_path(Path::new("-")), OutputFormat::Pcapng);
        let mut w = FileWriter::new(OutputFormat::Pcap, Vec::new(), &[]).unwrap();
        w.write(&frame(Side::Internal, Direction::Received, syn()))
            .unwrap();
        assert_eq!(w.get_mut().len(), 24 + 16 + syn().len());
    }

    /// Every golden frame through tcpdump: where this module means to print what tcpdump
    /// prints, tcpdump's line starts with ours, runs of spaces aside; the others are shown
    /// for comparison.
    #[test]
    fn golden_lines_match_tcpdump() {
        let Some(tcpdump) = tcpdump() else { return };
        let goldens = goldens();
        let file = TempFile::new("goldens.pcap");
        let mut w = PcapWriter::new(std::fs::File::create(&file.0).unwrap()).unwrap();
        for g in &goldens {
            w.write(&captured(g)).unwrap();
        }
        drop(w);
        let lines = run_tcpdump(&tcpdump, &file.0, &[]);
        assert_eq!(lines.len(), goldens.len(), "{lines:#?}");
        let spaces = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for (g, line) in goldens.iter().zip(&lines) {
            let theirs = line.strip_prefix("16:00:00.123456 ").unwrap();
            if g.as_tcpdump {
                assert!(
                    spaces(theirs).starts_with(&spaces(g.text)),
                    "{}:\n  tcpdump: {theirs}\n  ours:    {}",
                    g.name,
                    g.text
                );
            } else {
                eprintln!("{}:\n  tcpdump: {theirs}\n  ours:    {}", g.name, g.text);
            }
        }
    }
}
