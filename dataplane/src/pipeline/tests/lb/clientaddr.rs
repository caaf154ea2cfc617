//! The client's address for FullNAT backends through the pipeline: the PROXY header in the
//! handshake-completing ACK and again in the first data segment until the backend has it, the
//! shift of everything afterwards both ways, the SYN-ACK's MSS, TOA on the first segments only,
//! and the PROXY header on a SYN-proxied connection (both shifts at once). Every frame's
//! checksums are checked from scratch (`parse`).

use super::*;
use crate::testkit::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr};
use crate::wire::TcpFlags;
use crate::xlate::clientaddr::{ClientAddr, V2_SIGNATURE};

const CLIENT: &str = "192.0.2.2";
const BACKEND: &str = "198.51.100.11";
const LADDR: &str = "198.51.100.1";
const ISN: u32 = 0xffff_fffe;
const BISN: u32 = 0x5000_0000;
const SEQ: usize = 14 + 20 + 4;
const ACK_AT: usize = 14 + 20 + 8;
const FLAGS: usize = 14 + 20 + 13;
const OPTS: usize = 14 + 20 + 20;

fn rig(kind: ClientAddr, syn_proxy: bool) -> Rig {
    let spec = Spec { mode: FwdMode::FullNat, backends: vec![backend(1, 1)], ..nat_tcp() };
    let mut rig = Rig::lb(&spec, LbLimits::default());
    let base = services(&spec, &[]);
    let mut svc = base.list[0].clone();
    svc.client_address = kind;
    svc.syn_proxy = if syn_proxy { crate::service::SynProxy::On } else { crate::service::SynProxy::Off };
    let services = Services::new(vec![svc], base.backend_slots.clone(), base.timeouts)
        .with_syn_cookie_secret([0x1234_5678, 0x9abc_def0]);
    rig.set_services(Arc::new(services));
    rig
}

#[allow(clippy::too_many_arguments)]
fn tcp(from_backend: bool, dport: u16, seq: u32, ack: u32, flags: TcpFlags, options: &[u8], payload: &[u8]) -> Vec<u8> {
    let (src_mac, dst_mac, src, sport, dst) =
        if from_backend { (B1_MAC, OUR_MAC1, BACKEND, 8080, LADDR) } else { (CLIENT_MAC, OUR_MAC, CLIENT, 40000, VIP) };
    let t = TcpRepr { seq, ack, options, payload, ..TcpRepr::new(sport, dport, flags) };
    EthRepr { dst: dst_mac, src: src_mac }.frame_v4(&Ipv4Repr::new(ip4(src), ip4(dst)), &L4Repr::Tcp(t))
}

fn word(f: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([f[at], f[at + 1], f[at + 2], f[at + 3]])
}

fn payload(f: &[u8]) -> &[u8] {
    let end = 14 + usize::from(u16::from_be_bytes([f[16], f[17]]));
    &f[14 + 20 + usize::from(f[14 + 20 + 12] >> 4) * 4..end]
}

/// One frame out, checksums good; returns it.
fn one(out: Vec<(u16, Vec<u8>)>) -> Vec<u8> {
    assert_eq!(out.len(), 1);
    parse(&out[0].1);
    out.into_iter().next().unwrap().1
}

fn v2_header() -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 2, 192, 0, 2, 100, 0x9c, 0x40, 0, 80]);
    h
}

#[test]
fn a_proxy_v2_header_leads_the_stream_and_sequence_numbers_follow_it() {
    let mut rig = rig(ClientAddr::ProxyV2, false);
    let hdr = v2_header();
    let n = hdr.len() as u32;
    let first = ISN.wrapping_add(1);
    let syn = one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[2, 4, 5, 0xb4], b"")));
    assert_eq!((word(&syn, SEQ), payload(&syn).len()), (ISN, 0), "the SYN goes as it came");
    let lport = parse(&syn).1;
    // The backend's SYN-ACK: its MSS lowered by the header for the client.
    let sa = TcpFlags::SYN | TcpFlags::ACK;
    let f = one(rig.rx(1, tcp(true, lport, BISN, first, sa, &[2, 4, 5, 0xb4], b"")));
    assert_eq!(&f[OPTS..OPTS + 4], &[2, 4, 0x05, 0xb4 - 28]);
    assert_eq!(word(&f, ACK_AT), first);
    // The handshake-completing ACK carries the header.
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 1, TcpFlags::ACK, &[], b"")));
    assert_eq!((word(&f, SEQ), payload(&f)), (first, &hdr[..]));
    // The request, the header not yet acknowledged: header and request, at ISN + 1 again.
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 1, TcpFlags::ACK | TcpFlags::PSH, &[], b"GET /")));
    assert_eq!(word(&f, SEQ), first);
    assert_eq!(&payload(&f)[..28], &hdr[..]);
    assert_eq!(&payload(&f)[28..], b"GET /");
    assert_eq!(rig.event(Event::ClientAddrSent), 2);
    // The backend acknowledges the header inside: the client sees nothing of its acknowledged.
    let f = one(rig.rx(1, tcp(true, lport, BISN + 1, first.wrapping_add(10), TcpFlags::ACK, &[], b"")));
    assert_eq!(word(&f, ACK_AT), first);
    // Then everything, with a reply: the client sees its 5 bytes acknowledged.
    let f = one(rig.rx(1, tcp(true, lport, BISN + 1, first.wrapping_add(n + 5), TcpFlags::ACK, &[], b"200 OK")));
    assert_eq!((word(&f, SEQ), word(&f, ACK_AT)), (BISN + 1, first.wrapping_add(5)));
    // A late retransmission of the request goes without the header now, shifted.
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 7, TcpFlags::ACK, &[], b"GET /")));
    assert_eq!((word(&f, SEQ), payload(&f)), (first.wrapping_add(n), &b"GET /"[..]));
    // The client's next bytes and its SACK of the backend's data (not shifted: theirs).
    let mut sack = [1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    sack[4..8].copy_from_slice(&(BISN + 100).to_be_bytes());
    sack[8..12].copy_from_slice(&(BISN + 200).to_be_bytes());
    let f = one(rig.rx(0, tcp(false, 80, first.wrapping_add(5), BISN + 7, TcpFlags::ACK, &sack, b"more")));
    assert_eq!((word(&f, SEQ), word(&f, ACK_AT)), (first.wrapping_add(n + 5), BISN + 7));
    assert_eq!((word(&f, OPTS + 4), word(&f, OPTS + 8)), (BISN + 100, BISN + 200));
    // The backend's SACK of client bytes comes back over the header.
    let mut sack = [1, 1, 5, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    sack[4..8].copy_from_slice(&first.wrapping_add(n + 100).to_be_bytes());
    sack[8..12].copy_from_slice(&first.wrapping_add(n + 200).to_be_bytes());
    let f = one(rig.rx(1, tcp(true, lport, BISN + 7, first.wrapping_add(n + 9), TcpFlags::ACK, &sack, b"")));
    assert_eq!(word(&f, ACK_AT), first.wrapping_add(9));
    assert_eq!((word(&f, OPTS + 4), word(&f, OPTS + 8)), (first.wrapping_add(100), first.wrapping_add(200)));
    assert_eq!(rig.event(Event::ClientAddrSent), 2);
}

#[test]
fn a_first_segment_too_big_for_the_egress_with_the_header_sends_the_header_alone() {
    let mut rig = rig(ClientAddr::ProxyV1, false);
    let first = ISN.wrapping_add(1);
    one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[], b"")));
    // 1460 bytes of payload: 1500 on the wire already.
    let big = vec![b'x'; 1460];
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 1, TcpFlags::ACK, &[], &big)));
    assert_eq!((word(&f, SEQ), payload(&f)), (first, &b"PROXY TCP4 192.0.2.2 192.0.2.100 40000 80\r\n"[..]));
    assert_eq!(rig.event(Event::ClientAddrHeaderAlone), 1);
}

#[test]
fn toa_rides_the_first_segments_then_the_connection_returns_to_the_fast_path() {
    let mut rig = rig(ClientAddr::Toa, false);
    let first = ISN.wrapping_add(1);
    let lport = parse(&one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[], b"")))).1;
    let sa = TcpFlags::SYN | TcpFlags::ACK;
    let f = one(rig.rx(1, tcp(true, lport, BISN, first, sa, &[2, 4, 5, 0xb4], b"")));
    assert_eq!(&f[OPTS..OPTS + 4], &[2, 4, 5, 0xb4], "TOA takes no sequence space: MSS kept");
    let toa = [254, 8, 0x9c, 0x40, 192, 0, 2, 2];
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 1, TcpFlags::ACK, &[], b"")));
    assert_eq!((f[14 + 32] >> 4, &f[OPTS..OPTS + 8]), (7, &toa[..]));
    let f = one(rig.rx(0, tcp(false, 80, first, BISN + 1, TcpFlags::ACK, &[], b"GET /")));
    assert_eq!((&f[OPTS..OPTS + 8], payload(&f)), (&toa[..], &b"GET /"[..]));
    assert_eq!(word(&f, SEQ), first);
    // The backend acknowledges client data: no more TOA, and the flag is gone.
    let f = one(rig.rx(1, tcp(true, lport, BISN + 1, first.wrapping_add(5), TcpFlags::ACK, &[], b"")));
    assert_eq!(word(&f, ACK_AT), first.wrapping_add(5));
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
    assert!(!rig.ctx.lb.conns.get(id).flags.contains(crate::conn::ConnFlags::PROXIED));
    let f = one(rig.rx(0, tcp(false, 80, first.wrapping_add(5), BISN + 1, TcpFlags::ACK, &[], b"x")));
    assert_eq!(f[14 + 32] >> 4, 5, "no options");
    assert_eq!(rig.event(Event::ClientAddrSent), 2);
}

#[test]
fn on_a_syn_proxied_connection_both_shifts_apply() {
    let mut rig = rig(ClientAddr::ProxyV2, true);
    let hdr = v2_header();
    let n = hdr.len() as u32;
    let first = ISN.wrapping_add(1);
    // Our SYN-ACK (a cookie) offers the cookie's MSS less the header.
    let f = one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[2, 4, 5, 0xb4], b"")));
    assert_eq!(&f[OPTS..OPTS + 4], &[2, 4, 0x05, 0xb4 - 28]);
    let cookie = word(&f, SEQ);
    // The client's ACK opens the connection: a SYN to the backend.
    let syn = one(rig.rx(0, tcp(false, 80, first, cookie + 1, TcpFlags::ACK, &[], b"")));
    assert_eq!((syn[FLAGS], word(&syn, SEQ)), (0x02, ISN));
    let lport = parse(&syn).1;
    // The backend's SYN-ACK becomes our ACK to it, which carries the header.
    let sa = TcpFlags::SYN | TcpFlags::ACK;
    let f = one(rig.rx(1, tcp(true, lport, BISN, first, sa, &[2, 4, 5, 0xb4], b"")));
    assert_eq!((f[FLAGS], word(&f, SEQ), word(&f, ACK_AT)), (0x10, first, BISN + 1));
    assert_eq!(payload(&f), &hdr[..]);
    let delta = BISN.wrapping_sub(cookie);
    // The client's request (the header unacknowledged): header again, ack into the backend's space.
    let f = one(rig.rx(0, tcp(false, 80, first, cookie + 1, TcpFlags::ACK, &[], b"GET /")));
    assert_eq!((word(&f, SEQ), word(&f, ACK_AT)), (first, BISN + 1));
    assert_eq!(&payload(&f)[28..], b"GET /");
    // The backend's reply: seq into the cookie's space, ack back over the header.
    let f = one(rig.rx(1, tcp(true, lport, BISN + 1, first.wrapping_add(n + 5), TcpFlags::ACK, &[], b"200")));
    assert_eq!((word(&f, SEQ), word(&f, ACK_AT)), ((BISN + 1).wrapping_sub(delta), first.wrapping_add(5)));
    assert_eq!(word(&f, SEQ), cookie + 1);
    // The client's next segment: both shifts.
    let f = one(rig.rx(0, tcp(false, 80, first.wrapping_add(5), cookie + 4, TcpFlags::ACK, &[], b"x")));
    assert_eq!((word(&f, SEQ), word(&f, ACK_AT)), (first.wrapping_add(n + 5), BISN + 4));
}

#[test]
fn a_fast_open_syn_reaches_the_backend_without_its_data() {
    let mut rig = rig(ClientAddr::ProxyV1, false);
    let f = one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[2, 4, 5, 0xb4], b"GET / HTTP/1.0\r\n\r\n")));
    assert_eq!((f[FLAGS], word(&f, SEQ), payload(&f)), (0x02, ISN, &b""[..]));
    assert_eq!(&f[OPTS..OPTS + 4], &[2, 4, 5, 0xb4]);
    // Its retransmission too; and the header then leads the client's data as always.
    let f = one(rig.rx(0, tcp(false, 80, ISN, 0, TcpFlags::SYN, &[2, 4, 5, 0xb4], b"GET / HTTP/1.0\r\n\r\n")));
    assert_eq!(payload(&f), b"");
    let f = one(rig.rx(0, tcp(false, 80, ISN.wrapping_add(1), BISN + 1, TcpFlags::ACK, &[], b"GET /")));
    assert!(payload(&f).starts_with(b"PROXY TCP4 192.0.2.2 192.0.2.100 40000 80\r\n"));
    assert!(payload(&f).ends_with(b"GET /"));
}
