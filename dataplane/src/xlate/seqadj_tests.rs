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
    // Across the minute's low byte wrapping (the cookie's top byte).
    let c = make_cookie(&SECRET, &T, 1000, 255, 2);
    assert_eq!(check_cookie(&SECRET, &T, 1000, c, 256), Some(MSS_TABLE[2]));
    assert_eq!(check_cookie(&SECRET, &T, 1000, c, 257), None);
    assert_eq!(check_cookie(&SECRET, &T, 1000, c, 255 + 256), None, "the same low byte, 256 minutes on");
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
    // Without timestamps the client gets the MSS only, whatever else it asked for.
    let o = syn_options(&p);
    let len = syn_ack_v4(&mut p, 0xdead_beef, 1460, None, &o).unwrap();
    assert_eq!(len, IPV4_HEADER_LEN + TCP_HEADER_LEN + 4);
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
    assert!(syn_ack_v4(&mut ack, 1, 1460, Some(64), &SynOptions::default()).is_err());
    // Offsets from the caller's parse that the buffer cannot hold: refused, nothing written.
    let mut syn = packet(CLIENT, VIP, TcpRepr::new(40000, 80, TcpFlags::SYN));
    let before = syn.clone();
    let none = SynOptions::default();
    assert!(syn_ack_v4_at(&mut syn, 20, before.len() + 1, 1, 1460, None, &none).is_err());
    assert!(syn_ack_v4_at(&mut syn, 20, 30, 1, 1460, None, &none).is_err());
    assert_eq!(syn, before);
}

#[test]
fn the_clients_ack_becomes_the_backend_syn_and_the_backend_syn_ack_our_ack() {
    let ack = TcpRepr { seq: 0x1111_0001, ack: 0xdead_bef0, window: 502, ..TcpRepr::new(40000, 80, TcpFlags::ACK) };
    let mut p = packet(CLIENT, VIP, ack.with_payload(b"early data"));
    let len = syn_from_ack_v4(&mut p, 1300, &SynOptions::default()).unwrap();
    assert_eq!(len, IPV4_HEADER_LEN + TCP_HEADER_LEN + 4);
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
    let proxy = ProxyOpts { ts: 0, client_window: 502, client_wscale: NO_WSCALE, backend_wscale: NO_WSCALE };
    let (len, isn, done) = ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80, proxy).unwrap();
    assert_eq!((len, isn), (IPV4_HEADER_LEN + TCP_HEADER_LEN, 0x5000_0000));
    assert_eq!(done, proxy, "nothing to translate but sequence numbers");
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(&p[12..20], &[192, 0, 2, 2, 192, 0, 2, 100], "written as the client's");
    let tcp = &p[20..];
    assert_eq!(&tcp[..4], &[0x9c, 0x40, 0x00, 80]);
    assert_eq!(word(tcp, 4), 0x1111_0001);
    assert_eq!(word(tcp, 8), 0x5000_0001);
    assert_eq!(tcp[13], 0x10, "ACK");
    assert_eq!(u16::from_be_bytes([tcp[14], tcp[15]]), 502, "the client's window");
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

/// The TCP options of an IPv4 packet with a 20-byte header.
fn options_of(p: &[u8]) -> &[u8] {
    let header_len = usize::from(p[20 + 12] >> 4) * 4;
    &p[40..20 + header_len]
}

#[test]
fn the_cookie_tsval_keeps_window_scale_and_sack_and_never_runs_ahead_of_the_clock() {
    for now in [0u64, 63, 64, 1_000_000, 1_000_063, u64::from(u32::MAX) + 5] {
        for wscale in [None, Some(0), Some(7), Some(14)] {
            for sack in [false, true] {
                let ts = cookie_tsval(now, wscale, sack);
                assert_eq!(decode_cookie_tsval(ts), (wscale, sack), "{now} {wscale:?} {sack}");
                let clock = now as u32;
                // At most one tick (64 ms) behind, never ahead.
                assert!(clock.wrapping_sub(ts) < 128, "{now}: {ts} vs {clock}");
            }
        }
    }
    // A scale above 14 is clamped (RFC 7323); 15 in the low bits means none.
    assert_eq!(decode_cookie_tsval(cookie_tsval(5000, Some(15), false)), (Some(14), false));
    assert_eq!(decode_cookie_tsval(0x40 | 15), (None, false));
    assert_eq!(decode_cookie_tsval(0x40 | 16 | 15), (None, true));
    assert_eq!(decode_cookie_tsval(0x40 | 16 | 14), (Some(14), true));
}

#[test]
fn a_client_with_timestamps_gets_its_options_back_and_the_backend_the_clients() {
    // Linux's SYN: MSS, SACK-permitted, timestamps, NOP, window scale 9.
    let options = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x30, 0x39, 0, 0, 0, 0, 1, 3, 3, 9];
    let syn = TcpRepr { seq: 0x1111_0000, options: &options, ..TcpRepr::new(40000, 80, TcpFlags::SYN) };
    let mut p = packet(CLIENT, VIP, syn);
    let o = syn_options(&p);
    assert_eq!(o, SynOptions { mss: Some(1460), wscale: Some(9), sack_permitted: true, timestamps: Some((12345, 0)) });
    let tsval = cookie_tsval(1_000_000, o.wscale, o.sack_permitted);
    let len = syn_ack_v4(&mut p, 0xdead_beef, 1440, Some(tsval), &o).unwrap();
    assert_eq!(len, SYN_LEN);
    p.truncate(len);
    checksums_ok(&p);
    let mut want = vec![2, 4, 0x05, 0xa0, 4, 2, 8, 10];
    want.extend_from_slice(&tsval.to_be_bytes());
    want.extend_from_slice(&12345u32.to_be_bytes());
    want.extend_from_slice(&[1, 3, 3, OUR_WSCALE]);
    assert_eq!(options_of(&p), &want[..]);

    // Without SACK or window scale: NOP NOP before the timestamps, no window scale.
    let options = [2, 4, 0x05, 0xb4, 1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 0];
    let mut p = packet(CLIENT, VIP, TcpRepr { options: &options, ..TcpRepr::new(40000, 80, TcpFlags::SYN) });
    let o = syn_options(&p);
    let len = syn_ack_v4(&mut p, 1, 536, Some(0x40 | 0xf), &o).unwrap();
    assert_eq!(len, IPV4_HEADER_LEN + TCP_HEADER_LEN + 16);
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(options_of(&p), &[2, 4, 0x02, 0x18, 1, 1, 8, 10, 0, 0, 0, 0x4f, 0, 0, 0, 7]);
    // A client without timestamps: MSS only even when we would have had a TSval.
    let options = [2, 4, 0x05, 0xb4, 1, 3, 3, 7];
    let mut p = packet(CLIENT, VIP, TcpRepr { options: &options, ..TcpRepr::new(40000, 80, TcpFlags::SYN) });
    let o = syn_options(&p);
    let len = syn_ack_v4(&mut p, 1, 1460, Some(0x4f), &o).unwrap();
    p.truncate(len);
    assert_eq!(options_of(&p), &[2, 4, 0x05, 0xb4]);

    // The client's ACK (TSval 12400, TSecr our cookie TSval): the backend's SYN carries the
    // client's scale 9, SACK-permitted, and the ACK's TSval with TSecr 0.
    let mut ack_opts = vec![1, 1, 8, 10];
    ack_opts.extend_from_slice(&12400u32.to_be_bytes());
    ack_opts.extend_from_slice(&tsval.to_be_bytes());
    let ack = TcpRepr {
        seq: 0x1111_0001,
        ack: 0xdead_bef0,
        window: 502,
        options: &ack_opts,
        ..TcpRepr::new(40000, 80, TcpFlags::ACK)
    };
    let mut p = packet(CLIENT, VIP, ack);
    // Room for the longer SYN, as the pipeline makes it.
    p.resize(SYN_LEN, 0);
    let got = syn_options(&p);
    assert_eq!(got.timestamps, Some((12400, tsval)));
    let (wscale, sack_permitted) = decode_cookie_tsval(tsval);
    let cookie_opts = SynOptions { mss: None, wscale, sack_permitted, timestamps: got.timestamps };
    let len = syn_from_ack_v4(&mut p, 1440, &cookie_opts).unwrap();
    assert_eq!(len, SYN_LEN);
    p.truncate(len);
    checksums_ok(&p);
    let mut want = vec![2, 4, 0x05, 0xa0, 4, 2, 8, 10];
    want.extend_from_slice(&12400u32.to_be_bytes());
    want.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 9]);
    assert_eq!(options_of(&p), &want[..]);
    assert_eq!((word(&p[20..], 4), p[20 + 13]), (0x1111_0000, 0x02));
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 502);
}

#[test]
fn the_backend_syn_ack_sets_the_timestamp_offset_and_window_scales() {
    let backend = Ipv4Addr::new(198, 51, 100, 11);
    let cookie_ts = 0x0001_0000u32 | 0x19;
    let proxy = ProxyOpts { ts: cookie_ts, client_window: 502, client_wscale: 9, backend_wscale: NO_WSCALE };
    // The backend answers with timestamps (its clock at 0x7000_0000, echoing the client's
    // 12400) and window scale 10.
    let mut opts = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    opts.extend_from_slice(&0x7000_0000u32.to_be_bytes());
    opts.extend_from_slice(&12400u32.to_be_bytes());
    opts.extend_from_slice(&[1, 3, 3, 10]);
    let synack = TcpRepr {
        seq: 0x5000_0000,
        ack: 0x1111_0001,
        options: &opts,
        ..TcpRepr::new(8080, 1025, TcpFlags::SYN | TcpFlags::ACK)
    };
    let mut p = packet(backend, Ipv4Addr::new(198, 51, 100, 1), synack);
    let (len, isn, done) = ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80, proxy).unwrap();
    assert_eq!((len, isn), (ACK_LEN, 0x5000_0000));
    assert_eq!(done, ProxyOpts { ts: 0x7000_0000u32.wrapping_sub(cookie_ts), backend_wscale: 10, ..proxy });
    p.truncate(len);
    checksums_ok(&p);
    let mut want = vec![1, 1, 8, 10];
    want.extend_from_slice(&12400u32.to_be_bytes());
    want.extend_from_slice(&0x7000_0000u32.to_be_bytes());
    assert_eq!(options_of(&p), &want[..], "TSval the client's, TSecr the backend's");
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 502, "the client's window, both scale by 9");

    // A backend without window scaling or timestamps: it reads the client's windows unscaled,
    // so ours to it are scaled up by the client's 9 (capped), and no offset.
    let synack = TcpRepr {
        seq: 5,
        ack: 0x1111_0001,
        options: &[2, 4, 0x05, 0xb4],
        ..TcpRepr::new(8080, 1025, TcpFlags::SYN | TcpFlags::ACK)
    };
    let mut p = packet(backend, Ipv4Addr::new(198, 51, 100, 1), synack);
    let (len, _, done) = ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80, proxy).unwrap();
    assert_eq!(done, ProxyOpts { ts: 0, backend_wscale: NO_WSCALE, ..proxy });
    p.truncate(len);
    checksums_ok(&p);
    assert_eq!(len, IPV4_HEADER_LEN + TCP_HEADER_LEN);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 0xffff, "502 << 9, capped");
    let small = ProxyOpts { client_window: 100, ..proxy };
    let mut p = packet(backend, Ipv4Addr::new(198, 51, 100, 1), synack);
    let (len, _, _) = ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80, small).unwrap();
    p.truncate(len);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 100 << 9);
    // Not a SYN-ACK: refused.
    let mut p = packet(backend, CLIENT, TcpRepr::new(8080, 1025, TcpFlags::ACK));
    assert!(ack_from_syn_ack_v4(&mut p, CLIENT, VIP, 40000, 80, proxy).is_err());
}

/// A packet with `options` and a payload, its TCP window `window`.
fn with_opts(src: Ipv4Addr, dst: Ipv4Addr, flags: TcpFlags, window: u16, options: &[u8]) -> Vec<u8> {
    packet(
        src,
        dst,
        TcpRepr { seq: 10, ack: 20, window, options, ..TcpRepr::new(80, 40000, flags) }.with_payload(b"xyz"),
    )
}

#[test]
fn timestamps_and_windows_are_translated_both_ways_at_even_and_odd_offsets() {
    let off = 0x6fff_0000u32;
    let proxy = ProxyOpts { ts: off, client_window: 0, client_wscale: 9, backend_wscale: 10 };
    // Timestamps after NOP NOP (even offset) and after a single NOP plus a 3-byte window
    // scale-sized filler (odd offset).
    let layouts: [(&[u8], usize); 2] =
        [(&[1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 200], 2), (&[1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 200, 0], 1)];
    for (options, ts_at) in layouts {
        // Backend -> client: TSval -= offset, window from scale 10 to ours (7): << 3.
        let mut p = with_opts(VIP, CLIENT, TcpFlags::ACK, 1000, options);
        let before = p.clone();
        let end = p.len();
        adjust_to_client(&mut p, 20, end, &proxy);
        checksums_ok(&p);
        let tcp = &p[20..];
        let opt = 20 + ts_at;
        assert_eq!(word(tcp, opt + 2), 100u32.wrapping_sub(off), "TSval");
        assert_eq!(word(tcp, opt + 6), 200, "TSecr unchanged");
        assert_eq!(u16::from_be_bytes([tcp[14], tcp[15]]), 8000);
        let changed: Vec<usize> = (0..tcp.len()).filter(|&i| tcp[i] != before[20 + i]).collect();
        assert!(changed.iter().all(|&i| (14..18).contains(&i) || (opt + 2..opt + 6).contains(&i)), "{changed:?}");

        // Client -> backend: TSecr += offset, the window as it was (the backend scales by 9
        // like the client).
        let mut p = with_opts(CLIENT, VIP, TcpFlags::ACK, 1000, options);
        let end = p.len();
        adjust_to_backend(&mut p, 20, end, &proxy);
        checksums_ok(&p);
        let tcp = &p[20..];
        assert_eq!(word(tcp, opt + 2), 100, "TSval unchanged");
        assert_eq!(word(tcp, opt + 6), 200u32.wrapping_add(off), "TSecr");
        assert_eq!(u16::from_be_bytes([tcp[14], tcp[15]]), 1000);
    }
    // A window that would pass 16 bits is capped; a smaller backend scale rounds down.
    let mut p = with_opts(VIP, CLIENT, TcpFlags::ACK, 0x4000, &[]);
    let end = p.len();
    adjust_to_client(&mut p, 20, end, &proxy);
    checksums_ok(&p);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 0xffff);
    let low = ProxyOpts { backend_wscale: 5, ..proxy };
    let mut p = with_opts(VIP, CLIENT, TcpFlags::ACK, 1003, &[]);
    let end = p.len();
    adjust_to_client(&mut p, 20, end, &low);
    checksums_ok(&p);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 1003 >> 2);
    // No scaling with the client: the backend's window goes as it is when it does not scale
    // either; nothing at all changes without an offset.
    let none = ProxyOpts { ts: 0, client_window: 0, client_wscale: NO_WSCALE, backend_wscale: NO_WSCALE };
    for (src, dst) in [(VIP, CLIENT), (CLIENT, VIP)] {
        let mut p = with_opts(src, dst, TcpFlags::ACK, 1003, &[1, 1, 8, 10, 0, 0, 0, 100, 0, 0, 0, 200]);
        let before = p.clone();
        let end = p.len();
        adjust_to_client(&mut p, 20, end, &none);
        adjust_to_backend(&mut p, 20, end, &none);
        assert_eq!(p, before);
    }
    // A backend that refused scaling while the client scales by 9: the client's windows go
    // up by 9 for it, the backend's to the client down by our 7.
    let refused = ProxyOpts { ts: 0, client_window: 0, client_wscale: 9, backend_wscale: NO_WSCALE };
    let mut p = with_opts(CLIENT, VIP, TcpFlags::ACK, 3, &[]);
    let end = p.len();
    adjust_to_backend(&mut p, 20, end, &refused);
    checksums_ok(&p);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 3 << 9);
    let mut p = with_opts(VIP, CLIENT, TcpFlags::ACK, 65535, &[]);
    let end = p.len();
    adjust_to_client(&mut p, 20, end, &refused);
    checksums_ok(&p);
    assert_eq!(u16::from_be_bytes([p[34], p[35]]), 65535 >> 7);
    // Truncated options are left alone, the packet still checks.
    let mut p = with_opts(VIP, CLIENT, TcpFlags::ACK, 1000, &[8, 40, 0, 0]);
    let end = p.len();
    adjust_to_client(&mut p, 20, end, &proxy);
    checksums_ok(&p);
}
