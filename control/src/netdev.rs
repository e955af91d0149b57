//! Queries of the kernel's `netdev` generic-netlink family (Linux 6.8+):
//! - which kernel thread runs the receive (NAPI) of each queue: `queue-get` maps an interface's
//!   RX queues to NAPI instances and `napi-get` gives each threaded NAPI's thread id.
//!   `xvsd --threaded-napi` pins each thread to the core of the worker that owns its queue (see
//!   [`crate::napi_tuning`]);
//! - what XDP an interface supports (`dev-get`'s `xdp-features`): `xvsd` redirects fast-path
//!   frames only to an interface that can transmit them ([`can_transmit_redirects`]).
//!
//! The messages are a handful of fixed attributes, written and read here by hand over a
//! `netlink-sys` socket, in the calling thread's network namespace.

use anyhow::{bail, Context};
use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};
use std::collections::HashMap;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
// include/uapi/linux/netdev.h
const NETDEV_CMD_QUEUE_GET: u8 = 10;
const NETDEV_CMD_NAPI_GET: u8 = 11;
const NETDEV_A_NAPI_IFINDEX: u16 = 1;
const NETDEV_A_NAPI_ID: u16 = 2;
const NETDEV_A_NAPI_PID: u16 = 4;
const NETDEV_A_QUEUE_ID: u16 = 1;
const NETDEV_A_QUEUE_IFINDEX: u16 = 2;
const NETDEV_A_QUEUE_TYPE: u16 = 3;
const NETDEV_A_QUEUE_NAPI_ID: u16 = 4;
const NETDEV_QUEUE_TYPE_RX: u32 = 0;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;
/// `NETDEV_XDP_ACT_NDO_XMIT`: the driver transmits frames redirected to it.
const NETDEV_XDP_ACT_NDO_XMIT: u64 = 1 << 2;

/// Whether interface `ifindex` takes frames that XDP programs redirect to it
/// (`NETDEV_XDP_ACT_NDO_XMIT`). A veth reports it only while its peer can receive them (an
/// XDP program or GRO on the peer); a driver without `ndo_xdp_xmit` never does.
pub fn can_transmit_redirects(ifindex: u32) -> anyhow::Result<bool> {
    let mut nl = Genl::open()?;
    let family = nl
        .family_id("netdev")
        .context("the kernel has no netdev netlink family (Linux 6.8 or later)")?;
    let req = nl.request(
        family,
        NLM_F_REQUEST,
        NETDEV_CMD_DEV_GET,
        NETDEV_A_DEV_IFINDEX,
        &ifindex.to_ne_bytes(),
    );
    let answers = nl.exchange(&req, false)?;
    let features = answers
        .iter()
        .find_map(|a| a.get(&NETDEV_A_DEV_XDP_FEATURES))
        .and_then(|v| Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?)))
        .context("the kernel did not report the interface's XDP features")?;
    Ok(features & NETDEV_XDP_ACT_NDO_XMIT != 0)
}

/// The kernel thread of each RX queue of an interface whose NAPI is threaded: (queue, tid).
pub fn rx_queue_threads(ifindex: u32) -> anyhow::Result<Vec<(u32, u32)>> {
    let mut nl = Genl::open()?;
    let family = nl
        .family_id("netdev")
        .context("the kernel has no netdev netlink family (Linux 6.8 or later)")?;
    // (queue, its NAPI id if the driver reports it).
    let mut rx_queues = Vec::new();
    for attrs in nl.dump(
        family,
        NETDEV_CMD_QUEUE_GET,
        NETDEV_A_QUEUE_IFINDEX,
        ifindex,
    )? {
        let get = |t| attrs.get(&t).and_then(|v| u32_of(v));
        if get(NETDEV_A_QUEUE_TYPE) == Some(NETDEV_QUEUE_TYPE_RX) {
            if let Some(queue) = get(NETDEV_A_QUEUE_ID) {
                rx_queues.push((queue, get(NETDEV_A_QUEUE_NAPI_ID)));
            }
        }
    }
    // (NAPI id, thread id) of the threaded instances.
    let mut napis = Vec::new();
    for attrs in nl.dump(family, NETDEV_CMD_NAPI_GET, NETDEV_A_NAPI_IFINDEX, ifindex)? {
        let get = |t| attrs.get(&t).and_then(|v| u32_of(v));
        if let (Some(id), Some(pid)) = (get(NETDEV_A_NAPI_ID), get(NETDEV_A_NAPI_PID)) {
            napis.push((id, pid));
        }
    }
    Ok(match_queues(rx_queues, napis))
}

/// Pairs RX queues with NAPI threads: by the NAPI id each queue reports; for drivers that
/// report none (veth), by order, since they add one NAPI per queue, in queue order, and the
/// kernel gives NAPI ids in increasing order.
fn match_queues(
    mut rx_queues: Vec<(u32, Option<u32>)>,
    mut napis: Vec<(u32, u32)>,
) -> Vec<(u32, u32)> {
    rx_queues.sort_unstable();
    napis.sort_unstable();
    let mut threads: Vec<(u32, u32)> = if rx_queues.iter().any(|(_, napi)| napi.is_some()) {
        let thread_of: HashMap<u32, u32> = napis.into_iter().collect();
        rx_queues
            .into_iter()
            .filter_map(|(queue, napi)| Some((queue, *thread_of.get(&napi?)?)))
            .collect()
    } else {
        rx_queues
            .into_iter()
            .zip(napis)
            .map(|((queue, _), (_, tid))| (queue, tid))
            .collect()
    };
    threads.sort_unstable();
    threads
}

fn u32_of(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.get(..4)?.try_into().ok()?))
}

/// A generic-netlink socket.
struct Genl {
    sock: Socket,
    seq: u32,
}

impl Genl {
    fn open() -> anyhow::Result<Self> {
        let mut sock = Socket::new(NETLINK_GENERIC).context("opening a generic netlink socket")?;
        sock.bind_auto()
            .context("binding the generic netlink socket")?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Genl { sock, seq: 0 })
    }

    /// A request: netlink header, generic header, one attribute.
    fn request(&mut self, kind: u16, flags: u16, cmd: u8, attr: u16, value: &[u8]) -> Vec<u8> {
        self.seq += 1;
        let attr_len = 4 + value.len();
        let len = 16 + 4 + align4(attr_len);
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&[cmd, 1, 0, 0]);
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&attr.to_ne_bytes());
        m.extend_from_slice(value);
        m.resize(len, 0);
        m
    }

    /// Sends `request` and collects the attributes of every answer until the end of the dump
    /// (or the single answer of a plain request).
    fn exchange(&mut self, request: &[u8], dump: bool) -> anyhow::Result<Vec<Attrs>> {
        self.sock
            .send(request, 0)
            .context("sending a netlink request")?;
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.sock.recv(&mut &mut buf[..], 0)?;
            let mut at = 0;
            while at + 16 <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into()?) as usize;
                let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into()?);
                if len < 16 || at + len > n {
                    bail!("malformed netlink answer");
                }
                let msg = &buf[at..at + len];
                at += align4(len);
                match kind {
                    NLMSG_DONE => return Ok(answers),
                    NLMSG_ERROR => {
                        let code = i32::from_ne_bytes(msg[16..20].try_into()?);
                        if code != 0 {
                            return Err(std::io::Error::from_raw_os_error(-code).into());
                        }
                        return Ok(answers);
                    }
                    _ if len >= 20 => answers.push(parse_attrs(&msg[20..])),
                    _ => {}
                }
            }
            if !dump && !answers.is_empty() {
                return Ok(answers);
            }
        }
    }

    fn family_id(&mut self, name: &str) -> anyhow::Result<u16> {
        let mut value = name.as_bytes().to_vec();
        value.push(0);
        // No NLM_F_ACK: the answer or an error is the only message, nothing is left queued.
        let req = self.request(
            GENL_ID_CTRL,
            NLM_F_REQUEST,
            CTRL_CMD_GETFAMILY,
            CTRL_ATTR_FAMILY_NAME,
            &value,
        );
        let answers = self.exchange(&req, false)?;
        answers
            .iter()
            .find_map(|a| a.get(&CTRL_ATTR_FAMILY_ID))
            .and_then(|v| Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?)))
            .with_context(|| format!("no id for the {name} family"))
    }

    /// A dump of `cmd` filtered by the u32 attribute `filter` = `value`.
    fn dump(
        &mut self,
        family: u16,
        cmd: u8,
        filter: u16,
        value: u32,
    ) -> anyhow::Result<Vec<Attrs>> {
        let req = self.request(
            family,
            NLM_F_REQUEST | NLM_F_DUMP,
            cmd,
            filter,
            &value.to_ne_bytes(),
        );
        self.exchange(&req, true)
    }
}

type Attrs = HashMap<u16, Vec<u8>>;

/// Top-level attributes (nested ones are kept as bytes).
fn parse_attrs(mut b: &[u8]) -> Attrs {
    let mut attrs = HashMap::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        attrs.insert(kind, b[4..len].to_vec());
        b = &b[align4(len).min(b.len())..];
    }
    attrs
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_parse_with_padding() {
        // A u32 (8 bytes) then a 2-byte value padded to 8.
        let mut b = Vec::new();
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&1u16.to_ne_bytes());
        b.extend_from_slice(&7u32.to_ne_bytes());
        b.extend_from_slice(&6u16.to_ne_bytes());
        b.extend_from_slice(&(2u16 | 0x8000).to_ne_bytes());
        b.extend_from_slice(&[9, 0, 0, 0]);
        let a = parse_attrs(&b);
        assert_eq!(a.get(&1).and_then(|v| u32_of(v)), Some(7));
        assert_eq!(a.get(&2).map(Vec::as_slice), Some(&[9u8, 0][..]));
        // Truncated input stops cleanly.
        assert_eq!(parse_attrs(&b[..6]).len(), 0);
    }

    #[test]
    fn queues_match_threads_by_reported_id_or_by_order() {
        // Reported ids win, whatever the order.
        let by_id = match_queues(
            vec![(1, Some(20)), (0, Some(30))],
            vec![(30, 300), (20, 200), (40, 400)],
        );
        assert_eq!(by_id, vec![(0, 300), (1, 200)]);
        // None reported (veth): queue order meets id order.
        let by_order = match_queues(vec![(1, None), (0, None)], vec![(342, 3420), (341, 3410)]);
        assert_eq!(by_order, vec![(0, 3410), (1, 3420)]);
        // No thread (not threaded): nothing to pin.
        assert!(match_queues(vec![(0, None)], vec![]).is_empty());
    }

    #[test]
    fn the_loopback_interface_has_no_napi_thread() {
        // The kernel here has the netdev family (6.8+); lo has no NAPI instance.
        assert_eq!(rx_queue_threads(1).unwrap(), vec![]);
    }
}
