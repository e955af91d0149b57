//! ipvsadm's command line and output formats, mapped onto the control protocol.
//!
//! This module owns everything `xvsadm` shares with ipvsadm: parsing its argument syntax
//! ([`parse`]) into protocol commands, the listings ([`format_list`]), the messages ipvsadm
//! prints for the kernel's errors ([`daemon_error_message`]) and its exit statuses. It is pure
//! (no I/O), so every format is unit tested against golden strings.
//!
//! The reference is ipvsadm 1.31 (git.kernel.org/pub/scm/utils/kernel/ipvsadm/ipvsadm.git,
//! commit "Release: Version 1.31"), files ipvsadm.c and libipvs/libipvs.c; the C format strings
//! are quoted beside the code that reproduces them.
//!
//! Where xvsadm knowingly differs from ipvsadm:
//! - addresses and ports are always printed numerically (no DNS or /etc/services lookups),
//!   with or without `-n`, and only numeric IPv4 addresses are accepted;
//! - a real server added without a forwarding method is masqueraded (`-m`), the only method
//!   xvs implements; ipvsadm's default is `-g`, and explicit `-g` / `-i` are refused;
//! - options may come in any order (ipvsadm wants the command first);
//! - the real server's port defaults to the service's port wherever `-r` appears (ipvsadm copies
//!   the port only if `-t`/`-u` came before `-r`);
//! - ipvsadm options xvs does not implement are refused by name instead of being sent;
//! - `-b flag-3` is refused (IPVS's third scheduler flag bit, read by no scheduler, which xvs
//!   does not keep), and `-b ,` (only commas) is "invalid scheduler flag `,'" where ipvsadm
//!   crashes (strtok gives strcmp a NULL);
//! - `-M` takes a numeric dotted quad only (ipvsadm: inet_aton or a host name), and the daemon
//!   wants it contiguous; a persistent service on port 0 (every port) is refused as not
//!   supported;
//! - `--persistent-conn` prints the PersistConn column as the daemon reports it (0 from a
//!   daemon that does not count templates per real server).

use crate::protocol::{
    Command, Counters, ErrorCode, Forward, ListReply, Protocol, RealKey, ServiceInfo, ServiceKey,
    VersionInfo, DEFAULT_NETMASK, DEFAULT_PERSISTENT_TIMEOUT, IPVS_VERSION, MAX_PERSISTENT_TIMEOUT,
    PROTOCOL_VERSION,
};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use xvs_scheduler::{Flags, SchedulerKind};

/// ipvsadm's default scheduler (`DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// Exit status of ipvsadm's `fail(2, ...)`: a bad value, a missing or illegal option, and also
/// "Can't initialize ipvs" (here: xvsd cannot be reached).
pub const EXIT_USAGE: u8 = 2;
/// ipvsadm's `exit(1)`: a listing failed (e.g. `-L -t` names no service).
pub const EXIT_LIST_FAILED: u8 = 1;
/// ipvsadm returns -1 from `main` when the kernel refuses a change ("Service already exists")
/// and when popt rejects the command line; the shell sees 255.
pub const EXIT_COMMAND_FAILED: u8 = 255;
/// See [`EXIT_COMMAND_FAILED`]: `tryhelp_exit(argv[0], -1)`.
pub const EXIT_TRY_HELP: u8 = 255;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Invocation {
    /// `-h`: print [`usage`].
    Help,
    /// `-v`: print [`version_line`] (and the daemon's version).
    Version,
    /// `-L`/`-l` (or no arguments at all): send [`Command::List`], print [`format_list`].
    List(ListOptions),
    /// A command that changes the table; the daemon answers `{}`.
    Apply(Command),
}

impl Invocation {
    /// The protocol command to send, if any.
    pub fn command(&self) -> Option<Command> {
        match self {
            Invocation::Help | Invocation::Version => None,
            Invocation::List(_) => Some(Command::List),
            Invocation::Apply(command) => Some(command.clone()),
        }
    }
}

/// How to print a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-t|-u VIP:PORT`: list only this service (and omit the version header, as ipvsadm does).
    pub service: Option<ServiceKey>,
    /// `-n`. Accepted; xvsadm always prints numeric addresses and ports.
    pub numeric: bool,
    /// `--stats`: traffic counters instead of weights and connection counts.
    pub stats: bool,
    /// `--thresholds`: upper and lower connection thresholds instead of forwarding method and
    /// weight (`--stats` wins when both are given, as in ipvsadm).
    pub thresholds: bool,
    /// `--persistent-conn`: weight, persistence templates (PersistConn) and connection counts
    /// (`--stats` and `--thresholds` win, as in ipvsadm).
    pub persistent_conn: bool,
    /// `--exact` / `-X`: counters in full instead of K/M/G/T.
    pub exact: bool,
    /// `--nosort`: the daemon's order (real servers in the order they were added).
    pub nosort: bool,
}

/// A command line xvsadm cannot run. `Display` gives the message (without the `xvsadm: `
/// prefix); [`UsageError::exit_code`] the status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// ipvsadm's `fail(2, ...)` messages: bad values, illegal or missing options.
    #[error("{0}")]
    Invalid(String),
    /// An ipvsadm option or mode xvs does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// No command, an unknown option or a missing option argument: ipvsadm points at `-h`.
    #[error("{0}\nTry `xvsadm -h' or 'xvsadm --help' for more information.")]
    TryHelp(String),
}

impl UsageError {
    /// ipvsadm's exit status for this kind of error.
    pub fn exit_code(&self) -> u8 {
        match self {
            UsageError::Invalid(_) | UsageError::Unsupported(_) => EXIT_USAGE,
            UsageError::TryHelp(_) => EXIT_TRY_HELP,
        }
    }
}

/// A listing that cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    /// `-L -t|-u` names a service the daemon does not have (libipvs: "No such service").
    #[error("No such service")]
    NoSuchService(ServiceKey),
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// ipvsadm's commands, in the order of its `CMD_*` constants (the rows of [`RULES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    Flush,
    List,
    AddServer,
    DelServer,
    EditServer,
}

impl Cmd {
    /// ipvsadm's `cmdnames[]`.
    fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DelService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DelServer => "delete-server",
            Cmd::EditServer => "edit-server",
        }
    }
}

/// The ipvsadm options xvsadm implements, in the order of ipvsadm's `OPTC_*` constants (the
/// columns of [`RULES`]); that order decides which error ipvsadm reports first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Stats,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
}

impl Opt {
    const ALL: [Opt; 16] = [
        Opt::Numeric,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::Stats,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::SchedFlags,
    ];

    /// ipvsadm's `optnames[]`.
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Stats => "stats",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::SchedFlags => "sched-flags",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// ipvsadm's `commands_v_options` table restricted to the columns of [`Opt`]
/// (`-n svc -s -p -M -r fwd -w -x -y --stats --thresholds --persistent-conn --nosort --exact
/// -b`): `+` compulsory, `x` illegal, ` ` optional. ipvsadm marks the service `1` (exclusive)
/// for `list`, exclusive with `-c`, `--timeout` and `--daemon`, none of which xvsadm
/// implements, so it is optional here.
const RULES: [&[u8; 16]; 8] = [
    //-n svc -s -p -M -r fwd -w -x -y st thr pc srt ex -b
    b"x+   xxxxxxxxxx ", // add-service
    b"x+   xxxxxxxxxx ", // edit-service
    b"x+xxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxx", // flush
    b" 1xxxxxxxx     x", // list
    b"x+xxx+    xxxxxx", // add-server
    b"x+xxx+xxxxxxxxxx", // delete-server
    b"x+xxx+    xxxxxx", // edit-server
];

/// What an option does once recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Command(Cmd),
    Help,
    Version,
    Tcp,
    Udp,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Gatewaying,
    Ipip,
    Weight,
    UThreshold,
    LThreshold,
    SchedFlags,
    Numeric,
    Stats,
    Thresholds,
    PersistentConn,
    Exact,
    NoSort,
    /// `--sort`: "does nothing, for backwards compatibility".
    Sort,
    /// An ipvsadm option xvs does not implement; refused with its long name.
    Unsupported,
}

/// Whether an option takes an argument (popt's `argInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// `POPT_ARG_NONE`.
    None,
    /// `POPT_ARG_STRING`: the rest of the cluster, `=value`, or else the next word, whatever
    /// it is.
    Required,
    /// `POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL` (`-p`): the rest of the cluster, `=value`, or
    /// else the next word unless it starts with `-`, or else none.
    Optional,
}

/// One entry of ipvsadm's popt `options_table`.
struct Spec {
    short: Option<char>,
    long: &'static str,
    arg: Arg,
    key: Key,
}

const fn spec(short: Option<char>, long: &'static str, takes_arg: bool, key: Key) -> Spec {
    Spec {
        short,
        long,
        arg: if takes_arg { Arg::Required } else { Arg::None },
        key,
    }
}

/// ipvsadm 1.31's options, short and long. `-L` and `-l` are both `--list`.
const SPECS: &[Spec] = &[
    spec(
        Some('A'),
        "add-service",
        false,
        Key::Command(Cmd::AddService),
    ),
    spec(
        Some('E'),
        "edit-service",
        false,
        Key::Command(Cmd::EditService),
    ),
    spec(
        Some('D'),
        "delete-service",
        false,
        Key::Command(Cmd::DelService),
    ),
    spec(Some('C'), "clear", false, Key::Command(Cmd::Flush)),
    spec(Some('L'), "list", false, Key::Command(Cmd::List)),
    spec(Some('l'), "list", false, Key::Command(Cmd::List)),
    spec(Some('a'), "add-server", false, Key::Command(Cmd::AddServer)),
    spec(
        Some('e'),
        "edit-server",
        false,
        Key::Command(Cmd::EditServer),
    ),
    spec(
        Some('d'),
        "delete-server",
        false,
        Key::Command(Cmd::DelServer),
    ),
    spec(Some('h'), "help", false, Key::Help),
    spec(Some('v'), "version", false, Key::Version),
    spec(Some('t'), "tcp-service", true, Key::Tcp),
    spec(Some('u'), "udp-service", true, Key::Udp),
    spec(Some('s'), "scheduler", true, Key::Scheduler),
    // { "persistent", 'p', POPT_ARG_STRING|POPT_ARGFLAG_OPTIONAL, &optarg, 'p', NULL, NULL }
    Spec {
        short: Some('p'),
        long: "persistent",
        arg: Arg::Optional,
        key: Key::Persistent,
    },
    spec(Some('M'), "netmask", true, Key::Netmask),
    spec(Some('r'), "real-server", true, Key::RealServer),
    spec(Some('m'), "masquerading", false, Key::Masquerading),
    spec(Some('g'), "gatewaying", false, Key::Gatewaying),
    spec(Some('i'), "ipip", false, Key::Ipip),
    spec(Some('w'), "weight", true, Key::Weight),
    spec(Some('x'), "u-threshold", true, Key::UThreshold),
    spec(Some('y'), "l-threshold", true, Key::LThreshold),
    spec(Some('b'), "sched-flags", true, Key::SchedFlags),
    spec(Some('n'), "numeric", false, Key::Numeric),
    spec(None, "stats", false, Key::Stats),
    spec(None, "thresholds", false, Key::Thresholds),
    spec(None, "persistent-conn", false, Key::PersistentConn),
    spec(Some('X'), "exact", false, Key::Exact),
    spec(None, "nosort", false, Key::NoSort),
    spec(None, "sort", false, Key::Sort),
    // Known to ipvsadm, not implemented by xvs (yet).
    spec(Some('Z'), "zero", false, Key::Unsupported),
    spec(None, "set", false, Key::Unsupported),
    spec(Some('R'), "restore", false, Key::Unsupported),
    spec(Some('S'), "save", false, Key::Unsupported),
    spec(None, "start-daemon", true, Key::Unsupported),
    spec(None, "stop-daemon", true, Key::Unsupported),
    spec(None, "sctp-service", true, Key::Unsupported),
    spec(Some('f'), "fwmark-service", true, Key::Unsupported),
    spec(Some('c'), "connection", false, Key::Unsupported),
    spec(None, "mcast-interface", true, Key::Unsupported),
    spec(None, "syncid", true, Key::Unsupported),
    spec(None, "timeout", false, Key::Unsupported),
    spec(None, "daemon", false, Key::Unsupported),
    spec(None, "rate", false, Key::Unsupported),
    spec(Some('6'), "ipv6", false, Key::Unsupported),
    spec(Some('o'), "ops", false, Key::Unsupported),
    spec(None, "pe", true, Key::Unsupported),
    spec(None, "mcast-group", true, Key::Unsupported),
    spec(None, "mcast-port", true, Key::Unsupported),
    spec(None, "mcast-ttl", true, Key::Unsupported),
    spec(None, "sync-maxlen", true, Key::Unsupported),
    spec(None, "tun-info", false, Key::Unsupported),
    spec(None, "tun-type", true, Key::Unsupported),
    spec(None, "tun-port", true, Key::Unsupported),
    spec(None, "tun-nocsum", false, Key::Unsupported),
    spec(None, "tun-csum", false, Key::Unsupported),
    spec(None, "tun-remcsum", false, Key::Unsupported),
];

/// One recognised option: its spec, how the user spelled it, its argument.
struct Found {
    spec: &'static Spec,
    shown: String,
    value: Option<String>,
}

enum Token {
    Opt(Found),
    Arg(String),
}

/// Splits argv as popt does for ipvsadm: `-Ln` clusters, `-t ADDR` or `-tADDR`,
/// `--weight 3` or `--weight=3`, `--` ends the options.
struct Tokens<'a> {
    args: &'a [String],
    pos: usize,
    /// The rest of a short-option cluster (`n` after `-L` in `-Ln`).
    cluster: Option<String>,
    only_args: bool,
}

impl<'a> Tokens<'a> {
    fn new(args: &'a [String]) -> Self {
        Tokens {
            args,
            pos: 0,
            cluster: None,
            only_args: false,
        }
    }

    fn next_token(&mut self) -> Option<Result<Token, UsageError>> {
        if let Some(rest) = self.cluster.take() {
            return Some(self.short(&rest));
        }
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        if self.only_args {
            return Some(Ok(Token::Arg(arg.clone())));
        }
        if arg == "--" {
            self.only_args = true;
            return self.next_token();
        }
        if let Some(long) = arg.strip_prefix("--") {
            return Some(self.long(long));
        }
        match arg.strip_prefix('-') {
            Some(cluster) if !cluster.is_empty() => Some(self.short(cluster)),
            _ => Some(Ok(Token::Arg(arg.clone()))),
        }
    }

    fn long(&mut self, text: &str) -> Result<Token, UsageError> {
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (text, None),
        };
        let shown = format!("--{name}");
        let spec = SPECS
            .iter()
            .find(|s| s.long == name)
            .ok_or_else(|| UsageError::TryHelp(format!("unknown option '{shown}'")))?;
        let value = match (spec.key, spec.arg, inline) {
            // Refused by name before anything else is checked.
            (Key::Unsupported, _, _) => None,
            (_, Arg::Required | Arg::Optional, Some(value)) => Some(value),
            (_, Arg::Required, None) => Some(self.value_for(&shown)?),
            (_, Arg::Optional, None) => self.optional_value(),
            (_, Arg::None, Some(_)) => {
                return Err(UsageError::TryHelp(format!(
                    "option '{shown}' does not take an argument"
                )))
            }
            (_, Arg::None, None) => None,
        };
        Ok(Token::Opt(Found { spec, shown, value }))
    }

    fn short(&mut self, cluster: &str) -> Result<Token, UsageError> {
        let mut chars = cluster.chars();
        let Some(c) = chars.next() else {
            return Err(UsageError::TryHelp("empty option".into()));
        };
        let rest = chars.as_str();
        let shown = format!("-{c}");
        let spec = SPECS
            .iter()
            .find(|s| s.short == Some(c))
            .ok_or_else(|| UsageError::TryHelp(format!("unknown option '{shown}'")))?;
        let value = if spec.key == Key::Unsupported {
            None
        } else if spec.arg != Arg::None {
            // The rest of the cluster is the argument (`-w3`, `-p600`), else the next word.
            if !rest.is_empty() {
                Some(rest.to_string())
            } else if spec.arg == Arg::Required {
                Some(self.value_for(&shown)?)
            } else {
                self.optional_value()
            }
        } else {
            if !rest.is_empty() {
                self.cluster = Some(rest.to_string());
            }
            None
        };
        Ok(Token::Opt(Found { spec, shown, value }))
    }

    /// popt's optional argument: the next word unless there is none or it starts with `-`
    /// (`-p -M 255.255.255.0`, `-p --`), in which case it stays for the next option.
    fn optional_value(&mut self) -> Option<String> {
        let next = self.args.get(self.pos).filter(|a| !a.starts_with('-'))?;
        self.pos += 1;
        Some(next.clone())
    }

    fn value_for(&mut self, shown: &str) -> Result<String, UsageError> {
        let value = self
            .args
            .get(self.pos)
            .ok_or_else(|| UsageError::TryHelp(format!("option '{shown}' requires an argument")))?;
        self.pos += 1;
        Ok(value.clone())
    }
}

/// Everything the options said, before it becomes an [`Invocation`].
#[derive(Default)]
struct Parsed {
    cmd: Option<Cmd>,
    /// [`Opt::bit`]s of the options given, for ipvsadm's table checks.
    options: u32,
    service: Option<ServiceKey>,
    scheduler: Option<String>,
    /// `-p`'s timeout (the default when `-p` has no argument).
    persistent: Option<u32>,
    /// `-M`.
    netmask: Option<Ipv4Addr>,
    real: Option<(Ipv4Addr, Option<u16>)>,
    forward: Option<(Forward, String)>,
    weight: Option<u32>,
    upper_threshold: Option<u32>,
    lower_threshold: Option<u32>,
    /// `-b`'s argument as given (ipvsadm parses it once all options are read).
    sched_flags: Option<String>,
    list: ListOptions,
    unexpected: Option<String>,
}

impl Parsed {
    /// ipvsadm's `set_command`.
    fn set_command(&mut self, cmd: Cmd) -> Result<(), UsageError> {
        if self.cmd.is_some() {
            return Err(UsageError::Invalid("multiple commands specified".into()));
        }
        self.cmd = Some(cmd);
        Ok(())
    }

    /// ipvsadm's `set_option`.
    fn set_option(&mut self, opt: Opt) -> Result<(), UsageError> {
        if self.options & opt.bit() != 0 {
            return Err(UsageError::Invalid(format!(
                "multiple '{}' options specified",
                opt.name()
            )));
        }
        self.options |= opt.bit();
        Ok(())
    }

    /// Applies one option; `Some` for `-h` / `-v`, which end parsing as in ipvsadm.
    fn apply(&mut self, found: Found) -> Result<Option<Invocation>, UsageError> {
        let given = found.value.clone();
        let value = found.value.unwrap_or_default();
        match found.spec.key {
            Key::Command(cmd) => self.set_command(cmd)?,
            Key::Help | Key::Version => {
                if self.cmd.is_some() {
                    return Err(UsageError::Invalid("multiple commands specified".into()));
                }
                return Ok(Some(if found.spec.key == Key::Help {
                    Invocation::Help
                } else {
                    Invocation::Version
                }));
            }
            Key::Tcp | Key::Udp => {
                self.set_option(Opt::Service)?;
                let proto = if found.spec.key == Key::Tcp {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                let (addr, port) = parse_address(&value, "virtual server")?;
                // A missing port is 0, as in ipvsadm; -A/-E reject it below.
                self.service = Some(ServiceKey {
                    proto,
                    addr,
                    port: port.unwrap_or(0),
                });
            }
            Key::Scheduler => {
                self.set_option(Opt::Scheduler)?;
                self.scheduler = Some(value);
            }
            Key::Persistent => {
                // set_option(options, OPTC_PERSISTENT);
                // ce->svc.flags |= IP_VS_SVC_F_PERSISTENT;
                // ce->svc.timeout = parse_timeout(optarg, 1, MAX_TIMEOUT);
                self.set_option(Opt::Persistent)?;
                self.persistent = Some(match given {
                    // parse_timeout(NULL, ...): IPVS_SVC_PERSISTENT_TIMEOUT.
                    None => DEFAULT_PERSISTENT_TIMEOUT,
                    Some(text) => string_to_number(&text, 1, i64::from(MAX_PERSISTENT_TIMEOUT))
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            UsageError::Invalid(format!("invalid timeout value `{text}' specified"))
                        })?,
                });
            }
            Key::Netmask => {
                // parse_netmask (inet_aton, or a host name); numeric dotted quads only here.
                self.set_option(Opt::Netmask)?;
                self.netmask = Some(value.parse::<Ipv4Addr>().map_err(|_| {
                    UsageError::Invalid("illegal virtual server persistent mask specified".into())
                })?);
            }
            Key::RealServer => {
                self.set_option(Opt::Server)?;
                self.real = Some(parse_address(&value, "real server")?);
            }
            Key::Masquerading | Key::Gatewaying | Key::Ipip => {
                self.set_option(Opt::Forward)?;
                let forward = match found.spec.key {
                    Key::Masquerading => Forward::Masq,
                    Key::Gatewaying => Forward::Route,
                    _ => Forward::Tunnel,
                };
                self.forward = Some((forward, found.shown));
            }
            Key::Weight => {
                self.set_option(Opt::Weight)?;
                let weight = string_to_number(&value, 0, 65535)
                    .ok_or_else(|| UsageError::Invalid("illegal weight specified".into()))?;
                self.weight = u32::try_from(weight).ok();
            }
            Key::UThreshold => {
                self.set_option(Opt::UThreshold)?;
                self.upper_threshold = Some(threshold(&value, "illegal u_threshold specified")?);
            }
            Key::LThreshold => {
                self.set_option(Opt::LThreshold)?;
                self.lower_threshold = Some(threshold(&value, "illegal l_threshold specified")?);
            }
            Key::SchedFlags => {
                self.set_option(Opt::SchedFlags)?;
                self.sched_flags = Some(value);
            }
            Key::Numeric => {
                self.set_option(Opt::Numeric)?;
                self.list.numeric = true;
            }
            Key::Stats => {
                self.set_option(Opt::Stats)?;
                self.list.stats = true;
            }
            Key::Thresholds => {
                self.set_option(Opt::Thresholds)?;
                self.list.thresholds = true;
            }
            Key::PersistentConn => {
                self.set_option(Opt::PersistentConn)?;
                self.list.persistent_conn = true;
            }
            Key::Exact => {
                self.set_option(Opt::Exact)?;
                self.list.exact = true;
            }
            Key::NoSort => {
                self.set_option(Opt::NoSort)?;
                self.list.nosort = true;
            }
            Key::Sort => {}
            Key::Unsupported => {
                return Err(UsageError::Unsupported(format!(
                    "option '{}' ({}) is not supported yet",
                    found.shown, found.spec.long
                )))
            }
        }
        Ok(None)
    }

    /// ipvsadm's `generic_opt_check`: the first missing compulsory or illegal option, in
    /// option order.
    fn check_options(&self, cmd: Cmd) -> Result<(), UsageError> {
        let row = RULES[cmd as usize];
        for (opt, rule) in Opt::ALL.into_iter().zip(row.iter()) {
            let given = self.options & opt.bit() != 0;
            match (*rule, given) {
                (b'+', false) => {
                    return Err(UsageError::Invalid(format!(
                        "You need to supply the '{}' option for the '{}' command",
                        opt.name(),
                        cmd.name()
                    )))
                }
                (b'x', true) => {
                    return Err(UsageError::Invalid(format!(
                        "Illegal '{}' option with the '{}' command",
                        opt.name(),
                        cmd.name()
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Invocation, UsageError> {
        if let Some(arg) = self.unexpected.take() {
            return Err(UsageError::Invalid(format!("unexpected argument {arg}")));
        }
        let Some(cmd) = self.cmd else {
            return Err(UsageError::TryHelp(
                "no command given (one of -A -E -D -C -a -e -d -L)".into(),
            ));
        };
        // ipvsadm parses -b at the end of parse_options, against -s or its default scheduler
        // whatever the command, before generic_opt_check: `-a ... -b sh-port` is "incompatible
        // scheduler flag `sh-port'", `-a ... -b flag-1` "Illegal 'sched-flags' option ...".
        let sched_flags = self.sched_flag_names()?;
        self.check_options(cmd)?;
        // check_options guarantees a service (and a real) where the command requires one;
        // these errors only restate that without a panic.
        let missing = |opt: Opt| {
            UsageError::Invalid(format!(
                "You need to supply the '{}' option for the '{}' command",
                opt.name(),
                cmd.name()
            ))
        };
        let service = self.service.ok_or_else(|| missing(Opt::Service));
        let real = || {
            let service = service.clone()?;
            let (addr, port) = self.real.ok_or_else(|| missing(Opt::Server))?;
            Ok::<_, UsageError>((
                service,
                RealKey {
                    addr,
                    port: port.unwrap_or(service.port),
                },
            ))
        };
        let command = match cmd {
            Cmd::List => {
                let mut list = self.list.clone();
                list.service = self.service;
                return Ok(Invocation::List(list));
            }
            Cmd::Flush => Command::Clear,
            Cmd::AddService | Cmd::EditService => {
                let service = service?;
                if service.port == 0 {
                    // "Make sure that port zero service is persistent"; xvs has no services
                    // of every port, persistent or not.
                    if self.persistent.is_none() {
                        return Err(UsageError::Invalid(
                            "Zero port specified for non-persistent service".into(),
                        ));
                    }
                    return Err(UsageError::Unsupported(
                        "a persistent service on port 0 (every port) is not supported".into(),
                    ));
                }
                // ipvsadm sends the timeout and the mask whatever the command: -E without -p
                // makes the service non-persistent (0 here), without -M sets /32. -M without
                // -p is accepted, as in ipvsadm, and has no effect.
                let persistent = Some(self.persistent.unwrap_or(0));
                let netmask = Some(self.netmask.unwrap_or(DEFAULT_NETMASK));
                // ipvsadm sends its default scheduler whenever -s is absent, for -E too.
                let scheduler = Some(
                    self.scheduler
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
                );
                // Like the scheduler, the flags are always sent: -E without -b clears them.
                let sched_flags = Some(sched_flags);
                if cmd == Cmd::AddService {
                    Command::AddService {
                        service,
                        scheduler,
                        sched_flags,
                        persistent,
                        netmask,
                    }
                } else {
                    Command::EditService {
                        service,
                        scheduler,
                        sched_flags,
                        persistent,
                        netmask,
                    }
                }
            }
            Cmd::DelService => Command::DelService { service: service? },
            Cmd::DelServer => {
                let (service, real) = real()?;
                Command::DelReal { service, real }
            }
            Cmd::AddServer | Cmd::EditServer => {
                let (service, real) = real()?;
                let forward = match &self.forward {
                    None | Some((Forward::Masq, _)) => Forward::Masq,
                    Some((Forward::Route, shown)) => {
                        return Err(unsupported_forward("direct routing", shown))
                    }
                    Some((Forward::Tunnel, shown)) => {
                        return Err(unsupported_forward("tunneling", shown))
                    }
                };
                // Like ipvsadm, -a and -e send every field: no -w means weight 1, no -x / -y
                // threshold 0.
                let weight = Some(self.weight.unwrap_or(1));
                let forward = Some(forward);
                let upper_threshold = Some(self.upper_threshold.unwrap_or(0));
                let lower_threshold = Some(self.lower_threshold.unwrap_or(0));
                if cmd == Cmd::AddServer {
                    Command::AddReal {
                        service,
                        real,
                        weight,
                        forward,
                        upper_threshold,
                        lower_threshold,
                    }
                } else {
                    Command::EditReal {
                        service,
                        real,
                        weight,
                        forward,
                        upper_threshold,
                        lower_threshold,
                    }
                }
            }
        };
        Ok(Invocation::Apply(command))
    }

    /// ipvsadm's `parse_sched_flags`: `-b`'s comma-separated names (strtok: empty names
    /// skipped), checked against `-s` or, without it, the default scheduler. An empty `-b ''`
    /// sets no flags, as in ipvsadm.
    fn sched_flag_names(&self) -> Result<Vec<String>, UsageError> {
        let Some(arg) = self.sched_flags.as_deref().filter(|a| !a.is_empty()) else {
            return Ok(Vec::new());
        };
        let names: Vec<String> = arg
            .split(',')
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if names.is_empty() {
            // Only commas: ipvsadm hands strtok's NULL to strcmp and crashes.
            return Err(UsageError::Invalid(format!(
                "invalid scheduler flag `{arg}'"
            )));
        }
        // ipvsadm compares the scheduler's name with "sh" and "mh" only; a name xvs does not
        // know stands for "neither" here (the daemon refuses it).
        let sched = self.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER);
        let kind = sched
            .parse::<SchedulerKind>()
            .unwrap_or(SchedulerKind::WeightedLeastConnection);
        Flags::from_names(kind, &names).map_err(UsageError::Invalid)?;
        Ok(names)
    }
}

/// `-x` / `-y`: ipvsadm's `string_to_number(optarg, 0, INT_MAX)`.
fn threshold(value: &str, illegal: &str) -> Result<u32, UsageError> {
    string_to_number(value, 0, i64::from(i32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| UsageError::Invalid(illegal.into()))
}

fn unsupported_forward(what: &str, shown: &str) -> UsageError {
    UsageError::Unsupported(format!(
        "xvs implements masquerading (-m) only; {what} ({shown}) is not supported"
    ))
}

/// Parses ipvsadm's arguments (without the program name). No arguments lists the table, as
/// ipvsadm does.
pub fn parse(args: &[String]) -> Result<Invocation, UsageError> {
    if args.is_empty() {
        return Ok(Invocation::List(ListOptions::default()));
    }
    let mut parsed = Parsed::default();
    let mut tokens = Tokens::new(args);
    while let Some(token) = tokens.next_token() {
        match token? {
            // popt collects stray words; ipvsadm rejects the first after all options.
            Token::Arg(arg) => {
                parsed.unexpected.get_or_insert(arg);
            }
            Token::Opt(found) => {
                if let Some(done) = parsed.apply(found)? {
                    return Ok(done);
                }
            }
        }
    }
    parsed.finish()
}

/// Removes xvsadm's own `--control PATH` (or `--control=PATH`) from `args`, wherever it
/// appears before a `--`, and returns the path.
pub fn take_control_option(args: &mut Vec<String>) -> Result<Option<PathBuf>, UsageError> {
    let mut path = None;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            break;
        }
        let value = if arg == "--control" {
            let value = args.get(i + 1).cloned().ok_or_else(|| {
                UsageError::TryHelp("option '--control' requires an argument".into())
            })?;
            args.drain(i..i + 2);
            value
        } else if let Some(value) = arg.strip_prefix("--control=") {
            let value = value.to_string();
            args.remove(i);
            value
        } else {
            i += 1;
            continue;
        };
        if value.is_empty() {
            return Err(UsageError::Invalid("empty --control path".into()));
        }
        if path.replace(PathBuf::from(value)).is_some() {
            return Err(UsageError::Invalid(
                "multiple '--control' options specified".into(),
            ));
        }
    }
    Ok(path)
}

/// ipvsadm's `parse_service` for IPv4: `ADDR[:PORT]`, returning the port only if given.
/// ipvsadm also resolves host and service names and takes IPv6; xvsadm takes numbers only.
fn parse_address(text: &str, what: &str) -> Result<(Ipv4Addr, Option<u16>), UsageError> {
    let illegal = || UsageError::Invalid(format!("illegal {what} address[:port] specified"));
    if text.starts_with('[') || text.matches(':').count() > 1 {
        return Err(UsageError::Unsupported(format!(
            "{what} address '{text}': IPv6 is not supported yet"
        )));
    }
    let (addr, port) = match text.rsplit_once(':') {
        Some((addr, port)) => {
            let port = string_to_number(port, 0, 65535).ok_or_else(illegal)?;
            (addr, Some(u16::try_from(port).map_err(|_| illegal())?))
        }
        None => (text, None),
    };
    let addr = addr.parse::<Ipv4Addr>().map_err(|_| illegal())?;
    Ok((addr, port))
}

/// ipvsadm's `string_to_number`: the whole string is a decimal number (strtol: optional
/// leading blanks and sign) within `min..=max`.
fn string_to_number(text: &str, min: i64, max: i64) -> Option<i64> {
    let trimmed = text.trim_start();
    let (negative, digits) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.parse::<i64>().ok()?;
    let n = if negative { -magnitude } else { magnitude };
    (min..=max).contains(&n).then_some(n)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// The title lines of a listing, ipvsadm's `print_title`.
fn title(opts: &ListOptions) -> String {
    if opts.stats {
        // printf("%-33s %8s %8s %8s %8s %8s\n"
        //        "  -> RemoteAddress:Port\n",
        //        "Prot LocalAddress:Port",
        //        "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes");
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if opts.thresholds {
        // printf("%-33s %-10s %-10s %-10s %-10s\n"
        //        "  -> RemoteAddress:Port\n",
        //        "Prot LocalAddress:Port",
        //        "Uthreshold", "Lthreshold", "ActiveConn", "InActConn");
        format!(
            "{:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if opts.persistent_conn {
        // printf("%-33s %-9s %-11s %-10s %-10s\n"
        //        "  -> RemoteAddress:Port\n",
        //        "Prot LocalAddress:Port",
        //        "Weight", "PersistConn", "ActiveConn", "InActConn");
        format!(
            "{:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else {
        "Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
            .to_string()
    }
}

/// ipvsadm's `print_largenum`: right-aligned in 9 columns, scaled to K/M/G/T from 100 million
/// up unless `--exact`.
fn largenum(out: &mut String, i: u64, exact: bool) {
    // `write!` into a String cannot fail.
    let _ = if exact {
        // len = snprintf(mytmp, 32, "%llu", i); printf("%*llu", len <= 8 ? 9 : len + 1, i);
        let len = i.to_string().len();
        let width = if len <= 8 { 9 } else { len + 1 };
        write!(out, "{i:>width$}")
    } else if i < 100_000_000 {
        write!(out, "{i:>9}") // "%9llu"
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000) // "%8lluK", i / 1000
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000) // "%8lluM", i / 1000000
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000) // "%8lluG", i / 1000000000ULL
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000) // "%8lluT", i / 1000000000000ULL
    };
}

fn counters(out: &mut String, c: &Counters, exact: bool) {
    for n in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
        largenum(out, n, exact);
    }
}

/// One service and its real servers, ipvsadm's `print_service_entry`.
fn service_entry(out: &mut String, svc: &ServiceInfo, opts: &ListOptions) {
    // snprintf(svc_name, sizeof(svc_name), "%-4s %s", stype, vname);
    // if (se->af != AF_INET6) svc_name[33] = '\0';
    let mut svc_name = format!(
        "{:<4} {}:{}",
        svc.service.proto.ipvsadm_name(),
        svc.service.addr,
        svc.service.port
    );
    svc_name.truncate(33);
    // `write!` into a String cannot fail.
    if opts.stats {
        // printf("%-33s", svc_name); print_largenum(se->stats64.conns, format); ...
        let _ = write!(out, "{svc_name:<33}");
        counters(out, &svc.stats, opts.exact);
    } else {
        // printf("%s %s", svc_name, se->sched_name);
        // if (se->flags & (IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 | IP_VS_SVC_F_SCHED3)) {
        //         printf(" ("); print_sched_flags(se); printf(")"); }
        // print_sched_flags joins the names with ',' ("sh-fallback,sh-port"); the daemon
        // sends them already named for the scheduler.
        let _ = write!(out, "{svc_name} {}", svc.scheduler);
        if !svc.sched_flags.is_empty() {
            let _ = write!(out, " ({})", svc.sched_flags.join(","));
        }
        // if (se->flags & IP_VS_SVC_F_PERSISTENT) {
        //         printf(" persistent %u", se->timeout);
        //         if (se->af == AF_INET)
        //                 if (se->netmask != (unsigned long int) 0xffffffff) {
        //                         struct in_addr mask;
        //                         mask.s_addr = se->netmask;
        //                         printf(" mask %s", inet_ntoa(mask));
        //                 }
        //         ...
        //         if (se->pe_name[0]) printf(" pe %s", se->pe_name);
        // }
        // if (se->flags & IP_VS_SVC_F_ONEPACKET) printf(" ops");
        // xvs has neither persistence engines nor one-packet scheduling.
        if let Some(timeout) = svc.persistent {
            let _ = write!(out, " persistent {timeout}");
            if svc.netmask != DEFAULT_NETMASK {
                let _ = write!(out, " mask {}", svc.netmask);
            }
        }
    }
    out.push('\n');

    let mut reals: Vec<_> = svc.reals.iter().collect();
    if !opts.nosort {
        // libipvs ipvs_cmp_dests: address, then port. (It subtracts the u32 addresses into an
        // int, which misorders addresses 2^31 or more apart; xvsadm sorts numerically.)
        reals.sort_by_key(|r| (r.real.addr, r.real.port));
    }
    for r in reals {
        // if (!(format & FMT_RULE) && (e->af != AF_INET6)) dname[28] = '\0';
        let mut dname = format!("{}:{}", r.real.addr, r.real.port);
        dname.truncate(28);
        let _ = if opts.stats {
            // printf("  -> %-28s", dname); print_largenum(e->stats64.conns, format); ...
            write!(out, "  -> {dname:<28}")
        } else if opts.thresholds {
            // printf("  -> %-28s %-10u %-10u %-10u %-10u\n", dname,
            //        e->u_threshold, e->l_threshold, e->activeconns, e->inactconns);
            write!(
                out,
                "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
                r.upper_threshold, r.lower_threshold, r.active_conns, r.inactive_conns
            )
        } else if opts.persistent_conn {
            // printf("  -> %-28s %-9u %-11u %-10u %-10u\n", dname,
            //        e->weight, e->persistconns, e->activeconns, e->inactconns);
            write!(
                out,
                "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
                r.weight, r.persist_conns, r.active_conns, r.inactive_conns
            )
        } else {
            // printf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, fwd_name(e->conn_flags),
            //        e->weight, e->activeconns, e->inactconns);
            write!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward.ipvsadm_name(),
                r.weight,
                r.active_conns,
                r.inactive_conns
            )
        };
        if opts.stats {
            counters(out, &r.stats, opts.exact);
        }
        out.push('\n');
    }
}

/// `-L`: ipvsadm's `list_all` (header, title, every service) or, with `-t|-u`, its
/// `list_service` (title and that service only, no header).
pub fn format_list(reply: &ListReply, opts: &ListOptions) -> Result<String, ListError> {
    let mut out = String::new();
    if let Some(key) = opts.service {
        let svc = reply
            .services
            .iter()
            .find(|s| s.service == key)
            .ok_or(ListError::NoSuchService(key))?;
        out.push_str(&title(opts));
        service_entry(&mut out, svc, opts);
        return Ok(out);
    }
    // printf("IP Virtual Server version %d.%d.%d (size=%d)\n",
    //        NVERSION(ipvs_info.version), ipvs_info.size);
    let _ = writeln!(
        out,
        "IP Virtual Server version {IPVS_VERSION} (size={})",
        reply.conn_tab_size
    );
    out.push_str(&title(opts));
    let mut services: Vec<_> = reply.services.iter().collect();
    if !opts.nosort {
        // libipvs ipvs_cmp_services: fwmark, family, protocol (TCP 6 before UDP 17), address,
        // port.
        services.sort_by_key(|s| (s.service.proto, s.service.addr, s.service.port));
    }
    for svc in services {
        service_entry(&mut out, svc, opts);
    }
    Ok(out)
}

/// The message ipvsadm prints when the kernel refuses `command` (libipvs `ipvs_strerror`);
/// the daemon's own message where ipvsadm has no equivalent.
pub fn daemon_error_message(command: &Command, code: ErrorCode, message: &str) -> String {
    let on_real = matches!(
        command,
        Command::AddReal { .. } | Command::EditReal { .. } | Command::DelReal { .. }
    );
    // IPVS answers ERANGE when the lower threshold exceeds the upper one (ip_vs_add_dest,
    // ip_vs_edit_dest); libipvs has no message of its own for it, so ipvsadm prints
    // strerror(ERANGE).
    let thresholds_reversed = match command {
        Command::AddReal {
            upper_threshold,
            lower_threshold,
            ..
        }
        | Command::EditReal {
            upper_threshold,
            lower_threshold,
            ..
        } => lower_threshold.unwrap_or(0) > upper_threshold.unwrap_or(0),
        _ => false,
    };
    let text = match code {
        // { ipvs_add_service, EEXIST, "Service already exists" }
        ErrorCode::ServiceExists => "Service already exists",
        // { ipvs_add_dest / ipvs_update_dest / ipvs_del_dest, ESRCH, "Service not defined" }
        ErrorCode::NoSuchService if on_real => "Service not defined",
        // { ipvs_update_service / ipvs_del_service / ipvs_get_service, ESRCH, "No such service" }
        ErrorCode::NoSuchService => "No such service",
        // { ipvs_add_dest, EEXIST, "Destination already exists" }
        ErrorCode::RealExists => "Destination already exists",
        // { ipvs_update_dest / ipvs_del_dest, ENOENT, "No such destination" }
        ErrorCode::NoSuchReal => "No such destination",
        // { ipvs_add_service / ipvs_update_service, ENOENT,
        //   "Scheduler or persistence engine not found" }
        // ipvsadm's words, then ours: which scheduler, and whether xvs lacks it or IPVS does.
        ErrorCode::UnknownScheduler => {
            return format!("Scheduler or persistence engine not found: {message}")
        }
        ErrorCode::InvalidArgument if thresholds_reversed => {
            return format!("Numerical result out of range: {message}")
        }
        _ => message,
    };
    text.to_string()
}

/// `-v`: xvsadm's own version line.
pub fn version_line() -> String {
    format!(
        "xvsadm v{} (ipvsadm v1.31 syntax, control protocol v{PROTOCOL_VERSION})",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-v`: the daemon's version, as it answered.
pub fn format_daemon_version(info: &VersionInfo) -> String {
    format!(
        "xvsd v{} (IPVS v{} compatible, control protocol v{})",
        info.daemon, info.ipvs, info.protocol
    )
}

/// `-h`: ipvsadm's usage text, cut down to what xvsadm implements.
pub fn usage() -> String {
    format!(
        r#"{version}
Usage:
  xvsadm [--control PATH] -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask]
                                    [-b sched-flags]
  xvsadm [--control PATH] -D virtual-service
  xvsadm [--control PATH] -C
  xvsadm [--control PATH] -a|e virtual-service -r server-address [-m] [-w weight]
                                    [-x uthreshold] [-y lthreshold]
  xvsadm [--control PATH] -d virtual-service -r server-address
  xvsadm [--control PATH] -L|l [virtual-service] [-n]
                                    [--stats|--thresholds|--persistent-conn] [--exact]
                                    [--nosort]
  xvsadm -h|-v

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table (also with no arguments at all)
  --help            -h        display this help message
  --version         -v        display the versions of xvsadm and xvsd

virtual-service:
  --tcp-service|-t  service-address   service-address is IPv4-address:port
  --udp-service|-u  service-address   service-address is IPv4-address:port

Options:
  --scheduler    -s scheduler         one of those xvsd implements (rr, wrr, lc, wlc, ...),
                                      the default scheduler is {DEFAULT_SCHEDULER}.
  --persistent   -p [timeout]         persistent service: a client's new connections go to
                                      the same real server (timeout 1..{max} seconds,
                                      default {default}; -E without -p turns it off)
  --netmask      -M netmask           persistent granularity mask (default 255.255.255.255)
  --real-server  -r server-address    server-address is IPv4-address[:port];
                                      the port defaults to the service's port
  --masquerading -m                   masquerading (NAT): the only method xvs implements,
                                      and the default here (ipvsadm's default is -g)
  --gatewaying   -g                   direct routing: not supported
  --ipip         -i                   ipip encapsulation (tunneling): not supported
  --weight       -w weight            capacity of real server, 0..65535 (default 1;
                                      -e without -w sets 1, as ipvsadm does)
  --u-threshold  -x uthreshold        upper threshold of connections (0: no limit;
                                      -e without -x sets 0, as ipvsadm does)
  --l-threshold  -y lthreshold        lower threshold of connections (at most the upper)
  --numeric      -n                   numeric output (xvsadm always prints numbers)
  --stats                             output of statistics information
  --thresholds                        output of thresholds information
  --persistent-conn                   output of persistent connection info
  --exact        -X                   expand numbers (display exact values)
  --nosort                            list in xvsd's order (real servers as added)
  --sort                              does nothing, for backwards compatibility
  --sched-flags  -b flags             scheduler flags (comma-separated): sh-fallback,
                                      sh-port (sh), mh-fallback, mh-port (mh), flag-1,
                                      flag-2 (any scheduler; -E without -b clears them)
  --control PATH                      xvsd's control socket (default ${env},
                                      else {path})

The other ipvsadm options (-f -c -o -Z -S -R --pe --set --rate --timeout --daemon
--start-daemon ...) are recognised and refused: not supported yet.
"#,
        version = version_line(),
        max = MAX_PERSISTENT_TIMEOUT,
        default = DEFAULT_PERSISTENT_TIMEOUT,
        env = crate::client::CONTROL_PATH_ENV,
        path = crate::client::DEFAULT_CONTROL_PATH,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::RealInfo;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn svc(proto: Protocol, addr: [u8; 4], port: u16) -> ServiceKey {
        ServiceKey {
            proto,
            addr: Ipv4Addr::from(addr),
            port,
        }
    }

    fn real(addr: [u8; 4], port: u16) -> RealKey {
        RealKey {
            addr: Ipv4Addr::from(addr),
            port,
        }
    }

    const VIP: [u8; 4] = [198, 18, 0, 129];

    fn apply(line: &str) -> Command {
        match parse(&args(line)) {
            Ok(Invocation::Apply(command)) => command,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn list(line: &str) -> ListOptions {
        match parse(&args(line)) {
            Ok(Invocation::List(opts)) => opts,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn error(line: &str) -> (String, u8) {
        match parse(&args(line)) {
            Err(e) => (e.to_string(), e.exit_code()),
            Ok(other) => panic!("{line}: parsed as {other:?}"),
        }
    }

    #[test]
    fn service_commands() {
        let tcp80 = svc(Protocol::Tcp, VIP, 80);
        let cases = [
            (
                "-A -t 198.18.0.129:80 -s rr",
                Command::AddService {
                    service: tcp80,
                    scheduler: Some("rr".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "-A -t 198.18.0.129:80",
                Command::AddService {
                    service: tcp80,
                    scheduler: Some("wlc".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "--add-service --tcp-service 198.18.0.129:80 --scheduler=wrr",
                Command::AddService {
                    service: tcp80,
                    scheduler: Some("wrr".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "-s rr -t 198.18.0.129:80 -A",
                Command::AddService {
                    service: tcp80,
                    scheduler: Some("rr".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "-At 198.18.0.129:80 -ssh",
                Command::AddService {
                    service: tcp80,
                    scheduler: Some("sh".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "-E -u 198.18.0.129:53 -s lc",
                Command::EditService {
                    service: svc(Protocol::Udp, VIP, 53),
                    scheduler: Some("lc".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "--edit-service --udp-service=198.18.0.129:53",
                Command::EditService {
                    service: svc(Protocol::Udp, VIP, 53),
                    scheduler: Some("wlc".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK),
                },
            ),
            (
                "-D -t 198.18.0.129:80",
                Command::DelService { service: tcp80 },
            ),
            (
                "--delete-service -t198.18.0.129:80",
                Command::DelService { service: tcp80 },
            ),
            ("-C", Command::Clear),
            ("--clear", Command::Clear),
        ];
        for (line, expected) in cases {
            assert_eq!(apply(line), expected, "{line}");
        }
    }

    #[test]
    fn real_server_commands() {
        let tcp80 = svc(Protocol::Tcp, VIP, 80);
        let add = |real, weight| Command::AddReal {
            service: tcp80,
            real,
            weight: Some(weight),
            forward: Some(Forward::Masq),
            upper_threshold: Some(0),
            lower_threshold: Some(0),
        };
        let cases = [
            // The seed's commands.
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -m",
                add(real([198, 19, 0, 148], 80), 1),
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.137 -m",
                add(real([198, 19, 0, 137], 80), 1),
            ),
            // No method: masquerading. Explicit port, weight, any order.
            (
                "-a -r 198.19.0.148:8080 -w 3 -t 198.18.0.129:80",
                add(real([198, 19, 0, 148], 8080), 3),
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -mw0",
                add(real([198, 19, 0, 148], 80), 0),
            ),
            (
                "--add-server --tcp-service 198.18.0.129:80 --real-server 198.19.0.148 \
                 --masquerading --weight=65535",
                add(real([198, 19, 0, 148], 80), 65535),
            ),
            (
                "-e -t 198.18.0.129:80 -r 198.19.0.148 -m -w 5",
                Command::EditReal {
                    service: tcp80,
                    real: real([198, 19, 0, 148], 80),
                    weight: Some(5),
                    forward: Some(Forward::Masq),
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
            ),
            // ipvsadm -e without -w sends weight 1.
            (
                "--edit-server -t 198.18.0.129:80 -r 198.19.0.148:80",
                Command::EditReal {
                    service: tcp80,
                    real: real([198, 19, 0, 148], 80),
                    weight: Some(1),
                    forward: Some(Forward::Masq),
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
            ),
            (
                "-d -t 198.18.0.129:80 -r 198.19.0.148",
                Command::DelReal {
                    service: tcp80,
                    real: real([198, 19, 0, 148], 80),
                },
            ),
            (
                "--delete-server -u 198.18.0.129:53 -r 198.19.0.148:5353",
                Command::DelReal {
                    service: svc(Protocol::Udp, VIP, 53),
                    real: real([198, 19, 0, 148], 5353),
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(apply(line), expected, "{line}");
        }
    }

    #[test]
    fn list_commands() {
        let tcp80 = svc(Protocol::Tcp, VIP, 80);
        let numeric = ListOptions {
            numeric: true,
            ..ListOptions::default()
        };
        let cases = [
            ("-L", ListOptions::default()),
            ("-l", ListOptions::default()),
            ("--list", ListOptions::default()),
            ("-Ln", numeric.clone()),
            ("-nL", numeric.clone()),
            ("-L -n", numeric.clone()),
            ("--list --numeric", numeric.clone()),
            ("-ln --sort", numeric.clone()),
            (
                "-lnt 198.18.0.129:80",
                ListOptions {
                    service: Some(tcp80),
                    ..numeric.clone()
                },
            ),
            (
                "-L -n -t 198.18.0.129:80",
                ListOptions {
                    service: Some(tcp80),
                    ..numeric.clone()
                },
            ),
            (
                "-Ln --stats",
                ListOptions {
                    stats: true,
                    ..numeric.clone()
                },
            ),
            (
                "-L --stats --exact --nosort",
                ListOptions {
                    stats: true,
                    exact: true,
                    nosort: true,
                    ..ListOptions::default()
                },
            ),
            (
                "-LnX --stats",
                ListOptions {
                    stats: true,
                    exact: true,
                    ..numeric.clone()
                },
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(list(line), expected, "{line}");
        }
        assert_eq!(
            parse(&[]).unwrap(),
            Invocation::List(ListOptions::default())
        );
        assert_eq!(parse(&args("-h")).unwrap(), Invocation::Help);
        assert_eq!(parse(&args("--help")).unwrap(), Invocation::Help);
        assert_eq!(parse(&args("-v")).unwrap(), Invocation::Version);
        assert_eq!(parse(&args("--version")).unwrap(), Invocation::Version);
        assert_eq!(
            Invocation::List(ListOptions::default()).command(),
            Some(Command::List)
        );
    }

    #[test]
    fn bad_command_lines() {
        let usage = EXIT_USAGE;
        let try_help = EXIT_TRY_HELP;
        let cases: &[(&str, &str, u8)] = &[
            // ipvsadm's own messages.
            (
                "-A -t 198.18.0.300:80",
                "illegal virtual server address[:port] specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:65536",
                "illegal virtual server address[:port] specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:http",
                "illegal virtual server address[:port] specified",
                usage,
            ),
            (
                "-A -t 80",
                "illegal virtual server address[:port] specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:0",
                "Zero port specified for non-persistent service",
                usage,
            ),
            (
                "-A -t 198.18.0.129",
                "Zero port specified for non-persistent service",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0:80",
                "illegal real server address[:port] specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -w 65536",
                "illegal weight specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -w -1",
                "illegal weight specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -w x",
                "illegal weight specified",
                usage,
            ),
            (
                "-A -s rr",
                "You need to supply the 'service-address' option for the 'add-service' command",
                usage,
            ),
            (
                "-a -r 198.19.0.148",
                "You need to supply the 'service-address' option for the 'add-server' command",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -m",
                "You need to supply the 'real-server' option for the 'add-server' command",
                usage,
            ),
            (
                "-D -t 198.18.0.129:80 -s rr",
                "Illegal 'scheduler' option with the 'delete-service' command",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -w 2",
                "Illegal 'weight' option with the 'add-service' command",
                usage,
            ),
            (
                "-d -t 198.18.0.129:80 -r 198.19.0.148 -m",
                "Illegal 'forwarding-method' option with the 'delete-server' command",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -s rr",
                "Illegal 'scheduler' option with the 'add-server' command",
                usage,
            ),
            (
                "-C -n",
                "Illegal 'numeric' option with the 'flush' command",
                usage,
            ),
            (
                "-L -s rr",
                "Illegal 'scheduler' option with the 'list' command",
                usage,
            ),
            ("-A -L", "multiple commands specified", usage),
            ("-Ln -h", "multiple commands specified", usage),
            (
                "-A -t 198.18.0.129:80 -u 198.18.0.129:53",
                "multiple 'service-address' options specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -m -m",
                "multiple 'forwarding-method' options specified",
                usage,
            ),
            ("-L extra", "unexpected argument extra", usage),
            ("-L -- -n", "unexpected argument -n", usage),
            // Forwarding methods xvs does not implement.
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -g",
                "xvs implements masquerading (-m) only; direct routing (-g) is not supported",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 --ipip",
                "xvs implements masquerading (-m) only; tunneling (--ipip) is not supported",
                usage,
            ),
            // ipvsadm options xvs does not implement.
            (
                "-A -t 198.18.0.129:80 -p --pe sip",
                "option '--pe' (pe) is not supported yet",
                usage,
            ),
            (
                "-A -f 1",
                "option '-f' (fwmark-service) is not supported yet",
                usage,
            ),
            (
                "-lnc",
                "option '-c' (connection) is not supported yet",
                usage,
            ),
            (
                "-L --rate",
                "option '--rate' (rate) is not supported yet",
                usage,
            ),
            (
                "-L --timeout",
                "option '--timeout' (timeout) is not supported yet",
                usage,
            ),
            (
                "--set 900 120 300",
                "option '--set' (set) is not supported yet",
                usage,
            ),
            ("-S -n", "option '-S' (save) is not supported yet", usage),
            ("-R", "option '-R' (restore) is not supported yet", usage),
            ("-Z", "option '-Z' (zero) is not supported yet", usage),
            (
                "--start-daemon master",
                "option '--start-daemon' (start-daemon) is not supported yet",
                usage,
            ),
            (
                "-A -t [2001:db8::1]:80",
                "virtual server address '[2001:db8::1]:80': IPv6 is not supported yet",
                usage,
            ),
            // popt's errors: ipvsadm points at -h and exits 255.
            (
                "-n",
                "no command given (one of -A -E -D -C -a -e -d -L)\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                try_help,
            ),
            (
                "-L --bogus",
                "unknown option '--bogus'\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                try_help,
            ),
            (
                "-Lq",
                "unknown option '-q'\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                try_help,
            ),
            (
                "-A -t",
                "option '-t' requires an argument\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                try_help,
            ),
            (
                "-L --stats=1",
                "option '--stats' does not take an argument\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                try_help,
            ),
        ];
        for (line, message, code) in cases {
            assert_eq!(error(line), (message.to_string(), *code), "{line}");
        }
    }

    #[test]
    fn sched_flags_and_thresholds() {
        let tcp80 = svc(Protocol::Tcp, VIP, 80);
        let add = |scheduler: &str, flags: &[&str]| Command::AddService {
            service: tcp80,
            scheduler: Some(scheduler.into()),
            sched_flags: Some(flags.iter().map(|f| f.to_string()).collect()),
            persistent: Some(0),
            netmask: Some(DEFAULT_NETMASK),
        };
        let edit = |scheduler: &str, flags: &[&str]| Command::EditService {
            service: tcp80,
            scheduler: Some(scheduler.into()),
            sched_flags: Some(flags.iter().map(|f| f.to_string()).collect()),
            persistent: Some(0),
            netmask: Some(DEFAULT_NETMASK),
        };
        let r148 = real([198, 19, 0, 148], 80);
        let add_real = |upper, lower| Command::AddReal {
            service: tcp80,
            real: r148,
            weight: Some(1),
            forward: Some(Forward::Masq),
            upper_threshold: Some(upper),
            lower_threshold: Some(lower),
        };
        let edit_real = |weight, upper, lower| Command::EditReal {
            service: tcp80,
            real: r148,
            weight: Some(weight),
            forward: Some(Forward::Masq),
            upper_threshold: Some(upper),
            lower_threshold: Some(lower),
        };
        let cases = [
            (
                "-A -t 198.18.0.129:80 -s sh -b sh-fallback,sh-port",
                add("sh", &["sh-fallback", "sh-port"]),
            ),
            // -b is checked once every option is read: -s may come after it.
            (
                "-A -t 198.18.0.129:80 -b sh-port -s sh",
                add("sh", &["sh-port"]),
            ),
            (
                "-At 198.18.0.129:80 -ssh -bsh-port",
                add("sh", &["sh-port"]),
            ),
            (
                "--add-service --tcp-service 198.18.0.129:80 --scheduler mh \
                 --sched-flags=mh-port,mh-fallback",
                add("mh", &["mh-port", "mh-fallback"]),
            ),
            // strtok skips empty names.
            (
                "-E -t 198.18.0.129:80 -s sh -b ,sh-port,,sh-fallback,",
                edit("sh", &["sh-port", "sh-fallback"]),
            ),
            // The generic names go with any scheduler (-s absent: wlc).
            (
                "-A -t 198.18.0.129:80 -s rr -b flag-1,flag-2",
                add("rr", &["flag-1", "flag-2"]),
            ),
            ("-A -t 198.18.0.129:80 -b flag-1", add("wlc", &["flag-1"])),
            (
                "-A -t 198.18.0.129:80 -s sh -b flag-2",
                add("sh", &["flag-2"]),
            ),
            // -E without -b clears the flags, as ipvsadm's -E does.
            ("-E -t 198.18.0.129:80 -s sh", edit("sh", &[])),
            // Thresholds: 0..=INT_MAX, always sent (0 when absent).
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -x 100 -y 50",
                add_real(100, 50),
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -mx10",
                add_real(10, 0),
            ),
            ("-a -t 198.18.0.129:80 -r 198.19.0.148 -y 0", add_real(0, 0)),
            (
                "--edit-server -t 198.18.0.129:80 -r 198.19.0.148 --u-threshold=2147483647 \
                 --l-threshold 2147483647 -w 2",
                edit_real(2, 2147483647, 2147483647),
            ),
            // -e without -x/-y clears them, as ipvsadm's -e does.
            (
                "-e -t 198.18.0.129:80 -r 198.19.0.148 -w 2",
                edit_real(2, 0, 0),
            ),
            // xvsadm leaves the order of the thresholds to the daemon, as ipvsadm leaves it to
            // the kernel.
            ("-a -t 198.18.0.129:80 -r 198.19.0.148 -y 5", add_real(0, 5)),
        ];
        for (line, expected) in cases {
            assert_eq!(apply(line), expected, "{line}");
        }
        // `-b ''` is no flags at all (ipvsadm: sched_flags_arg[0] == '\0').
        let empty: Vec<String> = ["-A", "-t", "198.18.0.129:80", "-s", "sh", "-b", ""]
            .map(String::from)
            .into();
        assert_eq!(parse(&empty).unwrap(), Invocation::Apply(add("sh", &[])));

        let thresholds = ListOptions {
            numeric: true,
            thresholds: true,
            ..ListOptions::default()
        };
        assert_eq!(list("-Ln --thresholds"), thresholds);
        assert_eq!(
            list("-L --thresholds --stats"),
            ListOptions {
                stats: true,
                thresholds: true,
                ..ListOptions::default()
            }
        );
        assert_eq!(
            list("-Ln --thresholds -t 198.18.0.129:80"),
            ListOptions {
                service: Some(tcp80),
                ..thresholds
            }
        );
    }

    #[test]
    fn bad_sched_flags_and_thresholds() {
        let usage = EXIT_USAGE;
        let cases: &[(&str, &str, u8)] = &[
            // ipvsadm's string_to_number(optarg, 0, INT_MAX).
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -x -1",
                "illegal u_threshold specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -x 2147483648",
                "illegal u_threshold specified",
                usage,
            ),
            (
                "-e -t 198.18.0.129:80 -r 198.19.0.148 --u-threshold=ten",
                "illegal u_threshold specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -y 1.5",
                "illegal l_threshold specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -y 4294967295",
                "illegal l_threshold specified",
                usage,
            ),
            // ipvsadm's parse_sched_flags.
            (
                "-A -t 198.18.0.129:80 -s rr -b sh-port",
                "incompatible scheduler flag `sh-port'",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -b mh-port",
                "incompatible scheduler flag `mh-port'",
                usage,
            ),
            (
                "-E -t 198.18.0.129:80 -s sh -b sh-port,mh-fallback",
                "incompatible scheduler flag `mh-fallback'",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -s sh -b sh-fallback,bogus",
                "invalid scheduler flag `bogus'",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -s sh -b SH-PORT",
                "invalid scheduler flag `SH-PORT'",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -s sh -b ,",
                "invalid scheduler flag `,'",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -s rr -b flag-3",
                "scheduler flag `flag-3' (IP_VS_SVC_F_SCHED3) is used by no IPVS scheduler and \
                 is not supported",
                usage,
            ),
            // -b is parsed before the option table is checked, against the default
            // scheduler when -s is absent (which -a cannot give).
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -b sh-port",
                "incompatible scheduler flag `sh-port'",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -b flag-1",
                "Illegal 'sched-flags' option with the 'add-server' command",
                usage,
            ),
            (
                "-L -b flag-1",
                "Illegal 'sched-flags' option with the 'list' command",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -x 5",
                "Illegal 'u-threshold' option with the 'add-service' command",
                usage,
            ),
            (
                "-E -t 198.18.0.129:80 -y 5",
                "Illegal 'l-threshold' option with the 'edit-service' command",
                usage,
            ),
            (
                "-d -t 198.18.0.129:80 -r 198.19.0.148 -x 5",
                "Illegal 'u-threshold' option with the 'delete-server' command",
                usage,
            ),
            (
                "-L --thresholds -y 1",
                "Illegal 'l-threshold' option with the 'list' command",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 --thresholds",
                "Illegal 'thresholds' option with the 'add-service' command",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -x 1 -x 2",
                "multiple 'u-threshold' options specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -s sh -b sh-port -b sh-fallback",
                "multiple 'sched-flags' options specified",
                usage,
            ),
            (
                "-L --thresholds --thresholds",
                "multiple 'thresholds' options specified",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -x",
                "option '-x' requires an argument\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                EXIT_TRY_HELP,
            ),
        ];
        for (line, message, code) in cases {
            assert_eq!(error(line), (message.to_string(), *code), "{line}");
        }
    }

    #[test]
    fn persistence_options() {
        let tcp80 = svc(Protocol::Tcp, VIP, 80);
        let mask = |m: [u8; 4]| Some(Ipv4Addr::from(m));
        let add = |scheduler: &str, persistent: u32, netmask| Command::AddService {
            service: tcp80,
            scheduler: Some(scheduler.into()),
            sched_flags: Some(vec![]),
            persistent: Some(persistent),
            netmask,
        };
        let edit = |persistent: u32, netmask| Command::EditService {
            service: tcp80,
            scheduler: Some("wlc".into()),
            sched_flags: Some(vec![]),
            persistent: Some(persistent),
            netmask,
        };
        let all = mask([255, 255, 255, 255]);
        let cases = [
            // -p alone: IPVS_SVC_PERSISTENT_TIMEOUT, 360 s; no -M: /32.
            ("-A -t 198.18.0.129:80 -p", add("wlc", 360, all)),
            ("-A -t 198.18.0.129:80 --persistent", add("wlc", 360, all)),
            // popt's optional argument: the next word unless it starts with '-'.
            ("-A -t 198.18.0.129:80 -p 600", add("wlc", 600, all)),
            (
                "-A -t 198.18.0.129:80 --persistent 600",
                add("wlc", 600, all),
            ),
            (
                "-A -t 198.18.0.129:80 --persistent=600",
                add("wlc", 600, all),
            ),
            ("-A -t 198.18.0.129:80 -p600", add("wlc", 600, all)),
            ("-A -t 198.18.0.129:80 -p -s rr", add("rr", 360, all)),
            ("-A -p -t 198.18.0.129:80 -s rr", add("rr", 360, all)),
            ("-Ap -t 198.18.0.129:80", add("wlc", 360, all)),
            ("-A -t 198.18.0.129:80 -p --", add("wlc", 360, all)),
            (
                "-A -t 198.18.0.129:80 -p -M 255.255.255.0",
                add("wlc", 360, mask([255, 255, 255, 0])),
            ),
            (
                "-A -t 198.18.0.129:80 -M 255.255.0.0 -p 1 -s rr",
                add("rr", 1, mask([255, 255, 0, 0])),
            ),
            (
                "--add-service --tcp-service 198.18.0.129:80 --persistent=2678400 \
                 --netmask=0.0.0.0",
                add("wlc", 2_678_400, mask([0, 0, 0, 0])),
            ),
            // strtol's leading blanks and sign, as for every number ipvsadm reads.
            ("-A -t 198.18.0.129:80 -p +60", add("wlc", 60, all)),
            // -M without -p: accepted and sent, as by ipvsadm (the service is not persistent).
            (
                "-A -t 198.18.0.129:80 -M 255.255.255.0",
                add("wlc", 0, mask([255, 255, 255, 0])),
            ),
            // -E sends everything, as ipvsadm does: no -p turns persistence off, no -M is /32.
            ("-E -t 198.18.0.129:80", edit(0, all)),
            ("-E -t 198.18.0.129:80 -p 60", edit(60, all)),
            (
                "-E -t 198.18.0.129:80 -p -M 255.255.255.128",
                edit(360, mask([255, 255, 255, 128])),
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(apply(line), expected, "{line}");
        }
        // With -s and -b in between.
        assert_eq!(
            apply("-A -t 198.18.0.129:80 -s sh -p 300 -b sh-port -M 255.255.255.0"),
            Command::AddService {
                service: tcp80,
                scheduler: Some("sh".into()),
                sched_flags: Some(vec!["sh-port".into()]),
                persistent: Some(300),
                netmask: mask([255, 255, 255, 0]),
            }
        );
        // --persistent-conn is a listing option.
        assert_eq!(
            list("-Ln --persistent-conn -t 198.18.0.129:80"),
            ListOptions {
                service: Some(tcp80),
                numeric: true,
                persistent_conn: true,
                ..ListOptions::default()
            }
        );
    }

    #[test]
    fn bad_persistence_options() {
        let usage = EXIT_USAGE;
        let cases: &[(&str, &str, u8)] = &[
            // parse_timeout(optarg, 1, MAX_TIMEOUT).
            (
                "-A -t 198.18.0.129:80 -p 0",
                "invalid timeout value `0' specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -p 2678401",
                "invalid timeout value `2678401' specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -p 1.5",
                "invalid timeout value `1.5' specified",
                usage,
            ),
            // Any word not starting with '-' is -p's argument.
            (
                "-A -t 198.18.0.129:80 -p rr",
                "invalid timeout value `rr' specified",
                usage,
            ),
            (
                "-E -t 198.18.0.129:80 --persistent=ten",
                "invalid timeout value `ten' specified",
                usage,
            ),
            // The rest of a cluster is the argument.
            (
                "-A -t 198.18.0.129:80 -pM 255.255.255.0",
                "invalid timeout value `M' specified",
                usage,
            ),
            // A negative number starts with '-': -p has no argument, "-1" is an option.
            (
                "-A -t 198.18.0.129:80 -p -1",
                "unknown option '-1'\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                EXIT_TRY_HELP,
            ),
            (
                "-A -t 198.18.0.129:80 -p 10 -p 20",
                "multiple 'persistent' options specified",
                usage,
            ),
            // parse_netmask.
            (
                "-A -t 198.18.0.129:80 -p -M 24",
                "illegal virtual server persistent mask specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -p -M 255.255.255.256",
                "illegal virtual server persistent mask specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -M 255.255.255.0 -M 255.255.0.0",
                "multiple 'netmask' options specified",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -p -M",
                "option '-M' requires an argument\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                EXIT_TRY_HELP,
            ),
            // commands_v_options.
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -p",
                "Illegal 'persistent' option with the 'add-server' command",
                usage,
            ),
            (
                "-D -t 198.18.0.129:80 -p",
                "Illegal 'persistent' option with the 'delete-service' command",
                usage,
            ),
            (
                "-L -p",
                "Illegal 'persistent' option with the 'list' command",
                usage,
            ),
            (
                "-e -t 198.18.0.129:80 -r 198.19.0.148 -M 255.255.255.0",
                "Illegal 'netmask' option with the 'edit-server' command",
                usage,
            ),
            // Columns in ipvsadm's order: -p and -M come before -w.
            (
                "-A -t 198.18.0.129:80 -w 2 -p",
                "Illegal 'weight' option with the 'add-service' command",
                usage,
            ),
            (
                "-a -t 198.18.0.129:80 -r 198.19.0.148 -w 2 -M 255.255.255.0",
                "Illegal 'netmask' option with the 'add-server' command",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 --persistent-conn",
                "Illegal 'persistent-conn' option with the 'add-service' command",
                usage,
            ),
            (
                "-L --persistent-conn --persistent-conn",
                "multiple 'persistent-conn' options specified",
                usage,
            ),
            (
                "-L --persistent-conn=1",
                "option '--persistent-conn' does not take an argument\n\
                 Try `xvsadm -h' or 'xvsadm --help' for more information.",
                EXIT_TRY_HELP,
            ),
            // A port 0 service is legal for ipvsadm when persistent (every port); xvs has no
            // such services.
            (
                "-A -t 198.18.0.129:0 -p",
                "a persistent service on port 0 (every port) is not supported",
                usage,
            ),
            (
                "-E -t 198.18.0.129 -p 60",
                "a persistent service on port 0 (every port) is not supported",
                usage,
            ),
            (
                "-A -t 198.18.0.129:0 -M 255.255.255.0",
                "Zero port specified for non-persistent service",
                usage,
            ),
            (
                "-A -t 198.18.0.129:80 -p 60 extra",
                "unexpected argument extra",
                usage,
            ),
        ];
        for (line, message, code) in cases {
            assert_eq!(error(line), (message.to_string(), *code), "{line}");
        }
        // An empty word is an argument too (it does not start with '-').
        let empty: Vec<String> = ["-A", "-t", "198.18.0.129:80", "-p", ""]
            .map(String::from)
            .into();
        assert_eq!(
            parse(&empty).unwrap_err().to_string(),
            "invalid timeout value `' specified"
        );
    }

    #[test]
    fn control_option_is_taken_out() {
        let mut a = args("--control /tmp/x.sock -Ln");
        assert_eq!(
            take_control_option(&mut a).unwrap(),
            Some(PathBuf::from("/tmp/x.sock"))
        );
        assert_eq!(a, args("-Ln"));
        let mut a = args("-A -t 198.18.0.129:80 --control=/tmp/y.sock -s rr");
        assert_eq!(
            take_control_option(&mut a).unwrap(),
            Some(PathBuf::from("/tmp/y.sock"))
        );
        assert_eq!(a, args("-A -t 198.18.0.129:80 -s rr"));
        let mut a = args("-Ln");
        assert_eq!(take_control_option(&mut a).unwrap(), None);
        assert!(take_control_option(&mut args("-L --control")).is_err());
        assert!(take_control_option(&mut args("--control a --control b -L")).is_err());
    }

    fn real_info(addr: [u8; 4], port: u16, weight: u32, stats: Counters) -> RealInfo {
        RealInfo {
            real: real(addr, port),
            forward: Forward::Masq,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: 0,
            inactive_conns: 0,
            persist_conns: 0,
            stats,
            rates: Default::default(),
            health: None,
        }
    }

    /// The seed of design.md: reals added .148 then .137 (the protocol's insertion order).
    fn seed() -> ListReply {
        ListReply {
            conn_tab_size: 4096,
            conn_max: 1 << 20,
            services: vec![ServiceInfo {
                service: svc(Protocol::Tcp, VIP, 80),
                scheduler: "rr".into(),
                sched_flags: vec![],
                persistent: None,
                netmask: DEFAULT_NETMASK,
                stats: Counters {
                    conns: 11,
                    inpkts: 66,
                    outpkts: 55,
                    inbytes: 4_763,
                    outbytes: 6_919,
                },
                rates: Default::default(),
                check: None,
                reals: vec![
                    real_info(
                        [198, 19, 0, 148],
                        80,
                        1,
                        Counters {
                            conns: 6,
                            inpkts: 36,
                            outpkts: 30,
                            inbytes: 2_598,
                            outbytes: 3_834,
                        },
                    ),
                    real_info(
                        [198, 19, 0, 137],
                        80,
                        1,
                        Counters {
                            conns: 5,
                            inpkts: 30,
                            outpkts: 25,
                            inbytes: 2_165,
                            outbytes: 3_085,
                        },
                    ),
                ],
            }],
        }
    }

    /// design.md shows `ipvsadm -Ln` with trailing blanks trimmed; real ipvsadm pads every
    /// real-server line ("%-10u\n" leaves the InActConn column 10 wide), and so does xvsadm:
    /// each `->` line below ends in nine spaces after the last "0".
    #[test]
    fn golden_seed_listing() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.137:80              Masq    1      0          0         
  -> 198.19.0.148:80              Masq    1      0          0         
";
        let opts = list("-Ln");
        assert_eq!(format_list(&seed(), &opts).unwrap(), expected);
        // Without -n the output is the same (no name lookups).
        assert_eq!(format_list(&seed(), &list("-L")).unwrap(), expected);
        // design.md's own text, trailing blanks trimmed.
        let trimmed: Vec<_> = expected.lines().map(str::trim_end).collect();
        assert_eq!(
            trimmed[4],
            "  -> 198.19.0.137:80              Masq    1      0          0"
        );
    }

    #[test]
    fn golden_single_service_and_nosort() {
        // list_service prints no version header.
        let expected = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.148:80              Masq    1      0          0         
  -> 198.19.0.137:80              Masq    1      0          0         
";
        let opts = list("-Ln --nosort -t 198.18.0.129:80");
        assert_eq!(format_list(&seed(), &opts).unwrap(), expected);
        let missing = list("-Ln -t 198.18.0.129:81");
        assert_eq!(
            format_list(&seed(), &missing).unwrap_err().to_string(),
            "No such service"
        );
    }

    #[test]
    fn golden_stats() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.129:80                    11       66       55     4763     6919
  -> 198.19.0.137:80                     5       30       25     2165     3085
  -> 198.19.0.148:80                     6       36       30     2598     3834
";
        assert_eq!(
            format_list(&seed(), &list("-Ln --stats")).unwrap(),
            expected
        );
    }

    #[test]
    fn golden_sorting_and_widths() {
        let counters = Counters {
            conns: 99_999_999,
            inpkts: 123_456_789,
            outpkts: 12_345_678_901,
            inbytes: 12_345_678_901_234,
            outbytes: 123_456_789_012_345,
        };
        let reply = ListReply {
            conn_tab_size: 4096,
            conn_max: 0,
            services: vec![
                ServiceInfo {
                    service: svc(Protocol::Udp, [10, 0, 0, 1], 53),
                    scheduler: "wlc".into(),
                    sched_flags: vec![],
                    persistent: None,
                    netmask: DEFAULT_NETMASK,
                    stats: counters,
                    rates: Default::default(),
                    check: None,
                    reals: vec![
                        real_info([10, 1, 0, 2], 53, 65535, Counters::default()),
                        real_info([10, 1, 0, 1], 5353, 0, Counters::default()),
                        real_info([10, 1, 0, 1], 53, 2, Counters::default()),
                    ],
                },
                ServiceInfo {
                    service: svc(Protocol::Tcp, [255, 255, 255, 254], 65535),
                    scheduler: "rr".into(),
                    sched_flags: vec![],
                    persistent: None,
                    netmask: DEFAULT_NETMASK,
                    stats: Counters::default(),
                    rates: Default::default(),
                    check: None,
                    reals: vec![],
                },
                ServiceInfo {
                    service: svc(Protocol::Tcp, [10, 0, 0, 1], 443),
                    scheduler: "rr".into(),
                    sched_flags: vec![],
                    persistent: None,
                    netmask: DEFAULT_NETMASK,
                    stats: Counters::default(),
                    rates: Default::default(),
                    check: None,
                    reals: vec![],
                },
            ],
        };
        let plain = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:443 rr
TCP  255.255.255.254:65535 rr
UDP  10.0.0.1:53 wlc
  -> 10.1.0.1:53                  Masq    2      0          0         
  -> 10.1.0.1:5353                Masq    0      0          0         
  -> 10.1.0.2:53                  Masq    65535  0          0         
";
        assert_eq!(format_list(&reply, &list("-Ln")).unwrap(), plain);

        let stats = list("-Ln --stats -u 10.0.0.1:53");
        let out = format_list(&reply, &stats).unwrap();
        let line = out.lines().nth(2).unwrap();
        assert_eq!(
            line,
            "UDP  10.0.0.1:53                  99999999  123456K   12345M   12345G     123T"
        );
        let exact = list("-Ln --stats --exact -u 10.0.0.1:53");
        let out = format_list(&reply, &exact).unwrap();
        let line = out.lines().nth(2).unwrap();
        assert_eq!(
            line,
            "UDP  10.0.0.1:53                  99999999 123456789 12345678901 \
             12345678901234 123456789012345"
        );
    }

    /// Services with scheduler flags: ipvsadm prints them after the scheduler, in parentheses,
    /// joined by commas (`print_service_entry` / `print_sched_flags`).
    fn flagged() -> ListReply {
        let mut reply = seed();
        reply.services[0].scheduler = "sh".into();
        reply.services[0].sched_flags = vec!["sh-fallback".into(), "sh-port".into()];
        reply.services[0].reals[0].upper_threshold = 10000;
        reply.services[0].reals[0].lower_threshold = 100;
        reply.services[0].reals[0].active_conns = 2_147_483_647;
        reply.services[0].reals[0].inactive_conns = 4_294_967_295;
        reply.services[0].reals[1].active_conns = 3;
        reply.services[0].reals[1].inactive_conns = 7;
        reply.services.push(ServiceInfo {
            service: svc(Protocol::Tcp, VIP, 443),
            scheduler: "mh".into(),
            sched_flags: vec!["mh-port".into()],
            persistent: None,
            netmask: DEFAULT_NETMASK,
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            reals: vec![],
        });
        reply.services.push(ServiceInfo {
            service: svc(Protocol::Udp, VIP, 53),
            scheduler: "rr".into(),
            sched_flags: vec!["flag-1".into()],
            persistent: None,
            netmask: DEFAULT_NETMASK,
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            reals: vec![],
        });
        reply
    }

    #[test]
    fn golden_sched_flags_listing() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.137:80              Masq    1      3          7         
  -> 198.19.0.148:80              Masq    1      2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port)
UDP  198.18.0.129:53 rr (flag-1)
";
        assert_eq!(format_list(&flagged(), &list("-Ln")).unwrap(), expected);
        // --stats prints no scheduler, so no flags either.
        let stats = format_list(&flagged(), &list("-Ln --stats")).unwrap();
        assert_eq!(
            stats.lines().nth(3).unwrap(),
            "TCP  198.18.0.129:80                    11       66       55     4763     6919"
        );
    }

    #[test]
    fn golden_thresholds_listing() {
        // "%-33s %-10s %-10s %-10s %-10s\n": the title ends in a blank ("InActConn" is 9
        // wide), as every threshold row does when its last number is shorter than 10.
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.137:80              0          0          3          7         
  -> 198.19.0.148:80              10000      100        2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port)
UDP  198.18.0.129:53 rr (flag-1)
";
        assert_eq!(
            format_list(&flagged(), &list("-Ln --thresholds")).unwrap(),
            expected
        );
        // --exact changes nothing here; --stats wins over --thresholds, as in print_title.
        assert_eq!(
            format_list(&flagged(), &list("-Ln --thresholds --exact")).unwrap(),
            expected
        );
        assert_eq!(
            format_list(&flagged(), &list("-Ln --thresholds --stats")).unwrap(),
            format_list(&flagged(), &list("-Ln --stats")).unwrap()
        );
        // One service: no header; --nosort keeps the daemon's order.
        let one = "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.148:80              10000      100        2147483647 4294967295
  -> 198.19.0.137:80              0          0          3          7         
";
        assert_eq!(
            format_list(
                &flagged(),
                &list("-Ln --thresholds --nosort -t 198.18.0.129:80")
            )
            .unwrap(),
            one
        );
    }

    /// Output of a real `ipvsadm -Ln --thresholds`, as quoted (trailing blanks trimmed) in
    /// projects that parse it.
    #[test]
    fn thresholds_listing_matches_real_ipvsadm_output() {
        let published = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
TCP  172.25.116.175:80 rr
  -> 192.168.1.180:80             0          0          0          0
  -> 192.168.1.181:80             10000      0          0          0
  -> 192.168.1.182:80             10000      100        0          0
";
        let with = |last, upper, lower| RealInfo {
            upper_threshold: upper,
            lower_threshold: lower,
            ..real_info([192, 168, 1, last], 80, 1, Counters::default())
        };
        let reply = ListReply {
            conn_tab_size: 4096,
            conn_max: 0,
            services: vec![ServiceInfo {
                service: svc(Protocol::Tcp, [172, 25, 116, 175], 80),
                scheduler: "rr".into(),
                sched_flags: vec![],
                persistent: None,
                netmask: DEFAULT_NETMASK,
                stats: Counters::default(),
                rates: Default::default(),
                check: None,
                reals: vec![with(182, 10000, 100), with(180, 0, 0), with(181, 10000, 0)],
            }],
        };
        let out = format_list(&reply, &list("-Ln --thresholds")).unwrap();
        let trimmed: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert_eq!(trimmed, published.lines().collect::<Vec<_>>());
    }

    /// Persistent services: `print_service_entry` prints " persistent %u" after the scheduler
    /// and its flags, then " mask %s" when the mask is not 255.255.255.255.
    fn persistent() -> ListReply {
        let mut reply = flagged();
        reply.services[0].persistent = Some(360);
        reply.services[0].reals[0].weight = 65535;
        reply.services[0].reals[0].persist_conns = 12;
        reply.services[1].persistent = Some(600);
        reply.services[1].netmask = Ipv4Addr::new(255, 255, 255, 0);
        reply.services[2].persistent = Some(1);
        reply.services[2].netmask = Ipv4Addr::new(0, 0, 0, 0);
        reply.services.push(ServiceInfo {
            service: svc(Protocol::Udp, VIP, 123),
            scheduler: "wlc".into(),
            sched_flags: vec![],
            persistent: Some(2_678_400),
            netmask: Ipv4Addr::new(255, 255, 128, 0),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            reals: vec![],
        });
        reply
    }

    #[test]
    fn golden_persistent_listing() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.137:80              Masq    1      3          7         
  -> 198.19.0.148:80              Masq    65535  2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0
UDP  198.18.0.129:53 rr (flag-1) persistent 1 mask 0.0.0.0
UDP  198.18.0.129:123 wlc persistent 2678400 mask 255.255.128.0
";
        assert_eq!(format_list(&persistent(), &list("-Ln")).unwrap(), expected);
        // --thresholds prints the same service lines; --stats none of it.
        let thresholds = format_list(&persistent(), &list("-Ln --thresholds")).unwrap();
        assert_eq!(
            thresholds.lines().nth(6).unwrap(),
            "TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0"
        );
        let stats = format_list(&persistent(), &list("-Ln --stats")).unwrap();
        assert_eq!(
            stats.lines().nth(3).unwrap(),
            "TCP  198.18.0.129:80                    11       66       55     4763     6919"
        );
        // A service that is not persistent prints neither, whatever its mask says.
        let mut plain = persistent();
        plain.services[1].persistent = None;
        let out = format_list(&plain, &list("-Ln -t 198.18.0.129:443")).unwrap();
        assert_eq!(
            out.lines().nth(2).unwrap(),
            "TCP  198.18.0.129:443 mh (mh-port)"
        );
    }

    #[test]
    fn golden_persistent_conn_listing() {
        // "%-33s %-9s %-11s %-10s %-10s\n": the title ends in a blank, as in --thresholds;
        // the real servers "  -> %-28s %-9u %-11u %-10u %-10u\n".
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.137:80              1         0           3          7         
  -> 198.19.0.148:80              65535     12          2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0
UDP  198.18.0.129:53 rr (flag-1) persistent 1 mask 0.0.0.0
UDP  198.18.0.129:123 wlc persistent 2678400 mask 255.255.128.0
";
        assert_eq!(
            format_list(&persistent(), &list("-Ln --persistent-conn")).unwrap(),
            expected
        );
        // print_title's order: --stats, then --thresholds, then --persistent-conn.
        assert_eq!(
            format_list(&persistent(), &list("-Ln --persistent-conn --thresholds")).unwrap(),
            format_list(&persistent(), &list("-Ln --thresholds")).unwrap()
        );
        assert_eq!(
            format_list(&persistent(), &list("-Ln --persistent-conn --stats")).unwrap(),
            format_list(&persistent(), &list("-Ln --stats")).unwrap()
        );
        // One service, the daemon's order.
        let one = "\
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.148:80              65535     12          2147483647 4294967295
  -> 198.19.0.137:80              1         0           3          7         
";
        assert_eq!(
            format_list(
                &persistent(),
                &list("-Ln --persistent-conn --nosort -t 198.18.0.129:80")
            )
            .unwrap(),
            one
        );
    }

    /// Output of a real `ipvsadm -Ln --persistent-conn` after `ipvsadm -A -t 10.10.10.11:80 -p
    /// 120 -s rr` and two `-a ... -m`, as published (trailing blanks trimmed).
    #[test]
    fn persistent_conn_listing_matches_real_ipvsadm_output() {
        let published = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn
  -> RemoteAddress:Port
TCP  10.10.10.11:80 rr persistent 120
  -> 192.168.40.23:80             1         0           0          0
  -> 192.168.40.24:80             1         1           0          2
";
        let reply = ListReply {
            conn_tab_size: 4096,
            conn_max: 0,
            services: vec![ServiceInfo {
                service: svc(Protocol::Tcp, [10, 10, 10, 11], 80),
                scheduler: "rr".into(),
                sched_flags: vec![],
                persistent: Some(120),
                netmask: DEFAULT_NETMASK,
                stats: Counters::default(),
                rates: Default::default(),
                check: None,
                reals: vec![
                    RealInfo {
                        persist_conns: 1,
                        inactive_conns: 2,
                        ..real_info([192, 168, 40, 24], 80, 1, Counters::default())
                    },
                    real_info([192, 168, 40, 23], 80, 1, Counters::default()),
                ],
            }],
        };
        let out = format_list(&reply, &list("-Ln --persistent-conn")).unwrap();
        let trimmed: Vec<&str> = out.lines().map(str::trim_end).collect();
        assert_eq!(trimmed, published.lines().collect::<Vec<_>>());
    }

    #[test]
    fn largenum_thresholds() {
        let cases: &[(u64, &str, &str)] = &[
            (0, "        0", "        0"),
            (99_999_999, " 99999999", " 99999999"),
            (100_000_000, "  100000K", " 100000000"),
            (999_999_999, "  999999K", " 999999999"),
            (1_000_000_000, "    1000M", " 1000000000"),
            (99_999_999_999, "   99999M", " 99999999999"),
            (100_000_000_000, "     100G", " 100000000000"),
            (100_000_000_000_000, "     100T", " 100000000000000"),
        ];
        for (n, scaled, exact) in cases {
            let mut out = String::new();
            largenum(&mut out, *n, false);
            assert_eq!(out, *scaled, "{n}");
            out.clear();
            largenum(&mut out, *n, true);
            assert_eq!(out, *exact, "{n} exact");
        }
    }

    #[test]
    fn daemon_errors_read_like_ipvsadm() {
        let service = svc(Protocol::Tcp, VIP, 80);
        let add_service = Command::AddService {
            service,
            scheduler: None,
            sched_flags: None,
            persistent: None,
            netmask: None,
        };
        let del_real = Command::DelReal {
            service,
            real: real([198, 19, 0, 148], 80),
        };
        let m = |c: &Command, code| daemon_error_message(c, code, "daemon text");
        assert_eq!(
            m(&add_service, ErrorCode::ServiceExists),
            "Service already exists"
        );
        assert_eq!(m(&add_service, ErrorCode::NoSuchService), "No such service");
        assert_eq!(
            m(&del_real, ErrorCode::NoSuchService),
            "Service not defined"
        );
        assert_eq!(
            m(&del_real, ErrorCode::RealExists),
            "Destination already exists"
        );
        assert_eq!(m(&del_real, ErrorCode::NoSuchReal), "No such destination");
        assert_eq!(
            m(&add_service, ErrorCode::UnknownScheduler),
            "Scheduler or persistence engine not found: daemon text"
        );
        assert_eq!(m(&add_service, ErrorCode::InvalidArgument), "daemon text");
        // IPVS's ERANGE for a lower threshold above the upper one: strerror's words, then ours.
        let add_real = |upper, lower| Command::AddReal {
            service,
            real: real([198, 19, 0, 148], 80),
            weight: Some(1),
            forward: Some(Forward::Masq),
            upper_threshold: Some(upper),
            lower_threshold: Some(lower),
        };
        assert_eq!(
            m(&add_real(0, 5), ErrorCode::InvalidArgument),
            "Numerical result out of range: daemon text"
        );
        assert_eq!(
            m(&add_real(5, 5), ErrorCode::InvalidArgument),
            "daemon text"
        );
    }

    #[test]
    fn help_names_the_defaults() {
        let text = usage();
        assert!(text.starts_with("xvsadm v"));
        assert!(text.contains("the default scheduler is wlc."));
        assert!(text.contains("ipvsadm's default is -g"));
        assert!(text.contains("--control PATH"));
        assert!(text.contains("  --sched-flags  -b flags             scheduler flags"));
        assert!(text.contains("  --u-threshold  -x uthreshold        upper threshold"));
        assert!(text.contains("  --l-threshold  -y lthreshold        lower threshold"));
        assert!(text.contains("  --thresholds                        output of thresholds"));
        assert!(text.contains("  --persistent   -p [timeout]         persistent service"));
        assert!(text.contains("  --netmask      -M netmask           persistent granularity mask"));
        assert!(
            text.contains("  --persistent-conn                   output of persistent connection")
        );
        assert!(text.contains("default 360;"));
        assert!(!text.contains("-p -M"));
        assert!(text.contains("\n                                      else /run/xvs/xvs.sock)\n"));
    }
}
