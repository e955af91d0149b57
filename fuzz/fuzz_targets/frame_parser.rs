//! The wire views over arbitrary bytes (dataplane/src/wire, contract in its mod.rs):
//! `new_checked` never panics, and no getter of a view it accepted panics, whatever the bytes;
//! nor does the IPv6 extension-header walk, whose offset must stay within the payload. Each
//! view is tried on the input itself and, nested, on the payload of the view around it
//! (Ethernet -> IPv4/IPv6/ARP -> TCP/UDP/ICMP/ICMPv6, an IPv6 upper layer at the offset the
//! walk returns), as `process` reads a frame. On a copy, every fixed field setter and
//! `fill_checksum` must not panic either, and a filled checksum must verify.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use xvs_dataplane::wire::{
    ipv6, ipv6ext, ArpPacket, EtherType, EthernetFrame, IcmpPacket, Icmpv6Packet, IpProtocol,
    Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

fuzz_target!(|data: &[u8]| {
    ethernet(data);
    arp(data);
    ipv4(data);
    ipv6(data);
    let (src, dst) = addrs(data);
    tcp(data, src.into(), dst.into());
    udp(data, src.into(), dst.into());
    icmp(data);
    let (src, dst) = addrs6(data);
    tcp(data, src.into(), dst.into());
    udp(data, src.into(), dst.into());
    icmpv6(data, src, dst);
    walk(data);
});

/// Pseudo-header addresses for views tried on the raw input.
fn addrs(data: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(data.iter().rev()) {
        *d = *s;
    }
    (
        Ipv4Addr::new(a[0], a[1], a[2], a[3]),
        Ipv4Addr::new(a[4], a[5], a[6], a[7]),
    )
}

/// IPv6 pseudo-header addresses for views tried on the raw input.
fn addrs6(data: &[u8]) -> (Ipv6Addr, Ipv6Addr) {
    let mut a = [0u8; 32];
    for (d, s) in a.iter_mut().zip(data.iter().rev()) {
        *d = *s;
    }
    let (src, dst) = a.split_at(16);
    (
        Ipv6Addr::from(<[u8; 16]>::try_from(src).expect("16 bytes")),
        Ipv6Addr::from(<[u8; 16]>::try_from(dst).expect("16 bytes")),
    )
}

/// The extension-header walk over the raw input, from its first byte as the next header.
fn walk(data: &[u8]) {
    let Some((&next_header, rest)) = data.split_first() else {
        return;
    };
    match ipv6ext::walk(next_header, rest) {
        Ok(upper) => {
            assert!(upper.offset <= rest.len(), "the walk stays in its bytes");
            assert!(upper.ext_headers <= ipv6ext::MAX_EXTENSION_HEADERS);
            black_box(upper);
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
}

fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    black_box((
        frame.dst_addr(),
        frame.src_addr(),
        frame.dst_addr().is_broadcast(),
    ));
    black_box(frame.dst_addr().to_string());
    let payload = frame.payload();
    match frame.ethertype() {
        EtherType::Ipv4 => ipv4(payload),
        EtherType::Ipv6 => ipv6(payload),
        EtherType::Arp => arp(payload),
        other => {
            black_box(u16::from(other));
        }
    }
    let mut copy = data.to_vec();
    let mut frame = EthernetFrame::new_checked(&mut copy[..]).expect("checked once");
    let (src, dst) = (frame.src_addr(), frame.dst_addr());
    frame.set_src_addr(dst);
    frame.set_dst_addr(src);
    frame.set_ethertype(EtherType::Ipv4);
    black_box(frame.payload_mut());
}

fn arp(data: &[u8]) {
    let Ok(arp) = ArpPacket::new_checked(data) else {
        return;
    };
    black_box((
        arp.hardware_type(),
        arp.protocol_type(),
        arp.hardware_len(),
        arp.protocol_len(),
        arp.operation(),
        arp.source_hardware_addr(),
        arp.source_protocol_addr(),
        arp.target_hardware_addr(),
        arp.target_protocol_addr(),
    ));
    let mut copy = data.to_vec();
    let mut arp = ArpPacket::new_checked(&mut copy[..]).expect("checked once");
    let (sha, spa) = (arp.source_hardware_addr(), arp.source_protocol_addr());
    let (tha, tpa) = (arp.target_hardware_addr(), arp.target_protocol_addr());
    arp.set_ethernet_ipv4();
    arp.set_operation(2);
    arp.set_source_hardware_addr(tha);
    arp.set_source_protocol_addr(tpa);
    arp.set_target_hardware_addr(sha);
    arp.set_target_protocol_addr(spa);
}

fn ipv4(data: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        return;
    };
    black_box((
        ip.version(),
        ip.header_len(),
        ip.dscp_ecn(),
        ip.total_len(),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
        ip.frag_offset(),
        ip.is_fragment(),
        ip.ttl(),
        ip.checksum(),
        ip.has_options(),
        ip.verify_checksum(),
        ip.header(),
    ));
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = ip.payload();
    match ip.protocol() {
        IpProtocol::Tcp => tcp(payload, src.into(), dst.into()),
        IpProtocol::Udp => udp(payload, src.into(), dst.into()),
        IpProtocol::Icmp => icmp(payload),
        other => {
            black_box(u8::from(other));
        }
    }
    let mut copy = data.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut copy[..]).expect("checked once");
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(ip.ttl().wrapping_sub(1));
    ip.set_ident(!ip.ident());
    ip.set_dscp_ecn(0);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_more_frags(false);
    ip.set_frag_offset(0);
    ip.fill_checksum();
    assert!(
        ip.verify_checksum(),
        "a filled IPv4 header checksum verifies"
    );
    black_box(ip.payload_mut());
}

fn ipv6(data: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(data) else {
        return;
    };
    black_box((
        ip.version(),
        ip.traffic_class(),
        ip.flow_label(),
        ip.payload_len(),
        ip.total_len(),
        ip.next_header(),
        ip.hop_limit(),
        ip.header(),
    ));
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = ip.payload();
    match ipv6ext::upper_layer(&ip) {
        Ok(upper) => {
            assert!(
                upper.offset <= payload.len(),
                "the walk stays in the payload"
            );
            assert!(upper.ext_headers <= ipv6ext::MAX_EXTENSION_HEADERS);
            black_box((
                upper
                    .fragment
                    .map(|f| (f.is_fragment(), f.is_first(), f.ident)),
                upper.routing_pending,
            ));
            // After a non-first fragment the bytes are data, not a header: the views must
            // take them all the same.
            let segment = &payload[upper.offset..];
            match upper.protocol {
                IpProtocol::Tcp => tcp(segment, src.into(), dst.into()),
                IpProtocol::Udp => udp(segment, src.into(), dst.into()),
                IpProtocol::Icmpv6 => icmpv6(segment, src, dst),
                other => {
                    black_box(u8::from(other));
                }
            }
        }
        Err(e) => {
            black_box(e.to_string());
        }
    }
    let (tc, flow, next) = (ip.traffic_class(), ip.flow_label(), ip.next_header());
    let payload_len = ip.payload_len() as u16;
    let mut copy = data.to_vec();
    let mut ip = Ipv6Packet::new_checked(&mut copy[..]).expect("checked once");
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_hop_limit(ip.hop_limit().wrapping_sub(1));
    ip.set_traffic_class(!tc);
    ip.set_flow_label(!flow);
    ip.set_next_header(next);
    ip.set_payload_len(payload_len);
    ip.set_version(6);
    assert!(ip.check_len().is_ok(), "the same lengths still check");
    assert_eq!(
        (ip.traffic_class(), ip.flow_label(), ip.src_addr()),
        (!tc, !flow & 0xf_ffff, dst),
        "IPv6 setters round-trip"
    );
    black_box(ip.payload_mut());
}

fn icmpv6(data: &[u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let Ok(icmp) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    black_box((
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.is_error(),
        icmp.checksum(),
        icmp.rest_of_header(),
        icmp.mtu(),
        icmp.pointer(),
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.data(),
        icmp.verify_checksum(src, dst),
    ));
    // Quoted packets of ICMPv6 errors are parsed as IPv6 too; usually cut short, so also
    // unchecked, with the walk over what was quoted.
    if icmp.is_error() {
        let quote = icmp.data();
        ipv6(quote);
        if quote.len() >= ipv6::HEADER_LEN {
            let quoted = Ipv6Packet::new_unchecked(quote);
            black_box(ipv6ext::walk(
                quoted.next_header().into(),
                &quote[ipv6::HEADER_LEN..],
            ))
            .ok();
        }
    }
    let mut copy = data.to_vec();
    let mut icmp = Icmpv6Packet::new_checked(&mut copy[..]).expect("checked once");
    icmp.set_msg_type(129);
    icmp.set_msg_code(0);
    icmp.set_rest_of_header(icmp.rest_of_header());
    icmp.set_mtu(1280);
    icmp.set_pointer(40);
    icmp.set_echo_ident(1);
    icmp.set_echo_seq_no(2);
    icmp.fill_checksum(dst, src);
    assert!(
        icmp.verify_checksum(dst, src),
        "a filled ICMPv6 checksum verifies"
    );
    black_box(icmp.data_mut());
}

fn tcp(data: &[u8], src: IpAddr, dst: IpAddr) {
    let Ok(tcp) = TcpPacket::new_checked(data) else {
        return;
    };
    let flags = tcp.flags();
    black_box((
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
        tcp.header_len(),
        flags.syn(),
        flags.ack(),
        flags.to_string(),
        format!("{flags:?}"),
        tcp.window_len(),
        tcp.checksum(),
        tcp.urgent_at(),
        tcp.options(),
        tcp.payload(),
        tcp.verify_checksum(src, dst),
    ));
    // IPv4's pseudo-header length field is 16 bits: only IP payloads (no jumbograms) fill one.
    if data.len() > usize::from(u16::MAX) {
        return;
    }
    let mut copy = data.to_vec();
    let mut tcp = TcpPacket::new_checked(&mut copy[..]).expect("checked once");
    let (sport, dport) = (tcp.src_port(), tcp.dst_port());
    tcp.set_src_port(dport);
    tcp.set_dst_port(sport);
    tcp.set_seq_number(tcp.ack_number());
    tcp.set_ack_number(1);
    tcp.set_flags(flags);
    tcp.set_window_len(0);
    tcp.set_urgent_at(0);
    tcp.fill_checksum(dst, src);
    assert!(
        tcp.verify_checksum(dst, src),
        "a filled TCP checksum verifies"
    );
    black_box(tcp.payload_mut());
}

fn udp(data: &[u8], src: IpAddr, dst: IpAddr) {
    let Ok(udp) = UdpPacket::new_checked(data) else {
        return;
    };
    black_box((
        udp.src_port(),
        udp.dst_port(),
        udp.len(),
        udp.checksum(),
        udp.payload(),
        udp.verify_checksum(src, dst),
    ));
    let mut copy = data.to_vec();
    let mut udp = UdpPacket::new_checked(&mut copy[..]).expect("checked once");
    let (sport, dport) = (udp.src_port(), udp.dst_port());
    udp.set_src_port(dport);
    udp.set_dst_port(sport);
    udp.fill_checksum(dst, src);
    assert_ne!(
        udp.checksum(),
        0,
        "a computed UDP checksum is never sent as 0"
    );
    assert!(
        udp.verify_checksum(dst, src),
        "a filled UDP checksum verifies"
    );
    black_box(udp.payload_mut());
}

fn icmp(data: &[u8]) {
    let Ok(icmp) = IcmpPacket::new_checked(data) else {
        return;
    };
    black_box((
        icmp.msg_type(),
        icmp.msg_code(),
        icmp.checksum(),
        icmp.rest_of_header(),
        icmp.echo_ident(),
        icmp.echo_seq_no(),
        icmp.next_hop_mtu(),
        icmp.data(),
        icmp.verify_checksum(),
    ));
    // Quoted datagrams of ICMP errors are parsed as IPv4 too.
    ipv4(icmp.data());
    let mut copy = data.to_vec();
    let mut icmp = IcmpPacket::new_checked(&mut copy[..]).expect("checked once");
    icmp.set_msg_type(0);
    icmp.set_msg_code(0);
    icmp.set_rest_of_header(icmp.rest_of_header());
    icmp.set_echo_ident(1);
    icmp.set_echo_seq_no(2);
    icmp.set_next_hop_mtu(1500);
    icmp.fill_checksum();
    assert!(icmp.verify_checksum(), "a filled ICMP checksum verifies");
    black_box(icmp.data_mut());
}
