//! `--sloppy-tcp` (IPVS's sloppy_tcp): a TCP segment other than a SYN of a flow with no entry
//! opens one when the service's scheduler is consistent (every director picks the same real
//! server for it), so that a flow ECMP moves to this director keeps its real server. The entry
//! starts ESTABLISHED (the flow was, where it came from). A RST never opens one, and neither
//! does any segment without the setting or under a scheduler that is not consistent.

mod common;

use common::*;
use xvs_dataplane::conntrack::TcpState;
use xvs_dataplane::neigh::NeighbourTable;
use xvs_dataplane::process::{Side, Verdict};
use xvs_dataplane::snapshot::{Method, PROTO_TCP};
use xvs_dataplane::stats::DropReason;
use xvs_scheduler::{Flags, Scheduler, SchedulerKind};

/// A director with TCP VIP:80 scheduled by `kind` over .148 and .137 (NAT), sloppy or not.
fn director(kind: SchedulerKind, sloppy_tcp: bool) -> Director {
    let (vip, mut svc) = service_by(
        Method::Masq,
        0,
        PROTO_TCP,
        80,
        &[(0, REAL_148, 80, 1), (1, REAL_137, 80, 1)],
    );
    svc.scheduler = Scheduler::new(kind, &svc.dests, Flags::default());
    let config = xvs_dataplane::snapshot::Snapshot {
        sloppy_tcp,
        ..snapshot_with([(vip, svc)])
    };
    let neighbours = NeighbourTable::new(
        vec![
            route(EXT_IF, std::net::Ipv4Addr::new(198, 18, 0, 0), 24, None),
            route(INT_IF, std::net::Ipv4Addr::new(198, 19, 0, 0), 24, None),
        ],
        vec![
            neighbour(EXT_IF, CLIENT, CLIENT_MAC),
            neighbour(INT_IF, REAL_148, REAL_148_MAC),
            neighbour(INT_IF, REAL_137, REAL_137_MAC),
        ],
    );
    Director::from_parts(config, neighbours, 64)
}

fn segment(cport: u16, flags: u8) -> Vec<u8> {
    Packet::tcp(at(CLIENT, cport), at(VIP, 80), flags, 5000, 7000)
        .with_payload(b"data")
        .frame(CLIENT_MAC, EXT_MAC)
}

#[test]
fn a_mid_flow_segment_opens_an_established_entry_on_the_hashed_server() {
    let mut d = director(SchedulerKind::SourceHashing, true);
    let mut frame = segment(40000, ACK | PSH);
    assert_eq!(
        d.process(&mut frame, Side::External),
        Verdict::Forward(Side::Internal)
    );
    let conn = *d.conns.iter().next().expect("an entry");
    assert_eq!(conn.state, TcpState::Established);
    // The server the hash gives, as any other director's SYN would have got.
    let mut fresh = director(SchedulerKind::SourceHashing, false);
    let mut syn = segment(40001, SYN);
    fresh.process(&mut syn, Side::External);
    assert_eq!(fresh.conns.iter().next().unwrap().daddr, conn.daddr);
    // Its next segment finds it; the real server's reply goes back as NAT's.
    let mut next = segment(40000, ACK);
    assert_eq!(
        d.process(&mut next, Side::External),
        Verdict::Forward(Side::Internal)
    );
    assert_eq!(d.conns.len(), 1);
    assert_eq!(
        d.stats.reals[0].active.get() + d.stats.reals[1].active.get(),
        1
    );
}

#[test]
fn no_takeover_by_rst_without_the_setting_or_with_a_rotating_scheduler() {
    for (kind, sloppy, flags) in [
        (SchedulerKind::SourceHashing, true, RST),
        (SchedulerKind::SourceHashing, true, RST | ACK),
        (SchedulerKind::SourceHashing, false, ACK),
        (SchedulerKind::RoundRobin, true, ACK),
        (SchedulerKind::WeightedLeastConnection, true, ACK | FIN),
    ] {
        let mut d = director(kind, sloppy);
        let mut frame = segment(40000, flags);
        assert_eq!(
            d.process(&mut frame, Side::External),
            Verdict::Drop(DropReason::NoConnection),
            "{kind:?} sloppy {sloppy} flags {flags:#x}"
        );
        assert!(d.conns.is_empty());
    }
}
