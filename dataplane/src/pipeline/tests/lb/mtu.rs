//! Packets over the egress port's MTU, in every forwarding mode: dropped and counted, and with
//! DF set the sender is told, about its packet as it sent it, from the address it sent it to,
//! rate-limited per core.

use super::*;
use crate::service::{SnatRule, TooBig};

/// A TCP ACK frame whose IP packet is `ip_len` bytes long (DF set).
#[allow(clippy::too_many_arguments)]
fn tcp_sized(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    ip_len: usize,
) -> Vec<u8> {
    l4(src_mac, dst_mac, src, sport, dst, dport, 6, ACK, &vec![0x5a; ip_len - 40])
}

/// The frame with DF cleared and the IPv4 header checksum redone.
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    let (ip, proto, payload_len) = Ipv4Repr::parse(&frame[14..]);
    let header = Ipv4Repr { dont_frag: false, ..ip }.header(proto, payload_len);
    frame[14..34].copy_from_slice(&header);
    frame
}

/// `out` is one ICMP fragmentation-needed, sent on `port` to `mac`, from `from` to `to`, with
/// next-hop MTU `mtu`, quoting the start of `offending`'s IP packet byte for byte (as its
/// sender sent it, not as it would have left).
#[allow(clippy::too_many_arguments)]
fn assert_frag_needed(
    out: &[(u16, Vec<u8>)],
    port: u16,
    mac: MacAddr,
    from: &str,
    to: &str,
    mtu: u16,
    offending: &[u8],
) {
    assert_eq!(out.len(), 1, "one ICMP error");
    let (out_port, f) = &out[0];
    assert_eq!(*out_port, port, "out of the port towards the sender");
    assert_eq!(&f[0..6], &mac.0, "to the sender's (or its router's) MAC");
    let ip = &f[14..];
    assert_eq!(checksum::checksum(&ip[..20]), 0, "IPv4 header checksum");
    assert_eq!(ip[9], 1, "ICMP");
    assert_eq!(&ip[12..16], &ip4(from).octets(), "from the address the sender sent to");
    assert_eq!(&ip[16..20], &ip4(to).octets(), "to the sender");
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    assert_eq!(total, 576, "as long as RFC 1812 allows");
    assert_eq!(f.len(), 14 + total);
    let icmp = &ip[20..total];
    assert_eq!(checksum::checksum(icmp), 0, "ICMP checksum");
    assert_eq!((icmp[0], icmp[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), mtu, "the MTU that fits");
    assert_eq!(&icmp[8..], &offending[14..14 + 548], "the sender's own packet");
}

#[test]
fn nat_packets_over_the_egress_mtu_get_the_sender_frag_needed_in_both_directions() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    rig.set_mtus([1300, 1400]);

    // Client to backend, out of dp1 (MTU 1400): 1400 bytes fit, 1401 do not.
    let fits = tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1400);
    assert_eq!(rig.rx(0, fits)[0].0, 1);
    let big = tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1401);
    let out = rig.rx(0, big.clone());
    assert_frag_needed(&out, 0, CLIENT_MAC, VIP, "192.0.2.2", 1400, &big);
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (1, 1));
    assert_eq!(rig.event(Event::LbInPackets), 2, "the SYN and the packet that fit");

    // Without DF the sender cannot act on an error: dropped and counted only.
    assert!(rig.rx(0, without_df(big)).is_empty());
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (2, 1));

    // Backend to client, out of dp0 (MTU 1300): the backend is told, from the address it sent
    // its packet to (the client's).
    assert_eq!(rig.rx(1, tcp_sized(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 1300))[0].0, 0);
    let big = tcp_sized(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 1301);
    let out = rig.rx(1, big.clone());
    assert_frag_needed(&out, 1, B1_MAC, "192.0.2.2", "198.51.100.11", 1300, &big);
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (3, 2));
    assert_eq!(rig.event(Event::LbOutPackets), 2, "the SYN-ACK and the packet that fit");
}

#[test]
fn fullnat_packets_over_the_egress_mtu_get_the_sender_frag_needed_in_both_directions() {
    let spec = Spec { mode: FwdMode::FullNat, backends: vec![backend(1, 1)], ..nat_tcp() };
    let mut rig = Rig::lb(&spec, LbLimits { lport_min: 5000, lport_max: 5009, ..LbLimits::default() });
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    let lport = parse(&out[0].1).1;
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "198.51.100.1", lport, 6, SYN_ACK, b""));
    rig.set_mtus([1300, 1400]);

    let big = tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1401);
    let out = rig.rx(0, big.clone());
    assert_frag_needed(&out, 0, CLIENT_MAC, VIP, "192.0.2.2", 1400, &big);
    // The backend sent to our local address and port: the error comes from there.
    let big = tcp_sized(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "198.51.100.1", lport, 1301);
    let out = rig.rx(1, big.clone());
    assert_frag_needed(&out, 1, B1_MAC, "198.51.100.1", "198.51.100.11", 1300, &big);
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (2, 2));
    assert_eq!(rig.ctx.lb.conns.len(), 1, "the connection stays");
}

#[test]
fn dr_packets_over_the_egress_mtu_get_the_client_frag_needed_from_the_vip() {
    let mut spec = Spec { mode: FwdMode::Dr, ..nat_tcp() };
    for b in &mut spec.backends {
        b.port = 80;
    }
    let mut rig = Rig::lb(&spec, LbLimits::default());
    rig.set_mtus([1500, 1400]);
    assert_eq!(rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""))[0].0, 1);
    assert_eq!(rig.rx(0, tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1400))[0].0, 1);
    let big = tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1401);
    let out = rig.rx(0, big.clone());
    assert_frag_needed(&out, 0, CLIENT_MAC, VIP, "192.0.2.2", 1400, &big);
    assert!(rig.rx(0, without_df(big)).is_empty());
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (2, 1));
}

#[test]
fn snat_packets_over_the_egress_mtu_get_the_sender_frag_needed_in_both_directions() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits { lport_min: 2000, lport_max: 2003, ..LbLimits::default() });
    let rule = SnatRule {
        prefix: ip4("198.51.100.0"),
        prefix_len: 24,
        out_port: 0,
        addrs: vec![Laddr { addr: ip4("192.0.2.50"), slot: 3, gen: 9 }],
    };
    rig.set_services(Arc::new((*services(&nat_tcp(), &[])).clone().with_snat(vec![rule])));
    let out = rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 40000, "203.0.113.9", 80, 6, SYN, b""));
    let lport = parse(&out[0].1).1;
    rig.set_mtus([1400, 1300]);

    // Outbound, out of dp0 (1400): the inside host is told, from the server's address.
    let big = tcp_sized(B1_MAC, OUR_MAC1, "198.51.100.11", 40000, "203.0.113.9", 80, 1401);
    let out = rig.rx(1, big.clone());
    assert_frag_needed(&out, 1, B1_MAC, "203.0.113.9", "198.51.100.11", 1400, &big);
    // The server's reply, out of dp1 (1300): the server is told, through its router, from the
    // SNAT address it sent to.
    let big = tcp_sized(CLIENT_MAC, OUR_MAC, "203.0.113.9", 80, "192.0.2.50", lport, 1301);
    let out = rig.rx(0, big.clone());
    assert_frag_needed(&out, 0, CLIENT_MAC, "192.0.2.50", "203.0.113.9", 1300, &big);
    assert_eq!((rig.drops(DropReason::TooBig), rig.event(Event::IcmpFragNeededSent)), (2, 2));
}

#[test]
fn frag_needed_is_rate_limited_per_core_and_tunnels_share_the_limit() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    rig.set_mtus([1500, 1400]);
    let big = tcp_sized(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 1401);
    // ICMP errors sent for `n` packets (after a long pause, an ARP probe may go out too).
    let burst = |rig: &mut Rig, n: usize| {
        (0..n).flat_map(|_| rig.rx(0, big.clone())).filter(|(_, f)| f[12..14] == [8, 0] && f[14 + 9] == 1).count()
    };
    let (per_s, saved) = (ICMP_TOO_BIG_PER_S as usize, ICMP_TOO_BIG_BURST as usize);
    assert_eq!(burst(&mut rig, saved + 10), saved, "a burst's worth at once");
    assert_eq!(rig.event(Event::IcmpFragNeededRateLimited), 10);
    // 100 ms later, a tenth of a second's worth more.
    rig.now += 100;
    assert_eq!(burst(&mut rig, per_s), per_s / 10);
    // However long the pause, never more than a burst's worth saved.
    rig.now += 3_600_000;
    assert_eq!(burst(&mut rig, saved + 1), saved);
    let (sent, dropped) = (rig.event(Event::IcmpFragNeededSent), rig.drops(DropReason::TooBig));
    assert_eq!(sent, 2 * saved as u64 + per_s as u64 / 10);
    assert_eq!(dropped, 2 * saved as u64 + 11 + per_s as u64, "every one dropped");
    assert_eq!(rig.event(Event::IcmpFragNeededRateLimited), dropped - sent);

    // A TUN service's errors draw on the same bucket: none left now.
    let mut spec = Spec {
        proto: IpProtocol::UDP,
        mode: FwdMode::Tun,
        tunnel: Tunnel { too_big: TooBig::Icmp, ..Tunnel::default() },
        ..nat_tcp()
    };
    for b in &mut spec.backends {
        b.port = 80;
    }
    rig.set_services(services(&spec, &[]));
    let tunnelled = l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 17, 0, &[0x5a; 1472]);
    assert!(rig.rx(0, tunnelled.clone()).is_empty());
    assert_eq!(rig.drops(DropReason::TunnelTooBig), 1);
    rig.now += 10;
    assert_eq!(rig.rx(0, tunnelled).len(), 1, "a token 10 ms later");
}

#[test]
fn what_the_box_itself_sends_over_the_mtu_is_dropped_and_counted() {
    let mut rig = Rig::new();
    rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST));
    rig.snap = snapshot_with_mtus([1300, 1500]);
    // An echo request that arrived (1400 bytes of IP) cannot be answered out of dp0: the box
    // does not fragment its own packets either, and sends no error about an echo reply.
    assert!(rig.rx(0, echo_v4_sized(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64, 1400 - 28)).is_empty());
    assert_eq!(rig.drops(DropReason::TooBig), 1);
    assert_eq!(rig.event(Event::IcmpFragNeededSent), 0);
    assert_eq!(rig.rx(0, echo_v4_sized(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64, 1300 - 28)).len(), 1);
}
