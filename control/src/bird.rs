//! bird2 in the scale-out test bed ([`crate::topology::TopologySpec::scale_out`]) and in
//! docs/scale-out.md: the configuration of a director's bird (learning the VIP routes of
//! `xvsd --announce`, announcing them over BGP with BFD) and of the router's (ECMP into the
//! kernel), and running an instance inside a namespace of a [`Topology`].
//!
//! Both families: xvsd keeps IPv4 and IPv6 VIP routes in the same table number, and each
//! family has a `protocol kernel` of its own on both ends (bird binds one channel to a kernel
//! protocol). IPv6 routes travel over IPv6 BGP sessions of their own, between the director's
//! and the router's IPv6 addresses, each with BFD, rather than as a second (MP-BGP) channel of
//! the IPv4 session: each family's next hop is then its session's own address (an IPv6
//! channel of an IPv4 session has none, and would advertise the interface's preferred IPv6
//! address or one set by hand, FullNAT local addresses living beside the DIP6), and the router
//! stops sending a family to a director whose addresses of that family stop answering, which
//! one IPv4 session's liveness cannot vouch for. The cost is a second session and BFD session
//! per director.
//!
//! Each instance has its own configuration, control socket and log in the topology's work
//! directory, runs in the foreground (`bird -f`) as a process the topology owns, and so is
//! killed with it on every exit path.

use crate::topology::Topology;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, Ipv6Addr};
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

/// A BGP speaker's addresses on the segment directors and router share: its IPv4 address
/// (also its router id), and its IPv6 one where the segment is dual-stack. Two speakers that
/// both have an IPv6 address get an IPv6 session beside the IPv4 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaker {
    pub ipv4: Ipv4Addr,
    pub ipv6: Option<Ipv6Addr>,
}

impl Speaker {
    pub fn dual_stack(ipv4: Ipv4Addr, ipv6: Ipv6Addr) -> Self {
        Speaker {
            ipv4,
            ipv6: Some(ipv6),
        }
    }
}

impl From<Ipv4Addr> for Speaker {
    fn from(ipv4: Ipv4Addr) -> Self {
        Speaker { ipv4, ipv6: None }
    }
}

/// A director's bird: imports the VIP routes xvsd keeps in `table`, both families (through
/// `learn`; they vanish with xvsd), and exports exactly those to the router, with itself as
/// next hop: IPv4 ones over the IPv4 session, IPv6 ones over the IPv6 session when both ends
/// have IPv6 addresses (module doc). `local` is its address on `iface`, the segment it shares
/// with `router`.
pub fn director_config(
    local: impl Into<Speaker>,
    iface: &str,
    router: impl Into<Speaker>,
    table: u32,
) -> String {
    let (local, router) = (local.into(), router.into());
    let id = local.ipv4;
    let bfd = bfd_section(iface);
    let uplink = uplink_session("uplink", local.ipv4, router.ipv4, "ipv4", "xvs_vips");
    let uplink6 = match (local.ipv6, router.ipv6) {
        (Some(l), Some(r)) => format!(
            "\n# IPv6 VIPs over a session between IPv6 addresses: their next hop is this one,\n\
             # and BFD checks the IPv6 path itself.{}",
            uplink_session("uplink6", l, r, "ipv6", "xvs_vips6")
        ),
        _ => String::new(),
    };
    format!(
        r#"router id {id};

protocol device {{ }}

# The VIPs xvsd can serve: routes it keeps in table {table} through its own device, one
# kernel protocol per family.
protocol kernel xvs_vips {{
    kernel table {table};
    learn;                      # import routes bird did not make itself
    ipv4 {{ import all; export none; }};
}}

protocol kernel xvs_vips6 {{
    kernel table {table};
    learn;
    ipv6 {{ import all; export none; }};
}}

{bfd}{uplink}{uplink6}"#
    )
}

/// A director's session `name` to the router for one family, exporting what the kernel
/// protocol `learned_by` imported.
fn uplink_session(
    name: &str,
    local: impl std::fmt::Display,
    router: impl std::fmt::Display,
    family: &str,
    learned_by: &str,
) -> String {
    format!(
        r#"
protocol bgp {name} {{
    local {local} as {DIRECTOR_AS};
    neighbor {router} as {ROUTER_AS};
    bfd on;
    {family} {{
        import none;
        export where proto = "{learned_by}";
        next hop self;
    }};
}}
"#
    )
}

/// The router's bird: one BGP session per director and family, and every equal route merged
/// into one multipath route in the kernel (which hashes flows over them by
/// `fib_multipath_hash_policy`), both families. IPv6 sessions (`director{i}v6`) exist for the
/// directors that have an IPv6 address when the router has one.
pub fn router_config<D: Into<Speaker> + Copy>(
    local: impl Into<Speaker>,
    iface: &str,
    directors: &[D],
) -> String {
    let local = local.into();
    let id = local.ipv4;
    let directors: Vec<Speaker> = directors.iter().map(|&d| d.into()).collect();
    let mut sessions = String::new();
    for (i, d) in directors.iter().enumerate() {
        sessions.push_str(&format!(
            "protocol bgp director{i} from directors {{ neighbor {} as {DIRECTOR_AS}; }}\n",
            d.ipv4
        ));
    }
    let mut template6 = String::new();
    if let Some(router6) = local.ipv6 {
        template6 = format!(
            "\n# IPv6 routes come over sessions between IPv6 addresses.{}",
            directors_template("directors6", router6, "ipv6")
        );
        for (i, d) in directors.iter().enumerate() {
            if let Some(d6) = d.ipv6 {
                sessions.push_str(&format!(
                    "protocol bgp director{i}v6 from directors6 {{ neighbor {d6} as {DIRECTOR_AS}; }}\n"
                ));
            }
        }
    }
    let bfd = bfd_section(iface);
    let template = directors_template("directors", local.ipv4, "ipv4");
    format!(
        r#"router id {id};

protocol device {{ }}

protocol kernel {{
    merge paths on;             # ECMP: one route, a next hop per director
    ipv4 {{ import none; export all; }};
}}

protocol kernel {{
    merge paths on;
    ipv6 {{ import none; export all; }};
}}

{bfd}{template}{template6}
{sessions}"#
    )
}

/// The router's template `name` of its sessions to the directors in one family.
fn directors_template(name: &str, local: impl std::fmt::Display, family: &str) -> String {
    format!(
        r#"
template bgp {name} {{
    local {local} as {ROUTER_AS};
    bfd on;
    {family} {{ import all; export none; }};
}}
"#
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

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

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
        // IPv6 VIP routes are learned, but without IPv6 addresses there is no session for
        // them.
        assert!(conf.contains("protocol kernel xvs_vips6 {"), "{conf}");
        assert_eq!(conf.matches("kernel table 100;").count(), 2);
        assert_eq!(conf.matches("protocol bgp").count(), 1, "{conf}");
    }

    /// Dual stack: a second session between the IPv6 addresses carries what the IPv6 kernel
    /// protocol learned, with the director's IPv6 address as next hop.
    #[test]
    fn a_dual_stack_director_has_a_session_per_family() {
        let conf = director_config(
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 152), v6("2001:2:0:1::152")),
            "int0",
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 1), v6("2001:2:0:1::1")),
            100,
        );
        let uplink6 = &conf[conf.find("protocol bgp uplink6 {").expect(&conf)..];
        for needle in [
            "local 2001:2:0:1::152 as 65001;",
            "neighbor 2001:2:0:1::1 as 65000;",
            "bfd on;",
            "ipv6 {",
            "export where proto = \"xvs_vips6\";",
            "next hop self;",
        ] {
            assert!(uplink6.contains(needle), "{needle} in\n{uplink6}");
        }
        let uplink = &conf[conf.find("protocol bgp uplink {").expect(&conf)..];
        let uplink = &uplink[..uplink.find("\n}\n").unwrap()];
        assert!(
            uplink.contains("export where proto = \"xvs_vips\";") && !uplink.contains("ipv6"),
            "{uplink}"
        );
        assert!(conf.starts_with("router id 198.19.0.152;\n"));
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
        assert!(!conf.contains("directors6"), "{conf}");
    }

    /// Dual stack: an IPv6 session per director with an IPv6 address, and IPv6 routes merged
    /// into multipath routes as IPv4 ones are.
    #[test]
    fn a_dual_stack_router_merges_both_families() {
        let directors = [
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 152), v6("2001:2:0:1::152")),
            Speaker::from(Ipv4Addr::new(198, 19, 0, 153)),
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 154), v6("2001:2:0:1::154")),
        ];
        let router = Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 1), v6("2001:2:0:1::1"));
        let conf = router_config(router, "br0", &directors);
        let kernels: Vec<&str> = conf.split("protocol kernel {").skip(1).collect();
        assert_eq!(kernels.len(), 2, "{conf}");
        for (kernel, family) in kernels.iter().zip(["ipv4 {", "ipv6 {"]) {
            let kernel = &kernel[..kernel.find("\n}\n").unwrap()];
            assert!(
                kernel.contains("merge paths on;") && kernel.contains(family),
                "{kernel}"
            );
        }
        let template6 = &conf[conf.find("template bgp directors6 {").expect(&conf)..];
        assert!(
            template6.contains("local 2001:2:0:1::1 as 65000;"),
            "{conf}"
        );
        for session in [
            "protocol bgp director0v6 from directors6 { neighbor 2001:2:0:1::152 as 65001; }",
            "protocol bgp director2v6 from directors6 { neighbor 2001:2:0:1::154 as 65001; }",
            "protocol bgp director1 from directors { neighbor 198.19.0.153 as 65001; }",
        ] {
            assert!(conf.contains(session), "{session} in\n{conf}");
        }
        assert_eq!(conf.matches("protocol bgp director").count(), 5);
    }

    /// bird itself parses what these functions write (`bird -p`), both layouts; skipped
    /// without bird.
    #[test]
    fn bird_parses_the_generated_configurations() {
        let Some(bird) = which("bird") else {
            eprintln!("skipping: bird not installed (Debian package bird2)");
            return;
        };
        let (dip, router) = (Ipv4Addr::new(198, 19, 0, 152), Ipv4Addr::new(198, 19, 0, 1));
        let (dip6, router6) = (v6("2001:2:0:1::152"), v6("2001:2:0:1::1"));
        let dual = [Speaker::dual_stack(dip, dip6)];
        let configs = [
            director_config(dip, "int0", router, 100),
            director_config(dual[0], "int0", Speaker::dual_stack(router, router6), 1000),
            router_config(router, "br0", &[dip]),
            router_config(Speaker::dual_stack(router, router6), "br0", &dual),
        ];
        let dir = std::env::temp_dir().join(format!("xvs-bird-parse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, config) in configs.iter().enumerate() {
            let path = dir.join(format!("{i}.conf"));
            std::fs::write(&path, config).unwrap();
            let out = std::process::Command::new(&bird)
                .arg("-p")
                .arg("-c")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "bird -p refused\n{config}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What docs/scale-out.md shows is exactly what these functions write.
    #[test]
    fn the_documented_configurations_are_the_generated_ones() {
        let doc = include_str!("../../docs/scale-out.md");
        let director = director_config(
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 152), v6("2001:2:0:1::152")),
            "int0",
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 1), v6("2001:2:0:1::1")),
            100,
        );
        let dips = [152, 153, 154].map(|host| {
            let v4 = Ipv4Addr::new(198, 19, 0, host);
            Speaker::dual_stack(v4, crate::topology::ipv6_of(v4))
        });
        let router = router_config(
            Speaker::dual_stack(Ipv4Addr::new(198, 19, 0, 1), v6("2001:2:0:1::1")),
            "br0",
            &dips,
        );
        for conf in [director, router] {
            let block = format!("```text\n{conf}```\n");
            assert!(doc.contains(&block), "docs/scale-out.md lacks\n{block}");
        }
    }
}
