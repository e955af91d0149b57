//! IPv6 services (issue 15) on the seed cluster in both families
//! ([`TopologySpec::dual_stack`]: every address has a twin in 2001:2::/48, 198.19.0.148 is
//! 2001:2:0:1::148): an IPv6 masquerading service beside the seed's IPv4 one, configured with
//! ipvsadm's IPv6 syntax, driven by curl and nginx over IPv6 (round robin, the client's own
//! address seen by the real server, a 1 MiB download intact) and by UDP datagrams.

use anyhow::{ensure, Result};
use std::net::{Ipv6Addr, SocketAddr};
use xvs_control::topology::{self, ipv6_of, TopologySpec};
use xvs_tests::{root_or_skip, udp_exchange, Cluster};

const UDP_PORT: u16 = 5353;
const WEB01: &str = "198.19.0.148 is www.shuyan.com";
const WEB02: &str = "198.19.0.137";

#[test]
fn ipv6_masquerading_beside_ipv4() -> Result<()> {
    if !root_or_skip("ipv6_masquerading_beside_ipv4") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e6nat".into(),
        ..TopologySpec::dual_stack()
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    let (vip6, reals6) = configure6(&cluster)?;
    cluster.configure("-t", 80)?;

    // Round robin over IPv6, web01 first, as the tutorial's 11 curls.
    let answers = (0..11)
        .map(|_| cluster.curl_url(&format!("http://[{vip6}]/")))
        .collect::<Result<Vec<_>>>()?;
    for (i, answer) in answers.iter().enumerate() {
        let want = if i % 2 == 0 { WEB01 } else { WEB02 };
        ensure!(
            answer.trim_end() == want,
            "IPv6 answer {i} of {answers:?} is not {want:?}\nxvsd log:\n{}",
            cluster.director.log()
        );
    }
    // NAT keeps the client's address: the real server sees it.
    let client6 = ipv6_of(cluster.topo.client_addr());
    let peer = cluster.curl_url(&format!("http://[{vip6}]{}", topology::PEER_PATH))?;
    ensure!(
        peer.starts_with(&format!("{client6}:")),
        "the real server saw {peer:?}, not {client6}"
    );
    // Full-sized segments both ways, every checksum right.
    let big = cluster.download_url(&format!("http://[{vip6}]{}", topology::BIG_FILE_PATH))?;
    ensure!(
        big == topology::big_file_bytes(),
        "the 1 MiB IPv6 download differs ({} bytes)",
        big.len()
    );
    // The IPv4 service beside it is untouched.
    cluster.curls_alternate(11)?;

    // UDP over IPv6: each query from a new port is a new connection.
    cluster.start_udp6_responders(UDP_PORT)?;
    let vip6_udp = SocketAddr::from((vip6, UDP_PORT));
    let answers = (0..4)
        .map(|_| udp_exchange(cluster.topo.client_ns(), vip6_udp))
        .collect::<Result<Vec<_>>>()?;
    let want: Vec<String> = (0..4).map(|i| reals6[i % 2].to_string()).collect();
    ensure!(answers == want, "UDP answers {answers:?}, want {want:?}");

    let listing = cluster.xvsadm(&["-Ln", "--stats"])?;
    for line in [
        "TCP  [2001:2::129]:80",
        "  -> [2001:2:0:1::148]:80",
        "  -> [2001:2:0:1::137]:80",
        "UDP  [2001:2::129]:5353",
        "TCP  198.18.0.129:80",
    ] {
        ensure!(listing.contains(line), "no {line:?} in:\n{listing}");
    }
    // Replies came back through the director and were counted (OutPkts of the IPv6 service).
    let out_packets = listing
        .lines()
        .find(|l| l.starts_with("TCP  [2001:2::129]:80"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or("?");
    ensure!(
        out_packets.parse::<u64>().is_ok_and(|n| n > 0),
        "OutPkts {out_packets:?}:\n{listing}"
    );

    // `-Lnc` lists the IPv6 connections beside the IPv4 ones, and the stats count them.
    // Nothing opens a connection in between, so the count taken first is at least the
    // number listed after it.
    let stats = cluster.stats()?;
    let conns = cluster.xvsadm(&["-Lnc"])?;
    let fields = |line: &str| {
        line.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let entries: Vec<Vec<String>> = conns.lines().skip(2).map(fields).collect();
    let client = cluster.topo.client_addr();
    let tcp6 = |real: &Ipv6Addr| {
        entries
            .iter()
            .filter(|e| {
                e[0] == "TCP"
                    && e[3].starts_with(&format!("[{client6}]:"))
                    && e[4] == format!("[{vip6}]:80")
                    && e[5] == format!("[{real}]:80")
            })
            .count()
    };
    let udp6 = entries
        .iter()
        .filter(|e| e[0] == "UDP" && e[4] == format!("[{vip6}]:{UDP_PORT}"))
        .count();
    let tcp4 = entries
        .iter()
        .filter(|e| e[0] == "TCP" && e[3].starts_with(&format!("{client}:")))
        .count();
    ensure!(
        reals6.iter().all(|r| tcp6(r) > 0) && udp6 == 4 && tcp4 > 0,
        "IPv6 connections missing (TCP {:?}, UDP {udp6}, IPv4 TCP {tcp4}):\n{conns}",
        reals6.iter().map(tcp6).collect::<Vec<_>>()
    );
    eprintln!(
        "ipv6_masquerading_beside_ipv4: {} connections listed ({tcp4} IPv4 TCP, {udp6} IPv6 UDP), \
         {} counted",
        entries.len(),
        stats.conn_count
    );
    ensure!(
        stats.conn_count >= entries.len() as u64
            && stats.workers.iter().map(|w| w.conns).sum::<u64>() == stats.conn_count,
        "conn_count {} but {} connections listed:\n{conns}",
        stats.conn_count,
        entries.len()
    );
    Ok(())
}

/// Two queues, so two workers: each IPv6 frame goes to the worker that owns its client
/// endpoint, whichever queue it arrived on (requests on the external side, replies on the
/// internal one).
#[test]
fn ipv6_with_two_workers() -> Result<()> {
    if !root_or_skip("ipv6_with_two_workers") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e6two".into(),
        queues: 2,
        ..TopologySpec::dual_stack()
    };
    let cluster = Cluster::start_spec(&spec, &["--workers", "2"])?;
    let (vip6, _) = configure6(&cluster)?;
    let mut served = Vec::new();
    for _ in 0..20 {
        served.push(cluster.curl_url(&format!("http://[{vip6}]/"))?);
    }
    for page in [WEB01, WEB02] {
        ensure!(
            served.iter().any(|s| s.trim_end() == page),
            "{page:?} never answered: {served:?}"
        );
    }
    let big = cluster.download_url(&format!("http://[{vip6}]{}", topology::BIG_FILE_PATH))?;
    ensure!(
        big == topology::big_file_bytes(),
        "the 1 MiB IPv6 download differs"
    );
    let stats = cluster.stats()?;
    let handed_off: u64 = stats.workers.iter().map(|w| w.handed_off).sum();
    eprintln!("ipv6_with_two_workers: {handed_off} frames handed to their owner worker");
    Ok(())
}

/// `-p 300 -M 64` on an IPv6 service over round robin: every new connection of the client
/// (each curl from a new source port, on whichever worker) reaches the first one's real
/// server, where round robin alone would alternate; `-Ln` shows the persistence.
#[test]
fn ipv6_persistence() -> Result<()> {
    if !root_or_skip("ipv6_persistence") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e6per".into(),
        ..TopologySpec::dual_stack()
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let vip6 = cluster.topo.vip6();
    let service = format!("[{vip6}]:80");
    cluster.xvsadm(&["-A", "-t", &service, "-s", "rr", "-p", "300", "-M", "64"])?;
    for real in cluster.real_addrs().into_iter().map(ipv6_of) {
        let real = format!("[{real}]:80");
        cluster.xvsadm(&["-a", "-t", &service, "-r", &real, "-m"])?;
    }
    let answers = (0..6)
        .map(|_| cluster.curl_url(&format!("http://[{vip6}]/")))
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        [WEB01, WEB02].contains(&answers[0].trim_end()) && answers.iter().all(|a| a == &answers[0]),
        "answers {answers:?} are not all from one real server\nxvsd log:\n{}",
        cluster.director.log()
    );
    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        listing.contains("TCP  [2001:2::129]:80 rr persistent 300 mask 64"),
        "no persistence in:\n{listing}"
    );
    Ok(())
}

/// `-A -t/-u [VIP6]:port -s rr` for port 80 (TCP) and UDP_PORT, each with the two real
/// servers' IPv6 twins masqueraded; returns VIP6 and those addresses.
fn configure6(cluster: &Cluster) -> Result<(Ipv6Addr, Vec<Ipv6Addr>)> {
    let vip6 = cluster.topo.vip6();
    let reals6: Vec<Ipv6Addr> = cluster.real_addrs().into_iter().map(ipv6_of).collect();
    for (flag, port) in [("-t", 80), ("-u", UDP_PORT)] {
        let service = format!("[{vip6}]:{port}");
        cluster.xvsadm(&["-A", flag, &service, "-s", "rr"])?;
        for real in &reals6 {
            let real = format!("[{real}]:{port}");
            cluster.xvsadm(&["-a", flag, &service, "-r", &real, "-m"])?;
        }
    }
    Ok((vip6, reals6))
}
