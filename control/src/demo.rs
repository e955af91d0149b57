//! `xvsd demo`: the LVS-NAT tutorial's cluster, end to end, on this machine.
//!
//! Builds the seed topology of design.md in fresh namespaces (client, director, two nginx real
//! servers), starts xvsd in the director namespace, configures it with the tutorial's ipvsadm
//! commands through `xvsadm`, prints `xvsadm -Ln`, shows the tutorial's step 3.1 (one curl
//! as `xvsadm capture` sees it on the external and on the internal interface, where the
//! tutorial runs tcpdump), curls the VIP 11 times from the client and prints the answers. Everything is torn down on success, failure or Ctrl-C (the guards'
//! Drop impls run on every path).

use crate::capture::background::BackgroundCapture;
use crate::capture::format::text_line;
use crate::capture::wire::CapturedFrame;
use crate::director::{find_binary, DirectorProcess};
use crate::protocol::{CaptureReply, Command};
use crate::topology::{self, Topology, TopologySpec};
use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const CURLS: usize = 11;

pub fn run(interrupted: &AtomicBool) -> Result<()> {
    // Ctrl-C also reaches our children (curl, nginx, xvsd), so the step that fails first may
    // be any of them: report the interruption, not the symptom. The guards have torn down.
    run_demo(interrupted).map_err(|e| {
        if interrupted.load(Ordering::Relaxed) {
            anyhow::anyhow!("interrupted; the demo cluster was torn down")
        } else {
            e
        }
    })
}

fn run_demo(interrupted: &AtomicBool) -> Result<()> {
    if !topology::is_root() {
        bail!("the demo creates network namespaces and attaches XDP programs: run it as root");
    }
    let xvsd = find_binary("xvsd")?;
    let xvsadm = find_binary("xvsadm")?;
    let mut spec = TopologySpec::seed();
    spec.prefix = "xvsdemo".into();
    topology::cleanup_stale(&spec.prefix);

    println!(
        "Building the seed topology (client, director, web01, web02) in network namespaces..."
    );
    let mut topo = Topology::build(&spec)?;
    topo.start_web_servers()?;
    check(interrupted)?;

    let director = DirectorProcess::start(&topo, &xvsd, &[])?;
    let vip = format!("{}:80", topo.vip());
    let mut commands: Vec<Vec<String>> = vec![vec!["-A", "-t", &vip, "-s", "rr"]
        .into_iter()
        .map(String::from)
        .collect()];
    for real in topo.reals() {
        commands.push(
            ["-a", "-t", &vip, "-r", &real.addr.to_string(), "-m"]
                .into_iter()
                .map(String::from)
                .collect(),
        );
    }
    commands.push(vec!["-Ln".to_string()]);
    for args in &commands {
        println!("# xvsadm {}", args.join(" "));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        print!("{}", director.xvsadm(&xvsadm, &args)?);
        check(interrupted)?;
    }

    let url = format!("http://{}/", topo.vip());
    let curl = || {
        topo.run_in_timeout(
            topo.client_ns(),
            &["curl", "-s", "--max-time", "5", &url],
            Duration::from_secs(10),
        )
    };
    // Step 3.1: the tutorial's two tcpdumps, during one curl.
    let captures = ["external", "internal"].map(|side| start_capture(&director, side));
    let [external, internal] = captures;
    let (external, internal) = (external?, internal?);
    curl()?;
    // The last segments (the closing handshake's) reach the capture a moment later.
    std::thread::sleep(Duration::from_millis(300));
    for (capture, side, tutorial) in [
        (external, "external", "ens36"),
        (internal, "internal", "ens33"),
    ] {
        println!(
            "# xvsadm capture -i {side} -nn tcp port 80   (the tutorial's tcpdump -i {tutorial} -nn port 80)"
        );
        for line in capture.finish()? {
            println!("{line}");
        }
    }
    check(interrupted)?;

    println!("# for i in $(seq 0 10); do curl {url}; done   (from the client namespace)");
    for _ in 0..CURLS {
        check(interrupted)?;
        print!("{}", curl()?);
    }
    println!("# xvsadm -Ln --stats");
    print!("{}", director.xvsadm(&xvsadm, &["-Ln", "--stats"])?);
    drop(director);
    drop(topo);
    println!("Torn down: namespaces removed, XDP programs detached.");
    Ok(())
}

/// A capture of one side's TCP port 80, collecting tcpdump lines until it is finished.
fn start_capture(
    director: &DirectorProcess,
    side: &'static str,
) -> Result<BackgroundCapture<Vec<String>>> {
    let command = Command::Capture {
        interface: Some(side.into()),
        filter: Some("tcp port 80".into()),
        count: None,
    };
    let line = |lines: &mut Vec<String>, frame: &CapturedFrame, reply: &CaptureReply| {
        let name = reply.interfaces.first().map_or("?", |i| i.name.as_str());
        lines.push(text_line(frame, name));
    };
    Ok(BackgroundCapture::start(
        director.control_path(),
        command,
        || {},
        Vec::new(),
        line,
    )?)
}

fn check(interrupted: &AtomicBool) -> Result<()> {
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}
