//! Load balancing of IPv6 services (NAT, FullNAT, DR, and TUN as IPv6-in-IPv6 or GUE over
//! IPv6): the IPv4 path's logic over the IPv6 connection table, on a path of its own so the
//! IPv4 one is unchanged. IPv6 frames reach it from `ipv6_input` (the IPv4 burst fast path
//! never sees them). ICMPv6 errors about a connection follow it; a packet that does not fit
//! its egress (once encapsulated, for TUN) gets a packet too big.

use std::net::{IpAddr, Ipv6Addr};

use super::lb::{ends_with_its_backend, nat_event};
use super::{exceeds_mtu, CoreCtx, Frame, FramePool, TxSink, ETH_LEN};
use crate::conn::{
    handshake_incomplete, next_state, next_state_client_only, syn_starts_new_connection, Conn6, Conn6Id, ConnFlags,
    ConnKey6, Dir, InsertError, TcpState,
};
use crate::counters::{DropReason, Event};
use crate::lb::is_active;
use crate::sched::source_hash_v6;
use crate::service::{BackendState, Encap, FwdMode, Service6, TooBig, Tunnel};
use crate::snapshot::Snapshot;
use crate::wire::{EtherType, EthernetFrame, IpProtocol, TcpFlags};
use crate::xlate::clientaddr::{self, ClientAddr, Endpoints, Shift};
use crate::xlate::nat64::NAT64_SHRINK;
use crate::xlate::v6::{self as xlate6, Parsed6, Rewrite6, GUE6_OVERHEAD, IP6IP6_OVERHEAD, IPV6_MIN_MTU};
use crate::xlate::XlateError;

/// A FullNAT connection whose reply tuple is taken tries this many other local ports.
const LOCAL_PORT_ATTEMPTS: usize = 4;

impl<F: Frame> CoreCtx<F> {
    /// TCP or UDP over IPv6 (no extension headers). Returns the frame when it is not
    /// load-balancing traffic, for the local input path.
    pub(super) fn l4_input6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let l4 = match xlate6::parse_v6(&frame.data()[ETH_LEN..]) {
            Ok(l4) => l4,
            Err(XlateError::Malformed) if is_to_vip6(snap, &frame) => {
                self.drop(frame, DropReason::MalformedL4);
                return None;
            }
            Err(_) => return Some(frame),
        };
        let t = l4.tuple;
        if !self.lb.ownership.is_single() {
            let owner = self.lb.ownership.owner6(&snap.services, &t);
            if owner != self.core {
                self.hand_off(owner, frame, tx);
                return None;
            }
        }
        if let Some((id, dir)) = self.lb.conns6.lookup(&t) {
            if self.takes_steady_path() {
                // Handled there when steady (None), else on the general way.
                frame = self.steady_frame6(snap, now_ms, frame, &l4, id, dir, pool, tx)?;
            }
            let reuse = dir == Dir::Original
                && t.proto == IpProtocol::TCP
                && is_new_syn(l4.tcp_flags)
                && self.syn_opens_anew6(snap, id, tcp_seq6(&frame));
            if !reuse {
                self.conn_packet6(snap, now_ms, frame, &l4, id, dir, pool, tx);
                return None;
            }
            self.end_conn6(id, now_ms);
            self.counters.event(Event::ConnsReused).inc();
        }
        let v6 = &snap.services.v6;
        let Some(svc) = v6.lookup(t.dst, t.dport, t.proto) else {
            if v6.is_vip(t.dst) && !snap.is_interface_addr(IpAddr::V6(t.dst)) {
                self.drop(frame, DropReason::NoService);
                return None;
            }
            return Some(frame);
        };
        let mid_flow = t.proto == IpProtocol::TCP && !is_new_syn(l4.tcp_flags);
        if mid_flow && !svc.pickup {
            self.drop(frame, DropReason::NoConnection);
            return None;
        }
        self.new_conn6(snap, now_ms, frame, svc, &l4, mid_flow, pool, tx);
        None
    }

    /// TCP or UDP over IPv6 passing through (not to us): when an IPv6 SNAT rule covers its
    /// source and egress port, a new outbound connection. Otherwise the frame is returned.
    pub(super) fn snat_input6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Ok(l4) = xlate6::parse_v6(&frame.data()[ETH_LEN..]) else { return Some(frame) };
        let t = l4.tuple;
        let Some(route) = snap.routes.lookup(IpAddr::V6(t.dst)) else { return Some(frame) };
        let Some(rule) = snap.services.v6.snat_rule(t.src, route.port) else { return Some(frame) };
        if t.proto == IpProtocol::TCP && !is_new_syn(l4.tcp_flags) {
            self.drop(frame, DropReason::NoConnection);
            return None;
        }
        let state = if t.proto == IpProtocol::TCP {
            next_state(TcpState::None, Dir::Original, l4.tcp_flags)
        } else {
            TcpState::None
        };
        let mut conn = Conn6 {
            client: t.src,
            vip: t.dst,
            backend: t.dst,
            laddr: t.src,
            cport: t.sport,
            vport: t.dport,
            bport: t.dport,
            lport: t.sport,
            backend_gen: 0,
            service: u16::MAX,
            backend_slot: u16::MAX,
            laddr_slot: u16::MAX,
            state,
            flags: ConnFlags::FULLNAT | ConnFlags::SNAT,
            proto: t.proto,
        };
        let timeout = conn.timeout(&snap.services.timeouts);
        // The client's hash picks its first address: a host keeps one public address.
        let start = source_hash_v6(t.src) as usize % rule.addrs.len().max(1);
        let mut inserted = Err(DropReason::ConnKeyExists);
        for _ in 0..LOCAL_PORT_ATTEMPTS {
            let Ok(local) = self.lb.take_port6_from(&rule.addrs, start, t.proto, now_ms) else {
                inserted = Err(DropReason::LocalPortsExhausted);
                break;
            };
            (conn.laddr, conn.lport, conn.laddr_slot) = (local.addr, local.port, local.slot);
            match self.lb.conns6.insert(conn, now_ms, timeout) {
                Ok(id) => {
                    inserted = Ok(id);
                    break;
                }
                Err(e) => {
                    self.lb.return_local_port(local.slot, None, t.proto, local.port, None);
                    if e != InsertError::KeyExists {
                        inserted = Err(insert_drop(e));
                        break;
                    }
                }
            }
        }
        if let Err(reason) = inserted {
            self.drop(frame, reason);
            return None;
        }
        self.counters.event(Event::ConnsCreated).inc();
        self.forward6(snap, now_ms, frame, &l4, &conn, Dir::Original, pool, tx);
        None
    }

    /// `syn_opens_anew` for an IPv6 entry.
    fn syn_opens_anew6(&self, snap: &Snapshot, id: Conn6Id, seq: u32) -> bool {
        let conn = self.lb.conns6.get(id);
        if !backend_usable6(snap, &conn) {
            return true;
        }
        let isn = self.lb.conns6.client_isn(id);
        if syn_starts_new_connection(conn.state) {
            return isn != seq;
        }
        handshake_incomplete(conn.state) && isn != seq
    }

    #[allow(clippy::too_many_arguments)]
    fn new_conn6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        svc: &Service6,
        l4: &Parsed6,
        mid_flow: bool,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let t = l4.tuple;
        let Some(index) = self.choose_backend6(svc, t.src, now_ms) else {
            return self.drop(frame, DropReason::NoBackend);
        };
        let backend = svc.backends[index];
        let state = match (t.proto == IpProtocol::TCP, svc.mode.is_one_way()) {
            (false, _) => TcpState::None,
            (true, false) => next_state(TcpState::None, Dir::Original, l4.tcp_flags),
            (true, true) if mid_flow => next_state_client_only(TcpState::Established, l4.tcp_flags),
            (true, true) => next_state_client_only(TcpState::None, l4.tcp_flags),
        };
        let mut flags = match svc.mode {
            FwdMode::Nat => ConnFlags::empty(),
            FwdMode::FullNat | FwdMode::Nat64 => ConnFlags::FULLNAT,
            FwdMode::Dr => ConnFlags::DR,
            FwdMode::Tun => ConnFlags::TUN,
        };
        if svc.reset_on_removal {
            flags |= ConnFlags::RESET;
        }
        // The PROXY header and TOA are for FullNAT and NAT64 TCP (the config refuses them
        // elsewhere). NAT64's go into the IPv6 packet before it is translated: they name the
        // IPv6 client.
        let client_address = match (svc.mode, t.proto) {
            (FwdMode::FullNat | FwdMode::Nat64, IpProtocol::TCP) => svc.client_address,
            _ => ClientAddr::Off,
        };
        if client_address != ClientAddr::Off {
            flags |= ConnFlags::PROXIED;
        }
        let mut conn = Conn6 {
            client: t.src,
            vip: t.dst,
            backend: backend.addr,
            laddr: t.src,
            cport: t.sport,
            vport: t.dport,
            bport: backend.port,
            lport: t.sport,
            backend_gen: backend.gen,
            service: svc.slot,
            backend_slot: backend.slot,
            laddr_slot: u16::MAX,
            state,
            flags,
            proto: t.proto,
        };
        let timeout = conn.timeout(&snap.services.timeouts);
        let inserted = if matches!(svc.mode, FwdMode::FullNat | FwdMode::Nat64) {
            self.insert6_with_local_port(snap, svc, &mut conn, now_ms, timeout)
        } else {
            match self.lb.conns6.insert(conn, now_ms, timeout) {
                Err(InsertError::KeyExists) if self.retire_finished_reply_holder6(&conn, now_ms) => {
                    self.lb.conns6.insert(conn, now_ms, timeout).map_err(insert_drop)
                }
                other => other.map_err(insert_drop),
            }
        };
        let id = match inserted {
            Ok(id) => id,
            Err(reason) => return self.drop(frame, reason),
        };
        if t.proto == IpProtocol::TCP {
            self.lb.conns6.set_client_isn(id, tcp_seq6(&frame));
        }
        let reparsed;
        let mut l4 = l4;
        if client_address != ClientAddr::Off {
            match self.record_client_addr6(id, client_address, &conn, &mut frame, l4) {
                None => {
                    self.end_conn6(id, now_ms);
                    return self.drop(frame, DropReason::ClientAddrUnavailable);
                }
                Some(Some(p)) => {
                    reparsed = p;
                    l4 = &reparsed;
                }
                Some(None) => {}
            }
        }

        self.counters.event(Event::ConnsCreated).inc();
        if mid_flow {
            self.counters.event(Event::ConnsPickedUp).inc();
        }
        self.lb.conn_opened(backend.slot, backend.gen, is_active(conn.proto, conn.state));
        if svc.persistence_ms > 0 && self.lb.persist6(t.src, svc, backend.slot, backend.gen, now_ms) {
            self.counters.event(Event::PersistenceEvictions).inc();
        }
        self.forward6(snap, now_ms, frame, l4, &conn, Dir::Original, pool, tx);
    }

    /// Keeps a new IPv6 connection's client-address state, and cuts the data of a PROXY
    /// connection's SYN (TCP Fast Open: it would reach the backend ahead of the header). None
    /// when this core keeps no state; else the SYN parsed again when it was cut.
    #[cold]
    #[inline(never)]
    fn record_client_addr6(
        &mut self,
        id: Conn6Id,
        kind: ClientAddr,
        conn: &Conn6,
        frame: &mut F,
        syn: &Parsed6,
    ) -> Option<Option<Parsed6>> {
        let ep = Endpoints {
            client: IpAddr::V6(conn.client),
            vip: IpAddr::V6(conn.vip),
            cport: conn.cport,
            vport: conn.vport,
        };
        let shift = Shift::new(kind, tcp_seq6(frame), &ep, false);
        if !self.lb.set_client_addr6(id, shift) {
            return None;
        }
        let packet = &mut frame.data_mut()[ETH_LEN..];
        match clientaddr::syn_segment(packet, xlate6::IPV6_HEADER_LEN, syn.end, &shift) {
            Ok(clientaddr::ToBackend::SynTrimmed(end)) => {
                frame.set_len(ETH_LEN + end);
                Some(xlate6::parse_v6(&frame.data()[ETH_LEN..]).ok())
            }
            _ => Some(None),
        }
    }

    /// `retire_finished_reply_holder` for IPv6 NAT: a finished connection holding the reply
    /// tuple of a new one (a client port reused toward another service of its backend) ends.
    #[cold]
    #[inline(never)]
    fn retire_finished_reply_holder6(&mut self, conn: &Conn6, now_ms: u64) -> bool {
        if conn.proto != IpProtocol::TCP || conn.flags.is_one_way() {
            return false;
        }
        let Some((id, _)) = self.lb.conns6.lookup(&conn.reply_key()) else { return false };
        let holder = self.lb.conns6.get(id);
        if holder.proto != IpProtocol::TCP || !matches!(holder.state, TcpState::TimeWait | TcpState::Close) {
            return false;
        }
        self.end_conn6(id, now_ms);
        self.counters.event(Event::ConnsReused).inc();
        true
    }

    fn insert6_with_local_port(
        &mut self,
        snap: &Snapshot,
        svc: &Service6,
        conn: &mut Conn6,
        now_ms: u64,
        timeout: u32,
    ) -> Result<Conn6Id, DropReason> {
        // NAT64's replies are IPv4: their port must suit the IPv4 steering.
        let nat64_reply = match (svc.mode, conn.backend.to_ipv4_mapped()) {
            (FwdMode::Nat64, Some(backend)) => Some(self.reply_from(snap, backend, conn.bport)),
            _ => None,
        };
        for _ in 0..LOCAL_PORT_ATTEMPTS {
            let taken = match nat64_reply {
                Some(reply) => self.lb.take_local_port_nat64(svc, conn.proto, reply, now_ms),
                None => self.lb.take_local_port6(svc, conn.proto, now_ms),
            };
            let Ok(local) = taken else {
                return Err(DropReason::LocalPortsExhausted);
            };
            (conn.laddr, conn.lport, conn.laddr_slot) = (local.addr, local.port, local.slot);
            match self.lb.conns6.insert(*conn, now_ms, timeout) {
                Ok(id) => {
                    if local.early {
                        self.counters.event(Event::LportReusedEarly).inc();
                    }
                    return Ok(id);
                }
                Err(e) => {
                    self.lb.return_local_port(local.slot, None, conn.proto, local.port, None);
                    if e != InsertError::KeyExists {
                        return Err(insert_drop(e));
                    }
                }
            }
        }
        Err(DropReason::ConnKeyExists)
    }

    /// The backend for a new connection of an IPv6 client: persistence, else the scheduler.
    fn choose_backend6(&mut self, svc: &Service6, client: Ipv6Addr, now_ms: u64) -> Option<usize> {
        if let Some((slot, gen)) = self.lb.persisted_backend6(client, svc, now_ms) {
            let found = svc
                .backends
                .iter()
                .position(|b| b.slot == slot && b.gen == gen && b.weight > 0 && b.state != BackendState::Inhibited);
            if found.is_some() {
                self.counters.event(Event::PersistenceHits).inc();
                return found;
            }
        }
        self.lb.schedule(svc, source_hash_v6(client))
    }

    /// Moves an IPv6 (or NAT64) connection to TCP state `state`, keeping its backend's count
    /// of active connections right.
    #[inline]
    pub(super) fn set_state6(&mut self, id: Conn6Id, conn: &mut Conn6, state: TcpState) {
        if state == conn.state {
            return;
        }
        let (was, now) = (is_active(conn.proto, conn.state), is_active(conn.proto, state));
        if was != now {
            self.lb.conn_activity(conn.backend_slot, conn.backend_gen, now);
        }
        conn.state = state;
        self.lb.conns6.set_state(id, state);
    }

    #[allow(clippy::too_many_arguments)]
    fn conn_packet6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed6,
        id: Conn6Id,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let mut conn = self.lb.conns6.get(id);
        let slot = snap.services.backend_slot(conn.backend_slot);
        if ends_with_its_backend(conn.flags, conn.backend_gen, conn.proto, conn.state, &slot) {
            return self.reset_conn6(snap, now_ms, frame, l4, id, pool, tx);
        }
        let reparsed;
        let mut l4 = l4;
        if conn.flags.contains(ConnFlags::PROXIED) {
            match self.client_addr_v6(snap, frame, l4, id, &mut conn, dir) {
                Some((shifted, parsed)) => {
                    frame = shifted;
                    reparsed = parsed;
                    l4 = &reparsed;
                }
                None => return,
            }
        }
        if conn.proto == IpProtocol::TCP {
            let state = if conn.flags.is_one_way() {
                next_state_client_only(conn.state, l4.tcp_flags)
            } else {
                next_state(conn.state, dir, l4.tcp_flags)
            };
            self.set_state6(id, &mut conn, state);
        }
        if dir == Dir::Reply && !conn.flags.contains(ConnFlags::REPLIED) {
            conn.flags |= ConnFlags::REPLIED;
            self.lb.conns6.set_flags(id, conn.flags);
        }
        let timeout = conn.timeout(&snap.services.timeouts);
        self.lb.conns6.touch(id, now_ms, timeout);
        self.forward6(snap, now_ms, frame, l4, &conn, dir, pool, tx);
    }

    /// The client's address for the backend of an IPv6 FullNAT connection (`PROXIED`: IPv6
    /// has no SYN proxy, the flag means only this), on one of its packets (see
    /// `apply_client_addr`). Returns the packet to go on, parsed again if it grew. A TOA
    /// connection leaves `PROXIED` once its backend has acknowledged client data.
    #[cold]
    #[inline(never)]
    pub(super) fn client_addr_v6(
        &mut self,
        snap: &Snapshot,
        mut frame: F,
        l4: &Parsed6,
        id: Conn6Id,
        conn: &mut Conn6,
        dir: Dir,
    ) -> Option<(F, Parsed6)> {
        let before = self.lb.client_addr6(id);
        let mut shift = before;
        let ep = Endpoints {
            client: IpAddr::V6(conn.client),
            vip: IpAddr::V6(conn.vip),
            cport: conn.cport,
            vport: conn.vport,
        };
        let mtu = match dir {
            Dir::Original => {
                // A NAT64 packet leaves as IPv4, 20 bytes shorter than it is here.
                let (to, shrink) = match conn.nat64() {
                    Some((_, backend)) => (IpAddr::V4(backend), NAT64_SHRINK),
                    None => (IpAddr::V6(conn.backend), 0),
                };
                snap.routes
                    .lookup(to)
                    .and_then(|r| snap.port(r.port))
                    .map_or(usize::MAX, |p| usize::from(p.mtu) + shrink)
            }
            Dir::Reply => usize::MAX,
        };
        let grown = match self.apply_client_addr(&mut frame, xlate6::IPV6_HEADER_LEN, l4.end, dir, &mut shift, &ep, mtu)
        {
            Ok(grown) => grown,
            Err(reason) => {
                self.drop(frame, reason);
                return None;
            }
        };
        if shift != before {
            self.lb.set_client_addr6(id, shift);
            if shift.kind == ClientAddr::Toa && shift.acked {
                conn.flags.remove(ConnFlags::PROXIED);
                self.lb.conns6.set_flags(id, conn.flags);
            }
        }
        if grown.is_none() {
            return Some((frame, *l4));
        }
        match xlate6::parse_v6(&frame.data()[ETH_LEN..]) {
            Ok(parsed) => Some((frame, parsed)),
            Err(_) => {
                self.drop(frame, DropReason::MalformedL4);
                None
            }
        }
    }

    /// Rewrites an IPv6 connection's packet for its direction and sends it on.
    #[allow(clippy::too_many_arguments)]
    fn forward6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed6,
        conn: &Conn6,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if conn.flags.contains(ConnFlags::DR) {
            return self.forward_dr6(snap, now_ms, frame, conn, pool, tx);
        }
        if conn.flags.contains(ConnFlags::TUN) {
            return self.forward_tun6(snap, now_ms, frame, conn, pool, tx);
        }
        if let Some((laddr, backend)) = conn.nat64() {
            // Only the client's side is IPv6 (replies come by `nat64_reply`).
            return self.forward_nat64(snap, now_ms, frame, l4, conn, laddr, backend, pool, tx);
        }
        let rewrite = match dir {
            Dir::Original => Rewrite6 { src: conn.laddr, dst: conn.backend, sport: conn.lport, dport: conn.bport },
            Dir::Reply => Rewrite6 { src: conn.vip, dst: conn.client, sport: conn.vport, dport: conn.cport },
        };
        let snat = conn.flags.contains(ConnFlags::SNAT);
        // To a backend: where it goes is in the snapshot, and its next hop's MAC kept per
        // backend slot; else a gateway route's next hop has its MAC kept (as IPv4's).
        let hop = match dir {
            Dir::Original if !snat => snap.backend_hop6(conn.backend_slot, rewrite.dst),
            _ => None,
        };
        let (port, next_hop, our_mac, mtu, cache) = match hop {
            Some(h) => (h.port, IpAddr::V6(h.next_hop), h.our_mac, h.mtu, Some(usize::from(conn.backend_slot))),
            None => match self.routed(snap, IpAddr::V6(rewrite.dst)) {
                Ok(r) => (r.port, r.next_hop, r.our_mac, r.mtu, r.cache),
                Err(reason) => return self.drop(frame, reason),
            },
        };
        if frame.data().len() > ETH_LEN + usize::from(mtu) {
            return self.too_big6(snap, now_ms, frame, mtu, DropReason::TooBig, true, pool, tx);
        }
        let len = frame.data().len();
        match xlate6::rewrite_parsed_v6(&mut frame.data_mut()[ETH_LEN..], l4, &rewrite) {
            Ok(()) => {}
            Err(XlateError::TtlExpired) => return self.drop(frame, DropReason::TtlExpired),
            Err(_) => return self.drop(frame, DropReason::MalformedL4),
        }
        let inbound = dir == Dir::Original;
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, inbound, len);
        self.counters.event(nat_event(snat, inbound)).inc();
        match cache {
            Some(cache) => self.send_cached(snap, now_ms, frame, port, our_mac, next_hop, cache, pool, tx),
            None => self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx),
        }
    }

    /// An IPv6 packet that does not fit (`mtu`: the largest IP packet that would): dropped as
    /// `reason`, and with `tell_sender` its sender told with an ICMPv6 packet too big from
    /// the address it sent to, within this core's rate limit. IPv6 routers never fragment, so
    /// there is no DF to look at.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn too_big6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        mtu: u16,
        reason: DropReason,
        tell_sender: bool,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.counters.drop_reason(reason).inc();
        if !tell_sender {
            return;
        }
        if !self.too_big_errors.take(now_ms) {
            self.counters.event(Event::IcmpFragNeededRateLimited).inc();
            return;
        }
        let data = &frame.data()[ETH_LEN..];
        let (sender, sent_to) = (ipv6_at(data, 8), ipv6_at(data, 24));
        let ip_len = data.len();
        let err_len = (ip_len + 48).min(IPV6_MIN_MTU);
        if !frame.set_len(ETH_LEN + ip_len.max(err_len)) {
            return;
        }
        let Ok(len) = xlate6::icmp6_packet_too_big(&mut frame.data_mut()[ETH_LEN..], ip_len, sent_to, u32::from(mtu))
        else {
            return;
        };
        frame.set_len(ETH_LEN + len);
        self.counters.event(Event::Icmp6PacketTooBigSent).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V6(sender), pool, tx);
    }

    /// DR: the frame goes unchanged above L2 to the backend's MAC, on its connected network.
    fn forward_dr6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        conn: &Conn6,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let backend = IpAddr::V6(conn.backend);
        let Some(route) = snap.routes.lookup(backend) else {
            return self.drop(frame, DropReason::NoRoute);
        };
        if route.next_hop(backend) != backend {
            return self.drop(frame, DropReason::DrBackendNotConnected);
        }
        let port = route.port;
        let Some(egress) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        if exceeds_mtu(&frame, egress) {
            let mtu = egress.mtu;
            return self.too_big6(snap, now_ms, frame, mtu, DropReason::TooBig, true, pool, tx);
        }
        let our_mac = egress.mac;
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, true, frame.data().len());
        self.counters.event(Event::LbInPackets).inc();
        self.send_from(snap, now_ms, frame, port, our_mac, backend, pool, tx);
    }

    /// TUN: the client's IPv6 packet, unchanged, inside an outer IPv6 header (IPv6-in-IPv6,
    /// or with a UDP header for GUE) from our IPv6 address on the egress port to the
    /// backend. One that would not fit the egress MTU gets the service's `too_big` treatment,
    /// the packet too big saying what fits (the tunnel's overhead off the MTU).
    fn forward_tun6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        conn: &Conn6,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let slot = snap.services.backend_slot(conn.backend_slot);
        let tunnel = if slot.gen == conn.backend_gen { slot.tunnel } else { Tunnel::default() };
        let backend = IpAddr::V6(conn.backend);
        let Some(route) = snap.routes.lookup(backend) else {
            return self.drop(frame, DropReason::NoRoute);
        };
        let (port, next_hop) = (route.port, route.next_hop(backend));
        let Some(egress) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        let (mtu, our_mac) = (usize::from(egress.mtu), egress.mac);
        let Some(IpAddr::V6(src)) = snap.source_for(port, next_hop) else {
            return self.drop(frame, DropReason::NoSourceAddress);
        };
        // parse_v6 (or the ICMPv6 quote check) validated the payload length.
        let ip = &frame.data()[ETH_LEN..];
        let inner_len = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
        let overhead = match tunnel.encap {
            Encap::Ipip => IP6IP6_OVERHEAD,
            Encap::Gue { .. } => GUE6_OVERHEAD,
        };
        if inner_len + overhead > mtu {
            let fits = mtu.saturating_sub(overhead) as u16;
            let tell = tunnel.too_big == TooBig::Icmp;
            return self.too_big6(snap, now_ms, frame, fits, DropReason::TunnelTooBig, tell, pool, tx);
        }
        if !frame.set_len(ETH_LEN + inner_len) || !frame.prepend(overhead) {
            return self.drop(frame, DropReason::NoHeadroom);
        }
        let gue_port = match tunnel.encap {
            Encap::Gue { .. } => xlate6::gue_source_port_v6(&conn.original_key()),
            Encap::Ipip => 0,
        };
        let data = frame.data_mut();
        EthernetFrame::new_unchecked(&mut *data).set_ethertype(EtherType::IPV6);
        if xlate6::encap_v6(&mut data[ETH_LEN..], src, conn.backend, tunnel.encap, gue_port).is_err() {
            return self.drop(frame, DropReason::MalformedL4);
        }
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, true, frame.data().len());
        self.counters.event(Event::LbInPackets).inc();
        self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx);
    }

    /// The backend of an IPv6 connection was removed with `reset` (or it never finished its
    /// handshake): forget it and answer a TCP packet with a RST.
    #[allow(clippy::too_many_arguments)]
    fn reset_conn6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed6,
        id: Conn6Id,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.end_conn6(id, now_ms);
        self.counters.event(Event::ConnsReset).inc();
        let Ok(len) = xlate6::tcp_reset_v6(&mut frame.data_mut()[ETH_LEN..], l4) else {
            return self.drop(frame, DropReason::BackendRemoved);
        };
        if !frame.set_len(ETH_LEN + len) {
            return self.drop(frame, DropReason::BackendRemoved);
        }
        let dst = ipv6_at(&frame.data()[ETH_LEN..], 24);
        self.counters.drop_reason(DropReason::BackendRemoved).inc();
        self.counters.event(Event::TcpResetsSent).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V6(dst), pool, tx);
    }

    /// An ICMPv6 error. When it quotes a packet of a tracked IPv6 connection it is translated
    /// like that connection's packets and sent to the other side; otherwise returned.
    pub(super) fn icmp6_error_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Some(q) = xlate6::icmp6_error_quote(&frame.data()[ETH_LEN..]) else {
            return Some(frame);
        };
        let key = ConnKey6 { src: q.dst, dst: q.src, sport: q.dport, dport: q.sport, proto: q.proto };
        if !self.lb.ownership.is_single() {
            let owner = self.lb.ownership.owner6(&snap.services, &key);
            if owner != self.core {
                self.hand_off(owner, frame, tx);
                return None;
            }
        }
        let Some((id, dir)) = self.lb.conns6.lookup(&key) else { return Some(frame) };
        let conn = self.lb.conns6.get(id);
        if conn.flags.is_one_way() {
            // From the client's side about a reply the backend sent it directly: to the
            // backend the way the connection's packets go, unchanged inside.
            self.counters.event(Event::IcmpErrorsTranslated).inc();
            if conn.flags.contains(ConnFlags::DR) {
                self.forward_dr6(snap, now_ms, frame, &conn, pool, tx);
            } else {
                self.forward_tun6(snap, now_ms, frame, &conn, pool, tx);
            }
            return None;
        }
        if conn.nat64().is_some() {
            // From the client's side about a reply: its backend speaks ICMPv4 only, and an
            // error from the client's network has no IPv4 meaning for it. (The backend's
            // ICMPv4 errors come the other way, by `nat64_icmp_error`.)
            self.drop(frame, DropReason::UnsupportedProtocol);
            return None;
        }
        let outer_src = ipv6_at(&frame.data()[ETH_LEN..], 8);
        let (outer_src, outer_dst, quote) = match dir {
            // From the backend's side about a packet we sent it: to the client, from the VIP
            // (under SNAT the sender is on the far side and keeps its own address).
            Dir::Reply => (
                if conn.flags.contains(ConnFlags::SNAT) { outer_src } else { conn.vip },
                conn.client,
                Rewrite6 { src: conn.client, dst: conn.vip, sport: conn.cport, dport: conn.vport },
            ),
            // From the client's side about a reply: to the backend (from our local address
            // in FullNAT, the only one it knows).
            Dir::Original => (
                if conn.flags.contains(ConnFlags::FULLNAT) { conn.laddr } else { outer_src },
                conn.backend,
                Rewrite6 { src: conn.backend, dst: conn.laddr, sport: conn.bport, dport: conn.lport },
            ),
        };
        match xlate6::rewrite_icmp6_error(&mut frame.data_mut()[ETH_LEN..], outer_src, outer_dst, &quote) {
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
        self.route_output(snap, now_ms, frame, IpAddr::V6(outer_dst), pool, tx);
        None
    }

    pub(super) fn end_conn6(&mut self, id: Conn6Id, now_ms: u64) {
        let conn = self.lb.conns6.remove(id);
        self.lb.release6(&conn, now_ms);
    }
}

fn insert_drop(e: InsertError) -> DropReason {
    match e {
        InsertError::Full => DropReason::ConnTableFull,
        InsertError::KeyExists => DropReason::ConnKeyExists,
        InsertError::Protocol => DropReason::UnsupportedProtocol,
    }
}

fn ipv6_at(packet: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&packet[at..at + 16]);
    Ipv6Addr::from(o)
}

fn is_to_vip6<F: Frame>(snap: &Snapshot, frame: &F) -> bool {
    let data = &frame.data()[ETH_LEN..];
    data.len() >= 40 && snap.services.v6.is_vip(ipv6_at(data, 24))
}

/// Whether an IPv6 connection's backend can still take its traffic.
fn backend_usable6(snap: &Snapshot, conn: &Conn6) -> bool {
    if conn.flags.contains(ConnFlags::SNAT) {
        return true;
    }
    let slot = snap.services.backend_slot(conn.backend_slot);
    if slot.gen != conn.backend_gen || !slot.live {
        return false;
    }
    snap.services.v6.lookup(conn.vip, conn.vport, conn.proto).is_some_and(|svc| {
        svc.backends
            .iter()
            .any(|b| b.slot == conn.backend_slot && b.gen == conn.backend_gen && b.state != BackendState::Inhibited)
    })
}

/// The sequence number of an IPv6 TCP packet (`parse_v6` checked the header is there).
fn tcp_seq6<F: Frame>(frame: &F) -> u32 {
    let at = ETH_LEN + 40 + 4;
    frame.data().get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn is_new_syn(flags: TcpFlags) -> bool {
    flags.contains(TcpFlags::SYN) && !flags.intersects(TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN)
}
