//! xvs-control: everything that is not the packet path.
//!
//! - [`protocol`]: the versioned JSON protocol spoken over the control socket.
//! - [`client`]: a blocking client for that socket (used by `xvsadm`, tests and the demo).
//! - [`ipvsadm`]: ipvsadm's argument syntax and output formats, mapped onto the protocol.
//! - [`config_file`]: `xvsd --config`, the saved configuration loaded at start and on SIGHUP.
//! - [`apply`]: validates commands against the running configuration and publishes snapshots.
//! - [`server`]: the control thread serving the Unix socket.
//! - [`metrics`]: `xvsd --metrics`, the Prometheus endpoint.
//! - [`estimator`]: IPVS's rate estimator for `--rate`.
//! - [`health`]: health checks of real servers (TCP connect, HTTP GET) and their rise/fall state.
//! - [`daemon`]: `xvsd` itself: interfaces, XDP programs, workers, signals.
//! - [`announce`]: `xvsd --announce`, servable VIPs handed to a BGP daemon (scale-out).
//! - [`privileges`]: `xvsd --drop-privileges`, capabilities kept after start-up.
//! - [`topology`]: namespace test beds (the seed cluster) used by `xvsd demo`, tests and bench.
//! - [`bird`]: bird2 configurations and instances of the scale-out test bed.
//! - [`capture`]: `xvsadm capture`: the capture stream and its output formats.
//! - [`director`]: xvsd as a child process in a namespace (demo, tests, bench).
//! - [`demo`]: `xvsd demo`.

pub mod announce;
pub mod apply;
pub mod bird;
pub mod capture;
pub mod client;
pub mod config_file;
pub mod daemon;
pub mod demo;
pub mod director;
pub mod estimator;
pub mod health;
pub mod ipvsadm;
pub mod metrics;
pub mod monitor;
pub mod napi_tuning;
pub mod netdev;
pub mod privileges;
pub mod protocol;
pub mod server;
pub mod topology;
