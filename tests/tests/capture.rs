//! `xvsadm capture`, the director's tcpdump, through a real xvsd on the seed cluster (NAT):
//! the tutorial's step 3.1 (a curl's handshake as the client sent it on the external side
//! and as the real server got it on the internal side, from two captures at once), pcapng
//! read back by tcpdump, a filter that matches nothing, a slow reader that loses frames and
//! says so, a closed pipe, and a client the control socket refuses; and the same step over
//! IPv6 on the dual-stack cluster.

use anyhow::{bail, ensure, Context, Result};
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use xvs_control::topology::{ipv6_of, TopologySpec};
use xvs_tests::{root_or_skip, Cluster};

/// A running `xvsadm capture`.
struct CaptureProcess {
    child: Child,
    /// `xvsadm capture`'s arguments and where its stderr goes, for failures.
    what: String,
    stderr: String,
}

impl CaptureProcess {
    /// Starts `sh -c "xvsadm --control SOCK capture ARGS [| rest]"` and waits until xvsd has
    /// started the capture (xvsadm says so on stderr, captured in `stderr_path`).
    fn start(cluster: &Cluster, args: &str, pipe: &str, tag: &str) -> Result<(Self, String)> {
        let stderr_path = cluster.topo.work_dir().join(format!("capture-{tag}.err"));
        let script = format!(
            "exec 2>{err}; {xvsadm} --control {sock} capture {args} {pipe}",
            err = stderr_path.display(),
            xvsadm = cluster.xvsadm.display(),
            sock = cluster.director.control_path().display(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting xvsadm capture")?;
        let path = stderr_path.to_string_lossy().into_owned();
        let mut capture = CaptureProcess {
            child,
            what: format!("capture {args} {pipe}"),
            stderr: path.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            if err.contains("capturing on") {
                break;
            }
            if let Some(status) = capture.child.try_wait()? {
                bail!("xvsadm capture {args} exited ({status}): {err}");
            }
            ensure!(Instant::now() < deadline, "capture did not start: {err}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((capture, path))
    }

    /// Waits (at most `timeout`) for the pipeline to end; its stdout.
    fn finish(mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!(
                    "`{}` did not end within {timeout:?}; its stderr: {}",
                    self.what,
                    read(&self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        Ok(out)
    }

    /// SIGINT to xvsadm (the shell's child), as Ctrl-C.
    fn interrupt(&self) -> Result<()> {
        let status = Command::new("pkill")
            .args(["-INT", "-P", &self.child.id().to_string(), "xvsadm"])
            .status()?;
        ensure!(status.success(), "no xvsadm to interrupt");
        Ok(())
    }
}

impl Drop for CaptureProcess {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Step 3.1 over IPv6: an IPv6 curl's SYN as the client sent it to VIP6 (external side) and
/// as the real server got it, to its RIP6 (internal side), in tcpdump's `IP6` lines, with an
/// `ip6` filter.
#[test]
fn the_tutorials_step_over_ipv6() -> Result<()> {
    if !root_or_skip("the_tutorials_step_over_ipv6") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2ecapt6".into(),
        ..TopologySpec::dual_stack()
    };
    let cluster = Cluster::start_spec(&spec, &[])?;
    let vip6 = cluster.topo.vip6();
    let service = format!("[{vip6}]:80");
    cluster.xvsadm(&["-A", "-t", &service, "-s", "rr"])?;
    let real6 = ipv6_of(cluster.topo.reals()[0].addr);
    cluster.xvsadm(&["-a", "-t", &service, "-r", &format!("[{real6}]:80"), "-m"])?;
    let filter = "-c 1 -nn ip6 and tcp port 80";
    let (external, _) =
        CaptureProcess::start(&cluster, &format!("-i external {filter}"), "", "e6")?;
    let (internal, _) =
        CaptureProcess::start(&cluster, &format!("-i internal {filter}"), "", "i6")?;
    cluster.curl_url(&format!("http://[{vip6}]/"))?;
    let ext = external.finish(Duration::from_secs(10))?;
    let int = internal.finish(Duration::from_secs(10))?;
    let client6 = ipv6_of(cluster.topo.client_addr());
    for (side, line, to) in [("external", &ext, vip6), ("internal", &int, real6)] {
        ensure!(
            line.contains(&format!("IP6 {client6}."))
                && line.contains(&format!(" > {to}.80: Flags [S]")),
            "{side}: not the SYN from {client6} to {to}.80: {line:?}"
        );
    }
    Ok(())
}

#[test]
fn the_tutorials_tcpdump_step_with_xvsadm_capture() -> Result<()> {
    if !root_or_skip("the_tutorials_tcpdump_step_with_xvsadm_capture") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2ecapture", 1, &[])?;
    cluster.configure("-t", 80)?;
    let vip = cluster.topo.vip();
    let client = cluster.topo.client_addr();

    // Step 3.1: both sides at once, 3 frames each (SYN, SYN-ACK, ACK).
    let (external, _) =
        CaptureProcess::start(&cluster, "-i external -c 3 -nn tcp port 80", "", "ext")?;
    let (internal, _) =
        CaptureProcess::start(&cluster, "-i internal -c 3 -nn tcp port 80", "", "int")?;
    let page = cluster.curl("/")?;
    let real = cluster
        .topo
        .reals()
        .iter()
        .find(|r| page.contains(r.page.as_str()))
        .context("no real server answered")?
        .addr;
    let ext_lines = external.finish(Duration::from_secs(10))?;
    let int_lines = internal.finish(Duration::from_secs(10))?;
    eprintln!("external:\n{ext_lines}internal:\n{int_lines}");
    let lines = |text: &str| text.lines().map(str::to_string).collect::<Vec<_>>();
    let (ext_lines, int_lines) = (lines(&ext_lines), lines(&int_lines));
    ensure!(ext_lines.len() == 3 && int_lines.len() == 3, "3 lines each");
    // external: client -> VIP:80 as received, the SYN-ACK from the VIP as transmitted.
    ensure!(
        ext_lines[0].contains(" In ")
            && ext_lines[0].contains(&format!("IP {client}."))
            && ext_lines[0].contains(&format!(" > {vip}.80: Flags [S]")),
        "{}",
        ext_lines[0]
    );
    ensure!(
        ext_lines[1].contains(" Out ")
            && ext_lines[1].contains(&format!("IP {vip}.80 > {client}."))
            && ext_lines[1].contains("Flags [S.]"),
        "{}",
        ext_lines[1]
    );
    // internal: client -> RIP:80 as transmitted, the real server's SYN-ACK as received.
    ensure!(
        int_lines[0].contains(" Out ")
            && int_lines[0].contains(&format!("IP {client}."))
            && int_lines[0].contains(&format!(" > {real}.80: Flags [S]")),
        "{}",
        int_lines[0]
    );
    ensure!(
        int_lines[1].contains(" In ")
            && int_lines[1].contains(&format!("IP {real}.80 > {client}.")),
        "{}",
        int_lines[1]
    );

    // pcapng on stdout, read back by tcpdump (also while the fast path would carry the flow:
    // a capture turns it off, so a whole download is seen).
    let (pcap, err) = CaptureProcess::start(
        &cluster,
        "-i internal -c 200 -w - tcp port 80",
        "| tcpdump -nn -r - 2>/dev/null",
        "pcap",
    )?;
    cluster.download("/big.bin")?;
    let text = pcap.finish(Duration::from_secs(10))?;
    // 200 frames of one download's ~1,100 on this side: more than the few a worker handles
    // before the fast path would take the flow over, had the capture not turned it off.
    ensure!(
        text.lines().count() == 200,
        "tcpdump read:\n{text}\n{}",
        read(&err)
    );
    let reals: Vec<_> = cluster.topo.reals().iter().map(|r| r.addr).collect();
    ensure!(
        reals
            .iter()
            .any(|r| text.contains(&format!(" > {r}.80: Flags [S]"))),
        "no SYN to a real server in:\n{text}"
    );
    ensure!(text.contains(&format!("IP {client}.")), "{text}");

    // A filter that matches nothing: no frame, and Ctrl-C ends it with the counts.
    let (nothing, err) = CaptureProcess::start(&cluster, "-c 1 udp port 9", "", "none")?;
    cluster.curl("/")?;
    std::thread::sleep(Duration::from_millis(300));
    nothing.interrupt()?;
    let text = nothing.finish(Duration::from_secs(5))?;
    ensure!(text.is_empty(), "{text}");
    ensure!(read(&err).contains("0 packets captured"), "{}", read(&err));

    // A bad filter is an error naming it, and starts nothing.
    let (code, _, stderr) = cluster.xvsadm_raw(&["capture", "tcp", "port", "eighty"])?;
    ensure!(code != 0 && stderr.contains("eighty"), "{code}: {stderr}");

    // A slow reader: frames are dropped from the capture, never from the traffic, and the
    // end says how many.
    let (slow, err) =
        CaptureProcess::start(&cluster, "-w -", "| (sleep 3; cat >/dev/null)", "slow")?;
    for _ in 0..4 {
        ensure!(
            cluster.download("/big.bin")?.len() == 1 << 20,
            "download intact"
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    slow.interrupt()?;
    slow.finish(Duration::from_secs(10))?;
    let summary = read(&err);
    let dropped: u64 = summary
        .lines()
        .find_map(|l| {
            l.strip_suffix(" for a slow reader)")
                .and(l.split_whitespace().next())
        })
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no drop count in {summary}"))?;
    ensure!(dropped > 0, "{summary}");

    // A closed pipe ends the capture promptly.
    let (head, _) = CaptureProcess::start(&cluster, "tcp port 80", "| head -2", "head")?;
    cluster.curl("/")?;
    let text = head.finish(Duration::from_secs(5))?;
    ensure!(text.lines().count() == 2, "{text}");
    // And forwarding goes on as before, the fast path back on.
    cluster.big_download_intact()?;

    // A client the control socket does not admit is refused, with the reason.
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&cluster.xvsadm)
        .arg("--control")
        .arg(cluster.director.control_path())
        .args(["capture", "-c", "1"])
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        !output.status.success() && stderr.to_lowercase().contains("permission"),
        "{}: {stderr}",
        output.status
    );
    Ok(())
}
