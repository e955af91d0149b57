//! The daemon's life cycle: SIGKILL leaves no XDP program and no BPF map (the fast path's
//! included) behind and a new xvsd starts cleanly
//! on the same interfaces; SIGTERM detaches and removes the control socket; a second xvsd on
//! the same interfaces is refused with a clear error; the interface settings of `--busy-poll`
//! are put back after SIGTERM and after SIGKILL; workers run SCHED_FIFO by default, and a
//! realtime worker that never sleeps is refused.

use std::time::Duration;
use xvs_control::director::DirectorProcess;
use xvs_tests::{root_or_skip, wait_until, Cluster};

#[test]
fn sigkill_leaves_nothing_attached_and_restart_works() -> anyhow::Result<()> {
    if !root_or_skip("sigkill_leaves_nothing_attached_and_restart_works") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2ekill", 1, &[])?;
    cluster.configure("-t", 80)?;
    assert!(cluster.xdp_attached("ext0")? && cluster.xdp_attached("int0")?);
    cluster.curl("/")?;
    let pid = cluster.director.pid().expect("xvsd runs");
    let maps = bpf_map_ids(pid)?;
    // Each program instance's own maps and the fast path's five shared ones.
    assert!(maps.len() >= 10, "xvsd holds BPF maps {maps:?}");
    assert!(maps.iter().all(|&id| bpf_map_exists(id)), "{maps:?}");

    // The kernel releases the BPF links when it reaps the process, and the maps with them:
    // none is pinned.
    cluster.kill_director()?;
    assert!(
        wait_until(Duration::from_secs(5), || maps
            .iter()
            .all(|&id| !bpf_map_exists(id))),
        "BPF maps left after SIGKILL: {:?}",
        maps.iter()
            .filter(|&&id| bpf_map_exists(id))
            .collect::<Vec<_>>()
    );
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

/// The ids of the BPF maps process `pid` holds file descriptors of (`map_id:` in fdinfo).
fn bpf_map_ids(pid: u32) -> anyhow::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let Ok(info) = std::fs::read_to_string(fd?.path()) else {
            continue;
        };
        if let Some(id) = info
            .lines()
            .find_map(|l| l.strip_prefix("map_id:"))
            .and_then(|v| v.trim().parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Whether a BPF map with this id still exists.
fn bpf_map_exists(id: u32) -> bool {
    let mut attr = [0u8; 128];
    // union bpf_attr for BPF_MAP_GET_FD_BY_ID: map_id is the first field.
    attr[..4].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: bpf(2) reads `attr`'s first 12 bytes (map_id, next_id, open_flags), all ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            libc::c_long::from(BPF_MAP_GET_FD_BY_ID),
            attr.as_mut_ptr(),
            attr.len() as libc::c_long,
        )
    };
    if fd >= 0 {
        // SAFETY: a descriptor the call just gave us.
        unsafe { libc::close(fd as i32) };
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOENT)
}

/// `enum bpf_cmd` of linux/bpf.h.
const BPF_MAP_GET_FD_BY_ID: i32 = 14;

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

/// `napi_defer_hard_irqs` and `gro_flush_timeout` of ext0 and int0, as the director's
/// namespace shows them.
fn napi_settings(cluster: &Cluster) -> anyhow::Result<String> {
    cluster.topo.run_in(
        cluster.topo.director_ns(),
        &[
            "sh",
            "-c",
            "cat /sys/class/net/ext0/napi_defer_hard_irqs /sys/class/net/ext0/gro_flush_timeout \
                 /sys/class/net/int0/napi_defer_hard_irqs /sys/class/net/int0/gro_flush_timeout",
        ],
    )
}

#[test]
fn busy_poll_settings_are_restored_after_sigterm_and_sigkill() -> anyhow::Result<()> {
    if !root_or_skip("busy_poll_settings_are_restored_after_sigterm_and_sigkill") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2ebusy", 1, &["--busy-poll"])?;
    let before = "0\n0\n0\n0\n";
    cluster.configure("-t", 80)?;
    assert_eq!(napi_settings(&cluster)?, "2\n200000\n2\n200000\n");
    // Busy polling changes how frames are received, not what is forwarded.
    let body = cluster.curl("/")?;
    assert_eq!(body.trim_end(), "198.19.0.148 is www.shuyan.com");
    // Once ext0's socket has received, xvsd says whether busy polling took hold there (veth
    // in copy mode gives the socket no NAPI id: it says that it has no effect).
    let told = wait_until(Duration::from_secs(6), || {
        let log = cluster.director.log();
        log.contains("busy polling ext0 queue 0 (NAPI ")
            || log.contains("busy polling has no effect on ext0 queue 0")
    });
    assert!(
        told,
        "no word on busy polling in:\n{}",
        cluster.director.log()
    );
    assert!(cluster.director.stop()?, "xvsd did not exit on SIGTERM");
    assert_eq!(napi_settings(&cluster)?, before);

    // SIGKILL runs no destructor: the guardian process puts the values back.
    cluster.director = DirectorProcess::start(&cluster.topo, &cluster.xvsd, &["--busy-poll"])?;
    assert_eq!(napi_settings(&cluster)?, "2\n200000\n2\n200000\n");
    cluster.kill_director()?;
    let restored = wait_until(Duration::from_secs(5), || {
        napi_settings(&cluster).is_ok_and(|s| s == before)
    });
    assert!(
        restored,
        "settings after SIGKILL: {:?}",
        napi_settings(&cluster)?
    );
    Ok(())
}

/// The scheduling policy of every `xvs-worker-*` thread of `pid` (field 41 of
/// /proc/PID/task/TID/stat: 1 is SCHED_FIFO, 0 SCHED_OTHER) and its realtime priority (40).
fn worker_policies(pid: u32) -> anyhow::Result<Vec<(u32, u32)>> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let dir = task?.path();
        let comm = std::fs::read_to_string(dir.join("comm"))?;
        if !comm.starts_with("xvs-worker-") {
            continue;
        }
        found.push(policy(&dir)?);
    }
    Ok(found)
}

/// The scheduling policy (field 41 of the task's `stat`: 1 is SCHED_FIFO, 0 SCHED_OTHER) and
/// realtime priority (field 40) of the task whose /proc directory is `dir`.
fn policy(dir: &std::path::Path) -> anyhow::Result<(u32, u32)> {
    let stat = std::fs::read_to_string(dir.join("stat"))?;
    // Fields after the command (which ends with ") "), numbered from 3.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(vec![], |(_, r)| r.split(' ').collect());
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u32>().ok());
    Ok((field(41).unwrap_or(99), field(40).unwrap_or(99)))
}

#[test]
fn workers_are_realtime_by_default_and_busy_realtime_is_refused() -> anyhow::Result<()> {
    if !root_or_skip("workers_are_realtime_by_default_and_busy_realtime_is_refused") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2eprio", 1, &[])?;
    let pid = cluster.director.pid().expect("running");
    assert_eq!(worker_policies(pid)?, vec![(1, 1)], "SCHED_FIFO 1");
    cluster.configure("-t", 80)?;
    // A realtime worker sleeps when idle, so the kernel still serves the director's core.
    for _ in 0..3 {
        cluster.curl("/")?;
    }
    assert!(cluster.director.stop()?);

    cluster.director =
        DirectorProcess::start(&cluster.topo, &cluster.xvsd, &["--worker-priority", "0"])?;
    let pid = cluster.director.pid().expect("running");
    assert_eq!(worker_policies(pid)?, vec![(0, 0)], "SCHED_OTHER");
    assert!(cluster.director.stop()?);

    let out = cluster
        .topo
        .command_in(cluster.topo.director_ns(), &cluster.xvsd.to_string_lossy())
        .args(["--external", "ext0", "--internal", "int0", "--idle", "busy"])
        .args(["--worker-priority", "5", "--control"])
        .arg(cluster.topo.work_dir().join("busy.sock"))
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--worker-priority 5 with --idle busy"),
        "{err}"
    );
    assert!(
        !cluster.xdp_attached("ext0")?,
        "a refused start must attach nothing"
    );
    Ok(())
}

/// The CPUs (`Cpus_allowed_list`) and the scheduling policy and priority ([`policy`]) of
/// every kernel thread named `napi/IFNAME-*`.
fn napi_threads(ifname: &str) -> anyhow::Result<Vec<(String, (u32, u32))>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let dir = entry?.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if !comm.starts_with(&format!("napi/{ifname}-")) {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        if let Some(list) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        {
            threads.push((list.trim().to_string(), policy(&dir)?));
        }
    }
    Ok(threads)
}

#[test]
fn threaded_napi_threads_sit_on_the_workers_core_and_are_undone_after_sigkill() -> anyhow::Result<()>
{
    if !root_or_skip("threaded_napi_threads_sit_on_the_workers_core_and_are_undone_after_sigkill") {
        return Ok(());
    }
    let mut cluster = Cluster::start("xvse2enapi", 1, &["--threaded-napi"])?;
    let threaded = |c: &Cluster| {
        c.topo.run_in(
            c.topo.director_ns(),
            &[
                "cat",
                "/sys/class/net/ext0/threaded",
                "/sys/class/net/int0/threaded",
            ],
        )
    };
    assert_eq!(threaded(&cluster)?, "1\n1\n");
    // One worker, pinned to the first CPU: so are both interfaces' receive threads. The
    // requests' receive ranks below the realtime worker (SCHED_FIFO 1), the replies' above.
    for (ifname, sched) in [("ext0", (0, 0)), ("int0", (1, 2))] {
        let threads = napi_threads(ifname)?;
        assert!(!threads.is_empty(), "no NAPI thread for {ifname}");
        assert!(
            threads.iter().all(|t| *t == ("0".to_string(), sched)),
            "{ifname}: {threads:?}"
        );
    }
    cluster.configure("-t", 80)?;
    let body = cluster.curl("/")?;
    assert_eq!(body.trim_end(), "198.19.0.148 is www.shuyan.com");

    cluster.kill_director()?;
    let restored = wait_until(Duration::from_secs(5), || {
        threaded(&cluster).is_ok_and(|s| s == "0\n0\n")
    });
    assert!(
        restored,
        "threaded after SIGKILL: {:?}",
        threaded(&cluster)?
    );
    Ok(())
}
