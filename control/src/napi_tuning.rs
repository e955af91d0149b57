//! Interface settings xvsd needs only while it runs, in `/sys/class/net/IFACE/`:
//! - for preferred busy polling ([`xvs_dataplane::xsk::BusyPoll`]), which keeps an
//!   interface's NAPI with the worker only while the interface defers its interrupts:
//!   `napi_defer_hard_irqs` (how many empty polls before interrupts come back) and
//!   `gro_flush_timeout` (the timer, in ns, that hands the NAPI back to the kernel when the
//!   worker stops polling);
//! - for `--threaded-napi`: `threaded`, which moves the receive into kernel threads.
//!
//! They belong to the machine, not to xvsd, so xvsd puts back what it found after ANY exit, SIGKILL and crashes included: a guardian process (`sh`, in its own
//! process group so that a terminal's Ctrl-C does not reach it) holds the previous values and
//! waits for its standard input to close, which the kernel does when xvsd exits however it
//! exits; it then writes them back. A clean shutdown takes the same path and waits for it.

use anyhow::{bail, Context};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The kernel's sysfs view of network interfaces.
pub const SYSFS_NET: &str = "/sys/class/net";

/// One file of `/sys/class/net/IFACE/` and the value xvsd wants in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub file: &'static str,
    pub value: String,
    /// The first Linux release that has the file (for the error where it is missing).
    pub since: &'static str,
    /// Written before the saved value on restoring, when the two differ: `threaded` goes
    /// through 0 so that the kernel recreates its threads, with its own scheduling and
    /// affinity rather than those xvsd gave them (`--threaded-napi`).
    pub restore_through: Option<&'static str>,
}

/// A value found in a file, to restore.
struct Saved {
    path: PathBuf,
    old: String,
    new: String,
    restore_through: Option<&'static str>,
}

/// What preferred busy polling needs: DPDK's AF_XDP recommendation.
pub fn busy_poll_settings() -> Vec<Setting> {
    vec![
        Setting {
            file: "napi_defer_hard_irqs",
            value: "2".into(),
            since: "5.11",
            restore_through: None,
        },
        Setting {
            file: "gro_flush_timeout",
            value: "200000".into(),
            since: "5.11",
            restore_through: None,
        },
    ]
}

/// Threaded NAPI: the interface's receive runs in kernel threads (`napi/IFACE-ID`), which the
/// scheduler places and ranks, instead of softirq, which outranks every thread.
pub fn threaded_napi_settings() -> Vec<Setting> {
    vec![Setting {
        file: "threaded",
        value: "1".into(),
        since: "5.12",
        restore_through: Some("0"),
    }]
}

/// The settings in force on some interfaces; dropping it restores what was there before.
pub struct NapiTuning {
    guardian: Option<Child>,
    stdin: Option<ChildStdin>,
}

/// How long a clean shutdown waits for the guardian to restore the settings.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(5);

impl NapiTuning {
    /// Applies `settings` to every interface of `ifaces` under `sysfs` (normally
    /// [`SYSFS_NET`]). Fails, changing nothing, when an interface lacks a file (an older
    /// kernel) or it cannot be read.
    pub fn apply(sysfs: &Path, ifaces: &[&str], settings: &[Setting]) -> anyhow::Result<Self> {
        let mut saved = Vec::new();
        for iface in ifaces {
            for setting in settings {
                let path = sysfs.join(iface).join(setting.file);
                let old = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "{} is needed (Linux {} or later)",
                        path.display(),
                        setting.since
                    )
                })?;
                saved.push(Saved {
                    path,
                    old: old.trim().to_string(),
                    new: setting.value.clone(),
                    restore_through: setting.restore_through,
                });
            }
        }
        // The guardian first: from the moment a value changes, something will restore it.
        let script = restore_script(&saved)?;
        let mut child = spawn_guardian(&script).context("starting the settings guardian")?;
        let stdin = child.stdin.take();
        let tuning = NapiTuning {
            guardian: Some(child),
            stdin,
        };
        for Saved {
            path, new: value, ..
        } in &saved
        {
            // A failure here drops `tuning`, which restores the ones already written.
            std::fs::write(path, value)
                .with_context(|| format!("writing {value} to {}", path.display()))?;
        }
        Ok(tuning)
    }

    /// Simulates xvsd dying without running any destructor: the pipe closes as the kernel
    /// would close it. Tests only.
    #[doc(hidden)]
    pub fn close_pipe_for_test(&mut self) {
        self.stdin.take();
    }

    /// Waits for the guardian to finish restoring (after the pipe closed).
    fn wait_guardian(&mut self) -> io::Result<()> {
        let Some(mut child) = self.guardian.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "the guardian exited with {status}"
                    )))
                };
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::other("the guardian did not finish in time"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for NapiTuning {
    fn drop(&mut self) {
        self.stdin.take();
        if let Err(e) = self.wait_guardian() {
            eprintln!("xvsd: restoring the interfaces' NAPI settings: {e}");
        }
    }
}

/// `sh` code that waits for EOF on its standard input, then writes every saved value back.
fn restore_script(saved: &[Saved]) -> anyhow::Result<String> {
    let mut script = String::from("trap '' INT TERM HUP\ncat >/dev/null\nstatus=0\n");
    for Saved {
        path,
        old,
        restore_through,
        ..
    } in saved
    {
        let path = path
            .to_str()
            .with_context(|| format!("{} is not UTF-8", path.display()))?;
        if !old.bytes().all(|b| b.is_ascii_digit()) || old.is_empty() {
            bail!("{path} holds {old:?}, not a number");
        }
        let path = shell_quote(path);
        match restore_through {
            Some(through) if through != old => {
                script.push_str(&format!("echo {through} > {path} || status=1\n"));
            }
            _ => {}
        }
        script.push_str(&format!("echo {old} > {path} || status=1\n"));
    }
    script.push_str("exit $status\n");
    Ok(script)
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guardian: nothing is ever written to its standard input, which only signals xvsd's
/// exit by closing (the pipe is close-on-exec, so no other program of xvsd's holds it open).
fn spawn_guardian(script: &str) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .process_group(0)
        .spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(tag: &str, ifaces: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!("xvs-napi-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for iface in ifaces {
            std::fs::create_dir_all(root.join(iface)).unwrap();
            std::fs::write(root.join(iface).join("napi_defer_hard_irqs"), "0\n").unwrap();
            std::fs::write(root.join(iface).join("gro_flush_timeout"), "0\n").unwrap();
        }
        root
    }

    fn read(root: &Path, iface: &str, file: &str) -> String {
        std::fs::read_to_string(root.join(iface).join(file))
            .unwrap()
            .trim()
            .to_string()
    }

    #[test]
    fn settings_hold_while_alive_and_are_restored_on_drop() {
        let root = fake_sysfs("drop", &["ext0", "in't0"]);
        let tuning = NapiTuning::apply(&root, &["ext0", "in't0"], &busy_poll_settings()).unwrap();
        for iface in ["ext0", "in't0"] {
            assert_eq!(read(&root, iface, "napi_defer_hard_irqs"), "2");
            assert_eq!(read(&root, iface, "gro_flush_timeout"), "200000");
        }
        drop(tuning);
        for iface in ["ext0", "in't0"] {
            assert_eq!(read(&root, iface, "napi_defer_hard_irqs"), "0");
            assert_eq!(read(&root, iface, "gro_flush_timeout"), "0");
        }
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_closed_pipe_alone_restores_the_settings() {
        // What happens when xvsd is SIGKILLed: no destructor, only the kernel closing fds.
        let root = fake_sysfs("kill", &["ext0"]);
        let mut tuning = NapiTuning::apply(&root, &["ext0"], &busy_poll_settings()).unwrap();
        assert_eq!(read(&root, "ext0", "gro_flush_timeout"), "200000");
        tuning.close_pipe_for_test();
        let restored = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            read(&root, "ext0", "gro_flush_timeout") == "0"
        });
        assert!(restored, "the guardian did not restore the setting");
        assert_eq!(read(&root, "ext0", "napi_defer_hard_irqs"), "0");
        drop(tuning);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn threads_found_on_are_recreated_on_restoring() {
        let saved = |old: &str| Saved {
            path: PathBuf::from("/sys/class/net/ext0/threaded"),
            old: old.into(),
            new: "1".into(),
            restore_through: threaded_napi_settings()[0].restore_through,
        };
        let script = restore_script(&[saved("1")]).unwrap();
        let off = script
            .find("echo 0 > '/sys/class/net/ext0/threaded'")
            .unwrap();
        let on = script
            .find("echo 1 > '/sys/class/net/ext0/threaded'")
            .unwrap();
        assert!(off < on, "{script}");
        let script = restore_script(&[saved("0")]).unwrap();
        assert_eq!(script.matches("threaded").count(), 1, "{script}");
    }

    #[test]
    fn a_kernel_without_the_files_is_refused_and_nothing_changes() {
        let root = fake_sysfs("old", &["ext0"]);
        std::fs::create_dir_all(root.join("int0")).unwrap();
        let e = NapiTuning::apply(&root, &["ext0", "int0"], &busy_poll_settings())
            .err()
            .unwrap();
        let msg = format!("{e:#}");
        assert!(msg.contains("int0/napi_defer_hard_irqs"), "{msg}");
        assert!(msg.contains("5.11"), "{msg}");
        assert_eq!(read(&root, "ext0", "napi_defer_hard_irqs"), "0");
        std::fs::remove_dir_all(root).unwrap();
    }
}
