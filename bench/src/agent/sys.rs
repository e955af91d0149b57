//! The system calls the agents need beyond std: batched UDP receive/send (recvmmsg,
//! sendmmsg), socket options, an AF_PACKET socket that sends prebuilt Ethernet frames, and
//! one that receives and answers frames (the TCP responder's).

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// setsockopt(fd, level, name, &int).
pub fn set_int_opt(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a live i32 whose size we pass; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A UDP socket bound to `addr` with large kernel buffers (forced: we run as root) and a
/// receive timeout, so that loops can check their stop flag.
pub fn udp_socket(addr: SocketAddr, timeout_ms: u64) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    let fd = s.as_raw_fd();
    for (name, force) in [
        (libc::SO_RCVBUF, libc::SO_RCVBUFFORCE),
        (libc::SO_SNDBUF, libc::SO_SNDBUFFORCE),
    ] {
        if set_int_opt(fd, libc::SOL_SOCKET, force, 32 << 20).is_err() {
            set_int_opt(fd, libc::SOL_SOCKET, name, 32 << 20)?;
        }
    }
    s.set_read_timeout(Some(std::time::Duration::from_millis(timeout_ms.max(1))))?;
    Ok(s)
}

/// A socket address of either family in a `sockaddr_in6`, which is large enough for both
/// (an IPv4 one occupies its first 16 bytes as a `sockaddr_in`); and its length.
fn to_sockaddr(a: SocketAddr) -> (libc::sockaddr_in6, libc::socklen_t) {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is a valid value.
    let mut s: libc::sockaddr_in6 = unsafe { zeroed() };
    match a {
        SocketAddr::V4(a) => {
            // SAFETY: as above, for sockaddr_in.
            let mut v4: libc::sockaddr_in = unsafe { zeroed() };
            v4.sin_family = libc::AF_INET as libc::sa_family_t;
            v4.sin_port = a.port().to_be();
            v4.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            // SAFETY: a sockaddr_in (16 bytes, alignment 4) fits in the sockaddr_in6 (28
            // bytes, alignment 4) it is written to, as the kernel reads it.
            unsafe { std::ptr::write((&mut s as *mut libc::sockaddr_in6).cast(), v4) };
            (s, size_of::<libc::sockaddr_in>() as libc::socklen_t)
        }
        SocketAddr::V6(a) => {
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_addr.s6_addr = a.ip().octets();
            (s, size_of::<libc::sockaddr_in6>() as libc::socklen_t)
        }
    }
}

/// The address [`to_sockaddr`] stored, or the kernel wrote (unspecified for a family other
/// than IPv4 and IPv6).
fn from_sockaddr(s: &libc::sockaddr_in6) -> SocketAddr {
    if i32::from(s.sin6_family) == libc::AF_INET6 {
        return SocketAddrV6::new(
            Ipv6Addr::from(s.sin6_addr.s6_addr),
            u16::from_be(s.sin6_port),
            0,
            0,
        )
        .into();
    }
    if i32::from(s.sin6_family) != libc::AF_INET {
        return SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0).into();
    }
    // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
    let v4: libc::sockaddr_in = unsafe { std::ptr::read((s as *const libc::sockaddr_in6).cast()) };
    SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
        u16::from_be(v4.sin_port),
    )
    .into()
}

/// Buffers for batched I/O: `n` messages of `cap` bytes, each with a peer address (UDP) or
/// none (frames on a packet socket).
/// The headers point into the boxed buffers, which never move after construction.
pub struct Batch {
    bufs: Box<[u8]>,
    cap: usize,
    /// One `sockaddr_in6` per message, which holds an address of either family.
    addrs: Box<[libc::sockaddr_in6]>,
    iovs: Box<[libc::iovec]>,
    hdrs: Box<[libc::mmsghdr]>,
}

// SAFETY: the raw pointers inside only point into the Batch's own boxes.
unsafe impl Send for Batch {}

impl Batch {
    /// For a UDP socket: every message has a peer address.
    pub fn new(n: usize, cap: usize) -> Batch {
        Batch::build(n, cap, true)
    }

    /// For a bound [`PacketSocket`]: frames, no per-message address (the socket's interface
    /// is the destination).
    pub fn frames(n: usize, cap: usize) -> Batch {
        Batch::build(n, cap, false)
    }

    fn build(n: usize, cap: usize, addressed: bool) -> Batch {
        let mut b = Batch {
            bufs: vec![0u8; n * cap].into_boxed_slice(),
            cap,
            // SAFETY: sockaddr_in6, iovec and mmsghdr are plain old data; zero is valid.
            addrs: (0..if addressed { n } else { 0 })
                .map(|_| unsafe { zeroed() })
                .collect(),
            // SAFETY: as above.
            iovs: (0..n).map(|_| unsafe { zeroed() }).collect(),
            // SAFETY: as above.
            hdrs: (0..n).map(|_| unsafe { zeroed() }).collect(),
        };
        for i in 0..n {
            b.iovs[i].iov_base = b.bufs[i * cap..].as_mut_ptr().cast();
            b.iovs[i].iov_len = cap;
            let h = &mut b.hdrs[i].msg_hdr;
            if addressed {
                h.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_in6).cast();
                h.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
            h.msg_iov = &mut b.iovs[i];
            h.msg_iovlen = 1;
        }
        b
    }

    pub fn len(&self) -> usize {
        self.hdrs.len()
    }

    /// Message `i`'s buffer (full capacity).
    pub fn buf_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.bufs[i * self.cap..(i + 1) * self.cap]
    }

    /// Message `i` as received: its bytes (a frame, for [`Batch::frames`]).
    pub fn frame(&self, i: usize) -> &[u8] {
        let len = (self.hdrs[i].msg_len as usize).min(self.cap);
        &self.bufs[i * self.cap..i * self.cap + len]
    }

    /// Message `i` as received: its bytes and its sender (not for [`Batch::frames`]).
    pub fn received(&self, i: usize) -> (&[u8], SocketAddr) {
        (self.frame(i), from_sockaddr(&self.addrs[i]))
    }

    /// Sets message `i` up for sending `len` bytes of its buffer to `to`.
    pub fn set_send(&mut self, i: usize, len: usize, to: SocketAddr) {
        self.iovs[i].iov_len = len.min(self.cap);
        let (addr, addr_len) = to_sockaddr(to);
        self.addrs[i] = addr;
        self.hdrs[i].msg_hdr.msg_namelen = addr_len;
    }

    /// recvmmsg of up to `len()` messages (blocking until the first one or the socket's
    /// timeout); Ok(0) on timeout or interruption.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        let namelen = if self.addrs.is_empty() {
            0
        } else {
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        };
        for i in 0..self.len() {
            self.iovs[i].iov_len = self.cap;
            self.hdrs[i].msg_hdr.msg_namelen = namelen;
        }
        recv_batch(fd, &mut self.hdrs)
    }

    /// sendmmsg of messages `0..n` as set by [`Batch::set_send`]; how many went out.
    pub fn send(&mut self, fd: RawFd, n: usize) -> io::Result<usize> {
        let n = n.min(self.hdrs.len());
        send_all(fd, &mut self.hdrs[..n])
    }

    /// sendmmsg of frames `0..lens.len()`, frame `i` being the first `lens[i]` bytes of its
    /// buffer; how many went out.
    pub fn send_frames(&mut self, fd: RawFd, lens: &[usize]) -> io::Result<usize> {
        let n = lens.len().min(self.len());
        for (iov, len) in self.iovs.iter_mut().zip(&lens[..n]) {
            iov.iov_len = (*len).min(self.cap);
        }
        send_all(fd, &mut self.hdrs[..n])
    }
}

/// sendmmsg until every header is sent or an error other than EINTR; the count sent.
fn send_all(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let mut done = 0;
    while done < hdrs.len() {
        let rest = &mut hdrs[done..];
        // SAFETY: every header points to live buffers of the lengths it states.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return if done > 0 { Ok(done) } else { Err(e) };
        }
        done += n as usize;
    }
    Ok(done)
}

/// Prebuilt Ethernet frames sent in order, round and round, through an AF_PACKET socket
/// that bypasses the qdisc (as trafgen does): the cheapest way to offer many flows.
pub struct FrameRing {
    fd: OwnedFd,
    _frames: Vec<Vec<u8>>,
    _iovs: Box<[libc::iovec]>,
    addr: Box<libc::sockaddr_ll>,
    hdrs: Box<[libc::mmsghdr]>,
    next: usize,
}

// SAFETY: the raw pointers inside only point into the FrameRing's own heap data.
unsafe impl Send for FrameRing {}

impl FrameRing {
    /// Opens a send-only packet socket on `ifname` for `frames` (each a whole frame, all of
    /// one ethertype: the first's is the protocol the kernel is told).
    pub fn new(ifname: &str, frames: Vec<Vec<u8>>) -> io::Result<FrameRing> {
        // Protocol 0: this socket receives nothing.
        let (fd, ifindex) = packet_socket(ifname)?;
        let raw = fd.as_raw_fd();
        set_int_opt(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        let _ = set_int_opt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, 32 << 20);
        // SAFETY: sockaddr_ll is plain old data; zero is valid.
        let mut addr: Box<libc::sockaddr_ll> = Box::new(unsafe { zeroed() });
        addr.sll_family = libc::AF_PACKET as u16;
        let ethertype = frames
            .first()
            .and_then(|f| Some(u16::from_be_bytes([*f.get(12)?, *f.get(13)?])))
            .unwrap_or(libc::ETH_P_IP as u16);
        addr.sll_protocol = ethertype.to_be();
        addr.sll_ifindex = ifindex as i32;
        let mut iovs: Box<[libc::iovec]> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain old data; zero is valid.
        let mut hdrs: Box<[libc::mmsghdr]> =
            (0..frames.len()).map(|_| unsafe { zeroed() }).collect();
        for (h, iov) in hdrs.iter_mut().zip(iovs.iter_mut()) {
            h.msg_hdr.msg_name = (&mut *addr as *mut libc::sockaddr_ll).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        Ok(FrameRing {
            fd,
            _frames: frames,
            _iovs: iovs,
            addr,
            hdrs,
            next: 0,
        })
    }

    /// Sends the next `n` frames (wrapping round); how many the kernel took.
    pub fn send(&mut self, n: usize) -> io::Result<usize> {
        let _ = &self.addr;
        let total = self.hdrs.len();
        let mut sent = 0;
        while sent < n {
            let chunk = (n - sent).min(total - self.next);
            let got = send_all(
                self.fd.as_raw_fd(),
                &mut self.hdrs[self.next..self.next + chunk],
            );
            let got = match got {
                Ok(g) => g,
                Err(e) if sent > 0 => {
                    let _ = e;
                    return Ok(sent);
                }
                Err(e) => return Err(e),
            };
            sent += got;
            self.next = (self.next + got) % total;
            if got < chunk {
                break;
            }
        }
        Ok(sent)
    }
}

/// An AF_PACKET socket bound to one interface for the frames of one ethertype (IPv4's or
/// IPv6's), that does not see its own outgoing frames: the TCP responder's receive and send
/// path, below the namespace's IP stack.
pub struct PacketSocket {
    fd: OwnedFd,
    drops: u64,
}

impl PacketSocket {
    /// Bound to `ifname` for `ethertype`, with a 32 MiB receive buffer and a receive timeout,
    /// so that loops can check their stop flag.
    pub fn bind(ifname: &str, ethertype: u16, timeout_ms: u64) -> io::Result<PacketSocket> {
        // Protocol 0 until bound: nothing queues from other interfaces meanwhile.
        let (fd, ifindex) = packet_socket(ifname)?;
        let raw = fd.as_raw_fd();
        set_int_opt(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        if set_int_opt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 32 << 20).is_err() {
            set_int_opt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, 32 << 20)?;
        }
        let tv = libc::timeval {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_usec: ((timeout_ms % 1000).max(1) * 1000) as libc::suseconds_t,
        };
        // SAFETY: the option value is a live timeval whose size we pass.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: sockaddr_ll is plain old data; zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ethertype.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a live sockaddr_ll of the size we pass.
        let rc = unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { fd, drops: 0 })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Frames dropped so far because the receive buffer was full (PACKET_STATISTICS, which
    /// resets the kernel's counters on every read: they are summed here).
    pub fn drops(&mut self) -> u64 {
        // SAFETY: tpacket_stats is plain old data; zero is valid.
        let mut st: libc::tpacket_stats = unsafe { zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is a live tpacket_stats and `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.drops += u64::from(st.tp_drops);
        }
        self.drops
    }
}

/// recvmmsg into `hdrs` (each pointing to live buffers of the lengths it states), blocking
/// until the first message or the socket's timeout; Ok(0) on timeout or interruption.
fn recv_batch(fd: RawFd, hdrs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    // SAFETY: the caller's headers point to live buffers of the lengths they state.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            hdrs.as_mut_ptr(),
            hdrs.len() as u32,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n >= 0 {
        return Ok(n as usize);
    }
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => Ok(0),
        _ => Err(e),
    }
}

/// The index of interface `ifname` (in the calling thread's namespace).
pub(super) fn ifindex(ifname: &str) -> io::Result<u32> {
    let cname = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("no interface {ifname}: {e}"),
        ));
    }
    Ok(index)
}

/// An AF_PACKET raw socket with protocol 0 (it receives nothing until bound with a protocol),
/// and the index of `ifname`.
fn packet_socket(ifname: &str) -> io::Result<(OwnedFd, u32)> {
    let ifindex = ifindex(ifname)?;
    // SAFETY: plain socket(2) call.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    Ok((unsafe { OwnedFd::from_raw_fd(raw) }, ifindex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_of_both_families_round_trip() {
        for a in ["198.18.0.10:1024", "[2001:2::10]:9000"] {
            let a: SocketAddr = a.parse().unwrap();
            let (s, len) = to_sockaddr(a);
            assert_eq!(from_sockaddr(&s), a);
            let want = if a.is_ipv4() { 16 } else { 28 };
            assert_eq!(len as usize, want);
        }
    }

    /// Echo over IPv6 loopback through the batch: the sender's address comes back as it was.
    #[test]
    fn batches_send_and_receive_ipv6() {
        let Ok(a) = udp_socket("[::1]:0".parse().unwrap(), 200) else {
            eprintln!("skipping: no IPv6 loopback here");
            return;
        };
        let b = udp_socket("[::1]:0".parse().unwrap(), 200).unwrap();
        let to = b.local_addr().unwrap();
        let mut out = Batch::new(2, 64);
        for i in 0..2 {
            out.buf_mut(i)[..4].copy_from_slice(b"XVSB");
            out.set_send(i, 4 + i, to);
        }
        assert_eq!(out.send(a.as_raw_fd(), 2).unwrap(), 2);
        let mut got = Batch::new(4, 64);
        let mut n = 0;
        for _ in 0..10 {
            n += got.recv(b.as_raw_fd()).unwrap();
            if n > 0 {
                break;
            }
        }
        assert!(n >= 1);
        let (data, from) = got.received(0);
        assert_eq!((data, from), (&b"XVSB"[..], a.local_addr().unwrap()));
    }
}
