//! Two queues per interface and two workers: replies land on whichever queue the sender hashed
//! them to, so the two directions of a flow routinely reach different workers; every request
//! must still succeed, and both workers must carry traffic.

use std::collections::BTreeMap;
use xvs_control::protocol::{Command, Reply};
use xvs_tests::{root_or_skip, Cluster};

#[test]
fn two_workers_serve_200_sequential_curls() -> anyhow::Result<()> {
    if !root_or_skip("two_workers_serve_200_sequential_curls") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2emq", 2, &["--workers", "2"])?;
    cluster.configure("-t", 80)?;
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..200 {
        let body = cluster
            .curl("/")
            .map_err(|e| anyhow::anyhow!("curl {i} of 200 failed: {e:#}"))?;
        *answers.entry(body.trim_end().to_string()).or_default() += 1;
    }
    assert_eq!(answers.values().sum::<usize>(), 200);
    assert_eq!(
        answers.get("198.19.0.148 is www.shuyan.com").copied(),
        Some(100),
        "{answers:?}"
    );
    assert_eq!(
        answers.get("198.19.0.137").copied(),
        Some(100),
        "{answers:?}"
    );

    let Reply::Stats(stats) = cluster.director.client()?.call(Command::Stats)? else {
        anyhow::bail!("stats reply expected");
    };
    assert_eq!(stats.workers.len(), 2, "{stats:?}");
    for w in &stats.workers {
        assert!(
            w.rx > 0 && w.tx > 0,
            "worker {} carried no traffic: {stats:?}",
            w.worker
        );
    }
    // ARP for the VIP and the real servers went to the kernel, counted by the XDP program.
    assert!(
        stats.workers.iter().map(|w| w.passed).sum::<u64>() > 0,
        "{stats:?}"
    );
    let handed: u64 = stats.workers.iter().map(|w| w.handed_off).sum();
    assert!(
        handed > 0,
        "no frame reached the wrong worker in 200 connections: {stats:?}"
    );
    assert!(cluster.director.log().contains("2 worker(s)"));
    Ok(())
}
