//! VIP announcements for scale-out: several directors behind a router's ECMP, each announcing
//! over BGP the VIPs it can serve (docs/scale-out.md).
//!
//! xvsd speaks no BGP itself: a BGP daemon the operator runs does (bird2; the only one
//! supported today). xvsd tells it what to announce through the kernel. Each VIP it can serve is
//! a host route `VIP/32 dev xvs-vips` (IPv6: `VIP6/128 dev xvs-vips`) in a routing table of its
//! own (`--announce-table`, the same number in both families), which bird's
//! `protocol kernel { kernel table N; learn; }` (one per family) imports and its `protocol bgp`
//! exports.
//! The device is a TUN interface created without `TUNSETPERSIST`: it lives exactly as long as
//! xvsd's file descriptor, so when xvsd exits, however it exits (SIGKILL, a crash, the OOM
//! killer), the kernel destroys it and its routes, bird sees the interface vanish and withdraws
//! every VIP at once. No timer and no protocol of ours decide that xvsd is dead.
//!
//! A VIP is servable while one of its services has at least `--announce-min-servers` real
//! servers that can take new connections (weight above 0, not down by its health check); xvsd
//! running with its XDP programs attached is implied: both are owned by the process too.
//! Nothing is ever added to the tables that forward packets: no rule selects the announcement
//! table, and the device carries no address (not even an IPv6 link-local one).

use anyhow::{bail, ensure, Context};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufRead, BufReader};
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use xvs_dataplane::neigh::Netlink;

/// How long the routing daemon's control socket gets to greet us.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);

/// The default `--announce-table`.
pub const DEFAULT_TABLE: u32 = 100;
/// The default `--announce-device`.
pub const DEFAULT_DEVICE: &str = "xvs-vips";

/// The routing daemon that announces the VIPs, and where its control socket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingDaemon {
    /// bird2, by its control socket (`bird -s PATH`, birdc's socket).
    Bird(PathBuf),
}

impl FromStr for RoutingDaemon {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("bird", path)) if !path.is_empty() => Ok(RoutingDaemon::Bird(path.into())),
            Some(("bird", _)) => Err("bird: needs the path of bird's control socket".into()),
            _ => Err(format!(
                "{s:?}: expected bird:SOCKET (bird2's control socket, e.g. bird:/run/bird/bird.ctl)"
            )),
        }
    }
}

impl fmt::Display for RoutingDaemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutingDaemon::Bird(path) => write!(f, "bird:{}", path.display()),
        }
    }
}

impl RoutingDaemon {
    /// Connects to the daemon's control socket and reads its greeting: the daemon runs and
    /// answers. Returns the greeting (e.g. "BIRD 2.0.12 ready.").
    pub fn check(&self) -> anyhow::Result<String> {
        let RoutingDaemon::Bird(path) = self;
        let hint = || {
            format!(
                "bird's control socket {} (is bird running with `-s {}`?)",
                path.display(),
                path.display()
            )
        };
        let stream = UnixStream::connect(path).with_context(hint)?;
        stream.set_read_timeout(Some(DAEMON_TIMEOUT))?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .with_context(hint)?;
        // birdc's protocol: "0001 BIRD 2.0.12 ready." (code 0001: the greeting).
        match line.trim_end().strip_prefix("0001 ") {
            Some(greeting) => Ok(greeting.to_string()),
            None => bail!("{}: not bird's greeting: {:?}", hint(), line.trim_end()),
        }
    }
}

/// `xvsd --announce ...`: what to announce, and through what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceOptions {
    pub daemon: RoutingDaemon,
    /// The routing table the daemon learns VIP routes from (not main, local or default).
    pub table: u32,
    /// The TUN device the routes point at.
    pub device: String,
    /// The VIPs to announce (either family); empty: every configured VIP.
    pub vips: Vec<IpAddr>,
    /// Real servers a service needs available for its VIP to be announced.
    pub min_servers: u32,
}

impl AnnounceOptions {
    pub fn new(daemon: RoutingDaemon) -> Self {
        AnnounceOptions {
            daemon,
            table: DEFAULT_TABLE,
            device: DEFAULT_DEVICE.to_string(),
            vips: Vec::new(),
            min_servers: 1,
        }
    }

    /// Checks what can be checked without a configuration.
    fn validate(&self) -> anyhow::Result<()> {
        // 0 is "unspecified"; 253-255 are the default, main and local tables, which forward.
        ensure!(
            !matches!(self.table, 0 | 253..=255),
            "--announce-table {}: needs a table of its own (1-252 or above 255), not one the kernel routes by",
            self.table
        );
        ensure!(
            !self.device.is_empty()
                && self.device.len() < libc::IFNAMSIZ
                && !self.device.contains(['/', ' ', ':']),
            "--announce-device {:?}: not an interface name (1-15 characters, no '/', ':' or space)",
            self.device
        );
        ensure!(
            self.min_servers >= 1,
            "--announce-min-servers must be at least 1"
        );
        Ok(())
    }

    /// An announced VIP that the configuration in `configured` lacks is an error naming it.
    pub fn check_vips(&self, configured: &BTreeSet<IpAddr>) -> anyhow::Result<()> {
        let missing: Vec<String> = self
            .vips
            .iter()
            .filter(|v| !configured.contains(v))
            .map(|v| v.to_string())
            .collect();
        ensure!(
            missing.is_empty(),
            "--announce-vip {}: no virtual service has this address",
            missing.join(", ")
        );
        Ok(())
    }
}

/// A change of what is announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    pub vip: IpAddr,
    pub announced: bool,
}

/// Owns the announcement device and routes; dropping it (or the process dying) withdraws
/// everything.
pub struct Announcer {
    options: AnnounceOptions,
    device: TunDevice,
    netlink: Netlink,
    announced: BTreeSet<IpAddr>,
    /// VIPs whose last change the kernel refused: their errors are reported once.
    failing: BTreeSet<IpAddr>,
}

impl Announcer {
    /// Checks the options and the daemon, then creates the device, up and without routes.
    pub fn start(options: AnnounceOptions) -> anyhow::Result<Self> {
        options.validate()?;
        let greeting = options.daemon.check().context("--announce")?;
        let device = TunDevice::create(&options.device)
            .with_context(|| format!("--announce-device {}: creating it", options.device))?;
        let mut netlink = Netlink::open().context("opening rtnetlink")?;
        // No link-local address either: the device stays without any address, in both
        // families, and the kernel sends nothing (MLD, router solicitations) into it.
        netlink
            .set_no_ipv6_link_local(device.ifindex)
            .with_context(|| format!("{}: turning IPv6 address generation off", options.device))?;
        netlink
            .set_link_up(device.ifindex)
            .with_context(|| format!("setting {} up", options.device))?;
        eprintln!(
            "xvsd: announcing servable VIPs as routes in table {} via {} for {} ({greeting})",
            options.table, options.device, options.daemon
        );
        Ok(Announcer {
            options,
            device,
            netlink,
            announced: BTreeSet::new(),
            failing: BTreeSet::new(),
        })
    }

    pub fn options(&self) -> &AnnounceOptions {
        &self.options
    }

    /// What is announced now.
    pub fn announced(&self) -> &BTreeSet<IpAddr> {
        &self.announced
    }

    /// Makes the announced VIPs those of `servable` that the options name (all of them
    /// without `--announce-vip`); returns the changes, and the errors of VIPs the kernel
    /// refused (each reported once until it succeeds; every call tries again).
    pub fn update(
        &mut self,
        servable: &BTreeSet<IpAddr>,
    ) -> (Vec<Announcement>, Vec<anyhow::Error>) {
        let wanted: BTreeSet<IpAddr> = servable
            .iter()
            .filter(|v| self.options.vips.is_empty() || self.options.vips.contains(v))
            .copied()
            .collect();
        let withdraw = self.announced.difference(&wanted).map(|&vip| (vip, false));
        let announce = wanted.difference(&self.announced).map(|&vip| (vip, true));
        let todo: Vec<(IpAddr, bool)> = withdraw.chain(announce).collect();
        let (table, ifindex) = (self.options.table, self.device.ifindex);
        let mut changes = Vec::new();
        let mut errors = Vec::new();
        for (vip, announced) in todo {
            let done = match announced {
                true => self.netlink.replace_host_route(table, vip, ifindex),
                false => self.netlink.delete_host_route(table, vip, ifindex),
            };
            match done {
                Ok(()) => {
                    match announced {
                        true => self.announced.insert(vip),
                        false => self.announced.remove(&vip),
                    };
                    self.failing.remove(&vip);
                    changes.push(Announcement { vip, announced });
                }
                Err(e) if self.failing.insert(vip) => {
                    let what = if announced {
                        "announcing"
                    } else {
                        "withdrawing"
                    };
                    errors.push(anyhow::Error::new(e).context(format!("{what} {vip}")));
                }
                Err(_) => {}
            }
        }
        (changes, errors)
    }
}

/// A TUN interface that exists while this value (its file descriptor) does.
struct TunDevice {
    _fd: OwnedFd,
    ifindex: u32,
}

impl TunDevice {
    /// Creates `name`; an existing interface of that name is an error (another xvsd's, or
    /// an operator's), never taken over.
    fn create(name: &str) -> io::Result<Self> {
        // SAFETY: open(2) of a constant C string; the result is checked.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain data; all zeroes is valid.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // IFF_TUN_EXCL: fail with EBUSY rather than attach to an existing device.
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_TUN_EXCL) as _;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which lives across the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EBUSY) | Some(libc::EEXIST) => io::Error::new(
                    e.kind(),
                    format!("an interface {name} already exists (is another xvsd announcing?)"),
                ),
                _ => e,
            });
        }
        let cname = std::ffi::CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TunDevice { _fd: fd, ifindex })
    }
}

/// The VIPs the services of `commands` (a configuration file's) add.
pub fn vips_of(commands: &[crate::protocol::Command]) -> BTreeSet<IpAddr> {
    use crate::protocol::Command;
    let mut vips = BTreeSet::new();
    for c in commands {
        match c {
            Command::AddService { service, .. } => {
                vips.insert(service.addr);
            }
            Command::Batch { commands } | Command::Replace { commands } => {
                vips.extend(vips_of(commands))
            }
            _ => {}
        }
    }
    vips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_is_named_with_its_socket() {
        assert_eq!(
            "bird:/run/bird/bird.ctl".parse::<RoutingDaemon>(),
            Ok(RoutingDaemon::Bird("/run/bird/bird.ctl".into()))
        );
        for bad in ["bird:", "gobgp:/x", "/run/bird/bird.ctl", ""] {
            assert!(bad.parse::<RoutingDaemon>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_daemon_socket_is_an_error_naming_it() {
        let daemon = RoutingDaemon::Bird("/nonexistent/xvs-test/bird.ctl".into());
        let e = format!("{:#}", daemon.check().unwrap_err());
        assert!(e.contains("/nonexistent/xvs-test/bird.ctl"), "{e}");
    }

    #[test]
    fn a_socket_that_is_not_bird_is_an_error() {
        let dir = std::env::temp_dir().join(format!("xvs-announce-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-bird.sock");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"hello\n").unwrap();
        });
        let e = format!("{:#}", RoutingDaemon::Bird(path).check().unwrap_err());
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("not bird's greeting"), "{e}");
    }

    #[test]
    fn tables_the_kernel_routes_by_are_refused() {
        let base = AnnounceOptions::new(RoutingDaemon::Bird("/x".into()));
        for table in [0, 253, 254, 255] {
            let options = AnnounceOptions {
                table,
                ..base.clone()
            };
            assert!(options.validate().is_err(), "{table}");
        }
        for table in [1, 100, 252, 256, 1000] {
            let options = AnnounceOptions {
                table,
                ..base.clone()
            };
            assert!(options.validate().is_ok(), "{table}");
        }
        let long = AnnounceOptions {
            device: "a-very-long-name".into(),
            ..base.clone()
        };
        assert!(long.validate().is_err());
    }

    #[test]
    fn announced_vips_must_be_configured() {
        let vip6: IpAddr = "2001:2::1".parse().unwrap();
        let options = AnnounceOptions {
            vips: vec![
                IpAddr::from([198, 18, 0, 1]),
                IpAddr::from([198, 18, 0, 2]),
                vip6,
            ],
            ..AnnounceOptions::new(RoutingDaemon::Bird("/x".into()))
        };
        let configured = BTreeSet::from([IpAddr::from([198, 18, 0, 1])]);
        let e = options.check_vips(&configured).unwrap_err().to_string();
        assert!(
            e.contains("198.18.0.2, 2001:2::1") && !e.contains("198.18.0.1,"),
            "{e}"
        );
        let all = BTreeSet::from([
            IpAddr::from([198, 18, 0, 1]),
            IpAddr::from([198, 18, 0, 2]),
            vip6,
        ]);
        options.check_vips(&all).unwrap();
    }

    #[test]
    fn the_vips_of_a_configuration_file() {
        let commands = crate::config_file::parse(
            "-A -t 198.18.0.1:80 -s mh\n-a -t 198.18.0.1:80 -r 198.19.0.2:80 -g\n-A -u 198.18.0.3:53 -s rr\n-A -t [2001:2::1]:80\n",
        )
        .unwrap();
        assert_eq!(
            vips_of(&commands),
            BTreeSet::from([
                IpAddr::from([198, 18, 0, 1]),
                IpAddr::from([198, 18, 0, 3]),
                "2001:2::1".parse().unwrap()
            ])
        );
        // An IPv4 --announce-vip is not an IPv6 one.
        let options = AnnounceOptions {
            vips: vec![IpAddr::from([198, 18, 0, 1])],
            ..AnnounceOptions::new(RoutingDaemon::Bird("/x".into()))
        };
        options.check_vips(&vips_of(&commands)).unwrap();
        assert!(options
            .check_vips(&BTreeSet::from(["::ffff:198.18.0.1".parse().unwrap()]))
            .is_err());
    }
}
