//! Golden encapsulations and fragmentation-needed errors, checksums checked with the wire views,
//! property tests (encapsulate then strip gives the inner packet back), refusals that leave the
//! buffer as it was, and the spread of GUE source ports.

use super::*;
use crate::service::{TooBig, Tunnel};
use proptest::prelude::*;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// This box: the tunnels' outer source and the ICMP errors' source.
const LB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const GUE: Encap = Encap::Gue { port: 6080 };
const GUE_SPORT: u16 = 50000;
/// What the room in front of the inner packet holds before encapsulation: anything.
const ROOM_GARBAGE: u8 = 0xaa;
const PADDING: [u8; 14] = [0xee; 14];

fn with_room(room: usize, packet: &[u8], after: &[u8]) -> Vec<u8> {
    [&vec![ROOM_GARBAGE; room][..], packet, after].concat()
}

/// Asserts `packet` (exactly its total length) has a valid IPv4 header and, for TCP and UDP,
/// a valid L4 checksum.
fn assert_valid_ipv4(packet: &[u8]) {
    let ip = Ipv4Packet::new_checked(packet).expect("valid IPv4 header");
    assert_eq!(usize::from(ip.total_len()), packet.len(), "total length");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
    if ip.protocol() == IpProtocol::TCP {
        assert!(crate::wire::TcpPacket::new_checked(ip.payload()).unwrap().verify_checksum(src, dst), "TCP checksum");
    } else if ip.protocol() == IpProtocol::UDP {
        assert!(UdpPacket::new_checked(ip.payload()).unwrap().verify_checksum(src, dst), "UDP checksum");
    }
}

/// Checks an encapsulation field by field with the wire views: the outer header against the
/// inner one, and the inner packet unchanged after the overhead.
fn assert_encapsulates(outer: &[u8], inner: &[u8], src: Ipv4Addr, dst: Ipv4Addr, encap: Encap, sport: u16) {
    let ip = Ipv4Packet::new_checked(outer).expect("valid outer header");
    let original = Ipv4Packet::new_unchecked(inner);
    assert!(ip.verify_checksum(), "outer checksum");
    assert_eq!(usize::from(ip.header_len()), IPV4_HEADER_LEN);
    assert_eq!(usize::from(ip.total_len()), outer.len());
    assert_eq!((ip.dscp(), ip.ecn()), (original.dscp(), original.ecn()), "TOS copied");
    assert_eq!(ip.ident(), original.ident());
    assert_eq!(ip.dont_frag(), original.dont_frag());
    assert!(!ip.more_frags());
    assert_eq!(ip.frag_offset(), 0);
    assert_eq!(ip.ttl(), 64);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (src, dst));
    let overhead = match encap {
        Encap::Ipip => {
            assert_eq!(ip.protocol(), IpProtocol::IPIP);
            IPIP_OVERHEAD
        }
        Encap::Gue { port } => {
            assert_eq!(ip.protocol(), IpProtocol::UDP);
            let udp = UdpPacket::new_checked(ip.payload()).expect("valid UDP header");
            assert_eq!((udp.src_port(), udp.dst_port()), (sport, port));
            assert_eq!(usize::from(udp.length()), UDP_HEADER_LEN + inner.len());
            assert_eq!(udp.checksum(), 0);
            GUE_OVERHEAD
        }
    };
    assert_eq!(&outer[overhead..], inner, "inner packet unchanged");
}

/// Checks a fragmentation-needed about `offending` with the wire views.
fn assert_frag_needed(error: &[u8], offending: &[u8], from: Ipv4Addr, mtu: u16) {
    let ip = Ipv4Packet::new_checked(error).expect("valid IPv4 header");
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    assert_eq!(usize::from(ip.total_len()), error.len());
    assert!(error.len() <= 576);
    assert_eq!((ip.src_addr(), ip.dst_addr()), (from, Ipv4Packet::new_unchecked(offending).src_addr()));
    assert_eq!(ip.protocol(), IpProtocol::ICMP);
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum(), "ICMP checksum");
    assert_eq!((icmp.msg_type(), icmp.code(), icmp.next_hop_mtu()), (Icmpv4Type::DEST_UNREACHABLE, 4, mtu));
    let quote = icmp.data();
    assert_eq!(quote.len(), offending.len().min(548));
    assert_eq!(quote, &offending[..quote.len()], "quote is the offending packet's start");
}

#[test]
fn overheads_are_the_service_tunnels() {
    for (encap, overhead) in [(Encap::Ipip, IPIP_OVERHEAD), (GUE, GUE_OVERHEAD)] {
        assert_eq!(Tunnel { encap, too_big: TooBig::default() }.overhead(), overhead, "{encap:?}");
    }
}

#[test]
fn golden_inner_packets_are_valid() {
    assert_valid_ipv4(&SYN);
    assert_valid_ipv4(&UDP_NO_DF);
    assert_valid_ipv4(&SHORT_TCP);
}

#[test]
fn ipip_encapsulation_of_a_syn() {
    let mut buf = with_room(IPIP_OVERHEAD, &SYN, &[]);
    assert_eq!(encap_v4(&mut buf, LB, BACKEND, Encap::Ipip, GUE_SPORT), Ok(IPIP_SYN.len()));
    assert_eq!(buf, IPIP_SYN);
    assert_encapsulates(&buf, &SYN, LB, BACKEND, Encap::Ipip, GUE_SPORT);
}

#[test]
fn ipip_encapsulation_of_udp_without_df_leaves_padding() {
    let mut buf = with_room(IPIP_OVERHEAD, &UDP_NO_DF, &PADDING);
    assert_eq!(encap_v4(&mut buf, LB, BACKEND, Encap::Ipip, GUE_SPORT), Ok(IPIP_UDP_NO_DF.len()));
    assert_eq!(buf[..IPIP_UDP_NO_DF.len()], IPIP_UDP_NO_DF);
    assert_eq!(buf[IPIP_UDP_NO_DF.len()..], PADDING, "padding untouched");
    assert_encapsulates(&buf[..IPIP_UDP_NO_DF.len()], &UDP_NO_DF, LB, BACKEND, Encap::Ipip, GUE_SPORT);
}

#[test]
fn gue_encapsulation_of_a_syn() {
    let mut buf = with_room(GUE_OVERHEAD, &SYN, &[]);
    assert_eq!(encap_v4(&mut buf, LB, BACKEND, GUE, GUE_SPORT), Ok(GUE_SYN.len()));
    assert_eq!(buf, GUE_SYN);
    assert_encapsulates(&buf, &SYN, LB, BACKEND, GUE, GUE_SPORT);
}

/// A 1500-byte UDP datagram with DF, payload bytes 0, 1, 2, ... (mod 256). This file builds its
/// inputs with the wire views, not `testkit::packet`: its property tests need IP options and
/// raw flag/fragment words the builders do not model.
fn big_udp() -> Vec<u8> {
    let mut b = vec![0u8; 1500];
    let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    ip.set_total_len(1500);
    ip.set_ident(0x1234);
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::UDP);
    ip.set_src_addr(CLIENT);
    ip.set_dst_addr(VIP);
    ip.fill_checksum();
    let mut udp = UdpPacket::new_unchecked(&mut b[IPV4_HEADER_LEN..]);
    udp.set_src_port(40000);
    udp.set_dst_port(53);
    udp.set_length(1480);
    for (i, byte) in udp.payload_mut().iter_mut().enumerate() {
        *byte = i as u8;
    }
    udp.fill_checksum(CLIENT.into(), VIP.into());
    b
}

#[test]
fn frag_needed_about_a_1500_byte_udp_datagram() {
    let offending = big_udp();
    assert_eq!(offending[..BIG_UDP_START.len()], BIG_UDP_START, "built as the golden bytes were");
    assert_valid_ipv4(&offending);
    let mut buf = offending.clone();
    assert_eq!(icmp_frag_needed_v4(&mut buf, LB, 1480), Ok(576));
    assert_eq!(buf[..28], FRAG_NEEDED_BIG_UDP_HEADERS);
    assert_frag_needed(&buf[..576], &offending, LB, 1480);
}

#[test]
fn frag_needed_about_a_short_tcp_segment_quotes_all_of_it() {
    let spare = [0x55; 28];
    let mut buf = [&SHORT_TCP[..], &spare].concat();
    assert_eq!(icmp_frag_needed_v4(&mut buf, LB, 1472), Ok(28 + SHORT_TCP.len()));
    assert_eq!(buf[..28], FRAG_NEEDED_SHORT_TCP_HEADERS);
    assert_eq!(buf[28..], SHORT_TCP);
    assert_frag_needed(&buf, &SHORT_TCP, LB, 1472);
}

#[test]
fn frag_needed_ignores_padding() {
    let mut buf = [&SHORT_TCP[..], &PADDING, &[0x55; 14]].concat();
    assert_eq!(icmp_frag_needed_v4(&mut buf, LB, 1472), Ok(28 + SHORT_TCP.len()));
    assert_eq!(buf[..28], FRAG_NEEDED_SHORT_TCP_HEADERS);
    assert_frag_needed(&buf[..28 + SHORT_TCP.len()], &SHORT_TCP, LB, 1472);
}

/// Asserts `f` refuses `packet` with `err` and leaves it byte-identical.
fn assert_refused(packet: &[u8], err: XlateError, f: impl Fn(&mut [u8]) -> Result<usize, XlateError>, why: &str) {
    let mut buf = packet.to_vec();
    assert_eq!(f(&mut buf), Err(err), "{why}");
    assert_eq!(buf, packet, "{why}: buffer changed");
}

fn encap_with(encap: Encap) -> impl Fn(&mut [u8]) -> Result<usize, XlateError> {
    move |buf| encap_v4(buf, LB, BACKEND, encap, GUE_SPORT)
}

fn frag_needed(buf: &mut [u8]) -> Result<usize, XlateError> {
    icmp_frag_needed_v4(buf, LB, 1480)
}

/// `SYN` with byte `at` set to `value` and the IPv4 checksum fixed up.
fn syn_with(at: usize, value: u8) -> Vec<u8> {
    let mut b = SYN.to_vec();
    b[at] = value;
    Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
    b
}

#[test]
fn encap_refuses_bad_inner_packets() {
    use XlateError::{Malformed, Unsupported};
    for (encap, overhead) in [(Encap::Ipip, IPIP_OVERHEAD), (GUE, GUE_OVERHEAD)] {
        let refused = |inner: &[u8], err, why: &str| {
            assert_refused(&with_room(overhead, inner, &[]), err, encap_with(encap), &format!("{encap:?}: {why}"))
        };
        for n in 0..SYN.len() {
            refused(&SYN[..n], Malformed, &format!("inner cut to {n} bytes"));
        }
        refused(&syn_with(0, 0x65), Malformed, "version 6");
        for ihl in 0..5 {
            refused(&syn_with(0, 0x40 | ihl), Malformed, &format!("IHL {ihl}"));
        }
        refused(&syn_with(0, 0x4f), Malformed, "IHL past the buffer");
        refused(&syn_with(3, 19), Malformed, "total length below the header");
        refused(&syn_with(3, 45), Malformed, "total length past the buffer");
        // Room one byte short: the inner header is read one byte in, and is not one.
        let short_room = with_room(overhead - 1, &SYN, &[]);
        assert_refused(&short_room, Malformed, encap_with(encap), &format!("{encap:?}: room too small"));
        for n in 0..=overhead {
            let room_only = vec![ROOM_GARBAGE; n];
            assert_refused(&room_only, Malformed, encap_with(encap), &format!("{encap:?}: {n}-byte buffer"));
        }
        // Well-formed, but the outer total length would not fit 16 bits.
        let mut huge = vec![0u8; 65535];
        huge[..SYN.len()].copy_from_slice(&SYN);
        let mut ip = Ipv4Packet::new_unchecked(&mut huge[..]);
        ip.set_total_len(65535);
        ip.fill_checksum();
        refused(&huge, Unsupported, "outer length past 65535");
    }
}

#[test]
fn frag_needed_refuses_malformed_packets() {
    use XlateError::Malformed;
    let spare = [&SHORT_TCP[..], &[0u8; 28]].concat();
    for n in 0..IPV4_HEADER_LEN {
        assert_refused(&spare[..n], Malformed, frag_needed, &format!("buffer of {n} bytes"));
    }
    assert_refused(&SYN[..SYN.len() - 1], Malformed, frag_needed, "total length past the buffer");
    let mut bad = spare.clone();
    bad[0] = 0x65;
    assert_refused(&bad, Malformed, frag_needed, "version 6");
    bad[0] = 0x44;
    assert_refused(&bad, Malformed, frag_needed, "IHL 4");
    // No room for the 28 bytes of headers in front of the quote.
    for spare_room in 0..28 {
        let buf = &spare[..SHORT_TCP.len() + spare_room];
        assert_refused(buf, Malformed, frag_needed, &format!("{spare_room} bytes of spare room"));
    }
    let mut big = big_udp();
    big.truncate(560);
    let mut ip = Ipv4Packet::new_unchecked(&mut big[..]);
    ip.set_total_len(560);
    ip.fill_checksum();
    assert_refused(&big, Malformed, frag_needed, "560 bytes: no room for 28 + 548");
    // ICMP whose header is cut: its type (error or not) cannot be told.
    let mut icmp = icmp_packet(Icmpv4Type::ECHO_REQUEST, 64);
    icmp.truncate(IPV4_HEADER_LEN + 7);
    Ipv4Packet::new_unchecked(&mut icmp[..]).set_total_len(27);
    Ipv4Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    icmp.extend_from_slice(&[0; 28]);
    assert_refused(&icmp, Malformed, frag_needed, "7 bytes of ICMP");
}

/// An ICMP message of `msg_type` from the client to the VIP, `len` bytes long, with room for
/// an error about it after it.
fn icmp_packet(msg_type: Icmpv4Type, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len + 28];
    let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    ip.set_total_len(len as u16);
    ip.set_dont_frag(true);
    ip.set_ttl(64);
    ip.set_protocol(IpProtocol::ICMP);
    ip.set_src_addr(CLIENT);
    ip.set_dst_addr(VIP);
    ip.fill_checksum();
    let mut icmp = Icmpv4Packet::new_unchecked(&mut b[IPV4_HEADER_LEN..len]);
    icmp.set_msg_type(msg_type);
    icmp.fill_checksum();
    b
}

#[test]
fn frag_needed_is_never_about_an_icmp_error() {
    for msg_type in [3, 4, 5, 11, 12] {
        let packet = icmp_packet(Icmpv4Type(msg_type), 64);
        assert_refused(&packet, XlateError::Unsupported, frag_needed, &format!("ICMP type {msg_type}"));
    }
    for msg_type in [Icmpv4Type::ECHO_REQUEST, Icmpv4Type::ECHO_REPLY] {
        let mut buf = icmp_packet(msg_type, 64);
        let offending = buf[..64].to_vec();
        assert_eq!(frag_needed(&mut buf), Ok(28 + 64), "{msg_type:?}");
        assert_frag_needed(&buf[..28 + 64], &offending, LB, 1480);
    }
}

#[test]
fn frag_needed_is_never_about_a_non_first_fragment() {
    let mut packet = [&SHORT_TCP[..], &[0u8; 28]].concat();
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_frag_offset(1480);
    ip.fill_checksum();
    assert_refused(&packet, XlateError::Unsupported, frag_needed, "fragment offset 1480");
    // The first fragment is answered: it has the ports the sender matches the error with.
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_frag_offset(0);
    ip.set_more_frags(true);
    ip.fill_checksum();
    let offending = packet[..SHORT_TCP.len()].to_vec();
    assert_eq!(frag_needed(&mut packet), Ok(28 + SHORT_TCP.len()));
    assert_frag_needed(&packet, &offending, LB, 1480);
}

#[test]
fn frag_needed_is_never_about_group_or_non_host_addresses() {
    let with_addrs = |src: Ipv4Addr, dst: Ipv4Addr| {
        let mut b = [&SHORT_TCP[..], &[0u8; 28]].concat();
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
        b
    };
    let non_hosts = [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(0, 1, 2, 3),
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 255, 255, 250),
        Ipv4Addr::new(240, 0, 0, 1),
        Ipv4Addr::BROADCAST,
    ];
    for src in non_hosts {
        assert_refused(&with_addrs(src, VIP), XlateError::Unsupported, frag_needed, &format!("from {src}"));
    }
    for dst in [Ipv4Addr::new(224, 0, 0, 5), Ipv4Addr::BROADCAST] {
        assert_refused(&with_addrs(CLIENT, dst), XlateError::Unsupported, frag_needed, &format!("to {dst}"));
    }
}

fn tuple(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, proto: u8) -> Tuple4 {
    Tuple4 { src, dst, sport, dport, proto: IpProtocol(proto) }
}

const GUE_SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;

#[test]
fn gue_source_port_is_per_flow() {
    let flow = tuple(CLIENT, 40000, VIP, 80, 6);
    let port = gue_source_port(&flow);
    assert!(GUE_SOURCE_PORTS.contains(&port));
    assert_eq!(gue_source_port(&flow), port, "deterministic");
    // Each field counts.
    let others = [
        tuple(Ipv4Addr::new(192, 0, 2, 3), 40000, VIP, 80, 6),
        tuple(CLIENT, 40001, VIP, 80, 6),
        tuple(CLIENT, 40000, Ipv4Addr::new(192, 0, 2, 101), 80, 6),
        tuple(CLIENT, 40000, VIP, 443, 6),
        tuple(CLIENT, 40000, VIP, 80, 17),
        tuple(VIP, 80, CLIENT, 40000, 6),
    ];
    for other in others {
        assert_ne!(gue_source_port(&other), port, "{other:?}");
    }
    // The extremes of the range are reachable: 14 hash bits over 49152..=65535.
    assert_eq!(u32::from(GUE_SOURCE_PORT_BASE) + (1 << GUE_SOURCE_PORT_BITS) - 1, 65535);
}

/// splitmix64: a fixed, seeded stream of tuples for the spread tests.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Asserts 10,000 flows spread over the port range: each sixteenth of it (1024 ports, 6.25% of
/// flows expected, standard deviation 0.24 points) gets between 4% and 8% of them, and at
/// least 7,000 distinct ports are used (10,000 flows thrown at 16,384 ports uniformly use
/// 16384 * (1 - e^(-10000/16384)), about 7,490, give or take 30).
fn assert_spread(flows: impl Iterator<Item = Tuple4>) {
    let mut per_sixteenth = [0u32; 16];
    let mut used = vec![false; 1 << GUE_SOURCE_PORT_BITS];
    let mut n = 0;
    for flow in flows {
        let port = gue_source_port(&flow);
        assert!(GUE_SOURCE_PORTS.contains(&port), "{port}");
        let index = usize::from(port - GUE_SOURCE_PORT_BASE);
        per_sixteenth[index / 1024] += 1;
        used[index] = true;
        n += 1;
    }
    assert_eq!(n, 10_000);
    for (i, count) in per_sixteenth.iter().enumerate() {
        assert!((400..=800).contains(count), "sixteenth {i}: {count} flows of 10000: {per_sixteenth:?}");
    }
    let distinct = used.iter().filter(|u| **u).count();
    assert!(distinct >= 7000, "{distinct} distinct ports");
}

#[test]
fn gue_source_ports_spread_over_random_flows() {
    let mut state = 0x5eed;
    assert_spread((0..10_000).map(|_| {
        let (a, b) = (splitmix64(&mut state), splitmix64(&mut state));
        let proto = if b & 1 == 0 { 6 } else { 17 };
        tuple(Ipv4Addr::from(a as u32), (b >> 8) as u16, Ipv4Addr::from((a >> 32) as u32), (b >> 24) as u16, proto)
    }));
}

#[test]
fn gue_source_ports_spread_over_one_clients_connections() {
    // The common skewed case: one client, one service, only the client's port varies.
    assert_spread((0..10_000).map(|i| tuple(CLIENT, 20_000 + i, VIP, 443, 6)));
}

/// An IPv4 packet for the property tests: any header fields, options and payload, a valid
/// header (version, IHL, total length, checksum) around them.
#[derive(Clone, Debug)]
struct AnyPacket {
    tos: u8,
    ident: u16,
    flags_frag: u16,
    ttl: u8,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    options: Vec<u8>,
    payload: Vec<u8>,
}

impl AnyPacket {
    fn build(&self) -> Vec<u8> {
        let header_len = IPV4_HEADER_LEN + self.options.len();
        let total_len = header_len + self.payload.len();
        let mut b = vec![0u8; total_len];
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(header_len as u8);
        ip.set_dscp(self.tos >> 2);
        ip.set_ecn(self.tos & 3);
        ip.set_total_len(total_len as u16);
        ip.set_ident(self.ident);
        ip.set_ttl(self.ttl);
        ip.set_protocol(IpProtocol(self.proto));
        ip.set_src_addr(self.src);
        ip.set_dst_addr(self.dst);
        ip.options_mut().copy_from_slice(&self.options);
        b[6..8].copy_from_slice(&self.flags_frag.to_be_bytes());
        b[header_len..].copy_from_slice(&self.payload);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }
}

fn address() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn any_packet(max_payload: usize) -> impl Strategy<Value = AnyPacket> {
    (
        (any::<u8>(), any::<u16>(), any::<u16>(), any::<u8>(), any::<u8>()),
        (address(), address()),
        (0..=10usize).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4)),
        proptest::collection::vec(any::<u8>(), 0..=max_payload),
    )
        .prop_map(|((tos, ident, flags_frag, ttl, proto), (src, dst), options, payload)| AnyPacket {
            tos,
            ident,
            flags_frag,
            ttl,
            proto,
            src,
            dst,
            options,
            payload,
        })
}

fn any_encap() -> impl Strategy<Value = Encap> {
    prop_oneof![Just(Encap::Ipip), any::<u16>().prop_map(|port| Encap::Gue { port })]
}

proptest! {
    #[test]
    fn encap_then_strip_gives_the_inner_packet_back(
        inner in any_packet(300),
        (src, dst) in (address(), address()),
        encap in any_encap(),
        sport in any::<u16>(),
        room in proptest::collection::vec(any::<u8>(), GUE_OVERHEAD),
        padding in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let packet = inner.build();
        let overhead = Tunnel { encap, too_big: TooBig::default() }.overhead();
        let mut buf = [&room[..overhead], &packet, &padding].concat();
        let len = encap_v4(&mut buf, src, dst, encap, sport).unwrap();
        prop_assert_eq!(len, overhead + packet.len());
        prop_assert_eq!(&buf[overhead..len], &packet[..], "stripped: the inner packet");
        prop_assert_eq!(&buf[len..], &padding[..]);
        assert_encapsulates(&buf[..len], &packet, src, dst, encap, sport);
    }

    #[test]
    fn frag_needed_quotes_the_start_of_any_packet(
        offending in any_packet(1600),
        spare in proptest::collection::vec(any::<u8>(), 28..40),
        from in address(),
        mtu in any::<u16>(),
    ) {
        let mut offending = offending;
        // Answerable: first fragments from one host, ICMP only if not an error.
        offending.flags_frag &= 0xe000;
        offending.src = Ipv4Addr::new(198, 51, 100, offending.src.octets()[3]);
        offending.dst = Ipv4Addr::new(203, 0, 113, offending.dst.octets()[3]);
        if offending.proto == IpProtocol::ICMP.0 {
            offending.proto = IpProtocol::TCP.0;
        }
        let packet = offending.build();
        let mut buf = [&packet[..], &spare].concat();
        let len = icmp_frag_needed_v4(&mut buf, from, mtu).unwrap();
        prop_assert_eq!(len, 28 + packet.len().min(548));
        assert_frag_needed(&buf[..len], &packet, from, mtu);
    }

    /// Arbitrary and damaged buffers: no panic, and a refusal leaves the buffer as it was.
    #[test]
    fn damaged_buffers_never_panic(
        which in any::<prop::sample::Index>(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        encap in any_encap(),
        random in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let samples = [
            with_room(IPIP_OVERHEAD, &SYN, &[]),
            with_room(GUE_OVERHEAD, &UDP_NO_DF, &PADDING),
            [&SHORT_TCP[..], &[0; 28]].concat(),
            icmp_packet(Icmpv4Type::ECHO_REQUEST, 40),
            random,
        ];
        let mut packet = samples[which.index(samples.len())].clone();
        for (at, value) in damage {
            if !packet.is_empty() {
                let at = at.index(packet.len());
                packet[at] = value;
            }
        }
        packet.truncate(cut.index(packet.len() + 1));
        let mut buf = packet.clone();
        if encap_v4(&mut buf, LB, BACKEND, encap, GUE_SPORT).is_err() {
            prop_assert_eq!(&buf, &packet);
        }
        let mut buf = packet.clone();
        if icmp_frag_needed_v4(&mut buf, LB, 1480).is_err() {
            prop_assert_eq!(&buf, &packet);
        }
    }
}

// The expected bytes below were derived independently of this crate: packed field by field
// and checksummed from scratch (RFC 1071) by a separate Python script, not by the wire views.
// Independent on purpose: not built with `testkit::packet` either.

/// The inner packet: a TCP SYN from the client to the VIP with an MSS option.
const SYN: [u8; 44] = [
    0x45, 0x28, 0x00, 0x2c, // version 4, IHL 5; TOS 0x28 (AF11); total length 44
    0x1c, 0x46, 0x40, 0x00, // identification 0x1c46; DF, offset 0
    0x40, 0x06, 0x99, 0xf7, // TTL 64; protocol 6 (TCP); header checksum
    0xc0, 0x00, 0x02, 0x02, // source 192.0.2.2
    0xc0, 0x00, 0x02, 0x64, // destination 192.0.2.100
    0x9c, 0x40, 0x00, 0x50, // TCP: source port 40000; destination port 80
    0x01, 0x02, 0x03, 0x04, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgment number
    0x60, 0x02, 0xfa, 0xf0, // data offset 6; SYN; window 0xfaf0
    0x78, 0x38, 0x00, 0x00, // checksum; urgent pointer
    0x02, 0x04, 0x05, 0xb4, // option: MSS 1460
];

const IPIP_SYN: [u8; 64] = [
    0x45, 0x28, 0x00, 0x40, // outer: version 4, IHL 5; TOS copied; total length 20 + 44
    0x1c, 0x46, 0x40, 0x00, // identification copied; DF copied
    0x40, 0x04, 0xb8, 0x0b, // TTL 64; protocol 4 (IPIP); header checksum
    0xcb, 0x00, 0x71, 0x01, // source 203.0.113.1 (this box)
    0xc6, 0x33, 0x64, 0x0b, // destination 198.51.100.11 (the backend)
    0x45, 0x28, 0x00, 0x2c, // inner, unchanged
    0x1c, 0x46, 0x40, 0x00, //
    0x40, 0x06, 0x99, 0xf7, //
    0xc0, 0x00, 0x02, 0x02, //
    0xc0, 0x00, 0x02, 0x64, //
    0x9c, 0x40, 0x00, 0x50, //
    0x01, 0x02, 0x03, 0x04, //
    0x00, 0x00, 0x00, 0x00, //
    0x60, 0x02, 0xfa, 0xf0, //
    0x78, 0x38, 0x00, 0x00, //
    0x02, 0x04, 0x05, 0xb4, //
];

const GUE_SYN: [u8; 72] = [
    0x45, 0x28, 0x00, 0x48, // outer: version 4, IHL 5; TOS copied; total length 28 + 44
    0x1c, 0x46, 0x40, 0x00, // identification copied; DF copied
    0x40, 0x11, 0xb7, 0xf6, // TTL 64; protocol 17 (UDP); header checksum
    0xcb, 0x00, 0x71, 0x01, // source 203.0.113.1 (this box)
    0xc6, 0x33, 0x64, 0x0b, // destination 198.51.100.11 (the backend)
    0xc3, 0x50, 0x17, 0xc0, // UDP: source port 50000 (per flow); destination port 6080
    0x00, 0x34, 0x00, 0x00, // UDP length 8 + 44; checksum 0 (none)
    0x45, 0x28, 0x00, 0x2c, // inner, unchanged, right after UDP (GUE variant 1)
    0x1c, 0x46, 0x40, 0x00, //
    0x40, 0x06, 0x99, 0xf7, //
    0xc0, 0x00, 0x02, 0x02, //
    0xc0, 0x00, 0x02, 0x64, //
    0x9c, 0x40, 0x00, 0x50, //
    0x01, 0x02, 0x03, 0x04, //
    0x00, 0x00, 0x00, 0x00, //
    0x60, 0x02, 0xfa, 0xf0, //
    0x78, 0x38, 0x00, 0x00, //
    0x02, 0x04, 0x05, 0xb4, //
];

/// The inner packet: a UDP datagram without DF, TOS EF with ECT(0).
const UDP_NO_DF: [u8; 32] = [
    0x45, 0xba, 0x00, 0x20, // version 4, IHL 5; TOS 0xba (EF, ECT(0)); total length 32
    0xbe, 0xef, 0x00, 0x00, // identification 0xbeef; no flags, offset 0
    0x40, 0x11, 0x36, 0xbd, // TTL 64; protocol 17 (UDP); header checksum
    0xc0, 0x00, 0x02, 0x02, // source 192.0.2.2
    0xc0, 0x00, 0x02, 0x64, // destination 192.0.2.100
    0x9c, 0x40, 0x00, 0x35, // UDP: source port 40000; destination port 53
    0x00, 0x0c, 0x00, 0x29, // length 12; checksum
    0x70, 0x69, 0x6e, 0x67, // "ping"
];

const IPIP_UDP_NO_DF: [u8; 52] = [
    0x45, 0xba, 0x00, 0x34, // outer: version 4, IHL 5; TOS copied (ECN too); total length 20 + 32
    0xbe, 0xef, 0x00, 0x00, // identification copied; DF clear, as inside
    0x40, 0x04, 0x54, 0xdc, // TTL 64; protocol 4 (IPIP); header checksum
    0xcb, 0x00, 0x71, 0x01, // source 203.0.113.1 (this box)
    0xc6, 0x33, 0x64, 0x0b, // destination 198.51.100.11 (the backend)
    0x45, 0xba, 0x00, 0x20, // inner, unchanged
    0xbe, 0xef, 0x00, 0x00, //
    0x40, 0x11, 0x36, 0xbd, //
    0xc0, 0x00, 0x02, 0x02, //
    0xc0, 0x00, 0x02, 0x64, //
    0x9c, 0x40, 0x00, 0x35, //
    0x00, 0x0c, 0x00, 0x29, //
    0x70, 0x69, 0x6e, 0x67, //
];

/// The first bytes of `big_udp()`.
const BIG_UDP_START: [u8; 32] = [
    0x45, 0x00, 0x05, 0xdc, // version 4, IHL 5; TOS 0; total length 1500
    0x12, 0x34, 0x40, 0x00, // identification 0x1234; DF
    0x40, 0x11, 0x9e, 0x76, // TTL 64; protocol 17 (UDP); header checksum
    0xc0, 0x00, 0x02, 0x02, // source 192.0.2.2
    0xc0, 0x00, 0x02, 0x64, // destination 192.0.2.100
    0x9c, 0x40, 0x00, 0x35, // UDP: source port 40000; destination port 53
    0x05, 0xc8, 0x4e, 0x1f, // length 1480; checksum
    0x00, 0x01, 0x02, 0x03, // payload 0, 1, 2, ...
];

const FRAG_NEEDED_BIG_UDP_HEADERS: [u8; 28] = [
    0x45, 0xc0, 0x02, 0x40, // version 4, IHL 5; TOS 0xc0 (internetwork control); total length 576
    0x00, 0x00, 0x00, 0x00, // identification 0; no flags
    0x40, 0x01, 0x79, 0xf9, // TTL 64; protocol 1 (ICMP); header checksum
    0xcb, 0x00, 0x71, 0x01, // source 203.0.113.1 (this box)
    0xc0, 0x00, 0x02, 0x02, // destination 192.0.2.2 (the offending packet's source)
    0x03, 0x04, 0x7a, 0x47, // ICMP type 3 code 4 (fragmentation needed); checksum over 8 + 548
    0x00, 0x00, 0x05, 0xc8, // unused; next-hop MTU 1480
];

/// A short TCP segment, client to VIP: PSH|ACK with "GET /\r\n".
const SHORT_TCP: [u8; 47] = [
    0x45, 0x00, 0x00, 0x2f, // version 4, IHL 5; TOS 0; total length 47
    0x12, 0x34, 0x40, 0x00, // identification 0x1234; DF
    0x40, 0x06, 0xa4, 0x2e, // TTL 64; protocol 6 (TCP); header checksum
    0xc0, 0x00, 0x02, 0x02, // source 192.0.2.2
    0xc0, 0x00, 0x02, 0x64, // destination 192.0.2.100
    0x9c, 0x40, 0x00, 0x50, // TCP: source port 40000; destination port 80
    0x01, 0x02, 0x03, 0x04, // sequence number
    0x0a, 0x0b, 0x0c, 0x0d, // acknowledgment number
    0x50, 0x18, 0xfa, 0xf0, // data offset 5; PSH|ACK; window 0xfaf0
    0xa5, 0x4c, 0x00, 0x00, // checksum; urgent pointer
    0x47, 0x45, 0x54, 0x20, // "GET "
    0x2f, 0x0d, 0x0a, // "/\r\n"
];

const FRAG_NEEDED_SHORT_TCP_HEADERS: [u8; 28] = [
    0x45, 0xc0, 0x00, 0x4b, // version 4, IHL 5; TOS 0xc0 (internetwork control); total length 28 + 47
    0x00, 0x00, 0x00, 0x00, // identification 0; no flags
    0x40, 0x01, 0x7b, 0xee, // TTL 64; protocol 1 (ICMP); header checksum
    0xcb, 0x00, 0x71, 0x01, // source 203.0.113.1 (this box)
    0xc0, 0x00, 0x02, 0x02, // destination 192.0.2.2 (the offending packet's source)
    0x03, 0x04, 0x7b, 0xc4, // ICMP type 3 code 4 (fragmentation needed); checksum over 8 + 47
    0x00, 0x00, 0x05, 0xc0, // unused; next-hop MTU 1472
];
