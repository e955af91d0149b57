//! `xvsadm capture`, the director's tcpdump (docs/capture.md): frames the workers see, as
//! received and as transmitted on each interface, streamed from xvsd to xvsadm.
//!
//! - [`cli`]: `xvsadm capture` itself.
//! - [`service`]: xvsd's side: the collector and the streaming of each capture.
//! - [`wire`]: the records of the stream.
//! - [`format`]: what xvsadm prints or writes: tcpdump-style lines, pcap and pcapng.

pub mod cli;
pub mod format;
pub mod service;
pub mod wire;
