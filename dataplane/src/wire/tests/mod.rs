//! Cross-module tests: whole golden frames through `summarize`, and arbitrary bytes through
//! every view.

pub mod golden;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

#[test]
fn summarize_golden_frames() {
    let s = summarize(&golden::ARP_REQUEST).unwrap();
    assert_eq!(s.ethertype, EtherType::ARP);
    assert_eq!(s.arp_op, Some(ArpOperation::REQUEST));
    assert_eq!(s.src, Some(IpAddr::V4(Ipv4Addr::new(192, 168, 122, 10))));
    assert_eq!(s.dst, Some(IpAddr::V4(Ipv4Addr::new(192, 168, 122, 1))));
    assert_eq!((s.protocol, s.ports, s.icmp), (None, None, None));

    let s = summarize(&golden::ICMP_ECHO_REQUEST).unwrap();
    assert_eq!(s.ethertype, EtherType::IPV4);
    assert_eq!(s.protocol, Some(IpProtocol::ICMP));
    assert_eq!(s.icmp, Some((8, 0)));
    assert_eq!(s.ports, None);
    assert!(!s.fragment);

    let s = summarize(&golden::TCP_SYN).unwrap();
    assert_eq!(s.protocol, Some(IpProtocol::TCP));
    assert_eq!(s.src, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    assert_eq!(s.dst, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))));
    assert_eq!(s.ports, Some((54321, 80)));

    let s = summarize(&golden::UDP_DNS_QUERY).unwrap();
    assert_eq!(s.protocol, Some(IpProtocol::UDP));
    assert_eq!(s.ports, Some((53000, 53)));

    let s = summarize(&golden::IPV6_NEIGHBOR_SOLICIT).unwrap();
    assert_eq!(s.ethertype, EtherType::IPV6);
    assert_eq!(s.protocol, Some(IpProtocol::ICMPV6));
    assert_eq!(s.icmp, Some((135, 0)));
    assert_eq!(s.dst, Some(IpAddr::V6("ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap())));

    let s = summarize(&golden::ICMPV6_ECHO_REQUEST).unwrap();
    assert_eq!(s.icmp, Some((128, 0)));
    assert_eq!(s.src, Some(IpAddr::V6("2001:db8::1".parse::<Ipv6Addr>().unwrap())));
}

#[test]
fn summarize_stops_at_unknown_and_fragments() {
    let mut f = golden::TCP_SYN;
    f[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
    let s = summarize(&f).unwrap();
    assert_eq!(s.ethertype, EtherType(0x88cc));
    assert_eq!(s.src, None);

    // A non-first fragment has no TCP header to read.
    let mut f = golden::TCP_SYN;
    f[20] = 0x00;
    f[21] = 0xb9;
    let s = summarize(&f).unwrap();
    assert!(s.fragment);
    assert_eq!(s.ports, None);

    // An unknown protocol is fine; a malformed L4 header is not.
    let mut f = golden::TCP_SYN;
    f[23] = 47; // GRE
    assert_eq!(summarize(&f).unwrap().ports, None);
    let mut f = golden::TCP_SYN;
    f[46] = 0x30; // TCP data offset 3
    assert_eq!(summarize(&f), Err(WireError::BadHeaderLength));
}

#[test]
fn summarize_rejects_every_truncation() {
    // Each golden frame, cut anywhere inside its headers, is an error and never a panic.
    let frames: [(&[u8], usize); 6] = [
        (&golden::ARP_REQUEST, 14 + 28),
        (&golden::ICMP_ECHO_REQUEST, golden::ICMP_ECHO_REQUEST.len()),
        (&golden::TCP_SYN, golden::TCP_SYN.len()),
        (&golden::UDP_DNS_QUERY, golden::UDP_DNS_QUERY.len()),
        (&golden::IPV6_NEIGHBOR_SOLICIT, golden::IPV6_NEIGHBOR_SOLICIT.len()),
        (&golden::ICMPV6_ECHO_REQUEST, golden::ICMPV6_ECHO_REQUEST.len()),
    ];
    for (f, needed) in frames {
        assert!(summarize(f).is_ok());
        for n in 0..needed {
            assert_eq!(summarize(&f[..n]), Err(WireError::Truncated), "cut at {n}");
        }
        exercise_views(f);
    }
}

/// Views over `&'a [u8]` hand out `'a` payloads, so a parse function can return the L4 bytes.
fn l4_bytes(frame: &[u8]) -> &[u8] {
    let ip = EthernetFrame::new_checked(frame).unwrap().into_payload();
    Ipv4Packet::new_checked(ip).unwrap().into_payload()
}

#[test]
fn into_payload_matches_payload() {
    let syn = l4_bytes(&golden::TCP_SYN);
    assert_eq!(syn, &golden::TCP_SYN[34..]);
    assert_eq!(TcpPacket::new_checked(syn).unwrap().into_payload(), &[] as &[u8]);
    let dns = l4_bytes(&golden::UDP_DNS_QUERY);
    let udp = UdpPacket::new_checked(dns).unwrap();
    assert_eq!(udp.payload(), udp.into_payload());
    // Padding after the IPv4 total length stays out.
    let mut padded = golden::UDP_DNS_QUERY.to_vec();
    padded.extend_from_slice(&[0; 4]);
    assert_eq!(l4_bytes(&padded), dns);
    let v6 = Ipv6Packet::new_checked(&golden::ICMPV6_ECHO_REQUEST[14..]).unwrap();
    assert_eq!(v6.payload(), v6.into_payload());
}

#[test]
fn error_names() {
    let all = [
        WireError::Truncated,
        WireError::BadVersion,
        WireError::BadHeaderLength,
        WireError::BadTotalLength,
        WireError::BadLength,
        WireError::Unsupported,
    ];
    for e in all {
        let name = e.as_str();
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{name}");
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(WireError::Truncated.as_str(), "truncated");
    let boxed: Box<dyn std::error::Error> = Box::new(WireError::BadVersion);
    assert_eq!(boxed.to_string(), "wrong IP version");
}

/// Byte strings that get past the first checks often: golden frames with a few bytes
/// overwritten, and plain random bytes.
fn frames() -> impl Strategy<Value = Vec<u8>> {
    let golden: Vec<&'static [u8]> = vec![
        &golden::ARP_REQUEST,
        &golden::ICMP_ECHO_REQUEST,
        &golden::TCP_SYN,
        &golden::UDP_DNS_QUERY,
        &golden::IPV6_NEIGHBOR_SOLICIT,
        &golden::ICMPV6_ECHO_REQUEST,
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (
            proptest::sample::select(golden),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(g, edits, cut)| {
                let mut v = g.to_vec();
                for (i, b) in edits {
                    let i = i.index(v.len());
                    v[i] = b;
                }
                v.truncate(cut.index(v.len() + 1).max(v.len() / 2));
                v
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_never_panic(data in frames()) {
        let _ = summarize(&data);
        exercise_views(&data);
        // Every view at every offset of the first bytes, too.
        for off in 0..data.len().min(60) {
            exercise_views(&data[off..]);
        }
    }
}
