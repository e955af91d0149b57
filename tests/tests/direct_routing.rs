//! Direct routing (`-g`) end to end, in the LVS-DR layout (topology.rs, "Direct return"): the
//! real servers hold the VIP on their loopback and answer the client through a router of
//! their own, so the director sees requests only. Real clients and servers: curl and nginx
//! over TCP, socat over UDP.

use anyhow::{ensure, Context};
use xvs_control::topology::TopologySpec;
use xvs_tests::{root_or_skip, Cluster};

const UDP_PORT: u16 = 5353;

/// The numbers of `-Ln --stats`'s line for `service` (e.g. "TCP  198.18.0.129:80"):
/// Conns, InPkts, OutPkts, InBytes, OutBytes (K/M suffixes left as they are).
fn stats_of(listing: &str, service: &str) -> anyhow::Result<Vec<String>> {
    let line = listing
        .lines()
        .find(|l| l.starts_with(service))
        .with_context(|| format!("no {service} in\n{listing}"))?;
    Ok(line.split_whitespace().skip(2).map(String::from).collect())
}

#[test]
fn direct_routing_with_the_real_servers_answering_clients_directly() -> anyhow::Result<()> {
    if !root_or_skip("direct_routing_with_the_real_servers_answering_clients_directly") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2edr".into(),
        ..TopologySpec::direct_return()
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    let vip = format!("{}:80", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "rr"])?;
    // ipvsadm's default method is direct routing: the first without -g, the second with a
    // port that -g replaces by the service's, as ipvsadm does.
    cluster.xvsadm(&["-a", "-t", &vip, "-r", "198.19.0.148"])?;
    cluster.xvsadm(&["-a", "-t", &vip, "-r", "198.19.0.137:8080", "-g"])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    let expected = "IP Virtual Server version 1.2.1 (size=4096)\n\
        Prot LocalAddress:Port Scheduler Flags\n  \
        -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
        TCP  198.18.0.129:80 rr\n  \
        -> 198.19.0.137:80              Route   1      0          0         \n  \
        -> 198.19.0.148:80              Route   1      0          0         \n";
    assert_eq!(listing, expected);

    // A real server the internal interface reaches through no connected route is refused,
    // and nothing changes.
    let (code, _, err) = cluster.xvsadm_raw(&["-a", "-t", &vip, "-r", "198.19.7.1", "-g"])?;
    ensure!(code != 0, "an off-link DR real server was accepted");
    ensure!(err.contains("connected route"), "{err}");
    assert_eq!(cluster.xvsadm(&["-Ln"])?, expected);

    cluster.curls_alternate(11)?;
    cluster.big_download_intact()?;
    // The download's ACKs took the XDP fast path (MACs rewritten in the kernel).
    ensure!(
        cluster.fast_forwarded()? > 0,
        "no DR packet took the fast path"
    );
    // The director saw requests only: OutPkts and OutBytes stay 0, as IPVS shows for DR.
    let stats = stats_of(
        &cluster.xvsadm(&["-Ln", "--stats"])?,
        "TCP  198.18.0.129:80",
    )?;
    assert_eq!(stats[0], "12", "connections: {stats:?}");
    assert_ne!(stats[1], "0", "in packets: {stats:?}");
    assert_eq!(
        (stats[2].as_str(), stats[4].as_str()),
        ("0", "0"),
        "{stats:?}"
    );
    // INPUT-ONLY states: a connection the client closed waits in FIN_WAIT (IPVS's DR
    // connections never reach TIME_WAIT, which needs the server's FIN).
    let conns = cluster.xvsadm(&["-Lnc"])?;
    let fin_wait = conns.lines().filter(|l| l.contains("FIN_WAIT")).count();
    assert_eq!(fin_wait, 12, "{conns}");

    // UDP: servers bound to the VIP answer from it; the client accepts only that.
    let vip_addr = cluster.topo.vip();
    cluster.start_udp_responders(UDP_PORT, Some(vip_addr))?;
    let udp_vip = format!("{}:{UDP_PORT}", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-u", &udp_vip, "-s", "rr"])?;
    for real in cluster.real_addrs() {
        cluster.xvsadm(&["-a", "-u", &udp_vip, "-r", &real.to_string(), "-g"])?;
    }
    cluster.udp_queries_alternate(UDP_PORT, 4)?;
    Ok(())
}
