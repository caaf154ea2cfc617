//! What health checks need from the data path: failed new connections counted per backend
//! (passive detection), a live backend's connections reset when it is marked down with
//! `on_backend_down: reset`, and SYNs refused with a RST when every backend is down with
//! `all_down: reset`.

use super::*;
use crate::service::BackendSlot;

const RST_ACK: u8 = 0x14;

fn failures(rig: &Rig, slot: usize) -> u64 {
    rig.ctx.lb.counters.backends[slot].syn_failures.get()
}

#[test]
fn a_reset_answering_the_syn_counts_and_one_later_does_not() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let c = |sport, flags| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, flags, b"");
    rig.rx(0, c(40000, SYN)); // -> b1
    rig.rx(0, c(40001, SYN)); // -> b2
                              // b1 refuses (nothing listens): a failed new connection; the RST still reaches the client.
    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, RST_ACK, b""));
    assert_eq!(out.len(), 1, "the refusal is forwarded");
    assert_eq!(failures(&rig, 1), 1);
    // b2 completes the handshake; its later RST is no failed new connection.
    rig.rx(1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40001, 6, SYN_ACK, b""));
    rig.rx(0, c(40001, ACK));
    rig.rx(1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40001, 6, RST_ACK, b""));
    assert_eq!(failures(&rig, 2), 0);
    // A client giving up on its own SYN is not the backend's failure.
    rig.rx(0, c(40002, SYN)); // -> b1
    rig.rx(0, c(40002, RST_ACK));
    assert_eq!(failures(&rig, 1), 1);
}

#[test]
fn a_syn_left_unanswered_counts_when_its_entry_expires() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b"")); // -> b1
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, SYN, b"")); // -> b2
    rig.rx(1, l4(B2_MAC, OUR_MAC1, "198.51.100.12", 8080, "192.0.2.2", 40001, 6, SYN_ACK, b""));
    let t = crate::conn::Timeouts::default();
    rig.now += u64::from(t.syn_recv_ms.max(t.syn_sent_ms)) + 2 * crate::conn::TICK_MS + 10;
    for _ in 0..200 {
        rig.timers();
    }
    assert_eq!(rig.event(Event::ConnsExpired), 2);
    assert_eq!(failures(&rig, 1), 1, "b1 never answered");
    assert_eq!(failures(&rig, 2), 0, "b2 answered (the client never completed: not the backend's failure)");
}

#[test]
fn a_downed_backend_with_reset_has_its_connections_reset() {
    let spec = nat_tcp();
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let c = |sport, flags, data: &[u8]| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, flags, data);
    rig.rx(0, c(40000, SYN, b"")); // -> b1
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.rx(0, c(40000, ACK, b""));
    // -> b2
    rig.rx(0, c(40001, SYN, b""));
    // The health checks took b1 out with on_backend_down: reset: inhibited, its slot not live
    // (same generation) with `reset` set.
    let mut down = spec.backends.clone();
    down[0].state = BackendState::Inhibited;
    let mut svc = service(&Spec { backends: down.clone(), ..nat_tcp() });
    svc.candidates[0].schedulable = false;
    let mut slots = vec![BackendSlot::default(); 16];
    for b in &down {
        slots[usize::from(b.slot)] =
            BackendSlot { gen: b.gen, live: b.slot != 1, reset: b.slot == 1, tunnel: Tunnel::default() };
    }
    let timeouts = crate::conn::Timeouts { established_ms: 60_000, ..Default::default() };
    rig.set_services(Arc::new(Services::new(vec![svc], slots, timeouts)));
    let out = rig.rx(0, c(40000, ACK, b"data"));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1[14 + 20 + 13] & 0x04), (0, 0x04), "a RST back to the client");
    assert_eq!(rig.event(Event::ConnsReset), 1);
    // b2's connection goes on.
    let out = rig.rx(0, c(40001, ACK, b"data"));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"));
}

#[test]
fn all_down_reset_refuses_syns_and_drop_drops_them() {
    for reset in [true, false] {
        let mut spec = nat_tcp();
        for b in &mut spec.backends {
            b.state = BackendState::Inhibited;
        }
        let mut rig = Rig::lb(&spec, LbLimits::default());
        let mut svc = service(&spec);
        svc.reset_when_all_down = reset;
        let slots: Vec<BackendSlot> = (0..16).map(|i| rig.snap.services.backend_slot(i)).collect();
        let built = Services::new(vec![svc], slots, Default::default());
        rig.set_services(Arc::new(built));
        let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
        assert_eq!(rig.ctx.counters.drop_reason(DropReason::NoBackend).get(), 1);
        assert!(rig.ctx.lb.conns.is_empty());
        if reset {
            assert_eq!(out.len(), 1, "all_down: reset answers");
            let f = &out[0].1;
            assert_eq!((out[0].0, f[14 + 20 + 13]), (0, RST_ACK), "RST|ACK to the client");
            assert_eq!(parse(f), (ip4(VIP), 80, ip4("192.0.2.2"), 40000, 64));
            assert_eq!(rig.event(Event::TcpResetsSent), 1);
        } else {
            assert!(out.is_empty(), "all_down: drop is silent");
        }
    }
}
