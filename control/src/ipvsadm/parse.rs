//! The command line: options read into [`Parsed`], checked against ipvsadm's tables, turned
//! into an [`Invocation`].

use super::check::{number, CheckOptions};
use super::options::{Cmd, Key, Opt, RULES};
use super::tokens::{Found, Token, Tokens};
use super::{Invocation, ListOptions, UsageError, DEFAULT_SCHEDULER};
use crate::protocol::{
    Command, Forward, Netmask, Protocol, RealKey, ServiceKey, Sloppy, Timeouts, TunnelChecksum,
    TunnelKind, TunnelSpec, DEFAULT_PERSISTENT_TIMEOUT, MAX_PERSISTENT_TIMEOUT,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use xvs_scheduler::{Flags, SchedulerKind};

/// Everything the options said, before it becomes an [`Invocation`].
#[derive(Default)]
struct Parsed {
    cmd: Option<Cmd>,
    /// [`Opt::bit`]s of the options given, for ipvsadm's table checks.
    options: u64,
    service: Option<ServiceKey>,
    scheduler: Option<String>,
    /// `-p`'s timeout (the default when `-p` has no argument).
    persistent: Option<u32>,
    /// `-M` as given: read once the service's address family is known ([`parse_netmask`]).
    netmask: Option<String>,
    real: Option<(IpAddr, Option<u16>)>,
    forward: Option<(Forward, String)>,
    /// `--tun-type`, `--tun-port`, `--tun-*csum`.
    tun_type: Option<TunnelKind>,
    tun_port: Option<u16>,
    tun_checksum: Option<TunnelChecksum>,
    weight: Option<u32>,
    upper_threshold: Option<u32>,
    lower_threshold: Option<u32>,
    /// `-b`'s argument as given (ipvsadm parses it once all options are read).
    sched_flags: Option<String>,
    list: ListOptions,
    /// xvs's `--check` options.
    check: CheckOptions,
    /// xvs's `--conn-limit` (0: no limit).
    conn_limit: Option<u32>,
    /// DPVS's `-z`/`--laddr`.
    laddr: Option<IpAddr>,
    /// xvs's `--sloppy LIST`, read (set with the command).
    sloppy: Option<Sloppy>,
    /// Words that are no option's argument: `--set`'s three timeouts, else an error.
    positional: Vec<String>,
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
                // case 'M': a mask for an IPv4 service, a prefix length for an IPv6 one: read
                // in `finish`, when the service is known whatever the options' order.
                self.set_option(Opt::Netmask)?;
                self.netmask = Some(value);
            }
            Key::RealServer => {
                self.set_option(Opt::Server)?;
                self.real = Some(parse_address(&value, "real server")?);
            }
            Key::Masquerading | Key::Gatewaying | Key::Ipip | Key::FullNat => {
                // DPVS: case 'b': set_option(options, OPT_FORWARD); ... IP_VS_CONN_F_FULLNAT;
                // one forwarding method, as -g/-i/-m are.
                self.set_option(Opt::Forward)?;
                let forward = match found.spec.key {
                    Key::Masquerading => Forward::Masq,
                    Key::Gatewaying => Forward::Route,
                    Key::FullNat => Forward::FullNat,
                    _ => Forward::Tunnel,
                };
                self.forward = Some((forward, found.shown));
            }
            Key::TunType => {
                self.set_option(Opt::TunType)?;
                self.tun_type = Some(match value.as_str() {
                    "ipip" => TunnelKind::Ipip,
                    "gue" => TunnelKind::Gue,
                    "gre" => TunnelKind::Gre,
                    _ => return Err(UsageError::Invalid("illegal tunnel type specified".into())),
                });
            }
            Key::TunPort => {
                self.set_option(Opt::TunPort)?;
                let port = string_to_number(&value, 1, 65535)
                    .ok_or_else(|| UsageError::Invalid("illegal tunnel port specified".into()))?;
                self.tun_port = u16::try_from(port).ok();
            }
            Key::TunChecksum(checksum) => {
                self.set_option(Opt::TunChecksum)?;
                self.tun_checksum = Some(checksum);
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
            Key::Sort => {
                // case TAG_SORT:
                //         /* Sort is the default, this is a no-op for compatibility */
            }
            Key::Connection => self.set_option(Opt::Connection)?,
            Key::Timeout => self.set_option(Opt::Timeout)?,
            Key::Rate => {
                self.set_option(Opt::Rate)?;
                self.list.rate = true;
            }
            Key::Health => self.set_option(Opt::Health)?,
            Key::Check => {
                self.set_option(Opt::Check)?;
                self.check.set_kind(&value)?;
            }
            Key::CheckPort
            | Key::CheckPath
            | Key::CheckStatus
            | Key::CheckInterval
            | Key::CheckTimeout
            | Key::Rise
            | Key::Fall => {
                let opt = match found.spec.key {
                    Key::CheckPort => Opt::CheckPort,
                    Key::CheckPath => Opt::CheckPath,
                    Key::CheckStatus => Opt::CheckStatus,
                    Key::CheckInterval => Opt::CheckInterval,
                    Key::CheckTimeout => Opt::CheckTimeout,
                    Key::Rise => Opt::Rise,
                    _ => Opt::Fall,
                };
                self.set_option(opt)?;
                self.check.set(opt, &value)?;
            }
            Key::ConnLimit => {
                self.set_option(Opt::ConnLimit)?;
                self.conn_limit = Some(number(&value, 0, u32::MAX).ok_or_else(|| {
                    UsageError::Invalid(format!(
                        "illegal connection limit `{value}' specified (--conn-limit takes \
                         0..{}, 0: no limit)",
                        u32::MAX
                    ))
                })?);
            }
            Key::LocalAddress => {
                // DPVS: case 'z': set_option(options, OPT_LOCAL_ADDRESS);
                //         parse = parse_service(optarg, &dpvs_svc);
                //         if (!(parse & SERVICE_ADDR)) fail(2, "illegal local address");
                self.set_option(Opt::LocalAddress)?;
                self.laddr = Some(parse_local_address(&value)?);
            }
            Key::Sloppy => {
                // xvs: a command with its argument, as if ipvsadm had
                // case TAG_SLOPPY: set_command(&ce->cmd, CMD_SLOPPY); parse_sloppy(optarg);
                self.set_command(Cmd::Sloppy)?;
                self.sloppy = Some(parse_sloppy(&value)?);
            }
            Key::Unsupported(why) => {
                return Err(UsageError::Unsupported(format!(
                    "option '{}' ({}) is not supported: {why}",
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
        let mut exclusive: Option<Opt> = None;
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
                (b'1', true) => {
                    if let Some(first) = exclusive {
                        return Err(UsageError::Invalid(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' command",
                            opt.name(),
                            first.name(),
                            cmd.name()
                        )));
                    }
                    exclusive = Some(opt);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Invocation, UsageError> {
        // if (ce->cmd == CMD_TIMEOUT) { ... poptGetArg x3 ... parse_timeout(optarg, 0,
        //         MAX_TIMEOUT) ... } else fail(2, "--set option requires 3 timeout values");
        let mut positional = std::mem::take(&mut self.positional).into_iter();
        let timeouts = if self.cmd == Some(Cmd::Timeout) {
            let (Some(tcp), Some(tcpfin), Some(udp)) =
                (positional.next(), positional.next(), positional.next())
            else {
                return Err(UsageError::Invalid(
                    "--set option requires 3 timeout values".into(),
                ));
            };
            let timeout = |text: String| {
                string_to_number(&text, 0, i64::from(MAX_PERSISTENT_TIMEOUT))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        UsageError::Invalid(format!("invalid timeout value `{text}' specified"))
                    })
            };
            Some(Timeouts {
                tcp: timeout(tcp)?,
                tcpfin: timeout(tcpfin)?,
                udp: timeout(udp)?,
            })
        } else {
            None
        };
        if let Some(arg) = positional.next() {
            return Err(UsageError::Invalid(format!("unexpected argument {arg}")));
        }
        let Some(cmd) = self.cmd else {
            return Err(UsageError::TryHelp(
                "no command given (one of -A -E -D -C -a -e -d -L -Z -S -R --set --sloppy -P -Q -G)"
                    .into(),
            ));
        };
        // ipvsadm reads -M while parsing the options (so before generic_opt_check), by the
        // family of the service given before it; here by the service's, wherever it is.
        let netmask = self
            .netmask
            .as_deref()
            .map(|text| parse_netmask(text, self.service.map(|s| s.addr)))
            .transpose()?;
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
            Cmd::List => return self.list_invocation(),
            Cmd::Save => return Ok(Invocation::Save),
            Cmd::Restore => return Ok(Invocation::Restore),
            Cmd::Timeout => {
                let Some(Timeouts { tcp, tcpfin, udp }) = timeouts else {
                    return Err(UsageError::Invalid(
                        "--set option requires 3 timeout values".into(),
                    ));
                };
                Command::SetTimeouts { tcp, tcpfin, udp }
            }
            // xvs: the protocols named on, the others off. The list was read with the
            // command, so it is there.
            Cmd::Sloppy => {
                let Sloppy { tcp, udp } = self.sloppy.unwrap_or_default();
                Command::SetSloppy { tcp, udp }
            }
            Cmd::Zero => Command::Zero {
                service: self.service,
            },
            Cmd::Flush => Command::Clear,
            // DPVS: case CMD_ADDLADDR: result = dpvs_add_laddr(&ce.dpvs_svc, &ce.dpvs_laddr);
            //       case CMD_DELLADDR: result = dpvs_del_laddr(&ce.dpvs_svc, &ce.dpvs_laddr);
            Cmd::AddLaddr | Cmd::DelLaddr => {
                let service = service?;
                let addr = self.laddr.ok_or_else(|| missing(Opt::LocalAddress))?;
                if cmd == Cmd::AddLaddr {
                    Command::AddLaddr { service, addr }
                } else {
                    Command::DelLaddr { service, addr }
                }
            }
            // DPVS: case CMD_GETLADDR: if (options & OPT_SERVICE) list_laddrs(&ce.dpvs_svc);
            //       else list_all_laddrs(ce.index);
            Cmd::GetLaddr => {
                return Ok(Invocation::Laddrs(ListOptions {
                    service: self.service,
                    ..ListOptions::default()
                }))
            }
            Cmd::AddService | Cmd::EditService => {
                let service = service?;
                if service.port == 0 {
                    // "Make sure that port zero service is persistent"; xvs has no services
                    // of every port, persistent or not.
                    if self.persistent.is_none() {
                        // An IPv6 address without brackets has no port (`2001:2::1:80` is an
                        // address): say so, it is the likely slip.
                        let hint = if service.addr.is_ipv6() {
                            " (an IPv6 service's port follows its address in brackets: \
                             [ADDRESS]:PORT)"
                        } else {
                            ""
                        };
                        return Err(UsageError::Invalid(format!(
                            "Zero port specified for non-persistent service{hint}"
                        )));
                    }
                    return Err(UsageError::Unsupported(
                        "a persistent service on port 0 (every port) is not supported".into(),
                    ));
                }
                // ipvsadm sends the timeout and the mask whatever the command: -E without -p
                // makes the service non-persistent (0 here), without -M sets /32 (IPv4) or
                // /128 (IPv6). -M without -p is accepted, as in ipvsadm, and has no effect.
                let persistent = Some(self.persistent.unwrap_or(0));
                let netmask = Some(netmask.unwrap_or(Netmask::default_for(service.addr)));
                // ipvsadm sends its default scheduler whenever -s is absent, for -E too.
                let scheduler = Some(
                    self.scheduler
                        .clone()
                        .unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
                );
                // Like the scheduler, the flags are always sent: -E without -b clears them.
                let sched_flags = Some(sched_flags);
                let command = if cmd == Cmd::AddService {
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
                };
                // xvs: --check sets (or with `none` removes) the check, and --conn-limit the
                // connection limit, in the same batch, so the service never exists without
                // them; without the option the check or the limit is left alone (a new
                // service has neither).
                let mut commands = vec![command];
                if let Some(check) = self.check.finish(self.options)? {
                    commands.push(Command::SetCheck { service, check });
                }
                if let Some(max_conns) = self.conn_limit {
                    commands.push(Command::SetConnLimit { service, max_conns });
                }
                match commands.len() {
                    1 => commands.remove(0),
                    _ => Command::Batch { commands },
                }
            }
            Cmd::DelService => Command::DelService { service: service? },
            Cmd::DelServer => {
                let (service, real) = real()?;
                Command::DelReal { service, real }
            }
            Cmd::AddServer | Cmd::EditServer => {
                let (service, mut real) = real()?;
                // ipvsadm's default method is direct routing, for -a and -e alike.
                let forward = self.forward.as_ref().map_or(Forward::Route, |(f, _)| *f);
                let tunnel_options = self.tun_type.is_some()
                    || self.tun_port.is_some()
                    || self.tun_checksum.is_some();
                // ipvsadm sends the tunnel's settings with -i, its defaults (ipip) included.
                let tunnel = match forward {
                    Forward::Tunnel => Some(TunnelSpec {
                        kind: self.tun_type.unwrap_or(TunnelKind::Ipip),
                        port: self.tun_port,
                        checksum: self.tun_checksum.unwrap_or_default(),
                    }),
                    _ if tunnel_options => {
                        return Err(UsageError::Invalid(
                            "the --tun-* options go with tunneling (-i, --ipip)".into(),
                        ))
                    }
                    _ => None,
                };
                // ipvsadm: "the destination port must be equal to the service port" when
                // the packet keeps its destination (-g, -i); it sets it, whatever was given.
                // Masquerading and DPVS's FullNAT rewrite it: the real server's port stays.
                if matches!(forward, Forward::Route | Forward::Tunnel) {
                    real.port = service.port;
                }
                // /* Tunneling allows different address family */
                // if (ce.dest.af != ce.svc.af && fwd_method != IP_VS_CONN_F_TUNNEL)
                //         fail(2, "Different address family is allowed only "
                //              "for tunneling servers");
                // (IPVS's own rule, ip_vs_genl_set_cmd: EINVAL for another method.)
                if real.addr.is_ipv6() != service.addr.is_ipv6() && forward != Forward::Tunnel {
                    return Err(UsageError::Invalid(
                        "Different address family is allowed only for tunneling servers".into(),
                    ));
                }
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
                        tunnel,
                        upper_threshold,
                        lower_threshold,
                    }
                } else {
                    Command::EditReal {
                        service,
                        real,
                        weight,
                        forward,
                        tunnel,
                        upper_threshold,
                        lower_threshold,
                    }
                }
            }
        };
        Ok(Invocation::Apply(command))
    }

    /// `-L` once the option table allowed it: ipvsadm's `case CMD_LIST`, which picks the
    /// listing (connections, one service, timeouts or everything), and xvs's `--health`.
    fn list_invocation(&self) -> Result<Invocation, UsageError> {
        let has = |opt: Opt| self.options & opt.bit() != 0;
        let any = |opts: &[Opt]| opts.iter().any(|&o| has(o));
        // if ((options & (OPT_CONNECTION|OPT_TIMEOUT|OPT_DAEMON) &&
        //      options & (OPT_STATS|OPT_RATE|OPT_THRESHOLDS)) ||
        //     (options & (OPT_TIMEOUT|OPT_DAEMON) &&
        //      options & OPT_PERSISTENTCONN))
        //         fail(2, "options conflicts in the list command");
        // xvs: --health is a listing of its own, like -c.
        let listing_kinds = [Opt::Stats, Opt::Rate, Opt::Thresholds];
        if (any(&[Opt::Connection, Opt::Timeout, Opt::Health]) && any(&listing_kinds))
            || (any(&[Opt::Timeout, Opt::Health]) && has(Opt::PersistentConn))
            || (has(Opt::Health) && any(&[Opt::Connection, Opt::Timeout]))
        {
            return Err(UsageError::Invalid(
                "options conflicts in the list command".into(),
            ));
        }
        let mut list = self.list.clone();
        list.service = self.service;
        Ok(if has(Opt::Connection) {
            Invocation::Connections(list)
        } else if has(Opt::Timeout) {
            Invocation::Timeouts
        } else if has(Opt::Health) {
            Invocation::Health(list)
        } else {
            Invocation::List(list)
        })
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

/// What `--sloppy` takes, for its messages.
const SLOPPY_VALUES: &str = "--sloppy takes tcp, udp, tcp,udp or none";

/// xvs's `--sloppy LIST` (no ipvsadm equivalent: IPVS has the sysctls
/// `net.ipv4.vs.sloppy_tcp` and `sloppy_udp`): `tcp` and/or `udp`, comma-separated, each
/// named one turned on and the other off, or `none` alone for both off. A name given twice
/// is harmless (as in `-b`); an empty list or name, another name, or `none` with a protocol
/// is refused.
fn parse_sloppy(value: &str) -> Result<Sloppy, UsageError> {
    if value.is_empty() {
        return Err(UsageError::Invalid(format!(
            "empty sloppy list specified ({SLOPPY_VALUES})"
        )));
    }
    if value == "none" {
        return Ok(Sloppy::default());
    }
    let mut sloppy = Sloppy::default();
    for name in value.split(',') {
        match name {
            "tcp" => sloppy.tcp = true,
            "udp" => sloppy.udp = true,
            "none" => {
                return Err(UsageError::Invalid(format!(
                    "illegal sloppy list `{value}' specified (none turns both off and \
                     goes alone)"
                )))
            }
            "" => {
                return Err(UsageError::Invalid(format!(
                    "empty protocol in sloppy list `{value}' ({SLOPPY_VALUES})"
                )))
            }
            _ => {
                return Err(UsageError::Invalid(format!(
                    "illegal sloppy protocol `{name}' specified ({SLOPPY_VALUES})"
                )))
            }
        }
    }
    Ok(sloppy)
}

/// `-x` / `-y`: ipvsadm's `string_to_number(optarg, 0, INT_MAX)`.
fn threshold(value: &str, illegal: &str) -> Result<u32, UsageError> {
    string_to_number(value, 0, i64::from(i32::MAX))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| UsageError::Invalid(illegal.into()))
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
            // popt collects stray words: `--set` takes three, ipvsadm rejects any other.
            Token::Arg(arg) => parsed.positional.push(arg),
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

/// ipvsadm's `parse_service`: an address and, if given, a port. Its forms:
/// - `[IPv6]:PORT` (the brackets must be followed by `:` and a port: ipvsadm refuses `[IPv6]`
///   alone);
/// - `IPv6` without brackets: an address without a port (`2001:2::1:80` is an address);
/// - `IPv4[:PORT]`.
///
/// ipvsadm also resolves host and service names; xvsadm takes numbers only. It refuses
/// brackets around an IPv4 address, which ipvsadm reads as the address with the port lost.
fn parse_address(text: &str, what: &str) -> Result<(IpAddr, Option<u16>), UsageError> {
    let illegal = |why: Option<String>| {
        let why = why.map(|w| format!(" ({w})")).unwrap_or_default();
        UsageError::Invalid(format!("illegal {what} address[:port] specified{why}"))
    };
    let port = |text: &str| {
        string_to_number(text, 0, 65535)
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| illegal(None))
    };
    // if (buf == NULL || str_is_digit(buf)) return SERVICE_NONE;
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(illegal(None));
    }
    // if (buf[0] == '[') { buf++; portp = strchr(buf, ']'); if (portp == NULL) return
    //         SERVICE_NONE; *portp = '\0'; portp++; if (*portp == ':') *portp = '\0'; else
    //         return SERVICE_NONE; }
    if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return Err(illegal(Some(format!(
                "no `]' closes the IPv6 address of `{text}'"
            ))));
        };
        let Some(port_text) = after.strip_prefix(':') else {
            return Err(illegal(Some(if after.is_empty() {
                format!(
                    "`{text}': a bracketed IPv6 address takes a port, [ADDRESS]:PORT; write \
                     the address alone for none"
                )
            } else {
                format!("`{text}': a `:' and the port follow the `]'")
            })));
        };
        let addr = inside.parse::<Ipv6Addr>().map_err(|_| {
            illegal(Some(format!(
                "`{inside}' in brackets is not an IPv6 address (an IPv4 address goes without \
                 brackets)"
            )))
        })?;
        return Ok((IpAddr::V6(addr), Some(port(port_text)?)));
    }
    // if (inet_pton(AF_INET6, buf, &inaddr6) > 0) { ... svc->af = AF_INET6; ... }
    if let Ok(addr) = text.parse::<Ipv6Addr>() {
        return Ok((IpAddr::V6(addr), None));
    }
    // else { portp = strrchr(buf, ':'); ... inet_aton(buf, &inaddr) ... }
    let (addr, port) = match text.rsplit_once(':') {
        Some((addr, port_text)) => (addr, Some(port(port_text)?)),
        None => (text, None),
    };
    let addr = addr.parse::<Ipv4Addr>().map_err(|_| illegal(None))?;
    Ok((IpAddr::V4(addr), port))
}

/// DPVS's `-z LIP`: an IPv4 or IPv6 address, without a port (DPVS's `parse_service` takes one
/// and ignores it), without brackets and numeric only.
fn parse_local_address(text: &str) -> Result<IpAddr, UsageError> {
    text.parse::<IpAddr>().map_err(|_| {
        UsageError::Invalid(format!(
            "illegal local address `{text}' specified (-z takes an IPv4 or IPv6 address, no \
             port, no brackets)"
        ))
    })
}

/// `-M` for a service at `service` (none given: IPv4, as ipvsadm's `af` before any `-t`):
///
/// ```text
/// case 'M':
///         set_option(options, OPTC_NETMASK);
///         if (ce->svc.af != AF_INET6) {
///                 parse = parse_netmask(optarg, &ce->svc.netmask);
///                 if (parse != 1)
///                         fail(2, "illegal virtual server "
///                              "persistent mask specified");
///         } else {
///                 ce->svc.netmask = atoi(optarg);
///                 if ((ce->svc.netmask < 1) || (ce->svc.netmask > 128))
///                         fail(2, "illegal ipv6 netmask specified");
///         }
/// ```
///
/// A numeric dotted quad only for IPv4 (ipvsadm: inet_aton, so also `24` as 0.0.0.24, or a
/// host name), a whole decimal number for IPv6 (atoi: `64abc` is 64 there). When the value is
/// the other family's form, the message says so.
fn parse_netmask(text: &str, service: Option<IpAddr>) -> Result<Netmask, UsageError> {
    if service.is_some_and(|a| a.is_ipv6()) {
        return match string_to_number(text, 1, 128).and_then(|n| u8::try_from(n).ok()) {
            Some(len) => Ok(Netmask::PrefixLen(len)),
            None => {
                let hint = if text.parse::<Ipv4Addr>().is_ok() {
                    " (an IPv6 service takes a prefix length, 1..128, not a mask)"
                } else {
                    " (a prefix length, 1..128)"
                };
                Err(UsageError::Invalid(format!(
                    "illegal ipv6 netmask specified{hint}"
                )))
            }
        };
    }
    text.parse::<Ipv4Addr>().map(Netmask::Mask).map_err(|_| {
        let hint = if string_to_number(text, 0, 128).is_some() {
            " (an IPv4 service takes a mask such as 255.255.255.0; a prefix length is for \
             IPv6 services)"
        } else {
            ""
        };
        UsageError::Invalid(format!(
            "illegal virtual server persistent mask specified{hint}"
        ))
    })
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
