//! Golden translations for the NAT and FullNAT cases, checksum checks by full recomputation,
//! property tests against packets rebuilt from scratch, and malformed inputs.

use std::net::IpAddr;

use super::*;
use crate::wire::icmpv4::{CODE_FRAG_NEEDED, CODE_PORT_UNREACHABLE};
use proptest::prelude::*;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const CPORT: u16 = 40000;
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const VPORT: u16 = 80;
const BACKEND: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const BPORT: u16 = 8080;
const LADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const LPORT: u16 = 1025;
/// A router on the client's path.
const ROUTER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

const SEQ: u32 = 0x0102_0304;
const ACK: u32 = 0x0a0b_0c0d;
/// Odd length, so the odd trailing byte of the L4 checksum is exercised.
const REQUEST: &[u8] = b"GET /\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200";
const PADDING: [u8; 14] = [0xee; 14];
const PSH_ACK: TcpFlags = TcpFlags::PSH.union(TcpFlags::ACK);
const MTU: u16 = 1400;

const fn rw(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Rewrite4 {
    Rewrite4 { src, dst, sport, dport }
}

/// A TCP/UDP packet, built with the wire views and checksums summed in full. Not with
/// `testkit::packet` on purpose: these carry IP options and UDP without a checksum, which the
/// builders do not model, and are the references the translations are compared against.
#[derive(Clone, Debug)]
struct Datagram {
    ends: Rewrite4,
    ttl: u8,
    ip_options: Vec<u8>,
    transport: Transport,
    payload: Vec<u8>,
}

#[derive(Clone, Debug)]
enum Transport {
    Tcp { flags: TcpFlags, seq: u32, ack: u32, options: Vec<u8> },
    Udp { checksum: bool },
}

impl Datagram {
    fn tcp(ends: Rewrite4, flags: TcpFlags, seq: u32, ack: u32, payload: &[u8]) -> Self {
        Datagram {
            ends,
            ttl: 64,
            ip_options: Vec::new(),
            transport: Transport::Tcp { flags, seq, ack, options: Vec::new() },
            payload: payload.to_vec(),
        }
    }

    fn udp(ends: Rewrite4, payload: &[u8]) -> Self {
        Datagram {
            ends,
            ttl: 64,
            ip_options: Vec::new(),
            transport: Transport::Udp { checksum: true },
            payload: payload.to_vec(),
        }
    }

    /// What a router hop with this translation makes of it, built from scratch.
    fn forwarded(&self, new: &Rewrite4) -> Self {
        Datagram { ends: *new, ttl: self.ttl - 1, ..self.clone() }
    }

    fn proto(&self) -> IpProtocol {
        match self.transport {
            Transport::Tcp { .. } => IpProtocol::TCP,
            Transport::Udp { .. } => IpProtocol::UDP,
        }
    }

    fn l4_header_len(&self) -> usize {
        match &self.transport {
            Transport::Tcp { options, .. } => TCP_HEADER_LEN + options.len(),
            Transport::Udp { .. } => UDP_HEADER_LEN,
        }
    }

    fn build(&self) -> Vec<u8> {
        let ip_header_len = IPV4_HEADER_LEN + self.ip_options.len();
        let total_len = ip_header_len + self.l4_header_len() + self.payload.len();
        let mut b = vec![0u8; total_len];
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(ip_header_len as u8);
        ip.set_total_len(total_len as u16);
        ip.set_ident(0x1234);
        ip.set_dont_frag(true);
        ip.set_ttl(self.ttl);
        ip.set_protocol(self.proto());
        ip.set_src_addr(self.ends.src);
        ip.set_dst_addr(self.ends.dst);
        ip.options_mut().copy_from_slice(&self.ip_options);
        ip.fill_checksum();
        let (src, dst) = (IpAddr::V4(self.ends.src), IpAddr::V4(self.ends.dst));
        let l4 = &mut b[ip_header_len..];
        match &self.transport {
            Transport::Tcp { flags, seq, ack, options } => {
                let mut tcp = TcpPacket::new_unchecked(l4);
                tcp.set_src_port(self.ends.sport);
                tcp.set_dst_port(self.ends.dport);
                tcp.set_seq_number(*seq);
                tcp.set_ack_number(*ack);
                tcp.set_header_len((TCP_HEADER_LEN + options.len()) as u8);
                tcp.set_flags(*flags);
                tcp.set_window(0xfaf0);
                tcp.options_mut().copy_from_slice(options);
                tcp.payload_mut().copy_from_slice(&self.payload);
                tcp.fill_checksum(src, dst);
            }
            Transport::Udp { checksum } => {
                let len = l4.len() as u16;
                let mut udp = UdpPacket::new_unchecked(l4);
                udp.set_src_port(self.ends.sport);
                udp.set_dst_port(self.ends.dport);
                udp.set_length(len);
                udp.payload_mut().copy_from_slice(&self.payload);
                if *checksum {
                    udp.fill_checksum(src, dst);
                }
            }
        }
        b
    }
}

/// An ICMP error quoting the first `quote_len` bytes of `quoted`.
#[derive(Clone, Debug)]
struct IcmpError {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    msg_type: Icmpv4Type,
    code: u8,
    mtu: u16,
    quoted: Datagram,
    quote_len: usize,
}

impl IcmpError {
    fn new(src: Ipv4Addr, dst: Ipv4Addr, msg_type: Icmpv4Type, code: u8, quoted: Datagram) -> Self {
        let quote_len = quoted.build().len();
        IcmpError { src, dst, ttl: 64, msg_type, code, mtu: 0, quoted, quote_len }
    }

    /// The translation rebuilt from scratch. The quoted datagram keeps its TTL: only the
    /// outer packet makes a hop here.
    fn forwarded(&self, src: Ipv4Addr, dst: Ipv4Addr, quoted: &Rewrite4) -> Self {
        IcmpError {
            src,
            dst,
            ttl: self.ttl - 1,
            quoted: Datagram { ends: *quoted, ..self.quoted.clone() },
            ..self.clone()
        }
    }

    fn build(&self) -> Vec<u8> {
        let quote = &self.quoted.build()[..self.quote_len];
        let total_len = IPV4_HEADER_LEN + ICMP_HEADER_LEN + quote.len();
        let mut b = vec![0u8; total_len];
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_version(4);
        ip.set_header_len(IPV4_HEADER_LEN as u8);
        ip.set_total_len(total_len as u16);
        ip.set_ident(0x4321);
        ip.set_ttl(self.ttl);
        ip.set_protocol(IpProtocol::ICMP);
        ip.set_src_addr(self.src);
        ip.set_dst_addr(self.dst);
        ip.fill_checksum();
        let mut icmp = Icmpv4Packet::new_unchecked(&mut b[IPV4_HEADER_LEN..]);
        icmp.set_msg_type(self.msg_type);
        icmp.set_code(self.code);
        icmp.set_next_hop_mtu(self.mtu);
        icmp.data_mut().copy_from_slice(quote);
        icmp.fill_checksum();
        b
    }
}

fn padded(packet: &[u8], padding: &[u8]) -> Vec<u8> {
    [packet, padding].concat()
}

/// Asserts each checksum field equals what summing the whole covered bytes gives, for a
/// TCP/UDP packet or an ICMP error about one. A quoted L4 checksum is checked only when the
/// whole quoted datagram is there.
fn assert_checksums_recomputed(packet: &[u8]) {
    let ip = Ipv4Packet::new_checked(packet).expect("valid IPv4 packet");
    let total_len = usize::from(ip.total_len());
    assert_ip_checksum_recomputed(&packet[..usize::from(ip.header_len())]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let inner = &packet[usize::from(ip.header_len())..total_len];
    if ip.protocol() == IpProtocol::ICMP {
        let mut copy = inner.to_vec();
        Icmpv4Packet::new_unchecked(&mut copy[..]).fill_checksum();
        assert_eq!(copy, inner, "ICMP checksum");
        let quote = &inner[ICMP_HEADER_LEN..];
        let quoted = Ipv4Packet::new_unchecked(quote);
        let quoted_header_len = usize::from(quoted.header_len());
        assert_ip_checksum_recomputed(&quote[..quoted_header_len]);
        if usize::from(quoted.total_len()) == quote.len() {
            let proto = quoted.protocol();
            assert_l4_checksum_recomputed(quoted.src_addr(), quoted.dst_addr(), proto, &quote[quoted_header_len..]);
        }
    } else {
        assert_l4_checksum_recomputed(src, dst, ip.protocol(), inner);
    }
}

fn assert_ip_checksum_recomputed(header: &[u8]) {
    let mut copy = header.to_vec();
    Ipv4Packet::new_unchecked(&mut copy[..]).fill_checksum();
    assert_eq!(copy, header, "IPv4 header checksum");
}

fn assert_l4_checksum_recomputed(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, l4: &[u8]) {
    let (src, dst) = (IpAddr::V4(src), IpAddr::V4(dst));
    let mut copy = l4.to_vec();
    if proto == IpProtocol::TCP {
        TcpPacket::new_unchecked(&mut copy[..]).fill_checksum(src, dst);
    } else if UdpPacket::new_unchecked(l4).checksum() != 0 {
        UdpPacket::new_unchecked(&mut copy[..]).fill_checksum(src, dst);
    }
    assert_eq!(copy, l4, "{proto:?} checksum");
}

/// Runs `rewrite_v4` on `before` (plus padding) and checks it against `expected` (literal,
/// derived independently), against the packet rebuilt from scratch, and by recomputing every
/// checksum.
fn check_rewrite(before: &Datagram, new: Rewrite4, padding: &[u8], expected: &[u8]) {
    let mut packet = padded(&before.build(), padding);
    rewrite_v4(&mut packet, &new).unwrap();
    assert_eq!(packet, expected, "independently derived bytes");
    assert_eq!(packet, padded(&before.forwarded(&new).build(), padding), "rebuilt from scratch");
    assert_checksums_recomputed(&packet);
}

fn check_icmp_rewrite(before: &IcmpError, outer: (Ipv4Addr, Ipv4Addr), quoted: Rewrite4, expected: &[u8]) {
    let mut packet = before.build();
    rewrite_icmp_error_v4(&mut packet, outer.0, outer.1, &quoted).unwrap();
    assert_eq!(packet, expected, "independently derived bytes");
    assert_eq!(packet, before.forwarded(outer.0, outer.1, &quoted).build(), "rebuilt from scratch");
    assert_checksums_recomputed(&packet);
}

fn client_request() -> Datagram {
    Datagram::tcp(rw(CLIENT, CPORT, VIP, VPORT), PSH_ACK, SEQ, ACK, REQUEST)
}

#[test]
fn nat_forward_tcp() {
    check_rewrite(&client_request(), rw(CLIENT, CPORT, BACKEND, BPORT), &[], &NAT_FORWARD_TCP);
}

#[test]
fn nat_reply_tcp() {
    let reply = Datagram::tcp(rw(BACKEND, BPORT, CLIENT, CPORT), PSH_ACK, ACK, SEQ, RESPONSE);
    check_rewrite(&reply, rw(VIP, VPORT, CLIENT, CPORT), &[], &REPLY_TCP_TO_CLIENT);
}

#[test]
fn fullnat_forward_tcp() {
    check_rewrite(&client_request(), rw(LADDR, LPORT, BACKEND, BPORT), &[], &FULLNAT_FORWARD_TCP);
}

#[test]
fn fullnat_reply_tcp() {
    let reply = Datagram::tcp(rw(BACKEND, BPORT, LADDR, LPORT), PSH_ACK, ACK, SEQ, RESPONSE);
    check_rewrite(&reply, rw(VIP, VPORT, CLIENT, CPORT), &[], &REPLY_TCP_TO_CLIENT);
}

#[test]
fn fullnat_forward_udp_leaves_padding() {
    let request = Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping");
    check_rewrite(&request, rw(LADDR, LPORT, BACKEND, BPORT), &PADDING, &FULLNAT_FORWARD_UDP_PADDED);
}

#[test]
fn fullnat_reply_udp() {
    let reply = Datagram::udp(rw(BACKEND, BPORT, LADDR, LPORT), b"pong");
    check_rewrite(&reply, rw(VIP, VPORT, CLIENT, CPORT), &[], &REPLY_UDP_TO_CLIENT);
}

#[test]
fn nat_reply_udp() {
    let reply = Datagram::udp(rw(BACKEND, BPORT, CLIENT, CPORT), b"pong");
    check_rewrite(&reply, rw(VIP, VPORT, CLIENT, CPORT), &[], &REPLY_UDP_TO_CLIENT);
}

/// SNAT: a backend opens a connection to the outside from behind the balancer's address.
const SNAT_BACKEND_PORT: u16 = 40000;
const SNAT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const SNAT_PORT: u16 = 2000;
/// The server the backend connects to.
const REMOTE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const REMOTE_PORT: u16 = 8080;

#[test]
fn snat_outbound_syn() {
    let syn = Datagram::tcp(rw(BACKEND, SNAT_BACKEND_PORT, REMOTE, REMOTE_PORT), TcpFlags::SYN, SEQ, 0, &[]);
    assert_eq!(syn.build(), SNAT_SYN_BEFORE);
    assert_checksums_recomputed(&SNAT_SYN_BEFORE);
    check_rewrite(&syn, rw(SNAT_ADDR, SNAT_PORT, REMOTE, REMOTE_PORT), &[], &SNAT_SYN_AFTER);
}

#[test]
fn snat_reply_back_to_the_backend() {
    let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
    let reply = Datagram::tcp(rw(REMOTE, REMOTE_PORT, SNAT_ADDR, SNAT_PORT), syn_ack, ACK, SEQ + 1, &[]);
    assert_eq!(reply.build(), SNAT_SYN_ACK_BEFORE);
    assert_checksums_recomputed(&SNAT_SYN_ACK_BEFORE);
    check_rewrite(&reply, rw(REMOTE, REMOTE_PORT, BACKEND, SNAT_BACKEND_PORT), &[], &SNAT_SYN_ACK_AFTER);
}

#[test]
fn udp_without_checksum_stays_without() {
    let request = Datagram {
        transport: Transport::Udp { checksum: false },
        ..Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping")
    };
    check_rewrite(&request, rw(CLIENT, CPORT, BACKEND, BPORT), &[], &NAT_FORWARD_UDP_NO_CHECKSUM);
    assert_eq!(UdpPacket::new_unchecked(&NAT_FORWARD_UDP_NO_CHECKSUM[20..]).checksum(), 0);
}

/// Picks the source port that makes the UDP checksum of `packet` compute to 0.
fn source_port_for_zero_checksum(d: &Datagram) -> u16 {
    let mut probe = Datagram { ends: Rewrite4 { sport: 0, ..d.ends }, ..d.clone() }.build();
    let ip = Ipv4Packet::new_unchecked(&probe[..]);
    let (src, dst) = (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr()));
    let mut udp = UdpPacket::new_unchecked(&mut probe[IPV4_HEADER_LEN..]);
    udp.set_checksum(0);
    let len = u32::from(udp.length());
    let partial = checksum::fold(checksum::pseudo_header(src, dst, 17, len) + checksum::sum(udp.as_bytes()));
    0xffff - partial
}

#[test]
fn udp_checksum_computing_to_zero_is_sent_as_ffff() {
    let request = Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping");
    let new = Rewrite4 { sport: 0, ..rw(LADDR, LPORT, BACKEND, BPORT) };
    let new = Rewrite4 { sport: source_port_for_zero_checksum(&request.forwarded(&new)), ..new };
    let mut packet = request.build();
    rewrite_v4(&mut packet, &new).unwrap();
    assert_eq!(UdpPacket::new_unchecked(&packet[IPV4_HEADER_LEN..]).checksum(), 0xffff);
    assert_eq!(packet, request.forwarded(&new).build());
    assert_checksums_recomputed(&packet);

    // And back: a sender's 0xffff (a computed 0) is patched like any other value.
    let reply = request.forwarded(&new);
    let back = rw(VIP, VPORT, CLIENT, CPORT);
    let mut packet = reply.build();
    rewrite_v4(&mut packet, &back).unwrap();
    assert_eq!(packet, reply.forwarded(&back).build());
    assert_checksums_recomputed(&packet);
}

#[test]
fn icmp_port_unreachable_from_backend_nat() {
    let quoted = Datagram::udp(rw(CLIENT, CPORT, BACKEND, BPORT), b"ping");
    let error = IcmpError::new(BACKEND, CLIENT, Icmpv4Type::DEST_UNREACHABLE, CODE_PORT_UNREACHABLE, quoted);
    check_icmp_rewrite(&error, (VIP, CLIENT), rw(CLIENT, CPORT, VIP, VPORT), &PORT_UNREACHABLE_TO_CLIENT);
}

#[test]
fn icmp_port_unreachable_from_backend_fullnat() {
    let quoted = Datagram::udp(rw(LADDR, LPORT, BACKEND, BPORT), b"ping");
    let error = IcmpError::new(BACKEND, LADDR, Icmpv4Type::DEST_UNREACHABLE, CODE_PORT_UNREACHABLE, quoted);
    check_icmp_rewrite(&error, (VIP, CLIENT), rw(CLIENT, CPORT, VIP, VPORT), &PORT_UNREACHABLE_TO_CLIENT);
}

fn frag_needed_about_reply(quote_len: Option<usize>) -> IcmpError {
    let quoted = Datagram::tcp(rw(VIP, VPORT, CLIENT, CPORT), PSH_ACK, ACK, SEQ, RESPONSE);
    let mut error = IcmpError::new(ROUTER, VIP, Icmpv4Type::DEST_UNREACHABLE, CODE_FRAG_NEEDED, quoted);
    error.mtu = MTU;
    if let Some(n) = quote_len {
        error.quote_len = n;
    }
    error
}

#[test]
fn icmp_frag_needed_from_client_side_nat() {
    let error = frag_needed_about_reply(None);
    check_icmp_rewrite(&error, (ROUTER, BACKEND), rw(BACKEND, BPORT, CLIENT, CPORT), &ICMP_FRAG_NEEDED_NAT);
    assert_eq!(Icmpv4Packet::new_unchecked(&ICMP_FRAG_NEEDED_NAT[20..]).next_hop_mtu(), MTU);
}

#[test]
fn icmp_frag_needed_from_client_side_fullnat_quoting_8_bytes() {
    // RFC 792's minimum quote: the TCP checksum is not in it, only the ports.
    let error = frag_needed_about_reply(Some(IPV4_HEADER_LEN + 8));
    check_icmp_rewrite(
        &error,
        (LADDR, BACKEND),
        rw(BACKEND, BPORT, LADDR, LPORT),
        &ICMP_FRAG_NEEDED_FULLNAT_SHORT_QUOTE,
    );
}

#[test]
fn icmp_quote_ending_inside_the_tcp_checksum() {
    // 17 bytes of TCP: the checksum's high byte is quoted, its low byte is not. Without the
    // low byte there is no patching the high one; it stays, and the ICMP checksum (which pads
    // the odd last byte with zero) must still come out right.
    let quote_len = IPV4_HEADER_LEN + 17;
    let error = frag_needed_about_reply(Some(quote_len));
    let mut packet = error.build();
    let checksum_high_at = ICMP_QUOTE_AT + IPV4_HEADER_LEN + 16;
    let old_high = packet[checksum_high_at];
    let new = rw(BACKEND, BPORT, CLIENT, CPORT);
    rewrite_icmp_error_v4(&mut packet, ROUTER, BACKEND, &new).unwrap();
    assert_eq!(packet.len(), checksum_high_at + 1);
    assert_eq!(packet[checksum_high_at], old_high);
    assert_eq!(
        icmp_error_quote_v4(&packet),
        Some(Tuple4 { src: BACKEND, dst: CLIENT, sport: BPORT, dport: CPORT, proto: IpProtocol::TCP })
    );
    let mut expected = error.forwarded(ROUTER, BACKEND, &new).build();
    expected[checksum_high_at] = old_high;
    let mut icmp = Icmpv4Packet::new_unchecked(&mut expected[IPV4_HEADER_LEN..]);
    icmp.fill_checksum();
    assert_eq!(packet, expected);
    assert_checksums_recomputed(&packet);
}

#[test]
fn icmp_error_quote_gives_quoted_tuple() {
    let error = frag_needed_about_reply(Some(IPV4_HEADER_LEN + 8)).build();
    let want = Tuple4 { src: VIP, dst: CLIENT, sport: VPORT, dport: CPORT, proto: IpProtocol::TCP };
    assert_eq!(icmp_error_quote_v4(&error), Some(want));
    let quoted = Datagram::udp(rw(LADDR, LPORT, BACKEND, BPORT), b"ping");
    for msg_type in
        [Icmpv4Type::DEST_UNREACHABLE, ICMP_SOURCE_QUENCH, Icmpv4Type::TIME_EXCEEDED, ICMP_PARAMETER_PROBLEM]
    {
        let error = IcmpError::new(BACKEND, LADDR, msg_type, 0, quoted.clone()).build();
        let want = Tuple4 { src: LADDR, dst: BACKEND, sport: LPORT, dport: BPORT, proto: IpProtocol::UDP };
        assert_eq!(icmp_error_quote_v4(&error), Some(want), "{msg_type:?}");
    }
}

#[test]
fn icmp_messages_that_are_not_errors_about_tcp_udp() {
    let quoted = Datagram::udp(rw(LADDR, LPORT, BACKEND, BPORT), b"ping");
    let new = rw(CLIENT, CPORT, VIP, VPORT);
    // An echo request whose data happens to look like a quote; a redirect (type 5) quotes a
    // datagram but is not translated.
    for msg_type in [Icmpv4Type::ECHO_REQUEST, Icmpv4Type::ECHO_REPLY, Icmpv4Type(5)] {
        let mut packet = IcmpError::new(BACKEND, LADDR, msg_type, 0, quoted.clone()).build();
        let before = packet.clone();
        assert_eq!(icmp_error_quote_v4(&packet), None);
        assert_eq!(rewrite_icmp_error_v4(&mut packet, VIP, CLIENT, &new), Err(XlateError::Unsupported));
        assert_eq!(packet, before);
    }
    // An error quoting an ICMP echo: no ports.
    let mut packet = IcmpError::new(BACKEND, LADDR, Icmpv4Type::DEST_UNREACHABLE, 1, quoted).build();
    packet[ICMP_QUOTE_AT + 9] = IpProtocol::ICMP.0;
    let before = packet.clone();
    assert_eq!(icmp_error_quote_v4(&packet), None);
    assert_eq!(rewrite_icmp_error_v4(&mut packet, VIP, CLIENT, &new), Err(XlateError::Unsupported));
    assert_eq!(packet, before);
    // Not ICMP at all.
    let mut packet = client_request().build();
    assert_eq!(icmp_error_quote_v4(&packet), None);
    assert_eq!(rewrite_icmp_error_v4(&mut packet, VIP, CLIENT, &new), Err(XlateError::Unsupported));
}

/// Offset of the quoted IPv4 header in an ICMP error without IP options.
const ICMP_QUOTE_AT: usize = IPV4_HEADER_LEN + ICMP_HEADER_LEN;

#[test]
fn tuple_of_tcp_and_udp() {
    let want = Tuple4 { src: CLIENT, dst: VIP, sport: CPORT, dport: VPORT, proto: IpProtocol::TCP };
    assert_eq!(tuple_v4(&client_request().build()), Ok(want));
    let udp = padded(&Datagram::udp(rw(BACKEND, BPORT, LADDR, LPORT), b"pong").build(), &PADDING);
    let want = Tuple4 { src: BACKEND, dst: LADDR, sport: BPORT, dport: LPORT, proto: IpProtocol::UDP };
    assert_eq!(tuple_v4(&udp), Ok(want));
    let echo = frag_needed_about_reply(None).build();
    assert_eq!(tuple_v4(&echo), Err(XlateError::Unsupported));
}

#[test]
fn ip_options_are_kept_and_skipped() {
    let mut request = client_request();
    request.ip_options = vec![0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]; // router alert, NOPs, EOL
    let new = rw(LADDR, LPORT, BACKEND, BPORT);
    let mut packet = request.build();
    assert_eq!(tuple_v4(&packet).unwrap().dport, VPORT);
    rewrite_v4(&mut packet, &new).unwrap();
    assert_eq!(packet, request.forwarded(&new).build());
    assert_checksums_recomputed(&packet);
}

#[test]
fn first_fragment_is_rewritten_for_the_whole_datagram() {
    // The L4 checksum covers the whole datagram; patching the first fragment's copy of it is
    // what makes the reassembled datagram check.
    let request = Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), &[0x5a; 64]);
    let new = rw(LADDR, LPORT, BACKEND, BPORT);
    let whole = request.forwarded(&new).build();
    let mut fragment = request.build()[..IPV4_HEADER_LEN + 24].to_vec();
    let mut ip = Ipv4Packet::new_unchecked(&mut fragment[..]);
    ip.set_total_len((IPV4_HEADER_LEN + 24) as u16);
    ip.set_more_frags(true);
    ip.fill_checksum();
    rewrite_v4(&mut fragment, &new).unwrap();
    assert_eq!(fragment[IPV4_HEADER_LEN..], whole[IPV4_HEADER_LEN..IPV4_HEADER_LEN + 24]);
    assert_ip_checksum_recomputed(&fragment[..IPV4_HEADER_LEN]);
}

/// Asserts every entry point refuses `packet` and leaves it as it was.
fn assert_refused(packet: &[u8], why: &str) {
    let new = rw(LADDR, LPORT, BACKEND, BPORT);
    let mut buf = packet.to_vec();
    assert!(rewrite_v4(&mut buf, &new).is_err(), "rewrite_v4: {why}");
    assert_eq!(buf, packet, "rewrite_v4 wrote: {why}");
    assert!(tuple_v4(&buf).is_err(), "tuple_v4: {why}");
    assert!(tcp_reset_v4(&mut buf).is_err(), "tcp_reset_v4: {why}");
    assert_eq!(buf, packet, "tcp_reset_v4 wrote: {why}");
    assert!(rewrite_icmp_error_v4(&mut buf, VIP, CLIENT, &new).is_err(), "rewrite_icmp_error_v4: {why}");
    assert_eq!(buf, packet, "rewrite_icmp_error_v4 wrote: {why}");
    assert_eq!(icmp_error_quote_v4(&buf), None, "icmp_error_quote_v4: {why}");
}

fn tcp_udp_and_icmp_samples() -> Vec<Vec<u8>> {
    let mut with_options = client_request();
    with_options.ip_options = vec![1, 1, 1, 0];
    if let Transport::Tcp { options, .. } = &mut with_options.transport {
        *options = vec![2, 4, 5, 0xb4];
    }
    vec![
        client_request().build(),
        with_options.build(),
        Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping").build(),
        IcmpError::new(BACKEND, CLIENT, Icmpv4Type::DEST_UNREACHABLE, CODE_PORT_UNREACHABLE, client_request()).build(),
        frag_needed_about_reply(Some(IPV4_HEADER_LEN + 8)).build(),
    ]
}

#[test]
fn truncated_buffers_are_refused() {
    for packet in tcp_udp_and_icmp_samples() {
        for n in 0..packet.len() {
            assert_refused(&packet[..n], &format!("buffer cut to {n} of {}", packet.len()));
        }
    }
}

#[test]
fn truncated_packets_are_refused() {
    // Consistent IPv4 headers (total length and checksum fixed up) whose TCP/UDP header, or
    // the quote's IPv4 header + 8 bytes, is cut short.
    for packet in tcp_udp_and_icmp_samples() {
        let ip_header_len = usize::from(Ipv4Packet::new_unchecked(&packet[..]).header_len());
        let needed = if Ipv4Packet::new_unchecked(&packet[..]).protocol() == IpProtocol::ICMP {
            let quote = &packet[ip_header_len + ICMP_HEADER_LEN..];
            ip_header_len + ICMP_HEADER_LEN + usize::from(Ipv4Packet::new_unchecked(quote).header_len()) + 8
        } else {
            let l4 = &packet[ip_header_len..];
            match tuple_v4(&packet).unwrap().proto {
                IpProtocol::TCP => ip_header_len + usize::from(TcpPacket::new_unchecked(l4).header_len()),
                _ => ip_header_len + UDP_HEADER_LEN,
            }
        };
        for n in ip_header_len..needed {
            let mut cut = packet[..n].to_vec();
            let mut ip = Ipv4Packet::new_unchecked(&mut cut[..]);
            ip.set_total_len(n as u16);
            ip.fill_checksum();
            assert_refused(&cut, &format!("total length {n}, {needed} needed"));
            // Also with the rest still in the buffer: total_len is what counts.
            let mut longer = packet.clone();
            longer[..n].copy_from_slice(&cut);
            assert_refused(&longer, &format!("total length {n} in a longer buffer"));
        }
    }
}

#[test]
fn bad_header_fields_are_refused() {
    for packet in tcp_udp_and_icmp_samples() {
        let with = |at: usize, value: u8| {
            let mut b = packet.clone();
            b[at] = value;
            b
        };
        for ihl in 0..5 {
            assert_refused(&with(0, 0x40 | ihl), &format!("IHL {ihl}"));
        }
        assert_refused(&with(0, 0x4f), "IHL past total length");
        assert_refused(&with(0, 0x65), "version 6");
        assert_refused(&with(3, 19), "total length below header");
        assert_refused(&with(2, 0x10), "total length past buffer");
    }
    let tcp = client_request().build();
    // The segment is 27 bytes: a 28-byte header does not fit.
    for offset in [0x00u8, 0x40, 0x70, 0xf0] {
        let mut b = tcp.clone();
        b[IPV4_HEADER_LEN + 12] = offset;
        assert_refused(&b, &format!("TCP data offset byte {offset:#x}"));
    }
    let udp = Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping").build();
    for len in [0u8, 7, 13] {
        let mut b = udp.clone();
        b[IPV4_HEADER_LEN + 5] = len;
        assert_refused(&b, &format!("UDP length {len}"));
    }
}

#[test]
fn bad_quotes_are_refused() {
    let error = IcmpError::new(BACKEND, CLIENT, Icmpv4Type::DEST_UNREACHABLE, 3, client_request()).build();
    let with = |at: usize, value: u8| {
        let mut b = error.clone();
        b[ICMP_QUOTE_AT + at] = value;
        b
    };
    for ihl in 0..5 {
        assert_refused(&with(0, 0x40 | ihl), &format!("quoted IHL {ihl}"));
    }
    assert_refused(&with(0, 0x65), "quoted version 6");
    // A quoted IHL of 15 puts the TCP ports past the quote (20 + 20 + 7 bytes).
    assert_refused(&with(0, 0x4f), "quoted IHL past the quote");
    assert_refused(&with(7, 0x08), "quoted non-first fragment");
}

#[test]
fn non_first_fragments_are_refused() {
    for packet in tcp_udp_and_icmp_samples() {
        let mut b = packet.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut b[..]);
        ip.set_frag_offset(1480);
        ip.fill_checksum();
        assert_refused(&b, "fragment offset 1480");
        let mut b = packet.clone();
        assert_eq!(rewrite_v4(&mut b[..], &rw(LADDR, LPORT, BACKEND, BPORT)).is_ok(), tuple_v4(&packet).is_ok());
    }
    let mut b = client_request().build();
    Ipv4Packet::new_unchecked(&mut b[..]).set_frag_offset(8);
    assert_eq!(tuple_v4(&b), Err(XlateError::Unsupported));
}

#[test]
fn expiring_ttl_is_refused() {
    let new = rw(LADDR, LPORT, BACKEND, BPORT);
    for ttl in [0u8, 1] {
        let mut request = client_request();
        request.ttl = ttl;
        let mut packet = request.build();
        assert_eq!(rewrite_v4(&mut packet, &new), Err(XlateError::TtlExpired));
        assert_eq!(packet, request.build());
        assert!(tuple_v4(&packet).is_ok(), "the tuple does not depend on the TTL");

        let mut error = frag_needed_about_reply(None);
        error.ttl = ttl;
        let mut packet = error.build();
        assert_eq!(rewrite_icmp_error_v4(&mut packet, ROUTER, BACKEND, &new), Err(XlateError::TtlExpired));
        assert_eq!(packet, error.build());
    }
    let mut request = client_request();
    request.ttl = 2;
    let mut packet = request.build();
    rewrite_v4(&mut packet, &new).unwrap();
    assert_eq!(Ipv4Packet::new_unchecked(&packet[..]).ttl(), 1);
}

#[test]
fn unsupported_protocols_are_refused() {
    let mut packet = client_request().build();
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_protocol(IpProtocol(132)); // SCTP
    ip.fill_checksum();
    let before = packet.clone();
    assert_eq!(tuple_v4(&packet), Err(XlateError::Unsupported));
    assert_eq!(rewrite_v4(&mut packet, &rw(LADDR, LPORT, BACKEND, BPORT)), Err(XlateError::Unsupported));
    assert_eq!(tcp_reset_v4(&mut packet), Err(XlateError::Unsupported));
    assert_eq!(packet, before);
}

#[test]
fn reset_to_a_syn() {
    let mut syn = Datagram::tcp(rw(CLIENT, CPORT, VIP, VPORT), TcpFlags::SYN, SEQ, 0, &[]);
    if let Transport::Tcp { options, .. } = &mut syn.transport {
        *options = vec![2, 4, 5, 0xb4]; // MSS 1460: dropped from the reset
    }
    let mut packet = padded(&syn.build(), &PADDING);
    assert_eq!(tcp_reset_v4(&mut packet), Ok(40));
    assert_eq!(packet[..40], RESET_TO_SYN);
    assert_eq!(packet[44..], PADDING, "bytes past the original packet untouched");
    assert_checksums_recomputed(&packet[..40]);
}

#[test]
fn reset_to_an_ack() {
    let mut packet = client_request().build();
    assert_eq!(tcp_reset_v4(&mut packet), Ok(40));
    assert_eq!(packet[..40], RESET_TO_ACK);
    assert_checksums_recomputed(&packet[..40]);
}

#[test]
fn reset_acknowledges_payload_syn_and_fin() {
    let cases = [
        (TcpFlags::SYN, 0, 1),
        (TcpFlags::FIN, 3, 4),
        (TcpFlags::SYN | TcpFlags::FIN, 3, 5),
        (TcpFlags::PSH, 7, 7),
        (TcpFlags::empty(), 0, 0),
    ];
    for (flags, payload_len, acked) in cases {
        let segment = Datagram::tcp(rw(CLIENT, CPORT, VIP, VPORT), flags, u32::MAX, 0, &REQUEST[..payload_len]);
        let mut packet = segment.build();
        tcp_reset_v4(&mut packet).unwrap();
        let reset = TcpPacket::new_unchecked(&packet[IPV4_HEADER_LEN..40]);
        assert_eq!(reset.flags(), TcpFlags::RST | TcpFlags::ACK, "{flags:?}");
        assert_eq!(reset.seq_number(), 0);
        assert_eq!(reset.ack_number(), u32::MAX.wrapping_add(acked), "{flags:?}: sequence space wraps");
    }
}

#[test]
fn reset_refuses_resets_fragments_and_udp() {
    for flags in [TcpFlags::RST, TcpFlags::RST | TcpFlags::ACK] {
        let mut packet = Datagram::tcp(rw(CLIENT, CPORT, VIP, VPORT), flags, SEQ, ACK, &[]).build();
        let before = packet.clone();
        assert_eq!(tcp_reset_v4(&mut packet), Err(XlateError::Unsupported));
        assert_eq!(packet, before);
    }
    let mut packet = client_request().build();
    let mut ip = Ipv4Packet::new_unchecked(&mut packet[..]);
    ip.set_more_frags(true);
    ip.fill_checksum();
    let before = packet.clone();
    assert_eq!(tcp_reset_v4(&mut packet), Err(XlateError::Unsupported));
    assert_eq!(packet, before);
    let mut packet = Datagram::udp(rw(CLIENT, CPORT, VIP, VPORT), b"ping").build();
    let before = packet.clone();
    assert_eq!(tcp_reset_v4(&mut packet), Err(XlateError::Unsupported));
    assert_eq!(packet, before);
}

#[test]
fn error_names() {
    assert_eq!(XlateError::Malformed.as_str(), "malformed");
    assert_eq!(XlateError::TtlExpired.as_str(), "ttl_expired");
    assert_eq!(XlateError::Unsupported.as_str(), "unsupported");
}

fn address() -> impl Strategy<Value = Ipv4Addr> {
    any::<u32>().prop_map(Ipv4Addr::from)
}

fn endpoints() -> impl Strategy<Value = Rewrite4> {
    (address(), address(), any::<u16>(), any::<u16>()).prop_map(|(src, dst, sport, dport)| Rewrite4 {
        src,
        dst,
        sport,
        dport,
    })
}

/// IP or TCP options: a whole number of 32-bit words.
fn options(max_words: usize) -> impl Strategy<Value = Vec<u8>> {
    (0..=max_words).prop_flat_map(|words| proptest::collection::vec(any::<u8>(), words * 4))
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        (any::<u8>(), any::<u32>(), any::<u32>(), options(10)).prop_map(|(flags, seq, ack, options)| Transport::Tcp {
            flags: TcpFlags::from_bits_retain(flags),
            seq,
            ack,
            options
        }),
        any::<bool>().prop_map(|checksum| Transport::Udp { checksum }),
    ]
}

fn datagram() -> impl Strategy<Value = Datagram> {
    (endpoints(), 2u8..=255, options(10), transport(), proptest::collection::vec(any::<u8>(), 0..64))
        .prop_map(|(ends, ttl, ip_options, transport, payload)| Datagram { ends, ttl, ip_options, transport, payload })
}

fn icmp_error_type() -> impl Strategy<Value = Icmpv4Type> {
    prop_oneof![
        Just(Icmpv4Type::DEST_UNREACHABLE),
        Just(ICMP_SOURCE_QUENCH),
        Just(Icmpv4Type::TIME_EXCEEDED),
        Just(ICMP_PARAMETER_PROBLEM),
    ]
}

fn icmp_error() -> impl Strategy<Value = IcmpError> {
    (
        address(),
        address(),
        2u8..=255,
        icmp_error_type(),
        any::<u8>(),
        any::<u16>(),
        datagram(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(src, dst, ttl, msg_type, code, mtu, quoted, cut)| {
            // Anything from the quoted IPv4 header + 8 bytes to the whole datagram.
            let min = IPV4_HEADER_LEN + quoted.ip_options.len() + 8;
            let mut quote_len = min + cut.index(quoted.build().len() - min + 1);
            // A quote ending inside the TCP checksum is its own test below: the half that is
            // there cannot be patched and stays as it was.
            if quoted.proto() == IpProtocol::TCP && quote_len == min - 8 + 17 {
                quote_len -= 1;
            }
            IcmpError { src, dst, ttl, msg_type, code, mtu, quoted, quote_len }
        })
}

proptest! {
    #[test]
    fn rewrite_matches_full_recomputation(
        before in datagram(),
        new in endpoints(),
        padding in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut packet = padded(&before.build(), &padding);
        rewrite_v4(&mut packet, &new).unwrap();
        prop_assert_eq!(&packet, &padded(&before.forwarded(&new).build(), &padding));
        assert_checksums_recomputed(&packet);
        let end = packet.len() - padding.len();
        prop_assert_eq!(&packet[end - before.payload.len()..end], &before.payload[..]);
        prop_assert_eq!(&packet[end..], &padding[..]);
        let tuple = tuple_v4(&packet).unwrap();
        prop_assert_eq!(
            (tuple.src, tuple.dst, tuple.sport, tuple.dport, tuple.proto),
            (new.src, new.dst, new.sport, new.dport, before.proto())
        );
    }

    #[test]
    fn icmp_rewrite_matches_full_recomputation(
        before in icmp_error(),
        outer in (address(), address()),
        quoted in endpoints(),
        padding in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let mut packet = padded(&before.build(), &padding);
        let old_quoted = before.quoted.ends;
        let want = Tuple4 {
            src: old_quoted.src, dst: old_quoted.dst, sport: old_quoted.sport, dport: old_quoted.dport,
            proto: before.quoted.proto(),
        };
        prop_assert_eq!(icmp_error_quote_v4(&packet), Some(want));
        rewrite_icmp_error_v4(&mut packet, outer.0, outer.1, &quoted).unwrap();
        prop_assert_eq!(&packet, &padded(&before.forwarded(outer.0, outer.1, &quoted).build(), &padding));
        assert_checksums_recomputed(&packet);
    }

    #[test]
    fn reset_answers_any_segment_but_a_reset(before in datagram(), padding in proptest::collection::vec(any::<u8>(), 0..20)) {
        let Transport::Tcp { flags, seq, ack, .. } = before.transport else { return Ok(()) };
        let mut packet = padded(&before.build(), &padding);
        let result = tcp_reset_v4(&mut packet);
        if flags.contains(TcpFlags::RST) {
            prop_assert_eq!(result, Err(XlateError::Unsupported));
            return Ok(());
        }
        prop_assert_eq!(result, Ok(RESET_LEN));
        assert_checksums_recomputed(&packet[..RESET_LEN]);
        prop_assert_eq!(&packet[packet.len() - padding.len()..], &padding[..]);
        let ip = Ipv4Packet::new_checked(&packet[..RESET_LEN]).unwrap();
        prop_assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (before.ends.dst, before.ends.src, RESET_TTL));
        let reset = TcpPacket::new_checked(ip.payload()).unwrap();
        prop_assert_eq!((reset.src_port(), reset.dst_port()), (before.ends.dport, before.ends.sport));
        prop_assert_eq!(reset.header_len() as usize, TCP_HEADER_LEN);
        let seg_len = before.payload.len() as u32
            + u32::from(flags.contains(TcpFlags::SYN))
            + u32::from(flags.contains(TcpFlags::FIN));
        let expected = if flags.contains(TcpFlags::ACK) {
            (ack, 0, TcpFlags::RST)
        } else {
            (0, seq.wrapping_add(seg_len), TcpFlags::RST | TcpFlags::ACK)
        };
        prop_assert_eq!((reset.seq_number(), reset.ack_number(), reset.flags()), expected);
    }

    /// Corrupted and cut packets: no panic, and a refusal leaves the buffer as it was.
    #[test]
    fn damaged_packets_never_panic(
        which in any::<prop::sample::Index>(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        new in endpoints(),
    ) {
        let samples = tcp_udp_and_icmp_samples();
        let mut packet = samples[which.index(samples.len())].clone();
        for (at, value) in damage {
            let at = at.index(packet.len());
            packet[at] = value;
        }
        packet.truncate(cut.index(packet.len() + 1));
        let before = packet.clone();
        let _ = tuple_v4(&packet);
        let _ = icmp_error_quote_v4(&packet);
        let mut buf = before.clone();
        if rewrite_v4(&mut buf, &new).is_err() {
            prop_assert_eq!(&buf, &before);
        }
        let mut buf = before.clone();
        if rewrite_icmp_error_v4(&mut buf, new.src, new.dst, &new).is_err() {
            prop_assert_eq!(&buf, &before);
        }
        let mut buf = before.clone();
        if tcp_reset_v4(&mut buf).is_err() {
            prop_assert_eq!(&buf, &before);
        }
    }
}

// The expected bytes below were derived independently of this crate: packed field by field
// and checksummed from scratch (RFC 1071) by a separate Python script, not by the wire views.
// Independent on purpose: not built with `testkit::packet` either.
const NAT_FORWARD_TCP: [u8; 47] = [
    0x45, 0x00, 0x00, 0x2f, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0x3d, 0x54, 0xc0, 0x00, 0x02, 0x02, 0xc6, 0x33, 0x64,
    0x0b, 0x9c, 0x40, 0x1f, 0x90, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x50, 0x18, 0xfa, 0xf0, 0x1e, 0x32,
    0x00, 0x00, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x0d, 0x0a,
];
const REPLY_TCP_TO_CLIENT: [u8; 52] = [
    0x45, 0x00, 0x00, 0x34, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0xa5, 0x29, 0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02,
    0x02, 0x00, 0x50, 0x9c, 0x40, 0x0a, 0x0b, 0x0c, 0x0d, 0x01, 0x02, 0x03, 0x04, 0x50, 0x18, 0xfa, 0xf0, 0x2f, 0x51,
    0x00, 0x00, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31, 0x20, 0x32, 0x30, 0x30,
];
const FULLNAT_FORWARD_TCP: [u8; 47] = [
    0x45, 0x00, 0x00, 0x2f, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x06, 0xd5, 0x21, 0xc6, 0x33, 0x64, 0x01, 0xc6, 0x33, 0x64,
    0x0b, 0x04, 0x01, 0x1f, 0x90, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x50, 0x18, 0xfa, 0xf0, 0x4e, 0x3f,
    0x00, 0x00, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x0d, 0x0a,
];
const FULLNAT_FORWARD_UDP_PADDED: [u8; 46] = [
    0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0xd5, 0x25, 0xc6, 0x33, 0x64, 0x01, 0xc6, 0x33, 0x64,
    0x0b, 0x04, 0x01, 0x1f, 0x90, 0x00, 0x0c, 0xa9, 0x00, 0x70, 0x69, 0x6e, 0x67, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
    0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee,
];
const REPLY_UDP_TO_CLIENT: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0xa5, 0x32, 0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02,
    0x02, 0x00, 0x50, 0x9c, 0x40, 0x00, 0x0c, 0x00, 0x08, 0x70, 0x6f, 0x6e, 0x67,
];
const NAT_FORWARD_UDP_NO_CHECKSUM: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x3f, 0x11, 0x3d, 0x58, 0xc0, 0x00, 0x02, 0x02, 0xc6, 0x33, 0x64,
    0x0b, 0x9c, 0x40, 0x1f, 0x90, 0x00, 0x0c, 0x00, 0x00, 0x70, 0x69, 0x6e, 0x67,
];
const PORT_UNREACHABLE_TO_CLIENT: [u8; 60] = [
    0x45, 0x00, 0x00, 0x3c, 0x43, 0x21, 0x00, 0x00, 0x3f, 0x01, 0xb4, 0x39, 0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02,
    0x02, 0x03, 0x03, 0x81, 0x81, 0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11,
    0xa4, 0x32, 0xc0, 0x00, 0x02, 0x02, 0xc0, 0x00, 0x02, 0x64, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x0c, 0x00, 0x0e, 0x70,
    0x69, 0x6e, 0x67,
];
const ICMP_FRAG_NEEDED_NAT: [u8; 80] = [
    0x45, 0x00, 0x00, 0x50, 0x43, 0x21, 0x00, 0x00, 0x3f, 0x01, 0xd2, 0x4b, 0xcb, 0x00, 0x71, 0x01, 0xc6, 0x33, 0x64,
    0x0b, 0x03, 0x04, 0xe3, 0xeb, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x00, 0x34, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06,
    0x3c, 0x4f, 0xc6, 0x33, 0x64, 0x0b, 0xc0, 0x00, 0x02, 0x02, 0x1f, 0x90, 0x9c, 0x40, 0x0a, 0x0b, 0x0c, 0x0d, 0x01,
    0x02, 0x03, 0x04, 0x50, 0x18, 0xfa, 0xf0, 0xa8, 0x36, 0x00, 0x00, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x31,
    0x20, 0x32, 0x30, 0x30,
];
const ICMP_FRAG_NEEDED_FULLNAT_SHORT_QUOTE: [u8; 56] = [
    0x45, 0x00, 0x00, 0x38, 0x43, 0x21, 0x00, 0x00, 0x3f, 0x01, 0xe4, 0x30, 0xc6, 0x33, 0x64, 0x01, 0xc6, 0x33, 0x64,
    0x0b, 0x03, 0x04, 0xbd, 0xda, 0x00, 0x00, 0x05, 0x78, 0x45, 0x00, 0x00, 0x34, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06,
    0xd4, 0x1c, 0xc6, 0x33, 0x64, 0x0b, 0xc6, 0x33, 0x64, 0x01, 0x1f, 0x90, 0x04, 0x01, 0x0a, 0x0b, 0x0c, 0x0d,
];
const RESET_TO_SYN: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xb6, 0x69, 0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02,
    0x02, 0x00, 0x50, 0x9c, 0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x05, 0x50, 0x14, 0x00, 0x00, 0x8a, 0xd2,
    0x00, 0x00,
];
const RESET_TO_ACK: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xb6, 0x69, 0xc0, 0x00, 0x02, 0x64, 0xc0, 0x00, 0x02,
    0x02, 0x00, 0x50, 0x9c, 0x40, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00, 0x50, 0x04, 0x00, 0x00, 0x78, 0xd1,
    0x00, 0x00,
];
const SNAT_SYN_BEFORE: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, // version 4, IHL 5; TOS 0; total length 40
    0x12, 0x34, 0x40, 0x00, // identification; DF
    0x40, 0x06, 0x3c, 0x5b, // TTL 64; TCP; header checksum
    0xc6, 0x33, 0x64, 0x0b, // source 198.51.100.11 (the backend)
    0xc0, 0x00, 0x02, 0x02, // destination 192.0.2.2 (the remote server)
    0x9c, 0x40, 0x1f, 0x90, // source port 40000; destination port 8080
    0x01, 0x02, 0x03, 0x04, // sequence number
    0x00, 0x00, 0x00, 0x00, // acknowledgment number
    0x50, 0x02, 0xfa, 0xf0, // data offset 5; SYN; window
    0x08, 0xda, 0x00, 0x00, // TCP checksum; urgent pointer
];
const SNAT_SYN_AFTER: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, //
    0x12, 0x34, 0x40, 0x00, //
    0x3f, 0x06, 0xa5, 0x67, // TTL 63; TCP; header checksum patched
    0xc0, 0x00, 0x02, 0x32, // source 192.0.2.50 (the SNAT address)
    0xc0, 0x00, 0x02, 0x02, // destination unchanged
    0x07, 0xd0, 0x1f, 0x90, // source port 2000 (the SNAT port); destination port unchanged
    0x01, 0x02, 0x03, 0x04, //
    0x00, 0x00, 0x00, 0x00, //
    0x50, 0x02, 0xfa, 0xf0, //
    0x05, 0x57, 0x00, 0x00, // TCP checksum patched
];
const SNAT_SYN_ACK_BEFORE: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, // version 4, IHL 5; TOS 0; total length 40
    0x12, 0x34, 0x40, 0x00, // identification; DF
    0x40, 0x06, 0xa4, 0x67, // TTL 64; TCP; header checksum
    0xc0, 0x00, 0x02, 0x02, // source 192.0.2.2 (the remote server)
    0xc0, 0x00, 0x02, 0x32, // destination 192.0.2.50 (the SNAT address)
    0x1f, 0x90, 0x07, 0xd0, // source port 8080; destination port 2000
    0x0a, 0x0b, 0x0c, 0x0d, // sequence number
    0x01, 0x02, 0x03, 0x05, // acknowledgment number: the SYN's + 1
    0x50, 0x12, 0xfa, 0xf0, // data offset 5; SYN|ACK; window
    0xef, 0x2d, 0x00, 0x00, // TCP checksum; urgent pointer
];
const SNAT_SYN_ACK_AFTER: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, //
    0x12, 0x34, 0x40, 0x00, //
    0x3f, 0x06, 0x3d, 0x5b, // TTL 63; TCP; header checksum patched
    0xc0, 0x00, 0x02, 0x02, // source unchanged
    0xc6, 0x33, 0x64, 0x0b, // destination 198.51.100.11 (the backend)
    0x1f, 0x90, 0x9c, 0x40, // source port unchanged; destination port 40000 (the backend's)
    0x0a, 0x0b, 0x0c, 0x0d, //
    0x01, 0x02, 0x03, 0x05, //
    0x50, 0x12, 0xfa, 0xf0, //
    0xf2, 0xb0, 0x00, 0x00, // TCP checksum patched
];
