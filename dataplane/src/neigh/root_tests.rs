//! [`Netlink`] against the real kernel, in two private network namespaces joined by a veth
//! pair (198.18.5.0/24 and 2001:2::/48, plus link-local addresses, only). Needs root and
//! iproute2 (and IPv6 for the IPv6 test); skipped with a message otherwise.

use super::*;
use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const A_IF: &str = "xnla";
const B_IF: &str = "xnlb";
/// A static entry an operator made: must survive resolve/manage/unmanage.
const PERM: &str = "198.18.5.9";
const PERM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];
/// The IPv6 twin of [`PERM`].
const PERM6: &str = "2001:2:0:1::9";
/// Link-local addresses of A and B (B's is the link-local gateway of a route of A).
const A_LL: &str = "fe80::a";
const B_LL: &str = "fe80::b";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, deleted in Drop (also when a test panics).
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    /// Two empty namespaces joined by a veth pair, links down.
    fn pair() -> Namespaces {
        let (pid, n) = (std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let ns = Namespaces {
            a: format!("xvsnl{pid}-{n}a"),
            b: format!("xvsnl{pid}-{n}b"),
        };
        ip(&["netns", "add", &ns.a]);
        ip(&["netns", "add", &ns.b]);
        // Created inside A: nothing ever appears in the host's namespace.
        ip(&[
            "-n", &ns.a, "link", "add", A_IF, "type", "veth", "peer", "name", B_IF, "netns", &ns.b,
        ]);
        ns
    }

    /// The IPv4 setup: 198.18.5.1 in A, .2 and .3 in B, 198.19.200.0/24 via .3, PERM.
    fn new() -> Namespaces {
        let ns = Namespaces::pair();
        ip(&["-n", &ns.a, "addr", "add", "198.18.5.1/24", "dev", A_IF]);
        ip(&["-n", &ns.b, "addr", "add", "198.18.5.2/24", "dev", B_IF]);
        ip(&["-n", &ns.b, "addr", "add", "198.18.5.3/24", "dev", B_IF]);
        ip(&["-n", &ns.a, "link", "set", A_IF, "up"]);
        ip(&["-n", &ns.b, "link", "set", B_IF, "up"]);
        ip(&[
            "-n",
            &ns.a,
            "route",
            "add",
            "198.19.200.0/24",
            "via",
            "198.18.5.3",
            "dev",
            A_IF,
        ]);
        ip(&[
            "-n",
            &ns.a,
            "neigh",
            "add",
            PERM,
            "lladdr",
            "02:00:00:00:00:09",
            "dev",
            A_IF,
            "nud",
            "permanent",
        ]);
        ns
    }

    /// The IPv6 setup: 2001:2:0:1::1 in A, ::2 and ::3 in B, 2001:2:0:9::/64 via
    /// 2001:2:0:1::2, 2001:2:0:8::/64 via B's link-local address, PERM6; and 198.18.5.1 in A,
    /// .2 in B and PERM, to see both families in one dump.
    fn new6() -> Namespaces {
        let ns = Namespaces::pair();
        for (n, dev, ll) in [(&ns.a, A_IF, A_LL), (&ns.b, B_IF, B_LL)] {
            // No automatic link-local address: its DAD would keep it tentative for a second or
            // two, and the kernel sends no Neighbour Solicitation without a link-local source
            // that is not tentative. Every address skips DAD (nodad).
            ip(&["-n", n, "link", "set", "dev", dev, "addrgenmode", "none"]);
            let ll = format!("{ll}/64");
            ip(&["-n", n, "-6", "addr", "add", &ll, "dev", dev, "nodad"]);
        }
        for (n, dev, a) in [
            (&ns.a, A_IF, "2001:2:0:1::1/64"),
            (&ns.b, B_IF, "2001:2:0:1::2/64"),
            (&ns.b, B_IF, "2001:2:0:1::3/64"),
        ] {
            ip(&["-n", n, "-6", "addr", "add", a, "dev", dev, "nodad"]);
        }
        ip(&["-n", &ns.a, "addr", "add", "198.18.5.1/24", "dev", A_IF]);
        ip(&["-n", &ns.b, "addr", "add", "198.18.5.2/24", "dev", B_IF]);
        ip(&["-n", &ns.a, "link", "set", A_IF, "up"]);
        ip(&["-n", &ns.b, "link", "set", B_IF, "up"]);
        for (net, via) in [
            ("2001:2:0:9::/64", "2001:2:0:1::2"),
            ("2001:2:0:8::/64", B_LL),
        ] {
            ip(&[
                "-n", &ns.a, "-6", "route", "add", net, "via", via, "dev", A_IF,
            ]);
        }
        for perm in [PERM6, PERM] {
            ip(&[
                "-n",
                &ns.a,
                "neigh",
                "add",
                perm,
                "lladdr",
                "02:00:00:00:00:09",
                "dev",
                A_IF,
                "nud",
                "permanent",
            ]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `(ifindex, mac)` of `dev` in `ns`, as iproute2 sees it.
fn ip_link(ns: &str, dev: &str) -> (u32, [u8; 6]) {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", dev]);
    let ifindex = out.split(':').next().unwrap().trim().parse().unwrap();
    let words: Vec<&str> = out.split_whitespace().collect();
    let pos = words.iter().position(|w| *w == "link/ether").unwrap();
    (ifindex, parse_mac(words[pos + 1]))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut mac = [0; 6];
    for (b, part) in mac.iter_mut().zip(s.split(':')) {
        *b = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

fn addr(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn addr6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Polls `f` for up to 2 s.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn can_run(test: &str) -> bool {
    let ok = is_root() && Command::new("ip").arg("-V").output().is_ok();
    if !ok {
        eprintln!("skipping {test}: needs root and iproute2");
    }
    ok
}

/// Runs `body(a, a_index, a_mac, b_mac)` in a thread that entered namespace A of `ns`.
fn in_a(ns: Namespaces, body: fn(&str, u32, [u8; 6], [u8; 6])) {
    let (a_index, a_mac) = ip_link(&ns.a, A_IF);
    let (_, b_mac) = ip_link(&ns.b, B_IF);
    let a = ns.a.clone();
    let run = std::thread::spawn(move || {
        let f = File::open(format!("/run/netns/{a}")).unwrap();
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        body(&a, a_index, a_mac, b_mac);
    });
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic); // `ns` is dropped while unwinding
    }
}

#[test]
fn netlink_in_namespaces() {
    if can_run("netlink_in_namespaces") {
        in_a(Namespaces::new(), in_namespace_a);
    }
}

#[test]
fn netlink_ipv6_in_namespaces() {
    if !can_run("netlink_ipv6_in_namespaces") {
        return;
    }
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("skipping netlink_ipv6_in_namespaces: the kernel has no IPv6");
        return;
    }
    in_a(Namespaces::new6(), in_namespace_a6);
}

fn in_namespace_a(ns: &str, a_index: u32, a_mac: [u8; 6], b_mac: [u8; 6]) {
    let mut nl = Netlink::open().unwrap();
    let neigh_detail = |ip_: &str| ip(&["-n", ns, "-d", "neigh", "show", ip_, "dev", A_IF]);
    let state_of = |nl: &mut Netlink, ip_: &str| {
        let all = nl.neighbours(&[a_index]).unwrap();
        all.into_iter()
            .find(|n| n.addr == addr(ip_))
            .map(|n| (n.state, n.mac))
    };

    // link()
    let link = nl.link(A_IF).unwrap();
    assert_eq!(
        (link.ifindex, link.name.as_str(), link.mac),
        (a_index, A_IF, a_mac)
    );
    assert_eq!(link.addrs, vec![(addr("198.18.5.1"), 24)]);
    assert!(link.mtu >= 1280 && link.up, "{link:?}");
    let err = nl.link("xnl-nonexistent").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");

    // Routes and the initial misses.
    let routes = nl.routes(&[a_index]).unwrap();
    assert!(routes.contains(&Route {
        ifindex: a_index,
        dst: addr("198.18.5.0"),
        prefix_len: 24,
        gateway: None
    }));
    assert!(routes.contains(&Route {
        ifindex: a_index,
        dst: addr("198.19.200.0"),
        prefix_len: 24,
        gateway: Some(addr("198.18.5.3")),
    }));
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(t.next_hop_mac(a_index, addr(PERM)), Ok(PERM_MAC));
    let miss = |hop: &str, no_route| {
        Err(NextHopMiss {
            ifindex: a_index,
            next_hop: addr(hop),
            no_route,
        })
    };
    assert_eq!(
        t.next_hop_mac(a_index, addr("198.18.5.2")),
        miss("198.18.5.2", false)
    );
    assert_eq!(
        t.next_hop_mac(a_index, addr("198.19.200.7")),
        miss("198.18.5.3", false)
    );
    assert_eq!(
        t.next_hop_mac(a_index, addr("198.19.99.1")),
        miss("198.19.99.1", true)
    );

    // resolve(): NTF_USE creates the entry and ARPs; the peer's real MAC shows up.
    nl.resolve(a_index, addr("198.18.5.2")).unwrap();
    assert!(eventually(|| nl
        .dump(&[a_index])
        .unwrap()
        .next_hop_mac(a_index, addr("198.18.5.2"))
        == Ok(b_mac)));
    nl.resolve(a_index, addr("198.18.5.2")).unwrap(); // a resolved entry is not clobbered
    let (state, mac) = state_of(&mut nl, "198.18.5.2").unwrap();
    assert!(state & nud::USABLE != 0 && mac == b_mac, "{state:#x}");
    // The operator's PERMANENT entry is not touched (NTF_USE would strip NUD_PERMANENT).
    nl.resolve(a_index, addr(PERM)).unwrap();
    assert_eq!(state_of(&mut nl, PERM), Some((nud::PERMANENT, PERM_MAC)));

    // manage(): a managed entry for the gateway becomes REACHABLE; the gateway route resolves.
    nl.manage(a_index, addr("198.18.5.3")).unwrap();
    nl.manage(a_index, addr("198.18.5.3")).unwrap(); // idempotent
    assert!(eventually(
        || state_of(&mut nl, "198.18.5.3") == Some((nud::REACHABLE, b_mac))
    ));
    assert!(
        neigh_detail("198.18.5.3").contains(" managed "),
        "{}",
        neigh_detail("198.18.5.3")
    );
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(t.next_hop_mac(a_index, addr("198.19.200.7")), Ok(b_mac));
    // resolve() on a managed entry keeps it managed.
    nl.resolve(a_index, addr("198.18.5.3")).unwrap();
    assert!(neigh_detail("198.18.5.3").contains(" managed "));
    // An existing dynamic entry becomes managed, MAC kept.
    nl.manage(a_index, addr("198.18.5.2")).unwrap();
    let detail = neigh_detail("198.18.5.2");
    assert!(
        detail.contains(" managed ") && detail.contains(&fmt_mac(b_mac)),
        "{detail}"
    );
    // PERMANENT stays PERMANENT, unmanaged.
    nl.manage(a_index, addr(PERM)).unwrap();
    nl.unmanage(a_index, addr(PERM)).unwrap();
    assert_eq!(state_of(&mut nl, PERM), Some((nud::PERMANENT, PERM_MAC)));
    assert!(!neigh_detail(PERM).contains("managed"));

    // unmanage() removes managed entries, idempotently.
    for hop in ["198.18.5.3", "198.18.5.2"] {
        nl.unmanage(a_index, addr(hop)).unwrap();
        assert_eq!(state_of(&mut nl, hop), None, "{hop}");
        nl.unmanage(a_index, addr(hop)).unwrap();
    }

    // Kernel NACKs come back with their errno.
    let err = nl.resolve(999_999, addr("198.18.5.2")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
    let err = nl.manage(999_999, addr("198.18.5.2")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
}

fn fmt_mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn in_namespace_a6(ns: &str, a_index: u32, _a_mac: [u8; 6], b_mac: [u8; 6]) {
    let mut nl = Netlink::open().unwrap();
    let neigh_detail = |ip_: &str| ip(&["-n", ns, "-6", "-d", "neigh", "show", ip_, "dev", A_IF]);
    let state_of = |nl: &mut Netlink, ip_: &str| {
        let all = nl.neighbours6(&[a_index]).unwrap();
        all.into_iter()
            .find(|n| n.addr == addr6(ip_))
            .map(|n| (n.state, n.mac))
    };
    let miss = |hop: &str, no_route| {
        Err(NextHopMiss6 {
            ifindex: a_index,
            next_hop: addr6(hop),
            no_route,
        })
    };
    let route = |dst: &str, prefix_len, gateway: Option<&str>| Route6 {
        ifindex: a_index,
        dst: addr6(dst),
        prefix_len,
        gateway: gateway.map(addr6),
    };

    // Routes: connected (link-local too) and gateway routes of the main table; nothing of
    // table local (own addresses, ff00::/8).
    let routes = nl.routes6(&[a_index]).unwrap();
    for want in [
        route("2001:2:0:1::", 64, None),
        route("fe80::", 64, None),
        route("2001:2:0:9::", 64, Some("2001:2:0:1::2")),
        route("2001:2:0:8::", 64, Some(B_LL)),
    ] {
        assert!(routes.contains(&want), "{want:?} not in {routes:?}");
    }
    assert!(
        routes
            .iter()
            .all(|r| !r.dst.is_multicast() && r.prefix_len < 128),
        "{routes:?}"
    );
    assert!(nl
        .routes(&[a_index])
        .unwrap()
        .iter()
        .all(|r| r.prefix_len <= 32));

    // One dump, both families.
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(t.next_hop_mac_v6(a_index, addr6(PERM6)), Ok(PERM_MAC));
    assert_eq!(t.next_hop_mac(a_index, addr(PERM)), Ok(PERM_MAC));
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:1::2")),
        miss("2001:2:0:1::2", false)
    );
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:9::7")),
        miss("2001:2:0:1::2", false)
    );
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:8::7")),
        miss(B_LL, false)
    );
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:99::1")),
        miss("2001:2:0:99::1", true)
    );

    // resolve(): NTF_USE creates the entry and the kernel solicits; B's MAC shows up, for the
    // address and for the route through it.
    nl.resolve(a_index, addr6("2001:2:0:1::2")).unwrap();
    assert!(eventually(|| nl
        .dump(&[a_index])
        .unwrap()
        .next_hop_mac_v6(a_index, addr6("2001:2:0:1::2"))
        == Ok(b_mac)));
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:9::7")),
        Ok(b_mac)
    );
    nl.resolve(a_index, addr6("2001:2:0:1::2")).unwrap(); // not clobbered
    let (state, mac) = state_of(&mut nl, "2001:2:0:1::2").unwrap();
    assert!(state & nud::USABLE != 0 && mac == b_mac, "{state:#x}");
    // Sending to the solicited-node group made multicast entries; they are not next hops.
    assert!(nl
        .neighbours6(&[])
        .unwrap()
        .iter()
        .all(|n| !n.addr.is_multicast()));
    // The operator's PERMANENT entry is not touched.
    nl.resolve(a_index, IpAddr::from(addr6(PERM6))).unwrap();
    assert_eq!(state_of(&mut nl, PERM6), Some((nud::PERMANENT, PERM_MAC)));

    // The kernel's own traffic (a ping of B's link-local address) fills the entry of the
    // link-local gateway: the route through it resolves.
    let target = format!("{B_LL}%{A_IF}");
    let out = Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-6", "-c", "1", "-W", "2", &target,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(eventually(|| nl
        .dump(&[a_index])
        .unwrap()
        .next_hop_mac_v6(a_index, addr6("2001:2:0:8::7"))
        == Ok(b_mac)));
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(t.mac_v6(a_index, addr6(B_LL)), Some(b_mac));
    assert_eq!(t.mac_v6(a_index + 1, addr6(B_LL)), None);

    // manage(): a managed entry for a real server becomes REACHABLE.
    nl.manage(a_index, addr6("2001:2:0:1::3")).unwrap();
    nl.manage(a_index, addr6("2001:2:0:1::3")).unwrap(); // idempotent
    assert!(eventually(
        || state_of(&mut nl, "2001:2:0:1::3") == Some((nud::REACHABLE, b_mac))
    ));
    let detail = neigh_detail("2001:2:0:1::3");
    assert!(detail.contains(" managed "), "{detail}");
    let t = nl.dump(&[a_index]).unwrap();
    assert_eq!(
        t.next_hop_mac_v6(a_index, addr6("2001:2:0:1::3")),
        Ok(b_mac)
    );
    // resolve() on a managed entry keeps it managed.
    nl.resolve(a_index, addr6("2001:2:0:1::3")).unwrap();
    assert!(neigh_detail("2001:2:0:1::3").contains(" managed "));
    // Existing dynamic entries (a global and a link-local one) become managed, MAC kept.
    for hop in ["2001:2:0:1::2", B_LL] {
        nl.manage(a_index, addr6(hop)).unwrap();
        let detail = neigh_detail(hop);
        assert!(
            detail.contains(" managed ") && detail.contains(&fmt_mac(b_mac)),
            "{detail}"
        );
    }
    // PERMANENT stays PERMANENT, unmanaged.
    nl.manage(a_index, addr6(PERM6)).unwrap();
    nl.unmanage(a_index, addr6(PERM6)).unwrap();
    assert_eq!(state_of(&mut nl, PERM6), Some((nud::PERMANENT, PERM_MAC)));
    assert!(!neigh_detail(PERM6).contains("managed"));

    // unmanage() removes managed entries, idempotently.
    for hop in ["2001:2:0:1::3", "2001:2:0:1::2", B_LL] {
        nl.unmanage(a_index, addr6(hop)).unwrap();
        assert_eq!(state_of(&mut nl, hop), None, "{hop}");
        nl.unmanage(a_index, addr6(hop)).unwrap();
    }

    // Kernel NACKs come back with their errno.
    let err = nl.resolve(999_999, addr6("2001:2:0:1::2")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
    let err = nl.manage(999_999, addr6("2001:2:0:1::2")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
}

#[test]
fn host_routes_in_namespaces() {
    if !can_run("host_routes_in_namespaces") {
        return;
    }
    if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
        eprintln!("skipping host_routes_in_namespaces: the kernel has no IPv6");
        return;
    }
    in_a(Namespaces::new6(), in_namespace_a_routes);
}

/// The host routes of VIP announcements, both families, in a table of their own (one that
/// fits the header's byte and one that needs RTA_TABLE alone): added, replaced, deleted, and
/// deleted again.
fn in_namespace_a_routes(ns: &str, a_index: u32, _a_mac: [u8; 6], _b_mac: [u8; 6]) {
    let mut nl = Netlink::open().unwrap();
    let vip: IpAddr = "198.18.0.129".parse().unwrap();
    let vip6: IpAddr = "2001:2::129".parse().unwrap();
    for table in ["100", "1000"] {
        let t: u32 = table.parse().unwrap();
        let show = |family: &str| {
            let out = Command::new("ip")
                .args(["-n", ns, family, "route", "show", "table", table])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        for _ in 0..2 {
            nl.replace_host_route(t, vip, a_index).unwrap();
            nl.replace_host_route(t, vip6, a_index).unwrap();
        }
        assert_eq!(
            show("-4"),
            format!("198.18.0.129 dev {A_IF} proto static scope link \n")
        );
        let v6 = show("-6");
        assert!(
            v6.starts_with(&format!("2001:2::129 dev {A_IF} proto static metric 1024"))
                && v6.lines().count() == 1,
            "{v6}"
        );
        // Nothing reaches the main table.
        assert!(!ip(&["-n", ns, "route", "show"]).contains("198.18.0.129"));
        assert!(!ip(&["-n", ns, "-6", "route", "show"]).contains("2001:2::129"));
        for _ in 0..2 {
            nl.delete_host_route(t, vip, a_index).unwrap();
            nl.delete_host_route(t, vip6, a_index).unwrap();
        }
        assert_eq!((show("-4"), show("-6")), (String::new(), String::new()));
    }
    let err = nl.replace_host_route(100, vip6, 999_999).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");

    // An announcement device gets no IPv6 address of its own when it comes up.
    ip(&[
        "-n", ns, "link", "add", "xnld", "type", "veth", "peer", "name", "xnle",
    ]);
    ip(&["-n", ns, "link", "set", "xnle", "up"]);
    let (index, _) = ip_link(ns, "xnld");
    nl.set_no_ipv6_link_local(index).unwrap();
    nl.set_link_up(index).unwrap();
    nl.replace_host_route(100, vip6, index).unwrap();
    assert!(ip(&["-n", ns, "link", "show", "xnld"]).contains(",UP"));
    assert!(
        !eventually(|| ip(&["-n", ns, "-6", "addr", "show", "dev", "xnld"]).contains("inet6")),
        "{}",
        ip(&["-n", ns, "-6", "addr", "show", "dev", "xnld"])
    );
    assert!(!ip(&["-n", ns, "-6", "route", "show", "table", "all"]).contains("fe80::/64 dev xnld"));
}
