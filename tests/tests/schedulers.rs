//! Schedulers through the real daemon: ipvsadm's default (`wlc`, when `-s` is omitted), `wrr`
//! proportions, and `sh` keeping a client on one server.

use std::collections::BTreeMap;
use xvs_tests::{root_or_skip, Cluster};

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
