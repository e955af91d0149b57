//! A blocking client for xvsd's control socket.
//!
//! This module owns the client half of the protocol in [`crate::protocol`]: one `Request`
//! line out, one `Response` line back, matched by an id the client increments per call.
//! It is what `xvsadm`, the tests and the demo use to drive a running daemon.

use crate::protocol::{
    CaptureReply, Command, ErrorCode, Reply, Request, Response, PROTOCOL_VERSION,
};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where xvsd listens unless told otherwise.
pub const DEFAULT_CONTROL_PATH: &str = "/run/xvs/xvs.sock";

/// Environment variable that overrides [`DEFAULT_CONTROL_PATH`].
pub const CONTROL_PATH_ENV: &str = "XVS_CONTROL";

/// How long a call waits for the daemon's answer (and for its socket to take the request).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response line accepted. Listings grow with the table, so this is generous; it only
/// stops a misbehaving peer from making the client buffer without bound.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// `$XVS_CONTROL` if set (and not empty), else [`DEFAULT_CONTROL_PATH`].
pub fn default_control_path() -> PathBuf {
    match std::env::var_os(CONTROL_PATH_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(DEFAULT_CONTROL_PATH),
    }
}

/// Why a call did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be opened; `hint` says what that usually means.
    #[error("cannot connect to xvsd at {}: {source}{hint}", path.display())]
    Connect {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed after connecting.
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// No answer within [`CALL_TIMEOUT`].
    #[error("no answer from xvsd at {} within {} s", path.display(), timeout.as_secs())]
    Timeout { path: PathBuf, timeout: Duration },
    /// The daemon closed the connection instead of answering.
    #[error("xvsd at {} closed the connection without answering", path.display())]
    Closed { path: PathBuf },
    /// The answer is not a valid response to our request.
    #[error("bad answer from xvsd: {0}")]
    Protocol(String),
    /// The daemon answered `ok: false`.
    #[error("{message}")]
    Daemon { code: ErrorCode, message: String },
}

/// A connection to xvsd. Calls are strictly sequential: one request, then its response.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    stream: BufReader<UnixStream>,
    next_id: u64,
}

impl Client {
    /// Connects to the control socket at `path`.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_path_buf(),
            hint: connect_hint(source.kind()),
            source,
        })?;
        let io_err = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        stream
            .set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(io_err)?;
        stream
            .set_write_timeout(Some(CALL_TIMEOUT))
            .map_err(io_err)?;
        Ok(Client {
            path: path.to_path_buf(),
            stream: BufReader::new(stream),
            next_id: 0,
        })
    }

    /// Sends a `capture` request; on success, its reply and the stream its records follow on
    /// (crate::capture::wire), which has no read timeout: frames come when they come.
    pub fn start_capture(
        mut self,
        command: Command,
    ) -> Result<(CaptureReply, BufReader<UnixStream>), ClientError> {
        match self.call(command)? {
            Reply::Capture(reply) => {
                self.stream
                    .get_ref()
                    .set_read_timeout(None)
                    .map_err(|source| ClientError::Io {
                        path: self.path.clone(),
                        source,
                    })?;
                Ok((reply, self.stream))
            }
            other => Err(ClientError::Protocol(format!(
                "unexpected answer to capture: {other:?}"
            ))),
        }
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `command`, waits for its response and returns the result.
    pub fn call(&mut self, command: Command) -> Result<Reply, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let request = Request {
            v: PROTOCOL_VERSION,
            id: Some(id),
            command,
        };
        let mut line = serde_json::to_string(&request)
            .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?;
        line.push('\n');
        let written = self.stream.get_mut().write_all(line.as_bytes());
        written.map_err(|e| self.io_error(e))?;

        let mut answer = String::new();
        let read = (&mut self.stream)
            .take(MAX_RESPONSE_BYTES)
            .read_line(&mut answer);
        let read = read.map_err(|e| self.io_error(e))?;
        if read == 0 {
            return Err(ClientError::Closed {
                path: self.path.clone(),
            });
        }
        if !answer.ends_with('\n') && read as u64 == MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol(format!(
                "response longer than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        let response: Response = serde_json::from_str(answer.trim_end())
            .map_err(|e| ClientError::Protocol(format!("{e}: {}", answer.trim_end())))?;
        check_response(response, id)
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        match source.kind() {
            // A read timeout shows up as WouldBlock (or TimedOut on some systems).
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
                path: self.path.clone(),
                timeout: CALL_TIMEOUT,
            },
            _ => ClientError::Io {
                path: self.path.clone(),
                source,
            },
        }
    }
}

/// What a failed connect usually means, for the error message.
fn connect_hint(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::NotFound => "; is xvsd running? (a running xvsd re-creates a deleted socket within a second; another socket: --control or $XVS_CONTROL)",
        io::ErrorKind::ConnectionRefused => "; xvsd seems not to be running (stale socket)",
        io::ErrorKind::PermissionDenied => "; run as root or as a user the socket admits",
        _ => "",
    }
}

/// Turns a response to request `id` into the caller's result.
fn check_response(response: Response, id: u64) -> Result<Reply, ClientError> {
    if response.v != PROTOCOL_VERSION {
        return Err(ClientError::Protocol(format!(
            "protocol version {} (this client speaks {PROTOCOL_VERSION})",
            response.v
        )));
    }
    // A request the daemon could not parse is answered without an id; its error is still the
    // answer to our request since calls are sequential.
    let unreadable = response.id.is_none() && !response.ok;
    if response.id != Some(id) && !unreadable {
        return Err(ClientError::Protocol(format!(
            "response id {:?} does not match request id {id}",
            response.id
        )));
    }
    if response.ok {
        response
            .result
            .ok_or_else(|| ClientError::Protocol("ok response without a result".into()))
    } else {
        let error = response
            .error
            .ok_or_else(|| ClientError::Protocol("failed response without an error".into()))?;
        Err(ClientError::Daemon {
            code: error.code,
            message: error.message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Empty, Protocol, ServiceKey};
    use std::net::Ipv4Addr;
    use std::os::unix::net::UnixListener;

    fn socket_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xvs-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        path
    }

    /// A one-connection server answering each request line with `answer(request)`.
    fn serve(
        path: &Path,
        answer: impl Fn(Request) -> String + Send + 'static,
    ) -> std::thread::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 0 {
                let request: Request = serde_json::from_str(&line).unwrap();
                writer.write_all(answer(request).as_bytes()).unwrap();
                writer.write_all(b"\n").unwrap();
                line.clear();
            }
        })
    }

    fn service() -> ServiceKey {
        ServiceKey {
            proto: Protocol::Tcp,
            addr: Ipv4Addr::new(198, 18, 0, 129).into(),
            port: 80,
        }
    }

    #[test]
    fn ids_increment_and_errors_map() {
        let path = socket_path("ids.sock");
        let server = serve(&path, |req| {
            let response = match req.command {
                Command::Clear => Response::success(req.id, Reply::Done(Empty {})),
                _ => Response::failure(req.id, ErrorCode::NoSuchService, "no service"),
            };
            serde_json::to_string(&response).unwrap()
        });
        let mut client = Client::connect(&path).unwrap();
        assert_eq!(client.call(Command::Clear).unwrap(), Reply::Done(Empty {}));
        match client.call(Command::DelService { service: service() }) {
            Err(ClientError::Daemon { code, message }) => {
                assert_eq!(code, ErrorCode::NoSuchService);
                assert_eq!(message, "no service");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(client.next_id, 2);
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn mismatched_id_is_a_protocol_error() {
        let path = socket_path("mismatch.sock");
        let server = serve(&path, |req| {
            let id = req.id.map(|i| i + 7);
            serde_json::to_string(&Response::success(id, Reply::Done(Empty {}))).unwrap()
        });
        let mut client = Client::connect(&path).unwrap();
        assert!(matches!(
            client.call(Command::Clear),
            Err(ClientError::Protocol(m)) if m.contains("does not match")
        ));
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn missing_socket_names_the_path() {
        let path = socket_path("absent.sock");
        let err = Client::connect(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("is xvsd running?"), "{text}");
    }
}
