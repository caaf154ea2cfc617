//! The SYN proxy: SYNs answered with a cookie and no state, a valid ACK opening the
//! connection to a backend, the backend's handshake completed here, and the sequence shift of
//! everything afterwards, in NAT and FullNAT. Every frame's checksums are checked from scratch.

use super::*;
use crate::testkit::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr};
use crate::wire::TcpFlags;

const CLIENT: &str = "192.0.2.2";
const CLIENT_ISN: u32 = 0x1000;
const BACKEND_ISN: u32 = 0x5000_0000;

fn proxied(mode: FwdMode) -> Rig {
    let spec = Spec { mode, backends: vec![backend(1, 1)], ..nat_tcp() };
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let base = services(&spec, &[]);
    let mut svc = base.list[0].clone();
    svc.syn_proxy = crate::service::SynProxy::On;
    let services = Services::new(vec![svc], base.backend_slots.clone(), base.timeouts)
        .with_syn_cookie_secret([0x1234_5678, 0x9abc_def0]);
    rig.set_services(Arc::new(services));
    rig
}

#[allow(clippy::too_many_arguments)]
fn tcp(
    from_backend: bool,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let (src_mac, dst_mac) = if from_backend { (B1_MAC, OUR_MAC1) } else { (CLIENT_MAC, OUR_MAC) };
    let t = TcpRepr { seq, ack, options, payload, ..TcpRepr::new(sport, dport, flags) };
    EthRepr { dst: dst_mac, src: src_mac }.frame_v4(&Ipv4Repr::new(ip4(src), ip4(dst)), &L4Repr::Tcp(t))
}

/// A frame of `tcp`'s with another TCP window, checksum recomputed.
fn with_window(frame: Vec<u8>, window: u16) -> Vec<u8> {
    use crate::wire::{Ipv4Packet, TcpPacket};
    let ip = Ipv4Packet::new_unchecked(&frame[14..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let mut frame = frame;
    let mut tcp = TcpPacket::new_unchecked(&mut frame[14 + 20..]);
    tcp.set_window(window);
    tcp.fill_checksum(std::net::IpAddr::V4(src), std::net::IpAddr::V4(dst));
    frame
}

fn word(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

/// Offsets in a frame with a 20-byte IPv4 header: TCP seq, ack, flags, options.
const SEQ: usize = 14 + 20 + 4;
const ACK_AT: usize = 14 + 20 + 8;
const FLAGS: usize = 14 + 20 + 13;
const OPTS: usize = 14 + 20 + 20;

#[test]
fn syn_proxy_handshakes_both_sides_and_shifts_sequence_numbers() {
    for mode in [FwdMode::Nat, FwdMode::FullNat] {
        let mut rig = proxied(mode);
        let mss = [2, 4, 0x05, 0xb4];
        // The client's SYN: answered by us with a cookie, nothing kept, nothing to a backend.
        let out = rig.rx(0, tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN, 0, TcpFlags::SYN, &mss, b""));
        assert_eq!(out.len(), 1, "{mode:?}");
        let (port, f) = &out[0];
        assert_eq!((*port, &f[0..6]), (0, &CLIENT_MAC.0[..]));
        assert_eq!(parse(f), (ip4(VIP), 80, ip4(CLIENT), 40000, 64));
        assert_eq!(f[FLAGS], 0x12, "SYN-ACK");
        assert_eq!(word(f, ACK_AT), CLIENT_ISN + 1);
        assert_eq!(&f[OPTS..OPTS + 4], &mss);
        let cookie = word(f, SEQ);
        assert!(rig.ctx.lb.conns.is_empty());
        assert_eq!(rig.event(Event::SynCookiesSent), 1);

        // An ACK with a wrong cookie: dropped and counted, still nothing kept.
        let bad =
            tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie.wrapping_add(1001), TcpFlags::ACK, &[], b"");
        assert!(rig.rx(0, bad).is_empty());
        assert_eq!(rig.drops(DropReason::SynCookieInvalid), 1);
        assert!(rig.ctx.lb.conns.is_empty());

        // The right one (with data, which the client will send again): the backend gets a SYN
        // with the client's ISN and the MSS the cookie kept.
        let good = tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie + 1, TcpFlags::ACK, &[], b"early");
        let out = rig.rx(0, good);
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        assert_eq!((*port, &f[0..6]), (1, &B1_MAC.0[..]));
        let (src, lport, dst, dport, _) = parse(f);
        assert_eq!((dst, dport), (ip4("198.51.100.11"), 8080));
        let (reply_to, reply_port) = match mode {
            FwdMode::Nat => (ip4(CLIENT), 40000),
            _ => (ip4("198.51.100.1"), lport),
        };
        assert_eq!((src, lport), (reply_to, reply_port));
        assert_eq!((f[FLAGS], word(f, SEQ), word(f, ACK_AT)), (0x02, CLIENT_ISN, 0));
        assert_eq!(&f[OPTS..OPTS + 4], &mss);
        assert_eq!(f.len(), 14 + 44, "no payload in the SYN");
        assert_eq!((rig.event(Event::SynCookiesValid), rig.ctx.lb.conns.len()), (1, 1));

        // Client data before the backend answered: dropped and counted.
        let early = tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie + 1, TcpFlags::ACK, &[], b"early");
        assert!(rig.rx(0, early).is_empty());
        assert_eq!(rig.drops(DropReason::SynProxyPending), 1);

        // The backend's SYN-ACK: we complete its handshake with an ACK; the client hears nothing.
        let (to, to_port) = (reply_to.to_string(), reply_port);
        let flags = TcpFlags::SYN | TcpFlags::ACK;
        let synack = tcp(true, "198.51.100.11", 8080, &to, to_port, BACKEND_ISN, CLIENT_ISN + 1, flags, &mss, b"");
        let out = rig.rx(1, synack);
        assert_eq!(out.len(), 1);
        let (port, f) = &out[0];
        assert_eq!(*port, 1);
        // Written at TTL 64, forwarded like the client's packets (one hop less).
        assert_eq!(parse(f), (reply_to, reply_port, ip4("198.51.100.11"), 8080, 63));
        assert_eq!((f[FLAGS], word(f, SEQ), word(f, ACK_AT)), (0x10, CLIENT_ISN + 1, BACKEND_ISN + 1));
        let (id, _) = rig
            .ctx
            .lb
            .conns
            .lookup(&crate::conn::ConnKey {
                src: ip4(CLIENT),
                dst: ip4(VIP),
                sport: 40000,
                dport: 80,
                proto: IpProtocol::TCP,
            })
            .unwrap();
        assert_eq!(rig.ctx.lb.conns.get(id).state, TcpState::Established);
        assert_eq!(rig.ctx.lb.active_conns(1, 101), 1);
        let delta = BACKEND_ISN.wrapping_sub(cookie);

        // Client -> backend: ack and SACK edges move into the backend's space, seq stays.
        let sack = [1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut sack_opt = sack;
        sack_opt[4..8].copy_from_slice(&(cookie + 10).to_be_bytes());
        sack_opt[8..12].copy_from_slice(&(cookie + 20).to_be_bytes());
        let data = tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie + 1, TcpFlags::ACK, &sack_opt, b"GET /");
        let out = rig.rx(0, data);
        assert_eq!(out.len(), 1);
        let f = &out[0].1;
        assert_eq!(parse(f).2, ip4("198.51.100.11"));
        assert_eq!((word(f, SEQ), word(f, ACK_AT)), (CLIENT_ISN + 1, BACKEND_ISN + 1));
        assert_eq!((word(f, OPTS + 4), word(f, OPTS + 8)), (BACKEND_ISN + 10, BACKEND_ISN + 20));
        assert_eq!(&f[f.len() - 5..], b"GET /");

        // Backend -> client: seq moves into the cookie's space, ack stays.
        let reply =
            tcp(true, "198.51.100.11", 8080, &to, to_port, BACKEND_ISN + 1, CLIENT_ISN + 6, TcpFlags::ACK, &[], b"200");
        let out = rig.rx(1, reply);
        assert_eq!(out.len(), 1);
        let f = &out[0].1;
        assert_eq!(parse(f), (ip4(VIP), 80, ip4(CLIENT), 40000, 63));
        assert_eq!((word(f, SEQ), word(f, ACK_AT)), (cookie + 1, CLIENT_ISN + 6));
        assert_eq!((BACKEND_ISN + 1).wrapping_sub(delta), cookie + 1);
        assert_eq!(rig.event(Event::SynProxyBackendHandshakes), 1);
    }
}

#[test]
fn a_proxied_service_keeps_nothing_for_a_flood_of_syns_or_stray_acks() {
    let mut rig = proxied(FwdMode::Nat);
    for i in 0..200u16 {
        let syn = tcp(false, CLIENT, 1000 + i, VIP, 80, u32::from(i), 0, TcpFlags::SYN, &[], b"");
        assert_eq!(rig.rx(0, syn).len(), 1);
        let ack = tcp(false, CLIENT, 1000 + i, VIP, 80, u32::from(i) + 1, 77, TcpFlags::ACK, &[], b"");
        assert!(rig.rx(0, ack).is_empty());
    }
    assert!(rig.ctx.lb.conns.is_empty());
    assert_eq!(rig.ctx.lb.conns.half_open(), 0);
    assert_eq!(rig.drops(DropReason::SynCookieInvalid), 200);
    // A cookie from more than two minutes ago no longer opens anything.
    let out = rig.rx(0, tcp(false, CLIENT, 999, VIP, 80, 5, 0, TcpFlags::SYN, &[], b""));
    let cookie = word(&out[0].1, SEQ);
    rig.now += 2 * 60_000;
    assert!(rig.rx(0, tcp(false, CLIENT, 999, VIP, 80, 6, cookie + 1, TcpFlags::ACK, &[], b"")).is_empty());
    assert_eq!(rig.drops(DropReason::SynCookieInvalid), 201);
}

fn ts_opt(lead: &[u8], val: u32, ecr: u32) -> Vec<u8> {
    let mut o = lead.to_vec();
    o.extend_from_slice(&[8, 10]);
    o.extend_from_slice(&val.to_be_bytes());
    o.extend_from_slice(&ecr.to_be_bytes());
    o
}

fn window(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[14 + 20 + 14], f[14 + 20 + 15]])
}

#[test]
fn a_client_with_timestamps_window_scale_and_sack_keeps_them_through_the_proxy() {
    let mut rig = proxied(FwdMode::Nat);
    let to = CLIENT;
    // Linux's SYN: MSS 1460, SACK-permitted, timestamps (TSval 1000), window scale 9.
    let mut syn_opts = vec![2, 4, 0x05, 0xb4];
    syn_opts.extend(ts_opt(&[4, 2], 1000, 0));
    syn_opts.extend_from_slice(&[1, 3, 3, 9]);
    let out = rig.rx(0, tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN, 0, TcpFlags::SYN, &syn_opts, b""));
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    let (cookie, our_ts) = (word(f, SEQ), word(f, OPTS + 8));
    let mut want = vec![2, 4, 0x05, 0xb4];
    want.extend(ts_opt(&[4, 2], our_ts, 1000));
    want.extend_from_slice(&[1, 3, 3, crate::xlate::seqadj::OUR_WSCALE]);
    assert_eq!(&f[OPTS..], &want[..], "our SYN-ACK offers what the client asked");
    assert_eq!(our_ts & 0x1f, 0x10 | 9, "the TSval keeps SACK and the scale");

    // The client's ACK: the backend's SYN has the client's options, TSval of the ACK.
    let ack_opts = ts_opt(&[1, 1], 1010, our_ts);
    let ack = tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie + 1, TcpFlags::ACK, &ack_opts, b"");
    let ack = with_window(ack, 502);
    let out = rig.rx(0, ack);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!((f[FLAGS], window(f)), (0x02, 502));
    let mut want = vec![2, 4, 0x05, 0xb4];
    want.extend(ts_opt(&[4, 2], 1010, 0));
    want.extend_from_slice(&[1, 3, 3, 9]);
    assert_eq!(&f[OPTS..], &want[..]);

    // The backend answers with its clock and window scale 6: our ACK echoes it.
    let mut synack_opts = vec![2, 4, 0x05, 0xb4];
    synack_opts.extend(ts_opt(&[4, 2], 0x7000_0000, 1010));
    synack_opts.extend_from_slice(&[1, 3, 3, 6]);
    let flags = TcpFlags::SYN | TcpFlags::ACK;
    let synack = tcp(true, "198.51.100.11", 8080, to, 40000, BACKEND_ISN, CLIENT_ISN + 1, flags, &synack_opts, b"");
    let out = rig.rx(1, synack);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!((f[FLAGS], window(f)), (0x10, 502));
    assert_eq!(&f[OPTS..], &ts_opt(&[1, 1], 1010, 0x7000_0000)[..]);
    let off = 0x7000_0000u32.wrapping_sub(our_ts);

    // Backend -> client: TSval into our clock, window from scale 6 to ours (7).
    let data = ts_opt(&[1, 1], 0x7000_0005, 1020);
    let reply =
        tcp(true, "198.51.100.11", 8080, to, 40000, BACKEND_ISN + 1, CLIENT_ISN + 1, TcpFlags::ACK, &data, b"200");
    let out = rig.rx(1, with_window(reply, 1001));
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!(word(f, SEQ), cookie + 1);
    assert_eq!((word(f, OPTS + 4), word(f, OPTS + 8)), (our_ts + 5, 1020));
    assert_eq!(window(f), 1001 >> 1);
    crate::testkit::packet::verify_v4_checksums(f).unwrap();

    // Client -> backend: TSecr into the backend's clock, SACK edges shifted, window as is.
    let mut opts = ts_opt(&[1, 1], 1030, our_ts + 5);
    opts.extend_from_slice(&[1, 1, 5, 10]);
    opts.extend_from_slice(&(cookie + 10).to_be_bytes());
    opts.extend_from_slice(&(cookie + 20).to_be_bytes());
    let data = tcp(false, CLIENT, 40000, VIP, 80, CLIENT_ISN + 1, cookie + 4, TcpFlags::ACK, &opts, b"GET /");
    let out = rig.rx(0, data);
    assert_eq!(out.len(), 1);
    let f = &out[0].1;
    assert_eq!(word(f, ACK_AT), BACKEND_ISN + 4);
    assert_eq!((word(f, OPTS + 4), word(f, OPTS + 8)), (1030, our_ts.wrapping_add(5).wrapping_add(off)));
    assert_eq!(word(f, OPTS + 8), 0x7000_0005);
    assert_eq!((word(f, OPTS + 16), word(f, OPTS + 20)), (BACKEND_ISN + 10, BACKEND_ISN + 20));
    assert_eq!(window(f), 64240);
    crate::testkit::packet::verify_v4_checksums(f).unwrap();
}

#[test]
fn a_source_the_access_lists_refuse_gets_no_syn_ack_and_rates_wait_for_the_ack() {
    use crate::defence::{Guard, PrefixSet, RuleCounters, ServiceGuard};
    let mut rig = proxied(FwdMode::Nat);
    let g = ServiceGuard {
        slot: 0,
        gen: 1,
        deny: PrefixSet::build(&[(ip4("192.0.2.9"), 32, 1)]),
        allow: PrefixSet::build(&[(ip4("192.0.2.0"), 24, 2)]),
        allow_miss_rule: 3,
        source_conns_per_s: 1,
        source_burst: 1,
        ..Default::default()
    };
    let guard = Guard {
        deny: PrefixSet::build(&[(ip4("203.0.113.0"), 24, 0)]),
        services: vec![Some(g)],
        counters: Arc::new(RuleCounters::new(4, 1)),
    };
    let services = (*rig.snap.services).clone().with_guard(Arc::new(guard));
    rig.set_services(Arc::new(services));
    for src in ["203.0.113.5", "192.0.2.9", "198.51.100.200"] {
        assert!(rig.rx(0, tcp(false, src, 40000, VIP, 80, 1, 0, TcpFlags::SYN, &[], b"")).is_empty(), "{src}");
    }
    assert_eq!((rig.drops(DropReason::AclDenied), rig.drops(DropReason::AclNotAllowed)), (2, 1));
    let counters = &rig.snap.services.guard.counters;
    assert_eq!([0, 1, 2, 3].map(|r| counters.total(r)), [1, 1, 0, 1]);
    assert_eq!(rig.event(Event::SynCookiesSent), 0);
    // An allowed source: every SYN answered (a spoofed flood of its address must not drain
    // its rate), the rate applies when an ACK makes a connection.
    let mut cookies = vec![];
    for port in 0..3u16 {
        let out = rig.rx(0, tcp(false, CLIENT, 41000 + port, VIP, 80, 1, 0, TcpFlags::SYN, &[], b""));
        assert_eq!(out.len(), 1);
        cookies.push(word(&out[0].1, SEQ));
    }
    assert_eq!(rig.event(Event::SynCookiesSent), 3);
    let opened = (0..3u16)
        .filter(|&i| {
            let ack = tcp(false, CLIENT, 41000 + i, VIP, 80, 2, cookies[usize::from(i)] + 1, TcpFlags::ACK, &[], b"");
            !rig.rx(0, ack).is_empty()
        })
        .count();
    assert_eq!((opened, rig.drops(DropReason::SourceRateLimited)), (1, 2));
}

#[test]
fn auto_proxies_while_the_syn_rate_is_high_and_stops_after() {
    let spec = Spec { backends: vec![backend(1, 1)], ..nat_tcp() };
    // 100 SYNs a second: 10 in one 100 ms window engage.
    let limits = LbLimits { auto_half_open: 0, auto_syns_per_s: 100, ..LbLimits::default() };
    let mut rig = Rig::lb(&spec, limits);
    let base = services(&spec, &[]);
    let mut svc = base.list[0].clone();
    svc.syn_proxy = crate::service::SynProxy::Auto;
    let services = Services::new(vec![svc], base.backend_slots.clone(), base.timeouts)
        .with_syn_cookie_secret([0x1234_5678, 0x9abc_def0]);
    rig.set_services(Arc::new(services));
    let syn = |port: u16| tcp(false, CLIENT, port, VIP, 80, CLIENT_ISN, 0, TcpFlags::SYN, &[], b"");
    for port in 0..9u16 {
        let out = rig.rx(0, syn(1000 + port));
        let tcp_out: Vec<_> = out.iter().filter(|(_, f)| f[12..14] == [8, 0]).collect();
        assert_eq!((tcp_out.len(), tcp_out[0].0), (1, 1), "below the rate: straight to the backend");
    }
    assert_eq!(rig.ctx.lb.conns.len(), 9);
    let out = rig.rx(0, syn(2000));
    let out: Vec<_> = out.into_iter().filter(|(_, f)| f[12..14] == [8, 0]).collect();
    assert_eq!((out.len(), out[0].0, out[0].1[FLAGS]), (1, 0, 0x12), "the 10th: a cookie");
    let cookie = word(&out[0].1, SEQ);
    assert_eq!((rig.event(Event::SynProxyAutoEngaged), rig.event(Event::SynProxyAutoEngagements)), (1, 1));
    assert_eq!(rig.ctx.lb.conns.len(), 9, "nothing kept for it");
    // Still engaged in the next windows while SYNs keep coming.
    rig.now += 100;
    for port in 0..20u16 {
        let out = rig.rx(0, syn(3000 + port));
        assert!(out.iter().all(|(p, f)| *p == 0 && (f[12..14] != [8, 0] || f[FLAGS] == 0x12)));
    }
    assert_eq!((rig.event(Event::SynCookiesSent), rig.ctx.lb.conns.len()), (21, 9));
    // The flood stops; a second later the timers disengage it.
    rig.now += 1_200;
    rig.timers();
    assert_eq!(rig.event(Event::SynProxyAutoEngaged), 0);
    // (With an ARP refresh for the backend's address, a second having passed.)
    let out = rig.rx(0, syn(4000));
    let tcp_out: Vec<_> = out.iter().filter(|(_, f)| f[12..14] == [8, 0]).collect();
    assert_eq!((tcp_out.len(), tcp_out[0].0, tcp_out[0].1[FLAGS]), (1, 1, 0x02), "off again: to the backend");
    // A client that got its cookie while it was on completes its connection.
    let ack = tcp(false, CLIENT, 2000, VIP, 80, CLIENT_ISN + 1, cookie + 1, TcpFlags::ACK, &[], b"");
    let out = rig.rx(0, ack);
    let tcp_out: Vec<_> = out.iter().filter(|(_, f)| f[12..14] == [8, 0]).collect();
    assert_eq!((tcp_out.len(), tcp_out[0].0, tcp_out[0].1[FLAGS]), (1, 1, 0x02), "the backend's SYN");
    assert_eq!(rig.event(Event::SynCookiesValid), 1);
    // Three minutes later a stray ACK is no cookie question any more.
    rig.now += 180_000;
    let stray = tcp(false, CLIENT, 5000, VIP, 80, 7, 9, TcpFlags::ACK, &[], b"");
    assert!(rig.rx(0, stray).is_empty());
    assert_eq!(rig.drops(DropReason::NoConnection), 1);
}
