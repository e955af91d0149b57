//! One-armed directors (topology.rs, "One arm"): `--external` and `--internal` name the same
//! interface, the VIP lives on the director's loopback and a router brings it the clients'
//! traffic. Direct routing (the usual one-NIC layout), tunnels and masquerading, with curl and
//! nginx.

use anyhow::ensure;
use xvs_control::topology::TopologySpec;
use xvs_tests::{root_or_skip, Cluster};

/// Configures `-A -t VIP:80 -s rr` with the real servers by `methods` (one each, in order),
/// then checks that 11 curls alternate and a 1 MiB download arrives intact; returns the
/// `-Ln --stats` listing.
fn serve(cluster: &Cluster, methods: &[&[&str]]) -> anyhow::Result<String> {
    let vip = format!("{}:80", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "rr"])?;
    for (real, method) in cluster.real_addrs().iter().zip(methods) {
        let real = real.to_string();
        let mut args = vec!["-a", "-t", &vip, "-r", &real];
        args.extend_from_slice(method);
        cluster.xvsadm(&args)?;
    }
    cluster.curls_alternate(11)?;
    cluster.big_download_intact()?;
    cluster.xvsadm(&["-Ln", "--stats"])
}

/// The OutPkts column of the service line of a `-Ln --stats` listing.
fn out_packets(listing: &str) -> &str {
    listing
        .lines()
        .find(|l| l.starts_with("TCP  198.18.0.129:80"))
        .and_then(|l| l.split_whitespace().nth(4))
        .unwrap_or("?")
}

#[test]
fn one_armed_direct_routing() -> anyhow::Result<()> {
    if !root_or_skip("one_armed_direct_routing") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e1dr".into(),
        ..TopologySpec::one_armed(true)
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    ensure!(cluster.topo.ext_if() == cluster.topo.int_if());
    xvs_tests::ensure_contains(
        &cluster.director.log(),
        "xvsd: one arm int0 (1 queues) for both sides",
    )?;
    let listing = serve(&cluster, &[&["-g"], &["-g"]])?;
    assert_eq!(out_packets(&listing), "0", "{listing}");
    Ok(())
}

#[test]
fn one_armed_masquerading() -> anyhow::Result<()> {
    if !root_or_skip("one_armed_masquerading") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e1nat".into(),
        ..TopologySpec::one_armed(false)
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let listing = serve(&cluster, &[&["-m"], &["-m"]])?;
    // Replies came back through the one interface and were translated.
    assert_ne!(out_packets(&listing), "0", "{listing}");
    Ok(())
}

/// Tunnels from a one-armed director: ipip to one real server, GUE to the other (decapsulated
/// in XDP on the real servers: see tunnels.rs).
#[test]
fn one_armed_tunnels() -> anyhow::Result<()> {
    if !root_or_skip("one_armed_tunnels") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2e1tun".into(),
        ..TopologySpec::one_armed(true)
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    cluster.start_decapsulators(6080, 60)?;
    let gue: &[&str] = &["-i", "--tun-type", "gue", "--tun-port", "6080"];
    let listing = serve(&cluster, &[&["-i"], gue])?;
    assert_eq!(out_packets(&listing), "0", "{listing}");
    Ok(())
}
