//! `process_burst` against `process_frame`: the same frames, in bursts or one by one, must
//! leave the same frames, counters and connections, however the bursts cut the sequence and
//! whatever the frames of one burst do to each other's connections (the burst's prefetch hints
//! go stale as earlier frames insert and remove connections).

use proptest::prelude::*;

use super::*;
use crate::lb::ConnQuery;

/// Counters by name, connections with their expiry, per-backend counters, local ports in use.
pub(super) type State = (Vec<(String, u64)>, Vec<(crate::conn::Conn, u64)>, Vec<[u64; 7]>, Vec<[u64; 2]>);

impl Rig {
    /// Frames through `process_burst` in one call; what left, in order.
    pub(super) fn rx_burst(&mut self, frames: Vec<(u16, Vec<u8>)>) -> Vec<(u16, Vec<u8>)> {
        let frames = frames.into_iter().map(|(port, buf)| TestFrame { buf, port });
        self.ctx.process_burst(&self.snap, self.now, frames, &mut self.pool, &mut self.sent);
        std::mem::take(&mut self.sent.0)
    }

    /// Everything a frame can change besides what leaves: counters and connections.
    pub(super) fn state(&self) -> State {
        let query = ConnQuery { limit: usize::MAX, ..Default::default() };
        let (conns, _) = self.ctx.lb.dump(&query, self.now);
        let lb = &self.ctx.lb.counters;
        let backends = lb
            .backends
            .iter()
            .map(|c| {
                [&c.conns, &c.in_packets, &c.out_packets, &c.in_bytes, &c.out_bytes, &c.active, &c.inactive]
                    .map(|c| c.get())
            })
            .collect();
        let laddrs = lb.laddrs.iter().map(|c| [c.tcp_in_use.get(), c.udp_in_use.get()]).collect();
        (self.ctx.counters.snapshot(), conns.iter().map(|v| (v.conn, v.expires_ms)).collect(), backends, laddrs)
    }
}

pub(super) const CLIENT: &str = "192.0.2.2";
pub(super) const LADDR: &str = "198.51.100.1";

/// A frame of the small world the property test draws from: few client ports, so tuples
/// repeat and connections open, close and reopen within a burst.
#[derive(Clone, Debug)]
pub(super) enum Pkt {
    /// Client to the VIP (TCP, or UDP to a TCP service).
    Client {
        cport: u16,
        flags: u8,
        udp: bool,
    },
    /// Backend `b` (1 or 2) back to the client (NAT) or to a local port (FullNAT).
    Reply {
        b: u8,
        cport: u16,
        lport: u16,
        flags: u8,
    },
    /// Not load balancing: an echo request to us, an ARP request, a frame cut short.
    Echo,
    Arp,
    Truncated {
        cport: u16,
        len: usize,
    },
}

fn frame(mode: FwdMode, p: &Pkt) -> (u16, Vec<u8>) {
    frame_for(mode, p, CLIENT)
}

/// `frame`, the client's address `client` (CLIENT, or one behind a gateway).
pub(super) fn frame_for(mode: FwdMode, p: &Pkt, client: &str) -> (u16, Vec<u8>) {
    match *p {
        Pkt::Client { cport, flags, udp } => {
            (0, l4(CLIENT_MAC, OUR_MAC, client, cport, VIP, 80, if udp { 17 } else { 6 }, flags, b"x"))
        }
        Pkt::Reply { b, cport, lport, flags } => {
            let (mac, addr) = if b == 1 { (B1_MAC, "198.51.100.11") } else { (B2_MAC, "198.51.100.12") };
            let (dst, dport) = if mode == FwdMode::FullNat { (LADDR, lport) } else { (client, cport) };
            (1, l4(mac, OUR_MAC1, addr, 8080, dst, dport, 6, flags, b""))
        }
        Pkt::Echo => (0, super::super::echo_v4(CLIENT_MAC, CLIENT, "192.0.2.1", 64)),
        Pkt::Arp => (0, super::super::arp(1, CLIENT_MAC, CLIENT, MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST)),
        Pkt::Truncated { cport, len } => {
            let mut f = l4(CLIENT_MAC, OUR_MAC, CLIENT, cport, VIP, 80, 6, ACK, b"");
            f.truncate(len);
            (0, f)
        }
    }
}

pub(super) fn pkt() -> impl Strategy<Value = Pkt> {
    let cport = 40000u16..40004;
    let flags = prop::sample::select(vec![SYN, ACK, SYN_ACK, FIN_ACK, 0x04, 0x14]);
    prop_oneof![
        6 => (cport.clone(), flags.clone(), prop::bool::weighted(0.1))
            .prop_map(|(cport, flags, udp)| Pkt::Client { cport, flags, udp }),
        4 => (1u8..=2, cport.clone(), 5000u16..5004, flags)
            .prop_map(|(b, cport, lport, flags)| Pkt::Reply { b, cport, lport, flags }),
        1 => Just(Pkt::Echo),
        1 => Just(Pkt::Arp),
        1 => (cport, 14usize..54).prop_map(|(cport, len)| Pkt::Truncated { cport, len }),
    ]
}

pub(super) fn spec(mode: FwdMode) -> Spec {
    let backends = vec![backend(1, 1), backend(2, 2)];
    Spec { proto: IpProtocol::TCP, mode, tunnel: Tunnel::default(), persistence_ms: 0, reset: true, backends }
}

/// Runs `packets` through two rigs, one frame at a time and in bursts cut at `cuts`, removing
/// backend 1 (with reset) after `remove_after` frames; asserts both did the same.
fn check(mode: FwdMode, packets: &[Pkt], cuts: &[usize], remove_after: usize) {
    let limits = LbLimits { lport_min: 5000, lport_max: 5003, ..LbLimits::default() };
    let spec = spec(mode);
    let (mut one, mut burst) = (Rig::lb(&spec, limits), Rig::lb(&spec, limits));
    let mut removed = false;
    let (mut out_one, mut out_burst) = (Vec::new(), Vec::new());
    let mut at = 0;
    let mut cuts = cuts.iter().cycle();
    while at < packets.len() {
        if !removed && at >= remove_after {
            let gone = services(&spec, &[(1, 101, true)]);
            one.set_services(gone.clone());
            burst.set_services(gone);
            removed = true;
        }
        let end = (at + cuts.next().copied().unwrap_or(1)).min(packets.len()).max(at + 1);
        let end = if !removed && remove_after > at { end.min(remove_after) } else { end };
        let frames: Vec<_> = packets[at..end].iter().map(|p| frame(mode, p)).collect();
        for (port, buf) in frames.clone() {
            out_one.extend(one.rx(port, buf));
        }
        out_burst.extend(burst.rx_burst(frames));
        at = end;
    }
    assert_eq!(out_burst, out_one, "frames sent");
    assert_eq!(burst.state(), one.state(), "counters and connections");
}

#[test]
fn a_connection_opened_and_used_within_one_burst() {
    for mode in [FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun] {
        let c = |flags| Pkt::Client { cport: 40000, flags, udp: false };
        let r = |flags| Pkt::Reply { b: 1, cport: 40000, lport: 5000, flags };
        let packets = [c(SYN), r(SYN_ACK), c(ACK), c(ACK), r(ACK), c(FIN_ACK), r(FIN_ACK), c(ACK), c(SYN), c(ACK)];
        check(mode, &packets, &[40], usize::MAX);
        let mut rig = Rig::lb(&spec(mode), LbLimits { lport_min: 5000, lport_max: 5003, ..LbLimits::default() });
        let out = rig.rx_burst(packets[..3].iter().map(|p| frame(mode, p)).collect());
        let expected = if mode.is_one_way() { 2 } else { 3 };
        assert_eq!(out.len(), expected, "{mode:?}: SYN, SYN-ACK (two-way modes) and ACK forwarded");
    }
}

#[test]
fn a_reset_connection_and_its_reused_slot_within_one_burst() {
    // Backend 1 is removed with reset before the burst: the first ACK resets the connection
    // (its slot is freed), the SYN takes that slot for a new connection (on backend 2), and the
    // old tuple's reply from backend 1, whose hint names the reused slot, must not match it.
    for mode in [FwdMode::Nat, FwdMode::FullNat] {
        let c = |cport, flags| Pkt::Client { cport, flags, udp: false };
        let r = |b, flags| Pkt::Reply { b, cport: 40000, lport: 5000, flags };
        let packets = [c(40000, SYN), r(1, SYN_ACK), c(40000, ACK), c(40000, ACK), c(40000, SYN), r(1, ACK), r(2, ACK)];
        check(mode, &packets, &[3, 32], 3);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn bursts_do_what_single_frames_do(
        mode in prop::sample::select(vec![FwdMode::Nat, FwdMode::FullNat, FwdMode::Dr, FwdMode::Tun]),
        packets in prop::collection::vec(pkt(), 1..120),
        cuts in prop::collection::vec(1usize..=40, 1..8),
        remove_after in 0usize..160,
    ) {
        check(mode, &packets, &cuts, remove_after);
    }
}
