//! SYN cookies, the proxy's handshake segments and the sequence shift, byte by byte, every
//! checksum verified from scratch.

use super::*;
use crate::testkit::packet::{verify_v4_checksums, Ipv4Repr, L4Repr, TcpRepr};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const SECRET: [u64; 2] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
const T: CookieTuple = CookieTuple { client: CLIENT, vip: VIP, cport: 40000, vport: 80 };

fn packet(src: Ipv4Addr, dst: Ipv4Addr, tcp: TcpRepr) -> Vec<u8> {
    Ipv4Repr::new(src, dst).packet(&L4Repr::Tcp(tcp))
}

fn checksums_ok(ip: &[u8]) {
    let mut frame = vec![0u8; 14];
    frame.extend_from_slice(ip);
    verify_v4_checksums(&frame).unwrap();
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[test]
fn cookies_round_trip_for_two_minutes_and_only_for_their_tuple_and_isn() {
    for (i, &mss) in MSS_TABLE.iter().enumerate() {
        let c = make_cookie(&SECRET, &T, 1000, 77, i as u32);
        assert_eq!(check_cookie(&SECRET, &T, 1000, c, 77), Some(mss));
        assert_eq!(check_cookie(&SECRET, &T, 1000, c, 78), Some(mss));
        assert_eq!(check_cookie(&SECRET, &T, 1000, c, 79), None, "too old");
        assert_eq!(check_cookie(&SECRET, &T, 2000, c, 77), None, "another ISN");
        let other = CookieTuple { cport: 40001, ..T };
        assert_eq!(check_cookie(&SECRET, &other, 1000, c, 77), None, "another tuple");
        assert_eq!(check_cookie(&[1, 2], &T, 1000, c, 77), None, "another secret");
        assert_eq!(check_cookie(&SECRET, &T, 1000, c.wrapping_add(4), 77), None, "an MSS index past the table");
    }
    // Guessing: of 100,000 random cookies about 4 * 2 / 2^24 pass; none should here.
    let mut x = 0x9e37_79b9u32;
    let passed = (0..100_000)
        .filter(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            check_cookie(&SECRET, &T, 1000, x, 77).is_some()
        })
        .count();
    assert!(passed <= 1, "{passed}");
    assert_eq!(mss_index(Some(1460)), 3);
    assert_eq!(mss_index(Some(1459)), 2);
    assert_eq!(mss_index(Some(9000)), 3);
    assert_eq!(mss_index(Some(100)), 0);
    assert_eq!(mss_index(None), 0);
}

#[test]
fn a_client_syn_becomes_our_syn_ack_with_the_cookie() {
    let syn = TcpRepr {
        seq: 0x1111_0000,
        options: &[2, 4, 0x05, 0xb4, 1, 3, 3, 7],
        ..TcpRepr::new(40000, 80, TcpFlags::SYN)
    };
    let mut p = packet(CLIENT, VIP, syn);
    assert_eq!(syn_mss(&p), Some(1460));
    let len = syn_ack_v4(&mut p, 0xdead_beef, 1460).unwrap();
    assert_eq!(len, SYN_LEN);
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(&p[12..20], &[192, 0, 2, 100, 192, 0, 2, 2], "VIP -> client");
    let tcp = &p[20..];
    assert_eq!(&tcp[..4], &[0x00, 80, 0x9c, 0x40]);
    assert_eq!(word(tcp, 4), 0xdead_beef);
    assert_eq!(word(tcp, 8), 0x1111_0001);
    assert_eq!(tcp[12], 6 << 4);
    assert_eq!(tcp[13], 0x12, "SYN|ACK");
    assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4]);
    // Not a SYN: refused.
    let mut ack = packet(CLIENT, VIP, TcpRepr::new(40000, 80, TcpFlags::ACK));
    assert!(syn_ack_v4(&mut ack, 1, 1460).is_err());
}

#[test]
fn the_clients_ack_becomes_the_backend_syn_and_the_backend_syn_ack_our_ack() {
    let ack = TcpRepr { seq: 0x1111_0001, ack: 0xdead_bef0, window: 502, ..TcpRepr::new(40000, 80, TcpFlags::ACK) };
    let mut p = packet(CLIENT, VIP, ack.with_payload(b"early data"));
    let len = syn_from_ack_v4(&mut p, 1300).unwrap();
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(&p[12..20], &[192, 0, 2, 2, 192, 0, 2, 100]);
    let tcp = &p[20..];
    assert_eq!(word(tcp, 4), 0x1111_0000, "the client's ISN");
    assert_eq!(word(tcp, 8), 0);
    assert_eq!(tcp[13], 0x02, "SYN");
    assert_eq!(u16::from_be_bytes([tcp[14], tcp[15]]), 502);
    assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0x14]);

    let backend = Ipv4Addr::new(198, 51, 100, 11);
    let synack = TcpRepr {
        seq: 0x5000_0000,
        ack: 0x1111_0001,
        options: &[2, 4, 0x05, 0xb4],
        ..TcpRepr::new(8080, 1025, TcpFlags::SYN | TcpFlags::ACK)
    };
    let mut p = packet(backend, Ipv4Addr::new(198, 51, 100, 1), synack);
    let (len, isn) = ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80).unwrap();
    assert_eq!((len, isn), (ACK_LEN, 0x5000_0000));
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(&p[12..20], &[192, 0, 2, 2, 192, 0, 2, 100], "written as the client's");
    let tcp = &p[20..];
    assert_eq!(&tcp[..4], &[0x9c, 0x40, 0x00, 80]);
    assert_eq!(word(tcp, 4), 0x1111_0001);
    assert_eq!(word(tcp, 8), 0x5000_0001);
    assert_eq!(tcp[13], 0x10, "ACK");
}

#[test]
fn sequence_numbers_shift_both_ways_with_sack_blocks_and_checksums_intact() {
    let delta = 0x8000_0010u32;
    // Client -> backend: ack and both SACK blocks' edges move by delta; seq stays. The SACK
    // option after two NOPs sits at an even offset, after one NOP at an odd one: both.
    for options in [
        &[1, 1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 5, 1, 1, 1, 0][..],
        &[1, 5, 18, 0, 0, 0, 10, 0, 0, 0, 20, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 5, 1, 1, 1, 1, 0][..],
    ] {
        let at = options.iter().position(|&b| b == 5).unwrap() + 20 + 2;
        let tcp = TcpRepr { seq: 7, ack: 0x1000, options, ..TcpRepr::new(40000, 80, TcpFlags::ACK) };
        let mut p = packet(CLIENT, VIP, tcp.with_payload(b"abc"));
        let before = p.clone();
        let end = p.len();
        to_backend(&mut p, 20, end, delta);
        checksums_ok(&p);
        let (b, a) = (&before[20..], &p[20..]);
        assert_eq!(word(a, 4), 7);
        assert_eq!(word(a, 8), 0x1000u32.wrapping_add(delta));
        for (k, want) in [10u32, 20, 0xffff_fff0, 5].into_iter().enumerate() {
            assert_eq!(word(a, at + 4 * k), want.wrapping_add(delta), "SACK edge {k}");
        }
        // Nothing else changed but the checksum.
        let changed: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert!(changed.iter().all(|&i| (8..12).contains(&i) || (16..18).contains(&i) || (at..at + 16).contains(&i)));
    }
    // Backend -> client: seq moves back by delta, ack stays.
    let tcp = TcpRepr { seq: 0x1000, ack: 99, ..TcpRepr::new(8080, 40000, TcpFlags::ACK | TcpFlags::PSH) };
    let mut p = packet(VIP, CLIENT, tcp.with_payload(b"hello"));
    let end = p.len();
    to_client(&mut p, 20, end, delta);
    checksums_ok(&p);
    assert_eq!(word(&p[20..], 4), 0x1000u32.wrapping_sub(delta));
    assert_eq!(word(&p[20..], 8), 99);
    // A SYN without ACK keeps its ack field.
    let mut p = packet(CLIENT, VIP, TcpRepr { ack: 5, ..TcpRepr::new(40000, 80, TcpFlags::SYN) });
    let end = p.len();
    to_backend(&mut p, 20, end, delta);
    assert_eq!(word(&p[20..], 8), 5);
    // Truncated options are left alone, the packet still checks.
    let tcp = TcpRepr { options: &[5, 40, 0, 0], ..TcpRepr::new(40000, 80, TcpFlags::ACK) };
    let mut p = packet(CLIENT, VIP, tcp);
    let end = p.len();
    to_backend(&mut p, 20, end, delta);
    checksums_ok(&p);
}
