//! `-S` and `-R`: golden save text, restore parsing and its errors, and the round trip.

use super::*;
use crate::protocol::{CheckKind, CheckSpec, Sloppy};

const V1: [u8; 4] = [198, 18, 0, 1];
const LIP10: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
const LIP11: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);
const LIP12: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 12);

fn service(key: ServiceKey, scheduler: &str, flags: &[&str]) -> ServiceInfo {
    ServiceInfo {
        service: key,
        scheduler: scheduler.into(),
        sched_flags: flags.iter().map(|f| f.to_string()).collect(),
        persistent: None,
        netmask: Netmask::default_for(key.addr),
        stats: Counters::default(),
        rates: Default::default(),
        check: None,
        max_conns: 0,
        local_addrs: Vec::new(),
        reals: vec![],
    }
}

fn http_check() -> CheckSpec {
    CheckSpec {
        port: Some(8080),
        path: Some("/health".into()),
        expect_status: Some(204),
        interval_ms: 5000,
        timeout_ms: 500,
        rise: 3,
        fall: 4,
        ..CheckSpec::new(CheckKind::Http)
    }
}

fn gue() -> TunnelSpec {
    TunnelSpec {
        kind: TunnelKind::Gue,
        port: Some(6080),
        checksum: TunnelChecksum::Csum,
    }
}

fn udp_check() -> CheckSpec {
    CheckSpec {
        port: Some(53),
        interval_ms: 500,
        timeout_ms: 500,
        ..CheckSpec::new(CheckKind::Tcp)
    }
}

/// Several services in no particular order: TCP and UDP, scheduler flags, persistence with and
/// without a mask, thresholds, weights 0..=65535, every forwarding method (FullNAT on another
/// port than the service's), checks (one real server held down by its check, which -S
/// ignores), connection limits with and without a check, FullNAT local addresses (not in
/// address order), real servers in insertion order.
fn rich() -> ListReply {
    let mut web = service(svc(Protocol::Tcp, V1, 80), "rr", &[]);
    web.max_conns = 100;
    web.local_addrs = vec![LIP11.into(), LIP10.into()];
    web.reals = vec![
        real_info([198, 19, 0, 148], 80, 1, Counters::default()),
        RealInfo {
            forward: Forward::FullNat,
            upper_threshold: 7,
            ..real_info([198, 19, 1, 5], 8080, 2, Counters::default())
        },
        RealInfo {
            upper_threshold: 100,
            lower_threshold: 50,
            health: Some(health(HealthState::Down)),
            ..real_info([198, 19, 0, 137], 80, 3, Counters::default())
        },
    ];
    let mut tls = service(
        svc(Protocol::Tcp, V1, 443),
        "sh",
        &["sh-fallback", "sh-port"],
    );
    tls.persistent = Some(360);
    tls.netmask = Ipv4Addr::new(255, 255, 255, 0).into();
    tls.check = Some(http_check());
    tls.max_conns = u32::MAX;
    tls.reals = vec![
        real_info([198, 19, 0, 10], 8443, 0, Counters::default()),
        RealInfo {
            forward: Forward::Tunnel,
            tunnel: Some(gue()),
            ..real_info([198, 19, 7, 1], 443, 2, Counters::default())
        },
    ];
    let mut dns = service(svc(Protocol::Udp, V1, 53), "wlc", &[]);
    dns.persistent = Some(600);
    dns.local_addrs = vec![LIP12.into()];
    dns.check = Some(udp_check());
    dns.reals = vec![RealInfo {
        upper_threshold: 10,
        forward: Forward::Route,
        tunnel: None,
        ..real_info([198, 19, 0, 20], 53, 65535, Counters::default())
    }];
    let mut alt = service(svc(Protocol::Tcp, [10, 0, 0, 1], 8080), "mh", &["mh-port"]);
    alt.check = Some(CheckSpec::new(CheckKind::Tcp));
    ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![dns, web, tls, alt],
    }
}

/// ipvsadm's FMT_RULE lines ("-A %s -s %s", " -p %u", " -M %s", " -b ", "-a %s -r %s %s -w
/// %d"), sorted as -L sorts, with xvs's -x/-y, check options and connection limits, and
/// FullNAT's local addresses (in the order added) and `--fullnat` real servers.
const RICH_SAVED: &str = "\
-A -t 10.0.0.1:8080 -s mh -b mh-port --check tcp
-A -t 198.18.0.1:80 -s rr --conn-limit 100
--add-laddr -z 198.19.0.11 -t 198.18.0.1:80
--add-laddr -z 198.19.0.10 -t 198.18.0.1:80
-a -t 198.18.0.1:80 -r 198.19.0.137:80 -m -w 3 -x 100 -y 50
-a -t 198.18.0.1:80 -r 198.19.0.148:80 -m -w 1
-a -t 198.18.0.1:80 -r 198.19.1.5:8080 --fullnat -w 2 -x 7
-A -t 198.18.0.1:443 -s sh -p 360 -M 255.255.255.0 -b sh-fallback,sh-port --check http \
--check-port 8080 --check-path /health --check-status 204 --check-interval 5 \
--check-timeout 0.5 --rise 3 --fall 4 --conn-limit 4294967295
-a -t 198.18.0.1:443 -r 198.19.0.10:8443 -m -w 0
-a -t 198.18.0.1:443 -r 198.19.7.1:443 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
-A -u 198.18.0.1:53 -s wlc -p 600 --check tcp --check-port 53 --check-interval 0.5
--add-laddr -z 198.19.0.12 -u 198.18.0.1:53
-a -u 198.18.0.1:53 -r 198.19.0.20:53 -g -w 65535 -x 10
";

#[test]
fn golden_save() {
    assert_eq!(format_save(&rich()), RICH_SAVED);
    // The seed: what ipvsadm -S prints for it, word for word.
    assert_eq!(
        format_save(&seed()),
        "-A -t 198.18.0.129:80 -s rr\n\
         -a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1\n\
         -a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 1\n"
    );
    // An empty table saves to nothing.
    let empty = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![],
    };
    assert_eq!(format_save(&empty), "");
}

fn add_service(
    key: ServiceKey,
    scheduler: &str,
    flags: &[&str],
    persistent: u32,
    netmask: impl Into<Netmask>,
) -> Command {
    Command::AddService {
        service: key,
        scheduler: Some(scheduler.into()),
        sched_flags: Some(flags.iter().map(|f| f.to_string()).collect()),
        persistent: Some(persistent),
        netmask: Some(netmask.into()),
    }
}

fn add_real(key: ServiceKey, real: RealKey, weight: u32, upper: u32, lower: u32) -> Command {
    add_real_by(Forward::Masq, key, real, weight, upper, lower)
}

fn add_real_by(
    forward: Forward,
    key: ServiceKey,
    real: RealKey,
    weight: u32,
    upper: u32,
    lower: u32,
) -> Command {
    Command::AddReal {
        service: key,
        real,
        weight: Some(weight),
        forward: Some(forward),
        tunnel: None,
        upper_threshold: Some(upper),
        lower_threshold: Some(lower),
    }
}

fn set_check(key: ServiceKey, check: CheckSpec) -> Command {
    Command::SetCheck {
        service: key,
        check: Some(check),
    }
}

/// The commands that rebuild [`rich`], in [`RICH_SAVED`]'s order.
fn rich_commands() -> Vec<Command> {
    let alt = svc(Protocol::Tcp, [10, 0, 0, 1], 8080);
    let web = svc(Protocol::Tcp, V1, 80);
    let tls = svc(Protocol::Tcp, V1, 443);
    let dns = svc(Protocol::Udp, V1, 53);
    vec![
        add_service(alt, "mh", &["mh-port"], 0, DEFAULT_NETMASK),
        set_check(alt, CheckSpec::new(CheckKind::Tcp)),
        add_service(web, "rr", &[], 0, DEFAULT_NETMASK),
        Command::SetConnLimit {
            service: web,
            max_conns: 100,
        },
        Command::AddLaddr {
            service: web,
            addr: LIP11.into(),
        },
        Command::AddLaddr {
            service: web,
            addr: LIP10.into(),
        },
        add_real(web, real([198, 19, 0, 137], 80), 3, 100, 50),
        add_real(web, real([198, 19, 0, 148], 80), 1, 0, 0),
        add_real_by(Forward::FullNat, web, real([198, 19, 1, 5], 8080), 2, 7, 0),
        add_service(
            tls,
            "sh",
            &["sh-fallback", "sh-port"],
            360,
            Ipv4Addr::new(255, 255, 255, 0),
        ),
        set_check(tls, http_check()),
        Command::SetConnLimit {
            service: tls,
            max_conns: u32::MAX,
        },
        add_real(tls, real([198, 19, 0, 10], 8443), 0, 0, 0),
        Command::AddReal {
            service: tls,
            real: real([198, 19, 7, 1], 443),
            weight: Some(2),
            forward: Some(Forward::Tunnel),
            tunnel: Some(gue()),
            upper_threshold: Some(0),
            lower_threshold: Some(0),
        },
        add_service(dns, "wlc", &[], 600, DEFAULT_NETMASK),
        set_check(dns, udp_check()),
        Command::AddLaddr {
            service: dns,
            addr: LIP12.into(),
        },
        Command::AddReal {
            service: dns,
            real: real([198, 19, 0, 20], 53),
            weight: Some(65535),
            forward: Some(Forward::Route),
            tunnel: None,
            upper_threshold: Some(10),
            lower_threshold: Some(0),
        },
    ]
}

/// What a daemon's table looks like after `commands` from an empty one (the parts -S prints).
fn describe(commands: &[Command]) -> ListReply {
    let mut reply = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![],
    };
    for command in commands {
        match command.clone() {
            Command::AddService {
                service: key,
                scheduler,
                sched_flags,
                persistent,
                netmask,
            } => {
                let mut info = service(
                    key,
                    &scheduler.unwrap_or_else(|| DEFAULT_SCHEDULER.into()),
                    &[],
                );
                info.sched_flags = sched_flags.unwrap_or_default();
                info.persistent = persistent.filter(|&p| p != 0);
                if info.persistent.is_some() {
                    info.netmask = netmask.unwrap_or(Netmask::default_for(key.addr));
                }
                reply.services.push(info);
            }
            Command::AddReal {
                service: key,
                real: r,
                weight,
                forward,
                tunnel,
                upper_threshold,
                lower_threshold,
            } => {
                let svc = reply
                    .services
                    .iter_mut()
                    .find(|s| s.service == key)
                    .unwrap();
                svc.reals.push(RealInfo {
                    forward: forward.unwrap_or(Forward::Masq),
                    tunnel,
                    upper_threshold: upper_threshold.unwrap_or(0),
                    lower_threshold: lower_threshold.unwrap_or(0),
                    ..real_info(
                        [0; 4].map(|_| 0),
                        0,
                        weight.unwrap_or(1),
                        Counters::default(),
                    )
                });
                svc.reals.last_mut().unwrap().real = r;
            }
            Command::SetCheck {
                service: key,
                check,
            } => {
                let svc = reply
                    .services
                    .iter_mut()
                    .find(|s| s.service == key)
                    .unwrap();
                svc.check = check;
            }
            Command::SetConnLimit {
                service: key,
                max_conns,
            } => {
                let svc = reply
                    .services
                    .iter_mut()
                    .find(|s| s.service == key)
                    .unwrap();
                svc.max_conns = max_conns;
            }
            Command::SetSloppy { tcp, udp } => reply.sloppy = Sloppy { tcp, udp },
            Command::AddLaddr { service: key, addr } => {
                let svc = reply
                    .services
                    .iter_mut()
                    .find(|s| s.service == key)
                    .unwrap();
                svc.local_addrs.push(addr);
            }
            other => panic!("describe does not model {other:?}"),
        }
    }
    reply
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// IPv4 and IPv6 services: a persistent IPv6 service with a /64 granularity and another with
/// the default /128, IPv6 real servers by every method (FullNAT with an IPv6 local address),
/// an IPv4 service tunnelling to an IPv6 real server and the reverse.
fn mixed() -> ListReply {
    let v6 = |proto, addr: &str, port| ServiceKey {
        proto,
        addr: ip(addr),
        port,
    };
    let r6 = |addr: &str, port| RealKey {
        addr: ip(addr),
        port,
    };
    let tunnel = |r: RealInfo| RealInfo {
        forward: Forward::Tunnel,
        tunnel: Some(TunnelSpec::default()),
        ..r
    };
    let mut web6 = service(v6(Protocol::Tcp, "2001:2::129", 80), "rr", &[]);
    web6.persistent = Some(360);
    web6.netmask = Netmask::PrefixLen(64);
    web6.local_addrs = vec![ip("2001:2:0:1::161"), ip("2001:2:0:1::160")];
    web6.reals = vec![
        RealInfo {
            real: r6("2001:2:0:1::12", 80),
            ..real_info([0; 4], 0, 1, Counters::default())
        },
        RealInfo {
            real: r6("2001:2:0:1::11", 80),
            upper_threshold: 100,
            lower_threshold: 10,
            ..real_info([0; 4], 0, 2, Counters::default())
        },
        RealInfo {
            real: r6("2001:2:0:1::13", 8080),
            forward: Forward::FullNat,
            ..real_info([0; 4], 0, 1, Counters::default())
        },
        RealInfo {
            real: r6("2001:2:0:1::14", 80),
            forward: Forward::Route,
            ..real_info([0; 4], 0, 1, Counters::default())
        },
        tunnel(real_info([198, 19, 0, 21], 80, 1, Counters::default())),
    ];
    let mut dns6 = service(v6(Protocol::Udp, "2001:2::129", 53), "wlc", &[]);
    dns6.persistent = Some(600);
    dns6.check = Some(udp_check());
    dns6.reals = vec![RealInfo {
        real: r6("2001:2:0:1::20", 53),
        forward: Forward::Route,
        ..real_info([0; 4], 0, 5, Counters::default())
    }];
    let mut web4 = service(svc(Protocol::Tcp, V1, 80), "rr", &[]);
    web4.reals = vec![
        tunnel(RealInfo {
            real: r6("2001:2:0:1::21", 80),
            ..real_info([0; 4], 0, 1, Counters::default())
        }),
        real_info([198, 19, 0, 148], 80, 1, Counters::default()),
    ];
    ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![dns6, web6, web4],
    }
}

/// ipvsadm's FMT_RULE lines for IPv6: addrport_to_anyname's `[ADDR]:PORT` after -t, -u and
/// -r, " -M %i" when the prefix length is not 128; IPv4 services first.
const MIXED_SAVED: &str = "\
-A -t 198.18.0.1:80 -s rr
-a -t 198.18.0.1:80 -r 198.19.0.148:80 -m -w 1
-a -t 198.18.0.1:80 -r [2001:2:0:1::21]:80 -i -w 1 --tun-type ipip
-A -t [2001:2::129]:80 -s rr -p 360 -M 64
--add-laddr -z 2001:2:0:1::161 -t [2001:2::129]:80
--add-laddr -z 2001:2:0:1::160 -t [2001:2::129]:80
-a -t [2001:2::129]:80 -r 198.19.0.21:80 -i -w 1 --tun-type ipip
-a -t [2001:2::129]:80 -r [2001:2:0:1::11]:80 -m -w 2 -x 100 -y 10
-a -t [2001:2::129]:80 -r [2001:2:0:1::12]:80 -m -w 1
-a -t [2001:2::129]:80 -r [2001:2:0:1::13]:8080 --fullnat -w 1
-a -t [2001:2::129]:80 -r [2001:2:0:1::14]:80 -g -w 1
-A -u [2001:2::129]:53 -s wlc -p 600 --check tcp --check-port 53 --check-interval 0.5
-a -u [2001:2::129]:53 -r [2001:2:0:1::20]:53 -g -w 5
";

#[test]
fn golden_save_ipv6_and_round_trip() {
    let saved = format_save(&mixed());
    assert_eq!(saved, MIXED_SAVED);
    let Command::Batch { commands } = parse_restore(&saved).unwrap() else {
        panic!("parse_restore did not make a batch");
    };
    let web4 = svc(Protocol::Tcp, V1, 80);
    let web6 = ServiceKey {
        proto: Protocol::Tcp,
        addr: ip("2001:2::129"),
        port: 80,
    };
    let dns6 = ServiceKey {
        proto: Protocol::Udp,
        port: 53,
        ..web6
    };
    let r6 = |addr: &str, port| RealKey {
        addr: ip(addr),
        port,
    };
    let tunnel = |service, real| Command::AddReal {
        service,
        real,
        weight: Some(1),
        forward: Some(Forward::Tunnel),
        tunnel: Some(TunnelSpec::default()),
        upper_threshold: Some(0),
        lower_threshold: Some(0),
    };
    let expected = vec![
        add_service(web4, "rr", &[], 0, DEFAULT_NETMASK),
        add_real(web4, real([198, 19, 0, 148], 80), 1, 0, 0),
        tunnel(web4, r6("2001:2:0:1::21", 80)),
        add_service(web6, "rr", &[], 360, Netmask::PrefixLen(64)),
        Command::AddLaddr {
            service: web6,
            addr: ip("2001:2:0:1::161"),
        },
        Command::AddLaddr {
            service: web6,
            addr: ip("2001:2:0:1::160"),
        },
        tunnel(web6, real([198, 19, 0, 21], 80)),
        add_real(web6, r6("2001:2:0:1::11", 80), 2, 100, 10),
        add_real(web6, r6("2001:2:0:1::12", 80), 1, 0, 0),
        add_real_by(Forward::FullNat, web6, r6("2001:2:0:1::13", 8080), 1, 0, 0),
        add_real_by(Forward::Route, web6, r6("2001:2:0:1::14", 80), 1, 0, 0),
        add_service(dns6, "wlc", &[], 600, Netmask::PrefixLen(128)),
        set_check(dns6, udp_check()),
        add_real_by(Forward::Route, dns6, r6("2001:2:0:1::20", 53), 5, 0, 0),
    ];
    assert_eq!(commands, expected);
    // The commands rebuild the same table: it saves to the same text, and a configuration
    // file reads the same commands.
    assert_eq!(format_save(&describe(&commands)), saved);
    assert_eq!(crate::config_file::parse(&saved).unwrap(), expected);
}

#[test]
fn save_restore_round_trip() {
    let saved = format_save(&rich());
    let Command::Batch { commands } = parse_restore(&saved).unwrap() else {
        panic!("parse_restore did not make a batch");
    };
    assert_eq!(commands, rich_commands());
    // The commands rebuild the same table: it saves to the same text.
    assert_eq!(format_save(&describe(&commands)), saved);
    // And the configuration file reads the same commands.
    assert_eq!(crate::config_file::parse(&saved).unwrap(), rich_commands());
}

/// xvs's `--sloppy` line: first, naming what is on; none when both are off (as ipvsadm's -S,
/// which leaves the sysctls to sysctl).
#[test]
fn sloppy_saves_first_and_round_trips() {
    let sloppy = |tcp, udp| Sloppy { tcp, udp };
    let cases = [
        (sloppy(true, true), "--sloppy tcp,udp\n"),
        (sloppy(true, false), "--sloppy tcp\n"),
        (sloppy(false, true), "--sloppy udp\n"),
        (sloppy(false, false), ""),
    ];
    for (setting, line) in cases {
        let mut reply = rich();
        reply.sloppy = setting;
        let saved = format_save(&reply);
        assert_eq!(saved, format!("{line}{RICH_SAVED}"), "{setting:?}");
        // -R and xvsd --config read it back as set_sloppy, before the services.
        let mut expected = rich_commands();
        if !line.is_empty() {
            expected.insert(
                0,
                Command::SetSloppy {
                    tcp: setting.tcp,
                    udp: setting.udp,
                },
            );
        }
        let Command::Batch { commands } = parse_restore(&saved).unwrap() else {
            panic!("parse_restore did not make a batch");
        };
        assert_eq!(commands, expected, "{setting:?}");
        assert_eq!(format_save(&describe(&commands)), saved, "{setting:?}");
        assert_eq!(
            crate::config_file::parse(&saved).unwrap(),
            expected,
            "{setting:?}"
        );
        // An empty table saves the line alone.
        let empty = ListReply {
            conn_tab_size: 4096,
            conn_max: 0,
            sloppy: setting,
            announced: None,
            services: vec![],
        };
        assert_eq!(format_save(&empty), line, "{setting:?}");
    }
    // What -R makes of the line in other spellings, and of a bad one.
    assert_eq!(
        parse_restore("xvsadm --sloppy=udp,tcp   # scale-out\n--sloppy none\n").unwrap(),
        Command::Batch {
            commands: vec![
                Command::SetSloppy {
                    tcp: true,
                    udp: true
                },
                Command::SetSloppy {
                    tcp: false,
                    udp: false
                },
            ]
        }
    );
    let err = parse_restore("-C\n--sloppy tcp,none\n").unwrap_err();
    assert_eq!(
        (err.to_string(), err.exit_code()),
        (
            "line 2: illegal sloppy list `tcp,none' specified (none turns both off and goes \
             alone): --sloppy tcp,none"
                .to_string(),
            EXIT_USAGE
        )
    );
    let err = crate::config_file::parse("--sloppy tcp -t 198.18.0.1:80\n").unwrap_err();
    assert!(
        format!("{err:#}").contains(
            "line 1: Illegal 'service-address' option with the 'sloppy' command: --sloppy tcp \
             -t 198.18.0.1:80"
        ),
        "{err:#}"
    );
}

#[test]
fn restore_reads_like_ipvsadm_restore() {
    let web = svc(Protocol::Tcp, V1, 80);
    let text = "\
# saved by xvsadm -S

-C
ipvsadm -A -t 198.18.0.1:80 -s rr   # the web service
\t-a  -t 198.18.0.1:80   -r 198.19.0.148 -m -w 2\r
xvsadm --set 0 0 60
-Z -t 198.18.0.1:80
-e -t 198.18.0.1:80 -r 198.19.0.148 -w 0 -m
-E -t 198.18.0.1:80 -s wrr --check none --conn-limit 0
-d -t 198.18.0.1:80 -r 198.19.0.148
-D -t 198.18.0.1:80
";
    assert_eq!(
        parse_restore(text).unwrap(),
        Command::Batch {
            commands: vec![
                Command::Clear,
                add_service(web, "rr", &[], 0, DEFAULT_NETMASK),
                add_real(web, real([198, 19, 0, 148], 80), 2, 0, 0),
                Command::SetTimeouts {
                    tcp: 0,
                    tcpfin: 0,
                    udp: 60
                },
                Command::Zero { service: Some(web) },
                Command::EditReal {
                    service: web,
                    real: real([198, 19, 0, 148], 80),
                    weight: Some(0),
                    forward: Some(Forward::Masq),
                    tunnel: None,
                    upper_threshold: Some(0),
                    lower_threshold: Some(0),
                },
                Command::EditService {
                    service: web,
                    scheduler: Some("wrr".into()),
                    sched_flags: Some(vec![]),
                    persistent: Some(0),
                    netmask: Some(DEFAULT_NETMASK.into()),
                },
                Command::SetCheck {
                    service: web,
                    check: None
                },
                Command::SetConnLimit {
                    service: web,
                    max_conns: 0
                },
                Command::DelReal {
                    service: web,
                    real: real([198, 19, 0, 148], 80),
                },
                Command::DelService { service: web },
            ]
        }
    );
    // Nothing to restore: an empty batch.
    assert_eq!(
        parse_restore("\n# nothing\n   \n").unwrap(),
        Command::Batch { commands: vec![] }
    );
}

#[test]
fn restore_errors_name_the_line() {
    let cases: &[(&str, &str, u8)] = &[
        (
            "-A -t 198.18.0.1:80 -s rr\n\n-a -t 198.18.0.1:80 -r 198.19.0.148 -w 70000\n",
            "line 3: illegal weight specified: -a -t 198.18.0.1:80 -r 198.19.0.148 -w 70000",
            EXIT_USAGE,
        ),
        (
            "-L -n\n",
            "line 1: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P -Q): -L -n",
            EXIT_USAGE,
        ),
        (
            "-C\n  -S  \n",
            "line 2: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P -Q): -S",
            EXIT_USAGE,
        ),
        (
            "-R\n",
            "line 1: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P -Q): -R",
            EXIT_USAGE,
        ),
        (
            "-h\n",
            "line 1: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P -Q): -h",
            EXIT_USAGE,
        ),
        // popt's errors lose their pointer to -h.
        (
            "-A -t 198.18.0.1:80 --bogus\n",
            "line 1: unknown option '--bogus': -A -t 198.18.0.1:80 --bogus",
            EXIT_TRY_HELP,
        ),
        (
            "-A -t 198.18.0.1:80 --check tcp --check-path /x\n",
            "line 1: Illegal 'check-path' option with the 'tcp' check: -A -t 198.18.0.1:80 \
             --check tcp --check-path /x",
            EXIT_USAGE,
        ),
        (
            "-A -t 198.18.0.1:80 --conn-limit -5\n",
            "line 1: illegal connection limit `-5' specified (--conn-limit takes \
             0..4294967295, 0: no limit): -A -t 198.18.0.1:80 --conn-limit -5",
            EXIT_USAGE,
        ),
        (
            "-a -t 198.18.0.1:80 -r 198.19.0.148 -i --tun-type gue --tun-port 70000\n",
            "line 1: illegal tunnel port specified: -a -t 198.18.0.1:80 -r 198.19.0.148 -i \
             --tun-type gue --tun-port 70000",
            EXIT_USAGE,
        ),
        // A line that is only "ipvsadm" is a command line without a command.
        (
            "ipvsadm -n\n",
            "line 1: no command given (one of -A -E -D -C -a -e -d -L -Z -S -R --set --sloppy -P -Q -G): \
             ipvsadm -n",
            EXIT_TRY_HELP,
        ),
    ];
    for (text, message, code) in cases {
        let err = parse_restore(text).unwrap_err();
        assert_eq!(
            (err.to_string(), err.exit_code()),
            (message.to_string(), *code),
            "{text}"
        );
    }
    let err = crate::config_file::parse("-L\n").unwrap_err();
    assert!(err.to_string().starts_with("line 1: not a change"), "{err}");
}

#[test]
fn restore_reads_dpvs_laddr_lines() {
    let web = svc(Protocol::Tcp, V1, 80);
    // DPVS's short and long spellings, and a FullNAT real server on its own port.
    let text = "\
-A -t 198.18.0.1:80 -s rr
ipvsadm -P -z 198.19.0.11 -t 198.18.0.1:80
--add-laddr --laddr=198.19.0.10 --tcp-service 198.18.0.1:80
-a -t 198.18.0.1:80 -r 198.19.1.5:8080 --fullnat
-Q -t 198.18.0.1:80 -z 198.19.0.11
";
    assert_eq!(
        parse_restore(text).unwrap(),
        Command::Batch {
            commands: vec![
                add_service(web, "rr", &[], 0, DEFAULT_NETMASK),
                Command::AddLaddr {
                    service: web,
                    addr: LIP11.into()
                },
                Command::AddLaddr {
                    service: web,
                    addr: LIP10.into()
                },
                add_real_by(Forward::FullNat, web, real([198, 19, 1, 5], 8080), 1, 0, 0),
                Command::DelLaddr {
                    service: web,
                    addr: LIP11.into()
                },
            ]
        }
    );
    let cases: &[(&str, &str, u8)] = &[
        (
            "-G\n",
            "line 1: not a change of the table (-A -E -D -C -a -e -d -Z --set --sloppy -P -Q): -G",
            EXIT_USAGE,
        ),
        (
            "-C\n--add-laddr -z 198.19.0.11\n",
            "line 2: You need to supply the 'service-address' option for the 'add-laddr' \
             command: --add-laddr -z 198.19.0.11",
            EXIT_USAGE,
        ),
        (
            "--add-laddr -z 198.19.0.11 -t 198.18.0.1:80 -F dpdk0\n",
            "line 1: option '-F' (ifname) is not supported: xvs needs no interface for a local \
             address (xvsd steers it itself): --add-laddr -z 198.19.0.11 -t 198.18.0.1:80 -F \
             dpdk0",
            EXIT_USAGE,
        ),
    ];
    for (text, message, code) in cases {
        let err = parse_restore(text).unwrap_err();
        assert_eq!(
            (err.to_string(), err.exit_code()),
            (message.to_string(), *code),
            "{text}"
        );
    }
}
