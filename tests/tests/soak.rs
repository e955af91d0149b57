//! Soak: steady offered load for a bounded time (60 s; `XVS_SOAK_SECS` for longer runs, see
//! docs/testing.md), sampling xvsd's resident memory and the connection table every 3 s.
//!
//! Load: wrk on VIP:80 with 8 keep-alive connections paced at about 2 ms per request each, and
//! UDP flow churn on VIP:9000: one-second runs of the open-loop probe, each from 16 new source
//! ports, with a 2 s UDP timeout, so flows are created and expire all the time at a steady
//! rate.
//!
//! Properties:
//! - No growth once steady. Samples before 15 s are warm-up (UMEM pages and table slots
//!   being touched for the first time, the first flows expiring). The table's occupancy
//!   oscillates with the churn, so the baseline is the largest sample of the first third of
//!   the steady period and the check is on the largest of the last third:
//!   `last_max <= baseline * 1.01 + 256 KiB` for RSS (all memory is reserved and touched at
//!   start, so it is flat) and `baseline * 1.05 + 8` entries for the table.
//! - No counter drift: per worker, every frame taken is accounted for,
//!   `rx + handed_in == tx + drops + handed_off + held` once the load has stopped, and what
//!   the XDP program redirected to the worker's sockets is what it received (`redirected -
//!   rx`, the kernel's ring-full drops, within 1%).

use std::time::{Duration, Instant};
use xvs_control::director::find_binary;
use xvs_control::protocol::StatsReply;
use xvs_tests::{root_or_skip, Cluster, Wrk};

const SAMPLE_EVERY: Duration = Duration::from_secs(3);
const WARM_UP: Duration = Duration::from_secs(15);

/// xvsd's VmRSS in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// Frames taken minus frames accounted for, per worker.
fn unaccounted(s: &StatsReply) -> Vec<i128> {
    s.workers
        .iter()
        .map(|w| {
            let taken = i128::from(w.rx) + i128::from(w.handed_in);
            let drops: u64 = w.drops.values().sum();
            let ended = i128::from(w.tx)
                + i128::from(drops)
                + i128::from(w.handed_off)
                + i128::from(w.held);
            taken - ended
        })
        .collect()
}

/// Fails when the last third's largest sample exceeds the first steady third's by more than
/// `percent`% plus `slack`.
fn check_no_growth(name: &str, samples: &[u64], percent: u64, slack: u64) -> anyhow::Result<()> {
    anyhow::ensure!(samples.len() >= 6, "{name}: too few samples: {samples:?}");
    let third = samples.len() / 3;
    let baseline = *samples[..third].iter().max().unwrap_or(&0);
    let last = *samples[samples.len() - third..].iter().max().unwrap_or(&0);
    let bound = baseline + baseline * percent / 100 + slack;
    anyhow::ensure!(
        last <= bound,
        "{name} grows: last third's max {last} > {bound} (baseline {baseline}); samples {samples:?}"
    );
    Ok(())
}

#[test]
fn steady_load_has_flat_memory_and_table_and_exact_counters() -> anyhow::Result<()> {
    if !root_or_skip("steady_load_has_flat_memory_and_table_and_exact_counters") {
        return Ok(());
    }
    let seconds: u64 = match std::env::var("XVS_SOAK_SECS") {
        Ok(v) => v.parse()?,
        Err(_) => 60,
    };
    anyhow::ensure!(
        (40..=24 * 3600).contains(&seconds),
        "XVS_SOAK_SECS must be 40..=86400"
    );
    let mut cluster = Cluster::start("xvse2esoak", 1, &[])?;
    cluster.configure("-t", 80)?;
    cluster.xvsadm(&["-A", "-u", "198.18.0.129:9000", "-s", "rr"])?;
    for real in cluster.real_addrs() {
        let r = format!("{real}:9000");
        cluster.xvsadm(&["-a", "-u", "198.18.0.129:9000", "-r", &r, "-m"])?;
    }
    cluster.xvsadm(&["--set", "0", "0", "2"])?;
    cluster.start_echo_responders(2, seconds + 30)?;
    let bench = find_binary("xvs-bench")?.to_string_lossy().into_owned();
    let pid = cluster.director.pid().expect("xvsd runs");

    // Paced keep-alive load: each connection waits 2 ms between requests.
    let script = cluster.topo.work_dir().join("pace.lua");
    std::fs::write(&script, "function delay()\n  return 2\nend\n")?;
    let script_arg = script.to_string_lossy().into_owned();
    let url = format!("http://{}/", cluster.topo.vip());
    let wrk_secs = format!("-d{seconds}s");
    let wrk = Wrk::start(
        &cluster,
        &["-t1", "-c8", &wrk_secs, "-s", &script_arg],
        &url,
    )?;

    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let mut next_sample = start + SAMPLE_EVERY;
    let (mut rss, mut conns, mut probes, mut lost) = (Vec::new(), Vec::new(), 0u64, 0u64);
    while Instant::now() + Duration::from_secs(1) < end {
        // One second of UDP requests from 16 new flows.
        let out = cluster
            .topo
            .command_in(cluster.topo.client_ns(), &bench)
            .args(["agent", "ping", "--src"])
            .arg(cluster.topo.client_addr().to_string())
            .args(["--dst", "198.18.0.129", "--rate", "500", "--duration", "1"])
            .args(["--drain", "0.2", "--sockets", "16"])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_default();
        probes += 1;
        lost += report["lost"].as_u64().unwrap_or(0);
        if Instant::now() >= next_sample {
            next_sample += SAMPLE_EVERY;
            if start.elapsed() >= WARM_UP {
                rss.push(rss_kib(pid)?);
                let s = cluster.stats()?;
                conns.push(s.conn_count);
                // While traffic flows, only the frames of the batch in progress are open.
                for (w, open) in unaccounted(&s).into_iter().enumerate() {
                    anyhow::ensure!(
                        (0..=4096).contains(&open),
                        "worker {w}: {open} frames unaccounted for under load: {s:?}"
                    );
                }
            }
        }
        anyhow::ensure!(cluster.director.is_running(), "xvsd died");
    }
    let report = wrk.finish()?;
    eprintln!(
        "soak {seconds} s: RSS KiB {rss:?}\nconnections {conns:?}\n{probes} probe runs, {lost} lost\n{}",
        report.text
    );
    report.ensure_clean()?;
    check_no_growth("connection table", &conns, 5, 8)
        .map_err(|e| e.context(cluster.xvsadm(&["-Lnc"]).unwrap_or_default()))?;
    check_no_growth("xvsd RSS (KiB)", &rss, 1, 256)?;

    // Held frames are released within a second; then every count is final.
    std::thread::sleep(Duration::from_millis(1500));
    let s = cluster.stats()?;
    eprintln!("{s:?}");
    for (w, open) in unaccounted(&s).into_iter().enumerate() {
        anyhow::ensure!(
            open == 0,
            "worker {w}: {open} frames unaccounted for: {s:?}"
        );
    }
    for w in &s.workers {
        anyhow::ensure!(w.rx > 0, "worker {} received nothing", w.worker);
        anyhow::ensure!(
            w.redirected >= w.rx && w.redirected - w.rx <= w.rx / 100,
            "worker {}: XDP redirected {} frames, the worker received {}",
            w.worker,
            w.redirected,
            w.rx
        );
    }
    Ok(())
}
