//! AF_XDP sockets over one shared UMEM.
//!
//! [`FrameMemory`] is the UMEM: one region for every socket of the director, so a frame
//! received on the external interface can be put on the internal interface's TX ring as is.
//! [`Port`] is one socket bound to one (interface, queue) pair, with the fill and completion
//! rings that the kernel gives each new pair. All ring operations here are batched; the only
//! syscalls are the TX kick (`sendto`, once per batch while frames are in flight: in copy mode
//! the kernel transmits only inside it, at most 32 frames a call), the idle wait and, with
//! [`BusyPoll`], one `recvfrom` per port and batch: it runs the interface's NAPI poll in the
//! worker, on the worker's core.
//!
//! [`socket_counters`] reads the kernel's drop counters of a socket (`XDP_STATISTICS`): the
//! frames the XDP program redirected that never reached the RX ring.

use super::{Frame, XskError};
use crate::process::{FrameBuf, Side};
use std::io;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// The UMEM shared by every port.
#[derive(Clone)]
pub struct FrameMemory {
    umem: Umem,
    frame_size: usize,
}

impl FrameMemory {
    /// A UMEM of `frame_count` frames of `frame_size` bytes (a power of two, e.g. 4096), and
    /// every frame in it, owned by the caller.
    pub fn new(frame_count: u32, frame_size: u32) -> Result<(Self, Vec<Frame>), XskError> {
        let count = NonZeroU32::new(frame_count)
            .ok_or_else(|| XskError::Setup("a UMEM needs at least one frame".into()))?;
        let size = FrameSize::new(frame_size)
            .map_err(|e| XskError::Setup(format!("bad frame size {frame_size}: {e}")))?;
        let config = UmemConfig::builder()
            .frame_size(size)
            .build()
            .map_err(|e| XskError::Setup(format!("UMEM configuration: {e}")))?;
        let (umem, descs) = Umem::new(config, count, false)
            .map_err(|e| XskError::Setup(format!("creating the UMEM: {e}")))?;
        let frames = descs.into_iter().map(Frame).collect();
        Ok((
            FrameMemory {
                umem,
                frame_size: frame_size as usize,
            },
            frames,
        ))
    }

    /// Runs `f` over the packet bytes of `frame`.
    #[inline]
    pub fn with_bytes<R>(&self, frame: &mut Frame, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // Safety: `frame` belongs to this UMEM (frames are only made from its descriptors) and
        // is owned by user space, borrowed mutably here: nobody else, kernel included, can
        // access its bytes meanwhile.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        f(data.contents_mut())
    }

    /// Runs `f` over `frame` as a [`FrameBuf`], which may change its length up to the frame's
    /// data segment (what `process` does for tunnels).
    #[inline]
    pub fn with_buf<R>(&self, frame: &mut Frame, f: impl FnOnce(&mut UmemFrame<'_>) -> R) -> R {
        // Safety: as in `with_bytes`.
        let data = unsafe { self.umem.data_mut(&mut frame.0) };
        f(&mut UmemFrame(data))
    }

    /// The frame's position in the UMEM (0..frame_count).
    #[inline]
    pub fn index_of(&self, frame: &Frame) -> usize {
        frame.addr() / self.frame_size
    }
}

/// A UMEM frame's data segment, borrowed for [`FrameMemory::with_buf`].
pub struct UmemFrame<'a>(xsk_rs::umem::frame::DataMut<'a>);

impl FrameBuf for UmemFrame<'_> {
    #[inline]
    fn bytes(&mut self) -> &mut [u8] {
        self.0.contents_mut()
    }

    fn set_len(&mut self, len: usize) -> bool {
        let mut cursor = self.0.cursor();
        if len > cursor.buf_len() {
            return false;
        }
        cursor.set_pos(len);
        true
    }
}

/// How a socket binds: zero-copy where the driver supports it, or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy if the driver supports it, copy otherwise (the kernel's fallback).
    #[default]
    Auto,
    Copy,
    ZeroCopy,
}

#[derive(Debug, Clone, Copy)]
pub struct PortOptions {
    /// Entries in each of the four rings (a power of two).
    pub ring_size: u32,
    pub bind: BindMode,
    /// Most descriptors taken from a ring at once.
    pub batch: usize,
    /// Preferred busy polling: the worker runs the receive NAPI itself.
    pub busy_poll: Option<BusyPoll>,
}

impl Default for PortOptions {
    fn default() -> Self {
        PortOptions {
            ring_size: 1024,
            bind: BindMode::Auto,
            batch: 64,
            busy_poll: None,
        }
    }
}

/// Preferred busy polling (Linux 5.11+, as DPDK's AF_XDP driver enables it): the socket's
/// `recvfrom`/`sendto` run the interface's NAPI poll for up to `budget` frames in the calling
/// thread, and while the interface defers its interrupts (`napi_defer_hard_irqs`,
/// `gro_flush_timeout`, set by the daemon) the kernel leaves that NAPI to the busy poller. The
/// receive work then happens on the worker's core, only when the worker asks for more: under
/// overload the excess is dropped at the interface's ring, before any work was spent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: how long one poll may spin waiting for frames, in microseconds.
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: most frames one poll takes from the interface.
    pub budget: u16,
}

impl Default for BusyPoll {
    fn default() -> Self {
        // DPDK's af_xdp defaults: budget 64; a short spin keeps an idle poll cheap.
        BusyPoll {
            usecs: 20,
            budget: 64,
        }
    }
}

/// Kernel counters of one socket (`XDP_STATISTICS`), cumulative since it was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketCounters {
    /// Redirected frames dropped because the RX ring was full: the worker fell behind.
    pub rx_ring_full: u64,
    /// Redirected frames dropped otherwise, mostly for lack of a fill-ring frame.
    pub rx_dropped: u64,
    /// Times the kernel found the fill ring empty.
    pub fill_ring_empty: u64,
    /// Descriptors the kernel refused (RX and TX); non-zero means a bug in xvs.
    pub invalid_descs: u64,
}

impl SocketCounters {
    /// Frames lost between the XDP redirect and the RX ring.
    pub fn rx_lost(&self) -> u64 {
        self.rx_ring_full + self.rx_dropped
    }
}

impl std::ops::Add for SocketCounters {
    type Output = SocketCounters;
    fn add(self, o: SocketCounters) -> SocketCounters {
        SocketCounters {
            rx_ring_full: self.rx_ring_full + o.rx_ring_full,
            rx_dropped: self.rx_dropped + o.rx_dropped,
            fill_ring_empty: self.fill_ring_empty + o.fill_ring_empty,
            invalid_descs: self.invalid_descs + o.invalid_descs,
        }
    }
}

/// The NAPI instance whose frames the socket `fd` received last (`SO_INCOMING_NAPI_ID`), the
/// one its busy polls run; 0 until it has received a frame, and for drivers that register
/// their XDP receive queues without one (veth in 6.18: busy polling is then inert).
pub fn socket_napi_id(fd: RawFd) -> io::Result<u32> {
    get_option::<u32>(fd, libc::SOL_SOCKET, libc::SO_INCOMING_NAPI_ID)
}

/// `SOL_XDP`, the level of AF_XDP's own socket options.
const SOL_XDP: libc::c_int = 283;

/// Reads socket option `name` of `level`, a plain-data value of type `T`.
fn get_option<T: Copy>(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which has that size.
    let rc = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then (partly) written by the kernel: every `T` used here is
    // plain integers, valid for any bytes.
    Ok(unsafe { value.assume_init() })
}

/// Sets socket option `name` of `level` to the u32 `value`.
fn set_u32_option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: u32) -> io::Result<()> {
    // SAFETY: setsockopt reads a u32 from a valid pointer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The counters of the AF_XDP socket `fd` (any thread may read them).
pub fn socket_counters(fd: RawFd) -> io::Result<SocketCounters> {
    const XDP_STATISTICS: libc::c_int = 7;
    let stats: libc::xdp_statistics = get_option(fd, SOL_XDP, XDP_STATISTICS)?;
    Ok(SocketCounters {
        rx_ring_full: stats.rx_ring_full,
        rx_dropped: stats.rx_dropped,
        fill_ring_empty: stats.rx_fill_ring_empty_descs,
        invalid_descs: stats.rx_invalid_descs + stats.tx_invalid_descs,
    })
}

/// One AF_XDP socket on (interface, queue).
pub struct Port {
    side: Side,
    queue: u32,
    rx: RxQueue,
    tx: TxQueue,
    fill: FillQueue,
    comp: CompQueue,
    scratch: Vec<FrameDesc>,
    tx_in_flight: usize,
    zero_copy: bool,
    busy_poll: bool,
}

impl Port {
    /// Binds a socket to `ifname` queue `queue` over `memory`. The XDP program must already be
    /// attached (we never let libxdp load its own: it would steer ARP away from the kernel).
    pub fn open(
        memory: &FrameMemory,
        ifname: &str,
        queue: u32,
        side: Side,
        options: &PortOptions,
    ) -> Result<Port, XskError> {
        let ring = QueueSize::new(options.ring_size)
            .map_err(|e| XskError::Setup(format!("bad ring size {}: {e}", options.ring_size)))?;
        let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
        match options.bind {
            BindMode::Auto => {}
            BindMode::Copy => bind |= BindFlags::XDP_COPY,
            BindMode::ZeroCopy => bind |= BindFlags::XDP_ZEROCOPY,
        }
        let config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let name: Interface = ifname
            .parse()
            .map_err(|e| XskError::Setup(format!("bad interface name {ifname:?}: {e}")))?;
        // Safety: every (interface, queue) pair is opened once, so the INHIBIT_PROG_LOAD
        // requirement for shared UMEMs is met (and we set that flag anyway).
        let (tx, rx, rings) = unsafe { xsk_rs::Socket::new(config, &memory.umem, &name, queue) }
            .map_err(|e| {
                XskError::Setup(format!("AF_XDP socket on {ifname} queue {queue}: {e}"))
            })?;
        let (fill, comp) = rings.ok_or_else(|| {
            XskError::Setup(format!(
                "{ifname} queue {queue} is already bound by this process"
            ))
        })?;
        let mut port = Port {
            side,
            queue,
            rx,
            tx,
            fill,
            comp,
            scratch: vec![FrameDesc::default(); options.batch.max(1)],
            tx_in_flight: 0,
            zero_copy: false,
            busy_poll: false,
        };
        port.zero_copy = port.query_zero_copy();
        if !port.zero_copy {
            port.raise_tx_budget(options.ring_size);
        }
        if let Some(busy) = options.busy_poll {
            port.enable_busy_poll(busy).map_err(|e| {
                XskError::Setup(format!(
                    "busy polling on {ifname} queue {queue}: {e} (preferred busy polling needs Linux 5.11 or later)"
                ))
            })?;
        }
        Ok(port)
    }

    fn enable_busy_poll(&mut self, busy: BusyPoll) -> io::Result<()> {
        let fd = self.fd();
        set_u32_option(fd, libc::SOL_SOCKET, libc::SO_PREFER_BUSY_POLL, 1)?;
        set_u32_option(fd, libc::SOL_SOCKET, libc::SO_BUSY_POLL, busy.usecs)?;
        set_u32_option(
            fd,
            libc::SOL_SOCKET,
            libc::SO_BUSY_POLL_BUDGET,
            u32::from(busy.budget),
        )?;
        self.busy_poll = true;
        Ok(())
    }

    /// Whether [`Port::poll_napi`] does anything.
    pub fn is_busy_polling(&self) -> bool {
        self.busy_poll
    }

    /// With busy polling: runs the interface's receive NAPI here (one `recvfrom`), so that
    /// the RX ring gets the frames waiting at the interface. Without: does nothing.
    #[inline]
    pub fn poll_napi(&mut self) {
        if self.busy_poll {
            // SAFETY: a zero-length receive with null buffers only triggers the busy poll
            // (AF_XDP delivers through its rings, never through recvfrom's buffer).
            unsafe {
                libc::recvfrom(
                    self.fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// In copy mode the kernel transmits at most 32 descriptors per `sendto` by default;
    /// kernels from 6.17 take a larger budget (`XDP_MAX_TX_SKB_BUDGET`), so one kick sends a
    /// whole batch. Older kernels refuse the option: the default stays, which only costs more
    /// kicks.
    fn raise_tx_budget(&self, budget: u32) {
        const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
        let _ = set_u32_option(self.fd(), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, budget);
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The socket's file descriptor (for the XSKMAP and for polling).
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// Whether the kernel bound this socket in zero-copy mode.
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Frames handed to TX and not yet completed.
    pub fn tx_in_flight(&self) -> usize {
        self.tx_in_flight
    }

    /// Appends up to one batch of received frames to `out`; returns how many.
    #[inline]
    pub fn receive(&mut self, out: &mut Vec<Frame>) -> usize {
        // Safety: the descriptors come from this socket's UMEM.
        let n = unsafe { self.rx.consume(&mut self.scratch) };
        out.extend(self.scratch[..n].iter().map(|d| Frame(*d)));
        n
    }

    /// Appends up to one batch of frames whose transmission completed to `out`.
    #[inline]
    pub fn reclaim(&mut self, out: &mut Vec<Frame>) -> usize {
        // Safety: the descriptors come from this socket's UMEM.
        let n = unsafe { self.comp.consume(&mut self.scratch) };
        self.tx_in_flight = self.tx_in_flight.saturating_sub(n);
        out.extend(self.scratch[..n].iter().map(|d| Frame(*d)));
        n
    }

    /// Gives the kernel frames from the end of `pool` to receive into, as many as the fill
    /// ring has room for; returns how many.
    #[inline]
    pub fn refill(&mut self, pool: &mut Vec<Frame>) -> usize {
        let want = pool.len().min(self.scratch.len());
        if want == 0 {
            return 0;
        }
        let room = self.fill.nb_free(want as u32) as usize;
        let n = want.min(room);
        if n == 0 {
            return 0;
        }
        let start = pool.len() - n;
        // Safety: the frames are owned by user space and belong to this UMEM; draining them
        // from the pool below gives up our ownership.
        let produced = unsafe { self.fill.produce(as_descs(&pool[start..])) };
        if produced == n {
            pool.truncate(start);
        }
        if self.fill.needs_wakeup() {
            // Rarely needed in copy mode; harmless otherwise.
            let _ = self.fill.wakeup(self.rx.fd_mut(), 0);
        }
        produced
    }

    /// Queues frames from the front of `frames` for transmission, as many as the TX ring has
    /// room for, and removes them from `frames`; returns how many.
    #[inline]
    pub fn transmit(&mut self, frames: &mut Vec<Frame>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        let room = self.tx.nb_free(frames.len() as u32) as usize;
        let n = frames.len().min(room);
        if n == 0 {
            return 0;
        }
        // Safety: owned frames of this UMEM; draining them below gives up our ownership.
        let produced = unsafe { self.tx.produce(as_descs(&frames[..n])) };
        if produced == n {
            frames.drain(..n);
            self.tx_in_flight += n;
        }
        produced
    }

    /// Makes the kernel send what is on the TX ring (copy mode sends only inside this call).
    #[inline]
    pub fn kick(&mut self) -> io::Result<()> {
        if self.tx_in_flight > 0 {
            self.tx.wakeup()?;
        }
        Ok(())
    }

    fn query_zero_copy(&self) -> bool {
        const XDP_OPTIONS: libc::c_int = 8;
        const XDP_OPTIONS_ZEROCOPY: u32 = 1;
        get_option::<u32>(self.fd(), SOL_XDP, XDP_OPTIONS)
            .is_ok_and(|flags| flags & XDP_OPTIONS_ZEROCOPY != 0)
    }
}

fn as_descs(frames: &[Frame]) -> &[FrameDesc] {
    // Safety: Frame is repr(transparent) over FrameDesc.
    unsafe { std::slice::from_raw_parts(frames.as_ptr().cast::<FrameDesc>(), frames.len()) }
}

/// Waits until one of the sockets has received something, the doorbell rang, or `timeout`
/// passes.
pub struct Poller {
    fds: Vec<libc::pollfd>,
}

impl Poller {
    /// Polls `ports`' sockets and `doorbell` (an eventfd), if any.
    pub fn new(ports: &[Port], doorbell: Option<RawFd>) -> Self {
        Poller {
            fds: ports
                .iter()
                .map(|p| p.fd())
                .chain(doorbell)
                .map(|fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect(),
        }
    }

    pub fn wait(&mut self, timeout: Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // Safety: fds is a valid array of pollfd of the given length; ts outlives the call.
        unsafe {
            libc::ppoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
    }
}
