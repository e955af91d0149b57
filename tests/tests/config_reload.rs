//! `xvsd --config FILE`: the saved configuration is applied at start, and SIGHUP applies the
//! file's new content without disturbing established connections; a bad file is refused and
//! the running configuration stays.

use std::time::Duration;
use xvs_control::topology::{big_file_bytes, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, wait_until, Cluster, SlowDownload, TempDir};

const SEED: &str = "\
-A -t 198.18.0.129:80 -s rr
-a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 1
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
";

fn hup(cluster: &Cluster) -> anyhow::Result<()> {
    let pid = cluster
        .director
        .pid()
        .ok_or_else(|| anyhow::anyhow!("xvsd is not running"))?;
    // SAFETY: kill(2) has no memory preconditions; the pid is the xvsd we started.
    let rc = unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    anyhow::ensure!(
        rc == 0,
        "kill -HUP {pid}: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

#[test]
fn sighup_applies_the_new_file_under_traffic() -> anyhow::Result<()> {
    if !root_or_skip("sighup_applies_the_new_file_under_traffic") {
        return Ok(());
    }
    // The file lives outside the topology's directory so it exists before xvsd starts.
    let dir = TempDir::new("xvs-hup")?;
    let config = dir.join("xvs.conf");
    std::fs::write(&config, SEED)?;
    let config_arg = config.to_string_lossy().into_owned();
    let cluster = Cluster::start("xvse2ehup", 1, &["--config", &config_arg])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("TCP  198.18.0.129:80 rr"), "{listing}");
    assert_eq!(listing.matches("Masq").count(), 2, "{listing}");

    // A long download on the service, then the file gains a service and changes a weight.
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(download.running()?, "download finished too early");
    std::fs::write(
        &config,
        format!("{SEED}-A -t 198.18.0.129:8080 -s wrr\n-a -t 198.18.0.129:8080 -r 198.19.0.137:80 -m -w 3\n")
            .replace("198.19.0.137:80 -m -w 1", "198.19.0.137:80 -m -w 2"),
    )?;
    hup(&cluster)?;
    let mut listing = String::new();
    let reloaded = wait_until(Duration::from_secs(5), || {
        listing = cluster.xvsadm(&["-Ln"]).unwrap_or_default();
        listing.contains("TCP  198.18.0.129:8080 wrr")
    });
    assert!(
        reloaded,
        "SIGHUP did not apply the file:\n{listing}\n{}",
        cluster.director.log()
    );
    assert!(
        listing.contains("  -> 198.19.0.137:80              Masq    2"),
        "{listing}"
    );
    assert!(
        download.running()?,
        "the download ended before the reload was checked"
    );
    // The new service serves; the download goes on untouched.
    let page = cluster.topo.run_in(
        cluster.topo.client_ns(),
        &[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "5",
            "http://198.18.0.129:8080/",
        ],
    )?;
    assert_eq!(page.trim_end(), "198.19.0.137");

    // A bad file is refused as a whole: the running configuration stays.
    let before = cluster.xvsadm(&["-Ln"])?;
    std::fs::write(
        &config,
        format!("{SEED}-A -t 198.18.0.129:9090 -s nosuch\n"),
    )?;
    hup(&cluster)?;
    assert!(
        wait_until(Duration::from_secs(5), || cluster
            .director
            .log()
            .contains("the running configuration is unchanged")),
        "{}",
        cluster.director.log()
    );
    assert_eq!(cluster.xvsadm(&["-Ln"])?, before);

    let bytes = download.finish(Duration::from_secs(30))?;
    assert!(
        bytes == big_file_bytes(),
        "download corrupted across the reload"
    );
    Ok(())
}
