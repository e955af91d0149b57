//! Running `xvsd` as a child process inside a topology's director namespace, and finding the
//! project's binaries: shared by `xvsd demo`, the end-to-end tests and the benchmarks.

use crate::client::Client;
use crate::topology::Topology;
use anyhow::{bail, ensure, Context, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long xvsd may take to bring its control socket up.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long xvsd gets to exit on SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The path of one of the project's binaries (`xvsd`, `xvsadm`, `xvs-bench`): `$XVS_BIN_DIR`
/// if set, else next to the running executable or one directory up (where cargo puts binaries
/// relative to test executables in `deps/`).
pub fn find_binary(name: &str) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("XVS_BIN_DIR") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join(name));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!("binary {name} not found (looked at {candidates:?}); build it with `cargo build --release --bins`")
        })
}

/// An `xvsd` running in one of a topology's director namespaces; stopped (SIGTERM) when
/// dropped.
pub struct DirectorProcess {
    child: Option<Child>,
    control: PathBuf,
    log: PathBuf,
}

impl DirectorProcess {
    /// Starts `xvsd` on the topology's ext/int interfaces with extra arguments, and waits
    /// until its control socket answers: [`DirectorProcess::start_on`] director 0.
    pub fn start(topology: &Topology, xvsd: &Path, extra_args: &[&str]) -> Result<Self> {
        Self::start_on(topology, 0, xvsd, extra_args)
    }

    /// Starts `xvsd` in director `director`'s namespace (see [`Topology::director_ns_of`]),
    /// control socket `work_dir()/xvs.sock` and log `xvsd.log` for director 0, `xvs{i}.sock`
    /// and `xvsd{i}.log` for director `i`. May be called again for an index whose daemon was
    /// killed ([`DirectorProcess::kill9`]): the socket file it left refuses connections, so
    /// it is not taken for the new daemon's, which replaces it (`server::bind`). The log is
    /// started afresh.
    pub fn start_on(
        topology: &Topology,
        director: usize,
        xvsd: &Path,
        extra_args: &[&str],
    ) -> Result<Self> {
        ensure!(
            director < topology.directors(),
            "no director {director}: the topology has {}",
            topology.directors()
        );
        let suffix = match director {
            0 => String::new(),
            i => i.to_string(),
        };
        let control = topology.work_dir().join(format!("xvs{suffix}.sock"));
        let log = topology.work_dir().join(format!("xvsd{suffix}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let ns = topology.director_ns_of(director);
        let mut cmd = topology.command_in(ns, &xvsd.to_string_lossy());
        cmd.args([
            "--external",
            topology.ext_if(),
            "--internal",
            topology.int_if(),
        ])
        .arg("--control")
        .arg(&control)
        .args(extra_args)
        .stdout(out)
        .stderr(err);
        let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let mut director = DirectorProcess {
            child: Some(child),
            control,
            log,
        };
        director.wait_ready()?;
        Ok(director)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!("xvsd exited during start-up ({status}):\n{}", self.log());
                }
            }
            if self.control.exists() && Client::connect(&self.control).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "xvsd did not open its control socket within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn control_path(&self) -> &Path {
        &self.control
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// A protocol client connected to this daemon.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.control)?)
    }

    /// Runs the `xvsadm` binary against this daemon; returns stdout, or an error with stderr.
    pub fn xvsadm(&self, xvsadm: &Path, args: &[&str]) -> Result<String> {
        let output = Command::new(xvsadm)
            .arg("--control")
            .arg(&self.control)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", xvsadm.display()))?;
        if !output.status.success() {
            bail!(
                "xvsadm {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// What xvsd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, as a crash would: nothing is cleaned up by xvsd itself.
    pub fn kill9(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("sending SIGKILL to xvsd")?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM and wait (SIGKILL after a grace period); returns whether it exited by itself.
    pub fn stop(&mut self) -> Result<bool> {
        let Some(mut child) = self.child.take() else {
            return Ok(true);
        };
        let pid = child.id() as libc::pid_t;
        // Safety: kill(2) on the pid of our own child, which we have not reaped yet.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        if sent != 0 {
            child.kill().ok();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().ok();
        child.wait()?;
        Ok(false)
    }
}

impl Drop for DirectorProcess {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
