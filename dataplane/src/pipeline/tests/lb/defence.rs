//! Flood defence of the connection table: the half-open quota, eviction, and the half-open
//! deadline that backend retransmissions cannot extend.

use super::*;

fn syn(sport: u16) -> Vec<u8> {
    l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, SYN, b"")
}

fn ack(sport: u16) -> Vec<u8> {
    l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, ACK, b"")
}

#[test]
fn syns_past_the_half_open_quota_are_refused_and_counted() {
    let limits = LbLimits { conn_capacity: 16, half_open_capacity: 4, ..LbLimits::default() };
    let mut rig = Rig::lb(&nat_tcp(), limits);
    for port in 1000..1004 {
        assert_eq!(rig.rx(0, syn(port)).len(), 1);
    }
    assert!(rig.rx(0, syn(1004)).is_empty());
    assert_eq!(rig.drops(DropReason::HalfOpenFull), 1);
    assert_eq!(rig.drops(DropReason::ConnTableFull), 0);
    assert_eq!(rig.ctx.lb.conns.half_open(), 4);
    // A handshake completes: room for one more half-open connection.
    assert_eq!(rig.rx(0, ack(1000)).len(), 1);
    assert_eq!(rig.ctx.lb.conns.half_open(), 3);
    assert_eq!(rig.rx(0, syn(1004)).len(), 1);
    assert!(rig.rx(0, syn(1005)).is_empty());
    assert_eq!(rig.drops(DropReason::HalfOpenFull), 2);
    // UDP is not half-open: the quota does not apply to it.
    let udp_spec = Spec { proto: IpProtocol::UDP, ..nat_tcp() };
    let mut rig = Rig::lb(&udp_spec, limits);
    for port in 1000..1010 {
        assert_eq!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", port, VIP, 80, 17, 0, b"q")).len(), 1);
    }
    assert_eq!(rig.drops(DropReason::HalfOpenFull), 0);
}

#[test]
fn a_full_table_evicts_the_oldest_half_open_entry_never_an_established_one() {
    let limits = LbLimits { conn_capacity: 16, half_open_capacity: 16, ..LbLimits::default() };
    let mut rig = Rig::lb(&nat_tcp(), limits);
    for port in 1000..1008 {
        rig.rx(0, syn(port));
        rig.rx(0, ack(port));
    }
    for port in 2000..2008 {
        assert_eq!(rig.rx(0, syn(port)).len(), 1);
    }
    assert_eq!(rig.ctx.lb.conns.len(), 16);
    // A new SYN to a full table takes the place of the oldest half-open entry.
    assert_eq!(rig.rx(0, syn(3000)).len(), 1);
    assert_eq!(rig.event(Event::ConnsEvicted), 1);
    let key = |sport| ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport, dport: 80, proto: IpProtocol::TCP };
    assert!(rig.ctx.lb.conns.lookup(&key(2000)).is_none(), "oldest half-open evicted");
    assert!(rig.ctx.lb.conns.lookup(&key(2001)).is_some());
    for port in 3001..3010 {
        assert_eq!(rig.rx(0, syn(port)).len(), 1);
    }
    // Every half-open entry is gone now but the newest: the established ones stay.
    assert_eq!(rig.event(Event::ConnsEvicted), 10);
    for port in 1000..1008 {
        assert!(rig.ctx.lb.conns.lookup(&key(port)).is_some(), "established {port} kept");
        assert_eq!(rig.rx(0, ack(port)).len(), 1);
    }
    // Once all are established, a new SYN is refused.
    for port in 3002..3010 {
        rig.rx(0, ack(port));
    }
    assert_eq!(rig.ctx.lb.conns.half_open(), 0);
    assert!(rig.rx(0, syn(4000)).is_empty());
    assert_eq!(rig.drops(DropReason::ConnTableFull), 1);
}

#[test]
fn backend_syn_ack_retransmits_do_not_extend_a_half_open_entry() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let syn_recv = rig.snap.services.timeouts.syn_recv_ms;
    let start = rig.now;
    assert_eq!(rig.rx(0, syn(40000)).len(), 1);
    let key = ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: IpProtocol::TCP };
    let (id, _) = rig.ctx.lb.conns.lookup(&key).unwrap();
    let b1 = rig.ctx.lb.conns.get(id).backend.to_string();
    let b1_mac = if b1 == "198.51.100.11" { B1_MAC } else { B2_MAC };
    // The client never answers (a spoofed source); the backend retransmits its SYN-ACK
    // (Linux: after 1, 3, 7, 15, 31 s), and the client its SYN once.
    for at in [1_000u64, 3_000, 7_000, 15_000, 31_000, 40_000, syn_recv as u64 - 100] {
        rig.now = start + at;
        let synack = l4(b1_mac, OUR_MAC1, &b1, 8080, "192.0.2.2", 40000, 6, SYN_ACK, b"");
        // (Also out now and then: an ARP request re-confirming a neighbour.)
        let ipv4 = |out: Vec<(u16, Vec<u8>)>| out.iter().filter(|(_, f)| f[12..14] == [0x08, 0x00]).count();
        assert_eq!(ipv4(rig.rx(1, synack)), 1, "forwarded to the client at {at} ms");
        if at == 3_000 {
            assert_eq!(ipv4(rig.rx(0, syn(40000))), 1);
        }
        rig.timers();
        assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::SynRecv);
        assert!(rig.ctx.lb.conns.expires_in_ms(id, rig.now) <= syn_recv as u64 - at + crate::conn::TICK_MS);
    }
    // tcp_syn_recv after the first SYN (and at most a tick late): gone.
    rig.now = start + syn_recv as u64 + 2 * crate::conn::TICK_MS;
    for _ in 0..100 {
        rig.timers();
    }
    assert!(rig.ctx.lb.conns.lookup(&key).is_none());
    assert_eq!(rig.ctx.lb.conns.half_open(), 0);
    assert_eq!(rig.event(Event::ConnsExpired), 1);
}

// ---- access lists and limits ----

use crate::defence::{Guard, PrefixSet, RuleCounters, ServiceGuard};

/// The NAT service with `g` (for service slot 0, generation 1) and `deny` as the global list.
fn guarded(rig: &mut Rig, spec: &Spec, deny: &[(&str, u8, u32)], g: ServiceGuard, rules: usize) {
    let deny: Vec<_> = deny.iter().map(|&(a, l, r)| (ip4(a), l, r)).collect();
    let guard = Guard {
        deny: PrefixSet::build(&deny),
        services: vec![Some(ServiceGuard { slot: 0, gen: 1, ..g })],
        counters: Arc::new(RuleCounters::new(rules, 1)),
    };
    let services = (*services(spec, &[])).clone().with_guard(Arc::new(guard));
    rig.set_services(Arc::new(services));
}

fn syn_from(src: &str, sport: u16) -> Vec<u8> {
    l4(CLIENT_MAC, OUR_MAC, src, sport, VIP, 80, 6, SYN, b"")
}

#[test]
fn access_lists_refuse_new_connections_and_count_per_rule() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    // A connection made before the lists: it goes on whatever they say (no per-packet check).
    assert_eq!(rig.rx(0, syn_from("192.0.2.2", 999)).len(), 1);
    let g = ServiceGuard {
        deny: PrefixSet::build(&[(ip4("192.0.2.2"), 32, 1)]),
        allow: PrefixSet::build(&[(ip4("192.0.2.0"), 24, 2)]),
        allow_miss_rule: 3,
        ..Default::default()
    };
    guarded(&mut rig, &nat_tcp(), &[("203.0.113.0", 24, 0)], g, 4);
    assert!(rig.rx(0, syn_from("203.0.113.5", 1000)).is_empty());
    assert!(rig.rx(0, syn_from("192.0.2.2", 1001)).is_empty());
    assert!(rig.rx(0, syn_from("198.51.100.200", 1002)).is_empty());
    assert!(rig.rx(0, syn_from("198.51.100.200", 1003)).is_empty());
    assert_eq!(rig.rx(0, syn_from("192.0.2.3", 1004)).len(), 1, "in the allow list");
    assert_eq!(rig.drops(DropReason::AclDenied), 2);
    assert_eq!(rig.drops(DropReason::AclNotAllowed), 2);
    let counters = &rig.snap.services.guard.counters;
    assert_eq!([0, 1, 2, 3].map(|r| counters.total(r)), [1, 1, 0, 2]);
    assert_eq!(rig.rx(0, ack(999)).len(), 1, "established before: not looked at again");
}

#[test]
fn rate_limits_per_service_and_per_source() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    guarded(
        &mut rig,
        &nat_tcp(),
        &[],
        ServiceGuard { source_conns_per_s: 3, source_burst: 3, ..Default::default() },
        0,
    );
    let ok = (0..10).filter(|i| !rig.rx(0, syn_from("192.0.2.2", 2000 + i)).is_empty()).count();
    assert_eq!(ok, 3);
    assert_eq!(rig.drops(DropReason::SourceRateLimited), 7);
    assert_eq!(rig.rx(0, syn_from("192.0.2.3", 3000)).len(), 1, "another source has its own");
    rig.now += 1000;
    let ok = (0..10).filter(|i| !rig.rx(0, syn_from("192.0.2.2", 4000 + i)).is_empty()).count();
    assert_eq!(ok, 3);

    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    guarded(&mut rig, &nat_tcp(), &[], ServiceGuard { conns_per_s: 5, ..Default::default() }, 0);
    let ok = (0..20u16).filter(|i| !rig.rx(0, syn_from("192.0.2.2", 5000 + i)).is_empty()).count();
    assert_eq!(ok, 5);
    assert_eq!(rig.drops(DropReason::ServiceRateLimited), 15);
}

#[test]
fn a_backend_at_its_maximum_is_skipped() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    // b1 takes 2 connections at most, b2 3; round robin would alternate.
    guarded(&mut rig, &nat_tcp(), &[], ServiceGuard { backend_max_conns: vec![2, 3], ..Default::default() }, 0);
    let mut to = Vec::new();
    for sport in 6000..6005 {
        let out = rig.rx(0, syn(sport));
        assert_eq!(out.len(), 1);
        to.push(parse(&out[0].1).2.to_string());
    }
    let b1 = to.iter().filter(|b| *b == "198.51.100.11").count();
    assert_eq!((b1, to.len() - b1), (2, 3), "{to:?}");
    assert!(rig.event(Event::BackendFullSkips) >= 1);
    assert!(rig.rx(0, syn(6005)).is_empty());
    assert_eq!(rig.drops(DropReason::BackendsFull), 1);
    // A connection ends: room again.
    let key = ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 6000, dport: 80, proto: IpProtocol::TCP };
    rig.rx(0, ack(6000));
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 6000, VIP, 80, 6, 0x04, b""));
    rig.now += 11_000;
    for _ in 0..50 {
        rig.timers();
    }
    assert!(rig.ctx.lb.conns.lookup(&key).is_none());
    assert_eq!(rig.rx(0, syn(6006)).len(), 1);
}
