//! IPv6: ipvsadm's address forms on the command line, its refusals, and its listings of IPv6
//! services byte for byte (ipvsadm 1.31's printf formats, which do not cut IPv6 names to their
//! column). `-S` and `-R` of IPv6 services are in `save.rs`.

use super::*;
use crate::protocol::{ConnectionInfo, ConnectionsReply, Rates};

const V6: &str = "2001:2::129";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn svc6(proto: Protocol, addr: &str, port: u16) -> ServiceKey {
    ServiceKey {
        proto,
        addr: ip(addr),
        port,
    }
}

fn real6(addr: &str, port: u16) -> RealKey {
    RealKey {
        addr: ip(addr),
        port,
    }
}

fn add_service(service: ServiceKey, persistent: u32, netmask: Netmask) -> Command {
    Command::AddService {
        service,
        scheduler: Some("wlc".into()),
        sched_flags: Some(vec![]),
        persistent: Some(persistent),
        netmask: Some(netmask),
    }
}

fn add_real(service: ServiceKey, real: RealKey, forward: Forward, weight: u32) -> Command {
    Command::AddReal {
        service,
        real,
        weight: Some(weight),
        forward: Some(forward),
        tunnel: (forward == Forward::Tunnel).then(TunnelSpec::default),
        upper_threshold: Some(0),
        lower_threshold: Some(0),
    }
}

/// Every form ipvsadm's `parse_service` takes for IPv6, on each option that takes an address.
#[test]
fn ipv6_address_forms() {
    let tcp = svc6(Protocol::Tcp, V6, 80);
    let prefix128 = Netmask::PrefixLen(128);
    let cases = [
        // [ADDR]:PORT; the default granularity of an IPv6 service is 128.
        ("-A -t [2001:2::129]:80", add_service(tcp, 0, prefix128)),
        (
            "-A --tcp-service [2001:2::129]:80",
            add_service(tcp, 0, prefix128),
        ),
        (
            "-A --tcp-service=[2001:2::129]:80",
            add_service(tcp, 0, prefix128),
        ),
        ("-A -t[2001:2::129]:80", add_service(tcp, 0, prefix128)),
        // inet_pton reads any spelling; listings print the compressed one.
        (
            "-A -t [2001:0002:0000:0000:0000:0000:0000:0129]:80",
            add_service(tcp, 0, prefix128),
        ),
        (
            "-A -u [2001:2::ABCD]:53",
            add_service(svc6(Protocol::Udp, "2001:2::abcd", 53), 0, prefix128),
        ),
        // -M: a prefix length, whatever the options' order.
        (
            "-A -t [2001:2::129]:80 -p 600 -M 64",
            add_service(tcp, 600, Netmask::PrefixLen(64)),
        ),
        (
            "-A -M 48 -p 600 -t [2001:2::129]:80",
            add_service(tcp, 600, Netmask::PrefixLen(48)),
        ),
        (
            "-A -t [2001:2::129]:80 -p 1 -M 1",
            add_service(tcp, 1, Netmask::PrefixLen(1)),
        ),
        (
            "-A -t [2001:2::129]:80 -p -M 128",
            add_service(tcp, 360, prefix128),
        ),
        // Real servers: [ADDR]:PORT, or the address alone (the service's port).
        (
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::11]:8080 -m",
            add_real(tcp, real6("2001:2:0:1::11", 8080), Forward::Masq, 1),
        ),
        (
            "-a -t [2001:2::129]:80 -r 2001:2:0:1::11 -m -w 3",
            add_real(tcp, real6("2001:2:0:1::11", 80), Forward::Masq, 3),
        ),
        (
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::11]:8080 -g",
            add_real(tcp, real6("2001:2:0:1::11", 80), Forward::Route, 1),
        ),
        (
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::11]:8080 --fullnat",
            add_real(tcp, real6("2001:2:0:1::11", 8080), Forward::FullNat, 1),
        ),
        // Tunnelling allows a real server of the other family, both ways.
        (
            "-a -t 198.18.0.129:80 -r [2001:2:0:1::21]:80 -i",
            add_real(
                svc(Protocol::Tcp, VIP, 80),
                real6("2001:2:0:1::21", 80),
                Forward::Tunnel,
                1,
            ),
        ),
        (
            "-a -t [2001:2::129]:80 -r 198.19.0.21 -i",
            add_real(tcp, real([198, 19, 0, 21], 80), Forward::Tunnel, 1),
        ),
        (
            "-d -t [2001:2::129]:80 -r [2001:2:0:1::11]:80",
            Command::DelReal {
                service: tcp,
                real: real6("2001:2:0:1::11", 80),
            },
        ),
        // ipvsadm's kernel check is for adding and editing only: -d of the other family
        // is sent (and finds nothing).
        (
            "-d -t [2001:2::129]:80 -r 198.19.0.21",
            Command::DelReal {
                service: tcp,
                real: real([198, 19, 0, 21], 80),
            },
        ),
        (
            "-D -t [2001:2::129]:80",
            Command::DelService { service: tcp },
        ),
        (
            "-Z -u [2001:2::129]:53",
            Command::Zero {
                service: Some(svc6(Protocol::Udp, V6, 53)),
            },
        ),
        // DPVS's -z: the address alone.
        (
            "-P -z 2001:2:0:1::160 -t [2001:2::129]:80",
            Command::AddLaddr {
                service: tcp,
                addr: ip("2001:2:0:1::160"),
            },
        ),
        (
            "-Q -t [2001:2::129]:80 -z 2001:2:0:1::160",
            Command::DelLaddr {
                service: tcp,
                addr: ip("2001:2:0:1::160"),
            },
        ),
    ];
    for (line, command) in cases {
        assert_eq!(apply(line), command, "{line}");
    }
    // -e of the other family with -i.
    assert!(matches!(
        apply("-e -t [2001:2::129]:80 -r 198.19.0.21 -i -w 2"),
        Command::EditReal { real, .. } if real == super::real([198, 19, 0, 21], 80)
    ));
    // Listings of one service.
    assert_eq!(list("-Ln -t [2001:2::129]:80").service, Some(tcp));
    match parse(&args("-G -t [2001:2::129]:80")) {
        Ok(Invocation::Laddrs(opts)) => assert_eq!(opts.service, Some(tcp)),
        other => panic!("{other:?}"),
    }
    // The address alone has no port: a service on port 0, persistent, is xvs's refusal.
    assert_eq!(
        error("-A -t 2001:2::129 -p"),
        (
            "a persistent service on port 0 (every port) is not supported".into(),
            EXIT_USAGE
        )
    );
}

/// What ipvsadm refuses (and what xvsadm refuses where ipvsadm misreads), each with its reason.
#[test]
fn bad_ipv6_command_lines() {
    let usage = EXIT_USAGE;
    let cases: &[(&str, &str)] = &[
        // parse_service: brackets need `]:PORT`.
        (
            "-A -t [2001:2::129]",
            "illegal virtual server address[:port] specified (`[2001:2::129]': a bracketed \
             IPv6 address takes a port, [ADDRESS]:PORT; write the address alone for none)",
        ),
        (
            "-a -t [2001:2::129]:80 -r [2001:2:0:1::11] -m",
            "illegal real server address[:port] specified (`[2001:2:0:1::11]': a bracketed \
             IPv6 address takes a port, [ADDRESS]:PORT; write the address alone for none)",
        ),
        (
            "-A -t [2001:2::129:80",
            "illegal virtual server address[:port] specified (no `]' closes the IPv6 address \
             of `[2001:2::129:80')",
        ),
        (
            "-A -t [2001:2::129]80",
            "illegal virtual server address[:port] specified (`[2001:2::129]80': a `:' and \
             the port follow the `]')",
        ),
        (
            "-A -t [2001:2::129]:",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t [2001:2::129]:65536",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t [2001:2::129]:http",
            "illegal virtual server address[:port] specified",
        ),
        (
            "-A -t [2001:2::zz]:80",
            "illegal virtual server address[:port] specified (`2001:2::zz' in brackets is not \
             an IPv6 address (an IPv4 address goes without brackets))",
        ),
        // ipvsadm reads this as 198.18.0.129 without a port.
        (
            "-A -t [198.18.0.129]:80",
            "illegal virtual server address[:port] specified (`198.18.0.129' in brackets is \
             not an IPv6 address (an IPv4 address goes without brackets))",
        ),
        ("-A -t []:80", "illegal virtual server address[:port] specified (`' in brackets is not an IPv6 address (an IPv4 address goes without brackets))"),
        (
            "-A -t 2001:2::zz:80",
            "illegal virtual server address[:port] specified",
        ),
        // Without brackets the last group is the address's, not a port.
        (
            "-A -t 2001:2::129:80",
            "Zero port specified for non-persistent service (an IPv6 service's port follows \
             its address in brackets: [ADDRESS]:PORT)",
        ),
        // -M by the service's family.
        (
            "-A -t [2001:2::129]:80 -p -M 255.255.255.0",
            "illegal ipv6 netmask specified (an IPv6 service takes a prefix length, 1..128, \
             not a mask)",
        ),
        (
            "-A -t [2001:2::129]:80 -p -M 0",
            "illegal ipv6 netmask specified (a prefix length, 1..128)",
        ),
        (
            "-A -t [2001:2::129]:80 -p -M 129",
            "illegal ipv6 netmask specified (a prefix length, 1..128)",
        ),
        (
            "-A -t [2001:2::129]:80 -p -M /64",
            "illegal ipv6 netmask specified (a prefix length, 1..128)",
        ),
        (
            "-E -M 64abc -t [2001:2::129]:80 -p",
            "illegal ipv6 netmask specified (a prefix length, 1..128)",
        ),
        (
            "-A -t 198.18.0.129:80 -p -M 64",
            "illegal virtual server persistent mask specified (an IPv4 service takes a mask \
             such as 255.255.255.0; a prefix length is for IPv6 services)",
        ),
        // process_options: "Tunneling allows different address family".
        (
            "-a -t 198.18.0.129:80 -r [2001:2:0:1::11]:80 -m",
            "Different address family is allowed only for tunneling servers",
        ),
        (
            "-a -t [2001:2::129]:80 -r 198.19.0.11",
            "Different address family is allowed only for tunneling servers",
        ),
        (
            "-a -t [2001:2::129]:80 -r 198.19.0.11:8080 --fullnat",
            "Different address family is allowed only for tunneling servers",
        ),
        (
            "-e -t 198.18.0.129:80 -r 2001:2:0:1::11 -w 0",
            "Different address family is allowed only for tunneling servers",
        ),
        // -6 makes a fwmark service IPv6; xvs has none.
        (
            "-A -t [2001:2::129]:80 -6",
            "option '-6' (ipv6) is not supported: it makes a firewall-mark service (-f) IPv6, \
             and xvs has no firewall-mark services; an IPv6 virtual service is given by its \
             address (-t|-u [ADDRESS]:PORT)",
        ),
        (
            "-A -f 1 -6",
            "option '-f' (fwmark-service) is not supported: xvs has no firewall-mark services",
        ),
    ];
    for (line, message) in cases {
        assert_eq!(error(line), (message.to_string(), usage), "{line}");
    }
}

fn info(key: ServiceKey, scheduler: &str, reals: Vec<RealInfo>) -> ServiceInfo {
    ServiceInfo {
        service: key,
        scheduler: scheduler.into(),
        sched_flags: vec![],
        persistent: None,
        netmask: Netmask::default_for(key.addr),
        stats: Counters::default(),
        rates: Rates::default(),
        check: None,
        max_conns: 0,
        local_addrs: Vec::new(),
        reals,
    }
}

fn counters(c: [u64; 5]) -> Counters {
    Counters {
        conns: c[0],
        inpkts: c[1],
        outpkts: c[2],
        inbytes: c[3],
        outbytes: c[4],
    }
}

fn rates(r: [u64; 5]) -> Rates {
    Rates {
        cps: r[0],
        inpps: r[1],
        outpps: r[2],
        inbps: r[3],
        outbps: r[4],
    }
}

fn rinfo(key: RealKey, forward: Forward, weight: u32, active: u64, inactive: u64) -> RealInfo {
    RealInfo {
        real: key,
        forward,
        tunnel: (forward == Forward::Tunnel).then(TunnelSpec::default),
        active_conns: active,
        inactive_conns: inactive,
        ..real_info([0; 4], 0, weight, Counters::default())
    }
}

/// IPv4 and IPv6 services given out of order: a persistent IPv6 one with a /64 granularity,
/// an IPv4 one tunnelling to an IPv4 and an IPv6 real server, and one whose IPv6 names are
/// wider than their columns (and whose counters scale).
fn mixed() -> ListReply {
    let long_svc = svc6(Protocol::Udp, "2001:2:0:ffff:1111:2222:3333:4444", 65535);
    let big = [
        123_456_789,
        12_345_678_901,
        99_999_999,
        123_456_789_012_345,
        5,
    ];
    let big_rates = [100_000_000, 2, 3, 1_000_000_000, 5];
    let mut long = info(
        long_svc,
        "wlc",
        vec![RealInfo {
            stats: counters(big),
            rates: rates(big_rates),
            ..rinfo(
                real6("2001:2:0:1:1111:2222:3333:4444", 65535),
                Forward::Route,
                1,
                0,
                0,
            )
        }],
    );
    long.stats = counters(big);
    long.rates = rates(big_rates);
    let mut web6 = info(
        svc6(Protocol::Tcp, V6, 80),
        "rr",
        vec![
            RealInfo {
                stats: counters([4, 24, 20, 1_720, 2_520]),
                rates: rates([1, 3, 3, 215, 315]),
                ..rinfo(real6("2001:2:0:1::12", 80), Forward::Masq, 1, 2, 1)
            },
            RealInfo {
                stats: counters([3, 18, 15, 1_292, 1_890]),
                rates: rates([0, 3, 2, 215, 315]),
                ..rinfo(real6("2001:2:0:1::11", 80), Forward::Masq, 2, 1, 0)
            },
        ],
    );
    web6.persistent = Some(360);
    web6.netmask = Netmask::PrefixLen(64);
    web6.stats = counters([7, 42, 35, 3_012, 4_410]);
    web6.rates = rates([1, 6, 5, 430, 630]);
    let tunnels = info(
        svc(Protocol::Tcp, VIP, 443),
        "wlc",
        vec![
            rinfo(real6("2001:2:0:1::21", 443), Forward::Tunnel, 1, 0, 0),
            rinfo(real([198, 19, 0, 137], 443), Forward::Tunnel, 1, 0, 0),
        ],
    );
    let web4 = info(
        svc(Protocol::Tcp, VIP, 80),
        "rr",
        vec![rinfo(real([198, 19, 0, 148], 80), Forward::Masq, 1, 0, 0)],
    );
    ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![long, web6, tunnels, web4],
    }
}

// ipvsadm sorts IPv4 services before IPv6 ones (ipvs_cmp_services compares the family
// before the protocol), cuts IPv4 names to 33 (service) and 28 (real server) characters and
// IPv6 ones not at all: "%-33s" and "%-28s" only pad them.
const LN: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  198.18.0.129:80 rr
  -> 198.19.0.148:80              Masq    1      0          0         
TCP  198.18.0.129:443 wlc
  -> 198.19.0.137:443             Tunnel  1      0          0         
  -> [2001:2:0:1::21]:443         Tunnel  1      0          0         
TCP  [2001:2::129]:80 rr persistent 360 mask 64
  -> [2001:2:0:1::11]:80          Masq    2      1          0         
  -> [2001:2:0:1::12]:80          Masq    1      2          1         
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535 wlc
  -> [2001:2:0:1:1111:2222:3333:4444]:65535 Route   1      0          0         
";

const STATS: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.129:80                     0        0        0        0        0
  -> 198.19.0.148:80                     0        0        0        0        0
TCP  198.18.0.129:443                    0        0        0        0        0
  -> 198.19.0.137:443                    0        0        0        0        0
  -> [2001:2:0:1::21]:443                0        0        0        0        0
TCP  [2001:2::129]:80                    7       42       35     3012     4410
  -> [2001:2:0:1::11]:80                 3       18       15     1292     1890
  -> [2001:2:0:1::12]:80                 4       24       20     1720     2520
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535  123456K   12345M 99999999     123T        5
  -> [2001:2:0:1:1111:2222:3333:4444]:65535  123456K   12345M 99999999     123T        5
";

const STATS_EXACT: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  198.18.0.129:80                     0        0        0        0        0
  -> 198.19.0.148:80                     0        0        0        0        0
TCP  198.18.0.129:443                    0        0        0        0        0
  -> 198.19.0.137:443                    0        0        0        0        0
  -> [2001:2:0:1::21]:443                0        0        0        0        0
TCP  [2001:2::129]:80                    7       42       35     3012     4410
  -> [2001:2:0:1::11]:80                 3       18       15     1292     1890
  -> [2001:2:0:1::12]:80                 4       24       20     1720     2520
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535 123456789 12345678901 99999999 123456789012345        5
  -> [2001:2:0:1:1111:2222:3333:4444]:65535 123456789 12345678901 99999999 123456789012345        5
";

// The real servers' first three rates are "%8llu", never scaled.
const RATE: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
TCP  198.18.0.129:80                     0        0        0        0        0
  -> 198.19.0.148:80                     0        0        0        0        0
TCP  198.18.0.129:443                    0        0        0        0        0
  -> 198.19.0.137:443                    0        0        0        0        0
  -> [2001:2:0:1::21]:443                0        0        0        0        0
TCP  [2001:2::129]:80                    1        6        5      430      630
  -> [2001:2:0:1::11]:80                 0        3        2      215      315
  -> [2001:2:0:1::12]:80                 1        3        3      215      315
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535  100000K        2        3    1000M        5
  -> [2001:2:0:1:1111:2222:3333:4444]:65535 100000000        2        3    1000M        5
";

const PERSISTENT_CONN: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 rr
  -> 198.19.0.148:80              1         0           0          0         
TCP  198.18.0.129:443 wlc
  -> 198.19.0.137:443             1         0           0          0         
  -> [2001:2:0:1::21]:443         1         0           0          0         
TCP  [2001:2::129]:80 rr persistent 360 mask 64
  -> [2001:2:0:1::11]:80          2         0           1          0         
  -> [2001:2:0:1::12]:80          1         0           2          1         
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535 wlc
  -> [2001:2:0:1:1111:2222:3333:4444]:65535 1         0           0          0         
";

const THRESHOLDS: &str = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
TCP  198.18.0.129:80 rr
  -> 198.19.0.148:80              0          0          0          0         
TCP  198.18.0.129:443 wlc
  -> 198.19.0.137:443             0          0          0          0         
  -> [2001:2:0:1::21]:443         0          0          0          0         
TCP  [2001:2::129]:80 rr persistent 360 mask 64
  -> [2001:2:0:1::11]:80          0          0          1          0         
  -> [2001:2:0:1::12]:80          0          0          2          1         
UDP  [2001:2:0:ffff:1111:2222:3333:4444]:65535 wlc
  -> [2001:2:0:1:1111:2222:3333:4444]:65535 0          0          0          0         
";

#[test]
fn golden_ipv6_listings() {
    let reply = mixed();
    let cases = [
        ("-Ln", LN),
        ("-L", LN),
        ("-Ln --stats", STATS),
        ("-Ln --stats --exact", STATS_EXACT),
        ("-Ln --rate", RATE),
        ("-Ln --persistent-conn", PERSISTENT_CONN),
        ("-Ln --thresholds", THRESHOLDS),
    ];
    for (line, expected) in cases {
        assert_eq!(
            format_list(&reply, &list(line)).unwrap(),
            expected,
            "{line}"
        );
    }
    // One service: no header.
    assert_eq!(
        format_list(&reply, &list("-Ln -t [2001:2::129]:80")).unwrap(),
        "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  [2001:2::129]:80 rr persistent 360 mask 64
  -> [2001:2:0:1::11]:80          Masq    2      1          0         
  -> [2001:2:0:1::12]:80          Masq    1      2          1         
"
    );
    assert_eq!(
        format_list(&reply, &list("-Ln -t [2001:2::130]:80"))
            .unwrap_err()
            .to_string(),
        "No such service"
    );
    // A persistent IPv6 service with the default /128 prints no mask (as 255.255.255.255
    // prints none for IPv4).
    let mut one = mixed();
    one.services[1].netmask = Netmask::PrefixLen(128);
    let text = format_list(&one, &list("-Ln")).unwrap();
    assert!(
        text.contains("\nTCP  [2001:2::129]:80 rr persistent 360\n"),
        "{text}"
    );
    // --nosort: the daemon's order of services and real servers.
    let text = format_list(&reply, &list("-Ln --nosort")).unwrap();
    let names: Vec<&str> = text
        .lines()
        .skip(3)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "[2001:2:0:ffff:1111:2222:3333:4444]:65535",
            "[2001:2:0:1:1111:2222:3333:4444]:65535",
            "[2001:2::129]:80",
            "[2001:2:0:1::12]:80",
            "[2001:2:0:1::11]:80",
            "198.18.0.129:443",
            "[2001:2:0:1::21]:443",
            "198.19.0.137:443",
            "198.18.0.129:80",
            "198.19.0.148:80",
        ]
    );
}

/// `--health`'s service and real server lines take the same names.
#[test]
fn ipv6_health_listing() {
    let reply = mixed();
    let text = format_health(&reply, &list("-Ln -t [2001:2::129]:80")).unwrap();
    assert!(text.contains("\nTCP  [2001:2::129]:80 none\n"), "{text}");
    assert!(
        text.contains("\n  -> [2001:2:0:1::11]:80          -\n"),
        "{text}"
    );
}

#[allow(clippy::too_many_arguments)]
fn conn6(
    proto: Protocol,
    state: &str,
    expires_s: u64,
    client: (&str, u16),
    vip: (&str, u16),
    real: (&str, u16),
    local: Option<(&str, u16)>,
) -> ConnectionInfo {
    ConnectionInfo {
        proto,
        state: state.into(),
        expires_ms: expires_s * 1000 + 999,
        client: ip(client.0),
        client_port: client.1,
        vip: ip(vip.0),
        vport: vip.1,
        real: ip(real.0),
        rport: real.1,
        laddr: local.map(|l| ip(l.0)),
        lport: local.map(|l| l.1),
    }
}

/// `-Lnc`: "%-3s %-6s %-11s %-18s %-18s %s\n", each name from addrport_to_anyname (an IPv6
/// one in brackets, wider than its column).
#[test]
fn golden_ipv6_connections() {
    let reply = ConnectionsReply {
        connections: vec![
            conn6(
                Protocol::Udp,
                "UDP",
                299,
                ("2001:2:1:ffff:1111:2222:3333:4444", 65535),
                ("2001:2:0:ffff:1111:2222:3333:4444", 65535),
                ("2001:2:0:1:1111:2222:3333:4444", 65535),
                None,
            ),
            conn6(
                Protocol::Tcp,
                "SYN_RECV",
                59,
                ("2001:2:1::8", 40002),
                (V6, 80),
                ("2001:2:0:1::12", 80),
                None,
            ),
            conn6(
                Protocol::Tcp,
                "ESTABLISHED",
                899,
                ("2001:2:1::7", 40000),
                (V6, 80),
                ("2001:2:0:1::11", 80),
                None,
            ),
            // An IPv4 service tunnelling to an IPv6 real server.
            conn6(
                Protocol::Tcp,
                "ESTABLISHED",
                899,
                ("198.18.1.7", 40001),
                ("198.18.0.129", 443),
                ("2001:2:0:1::21", 443),
                None,
            ),
        ],
        workers_missing: 0,
        truncated: false,
    };
    assert_eq!(
        format_connections(&reply, &list("-Ln")),
        "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 198.18.1.7:40001   198.18.0.129:443   [2001:2:0:1::21]:443
TCP 14:59  ESTABLISHED [2001:2:1::7]:40000 [2001:2::129]:80   [2001:2:0:1::11]:80
TCP 00:59  SYN_RECV    [2001:2:1::8]:40002 [2001:2::129]:80   [2001:2:0:1::12]:80
UDP 04:59  UDP         [2001:2:1:ffff:1111:2222:3333:4444]:65535 [2001:2:0:ffff:1111:2222:3333:4444]:65535 [2001:2:0:1:1111:2222:3333:4444]:65535
"
    );

    // FullNAT's local column (DPVS's "%-18s" before the destination).
    let fullnat = ConnectionsReply {
        connections: vec![
            conn6(
                Protocol::Tcp,
                "ESTABLISHED",
                899,
                ("2001:2:1::7", 40000),
                (V6, 80),
                ("2001:2:0:1::13", 8080),
                Some(("2001:2:0:1::160", 1025)),
            ),
            conn6(
                Protocol::Tcp,
                "ESTABLISHED",
                899,
                ("2001:2:1::8", 40002),
                (V6, 80),
                ("2001:2:0:1::11", 80),
                None,
            ),
        ],
        workers_missing: 0,
        truncated: false,
    };
    assert_eq!(
        format_connections(&fullnat, &list("-Ln")),
        "\
IPVS connection entries
pro expire state       source             virtual            local              destination
TCP 14:59  ESTABLISHED [2001:2:1::8]:40002 [2001:2::129]:80   [2001:2:1::8]:40002 [2001:2:0:1::11]:80
TCP 14:59  ESTABLISHED [2001:2:1::7]:40000 [2001:2::129]:80   [2001:2:0:1::160]:1025 [2001:2:0:1::13]:8080
"
    );
}

/// DPVS's `--get-laddr`: the service as `[ADDR]:PORT` ("%-20s"), a local address alone (its
/// `inet_ntop`, "%-20s").
#[test]
fn golden_ipv6_laddrs() {
    let mut reply = mixed();
    reply.services[1].local_addrs = vec![ip("2001:2:0:1::160"), ip("2001:2:0:1::161")];
    let conns = ConnectionsReply {
        connections: vec![conn6(
            Protocol::Tcp,
            "ESTABLISHED",
            899,
            ("2001:2:1::7", 40000),
            (V6, 80),
            ("2001:2:0:1::13", 8080),
            Some(("2001:2:0:1::161", 1025)),
        )],
        workers_missing: 0,
        truncated: false,
    };
    let opts = match parse(&args("-G -t [2001:2::129]:80")) {
        Ok(Invocation::Laddrs(opts)) => opts,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        format_laddrs(&reply, &conns, &opts).unwrap(),
        "\
VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     
[2001:2::129]:80     2        
                              2001:2:0:1::160      0          0         
                              2001:2:0:1::161      0          1         
"
    );
}
