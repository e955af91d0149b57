//! xvsd: the xvs director daemon.
//!
//! `xvsd --external IFACE --internal IFACE [--control PATH] [--workers N] [--conn-max N]
//! [--conn-max6 N] [--metrics [ADDR:]PORT] [--idle adaptive|busy] [--worker-priority N] [--threaded-napi]
//! [--busy-poll] [--fast-path xdp|off] [--fast-path-after N]
//! [--drop-privileges] [--sloppy-tcp] [--sloppy-udp] [--announce bird:SOCKET ...] ...` runs
//! the director
//! in the foreground until SIGINT/SIGTERM; `xvsd demo` runs the seed cluster of the LVS-NAT
//! tutorial in network namespaces.

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use xvs_control::announce::AnnounceOptions;
use xvs_control::daemon::{self, DaemonOptions, FastPathMode, IdleStrategy};
use xvs_dataplane::xsk::{BindMode, BusyPoll, XdpMode};

#[derive(Parser, Debug)]
#[command(
    name = "xvsd",
    version,
    about = "xvs director: LVS-NAT load balancing over AF_XDP",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Mode>,
    /// Interface facing the clients (where requests to the VIPs arrive; the VIPs themselves
    /// may be on any local interface).
    #[arg(long, value_name = "IFACE", required = true)]
    external: Option<String>,
    /// Interface facing the real servers; the same as --external for a one-armed director.
    #[arg(long, value_name = "IFACE", required = true)]
    internal: Option<String>,
    /// Control socket path [default: $XVS_CONTROL or /run/xvs/xvs.sock].
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Worker threads [default: one per queue, at most one per core].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Most connections tracked at once; new flows beyond it are dropped (counted).
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    conn_max: usize,
    /// Most IPv6 connections tracked at once (a table of their own, about 100 bytes an
    /// entry, reserved at start).
    #[arg(long, value_name = "N", default_value_t = daemon::DEFAULT_CONN_MAX6)]
    conn_max6: usize,
    /// How the XDP program is attached.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    xdp_mode: XdpModeArg,
    /// AF_XDP bind mode: zero-copy where the driver supports it (auto), or forced.
    #[arg(long, value_enum, default_value_t = BindModeArg::Auto)]
    xsk_mode: BindModeArg,
    /// Entries per AF_XDP ring (a power of two).
    #[arg(long, value_name = "N", default_value_t = 1024)]
    ring_size: u32,
    /// Configuration file (what `xvsadm -S` prints), applied at start and re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also let members of this group (name or gid) use the control socket (mode 0660).
    #[arg(long, value_name = "GROUP")]
    control_group: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics; a bare PORT listens on
    /// 127.0.0.1 only.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = xvs_control::metrics::parse_listen_addr)]
    metrics: Option<SocketAddr>,
    /// What a worker does with empty rings: spin a while then sleep until frames arrive
    /// (adaptive), or spin always (busy: lowest latency, a full core per worker).
    #[arg(long, value_enum, default_value_t = IdleArg::Adaptive)]
    idle: IdleArg,
    /// Preferred busy polling: each worker runs its interfaces' receive (NAPI) itself, on its
    /// own core, and only as fast as it forwards; sets napi_defer_hard_irqs=2 and
    /// gro_flush_timeout=200000 on both interfaces while it runs (restored after any exit).
    /// See docs/benchmarks.md for when it pays.
    #[arg(long)]
    busy_poll: bool,
    /// Most frames one busy poll takes from an interface (SO_BUSY_POLL_BUDGET).
    #[arg(long, value_name = "N", default_value_t = 64, requires = "busy_poll",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    busy_poll_budget: u16,
    /// Realtime (SCHED_FIFO) priority of the workers, 1-99, or 0 for normal scheduling. A
    /// realtime worker outranks the kernel's receive on its core, so overload is dropped at
    /// the interface's ring instead of starving the worker [default: 1; 0 with --idle busy]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=99))]
    worker_priority: Option<u8>,
    /// Run both interfaces' receive (NAPI) in kernel threads, each pinned to the core of the
    /// worker that owns its queue, instead of in softirq (which outranks every thread): the
    /// external interface's ranked below realtime workers, the internal one's (the replies)
    /// one above them. Sets /sys/class/net/IFACE/threaded while xvsd runs (restored after
    /// any exit). For NIC interrupts on the workers' cores.
    #[arg(long)]
    threaded_napi: bool,
    /// Where established flows are forwarded: rewritten and redirected in the XDP program
    /// (xdp: the workers still schedule, follow states and timeouts, and count), or every
    /// packet through the AF_XDP workers (off). An interface that cannot take redirected
    /// frames (a veth whose peer has neither XDP nor GRO, a driver without ndo_xdp_xmit) keeps
    /// its flows on the AF_XDP path; the log says so.
    #[arg(long, value_enum, default_value_t = FastPathArg::Xdp)]
    fast_path: FastPathArg,
    /// Packets of a connection a worker forwards itself, once the fast path may carry it (TCP
    /// ESTABLISHED, UDP), before installing it there: short exchanges never pay the map writes.
    #[arg(long, value_name = "N", default_value_t = xvs_dataplane::fastpath::DEFAULT_INSTALL_AFTER,
          value_parser = clap::value_parser!(u8).range(1..))]
    fast_path_after: u8,
    /// Once started, keep only CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (in every thread, with
    /// no_new_privs); see docs/security.md.
    #[arg(long)]
    drop_privileges: bool,
    /// IPVS's sloppy_tcp: a TCP segment other than a SYN (or RST) of a flow this director has
    /// no entry for opens one when its service is scheduled by mh, sh or dh, so a flow that
    /// ECMP moves here keeps its real server (scale-out). A configuration may also set it
    /// (`--sloppy tcp` in the file, as `xvsadm -S` writes it).
    #[arg(long)]
    sloppy_tcp: bool,
    /// IPVS's sloppy_udp, for a scale-out configuration to name: any UDP datagram of a flow
    /// without an entry opens one anyway.
    #[arg(long)]
    sloppy_udp: bool,
    /// Scale-out behind ECMP: hand the VIPs this director can serve to a BGP daemon, named by
    /// its control socket (bird:SOCKET, bird2's `bird -s SOCKET`; checked at start and on
    /// reload). Each servable VIP becomes a route in --announce-table through
    /// --announce-device, which exists only while xvsd runs: bird, learning that table,
    /// withdraws every VIP when xvsd stops, even by SIGKILL. See docs/scale-out.md.
    #[arg(long, value_name = "bird:SOCKET")]
    announce: Option<xvs_control::announce::RoutingDaemon>,
    /// The routing table the VIP routes go to (bird's `kernel table`): one of its own.
    #[arg(long, value_name = "N", default_value_t = xvs_control::announce::DEFAULT_TABLE,
          requires = "announce")]
    announce_table: u32,
    /// The interface the VIP routes point at, created by xvsd (a TUN device that vanishes
    /// with it).
    #[arg(long, value_name = "NAME", default_value = xvs_control::announce::DEFAULT_DEVICE,
          requires = "announce")]
    announce_device: String,
    /// Announce this VIP only (repeatable; IPv4 or IPv6) [default: every configured VIP];
    /// each must be a service address of --config.
    #[arg(long, value_name = "ADDR", requires = "announce")]
    announce_vip: Vec<std::net::IpAddr>,
    /// Announce a VIP while one of its services has at least N real servers taking new
    /// connections (weight above 0, not down by its health check).
    #[arg(long, value_name = "N", default_value_t = 1, requires = "announce",
          value_parser = clap::value_parser!(u32).range(1..))]
    announce_min_servers: u32,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum FastPathArg {
    Xdp,
    Off,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum IdleArg {
    Adaptive,
    Busy,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Build the seed LVS-NAT cluster in namespaces, configure it with xvsadm, curl the VIP 11
    /// times and tear everything down.
    Demo,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum XdpModeArg {
    Auto,
    Native,
    Generic,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum BindModeArg {
    Auto,
    Copy,
    ZeroCopy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&shutdown)) {
            eprintln!("xvsd: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Some(Mode::Demo) => xvs_control::demo::run(&shutdown),
        None => {
            let (Some(external), Some(internal)) = (cli.external, cli.internal) else {
                eprintln!("xvsd: --external and --internal are required");
                return ExitCode::from(2);
            };
            let mut options = DaemonOptions::new(&external, &internal);
            options.control = cli
                .control
                .unwrap_or_else(xvs_control::client::default_control_path);
            options.workers = cli.workers;
            options.config = cli.config;
            options.metrics = cli.metrics;
            options.idle = match cli.idle {
                IdleArg::Adaptive => IdleStrategy::Adaptive,
                IdleArg::Busy => IdleStrategy::BusyPoll,
            };
            options.worker_priority = match (cli.idle, cli.worker_priority) {
                (IdleArg::Busy, Some(n)) if n > 0 => {
                    eprintln!(
                        "xvsd: --worker-priority {n} with --idle busy: a realtime worker that never sleeps would starve the kernel's receive on its core; use --idle adaptive, or --worker-priority 0"
                    );
                    return ExitCode::from(2);
                }
                (IdleArg::Busy, _) => 0,
                (IdleArg::Adaptive, n) => n.unwrap_or(daemon::DEFAULT_WORKER_PRIORITY),
            };
            options.conn_max = cli.conn_max;
            options.conn_max6 = cli.conn_max6;
            options.drop_privileges = cli.drop_privileges;
            options.threaded_napi = cli.threaded_napi;
            options.fast_path = match cli.fast_path {
                FastPathArg::Xdp => FastPathMode::Xdp,
                FastPathArg::Off => FastPathMode::Off,
            };
            options.fast_path_after = cli.fast_path_after;
            options.sloppy = xvs_control::protocol::Sloppy {
                tcp: cli.sloppy_tcp,
                udp: cli.sloppy_udp,
            };
            options.announce = cli.announce.map(|daemon| AnnounceOptions {
                table: cli.announce_table,
                device: cli.announce_device,
                vips: cli.announce_vip,
                min_servers: cli.announce_min_servers,
                ..AnnounceOptions::new(daemon)
            });
            options.busy_poll = cli.busy_poll.then_some(BusyPoll {
                budget: cli.busy_poll_budget,
                ..BusyPoll::default()
            });
            options.ring_size = cli.ring_size;
            options.xdp_mode = match cli.xdp_mode {
                XdpModeArg::Auto => XdpMode::Auto,
                XdpModeArg::Native => XdpMode::Native,
                XdpModeArg::Generic => XdpMode::Generic,
            };
            if let Some(group) = cli.control_group {
                match resolve_group(&group) {
                    Ok(gid) => options.access.group = Some(gid),
                    Err(e) => {
                        eprintln!("xvsd: --control-group {group}: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            options.bind_mode = match cli.xsk_mode {
                BindModeArg::Auto => BindMode::Auto,
                BindModeArg::Copy => BindMode::Copy,
                BindModeArg::ZeroCopy => BindMode::ZeroCopy,
            };
            daemon::run(&options, shutdown)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xvsd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A group name or numeric gid, as chown(1) takes it.
fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).map_err(|_| "not a group name".to_string())?;
    // SAFETY: `struct group` is plain data (integers and pointers); all zeroes is valid.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::group = std::ptr::null_mut();
    // Safety: every pointer is valid for the call; buf outlives the use of `entry`'s fields
    // (only gr_gid, a plain integer, is read).
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc).to_string());
    }
    if found.is_null() {
        return Err("no such group".into());
    }
    Ok(entry.gr_gid)
}
