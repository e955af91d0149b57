//! FullNAT (`--fullnat`) end to end: the real servers' default route is not the director
//! (topology.rs, "Direct return": a router of their own), yet their replies come back through
//! it, since each request reaches them from the director's local address (LIP) and a port of
//! its own. The LIP is a /32 of the director's internal interface, added before xvsd starts
//! (so xvsd claims it from its kernel). Two-armed and one-armed, with curl and nginx over TCP
//! (a 1 MiB download included) and socat over UDP; the real server sees LIP:lport, and the
//! connection listing maps it back to the client. Two-armed with two workers, whose local
//! ports partition the range so that each reply reaches its connection's owner.

use anyhow::{ensure, Context};
use std::net::Ipv4Addr;
use xvs_control::topology::{TopologySpec, PEER_PATH};
use xvs_tests::{root_or_skip, Cluster};

const LIP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 160);
const UDP_PORT: u16 = 5353;

fn fullnat_serves_clients(spec: TopologySpec) -> anyhow::Result<()> {
    let spec = TopologySpec {
        director_addrs: vec![LIP],
        ..spec
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    let vip = format!("{}:80", cluster.topo.vip());
    let lip = LIP.to_string();
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "rr"])?;
    // No local address yet: refused, naming the rule, and nothing changes.
    let (code, _, err) =
        cluster.xvsadm_raw(&["-a", "-t", &vip, "-r", "198.19.0.148", "--fullnat"])?;
    ensure!(
        code != 0,
        "a FullNAT real server without a local address was accepted"
    );
    ensure!(err.contains("local address"), "{err}");
    cluster.xvsadm(&["--add-laddr", "-z", &lip, "-t", &vip])?;
    for real in cluster.real_addrs() {
        cluster.xvsadm(&["-a", "-t", &vip, "-r", &real.to_string(), "--fullnat"])?;
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        listing.matches("FullNat").count() == 2,
        "two FullNat real servers in\n{listing}"
    );
    let laddrs = cluster.xvsadm(&["--get-laddr", "-t", &vip])?;
    ensure!(laddrs.contains(&lip), "{laddrs}");

    cluster.curls_alternate(11)?;
    cluster.big_download_intact()?;
    // The download's ACKs and data took the XDP fast path, both endpoints rewritten there.
    ensure!(
        cluster.fast_forwarded()? > 0,
        "no FullNAT packet took the fast path"
    );

    // The real server sees the local address and port; the listing maps them to the client.
    let peer = cluster.curl(PEER_PATH)?;
    let peer = peer.trim();
    let lport = peer
        .strip_prefix(&format!("{lip}:"))
        .with_context(|| format!("the real server saw {peer}, not {lip}:port"))?;
    let conns = cluster.xvsadm(&["-Lnc"])?;
    let client = cluster.topo.client_addr().to_string();
    ensure!(
        conns
            .lines()
            .any(|l| l.contains(&format!("{lip}:{lport}")) && l.contains(&client)),
        "no connection of {client} through {lip}:{lport} in\n{conns}"
    );

    // UDP: the servers answer from RIP:port to LIP:lport; the client gets VIP:port.
    cluster.start_udp_responders(UDP_PORT, None)?;
    let udp_vip = format!("{}:{UDP_PORT}", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-u", &udp_vip, "-s", "rr"])?;
    cluster.xvsadm(&["--add-laddr", "-z", &lip, "-u", &udp_vip])?;
    for real in cluster.real_addrs() {
        cluster.xvsadm(&["-a", "-u", &udp_vip, "-r", &real.to_string(), "--fullnat"])?;
    }
    cluster.udp_queries_alternate(UDP_PORT, 4)?;
    // Every reply found its connection at the worker its local port hashes to.
    let stats = cluster.stats()?;
    for reason in ["no_local_port", "no_connection"] {
        let drops = stats.drops(reason);
        ensure!(drops == 0, "{drops} frames dropped as {reason}");
    }
    Ok(())
}

#[test]
fn fullnat_two_armed() -> anyhow::Result<()> {
    if !root_or_skip("fullnat_two_armed") {
        return Ok(());
    }
    // Two queues, two workers: replies arrive on either queue and reach the worker that owns
    // their connection by the local port's hash alone.
    fullnat_serves_clients(TopologySpec {
        prefix: "xvse2efn".into(),
        queues: 2,
        ..TopologySpec::direct_return()
    })
}

#[test]
fn fullnat_one_armed() -> anyhow::Result<()> {
    if !root_or_skip("fullnat_one_armed") {
        return Ok(());
    }
    fullnat_serves_clients(TopologySpec {
        prefix: "xvse2efn1".into(),
        ..TopologySpec::one_armed(true)
    })
}
