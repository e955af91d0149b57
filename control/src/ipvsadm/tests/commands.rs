//! The commands and options ipvsadm 1.31 has beyond -A -E -D -C -a -e -d -L (-Z, --set, -S,
//! -R, -c, --timeout, --rate), DPVS's FullNAT ones and xvs's own (health checks,
//! --conn-limit, --sloppy).

use super::*;
use crate::protocol::{CheckKind, CheckSpec};

fn tcp80() -> ServiceKey {
    svc(Protocol::Tcp, VIP, 80)
}

#[test]
fn zero_and_set() {
    let cases = [
        ("-Z", Command::Zero { service: None }),
        ("--zero", Command::Zero { service: None }),
        (
            "-Z -t 198.18.0.129:80",
            Command::Zero {
                service: Some(tcp80()),
            },
        ),
        (
            "-Zu 198.18.0.129:53",
            Command::Zero {
                service: Some(svc(Protocol::Udp, VIP, 53)),
            },
        ),
        (
            "--set 900 120 300",
            Command::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300,
            },
        ),
        // 0 keeps a value; the numbers may come anywhere (popt collects them).
        (
            "--set 0 0 60",
            Command::SetTimeouts {
                tcp: 0,
                tcpfin: 0,
                udp: 60,
            },
        ),
        (
            "3600 --set 0 0",
            Command::SetTimeouts {
                tcp: 3600,
                tcpfin: 0,
                udp: 0,
            },
        ),
        (
            "--set 2678400 0 0",
            Command::SetTimeouts {
                tcp: 2_678_400,
                tcpfin: 0,
                udp: 0,
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
}

#[test]
fn new_listings_and_save_restore() {
    let numeric = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    assert_eq!(parse(&args("-L --timeout")).unwrap(), Invocation::Timeouts);
    assert_eq!(parse(&args("-Ln --timeout")).unwrap(), Invocation::Timeouts);
    assert_eq!(
        parse(&args("-L -c")).unwrap(),
        Invocation::Connections(ListOptions::default())
    );
    assert_eq!(
        parse(&args("-lnc --sort")).unwrap(),
        Invocation::Connections(numeric.clone())
    );
    assert_eq!(
        parse(&args("-L --connection -n --nosort --persistent-conn")).unwrap(),
        Invocation::Connections(ListOptions {
            nosort: true,
            persistent_conn: true,
            ..numeric.clone()
        })
    );
    assert_eq!(
        list("-Ln --rate"),
        ListOptions {
            rate: true,
            ..numeric.clone()
        }
    );
    assert_eq!(
        list("-L --rate --exact -t 198.18.0.129:80"),
        ListOptions {
            rate: true,
            exact: true,
            service: Some(tcp80()),
            ..ListOptions::default()
        }
    );
    assert_eq!(
        parse(&args("-L --health")).unwrap(),
        Invocation::Health(ListOptions::default())
    );
    assert_eq!(
        parse(&args("-Ln --health --nosort -t 198.18.0.129:80")).unwrap(),
        Invocation::Health(ListOptions {
            service: Some(tcp80()),
            nosort: true,
            ..numeric.clone()
        })
    );
    assert_eq!(parse(&args("-S")).unwrap(), Invocation::Save);
    assert_eq!(parse(&args("--save -n")).unwrap(), Invocation::Save);
    assert_eq!(parse(&args("-R")).unwrap(), Invocation::Restore);
    assert_eq!(parse(&args("--restore")).unwrap(), Invocation::Restore);
    // What each sends.
    assert_eq!(Invocation::Timeouts.command(), Some(Command::Timeouts));
    assert_eq!(
        Invocation::Connections(ListOptions::default()).command(),
        Some(Command::Connections)
    );
    assert_eq!(Invocation::Save.command(), Some(Command::List));
    assert_eq!(
        Invocation::Health(ListOptions::default()).command(),
        Some(Command::List)
    );
    assert_eq!(Invocation::Restore.command(), None);
}

#[test]
fn bad_new_command_lines() {
    let usage = EXIT_USAGE;
    let cases: &[(&str, &str)] = &[
        // parse_options' --set.
        ("--set 900 120", "--set option requires 3 timeout values"),
        ("--set", "--set option requires 3 timeout values"),
        // The count is checked before the values.
        ("--set x 120", "--set option requires 3 timeout values"),
        ("--set 900 x 300", "invalid timeout value `x' specified"),
        (
            "--set 900 120 2678401",
            "invalid timeout value `2678401' specified",
        ),
        ("--set 900 120 300 5", "unexpected argument 5"),
        // commands_v_options rows.
        (
            "--set 1 2 3 -n",
            "Illegal 'numeric' option with the 'set' command",
        ),
        (
            "--set 1 2 3 -t 198.18.0.129:80",
            "Illegal 'service-address' option with the 'set' command",
        ),
        ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
        (
            "-Z -t 198.18.0.129:80 -r 198.19.0.148",
            "Illegal 'real-server' option with the 'zero' command",
        ),
        ("-Z extra", "unexpected argument extra"),
        (
            "-S -c",
            "Illegal 'connection' option with the 'save' command",
        ),
        (
            "-S -t 198.18.0.129:80",
            "Illegal 'service-address' option with the 'save' command",
        ),
        (
            "-S --nosort",
            "Illegal 'nosort' option with the 'save' command",
        ),
        (
            "-R -n",
            "Illegal 'numeric' option with the 'restore' command",
        ),
        ("-R extra", "unexpected argument extra"),
        (
            "-A -t 198.18.0.129:80 -c",
            "Illegal 'connection' option with the 'add-service' command",
        ),
        (
            "-C --timeout",
            "Illegal 'timeout' option with the 'flush' command",
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --rate",
            "Illegal 'rate' option with the 'add-server' command",
        ),
        ("-S -R", "multiple commands specified"),
        ("-Z -L", "multiple commands specified"),
        ("-L -c -c", "multiple 'connection' options specified"),
        ("-L --rate --rate", "multiple 'rate' options specified"),
        // The '1' (exclusive) columns of the list row: -c, the service, --timeout.
        (
            "-L -c -t 198.18.0.129:80",
            "The option 'service-address' conflicts with the 'connection' option in the 'list' \
             command",
        ),
        (
            "-L -c --timeout",
            "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        ),
        (
            "-L --timeout -t 198.18.0.129:80",
            "The option 'timeout' conflicts with the 'service-address' option in the 'list' \
             command",
        ),
        // process_options' conflicts.
        ("-L -c --stats", "options conflicts in the list command"),
        ("-L -c --rate", "options conflicts in the list command"),
        (
            "-L --timeout --thresholds",
            "options conflicts in the list command",
        ),
        (
            "-L --timeout --persistent-conn",
            "options conflicts in the list command",
        ),
        (
            "-L --health --stats",
            "options conflicts in the list command",
        ),
        ("-L --health -c", "options conflicts in the list command"),
        (
            "-L --health --persistent-conn",
            "options conflicts in the list command",
        ),
        (
            "-L -c -s rr",
            "Illegal 'scheduler' option with the 'list' command",
        ),
        (
            "-L --health --check tcp",
            "Illegal 'check' option with the 'list' command",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error(line), (message.to_string(), usage), "{line}");
    }
    // -c with --persistent-conn and --exact is fine, as in ipvsadm.
    assert!(matches!(
        parse(&args("-L -c --persistent-conn --exact")),
        Ok(Invocation::Connections(_))
    ));
}

fn add_service(service: ServiceKey) -> Command {
    Command::AddService {
        service,
        scheduler: Some("wlc".into()),
        sched_flags: Some(vec![]),
        persistent: Some(0),
        netmask: Some(DEFAULT_NETMASK.into()),
    }
}

fn edit_service(service: ServiceKey) -> Command {
    Command::EditService {
        service,
        scheduler: Some("wlc".into()),
        sched_flags: Some(vec![]),
        persistent: Some(0),
        netmask: Some(DEFAULT_NETMASK.into()),
    }
}

fn with_check(first: Command, service: ServiceKey, check: Option<CheckSpec>) -> Command {
    Command::Batch {
        commands: vec![first, Command::SetCheck { service, check }],
    }
}

#[test]
fn check_options() {
    let s = tcp80();
    let tcp = CheckSpec::new(CheckKind::Tcp);
    let http = CheckSpec::new(CheckKind::Http);
    let cases = [
        (
            "-A -t 198.18.0.129:80 --check tcp",
            with_check(add_service(s), s, Some(tcp.clone())),
        ),
        (
            "-A -t 198.18.0.129:80 --check=http",
            with_check(add_service(s), s, Some(http.clone())),
        ),
        (
            "-A -t 198.18.0.129:80 --check http --check-port 8080 --check-path /health \
             --check-status 204 --check-interval 5 --check-timeout 0.5 --rise 3 --fall 4",
            with_check(
                add_service(s),
                s,
                Some(CheckSpec {
                    port: Some(8080),
                    path: Some("/health".into()),
                    expect_status: Some(204),
                    interval_ms: 5000,
                    timeout_ms: 500,
                    rise: 3,
                    fall: 4,
                    ..http.clone()
                }),
            ),
        ),
        // Decimals: up to milliseconds.
        (
            "-E -t 198.18.0.129:80 --check tcp --check-interval 1.25 --check-timeout 0.125",
            with_check(
                edit_service(s),
                s,
                Some(CheckSpec {
                    interval_ms: 1250,
                    timeout_ms: 125,
                    ..tcp.clone()
                }),
            ),
        ),
        // An interval shorter than the default timeout shortens the timeout.
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 0.5",
            with_check(
                add_service(s),
                s,
                Some(CheckSpec {
                    interval_ms: 500,
                    timeout_ms: 500,
                    ..tcp.clone()
                }),
            ),
        ),
        // Order does not matter: the details may come before --check.
        (
            "-A --rise 1 -t 198.18.0.129:80 --fall 10 --check tcp",
            with_check(
                add_service(s),
                s,
                Some(CheckSpec {
                    rise: 1,
                    fall: 10,
                    ..tcp.clone()
                }),
            ),
        ),
        // none removes the check.
        (
            "-E -t 198.18.0.129:80 --check none",
            with_check(edit_service(s), s, None),
        ),
        (
            "-A -t 198.18.0.129:80 --check none",
            with_check(add_service(s), s, None),
        ),
        // -E without --check leaves the check alone: no set_check.
        ("-E -t 198.18.0.129:80", edit_service(s)),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
}

fn set_conn_limit(service: ServiceKey, max_conns: u32) -> Command {
    Command::SetConnLimit { service, max_conns }
}

#[test]
fn conn_limit_option() {
    let s = tcp80();
    let batch = |commands: Vec<Command>| Command::Batch { commands };
    let cases = [
        (
            "-A -t 198.18.0.129:80 --conn-limit 5000",
            batch(vec![add_service(s), set_conn_limit(s, 5000)]),
        ),
        (
            "-E --conn-limit=4294967295 -t 198.18.0.129:80",
            batch(vec![edit_service(s), set_conn_limit(s, u32::MAX)]),
        ),
        // 0 removes the limit.
        (
            "-E -t 198.18.0.129:80 --conn-limit 0",
            batch(vec![edit_service(s), set_conn_limit(s, 0)]),
        ),
        // With a check: one batch, the check before the limit, whatever the option order.
        (
            "-A -t 198.18.0.129:80 --conn-limit 100 --check tcp",
            batch(vec![
                add_service(s),
                Command::SetCheck {
                    service: s,
                    check: Some(CheckSpec::new(CheckKind::Tcp)),
                },
                set_conn_limit(s, 100),
            ]),
        ),
        // Without --conn-limit the limit is left alone (-E) or none (-A): no set_conn_limit.
        ("-A -t 198.18.0.129:80", add_service(s)),
        ("-E -t 198.18.0.129:80", edit_service(s)),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
}

#[test]
fn bad_conn_limit_option() {
    let range = "specified (--conn-limit takes 0..4294967295, 0: no limit)";
    for value in [
        "-1",
        "x",
        "",
        "4294967296",
        "99999999999999999999",
        "+5",
        " 5",
        "1e3",
    ] {
        let line = vec![
            "-A".to_string(),
            "-t".into(),
            "198.18.0.129:80".into(),
            format!("--conn-limit={value}"),
        ];
        let err = parse(&line).unwrap_err();
        assert_eq!(
            (err.to_string(), err.exit_code()),
            (
                format!("illegal connection limit `{value}' {range}"),
                EXIT_USAGE
            ),
            "{value:?}"
        );
    }
    let cases: &[(&str, &str)] = &[
        (
            "-A -t 198.18.0.129:80 --conn-limit 1 --conn-limit 2",
            "multiple 'conn-limit' options specified",
        ),
        // -A and -E only.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --conn-limit 5",
            "Illegal 'conn-limit' option with the 'add-server' command",
        ),
        (
            "-D -t 198.18.0.129:80 --conn-limit 5",
            "Illegal 'conn-limit' option with the 'delete-service' command",
        ),
        (
            "-L --conn-limit 5",
            "Illegal 'conn-limit' option with the 'list' command",
        ),
        (
            "-S --conn-limit 5",
            "Illegal 'conn-limit' option with the 'save' command",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error(line), (message.to_string(), EXIT_USAGE), "{line}");
    }
    assert_eq!(
        error("-A -t 198.18.0.129:80 --conn-limit"),
        (
            "option '--conn-limit' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information."
                .to_string(),
            EXIT_TRY_HELP
        )
    );
}

#[test]
fn bad_check_options() {
    let cases: &[(&str, &str)] = &[
        (
            "-A -t 198.18.0.129:80 --check udp",
            "illegal check type `udp' specified (tcp, http or none)",
        ),
        (
            "-A -t 198.18.0.129:80 --check-port 8080",
            "You need to supply the 'check' option with the 'check-port' option",
        ),
        (
            "-E -t 198.18.0.129:80 --rise 3",
            "You need to supply the 'check' option with the 'rise' option",
        ),
        (
            "-E -t 198.18.0.129:80 --check none --fall 3",
            "Illegal 'fall' option with '--check none'",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-path /x",
            "Illegal 'check-path' option with the 'tcp' check",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-status 200",
            "Illegal 'check-status' option with the 'tcp' check",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-port 0",
            "illegal check port specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-port 65536",
            "illegal check port specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check http --check-path health",
            "illegal check path specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check http --check-status 99",
            "illegal check status specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check http --check-status 600",
            "illegal check status specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 0",
            "illegal check interval specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 0.0001",
            "illegal check interval specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 1.",
            "illegal check interval specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval -1",
            "illegal check interval specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 3600.001",
            "illegal check interval specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-timeout 0.099",
            "illegal check timeout specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --rise 101",
            "illegal rise count specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-timeout 1s",
            "illegal check timeout specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-timeout 3",
            "illegal check timeout specified (3 s is longer than the check interval, 2 s)",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check-interval 1 --check-timeout 1.5",
            "illegal check timeout specified (1.5 s is longer than the check interval, 1 s)",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --rise 0",
            "illegal rise count specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --fall x",
            "illegal fall count specified",
        ),
        (
            "-A -t 198.18.0.129:80 --check tcp --check http",
            "multiple 'check' options specified",
        ),
        // Check options go with -A and -E only.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --check tcp",
            "Illegal 'check' option with the 'add-server' command",
        ),
        (
            "-D -t 198.18.0.129:80 --check-port 80",
            "Illegal 'check-port' option with the 'delete-service' command",
        ),
        (
            "-L --rise 2",
            "Illegal 'rise' option with the 'list' command",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error(line), (message.to_string(), EXIT_USAGE), "{line}");
    }
    assert_eq!(
        error("-A -t 198.18.0.129:80 --check"),
        (
            "option '--check' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information."
                .to_string(),
            EXIT_TRY_HELP
        )
    );
}

const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 11);

#[test]
fn fullnat_commands() {
    let udp53 = svc(Protocol::Udp, VIP, 53);
    let cases = [
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80",
            Command::AddLaddr {
                service: tcp80(),
                addr: LIP.into(),
            },
        ),
        // Long options, any order, `=`, clusters (the rest of `-Pz` is no argument: -z takes
        // the next word).
        (
            "--add-laddr --tcp-service 198.18.0.129:80 --laddr 198.19.0.11",
            Command::AddLaddr {
                service: tcp80(),
                addr: LIP.into(),
            },
        ),
        (
            "-Pz 198.19.0.11 -t 198.18.0.129:80",
            Command::AddLaddr {
                service: tcp80(),
                addr: LIP.into(),
            },
        ),
        (
            "-Q -u 198.18.0.129:53 -z198.19.0.11",
            Command::DelLaddr {
                service: udp53,
                addr: LIP.into(),
            },
        ),
        (
            "--del-laddr --laddr=198.19.0.11 -t 198.18.0.129:80",
            Command::DelLaddr {
                service: tcp80(),
                addr: LIP.into(),
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
    // --get-laddr: every service, or one.
    assert_eq!(
        parse(&args("-G")).unwrap(),
        Invocation::Laddrs(ListOptions::default())
    );
    assert_eq!(
        parse(&args("--get-laddr -u 198.18.0.129:53")).unwrap(),
        Invocation::Laddrs(ListOptions {
            service: Some(udp53),
            ..ListOptions::default()
        })
    );
    assert_eq!(
        Invocation::Laddrs(ListOptions::default()).command(),
        Some(Command::List)
    );
    // --fullnat: the real server keeps its port (unlike -g and -i).
    let fullnat = |real, weight| Command::AddReal {
        service: tcp80(),
        real,
        weight: Some(weight),
        forward: Some(Forward::FullNat),
        tunnel: None,
        upper_threshold: Some(0),
        lower_threshold: Some(0),
    };
    assert_eq!(
        apply("-a -t 198.18.0.129:80 -r 198.19.1.5:8080 --fullnat -w 2"),
        fullnat(super::real([198, 19, 1, 5], 8080), 2)
    );
    assert_eq!(
        apply("-a --fullnat -t 198.18.0.129:80 -r 198.19.1.5"),
        fullnat(super::real([198, 19, 1, 5], 80), 1)
    );
    assert_eq!(
        apply("-e -t 198.18.0.129:80 -r 198.19.1.5:8080 --fullnat -w 0"),
        Command::EditReal {
            service: tcp80(),
            real: super::real([198, 19, 1, 5], 8080),
            weight: Some(0),
            forward: Some(Forward::FullNat),
            tunnel: None,
            upper_threshold: Some(0),
            lower_threshold: Some(0),
        }
    );
}

#[test]
fn bad_fullnat_command_lines() {
    let usage = EXIT_USAGE;
    let cases: &[(&str, &str, u8)] = &[
        // DPVS's commands_v_options rows: a service and -z for -P/-Q, the service optional
        // for -G, nothing else.
        (
            "-P -t 198.18.0.129:80",
            "You need to supply the 'local-address' option for the 'add-laddr' command",
            usage,
        ),
        (
            "-Q -z 198.19.0.11",
            "You need to supply the 'service-address' option for the 'del-laddr' command",
            usage,
        ),
        (
            "--add-laddr",
            "You need to supply the 'service-address' option for the 'add-laddr' command",
            usage,
        ),
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80 -r 198.19.0.148",
            "Illegal 'real-server' option with the 'add-laddr' command",
            usage,
        ),
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80 -s rr",
            "Illegal 'scheduler' option with the 'add-laddr' command",
            usage,
        ),
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80 --fullnat",
            "Illegal 'forwarding-method' option with the 'add-laddr' command",
            usage,
        ),
        (
            "-G -n",
            "Illegal 'numeric' option with the 'get-laddr' command",
            usage,
        ),
        (
            "-G -c",
            "Illegal 'connection' option with the 'get-laddr' command",
            usage,
        ),
        (
            "-G -z 198.19.0.11",
            "Illegal 'local-address' option with the 'get-laddr' command",
            usage,
        ),
        // -z without a local-address command.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --fullnat -z 198.19.0.11",
            "Illegal 'local-address' option with the 'add-server' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -z 198.19.0.11",
            "Illegal 'local-address' option with the 'add-service' command",
            usage,
        ),
        (
            "-L -z 198.19.0.11",
            "Illegal 'local-address' option with the 'list' command",
            usage,
        ),
        (
            "-S -z 198.19.0.11",
            "Illegal 'local-address' option with the 'save' command",
            usage,
        ),
        (
            "-D -t 198.18.0.129:80 -z 198.19.0.11",
            "Illegal 'local-address' option with the 'delete-service' command",
            usage,
        ),
        // -z's value: a numeric IPv4 or IPv6 address, no port.
        (
            "-P -z 198.19.0.300 -t 198.18.0.129:80",
            "illegal local address `198.19.0.300' specified (-z takes an IPv4 or IPv6 address, \
             no port, no brackets)",
            usage,
        ),
        (
            "-P -z 198.19.0.11:80 -t 198.18.0.129:80",
            "illegal local address `198.19.0.11:80' specified (-z takes an IPv4 or IPv6 \
             address, no port, no brackets)",
            usage,
        ),
        (
            "-Q -z lb.example -t 198.18.0.129:80",
            "illegal local address `lb.example' specified (-z takes an IPv4 or IPv6 address, no \
             port, no brackets)",
            usage,
        ),
        (
            "-P -z [2001:2::1]:80 -t 198.18.0.129:80",
            "illegal local address `[2001:2::1]:80' specified (-z takes an IPv4 or IPv6 \
             address, no port, no brackets)",
            usage,
        ),
        (
            "-P -z 198.19.0.11 -z 198.19.0.12 -t 198.18.0.129:80",
            "multiple 'local-address' options specified",
            usage,
        ),
        ("-P -G", "multiple commands specified", usage),
        ("-Q -L", "multiple commands specified", usage),
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80 extra",
            "unexpected argument extra",
            usage,
        ),
        // DPVS's -F, which it wants with -P/-Q.
        (
            "-P -z 198.19.0.11 -t 198.18.0.129:80 -F dpdk0",
            "option '-F' (ifname) is not supported: xvs needs no interface for a local \
             address (xvsd steers it itself)",
            usage,
        ),
        // --fullnat is one forwarding method among -g -i -m.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --fullnat -m",
            "multiple 'forwarding-method' options specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -g --fullnat",
            "multiple 'forwarding-method' options specified",
            usage,
        ),
        (
            "-e -t 198.18.0.129:80 -r 198.19.0.148 --fullnat -i",
            "multiple 'forwarding-method' options specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --fullnat --tun-type gue",
            "the --tun-* options go with tunneling (-i, --ipip)",
            usage,
        ),
        (
            "-d -t 198.18.0.129:80 -r 198.19.0.148 --fullnat",
            "Illegal 'forwarding-method' option with the 'delete-server' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 --fullnat",
            "Illegal 'forwarding-method' option with the 'add-service' command",
            usage,
        ),
        // popt: --fullnat takes no argument, -z needs one; -b stays ipvsadm's
        // --sched-flags (DPVS's -b is --fullnat).
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --fullnat=yes",
            "option '--fullnat' does not take an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
        (
            "-P -t 198.18.0.129:80 -z",
            "option '-z' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -b",
            "option '-b' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
    ];
    for (line, message, code) in cases {
        assert_eq!(error(line), (message.to_string(), *code), "{line}");
    }
}

fn set_sloppy(tcp: bool, udp: bool) -> Command {
    Command::SetSloppy { tcp, udp }
}

#[test]
fn sloppy_command() {
    let cases = [
        ("--sloppy tcp,udp", set_sloppy(true, true)),
        ("--sloppy udp,tcp", set_sloppy(true, true)),
        ("--sloppy tcp", set_sloppy(true, false)),
        ("--sloppy udp", set_sloppy(false, true)),
        // The protocols not named are turned off; none turns both off.
        ("--sloppy none", set_sloppy(false, false)),
        // A name given twice is harmless, as in -b.
        ("--sloppy tcp,tcp", set_sloppy(true, false)),
        ("--sloppy udp,tcp,udp", set_sloppy(true, true)),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
        // It sends what it parses to.
        assert_eq!(
            parse(&args(line)).unwrap().command(),
            Some(expected),
            "{line}"
        );
    }
}

#[test]
fn bad_sloppy_command_lines() {
    let usage = EXIT_USAGE;
    let values = "--sloppy takes tcp, udp, tcp,udp or none";
    let cases: &[(&str, String, u8)] = &[
        // The list.
        (
            "--sloppy foo",
            format!("illegal sloppy protocol `foo' specified ({values})"),
            usage,
        ),
        (
            "--sloppy tcp,sctp",
            format!("illegal sloppy protocol `sctp' specified ({values})"),
            usage,
        ),
        // Names are lower case, as ipvsadm's -b flags are.
        (
            "--sloppy TCP",
            format!("illegal sloppy protocol `TCP' specified ({values})"),
            usage,
        ),
        (
            "--sloppy tcp,none",
            "illegal sloppy list `tcp,none' specified (none turns both off and goes alone)".into(),
            usage,
        ),
        (
            "--sloppy none,udp",
            "illegal sloppy list `none,udp' specified (none turns both off and goes alone)".into(),
            usage,
        ),
        (
            "--sloppy none,none",
            "illegal sloppy list `none,none' specified (none turns both off and goes alone)".into(),
            usage,
        ),
        (
            "--sloppy tcp,",
            format!("empty protocol in sloppy list `tcp,' ({values})"),
            usage,
        ),
        (
            "--sloppy ,",
            format!("empty protocol in sloppy list `,' ({values})"),
            usage,
        ),
        // popt gives a required argument the next word, whatever it is.
        (
            "--sloppy -n",
            format!("illegal sloppy protocol `-n' specified ({values})"),
            usage,
        ),
        // One list, one word: a second word is a stray argument.
        ("--sloppy tcp udp", "unexpected argument udp".into(), usage),
        // Its commands_v_options row: no option at all, as --set.
        (
            "--sloppy tcp -n",
            "Illegal 'numeric' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "--sloppy tcp -t 198.18.0.129:80",
            "Illegal 'service-address' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "-u 198.18.0.129:53 --sloppy udp",
            "Illegal 'service-address' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "--sloppy tcp -s mh",
            "Illegal 'scheduler' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "--sloppy tcp --conn-limit 5",
            "Illegal 'conn-limit' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "--sloppy tcp --check tcp",
            "Illegal 'check' option with the 'sloppy' command".into(),
            usage,
        ),
        (
            "--sloppy none -c",
            "Illegal 'connection' option with the 'sloppy' command".into(),
            usage,
        ),
        // A command among commands.
        (
            "--sloppy tcp --sloppy udp",
            "multiple commands specified".into(),
            usage,
        ),
        (
            "--sloppy tcp --set 0 0 60",
            "multiple commands specified".into(),
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 --sloppy tcp",
            "multiple commands specified".into(),
            usage,
        ),
        (
            "-L --sloppy tcp",
            "multiple commands specified".into(),
            usage,
        ),
        (
            "--sloppy tcp -S",
            "multiple commands specified".into(),
            usage,
        ),
        // popt: the list is required, and --sloppy is long only.
        (
            "--sloppy",
            "option '--sloppy' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information."
                .into(),
            EXIT_TRY_HELP,
        ),
    ];
    for (line, message, code) in cases {
        assert_eq!(error(line), (message.clone(), *code), "{line}");
    }
    // An empty list: `--sloppy ''` and `--sloppy=`.
    let empty = format!("empty sloppy list specified ({values})");
    for line in [vec!["--sloppy", ""], vec!["--sloppy="]] {
        let line: Vec<String> = line.into_iter().map(String::from).collect();
        let err = parse(&line).unwrap_err();
        assert_eq!((err.to_string(), err.exit_code()), (empty.clone(), usage));
    }
}
