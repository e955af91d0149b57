//! Tunnel encapsulation of IPv4 packets, as IPVS's tunnelling method sends them
//! (`ip_vs_tunnel_xmit`, with `ipvs_gue_encap` and `ipvs_gre_encap`): an outer IPv4 header
//! from the director to the real server, then for GUE a UDP header and a 4-byte GUE header
//! (variant 0, no options, protocol 4), for GRE a 4-byte GRE header (protocol 0x0800,
//! optionally with a checksum), then the packet itself, unchanged.
//!
//! Outer header fields follow IPVS: TOS, TTL and DF copied from the inner header (so path MTU
//! discovery keeps working end to end), the inner identification reused (IPVS draws a fresh
//! one; any value is valid with DF, and without DF the outer packet is never fragmented
//! here). GUE's UDP source port is taken from a hash of the connection, in 49152..=65535, so
//! that a real server's RSS spreads tunnels as it would spread their flows; its checksum is 0
//! (`--tun-nocsum`, the default) or computed (`--tun-csum`), a computed 0 sent as 0xffff.
//!
//! Pure functions over byte slices: the caller has made room for the outer headers.

use crate::checksum;
use crate::conntrack::Conn;
use crate::snapshot::{Encap, Tunnel};
use std::net::Ipv4Addr;

/// IP protocol numbers of the outer header.
const PROTO_IPIP: u8 = 4;
const PROTO_UDP: u8 = 17;
const PROTO_GRE: u8 = 47;
/// GRE's protocol type for IPv4, and its checksum-present flag.
const GRE_IPV4: [u8; 2] = [0x08, 0x00];
const GRE_FLAG_CHECKSUM: u8 = 0x80;
/// GUE's UDP source ports: the dynamic range (RFC 6335).
const GUE_SOURCE_PORTS: u16 = 49152;
const DF: u8 = 0x40;

/// GUE's UDP source port for `conn`'s packets (the XDP fast path is given it).
pub fn gue_source_port(conn: &Conn) -> u16 {
    let flow_hash = u32::from(conn.caddr) ^ (u32::from(conn.cport) << 16 | u32::from(conn.vport));
    GUE_SOURCE_PORTS | (fold_hash(flow_hash) & 0x3fff)
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
    let protocol = match tunnel.encap {
        Encap::Ipip => PROTO_IPIP,
        Encap::Gue => PROTO_UDP,
        Encap::Gre => PROTO_GRE,
    };
    let (ip, rest) = outer.split_at_mut(20);
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
        protocol,
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

    match tunnel.encap {
        Encap::Ipip => {}
        Encap::Gue => {
            let udp_len = (rest.len() + inner.len()) as u16;
            let source = gue_source_port(conn);
            rest[..8].copy_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            rest[0..2].copy_from_slice(&source.to_be_bytes());
            rest[2..4].copy_from_slice(&tunnel.port.to_be_bytes());
            rest[4..6].copy_from_slice(&udp_len.to_be_bytes());
            // GUE variant 0, no options (hlen 0), carrying IPv4 (protocol 4), no flags.
            rest[8..12].copy_from_slice(&[0, PROTO_IPIP, 0, 0]);
            if tunnel.checksum {
                let sum = checksum::pseudo_header(src, dst, PROTO_UDP, udp_len)
                    + checksum::sum(rest)
                    + checksum::sum(inner);
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
            rest[..4].copy_from_slice(&[flags, 0, GRE_IPV4[0], GRE_IPV4[1]]);
            if tunnel.checksum {
                rest[4..8].fill(0);
                let sum = checksum::finish(checksum::sum(rest) + checksum::sum(inner));
                rest[4..6].copy_from_slice(&sum.to_be_bytes());
            }
        }
    }
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
}
