//! Health checks through the real daemon: probes from the director's internal address reach
//! nginx on the real servers (their answers pass the internal XDP program to the kernel); a
//! real server whose nginx is killed is marked down within fall x interval and new
//! connections avoid it; restarted, it comes back within rise x interval.

use std::time::{Duration, Instant};
use xvs_control::protocol::{CheckKind, CheckSpec, Command, HealthState, RealInfo, Reply};
use xvs_tests::{root_or_skip, wait_until, Cluster};

const INTERVAL_MS: u32 = 300;
const TIMEOUT_MS: u32 = 200;
const RISE: u32 = 2;
const FALL: u32 = 2;

fn reals(cluster: &Cluster) -> anyhow::Result<Vec<RealInfo>> {
    let Reply::List(list) = cluster.director.client()?.call(Command::List)? else {
        anyhow::bail!("not a list reply");
    };
    Ok(list
        .services
        .into_iter()
        .flat_map(|s| s.reals)
        .collect::<Vec<_>>())
}

fn health_of(cluster: &Cluster, addr: std::net::Ipv4Addr) -> anyhow::Result<(HealthState, u64)> {
    let real = reals(cluster)?
        .into_iter()
        .find(|r| r.real.addr == addr)
        .ok_or_else(|| anyhow::anyhow!("{addr} not listed"))?;
    let h = real
        .health
        .ok_or_else(|| anyhow::anyhow!("{addr} has no health"))?;
    Ok((h.state, h.checks_passed))
}

#[test]
fn a_killed_real_server_is_quiesced_and_comes_back() -> anyhow::Result<()> {
    if !root_or_skip("a_killed_real_server_is_quiesced_and_comes_back") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2ehealth", 1, &[])?;
    cluster.configure("-t", 80)?;
    let service = xvs_control::protocol::ServiceKey {
        proto: xvs_control::protocol::Protocol::Tcp,
        addr: cluster.topo.vip().into(),
        port: 80,
    };
    let spec = CheckSpec {
        path: Some("/".into()),
        interval_ms: INTERVAL_MS,
        timeout_ms: TIMEOUT_MS,
        rise: RISE,
        fall: FALL,
        ..CheckSpec::new(CheckKind::Http)
    };
    cluster.director.client()?.call(Command::SetCheck {
        service,
        check: Some(spec),
    })?;
    let victim = cluster.topo.reals()[0].clone();
    let survivor = cluster.topo.reals()[1].clone();

    // Both pass several probes: the answers to the DIP reach the kernel, not the workers.
    let passing = |addr| health_of(&cluster, addr).is_ok_and(|(_, passed)| passed >= 3);
    anyhow::ensure!(
        wait_until(Duration::from_secs(5), || passing(victim.addr)
            && passing(survivor.addr)),
        "probes do not pass: {:?}\n{}",
        reals(&cluster),
        cluster.director.log()
    );
    assert_eq!(health_of(&cluster, victim.addr)?.0, HealthState::Up);

    cluster.topo.kill_web_server(0)?;
    let killed = Instant::now();
    let in_state =
        |cluster: &Cluster, state| health_of(cluster, victim.addr).is_ok_and(|(s, _)| s == state);
    anyhow::ensure!(
        wait_until(Duration::from_secs(5), || in_state(
            &cluster,
            HealthState::Down
        )),
        "not marked down: {:?}",
        reals(&cluster)
    );
    let detected = killed.elapsed();
    // fall x interval, plus one probe's timeout and one control-loop tick of slack.
    let bound = Duration::from_millis(u64::from(FALL * INTERVAL_MS + TIMEOUT_MS) + 400);
    assert!(
        detected <= bound,
        "down after {detected:?}, bound {bound:?}"
    );
    assert!(
        cluster.director.log().contains("is DOWN"),
        "{}",
        cluster.director.log()
    );

    // Every new connection goes to the survivor.
    for i in 0..10 {
        let body = cluster.curl("/")?;
        assert_eq!(body.trim_end(), survivor.page, "request {i}");
    }
    // `ipvsadm -Ln` shows the down server at weight 0, as keepalived would have set it.
    let ln = cluster.xvsadm(&["-Ln"])?;
    let victim_name = format!("{}:80", victim.addr);
    let weight = ln
        .lines()
        .find(|l| l.contains(&victim_name))
        .and_then(|l| l.split_whitespace().nth(3));
    assert_eq!(weight, Some("0"), "{ln}");
    // The protocol's listing keeps the configured weight; the health says why.
    let listed = reals(&cluster)?;
    let down = listed.iter().find(|r| r.real.addr == victim.addr).unwrap();
    assert_eq!(down.weight, 1);
    let error = down.health.as_ref().unwrap().last_error.clone();
    assert!(error.is_some_and(|e| e.contains("refused")), "{down:?}");

    cluster.topo.restart_web_server(0)?;
    let restarted = Instant::now();
    anyhow::ensure!(
        wait_until(Duration::from_secs(5), || in_state(
            &cluster,
            HealthState::Up
        )),
        "not marked up again: {:?}",
        reals(&cluster)
    );
    let back = restarted.elapsed();
    let bound = Duration::from_millis(u64::from(RISE * INTERVAL_MS) + 400);
    assert!(back <= bound, "up after {back:?}, bound {bound:?}");
    let mut pages: Vec<String> = (0..4)
        .map(|_| cluster.curl("/").map(|b| b.trim_end().to_string()))
        .collect::<anyhow::Result<_>>()?;
    pages.sort();
    pages.dedup();
    assert_eq!(pages.len(), 2, "both servers answer again: {pages:?}");
    Ok(())
}
