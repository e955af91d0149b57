//! Many concurrent clients through two workers: wrk with keep-alive connections (long-lived
//! flows whose replies land on either queue) and with `Connection: close` (a new connection per
//! request: scheduling, state tracking and expiry at rate). No socket error, no non-2xx.

use std::time::Duration;
use xvs_tests::{root_or_skip, Cluster};

/// Runs wrk from the client namespace and returns (requests completed, its report).
fn wrk(cluster: &Cluster, extra: &[&str]) -> anyhow::Result<(u64, String)> {
    let url = format!("http://{}/", cluster.topo.vip());
    let mut args = vec!["wrk", "-t2", "-c32", "-d3s"];
    args.extend_from_slice(extra);
    args.push(&url);
    let report =
        cluster
            .topo
            .run_in_timeout(cluster.topo.client_ns(), &args, Duration::from_secs(30))?;
    // "12345 requests in 3.00s, 2.9MB read"
    let requests = report
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.to_string())
        })
        .ok_or_else(|| anyhow::anyhow!("no request count in wrk's report:\n{report}"))?
        .parse()?;
    eprintln!("wrk {extra:?}: {requests} requests\n{report}");
    Ok((requests, report))
}

#[test]
fn wrk_through_two_workers_has_no_errors() -> anyhow::Result<()> {
    if !root_or_skip("wrk_through_two_workers_has_no_errors") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ewrk", 2, &["--workers", "2"])?;
    cluster.configure("-t", 80)?;
    for extra in [&[][..], &["-H", "Connection: close"][..]] {
        let (requests, report) = wrk(&cluster, extra)?;
        assert!(
            !report.contains("Socket errors") && !report.contains("Non-2xx"),
            "wrk {extra:?} saw errors:\n{report}\nxvsd log:\n{}",
            cluster.director.log()
        );
        assert!(
            requests >= 300,
            "only {requests} requests with {extra:?}:\n{report}"
        );
    }
    Ok(())
}

#[test]
fn four_queues_are_shared_by_two_workers() -> anyhow::Result<()> {
    if !root_or_skip("four_queues_are_shared_by_two_workers") {
        return Ok(());
    }
    // Default worker count: one per queue, at most one per core (2 on CI machines): each
    // worker then owns two queues of each interface.
    let cluster = Cluster::start("xvse2eq4", 4, &[])?;
    cluster.configure("-t", 80)?;
    for i in 0..40 {
        cluster
            .curl("/")
            .map_err(|e| anyhow::anyhow!("curl {i} of 40: {e:#}"))?;
    }
    let (requests, report) = wrk(&cluster, &[])?;
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(requests >= 300, "{report}");
    Ok(())
}
