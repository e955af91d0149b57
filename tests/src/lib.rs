//! Harness for the end-to-end tests: a namespace topology with real nginx servers, a real
//! `xvsd` in the director namespace and the real `xvsadm`, all torn down when dropped.
//!
//! The tests need root (namespaces, XDP). Without root they skip with a message, except under
//! CI (`CI` set), where a skip would hide a broken build and fails instead.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use xvs_control::director::{find_binary, DirectorProcess};
use xvs_control::topology::{self, Topology, TopologySpec};

/// Runs `command` with `input` on its stdin (stdout and stderr captured).
pub fn output_with_stdin(
    mut command: std::process::Command,
    input: &[u8],
) -> Result<std::process::Output> {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {command:?}"))?;
    // Dropped after writing: the program sees end of file.
    child.stdin.take().context("no stdin")?.write_all(input)?;
    Ok(child.wait_with_output()?)
}

/// Runs `work` on a thread of its own that entered network namespace `ns` (a name under
/// /run/netns), so that its sockets live there: a client without a process per query.
pub fn in_namespace<T: Send + 'static>(
    ns: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let handle = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace descriptor affects only this new thread, which
        // exits after `work`.
        if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error()).context("setns into the namespace");
        }
        work()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread in namespace {ns} panicked"))?
}

/// One datagram (a line) from namespace `ns`, from a fresh port (a new connection), to `to`;
/// the answer, or "" when none came within 3 s. The socket is connected, so only an answer
/// from `to` counts, and it returns as soon as one arrives (socat waited a fixed 0.5 s after
/// its stdin ended, less than a responder that forks a shell takes on a loaded machine).
pub fn udp_exchange(ns: &str, to: SocketAddr) -> Result<String> {
    in_namespace(ns, move || {
        let any: SocketAddr = match to {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = std::net::UdpSocket::bind(any)?;
        socket.connect(to)?;
        socket.set_read_timeout(Some(Duration::from_secs(3)))?;
        socket.send(b"ping\n")?;
        let mut answer = [0u8; 512];
        match socket.recv(&mut answer) {
            Ok(n) => Ok(String::from_utf8_lossy(&answer[..n]).trim().to_string()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(String::new())
            }
            Err(e) => Err(e).context("receiving the answer"),
        }
    })
}

/// Whether a root-only test may run; panics under CI when it may not.
pub fn root_or_skip(test: &str) -> bool {
    if topology::is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: end-to-end tests need root, and CI must not skip them");
    }
    eprintln!("skipping {test}: it needs root (network namespaces and XDP)");
    false
}

/// A topology plus a running director.
pub struct Cluster {
    // Field order is drop order: stop xvsd before the namespaces go away.
    pub director: DirectorProcess,
    pub topo: Topology,
    pub xvsd: PathBuf,
    pub xvsadm: PathBuf,
}

impl Cluster {
    /// Builds the seed topology with `queues` queues per veth, starts nginx and xvsd with
    /// `xvsd_args`.
    pub fn start(prefix: &str, queues: u32, xvsd_args: &[&str]) -> Result<Cluster> {
        let mut spec = TopologySpec::seed();
        spec.prefix = prefix.to_string();
        spec.queues = queues;
        Self::start_spec(&spec, xvsd_args)
    }

    /// [`Cluster::start`] on any topology.
    pub fn start_spec(spec: &TopologySpec, xvsd_args: &[&str]) -> Result<Cluster> {
        Self::start_spec_prepared(spec, xvsd_args, |_| Ok(()))
    }

    /// [`Cluster::start_spec`], running `prepare` on the built topology before xvsd starts:
    /// for what xvsd reads only at start (an interface's MTU).
    pub fn start_spec_prepared(
        spec: &TopologySpec,
        xvsd_args: &[&str],
        prepare: impl FnOnce(&Topology) -> Result<()>,
    ) -> Result<Cluster> {
        let mut topo = Topology::build(spec)?;
        topo.start_web_servers()?;
        prepare(&topo)?;
        let xvsd = find_binary("xvsd")?;
        let xvsadm = find_binary("xvsadm")?;
        let director = DirectorProcess::start(&topo, &xvsd, xvsd_args)?;
        Ok(Cluster {
            director,
            topo,
            xvsd,
            xvsadm,
        })
    }

    /// The daemon's `stats` reply (per-worker counters).
    pub fn stats(&self) -> Result<xvs_control::protocol::StatsReply> {
        use xvs_control::protocol::{Command, Reply};
        match self.director.client()?.call(Command::Stats)? {
            Reply::Stats(s) => Ok(s),
            other => bail!("not a stats reply: {other:?}"),
        }
    }

    /// Runs `xvsadm ARGS` against this cluster's daemon.
    pub fn xvsadm(&self, args: &[&str]) -> Result<String> {
        self.director.xvsadm(&self.xvsadm, args)
    }

    /// Runs `xvsadm ARGS` and returns (exit code, stdout, stderr) whatever the outcome.
    pub fn xvsadm_raw(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = std::process::Command::new(&self.xvsadm)
            .arg("--control")
            .arg(self.director.control_path())
            .args(args)
            .output()
            .context("running xvsadm")?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `xvsadm -R` with `input` (an `-S` listing) on its stdin: (exit code, stderr).
    pub fn xvsadm_restore(&self, input: &str) -> Result<(i32, String)> {
        let mut command = std::process::Command::new(&self.xvsadm);
        command
            .arg("--control")
            .arg(self.director.control_path())
            .arg("-R");
        let out = output_with_stdin(command, input.as_bytes())?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The seed's configuration: `-A -t VIP:port -s rr` and every real server with `-m`.
    pub fn configure(&self, proto_flag: &str, port: u16) -> Result<()> {
        let vip = format!("{}:{port}", self.topo.vip());
        self.xvsadm(&["-A", proto_flag, &vip, "-s", "rr"])?;
        for real in self.topo.reals() {
            self.xvsadm(&["-a", proto_flag, &vip, "-r", &real.addr.to_string(), "-m"])?;
        }
        Ok(())
    }

    /// `curl http://VIP{path}` from the client namespace (5 s limit); the body.
    pub fn curl(&self, path: &str) -> Result<String> {
        self.curl_url(&format!("http://{}{path}", self.topo.vip()))
    }

    /// `count` curls of `/` from the client, which round robin must spread over the seed's two
    /// web servers in turn, web01 (198.19.0.148) first: the tutorial's check of a cluster.
    pub fn curls_alternate(&self, count: usize) -> Result<()> {
        let answers: Vec<String> = (0..count)
            .map(|_| self.curl("/").map(|s| s.trim_end().to_string()))
            .collect::<Result<_>>()?;
        for (i, answer) in answers.iter().enumerate() {
            let want = if i % 2 == 0 {
                "198.19.0.148 is www.shuyan.com"
            } else {
                "198.19.0.137"
            };
            if answer != want {
                bail!("answer {i} of {answers:?} is not {want:?}");
            }
        }
        Ok(())
    }

    /// A UDP responder on every real server that answers each datagram (a line, as
    /// [`Cluster::udp_query`] sends) with the server's own address, from `port` (socat),
    /// bound to `bind` (the VIP for servers that answer the client directly) or to any
    /// address.
    pub fn start_udp_responders(&mut self, port: u16, bind: Option<Ipv4Addr>) -> Result<()> {
        let listen = match bind {
            Some(addr) => format!("UDP4-RECVFROM:{port},bind={addr},reuseaddr,fork"),
            None => format!("UDP4-RECVFROM:{port},reuseaddr,fork"),
        };
        self.start_udp_responders_with(port, &listen, |addr| addr.to_string())
    }

    /// [`Cluster::start_udp_responders`] over IPv6 on a dual-stack topology: each answers
    /// with its IPv6 address ([`topology::ipv6_of`]).
    pub fn start_udp6_responders(&mut self, port: u16) -> Result<()> {
        let listen = format!("UDP6-RECVFROM:{port},reuseaddr,fork");
        // socat splits addresses at ':': escaped, the shell gets them whole.
        self.start_udp_responders_with(port, &listen, |addr| {
            topology::ipv6_of(addr).to_string().replace(':', "\\:")
        })
    }

    /// socat `listen` on every real server, answering with `answer(its IPv4 address)`; waits
    /// until each is bound to `port`.
    fn start_udp_responders_with(
        &mut self,
        port: u16,
        listen: &str,
        answer: impl Fn(Ipv4Addr) -> String,
    ) -> Result<()> {
        for i in 0..self.topo.reals().len() {
            let ns = self.topo.real_ns(i).to_string();
            // The shell reads the query line first: an `echo` that exits without reading made
            // socat's write of the query fail (EPIPE) and, racing, lose about 1 answer in 12.
            let answer = format!(
                "SYSTEM:read -r _; echo {}",
                answer(self.topo.reals()[i].addr)
            );
            self.topo.spawn_in(&ns, &["socat", listen, &answer])?;
        }
        // Each bound before the first query: a fixed pause lost one on a loaded machine (the
        // query went unanswered and round robin moved on).
        let filter = format!("sport = :{port}");
        for i in 0..self.topo.reals().len() {
            let ns = self.topo.real_ns(i).to_string();
            let bound = wait_until(Duration::from_secs(5), || {
                self.topo
                    .run_in(&ns, &["ss", "-Hnlu", &filter])
                    .is_ok_and(|out| !out.trim().is_empty())
            });
            if !bound {
                bail!("the UDP responder of real server {i} is not bound to port {port}");
            }
        }
        Ok(())
    }

    /// `count` datagrams to VIP:`port` (see [`Cluster::udp_query`]), each a new connection,
    /// which round robin must spread over the seed's two real servers in turn, 198.19.0.148
    /// first (answers from [`Cluster::start_udp_responders`]).
    pub fn udp_queries_alternate(&self, port: u16, count: usize) -> Result<()> {
        let answers = (0..count)
            .map(|_| self.udp_query(port))
            .collect::<Result<Vec<_>>>()?;
        for (i, answer) in answers.iter().enumerate() {
            let want = if i % 2 == 0 {
                "198.19.0.148"
            } else {
                "198.19.0.137"
            };
            if answer != want {
                let listing = self
                    .xvsadm(&["-Ln", "--stats"])
                    .unwrap_or_else(|e| e.to_string());
                bail!(
                    "UDP answer {i} of {answers:?} is not {want}\n{listing}\nxvsd log:\n{}",
                    self.director.log()
                );
            }
        }
        Ok(())
    }

    /// One datagram from the client to VIP:`port` from a fresh port (a new connection), and
    /// the answer: [`udp_exchange`].
    pub fn udp_query(&self, port: u16) -> Result<String> {
        udp_exchange(
            self.topo.client_ns(),
            SocketAddr::from((self.topo.vip(), port)),
        )
    }

    /// Downloads the 1 MiB file from the VIP and checks it byte for byte.
    pub fn big_download_intact(&self) -> Result<()> {
        let body = self.download(topology::BIG_FILE_PATH)?;
        if body != topology::big_file_bytes() {
            bail!(
                "the 1 MiB download differs ({} bytes)\nxvsd log:\n{}",
                body.len(),
                self.director.log()
            );
        }
        Ok(())
    }

    /// Packets the XDP fast path forwarded so far, over all workers.
    pub fn fast_forwarded(&self) -> Result<u64> {
        Ok(self.stats()?.workers.iter().map(|w| w.fast_forwarded).sum())
    }

    /// `curl URL` from the client namespace (5 s limit); the body.
    pub fn curl_url(&self, url: &str) -> Result<String> {
        self.topo
            .run_in_timeout(
                self.topo.client_ns(),
                &["curl", "-sS", "--fail", "--max-time", "5", url],
                Duration::from_secs(10),
            )
            .with_context(|| format!("curl {url}\nxvsd log:\n{}", self.director.log()))
    }

    /// Downloads `path` from the VIP with curl in the client namespace; the bytes received.
    pub fn download(&self, path: &str) -> Result<Vec<u8>> {
        self.download_url(&format!("http://{}{path}", self.topo.vip()))
    }

    /// Downloads `url` with curl in the client namespace; the bytes received.
    pub fn download_url(&self, url: &str) -> Result<Vec<u8>> {
        let out = self.topo.work_dir().join("download");
        let target = out.to_string_lossy();
        self.topo.run_in(
            self.topo.client_ns(),
            &[
                "curl",
                "-sS",
                "--fail",
                "--max-time",
                "20",
                "-o",
                &target,
                url,
            ],
        )?;
        std::fs::read(&out).with_context(|| format!("reading {target}"))
    }

    /// Whether any XDP program is attached to `iface` in the director namespace.
    pub fn xdp_attached(&self, iface: &str) -> Result<bool> {
        let out = self.topo.run_in(
            self.topo.director_ns(),
            &["ip", "-d", "link", "show", iface],
        )?;
        Ok(out.contains("prog/xdp") || out.contains(" xdp"))
    }

    pub fn real_addrs(&self) -> Vec<Ipv4Addr> {
        self.topo.reals().iter().map(|r| r.addr).collect()
    }

    /// Starts `xvs-bench agent echo` (the UDP echo responder of the bench's latency probe) on
    /// the first `reals` real servers for `seconds`, and waits until each is listening.
    pub fn start_echo_responders(&mut self, reals: usize, seconds: u64) -> Result<()> {
        self.start_agents(reals, &["echo", "--duration", &seconds.to_string()])
    }

    /// Starts `xvs-bench agent decap` (tunnel decapsulation in XDP: this machine's kernel has
    /// no ipip, fou or gre) on every real server's interface for `seconds`, GUE on
    /// `gue_port`, and waits until each is attached.
    pub fn start_decapsulators(&mut self, gue_port: u16, seconds: u64) -> Result<()> {
        let (port, duration) = (gue_port.to_string(), seconds.to_string());
        let args = [
            "decap",
            "--iface",
            "eth0",
            "--port",
            &port,
            "--duration",
            &duration,
        ];
        self.start_agents(self.topo.reals().len(), &args)
    }

    /// Starts `xvs-bench agent ARGS --ready FLAG` on the first `reals` real servers and
    /// waits (10 s at most) until each has created its flag.
    fn start_agents(&mut self, reals: usize, args: &[&str]) -> Result<()> {
        let bench = find_binary("xvs-bench")?.to_string_lossy().into_owned();
        let mut ready = Vec::new();
        for i in 0..reals {
            let flag = self.topo.work_dir().join(format!("{}{i}.ready", args[0]));
            let ns = self.topo.real_ns(i).to_string();
            let flag_arg = flag.to_string_lossy().into_owned();
            let mut command = vec![bench.as_str(), "agent"];
            command.extend_from_slice(args);
            command.extend_from_slice(&["--ready", &flag_arg]);
            self.topo.spawn_in(&ns, &command)?;
            ready.push(flag);
        }
        if !wait_until(Duration::from_secs(10), || ready.iter().all(|f| f.exists())) {
            bail!(
                "xvs-bench agent {} did not start on the real servers",
                args[0]
            );
        }
        Ok(())
    }

    /// SIGKILLs xvsd and waits (5 s at most) until the kernel has detached both XDP programs,
    /// as it must when it reaps the process that owns their links.
    pub fn kill_director(&mut self) -> Result<()> {
        self.director.kill9()?;
        let (ext, int) = (
            self.topo.ext_if().to_string(),
            self.topo.int_if().to_string(),
        );
        let detached = wait_until(Duration::from_secs(5), || {
            !self.xdp_attached(&ext).unwrap_or(true) && !self.xdp_attached(&int).unwrap_or(true)
        });
        if !detached {
            bail!("XDP program still attached after SIGKILL");
        }
        Ok(())
    }

    /// Sends `signal` to xvsd (e.g. SIGHUP: reload `--config`).
    pub fn signal_director(&self, signal: i32) -> Result<()> {
        let pid = self.director.pid().context("xvsd is not running")?;
        // SAFETY: kill(2) has no memory preconditions; the pid is the xvsd we started.
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            bail!("kill -{signal} {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// A private directory under the system's temporary directory, removed when dropped (for
/// files that must exist before xvsd starts, such as its `--config`).
pub struct TempDir(PathBuf);

impl TempDir {
    /// `tag` names the test; the process id keeps concurrent runs apart.
    pub fn new(tag: &str) -> Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("xvs-{tag}-{}", std::process::id()));
        // Left over by a killed run of the same pid: start empty.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(TempDir(dir))
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A download of `SLOW_PREFIX + path` (paced by nginx) running in the background in the client
/// namespace; killed if dropped before [`SlowDownload::finish`].
pub struct SlowDownload {
    child: Option<Child>,
    out: PathBuf,
}

impl SlowDownload {
    /// Starts curl on `http://VIP/slow{path}`, saving into the cluster's work directory.
    pub fn start(cluster: &Cluster, path: &str) -> Result<SlowDownload> {
        let url = format!(
            "http://{}{}{path}",
            cluster.topo.vip(),
            topology::SLOW_PREFIX
        );
        Self::start_url(cluster, &url)
    }

    /// [`SlowDownload::start`] of `url` (e.g. `http://[VIP6]/slow{path}`).
    pub fn start_url(cluster: &Cluster, url: &str) -> Result<SlowDownload> {
        let out = cluster.topo.work_dir().join("slow.download");
        let child = cluster
            .topo
            .command_in(cluster.topo.client_ns(), "curl")
            .args(["-sS", "--fail", "--max-time", "30", "-o"])
            .arg(&out)
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting curl")?;
        Ok(SlowDownload {
            child: Some(child),
            out,
        })
    }

    /// Whether curl is still downloading.
    pub fn running(&mut self) -> Result<bool> {
        match self.child.as_mut() {
            Some(c) => Ok(c.try_wait()?.is_none()),
            None => Ok(false),
        }
    }

    /// Waits (at most `timeout`) for curl to exit successfully; the bytes received.
    pub fn finish(mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut child = self.child.take().expect("finish called once");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("download did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            e.read_to_string(&mut stderr)?;
        }
        anyhow::ensure!(status.success(), "download failed ({status}): {stderr}");
        std::fs::read(&self.out).with_context(|| format!("reading {}", self.out.display()))
    }
}

impl Drop for SlowDownload {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Fails with both texts when `haystack` lacks `needle`.
pub fn ensure_contains(haystack: &str, needle: &str) -> Result<()> {
    if !haystack.contains(needle) {
        bail!("expected {needle:?} in:\n{haystack}");
    }
    Ok(())
}

/// wrk running in the background in the client namespace; killed if dropped unfinished.
pub struct Wrk {
    child: Option<Child>,
    limit: Duration,
}

impl Wrk {
    /// `wrk --latency ARGS URL` (the caller gives -t/-c/-d and headers).
    pub fn start(cluster: &Cluster, args: &[&str], url: &str) -> Result<Wrk> {
        let seconds = args
            .iter()
            .find_map(|a| a.strip_prefix("-d")?.strip_suffix('s')?.parse::<u64>().ok())
            .context("give wrk its duration as -dNs")?;
        let child = cluster
            .topo
            .command_in(cluster.topo.client_ns(), "wrk")
            .arg("--latency")
            .args(args)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting wrk")?;
        Ok(Wrk {
            child: Some(child),
            limit: Duration::from_secs(seconds + 30),
        })
    }

    /// Waits for wrk's report; fails on a failed run.
    pub fn finish(mut self) -> Result<WrkReport> {
        let mut child = self.child.take().expect("finish called once");
        let deadline = Instant::now() + self.limit;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("wrk did not finish within {:?}", self.limit);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        anyhow::ensure!(
            out.status.success(),
            "wrk failed ({}): {}{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        WrkReport::parse(text)
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What wrk printed, and what the tests assert on.
#[derive(Debug)]
pub struct WrkReport {
    pub text: String,
    /// "N requests in ...".
    pub requests: u64,
    /// The "Socket errors: ..." line, if wrk had any (connect, read, write, timeout).
    pub socket_errors: Option<String>,
    /// The "Non-2xx or 3xx responses: N" count.
    pub non_2xx: u64,
}

impl WrkReport {
    fn parse(text: String) -> Result<WrkReport> {
        let line_after = |marker: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(marker).map(str::trim))
                .map(str::to_string)
        };
        let requests = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .split_once(" requests in ")
                    .map(|(n, _)| n.to_string())
            })
            .with_context(|| format!("no request count in wrk's report:\n{text}"))?
            .parse()?;
        let non_2xx = match line_after("Non-2xx or 3xx responses:") {
            Some(n) => n.parse()?,
            None => 0,
        };
        Ok(WrkReport {
            requests,
            socket_errors: line_after("Socket errors:"),
            non_2xx,
            text,
        })
    }

    /// Fails unless every request succeeded: no socket error, no non-2xx answer.
    pub fn ensure_clean(&self) -> Result<()> {
        anyhow::ensure!(
            self.socket_errors.is_none() && self.non_2xx == 0,
            "wrk saw errors:\n{}",
            self.text
        );
        Ok(())
    }
}
