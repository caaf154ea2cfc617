//! IPv6 services through the pipeline: NAT and FullNAT both ways, checksums recomputed from
//! scratch, the IPv6 connection table and counters; packet too big; ND for the VIP.

use std::net::Ipv6Addr;

use super::*;
use crate::service::Service6;
use crate::snapshot::{LocalAddr, PortL3};
use crate::testkit::packet::TcpRepr;
use crate::wire::TcpFlags;
use crate::xlate::v6::l4_checksum_ok_v6;

const VIP6: &str = "2001:db8:1::100";
const CLIENT6: &str = "2001:db8:1::2";
const LADDR6: &str = "2001:db8:2::200";

fn backend6(n: u8, slot: u16) -> Backend<Ipv6Addr> {
    Backend {
        addr: ip6(&format!("2001:db8:2::1{n}")),
        port: 8080,
        weight: 1,
        state: BackendState::Active,
        slot,
        gen: 100 + u32::from(slot),
    }
}

fn service6(mode: FwdMode, proto: IpProtocol) -> Service6 {
    let backends = vec![backend6(1, 1), backend6(2, 2)];
    Service6 {
        slot: 0,
        gen: 1,
        vip: ip6(VIP6),
        port: 80,
        proto,
        sched: crate::sched::SchedKind::Rr,
        mode,
        tunnel: Tunnel::default(),
        persistence_ms: 0,
        reset_on_removal: false,
        reset_when_all_down: false,
        syn_proxy: crate::service::SynProxy::Off,
        client_address: Default::default(),
        pickup: false,
        candidates: backends.iter().map(|b| crate::sched::Candidate { weight: b.weight, schedulable: true }).collect(),
        backends,
        table: None,
        laddrs: if mode == FwdMode::FullNat { vec![Laddr { addr: ip6(LADDR6), slot: 0, gen: 1 }] } else { vec![] },
    }
}

/// dp0 2001:db8:1::1/64 (the client's side), dp1 2001:db8:2::1/64 (the backends'), dp1's MTU
/// `mtu1`; the one service, its neighbours known.
fn rig6(mode: FwdMode, proto: IpProtocol, mtu1: u16) -> Rig {
    let mut rig = Rig::new();
    let port = |name: &str, mac, mtu| PortL3 { name: name.into(), mac, mtu, kernel: None };
    let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
    let mut slots = vec![crate::service::BackendSlot::default(); 16];
    for s in [1, 2] {
        slots[s] = crate::service::BackendSlot { gen: 100 + s as u32, live: true, ..Default::default() };
    }
    let timeouts = crate::conn::Timeouts { udp_ms: 5_000, ..Default::default() };
    let services = Services::new(vec![], slots, timeouts).with_v6(vec![service6(mode, proto)]);
    rig.snap = Snapshot::build(
        vec![(0, port("dp0", OUR_MAC, 1500)), (1, port("dp1", OUR_MAC1, mtu1))],
        vec![la(0, "2001:db8:1::1/64"), la(1, "2001:db8:2::1/64")],
        vec![],
    )
    .with_services(Arc::new(services));
    rig.ctx.snapshot_changed(&rig.snap);
    for (port, ip, mac) in [(0, CLIENT6, CLIENT_MAC), (1, "2001:db8:2::11", B1_MAC), (1, "2001:db8:2::12", B2_MAC)] {
        let n = NeighLearned { port, ip: ip.parse().unwrap(), mac };
        rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    }
    rig
}

fn frame6(src_mac: MacAddr, dst_mac: MacAddr, src: &str, dst: &str, l4: L4Repr) -> Vec<u8> {
    EthRepr { dst: dst_mac, src: src_mac }.frame_v6(&Ipv6Repr::new(ip6(src), ip6(dst)), &l4)
}

/// (src, sport, dst, dport, hop limit) of an IPv6 TCP/UDP frame, its checksum checked from
/// scratch.
fn parse6(f: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, u8) {
    assert!(l4_checksum_ok_v6(&f[14..]), "transport checksum");
    let p = crate::xlate::v6::parse_v6(&f[14..]).unwrap();
    (p.tuple.src, p.tuple.sport, p.tuple.dst, p.tuple.dport, f[14 + 7])
}

#[test]
fn nat6_tcp_both_ways() {
    let mut rig = rig6(FwdMode::Nat, IpProtocol::TCP, 1500);
    let syn = TcpRepr::new(40000, 80, TcpFlags::SYN);
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(syn)));
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!((*port, &f[0..6]), (1, &B1_MAC.0[..]));
    assert_eq!(parse6(f), (ip6(CLIENT6), 40000, ip6("2001:db8:2::11"), 8080, 63));

    let syn_ack = TcpRepr::new(8080, 40000, TcpFlags::SYN | TcpFlags::ACK);
    let out = rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", CLIENT6, L4Repr::Tcp(syn_ack)));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, &out[0].1[0..6]), (0, &CLIENT_MAC.0[..]));
    assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 40000, 63));

    let ack = TcpRepr::new(40000, 80, TcpFlags::ACK).with_payload(b"GET / HTTP/1.0\r\n\r\n");
    rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(ack)));
    assert_eq!(rig.ctx.lb.conns6.len(), 1);
    assert!(rig.ctx.lb.conns.is_empty(), "the IPv4 table is not used");
    let (_, c) = rig.ctx.lb.conns6.iter().next().unwrap();
    assert_eq!(c.state, TcpState::Established);
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 1);
    assert_eq!((rig.event(Event::LbInPackets), rig.event(Event::LbOutPackets)), (2, 1));
    assert_eq!(rig.ctx.lb.counters.backends[1].in_packets.get(), 2);

    // The next connection goes to the other backend (round robin); a stray ACK opens none.
    let out =
        rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40001, 80, TcpFlags::SYN))));
    assert_eq!(parse6(&out[0].1).2, ip6("2001:db8:2::12"));
    assert!(rig
        .rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40002, 80, TcpFlags::ACK))))
        .is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);
}

#[test]
fn fullnat6_udp_both_ways_and_expiry() {
    let mut rig = rig6(FwdMode::FullNat, IpProtocol::UDP, 1500);
    let q = UdpRepr { sport: 5000, dport: 80, payload: b"question" };
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Udp(q)));
    assert_eq!(out.len(), 1);
    let (src, lport, dst, dport, _) = parse6(&out[0].1);
    assert_eq!((src, dst, dport), (ip6(LADDR6), ip6("2001:db8:2::11"), 8080));
    let a = UdpRepr { sport: 8080, dport: lport, payload: b"answer" };
    let out = rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", LADDR6, L4Repr::Udp(a)));
    assert_eq!(out.len(), 1);
    assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 5000, 63));
    assert_eq!(rig.ctx.lb.counters.laddrs[0].udp_in_use.get(), 1);
    // Idle past the UDP timeout: expired, its local port given back.
    rig.now += 6_000;
    for _ in 0..64 {
        rig.timers();
    }
    assert!(rig.ctx.lb.conns6.is_empty());
    assert_eq!(rig.ctx.lb.counters.laddrs[0].udp_in_use.get(), 0);
    assert_eq!(rig.event(Event::ConnsExpired), 1);
}

#[test]
fn too_big_for_the_egress_tells_the_client() {
    let mut rig = rig6(FwdMode::Nat, IpProtocol::UDP, 1280);
    let payload = vec![7u8; 1300];
    let q = UdpRepr { sport: 5000, dport: 80, payload: &payload };
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Udp(q)));
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!((*port, f.len()), (0, 14 + 1280));
    let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.next_header()), (ip6(VIP6), ip6(CLIENT6), IpProtocol::ICMPV6));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.mtu()), (Icmpv6Type::PACKET_TOO_BIG, 1280));
    assert!(icmp.verify_checksum(ip6(VIP6), ip6(CLIENT6)));
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::Icmp6PacketTooBigSent)), (1, 1));
}

#[test]
fn neighbour_solicitation_for_the_vip_and_laddr_is_answered() {
    let mut rig = rig6(FwdMode::FullNat, IpProtocol::TCP, 1500);
    for (port, target, mac) in [(0u16, VIP6, OUR_MAC), (1, LADDR6, OUR_MAC1)] {
        let dst = crate::snapshot::solicited_node(ip6(target));
        let frame = nd(false, CLIENT6, dst, target, CLIENT_MAC);
        let out = rig.rx(port, frame);
        assert_eq!(out.len(), 1, "an advert for {target}");
        let ip = Ipv6Packet::new_checked(&out[0].1[14..]).unwrap();
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((icmp.msg_type(), icmp.ndisc_target()), (Icmpv6Type::NEIGHBOR_ADVERT, Some(ip6(target))));
        assert_eq!(icmp.target_link_addr().unwrap(), Some(mac));
    }
}

#[test]
fn tun6_wraps_the_client_packet_in_ipv6_and_dr6_keeps_it() {
    for (mode, encap, overhead) in [
        (FwdMode::Tun, crate::service::Encap::Ipip, 40),
        (FwdMode::Tun, crate::service::Encap::Gue { port: 6080 }, 48),
        (FwdMode::Dr, crate::service::Encap::Ipip, 0),
    ] {
        let mut rig = rig6(mode, IpProtocol::TCP, 1500);
        let mut services = (*rig.snap.services).clone();
        let tunnel = Tunnel { encap, ..Tunnel::default() };
        for s in &mut services.backend_slots {
            s.tunnel = tunnel;
        }
        rig.snap = rig.snap.clone().with_services(Arc::new(services));
        rig.ctx.snapshot_changed(&rig.snap);
        let syn = frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40000, 80, TcpFlags::SYN)));
        let out = rig.rx(0, syn.clone());
        assert_eq!(out.len(), 1, "{mode:?} {encap:?}");
        let (port, f) = &out[0];
        assert_eq!((*port, &f[0..6]), (1, &B1_MAC.0[..]));
        assert_eq!(f.len(), syn.len() + overhead);
        assert_eq!(&f[14 + overhead..], &syn[14..], "the client's packet, unchanged");
        if overhead > 0 {
            let outer = Ipv6Packet::new_checked(&f[14..]).unwrap();
            assert_eq!((outer.src_addr(), outer.dst_addr()), (ip6("2001:db8:2::1"), ip6("2001:db8:2::11")));
            let nh = if overhead == 40 { IpProtocol::IPV6_IN_IP } else { IpProtocol::UDP };
            assert_eq!(outer.next_header(), nh);
        }
        // Only the client's side is tracked; its ACK establishes.
        let ack = frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40000, 80, TcpFlags::ACK)));
        rig.rx(0, ack);
        let (_, c) = rig.ctx.lb.conns6.iter().next().unwrap();
        assert_eq!(c.state, TcpState::Established);
    }
}

#[test]
fn snat6_gives_outbound_connections_our_address() {
    let mut rig = rig6(FwdMode::Nat, IpProtocol::UDP, 1500);
    let rule = crate::service::SnatRule6 {
        prefix: ip6("2001:db8:2::"),
        prefix_len: 64,
        out_port: 0,
        addrs: vec![Laddr { addr: ip6("2001:db8:1::50"), slot: 5, gen: 9 }],
    };
    let services = (*rig.snap.services).clone();
    let list = services.v6.list.clone();
    rig.snap = rig.snap.clone().with_services(Arc::new(services.with_v6_snat(list, vec![rule])));
    rig.ctx.snapshot_changed(&rig.snap);
    let q = UdpRepr { sport: 7000, dport: 53, payload: b"q" };
    let out = rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", CLIENT6, L4Repr::Udp(q)));
    assert_eq!(out.len(), 1);
    let (src, lport, dst, dport, _) = parse6(&out[0].1);
    assert_eq!((out[0].0, src, dst, dport), (0, ip6("2001:db8:1::50"), ip6(CLIENT6), 53));
    let a = UdpRepr { sport: 53, dport: lport, payload: b"a" };
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, "2001:db8:1::50", L4Repr::Udp(a)));
    assert_eq!(out.len(), 1);
    assert_eq!(parse6(&out[0].1), (ip6(CLIENT6), 53, ip6("2001:db8:2::11"), 7000, 63));
    assert_eq!((rig.event(Event::SnatOutPackets), rig.event(Event::SnatInPackets)), (1, 1));
}

#[test]
fn fullnat6_sends_the_proxy_header_and_shifts_sequence_numbers() {
    use crate::xlate::clientaddr::ClientAddr;
    let mut rig = rig6(FwdMode::FullNat, IpProtocol::TCP, 1500);
    let mut svc = service6(FwdMode::FullNat, IpProtocol::TCP);
    svc.client_address = ClientAddr::ProxyV1;
    let services = (*rig.snap.services).clone().with_v6(vec![svc]);
    rig.snap = rig.snap.clone().with_services(Arc::new(services));
    rig.ctx.snapshot_changed(&rig.snap);
    let line = b"PROXY TCP6 2001:db8:1::2 2001:db8:1::100 40000 80\r\n";
    let n = line.len() as u32;
    let word = |f: &[u8], at: usize| u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
    let (seq_at, ack_at) = (14 + 40 + 4, 14 + 40 + 8);
    let syn = TcpRepr { seq: 100, ..TcpRepr::new(40000, 80, TcpFlags::SYN) };
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(syn)));
    let lport = parse6(&out[0].1).1;
    let mss = [2, 4, 0x05, 0xa0];
    let sa = TcpRepr { seq: 9000, ack: 101, options: &mss, ..TcpRepr::new(8080, lport, TcpFlags::SYN | TcpFlags::ACK) };
    let out = rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", LADDR6, L4Repr::Tcp(sa)));
    parse6(&out[0].1);
    assert_eq!(u16::from_be_bytes([out[0].1[14 + 60 + 2], out[0].1[14 + 60 + 3]]), 0x05a0 - n as u16);
    let req = TcpRepr { seq: 101, ack: 9001, ..TcpRepr::new(40000, 80, TcpFlags::ACK) }.with_payload(b"GET /");
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(req)));
    let f = &out[0].1;
    assert_eq!(parse6(f).2, ip6("2001:db8:2::11"));
    assert_eq!(word(f, seq_at), 101);
    assert_eq!(&f[14 + 60..14 + 60 + line.len()], line);
    assert_eq!(&f[14 + 60 + line.len()..], b"GET /");
    let ack = TcpRepr { seq: 9001, ack: 101 + n + 5, ..TcpRepr::new(8080, lport, TcpFlags::ACK) };
    let out = rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", LADDR6, L4Repr::Tcp(ack)));
    parse6(&out[0].1);
    assert_eq!(word(&out[0].1, ack_at), 106);
    let more = TcpRepr { seq: 106, ack: 9001, ..TcpRepr::new(40000, 80, TcpFlags::ACK) }.with_payload(b"x");
    let out = rig.rx(0, frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(more)));
    parse6(&out[0].1);
    assert_eq!(word(&out[0].1, seq_at), 106 + n);
    assert_eq!(rig.event(Event::ClientAddrSent), 1);
}

#[test]
fn nat6_kept_next_hop_macs_follow_neighbour_changes() {
    // The backend's MAC is kept per backend slot (it is on dp1's network): a change another
    // core learned, a stale entry and a removed one each take effect on the next packet.
    const B1_NEW: MacAddr = MacAddr([2, 0xb1, 0, 0, 0, 0x99]);
    let mut rig = rig6(FwdMode::Nat, IpProtocol::TCP, 1500);
    let tcp = |flags| frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40000, 80, flags)));
    let syn_ack = TcpRepr::new(8080, 40000, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(&rig.rx(0, tcp(TcpFlags::SYN))[0].1[0..6], &B1_MAC.0);
    rig.rx(1, frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", CLIENT6, L4Repr::Tcp(syn_ack)));
    assert_eq!(&rig.rx(0, tcp(TcpFlags::ACK))[0].1[0..6], &B1_MAC.0);

    let n = NeighLearned { port: 1, ip: "2001:db8:2::11".parse().unwrap(), mac: B1_NEW };
    rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    assert_eq!(&rig.rx(0, tcp(TcpFlags::ACK))[0].1[0..6], &B1_NEW.0);

    // Stale: the packet goes, and a unicast solicitation re-confirms the next hop.
    rig.now += rig.ctx.neigh.params().reachable_ms;
    let out = rig.rx(0, tcp(TcpFlags::ACK));
    assert_eq!(out.len(), 2, "the packet and a solicitation: {out:?}");
    assert_eq!(&out[0].1[0..6], &B1_NEW.0);
    assert_eq!((out[1].0, &out[1].1[0..6], &out[1].1[12..14]), (1, &B1_NEW.0[..], &[0x86, 0xdd][..]));

    // The entry goes: the next packet waits for a multicast solicitation's answer.
    rig.now += rig.ctx.neigh.params().stale_ms;
    rig.timers();
    rig.timers();
    let out = rig.rx(0, tcp(TcpFlags::ACK));
    assert_eq!(out.len(), 1, "only a solicitation: {out:?}");
    assert_eq!((out[0].0, &out[0].1[0..2], &out[0].1[12..14]), (1, &[0x33, 0x33][..], &[0x86, 0xdd][..]));
}

#[test]
fn nat6_backend_behind_a_gateway_goes_to_the_gateway_and_follows_the_snapshot() {
    // Backend 1 is on 2001:db8:3::/64, reached through 2001:db8:2::12 (B2_MAC) on dp1: the
    // snapshot's hop for its slot says so, and a new snapshot without the route drops its
    // packets as having none.
    let mut rig = rig6(FwdMode::Nat, IpProtocol::TCP, 1500);
    let mut svc = service6(FwdMode::Nat, IpProtocol::TCP);
    svc.backends[0].addr = ip6("2001:db8:3::11");
    let services = Arc::new(
        Services::new(vec![], rig.snap.services.backend_slots.clone(), rig.snap.services.timeouts).with_v6(vec![svc]),
    );
    let port = |name: &str, mac| PortL3 { name: name.into(), mac, mtu: 1500, kernel: None };
    let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
    let build = |routes| {
        Snapshot::build(
            vec![(0, port("dp0", OUR_MAC)), (1, port("dp1", OUR_MAC1))],
            vec![la(0, "2001:db8:1::1/64"), la(1, "2001:db8:2::1/64")],
            routes,
        )
        .with_services(services.clone())
    };
    let via = Route {
        prefix: "2001:db8:3::/64".parse().unwrap(),
        via: Some("2001:db8:2::12".parse().unwrap()),
        port: 1,
        origin: RouteOrigin::Static,
    };
    rig.snap = build(vec![via]);
    rig.ctx.snapshot_changed(&rig.snap);
    let hop = rig.snap.backend_hop6(1, ip6("2001:db8:3::11")).expect("a hop for slot 1");
    assert_eq!((hop.port, hop.next_hop, hop.on_link), (1, ip6("2001:db8:2::12"), false));
    assert!(rig.snap.backend_hop6(1, ip6("2001:db8:2::11")).is_none(), "only for the slot's address");

    let tcp = |flags| frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, L4Repr::Tcp(TcpRepr::new(40000, 80, flags)));
    for flags in [TcpFlags::SYN, TcpFlags::ACK] {
        let out = rig.rx(0, tcp(flags));
        assert_eq!((out[0].0, &out[0].1[0..6]), (1, &B2_MAC.0[..]), "to the gateway's MAC");
        assert_eq!(parse6(&out[0].1).2, ip6("2001:db8:3::11"));
    }
    rig.snap = build(vec![]);
    rig.ctx.snapshot_changed(&rig.snap);
    assert!(rig.rx(0, tcp(TcpFlags::ACK)).is_empty());
    assert_eq!(rig.drops(DropReason::NoRoute), 1);
}

#[test]
fn the_steady_path_does_what_the_general_one_does_for_ipv6() {
    // The same frames through a rig on the steady path and one without it: the same frames
    // out, counters and connections, through hop limits running out, a MAC change, a stale
    // neighbour, an idle period, a FIN and the backend's removal with reset, for NAT and
    // FullNAT, TCP and UDP.
    for (mode, proto) in
        [(FwdMode::Nat, IpProtocol::TCP), (FwdMode::FullNat, IpProtocol::TCP), (FwdMode::FullNat, IpProtocol::UDP)]
    {
        let (mut steady, mut general) = (rig6(mode, proto, 1500), rig6(mode, proto, 1500));
        general.ctx.general_only = true;
        let l4 = |flags: TcpFlags, sport: u16, dport: u16| match proto {
            IpProtocol::TCP => L4Repr::Tcp(TcpRepr::new(sport, dport, flags).with_payload(b"data")),
            _ => L4Repr::Udp(UdpRepr { sport, dport, payload: b"data" }),
        };
        let hop_limit = |mut f: Vec<u8>, hops: u8| {
            f[14 + 7] = hops;
            f
        };
        let mut lport = 40000;
        for step in 0..14 {
            let mut out = Vec::new();
            for rig in [&mut steady, &mut general] {
                let client =
                    |flags, hops| hop_limit(frame6(CLIENT_MAC, OUR_MAC, CLIENT6, VIP6, l4(flags, 40000, 80)), hops);
                let (ldst, lp) = if mode == FwdMode::FullNat { (LADDR6, lport) } else { (CLIENT6, 40000) };
                let reply = |flags, hops| {
                    hop_limit(frame6(B1_MAC, OUR_MAC1, "2001:db8:2::11", ldst, l4(flags, 8080, lp)), hops)
                };
                let sent = match step {
                    0 => rig.rx(0, client(TcpFlags::SYN, 64)),
                    1 => rig.rx(1, reply(TcpFlags::SYN | TcpFlags::ACK, 64)),
                    2 | 3 => rig.rx(0, client(TcpFlags::ACK, 64)),
                    4 => rig.rx(1, reply(TcpFlags::ACK, 64)),
                    5 => rig.rx(0, client(TcpFlags::ACK, 1)),
                    6 => rig.rx(1, reply(TcpFlags::ACK, 2)),
                    7 => {
                        let n = NeighLearned { port: 1, ip: "2001:db8:2::11".parse().unwrap(), mac: B2_MAC };
                        rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
                        let mut sent = std::mem::take(&mut rig.sent.0);
                        sent.extend(rig.rx(0, client(TcpFlags::ACK, 64)));
                        sent
                    }
                    8 => {
                        rig.now += rig.ctx.neigh.params().reachable_ms;
                        rig.rx(0, client(TcpFlags::ACK, 64))
                    }
                    9 => {
                        rig.now += 3_000;
                        let mut sent = rig.timers();
                        sent.extend(rig.rx(1, reply(TcpFlags::ACK, 64)));
                        sent
                    }
                    10 => rig.rx(0, client(TcpFlags::ACK | TcpFlags::FIN, 64)),
                    11 => rig.rx(1, reply(TcpFlags::ACK, 64)),
                    12 => {
                        let mut services = (*rig.snap.services).clone();
                        services.backend_slots[1].live = false;
                        services.backend_slots[1].reset = true;
                        rig.snap = rig.snap.clone().with_services(Arc::new(services));
                        rig.ctx.snapshot_changed(&rig.snap);
                        rig.rx(0, client(TcpFlags::ACK, 64))
                    }
                    _ => rig.rx(0, client(TcpFlags::ACK, 64)),
                };
                if step == 0 && mode == FwdMode::FullNat {
                    lport = parse6(&sent[0].1).1;
                }
                out.push((
                    sent,
                    rig.ctx.counters.snapshot(),
                    rig.ctx.lb.conns6.iter().map(|(_, c)| c).collect::<Vec<_>>(),
                ));
            }
            assert_eq!(out[0], out[1], "{mode:?} {proto:?} step {step}");
        }
    }
}
