//! `xvsd --drop-privileges`: once started, every thread of the daemon holds only
//! CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF (effective, permitted and bounding), nothing
//! inheritable or ambient, and no_new_privs; and the director still does everything it does
//! at run time: forwarding, service changes (XDP map updates), health checks, a SIGHUP reload
//! and metrics scrapes.

use std::time::Duration;
use xvs_control::privileges::kept_mask;
use xvs_tests::{root_or_skip, wait_until, Cluster, TempDir};

const CONFIG: &str = "\
-A -t 198.18.0.129:80 -s rr --check tcp --check-interval 0.5 --check-timeout 0.2
-a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 1
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
";

/// One thread's capability sets, as /proc/PID/task/TID/status prints them.
#[derive(Debug, PartialEq, Eq)]
struct ThreadCaps {
    name: String,
    effective: u64,
    permitted: u64,
    bounding: u64,
    inheritable: u64,
    ambient: u64,
    no_new_privs: bool,
}

fn thread_caps(pid: u32) -> anyhow::Result<Vec<ThreadCaps>> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status"))?;
        let field = |name: &str| -> anyhow::Result<String> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .ok_or_else(|| anyhow::anyhow!("no {name} in\n{status}"))
        };
        let mask =
            |name: &str| -> anyhow::Result<u64> { Ok(u64::from_str_radix(&field(name)?, 16)?) };
        threads.push(ThreadCaps {
            name: field("Name:")?,
            effective: mask("CapEff:")?,
            permitted: mask("CapPrm:")?,
            bounding: mask("CapBnd:")?,
            inheritable: mask("CapInh:")?,
            ambient: mask("CapAmb:")?,
            no_new_privs: field("NoNewPrivs:")? == "1",
        });
    }
    Ok(threads)
}

#[test]
fn every_thread_keeps_only_what_the_director_needs() -> anyhow::Result<()> {
    if !root_or_skip("every_thread_keeps_only_what_the_director_needs") {
        return Ok(());
    }
    let dir = TempDir::new("privileges")?;
    let config = dir.join("xvs.conf");
    std::fs::write(&config, CONFIG)?;
    let config_arg = config.to_string_lossy().into_owned();
    let cluster = Cluster::start(
        "xvse2epriv",
        1,
        &[
            "--config",
            &config_arg,
            "--metrics",
            "127.0.0.1:9464",
            "--drop-privileges",
        ],
    )?;
    assert!(
        wait_until(Duration::from_secs(5), || cluster
            .director
            .log()
            .contains("privileges dropped")),
        "{}",
        cluster.director.log()
    );

    // Forwarding and health checks, with both servers UP.
    let pages: Vec<String> = (0..4)
        .map(|_| cluster.curl("/").map(|p| p.trim_end().to_string()))
        .collect::<anyhow::Result<_>>()?;
    assert_eq!(
        pages,
        [
            "198.19.0.148 is www.shuyan.com",
            "198.19.0.137",
            "198.19.0.148 is www.shuyan.com",
            "198.19.0.137"
        ]
    );
    let mut health = String::new();
    assert!(
        wait_until(Duration::from_secs(5), || {
            health = cluster
                .xvsadm(&["-L", "-n", "--health"])
                .unwrap_or_default();
            health.matches("UP").count() == 2
        }),
        "health checks do not work without privileges:\n{health}\n{}",
        cluster.director.log()
    );

    // A new service (XDP map updates need CAP_BPF) serves, and goes again.
    cluster.xvsadm(&["-A", "-t", "198.18.0.129:8080", "-s", "rr"])?;
    cluster.xvsadm(&[
        "-a",
        "-t",
        "198.18.0.129:8080",
        "-r",
        "198.19.0.137:80",
        "-m",
    ])?;
    let page = cluster.curl_url("http://198.18.0.129:8080/")?;
    assert_eq!(page.trim_end(), "198.19.0.137");
    cluster.xvsadm(&["-D", "-t", "198.18.0.129:8080"])?;

    // SIGHUP re-reads the root-owned file.
    std::fs::write(&config, CONFIG.replace("-s rr", "-s wlc"))?;
    cluster.signal_director(libc::SIGHUP)?;
    assert!(
        wait_until(Duration::from_secs(5), || cluster
            .xvsadm(&["-Ln"])
            .unwrap_or_default()
            .contains("TCP  198.18.0.129:80 wlc")),
        "reload failed:\n{}",
        cluster.director.log()
    );

    // A scrape starts a thread of its own: it must be restricted too.
    let scrape = cluster.topo.run_in(
        cluster.topo.director_ns(),
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "http://127.0.0.1:9464/metrics",
        ],
    )?;
    assert!(scrape.contains("xvs_"), "{scrape}");

    let pid = cluster.director.pid().expect("xvsd running");
    let threads = thread_caps(pid)?;
    // main, neighbour resolver, worker, control, health scheduler and probers, metrics.
    assert!(threads.len() >= 6, "{threads:#?}");
    for t in &threads {
        assert_eq!(
            (
                t.effective,
                t.permitted,
                t.bounding,
                t.inheritable,
                t.ambient,
                t.no_new_privs
            ),
            (kept_mask(), kept_mask(), kept_mask(), 0, 0, true),
            "thread {:?} kept more than it should: {t:#?}",
            t.name
        );
    }
    assert!(cluster.xvsadm(&["-Ln"])?.contains("198.19.0.137:80"));
    Ok(())
}
