//! Address families at the boundary between the protocol and the model.
//!
//! The protocol, the model and the dataplane carry IPv4 and IPv6 addresses alike.
//! [`apply`](super::apply) runs every command through two checks before anything else:
//!
//! 1. [`check_families`]: the rules on address families that hold whatever the dataplane
//!    supports (IPVS's rules): a real server of another family than its service only when
//!    tunnelled, a persistence netmask of the service's family, a local address of the
//!    service's family;
//! 2. [`check_dataplane`]: what IPVS allows but the dataplane cannot forward yet is refused
//!    as not supported: a tunnelled real server of the other family than its service (no
//!    crossing of families). The dataplane counts drops of such flows (`real_family`) should
//!    one reach it all the same.
//!
//! Everything else IPv6 goes through as IPv4 does: services, persistence (`-p`, with `-M` a
//! prefix length), masquerading, direct routing, tunnelling (IPv6 in IPv6, GUE and GRE over
//! IPv6), FullNAT with IPv6 local addresses, schedulers, weights, thresholds, health checks.
//! Each check refuses the whole request (a batch, a configuration) like any other invalid
//! command, changing nothing.

use super::ApplyError;
use crate::protocol::{Command, Forward, Netmask, ServiceKey};
use std::net::IpAddr;

fn family(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// IPVS's rules on address families, for one command (see the module doc).
pub(super) fn check_families(command: &Command) -> Result<(), ApplyError> {
    match command {
        Command::AddService {
            service, netmask, ..
        }
        | Command::EditService {
            service, netmask, ..
        } => match netmask {
            Some(netmask) => check_netmask(service, *netmask),
            None => Ok(()),
        },
        // ip_vs_genl_set_cmd (net/netfilter/ipvs/ip_vs_ctl.c), for IPVS_CMD_NEW_DEST and
        // IPVS_CMD_SET_DEST (not DEL_DEST, whose lookup simply finds nothing):
        //         if (udest.af != svc->af && cmd != IPVS_CMD_DEL_DEST) {
        //                 ...
        //                 /* Which connection types do we support? */
        //                 switch (udest.conn_flags) {
        //                 case IP_VS_CONN_F_TUNNEL:
        //                         /* We are able to forward this */
        //                         break;
        //                 default:
        //                         ret = -EINVAL;
        // An `add_real` without `forward` masquerades; an `edit_real` without it keeps the
        // method, which a real server of the other family can only have as a tunnel.
        Command::AddReal {
            service,
            real,
            forward,
            ..
        } => check_mixed(service, real.addr, Some(forward.unwrap_or(Forward::Masq))),
        Command::EditReal {
            service,
            real,
            forward,
            ..
        } => check_mixed(service, real.addr, *forward),
        // A FullNAT local address is the source of the connections to the real servers, which
        // have the service's family (FullNAT is no tunnel). `del_laddr` of another family finds
        // nothing, as `del_real` does.
        Command::AddLaddr { service, addr } if addr.is_ipv4() != service.addr.is_ipv4() => {
            Err(ApplyError::InvalidArgument(format!(
                "local address {addr} is {} and service {service} {}: a FullNAT local address \
                 has its service's address family (that of its real servers)",
                family(*addr),
                family(service.addr)
            )))
        }
        _ => Ok(()),
    }
}

/// A real server of the other family than its service, by IPVS's rule: tunnelling only.
fn check_mixed(
    service: &ServiceKey,
    real: IpAddr,
    forward: Option<Forward>,
) -> Result<(), ApplyError> {
    match forward {
        Some(forward) if real.is_ipv4() != service.addr.is_ipv4() && forward != Forward::Tunnel => {
            Err(ApplyError::InvalidArgument(format!(
                "real server {real} is {} and service {service} {}: a real server of another \
                 address family than its service is allowed only for tunneling (-i), as in \
                 IPVS, not with {} (ipvsadm: \"Different address family is allowed only for \
                 tunneling servers\")",
                family(real),
                family(service.addr),
                match forward {
                    Forward::Masq => "masquerading (-m)",
                    Forward::Route => "direct routing (-g)",
                    Forward::FullNat => "FullNAT (--fullnat)",
                    Forward::Tunnel => "tunneling (-i)",
                }
            )))
        }
        _ => Ok(()),
    }
}

/// `-M` of the service's family: a mask for IPv4, a prefix length 1..=128 for IPv6 (IPVS's
/// ip_vs_add_service / ip_vs_edit_service: `if (plen < 1 || plen > 128) ret = -EINVAL`).
fn check_netmask(service: &ServiceKey, netmask: Netmask) -> Result<(), ApplyError> {
    match (service.addr, netmask) {
        (IpAddr::V4(_), Netmask::Mask(_)) => Ok(()),
        (IpAddr::V6(_), Netmask::PrefixLen(1..=128)) => Ok(()),
        (IpAddr::V6(_), Netmask::PrefixLen(len)) => Err(ApplyError::InvalidArgument(format!(
            "prefix length {len} of IPv6 service {service} is out of range (1..=128)"
        ))),
        (IpAddr::V6(_), Netmask::Mask(mask)) => Err(ApplyError::InvalidArgument(format!(
            "netmask {mask} does not fit IPv6 service {service}: an IPv6 service's persistence \
             granularity is a prefix length (1..=128)"
        ))),
        (IpAddr::V4(_), Netmask::PrefixLen(len)) => Err(ApplyError::InvalidArgument(format!(
            "prefix length {len} does not fit IPv4 service {service}: an IPv4 service's \
             persistence granularity is a dotted netmask (255.255.255.0)"
        ))),
    }
}

/// What the dataplane cannot forward yet, for one command (see the module doc): refused as
/// not supported, after [`check_families`] has let it through as valid.
pub(super) fn check_dataplane(command: &Command) -> Result<(), ApplyError> {
    let not_yet = |message: String| Err(ApplyError::Unsupported(message));
    match command {
        // An edit without `forward` keeps the method: no real server of the other family
        // gets here to keep one.
        Command::AddReal {
            service,
            real,
            forward: Some(Forward::Tunnel),
            ..
        }
        | Command::EditReal {
            service,
            real,
            forward: Some(Forward::Tunnel),
            ..
        } if real.addr.is_ipv4() != service.addr.is_ipv4() => not_yet(format!(
            "real server {real} is {} and service {service} {}: IPVS tunnels to a real server \
             of another address family than its service, but this xvsd's dataplane does not \
             forward across families yet",
            family(real.addr),
            family(service.addr)
        )),
        _ => Ok(()),
    }
}
