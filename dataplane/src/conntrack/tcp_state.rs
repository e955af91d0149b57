//! IPVS's TCP connection state machine (net/netfilter/ipvs/ip_vs_proto_tcp.c), table-driven.
//!
//! A NAT director sees both directions, so it uses IPVS's INPUT table for client-to-server
//! segments and its OUTPUT table for server-to-client ones. With direct routing (and tunnels)
//! the real server answers the client directly: the director sees client-to-server segments
//! only and follows IPVS's INPUT-ONLY table (a FIN from the client then means FIN_WAIT, since
//! no reply will ever say more). The event is the most significant flag of the segment: RST,
//! then SYN, then FIN, then ACK; a segment with none changes nothing.

use crate::snapshot::Timeouts;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

/// Which way a segment travels through the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to real server (IPVS "INPUT").
    Inbound,
    /// Real server to client (IPVS "OUTPUT").
    Outbound,
}

impl TcpState {
    /// The names `ipvsadm -Lc` prints.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Seconds an entry in this state lives without traffic: IPVS's tcp_timeouts, with the
    /// three operator-settable ones taken from `timeouts`.
    pub fn timeout(self, timeouts: &Timeouts) -> u32 {
        match self {
            TcpState::None => 2,
            TcpState::Established => timeouts.tcp,
            TcpState::SynSent => 120,
            TcpState::SynRecv => 60,
            TcpState::FinWait => timeouts.tcpfin,
            TcpState::TimeWait => 120,
            TcpState::Close => 10,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::Listen => 120,
            TcpState::SynAck => 120,
        }
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `tcp_states[]` of ip_vs_proto_tcp.c; rows syn, fin, ack, rst; columns the current state in
/// the order sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA.
const INPUT: [[TcpState; 11]; 4] = [
    /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const OUTPUT: [[TcpState; 11]; 4] = [
    /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const INPUT_ONLY: [[TcpState; 11]; 4] = [
    /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /*ack*/ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The state after a segment with `flags` (TCP flag bits: FIN 0x01, SYN 0x02, RST 0x04,
/// ACK 0x10) travelling in `direction`; IPVS's tcp_state_idx() picks the event. `input_only`:
/// the connection's replies bypass the director (DR, tunnels).
pub fn next_state(
    current: TcpState,
    direction: Direction,
    flags: u8,
    input_only: bool,
) -> TcpState {
    let event = if flags & 0x04 != 0 {
        3
    } else if flags & 0x02 != 0 {
        0
    } else if flags & 0x01 != 0 {
        1
    } else if flags & 0x10 != 0 {
        2
    } else {
        return current;
    };
    let table = match direction {
        Direction::Inbound if input_only => &INPUT_ONLY,
        Direction::Inbound => &INPUT,
        Direction::Outbound => &OUTPUT,
    };
    table[event][current as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;

    fn walk(steps: &[(Direction, u8)]) -> Vec<TcpState> {
        walk_as(false, steps)
    }

    fn walk_as(input_only: bool, steps: &[(Direction, u8)]) -> Vec<TcpState> {
        let mut s = TcpState::None;
        steps
            .iter()
            .map(|&(d, f)| {
                s = next_state(s, d, f, input_only);
                s
            })
            .collect()
    }

    #[test]
    fn direct_routing_sees_the_client_half_only() {
        use Direction::*;
        // IPVS with a DR destination: SYN, the handshake's ACK, data, the client's FIN and
        // its last ACK, nothing from the server.
        let states = walk_as(
            true,
            &[
                (Inbound, SYN),
                (Inbound, ACK),
                (Inbound, ACK),
                (Inbound, FIN | ACK),
                (Inbound, ACK),
            ],
        );
        assert_eq!(states, [SR, ES, ES, FW, FW]);
        // A reset of a half-open DR connection (SYNACK state) closes it, unlike NAT's table.
        assert_eq!(next_state(TcpState::SynAck, Inbound, RST, true), CL);
        assert_eq!(next_state(TcpState::SynAck, Inbound, RST, false), SR);
    }

    #[test]
    fn handshake_transfer_and_close() {
        use Direction::*;
        let states = walk(&[
            (Inbound, SYN),
            (Outbound, SYN | ACK),
            (Inbound, ACK),
            (Inbound, FIN | ACK),
            (Outbound, FIN | ACK),
            (Inbound, ACK),
        ]);
        assert_eq!(states, [SR, SR, ES, CW, TW, TW]);
    }

    #[test]
    fn reset_closes_and_bare_segments_change_nothing() {
        assert_eq!(next_state(ES, Direction::Inbound, RST | ACK, false), CL);
        assert_eq!(next_state(ES, Direction::Outbound, RST, false), CL);
        assert_eq!(next_state(ES, Direction::Inbound, 0, false), ES);
    }

    #[test]
    fn timeouts_follow_settings() {
        let t = Timeouts {
            tcp: 5,
            tcpfin: 6,
            udp: 7,
        };
        assert_eq!(ES.timeout(&t), 5);
        assert_eq!(FW.timeout(&t), 6);
        assert_eq!(TW.timeout(&t), 120);
        assert_eq!(TcpState::None.timeout(&Timeouts::default()), 2);
    }
}
