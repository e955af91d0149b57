//! `xvsadm capture [-i external|internal|IFNAME] [-c COUNT] [-w FILE|-] [-n|-nn] [FILTER...]`:
//! asks xvsd for a capture and prints its frames as tcpdump lines, or writes them as pcapng
//! (pcap for a `.pcap` file).
//!
//! Ends after COUNT frames, when xvsd ends it, when stdout's pipe closes, or on Ctrl-C (or
//! SIGTERM): then xvsadm closes its end of the socket for writing, xvsd answers with the
//! drop counts, and xvsadm prints them on stderr as tcpdump does.

use super::format::{text_line, FileWriter, OutputFormat};
use super::wire::{CapturedFrame, Record, Side};
use crate::client::{Client, ClientError};
use crate::protocol::{CaptureReply, Command};
use clap::Parser;
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `xvsadm capture`'s options, tcpdump's letters.
#[derive(Parser, Debug)]
#[command(
    name = "xvsadm capture",
    about = "Capture what the director receives and transmits (its tcpdump)",
    disable_version_flag = true
)]
pub struct CaptureArgs {
    /// external, internal or an interface's name [default: both sides]
    #[arg(short = 'i', value_name = "IFACE")]
    interface: Option<String>,
    /// Stop after COUNT frames.
    #[arg(short = 'c', value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Write the frames to FILE (`-`: stdout) as pcapng, or pcap if FILE ends in .pcap.
    #[arg(short = 'w', value_name = "FILE")]
    write: Option<PathBuf>,
    /// Accepted for tcpdump habits: addresses and ports are always numeric.
    #[arg(short = 'n', action = clap::ArgAction::Count)]
    numeric: u8,
    /// tcpdump's filter language, e.g. `tcp port 80`.
    #[arg(
        value_name = "FILTER",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    filter: Vec<String>,
}

/// How it ended, for the exit status.
#[derive(Debug)]
pub enum CaptureError {
    /// Bad options (clap's message, or `--help`).
    Usage(clap::Error),
    /// The daemon refused or could not be reached.
    Client(ClientError),
    /// Reading the stream or writing the output failed.
    Io(String),
}

/// Where frames go.
enum Output {
    Text(io::Stdout),
    File(FileWriter<Box<dyn Write>>),
}

impl Output {
    fn open(path: Option<&Path>, reply: &CaptureReply) -> io::Result<Output> {
        let Some(path) = path else {
            return Ok(Output::Text(io::stdout()));
        };
        let sink: Box<dyn Write> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else {
            Box::new(File::create(path)?)
        };
        let interfaces: Vec<(&str, Side)> = reply
            .interfaces
            .iter()
            .map(|i| (i.name.as_str(), side_of(&i.side)))
            .collect();
        let format = OutputFormat::for_path(path);
        Ok(Output::File(FileWriter::new(format, sink, &interfaces)?))
    }

    fn write(&mut self, frame: &CapturedFrame, reply: &CaptureReply) -> io::Result<()> {
        match self {
            Output::Text(out) => {
                let name = reply
                    .interfaces
                    .iter()
                    .find(|i| side_of(&i.side) == frame.side)
                    .map_or("?", |i| i.name.as_str());
                let mut out = out.lock();
                writeln!(out, "{}", text_line(frame, name))?;
                out.flush()
            }
            Output::File(w) => {
                w.write(frame)?;
                // Each frame as it comes: `-w - | tcpdump -r -` shows it at once.
                w.get_mut().flush()
            }
        }
    }
}

fn side_of(name: &str) -> Side {
    match name {
        "internal" => Side::Internal,
        _ => Side::External,
    }
}

/// Runs `xvsadm capture ARGS` against the daemon at `control`.
pub fn run(control: &Path, args: &[String]) -> Result<(), CaptureError> {
    let args = CaptureArgs::try_parse_from(
        std::iter::once("xvsadm capture".to_string()).chain(args.iter().cloned()),
    )
    .map_err(CaptureError::Usage)?;
    let filter = args.filter.join(" ");
    let command = Command::Capture {
        interface: args.interface.clone(),
        filter: (!filter.is_empty()).then_some(filter),
        count: args.count,
    };
    // xvsadm's reading and printing must not take CPU from forwarding either.
    super::yield_to_forwarding();
    let client = Client::connect(control).map_err(CaptureError::Client)?;
    let (reply, mut stream) = client
        .start_capture(command)
        .map_err(CaptureError::Client)?;
    watch_signals(stream.get_ref()).map_err(|e| CaptureError::Io(e.to_string()))?;
    let names: Vec<&str> = reply.interfaces.iter().map(|i| i.name.as_str()).collect();
    eprintln!(
        "xvsadm: capturing on {} ({} bytes of each frame)",
        names.join(", "),
        reply.snaplen
    );
    let mut output =
        Output::open(args.write.as_deref(), &reply).map_err(|e| CaptureError::Io(e.to_string()))?;
    let (captured, drops) = copy_records(&mut stream, &mut output, &reply)?;
    eprintln!("{captured} packets captured");
    match drops {
        Some((ring, reader)) => eprintln!(
            "{} packets dropped ({ring} by the director's tap, {reader} for a slow reader)",
            ring + reader
        ),
        None => eprintln!("the daemon ended the capture without its counts"),
    }
    Ok(())
}

/// Copies frames from the stream to the output until the end record (returned as the drop
/// counts) or the end of the stream; a closed output pipe ends it quietly.
fn copy_records(
    stream: &mut BufReader<UnixStream>,
    output: &mut Output,
    reply: &CaptureReply,
) -> Result<(u64, Option<(u64, u64)>), CaptureError> {
    let mut captured = 0;
    loop {
        match Record::read_from(stream) {
            Ok(Some(Record::Frame(frame))) => {
                captured += 1;
                match output.write(&frame, reply) {
                    Ok(()) => {}
                    // `xvsadm capture | head`: the reader is gone, and so are we.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        let _ = stream.get_ref().shutdown(Shutdown::Both);
                        return Ok((captured, None));
                    }
                    Err(e) => return Err(CaptureError::Io(format!("writing the capture: {e}"))),
                }
            }
            Ok(Some(Record::End {
                ring_drops,
                reader_drops,
            })) => return Ok((captured, Some((ring_drops, reader_drops)))),
            Ok(None) => return Ok((captured, None)),
            Err(e) => return Err(CaptureError::Io(format!("reading the capture: {e}"))),
        }
    }
}

/// Whether stdout is a pipe whose reader has gone (poll reports POLLERR on its write end).
fn stdout_closed() -> bool {
    let mut fd = libc::pollfd {
        fd: libc::STDOUT_FILENO,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    n > 0 && fd.revents & libc::POLLERR != 0
}

/// On SIGINT or SIGTERM, or once stdout is a pipe nobody reads any more (`| head`, noticed
/// without waiting for the next frame to fail), closes our writing half of the socket: xvsd
/// then ends the capture with its counts, which the reading loop prints. A second signal
/// ends xvsadm at once.
fn watch_signals(stream: &UnixStream) -> io::Result<()> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(&flag))?;
        signal_hook::flag::register(signal, Arc::clone(&flag))?;
    }
    let stream = stream.try_clone()?;
    let seen = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("xvsadm-signals".into())
        .spawn(move || loop {
            if seen.load(Ordering::Relaxed) || stdout_closed() {
                let _ = stream.shutdown(Shutdown::Write);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        })?;
    Ok(())
}
