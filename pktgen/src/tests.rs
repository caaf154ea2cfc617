use super::*;

const GEN_MAC: MacAddr = MacAddr([0x02, 0x9e, 0, 0, 0, 1]);
const DUT_MAC: MacAddr = MacAddr([0x02, 0xd0, 0, 0, 0, 1]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn build(proto: u8, flags: u8, size: usize, src: Ipv4Addr, sport: u16, stamp: u32) -> Vec<u8> {
    let t = Template::new(GEN_MAC, DUT_MAC, proto, VIP, 80, flags, size).unwrap();
    let mut out = vec![0u8; t.len()];
    t.stamp(&mut out, src, sport, stamp);
    out
}

/// Checks both checksums from scratch (a correct one sums to 0xffff with itself included).
fn assert_checksums(f: &[u8]) {
    assert_eq!(checksum::fold(checksum::sum(&f[14..34])), 0xffff, "IPv4 header checksum");
    let src = Ipv4Addr::new(f[26], f[27], f[28], f[29]);
    let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let l4 = &f[34..14 + total];
    let sum = checksum::pseudo_header_v4(src, dst, f[23], l4.len() as u32) + checksum::sum(l4);
    assert_eq!(checksum::fold(sum), 0xffff, "L4 checksum");
}

#[test]
fn tcp_and_udp_frames_have_correct_fields_and_checksums_for_any_tuple_and_stamp() {
    for (proto, flags) in [(6, TCP_SYN), (6, TCP_ACK), (17, 0)] {
        for size in [60, 64, 128, 1514] {
            for (i, stamp) in [(0u64, 0u32), (1, 0xffff_ffff), (70_000, 0x1234_5678), (TUPLE_SPACE - 1, 0x8000_0001)] {
                let (src, sport) = client_tuple(Ipv4Addr::new(203, 0, 113, 0), i);
                let f = build(proto, flags, size, src, sport, stamp);
                assert_eq!(f.len(), size);
                assert_eq!(&f[0..6], &DUT_MAC.0);
                assert_eq!(&f[6..12], &GEN_MAC.0);
                assert_eq!(usize::from(u16::from_be_bytes([f[16], f[17]])), size - 14);
                assert_eq!(&f[26..30], &src.octets());
                assert_eq!(&f[30..34], &VIP.octets());
                assert_eq!(u16::from_be_bytes([f[34], f[35]]), sport);
                assert_eq!(u16::from_be_bytes([f[36], f[37]]), 80);
                if proto == 6 {
                    assert_eq!(f[47], flags);
                }
                assert_checksums(&f);
                assert_eq!(classify(&f, 0), Received::Stamped(stamp));
            }
        }
    }
}

#[test]
fn sizes_outside_an_ethernet_frame_are_refused() {
    assert!(Template::new(GEN_MAC, DUT_MAC, 6, VIP, 80, TCP_SYN, 59).is_err());
    assert!(Template::new(GEN_MAC, DUT_MAC, 17, VIP, 80, 0, 1515).is_err());
}

#[test]
fn client_tuples_are_unique_across_the_space_and_avoid_network_and_broadcast_hosts() {
    let base = Ipv4Addr::new(203, 0, 113, 0);
    let mut seen = std::collections::HashSet::new();
    for i in (0..TUPLE_SPACE).step_by(997).chain(0..2000) {
        let (ip, port) = client_tuple(base, i);
        assert!((1..=254).contains(&ip.octets()[3]));
        assert!(port >= 1024);
        seen.insert((i, ip, port));
    }
    let tuples: std::collections::HashSet<_> = seen.iter().map(|(_, ip, port)| (*ip, *port)).collect();
    let indices: std::collections::HashSet<_> = seen.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(tuples.len(), indices.len());
    assert_eq!(client_tuple(base, TUPLE_SPACE), client_tuple(base, 0), "wraps after the space");
}

#[test]
fn one_queue_is_the_plain_sequence() {
    let s = Spread::new(5, 1);
    assert_eq!((0..12).map(|k| s.flow(0, k)).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
    assert_eq!(s.share(10, 0), 10);
    assert_eq!(s.share(u64::MAX, 0), u64::MAX);
    assert_eq!(s.fraction(0), 1.0);
    let flood = Spread::new(u64::MAX, 1);
    assert_eq!(flood.flow(0, 123_456_789), 123_456_789);
    assert_eq!(flood.share(50, 0), 50);
}

#[test]
fn every_flow_goes_out_on_queue_flow_mod_queues_and_each_queue_cycles_its_own() {
    for queues in 1..=4u16 {
        for flows in [1u64, 2, 3, 7, 8, 1000, 65536] {
            let s = Spread::new(flows, queues);
            let mut seen = vec![0u32; flows as usize];
            for q in 0..queues {
                let on = s.flows_on(q);
                assert_eq!(on, (0..flows).filter(|f| s.queue_of(*f) == q).count() as u64, "{flows} flows, queue {q}");
                // Two cycles of the queue's own flows: each exactly twice, all on this queue.
                for k in 0..2 * on {
                    let f = s.flow(q, k);
                    assert!(f < flows);
                    assert_eq!(s.queue_of(f), q);
                    assert_eq!(f % queues as u64, q as u64);
                    seen[f as usize] += 1;
                }
                if on > 0 {
                    assert_eq!(s.flow(q, 0), s.flow(q, on), "the queue's cycle repeats");
                }
            }
            assert!(seen.iter().all(|n| *n == 2), "{flows} flows over {queues} queues: every flow on one queue");
        }
    }
}

#[test]
fn shares_of_a_phase_add_up_and_follow_the_single_sequence() {
    for queues in 1..=3u16 {
        for flows in [1u64, 2, 5, 6, 100] {
            let s = Spread::new(flows, queues);
            for count in [0u64, 1, 2, 3, 7, 2 * flows, 2 * flows + 1, 1000] {
                let mut expect = vec![0u64; queues as usize];
                for i in 0..count {
                    expect[s.queue_of(i % flows) as usize] += 1;
                }
                let got: Vec<u64> = (0..queues).map(|q| s.share(count, q)).collect();
                assert_eq!(got, expect, "{count} packets, {flows} flows, {queues} queues");
            }
            // Fractions of a fixed rate add up to the rate.
            let total: f64 = (0..queues).map(|q| s.fraction(q)).sum();
            assert!((total - 1.0).abs() < 1e-12);
            // Unlimited stays (practically) unlimited on every queue that has flows.
            for q in 0..queues {
                let share = s.share(u64::MAX, q);
                assert!(if s.flows_on(q) == 0 { share == 0 } else { share > u64::MAX / (2 * flows * queues as u64) });
            }
        }
    }
}

#[test]
fn a_flood_never_repeats_a_tuple_across_queues() {
    let s = Spread::new(u64::MAX, 2);
    let mut seen = std::collections::HashSet::new();
    for q in 0..2 {
        for k in 0..10_000 {
            let f = s.flow(q, k);
            assert_eq!(s.queue_of(f), q);
            assert!(seen.insert(f));
        }
    }
    assert_eq!((s.share(50, 0), s.share(50, 1)), (25, 25));
    assert_eq!((s.share(5, 0), s.share(5, 1)), (3, 2));
    assert_eq!(s.fraction(1), 0.5);
}

/// Wraps an IP packet (the frame's bytes after Ethernet) as ferrovs' TUN mode does.
fn encapsulate(frame: &[u8], gue_port: Option<u16>) -> Vec<u8> {
    let inner = &frame[14..];
    let udp = if gue_port.is_some() { 8 } else { 0 };
    let mut out = frame[..14].to_vec();
    let total = 20 + udp + inner.len();
    out.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64]);
    out.push(if gue_port.is_some() { 17 } else { 4 });
    out.extend_from_slice(&[0, 0, 198, 51, 100, 1, 198, 51, 100, 11]);
    if let Some(port) = gue_port {
        let len = (8 + inner.len()) as u16;
        out.extend_from_slice(&[0xc0, 0x01]);
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
    }
    out.extend_from_slice(inner);
    out
}

#[test]
fn stamps_are_found_inside_ipip_and_gue() {
    let f = build(6, TCP_ACK, 60, Ipv4Addr::new(203, 0, 113, 9), 4000, 0xdead_beef);
    assert_eq!(classify(&encapsulate(&f, None), 0), Received::Stamped(0xdead_beef));
    assert_eq!(classify(&encapsulate(&f, Some(6080)), 6080), Received::Stamped(0xdead_beef));
    // GUE on another port is plain UDP to the generator: its "stamp" is the GUE bytes.
    assert_ne!(classify(&encapsulate(&f, Some(6080)), 7000), Received::Stamped(0xdead_beef));
    let u = build(17, 0, 60, Ipv4Addr::new(203, 0, 113, 9), 4000, 77);
    assert_eq!(classify(&encapsulate(&u, None), 0), Received::Stamped(77));
}

#[test]
fn truncated_and_foreign_frames_are_other_never_a_panic() {
    let f = build(6, TCP_ACK, 60, Ipv4Addr::new(203, 0, 113, 9), 4000, 5);
    for len in 0..54 {
        assert_eq!(classify(&f[..len], 6080), Received::Other, "{len} bytes");
    }
    let mut v6 = f.clone();
    v6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(classify(&v6, 0), Received::Other);
    let ipip = encapsulate(&f, None);
    for len in 0..ipip.len() {
        let _ = classify(&ipip[..len], 6080);
    }
}

#[test]
fn arp_requests_are_answered_in_place_from_our_mac() {
    let requester = MacAddr([0x02, 0xd0, 0, 0, 0, 2]);
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&requester.0);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&requester.0);
    f.extend_from_slice(&[198, 51, 100, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[198, 51, 100, 12]);
    f.resize(60, 0);
    let (sender, target) = (Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 12));
    assert_eq!(classify(&f, 0), Received::ArpRequest { sender, target });
    arp_reply_in_place(&mut f, GEN_MAC);
    assert_eq!(&f[0..6], &requester.0);
    assert_eq!(&f[6..12], &GEN_MAC.0);
    assert_eq!(f[21], 2, "op reply");
    assert_eq!(&f[22..28], &GEN_MAC.0);
    assert_eq!(&f[28..32], &target.octets());
    assert_eq!(&f[32..38], &requester.0);
    assert_eq!(&f[38..42], &sender.octets());
    assert_eq!(classify(&f, 0), Received::Other, "a reply is not a request");
}

#[test]
fn prefixes_parse_and_match() {
    let p: Prefix = "198.51.100.0/24".parse().unwrap();
    assert!(p.contains(Ipv4Addr::new(198, 51, 100, 255)));
    assert!(!p.contains(Ipv4Addr::new(198, 51, 101, 0)));
    let host: Prefix = "192.0.2.2".parse().unwrap();
    assert!(host.contains(Ipv4Addr::new(192, 0, 2, 2)) && !host.contains(Ipv4Addr::new(192, 0, 2, 3)));
    assert!("0.0.0.0/0".parse::<Prefix>().unwrap().contains(Ipv4Addr::new(8, 8, 8, 8)));
    assert!("192.0.2.0/33".parse::<Prefix>().is_err());
    assert!("192.0.2/24".parse::<Prefix>().is_err());
}

#[test]
fn histogram_quantiles_are_within_an_eighth_of_the_true_value() {
    let mut h = Histogram::default();
    for v in 1..=100_000u64 {
        h.record(v);
    }
    assert_eq!(h.count(), 100_000);
    assert_eq!(h.max(), 100_000);
    for (q, truth) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.001, 100.0)] {
        let got = h.quantile(q) as f64;
        assert!(got <= truth && got >= truth * 0.875, "q {q}: {got} vs {truth}");
    }
    for v in [0u64, 7, 8, 9, 15, 16, 1 << 40, u64::MAX] {
        let b = bucket(v);
        assert!(bucket_floor(b) <= v && (b == bucket(u64::MAX) || bucket_floor(b + 1) > v), "{v}");
    }
    assert_eq!(Histogram::default().quantile(0.5), 0);
}
