//! Reconfiguration never drops an established connection: a download from a real server keeps
//! flowing after that server is removed from the service, while new connections go elsewhere.

use std::time::Duration;
use xvs_control::topology::{big_file_bytes, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, Cluster, SlowDownload};

#[test]
fn removing_a_real_server_keeps_its_established_download() -> anyhow::Result<()> {
    if !root_or_skip("removing_a_real_server_keeps_its_established_download") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ereconf", 1, &[])?;
    cluster.configure("-t", 80)?;
    // 4 s, paced by nginx: long enough to reconfigure in the middle. Round robin sends this
    // first connection to 198.19.0.148.
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        download.running()?,
        "download finished too early to test anything"
    );

    cluster.xvsadm(&["-d", "-t", "198.18.0.129:80", "-r", "198.19.0.148"])?;
    cluster.xvsadm(&[
        "-e",
        "-t",
        "198.18.0.129:80",
        "-r",
        "198.19.0.137",
        "-m",
        "-w",
        "5",
    ])?;
    for _ in 0..3 {
        assert_eq!(cluster.curl("/")?.trim_end(), "198.19.0.137");
    }
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(!listing.contains("198.19.0.148"), "{listing}");

    let bytes = download.finish(Duration::from_secs(30))?;
    assert!(
        bytes == big_file_bytes(),
        "download corrupted after reconfiguration"
    );
    Ok(())
}
