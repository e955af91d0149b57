//! bird2 in the scale-out test bed ([`crate::topology::TopologySpec::scale_out`]) and in
//! docs/scale-out.md: the configuration of a director's bird (learning the VIP routes of
//! `xvsd --announce`, announcing them over BGP with BFD) and of the router's (ECMP into the
//! kernel), and running an instance inside a namespace of a [`Topology`].
//!
//! Each instance has its own configuration, control socket and log in the topology's work
//! directory, runs in the foreground (`bird -f`) as a process the topology owns, and so is
//! killed with it on every exit path.

use crate::topology::Topology;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directors' AS (all of them: equal AS paths are what lets the router merge their routes).
pub const DIRECTOR_AS: u32 = 65001;
/// The router's AS.
pub const ROUTER_AS: u32 = 65000;
/// BFD's interval; a peer is down after 3 missed packets.
pub const BFD_INTERVAL_MS: u32 = 100;
/// How long bird may take to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A director's bird: imports the VIP routes xvsd keeps in `table` (through `learn`; they
/// vanish with xvsd) and exports exactly those to the router, with itself as next hop.
/// `local` is its address on `iface`, the segment it shares with `router`.
pub fn director_config(local: Ipv4Addr, iface: &str, router: Ipv4Addr, table: u32) -> String {
    let bfd = bfd_section(iface);
    format!(
        r#"router id {local};

protocol device {{ }}

# The VIPs xvsd can serve: routes it keeps in table {table} through its own device.
protocol kernel xvs_vips {{
    kernel table {table};
    learn;                      # import routes bird did not make itself
    ipv4 {{ import all; export none; }};
}}

{bfd}
protocol bgp uplink {{
    local {local} as {DIRECTOR_AS};
    neighbor {router} as {ROUTER_AS};
    bfd on;
    ipv4 {{
        import none;
        export where proto = "xvs_vips";
        next hop self;
    }};
}}
"#
    )
}

/// The router's bird: one BGP session per director, and every equal route merged into one
/// multipath route in the kernel (which hashes flows over them by
/// `fib_multipath_hash_policy`).
pub fn router_config(local: Ipv4Addr, iface: &str, directors: &[Ipv4Addr]) -> String {
    let mut sessions = String::new();
    for (i, d) in directors.iter().enumerate() {
        sessions.push_str(&format!(
            "protocol bgp director{i} from directors {{ neighbor {d} as {DIRECTOR_AS}; }}\n"
        ));
    }
    let bfd = bfd_section(iface);
    format!(
        r#"router id {local};

protocol device {{ }}

protocol kernel {{
    merge paths on;             # ECMP: one route, a next hop per director
    ipv4 {{ import none; export all; }};
}}

{bfd}
template bgp directors {{
    local {local} as {ROUTER_AS};
    bfd on;
    ipv4 {{ import all; export none; }};
}}

{sessions}"#
    )
}

/// BFD on `iface` at [`BFD_INTERVAL_MS`]: the same on both ends of a session.
fn bfd_section(iface: &str) -> String {
    format!(
        r#"protocol bfd {{
    interface "{iface}" {{
        min rx interval {BFD_INTERVAL_MS} ms; min tx interval {BFD_INTERVAL_MS} ms; multiplier 3;
    }};
}}
"#
    )
}

/// A bird running in one of a topology's namespaces.
pub struct Bird {
    ns: String,
    socket: PathBuf,
    log: PathBuf,
}

impl Bird {
    /// Writes `config` (logging to its own file) and starts bird with it in `ns`; returns once
    /// its control socket answers.
    pub fn start(topology: &mut Topology, ns: &str, name: &str, config: &str) -> Result<Bird> {
        let dir = topology.work_dir().to_path_buf();
        let conf = dir.join(format!("bird-{name}.conf"));
        let log = dir.join(format!("bird-{name}.log"));
        let socket = dir.join(format!("bird-{name}.ctl"));
        let text = format!("log \"{}\" all;\n{config}", log.display());
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let bird = which("bird").context("bird not found (Debian package bird2)")?;
        let pid_file = dir.join(format!("bird-{name}.pid"));
        // Parse only first: a mistake is an error with bird's own message.
        topology
            .run_in(
                ns,
                &[&bird.to_string_lossy(), "-p", "-c", &conf.to_string_lossy()],
            )
            .with_context(|| format!("bird {name}'s configuration {}", conf.display()))?;
        topology.spawn_in(
            ns,
            &[
                &bird.to_string_lossy(),
                "-f",
                "-c",
                &conf.to_string_lossy(),
                "-s",
                &socket.to_string_lossy(),
                "-P",
                &pid_file.to_string_lossy(),
            ],
        )?;
        let bird = Bird {
            ns: ns.to_string(),
            socket,
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while bird.birdc(topology, &["show", "status"]).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "bird {name} did not open {} within {START_TIMEOUT:?}; its log:\n{}",
                    bird.socket.display(),
                    bird.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bird)
    }

    /// Its control socket (what `xvsd --announce bird:SOCKET` names).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `birdc -s SOCKET ARGS...` in its namespace.
    pub fn birdc(&self, topology: &Topology, args: &[&str]) -> Result<String> {
        let birdc = which("birdc").context("birdc not found (Debian package bird2)")?;
        let (birdc, socket) = (birdc.to_string_lossy(), self.socket.to_string_lossy());
        let mut full = vec![&*birdc, "-s", &*socket];
        full.extend_from_slice(args);
        topology.run_in_timeout(&self.ns, &full, Duration::from_secs(5))
    }

    /// Waits until every protocol named is up (BGP: Established).
    pub fn wait_up(
        &self,
        topology: &Topology,
        protocols: &[&str],
        timeout: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.birdc(topology, &["show", "protocols"])?;
            let up = |p: &&str| {
                status
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(p) && l.contains(" up "))
            };
            if protocols.iter().all(up) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("bird protocols {protocols:?} not all up within {timeout:?}:\n{status}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What bird logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The path of bird's program `name`, if installed.
fn which(name: &str) -> Option<PathBuf> {
    Some(crate::topology::tool(name)).filter(|p| p.is_absolute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_director_exports_only_what_xvsd_announces() {
        let conf = director_config(
            Ipv4Addr::new(198, 19, 0, 152),
            "int0",
            Ipv4Addr::new(198, 19, 0, 1),
            100,
        );
        for needle in [
            "kernel table 100;",
            "learn;",
            "export where proto = \"xvs_vips\";",
            "neighbor 198.19.0.1 as 65000;",
            "bfd on;",
        ] {
            assert!(conf.contains(needle), "{needle} in\n{conf}");
        }
    }

    #[test]
    fn the_router_has_a_session_per_director_and_merges_paths() {
        let directors = [
            Ipv4Addr::new(198, 19, 0, 152),
            Ipv4Addr::new(198, 19, 0, 153),
        ];
        let conf = router_config(Ipv4Addr::new(198, 19, 0, 1), "br0", &directors);
        assert!(conf.contains("merge paths on;"));
        assert!(conf
            .contains("protocol bgp director1 from directors { neighbor 198.19.0.153 as 65001; }"));
        assert_eq!(conf.matches("protocol bgp director").count(), 2);
    }
}
