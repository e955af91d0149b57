//! Network-namespace test beds: the seed LVS-NAT cluster of `design.md`, built for
//! `xvsd demo`, the end-to-end tests and the benchmarks.
//!
//! Shape (after the kernel's IPVS selftest, `tools/testing/selftests/netfilter/ipvs.sh`):
//!
//! ```text
//!  client ns            director ns                 sw ns               real ns (one each)
//!  eth0 ─────veth───── ext0 (VIP)  int0 (DIP) ─veth─ p-dir ┐
//!  198.18.0.201/24     198.18.0.129  198.19.0.152          br0 ── p-r0 ─veth─ eth0 198.19.0.148/24
//!  default via VIP                                          └──── p-r1 ─veth─ eth0 198.19.0.137/24
//!                                                                             default via DIP
//! ```
//!
//! Direct return ([`TopologySpec::direct_return`], the layout LVS-DR and LVS-TUN need): the
//! real servers' replies must not come back through the director, so the `sw` namespace also
//! routes. It holds [`ROUTER`] on the bridge, the real servers' default gateway instead of the
//! DIP, and a second link to the client (`up0` 198.18.1.1 <-> the client's `eth1`
//! 198.18.1.201) through which replies reach it. Each real server holds the VIP on its
//! loopback and neither answers nor announces ARP for it (`arp_ignore=1`, `arp_announce=2`,
//! the LVS-DR HOWTO's settings), so only the director owns the VIP on the wire.
//!
//! ```text
//!  client eth0 ───── ext0 director int0 ───── br0 (sw: 198.19.0.1, forwards) ── reals (VIP on lo)
//!         eth1 198.18.1.201 ──────────────── up0 198.18.1.1 ┘
//! ```
//!
//! One arm ([`TopologySpec::one_armed`], the usual layout of a DR/TUN director with one NIC):
//! the director has `int0` alone, on the real servers' segment, and the VIP on its loopback.
//! The `sw` namespace routes: the client's gateway (`up0` 198.18.0.1 <-> the client's `eth0`),
//! with a route for the VIP via the DIP, and the director's default gateway. The real servers'
//! gateway is the DIP (NAT), or the router with direct return. `--external` and `--internal`
//! both name `int0`.
//!
//! ```text
//!  client eth0 ── up0 (sw: 198.18.0.1, VIP via DIP) br0 198.19.0.1 ── int0 director (VIP on lo)
//!                                                                 └── reals
//! ```
//!
//! Scale-out ([`TopologySpec::scale_out`]): one arm with direct return and N directors on the
//! bridge, director `i` in `{base}-director{i}` (0: `{base}-director`) with DIP
//! 198.19.0.(152+i) on its own `int0` (port `p-dir{i}`), without the VIP as an address. The
//! router has no VIP route: a BGP daemon installs an ECMP route over the DIPs (L4 hash,
//! `fib_multipath_hash_policy=1`, so each connection sticks to one director). The client has
//! extra /32 source addresses ([`TopologySpec::client_aliases`]) so flows hash apart.
//! Dual stack (one arm needs direct return): every address again as its IPv6 twin
//! ([`ipv6_of`]; the client's extra ones and the VIP as /128s), the router forwarding IPv6
//! too, with the same hash policy, and every host's default IPv6 route via the router's twin.
//!
//! ```text
//!  client eth0 (30 addrs) ── up0 (sw: VIP via ECMP) br0 ─┬─ p-dir  ── int0 director  198.19.0.152
//!                                                        ├─ p-dir1 ── int0 director1 198.19.0.153
//!                                                        └─ p-r0.. ── reals (VIP on lo)
//! ```
//!
//! A [`Topology`] owns everything it makes: the namespaces (and with them every veth and
//! the bridge), the processes it spawned (nginx and helpers), and a private temporary
//! directory (nginx prefixes, logs, captured command output). [`Drop`] removes all of it,
//! also while unwinding from a panic and after a partially failed [`Topology::build`].
//!
//! Safety rails, because this code runs as root next to the host's own network:
//! - every address is validated to lie in the benchmarking range 198.18.0.0/15
//!   (clients in 198.18.0.0/24, reals in 198.19.0.0/24);
//! - every interface is created inside a namespace of ours (`ip -n NS link add ...
//!   peer ... netns OTHER`), never in the root namespace, so host names cannot clash;
//! - namespace names are unique per process and per call: `{prefix}{pid}_{counter}-{role}`;
//! - [`Topology::run_in`] / [`Topology::spawn_in`] refuse namespaces that are not ours;
//! - every wait is bounded.

use anyhow::{bail, ensure, Context, Result};
use std::fs::{self, File};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The virtual service address, on the director's external interface.
pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);
/// The director's internal address: the real servers' default gateway. Director 0's: director
/// `i` has this + `i` ([`Topology::dip_of`]).
pub const DIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 152);
/// Address of the first client; client `i` gets `.201 + i`.
pub const FIRST_CLIENT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 201);
/// Prefix length of both segments.
pub const PREFIX_LEN: u8 = 24;
/// The director's external interface (inside the director namespace).
pub const EXT_IF: &str = "ext0";
/// The director's internal interface (inside the director namespace).
pub const INT_IF: &str = "int0";
/// The interface of a client or a real server inside its own namespace.
pub const HOST_IF: &str = "eth0";
/// The bridge joining the internal segment (inside the `sw` namespace).
pub const BRIDGE: &str = "br0";
/// The switch's port of the director's internal veth.
pub const SWITCH_DIRECTOR_PORT: &str = "p-dir";
/// With direct return: the `sw` namespace's address on the bridge, the real servers' gateway.
pub const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// One arm: the router's address on the client's link, the client's gateway.
pub const CLIENT_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// With direct return: the router's end of its link to the client, and the client's end.
pub const ROUTER_UPLINK: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
pub const CLIENT_RETURN: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 201);
/// With direct return: the router's interface towards the client, and the client's.
pub const ROUTER_UPLINK_IF: &str = "up0";
pub const CLIENT_RETURN_IF: &str = "eth1";
/// URL path of the deterministic 1 MiB file every web server serves (see [`big_file_bytes`]).
pub const BIG_FILE_PATH: &str = "/big.bin";
/// Size of [`BIG_FILE_PATH`].
pub const BIG_FILE_LEN: usize = 1 << 20;
/// What a real server answers at this path: the address and port it sees the request come
/// from (`$remote_addr:$remote_port`): the client's with NAT, the local address with FullNAT.
pub const PEER_PATH: &str = "/peer";

/// Every page is also served under this prefix, sent by nginx at [`SLOW_RATE`]: a download
/// that lasts (4 s for the big file) whatever the client does, for tests that change things
/// in the middle of one.
pub const SLOW_PREFIX: &str = "/slow";
/// nginx `limit_rate` of [`SLOW_PREFIX`], bytes per second.
pub const SLOW_RATE: u32 = 256 * 1024;
/// Like [`SLOW_PREFIX`], slower, at [`LONG_RATE`]: the big file takes about 10 s, long
/// enough for a director to be killed and its flows to move while one is in flight.
pub const LONG_PREFIX: &str = "/long";
/// nginx `limit_rate` of [`LONG_PREFIX`], bytes per second.
pub const LONG_RATE: u32 = 100 * 1024;
/// At most this many directors ([`TopologySpec::directors`]): DIPs .152 to .159.
pub const MAX_DIRECTORS: usize = 8;
/// At most this many extra client addresses ([`TopologySpec::client_aliases`]).
pub const MAX_CLIENT_ALIASES: u32 = 50;
/// Default limit for [`Topology::run_in`].
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Topology::start_web_servers`] waits for every nginx to answer.
const WEB_READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Drop`] gives spawned processes to exit on SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);
/// Limit for each setup command (`ip`, `ethtool`, `sysctl`): they are instantaneous.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where `ip netns add` puts its bind mounts (/var/run is a link to /run on Debian).
const NETNS_DIR: &str = "/run/netns";
/// Process-wide counter: two topologies of one process never share a name.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// What to build. [`TopologySpec::seed`] is the cluster of `design.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologySpec {
    /// Namespace name prefix (ASCII letters/digits, starting with a letter), e.g. "xvst".
    pub prefix: String,
    /// rx and tx queues on EVERY veth end. Both ends of a pair get the same count: XDP
    /// attach fails with ENOSPC when a veth has fewer rx queues than its peer tx queues.
    pub queues: u32,
    /// The real servers, on the internal segment behind the bridge.
    pub reals: Vec<RealSpec>,
    /// Number of clients. Only 1 is built today (a direct veth to `ext0`); more would
    /// need an external bridge, and addresses are already assigned as `.201 + i`.
    pub clients: u32,
    /// Leave the client's and real servers' checksum/segmentation offloads on (the veth
    /// default), so the director receives frames with partial checksums as an unprepared
    /// topology would give it. Off by default, as platform.md recommends.
    pub sender_offloads: bool,
    /// The real servers answer clients without the director, as direct routing and tunnels
    /// need (the LVS-DR layout): see the module's "Direct return".
    pub direct_return: bool,
    /// The director has one interface, on the real servers' segment, for both sides; a
    /// router brings it the clients' traffic: see the module's "One arm".
    pub one_armed: bool,
    /// More addresses of the director on its internal interface (/32, after the DIP, so
    /// never its primary one; with `dual_stack` their twins too, as /128s), e.g. FullNAT's
    /// local addresses. Hosts of 198.19.0.0/24.
    /// Director 0's only.
    pub director_addrs: Vec<Ipv4Addr>,
    /// Number of directors (1..=[`MAX_DIRECTORS`]); more than one only with `one_armed` and
    /// `direct_return` (module doc, "Scale-out"): director `i` has DIP 198.19.0.(152+i).
    pub directors: usize,
    /// One arm: the router routes the VIP via the DIP (ECMP over every DIP with several
    /// directors). Off: no VIP route on the router, for a BGP daemon to install.
    pub static_vip_route: bool,
    /// Extra /32 addresses of the client on its `eth0`: [`FIRST_CLIENT`]` + 1`, `+ 2`...
    /// (at most [`MAX_CLIENT_ALIASES`]), sources for many flows (`curl --interface ADDR`).
    pub client_aliases: u32,
    /// IPv6 beside IPv4 (two arms, or one arm with direct return): every host also gets the
    /// address of its IPv4 one in 2001:2::/48 ([`ipv6_of`]), each segment a /64, and nginx
    /// listens on both families.
    pub dual_stack: bool,
}

/// One real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealSpec {
    /// Its address, in 198.19.0.0/24.
    pub addr: Ipv4Addr,
    /// The body served at `/` (followed by "\n").
    pub page: String,
}

impl TopologySpec {
    /// The seed cluster: one client, web01 198.19.0.148 and web02 198.19.0.137, 1 queue.
    pub fn seed() -> Self {
        TopologySpec {
            prefix: "xvs".to_string(),
            queues: 1,
            reals: vec![
                RealSpec {
                    addr: Ipv4Addr::new(198, 19, 0, 148),
                    page: "198.19.0.148 is www.shuyan.com".to_string(),
                },
                RealSpec {
                    addr: Ipv4Addr::new(198, 19, 0, 137),
                    page: "198.19.0.137".to_string(),
                },
            ],
            clients: 1,
            sender_offloads: false,
            direct_return: false,
            one_armed: false,
            director_addrs: Vec::new(),
            directors: 1,
            static_vip_route: true,
            client_aliases: 0,
            dual_stack: false,
        }
    }

    /// The seed cluster with IPv6 beside IPv4 ([`TopologySpec::dual_stack`]).
    pub fn dual_stack() -> Self {
        TopologySpec {
            dual_stack: true,
            ..Self::seed()
        }
    }

    /// The seed cluster behind a one-armed director, [`TopologySpec::one_armed`], with the
    /// real servers' replies through the director (NAT) or not (`direct_return`: DR, TUN).
    pub fn one_armed(direct_return: bool) -> Self {
        TopologySpec {
            one_armed: true,
            direct_return,
            ..Self::seed()
        }
    }

    /// A scale-out rig (module doc): `directors` one-armed DR directors behind the router,
    /// no static VIP route (BGP's job), three real servers 198.19.0.148, .137 and .140 whose
    /// pages are their addresses, and 30 client addresses.
    pub fn scale_out(directors: usize) -> Self {
        let reals = [148, 137, 140]
            .into_iter()
            .map(|host| {
                let addr = Ipv4Addr::new(198, 19, 0, host);
                RealSpec {
                    addr,
                    page: addr.to_string(),
                }
            })
            .collect();
        TopologySpec {
            directors,
            static_vip_route: false,
            reals,
            client_aliases: 29,
            ..Self::one_armed(true)
        }
    }

    /// The seed cluster laid out for direct routing: [`TopologySpec::seed`] with
    /// [`TopologySpec::direct_return`].
    pub fn direct_return() -> Self {
        TopologySpec {
            direct_return: true,
            ..Self::seed()
        }
    }

    /// Refuses anything that could touch addresses or names outside our range.
    fn validate(&self) -> Result<()> {
        let p = &self.prefix;
        ensure!(
            !p.is_empty()
                && p.len() <= 24
                && p.starts_with(|c: char| c.is_ascii_alphabetic())
                && p.chars().all(|c| c.is_ascii_alphanumeric()),
            "prefix {p:?} must be 1-24 ASCII letters/digits starting with a letter"
        );
        ensure!(
            (1..=64).contains(&self.queues),
            "queues must be 1..=64, got {}",
            self.queues
        );
        ensure!(
            self.clients == 1,
            "only 1 client is supported for now, got {}",
            self.clients
        );
        ensure!(
            (1..=MAX_DIRECTORS).contains(&self.directors),
            "directors must be 1..={MAX_DIRECTORS}, got {}",
            self.directors
        );
        ensure!(
            self.directors == 1 || (self.one_armed && self.direct_return),
            "{} directors need the one-armed direct-return layout (one_armed and direct_return)",
            self.directors
        );
        ensure!(
            !self.dual_stack || !self.one_armed || self.direct_return,
            "dual_stack with one arm is built for direct return only (the scale-out layout)"
        );
        ensure!(
            self.static_vip_route || self.one_armed,
            "static_vip_route=false needs one_armed (with two arms the VIP is on ext0)"
        );
        ensure!(
            self.client_aliases <= MAX_CLIENT_ALIASES,
            "client_aliases must be at most {MAX_CLIENT_ALIASES}, got {}",
            self.client_aliases
        );
        for addr in client_addrs(self.client_aliases) {
            let o = addr.octets();
            ensure!(
                o[..3] == [198, 18, 0]
                    && !matches!(o[3], 0 | 255)
                    && addr != VIP
                    && addr != CLIENT_GATEWAY,
                "client address {addr} must be a host of 198.18.0.0/24 other than the VIP \
                 and the client's gateway"
            );
        }
        let dips: Vec<Ipv4Addr> = (0..self.directors).map(director_dip).collect();
        for (i, r) in self.reals.iter().enumerate() {
            let o = r.addr.octets();
            ensure!(
                o[..3] == [198, 19, 0] && !matches!(o[3], 0 | 255) && !dips.contains(&r.addr),
                "real {i} address {} must be a host of 198.19.0.0/24 other than a director's \
                 DIP {dips:?}",
                r.addr
            );
            ensure!(
                !self.direct_return || r.addr != ROUTER,
                "real {i} address {} is the router's",
                r.addr
            );
            ensure!(
                !self.reals[..i].iter().any(|q| q.addr == r.addr),
                "real address {} appears twice",
                r.addr
            );
        }
        for addr in &self.director_addrs {
            let o = addr.octets();
            ensure!(
                o[..3] == [198, 19, 0]
                    && !matches!(o[3], 0 | 255)
                    && !dips.contains(addr)
                    && *addr != ROUTER
                    && !self.reals.iter().any(|r| r.addr == *addr),
                "director address {addr} must be a free host of 198.19.0.0/24"
            );
        }
        // DIPs are .152 up: never ROUTER (.1) in practice, checked for the day that changes.
        ensure!(!dips.contains(&ROUTER), "a director's DIP is the router's");
        Ok(())
    }
}

/// The IPv6 twin of a topology address in 2001:2::/48: 198.18.0.X is 2001:2::X and
/// 198.19.0.X is 2001:2:0:1::X, X written with the same digits (198.19.0.148 is
/// 2001:2:0:1::148), so that a listing reads like its IPv4 one; each /24 its own /64
/// (198.18.C.X is 2001:2:0:2C::X, 198.19.C.X 2001:2:0:2C+1::X).
pub fn ipv6_of(addr: Ipv4Addr) -> Ipv6Addr {
    let [_, b, c, host] = addr.octets();
    let digits = u16::from_str_radix(&host.to_string(), 16).expect("decimal digits are hex digits");
    let subnet = u16::from(c) << 1 | u16::from(b == 19);
    Ipv6Addr::new(0x2001, 2, 0, subnet, 0, 0, 0, digits)
}

/// The address family a part of the topology is built in: the IPv4 addresses as they are, or
/// their IPv6 twins ([`ipv6_of`]).
#[derive(Clone, Copy, Debug)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// `ip`'s family option.
    fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    /// `addr` in this family.
    fn addr(self, addr: Ipv4Addr) -> String {
        match self {
            Family::V4 => addr.to_string(),
            Family::V6 => ipv6_of(addr).to_string(),
        }
    }

    /// `addr` in this family as a host prefix (/32, /128).
    fn host(self, addr: Ipv4Addr) -> String {
        match self {
            Family::V4 => format!("{addr}/32"),
            Family::V6 => format!("{}/128", ipv6_of(addr)),
        }
    }
}

/// Director `i`'s DIP: [`DIP`] + i.
fn director_dip(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).expect("director index fits in u32");
    Ipv4Addr::from(u32::from(DIP) + i)
}

/// [`FIRST_CLIENT`] and its `aliases` successors.
fn client_addrs(aliases: u32) -> Vec<Ipv4Addr> {
    (0..=aliases)
        .map(|i| Ipv4Addr::from(u32::from(FIRST_CLIENT) + i))
        .collect()
}

/// The switch's port of director `i`'s veth: [`SWITCH_DIRECTOR_PORT`], then `p-dir1`...
fn switch_director_port(i: usize) -> String {
    match i {
        0 => SWITCH_DIRECTOR_PORT.to_string(),
        i => format!("{SWITCH_DIRECTOR_PORT}{i}"),
    }
}

impl Default for TopologySpec {
    fn default() -> Self {
        Self::seed()
    }
}

/// A built test bed; dropping it tears everything down (see the module doc).
#[derive(Debug)]
pub struct Topology {
    spec: TopologySpec,
    client_ns: String,
    /// One per director, director 0 first.
    director_ns: Vec<String>,
    sw_ns: String,
    real_ns: Vec<String>,
    /// Every namespace created so far, in creation order: what Drop deletes.
    namespaces: Vec<String>,
    /// Processes started by `spawn_in`, killed in Drop.
    children: Vec<Child>,
    /// Private temporary directory, removed in Drop.
    dir: PathBuf,
    /// Names the capture files of `run_in`.
    seq: AtomicU64,
    web_started: bool,
}

/// `{prefix}{pid}_{counter}`: the common part of a topology's namespace names.
fn unique_base(prefix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}_{n}", std::process::id())
}

/// The pid encoded in a namespace name made by [`unique_base`] with this prefix.
fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let (pid, rest) = rest.split_once('_')?;
    let (counter, _role) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(counter) {
        return None;
    }
    pid.parse().ok()
}

/// Absolute path of a system tool: `sudo`/cron environments often lack /usr/sbin in PATH.
pub(crate) fn tool(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// `ip ARGS` as a Command.
fn ip(args: &[&str]) -> Command {
    let mut c = Command::new(tool("ip"));
    c.args(args);
    c
}

/// A sysfs CPU bitmap (`rps_cpus` format: hex, 32-bit groups separated by commas, most
/// significant first) of CPUs `0..cpus`.
fn cpu_mask(cpus: usize) -> String {
    let groups = cpus.div_ceil(32).max(1);
    (0..groups)
        .rev()
        .map(|g| {
            let bits = cpus.saturating_sub(g * 32).min(32);
            let word = if bits == 32 {
                u32::MAX
            } else {
                (1u32 << bits) - 1
            };
            format!("{word:08x}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// CPUs online on the machine, whatever the calling thread's affinity (a benchmark pins
/// its orchestrator off the director's cores; `available_parallelism` would count only its
/// own).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

/// True when running with effective uid 0 (needed to build a topology).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// SIGKILLs every process still inside namespace `ns` (started by us: the namespace is
/// ours), so that deleting it really frees it, e.g. nginx workers orphaned by a SIGKILL.
fn kill_ns_pids(ns: &str) {
    let Ok(out) = ip(&["netns", "pids", ns]).stderr(Stdio::null()).output() else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1 && p as u32 != std::process::id())
    {
        // SAFETY: kill(2) with a positive pid only sends a signal; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Kills what is left in `ns` and deletes it (which destroys its interfaces).
fn delete_ns(ns: &str) {
    kill_ns_pids(ns);
    let _ = ip(&["netns", "del", ns])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Deletes leftover namespaces named `{prefix}{pid}_{n}-{role}` whose pid is no longer
/// alive (test beds of a process that was SIGKILLed), and their temp directories.
/// Returns how many namespaces were removed.
pub fn cleanup_stale(prefix: &str) -> usize {
    let dead = |name: &str| {
        owner_pid(prefix, name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut removed = 0;
    for name in names(Path::new(NETNS_DIR)).iter().filter(|n| dead(n)) {
        delete_ns(name);
        removed += 1;
    }
    let tmp = std::env::temp_dir();
    // Temp dirs are named `{prefix}{pid}_{n}`; give them a role suffix to reuse `dead`.
    for name in names(&tmp).iter().filter(|n| dead(&format!("{n}-dir"))) {
        let _ = fs::remove_dir_all(tmp.join(name));
    }
    removed
}

/// Deterministic content of [`BIG_FILE_PATH`] (xorshift64* stream from a fixed seed), so a
/// test can compare what it downloaded against a locally computed copy or hash.
pub fn big_file_bytes() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(BIG_FILE_LEN);
    while v.len() < BIG_FILE_LEN {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(BIG_FILE_LEN);
    v
}

/// Writes a file readable by nginx's unprivileged worker whatever the umask.
fn write_public(path: &Path, data: &[u8]) -> Result<()> {
    fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Creates a directory traversable by nginx's unprivileged worker whatever the umask.
fn mkdir_public(path: &Path) -> Result<()> {
    fs::create_dir(path).with_context(|| format!("creating {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))
}

impl Topology {
    /// Builds the namespaces, links, bridge, addresses and routes of `spec`. On error,
    /// whatever was already made is removed before returning.
    pub fn build(spec: &TopologySpec) -> Result<Topology> {
        spec.validate()?;
        ensure!(is_root(), "building a topology needs root");
        let base = unique_base(&spec.prefix);
        let dir = std::env::temp_dir().join(&base);
        // This pid + counter is ours alone while we live: a directory or namespace by
        // that name is a leftover of a SIGKILLed process that had the same pid.
        let _ = fs::remove_dir_all(&dir);
        mkdir_public(&dir)?;
        // From here on, `t` owns what exists: any `?` below drops it and cleans up.
        let mut t = Topology {
            spec: spec.clone(),
            client_ns: format!("{base}-client"),
            director_ns: (0..spec.directors)
                .map(|i| match i {
                    0 => format!("{base}-director"),
                    i => format!("{base}-director{i}"),
                })
                .collect(),
            sw_ns: format!("{base}-sw"),
            real_ns: (0..spec.reals.len())
                .map(|i| format!("{base}-real{i}"))
                .collect(),
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
            seq: AtomicU64::new(0),
            web_started: false,
        };
        t.setup()
            .with_context(|| format!("building topology {base}"))?;
        Ok(t)
    }

    fn setup(&mut self) -> Result<()> {
        let (client, sw) = (self.client_ns.clone(), self.sw_ns.clone());
        let directors = self.director_ns.clone();
        let director = directors[0].clone();
        let reals = self.real_ns.clone();
        let all: Vec<String> = [&client]
            .into_iter()
            .chain(&directors)
            .chain([&sw])
            .chain(&reals)
            .cloned()
            .collect();
        for ns in &all {
            if Path::new(NETNS_DIR).join(ns).exists() {
                delete_ns(ns);
            }
            self.setup_cmd(ip(&["netns", "add", ns]))?;
            self.namespaces.push(ns.clone());
            // Before any interface exists, so that `default` applies to the new ones too:
            // no IPv6 chatter on the segments, and no kernel forwarding anywhere (the
            // director's NAT is done in user space; kernel forwarding would fake success).
            // Dual stack: IPv6 on, but no autoconfiguration, router solicitations or duplicate
            // address detection (addresses are usable at once), and no IPv6 forwarding.
            let ipv6: &[&str] = match self.spec.dual_stack {
                false => &[
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
                true => &[
                    "net.ipv6.conf.all.accept_ra=0",
                    "net.ipv6.conf.default.accept_ra=0",
                    "net.ipv6.conf.default.autoconf=0",
                    "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.default.router_solicitations=0",
                    "net.ipv6.conf.all.forwarding=0",
                ],
            };
            let mut settings = ipv6.to_vec();
            settings.push("net.ipv4.ip_forward=0");
            self.sysctl(ns, &settings)?;
            self.ipn(ns, &["link", "set", "lo", "up"])?;
        }

        // Links. Two arms: the director is the client's router, a direct pair ext0 <-> eth0.
        // One arm: the router in `sw` is, and the director has int0 alone.
        if self.spec.one_armed {
            self.veth(&sw, ROUTER_UPLINK_IF, &client, HOST_IF)?;
        } else {
            self.veth(&director, EXT_IF, &client, HOST_IF)?;
        }
        for (i, ns) in directors.iter().enumerate() {
            self.veth(ns, INT_IF, &sw, &switch_director_port(i))?;
        }
        // No STP delay: ports forward as soon as they are up.
        let bridge = [
            "link",
            "add",
            "name",
            BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ];
        self.ipn(&sw, &bridge)?;
        self.ipn(&sw, &["link", "set", BRIDGE, "up"])?;
        let mut ports: Vec<String> = (0..directors.len()).map(switch_director_port).collect();
        for (i, ns) in reals.iter().enumerate() {
            let port = format!("p-r{i}");
            self.veth(ns, HOST_IF, &sw, &port)?;
            ports.push(port);
        }
        for p in &ports {
            self.ipn(&sw, &["link", "set", p, "master", BRIDGE])?;
            self.ipn(&sw, &["link", "set", p, "up"])?;
            if !self.spec.sender_offloads {
                self.ethtool_off(&sw, p, &["tx"])?;
            }
            self.keep_flows_in_order(&sw, p)?;
        }
        self.keep_flows_in_order(&client, HOST_IF)?;
        for ns in &reals {
            self.keep_flows_in_order(ns, HOST_IF)?;
        }

        // Senders: a veth peer's own stack leaves partial checksums that a forwarded
        // (or AF_XDP-copied) frame keeps, and the receiver drops (platform.md); and no
        // segmentation/aggregation offloads, so frames on the wire stay MTU-sized.
        if !self.spec.sender_offloads {
            let sender_off = ["tx", "tso", "gso", "gro"];
            self.ethtool_off(&client, HOST_IF, &sender_off)?;
            for ns in &reals {
                self.ethtool_off(ns, HOST_IF, &sender_off)?;
            }
        }
        // The director's own kernel traffic (ARP/ICMP/a local TCP) gets full checksums too.
        if !self.spec.one_armed {
            self.ethtool_off(&director, EXT_IF, &["tx"])?;
        }
        for ns in &directors {
            self.ethtool_off(ns, INT_IF, &["tx"])?;
        }
        // A veth takes frames that XDP redirects to it (the director's fast path) only when its
        // peer can receive them: an XDP program or GRO there, as a NIC's receive always can.
        self.ethtool(&client, HOST_IF, &["gro"], true)?;
        for i in 0..directors.len() {
            self.ethtool(&sw, &switch_director_port(i), &["gro"], true)?;
        }

        // Addresses and routes (a gateway route needs its link up first).
        for (i, ns) in directors.iter().enumerate() {
            self.addr_up(ns, INT_IF, director_dip(i))?;
        }
        for addr in &self.spec.director_addrs {
            let host = format!("{addr}/32");
            self.ipn(&director, &["addr", "add", &host, "dev", INT_IF])?;
        }
        self.addr_up(&client, HOST_IF, FIRST_CLIENT)?;
        // /32: no second connected route, and FIRST_CLIENT stays the default source.
        for addr in &client_addrs(self.spec.client_aliases)[1..] {
            let host = format!("{addr}/32");
            self.ipn(&client, &["addr", "add", &host, "dev", HOST_IF])?;
        }
        if self.spec.one_armed {
            self.one_armed_paths(&client, &directors, &sw)?;
        } else {
            self.addr_up(&director, EXT_IF, VIP)?;
            self.ipn(
                &client,
                &["route", "add", "default", "via", &VIP.to_string()],
            )?;
        }
        let gateway = if self.spec.direct_return { ROUTER } else { DIP };
        for (ns, r) in reals.iter().zip(self.spec.reals.clone()) {
            self.addr_up(ns, HOST_IF, r.addr)?;
            self.ipn(
                ns,
                &["route", "add", "default", "via", &gateway.to_string()],
            )?;
        }
        if self.spec.direct_return && !self.spec.one_armed {
            self.return_link(&client, &sw)?;
        }
        if self.spec.direct_return {
            self.vip_on_reals(&reals)?;
        }
        match (self.spec.dual_stack, self.spec.one_armed) {
            (true, false) => self.ipv6_addresses(&client, &director, &reals)?,
            (true, true) => self.one_armed6(&client, &directors, &sw, &reals)?,
            (false, _) => {}
        }
        Ok(())
    }

    /// Dual stack (two arms): the IPv4 layout again in 2001:2::/48, each address
    /// [`ipv6_of`] its IPv4 twin, each segment a /64; the client's default route via VIP6,
    /// the real servers' via DIP6. `nodad`: usable at once.
    fn ipv6_addresses(&self, client: &str, director: &str, reals: &[String]) -> Result<()> {
        let add = |ns: &str, ifname: &str, addr: Ipv4Addr| {
            let cidr = format!("{}/64", ipv6_of(addr));
            self.ipn(ns, &["-6", "addr", "add", &cidr, "dev", ifname, "nodad"])
        };
        add(director, EXT_IF, VIP)?;
        add(director, INT_IF, DIP)?;
        // Extra director addresses (FullNAT's local addresses) get their twins as /128s, as
        // the IPv4 ones are /32s.
        for addr in &self.spec.director_addrs {
            let host = format!("{}/128", ipv6_of(*addr));
            self.ipn(
                director,
                &["-6", "addr", "add", &host, "dev", INT_IF, "nodad"],
            )?;
        }
        add(client, HOST_IF, FIRST_CLIENT)?;
        let via = ipv6_of(VIP).to_string();
        self.ipn(client, &["-6", "route", "add", "default", "via", &via])?;
        let gateway = if self.spec.direct_return { ROUTER } else { DIP };
        let via = ipv6_of(gateway).to_string();
        for (ns, r) in reals.iter().zip(&self.spec.reals) {
            add(ns, HOST_IF, r.addr)?;
            self.ipn(ns, &["-6", "route", "add", "default", "via", &via])?;
        }
        if self.spec.direct_return {
            self.direct_return6(client, reals, &add)?;
        }
        Ok(())
    }

    /// Direct return in IPv6 ([`Topology::return_link`] and [`Topology::vip_on_reals`] built
    /// already): the router's twins on the bridge and on the client's return link, IPv6
    /// forwarding there, the clients' /64 routed back over that link, and VIP6 on each real
    /// server's loopback (IPv6 answers neighbour solicitations only for the receiving
    /// interface's addresses, so nothing like arp_ignore is needed).
    fn direct_return6(
        &self,
        client: &str,
        reals: &[String],
        add: &dyn Fn(&str, &str, Ipv4Addr) -> Result<()>,
    ) -> Result<()> {
        let sw = self.sw_ns.clone();
        self.sysctl(&sw, &["net.ipv6.conf.all.forwarding=1"])?;
        add(&sw, BRIDGE, ROUTER)?;
        add(&sw, ROUTER_UPLINK_IF, ROUTER_UPLINK)?;
        add(client, CLIENT_RETURN_IF, CLIENT_RETURN)?;
        let clients = format!("{}/64", ipv6_of(FIRST_CLIENT));
        let via = ipv6_of(CLIENT_RETURN).to_string();
        self.ipn(&sw, &["-6", "route", "add", &clients, "via", &via])?;
        let vip6 = format!("{}/128", ipv6_of(VIP));
        for ns in reals {
            self.ipn(ns, &["-6", "addr", "add", &vip6, "dev", "lo"])?;
        }
        Ok(())
    }

    /// The `sw` namespace as a router between the bridge and `uplink` (module doc): forwarding
    /// on, no reverse path filtering (replies of an asymmetric path cross it), ROUTER on the
    /// bridge, `uplink_addr` towards the client.
    fn router(&self, sw: &str, uplink_addr: Ipv4Addr) -> Result<()> {
        // (The effective setting is the larger of `all` and the interface's own.)
        let no_rp_filter = |ifname: &str| format!("net.ipv4.conf.{ifname}.rp_filter=0");
        self.sysctl(
            sw,
            &[
                &no_rp_filter("all"),
                &no_rp_filter(BRIDGE),
                &no_rp_filter(ROUTER_UPLINK_IF),
                "net.ipv4.ip_forward=1",
            ],
        )?;
        let router = format!("{ROUTER}/{PREFIX_LEN}");
        self.ipn(sw, &["addr", "add", &router, "dev", BRIDGE])?;
        self.addr_up(sw, ROUTER_UPLINK_IF, uplink_addr)?;
        if !self.spec.sender_offloads {
            self.ethtool_off(sw, ROUTER_UPLINK_IF, &["tx"])?;
        }
        self.keep_flows_in_order(sw, ROUTER_UPLINK_IF)
    }

    /// One arm (module doc): the client reaches the VIP through the router, which routes it
    /// to the director's DIP; the VIP lives on the director's loopback (no ARP for it is
    /// needed, the route names the DIP); the director reaches clients through the router.
    /// Several directors: each alike, and the route (if static) is ECMP over their DIPs.
    fn one_armed_paths(&self, client: &str, directors: &[String], sw: &str) -> Result<()> {
        self.router(sw, CLIENT_GATEWAY)?;
        if directors.len() > 1 {
            // Hash on ports too: the client's flows then spread over the directors.
            self.sysctl(sw, &["net.ipv4.fib_multipath_hash_policy=1"])?;
        }
        self.one_armed_routes(Family::V4, client, directors, sw)
    }

    /// The VIP's paths of [`Topology::one_armed_paths`] in one family: the directors' default
    /// route via the router (and the VIP on their loopback with a static VIP route), the
    /// router's VIP route (static: via every DIP), and the client's routes via its gateway.
    fn one_armed_routes(
        &self,
        family: Family,
        client: &str,
        directors: &[String],
        sw: &str,
    ) -> Result<()> {
        let f = family.flag();
        let vip = family.host(VIP);
        for director in directors {
            // A VIP routed by BGP is not the directors' own address: xvs does not need it, and
            // a director whose xvsd died would otherwise answer the flows the router still
            // sends it (until the withdrawal) with RSTs instead of dropping them, which the
            // clients retransmit once the router has moved them.
            if self.spec.static_vip_route {
                self.ipn(director, &[f, "addr", "add", &vip, "dev", "lo"])?;
            }
            let router = family.addr(ROUTER);
            self.ipn(director, &[f, "route", "add", "default", "via", &router])?;
        }
        if self.spec.static_vip_route {
            let dips: Vec<String> = (0..directors.len())
                .map(|i| family.addr(director_dip(i)))
                .collect();
            let mut route = vec![f, "route", "add", &vip];
            match &dips[..] {
                [dip] => route.extend(["via", dip]),
                _ => {
                    for dip in &dips {
                        route.extend(["nexthop", "via", dip]);
                    }
                }
            }
            self.ipn(sw, &route)?;
        }
        // The VIP is inside the client's own /24 (/64): a host route keeps it off the link.
        let gateway = family.addr(CLIENT_GATEWAY);
        self.ipn(client, &[f, "route", "add", &vip, "via", &gateway])?;
        self.ipn(client, &[f, "route", "add", "default", "via", &gateway])
    }

    /// Dual stack with one arm and direct return (the IPv4 layout built already): the IPv6
    /// twins of every address (each segment a /64; the client's extra addresses, FullNAT's
    /// director addresses and VIP6 on the real servers' loopback as /128s), IPv6 forwarding on
    /// the router (flows hashed by ports too with several directors), the real servers'
    /// default route via the router's twin, and [`Topology::one_armed_routes`] in IPv6.
    fn one_armed6(
        &self,
        client: &str,
        directors: &[String],
        sw: &str,
        reals: &[String],
    ) -> Result<()> {
        let mut forwarding = vec!["net.ipv6.conf.all.forwarding=1"];
        if directors.len() > 1 {
            forwarding.push("net.ipv6.fib_multipath_hash_policy=1");
        }
        self.sysctl(sw, &forwarding)?;
        self.addr6(sw, BRIDGE, ROUTER, 64)?;
        self.addr6(sw, ROUTER_UPLINK_IF, CLIENT_GATEWAY, 64)?;
        for (i, ns) in directors.iter().enumerate() {
            self.addr6(ns, INT_IF, director_dip(i), 64)?;
        }
        for addr in &self.spec.director_addrs {
            self.addr6(&directors[0], INT_IF, *addr, 128)?;
        }
        let clients = client_addrs(self.spec.client_aliases);
        self.addr6(client, HOST_IF, clients[0], 64)?;
        for addr in &clients[1..] {
            self.addr6(client, HOST_IF, *addr, 128)?;
        }
        let router = ipv6_of(ROUTER).to_string();
        for (ns, r) in reals.iter().zip(&self.spec.reals) {
            self.addr6(ns, HOST_IF, r.addr, 64)?;
            self.addr6(ns, "lo", VIP, 128)?;
            self.ipn(ns, &["-6", "route", "add", "default", "via", &router])?;
        }
        self.one_armed_routes(Family::V6, client, directors, sw)
    }

    /// `ip -6 addr add TWIN/LEN dev IFNAME nodad` in `ns`, TWIN being `addr`'s [`ipv6_of`].
    fn addr6(&self, ns: &str, ifname: &str, addr: Ipv4Addr, prefix_len: u8) -> Result<()> {
        let cidr = format!("{}/{prefix_len}", ipv6_of(addr));
        self.ipn(ns, &["-6", "addr", "add", &cidr, "dev", ifname, "nodad"])
    }

    /// Two arms with direct return (module doc): the router's second link to the client, the
    /// way replies reach it.
    fn return_link(&self, client: &str, sw: &str) -> Result<()> {
        self.veth(sw, ROUTER_UPLINK_IF, client, CLIENT_RETURN_IF)?;
        self.router(sw, ROUTER_UPLINK)?;
        // Replies arrive on the client's second link with the VIP as source.
        let no_rp_filter = |ifname: &str| format!("net.ipv4.conf.{ifname}.rp_filter=0");
        self.sysctl(
            client,
            &[&no_rp_filter("all"), &no_rp_filter(CLIENT_RETURN_IF)],
        )?;
        self.addr_up(client, CLIENT_RETURN_IF, CLIENT_RETURN)?;
        let clients = format!("{}/{PREFIX_LEN}", Ipv4Addr::new(198, 18, 0, 0));
        self.ipn(
            sw,
            &["route", "add", &clients, "via", &CLIENT_RETURN.to_string()],
        )?;
        self.keep_flows_in_order(client, CLIENT_RETURN_IF)
    }

    /// Direct return: each real server holds the VIP on its loopback and neither answers nor
    /// announces ARP for it (the LVS-DR HOWTO's settings).
    fn vip_on_reals(&self, reals: &[String]) -> Result<()> {
        let vip = format!("{VIP}/32");
        for ns in reals {
            self.sysctl(
                ns,
                &[
                    "net.ipv4.conf.all.arp_ignore=1",
                    "net.ipv4.conf.all.arp_announce=2",
                ],
            )?;
            self.ipn(ns, &["addr", "add", &vip, "dev", "lo"])?;
        }
        Ok(())
    }

    /// A veth pair made inside `a_ns` with its peer placed straight into `b_ns`: the
    /// root namespace never sees either name. Both ends get `queues` rx and tx queues.
    fn veth(&self, a_ns: &str, a_if: &str, b_ns: &str, b_if: &str) -> Result<()> {
        let q = self.spec.queues.to_string();
        let qs = ["numtxqueues", &q, "numrxqueues", &q];
        let mut args = vec!["link", "add", "name", a_if];
        args.extend(qs);
        args.extend(["type", "veth", "peer", "name", b_if, "netns", b_ns]);
        args.extend(qs);
        self.ipn(a_ns, &args)
    }

    fn addr_up(&self, ns: &str, ifname: &str, addr: Ipv4Addr) -> Result<()> {
        let cidr = format!("{addr}/{PREFIX_LEN}");
        self.ipn(ns, &["addr", "add", &cidr, "dev", ifname])?;
        self.ipn(ns, &["link", "set", ifname, "up"])
    }

    /// `ip -n NS ARGS`.
    fn ipn(&self, ns: &str, args: &[&str]) -> Result<()> {
        let mut full = vec!["-n", ns];
        full.extend_from_slice(args);
        self.setup_cmd(ip(&full))
    }

    fn sysctl(&self, ns: &str, settings: &[&str]) -> Result<()> {
        let sysctl = tool("sysctl");
        let mut c = self.command_in(ns, &sysctl.to_string_lossy());
        c.arg("-q").arg("-w").args(settings);
        self.setup_cmd(c)
    }

    /// A veth end without XDP or GRO receives through `netif_rx` into the backlog of the CPU
    /// the *sender* runs on. A TCP sender transmits from process context on one CPU and from
    /// ACK-clocked softirqs on another, so two backlogs race and the "wire" reorders the
    /// flow's segments before anything reaches the director (seen here as SACK reordering
    /// and spurious retransmits). RPS over all CPUs puts each flow on one backlog, as one
    /// physical link would. The director's own ends run XDP (NAPI) and need none of this.
    fn keep_flows_in_order(&self, ns: &str, ifname: &str) -> Result<()> {
        let mask = cpu_mask(online_cpus());
        for q in 0..self.spec.queues {
            let path = format!("/sys/class/net/{ifname}/queues/rx-{q}/rps_cpus");
            // `ip netns exec` mounts the namespace's own sysfs, where its devices live.
            let mut c = self.command_in(ns, &tool("sh").to_string_lossy());
            c.arg("-c").arg(format!("echo {mask} > {path}"));
            self.setup_cmd(c)?;
        }
        Ok(())
    }

    fn ethtool_off(&self, ns: &str, ifname: &str, features: &[&str]) -> Result<()> {
        self.ethtool(ns, ifname, features, false)
    }

    /// `ethtool -K IFNAME FEATURE on|off...` in `ns`.
    fn ethtool(&self, ns: &str, ifname: &str, features: &[&str], on: bool) -> Result<()> {
        let mut c = self.command_in(ns, &tool("ethtool").to_string_lossy());
        c.arg("-K").arg(ifname);
        for f in features {
            c.arg(f).arg(if on { "on" } else { "off" });
        }
        self.setup_cmd(c)
    }

    fn setup_cmd(&self, c: Command) -> Result<()> {
        self.run_command(c, SETUP_TIMEOUT).map(drop)
    }

    /// Runs `c` to completion within `timeout`, output captured in files of our temp dir
    /// (not pipes: no deadlock on large output, no hang when a grandchild keeps a pipe).
    fn run_command(&self, mut c: Command, timeout: Duration) -> Result<String> {
        let what = format!("{c:?}");
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let out_path = self.dir.join(format!("run-{n}.out"));
        let err_path = self.dir.join(format!("run-{n}.err"));
        let result = (|| {
            let out = File::create(&out_path).context("creating capture file")?;
            let err = File::create(&err_path).context("creating capture file")?;
            let mut child = c
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .context("spawning")?;
            let deadline = Instant::now() + timeout;
            let status = loop {
                if let Some(s) = child.try_wait().context("waiting")? {
                    break s;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("timed out after {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let stdout = String::from_utf8_lossy(&fs::read(&out_path)?).into_owned();
            if !status.success() {
                // stderr first; stdout too, since some tools (ping) explain themselves there.
                let stderr = fs::read_to_string(&err_path).unwrap_or_default();
                let tail: String = stdout.trim().chars().rev().take(500).collect();
                let tail: String = tail.chars().rev().collect();
                let tail = if tail.is_empty() {
                    tail
                } else {
                    format!(" [stdout: {tail}]")
                };
                bail!("{status}: {}{tail}", stderr.trim());
            }
            Ok(stdout)
        })();
        let _ = fs::remove_file(&out_path);
        let _ = fs::remove_file(&err_path);
        result.with_context(|| format!("running {what}"))
    }

    fn check_ns(&self, ns: &str) -> Result<()> {
        ensure!(
            self.namespaces.iter().any(|n| n == ns),
            "namespace {ns:?} does not belong to this topology"
        );
        Ok(())
    }

    /// The director's namespace (holds [`EXT_IF`] and [`INT_IF`]); director 0's when there
    /// are several.
    pub fn director_ns(&self) -> &str {
        &self.director_ns[0]
    }
    /// Number of directors ([`TopologySpec::directors`]).
    pub fn directors(&self) -> usize {
        self.director_ns.len()
    }
    /// Director `i`'s namespace; panics if `i >= directors()`, like slice indexing.
    pub fn director_ns_of(&self, i: usize) -> &str {
        &self.director_ns[i]
    }
    /// Director `i`'s DIP, 198.19.0.(152+i); panics if `i >= directors()`.
    pub fn dip_of(&self, i: usize) -> Ipv4Addr {
        assert!(i < self.directors(), "director {i} of {}", self.directors());
        director_dip(i)
    }
    /// The (first) client's namespace.
    pub fn client_ns(&self) -> &str {
        &self.client_ns
    }
    /// Real server `i`'s namespace; panics if `i >= reals().len()`, like slice indexing.
    pub fn real_ns(&self, i: usize) -> &str {
        &self.real_ns[i]
    }
    /// The bridge's namespace.
    pub fn sw_ns(&self) -> &str {
        &self.sw_ns
    }
    /// All namespaces of this topology.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }
    /// External interface, inside [`Self::director_ns`] (and every [`Self::director_ns_of`]).
    pub fn ext_if(&self) -> &str {
        if self.spec.one_armed {
            INT_IF
        } else {
            EXT_IF
        }
    }
    /// Internal interface, inside [`Self::director_ns`] (and every [`Self::director_ns_of`]).
    pub fn int_if(&self) -> &str {
        INT_IF
    }
    pub fn vip(&self) -> Ipv4Addr {
        VIP
    }
    /// The IPv6 VIP of a dual-stack topology ([`TopologySpec::dual_stack`]).
    pub fn vip6(&self) -> Ipv6Addr {
        ipv6_of(VIP)
    }
    /// Director 0's DIP.
    pub fn dip(&self) -> Ipv4Addr {
        DIP
    }
    pub fn client_addr(&self) -> Ipv4Addr {
        FIRST_CLIENT
    }
    /// Every address of the client's `eth0`: [`FIRST_CLIENT`], then its aliases
    /// ([`TopologySpec::client_aliases`]).
    pub fn client_addrs(&self) -> Vec<Ipv4Addr> {
        client_addrs(self.spec.client_aliases)
    }
    pub fn reals(&self) -> &[RealSpec] {
        &self.spec.reals
    }
    pub fn queues(&self) -> u32 {
        self.spec.queues
    }
    /// The private temporary directory (nginx configs and logs, `spawn-N.log` files).
    pub fn work_dir(&self) -> &Path {
        &self.dir
    }

    /// `ip netns exec NS PROGRAM` (arguments to be added by the caller).
    pub fn command_in(&self, ns: &str, program: &str) -> Command {
        let mut c = ip(&["netns", "exec", ns, program]);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `args` in `ns` to completion (limit [`RUN_TIMEOUT`]); returns stdout, or an
    /// error carrying stderr on a non-zero exit.
    pub fn run_in(&self, ns: &str, args: &[&str]) -> Result<String> {
        self.run_in_timeout(ns, args, RUN_TIMEOUT)
    }

    /// [`Self::run_in`] with an explicit limit; the process is killed when it is reached.
    pub fn run_in_timeout(&self, ns: &str, args: &[&str], timeout: Duration) -> Result<String> {
        self.check_ns(ns)?;
        let (prog, rest) = args.split_first().context("run_in: empty command")?;
        let mut c = self.command_in(ns, prog);
        c.args(rest);
        self.run_command(c, timeout)
    }

    /// Starts a long-running helper in `ns`, owned by the topology (SIGTERM, then SIGKILL,
    /// in Drop). Its stdout and stderr go to `work_dir()/spawn-N.log`. `ip netns exec`
    /// execs the program without forking, so the pid returned is the program's own.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) -> Result<u32> {
        self.check_ns(ns)?;
        let (prog, rest) = args.split_first().context("spawn_in: empty command")?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let log_path = self.dir.join(format!("spawn-{n}.log"));
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log2 = log.try_clone().context("duplicating log file")?;
        let mut c = self.command_in(ns, prog);
        c.args(rest).stdout(log).stderr(log2);
        let child = c
            .spawn()
            .with_context(|| format!("spawning {c:?} in {ns}"))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }

    /// Starts nginx in every real server's namespace on port 80, serving `page + "\n"` at
    /// `/` and [`big_file_bytes`] at [`BIG_FILE_PATH`], and waits (at most 5 s) until each
    /// answers `curl http://ADDR/` from inside its own namespace.
    pub fn start_web_servers(&mut self) -> Result<()> {
        ensure!(!self.web_started, "web servers already started");
        self.web_started = true;
        let mut pids = Vec::new();
        for i in 0..self.spec.reals.len() {
            self.write_web_config(i)?;
            pids.push(self.spawn_web_server(i)?);
        }
        let deadline = Instant::now() + WEB_READY_TIMEOUT;
        for (i, pid) in pids.into_iter().enumerate() {
            self.wait_web_ready(i, pid, deadline)?;
        }
        Ok(())
    }

    /// Kills real server `i`'s nginx (SIGKILL, workers included), as a crashed server: its
    /// port refuses connections from then on.
    pub fn kill_web_server(&mut self, i: usize) -> Result<()> {
        ensure!(self.web_started, "web servers not started");
        let ns = self.real_ns.get(i).context("no such real server")?.clone();
        kill_ns_pids(&ns);
        let url = format!("http://{}/", self.spec.reals[i].addr);
        let deadline = Instant::now() + WEB_READY_TIMEOUT;
        while self
            .run_in_timeout(
                &ns,
                &["curl", "-s", "--max-time", "1", &url],
                Duration::from_secs(3),
            )
            .is_ok()
        {
            ensure!(
                Instant::now() < deadline,
                "nginx of real server {i} still answers"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts real server `i`'s nginx again after [`Topology::kill_web_server`].
    pub fn restart_web_server(&mut self, i: usize) -> Result<()> {
        ensure!(self.web_started, "web servers not started");
        ensure!(i < self.spec.reals.len(), "no such real server");
        let pid = self.spawn_web_server(i)?;
        self.wait_web_ready(i, pid, Instant::now() + WEB_READY_TIMEOUT)
    }

    fn web_prefix(&self, i: usize) -> PathBuf {
        self.dir.join(format!("nginx-real{i}"))
    }

    /// Real server `i`'s nginx configuration, pages and big file.
    fn write_web_config(&self, i: usize) -> Result<()> {
        let prefix = self.web_prefix(i);
        let www = prefix.join("www");
        mkdir_public(&prefix)?;
        mkdir_public(&www)?;
        // A file, not `return 200 "..."`: the page needs no escaping for nginx.
        let page = format!("{}\n", self.spec.reals[i].page);
        write_public(&www.join("index.html"), page.as_bytes())?;
        write_public(
            &www.join(BIG_FILE_PATH.trim_start_matches('/')),
            &big_file_bytes(),
        )?;
        let p = prefix.display();
        // Foreground (`daemon off`) so the spawned pid is the master; all paths are
        // in our prefix so instances never share a pid file, log or temp dir. Keep-alive
        // connections last (nginx closes one after 1000 requests by default): a steady load
        // then creates no new connections, whose TIME_WAIT entries would grow for 2 minutes.
        let listen6 = match self.spec.dual_stack {
            true => "listen [::]:80; ",
            false => "",
        };
        let conf = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             pid {p}/nginx.pid;\n\
             error_log {p}/error.log warn;\n\
             worker_rlimit_nofile 8192;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             \x20 access_log off;\n\
             \x20 keepalive_requests 1000000000; keepalive_timeout 600s;\n\
             \x20 client_body_temp_path {p}/body;\n\
             \x20 proxy_temp_path {p}/proxy;\n\
             \x20 fastcgi_temp_path {p}/fastcgi;\n\
             \x20 uwsgi_temp_path {p}/uwsgi;\n\
             \x20 scgi_temp_path {p}/scgi;\n\
             \x20 default_type application/octet-stream;\n\
             \x20 server {{\n\
             \x20   listen 80; {listen6}root {p}/www; index index.html;\n\
             \x20   location {SLOW_PREFIX}/ {{ alias {p}/www/; limit_rate {SLOW_RATE}; }}\n\
             \x20   location {LONG_PREFIX}/ {{ alias {p}/www/; limit_rate {LONG_RATE}; }}\n\
             \x20   location = {PEER_PATH} {{ default_type text/plain; \
             return 200 \"$remote_addr:$remote_port\\n\"; }}\n\
             \x20 }}\n\
             }}\n"
        );
        write_public(&prefix.join("nginx.conf"), conf.as_bytes())
    }

    fn spawn_web_server(&mut self, i: usize) -> Result<u32> {
        let nginx = tool("nginx");
        ensure!(
            nginx.exists(),
            "nginx not found (Debian package nginx-light)"
        );
        let prefix = self.web_prefix(i);
        let conf = prefix.join("nginx.conf");
        let p = prefix.display();
        let ns = self.real_ns[i].clone();
        let args = [
            &*nginx.to_string_lossy(),
            "-p",
            &format!("{p}/"),
            "-c",
            &*conf.to_string_lossy(),
            "-e",
            &format!("{p}/error.log"),
        ];
        self.spawn_in(&ns, &args)
    }

    fn wait_web_ready(&mut self, i: usize, pid: u32, deadline: Instant) -> Result<()> {
        let (ns, r) = (self.real_ns[i].clone(), self.spec.reals[i].clone());
        let url = format!("http://{}/", r.addr);
        let want = format!("{}\n", r.page);
        loop {
            let got = self.run_in_timeout(
                &ns,
                &["curl", "-s", "--max-time", "1", &url],
                Duration::from_secs(3),
            );
            if matches!(&got, Ok(body) if *body == want) {
                return Ok(());
            }
            let error_log = self.web_prefix(i).join("error.log");
            let log = || fs::read_to_string(&error_log).unwrap_or_default();
            let exited = self
                .children
                .iter_mut()
                .find(|c| c.id() == pid)
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                bail!("nginx for {} exited ({status}): {}", r.addr, log().trim());
            }
            if Instant::now() >= deadline {
                bail!(
                    "nginx for {} not ready after {WEB_READY_TIMEOUT:?} (last: {got:?}): {}",
                    r.addr,
                    log().trim()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM every spawned process, give them [`TERM_GRACE`] together, SIGKILL the rest.
    fn stop_children(&mut self) {
        for c in &mut self.children {
            if let Ok(None) = c.try_wait() {
                // SAFETY: kill(2) only sends a signal. The child is not reaped yet
                // (try_wait said it is running), so its pid cannot have been reused.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline
            && self
                .children
                .iter_mut()
                .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        for mut c in self.children.drain(..) {
            if let Ok(None) = c.try_wait() {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.stop_children();
        for ns in self.namespaces.iter().rev() {
            delete_ns(ns);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names from `ip netns list` (each line is "NAME" or "NAME (id: N)").
    fn netns_list() -> Vec<String> {
        let out = ip(&["netns", "list"]).output().expect("ip netns list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    }

    fn ping(t: &Topology, ns: &str, to: impl Into<std::net::IpAddr>) -> Result<String> {
        t.run_in(ns, &["ping", "-c1", "-W1", &to.into().to_string()])
    }

    #[test]
    fn ipv6_twins_read_like_their_ipv4_addresses() {
        let v6 = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        assert_eq!(ipv6_of(VIP), v6("2001:2::129"));
        assert_eq!(ipv6_of(FIRST_CLIENT), v6("2001:2::201"));
        assert_eq!(ipv6_of(DIP), v6("2001:2:0:1::152"));
        assert_eq!(ipv6_of(Ipv4Addr::new(198, 19, 0, 7)), v6("2001:2:0:1::7"));
        assert_eq!(ipv6_of(CLIENT_RETURN), v6("2001:2:0:2::201"));
        assert_eq!(ipv6_of(Ipv4Addr::new(198, 19, 1, 1)), v6("2001:2:0:3::1"));
    }

    #[test]
    fn dual_stack_topology() {
        if skip_unless_root("dual_stack_topology") {
            return;
        }
        let spec = TopologySpec {
            prefix: "xvstds".into(),
            ..TopologySpec::dual_stack()
        };
        let bad = TopologySpec {
            one_armed: true,
            ..spec.clone()
        };
        assert!(Topology::build(&bad).is_err(), "dual stack with one arm");
        let mut t = Topology::build(&spec).expect("build");
        ping(&t, t.client_ns(), t.vip6()).expect("client pings VIP6");
        ping(&t, t.client_ns(), VIP).expect("client pings VIP");
        let real0 = ipv6_of(t.reals()[0].addr);
        ping(&t, t.real_ns(0), ipv6_of(DIP)).expect("real0 pings DIP6");
        ping(&t, t.real_ns(1), real0).expect("real1 pings real0 over the bridge");
        // No kernel forwarding of IPv6 on the director either.
        assert!(ping(&t, t.client_ns(), real0).is_err());
        t.start_web_servers().expect("web servers");
        let url = format!("http://[{real0}]/");
        let body = t
            .run_in(t.real_ns(0), &["curl", "-s", "--max-time", "2", &url])
            .expect("curl over IPv6");
        assert_eq!(body, format!("{}\n", t.reals()[0].page));
    }

    fn skip_unless_root(test: &str) -> bool {
        if !is_root() {
            eprintln!("skipping {test}: needs root");
        }
        !is_root()
    }

    #[test]
    fn cpu_masks_are_sysfs_bitmaps() {
        assert_eq!(cpu_mask(1), "00000001");
        assert_eq!(cpu_mask(2), "00000003");
        assert_eq!(cpu_mask(32), "ffffffff");
        assert_eq!(cpu_mask(40), "000000ff,ffffffff");
    }

    #[test]
    fn names_are_unique_and_parse_back() {
        let a = unique_base("xvst");
        let b = unique_base("xvst");
        assert_ne!(a, b);
        let pid = std::process::id();
        assert!(a.starts_with(&format!("xvst{pid}_")));
        assert_eq!(owner_pid("xvst", &format!("{a}-director")), Some(pid));
        assert_eq!(owner_pid("xvst", "xvst12_3-real0"), Some(12));
        assert_eq!(owner_pid("xvs", "xvst12_3-real0"), None);
        assert_eq!(owner_pid("xvst", "xvst12-real0"), None);
        assert_eq!(owner_pid("xvst", "other"), None);
    }

    #[test]
    fn seed_spec() {
        let s = TopologySpec::seed();
        assert_eq!(s.queues, 1);
        assert_eq!(s.clients, 1);
        assert_eq!(s.reals.len(), 2);
        assert_eq!(s.reals[0].addr, Ipv4Addr::new(198, 19, 0, 148));
        assert_eq!(s.reals[0].page, "198.19.0.148 is www.shuyan.com");
        assert_eq!(s.reals[1].addr, Ipv4Addr::new(198, 19, 0, 137));
        assert_eq!(s.reals[1].page, "198.19.0.137");
        assert_eq!(VIP, Ipv4Addr::new(198, 18, 0, 129));
        assert_eq!(DIP, Ipv4Addr::new(198, 19, 0, 152));
        assert_eq!(FIRST_CLIENT, Ipv4Addr::new(198, 18, 0, 201));
        s.validate().expect("seed is valid");
    }

    #[test]
    fn validation_rejects_foreign_addresses() {
        let mut s = TopologySpec::seed();
        s.reals[0].addr = Ipv4Addr::new(10, 0, 0, 1);
        assert!(s.validate().is_err());
        let mut s = TopologySpec::seed();
        s.reals[1].addr = DIP;
        assert!(s.validate().is_err());
        let mut s = TopologySpec::seed();
        s.reals[1].addr = s.reals[0].addr;
        assert!(s.validate().is_err());
        let mut s = TopologySpec::seed();
        s.prefix = "x/y".into();
        assert!(s.validate().is_err());
        let mut s = TopologySpec::seed();
        s.queues = 0;
        assert!(s.validate().is_err());
    }

    #[test]
    fn validation_of_directors() {
        let mut s = TopologySpec::one_armed(true);
        s.directors = 2;
        s.validate().expect("two one-armed DR directors");
        for (one_armed, direct_return) in [(false, false), (false, true), (true, false)] {
            let s = TopologySpec {
                one_armed,
                direct_return,
                directors: 2,
                ..TopologySpec::seed()
            };
            let e = s
                .validate()
                .expect_err("several directors need one arm with DR");
            assert!(format!("{e}").contains("one_armed"), "{e}");
        }
        for directors in [0, MAX_DIRECTORS + 1] {
            let s = TopologySpec {
                directors,
                ..TopologySpec::one_armed(true)
            };
            assert!(s.validate().is_err(), "{directors} directors");
        }
        // A real server on director 2's DIP: fine with 2 directors, not with 3.
        let mut s = TopologySpec::scale_out(2);
        s.reals[0].addr = Ipv4Addr::new(198, 19, 0, 154);
        s.validate().expect("no collision with two directors");
        s.directors = 3;
        assert!(s.validate().is_err());
        let mut s = TopologySpec::scale_out(3);
        s.director_addrs = vec![Ipv4Addr::new(198, 19, 0, 153)];
        assert!(s.validate().is_err(), "director_addrs on director 1's DIP");
        // No VIP route only means something with one arm.
        let s = TopologySpec {
            static_vip_route: false,
            ..TopologySpec::seed()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn scale_out_spec() {
        let s = TopologySpec::scale_out(3);
        s.validate().expect("scale_out(3) is valid");
        assert_eq!(s.directors, 3);
        assert!(s.one_armed && s.direct_return && !s.static_vip_route);
        let reals: Vec<_> = s.reals.iter().map(|r| (r.addr, r.page.as_str())).collect();
        assert_eq!(
            reals,
            [
                (Ipv4Addr::new(198, 19, 0, 148), "198.19.0.148"),
                (Ipv4Addr::new(198, 19, 0, 137), "198.19.0.137"),
                (Ipv4Addr::new(198, 19, 0, 140), "198.19.0.140"),
            ]
        );
        let addrs = client_addrs(s.client_aliases);
        assert_eq!(addrs.len(), 30);
        assert_eq!(addrs[0], FIRST_CLIENT);
        assert_eq!(addrs[29], Ipv4Addr::new(198, 18, 0, 230));
        TopologySpec::scale_out(MAX_DIRECTORS)
            .validate()
            .expect("the most directors");
        let dual = TopologySpec {
            dual_stack: true,
            ..TopologySpec::scale_out(3)
        };
        dual.validate().expect("a dual-stack scale-out rig");
        let e = TopologySpec {
            direct_return: false,
            directors: 1,
            ..dual
        }
        .validate()
        .expect_err("one arm in both families needs direct return");
        assert!(format!("{e}").contains("direct return"), "{e}");
        // Defaults stay those of a single director.
        let seed = TopologySpec::seed();
        assert_eq!(
            (seed.directors, seed.static_vip_route, seed.client_aliases),
            (1, true, 0)
        );
        assert_eq!(director_dip(0), DIP);
        assert_eq!(director_dip(7), Ipv4Addr::new(198, 19, 0, 159));
        assert_eq!(switch_director_port(0), "p-dir");
        assert_eq!(switch_director_port(2), "p-dir2");
    }

    #[test]
    fn validation_of_client_aliases() {
        let mut s = TopologySpec::seed();
        s.client_aliases = MAX_CLIENT_ALIASES;
        s.validate().expect("the most aliases");
        assert_eq!(
            *client_addrs(MAX_CLIENT_ALIASES).last().unwrap(),
            Ipv4Addr::new(198, 18, 0, 251)
        );
        s.client_aliases = MAX_CLIENT_ALIASES + 1;
        assert!(s.validate().is_err());
    }

    #[test]
    fn big_file_is_deterministic() {
        let a = big_file_bytes();
        assert_eq!(a.len(), BIG_FILE_LEN);
        assert_eq!(a, big_file_bytes());
        assert_ne!(a[..8], a[8..16]);
    }

    #[test]
    fn seed_topology_with_two_queues() {
        if skip_unless_root("seed_topology_with_two_queues") {
            return;
        }
        let spec = TopologySpec {
            prefix: "xvst".into(),
            queues: 2,
            ..TopologySpec::seed()
        };
        let mut t = Topology::build(&spec).expect("build");
        let names = t.namespaces().to_vec();
        assert_eq!(names.len(), 5);

        let mut ends = vec![
            (t.client_ns().to_string(), HOST_IF.to_string()),
            (t.director_ns().to_string(), EXT_IF.to_string()),
            (t.director_ns().to_string(), INT_IF.to_string()),
            (t.sw_ns().to_string(), SWITCH_DIRECTOR_PORT.to_string()),
        ];
        for i in 0..t.reals().len() {
            ends.push((t.real_ns(i).to_string(), HOST_IF.to_string()));
            ends.push((t.sw_ns().to_string(), format!("p-r{i}")));
        }
        for (ns, ifname) in &ends {
            let q = t
                .run_in(ns, &["ls", &format!("/sys/class/net/{ifname}/queues")])
                .unwrap_or_else(|e| panic!("{ns}/{ifname}: {e:#}"));
            let q: Vec<&str> = q.split_whitespace().collect();
            assert_eq!(q, ["rx-0", "rx-1", "tx-0", "tx-1"], "{ns}/{ifname}");
        }
        let fwd = t
            .run_in(t.director_ns(), &["cat", "/proc/sys/net/ipv4/ip_forward"])
            .expect("read ip_forward");
        assert_eq!(fwd.trim(), "0");

        ping(&t, t.client_ns(), VIP).expect("client pings VIP");
        ping(&t, t.real_ns(0), DIP).expect("real0 pings DIP");
        ping(&t, t.real_ns(1), t.reals()[0].addr).expect("real1 pings real0 over the bridge");

        t.start_web_servers().expect("web servers");
        for i in 0..t.reals().len() {
            let r = &t.reals()[i];
            let url = format!("http://{}/", r.addr);
            let body = t
                .run_in(t.real_ns(i), &["curl", "-s", "--max-time", "2", &url])
                .expect("local curl");
            assert_eq!(body, format!("{}\n", r.page));
        }
        // The big file arrives intact (length and content via sha256 of both sides).
        let url = format!("http://{}{BIG_FILE_PATH}", t.reals()[0].addr);
        let got = t
            .run_in(
                t.real_ns(0),
                &[
                    "sh",
                    "-c",
                    &format!("curl -s --max-time 5 {url} | sha256sum"),
                ],
            )
            .expect("curl big file");
        let local = t.work_dir().join("expect.bin");
        fs::write(&local, big_file_bytes()).expect("write");
        let want = t
            .run_in(t.client_ns(), &["sha256sum", &local.to_string_lossy()])
            .expect("sha256sum");
        assert_eq!(
            got.split_whitespace().next(),
            want.split_whitespace().next()
        );

        // No kernel forwarding on the director: the client cannot reach a real server.
        let real = t.reals()[0].addr.to_string();
        assert!(ping(&t, t.client_ns(), t.reals()[0].addr).is_err());
        assert!(t
            .run_in(
                t.client_ns(),
                &["curl", "-s", "--max-time", "2", &format!("http://{real}/")]
            )
            .is_err());

        let dir = t.work_dir().to_path_buf();
        drop(t);
        let list = netns_list();
        for n in &names {
            assert!(!list.contains(n), "{n} left behind");
        }
        assert!(!dir.exists());
    }

    #[test]
    fn scale_out_topology() {
        if skip_unless_root("scale_out_topology") {
            return;
        }
        let spec = TopologySpec {
            prefix: "xvstm".into(),
            ..TopologySpec::scale_out(3)
        };
        let mut t = Topology::build(&spec).expect("build");
        let names = t.namespaces().to_vec();
        assert_eq!(names.len(), 1 + 3 + 1 + 3);
        assert_eq!(t.directors(), 3);
        assert_eq!(t.director_ns_of(0), t.director_ns());
        assert_eq!(t.dip_of(0), t.dip());
        for i in 0..t.directors() {
            let ns = t.director_ns_of(i);
            assert!(names.iter().any(|n| n == ns), "{ns}");
            assert_eq!(t.dip_of(i), Ipv4Addr::new(198, 19, 0, 152 + i as u8));
            ping(&t, t.sw_ns(), t.dip_of(i))
                .unwrap_or_else(|e| panic!("sw pings director {i}'s DIP: {e:#}"));
            let lo = t
                .run_in(ns, &["ip", "-4", "addr", "show", "lo"])
                .expect("ip addr");
            // Routed by BGP, the VIP is not the directors' own (see one_armed_paths).
            assert!(!lo.contains(&format!("{VIP}/32")), "director {i}: {lo}");
        }
        assert!(t.director_ns_of(1).ends_with("-director1"));
        // No VIP route on the router (BGP's job), and an L4 ECMP hash.
        let vip = VIP.to_string();
        let route = t
            .run_in(t.sw_ns(), &["ip", "route", "show", &vip])
            .expect("ip route");
        assert_eq!(route.trim(), "", "the router has a VIP route");
        let policy = t
            .run_in(
                t.sw_ns(),
                &["cat", "/proc/sys/net/ipv4/fib_multipath_hash_policy"],
            )
            .expect("read fib_multipath_hash_policy");
        assert_eq!(policy.trim(), "1");

        let addrs = t.client_addrs();
        assert_eq!(addrs.len(), 30);
        let shown = t
            .run_in(t.client_ns(), &["ip", "-4", "addr", "show", HOST_IF])
            .expect("ip addr");
        let shown: Vec<Ipv4Addr> = shown
            .lines()
            .filter_map(|l| l.trim().strip_prefix("inet "))
            .filter_map(|l| l.split(['/', ' ']).next()?.parse().ok())
            .collect();
        for a in &addrs {
            assert!(
                shown.contains(a),
                "{a} not on the client's {HOST_IF}: {shown:?}"
            );
        }

        // The real servers also serve LONG_PREFIX, rate-limited: 1 s gets far less than 1 MiB.
        t.start_web_servers().expect("web servers");
        let real = t.reals()[2].clone();
        let page = t
            .run_in(
                t.real_ns(2),
                &[
                    "curl",
                    "-s",
                    "--max-time",
                    "2",
                    &format!("http://{}{LONG_PREFIX}/", real.addr),
                ],
            )
            .expect("curl long page");
        assert_eq!(page, format!("{}\n", real.page));
        let got = t
            .run_in(
                t.real_ns(2),
                &[
                    "sh",
                    "-c",
                    &format!(
                        "curl -s -o /dev/null --max-time 1 -w %{{size_download}} \
                         http://{}{LONG_PREFIX}{BIG_FILE_PATH}; true",
                        real.addr
                    ),
                ],
            )
            .expect("curl long big file");
        let got: usize = got.trim().parse().expect("size_download");
        assert!(
            got > 0 && got < 4 * LONG_RATE as usize,
            "{got} bytes of {LONG_PREFIX}{BIG_FILE_PATH} in 1 s"
        );
        drop(t);
        let list = netns_list();
        for n in &names {
            assert!(!list.contains(n), "{n} left behind");
        }

        // A static VIP route with several directors is ECMP over their DIPs.
        let t = Topology::build(&TopologySpec {
            static_vip_route: true,
            ..spec
        })
        .expect("build with a static route");
        let route = t
            .run_in(t.sw_ns(), &["ip", "route", "show", &vip])
            .expect("ip route");
        for i in 0..t.directors() {
            assert!(
                route.contains(&format!("nexthop via {}", t.dip_of(i))),
                "{route}"
            );
        }
        ping(&t, t.client_ns(), VIP).expect("client pings the VIP through ECMP");
    }

    /// Scale-out in both families: the IPv6 twins of the IPv4 layout, IPv6 forwarding on the
    /// router with an L4 hash, no IPv6 VIP route there (BGP's job) unless static.
    #[test]
    fn scale_out_dual_stack_topology() {
        if skip_unless_root("scale_out_dual_stack_topology") {
            return;
        }
        let spec = TopologySpec {
            prefix: "xvstm6".into(),
            dual_stack: true,
            ..TopologySpec::scale_out(2)
        };
        let t = Topology::build(&spec).expect("build");
        let vip6 = format!("{}/128", t.vip6());
        let route = |t: &Topology| {
            t.run_in(t.sw_ns(), &["ip", "-6", "route", "show", &vip6])
                .expect("ip route")
        };
        assert_eq!(route(&t).trim(), "", "the router has an IPv6 VIP route");
        let sysctl = |t: &Topology, key: &str| {
            let path = format!("/proc/sys/net/ipv6/{key}");
            t.run_in(t.sw_ns(), &["cat", &path]).expect("read sysctl")
        };
        assert_eq!(sysctl(&t, "fib_multipath_hash_policy").trim(), "1");
        assert_eq!(sysctl(&t, "conf/all/forwarding").trim(), "1");
        for i in 0..t.directors() {
            let dip6 = ipv6_of(t.dip_of(i));
            ping(&t, t.sw_ns(), dip6)
                .unwrap_or_else(|e| panic!("sw pings director {i}'s DIP6: {e:#}"));
            let lo = t
                .run_in(t.director_ns_of(i), &["ip", "-6", "addr", "show", "lo"])
                .expect("ip addr");
            assert!(!lo.contains(&vip6), "director {i}: {lo}");
            let default = t
                .run_in(
                    t.director_ns_of(i),
                    &["ip", "-6", "route", "show", "default"],
                )
                .expect("ip route");
            assert!(default.contains("via 2001:2:0:1::1 "), "{default}");
        }
        // Through the router, from the first and the last client address, to a real server
        // and back (its default route is the router's twin); VIP6 on each real's loopback.
        let clients = t.client_addrs();
        let real0 = ipv6_of(t.reals()[0].addr);
        for from in [clients[0], clients[29]] {
            let from = ipv6_of(from).to_string();
            t.run_in(
                t.client_ns(),
                &["ping", "-c1", "-W1", "-I", &from, &real0.to_string()],
            )
            .unwrap_or_else(|e| panic!("{from} pings real0 through the router: {e:#}"));
        }
        for i in 0..t.reals().len() {
            let lo = t
                .run_in(t.real_ns(i), &["ip", "-6", "addr", "show", "lo"])
                .expect("ip addr");
            assert!(lo.contains(&vip6), "real {i}: {lo}");
        }
        // The IPv4 layout is untouched.
        ping(&t, t.client_ns(), t.reals()[0].addr).expect("IPv4 through the router");
        drop(t);

        // A static IPv6 VIP route is ECMP over the DIP6s, and each director answers for VIP6.
        let t = Topology::build(&TopologySpec {
            static_vip_route: true,
            ..spec
        })
        .expect("build with a static route");
        let shown = route(&t);
        for i in 0..t.directors() {
            let hop = format!("nexthop via {} ", ipv6_of(t.dip_of(i)));
            assert!(shown.contains(&hop), "{shown}");
        }
        ping(&t, t.client_ns(), t.vip6()).expect("client pings VIP6 through ECMP");
    }

    #[test]
    fn drop_cleans_up_during_panic() {
        if skip_unless_root("drop_cleans_up_during_panic") {
            return;
        }
        let mut names = Vec::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let spec = TopologySpec {
                prefix: "xvstp".into(),
                ..TopologySpec::seed()
            };
            let mut t = Topology::build(&spec).expect("build");
            names = t.namespaces().to_vec();
            let ns = t.real_ns(0).to_string();
            t.spawn_in(&ns, &["sleep", "30"]).expect("spawn");
            panic!("boom");
        }));
        assert!(r.is_err());
        assert_eq!(names.len(), 5);
        let list = netns_list();
        for n in &names {
            assert!(!list.contains(n), "{n} left behind");
        }
    }

    #[test]
    fn cleanup_stale_removes_dead_owners_only() {
        if skip_unless_root("cleanup_stale_removes_dead_owners_only") {
            return;
        }
        // A pid that just died (reaped): its namespaces are stale; ours are not.
        let mut child = Command::new("true").spawn().expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait");
        let stale = format!("xvsts{dead}_0-client");
        let live = format!("{}-client", unique_base("xvsts"));
        for n in [&stale, &live] {
            let st = ip(&["netns", "add", n]).status().expect("ip netns add");
            assert!(st.success());
        }
        let stale_dir = std::env::temp_dir().join(format!("xvsts{dead}_0"));
        fs::create_dir_all(&stale_dir).expect("mkdir");
        assert_eq!(cleanup_stale("xvsts"), 1);
        assert!(!stale_dir.exists());
        let list = netns_list();
        assert!(!list.contains(&stale));
        assert!(list.contains(&live));
        delete_ns(&live);
        assert!(!netns_list().contains(&live));
    }

    #[test]
    fn refuses_foreign_namespace() {
        if skip_unless_root("refuses_foreign_namespace") {
            return;
        }
        let t = Topology::build(&TopologySpec {
            prefix: "xvstf".into(),
            reals: vec![],
            ..TopologySpec::seed()
        })
        .expect("build");
        assert!(t.run_in("somebody-else", &["true"]).is_err());
        assert!(t.run_in(t.client_ns(), &["true"]).is_ok());
    }
}
