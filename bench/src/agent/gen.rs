//! `agent gen`: the load generator, run in the client namespace.
//!
//! Frames are built once and sent round and round through an AF_PACKET socket that bypasses
//! the qdisc, in sendmmsg batches. Flow `i` comes from address `src_base + i % src_count`,
//! port `1024 + i / src_count`, and goes to `dst[i % dst.len()]`; thread `t` of `T` owns the
//! flows `i % T == t`, so every batch mixes flows. With `--rate` each thread paces its share
//! of the rate in bursts of at most `--batch` frames and ~200 us of traffic (burst `k` is due
//! at `start + k * burst / rate`); with `--rate 0` it sends as fast as it can.
//!
//! - `--proto udp`: one frame per flow (Ethernet + IPv4 or IPv6, the family of the addresses
//!   given, + UDP with correct checksums + payload [`MAGIC`](super::MAGIC) and the flow
//!   number).
//! - `--proto tcp`: one whole conversation per flow ([`tcp::conversation`]: SYN,
//!   `--data-segments` data segments, FIN, last ACK), its frames laid out in phases in the
//!   thread's ring: every flow's SYN, then every flow's first data segment, ..., every flow's
//!   FIN, every flow's last ACK ([`TcpLayout::Phased`]; the XDP generator also has
//!   [`TcpLayout::Staggered`]). With `F` flows per thread, `F - 1` frames separate a flow's
//!   SYN from its first ACK, and its FIN from its last ACK: the responder's SYN/ACK (FIN/ACK)
//!   must be back through the director by then, or a stateful NAT (conntrack) sees an ACK
//!   it cannot place and does not translate it, which counts as loss. At 1 Mpps per thread
//!   and 1024 flows that leaves 1 ms for the round trip. The next pass reuses each flow's
//!   4-tuple with a new SYN right after its last ACK (TIME_WAIT reuse, which both conntrack
//!   and IPVS-style tables accept) and the same sequence numbers.
//!
//! "Offered" is what the kernel took from us: a frame that the director's veth then drops
//! because its input queue is full counts as offered and lost, as a NIC ring overflow would.

use super::frame::{fold, sum16, IpHeader, ETH_LEN, IPPROTO_UDP};
use super::sys::FrameRing;
use super::{ensure_family, nth_address, tcp, Family, Proto};
use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Ethernet FCS: counted in `--frame-size` (RFC 2544 sizes) but added by no one on veth.
pub const FCS_LEN: usize = 4;
/// Most frame bytes a thread's ring may hold (TCP rings hold `flows * (data + 3)` frames).
const RING_BYTES_MAX: usize = 1 << 30;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Interface to send on.
    #[arg(long, default_value = "eth0")]
    pub iface: String,
    /// Destination MAC (the next hop: the director's external interface).
    #[arg(long)]
    pub dst_mac: String,
    /// First source address (IPv4 or IPv6: the frames' family).
    #[arg(long)]
    pub src_base: IpAddr,
    /// Number of source addresses (counted in the last 32 bits of `--src-base`).
    #[arg(long, default_value_t = 64)]
    pub src_count: u32,
    /// Destination addresses (comma list, of `--src-base`'s family), used in turn by the flows.
    #[arg(long, value_delimiter = ',', required = true)]
    pub dst: Vec<IpAddr>,
    #[arg(long, default_value_t = super::BENCH_PORT)]
    pub dport: u16,
    #[arg(long, default_value_t = 1024)]
    pub flows: u32,
    /// Ethernet frame size including the 4-byte FCS (64..=1518; IPv6 74..=1518).
    #[arg(long, default_value_t = 64)]
    pub frame_size: usize,
    /// Packets per second in total; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Cores for the threads (comma list; thread t on cores[t % len]).
    #[arg(long, value_parser = super::parse_cores, default_value = "")]
    pub cores: ::std::vec::Vec<usize>,
    /// Frames per sendmmsg.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// TCP: data segments per conversation (fewer if they would not fit in one window).
    #[arg(long, default_value_t = 8)]
    pub data_segments: usize,
    /// TCP: how the conversations are laid out in the ring (see [`TcpLayout`]) [default:
    /// staggered with the XDP generator; the packet generator has only phased].
    #[arg(long, value_enum)]
    pub tcp_layout: Option<TcpLayout>,
}

/// How a TCP ring lays its conversations out. Either way a conversation's consecutive
/// segments are one round (one frame of every flow) apart, which leaves the responder's
/// SYN/ACK and FIN/ACK that long to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TcpLayout {
    /// [`phases`]: every flow's SYN, then every flow's second segment, and so on: all flows
    /// open together and close together, so the ring alternates long runs of handshakes and
    /// teardowns (1024 SYNs in a row) with runs of data: a flash crowd.
    Phased,
    /// [`staggered`]: flow `i` starts `i % segments` rounds late, so that every stretch of the
    /// ring mixes openings, data and closings in the conversation's proportions, as
    /// independent clients do.
    Staggered,
}

impl Args {
    /// The frames' family (`--src-base`'s), once every address agrees with it and
    /// `--frame-size` holds its headers.
    pub fn family(&self) -> Result<Family> {
        let family = Family::of(self.src_base);
        ensure_family(family, "--dst", &self.dst)?;
        let min = min_frame_size(family);
        ensure!(
            (min..=1518).contains(&self.frame_size),
            "--frame-size must be {min}..=1518 for IPv{}",
            family.number()
        );
        Ok(family)
    }

    /// (destination, source) MACs of the frames: `--dst-mac`, and `--iface`'s own.
    pub fn macs(&self) -> Result<([u8; 6], [u8; 6])> {
        let src = std::fs::read_to_string(format!("/sys/class/net/{}/address", self.iface))
            .with_context(|| format!("reading {}'s MAC", self.iface))?;
        Ok((parse_mac(&self.dst_mac)?, parse_mac(&src)?))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenReport {
    /// Frames the kernel accepted.
    pub sent: u64,
    /// Frames refused by the kernel (send errors).
    pub errors: u64,
    pub elapsed_s: f64,
    /// Requested packets per second (0 = max).
    pub rate: f64,
    /// sent / elapsed.
    pub offered_pps: f64,
}

/// The generator's UDP frames (and the XDP sink's) in `family`: Ethernet, IP and UDP headers.
pub fn udp_headers_len(family: Family) -> usize {
    ETH_LEN + family.ip_header_len() + 8
}

/// What follows the UDP header: [`MAGIC`](super::MAGIC) and the flow number.
pub const TAG_LEN: usize = 8;

/// The smallest `--frame-size` (FCS included) of `family`: its headers and the tag, and
/// never below Ethernet's 64 bytes.
pub fn min_frame_size(family: Family) -> usize {
    (udp_headers_len(family) + TAG_LEN + FCS_LEN).max(64)
}

/// One UDP frame of `wire_len` bytes (no FCS; at least the headers and the tag) from `src`
/// to `dst` (one family), with correct IP and UDP checksums; payload: the tag, then zeros.
pub fn build_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flow: u32,
    wire_len: usize,
) -> Vec<u8> {
    let ip = IpHeader {
        dst_mac,
        src_mac,
        src: src.0,
        dst: dst.0,
        proto: IPPROTO_UDP,
        ident: flow as u16,
    };
    let at = ip.len();
    let mut f = vec![0u8; wire_len.max(at + 8 + TAG_LEN)];
    let udp_len = f.len() - at;
    ip.write(&mut f, udp_len);
    let udp = &mut f[at..];
    udp[0..2].copy_from_slice(&src.1.to_be_bytes());
    udp[2..4].copy_from_slice(&dst.1.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[8..12].copy_from_slice(&super::MAGIC);
    udp[12..16].copy_from_slice(&flow.to_be_bytes());
    // Pseudo-header + UDP header + payload; 0 is sent as 0xffff (0 means "none" in IPv4
    // and is forbidden in IPv6).
    let mut c = fold(ip.pseudo_sum(udp_len) + sum16(udp));
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f
}

/// Parses "aa:bb:cc:dd:ee:ff".
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.trim().split(':').collect();
    ensure!(parts.len() == 6, "bad MAC address {s:?}");
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC address {s:?}"))?;
    }
    Ok(m)
}

/// Flow `i`'s source (address, port): address `i % count` of the pool at `base`
/// ([`nth_address`]), port `1024 + i / count`.
pub fn flow_source(base: IpAddr, count: u32, i: u32) -> (IpAddr, u16) {
    let count = count.max(1);
    (nth_address(base, i % count), (1024 + i / count) as u16)
}

/// Conversations (each a list of frames, all of the same length) laid out phase by phase:
/// every conversation's first frame, then every conversation's second, and so on.
pub fn phases(convs: Vec<Vec<Vec<u8>>>) -> Vec<Vec<u8>> {
    let len = convs.first().map_or(0, Vec::len);
    let mut iters: Vec<_> = convs.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(iters.len() * len);
    for _ in 0..len {
        out.extend(iters.iter_mut().filter_map(Iterator::next));
    }
    out
}

/// Conversations (each a list of the same number of frames) laid out [`TcpLayout::Staggered`]:
/// in round `r`, conversation `i` sends its segment `(r - i % S) mod S` (`S` segments). Each
/// frame comes with whether it is sent on the ring's first pass: a conversation's segments
/// before its SYN are not (on later passes they end the previous pass's conversation).
pub fn staggered(convs: Vec<Vec<Vec<u8>>>) -> Vec<(Vec<u8>, bool)> {
    let segments = convs.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(convs.len() * segments);
    for round in 0..segments {
        for (i, conv) in convs.iter().enumerate() {
            let start = i % segments;
            let segment = (round + segments - start) % segments;
            out.push((conv[segment].clone(), round >= start));
        }
    }
    out
}

pub fn run(a: &Args) -> Result<GenReport> {
    let family = a.family()?;
    ensure!(
        a.flows >= 1 && a.threads >= 1 && a.batch >= 1,
        "flows, threads and batch must be >= 1"
    );
    ensure!(
        a.flows / a.src_count.max(1) < 64_000,
        "too many flows per source address"
    );
    ensure!(
        a.tcp_layout.is_none_or(|l| l == TcpLayout::Phased),
        "--tcp-layout staggered needs the XDP generator (the packet generator's ring has no first pass)"
    );
    let (dst_mac, src_mac) = a.macs()?;
    let wire_len = a.frame_size - FCS_LEN;
    let threads = a.threads.min(a.flows as usize);
    let data = tcp::data_segments(family, wire_len, a.data_segments);
    let mut rings = Vec::new();
    for t in 0..threads {
        let flows: Vec<u32> = (0..a.flows)
            .filter(|i| *i as usize % threads == t)
            .collect();
        let ends = |i: u32| {
            (
                flow_source(a.src_base, a.src_count, i),
                (a.dst[i as usize % a.dst.len()], a.dport),
            )
        };
        let frames: Vec<Vec<u8>> = match a.proto {
            Proto::Udp => flows
                .iter()
                .map(|&i| {
                    let (src, dst) = ends(i);
                    build_frame(dst_mac, src_mac, src, dst, i, wire_len)
                })
                .collect(),
            Proto::Tcp => {
                ensure!(
                    flows.len() * (data + 3) * wire_len <= RING_BYTES_MAX,
                    "too many TCP flows per thread for one ring (fewer --flows or more threads)"
                );
                let convs: Vec<Vec<Vec<u8>>> = flows
                    .iter()
                    .map(|&i| {
                        let (src, dst) = ends(i);
                        tcp::conversation(dst_mac, src_mac, src, dst, i, wire_len, data)
                    })
                    .collect();
                phases(convs)
            }
        };
        rings.push(
            FrameRing::new(&a.iface, frames)
                .with_context(|| format!("packet socket on {}", a.iface))?,
        );
    }
    let duration = Duration::from_secs_f64(a.duration);
    let per_thread = a.rate / threads as f64;
    let start = Instant::now();
    let handles: Vec<_> = rings
        .into_iter()
        .enumerate()
        .map(|(t, mut ring)| {
            let cores = a.cores.clone();
            let batch = a.batch;
            // Bursts of at most ~200 us of traffic, so that pacing stays smooth at low rates.
            let burst = ((per_thread * 200e-6) as u64).clamp(1, batch as u64);
            std::thread::spawn(move || {
                super::pin(&cores, t);
                let (mut sent, mut errors, mut attempted) = (0u64, 0u64, 0u64);
                loop {
                    let now = Instant::now();
                    let elapsed = now - start;
                    if elapsed >= duration {
                        break;
                    }
                    let mut n = batch;
                    if per_thread > 0.0 {
                        // Send when a whole burst is due: one frame per sendmmsg would cost a
                        // system call (and a wake-up of the receiver) per frame. Behind
                        // schedule, catch up one batch per call.
                        let due = (elapsed.as_secs_f64() * per_thread) as u64;
                        if due < attempted + burst {
                            let wait =
                                (attempted + burst) as f64 / per_thread - elapsed.as_secs_f64();
                            if wait > 200e-6 {
                                std::thread::sleep(Duration::from_secs_f64(wait - 100e-6));
                            } else {
                                std::hint::spin_loop();
                            }
                            continue;
                        }
                        n = ((due - attempted) as usize).min(batch);
                    }
                    attempted += n as u64;
                    match ring.send(n) {
                        Ok(k) => {
                            sent += k as u64;
                            errors += (n - k) as u64;
                        }
                        Err(_) => errors += n as u64,
                    }
                }
                (sent, errors)
            })
        })
        .collect();
    let (mut sent, mut errors) = (0, 0);
    for h in handles {
        let (s, e) = h
            .join()
            .map_err(|_| anyhow::anyhow!("generator thread panicked"))?;
        sent += s;
        errors += e;
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    Ok(GenReport {
        sent,
        errors,
        elapsed_s,
        rate: a.rate,
        offered_pps: sent as f64 / elapsed_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    const CLIENT4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 10);
    const VIP4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);
    const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129);

    fn frame(src: IpAddr, dst: IpAddr, flow: u32, wire_len: usize) -> Vec<u8> {
        build_frame(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            (src, 1024),
            (dst, 9000),
            flow,
            wire_len,
        )
    }

    #[test]
    fn frame_checksums_verify() {
        let f = frame(CLIENT4.into(), VIP4.into(), 7, 60);
        assert_eq!(f.len(), 60);
        // A correct header sums to 0xffff (folded complement 0).
        assert_eq!(fold(sum16(&f[14..34])), 0);
        let udp_len = u16::from_be_bytes([f[38], f[39]]);
        assert_eq!(udp_len, 60 - 34);
        let s = sum16(&f[26..34]) + 17 + u32::from(udp_len) + sum16(&f[34..]);
        assert_eq!(fold(s), 0);
        assert_eq!(&f[42..46], b"XVSB");
        // Cross-check with the dataplane's own wire views.
        use xvs_dataplane::wire::{EthernetFrame, Ipv4Packet, UdpPacket};
        let eth = EthernetFrame::new_checked(&f[..]).expect("ethernet");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
        assert!(udp.verify_checksum(CLIENT4, VIP4));
        assert_ne!(udp.checksum(), 0);
    }

    /// IPv6 frames of every size read back through etherparse, whose UDP checksum over the
    /// IPv6 pseudo-header is an independent computation, and through the dataplane's views.
    #[test]
    fn ipv6_frame_checksums_verify() {
        use etherparse::{EtherType, Ethernet2Header, IpNumber, Ipv6Header, UdpHeader};
        assert_eq!(udp_headers_len(Family::V6), 62);
        assert_eq!(min_frame_size(Family::V6), 74);
        assert_eq!(min_frame_size(Family::V4), 64);
        for (flow, wire_len) in [(0u32, 70usize), (7, 80), (0xffff_0001, 81), (3, 1514)] {
            let f = frame(CLIENT6.into(), VIP6.into(), flow, wire_len);
            assert_eq!(f.len(), wire_len);
            let (eth, rest) = Ethernet2Header::from_slice(&f).unwrap();
            assert_eq!(eth.ether_type, EtherType::IPV6);
            let (ip, rest) = Ipv6Header::from_slice(rest).unwrap();
            assert_eq!(
                (ip.next_header, ip.hop_limit, ip.payload_length),
                (IpNumber::UDP, 64, (wire_len - 54) as u16)
            );
            assert_eq!(
                (ip.source, ip.destination),
                (CLIENT6.octets(), VIP6.octets())
            );
            let (udp, payload) = UdpHeader::from_slice(rest).unwrap();
            assert_eq!((udp.source_port, udp.destination_port), (1024, 9000));
            assert_eq!(udp.length as usize, wire_len - 54);
            assert_eq!(payload[..4], *b"XVSB");
            assert_eq!(payload[4..8], flow.to_be_bytes());
            assert_ne!(udp.checksum, 0, "IPv6 forbids a zero UDP checksum");
            assert_eq!(
                udp.checksum,
                udp.calc_checksum_ipv6(&ip, payload).unwrap(),
                "{wire_len} bytes"
            );
            use xvs_dataplane::wire::{EthernetFrame, Ipv6Packet, UdpPacket};
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            assert!(udp.verify_checksum(CLIENT6, VIP6));
        }
    }

    #[test]
    fn frame_size_is_checked_against_the_family() {
        let mut a = Args {
            iface: "eth0".into(),
            dst_mac: "02:00:00:00:00:01".into(),
            src_base: CLIENT6.into(),
            src_count: 64,
            dst: vec![VIP6.into()],
            dport: 9000,
            flows: 1,
            frame_size: 64,
            rate: 0.0,
            duration: 1.0,
            threads: 1,
            cores: vec![],
            batch: 64,
            proto: Proto::Udp,
            data_segments: 8,
            tcp_layout: None,
        };
        assert!(a.family().is_err(), "64 bytes cannot hold IPv6's headers");
        a.frame_size = 74;
        assert_eq!(a.family().unwrap(), Family::V6);
        a.dst.push(VIP4.into());
        let e = a.family().unwrap_err().to_string();
        assert!(e.contains("198.18.0.129"), "{e}");
    }

    #[test]
    fn flows_vary_address_then_port() {
        let b = IpAddr::from(CLIENT4);
        assert_eq!(flow_source(b, 64, 0), (b, 1024));
        assert_eq!(
            flow_source(b, 64, 63),
            (Ipv4Addr::new(198, 18, 0, 73).into(), 1024)
        );
        assert_eq!(flow_source(b, 64, 64), (b, 1025));
        let b6 = IpAddr::from(CLIENT6);
        assert_eq!(
            flow_source(b6, 64, 65),
            ("2001:2::11".parse().unwrap(), 1025)
        );
    }

    #[test]
    fn tcp_rings_go_phase_by_phase() {
        let convs = vec![
            vec![vec![1], vec![2], vec![3]],
            vec![vec![11], vec![12], vec![13]],
        ];
        assert_eq!(
            phases(convs),
            vec![vec![1], vec![11], vec![2], vec![12], vec![3], vec![13]]
        );
        assert!(phases(Vec::new()).is_empty());
    }

    #[test]
    fn staggered_rings_mix_segments_and_keep_each_conversation_in_order() {
        // 7 conversations of 3 segments: conversation c's segment s is c * 10 + s.
        let convs: Vec<Vec<Vec<u8>>> = (0..7u8)
            .map(|c| (0..3u8).map(|s| vec![c * 10 + s]).collect())
            .collect();
        let ring = staggered(convs);
        assert_eq!(ring.len(), 21);
        // Every round holds one frame of each conversation, and SYNs are spread over rounds.
        for (round, frames) in ring.chunks(7).enumerate() {
            let convs: Vec<u8> = frames.iter().map(|(f, _)| f[0] / 10).collect();
            assert_eq!(convs, (0..7).collect::<Vec<_>>(), "round {round}");
            let syns = frames.iter().filter(|(f, _)| f[0] % 10 == 0).count();
            assert!((2..=3).contains(&syns), "round {round}: {syns} SYNs");
        }
        // Two passes of the ring, the first skipping what precedes each SYN: each
        // conversation's segments come in order, from its SYN, passes joining seamlessly.
        let sent: Vec<u8> = ring
            .iter()
            .filter(|(_, first)| *first)
            .chain(ring.iter())
            .map(|(f, _)| f[0])
            .collect();
        for c in 0..7u8 {
            let mine: Vec<u8> = sent
                .iter()
                .filter(|b| *b / 10 == c)
                .map(|b| b % 10)
                .collect();
            assert_eq!(mine[0], 0, "conversation {c} starts with its SYN");
            assert!(
                mine.windows(2).all(|w| w[1] == (w[0] + 1) % 3),
                "conversation {c}: {mine:?}"
            );
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01\n").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00").is_err());
        assert!(parse_mac("02:0a:ff:00:01:9c:00").is_err());
        assert!(parse_mac("02:0a:ff:00:01:zz").is_err());
    }
}
