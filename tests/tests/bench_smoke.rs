//! `xvs-bench compare --smoke` end to end: builds the benchmark rig for every target (xvs with
//! and without its XDP fast path, nftables NAT, plain routing, xvs's mechanism without NAT), runs a short throughput and latency measurement on each and
//! prints the comparison table. Keeps the benchmark command from rotting; it measures
//! nothing worth reading. Also `connrate --smoke`, and one low-rate `throughput --proto tcp`
//! trial per target, which checks that whole TCP conversations get through; and the same
//! low-rate trials over IPv6 (`--family 6`) through xvs and nftables NAT66.

use anyhow::{ensure, Context, Result};
use std::process::Command;
use std::sync::Mutex;
use xvs_control::director::find_binary;
use xvs_tests::root_or_skip;

/// Held by each `xvs-bench` run: the test harness runs these tests on parallel threads, and two
/// benches at once share the 2 cores each places its generator and director on, so frames
/// were lost to scheduling, not to forwarding.
static ONE_BENCH_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `xvs-bench ARGS` (alone: [`ONE_BENCH_AT_A_TIME`]); its stdout, or an error with both
/// outputs if it failed.
fn run_bench(args: &[&str]) -> Result<String> {
    // A test that panicked while holding it left nothing to clean up: take it anyway.
    let _alone = ONE_BENCH_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bench = find_binary("xvs-bench")?;
    let output = Command::new(&bench)
        .args(args)
        .output()
        .with_context(|| format!("running xvs-bench {}", args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "xvs-bench {} failed ({}):\n{stdout}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(stdout)
}

/// The numbers of `throughput`'s summary line "TARGET: PROTO packets offered N, ...".
fn summary(stdout: &str, target: &str, proto: &str) -> Result<Vec<u64>> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{target}: {proto} packets offered ")))
        .with_context(|| format!("no {target} summary in:\n{stdout}"))?;
    Ok(line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse().ok())
        .collect())
}

#[test]
fn compare_smoke_prints_every_target_with_forwarded_packets() -> Result<()> {
    if !root_or_skip("compare_smoke_prints_every_target_with_forwarded_packets") {
        return Ok(());
    }
    let out_dir = std::env::temp_dir().join(format!("xvs-bench-smoke-{}", std::process::id()));
    let out_arg = out_dir.to_string_lossy().into_owned();
    let run = run_bench(&["compare", "--smoke", "--out", &out_arg]);
    let files: Vec<_> = [
        "xvs.hgrm",
        "xvs-afxdp.hgrm",
        "nft.hgrm",
        "direct.hgrm",
        "xskfwd.hgrm",
        "latency.svg",
    ]
    .iter()
    .map(|f| out_dir.join(f).exists())
    .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    let stdout = run?;
    // The table: a header with forwarded_pkts, then one row per target.
    let header = stdout
        .lines()
        .find(|l| l.starts_with("target ") && l.contains("forwarded_pkts"))
        .with_context(|| format!("no table header in:\n{stdout}"))?;
    let column = header
        .split_whitespace()
        .position(|c| c == "forwarded_pkts")
        .expect("column present");
    for target in ["xvs", "xvs-afxdp", "nft", "direct", "xskfwd"] {
        let row = stdout
            .lines()
            .skip_while(|l| *l != header)
            .find(|l| l.split_whitespace().next() == Some(target))
            .with_context(|| format!("no {target} row in:\n{stdout}"))?;
        // The throughput cell may carry a "+" (generator-bound) glued to it: count cells.
        let cells: Vec<&str> = row.split_whitespace().filter(|c| *c != "+").collect();
        let forwarded: u64 = cells
            .get(column)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("no forwarded count in {row:?}"))?;
        ensure!(forwarded > 0, "{target} forwarded nothing:\n{stdout}");
    }
    for ratio in [
        "xvs/nft",
        "xvs/xvs-afxdp",
        "xvs-afxdp/nft",
        "xvs-afxdp/xskfwd",
    ] {
        ensure!(stdout.contains(ratio), "no {ratio} row:\n{stdout}");
    }
    ensure!(files.iter().all(|e| *e), "missing output files {files:?}");
    Ok(())
}

/// `xvs-bench connrate --smoke`: one short wrk run (`Connection: close`) through xvs and
/// nftables; every connection completes.
#[test]
fn connrate_smoke_counts_connections_through_xvs_and_nft() -> Result<()> {
    if !root_or_skip("connrate_smoke_counts_connections_through_xvs_and_nft") {
        return Ok(());
    }
    let stdout = run_bench(&["connrate", "--smoke"])?;
    for target in ["xvs", "nft"] {
        let rate: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{target}: median ")))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .with_context(|| format!("no {target} median in:\n{stdout}"))?;
        ensure!(rate > 0.0, "{target}: no connections:\n{stdout}");
    }
    Ok(())
}

/// `xvs-bench throughput --proto tcp` at a low rate through every target: whole TCP
/// conversations (SYN, data, FIN, ACK) reach the responders on the real servers, and their
/// SYN/ACKs and FIN/ACKs come back through the director to the client namespace. With nft a
/// missing SYN/ACK leaves the data untranslated (loss); with xvs and direct the responders'
/// answers are counted directly.
#[test]
fn tcp_throughput_smoke_completes_conversations_through_every_target() -> Result<()> {
    if !root_or_skip("tcp_throughput_smoke_completes_conversations_through_every_target") {
        return Ok(());
    }
    for target in ["xvs", "xvs-afxdp", "nft", "direct", "xskfwd"] {
        tcp_smoke_run("4", target)?;
    }
    Ok(())
}

/// `xvs-bench throughput` (UDP) at a low rate through xvs and nftables with each generator:
/// the XDP generator's frames (BPF_PROG_RUN live frames, counted by the XDP sink) and the
/// packet generator's (AF_PACKET, counted by UDP sockets on the reals) all get through.
#[test]
fn udp_throughput_smoke_forwards_the_frames_of_both_generators() -> Result<()> {
    if !root_or_skip("udp_throughput_smoke_forwards_the_frames_of_both_generators") {
        return Ok(());
    }
    for generator in ["xdp", "packet"] {
        for target in ["xvs", "nft"] {
            // A second run where the first lost frames: on this 2-core machine a burst dropped
            // at the veth ring while the director was descheduled (481 of 19,448 once in CI,
            // with another bench running beside it) is the machine's, not a forwarding fault;
            // a path that loses frames loses them twice.
            let first = udp_smoke_run("4", generator, target);
            if first.is_err() {
                eprintln!("udp smoke, {target}, {generator} generator, run again: {first:?}");
                udp_smoke_run("4", generator, target)?;
            }
        }
    }
    Ok(())
}

/// `xvs-bench throughput --family 6` at a low rate through xvs (its IPv6 service, with or
/// without an IPv6 fast path) and nftables NAT66: the XDP generator's IPv6 datagrams all get
/// through and are counted by the XDP sink, and whole IPv6 TCP conversations are answered
/// and their SYN/ACKs and FIN/ACKs come back.
#[test]
fn ipv6_throughput_smoke_forwards_through_xvs_and_nft() -> Result<()> {
    if !root_or_skip("ipv6_throughput_smoke_forwards_through_xvs_and_nft") {
        return Ok(());
    }
    for target in ["xvs", "nft"] {
        // Run again where the first lost frames: see udp_throughput_smoke's reason.
        let first = udp_smoke_run("6", "xdp", target);
        if first.is_err() {
            eprintln!("IPv6 udp smoke, {target}, run again: {first:?}");
            udp_smoke_run("6", "xdp", target)?;
        }
        tcp_smoke_run("6", target)?;
    }
    Ok(())
}

/// One `xvs-bench throughput --family FAMILY --proto tcp` run at 10,000 pps through
/// `target`: 256 flows of 11 segments, about 3.5 passes over every flow in 1 s, each SYN
/// 25 ms ahead of its flow's first ACK. 95 % of the segments forwarded, at least two replies
/// per flow sent and half of them back, no bad checksum.
fn tcp_smoke_run(family: &str, target: &str) -> Result<()> {
    let flows = 256;
    let flows_arg = flows.to_string();
    let stdout = run_bench(&[
        "throughput",
        "--family",
        family,
        "--proto",
        "tcp",
        "--rate",
        "10000",
        "--duration",
        "1",
        "--flows",
        &flows_arg,
        "--target",
        target,
    ])?;
    // "T: tcp packets offered N, forwarded M, loss L%; replies S sent, B back; K bad checksums"
    // ("tcp6" in IPv6): offered, forwarded, loss (integer and fraction parts), sent, back, bad.
    let traffic = if family == "6" { "tcp6" } else { "tcp" };
    let [offered, forwarded, _, _, sent, back, bad] = summary(&stdout, target, traffic)?[..] else {
        anyhow::bail!("cannot read {target}'s summary in:\n{stdout}");
    };
    ensure!(offered > 0, "{target}: nothing offered:\n{stdout}");
    ensure!(
        forwarded * 100 >= offered * 95,
        "{target}: {forwarded} of {offered} {traffic} segments forwarded:\n{stdout}"
    );
    ensure!(
        sent >= 2 * flows && back * 2 >= sent,
        "{target}: {sent} replies sent, {back} back (want >= {} sent, half back):\n{stdout}",
        2 * flows
    );
    ensure!(bad == 0, "{target}: {bad} bad checksums:\n{stdout}");
    Ok(())
}

/// One `xvs-bench throughput --family FAMILY` UDP run of
/// [`udp_throughput_smoke_forwards_the_frames_of_both_generators`] and
/// [`ipv6_throughput_smoke_forwards_through_xvs_and_nft`]: enough frames offered and 99 % of
/// them forwarded.
fn udp_smoke_run(family: &str, generator: &str, target: &str) -> Result<()> {
    let stdout = run_bench(&[
        "throughput",
        "--family",
        family,
        "--generator",
        generator,
        "--rate",
        "20000",
        "--duration",
        "1",
        "--target",
        target,
    ])?;
    // The header line names the traffic: "udp" (IPv4, as always) or "udp6".
    let traffic = if family == "6" { "udp6" } else { "udp" };
    ensure!(
        stdout.contains(&format!(", {traffic} ({generator} generator)")),
        "not {traffic} from the {generator} generator:\n{stdout}"
    );
    // "T: udp packets offered N, forwarded M, loss L%" ("udp6" in IPv6)
    let [offered, forwarded, ..] = summary(&stdout, target, traffic)?[..] else {
        anyhow::bail!("cannot read {target}'s summary in:\n{stdout}");
    };
    // Half the requested rate: enough frames to mean something, and a generator slowed by a
    // busy machine (it shares 2 cores with the director) does not fail a test of correctness
    // (once 14,921 of 20,000 under a parallel build).
    ensure!(
        offered >= 10_000,
        "{target}, {generator} generator: {offered} offered:\n{stdout}"
    );
    ensure!(
        forwarded * 100 >= offered * 99,
        "{target}, {generator} generator: {forwarded} of {offered} forwarded:\n{stdout}"
    );
    Ok(())
}

/// `xvs-bench latency --load`: the XDP generator's datagrams cross xvs while the probes run;
/// the sink counts the load and lets every probe through to the echo agents.
#[test]
fn latency_under_load_gets_every_probe_back() -> Result<()> {
    if !root_or_skip("latency_under_load_gets_every_probe_back") {
        return Ok(());
    }
    // Run again where the first run lost some: see udp_throughput_smoke's reason.
    let first = latency_under_load_run();
    if first.is_err() {
        eprintln!("latency under load, run again: {first:?}");
        return latency_under_load_run();
    }
    Ok(())
}

/// One run of [`latency_under_load_gets_every_probe_back`].
fn latency_under_load_run() -> Result<()> {
    let out_dir = std::env::temp_dir().join(format!("xvs-bench-load-{}", std::process::id()));
    let out_arg = out_dir.to_string_lossy().into_owned();
    let run = run_bench(&[
        "latency",
        "--target",
        "xvs",
        "--rate",
        "2000",
        "--duration",
        "1",
        "--load",
        "20000",
        "--out",
        &out_arg,
    ]);
    let _ = std::fs::remove_dir_all(&out_dir);
    let stdout = run?;
    // "xvs: background load A pps offered, B pps forwarded (F of S frames) ..."
    let load = stdout
        .lines()
        .find_map(|l| l.strip_prefix("xvs: background load "))
        .with_context(|| format!("no background load line in:\n{stdout}"))?;
    let (forwarded, sent) = load
        .split_once('(')
        .and_then(|(_, r)| r.split_once(" frames"))
        .and_then(|(r, _)| r.split_once(" of "))
        .and_then(|(f, s)| Some((f.parse::<u64>().ok()?, s.parse::<u64>().ok()?)))
        .with_context(|| format!("cannot read {load:?}"))?;
    ensure!(
        sent >= 10_000 && forwarded * 100 >= sent * 99,
        "load: {forwarded} of {sent} forwarded:\n{stdout}"
    );
    ensure!(
        stdout.contains("2000 sent, 2000 received, 0 lost"),
        "probes lost under load:\n{stdout}"
    );
    Ok(())
}
