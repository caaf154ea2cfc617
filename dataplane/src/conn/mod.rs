//! The per-core connection table (IPv4): every tracked connection, found from a packet of
//! either direction, with its expiry kept by a timer wheel, and the LVS TCP state machine.
//!
//! One worker core owns each table: nothing here is shared, locked or atomic, and after the
//! constructor nothing allocates. See [`ConnTable`] for the layout and [`tcp_state`] for the
//! state machine and timeouts.

use std::net::Ipv4Addr;

use bitflags::bitflags;

use crate::wire::IpProtocol;

mod table;
mod table6;
pub mod tcp_state;

pub use table::{ConnId, ConnTable, Hint, InsertError, Steady, TimerStats, TICK_MS, WHEEL_LAP_MS};
pub use table6::{Conn6, Conn6Id, Conn6Table, ConnKey6};
pub use tcp_state::{
    handshake_incomplete, next_state, next_state_client_only, syn_starts_new_connection, TcpState, Timeouts,
};

#[cfg(test)]
mod tests;

/// Which way a packet travels on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to VIP (IPVS "input").
    Original,
    /// Backend to us (IPVS "output").
    Reply,
}

bitflags! {
    /// Per-connection flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct ConnFlags: u8 {
        /// Source NAT towards the backend: `laddr`/`lport` are one of our local addresses and
        /// a port taken from `laddr_slot`'s pool.
        const FULLNAT = 1 << 0;
        /// A packet from the backend has been seen.
        const REPLIED = 1 << 1;
        /// When the backend is removed, reset this connection instead of letting it drain.
        const RESET = 1 << 2;
        /// Direct routing: only the client's side passes here.
        const DR = 1 << 3;
        /// IP-in-IP / GUE: only the client's side passes here.
        const TUN = 1 << 4;
        /// An outbound connection under a SNAT rule (also FULLNAT: same rewrite, `vip` and
        /// `backend` are both the remote server).
        const SNAT = 1 << 5;
        /// Its sequence numbers are adjusted, so its packets leave the fast path: opened by
        /// the SYN proxy (see `xlate::seqadj`; until REPLIED the backend's handshake is still
        /// under way), or sending its backend the client's address (a PROXY header or TOA,
        /// see `xlate::clientaddr`; the core's `client_addr` state says which), or both.
        const PROXIED = 1 << 6;
    }
}

impl ConnFlags {
    /// DR and TUN connections: replies bypass us, state follows the client's packets only.
    #[inline]
    pub fn is_one_way(self) -> bool {
        self.intersects(ConnFlags::DR | ConnFlags::TUN)
    }
}

/// Whether a packet going `dir` (a TCP one without SYN, FIN or RST: the caller checks) leaves
/// a connection of these flags, protocol and state as it is, needing only its forwarding: not
/// SNAT or PROXIED, TCP ESTABLISHED (or UDP), and for a reply, not the first one (`REPLIED`).
/// The test of both tables' steady paths (`ConnTable::steady`, the pipeline's IPv6 one).
#[inline(always)]
pub fn is_steady(flags: ConnFlags, udp: bool, state: TcpState, dir: Dir) -> bool {
    let must = if dir == Dir::Reply { ConnFlags::REPLIED } else { ConnFlags::empty() };
    flags & (ConnFlags::SNAT | ConnFlags::PROXIED | must) == must && (udp || state == TcpState::Established)
}

/// A packet's own 5-tuple, as seen on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: IpProtocol,
}

/// One tracked connection, both directions. NAT: `laddr == client`, `lport == cport`.
///
/// `state` is the LVS TCP state for TCP; UDP has no states and its connections stay in
/// [`TcpState::None`] (their timeout is [`Timeouts::udp_ms`], see [`Timeouts::for_conn`]).
///
/// `repr(C)`, in the order the connection table packs it (its slot differs only from `proto`
/// on), so unpacking is nearly a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Conn {
    pub client: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub backend: Ipv4Addr,
    /// Source address towards the backend: the client's in NAT, one of ours in FullNAT.
    pub laddr: Ipv4Addr,
    pub cport: u16,
    pub vport: u16,
    pub bport: u16,
    pub lport: u16,
    /// Generation of the backend slot when the connection was made.
    pub backend_gen: u32,
    /// Service slot (index assigned by the control plane).
    pub service: u16,
    /// Backend slot (index assigned by the control plane).
    pub backend_slot: u16,
    /// Local-address slot the FullNAT port returns to; `u16::MAX` in NAT.
    pub laddr_slot: u16,
    pub state: TcpState,
    pub flags: ConnFlags,
    /// TCP or UDP.
    pub proto: IpProtocol,
}

impl Conn {
    /// The client's packets: client -> VIP.
    #[inline]
    pub fn original_key(&self) -> ConnKey {
        ConnKey { src: self.client, dst: self.vip, sport: self.cport, dport: self.vport, proto: self.proto }
    }

    /// The backend's packets: backend -> laddr (the client itself in NAT).
    #[inline]
    pub fn reply_key(&self) -> ConnKey {
        ConnKey { src: self.backend, dst: self.laddr, sport: self.bport, dport: self.lport, proto: self.proto }
    }

    #[inline]
    pub fn key(&self, dir: Dir) -> ConnKey {
        match dir {
            Dir::Original => self.original_key(),
            Dir::Reply => self.reply_key(),
        }
    }

    /// The state as `ipvsadm -lnc` shows it: the TCP state, or "UDP".
    pub fn state_name(&self) -> &'static str {
        if self.proto == IpProtocol::UDP {
            "UDP"
        } else {
            self.state.as_str()
        }
    }
}
