//! A SYN flood to the VIP cannot evict or starve established connections, and new legitimate
//! connections still get through (docs/floods.md).
//!
//! hping3 in the client namespace sends SYNs to VIP:80 from 198.18.0.77, an address no host
//! owns (so the SYN/ACKs go unanswered), one new source port per SYN: each makes a half-open
//! entry. The table is small (`--conn-max 8192`, so 4096 half-open entries per worker) and
//! the flood fills its half-open share within about a second. Meanwhile a long download over
//! one established connection must keep at least half its throughput, and at least 48 of 50
//! new curls through the VIP must succeed.

use anyhow::{ensure, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xvs_control::protocol::{Command, Reply, StatsReply};
use xvs_control::topology::{big_file_bytes, BIG_FILE_LEN, BIG_FILE_PATH, SLOW_PREFIX};
use xvs_tests::{root_or_skip, wait_until, Cluster};

const CONN_MAX: u64 = 8192;
/// The spoofed source: inside 198.18.0.0/15, owned by no namespace.
const SPOOFED: &str = "198.18.0.77";
/// 10,000 SYNs/s asked (hping3 on a loaded machine sends fewer), for at most 30 s.
const FLOOD_INTERVAL: &str = "u100";
const FLOOD_MAX_SYNS: &str = "300000";
const FLOOD_MAX_SECS: &str = "30";
/// The long download: this many copies of the big file, paced by nginx, over one connection.
const COPIES: usize = 4;
const CURLS: usize = 50;
const CURLS_REQUIRED: usize = 48;
/// Throughput during the flood, as a fraction of throughput before it.
const MIN_THROUGHPUT_RATIO: f64 = 0.5;

/// A background process in a namespace, killed when dropped.
struct Background(Child);

impl Background {
    fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sum(stats: &StatsReply, pick: impl Fn(&xvs_control::protocol::WorkerStats) -> u64) -> u64 {
    stats.workers.iter().map(pick).sum()
}

fn evictions(s: &StatsReply) -> u64 {
    sum(s, |w| w.evictions.values().sum())
}

fn drops(s: &StatsReply, reason: &str) -> u64 {
    s.drops(reason)
}

/// Bytes the long download has written so far.
fn received(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Bytes per second received over `window`.
fn rate(files: &[PathBuf], window: Duration) -> f64 {
    let (b0, t0) = (received(files), Instant::now());
    std::thread::sleep(window);
    (received(files) - b0) as f64 / t0.elapsed().as_secs_f64()
}

#[test]
fn a_syn_flood_neither_evicts_nor_starves_connections() -> Result<()> {
    if !root_or_skip("a_syn_flood_neither_evicts_nor_starves_connections") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2esyn", 1, &["--conn-max", &CONN_MAX.to_string()])?;
    cluster.configure("-t", 80)?;
    let topo = &cluster.topo;
    let vip = topo.vip().to_string();

    // The long download: COPIES requests on one keep-alive connection.
    let url = format!("http://{vip}{SLOW_PREFIX}{BIG_FILE_PATH}");
    let files: Vec<PathBuf> = (0..COPIES)
        .map(|i| topo.work_dir().join(format!("long.{i}")))
        .collect();
    let mut curl = topo.command_in(topo.client_ns(), "curl");
    curl.args(["-sS", "--fail", "--max-time", "40"]);
    for f in &files {
        curl.arg("-o").arg(f).arg(&url);
    }
    let mut download = Background(
        curl.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting curl")?,
    );
    std::thread::sleep(Duration::from_millis(500));
    let before = rate(&files, Duration::from_secs(2));

    let mut flood = Background(
        topo.command_in(topo.client_ns(), "timeout")
            .args([
                FLOOD_MAX_SECS,
                "hping3",
                "-q",
                "-S",
                "-p",
                "80",
                "-a",
                SPOOFED,
            ])
            .args(["-i", FLOOD_INTERVAL, "-c", FLOOD_MAX_SYNS, &vip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting hping3 (Debian package hping3)")?,
    );
    // Saturated: the flood's half-open entries reached their share (evictions start), or
    // (without that protection) the table is full.
    let flood_start = Instant::now();
    let saturated = wait_until(Duration::from_secs(10), || {
        cluster
            .stats()
            .is_ok_and(|s| evictions(&s) > 0 || s.conn_count >= CONN_MAX)
    });
    let at_saturation = cluster.stats()?;
    ensure!(
        saturated,
        "the flood did not fill the table: {at_saturation:?}"
    );
    let fill_time = flood_start.elapsed();

    // During the flood: new connections, and the download's throughput meanwhile.
    let (b0, t0) = (received(&files), Instant::now());
    let mut ok = 0;
    for i in 0..CURLS {
        if i - ok > CURLS - CURLS_REQUIRED {
            break; // failed already: spare the remaining timeouts
        }
        let url = format!("http://{vip}/");
        let got = topo.run_in_timeout(
            topo.client_ns(),
            &["curl", "-sS", "--fail", "--max-time", "3", &url],
            Duration::from_secs(10),
        );
        ok += usize::from(got.is_ok());
        std::thread::sleep(Duration::from_millis(20));
    }
    let window = t0.elapsed();
    let during = (received(&files) - b0) as f64 / window.as_secs_f64();
    let after = cluster.stats()?;
    let listing = match cluster.director.client()?.call(Command::Connections)? {
        Reply::Connections(c) => c,
        other => anyhow::bail!("not a connections reply: {other:?}"),
    };
    let flooding = flood.running();
    drop(flood);

    let client = topo.client_addr();
    let established = listing
        .connections
        .iter()
        .filter(|c| c.client == client && c.state == "ESTABLISHED")
        .count();
    let half_open = listing
        .connections
        .iter()
        .filter(|c| c.state == "SYN_RECV")
        .count();
    let evicted_per_sec =
        (evictions(&after) - evictions(&at_saturation)) as f64 / window.as_secs_f64();
    eprintln!(
        "saturated after {fill_time:.1?}; before {before:.0} B/s, during {during:.0} B/s over \
         {window:.1?} ({evicted_per_sec:.0} evictions/s); {ok}/{CURLS} curls; {half_open} \
         SYN_RECV entries, {} in all; evictions {:?}; table_full drops {}",
        listing.connections.len(),
        after.workers[0].evictions,
        drops(&after, "table_full"),
    );
    ensure!(flooding, "the flood stopped before the measurements ended");
    ensure!(
        ok >= CURLS_REQUIRED,
        "only {ok}/{CURLS} new connections succeeded during the flood"
    );
    ensure!(
        evictions(&after) > evictions(&at_saturation),
        "no half-open entry was evicted during the measurements: {after:?}"
    );
    ensure!(
        established == 1,
        "the download's connection is not the one ESTABLISHED entry of the client: \
         {established}"
    );
    ensure!(
        during >= MIN_THROUGHPUT_RATIO * before,
        "download throughput fell from {before:.0} B/s to {during:.0} B/s during the flood"
    );

    // The download completes intact.
    ensure!(
        wait_until(Duration::from_secs(30), || !download.running()),
        "download did not finish"
    );
    let status = download.0.wait()?;
    ensure!(status.success(), "download failed: {status}");
    let expected = big_file_bytes();
    for f in &files {
        let body = std::fs::read(f)?;
        ensure!(
            body.len() == BIG_FILE_LEN && body == expected,
            "{} differs",
            f.display()
        );
    }
    Ok(())
}
