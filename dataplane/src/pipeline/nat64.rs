//! NAT64 in the pipeline: a FullNAT service with an IPv6 VIP and IPv4 backends and local
//! addresses. Its connections are IPv6 ones (see [`Conn6`] for why they live in the IPv6
//! table): the client's packets come through `l4_input6` like any IPv6 service's and leave
//! here as IPv4; the backend's replies are IPv4 packets to a NAT64 local address that the
//! IPv4 table does not know, looked up here in the IPv6 table and sent to the client as
//! IPv6; the backend side's ICMPv4 errors about them become ICMPv6 errors to the client.
//!
//! The frame shrinks by 20 bytes one way (the Ethernet header moves up over the IPv6 header's
//! first 20 bytes, then the front is trimmed) and grows by 20 the other (prepended into the
//! headroom). A TCP SYN's MSS is lowered so that a full segment, once translated, still fits
//! the port it arrived on: a client's SYN to what an IPv6 packet of the backend's segments
//! needs there (MTU - 60), a backend's SYN-ACK to what its IPv4 packets need (MTU - 40).
//!
//! The client's address for the backend (`client_address`: PROXY header or TOA) is put into
//! the client's IPv6 packet before it is translated (`conn_packet6`, as for IPv6 FullNAT), and
//! the backend's acknowledgements are shifted back on the reply once it is IPv6 again: the
//! transport header and payload sit where they were, only the IP header changed.

use std::net::{IpAddr, Ipv4Addr};

use super::lb::ends_with_its_backend;
use super::{CoreCtx, Frame, FramePool, TxSink, ETH_LEN};
use crate::conn::{handshake_incomplete, next_state, Conn6, ConnFlags, ConnKey, ConnKey6, Dir};
use crate::counters::{DropReason, Event};
use crate::snapshot::Snapshot;
use crate::wire::{EtherType, EthernetFrame, IpProtocol, TcpFlags};
use crate::xlate::nat64::{self, NAT64_ICMP_GROWTH, NAT64_SHRINK};
use crate::xlate::v6::{self as xlate6, Parsed6, Rewrite6, IPV6_MIN_MTU};
use crate::xlate::{Parsed4, Rewrite4, XlateError};

/// IPv6 + TCP headers: what a full segment adds over its MSS as IPv6.
const V6_TCP_OVERHEAD: u16 = 60;
/// IPv4 + TCP headers.
const V4_TCP_OVERHEAD: u16 = 40;
/// The MTU assumed for a port the snapshot does not know (a frame handed in late).
const DEFAULT_MTU: u16 = 1500;

fn mapped(t: &ConnKey) -> ConnKey6 {
    ConnKey6 {
        src: t.src.to_ipv6_mapped(),
        dst: t.dst.to_ipv6_mapped(),
        sport: t.sport,
        dport: t.dport,
        proto: t.proto,
    }
}

impl<F: Frame> CoreCtx<F> {
    fn rx_mtu(&self, snap: &Snapshot, frame: &F) -> u16 {
        snap.port(frame.rx_port()).map_or(DEFAULT_MTU, |p| p.mtu)
    }

    /// A client's packet of a NAT64 connection (state already tracked by the caller): to the
    /// backend as IPv4, from our local address.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_nat64(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed6,
        conn: &Conn6,
        laddr: Ipv4Addr,
        backend: Ipv4Addr,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) {
        let dst = IpAddr::V4(backend);
        let Some(route) = snap.routes.lookup(dst) else {
            return self.drop(frame, DropReason::NoRoute);
        };
        let (port, next_hop) = (route.port, route.next_hop(dst));
        let Some(egress) = snap.port(port) else {
            return self.drop(frame, DropReason::UnknownPort);
        };
        let (mtu, our_mac) = (egress.mtu, egress.mac);
        if l4.end - NAT64_SHRINK > usize::from(mtu) {
            // What fits as IPv6 is 20 bytes more; a client never goes below the IPv6 minimum.
            let fits = (usize::from(mtu) + NAT64_SHRINK).max(IPV6_MIN_MTU) as u16;
            return self.too_big6(snap, now_ms, frame, fits, DropReason::TooBig, true, pool, tx);
        }
        let mss_max = self.rx_mtu(snap, &frame).saturating_sub(V6_TCP_OVERHEAD);
        let rewrite = Rewrite4 { src: laddr, dst: backend, sport: conn.lport, dport: conn.bport };
        let len = frame.data().len();
        let data = frame.data_mut();
        let ip_len = match nat64::v6_to_v4(&mut data[ETH_LEN..], l4, &rewrite, mss_max) {
            Ok(n) => n,
            Err(XlateError::TtlExpired) => return self.drop(frame, DropReason::TtlExpired),
            Err(_) => return self.drop(frame, DropReason::MalformedL4),
        };
        // The Ethernet header moves up to just before the IPv4 header; MACs are set on sending.
        data.copy_within(0..ETH_LEN, NAT64_SHRINK);
        EthernetFrame::new_unchecked(&mut data[NAT64_SHRINK..]).set_ethertype(EtherType::IPV4);
        if !frame.trim_front(NAT64_SHRINK) || !frame.set_len(ETH_LEN + ip_len) {
            return self.drop(frame, DropReason::MalformedL4);
        }
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, true, len);
        self.counters.event(Event::LbInPackets).inc();
        self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx);
    }

    /// An IPv4 TCP/UDP packet to a NAT64 local address that no IPv4 connection took: a NAT64
    /// connection's reply when the IPv6 table has it (tracked, then sent to the client as
    /// IPv6); otherwise returned for the local path.
    #[inline(never)]
    pub(super) fn nat64_reply(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed4,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Some((id, Dir::Reply)) = self.lb.conns6.lookup(&mapped(&l4.tuple)) else { return Some(frame) };
        let mut conn = self.lb.conns6.get(id);
        let slot = snap.services.backend_slot(conn.backend_slot);
        if ends_with_its_backend(conn.flags, conn.backend_gen, conn.proto, conn.state, &slot) {
            // Its backend is gone (with reset, or before the handshake completed): the entry
            // ends; the client learns it from its next packet, which gets the reset.
            self.end_conn6(id, now_ms);
            self.counters.event(Event::ConnsReset).inc();
            self.drop(frame, DropReason::BackendRemoved);
            return None;
        }
        if conn.proto == IpProtocol::TCP {
            if l4.tcp_flags.contains(TcpFlags::RST) && handshake_incomplete(conn.state) {
                self.lb.syn_failed(conn.backend_slot, conn.backend_gen);
            }
            let state = next_state(conn.state, Dir::Reply, l4.tcp_flags);
            self.set_state6(id, &mut conn, state);
        }
        if !conn.flags.contains(ConnFlags::REPLIED) {
            conn.flags |= ConnFlags::REPLIED;
            self.lb.conns6.set_flags(id, conn.flags);
        }
        let timeout = conn.timeout(&snap.services.timeouts);
        self.lb.conns6.touch(id, now_ms, timeout);

        let dst = IpAddr::V6(conn.client);
        let Some(route) = snap.routes.lookup(dst) else {
            self.drop(frame, DropReason::NoRoute);
            return None;
        };
        let (port, next_hop) = (route.port, route.next_hop(dst));
        let Some(egress) = snap.port(port) else {
            self.drop(frame, DropReason::UnknownPort);
            return None;
        };
        let (mtu, our_mac) = (egress.mtu, egress.mac);
        let ip_len = l4.total_len();
        if ip_len + NAT64_SHRINK > usize::from(mtu) {
            // The backend is told (an IPv4 fragmentation needed, when it set DF) what fits.
            let fits = mtu.saturating_sub(NAT64_SHRINK as u16);
            self.too_big(snap, now_ms, frame, fits, DropReason::TooBig, true, pool, tx);
            return None;
        }
        let mss_max = self.rx_mtu(snap, &frame).saturating_sub(V4_TCP_OVERHEAD);
        let len = frame.data().len();
        if !frame.prepend(NAT64_SHRINK) {
            self.drop(frame, DropReason::NoHeadroom);
            return None;
        }
        let rewrite = Rewrite6 { src: conn.vip, dst: conn.client, sport: conn.vport, dport: conn.cport };
        let data = frame.data_mut();
        let v6_len = match nat64::v4_to_v6(&mut data[ETH_LEN..], &rewrite, mss_max) {
            Ok(n) => n,
            Err(e) => {
                let reason = if e == XlateError::TtlExpired { DropReason::TtlExpired } else { DropReason::MalformedL4 };
                self.drop(frame, reason);
                return None;
            }
        };
        EthernetFrame::new_unchecked(&mut *data).set_ethertype(EtherType::IPV6);
        if !frame.set_len(ETH_LEN + v6_len) {
            self.drop(frame, DropReason::MalformedL4);
            return None;
        }
        if conn.flags.contains(ConnFlags::PROXIED) {
            // A PROXY header (or TOA) went to the backend: its acknowledgements (and SACK
            // blocks) are shifted back, on the IPv6 packet as for IPv6 FullNAT.
            let Ok(parsed) = xlate6::parse_v6(&frame.data()[ETH_LEN..]) else {
                self.drop(frame, DropReason::MalformedL4);
                return None;
            };
            frame = self.client_addr_v6(snap, frame, &parsed, id, &mut conn, Dir::Reply)?.0;
        }
        self.lb.count_packet(conn.backend_slot, conn.backend_gen, false, len);
        self.counters.event(Event::LbOutPackets).inc();
        self.send_from(snap, now_ms, frame, port, our_mac, next_hop, pool, tx);
        None
    }

    /// An ICMPv4 error to a NAT64 local address quoting `key` (reversed: the key of the
    /// quoted packet's reply) that no IPv4 connection took. When a NAT64 connection's, it
    /// goes to the client as the ICMPv6 error RFC 7915 makes of it, from the VIP; otherwise
    /// the frame is returned.
    #[cold]
    #[inline(never)]
    pub(super) fn nat64_icmp_error(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        key: &ConnKey,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        let Some((id, Dir::Reply)) = self.lb.conns6.lookup(&mapped(key)) else { return Some(frame) };
        let conn = self.lb.conns6.get(id);
        let ip = &frame.data()[ETH_LEN..];
        let unreachable = ip.len() > 21 && ip[20] == 3 && ip[21] != 4;
        if unreachable && conn.proto == IpProtocol::TCP && handshake_incomplete(conn.state) {
            self.lb.syn_failed(conn.backend_slot, conn.backend_gen);
        }
        let cap = snap
            .routes
            .lookup(IpAddr::V6(conn.client))
            .and_then(|r| snap.port(r.port))
            .map_or(IPV6_MIN_MTU as u16, |p| p.mtu);
        // The error is built aside (at most 1280 bytes), then copied over the frame, which
        // grows by at most 40 bytes (both IP headers); a long quote is cut.
        let mut out = [0u8; IPV6_MIN_MTU];
        let quoted = Rewrite6 { src: conn.client, dst: conn.vip, sport: conn.cport, dport: conn.vport };
        let len = match nat64::icmp4_error_to_v6(ip, &mut out, conn.vip, conn.client, &quoted, cap) {
            Ok(len) => len,
            Err(XlateError::TtlExpired) => {
                self.drop(frame, DropReason::TtlExpired);
                return None;
            }
            Err(XlateError::Unsupported) => {
                self.drop(frame, DropReason::IcmpNotEcho);
                return None;
            }
            Err(XlateError::Malformed) => {
                self.drop(frame, DropReason::MalformedIcmp);
                return None;
            }
        };
        if !frame.prepend(NAT64_ICMP_GROWTH) || !frame.set_len(ETH_LEN + len) {
            self.drop(frame, DropReason::NoHeadroom);
            return None;
        }
        let data = frame.data_mut();
        data[ETH_LEN..].copy_from_slice(&out[..len]);
        EthernetFrame::new_unchecked(&mut *data).set_ethertype(EtherType::IPV6);
        self.counters.event(Event::IcmpErrorsTranslated).inc();
        self.route_output(snap, now_ms, frame, IpAddr::V6(conn.client), pool, tx);
        None
    }
}
