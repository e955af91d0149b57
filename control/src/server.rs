//! The control socket and the control thread.
//!
//! One JSON request per line, one response per line (docs/control-protocol.md).
//!
//! Threads: the control thread owns the [`Director`] and runs [`Task`]s from a bounded queue,
//! plus periodic housekeeping. An acceptor thread takes connections on the Unix socket, checks
//! the peer's credentials, and gives each client a thread of its own (at most
//! [`MAX_CLIENTS`]) that reads and decodes its lines and queues one task per request. So a slow
//! or hostile client holds only its own thread, and only until its idle timeout; the control
//! thread never reads a socket, and the workers never wait on any of this. Other parts of the
//! daemon (metrics, reloads) reach the director the same way, through a [`ControlHandle`].
//!
//! Access: the socket is created with mode 0600 (root only), or 0660 and the group given by
//! `--control-group`. Because a mode can be loosened by anyone with access to the directory,
//! every connection's peer credentials (SO_PEERCRED) are checked as well: uid 0, the daemon's
//! own uid, or a member of the control group.

use crate::apply::{Director, Steering};
use crate::capture::service::Captures;
use crate::protocol::{
    Command, ErrorCode, Reply, Request, Response, MAX_REQUEST_BYTES, PROTOCOL_VERSION,
};
use anyhow::{bail, Context};
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
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
    "set_conn_limit",
    "add_laddr",
    "del_laddr",
    "set_sloppy",
    "capture",
];

/// Clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 64;
/// A client that sends nothing for this long is disconnected.
const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A response that cannot be written within this is abandoned with the connection.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request may wait for the control thread.
const TASK_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests queued for the control thread at most.
const TASK_QUEUE: usize = 256;
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// How often the acceptor checks that the socket file is still there (see [`accept_loop`]).
const SOCKET_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Work for the control thread, run with the director.
pub type Task<S> = Box<dyn FnOnce(&mut Director<S>) + Send>;

/// Queues work for the control thread from any thread.
pub struct ControlHandle<S: Steering> {
    tasks: Sender<Task<S>>,
}

impl<S: Steering> Clone for ControlHandle<S> {
    fn clone(&self) -> Self {
        ControlHandle {
            tasks: self.tasks.clone(),
        }
    }
}

impl<S: Steering + 'static> ControlHandle<S> {
    /// Runs `f` on the control thread and returns its result, or `None` if the control thread
    /// is gone or did not get to it within `timeout`.
    pub fn run<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Director<S>) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = channel::bounded(1);
        let task: Task<S> = Box::new(move |director| {
            let _ = tx.send(f(director));
        });
        self.tasks.send_timeout(task, timeout).ok()?;
        rx.recv_timeout(timeout).ok()
    }
}

/// The control thread's queue: create it, hand out [`ControlHandle`]s, then
/// [`ControlLoop::run`] on the thread that owns the director.
pub struct ControlLoop<S: Steering> {
    tasks: Receiver<Task<S>>,
    handle: ControlHandle<S>,
}

impl<S: Steering + 'static> Default for ControlLoop<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Steering + 'static> ControlLoop<S> {
    pub fn new() -> Self {
        let (tx, rx) = channel::bounded(TASK_QUEUE);
        ControlLoop {
            tasks: rx,
            handle: ControlHandle { tasks: tx },
        }
    }

    pub fn handle(&self) -> ControlHandle<S> {
        self.handle.clone()
    }

    /// Runs tasks, housekeeping and `tick` (at least every [`HOUSEKEEPING_EVERY`]) until
    /// `shutdown` is set.
    pub fn run(
        &self,
        director: &mut Director<S>,
        shutdown: &AtomicBool,
        mut tick: impl FnMut(&mut Director<S>),
    ) {
        let mut last_housekeeping = Instant::now();
        while !shutdown.load(Ordering::Relaxed) {
            match self.tasks.recv_timeout(HOUSEKEEPING_EVERY) {
                Ok(task) => task(director),
                Err(RecvTimeoutError::Timeout) => {}
                // Cannot happen: we hold a sender ourselves.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if last_housekeeping.elapsed() >= HOUSEKEEPING_EVERY {
                director.housekeeping();
                tick(director);
                last_housekeeping = Instant::now();
            }
        }
    }
}

/// Who may use the control socket besides root and the daemon's own user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// `--control-group`: members get the socket (mode 0660) and pass the peer check.
    pub group: Option<u32>,
}

/// The listening socket and its acceptor thread.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Creates the socket at `path` (and its directory) and starts accepting clients whose
    /// requests `handle` runs.
    /// `captures`: where `capture` requests are served (none: they are refused).
    pub fn start<S: Steering + 'static>(
        path: &Path,
        access: Access,
        handle: ControlHandle<S>,
        captures: Option<Arc<Captures>>,
    ) -> anyhow::Result<Self> {
        let listener = bind(path, access)?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("xvs-control-accept".into())
                .spawn(move || {
                    crate::privileges::thread_start();
                    accept_loop(listener, &path, access, handle, captures, &stop)
                })
                .context("starting the control socket thread")?
        };
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            acceptor: Some(acceptor),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bind(path: &Path, access: Access) -> anyhow::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the control socket directory {}", dir.display()))?;
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
    let mode = match access.group {
        Some(gid) => {
            std::os::unix::fs::chown(path, None, Some(gid)).with_context(|| {
                format!(
                    "giving the control socket {} to group {gid}",
                    path.display()
                )
            })?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", path.display()))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Accepts clients until `stop`. A socket file deleted under the running daemon (a careless
/// `rm -rf /run/xvs`, a tmpfiles cleaner) would leave it unreachable for good, so the file is
/// checked every [`SOCKET_CHECK_EVERY`] and, when it is gone, bound again at the same path
/// (the old listener is dropped). A file someone else put there is left alone.
fn accept_loop<S: Steering + 'static>(
    mut listener: UnixListener,
    path: &Path,
    access: Access,
    handle: ControlHandle<S>,
    captures: Option<Arc<Captures>>,
    stop: &AtomicBool,
) {
    let clients = Arc::new(AtomicUsize::new(0));
    let mut last_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_check.elapsed() >= SOCKET_CHECK_EVERY {
            last_check = Instant::now();
            if let Err(e) = std::fs::symlink_metadata(path) {
                if e.kind() == io::ErrorKind::NotFound {
                    match bind(path, access) {
                        Ok(new) => {
                            listener = new;
                            eprintln!(
                                "xvsd: the control socket {} was deleted; created it again",
                                path.display()
                            );
                        }
                        Err(e) => eprintln!(
                            "xvsd: the control socket {} was deleted and cannot be created again: {e:#}",
                            path.display()
                        ),
                    }
                }
            }
        }
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
            Err(e) => {
                eprintln!("xvsd: accepting a control client: {e}");
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if let Err(refusal) = admit(&stream, access, &clients) {
            let mut stream = stream;
            let _ = stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
            let _ = write_response(&mut stream, &refusal);
            continue;
        }
        let (handle, counted) = (handle.clone(), Arc::clone(&clients));
        let captures = captures.clone();
        let spawned = std::thread::Builder::new()
            .name("xvs-control-client".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                crate::privileges::thread_start();
                if let Err(e) = serve_client(stream, &handle, captures.as_ref()) {
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) {
                        eprintln!("xvsd: control client: {e}");
                    }
                }
                counted.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            // The closure (and its count) never ran.
            clients.fetch_sub(1, Ordering::Relaxed);
            eprintln!("xvsd: cannot start a control client thread: {e}");
        }
    }
}

/// Checks a new client's credentials and the client limit (counting it in when admitted).
fn admit(stream: &UnixStream, access: Access, clients: &AtomicUsize) -> Result<(), Response> {
    let creds = peer_credentials(stream).map_err(|e| {
        Response::failure(
            None,
            ErrorCode::PermissionDenied,
            format!("cannot read peer credentials: {e}"),
        )
    })?;
    if !allowed(&creds, access) {
        return Err(Response::failure(
            None,
            ErrorCode::PermissionDenied,
            format!(
                "uid {} (gid {}) may not use this control socket: root, the daemon's user{}",
                creds.uid,
                creds.gid,
                match access.group {
                    Some(g) => format!(" or members of group {g}"),
                    None => String::new(),
                }
            ),
        ));
    }
    if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
        clients.fetch_sub(1, Ordering::Relaxed);
        return Err(Response::failure(
            None,
            ErrorCode::Busy,
            format!("too many control clients (at most {MAX_CLIENTS}); try again"),
        ));
    }
    Ok(())
}

/// SO_PEERCRED of a Unix socket peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerCredentials {
    pid: i32,
    uid: u32,
    gid: u32,
}

fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCredentials> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // Safety: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCredentials {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

fn allowed(creds: &PeerCredentials, access: Access) -> bool {
    // Safety: geteuid has no preconditions.
    let own_uid = unsafe { libc::geteuid() };
    if creds.uid == 0 || creds.uid == own_uid {
        return true;
    }
    match access.group {
        Some(group) => creds.gid == group || supplementary_groups(creds.pid).contains(&group),
        None => false,
    }
}

/// The peer's supplementary groups, from /proc (SO_PEERCRED gives only the primary group).
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

fn serve_client<S: Steering + 'static>(
    stream: UnixStream,
    handle: &ControlHandle<S>,
    captures: Option<&Arc<Captures>>,
) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT))?;
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
        let response = match decode(&line) {
            // A capture takes the connection over: the reply, then its records.
            Ok(Request {
                id,
                command:
                    Command::Capture {
                        interface,
                        filter,
                        count,
                    },
                ..
            }) => match captures.map(|c| (c, c.start(interface.as_deref(), filter.as_deref()))) {
                None => {
                    Response::failure(id, ErrorCode::Unsupported, "this daemon does not capture")
                }
                Some((_, Err(message))) => {
                    Response::failure(id, ErrorCode::InvalidArgument, message)
                }
                Some((captures, Ok((capture, reply)))) => {
                    write_response(&mut writer, &Response::success(id, Reply::Capture(reply)))?;
                    crate::capture::service::serve(captures, &capture, reader.into_inner(), count);
                    return Ok(());
                }
            },
            Ok(request) => {
                let id = request.id;
                handle
                    .run(TASK_TIMEOUT, move |director| {
                        match director.execute(request.command) {
                            Ok(reply) => Response::success(id, reply),
                            Err(e) => Response::failure(id, e.code(), e.to_string()),
                        }
                    })
                    .unwrap_or_else(|| {
                        Response::failure(id, ErrorCode::Busy, "the control thread did not answer")
                    })
            }
            Err(response) => response,
        };
        write_response(&mut writer, &response)?;
    }
}

fn write_response(writer: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    writer.write_all(text.as_bytes())
}

/// Decodes one request line, or says what is wrong with it.
pub fn decode(line: &str) -> Result<Request, Response> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        Response::failure(None, ErrorCode::BadRequest, format!("malformed JSON: {e}"))
    })?;
    let Some(object) = value.as_object() else {
        return Err(Response::failure(
            None,
            ErrorCode::BadRequest,
            "a request must be a JSON object",
        ));
    };
    let id = object.get("id").and_then(|v| v.as_u64());
    if let Some(v) = object.get("v") {
        if v.as_u64() != Some(u64::from(PROTOCOL_VERSION)) {
            return Err(Response::failure(
                id,
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {v} is not supported (this daemon speaks {PROTOCOL_VERSION})"
                ),
            ));
        }
    }
    match object.get("cmd").and_then(|c| c.as_str()) {
        None => {
            return Err(Response::failure(
                id,
                ErrorCode::BadRequest,
                "missing \"cmd\" (a string)",
            ))
        }
        Some(cmd) if !COMMANDS.contains(&cmd) => {
            return Err(Response::failure(
                id,
                ErrorCode::UnknownCommand,
                format!("unknown command {cmd:?} (known: {})", COMMANDS.join(", ")),
            ))
        }
        Some(_) => {}
    }
    serde_json::from_value(value)
        .map_err(|e| Response::failure(id, ErrorCode::InvalidArgument, e.to_string()))
}

/// Decodes and executes one request line on `director` (the control thread's work for one
/// line; tests use it directly).
pub fn handle_line<S: Steering>(line: &str, director: &mut Director<S>) -> Response {
    match decode(line) {
        Ok(request) => match director.execute(request.command) {
            Ok(reply) => Response::success(request.id, reply),
            Err(e) => Response::failure(request.id, e.code(), e.to_string()),
        },
        Err(response) => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_known() {
        // A command the protocol has but COMMANDS lacks would be "unknown command".
        for cmd in COMMANDS {
            let line = format!(r#"{{"cmd":"{cmd}"}}"#);
            if let Err(r) = decode(&line) {
                assert_ne!(r.error.unwrap().code, ErrorCode::UnknownCommand, "{cmd}");
            }
        }
        let r = decode(r#"{"cmd":"frobnicate"}"#).unwrap_err();
        assert_eq!(r.error.unwrap().code, ErrorCode::UnknownCommand);
    }

    /// Every request example of docs/control-protocol.md (one JSON value with `cmd`, on one
    /// line or several) decodes, and so does every line of the control_json fuzz seeds.
    #[test]
    fn documented_requests_decode() {
        let doc = include_str!("../../docs/control-protocol.md");
        let mut requests = 0;
        for block in doc.split("```json").skip(1) {
            let block = block.split("```").next().unwrap();
            for value in serde_json::Deserializer::from_str(block).into_iter::<serde_json::Value>()
            {
                let value = value.unwrap_or_else(|e| panic!("{e} in\n{block}"));
                if value.get("cmd").is_some() {
                    let line = value.to_string();
                    decode(&line).unwrap_or_else(|r| panic!("{line}: {r:?}"));
                    requests += 1;
                }
            }
        }
        assert!(requests >= 20, "{requests} requests documented");
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/control_json");
        for entry in std::fs::read_dir(&seeds).unwrap() {
            let path = entry.unwrap().path();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                decode(line).unwrap_or_else(|r| panic!("{}: {line}: {r:?}", path.display()));
            }
        }
    }

    #[test]
    fn every_protocol_command_is_in_commands() {
        use crate::protocol::{Command, Protocol, RealKey, ServiceKey};
        let service = ServiceKey {
            proto: Protocol::Tcp,
            addr: std::net::Ipv4Addr::new(198, 18, 0, 129).into(),
            port: 80,
        };
        let real = RealKey {
            addr: std::net::Ipv4Addr::new(198, 19, 0, 148).into(),
            port: 80,
        };
        let addr = std::net::Ipv4Addr::new(198, 19, 0, 11);
        let all = [
            Command::Version,
            Command::AddService {
                service,
                scheduler: None,
                sched_flags: None,
                persistent: None,
                netmask: None,
            },
            Command::EditService {
                service,
                scheduler: None,
                sched_flags: None,
                persistent: None,
                netmask: None,
            },
            Command::DelService { service },
            Command::Clear,
            Command::AddReal {
                service,
                real,
                weight: None,
                forward: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            },
            Command::EditReal {
                service,
                real,
                weight: None,
                forward: None,
                tunnel: None,
                upper_threshold: None,
                lower_threshold: None,
            },
            Command::DelReal { service, real },
            Command::List,
            Command::Stats,
            Command::Zero { service: None },
            Command::SetTimeouts {
                tcp: 0,
                tcpfin: 0,
                udp: 0,
            },
            Command::Timeouts,
            Command::Connections,
            Command::Batch { commands: vec![] },
            Command::Replace { commands: vec![] },
            Command::SetCheck {
                service,
                check: None,
            },
            Command::SetConnLimit {
                service,
                max_conns: 0,
            },
            Command::AddLaddr {
                service,
                addr: addr.into(),
            },
            Command::DelLaddr {
                service,
                addr: addr.into(),
            },
            Command::SetSloppy {
                tcp: true,
                udp: false,
            },
            Command::Capture {
                interface: Some("internal".into()),
                filter: Some("tcp port 80".into()),
                count: Some(4),
            },
        ];
        for command in all {
            // A new variant must be listed above (and in COMMANDS).
            match command {
                Command::Version
                | Command::AddService { .. }
                | Command::EditService { .. }
                | Command::DelService { .. }
                | Command::Clear
                | Command::AddReal { .. }
                | Command::EditReal { .. }
                | Command::DelReal { .. }
                | Command::List
                | Command::Stats
                | Command::Zero { .. }
                | Command::SetTimeouts { .. }
                | Command::Timeouts
                | Command::Connections
                | Command::Batch { .. }
                | Command::Replace { .. }
                | Command::SetCheck { .. }
                | Command::SetConnLimit { .. }
                | Command::AddLaddr { .. }
                | Command::DelLaddr { .. }
                | Command::SetSloppy { .. }
                | Command::Capture { .. } => {}
            }
            let line = serde_json::to_string(&command).unwrap();
            let request = decode(&line).unwrap_or_else(|r| panic!("{line}: {r:?}"));
            assert_eq!(request.command, command);
        }
    }

    #[test]
    fn peer_credentials_of_a_socket_pair_are_ours() {
        let (a, _b) = UnixStream::pair().unwrap();
        let creds = peer_credentials(&a).unwrap();
        // Safety: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        assert_eq!((creds.uid, creds.gid), (uid, gid));
        assert_eq!(creds.pid, std::process::id() as i32);
        assert!(allowed(&creds, Access::default()));
    }

    #[test]
    fn strangers_need_the_control_group() {
        let stranger = PeerCredentials {
            pid: std::process::id() as i32,
            uid: 65534,
            gid: 65534,
        };
        // Only meaningful when the test itself is not running as uid 65534.
        // Safety: no preconditions.
        if unsafe { libc::geteuid() } == 65534 {
            return;
        }
        assert!(!allowed(&stranger, Access::default()));
        assert!(!allowed(&stranger, Access { group: Some(4242) }));
        assert!(allowed(&stranger, Access { group: Some(65534) }));
        // Supplementary groups come from /proc/PID/status: ours, for this pid.
        let ours = supplementary_groups(std::process::id() as i32);
        if let Some(&g) = ours.iter().find(|&&g| g != 65534) {
            assert!(allowed(&stranger, Access { group: Some(g) }));
        }
    }

    #[test]
    fn the_client_limit_is_kept() {
        let clients = AtomicUsize::new(MAX_CLIENTS - 1);
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(admit(&a, Access::default(), &clients).is_ok());
        let refused = admit(&a, Access::default(), &clients).unwrap_err();
        assert_eq!(refused.error.unwrap().code, ErrorCode::Busy);
        assert_eq!(clients.load(Ordering::Relaxed), MAX_CLIENTS);
    }
}
