//! The daemon's life cycle: SIGKILL leaves no XDP program behind and a new xvsd starts cleanly
//! on the same interfaces; SIGTERM detaches and removes the control socket; a second xvsd on
//! the same interfaces is refused with a clear error.

use xvs_control::director::DirectorProcess;
use xvs_tests::{root_or_skip, Cluster};

#[test]
fn sigkill_leaves_nothing_attached_and_restart_works() -> anyhow::Result<()> {
    if !root_or_skip("sigkill_leaves_nothing_attached_and_restart_works") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2ekill", 1, &[])?;
    cluster.configure("-t", 80)?;
    assert!(cluster.xdp_attached("ext0")? && cluster.xdp_attached("int0")?);
    cluster.curl("/")?;

    // The kernel releases the BPF links when it reaps the process.
    cluster.kill_director()?;
    // The kernel answers ARP for the VIP again: nothing steers frames away from it.
    cluster.topo.run_in(
        cluster.topo.client_ns(),
        &["ping", "-c1", "-W2", "198.18.0.129"],
    )?;

    // The stale socket file is still there; a new daemon replaces it and serves again.
    assert!(cluster.director.control_path().exists());
    cluster.director = DirectorProcess::start(&cluster.topo, &cluster.xvsd, &[])?;
    cluster.configure("-t", 80)?;
    let body = cluster.curl("/")?;
    assert_eq!(body.trim_end(), "198.19.0.148 is www.shuyan.com");
    Ok(())
}

#[test]
fn sigterm_detaches_and_second_daemon_is_refused() -> anyhow::Result<()> {
    if !root_or_skip("sigterm_detaches_and_second_daemon_is_refused") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2eterm", 1, &[])?;

    // A second daemon on the same interfaces (other socket) must fail, naming the problem.
    let second = cluster.topo.work_dir().join("second.sock");
    let out = cluster
        .topo
        .command_in(cluster.topo.director_ns(), &cluster.xvsd.to_string_lossy())
        .args(["--external", "ext0", "--internal", "int0", "--control"])
        .arg(&second)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another XDP program is attached"), "{err}");
    assert!(
        cluster.director.is_running(),
        "the first daemon must be unaffected"
    );

    let control = cluster.director.control_path().to_path_buf();
    assert!(cluster.director.stop()?, "xvsd did not exit on SIGTERM");
    assert!(!control.exists(), "control socket left behind");
    assert!(!cluster.xdp_attached("ext0")? && !cluster.xdp_attached("int0")?);
    Ok(())
}
