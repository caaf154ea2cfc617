//! Load balancing in the pipeline: packets of tracked connections are translated both ways,
//! first packets to a service are scheduled onto a backend, ICMP errors about a connection
//! follow it. NAT rewrites the destination (and the source of replies); FullNAT also puts a
//! local address and port of this core in the source, so replies come back to us whatever
//! the backends' routes are. DR sends the client's frame to the backend's MAC and TUN
//! encapsulates it; in both the backend answers the client directly, so only the client's
//! side is tracked. SNAT gives outbound connections from inside a source address and port of
//! ours, the same rewrite as FullNAT with the remote server as "backend".

use std::net::{IpAddr, Ipv4Addr};

use super::{exceeds_mtu, CoreCtx, Frame, FramePool, LbCandidate, TxSink, ETH_LEN};
use crate::conn::{
    handshake_incomplete, next_state, next_state_client_only, syn_starts_new_connection, Conn, ConnFlags, ConnId,
    ConnKey, Dir, InsertError, TcpState,
};
use crate::counters::{DropReason, Event};
use crate::defence::AutoChange;
use crate::lb::{is_active, LbCore, LocalPort, PortsExhausted, ReplyFrom};
use crate::sched::source_hash_v4;
use crate::service::{BackendState, Encap, FwdMode, Service, SynProxy, TooBig, Tunnel};
use crate::snapshot::Snapshot;
use crate::wire::{EtherType, EthernetFrame, IpProtocol, TcpFlags};
use crate::xlate::clientaddr::{self, ClientAddr, Endpoints, Shift};
use crate::xlate::{self, seqadj, Parsed4, Rewrite4, XlateError};

/// A FullNAT connection whose reply tuple is taken tries this many other local ports.
const LOCAL_PORT_ATTEMPTS: usize = 4;
/// The longest ICMP error we build (RFC 1812 4.3.2.3: at most 576 bytes).
const ICMP_ERROR_MAX_LEN: usize = 576;

/// A connection's backend: its address, slot and the slot's generation when it was chosen.
#[derive(Clone, Copy)]
pub(super) struct BackendRef {
    pub addr: Ipv4Addr,
    pub slot: u16,
    pub gen: u32,
}

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
        let l4 = match xlate::parse_v4(&frame.data()[ETH_LEN..]) {
            Ok(l4) => l4,
            Err(XlateError::Malformed) if is_to_vip(snap, &frame) => {
                self.drop(frame, DropReason::MalformedL4);
                return None;
            }
            Err(_) => return Some(frame),
        };
        let candidate = self.candidate(l4);
        self.lb_input(snap, now_ms, frame, &candidate, pool, tx)
    }

    /// A parsed TCP/UDP packet: a tracked connection's, a new connection to a service, or
    /// (returned) not load-balancing traffic.
    #[inline]
    pub(super) fn lb_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        candidate: &LbCandidate,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let found = self.lb.conns.lookup_hinted(&candidate.l4.tuple, candidate.hash, candidate.hint);
        self.lb_input_found(snap, now_ms, frame, &candidate.l4, candidate.hash, found, pool, tx)
    }

    /// `lb_input` with the connection table's answer for the packet's tuple (`found`) and the
    /// tuple's hash in that table (`hash`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn lb_input_found(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        l4: &Parsed4,
        hash: u64,
        found: Option<(ConnId, Dir)>,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let t = l4.tuple;
        let tcp_flags = l4.tcp_flags;
        let frame = match found {
            Some((id, dir)) => self.tracked_input(snap, now_ms, frame, l4, id, dir, pool, tx)?,
            None => frame,
        };
        let services = &snap.services;
        let Some(svc) = services.lookup(t.dst, t.dport, t.proto) else {
            if services.v6.is_nat64_laddr(t.dst) {
                // A NAT64 connection's reply: its entry is in the IPv6 table.
                return self.nat64_reply(snap, now_ms, frame, l4, pool, tx);
            }
            // A VIP that is also the box's own address leaves its other ports to the kernel.
            if services.is_vip(t.dst) && !snap.is_interface_addr(IpAddr::V4(t.dst)) {
                self.drop(frame, DropReason::NoService);
                return None;
            }
            return Some(frame);
        };
        if svc.syn_proxy != SynProxy::Off && t.proto == IpProtocol::TCP && self.proxies(svc, now_ms, tcp_flags) {
            // Only on the way to a new connection: tracked ones were handled above.
            self.syn_proxy_input(snap, now_ms, frame, svc, l4, hash, pool, tx);
            return None;
        }
        let mid_flow = t.proto == IpProtocol::TCP && !is_new_syn(tcp_flags);
        if mid_flow && !svc.pickup {
            // IPVS does the same: only a SYN opens a TCP connection.
            self.drop(frame, DropReason::NoConnection);
            return None;
        }
        self.new_conn(snap, now_ms, frame, svc, l4, hash, mid_flow, None, pool, tx);
        None
    }

    /// A packet whose tuple is connection `id`'s key for `dir`: handled as that connection's,
    /// or, a client's SYN that opens a new connection on the tuple (see `syn_opens_anew`),
    /// returned once the entry is ended.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn tracked_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        l4: &Parsed4,
        id: ConnId,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let reuse = dir == Dir::Original
            && l4.tuple.proto == IpProtocol::TCP
            && is_new_syn(l4.tcp_flags)
            && self.syn_opens_anew(snap, id, tcp_seq(&frame, l4));
        if !reuse {
            self.conn_packet(snap, now_ms, frame, l4, id, dir, pool, tx);
            return None;
        }
        // The client's SYN is not for this entry's connection: forget it, schedule anew.
        self.end_conn(id, now_ms);
        self.counters.event(Event::ConnsReused).inc();
        Some(frame)
    }

    /// Whether a packet without a connection to a SYN-proxied service goes to the proxy:
    /// always with `on`; with `auto`, a SYN while this core is engaged (the SYN counted), and
    /// any other packet while cookies sent may still come back.
    #[cold]
    #[inline(never)]
    fn proxies(&mut self, svc: &Service, now_ms: u64, flags: TcpFlags) -> bool {
        if svc.syn_proxy == SynProxy::On {
            return true;
        }
        let auto = &mut self.guard.auto;
        if !is_new_syn(flags) {
            return auto.engaged() || auto.cookies_recent(now_ms);
        }
        let l = self.lb.limits();
        let half_open = u32::try_from(self.lb.conns.half_open()).unwrap_or(u32::MAX);
        let (engaged, change) = auto.syn(now_ms, half_open, (l.auto_half_open, l.auto_syns_per_s));
        self.auto_changed(change);
        engaged
    }

    /// Counts a change of `syn_proxy: auto` on this core.
    pub(super) fn auto_changed(&self, change: AutoChange) {
        match change {
            AutoChange::None => {}
            AutoChange::Engaged => {
                self.counters.event(Event::SynProxyAutoEngaged).set(1);
                self.counters.event(Event::SynProxyAutoEngagements).inc();
            }
            AutoChange::Disengaged => self.counters.event(Event::SynProxyAutoEngaged).set(0),
        }
    }

    /// A packet to a SYN-proxied service that is no tracked connection's. A SYN is answered
    /// here with a SYN-ACK whose sequence number is a cookie, and nothing is kept. An ACK
    /// carrying a valid cookie becomes the SYN that opens the connection to a backend (the
    /// client's ISN, the MSS the cookie says). Anything else is dropped and counted.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn syn_proxy_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        svc: &Service,
        l4: &Parsed4,
        hash: u64,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let t = l4.tuple;
        let tuple = seqadj::CookieTuple { client: t.src, vip: t.dst, cport: t.sport, vport: t.dport };
        let secret = &snap.services.syn_cookie_secret;
        let minute = (now_ms / seqadj::COOKIE_TICK_MS) as u32;
        let (seq, ack) = (tcp_seq(&frame, l4), tcp_ack(&frame, l4));
        if is_new_syn(l4.tcp_flags) {
            // A source the access lists refuse gets no SYN-ACK (rates are checked on the ACK,
            // when a connection is made: spoofed SYNs must not drain a real client's bucket).
            if let Err(reason) = self.access(snap, svc, t.src) {
                return self.drop(frame, reason);
            }
            let opts = seqadj::syn_options_at(&frame.data()[ETH_LEN..], l4.header_len(), l4.total_len());
            let index = seqadj::mss_index(opts.mss);
            let cookie = seqadj::make_cookie(secret, &tuple, seq, minute, index);
            let mut mss = seqadj::MSS_TABLE[index as usize];
            if svc.client_address.in_stream() {
                mss = mss_with_header(svc.client_address, l4, mss);
            }
            // With timestamps the TSval carries the client's other options (Linux's way).
            let tsval = opts.timestamps.map(|_| seqadj::cookie_tsval(now_ms, opts.wscale, opts.sack_permitted));
            if frame.data().len() < ETH_LEN + seqadj::SYN_LEN && !frame.set_len(ETH_LEN + seqadj::SYN_LEN) {
                return self.drop(frame, DropReason::NoHeadroom);
            }
            let (at, end) = (l4.header_len(), l4.total_len());
            let Ok(len) = seqadj::syn_ack_v4_at(&mut frame.data_mut()[ETH_LEN..], at, end, cookie, mss, tsval, &opts)
            else {
                return self.drop(frame, DropReason::MalformedL4);
            };
            frame.set_len(ETH_LEN + len);
            self.counters.event(Event::SynCookiesSent).inc();
            return self.send_back(snap, frame, tx);
        }
        let only_ack = l4.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN) == TcpFlags::ACK;
        if !only_ack {
            return self.drop(frame, DropReason::NoConnection);
        }
        let cookie = ack.wrapping_sub(1);
        let Some(mss) = seqadj::check_cookie(secret, &tuple, seq.wrapping_sub(1), cookie, minute) else {
            return self.drop(frame, DropReason::SynCookieInvalid);
        };
        let ack_opts = seqadj::syn_options_at(&frame.data()[ETH_LEN..], l4.header_len(), l4.total_len());
        let window = tcp_window(&frame, l4);
        let (cookie_opts, proxy) = match ack_opts.timestamps {
            Some((_, tsecr)) => {
                let (wscale, sack_permitted) = seqadj::decode_cookie_tsval(tsecr);
                let opts = seqadj::SynOptions { mss: None, wscale, sack_permitted, timestamps: ack_opts.timestamps };
                let proxy = seqadj::ProxyOpts {
                    ts: tsecr,
                    client_window: window,
                    client_wscale: wscale.unwrap_or(seqadj::NO_WSCALE),
                    backend_wscale: seqadj::NO_WSCALE,
                };
                (opts, proxy)
            }
            None => {
                let proxy = seqadj::ProxyOpts {
                    ts: 0,
                    client_window: window,
                    client_wscale: seqadj::NO_WSCALE,
                    backend_wscale: seqadj::NO_WSCALE,
                };
                (seqadj::SynOptions::default(), proxy)
            }
        };
        if frame.data().len() < ETH_LEN + seqadj::SYN_LEN && !frame.set_len(ETH_LEN + seqadj::SYN_LEN) {
            return self.drop(frame, DropReason::NoHeadroom);
        }
        let Ok(len) = seqadj::syn_from_ack_v4(&mut frame.data_mut()[ETH_LEN..], mss, &cookie_opts) else {
            return self.drop(frame, DropReason::MalformedL4);
        };
        frame.set_len(ETH_LEN + len);
        let Ok(syn) = xlate::parse_v4(&frame.data()[ETH_LEN..]) else {
            return self.drop(frame, DropReason::MalformedL4);
        };
        self.counters.event(Event::SynCookiesValid).inc();
        // The SYN made of the ACK has the ACK's tuple, and so its hash.
        self.new_conn(snap, now_ms, frame, svc, &syn, hash, false, Some(&(cookie, proxy)), pool, tx);
    }

    /// A packet of a connection whose sequence numbers are adjusted (`PROXIED`): SYN-proxied
    /// (`proxied_packet`), or with a PROXY header or TOA for its backend (`client_addr_v4`),
    /// or both, in that order. Returns the packet to go on, parsed again if it grew.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn seq_adjusted_packet(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed4,
        id: ConnId,
        conn: &mut Conn,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<(F, Parsed4)> {
        let shift = self.lb.client_addr(id);
        if shift.kind == ClientAddr::Off || shift.syn_proxied {
            frame = self.proxied_packet(snap, now_ms, frame, l4, id, conn, dir, pool, tx)?;
        }
        if shift.kind == ClientAddr::Off {
            return Some((frame, *l4));
        }
        self.client_addr_v4(snap, frame, l4, id, conn, dir)
    }

    /// The client's address for the backend of an IPv4 FullNAT connection, on one of its
    /// packets (see `apply_client_addr`). A TOA connection leaves `PROXIED` (and this path)
    /// once its backend has acknowledged client data, unless it is SYN-proxied too.
    #[cold]
    #[inline(never)]
    fn client_addr_v4(
        &mut self,
        snap: &Snapshot,
        mut frame: F,
        l4: &Parsed4,
        id: ConnId,
        conn: &mut Conn,
        dir: Dir,
    ) -> Option<(F, Parsed4)> {
        let before = self.lb.client_addr(id);
        let mut shift = before;
        let ep = Endpoints {
            client: IpAddr::V4(conn.client),
            vip: IpAddr::V4(conn.vip),
            cport: conn.cport,
            vport: conn.vport,
        };
        let mtu = match dir {
            Dir::Original => self.backend_mtu(snap, conn),
            Dir::Reply => usize::MAX,
        };
        let grown = match self.apply_client_addr(&mut frame, l4.header_len(), l4.total_len(), dir, &mut shift, &ep, mtu)
        {
            Ok(grown) => grown,
            Err(reason) => {
                self.drop(frame, reason);
                return None;
            }
        };
        if shift != before {
            self.lb.set_client_addr(id, shift);
            if shift.kind == ClientAddr::Toa && shift.acked && !shift.syn_proxied {
                conn.flags.remove(ConnFlags::PROXIED);
                self.lb.conns.set_flags(id, conn.flags);
            }
        }
        if grown.is_none() {
            return Some((frame, *l4));
        }
        match xlate::parse_v4(&frame.data()[ETH_LEN..]) {
            Ok(parsed) => Some((frame, parsed)),
            Err(_) => {
                self.drop(frame, DropReason::MalformedL4);
                None
            }
        }
    }

    /// The MTU toward a connection's backend, as `forward` will find it (the largest IP
    /// packet; `usize::MAX` when there is no route: `forward` drops the packet then).
    fn backend_mtu(&self, snap: &Snapshot, conn: &Conn) -> usize {
        if let Some(hop) = snap.backend_hop(conn.backend_slot, conn.backend) {
            return usize::from(hop.mtu);
        }
        snap.routes
            .lookup(IpAddr::V4(conn.backend))
            .and_then(|r| snap.port(r.port))
            .map_or(usize::MAX, |p| usize::from(p.mtu))
    }

    /// A packet of a SYN-proxied connection. Until the backend's SYN-ACK, the client's
    /// packets are dropped (counted; the client sends them again) and that SYN-ACK is
    /// answered here with the ACK that completes the backend's handshake, recording the
    /// sequence delta. Afterwards the packet's sequence numbers are shifted and it is
    /// returned to go the way of any other connection's.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn proxied_packet(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed4,
        id: ConnId,
        conn: &mut Conn,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        if conn.flags.contains(ConnFlags::REPLIED) {
            let (delta, proxy) = (self.lb.proxy_seq(id), self.lb.proxy_opts(id));
            let (at, end) = (l4.header_len(), l4.total_len());
            let packet = &mut frame.data_mut()[ETH_LEN..];
            match dir {
                Dir::Original => {
                    seqadj::to_backend(packet, at, end, delta);
                    seqadj::adjust_to_backend(packet, at, end, &proxy);
                }
                Dir::Reply => {
                    seqadj::to_client(packet, at, end, delta);
                    seqadj::adjust_to_client(packet, at, end, &proxy);
                }
            }
            return Some(frame);
        }
        let syn_ack = l4.tcp_flags & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST) == TcpFlags::SYN | TcpFlags::ACK;
        if dir == Dir::Original || !syn_ack {
            self.drop(frame, DropReason::SynProxyPending);
            return None;
        }
        let (cookie, proxy) = (self.lb.proxy_seq(id), self.lb.proxy_opts(id));
        if frame.data().len() < ETH_LEN + seqadj::ACK_LEN && !frame.set_len(ETH_LEN + seqadj::ACK_LEN) {
            self.drop(frame, DropReason::NoHeadroom);
            return None;
        }
        let packet = &mut frame.data_mut()[ETH_LEN..];
        let Ok((len, backend_isn, proxy)) =
            seqadj::ack_from_syn_ack_v4(packet, conn.client, conn.vip, conn.cport, conn.vport, proxy)
        else {
            self.drop(frame, DropReason::MalformedL4);
            return None;
        };
        frame.set_len(ETH_LEN + len);
        self.lb.set_proxy_seq(id, backend_isn.wrapping_sub(cookie));
        self.lb.set_proxy_opts(id, proxy);
        conn.flags |= ConnFlags::REPLIED;
        self.lb.conns.set_flags(id, conn.flags);
        // The client completed its handshake with us already: both sides are established.
        if conn.state != TcpState::Established {
            if !is_active(conn.proto, conn.state) {
                self.lb.conn_activity(conn.backend_slot, conn.backend_gen, true);
            }
            conn.state = TcpState::Established;
            self.lb.conns.set_state(id, TcpState::Established);
        }
        let timeout = snap.services.timeouts.for_conn(conn);
        self.lb.conns.touch(id, now_ms, timeout);
        self.counters.event(Event::SynProxyBackendHandshakes).inc();
        // The ACK completing the backend's handshake starts at the client's ISN + 1: with a
        // `client_address`, it carries the PROXY header (or TOA).
        let frame = if self.lb.client_addr(id).kind == ClientAddr::Off {
            frame
        } else {
            let Ok(ack) = xlate::parse_v4(&frame.data()[ETH_LEN..]) else {
                self.drop(frame, DropReason::MalformedL4);
                return None;
            };
            self.client_addr_v4(snap, frame, &ack, id, conn, Dir::Original)?.0
        };
        self.forward(snap, now_ms, frame, None, conn, Dir::Original, pool, tx);
        None
    }

    /// A client's SYN (no ACK) on entry `id` that must start a new connection rather than go
    /// where the entry goes (IPVS's conn_reuse_mode and expire_nodest_conn): its backend can
    /// take no traffic (removed, replaced, inhibited), or the entry's connection is finished or
    /// closing, or never completed its handshake, and the SYN has another initial sequence
    /// number than the one that opened it (not a retransmit: the client gave up on that
    /// attempt). A retransmitted SYN to a usable backend stays. Not on the per-packet path of
    /// established connections: only SYNs come here.
    fn syn_opens_anew(&self, snap: &Snapshot, id: ConnId, seq: u32) -> bool {
        let conn = self.lb.conns.get(id);
        if !backend_usable(snap, &conn) {
            return true;
        }
        // FullNAT keeps no ISN (its entry has no room).
        let isn = self.lb.conns.client_isn(id);
        if syn_starts_new_connection(conn.state) {
            // Unless it is a retransmit of the SYN that opened the entry: then packets that are
            // not this connection's (a stray segment of the tuple's previous connection, a
            // forged one) moved the state, and the backend may have answered already.
            return isn != Some(seq);
        }
        handshake_incomplete(conn.state) && isn.is_some_and(|isn| isn != seq)
    }

    /// Schedules a first packet onto a backend, records the connection and forwards. `hash`:
    /// the packet tuple's hash in the connection table (`ConnTable::hash`).
    /// `mid_flow`: a TCP packet other than a SYN, picked up (the service allows it): the
    /// connection was established elsewhere, so it is taken as established before this packet.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn new_conn(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        svc: &Service,
        l4: &Parsed4,
        hash: u64,
        mid_flow: bool,
        proxy: Option<&(u32, seqadj::ProxyOpts)>,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let mut frame = frame;
        let (t, tcp_flags) = (l4.tuple, l4.tcp_flags);
        if let Err(reason) = self.admit(snap, svc, t.src, now_ms) {
            return self.drop(frame, reason);
        }
        let Some(index) = self.choose_backend(svc, t.src, now_ms) else {
            if svc.reset_when_all_down && t.proto == IpProtocol::TCP {
                return self.refuse_with_reset(snap, now_ms, frame, pool, tx);
            }
            return self.drop(frame, DropReason::NoBackend);
        };
        let Some(index) = self.backend_with_room(snap, svc, index) else {
            return self.drop(frame, DropReason::BackendsFull);
        };
        let backend = svc.backends[index];
        let full_nat = svc.mode == FwdMode::FullNat;
        let state = match (t.proto == IpProtocol::TCP, svc.mode.is_one_way()) {
            (false, _) => TcpState::None,
            (true, false) => next_state(TcpState::None, Dir::Original, tcp_flags),
            // From NONE an ACK would mean CLOSE (a stray segment); a picked-up one continues
            // an established connection, with its timeout.
            (true, true) if mid_flow => next_state_client_only(TcpState::Established, tcp_flags),
            (true, true) => next_state_client_only(TcpState::None, tcp_flags),
        };
        let mut flags = match svc.mode {
            FwdMode::Nat => ConnFlags::empty(),
            // NAT64 services are IPv6 ones: never in this list.
            FwdMode::FullNat | FwdMode::Nat64 => ConnFlags::FULLNAT,
            FwdMode::Dr => ConnFlags::DR,
            FwdMode::Tun => ConnFlags::TUN,
        };
        if svc.reset_on_removal {
            flags |= ConnFlags::RESET;
        }
        // The PROXY header and TOA are for FullNAT TCP (the config refuses them elsewhere).
        if proxy.is_some() || (svc.client_address != ClientAddr::Off && full_nat && t.proto == IpProtocol::TCP) {
            flags |= ConnFlags::PROXIED;
        }
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
            flags,
            service: svc.slot,
            backend_slot: backend.slot,
            backend_gen: backend.gen,
            laddr_slot: u16::MAX,
        };
        if let Err(reason) = self.make_room(conn.proto, conn.state, now_ms) {
            return self.drop(frame, reason);
        }
        let timeout = snap.services.timeouts.for_conn(&conn);
        // Every caller looked the packet's tuple up (by `hash`) and found nothing (or ended
        // what it found).
        debug_assert_eq!(hash, self.lb.conns.hash(&t));
        let inserted = if full_nat {
            let reply = self.reply_from(snap, backend.addr, backend.port);
            self.insert_with_local_port(&mut conn, Some(hash), now_ms, timeout, |lb| {
                lb.take_local_port(svc, t.proto, reply, now_ms)
            })
        } else {
            // The ISN of the SYN (UDP: none, 0) that opened it, against reuse (`syn_opens_anew`).
            let isn = if t.proto == IpProtocol::TCP { tcp_seq(&frame, l4) } else { 0 };
            self.insert(&conn, hash, isn, now_ms, timeout)
        };
        let id = match inserted {
            Ok(id) => id,
            Err(reason) => return self.drop(frame, reason),
        };
        if t.proto == IpProtocol::TCP && !svc.mode.is_one_way() {
            self.lb.handshakes.syn_sent(id);
        }
        let mut trimmed = false;
        if conn.flags.contains(ConnFlags::PROXIED) {
            match self.record_client_addr(id, svc, &conn, &mut frame, l4, proxy.is_some()) {
                Some(t) => trimmed = t,
                None => {
                    self.end_conn(id, now_ms);
                    return self.drop(frame, DropReason::ClientAddrUnavailable);
                }
            }
        }
        if let Some(&(cookie, opts)) = proxy {
            if !self.lb.set_proxy_seq(id, cookie) || !self.lb.set_proxy_opts(id, opts) {
                // This core synced no proxied service yet: nowhere to keep the shift.
                self.end_conn(id, now_ms);
                return self.drop(frame, DropReason::SynProxyPending);
            }
        }
        self.counters.event(Event::ConnsCreated).inc();
        if mid_flow {
            self.counters.event(Event::ConnsPickedUp).inc();
        }
        self.lb.conn_opened(backend.slot, backend.gen, is_active(conn.proto, conn.state));
        if svc.persistence_ms > 0 && self.lb.persist(t.src, svc, backend.slot, backend.gen, now_ms) {
            self.counters.event(Event::PersistenceEvictions).inc();
        }
        if trimmed {
            return self.forward_changed(snap, now_ms, frame, &conn, pool, tx);
        }
        self.forward(snap, now_ms, frame, Some(l4), &conn, Dir::Original, pool, tx);
    }

    /// `forward` of a client's packet whose length changed since it was parsed.
    #[cold]
    #[inline(never)]
    fn forward_changed(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        conn: &Conn,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.forward(snap, now_ms, frame, None, conn, Dir::Original, pool, tx);
    }

    /// Keeps a new `PROXIED` connection's client-address state: written for every one
    /// (SYN-proxied only: `Off`), so none finds its slot's previous occupant's; a PROXY
    /// connection's SYN loses any data it carries (TCP Fast Open: it would reach the backend
    /// ahead of the header). None when the connection needs the state and this core keeps
    /// none; else whether the SYN was cut.
    #[cold]
    #[inline(never)]
    fn record_client_addr(
        &mut self,
        id: ConnId,
        svc: &Service,
        conn: &Conn,
        frame: &mut F,
        syn: &Parsed4,
        syn_proxied: bool,
    ) -> Option<bool> {
        let isn = tcp_seq(frame, syn);
        let kind = match (conn.flags.contains(ConnFlags::FULLNAT), conn.proto) {
            (true, IpProtocol::TCP) => svc.client_address,
            _ => ClientAddr::Off,
        };
        let ep = Endpoints {
            client: IpAddr::V4(conn.client),
            vip: IpAddr::V4(conn.vip),
            cport: conn.cport,
            vport: conn.vport,
        };
        let shift = Shift::new(kind, isn, &ep, syn_proxied);
        if !self.lb.set_client_addr(id, shift) && kind != ClientAddr::Off {
            return None;
        }
        let packet = &mut frame.data_mut()[ETH_LEN..];
        match clientaddr::syn_segment(packet, syn.header_len(), syn.total_len(), &shift) {
            Ok(clientaddr::ToBackend::SynTrimmed(end)) => {
                frame.set_len(ETH_LEN + end);
                Some(true)
            }
            _ => Some(false),
        }
    }

    /// Records a connection whose tuples are its own (NAT, DR, TUN), whose original key
    /// (of this `hash`) was looked up and not found.
    fn insert(&mut self, conn: &Conn, hash: u64, isn: u32, now_ms: u64, timeout: u32) -> Result<ConnId, DropReason> {
        match self.lb.conns.insert_absent(conn, hash, isn, now_ms, timeout) {
            Ok(id) => Ok(id),
            Err(InsertError::Full) => Err(DropReason::ConnTableFull),
            Err(InsertError::KeyExists) if self.retire_finished_reply_holder(conn, now_ms) => {
                self.lb.conns.insert_absent(conn, hash, isn, now_ms, timeout).map_err(|_| DropReason::ConnKeyExists)
            }
            Err(InsertError::KeyExists) => Err(DropReason::ConnKeyExists),
            // Only TCP and UDP come here.
            Err(InsertError::Protocol) => Err(DropReason::UnsupportedProtocol),
        }
    }

    /// NAT: two services of a VIP that share a backend give a client port reused toward the
    /// other service the reply tuple of its earlier connection. When that connection is over
    /// (TIME_WAIT or CLOSE, as `syn_opens_anew` would treat a SYN on it), it gives way, as the
    /// client's and backend's stacks do; one still open keeps its tuple and the SYN is
    /// dropped (`drop_conn_key_exists`). True when an entry was ended.
    #[cold]
    #[inline(never)]
    fn retire_finished_reply_holder(&mut self, conn: &Conn, now_ms: u64) -> bool {
        if conn.proto != IpProtocol::TCP || conn.flags.is_one_way() {
            return false;
        }
        let Some((id, _)) = self.lb.conns.lookup(&conn.reply_key()) else { return false };
        let holder = self.lb.conns.get(id);
        if holder.proto != IpProtocol::TCP || !matches!(holder.state, TcpState::TimeWait | TcpState::Close) {
            return false;
        }
        self.end_conn(id, now_ms);
        self.counters.event(Event::ConnsReused).inc();
        true
    }

    /// Records a connection with a local address and port from `take` (FullNAT, SNAT). A port
    /// whose reply tuple is already tracked goes back and another is tried. `absent`: the
    /// hash of the original key when it was looked up and not found.
    fn insert_with_local_port(
        &mut self,
        conn: &mut Conn,
        absent: Option<u64>,
        now_ms: u64,
        timeout: u32,
        mut take: impl FnMut(&mut LbCore) -> Result<LocalPort, PortsExhausted>,
    ) -> Result<ConnId, DropReason> {
        for _ in 0..LOCAL_PORT_ATTEMPTS {
            let Ok(local) = take(&mut self.lb) else {
                return Err(DropReason::LocalPortsExhausted);
            };
            (conn.laddr, conn.lport, conn.laddr_slot) = (local.addr, local.port, local.slot);
            let inserted = match absent {
                // FullNAT and SNAT keep no ISN (the local address takes its place).
                Some(hash) => self.lb.conns.insert_absent(conn, hash, 0, now_ms, timeout),
                None => self.lb.conns.insert(*conn, now_ms, timeout),
            };
            match inserted {
                Ok(id) => {
                    if local.early {
                        self.counters.event(Event::LportReusedEarly).inc();
                    }
                    return Ok(id);
                }
                Err(e) => {
                    // It carried nothing: its quiet time stays as it was.
                    self.lb.return_local_port(local.slot, None, conn.proto, local.port, None);
                    match e {
                        InsertError::Full => return Err(DropReason::ConnTableFull),
                        InsertError::Protocol => return Err(DropReason::UnsupportedProtocol),
                        InsertError::KeyExists => {}
                    }
                }
            }
        }
        Err(DropReason::ConnKeyExists)
    }

    /// TCP or UDP passing through (not to us, not to a VIP): when a SNAT rule covers its
    /// source and egress port, a new outbound connection. Otherwise the frame is returned.
    pub(super) fn snat_input(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Ok(l4) = xlate::parse_v4(&frame.data()[ETH_LEN..]) else { return Some(frame) };
        let (t, tcp_flags) = (l4.tuple, l4.tcp_flags);
        let Some(route) = snap.routes.lookup(IpAddr::V4(t.dst)) else { return Some(frame) };
        let Some(rule) = snap.services.snat_rule(t.src, route.port) else { return Some(frame) };
        if t.proto == IpProtocol::TCP && !is_new_syn(tcp_flags) {
            self.drop(frame, DropReason::NoConnection);
            return None;
        }
        let state = if t.proto == IpProtocol::TCP {
            next_state(TcpState::None, Dir::Original, tcp_flags)
        } else {
            TcpState::None
        };
        let mut conn = Conn {
            client: t.src,
            vip: t.dst,
            backend: t.dst,
            laddr: t.src,
            cport: t.sport,
            vport: t.dport,
            bport: t.dport,
            lport: t.sport,
            proto: t.proto,
            state,
            flags: ConnFlags::FULLNAT | ConnFlags::SNAT,
            service: u16::MAX,
            backend_slot: u16::MAX,
            backend_gen: 0,
            laddr_slot: u16::MAX,
        };
        let timeout = snap.services.timeouts.for_conn(&conn);
        // The client's hash picks its first address: a host keeps one public address while
        // that address has ports (protocols that open several connections expect that).
        let start = source_hash_v4(t.src) as usize % rule.addrs.len().max(1);
        let addrs = &rule.addrs;
        let reply = ReplyFrom { port: route.port, addr: t.dst, rport: t.dport };
        let take = |lb: &mut LbCore| lb.take_port_from(addrs, start, t.proto, reply, now_ms);
        if let Err(reason) = self.insert_with_local_port(&mut conn, None, now_ms, timeout, take) {
            self.drop(frame, reason);
            return None;
        }
        self.counters.event(Event::ConnsCreated).inc();
        self.forward(snap, now_ms, frame, Some(&l4), &conn, Dir::Original, pool, tx);
        None
    }

    /// Where the replies of a new FullNAT connection to `backend:bport` will come from. The
    /// port only matters where a NIC's hash picks local ports: only then is the route looked up.
    pub(super) fn reply_from(&self, snap: &Snapshot, backend: Ipv4Addr, bport: u16) -> ReplyFrom {
        let port = if self.lb.ownership.any_toeplitz() {
            snap.routes.lookup(IpAddr::V4(backend)).map_or(u16::MAX, |r| r.port)
        } else {
            u16::MAX
        };
        ReplyFrom { port, addr: backend, rport: bport }
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
        self.lb.schedule(svc, source_hash_v4(client))
    }

    /// A packet of a tracked connection.
    #[allow(clippy::too_many_arguments)]
    fn conn_packet(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed4,
        id: ConnId,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let tcp_flags = l4.tcp_flags;
        let mut conn = self.lb.conns.get(id);
        let slot = snap.services.backend_slot(conn.backend_slot);
        if ends_with_its_backend(conn.flags, conn.backend_gen, conn.proto, conn.state, &slot) {
            return self.reset_conn(snap, now_ms, frame, id, pool, tx);
        }
        let reparsed;
        let mut l4 = l4;
        if conn.flags.contains(ConnFlags::PROXIED) {
            match self.seq_adjusted_packet(snap, now_ms, frame, l4, id, &mut conn, dir, pool, tx) {
                Some((shifted, parsed)) => {
                    frame = shifted;
                    reparsed = parsed;
                    l4 = &reparsed;
                }
                None => return,
            }
        }
        // DR/TUN connections are keyed by the client's side only: `dir` is Original.
        let one_way = conn.flags.is_one_way();
        if conn.proto == IpProtocol::TCP {
            let state = if one_way {
                next_state_client_only(conn.state, tcp_flags)
            } else {
                next_state(conn.state, dir, tcp_flags)
            };
            if state != conn.state {
                if dir == Dir::Reply && tcp_flags.contains(TcpFlags::RST) {
                    self.reply_reset(&conn);
                }
                let (was, now) = (is_active(conn.proto, conn.state), is_active(conn.proto, state));
                if was != now {
                    self.lb.conn_activity(conn.backend_slot, conn.backend_gen, now);
                }
                conn.state = state;
                self.lb.conns.set_state(id, state);
            } else if handshake_incomplete(state) {
                // Still half-open: it keeps the deadline its first SYN set, so retransmitted
                // SYN-ACKs (a backend answering a spoofed SYN retransmits for a minute) or
                // SYNs cannot keep it alive past `tcp_syn_recv`.
                return self.half_open_packet(snap, now_ms, frame, l4, &mut conn, id, dir, pool, tx);
            }
        }
        if dir == Dir::Reply && !conn.flags.contains(ConnFlags::REPLIED) {
            conn.flags |= ConnFlags::REPLIED;
            self.lb.conns.set_flags(id, conn.flags);
            // The backend's first packet: its SYN-ACK ends the handshake we time.
            if tcp_flags.contains(TcpFlags::SYN | TcpFlags::ACK) && !conn.flags.contains(ConnFlags::SNAT) {
                self.lb.handshake_done(id, conn.backend_slot, conn.backend_gen);
            }
        }
        let timeout = snap.services.timeouts.for_conn(&conn);
        self.lb.conns.touch(id, now_ms, timeout);
        self.forward(snap, now_ms, frame, Some(l4), &conn, dir, pool, tx);
    }

    /// `conn_packet` for a packet that leaves its connection half-open: forwarded, the
    /// deadline left alone.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn half_open_packet(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        l4: &Parsed4,
        conn: &mut Conn,
        id: ConnId,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if dir == Dir::Reply && !conn.flags.contains(ConnFlags::REPLIED) {
            conn.flags |= ConnFlags::REPLIED;
            self.lb.conns.set_flags(id, conn.flags);
            // The backend's first packet: its SYN-ACK ends the handshake we time.
            if l4.tcp_flags.contains(TcpFlags::SYN | TcpFlags::ACK) && !conn.flags.contains(ConnFlags::SNAT) {
                self.lb.handshake_done(id, conn.backend_slot, conn.backend_gen);
            }
        }
        self.forward(snap, now_ms, frame, Some(l4), conn, dir, pool, tx);
    }

    /// Rewrites a connection's packet for its direction and sends it on. `l4`: the packet as
    /// `parse_v4` saw it, when it is a TCP/UDP packet already parsed (not an ICMP error).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn forward(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: Option<&Parsed4>,
        conn: &Conn,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        if conn.flags.contains(ConnFlags::DR) {
            return self.forward_dr(snap, now_ms, frame, conn, pool, tx);
        }
        if conn.flags.contains(ConnFlags::TUN) {
            let to = BackendRef { addr: conn.backend, slot: conn.backend_slot, gen: conn.backend_gen };
            return self.forward_tun(snap, now_ms, frame, to, &conn.original_key(), pool, tx);
        }
        let rewrite = match dir {
            Dir::Original => Rewrite4 { src: conn.laddr, dst: conn.backend, sport: conn.lport, dport: conn.bport },
            Dir::Reply => Rewrite4 { src: conn.vip, dst: conn.client, sport: conn.vport, dport: conn.cport },
        };
        // To a backend: where it goes is in the snapshot.
        let hop = match dir {
            Dir::Original => snap.backend_hop(conn.backend_slot, rewrite.dst),
            Dir::Reply => None,
        };
        let dst = IpAddr::V4(rewrite.dst);
        // Else (replies): a gateway route's next hop has its MAC kept too.
        let (port, next_hop, our_mac, mtu, cache) = match hop {
            Some(hop) => {
                (hop.port, IpAddr::V4(hop.next_hop), hop.our_mac, hop.mtu, Some(usize::from(conn.backend_slot)))
            }
            None => match self.routed(snap, dst) {
                Ok(r) => (r.port, r.next_hop, r.our_mac, r.mtu, r.cache),
                Err(reason) => return self.drop(frame, reason),
            },
        };
        let len = frame.data().len();
        if len > ETH_LEN + usize::from(mtu) {
            // Checked before the rewrite, which keeps the length: the sender must recognise
            // the packet the error quotes as its own.
            return self.too_big(snap, now_ms, frame, mtu, DropReason::TooBig, true, pool, tx);
        }
        let packet = &mut frame.data_mut()[ETH_LEN..];
        let rewritten = match l4 {
            Some(l4) => xlate::rewrite_parsed_v4(packet, l4, &rewrite),
            None => xlate::rewrite_v4(packet, &rewrite),
        };
        match rewritten {
            Ok(()) => {}
            Err(XlateError::TtlExpired) => return self.drop(frame, DropReason::TtlExpired),
            Err(_) => return self.drop(frame, DropReason::MalformedL4),
        }
        let inbound = dir == Dir::Original;
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, inbound, len);
        self.counters.event(nat_event(conn.flags.contains(ConnFlags::SNAT), inbound)).inc();
        match cache {
            Some(cache) => self.send_cached(snap, now_ms, frame, port, our_mac, next_hop, cache, pool, tx),
            None => self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx),
        }
    }

    /// DR: the frame goes unchanged above L2 to the backend's MAC, on its connected network.
    fn forward_dr(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        conn: &Conn,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Some(hop) = snap.backend_hop(conn.backend_slot, conn.backend) else {
            return self.forward_dr_routed(snap, now_ms, frame, conn, pool, tx);
        };
        if !hop.on_link {
            return self.drop(frame, DropReason::DrBackendNotConnected);
        }
        if frame.data().len() > ETH_LEN + usize::from(hop.mtu) {
            return self.too_big(snap, now_ms, frame, hop.mtu, DropReason::TooBig, true, pool, tx);
        }
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, true, frame.data().len());
        self.counters.event(Event::LbInPackets).inc();
        self.send_to_backend(snap, now_ms, frame, hop, conn.backend_slot, pool, tx);
    }

    /// `forward_dr` for a backend the snapshot has no hop for (removed, draining): by route.
    #[inline(never)]
    fn forward_dr_routed(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        frame: F,
        conn: &Conn,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let backend = IpAddr::V4(conn.backend);
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
            return self.too_big(snap, now_ms, frame, egress.mtu, DropReason::TooBig, true, pool, tx);
        }
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, true, frame.data().len());
        self.counters.event(Event::LbInPackets).inc();
        self.send_from(snap, now_ms, frame, port, egress.mac, backend, pool, tx);
    }

    /// TUN: the client's IP packet, unchanged, inside an outer IPv4 header (and UDP for GUE)
    /// from our address on the egress port to the backend. A packet that would no longer fit
    /// the egress MTU gets the service's `too_big` treatment. `flow`: the connection's
    /// original key, which GUE's source port is a hash of.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_tun(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        to: BackendRef,
        flow: &ConnKey,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        // A slot reused since the connection began no longer knows its tunnel: IPIP, the
        // default every decapsulator handles.
        let slot = snap.services.backend_slot(to.slot);
        let tunnel = if slot.gen == to.gen { slot.tunnel } else { Tunnel::default() };
        let hop = snap.backend_hop(to.slot, to.addr);
        let (port, next_hop, our_mac, mtu, src) = match hop {
            Some(hop) => (hop.port, IpAddr::V4(hop.next_hop), hop.our_mac, usize::from(hop.mtu), hop.tunnel_src),
            None => {
                let backend = IpAddr::V4(to.addr);
                let Some(route) = snap.routes.lookup(backend) else {
                    return self.drop(frame, DropReason::NoRoute);
                };
                let (port, next_hop) = (route.port, route.next_hop(backend));
                let Some(egress) = snap.port(port) else {
                    return self.drop(frame, DropReason::UnknownPort);
                };
                let src = match snap.source_for(port, next_hop) {
                    Some(IpAddr::V4(src)) => Some(src),
                    _ => None,
                };
                (port, next_hop, egress.mac, usize::from(egress.mtu), src)
            }
        };
        let Some(src) = src else {
            return self.drop(frame, DropReason::NoSourceAddress);
        };
        // tuple_v4 (or the ICMP quote check) validated the IPv4 header and its total length.
        let ip = &frame.data()[ETH_LEN..];
        let inner_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let overhead = tunnel.overhead();
        if inner_len + overhead > mtu {
            let fits = (mtu - overhead.min(mtu)) as u16;
            let tell_client = tunnel.too_big == TooBig::Icmp;
            return self.too_big(snap, now_ms, frame, fits, DropReason::TunnelTooBig, tell_client, pool, tx);
        }
        // Ethernet padding must not end up inside the tunnel.
        if !frame.set_len(ETH_LEN + inner_len) || !frame.prepend(overhead) {
            return self.drop(frame, DropReason::NoHeadroom);
        }
        // Only GUE uses the per-flow source port: IPIP skips the hash.
        let gue_port = match tunnel.encap {
            Encap::Gue { .. } => xlate::gue_source_port(flow),
            Encap::Ipip => 0,
        };
        let data = frame.data_mut();
        EthernetFrame::new_unchecked(&mut *data).set_ethertype(EtherType::IPV4);
        if xlate::encap_v4(&mut data[ETH_LEN..], src, to.addr, tunnel.encap, gue_port).is_err() {
            return self.drop(frame, DropReason::MalformedL4);
        }
        self.lb.count_packet(to.slot, to.gen, true, frame.data().len());
        self.counters.event(Event::LbInPackets).inc();
        // Fits: checked above, with the encapsulation.
        match hop {
            Some(hop) => self.send_to_backend(snap, now_ms, frame, hop, to.slot, pool, tx),
            None => self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx),
        }
    }

    /// A packet that does not fit its egress MTU, `fits` being the largest IP packet that
    /// would: ferrovs does not fragment, so it is dropped and counted as `reason`. With
    /// `tell_sender` and DF set, the sender gets an ICMP fragmentation-needed with `fits`, as
    /// far as this core's rate limit allows. The error quotes the packet as its sender sent it
    /// (the caller has not rewritten it) and comes from the address it was sent to (the VIP,
    /// for a client), so the sender's stack matches it to its socket.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn too_big(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        fits: u16,
        reason: DropReason,
        tell_sender: bool,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        self.counters.drop_reason(reason).inc();
        let Ok(ip) = crate::wire::Ipv4Packet::new_checked(&frame.data()[ETH_LEN..]) else { return };
        if !tell_sender || !ip.dont_frag() {
            return;
        }
        let (sender, sent_to) = (ip.src_addr(), ip.dst_addr());
        if !self.too_big_errors.take(now_ms) {
            self.counters.event(Event::IcmpFragNeededRateLimited).inc();
            return;
        }
        let ip_len = frame.data().len() - ETH_LEN;
        if !frame.set_len(ETH_LEN + ip_len.max(ICMP_ERROR_MAX_LEN)) {
            return;
        }
        // Refused for a fragment, an ICMP error, or a sender that is no single host.
        let Ok(len) = xlate::icmp_frag_needed_v4(&mut frame.data_mut()[ETH_LEN..], sent_to, fits) else { return };
        frame.set_len(ETH_LEN + len);
        self.counters.event(Event::IcmpFragNeededSent).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V4(sender), pool, tx);
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

    /// A client's SYN to a service whose backends are all down, with `all_down: reset`: the
    /// client gets a RST from the VIP at once instead of retrying into silence. Counted as
    /// `drop_no_backend` (nothing was forwarded) and `tcp_resets_sent`.
    #[cold]
    fn refuse_with_reset(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let Ok(rst_len) = xlate::tcp_reset_v4(&mut frame.data_mut()[ETH_LEN..]) else {
            return self.drop(frame, DropReason::NoBackend);
        };
        if !frame.set_len(ETH_LEN + rst_len) {
            return self.drop(frame, DropReason::NoBackend);
        }
        let dst = crate::wire::Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]).dst_addr();
        self.counters.drop_reason(DropReason::NoBackend).inc();
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
        let key =
            ConnKey { src: quoted.dst, dst: quoted.src, sport: quoted.dport, dport: quoted.sport, proto: quoted.proto };
        let Some((id, dir)) = self.lb.conns.lookup(&key) else {
            // The error follows its connection to the core that owns it, found the way a
            // packet of the connection finds it (a frame handed in finds itself the owner).
            if let Some(owner) = self.other_owner(snap, &key, frame.rx_port()) {
                self.hand_off(owner, frame, tx);
                return None;
            }
            if snap.services.v6.is_nat64_laddr(key.dst) {
                return self.nat64_icmp_error(snap, now_ms, frame, &key, pool, tx);
            }
            return Some(frame);
        };
        let conn = self.lb.conns.get(id);
        if dir == Dir::Reply && is_unreachable(&frame) {
            self.reply_reset(&conn);
        }
        if conn.flags.is_one_way() {
            // From the client's side about a reply the backend sent it directly: to the
            // backend the way the connection's packets go, unchanged inside.
            self.counters.event(Event::IcmpErrorsTranslated).inc();
            self.forward(snap, now_ms, frame, None, &conn, dir, pool, tx);
            return None;
        }
        let outer_src = crate::wire::Ipv4Packet::new_unchecked(&frame.data()[ETH_LEN..]).src_addr();
        let (outer_src, outer_dst, quote) = match dir {
            // From the backend's side, about a packet we sent it: to the client, as from the
            // VIP. Under SNAT the sender is on the far side anyway and keeps its own address.
            Dir::Reply => (
                if conn.flags.contains(ConnFlags::SNAT) { outer_src } else { conn.vip },
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

    /// The backend's side refused a connection (a RST, or an ICMP unreachable about it): when
    /// the handshake had not completed, a failed new connection for passive health detection.
    #[cold]
    fn reply_reset(&mut self, conn: &Conn) {
        if conn.proto == IpProtocol::TCP && handshake_incomplete(conn.state) && !conn.flags.contains(ConnFlags::SNAT) {
            self.lb.syn_failed(conn.backend_slot, conn.backend_gen);
        }
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
        if self.guard.auto.engaged() {
            let l = self.lb.limits();
            let half_open = u32::try_from(self.lb.conns.half_open()).unwrap_or(u32::MAX);
            let change = self.guard.auto.tick(now_ms, half_open, (l.auto_half_open, l.auto_syns_per_s));
            self.auto_changed(change);
        }
    }
}

fn is_to_vip<F: Frame>(snap: &Snapshot, frame: &F) -> bool {
    let data = &frame.data()[ETH_LEN..];
    data.len() >= 20 && snap.services.is_vip(Ipv4Addr::new(data[16], data[17], data[18], data[19]))
}

/// The counter of a NAT, FullNAT or SNAT connection's packet forwarded `inbound` (client to
/// backend, or inside to outside for SNAT) or back.
#[inline(always)]
pub(super) fn nat_event(snat: bool, inbound: bool) -> Event {
    match (snat, inbound) {
        (false, true) => Event::LbInPackets,
        (false, false) => Event::LbOutPackets,
        (true, true) => Event::SnatOutPackets,
        (true, false) => Event::SnatInPackets,
    }
}

/// Whether a connection (of either family: its flags, backend generation, protocol and TCP
/// state) ends now because its backend left its slot (`slot`: now another generation, or not
/// live): when the backend was removed with `reset`, or at all (drain too) before the
/// handshake completed, as a half-open connection to a backend that is gone has nothing to
/// keep. Otherwise it drains. SNAT connections have no backend slot.
#[inline(always)]
pub(super) fn ends_with_its_backend(
    flags: ConnFlags,
    backend_gen: u32,
    proto: IpProtocol,
    state: TcpState,
    slot: &crate::service::BackendSlot,
) -> bool {
    // The common case (its backend is where it was) stays inline, the rest out of line.
    (slot.gen != backend_gen || !slot.live) && ends_without_its_backend(flags, backend_gen, proto, state, slot)
}

#[cold]
fn ends_without_its_backend(
    flags: ConnFlags,
    backend_gen: u32,
    proto: IpProtocol,
    state: TcpState,
    slot: &crate::service::BackendSlot,
) -> bool {
    !flags.contains(ConnFlags::SNAT)
        && ((slot.gen == backend_gen && slot.reset) || (proto == IpProtocol::TCP && handshake_incomplete(state)))
}

/// Whether `conn`'s backend can take its traffic: still in the snapshot (same slot and
/// generation, not removed) and not inhibited in its service. SNAT's remote server is no
/// backend of ours: always usable.
fn backend_usable(snap: &Snapshot, conn: &Conn) -> bool {
    if conn.flags.contains(ConnFlags::SNAT) {
        return true;
    }
    let slot = snap.services.backend_slot(conn.backend_slot);
    if slot.gen != conn.backend_gen || !slot.live {
        return false;
    }
    snap.services.lookup(conn.vip, conn.vport, conn.proto).is_some_and(|svc| {
        svc.backends
            .iter()
            .any(|b| b.slot == conn.backend_slot && b.gen == conn.backend_gen && b.state != BackendState::Inhibited)
    })
}

/// An ICMP destination unreachable (type 3, any code but fragmentation-needed, which is
/// path-MTU discovery, not a refusal).
fn is_unreachable<F: Frame>(frame: &F) -> bool {
    let ip = &frame.data()[ETH_LEN..];
    let at = usize::from(ip.first().map_or(0, |b| b & 0x0f)) * 4;
    matches!((ip.get(at), ip.get(at + 1)), (Some(3), Some(&code)) if code != 4)
}

/// The sequence number of a parsed TCP packet (`parse_v4` checked the header is there).
#[inline(always)]
fn tcp_seq<F: Frame>(frame: &F, l4: &Parsed4) -> u32 {
    let at = ETH_LEN + l4.header_len() + 4;
    frame.data().get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The acknowledgement number of a parsed TCP packet.
#[inline]
fn tcp_window<F: Frame>(frame: &F, l4: &Parsed4) -> u16 {
    let at = ETH_LEN + l4.header_len() + 14;
    frame.data().get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

fn tcp_ack<F: Frame>(frame: &F, l4: &Parsed4) -> u32 {
    let at = ETH_LEN + l4.header_len() + 8;
    frame.data().get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The MSS a SYN-proxied connection's client is offered when a PROXY header will go in its
/// first segment: lowered by the header's length, so that segment still fits with it. Out of
/// line: `syn_proxy_input` answers every SYN of a flood.
#[cold]
#[inline(never)]
fn mss_with_header(kind: ClientAddr, syn: &Parsed4, mss: u16) -> u16 {
    let t = syn.tuple;
    let ep = Endpoints { client: IpAddr::V4(t.src), vip: IpAddr::V4(t.dst), cport: t.sport, vport: t.dport };
    clientaddr::mss_for_header(mss, Shift::new(kind, 0, &ep, true).stream_len())
}

/// A SYN without ACK, RST or FIN: the only packet that opens a TCP connection.
#[inline]
fn is_new_syn(flags: TcpFlags) -> bool {
    flags.contains(TcpFlags::SYN) && !flags.intersects(TcpFlags::ACK | TcpFlags::RST | TcpFlags::FIN)
}
