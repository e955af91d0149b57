//! Mid-flow takeover (`xvsd --sloppy-tcp`, IPVS's sloppy_tcp): a director that receives a
//! segment of a flow it has no entry for schedules it when the service's scheduler is
//! consistent (`sh`, `mh`, `dh`), so the flow keeps its real server. Behind ECMP that is a
//! flow the router moved from another director; here it is the same director, SIGKILLed in
//! the middle of a download and started again with an empty table, and configured with the
//! real servers in the other order (the tables do not depend on it). Direct routing (the
//! scale-out layout): the real servers answer the client directly.

use anyhow::ensure;
use std::time::Duration;
use xvs_control::director::DirectorProcess;
use xvs_control::topology::{big_file_bytes, TopologySpec, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, Cluster, SlowDownload};

/// `-A -t VIP:80 -s sh` with both real servers by direct routing, in address order or not.
fn configure(cluster: &Cluster, reversed: bool) -> anyhow::Result<()> {
    let vip = format!("{}:80", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "sh"])?;
    let mut reals = cluster.real_addrs();
    reals.sort();
    if reversed {
        reals.reverse();
    }
    for real in reals {
        cluster.xvsadm(&["-a", "-t", &vip, "-r", &real.to_string(), "-g"])?;
    }
    Ok(())
}

#[test]
fn a_restarted_director_takes_over_a_download_mid_flow() -> anyhow::Result<()> {
    if !root_or_skip("a_restarted_director_takes_over_a_download_mid_flow") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2esloppy".into(),
        ..TopologySpec::direct_return()
    };
    let args = ["--sloppy-tcp"];
    let mut cluster = Cluster::start_spec(&spec, &args)?;
    configure(&cluster, false)?;
    // While no xvsd runs, the director's own kernel gets the flow's segments (the VIP is
    // its address) and would reset it. Behind ECMP the router moves the flow to another
    // director instead; here the director itself comes back, so its kernel stays quiet.
    let director_ns = cluster.topo.director_ns().to_string();
    for rule in [
        "add table inet xvstakeover",
        "add chain inet xvstakeover out { type filter hook output priority 0 ; }",
        "add rule inet xvstakeover out tcp flags & rst == rst drop",
    ] {
        let mut command = vec!["nft"];
        command.extend(rule.split(' '));
        cluster.topo.run_in(&director_ns, &command)?;
    }

    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(1000));
    ensure!(download.running()?, "the download finished too early");
    cluster.kill_director()?;
    cluster.director = DirectorProcess::start(&cluster.topo, &cluster.xvsd, &args)?;
    configure(&cluster, true)?;

    let body = download.finish(Duration::from_secs(30))?;
    ensure!(
        body == big_file_bytes(),
        "the download differs ({} bytes)",
        body.len()
    );
    // The new director never saw the flow's SYN: its one entry was opened mid-flow.
    let conns = cluster.xvsadm(&["-Lnc"])?;
    let entries: Vec<&str> = conns.lines().skip(2).collect();
    ensure!(entries.len() == 1, "one taken-over connection in\n{conns}");
    Ok(())
}
