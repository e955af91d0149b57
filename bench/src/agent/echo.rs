//! `agent echo`: the UDP echo responder of the latency runs, one per real server.
//!
//! Every datagram that starts with [`MAGIC`](super::MAGIC) goes back, unchanged, to its
//! sender, in batches (recvmmsg, then sendmmsg of the same buffers).

use super::sys::{udp_socket, Batch};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub use super::sink::Args;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EchoReport {
    pub received: u64,
    pub echoed: u64,
}

pub fn run(a: &Args) -> Result<EchoReport> {
    super::pin(&a.cores, 0);
    let stop = super::stop_flag()?;
    let sock = udp_socket(SocketAddr::new(a.family.unspecified(), a.port), 50)
        .with_context(|| format!("binding UDP port {}", a.port))?;
    super::mark_ready(a.ready.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut batch = Batch::new(64, 2048);
    let mut r = EchoReport::default();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = batch.recv(sock.as_raw_fd())?;
        // Compact the answers to the front: message k of the send is received message i.
        let mut k = 0;
        for i in 0..n {
            let (data, from) = batch.received(i);
            if !data.starts_with(&super::MAGIC) {
                continue;
            }
            let len = data.len();
            if k != i {
                let copy = data.to_vec();
                batch.buf_mut(k)[..len].copy_from_slice(&copy);
            }
            batch.set_send(k, len, from);
            k += 1;
        }
        r.received += n as u64;
        if k > 0 {
            r.echoed += batch.send(sock.as_raw_fd(), k).unwrap_or(0) as u64;
        }
    }
    Ok(r)
}
