//! Reconfiguration never drops an established connection: a download from a real server keeps
//! flowing after that server is removed from the service, while new connections go elsewhere.

use std::process::Stdio;
use std::time::{Duration, Instant};
use xvs_control::topology::{big_file_bytes, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, Cluster};

#[test]
fn removing_a_real_server_keeps_its_established_download() -> anyhow::Result<()> {
    if !root_or_skip("removing_a_real_server_keeps_its_established_download") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ereconf", 1, &[])?;
    cluster.configure("-t", 80)?;
    let out = cluster.topo.work_dir().join("slow.download");
    let url = format!("http://{}{BIG_FILE_PATH}", cluster.topo.vip());
    // ~3.5 s at 300 kB/s: long enough to reconfigure in the middle. Round robin sends this
    // first connection to 198.19.0.148.
    let mut download = cluster
        .topo
        .command_in(cluster.topo.client_ns(), "curl")
        .args([
            "-sS",
            "--fail",
            "--max-time",
            "30",
            "--limit-rate",
            "300k",
            "-o",
        ])
        .arg(&out)
        .arg(&url)
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        download.try_wait()?.is_none(),
        "download finished too early to test anything"
    );

    cluster.xvsadm(&["-d", "-t", "198.18.0.129:80", "-r", "198.19.0.148"])?;
    cluster.xvsadm(&[
        "-e",
        "-t",
        "198.18.0.129:80",
        "-r",
        "198.19.0.137",
        "-w",
        "5",
    ])?;
    for _ in 0..3 {
        assert_eq!(cluster.curl("/")?.trim_end(), "198.19.0.137");
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(!listing.contains("198.19.0.148"), "{listing}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = download.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            download.kill()?;
            anyhow::bail!("download did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut e) = download.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr)?;
    }
    assert!(
        status.success(),
        "download failed after reconfiguration: {stderr}"
    );
    assert!(
        std::fs::read(&out)? == big_file_bytes(),
        "download corrupted"
    );
    Ok(())
}
