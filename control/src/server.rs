//! The control thread's Unix-socket server.
//!
//! One JSON request per line, one response per line (docs/control-protocol.md). The socket is
//! created with mode 0600 (root only); a stale socket left by a killed daemon is replaced, a
//! live one (another xvsd) is refused. Clients are served one at a time with read and write
//! timeouts so a stuck client cannot hold the control thread for long; the workers never wait
//! on this thread at all.

use crate::apply::{Director, Steering};
use crate::protocol::{ErrorCode, Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION};
use anyhow::{bail, Context};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Every command name the protocol knows (to tell "unknown command" from "bad arguments").
const COMMANDS: &[&str] = &[
    "version",
    "add_service",
    "edit_service",
    "del_service",
    "clear",
    "add_real",
    "edit_real",
    "del_real",
    "list",
    "stats",
    "zero",
    "set_timeouts",
    "timeouts",
    "connections",
    "batch",
    "replace",
    "set_check",
];

const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);

pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Creates the socket at `path` (and its directory).
    pub fn bind(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("creating the control socket directory {}", dir.display())
            })?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                bail!(
                    "another xvsd is already serving the control socket {}",
                    path.display()
                );
            }
            // Left behind by a daemon that was killed: nobody listens on it.
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale control socket {}", path.display()))?;
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("creating the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients until `shutdown` is set, running the director's housekeeping in between.
    pub fn serve<S: Steering>(&self, director: &mut Director<S>, shutdown: &AtomicBool) {
        let mut last_housekeeping = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = serve_client(stream, director) {
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::BrokenPipe
                                | io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                        ) {
                            eprintln!("xvsd: control client: {e}");
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    eprintln!("xvsd: accepting a control client: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                director.housekeeping();
                last_housekeeping = Instant::now();
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_client<S: Steering>(stream: UnixStream, director: &mut Director<S>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        if n > MAX_REQUEST_BYTES {
            let response = Response::failure(
                None,
                ErrorCode::RequestTooLarge,
                format!("request exceeds {MAX_REQUEST_BYTES} bytes"),
            );
            write_response(&mut writer, &response)?;
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let response = handle_line(&line, director);
        write_response(&mut writer, &response)?;
    }
}

fn write_response(writer: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    writer.write_all(text.as_bytes())
}

/// Decodes one request line, executes it and says how it went.
pub fn handle_line<S: Steering>(line: &str, director: &mut Director<S>) -> Response {
    let value: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return Response::failure(None, ErrorCode::BadRequest, format!("malformed JSON: {e}"))
        }
    };
    let Some(object) = value.as_object() else {
        return Response::failure(
            None,
            ErrorCode::BadRequest,
            "a request must be a JSON object",
        );
    };
    let id = object.get("id").and_then(|v| v.as_u64());
    if let Some(v) = object.get("v") {
        if v.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
            return Response::failure(
                id,
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported (this daemon speaks {PROTOCOL_VERSION})"
                ),
            );
        }
    }
    match object.get("cmd").and_then(|c| c.as_str()) {
        None => return Response::failure(id, ErrorCode::BadRequest, "missing \"cmd\" (a string)"),
        Some(cmd) if !COMMANDS.contains(&cmd) => {
            return Response::failure(
                id,
                ErrorCode::UnknownCommand,
                format!("unknown command {cmd:?} (known: {})", COMMANDS.join(", ")),
            )
        }
        Some(_) => {}
    }
    let request: Request = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return Response::failure(id, ErrorCode::InvalidArgument, e.to_string()),
    };
    match director.execute(request.command) {
        Ok(reply) => Response::success(request.id, reply),
        Err(e) => Response::failure(request.id, e.code(), e.to_string()),
    }
}
