//! A synchronous rtnetlink client: dumps, neighbour resolution, managed entries, links, and
//! the device and host routes of VIP announcements ([`Netlink::replace_host_route`], both
//! families).
//!
//! Every request carries its own sequence number; replies of other sequence numbers (late
//! answers to a request that timed out) are skipped. Dumps end at NLMSG_DONE and are retried
//! when the kernel flags them inconsistent (NLM_F_DUMP_INTR) or the socket overflowed
//! (ENOBUFS). All other requests ask for an ACK, and a NACK becomes an [`io::Error`] with the
//! errno of the ACK. A reply that does not come within [`RECV_TIMEOUT`] is `TimedOut`.
//!
//! # How NTF_USE and NTF_MANAGED behave (net/core/neighbour.c `neigh_add`, checked on 6.18)
//!
//! - RTM_NEWNEIGH for a missing entry needs NLM_F_CREATE, else ENOENT. With NTF_USE (ndm_flags)
//!   or NTF_EXT_MANAGED (in NDA_FLAGS_EXT, kernel >= 5.16) the kernel creates the entry in
//!   NUD_NONE, ignores ndm_state and any lladdr, and calls `neigh_event_send()`, which sends
//!   the first ARP request; a managed entry is then kept resolved by the kernel itself.
//!   PERMANENT together with MANAGED is EINVAL on creation, so requests carry NUD_NONE.
//! - On an EXISTING entry the same request keeps the MAC and the state, but (1) strips
//!   NUD_PERMANENT (an operator's static entry turns INCOMPLETE) and (2) rewrites the admin
//!   flags: NTF_USE without NTF_EXT_MANAGED clears `managed`, and either clears
//!   `extern_learn`. NLM_F_REPLACE makes no difference for these flags.
//!
//! Hence [`Netlink::resolve`] and [`Netlink::manage`] first read the entry (RTM_GETNEIGH for the
//! one address): a missing one is created with NLM_F_CREATE|NLM_F_EXCL (so a concurrently
//! created entry is never rewritten: EEXIST makes us look again); PERMANENT/NOARP and
//! externally learnt entries are left alone; a managed entry keeps NTF_EXT_MANAGED in an
//! NTF_USE request; and a plain dynamic entry gets the flag without NLM_F_CREATE.
//! [`Netlink::unmanage`] deletes only entries that are managed (and not static). No request
//! on an existing entry carries NLM_F_REPLACE, so the kernel also keeps its NTF_ROUTER flag
//! (NEIGH_UPDATE_F_OVERRIDE_ISROUTER is dropped without it), which IPv6 Neighbour Discovery
//! maintains for routers.
//!
//! # IPv6
//!
//! `neigh_add` is the same code for both families (`tbl->allow_add`, ndisc's, only refuses a
//! device with IPv6 disabled), so the above holds for IPv6 as it is: the kernel sends the
//! Neighbour Solicitation, as it sends the ARP request. [`Netlink::resolve`],
//! [`Netlink::manage`] and [`Netlink::unmanage`] take an address of either family; the
//! dumps have a reader per family ([`Netlink::routes6`], [`Netlink::neighbours6`]) and
//! [`Netlink::dump`] reads both. Of the IPv6 routes only the unicast routes of the main table
//! are kept, as for IPv4: the connected prefixes (the fe80::/64 of each interface included:
//! link-local next hops are on-link through it), gateway routes (router advertisements give
//! link-local gateways) and the default route. Left out: table local (the host's own and
//! anycast addresses, and ff00::/8, the multicast route of every interface), reject routes
//! (unreachable, prohibit, blackhole) and cached clones (a dump without RTM_F_CLONED has
//! none).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, LinkAttribute, LinkFlags, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteNextHopFlags, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::{nud, KernelTables, Neighbour, Neighbour6, NeighbourTable, Route, Route6};

/// How long to wait for each reply datagram of the kernel.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// The main routing table (RT_TABLE_MAIN).
const RT_TABLE_MAIN: u32 = 254;
/// Tries of a dump that came back inconsistent or overflowed the socket.
const DUMP_TRIES: u32 = 4;
/// Tries of a read-then-write neighbour change when the entry changed in between.
const CHANGE_TRIES: u32 = 3;

/// An interface as [`Netlink::link`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// IFLA_ADDRESS; all zeros for an interface without a 6-byte hardware address.
    pub mac: [u8; 6],
    /// IPv4 addresses with their prefix lengths (IFA_LOCAL, else IFA_ADDRESS).
    pub addrs: Vec<(Ipv4Addr, u8)>,
    pub mtu: u32,
    /// Administratively up and with carrier (IFF_UP and IFF_LOWER_UP).
    pub up: bool,
}

/// A synchronous rtnetlink client (one per thread that needs it; never used by workers).
#[derive(Debug)]
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// What a neighbour entry is, as far as changing it is concerned.
#[derive(Debug, Clone, Copy)]
struct Entry {
    state: u16,
    flags: NeighbourFlags,
    ext: NeighbourExtFlags,
}

impl Entry {
    /// Entries we must never rewrite: an operator's static ones and externally learnt ones.
    fn hands_off(&self) -> bool {
        self.state & (nud::PERMANENT | nud::NOARP) != 0
            || self.flags.contains(NeighbourFlags::ExtLearned)
    }
    fn managed(&self) -> bool {
        self.ext.contains(NeighbourExtFlags::Managed)
    }
}

impl Netlink {
    /// Opens a NETLINK_ROUTE socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_rx_buf_sz(1 << 20)?;
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: the fd is open and owned by `sock`; the pointer and length describe `tv`,
        // which lives across the call.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            sock,
            seq: 0,
            buf: Vec::with_capacity(32 << 10),
        })
    }

    /// Dumps the routes of the main table and the neighbours of `ifindexes` (an empty slice
    /// means every interface), IPv4 and IPv6, and builds one table of both families.
    pub fn dump(&mut self, ifindexes: &[u32]) -> io::Result<NeighbourTable> {
        Ok(NeighbourTable::from(self.tables(ifindexes)?))
    }

    /// What [`Netlink::dump`] builds its table from: [`Netlink::routes`],
    /// [`Netlink::neighbours`], [`Netlink::routes6`] and [`Netlink::neighbours6`] (four dumps,
    /// one after the other).
    pub fn tables(&mut self, ifindexes: &[u32]) -> io::Result<KernelTables> {
        Ok(KernelTables {
            routes: self.routes(ifindexes)?,
            neighbours: self.neighbours(ifindexes)?,
            routes6: self.routes6(ifindexes)?,
            neighbours6: self.neighbours6(ifindexes)?,
        })
    }

    /// The unicast IPv4 routes of the main table whose next hop leaves through one of
    /// `ifindexes` (empty: any), lowest metric first. Each next hop of a multipath route is a
    /// route of its own; dead next hops and RTA_VIA (IPv6) gateways are left out.
    pub fn routes(&mut self, ifindexes: &[u32]) -> io::Result<Vec<Route>> {
        let found = self.route_hops::<Ipv4Addr>(ifindexes)?;
        Ok(found
            .into_iter()
            .map(|h| Route {
                ifindex: h.ifindex,
                dst: h.dst,
                prefix_len: h.prefix_len,
                gateway: h.gateway,
            })
            .collect())
    }

    /// The unicast IPv6 routes of the main table whose next hop leaves through one of
    /// `ifindexes` (empty: any), lowest metric first, as [`Netlink::routes`] reads IPv4 ones:
    /// connected prefixes (fe80::/64 included), gateway routes and the default route; not the
    /// local table nor multicast (ff00::/8) or reject routes (see the module documentation).
    pub fn routes6(&mut self, ifindexes: &[u32]) -> io::Result<Vec<Route6>> {
        let found = self.route_hops::<Ipv6Addr>(ifindexes)?;
        Ok(found
            .into_iter()
            .map(|h| Route6 {
                ifindex: h.ifindex,
                dst: h.dst,
                prefix_len: h.prefix_len,
                gateway: h.gateway,
            })
            .collect())
    }

    /// The IPv4 neighbour entries of `ifindexes` (empty: all) in every state; entries without
    /// a link-layer address have an all-zero `mac`, non-Ethernet ones are left out.
    pub fn neighbours(&mut self, ifindexes: &[u32]) -> io::Result<Vec<Neighbour>> {
        let found = self.neighbour_entries::<Ipv4Addr>(ifindexes)?;
        Ok(found
            .into_iter()
            .map(|n| Neighbour {
                ifindex: n.ifindex,
                addr: n.addr,
                mac: n.mac,
                state: n.state,
            })
            .collect())
    }

    /// The IPv6 neighbour entries of `ifindexes` (empty: all) in every state, as
    /// [`Netlink::neighbours`] reads IPv4 ones. Entries of multicast addresses (NOARP, with a
    /// MAC derived from the group) are left out: they are never a next hop.
    pub fn neighbours6(&mut self, ifindexes: &[u32]) -> io::Result<Vec<Neighbour6>> {
        let found = self.neighbour_entries::<Ipv6Addr>(ifindexes)?;
        Ok(found
            .into_iter()
            .filter(|n| !n.addr.is_multicast())
            .map(|n| Neighbour6 {
                ifindex: n.ifindex,
                addr: n.addr,
                mac: n.mac,
                state: n.state,
            })
            .collect())
    }

    /// Asks the kernel to resolve `addr` (IPv4 or IPv6) on `ifindex` now (NTF_USE: it creates
    /// the entry if missing and sends an ARP request or a Neighbour Solicitation). Never
    /// changes an existing MAC, never touches a PERMANENT/NOARP or externally learnt entry,
    /// keeps a managed entry managed.
    pub fn resolve(&mut self, ifindex: u32, addr: impl Into<IpAddr>) -> io::Result<()> {
        let addr = addr.into();
        for _ in 0..CHANGE_TRIES {
            let res = match self.get_neighbour(ifindex, addr)? {
                None => self.new_neighbour(ifindex, addr, true, false, NLM_F_CREATE | NLM_F_EXCL),
                Some(e) if e.hands_off() => return Ok(()),
                Some(e) => self.new_neighbour(ifindex, addr, true, e.managed(), 0),
            };
            match res {
                Err(e) if is_errno(&e, libc::EEXIST) || is_errno(&e, libc::ENOENT) => continue,
                r => return r,
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }

    /// Makes the kernel keep `addr` (IPv4 or IPv6) on `ifindex` resolved by itself (a managed
    /// entry, NTF_EXT_MANAGED, kernel >= 5.16). Idempotent. An existing dynamic entry becomes
    /// managed (MAC kept); PERMANENT/NOARP and externally learnt entries are left as they are.
    pub fn manage(&mut self, ifindex: u32, addr: impl Into<IpAddr>) -> io::Result<()> {
        let addr = addr.into();
        for _ in 0..CHANGE_TRIES {
            let res = match self.get_neighbour(ifindex, addr)? {
                None => self.new_neighbour(ifindex, addr, false, true, NLM_F_CREATE | NLM_F_EXCL),
                Some(e) if e.hands_off() || e.managed() => return Ok(()),
                Some(_) => self.new_neighbour(ifindex, addr, false, true, 0),
            };
            match res {
                Err(e) if is_errno(&e, libc::EEXIST) || is_errno(&e, libc::ENOENT) => continue,
                r => return r,
            }
        }
        Err(io::Error::from_raw_os_error(libc::EAGAIN))
    }

    /// Deletes the managed entry of `addr` (IPv4 or IPv6) on `ifindex`. Idempotent: no entry,
    /// or one that is not managed (an operator's or the kernel's own), is Ok and left alone.
    pub fn unmanage(&mut self, ifindex: u32, addr: impl Into<IpAddr>) -> io::Result<()> {
        let addr = addr.into();
        match self.get_neighbour(ifindex, addr)? {
            Some(e) if e.managed() && !e.hands_off() => {
                let req = neighbour_request(ifindex, addr);
                match self.request(RouteNetlinkMessage::DelNeighbour(req), NLM_F_ACK, |_| {}) {
                    Err(e) if is_errno(&e, libc::ENOENT) => Ok(()),
                    r => r.map(drop),
                }
            }
            _ => Ok(()),
        }
    }

    /// Index, MAC, MTU, state and IPv4 addresses of the interface called `name`
    /// (RTM_GETLINK by IFLA_IFNAME, then an RTM_GETADDR dump). ENODEV if there is none.
    pub fn link(&mut self, name: &str) -> io::Result<Link> {
        let mut req = LinkMessage::default();
        req.attributes.push(LinkAttribute::IfName(name.to_owned()));
        let mut reply = None;
        self.request(RouteNetlinkMessage::GetLink(req), NLM_F_ACK, |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                reply = Some(l);
            }
        })?;
        let l = reply.ok_or_else(|| invalid("no RTM_NEWLINK in the reply to RTM_GETLINK"))?;
        let mut link = Link {
            ifindex: l.header.index,
            name: name.to_owned(),
            mac: [0; 6],
            addrs: Vec::new(),
            mtu: 0,
            up: l.header.flags.contains(LinkFlags::Up | LinkFlags::LowerUp),
        };
        for a in l.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::Address(m) if m.len() == 6 => link.mac.copy_from_slice(&m),
                LinkAttribute::Mtu(m) => link.mtu = m,
                _ => {}
            }
        }
        let mut req = AddressMessage::default();
        req.header.family = AddressFamily::Inet;
        let ifindex = link.ifindex;
        link.addrs = self.dump_all(RouteNetlinkMessage::GetAddress(req), |m, out| {
            if let RouteNetlinkMessage::NewAddress(a) = m {
                if a.header.index == ifindex && a.header.family == AddressFamily::Inet {
                    out.extend(ipv4_address(&a).map(|ip| (ip, a.header.prefix_len)));
                }
            }
        })?;
        Ok(link)
    }

    /// Sets interface `ifindex` administratively up (RTM_NEWLINK with IFF_UP in the change
    /// mask only: no other flag is touched).
    pub fn set_link_up(&mut self, ifindex: u32) -> io::Result<()> {
        let mut req = LinkMessage::default();
        req.header.index = ifindex;
        req.header.flags = LinkFlags::Up;
        req.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(req), NLM_F_ACK, |_| {})
            .map(drop)
    }

    /// Stops the kernel from giving interface `ifindex` IPv6 addresses of its own when it comes
    /// up (the link-local one, and with it routes in the main table): RTM_NEWLINK with
    /// IFLA_INET6_ADDR_GEN_MODE none. Ok when the interface has no IPv6 (EAFNOSUPPORT): it
    /// gets no address then either.
    pub fn set_no_ipv6_link_local(&mut self, ifindex: u32) -> io::Result<()> {
        let mut req = LinkMessage::default();
        req.header.index = ifindex;
        req.attributes
            .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
                vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
            )]));
        match self.request(RouteNetlinkMessage::SetLink(req), NLM_F_ACK, |_| {}) {
            Err(e) if is_errno(&e, libc::EAFNOSUPPORT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Adds (or replaces) the host route `dst/32` (IPv4) or `dst/128` (IPv6) `dev ifindex` in
    /// routing table `table`, protocol static: a route a routing daemon can learn from that
    /// table.
    pub fn replace_host_route(
        &mut self,
        table: u32,
        dst: impl Into<IpAddr>,
        ifindex: u32,
    ) -> io::Result<()> {
        let req = host_route(table, dst.into(), ifindex);
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        self.request(RouteNetlinkMessage::NewRoute(req), flags, |_| {})
            .map(drop)
    }

    /// Deletes what [`Netlink::replace_host_route`] added. Idempotent: a route already gone
    /// (ESRCH) is Ok.
    pub fn delete_host_route(
        &mut self,
        table: u32,
        dst: impl Into<IpAddr>,
        ifindex: u32,
    ) -> io::Result<()> {
        let req = host_route(table, dst.into(), ifindex);
        match self.request(RouteNetlinkMessage::DelRoute(req), NLM_F_ACK, |_| {}) {
            Err(e) if is_errno(&e, libc::ESRCH) => Ok(()),
            r => r.map(drop),
        }
    }

    /// The unicast main-table routes of family `A` through `ifindexes` (empty: any), lowest
    /// metric first.
    fn route_hops<A: Family>(&mut self, ifindexes: &[u32]) -> io::Result<Vec<RouteHop<A>>> {
        let mut req = RouteMessage::default();
        req.header.address_family = A::FAMILY;
        let mut found = self.dump_all(RouteNetlinkMessage::GetRoute(req), |m, out| {
            if let RouteNetlinkMessage::NewRoute(r) = m {
                push_routes(r, out);
            }
        })?;
        found.retain(|h| wanted(ifindexes, h.ifindex));
        found.sort_by_key(|h| h.metric);
        Ok(found)
    }

    /// The neighbour entries of family `A` on `ifindexes` (empty: all).
    fn neighbour_entries<A: Family>(
        &mut self,
        ifindexes: &[u32],
    ) -> io::Result<Vec<NeighbourEntry<A>>> {
        let mut req = NeighbourMessage::default();
        req.header.family = A::FAMILY;
        let mut found = self.dump_all(RouteNetlinkMessage::GetNeighbour(req), |m, out| {
            if let RouteNetlinkMessage::NewNeighbour(n) = m {
                out.extend(neighbour(n));
            }
        })?;
        found.retain(|n| wanted(ifindexes, n.ifindex));
        Ok(found)
    }

    /// RTM_GETNEIGH for one address: `None` when the kernel has no such entry.
    fn get_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> io::Result<Option<Entry>> {
        let req = neighbour_request(ifindex, addr);
        let mut found = None;
        let res = self.request(RouteNetlinkMessage::GetNeighbour(req), NLM_F_ACK, |m| {
            if let RouteNetlinkMessage::NewNeighbour(n) = m {
                let ext = n.attributes.iter().find_map(|a| match a {
                    NeighbourAttribute::ExtFlags(f) => Some(*f),
                    _ => None,
                });
                found = Some(Entry {
                    state: u16::from(n.header.state),
                    flags: n.header.flags,
                    ext: ext.unwrap_or_default(),
                });
            }
        });
        match res {
            Err(e) if is_errno(&e, libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
            Ok(_) => Ok(found),
        }
    }

    /// RTM_NEWNEIGH in NUD_NONE with NTF_USE and/or NTF_EXT_MANAGED; `flags` adds
    /// NLM_F_CREATE etc.
    fn new_neighbour(
        &mut self,
        ifindex: u32,
        addr: IpAddr,
        use_: bool,
        managed: bool,
        flags: u16,
    ) -> io::Result<()> {
        let mut req = neighbour_request(ifindex, addr);
        if use_ {
            req.header.flags = NeighbourFlags::Use;
        }
        if managed {
            req.attributes
                .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        }
        self.request(
            RouteNetlinkMessage::NewNeighbour(req),
            NLM_F_ACK | flags,
            |_| {},
        )
        .map(drop)
    }

    /// A whole dump, retried while the kernel reports it inconsistent or the socket overflows
    /// (the last try is taken as it is).
    fn dump_all<T>(
        &mut self,
        req: RouteNetlinkMessage,
        mut parse: impl FnMut(RouteNetlinkMessage, &mut Vec<T>),
    ) -> io::Result<Vec<T>> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut out = Vec::new();
            match self.request(req.clone(), NLM_F_DUMP, |m| parse(m, &mut out)) {
                Ok(interrupted) if !interrupted || tries >= DUMP_TRIES => return Ok(out),
                Err(e) if !(is_errno(&e, libc::ENOBUFS) && tries < DUMP_TRIES) => return Err(e),
                _ => {}
            }
        }
    }

    /// Sends one request and hands each reply message to `each` until the request is
    /// answered: NLMSG_DONE for a dump, the ACK (or a NACK, returned as the error) otherwise.
    /// Returns whether the kernel flagged a dump as interrupted (NLM_F_DUMP_INTR).
    fn request(
        &mut self,
        payload: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        if self.sock.send(&out, 0)? != out.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        let mut interrupted = false;
        loop {
            self.recv_datagram()?;
            let mut off = 0;
            while off < self.buf.len() {
                let rest = &self.buf[off..];
                let nb = NetlinkBuffer::new_checked(rest).map_err(|e| invalid(&e.to_string()))?;
                let len = nb.length() as usize;
                off += (len + 3) & !3;
                if nb.sequence_number() != self.seq {
                    continue; // a late answer to an earlier request
                }
                interrupted |= nb.flags() & NLM_F_DUMP_INTR != 0;
                let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]);
                match parsed.map(|m| m.payload) {
                    Ok(NetlinkPayload::Done(d)) if d.code < 0 => return Err(errno(d.code)),
                    Ok(NetlinkPayload::Done(_)) => return Ok(interrupted),
                    Ok(NetlinkPayload::Error(e)) => {
                        return match e.code {
                            Some(c) => Err(errno(c.get())),
                            None => Ok(interrupted),
                        }
                    }
                    Ok(NetlinkPayload::InnerMessage(m)) => each(m),
                    Ok(_) => {}
                    // A message netlink-packet-route cannot decode is skipped, unless it is
                    // the answer itself.
                    Err(e) => {
                        let t = nb.message_type();
                        if t == netlink_packet_core::NLMSG_ERROR
                            || t == netlink_packet_core::NLMSG_DONE
                        {
                            return Err(invalid(&e.to_string()));
                        }
                    }
                }
            }
        }
    }

    /// Reads one whole datagram into `self.buf` (peeking at its size first).
    fn recv_datagram(&mut self) -> io::Result<()> {
        loop {
            self.buf.clear();
            let res = self
                .sock
                .recv(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)
                .and_then(|size| {
                    self.buf.clear();
                    self.buf.reserve(size);
                    self.sock.recv(&mut self.buf, 0)
                });
            return match res {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no rtnetlink reply in time",
                )),
                r => r.map(drop),
            };
        }
    }
}

/// An RTM_*ROUTE message for the host route `dst/32` or `dst/128` `dev ifindex` in `table`
/// (protocol static; scope link for IPv4, universe for IPv6, which has no route scopes: the
/// kernel reports every IPv6 route as universe, and iproute2 sends that).
fn host_route(table: u32, dst: IpAddr, ifindex: u32) -> RouteMessage {
    let mut r = RouteMessage::default();
    let (family, len, scope, dst) = match dst {
        IpAddr::V4(a) => (
            AddressFamily::Inet,
            32,
            RouteScope::Link,
            RouteAddress::Inet(a),
        ),
        IpAddr::V6(a) => (
            AddressFamily::Inet6,
            128,
            RouteScope::Universe,
            RouteAddress::Inet6(a),
        ),
    };
    r.header.address_family = family;
    r.header.destination_prefix_length = len;
    // Tables above 255 only fit RTA_TABLE; the header then says RT_TABLE_COMPAT (252), as
    // iproute2 does.
    r.header.table = u8::try_from(table).unwrap_or(252);
    r.header.protocol = RouteProtocol::Static;
    r.header.scope = scope;
    r.header.kind = RouteType::Unicast;
    r.attributes.push(RouteAttribute::Table(table));
    r.attributes.push(RouteAttribute::Destination(dst));
    r.attributes.push(RouteAttribute::Oif(ifindex));
    r
}

/// An RTM_*NEIGH message naming one address on one interface, NUD_NONE, no flags.
fn neighbour_request(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut req = NeighbourMessage::default();
    req.header.ifindex = ifindex;
    let dst = match addr {
        IpAddr::V4(a) => {
            req.header.family = AddressFamily::Inet;
            NeighbourAddress::Inet(a)
        }
        IpAddr::V6(a) => {
            req.header.family = AddressFamily::Inet6;
            NeighbourAddress::Inet6(a)
        }
    };
    req.attributes.push(NeighbourAttribute::Destination(dst));
    req
}

/// The address type of one family as rtnetlink carries it: [`Ipv4Addr`] or [`Ipv6Addr`].
trait Family: Copy {
    const FAMILY: AddressFamily;
    /// The destination of a route without RTA_DST (the default route).
    const UNSPECIFIED: Self;
    fn from_route(a: RouteAddress) -> Option<Self>;
    fn from_neighbour(a: &NeighbourAddress) -> Option<Self>;
}

impl Family for Ipv4Addr {
    const FAMILY: AddressFamily = AddressFamily::Inet;
    const UNSPECIFIED: Self = Ipv4Addr::UNSPECIFIED;
    fn from_route(a: RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet(a) => Some(a),
            _ => None,
        }
    }
    fn from_neighbour(a: &NeighbourAddress) -> Option<Self> {
        match a {
            NeighbourAddress::Inet(a) => Some(*a),
            _ => None,
        }
    }
}

impl Family for Ipv6Addr {
    const FAMILY: AddressFamily = AddressFamily::Inet6;
    const UNSPECIFIED: Self = Ipv6Addr::UNSPECIFIED;
    fn from_route(a: RouteAddress) -> Option<Self> {
        match a {
            RouteAddress::Inet6(a) => Some(a),
            _ => None,
        }
    }
    fn from_neighbour(a: &NeighbourAddress) -> Option<Self> {
        match a {
            NeighbourAddress::Inet6(a) => Some(*a),
            _ => None,
        }
    }
}

/// One next hop of a unicast main-table route, of either family.
struct RouteHop<A> {
    metric: u32,
    ifindex: u32,
    dst: A,
    prefix_len: u8,
    gateway: Option<A>,
}

/// A neighbour entry of either family.
struct NeighbourEntry<A> {
    ifindex: u32,
    addr: A,
    mac: [u8; 6],
    state: u16,
}

/// Appends the usable next hops of a unicast main-table route message of family `A`.
fn push_routes<A: Family>(r: RouteMessage, out: &mut Vec<RouteHop<A>>) {
    let h = &r.header;
    if h.address_family != A::FAMILY
        || h.kind != RouteType::Unicast
        || h.flags.contains(RouteFlags::Dead)
    {
        return;
    }
    let prefix_len = h.destination_prefix_length;
    let mut table = u32::from(h.table);
    let (mut dst, mut oif, mut metric) = (A::UNSPECIFIED, None, 0);
    let (mut gateway, mut via, mut hops) = (None, false, None);
    for a in r.attributes {
        match a {
            RouteAttribute::Table(t) => table = t,
            RouteAttribute::Destination(d) => match A::from_route(d) {
                Some(d) => dst = d,
                None => return,
            },
            RouteAttribute::Oif(i) => oif = Some(i),
            RouteAttribute::Priority(p) => metric = p,
            RouteAttribute::Gateway(g) => (gateway, via) = route_gateway(g),
            RouteAttribute::Via(_) => via = true,
            RouteAttribute::MultiPath(h) => hops = Some(h),
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return;
    }
    let mut push = |ifindex: u32, gateway: Option<A>, via: bool| {
        if !via {
            out.push(RouteHop {
                metric,
                ifindex,
                dst,
                prefix_len,
                gateway,
            });
        }
    };
    match (hops, oif) {
        (Some(hops), _) => {
            for hop in hops {
                if hop.flags.contains(RouteNextHopFlags::Dead) {
                    continue;
                }
                let (mut gateway, mut via) = (None, false);
                for a in hop.attributes {
                    match a {
                        RouteAttribute::Gateway(g) => (gateway, via) = route_gateway(g),
                        RouteAttribute::Via(_) => via = true,
                        _ => {}
                    }
                }
                push(hop.interface_index, gateway, via);
            }
        }
        (None, Some(oif)) => push(oif, gateway, via),
        (None, None) => {}
    }
}

/// An RTA_GATEWAY as `(gateway of the route's family, unusable)`.
fn route_gateway<A: Family>(g: RouteAddress) -> (Option<A>, bool) {
    match A::from_route(g) {
        Some(g) => (Some(g), false),
        None => (None, true),
    }
}

fn neighbour<A: Family>(n: NeighbourMessage) -> Option<NeighbourEntry<A>> {
    if n.header.family != A::FAMILY {
        return None;
    }
    let (mut addr, mut mac) = (None, [0; 6]);
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(d) => addr = A::from_neighbour(d),
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => mac.copy_from_slice(l),
            NeighbourAttribute::LinkLayerAddress(_) => return None,
            _ => {}
        }
    }
    Some(NeighbourEntry {
        ifindex: n.header.ifindex,
        addr: addr?,
        mac,
        state: u16::from(n.header.state),
    })
}

fn ipv4_address(a: &AddressMessage) -> Option<Ipv4Addr> {
    let pick = |want_local: bool| {
        a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(IpAddr::V4(ip)) if want_local => Some(*ip),
            AddressAttribute::Address(IpAddr::V4(ip)) if !want_local => Some(*ip),
            _ => None,
        })
    };
    pick(true).or_else(|| pick(false))
}

fn wanted(ifindexes: &[u32], ifindex: u32) -> bool {
    ifindexes.is_empty() || ifindexes.contains(&ifindex)
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_abs())
}

fn is_errno(e: &io::Error, code: i32) -> bool {
    e.raw_os_error() == Some(code)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Emitable;

    fn emitted(r: &RouteMessage) -> Vec<u8> {
        let mut buf = vec![0; r.buffer_len()];
        r.emit(&mut buf);
        buf
    }

    /// `ip route replace 198.18.0.129/32 dev #7 table 100 proto static scope link`, byte for
    /// byte: rtmsg, then RTA_TABLE, RTA_DST, RTA_OIF.
    #[test]
    fn an_ipv4_host_route_message() {
        let r = host_route(100, "198.18.0.129".parse().unwrap(), 7);
        #[rustfmt::skip]
        let want = [
            2, 32, 0, 0, 100, 4, 253, 1, 0, 0, 0, 0, // AF_INET /32 table static link unicast
            8, 0, 15, 0, 100, 0, 0, 0,               // RTA_TABLE 100
            8, 0, 1, 0, 198, 18, 0, 129,             // RTA_DST
            8, 0, 4, 0, 7, 0, 0, 0,                  // RTA_OIF 7
        ];
        assert_eq!(emitted(&r), want);
    }

    /// The IPv6 twin in a table above 255: /128, scope universe, the header's table
    /// RT_TABLE_COMPAT and the real one in RTA_TABLE.
    #[test]
    fn an_ipv6_host_route_message() {
        let r = host_route(1000, "2001:2::129".parse().unwrap(), 7);
        #[rustfmt::skip]
        let want = [
            10, 128, 0, 0, 252, 4, 0, 1, 0, 0, 0, 0, // AF_INET6 /128 compat static universe unicast
            8, 0, 15, 0, 0xe8, 0x03, 0, 0,           // RTA_TABLE 1000
            20, 0, 1, 0,                             // RTA_DST
            0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x29,
            8, 0, 4, 0, 7, 0, 0, 0,                  // RTA_OIF 7
        ];
        assert_eq!(emitted(&r), want);
    }
}
