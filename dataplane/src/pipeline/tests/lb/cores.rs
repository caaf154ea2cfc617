//! Two workers: whichever core a NIC delivers a packet to, the core that owns its connection
//! handles it, and no connection is tracked on two cores.

use super::*;
use crate::conn::ConnKey;
use crate::lb::LbCounters;
use crate::rss::{ReplySteering, Reta, Toeplitz, MICROSOFT_KEY};
use crate::steer::{Ownership, Steering};

/// Two rigs on one service, as cores 0 and 1 of two.
struct Cores {
    rigs: Vec<Rig>,
}

impl Cores {
    fn new(spec: &Spec, limits: LbLimits, steering: Vec<Steering>) -> Cores {
        let rigs = (0..2)
            .map(|c| {
                let mut rig = Rig::lb(spec, limits);
                rig.ctx.core = c;
                let own = Ownership::new(c, 2, steering.clone());
                rig.ctx.lb = LbCore::new(c, 2, limits, Arc::new(LbCounters::new(&limits))).with_ownership(own);
                rig.ctx.snapshot_changed(&rig.snap);
                rig
            })
            .collect();
        Cores { rigs }
    }

    /// The frame arrives on `core`'s queue of `port`; what any core sent, after every hand-off.
    fn deliver(&mut self, core: usize, port: u16, buf: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
        let rig = &mut self.rigs[core];
        rig.ctx.process_burst(&rig.snap, rig.now, [TestFrame { buf, port }], &mut rig.pool, &mut rig.sent);
        let mut out = std::mem::take(&mut rig.sent.0);
        let handed = std::mem::take(&mut rig.sent.1);
        for (to, frame) in handed {
            assert_ne!(to as usize, core, "handed to itself");
            let rig = &mut self.rigs[to as usize];
            rig.ctx.process_handed_in(&rig.snap, rig.now, [frame], &mut rig.pool, &mut rig.sent);
            assert!(rig.sent.1.is_empty(), "a handed-in frame is never handed on");
            out.append(&mut rig.sent.0);
        }
        out
    }

    fn event(&self, e: Event) -> [u64; 2] {
        [self.rigs[0].event(e), self.rigs[1].event(e)]
    }

    /// The cores whose table has this tuple (either direction).
    fn holders(&self, key: &ConnKey) -> Vec<usize> {
        (0..2).filter(|&c| self.rigs[c].ctx.lb.conns.lookup(key).is_some()).collect()
    }

    fn no_drops(&self) {
        for rig in &self.rigs {
            assert_eq!(rig.ctx.counters.drops_total(), 0, "{:?}", rig.ctx.counters.snapshot());
        }
    }
}

fn key(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> ConnKey {
    ConnKey { src: ip4(src), dst: ip4(dst), sport, dport, proto: IpProtocol(proto) }
}

#[test]
fn nat_connections_live_on_one_core_whichever_queues_their_packets_arrive_on() {
    let mut cores = Cores::new(&nat_tcp(), LbLimits::default(), vec![Steering::Rings; 2]);
    let owner = Ownership::new(0, 2, Vec::new());
    for cport in 40000..40040u16 {
        // Each packet of the handshake on its own queue, in every combination.
        let rx = |k: u16| usize::from((cport >> k) & 1);
        let out = cores.deliver(rx(0), 0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", cport, VIP, 80, 6, SYN, b""));
        assert_eq!(out.len(), 1, "SYN from {cport}");
        let (_, _, backend, bport, _) = parse(&out[0].1);
        let b = backend.to_string();
        let out = cores.deliver(rx(1), 1, l4(B1_MAC, OUR_MAC1, &b, bport, "192.0.2.2", cport, 6, SYN_ACK, b""));
        assert_eq!(out.len(), 1, "SYN-ACK to {cport}");
        assert_eq!(parse(&out[0].1), (ip4(VIP), 80, ip4("192.0.2.2"), cport, 63));
        let out = cores.deliver(rx(2), 0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", cport, VIP, 80, 6, ACK, b"GET"));
        assert_eq!(parse(&out[0].1).2, backend);

        let want = owner.client_owner(ip4("192.0.2.2"), cport) as usize;
        assert_eq!(cores.holders(&key("192.0.2.2", cport, VIP, 80, 6)), vec![want], "client port {cport}");
        let (id, _) = cores.rigs[want].ctx.lb.conns.lookup(&key(&b, bport, "192.0.2.2", cport, 6)).unwrap();
        // ESTABLISHED: the owner saw the SYN, the SYN-ACK and the ACK.
        assert_eq!(cores.rigs[want].ctx.lb.conns.get(id).state, TcpState::Established);
    }
    cores.no_drops();
    let created = cores.event(Event::ConnsCreated);
    assert_eq!(created[0] + created[1], 40);
    assert!(created.iter().all(|&n| n > 5), "both cores own connections: {created:?}");
    let (off, into) = (cores.event(Event::HandedOff), cores.event(Event::HandedIn));
    assert_eq!(off[0] + off[1], into[0] + into[1]);
    // Every packet is received once, on the queue it arrived at; half were not the owner's.
    let rx = cores.event(Event::RxPackets);
    assert_eq!(rx[0] + rx[1], 120);
    assert!(off[0] + off[1] > 30, "{off:?}");
    assert_eq!(cores.event(Event::LbInPackets).iter().sum::<u64>(), 80);
    assert_eq!(cores.event(Event::LbOutPackets).iter().sum::<u64>(), 40);
}

#[test]
fn fullnat_and_snat_replies_reach_the_core_that_chose_their_local_port() {
    let spec = Spec {
        proto: IpProtocol::UDP,
        mode: FwdMode::FullNat,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1)],
    };
    let limits = LbLimits { lport_min: 5000, lport_max: 5099, ..LbLimits::default() };
    let mut cores = Cores::new(&spec, limits, vec![Steering::Rings; 2]);
    for i in 0..20u16 {
        let rx = usize::from(i % 2);
        let out = cores.deliver(rx, 0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 53000 + i, VIP, 80, 17, 0, b"ping"));
        let (_, lport, _, _, _) = parse(&out[0].1);
        // The client's side opened it where it arrived; the port says so.
        assert_eq!(usize::from(lport % 2), rx, "local port {lport}");
        // The reply comes in on the other core's queue.
        let reply = l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "198.51.100.1", lport, 17, 0, b"pong");
        let out = cores.deliver(1 - rx, 1, reply);
        assert_eq!(parse(&out[0].1), (ip4(VIP), 80, ip4("192.0.2.2"), 53000 + i, 63));
        assert_eq!(cores.holders(&key("192.0.2.2", 53000 + i, VIP, 80, 17)), vec![rx]);
    }
    assert_eq!(cores.event(Event::HandedOff), [10, 10]);
    assert_eq!(cores.event(Event::HandedIn), [10, 10]);

    // SNAT: the backend's outbound connection and the server's reply, on different queues.
    let rule = crate::service::SnatRule {
        prefix: ip4("198.51.100.0"),
        prefix_len: 24,
        out_port: 0,
        addrs: vec![Laddr { addr: ip4("192.0.2.50"), slot: 3, gen: 9 }],
    };
    for rig in &mut cores.rigs {
        let services = (*services(&spec, &[])).clone().with_snat(vec![rule.clone()]);
        rig.set_services(Arc::new(services));
    }
    for i in 0..10u16 {
        let rx = usize::from(i % 2);
        let out =
            cores.deliver(rx, 1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 41000 + i, "203.0.113.9", 80, 6, SYN, b""));
        let (src, lport, _, _, _) = parse(&out[0].1);
        assert_eq!((src, usize::from(lport % 2)), (ip4("192.0.2.50"), rx));
        let out =
            cores.deliver(1 - rx, 0, l4(CLIENT_MAC, OUR_MAC, "203.0.113.9", 80, "192.0.2.50", lport, 6, SYN_ACK, b""));
        assert_eq!(parse(&out[0].1), (ip4("203.0.113.9"), 80, ip4("198.51.100.11"), 41000 + i, 63));
    }
    assert_eq!(cores.event(Event::SnatInPackets), [5, 5]);
    cores.no_drops();
}

#[test]
fn where_the_nic_hashes_replies_to_the_owner_nothing_is_handed_off() {
    let spec = Spec {
        proto: IpProtocol::TCP,
        mode: FwdMode::FullNat,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1), backend(2, 2)],
    };
    let limits = LbLimits { lport_min: 5000, lport_max: 5999, ..LbLimits::default() };
    let rss =
        ReplySteering { toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(), reta: Reta::round_robin(128, 2).unwrap() };
    let mut cores = Cores::new(&spec, limits, vec![Steering::Rings, Steering::Toeplitz(rss.clone())]);
    for i in 0..40u16 {
        let rx = usize::from(i % 2);
        let out = cores.deliver(rx, 0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 30000 + i, VIP, 80, 6, SYN, b""));
        let (laddr, lport, backend, bport, _) = parse(&out[0].1);
        // The NIC (this key and table) puts the reply on the queue of the core that opened it.
        let queue = usize::from(rss.reply_queue(backend, bport, laddr, lport));
        assert_eq!(queue, rx, "{backend}:{bport} -> {laddr}:{lport}");
        let reply = l4(B1_MAC, OUR_MAC1, &backend.to_string(), bport, &laddr.to_string(), lport, 6, SYN_ACK, b"");
        let out = cores.deliver(queue, 1, reply);
        assert_eq!(parse(&out[0].1), (ip4(VIP), 80, ip4("192.0.2.2"), 30000 + i, 63));
    }
    assert_eq!(cores.event(Event::HandedOff), [0, 0]);
    assert_eq!(cores.event(Event::ConnsCreated), [20, 20]);
    cores.no_drops();
}

#[test]
fn icmp_errors_about_a_connection_reach_its_core() {
    let mut cores = Cores::new(&nat_tcp(), LbLimits::default(), vec![Steering::Rings; 2]);
    let owner = Ownership::new(0, 2, Vec::new());
    // A client port owned by core 1; its SYN arrives there.
    let cport = (40000..).find(|&p| owner.client_owner(ip4("192.0.2.2"), p) == 1).unwrap();
    let out = cores.deliver(1, 0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", cport, VIP, 80, 6, SYN, b""));
    let sent = out[0].1.clone();
    // The backend's port unreachable about that packet arrives on core 0.
    let err = icmp_error(B1_MAC, OUR_MAC1, "198.51.100.11", "192.0.2.2", 3, 3, &sent);
    let out = cores.deliver(0, 1, err);
    assert_eq!(out.len(), 1, "translated by the owner");
    assert_eq!(out[0].0, 0);
    assert_eq!(cores.event(Event::IcmpErrorsTranslated), [0, 1]);
    assert_eq!(cores.event(Event::HandedOff), [1, 0]);
    cores.no_drops();
}
