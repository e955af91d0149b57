//! The TCP conversations of the throughput benchmark, as pure functions: the generator's
//! precomputed segments and the responder's answers, which agree on every sequence number
//! without ever talking to each other.
//!
//! A conversation of flow (client address, client port) → (destination, [`BENCH_PORT`]):
//!
//! ```text
//! client (generator)                               server (responder)
//! SYN       seq c                        ─────▶
//!                                        ◀─────    SYN|ACK  seq s, ack c+1
//! ACK|PSH   seq c+1+k*P, ack s+1, P bytes ─────▶   (k = 0..D; not acknowledged)
//! FIN|ACK   seq c+1+D*P, ack s+1         ─────▶
//!                                        ◀─────    FIN|ACK  seq s+1, ack c+2+D*P
//! ACK       seq c+2+D*P, ack s+2         ─────▶
//! ```
//!
//! `c` = [`client_isn`] and `s` = [`server_isn`] are functions of the client's address and port
//! only: the responder sees those unchanged behind a NAT (only the destination is rewritten),
//! and every real server answers a flow alike, whichever one the director picks. The data
//! (`D * P` bytes) fits in the 65,535-byte window of the SYN/ACK (no window scaling), so a
//! stateful middlebox (conntrack) accepts it without the responder acknowledging it. No
//! options: 20-byte TCP headers. Control segments are minimal frames (60 bytes, 64 with FCS,
//! in IPv4; 74 bytes, the headers alone, in IPv6); only data segments have the benchmark's
//! frame size. Both families are the same conversation ([`frame`](super::frame) writes the
//! IP header).
//!
//! [`BENCH_PORT`]: super::BENCH_PORT

use super::frame::{fold, parse_ip, sum16, IpHeader, ETH_LEN, IPPROTO_TCP};
use super::Family;
use std::net::IpAddr;

/// Ethernet + IP + TCP headers, no options, in `family`.
pub fn headers_len(family: Family) -> usize {
    ETH_LEN + family.ip_header_len() + 20
}
/// Smallest Ethernet frame without FCS: control segments are padded to it.
pub const MIN_FRAME: usize = 60;
/// The longest answer of [`answer`]: an IPv6 segment without data.
pub const REPLY_MAX: usize = 14 + 40 + 20;
/// The window every segment advertises; also the most data a conversation sends.
pub const WINDOW: u16 = 65_535;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// An address in 32 bits: an IPv4 one as it is, an IPv6 one's four 32-bit words XORed
/// (bench/bpf/xvs_bench_xdp.c computes the same).
fn addr_word(addr: IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            o.chunks(4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .fold(0, |x, w| x ^ w)
        }
    }
}

/// A 32-bit mix of (address, port, salt): splitmix64's finaliser.
fn mix(addr: IpAddr, port: u16, salt: u64) -> u32 {
    let mut z = (u64::from(addr_word(addr)) << 16 | u64::from(port)) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// The generator's initial sequence number for a flow.
pub fn client_isn(addr: IpAddr, port: u16) -> u32 {
    mix(addr, port, 0x6765_6e65_7261_746f)
}

/// The responder's initial sequence number for a flow, known to the generator in advance.
pub fn server_isn(addr: IpAddr, port: u16) -> u32 {
    mix(addr, port, 0x7265_7370_6f6e_6465)
}

/// One TCP segment in an Ethernet frame of at least [`MIN_FRAME`] bytes, with correct IP
/// and TCP checksums; `src` and `dst` of one family.
pub struct Segment<'a> {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// IPv4's identification (unused in IPv6).
    pub ip_id: u16,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    fn ip(&self) -> IpHeader {
        IpHeader {
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            src: self.src.0,
            dst: self.dst.0,
            proto: IPPROTO_TCP,
            ident: self.ip_id,
        }
    }

    /// Writes the frame into `f` (which must hold [`Segment::frame_len`] bytes); returns its
    /// length.
    pub fn write(&self, f: &mut [u8]) -> usize {
        let len = self.frame_len();
        let f = &mut f[..len];
        f.fill(0);
        let ip = self.ip();
        let at = ip.len();
        let tcp_len = 20 + self.payload.len();
        ip.write(f, tcp_len);
        let tcp = &mut f[at..at + tcp_len];
        tcp[0..2].copy_from_slice(&self.src.1.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dst.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&self.ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
        tcp[20..].copy_from_slice(self.payload);
        let c = fold(ip.pseudo_sum(tcp_len) + sum16(tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        len
    }

    pub fn frame_len(&self) -> usize {
        (self.ip().len() + 20 + self.payload.len()).max(MIN_FRAME)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.frame_len()];
        self.write(&mut f);
        f
    }
}

/// Data bytes of a data segment in a frame of `wire_len` bytes of `family`: what the headers
/// leave, at least 1.
pub fn data_len(family: Family, wire_len: usize) -> usize {
    wire_len.saturating_sub(headers_len(family)).max(1)
}

/// Data segments per conversation for frames of `wire_len` bytes: `wanted`, fewer if their
/// data would not fit in [`WINDOW`]; at least 1.
pub fn data_segments(family: Family, wire_len: usize, wanted: usize) -> usize {
    wanted.clamp(1, usize::from(WINDOW) / data_len(family, wire_len))
}

/// The client's frames of one conversation, in order: SYN, `data` segments of `wire_len`
/// bytes each (payload [`MAGIC`](super::MAGIC) and the flow number), FIN, last ACK; `src`
/// and `dst` of one family.
pub fn conversation(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    flow: u32,
    wire_len: usize,
    data: usize,
) -> Vec<Vec<u8>> {
    let p = data_len(Family::of(src.0), wire_len);
    let mut payload = vec![0u8; p];
    let mut tag = [0u8; 8];
    tag[..4].copy_from_slice(&super::MAGIC);
    tag[4..].copy_from_slice(&flow.to_be_bytes());
    let n = p.min(tag.len());
    payload[..n].copy_from_slice(&tag[..n]);
    let (c, s) = (client_isn(src.0, src.1), server_isn(src.0, src.1));
    let seg = |i: usize, seq: u32, ack: u32, flags: u8, payload: &[u8]| {
        Segment {
            dst_mac,
            src_mac,
            src,
            dst,
            seq,
            ack,
            flags,
            ip_id: (flow as u16).wrapping_add(i as u16),
            payload,
        }
        .to_vec()
    };
    let end = c.wrapping_add(1).wrapping_add((data * p) as u32);
    let mut frames = Vec::with_capacity(data + 3);
    frames.push(seg(0, c, 0, SYN, &[]));
    for k in 0..data {
        let seq = c.wrapping_add(1).wrapping_add((k * p) as u32);
        frames.push(seg(1 + k, seq, s.wrapping_add(1), ACK | PSH, &payload));
    }
    frames.push(seg(data + 1, end, s.wrapping_add(1), FIN | ACK, &[]));
    frames.push(seg(
        data + 2,
        end.wrapping_add(1),
        s.wrapping_add(2),
        ACK,
        &[],
    ));
    frames
}

/// What the responder made of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not a TCP segment (IPv4 or IPv6) to the benchmark port: ignored.
    Other,
    /// A segment to the port with a wrong IPv4 or TCP checksum: counted apart, not answered.
    BadChecksum,
    /// A benchmark segment with `payload` data bytes; the first `reply` bytes of the reply
    /// buffer hold the answer to send (0: none).
    Segment { payload: usize, reply: usize },
}

/// The responder's logic: checks a received frame and, for a SYN (without ACK) or a FIN,
/// writes the answer (SYN|ACK or FIN|ACK, back to the sender's MAC, in the segment's family)
/// into `reply`, which must hold [`REPLY_MAX`] bytes. Data and ACKs are counted and not
/// answered.
pub fn answer(frame: &[u8], port: u16, reply: &mut [u8]) -> Seen {
    let Some(ip) = parse_ip(frame) else {
        return Seen::Other;
    };
    let tcp = ip.l4;
    if ip.proto != IPPROTO_TCP || tcp.len() < 20 || u16::from_be_bytes([tcp[2], tcp[3]]) != port {
        return Seen::Other;
    }
    let data_off = usize::from(tcp[12] >> 4) * 4;
    if !ip.header_ok
        || fold(super::frame::pseudo_sum(ip.src, ip.dst, IPPROTO_TCP, tcp.len()) + sum16(tcp)) != 0
        || data_off < 20
        || data_off > tcp.len()
    {
        return Seen::BadChecksum;
    }
    let payload = tcp.len() - data_off;
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flags = tcp[13];
    let s = server_isn(ip.src, sport);
    let answer = if flags & (SYN | ACK | RST) == SYN {
        Some((s, seq.wrapping_add(1), SYN | ACK))
    } else if flags & (FIN | RST) == FIN {
        let ack = seq.wrapping_add(payload as u32).wrapping_add(1);
        Some((s.wrapping_add(1), ack, FIN | ACK))
    } else {
        None
    };
    let reply = match answer {
        Some((seq, ack, flags)) => {
            let mut dst_mac = [0u8; 6];
            let mut src_mac = [0u8; 6];
            dst_mac.copy_from_slice(&frame[6..12]);
            src_mac.copy_from_slice(&frame[0..6]);
            Segment {
                dst_mac,
                src_mac,
                src: (ip.dst, port),
                dst: (ip.src, sport),
                seq,
                ack,
                flags,
                ip_id: ip.ident,
                payload: &[],
            }
            .write(reply)
        }
        None => 0,
    };
    Seen::Segment { payload, reply }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use xvs_dataplane::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet, TcpPacket};

    const GEN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const DIR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// The client, the VIP and a real server of one family.
    #[derive(Clone, Copy)]
    struct Net {
        client: (IpAddr, u16),
        vip: (IpAddr, u16),
        real: IpAddr,
        /// Bytes of the headers: the first data byte of a segment.
        headers: usize,
    }

    const V4: Net = Net {
        client: (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)), 1024),
        vip: (IpAddr::V4(Ipv4Addr::new(198, 18, 0, 129)), 9000),
        real: IpAddr::V4(Ipv4Addr::new(198, 19, 0, 10)),
        headers: 54,
    };
    const V6: Net = Net {
        client: (
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x10)),
            1024,
        ),
        vip: (
            IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129)),
            9000,
        ),
        real: IpAddr::V6(Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x10)),
        headers: 74,
    };

    /// The IP payload of `f` through the dataplane's own views (which check the IPv4
    /// header's checksum), with its addresses.
    fn ip_payload(f: &[u8]) -> (IpAddr, IpAddr, u16, &[u8]) {
        let eth = EthernetFrame::new_checked(f).expect("ethernet");
        match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
                assert!(ip.verify_checksum());
                let at = 14 + 20;
                let len = ip.payload().len();
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    ip.ident(),
                    &f[at..at + len],
                )
            }
            0x86dd => {
                let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
                let at = 14 + 40;
                let len = ip.payload().len();
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    0,
                    &f[at..at + len],
                )
            }
            other => panic!("ethertype {other:#x}"),
        }
    }

    /// (seq, ack, flags, payload length) read back through the dataplane's own views, which
    /// also check both checksums.
    fn parse(f: &[u8], src: IpAddr, dst: IpAddr) -> (u32, u32, u8, usize) {
        let (s, d, _, l4) = ip_payload(f);
        assert_eq!((s, d), (src, dst));
        let tcp = TcpPacket::new_checked(l4).expect("tcp");
        assert!(tcp.verify_checksum(src, dst));
        (
            tcp.seq_number(),
            tcp.ack_number(),
            tcp.flags().bits(),
            tcp.payload().len(),
        )
    }

    /// What the real server receives: the client's frame with its destination rewritten to
    /// the real (checksums recomputed, as a NAT would leave them).
    fn dnat(net: Net, f: &[u8]) -> Vec<u8> {
        let (src, _, ident, l4) = ip_payload(f);
        let tcp = TcpPacket::new_checked(l4).unwrap();
        let mut out = vec![0u8; f.len()];
        Segment {
            dst_mac: [2, 0, 0, 0, 0, 9],
            src_mac: DIR_MAC,
            src: (src, tcp.src_port()),
            dst: (net.real, tcp.dst_port()),
            seq: tcp.seq_number(),
            ack: tcp.ack_number(),
            flags: l4[13],
            ip_id: ident,
            payload: tcp.payload(),
        }
        .write(&mut out);
        out
    }

    #[test]
    fn conversation_segments_verify_and_follow_tcp() {
        for (net, family, wire_len) in [(V4, Family::V4, 60), (V6, Family::V6, 80)] {
            let (client, vip) = (net.client, net.vip);
            let data = data_segments(family, wire_len, 8);
            assert_eq!(data, 8);
            let frames = conversation(DIR_MAC, GEN_MAC, client, vip, 7, wire_len, data);
            assert_eq!(frames.len(), data + 3);
            let (c, s) = (
                client_isn(client.0, client.1),
                server_isn(client.0, client.1),
            );
            let seen: Vec<_> = frames.iter().map(|f| parse(f, client.0, vip.0)).collect();
            // Data segments have the frame size, control segments are the headers alone
            // (padded to 60 in IPv4).
            let lens: Vec<usize> = frames.iter().map(Vec::len).collect();
            let control = net.headers.max(MIN_FRAME);
            assert_eq!(lens[0], control);
            assert!(lens[1..=data].iter().all(|l| *l == wire_len), "{lens:?}");
            assert_eq!(lens[data + 1..], [control, control]);
            assert_eq!(seen[0], (c, 0, SYN, 0));
            for (k, d) in seen[1..=data].iter().enumerate() {
                let seq = c.wrapping_add(1 + 6 * k as u32);
                assert_eq!(*d, (seq, s.wrapping_add(1), ACK | PSH, 6));
            }
            let end = c.wrapping_add(1 + 6 * data as u32);
            assert_eq!(seen[data + 1], (end, s.wrapping_add(1), FIN | ACK, 0));
            assert_eq!(
                seen[data + 2],
                (end.wrapping_add(1), s.wrapping_add(2), ACK, 0)
            );
            assert_eq!(&frames[1][net.headers..net.headers + 4], b"XVSB");
            assert_eq!(&frames[0][0..6], &DIR_MAC);
        }
    }

    /// IPv6 segments against etherparse's own TCP checksum over the IPv6 pseudo-header.
    #[test]
    fn ipv6_segments_match_etherparse() {
        use etherparse::{Ethernet2Header, IpNumber, Ipv6Header, TcpHeader};
        let frames = conversation(DIR_MAC, GEN_MAC, V6.client, V6.vip, 3, 1514, 2);
        for f in &frames {
            let (_, rest) = Ethernet2Header::from_slice(f).unwrap();
            let (ip, rest) = Ipv6Header::from_slice(rest).unwrap();
            assert_eq!(ip.next_header, IpNumber::TCP);
            let (tcp, payload) = TcpHeader::from_slice(rest).unwrap();
            assert_eq!(tcp.checksum, tcp.calc_checksum_ipv6(&ip, payload).unwrap());
            assert_eq!(usize::from(ip.payload_length), 20 + payload.len());
        }
        assert_eq!(frames[1].len(), 1514);
    }

    #[test]
    fn big_frames_keep_data_in_the_window() {
        let v4 = V4.client;
        assert_eq!(data_segments(Family::V4, 1514, 8), 8);
        assert_eq!(data_segments(Family::V4, 1514, 100), 65_535 / 1460);
        assert_eq!(data_segments(Family::V4, 60, 0), 1);
        assert_eq!(data_segments(Family::V6, 1514, 100), 65_535 / 1440);
        let frames = conversation(DIR_MAC, GEN_MAC, v4, V4.vip, 1, 1514, 2);
        assert_eq!(frames[1].len(), 1514);
        assert_eq!(parse(&frames[1], v4.0, V4.vip.0).3, 1460);
        assert_eq!(frames[3].len(), 60);
        // Frames too small for data still carry a byte of it.
        let frames = conversation(DIR_MAC, GEN_MAC, V6.client, V6.vip, 1, 60, 1);
        assert_eq!(parse(&frames[1], V6.client.0, V6.vip.0).3, 1);
    }

    #[test]
    fn responder_answers_syn_and_fin_with_the_expected_numbers() {
        for net in [V4, V6] {
            let (client, vip, real) = (net.client, net.vip, net.real);
            let frames = conversation(DIR_MAC, GEN_MAC, client, vip, 7, 60, 2);
            let mut reply = [0u8; REPLY_MAX];
            let (c, s) = (
                client_isn(client.0, client.1),
                server_isn(client.0, client.1),
            );
            let control = 60.max(net.headers);

            let syn = dnat(net, &frames[0]);
            assert_eq!(
                answer(&syn, 9000, &mut reply),
                Seen::Segment {
                    payload: 0,
                    reply: control
                }
            );
            // Back from the real to the client, to the MAC it came from.
            assert_eq!(
                parse(&reply[..control], real, client.0),
                (s, c.wrapping_add(1), SYN | ACK, 0)
            );
            assert_eq!(&reply[0..6], &DIR_MAC);
            let tcp = net.headers - 20;
            assert_eq!(u16::from_be_bytes([reply[tcp], reply[tcp + 1]]), 9000);
            assert_eq!(
                u16::from_be_bytes([reply[tcp + 2], reply[tcp + 3]]),
                client.1
            );
            // The generator's next segment acknowledges exactly that SYN/ACK.
            assert_eq!(parse(&frames[1], client.0, vip.0).1, s.wrapping_add(1));

            // Data: counted, not answered.
            let data = parse(&frames[1], client.0, vip.0).3;
            assert_eq!(
                answer(&dnat(net, &frames[1]), 9000, &mut reply),
                Seen::Segment {
                    payload: data,
                    reply: 0
                }
            );
            // FIN: FIN/ACK acknowledging it; the last ACK acknowledges the FIN/ACK.
            let fin = dnat(net, &frames[3]);
            let fin_seq = parse(&fin, client.0, real).0;
            assert_eq!(
                answer(&fin, 9000, &mut reply),
                Seen::Segment {
                    payload: 0,
                    reply: control
                }
            );
            assert_eq!(
                parse(&reply[..control], real, client.0),
                (s.wrapping_add(1), fin_seq.wrapping_add(1), FIN | ACK, 0)
            );
            let last = parse(&frames[4], client.0, vip.0);
            assert_eq!(
                (last.0, last.1),
                (fin_seq.wrapping_add(1), s.wrapping_add(2))
            );
            assert_eq!(
                answer(&dnat(net, &frames[4]), 9000, &mut reply),
                Seen::Segment {
                    payload: 0,
                    reply: 0
                }
            );
        }
    }

    #[test]
    fn responder_ignores_others_and_flags_bad_checksums() {
        for net in [V4, V6] {
            let (client, vip) = (net.client, net.vip);
            let frames = conversation(DIR_MAC, GEN_MAC, client, vip, 7, 80, 1);
            let mut reply = [0u8; REPLY_MAX];
            assert_eq!(answer(&frames[0], 9001, &mut reply), Seen::Other);
            assert_eq!(
                answer(&frames[0][..net.headers - 14], 9000, &mut reply),
                Seen::Other
            );
            let udp = super::super::gen::build_frame(GEN_MAC, DIR_MAC, client, vip, 1, 80);
            assert_eq!(answer(&udp, 9000, &mut reply), Seen::Other);
            let mut bad = frames[1].clone();
            bad[net.headers + 2] ^= 0x40;
            assert_eq!(answer(&bad, 9000, &mut reply), Seen::BadChecksum);
            // RST: counted, never answered.
            let rst = Segment {
                dst_mac: DIR_MAC,
                src_mac: GEN_MAC,
                src: client,
                dst: vip,
                seq: 1,
                ack: 0,
                flags: RST | SYN,
                ip_id: 0,
                payload: &[],
            }
            .to_vec();
            assert_eq!(
                answer(&rst, 9000, &mut reply),
                Seen::Segment {
                    payload: 0,
                    reply: 0
                }
            );
        }
        // A NAT that rewrote the address without fixing the TCP checksum (IPv4's header
        // checksum fixed, so that only TCP's is wrong).
        let mut bad = conversation(DIR_MAC, GEN_MAC, V4.client, V4.vip, 7, 60, 1)[0].clone();
        bad[33] = 10;
        bad[24..26].copy_from_slice(&[0, 0]);
        let c = fold(sum16(&bad[14..34]));
        bad[24..26].copy_from_slice(&c.to_be_bytes());
        let mut reply = [0u8; REPLY_MAX];
        assert_eq!(answer(&bad, 9000, &mut reply), Seen::BadChecksum);
        let mut bad = conversation(DIR_MAC, GEN_MAC, V6.client, V6.vip, 7, 60, 1)[0].clone();
        bad[14 + 39] = 0x10; // the last byte of the destination: IPv6 has no header checksum
        assert_eq!(answer(&bad, 9000, &mut reply), Seen::BadChecksum);
    }

    #[test]
    fn isns_differ_per_flow_and_side() {
        let a: (IpAddr, u16) = (Ipv4Addr::new(198, 18, 0, 10).into(), 1024);
        let b: (IpAddr, u16) = (Ipv4Addr::new(198, 18, 0, 11).into(), 1024);
        assert_ne!(client_isn(a.0, a.1), client_isn(b.0, b.1));
        assert_ne!(client_isn(a.0, a.1), server_isn(a.0, a.1));
        assert_ne!(server_isn(a.0, 1024), server_isn(a.0, 1025));
        assert_eq!(server_isn(a.0, a.1), server_isn(a.0, a.1));
        let c: (IpAddr, u16) = ("2001:2::10".parse().unwrap(), 1024);
        let d: (IpAddr, u16) = ("2001:2::11".parse().unwrap(), 1024);
        assert_ne!(client_isn(c.0, c.1), client_isn(d.0, d.1));
        // The IPv6 fold: the XOR of the address's 32-bit words (as the XDP sink computes).
        assert_eq!(addr_word(c.0), 0x2001_0002 ^ 0x10);
    }
}
