//! `agent sink`: counts the benchmark's UDP packets arriving at one real server.
//!
//! One socket bound to `0.0.0.0:PORT` (`[::]:PORT` with `--family 6`) with a 32 MiB buffer,
//! drained with recvmmsg. Only
//! payloads that start with [`MAGIC`](super::MAGIC) count (and arrive at all only if their
//! UDP checksum was right: the kernel drops the others). The report also carries the
//! interface's received-packets counter and the UDP receive-buffer overflows of the
//! namespace over the same time, so that a sink too slow to keep up shows as such
//! instead of as loss in the director.

use super::sys::{udp_socket, Batch};
use super::{Family, Proto};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = super::BENCH_PORT)]
    pub port: u16,
    /// Upper limit in seconds (normally stopped earlier by SIGTERM).
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Created once the socket is bound.
    #[arg(long)]
    pub ready: Option<PathBuf>,
    #[arg(long, value_parser = super::parse_cores, default_value = "")]
    pub cores: ::std::vec::Vec<usize>,
    /// Interface whose rx counter is reported.
    #[arg(long, default_value = "eth0")]
    pub iface: String,
    /// `xdpsink`: count only datagrams from `--src-count` addresses from this one (the
    /// generator's, counted in its last 32 bits; its family is the one counted); others, such
    /// as latency probes, pass.
    #[arg(long)]
    pub src_base: Option<IpAddr>,
    #[arg(long, default_value_t = 64)]
    pub src_count: u32,
    /// `xdpsink`: count UDP datagrams, or answer TCP conversations as `agent responder` does
    /// (SYN|ACK, FIN|ACK back through the director) and count their segments.
    #[arg(long, value_enum, default_value_t = Proto::Udp)]
    pub proto: Proto,
    /// The family of the socket (`sink`, `echo`) or of the frames read (`responder`).
    #[arg(long, value_enum, default_value_t = Family::V4)]
    pub family: Family,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SinkReport {
    /// Benchmark packets received by the socket.
    pub received: u64,
    pub bytes: u64,
    /// Packets the interface received meanwhile (anything, ARP included).
    pub if_rx: u64,
    /// UDP datagrams the namespace dropped for a full receive buffer meanwhile (the TCP
    /// responder: frames its packet socket dropped).
    pub rcvbuf_errors: u64,
    /// TCP responder only: SYN/ACKs and FIN/ACKs sent.
    #[serde(default)]
    pub replies: u64,
    /// TCP responder only: segments to the port with a wrong checksum (not in `received`).
    #[serde(default)]
    pub bad_checksum: u64,
}

/// The interface's rx_packets counter (0 if unreadable).
pub fn if_rx_packets(iface: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/rx_packets"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The namespace's UDP receive-buffer overflows of `family`: `Udp: ... RcvbufErrors` of
/// /proc/net/snmp, or `Udp6RcvbufErrors` of /proc/net/snmp6 (0 if unreadable).
pub fn udp_rcvbuf_errors(family: Family) -> u64 {
    match family {
        Family::V4 => std::fs::read_to_string("/proc/net/snmp")
            .map(|t| snmp_udp_rcvbuf_errors(&t))
            .unwrap_or(0),
        Family::V6 => std::fs::read_to_string("/proc/net/snmp6")
            .map(|t| snmp6_counter(&t, "Udp6RcvbufErrors"))
            .unwrap_or(0),
    }
}

/// A counter of /proc/net/snmp6 (lines `Name value`); 0 if absent.
fn snmp6_counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(name)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

/// `RcvbufErrors` of the `Udp:` lines (names, then values) of /proc/net/snmp; 0 if absent.
fn snmp_udp_rcvbuf_errors(text: &str) -> u64 {
    let mut udp = text.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(a: &Args) -> Result<SinkReport> {
    super::pin(&a.cores, 0);
    let stop = super::stop_flag()?;
    let sock = udp_socket(SocketAddr::new(a.family.unspecified(), a.port), 50)
        .with_context(|| format!("binding UDP port {}", a.port))?;
    let (rx0, err0) = (if_rx_packets(&a.iface), udp_rcvbuf_errors(a.family));
    super::mark_ready(a.ready.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let mut batch = Batch::new(64, 2048);
    let mut r = SinkReport::default();
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let n = batch.recv(sock.as_raw_fd())?;
        for i in 0..n {
            let (data, _) = batch.received(i);
            if data.starts_with(&super::MAGIC) {
                r.received += 1;
                r.bytes += data.len() as u64;
            }
        }
    }
    r.if_rx = if_rx_packets(&a.iface).saturating_sub(rx0);
    r.rcvbuf_errors = udp_rcvbuf_errors(a.family).saturating_sub(err0);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcvbuf_errors_of_both_families_are_read() {
        let snmp = "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n\
                    Udp: 10 0 3 7 3 0\n";
        assert_eq!(snmp_udp_rcvbuf_errors(snmp), 3);
        assert_eq!(snmp_udp_rcvbuf_errors(""), 0);
        let snmp6 = "Udp6InErrors                    \t5\nUdp6RcvbufErrors                \t4\n";
        assert_eq!(snmp6_counter(snmp6, "Udp6RcvbufErrors"), 4);
        assert_eq!(snmp6_counter(snmp6, "Udp6SndbufErrors"), 0);
    }
}
