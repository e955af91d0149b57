//! [`Netlink`] against the real kernel, in two private network namespaces joined by a veth
//! pair (198.18.5.0/24 only). Needs root and iproute2; skipped with a message otherwise.

use super::*;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const A_IF: &str = "xnla";
const B_IF: &str = "xnlb";
/// A static entry an operator made: must survive resolve/manage/unmanage.
const PERM: &str = "198.18.5.9";
const PERM_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, deleted in Drop (also when a test panics).
struct Namespaces {
    a: String,
    b: String,
}

impl Namespaces {
    fn new() -> Namespaces {
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

#[test]
fn netlink_in_namespaces() {
    if !is_root() || Command::new("ip").arg("-V").output().is_err() {
        eprintln!("skipping netlink_in_namespaces: needs root and iproute2");
        return;
    }
    let ns = Namespaces::new();
    let (a_index, a_mac) = ip_link(&ns.a, A_IF);
    let (_, b_mac) = ip_link(&ns.b, B_IF);
    let a = ns.a.clone();
    let run = std::thread::spawn(move || {
        let f = File::open(format!("/run/netns/{a}")).unwrap();
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        in_namespace_a(&a, a_index, a_mac, b_mac);
    });
    if let Err(panic) = run.join() {
        std::panic::resume_unwind(panic); // `ns` is dropped while unwinding
    }
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
