//! Tunnelling (`-i`) end to end in the LVS-DR/TUN layout (topology.rs, "Direct return"):
//! ipip, GUE and GRE to real servers that hold the VIP and answer the client directly, with
//! curl, nginx and socat; and the same for an IPv6 service (IPv6 in IPv6, GUE and GRE over
//! IPv6) on the dual-stack layout with direct return.
//!
//! The real servers decapsulate IPv4 in XDP (`xvs-bench agent decap`): this machine's kernel
//! is built without ipip, fou and gre (CONFIG_NET_IPIP, CONFIG_NET_FOU and CONFIG_NET_IPGRE
//! unset, no modules), so `tunl0`, `ip fou add ... gue` and `gre0` do not exist here. The agent
//! strips exactly the headers those would and hands the inner packet to the stack, so what
//! reaches nginx is what the kernel's decapsulation would deliver. Nor are ip6tnl and ip6gre
//! built (CONFIG_IPV6_TUNNEL, CONFIG_IPV6_GRE): IPv6 tunnels end in `decap6`, the real
//! server's own stack receiving the outer packet and taking the inner one back through a TUN
//! device.

#[path = "tunnels/decap6.rs"]
mod decap6;

use anyhow::{ensure, Context};
use decap6::Decapsulator;
use std::sync::atomic::Ordering;
use std::time::Duration;
use xvs_control::topology::{self, TopologySpec};
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
    // interface's 1500): "fragmentation needed" from the VIP.
    big_request_gets_through(&cluster, &format!("http://{vip}/"))?;

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

/// IPv6 tunnels end to end: an IPv6 service on VIP6 tunnelled to two IPv6 real servers, one
/// by IPv6 in IPv6 (`-i`, ipvsadm's "ipip"), one by GUE without checksum (RFC 6935's zero,
/// which the real server accepts as `fou` does), listed as `Tunnel`, saved by `-S` and
/// restored by `-R`; round robin over both with curl, a 1 MiB download through each, a
/// request too big for the tunnel getting Packet Too Big (the client lowers its path MTU and
/// gets through), then GRE with a checksum and GUE with one; the real servers answer from
/// VIP6 through the router, nothing comes back through the director, and no IPv6 tunnelled
/// flow takes the XDP fast path (it wraps IPv4 only).
#[test]
fn ipv6_tunnels_to_real_servers_that_answer_directly() -> anyhow::Result<()> {
    if !root_or_skip("ipv6_tunnels_to_real_servers_that_answer_directly") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2etun6".into(),
        direct_return: true,
        ..TopologySpec::dual_stack()
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let dip6 = topology::ipv6_of(topology::DIP);
    let reals6: Vec<String> = cluster
        .real_addrs()
        .iter()
        .map(|&a| format!("[{}]:80", topology::ipv6_of(a)))
        .collect();
    // Declared after the cluster: stopped before its namespaces go.
    let decapsulators = (0..reals6.len())
        .map(|i| {
            let ns = cluster.topo.real_ns(i);
            Decapsulator::start(&cluster.topo, ns, dip6, GUE_PORT, Duration::from_secs(150))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let vip = format!("[{}]:80", cluster.topo.vip6());
    let gue_port = GUE_PORT.to_string();
    cluster.xvsadm(&["-A", "-t", &vip, "-s", "rr"])?;
    cluster.xvsadm(&["-a", "-t", &vip, "-r", &reals6[0], "-i"])?;
    let gue = ["--tun-type", "gue", "--tun-port", &gue_port];
    cluster.xvsadm(&[&["-a", "-t", &vip, "-r", &reals6[1], "-i"][..], &gue].concat())?;

    let listing = cluster.xvsadm(&["-Ln"])?;
    ensure!(
        reals6
            .iter()
            .all(|r| listing.contains(&format!("  -> {r:<28} Tunnel  1"))),
        "{listing}"
    );
    let saved = cluster.xvsadm(&["-S", "-n"])?;
    ensure!(
        saved.contains(&format!(
            "-a -t {vip} -r {} -i -w 1 --tun-type ipip\n",
            reals6[0]
        )) && saved.contains(&format!(
            "-a -t {vip} -r {} -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n",
            reals6[1]
        )),
        "{saved}"
    );
    cluster.xvsadm(&["-C"])?;
    let (code, stderr) = cluster.xvsadm_restore(&saved)?;
    ensure!(code == 0, "-R: {stderr}");
    ensure!(
        cluster.xvsadm(&["-Ln"])? == listing,
        "-R gave back another listing"
    );

    // Round robin over both (in the restored order: -S lists 137 first).
    let url = |path: &str| format!("http://{vip}{path}");
    let alternate = |count: usize| -> anyhow::Result<()> {
        let answers = (0..count)
            .map(|_| {
                cluster
                    .curl_url(&url("/"))
                    .map(|a| a.trim_end().to_string())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pages: Vec<&String> = cluster.topo.reals().iter().map(|r| &r.page).collect();
        let alternating = answers.windows(2).all(|w| w[0] != w[1]);
        ensure!(
            alternating && answers.iter().all(|a| pages.contains(&a)),
            "answers {answers:?}\nxvsd log:\n{}",
            cluster.director.log()
        );
        Ok(())
    };
    alternate(6)?;
    for _ in 0..2 {
        let body = cluster.download_url(&url(topology::BIG_FILE_PATH))?;
        ensure!(
            body == topology::big_file_bytes(),
            "the 1 MiB download differs ({} bytes)\nxvsd log:\n{}",
            body.len(),
            cluster.director.log()
        );
    }
    let counts: Vec<_> = decapsulators.iter().map(|d| &d.counts).collect();
    ensure!(
        counts[0].ip6ip6.load(Ordering::Relaxed) > 0 && counts[1].gue.load(Ordering::Relaxed) > 0,
        "tunnelled packets: {counts:?}"
    );

    // A request whose full-size segments (1500 bytes) do not fit the tunnel (1500 + 40 or 52
    // > the internal interface's 1500): Packet Too Big from VIP6 (the external interface's
    // address).
    big_request_gets_through(&cluster, &url("/"))?;

    // GRE and GUE with checksums, for new connections.
    let csum = "--tun-csum";
    cluster.xvsadm(&[
        "-e",
        "-t",
        &vip,
        "-r",
        &reals6[0],
        "-i",
        "--tun-type",
        "gre",
        csum,
    ])?;
    cluster.xvsadm(
        &[
            &["-e", "-t", &vip, "-r", &reals6[1], "-i"][..],
            &gue,
            &[csum],
        ]
        .concat(),
    )?;
    let gue_before = counts[1].gue.load(Ordering::Relaxed);
    alternate(4)?;
    ensure!(
        counts[0].gre.load(Ordering::Relaxed) > 0
            && counts[1].gue.load(Ordering::Relaxed) > gue_before,
        "tunnelled packets: {counts:?}"
    );

    // Requests only: nothing came back through the director; nothing took the fast path.
    let stats = cluster.xvsadm(&["-Ln", "--stats"])?;
    let line = stats
        .lines()
        .find(|l| l.starts_with(&format!("TCP  {vip}")))
        .context("no service line")?;
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(columns[4], "0", "OutPkts: {line}");
    assert_eq!(
        cluster.fast_forwarded()?,
        0,
        "IPv6 tunnels stay with the workers"
    );
    ensure!(
        counts
            .iter()
            .all(|c| c.refused.load(Ordering::Relaxed) == 0),
        "refused by a real server: {counts:?}"
    );
    for d in decapsulators {
        d.stop()?;
    }
    Ok(())
}

/// POSTs 6000 bytes to `url` from the client: its full-size segments do not fit the tunnel,
/// so the director answers them "too big" (counted as `too_big` drops) from the VIP, the
/// client lowers its path MTU and the request gets through. nginx answers a POST to a file
/// with 405.
fn big_request_gets_through(cluster: &Cluster, url: &str) -> anyhow::Result<()> {
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
            url,
        ],
        Duration::from_secs(15),
    )?;
    assert_eq!(code.trim(), "405", "the big request was answered");
    let too_big = cluster.stats()?.drops("too_big");
    ensure!(too_big > 0, "no request was too big for the tunnel");
    Ok(())
}
