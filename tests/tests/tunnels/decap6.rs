//! A real server's end of IPv6 tunnels, in user space, for the IPv6 tunnelling test: this
//! machine's kernel is built without ip6tnl, fou and ip6gre (CONFIG_IPV6_TUNNEL,
//! CONFIG_NET_FOU and CONFIG_IPV6_GRE unset, no modules), and the IPv4 test's XDP stand-in
//! (`xvs-bench agent decap`) takes IPv4 only.
//!
//! The real server's own kernel does all it can of what its tunnel devices would: its stack
//! receives the outer IPv6 packet (a raw socket for next header 41, IPv6 in IPv6, and one for
//! 47, GRE; a UDP socket on the GUE port which, like `fou`'s, accepts a zero checksum,
//! `UDP_NO_CHECK6_RX` (RFC 6936), and verifies any other), and the inner packet goes back into
//! its stack through a TUN device, as out of `ip6tnl0`: checked again there (TCP/UDP checksums
//! included) and delivered to nginx on VIP6, which the real server holds on its loopback. In
//! between, [`decapsulate`] checks and strips what `fou` and `ip6gre` would: the GUE header
//! (variant 0, no options or flags, protocol 41) and the GRE header (version 0, no key or
//! sequence number, protocol type 0x86dd, its checksum when present). Only tunnels from the
//! director's address are taken.

use anyhow::{bail, ensure, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use xvs_control::topology::Topology;

/// The TUN device the inner packets enter the real server's stack by.
const TUN: &str = "xvsdecap6";
const PROTO_IPV6: i32 = 41;
const PROTO_GRE: i32 = 47;

/// What one real server took out of its tunnels, by encapsulation, and what it refused.
#[derive(Debug, Default)]
pub struct Counts {
    pub ip6ip6: AtomicU64,
    pub gue: AtomicU64,
    pub gre: AtomicU64,
    pub refused: AtomicU64,
}

/// The encapsulations, as [`decapsulate`] takes them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encap {
    Ip6ip6,
    Gue,
    Gre,
}

/// One real server's decapsulator: a thread in its network namespace until [`Drop`] (or its
/// time limit).
pub struct Decapsulator {
    pub counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Decapsulator {
    /// Starts one in `topo`'s namespace `ns` for tunnels from `director`, GUE on `gue_port`,
    /// for at most `limit`; returns once its sockets are open and its TUN device is up.
    pub fn start(
        topo: &Topology,
        ns: &str,
        director: Ipv6Addr,
        gue_port: u16,
        limit: Duration,
    ) -> Result<Decapsulator> {
        let path = format!("/run/netns/{ns}");
        let netns = File::open(&path).with_context(|| format!("opening {path}"))?;
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, opened) = mpsc::sync_channel(1);
        let thread = {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            std::thread::spawn(move || -> Result<()> {
                // SAFETY: setns on a valid namespace descriptor affects only this thread, which
                // lives in it until it returns.
                if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let e = std::io::Error::last_os_error();
                    let _ = ready.send(Err(anyhow::anyhow!("setns: {e}")));
                    return Err(e.into());
                }
                let endpoint = match Endpoint::open(gue_port) {
                    Ok(endpoint) => {
                        let _ = ready.send(Ok(()));
                        endpoint
                    }
                    Err(e) => {
                        let _ = ready.send(Err(anyhow::anyhow!("{e:#}")));
                        return Err(e);
                    }
                };
                endpoint.run(director, &counts, &stop, Instant::now() + limit)
            })
        };
        let mut decapsulator = Decapsulator {
            counts,
            stop,
            thread: Some(thread),
        };
        match opened.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.context(format!("decapsulator in {ns}"))),
            Err(_) => {
                let failure = decapsulator.finish().err();
                bail!("the decapsulator in {ns} did not start: {failure:?}");
            }
        }
        topo.run_in(ns, &["ip", "link", "set", TUN, "up"])?;
        Ok(decapsulator)
    }

    /// Stops the thread; the error that ended it early, if one did.
    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => bail!("the decapsulator thread panicked"),
            None => Ok(()),
        }
    }

    /// Stops it and reports whether it ran to the end without an error.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }
}

impl Drop for Decapsulator {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The sockets and the TUN device of one real server's tunnel end.
struct Endpoint {
    ip6ip6: OwnedFd,
    gre: OwnedFd,
    gue: UdpSocket,
    tun: File,
}

impl Endpoint {
    /// Opens them in the calling thread's network namespace.
    fn open(gue_port: u16) -> Result<Endpoint> {
        let tun = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun")?;
        // SAFETY: an all-zero ifreq is valid; the name (with its NUL) fits IFNAMSIZ.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in ifr.ifr_name.iter_mut().zip(TUN.bytes()) {
            *dst = src as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes the ifreq passed, which outlives the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } != 0 {
            return Err(std::io::Error::last_os_error()).context("creating the TUN device");
        }
        let gue = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, gue_port)).context("binding GUE")?;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket and a c_int option of the size given.
        let set = unsafe {
            libc::setsockopt(
                gue.as_raw_fd(),
                libc::SOL_UDP,
                libc::UDP_NO_CHECK6_RX,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error()).context("UDP_NO_CHECK6_RX");
        }
        gue.set_nonblocking(true)?;
        Ok(Endpoint {
            ip6ip6: raw_socket(PROTO_IPV6)?,
            gre: raw_socket(PROTO_GRE)?,
            gue,
            tun,
        })
    }

    /// Decapsulates what arrives from `director` into the TUN device until `stop` or
    /// `deadline`.
    fn run(
        mut self,
        director: Ipv6Addr,
        counts: &Counts,
        stop: &AtomicBool,
        deadline: Instant,
    ) -> Result<()> {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let mut fds = [
                self.ip6ip6.as_raw_fd(),
                self.gre.as_raw_fd(),
                self.gue.as_raw_fd(),
            ]
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: `fds` is an array of valid pollfds of the length given.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) } < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("poll");
            }
            for (i, encap) in [Encap::Ip6ip6, Encap::Gre, Encap::Gue]
                .into_iter()
                .enumerate()
            {
                if fds[i].revents == 0 {
                    continue;
                }
                // What is queued now, bounded: the others get their turn.
                for _ in 0..64 {
                    let Some((from, len)) = self.receive(encap, &mut buf)? else {
                        break;
                    };
                    let counter = match encap {
                        Encap::Ip6ip6 => &counts.ip6ip6,
                        Encap::Gue => &counts.gue,
                        Encap::Gre => &counts.gre,
                    };
                    match decapsulate(encap, &buf[..len]) {
                        Some(inner) if from == director => {
                            // A full TUN queue drops, as a device would.
                            let _ = self.tun.write(inner);
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One datagram of `encap`'s socket into `buf`, if one is queued: its source and length
    /// (a raw IPv6 socket gives what follows the IPv6 header).
    fn receive(&self, encap: Encap, buf: &mut [u8]) -> Result<Option<(Ipv6Addr, usize)>> {
        if encap == Encap::Gue {
            return match self.gue.recv_from(buf) {
                Ok((len, SocketAddr::V6(from))) => Ok(Some((*from.ip(), len))),
                Ok((_, SocketAddr::V4(_))) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
                Err(e) => Err(e).context("receiving GUE"),
            };
        }
        let fd = match encap {
            Encap::Gre => &self.gre,
            _ => &self.ip6ip6,
        };
        // SAFETY: an all-zero sockaddr_in6 is valid.
        let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        // SAFETY: `buf` and `from` are writable for the lengths given.
        let len = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_in6).cast(),
                &mut from_len,
            )
        };
        if len < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e).context("receiving from a raw socket"),
            };
        }
        Ok(Some((Ipv6Addr::from(from.sin6_addr.s6_addr), len as usize)))
    }
}

/// A raw IPv6 socket for next header `protocol`: the kernel delivers it every packet of that
/// protocol to the namespace's addresses (and, with no handler of its own, answers none).
fn raw_socket(protocol: i32) -> Result<OwnedFd> {
    // SAFETY: plain socket creation; the descriptor is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET6,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    ensure!(
        fd >= 0,
        "raw socket for protocol {protocol}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The IPv6 packet `payload` (what follows the outer IPv6 header, or for GUE the UDP payload)
/// carries by `encap`, if its headers are what xvs sends and the kernel's devices accept.
fn decapsulate(encap: Encap, payload: &[u8]) -> Option<&[u8]> {
    let inner = match encap {
        Encap::Ip6ip6 => payload,
        // Variant 0, no options (hlen 0), protocol 41, no flags.
        Encap::Gue => payload.strip_prefix(&[0, PROTO_IPV6 as u8, 0, 0])?,
        Encap::Gre => {
            let (flags, rest) = payload.split_first()?;
            let rest = rest.strip_prefix(&[0, 0x86, 0xdd])?;
            match flags {
                0 => rest,
                // The checksum over the GRE header and payload (RFC 2784), then 2 reserved bytes.
                0x80 if ones_complement_sum(payload) == 0xffff => rest.get(4..)?,
                _ => return None,
            }
        }
    };
    (inner.first()? >> 4 == 6).then_some(inner)
}

/// The RFC 1071 sum of `data`, folded: 0xffff over data that includes its correct checksum.
fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[test]
fn gue_and_gre_headers_are_checked() {
    let inner = [0x60, 0, 0, 0];
    let gue = [&[0, 41, 0, 0][..], &inner].concat();
    assert_eq!(decapsulate(Encap::Gue, &gue), Some(&inner[..]));
    assert_eq!(
        decapsulate(Encap::Gue, &[&[0, 4, 0, 0][..], &inner].concat()),
        None
    );
    let gre = [&[0, 0, 0x86, 0xdd][..], &inner].concat();
    assert_eq!(decapsulate(Encap::Gre, &gre), Some(&inner[..]));
    let mut summed = [&[0x80, 0, 0x86, 0xdd, 0, 0, 0, 0][..], &inner].concat();
    let sum = !ones_complement_sum(&summed);
    summed[4..6].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(decapsulate(Encap::Gre, &summed), Some(&inner[..]));
    summed[5] ^= 1;
    assert_eq!(decapsulate(Encap::Gre, &summed), None, "a wrong checksum");
    assert_eq!(decapsulate(Encap::Ip6ip6, &[0x45, 0]), None, "not IPv6");
}
