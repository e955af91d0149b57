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
//! options: 20-byte TCP headers. Control segments are minimal frames (60 bytes, 64 with FCS);
//! only data segments have the benchmark's frame size.
//!
//! [`BENCH_PORT`]: super::BENCH_PORT

use super::gen::{fold, sum16};
use std::net::Ipv4Addr;

/// Ethernet + IPv4 + TCP headers, no options.
pub const HEADERS_LEN: usize = 14 + 20 + 20;
/// Smallest Ethernet frame without FCS: control segments are padded to it.
pub const MIN_FRAME: usize = 60;
/// The window every segment advertises; also the most data a conversation sends.
pub const WINDOW: u16 = 65_535;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// A 32-bit mix of (address, port, salt): splitmix64's finaliser.
fn mix(addr: Ipv4Addr, port: u16, salt: u64) -> u32 {
    let mut z = (u64::from(u32::from(addr)) << 16 | u64::from(port)) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// The generator's initial sequence number for a flow.
pub fn client_isn(addr: Ipv4Addr, port: u16) -> u32 {
    mix(addr, port, 0x6765_6e65_7261_746f)
}

/// The responder's initial sequence number for a flow, known to the generator in advance.
pub fn server_isn(addr: Ipv4Addr, port: u16) -> u32 {
    mix(addr, port, 0x7265_7370_6f6e_6465)
}

/// One TCP segment in an Ethernet frame of at least [`MIN_FRAME`] bytes, with correct IPv4
/// and TCP checksums.
pub struct Segment<'a> {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub ip_id: u16,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Writes the frame into `f` (which must hold [`Segment::frame_len`] bytes); returns its
    /// length.
    pub fn write(&self, f: &mut [u8]) -> usize {
        let len = self.frame_len();
        let f = &mut f[..len];
        f.fill(0);
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let tcp_len = 20 + self.payload.len();
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&self.ip_id.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&self.src.0.octets());
        ip[16..20].copy_from_slice(&self.dst.0.octets());
        let c = fold(sum16(ip));
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let tcp = &mut f[34..34 + tcp_len];
        tcp[0..2].copy_from_slice(&self.src.1.to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dst.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&self.ack.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&WINDOW.to_be_bytes());
        tcp[20..].copy_from_slice(self.payload);
        let c = fold(pseudo_sum(self.src.0, self.dst.0, tcp_len) + sum16(tcp));
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        len
    }

    pub fn frame_len(&self) -> usize {
        (HEADERS_LEN + self.payload.len()).max(MIN_FRAME)
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut f = vec![0u8; self.frame_len()];
        self.write(&mut f);
        f
    }
}

/// The TCP pseudo-header's sum (RFC 793): addresses, protocol, segment length.
fn pseudo_sum(src: Ipv4Addr, dst: Ipv4Addr, tcp_len: usize) -> u32 {
    sum16(&src.octets()) + sum16(&dst.octets()) + 6 + tcp_len as u32
}

/// Data segments per conversation for frames of `wire_len` bytes: `wanted`, fewer if their
/// data would not fit in [`WINDOW`]; at least 1.
pub fn data_segments(wire_len: usize, wanted: usize) -> usize {
    let payload = wire_len.saturating_sub(HEADERS_LEN).max(1);
    wanted.clamp(1, usize::from(WINDOW) / payload)
}

/// The client's frames of one conversation, in order: SYN, `data` segments of `wire_len`
/// bytes each (payload [`MAGIC`](super::MAGIC) and the flow number), FIN, last ACK.
pub fn conversation(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flow: u32,
    wire_len: usize,
    data: usize,
) -> Vec<Vec<u8>> {
    let p = wire_len.saturating_sub(HEADERS_LEN).max(1);
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
    /// Not an IPv4 TCP segment to the benchmark port: ignored.
    Other,
    /// A segment to the port with a wrong IPv4 or TCP checksum: counted apart, not answered.
    BadChecksum,
    /// A benchmark segment with `payload` data bytes; the first `reply` bytes of the reply
    /// buffer hold the answer to send (0: none).
    Segment { payload: usize, reply: usize },
}

/// The responder's logic: checks a received frame and, for a SYN (without ACK) or a FIN,
/// writes the answer (SYN|ACK or FIN|ACK, back to the sender's MAC) into `reply`, which must
/// hold [`MIN_FRAME`] bytes. Data and ACKs are counted and not answered.
pub fn answer(frame: &[u8], port: u16, reply: &mut [u8]) -> Seen {
    if frame.len() < HEADERS_LEN || frame[12..14] != [0x08, 0x00] || frame[14] != 0x45 {
        return Seen::Other;
    }
    let ip = &frame[14..];
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[9] != 6 || total < 40 || total > ip.len() {
        return Seen::Other;
    }
    let tcp = &ip[20..total];
    if u16::from_be_bytes([tcp[2], tcp[3]]) != port {
        return Seen::Other;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let data_off = usize::from(tcp[12] >> 4) * 4;
    if fold(sum16(&ip[..20])) != 0
        || fold(pseudo_sum(src, dst, tcp.len()) + sum16(tcp)) != 0
        || data_off < 20
        || data_off > tcp.len()
    {
        return Seen::BadChecksum;
    }
    let payload = tcp.len() - data_off;
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let flags = tcp[13];
    let s = server_isn(src, sport);
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
                src: (dst, port),
                dst: (src, sport),
                seq,
                ack,
                flags,
                ip_id: u16::from_be_bytes([ip[4], ip[5]]),
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
    use xvs_dataplane::wire::{EthernetFrame, Ipv4Packet, TcpPacket};

    const CLIENT: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 10), 1024);
    const VIP: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 18, 0, 129), 9000);
    const REAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
    const GEN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const DIR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// (seq, ack, flags, payload length) read back through the dataplane's own views, which
    /// also check both checksums.
    fn parse(f: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> (u32, u32, u8, usize) {
        let eth = EthernetFrame::new_checked(f).expect("ethernet");
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
        assert_eq!((ip.src_addr(), ip.dst_addr()), (src, dst));
        let tcp = TcpPacket::new_checked(ip.payload()).expect("tcp");
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
    fn dnat(f: &[u8]) -> Vec<u8> {
        let eth = EthernetFrame::new_checked(f).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        let mut out = vec![0u8; f.len()];
        Segment {
            dst_mac: [2, 0, 0, 0, 0, 9],
            src_mac: DIR_MAC,
            src: (ip.src_addr(), tcp.src_port()),
            dst: (REAL, tcp.dst_port()),
            seq: tcp.seq_number(),
            ack: tcp.ack_number(),
            flags: f[14 + 20 + 13],
            ip_id: ip.ident(),
            payload: tcp.payload(),
        }
        .write(&mut out);
        out
    }

    #[test]
    fn conversation_segments_verify_and_follow_tcp() {
        let data = data_segments(60, 8);
        assert_eq!(data, 8);
        let frames = conversation(DIR_MAC, GEN_MAC, CLIENT, VIP, 7, 60, data);
        assert_eq!(frames.len(), data + 3);
        let (c, s) = (
            client_isn(CLIENT.0, CLIENT.1),
            server_isn(CLIENT.0, CLIENT.1),
        );
        let seen: Vec<_> = frames.iter().map(|f| parse(f, CLIENT.0, VIP.0)).collect();
        assert!(frames.iter().all(|f| f.len() == 60));
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
        assert_eq!(&frames[1][54..58], b"XVSB");
        assert_eq!(&frames[0][0..6], &DIR_MAC);
    }

    #[test]
    fn big_frames_keep_data_in_the_window() {
        assert_eq!(data_segments(1514, 8), 8);
        assert_eq!(data_segments(1514, 100), 65_535 / 1460);
        assert_eq!(data_segments(60, 0), 1);
        let frames = conversation(DIR_MAC, GEN_MAC, CLIENT, VIP, 1, 1514, 2);
        assert_eq!(frames[1].len(), 1514);
        assert_eq!(parse(&frames[1], CLIENT.0, VIP.0).3, 1460);
        assert_eq!(frames[3].len(), 60);
    }

    #[test]
    fn responder_answers_syn_and_fin_with_the_expected_numbers() {
        let frames = conversation(DIR_MAC, GEN_MAC, CLIENT, VIP, 7, 60, 2);
        let mut reply = [0u8; MIN_FRAME];
        let (c, s) = (
            client_isn(CLIENT.0, CLIENT.1),
            server_isn(CLIENT.0, CLIENT.1),
        );

        let syn = dnat(&frames[0]);
        assert_eq!(
            answer(&syn, 9000, &mut reply),
            Seen::Segment {
                payload: 0,
                reply: 60
            }
        );
        // Back from the real to the client, to the MAC it came from.
        assert_eq!(
            parse(&reply, REAL, CLIENT.0),
            (s, c.wrapping_add(1), SYN | ACK, 0)
        );
        assert_eq!(&reply[0..6], &DIR_MAC);
        assert_eq!(u16::from_be_bytes([reply[34], reply[35]]), 9000);
        assert_eq!(u16::from_be_bytes([reply[36], reply[37]]), CLIENT.1);
        // The generator's next segment acknowledges exactly that SYN/ACK.
        assert_eq!(parse(&frames[1], CLIENT.0, VIP.0).1, s.wrapping_add(1));

        // Data: counted, not answered.
        assert_eq!(
            answer(&dnat(&frames[1]), 9000, &mut reply),
            Seen::Segment {
                payload: 6,
                reply: 0
            }
        );
        // FIN: FIN/ACK acknowledging it; the last ACK acknowledges the FIN/ACK.
        let fin = dnat(&frames[3]);
        let fin_seq = parse(&fin, CLIENT.0, REAL).0;
        assert_eq!(
            answer(&fin, 9000, &mut reply),
            Seen::Segment {
                payload: 0,
                reply: 60
            }
        );
        assert_eq!(
            parse(&reply, REAL, CLIENT.0),
            (s.wrapping_add(1), fin_seq.wrapping_add(1), FIN | ACK, 0)
        );
        let last = parse(&frames[4], CLIENT.0, VIP.0);
        assert_eq!(
            (last.0, last.1),
            (fin_seq.wrapping_add(1), s.wrapping_add(2))
        );
        assert_eq!(
            answer(&dnat(&frames[4]), 9000, &mut reply),
            Seen::Segment {
                payload: 0,
                reply: 0
            }
        );
    }

    #[test]
    fn responder_ignores_others_and_flags_bad_checksums() {
        let frames = conversation(DIR_MAC, GEN_MAC, CLIENT, VIP, 7, 60, 1);
        let mut reply = [0u8; MIN_FRAME];
        assert_eq!(answer(&frames[0], 9001, &mut reply), Seen::Other);
        assert_eq!(answer(&frames[0][..40], 9000, &mut reply), Seen::Other);
        let udp = super::super::gen::build_frame(GEN_MAC, DIR_MAC, CLIENT, VIP, 1, 60);
        assert_eq!(answer(&udp, 9000, &mut reply), Seen::Other);
        let mut bad = frames[1].clone();
        bad[56] ^= 0x40;
        assert_eq!(answer(&bad, 9000, &mut reply), Seen::BadChecksum);
        // A NAT that rewrote the address without fixing the checksum.
        let mut bad = frames[0].clone();
        bad[33] = 10;
        bad[24..26].copy_from_slice(&[0, 0]);
        let c = fold(sum16(&bad[14..34]));
        bad[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(answer(&bad, 9000, &mut reply), Seen::BadChecksum);
        // RST: counted, never answered.
        let mut rst = [0u8; 60];
        Segment {
            dst_mac: DIR_MAC,
            src_mac: GEN_MAC,
            src: CLIENT,
            dst: VIP,
            seq: 1,
            ack: 0,
            flags: RST | SYN,
            ip_id: 0,
            payload: &[],
        }
        .write(&mut rst);
        assert_eq!(
            answer(&rst, 9000, &mut reply),
            Seen::Segment {
                payload: 0,
                reply: 0
            }
        );
    }

    #[test]
    fn isns_differ_per_flow_and_side() {
        let a = (Ipv4Addr::new(198, 18, 0, 10), 1024);
        let b = (Ipv4Addr::new(198, 18, 0, 11), 1024);
        assert_ne!(client_isn(a.0, a.1), client_isn(b.0, b.1));
        assert_ne!(client_isn(a.0, a.1), server_isn(a.0, a.1));
        assert_ne!(server_isn(a.0, 1024), server_isn(a.0, 1025));
        assert_eq!(server_isn(a.0, a.1), server_isn(a.0, a.1));
    }
}
