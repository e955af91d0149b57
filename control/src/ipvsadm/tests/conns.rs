//! `-L --timeout` and `-L -c`, byte for byte.

use super::*;
use crate::protocol::{ConnectionInfo, ConnectionsReply, Timeouts};

#[test]
fn golden_timeouts() {
    // printf("Timeout (tcp tcpfin udp): %d %d %d\n", ...)
    assert_eq!(
        format_timeouts(&Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300
        }),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
    assert_eq!(
        format_timeouts(&Timeouts {
            tcp: 2_678_400,
            tcpfin: 1,
            udp: 0
        }),
        "Timeout (tcp tcpfin udp): 2678400 1 0\n"
    );
}

#[allow(clippy::too_many_arguments)]
fn conn(
    proto: Protocol,
    state: &str,
    expires_ms: u64,
    client: [u8; 4],
    client_port: u16,
    vport: u16,
    real: [u8; 4],
    rport: u16,
) -> ConnectionInfo {
    ConnectionInfo {
        proto,
        state: state.into(),
        expires_ms,
        client: Ipv4Addr::from(client).into(),
        client_port,
        vip: Ipv4Addr::from(VIP).into(),
        vport,
        real: Ipv4Addr::from(real).into(),
        rport,
        laddr: None,
        lport: None,
    }
}

/// In the workers' order: not sorted.
fn conns() -> ConnectionsReply {
    ConnectionsReply {
        connections: vec![
            conn(
                Protocol::Udp,
                "UDP",
                299_999,
                [198, 51, 100, 7],
                5353,
                53,
                [198, 19, 0, 1],
                53,
            ),
            // 14:59.999 left: the kernel prints whole seconds, 899.
            conn(
                Protocol::Tcp,
                "ESTABLISHED",
                899_999,
                [198, 51, 100, 200],
                65535,
                80,
                [198, 19, 0, 148],
                80,
            ),
            conn(
                Protocol::Tcp,
                "TIME_WAIT",
                61_000,
                [198, 51, 100, 7],
                40000,
                80,
                [198, 19, 0, 137],
                80,
            ),
            conn(
                Protocol::Tcp,
                "SYN_RECV",
                999,
                [198, 51, 100, 7],
                40001,
                80,
                [198, 19, 0, 137],
                80,
            ),
            // Over 99 minutes: "%02d" widens.
            conn(
                Protocol::Tcp,
                "CLOSE_WAIT",
                6_000_000,
                [10, 0, 0, 1],
                1024,
                443,
                [198, 19, 0, 137],
                8443,
            ),
        ],
        workers_missing: 0,
        truncated: false,
    }
}

#[test]
fn golden_connections() {
    // "pro expire %-11s %-18s %-18s %s\n", then per entry "%-3s %-6s %-11s %-18s %-18s %s\n".
    let expected = "\
IPVS connection entries
pro expire state       source             virtual            destination
TCP 01:01  TIME_WAIT   198.51.100.7:40000 198.18.0.129:80    198.19.0.137:80
TCP 00:00  SYN_RECV    198.51.100.7:40001 198.18.0.129:80    198.19.0.137:80
TCP 14:59  ESTABLISHED 198.51.100.200:65535 198.18.0.129:80    198.19.0.148:80
TCP 100:00 CLOSE_WAIT  10.0.0.1:1024      198.18.0.129:443   198.19.0.137:8443
UDP 04:59  UDP         198.51.100.7:5353  198.18.0.129:53    198.19.0.1:53
";
    let opts = |line: &str| match parse(&args(line)) {
        Ok(Invocation::Connections(opts)) => opts,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(format_connections(&conns(), &opts("-Lnc")), expected);
    // --sort does nothing (ipvsadm: "a no-op for compatibility"); -n changes nothing either.
    assert_eq!(
        format_connections(&conns(), &opts("-L -c --sort")),
        expected
    );
    // --nosort: the workers' order.
    let nosort = "\
IPVS connection entries
pro expire state       source             virtual            destination
UDP 04:59  UDP         198.51.100.7:5353  198.18.0.129:53    198.19.0.1:53
TCP 14:59  ESTABLISHED 198.51.100.200:65535 198.18.0.129:80    198.19.0.148:80
TCP 01:01  TIME_WAIT   198.51.100.7:40000 198.18.0.129:80    198.19.0.137:80
TCP 00:00  SYN_RECV    198.51.100.7:40001 198.18.0.129:80    198.19.0.137:80
TCP 100:00 CLOSE_WAIT  10.0.0.1:1024      198.18.0.129:443   198.19.0.137:8443
";
    assert_eq!(format_connections(&conns(), &opts("-Lnc --nosort")), nosort);
    // --persistent-conn: the persistence-engine title; entries without an engine stay short.
    let pc = format_connections(&conns(), &opts("-Lnc --persistent-conn"));
    assert_eq!(
        pc.lines().nth(1).unwrap(),
        "pro expire state       source             virtual            destination        \
         pe name          pe_data"
    );
    assert_eq!(
        pc.lines().skip(2).collect::<Vec<_>>(),
        expected.lines().skip(2).collect::<Vec<_>>()
    );
    // No connections: the two title lines.
    let empty = ConnectionsReply {
        connections: vec![],
        workers_missing: 0,
        truncated: false,
    };
    assert_eq!(
        format_connections(&empty, &opts("-Lc")),
        "IPVS connection entries\n\
         pro expire state       source             virtual            destination\n"
    );
    assert!(connections_warnings(&empty).is_empty());
}

#[test]
fn connections_warnings_go_to_stderr() {
    let mut reply = conns();
    reply.workers_missing = 2;
    reply.truncated = true;
    assert_eq!(
        connections_warnings(&reply),
        vec![
            "warning: 2 worker(s) did not answer in time; their connections are not listed"
                .to_string(),
            "warning: a worker has more connections than one listing carries; some are not listed"
                .to_string(),
        ]
    );
    // The listing itself is unchanged.
    let opts = ListOptions::default();
    assert_eq!(
        format_connections(&reply, &opts),
        format_connections(&conns(), &opts)
    );
}

/// `conn` of a FullNAT connection leaving from `laddr:lport`.
fn via(mut c: ConnectionInfo, laddr: [u8; 4], lport: u16) -> ConnectionInfo {
    c.laddr = Some(Ipv4Addr::from(laddr).into());
    c.lport = Some(lport);
    c
}

/// [`fullnat`]'s connections, in the workers' order: three FullNAT ones of TCP :80 (two from
/// .11, one from .10), a masqueraded one of the same service, one from .11 of another
/// service (TCP :443, which `--get-laddr` must not count for :80), and a UDP one.
fn fullnat_conns() -> ConnectionsReply {
    let fullnat_real = [198, 19, 1, 5];
    ConnectionsReply {
        connections: vec![
            conn(
                Protocol::Udp,
                "UDP",
                299_999,
                [198, 51, 100, 7],
                5353,
                53,
                [198, 19, 0, 1],
                53,
            ),
            via(
                conn(
                    Protocol::Tcp,
                    "TIME_WAIT",
                    61_000,
                    [198, 51, 100, 8],
                    40001,
                    80,
                    fullnat_real,
                    8080,
                ),
                [198, 19, 0, 10],
                2048,
            ),
            via(
                conn(
                    Protocol::Tcp,
                    "ESTABLISHED",
                    899_999,
                    [198, 51, 100, 7],
                    40000,
                    80,
                    fullnat_real,
                    8080,
                ),
                [198, 19, 0, 11],
                1029,
            ),
            conn(
                Protocol::Tcp,
                "ESTABLISHED",
                899_999,
                [198, 51, 100, 200],
                65535,
                80,
                [198, 19, 0, 148],
                80,
            ),
            via(
                conn(
                    Protocol::Tcp,
                    "SYN_RECV",
                    999,
                    [198, 51, 100, 9],
                    5000,
                    80,
                    fullnat_real,
                    8080,
                ),
                [198, 19, 0, 11],
                65535,
            ),
            via(
                conn(
                    Protocol::Tcp,
                    "CLOSE_WAIT",
                    6_000_000,
                    [10, 0, 0, 1],
                    1024,
                    443,
                    [198, 19, 0, 137],
                    8443,
                ),
                [198, 19, 0, 11],
                1030,
            ),
        ],
        workers_missing: 0,
        truncated: false,
    }
}

#[test]
fn golden_fullnat_connections() {
    // With a FullNAT entry, DPVS's four addresses, "%-18s" each but the last, under
    // ipvsadm's title with a "local" column; the others show their client as local.
    let expected = "\
IPVS connection entries
pro expire state       source             virtual            local              destination
TCP 14:59  ESTABLISHED 198.51.100.200:65535 198.18.0.129:80    198.51.100.200:65535 198.19.0.148:80
TCP 14:59  ESTABLISHED 198.51.100.7:40000 198.18.0.129:80    198.19.0.11:1029   198.19.1.5:8080
TCP 01:01  TIME_WAIT   198.51.100.8:40001 198.18.0.129:80    198.19.0.10:2048   198.19.1.5:8080
TCP 00:00  SYN_RECV    198.51.100.9:5000  198.18.0.129:80    198.19.0.11:65535  198.19.1.5:8080
TCP 100:00 CLOSE_WAIT  10.0.0.1:1024      198.18.0.129:443   198.19.0.11:1030   198.19.0.137:8443
UDP 04:59  UDP         198.51.100.7:5353  198.18.0.129:53    198.51.100.7:5353  198.19.0.1:53
";
    let opts = |line: &str| match parse(&args(line)) {
        Ok(Invocation::Connections(opts)) => opts,
        other => panic!("{line}: {other:?}"),
    };
    assert_eq!(
        format_connections(&fullnat_conns(), &opts("-Lnc")),
        expected
    );
    // --persistent-conn: the local column in the persistence-engine title too.
    let pc = format_connections(&fullnat_conns(), &opts("-Lnc --persistent-conn"));
    assert_eq!(
        pc.lines().nth(1).unwrap(),
        "pro expire state       source             virtual            local              \
         destination        pe name          pe_data"
    );
    assert_eq!(
        pc.lines().skip(2).collect::<Vec<_>>(),
        expected.lines().skip(2).collect::<Vec<_>>()
    );
    // --nosort: the workers' order, same columns.
    let nosort = format_connections(&fullnat_conns(), &opts("-Lnc --nosort"));
    assert_eq!(
        nosort.lines().nth(2).unwrap(),
        "UDP 04:59  UDP         198.51.100.7:5353  198.18.0.129:53    198.51.100.7:5353  \
         198.19.0.1:53"
    );
    // Without a FullNAT entry in the listing, ipvsadm's layout, byte for byte.
    let mut plain = fullnat_conns();
    plain.connections.iter_mut().for_each(|c| {
        c.laddr = None;
        c.lport = None;
    });
    assert!(format_connections(&plain, &opts("-Lnc"))
        .starts_with("IPVS connection entries\npro expire state       source             virtual            destination\n"));
    assert!(!format_connections(&conns(), &opts("-Lnc")).contains("local"));
}

fn get_laddr(line: &str) -> ListOptions {
    match parse(&args(line)) {
        Ok(Invocation::Laddrs(opts)) => opts,
        other => panic!("{line}: {other:?}"),
    }
}

#[test]
fn golden_get_laddr() {
    // DPVS: title "%-20s %-8s %-20s %-10s %-10s\n" before the first service, each service
    // "%-20s %-8u \n" (VIP:PORT, the number of local addresses, a blank before the newline),
    // each local address "%-20s %-8s %-20s %-10lu %-10u\n" ("", "", LIP, conflicts, conns).
    // Every line but the services' ends in the padding of its last column.
    let expected = "\
VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     
198.18.0.129:80      2        
                              198.19.0.11          0          2         
                              198.19.0.10          0          1         
198.18.0.129:53      1        
                              198.19.0.12          0          0         
";
    let all = format_laddrs(&fullnat(), &fullnat_conns(), &get_laddr("-G")).unwrap();
    assert_eq!(all, expected);
    assert_eq!(
        all.lines().nth(1).unwrap(),
        format!("{:<20} {:<8} ", "198.18.0.129:80", 2)
    );
    // One service: the title and that service; a service without local addresses is listed
    // with TOTAL 0.
    let one = get_laddr("--get-laddr -u 198.18.0.129:53");
    assert_eq!(
        format_laddrs(&fullnat(), &fullnat_conns(), &one).unwrap(),
        expected
            .lines()
            .take(1)
            .chain(expected.lines().skip(4))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let mut reply = fullnat();
    reply.services[1].local_addrs.clear();
    assert_eq!(
        format_laddrs(&reply, &fullnat_conns(), &one).unwrap(),
        "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
         198.18.0.129:53      0        \n"
    );
    // An unknown service: libipvs's "No such service" (xvsadm exits 1).
    let missing = get_laddr("-G -t 198.18.0.129:81");
    assert_eq!(
        format_laddrs(&fullnat(), &fullnat_conns(), &missing)
            .unwrap_err()
            .to_string(),
        "No such service"
    );
    // No services: nothing at all (the title comes with the first service).
    let empty = ListReply {
        conn_tab_size: 4096,
        conn_max: 0,
        sloppy: Default::default(),
        announced: None,
        services: vec![],
    };
    assert_eq!(
        format_laddrs(&empty, &fullnat_conns(), &get_laddr("-G")).unwrap(),
        ""
    );
    // Services without local addresses are listed too, in -L's order (TCP before UDP).
    let seeded = format_laddrs(&seed(), &conns(), &get_laddr("-G")).unwrap();
    assert_eq!(
        seeded,
        "VIP:VPORT            TOTAL    SNAT_IP              CONFLICTS  CONNS     \n\
         198.18.0.129:80      0        \n"
    );
}
