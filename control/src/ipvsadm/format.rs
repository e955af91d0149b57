//! The listings ipvsadm prints (`-L` and its variants), byte for byte.

use super::{ListError, ListOptions};
use crate::protocol::{
    ConnectionsReply, Counters, HealthState, ListReply, Netmask, RealInfo, RealKey, ServiceInfo,
    ServiceKey, Timeouts, IPVS_VERSION,
};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

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
    } else if opts.rate {
        // printf("%-33s %8s %8s %8s %8s %8s\n"
        //        "  -> RemoteAddress:Port\n",
        //        "Prot LocalAddress:Port",
        //        "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS");
        format!(
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port\n",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
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

/// The weight the plain and `--persistent-conn` listings show: 0 while the health check holds
/// the server down (what keepalived does to a failed server), else the configured one.
fn effective_weight(r: &RealInfo) -> u32 {
    match &r.health {
        Some(h) if h.state == HealthState::Down => 0,
        _ => r.weight,
    }
}

/// ipvsadm's `addrport_to_anyname(af, addr, port, proto, FMT_NUMERIC)`, which every listing
/// and `-S` print addresses with:
///
/// ```text
/// snprintf(buf, 60, "%s%s%s:%u",
///          af == AF_INET ? "" : "[",
///          inet_ntop(af, addr, pbuf, sizeof(pbuf)),
///          af == AF_INET ? "" : "]",
///          port);
/// ```
///
/// `198.18.0.129:80`, `[2001:2::129]:80` (the IPv6 address compressed, as inet_ntop writes it).
pub(super) fn addrport(addr: IpAddr, port: u16) -> String {
    SocketAddr::new(addr, port).to_string()
}

/// The name ipvsadm gives a service in listings: `"%-4s %s"`, cut to 33 characters unless
/// the service is IPv6 (whose name may be longer: the columns after it move right).
pub(super) fn service_name(key: &ServiceKey) -> String {
    // snprintf(svc_name, sizeof(svc_name), "%-4s %s", stype, vname);
    // if (se->af != AF_INET6) svc_name[33] = '\0';
    let mut name = format!(
        "{:<4} {}",
        key.proto.ipvsadm_name(),
        addrport(key.addr, key.port)
    );
    if key.addr.is_ipv4() {
        name.truncate(33);
    }
    name
}

/// A real server's name in listings, cut to 28 characters unless it is IPv6 (whose name may be
/// longer: the columns after it move right).
pub(super) fn real_name(key: &RealKey) -> String {
    // if (!(format & FMT_RULE) && (e->af != AF_INET6)) dname[28] = '\0';
    let mut name = addrport(key.addr, key.port);
    if key.addr.is_ipv4() {
        name.truncate(28);
    }
    name
}

/// `services` in ipvsadm's order (unless `--nosort`): libipvs ipvs_cmp_services compares
/// fwmark, family (IPv4 before IPv6), protocol (TCP 6 before UDP 17), address, port.
pub(super) fn sorted_services<'a>(
    reply: &'a ListReply,
    opts: &ListOptions,
) -> Vec<&'a ServiceInfo> {
    let mut services: Vec<_> = reply.services.iter().collect();
    if !opts.nosort {
        services.sort_by_key(|s| {
            let key = &s.service;
            (key.addr.is_ipv6(), key.proto, key.addr, key.port)
        });
    }
    services
}

/// A service's real servers in ipvsadm's order (unless `--nosort`): libipvs ipvs_cmp_dests
/// compares address, then port. (It subtracts the u32 addresses into an int, which misorders
/// addresses 2^31 or more apart; xvsadm sorts numerically, and a tunnel's real servers of
/// both families IPv4 before IPv6.)
pub(super) fn sorted_reals<'a>(svc: &'a ServiceInfo, opts: &ListOptions) -> Vec<&'a RealInfo> {
    let mut reals: Vec<_> = svc.reals.iter().collect();
    if !opts.nosort {
        reals.sort_by_key(|r| (r.real.addr, r.real.port));
    }
    reals
}

/// The listing of one service ([`format_list`]'s and [`super::format_health`]'s `-t|-u`).
pub(super) fn find_service(reply: &ListReply, key: ServiceKey) -> Result<&ServiceInfo, ListError> {
    reply
        .services
        .iter()
        .find(|s| s.service == key)
        .ok_or(ListError::NoSuchService(key))
}

/// ipvsadm's header line of `list_all`.
pub(super) fn version_header(out: &mut String, reply: &ListReply) {
    // printf("IP Virtual Server version %d.%d.%d (size=%d)\n",
    //        NVERSION(ipvs_info.version), ipvs_info.size);
    let _ = writeln!(
        out,
        "IP Virtual Server version {IPVS_VERSION} (size={})",
        reply.conn_tab_size
    );
}

/// One service and its real servers, ipvsadm's `print_service_entry` (without `FMT_RULE`,
/// which is [`super::format_save`]).
fn service_entry(out: &mut String, svc: &ServiceInfo, opts: &ListOptions) {
    let svc_name = service_name(&svc.service);
    // `write!` into a String cannot fail.
    if opts.stats {
        // printf("%-33s", svc_name); print_largenum(se->stats64.conns, format); ...
        let _ = write!(out, "{svc_name:<33}");
        counters(out, &svc.stats, opts.exact);
    } else if opts.rate {
        // printf("%-33s", svc_name);
        // print_largenum(se->stats64.cps, format); print_largenum(se->stats64.inpps, format);
        // print_largenum(se->stats64.outpps, format); print_largenum(se->stats64.inbps, format);
        // print_largenum(se->stats64.outbps, format);
        let _ = write!(out, "{svc_name:<33}");
        let r = &svc.rates;
        for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, n, opts.exact);
        }
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
        //         if (se->af == AF_INET6)
        //                 if (se->netmask != 128)
        //                         printf(" mask %i", se->netmask);
        //         if (se->pe_name[0]) printf(" pe %s", se->pe_name);
        // }
        // if (se->flags & IP_VS_SVC_F_ONEPACKET) printf(" ops");
        // xvs has neither persistence engines nor one-packet scheduling.
        if let Some(timeout) = svc.persistent {
            let _ = write!(out, " persistent {timeout}");
            if !is_default_netmask(svc) {
                let _ = write!(out, " mask {}", svc.netmask);
            }
        }
    }
    out.push('\n');

    for r in sorted_reals(svc, opts) {
        let dname = real_name(&r.real);
        let _ = if opts.stats {
            // printf("  -> %-28s", dname); print_largenum(e->stats64.conns, format); ...
            write!(out, "  -> {dname:<28}")
        } else if opts.rate {
            // printf("  -> %-28s %8llu %8llu %8llu", dname,
            //        e->stats64.cps, e->stats64.inpps, e->stats64.outpps);
            // print_largenum(e->stats64.inbps, format);
            // print_largenum(e->stats64.outbps, format);
            // (The first three are never scaled, even without --exact.)
            let rates = &r.rates;
            write!(
                out,
                "  -> {dname:<28} {:>8} {:>8} {:>8}",
                rates.cps, rates.inpps, rates.outpps
            )
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
                effective_weight(r),
                r.persist_conns,
                r.active_conns,
                r.inactive_conns
            )
        } else {
            // printf("  -> %-28s %-7s %-6d %-10u %-10u\n", dname, fwd_name(e->conn_flags),
            //        e->weight, e->activeconns, e->inactconns);
            write!(
                out,
                "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
                r.forward.ipvsadm_name(),
                effective_weight(r),
                r.active_conns,
                r.inactive_conns
            )
        };
        if opts.stats {
            counters(out, &r.stats, opts.exact);
        } else if opts.rate {
            largenum(out, r.rates.inbps, opts.exact);
            largenum(out, r.rates.outbps, opts.exact);
        }
        out.push('\n');
    }
}

/// Whether the service's netmask is the default of its family (255.255.255.255, 128), which
/// ipvsadm leaves out of `-L` and `-S`.
pub(super) fn is_default_netmask(svc: &ServiceInfo) -> bool {
    svc.netmask == Netmask::default_for(svc.service.addr)
}

/// `-L`: ipvsadm's `list_all` (header, title, every service) or, with `-t|-u`, its
/// `list_service` (title and that service only, no header).
pub fn format_list(reply: &ListReply, opts: &ListOptions) -> Result<String, ListError> {
    let mut out = String::new();
    if let Some(key) = opts.service {
        let svc = find_service(reply, key)?;
        out.push_str(&title(opts));
        service_entry(&mut out, svc, opts);
        return Ok(out);
    }
    version_header(&mut out, reply);
    out.push_str(&title(opts));
    for svc in sorted_services(reply, opts) {
        service_entry(&mut out, svc, opts);
    }
    Ok(out)
}

/// `-L --timeout`: ipvsadm's `list_timeout`.
pub fn format_timeouts(timeouts: &Timeouts) -> String {
    // printf("Timeout (tcp tcpfin udp): %d %d %d\n",
    //        u->tcp_timeout, u->tcp_fin_timeout, u->udp_timeout);
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        timeouts.tcp, timeouts.tcpfin, timeouts.udp
    )
}

/// `-L -c`: ipvsadm's `list_conn`, which prints each line of /proc/net/ip_vs_conn with
/// `print_conn`.
///
/// When an entry listed is FullNAT's (it has a local address), every line takes DPVS's four
/// addresses, `source virtual local destination`, its `print_conn_entry` in ipvsadm's columns
/// (DPVS prints no title, a `[lcore]` before the protocol and the expiry in seconds): the
/// local column is the local address and port for FullNAT entries and the client for the
/// others (what their real server sees as its peer). Without FullNAT entries the listing is
/// ipvsadm's.
///
/// ipvsadm prints the entries in the kernel's hash order (its `--sort` "does nothing, for
/// backwards compatibility", and it never sorts connections). The workers' order means as
/// little, so xvsadm sorts them, by protocol, virtual address and port, real server address and
/// port, then client address and port (the order of `-L` and then the client), unless
/// `--nosort`. `--persistent-conn` adds ipvsadm's persistence-engine columns to the title;
/// entries never have an engine, so they are printed in the short form as by ipvsadm.
pub fn format_connections(reply: &ConnectionsReply, opts: &ListOptions) -> String {
    let mut out = String::from("IPVS connection entries\n");
    let fullnat = reply.connections.iter().any(|c| c.laddr.is_some());
    // `write!` into a String cannot fail.
    let _ = if fullnat && opts.persistent_conn {
        // ipvsadm's title with DPVS's local column before the destination.
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "local", "destination", "pe name"
        )
    } else if fullnat {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} destination",
            "state", "source", "virtual", "local"
        )
    } else if opts.persistent_conn {
        // printf("pro expire %-11s %-18s %-18s %-18s %-16s %s\n",
        //        "state", "source", "virtual", "destination", "pe name", "pe_data");
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        // printf("pro expire %-11s %-18s %-18s %s\n",
        //        "state", "source", "virtual", "destination");
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    let mut conns: Vec<_> = reply.connections.iter().collect();
    if !opts.nosort {
        conns.sort_by_key(|c| {
            (
                c.proto,
                c.vip,
                c.vport,
                c.real,
                c.rport,
                c.client,
                c.client_port,
            )
        });
    }
    for c in conns {
        // The kernel prints whole seconds left (jiffies_delta_to_msecs(...) / 1000), then
        // seconds = expires % 60; minutes = expires / 60;
        // sprintf(expire_str, "%02d:%02d", minutes, seconds);
        let expires = c.expires_ms / 1000;
        let expire_str = format!("{:02}:{:02}", expires / 60, expires % 60);
        // printf("%-3s %-6s %-11s %-18s %-18s %s\n",
        //        protocol, expire_str, state, cname, vname, dname);
        // (Each name from addrport_to_anyname: an IPv6 one in brackets, wider than 18
        // characters, moves the columns after it right.)
        let (cname, vname) = (addrport(c.client, c.client_port), addrport(c.vip, c.vport));
        let _ = write!(
            out,
            "{:<3} {expire_str:<6} {:<11} {cname:<18} {vname:<18} ",
            c.proto.ipvsadm_name(),
            c.state,
        );
        if fullnat {
            // DPVS: printf("[%d]%-3s %-6s %-11s %-18s %-18s %-18s %s\n", conn_entry->lcoreid,
            //        proto_str, time_str, conn_entry->state, cname, vname, lname, dname);
            let lname = match c.laddr {
                Some(laddr) => addrport(laddr, c.lport.unwrap_or(0)),
                None => cname,
            };
            let _ = write!(out, "{lname:<18} ");
        }
        let _ = writeln!(out, "{}", addrport(c.real, c.rport));
    }
    out
}

/// DPVS's `--get-laddr`: `list_all_laddrs` (every service, the title before the first one
/// only, so nothing at all without services) or, with `-t|-u`, `list_laddrs` (the title and
/// that service). Services come in `-L`'s order, local addresses in the order they were
/// added. CONFLICTS (DPVS: local ports found taken) is always 0: xvs partitions each local
/// address's ports between its workers. CONNS counts `conns`' entries of the service that
/// leave from the address.
pub fn format_laddrs(
    reply: &ListReply,
    conns: &ConnectionsReply,
    opts: &ListOptions,
) -> Result<String, ListError> {
    let services = match opts.service {
        Some(key) => vec![find_service(reply, key)?],
        None => sorted_services(reply, &ListOptions::default()),
    };
    let mut out = String::new();
    for (i, svc) in services.into_iter().enumerate() {
        if i == 0 {
            // printf("%-20s %-8s %-20s %-10s %-10s\n" ,
            //        "VIP:VPORT" , "TOTAL" , "SNAT_IP", "CONFLICTS", "CONNS" );
            let _ = writeln!(
                out,
                "{:<20} {:<8} {:<20} {:<10} {:<10}",
                "VIP:VPORT", "TOTAL", "SNAT_IP", "CONFLICTS", "CONNS"
            );
        }
        // vname = addrport_to_anyname(d->af, &d->addr, ntohs(d->port), d->protocol,
        //                             FMT_NUMERIC);
        // printf("%-20s %-8u \n" , vname , d->num_laddrs);
        let key = &svc.service;
        let vname = addrport(key.addr, key.port);
        let _ = writeln!(out, "{vname:<20} {:<8} ", svc.local_addrs.len());
        for laddr in &svc.local_addrs {
            let count = conns
                .connections
                .iter()
                .filter(|c| {
                    c.proto == key.proto
                        && c.vip == key.addr
                        && c.vport == key.port
                        && c.laddr == Some(*laddr)
                })
                .count();
            // inet_ntop(entry->af, (char *)&entry->addr, pbuf, sizeof(pbuf));
            // printf("%-20s %-8s %-20s %-10lu %-10u\n", "", "", pbuf,
            //        entry->port_conflict, entry->conn_counts);
            let pbuf = laddr.to_string();
            let _ = writeln!(out, "{:<20} {:<8} {pbuf:<20} {:<10} {count:<10}", "", "", 0);
        }
    }
    Ok(out)
}

/// What `-L -c` should say on stderr about entries missing from `reply` (nothing normally).
pub fn connections_warnings(reply: &ConnectionsReply) -> Vec<String> {
    let mut warnings = Vec::new();
    if reply.workers_missing > 0 {
        warnings.push(format!(
            "warning: {} worker(s) did not answer in time; their connections are not listed",
            reply.workers_missing
        ));
    }
    if reply.truncated {
        warnings.push(
            "warning: a worker has more connections than one listing carries; some are not \
             listed"
                .to_string(),
        );
    }
    warnings
}
