//! Scale-out: three directors behind a router's ECMP, each announcing the VIP over BGP
//! through its own bird2 (`xvsd --announce`), direct routing to three nginx real servers,
//! clients from 30 source addresses (the rig of docs/scale-out.md,
//! [`TopologySpec::scale_out`]). `mh` and `--sloppy-tcp` let a flow that the router moves to
//! another director keep its real server.
//!
//! One test walks the whole timeline, since each step needs the rig of the one before:
//! traffic spreads over the directors; a director is SIGKILLed in the middle of 30 long
//! downloads, which all complete intact while new connections keep succeeding; it starts
//! again and re-announces, again in the middle of 30 downloads; a real server fails its
//! health check and no director chooses it; with every real server down the VIP is withdrawn;
//! a director that drops off the network is taken out by BFD. Each step prints its timing.
//!
//! Another walks the same rig in both families: an IPv6 service beside the IPv4 one, IPv6
//! BGP sessions beside the IPv4 ones, the router's IPv6 ECMP route over the directors' DIP6s,
//! and a SIGKILLed director's IPv6 next hop withdrawn while new IPv6 connections all succeed.

use anyhow::{bail, ensure, Context, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xvs_control::announce::DEFAULT_TABLE;
use xvs_control::bird::{self, Bird, Speaker};
use xvs_control::director::{find_binary, DirectorProcess};
use xvs_control::protocol::{Command, HealthState, ListReply, Reply};
use xvs_control::topology::{
    big_file_bytes, ipv6_of, Topology, TopologySpec, BIG_FILE_PATH, BRIDGE, INT_IF, LONG_PREFIX,
    ROUTER,
};
use xvs_tests::{root_or_skip, wait_until};

const DIRECTORS: usize = 3;
/// The director that is killed and started again.
const VICTIM: usize = 1;
const DOWNLOADS: usize = 30;
/// Generous: a SYN lost to a dying director is sent again after 1 s, 3 s, ...
const SHORT_TIMEOUT: &str = "10";

/// Everything the test started; field order is drop order (xvsd before its namespaces).
struct Rig {
    /// Behind locks: directors stop and start while requests run in another thread.
    directors: Vec<Mutex<Option<DirectorProcess>>>,
    birds: Vec<Bird>,
    router: Bird,
    topo: Topology,
    xvsd: PathBuf,
    config: PathBuf,
}

/// `ADDR:PORT`, IPv6 addresses in brackets (ipvsadm's syntax).
fn endpoint(addr: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(addr, port).to_string()
}

/// A service on `vip`:80 to every real server (their addresses of `vip`'s family), `mh`,
/// health-checked every 0.5 s: what every director's configuration file holds.
fn dr_service(vip: IpAddr, topo: &Topology) -> String {
    let service = endpoint(vip, 80);
    let mut text =
        format!("-A -t {service} -s mh --check tcp --check-interval 0.5 --check-timeout 0.4\n");
    for real in topo.reals() {
        let addr = match vip {
            IpAddr::V4(_) => IpAddr::V4(real.addr),
            IpAddr::V6(_) => IpAddr::V6(ipv6_of(real.addr)),
        };
        text.push_str(&format!("-a -t {service} -r {} -g\n", endpoint(addr, 80)));
    }
    text
}

impl Rig {
    /// The IPv4 rig: three directors, the IPv4 VIP.
    fn start() -> Result<Rig> {
        let spec = TopologySpec {
            prefix: "xvse2escale".into(),
            ..TopologySpec::scale_out(DIRECTORS)
        };
        Rig::start_with(&spec, |topo| dr_service(topo.vip().into(), topo))
    }

    /// Builds `spec` with its web servers, a bird on the router and on each director (with an
    /// IPv6 session beside the IPv4 one when `spec` is dual-stack), waits for every session,
    /// and starts xvsd on each director with the configuration `services` writes.
    fn start_with(spec: &TopologySpec, services: impl Fn(&Topology) -> String) -> Result<Rig> {
        let mut topo = Topology::build(spec)?;
        topo.start_web_servers()?;
        let speaker = |v4: Ipv4Addr| match spec.dual_stack {
            true => Speaker::dual_stack(v4, ipv6_of(v4)),
            false => Speaker::from(v4),
        };
        let dips: Vec<Speaker> = (0..spec.directors)
            .map(|i| speaker(topo.dip_of(i)))
            .collect();
        let sw = topo.sw_ns().to_string();
        let router = Bird::start(
            &mut topo,
            &sw,
            "router",
            &bird::router_config(speaker(ROUTER), BRIDGE, &dips),
        )?;
        let mut birds = Vec::new();
        for (i, dip) in dips.iter().enumerate() {
            let ns = topo.director_ns_of(i).to_string();
            let config = bird::director_config(*dip, INT_IF, speaker(ROUTER), DEFAULT_TABLE);
            birds.push(Bird::start(
                &mut topo,
                &ns,
                &format!("director{i}"),
                &config,
            )?);
        }
        let mut sessions: Vec<String> = (0..spec.directors)
            .map(|i| format!("director{i}"))
            .collect();
        if spec.dual_stack {
            sessions.extend((0..spec.directors).map(|i| format!("director{i}v6")));
        }
        let sessions: Vec<&str> = sessions.iter().map(String::as_str).collect();
        router.wait_up(&topo, &sessions, Duration::from_secs(30))?;

        // The same configuration on every director.
        let config = topo.work_dir().join("xvs.conf");
        std::fs::write(&config, services(&topo))?;
        let mut rig = Rig {
            directors: Vec::new(),
            birds,
            router,
            topo,
            xvsd: find_binary("xvsd")?,
            config,
        };
        for i in 0..spec.directors {
            let director = rig.start_director(i)?;
            rig.directors.push(Mutex::new(Some(director)));
        }
        Ok(rig)
    }

    fn start_director(&self, i: usize) -> Result<DirectorProcess> {
        let announce = format!("bird:{}", self.birds[i].socket().display());
        let config = self.config.to_string_lossy();
        DirectorProcess::start_on(
            &self.topo,
            i,
            &self.xvsd,
            &["--config", &config, "--sloppy-tcp", "--announce", &announce],
        )
    }

    /// SIGKILLs director `i`'s xvsd.
    fn kill(&self, i: usize) -> Result<()> {
        let mut director = self.directors[i].lock().unwrap();
        director.as_mut().context("not running")?.kill9()?;
        *director = None;
        Ok(())
    }

    /// Starts director `i`'s xvsd again.
    fn restart(&self, i: usize) -> Result<()> {
        let director = self.start_director(i)?;
        *self.directors[i].lock().unwrap() = Some(director);
        Ok(())
    }

    /// The next hops of the router's route to `vip`, either family (none when it has no
    /// route).
    fn next_hops(&self, vip: IpAddr) -> Result<Vec<IpAddr>> {
        let host = match vip {
            IpAddr::V4(_) => format!("{vip}/32"),
            IpAddr::V6(_) => format!("{vip}/128"),
        };
        let family = if vip.is_ipv4() { "-4" } else { "-6" };
        let routes = self
            .topo
            .run_in(self.topo.sw_ns(), &["ip", family, "route", "show", &host])?;
        let mut hops: Vec<IpAddr> = routes
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "via")
            .filter_map(|w| w[1].parse().ok())
            .collect();
        hops.sort();
        Ok(hops)
    }

    /// Waits until the router's next hops for the IPv4 VIP are exactly the DIPs of
    /// `directors`; returns how long that took.
    fn wait_next_hops(&self, directors: &[usize], timeout: Duration) -> Result<Duration> {
        self.wait_next_hops_of(self.topo.vip().into(), directors, timeout)
    }

    /// Waits until the router's next hops for `vip` are exactly the DIPs of `directors` in
    /// `vip`'s family (DIP6s for an IPv6 VIP); returns how long that took.
    fn wait_next_hops_of(
        &self,
        vip: IpAddr,
        directors: &[usize],
        timeout: Duration,
    ) -> Result<Duration> {
        let dip = |i: usize| -> IpAddr {
            match vip {
                IpAddr::V4(_) => self.topo.dip_of(i).into(),
                IpAddr::V6(_) => ipv6_of(self.topo.dip_of(i)).into(),
            }
        };
        let mut want: Vec<IpAddr> = directors.iter().map(|&i| dip(i)).collect();
        want.sort();
        let start = Instant::now();
        loop {
            let hops = self.next_hops(vip)?;
            if hops == want {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!(
                    "the router's next hops for {vip} are {hops:?}, not {want:?}, after {timeout:?}; router's bird:\n{}",
                    self.router.birdc(&self.topo, &["show", "route", "all"]).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// `curl http://VIP{path}` from client address `from`, to the VIP of `from`'s family.
    fn curl(&self, from: impl Into<IpAddr>, path: &str) -> Result<String> {
        let from = from.into();
        let vip: IpAddr = match from {
            IpAddr::V4(_) => self.topo.vip().into(),
            IpAddr::V6(_) => self.topo.vip6().into(),
        };
        let url = format!("http://{}{path}", endpoint(vip, 80));
        let from = from.to_string();
        self.topo.run_in(
            self.topo.client_ns(),
            &[
                "curl",
                "-g",
                "-sS",
                "--fail",
                "--max-time",
                SHORT_TIMEOUT,
                "--interface",
                &from,
                &url,
            ],
        )
    }

    /// Director `i`'s `ipvsadm -L` as data.
    fn list(&self, i: usize) -> Result<ListReply> {
        let director = self.directors[i].lock().unwrap();
        let director = director.as_ref().context("not running")?;
        match director.client()?.call(Command::List)? {
            Reply::List(list) => Ok(list),
            other => bail!("not a list reply: {other:?}"),
        }
    }

    /// Connections director `i` scheduled since it started.
    fn scheduled(&self, i: usize) -> Result<u64> {
        self.scheduled_to(i, |_| true)
    }

    /// Connections director `i` scheduled since it started to the services of VIPs `vip`
    /// accepts.
    fn scheduled_to(&self, i: usize, vip: impl Fn(IpAddr) -> bool) -> Result<u64> {
        let list = self.list(i)?;
        Ok(list
            .services
            .iter()
            .filter(|s| vip(s.service.addr))
            .map(|s| s.stats.conns)
            .sum())
    }

    /// Established connections of director `i` (ipvsadm's ActiveConn).
    fn active(&self, i: usize) -> Result<u64> {
        let list = self.list(i)?;
        Ok(list
            .services
            .iter()
            .flat_map(|s| &s.reals)
            .map(|r| r.active_conns)
            .sum())
    }

    /// Starts one long download (~10 s) from each client address.
    fn start_downloads(&self, tag: &str) -> Result<Vec<Download>> {
        let url = format!("http://{}{LONG_PREFIX}{BIG_FILE_PATH}", self.topo.vip());
        let mut downloads = Vec::new();
        for (n, from) in self.topo.client_addrs().iter().take(DOWNLOADS).enumerate() {
            let out = self.topo.work_dir().join(format!("{tag}-{n}.bin"));
            let child = self
                .topo
                .command_in(self.topo.client_ns(), "curl")
                .args(["-sS", "--fail", "--max-time", "60", "--interface"])
                .arg(from.to_string())
                .arg("-o")
                .arg(&out)
                .arg(&url)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting curl")?;
            downloads.push(Download {
                child: Some(child),
                out,
                from: *from,
            });
        }
        Ok(downloads)
    }

    /// Short requests from each of `addrs` in turn until `stop`; counts failures.
    fn keep_connecting(
        &self,
        addrs: &[IpAddr],
        stop: &AtomicBool,
        done: &AtomicUsize,
        failed: &AtomicUsize,
    ) {
        for from in addrs.iter().cycle() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            match self.curl(*from, "/") {
                Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    eprintln!("new connection from {from} failed: {e:#}");
                    failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One curl saving a long download.
struct Download {
    child: Option<Child>,
    out: PathBuf,
    from: Ipv4Addr,
}

impl Download {
    fn finish(&mut self, deadline: Instant) -> Result<()> {
        let mut child = self.child.take().context("finished twice")?;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the download from {} did not finish in time", self.from);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr)?;
        }
        ensure!(
            status.success(),
            "the download from {} failed ({status}): {}",
            self.from,
            stderr.trim()
        );
        let body = std::fs::read(&self.out)?;
        ensure!(
            body == big_file_bytes(),
            "the download from {} differs from the file ({} bytes)",
            self.from,
            body.len()
        );
        Ok(())
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for every download; all must be intact.
fn finish_all(downloads: &mut [Download]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let failures: Vec<String> = downloads
        .iter_mut()
        .filter_map(|d| d.finish(deadline).err().map(|e| format!("{e:#}")))
        .collect();
    ensure!(
        failures.is_empty(),
        "{} of {DOWNLOADS} downloads broke:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// Runs `during` while short connections are opened in the background from the client's IPv4
/// addresses; all must succeed.
fn with_new_connections<T>(rig: &Rig, during: impl FnOnce() -> Result<T>) -> Result<T> {
    let addrs: Vec<IpAddr> = rig
        .topo
        .client_addrs()
        .into_iter()
        .map(IpAddr::V4)
        .collect();
    with_new_connections_from(rig, &addrs, during)
}

/// Runs `during` while short connections are opened in the background from each of `addrs`
/// in turn; all must succeed.
fn with_new_connections_from<T>(
    rig: &Rig,
    addrs: &[IpAddr],
    during: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let (stop, done, failed) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let result = std::thread::scope(|s| {
        s.spawn(|| rig.keep_connecting(addrs, &stop, &done, &failed));
        let result = during();
        stop.store(true, Ordering::Relaxed);
        result
    })?;
    let (done, failed) = (done.into_inner(), failed.into_inner());
    ensure!(
        failed == 0 && done > 0,
        "new connections meanwhile: {done} succeeded, {failed} failed"
    );
    eprintln!("{done} new connections meanwhile, all answered");
    Ok(result)
}

#[test]
fn directors_behind_ecmp_lose_no_connection() -> Result<()> {
    if !root_or_skip("directors_behind_ecmp_lose_no_connection") {
        return Ok(());
    }
    let mut rig = Rig::start()?;
    let all: Vec<usize> = (0..DIRECTORS).collect();
    rig.wait_next_hops(&all, Duration::from_secs(20))?;
    let vip = format!("{}/32", rig.topo.vip());
    let route = rig
        .topo
        .run_in(rig.topo.sw_ns(), &["ip", "route", "show", &vip])?;
    eprintln!("the router's route:\n{}", route.trim_end());

    // 1. Traffic spreads over all three directors.
    for from in rig.topo.client_addrs() {
        rig.curl(from, "/")?;
    }
    let spread: Vec<u64> = (0..DIRECTORS)
        .map(|i| rig.scheduled(i))
        .collect::<Result<_>>()?;
    eprintln!("connections per director: {spread:?}");
    ensure!(
        spread.iter().all(|&n| n > 0),
        "a director got no connection: {spread:?}"
    );

    // 2. SIGKILL a director in the middle of 30 long downloads.
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != VICTIM).collect();
    let mut downloads = rig.start_downloads("kill")?;
    ensure!(
        wait_until(Duration::from_secs(5), || rig.active(VICTIM).unwrap_or(0)
            > 0),
        "no download went through director {VICTIM}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let carried = rig.active(VICTIM)?;
    with_new_connections(&rig, || {
        rig.kill(VICTIM)?;
        let withdrawn = rig.wait_next_hops(&others, Duration::from_secs(10))?;
        eprintln!(
            "director {VICTIM} (carrying {carried} connections) SIGKILLed: the router stopped sending to it after {} ms",
            withdrawn.as_millis()
        );
        finish_all(&mut downloads)
    })?;

    // 3. It starts again and re-announces, again in the middle of 30 downloads.
    let mut downloads = rig.start_downloads("restart")?;
    std::thread::sleep(Duration::from_secs(2));
    with_new_connections(&rig, || {
        let started = Instant::now();
        rig.restart(VICTIM)?;
        rig.wait_next_hops(&all, Duration::from_secs(10))?;
        eprintln!(
            "director {VICTIM} started again: announced after {} ms",
            started.elapsed().as_millis()
        );
        finish_all(&mut downloads)
    })?;
    let taken_over = rig.scheduled(VICTIM)?;
    ensure!(
        taken_over > 0,
        "the restarted director carried nothing (no flow moved back to it?)"
    );

    // 4. A real server fails its health check: no director chooses it.
    let failed_real = 2;
    let failed_addr = rig.topo.reals()[failed_real].addr;
    rig.topo.kill_web_server(failed_real)?;
    for i in 0..DIRECTORS {
        let down = wait_until(Duration::from_secs(10), || {
            let state = || -> Result<bool> {
                let list = rig.list(i)?;
                Ok(list.services[0].reals.iter().any(|r| {
                    r.real.addr == failed_addr
                        && r.health
                            .as_ref()
                            .is_some_and(|h| h.state == HealthState::Down)
                }))
            };
            state().unwrap_or(false)
        });
        ensure!(down, "director {i} never saw {failed_addr} down");
    }
    let failed_page = &rig.topo.reals()[failed_real].page;
    for from in rig.topo.client_addrs() {
        let page = rig.curl(from, "/")?;
        ensure!(
            !page.contains(failed_page.as_str()),
            "a request from {from} went to the failed server {failed_addr}"
        );
    }
    // Still announced: two servers are left.
    rig.wait_next_hops(&all, Duration::from_secs(1))?;

    // 5. With no real server left, every director withdraws the VIP; one back, all announce.
    for i in 0..rig.topo.reals().len() {
        if i != failed_real {
            rig.topo.kill_web_server(i)?;
        }
    }
    let withdrawn = rig.wait_next_hops(&[], Duration::from_secs(15))?;
    eprintln!(
        "every real server down: the VIP withdrawn after {} ms",
        withdrawn.as_millis()
    );
    rig.topo.restart_web_server(0)?;
    let back = rig.wait_next_hops(&all, Duration::from_secs(15))?;
    eprintln!(
        "a real server back: the VIP announced after {} ms",
        back.as_millis()
    );
    let page = rig.curl(rig.topo.client_addr(), "/")?;
    ensure!(
        page.contains(rig.topo.reals()[0].page.as_str()),
        "answered by {page:?}"
    );

    // 6. A director that vanishes from the network, as a machine that dies does (no TCP FIN
    // closes its BGP session): BFD tells the router.
    let lost = DIRECTORS - 1;
    let remaining: Vec<usize> = all.iter().copied().filter(|&i| i != lost).collect();
    with_new_connections(&rig, || {
        let ns = rig.topo.director_ns_of(lost).to_string();
        rig.topo
            .run_in(&ns, &["ip", "link", "set", INT_IF, "down"])?;
        let gone = rig.wait_next_hops(&remaining, Duration::from_secs(10))?;
        eprintln!(
            "director {lost} lost its link: BFD took it out of the router's route after {} ms",
            gone.as_millis()
        );
        Ok(())
    })
}

/// Both families behind ECMP: an IPv6 DR service beside the IPv4 one on three directors of the
/// dual-stack rig. Each xvsd announces VIP6 as a /128 in the same table, each bird exports it
/// over its IPv6 session, and the router installs an IPv6 multipath route over the DIP6s;
/// IPv6 flows spread over the directors; a SIGKILLed director leaves both routes while every
/// new IPv6 connection meanwhile is answered.
#[test]
fn ipv6_vips_behind_ecmp() -> Result<()> {
    if !root_or_skip("ipv6_vips_behind_ecmp") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2escale6".into(),
        dual_stack: true,
        ..TopologySpec::scale_out(DIRECTORS)
    };
    let rig = Rig::start_with(&spec, |topo| {
        dr_service(topo.vip().into(), topo) + &dr_service(topo.vip6().into(), topo)
    })?;
    let (vip, vip6) = (IpAddr::V4(rig.topo.vip()), IpAddr::V6(rig.topo.vip6()));
    let all: Vec<usize> = (0..DIRECTORS).collect();
    rig.wait_next_hops_of(vip6, &all, Duration::from_secs(20))?;
    rig.wait_next_hops_of(vip, &all, Duration::from_secs(20))?;
    let host6 = format!("{vip6}/128");
    let route = rig
        .topo
        .run_in(rig.topo.sw_ns(), &["ip", "-6", "route", "show", &host6])?;
    eprintln!("the router's IPv6 route:\n{}", route.trim_end());
    for i in 0..DIRECTORS {
        let announced = rig.list(i)?.announced;
        ensure!(
            announced == Some(vec![vip, vip6]),
            "director {i} lists {announced:?} as announced"
        );
    }
    // On a director: VIP6/128 in the announcement table, learned by bird's IPv6 kernel
    // protocol, through a device without any address.
    let ns = rig.topo.director_ns();
    let table = DEFAULT_TABLE.to_string();
    let routes = rig
        .topo
        .run_in(ns, &["ip", "-6", "route", "show", "table", &table])?;
    ensure!(
        routes.starts_with(&format!("{vip6} dev xvs-vips proto static")),
        "{routes}"
    );
    let learned = rig.birds[0].birdc(&rig.topo, &["show", "route", "protocol", "xvs_vips6"])?;
    ensure!(learned.contains(&host6), "{learned}");
    let device = rig.topo.run_in(ns, &["ip", "addr", "show", "xvs-vips"])?;
    ensure!(!device.contains("inet"), "{device}");

    // 1. IPv6 flows spread over all three directors, each answered by a real server.
    let clients6: Vec<IpAddr> = rig
        .topo
        .client_addrs()
        .into_iter()
        .map(|a| IpAddr::V6(ipv6_of(a)))
        .collect();
    let pages: Vec<&str> = rig.topo.reals().iter().map(|r| r.page.as_str()).collect();
    for from in &clients6 {
        let page = rig.curl(*from, "/")?;
        ensure!(
            pages.contains(&page.trim_end()),
            "{from} got {page:?}, not a real server's page"
        );
    }
    let spread: Vec<u64> = (0..DIRECTORS)
        .map(|i| rig.scheduled_to(i, |a| a.is_ipv6()))
        .collect::<Result<_>>()?;
    eprintln!("IPv6 connections per director: {spread:?}");
    ensure!(
        spread.iter().all(|&n| n > 0),
        "a director got no IPv6 connection: {spread:?}"
    );

    // 2. SIGKILL a director while new IPv6 connections keep coming: its next hop leaves the
    // router's IPv6 route (and the IPv4 one), and every connection is answered.
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != VICTIM).collect();
    with_new_connections_from(&rig, &clients6, || {
        // Connections before, across and after the kill.
        std::thread::sleep(Duration::from_secs(1));
        rig.kill(VICTIM)?;
        let withdrawn = rig.wait_next_hops_of(vip6, &others, Duration::from_secs(10))?;
        eprintln!(
            "director {VICTIM} SIGKILLed: the router's IPv6 route dropped it after {} ms",
            withdrawn.as_millis()
        );
        rig.wait_next_hops_of(vip, &others, Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_secs(2));
        Ok(())
    })?;

    // 3. Every client address still gets answers over IPv6, from the two directors left.
    let before: Vec<u64> = others
        .iter()
        .map(|&i| rig.scheduled_to(i, |a| a.is_ipv6()))
        .collect::<Result<_>>()?;
    for from in &clients6 {
        rig.curl(*from, "/")
            .with_context(|| format!("after the kill, from {from}"))?;
    }
    let after: Vec<u64> = others
        .iter()
        .map(|&i| rig.scheduled_to(i, |a| a.is_ipv6()))
        .collect::<Result<_>>()?;
    let carried: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b))
        .sum();
    ensure!(
        carried >= clients6.len() as u64,
        "the directors left scheduled {carried} of {} IPv6 connections",
        clients6.len()
    );
    Ok(())
}

/// The routes `ip route show table TABLE` lists in director 0's namespace; none when the
/// kernel has no such table (it makes one on its first route).
fn announced_routes(topo: &Topology, table: &str) -> Result<String> {
    let show = ["ip", "-4", "route", "show", "table", table];
    match topo.run_in(topo.director_ns(), &show) {
        Err(e) if format!("{e:#}").contains("FIB table does not exist") => Ok(String::new()),
        r => r,
    }
}

/// What one director announces, checked without a router: bird learns the routes xvsd keeps
/// in its table; bad announcement settings stop xvsd at start and a reload, changing nothing;
/// the policy follows the real servers' weights; SIGKILL takes everything away.
#[test]
fn announcements_follow_the_configuration_and_the_process() -> Result<()> {
    if !root_or_skip("announcements_follow_the_configuration_and_the_process") {
        return Ok(());
    }
    let spec = TopologySpec {
        prefix: "xvse2eannounce".into(),
        ..TopologySpec::scale_out(1)
    };
    let mut topo = Topology::build(&spec)?;
    topo.start_web_servers()?;
    let ns = topo.director_ns().to_string();
    let bird_config = bird::director_config(topo.dip(), INT_IF, ROUTER, 200);
    let bird = Bird::start(&mut topo, &ns, "director", &bird_config)?;
    let xvsd = find_binary("xvsd")?;
    let xvsadm = find_binary("xvsadm")?;
    let vip = topo.vip();
    let service = format!("{vip}:80");
    let config = topo.work_dir().join("xvs.conf");
    let mut text = format!("-A -t {service} -s mh\n");
    for real in topo.reals() {
        text.push_str(&format!("-a -t {service} -r {}:80 -g\n", real.addr));
    }
    std::fs::write(&config, &text)?;
    let config_arg = config.to_string_lossy().into_owned();
    let socket = format!("bird:{}", bird.socket().display());
    let vip_arg = vip.to_string();
    let start = |announce: &str, extra: &[&str]| {
        let mut args = vec!["--config", &config_arg, "--announce", announce];
        args.extend_from_slice(&["--announce-table", "200"]);
        args.extend_from_slice(extra);
        DirectorProcess::start_on(&topo, 0, &xvsd, &args)
    };
    let untouched = |what: &str| -> Result<()> {
        let links = topo.run_in(&ns, &["ip", "link", "show"])?;
        ensure!(
            !links.contains("xvs-vips") && !links.contains("xdp"),
            "{what} left something behind:\n{links}"
        );
        ensure!(
            announced_routes(&topo, "200")?.is_empty(),
            "{what}: routes left"
        );
        Ok(())
    };

    // A daemon socket that does not exist, or a VIP that is not configured: a clear error at
    // start, and nothing changed.
    let missing = "bird:/nonexistent/xvs-test/bird.ctl";
    let error = format!(
        "{:#}",
        start(missing, &[]).err().context("started without bird")?
    );
    ensure!(error.contains("/nonexistent/xvs-test/bird.ctl"), "{error}");
    untouched("a missing daemon socket")?;
    let error = format!(
        "{:#}",
        start(&socket, &["--announce-vip", "198.18.0.99"])
            .err()
            .context("started with an unconfigured VIP")?
    );
    ensure!(
        error.contains("198.18.0.99") && error.contains("no virtual service"),
        "{error}"
    );
    untouched("an unconfigured VIP")?;

    // Announced: the route in table 200 through xvsd's device, learned by bird.
    let mut director = start(
        &socket,
        &["--announce-vip", &vip_arg, "--announce-min-servers", "2"],
    )?;
    let route = format!("{vip} dev xvs-vips");
    let learned = || {
        bird.birdc(&topo, &["show", "route", "protocol", "xvs_vips"])
            .is_ok_and(|r| r.contains(&format!("{vip}/32")))
    };
    ensure!(
        wait_until(Duration::from_secs(5), || announced_routes(&topo, "200")
            .is_ok_and(|r| r.contains(&route))
            && learned()),
        "not announced: {:?}\n{}",
        announced_routes(&topo, "200"),
        director.log()
    );

    let listed = |director: &DirectorProcess| -> Result<Option<Vec<std::net::IpAddr>>> {
        match director.client()?.call(Command::List)? {
            Reply::List(list) => Ok(list.announced),
            other => bail!("not a list reply: {other:?}"),
        }
    };
    ensure!(
        listed(&director)? == Some(vec![vip.into()]),
        "{:?}",
        listed(&director)
    );

    // A reload whose configuration lacks the announced VIP is refused whole.
    std::fs::write(&config, text.replace(&vip_arg, "198.18.0.130"))?;
    // SAFETY: kill(2) on the xvsd we started.
    unsafe { libc::kill(director.pid().context("xvsd runs")? as i32, libc::SIGHUP) };
    ensure!(
        wait_until(Duration::from_secs(5), || director
            .log()
            .contains("the running configuration is unchanged")),
        "no refusal logged:\n{}",
        director.log()
    );
    ensure!(
        director.log().contains("198.18.0.129"),
        "{}",
        director.log()
    );
    let listing = director.xvsadm(&xvsadm, &["-Ln"])?;
    ensure!(listing.contains(&service), "{listing}");
    ensure!(announced_routes(&topo, "200")?.contains(&route));

    // --announce-min-servers 2: two of three servers at weight 0 withdraw the VIP; one back
    // announces it again.
    let reals: Vec<String> = topo
        .reals()
        .iter()
        .map(|r| format!("{}:80", r.addr))
        .collect();
    for real in &reals[..2] {
        director.xvsadm(
            &xvsadm,
            &["-e", "-t", &service, "-r", real, "-g", "-w", "0"],
        )?;
    }
    ensure!(
        wait_until(Duration::from_secs(5), || announced_routes(&topo, "200")
            .is_ok_and(|r| r.is_empty())
            && !learned()),
        "still announced with one server available"
    );
    ensure!(
        listed(&director)? == Some(vec![]),
        "{:?}",
        listed(&director)
    );
    director.xvsadm(
        &xvsadm,
        &["-e", "-t", &service, "-r", &reals[0], "-g", "-w", "1"],
    )?;
    ensure!(
        wait_until(Duration::from_secs(5), || announced_routes(&topo, "200")
            .is_ok_and(|r| r.contains(&route))),
        "not announced again with two servers available"
    );

    // SIGKILL: the device, its routes and bird's copy go with the process.
    let killed = Instant::now();
    director.kill9()?;
    ensure!(
        wait_until(Duration::from_secs(5), || !learned()),
        "bird still has the VIP after xvsd died"
    );
    eprintln!(
        "xvsd SIGKILLed: bird dropped the VIP after {} ms",
        killed.elapsed().as_millis()
    );
    untouched("SIGKILL")
}
