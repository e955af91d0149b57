//! `xvsd --metrics`: Prometheus scrapes from inside the director's namespace count the
//! connections curl made, per real server, and the workers' packets; a port already in use is
//! a start-up error.

use prometheus_parse::{Sample, Scrape, Value};
use std::time::Duration;
use xvs_tests::{ensure_contains, root_or_skip, wait_until, Cluster};

const METRICS: &str = "127.0.0.1:9107";
const REQUESTS: usize = 6;

/// `curl -i http://METRICS/PATH` in the director namespace: (status line and headers, body).
fn scrape_raw(cluster: &Cluster, path: &str) -> anyhow::Result<(String, String)> {
    let url = format!("http://{METRICS}{path}");
    let out = cluster.topo.run_in(
        cluster.topo.director_ns(),
        &["curl", "-sS", "-i", "--max-time", "5", &url],
    )?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP head in {out:?}"))?;
    Ok((head.to_string(), body.to_string()))
}

fn scrape(cluster: &Cluster) -> anyhow::Result<(String, Vec<Sample>)> {
    let (head, body) = scrape_raw(cluster, "/metrics")?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    ensure_contains(
        &head,
        "Content-Type: text/plain; version=0.0.4; charset=utf-8",
    )?;
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_string())))?;
    Ok((body, parsed.samples))
}

fn value(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => f64::NAN,
    }
}

fn sum(samples: &[Sample], metric: &str, filter: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric && filter(s))
        .map(value)
        .sum()
}

#[test]
fn metrics_count_the_connections_per_real_server() -> anyhow::Result<()> {
    if !root_or_skip("metrics_count_the_connections_per_real_server") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2emet", 1, &["--metrics", METRICS])?;
    // The control socket answers before the start-up line is necessarily in the log.
    let announced = format!("metrics http://{METRICS}/metrics");
    wait_until(Duration::from_secs(2), || {
        cluster.director.log().contains(&announced)
    });
    ensure_contains(&cluster.director.log(), &announced)?;

    // Before any service: valid, with no service series.
    let (text, samples) = scrape(&cluster)?;
    assert_eq!(sum(&samples, "xvs_services", |_| true), 0.0, "{text}");
    assert!(
        !samples.iter().any(|s| s.metric.starts_with("xvs_real_")),
        "{text}"
    );

    cluster.configure("-t", 80)?;
    for _ in 0..REQUESTS {
        cluster.curl("/")?;
    }

    let vip = cluster.topo.vip().to_string();
    let per_service = |s: &Sample| {
        s.labels.get("proto") == Some("tcp")
            && s.labels.get("vip") == Some(vip.as_str())
            && s.labels.get("vport") == Some("80")
    };
    let mut last = (String::new(), Vec::new());
    let counted = wait_until(Duration::from_secs(5), || {
        last = scrape(&cluster).unwrap_or_default();
        sum(&last.1, "xvs_real_connections_total", per_service) == REQUESTS as f64
    });
    let (text, samples) = last;
    assert!(
        counted,
        "connections do not add up to {REQUESTS}:\n{text}\n{}",
        cluster.director.log()
    );

    assert_eq!(sum(&samples, "xvs_services", |_| true), 1.0, "{text}");
    assert_eq!(
        sum(&samples, "xvs_service_connections_total", per_service),
        REQUESTS as f64,
        "{text}"
    );
    // Round robin over the two real servers: half each, both up with weight 1.
    for real in cluster.real_addrs() {
        let real = real.to_string();
        let this = |s: &Sample| per_service(s) && s.labels.get("real") == Some(real.as_str());
        assert_eq!(
            sum(&samples, "xvs_real_connections_total", this),
            (REQUESTS / 2) as f64,
            "{real} in:\n{text}"
        );
        assert_eq!(sum(&samples, "xvs_real_up", this), 1.0, "{text}");
        assert_eq!(sum(&samples, "xvs_real_weight", this), 1.0, "{text}");
        let in_pkts = |s: &Sample| this(s) && s.labels.get("direction") == Some("in");
        assert!(
            sum(&samples, "xvs_real_packets_total", in_pkts) >= (REQUESTS / 2 * 5) as f64,
            "{real} in:\n{text}"
        );
    }
    // The workers saw the packets, and reported their connection table.
    let workers = samples
        .iter()
        .filter(|s| s.metric == "xvs_worker_rx_packets_total")
        .count();
    assert_eq!(workers, 1, "{text}");
    assert!(
        sum(&samples, "xvs_worker_rx_packets_total", |_| true) >= (REQUESTS * 5) as f64,
        "{text}"
    );
    assert!(
        sum(&samples, "xvs_worker_tx_packets_total", |_| true) > 0.0,
        "{text}"
    );
    assert!(sum(&samples, "xvs_conntrack_max", |_| true) > 0.0, "{text}");

    // Only /metrics is served.
    let (head, _) = scrape_raw(&cluster, "/")?;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // A second daemon cannot take the port: it says so and exits before touching anything.
    let out = cluster
        .topo
        .command_in(cluster.topo.director_ns(), &cluster.xvsd.to_string_lossy())
        .args(["--external", cluster.topo.ext_if()])
        .args(["--internal", cluster.topo.int_if()])
        .arg("--control")
        .arg(cluster.topo.work_dir().join("second.sock"))
        .args(["--metrics", METRICS])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    ensure_contains(&stderr, &format!("--metrics {METRICS}: cannot listen"))?;
    // The first one still serves.
    scrape(&cluster)?;
    Ok(())
}
