//! `xvsd --drop-privileges`: after start-up, every thread of the daemon keeps only the
//! capabilities the running director needs and gives up the rest for good.
//!
//! Kept ([`KEPT`]): `CAP_NET_ADMIN` (neighbour entries over rtnetlink, interface settings),
//! `CAP_BPF` (updating the XDP program's maps when services change: with
//! `kernel.unprivileged_bpf_disabled` every `bpf()` call needs it, even on an open map) and
//! `CAP_NET_RAW` (AF_XDP and packet sockets). Everything else goes from the effective,
//! permitted, inheritable, ambient and bounding sets, and `no_new_privs` is set, so neither a
//! bug in xvsd nor a program it could be tricked into running can regain them. The process
//! stays uid 0, so files owned by root stay readable (the `--config` file on SIGHUP), but
//! files owned by others are no longer, since `CAP_DAC_OVERRIDE` is gone.
//!
//! Linux keeps capabilities per thread, so there is no process-wide switch: the main thread
//! drops once start-up is done ([`restrict_current_thread`]), and every thread xvsd starts
//! drops first thing ([`thread_start`] is what thread spawners call). Start-up itself (XDP
//! attach, UMEM registration, binding the control socket and the metrics port) runs with full
//! privileges before that.

use anyhow::Context;
use caps::{CapSet, Capability, CapsHashSet};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a restricted thread keeps.
pub const KEPT: [Capability; 3] = [
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_BPF,
];

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns dropping on for this process: threads started from now on restrict themselves.
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// The first thing a daemon thread does: restricts itself when dropping is enabled. A thread
/// that cannot drop must not go on with more than it should, so this aborts the process
/// (after saying why) rather than let it run privileged.
pub fn thread_start() {
    if !enabled() {
        return;
    }
    if let Err(e) = restrict_current_thread() {
        eprintln!("xvsd: --drop-privileges: {e:#}");
        std::process::abort();
    }
}

/// Reduces the calling thread to [`KEPT`] and sets `no_new_privs`.
pub fn restrict_current_thread() -> anyhow::Result<()> {
    let kept: CapsHashSet = KEPT.into_iter().collect();
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes below. A thread
    // started by a restricted one inherits its sets (and no CAP_SETPCAP): nothing to drop.
    let bounding = caps::read(None, CapSet::Bounding).context("reading the bounding set")?;
    for cap in bounding {
        if !kept.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).context("clearing the ambient set")?;
    caps::clear(None, CapSet::Inheritable).context("clearing the inheritable set")?;
    // Effective must stay within permitted: narrow it first.
    caps::set(None, CapSet::Effective, &kept).context("setting the effective set")?;
    caps::set(None, CapSet::Permitted, &kept).context("setting the permitted set")?;
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setting no_new_privs");
    }
    Ok(())
}

/// The capability mask (as /proc/PID/status prints CapEff) of [`KEPT`].
pub fn kept_mask() -> u64 {
    KEPT.iter().fold(0, |m, c| m | c.bitmask())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_mask_is_net_admin_net_raw_bpf() {
        // CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_BPF 39.
        assert_eq!(kept_mask(), (1 << 12) | (1 << 13) | (1 << 39));
    }

    #[test]
    fn a_restricted_thread_keeps_only_the_kept_set() {
        if !crate::topology::is_root() {
            eprintln!("skipping: needs root to hold capabilities to drop");
            return;
        }
        // In a thread of its own: the test process's other threads keep theirs.
        let (effective, permitted, bounding, no_new_privs) = std::thread::spawn(|| {
            restrict_current_thread().expect("restrict");
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            let field = |name: &str| {
                let line = status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .unwrap_or_else(|| panic!("{name} in status"));
                line.split_whitespace().nth(1).unwrap().to_string()
            };
            (
                u64::from_str_radix(&field("CapEff:"), 16).unwrap(),
                u64::from_str_radix(&field("CapPrm:"), 16).unwrap(),
                u64::from_str_radix(&field("CapBnd:"), 16).unwrap(),
                field("NoNewPrivs:"),
            )
        })
        .join()
        .unwrap();
        assert_eq!(effective, kept_mask());
        assert_eq!(permitted, kept_mask());
        assert_eq!(bounding, kept_mask());
        assert_eq!(no_new_privs, "1");
    }
}
