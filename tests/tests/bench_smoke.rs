//! `xvs-bench compare --smoke` end to end: builds the benchmark rig for every target (xvs,
//! nftables NAT, plain routing), runs a short throughput and latency measurement on each and
//! prints the comparison table. Keeps the benchmark command from rotting; it measures
//! nothing worth reading.

use anyhow::{ensure, Context, Result};
use std::process::Command;
use xvs_control::director::find_binary;
use xvs_tests::root_or_skip;

#[test]
fn compare_smoke_prints_every_target_with_forwarded_packets() -> Result<()> {
    if !root_or_skip("compare_smoke_prints_every_target_with_forwarded_packets") {
        return Ok(());
    }
    let bench = find_binary("xvs-bench")?;
    let out_dir = std::env::temp_dir().join(format!("xvs-bench-smoke-{}", std::process::id()));
    let output = Command::new(&bench)
        .args(["compare", "--smoke", "--out"])
        .arg(&out_dir)
        .output()
        .context("running xvs-bench compare --smoke")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let files: Vec<_> = ["xvs.hgrm", "nft.hgrm", "direct.hgrm", "latency.svg"]
        .iter()
        .map(|f| out_dir.join(f).exists())
        .collect();
    let _ = std::fs::remove_dir_all(&out_dir);
    ensure!(
        output.status.success(),
        "xvs-bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The table: a header with forwarded_pkts, then one row per target.
    let header = stdout
        .lines()
        .find(|l| l.starts_with("target ") && l.contains("forwarded_pkts"))
        .with_context(|| format!("no table header in:\n{stdout}"))?;
    let column = header
        .split_whitespace()
        .position(|c| c == "forwarded_pkts")
        .expect("column present");
    for target in ["xvs", "nft", "direct"] {
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
    ensure!(stdout.contains("xvs/nft"), "no ratio row:\n{stdout}");
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
    let bench = find_binary("xvs-bench")?;
    let output = Command::new(&bench)
        .args(["connrate", "--smoke"])
        .output()
        .context("running xvs-bench connrate --smoke")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(
        output.status.success(),
        "xvs-bench failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
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
