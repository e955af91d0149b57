//! Listings, byte for byte.

use super::*;
use crate::ipvsadm::format::largenum;
use crate::protocol::{CheckKind, CheckSpec, HealthState, Rates};

/// design.md shows `ipvsadm -Ln` with trailing blanks trimmed; real ipvsadm pads every
/// real-server line ("%-10u\n" leaves the InActConn column 10 wide), and so does xvsadm:
/// each `->` line below ends in nine spaces after the last "0".
#[test]
fn golden_seed_listing() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.137:80              Masq    1      0          0         
  -> 198.19.0.148:80              Masq    1      0          0         
";
    let opts = list("-Ln");
    assert_eq!(format_list(&seed(), &opts).unwrap(), expected);
    // Without -n the output is the same (no name lookups).
    assert_eq!(format_list(&seed(), &list("-L")).unwrap(), expected);
    // design.md's own text, trailing blanks trimmed.
    let trimmed: Vec<_> = expected.lines().map(str::trim_end).collect();
    assert_eq!(
        trimmed[4],
        "  -> 198.19.0.137:80              Masq    1      0          0"
    );
}

#[test]
fn golden_single_service_and_nosort() {
    // list_service prints no version header.
    let expected = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.148:80              Masq    1      0          0         
  -> 198.19.0.137:80              Masq    1      0          0         
";
    let opts = list("-Ln --nosort -t 198.18.0.129:80");
    assert_eq!(format_list(&seed(), &opts).unwrap(), expected);
    let missing = list("-Ln -t 198.18.0.129:81");
    assert_eq!(
        format_list(&seed(), &missing).unwrap_err().to_string(),
        "No such service"
    );
}

#[test]
fn golden_stats() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.129:80                    11       66       55     4763     6919
  -> 198.19.0.137:80                     5       30       25     2165     3085
  -> 198.19.0.148:80                     6       36       30     2598     3834
";
    assert_eq!(
        format_list(&seed(), &list("-Ln --stats")).unwrap(),
        expected
    );
}

#[test]
fn golden_sorting_and_widths() {
    let counters = Counters {
        conns: 99_999_999,
        inpkts: 123_456_789,
        outpkts: 12_345_678_901,
        inbytes: 12_345_678_901_234,
        outbytes: 123_456_789_012_345,
    };
    let reply = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![
            ServiceInfo {
                service: svc(Protocol::Udp, [10, 0, 0, 1], 53),
                scheduler: "wlc".into(),
                sched_flags: vec![],
                persistent: None,
                netmask: DEFAULT_NETMASK.into(),
                stats: counters,
                rates: Default::default(),
                check: None,
                max_conns: 0,
                local_addrs: Vec::new(),
                reals: vec![
                    real_info([10, 1, 0, 2], 53, 65535, Counters::default()),
                    real_info([10, 1, 0, 1], 5353, 0, Counters::default()),
                    real_info([10, 1, 0, 1], 53, 2, Counters::default()),
                ],
            },
            ServiceInfo {
                service: svc(Protocol::Tcp, [255, 255, 255, 254], 65535),
                scheduler: "rr".into(),
                sched_flags: vec![],
                persistent: None,
                netmask: DEFAULT_NETMASK.into(),
                stats: Counters::default(),
                rates: Default::default(),
                check: None,
                max_conns: 0,
                local_addrs: Vec::new(),
                reals: vec![],
            },
            ServiceInfo {
                service: svc(Protocol::Tcp, [10, 0, 0, 1], 443),
                scheduler: "rr".into(),
                sched_flags: vec![],
                persistent: None,
                netmask: DEFAULT_NETMASK.into(),
                stats: Counters::default(),
                rates: Default::default(),
                check: None,
                max_conns: 0,
                local_addrs: Vec::new(),
                reals: vec![],
            },
        ],
    };
    let plain = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.1:443 rr
TCP  255.255.255.254:65535 rr
UDP  10.0.0.1:53 wlc
  -> 10.1.0.1:53                  Masq    2      0          0         
  -> 10.1.0.1:5353                Masq    0      0          0         
  -> 10.1.0.2:53                  Masq    65535  0          0         
";
    assert_eq!(format_list(&reply, &list("-Ln")).unwrap(), plain);

    let stats = list("-Ln --stats -u 10.0.0.1:53");
    let out = format_list(&reply, &stats).unwrap();
    let line = out.lines().nth(2).unwrap();
    assert_eq!(
        line,
        "UDP  10.0.0.1:53                  99999999  123456K   12345M   12345G     123T"
    );
    let exact = list("-Ln --stats --exact -u 10.0.0.1:53");
    let out = format_list(&reply, &exact).unwrap();
    let line = out.lines().nth(2).unwrap();
    assert_eq!(
        line,
        "UDP  10.0.0.1:53                  99999999 123456789 12345678901 \
         12345678901234 123456789012345"
    );
}

#[test]
fn golden_sched_flags_listing() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.137:80              Masq    1      3          7         
  -> 198.19.0.148:80              Masq    1      2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port)
UDP  198.18.0.129:53 rr (flag-1)
";
    assert_eq!(format_list(&flagged(), &list("-Ln")).unwrap(), expected);
    // --stats prints no scheduler, so no flags either.
    let stats = format_list(&flagged(), &list("-Ln --stats")).unwrap();
    assert_eq!(
        stats.lines().nth(3).unwrap(),
        "TCP  198.18.0.129:80                    11       66       55     4763     6919"
    );
}

#[test]
fn golden_thresholds_listing() {
    // "%-33s %-10s %-10s %-10s %-10s\n": the title ends in a blank ("InActConn" is 9
    // wide), as every threshold row does when its last number is shorter than 10.
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.137:80              0          0          3          7         
  -> 198.19.0.148:80              10000      100        2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port)
UDP  198.18.0.129:53 rr (flag-1)
";
    assert_eq!(
        format_list(&flagged(), &list("-Ln --thresholds")).unwrap(),
        expected
    );
    // --exact changes nothing here; --stats wins over --thresholds, as in print_title.
    assert_eq!(
        format_list(&flagged(), &list("-Ln --thresholds --exact")).unwrap(),
        expected
    );
    assert_eq!(
        format_list(&flagged(), &list("-Ln --thresholds --stats")).unwrap(),
        format_list(&flagged(), &list("-Ln --stats")).unwrap()
    );
    // One service: no header; --nosort keeps the daemon's order.
    let one = "\
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port)
  -> 198.19.0.148:80              10000      100        2147483647 4294967295
  -> 198.19.0.137:80              0          0          3          7         
";
    assert_eq!(
        format_list(
            &flagged(),
            &list("-Ln --thresholds --nosort -t 198.18.0.129:80")
        )
        .unwrap(),
        one
    );
}

/// Output of a real `ipvsadm -Ln --thresholds`, as quoted (trailing blanks trimmed) in
/// projects that parse it.
#[test]
fn thresholds_listing_matches_real_ipvsadm_output() {
    let published = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
TCP  172.25.116.175:80 rr
  -> 192.168.1.180:80             0          0          0          0
  -> 192.168.1.181:80             10000      0          0          0
  -> 192.168.1.182:80             10000      100        0          0
";
    let with = |last, upper, lower| RealInfo {
        upper_threshold: upper,
        lower_threshold: lower,
        ..real_info([192, 168, 1, last], 80, 1, Counters::default())
    };
    let reply = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![ServiceInfo {
            service: svc(Protocol::Tcp, [172, 25, 116, 175], 80),
            scheduler: "rr".into(),
            sched_flags: vec![],
            persistent: None,
            netmask: DEFAULT_NETMASK.into(),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
            reals: vec![with(182, 10000, 100), with(180, 0, 0), with(181, 10000, 0)],
        }],
    };
    let out = format_list(&reply, &list("-Ln --thresholds")).unwrap();
    let trimmed: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(trimmed, published.lines().collect::<Vec<_>>());
}

#[test]
fn golden_persistent_listing() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.137:80              Masq    1      3          7         
  -> 198.19.0.148:80              Masq    65535  2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0
UDP  198.18.0.129:53 rr (flag-1) persistent 1 mask 0.0.0.0
UDP  198.18.0.129:123 wlc persistent 2678400 mask 255.255.128.0
";
    assert_eq!(format_list(&persistent(), &list("-Ln")).unwrap(), expected);
    // --thresholds prints the same service lines; --stats none of it.
    let thresholds = format_list(&persistent(), &list("-Ln --thresholds")).unwrap();
    assert_eq!(
        thresholds.lines().nth(6).unwrap(),
        "TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0"
    );
    let stats = format_list(&persistent(), &list("-Ln --stats")).unwrap();
    assert_eq!(
        stats.lines().nth(3).unwrap(),
        "TCP  198.18.0.129:80                    11       66       55     4763     6919"
    );
    // A service that is not persistent prints neither, whatever its mask says.
    let mut plain = persistent();
    plain.services[1].persistent = None;
    let out = format_list(&plain, &list("-Ln -t 198.18.0.129:443")).unwrap();
    assert_eq!(
        out.lines().nth(2).unwrap(),
        "TCP  198.18.0.129:443 mh (mh-port)"
    );
}

#[test]
fn golden_persistent_conn_listing() {
    // "%-33s %-9s %-11s %-10s %-10s\n": the title ends in a blank, as in --thresholds;
    // the real servers "  -> %-28s %-9u %-11u %-10u %-10u\n".
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.137:80              1         0           3          7         
  -> 198.19.0.148:80              65535     12          2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0
UDP  198.18.0.129:53 rr (flag-1) persistent 1 mask 0.0.0.0
UDP  198.18.0.129:123 wlc persistent 2678400 mask 255.255.128.0
";
    assert_eq!(
        format_list(&persistent(), &list("-Ln --persistent-conn")).unwrap(),
        expected
    );
    // print_title's order: --stats, then --thresholds, then --persistent-conn.
    assert_eq!(
        format_list(&persistent(), &list("-Ln --persistent-conn --thresholds")).unwrap(),
        format_list(&persistent(), &list("-Ln --thresholds")).unwrap()
    );
    assert_eq!(
        format_list(&persistent(), &list("-Ln --persistent-conn --stats")).unwrap(),
        format_list(&persistent(), &list("-Ln --stats")).unwrap()
    );
    // One service, the daemon's order.
    let one = "\
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.148:80              65535     12          2147483647 4294967295
  -> 198.19.0.137:80              1         0           3          7         
";
    assert_eq!(
        format_list(
            &persistent(),
            &list("-Ln --persistent-conn --nosort -t 198.18.0.129:80")
        )
        .unwrap(),
        one
    );
}

/// Output of a real `ipvsadm -Ln --persistent-conn` after `ipvsadm -A -t 10.10.10.11:80 -p
/// 120 -s rr` and two `-a ... -m`, as published (trailing blanks trimmed).
#[test]
fn persistent_conn_listing_matches_real_ipvsadm_output() {
    let published = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn
  -> RemoteAddress:Port
TCP  10.10.10.11:80 rr persistent 120
  -> 192.168.40.23:80             1         0           0          0
  -> 192.168.40.24:80             1         1           0          2
";
    let reply = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![ServiceInfo {
            service: svc(Protocol::Tcp, [10, 10, 10, 11], 80),
            scheduler: "rr".into(),
            sched_flags: vec![],
            persistent: Some(120),
            netmask: DEFAULT_NETMASK.into(),
            stats: Counters::default(),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
            reals: vec![
                RealInfo {
                    persist_conns: 1,
                    inactive_conns: 2,
                    ..real_info([192, 168, 40, 24], 80, 1, Counters::default())
                },
                real_info([192, 168, 40, 23], 80, 1, Counters::default()),
            ],
        }],
    };
    let out = format_list(&reply, &list("-Ln --persistent-conn")).unwrap();
    let trimmed: Vec<&str> = out.lines().map(str::trim_end).collect();
    assert_eq!(trimmed, published.lines().collect::<Vec<_>>());
}

#[test]
fn largenum_thresholds() {
    let cases: &[(u64, &str, &str)] = &[
        (0, "        0", "        0"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (999_999_999, "  999999K", " 999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (99_999_999_999, "   99999M", " 99999999999"),
        (100_000_000_000, "     100G", " 100000000000"),
        (100_000_000_000_000, "     100T", " 100000000000000"),
    ];
    for (n, scaled, exact) in cases {
        let mut out = String::new();
        largenum(&mut out, *n, false);
        assert_eq!(out, *scaled, "{n}");
        out.clear();
        largenum(&mut out, *n, true);
        assert_eq!(out, *exact, "{n} exact");
    }
}

/// The seed with rates: .137's CPS is past 8 digits, which `%8llu` does not scale.
fn with_rates() -> ListReply {
    let mut reply = seed();
    let rates = |cps, inpps, outpps, inbps, outbps| Rates {
        cps,
        inpps,
        outpps,
        inbps,
        outbps,
    };
    reply.services[0].rates = rates(12, 345, 300, 45_678, 123_456_789);
    reply.services[0].reals[0].rates = rates(7, 200, 180, 30_000, 100_000_000);
    reply.services[0].reals[1].rates = rates(123_456_789, 5, 4, 999, 100_000_000_000);
    reply
}

#[test]
fn golden_rate_listing() {
    // print_title's FMT_RATE; services "%-33s" and five print_largenum; real servers
    // "  -> %-28s %8llu %8llu %8llu" and two print_largenum.
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.0.129:80                    12      345      300    45678  123456K
  -> 198.19.0.137:80              123456789        5        4      999     100G
  -> 198.19.0.148:80                     7      200      180    30000  100000K
";
    assert_eq!(
        format_list(&with_rates(), &list("-Ln --rate")).unwrap(),
        expected
    );
    let exact = format_list(
        &with_rates(),
        &list("-Ln --rate --exact -t 198.18.0.129:80"),
    )
    .unwrap();
    assert_eq!(
        exact,
        "\
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.0.129:80                    12      345      300    45678 123456789
  -> 198.19.0.137:80              123456789        5        4      999 100000000000
  -> 198.19.0.148:80                     7      200      180    30000 100000000
"
    );
    // print_title's order: --stats before --rate, --rate before --thresholds and
    // --persistent-conn.
    assert_eq!(
        format_list(&with_rates(), &list("-Ln --rate --stats")).unwrap(),
        format_list(&with_rates(), &list("-Ln --stats")).unwrap()
    );
    assert_eq!(
        format_list(&with_rates(), &list("-Ln --rate --thresholds")).unwrap(),
        expected
    );
    assert_eq!(
        format_list(&with_rates(), &list("-Ln --rate --persistent-conn")).unwrap(),
        expected
    );
}

/// A real server a health check holds down shows weight 0 where ipvsadm shows a weight (what
/// keepalived does to a failed server); its configured weight is unchanged.
#[test]
fn golden_listing_with_a_down_server() {
    let mut reply = persistent();
    reply.services[0].check = Some(CheckSpec::new(CheckKind::Tcp));
    reply.services[0].reals[0].health = Some(health(HealthState::Down));
    reply.services[0].reals[1].health = Some(health(HealthState::Up));
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 sh (sh-fallback,sh-port) persistent 360
  -> 198.19.0.137:80              Masq    1      3          7         
  -> 198.19.0.148:80              Masq    0      2147483647 4294967295
TCP  198.18.0.129:443 mh (mh-port) persistent 600 mask 255.255.255.0
UDP  198.18.0.129:53 rr (flag-1) persistent 1 mask 0.0.0.0
UDP  198.18.0.129:123 wlc persistent 2678400 mask 255.255.128.0
";
    assert_eq!(format_list(&reply, &list("-Ln")).unwrap(), expected);
    let pc = format_list(&reply, &list("-Ln --persistent-conn")).unwrap();
    assert_eq!(
        pc.lines().nth(5).unwrap(),
        "  -> 198.19.0.148:80              0         12          2147483647 4294967295"
    );
    // Up, or no health at all: the configured weight.
    reply.services[0].reals[0].health = Some(health(HealthState::Up));
    assert_eq!(
        format_list(&reply, &list("-Ln")).unwrap(),
        format_list(&persistent(), &list("-Ln")).unwrap()
    );
}

/// DPVS's FullNAT: `fwd_name` says "FullNat", which fills the 7 columns of "%-7s"; the real
/// server keeps its own port. Local addresses are `--get-laddr`'s, not `-L`'s.
#[test]
fn golden_fullnat_listing() {
    let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.137:80              Masq    1      0          0         
  -> 198.19.0.148:80              Masq    1      0          0         
  -> 198.19.1.5:8080              FullNat 2      2          1         
UDP  198.18.0.129:53 rr
";
    assert_eq!(format_list(&fullnat(), &list("-Ln")).unwrap(), expected);
    // The other listings have no Forward column; they list the server like any other.
    let stats = format_list(&fullnat(), &list("-Ln --stats")).unwrap();
    assert!(stats.contains(
        "\n  -> 198.19.1.5:8080                     0        0        0        0        0\n"
    ));
    let thresholds = format_list(&fullnat(), &list("-Ln --thresholds")).unwrap();
    assert!(thresholds.contains(
        "\n  -> 198.19.1.5:8080              0          0          2          1         \n"
    ));
}
