//! A capture read on a thread of its own beside other work (`xvsd demo`'s step 3.1,
//! `xvs-bench`'s `xvs-capture` target), and ended as `xvsadm capture` ends one on Ctrl-C.

use super::wire::{CapturedFrame, Record};
use crate::client::{Client, ClientError};
use crate::protocol::{CaptureReply, Command};
use std::io;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread::JoinHandle;

/// A running capture and the thread reading it into a `T`.
pub struct BackgroundCapture<T> {
    /// The socket's other handle: closing its writing half ends the capture.
    closer: UnixStream,
    reader: Option<JoinHandle<io::Result<T>>>,
}

impl<T: Send + 'static> BackgroundCapture<T> {
    /// Starts `command` (a [`Command::Capture`]) on the xvsd at `control`. The reader thread
    /// runs `setup` first (placement, priority), then hands `each` every frame, with `state`
    /// and the capture's reply, until the capture ends.
    pub fn start(
        control: &Path,
        command: Command,
        setup: impl FnOnce() + Send + 'static,
        mut state: T,
        mut each: impl FnMut(&mut T, &CapturedFrame, &CaptureReply) + Send + 'static,
    ) -> Result<Self, ClientError> {
        let (reply, mut records) = Client::connect(control)?.start_capture(command)?;
        let io_error = |source| ClientError::Io {
            path: control.to_path_buf(),
            source,
        };
        let closer = records.get_ref().try_clone().map_err(io_error)?;
        let reader = std::thread::Builder::new()
            .name("xvs-capture-reader".into())
            .spawn(move || {
                setup();
                while let Some(Record::Frame(frame)) = Record::read_from(&mut records)? {
                    each(&mut state, &frame, &reply);
                }
                Ok(state)
            })
            .map_err(io_error)?;
        Ok(BackgroundCapture {
            closer,
            reader: Some(reader),
        })
    }

    /// Ends the capture (xvsd sends its end record) and returns what the reader made of it.
    pub fn finish(mut self) -> io::Result<T> {
        self.closer.shutdown(Shutdown::Write)?;
        self.reader
            .take()
            .map_or(Ok(None), |r| r.join().map(Some))
            .map_err(|_| io::Error::other("the capture reader panicked"))?
            .ok_or_else(|| io::Error::other("finished twice"))?
    }
}

impl<T> Drop for BackgroundCapture<T> {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = self.closer.shutdown(Shutdown::Both);
            let _ = reader.join();
        }
    }
}
