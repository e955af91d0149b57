//! `xvsd demo`, the main job of README.md: the seed cluster built, configured with the
//! tutorial's commands, its step 3.1 shown with `xvsadm capture` on both interfaces, 11 curls
//! answered in turn by both real servers, and everything torn down.

use anyhow::{ensure, Result};
use std::process::Command;
use xvs_control::director::find_binary;
use xvs_tests::root_or_skip;

#[test]
fn the_demo_runs_the_tutorial_and_cleans_up() -> Result<()> {
    if !root_or_skip("the_demo_runs_the_tutorial_and_cleans_up") {
        return Ok(());
    }
    let output = Command::new(find_binary("xvsd")?).arg("demo").output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "{}:\n{stdout}\n{stderr}",
        output.status
    );
    let has = |needle: &str| stdout.contains(needle);
    // Step 3.1: the client's SYN as it reached the VIP, and as it left for a real server.
    ensure!(
        has("ext0  In  IP 198.18.0.201.") && has(" > 198.18.0.129.80: Flags [S], seq "),
        "no external SYN in:\n{stdout}"
    );
    ensure!(
        has("int0  Out IP 198.18.0.201.") && has(" > 198.19.0.148.80: Flags [S], seq "),
        "no internal SYN in:\n{stdout}"
    );
    let answers: Vec<&str> = stdout
        .lines()
        .filter(|l| *l == "198.19.0.148 is www.shuyan.com" || *l == "198.19.0.137")
        .collect();
    ensure!(answers.len() == 11, "11 answers expected:\n{stdout}");
    ensure!(
        answers.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates:\n{stdout}"
    );
    ensure!(has("Torn down"), "{stdout}");
    Ok(())
}
