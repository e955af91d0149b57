//! `agent xdpgen` and `agent xdpsink`: the generator (UDP datagrams or TCP conversations)
//! and the UDP sink of `--generator xdp`.
//!
//! The AF_PACKET generator ([`super::gen`]) hands veth skbs with ~30 bytes of headroom; a
//! veth with XDP attached must copy each into a page with XDP's 256 bytes before its program
//! may run (`skb_pp_cow_data`), and a frame it redirects is rebuilt into an skb at the peer.
//! A NIC does neither: its driver gives XDP the DMA buffer and transmits redirected frames as
//! they are. The XDP generator makes veth behave like that: it runs `xvs_bench_gen`
//! (bench/bpf/xvs_bench_xdp.c) with `BPF_PROG_RUN` and `BPF_F_TEST_XDP_LIVE_FRAMES` (the
//! method of xdp-tools' `xdp-trafficgen`, which cannot vary source addresses or pace), so
//! every frame leaves the generator as an `xdp_frame` in a page-pool page and enters the
//! director's veth ring without an skb. The kernel targets get the same frames: their veth
//! (GRO on) builds one skb per frame, as a NIC driver does for the stack.
//!
//! The sink `xvs_bench_sink` is attached to the switch's port of the director's internal
//! veth for the length of a trial and counts the generator's datagrams arriving there
//! (checksums verified) in per-CPU counters, then drops them: a fraction of the cost of a UDP
//! socket behind a bridge, so that the generator's core, not the sinks, bounds the offered
//! rate. Other traffic (ARP, latency probes) passes.
//!
//! Flows are those of [`super::gen`] (same sources, ports, destinations, IP ids and payload),
//! the frames byte-identical to its frames, in either family: the template's (`--src-base`'s)
//! for the generator, `--family` for the sink.

use super::gen::{build_frame, udp_headers_len, Args, GenReport, TcpLayout, FCS_LEN, TAG_LEN};
use super::sink::{if_rx_packets, Args as SinkArgs, SinkReport};
use super::sys::ifindex;
use super::{ensure_family, low_word, tcp, Family, Proto};
use anyhow::{ensure, Context, Result};
use libbpf_sys as bpf;
use std::io;
use std::net::IpAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xvs_dataplane::fastpath::{monotonic_ns, BpfMap};
use xvs_dataplane::xsk::object::BpfObject;

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_bench_xdp.o"));

/// `MAX_DESTINATIONS` of the C program.
const MAX_DESTINATIONS: usize = 256;
/// `HEADER_LEN` of the C program: room for Ethernet, IPv6 (the longer IP header), UDP, the
/// magic and the flow number; an IPv4 template fills the first 50 bytes.
const HEADER_LEN: usize = 14 + 40 + 8 + TAG_LEN;
/// Frames per `BPF_PROG_RUN` batch (the kernel's default and its NAPI budget).
const RUN_BATCH: u32 = 64;

/// `struct gen_config` of the C program.
#[repr(C)]
struct GenConfig {
    start_ns: u64,
    end_ns: u64,
    interval_ns: u64,
    ifindex: u32,
    flows: u32,
    src_count: u32,
    dst_count: u32,
    src_base: u32,
    sport_base: u16,
    /// 4 or 6: the template's.
    family: u16,
    dst: [[u32; 4]; MAX_DESTINATIONS],
    header: [u8; HEADER_LEN],
    ring_len: u32,
}

/// An address as the C program's `dst` holds it: 32-bit words in network order (read as
/// native integers, as the program reads the packet), an IPv4 one in word 0.
fn address_words(addr: IpAddr) -> [u32; 4] {
    let mut w = [0u32; 4];
    match addr {
        IpAddr::V4(a) => w[0] = u32::from_ne_bytes(a.octets()),
        IpAddr::V6(a) => {
            for (word, b) in w.iter_mut().zip(a.octets().chunks(4)) {
                *word = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
    }
    w
}

/// `RING_FRAME_MAX` of the C program.
const RING_FRAME_MAX: usize = 128;

/// `RING_SKIP_FIRST_PASS` of the C program: in [`RingFrame::len`], not sent on the first pass.
const RING_SKIP_FIRST_PASS: u32 = 1 << 31;

/// `struct ring_frame` of the C program.
#[repr(C)]
struct RingFrame {
    len: u32,
    data: [u8; RING_FRAME_MAX],
}

/// `struct gen_progress` of the C program.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct GenProgress {
    sent: u64,
    skipped: u64,
    position: u64,
}

/// `struct sink_config` of the C program.
#[repr(C)]
struct SinkConfig {
    port: u32,
    src_base: u32,
    src_count: u32,
    tcp: u32,
    /// 6 for IPv6 frames, 4 for IPv4 ones.
    family: u32,
    /// IPv6: the first 96 bits of the generator's sources (as [`address_words`]).
    src_prefix: [u32; 3],
}

impl SinkConfig {
    /// Counts (or answers, `tcp`) the frames of `family` to `port` from `sources` (the first
    /// address and the count of a pool; `None`: any source).
    fn new(port: u16, family: Family, sources: Option<(IpAddr, u32)>, tcp: bool) -> SinkConfig {
        let words = sources.map_or([0; 4], |(base, _)| address_words(base));
        SinkConfig {
            port: u32::from(port),
            src_base: sources.map_or(0, |(base, _)| low_word(base)),
            src_count: sources.map_or(0, |(_, count)| count),
            tcp: u32::from(tcp),
            family: match family {
                Family::V4 => 4,
                Family::V6 => 6,
            },
            src_prefix: match family {
                Family::V4 => [0; 3],
                Family::V6 => [words[0], words[1], words[2]],
            },
        }
    }
}

/// `struct sink_counters` of the C program.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SinkCounters {
    frames: u64,
    bytes: u64,
    bad_checksum: u64,
    replies: u64,
}

/// The loaded object (both programs) and its maps, created here so that the frame ring gets
/// its size; everything is closed on drop.
struct BenchObject {
    object: BpfObject,
    gen_config: BpfMap,
    gen_progress: BpfMap,
    gen_ring: BpfMap,
    sink_config: BpfMap,
    sink_counters: BpfMap,
}

impl BenchObject {
    /// Creates the maps (`ring` entries in the generator's frame ring) and loads the object.
    fn load(ring: u32) -> Result<Self> {
        use bpf::{BPF_MAP_TYPE_ARRAY as ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY as PER_CPU};
        let gen_config = BpfMap::create::<u32, GenConfig>(ARRAY, c"xvs_gen_config", 1, 0)?;
        let gen_progress = BpfMap::create::<u32, GenProgress>(ARRAY, c"xvs_gen_progress", 1, 0)?;
        let gen_ring = BpfMap::create::<u32, RingFrame>(ARRAY, c"xvs_gen_ring", ring.max(1), 0)?;
        let sink_config = BpfMap::create::<u32, SinkConfig>(ARRAY, c"xvs_sink_config", 1, 0)?;
        let sink_counters =
            BpfMap::create::<u32, SinkCounters>(PER_CPU, c"xvs_sink_counters", 1, 0)?;
        let object = BpfObject::load(
            OBJECT,
            c"xvs_bench_xdp",
            &[
                (c"xvs_gen_config", gen_config.fd()),
                (c"xvs_gen_progress", gen_progress.fd()),
                (c"xvs_gen_ring", gen_ring.fd()),
                (c"xvs_sink_config", sink_config.fd()),
                (c"xvs_sink_counters", sink_counters.fd()),
            ],
        )?;
        Ok(BenchObject {
            object,
            gen_config,
            gen_progress,
            gen_ring,
            sink_config,
            sink_counters,
        })
    }

    /// Attaches program `name` to `iface` (native XDP, through a link: closing the returned
    /// descriptor detaches it, as does the process's death).
    fn attach(&self, name: &std::ffi::CStr, iface: &str) -> Result<OwnedFd> {
        let prog = self.object.prog_fd(name)?;
        let mut link_opts = bpf::bpf_link_create_opts {
            sz: std::mem::size_of::<bpf::bpf_link_create_opts>() as _,
            ..Default::default()
        };
        link_opts.flags = bpf::XDP_FLAGS_DRV_MODE;
        // Safety: prog is a loaded XDP program; for BPF_XDP the target is an ifindex.
        let link =
            unsafe { bpf::bpf_link_create(prog, ifindex(iface)? as i32, bpf::BPF_XDP, &link_opts) };
        ensure!(
            link >= 0,
            "attaching {name:?} to {iface}: {}",
            io::Error::from_raw_os_error(-link)
        );
        // Safety: link is a fresh descriptor nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(link) })
    }

    /// Writes the generator's frame ring: each frame, and whether it is sent on the first pass.
    fn fill_ring(&self, frames: &[(Vec<u8>, bool)]) -> Result<()> {
        for (i, (f, first_pass)) in frames.iter().enumerate() {
            let skip = if *first_pass { 0 } else { RING_SKIP_FIRST_PASS };
            let mut entry = RingFrame {
                len: f.len() as u32 | skip,
                data: [0; RING_FRAME_MAX],
            };
            entry.data[..f.len()].copy_from_slice(f);
            self.gen_ring
                .update(&(i as u32), &entry)
                .context("writing the frame ring")?;
        }
        Ok(())
    }

    /// The sink's counters, summed over CPUs.
    fn sink_counters(&self) -> Result<SinkCounters> {
        let per_cpu = self
            .sink_counters
            .lookup_percpu::<u32, SinkCounters>(&0)
            .context("reading the sink's counters")?;
        Ok(per_cpu
            .iter()
            .fold(SinkCounters::default(), |acc, v| SinkCounters {
                frames: acc.frames + v.frames,
                bytes: acc.bytes + v.bytes,
                bad_checksum: acc.bad_checksum + v.bad_checksum,
                replies: acc.replies + v.replies,
            }))
    }
}

fn tx_dropped(iface: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/tx_dropped"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs the generator program in live-frame mode until a signal interrupts the call (or
/// `i32::MAX` runs, minutes, have passed).
fn run_live(prog: RawFd, template: &[u8]) -> Result<()> {
    let mut opts = bpf::bpf_test_run_opts {
        sz: std::mem::size_of::<bpf::bpf_test_run_opts>() as _,
        data_in: template.as_ptr().cast(),
        data_size_in: template.len() as u32,
        repeat: i32::MAX,
        flags: bpf::BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: RUN_BATCH,
        ..Default::default()
    };
    // Safety: the template outlives the call and its size is given; no output buffers.
    let rc = unsafe { bpf::bpf_prog_test_run_opts(prog, &mut opts) };
    ensure!(
        rc >= 0 || rc == -libc::EINTR,
        "BPF_PROG_RUN of the generator (live frames need kernel >= 5.18): {}",
        io::Error::from_raw_os_error(-rc)
    );
    Ok(())
}

/// `agent xdpgen` takes `agent gen`'s arguments: `--iface` is where frames are redirected
/// (they arrive at its peer), the program runs on the first of `--cores`, in one thread
/// (`--threads` 1), and `--batch` does not apply.
pub fn run_gen(a: &Args) -> Result<GenReport> {
    let family = a.family()?;
    ensure!(a.flows >= 1, "--flows must be >= 1");
    ensure!(a.rate >= 0.0, "--rate must be >= 0");
    ensure!(
        a.threads == 1,
        "the XDP generator runs one thread (--threads 1)"
    );
    ensure!(
        (1..=MAX_DESTINATIONS).contains(&a.dst.len()),
        "1..={MAX_DESTINATIONS} destinations"
    );
    let src_count = a.src_count.max(1);
    ensure!(
        a.flows / src_count < 64_000,
        "too many flows per source address"
    );
    super::pin(&a.cores, 0);
    // The program spins (it paces itself per frame): at SCHED_IDLE, anything else on the core
    // (the TCP responders, the orchestrator) runs the moment it wakes; the XDP sink's NAPI
    // thread is realtime anyway.
    let idle = libc::sched_param { sched_priority: 0 };
    // Safety: a plain system call on the calling thread with a live parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } != 0 {
        eprintln!(
            "xvs-bench agent xdpgen: SCHED_IDLE refused: {}",
            io::Error::last_os_error()
        );
    }
    let stop = super::stop_flag()?;
    // SIGUSR1 ends the BPF_PROG_RUN call (EINTR) at the trial's end; handled, not fatal.
    signal_hook::flag::register(
        signal_hook::consts::SIGUSR1,
        Arc::new(AtomicBool::new(false)),
    )
    .context("installing the SIGUSR1 handler")?;
    let (dst_mac, src_mac) = a.macs()?;
    let wire_len = a.frame_size - FCS_LEN;
    let src0 = super::gen::flow_source(a.src_base, src_count, 0);
    let udp_template = build_frame(dst_mac, src_mac, src0, (a.dst[0], a.dport), 0, wire_len);
    let ring = match a.proto {
        Proto::Udp => Vec::new(),
        Proto::Tcp => {
            let data = tcp::data_segments(family, wire_len, a.data_segments);
            let convs = (0..a.flows)
                .map(|i| {
                    let src = super::gen::flow_source(a.src_base, src_count, i);
                    let dst = (a.dst[i as usize % a.dst.len()], a.dport);
                    tcp::conversation(dst_mac, src_mac, src, dst, i, wire_len, data)
                })
                .collect();
            match a.tcp_layout.unwrap_or(TcpLayout::Staggered) {
                TcpLayout::Staggered => super::gen::staggered(convs),
                TcpLayout::Phased => super::gen::phases(convs)
                    .into_iter()
                    .map(|f| (f, true))
                    .collect(),
            }
        }
    };
    ensure!(
        ring.iter().all(|(f, _)| f.len() <= RING_FRAME_MAX),
        "the XDP generator's TCP frames are at most {} bytes with the FCS: use --generator packet",
        RING_FRAME_MAX + FCS_LEN
    );
    let ring_len = u32::try_from(ring.len()).context("too many TCP frames")?;
    // A ring frame is copied whole over a template of the longest length, then trimmed.
    let template = if ring.is_empty() {
        udp_template.clone()
    } else {
        vec![0u8; RING_FRAME_MAX]
    };
    let object = BenchObject::load(ring_len)?;
    let duration_ns = (a.duration * 1e9) as u64;
    // The first frame is due once the program is running.
    let start_ns = monotonic_ns() + 1_000_000;
    let mut config = GenConfig {
        start_ns,
        end_ns: start_ns + duration_ns,
        interval_ns: if a.rate > 0.0 {
            (1e9 / a.rate).max(1.0) as u64
        } else {
            0
        },
        ifindex: ifindex(&a.iface)?,
        flows: a.flows,
        src_count,
        dst_count: a.dst.len() as u32,
        src_base: low_word(a.src_base),
        sport_base: src0.1,
        family: match family {
            Family::V4 => 4,
            Family::V6 => 6,
        },
        dst: [[0; 4]; MAX_DESTINATIONS],
        header: [0; HEADER_LEN],
        ring_len,
    };
    for (slot, d) in config.dst.iter_mut().zip(&a.dst) {
        *slot = address_words(*d);
    }
    let header_len = udp_headers_len(family) + TAG_LEN;
    config.header[..header_len].copy_from_slice(&udp_template[..header_len]);
    object.fill_ring(&ring)?;
    object.gen_config.update(&0u32, &config)?;
    let prog = object.object.prog_fd(c"xvs_bench_gen")?;

    // Frames the director's veth ring refused count as lost, not as sent (as for the
    // AF_PACKET generator, whose offered rate adds them back from the same counter).
    let dropped0 = tx_dropped(&a.iface);
    // Interrupts the call at the end of the trial or on SIGTERM (which any thread may take).
    // Safety: pthread_self has no preconditions.
    let runner = unsafe { libc::pthread_self() };
    let done = Arc::new(AtomicBool::new(false));
    let timer = {
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) || monotonic_ns() >= start_ns + duration_ns {
                    // Safety: the runner thread outlives this one (joined below).
                    unsafe { libc::pthread_kill(runner, libc::SIGUSR1) };
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) && monotonic_ns() < start_ns + duration_ns {
        result = run_live(prog, &template);
        if result.is_err() {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    timer
        .join()
        .map_err(|_| anyhow::anyhow!("generator timer thread panicked"))?;
    result?;
    // Frames leave only between start_ns and end_ns.
    let elapsed_s = (monotonic_ns()
        .min(start_ns + duration_ns)
        .saturating_sub(start_ns) as f64
        / 1e9)
        .max(1e-9);
    let progress = object
        .gen_progress
        .lookup::<u32, GenProgress>(&0)?
        .unwrap_or_default();
    let refused = tx_dropped(&a.iface).saturating_sub(dropped0);
    let sent = progress.sent.saturating_sub(refused);
    Ok(GenReport {
        sent,
        errors: 0,
        elapsed_s,
        rate: a.rate,
        offered_pps: sent as f64 / elapsed_s,
    })
}

/// `agent decap`: attaches `xvs_bench_decap` to `--iface` (a real server's interface) until
/// `--duration` ends or SIGTERM, decapsulating GUE on `--port`; reports the packets it
/// decapsulated. The tunnelling tests' stand-in for the kernel's tunl0/fou/gre0 (see the C
/// program).
pub fn run_decap(a: &SinkArgs) -> Result<SinkReport> {
    let config = SinkConfig::new(a.port, Family::V4, None, false);
    let (c, _) = run_attached(a, c"xvs_bench_decap", &config)?;
    Ok(SinkReport {
        received: c.frames,
        bytes: c.bytes,
        ..SinkReport::default()
    })
}

/// `agent xdpsink` takes `agent sink`'s arguments: `--iface` is where the program is attached
/// (the switch's port of the director's internal veth), `--ready` is created once it is,
/// `--family` is the family of the frames counted (and of `--src-base`), and `--cores` does
/// not apply (the interface's NAPI thread runs it).
pub fn run_sink(a: &SinkArgs) -> Result<SinkReport> {
    if let Some(base) = a.src_base {
        ensure_family(a.family, "--src-base", &[base])?;
    }
    let config = SinkConfig::new(
        a.port,
        a.family,
        a.src_base.map(|base| (base, a.src_count)),
        a.proto == Proto::Tcp,
    );
    let (c, if_rx) = run_attached(a, c"xvs_bench_sink", &config)?;
    Ok(SinkReport {
        received: c.frames,
        bytes: c.bytes,
        if_rx,
        bad_checksum: c.bad_checksum,
        replies: c.replies,
        ..SinkReport::default()
    })
}

/// What both agents do: program `name` with `config`, attached to `--iface` from `--ready`
/// until `--duration` ends or SIGTERM; its counters, and the packets the interface received
/// meanwhile.
fn run_attached(
    a: &SinkArgs,
    name: &std::ffi::CStr,
    config: &SinkConfig,
) -> Result<(SinkCounters, u64)> {
    let stop = super::stop_flag()?;
    let object = BenchObject::load(1)?;
    object.sink_config.update(&0u32, config)?;
    let link = object.attach(name, &a.iface)?;
    let rx0 = if_rx_packets(&a.iface);
    super::mark_ready(a.ready.as_deref())?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let counters = object.sink_counters()?;
    drop(link);
    Ok((counters, if_rx_packets(&a.iface).saturating_sub(rx0)))
}

#[cfg(test)]
mod tests {
    //! Both programs run under `BPF_PROG_TEST_RUN` (one frame, not live): they need root;
    //! without it each test says so and passes, except under CI, where a skip is a failure.
    use super::*;

    const XDP_DROP: u32 = 1;
    const XDP_PASS: u32 = 2;
    const XDP_REDIRECT: u32 = 4;

    fn root_or_skip(test: &str) -> bool {
        if xvs_control::topology::is_root() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: needs root (BPF programs), and CI must not skip it"
        );
        eprintln!("skipping {test}: needs root (BPF programs)");
        false
    }

    /// One run of `prog` on `frame`: its action and the frame it left.
    fn run_once(prog: RawFd, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = bpf::bpf_test_run_opts {
            sz: std::mem::size_of::<bpf::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            repeat: 1,
            ..Default::default()
        };
        // Safety: every buffer in opts lives across the call and has the size given.
        let rc = unsafe { bpf::bpf_prog_test_run_opts(prog, &mut opts) };
        assert!(rc >= 0, "test run: {}", io::Error::from_raw_os_error(-rc));
        out.truncate(opts.data_size_out as usize);
        (opts.retval, out)
    }

    const DST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const SRC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// The rig's addresses in one family: the generator's first source, the VIP, a real
    /// server, and a latency client outside the generator's pool.
    #[derive(Clone, Copy, Debug)]
    struct Net {
        family: Family,
        src: IpAddr,
        vip: IpAddr,
        real: IpAddr,
        probe: IpAddr,
    }

    fn nets() -> [Net; 2] {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        [
            Net {
                family: Family::V4,
                src: a("198.18.0.10"),
                vip: a("198.18.0.129"),
                real: a("198.19.0.10"),
                probe: a("198.18.0.201"),
            },
            Net {
                family: Family::V6,
                src: a("2001:2::10"),
                vip: a("2001:2::129"),
                real: a("2001:2:0:1::10"),
                probe: a("2001:2::201"),
            },
        ]
    }

    fn gen_config(flows: u32, src_count: u32, src: IpAddr, dst: &[IpAddr]) -> GenConfig {
        let mut config = GenConfig {
            start_ns: 0,
            end_ns: u64::MAX,
            interval_ns: 0,
            ifindex: 1,
            flows,
            src_count,
            dst_count: dst.len() as u32,
            src_base: low_word(src),
            sport_base: 1024,
            family: match Family::of(src) {
                Family::V4 => 4,
                Family::V6 => 6,
            },
            dst: [[0; 4]; MAX_DESTINATIONS],
            header: [0; HEADER_LEN],
            ring_len: 0,
        };
        for (slot, d) in config.dst.iter_mut().zip(dst) {
            *slot = address_words(*d);
        }
        config
    }

    #[test]
    fn generator_makes_the_packet_generators_frames_from_any_recycled_page() {
        if !root_or_skip("generator_makes_the_packet_generators_frames_from_any_recycled_page") {
            return;
        }
        let object = BenchObject::load(1).expect("load");
        let (flows, src_count) = (300u32, 64u32);
        for net in nets() {
            // The IPv6 destinations differ in more than their last word.
            let dst = [net.vip, net.real];
            let header_len = udp_headers_len(net.family) + TAG_LEN;
            for wire_len in [70usize, 71, 1514] {
                let flow_frame = |i: u32| {
                    build_frame(
                        DST_MAC,
                        SRC_MAC,
                        super::super::gen::flow_source(net.src, src_count, i),
                        (dst[i as usize % dst.len()], super::super::BENCH_PORT),
                        i,
                        wire_len,
                    )
                };
                let template = flow_frame(0);
                let mut config = gen_config(flows, src_count, net.src, &dst);
                config.header[..header_len].copy_from_slice(&template[..header_len]);
                object.gen_config.update(&0u32, &config).unwrap();
                object
                    .gen_progress
                    .update(&0u32, &GenProgress::default())
                    .unwrap();
                let prog = object.object.prog_fd(c"xvs_bench_gen").unwrap();
                // A page as a NAT leaves it: other MACs, addresses, port, TTL and checksums.
                let mut page = template.clone();
                for (i, b) in page[..header_len].iter_mut().enumerate() {
                    *b ^= (i as u8).wrapping_mul(37) | 1;
                }
                for i in 0..flows + 5 {
                    let (action, out) = run_once(prog, &page);
                    assert_eq!(action, XDP_REDIRECT, "{net:?} run {i}");
                    assert_eq!(
                        out,
                        flow_frame(i % flows),
                        "{net:?} run {i}, {wire_len} bytes"
                    );
                    page = out;
                    // TTL or hop limit, as a router leaves it.
                    page[if net.family == Family::V4 { 22 } else { 21 }] -= 1;
                }
            }
        }
    }

    #[test]
    fn generator_sends_the_ring_of_tcp_frames_in_order_trimmed_to_length() {
        if !root_or_skip("generator_sends_the_ring_of_tcp_frames_in_order_trimmed_to_length") {
            return;
        }
        for net in nets() {
            // The first entry is one a staggered ring holds back on its first pass.
            let conv = tcp::conversation(
                DST_MAC,
                SRC_MAC,
                (net.src, 1024),
                (net.vip, super::super::BENCH_PORT),
                3,
                80,
                2,
            );
            let mut ring: Vec<(Vec<u8>, bool)> = conv.iter().map(|f| (f.clone(), true)).collect();
            ring.push((vec![0xab; RING_FRAME_MAX], true));
            ring[0].1 = false;
            let object = BenchObject::load(ring.len() as u32).expect("load");
            let mut config = gen_config(1, 1, net.src, &[net.vip]);
            config.ring_len = ring.len() as u32;
            object.gen_config.update(&0u32, &config).unwrap();
            object.fill_ring(&ring).unwrap();
            let prog = object.object.prog_fd(c"xvs_bench_gen").unwrap();
            let mut page = vec![0x5a; RING_FRAME_MAX];
            let (action, _) = run_once(prog, &page);
            assert_eq!(action, XDP_DROP, "the held-back entry is passed over");
            for i in 1..3 * ring.len() {
                let (action, out) = run_once(prog, &page);
                assert_eq!(action, XDP_REDIRECT, "{net:?} run {i}");
                assert_eq!(out, ring[i % ring.len()].0, "{net:?} run {i}");
                page = out;
                page.resize(RING_FRAME_MAX, 0x5a);
            }
            let progress: GenProgress = object.gen_progress.lookup(&0u32).unwrap().unwrap();
            assert_eq!(
                progress.sent,
                3 * ring.len() as u64 - 1,
                "the passed-over entry is not sent"
            );
            assert_eq!(progress.position, 3 * ring.len() as u64);
        }
    }

    #[test]
    fn sink_counts_the_generators_frames_and_rejects_bad_checksums() {
        if !root_or_skip("sink_counts_the_generators_frames_and_rejects_bad_checksums") {
            return;
        }
        let port = super::super::BENCH_PORT;
        for net in nets() {
            let object = BenchObject::load(1).expect("load");
            let config = SinkConfig::new(port, net.family, Some((net.src, 1)), false);
            object.sink_config.update(&0u32, &config).unwrap();
            let prog = object.object.prog_fd(c"xvs_bench_sink").unwrap();
            let frame = |src: IpAddr, port: u16, wire_len: usize| {
                build_frame(DST_MAC, SRC_MAC, (src, 1024), (net.real, port), 7, wire_len)
            };
            let payload = udp_headers_len(net.family);
            let mut expected = (0u64, 0u64, 0u64);
            for wire_len in [70, 71, 1514] {
                let good = frame(net.src, port, wire_len);
                assert_eq!(run_once(prog, &good).0, XDP_DROP, "{net:?}");
                expected.0 += 1;
                expected.1 += wire_len as u64;
                let mut bad_udp = good.clone();
                bad_udp[wire_len - 1] ^= 0x40;
                assert_eq!(run_once(prog, &bad_udp).0, XDP_DROP);
                let mut bad_ip = good.clone();
                match net.family {
                    Family::V4 => bad_ip[22] -= 1, // TTL without the checksum's update
                    Family::V6 => bad_ip[14 + 39] ^= 1, // the destination, which UDP's covers
                }
                assert_eq!(run_once(prog, &bad_ip).0, XDP_DROP);
                expected.2 += 2;
                // Not the generator's: other port, no magic.
                assert_eq!(run_once(prog, &frame(net.src, 9001, wire_len)).0, XDP_PASS);
                let mut other = good.clone();
                other[payload] ^= 1;
                assert_eq!(run_once(prog, &other).0, XDP_PASS);
            }
            // A latency probe: the magic and the port, but not from the generator's sources;
            // and the generator's datagram in the other family: the sink counts one.
            assert_eq!(run_once(prog, &frame(net.probe, port, 70)).0, XDP_PASS);
            let other = nets().into_iter().find(|n| n.family != net.family).unwrap();
            let foreign = build_frame(
                DST_MAC,
                SRC_MAC,
                (other.src, 1024),
                (other.real, port),
                7,
                70,
            );
            assert_eq!(run_once(prog, &foreign).0, XDP_PASS);
            if net.family == Family::V6 {
                // IPv6 forbids a zero UDP checksum: counted as bad.
                let mut zero = frame(net.src, port, 70);
                zero[60..62].copy_from_slice(&[0, 0]);
                assert_eq!(run_once(prog, &zero).0, XDP_DROP);
                expected.2 += 1;
                // Another /96 with the same last 32 bits is not the generator's.
                let mut prefix = frame(net.src, port, 70);
                prefix[14 + 8 + 5] ^= 1;
                assert_eq!(run_once(prog, &prefix).0, XDP_PASS);
            }
            let c = object.sink_counters().unwrap();
            assert_eq!((c.frames, c.bytes, c.bad_checksum), expected, "{net:?}");
        }
    }

    #[test]
    fn tcp_sink_answers_as_the_agent_responder_does() {
        if !root_or_skip("tcp_sink_answers_as_the_agent_responder_does") {
            return;
        }
        let port = super::super::BENCH_PORT;
        for net in nets() {
            let object = BenchObject::load(1).expect("load");
            let config = SinkConfig::new(port, net.family, Some((net.src, 4)), true);
            object.sink_config.update(&0u32, &config).unwrap();
            let prog = object.object.prog_fd(c"xvs_bench_sink").unwrap();
            let client = super::super::nth_address(net.src, 2);
            let (mut segments, mut replies) = (0, 0);
            for (client_port, wire_len) in [(1024, 60), (40000, 61), (65535, 130)] {
                let conv = tcp::conversation(
                    DST_MAC,
                    SRC_MAC,
                    (client, client_port),
                    (net.real, port),
                    7,
                    wire_len,
                    3,
                );
                for (i, frame) in conv.iter().enumerate() {
                    let mut reply = [0u8; tcp::REPLY_MAX];
                    let tcp::Seen::Segment { reply: n, .. } = tcp::answer(frame, port, &mut reply)
                    else {
                        panic!("segment {i} is not the responder's");
                    };
                    let (action, out) = run_once(prog, frame);
                    segments += 1;
                    if n > 0 {
                        assert_eq!(action, XDP_REDIRECT, "{net:?} segment {i} of {client_port}");
                        assert_eq!(out, reply[..n], "{net:?} segment {i} of {client_port}");
                        replies += 1;
                    } else {
                        assert_eq!(action, XDP_DROP, "{net:?} segment {i} of {client_port}");
                    }
                }
                let mut bad = conv[0].clone();
                let checksum = tcp::headers_len(net.family) - 3;
                bad[checksum] ^= 0x10; // in the TCP checksum
                assert_eq!(run_once(prog, &bad).0, XDP_DROP);
            }
            // Another source (a latency probe's), another port, UDP: on to the reals.
            let other = |src: IpAddr, dport: u16| {
                tcp::conversation(DST_MAC, SRC_MAC, (src, 1024), (net.real, dport), 0, 60, 1)[0]
                    .clone()
            };
            assert_eq!(run_once(prog, &other(net.probe, port)).0, XDP_PASS);
            assert_eq!(run_once(prog, &other(net.src, port + 1)).0, XDP_PASS);
            let udp = build_frame(DST_MAC, SRC_MAC, (net.src, 1024), (net.real, port), 0, 70);
            assert_eq!(run_once(prog, &udp).0, XDP_PASS);
            let c = object.sink_counters().unwrap();
            assert_eq!(
                (c.frames, c.replies, c.bad_checksum),
                (segments, replies, 3),
                "{net:?}"
            );
            assert_eq!(replies, 6, "a SYN|ACK and a FIN|ACK per conversation");
        }
    }
}
