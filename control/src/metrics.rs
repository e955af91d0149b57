//! `xvsd --metrics ADDR:PORT`: the daemon's counters in Prometheus's text exposition format
//! (version 0.0.4) at `GET /metrics`.
//!
//! [`render`] turns a listing and the worker statistics (what `xvsadm -L` and the `stats`
//! command show) into the exposition text; docs/metrics.md describes every metric. Labels
//! name services, real servers, workers and drop reasons only, never clients, so the number
//! of series stays bounded by the configuration.
//!
//! [`MetricsServer`] is a deliberately small HTTP/1.1 server: one request per connection
//! (`Connection: close`), request heads parsed by `httparse` and bounded in size and time, at
//! most [`MAX_CLIENTS`] connections served at once, each on its own thread. So a slow or
//! hostile client holds one thread until its deadline and can neither stall other scrapes nor
//! grow the daemon's memory; the data comes from a `source` callback (in xvsd, a task on the
//! control thread), never from the workers directly.

use crate::protocol::{ListReply, Protocol, StatsReply};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `Content-Type` of the exposition text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Connections served at once; more are answered 503 and closed.
pub const MAX_CLIENTS: usize = 16;
/// Largest request head (request line and headers) read, in bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;
/// The whole request head must arrive within this after the connection is accepted.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole response must be taken by the client within this.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the response, how long (and how many bytes) a request body left unread is drained
/// so that closing does not reset the connection under the client's feet.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
const ACCEPT_POLL: Duration = Duration::from_millis(50);

/// What a scrape serves: the exposition text, or `None` when the data cannot be had (xvsd:
/// the control thread did not answer in time), which the server answers with 503.
pub type MetricsSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// `--metrics` syntax: `ADDR:PORT` (`[V6ADDR]:PORT` for IPv6), or a bare `PORT` meaning
/// `127.0.0.1:PORT`: the counters are only exposed beyond the host when asked for.
pub fn parse_listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "{s:?} is not PORT or ADDR:PORT (e.g. 9107, 127.0.0.1:9107, 0.0.0.0:9107, [::1]:9107)"
        )
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Writes the exposition text, one family after the other: `# HELP`, `# TYPE`, then its
/// samples.
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        // Help texts are ours: no backslashes or newlines to escape.
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; `labels` are pre-rendered label sets (see [`label_set`]), joined with ','.
    fn sample(&mut self, name: &str, labels: &[&str], value: u64) {
        self.out.push_str(name);
        let mut first = true;
        for set in labels.iter().filter(|s| !s.is_empty()) {
            self.out.push(if first { '{' } else { ',' });
            self.out.push_str(set);
            first = false;
        }
        if !first {
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// `name="value",...` with the values escaped as the format requires.
fn label_set(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(name);
        s.push_str("=\"");
        escape_label_value(&mut s, value);
        s.push('"');
    }
    s
}

/// The text format's label value escapes: backslash, double quote and line feed.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn proto_name(proto: Protocol) -> &'static str {
    match proto {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

const IN: &str = "direction=\"in\"";
const OUT: &str = "direction=\"out\"";

/// The exposition text of a listing (`list`) and the worker statistics (`stats`).
pub fn render(list: &ListReply, stats: &StatsReply) -> String {
    let mut e = Exposition { out: String::new() };

    // Label sets, rendered once: per service, and per real server of each service.
    let services: Vec<(String, Vec<String>)> = list
        .services
        .iter()
        .map(|s| {
            let vip = s.service.addr.to_string();
            let vport = s.service.port.to_string();
            let service = label_set(&[
                ("proto", proto_name(s.service.proto)),
                ("vip", &vip),
                ("vport", &vport),
            ]);
            let reals = s
                .reals
                .iter()
                .map(|r| {
                    label_set(&[
                        ("real", &r.real.addr.to_string()),
                        ("rport", &r.real.port.to_string()),
                        ("method", r.forward.metric_name()),
                    ])
                })
                .collect();
            (service, reals)
        })
        .collect();
    let each_service = || list.services.iter().zip(&services);
    let each_real = || {
        each_service().flat_map(|(s, (sl, rls))| {
            s.reals
                .iter()
                .zip(rls)
                .map(move |(r, rl)| (r, sl.as_str(), rl.as_str()))
        })
    };

    e.family("xvs_services", Kind::Gauge, "Virtual services configured.");
    e.sample("xvs_services", &[], list.services.len() as u64);

    if let Some(announced) = &list.announced {
        e.family(
            "xvs_vip_announced",
            Kind::Gauge,
            "xvsd --announce: 1 while the VIP is announced to the routing daemon, 0 while it is withdrawn.",
        );
        let vips: std::collections::BTreeSet<std::net::IpAddr> = list
            .services
            .iter()
            .map(|s| s.service.addr)
            .chain(announced.iter().copied())
            .collect();
        for vip in vips {
            let label = label_set(&[("vip", &vip.to_string())]);
            e.sample(
                "xvs_vip_announced",
                &[&label],
                announced.contains(&vip) as u64,
            );
        }
    }

    e.family(
        "xvs_service_info",
        Kind::Gauge,
        "Always 1 for each virtual service; the scheduler in a label.",
    );
    for (s, (sl, _)) in each_service() {
        let sched = label_set(&[("scheduler", &s.scheduler)]);
        e.sample("xvs_service_info", &[sl, &sched], 1);
    }

    e.family(
        "xvs_service_connections_total",
        Kind::Counter,
        "Connections scheduled by the virtual service.",
    );
    for (s, (sl, _)) in each_service() {
        e.sample("xvs_service_connections_total", &[sl], s.stats.conns);
    }
    e.family(
        "xvs_service_packets_total",
        Kind::Counter,
        "Packets of the virtual service's connections: in = client to real server, out = back.",
    );
    for (s, (sl, _)) in each_service() {
        e.sample("xvs_service_packets_total", &[sl, IN], s.stats.inpkts);
        e.sample("xvs_service_packets_total", &[sl, OUT], s.stats.outpkts);
    }
    e.family(
        "xvs_service_bytes_total",
        Kind::Counter,
        "Bytes (IP packets) of the virtual service's connections by direction.",
    );
    for (s, (sl, _)) in each_service() {
        e.sample("xvs_service_bytes_total", &[sl, IN], s.stats.inbytes);
        e.sample("xvs_service_bytes_total", &[sl, OUT], s.stats.outbytes);
    }

    e.family(
        "xvs_real_connections_total",
        Kind::Counter,
        "Connections scheduled to the real server.",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_connections_total", &[sl, rl], r.stats.conns);
    }
    e.family(
        "xvs_real_packets_total",
        Kind::Counter,
        "Packets of the real server's connections: in = client to real server, out = back.",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_packets_total", &[sl, rl, IN], r.stats.inpkts);
        e.sample("xvs_real_packets_total", &[sl, rl, OUT], r.stats.outpkts);
    }
    e.family(
        "xvs_real_bytes_total",
        Kind::Counter,
        "Bytes (IP packets) of the real server's connections by direction.",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_bytes_total", &[sl, rl, IN], r.stats.inbytes);
        e.sample("xvs_real_bytes_total", &[sl, rl, OUT], r.stats.outbytes);
    }
    e.family(
        "xvs_real_active_connections",
        Kind::Gauge,
        "Established TCP connections to the real server (ipvsadm's ActiveConn).",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_active_connections", &[sl, rl], r.active_conns);
    }
    e.family(
        "xvs_real_inactive_connections",
        Kind::Gauge,
        "Other connections to the real server: TCP not established, UDP (ipvsadm's InActConn).",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_inactive_connections", &[sl, rl], r.inactive_conns);
    }
    e.family(
        "xvs_real_weight",
        Kind::Gauge,
        "The real server's configured weight (0: quiesced).",
    );
    for (r, sl, rl) in each_real() {
        e.sample("xvs_real_weight", &[sl, rl], r.weight.into());
    }
    e.family(
        "xvs_real_up",
        Kind::Gauge,
        "1 when the real server may take new connections as far as health checks go (always 1 without a check), 0 while its check says down.",
    );
    for (r, sl, rl) in each_real() {
        let up = r
            .health
            .as_ref()
            .is_none_or(|h| h.state == crate::protocol::HealthState::Up);
        e.sample("xvs_real_up", &[sl, rl], up.into());
    }
    e.family(
        "xvs_real_health_checks_total",
        Kind::Counter,
        "Health checks of the real server by result (only for services with a check).",
    );
    for (r, sl, rl) in each_real() {
        if let Some(h) = &r.health {
            let passed = "result=\"passed\"";
            let failed = "result=\"failed\"";
            e.sample(
                "xvs_real_health_checks_total",
                &[sl, rl, passed],
                h.checks_passed,
            );
            e.sample(
                "xvs_real_health_checks_total",
                &[sl, rl, failed],
                h.checks_failed,
            );
        }
    }

    let workers: Vec<String> = stats
        .workers
        .iter()
        .map(|w| label_set(&[("worker", &w.worker.to_string())]))
        .collect();
    let each_worker = || stats.workers.iter().zip(&workers);
    e.family(
        "xvs_worker_rx_packets_total",
        Kind::Counter,
        "Frames the worker received from its AF_XDP sockets.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_rx_packets_total", &[wl], w.rx);
    }
    e.family(
        "xvs_worker_tx_packets_total",
        Kind::Counter,
        "Frames the worker transmitted.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_tx_packets_total", &[wl], w.tx);
    }
    e.family(
        "xvs_worker_passed_packets_total",
        Kind::Counter,
        "Frames of the worker's receive queues that the XDP program passed to the kernel (ARP, ICMP, traffic not load-balanced).",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_passed_packets_total", &[wl], w.passed);
    }
    e.family(
        "xvs_worker_xsk_dropped_packets_total",
        Kind::Counter,
        "Frames the XDP program redirected to the worker's AF_XDP sockets that the kernel dropped there: the RX ring was full (ring_full) or no fill-ring frame was free (no_frame).",
    );
    for (w, wl) in each_worker() {
        for (reason, n) in [
            ("ring_full", w.xsk_rx_ring_full),
            ("no_frame", w.xsk_rx_dropped),
        ] {
            let rl = label_set(&[("reason", reason)]);
            e.sample("xvs_worker_xsk_dropped_packets_total", &[wl, &rl], n);
        }
    }
    e.family(
        "xvs_worker_fast_path_packets_total",
        Kind::Counter,
        "Frames of the worker's rx queues that the XDP fast path rewrote and forwarded itself, without the worker.",
    );
    for (w, wl) in each_worker() {
        e.sample(
            "xvs_worker_fast_path_packets_total",
            &[wl],
            w.fast_forwarded,
        );
    }
    e.family(
        "xvs_worker_fast_path_flows_total",
        Kind::Counter,
        "Connections the worker put on the XDP fast path (install), took off it (remove), or could not put on it because its map was full (refused).",
    );
    for (w, wl) in each_worker() {
        for (event, n) in [
            ("install", w.fast_installs),
            ("remove", w.fast_removals),
            ("refused", w.fast_refused),
        ] {
            let el = label_set(&[("event", event)]);
            e.sample("xvs_worker_fast_path_flows_total", &[wl, &el], n);
        }
    }
    e.family(
        "xvs_worker_handed_off_packets_total",
        Kind::Counter,
        "Frames the worker handed to the worker that owns their connection.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_handed_off_packets_total", &[wl], w.handed_off);
    }
    e.family(
        "xvs_worker_handed_in_packets_total",
        Kind::Counter,
        "Frames other workers handed to this worker because it owns their connection.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_handed_in_packets_total", &[wl], w.handed_in);
    }
    e.family(
        "xvs_worker_held_frames",
        Kind::Gauge,
        "Frames waiting for their next hop's MAC address.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_held_frames", &[wl], w.held);
    }
    e.family(
        "xvs_worker_dropped_packets_total",
        Kind::Counter,
        "Frames the worker dropped, by reason.",
    );
    for (w, wl) in each_worker() {
        for (reason, n) in &w.drops {
            let rl = label_set(&[("reason", reason)]);
            e.sample("xvs_worker_dropped_packets_total", &[wl, &rl], *n);
        }
    }
    e.family(
        "xvs_worker_icmp_translated_packets_total",
        Kind::Counter,
        "ICMP errors about connections that the worker translated and forwarded, by direction and reason.",
    );
    for (w, wl) in each_worker() {
        for (direction, reasons) in &w.icmp {
            for (reason, n) in reasons {
                let l = label_set(&[("direction", direction), ("reason", reason)]);
                e.sample("xvs_worker_icmp_translated_packets_total", &[wl, &l], *n);
            }
        }
    }
    e.family(
        "xvs_worker_conntrack_evictions_total",
        Kind::Counter,
        "Half-open connection entries the worker evicted to make room, by reason.",
    );
    for (w, wl) in each_worker() {
        for (reason, n) in &w.evictions {
            let rl = label_set(&[("reason", reason)]);
            e.sample("xvs_worker_conntrack_evictions_total", &[wl, &rl], *n);
        }
    }
    e.family(
        "xvs_worker_conntrack_entries",
        Kind::Gauge,
        "Connections, IPv4 and IPv6, in the worker's share of the connection tables.",
    );
    for (w, wl) in each_worker() {
        e.sample("xvs_worker_conntrack_entries", &[wl], w.conns);
    }

    e.family(
        "xvs_conntrack_entries",
        Kind::Gauge,
        "Connections, IPv4 and IPv6, tracked by all workers.",
    );
    e.sample("xvs_conntrack_entries", &[], stats.conn_count);
    e.family(
        "xvs_conntrack_max",
        Kind::Gauge,
        "Most connections of a family tracked at once (--conn-max, --conn-max6); beyond it \
         new flows evict half-open entries or are dropped.",
    );
    e.sample("xvs_conntrack_max", &["family=\"ipv4\""], stats.conn_max);
    e.sample("xvs_conntrack_max", &["family=\"ipv6\""], stats.conn_max6);
    e.out
}

/// The HTTP endpoint: an acceptor thread and one thread per connection served. Dropping it
/// closes the listening socket, cuts off connections in progress and joins every thread
/// (within [`ACCEPT_POLL`], plus a `source` call in progress).
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Listens on `addr` and serves `GET /metrics` with `source`'s text.
    pub fn start(addr: SocketAddr, source: MetricsSource) -> io::Result<MetricsServer> {
        let listener = TcpListener::bind(addr)?;
        // Polled, so that the acceptor notices a stop without a connection to wake it.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("xvs-metrics".into())
                .spawn(move || {
                    crate::privileges::thread_start();
                    accept_loop(listener, source, &stop)
                })?
        };
        Ok(MetricsServer {
            addr,
            stop,
            acceptor: Some(acceptor),
        })
    }

    /// The address listened on (with the port chosen when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// A connection being served: a second handle on its socket, to cut it off at shutdown.
struct Client {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

fn accept_loop(listener: TcpListener, source: MetricsSource, stop: &AtomicBool) {
    let mut clients: Vec<Client> = Vec::new();
    // Logged once per run of failures (EMFILE would otherwise repeat every poll).
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        clients.retain(|c| !c.thread.is_finished());
        match listener.accept() {
            Ok((stream, _)) => {
                failing = false;
                if clients.len() >= MAX_CLIENTS {
                    refuse(stream);
                    continue;
                }
                match spawn_client(stream, Arc::clone(&source)) {
                    Ok(client) => clients.push(client),
                    Err(e) => eprintln!("xvsd: metrics: cannot serve a connection: {e}"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                if !failing {
                    eprintln!("xvsd: metrics: accept failed: {e}");
                    failing = true;
                }
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
    for c in &clients {
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    for c in clients {
        let _ = c.thread.join();
    }
}

/// Too many connections: a best-effort 503 that never blocks the acceptor. What the client
/// already sent is read first, so that closing sends a FIN after the answer, not a reset.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(true);
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    let _ = stream.write(&Reply::text(503, "too many metrics clients\n").encode(false));
    let _ = stream.shutdown(Shutdown::Write);
}

fn spawn_client(stream: TcpStream, source: MetricsSource) -> io::Result<Client> {
    // Accepted sockets do not inherit O_NONBLOCK on Linux; be explicit anyway.
    stream.set_nonblocking(false)?;
    let handle = stream.try_clone()?;
    let thread = std::thread::Builder::new()
        .name("xvs-metrics-client".into())
        .spawn(move || {
            crate::privileges::thread_start();
            let _ = serve(stream, &source);
        })?;
    Ok(Client {
        stream: handle,
        thread,
    })
}

/// What became of reading a request head.
enum Incoming {
    Request {
        method: String,
        target: String,
    },
    /// Malformed or too large: answer this and close.
    Bad(Reply),
    /// Closed, or too slow: nothing to answer.
    Gone,
}

fn serve(mut stream: TcpStream, source: &MetricsSource) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (reply, head_only) = match read_head(&mut stream)? {
        Incoming::Request { method, target } => (route(&method, &target, source), method == "HEAD"),
        Incoming::Bad(reply) => (reply, false),
        Incoming::Gone => return Ok(()),
    };
    write_all_by(
        &mut stream,
        &reply.encode(head_only),
        Instant::now() + WRITE_TIMEOUT,
    )?;
    // Lingering close: drain what the client still sends (a body we did not read) until it
    // closes, so that our close does not turn into a reset that discards the response.
    stream.shutdown(Shutdown::Write)?;
    let deadline = Instant::now() + LINGER;
    let mut drained = 0;
    let mut buf = [0u8; 4096];
    while drained < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}

/// Reads until a complete request head, at most [`MAX_REQUEST_HEAD`] bytes within
/// [`HEAD_TIMEOUT`].
fn read_head(stream: &mut TcpStream) -> io::Result<Incoming> {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = vec![0u8; MAX_REQUEST_HEAD];
    let mut len = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Incoming::Gone);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Ok(Incoming::Gone),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Incoming::Gone)
            }
            Err(e) => return Err(e),
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                return Ok(Incoming::Request {
                    method: request.method.unwrap_or_default().to_string(),
                    target: request.path.unwrap_or_default().to_string(),
                })
            }
            Ok(httparse::Status::Partial) if len == buf.len() => {
                return Ok(Incoming::Bad(Reply::text(
                    431,
                    "request header fields too large\n",
                )))
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Ok(Incoming::Bad(Reply::text(
                    431,
                    "request header fields too large\n",
                )))
            }
            Err(_) => return Ok(Incoming::Bad(Reply::text(400, "bad request\n"))),
        }
    }
}

/// `GET /metrics` (and `HEAD`); nothing else is served.
fn route(method: &str, target: &str, source: &MetricsSource) -> Reply {
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path != "/metrics" {
        return Reply::text(404, "not found: the metrics are at /metrics\n");
    }
    if method != "GET" && method != "HEAD" {
        let mut reply = Reply::text(405, "method not allowed: use GET\n");
        reply.allow = true;
        return reply;
    }
    match source() {
        Some(body) => Reply {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
            allow: false,
        },
        None => Reply::text(503, "xvsd did not answer in time; try again\n"),
    }
}

/// An HTTP response, always with `Connection: close`.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    /// Whether to send `Allow: GET, HEAD` (405).
    allow: bool,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            allow: false,
        }
    }

    fn encode(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut head = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// `write_all` that gives up at `deadline` (a client that does not read).
fn write_all_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Counters, Forward, HealthInfo, HealthState, RealInfo, RealKey, ServiceInfo, ServiceKey,
        WorkerStats, DEFAULT_NETMASK,
    };
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::AtomicBool;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 129);

    fn counters(base: u64) -> Counters {
        Counters {
            conns: base + 1,
            inpkts: base + 2,
            outpkts: base + 3,
            inbytes: base + 4,
            outbytes: base + 5,
        }
    }

    fn real(addr: [u8; 4], port: u16, base: u64, health: Option<HealthState>) -> RealInfo {
        RealInfo {
            real: RealKey {
                addr: addr.into(),
                port,
            },
            forward: Forward::Masq,
            tunnel: None,
            weight: (base / 100) as u32,
            upper_threshold: 0,
            lower_threshold: 0,
            active_conns: base + 6,
            inactive_conns: base + 7,
            persist_conns: 0,
            stats: counters(base),
            rates: Default::default(),
            health: health.map(|state| HealthInfo {
                state,
                streak: 3,
                checks_passed: base + 8,
                checks_failed: base + 9,
                last_error: None,
                since_secs: 10,
            }),
        }
    }

    fn service(
        proto: Protocol,
        port: u16,
        sched: &str,
        base: u64,
        reals: Vec<RealInfo>,
    ) -> ServiceInfo {
        ServiceInfo {
            service: ServiceKey {
                proto,
                addr: VIP.into(),
                port,
            },
            scheduler: sched.into(),
            sched_flags: vec![],
            persistent: None,
            netmask: DEFAULT_NETMASK.into(),
            stats: counters(base),
            rates: Default::default(),
            check: None,
            max_conns: 0,
            local_addrs: Vec::new(),
            reals,
        }
    }

    fn worker(id: u32, base: u64, drops: &[(&str, u64)]) -> WorkerStats {
        WorkerStats {
            worker: id,
            core: Some(id),
            rx: base + 1,
            tx: base + 2,
            handed_off: base + 3,
            handed_in: base + 6,
            held: base + 7,
            redirected: base + 8,
            passed: base + 4,
            xsk_rx_ring_full: base + 9,
            xsk_rx_dropped: base + 10,
            fast_forwarded: base + 11,
            fast_installs: base + 12,
            fast_removals: base + 13,
            fast_refused: base + 14,
            drops: drops.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
            icmp: [
                ("in", "frag_needed", base + 6),
                ("out", "unreachable", base + 7),
            ]
            .iter()
            .map(|&(d, r, n)| (d.to_string(), [(r.to_string(), n)].into()))
            .collect(),
            evictions: [("half_open_limit", base + 6), ("table_full", 0)]
                .iter()
                .map(|(r, n)| (r.to_string(), *n))
                .collect(),
            conns: base + 5,
        }
    }

    /// Two services (TCP with two checked reals, one down; UDP with an unchecked real) and
    /// two workers with drops.
    fn sample() -> (ListReply, StatsReply) {
        let list = ListReply {
            conn_tab_size: 4096,
            conn_max: 1000,
            sloppy: Default::default(),
            announced: None,
            services: vec![
                service(
                    Protocol::Tcp,
                    80,
                    "rr",
                    1000,
                    vec![
                        real([198, 19, 0, 148], 80, 100, Some(HealthState::Up)),
                        // FullNAT: its series say so.
                        RealInfo {
                            forward: Forward::FullNat,
                            ..real([198, 19, 0, 137], 8080, 200, Some(HealthState::Down))
                        },
                    ],
                ),
                service(
                    Protocol::Udp,
                    53,
                    "wlc",
                    2000,
                    // Direct-routed: its series say so.
                    vec![RealInfo {
                        forward: Forward::Route,
                        ..real([198, 19, 0, 148], 53, 300, None)
                    }],
                ),
            ],
        };
        let stats = StatsReply {
            workers: vec![
                worker(0, 10_000, &[("no_service", 3), ("table_full", 0)]),
                worker(
                    1,
                    20_000,
                    &[
                        ("no_service", 5),
                        ("neighbour_miss", 7),
                        ("no_local_port", 2),
                    ],
                ),
            ],
            conn_count: 30_010,
            conn_max: 1000,
            conn_max6: 250,
        };
        (list, stats)
    }

    type Key = (String, BTreeSet<(String, String)>);

    fn key(metric: &str, labels: &[(&str, &str)]) -> Key {
        (
            metric.to_string(),
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// What `render(sample())` must contain, written out independently of `render`.
    fn expected() -> BTreeMap<Key, (bool, u64)> {
        let (list, stats) = sample();
        let mut want = BTreeMap::new();
        let mut put = |metric: &str, counter: bool, labels: &[(&str, &str)], v: u64| {
            assert!(want.insert(key(metric, labels), (counter, v)).is_none());
        };
        put("xvs_services", false, &[], 2);
        for s in &list.services {
            let proto = if s.service.proto == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            let vport = s.service.port.to_string();
            let sl = [("proto", proto), ("vip", "198.18.0.129"), ("vport", &vport)];
            let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
                sl.iter().copied().chain(extra.iter().copied()).collect()
            };
            let sched = [("scheduler", s.scheduler.as_str())];
            put(
                "xvs_service_info",
                false,
                &[sl.as_slice(), &sched].concat(),
                1,
            );
            put("xvs_service_connections_total", true, &sl, s.stats.conns);
            put(
                "xvs_service_packets_total",
                true,
                &with(&[("direction", "in")]),
                s.stats.inpkts,
            );
            put(
                "xvs_service_packets_total",
                true,
                &with(&[("direction", "out")]),
                s.stats.outpkts,
            );
            put(
                "xvs_service_bytes_total",
                true,
                &with(&[("direction", "in")]),
                s.stats.inbytes,
            );
            put(
                "xvs_service_bytes_total",
                true,
                &with(&[("direction", "out")]),
                s.stats.outbytes,
            );
            for r in &s.reals {
                let addr = r.real.addr.to_string();
                let rport = r.real.port.to_string();
                let rl: Vec<(&str, &str)> = sl
                    .iter()
                    .copied()
                    .chain([
                        ("real", addr.as_str()),
                        ("rport", rport.as_str()),
                        ("method", r.forward.metric_name()),
                    ])
                    .collect();
                let with = |extra: (&'static str, &'static str)| -> Vec<(&str, &str)> {
                    rl.iter().copied().chain([extra]).collect()
                };
                put("xvs_real_connections_total", true, &rl, r.stats.conns);
                put(
                    "xvs_real_packets_total",
                    true,
                    &with(("direction", "in")),
                    r.stats.inpkts,
                );
                put(
                    "xvs_real_packets_total",
                    true,
                    &with(("direction", "out")),
                    r.stats.outpkts,
                );
                put(
                    "xvs_real_bytes_total",
                    true,
                    &with(("direction", "in")),
                    r.stats.inbytes,
                );
                put(
                    "xvs_real_bytes_total",
                    true,
                    &with(("direction", "out")),
                    r.stats.outbytes,
                );
                put("xvs_real_active_connections", false, &rl, r.active_conns);
                put(
                    "xvs_real_inactive_connections",
                    false,
                    &rl,
                    r.inactive_conns,
                );
                put("xvs_real_weight", false, &rl, r.weight.into());
                let up = r.health.as_ref().is_none_or(|h| h.state == HealthState::Up);
                put("xvs_real_up", false, &rl, up.into());
                if let Some(h) = &r.health {
                    put(
                        "xvs_real_health_checks_total",
                        true,
                        &with(("result", "passed")),
                        h.checks_passed,
                    );
                    put(
                        "xvs_real_health_checks_total",
                        true,
                        &with(("result", "failed")),
                        h.checks_failed,
                    );
                }
            }
        }
        for w in &stats.workers {
            let id = w.worker.to_string();
            let wl = [("worker", id.as_str())];
            put("xvs_worker_rx_packets_total", true, &wl, w.rx);
            put("xvs_worker_tx_packets_total", true, &wl, w.tx);
            put("xvs_worker_passed_packets_total", true, &wl, w.passed);
            for (reason, n) in [
                ("ring_full", w.xsk_rx_ring_full),
                ("no_frame", w.xsk_rx_dropped),
            ] {
                put(
                    "xvs_worker_xsk_dropped_packets_total",
                    true,
                    &[("worker", id.as_str()), ("reason", reason)],
                    n,
                );
            }
            put(
                "xvs_worker_fast_path_packets_total",
                true,
                &wl,
                w.fast_forwarded,
            );
            for (event, n) in [
                ("install", w.fast_installs),
                ("remove", w.fast_removals),
                ("refused", w.fast_refused),
            ] {
                put(
                    "xvs_worker_fast_path_flows_total",
                    true,
                    &[("worker", id.as_str()), ("event", event)],
                    n,
                );
            }
            put(
                "xvs_worker_handed_off_packets_total",
                true,
                &wl,
                w.handed_off,
            );
            put("xvs_worker_handed_in_packets_total", true, &wl, w.handed_in);
            put("xvs_worker_held_frames", false, &wl, w.held);
            put("xvs_worker_conntrack_entries", false, &wl, w.conns);
            for (reason, n) in &w.drops {
                put(
                    "xvs_worker_dropped_packets_total",
                    true,
                    &[wl[0], ("reason", reason)],
                    *n,
                );
            }
            for (direction, reasons) in &w.icmp {
                for (reason, n) in reasons {
                    put(
                        "xvs_worker_icmp_translated_packets_total",
                        true,
                        &[wl[0], ("direction", direction), ("reason", reason)],
                        *n,
                    );
                }
            }
            for (reason, n) in &w.evictions {
                put(
                    "xvs_worker_conntrack_evictions_total",
                    true,
                    &[wl[0], ("reason", reason)],
                    *n,
                );
            }
        }
        put("xvs_conntrack_entries", false, &[], stats.conn_count);
        put(
            "xvs_conntrack_max",
            false,
            &[("family", "ipv4")],
            stats.conn_max,
        );
        put(
            "xvs_conntrack_max",
            false,
            &[("family", "ipv6")],
            stats.conn_max6,
        );
        want
    }

    /// IPv6 services and real servers are labelled with their address alone (the port has its
    /// own label): no brackets.
    #[test]
    fn ipv6_addresses_in_labels() {
        let (mut list, stats) = sample();
        let mut v6 = list.services[0].clone();
        v6.service.addr = "2001:2::129".parse().unwrap();
        v6.reals.truncate(1);
        v6.reals[0].real.addr = "2001:2:0:1::11".parse().unwrap();
        let rport = v6.reals[0].real.port;
        list.services = vec![v6.clone()];
        list.announced = Some(vec![v6.service.addr]);
        let text = render(&list, &stats);
        let proto = proto_name(v6.service.proto);
        let vport = v6.service.port;
        assert!(
            text.contains(&format!(
                "{{proto=\"{proto}\",vip=\"2001:2::129\",vport=\"{vport}\",real=\"2001:2:0:1::11\",rport=\"{rport}\","
            )),
            "{text}"
        );
        assert!(
            text.contains("xvs_vip_announced{vip=\"2001:2::129\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn announced_vips_are_a_gauge_per_vip_only_with_announcements() {
        let (mut list, stats) = sample();
        assert!(!render(&list, &stats).contains("xvs_vip_announced"));
        let vips: Vec<std::net::IpAddr> = list.services.iter().map(|s| s.service.addr).collect();
        list.announced = Some(vec![vips[0]]);
        let text = render(&list, &stats);
        assert!(text.contains("# TYPE xvs_vip_announced gauge"), "{text}");
        assert!(
            text.contains(&format!("xvs_vip_announced{{vip=\"{}\"}} 1\n", vips[0])),
            "{text}"
        );
        list.announced = Some(Vec::new());
        let text = render(&list, &stats);
        assert!(
            text.contains(&format!("xvs_vip_announced{{vip=\"{}\"}} 0\n", vips[0])),
            "{text}"
        );
    }

    #[test]
    fn render_parses_to_exactly_the_expected_samples() {
        let (list, stats) = sample();
        let text = render(&list, &stats);
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        let mut got = BTreeMap::new();
        for s in &scrape.samples {
            let (counter, v) = match s.value {
                prometheus_parse::Value::Counter(v) => (true, v),
                prometheus_parse::Value::Gauge(v) => (false, v),
                ref other => panic!("{}: unexpected {other:?}", s.metric),
            };
            let labels: Vec<(&str, &str)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let k = key(&s.metric, &labels);
            assert!(
                got.insert(k, (counter, v as u64)).is_none(),
                "{} twice",
                s.metric
            );
            assert!(
                scrape.docs.contains_key(&s.metric),
                "{} has no HELP",
                s.metric
            );
        }
        let want = expected();
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{k:?} in:\n{text}");
        }
        for k in got.keys() {
            assert!(want.contains_key(k), "unexpected {k:?} in:\n{text}");
        }
        // Spot checks of the mapping, by hand.
        let down = key(
            "xvs_real_up",
            &[
                ("proto", "tcp"),
                ("vip", "198.18.0.129"),
                ("vport", "80"),
                ("real", "198.19.0.137"),
                ("rport", "8080"),
                ("method", "fullnat"),
            ],
        );
        assert_eq!(got[&down], (false, 0));
        assert!(text.contains(
            "xvs_worker_dropped_packets_total{worker=\"1\",reason=\"no_local_port\"} 2\n"
        ));
        assert!(text.contains(
            "xvs_real_connections_total{proto=\"udp\",vip=\"198.18.0.129\",vport=\"53\",real=\"198.19.0.148\",rport=\"53\",method=\"route\"} 301\n"
        ));
        assert!(text.contains(
            "xvs_worker_dropped_packets_total{worker=\"1\",reason=\"neighbour_miss\"} 7\n"
        ));
        // The unchecked real has no health check samples, and is up.
        assert_eq!(text.matches("xvs_real_health_checks_total{").count(), 4);
        let strict = parse_strict(&text);
        assert_eq!(strict.len(), want.len());
    }

    /// (metric name, labels with their values unescaped, value).
    type StrictSample = (String, Vec<(String, String)>, u64);

    /// A strict reader of the text format (0.0.4) for what render writes: every family opened
    /// once by `# HELP` then `# TYPE`, its samples right after, names and labels well-formed,
    /// label values unescaped. Returns (name, labels, value) per sample.
    fn parse_strict(text: &str) -> Vec<StrictSample> {
        let valid_name = |n: &str| {
            !n.is_empty()
                && n.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                })
        };
        assert!(text.ends_with('\n'));
        let mut seen = BTreeSet::new();
        let mut family: Option<(String, String)> = None;
        let mut samples = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect(line);
                assert!(valid_name(name) && name.starts_with("xvs_"), "{line}");
                assert!(!help.is_empty() && !help.contains('\\'), "{line}");
                assert!(seen.insert(name.to_string()), "{name} opened twice");
                let ty = lines.next().expect("TYPE after HELP");
                let kind = ty
                    .strip_prefix(&format!("# TYPE {name} "))
                    .unwrap_or_else(|| panic!("{ty} after {line}"));
                assert!(kind == "counter" || kind == "gauge", "{ty}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                family = Some((name.to_string(), kind.to_string()));
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let (name, _) = family.as_ref().expect("sample before any family");
            let rest = line
                .strip_prefix(name.as_str())
                .unwrap_or_else(|| panic!("{line} in {name}"));
            let mut labels = Vec::new();
            let rest = if let Some(mut l) = rest.strip_prefix('{') {
                loop {
                    let (k, after) = l.split_once("=\"").expect(line);
                    assert!(valid_name(k), "{line}");
                    let mut value = String::new();
                    let mut chars = after.char_indices();
                    let end = loop {
                        match chars.next().expect(line) {
                            (_, '\\') => match chars.next().expect(line).1 {
                                '\\' => value.push('\\'),
                                '"' => value.push('"'),
                                'n' => value.push('\n'),
                                c => panic!("bad escape \\{c} in {line}"),
                            },
                            (i, '"') => break i,
                            (_, c) => value.push(c),
                        }
                    };
                    labels.push((k.to_string(), value));
                    l = &after[end + 1..];
                    if let Some(next) = l.strip_prefix(',') {
                        l = next;
                    } else {
                        break l.strip_prefix('}').expect(line);
                    }
                }
            } else {
                rest
            };
            let value = rest
                .strip_prefix(' ')
                .expect(line)
                .parse::<u64>()
                .expect(line);
            samples.push((name.clone(), labels, value));
        }
        samples
    }

    #[test]
    fn label_values_are_escaped() {
        let (list, mut stats) = sample();
        let weird = "a\"b\\c\nd}e,f=g";
        stats.workers[0].drops.insert(weird.to_string(), 42);
        let text = render(&list, &stats);
        assert!(text.contains(r#"reason="a\"b\\c\nd}e,f=g"} 42"#), "{text}");
        let samples = parse_strict(&text);
        assert!(samples.iter().any(
            |(name, labels, v)| name == "xvs_worker_dropped_packets_total"
                && labels.contains(&("reason".to_string(), weird.to_string()))
                && *v == 42
        ));
        let mut s = String::new();
        escape_label_value(&mut s, "plain 198.18.0.129");
        assert_eq!(s, "plain 198.18.0.129");
    }

    #[test]
    fn render_of_an_empty_daemon_is_valid() {
        let list = ListReply {
            conn_tab_size: 4096,
            conn_max: 8,
            sloppy: Default::default(),
            announced: None,
            services: vec![],
        };
        let stats = StatsReply {
            workers: vec![],
            conn_count: 0,
            conn_max: 8,
            conn_max6: 2,
        };
        let text = render(&list, &stats);
        let samples = parse_strict(&text);
        assert_eq!(
            samples,
            vec![
                ("xvs_services".to_string(), vec![], 0),
                ("xvs_conntrack_entries".to_string(), vec![], 0),
                (
                    "xvs_conntrack_max".to_string(),
                    vec![("family".to_string(), "ipv4".to_string())],
                    8
                ),
                (
                    "xvs_conntrack_max".to_string(),
                    vec![("family".to_string(), "ipv6".to_string())],
                    2
                ),
            ]
        );
    }

    #[test]
    fn listen_address_syntax() {
        assert_eq!(
            parse_listen_addr("9107").unwrap(),
            "127.0.0.1:9107".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("0.0.0.0:9107").unwrap(),
            "0.0.0.0:9107".parse().unwrap()
        );
        assert_eq!(
            parse_listen_addr("[::1]:9107").unwrap(),
            "[::1]:9107".parse().unwrap()
        );
        for bad in [
            "",
            "localhost:9107",
            "127.0.0.1",
            "127.0.0.1:99999",
            "99999",
            ":9107",
        ] {
            let e = parse_listen_addr(bad).unwrap_err();
            assert!(e.contains("ADDR:PORT"), "{bad}: {e}");
        }
    }

    /// Sends `request` and reads until the server closes: (status, head, body).
    fn http(addr: SocketAddr, request: &[u8]) -> (u16, String, String) {
        try_http(addr, request).unwrap()
    }

    fn try_http(addr: SocketAddr, request: &[u8]) -> io::Result<(u16, String, String)> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(request)?;
        let mut bytes = Vec::new();
        s.read_to_end(&mut bytes)?;
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").expect(&text);
        let status = head[9..12].parse().unwrap();
        Ok((status, format!("{head}\r\n"), body.to_string()))
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        http(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n").as_bytes(),
        )
    }

    fn server(answer: Arc<AtomicBool>) -> MetricsServer {
        let source: MetricsSource = Arc::new(move || {
            answer
                .load(Ordering::Relaxed)
                .then(|| "xvs_services 3\n".to_string())
        });
        MetricsServer::start("127.0.0.1:0".parse().unwrap(), source).unwrap()
    }

    #[test]
    fn server_answers_200_404_405_503() {
        let answer = Arc::new(AtomicBool::new(true));
        let server = server(Arc::clone(&answer));
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);

        let (status, head, body) = get(addr, "/metrics");
        assert_eq!(status, 200, "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Type: {CONTENT_TYPE}\r\n")),
            "{head}"
        );
        assert!(head.contains("\r\nContent-Length: 15\r\n"), "{head}");
        assert_eq!(body, "xvs_services 3\n");
        assert_eq!(get(addr, "/metrics?name[]=x").0, 200);
        // HTTP/1.0 and HEAD.
        let (status, _, body) = http(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
        assert_eq!((status, body.as_str()), (200, "xvs_services 3\n"));
        let (status, head, body) = http(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((status, body.as_str()), (200, ""));
        assert!(head.contains("\r\nContent-Length: 15\r\n"), "{head}");

        assert_eq!(get(addr, "/").0, 404);
        assert_eq!(get(addr, "/metricsx").0, 404);
        let (status, head, _) = http(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(status, 405);
        assert!(head.contains("\r\nAllow: GET, HEAD\r\n"), "{head}");
        assert_eq!(http(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").0, 405);

        answer.store(false, Ordering::Relaxed);
        assert_eq!(get(addr, "/metrics").0, 503);
        answer.store(true, Ordering::Relaxed);
        assert_eq!(get(addr, "/metrics").0, 200);

        // Malformed and oversized heads.
        assert_eq!(http(addr, b"\x00\x01garbage\r\n\r\n").0, 400);
        let big = format!(
            "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST_HEAD)
        );
        assert_eq!(http(addr, big.as_bytes()).0, 431);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: y\r\n"))
            .collect();
        assert_eq!(
            http(
                addr,
                format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()
            )
            .0,
            431
        );
    }

    #[test]
    fn slow_clients_stall_no_one_and_are_bounded() {
        let server = server(Arc::new(AtomicBool::new(true)));
        let addr = server.local_addr();
        // Clients that send half a request and wait, up to the limit.
        let mut idle: Vec<TcpStream> = (0..MAX_CLIENTS - 1)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /metr").unwrap();
                s
            })
            .collect();
        let started = Instant::now();
        assert_eq!(get(addr, "/metrics").0, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // One more fills the table; the next connection is refused with 503.
        idle.push(TcpStream::connect(addr).unwrap());
        // (A refusal is best effort: a reset counts as one too.)
        let refused = wait_for(|| {
            try_http(addr, b"GET /metrics HTTP/1.1\r\n\r\n").map_or(true, |r| r.0 == 503)
        });
        assert!(refused, "the {}th client was not refused", MAX_CLIENTS + 1);
        // When they go, scrapes are served again.
        drop(idle);
        assert!(wait_for(|| get(addr, "/metrics").0 == 200));
    }

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn a_silent_client_times_out() {
        let server = server(Arc::new(AtomicBool::new(true)));
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(HEAD_TIMEOUT * 2)).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        // Closed without an answer once the head's deadline passes.
        assert_eq!(s.read(&mut buf).unwrap(), 0);
        let waited = started.elapsed();
        assert!(
            waited >= HEAD_TIMEOUT - Duration::from_millis(100),
            "{waited:?}"
        );
        assert!(waited < HEAD_TIMEOUT + Duration::from_secs(2), "{waited:?}");
    }

    #[test]
    fn drop_stops_the_server_promptly() {
        let server = server(Arc::new(AtomicBool::new(true)));
        let addr = server.local_addr();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /").unwrap();
        assert_eq!(get(addr, "/metrics").0, 200);
        let started = Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // The idle client was cut off and the port is closed.
        idle.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut buf = [0u8; 16];
        assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn an_address_in_use_is_an_error() {
        let server = server(Arc::new(AtomicBool::new(true)));
        let source: MetricsSource = Arc::new(|| None);
        let e = MetricsServer::start(server.local_addr(), source)
            .err()
            .expect("second bind");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
