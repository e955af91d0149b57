//! xvsd's side of captures: the collector that empties the workers' tap
//! (xvs_dataplane::capture) and hands each frame to every capture that wants it, and the
//! streaming of one capture on its control connection ([`serve`]).
//!
//! Threads: each capture is served by its client's own thread (crate::server); one collector
//! thread runs while at least one capture does. Nothing here ever makes a worker wait: the
//! tap drops what its rings cannot take, and each capture has a bounded queue of its own that
//! drops (and counts) what its reader is too slow for, so one slow capture costs no other
//! capture and no forwarding.
//!
//! While any capture runs, the XDP fast path is off (every frame of a service crosses the
//! workers, where the tap is), and back on after the last one ends.

use super::wire::{CapturedFrame, Direction, Record, Side as WireSide, SNAPLEN};
use crate::protocol::{CaptureInterface, CaptureReply};
use crossbeam::queue::ArrayQueue;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use xvs_dataplane::capture::{side_bit, CaptureTap, TapFrame};
use xvs_dataplane::process::Side;

/// Frames one capture may have waiting for its reader; beyond, they are dropped.
const CAPTURE_QUEUE: usize = 4096;
/// How long the collector sleeps after each pass over the tap, busy or not. A capture thread
/// that stays runnable holds the interfaces' receive threads off its core for whole scheduler
/// slices, SCHED_IDLE or not; one that runs in short bursts does not. A pass takes at most a
/// ring's worth (1024 frames) per worker: ~1M frames/s each, far above what a capture keeps.
const COLLECT_PAUSE: Duration = Duration::from_millis(1);
/// How long a capture's thread waits for frames before it looks at its client again.
const SERVE_IDLE: Duration = Duration::from_millis(20);
/// Its pause after writing a burst, for the same reason as [`COLLECT_PAUSE`].
const SERVE_PAUSE: Duration = Duration::from_millis(1);
/// A reader that takes nothing for this long ends its capture.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The CPUs where xvsd's capture threads run: those of xvsd's own (`own`) that run no worker,
/// else any other online CPU without a worker, else none (they then stay where they are).
///
/// Why leave xvsd's own CPUs: measured on one director core at 250 kpps (docs/benchmarks.md),
/// the collector and streamer beside the worker tipped the core into receive livelock in 7 of
/// 30 runs (about half the frames lost at the interface's ring), and in none of 28 when they
/// ran on another core. SCHED_IDLE does not keep them from delaying the kernel's receive
/// thread there. A capture is the operator's diagnostic, not forwarding: it goes where
/// forwarding is not, as the operator's own xvsadm would.
pub fn capture_cpus(own: &[usize], workers: &[usize], online: &[usize]) -> Vec<usize> {
    let free = |cpus: &[usize]| -> Vec<usize> {
        cpus.iter()
            .copied()
            .filter(|c| !workers.contains(c))
            .collect()
    };
    let spare = free(own);
    if spare.is_empty() {
        free(online)
    } else {
        spare
    }
}

/// The machine's online CPUs (`/sys/devices/system/cpu/online`); empty if unreadable.
pub fn online_cpu_list() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| parse_cpu_list(&text))
        .unwrap_or_default()
}

/// Parses the kernel's CPU list format: `0-3,8,10-11`.
fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last): (usize, usize) = match part.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => {
                let cpu = part.parse().ok()?;
                (cpu, cpu)
            }
        };
        if last < first || last - first > 1 << 16 {
            return None;
        }
        cpus.extend(first..=last);
    }
    Some(cpus)
}

/// Turns the XDP fast path off (`true`: a capture runs) or back on.
pub type SetCapturing = Box<dyn Fn(bool) -> io::Result<()> + Send + Sync>;

/// Every capture of one xvsd.
pub struct Captures {
    tap: Arc<CaptureTap>,
    /// The external and the internal interface's names (the same with one arm).
    names: [String; 2],
    running: Mutex<Running>,
    set_capturing: SetCapturing,
    shutdown: Arc<AtomicBool>,
    /// CPUs that run no worker, where capture threads go ([`capture_cpus`]; none: they
    /// stay where they are, at SCHED_IDLE).
    spare_cpus: Vec<usize>,
}

#[derive(Default)]
struct Running {
    captures: Vec<Arc<Capture>>,
    collector: Option<JoinHandle<()>>,
}

/// One running capture, as the collector feeds it.
pub struct Capture {
    sides: u32,
    filter: Option<Mutex<pcap::BpfProgram>>,
    queue: ArrayQueue<CapturedFrame>,
    reader_drops: AtomicU64,
    /// The tap's drop count when it started: its own share is the difference.
    tap_drops_before: u64,
}

impl Capture {
    fn wants(&self, slot: &TapFrame) -> bool {
        self.sides & side_bit(slot.side) != 0
            && self
                .filter
                .as_ref()
                .is_none_or(|f| f.lock().map(|f| f.filter(slot.data)).unwrap_or(false))
    }
}

impl Captures {
    pub fn new(
        tap: Arc<CaptureTap>,
        external: &str,
        internal: &str,
        set_capturing: SetCapturing,
        shutdown: Arc<AtomicBool>,
        spare_cpus: Vec<usize>,
    ) -> Arc<Self> {
        Arc::new(Captures {
            tap,
            names: [external.to_string(), internal.to_string()],
            running: Mutex::default(),
            set_capturing,
            shutdown,
            spare_cpus,
        })
    }

    /// Moves the calling capture thread off the workers' CPUs (when xvsd has others) and
    /// below everything that forwards.
    fn place_thread(&self) {
        if !self.spare_cpus.is_empty() {
            // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            for &cpu in &self.spare_cpus {
                // SAFETY: `set` is a live cpu_set_t; CPU_SET ignores CPUs beyond its size.
                unsafe { libc::CPU_SET(cpu, &mut set) };
            }
            // SAFETY: a live cpu_set_t of the size passed; pid 0 is the calling thread.
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        }
        super::yield_to_forwarding();
    }

    /// The sides `interface` names: `external`, `internal`, an interface's name (both sides
    /// for a one-armed director's), or both without one.
    fn sides(&self, interface: Option<&str>) -> Result<u32, String> {
        let [ext, int] = [&self.names[0], &self.names[1]];
        let both = side_bit(Side::External) | side_bit(Side::Internal);
        Ok(match interface {
            None => both,
            Some("external") => side_bit(Side::External),
            Some("internal") => side_bit(Side::Internal),
            Some(name) if name == ext && name == int => both,
            Some(name) if name == ext => side_bit(Side::External),
            Some(name) if name == int => side_bit(Side::Internal),
            Some(other) => {
                return Err(format!(
                    "no interface {other:?} on this director: external ({ext}), internal ({int}), or their names"
                ))
            }
        })
    }

    /// Starts a capture: checks its interface and compiles its filter (a mistake is an
    /// error and starts nothing).
    pub fn start(
        self: &Arc<Self>,
        interface: Option<&str>,
        filter: Option<&str>,
    ) -> Result<(Arc<Capture>, CaptureReply), String> {
        let sides = self.sides(interface)?;
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(text) => {
                let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)
                    .map_err(|e| format!("libpcap: {e}"))?;
                let program = dead
                    .compile(text, true)
                    .map_err(|e| format!("filter {text:?}: {e}"))?;
                Some(Mutex::new(program))
            }
        };
        let capture = Arc::new(Capture {
            sides,
            filter,
            queue: ArrayQueue::new(CAPTURE_QUEUE),
            reader_drops: AtomicU64::new(0),
            tap_drops_before: self.tap.drops(),
        });
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.captures.is_empty() {
            (self.set_capturing)(true).map_err(|e| format!("turning the fast path off: {e}"))?;
            // Frames the workers copied as the last capture ended are not this one's.
            self.tap.drain(|_| {});
        }
        running.captures.push(Arc::clone(&capture));
        let wanted = running.captures.iter().fold(0, |m, c| m | c.sides);
        self.tap.enable(wanted);
        if running.collector.as_ref().is_none_or(|c| c.is_finished()) {
            if let Some(old) = running.collector.take() {
                let _ = old.join();
            }
            let me = Arc::clone(self);
            running.collector = Some(
                std::thread::Builder::new()
                    .name("xvs-capture".into())
                    .spawn(move || {
                        crate::privileges::thread_start();
                        me.place_thread();
                        me.collect();
                    })
                    .map_err(|e| format!("starting the capture thread: {e}"))?,
            );
        }
        let mut interfaces = Vec::new();
        for (side, name) in [
            (Side::External, &self.names[0]),
            (Side::Internal, &self.names[1]),
        ] {
            if sides & side_bit(side) != 0 {
                interfaces.push(CaptureInterface {
                    name: name.clone(),
                    side: match side {
                        Side::External => "external",
                        Side::Internal => "internal",
                    }
                    .into(),
                });
            }
        }
        Ok((
            capture,
            CaptureReply {
                interfaces,
                snaplen: SNAPLEN as u32,
            },
        ))
    }

    /// Ends `capture`; the last one turns the tap off and the fast path back on.
    pub fn stop(&self, capture: &Arc<Capture>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.captures.retain(|c| !Arc::ptr_eq(c, capture));
        let wanted = running.captures.iter().fold(0, |m, c| m | c.sides);
        if wanted == 0 {
            self.tap.disable();
            if let Err(e) = (self.set_capturing)(false) {
                eprintln!("xvsd: turning the fast path back on after a capture: {e}");
            }
        } else {
            self.tap.enable(wanted);
        }
    }

    /// Frames `capture` lost: those the tap had no room for since it started (shared by
    /// every capture running then) and those its reader did not take in time.
    pub fn drops(&self, capture: &Capture) -> (u64, u64) {
        (
            self.tap.drops().saturating_sub(capture.tap_drops_before),
            capture.reader_drops.load(Ordering::Relaxed),
        )
    }

    /// The collector: runs until no capture is left.
    fn collect(&self) {
        loop {
            let captures = {
                let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
                if running.captures.is_empty() || self.shutdown.load(Ordering::Relaxed) {
                    return;
                }
                running.captures.clone()
            };
            self.tap.drain(|slot| {
                for capture in captures.iter().filter(|c| c.wants(slot)) {
                    let frame = CapturedFrame {
                        side: match slot.side {
                            Side::External => WireSide::External,
                            Side::Internal => WireSide::Internal,
                        },
                        direction: match slot.transmitted {
                            true => Direction::Transmitted,
                            false => Direction::Received,
                        },
                        orig_len: slot.orig_len,
                        ts_ns: slot.ts_ns,
                        data: slot.data.to_vec(),
                    };
                    if capture.queue.push(frame).is_err() {
                        capture.reader_drops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            std::thread::sleep(COLLECT_PAUSE);
        }
    }
}

/// Whether the peer of `stream` has closed its end (or hung up).
fn peer_closed(stream: &UnixStream, wait: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, wait.as_millis() as libc::c_int) };
    n > 0 && fd.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

/// Streams `capture` on `stream` (after its reply was written) until `count` frames were
/// sent, the client closes its end (its write half is enough: xvsadm does that on Ctrl-C to
/// get the drop counts), a write fails, or the daemon stops; then ends it. The last record
/// is [`Record::End`] whenever the client can still read it.
pub fn serve(captures: &Captures, capture: &Arc<Capture>, stream: UnixStream, count: Option<u64>) {
    captures.place_thread();
    let result = stream_records(captures, capture, &stream, count);
    captures.stop(capture);
    if let Err(e) = result {
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            eprintln!("xvsd: a capture ended: {e}");
        }
    }
}

fn stream_records(
    captures: &Captures,
    capture: &Capture,
    stream: &UnixStream,
    count: Option<u64>,
) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut sent = 0u64;
    let limit = count.unwrap_or(u64::MAX);
    while sent < limit && !captures.shutdown.load(Ordering::Relaxed) {
        let mut wrote = false;
        while sent < limit {
            let Some(frame) = capture.queue.pop() else {
                break;
            };
            Record::Frame(frame).write_to(&mut out)?;
            sent += 1;
            wrote = true;
        }
        if wrote {
            out.flush()?;
        }
        // Looked at after every burst too, so that a busy capture still ends on Ctrl-C.
        if peer_closed(stream, if wrote { SERVE_PAUSE } else { SERVE_IDLE }) {
            break;
        }
    }
    let (ring_drops, reader_drops) = captures.drops(capture);
    Record::End {
        ring_drops,
        reader_drops,
    }
    .write_to(&mut out)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captures(external: &str, internal: &str) -> Arc<Captures> {
        Captures::new(
            Arc::new(CaptureTap::new(1, 4)),
            external,
            internal,
            Box::new(|_| Ok(())),
            Arc::new(AtomicBool::new(false)),
            Vec::new(),
        )
    }

    #[test]
    fn capture_threads_go_where_no_worker_runs() {
        // xvsd's own spare CPUs first.
        assert_eq!(capture_cpus(&[2, 3, 4], &[2, 3], &[0, 1, 2, 3, 4]), [4]);
        // None: any other online CPU without a worker.
        assert_eq!(capture_cpus(&[1], &[1], &[0, 1]), [0]);
        assert_eq!(capture_cpus(&[2, 3], &[2, 3], &[0, 1, 2, 3]), [0, 1]);
        // Every CPU runs a worker: nowhere better, they stay.
        assert!(capture_cpus(&[0, 1], &[0, 1], &[0, 1]).is_empty());
        assert!(capture_cpus(&[0], &[0], &[]).is_empty());
    }

    #[test]
    fn the_kernels_cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-4,7"), Some(vec![0, 2, 3, 4, 7]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        for bad in ["a", "3-1", "1-", "0-99999999"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad}");
        }
        assert!(
            !online_cpu_list().is_empty(),
            "this machine has online CPUs"
        );
    }

    #[test]
    fn an_interface_name_means_its_sides_on_either_shape_of_director() {
        let (ext, int, both) = (1, 2, 3);
        let two_armed = captures("ext0", "int0");
        assert_eq!(two_armed.sides(None), Ok(both));
        assert_eq!(two_armed.sides(Some("external")), Ok(ext));
        assert_eq!(two_armed.sides(Some("int0")), Ok(int));
        let error = two_armed.sides(Some("eth9")).unwrap_err();
        assert!(
            error.contains("\"eth9\"") && error.contains("ext0"),
            "{error}"
        );

        // One arm: its name is both sides; the side names still pick one.
        let one_armed = captures("eth0", "eth0");
        assert_eq!(one_armed.sides(Some("eth0")), Ok(both));
        assert_eq!(one_armed.sides(Some("internal")), Ok(int));
    }

    #[test]
    fn a_one_armed_capture_by_name_announces_the_interface_for_both_sides() {
        let one_armed = captures("eth0", "eth0");
        let (capture, reply) = one_armed.start(Some("eth0"), None).unwrap();
        let seen: Vec<_> = reply
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), i.side.as_str()))
            .collect();
        assert_eq!(seen, [("eth0", "external"), ("eth0", "internal")]);
        assert_eq!(one_armed.tap.wanted(), 3);
        one_armed.stop(&capture);
        assert_eq!(one_armed.tap.wanted(), 0);
    }
}
