//! The daemon's refusals in ipvsadm's words, and `-h`.

use super::*;

#[test]
fn daemon_errors_read_like_ipvsadm() {
    let service = svc(Protocol::Tcp, VIP, 80);
    let add_service = Command::AddService {
        service,
        scheduler: None,
        sched_flags: None,
        persistent: None,
        netmask: None,
    };
    let del_real = Command::DelReal {
        service,
        real: real([198, 19, 0, 148], 80),
    };
    let m = |c: &Command, code| daemon_error_message(c, code, "daemon text");
    assert_eq!(
        m(&add_service, ErrorCode::ServiceExists),
        "Service already exists"
    );
    assert_eq!(m(&add_service, ErrorCode::NoSuchService), "No such service");
    assert_eq!(
        m(&del_real, ErrorCode::NoSuchService),
        "Service not defined"
    );
    assert_eq!(
        m(&del_real, ErrorCode::RealExists),
        "Destination already exists"
    );
    assert_eq!(m(&del_real, ErrorCode::NoSuchReal), "No such destination");
    assert_eq!(
        m(&add_service, ErrorCode::UnknownScheduler),
        "Scheduler or persistence engine not found: daemon text"
    );
    assert_eq!(m(&add_service, ErrorCode::InvalidArgument), "daemon text");
    // IPVS's ERANGE for a lower threshold above the upper one: strerror's words, then ours.
    let add_real = |upper, lower| Command::AddReal {
        service,
        real: real([198, 19, 0, 148], 80),
        weight: Some(1),
        forward: Some(Forward::Masq),
        tunnel: None,
        upper_threshold: Some(upper),
        lower_threshold: Some(lower),
    };
    assert_eq!(
        m(&add_real(0, 5), ErrorCode::InvalidArgument),
        "Numerical result out of range: daemon text"
    );
    assert_eq!(
        m(&add_real(5, 5), ErrorCode::InvalidArgument),
        "daemon text"
    );
}

#[test]
fn help_names_the_defaults() {
    let text = usage();
    assert!(text.starts_with("xvsadm v"));
    assert!(text.contains("the default scheduler is wlc."));
    assert!(text.contains(
        "  --gatewaying   -g                   gatewaying (direct routing): the default"
    ));
    assert!(text.contains("--control PATH"));
    assert!(text.contains("  --sched-flags  -b flags             scheduler flags"));
    assert!(text.contains("  --u-threshold  -x uthreshold        upper threshold"));
    assert!(text.contains("  --l-threshold  -y lthreshold        lower threshold"));
    assert!(text.contains("  --thresholds                        output of thresholds"));
    assert!(text.contains("  --persistent   -p [timeout]         persistent service"));
    assert!(text.contains("  --netmask      -M netmask           persistent granularity mask"));
    assert!(text.contains("  --persistent-conn                   output of persistent connection"));
    assert!(text.contains("default 360;"));
    assert!(!text.contains("-p -M"));
    assert!(text.contains("\n                                      else /run/xvs/xvs.sock)\n"));
}

#[test]
fn refused_batches_name_the_command() {
    let service = svc(Protocol::Tcp, VIP, 80);
    let batch = match parse(&args("-A -t 198.18.0.129:80 --check tcp")).unwrap() {
        Invocation::Apply(batch @ Command::Batch { .. }) => batch,
        other => panic!("{other:?}"),
    };
    // apply.rs: "command {position} of {total} ({command}): {error}".
    assert_eq!(
        daemon_error_message(
            &batch,
            ErrorCode::ServiceExists,
            "command 1 of 2 (add_service): service TCP 198.18.0.129:80 already exists"
        ),
        "command 1 of 2: Service already exists"
    );
    let restored = Command::Batch {
        commands: vec![
            Command::Clear,
            Command::DelReal {
                service,
                real: real([198, 19, 0, 148], 80),
            },
        ],
    };
    assert_eq!(
        daemon_error_message(
            &restored,
            ErrorCode::NoSuchService,
            "command 2 of 2 (del_real): no service TCP 198.18.0.129:80"
        ),
        "command 2 of 2: Service not defined"
    );
    // A message of another shape (or a position out of range) is passed on.
    assert_eq!(
        daemon_error_message(&restored, ErrorCode::Internal, "map update failed"),
        "map update failed"
    );
    assert_eq!(
        daemon_error_message(&restored, ErrorCode::NoSuchReal, "command 3 of 2 (x): y"),
        "command 3 of 2 (x): y"
    );
}

#[test]
fn help_names_the_new_commands() {
    let text = usage();
    for needle in [
        "  xvsadm [--control PATH] -R\n",
        "  xvsadm [--control PATH] -S [-n]\n",
        "  xvsadm [--control PATH] -Z [virtual-service]\n",
        "  xvsadm [--control PATH] --set tcp tcpfin udp\n",
        "  --zero            -Z        zero counters in a service or all services\n",
        "  --connection   -c                   output of current IPVS connections\n",
        "  --timeout                           output of timeout (tcp tcpfin udp)\n",
        "  --rate                              output of rate information\n",
        "  --health                            output of health checks",
        "  --check tcp|http|none ",
        "  --check-interval seconds            time between two checks (default 2)\n",
        "(default\n                                      1, at most the interval)\n",
        "  --rise         count                successes that bring a server up (default 2)\n",
        "[check-options]\n                                    [--conn-limit max-conns]\n",
        "  --conn-limit   max-conns            at most max-conns connections of the service",
        "--fwmark-service (-f)",
        "--start-daemon",
    ] {
        assert!(text.contains(needle), "-h lacks {needle:?}");
    }
    // Every line fits 100 columns.
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");
}

#[test]
fn fullnat_in_help_and_messages() {
    let text = usage();
    for needle in [
        "  xvsadm [--control PATH] -P|Q virtual-service -z local-address\n",
        "  xvsadm [--control PATH] -G [virtual-service]\n",
        "[-g|-i|-m|--fullnat]",
        "  --add-laddr       -P        add local address (FullNAT)\n",
        "  --del-laddr       -Q        del local address\n",
        "  --get-laddr       -G        get local address",
        "  --fullnat                           fullnat mode",
        "  --laddr        -z local-ip          local IP",
        "DPVS's --ifname (-F)",
    ] {
        assert!(text.contains(needle), "-h lacks {needle:?}");
    }
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");
    // The daemon's refusals: "No such service" as for the service commands; the rest in the
    // daemon's words.
    let service = svc(Protocol::Tcp, VIP, 80);
    let add = Command::AddLaddr {
        service,
        addr: Ipv4Addr::new(198, 19, 0, 11).into(),
    };
    let del = Command::DelLaddr {
        service,
        addr: Ipv4Addr::new(198, 19, 0, 11).into(),
    };
    assert_eq!(
        daemon_error_message(
            &add,
            ErrorCode::NoSuchService,
            "no service TCP 198.18.0.129:80"
        ),
        "No such service"
    );
    assert_eq!(
        daemon_error_message(
            &del,
            ErrorCode::NoSuchService,
            "no service TCP 198.18.0.129:80"
        ),
        "No such service"
    );
    let exists = "local address 198.19.0.11 already exists in service TCP 198.18.0.129:80";
    assert_eq!(
        daemon_error_message(&add, ErrorCode::InvalidArgument, exists),
        exists
    );
}

#[test]
fn sloppy_in_help_and_messages() {
    let text = usage();
    for needle in [
        "  xvsadm [--control PATH] --set tcp tcpfin udp\n  xvsadm [--control PATH] --sloppy \
         tcp|udp|tcp,udp|none\n",
        "  --sloppy protocols          sloppy TCP and/or UDP (xvs; IPVS's sysctls): protocols\n\
         \x20                             is tcp, udp, tcp,udp or none; the others are turned \
         off\n",
        "\nSloppy (--sloppy, xvs's form of IPVS's sysctls sloppy_tcp and sloppy_udp):\n",
        "  tcp                                 a TCP segment other than a SYN or RST",
        "  udp                                 accepted for scale-out configurations",
        "  none                                both off",
    ] {
        assert!(text.contains(needle), "-h lacks {needle:?}");
    }
    assert!(text.lines().all(|l| l.len() <= 100), "{text}");
    // ipvsadm has no words for the daemon's refusals of it: the daemon's are printed.
    let sloppy = Command::SetSloppy {
        tcp: true,
        udp: false,
    };
    assert_eq!(
        daemon_error_message(&sloppy, ErrorCode::Internal, "map update failed"),
        "map update failed"
    );
}
