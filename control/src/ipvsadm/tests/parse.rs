//! Command lines: what each parses to, and the errors ipvsadm gives.

use super::*;

#[test]
fn service_commands() {
    let tcp80 = svc(Protocol::Tcp, VIP, 80);
    let cases = [
        (
            "-A -t 198.18.0.129:80 -s rr",
            Command::AddService {
                service: tcp80,
                scheduler: Some("rr".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "-A -t 198.18.0.129:80",
            Command::AddService {
                service: tcp80,
                scheduler: Some("wlc".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "--add-service --tcp-service 198.18.0.129:80 --scheduler=wrr",
            Command::AddService {
                service: tcp80,
                scheduler: Some("wrr".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "-s rr -t 198.18.0.129:80 -A",
            Command::AddService {
                service: tcp80,
                scheduler: Some("rr".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "-At 198.18.0.129:80 -ssh",
            Command::AddService {
                service: tcp80,
                scheduler: Some("sh".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "-E -u 198.18.0.129:53 -s lc",
            Command::EditService {
                service: svc(Protocol::Udp, VIP, 53),
                scheduler: Some("lc".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "--edit-service --udp-service=198.18.0.129:53",
            Command::EditService {
                service: svc(Protocol::Udp, VIP, 53),
                scheduler: Some("wlc".into()),
                sched_flags: Some(vec![]),
                persistent: Some(0),
                netmask: Some(DEFAULT_NETMASK.into()),
            },
        ),
        (
            "-D -t 198.18.0.129:80",
            Command::DelService { service: tcp80 },
        ),
        (
            "--delete-service -t198.18.0.129:80",
            Command::DelService { service: tcp80 },
        ),
        ("-C", Command::Clear),
        ("--clear", Command::Clear),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
}

#[test]
fn real_server_commands() {
    let tcp80 = svc(Protocol::Tcp, VIP, 80);
    let add_by = |forward, real, weight| Command::AddReal {
        service: tcp80,
        real,
        weight: Some(weight),
        forward: Some(forward),
        tunnel: None,
        upper_threshold: Some(0),
        lower_threshold: Some(0),
    };
    let add = |real, weight| add_by(Forward::Masq, real, weight);
    let add_tunnel = |spec, real| Command::AddReal {
        service: tcp80,
        real,
        weight: Some(1),
        forward: Some(Forward::Tunnel),
        tunnel: Some(spec),
        upper_threshold: Some(0),
        lower_threshold: Some(0),
    };
    let cases = [
        // The seed's commands.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -m",
            add(real([198, 19, 0, 148], 80), 1),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.137 -m",
            add(real([198, 19, 0, 137], 80), 1),
        ),
        // Explicit port, weight, any order.
        (
            "-a -r 198.19.0.148:8080 -w 3 -m -t 198.18.0.129:80",
            add(real([198, 19, 0, 148], 8080), 3),
        ),
        // No method: direct routing, ipvsadm's default, which keeps the service's port
        // whatever was given (ipvsadm sets it).
        (
            "-a -r 198.19.0.148:8080 -w 3 -t 198.18.0.129:80",
            add_by(Forward::Route, real([198, 19, 0, 148], 80), 3),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --gatewaying",
            add_by(Forward::Route, real([198, 19, 0, 148], 80), 1),
        ),
        // DPVS's --fullnat: requests are rewritten, so the real server keeps its own port
        // (as with -m); without one, the service's.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148:8080 --fullnat",
            add_by(Forward::FullNat, real([198, 19, 0, 148], 8080), 1),
        ),
        (
            "-a --fullnat -r 198.19.0.148 -w 4 -t 198.18.0.129:80",
            add_by(Forward::FullNat, real([198, 19, 0, 148], 80), 4),
        ),
        // -i alone: IP in IP; the service's port, as ipvsadm sets it.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148:81 -i",
            add_tunnel(TunnelSpec::default(), real([198, 19, 0, 148], 80)),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 --ipip --tun-type gue --tun-port 6080 \
             --tun-csum",
            add_tunnel(
                TunnelSpec {
                    kind: TunnelKind::Gue,
                    port: Some(6080),
                    checksum: TunnelChecksum::Csum,
                },
                real([198, 19, 0, 148], 80),
            ),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -mw0",
            add(real([198, 19, 0, 148], 80), 0),
        ),
        (
            "--add-server --tcp-service 198.18.0.129:80 --real-server 198.19.0.148 \
             --masquerading --weight=65535",
            add(real([198, 19, 0, 148], 80), 65535),
        ),
        (
            "-e -t 198.18.0.129:80 -r 198.19.0.148 -m -w 5",
            Command::EditReal {
                service: tcp80,
                real: real([198, 19, 0, 148], 80),
                weight: Some(5),
                forward: Some(Forward::Masq),
                tunnel: None,
                upper_threshold: Some(0),
                lower_threshold: Some(0),
            },
        ),
        // ipvsadm -e without -w sends weight 1, and without a method -g.
        (
            "--edit-server -t 198.18.0.129:80 -r 198.19.0.148:80",
            Command::EditReal {
                service: tcp80,
                real: real([198, 19, 0, 148], 80),
                weight: Some(1),
                forward: Some(Forward::Route),
                tunnel: None,
                upper_threshold: Some(0),
                lower_threshold: Some(0),
            },
        ),
        (
            "-d -t 198.18.0.129:80 -r 198.19.0.148",
            Command::DelReal {
                service: tcp80,
                real: real([198, 19, 0, 148], 80),
            },
        ),
        (
            "--delete-server -u 198.18.0.129:53 -r 198.19.0.148:5353",
            Command::DelReal {
                service: svc(Protocol::Udp, VIP, 53),
                real: real([198, 19, 0, 148], 5353),
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
}

#[test]
fn list_commands() {
    let tcp80 = svc(Protocol::Tcp, VIP, 80);
    let numeric = ListOptions {
        numeric: true,
        ..ListOptions::default()
    };
    let cases = [
        ("-L", ListOptions::default()),
        ("-l", ListOptions::default()),
        ("--list", ListOptions::default()),
        ("-Ln", numeric.clone()),
        ("-nL", numeric.clone()),
        ("-L -n", numeric.clone()),
        ("--list --numeric", numeric.clone()),
        ("-ln --sort", numeric.clone()),
        (
            "-lnt 198.18.0.129:80",
            ListOptions {
                service: Some(tcp80),
                ..numeric.clone()
            },
        ),
        (
            "-L -n -t 198.18.0.129:80",
            ListOptions {
                service: Some(tcp80),
                ..numeric.clone()
            },
        ),
        (
            "-Ln --stats",
            ListOptions {
                stats: true,
                ..numeric.clone()
            },
        ),
        (
            "-L --stats --exact --nosort",
            ListOptions {
                stats: true,
                exact: true,
                nosort: true,
                ..ListOptions::default()
            },
        ),
        (
            "-LnX --stats",
            ListOptions {
                stats: true,
                exact: true,
                ..numeric.clone()
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(list(line), expected, "{line}");
    }
    assert_eq!(
        parse(&[]).unwrap(),
        Invocation::List(ListOptions::default())
    );
    assert_eq!(parse(&args("-h")).unwrap(), Invocation::Help);
    assert_eq!(parse(&args("--help")).unwrap(), Invocation::Help);
    assert_eq!(parse(&args("-v")).unwrap(), Invocation::Version);
    assert_eq!(parse(&args("--version")).unwrap(), Invocation::Version);
    assert_eq!(
        Invocation::List(ListOptions::default()).command(),
        Some(Command::List)
    );
}

#[test]
fn bad_command_lines() {
    let usage = EXIT_USAGE;
    let try_help = EXIT_TRY_HELP;
    let cases: &[(&str, &str, u8)] = &[
        // ipvsadm's own messages.
        (
            "-A -t 198.18.0.300:80",
            "illegal virtual server address[:port] specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:65536",
            "illegal virtual server address[:port] specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:http",
            "illegal virtual server address[:port] specified",
            usage,
        ),
        (
            "-A -t 80",
            "illegal virtual server address[:port] specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:0",
            "Zero port specified for non-persistent service",
            usage,
        ),
        (
            "-A -t 198.18.0.129",
            "Zero port specified for non-persistent service",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0:80",
            "illegal real server address[:port] specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -w 65536",
            "illegal weight specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -w -1",
            "illegal weight specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -w x",
            "illegal weight specified",
            usage,
        ),
        (
            "-A -s rr",
            "You need to supply the 'service-address' option for the 'add-service' command",
            usage,
        ),
        (
            "-a -r 198.19.0.148",
            "You need to supply the 'service-address' option for the 'add-server' command",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -m",
            "You need to supply the 'real-server' option for the 'add-server' command",
            usage,
        ),
        (
            "-D -t 198.18.0.129:80 -s rr",
            "Illegal 'scheduler' option with the 'delete-service' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -w 2",
            "Illegal 'weight' option with the 'add-service' command",
            usage,
        ),
        (
            "-d -t 198.18.0.129:80 -r 198.19.0.148 -m",
            "Illegal 'forwarding-method' option with the 'delete-server' command",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -s rr",
            "Illegal 'scheduler' option with the 'add-server' command",
            usage,
        ),
        (
            "-C -n",
            "Illegal 'numeric' option with the 'flush' command",
            usage,
        ),
        (
            "-L -s rr",
            "Illegal 'scheduler' option with the 'list' command",
            usage,
        ),
        ("-A -L", "multiple commands specified", usage),
        ("-Ln -h", "multiple commands specified", usage),
        (
            "-A -t 198.18.0.129:80 -u 198.18.0.129:53",
            "multiple 'service-address' options specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -m -m",
            "multiple 'forwarding-method' options specified",
            usage,
        ),
        ("-L extra", "unexpected argument extra", usage),
        ("-L -- -n", "unexpected argument -n", usage),
        // Tunnel options: with -i only, and well-formed.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -g --tun-type gue",
            "the --tun-* options go with tunneling (-i, --ipip)",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -i --tun-type vxlan",
            "illegal tunnel type specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -i --tun-type gue --tun-port 0",
            "illegal tunnel port specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -i --tun-csum --tun-nocsum",
            "multiple 'tun-csum-flags' options specified",
            usage,
        ),
        // ipvsadm options xvs does not implement.
        (
            "-A -t 198.18.0.129:80 -p --pe sip",
            "option '--pe' (pe) is not supported: xvs has no persistence engines",
            usage,
        ),
        (
            "-A -f 1",
            "option '-f' (fwmark-service) is not supported: xvs has no firewall-mark services",
            usage,
        ),
        (
            "-A --sctp-service 198.18.0.129:80",
            "option '--sctp-service' (sctp-service) is not supported: xvs balances TCP and UDP \
             only",
            usage,
        ),
        (
            "-L --daemon",
            "option '--daemon' (daemon) is not supported: xvs has no connection sync daemon",
            usage,
        ),
        (
            "--start-daemon master",
            "option '--start-daemon' (start-daemon) is not supported: xvs has no connection \
             sync daemon",
            usage,
        ),
        (
            "--stop-daemon backup",
            "option '--stop-daemon' (stop-daemon) is not supported: xvs has no connection \
             sync daemon",
            usage,
        ),
        (
            "-A -u 198.18.0.129:53 -o",
            "option '-o' (ops) is not supported: xvs has no one-packet scheduling",
            usage,
        ),
        (
            "-L --tun-info",
            "option '--tun-info' (tun-info) is not supported: xvs lists tunnels in -S form only \
             (-S shows --tun-* options)",
            usage,
        ),
        // popt's errors: ipvsadm points at -h and exits 255.
        (
            "-n",
            "no command given (one of -A -E -D -C -a -e -d -L -Z -S -R --set --sloppy -P -Q -G)\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            try_help,
        ),
        (
            "-L --bogus",
            "unknown option '--bogus'\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            try_help,
        ),
        (
            "-Lq",
            "unknown option '-q'\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            try_help,
        ),
        (
            "-A -t",
            "option '-t' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            try_help,
        ),
        (
            "-L --stats=1",
            "option '--stats' does not take an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            try_help,
        ),
    ];
    for (line, message, code) in cases {
        assert_eq!(error(line), (message.to_string(), *code), "{line}");
    }
}

#[test]
fn sched_flags_and_thresholds() {
    let tcp80 = svc(Protocol::Tcp, VIP, 80);
    let add = |scheduler: &str, flags: &[&str]| Command::AddService {
        service: tcp80,
        scheduler: Some(scheduler.into()),
        sched_flags: Some(flags.iter().map(|f| f.to_string()).collect()),
        persistent: Some(0),
        netmask: Some(DEFAULT_NETMASK.into()),
    };
    let edit = |scheduler: &str, flags: &[&str]| Command::EditService {
        service: tcp80,
        scheduler: Some(scheduler.into()),
        sched_flags: Some(flags.iter().map(|f| f.to_string()).collect()),
        persistent: Some(0),
        netmask: Some(DEFAULT_NETMASK.into()),
    };
    let r148 = real([198, 19, 0, 148], 80);
    let add_real = |upper, lower| Command::AddReal {
        service: tcp80,
        real: r148,
        weight: Some(1),
        forward: Some(Forward::Masq),
        tunnel: None,
        upper_threshold: Some(upper),
        lower_threshold: Some(lower),
    };
    let edit_real = |weight, upper, lower| Command::EditReal {
        service: tcp80,
        real: r148,
        weight: Some(weight),
        forward: Some(Forward::Masq),
        tunnel: None,
        upper_threshold: Some(upper),
        lower_threshold: Some(lower),
    };
    let cases = [
        (
            "-A -t 198.18.0.129:80 -s sh -b sh-fallback,sh-port",
            add("sh", &["sh-fallback", "sh-port"]),
        ),
        // -b is checked once every option is read: -s may come after it.
        (
            "-A -t 198.18.0.129:80 -b sh-port -s sh",
            add("sh", &["sh-port"]),
        ),
        (
            "-At 198.18.0.129:80 -ssh -bsh-port",
            add("sh", &["sh-port"]),
        ),
        (
            "--add-service --tcp-service 198.18.0.129:80 --scheduler mh \
             --sched-flags=mh-port,mh-fallback",
            add("mh", &["mh-port", "mh-fallback"]),
        ),
        // strtok skips empty names.
        (
            "-E -t 198.18.0.129:80 -s sh -b ,sh-port,,sh-fallback,",
            edit("sh", &["sh-port", "sh-fallback"]),
        ),
        // The generic names go with any scheduler (-s absent: wlc).
        (
            "-A -t 198.18.0.129:80 -s rr -b flag-1,flag-2",
            add("rr", &["flag-1", "flag-2"]),
        ),
        ("-A -t 198.18.0.129:80 -b flag-1", add("wlc", &["flag-1"])),
        (
            "-A -t 198.18.0.129:80 -s sh -b flag-2",
            add("sh", &["flag-2"]),
        ),
        // -E without -b clears the flags, as ipvsadm's -E does.
        ("-E -t 198.18.0.129:80 -s sh", edit("sh", &[])),
        // Thresholds: 0..=INT_MAX, always sent (0 when absent).
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -m -x 100 -y 50",
            add_real(100, 50),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -mx10",
            add_real(10, 0),
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -m -y 0",
            add_real(0, 0),
        ),
        (
            "--edit-server -t 198.18.0.129:80 -r 198.19.0.148 --u-threshold=2147483647 \
             --l-threshold 2147483647 -w 2 -m",
            edit_real(2, 2147483647, 2147483647),
        ),
        // -e without -x/-y clears them, as ipvsadm's -e does.
        (
            "-e -t 198.18.0.129:80 -r 198.19.0.148 -w 2 -m",
            edit_real(2, 0, 0),
        ),
        // xvsadm leaves the order of the thresholds to the daemon, as ipvsadm leaves it to
        // the kernel.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -m -y 5",
            add_real(0, 5),
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
    // `-b ''` is no flags at all (ipvsadm: sched_flags_arg[0] == '\0').
    let empty: Vec<String> = ["-A", "-t", "198.18.0.129:80", "-s", "sh", "-b", ""]
        .map(String::from)
        .into();
    assert_eq!(parse(&empty).unwrap(), Invocation::Apply(add("sh", &[])));

    let thresholds = ListOptions {
        numeric: true,
        thresholds: true,
        ..ListOptions::default()
    };
    assert_eq!(list("-Ln --thresholds"), thresholds);
    assert_eq!(
        list("-L --thresholds --stats"),
        ListOptions {
            stats: true,
            thresholds: true,
            ..ListOptions::default()
        }
    );
    assert_eq!(
        list("-Ln --thresholds -t 198.18.0.129:80"),
        ListOptions {
            service: Some(tcp80),
            ..thresholds
        }
    );
}

#[test]
fn bad_sched_flags_and_thresholds() {
    let usage = EXIT_USAGE;
    let cases: &[(&str, &str, u8)] = &[
        // ipvsadm's string_to_number(optarg, 0, INT_MAX).
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -x -1",
            "illegal u_threshold specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -x 2147483648",
            "illegal u_threshold specified",
            usage,
        ),
        (
            "-e -t 198.18.0.129:80 -r 198.19.0.148 --u-threshold=ten",
            "illegal u_threshold specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -y 1.5",
            "illegal l_threshold specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -y 4294967295",
            "illegal l_threshold specified",
            usage,
        ),
        // ipvsadm's parse_sched_flags.
        (
            "-A -t 198.18.0.129:80 -s rr -b sh-port",
            "incompatible scheduler flag `sh-port'",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -b mh-port",
            "incompatible scheduler flag `mh-port'",
            usage,
        ),
        (
            "-E -t 198.18.0.129:80 -s sh -b sh-port,mh-fallback",
            "incompatible scheduler flag `mh-fallback'",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -s sh -b sh-fallback,bogus",
            "invalid scheduler flag `bogus'",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -s sh -b SH-PORT",
            "invalid scheduler flag `SH-PORT'",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -s sh -b ,",
            "invalid scheduler flag `,'",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -s rr -b flag-3",
            "scheduler flag `flag-3' (IP_VS_SVC_F_SCHED3) is used by no IPVS scheduler and \
             is not supported",
            usage,
        ),
        // -b is parsed before the option table is checked, against the default
        // scheduler when -s is absent (which -a cannot give).
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -b sh-port",
            "incompatible scheduler flag `sh-port'",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -b flag-1",
            "Illegal 'sched-flags' option with the 'add-server' command",
            usage,
        ),
        (
            "-L -b flag-1",
            "Illegal 'sched-flags' option with the 'list' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -x 5",
            "Illegal 'u-threshold' option with the 'add-service' command",
            usage,
        ),
        (
            "-E -t 198.18.0.129:80 -y 5",
            "Illegal 'l-threshold' option with the 'edit-service' command",
            usage,
        ),
        (
            "-d -t 198.18.0.129:80 -r 198.19.0.148 -x 5",
            "Illegal 'u-threshold' option with the 'delete-server' command",
            usage,
        ),
        (
            "-L --thresholds -y 1",
            "Illegal 'l-threshold' option with the 'list' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 --thresholds",
            "Illegal 'thresholds' option with the 'add-service' command",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -x 1 -x 2",
            "multiple 'u-threshold' options specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -s sh -b sh-port -b sh-fallback",
            "multiple 'sched-flags' options specified",
            usage,
        ),
        (
            "-L --thresholds --thresholds",
            "multiple 'thresholds' options specified",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -x",
            "option '-x' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
    ];
    for (line, message, code) in cases {
        assert_eq!(error(line), (message.to_string(), *code), "{line}");
    }
}

#[test]
fn persistence_options() {
    let tcp80 = svc(Protocol::Tcp, VIP, 80);
    let mask = |m: [u8; 4]| Some(Netmask::from(Ipv4Addr::from(m)));
    let add = |scheduler: &str, persistent: u32, netmask| Command::AddService {
        service: tcp80,
        scheduler: Some(scheduler.into()),
        sched_flags: Some(vec![]),
        persistent: Some(persistent),
        netmask,
    };
    let edit = |persistent: u32, netmask| Command::EditService {
        service: tcp80,
        scheduler: Some("wlc".into()),
        sched_flags: Some(vec![]),
        persistent: Some(persistent),
        netmask,
    };
    let all = mask([255, 255, 255, 255]);
    let cases = [
        // -p alone: IPVS_SVC_PERSISTENT_TIMEOUT, 360 s; no -M: /32.
        ("-A -t 198.18.0.129:80 -p", add("wlc", 360, all)),
        ("-A -t 198.18.0.129:80 --persistent", add("wlc", 360, all)),
        // popt's optional argument: the next word unless it starts with '-'.
        ("-A -t 198.18.0.129:80 -p 600", add("wlc", 600, all)),
        (
            "-A -t 198.18.0.129:80 --persistent 600",
            add("wlc", 600, all),
        ),
        (
            "-A -t 198.18.0.129:80 --persistent=600",
            add("wlc", 600, all),
        ),
        ("-A -t 198.18.0.129:80 -p600", add("wlc", 600, all)),
        ("-A -t 198.18.0.129:80 -p -s rr", add("rr", 360, all)),
        ("-A -p -t 198.18.0.129:80 -s rr", add("rr", 360, all)),
        ("-Ap -t 198.18.0.129:80", add("wlc", 360, all)),
        ("-A -t 198.18.0.129:80 -p --", add("wlc", 360, all)),
        (
            "-A -t 198.18.0.129:80 -p -M 255.255.255.0",
            add("wlc", 360, mask([255, 255, 255, 0])),
        ),
        (
            "-A -t 198.18.0.129:80 -M 255.255.0.0 -p 1 -s rr",
            add("rr", 1, mask([255, 255, 0, 0])),
        ),
        (
            "--add-service --tcp-service 198.18.0.129:80 --persistent=2678400 \
             --netmask=0.0.0.0",
            add("wlc", 2_678_400, mask([0, 0, 0, 0])),
        ),
        // strtol's leading blanks and sign, as for every number ipvsadm reads.
        ("-A -t 198.18.0.129:80 -p +60", add("wlc", 60, all)),
        // -M without -p: accepted and sent, as by ipvsadm (the service is not persistent).
        (
            "-A -t 198.18.0.129:80 -M 255.255.255.0",
            add("wlc", 0, mask([255, 255, 255, 0])),
        ),
        // -E sends everything, as ipvsadm does: no -p turns persistence off, no -M is /32.
        ("-E -t 198.18.0.129:80", edit(0, all)),
        ("-E -t 198.18.0.129:80 -p 60", edit(60, all)),
        (
            "-E -t 198.18.0.129:80 -p -M 255.255.255.128",
            edit(360, mask([255, 255, 255, 128])),
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
    // With -s and -b in between.
    assert_eq!(
        apply("-A -t 198.18.0.129:80 -s sh -p 300 -b sh-port -M 255.255.255.0"),
        Command::AddService {
            service: tcp80,
            scheduler: Some("sh".into()),
            sched_flags: Some(vec!["sh-port".into()]),
            persistent: Some(300),
            netmask: mask([255, 255, 255, 0]),
        }
    );
    // --persistent-conn is a listing option.
    assert_eq!(
        list("-Ln --persistent-conn -t 198.18.0.129:80"),
        ListOptions {
            service: Some(tcp80),
            numeric: true,
            persistent_conn: true,
            ..ListOptions::default()
        }
    );
}

#[test]
fn bad_persistence_options() {
    let usage = EXIT_USAGE;
    let cases: &[(&str, &str, u8)] = &[
        // parse_timeout(optarg, 1, MAX_TIMEOUT).
        (
            "-A -t 198.18.0.129:80 -p 0",
            "invalid timeout value `0' specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -p 2678401",
            "invalid timeout value `2678401' specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -p 1.5",
            "invalid timeout value `1.5' specified",
            usage,
        ),
        // Any word not starting with '-' is -p's argument.
        (
            "-A -t 198.18.0.129:80 -p rr",
            "invalid timeout value `rr' specified",
            usage,
        ),
        (
            "-E -t 198.18.0.129:80 --persistent=ten",
            "invalid timeout value `ten' specified",
            usage,
        ),
        // The rest of a cluster is the argument.
        (
            "-A -t 198.18.0.129:80 -pM 255.255.255.0",
            "invalid timeout value `M' specified",
            usage,
        ),
        // A negative number starts with '-': -p has no argument, "-1" is an option.
        (
            "-A -t 198.18.0.129:80 -p -1",
            "unknown option '-1'\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
        (
            "-A -t 198.18.0.129:80 -p 10 -p 20",
            "multiple 'persistent' options specified",
            usage,
        ),
        // parse_netmask.
        (
            "-A -t 198.18.0.129:80 -p -M 24",
            "illegal virtual server persistent mask specified (an IPv4 service takes a mask \
             such as 255.255.255.0; a prefix length is for IPv6 services)",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -p -M 255.255.255.256",
            "illegal virtual server persistent mask specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -M 255.255.255.0 -M 255.255.0.0",
            "multiple 'netmask' options specified",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -p -M",
            "option '-M' requires an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
        // commands_v_options.
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -p",
            "Illegal 'persistent' option with the 'add-server' command",
            usage,
        ),
        (
            "-D -t 198.18.0.129:80 -p",
            "Illegal 'persistent' option with the 'delete-service' command",
            usage,
        ),
        (
            "-L -p",
            "Illegal 'persistent' option with the 'list' command",
            usage,
        ),
        (
            "-e -t 198.18.0.129:80 -r 198.19.0.148 -M 255.255.255.0",
            "Illegal 'netmask' option with the 'edit-server' command",
            usage,
        ),
        // Columns in ipvsadm's order: -p and -M come before -w.
        (
            "-A -t 198.18.0.129:80 -w 2 -p",
            "Illegal 'weight' option with the 'add-service' command",
            usage,
        ),
        (
            "-a -t 198.18.0.129:80 -r 198.19.0.148 -w 2 -M 255.255.255.0",
            "Illegal 'netmask' option with the 'add-server' command",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 --persistent-conn",
            "Illegal 'persistent-conn' option with the 'add-service' command",
            usage,
        ),
        (
            "-L --persistent-conn --persistent-conn",
            "multiple 'persistent-conn' options specified",
            usage,
        ),
        (
            "-L --persistent-conn=1",
            "option '--persistent-conn' does not take an argument\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information.",
            EXIT_TRY_HELP,
        ),
        // A port 0 service is legal for ipvsadm when persistent (every port); xvs has no
        // such services.
        (
            "-A -t 198.18.0.129:0 -p",
            "a persistent service on port 0 (every port) is not supported",
            usage,
        ),
        (
            "-E -t 198.18.0.129 -p 60",
            "a persistent service on port 0 (every port) is not supported",
            usage,
        ),
        (
            "-A -t 198.18.0.129:0 -M 255.255.255.0",
            "Zero port specified for non-persistent service",
            usage,
        ),
        (
            "-A -t 198.18.0.129:80 -p 60 extra",
            "unexpected argument extra",
            usage,
        ),
    ];
    for (line, message, code) in cases {
        assert_eq!(error(line), (message.to_string(), *code), "{line}");
    }
    // An empty word is an argument too (it does not start with '-').
    let empty: Vec<String> = ["-A", "-t", "198.18.0.129:80", "-p", ""]
        .map(String::from)
        .into();
    assert_eq!(
        parse(&empty).unwrap_err().to_string(),
        "invalid timeout value `' specified"
    );
}

/// xvs's `--sloppy LIST`: popt's forms of a long option with a required argument, and the
/// order its errors come in.
#[test]
fn sloppy_command_line_forms() {
    let sloppy = |tcp, udp| Command::SetSloppy { tcp, udp };
    let cases = [
        ("--sloppy tcp,udp", sloppy(true, true)),
        ("--sloppy=tcp,udp", sloppy(true, true)),
        ("--sloppy=udp", sloppy(false, true)),
        ("--sloppy=none", sloppy(false, false)),
        // After `--` a word is no option, but it may still be the list: popt takes the next
        // word for a required argument before it looks at it.
        ("--sloppy tcp --", sloppy(true, false)),
    ];
    for (line, expected) in cases {
        assert_eq!(apply(line), expected, "{line}");
    }
    // The list is read as the option is (ipvsadm's parse_options), before the option table
    // is checked (generic_opt_check), wherever the other option comes.
    let bad = "illegal sloppy protocol `x' specified (--sloppy takes tcp, udp, tcp,udp or none)";
    for line in ["--sloppy x -n", "-n --sloppy x"] {
        assert_eq!(error(line), (bad.to_string(), EXIT_USAGE), "{line}");
    }
    // No short form, and no abbreviation of the long one.
    assert_eq!(
        error("--slop tcp"),
        (
            "unknown option '--slop'\n\
             Try `xvsadm -h' or 'xvsadm --help' for more information."
                .to_string(),
            EXIT_TRY_HELP
        )
    );
}

#[test]
fn control_option_is_taken_out() {
    let mut a = args("--control /tmp/x.sock -Ln");
    assert_eq!(
        take_control_option(&mut a).unwrap(),
        Some(PathBuf::from("/tmp/x.sock"))
    );
    assert_eq!(a, args("-Ln"));
    let mut a = args("-A -t 198.18.0.129:80 --control=/tmp/y.sock -s rr");
    assert_eq!(
        take_control_option(&mut a).unwrap(),
        Some(PathBuf::from("/tmp/y.sock"))
    );
    assert_eq!(a, args("-A -t 198.18.0.129:80 -s rr"));
    let mut a = args("-Ln");
    assert_eq!(take_control_option(&mut a).unwrap(), None);
    assert!(take_control_option(&mut args("-L --control")).is_err());
    assert!(take_control_option(&mut args("--control a --control b -L")).is_err());
}
