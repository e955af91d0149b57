//! `xvsadm capture`, the director's tcpdump (docs/capture.md): frames the workers see, as
//! received and as transmitted on each interface, streamed from xvsd to xvsadm.
//!
//! - [`cli`]: `xvsadm capture` itself.
//! - [`background`]: a capture read on a thread beside other work (the demo, the bench).
//! - [`service`]: xvsd's side: the collector and the streaming of each capture.
//! - [`wire`]: the records of the stream.
//! - [`format`]: what xvsadm prints or writes: tcpdump-style lines, pcap and pcapng.

pub mod background;
pub mod cli;
pub mod format;
pub mod service;
pub mod wire;

/// Puts the calling thread in SCHED_IDLE: a capture's threads (xvsd's collector and streamer,
/// xvsadm's reader) get only the CPU time that forwarding (workers, receive threads,
/// softirqs) leaves, wherever they run; when that is too little, the tap's rings or the
/// capture's queue fill and the capture loses frames, counted, instead of the traffic. Best
/// effort: a failure leaves the thread at its priority.
pub fn yield_to_forwarding() {
    // SAFETY: sched_param is plain data; pid 0 is the calling thread.
    let param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a sched_param for the duration of the call.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}
