//! Pipeline tests with plain buffers: frames in, frames out, bytes and counters compared.

use super::*;
use crate::lb::LbCore;
use crate::service::LbLimits;
use crate::wire::checksum;

// The frame and tx doubles, the standard snapshot and the frame builders live in the
// test kit, shared with the fuzz targets; the tests here use them by their old names.
pub use crate::testkit::packet::{
    tuple_v4, verify_v4_checksums, ArpRepr, EthRepr, Icmpv4Repr, Icmpv6Repr, Ipv4Repr, Ipv6Repr, L4Repr, UdpRepr,
};
pub use crate::testkit::*;

struct Rig {
    ctx: CoreCtx<TestFrame>,
    snap: Snapshot,
    pool: Pool,
    sent: Sent,
    now: u64,
}

impl Rig {
    fn new() -> Rig {
        let params = NeighParams { capacity: 64, ..NeighParams::default() };
        Rig {
            ctx: CoreCtx::new(0, Arc::new(CoreCounters::default()), params, LbCore::standalone(LbLimits::default())),
            snap: snapshot(),
            pool: Pool { left: 16 },
            sent: Sent::default(),
            now: 1_000,
        }
    }
    fn rx(&mut self, port: u16, buf: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
        self.ctx.process_frame(&self.snap, self.now, TestFrame { buf, port }, &mut self.pool, &mut self.sent);
        std::mem::take(&mut self.sent.0)
    }
    fn timers(&mut self) -> Vec<(u16, Vec<u8>)> {
        self.ctx.run_timers(&self.snap, self.now, &mut self.pool, &mut self.sent);
        std::mem::take(&mut self.sent.0)
    }
    fn drops(&self, r: DropReason) -> u64 {
        self.ctx.counters.drop_reason(r).get()
    }
    fn event(&self, e: Event) -> u64 {
        self.ctx.counters.event(e).get()
    }
}

fn arp(op: u16, smac: MacAddr, sip: &str, tmac: MacAddr, tip: &str, eth_dst: MacAddr) -> Vec<u8> {
    let arp =
        ArpRepr { op: ArpOperation(op), sender_mac: smac, sender_ip: ip4(sip), target_mac: tmac, target_ip: ip4(tip) };
    let mut v = EthRepr { dst: eth_dst, src: smac }.frame_arp(&arp);
    v.resize(60, 0); // Ethernet padding, as on the wire.
    v
}

/// An echo request as `ping` sends it: 56 data bytes, checksums computed from scratch.
fn echo_v4(src_mac: MacAddr, src: &str, dst: &str, ttl: u8) -> Vec<u8> {
    echo_v4_sized(src_mac, src, dst, ttl, 56)
}

/// An echo request with `data_len` bytes of data (`ping -s`).
fn echo_v4_sized(src_mac: MacAddr, src: &str, dst: &str, ttl: u8, data_len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..data_len).map(|i| (i as u8).wrapping_mul(7)).collect();
    let ip = Ipv4Repr { ttl, ident: 0xabcd, ..Ipv4Repr::new(ip4(src), ip4(dst)) };
    let echo = Icmpv4Repr::EchoRequest { ident: 0x1234, seq: 1, data: &data };
    EthRepr { dst: OUR_MAC, src: src_mac }.frame_v4(&ip, &L4Repr::Icmpv4(echo))
}

fn echo_v6(src_mac: MacAddr, src: &str, dst: &str) -> Vec<u8> {
    let echo = Icmpv6Repr::EchoRequest { ident: 0x5678, seq: 3, data: b"ferrovs ping payload" };
    EthRepr { dst: OUR_MAC, src: src_mac }.frame_v6(&Ipv6Repr::new(ip6(src), ip6(dst)), &L4Repr::Icmpv6(echo))
}

/// Checks IPv4 header and ICMP checksums of an Ethernet frame by full recomputation.
fn assert_v4_checksums(frame: &[u8]) {
    assert_eq!(frame[14 + 9], IpProtocol::ICMP.0, "an ICMP packet");
    if let Err(e) = verify_v4_checksums(frame) {
        panic!("{e}");
    }
}

#[test]
fn arp_request_for_our_address_gets_exact_reply() {
    let mut rig = Rig::new();
    let out = rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST));
    assert_eq!(out.len(), 1);
    let (port, reply) = &out[0];
    assert_eq!(*port, 0);
    // The reply keeps the request's 60-byte length; the padding is not ARP.
    let expected = arp(2, OUR_MAC, "192.0.2.1", CLIENT_MAC, "192.0.2.2", CLIENT_MAC);
    assert_eq!(&reply[..42], &expected[..42]);
    assert_eq!(reply.len(), 60);
    assert_eq!(rig.event(Event::ArpRepliesOut), 1);
    // RFC 826: the requester is learned.
    let n = rig.ctx.neigh.dump(rig.now);
    assert_eq!((n[0].ip, n[0].mac), ("192.0.2.2".parse().unwrap(), Some(CLIENT_MAC)));
    assert_eq!(rig.ctx.drain_learned().count(), 1);
}

#[test]
fn arp_for_other_addresses_or_other_port_is_dropped() {
    let mut rig = Rig::new();
    assert!(rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.77", MacAddr::BROADCAST)).is_empty());
    // 198.51.100.1 is ours, but on dp1: no answer on dp0 (no ARP flux).
    assert!(rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "198.51.100.1", MacAddr::BROADCAST)).is_empty());
    assert_eq!(rig.drops(DropReason::ArpNotForUs), 2);
    assert!(rig.ctx.neigh.is_empty(), "a stranger's ARP creates no entry");
    let mut bad = arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST);
    bad[14 + 5] = 16; // plen 16: not Ethernet/IPv4 ARP.
    assert!(rig.rx(0, bad).is_empty());
    assert_eq!(rig.drops(DropReason::MalformedArp), 1);
}

/// The MACs no host has: ARP or ND that claims one must not reach the neighbour table.
const NOT_A_HOST_MAC: [MacAddr; 3] = [MacAddr::ZERO, MacAddr::BROADCAST, MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x01])];

/// The neighbour table's MAC for `ip` on dp0.
fn neigh_mac(rig: &Rig, ip: &str) -> Option<MacAddr> {
    let ip: IpAddr = ip.parse().unwrap();
    rig.ctx.neigh.dump(rig.now).iter().find(|n| n.port == 0 && n.ip == ip).and_then(|n| n.mac)
}

#[test]
fn arp_with_a_sender_mac_no_host_has_is_dropped_and_the_entry_kept() {
    let mut rig = Rig::new();
    rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST));
    assert_eq!(neigh_mac(&rig, "192.0.2.2"), Some(CLIENT_MAC));
    rig.ctx.drain_learned().for_each(drop);
    let mut bad = 0;
    for mac in NOT_A_HOST_MAC {
        // A gratuitous ARP (request and reply form), a request to us, a reply to us, each
        // claiming the client's address is at `mac`.
        let frames = [
            arp(1, mac, "192.0.2.2", MacAddr::ZERO, "192.0.2.2", MacAddr::BROADCAST),
            arp(2, mac, "192.0.2.2", MacAddr::BROADCAST, "192.0.2.2", MacAddr::BROADCAST),
            arp(1, mac, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST),
            arp(2, mac, "192.0.2.2", OUR_MAC, "192.0.2.1", OUR_MAC),
            // A stranger's address, to us: no entry either.
            arp(1, mac, "192.0.2.3", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST),
        ];
        for frame in frames {
            assert!(rig.rx(0, frame).is_empty(), "no answer to a sender at {mac}");
            bad += 1;
        }
        assert_eq!(neigh_mac(&rig, "192.0.2.2"), Some(CLIENT_MAC), "entry kept against {mac}");
        assert_eq!(neigh_mac(&rig, "192.0.2.3"), None, "no entry made for {mac}");
    }
    assert_eq!(rig.drops(DropReason::BadSenderMac), bad);
    assert_eq!(rig.ctx.drain_learned().count(), 0, "nothing reported to the other cores");
    // The entry is still the one packets use.
    let out = rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
}

/// A neighbour solicitation (`na`: false) or advertisement from `src` to `dst` about `target`,
/// with a link-layer address option (source for NS, target for NA) of `mac`.
fn nd(na: bool, src: &str, dst: Ipv6Addr, target: &str, mac: MacAddr) -> Vec<u8> {
    let mut icmp = [0u8; 32];
    if na {
        emit_neighbor_advert(&mut icmp, ip6(target), mac, true);
    } else {
        emit_neighbor_solicit(&mut icmp, ip6(target), mac);
    }
    let message = Icmpv6Repr::Other { ty: Icmpv6Type(icmp[0]), code: icmp[1], body: &icmp[4..] };
    let eth_dst = if dst.is_multicast() { MacAddr::ipv6_multicast(dst) } else { OUR_MAC };
    let ip = Ipv6Repr { hop_limit: 255, ..Ipv6Repr::new(ip6(src), dst) };
    EthRepr { dst: eth_dst, src: CLIENT_MAC }.frame_v6(&ip, &L4Repr::Icmpv6(message))
}

#[test]
fn nd_with_a_link_layer_address_no_host_has_is_dropped_and_the_entry_kept() {
    let mut rig = Rig::new();
    let (client, ours) = ("2001:db8:1::2", "2001:db8:1::1");
    let group = solicited_node(ip6(ours));
    assert_eq!(rig.rx(0, nd(false, client, group, ours, CLIENT_MAC)).len(), 1, "advert to a good solicitation");
    assert_eq!(neigh_mac(&rig, client), Some(CLIENT_MAC));
    let mut bad = 0;
    for mac in NOT_A_HOST_MAC {
        // A solicitation whose source link-layer option is `mac`: no advert, no entry change.
        assert!(rig.rx(0, nd(false, client, group, ours, mac)).is_empty(), "no advert to {mac}");
        assert!(rig.rx(0, nd(false, "2001:db8:1::3", group, ours, mac)).is_empty());
        // Adverts (solicited, to us, and unsolicited, to all nodes) with target option `mac`.
        rig.rx(0, nd(true, client, ip6(ours), client, mac));
        rig.rx(0, nd(true, client, ip6("ff02::1"), client, mac));
        bad += 4;
        assert_eq!(neigh_mac(&rig, client), Some(CLIENT_MAC), "entry kept against {mac}");
        assert_eq!(neigh_mac(&rig, "2001:db8:1::3"), None, "no entry made for {mac}");
    }
    assert_eq!(rig.drops(DropReason::BadSenderMac), bad);
    let out = rig.rx(0, echo_v6(CLIENT_MAC, client, ours));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &CLIENT_MAC.0);
}

#[test]
fn echo_from_known_neighbour_is_answered_with_valid_checksums() {
    let mut rig = Rig::new();
    rig.rx(0, arp(1, CLIENT_MAC, "192.0.2.2", MacAddr::ZERO, "192.0.2.1", MacAddr::BROADCAST));
    let request = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    let mut padded = request.clone();
    padded.extend([0u8; 4]);
    let out = rig.rx(0, padded);
    assert_eq!(out.len(), 1);
    let (port, reply) = &out[0];
    assert_eq!(*port, 0);
    assert_eq!(reply.len(), request.len(), "padding trimmed");
    assert_eq!(&reply[0..6], &CLIENT_MAC.0);
    assert_eq!(&reply[6..12], &OUR_MAC.0);
    assert_eq!(&reply[14 + 12..14 + 16], &ip4("192.0.2.1").octets());
    assert_eq!(&reply[14 + 16..14 + 20], &ip4("192.0.2.2").octets());
    assert_eq!(reply[14 + 8], DEFAULT_TTL);
    assert_eq!(reply[34], 0, "echo reply type");
    assert_eq!(&reply[38..], &request[38..], "ident, sequence and data echoed");
    assert_v4_checksums(reply);
    assert_eq!(rig.event(Event::IcmpEchoRepliesOut), 1);
}

#[test]
fn echo_from_unknown_host_is_held_until_arp_resolves() {
    let mut rig = Rig::new();
    let out = rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.9", "192.0.2.1", 64));
    assert_eq!(out.len(), 1, "only the ARP request leaves");
    let (port, req) = &out[0];
    assert_eq!(*port, 0);
    let mut expected = arp(1, OUR_MAC, "192.0.2.1", MacAddr::ZERO, "192.0.2.9", MacAddr::BROADCAST);
    expected[0..6].copy_from_slice(&MacAddr::BROADCAST.0);
    assert_eq!(req, &expected);
    // A second echo waits too; no second request.
    assert!(rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.9", "192.0.2.1", 64)).is_empty());
    assert_eq!(rig.ctx.neigh.dump(rig.now)[0].queued, 2);
    let out = rig.rx(0, arp(2, CLIENT_MAC, "192.0.2.9", OUR_MAC, "192.0.2.1", OUR_MAC));
    assert_eq!(out.len(), 2, "both held replies released");
    for (_, reply) in &out {
        assert_eq!(&reply[0..6], &CLIENT_MAC.0);
        assert_eq!(&reply[6..12], &OUR_MAC.0);
        assert_v4_checksums(reply);
    }
    assert_eq!(rig.event(Event::NeighQueuedSent), 2);
}

#[test]
fn echo_from_remote_network_goes_via_the_gateway() {
    let mut rig = Rig::new();
    let gw_mac = MacAddr([2, 0x99, 0, 0, 0, 1]);
    let out = rig.rx(0, echo_v4(gw_mac, "203.0.113.10", "192.0.2.1", 60));
    assert_eq!(&out[0].1[38..42], &ip4("192.0.2.2").octets(), "ARP asks for the gateway");
    let out = rig.rx(0, arp(2, gw_mac, "192.0.2.2", OUR_MAC, "192.0.2.1", OUR_MAC));
    assert_eq!(out.len(), 1);
    assert_eq!(&out[0].1[0..6], &gw_mac.0);
    assert_eq!(&out[0].1[14 + 16..14 + 20], &ip4("203.0.113.10").octets());
}

#[test]
fn unresolved_next_hop_is_reprobed_then_dropped_and_counted() {
    let mut rig = Rig::new();
    assert_eq!(rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.50", "192.0.2.1", 64)).len(), 1);
    let mut requests = 1;
    for _ in 0..10 {
        rig.now += rig.ctx.neigh.params().probe_interval_ms;
        requests += rig.timers().len();
    }
    assert_eq!(requests, usize::from(rig.ctx.neigh.params().max_probes));
    assert_eq!(rig.drops(DropReason::NeighUnresolved), 1);
    assert!(rig.ctx.neigh.is_empty());
}

#[test]
fn no_buffer_for_a_request_is_counted() {
    let mut rig = Rig::new();
    rig.pool.left = 0;
    assert!(rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.50", "192.0.2.1", 64)).is_empty());
    assert_eq!(rig.drops(DropReason::NoBuffer), 1);
}

#[test]
fn frames_not_for_us_are_dropped_by_reason() {
    let mut rig = Rig::new();
    rig.rx(0, vec![1, 2, 3]);
    let mut other_mac = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    other_mac[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    rig.rx(0, other_mac);
    rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.99", 64));
    let mut bad_csum = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    bad_csum[14 + 10] ^= 0xff;
    rig.rx(0, bad_csum);
    let mut bad_icmp = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    bad_icmp[50] ^= 0xff;
    rig.rx(0, bad_icmp);
    let mut truncated = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    truncated.truncate(30);
    rig.rx(0, truncated);
    let mut fragment = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    fragment[14 + 6] = 0x20; // more fragments
    let c = checksum::update_u16(u16::from_be_bytes([fragment[24], fragment[25]]), 0x4000, 0x2000);
    fragment[24..26].copy_from_slice(&c.to_be_bytes());
    rig.rx(0, fragment);
    let mut tcp = echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64);
    tcp[14 + 9] = 6;
    let c = checksum::update_u16(u16::from_be_bytes([tcp[24], tcp[25]]), 0x4001, 0x4006);
    tcp[24..26].copy_from_slice(&c.to_be_bytes());
    rig.rx(0, tcp);
    rig.rx(0, eth(OUR_MAC, CLIENT_MAC, 0x88cc));
    rig.rx(9, echo_v4(CLIENT_MAC, "192.0.2.2", "192.0.2.1", 64));
    for (reason, n) in [
        (DropReason::MalformedEthernet, 1),
        (DropReason::OtherMac, 1),
        (DropReason::IpNotForUs, 1),
        (DropReason::BadIpv4Checksum, 1),
        (DropReason::BadIcmpChecksum, 1),
        (DropReason::MalformedIpv4, 1),
        (DropReason::Fragment, 1),
        (DropReason::UnsupportedProtocol, 1),
        (DropReason::UnsupportedEthertype, 1),
        (DropReason::UnknownPort, 1),
    ] {
        assert_eq!(rig.drops(reason), n, "{}", reason.as_str());
    }
    assert_eq!(rig.ctx.counters.drops_total(), 10);
    assert_eq!(rig.event(Event::RxPackets), 10);
    assert_eq!(rig.sent.2, 0, "nothing sent");
}

#[test]
fn ipv6_neighbor_solicitation_gets_advert_and_echo_is_answered() {
    let mut rig = Rig::new();
    let client = "2001:db8:1::2";
    let ours = "2001:db8:1::1";
    let group = solicited_node(ip6(ours));
    // NS from the client, built with the wire emitters, checksummed from scratch.
    let mut ns = nd(false, client, group, ours, CLIENT_MAC);
    let out = rig.rx(0, ns.clone());
    assert_eq!(out.len(), 1);
    let na = &out[0].1;
    assert_eq!(&na[0..6], &CLIENT_MAC.0);
    assert_eq!(&na[6..12], &OUR_MAC.0);
    let ip = Ipv6Packet::new_checked(&na[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit()), (ip6(ours), ip6(client), 255));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv6Type::NEIGHBOR_ADVERT);
    assert!(icmp.na_solicited() && icmp.na_override());
    assert_eq!(icmp.ndisc_target(), Some(ip6(ours)));
    assert_eq!(icmp.target_link_addr(), Ok(Some(OUR_MAC)));
    assert!(icmp.verify_checksum(ip6(ours), ip6(client)));
    // A hop limit other than 255 means it crossed a router: refused.
    ns[14 + 7] = 64;
    assert!(rig.rx(0, ns).is_empty());
    assert_eq!(rig.drops(DropReason::NdBadHopLimit), 1);

    let out = rig.rx(0, echo_v6(CLIENT_MAC, client, ours));
    assert_eq!(out.len(), 1, "client learned from its NS");
    let reply = &out[0].1;
    let ip = Ipv6Packet::new_checked(&reply[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (ip6(ours), ip6(client)));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv6Type::ECHO_REPLY);
    assert!(icmp.verify_checksum(ip6(ours), ip6(client)));
    assert_eq!(icmp.data(), b"ferrovs ping payload");
}

#[test]
fn ipv6_echo_from_unknown_host_sends_solicitation() {
    let mut rig = Rig::new();
    let out = rig.rx(0, echo_v6(CLIENT_MAC, "2001:db8:1::7", "2001:db8:1::1"));
    assert_eq!(out.len(), 1);
    let ns = &out[0].1;
    let group = solicited_node(ip6("2001:db8:1::7"));
    assert_eq!(&ns[0..6], &MacAddr::ipv6_multicast(group).0);
    let ip = Ipv6Packet::new_checked(&ns[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.hop_limit()), (ip6("2001:db8:1::1"), group, 255));
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv6Type::NEIGHBOR_SOLICIT);
    assert_eq!(icmp.ndisc_target(), Some(ip6("2001:db8:1::7")));
    assert_eq!(icmp.source_link_addr(), Ok(Some(OUR_MAC)));
    assert!(icmp.verify_checksum(ip6("2001:db8:1::1"), group));
}

#[test]
fn remote_learn_releases_held_packets() {
    let mut rig = Rig::new();
    rig.rx(0, echo_v4(CLIENT_MAC, "192.0.2.9", "192.0.2.1", 64));
    let mut sent = Sent::default();
    let learned = NeighLearned { port: 0, ip: "192.0.2.9".parse().unwrap(), mac: CLIENT_MAC };
    rig.ctx.learn_remote(&rig.snap, rig.now, learned, &mut sent);
    assert_eq!(sent.0.len(), 1);
    assert_v4_checksums(&sent.0[0].1);
}

proptest::proptest! {
    #[test]
    fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), ethertype in 0usize..4) {
        let mut rig = Rig::new();
        let mut frame = bytes;
        if frame.len() >= 14 {
            frame[0..6].copy_from_slice(&OUR_MAC.0);
            let et: [u16; 4] = [0x0800, 0x0806, 0x86dd, 0x1234];
            frame[12..14].copy_from_slice(&et[ethertype].to_be_bytes());
        }
        let _ = rig.rx(0, frame);
        let c = &rig.ctx.counters;
        let accounted = c.drops_total() + rig.sent.2 + rig.ctx.neigh.dump(rig.now).iter().map(|n| u64::from(n.queued)).sum::<u64>();
        // Every frame is answered, held, consumed (ARP reply / NA), or dropped and counted.
        proptest::prop_assert!(accounted <= 2);
    }
}

mod kernel;
mod lb;
