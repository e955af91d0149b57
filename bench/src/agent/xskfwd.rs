//! `agent xskfwd`: the ceiling of xvs's mechanism. It forwards with what xvsd forwards with
//! (xvs's XDP program on both interfaces, one UMEM shared by one AF_XDP socket per queue of
//! each, the same ring sizes and batch, the same loop shape: reclaim, refill, receive,
//! transmit, one kick per port and batch, sleep in `ppoll` when idle, the workers' default
//! realtime priority and their pause every 128 frames) but does no NAT, no connection
//! tracking and no scheduling: frames to a real server's `ADDR:PORT` arriving on the external interface get the real's MAC and the
//! internal interface's and leave on the internal interface; frames from a real server's
//! `ADDR:PORT` arriving on the internal interface get the client's MAC (`--client-mac`) and
//! leave on the external one, as `xdpsock l2fwd` forwards. The generator addresses the real
//! servers themselves, as for the `direct` target. xvs's throughput over this one is the
//! share the load balancer's own work leaves.
//!
//! IPv4 only (it reads IPv4 destinations): the rig refuses the target with `--family 6`.
//!
//! One forwarding thread per queue pair (queue `i` of both interfaces), pinned to
//! `--cores[i]`. Runs until SIGTERM/SIGINT or `--duration`, then reports what it forwarded.

use super::gen::parse_mac;
use super::sys::ifindex;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_dataplane::process::Side;
use xvs_dataplane::worker::WorkerOptions;
use xvs_dataplane::xsk::{
    rx_queue_count, EndpointKey, Frame, FrameMemory, Poller, Port, PortOptions, Role, XdpMode,
    XdpProgram,
};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "ext0")]
    pub external: String,
    #[arg(long, default_value = "int0")]
    pub internal: String,
    /// The real servers the generator addresses (comma list).
    #[arg(long, value_delimiter = ',', required = true)]
    pub reals: Vec<Ipv4Addr>,
    #[arg(long, default_value_t = super::BENCH_PORT)]
    pub port: u16,
    /// Where frames from the real servers go (the client namespace's interface).
    #[arg(long, value_parser = parse_mac_arg)]
    pub client_mac: [u8; 6],
    /// Cores of the forwarding threads (thread `i` on `cores[i % len]`).
    #[arg(long, value_parser = super::parse_cores, default_value = "")]
    pub cores: ::std::vec::Vec<usize>,
    /// SCHED_FIFO priority of the forwarding threads, 0 for normal (xvsd's default is 1).
    #[arg(long, default_value_t = 1)]
    pub priority: u8,
    #[arg(long, default_value_t = 1024)]
    pub ring_size: u32,
    /// Upper limit in seconds (normally stopped earlier by SIGTERM).
    #[arg(long, default_value_t = 600.0)]
    pub duration: f64,
    /// Created once every socket is bound.
    #[arg(long)]
    pub ready: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct XskFwdReport {
    pub received: u64,
    pub forwarded: u64,
    /// Frames to an address that is not a real server's, or with no MAC for it.
    pub unknown: u64,
}

/// Frames every forwarding thread gets: enough to keep both of its ports' rings full twice
/// over, as xvsd sizes its workers' home ranges.
fn frames_per_thread(ring_size: u32) -> u32 {
    2 * 2 * ring_size
}

pub fn run(args: &Args) -> Result<XskFwdReport> {
    let stop = super::stop_flag()?;
    let queues = rx_queue_count(&args.external)?.min(rx_queue_count(&args.internal)?);
    let macs = real_macs(&args.internal, &args.reals)?;
    let int_mac = interface_mac(&args.internal)?;
    let ext_mac = interface_mac(&args.external)?;
    let mut ext = XdpProgram::attach(
        ifindex(&args.external)?,
        Role::MatchDestination,
        XdpMode::Auto,
        None,
    )?;
    let mut int = XdpProgram::attach(
        ifindex(&args.internal)?,
        Role::MatchSource,
        XdpMode::Auto,
        None,
    )?;
    for real in &args.reals {
        for proto in [IPPROTO_UDP, IPPROTO_TCP] {
            ext.add_endpoint(EndpointKey::new(proto, *real, args.port))?;
            int.add_endpoint(EndpointKey::new(proto, *real, args.port))?;
        }
    }
    let per_thread = frames_per_thread(args.ring_size);
    let (memory, mut frames) = FrameMemory::new(per_thread * queues, 4096)?;
    let options = PortOptions {
        ring_size: args.ring_size,
        ..PortOptions::default()
    };
    let mut threads = Vec::new();
    for q in 0..queues {
        let ext_port = Port::open(&memory, &args.external, q, Side::External, &options)?;
        let int_port = Port::open(&memory, &args.internal, q, Side::Internal, &options)?;
        ext.register_socket(q, ext_port.fd())?;
        int.register_socket(q, int_port.fd())?;
        let pool: Vec<Frame> = frames.drain(..per_thread as usize).collect();
        let mut forwarder = Forwarder {
            memory: memory.clone(),
            ports: [ext_port, int_port],
            pool,
            received: Vec::with_capacity(per_thread as usize),
            out: [
                Vec::with_capacity(per_thread as usize),
                Vec::with_capacity(per_thread as usize),
            ],
            completed: Vec::with_capacity(per_thread as usize),
            macs: macs.clone(),
            int_mac,
            ext_mac,
            client_mac: args.client_mac,
            report: XskFwdReport::default(),
        };
        let (stop, cores, priority) = (Arc::clone(&stop), args.cores.clone(), args.priority);
        threads.push(std::thread::spawn(move || {
            super::pin(&cores, q as usize);
            realtime(priority);
            forwarder.run(&stop);
            forwarder.report
        }));
    }
    super::mark_ready(args.ready.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = XskFwdReport::default();
    for t in threads {
        let r = t
            .join()
            .map_err(|_| anyhow::anyhow!("a forwarding thread panicked"))?;
        total.received += r.received;
        total.forwarded += r.forwarded;
        total.unknown += r.unknown;
    }
    // The programs detach when `ext` and `int` drop, after the sockets' threads ended.
    drop((ext, int));
    Ok(total)
}

struct Forwarder {
    memory: FrameMemory,
    /// The external port, then the internal one.
    ports: [Port; 2],
    pool: Vec<Frame>,
    received: Vec<Frame>,
    /// Frames to transmit, by port.
    out: [Vec<Frame>; 2],
    completed: Vec<Frame>,
    /// (real server address, its MAC).
    macs: Vec<(Ipv4Addr, [u8; 6])>,
    int_mac: [u8; 6],
    ext_mac: [u8; 6],
    client_mac: [u8; 6],
    report: XskFwdReport,
}

impl Forwarder {
    fn run(&mut self, stop: &AtomicBool) {
        let mut poller = Poller::new(&self.ports, None);
        let mut since_sleep = 0;
        while !stop.load(Ordering::Relaxed) {
            let n = self.batch();
            if n == 0 {
                // As a realtime worker does: no spinning, sleep until frames arrive.
                poller.wait(WorkerOptions::default().idle_wait);
                since_sleep = 0;
            } else {
                since_sleep += n;
                if since_sleep >= YIELD_AFTER {
                    // As a realtime worker does: let the receive threads poll once.
                    std::thread::sleep(Duration::from_nanos(1));
                    since_sleep = 0;
                }
            }
        }
    }

    /// One batch, as a worker's: returns how many frames it handled.
    fn batch(&mut self) -> usize {
        for port in &mut self.ports {
            port.reclaim(&mut self.completed);
        }
        self.pool.append(&mut self.completed);
        let mut work = 0;
        for from in 0..2 {
            self.ports[from].refill(&mut self.pool);
            let n = self.ports[from].receive(&mut self.received);
            work += n;
            self.report.received += n as u64;
            let (memory, macs) = (&self.memory, &self.macs);
            let (int_mac, ext_mac, client_mac) = (self.int_mac, self.ext_mac, self.client_mac);
            for mut frame in self.received.drain(..) {
                let ok = memory.with_bytes(&mut frame, |bytes| {
                    if from == 0 {
                        to_real(bytes, macs, int_mac)
                    } else {
                        set_macs(bytes, client_mac, ext_mac)
                    }
                });
                if ok {
                    self.out[1 - from].push(frame);
                } else {
                    self.report.unknown += 1;
                    self.pool.push(frame);
                }
            }
        }
        for (port, out) in self.ports.iter_mut().zip(&mut self.out) {
            self.report.forwarded += port.transmit(out) as u64;
            // What the TX ring had no room for is dropped, as the workers drop it.
            self.pool.append(out);
            let _ = port.kick();
        }
        work
    }
}

/// Addresses the frame to the real server its IPv4 destination names, from `src`; false when
/// it is not a real server's frame.
#[inline]
fn to_real(frame: &mut [u8], macs: &[(Ipv4Addr, [u8; 6])], src: [u8; 6]) -> bool {
    // Ethernet (14) + the IPv4 destination at 16..20 of the IP header.
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    match macs.iter().find(|(a, _)| *a == dst) {
        Some((_, mac)) => set_macs(frame, *mac, src),
        None => false,
    }
}

#[inline]
fn set_macs(frame: &mut [u8], dst: [u8; 6], src: [u8; 6]) -> bool {
    if frame.len() < 14 {
        return false;
    }
    frame[0..6].copy_from_slice(&dst);
    frame[6..12].copy_from_slice(&src);
    true
}

/// xvsd's realtime workers' `yield_after`.
const YIELD_AFTER: usize = 128;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// This thread at xvsd's workers' scheduling (`--worker-priority`).
fn realtime(priority: u8) {
    // SAFETY: pthread_self has no preconditions and names the calling, live thread.
    let me = unsafe { libc::pthread_self() };
    if let Err(e) = xvs_control::daemon::set_thread_realtime(me, priority) {
        eprintln!("xvs-bench agent xskfwd: SCHED_FIFO {priority}: {e}");
    }
}

fn parse_mac_arg(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s).map_err(|e| e.to_string())
}

fn interface_mac(name: &str) -> Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address"))
        .with_context(|| format!("reading {name}'s MAC"))?;
    parse_mac(&text).with_context(|| format!("{name}'s MAC"))
}

/// Every real's MAC from the kernel's ARP table on `iface` (the rig resolves them first).
fn real_macs(iface: &str, reals: &[Ipv4Addr]) -> Result<Vec<(Ipv4Addr, [u8; 6])>> {
    let table = std::fs::read_to_string("/proc/net/arp").context("reading /proc/net/arp")?;
    reals
        .iter()
        .map(|real| {
            table
                .lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .find(|f| f.len() >= 6 && f[0] == real.to_string() && f[5] == iface)
                .and_then(|f| parse_mac(f[3]).ok())
                .filter(|mac| *mac != [0; 6])
                .map(|mac| (*real, mac))
                .with_context(|| format!("no MAC for real server {real} on {iface}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_rewritten_for_reals_only() {
        let real = Ipv4Addr::new(198, 19, 0, 10);
        let macs = [(real, [2, 0, 0, 0, 0, 10])];
        let mut frame = [0u8; 42];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[30..34].copy_from_slice(&real.octets());
        assert!(to_real(&mut frame, &macs, [2, 0, 0, 0, 0, 1]));
        assert_eq!(frame[0..6], [2, 0, 0, 0, 0, 10]);
        assert_eq!(frame[6..12], [2, 0, 0, 0, 0, 1]);
        frame[33] = 11;
        assert!(!to_real(&mut frame, &macs, [2, 0, 0, 0, 0, 1]));
        assert!(!to_real(&mut frame[..20], &macs, [0; 6]));
    }
}
