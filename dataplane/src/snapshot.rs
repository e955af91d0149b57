//! The configuration a worker sees: an immutable snapshot built by the control plane.
//!
//! Control validates every change, builds a complete new [`Snapshot`] and publishes it (see
//! [`crate::publish`]); workers pick it up between batches. Nothing in here is mutated after
//! publication except the schedulers' lock-free cursors. Connection entries do not point into a
//! snapshot: they carry their own addresses, so established connections keep flowing whatever
//! the next snapshot says.
//!
//! One [`ServiceMap`] serves both address families: [`Vip`] and [`RealServer`] hold an
//! [`IpAddr`]. The snapshot is read only when a flow is new (the service and its scheduler),
//! so the family costs a match per new flow, not per packet; connection entries, read for
//! every packet, stay per family ([`crate::conntrack`]). The address sets the packet path
//! tests per packet or per frame (`vip_addrs`, `local_addrs`) are kept per family.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xvs_scheduler::{Dest, Flow, Load, Scheduler};

/// IP protocol numbers of the protocols xvs balances.
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// A virtual service address: protocol, VIP, port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vip {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: u16,
}

/// Index of a service's counters in [`crate::stats::WorkerStats::services`].
pub type ServiceId = u32;
/// Index of a real server's counters in [`crate::stats::WorkerStats::reals`].
pub type RealId = u32;

/// How packets reach a real server: the LVS forwarding methods (IPVS keeps one per
/// destination and copies it into each connection, as [`crate::conntrack::Conn`] does).
/// A one-byte tag with the methods whose replies come back first, so that the packet path's
/// tests of it ([`Method::sees_replies`]) are one comparison; six bytes with a tunnel's
/// settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Method {
    /// `-m`, LVS-NAT: requests get RIP:rport as destination, replies come back through the
    /// director and get VIP:vport as source.
    #[default]
    Masq = 0,
    /// `-g`, direct routing: the IP packet is left as it is and the frame is addressed to the
    /// real server's MAC; the real server holds the VIP itself and answers the client directly,
    /// so the director sees requests only.
    Route = 2,
    /// `-i`, tunnelling: the IP packet is encapsulated towards the real server, which
    /// decapsulates it, holds the VIP and answers the client directly (requests only, as DR).
    Tunnel(Tunnel) = 3,
    /// `--fullnat` (DPVS): both endpoints are translated. Requests leave from one of the
    /// service's local addresses and a port of the director (CIP:cport -> LIP:lport, VIP:vport
    /// -> RIP:rport); replies come back to LIP:lport and leave as VIP:vport -> CIP:cport. The
    /// real server needs no route back through the director (it may sit behind routers).
    FullNat = 1,
}

/// How a tunnelled packet is wrapped (ipvsadm's `--tun-type`, `--tun-port`, `--tun-csum`).
/// Four bytes, so that [`Method`] takes six in [`crate::conntrack::Conn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    pub encap: Encap,
    /// GUE: the UDP destination port the real server decapsulates on.
    pub port: u16,
    /// GUE and GRE: carry a checksum (UDP's, GRE's optional one); else none (`--tun-nocsum`,
    /// the default).
    pub checksum: bool,
}

/// The encapsulations of IPVS's tunnelling method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encap {
    /// IP in IP (protocol 4), the kernel's `tunl0`; for IPv6, IPv6 in IPv6 (next header 41),
    /// the kernel's `ip6tnl0` (ipvsadm calls both "ipip").
    Ipip,
    /// Generic UDP Encapsulation (draft-ietf-intarea-gue, variant 0): UDP, a 4-byte GUE header
    /// naming protocol 4 (41 for IPv6), the IP packet; the kernel's `fou` in GUE mode.
    Gue,
    /// GRE (RFC 2784, protocol 47) carrying IPv4 (0x0800) or IPv6 (0x86dd), the kernel's
    /// `gre0` or `ip6gre0`.
    Gre,
}

impl Tunnel {
    /// Bytes the encapsulation adds in front of an IPv4 packet: the outer IPv4 header and
    /// [`Tunnel::encap_len`].
    pub fn overhead(&self) -> usize {
        20 + self.encap_len()
    }

    /// Bytes the encapsulation adds in front of an IPv6 packet: the outer IPv6 header and
    /// [`Tunnel::encap_len`].
    pub fn overhead6(&self) -> usize {
        40 + self.encap_len()
    }

    /// Bytes between the outer IP header and the packet: GUE's UDP and GUE headers, GRE's
    /// header (and its checksum field), nothing for IP in IP.
    pub fn encap_len(&self) -> usize {
        match self.encap {
            Encap::Ipip => 0,
            Encap::Gue => 8 + 4,
            Encap::Gre if self.checksum => 8,
            Encap::Gre => 4,
        }
    }
}

impl Method {
    /// The director sees only the client's half of the conversation (IPVS's
    /// `IP_VS_CONN_F_NOOUTPUT`): TCP states follow IPVS's INPUT-ONLY table.
    #[inline]
    pub fn input_only(self) -> bool {
        !self.sees_replies()
    }

    /// The real server's replies come back through the director (NAT and FullNAT).
    #[inline]
    pub fn sees_replies(self) -> bool {
        matches!(self, Method::Masq | Method::FullNat)
    }
}

/// A real server of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealServer {
    pub id: RealId,
    /// Of the service's family (a real server of the other family, which IPVS allows for
    /// tunnels, is refused per flow: [`crate::stats::DropReason::RealFamily`]).
    pub addr: IpAddr,
    pub port: u16,
    /// How its connections' packets are forwarded.
    pub method: Method,
    /// Its health check failed: besides taking no new connections (its scheduler weight is 0),
    /// persistence templates pointing to it are not honoured, so persistent clients move on.
    /// (A server quiesced by the operator keeps its templates, as in IPVS.)
    pub failed: bool,
}

/// One virtual service.
#[derive(Debug)]
pub struct Service {
    pub id: ServiceId,
    pub vip: Vip,
    pub scheduler: Scheduler,
    /// What the scheduler sees of each real server; same order as `reals`.
    pub dests: Box<[Dest]>,
    pub reals: Box<[RealServer]>,
    /// `-p [timeout] [-M netmask]`: new connections from a client (masked) go to the real
    /// server its earlier ones went to while the persistence template lives.
    pub persistence: Option<Persistence>,
    /// Most connection entries of this service at once over all workers, each worker holding
    /// its share (rounded up); 0: no limit but the table's. New flows beyond it are refused
    /// ([`crate::stats::DropReason::ServiceLimit`]) unless one of the service's half-open
    /// entries can give way.
    pub max_conns: u32,
    /// FullNAT's local addresses (`--add-laddr`): a FullNAT connection leaves from one of
    /// them, taken in turn ([`crate::fullnat::LocalPorts`]); those of the connection's family
    /// only.
    pub local_addrs: Box<[IpAddr]>,
}

/// A service's persistence settings (IPVS: persistent service with a netmask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// How long a template outlives the last new connection it placed, in seconds.
    pub timeout_secs: u32,
    /// Clients are grouped by `caddr & netmask`, a mask of the service's family:
    /// 255.255.255.255 or ffff:...:ffff per client address, `ffff:ffff:ffff:ffff::` per /64
    /// ([`crate::persist::prefix_mask6`]). A mask of the other family groups per address.
    pub netmask: IpAddr,
}

impl Service {
    /// This service's limit in one of `workers` workers' tables (`None`: unlimited).
    #[inline]
    pub fn max_conns_per_worker(&self, workers: usize) -> Option<u32> {
        (self.max_conns > 0).then(|| self.max_conns.div_ceil(workers.max(1) as u32))
    }

    /// The real server for a new connection `flow`, if any may take one; `load` gives the
    /// servers' current connection counts.
    #[inline]
    pub fn schedule<L: Load + ?Sized>(&self, load: &L, flow: &Flow) -> Option<&RealServer> {
        let i = self.scheduler.pick(&self.dests, load, flow)?;
        self.reals.get(i)
    }
}

/// An interface of the director as the dataplane needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Its (first) IPv4 address: the outer source of tunnelled packets.
    pub addr: Ipv4Addr,
    /// Its global IPv6 address, if it has one: the source of the ICMPv6 errors the director
    /// itself originates there (Packet Too Big).
    pub addr6: Option<Ipv6Addr>,
    /// Its MTU; 0: unknown (no packet is refused as too big).
    pub mtu: u16,
}

impl Default for Interface {
    fn default() -> Self {
        Interface {
            ifindex: 0,
            mac: [0; 6],
            addr: Ipv4Addr::UNSPECIFIED,
            addr6: None,
            mtu: 0,
        }
    }
}

/// Connection timeouts in seconds: IPVS's defaults, `ipvsadm --set tcp tcpfin udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// ESTABLISHED.
    pub tcp: u32,
    /// FIN_WAIT (after a FIN from the client).
    pub tcpfin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcpfin: 120,
            udp: 300,
        }
    }
}

/// Services by VIP (keyed hashing: the key comes from packets).
pub type ServiceMap = HashMap<Vip, Service, ahash::RandomState>;

/// Everything a worker needs to process a frame, published atomically.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Clients side.
    pub external: Interface,
    /// Real servers side.
    pub internal: Interface,
    pub timeouts: Timeouts,
    pub services: ServiceMap,
    /// Every VIP address with a service, or with connections of a removed service still
    /// draining: on a one-armed director (one interface for both sides) a frame addressed to
    /// one of these is a request, any other a reply ([`crate::process::one_armed_side`]).
    pub vip_addrs: Vec<Ipv4Addr>,
    /// The IPv6 twin of `vip_addrs`.
    pub vip_addrs6: Vec<Ipv6Addr>,
    /// Every FullNAT local address a connection may use (configured, or removed while
    /// connections may still use it): no new flow may come from one
    /// ([`crate::stats::DropReason::LocalSource`]).
    pub local_addrs: Vec<Ipv4Addr>,
    /// The IPv6 twin of `local_addrs`.
    pub local_addrs6: Vec<Ipv6Addr>,
    /// `--sloppy-tcp` (IPVS's `sloppy_tcp`): a TCP segment other than a SYN (and not a RST)
    /// of a flow without an entry opens one when its service's scheduler is consistent
    /// ([`xvs_scheduler::Scheduler::is_consistent`]), so a flow that ECMP moves here from
    /// another director keeps its real server.
    pub sloppy_tcp: bool,
}

impl Snapshot {
    #[inline]
    pub fn service(&self, vip: &Vip) -> Option<&Service> {
        self.services.get(vip)
    }
}
