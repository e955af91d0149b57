//! Golden tests of the ipvsadm module: command lines, listings, messages.

mod commands;
mod conns;
mod health;
mod ipv6;
mod list;
mod messages;
mod parse;
mod save;

pub(super) use super::*;
pub(super) use crate::protocol::{
    Command, Counters, ErrorCode, Forward, HealthInfo, HealthState, ListReply, Netmask, Protocol,
    RealInfo, RealKey, ServiceInfo, ServiceKey, TunnelChecksum, TunnelKind, TunnelSpec,
    DEFAULT_NETMASK,
};
pub(super) use std::net::{IpAddr, Ipv4Addr};
pub(super) use std::path::PathBuf;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn svc(proto: Protocol, addr: [u8; 4], port: u16) -> ServiceKey {
    ServiceKey {
        proto,
        addr: Ipv4Addr::from(addr).into(),
        port,
    }
}

fn real(addr: [u8; 4], port: u16) -> RealKey {
    RealKey {
        addr: Ipv4Addr::from(addr).into(),
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

fn real_info(addr: [u8; 4], port: u16, weight: u32, stats: Counters) -> RealInfo {
    RealInfo {
        real: real(addr, port),
        forward: Forward::Masq,
        tunnel: None,
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
        sloppy: Default::default(),
        announced: None,
        services: vec![ServiceInfo {
            service: svc(Protocol::Tcp, VIP, 80),
            scheduler: "rr".into(),
            sched_flags: vec![],
            persistent: None,
            netmask: DEFAULT_NETMASK.into(),
            stats: Counters {
                conns: 11,
                inpkts: 66,
                outpkts: 55,
                inbytes: 4_763,
                outbytes: 6_919,
            },
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
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
        netmask: DEFAULT_NETMASK.into(),
        stats: Counters::default(),
        rates: Default::default(),
        check: None,
        max_conns: 0,
        local_addrs: Vec::new(),
        reals: vec![],
    });
    reply.services.push(ServiceInfo {
        service: svc(Protocol::Udp, VIP, 53),
        scheduler: "rr".into(),
        sched_flags: vec!["flag-1".into()],
        persistent: None,
        netmask: DEFAULT_NETMASK.into(),
        stats: Counters::default(),
        rates: Default::default(),
        check: None,
        max_conns: 0,
        local_addrs: Vec::new(),
        reals: vec![],
    });
    reply
}

/// Persistent services: `print_service_entry` prints " persistent %u" after the scheduler
/// and its flags, then " mask %s" when the mask is not 255.255.255.255.
fn persistent() -> ListReply {
    let mut reply = flagged();
    reply.services[0].persistent = Some(360);
    reply.services[0].reals[0].weight = 65535;
    reply.services[0].reals[0].persist_conns = 12;
    reply.services[1].persistent = Some(600);
    reply.services[1].netmask = Ipv4Addr::new(255, 255, 255, 0).into();
    reply.services[2].persistent = Some(1);
    reply.services[2].netmask = Ipv4Addr::new(0, 0, 0, 0).into();
    reply.services.push(ServiceInfo {
        service: svc(Protocol::Udp, VIP, 123),
        scheduler: "wlc".into(),
        sched_flags: vec![],
        persistent: Some(2_678_400),
        netmask: Ipv4Addr::new(255, 255, 128, 0).into(),
        stats: Counters::default(),
        rates: Default::default(),
        check: None,
        max_conns: 0,
        local_addrs: Vec::new(),
        reals: vec![],
    });
    reply
}

/// The health of a checked real server.
fn health(state: HealthState) -> HealthInfo {
    HealthInfo {
        state,
        streak: 3,
        checks_passed: 1000,
        checks_failed: 17,
        last_error: (state == HealthState::Down).then(|| "connection refused".to_string()),
        since_secs: 12,
    }
}

/// FullNAT (DPVS's): the seed's service with two local addresses (added .11, then .10) and a
/// FullNAT real server on another port than the service's; a UDP service with one local
/// address and no real server.
fn fullnat() -> ListReply {
    let mut reply = seed();
    reply.services[0].local_addrs = vec![
        Ipv4Addr::new(198, 19, 0, 11).into(),
        Ipv4Addr::new(198, 19, 0, 10).into(),
    ];
    reply.services[0].reals.push(RealInfo {
        forward: Forward::FullNat,
        active_conns: 2,
        inactive_conns: 1,
        ..real_info([198, 19, 1, 5], 8080, 2, Counters::default())
    });
    reply.services.push(ServiceInfo {
        service: svc(Protocol::Udp, VIP, 53),
        scheduler: "rr".into(),
        sched_flags: vec![],
        persistent: None,
        netmask: DEFAULT_NETMASK.into(),
        stats: Counters::default(),
        rates: Default::default(),
        check: None,
        max_conns: 0,
        local_addrs: vec![Ipv4Addr::new(198, 19, 0, 12).into()],
        reals: vec![],
    });
    reply
}
