//! NAT64 through the pipeline: an IPv6 client, an IPv6 VIP, IPv4 backends behind an IPv4
//! local address. Frames shrink and grow by 20 bytes, every checksum is checked from scratch,
//! the connection lives in the IPv6 table, and an ICMPv4 error reaches the client as ICMPv6.

use std::net::Ipv6Addr;

use super::*;
use crate::service::Service6;
use crate::snapshot::PortL3;
use crate::testkit::packet::{TcpRepr, UdpRepr};
use crate::wire::TcpFlags;
use crate::xlate::v6::l4_checksum_ok_v6;

const VIP6: &str = "2001:db8:1::100";
const CLIENT6: &str = "2001:db8:1::2";
const LADDR: &str = "198.51.100.200";

fn service64(proto: IpProtocol) -> Service6 {
    let backend = |n: u8, slot: u16| Backend {
        addr: ip4(&format!("198.51.100.1{n}")).to_ipv6_mapped(),
        port: 8080,
        weight: 1,
        state: BackendState::Active,
        slot,
        gen: 100 + u32::from(slot),
    };
    let backends = vec![backend(1, 1), backend(2, 2)];
    Service6 {
        slot: 0,
        gen: 1,
        vip: ip6(VIP6),
        port: 80,
        proto,
        sched: crate::sched::SchedKind::Rr,
        mode: FwdMode::Nat64,
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
        laddrs: vec![Laddr { addr: ip4(LADDR).to_ipv6_mapped(), slot: 0, gen: 1 }],
    }
}

/// dp0 2001:db8:1::1/64 (the client's side, MTU 1500), dp1 198.51.100.1/24 (the backends',
/// MTU `mtu1`); the one NAT64 service, its neighbours known.
fn rig64(proto: IpProtocol, mtu1: u16) -> Rig {
    rig64_with(service64(proto), mtu1)
}

fn rig64_with(service: Service6, mtu1: u16) -> Rig {
    let mut rig = Rig::new();
    let port = |name: &str, mac, mtu| PortL3 { name: name.into(), mac, mtu, kernel: None };
    let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
    let mut slots = vec![crate::service::BackendSlot::default(); 16];
    for s in [1, 2] {
        slots[s] = crate::service::BackendSlot { gen: 100 + s as u32, live: true, ..Default::default() };
    }
    let services = Services::new(vec![], slots, crate::conn::Timeouts::default()).with_v6(vec![service]);
    rig.snap = Snapshot::build(
        vec![(0, port("dp0", OUR_MAC, 1500)), (1, port("dp1", OUR_MAC1, mtu1))],
        vec![la(0, "2001:db8:1::1/64"), la(1, "198.51.100.1/24")],
        vec![],
    )
    .with_services(Arc::new(services));
    rig.ctx.snapshot_changed(&rig.snap);
    for (port, ip, mac) in [(0, CLIENT6, CLIENT_MAC), (1, "198.51.100.11", B1_MAC), (1, "198.51.100.12", B2_MAC)] {
        let n = NeighLearned { port, ip: ip.parse().unwrap(), mac };
        rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    }
    rig
}

fn frame6(l4: L4Repr) -> Vec<u8> {
    EthRepr { dst: OUR_MAC, src: CLIENT_MAC }.frame_v6(&Ipv6Repr::new(ip6(CLIENT6), ip6(VIP6)), &l4)
}

fn reply4(backend: &str, l4: L4Repr) -> Vec<u8> {
    EthRepr { dst: OUR_MAC1, src: B1_MAC }.frame_v4(&Ipv4Repr::new(ip4(backend), ip4(LADDR)), &l4)
}

/// (src, sport, dst, dport, hop limit) of an IPv6 TCP/UDP frame, its checksum checked.
fn parse6(f: &[u8]) -> (Ipv6Addr, u16, Ipv6Addr, u16, u8) {
    assert_eq!(&f[12..14], &[0x86, 0xdd], "IPv6 ethertype");
    assert!(l4_checksum_ok_v6(&f[14..]), "transport checksum");
    let p = crate::xlate::v6::parse_v6(&f[14..]).unwrap();
    assert_eq!(p.end, f.len() - 14, "no trailing bytes");
    (p.tuple.src, p.tuple.sport, p.tuple.dst, p.tuple.dport, f[14 + 7])
}

#[test]
fn nat64_tcp_both_ways_round_robin_and_counted() {
    let mut rig = rig64(IpProtocol::TCP, 1500);
    let syn = frame6(L4Repr::Tcp(TcpRepr::new(40000, 80, TcpFlags::SYN)));
    let out = rig.rx(0, syn.clone());
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!((*port, &f[0..6], &f[6..12]), (1, &B1_MAC.0[..], &OUR_MAC1.0[..]));
    assert_eq!(f.len(), syn.len() - 20, "the IPv4 header is 20 bytes shorter");
    let (src, lport, dst, dport, ttl) = parse(f);
    assert_eq!((src, dst, dport, ttl), (ip4(LADDR), ip4("198.51.100.11"), 8080, 63));
    assert_eq!(f[14 + 6], 0x40, "DF");

    let syn_ack = TcpRepr::new(8080, lport, TcpFlags::SYN | TcpFlags::ACK);
    let reply = reply4("198.51.100.11", L4Repr::Tcp(syn_ack));
    let out = rig.rx(1, reply.clone());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, &out[0].1[0..6]), (0, &CLIENT_MAC.0[..]));
    assert_eq!(out[0].1.len(), reply.len() + 20);
    assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 40000, 63));

    let ack = TcpRepr::new(40000, 80, TcpFlags::ACK).with_payload(b"GET / HTTP/1.0\r\n\r\n");
    let out = rig.rx(0, frame6(L4Repr::Tcp(ack)));
    assert_eq!(parse(&out[0].1).1, lport);
    assert_eq!(rig.ctx.lb.conns6.len(), 1);
    assert!(rig.ctx.lb.conns.is_empty(), "the IPv4 table holds no NAT64 connection");
    let (_, c) = rig.ctx.lb.conns6.iter().next().unwrap();
    assert_eq!(c.state, TcpState::Established);
    assert_eq!(c.nat64(), Some((ip4(LADDR), ip4("198.51.100.11"))));
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 1);
    assert_eq!((rig.event(Event::LbInPackets), rig.event(Event::LbOutPackets)), (2, 1));
    assert_eq!(rig.ctx.lb.counters.backends[1].in_packets.get(), 2);
    assert_eq!(rig.ctx.lb.counters.laddrs[0].tcp_in_use.get(), 1);

    let out = rig.rx(0, frame6(L4Repr::Tcp(TcpRepr::new(40001, 80, TcpFlags::SYN))));
    assert_eq!(parse(&out[0].1).2, ip4("198.51.100.12"), "round robin");
    // An IPv4 packet to the local address that is no connection's goes nowhere.
    let stray = reply4("198.51.100.11", L4Repr::Tcp(TcpRepr::new(8080, 999, TcpFlags::ACK)));
    assert!(rig.rx(1, stray).is_empty());
}

#[test]
fn nat64_clamps_the_mss_to_what_the_narrower_side_fits() {
    let mut rig = rig64(IpProtocol::TCP, 1400);
    let opts = [2, 4, 0x05, 0xa0]; // 1440
    let syn = TcpRepr { options: &opts, ..TcpRepr::new(40000, 80, TcpFlags::SYN) };
    let out = rig.rx(0, frame6(L4Repr::Tcp(syn)));
    // The client's side is 1500: its 1440 fits as IPv6 (1440 + 60) and stays.
    assert_eq!(&out[0].1[14 + 20 + 20..14 + 20 + 24], &opts);
    let lport = parse(&out[0].1).1;
    let mss1460 = [2, 4, 0x05, 0xb4];
    let syn_ack = TcpRepr { options: &mss1460, ..TcpRepr::new(8080, lport, TcpFlags::SYN | TcpFlags::ACK) };
    let out = rig.rx(1, reply4("198.51.100.11", L4Repr::Tcp(syn_ack)));
    // The backends' side is 1400: the client may send 1360 (1400 - 40 as IPv4).
    assert_eq!(&out[0].1[14 + 40 + 20..14 + 40 + 24], &[2, 4, 0x05, 0x50]);
    parse6(&out[0].1);
}

#[test]
fn nat64_too_big_for_the_ipv4_side_tells_the_client_twenty_bytes_more() {
    let mut rig = rig64(IpProtocol::UDP, 1400);
    let payload = vec![7u8; 1400];
    let out = rig.rx(0, frame6(L4Repr::Udp(UdpRepr { sport: 5000, dport: 80, payload: &payload })));
    assert_eq!(out.len(), 1);
    let ip = Ipv6Packet::new_checked(&out[0].1[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (ip6(VIP6), ip6(CLIENT6)));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.mtu()), (Icmpv6Type::PACKET_TOO_BIG, 1420));
    assert_eq!(rig.drops(DropReason::TooBig), 1);
}

#[test]
fn nat64_udp_and_a_port_unreachable_reaching_the_client_as_icmpv6() {
    let mut rig = rig64(IpProtocol::UDP, 1500);
    let q = UdpRepr { sport: 5000, dport: 80, payload: b"question" };
    let sent = frame6(L4Repr::Udp(q));
    let out = rig.rx(0, sent.clone());
    let (src, lport, dst, dport, _) = parse(&out[0].1);
    assert_eq!((src, dst, dport), (ip4(LADDR), ip4("198.51.100.11"), 8080));
    let answer = UdpRepr { sport: 8080, dport: lport, payload: b"answer" };
    let out = rig.rx(1, reply4("198.51.100.11", L4Repr::Udp(answer)));
    assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 5000, 63));

    // The backend's port unreachable, quoting what we sent it.
    let to_backend = rig.rx(0, sent.clone());
    let error = icmp_error(B1_MAC, OUR_MAC1, "198.51.100.11", LADDR, 3, 3, &to_backend[0].1);
    let out = rig.rx(1, error);
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!((*port, &f[0..6], &f[12..14]), (0, &CLIENT_MAC.0[..], &[0x86, 0xdd][..]));
    let ip = Ipv6Packet::new_checked(&f[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.next_header()), (ip6(VIP6), ip6(CLIENT6), IpProtocol::ICMPV6));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!((icmp.msg_type(), icmp.code()), (Icmpv6Type::DEST_UNREACHABLE, 4));
    assert!(icmp.verify_checksum(ip6(VIP6), ip6(CLIENT6)));
    // It quotes the client's own datagram (header and first 8 bytes, as the backend quoted),
    // with the hop limit it had when the backend got it.
    let quote = &ip.payload()[8..];
    assert_eq!(quote.len(), 48);
    assert_eq!((&quote[..7], quote[7]), (&sent[14..14 + 7], 63));
    assert_eq!(&quote[8..48], &sent[14 + 8..14 + 48]);
    assert_eq!(rig.event(Event::IcmpErrorsTranslated), 1);
}

/// Two workers (cores 0 and 1 of two) on the NAT64 service, dp1's replies steered by `dp1`.
fn two_cores(dp1: crate::steer::Steering) -> Vec<Rig> {
    use crate::lb::LbCounters;
    use crate::steer::{Ownership, Steering};
    let limits = LbLimits { lport_min: 5000, lport_max: 5999, ..LbLimits::default() };
    (0..2)
        .map(|c| {
            let mut rig = rig64(IpProtocol::UDP, 1500);
            rig.ctx.core = c;
            let own = Ownership::new(c, 2, vec![Steering::Rings, dp1.clone()]);
            rig.ctx.lb = LbCore::new(c, 2, limits, Arc::new(LbCounters::new(&limits))).with_ownership(own);
            rig.ctx.snapshot_changed(&rig.snap);
            rig
        })
        .collect()
}

/// The frame arrives on `core`'s queue of `port`; what any core sent, after every hand-off.
fn deliver(rigs: &mut [Rig], core: usize, port: u16, buf: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
    let rig = &mut rigs[core];
    rig.ctx.process_burst(&rig.snap, rig.now, [TestFrame { buf, port }], &mut rig.pool, &mut rig.sent);
    let mut out = std::mem::take(&mut rig.sent.0);
    for (to, frame) in std::mem::take(&mut rig.sent.1) {
        let rig = &mut rigs[to as usize];
        rig.ctx.process_handed_in(&rig.snap, rig.now, [frame], &mut rig.pool, &mut rig.sent);
        assert!(rig.sent.1.is_empty(), "a handed-in frame is never handed on");
        out.append(&mut rig.sent.0);
    }
    out
}

#[test]
fn nat64_replies_and_their_errors_reach_the_core_that_chose_the_local_port() {
    let mut rigs = two_cores(crate::steer::Steering::Rings);
    for i in 0..20u16 {
        let rx = usize::from(i % 2);
        let q = UdpRepr { sport: 53000 + i, dport: 80, payload: b"ping" };
        let out = deliver(&mut rigs, rx, 0, frame6(L4Repr::Udp(q)));
        let (_, lport, backend, _, _) = parse(&out[0].1);
        assert_eq!(usize::from(lport % 2), rx, "local port {lport}");
        // The reply, and then an error about what we sent, come in on the other core's queue.
        let answer = UdpRepr { sport: 8080, dport: lport, payload: b"pong" };
        let out = deliver(&mut rigs, 1 - rx, 1, reply4(&backend.to_string(), L4Repr::Udp(answer)));
        assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 53000 + i, 63));
        let to_backend = deliver(&mut rigs, rx, 0, frame6(L4Repr::Udp(q)));
        let error = icmp_error(B1_MAC, OUR_MAC1, &backend.to_string(), LADDR, 3, 3, &to_backend[0].1);
        let out = deliver(&mut rigs, 1 - rx, 1, error);
        assert_eq!((out.len(), &out[0].1[12..14]), (1, &[0x86, 0xdd][..]), "the error as ICMPv6");
        let key = crate::conn::ConnKey6 {
            src: ip6(CLIENT6),
            dst: ip6(VIP6),
            sport: 53000 + i,
            dport: 80,
            proto: IpProtocol::UDP,
        };
        let holders: Vec<usize> = (0..2).filter(|&c| rigs[c].ctx.lb.conns6.lookup(&key).is_some()).collect();
        assert_eq!(holders, vec![rx], "the connection lives on the core it arrived on, only");
    }
    for rig in &rigs {
        assert_eq!(rig.ctx.lb.conns6.len(), 10);
        assert_eq!((rig.event(Event::HandedOff), rig.event(Event::IcmpErrorsTranslated)), (20, 10));
        assert_eq!(rig.ctx.counters.drops_total(), 0, "{:?}", rig.ctx.counters.snapshot());
    }
}

#[test]
fn nat64_local_ports_fit_a_nic_that_hashes_replies() {
    use crate::rss::{ReplySteering, Reta, Toeplitz, MICROSOFT_KEY};
    let rss =
        ReplySteering { toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(), reta: Reta::round_robin(128, 2).unwrap() };
    let mut rigs = two_cores(crate::steer::Steering::Toeplitz(rss.clone()));
    for i in 0..20u16 {
        let rx = usize::from(i % 2);
        let q = UdpRepr { sport: 30000 + i, dport: 80, payload: b"ping" };
        let out = deliver(&mut rigs, rx, 0, frame6(L4Repr::Udp(q)));
        let (laddr, lport, backend, bport, _) = parse(&out[0].1);
        let queue = usize::from(rss.reply_queue(backend, bport, laddr, lport));
        assert_eq!(queue, rx, "{backend}:{bport} -> {laddr}:{lport}");
        let answer = UdpRepr { sport: bport, dport: lport, payload: b"pong" };
        let out = deliver(&mut rigs, queue, 1, reply4(&backend.to_string(), L4Repr::Udp(answer)));
        assert_eq!(parse6(&out[0].1), (ip6(VIP6), 80, ip6(CLIENT6), 30000 + i, 63));
    }
    for rig in &rigs {
        assert_eq!(rig.event(Event::HandedOff), 0);
        assert_eq!(rig.ctx.lb.conns6.len(), 10);
    }
}

/// The TCP payload of an IPv4 frame (`parse` checked its checksums).
fn payload4(f: &[u8]) -> &[u8] {
    let end = 14 + usize::from(u16::from_be_bytes([f[16], f[17]]));
    &f[14 + 20 + usize::from(f[14 + 20 + 12] >> 4) * 4..end]
}

fn seq_ack(f: &[u8], l4_at: usize) -> (u32, u32) {
    let w = |at: usize| u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]]);
    (w(l4_at + 4), w(l4_at + 8))
}

#[test]
fn nat64_backends_get_the_ipv6_client_in_a_proxy_v2_header_and_sequence_numbers_follow_it() {
    let mut svc = service64(IpProtocol::TCP);
    svc.client_address = crate::xlate::clientaddr::ClientAddr::ProxyV2;
    let mut rig = rig64_with(svc, 1500);
    let (isn, bisn) = (0x1000_0000u32, 0x5000_0000u32);
    let first = isn + 1;
    let client = |seq, ack, flags, payload: &'static [u8]| {
        frame6(L4Repr::Tcp(TcpRepr { seq, ack, payload, ..TcpRepr::new(40000, 80, flags) }))
    };
    let out = rig.rx(0, client(isn, 0, TcpFlags::SYN, b""));
    let f = &out[0].1;
    let lport = parse(f).1;
    assert_eq!((seq_ack(f, 34).0, payload4(f).len()), (isn, 0), "the SYN goes as it came");
    let sa = TcpRepr { seq: bisn, ack: first, ..TcpRepr::new(8080, lport, TcpFlags::SYN | TcpFlags::ACK) };
    let out = rig.rx(1, reply4("198.51.100.11", L4Repr::Tcp(sa)));
    assert_eq!(seq_ack(&out[0].1, 54).1, first);
    // The request carries the header first: PROXY v2, TCP over IPv6, the client and the VIP.
    let out = rig.rx(0, client(first, bisn + 1, TcpFlags::ACK | TcpFlags::PSH, b"GET /"));
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    parse(f);
    let mut header = crate::xlate::clientaddr::V2_SIGNATURE.to_vec();
    header.extend_from_slice(&[0x21, 0x21, 0, 36]);
    header.extend_from_slice(&ip6(CLIENT6).octets());
    header.extend_from_slice(&ip6(VIP6).octets());
    header.extend_from_slice(&[0x9c, 0x40, 0, 80]);
    let n = header.len() as u32;
    assert_eq!(seq_ack(f, 34).0, first);
    assert_eq!(&payload4(f)[..header.len()], &header[..]);
    assert_eq!(&payload4(f)[header.len()..], b"GET /");
    // The backend acknowledges header and request: the client sees its 5 bytes acknowledged.
    let ack =
        TcpRepr { seq: bisn + 1, ack: first + n + 5, payload: b"200 OK", ..TcpRepr::new(8080, lport, TcpFlags::ACK) };
    let out = rig.rx(1, reply4("198.51.100.11", L4Repr::Tcp(ack)));
    assert_eq!(parse6(&out[0].1).3, 40000);
    assert_eq!(seq_ack(&out[0].1, 54), (bisn + 1, first + 5));
    // The client's next bytes go shifted, without the header.
    let out = rig.rx(0, client(first + 5, bisn + 7, TcpFlags::ACK, b"more"));
    assert_eq!((seq_ack(&out[0].1, 34), payload4(&out[0].1)), ((first + n + 5, bisn + 7), &b"more"[..]));
}
