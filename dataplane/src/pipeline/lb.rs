//! Load balancing in the pipeline: packets of tracked connections are translated both ways,
//! first packets to a service are scheduled onto a backend, ICMP errors about a connection
//! follow it. NAT rewrites the destination (and the source of replies); FullNAT also puts a
//! local address and port of this core in the source, so replies come back to us whatever
//! the backends' routes are.

use std::net::{IpAddr, Ipv4Addr};

use super::{CoreCtx, Frame, FramePool, TxSink, ETH_LEN};
use crate::conn::{next_state, syn_starts_new_connection, Conn, ConnFlags, ConnId, ConnKey, Dir, InsertError, TcpState};
use crate::counters::{DropReason, Event};
use crate::lb::is_active;
use crate::sched::{select, source_hash_v4};
use crate::service::{BackendState, FwdMode, Service};
use crate::snapshot::Snapshot;
use crate::wire::{IpProtocol, TcpFlags, TcpPacket};
use crate::xlate::{self, Rewrite4, Tuple4, XlateError};

/// A FullNAT connection whose reply tuple is taken tries this many other local ports.
const LOCAL_PORT_ATTEMPTS: usize = 4;

impl<F: Frame> CoreCtx<F> {
    /// TCP or UDP over IPv4 (not a fragment). Returns the frame when it is not load-balancing
    /// traffic, for the local input path.
    pub(super) fn l4_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let t = match xlate::tuple_v4(&frame.data()[ETH_LEN..]) {
            Ok(t) => t,
            Err(XlateError::Malformed) if is_to_vip(snap, &frame) => {
                self.drop(frame, DropReason::MalformedL4);
                return None;
            }
            Err(_) => return Some(frame),
        };
        let tcp_flags = tcp_flags(&frame, t.proto);
        if let Some((id, dir)) = self.lb.conns.lookup(&t) {
            let conn = *self.lb.conns.get(id);
            let reuse = dir == Dir::Original
                && t.proto == IpProtocol::TCP.0
                && is_new_syn(tcp_flags)
                && syn_starts_new_connection(conn.state);
            if !reuse {
                self.conn_packet(snap, now_ms, frame, id, dir, tcp_flags, pool, tx);
                return None;
            }
            // The client reuses the tuple of a finished connection: forget it, schedule anew.
            self.end_conn(id, now_ms);
            self.counters.event(Event::ConnsReused).inc();
        }
        let services = &snap.services;
        let Some(svc) = services.lookup(t.dst, t.dport, t.proto) else {
            if services.is_vip(t.dst) {
                self.drop(frame, DropReason::NoService);
                return None;
            }
            return Some(frame);
        };
        if t.proto == IpProtocol::TCP.0 && !is_new_syn(tcp_flags) {
            // IPVS does the same: only a SYN opens a TCP connection.
            self.drop(frame, DropReason::NoConnection);
            return None;
        }
        self.new_conn(snap, now_ms, frame, svc, t, tcp_flags, pool, tx);
        None
    }

    /// Schedules a first packet onto a backend, records the connection and forwards.
    #[allow(clippy::too_many_arguments)]
    fn new_conn(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        svc: &Service,
        t: Tuple4,
        tcp_flags: TcpFlags,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Some(index) = self.choose_backend(svc, t.src, now_ms) else {
            return self.drop(frame, DropReason::NoBackend);
        };
        let backend = svc.backends[index];
        let full_nat = svc.mode == FwdMode::FullNat;
        let state = if t.proto == IpProtocol::TCP.0 {
            next_state(TcpState::None, Dir::Original, tcp_flags)
        } else {
            TcpState::None
        };
        let mut conn = Conn {
            client: t.src,
            vip: t.dst,
            backend: backend.addr,
            laddr: t.src,
            cport: t.sport,
            vport: t.dport,
            bport: backend.port,
            lport: t.sport,
            proto: t.proto,
            state,
            flags: if full_nat { ConnFlags::FULLNAT } else { ConnFlags::empty() },
            service: svc.slot,
            backend_slot: backend.slot,
            backend_gen: backend.gen,
            laddr_slot: u16::MAX,
        };
        if svc.reset_on_removal {
            conn.flags |= ConnFlags::RESET;
        }
        let timeout = snap.services.timeouts.for_conn(&conn);
        let attempts = if full_nat { LOCAL_PORT_ATTEMPTS } else { 1 };
        let mut inserted = false;
        for _ in 0..attempts {
            if full_nat {
                let Ok((laddr, lport, slot)) = self.lb.take_local_port(svc, t.proto) else {
                    return self.drop(frame, DropReason::LocalPortsExhausted);
                };
                (conn.laddr, conn.lport, conn.laddr_slot) = (laddr, lport, slot);
            }
            match self.lb.conns.insert(conn, now_ms, timeout) {
                Ok(_) => {
                    inserted = true;
                    break;
                }
                Err(e) => {
                    if full_nat {
                        self.lb.return_local_port(conn.laddr_slot, None, conn.proto, conn.lport);
                    }
                    if e == InsertError::Full || !full_nat {
                        let reason = if e == InsertError::Full { DropReason::ConnTableFull } else { DropReason::ConnKeyExists };
                        return self.drop(frame, reason);
                    }
                }
            }
        }
        if !inserted {
            return self.drop(frame, DropReason::ConnKeyExists);
        }
        self.counters.event(Event::ConnsCreated).inc();
        self.lb.conn_opened(backend.slot, backend.gen, is_active(conn.proto, conn.state));
        if svc.persistence_ms > 0 && self.lb.persist(t.src, svc, backend.slot, backend.gen, now_ms) {
            self.counters.event(Event::PersistenceEvictions).inc();
        }
        self.forward(snap, now_ms, frame, &conn, Dir::Original, pool, tx);
    }

    /// The backend (index into `svc.backends`) for a new connection from `client`: its
    /// remembered one when persistence holds, else the scheduler's choice.
    fn choose_backend(&mut self, svc: &Service, client: Ipv4Addr, now_ms: u64) -> Option<usize> {
        if let Some((slot, gen)) = self.lb.persisted_backend(client, svc, now_ms) {
            // A draining backend keeps its persistent clients; an inhibited one does not.
            let found = svc
                .backends
                .iter()
                .position(|b| b.slot == slot && b.gen == gen && b.weight > 0 && b.state != BackendState::Inhibited);
            if found.is_some() {
                self.counters.event(Event::PersistenceHits).inc();
                return found;
            }
        }
        // The scheduler state and the active counts live in the same per-core struct: take
        // the state out for the call (a few words) and put it back.
        let mut state = std::mem::take(self.lb.sched_state(svc)?);
        let lb = &self.lb;
        let active = |i: usize| svc.backends.get(i).map_or(0, |b| lb.active_conns(b.slot, b.gen));
        let chosen = select(svc.sched, &mut state, &svc.candidates, svc.table.as_deref(), source_hash_v4(client), active);
        if let Some(s) = self.lb.sched_state(svc) {
            *s = state;
        }
        chosen
    }

    /// A packet of a tracked connection.
    #[allow(clippy::too_many_arguments)]
    fn conn_packet(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        id: ConnId,
        dir: Dir,
        tcp_flags: TcpFlags,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let mut conn = *self.lb.conns.get(id);
        let slot = snap.services.backend_slot(conn.backend_slot);
        if slot.gen == conn.backend_gen && !slot.live && slot.reset {
            return self.reset_conn(snap, now_ms, frame, id, pool, tx);
        }
        if conn.proto == IpProtocol::TCP.0 {
            let state = next_state(conn.state, dir, tcp_flags);
            if state != conn.state {
                let (was, now) = (is_active(conn.proto, conn.state), is_active(conn.proto, state));
                if was != now {
                    self.lb.conn_activity(conn.backend_slot, conn.backend_gen, now);
                }
                conn.state = state;
                self.lb.conns.get_mut(id).state = state;
            }
        }
        if dir == Dir::Reply && !conn.flags.contains(ConnFlags::REPLIED) {
            conn.flags |= ConnFlags::REPLIED;
            self.lb.conns.get_mut(id).flags = conn.flags;
        }
        let timeout = snap.services.timeouts.for_conn(&conn);
        self.lb.conns.touch(id, now_ms, timeout);
        self.forward(snap, now_ms, frame, &conn, dir, pool, tx);
    }

    /// Rewrites a connection's packet for its direction and sends it on.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        conn: &Conn,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let rewrite = match dir {
            Dir::Original => Rewrite4 { src: conn.laddr, dst: conn.backend, sport: conn.lport, dport: conn.bport },
            Dir::Reply => Rewrite4 { src: conn.vip, dst: conn.client, sport: conn.vport, dport: conn.cport },
        };
        let len = frame.data().len();
        match xlate::rewrite_v4(&mut frame.data_mut()[ETH_LEN..], &rewrite) {
            Ok(()) => {}
            Err(XlateError::TtlExpired) => return self.drop(frame, DropReason::TtlExpired),
            Err(_) => return self.drop(frame, DropReason::MalformedL4),
        }
        let inbound = dir == Dir::Original;
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, inbound, len);
        self.counters.event(if inbound { Event::LbInPackets } else { Event::LbOutPackets }).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V4(rewrite.dst), pool, tx);
    }

    /// The backend of this connection was removed with `reset`: forget the connection and,
    /// for TCP, answer the packet's sender with a RST so it does not wait for a timeout.
    fn reset_conn(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        id: ConnId,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.end_conn(id, now_ms);
        self.counters.event(Event::ConnsReset).inc();
        let rst_len = match xlate::tcp_reset_v4(&mut frame.data_mut()[ETH_LEN..]) {
            Ok(len) => len,
            Err(_) => return self.drop(frame, DropReason::BackendRemoved),
        };
        if !frame.set_len(ETH_LEN + rst_len) {
            return self.drop(frame, DropReason::BackendRemoved);
        }
        // The RST goes back where the packet came from.
        let dst = crate::wire::Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]).dst_addr();
        self.counters.drop_reason(DropReason::BackendRemoved).inc();
        self.counters.event(Event::TcpResetsSent).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V4(dst), pool, tx);
    }

    /// An ICMPv4 error. When it quotes a packet of a tracked connection, it is translated
    /// like that connection's packets and forwarded to the other side; otherwise the frame is
    /// returned for the local path.
    pub(super) fn icmp_error_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Some(quoted) = xlate::icmp_error_quote_v4(&frame.data()[ETH_LEN..]) else {
            return Some(frame);
        };
        // The quoted packet went the other way: reversing it gives a key of ours.
        let key = ConnKey { src: quoted.dst, dst: quoted.src, sport: quoted.dport, dport: quoted.sport, proto: quoted.proto };
        let Some((id, dir)) = self.lb.conns.lookup(&key) else {
            return Some(frame);
        };
        let conn = *self.lb.conns.get(id);
        let outer_src = crate::wire::Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]).src_addr();
        let (outer_src, outer_dst, quote) = match dir {
            // From the backend's side, about a packet we sent it: to the client, as from the VIP.
            Dir::Reply => (
                conn.vip,
                conn.client,
                Rewrite4 { src: conn.client, dst: conn.vip, sport: conn.cport, dport: conn.vport },
            ),
            // From the client's side, about a reply we sent: to the backend. In FullNAT the
            // backend only knows our local address, so the error comes from there.
            Dir::Original => (
                if conn.flags.contains(ConnFlags::FULLNAT) { conn.laddr } else { outer_src },
                conn.backend,
                Rewrite4 { src: conn.backend, dst: conn.laddr, sport: conn.bport, dport: conn.lport },
            ),
        };
        match xlate::rewrite_icmp_error_v4(&mut frame.data_mut()[ETH_LEN..], outer_src, outer_dst, &quote) {
            Ok(()) => {}
            Err(XlateError::TtlExpired) => {
                self.drop(frame, DropReason::TtlExpired);
                return None;
            }
            Err(_) => {
                self.drop(frame, DropReason::MalformedIcmp);
                return None;
            }
        }
        self.counters.event(Event::IcmpErrorsTranslated).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V4(outer_dst), pool, tx);
        None
    }

    /// Removes a connection and gives back what it held.
    fn end_conn(&mut self, id: ConnId, now_ms: u64) {
        let conn = self.lb.conns.remove(id);
        self.lb.release(&conn, now_ms);
    }

    /// Expires a bounded number of idle connections.
    pub(super) fn expire_conns(&mut self, now_ms: u64) {
        let expired = self.lb.expire(now_ms);
        self.counters.event(Event::ConnsExpired).add(expired as u64);
    }

}

fn is_to_vip<F: Frame>(snap: &Snapshot, frame: &F) -> bool {
    let data = &frame.data()[ETH_LEN..];
    data.len() >= 20 && snap.services.is_vip(Ipv4Addr::new(data[16], data[17], data[18], data[19]))
}

/// A SYN without ACK, RST or FIN: the only packet that opens a TCP connection.
#[inline]
fn is_new_syn(flags: TcpFlags) -> bool {
    flags.contains(TcpFlags::SYN) && !flags.intersects(TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN)
}

#[inline]
fn tcp_flags<F: Frame>(frame: &F, proto: u8) -> TcpFlags {
    if proto != IpProtocol::TCP.0 {
        return TcpFlags::empty();
    }
    let data = &frame.data()[ETH_LEN..];
    let ihl = usize::from(data[0] & 0x0f) * 4;
    // tuple_v4 checked the IP header and the first 8 bytes of TCP; the flags are byte 13.
    data.get(ihl..).and_then(|tcp| TcpPacket::new_checked(tcp).ok()).map_or(TcpFlags::empty(), |t| t.flags())
}
