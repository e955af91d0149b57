//! ipvsadm's command line and output formats, mapped onto the control protocol.
//!
//! This module owns everything `xvsadm` shares with ipvsadm: parsing its argument syntax
//! ([`parse`]) into protocol commands, the listings ([`format_list`], [`format_timeouts`],
//! [`format_connections`]), `-S` and `-R` ([`format_save`], [`parse_restore`]), the messages
//! ipvsadm prints for the kernel's errors ([`daemon_error_message`]) and its exit statuses;
//! and xvs's health-check options, `--conn-limit`, `--sloppy` and `--health` listing
//! ([`format_health`]).
//! It is pure (no I/O), so every format is unit tested against golden strings.
//!
//! Files: `options.rs` (ipvsadm's option table and `commands_v_options`), `tokens.rs` (popt's
//! argv splitting), `parse.rs` (options to an [`Invocation`]), `check.rs` (the check options),
//! `format.rs` (ipvsadm's listings), `health.rs` (`--health`), `save.rs` (`-S`, `-R`),
//! `errors.rs`, `usage.rs` (`-h`, `-v`), `tests/`.
//!
//! The reference is ipvsadm 1.31 (git.kernel.org/pub/scm/utils/kernel/ipvsadm/ipvsadm.git,
//! commit "Release: Version 1.31"), files ipvsadm.c, config_stream.c and libipvs/libipvs.c;
//! the C format strings are quoted beside the code that reproduces them. Every format both
//! print is byte-identical to ipvsadm's numeric (`-n`) output.
//!
//! Where xvsadm knowingly differs from ipvsadm:
//! - addresses and ports are always printed numerically (no DNS or /etc/services lookups),
//!   with or without `-n`, and only numeric addresses are accepted;
//! - options may come in any order (ipvsadm wants the command first);
//! - the real server's port defaults to the service's port wherever `-r` appears (ipvsadm copies
//!   the port only if `-t`/`-u` came before `-r`);
//! - ipvsadm options xvs does not implement (`-f`, `--sctp-service`, `-6`, `-o`, `--pe`,
//!   `--tun-info`, the sync daemon's) are refused by name, with the reason, instead of being
//!   sent (`--tun-remcsum` is sent, and the daemon refuses it);
//! - `-b flag-3` is refused (IPVS's third scheduler flag bit, read by no scheduler, which xvs
//!   does not keep), and `-b ,` (only commas) is "invalid scheduler flag `,'" where ipvsadm
//!   crashes (strtok gives strcmp a NULL);
//! - `-M` takes a numeric dotted quad only for an IPv4 service (ipvsadm: inet_aton or a host
//!   name), and the daemon wants it contiguous; for an IPv6 service a whole decimal prefix
//!   length 1..128 (ipvsadm: atoi). ipvsadm reads `-M` by the family of the `-t`/`-u` before
//!   it (an IPv4 mask when none came before); xvsadm by the service's, wherever it is. A
//!   persistent service on port 0 (every port) is refused as not supported;
//! - `[198.18.0.1]:80` (an IPv4 address in brackets) is refused; ipvsadm reads it as the
//!   address without a port;
//! - `--persistent-conn` prints the PersistConn column as the daemon reports it (0 from a
//!   daemon that does not count templates per real server);
//! - `-L -c` lists the workers' connection tables sorted (protocol, virtual address and port,
//!   real server, client), where ipvsadm prints /proc/net/ip_vs_conn in hash order; `--sort`
//!   does nothing there either, `--nosort` keeps the workers' order;
//! - `-S` adds ` -x N` / ` -y N` to a real server's line when not 0 (ipvsadm 1.31 loses the
//!   thresholds), a service's check options and ` --conn-limit N` to its `-A` line, and its
//!   FullNAT local addresses as `--add-laddr` lines after it; before the services, a
//!   `--sloppy tcp,udp` line when sloppy TCP or UDP is on;
//! - `-R` sends every line as one batch, so a failing line applies nothing (ipvsadm runs the
//!   lines one by one and stops at the first failure, leaving the lines before it applied), and
//!   accepts only changes (ipvsadm would also run `-L` lines);
//! - where a health check holds a real server down, `-L` and `--persistent-conn` show its
//!   weight as 0 (keepalived sets it to 0); `-S` saves the configured weight.
//!
//! IPv6, in ipvsadm's forms (its `parse_service`): `-t|-u|-r [ADDR]:PORT`, or the address
//! alone without brackets and without a port (`-r 2001:2:0:1::11` takes the service's port;
//! `-t 2001:2::1:80` is the address 2001:2::1:80, port 0); `[ADDR]` alone is refused, as by
//! ipvsadm. DPVS's `-z` takes an IPv6 address alone. `-M` of an IPv6 service is a prefix
//! length. A real server of the other address family than its service is refused unless it
//! is tunnelled (`-i`): "Different address family is allowed only for tunneling servers", as
//! ipvsadm (and IPVS) refuse it. Listings print `[ADDR]:PORT` (addrport_to_anyname) and, as
//! ipvsadm, do not cut an IPv6 name to its column (it cuts IPv4 ones to 33 and 28
//! characters), so the columns after a long one move right; IPv6 services sort after IPv4
//! ones; `mask N` and `-S`'s `-M N` are printed when the prefix length is not 128. (`-6` only
//! makes a firewall-mark service IPv6 and is refused by name, as `-f` is.)
//!
//! DPVS's FullNAT, in the spelling of DPVS's ipvsadm (its ipvsadm.c is the reference for
//! these): `-a`/`-e` take `--fullnat` (long only: DPVS's `-b` is ipvsadm 1.31's `--sched-flags`
//! here), one forwarding method like `-g`/`-i`/`-m`, which keeps the real server's port as
//! `-m` does. `--add-laddr`/`-P` and `--del-laddr`/`-Q` with `-z|--laddr LIP -t|-u VIP:PORT`
//! send `add_laddr` / `del_laddr` (DPVS's `-F IFNAME` is refused by name: xvs needs none);
//! `--get-laddr`/`-G [-t|-u VIP:PORT]` sends `list` and `connections` and prints DPVS's
//! `list_laddrs` ([`format_laddrs`]; trailing blanks left out here):
//!
//! ```text
//! VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS
//! 198.18.0.129:80      2
//!                               198.19.0.11          0          2
//!                               198.19.0.10          0          1
//! ```
//!
//! CONFLICTS is always 0 (each worker has its own share of a local address's ports), CONNS
//! the service's connections leaving from the address. `-L -c` adds DPVS's `local` column
//! when an entry listed is FullNAT's (see [`format_connections`]); `-L` shows `FullNat`.
//!
//! xvs's connection limit (no ipvsadm equivalent): `-A`/`-E` take `--conn-limit N`, sent as
//! `set_conn_limit` in one batch with the service (`0..=u32::MAX`, 0 removes the limit; `-E`
//! without it leaves the limit alone). `-S` saves it; the listings do not show it.
//!
//! xvs's sloppy TCP/UDP (IPVS's sysctls `net.ipv4.vs.sloppy_tcp` and `sloppy_udp`, which
//! ipvsadm has no option for): the command `--sloppy LIST` (long only), LIST `tcp`, `udp`,
//! `tcp,udp` or `none`, sends `set_sloppy` with the protocols named on and the others off. It
//! takes no other option (a row of `x`, as `--set`'s). `-S` saves it as a first line
//! `--sloppy tcp,udp` (`tcp`, `udp`) when either is on, nothing when both are off.
//!
//! xvs's health checks (no ipvsadm equivalent): `-A`/`-E` take `--check tcp|http|none`,
//! `--check-port`, `--check-path`, `--check-status`, `--check-interval SECONDS`,
//! `--check-timeout SECONDS` (decimals allowed, down to ms), `--rise`, `--fall` (see `check.rs`
//! for defaults and values). `-L --health [-t|-u SERVICE] [--nosort]` lists them in ipvsadm's
//! manner: the version header (all services only), two title lines, then each service with
//! its check and each real server with its health:
//!
//! ```text
//! IP Virtual Server version 1.2.1 (size=4096)
//! Prot LocalAddress:Port Check
//!   -> RemoteAddress:Port           State Streak Passed     Failed     Since      LastError
//! TCP  198.18.0.129:80 http port 8080 path /health status 204 interval 5 timeout 0.5 rise 3 fall 4
//!   -> 198.19.0.137:80              UP    3      1000       17         12         -
//!   -> 198.19.0.148:80              DOWN  3      1000       17         12         connection refused
//! UDP  198.18.0.129:53 none
//!   -> 198.19.0.1:53                -
//! ```
//!
//! The service line is `"%-4s %s"` (as in `-L`) and the check: `none`, or the kind, `port N`
//! when it is not the real server's port, `path P status S` for http (defaults spelled out;
//! status `2xx` when any 2xx will do), then `interval`, `timeout` (seconds), `rise`, `fall`. A real server's line is
//! `"  -> %-28s %-5s %-6u %-10u %-10u %-10u %s"`: state (UP or DOWN), the number of
//! consecutive results agreeing with the last, checks passed, checks failed, seconds since the
//! state last changed, and the last failure's reason (`-` if none; it is the only field that
//! may contain blanks, so it comes last). A real server with no health reported is `-` alone.

mod check;
mod errors;
mod format;
mod health;
mod options;
mod parse;
mod save;
mod tokens;
mod usage;

#[cfg(test)]
mod tests;

pub use errors::{daemon_error_message, ListError, RestoreError, UsageError};
pub use format::{
    connections_warnings, format_connections, format_laddrs, format_list, format_timeouts,
};
pub use health::format_health;
pub use parse::{parse, take_control_option};
pub use save::{format_save, parse_restore};
pub use usage::{format_daemon_version, usage, version_line};

use crate::protocol::{Command, ServiceKey};

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
    /// `-L --timeout`: send [`Command::Timeouts`], print [`format_timeouts`].
    Timeouts,
    /// `-L -c`: send [`Command::Connections`], print [`format_connections`] (and
    /// [`connections_warnings`] to stderr).
    Connections(ListOptions),
    /// `-L --health` (xvs): send [`Command::List`], print [`format_health`].
    Health(ListOptions),
    /// DPVS's `--get-laddr [-t|-u SERVICE]`: send [`Command::List`] and
    /// [`Command::Connections`] (which counts each local address's connections), print
    /// [`format_laddrs`] (and [`connections_warnings`] to stderr). Only `service` is set.
    Laddrs(ListOptions),
    /// `-S`: send [`Command::List`], print [`format_save`].
    Save,
    /// `-R`: read the rules from stdin, send what [`parse_restore`] makes of them.
    Restore,
    /// A command that changes the table; the daemon answers `{}`.
    Apply(Command),
}

impl Invocation {
    /// The protocol command to send, if any (`-R`'s depends on its input). `--get-laddr`
    /// sends [`Command::Connections`] after this one.
    pub fn command(&self) -> Option<Command> {
        match self {
            Invocation::Help | Invocation::Version | Invocation::Restore => None,
            Invocation::List(_)
            | Invocation::Health(_)
            | Invocation::Laddrs(_)
            | Invocation::Save => Some(Command::List),
            Invocation::Timeouts => Some(Command::Timeouts),
            Invocation::Connections(_) => Some(Command::Connections),
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
    /// `--rate`: rates per second instead of weights and connection counts (`--stats` wins
    /// when both are given, as in ipvsadm).
    pub rate: bool,
    /// `--thresholds`: upper and lower connection thresholds instead of forwarding method and
    /// weight (`--stats` and `--rate` win when given too, as in ipvsadm).
    pub thresholds: bool,
    /// `--persistent-conn`: weight, persistence templates (PersistConn) and connection counts
    /// (`--stats`, `--rate` and `--thresholds` win, as in ipvsadm). With `-c`: ipvsadm's
    /// title with the persistence engine columns.
    pub persistent_conn: bool,
    /// `--exact` / `-X`: counters in full instead of K/M/G/T.
    pub exact: bool,
    /// `--nosort`: the daemon's order (real servers in the order they were added; with `-c`,
    /// connections as the workers listed them).
    pub nosort: bool,
}
