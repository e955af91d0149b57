//! One-armed directors (topology.rs, "One arm"): `--external` and `--internal` name the same
//! interface, the VIP lives on the director's loopback and a router brings it the clients'
//! traffic. Direct routing (the usual one-NIC layout), tunnels and masquerading, with curl and
//! nginx over TCP and socat over UDP (FullNAT's one-armed test is in fullnat.rs).

use anyhow::ensure;
use xvs_control::topology::TopologySpec;
use xvs_tests::{root_or_skip, Cluster};

const UDP_PORT: u16 = 5353;

/// Configures `-A -t VIP:80 -s rr` and `-A -u VIP:5353 -s rr` with the real servers by
/// `methods` (one each, in order), then checks that 11 curls alternate, a 1 MiB download
/// arrives intact and UDP queries alternate (the servers answer from the VIP where
/// `direct_return`, as servers that hold it must); returns the `-Ln --stats` listing.
fn serve(
    cluster: &mut Cluster,
    methods: &[&[&str]],
    direct_return: bool,
) -> anyhow::Result<String> {
    let vip = cluster.topo.vip();
    let (tcp, udp) = (format!("{vip}:80"), format!("{vip}:{UDP_PORT}"));
    for (flag, service) in [("-t", &tcp), ("-u", &udp)] {
        cluster.xvsadm(&["-A", flag, service, "-s", "rr"])?;
        for (real, method) in cluster.real_addrs().iter().zip(methods) {
            let real = real.to_string();
            let mut args = vec!["-a", flag, service, "-r", &real];
            args.extend_from_slice(method);
            cluster.xvsadm(&args)?;
        }
    }
    cluster.curls_alternate(11)?;
    cluster.big_download_intact()?;
    cluster.start_udp_responders(UDP_PORT, direct_return.then_some(vip))?;
    cluster.udp_queries_alternate(UDP_PORT, 4)?;
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
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    ensure!(cluster.topo.ext_if() == cluster.topo.int_if());
    xvs_tests::ensure_contains(
        &cluster.director.log(),
        "xvsd: one arm int0 (1 queues) for both sides",
    )?;
    let listing = serve(&mut cluster, &[&["-g"], &["-g"]], true)?;
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
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    let listing = serve(&mut cluster, &[&["-m"], &["-m"]], false)?;
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
    let listing = serve(&mut cluster, &[&["-i"], gue], true)?;
    assert_eq!(out_packets(&listing), "0", "{listing}");
    Ok(())
}
