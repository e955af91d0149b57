//! `--isolate`: keeps every other task off the director's cores during a throughput trial,
//! as `tuna --isolate` or a cpuset does on a benchmark machine, and gives each its affinity
//! back when the trial ends.
//!
//! On a shared VM other processes wake on the director's core now and then (here the VM's own
//! agent runs ~2 ms there about once a second): a veth's XDP ring holds 256 frames, so such a
//! stall drops frames at any rate above ~130 kpps, for every target, and caps what a
//! lossless search can find. Tasks that cannot move (per-CPU kernel threads) stay; tasks
//! created later inherit their parents' reduced affinity. A killed benchmark leaves the
//! moved tasks on the other cores until they are moved back (`taskset -a -p`).

use std::mem::{size_of, zeroed};

/// Tasks moved off some cores, and the affinity each had.
pub struct Isolation {
    moved: Vec<(i32, libc::cpu_set_t)>,
}

fn affinity(tid: i32) -> Option<libc::cpu_set_t> {
    // SAFETY: cpu_set_t is plain old data; zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size we pass.
    let rc = unsafe { libc::sched_getaffinity(tid, size_of::<libc::cpu_set_t>(), &mut set) };
    (rc == 0).then_some(set)
}

fn set_affinity(tid: i32, set: &libc::cpu_set_t) -> bool {
    // SAFETY: `set` is a live cpu_set_t of the size we pass.
    unsafe { libc::sched_setaffinity(tid, size_of::<libc::cpu_set_t>(), set) == 0 }
}

/// Every thread of every process (`/proc/PID/task/TID`).
fn all_threads() -> Vec<i32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter(|p| {
            p.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<i32>().is_ok())
        })
        .filter_map(|p| std::fs::read_dir(p.path().join("task")).ok())
        .flat_map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| t.file_name().to_str()?.parse::<i32>().ok())
        })
        .collect()
}

/// `old` without `cores`, if it had any of them and keeps some other CPU.
fn without(old: &libc::cpu_set_t, cores: &[usize]) -> Option<libc::cpu_set_t> {
    // SAFETY: CPU_ISSET reads a bit of a live set; cores are below CPU_SETSIZE.
    if !cores.iter().any(|&c| unsafe { libc::CPU_ISSET(c, old) }) {
        return None;
    }
    let mut new = *old;
    for &c in cores {
        // SAFETY: as above, writing.
        unsafe { libc::CPU_CLR(c, &mut new) };
    }
    // SAFETY: CPU_COUNT reads a live set.
    (unsafe { libc::CPU_COUNT(&new) } > 0).then_some(new)
}

impl Isolation {
    /// Moves every movable thread that may run on `cores` (but also elsewhere) to its other
    /// CPUs; the calling process's own threads too (its children inherit that).
    pub fn of(cores: &[usize]) -> Isolation {
        let mut moved = Vec::new();
        for tid in all_threads() {
            let Some(old) = affinity(tid) else { continue };
            // A thread pinned to the director's cores alone stays where it is.
            let Some(new) = without(&old, cores) else {
                continue;
            };
            // Per-CPU kernel threads refuse (EINVAL); a thread that exited meanwhile is gone.
            if set_affinity(tid, &new) {
                moved.push((tid, old));
            }
        }
        Isolation { moved }
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        for (tid, old) in &self.moved {
            // A thread that exited since is not an error; its tid is not reused this soon.
            let _ = set_affinity(*tid, old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(cpus: &[usize]) -> libc::cpu_set_t {
        // SAFETY: cpu_set_t is plain old data; zero is the empty set.
        let mut s: libc::cpu_set_t = unsafe { zeroed() };
        for &c in cpus {
            // SAFETY: c is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(c, &mut s) };
        }
        s
    }

    fn cpus(s: &libc::cpu_set_t) -> Vec<usize> {
        // SAFETY: CPU_ISSET reads bits of a live set below CPU_SETSIZE.
        (0..64)
            .filter(|&c| unsafe { libc::CPU_ISSET(c, s) })
            .collect()
    }

    #[test]
    fn only_tasks_that_can_run_elsewhere_leave_the_cores() {
        assert_eq!(
            without(&set(&[0, 1, 2]), &[1]).map(|s| cpus(&s)),
            Some(vec![0, 2])
        );
        assert_eq!(
            without(&set(&[0, 1, 2, 3]), &[2, 3]).map(|s| cpus(&s)),
            Some(vec![0, 1])
        );
        // Not on the cores: untouched. Only on the cores: left there.
        assert!(without(&set(&[0]), &[1]).is_none());
        assert!(without(&set(&[1]), &[1]).is_none());
        assert!(without(&set(&[1, 2]), &[1, 2]).is_none());
    }
}
