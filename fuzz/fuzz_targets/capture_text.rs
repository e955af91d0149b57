//! What `xvsadm capture` makes of frames and of its stream (control/src/capture): frame bytes
//! are untrusted (anything a client or real server sends reaches the tap), and so, from
//! xvsadm's side, is the stream.
//!
//! Invariants, for every input:
//! - `text_line` never panics and gives one line (no newline inside);
//! - both file writers take the frame, and write at least its captured bytes;
//! - the stream reader never panics on the input read as a stream, and stops (error or end).

#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs_control::capture::format::{text_line, PcapWriter, PcapngWriter};
use xvs_control::capture::wire::{CapturedFrame, Direction, Record, Side};

fuzz_target!(|data: &[u8]| {
    let (side, direction) = match data.first().copied().unwrap_or(0) & 3 {
        0 => (Side::External, Direction::Received),
        1 => (Side::External, Direction::Transmitted),
        2 => (Side::Internal, Direction::Received),
        _ => (Side::Internal, Direction::Transmitted),
    };
    let frame = CapturedFrame {
        side,
        direction,
        orig_len: data.len() as u32,
        ts_ns: 1_764_000_000_000_000_000,
        data: data.get(1..).unwrap_or_default().to_vec(),
    };
    let line = text_line(&frame, "ext0");
    assert!(!line.contains('\n'), "{line:?}");

    let mut pcap = PcapWriter::new(Vec::new()).unwrap();
    pcap.write(&frame).unwrap();
    assert!(pcap.into_inner().len() >= frame.data.len());
    let interfaces = [("ext0", Side::External), ("int0", Side::Internal)];
    let mut pcapng = PcapngWriter::new(Vec::new(), &interfaces).unwrap();
    pcapng.write(&frame).unwrap();
    assert!(pcapng.into_inner().len() >= frame.data.len());

    let mut stream = data;
    for _ in 0..data.len() + 1 {
        match Record::read_from(&mut stream) {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
