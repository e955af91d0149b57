//! The seed scenario of design.md, end to end: nginx real servers, curl from the client, xvsd
//! configured through xvsadm with the tutorial's ipvsadm commands.

use xvs_tests::{ensure_contains, root_or_skip, Cluster};

#[test]
fn seed_cluster_alternates_and_lists_like_ipvsadm() -> anyhow::Result<()> {
    if !root_or_skip("seed_cluster_alternates_and_lists_like_ipvsadm") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2eseed", 1, &[])?;
    cluster.configure("-t", 80)?;

    let listing = cluster.xvsadm(&["-Ln"])?;
    let expected = "IP Virtual Server version 1.2.1 (size=4096)\n\
        Prot LocalAddress:Port Scheduler Flags\n  \
        -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
        TCP  198.18.0.129:80 rr\n  \
        -> 198.19.0.137:80              Masq    1      0          0         \n  \
        -> 198.19.0.148:80              Masq    1      0          0         \n";
    assert_eq!(listing, expected);

    cluster.curls_alternate(11)?;

    // The 11 closed connections linger in TIME_WAIT: IPVS counts them as inactive.
    let listing = cluster.xvsadm(&["-Ln"])?;
    let (active, inactive) = listing
        .lines()
        .filter(|l| l.starts_with("  -> 198.19."))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[4].parse::<u64>().unwrap_or(99),
                f[5].parse::<u64>().unwrap_or(99),
            )
        })
        .fold((0, 0), |(a, i), (x, y)| (a + x, i + y));
    assert_eq!((active, inactive), (0, 11), "{listing}");

    // Every connection was counted and both directions went through the director.
    let stats = cluster.xvsadm(&["-Ln", "--stats", "--exact"])?;
    let service_line = stats
        .lines()
        .find(|l| l.starts_with("TCP  198.18.0.129:80"))
        .ok_or_else(|| anyhow::anyhow!("no service line in\n{stats}"))?;
    let fields: Vec<u64> = service_line
        .split_whitespace()
        .skip(2)
        .map(|f| f.parse())
        .collect::<Result<_, _>>()?;
    assert_eq!(fields[0], 11, "conns in {service_line}");
    assert!(fields[1] >= 11 * 5 && fields[2] >= 11 * 4, "{service_line}");
    ensure_contains(&cluster.director.log(), "1 worker(s)")?;
    Ok(())
}

#[test]
fn one_mebibyte_download_is_intact_through_nat() -> anyhow::Result<()> {
    if !root_or_skip("one_mebibyte_download_is_intact_through_nat") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ebig", 1, &[])?;
    cluster.configure("-t", 80)?;
    // Twice, so both real servers serve it.
    let out_of_order_before = out_of_order_segments(&cluster)?;
    for _ in 0..2 {
        let got = cluster.download(xvs_control::topology::BIG_FILE_PATH)?;
        let want = xvs_control::topology::big_file_bytes();
        assert_eq!(got.len(), want.len(), "download length");
        assert!(got == want, "downloaded bytes differ from the served file");
    }
    // The director must not reorder a flow's segments (e.g. by handling a batch backwards):
    // the client's TCP saw every segment in order.
    assert_eq!(out_of_order_segments(&cluster)?, out_of_order_before);
    Ok(())
}

/// Segments the client's TCP received out of order (its namespace's TcpExtTCPOFOQueue).
fn out_of_order_segments(cluster: &Cluster) -> anyhow::Result<u64> {
    let out = cluster.topo.run_in(
        cluster.topo.client_ns(),
        &["nstat", "-az", "--json", "TcpExtTCPOFOQueue"],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v["kernel"]["TcpExtTCPOFOQueue"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no TcpExtTCPOFOQueue in {out}"))
}
