//! DR, TUN and SNAT through the pipeline: what leaves, byte for byte where it matters, and
//! what is counted.

use super::*;
use crate::service::{Encap, SnatRule, TooBig};

fn one_way(mode: FwdMode, proto: u8, tunnel: Tunnel) -> Spec {
    Spec {
        proto: IpProtocol(proto),
        mode,
        tunnel,
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1), backend(2, 2)],
    }
}

fn tun(encap: Encap, too_big: TooBig) -> Tunnel {
    Tunnel { encap, too_big }
}

/// The client's frame to the service port (the test service listens on 80; DR and TUN keep
/// ports, so the backends here listen on 80 too).
fn client_frame(sport: u16, proto: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, proto, flags, payload)
}

fn rig_for(spec: &mut Spec) -> Rig {
    for b in &mut spec.backends {
        b.port = 80;
    }
    Rig::lb(spec, LbLimits::default())
}

fn original_key(sport: u16, proto: u8) -> crate::conn::ConnKey {
    crate::conn::ConnKey { src: ip4("192.0.2.2"), dst: ip4(VIP), sport, dport: 80, proto: IpProtocol(proto) }
}

#[test]
fn dr_sends_the_client_frame_unchanged_to_the_backend_mac() {
    let mut rig = rig_for(&mut one_way(FwdMode::Dr, 6, Tunnel::default()));
    let syn = client_frame(40000, 6, SYN, b"");
    let out = rig.rx(0, syn.clone());
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(&f[0..6], &B1_MAC.0, "to the backend's MAC");
    assert_eq!(&f[6..12], &OUR_MAC1.0, "from the egress port's MAC");
    assert_eq!(&f[12..], &syn[12..], "unchanged above L2, TTL included");

    // Only the client's side is tracked: its ACK establishes, its FIN is FIN_WAIT.
    let (id, _) = rig.ctx.lb.conns.lookup(&original_key(40000, 6)).unwrap();
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::SynRecv);
    let ack = client_frame(40000, 6, ACK, b"GET / HTTP/1.0\r\n\r\n");
    let out = rig.rx(0, ack.clone());
    assert_eq!(&out[0].1[12..], &ack[12..]);
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::Established);
    assert_eq!(rig.ctx.lb.active_conns(1, 101), 1);
    rig.rx(0, client_frame(40000, 6, FIN_ACK, b""));
    assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::FinWait);

    // Replies are not tracked: one that comes here anyway (a backend without the VIP) is
    // not forwarded.
    assert!(rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 80, "192.0.2.2", 40000, 6, SYN_ACK, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::IpNotForUs), 1);
    assert_eq!(rig.event(Event::LbInPackets), 3);
    assert_eq!(rig.event(Event::LbOutPackets), 0);
    assert_eq!(rig.ctx.lb.counters.backends[1].in_packets.get(), 3);
}

#[test]
fn dr_refuses_a_backend_that_is_not_directly_connected() {
    let mut spec = one_way(FwdMode::Dr, 17, Tunnel::default());
    spec.backends = vec![Backend { addr: ip4("203.0.113.9"), ..backend(1, 1) }];
    let mut rig = rig_for(&mut spec);
    assert!(rig.rx(0, client_frame(40000, 17, 0, b"x")).is_empty());
    assert_eq!(rig.drops(DropReason::DrBackendNotConnected), 1);
}

/// (outer header bytes, inner packet) of an encapsulated frame, after checking its Ethernet
/// type and outer IPv4 checksum.
fn outer_and_inner(frame: &[u8], overhead: usize) -> (&[u8], &[u8]) {
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let outer = &frame[14..14 + overhead];
    assert_eq!(checksum::checksum(&outer[..20]), 0, "outer IPv4 checksum");
    assert_eq!(usize::from(u16::from_be_bytes([outer[2], outer[3]])), frame.len() - 14);
    (outer, &frame[14 + overhead..])
}

#[test]
fn tun_encapsulates_in_ipip_from_the_egress_address() {
    let mut rig = rig_for(&mut one_way(FwdMode::Tun, 6, Tunnel::default()));
    let syn = client_frame(40000, 6, SYN, b"");
    let out = rig.rx(0, syn.clone());
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 1);
    assert_eq!(&f[0..6], &B1_MAC.0);
    assert_eq!(&f[6..12], &OUR_MAC1.0);
    let (outer, inner) = outer_and_inner(f, 20);
    assert_eq!(inner, &syn[14..], "the client's packet rides unchanged");
    assert_eq!(outer[0], 0x45);
    assert_eq!(outer[6] & 0x40, 0x40, "DF copied from the inner packet");
    assert_eq!((outer[8], outer[9]), (64, 4), "TTL 64, protocol 4 (IPIP)");
    assert_eq!(&outer[12..16], &[198, 51, 100, 1], "source: our address on the backend's network");
    assert_eq!(&outer[16..20], &[198, 51, 100, 11]);
    assert_eq!(rig.event(Event::LbInPackets), 1);
}

#[test]
fn tun_gue_varies_the_outer_source_port_per_flow() {
    let mut rig = rig_for(&mut one_way(FwdMode::Tun, 17, tun(Encap::Gue { port: 6080 }, TooBig::Icmp)));
    let mut sports = std::collections::HashSet::new();
    for sport in 40000..40008 {
        let dgram = client_frame(sport, 17, 0, b"query");
        let out = rig.rx(0, dgram.clone());
        let (outer, inner) = outer_and_inner(&out[0].1, 28);
        assert_eq!(outer[9], 17);
        let udp = &outer[20..28];
        assert_eq!(&udp[2..4], &6080u16.to_be_bytes());
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), 8 + inner.len());
        assert_eq!(inner, &dgram[14..]);
        let sport_out = u16::from_be_bytes([udp[0], udp[1]]);
        assert!(sport_out >= 49152);
        // The same flow keeps its outer port.
        let again = rig.rx(0, dgram);
        assert_eq!(&again[0].1[14 + 20..14 + 22], &udp[0..2]);
        sports.insert(sport_out);
    }
    assert!(sports.len() >= 6, "8 flows spread over outer ports: {sports:?}");
}

#[test]
fn tun_strips_ethernet_padding_before_encapsulating() {
    let mut rig = rig_for(&mut one_way(FwdMode::Tun, 6, Tunnel::default()));
    let mut syn = client_frame(40000, 6, SYN, b"");
    let ip_len = syn.len() - 14;
    syn.resize(60, 0); // A 54-byte frame padded to Ethernet's minimum.
    let out = rig.rx(0, syn.clone());
    let (_, inner) = outer_and_inner(&out[0].1, 20);
    assert_eq!(inner, &syn[14..14 + ip_len]);
}

#[test]
fn tun_tells_the_client_the_mtu_that_fits() {
    let mut rig = rig_for(&mut one_way(FwdMode::Tun, 17, Tunnel::default()));
    // 1500 bytes of IP: the largest that fits the 1500-byte MTU bare, 20 too many in IPIP.
    let big = client_frame(40000, 17, 0, &[0x5a; 1472]);
    let out = rig.rx(0, big.clone());
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 0, "back to the client");
    assert_eq!(&f[0..6], &CLIENT_MAC.0);
    let ip = &f[14..];
    assert_eq!(checksum::checksum(&ip[..20]), 0);
    assert_eq!(ip[9], 1);
    assert_eq!(&ip[12..16], &ip4(VIP).octets(), "from the VIP the client sent to");
    assert_eq!(&ip[16..20], &[192, 0, 2, 2]);
    assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), 576);
    let icmp = &ip[20..576];
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum");
    assert_eq!((icmp[0], icmp[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1480, "MTU minus the 20-byte IPIP header");
    assert_eq!(&icmp[8..], &big[14..14 + 548], "quotes the start of the packet");
    assert_eq!(rig.event(Event::IcmpFragNeededSent), 1);
    assert_eq!(rig.drops(DropReason::TunnelTooBig), 1);

    // One byte less fits.
    let fits = client_frame(40001, 17, 0, &[0x5a; 1452]);
    assert_eq!(rig.rx(0, fits)[0].0, 1);

    // Without DF the client cannot act on an ICMP error: dropped and counted.
    let ip = Ipv4Repr { dont_frag: false, ..Ipv4Repr::new(ip4("192.0.2.2"), ip4(VIP)) };
    let dgram = UdpRepr { sport: 40002, dport: 80, payload: &[0x5a; 1472] };
    let no_df = EthRepr { dst: OUR_MAC, src: CLIENT_MAC }.frame_v4(&ip, &L4Repr::Udp(dgram));
    assert!(rig.rx(0, no_df).is_empty());
    assert_eq!(rig.drops(DropReason::TunnelTooBig), 2);
}

#[test]
fn tun_too_big_policy_drop_sends_nothing() {
    let mut rig = rig_for(&mut one_way(FwdMode::Tun, 17, tun(Encap::Gue { port: 6080 }, TooBig::Drop)));
    // GUE adds 28: 1473 bytes of IP no longer fit.
    assert!(rig.rx(0, client_frame(40000, 17, 0, &[1; 1445])).is_empty());
    assert_eq!(rig.drops(DropReason::TunnelTooBig), 1);
    assert_eq!(rig.event(Event::IcmpFragNeededSent), 0);
    assert_eq!(rig.rx(0, client_frame(40001, 17, 0, &[1; 1444]))[0].0, 1);
}

#[test]
fn icmp_error_from_the_client_side_follows_a_dr_connection() {
    let mut rig = rig_for(&mut one_way(FwdMode::Dr, 17, Tunnel::default()));
    rig.rx(0, client_frame(40000, 17, 0, b"q"));
    // The backend answered the client directly; the client's port-unreachable about that
    // answer is sent to the VIP and must reach the backend, unchanged.
    let reply = l4(B1_MAC, CLIENT_MAC, VIP, 80, "192.0.2.2", 40000, 17, 0, b"a");
    let err = icmp_error(CLIENT_MAC, OUR_MAC, "192.0.2.2", VIP, 3, 3, &reply);
    let out = rig.rx(0, err.clone());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    assert_eq!(&out[0].1[0..6], &B1_MAC.0);
    assert_eq!(&out[0].1[12..], &err[12..]);
    assert_eq!(rig.event(Event::IcmpErrorsTranslated), 1);
}

const SNAT_ADDR: &str = "192.0.2.50";

fn snat_rig() -> Rig {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits { lport_min: 2000, lport_max: 2003, ..LbLimits::default() });
    let rule = SnatRule {
        prefix: ip4("198.51.100.0"),
        prefix_len: 24,
        out_port: 0,
        addrs: vec![Laddr { addr: ip4(SNAT_ADDR), slot: 3, gen: 9 }],
    };
    let services = (*services(&nat_tcp(), &[])).clone().with_snat(vec![rule]);
    rig.set_services(Arc::new(services));
    rig
}

#[test]
fn snat_translates_outbound_connections_and_their_replies() {
    let mut rig = snat_rig();
    // b1 opens a connection to a server behind the client's router (203.0.113.0/24 via 192.0.2.2).
    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 40000, "203.0.113.9", 80, 6, SYN, b""));
    assert_eq!(out.len(), 1);
    let (port, f) = &out[0];
    assert_eq!(*port, 0);
    assert_eq!(&f[0..6], &CLIENT_MAC.0, "to the router");
    let (src, lport, dst, dport, ttl) = parse(f);
    assert_eq!((src, dst, dport, ttl), (ip4(SNAT_ADDR), ip4("203.0.113.9"), 80, 63));
    assert!((2000..=2003).contains(&lport));

    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "203.0.113.9", 80, SNAT_ADDR, lport, 6, SYN_ACK, b""));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1);
    assert_eq!(&out[0].1[0..6], &B1_MAC.0);
    assert_eq!(parse(&out[0].1), (ip4("203.0.113.9"), 80, ip4("198.51.100.11"), 40000, 63));
    assert_eq!((rig.event(Event::SnatOutPackets), rig.event(Event::SnatInPackets)), (1, 1));
    assert_eq!(rig.event(Event::LbInPackets) + rig.event(Event::LbOutPackets), 0);
    assert_eq!(rig.ctx.lb.counters.laddrs[3].tcp_in_use.get(), 1);

    // The SNAT address is answered for ARP on the outside port.
    let out = rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, SNAT_ADDR, MacAddr::BROADCAST));
    assert_eq!(out.len(), 1, "ARP reply for the SNAT address");
}

#[test]
fn snat_only_covers_its_source_prefix_and_port() {
    let mut rig = snat_rig();
    // From outside the prefix (a client-side host to the backends' network): not ours.
    assert!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, "198.51.100.11", 80, 6, SYN, b"")).is_empty());
    // From the prefix but leaving by another port (to another backend): not ours either.
    assert!(rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 40000, "198.51.100.12", 80, 17, 0, b"x")).is_empty());
    assert_eq!(rig.drops(DropReason::IpNotForUs), 2);
    // Covered, but TCP that is not a SYN opens nothing.
    assert!(rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 40000, "203.0.113.9", 80, 6, ACK, b"")).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);
    // Four ports on one core: the fifth flow finds none.
    for sport in 0..4 {
        assert_eq!(
            rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 41000 + sport, "203.0.113.9", 53, 17, 0, b"q")).len(),
            1
        );
    }
    assert!(rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 41004, "203.0.113.9", 53, 17, 0, b"q")).is_empty());
    assert_eq!(rig.drops(DropReason::LocalPortsExhausted), 1);
}
