//! The exception path: what goes to a port's kernel interface, what ferrovs still answers
//! itself, and the per-core rate on it.

use super::*;
use crate::service::FwdMode;
use crate::snapshot::{KernelLimit, LocalAddr};

const LIMIT: KernelLimit = KernelLimit { rate_pps: 1000, burst: 5 };

impl Rig {
    /// The standard rig, dp0 with a kernel interface of `limit` (dp1 without), the client
    /// 192.0.2.2 known.
    fn with_kernel(limit: KernelLimit) -> Rig {
        let mut rig = Rig::new();
        rig.snap = snapshot_with_kernel(limit);
        rig.ctx.snapshot_changed(&rig.snap);
        let n = NeighLearned { port: 0, ip: "192.0.2.2".parse().unwrap(), mac: CLIENT_MAC };
        rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
        rig
    }

    fn kernel(&mut self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut self.sent.3)
    }
}

/// `snapshot()` with a kernel interface on dp0.
fn snapshot_with_kernel(limit: KernelLimit) -> Snapshot {
    let port = |name: &str, mac, kernel| PortL3 { name: name.into(), mac, mtu: 1500, kernel };
    let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
    Snapshot::build(
        vec![(0, port("dp0", OUR_MAC, Some(limit))), (1, port("dp1", OUR_MAC1, None))],
        vec![la(0, "192.0.2.1/24"), la(0, "2001:db8:1::1/64"), la(1, "198.51.100.1/24")],
        vec![],
    )
}

/// An IPv4 frame with protocol `proto` and `payload`, header checksum right.
fn ipv4_frame(dst_mac: MacAddr, src: &str, dst: &str, proto: u8, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 1, 0x40, 0, 255, proto, 0, 0];
    ip.extend_from_slice(&ip4(src).octets());
    ip.extend_from_slice(&ip4(dst).octets());
    let c = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut v = eth(dst_mac, CLIENT_MAC, 0x0800);
    v.extend(ip);
    v.extend_from_slice(payload);
    v
}

/// An ICMPv4 echo reply (type 0) from the client to the box: the answer to the host's ping.
fn echo_reply_v4() -> Vec<u8> {
    let mut icmp = vec![0, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4];
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4_frame(OUR_MAC, "192.0.2.2", "192.0.2.1", 1, &icmp)
}

/// UDP over IPv6 from the client to the box's IPv6 address.
fn udp_v6() -> Vec<u8> {
    let (src, dst) = (ip6("2001:db8:1::2"), ip6("2001:db8:1::1"));
    let mut udp = vec![0xc3, 0x50, 0x0e, 0xc8, 0, 12, 0, 0, 1, 2, 3, 4];
    let sum = checksum::pseudo_header_v6(src, dst, 17, udp.len() as u32) + checksum::sum(&udp);
    let c = !checksum::fold(sum);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    let mut v = eth(OUR_MAC, CLIENT_MAC, 0x86dd);
    v.extend_from_slice(&[0x60, 0, 0, 0, 0, 12, 17, 64]);
    v.extend_from_slice(&src.octets());
    v.extend_from_slice(&dst.octets());
    v.extend(udp);
    v
}

#[test]
fn what_the_box_does_not_answer_goes_to_the_kernel_unchanged() {
    let mut rig = Rig::with_kernel(KernelLimit { rate_pps: 1000, burst: 100 });
    let vrrp_mac = MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x12]);
    let frames = [
        // ssh, BGP, BFD to the box's address; a reply to the host's own connection.
        l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, "192.0.2.1", 22, 6, SYN, b""),
        l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, "192.0.2.1", 179, 6, SYN, b""),
        l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 49152, "192.0.2.1", 3784, 17, 0, b"bfd!"),
        l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 179, "192.0.2.1", 40002, 6, SYN_ACK, b""),
        // VRRP to its group, ICMP that is not an echo request.
        ipv4_frame(vrrp_mac, "192.0.2.2", "224.0.0.18", 112, &[0x21, 1, 100, 1, 0, 1, 0, 0]),
        echo_reply_v4(),
        udp_v6(),
    ];
    for f in &frames {
        assert!(rig.rx(0, f.clone()).is_empty(), "nothing goes out of a port");
        let got = rig.kernel();
        assert_eq!(got, vec![(0, f.clone())], "to dp0's kernel interface, unchanged");
    }
    assert_eq!(rig.event(Event::ToKernel), frames.len() as u64);
    assert_eq!(rig.ctx.counters.kernel(0).unwrap().to_kernel.get(), frames.len() as u64);
    assert_eq!(rig.ctx.counters.drops_total(), 0);
}

#[test]
fn ferrovs_still_answers_echo_and_arp_and_the_kernel_sees_the_arp() {
    let mut rig = Rig::with_kernel(KernelLimit { rate_pps: 1000, burst: 100 });
    let out = rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64));
    assert_eq!(out.len(), 1, "the echo reply");
    assert!(rig.kernel().is_empty(), "an echo request is ferrovs' own");
    assert_eq!(rig.event(Event::IcmpEchoRepliesOut), 1);
    rig.rx(0, echo_v6(CLIENT_MAC, "2001:db8:1::2", "2001:db8:1::1"));
    assert!(rig.kernel().is_empty(), "nor an IPv6 one");
    assert_eq!(rig.event(Event::IcmpEchoRequestsIn), 2);

    // A request for the box: ferrovs answers; the kernel gets a copy of the request.
    let request = arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST);
    let out = rig.rx(0, request.clone());
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[..42], &arp(2, OUR_MAC, "192.0.2.1", CLIENT_MAC, "192.0.2.2", CLIENT_MAC)[..42]);
    assert_eq!(rig.kernel(), vec![(0, request)]);
    // A reply to the box (to the kernel's own request): learned, and the kernel's.
    let reply = arp(2, B1_MAC, "192.0.2.3", OUR_MAC, "192.0.2.1", OUR_MAC);
    assert!(rig.rx(0, reply.clone()).is_empty());
    assert_eq!(rig.kernel(), vec![(0, reply)]);
    assert!(neigh_mac(&rig, "192.0.2.3") == Some(B1_MAC), "ferrovs learned it too");
    // ARP about others is not the kernel's.
    rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.77", MacAddr::BROADCAST));
    assert!(rig.kernel().is_empty());
    assert_eq!(rig.event(Event::ToKernel), 2);
}

#[test]
fn without_a_kernel_interface_or_not_for_the_box_nothing_goes_to_a_kernel() {
    let mut rig = Rig::with_kernel(LIMIT);
    // dp1 has no kernel interface: dropped as before.
    rig.rx(1, l4(CLIENT_MAC, OUR_MAC1, "198.51.100.2", 40000, "198.51.100.1", 22, 6, SYN, b""));
    assert_eq!(rig.drops(DropReason::UnsupportedProtocol), 1);
    // Not an address of the box, nor a group of the routing protocols.
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, "203.0.113.9", 22, 6, SYN, b""));
    rig.rx(0, ipv4_frame(OUR_MAC, "192.0.2.2", "239.1.1.1", 17, &[0; 8]));
    assert_eq!(rig.drops(DropReason::IpNotForUs), 2);
    assert!(rig.kernel().is_empty());
    assert_eq!(rig.event(Event::ToKernel), 0);
}

#[test]
fn vip_traffic_is_balanced_and_a_vip_port_without_service_is_not_the_kernels() {
    let spec = Spec {
        proto: IpProtocol::TCP,
        mode: FwdMode::Nat,
        tunnel: Default::default(),
        persistence_ms: 0,
        reset: false,
        backends: vec![backend(1, 1)],
    };
    let mut rig = Rig::with_kernel(LIMIT);
    rig.snap = snapshot_with_kernel(LIMIT).with_services(services(&spec, &[]));
    rig.ctx.snapshot_changed(&rig.snap);
    let n = NeighLearned { port: 1, ip: "198.51.100.11".parse().unwrap(), mac: B1_MAC };
    rig.ctx.learn_remote(&rig.snap, rig.now, n, &mut rig.sent);
    let out = rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 1, "to the backend");
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 22, 6, SYN, b""));
    assert_eq!(rig.drops(DropReason::NoService), 1);
    assert!(rig.kernel().is_empty());
}

#[test]
fn a_flood_at_the_box_is_held_to_the_rate_and_forwarding_goes_on() {
    let mut rig = Rig::with_kernel(LIMIT);
    let syn = |sport| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, "192.0.2.1", 179, 6, SYN, b"");
    for sport in 0..20 {
        rig.rx(0, syn(40000 + sport));
    }
    assert_eq!(rig.kernel().len(), 5, "the burst");
    assert_eq!(rig.drops(DropReason::KernelRateLimited), 15);
    assert_eq!(rig.ctx.counters.kernel(0).unwrap().rate_limited.get(), 15);
    // ferrovs' own answers do not take from the bucket.
    assert_eq!(rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64)).len(), 1);
    // 1000 a second: 3 ms earn 3 frames.
    rig.now += 3;
    for sport in 0..10 {
        rig.rx(0, syn(41000 + sport));
    }
    assert_eq!(rig.kernel().len(), 3);
    assert_eq!(rig.drops(DropReason::KernelRateLimited), 22);
    // A copy of an ARP request is within the rate too; the answer is not.
    let request = arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST);
    assert_eq!(rig.rx(0, request).len(), 1);
    assert!(rig.kernel().is_empty());
    assert_eq!(rig.drops(DropReason::KernelRateLimited), 23);
    // A second later the bucket is full again, not fuller.
    rig.now += 1000;
    for sport in 0..10 {
        rig.rx(0, syn(42000 + sport));
    }
    assert_eq!(rig.kernel().len(), 5);
    assert_eq!(rig.event(Event::ToKernel), 13);
}
