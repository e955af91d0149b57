//! The XDP fast path end to end: established flows are forwarded by the XDP program (IPv4 and
//! IPv6), the workers keep states, counters and the listing exact, a removed real server's
//! flows finish, and an interface that cannot take redirected frames keeps its flows on the
//! AF_XDP path.

use anyhow::{ensure, Context};
use std::net::Ipv6Addr;
use std::time::Duration;
use xvs_control::topology::{
    big_file_bytes, ipv6_of, TopologySpec, BIG_FILE_PATH, HOST_IF, SLOW_PREFIX,
};
use xvs_tests::{ensure_contains, root_or_skip, wait_until, Cluster, SlowDownload};

/// (frames the fast path forwarded, frames the workers received, installs, removals).
fn fast_counts(cluster: &Cluster) -> anyhow::Result<(u64, u64, u64, u64)> {
    let s = cluster.stats()?;
    Ok(s.workers.iter().fold((0, 0, 0, 0), |acc, w| {
        (
            acc.0 + w.fast_forwarded,
            acc.1 + w.rx,
            acc.2 + w.fast_installs,
            acc.3 + w.fast_removals,
        )
    }))
}

/// The `--stats` line of `ip:port` (a service or real server): conns, inpkts, outpkts,
/// inbytes, outbytes.
fn stats_line(cluster: &Cluster, ip_port: &str) -> anyhow::Result<Vec<u64>> {
    let out = cluster.xvsadm(&["-Ln", "--stats", "--exact"])?;
    let line = out
        .lines()
        .find(|l| l.contains(ip_port))
        .with_context(|| format!("no {ip_port} in\n{out}"))?;
    line.split_whitespace()
        .skip_while(|f| !f.contains(ip_port))
        .skip(1)
        .map(|f| f.parse::<u64>().with_context(|| format!("{f} in {line}")))
        .collect()
}

/// The connection on the fast path that `-Lnc` lists ESTABLISHED on a line containing
/// `filter`: it must expire in about 15 minutes (IPVS's ESTABLISHED timeout, kept fresh by the
/// fast path's packets) and its real server, returned, must count it active in `-Ln`.
fn established_on_the_fast_path(cluster: &Cluster, filter: &str) -> anyhow::Result<String> {
    let listing = cluster.xvsadm(&["-Lnc"])?;
    let line = listing
        .lines()
        .find(|l| l.contains("ESTABLISHED") && l.contains(filter))
        .with_context(|| format!("no established connection of {filter:?} listed:\n{listing}"))?;
    // ipvsadm -Lnc: pro expire state source virtual destination.
    let real = line
        .split_whitespace()
        .nth(5)
        .and_then(|d| d.rsplit_once(':'))
        .map(|(a, _)| a.to_string())
        .with_context(|| format!("no destination in {line}"))?;
    // ipvsadm -Ln: the real server serving it counts one active connection.
    let table = cluster.xvsadm(&["-Ln"])?;
    let active: Vec<&str> = table
        .lines()
        .find(|l| l.contains(&format!("-> {real}:")))
        .map(|l| l.split_whitespace().collect())
        .with_context(|| format!("{real} not in\n{table}"))?;
    ensure!(
        active.get(4) == Some(&"1"),
        "ActiveConn of {real} while its flow is on the fast path:\n{table}"
    );
    let expire = line.split_whitespace().nth(1).unwrap_or_default();
    ensure!(
        expire.starts_with("14:") || expire.starts_with("15:"),
        "an established connection on the fast path expires in {expire}, not ~15 min: {line}"
    );
    Ok(real)
}

/// Checks that xvsd announced the fast path in both directions, then runs `download` twice,
/// each bringing the big file intact: 2 MiB of replies in ~1400-byte segments and their ACKs,
/// most of which must bypass the workers; each connection installed at ESTABLISHED and
/// removed at its first FIN. Returns the frames the fast path forwarded, those the workers
/// received, and the installs.
fn two_downloads_take_the_fast_path(
    cluster: &Cluster,
    download: impl Fn() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(u64, u64, u64)> {
    let log = cluster.director.log();
    ensure_contains(&log, "fast path: established requests leave")?;
    ensure_contains(&log, "fast path: established replies leave")?;

    let want = big_file_bytes();
    for _ in 0..2 {
        ensure!(
            download()? == want,
            "downloaded bytes differ from the served file"
        );
    }
    let (fast, rx, installs, _) = fast_counts(cluster)?;
    ensure!(
        installs >= 2 && fast > 1000 && fast > 4 * rx,
        "fast path forwarded {fast} frames, workers received {rx}, {installs} installs"
    );
    ensure!(
        wait_until(Duration::from_secs(3), || fast_counts(cluster)
            .is_ok_and(|(_, _, i, r)| i == r)),
        "installs and removals differ: {:?}",
        fast_counts(cluster)?
    );
    Ok((fast, rx, installs))
}

/// The service's `--stats` line `service` includes the fast path's packets of two downloads
/// of `len` bytes (at least their bytes went out, in at most 1500-byte packets), and the lines
/// of its real servers `reals` (ADDR:PORT) add up to it.
fn out_counters_add_up(
    cluster: &Cluster,
    service: &[u64],
    len: usize,
    reals: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    let len = len as u64;
    ensure!(
        service[4] > 2 * len && service[2] > 2 * len / 1500,
        "service out-counters miss the fast path's packets: {service:?}"
    );
    let mut sum = vec![0u64; 5];
    for real in reals {
        for (s, v) in sum.iter_mut().zip(stats_line(cluster, &real)?) {
            *s += v;
        }
    }
    ensure!(sum == service, "reals {sum:?} != service {service:?}");
    Ok(())
}

#[test]
fn downloads_take_the_fast_path_and_counters_stay_exact() -> anyhow::Result<()> {
    if !root_or_skip("downloads_take_the_fast_path_and_counters_stay_exact") {
        return Ok(());
    }
    let cluster = Cluster::start("xvsfpdl", 1, &[])?;
    cluster.configure("-t", 80)?;
    let want = big_file_bytes();
    two_downloads_take_the_fast_path(&cluster, || cluster.download(BIG_FILE_PATH))?;

    // The service's counters include the fast path's packets: at least the download's bytes
    // went out, and the real servers' lines add up to the service's.
    let vip = format!("{}:80", cluster.topo.vip());
    let service = stats_line(&cluster, &vip)?;
    ensure!(service[0] == 2, "connections: {service:?}");
    let reals = cluster.real_addrs().into_iter().map(|r| format!("{r}:80"));
    out_counters_add_up(&cluster, &service, want.len(), reals)
}

/// The twin of `downloads_take_the_fast_path_and_counters_stay_exact` for IPv6: 1 MiB
/// downloads through a masqueraded IPv6 service of the dual-stack cluster bypass the workers,
/// arrive intact, and the service's counters are exactly what the workers and the fast path
/// forwarded together (the only traffic through the director here).
#[test]
fn ipv6_downloads_take_the_fast_path_and_counters_stay_exact() -> anyhow::Result<()> {
    if !root_or_skip("ipv6_downloads_take_the_fast_path_and_counters_stay_exact") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvsfp6dl".into(),
        ..TopologySpec::dual_stack()
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let vip6 = cluster.topo.vip6();
    let service = format!("[{vip6}]:80");
    let reals6: Vec<Ipv6Addr> = cluster.real_addrs().into_iter().map(ipv6_of).collect();
    cluster.xvsadm(&["-A", "-t", &service, "-s", "rr"])?;
    for real in &reals6 {
        cluster.xvsadm(&["-a", "-t", &service, "-r", &format!("[{real}]:80"), "-m"])?;
    }
    let want = big_file_bytes();
    let url = format!("http://[{vip6}]{BIG_FILE_PATH}");
    let (fast, rx, installs) =
        two_downloads_take_the_fast_path(&cluster, || cluster.download_url(&url))?;

    // Every packet of the service was counted once, by the worker that forwarded it or by
    // the fast path (a frame a full TX ring dropped was counted but not sent).
    let service_line = stats_line(&cluster, &service)?;
    let stats = cluster.stats()?;
    let sent: u64 = stats.workers.iter().map(|w| w.tx + w.fast_forwarded).sum();
    let tx_full = stats.drops("tx_full");
    let packets = service_line[1] + service_line[2];
    eprintln!(
        "IPv6: {fast} frames on the fast path, {rx} through the workers, {installs} installs; \
         the service counted {packets} packets, {sent} were sent"
    );
    ensure!(
        service_line[0] == 2 && (sent..=sent + tx_full).contains(&packets),
        "service {service_line:?}: {packets} packets counted, {sent} sent ({tx_full} tx_full)"
    );
    let reals = reals6.iter().map(|r| format!("[{r}]:80"));
    out_counters_add_up(&cluster, &service_line, want.len(), reals)?;

    // While a download is on the fast path, `-Lnc` lists its connection ESTABLISHED with
    // IPVS's 15-minute timeout and `-Ln` counts it active.
    let installs_before = fast_counts(&cluster)?.2;
    let url = format!("http://[{vip6}]{SLOW_PREFIX}{BIG_FILE_PATH}");
    let download = SlowDownload::start_url(&cluster, &url)?;
    ensure!(
        wait_until(Duration::from_secs(5), || fast_counts(&cluster)
            .is_ok_and(|(_, _, installs, _)| installs > installs_before)),
        "the slow download never took the fast path: {:?}",
        fast_counts(&cluster)?
    );
    established_on_the_fast_path(&cluster, &service)?;
    let got = download.finish(Duration::from_secs(30))?;
    ensure!(
        got == want,
        "the slow IPv6 download differs ({} bytes)",
        got.len()
    );
    Ok(())
}

#[test]
fn a_removed_real_servers_fast_flow_finishes_and_stays_listed() -> anyhow::Result<()> {
    if !root_or_skip("a_removed_real_servers_fast_flow_finishes_and_stays_listed") {
        return Ok(());
    }
    let cluster = Cluster::start("xvsfprm", 1, &[])?;
    cluster.configure("-t", 80)?;
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    // Wait until the flow is established and on the fast path.
    ensure!(
        wait_until(Duration::from_secs(5), || fast_counts(&cluster)
            .is_ok_and(|(fast, _, installs, _)| installs >= 1 && fast > 20)),
        "the download never took the fast path: {:?}",
        fast_counts(&cluster)?
    );
    let real = established_on_the_fast_path(&cluster, "")?;

    let vip = format!("{}:80", cluster.topo.vip());
    cluster.xvsadm(&["-d", "-t", &vip, "-r", &real])?;
    ensure!(
        download.running()?,
        "the download stopped when its real server went"
    );
    let removals_after = {
        let (_, _, _, removals) = fast_counts(&cluster)?;
        removals
    };
    ensure!(
        wait_until(Duration::from_secs(3), || fast_counts(&cluster)
            .is_ok_and(|(_, _, _, r)| r >= removals_after.max(1))),
        "the removed real server's flow stayed on the fast path"
    );
    let got = download.finish(Duration::from_secs(60))?;
    ensure!(
        got == big_file_bytes(),
        "the download through a removed real server is damaged ({} bytes)",
        got.len()
    );
    Ok(())
}

#[test]
fn an_interface_that_cannot_take_redirects_keeps_its_flows_on_the_workers() -> anyhow::Result<()> {
    if !root_or_skip("an_interface_that_cannot_take_redirects_keeps_its_flows_on_the_workers") {
        return Ok(());
    }
    let cluster = Cluster::start("xvsfpnr", 1, &[])?;
    cluster.configure("-t", 80)?;
    // The external veth's peer (the client's interface) without GRO or XDP: ext0 cannot
    // transmit redirected frames any more.
    let client = cluster.topo.client_ns();
    cluster
        .topo
        .run_in(client, &["ethtool", "-K", HOST_IF, "gro", "off"])?;
    ensure!(
        wait_until(Duration::from_secs(5), || cluster
            .director
            .log()
            .contains("cannot take redirected frames")),
        "xvsd did not notice: {}",
        cluster.director.log()
    );
    let want = big_file_bytes();
    let got = cluster.download(BIG_FILE_PATH)?;
    ensure!(got == want, "downloaded bytes differ from the served file");
    // Replies (out of ext0, now closed: ~725 segments) reached the workers; requests (the
    // client's ACKs, out of int0, still open) may take the fast path.
    let (fast, rx, _, _) = fast_counts(&cluster)?;
    ensure!(rx > 700, "fast {fast}, workers {rx}");

    // GRO back on: the interface is open again and the replies bypass the workers.
    cluster
        .topo
        .run_in(client, &["ethtool", "-K", HOST_IF, "gro", "on"])?;
    ensure!(
        wait_until(Duration::from_secs(5), || cluster
            .director
            .log()
            .matches("established replies leave")
            .count()
            >= 2),
        "xvsd did not reopen the interface: {}",
        cluster.director.log()
    );
    let got = cluster.download(BIG_FILE_PATH)?;
    ensure!(got == want, "downloaded bytes differ from the served file");
    let (fast_after, rx_after, _, _) = fast_counts(&cluster)?;
    ensure!(
        fast_after - fast > 700 && rx_after - rx < 100,
        "fast {fast} -> {fast_after}, workers {rx} -> {rx_after}"
    );
    Ok(())
}

#[test]
fn fast_path_off_forwards_everything_through_the_workers() -> anyhow::Result<()> {
    if !root_or_skip("fast_path_off_forwards_everything_through_the_workers") {
        return Ok(());
    }
    let cluster = Cluster::start("xvsfpoff", 1, &["--fast-path", "off"])?;
    cluster.configure("-t", 80)?;
    let got = cluster.download(BIG_FILE_PATH)?;
    ensure!(got == big_file_bytes(), "downloaded bytes differ");
    let (fast, rx, installs, _) = fast_counts(&cluster)?;
    ensure!(
        fast == 0 && installs == 0 && rx > 700,
        "fast {fast}, installs {installs}, rx {rx}"
    );
    Ok(())
}
