//! ipvsadm's option table (popt's `options_table`) and its `commands_v_options` legality table.

use crate::protocol::TunnelChecksum;

/// ipvsadm's commands, in the order of its `CMD_*` constants (the rows of [`RULES`]), without
/// `--start-daemon` and `--stop-daemon` (xvs has no connection sync daemon), then DPVS's
/// ipvsadm's local-address commands (FullNAT), in the order of its `CMD_*` constants, then
/// xvs's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cmd {
    AddService,
    EditService,
    DelService,
    Flush,
    List,
    AddServer,
    DelServer,
    EditServer,
    /// `--set`.
    Timeout,
    Restore,
    Save,
    Zero,
    /// DPVS's `--add-laddr` (`-P`).
    AddLaddr,
    /// DPVS's `--del-laddr` (`-Q`).
    DelLaddr,
    /// DPVS's `--get-laddr` (`-G`).
    GetLaddr,
    /// `--sloppy LIST`, an xvs extension: IPVS's sysctls `net.ipv4.vs.sloppy_tcp` and
    /// `sloppy_udp`, for which ipvsadm has no option. A global setting, like `--set`.
    Sloppy,
}

impl Cmd {
    /// ipvsadm's `cmdnames[]`.
    pub(super) fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DelService => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddServer => "add-server",
            Cmd::DelServer => "delete-server",
            Cmd::EditServer => "edit-server",
            Cmd::Timeout => "set",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
            // DPVS's cmdnames[].
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
            // xvs's.
            Cmd::Sloppy => "sloppy",
        }
    }
}

/// The options xvsadm implements: ipvsadm's, in the order of its `OPTC_*` constants, DPVS's
/// `--laddr`, then xvs's own (health checks, the connection limit). They are the columns of
/// [`RULES`]; their order decides which error is reported first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Timeout,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Exact,
    SchedFlags,
    TunType,
    TunPort,
    /// `--tun-nocsum`, `--tun-csum`, `--tun-remcsum`: one of them.
    TunChecksum,
    /// DPVS's `-z`/`--laddr` (its `OPT_LOCAL_ADDRESS`).
    LocalAddress,
    // xvs extensions.
    Health,
    Check,
    CheckPort,
    CheckPath,
    CheckStatus,
    CheckInterval,
    CheckTimeout,
    Rise,
    Fall,
    ConnLimit,
}

impl Opt {
    pub(super) const ALL: [Opt; 33] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Netmask,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::UThreshold,
        Opt::LThreshold,
        Opt::Timeout,
        Opt::Stats,
        Opt::Rate,
        Opt::Thresholds,
        Opt::PersistentConn,
        Opt::NoSort,
        Opt::Exact,
        Opt::SchedFlags,
        Opt::TunType,
        Opt::TunPort,
        Opt::TunChecksum,
        Opt::LocalAddress,
        Opt::Health,
        Opt::Check,
        Opt::CheckPort,
        Opt::CheckPath,
        Opt::CheckStatus,
        Opt::CheckInterval,
        Opt::CheckTimeout,
        Opt::Rise,
        Opt::Fall,
        Opt::ConnLimit,
    ];

    /// The check options that only mean something with `--check`.
    pub(super) const CHECK_DETAILS: [Opt; 7] = [
        Opt::CheckPort,
        Opt::CheckPath,
        Opt::CheckStatus,
        Opt::CheckInterval,
        Opt::CheckTimeout,
        Opt::Rise,
        Opt::Fall,
    ];

    /// ipvsadm's `optnames[]` (for xvs's options: their long names).
    pub(super) fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Timeout => "timeout",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::SchedFlags => "sched-flags",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunChecksum => "tun-csum-flags",
            // DPVS's optnames[].
            Opt::LocalAddress => "local-address",
            Opt::Health => "health",
            Opt::Check => "check",
            Opt::CheckPort => "check-port",
            Opt::CheckPath => "check-path",
            Opt::CheckStatus => "check-status",
            Opt::CheckInterval => "check-interval",
            Opt::CheckTimeout => "check-timeout",
            Opt::Rise => "rise",
            Opt::Fall => "fall",
            Opt::ConnLimit => "conn-limit",
        }
    }

    pub(super) fn bit(self) -> u64 {
        1 << self as u32
    }
}

/// The width of a [`RULES`] row.
const OPTS: usize = Opt::ALL.len();
// Each option is one bit of [`Opt::bit`]'s u64.
const _: () = assert!(OPTS <= 64);

/// ipvsadm's `commands_v_options` table restricted to the columns of [`Opt`], plus DPVS's
/// local-address rows and column, plus xvs's columns: `+` compulsory, `x` illegal, `1`
/// exclusive (at most one `1` option), ` ` optional. ipvsadm's rows and columns, quoted from
/// ipvsadm.c (the columns xvs lacks left out):
///
/// ```text
///             -n   -c   svc  -s   -p   -M   -r   fwd  -w   -x   -y   ... tot  ... -st  -rt  thr  -pc  srt  ... -ex  ... -b
/// /*ADD*/     'x', 'x', '+', ' ', ' ', ' ', 'x', 'x', 'x', 'x', 'x', ... 'x', ... 'x', 'x', 'x', 'x', 'x', ... 'x', ... ' '
/// /*LIST*/    ' ', '1', '1', 'x', 'x', 'x', 'x', 'x', 'x', 'x', 'x', ... '1', ... ' ', ' ', ' ', ' ', ' ', ... ' ', ... 'x'
/// /*TIMEOUT*/ every option 'x'          /*RESTORE*/ every option 'x'
/// /*SAVE*/    ' ', then every option 'x'
/// /*ZERO*/    'x', 'x', ' ', then every option 'x'
/// ```
///
/// DPVS's ipvsadm.c (its `laddr` column is `OPT_LOCAL_ADDRESS`, `-z`; `-F`/`--ifname`, which
/// DPVS also wants for these commands, xvs does not need):
///
/// ```text
///               -n   -c   svc  ... laddr ... ifname ... cpu
/// /*ADDLADDR*/ {'x', 'x', '+', ... '+',   ... '+',    ... 'x', ...}  (every other option 'x')
/// /*DELLADDR*/ {'x', 'x', '+', ... '+',   ... '+',    ... 'x', ...}
/// /*GETLADDR*/ {'x', 'x', ' ', ... 'x',   ... 'x',    ... ' ', ...}
/// ```
///
/// The `laddr` column is illegal with every other command. xvs's columns: `--health` is a
/// listing option; the check options and `--conn-limit` go with `-A` and `-E`. xvs's row:
/// `--sloppy` takes no option, as `--set` takes none (its list is its own argument).
pub(super) const RULES: [&[u8; OPTS]; 16] = [
    // Columns: -n -c svc -s -p -M -r fwd -w -x -y --timeout --stats --rate --thresholds
    // --persistent-conn --nosort --exact -b --tun-type --tun-port --tun-*csum -z | --health
    // --check --check-port --check-path --check-status --check-interval --check-timeout
    // --rise --fall --conn-limit
    b"xx+   xxxxxxxxxxxx xxxxx         ", // add-service
    b"xx+   xxxxxxxxxxxx xxxxx         ", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b" 11xxxxxxxx1      xxxxx xxxxxxxxx", // list
    b"xx+xxx+    xxxxxxxx   xxxxxxxxxxx", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+    xxxxxxxx   xxxxxxxxxxx", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
    b"xx+xxxxxxxxxxxxxxxxxxx+xxxxxxxxxx", // add-laddr
    b"xx+xxxxxxxxxxxxxxxxxxx+xxxxxxxxxx", // del-laddr
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // get-laddr
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // sloppy
];

/// What an option does once recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
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
    /// DPVS's `--fullnat`.
    FullNat,
    TunType,
    TunPort,
    TunChecksum(TunnelChecksum),
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
    Connection,
    Timeout,
    Rate,
    Health,
    Check,
    CheckPort,
    CheckPath,
    CheckStatus,
    CheckInterval,
    CheckTimeout,
    Rise,
    Fall,
    ConnLimit,
    /// DPVS's `-z`/`--laddr`.
    LocalAddress,
    /// xvs's `--sloppy LIST`: the command [`Cmd::Sloppy`] with its argument.
    Sloppy,
    /// An ipvsadm option xvs does not implement; refused with its long name and the reason.
    Unsupported(&'static str),
}

/// Whether an option takes an argument (popt's `argInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Arg {
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
pub(super) struct Spec {
    pub(super) short: Option<char>,
    pub(super) long: &'static str,
    pub(super) arg: Arg,
    pub(super) key: Key,
}

pub(super) const fn spec(
    short: Option<char>,
    long: &'static str,
    takes_arg: bool,
    key: Key,
) -> Spec {
    Spec {
        short,
        long,
        arg: if takes_arg { Arg::Required } else { Arg::None },
        key,
    }
}

const NO_SYNC: &str = "xvs has no connection sync daemon";
const NO_TUN_INFO: &str = "xvs lists tunnels in -S form only (-S shows --tun-* options)";

/// ipvsadm 1.31's options, short and long, DPVS's FullNAT options, then xvs's own. `-L` and
/// `-l` are both `--list`.
pub(super) const SPECS: &[Spec] = &[
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
    spec(Some('c'), "connection", false, Key::Connection),
    spec(None, "timeout", false, Key::Timeout),
    spec(None, "rate", false, Key::Rate),
    spec(Some('Z'), "zero", false, Key::Command(Cmd::Zero)),
    spec(None, "set", false, Key::Command(Cmd::Timeout)),
    spec(Some('R'), "restore", false, Key::Command(Cmd::Restore)),
    spec(Some('S'), "save", false, Key::Command(Cmd::Save)),
    // DPVS's ipvsadm (FullNAT):
    // { "add-laddr", 'P', POPT_ARG_NONE, NULL, 'P', NULL, NULL },
    // { "del-laddr", 'Q', POPT_ARG_NONE, NULL, 'Q', NULL, NULL },
    // { "get-laddr", 'G', POPT_ARG_NONE, NULL, 'G', NULL, NULL },
    // { "fullnat" , 'b' , POPT_ARG_NONE, NULL, 'b', NULL, NULL },
    // { "laddr", 'z', POPT_ARG_STRING, &optarg, 'z', NULL, NULL },
    // `--fullnat` is long only: DPVS's `-b` is ipvsadm 1.31's `--sched-flags`, which keeps
    // its ipvsadm meaning here.
    spec(Some('P'), "add-laddr", false, Key::Command(Cmd::AddLaddr)),
    spec(Some('Q'), "del-laddr", false, Key::Command(Cmd::DelLaddr)),
    spec(Some('G'), "get-laddr", false, Key::Command(Cmd::GetLaddr)),
    spec(None, "fullnat", false, Key::FullNat),
    spec(Some('z'), "laddr", true, Key::LocalAddress),
    // xvs's own: health checks, the connection limit, sloppy TCP/UDP (a command with an
    // argument, long only).
    spec(None, "health", false, Key::Health),
    spec(None, "check", true, Key::Check),
    spec(None, "check-port", true, Key::CheckPort),
    spec(None, "check-path", true, Key::CheckPath),
    spec(None, "check-status", true, Key::CheckStatus),
    spec(None, "check-interval", true, Key::CheckInterval),
    spec(None, "check-timeout", true, Key::CheckTimeout),
    spec(None, "rise", true, Key::Rise),
    spec(None, "fall", true, Key::Fall),
    spec(None, "conn-limit", true, Key::ConnLimit),
    spec(None, "sloppy", true, Key::Sloppy),
    // Known to ipvsadm, not implemented by xvs.
    spec(None, "start-daemon", true, Key::Unsupported(NO_SYNC)),
    spec(None, "stop-daemon", true, Key::Unsupported(NO_SYNC)),
    spec(None, "mcast-interface", true, Key::Unsupported(NO_SYNC)),
    spec(None, "syncid", true, Key::Unsupported(NO_SYNC)),
    spec(None, "daemon", false, Key::Unsupported(NO_SYNC)),
    spec(None, "mcast-group", true, Key::Unsupported(NO_SYNC)),
    spec(None, "mcast-port", true, Key::Unsupported(NO_SYNC)),
    spec(None, "mcast-ttl", true, Key::Unsupported(NO_SYNC)),
    spec(None, "sync-maxlen", true, Key::Unsupported(NO_SYNC)),
    spec(
        None,
        "sctp-service",
        true,
        Key::Unsupported("xvs balances TCP and UDP only"),
    ),
    spec(
        Some('f'),
        "fwmark-service",
        true,
        Key::Unsupported("xvs has no firewall-mark services"),
    ),
    // ipvsadm: case '6': if (ce->svc.fwmark) { ce->svc.af = AF_INET6; ... } else
    //         fail(2, "-6 used before -f\n");  -- it only makes a fwmark service IPv6.
    spec(
        Some('6'),
        "ipv6",
        false,
        Key::Unsupported(
            "it makes a firewall-mark service (-f) IPv6, and xvs has no firewall-mark services; \
             an IPv6 virtual service is given by its address (-t|-u [ADDRESS]:PORT)",
        ),
    ),
    spec(
        Some('o'),
        "ops",
        false,
        Key::Unsupported("xvs has no one-packet scheduling"),
    ),
    spec(
        None,
        "pe",
        true,
        Key::Unsupported("xvs has no persistence engines"),
    ),
    spec(None, "tun-info", false, Key::Unsupported(NO_TUN_INFO)),
    // DPVS's `{ "ifname", 'F', POPT_ARG_STRING, ... }`, compulsory there with --add-laddr.
    spec(
        Some('F'),
        "ifname",
        true,
        Key::Unsupported("xvs needs no interface for a local address (xvsd steers it itself)"),
    ),
    spec(None, "tun-type", true, Key::TunType),
    spec(None, "tun-port", true, Key::TunPort),
    spec(
        None,
        "tun-nocsum",
        false,
        Key::TunChecksum(TunnelChecksum::NoCsum),
    ),
    spec(
        None,
        "tun-csum",
        false,
        Key::TunChecksum(TunnelChecksum::Csum),
    ),
    spec(
        None,
        "tun-remcsum",
        false,
        Key::TunChecksum(TunnelChecksum::RemCsum),
    ),
];
