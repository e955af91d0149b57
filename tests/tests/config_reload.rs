//! `xvsd --config FILE`: the saved configuration is applied at start, and SIGHUP applies the
//! file's new content (connection limits included) without disturbing established
//! connections; a bad file is refused and the running configuration stays.

use std::time::Duration;
use xvs_control::topology::{big_file_bytes, BIG_FILE_PATH};
use xvs_tests::{root_or_skip, wait_until, Cluster, SlowDownload, TempDir};

const SEED: &str = "\
-A -t 198.18.0.129:80 -s rr --conn-limit 5000
-a -t 198.18.0.129:80 -r 198.19.0.148:80 -m -w 1
-a -t 198.18.0.129:80 -r 198.19.0.137:80 -m -w 1
";

#[test]
fn sighup_applies_the_new_file_under_traffic() -> anyhow::Result<()> {
    if !root_or_skip("sighup_applies_the_new_file_under_traffic") {
        return Ok(());
    }
    // The file lives outside the topology's directory so it exists before xvsd starts.
    let dir = TempDir::new("hup")?;
    let config = dir.join("xvs.conf");
    std::fs::write(&config, SEED)?;
    let config_arg = config.to_string_lossy().into_owned();
    let cluster = Cluster::start("xvse2ehup", 1, &["--config", &config_arg])?;
    let listing = cluster.xvsadm(&["-Ln"])?;
    assert!(listing.contains("TCP  198.18.0.129:80 rr"), "{listing}");
    assert_eq!(listing.matches("Masq").count(), 2, "{listing}");
    let saved = cluster.xvsadm(&["-S"])?;
    assert!(
        saved.contains("-A -t 198.18.0.129:80 -s rr --conn-limit 5000\n"),
        "{saved}"
    );

    // A long download on the service, then the file gains a service and changes a weight.
    let mut download = SlowDownload::start(&cluster, BIG_FILE_PATH)?;
    std::thread::sleep(Duration::from_millis(500));
    assert!(download.running()?, "download finished too early");
    std::fs::write(
        &config,
        format!("{SEED}-A -t 198.18.0.129:8080 -s wrr --conn-limit 1000\n-a -t 198.18.0.129:8080 -r 198.19.0.137:80 -m -w 3\n")
            .replace("198.19.0.137:80 -m -w 1", "198.19.0.137:80 -m -w 2"),
    )?;
    cluster.signal_director(libc::SIGHUP)?;
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
    // The connection limits are the file's: kept on :80, set on :8080.
    let saved = cluster.xvsadm(&["-S"])?;
    for line in [
        "-A -t 198.18.0.129:80 -s rr --conn-limit 5000\n",
        "-A -t 198.18.0.129:8080 -s wrr --conn-limit 1000\n",
    ] {
        assert!(saved.contains(line), "{line:?} not in\n{saved}");
    }
    assert!(
        download.running()?,
        "the download ended before the reload was checked"
    );
    // The new service serves; the download goes on untouched.
    let page = cluster.curl_url("http://198.18.0.129:8080/")?;
    assert_eq!(page.trim_end(), "198.19.0.137");

    // A bad file is refused as a whole: the running configuration stays.
    let before = cluster.xvsadm(&["-Ln"])?;
    std::fs::write(
        &config,
        format!("{SEED}-A -t 198.18.0.129:9090 -s nosuch\n"),
    )?;
    cluster.signal_director(libc::SIGHUP)?;
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
