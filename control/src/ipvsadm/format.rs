//! The listings ipvsadm prints (`-L` and its variants), byte for byte.

use super::{ListError, ListOptions};
use crate::protocol::{Counters, ListReply, ServiceInfo, DEFAULT_NETMASK, IPVS_VERSION};
use std::fmt::Write as _;

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
pub(super) fn largenum(out: &mut String, i: u64, exact: bool) {
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
