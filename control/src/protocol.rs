//! The JSON control protocol, version 1: the only contract between `xvsd` and its clients.
//!
//! One request per line on the Unix socket, one response line back, in order. Every request
//! carries `"cmd"`; `"v"` (default 1) and `"id"` (echoed back) are optional. Responses are
//! `{"v":1,"id":..,"ok":true,"result":..}` or
//! `{"v":1,"id":..,"ok":false,"error":{"code":"..","message":".."}}`.
//! The full description with examples lives in docs/control-protocol.md.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The IPVS version xvs mirrors: what ipvsadm prints in its listing header.
pub const IPVS_VERSION: &str = "1.2.1";

/// The longest persistence timeout, in seconds: ipvsadm's `MAX_TIMEOUT` (31 days), the bound
/// of `-p`.
pub const MAX_PERSISTENT_TIMEOUT: u32 = 86400 * 31;

/// `-p` without a timeout: libipvs's `IPVS_SVC_PERSISTENT_TIMEOUT` (6*60 seconds; ipvsadm(8)
/// says 300, the code sends 360).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 6 * 60;

/// An IPv4 service's persistence netmask when none is given: one client address per template.
pub const DEFAULT_NETMASK: Ipv4Addr = Ipv4Addr::BROADCAST;

/// An IPv6 service's persistence prefix length when none is given (ipvsadm's `parse_service`
/// sets 128 for an IPv6 address): one client address per template.
pub const DEFAULT_PREFIX_LEN: u8 = 128;

/// Largest request line the server accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

fn default_version() -> u32 {
    PROTOCOL_VERSION
}

fn default_netmask() -> Netmask {
    Netmask::Mask(DEFAULT_NETMASK)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default = "default_version")]
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Self {
        Request {
            v: PROTOCOL_VERSION,
            id: None,
            command,
        }
    }
}

/// What the client asks for. `cmd` names the variant in snake_case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Daemon and protocol version (`ipvsadm -v`).
    Version,
    /// `ipvsadm -A`. `scheduler` defaults to `wlc` as in ipvsadm (only policies the build knows
    /// are accepted); `sched_flags` (`-b`) to none; `persistent` (`-p`) to not persistent;
    /// `netmask` (`-M`) to 255.255.255.255 (IPv4) or 128 (IPv6).
    AddService {
        service: ServiceKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduler: Option<String>,
        /// ipvsadm's `-b` flag names (`sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`,
        /// `flag-1`, `flag-2`), checked against the scheduler as ipvsadm checks them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sched_flags: Option<Vec<String>>,
        /// `-p [timeout]`: the persistence timeout in seconds,
        /// 1..=[`MAX_PERSISTENT_TIMEOUT`]; 0 means not persistent, like an absent field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        persistent: Option<u32>,
        /// `-M`: clients whose addresses agree under this mask share a real server: for an
        /// IPv4 service a contiguous dotted mask (`"255.255.255.0"`, 0.0.0.0 ..= 255.255.255.255),
        /// for an IPv6 service a prefix length (`64`, 1..=128). Kept only when the service is
        /// persistent (IPVS keeps it but uses and lists it only then).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netmask: Option<Netmask>,
    },
    /// `ipvsadm -E`. `scheduler` absent means `wlc` (ipvsadm always sends one); `sched_flags`
    /// absent leaves the flags unchanged, `[]` clears them; `persistent` absent leaves
    /// persistence unchanged, `0` turns it off, a timeout turns it on (or changes the timeout);
    /// `netmask` absent leaves the mask unchanged (255.255.255.255, or 128 for IPv6, on a
    /// service that was not persistent).
    EditService {
        service: ServiceKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduler: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sched_flags: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        persistent: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        netmask: Option<Netmask>,
    },
    /// `ipvsadm -D`.
    DelService { service: ServiceKey },
    /// `ipvsadm -C`: removes every service.
    Clear,
    /// `ipvsadm -a`. Absent fields take ipvsadm's defaults: weight 1, masquerading, no
    /// thresholds (0).
    AddReal {
        service: ServiceKey,
        real: RealKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward: Option<Forward>,
        /// With `forward` `tunnel`: how (ipvsadm's `--tun-*` options); absent: IP in IP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<TunnelSpec>,
        /// `-x`: no new connections while the server has this many (active + inactive);
        /// 0 = no limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper_threshold: Option<u32>,
        /// `-y`: at most `upper_threshold` (IPVS refuses a lower threshold above the upper).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower_threshold: Option<u32>,
    },
    /// `ipvsadm -e`. Absent fields keep their value.
    EditReal {
        service: ServiceKey,
        real: RealKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward: Option<Forward>,
        /// With `forward` `tunnel`: how; absent: as it was (IP in IP for a new tunnel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tunnel: Option<TunnelSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        upper_threshold: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lower_threshold: Option<u32>,
    },
    /// `ipvsadm -d`.
    DelReal { service: ServiceKey, real: RealKey },
    /// `ipvsadm -L`: services, real servers, connection counts and traffic counters.
    List,
    /// Per-worker packet counters and connection table occupancy.
    Stats,
    /// `ipvsadm -Z [-t|-u SERVICE]`: zeroes the traffic counters (and rates) of one service
    /// and its real servers, or of every service. Connection counts are not counters.
    Zero {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceKey>,
    },
    /// `ipvsadm --set TCP TCPFIN UDP`: connection timeouts in seconds; 0 keeps a value.
    /// Existing connections take a new timeout on their next packet, as in IPVS.
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// `ipvsadm -L --timeout`.
    Timeouts,
    /// `ipvsadm -L -c`: the connection entries of every worker.
    Connections,
    /// Applies `commands` in order, all or nothing: if one fails, none is applied and the
    /// error names the failing command's position. Only commands that change the
    /// configuration may be batched (no listings, no nested batches). `xvsadm -R` sends one.
    Batch { commands: Vec<Command> },
    /// Makes the configuration exactly what `commands` build from an empty table (`xvsd
    /// --config` at start and on SIGHUP). The difference to the running configuration is
    /// applied atomically: services and real servers in both keep their counters and
    /// connections; those no longer wanted drain as after `del_*`.
    Replace { commands: Vec<Command> },
    /// Sets (or with `check` absent/null, removes) the health check of every real server of
    /// a service.
    SetCheck {
        service: ServiceKey,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        check: Option<CheckSpec>,
    },
    /// An xvs extension (IPVS has no such limit): at most `max_conns` connection entries of
    /// the service at once, over all workers (each holds its share, rounded up); 0 removes the
    /// limit. New flows beyond it are refused (drop reason `service_limit`) unless one of the
    /// service's half-open entries gives way. Existing entries are kept.
    SetConnLimit { service: ServiceKey, max_conns: u32 },
    /// DPVS's `ipvsadm --add-laddr -z LIP -t VIP:PORT`: a local address the service's FullNAT
    /// connections leave from (a unicast host address, not a VIP, not the internal
    /// interface's primary address, which the director's own connections use), of the
    /// service's address family.
    AddLaddr { service: ServiceKey, addr: IpAddr },
    /// xvs's form of IPVS's sysctls `sloppy_tcp` and `sloppy_udp` (`xvsd --sloppy-tcp
    /// --sloppy-udp`, `xvsadm --sloppy tcp,udp`): with `tcp`, a TCP segment other than a SYN
    /// or RST of a flow without an entry opens one when its service is scheduled by `mh`,
    /// `sh` or `dh` (every director picks the same server), so a flow that ECMP moves to this
    /// director keeps its real server. `udp` changes nothing: any UDP datagram opens a
    /// connection (kept so a scale-out configuration can name both, as IPVS's does).
    SetSloppy { tcp: bool, udp: bool },
    /// `--del-laddr`: new connections stop using the address; those that do keep it (xvsd
    /// keeps taking its replies from the kernel) until they end. Refused for the last local
    /// address of a service with FullNAT real servers.
    DelLaddr { service: ServiceKey, addr: IpAddr },
    /// `xvsadm capture`: the frames the workers receive and transmit. Answered with
    /// [`Reply::Capture`], after which the connection carries the capture's binary records
    /// (crate::capture::wire) until `count` frames were sent, the client closes it, or the
    /// daemon stops. `interface`: `external`, `internal` or an interface name (default: both
    /// sides); `filter`: tcpdump's filter language (libpcap compiles it). Alone on its
    /// connection: never in a batch.
    Capture {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interface: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count: Option<u64>,
    },
}

impl Command {
    /// Whether the command changes the configuration (and may therefore be batched).
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Command::Version
                | Command::List
                | Command::Stats
                | Command::Timeouts
                | Command::Connections
                | Command::Batch { .. }
                | Command::Replace { .. }
                | Command::Capture { .. }
        )
    }
}

/// IPVS's default connection timeouts (`ipvsadm -L --timeout` on a fresh kernel).
pub const DEFAULT_TIMEOUTS: Timeouts = Timeouts {
    tcp: 900,
    tcpfin: 120,
    udp: 300,
};

/// Connection timeouts in seconds (`--set`, `-L --timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP connections.
    pub tcp: u32,
    /// TCP connections after the client's FIN (IPVS's FIN_WAIT).
    pub tcpfin: u32,
    pub udp: u32,
}

/// How a real server's health is checked (what keepalived's TCP_CHECK / HTTP_GET give LVS).
/// Checks are made from the director's own address on the internal side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub kind: CheckKind,
    /// Port to check; default: the real server's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http`: the path requested with GET (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http`: the status that means healthy (default: any 2xx).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u16>,
    /// Time between two checks of one server, ms (default [`DEFAULT_CHECK_INTERVAL_MS`]).
    #[serde(default = "default_check_interval")]
    pub interval_ms: u32,
    /// A check not answered within this is a failure, ms (default
    /// [`DEFAULT_CHECK_TIMEOUT_MS`]); at most `interval_ms`.
    #[serde(default = "default_check_timeout")]
    pub timeout_ms: u32,
    /// Consecutive successes that bring a down server back (default [`DEFAULT_RISE`]).
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Consecutive failures that take an up server down (default [`DEFAULT_FALL`]).
    #[serde(default = "default_fall")]
    pub fall: u32,
}

pub const DEFAULT_CHECK_INTERVAL_MS: u32 = 2000;
pub const DEFAULT_CHECK_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_RISE: u32 = 2;
pub const DEFAULT_FALL: u32 = 2;

fn default_check_interval() -> u32 {
    DEFAULT_CHECK_INTERVAL_MS
}
fn default_check_timeout() -> u32 {
    DEFAULT_CHECK_TIMEOUT_MS
}
fn default_rise() -> u32 {
    DEFAULT_RISE
}
fn default_fall() -> u32 {
    DEFAULT_FALL
}

impl CheckSpec {
    /// A check of `kind` with every default.
    pub fn new(kind: CheckKind) -> Self {
        CheckSpec {
            kind,
            port: None,
            path: None,
            expect_status: None,
            interval_ms: DEFAULT_CHECK_INTERVAL_MS,
            timeout_ms: DEFAULT_CHECK_TIMEOUT_MS,
            rise: DEFAULT_RISE,
            fall: DEFAULT_FALL,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// The server accepts a TCP connection.
    Tcp,
    /// `GET path HTTP/1.0` answers with the expected status.
    Http,
}

/// A real server's health as its checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Taking new connections (also the state before the first check: a new server is
    /// trusted until it fails `fall` times, as keepalived does by default).
    Up,
    /// Failed `fall` consecutive checks: quiesced (no new connections; established ones go
    /// on) until `rise` consecutive successes.
    Down,
}

/// Health of one real server of a checked service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    pub state: HealthState,
    /// Consecutive results agreeing with the last one (successes or failures).
    pub streak: u32,
    pub checks_passed: u64,
    pub checks_failed: u64,
    /// Why the last failed check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Seconds since the state last changed (or the check was set).
    pub since_secs: u64,
}

/// Rates per second of a service or real server, IPVS's estimator: a sample every 2 s,
/// smoothed with weight 1/4 (about an 8 s window).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    /// Bytes per second.
    pub inbps: u64,
    pub outbps: u64,
}

/// One connection entry (`ipvsadm -L -c`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub proto: Protocol,
    /// IPVS's state name: `ESTABLISHED`, `SYN_RECV`, `FIN_WAIT`, `TIME_WAIT`, `CLOSE`,
    /// `CLOSE_WAIT`, `LAST_ACK`, ... for TCP; `UDP` for UDP.
    pub state: String,
    /// Milliseconds until the entry expires.
    pub expires_ms: u64,
    pub client: IpAddr,
    pub client_port: u16,
    pub vip: IpAddr,
    pub vport: u16,
    pub real: IpAddr,
    pub rport: u16,
    /// FullNAT: the local address and port the connection leaves from, which the real server
    /// sees as its client (absent for the other methods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laddr: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lport: Option<u16>,
}

/// `connections` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionsReply {
    pub connections: Vec<ConnectionInfo>,
    /// Workers whose entries are missing because they did not answer in time (0 normally).
    #[serde(default)]
    pub workers_missing: u32,
    /// A worker had more entries than one listing carries (1,000,000): some are left out.
    #[serde(default)]
    pub truncated: bool,
}

/// Layer-4 protocol of a virtual service (`-t` / `-u`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name ipvsadm prints in listings.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// A virtual service: protocol, VIP and port. The VIP is IPv4 or IPv6 (JSON: its text form,
/// `"198.18.0.129"` or `"2001:2::129"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceKey {
    pub proto: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl ServiceKey {
    /// The VIP and port, which print as ipvsadm prints them: `198.18.0.129:80`,
    /// `[2001:2::129]:80`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl fmt::Display for ServiceKey {
    /// `TCP 198.18.0.129:80`, `TCP [2001:2::129]:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto.ipvsadm_name(), self.socket_addr())
    }
}

/// A real server of a service: address (IPv4 or IPv6) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RealKey {
    pub addr: IpAddr,
    pub port: u16,
}

impl RealKey {
    /// The address and port: `198.19.0.148:80`, `[2001:2:0:1::11]:80`.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

impl fmt::Display for RealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.socket_addr())
    }
}

/// A persistent service's granularity (`-M`): clients whose addresses agree under it share a
/// real server (one persistence template). As ipvsadm takes and prints it, an IPv4 service's is
/// a netmask and an IPv6 service's a prefix length; in JSON a dotted string (`"255.255.255.0"`,
/// as before IPv6) or an integer (`64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum Netmask {
    /// An IPv4 service's mask (IPVS wants it contiguous here: ones, then zeros).
    Mask(Ipv4Addr),
    /// An IPv6 service's prefix length, 1..=128 (IPVS's range).
    PrefixLen(u8),
}

impl Netmask {
    /// What a service at `addr` has when no `-M` is given: 255.255.255.255 or 128.
    pub fn default_for(addr: IpAddr) -> Netmask {
        match addr {
            IpAddr::V4(_) => Netmask::Mask(DEFAULT_NETMASK),
            IpAddr::V6(_) => Netmask::PrefixLen(DEFAULT_PREFIX_LEN),
        }
    }

    /// Whether it is the kind a service at `addr` takes (a mask for IPv4, a prefix length for
    /// IPv6).
    pub fn fits(self, addr: IpAddr) -> bool {
        matches!(
            (self, addr),
            (Netmask::Mask(_), IpAddr::V4(_)) | (Netmask::PrefixLen(_), IpAddr::V6(_))
        )
    }
}

impl From<Ipv4Addr> for Netmask {
    fn from(mask: Ipv4Addr) -> Self {
        Netmask::Mask(mask)
    }
}

impl fmt::Display for Netmask {
    /// As ipvsadm prints it after `mask` and `-M`: `255.255.255.0`, `64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::Mask(mask) => write!(f, "{mask}"),
            Netmask::PrefixLen(len) => write!(f, "{len}"),
        }
    }
}

impl<'de> Deserialize<'de> for Netmask {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Netmask;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a netmask: a dotted IPv4 mask string (\"255.255.255.0\") or an IPv6 prefix \
                     length (an integer, 1..=128)",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Netmask, E> {
                v.parse::<Ipv4Addr>()
                    .map(Netmask::Mask)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Netmask, E> {
                u8::try_from(v)
                    .map(Netmask::PrefixLen)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Netmask, E> {
                u8::try_from(v)
                    .map(Netmask::PrefixLen)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Packet-forwarding method (`-g`, `-i`, `-m`, DPVS's `--fullnat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// `-m`, LVS-NAT.
    Masq,
    /// `-g`, direct routing (ipvsadm's default).
    Route,
    /// `-i`, tunnelling (how: [`TunnelSpec`]).
    Tunnel,
    /// `--fullnat` (DPVS): requests leave from one of the service's local addresses
    /// (`add_laddr`), so the real server answers the director whatever its routes.
    FullNat,
}

impl Forward {
    /// Its name in the protocol, and the `method` label of the metrics.
    pub fn metric_name(self) -> &'static str {
        match self {
            Forward::Masq => "masq",
            Forward::Route => "route",
            Forward::Tunnel => "tunnel",
            Forward::FullNat => "fullnat",
        }
    }

    /// The name ipvsadm prints in the Forward column.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forward::Masq => "Masq",
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::FullNat => "FullNat",
        }
    }
}

/// A tunnel's encapsulation, ipvsadm 1.31's `--tun-type`, `--tun-port` and
/// `--tun-nocsum`/`--tun-csum`/`--tun-remcsum`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSpec {
    #[serde(rename = "type")]
    pub kind: TunnelKind,
    /// GUE's UDP destination port (required for `gue`, refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default `nocsum`.
    #[serde(default)]
    pub checksum: TunnelChecksum,
}

impl Default for TunnelSpec {
    /// `-i` alone: IP in IP.
    fn default() -> Self {
        TunnelSpec {
            kind: TunnelKind::Ipip,
            port: None,
            checksum: TunnelChecksum::NoCsum,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    Ipip,
    Gue,
    Gre,
}

impl TunnelKind {
    /// ipvsadm's name.
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
            TunnelKind::Gre => "gre",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

impl TunnelChecksum {
    /// ipvsadm's option.
    pub fn option(self) -> &'static str {
        match self {
            TunnelChecksum::NoCsum => "--tun-nocsum",
            TunnelChecksum::Csum => "--tun-csum",
            TunnelChecksum::RemCsum => "--tun-remcsum",
        }
    }
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Reply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    pub fn success(id: Option<u64>, result: Reply) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn failure(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }
}

/// The `error` object of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Machine-readable error codes; the message says the specifics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not valid JSON, or not a request object.
    BadRequest,
    /// A `v` this daemon does not speak.
    UnsupportedVersion,
    /// `cmd` names no command.
    UnknownCommand,
    /// A field's value is out of range (port 0, weight above 65535, ...).
    InvalidArgument,
    /// A scheduler name this build does not implement.
    UnknownScheduler,
    /// A feature ipvsadm has that xvs does not implement yet.
    Unsupported,
    ServiceExists,
    NoSuchService,
    RealExists,
    NoSuchReal,
    /// The request line exceeds MAX_REQUEST_BYTES.
    RequestTooLarge,
    /// The peer's credentials do not allow using the control socket.
    PermissionDenied,
    /// Too many clients, or the control thread did not answer in time: try again.
    Busy,
    /// The daemon could not apply a valid request (e.g. a BPF map update failed).
    Internal,
}

/// The `result` of a successful response; its shape follows the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Version(VersionInfo),
    List(ListReply),
    Stats(StatsReply),
    Timeouts(Timeouts),
    Connections(ConnectionsReply),
    /// Commands that change state answer `{}`.
    Done(Empty),
    /// A capture starts: what its frames' sides are called.
    Capture(CaptureReply),
}

/// The answer to [`Command::Capture`], before its records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureReply {
    /// The interfaces captured, with the side each is (one interface may be both: one arm).
    pub interfaces: Vec<CaptureInterface>,
    /// Most bytes kept of a frame.
    pub snaplen: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureInterface {
    pub name: String,
    /// `external` or `internal`.
    pub side: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// xvs release.
    pub daemon: String,
    /// The IPVS version xvs mirrors in listings ("1.2.1").
    pub ipvs: String,
    pub protocol: u32,
}

/// Everything `ipvsadm -L` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListReply {
    /// The figure ipvsadm prints as `(size=N)`: IPVS's connection hash size, kept for
    /// compatibility; the bound on connections is `conn_max`.
    pub conn_tab_size: u32,
    pub conn_max: u64,
    /// `set_sloppy`; both off from daemons that predate it.
    #[serde(default)]
    pub sloppy: Sloppy,
    /// `xvsd --announce`: the VIPs announced to the routing daemon now (docs/scale-out.md);
    /// absent when xvsd announces nothing, and from daemons that predate announcements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced: Option<Vec<IpAddr>>,
    pub services: Vec<ServiceInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub service: ServiceKey,
    pub scheduler: String,
    /// The `-b` flags set, named as ipvsadm prints them for this scheduler (`sh-fallback`,
    /// `sh-port` for sh; `mh-*` for mh; `flag-1`, `flag-2` otherwise), `[]` for none. Absent
    /// from replies of daemons that predate flags: none.
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// The persistence timeout in seconds, `null` when the service is not persistent (also
    /// from daemons that predate persistence).
    #[serde(default)]
    pub persistent: Option<u32>,
    /// The persistence netmask (IPv4 service) or prefix length (IPv6 service); 255.255.255.255
    /// or 128 when the service is not persistent (255.255.255.255 from daemons that predate
    /// persistence).
    #[serde(default = "default_netmask")]
    pub netmask: Netmask,
    pub stats: Counters,
    /// `--rate`. Zero from daemons that predate rates.
    #[serde(default)]
    pub rates: Rates,
    /// The service's health check, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckSpec>,
    /// `set_conn_limit`: most connection entries at once; 0 (or absent): no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_conns: u32,
    /// `add_laddr`: FullNAT's local addresses, in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_addrs: Vec<IpAddr>,
    /// In the order the real servers were added (which is the round-robin order).
    pub reals: Vec<RealInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealInfo {
    pub real: RealKey,
    pub forward: Forward,
    /// How a tunnelled real server's packets are wrapped (`forward` `tunnel` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSpec>,
    pub weight: u32,
    /// `-x` (0: no limit). Absent from replies of daemons that predate thresholds: 0.
    #[serde(default)]
    pub upper_threshold: u32,
    /// `-y`.
    #[serde(default)]
    pub lower_threshold: u32,
    pub active_conns: u64,
    pub inactive_conns: u64,
    /// Live persistence templates pointing at this server (IPVS's `persistconns`, ipvsadm's
    /// PersistConn column). 0 from daemons that do not count them.
    #[serde(default)]
    pub persist_conns: u64,
    pub stats: Counters,
    #[serde(default)]
    pub rates: Rates,
    /// Present when the service has a health check. While `state` is `down` the server
    /// takes no new connections, whatever its `weight` (which stays the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
}

/// IPVS's `sloppy_tcp` and `sloppy_udp` settings ([`Command::SetSloppy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sloppy {
    pub tcp: bool,
    pub udp: bool,
}

/// Traffic counters of a service or real server, as `ipvsadm -L --stats` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Per-worker counters and connection table occupancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReply {
    pub workers: Vec<WorkerStats>,
    /// Connection entries of every worker, IPv4 and IPv6.
    pub conn_count: u64,
    /// The IPv4 tables' capacity (`--conn-max`).
    pub conn_max: u64,
    /// The IPv6 tables' capacity (`--conn-max6`); 0 from daemons that predate IPv6.
    #[serde(default)]
    pub conn_max6: u64,
}

impl StatsReply {
    /// Frames dropped for `reason` (a [`xvs_dataplane::stats::DropReason`] name) by all
    /// workers.
    pub fn drops(&self, reason: &str) -> u64 {
        self.workers
            .iter()
            .map(|w| w.drops.get(reason).copied().unwrap_or(0))
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    pub worker: u32,
    pub core: Option<u32>,
    pub rx: u64,
    pub tx: u64,
    /// Frames handed to another worker because it owns their flow.
    pub handed_off: u64,
    /// Frames other workers handed to this one.
    #[serde(default)]
    pub handed_in: u64,
    /// Frames waiting for their next hop's MAC now.
    #[serde(default)]
    pub held: u64,
    /// Frames of this worker's rx queues that the XDP program redirected to its sockets
    /// (`rx` plus what the kernel dropped because a socket's ring was full).
    #[serde(default)]
    pub redirected: u64,
    /// Frames of this worker's rx queues that the XDP program passed to the kernel (ARP,
    /// ICMP, traffic that is not load-balanced).
    pub passed: u64,
    /// Redirected frames the kernel dropped because a socket's RX ring was full (the worker
    /// fell behind), summed over this worker's sockets (`XDP_STATISTICS`).
    #[serde(default)]
    pub xsk_rx_ring_full: u64,
    /// Redirected frames the kernel dropped otherwise, mostly for want of a fill-ring frame.
    #[serde(default)]
    pub xsk_rx_dropped: u64,
    /// Frames of this worker's rx queues that the XDP fast path rewrote and forwarded itself
    /// (they never reached the worker).
    #[serde(default)]
    pub fast_forwarded: u64,
    /// Connections this worker put on the fast path, took off it, and installs the fast
    /// path's map refused (full).
    #[serde(default)]
    pub fast_installs: u64,
    #[serde(default)]
    pub fast_removals: u64,
    #[serde(default)]
    pub fast_refused: u64,
    /// Drops by reason name (see xvs_dataplane::stats::DropReason).
    pub drops: std::collections::BTreeMap<String, u64>,
    /// ICMP errors translated, by direction ("in": towards real servers, "out": towards
    /// clients) and reason name (see xvs_dataplane::stats::IcmpReason).
    #[serde(default)]
    pub icmp: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// Half-open connection entries evicted, by reason name (see
    /// xvs_dataplane::stats::EvictReason); empty from daemons that predate evictions.
    #[serde(default)]
    pub evictions: std::collections::BTreeMap<String, u64>,
    /// Entries in the worker's connection tables, IPv4 and IPv6.
    pub conns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip_and_defaults() {
        let line = r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"rr"}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(req.v, 1);
        assert_eq!(req.id, None);
        assert_eq!(
            req.command,
            Command::AddService {
                service: ServiceKey {
                    proto: Protocol::Tcp,
                    addr: Ipv4Addr::new(198, 18, 0, 129).into(),
                    port: 80
                },
                scheduler: Some("rr".into()),
                sched_flags: None,
                persistent: None,
                netmask: None,
            }
        );
        let back: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(back, req);
    }

    fn tcp80() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 129).into(),
            port: 80,
        }
    }

    fn real148() -> RealKey {
        RealKey {
            addr: Ipv4Addr::new(198, 19, 0, 148).into(),
            port: 80,
        }
    }

    #[test]
    fn tunnel_options_as_the_docs_show_them() {
        let line = r#"{"v":1,"id":9,"cmd":"add_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.7.1","port":80},"forward":"tunnel","tunnel":{"type":"gue","port":6080,"checksum":"csum"}}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        let Command::AddReal {
            forward, tunnel, ..
        } = &req.command
        else {
            panic!("{req:?}")
        };
        assert_eq!(*forward, Some(Forward::Tunnel));
        assert_eq!(
            *tunnel,
            Some(TunnelSpec {
                kind: TunnelKind::Gue,
                port: Some(6080),
                checksum: TunnelChecksum::Csum,
            })
        );
        let back: Request = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(back, req);
        // Defaults: IP in IP, no checksum.
        let spec: TunnelSpec = serde_json::from_str(r#"{"type":"ipip"}"#).unwrap();
        assert_eq!(spec, TunnelSpec::default());
    }

    #[test]
    fn flags_and_thresholds_are_optional_both_ways() {
        // With the new fields.
        let line = r#"{"cmd":"edit_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"sh","sched_flags":["sh-fallback","sh-port"]}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req.command,
            Command::EditService {
                service: tcp80(),
                scheduler: Some("sh".into()),
                sched_flags: Some(vec!["sh-fallback".into(), "sh-port".into()]),
                persistent: None,
                netmask: None,
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"v":1,{}"#, &line[1..])
        );
        let line = r#"{"cmd":"add_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.0.148","port":80},"upper_threshold":100,"lower_threshold":50}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req.command,
            Command::AddReal {
                service: tcp80(),
                real: real148(),
                weight: None,
                forward: None,
                tunnel: None,
                upper_threshold: Some(100),
                lower_threshold: Some(50),
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"v":1,{}"#, &line[1..])
        );
        // Without them: what older clients send, and absent fields are not written.
        let line = r#"{"cmd":"edit_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.0.148","port":80},"weight":3}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req.command,
            Command::EditReal {
                service: tcp80(),
                real: real148(),
                weight: Some(3),
                forward: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"v":1,{}"#, &line[1..])
        );
        // A threshold beyond u32 is a bad request, not a wrap-around.
        let line = r#"{"cmd":"add_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.0.148","port":80},"upper_threshold":4294967296}"#;
        assert!(serde_json::from_str::<Request>(line).is_err());
    }

    #[test]
    fn list_reply_reads_old_and_new_daemons() {
        let new = ServiceInfo {
            service: tcp80(),
            scheduler: "sh".into(),
            sched_flags: vec!["sh-port".into()],
            persistent: None,
            netmask: DEFAULT_NETMASK.into(),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
            reals: vec![RealInfo {
                real: real148(),
                forward: Forward::Masq,
                tunnel: None,
                weight: 1,
                upper_threshold: 100,
                lower_threshold: 50,
                active_conns: 0,
                inactive_conns: 0,
                persist_conns: 0,
                stats: Counters::default(),
                rates: Default::default(),
                health: None,
            }],
        };
        let v = serde_json::to_value(&new).unwrap();
        assert_eq!(v["sched_flags"], serde_json::json!(["sh-port"]));
        assert_eq!(v["reals"][0]["upper_threshold"], 100);
        assert_eq!(v["reals"][0]["lower_threshold"], 50);
        let back: ServiceInfo = serde_json::from_value(v).unwrap();
        assert_eq!(back, new);
        // No flags is an empty list, not an absent field.
        let plain = ServiceInfo {
            sched_flags: vec![],
            ..new.clone()
        };
        assert_eq!(
            serde_json::to_value(&plain).unwrap()["sched_flags"],
            serde_json::json!([])
        );
        // A daemon that predates flags and thresholds.
        let old = r#"{"service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"rr","stats":{"conns":0,"inpkts":0,"outpkts":0,"inbytes":0,"outbytes":0},"reals":[{"real":{"addr":"198.19.0.148","port":80},"forward":"masq","weight":1,"active_conns":0,"inactive_conns":0,"stats":{"conns":0,"inpkts":0,"outpkts":0,"inbytes":0,"outbytes":0}}]}"#;
        let old: ServiceInfo = serde_json::from_str(old).unwrap();
        assert!(old.sched_flags.is_empty());
        assert_eq!(
            (old.reals[0].upper_threshold, old.reals[0].lower_threshold),
            (0, 0)
        );
        // ... and persistence: not persistent, /32, no templates.
        assert_eq!(old.persistent, None);
        assert_eq!(old.netmask, Netmask::Mask(Ipv4Addr::BROADCAST));
        assert_eq!(old.reals[0].persist_conns, 0);
    }

    #[test]
    fn persistence_fields_both_ways() {
        // Requests: absent fields are not written, present ones round-trip.
        let line = r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"rr","persistent":600,"netmask":"255.255.255.0"}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req.command,
            Command::AddService {
                service: tcp80(),
                scheduler: Some("rr".into()),
                sched_flags: None,
                persistent: Some(600),
                netmask: Some(Ipv4Addr::new(255, 255, 255, 0).into()),
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"v":1,{}"#, &line[1..])
        );
        let line = r#"{"cmd":"edit_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"persistent":0}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(
            req.command,
            Command::EditService {
                service: tcp80(),
                scheduler: None,
                sched_flags: None,
                persistent: Some(0),
                netmask: None,
            }
        );
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            format!(r#"{{"v":1,{}"#, &line[1..])
        );
        // Not an address, not a u32: bad requests.
        for bad in [
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"netmask":"24"}"#,
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"persistent":-1}"#,
            r#"{"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"persistent":"300"}"#,
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }

        // Listings: persistent is always written (null when off), the mask too.
        let info = ServiceInfo {
            service: tcp80(),
            scheduler: "wlc".into(),
            sched_flags: vec![],
            persistent: Some(360),
            netmask: Ipv4Addr::new(255, 255, 0, 0).into(),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
            reals: vec![RealInfo {
                real: real148(),
                forward: Forward::Masq,
                tunnel: None,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                active_conns: 1,
                inactive_conns: 2,
                persist_conns: 3,
                stats: Counters::default(),
                rates: Default::default(),
                health: None,
            }],
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["persistent"], 360);
        assert_eq!(v["netmask"], "255.255.0.0");
        assert_eq!(v["reals"][0]["persist_conns"], 3);
        assert_eq!(serde_json::from_value::<ServiceInfo>(v).unwrap(), info);
        let off = ServiceInfo {
            persistent: None,
            netmask: DEFAULT_NETMASK.into(),
            ..info
        };
        let v = serde_json::to_value(&off).unwrap();
        assert_eq!(v["persistent"], serde_json::Value::Null);
        assert_eq!(v["netmask"], "255.255.255.255");
        assert_eq!(serde_json::from_value::<ServiceInfo>(v).unwrap(), off);
    }

    /// JSON written before addresses became `IpAddr` (and the netmask a [`Netmask`]): every
    /// IPv4 request and reply reads as before and writes back byte for byte.
    #[test]
    fn ipv4_json_is_unchanged() {
        for line in [
            r#"{"v":1,"id":7,"cmd":"add_service","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"rr","persistent":600,"netmask":"255.255.255.0"}"#,
            r#"{"v":1,"cmd":"edit_service","service":{"proto":"udp","addr":"198.18.0.129","port":53},"netmask":"0.0.0.0"}"#,
            r#"{"v":1,"cmd":"add_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.0.148","port":8080},"weight":2,"forward":"fullnat"}"#,
            r#"{"v":1,"cmd":"del_real","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"real":{"addr":"198.19.0.148","port":80}}"#,
            r#"{"v":1,"cmd":"add_laddr","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"addr":"198.19.0.11"}"#,
            r#"{"v":1,"cmd":"del_laddr","service":{"proto":"tcp","addr":"198.18.0.129","port":80},"addr":"198.19.0.11"}"#,
            r#"{"v":1,"cmd":"zero","service":{"proto":"udp","addr":"198.18.0.129","port":53}}"#,
        ] {
            let req: Request = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&req).unwrap(), line);
        }
        let list = r#"{"v":1,"ok":true,"result":{"conn_tab_size":4096,"conn_max":1048576,"sloppy":{"tcp":false,"udp":false},"announced":["198.18.0.129"],"services":[{"service":{"proto":"tcp","addr":"198.18.0.129","port":80},"scheduler":"rr","sched_flags":[],"persistent":360,"netmask":"255.255.255.0","stats":{"conns":1,"inpkts":2,"outpkts":3,"inbytes":4,"outbytes":5},"rates":{"cps":0,"inpps":0,"outpps":0,"inbps":0,"outbps":0},"local_addrs":["198.19.0.11"],"reals":[{"real":{"addr":"198.19.0.148","port":80},"forward":"fullnat","weight":1,"upper_threshold":0,"lower_threshold":0,"active_conns":0,"inactive_conns":0,"persist_conns":0,"stats":{"conns":1,"inpkts":2,"outpkts":3,"inbytes":4,"outbytes":5},"rates":{"cps":0,"inpps":0,"outpps":0,"inbps":0,"outbps":0}}]}]}}"#;
        let conns = r#"{"v":1,"ok":true,"result":{"connections":[{"proto":"tcp","state":"ESTABLISHED","expires_ms":899000,"client":"198.51.100.7","client_port":40000,"vip":"198.18.0.129","vport":80,"real":"198.19.0.148","rport":80,"laddr":"198.19.0.11","lport":1025}],"workers_missing":0,"truncated":false}}"#;
        for line in [list, conns] {
            let resp: Response = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&resp).unwrap(), line);
        }
        let Some(Reply::List(reply)) = serde_json::from_str::<Response>(list).unwrap().result
        else {
            panic!("not a list")
        };
        assert_eq!(
            reply.services[0].netmask,
            Netmask::Mask([255, 255, 255, 0].into())
        );
        assert_eq!(
            reply.announced,
            Some(vec![Ipv4Addr::new(198, 18, 0, 129).into()])
        );
    }

    /// IPv6 in the protocol: addresses in their text form, the netmask a prefix length.
    #[test]
    fn ipv6_json_both_ways() {
        let line = r#"{"v":1,"cmd":"add_service","service":{"proto":"tcp","addr":"2001:2::129","port":80},"scheduler":"rr","persistent":600,"netmask":64}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        let service = ServiceKey {
            proto: Protocol::Tcp,
            addr: "2001:2::129".parse().unwrap(),
            port: 80,
        };
        assert_eq!(
            req.command,
            Command::AddService {
                service,
                scheduler: Some("rr".into()),
                sched_flags: None,
                persistent: Some(600),
                netmask: Some(Netmask::PrefixLen(64)),
            }
        );
        assert_eq!(serde_json::to_string(&req).unwrap(), line);
        // Written as ipvsadm prints them: brackets where a port follows.
        assert_eq!(service.to_string(), "TCP [2001:2::129]:80");
        let real = RealKey {
            addr: "2001:2:0:1::11".parse().unwrap(),
            port: 8080,
        };
        assert_eq!(real.to_string(), "[2001:2:0:1::11]:8080");
        assert_eq!(tcp80().to_string(), "TCP 198.18.0.129:80");
        assert_eq!(real148().to_string(), "198.19.0.148:80");
        let line = r#"{"v":1,"cmd":"add_laddr","service":{"proto":"tcp","addr":"2001:2::129","port":80},"addr":"2001:2:0:1::160"}"#;
        let req: Request = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&req).unwrap(), line);

        // A listing: an IPv6 service not persistent lists 128.
        let info = ServiceInfo {
            service,
            scheduler: "wlc".into(),
            sched_flags: vec![],
            persistent: None,
            netmask: Netmask::default_for(service.addr),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: vec!["2001:2:0:1::160".parse().unwrap()],
            reals: vec![],
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(v["netmask"], 128);
        assert_eq!(v["service"]["addr"], "2001:2::129");
        assert_eq!(v["local_addrs"][0], "2001:2:0:1::160");
        assert_eq!(serde_json::from_value::<ServiceInfo>(v).unwrap(), info);
    }

    #[test]
    fn netmask_forms() {
        let parse = |json: &str| serde_json::from_str::<Netmask>(json);
        assert_eq!(
            parse(r#""255.255.0.0""#).unwrap(),
            Netmask::Mask([255, 255, 0, 0].into())
        );
        assert_eq!(parse("64").unwrap(), Netmask::PrefixLen(64));
        // The range is the service's business (apply); what fits no u8 is no netmask at all.
        assert_eq!(parse("0").unwrap(), Netmask::PrefixLen(0));
        for bad in [
            "256",
            "-1",
            "64.5",
            r#""64""#,
            r#""/64""#,
            r#""ffff::""#,
            "null",
            "[]",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("netmask") || e.contains("invalid type"),
                "{bad}: {e}"
            );
        }
        assert_eq!(Netmask::PrefixLen(64).to_string(), "64");
        assert_eq!(
            Netmask::from(Ipv4Addr::new(255, 255, 255, 0)).to_string(),
            "255.255.255.0"
        );
        let v4: IpAddr = Ipv4Addr::new(198, 18, 0, 1).into();
        let v6: IpAddr = "2001:2::1".parse().unwrap();
        assert_eq!(Netmask::default_for(v4), Netmask::Mask(Ipv4Addr::BROADCAST));
        assert_eq!(Netmask::default_for(v6), Netmask::PrefixLen(128));
        assert!(Netmask::PrefixLen(64).fits(v6) && !Netmask::PrefixLen(64).fits(v4));
        assert!(
            Netmask::Mask(DEFAULT_NETMASK).fits(v4) && !Netmask::Mask(DEFAULT_NETMASK).fits(v6)
        );
    }

    #[test]
    fn error_response_shape() {
        let r = Response::failure(
            Some(3),
            ErrorCode::NoSuchService,
            "no service TCP 1.2.3.4:80",
        );
        let v: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["id"], 3);
        assert_eq!(v["error"]["code"], "no_such_service");
    }

    #[test]
    fn unknown_command_is_an_error() {
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"explode"}"#).is_err());
    }
}
