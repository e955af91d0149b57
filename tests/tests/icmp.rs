//! ICMP errors through the director, checked by the end hosts' own kernels: a client learns
//! "connection refused" from a real server's port unreachable, and a real server learns the
//! path MTU from a client-side "fragmentation needed". Both only happen if the director
//! translates the errors (VIP <-> RIP, in the outer header and in the quote).

use anyhow::{bail, ensure, Context, Result};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use xvs_tests::{root_or_skip, wait_until, Cluster};

/// A UDP service whose real servers have no listener: they answer "port unreachable".
const CLOSED_UDP_PORT: u16 = 5399;
const PMTU: u16 = 1300;

#[test]
fn port_unreachable_from_a_real_server_refuses_the_clients_connected_socket() -> Result<()> {
    if !root_or_skip("port_unreachable_from_a_real_server_refuses_the_clients_connected_socket") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2eicmpu", 1, &[])?;
    cluster.configure("-u", CLOSED_UDP_PORT)?;
    let target = format!("UDP4:{}:{CLOSED_UDP_PORT}", cluster.topo.vip());
    // socat's socket is connected to VIP:port: the kernel reports the error to it only if the
    // ICMP error comes from the VIP and quotes CIP:cport -> VIP:port. Without it socat waits
    // 2 s for an answer and exits quietly. Tried a few times in case one error is lost.
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let out = cluster.topo.run_in_timeout(
            cluster.topo.client_ns(),
            &["sh", "-c", &format!("echo ping | socat -t2 -T2 - {target}")],
            Duration::from_secs(10),
        );
        let refused = matches!(&out, Err(e) if format!("{e:#}").contains("Connection refused"));
        outcomes.push(format!("{out:?}"));
        if refused {
            return Ok(());
        }
    }
    bail!(
        "the client never saw \"Connection refused\": {outcomes:#?}\nxvsd log:\n{}",
        cluster.director.log()
    )
}

#[test]
fn frag_needed_from_the_client_side_teaches_the_real_server_the_path_mtu() -> Result<()> {
    if !root_or_skip("frag_needed_from_the_client_side_teaches_the_real_server_the_path_mtu") {
        return Ok(());
    }
    let cluster = Cluster::start("xvse2eicmpm", 1, &[])?;
    cluster.configure("-t", 80)?;
    let vip = cluster.topo.vip();
    let client = cluster.topo.client_addr();
    let route_mtus = |c: &Cluster| -> Result<Vec<String>> {
        (0..c.topo.reals().len())
            .map(|i| {
                c.topo.run_in(
                    c.topo.real_ns(i),
                    &["ip", "route", "get", &client.to_string()],
                )
            })
            .collect()
    };
    let learned = |routes: &[String]| routes.iter().any(|r| r.contains(&format!("mtu {PMTU}")));
    ensure!(
        !learned(&route_mtus(&cluster)?),
        "a real server knew the PMTU before"
    );

    // In the client namespace: an idle connection to the VIP, and the "fragmentation needed"
    // a router on the client's side would send about the server's next segment.
    let ns = cluster.topo.client_ns().to_string();
    let (stream, icmp, message) = in_netns(&ns, move || -> Result<_> {
        let capture = raw_socket(libc::IPPROTO_TCP)?;
        let stream = TcpStream::connect_timeout(&SocketAddrV4::new(vip, 80).into(), secs(5))?;
        let cport = stream.local_addr()?.port();
        let isn = syn_ack_seq(&capture, vip, cport)?;
        // The real server has sent nothing since its SYN-ACK: its next sequence number is the
        // only one its TCP accepts in an error (snd_una <= seq <= snd_nxt).
        let quote = quoted_segment(vip, 80, client, cport, isn.wrapping_add(1));
        // The socket stays in the client namespace whichever thread uses it.
        Ok((
            stream,
            raw_socket(libc::IPPROTO_ICMP)?,
            frag_needed(PMTU, &quote),
        ))
    })??;

    // ICMP is unreliable: the error is sent again, up to 5 times, until a server learned it.
    let mut routes = Vec::new();
    let mut ok = false;
    for _ in 0..5 {
        send_to(&icmp, &message, vip)?;
        ok = wait_until(secs(2), || {
            routes = route_mtus(&cluster).unwrap_or_default();
            learned(&routes)
        });
        if ok {
            break;
        }
    }
    drop(stream);
    ensure!(
        ok,
        "no real server learned mtu {PMTU} towards {client}: {routes:#?}\nxvsd log:\n{}",
        cluster.director.log()
    );
    Ok(())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs `f` on a thread that has joined network namespace `ns` (network namespaces are per
/// thread), so sockets it opens live there.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::spawn(move || {
        // Safety: setns on a valid namespace fd changes only this thread's network namespace.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

/// A raw IPv4 socket for `protocol` with a 1 s receive timeout.
fn raw_socket(protocol: i32) -> Result<OwnedFd> {
    // Safety: plain socket(2); the fd is owned from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, protocol) };
    ensure!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
    // Safety: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let timeout = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // Safety: the option value is a timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    ensure!(rc == 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
    Ok(fd)
}

/// The sequence number of the SYN-ACK from `vip`:80 to `cport`, read from a raw TCP socket
/// opened before the connection (at most 5 s, 1000 packets).
fn syn_ack_seq(capture: &OwnedFd, vip: Ipv4Addr, cport: u16) -> Result<u32> {
    let deadline = Instant::now() + secs(5);
    let mut buf = [0u8; 2048];
    for _ in 0..1000 {
        if Instant::now() > deadline {
            break;
        }
        // Safety: buf is writable for its length.
        let n = unsafe { libc::recv(capture.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 40 {
            continue;
        }
        let ip = &buf[..n as usize];
        let tcp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
        if src == vip && port(0) == 80 && port(2) == cport && tcp[13] & 0x12 == 0x12 {
            return Ok(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]));
        }
    }
    bail!("no SYN-ACK from {vip}:80 to port {cport} seen")
}

/// The first 40 bytes of a 1500-byte segment `src:sport -> dst:dport` with sequence `seq`, DF
/// set, as an ICMP error quotes it.
fn quoted_segment(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, seq: u32) -> Vec<u8> {
    let mut q = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 63, 6, 0, 0];
    q.extend_from_slice(&src.octets());
    q.extend_from_slice(&dst.octets());
    let sum = checksum(&q);
    q[10..12].copy_from_slice(&sum.to_be_bytes());
    q.extend_from_slice(&sport.to_be_bytes());
    q.extend_from_slice(&dport.to_be_bytes());
    q.extend_from_slice(&seq.to_be_bytes());
    // ack 0, offset 5, ACK, window 502, checksum and urgent pointer 0 (never verified).
    q.extend_from_slice(&[0, 0, 0, 0, 0x50, 0x10, 0x01, 0xf6, 0, 0, 0, 0]);
    q
}

/// ICMP destination unreachable, fragmentation needed (RFC 1191), next-hop MTU `mtu`.
fn frag_needed(mtu: u16, quote: &[u8]) -> Vec<u8> {
    let mut m = vec![3, 4, 0, 0, 0, 0];
    m.extend_from_slice(&mtu.to_be_bytes());
    m.extend_from_slice(quote);
    let sum = checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn send_to(socket: &OwnedFd, message: &[u8], dst: Ipv4Addr) -> Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(dst).to_be(),
        },
        sin_zero: [0; 8],
    };
    // Safety: message and addr are valid for the lengths passed.
    let n = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    ensure!(
        n == message.len() as isize,
        "sendto: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// RFC 1071 Internet checksum.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
