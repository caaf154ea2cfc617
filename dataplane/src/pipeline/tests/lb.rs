//! Load balancing through the pipeline: frames in, frames out, headers and checksums
//! checked by full recomputation, connection table and counters checked.

use std::sync::Arc;

use super::*;
use crate::conn::{Dir, TcpState};
use crate::l3::{Route, RouteOrigin};
use crate::service::{Backend, BackendState, FwdMode, Laddr, Services, Tunnel};
use crate::snapshot::LocalAddr;

mod burst;
mod clientaddr;
mod cores;
mod defence;
mod health;
mod ipv6;
mod modes;
mod mtu;
mod nat64;
mod pickup;
mod steady;
mod synproxy;
mod trace;

impl Rig {
    /// A rig whose snapshot has `spec`'s service and whose neighbours are all known.
    fn lb(spec: &Spec, limits: LbLimits) -> Rig {
        let mut rig = Rig::new();
        rig.ctx.lb = LbCore::standalone(limits);
        rig.set_services(services(spec, &[]));
        for (port, ip, mac) in
            [(0, "192.0.2.2", CLIENT_MAC), (1, "198.51.100.11", B1_MAC), (1, "198.51.100.12", B2_MAC)]
        {
            let n = NeighLearned { port, ip: ip.parse().unwrap(), mac };
            rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
        }
        rig
    }

    fn set_services(&mut self, services: Arc<Services>) {
        self.snap = snapshot().with_services(services);
        self.ctx.snapshot_changed(&self.snap);
    }

    /// Gives dp0 and dp1 these MTUs, keeping the services.
    fn set_mtus(&mut self, mtus: [u16; 2]) {
        self.snap = snapshot_with_mtus(mtus).with_services(self.snap.services.clone());
        self.ctx.snapshot_changed(&self.snap);
    }
}

/// (src, sport, dst, dport, ttl) of a frame, after checking every checksum from scratch (a
/// UDP datagram must carry one: the translations never drop it).
fn parse(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u8) {
    let tuple = tuple_v4(frame);
    if frame[14 + 9] == IpProtocol::UDP.0 {
        assert_ne!(&frame[14 + 20 + 6..14 + 20 + 8], &[0, 0], "UDP checksum present");
    }
    tuple
}

fn nat_tcp() -> Spec {
    Spec {
        proto: IpProtocol::TCP,
        mode: FwdMode::Nat,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1), backend(2, 2)],
    }
}

#[test]
fn nat_tcp_connection_is_translated_both_ways() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(&f[0..6], &B1_MAC.0, "to the first backend's MAC");
    assert_eq!(&f[6..12], &OUR_MAC1.0);
    // NAT: the backend sees the client's own address.
    assert_eq!(parse(f), (ip4("192.0.2.2"), 40000, ip4("198.51.100.11"), 8080, 63));

    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
    assert_eq!(parse(&out[0].1), (ip4(VIP), 80, ip4("192.0.2.2"), 40000, 63));

    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b"GET / HTTP/1.0\r\n\r\n"));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.11"));
    let (id, dir) = rig
        .ctx
        .lb
        .conns
        .lookup(&crate::conn::ConnKey {
            src: ip4("192.0.2.2"),
            dst: ip4(VIP),
            sport: 40000,
            dport: 80,
            proto: IpProtocol::TCP,
        })
        .unwrap();
    assert_eq!(dir, Dir::Original);
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::Established);
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 1);
    let c = &rig.ctx.lb.counters.backends[1];
    assert_eq!((c.conns.get(), c.in_packets.get(), c.out_packets.get()), (1, 2, 1));
    assert_eq!(rig.event(Event::ConnsCreated), 1);

    // Round robin: the next connection goes to the second backend.
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, SYN, b""));
    assert_eq!(&out[0].1[0..6], &B2_MAC.0);
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
}

#[test]
fn fullnat_udp_uses_a_local_address_and_port() {
    let spec = Spec {
        proto: IpProtocol::UDP,
        mode: FwdMode::FullNat,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1)],
    };
    let limits = LbLimits { lport_min: 5000, lport_max: 5009, ..LbLimits::default() };
    let mut rig = Rig::lb(&spec, limits);
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 53000, VIP, 80, 17, 0, b"ping"));
    let (src, lport, dst, dport, _) = parse(&out[0].1);
    assert_eq!((src, dst, dport), (ip4("198.51.100.1"), ip4("198.51.100.11"), 8080));
    assert!((5000..=5009).contains(&lport));
    assert_eq!(&out[0].1[out[0].1.len() - 4..], b"ping");

    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "198.51.100.1", lport, 17, 0, b"pong"));
    assert_eq!(out[0].0, 0);
    let (s, sp, d, dp, _) = parse(&out[0].1);
    assert_eq!((s, sp, d, dp), (ip4(VIP), 80, ip4("192.0.2.2"), 53000));
    assert_eq!(rig.ctx.lb.counters.laddrs[0].udp_in_use.get(), 1);

    // Idle past the UDP timeout: expired, and the port goes back to the pool.
    rig.now += 5_000 + 2 * crate::conn::TICK_MS + 10;
    // Each call passes a bounded number of wheel buckets: a few calls catch up.
    for _ in 0..20 {
        rig.timers();
    }
    assert!(rig.ctx.lb.conns.is_empty());
    assert_eq!(rig.event(Event::ConnsExpired), 1);
    assert_eq!(rig.ctx.lb.counters.laddrs[0].udp_in_use.get(), 0);
}

#[test]
fn packets_that_open_nothing_are_dropped_by_reason() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 81, 6, SYN, b"")).is_empty());
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 17, 0, b"x")).is_empty());
    assert_eq!(rig.drops(DropReason::NoService), 2);
    // A backend's packet that belongs to no connection is not ours to forward.
    assert!(rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 1, 6, SYN_ACK, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::IpNotForUs), 1);
    // No schedulable backend.
    let mut spec = nat_tcp();
    for b in &mut spec.backends {
        b.state = BackendState::Draining;
    }
    rig.set_services(services(&spec, &[]));
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40002, VIP, 80, 6, SYN, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoBackend), 1);
    assert!(rig.ctx.lb.conns.is_empty());
}

#[test]
fn full_table_refuses_new_flows_and_keeps_old_ones() {
    let limits = LbLimits { conn_capacity: 16, ..LbLimits::default() };
    let mut rig = Rig::lb(&nat_tcp(), limits);
    let cap = rig.ctx.lb.conns.capacity();
    for port in 0..cap as u16 {
        assert_eq!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 1000 + port, VIP, 80, 6, SYN, b"")).len(), 1);
        // Established: nothing to evict.
        assert_eq!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 1000 + port, VIP, 80, 6, ACK, b"")).len(), 1);
    }
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 9999, VIP, 80, 6, SYN, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::ConnTableFull), 1);
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 1000, VIP, 80, 6, ACK, b"still here"));
    assert_eq!(out.len(), 1, "an existing flow is unaffected");
}

#[test]
fn removed_backend_with_reset_gets_rst_and_drain_keeps_forwarding() {
    let mut spec = nat_tcp();
    spec.reset = true;
    let mut rig = Rig::lb(&spec, LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b"")); // -> b1
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, SYN, b"")); // -> b2
                                                                                  // b1 removed with reset, b2 stays.
    let b1 = spec.backends.remove(0);
    rig.set_services(services(&spec, &[(b1.slot, b1.gen, true)]));
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b"data"));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0, "the RST goes back to the client");
    let f = &out[0].1;
    assert_eq!(f[14 + 20 + 13] & 0x04, 0x04, "RST flag");
    let (s, sp, d, dp, _) = parse(f);
    assert_eq!((s, sp, d, dp), (ip4(VIP), 80, ip4("192.0.2.2"), 40000));
    assert_eq!(rig.event(Event::ConnsReset), 1);
    assert_eq!(rig.ctx.lb.conns.len(), 1);
    // The surviving backend's connection is untouched.
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, ACK, b"data"));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
    // Drain: b2 removed without reset keeps its connection (established: a half-open one
    // would go, see half_open_connections_of_a_removed_backend_end_in_drain_mode_too).
    rig.rx(1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40001, 6, ACK, b""));
    let b2 = spec.backends.remove(0);
    rig.set_services(services(&spec, &[(b1.slot, b1.gen, true), (b2.slot, b2.gen, false)]));
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, ACK, b"more"));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
}

#[test]
fn persistence_sends_a_client_back_to_its_backend() {
    let spec = Spec { persistence_ms: 10_000, ..nat_tcp() };
    let mut rig = Rig::lb(&spec, LbLimits::default());
    for sport in 40000..40006 {
        let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, SYN, b""));
        assert_eq!(parse(&out[0].1).2, ip4("198.51.100.11"), "round robin would alternate");
    }
    assert_eq!(rig.event(Event::PersistenceHits), 5);
    // Another client is scheduled normally (round robin moves on).
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.3", 40000, VIP, 80, 6, SYN, b""));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
}

/// NAT: VIP:80 and VIP:81 share a backend, so a client port reused toward the other port has
/// the reply tuple of the earlier connection. Still open, that connection keeps it (the SYN is
/// dropped); once finished (TIME_WAIT), it gives way to the new one.
#[test]
fn a_reused_client_port_toward_another_service_of_the_backend_takes_over_a_finished_reply_tuple() {
    let spec = Spec { backends: vec![backend(1, 1)], ..nat_tcp() };
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let base = services(&spec, &[]);
    let mut other = base.list[0].clone();
    (other.port, other.slot) = (81, 1);
    let both = Services::new(vec![base.list[0].clone(), other], base.backend_slots.clone(), base.timeouts);
    rig.set_services(Arc::new(both));
    let c = |dport, flags, payload: &[u8]| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, dport, 6, flags, payload);
    let b = |flags| l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, flags, b"");
    rig.rx(0, c(80, SYN, b""));
    rig.rx(1, b(SYN_ACK));
    rig.rx(0, c(80, ACK, b""));
    // Open: the other service's SYN from the same port cannot have the tuple.
    assert!(rig.rx(0, c(81, SYN, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::ConnKeyExists), 1);
    rig.rx(0, c(80, FIN_ACK, b""));
    rig.rx(1, b(FIN_ACK));
    rig.rx(0, c(80, ACK, b""));
    let out = rig.rx(0, with_seq(c(81, SYN, b""), 7_000_000));
    assert_eq!(out.len(), 1, "the SYN to port 81 goes to the backend");
    assert_eq!((parse(&out[0].1).2, parse(&out[0].1).3), (ip4("198.51.100.11"), 8080));
    assert_eq!((rig.drops(DropReason::ConnKeyExists), rig.event(Event::ConnsReused)), (1, 1));
    // The backend's answer is the new connection's: it comes from port 81.
    let out = rig.rx(1, b(SYN_ACK));
    assert_eq!(parse(&out[0].1).1, 81);
    assert_eq!(rig.ctx.lb.conns.len(), 1);
}

#[test]
fn syn_on_a_finished_connection_starts_a_new_one() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let c = |flags, payload: &[u8]| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, flags, payload);
    let b = |flags| l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, flags, b"");
    rig.rx(0, c(SYN, b""));
    rig.rx(1, b(SYN_ACK));
    rig.rx(0, c(ACK, b""));
    rig.rx(0, c(FIN_ACK, b""));
    rig.rx(1, b(FIN_ACK));
    rig.rx(0, c(ACK, b""));
    let key =
        crate::conn::ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: IpProtocol::TCP };
    let (id, _) = rig.ctx.lb.conns.lookup(&key).unwrap();
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::TimeWait);
    // A new connection: a new ISN.
    let out = rig.rx(0, with_seq(c(SYN, b""), 7_000_000));
    // Rescheduled: round robin picks the other backend.
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
    assert_eq!(rig.event(Event::ConnsReused), 1);
    assert_eq!(rig.ctx.lb.conns.len(), 1);
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 0, "the old connection's count is released");
}

/// `frame` (from `l4`, TCP) with sequence number `seq`, its checksum updated.
fn with_seq(mut frame: Vec<u8>, seq: u32) -> Vec<u8> {
    let tcp = 14 + 20;
    frame[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
    frame[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    let (src, dst) = (
        Ipv4Addr::from([frame[26], frame[27], frame[28], frame[29]]),
        Ipv4Addr::from([frame[30], frame[31], frame[32], frame[33]]),
    );
    let len = frame.len() - tcp;
    let sum = checksum::pseudo_header_v4(src, dst, 6, len as u32) + checksum::sum(&frame[tcp..]);
    let c = !checksum::fold(sum);
    frame[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
    frame
}

#[test]
fn syn_with_another_isn_on_a_half_open_entry_starts_a_new_connection() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let syn = |seq| with_seq(l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""), seq);
    assert_eq!(parse(&rig.rx(0, syn(1000))[0].1).2, ip4("198.51.100.11"));
    // A retransmit (same ISN) stays on its entry, whatever round robin would say.
    assert_eq!(parse(&rig.rx(0, syn(1000))[0].1).2, ip4("198.51.100.11"));
    assert_eq!(rig.event(Event::ConnsReused), 0);
    // The client gave up and reuses the port with a new ISN: a new connection, scheduled.
    let out = rig.rx(0, syn(7_000_000));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
    assert_eq!(rig.event(Event::ConnsReused), 1);
    assert_eq!(rig.ctx.lb.conns.len(), 1);
    // Its retransmit stays on the new entry; once established, a SYN with yet another ISN is
    // not taken for a new connection (ESTABLISHED keeps its entry, as IPVS does).
    assert_eq!(parse(&rig.rx(0, syn(7_000_000))[0].1).2, ip4("198.51.100.12"));
    rig.rx(1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b""));
    assert_eq!(parse(&rig.rx(0, syn(9_000_000))[0].1).2, ip4("198.51.100.12"));
    assert_eq!(rig.event(Event::ConnsReused), 1);
}

#[test]
fn syn_on_an_entry_whose_backend_is_removed_or_inhibited_goes_to_a_usable_backend() {
    for reset in [false, true] {
        let spec = Spec { reset, backends: vec![backend(1, 1), backend(2, 2)], ..nat_tcp() };
        let mut rig = Rig::lb(&spec, LbLimits::default());
        let syn = |sport| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, SYN, b"");
        assert_eq!(parse(&rig.rx(0, syn(40000))[0].1).2, ip4("198.51.100.11"));
        assert_eq!(parse(&rig.rx(0, syn(40001))[0].1).2, ip4("198.51.100.12"));
        // b1 is removed (drain or reset): its entry's retransmitted SYN goes to b2.
        let mut left = Spec { backends: vec![backend(2, 2)], ..nat_tcp() };
        left.reset = reset;
        let b1 = backend(1, 1);
        rig.set_services(services(&left, &[(b1.slot, b1.gen, reset)]));
        let out = rig.rx(0, syn(40000));
        assert_eq!(out.len(), 1, "reset {reset}");
        assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"), "reset {reset}");
        assert_eq!(rig.event(Event::ConnsReused), 1);
        // b2 inhibited, b1 back in a new generation: 40001's retransmit goes to b1.
        let mut b2 = backend(2, 2);
        b2.state = BackendState::Inhibited;
        let again = Spec { backends: vec![Backend { gen: 500, ..backend(1, 1) }, b2], ..nat_tcp() };
        rig.set_services(services(&again, &[]));
        let out = rig.rx(0, syn(40001));
        assert_eq!(parse(&out[0].1).2, ip4("198.51.100.11"), "reset {reset}");
        assert_eq!(rig.event(Event::ConnsReused), 2);
        assert_eq!(rig.ctx.lb.conns.len(), 2);
    }
}

#[test]
fn half_open_connections_of_a_removed_backend_end_in_drain_mode_too() {
    let spec = nat_tcp();
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let c = |sport, flags| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, flags, b"");
    rig.rx(0, c(40000, SYN)); // -> b1, answered: half-open until the client's ACK
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.rx(0, c(40002, SYN)); // -> b2
    rig.rx(0, c(40004, SYN)); // -> b1, established
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40004, 6, SYN_ACK, b""));
    rig.rx(0, c(40004, ACK));
    // b1 removed with drain.
    let b1 = backend(1, 1);
    rig.set_services(services(&Spec { backends: vec![backend(2, 2)], ..nat_tcp() }, &[(b1.slot, b1.gen, false)]));
    // The half-open connection's ACK is not forwarded to b1: the client gets a RST.
    let out = rig.rx(0, c(40000, ACK));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0, "to the client");
    assert_eq!(out[0].1[14 + 20 + 13] & 0x04, 0x04, "RST flag");
    assert_eq!(rig.event(Event::ConnsReset), 1);
    // The established one drains on b1.
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40004, VIP, 80, 6, ACK, b"data"));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.11"));
    assert_eq!(rig.ctx.lb.conns.len(), 2);
}

/// An ICMP error quoting `quoted` (an IPv4 + 8 bytes of L4 from a frame), from `src` to `dst`.
fn icmp_error(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: &str,
    dst: &str,
    icmp_type: u8,
    code: u8,
    quoted_frame: &[u8],
) -> Vec<u8> {
    let quoted = &quoted_frame[14..14 + 28];
    // The "unused" word holds an MTU (1500) whatever the type: a next-hop MTU when it is one.
    let body = [&[0, 0, 0x05, 0xdc][..], quoted].concat();
    let ip = Ipv4Repr { ident: 1, dont_frag: false, ..Ipv4Repr::new(ip4(src), ip4(dst)) };
    let error = Icmpv4Repr::Other { ty: Icmpv4Type(icmp_type), code, body: &body };
    EthRepr { dst: dst_mac, src: src_mac }.frame_v4(&ip, &L4Repr::Icmpv4(error))
}

#[test]
fn icmp_errors_follow_their_connection_both_ways() {
    let spec = Spec {
        proto: IpProtocol::UDP,
        mode: FwdMode::Nat,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1)],
    };
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 53000, VIP, 80, 17, 0, b"query"));
    let to_backend = out[0].1.clone();
    // Port unreachable from the backend, quoting what we sent it: to the client, from the VIP,
    // quoting the packet as the client sent it.
    let err = icmp_error(B1_MAC, OUR_MAC1, "198.51.100.11", "192.0.2.2", 3, 3, &to_backend);
    let out = rig.rx(1, err);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    let f = &out[0].1;
    let (s, _, d, _, _) = parse(f);
    assert_eq!((s, d), (ip4(VIP), ip4("192.0.2.2")));
    let quoted = &f[14 + 20 + 8..];
    assert_eq!(checksum::checksum(&quoted[..20]), 0, "quoted IPv4 header checksum");
    assert_eq!(&quoted[12..16], &ip4("192.0.2.2").octets());
    assert_eq!(&quoted[16..20], &ip4(VIP).octets());
    assert_eq!(&quoted[20..24], &[0xcf, 0x08, 0, 80]); // 53000 -> 80
    assert_eq!(rig.event(Event::IcmpErrorsTranslated), 1);

    // Fragmentation needed from a router on the client side, quoting a reply we sent.
    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 53000, 17, 0, b"answer"));
    let to_client = out[0].1.clone();
    let err = icmp_error(CLIENT_MAC, OUR_MAC, "192.0.2.2", VIP, 3, 4, &to_client);
    let out = rig.rx(0, err);
    assert_eq!(out[0].0, 1);
    let f = &out[0].1;
    let (s, _, d, _, _) = parse(f);
    assert_eq!((s, d), (ip4("192.0.2.2"), ip4("198.51.100.11")));
    let quoted = &f[14 + 20 + 8..];
    assert_eq!(checksum::checksum(&quoted[..20]), 0);
    assert_eq!(&quoted[12..16], &ip4("198.51.100.11").octets());
    assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0x05, 0xdc], "the MTU is kept");
}

proptest::proptest! {
    /// Arbitrary bytes behind a valid IPv4 header to the VIP or from a backend, in NAT and
    /// FullNAT, with tracked connections present: never a panic, and every frame is either
    /// sent or counted.
    #[test]
    fn arbitrary_l4_to_services_never_panics(
        tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        proto in proptest::sample::select(vec![1u8, 6, 17]),
        from_backend in proptest::prelude::any::<bool>(),
        full_nat in proptest::prelude::any::<bool>(),
    ) {
        let mode = if full_nat { FwdMode::FullNat } else { FwdMode::Nat };
        let spec = Spec { proto: IpProtocol::UDP, mode, tunnel: Tunnel::default(), persistence_ms: 0, reset: true, backends: vec![backend(1, 1)] };
        let mut rig = Rig::lb(&spec, LbLimits::default());
        rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 53000, VIP, 80, 17, 0, b"open"));
        let (src, dst, port, mac) = if from_backend {
            ("198.51.100.11", if full_nat { "198.51.100.1" } else { "192.0.2.2" }, 1, OUR_MAC1)
        } else {
            ("192.0.2.2", VIP, 0, OUR_MAC)
        };
        let ip = Ipv4Repr { ident: 1, dont_frag: false, ..Ipv4Repr::new(ip4(src), ip4(dst)) };
        let frame = EthRepr { dst: mac, src: CLIENT_MAC }.frame_v4(&ip, &L4Repr::Raw { proto: IpProtocol(proto), bytes: &tail });
        let before_drops = rig.ctx.counters.drops_total();
        let sent = rig.rx(port, frame).len() as u64;
        let dropped = rig.ctx.counters.drops_total() - before_drops;
        proptest::prop_assert!(sent + dropped >= 1, "a frame vanished uncounted");
    }
}

#[test]
fn fullnat_reuse_of_a_local_port_within_its_quiet_time_is_counted() {
    let spec = Spec { mode: FwdMode::FullNat, ..nat_tcp() };
    // One local port: a new connection right after the last one ended has to reuse it.
    let limits = LbLimits { lport_min: 5000, lport_max: 5000, lport_quiet_ms: 60_000, ..LbLimits::default() };
    let mut rig = Rig::lb(&spec, limits);
    let c = |flags| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, flags, b"");
    assert_eq!(parse(&rig.rx(0, c(SYN))[0].1).1, 5000);
    assert_eq!(rig.event(Event::LportReusedEarly), 0, "a port never used is quiet");
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "198.51.100.1", 5000, 6, SYN_ACK, b""));
    rig.rx(0, c(ACK));
    rig.rx(0, c(0x04)); // RST: the entry closes
    rig.now += 1_000;
    let out = rig.rx(0, with_seq(c(SYN), 99_000));
    assert_eq!(parse(&out[0].1).1, 5000);
    assert_eq!(rig.event(Event::ConnsReused), 1);
    assert_eq!(rig.event(Event::LportReusedEarly), 1);
}

#[test]
fn a_retransmit_of_the_syn_that_opened_an_entry_stays_whatever_moved_its_state() {
    // The client reuses port 40000: its new SYN replaces the finished connection's entry and
    // goes to b2. A late FIN of the old connection from b2 (same tuple) moves the new entry
    // to TIME_WAIT mid-handshake; the client's SYN retransmit must still go to b2 (b2 may
    // have answered: another backend would reset the client's ACK).
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let c = |flags| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, flags, b"");
    let b2 = |flags| l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40000, 6, flags, b"");
    assert_eq!(parse(&rig.rx(0, c(SYN))[0].1).2, ip4("198.51.100.11"));
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.rx(0, c(ACK));
    rig.rx(0, c(FIN_ACK));
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, FIN_ACK, b""));
    rig.rx(0, c(ACK));
    let syn = with_seq(c(SYN), 5_000_000);
    assert_eq!(parse(&rig.rx(0, syn.clone())[0].1).2, ip4("198.51.100.12"));
    rig.rx(1, b2(FIN_ACK));
    let key =
        crate::conn::ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: IpProtocol::TCP };
    let (id, _) = rig.ctx.lb.conns.lookup(&key).unwrap();
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::TimeWait);
    assert_eq!(parse(&rig.rx(0, syn)[0].1).2, ip4("198.51.100.12"), "the retransmit stays");
    assert_eq!(rig.event(Event::ConnsReused), 1);
    // A SYN with a new ISN on the closed entry is a new connection.
    assert_eq!(parse(&rig.rx(0, with_seq(c(SYN), 9_000_000))[0].1).2, ip4("198.51.100.11"));
    assert_eq!(rig.event(Event::ConnsReused), 2);
}

#[test]
fn handshake_latency_is_timed_from_the_syn_to_the_syn_ack_per_backend() {
    for mode in [FwdMode::Nat, FwdMode::FullNat] {
        let mut rig = Rig::lb(&Spec { mode, ..nat_tcp() }, LbLimits::default());
        // The worker's TSC at 3 GHz: 3000 ticks a microsecond.
        let us = |t: u64| t * 3000;
        rig.ctx.set_clock(us(5_000_000), 3000);
        let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
        let (src, lport, ..) = parse(&out[0].1);
        rig.ctx.set_clock(us(5_000_300), 3000);
        let syn_ack = l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, &src.to_string(), lport, 6, SYN_ACK, b"");
        assert_eq!(rig.rx(1, syn_ack.clone()).len(), 1);
        let counters = rig.ctx.lb.counters.clone();
        let h = &counters.handshake[1];
        let counts: Vec<u64> = h.buckets.iter().map(|c| c.get()).collect();
        assert_eq!(counts, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "{mode:?}: 300 us is in the <= 500 us bucket");
        // The stored time steps by 1024 ticks: a third of a microsecond.
        assert!((299..=300).contains(&h.sum_us.get()), "{mode:?}: {}", h.sum_us.get());
        assert_eq!(h.gen.get(), 101, "{mode:?}");
        let sum = h.sum_us.get();
        // A retransmitted SYN-ACK and the established packets after it add nothing.
        rig.ctx.set_clock(us(5_900_000), 3000);
        rig.rx(1, syn_ack);
        rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b""));
        let back = l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, &src.to_string(), lport, 6, ACK, b"data");
        rig.rx(1, back);
        assert_eq!((h.count(), h.sum_us.get()), (1, sum), "{mode:?}");
        assert_eq!(rig.ctx.lb.counters.handshake[2].count(), 0, "{mode:?}: the other backend has none");
    }
}

/// Each core keeps the MAC of a backend's next hop and of a gateway route's: a changed MAC, a
/// neighbour gone, an entry gone stale and a route moved to another port all take effect at
/// the next packet, as when every packet looked its next hop up.
#[test]
fn kept_next_hop_macs_follow_neighbour_and_route_changes() {
    const B1_NEW: MacAddr = MacAddr([2, 0xb1, 0, 0, 0, 0x99]);
    const GW_NEW: MacAddr = MacAddr([2, 0xc1, 0, 0, 0, 0x99]);
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let client = "203.0.113.7";
    let ack = |rig: &mut Rig| rig.rx(0, l4(CLIENT_MAC, OUR_MAC, client, 40000, VIP, 80, 6, ACK, b""));
    let reply = |rig: &mut Rig| rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, client, 40000, 6, ACK, b""));
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, client, 40000, VIP, 80, 6, SYN, b""));
    assert_eq!(&out[0].1[0..6], &B1_MAC.0);
    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, client, 40000, 6, SYN_ACK, b""));
    assert_eq!((out[0].0, &out[0].1[0..6]), (0, &CLIENT_MAC.0[..]), "via the gateway 192.0.2.2");
    assert_eq!(&ack(&mut rig)[0].1[0..6], &B1_MAC.0);
    assert_eq!(&reply(&mut rig)[0].1[0..6], &CLIENT_MAC.0);

    // The backend and the gateway move to other MACs (as another core learned it).
    for (port, ip, mac) in [(1, "198.51.100.11", B1_NEW), (0, "192.0.2.2", GW_NEW)] {
        let n = NeighLearned { port, ip: ip.parse().unwrap(), mac };
        rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    }
    assert_eq!(&ack(&mut rig)[0].1[0..6], &B1_NEW.0);
    assert_eq!(&reply(&mut rig)[0].1[0..6], &GW_NEW.0);

    // Stale: the next packet still goes, and a unicast request re-confirms the next hop.
    rig.now += rig.ctx.neigh.params().reachable_ms;
    let out = ack(&mut rig);
    assert_eq!(out.len(), 2, "the packet and a request: {out:?}");
    assert_eq!(&out[0].1[0..6], &B1_NEW.0);
    assert_eq!((out[1].0, &out[1].1[0..6], &out[1].1[12..14]), (1, &B1_NEW.0[..], &[8, 6][..]), "unicast ARP");
    let out = reply(&mut rig);
    assert_eq!(out.len(), 2, "the packet and a request: {out:?}");
    assert_eq!((out[1].0, &out[1].1[0..6], &out[1].1[12..14]), (0, &GW_NEW.0[..], &[8, 6][..]), "unicast ARP");

    // The backend's neighbour entry goes (never confirmed again, then unused): the next
    // packet waits for it to resolve, with a broadcast request.
    rig.now += rig.ctx.neigh.params().stale_ms;
    rig.timers();
    rig.timers();
    let out = ack(&mut rig);
    assert_eq!(out.len(), 1, "only a request: {out:?}");
    assert_eq!((out[0].0, &out[0].1[0..6], &out[0].1[12..14]), (1, &MacAddr::BROADCAST.0[..], &[8, 6][..]));

    // The backend's network moves to dp0: its packets follow the new snapshot's route.
    let mut snap = Snapshot::build(
        vec![
            (0, PortL3 { name: "dp0".into(), mac: OUR_MAC, mtu: 1500, kernel: None }),
            (1, PortL3 { name: "dp1".into(), mac: OUR_MAC1, mtu: 1500, kernel: None }),
        ],
        vec![
            LocalAddr { port: 0, prefix: "192.0.2.1/24".parse().unwrap() },
            LocalAddr { port: 0, prefix: "198.51.100.1/24".parse().unwrap() },
        ],
        vec![Route {
            prefix: "203.0.113.0/24".parse().unwrap(),
            via: Some("192.0.2.2".parse().unwrap()),
            port: 0,
            origin: RouteOrigin::Static,
        }],
    );
    snap = snap.with_services(rig.snap.services.clone());
    rig.snap = snap;
    rig.ctx.snapshot_changed(&rig.snap);
    let n = NeighLearned { port: 0, ip: "198.51.100.11".parse().unwrap(), mac: B1_MAC };
    rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    let out = ack(&mut rig);
    assert_eq!((out[0].0, &out[0].1[0..6], &out[0].1[6..12]), (0, &B1_MAC.0[..], &OUR_MAC.0[..]));
}
