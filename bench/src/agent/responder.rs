//! `agent responder`: the server side of the TCP throughput runs, one per real server.
//!
//! It reads the frames of `--family` of its interface through an AF_PACKET socket (before the
//! namespace's IP stack, whose input the rig makes drop the benchmark port, so that the kernel
//! sends no RST), counts every segment to the port with correct IP and TCP checksums, and answers
//! SYNs and FINs as [`tcp::answer`] says, in batches (recvmmsg, then sendmmsg of the answers).
//! Its report is a [`SinkReport`]: `received` = segments, `bytes` = their data,
//! `rcvbuf_errors` = frames the socket dropped for a full buffer, plus `replies` and
//! `bad_checksum`.

use super::sink::{if_rx_packets, SinkReport};
use super::sys::{Batch, PacketSocket};
use super::tcp::{self, Seen};
use anyhow::{Context, Result};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use super::sink::Args;

pub fn run(a: &Args) -> Result<SinkReport> {
    super::pin(&a.cores, 0);
    let stop = super::stop_flag()?;
    let mut sock = PacketSocket::bind(&a.iface, a.family.ethertype(), 50)
        .with_context(|| format!("packet socket on {}", a.iface))?;
    let rx0 = if_rx_packets(&a.iface);
    let drops0 = sock.drops();
    super::mark_ready(a.ready.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut rx = Batch::frames(64, 2048);
    let mut tx = Batch::frames(64, tcp::REPLY_MAX);
    let mut lens = Vec::with_capacity(64);
    let mut r = SinkReport::default();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = rx.recv(sock.fd())?;
        lens.clear();
        for i in 0..n {
            let k = lens.len();
            match tcp::answer(rx.frame(i), a.port, tx.buf_mut(k)) {
                Seen::Other => {}
                Seen::BadChecksum => r.bad_checksum += 1,
                Seen::Segment { payload, reply } => {
                    r.received += 1;
                    r.bytes += payload as u64;
                    if reply > 0 {
                        lens.push(reply);
                    }
                }
            }
        }
        if !lens.is_empty() {
            r.replies += tx.send_frames(sock.fd(), &lens).unwrap_or(0) as u64;
        }
    }
    r.if_rx = if_rx_packets(&a.iface).saturating_sub(rx0);
    r.rcvbuf_errors = sock.drops().saturating_sub(drops0);
    Ok(r)
}
