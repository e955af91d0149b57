//! Schedulers through the real daemon: ipvsadm's default (`wlc`, when `-s` is omitted), `wrr`
//! proportions over two and three servers, draining a server with weight 0 while its download
//! goes on, and `sh` keeping a client on one server (and spreading its ports with `sh-port`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use xvs_control::topology::{big_file_bytes, RealSpec, TopologySpec, BIG_FILE_LEN, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, wait_until, Cluster, SlowDownload};

const VIP: &str = "198.18.0.129:80";

/// Answers to `n` sequential curls, counted by page.
fn spread(cluster: &Cluster, n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen
            .entry(cluster.curl("/")?.trim_end().to_string())
            .or_insert(0) += 1;
    }
    Ok(seen)
}

fn service(cluster: &Cluster, scheduler: &[&str], weights: [&str; 2]) -> anyhow::Result<()> {
    let _ = cluster.xvsadm(&["-D", "-t", VIP]);
    let mut add = vec!["-A", "-t", VIP];
    add.extend_from_slice(scheduler);
    cluster.xvsadm(&add)?;
    for (real, weight) in ["198.19.0.148", "198.19.0.137"].iter().zip(weights) {
        cluster.xvsadm(&["-a", "-t", VIP, "-r", real, "-m", "-w", weight])?;
    }
    Ok(())
}

#[test]
fn default_wrr_and_sh_schedule_like_ipvs() -> anyhow::Result<()> {
    if !root_or_skip("default_wrr_and_sh_schedule_like_ipvs") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2esched", 1, &[])?;
    let (big, small) = ("198.19.0.148 is www.shuyan.com", "198.19.0.137");

    // No -s: ipvsadm's default, weighted least-connection.
    service(&cluster, &[], ["1", "1"])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("TCP  198.18.0.129:80 wlc"), "{listing}");
    let seen = spread(&cluster, 4)?;
    assert_eq!(seen.values().sum::<usize>(), 4, "{seen:?}");

    // wrr 3:1 over two whole cycles.
    service(&cluster, &["-s", "wrr"], ["3", "1"])?;
    let seen = spread(&cluster, 8)?;
    assert_eq!(
        (seen.get(big), seen.get(small)),
        (Some(&6), Some(&2)),
        "{seen:?}"
    );

    // sh: one client, always the same server.
    service(&cluster, &["-s", "sh"], ["1", "1"])?;
    let seen = spread(&cluster, 10)?;
    assert_eq!(seen.len(), 1, "source hashing spread one client: {seen:?}");
    Ok(())
}

/// (Weight, ActiveConn, InActConn) of `real` (e.g. "198.19.0.148") in an `-Ln` listing.
fn real_line(listing: &str, real: &str) -> anyhow::Result<(u32, u64, u64)> {
    let prefix = format!("  -> {real}:");
    let line = listing
        .lines()
        .find(|l| l.starts_with(&prefix))
        .ok_or_else(|| anyhow::anyhow!("no line for {real} in\n{listing}"))?;
    let f: Vec<&str> = line.split_whitespace().collect();
    anyhow::ensure!(f.len() == 6, "unexpected real-server line {line:?}");
    Ok((f[3].parse()?, f[4].parse()?, f[5].parse()?))
}

#[test]
fn wrr_3_2_1_over_60_connections() -> anyhow::Result<()> {
    if !root_or_skip("wrr_3_2_1_over_60_connections") {
        return Ok(());
    }
    let mut spec = TopologySpec::seed();
    spec.prefix = "xvse2ewrr321".to_string();
    spec.reals = [148u8, 137, 140]
        .iter()
        .map(|&o| RealSpec {
            addr: Ipv4Addr::new(198, 19, 0, o),
            page: format!("web 198.19.0.{o}"),
        })
        .collect();
    let cluster = Cluster::start_spec(&spec, &[])?;

    cluster.xvsadm(&["-A", "-t", VIP, "-s", "wrr"])?;
    for (real, weight) in [
        ("198.19.0.148", "3"),
        ("198.19.0.137", "2"),
        ("198.19.0.140", "1"),
    ] {
        cluster.xvsadm(&["-a", "-t", VIP, "-r", real, "-m", "-w", weight])?;
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("TCP  198.18.0.129:80 wrr"), "{listing}");
    for (real, weight) in [
        ("198.19.0.148", 3),
        ("198.19.0.137", 2),
        ("198.19.0.140", 1),
    ] {
        assert_eq!(real_line(&listing, real)?.0, weight, "{listing}");
    }

    // IPVS's wrr walks A A B A B C per cycle of 6: ten whole cycles.
    let seen = spread(&cluster, 60)?;
    let count = |o: u8| seen.get(&format!("web 198.19.0.{o}")).copied();
    assert_eq!(
        (count(148), count(137), count(140)),
        (Some(30), Some(20), Some(10)),
        "{seen:?}"
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    Ok(())
}

#[test]
fn weight_zero_drains_without_breaking_a_download() -> anyhow::Result<()> {
    if !root_or_skip("weight_zero_drains_without_breaking_a_download") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2edrain", 1, &[])?;
    // rr over 198.19.0.148 then 198.19.0.137, weights 1.
    cluster.configure("-t", 80)?;

    // 4 s, paced by nginx: long enough to reconfigure in the middle. Round robin sends this
    // first connection to 198.19.0.148; make sure it did before going on.
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    let mut listing = String::new();
    let on_148 = wait_until(Duration::from_secs(2), || {
        listing = cluster.xvsadm(&["-Ln"]).unwrap_or_default();
        matches!(real_line(&listing, "198.19.0.148"), Ok((1, 1, 0)))
    });
    assert!(
        on_148,
        "the download is not an active connection on 198.19.0.148:\n{listing}"
    );
    assert_eq!(real_line(&listing, "198.19.0.137")?, (1, 0, 0), "{listing}");
    assert!(
        download.running()?,
        "download finished too early to test anything"
    );

    // Drain 198.19.0.148: no new connections, but its established one keeps flowing.
    cluster.xvsadm(&["-e", "-t", VIP, "-r", "198.19.0.148", "-m", "-w", "0"])?;
    for i in 0..6 {
        assert_eq!(
            cluster.curl("/")?.trim_end(),
            "198.19.0.137",
            "new connection {i} after draining 198.19.0.148"
        );
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(
        download.running()?,
        "download finished before the drain was checked"
    );
    let (weight, active, _) = real_line(&listing, "198.19.0.148")?;
    assert_eq!((weight, active), (0, 1), "{listing}");
    let (weight, active, inactive) = real_line(&listing, "198.19.0.137")?;
    assert_eq!((weight, active + inactive), (1, 6), "{listing}");

    let bytes = download.finish(Duration::from_secs(20))?;
    assert_eq!(bytes.len(), BIG_FILE_LEN, "download truncated");
    assert!(bytes == big_file_bytes(), "download corrupted");
    Ok(())
}

#[test]
fn sh_keeps_one_client_on_one_server_over_20_connections() -> anyhow::Result<()> {
    if !root_or_skip("sh_keeps_one_client_on_one_server_over_20_connections") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2eshport", 1, &[])?;

    // Without flags sh hashes the client address only: 20 new source ports, one server.
    service(&cluster, &["-s", "sh"], ["1", "1"])?;
    let seen = spread(&cluster, 20)?;
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        [20],
        "source hashing spread one client: {seen:?}"
    );

    // With `-b sh-port` the client port is hashed too, so 20 connections (20 source ports)
    // reach both servers. Consecutive ephemeral ports step through the hash by multiples of
    // the golden ratio, so with buckets alternating between two servers 20 ports always
    // land on both.
    let _ = cluster.xvsadm(&["-D", "-t", VIP]);
    cluster.xvsadm(&["-A", "-t", VIP, "-s", "sh", "-b", "sh-port"])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(
        listing.contains("TCP  198.18.0.129:80 sh (sh-port)"),
        "{listing}"
    );
    for real in ["198.19.0.148", "198.19.0.137"] {
        cluster.xvsadm(&["-a", "-t", VIP, "-r", real, "-m", "-w", "1"])?;
    }
    let seen = spread(&cluster, 20)?;
    assert_eq!(seen.values().sum::<usize>(), 20, "{seen:?}");
    assert_eq!(
        seen.len(),
        2,
        "sh-port kept 20 source ports on one server: {seen:?}"
    );
    Ok(())
}

/// `-p`: a client's new connections stick to one server while its template lives, whatever the
/// scheduler would say; `-E` without `-p` turns persistence off for new connections.
#[test]
fn persistence_keeps_a_client_on_one_server() -> anyhow::Result<()> {
    if !root_or_skip("persistence_keeps_a_client_on_one_server") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2epersist", 2, &["--workers", "2"])?;
    cluster.xvsadm(&[
        "-A",
        "-t",
        VIP,
        "-s",
        "rr",
        "-p",
        "60",
        "-M",
        "255.255.255.0",
    ])?;
    for real in ["198.19.0.148", "198.19.0.137"] {
        cluster.xvsadm(&["-a", "-t", VIP, "-r", real, "-m"])?;
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(
        listing.contains("TCP  198.18.0.129:80 rr persistent 60 mask 255.255.255.0"),
        "{listing}"
    );
    // Two workers own the client's connections by source port: the template is shared.
    let seen = spread(&cluster, 12)?;
    assert_eq!(seen.values().copied().collect::<Vec<_>>(), [12], "{seen:?}");

    cluster.xvsadm(&["-E", "-t", VIP, "-s", "rr"])?;
    let seen = spread(&cluster, 4)?;
    assert_eq!(
        seen.len(),
        2,
        "persistence still on after -E without -p: {seen:?}"
    );
    Ok(())
}
