//! AF_XDP plumbing: the only module with `unsafe`.
//!
//! - [`program`]: our XDP steering program (bpf/xvs_xdp.c), loaded with libbpf and attached
//!   through a BPF link so that it detaches when the process dies, even on SIGKILL.
//! - [`port`]: one AF_XDP socket per (interface, queue) over a single UMEM shared by all of
//!   them, so a frame received on one interface is transmitted on the other without a copy.
//!
//! Frame ownership is what makes this safe. A [`Frame`] is a UMEM frame that user space owns:
//! it is only created by taking descriptors out of an RX or completion ring (or at start), it is
//! neither `Clone` nor `Copy`, and handing it to a fill or TX ring consumes it. So at most one
//! thread can reach a frame's bytes, and never while the kernel may write them.

pub mod object;
pub mod port;
pub mod program;

pub use port::{
    socket_counters, socket_napi_id, BindMode, BusyPoll, FrameMemory, Poller, Port, PortOptions,
    SocketCounters,
};
pub use program::{EndpointKey, QueueCounters, Role, XdpMode, XdpProgram};

use xsk_rs::FrameDesc;

/// A UMEM frame owned by user space (see the module documentation).
#[derive(Debug)]
#[repr(transparent)]
pub struct Frame(FrameDesc);

impl Frame {
    /// Length of the packet in the frame.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.lengths().data()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Offset of the frame in the UMEM; identifies the frame.
    #[inline]
    pub fn addr(&self) -> usize {
        self.0.addr()
    }
}

/// Errors setting up AF_XDP sockets or the XDP program.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

impl XskError {
    fn os(what: impl Into<String>, source: std::io::Error) -> Self {
        XskError::Os {
            what: what.into(),
            source,
        }
    }
}

/// Number of RX queues of an interface (`/sys/class/net/IF/queues/rx-*`).
pub fn rx_queue_count(ifname: &str) -> std::io::Result<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues"))?;
    let mut n = 0;
    for entry in dir {
        if entry?.file_name().to_string_lossy().starts_with("rx-") {
            n += 1;
        }
    }
    Ok(n)
}
