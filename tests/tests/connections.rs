//! `ipvsadm -L -c` through the real daemon: the workers' connection entries, with IPVS's state
//! names and the time each has left.

use std::time::Duration;
use xvs_control::protocol::{Command, Protocol, Reply};
use xvs_control::topology::BIG_FILE_PATH;
use xvs_tests::{root_or_skip, Cluster, SlowDownload};

#[test]
fn established_and_closed_connections_are_listed() -> anyhow::Result<()> {
    if !root_or_skip("established_and_closed_connections_are_listed") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2econns", 1, &[])?;
    cluster.configure("-t", 80)?;
    cluster.xvsadm(&["--set", "0", "0", "0"]).ok();
    // rr: the download goes to .148, the short request after it to .137 (then TIME_WAIT).
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(300));
    cluster.curl("/")?;
    assert!(download.running()?, "download finished too early");

    let Reply::Connections(reply) = cluster.director.client()?.call(Command::Connections)? else {
        anyhow::bail!("not a connections reply");
    };
    assert_eq!(reply.workers_missing, 0);
    let client = cluster.topo.client_addr();
    let find = |real_last: u8| {
        reply
            .connections
            .iter()
            .find(|c| matches!(c.real, std::net::IpAddr::V4(a) if a.octets()[3] == real_last))
            .cloned()
    };
    let long = find(148).ok_or_else(|| anyhow::anyhow!("no entry to .148: {reply:?}"))?;
    assert_eq!(long.proto, Protocol::Tcp);
    assert_eq!(long.state, "ESTABLISHED");
    assert_eq!(
        (long.client, long.vip, long.vport, long.rport),
        (client.into(), cluster.topo.vip().into(), 80, 80)
    );
    // IPVS's established timeout is 900 s; a segment arrived within the last second.
    assert!((898_000..=900_000).contains(&long.expires_ms), "{long:?}");
    let short = find(137).ok_or_else(|| anyhow::anyhow!("no entry to .137: {reply:?}"))?;
    assert_eq!(short.state, "TIME_WAIT", "{short:?}");
    assert!(short.expires_ms <= 120_000, "{short:?}");
    assert_eq!(reply.connections.len(), 2, "{reply:?}");
    download.finish(Duration::from_secs(30))?;
    Ok(())
}
