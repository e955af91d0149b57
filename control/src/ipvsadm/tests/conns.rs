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
        client: Ipv4Addr::from(client),
        client_port,
        vip: Ipv4Addr::from(VIP),
        vport,
        real: Ipv4Addr::from(real),
        rport,
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
