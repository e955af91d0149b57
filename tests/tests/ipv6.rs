//! IPv6 services (issue 15) on the seed cluster in both families
//! ([`TopologySpec::dual_stack`]: every address has a twin in 2001:2::/48, 198.19.0.148 is
//! 2001:2:0:1::148): an IPv6 masquerading service beside the seed's IPv4 one, configured with
//! ipvsadm's IPv6 syntax, driven by curl and nginx over IPv6 (round robin, the client's own
//! address seen by the real server, a 1 MiB download intact) and by UDP datagrams; two
//! workers; persistence; FullNAT with an IPv6 local address; direct routing; and path MTU
//! discovery through the director's Packet Too Big.

use anyhow::{ensure, Result};
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;
use xvs_control::topology::{self, ipv6_of, TopologySpec};
use xvs_tests::{root_or_skip, udp_exchange, wait_until, Cluster};

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
    curls6_alternate(&cluster, vip6, 11)?;
    // NAT keeps the client's address: the real server sees it.
    expect_client_seen(&cluster, vip6)?;
    // Full-sized segments both ways, every checksum right.
    big_download6_intact(&cluster, vip6)?;
    // The IPv4 service beside it is untouched.
    cluster.curls_alternate(11)?;

    // UDP over IPv6: each query from a new port is a new connection.
    udp6_queries_alternate(&mut cluster, vip6, &reals6)?;

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
    let client6 = ipv6_of(cluster.topo.client_addr());
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
    big_download6_intact(&cluster, vip6)?;
    // veth spreads the real servers' replies over both internal queues by their own hash, so
    // over 21 connections some arrive at the worker that does not own them (a run that hands
    // nothing over did not test ownership, and is 2^-21 likely if it works).
    let stats = cluster.stats()?;
    let handed_off: u64 = stats.workers.iter().map(|w| w.handed_off).sum();
    let handed_in: u64 = stats.workers.iter().map(|w| w.handed_in).sum();
    ensure!(
        handed_off > 0 && handed_in == handed_off,
        "{handed_off} frames handed off, {handed_in} handed in: {stats:#?}"
    );
    Ok(())
}

/// FullNAT over IPv6: requests reach the real servers from the director's IPv6 local address
/// (the twin of 198.19.0.160, a /128 on its internal interface) and a port of its own, so the
/// real server sees LIP6:lport; replies come back to it, and the listing maps them to the
/// client. TCP (curl, a 1 MiB download) and UDP.
#[test]
fn ipv6_fullnat() -> Result<()> {
    if !root_or_skip("ipv6_fullnat") {
        return Ok(());
    }
    let lip = std::net::Ipv4Addr::new(198, 19, 0, 160);
    let lip6 = ipv6_of(lip);
    let spec = TopologySpec {
        prefix: "xvse2e6fn".into(),
        director_addrs: vec![lip],
        ..TopologySpec::dual_stack()
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    let vip6 = cluster.topo.vip6();
    let reals6: Vec<Ipv6Addr> = cluster.real_addrs().into_iter().map(ipv6_of).collect();
    for (flag, port) in [("-t", 80), ("-u", UDP_PORT)] {
        let service = format!("[{vip6}]:{port}");
        cluster.xvsadm(&["-A", flag, &service, "-s", "rr"])?;
        if flag == "-t" {
            // Health checks over IPv6 too: they must leave from the DIP6, not from the local
            // address the kernel would prefer (the longest prefix in common with the real
            // servers'), whose replies are FullNAT's.
            let check = ["--check", "http", "--rise", "1", "--check-interval", "0.5"];
            cluster.xvsadm(&[&["-E", flag, &service, "-s", "rr"][..], &check].concat())?;
        }
        cluster.xvsadm(&["--add-laddr", "-z", &lip6.to_string(), flag, &service])?;
        for real in &reals6 {
            let real = format!("[{real}]:{port}");
            cluster.xvsadm(&["-a", flag, &service, "-r", &real, "--fullnat"])?;
        }
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        listing.matches("FullNat").count() == 4,
        "four FullNat real servers in\n{listing}"
    );

    curls6_alternate(&cluster, vip6, 4)?;
    big_download6_intact(&cluster, vip6)?;

    // The real server sees [LIP6]:lport (nginx's $remote_addr:$remote_port), and `-Lnc`
    // maps that local endpoint back to the client.
    let peer = cluster.curl_url(&format!("http://[{vip6}]{}", topology::PEER_PATH))?;
    let peer = peer.trim();
    let lport = peer
        .strip_prefix(&format!("{lip6}:"))
        .ok_or_else(|| anyhow::anyhow!("the real server saw {peer}, not {lip6}:port"))?;
    let conns = cluster.xvsadm(&["-Lnc"])?;
    let client6 = ipv6_of(cluster.topo.client_addr());
    ensure!(
        conns.lines().any(
            |l| l.contains(&format!("[{lip6}]:{lport}")) && l.contains(&format!("[{client6}]"))
        ),
        "no connection of {client6} through [{lip6}]:{lport} in\n{conns}"
    );

    // UDP: the servers answer LIP6:lport; the client gets its answers from VIP6.
    udp6_queries_alternate(&mut cluster, vip6, &reals6)?;
    let service = format!("[{vip6}]:80");
    let mut health = String::new();
    let up = wait_until(Duration::from_secs(10), || {
        health = cluster
            .xvsadm(&["-L", "--health", "-t", &service])
            .unwrap_or_default();
        health.lines().filter(|l| l.contains(" UP ")).count() == 2
    });
    ensure!(up, "the IPv6 health checks did not pass:\n{health}");
    let stats = cluster.stats()?;
    for reason in ["no_local_port", "no_connection"] {
        let drops = stats.drops(reason);
        ensure!(drops == 0, "{drops} frames dropped as {reason}");
    }
    Ok(())
}

/// Direct routing over IPv6 (the LVS-DR layout in both families: each real server holds
/// VIP6 on its loopback and answers the client directly, through the router): requests
/// reach the real servers unchanged but for their MACs, round robin holds, a 1 MiB download
/// (its data never crossing the director) arrives intact.
#[test]
fn ipv6_direct_routing() -> Result<()> {
    if !root_or_skip("ipv6_direct_routing") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e6dr".into(),
        ..TopologySpec {
            dual_stack: true,
            ..TopologySpec::direct_return()
        }
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let vip6 = cluster.topo.vip6();
    let service = format!("[{vip6}]:80");
    cluster.xvsadm(&["-A", "-t", &service, "-s", "rr"])?;
    for real in cluster.real_addrs().into_iter().map(ipv6_of) {
        cluster.xvsadm(&["-a", "-t", &service, "-r", &format!("[{real}]:80"), "-g"])?;
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        listing.matches("Route").count() == 2,
        "two routed real servers in\n{listing}"
    );
    curls6_alternate(&cluster, vip6, 4)?;
    // The real server saw the client itself: DR rewrites nothing but MACs.
    expect_client_seen(&cluster, vip6)?;
    big_download6_intact(&cluster, vip6)?;
    // Only requests crossed the director: its OutPkts stay 0, InPkts counted the ACKs.
    let stats = cluster.xvsadm(&["-Ln", "--stats"])?;
    let row: Vec<&str> = stats
        .lines()
        .find(|l| l.starts_with(&format!("TCP  {service}")))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    ensure!(
        row.len() >= 5 && row[3].parse::<u64>().is_ok_and(|n| n > 0) && row[4] == "0",
        "InPkts > 0 and OutPkts 0 expected:\n{stats}"
    );
    Ok(())
}

/// The MTU a real server learns towards the client: below the director's external MTU.
const NARROW_MTU: u32 = 1400;

/// Path MTU discovery through the director: its external interface takes only 1400-byte
/// packets while the real servers' segment takes 1500, so a download's first full-sized
/// segment is too big to forward. The director (an IPv6 router never fragments) answers the
/// real server with ICMPv6 Packet Too Big; the real server's kernel lowers its path MTU
/// towards the client (`ip -6 route get` shows it), resends smaller, and the 1 MiB arrives
/// intact.
#[test]
fn packet_too_big_teaches_the_real_server_the_path_mtu() -> Result<()> {
    if !root_or_skip("packet_too_big_teaches_the_real_server_the_path_mtu") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e6ptb".into(),
        ..TopologySpec::dual_stack()
    };
    // xvsd reads the MTU at start. Only the director's side is narrowed: the client still
    // offers an MSS for 1500 bytes, so the real servers send segments the director must
    // refuse.
    let cluster = Cluster::start_spec_prepared(&spec, &[], |topo| {
        let mtu = NARROW_MTU.to_string();
        topo.run_in(
            topo.director_ns(),
            &["ip", "link", "set", "dev", topo.ext_if(), "mtu", &mtu],
        )
        .map(drop)
    })?;
    let (vip6, _) = configure6(&cluster)?;
    let client6 = ipv6_of(cluster.topo.client_addr()).to_string();
    let route_mtus = |c: &Cluster| -> Result<Vec<String>> {
        (0..c.topo.reals().len())
            .map(|i| {
                c.topo
                    .run_in(c.topo.real_ns(i), &["ip", "-6", "route", "get", &client6])
            })
            .collect()
    };
    let learned = |routes: &[String]| {
        routes
            .iter()
            .any(|r| r.contains(&format!("mtu {NARROW_MTU}")))
    };
    ensure!(
        !learned(&route_mtus(&cluster)?),
        "a real server knew the path MTU before"
    );
    // Round robin: two downloads, one from each real server.
    for _ in 0..2 {
        big_download6_intact(&cluster, vip6)?;
    }
    let routes = route_mtus(&cluster)?;
    ensure!(
        routes
            .iter()
            .all(|r| r.contains(&format!("mtu {NARROW_MTU}"))),
        "a real server did not learn mtu {NARROW_MTU} towards {client6}: {routes:#?}\nxvsd log:\n{}",
        cluster.director.log()
    );
    let stats = cluster.stats()?;
    ensure!(
        stats.drops("too_big") > 0,
        "no packet counted as too big: {stats:#?}"
    );
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

/// `n` curls of `http://[vip6]/`, answered alternately by web01 and web02 (round robin,
/// web01 first).
fn curls6_alternate(cluster: &Cluster, vip6: Ipv6Addr, n: usize) -> Result<()> {
    let answers = (0..n)
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
    Ok(())
}

/// The real server saw the client's own address (NAT and DR keep it).
fn expect_client_seen(cluster: &Cluster, vip6: Ipv6Addr) -> Result<()> {
    let client6 = ipv6_of(cluster.topo.client_addr());
    let peer = cluster.curl_url(&format!("http://[{vip6}]{}", topology::PEER_PATH))?;
    ensure!(
        peer.starts_with(&format!("{client6}:")),
        "the real server saw {peer:?}, not {client6}"
    );
    Ok(())
}

/// The 1 MiB file over IPv6, byte for byte: full-sized segments, every checksum right.
fn big_download6_intact(cluster: &Cluster, vip6: Ipv6Addr) -> Result<()> {
    let big = cluster.download_url(&format!("http://[{vip6}]{}", topology::BIG_FILE_PATH))?;
    ensure!(
        big == topology::big_file_bytes(),
        "the 1 MiB IPv6 download differs ({} bytes)",
        big.len()
    );
    Ok(())
}

/// UDP responders on the real servers, then 4 queries to [vip6]:UDP_PORT, each from a new
/// port (a new connection): answered alternately by `reals6`.
fn udp6_queries_alternate(
    cluster: &mut Cluster,
    vip6: Ipv6Addr,
    reals6: &[Ipv6Addr],
) -> Result<()> {
    cluster.start_udp6_responders(UDP_PORT)?;
    let vip6_udp = SocketAddr::from((vip6, UDP_PORT));
    let answers = (0..4)
        .map(|_| udp_exchange(cluster.topo.client_ns(), vip6_udp))
        .collect::<Result<Vec<_>>>()?;
    let want: Vec<String> = (0..4).map(|i| reals6[i % 2].to_string()).collect();
    ensure!(answers == want, "UDP answers {answers:?}, want {want:?}");
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
