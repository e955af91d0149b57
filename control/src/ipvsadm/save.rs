//! `-S` and `-R`: the table as ipvsadm command lines, and those lines back into one batch.

use super::check::save_args;
use super::format::{addrport, is_default_netmask, sorted_reals, sorted_services};
use super::{parse, Invocation, ListOptions, RestoreError};
use crate::protocol::{Command, Forward, ListReply, ServiceKey, Sloppy, TunnelKind};
use std::fmt::Write as _;

/// ipvsadm's `option_from_protocol` and address: `-t 198.18.0.1:80`, `-t [2001:2::1]:80`.
fn rule_service(key: &ServiceKey) -> String {
    let option = match key.proto {
        crate::protocol::Protocol::Tcp => "-t",
        crate::protocol::Protocol::Udp => "-u",
    };
    // snprintf(svc_name, sizeof(svc_name), "%s %s", stype, vname);
    format!("{option} {}", addrport(key.addr, key.port))
}

/// ipvsadm's `fwd_switch`; FullNAT as DPVS's long option (its `-b` is ipvsadm's
/// `--sched-flags` here).
fn fwd_switch(forward: Forward) -> &'static str {
    match forward {
        Forward::Masq => "-m",
        Forward::Tunnel => "-i",
        Forward::Route => "-g",
        Forward::FullNat => "--fullnat",
    }
}

/// `-S`: ipvsadm's `list_all(FMT_RULE)`: no header, no title, services and real servers in
/// the sorted order of `-L`, one command line each.
///
/// xvs additions, so that [`parse_restore`] rebuilds exactly what was saved:
/// - first, xvs's `--sloppy tcp,udp` (or `--sloppy tcp`, `--sloppy udp`) when either is on
///   (ipvsadm leaves the sysctls `sloppy_tcp`/`sloppy_udp` to sysctl); nothing when both are
///   off, so a table without it saves as ipvsadm would;
/// - a real server's `-x` and `-y` follow `-w` when not 0 (ipvsadm 1.31 does not save
///   thresholds);
/// - a service's health check follows its `-A` options (`--check KIND` and each value that is
///   not the default), and then its connection limit (`--conn-limit N`) when it has one;
/// - FullNAT (DPVS's ipvsadm, whose `-S` saves neither): after the `-A` line, one
///   `--add-laddr -z LIP -t|-u VIP:PORT` line per local address, in the order they were added
///   (the order the workers use them in), before the `-a` lines; a FullNAT real server's method
///   is `--fullnat` (DPVS's long option; its port is kept, as with `-m`).
///
/// Real servers are saved with their configured weight, also while a health check holds them
/// down.
pub fn format_save(reply: &ListReply) -> String {
    let mut out = String::new();
    if let Some(list) = sloppy_list(reply.sloppy) {
        let _ = writeln!(out, "--sloppy {list}");
    }
    let sorted = ListOptions::default();
    for svc in sorted_services(reply, &sorted) {
        let svc_name = rule_service(&svc.service);
        // printf("-A %s -s %s", svc_name, se->sched_name);
        // `write!` into a String cannot fail.
        let _ = write!(out, "-A {svc_name} -s {}", svc.scheduler);
        // if (se->flags & IP_VS_SVC_F_PERSISTENT) {
        //         printf(" -p %u", se->timeout);
        //         if (se->af == AF_INET)
        //                 if (se->netmask != (unsigned long int) 0xffffffff) {
        //                         ...
        //                         printf(" -M %s", inet_ntoa(mask));
        //                 }
        //         if (se->af == AF_INET6)
        //                 if (se->netmask != 128) {
        //                         printf(" -M %i", se->netmask);
        //                 }
        // }
        // if (se->pe_name[0]) printf(" --pe %s", se->pe_name);
        // if (se->flags & IP_VS_SVC_F_ONEPACKET) printf(" -o");
        // if (se->flags & (IP_VS_SVC_F_SCHED1 | IP_VS_SVC_F_SCHED2 | IP_VS_SVC_F_SCHED3)) {
        //         printf(" -b "); print_sched_flags(se); }
        if let Some(timeout) = svc.persistent {
            let _ = write!(out, " -p {timeout}");
            if !is_default_netmask(svc) {
                let _ = write!(out, " -M {}", svc.netmask);
            }
        }
        if !svc.sched_flags.is_empty() {
            let _ = write!(out, " -b {}", svc.sched_flags.join(","));
        }
        if let Some(check) = &svc.check {
            out.push_str(&save_args(check));
        }
        if svc.max_conns != 0 {
            let _ = write!(out, " --conn-limit {}", svc.max_conns);
        }
        out.push('\n');
        for laddr in &svc.local_addrs {
            // DPVS's -z takes the address alone (an IPv6 one without brackets).
            let _ = writeln!(out, "--add-laddr -z {laddr} {svc_name}");
        }
        for r in sorted_reals(svc, &sorted) {
            // printf("-a %s -r %s %s -w %d\n", svc_name, dname, fwd_switch(e->conn_flags),
            //        e->weight);
            // (dname: addrport_to_anyname, not cut with FMT_RULE; [IPv6]:port.)
            let _ = write!(
                out,
                "-a {svc_name} -r {} {} -w {}",
                addrport(r.real.addr, r.real.port),
                fwd_switch(r.forward),
                r.weight
            );
            // ipvsadm 1.31: " --tun-type %s", for gue " --tun-port %d", then the checksum
            // option for gue and gre.
            if let Some(tunnel) = r.tunnel {
                let _ = write!(out, " --tun-type {}", tunnel.kind.name());
                if let Some(port) = tunnel.port {
                    let _ = write!(out, " --tun-port {port}");
                }
                if tunnel.kind != TunnelKind::Ipip {
                    let _ = write!(out, " {}", tunnel.checksum.option());
                }
            }
            if r.upper_threshold != 0 {
                let _ = write!(out, " -x {}", r.upper_threshold);
            }
            if r.lower_threshold != 0 {
                let _ = write!(out, " -y {}", r.lower_threshold);
            }
            out.push('\n');
        }
    }
    out
}

/// `--sloppy`'s list for what is on, `None` when both are off.
fn sloppy_list(sloppy: Sloppy) -> Option<&'static str> {
    match (sloppy.tcp, sloppy.udp) {
        (true, true) => Some("tcp,udp"),
        (true, false) => Some("tcp"),
        (false, true) => Some("udp"),
        (false, false) => None,
    }
}

/// `-R`: the lines of `text` (what `-S` writes) as ONE [`Command::Batch`], which the daemon
/// applies all or nothing.
///
/// As ipvsadm's restore (config_stream.c) reads them: each line is split on blanks, and a
/// leading `ipvsadm` (or `xvsadm`) word is skipped. Blank lines are ignored, and so is
/// everything from a word that starts with `#`. Each line must be a change (`-A -E -D -C -a -e
/// -d -Z --set`, DPVS's `-P -Q`, xvs's `--sloppy`); a line with check options or
/// `--conn-limit` adds its batch's commands in order.
pub fn parse_restore(text: &str) -> Result<Command, RestoreError> {
    let mut commands = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let mut words: Vec<String> = line
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .map(String::from)
            .collect();
        if words
            .first()
            .is_some_and(|w| w == "ipvsadm" || w == "xvsadm")
        {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        let error_line = || (index + 1, line.trim().to_string());
        match parse(&words) {
            Ok(Invocation::Apply(Command::Batch { commands: batch })) => commands.extend(batch),
            Ok(Invocation::Apply(command)) => commands.push(command),
            Ok(_) => {
                let (line, text) = error_line();
                return Err(RestoreError::NotAChange { line, text });
            }
            Err(error) => {
                let (line, text) = error_line();
                return Err(RestoreError::Invalid { line, text, error });
            }
        }
    }
    Ok(Command::Batch { commands })
}
