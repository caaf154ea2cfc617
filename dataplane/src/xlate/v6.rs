//! NAT and FullNAT rewrites of IPv6 TCP/UDP packets, of the ICMPv6 errors that quote them,
//! and the packet-too-big error ferrovs sends itself. Every function takes a packet starting
//! at its IPv6 header; bytes past the payload length are neither read nor written, and on
//! `Err` the buffer is unchanged. Only packets whose next header is TCP or UDP directly are
//! translated (no extension headers): what else arrives is `Unsupported`.
//!
//! IPv6 has no header checksum; the TCP/UDP checksum covers the addresses through the
//! pseudo-header and is patched (RFC 1624) like IPv4's. A UDP checksum of 0 is invalid in IPv6
//! (RFC 8200 8.1) and is left as it is, for the receiver to drop.

use std::net::Ipv6Addr;

use super::XlateError;
use crate::conn::ConnKey6;
use crate::wire::checksum::{apply_change, change, fold, pseudo_header_v6, sum};
use crate::wire::{Icmpv6Type, IpProtocol, TcpFlags};

/// The IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;
const TCP_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
const ICMPV6_HEADER_LEN: usize = 8;
/// The minimum IPv6 MTU: an ICMPv6 error is at most this long (RFC 4443 2.4 (c)).
pub const IPV6_MIN_MTU: usize = 1280;

/// New addresses and ports for an IPv6 TCP/UDP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub sport: u16,
    pub dport: u16,
}

/// A TCP/UDP packet [`parse_v6`] accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed6 {
    pub tuple: ConnKey6,
    /// Empty for UDP.
    pub tcp_flags: TcpFlags,
    /// The packet's end: 40 + payload length.
    pub end: usize,
}

#[inline]
fn addr(b: &[u8]) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[..16]);
    Ipv6Addr::from(o)
}

/// The tuple, TCP flags and length of an IPv6 TCP/UDP packet. `Unsupported` for another next
/// header (extension headers included); `Malformed` when the header, the payload length or
/// the TCP/UDP header does not fit.
pub fn parse_v6(packet: &[u8]) -> Result<Parsed6, XlateError> {
    let Some(h) = packet.first_chunk::<IPV6_HEADER_LEN>() else { return Err(XlateError::Malformed) };
    if h[0] >> 4 != 6 {
        return Err(XlateError::Malformed);
    }
    let end = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if end > packet.len() {
        return Err(XlateError::Malformed);
    }
    let proto = IpProtocol(h[6]);
    let l4 = &packet[IPV6_HEADER_LEN..end];
    let tcp_flags = if proto == IpProtocol::TCP {
        let Some(t) = l4.first_chunk::<TCP_HEADER_LEN>() else { return Err(XlateError::Malformed) };
        let data_offset = usize::from(t[12] >> 4) * 4;
        if data_offset < TCP_HEADER_LEN || data_offset > l4.len() {
            return Err(XlateError::Malformed);
        }
        TcpFlags::from_bits_retain(t[13])
    } else if proto == IpProtocol::UDP {
        let Some(u) = l4.first_chunk::<UDP_HEADER_LEN>() else { return Err(XlateError::Malformed) };
        let udp_len = usize::from(u16::from_be_bytes([u[4], u[5]]));
        if udp_len < UDP_HEADER_LEN || udp_len > l4.len() {
            return Err(XlateError::Malformed);
        }
        TcpFlags::empty()
    } else {
        return Err(XlateError::Unsupported);
    };
    let tuple = ConnKey6 {
        src: addr(&h[8..24]),
        dst: addr(&h[24..40]),
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        proto,
    };
    Ok(Parsed6 { tuple, tcp_flags, end })
}

/// Where the TCP/UDP checksum is in the transport header.
#[inline]
fn l4_checksum_at(proto: IpProtocol) -> usize {
    if proto == IpProtocol::TCP {
        16
    } else {
        6
    }
}

/// Writes new addresses and ports into an IPv6 header and the TCP/UDP header after it,
/// patching the transport checksum when `l4` holds it.
fn set_addrs_ports(ip: &mut [u8], l4: &mut [u8], proto: IpProtocol, new: &Rewrite6) {
    let mut old = [0u8; 32];
    old.copy_from_slice(&ip[8..40]);
    ip[8..24].copy_from_slice(&new.src.octets());
    ip[24..40].copy_from_slice(&new.dst.octets());
    patch_transport(l4, proto, &old, &ip[8..40], new.sport, new.dport);
}

/// Patches the ports (to `sport`, `dport`) and the addresses' change in the pseudo-header
/// (`old` to `new`, of equal length; NAT64 pads its IPv4 pair with zeros, which add nothing to
/// the sum) into the transport header `l4`, when it holds its checksum. A UDP checksum of 0
/// stays 0 here; callers decide what it means in the other version.
#[inline]
pub(super) fn patch_transport(l4: &mut [u8], proto: IpProtocol, old: &[u8], new: &[u8], sport: u16, dport: u16) {
    let old_ports = [l4[0], l4[1], l4[2], l4[3]];
    let new_ports = (u32::from(sport) << 16 | u32::from(dport)).to_be_bytes();
    l4[0..4].copy_from_slice(&new_ports);
    let at = l4_checksum_at(proto);
    if l4.len() < at + 2 {
        return;
    }
    let csum = u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == IpProtocol::UDP && csum == 0 {
        return;
    }
    // The addresses' and the ports' changes, folded once.
    let mut c = apply_change(csum, change(old, new) + change(&old_ports, &new_ports));
    if proto == IpProtocol::UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Rewrites a packet `parse_v6` accepted as `parsed` (unchanged since): addresses, ports,
/// the transport checksum, and the hop limit decremented (`TtlExpired` when 0 or 1).
pub fn rewrite_parsed_v6(packet: &mut [u8], parsed: &Parsed6, new: &Rewrite6) -> Result<(), XlateError> {
    if packet[7] <= 1 {
        return Err(XlateError::TtlExpired);
    }
    packet[7] -= 1;
    let (ip, l4) = packet[..parsed.end].split_at_mut(IPV6_HEADER_LEN);
    set_addrs_ports(ip, l4, parsed.tuple.proto, new);
    Ok(())
}

/// For an ICMPv6 error (destination unreachable, packet too big, time exceeded, parameter
/// problem) quoting an IPv6 TCP/UDP packet with at least its ports: the quoted tuple.
pub fn icmp6_error_quote(packet: &[u8]) -> Option<ConnKey6> {
    let (proto, quote_at, _) = icmp6_error_layout(packet)?;
    let q = &packet[quote_at..];
    let l4 = &q[IPV6_HEADER_LEN..];
    Some(ConnKey6 {
        src: addr(&q[8..24]),
        dst: addr(&q[24..40]),
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        proto,
    })
}

/// (quoted protocol, where the quote starts, the packet's end) of an ICMPv6 error about TCP/UDP.
fn icmp6_error_layout(packet: &[u8]) -> Option<(IpProtocol, usize, usize)> {
    let h = packet.first_chunk::<IPV6_HEADER_LEN>()?;
    let end = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if h[0] >> 4 != 6 || IpProtocol(h[6]) != IpProtocol::ICMPV6 || end > packet.len() {
        return None;
    }
    let icmp = &packet[IPV6_HEADER_LEN..end];
    // Types 1..=4 are the errors that quote the offending packet (RFC 4443).
    if icmp.len() < ICMPV6_HEADER_LEN || !(1..=4).contains(&icmp[0]) {
        return None;
    }
    let quote_at = IPV6_HEADER_LEN + ICMPV6_HEADER_LEN;
    let q = &packet[quote_at..end];
    if q.len() < IPV6_HEADER_LEN + 8 || q[0] >> 4 != 6 {
        return None;
    }
    let proto = IpProtocol(q[6]);
    (proto == IpProtocol::TCP || proto == IpProtocol::UDP).then_some((proto, quote_at, end))
}

/// Translates an ICMPv6 error in place: outer addresses become `outer_src`/`outer_dst` (hop
/// limit decremented), the quoted packet's addresses and ports `quoted`'s (its checksum
/// patched when quoted), and the ICMPv6 checksum is verified and then computed anew (an error
/// is short and rare; a wrong one on arrival is `Malformed` and changes nothing).
pub fn rewrite_icmp6_error(
    packet: &mut [u8],
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    quoted: &Rewrite6,
) -> Result<(), XlateError> {
    let (proto, quote_at, end) = icmp6_error_layout(packet).ok_or(XlateError::Unsupported)?;
    let (src, dst) = (addr(&packet[8..24]), addr(&packet[24..40]));
    let icmp_len = (end - IPV6_HEADER_LEN) as u32;
    let s = sum(&packet[IPV6_HEADER_LEN..end]) + pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, icmp_len);
    if fold(s) != 0xffff {
        return Err(XlateError::Malformed);
    }
    if packet[7] <= 1 {
        return Err(XlateError::TtlExpired);
    }
    packet[7] -= 1;
    packet[8..24].copy_from_slice(&outer_src.octets());
    packet[24..40].copy_from_slice(&outer_dst.octets());
    let (qip, ql4) = packet[quote_at..end].split_at_mut(IPV6_HEADER_LEN);
    set_addrs_ports(qip, ql4, proto, quoted);
    fill_icmp6_checksum(&mut packet[..end], outer_src, outer_dst);
    Ok(())
}

fn fill_icmp6_checksum(packet: &mut [u8], src: Ipv6Addr, dst: Ipv6Addr) {
    let icmp = &mut packet[IPV6_HEADER_LEN..];
    icmp[2..4].fill(0);
    let s = sum(icmp) + pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, icmp.len() as u32);
    let c = !fold(s);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
}

/// Turns the IPv6 packet at the start of `buf` (its first `packet_len` bytes) into an ICMPv6
/// packet too big from `from` to its sender, quoting as much of it as fits in 1280 bytes, with
/// `mtu`. `buf` must have room for the error (`packet_len + 48`, at most 1280). Returns the
/// error's length. Refused (`Unsupported`) for a packet that is itself an ICMPv6 error or
/// whose sender is unspecified or multicast (RFC 4443 2.4 (e)).
pub fn icmp6_packet_too_big(buf: &mut [u8], packet_len: usize, from: Ipv6Addr, mtu: u32) -> Result<usize, XlateError> {
    if packet_len < IPV6_HEADER_LEN || packet_len > buf.len() || buf[0] >> 4 != 6 {
        return Err(XlateError::Malformed);
    }
    let sender = addr(&buf[8..24]);
    let is_error = IpProtocol(buf[6]) == IpProtocol::ICMPV6
        && buf.get(IPV6_HEADER_LEN).is_some_and(|&t| t < Icmpv6Type::ECHO_REQUEST.0);
    if is_error || sender.is_unspecified() || sender.is_multicast() {
        return Err(XlateError::Unsupported);
    }
    let head = IPV6_HEADER_LEN + ICMPV6_HEADER_LEN;
    let len = (packet_len + head).min(IPV6_MIN_MTU);
    if buf.len() < len {
        return Err(XlateError::Malformed);
    }
    let quoted = len - head;
    buf.copy_within(0..quoted, head);
    buf[..head].fill(0);
    buf[0] = 0x60;
    buf[4..6].copy_from_slice(&((len - IPV6_HEADER_LEN) as u16).to_be_bytes());
    buf[6] = IpProtocol::ICMPV6.0;
    buf[7] = 64;
    buf[8..24].copy_from_slice(&from.octets());
    buf[24..40].copy_from_slice(&sender.octets());
    buf[IPV6_HEADER_LEN] = Icmpv6Type::PACKET_TOO_BIG.0;
    buf[IPV6_HEADER_LEN + 4..IPV6_HEADER_LEN + 8].copy_from_slice(&mtu.to_be_bytes());
    fill_icmp6_checksum(&mut buf[..len], from, sender);
    Ok(len)
}

/// Turns a received IPv6 TCP segment (`parse_v6` accepted it as `parsed`) into the reset
/// answering it, in place, as `tcp_reset_v4` does for IPv4: addresses and ports swapped, to a
/// segment with ACK a RST with seq = its ack, otherwise RST|ACK acknowledging it. Returns the
/// reset's length (60). Never answers a reset (`Unsupported`).
pub fn tcp_reset_v6(packet: &mut [u8], parsed: &Parsed6) -> Result<usize, XlateError> {
    let t = parsed.tuple;
    if t.proto != IpProtocol::TCP || parsed.tcp_flags.contains(TcpFlags::RST) {
        return Err(XlateError::Unsupported);
    }
    let l4 = &packet[IPV6_HEADER_LEN..parsed.end];
    let data_offset = usize::from(l4[12] >> 4) * 4;
    let seq = u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]);
    let ack = u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]);
    let flags = parsed.tcp_flags;
    let (seq, ack, reset_flags) = if flags.contains(TcpFlags::ACK) {
        (ack, 0, TcpFlags::RST)
    } else {
        let mut seg_len = (l4.len() - data_offset) as u32;
        seg_len += u32::from(flags.contains(TcpFlags::SYN)) + u32::from(flags.contains(TcpFlags::FIN));
        (0, seq.wrapping_add(seg_len), TcpFlags::RST | TcpFlags::ACK)
    };
    let len = IPV6_HEADER_LEN + TCP_HEADER_LEN;
    packet[..IPV6_HEADER_LEN].fill(0);
    packet[0] = 0x60;
    packet[4..6].copy_from_slice(&(TCP_HEADER_LEN as u16).to_be_bytes());
    packet[6] = IpProtocol::TCP.0;
    packet[7] = 64;
    packet[8..24].copy_from_slice(&t.dst.octets());
    packet[24..40].copy_from_slice(&t.src.octets());
    let tcp = &mut packet[IPV6_HEADER_LEN..len];
    tcp.fill(0);
    tcp[0..2].copy_from_slice(&t.dport.to_be_bytes());
    tcp[2..4].copy_from_slice(&t.sport.to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = reset_flags.bits();
    let s = sum(tcp) + pseudo_header_v6(t.dst, t.src, IpProtocol::TCP.0, TCP_HEADER_LEN as u32);
    tcp[16..18].copy_from_slice(&(!fold(s)).to_be_bytes());
    Ok(len)
}

/// Bytes IPv6-in-IPv6 puts in front of the inner packet: one IPv6 header.
pub const IP6IP6_OVERHEAD: usize = IPV6_HEADER_LEN;
/// Bytes GUE over IPv6 puts in front of the inner packet: an IPv6 and a UDP header.
pub const GUE6_OVERHEAD: usize = IPV6_HEADER_LEN + UDP_HEADER_LEN;

/// Encapsulates, in place, the inner IPv6 packet that follows `encap`'s overhead (40 bytes for
/// IPv6-in-IPv6, RFC 2473; 48 for GUE variant 1 over UDP) in `buf`: writes the outer IPv6
/// header from `src` to `dst` (traffic class and flow label copied from the inner one, hop
/// limit 64, next header 41 or UDP) and, for GUE, the UDP header from `gue_source_port` to
/// the GUE port with its checksum summed over the whole datagram (a zero UDP checksum is not
/// allowed over IPv6 in general, RFC 8200 8.1). Returns the outer packet's length.
/// `Malformed` for a bad or truncated inner header; `Unsupported` past 65535 bytes.
pub fn encap_v6(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    encap: crate::service::Encap,
    gue_source_port: u16,
) -> Result<usize, XlateError> {
    let overhead = match encap {
        crate::service::Encap::Ipip => IP6IP6_OVERHEAD,
        crate::service::Encap::Gue { .. } => GUE6_OVERHEAD,
    };
    let inner = buf.get(overhead..).ok_or(XlateError::Malformed)?;
    let Some(h) = inner.first_chunk::<IPV6_HEADER_LEN>() else { return Err(XlateError::Malformed) };
    if h[0] >> 4 != 6 {
        return Err(XlateError::Malformed);
    }
    let inner_len = IPV6_HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
    if inner_len > inner.len() {
        return Err(XlateError::Malformed);
    }
    let payload_len = overhead - IPV6_HEADER_LEN + inner_len;
    if payload_len > usize::from(u16::MAX) {
        return Err(XlateError::Unsupported);
    }
    let version_class_flow = [h[0], h[1], h[2], h[3]];
    let outer = &mut buf[..IPV6_HEADER_LEN];
    outer[..4].copy_from_slice(&version_class_flow);
    outer[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    outer[6] = match encap {
        crate::service::Encap::Ipip => IpProtocol::IPV6_IN_IP.0,
        crate::service::Encap::Gue { .. } => IpProtocol::UDP.0,
    };
    outer[7] = 64;
    outer[8..24].copy_from_slice(&src.octets());
    outer[24..40].copy_from_slice(&dst.octets());
    if let crate::service::Encap::Gue { port } = encap {
        let udp = &mut buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len];
        udp[0..2].copy_from_slice(&gue_source_port.to_be_bytes());
        udp[2..4].copy_from_slice(&port.to_be_bytes());
        udp[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
        udp[6..8].fill(0);
        let s = sum(udp) + pseudo_header_v6(src, dst, IpProtocol::UDP.0, payload_len as u32);
        let c = match !fold(s) {
            0 => 0xffff,
            c => c,
        };
        udp[6..8].copy_from_slice(&c.to_be_bytes());
    }
    Ok(IPV6_HEADER_LEN + payload_len)
}

/// The outer UDP source port of a GUE-over-IPv6 flow: a hash of the inner 5-tuple onto
/// 49152..=65535, as `gue_source_port` for IPv4 (no seed: every balancer picks the same).
pub fn gue_source_port_v6(t: &ConnKey6) -> u16 {
    let (s, d) = (u128::from(t.src), u128::from(t.dst));
    let mut h = (s as u64) ^ ((s >> 64) as u64).rotate_left(21) ^ (d as u64).rotate_left(42) ^ ((d >> 64) as u64);
    h ^= u64::from(t.sport) << 24 | u64::from(t.dport) << 8 | u64::from(t.proto.0);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    0xc000 | (h >> 50) as u16
}

/// The TCP/UDP checksum of an IPv6 packet computed from scratch is valid (for tests).
pub fn l4_checksum_ok_v6(packet: &[u8]) -> bool {
    let Ok(p) = parse_v6(packet) else { return false };
    let l4 = &packet[IPV6_HEADER_LEN..p.end];
    let s = sum(l4) + pseudo_header_v6(p.tuple.src, p.tuple.dst, p.tuple.proto.0, l4.len() as u32);
    fold(s) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// An IPv6 TCP SYN (or UDP datagram) with a valid checksum and `payload` bytes of data.
    fn packet(proto: IpProtocol, payload: usize) -> Vec<u8> {
        let l4_len = if proto == IpProtocol::TCP { 20 } else { 8 } + payload;
        let mut p = vec![0u8; 40 + l4_len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        p[6] = proto.0;
        p[7] = 64;
        p[8..24].copy_from_slice(&a("2001:db8:1::2").octets());
        p[24..40].copy_from_slice(&a("2001:db8:1::100").octets());
        p[40..42].copy_from_slice(&40000u16.to_be_bytes());
        p[42..44].copy_from_slice(&80u16.to_be_bytes());
        if proto == IpProtocol::TCP {
            p[52] = 5 << 4;
            p[53] = TcpFlags::SYN.bits();
        } else {
            p[44..46].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        for (i, b) in p[40 + l4_len - payload..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let at = 40 + l4_checksum_at(proto);
        let s = sum(&p[40..]) + pseudo_header_v6(a("2001:db8:1::2"), a("2001:db8:1::100"), proto.0, l4_len as u32);
        p[at..at + 2].copy_from_slice(&(!fold(s)).to_be_bytes());
        p
    }

    #[test]
    fn parse_and_rewrite_keep_checksums_valid() {
        for proto in [IpProtocol::TCP, IpProtocol::UDP] {
            let mut p = packet(proto, 33);
            assert!(l4_checksum_ok_v6(&p));
            let parsed = parse_v6(&p).unwrap();
            assert_eq!(parsed.tuple.sport, 40000);
            assert_eq!(parsed.tuple.dst, a("2001:db8:1::100"));
            let new = Rewrite6 { src: a("2001:db8:2::200"), dst: a("2001:db8:2::11"), sport: 1025, dport: 8080 };
            rewrite_parsed_v6(&mut p, &parsed, &new).unwrap();
            assert!(l4_checksum_ok_v6(&p), "{proto:?}");
            let t = parse_v6(&p).unwrap().tuple;
            assert_eq!((t.src, t.dst, t.sport, t.dport), (new.src, new.dst, 1025, 8080));
            assert_eq!(p[7], 63);
        }
    }

    #[test]
    fn encapsulates_in_ipv6_and_gue() {
        let inner = packet(IpProtocol::TCP, 100);
        let (src, dst) = (a("2001:db8:2::1"), a("2001:db8:2::11"));
        for (encap, overhead) in [(crate::service::Encap::Ipip, 40), (crate::service::Encap::Gue { port: 6080 }, 48)] {
            let mut buf = vec![0u8; overhead];
            buf.extend_from_slice(&inner);
            let len = encap_v6(&mut buf, src, dst, encap, 50000).unwrap();
            assert_eq!(len, overhead + inner.len());
            assert_eq!(&buf[overhead..], &inner[..], "inner unchanged");
            assert_eq!((buf[0] >> 4, addr(&buf[8..24]), addr(&buf[24..40])), (6, src, dst));
            assert_eq!(usize::from(u16::from_be_bytes([buf[4], buf[5]])), len - 40);
            if overhead == 48 {
                assert_eq!(buf[6], IpProtocol::UDP.0);
                assert_eq!(u16::from_be_bytes([buf[42], buf[43]]), 6080);
                let s = sum(&buf[40..]) + pseudo_header_v6(src, dst, 17, (len - 40) as u32);
                assert_eq!(fold(s), 0xffff, "GUE UDP checksum");
            } else {
                assert_eq!(buf[6], 41);
            }
        }
        let t = parse_v6(&inner).unwrap().tuple;
        assert!(gue_source_port_v6(&t) >= 49152);
        assert_eq!(gue_source_port_v6(&t), gue_source_port_v6(&t));
    }

    #[test]
    fn reset_answers_a_syn() {
        let mut p = packet(IpProtocol::TCP, 10);
        let parsed = parse_v6(&p).unwrap();
        let len = tcp_reset_v6(&mut p, &parsed).unwrap();
        p.truncate(len);
        assert!(l4_checksum_ok_v6(&p));
        let r = parse_v6(&p).unwrap();
        assert_eq!((r.tuple.src, r.tuple.sport, r.tuple.dport), (a("2001:db8:1::100"), 80, 40000));
        assert_eq!(r.tcp_flags, TcpFlags::RST | TcpFlags::ACK);
        assert_eq!(u32::from_be_bytes([p[48], p[49], p[50], p[51]]), 11);
    }

    #[test]
    fn refuses_what_it_cannot_translate() {
        let mut p = packet(IpProtocol::TCP, 0);
        p[7] = 1;
        let parsed = parse_v6(&p).unwrap();
        let new = Rewrite6 { src: a("::1"), dst: a("::2"), sport: 1, dport: 2 };
        let before = p.clone();
        assert_eq!(rewrite_parsed_v6(&mut p, &parsed, &new), Err(XlateError::TtlExpired));
        assert_eq!(p, before);
        p[6] = 0; // hop-by-hop options
        assert_eq!(parse_v6(&p), Err(XlateError::Unsupported));
        let mut short = packet(IpProtocol::TCP, 0);
        short[5] = 10;
        assert_eq!(parse_v6(&short), Err(XlateError::Malformed));
    }

    #[test]
    fn packet_too_big_quotes_and_errors_translate() {
        let original = packet(IpProtocol::TCP, 1400);
        let mut buf = original.clone();
        buf.resize(original.len() + 48, 0);
        let vip = a("2001:db8:1::100");
        let len = icmp6_packet_too_big(&mut buf, original.len(), vip, 1400).unwrap();
        assert_eq!(len, 1280);
        buf.truncate(len);
        assert_eq!(&buf[48..1280], &original[..1232]);
        assert_eq!(u32::from_be_bytes([buf[44], buf[45], buf[46], buf[47]]), 1400);
        let quote = icmp6_error_quote(&buf).unwrap();
        assert_eq!((quote.src, quote.dst, quote.sport), (a("2001:db8:1::2"), vip, 40000));
        // Translated the way a FullNAT connection's would be: towards a backend.
        let q = Rewrite6 { src: a("2001:db8:2::11"), dst: a("2001:db8:2::200"), sport: 8080, dport: 1025 };
        rewrite_icmp6_error(&mut buf, a("2001:db8:2::200"), a("2001:db8:2::11"), &q).unwrap();
        let quote = icmp6_error_quote(&buf).unwrap();
        assert_eq!((quote.src, quote.dport), (q.src, 1025));
        let s = sum(&buf[40..]) + pseudo_header_v6(a("2001:db8:2::200"), a("2001:db8:2::11"), 58, 1240);
        assert_eq!(fold(s), 0xffff);
        // An error about an error is never sent.
        let mut again = buf.clone();
        again.resize(1400, 0);
        assert_eq!(icmp6_packet_too_big(&mut again, 1280, vip, 1280), Err(XlateError::Unsupported));
    }
}
