//! ipvsadm's option table (popt's `options_table`) and its `commands_v_options` legality table.

/// ipvsadm's commands, in the order of its `CMD_*` constants (the rows of [`RULES`]).
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
        }
    }
}

/// The ipvsadm options xvsadm implements, in the order of ipvsadm's `OPTC_*` constants (the
/// columns of [`RULES`]); that order decides which error ipvsadm reports first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Opt {
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
    pub(super) const ALL: [Opt; 16] = [
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
    pub(super) fn name(self) -> &'static str {
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

    pub(super) fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// ipvsadm's `commands_v_options` table restricted to the columns of [`Opt`]
/// (`-n svc -s -p -M -r fwd -w -x -y --stats --thresholds --persistent-conn --nosort --exact
/// -b`): `+` compulsory, `x` illegal, ` ` optional. ipvsadm marks the service `1` (exclusive)
/// for `list`, exclusive with `-c`, `--timeout` and `--daemon`, none of which xvsadm
/// implements, so it is optional here.
pub(super) const RULES: [&[u8; 16]; 8] = [
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

/// ipvsadm 1.31's options, short and long. `-L` and `-l` are both `--list`.
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
