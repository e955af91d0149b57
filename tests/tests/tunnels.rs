//! Tunnelling (`-i`) end to end in the LVS-DR/TUN layout (topology.rs, "Direct return"):
//! ipip, GUE and GRE to real servers that hold the VIP and answer the client directly, with
//! curl, nginx and socat.
//!
//! The real servers decapsulate in XDP (`xvs-bench agent decap`): this machine's kernel is
//! built without ipip, fou and gre (CONFIG_NET_IPIP, CONFIG_NET_FOU and CONFIG_NET_IPGRE unset,
//! no modules), so `tunl0`, `ip fou add ... gue` and `gre0` do not exist here. The agent strips
//! exactly the headers those would and hands the inner packet to the stack, so what reaches
//! nginx is what the kernel's decapsulation would deliver.

use anyhow::{ensure, Context};
use std::time::Duration;
use xvs_control::topology::TopologySpec;
use xvs_tests::{root_or_skip, Cluster};

const GUE_PORT: u16 = 6080;
const UDP_PORT: u16 = 5353;

#[test]
fn ipip_gue_and_gre_tunnels_to_real_servers_that_answer_directly() -> anyhow::Result<()> {
    if !root_or_skip("ipip_gue_and_gre_tunnels_to_real_servers_that_answer_directly") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2etun".into(),
        ..TopologySpec::direct_return()
    };
    let mut cluster = Cluster::start_spec(&spec, &[])?;
    cluster.start_decapsulators(GUE_PORT, 120)?;
    let vip = format!("{}:80", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "rr"])?;
    cluster.xvsadm(&["-a", "-t", &vip, "-r", "198.19.0.148", "-i"])?;
    let gue_port = GUE_PORT.to_string();
    cluster.xvsadm(&[
        "-a",
        "-t",
        &vip,
        "-r",
        "198.19.0.137",
        "--ipip",
        "--tun-type",
        "gue",
        "--tun-port",
        &gue_port,
        "--tun-csum",
    ])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        listing.lines().filter(|l| l.contains("Tunnel  1")).count() == 2,
        "{listing}"
    );
    let saved = cluster.xvsadm(&["-S", "-n"])?;
    ensure!(
        saved.contains("-r 198.19.0.137:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum")
            && saved.contains("-r 198.19.0.148:80 -i -w 1 --tun-type ipip"),
        "{saved}"
    );

    cluster.curls_alternate(11)?;
    // One download through each tunnel (round robin goes on from the 12th connection).
    for _ in 0..2 {
        cluster.big_download_intact()?;
    }
    // The ipip real server's download took the XDP fast path (wrapped there); the GUE one,
    // checksummed, stayed with the workers.
    ensure!(
        cluster.fast_forwarded()? > 0,
        "no tunnelled packet took the fast path"
    );

    // A request whose full-size segments do not fit the tunnel (1500 + 20 > the internal
    // interface's 1500): the client gets "fragmentation needed" from the VIP, lowers its path
    // MTU and the request gets through. nginx answers a POST to a file with 405.
    let body = cluster.topo.work_dir().join("post-body");
    std::fs::write(&body, vec![b'x'; 6000]).context("writing the request body")?;
    let code = cluster.topo.run_in_timeout(
        cluster.topo.client_ns(),
        &[
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
            "--data-binary",
            &format!("@{}", body.display()),
            &format!("http://{vip}/"),
        ],
        Duration::from_secs(15),
    )?;
    assert_eq!(code.trim(), "405", "the big request was answered");
    let too_big: u64 = cluster
        .stats()?
        .workers
        .iter()
        .map(|w| w.drops.get("too_big").copied().unwrap_or(0))
        .sum();
    ensure!(too_big > 0, "no request was too big for the tunnel");

    // GRE, over UDP: servers bound to the VIP answer from it.
    let vip_addr = cluster.topo.vip();
    cluster.start_udp_responders(UDP_PORT, Some(vip_addr))?;
    let udp_vip = format!("{}:{UDP_PORT}", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-u", &udp_vip, "-s", "rr"])?;
    for real in cluster.real_addrs() {
        let real = real.to_string();
        let args = ["-a", "-u", &udp_vip, "-r", &real, "-i", "--tun-type", "gre"];
        cluster.xvsadm(&args)?;
    }
    cluster.udp_queries_alternate(UDP_PORT, 2)?;
    // And over ipip and GUE: one real server each.
    let udp_port = UDP_PORT + 1;
    cluster.start_udp_responders(udp_port, Some(vip_addr))?;
    let udp_vip = format!("{}:{udp_port}", cluster.topo.vip());
    cluster.xvsadm(&["-A", "-u", &udp_vip, "-s", "rr"])?;
    cluster.xvsadm(&["-a", "-u", &udp_vip, "-r", "198.19.0.148", "-i"])?;
    let gue = ["--tun-type", "gue", "--tun-port", &gue_port];
    let args = [
        &["-a", "-u", &udp_vip, "-r", "198.19.0.137", "-i"][..],
        &gue,
    ]
    .concat();
    cluster.xvsadm(&args)?;
    cluster.udp_queries_alternate(udp_port, 4)?;

    // Requests only: nothing came back through the director.
    let stats = cluster.xvsadm(&["-Ln", "--stats"])?;
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP  198.18.0.129:80"))
        .context("no service line")?;
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[4], "0", "OutPkts: {line}");
    Ok(())
}
