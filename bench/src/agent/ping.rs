//! `agent ping`: the open-loop latency client, run in the client namespace.
//!
//! Request `i` is due at `start + i / rate`, whatever happened to earlier ones (open loop:
//! a slow answer never delays the next request). Its latency is measured from that
//! *scheduled* time to the arrival of the echo, so a sender that falls behind (a stall of
//! the machine) shows up as latency instead of vanishing: no coordinated omission. Requests
//! carry [`MAGIC`](super::MAGIC) and their sequence number; a receiver thread matches echoes
//! by it (duplicates ignored), records into an HdrHistogram (nanoseconds, 3 significant
//! digits), and counts as lost whatever has not come back `--drain` seconds after the last
//! request. Requests rotate over `--sockets` sockets (flows, each its own source port) so a
//! load balancer spreads them over its real servers; socket `k` sends to `dst[k % len]`.

use super::sys::udp_socket;
use super::{ensure_family, Family};
use anyhow::{ensure, Context, Result};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Source address to bind (IPv4 or IPv6: the requests' family).
    #[arg(long)]
    pub src: IpAddr,
    /// Destinations (comma list, of `--src`'s family): the VIP, or the real servers themselves.
    #[arg(long, value_delimiter = ',', required = true)]
    pub dst: Vec<IpAddr>,
    #[arg(long, default_value_t = super::BENCH_PORT)]
    pub port: u16,
    /// Requests per second.
    #[arg(long)]
    pub rate: f64,
    /// Seconds of requests.
    #[arg(long)]
    pub duration: f64,
    /// Seconds to wait for late answers after the last request.
    #[arg(long, default_value_t = 1.0)]
    pub drain: f64,
    #[arg(long, default_value_t = 16)]
    pub sockets: usize,
    /// UDP payload bytes (at least 12: magic + sequence number).
    #[arg(long, default_value_t = 18)]
    pub payload: usize,
    /// Sender on cores[0], receiver on cores[1 % len].
    #[arg(long, value_parser = super::parse_cores, default_value = "")]
    pub cores: ::std::vec::Vec<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingReport {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub rate: f64,
    /// Worst delay of a send behind its schedule, microseconds (part of the latencies).
    pub send_lag_max_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
    /// The histogram: (value in ns, count) for every recorded value.
    pub hist: Vec<(u64, u64)>,
}

/// A histogram for latencies in nanoseconds: 1 ns .. 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Rebuilds a histogram from [`PingReport::hist`].
pub fn histogram_from(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &(v, c) in pairs {
        h.saturating_record_n(v, c);
    }
    h
}

/// (value, count) of every recorded value.
pub fn histogram_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

pub fn run(a: &Args) -> Result<PingReport> {
    ensure!(
        a.rate > 0.0 && a.duration > 0.0,
        "--rate and --duration must be positive"
    );
    ensure!(
        a.payload >= 12 && a.payload <= 1472,
        "--payload must be 12..=1472"
    );
    ensure!(a.sockets >= 1, "--sockets must be >= 1");
    ensure_family(Family::of(a.src), "--dst", &a.dst)?;
    let total = (a.rate * a.duration).round() as u64;
    ensure!(total <= 100_000_000, "too many requests");
    let socks: Vec<UdpSocket> = (0..a.sockets)
        .map(|_| udp_socket(SocketAddr::new(a.src, 0), 50))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("binding UDP sockets on {}", a.src))?;
    let recv_socks: Vec<UdpSocket> = socks
        .iter()
        .map(|s| s.try_clone())
        .collect::<std::io::Result<_>>()?;
    let period = 1.0 / a.rate;
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + Duration::from_millis(20);
    let receiver = {
        let done = Arc::clone(&done);
        let cores = a.cores.clone();
        std::thread::spawn(move || receive(recv_socks, start, period, total, &done, &cores))
    };
    super::pin(&a.cores, 0);
    let mut buf = vec![0u8; a.payload];
    buf[..4].copy_from_slice(&super::MAGIC);
    let dests: Vec<SocketAddr> = (0..a.sockets)
        .map(|k| SocketAddr::new(a.dst[k % a.dst.len()], a.port))
        .collect();
    let (mut sent, mut lag_max) = (0u64, Duration::ZERO);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 * period);
        loop {
            let now = Instant::now();
            if now >= due {
                lag_max = lag_max.max(now - due);
                break;
            }
            let wait = due - now;
            if wait > Duration::from_micros(200) {
                std::thread::sleep(wait - Duration::from_micros(100));
            } else {
                std::hint::spin_loop();
            }
        }
        buf[4..12].copy_from_slice(&i.to_be_bytes());
        let k = (i % a.sockets as u64) as usize;
        if socks[k].send_to(&buf, dests[k]).is_ok() {
            sent += 1;
        }
    }
    std::thread::sleep(Duration::from_secs_f64(a.drain));
    done.store(true, Ordering::Relaxed);
    let h = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?;
    let received = h.len();
    Ok(PingReport {
        sent,
        received,
        lost: sent.saturating_sub(received),
        rate: a.rate,
        send_lag_max_us: lag_max.as_secs_f64() * 1e6,
        p50_us: us(h.value_at_quantile(0.5)),
        p90_us: us(h.value_at_quantile(0.9)),
        p99_us: us(h.value_at_quantile(0.99)),
        p999_us: us(h.value_at_quantile(0.999)),
        max_us: us(h.max()),
        mean_us: h.mean() / 1000.0,
        hist: histogram_pairs(&h),
    })
}

fn receive(
    socks: Vec<UdpSocket>,
    start: Instant,
    period: f64,
    total: u64,
    done: &AtomicBool,
    cores: &[usize],
) -> Histogram<u64> {
    super::pin(cores, 1);
    let mut h = new_histogram();
    let mut seen = vec![false; total as usize];
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = [0u8; 2048];
    while !done.load(Ordering::Relaxed) {
        // SAFETY: `fds` is a live array of pollfd of the length we pass.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
        if n <= 0 {
            continue;
        }
        for (pfd, s) in fds.iter_mut().zip(&socks) {
            if pfd.revents & libc::POLLIN == 0 {
                continue;
            }
            // Drain what is queued without blocking.
            while let Ok(len) = recv_nonblocking(s, &mut buf) {
                let now = Instant::now();
                if len < 12 || buf[..4] != super::MAGIC {
                    continue;
                }
                let seq = u64::from_be_bytes(buf[4..12].try_into().expect("8 bytes"));
                if seq >= total || std::mem::replace(&mut seen[seq as usize], true) {
                    continue;
                }
                let due = start + Duration::from_secs_f64(seq as f64 * period);
                let ns = now.saturating_duration_since(due).as_nanos() as u64;
                h.saturating_record(ns.max(1));
            }
        }
    }
    h
}

fn recv_nonblocking(s: &UdpSocket, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a live, writable buffer of the length we pass.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn histogram_round_trips_through_pairs() {
        let mut h = new_histogram();
        for v in [1_000u64, 2_000, 2_000, 5_000_000] {
            h.record(v).unwrap();
        }
        let back = histogram_from(&histogram_pairs(&h));
        assert_eq!(back.len(), 4);
        assert_eq!(back.max(), h.max());
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }

    /// The agent end to end on loopback (IPv4, then IPv6 where the machine has it) against
    /// an in-process echo: every request answered.
    #[test]
    fn ping_against_loopback_echo() {
        for lo in [
            IpAddr::from(Ipv4Addr::LOCALHOST),
            Ipv6Addr::LOCALHOST.into(),
        ] {
            let Ok(echo) = UdpSocket::bind(SocketAddr::new(lo, 0)) else {
                assert!(lo.is_ipv6(), "no IPv4 loopback");
                eprintln!("skipping {lo}: no IPv6 loopback here");
                continue;
            };
            let port = echo.local_addr().unwrap().port();
            echo.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let t = {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut b = [0u8; 2048];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((n, from)) = echo.recv_from(&mut b) {
                            let _ = echo.send_to(&b[..n], from);
                        }
                    }
                })
            };
            let r = run(&Args {
                src: lo,
                dst: vec![lo],
                port,
                rate: 2000.0,
                duration: 0.25,
                drain: 0.2,
                sockets: 4,
                payload: 18,
                cores: vec![],
            })
            .unwrap();
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
            assert_eq!(r.sent, 500);
            assert_eq!(r.received, 500, "{lo}: {r:?}");
            assert!(r.p50_us > 0.0 && r.p50_us <= r.max_us);
            assert_eq!(histogram_from(&r.hist).len(), 500);
        }
    }
}
