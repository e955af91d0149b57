//! The operator's ipvsadm workflow against the real daemon: `-S` / `-C` / `-R` round trip
//! (checks and connection limits included), a bad restore refused whole, `-Z`, `--set` and
//! `-L --timeout`, `-L -c` while a download runs, `--rate` and `--health`.

use std::time::Duration;
use xvs_control::topology::BIG_FILE_PATH;
use xvs_tests::{ensure_contains, root_or_skip, wait_until, Cluster, SlowDownload};

/// `xvsadm -R` with `input` on stdin: (exit code, stderr).
fn restore(cluster: &Cluster, input: &str) -> anyhow::Result<(i32, String)> {
    cluster.xvsadm_restore(input)
}

#[test]
fn save_restore_zero_timeouts_connections_rates_and_health() -> anyhow::Result<()> {
    if !root_or_skip("save_restore_zero_timeouts_connections_rates_and_health") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2eadm", 1, &[])?;
    let vip = cluster.topo.vip();
    let web = format!("{vip}:80");
    let dns = format!("{vip}:53");
    cluster.xvsadm(&[
        "-A",
        "-t",
        &web,
        "-s",
        "rr",
        "--check",
        "http",
        "--check-path",
        "/",
        "--rise",
        "1",
        "--fall",
        "3",
        "--check-interval",
        "0.5",
    ])?;
    for real in cluster.topo.reals() {
        cluster.xvsadm(&[
            "-a",
            "-t",
            &web,
            "-r",
            &real.addr.to_string(),
            "-m",
            "-w",
            "2",
        ])?;
    }
    cluster.xvsadm(&[
        "-A",
        "-u",
        &dns,
        "-s",
        "sh",
        "-b",
        "sh-port",
        "-p",
        "120",
        "--conn-limit",
        "1000",
    ])?;
    cluster.xvsadm(&[
        "-a",
        "-u",
        &dns,
        "-r",
        "198.19.0.148",
        "-m",
        "-x",
        "100",
        "-y",
        "10",
    ])?;

    // -S, -C, -R: the same table (scheduler, flags, persistence, weights, thresholds, check,
    // connection limit).
    let saved = cluster.xvsadm(&["-S", "-n"])?;
    ensure_contains(&saved, &format!("-A -t {web} -s rr"))?;
    ensure_contains(&saved, "--check http")?;
    ensure_contains(
        &saved,
        &format!("-A -u {dns} -s sh -p 120 -b sh-port --conn-limit 1000\n"),
    )?;
    ensure_contains(
        &saved,
        &format!("-a -u {dns} -r 198.19.0.148:53 -m -w 1 -x 100 -y 10"),
    )?;
    cluster.xvsadm(&["-C"])?;
    assert_eq!(cluster.xvsadm(&["-S", "-n"])?, "");
    let (code, err) = restore(&cluster, &saved)?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(cluster.xvsadm(&["-S", "-n"])?, saved);

    // A restore with a bad line changes nothing and says which line.
    let bad = format!("-A -t {vip}:8080 -s rr\n-a -t {vip}:8080 -r 198.19.0.148 -w 70000\n");
    let (code, err) = restore(&cluster, &bad)?;
    assert_ne!(code, 0);
    ensure_contains(&err, "line 2")?;
    assert_eq!(cluster.xvsadm(&["-S", "-n"])?, saved);

    // Traffic, then -Z: counters restart from zero.
    for _ in 0..4 {
        cluster.curl("/")?;
    }
    let stats = cluster.xvsadm(&["-Ln", "--stats", "-t", &web])?;
    let conns = |listing: &str| -> u64 {
        listing
            .lines()
            .nth(2)
            .and_then(|l| l.split_whitespace().nth(2))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    assert_eq!(conns(&stats), 4, "{stats}");
    cluster.xvsadm(&["-Z"])?;
    let zeroed = cluster.xvsadm(&["-Ln", "--stats", "-t", &web])?;
    assert_eq!(conns(&zeroed), 0, "{zeroed}");

    // --set (0 keeps a value) and -L --timeout.
    cluster.xvsadm(&["--set", "3600", "0", "60"])?;
    assert_eq!(
        cluster.xvsadm(&["-L", "--timeout"])?,
        "Timeout (tcp tcpfin udp): 3600 120 60\n"
    );

    // -L -c while a download runs: its entry is ESTABLISHED with the new tcp timeout.
    let download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    let client = cluster.topo.client_addr().to_string();
    let mut listing = String::new();
    let found = wait_until(Duration::from_secs(3), || {
        listing = cluster.xvsadm(&["-Lnc"]).unwrap_or_default();
        listing
            .lines()
            .any(|l| l.contains("ESTABLISHED") && l.contains(&client))
    });
    assert!(found, "{listing}");
    assert!(listing.starts_with(
        "IPVS connection entries\npro expire state       source             virtual            destination\n"
    ));
    let line = listing.lines().find(|l| l.contains("ESTABLISHED")).unwrap();
    assert!(
        line.starts_with("TCP 59:5") || line.starts_with("TCP 60:00"),
        "{line}"
    );
    ensure_contains(line, &web)?;

    // --rate: ipvsadm's columns; the download makes the service's rates non-zero within a
    // few estimator ticks (2 s each).
    let rate_title =
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n";
    let mut rates = String::new();
    let moving = wait_until(Duration::from_secs(5), || {
        rates = cluster
            .xvsadm(&["-Ln", "--rate", "-t", &web])
            .unwrap_or_default();
        rates
            .lines()
            .nth(2)
            .and_then(|l| l.split_whitespace().last())
            .is_some_and(|outbps| outbps != "0")
    });
    assert!(rates.starts_with(rate_title), "{rates}");
    assert!(moving, "{rates}");
    download.finish(Duration::from_secs(30))?;

    // --health: both real servers of the checked service are up.
    let health = cluster.xvsadm(&["-L", "--health", "-t", &web])?;
    let up = health.lines().filter(|l| l.contains(" UP ")).count();
    assert_eq!(up, 2, "{health}");
    ensure_contains(&health, "http")?;
    Ok(())
}
