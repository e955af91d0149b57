//! Tunnel encapsulation, as IPVS's tunnelling method sends packets (`ip_vs_tunnel_xmit` and
//! `ip_vs_tunnel_xmit_v6`, with `ipvs_gue_encap` and `ipvs_gre_encap`): an outer IP header of
//! the packet's own family from the director to the real server, then for GUE a UDP header
//! and a 4-byte GUE header (variant 0, no options, protocol 4 for IPv4, 41 for IPv6), for GRE
//! a 4-byte GRE header (protocol type 0x0800 or 0x86dd, optionally with a checksum), then
//! the packet itself. What follows the outer IP header is one code for both families
//! ([`write_encap`]); the outer headers are [`write_outer`] (IPv4) and [`write_outer6`].
//!
//! Outer IPv4 header fields follow IPVS: TOS, TTL and DF copied from the inner header (so
//! path MTU discovery keeps working end to end), the inner identification reused (IPVS draws
//! a fresh one; any value is valid with DF, and without DF the outer packet is never
//! fragmented here).
//!
//! Outer IPv6 header fields: traffic class and hop limit copied from the inner header (the
//! caller has decremented the hop limit, as IPVS's `decrement_ttl` does before
//! encapsulating); the traffic class whole, ECN included (RFC 6040's normal mode; IPVS turns
//! an inner CE into ECT(0), RFC 3168's full-functionality option, which the IPv4 header here
//! does not do either). The flow label is not IPVS's 0 but a hash of the connection
//! ([`flow_label`]), as RFC 6438 asks of a tunnel's ingress and the kernel's own `ip6tnl`
//! does (`auto_flowlabels`): routers between the director and the real servers that balance
//! by flow label then spread the tunnelled connections instead of pinning them all to one
//! path.
//!
//! GUE's UDP source port is taken from a hash of the connection, in 49152..=65535, so that a
//! real server's RSS spreads tunnels as it would spread their flows. Its checksum follows
//! IPVS (`udp_set_csum` and `udp6_set_csum` with `nocheck` unless `--tun-csum`): 0 with
//! `--tun-nocsum` (the default), computed with `--tun-csum` (a computed 0 sent as 0xffff),
//! for both families. A zero UDP checksum over IPv6 is RFC 6935's tunnel exception: a
//! receiver must opt in (RFC 6936), which the kernel's GUE receiver does (`fou` opens its
//! socket with `udp6_rx_checksums` off) and the one a real server runs must do alike; or
//! the real server takes `--tun-csum`.
//!
//! Pure functions over byte slices: the caller has made room for the outer headers and keeps
//! the packet under 64 KiB (its MTU check does).

use crate::checksum;
use crate::conntrack::{Address, Conn};
use crate::snapshot::{Encap, Tunnel};
use crate::wire::{IpProtocol, Ipv6Packet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol numbers of the outer header and GUE's, per inner family.
const PROTO_IPIP: u8 = 4;
const PROTO_IPV6: u8 = 41;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
/// GRE's protocol types (EtherTypes) of the inner families, and its checksum-present flag.
const GRE_IPV4: u16 = 0x0800;
const GRE_IPV6: u16 = 0x86dd;
const GRE_FLAG_CHECKSUM: u8 = 0x80;
/// GUE's UDP source ports: the dynamic range (RFC 6335).
const GUE_SOURCE_PORTS: u16 = 49152;
const DF: u8 = 0x40;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;

/// What the headers after the outer IP header say of the packet they carry.
#[derive(Clone, Copy)]
struct Inner {
    /// The IP protocol number of the packet's family: GUE's protocol, and IP in IP's.
    protocol: u8,
    /// GRE's protocol type.
    gre_type: u16,
}

const INNER_IPV4: Inner = Inner {
    protocol: PROTO_IPIP,
    gre_type: GRE_IPV4,
};
const INNER_IPV6: Inner = Inner {
    protocol: PROTO_IPV6,
    gre_type: GRE_IPV6,
};

/// GUE's UDP source port for `conn`'s packets (the XDP fast path is given it).
pub fn gue_source_port<A: Address>(conn: &Conn<A>) -> u16 {
    GUE_SOURCE_PORTS | (fold_hash(flow_hash(conn)) & 0x3fff)
}

/// The outer IPv6 header's flow label for `conn`'s packets (RFC 6438): 20 bits of a hash of
/// the connection, never 0 (RFC 6437: 0 means unlabelled).
pub fn flow_label(conn: &Conn<Ipv6Addr>) -> u32 {
    (flow_hash(conn).wrapping_mul(0x9e37_79b1) >> 12).max(1)
}

/// Writes the outer headers of `tunnel` into `outer` (exactly [`Tunnel::overhead`] bytes) for
/// the IPv4 packet `inner` (a checked header without options) of `conn`, from `src` to `dst`.
pub fn write_outer(
    outer: &mut [u8],
    inner: &[u8],
    tunnel: &Tunnel,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    conn: &Conn,
) {
    debug_assert_eq!(outer.len(), tunnel.overhead());
    let total = outer.len() + inner.len();
    let (ip, rest) = outer.split_at_mut(IPV4_HEADER_LEN);
    ip.copy_from_slice(&[
        0x45,
        inner[1],
        (total >> 8) as u8,
        total as u8,
        inner[4],
        inner[5],
        inner[6] & DF,
        0,
        inner[8],
        outer_protocol(tunnel, INNER_IPV4),
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ]);
    ip[12..16].copy_from_slice(&src.octets());
    ip[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::finish(checksum::sum(ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let pseudo = |udp_len: u16| checksum::pseudo_header(src, dst, PROTO_UDP, udp_len);
    write_encap(
        rest,
        inner,
        tunnel,
        INNER_IPV4,
        gue_source_port(conn),
        pseudo,
    );
}

/// Writes the outer headers of `tunnel` into `outer` (exactly [`Tunnel::overhead6`] bytes)
/// for the IPv6 packet `inner` (a checked fixed header) of `conn`, from `src` to `dst`.
pub fn write_outer6(
    outer: &mut [u8],
    inner: &[u8],
    tunnel: &Tunnel,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    conn: &Conn<Ipv6Addr>,
) {
    debug_assert_eq!(outer.len(), tunnel.overhead6());
    let payload_len = outer.len() - IPV6_HEADER_LEN + inner.len();
    debug_assert!(payload_len <= usize::from(u16::MAX), "no jumbograms");
    let inner_header = Ipv6Packet::new_unchecked(inner);
    let (traffic_class, hop_limit) = (inner_header.traffic_class(), inner_header.hop_limit());
    let (ip, rest) = outer.split_at_mut(IPV6_HEADER_LEN);
    let mut ip = Ipv6Packet::new_unchecked(ip);
    ip.set_version(6);
    ip.set_traffic_class(traffic_class);
    ip.set_flow_label(flow_label(conn));
    ip.set_payload_len(payload_len as u16);
    ip.set_next_header(IpProtocol::from(outer_protocol(tunnel, INNER_IPV6)));
    ip.set_hop_limit(hop_limit);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    let pseudo = |udp_len: u16| checksum::pseudo_header_v6(src, dst, PROTO_UDP, udp_len.into());
    write_encap(
        rest,
        inner,
        tunnel,
        INNER_IPV6,
        gue_source_port(conn),
        pseudo,
    );
}

/// The outer IP header's protocol (next header) for `tunnel` carrying a packet of `inner`'s
/// family.
fn outer_protocol(tunnel: &Tunnel, inner: Inner) -> u8 {
    match tunnel.encap {
        Encap::Ipip => inner.protocol,
        Encap::Gue => PROTO_UDP,
        Encap::Gre => PROTO_GRE,
    }
}

/// Writes what follows the outer IP header ([`Tunnel::encap_len`] bytes, `rest`) for the
/// packet `inner` of family `family`: GUE's UDP header (from `source_port`, its checksum over
/// `pseudo(udp length)` when asked for) and GUE header, or GRE's header; nothing for IP in IP.
fn write_encap(
    rest: &mut [u8],
    inner: &[u8],
    tunnel: &Tunnel,
    family: Inner,
    source_port: u16,
    pseudo: impl FnOnce(u16) -> u32,
) {
    match tunnel.encap {
        Encap::Ipip => {}
        Encap::Gue => {
            let udp_len = (rest.len() + inner.len()) as u16;
            rest[..8].fill(0);
            rest[0..2].copy_from_slice(&source_port.to_be_bytes());
            rest[2..4].copy_from_slice(&tunnel.port.to_be_bytes());
            rest[4..6].copy_from_slice(&udp_len.to_be_bytes());
            // GUE variant 0, no options (hlen 0), carrying the packet's family, no flags.
            rest[8..12].copy_from_slice(&[0, family.protocol, 0, 0]);
            if tunnel.checksum {
                let sum = pseudo(udp_len) + checksum::sum(rest) + checksum::sum(inner);
                let sum = match checksum::finish(sum) {
                    0 => 0xffff,
                    s => s,
                };
                rest[6..8].copy_from_slice(&sum.to_be_bytes());
            }
        }
        Encap::Gre => {
            let flags = if tunnel.checksum {
                GRE_FLAG_CHECKSUM
            } else {
                0
            };
            let [type_hi, type_lo] = family.gre_type.to_be_bytes();
            rest[..4].copy_from_slice(&[flags, 0, type_hi, type_lo]);
            if tunnel.checksum {
                rest[4..8].fill(0);
                let sum = checksum::finish(checksum::sum(rest) + checksum::sum(inner));
                rest[4..6].copy_from_slice(&sum.to_be_bytes());
            }
        }
    }
}

/// A 32-bit hash of `conn`'s client endpoint and virtual port, which a connection's packets
/// share: an IPv6 client address folded to 32 bits first.
fn flow_hash<A: Address>(conn: &Conn<A>) -> u32 {
    let client = match conn.caddr.into() {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let a = u128::from(a);
            (a >> 96) as u32 ^ (a >> 64) as u32 ^ (a >> 32) as u32 ^ a as u32
        }
    };
    client ^ (u32::from(conn.cport) << 16 | u32::from(conn.vport))
}

/// 16 well-mixed bits of a 32-bit hash.
fn fold_hash(h: u32) -> u16 {
    let h = h.wrapping_mul(0x9e37_79b1);
    (h >> 16) as u16 ^ h as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner() -> Vec<u8> {
        // 198.18.0.201 -> 198.18.0.129, TCP, DF, TTL 63, TOS 0x10, id 0x1234, 8 bytes of TCP.
        let mut p = vec![
            0x45, 0x10, 0, 28, 0x12, 0x34, 0x40, 0, 63, 6, 0, 0, 198, 18, 0, 201, 198, 18, 0, 129,
            0x9c, 0x40, 0, 80, 0, 0, 0, 1,
        ];
        let sum = checksum::finish(checksum::sum(&p[..20]));
        p[10..12].copy_from_slice(&sum.to_be_bytes());
        p
    }

    fn conn() -> Conn {
        Conn {
            proto: 6,
            caddr: Ipv4Addr::new(198, 18, 0, 201),
            cport: 40000,
            vaddr: Ipv4Addr::new(198, 18, 0, 129),
            vport: 80,
            daddr: Ipv4Addr::new(198, 19, 0, 148),
            dport: 80,
            service: 0,
            real: 0,
            method: crate::snapshot::Method::Masq,
            laddr: Ipv4Addr::new(198, 18, 0, 201),
            lport: 40000,
            state: crate::conntrack::TcpState::None,
            expires_ms: 0,
        }
    }

    fn encap(tunnel: Tunnel) -> Vec<u8> {
        let inner = inner();
        let mut outer = vec![0u8; tunnel.overhead()];
        write_outer(
            &mut outer,
            &inner,
            &tunnel,
            Ipv4Addr::new(198, 19, 0, 152),
            Ipv4Addr::new(198, 19, 0, 148),
            &conn(),
        );
        outer.extend_from_slice(&inner);
        outer
    }

    #[test]
    fn ipip_outer_header_copies_tos_ttl_and_df() {
        let p = encap(Tunnel {
            encap: Encap::Ipip,
            port: 0,
            checksum: false,
        });
        assert_eq!(p.len(), 48);
        assert_eq!(&p[..2], &[0x45, 0x10]);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 48);
        assert_eq!(&p[4..10], &[0x12, 0x34, 0x40, 0, 63, 4]);
        assert_eq!(&p[12..20], &[198, 19, 0, 152, 198, 19, 0, 148]);
        assert_eq!(checksum::data(&p[..20]), 0, "valid outer header checksum");
        assert_eq!(&p[20..], &inner()[..]);
    }

    #[test]
    fn gue_with_and_without_checksum() {
        for checksum in [false, true] {
            let p = encap(Tunnel {
                encap: Encap::Gue,
                port: 6080,
                checksum,
            });
            assert_eq!(p.len(), 20 + 8 + 4 + 28);
            assert_eq!(p[9], PROTO_UDP);
            let udp = &p[20..];
            assert!(u16::from_be_bytes([udp[0], udp[1]]) >= GUE_SOURCE_PORTS);
            assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 6080);
            assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 8 + 4 + 28);
            assert_eq!(&udp[8..12], &[0, 4, 0, 0], "GUE header");
            let field = u16::from_be_bytes([udp[6], udp[7]]);
            if checksum {
                let pseudo = checksum::pseudo_header(
                    Ipv4Addr::new(198, 19, 0, 152),
                    Ipv4Addr::new(198, 19, 0, 148),
                    PROTO_UDP,
                    udp.len() as u16,
                );
                assert_eq!(checksum::finish(pseudo + checksum::sum(udp)), 0);
            } else {
                assert_eq!(field, 0, "--tun-nocsum");
            }
        }
    }

    #[test]
    fn gre_with_and_without_checksum() {
        let plain = encap(Tunnel {
            encap: Encap::Gre,
            port: 0,
            checksum: false,
        });
        assert_eq!((plain[9], &plain[20..24]), (PROTO_GRE, &[0, 0, 8, 0][..]));
        let summed = encap(Tunnel {
            encap: Encap::Gre,
            port: 0,
            checksum: true,
        });
        assert_eq!(&summed[20..22], &[0x80, 0]);
        assert_eq!(
            checksum::data(&summed[20..]),
            0,
            "GRE checksum over header and payload"
        );
        assert_eq!(&summed[28..], &inner()[..]);
    }

    // IPv6: 2001:2::201 -> 2001:2::129, TCP, traffic class 0xb8, flow label 0x12345, hop
    // limit 63, 8 bytes of TCP.
    fn inner6() -> Vec<u8> {
        let mut p = vec![0x6b, 0x81, 0x23, 0x45, 0, 8, 6, 63];
        p.extend_from_slice(&CLIENT6.octets());
        p.extend_from_slice(&VIP6.octets());
        p.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 0, 0, 1]);
        p
    }

    const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x201);
    const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0x129);
    const DIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x152);
    const REAL6: Ipv6Addr = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, 0, 0x148);

    fn conn6(cport: u16) -> Conn<Ipv6Addr> {
        Conn {
            proto: 6,
            caddr: CLIENT6,
            cport,
            vaddr: VIP6,
            vport: 80,
            daddr: REAL6,
            dport: 80,
            service: 0,
            real: 0,
            method: crate::snapshot::Method::Masq,
            laddr: CLIENT6,
            lport: cport,
            state: crate::conntrack::TcpState::None,
            expires_ms: 0,
        }
    }

    fn encap6(tunnel: Tunnel) -> Vec<u8> {
        let inner = inner6();
        let mut outer = vec![0u8; tunnel.overhead6()];
        write_outer6(&mut outer, &inner, &tunnel, DIP6, REAL6, &conn6(40000));
        outer.extend_from_slice(&inner);
        outer
    }

    #[test]
    fn ip6ip6_outer_header_copies_traffic_class_and_hop_limit() {
        let tunnel = Tunnel {
            encap: Encap::Ipip,
            port: 0,
            checksum: false,
        };
        let p = encap6(tunnel);
        assert_eq!(p.len(), 40 + 48);
        let outer = Ipv6Packet::new_unchecked(&p[..]);
        assert_eq!((outer.version(), outer.traffic_class()), (6, 0xb8));
        assert_eq!(outer.flow_label(), flow_label(&conn6(40000)));
        assert_eq!(outer.payload_len(), 48);
        assert_eq!((p[6], outer.hop_limit()), (PROTO_IPV6, 63));
        assert_eq!((outer.src_addr(), outer.dst_addr()), (DIP6, REAL6));
        assert_eq!(&p[40..], &inner6()[..]);
    }

    #[test]
    fn gue_and_gre_over_ipv6_name_ipv6() {
        for checksum in [false, true] {
            let p = encap6(Tunnel {
                encap: Encap::Gue,
                port: 6080,
                checksum,
            });
            assert_eq!((p.len(), p[6]), (40 + 8 + 4 + 48, PROTO_UDP));
            let udp = &p[40..];
            assert_eq!(u16::from_be_bytes([udp[4], udp[5]]), 8 + 4 + 48);
            assert_eq!(&udp[8..12], &[0, 41, 0, 0], "GUE carrying IPv6");
            let pseudo = checksum::pseudo_header_v6(DIP6, REAL6, PROTO_UDP, udp.len() as u32);
            match checksum {
                true => assert_eq!(checksum::finish(pseudo + checksum::sum(udp)), 0),
                false => assert_eq!(&udp[6..8], &[0, 0], "--tun-nocsum: RFC 6935's zero"),
            }
            let p = encap6(Tunnel {
                encap: Encap::Gre,
                port: 0,
                checksum,
            });
            assert_eq!(p[6], PROTO_GRE);
            let gre = &p[40..];
            assert_eq!(&gre[1..4], &[0, 0x86, 0xdd], "GRE carrying IPv6");
            if checksum {
                assert_eq!(gre[0], 0x80);
                assert_eq!(checksum::data(gre), 0, "GRE checksum");
            }
        }
    }

    /// One connection, one label (its packets stay on one path); never 0 (unlabelled); other
    /// connections of the client spread.
    #[test]
    fn flow_labels_follow_the_connection() {
        assert_eq!(flow_label(&conn6(40000)), flow_label(&conn6(40000)));
        let labels: std::collections::HashSet<u32> =
            (40000..40064).map(|p| flow_label(&conn6(p))).collect();
        assert!(labels.len() > 60, "{} distinct labels", labels.len());
        assert!(labels.iter().all(|&l| l != 0 && l < 1 << 20));
    }
}
