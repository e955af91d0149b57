//! Faults around a running director: a crash and a restart from the saved configuration, an
//! interface going down and up, the control socket file deleted, a real server dying in the
//! middle of a download. lifecycle.rs covers SIGKILL leaving nothing attached and a second
//! daemon being refused; these go on from there.

use std::time::{Duration, Instant};
use xvs_control::director::DirectorProcess;
use xvs_control::protocol::{CheckKind, CheckSpec, Command, Protocol, ServiceKey};
use xvs_control::topology::BIG_FILE_PATH;
use xvs_tests::{root_or_skip, wait_until, Cluster, SlowDownload, TempDir};

const CONFIG: &str = "\
-A -t 198.18.0.129:80 -s wrr
-a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 3
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
-A -u 198.18.0.129:53 -s sh
-a -u 198.18.0.129:53 -r 198.19.0.137:53 -m -w 2
";

/// One short request through the VIP (1 s limit): whether it got the page.
fn request_ok(cluster: &Cluster) -> bool {
    let url = format!("http://{}/", cluster.topo.vip());
    cluster
        .topo
        .run_in_timeout(
            cluster.topo.client_ns(),
            &["curl", "-sS", "--fail", "--max-time", "1", &url],
            Duration::from_secs(3),
        )
        .is_ok()
}

#[test]
fn sigkill_then_restart_with_config_restores_everything() -> anyhow::Result<()> {
    if !root_or_skip("sigkill_then_restart_with_config_restores_everything") {
        return Ok(());
    }
    let dir = TempDir::new("faults-restart")?;
    let config = dir.join("xvs.conf");
    std::fs::write(&config, CONFIG)?;
    let config_arg = config.to_string_lossy().into_owned();
    let args = ["--config", &*config_arg];
    let mut cluster = Cluster::start("xvse2erestart", 1, &args)?;
    let before = cluster.xvsadm(&["-Ln"])?;
    assert_eq!(before.matches("Masq").count(), 3, "{before}");
    cluster.curl("/")?;

    cluster.kill_director()?;
    // The crash leaves the socket file; nobody answers on it.
    let control = cluster.director.control_path().to_path_buf();
    assert!(control.exists(), "the killed daemon's socket file is gone");
    let (code, _, err) = cluster.xvsadm_raw(&["-Ln"])?;
    assert!(code != 0 && err.contains("stale socket"), "{code} {err}");

    cluster.director = DirectorProcess::start(&cluster.topo, &cluster.xvsd, &args)?;
    assert!(cluster.xdp_attached("ext0")? && cluster.xdp_attached("int0")?);
    let after = cluster.xvsadm(&["-Ln"])?;
    assert_eq!(
        after, before,
        "the configuration did not come back as it was"
    );
    // Fresh state: no connection survived in the new daemon, counters start at zero.
    let conns = cluster.xvsadm(&["-Lnc"])?;
    assert_eq!(conns.lines().count(), 2, "{conns}");
    // wrr 3:1: both servers answer, .148 three times as often.
    let mut pages = Vec::new();
    for _ in 0..8 {
        pages.push(cluster.curl("/")?.trim_end().to_string());
    }
    let heavy = pages
        .iter()
        .filter(|p| p.starts_with("198.19.0.148"))
        .count();
    assert_eq!(heavy, 6, "wrr 3:1 over 8 requests: {pages:?}");
    Ok(())
}

/// Takes `iface` down in `ns` for a second, brings it up, and checks that requests through
/// the VIP work again within `bound` and xvsd survived.
fn flap(cluster: &mut Cluster, ns: &str, iface: &str, bound: Duration) -> anyhow::Result<()> {
    cluster
        .topo
        .run_in(ns, &["ip", "link", "set", "dev", iface, "down"])?;
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        !request_ok(cluster),
        "{iface} is down, yet a request went through"
    );
    cluster
        .topo
        .run_in(ns, &["ip", "link", "set", "dev", iface, "up"])?;
    let up = Instant::now();
    let resumed = wait_until(bound, || request_ok(cluster));
    anyhow::ensure!(
        resumed,
        "no traffic {bound:?} after {iface} came back up\nxvsd log:\n{}",
        cluster.director.log()
    );
    eprintln!("{iface}: traffic resumed {:?} after link up", up.elapsed());
    assert!(
        cluster.director.is_running(),
        "xvsd died on the {iface} flap"
    );
    // Both real servers: each has its neighbour entry back.
    let mut pages: Vec<String> = (0..4)
        .map(|_| cluster.curl("/").map(|b| b.trim_end().to_string()))
        .collect::<anyhow::Result<_>>()?;
    pages.sort();
    pages.dedup();
    assert_eq!(pages.len(), 2, "after the {iface} flap: {pages:?}");
    Ok(())
}

#[test]
fn interfaces_going_down_and_up_resume_traffic() -> anyhow::Result<()> {
    if !root_or_skip("interfaces_going_down_and_up_resume_traffic") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2eflap", 1, &[])?;
    cluster.configure("-t", 80)?;
    for _ in 0..4 {
        cluster.curl("/")?;
    }
    // Links come up in well under a second on veth; 5 s leaves room for a loaded machine
    // (address and neighbour resolution included).
    let bound = Duration::from_secs(5);
    let director_ns = cluster.topo.director_ns().to_string();
    // The internal side: the kernel flushes int0's neighbour entries on down, so the real
    // servers' MACs must be resolved again.
    flap(&mut cluster, &director_ns, "int0", bound)?;
    flap(&mut cluster, &director_ns, "ext0", bound)?;
    // The workers' own counters show nothing stuck: frames kept flowing after both flaps.
    let stats = cluster.xvsadm(&["-Ln", "--stats"])?;
    assert!(stats.contains("198.18.0.129:80"), "{stats}");
    Ok(())
}

#[test]
fn a_deleted_control_socket_is_created_again() -> anyhow::Result<()> {
    if !root_or_skip("a_deleted_control_socket_is_created_again") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2esock", 1, &[])?;
    cluster.configure("-t", 80)?;
    let before = cluster.xvsadm(&["-Ln"])?;
    let control = cluster.director.control_path().to_path_buf();
    std::fs::remove_file(&control)?;
    // Right after the deletion xvsadm names the problem rather than hanging.
    let (code, _, err) = cluster.xvsadm_raw(&["-Ln"])?;
    if code != 0 {
        assert!(err.contains("re-creates a deleted socket"), "{err}");
    }
    // The daemon notices within a second (2 s for a loaded machine) and serves again.
    let mut listing = String::new();
    assert!(
        wait_until(Duration::from_secs(3), || {
            listing = cluster.xvsadm(&["-Ln"]).unwrap_or_default();
            !listing.is_empty()
        }),
        "the control socket was not created again\nxvsd log:\n{}",
        cluster.director.log()
    );
    assert_eq!(listing, before);
    assert!(cluster
        .director
        .log()
        .contains("was deleted; created it again"));
    // Traffic never depended on the socket.
    cluster.curl("/")?;
    // Shut down: the daemon removes the new file too.
    assert!(cluster.director.stop()?);
    assert!(!control.exists(), "control socket left behind");
    Ok(())
}

#[test]
fn a_real_server_dying_mid_download_fails_the_client_fast() -> anyhow::Result<()> {
    if !root_or_skip("a_real_server_dying_mid_download_fails_the_client_fast") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2erealdie", 1, &[])?;
    cluster.configure("-t", 80)?;
    let service = ServiceKey {
        proto: Protocol::Tcp,
        addr: cluster.topo.vip().into(),
        port: 80,
    };
    cluster.director.client()?.call(Command::SetCheck {
        service,
        check: Some(CheckSpec {
            path: Some("/".into()),
            interval_ms: 300,
            timeout_ms: 200,
            rise: 2,
            fall: 2,
            ..CheckSpec::new(CheckKind::Http)
        }),
    })?;
    // rr: the first connection goes to .148; the download takes 4 s, paced by nginx.
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(700));
    assert!(download.running()?, "download finished too early");
    let conns = cluster.xvsadm(&["-Lnc"])?;
    assert!(conns.contains("198.19.0.148:80"), "{conns}");

    cluster.topo.kill_web_server(0)?;
    let killed = Instant::now();
    // The dead server's kernel ends the connection (FIN after what was sent, or RST) and
    // xvsd forwards that to the client: curl fails at once, not at its 30 s limit.
    let result = download.finish(Duration::from_secs(10));
    let took = killed.elapsed();
    let err = result.expect_err("a download from a killed server succeeded");
    assert!(
        took < Duration::from_secs(5),
        "the client noticed only after {took:?}: {err:#}"
    );
    eprintln!("client failed {took:?} after the kill: {err:#}");
    // The entry left ESTABLISHED with the connection (IPVS follows the FIN/RST).
    assert!(
        wait_until(Duration::from_secs(3), || {
            let c = cluster.xvsadm(&["-Lnc"]).unwrap_or_default();
            !c.lines()
                .any(|l| l.contains("198.19.0.148:80") && l.contains("ESTABLISHED"))
        }),
        "{}",
        cluster.xvsadm(&["-Lnc"])?
    );
    // Once the checks mark it down, every new connection goes to the survivor.
    assert!(
        wait_until(Duration::from_secs(5), || cluster
            .director
            .log()
            .contains("is DOWN")),
        "{}",
        cluster.director.log()
    );
    for i in 0..6 {
        assert_eq!(cluster.curl("/")?.trim_end(), "198.19.0.137", "request {i}");
    }
    Ok(())
}
