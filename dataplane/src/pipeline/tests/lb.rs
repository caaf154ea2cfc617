//! Load balancing through the pipeline: frames in, frames out, headers and checksums
//! checked by full recomputation, connection table and counters checked.

use std::sync::Arc;

use super::*;
use crate::conn::{Dir, TcpState};
use crate::service::{Backend, BackendState, FwdMode, Laddr, Services, Tunnel};

mod burst;
mod cores;
mod modes;
mod mtu;
mod pickup;

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

/// (src, sport, dst, dport, ttl) of a frame, after checking every checksum from scratch.
fn parse(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u8) {
    let ip = &frame[14..];
    assert_eq!(checksum::checksum(&ip[..20]), 0, "IPv4 header checksum");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let (src, dst) =
        (Ipv4Addr::from([ip[12], ip[13], ip[14], ip[15]]), Ipv4Addr::from([ip[16], ip[17], ip[18], ip[19]]));
    let l4 = &ip[20..total];
    let proto = ip[9];
    if proto == 1 {
        assert_eq!(checksum::checksum(l4), 0, "ICMP checksum");
    } else {
        let sum = checksum::pseudo_header_v4(src, dst, proto, l4.len() as u32) + checksum::sum(l4);
        assert_eq!(checksum::fold(sum), 0xffff, "L4 checksum");
    }
    (src, u16::from_be_bytes([l4[0], l4[1]]), dst, u16::from_be_bytes([l4[2], l4[3]]), ip[8])
}

fn nat_tcp() -> Spec {
    Spec {
        proto: 6,
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
        .lookup(&crate::conn::ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: 6 })
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
        proto: 17,
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
    assert_eq!(rig.ctx.lb.counters.laddrs[0].ports_in_use.get(), 1);

    // Idle past the UDP timeout: expired, and the port goes back to the pool.
    rig.now += 5_000 + 2 * crate::conn::TICK_MS + 10;
    // Each call passes a bounded number of wheel buckets: a few calls catch up.
    for _ in 0..20 {
        rig.timers();
    }
    assert!(rig.ctx.lb.conns.is_empty());
    assert_eq!(rig.event(Event::ConnsExpired), 1);
    assert_eq!(rig.ctx.lb.counters.laddrs[0].ports_in_use.get(), 0);
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
    // Drain: b2 removed without reset keeps its connection.
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
    let key = crate::conn::ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: 6 };
    let (id, _) = rig.ctx.lb.conns.lookup(&key).unwrap();
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::TimeWait);
    let out = rig.rx(0, c(SYN, b""));
    // Rescheduled: round robin picks the other backend.
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
    assert_eq!(rig.event(Event::ConnsReused), 1);
    assert_eq!(rig.ctx.lb.conns.len(), 1);
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 0, "the old connection's count is released");
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
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0, 0x05, 0xdc];
    icmp.extend_from_slice(quoted);
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = 20 + icmp.len();
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, 1, 0, 0];
    ip.extend_from_slice(&ip4(src).octets());
    ip.extend_from_slice(&ip4(dst).octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut v = eth(dst_mac, src_mac, 0x0800);
    v.extend(ip);
    v.extend(icmp);
    v
}

#[test]
fn icmp_errors_follow_their_connection_both_ways() {
    let spec = Spec {
        proto: 17,
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
        let spec = Spec { proto: 17, mode, tunnel: Tunnel::default(), persistence_ms: 0, reset: true, backends: vec![backend(1, 1)] };
        let mut rig = Rig::lb(&spec, LbLimits::default());
        rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 53000, VIP, 80, 17, 0, b"open"));
        let (src, dst, port, mac) = if from_backend {
            ("198.51.100.11", if full_nat { "198.51.100.1" } else { "192.0.2.2" }, 1, OUR_MAC1)
        } else {
            ("192.0.2.2", VIP, 0, OUR_MAC)
        };
        let total = 20 + tail.len();
        let mut frame = eth(mac, CLIENT_MAC, 0x0800);
        let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&ip4(src).octets());
        ip.extend_from_slice(&ip4(dst).octets());
        let c = checksum::checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend(ip);
        frame.extend(tail);
        let before_drops = rig.ctx.counters.drops_total();
        let sent = rig.rx(port, frame).len() as u64;
        let dropped = rig.ctx.counters.drops_total() - before_drops;
        proptest::prop_assert!(sent + dropped >= 1, "a frame vanished uncounted");
    }
}
