//! Our XDP program: loaded from the object build.rs compiled, one instance per interface.
//!
//! Each instance has its own maps: `xvs_xsks` (queue -> AF_XDP socket), `xvs_endpoints` and
//! `xvs_endpoints6` (the VIP:ports or real servers whose traffic is redirected, and their
//! addresses alone, for fragments; one map per family), `xvs_settings` (its role: match
//! destination on the external side, source on the internal side) and `xvs_local_addrs`/
//! `xvs_local_addrs6` (the director's own addresses: on the internal side, frames to
//! them go to the kernel, so the director's own connections to real servers, such as health
//! checks, get their replies). It is attached with `bpf_link_create`, so the attachment is owned by a file descriptor: closing it (on drop, or when the kernel reaps
//! a killed process) detaches the program. A program attached the legacy way would outlive a
//! SIGKILL and block the next start with EBUSY.

use super::object::BpfObject;
use super::XskError;
use crate::fastpath::FastPathMaps;
use libbpf_sys as bpf;
use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::io;
use std::net::IpAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xvs_xdp.o"));

/// Which end of a packet the program matches against `xvs_endpoints`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Role {
    /// External interface: destination is a VIP:port.
    MatchDestination = 0,
    /// Internal interface: source is a real server.
    MatchSource = 1,
    /// A one-armed director's only interface: destination a VIP:port, else source a real
    /// server.
    MatchBoth = 2,
}

/// How the program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native if the driver supports it, generic otherwise (the kernel's choice).
    #[default]
    Auto,
    /// Driver (native) mode; fails if unsupported.
    Native,
    /// Generic (SKB) mode.
    Generic,
}

/// `struct settings` of bpf/xvs_xdp.c.
#[repr(C)]
struct Settings {
    role: u32,
    fast_path: u32,
}

/// An endpoint whose traffic the program steers to the workers: protocol, address (either
/// family) and port. Stored as `struct endpoint_key` (IPv4, `xvs_endpoints`) or `struct
/// endpoint_key6` (IPv6, `xvs_endpoints6`) of bpf/xvs_xdp.c.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    proto: u8,
    addr: IpAddr,
    port: u16,
}

impl EndpointKey {
    pub fn new(proto: u8, addr: impl Into<IpAddr>, port: u16) -> Self {
        EndpointKey {
            proto,
            addr: addr.into(),
            port,
        }
    }

    /// The address-only key (port 0, proto 0) the program matches fragments against.
    fn address(self) -> Self {
        EndpointKey::new(0, self.addr, 0)
    }
}

/// `struct endpoint_key` of bpf/xvs_xdp.c: address and port in network byte order.
#[repr(C)]
struct EndpointKey4 {
    addr: [u8; 4],
    port: [u8; 2],
    proto: u8,
    pad: u8,
}

/// `struct endpoint_key6` of bpf/xvs_xdp.c: address and port in network byte order.
#[repr(C)]
struct EndpointKey6 {
    addr: [u8; 16],
    port: [u8; 2],
    proto: u8,
    pad: u8,
}

/// A loaded and attached instance of the steering program.
pub struct XdpProgram {
    object: BpfObject,
    /// The BPF link: closing it detaches the program.
    link: Option<OwnedFd>,
    xsks: RawFd,
    endpoints: RawFd,
    endpoints6: RawFd,
    local_addrs: RawFd,
    local_addrs6: RawFd,
    counters: RawFd,
    settings: RawFd,
    role: Role,
    /// Loaded with the fast path's maps (its setting may still be off: a capture).
    has_fast_path: bool,
    ifindex: u32,
    /// The endpoints added, and how many of them each address has: an address-only key lives
    /// while any endpoint of its address does.
    endpoints_added: HashSet<EndpointKey>,
    address_users: HashMap<IpAddr, usize>,
}

/// What the program did with the frames of one rx queue, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounters {
    /// Sent to the AF_XDP socket.
    pub redirected: u64,
    /// Passed to the kernel (not load-balanced traffic, or no socket on the queue).
    pub passed: u64,
    /// Rewritten and forwarded by the fast path.
    pub fast: u64,
}

impl XdpProgram {
    /// Loads a fresh instance and attaches it to `ifindex`; with `fast_path`, the instance
    /// uses those maps (shared with the other instance and the workers) and looks every
    /// TCP/UDP packet up in them first.
    pub fn attach(
        ifindex: u32,
        role: Role,
        mode: XdpMode,
        fast_path: Option<&FastPathMaps>,
    ) -> Result<Self, XskError> {
        let program = Self::load(ifindex, role, fast_path)?;
        program.attach_link(mode)
    }

    /// Loads a fresh instance for `ifindex` without attaching it (tests run it with
    /// `BPF_PROG_TEST_RUN`: [`XdpProgram::test_run`]).
    pub fn load(
        ifindex: u32,
        role: Role,
        fast_path: Option<&FastPathMaps>,
    ) -> Result<Self, XskError> {
        let shared = fast_path.map(FastPathMaps::by_name);
        let object = BpfObject::load(OBJECT, c"xvs_xdp", shared.as_ref().map_or(&[], |m| &m[..]))?;
        let mut program = XdpProgram {
            object,
            link: None,
            xsks: -1,
            endpoints: -1,
            endpoints6: -1,
            local_addrs: -1,
            local_addrs6: -1,
            counters: -1,
            settings: -1,
            role,
            has_fast_path: fast_path.is_some(),
            ifindex,
            endpoints_added: HashSet::new(),
            address_users: HashMap::new(),
        };
        program.xsks = program.map_fd(c"xvs_xsks")?;
        program.endpoints = program.map_fd(c"xvs_endpoints")?;
        program.endpoints6 = program.map_fd(c"xvs_endpoints6")?;
        program.local_addrs = program.map_fd(c"xvs_local_addrs")?;
        program.local_addrs6 = program.map_fd(c"xvs_local_addrs6")?;
        program.counters = program.map_fd(c"xvs_counters")?;
        program.settings = program.map_fd(c"xvs_settings")?;
        program.set_fast_path(true)?;
        Ok(program)
    }

    /// Turns the fast path's lookups on or off (no-op for an instance without its maps):
    /// off, every TCP/UDP packet of a service goes to the workers, as a capture needs.
    pub fn set_fast_path(&self, on: bool) -> Result<(), XskError> {
        let settings = Settings {
            role: self.role as u32,
            fast_path: u32::from(on && self.has_fast_path),
        };
        update(self.settings, &0u32, &settings)
            .map_err(|e| XskError::os("writing the program's settings", e))
    }

    fn prog_fd(&self) -> Result<RawFd, XskError> {
        self.object.prog_fd(c"xvs_steer")
    }

    fn attach_link(mut self, mode: XdpMode) -> Result<Self, XskError> {
        let ifindex = self.ifindex;
        let prog_fd = self.prog_fd()?;
        let mut link_opts = bpf::bpf_link_create_opts {
            sz: std::mem::size_of::<bpf::bpf_link_create_opts>() as _,
            ..Default::default()
        };
        link_opts.flags = match mode {
            XdpMode::Auto => 0,
            XdpMode::Native => bpf::XDP_FLAGS_DRV_MODE,
            XdpMode::Generic => bpf::XDP_FLAGS_SKB_MODE,
        };
        // Safety: prog_fd is a loaded XDP program; for BPF_XDP the target is an ifindex.
        let link =
            unsafe { bpf::bpf_link_create(prog_fd, ifindex as i32, bpf::BPF_XDP, &link_opts) };
        if link < 0 {
            let err = io::Error::from_raw_os_error(-link);
            let hint = if err.raw_os_error() == Some(libc::EBUSY) {
                " (another XDP program is attached: is another xvsd running on this interface?)"
            } else {
                ""
            };
            return Err(XskError::os(
                format!("attaching XDP to interface index {ifindex}{hint}"),
                err,
            ));
        }
        // Safety: link is a fresh file descriptor that nothing else owns.
        self.link = Some(unsafe { OwnedFd::from_raw_fd(link) });
        Ok(self)
    }

    /// Runs the (loaded) program once on `frame` with `BPF_PROG_TEST_RUN`, as if it arrived on
    /// rx queue 0 of `ifindex`: returns its action and the frame as the program left it.
    pub fn test_run(&self, frame: &[u8], ifindex: u32) -> io::Result<(u32, Vec<u8>)> {
        let prog_fd = self
            .prog_fd()
            .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?;
        let mut out = vec![0u8; frame.len() + 256];
        // struct xdp_md as the context: data_end and ingress_ifindex set, the rest zero.
        // data_end must be the frame's length: older kernels refuse anything else, recent ones
        // take it as the length of the linear part and pass the rest as fragments, which the
        // program does not read (with 0 it saw an empty frame and passed everything).
        let mut ctx = [0u32; 6];
        ctx[1] = frame.len() as u32;
        ctx[3] = ifindex;
        let mut opts = bpf::bpf_test_run_opts {
            sz: std::mem::size_of::<bpf::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_out: out.as_mut_ptr().cast(),
            data_size_out: out.len() as u32,
            ctx_in: ctx.as_ptr().cast(),
            ctx_size_in: std::mem::size_of_val(&ctx) as u32,
            repeat: 1,
            ..Default::default()
        };
        // Safety: every buffer in opts lives across the call and has the size given.
        let rc = unsafe { bpf::bpf_prog_test_run_opts(prog_fd, &mut opts) };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        out.truncate(opts.data_size_out as usize);
        Ok((opts.retval, out))
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Steers the traffic of `queue` to the AF_XDP socket `socket_fd`.
    pub fn register_socket(&self, queue: u32, socket_fd: RawFd) -> io::Result<()> {
        update(self.xsks, &queue, &(socket_fd as u32))
    }

    /// Starts redirecting traffic matching `key` to the sockets, and fragments matching its
    /// address (which may carry no ports).
    pub fn add_endpoint(&mut self, key: EndpointKey) -> io::Result<()> {
        self.write_endpoint(key, true)?;
        if self.endpoints_added.insert(key) {
            *self.address_users.entry(key.addr).or_default() += 1;
            self.write_endpoint(key.address(), true)?;
        }
        Ok(())
    }

    /// Stops redirecting traffic matching `key` (and fragments of its address, once no other
    /// endpoint has it); removing an absent key is not an error.
    pub fn remove_endpoint(&mut self, key: EndpointKey) -> io::Result<()> {
        self.write_endpoint(key, false)?;
        if !self.endpoints_added.remove(&key) {
            return Ok(());
        }
        let users = self.address_users.entry(key.addr).or_default();
        *users = users.saturating_sub(1);
        if *users == 0 {
            self.address_users.remove(&key.addr);
            self.write_endpoint(key.address(), false)?;
        }
        Ok(())
    }

    /// Adds (`on`) or deletes `key` in the endpoint map of its family.
    fn write_endpoint(&self, key: EndpointKey, on: bool) -> io::Result<()> {
        let (port, proto, pad) = (key.port.to_be_bytes(), key.proto, 0);
        match key.addr {
            IpAddr::V4(addr) => {
                let key = EndpointKey4 {
                    addr: addr.octets(),
                    port,
                    proto,
                    pad,
                };
                write(self.endpoints, &key, on)
            }
            IpAddr::V6(addr) => {
                let key = EndpointKey6 {
                    addr: addr.octets(),
                    port,
                    proto,
                    pad,
                };
                write(self.endpoints6, &key, on)
            }
        }
    }

    /// Makes frames addressed to `addr` (one of the director's own addresses) go to the kernel
    /// whatever their source.
    pub fn add_local_address(&self, addr: impl Into<IpAddr>) -> io::Result<()> {
        self.write_local_address(addr.into(), true)
    }

    /// Undoes [`XdpProgram::add_local_address`]: frames to `addr` are steered by their source
    /// again (a FullNAT local address: replies to it are the workers').
    pub fn remove_local_address(&self, addr: impl Into<IpAddr>) -> io::Result<()> {
        self.write_local_address(addr.into(), false)
    }

    fn write_local_address(&self, addr: IpAddr, on: bool) -> io::Result<()> {
        match addr {
            IpAddr::V4(addr) => write(self.local_addrs, &addr.octets(), on),
            IpAddr::V6(addr) => write(self.local_addrs6, &addr.octets(), on),
        }
    }

    /// The program's counters for rx queue `queue`.
    pub fn queue_counters(&self, queue: u32) -> io::Result<QueueCounters> {
        // Safety: a plain query of the number of possible CPUs.
        let cpus = unsafe { bpf::libbpf_num_possible_cpus() };
        if cpus <= 0 {
            return Err(io::Error::from_raw_os_error(-cpus));
        }
        // A per-CPU map returns one value per possible CPU (each 8-byte aligned, as ours is).
        let mut values = vec![[0u64; 3]; cpus as usize];
        // Safety: `values` has room for one 24-byte value per possible CPU.
        let rc = unsafe {
            bpf::bpf_map_lookup_elem(
                self.counters,
                (&queue as *const u32).cast(),
                values.as_mut_ptr().cast(),
            )
        };
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc));
        }
        Ok(values
            .iter()
            .fold(QueueCounters::default(), |acc, v| QueueCounters {
                redirected: acc.redirected + v[0],
                passed: acc.passed + v[1],
                fast: acc.fast + v[2],
            }))
    }

    fn map_fd(&self, name: &CStr) -> Result<RawFd, XskError> {
        self.object.map_fd(name)
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        // Detach first; the object (which owns the program and map fds) is freed after.
        drop(self.link.take());
    }
}

/// Deletes `key` from the map; an absent key is not an error.
/// Sets (`on`, to 1) or deletes `key` in a map whose values are one byte.
fn write<K>(map_fd: RawFd, key: &K, on: bool) -> io::Result<()> {
    match on {
        true => update(map_fd, key, &1u8),
        false => delete(map_fd, key),
    }
}

fn delete<K>(map_fd: RawFd, key: &K) -> io::Result<()> {
    // Safety: the key points to an initialised value of the map's key type and size.
    let rc = unsafe { bpf::bpf_map_delete_elem(map_fd, (key as *const K).cast()) };
    match rc {
        0 => Ok(()),
        rc if -rc == libc::ENOENT => Ok(()),
        rc => Err(io::Error::from_raw_os_error(-rc)),
    }
}

fn update<K, V>(map_fd: RawFd, key: &K, value: &V) -> io::Result<()> {
    // Safety: key and value point to initialised values of the map's key and value sizes.
    let rc = unsafe {
        bpf::bpf_map_update_elem(
            map_fd,
            (key as *const K).cast(),
            (value as *const V).cast(),
            bpf::BPF_ANY as u64,
        )
    };
    if rc < 0 {
        return Err(io::Error::from_raw_os_error(-rc));
    }
    Ok(())
}
