//! The established-connection fast path. Most packets belong to a connection they change
//! nothing in: an ESTABLISHED TCP segment without SYN, FIN or RST, or a UDP datagram, of a
//! connection that is not SNAT, has no sequence adjustment (PROXIED) and whose backend is
//! still in its slot, and for a reply, not the first one. For such a packet `conn_packet`
//! only moves the deadline on and calls `forward`; `steady_frame` does the same without its
//! general steps, and for NAT, FullNAT and DR without `forward`'s when the next hop is one
//! this core knows (the snapshot's hop and the MAC kept for it). Every other packet goes back
//! to the general path (`lb_input_found`) untouched.
//!
//! IPv6 NAT, FullNAT and NAT64 connections have the same (`steady_frame6`, before
//! `conn_packet6`).

use std::net::{IpAddr, Ipv6Addr};

use super::lb::BackendRef;
use super::{set_macs, CoreCtx, Frame, FramePool, TxSink, ETH_LEN};
use crate::conn::{is_steady, Conn6, Conn6Id, ConnFlags, ConnId, Dir, Steady};
use crate::counters::Event;
use crate::net::MacAddr;
use crate::snapshot::Snapshot;
use crate::wire::{IpProtocol, TcpFlags};
use crate::xlate::v6::{self as xlate6, Parsed6, Rewrite6};
use crate::xlate::{self, Parsed4};

/// Byte 8 of the IPv4 header.
const TTL_AT: usize = 8;
/// Byte 7 of the IPv6 header.
const HOP_LIMIT_AT: usize = 7;

/// Where a steady packet leaves, all known to this core: the port, the next hop's MAC, ours
/// and the port's MTU.
struct Egress {
    port: u16,
    mac: MacAddr,
    our_mac: MacAddr,
    mtu: u16,
}

impl<F: Frame> CoreCtx<F> {
    /// Handles `frame`, a packet of connection `id` going `dir` that `parse_v4` accepted as
    /// `l4`, when it is steady (see the module documentation) and returns None; otherwise
    /// returns it untouched, nothing changed.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn steady_frame(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed4,
        id: ConnId,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        if l4.tcp_flags.intersects(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) {
            return Some(frame);
        }
        let Some(steady) = self.lb.conns.steady(id, dir) else { return Some(frame) };
        // A backend removed or out of its slot ends or drains its connections: not steady.
        if !snap.services.backend_live(steady.backend_slot, steady.backend_gen) {
            return Some(frame);
        }
        let timeouts = &snap.services.timeouts;
        let timeout = if steady.udp { timeouts.udp_ms } else { timeouts.established_ms };
        self.lb.conns.touch(id, now_ms, timeout);
        let egress = self.steady_egress(snap, now_ms, dir, &steady);
        let data = frame.data_mut();
        let len = data.len();
        match egress {
            Some(e) if len <= ETH_LEN + usize::from(e.mtu) => {
                if steady.flags.contains(ConnFlags::DR) {
                    // DR: the frame goes unchanged above L2.
                } else if data[ETH_LEN + TTL_AT] > 1 {
                    let rewritten = xlate::rewrite_parsed_v4(&mut data[ETH_LEN..], l4, &steady.rewrite);
                    debug_assert!(rewritten.is_ok(), "the TTL was checked");
                } else {
                    return self.steady_general(snap, now_ms, frame, l4, id, dir, pool, tx);
                }
                set_macs(data, e.mac, e.our_mac);
                let inbound = dir == Dir::Original;
                self.lb.count_packet(steady.backend_slot, steady.backend_gen, inbound, len);
                self.counters.event(if inbound { Event::LbInPackets } else { Event::LbOutPackets }).inc();
                tx.send(e.port, frame);
                None
            }
            _ if steady.flags.contains(ConnFlags::TUN) => {
                // The packet matched the connection's original key: its tuple is that key.
                let to = BackendRef { addr: steady.rewrite.dst, slot: steady.backend_slot, gen: steady.backend_gen };
                self.forward_tun(snap, now_ms, frame, to, &l4.tuple, pool, tx);
                None
            }
            _ => self.steady_general(snap, now_ms, frame, l4, id, dir, pool, tx),
        }
    }

    /// A steady packet whose deadline moved on, that leaves the general way: one this core
    /// does not know the next hop's MAC of, one too big, one whose TTL runs out.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn steady_general(
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
        let conn = self.lb.conns.get(id);
        self.forward(snap, now_ms, frame, Some(l4), &conn, dir, pool, tx);
        None
    }

    /// Where a steady NAT, FullNAT or DR packet goes, when this core knows it all: to a
    /// backend, its snapshot hop (on the backend's own network, for DR) and the next hop's MAC
    /// kept for its slot; to a client, its route when that is a gateway route whose next hop's
    /// MAC is kept. None: the general way (`forward`), which resolves, holds or drops.
    #[inline(always)]
    fn steady_egress(&self, snap: &Snapshot, now_ms: u64, dir: Dir, steady: &Steady) -> Option<Egress> {
        if steady.flags.contains(ConnFlags::TUN) {
            return None;
        }
        let (port, next_hop, our_mac, mtu, cache) = match dir {
            Dir::Original => {
                let hop = snap.backend_hop(steady.backend_slot, steady.rewrite.dst)?;
                if steady.flags.contains(ConnFlags::DR) && !hop.on_link {
                    return None;
                }
                (hop.port, hop.next_hop, hop.our_mac, hop.mtu, usize::from(steady.backend_slot))
            }
            Dir::Reply => {
                let r = self.routed(snap, IpAddr::V4(steady.rewrite.dst)).ok()?;
                let (IpAddr::V4(via), Some(cache)) = (r.next_hop, r.cache) else { return None };
                (r.port, via, r.our_mac, r.mtu, cache)
            }
        };
        let mac = self.kept_mac(now_ms, cache, port, IpAddr::V4(next_hop))?;
        Some(Egress { port, mac, our_mac, mtu })
    }
}

impl<F: Frame> CoreCtx<F> {
    /// `steady_frame` for IPv6 NAT, FullNAT and NAT64 connections (not SNAT, DR, TUN or
    /// PROXIED ones): forwarded here, or returned untouched for `conn_packet6`. A next hop
    /// whose MAC this core has not kept is resolved as `forward6` would; NAT64's packets go
    /// on to `forward_nat64`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn steady_frame6(
        &mut self,
        snap: &Snapshot,
        now_ms: u64,
        mut frame: F,
        l4: &Parsed6,
        id: Conn6Id,
        dir: Dir,
        pool: &mut impl FramePool<F>,
        tx: &mut impl TxSink<F>,
    ) -> Option<F> {
        if l4.tcp_flags.intersects(TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST) {
            return Some(frame);
        }
        let conn = self.lb.conns6.conn(id);
        let udp = conn.proto == IpProtocol::UDP;
        if conn.flags.is_one_way() || !is_steady(conn.flags, udp, conn.state, dir) {
            return Some(frame);
        }
        if !snap.services.backend_live(conn.backend_slot, conn.backend_gen) {
            return Some(frame);
        }
        if let Some((laddr, backend)) = conn.nat64() {
            // Translated to IPv4 by `forward_nat64` (its replies come by `nat64_reply`).
            let conn = *conn;
            self.lb.conns6.touch(id, now_ms, conn.timeout(&snap.services.timeouts));
            self.forward_nat64(snap, now_ms, frame, l4, &conn, laddr, backend, pool, tx);
            return None;
        }
        let rewrite = match dir {
            Dir::Original => Rewrite6 { src: conn.laddr, dst: conn.backend, sport: conn.lport, dport: conn.bport },
            Dir::Reply => Rewrite6 { src: conn.vip, dst: conn.client, sport: conn.vport, dport: conn.cport },
        };
        let Some(hop) = self.steady_hop6(snap, dir, conn, rewrite.dst) else { return Some(frame) };
        let (slot, gen, timeout) = (conn.backend_slot, conn.backend_gen, conn.timeout(&snap.services.timeouts));
        let data = frame.data_mut();
        let len = data.len();
        if len > ETH_LEN + usize::from(hop.mtu) || data[ETH_LEN + HOP_LIMIT_AT] <= 1 {
            return Some(frame);
        }
        self.lb.conns6.touch(id, now_ms, timeout);
        let rewritten = xlate6::rewrite_parsed_v6(&mut data[ETH_LEN..], l4, &rewrite);
        debug_assert!(rewritten.is_ok(), "the hop limit was checked");
        let inbound = dir == Dir::Original;
        self.lb.count_packet(slot, gen, inbound, len);
        self.counters.event(if inbound { Event::LbInPackets } else { Event::LbOutPackets }).inc();
        let next_hop = IpAddr::V6(hop.next_hop);
        match hop.cache {
            Some(cache) => self.send_cached(snap, now_ms, frame, hop.port, hop.our_mac, next_hop, cache, pool, tx),
            None => self.send_from(snap, now_ms, frame, hop.port, hop.our_mac, next_hop, pool, tx),
        }
        None
    }

    /// Where an IPv6 packet to `dst` leaves: to a backend, its snapshot hop (its MAC kept per
    /// backend slot); else its route, a gateway's MAC kept per route. None without a route
    /// over a known port: the general way drops it.
    #[inline(always)]
    fn steady_hop6(&self, snap: &Snapshot, dir: Dir, conn: &Conn6, dst: Ipv6Addr) -> Option<Hop6> {
        if dir == Dir::Original {
            if let Some(h) = snap.backend_hop6(conn.backend_slot, dst) {
                let cache = Some(usize::from(conn.backend_slot));
                return Some(Hop6 { port: h.port, next_hop: h.next_hop, our_mac: h.our_mac, mtu: h.mtu, cache });
            }
        }
        let r = self.routed(snap, IpAddr::V6(dst)).ok()?;
        let IpAddr::V6(next_hop) = r.next_hop else { return None };
        Some(Hop6 { port: r.port, next_hop, our_mac: r.our_mac, mtu: r.mtu, cache: r.cache })
    }
}

/// Where a steady IPv6 packet leaves, and where its next hop's MAC is kept, if anywhere.
struct Hop6 {
    port: u16,
    next_hop: Ipv6Addr,
    our_mac: MacAddr,
    mtu: u16,
    cache: Option<usize>,
}
