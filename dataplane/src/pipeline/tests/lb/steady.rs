//! The steady path (`steady_frame`) against the general one: the same frames through a rig
//! that takes it and one that sends every packet the general way must leave the same frames,
//! counters and connections, whatever the TTLs, MTUs, neighbours and backend changes.

use proptest::prelude::*;

use super::burst::{frame_for, pkt, spec, Pkt, CLIENT};
use super::*;

/// A client behind dp0's gateway (the snapshot's static route): replies to it take the MAC
/// kept for that route.
const REMOTE_CLIENT: &str = "203.0.113.7";

/// A frame with its TTL set to `ttl` and its IPv4 header checksum redone.
fn with_ttl(mut f: Vec<u8>, ttl: u8) -> Vec<u8> {
    if f.len() >= 34 && f[12..14] == [8, 0] {
        f[14 + 8] = ttl;
        f[24..26].fill(0);
        let sum = checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&sum.to_be_bytes());
    }
    f
}

/// What may happen between two frames.
#[derive(Clone, Debug)]
enum Step {
    /// A frame with this TTL, from or to a client on dp0's network or behind its gateway.
    Frame(Pkt, u8, bool),
    /// dp0 and dp1 get these MTUs.
    Mtus([u16; 2]),
    /// Backend 1's MAC changes (a neighbour the cores keep the MAC of).
    NewMac,
    /// Backend 1 leaves its service (with reset, `spec`'s).
    RemoveBackend,
    /// The clock moves on this many ms, and the timers run.
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let ttl = prop::sample::select(vec![64u8, 2, 1, 0]);
    let mtu = prop::sample::select(vec![1500u16, 60, 40]);
    prop_oneof![
        20 => (pkt(), ttl, prop::bool::ANY).prop_map(|(p, ttl, remote)| Step::Frame(p, ttl, remote)),
        1 => (mtu.clone(), mtu).prop_map(|(a, b)| Step::Mtus([a, b])),
        1 => Just(Step::NewMac),
        1 => Just(Step::RemoveBackend),
        1 => prop::sample::select(vec![10u64, 30_000, 400_000]).prop_map(Step::Wait),
    ]
}

/// Runs `steps` through a rig on the steady path and one without it; asserts both did the same.
fn check(mode: FwdMode, steps: &[Step]) {
    let limits = LbLimits { lport_min: 5000, lport_max: 5003, ..LbLimits::default() };
    let spec = spec(mode);
    let (mut steady, mut general) = (Rig::lb(&spec, limits), Rig::lb(&spec, limits));
    general.ctx.general_only = true;
    for (i, s) in steps.iter().enumerate() {
        for rig in [&mut steady, &mut general] {
            let out = match s {
                Step::Frame(p, ttl, remote) => {
                    let (port, buf) = frame_for(mode, p, if *remote { REMOTE_CLIENT } else { CLIENT });
                    rig.rx(port, with_ttl(buf, *ttl))
                }
                Step::Mtus(mtus) => {
                    rig.set_mtus(*mtus);
                    Vec::new()
                }
                Step::NewMac => {
                    let n = NeighLearned { port: 1, ip: ip4("198.51.100.11").into(), mac: B2_MAC };
                    rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
                    std::mem::take(&mut rig.sent.0)
                }
                Step::RemoveBackend => {
                    rig.set_services(services(&spec, &[(1, 101, true)]));
                    Vec::new()
                }
                Step::Wait(ms) => {
                    rig.now += ms;
                    rig.timers()
                }
            };
            rig.sent.0 = out;
        }
        assert_eq!(steady.sent.0, general.sent.0, "step {i} {s:?}: frames sent");
        assert_eq!(steady.state(), general.state(), "step {i} {s:?}: counters and connections");
    }
}

#[test]
fn established_packets_with_the_ttl_running_out_too_big_and_to_a_new_mac() {
    for mode in [FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun] {
        for remote in [false, true] {
            let c = |flags, ttl| Step::Frame(Pkt::Client { cport: 40000, flags, udp: false }, ttl, remote);
            let r = |flags, ttl| Step::Frame(Pkt::Reply { b: 1, cport: 40000, lport: 5000, flags }, ttl, remote);
            let steps = [
                c(SYN, 64),
                r(SYN_ACK, 64),
                c(ACK, 64),
                c(ACK, 2),
                c(ACK, 1),
                r(ACK, 64),
                r(ACK, 1),
                Step::Mtus([40, 40]),
                c(ACK, 64),
                r(ACK, 64),
                Step::Mtus([1500, 1500]),
                Step::NewMac,
                c(ACK, 64),
                Step::Wait(400_000),
                c(ACK, 64),
                Step::RemoveBackend,
                c(ACK, 64),
            ];
            check(mode, &steps);
        }
    }
}

#[test]
fn the_steady_path_takes_established_packets() {
    // Not only equal: taken. An established NAT packet leaves rewritten, with its TTL one less.
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b""));
    let (id, _) = rig
        .ctx
        .lb
        .conns
        .lookup(&ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport: 40000, dport: 80, proto: IpProtocol::TCP })
        .expect("the connection");
    assert!(rig.ctx.lb.conns.steady(id, Dir::Original).is_some(), "ESTABLISHED: steady");
    rig.now += 5_000;
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b"data"));
    assert_eq!(out.len(), 1);
    assert_eq!(parse(&out[0].1), (ip4("192.0.2.2"), 40000, ip4("198.51.100.11"), 8080, 63));
    let timeout = u64::from(rig.snap.services.timeouts.established_ms);
    assert_eq!(rig.ctx.lb.conns.expires_in_ms(id, rig.now), timeout, "its deadline moved on");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_steady_path_does_what_the_general_one_does(
        mode in prop::sample::select(vec![FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun]),
        steps in prop::collection::vec(step(), 1..120),
    ) {
        check(mode, &steps);
    }
}
