//! NAT64 translations against packets built from scratch (every checksum summed in full):
//! TCP and UDP both ways, the MSS clamp, UDP without checksum, ICMPv4 errors becoming ICMPv6
//! ones, and refusals that leave the buffer unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::nat64::*;
use super::v6::{parse_v6, Rewrite6};
use super::{Rewrite4, XlateError};
use crate::testkit::packet::{Icmpv4Repr, Icmpv6Repr, Ipv4Repr, Ipv6Repr, L4Repr, TcpRepr, UdpRepr};
use crate::wire::checksum;
use crate::wire::{IpProtocol, TcpFlags};

const CLIENT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
const CPORT: u16 = 40000;
const VPORT: u16 = 80;
const LPORT: u16 = 1025;
const BPORT: u16 = 8080;
/// Odd length: the checksum's trailing byte is exercised.
const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\n\r\nx";

const TO_BACKEND: Rewrite4 = Rewrite4 { src: LADDR, dst: BACKEND, sport: LPORT, dport: BPORT };
const TO_CLIENT: Rewrite6 = Rewrite6 { src: VIP, dst: CLIENT, sport: VPORT, dport: CPORT };

fn tcp(sport: u16, dport: u16, flags: TcpFlags, payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Tcp(TcpRepr::new(sport, dport, flags).with_payload(payload))
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> L4Repr<'_> {
    L4Repr::Udp(UdpRepr { sport, dport, payload })
}

fn v4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, tos: u8) -> Ipv4Repr {
    Ipv4Repr { src, dst, ttl, dont_frag: true, ident: 0, tos }
}

fn v6(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, tc: u8) -> Vec<u8> {
    let mut h = Ipv6Repr { src, dst, hop_limit }.header(IpProtocol::TCP, 0).to_vec();
    h[0] = 0x60 | (tc >> 4);
    h[1] = tc << 4;
    h
}

/// An IPv6 packet with traffic class `tc`.
fn packet6(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, tc: u8, l4: &L4Repr) -> Vec<u8> {
    let mut p = Ipv6Repr { src, dst, hop_limit: hop }.packet(l4);
    p[..2].copy_from_slice(&v6(src, dst, hop, tc)[..2]);
    p
}

/// The client's packet to the VIP translated for the backend, the IPv4 packet returned.
fn client_to_backend(packet: &mut [u8], mss_max: u16) -> Result<Vec<u8>, XlateError> {
    let parsed = parse_v6(packet)?;
    let len = v6_to_v4(packet, &parsed, &TO_BACKEND, mss_max)?;
    Ok(packet[NAT64_SHRINK..NAT64_SHRINK + len].to_vec())
}

/// The backend's IPv4 packet translated for the client.
fn backend_to_client(packet: &[u8], mss_max: u16) -> Result<Vec<u8>, XlateError> {
    let mut buf = vec![0xbb; NAT64_SHRINK];
    buf.extend_from_slice(packet);
    let len = v4_to_v6(&mut buf, &TO_CLIENT, mss_max)?;
    Ok(buf[..len].to_vec())
}

#[test]
fn a_client_tcp_segment_becomes_the_ipv4_segment_a_fullnat_client_would_send() {
    let l4 = tcp(CPORT, VPORT, TcpFlags::PSH | TcpFlags::ACK, PAYLOAD);
    let mut p = packet6(CLIENT, VIP, 64, 0xb8, &l4);
    let got = client_to_backend(&mut p, 1440).unwrap();
    let want = v4(LADDR, BACKEND, 63, 0xb8).packet(&tcp(LPORT, BPORT, TcpFlags::PSH | TcpFlags::ACK, PAYLOAD));
    assert_eq!(got, want);
}

#[test]
fn a_client_udp_datagram_becomes_ipv4() {
    let mut p = packet6(CLIENT, VIP, 2, 0, &udp(CPORT, VPORT, PAYLOAD));
    let got = client_to_backend(&mut p, 1440).unwrap();
    assert_eq!(got, v4(LADDR, BACKEND, 1, 0).packet(&udp(LPORT, BPORT, PAYLOAD)));
}

#[test]
fn a_backend_reply_becomes_the_ipv6_packet_from_the_vip() {
    for l4 in [tcp(BPORT, LPORT, TcpFlags::ACK, PAYLOAD), udp(BPORT, LPORT, PAYLOAD)] {
        let reply = v4(BACKEND, LADDR, 64, 0x20).packet(&l4);
        let got = backend_to_client(&reply, 1460).unwrap();
        let want_l4 = match l4 {
            L4Repr::Tcp(_) => tcp(VPORT, CPORT, TcpFlags::ACK, PAYLOAD),
            _ => udp(VPORT, CPORT, PAYLOAD),
        };
        assert_eq!(got, packet6(VIP, CLIENT, 63, 0x20, &want_l4));
    }
}

#[test]
fn a_udp_reply_without_checksum_gets_one_in_ipv6() {
    let mut reply = v4(BACKEND, LADDR, 64, 0).packet(&udp(BPORT, LPORT, PAYLOAD));
    reply[20 + 6..20 + 8].fill(0);
    let got = backend_to_client(&reply, 1460).unwrap();
    assert_eq!(got, packet6(VIP, CLIENT, 63, 0, &udp(VPORT, CPORT, PAYLOAD)));
}

#[test]
fn an_ipv6_udp_datagram_without_checksum_is_refused() {
    let mut p = packet6(CLIENT, VIP, 64, 0, &udp(CPORT, VPORT, PAYLOAD));
    p[40 + 6..40 + 8].fill(0);
    let before = p.clone();
    assert_eq!(client_to_backend(&mut p, 1440), Err(XlateError::Malformed));
    assert_eq!(p, before);
}

#[test]
fn an_expiring_hop_limit_or_ttl_is_refused_unchanged() {
    let mut p = packet6(CLIENT, VIP, 1, 0, &tcp(CPORT, VPORT, TcpFlags::ACK, b""));
    let before = p.clone();
    assert_eq!(client_to_backend(&mut p, 1440), Err(XlateError::TtlExpired));
    assert_eq!(p, before);
    let reply = v4(BACKEND, LADDR, 1, 0).packet(&tcp(BPORT, LPORT, TcpFlags::ACK, b""));
    assert_eq!(backend_to_client(&reply, 1460), Err(XlateError::TtlExpired));
}

#[test]
fn ipv4_options_and_fragments_are_not_translated() {
    let mut reply = v4(BACKEND, LADDR, 64, 0).packet(&udp(BPORT, LPORT, PAYLOAD));
    reply[6] = 0x20; // MF
    assert_eq!(backend_to_client(&reply, 1460), Err(XlateError::Unsupported));
    let mut reply = v4(BACKEND, LADDR, 64, 0).packet(&udp(BPORT, LPORT, PAYLOAD));
    reply[0] = 0x46;
    assert_eq!(backend_to_client(&reply, 1460), Err(XlateError::Unsupported));
    let reply = v4(BACKEND, LADDR, 64, 0).packet(&udp(BPORT, LPORT, PAYLOAD));
    assert_eq!(backend_to_client(&reply[..30], 1460), Err(XlateError::Malformed));
}

fn syn(sport: u16, dport: u16, options: &[u8]) -> L4Repr<'_> {
    L4Repr::Tcp(TcpRepr { options, ..TcpRepr::new(sport, dport, TcpFlags::SYN) })
}

#[test]
fn the_mss_of_a_syn_is_lowered_to_what_fits_and_never_raised() {
    // MSS 1440 after a NOP: the value sits at an odd offset, straddling checksum words.
    let opts = |mss: u16| {
        let m = mss.to_be_bytes();
        [1, 2, 4, m[0], m[1], 1, 1, 0]
    };
    for (announced, max, want) in [(1440, 1400, 1400), (1440, 1460, 1440), (9000, 1440, 1440)] {
        let o = opts(announced);
        let mut p = packet6(CLIENT, VIP, 64, 0, &syn(CPORT, VPORT, &o));
        let got = client_to_backend(&mut p, max).unwrap();
        let w = opts(want);
        assert_eq!(got, v4(LADDR, BACKEND, 63, 0).packet(&syn(LPORT, BPORT, &w)), "{announced} to at most {max}");
    }
    // Aligned, in the backend's SYN-ACK.
    let o = [2, 4, 0x05, 0xb4];
    let l4 = L4Repr::Tcp(TcpRepr { options: &o, ..TcpRepr::new(BPORT, LPORT, TcpFlags::SYN | TcpFlags::ACK) });
    let got = backend_to_client(&v4(BACKEND, LADDR, 64, 0).packet(&l4), 1400).unwrap();
    let w = [2, 4, 0x05, 0x78];
    let want_l4 = L4Repr::Tcp(TcpRepr { options: &w, ..TcpRepr::new(VPORT, CPORT, TcpFlags::SYN | TcpFlags::ACK) });
    assert_eq!(got, packet6(VIP, CLIENT, 63, 0, &want_l4));
}

#[test]
fn the_mss_of_a_segment_that_is_no_syn_stays() {
    let o = [2, 4, 0x05, 0xb4];
    let l4 = L4Repr::Tcp(TcpRepr { options: &o, ..TcpRepr::new(CPORT, VPORT, TcpFlags::ACK) });
    let mut p = packet6(CLIENT, VIP, 64, 0, &l4);
    let got = client_to_backend(&mut p, 536).unwrap();
    let want_l4 = L4Repr::Tcp(TcpRepr { options: &o, ..TcpRepr::new(LPORT, BPORT, TcpFlags::ACK) });
    assert_eq!(got, v4(LADDR, BACKEND, 63, 0).packet(&want_l4));
}

/// What we sent the backend (laddr -> backend), as quoted by an ICMPv4 error, and what the
/// client sent (client -> VIP), as the translated error must quote it.
fn quotes(l4_of: impl Fn(u16, u16) -> Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let sent = {
        let body = l4_of(LPORT, BPORT);
        let mut v = v4(LADDR, BACKEND, 63, 0).header(IpProtocol::UDP, body.len()).to_vec();
        v.extend(body);
        v
    };
    let original = {
        let body = l4_of(CPORT, VPORT);
        let mut v = v6(CLIENT, VIP, 63, 0);
        v[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
        v[6] = IpProtocol::UDP.0;
        v.extend(body);
        v
    };
    (sent, original)
}

fn udp_bytes(sport: u16, dport: u16, src: IpAddr, dst: IpAddr) -> Vec<u8> {
    udp(sport, dport, PAYLOAD).emit(src, dst)
}

fn translate_error(icmp: &Icmpv4Repr, from: Ipv4Addr, cap: u16) -> Result<Vec<u8>, XlateError> {
    let err = v4(from, LADDR, 64, 0).packet(&L4Repr::Icmpv4(*icmp));
    let mut out = vec![0u8; err.len() + NAT64_ICMP_GROWTH];
    let len = icmp4_error_to_v6(&err, &mut out, VIP, CLIENT, &TO_CLIENT_QUOTE, cap)?;
    assert!(len <= err.len() + NAT64_ICMP_GROWTH);
    Ok(out[..len].to_vec())
}

const TO_CLIENT_QUOTE: Rewrite6 = Rewrite6 { src: CLIENT, dst: VIP, sport: CPORT, dport: VPORT };

#[test]
fn a_port_unreachable_becomes_an_icmpv6_port_unreachable_quoting_the_clients_datagram() {
    let (sent, original) = quotes(|s, d| {
        let (a, b) =
            if s == LPORT { (IpAddr::V4(LADDR), IpAddr::V4(BACKEND)) } else { (IpAddr::V6(CLIENT), IpAddr::V6(VIP)) };
        udp_bytes(s, d, a, b)
    });
    let got = translate_error(&Icmpv4Repr::PortUnreachable { quote: &sent }, BACKEND, 1500).unwrap();
    let want = Ipv6Repr { src: VIP, dst: CLIENT, hop_limit: 63 }
        .packet(&L4Repr::Icmpv6(Icmpv6Repr::DestUnreachable { code: 4, quote: &original }));
    assert_eq!(got, want);
    assert_checksum_v6(&got);
}

#[test]
fn frag_needed_becomes_packet_too_big_with_the_mtu_twenty_bytes_larger_within_bounds() {
    let (sent, original) = quotes(|s, d| {
        let (a, b) =
            if s == LPORT { (IpAddr::V4(LADDR), IpAddr::V4(BACKEND)) } else { (IpAddr::V6(CLIENT), IpAddr::V6(VIP)) };
        udp_bytes(s, d, a, b)
    });
    // (IPv4 MTU told, the client side's MTU) -> the IPv6 MTU told.
    for (mtu4, cap, want) in
        [(1400, 1500, 1420), (1480, 1500, 1500), (1500, 1480, 1480), (576, 1500, 1280), (0, 1500, 1280)]
    {
        let got = translate_error(&Icmpv4Repr::FragNeeded { mtu: mtu4, quote: &sent }, ROUTER, cap).unwrap();
        let want = Ipv6Repr { src: VIP, dst: CLIENT, hop_limit: 63 }
            .packet(&L4Repr::Icmpv6(Icmpv6Repr::PacketTooBig { mtu: want, quote: &original }));
        assert_eq!(got, want, "MTU {mtu4}, client side {cap}");
    }
}

#[test]
fn time_exceeded_and_unreachables_map_by_rfc_7915() {
    let (sent, original) = quotes(|s, d| {
        let (a, b) =
            if s == LPORT { (IpAddr::V4(LADDR), IpAddr::V4(BACKEND)) } else { (IpAddr::V6(CLIENT), IpAddr::V6(VIP)) };
        udp_bytes(s, d, a, b)
    });
    let got = translate_error(&Icmpv4Repr::TimeExceeded { quote: &sent }, ROUTER, 1500).unwrap();
    let want = Ipv6Repr { src: VIP, dst: CLIENT, hop_limit: 63 }
        .packet(&L4Repr::Icmpv6(Icmpv6Repr::TimeExceeded { quote: &original }));
    assert_eq!(got, want);
    // (ICMPv4 unreachable code) -> (ICMPv6 type, code).
    for (code, ty, want_code) in [(0, 1, 0), (1, 1, 0), (13, 1, 1), (10, 1, 1)] {
        let got = translate_error(&Icmpv4Repr::DestUnreachable { code, quote: &sent }, ROUTER, 1500).unwrap();
        assert_eq!((got[40], got[41]), (ty, want_code), "code {code}");
        assert_checksum_v6(&got);
    }
    // Protocol unreachable: parameter problem pointing at the next header.
    let got = translate_error(&Icmpv4Repr::DestUnreachable { code: 2, quote: &sent }, BACKEND, 1500).unwrap();
    assert_eq!(&got[40..48], &[4, 1, got[42], got[43], 0, 0, 0, 6]);
    assert_checksum_v6(&got);
}

#[test]
fn a_tcp_quote_cut_inside_its_header_has_its_ports_translated() {
    let seg = tcp(LPORT, BPORT, TcpFlags::SYN, b"").emit(IpAddr::V4(LADDR), IpAddr::V4(BACKEND));
    let mut sent = v4(LADDR, BACKEND, 63, 0).header(IpProtocol::TCP, seg.len()).to_vec();
    sent.extend_from_slice(&seg[..8]); // RFC 792: the header and 8 bytes.
    let got = translate_error(&Icmpv4Repr::PortUnreachable { quote: &sent }, BACKEND, 1500).unwrap();
    assert_eq!(got.len(), 40 + 8 + 40 + 8);
    let inner = &got[48..];
    assert_eq!(&inner[8..24], &CLIENT.octets());
    assert_eq!(&inner[24..40], &VIP.octets());
    assert_eq!(u16::from_be_bytes([inner[4], inner[5]]), seg.len() as u16, "the original payload length");
    assert_eq!(&inner[40..44], &[0x9c, 0x40, 0, 80]);
    assert_eq!(&inner[44..48], &seg[4..8], "the sequence number as sent");
    assert_checksum_v6(&got);
}

#[test]
fn a_long_quote_is_cut_to_keep_the_error_within_1280_bytes() {
    let big = vec![0x5a; 1400];
    let l4 = udp(LPORT, BPORT, &big).emit(IpAddr::V4(LADDR), IpAddr::V4(BACKEND));
    let mut sent = v4(LADDR, BACKEND, 63, 0).header(IpProtocol::UDP, l4.len()).to_vec();
    sent.extend(l4);
    let got = translate_error(&Icmpv4Repr::PortUnreachable { quote: &sent }, BACKEND, 1500).unwrap();
    assert_eq!(got.len(), 1280);
    assert_eq!(u16::from_be_bytes([got[4], got[5]]), 1240);
    assert_checksum_v6(&got);
}

#[test]
fn bad_or_untranslatable_errors_are_refused() {
    let (sent, _) = quotes(|s, d| udp_bytes(s, d, IpAddr::V4(LADDR), IpAddr::V4(BACKEND)));
    let mut err = v4(BACKEND, LADDR, 64, 0).packet(&L4Repr::Icmpv4(Icmpv4Repr::PortUnreachable { quote: &sent }));
    let mut out = vec![0u8; 1280];
    err[20 + 2] ^= 1; // ICMP checksum
    assert_eq!(icmp4_error_to_v6(&err, &mut out, VIP, CLIENT, &TO_CLIENT_QUOTE, 1500), Err(XlateError::Malformed));
    // Source quench, parameter problem: not translated.
    let body = [&[0u8; 4][..], &sent[..]].concat();
    for ty in [4u8, 12] {
        let other = Icmpv4Repr::Other { ty: crate::wire::Icmpv4Type(ty), code: 0, body: &body };
        let err = v4(BACKEND, LADDR, 64, 0).packet(&L4Repr::Icmpv4(other));
        assert_eq!(
            icmp4_error_to_v6(&err, &mut out, VIP, CLIENT, &TO_CLIENT_QUOTE, 1500),
            Err(XlateError::Unsupported)
        );
    }
    let err = v4(BACKEND, LADDR, 1, 0).packet(&L4Repr::Icmpv4(Icmpv4Repr::PortUnreachable { quote: &sent }));
    assert_eq!(icmp4_error_to_v6(&err, &mut out, VIP, CLIENT, &TO_CLIENT_QUOTE, 1500), Err(XlateError::TtlExpired));
}

fn assert_checksum_v6(p: &[u8]) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&p[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&p[24..40]).unwrap());
    let s = checksum::sum(&p[40..]) + checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, (p.len() - 40) as u32);
    assert_eq!(checksum::fold(s), 0xffff, "ICMPv6 checksum");
}
