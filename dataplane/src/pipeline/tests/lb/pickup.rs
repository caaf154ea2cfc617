//! Mid-flow pickup: a DR/TUN `mh` service opens a connection for a TCP packet other than a
//! SYN, for the backend Maglev picks, so a connection that ECMP moves from another balancer
//! goes on. Two balancers are two rigs whose snapshots were built separately.

use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::conn::ConnKey;
use crate::sched::{backend_key, HashTable, SchedKind};

const RST: u8 = 0x04;

/// A DR or TUN service on VIP:80 with `mh` over backends 198.51.100.11 and .12 (port 80),
/// its Maglev table built here from the backends' keys, as the control plane builds it.
fn mh_services(mode: FwdMode, pickup: bool) -> Arc<Services> {
    let mut spec = Spec {
        proto: IpProtocol::TCP,
        mode,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1), backend(2, 2)],
    };
    for b in &mut spec.backends {
        b.port = 80;
    }
    let base = services(&spec, &[]);
    let mut svc = base.list[0].clone();
    let keys: Vec<u64> =
        svc.backends.iter().map(|b| backend_key(SocketAddr::new(IpAddr::V4(b.addr), b.port))).collect();
    svc.sched = SchedKind::Mh;
    svc.pickup = pickup;
    svc.table = Some(Arc::new(HashTable::maglev(&keys, &[1, 1], 251).unwrap()));
    Arc::new(Services::new(vec![svc], base.backend_slots.clone(), base.timeouts))
}

/// A balancer: the standard rig with the `mh` service.
fn balancer(mode: FwdMode, pickup: bool) -> Rig {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.set_services(mh_services(mode, pickup));
    rig
}

fn frame(client: &str, sport: u16, flags: u8) -> Vec<u8> {
    l4(CLIENT_MAC, OUR_MAC, client, sport, VIP, 80, 6, flags, b"data")
}

fn key(client: &str, sport: u16) -> ConnKey {
    ConnKey { src: ip4(client), dst: ip4(VIP), sport, dport: 80, proto: IpProtocol::TCP }
}

/// The backend and state of the connection entry for `client:sport`, if any.
fn entry(rig: &Rig, client: &str, sport: u16) -> Option<(Ipv4Addr, TcpState)> {
    let (id, _) = rig.ctx.lb.conns.lookup(&key(client, sport))?;
    let conn = rig.ctx.lb.conns.get(id);
    Some((conn.backend, conn.state))
}

#[test]
fn a_mid_flow_packet_opens_the_connection_another_balancer_began() {
    for mode in [FwdMode::Dr, FwdMode::Tun] {
        // Balancer A saw the handshake; ECMP then moves the flow to balancer B, which only
        // ever sees its later segments.
        let (mut a, mut b) = (balancer(mode, true), balancer(mode, true));
        let mut used = std::collections::HashSet::new();
        for i in 0..32u16 {
            let client = format!("192.0.2.{}", 10 + i);
            let sport = 40000 + i;
            assert_eq!(a.rx(0, frame(&client, sport, SYN)).len(), 1, "{mode:?}: A forwards the SYN");
            let (began_with, _) = entry(&a, &client, sport).unwrap();
            let out = b.rx(0, frame(&client, sport, ACK));
            assert_eq!(out.len(), 1, "{mode:?}: B forwards the mid-flow ACK of {client}");
            assert_eq!(out[0].0, 1, "{mode:?}: toward the backends");
            let (picked, state) = entry(&b, &client, sport).expect("B made an entry");
            assert_eq!(picked, began_with, "{mode:?}: {client}:{sport} goes on at the same backend");
            assert_eq!(state, TcpState::Established, "{mode:?}: with the established timeout");
            used.insert(picked);
        }
        assert_eq!(used.len(), 2, "{mode:?}: the flows were spread over both backends");
        assert_eq!(b.event(Event::ConnsPickedUp), 32);
        assert_eq!(b.event(Event::ConnsCreated), 32);
        assert_eq!(a.event(Event::ConnsPickedUp), 0, "a SYN is no pickup");
        assert_eq!(b.drops(DropReason::NoConnection), 0);

        // The entry then carries the rest of the flow like any other.
        let out = b.rx(0, frame("192.0.2.10", 40000, FIN_ACK));
        assert_eq!(out.len(), 1);
        assert_eq!(entry(&b, "192.0.2.10", 40000).unwrap().1, TcpState::FinWait);
        assert_eq!(b.event(Event::ConnsPickedUp), 32);
    }
}

#[test]
fn a_picked_up_fin_or_rst_still_reaches_the_backend() {
    let mut b = balancer(FwdMode::Dr, true);
    assert_eq!(b.rx(0, frame("192.0.2.20", 41000, FIN_ACK)).len(), 1);
    assert_eq!(entry(&b, "192.0.2.20", 41000).unwrap().1, TcpState::FinWait);
    assert_eq!(b.rx(0, frame("192.0.2.21", 41001, RST)).len(), 1);
    assert_eq!(entry(&b, "192.0.2.21", 41001).unwrap().1, TcpState::Close);
    assert_eq!(b.event(Event::ConnsPickedUp), 2);
}

#[test]
fn without_pickup_a_mid_flow_packet_is_dropped() {
    for mode in [FwdMode::Dr, FwdMode::Tun] {
        let mut b = balancer(mode, false);
        assert!(b.rx(0, frame("192.0.2.10", 40000, ACK)).is_empty(), "{mode:?}");
        assert_eq!(entry(&b, "192.0.2.10", 40000), None);
        assert_eq!(b.drops(DropReason::NoConnection), 1);
        assert_eq!(b.event(Event::ConnsPickedUp), 0);
        assert_eq!(b.event(Event::ConnsCreated), 0);
        // A SYN still opens one.
        assert_eq!(b.rx(0, frame("192.0.2.10", 40000, SYN)).len(), 1);
        assert_eq!(b.event(Event::ConnsCreated), 1);
    }
}
