//! The LVS TCP state machine and per-state timeouts.
//!
//! The transition tables are IPVS's `tcp_states` (Linux `net/netfilter/ipvs/ip_vs_proto_tcp.c`,
//! the normal table, not `tcp_states_dos`): INPUT and OUTPUT for a balancer that sees both
//! directions (NAT, FullNAT, SNAT), INPUT-ONLY for one that sees only the client's packets
//! (DR and TUN, where backends answer clients directly). These states track what the balancer
//! has seen, not either end's real TCP state: with both directions a FIN from the client
//! moves ESTABLISHED to CLOSE_WAIT and a FIN from the backend to FIN_WAIT; seeing only the
//! client, its FIN moves ESTABLISHED to FIN_WAIT and the idle timeout ends the entry.

use serde::{Deserialize, Serialize};

use super::{Conn, Dir};
use crate::wire::{IpProtocol, TcpFlags};

/// LVS TCP connection states, numbered as IPVS's `IP_VS_TCP_S_*`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// Not seen any packet yet; also the (only) state of UDP connections.
    #[default]
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

impl TcpState {
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The name `ipvsadm -lnc` prints.
    pub fn as_str(self) -> &'static str {
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
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynRecv as SR,
    SynSent as SS, TimeWait as TW,
};

/// `[flag row][current state] -> next state`, rows SYN, FIN, ACK, RST; columns in
/// `TcpState` order: NO, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA.
type StateTable = [[TcpState; 11]; 4];

/// Packets from the client (IPVS INPUT).
const FROM_CLIENT: StateTable = [
    /* SYN */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* FIN */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ACK */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* RST */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

/// Packets from the backend (IPVS OUTPUT).
const FROM_BACKEND: StateTable = [
    /* SYN */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* FIN */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ACK */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* RST */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];

/// Packets from the client when the backend's never pass here (IPVS INPUT-ONLY).
const FROM_CLIENT_ONLY: StateTable = [
    /* SYN */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* FIN */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ACK */ [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* RST */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];

/// The state after a packet with `flags` travelling `dir`. One flag decides, in IPVS's
/// priority: RST, then SYN, then FIN, then ACK.
///
/// A segment with none of the four keeps the state. (IPVS moves it to CLOSE instead; such a
/// segment is invalid, and honouring it would let any forged packet cut a connection's
/// timeout to CLOSE's.)
#[inline]
pub fn next_state(state: TcpState, dir: Dir, flags: TcpFlags) -> TcpState {
    let table = match dir {
        Dir::Original => &FROM_CLIENT,
        Dir::Reply => &FROM_BACKEND,
    };
    transition(table, state, flags)
}

/// The state after a client packet with `flags` on a connection whose replies bypass the
/// balancer (DR, TUN). Same flag priority as [`next_state`].
#[inline]
pub fn next_state_client_only(state: TcpState, flags: TcpFlags) -> TcpState {
    transition(&FROM_CLIENT_ONLY, state, flags)
}

#[inline]
fn transition(table: &StateTable, state: TcpState, flags: TcpFlags) -> TcpState {
    let row = if flags.contains(TcpFlags::RST) {
        3
    } else if flags.contains(TcpFlags::SYN) {
        0
    } else if flags.contains(TcpFlags::FIN) {
        1
    } else if flags.contains(TcpFlags::ACK) {
        2
    } else {
        return state;
    };
    table[row][state as usize]
}

/// A SYN (without ACK) from the client on an existing entry: true when that entry's
/// connection is finished or closing (FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK), so the
/// entry must be dropped and the SYN scheduled as a new connection; false for SYN
/// retransmits (SYN_SENT, SYN_RECV), ESTABLISHED and the states a real handshake never
/// reaches here.
///
/// Broader than IPVS's `is_new_conn_expected` (TIME_WAIT and CLOSE only, FIN_WAIT under
/// `conn_reuse_mode` 2): a client that sends a bare SYN from a port whose connection had
/// begun closing has abandoned that connection, and holding the SYN to the old backend until
/// the entry times out would stall the new one.
pub fn syn_starts_new_connection(state: TcpState) -> bool {
    matches!(state, FW | TW | CL | CW | LA)
}

/// Whether a connection in `state` has not completed its handshake (as far as the balancer
/// saw): a client SYN on it with another initial sequence number is a new connection, and it
/// is not kept for a backend that was removed.
pub fn handshake_incomplete(state: TcpState) -> bool {
    matches!(state, TcpState::None | SS | SR | LI | TcpState::SynAck)
}

/// Idle timeouts in milliseconds: per TCP state, and one for UDP. `Default` is IPVS's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub none_ms: u32,
    pub established_ms: u32,
    pub syn_sent_ms: u32,
    pub syn_recv_ms: u32,
    pub fin_wait_ms: u32,
    pub time_wait_ms: u32,
    pub close_ms: u32,
    pub close_wait_ms: u32,
    pub last_ack_ms: u32,
    pub listen_ms: u32,
    pub synack_ms: u32,
    pub udp_ms: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        const S: u32 = 1000;
        Timeouts {
            none_ms: 2 * S,
            established_ms: 900 * S,
            syn_sent_ms: 120 * S,
            syn_recv_ms: 60 * S,
            fin_wait_ms: 120 * S,
            time_wait_ms: 120 * S,
            close_ms: 10 * S,
            close_wait_ms: 60 * S,
            last_ack_ms: 30 * S,
            listen_ms: 120 * S,
            synack_ms: 120 * S,
            udp_ms: 300 * S,
        }
    }
}

impl Timeouts {
    #[inline]
    pub fn for_state(&self, state: TcpState) -> u32 {
        match state {
            TcpState::None => self.none_ms,
            TcpState::Established => self.established_ms,
            TcpState::SynSent => self.syn_sent_ms,
            TcpState::SynRecv => self.syn_recv_ms,
            TcpState::FinWait => self.fin_wait_ms,
            TcpState::TimeWait => self.time_wait_ms,
            TcpState::Close => self.close_ms,
            TcpState::CloseWait => self.close_wait_ms,
            TcpState::LastAck => self.last_ack_ms,
            TcpState::Listen => self.listen_ms,
            TcpState::SynAck => self.synack_ms,
        }
    }

    /// The timeout for `conn` as it is now: UDP's, or its TCP state's.
    #[inline]
    pub fn for_conn(&self, conn: &Conn) -> u32 {
        if conn.proto == IpProtocol::UDP {
            self.udp_ms
        } else {
            self.for_state(conn.state)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TcpState::{None as NO, SynAck as SA};

    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const FIN: TcpFlags = TcpFlags::FIN;
    const RST: TcpFlags = TcpFlags::RST;
    const PSH: TcpFlags = TcpFlags::PSH;
    use Dir::{Original as C, Reply as B};

    /// Replays `(direction, flags, expected state after)` from `start`.
    fn walk(start: TcpState, steps: &[(Dir, TcpFlags, TcpState)]) {
        let mut s = start;
        for (i, &(dir, flags, want)) in steps.iter().enumerate() {
            let next = next_state(s, dir, flags);
            assert_eq!(next, want, "step {i}: {s} + {dir:?} {flags:?}");
            s = next;
        }
    }

    #[test]
    fn client_closes_first() {
        walk(
            NO,
            &[
                (C, SYN, SR),
                (B, SYN | ACK, SR),
                (C, ACK, ES),
                (C, PSH | ACK, ES),
                (B, PSH | ACK, ES),
                (C, FIN | ACK, CW),
                (B, ACK, CW),
                (B, FIN | ACK, TW),
                (C, ACK, TW),
            ],
        );
    }

    #[test]
    fn client_only_follows_ipvs_input_only() {
        // DR/TUN: a whole connection as the balancer sees it, the client's packets only.
        let mut s = NO;
        for (flags, want) in [(SYN, SR), (SYN, SR), (ACK, ES), (PSH | ACK, ES), (FIN | ACK, FW), (ACK, FW)] {
            s = next_state_client_only(s, flags);
            assert_eq!(s, want, "{flags:?}");
        }
        // The rows that differ from the two-way client table: a bare ACK opens nothing, and a
        // FIN from ESTABLISHED or FIN_WAIT is FIN_WAIT, not CLOSE_WAIT / TIME_WAIT.
        let cases: &[(TcpState, TcpFlags, TcpState)] = &[
            (NO, ACK, CL),
            (ES, FIN, FW),
            (FW, FIN, FW),
            (SR, FIN, TW),
            (ES, RST, CL),
            (LA, RST, LA),
            (TW, SYN, SR),
            (SA, ACK, ES),
        ];
        for &(from, flags, want) in cases {
            assert_eq!(next_state_client_only(from, flags), want, "{from} + {flags:?}");
        }
        assert_eq!(next_state_client_only(ES, TcpFlags::empty()), ES);
    }

    #[test]
    fn backend_closes_first() {
        walk(ES, &[(B, FIN | ACK, FW), (C, ACK, FW), (C, FIN | ACK, TW), (B, ACK, TW)]);
    }

    #[test]
    fn rst_closes_from_either_side() {
        for s in [ES, FW, TW, CW] {
            assert_eq!(next_state(s, C, RST | ACK), CL, "{s}");
        }
        assert_eq!(next_state(ES, B, RST), CL);
        // RST outranks SYN and FIN.
        assert_eq!(next_state(ES, C, RST | SYN | FIN | ACK), CL);
        // IPVS keeps TIME_WAIT on a backend RST and SYN_RECV on a client RST.
        assert_eq!(next_state(TW, B, RST), TW);
        assert_eq!(next_state(SR, C, RST), SR);
    }

    #[test]
    fn transitions_match_ipvs() {
        let cases: &[(TcpState, Dir, TcpFlags, TcpState)] = &[
            (NO, C, SYN, SR),
            (NO, B, SYN, SS),
            (NO, C, ACK, ES),
            (NO, C, FIN, CL),
            (NO, B, FIN, TW),
            (SR, C, ACK, ES),
            (SR, B, RST, CL),
            (SR, C, FIN, TW),
            (SS, C, SYN, ES),
            (SS, C, ACK, SS),
            (SS, B, RST, SS),
            (ES, C, SYN, ES),
            (ES, C, SYN | ACK, ES),
            (ES, B, FIN, FW),
            (ES, C, FIN, CW),
            (FW, C, SYN, SR),
            (FW, B, SYN, SS),
            (TW, C, SYN, SR),
            (TW, C, ACK, TW),
            (CL, C, SYN, SR),
            (CL, B, ACK, CL),
            (CW, B, FIN, TW),
            (CW, B, ACK, CW),
            (LA, C, ACK, CL),
            (LA, B, ACK, LA),
            (LA, C, RST, LA),
            (LI, B, ACK, ES),
            (LI, C, ACK, LI),
            (SA, C, ACK, ES),
            (SA, B, SYN, SR),
            (SA, C, RST, SR),
        ];
        for &(from, dir, flags, want) in cases {
            assert_eq!(next_state(from, dir, flags), want, "{from} + {dir:?} {flags:?}");
        }
    }

    #[test]
    fn flags_priority_is_rst_syn_fin_ack() {
        // SYN outranks FIN and ACK: SYN|FIN from the client in ESTABLISHED stays there (SYN
        // row), where FIN alone would go to CLOSE_WAIT.
        assert_eq!(next_state(ES, C, SYN | FIN), ES);
        assert_eq!(next_state(ES, C, FIN), CW);
        // FIN outranks ACK.
        assert_eq!(next_state(ES, B, FIN | ACK), FW);
        // Flags outside the four are ignored: PSH|URG alone keeps the state.
        for s in TcpState::ALL {
            assert_eq!(next_state(s, C, PSH | TcpFlags::URG), s);
            assert_eq!(next_state(s, B, TcpFlags::empty()), s);
        }
    }

    #[test]
    fn syn_reuse_rules() {
        for s in TcpState::ALL {
            let want = matches!(s, FW | TW | CL | CW | LA);
            assert_eq!(syn_starts_new_connection(s), want, "{s}");
        }
        assert!(!syn_starts_new_connection(SR));
        assert!(!syn_starts_new_connection(ES));
        assert!(syn_starts_new_connection(TW));
    }

    #[test]
    fn names_and_discriminants() {
        for (i, s) in TcpState::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
        assert_eq!(ES.as_str(), "ESTABLISHED");
        assert_eq!(SR.as_str(), "SYN_RECV");
        assert_eq!(SA.to_string(), "SYNACK");
    }

    #[test]
    fn default_timeouts_are_ipvs() {
        let t = Timeouts::default();
        let want: [(TcpState, u32); 11] = [
            (NO, 2),
            (ES, 900),
            (SS, 120),
            (SR, 60),
            (FW, 120),
            (TW, 120),
            (CL, 10),
            (CW, 60),
            (LA, 30),
            (LI, 120),
            (SA, 120),
        ];
        for (s, secs) in want {
            assert_eq!(t.for_state(s), secs * 1000, "{s}");
        }
        assert_eq!(t.udp_ms, 300_000);
    }

    /// Deserializes `fields` through serde's in-memory map deserializer (the crate has no
    /// config-format dependency).
    fn timeouts_from(fields: &[(&'static str, u32)]) -> Result<Timeouts, serde::de::value::Error> {
        let de = serde::de::value::MapDeserializer::new(fields.iter().copied());
        Timeouts::deserialize(de)
    }

    #[test]
    fn timeouts_deserialize_with_defaults() {
        let t = timeouts_from(&[("established_ms", 5000), ("udp_ms", 7)]).unwrap();
        assert_eq!(t.established_ms, 5000);
        assert_eq!(t.udp_ms, 7);
        assert_eq!(t.close_ms, 10_000);
        assert!(timeouts_from(&[("established", 5000)]).is_err());
    }
}
