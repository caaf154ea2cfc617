//! The PROXY protocol and TOA headers byte by byte, their insertion, and the sequence shift
//! both ways, every checksum verified from scratch, over IPv4 and IPv6.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::testkit::packet::{verify_v4_checksums, Ipv4Repr, Ipv6Repr, L4Repr, TcpRepr};
use crate::wire::checksum;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);
const ISN: u32 = 0xffff_fff0;

fn ep4() -> Endpoints {
    Endpoints { client: IpAddr::V4(CLIENT), vip: IpAddr::V4(VIP), cport: 40000, vport: 80 }
}

fn ep6() -> Endpoints {
    Endpoints { client: IpAddr::V6(CLIENT6), vip: IpAddr::V6(VIP6), cport: 40000, vport: 443 }
}

fn header(kind: ClientAddr, ep: &Endpoints) -> Vec<u8> {
    let mut buf = [0u8; MAX_LEN];
    let n = write_header(kind, ep, &mut buf);
    buf[..n].to_vec()
}

/// An IPv4 client -> backend segment (already FullNAT-rewritten: laddr -> backend).
fn seg4(tcp: TcpRepr) -> Vec<u8> {
    Ipv4Repr::new(LADDR, BACKEND).packet(&L4Repr::Tcp(tcp))
}

fn checksums_ok(ip: &[u8]) {
    if ip[0] >> 4 == 4 {
        let mut frame = vec![0u8; 14];
        frame.extend_from_slice(ip);
        verify_v4_checksums(&frame).unwrap();
        return;
    }
    let end = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap());
    let s = checksum::pseudo_header_v6(src, dst, 6, (end - 40) as u32) + checksum::sum(&ip[40..end]);
    assert_eq!(checksum::fold(s), 0xffff, "TCP checksum over IPv6");
}

fn word(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The packet with room to grow, as a frame buffer has.
fn roomy(mut p: Vec<u8>) -> (Vec<u8>, usize) {
    let end = p.len();
    p.resize(end + 256, 0xee);
    (p, end)
}

#[test]
fn proxy_v1_lines_are_the_specs_text() {
    assert_eq!(header(ClientAddr::ProxyV1, &ep4()), b"PROXY TCP4 192.0.2.2 192.0.2.100 40000 80\r\n");
    assert_eq!(header(ClientAddr::ProxyV1, &ep6()), b"PROXY TCP6 2001:db8::2 2001:db8::100 40000 443\r\n");
    // The longest line fits the buffer.
    let max = Ipv6Addr::new(0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff);
    let long = Endpoints { client: IpAddr::V6(max), vip: IpAddr::V6(max), cport: 65535, vport: 65535 };
    let line = header(ClientAddr::ProxyV1, &long);
    assert_eq!(line.len(), 104);
    assert!(line.ends_with(b" 65535 65535\r\n"));
    assert_eq!(header(ClientAddr::Off, &ep4()), b"");
}

#[test]
fn proxy_v2_headers_are_the_specs_bytes() {
    let mut want = V2_SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 2, 192, 0, 2, 100, 0x9c, 0x40, 0, 80]);
    assert_eq!(header(ClientAddr::ProxyV2, &ep4()), want);
    assert_eq!(want.len(), 28);
    let mut want = V2_SIGNATURE.to_vec();
    want.extend_from_slice(&[0x21, 0x21, 0, 36]);
    want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00]);
    want.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb]);
    assert_eq!(header(ClientAddr::ProxyV2, &ep6()), want);
    assert_eq!(want.len(), 52);
}

#[test]
fn toa_options_carry_the_clients_port_and_address() {
    assert_eq!(header(ClientAddr::Toa, &ep4()), [254, 8, 0x9c, 0x40, 192, 0, 2, 2]);
    let mut want = vec![254, 20, 0x9c, 0x40];
    want.extend_from_slice(&CLIENT6.octets());
    assert_eq!(header(ClientAddr::Toa, &ep6()), want);
    let s = Shift::new(ClientAddr::Toa, ISN, &ep4(), false);
    assert_eq!((s.len, s.stream_len()), (8, 0));
    let s = Shift::new(ClientAddr::ProxyV1, ISN, &ep4(), false);
    assert_eq!((s.len, s.stream_len()), (43, 43));
}

#[test]
fn the_header_goes_into_the_handshake_ack_and_again_into_the_first_data_segment() {
    let shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), false);
    let hdr = header(ClientAddr::ProxyV2, &ep4());
    let first = ISN.wrapping_add(1);
    // The ACK that completes the handshake becomes a data segment: the header at ISN + 1.
    let ack = TcpRepr { seq: first, ack: 7001, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let (mut p, end) = roomy(seg4(ack));
    let out = client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap();
    assert_eq!(out, ToBackend::Inserted(end + 28));
    p.truncate(end + 28);
    checksums_ok(&p);
    assert_eq!(u16::from_be_bytes([p[2], p[3]]) as usize, end + 28, "IPv4 total length");
    assert_eq!(word(&p, 24), first, "the header sits at ISN + 1");
    assert_eq!(word(&p, 28), 7001, "ack untouched");
    assert_eq!(&p[40..], &hdr[..]);

    // The request, not yet acknowledged: the header again, then the client's bytes.
    let req = TcpRepr { seq: first, ack: 7001, ..TcpRepr::new(1024, 8080, TcpFlags::ACK | TcpFlags::PSH) };
    let (mut p, end) = roomy(seg4(req.with_payload(b"GET / HTTP/1.0\r\n\r\n")));
    let out = client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap();
    assert_eq!(out, ToBackend::Inserted(end + 28));
    p.truncate(end + 28);
    checksums_ok(&p);
    assert_eq!(word(&p, 24), first);
    assert_eq!(&p[40..68], &hdr[..]);
    assert_eq!(&p[68..], b"GET / HTTP/1.0\r\n\r\n");

    // Retransmitted before the backend acknowledged: the same bytes again.
    let (mut again, end2) = roomy(seg4(req.with_payload(b"GET / HTTP/1.0\r\n\r\n")));
    client_segment(&mut again, 20, end2, usize::MAX, &shift, &ep4()).unwrap();
    again.truncate(end2 + 28);
    assert_eq!(again, p);

    // A SYN (retransmitted) is left alone: it precedes the header.
    let syn = TcpRepr { seq: ISN, ..TcpRepr::new(1024, 8080, TcpFlags::SYN) };
    let (mut p, end) = roomy(seg4(syn));
    let before = p.clone();
    assert_eq!(client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap(), ToBackend::Unchanged);
    assert_eq!(p, before);
}

#[test]
fn once_acknowledged_the_clients_segments_move_past_the_header() {
    let mut shift = Shift::new(ClientAddr::ProxyV1, ISN, &ep4(), false);
    let len = u32::from(shift.len);
    let first = ISN.wrapping_add(1);
    // A later segment before the acknowledgement: past the header already.
    let later = TcpRepr { seq: first.wrapping_add(100), ack: 9, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let mut p = seg4(later.with_payload(b"xyz"));
    let end = p.len();
    assert_eq!(client_segment(&mut p, 20, end, end, &shift, &ep4()).unwrap(), ToBackend::Shifted);
    checksums_ok(&p);
    assert_eq!(word(&p, 24), first.wrapping_add(100 + len));

    // The backend acknowledges the header and 18 bytes of the client's.
    let reply = TcpRepr { seq: 7001, ack: first.wrapping_add(len + 18), ..TcpRepr::new(8080, 1024, TcpFlags::ACK) };
    let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(reply));
    let end = r.len();
    assert!(backend_segment(&mut r, 20, end, &mut shift).unwrap(), "now acked");
    assert!(shift.acked);
    checksums_ok(&r);
    assert_eq!(word(&r, 28), first.wrapping_add(18), "the client sees its own 18 bytes acknowledged");
    assert_eq!(word(&r, 24), 7001, "seq untouched");

    // Now a retransmission from ISN + 1 goes without the header, shifted.
    let retx = TcpRepr { seq: first, ack: 7001, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let mut p = seg4(retx.with_payload(b"GET"));
    let end = p.len();
    assert_eq!(client_segment(&mut p, 20, end, end + 200, &shift, &ep4()).unwrap(), ToBackend::Shifted);
    assert_eq!(p.len(), end);
    assert_eq!(word(&p, 24), first.wrapping_add(len));
    checksums_ok(&p);
}

#[test]
fn backend_acks_inside_the_header_show_the_client_nothing_and_sack_blocks_move_back() {
    let mut shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), false);
    let first = ISN.wrapping_add(1);
    for past in [0u32, 1, 27] {
        let reply = TcpRepr { seq: 5, ack: first.wrapping_add(past), ..TcpRepr::new(8080, 1024, TcpFlags::ACK) };
        let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(reply));
        let end = r.len();
        assert!(!backend_segment(&mut r, 20, end, &mut shift).unwrap());
        checksums_ok(&r);
        assert_eq!(word(&r, 28), first, "past {past}");
    }
    assert!(!shift.acked);
    // SACK blocks (at an odd offset after one NOP) name client bytes past the header.
    let (l, r_) = (first.wrapping_add(28 + 100), first.wrapping_add(28 + 200));
    let mut opts = vec![1, 1, 1, 5, 10];
    opts.extend_from_slice(&l.to_be_bytes());
    opts.extend_from_slice(&r_.to_be_bytes());
    opts.extend_from_slice(&[0, 0, 0]);
    let reply =
        TcpRepr { seq: 5, ack: first.wrapping_add(28), options: &opts, ..TcpRepr::new(8080, 1024, TcpFlags::ACK) };
    let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(reply));
    let end = r.len();
    assert!(backend_segment(&mut r, 20, end, &mut shift).unwrap());
    checksums_ok(&r);
    assert_eq!(word(&r, 28), first);
    assert_eq!(word(&r, 45), first.wrapping_add(100));
    assert_eq!(word(&r, 49), first.wrapping_add(200));
}

#[test]
fn the_backends_syn_ack_mss_is_lowered_by_the_header() {
    let mut shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), false);
    let synack = TcpRepr {
        seq: 7000,
        ack: ISN.wrapping_add(1),
        options: &[1, 2, 4, 0x05, 0xb4, 1, 1, 0],
        ..TcpRepr::new(8080, 1024, TcpFlags::SYN | TcpFlags::ACK)
    };
    let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(synack));
    let end = r.len();
    backend_segment(&mut r, 20, end, &mut shift).unwrap();
    checksums_ok(&r);
    assert_eq!(u16::from_be_bytes([r[43], r[44]]), 1460 - 28);
    assert_eq!(word(&r, 28), ISN.wrapping_add(1));
    assert_eq!(mss_for_header(100, 104), 88);
}

#[test]
fn a_segment_too_big_for_the_header_sends_the_header_alone() {
    let shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), false);
    let first = ISN.wrapping_add(1);
    let data = [0x61u8; 1000];
    let req = TcpRepr { seq: first, ack: 9, ..TcpRepr::new(1024, 8080, TcpFlags::ACK | TcpFlags::FIN) };
    let (mut p, end) = roomy(seg4(req.with_payload(&data)));
    // No room for 28 more bytes.
    let out = client_segment(&mut p, 20, end, end + 27, &shift, &ep4()).unwrap();
    assert_eq!(out, ToBackend::HeaderAlone(40 + 28));
    p.truncate(68);
    checksums_ok(&p);
    assert_eq!(word(&p, 24), first);
    assert_eq!(p[33] & TcpFlags::FIN.bits(), 0, "the FIN follows the payload: it comes again too");
    assert_eq!(&p[40..], &header(ClientAddr::ProxyV2, &ep4())[..]);
}

#[test]
fn toa_goes_first_among_the_options_of_the_first_segments_while_there_is_room() {
    let mut shift = Shift::new(ClientAddr::Toa, ISN, &ep4(), false);
    let first = ISN.wrapping_add(1);
    let ts = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
    let ack = TcpRepr { seq: first, ack: 7001, options: &ts, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let (mut p, end) = roomy(seg4(ack.with_payload(b"hi")));
    let out = client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap();
    assert_eq!(out, ToBackend::Inserted(end + 8));
    p.truncate(end + 8);
    checksums_ok(&p);
    assert_eq!(p[32] >> 4, 10, "data offset 40 bytes");
    assert_eq!(&p[40..48], &[254, 8, 0x9c, 0x40, 192, 0, 2, 2]);
    assert_eq!(&p[48..60], &ts);
    assert_eq!(&p[60..], b"hi");
    assert_eq!(word(&p, 24), first, "no sequence space");
    // 40 bytes of options already: no room, sent as it is.
    let full = [1u8; 40];
    let ack = TcpRepr { seq: first, ack: 7001, options: &full, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let (mut p, end) = roomy(seg4(ack));
    let before = p.clone();
    assert_eq!(client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap(), ToBackend::NoRoom);
    assert_eq!(p, before);
    // No room in the MTU: the same.
    let ack = TcpRepr { seq: first, ack: 7001, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let (mut p, end) = roomy(seg4(ack));
    assert_eq!(client_segment(&mut p, 20, end, end + 7, &shift, &ep4()).unwrap(), ToBackend::NoRoom);
    // Once the backend acknowledged a byte of the client's, no more TOA; TOA never shifts.
    let reply = TcpRepr { seq: 7001, ack: first.wrapping_add(2), ..TcpRepr::new(8080, 1024, TcpFlags::ACK) };
    let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(reply));
    let (before, end) = (r.clone(), r.len());
    assert!(backend_segment(&mut r, 20, end, &mut shift).unwrap());
    assert_eq!(r, before);
    let ack = TcpRepr { seq: first, ack: 7001, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let (mut p, end) = roomy(seg4(ack));
    assert_eq!(client_segment(&mut p, 20, end, usize::MAX, &shift, &ep4()).unwrap(), ToBackend::Unchanged);
}

#[test]
fn over_ipv6_the_header_and_toa_go_in_the_same_way() {
    let (laddr, backend) =
        (Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 11));
    let first = ISN.wrapping_add(1);
    for kind in [ClientAddr::ProxyV1, ClientAddr::ProxyV2, ClientAddr::Toa] {
        let mut shift = Shift::new(kind, ISN, &ep6(), false);
        let hdr = header(kind, &ep6());
        let req = TcpRepr { seq: first, ack: 3, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
        let mut p = Ipv6Repr::new(laddr, backend).packet(&L4Repr::Tcp(req.with_payload(b"hello")));
        let end = p.len();
        p.resize(end + 200, 0);
        let out = client_segment(&mut p, 40, end, usize::MAX, &shift, &ep6()).unwrap();
        let n = hdr.len();
        assert_eq!(out, ToBackend::Inserted(end + n), "{kind:?}");
        p.truncate(end + n);
        checksums_ok(&p);
        assert_eq!(u16::from_be_bytes([p[4], p[5]]) as usize, end + n - 40);
        if kind == ClientAddr::Toa {
            assert_eq!(&p[60..80], &hdr[..]);
            assert_eq!(&p[80..], b"hello");
        } else {
            assert_eq!(&p[60..60 + n], &hdr[..]);
            assert_eq!(&p[60 + n..], b"hello");
        }
        // The backend acknowledges everything: the client sees its 5 bytes acknowledged.
        let len = shift.stream_len();
        let reply = TcpRepr { seq: 3, ack: first.wrapping_add(len + 5), ..TcpRepr::new(8080, 1024, TcpFlags::ACK) };
        let mut r = Ipv6Repr::new(backend, laddr).packet(&L4Repr::Tcp(reply));
        let end = r.len();
        backend_segment(&mut r, 40, end, &mut shift).unwrap();
        checksums_ok(&r);
        assert_eq!(word(&r, 48), first.wrapping_add(5), "{kind:?}");
        assert!(shift.acked);
    }
}

#[test]
fn with_the_syn_proxy_each_side_gets_its_own_shift() {
    // The SYN proxy's delta moves the backend's numbers, the header the client's.
    let shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), true);
    let mut back = shift;
    let delta = 0x1234_5678u32;
    let first = ISN.wrapping_add(1);
    let cookie = 0xaaaa_0000u32;
    // Client -> backend: the client acknowledges our cookie's numbers, sends past the header.
    let c2b = TcpRepr { seq: first.wrapping_add(10), ack: cookie + 1, ..TcpRepr::new(1024, 8080, TcpFlags::ACK) };
    let mut p = seg4(c2b.with_payload(b"z"));
    let end = p.len();
    seqadj::to_backend(&mut p, 20, end, delta);
    assert_eq!(client_segment(&mut p, 20, end, end, &shift, &ep4()).unwrap(), ToBackend::Shifted);
    checksums_ok(&p);
    assert_eq!(word(&p, 24), first.wrapping_add(10 + 28));
    assert_eq!(word(&p, 28), (cookie + 1).wrapping_add(delta));
    // Backend -> client: its numbers back to the cookie's, its ack back over the header.
    let b2c = TcpRepr {
        seq: (cookie + 1).wrapping_add(delta),
        ack: first.wrapping_add(28 + 11),
        ..TcpRepr::new(8080, 1024, TcpFlags::ACK)
    };
    let mut r = Ipv4Repr::new(BACKEND, LADDR).packet(&L4Repr::Tcp(b2c));
    let end = r.len();
    seqadj::to_client(&mut r, 20, end, delta);
    backend_segment(&mut r, 20, end, &mut back).unwrap();
    checksums_ok(&r);
    assert_eq!(word(&r, 24), cookie + 1);
    assert_eq!(word(&r, 28), first.wrapping_add(11));
}

#[test]
fn a_fast_open_syns_data_is_dropped_where_a_proxy_header_must_come_first() {
    let shift = Shift::new(ClientAddr::ProxyV2, ISN, &ep4(), false);
    let syn = TcpRepr { seq: ISN, options: &[2, 4, 5, 0xb4], ..TcpRepr::new(1024, 8080, TcpFlags::SYN) };
    let mut p = seg4(syn.with_payload(b"GET / HTTP/1.0\r\n\r\n"));
    let end = p.len();
    assert_eq!(client_segment(&mut p, 20, end, end, &shift, &ep4()).unwrap(), ToBackend::SynTrimmed(44));
    p.truncate(44);
    checksums_ok(&p);
    assert_eq!((word(&p, 24), p[33]), (ISN, TcpFlags::SYN.bits()));
    assert_eq!(&p[40..44], &[2, 4, 5, 0xb4]);
    // Without data, or with TOA (no stream bytes), the SYN goes as it came.
    let mut p = seg4(syn);
    let (before, end) = (p.clone(), p.len());
    assert_eq!(client_segment(&mut p, 20, end, end, &shift, &ep4()).unwrap(), ToBackend::Unchanged);
    assert_eq!(p, before);
    let toa = Shift::new(ClientAddr::Toa, ISN, &ep4(), false);
    let mut p = seg4(syn.with_payload(b"x"));
    let (before, end) = (p.clone(), p.len());
    assert_eq!(client_segment(&mut p, 20, end, end, &toa, &ep4()).unwrap(), ToBackend::Unchanged);
    assert_eq!(p, before);
}
