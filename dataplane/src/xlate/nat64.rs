//! NAT64 header translation (RFC 7915) for the connections of an IPv6 VIP with IPv4 backends:
//! IPv6 TCP/UDP packets from clients become IPv4 packets from a local address, the backends'
//! IPv4 replies become IPv6 packets from the VIP, and ICMPv4 errors about a connection become
//! ICMPv6 errors to its client, the packet they quote translated too.
//!
//! The IPv6 header is 40 bytes, the IPv4 header 20: the transport header and payload stay
//! where they are and the IP header in front of them is rewritten. [`v6_to_v4`] writes the
//! IPv4 header over the last 20 bytes of the IPv6 one (the caller then drops 20 bytes at the
//! front of the frame); [`v4_to_v6`] expects 20 free bytes in front of the IPv4 header (the
//! caller prepends them) and writes the IPv6 header over them and the IPv4 header.
//!
//! The TCP/UDP checksum covers the addresses through the pseudo-header; the length and
//! protocol words of both pseudo-headers sum the same, so only the addresses and ports are
//! patched (RFC 1624). The IPv4 header is written with DF set and identification 0 (an atomic
//! datagram, RFC 6864: IPv6 hosts never have their packets fragmented on the way, and the
//! path MTU is told back to them as a packet too big). IPv4 options and IPv6 extension headers
//! are not translated (`Unsupported`). On `Err` the buffer is unchanged.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::v6::{patch_transport, Parsed6, Rewrite6, IPV6_HEADER_LEN, IPV6_MIN_MTU};
use super::{Rewrite4, XlateError};
use crate::wire::checksum::{fold, ipv4_header_checksum, pseudo_header_v6, sum, update_u16};
use crate::wire::tcp::{next_option, OPT_MSS};
use crate::wire::{IpProtocol, TcpFlags};

/// An IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;
/// How much shorter the IPv4 packet is than the IPv6 one.
pub const NAT64_SHRINK: usize = IPV6_HEADER_LEN - IPV4_HEADER_LEN;
/// The ICMP header (type, code, checksum, 4 more bytes), the same size in both versions.
const ICMP_HEADER_LEN: usize = 8;
/// How much longer an ICMPv6 error is than the ICMPv4 error it translates: both the outer and
/// the quoted IP header grow by 20 bytes.
pub const NAT64_ICMP_GROWTH: usize = 2 * NAT64_SHRINK;

fn v4_pair(src: Ipv4Addr, dst: Ipv4Addr) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..4].copy_from_slice(&src.octets());
    b[4..8].copy_from_slice(&dst.octets());
    b
}

fn v6_pair(src: Ipv6Addr, dst: Ipv6Addr) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[0..16].copy_from_slice(&src.octets());
    b[16..32].copy_from_slice(&dst.octets());
    b
}

/// Lowers the MSS option of a TCP SYN (`segment`: its header and payload) to `max` when it
/// announces more, patching the checksum. A SYN without the option is left alone: its peer
/// assumes 536 bytes (IPv4) or 1220 (IPv6), which fit any path.
pub fn clamp_mss(segment: &mut [u8], max: u16) {
    if segment.len() < 20 || segment[13] & TcpFlags::SYN.bits() == 0 {
        return;
    }
    let data_offset = usize::from(segment[12] >> 4) * 4;
    if data_offset < 20 || data_offset > segment.len() {
        return;
    }
    let mut at = 20;
    while let Some(o) = next_option(segment, data_offset, &mut at) {
        if o.kind != OPT_MSS || o.len != 4 {
            continue;
        }
        let i = o.at;
        let mss = u16::from_be_bytes([segment[i + 2], segment[i + 3]]);
        if mss > max {
            segment[i + 2..i + 4].copy_from_slice(&max.to_be_bytes());
            // Options need no alignment: at an odd offset the value straddles two checksum
            // words, its high byte the low half of one and its low byte the high half of the
            // next, so it sums byte-swapped.
            let c = u16::from_be_bytes([segment[16], segment[17]]);
            let c = if (i + 2) % 2 == 0 {
                update_u16(c, mss, max)
            } else {
                update_u16(c, mss.swap_bytes(), max.swap_bytes())
            };
            segment[16..18].copy_from_slice(&c.to_be_bytes());
        }
        return;
    }
}

/// Translates an IPv6 TCP/UDP packet (`parse_v6` accepted it as `parsed`, unchanged since)
/// into an IPv4 one with `new`'s addresses and ports. The IPv4 packet is written at
/// `packet[20..parsed.end]`; returns its length (`parsed.end - 20`). Traffic class becomes
/// TOS, hop limit - 1 the TTL (`TtlExpired` when the hop limit is 0 or 1). A TCP SYN's MSS is
/// lowered to `mss_max`. A UDP checksum of 0, invalid in IPv6, is `Malformed`.
pub fn v6_to_v4(packet: &mut [u8], parsed: &Parsed6, new: &Rewrite4, mss_max: u16) -> Result<usize, XlateError> {
    let end = parsed.end;
    if end > packet.len() || end < IPV6_HEADER_LEN + 8 {
        return Err(XlateError::Malformed);
    }
    let proto = parsed.tuple.proto;
    if proto == IpProtocol::UDP && packet[IPV6_HEADER_LEN + 6..IPV6_HEADER_LEN + 8] == [0, 0] {
        return Err(XlateError::Malformed);
    }
    if packet[7] <= 1 {
        return Err(XlateError::TtlExpired);
    }
    let tos = (packet[0] << 4) | (packet[1] >> 4);
    let ttl = packet[7] - 1;
    let mut old = [0u8; 32];
    old.copy_from_slice(&packet[8..40]);
    let l4 = &mut packet[IPV6_HEADER_LEN..end];
    patch_transport(l4, proto, &old, &v4_pair(new.src, new.dst), new.sport, new.dport);
    if proto == IpProtocol::TCP {
        clamp_mss(l4, mss_max);
    }
    let len = end - NAT64_SHRINK;
    let h = &mut packet[NAT64_SHRINK..IPV6_HEADER_LEN];
    write_ipv4_header(h.try_into().expect("20 bytes"), tos, len, ttl, proto, new.src, new.dst);
    Ok(len)
}

fn write_ipv4_header(
    h: &mut [u8; IPV4_HEADER_LEN],
    tos: u8,
    len: usize,
    ttl: u8,
    proto: IpProtocol,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) {
    h[0] = 0x45;
    h[1] = tos;
    h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    // Identification 0, DF, no fragment offset.
    h[4..8].copy_from_slice(&[0, 0, 0x40, 0]);
    h[8] = ttl;
    h[9] = proto.0;
    h[10..12].fill(0);
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let c = ipv4_header_checksum(h);
    h[10..12].copy_from_slice(&c);
}

fn write_ipv6_header(h: &mut [u8], tc: u8, payload_len: usize, next: u8, hop: u8, src: Ipv6Addr, dst: Ipv6Addr) {
    h[0] = 0x60 | (tc >> 4);
    h[1] = tc << 4;
    h[2..4].fill(0);
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
}

/// The (header length, total length, protocol) of the option-less, unfragmented IPv4 TCP/UDP
/// packet at the start of `ip`, with its transport header present.
fn ipv4_layout(ip: &[u8]) -> Result<(usize, IpProtocol), XlateError> {
    let Some(h) = ip.first_chunk::<IPV4_HEADER_LEN>() else { return Err(XlateError::Malformed) };
    if h[0] >> 4 != 4 {
        return Err(XlateError::Malformed);
    }
    if h[0] & 0x0f != 5 || h[6] & 0x3f != 0 || h[7] != 0 {
        // Options, or a fragment.
        return Err(XlateError::Unsupported);
    }
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let proto = IpProtocol(h[9]);
    let min_l4 = if proto == IpProtocol::TCP {
        20
    } else if proto == IpProtocol::UDP {
        8
    } else {
        return Err(XlateError::Unsupported);
    };
    if total > ip.len() || total < IPV4_HEADER_LEN + min_l4 {
        return Err(XlateError::Malformed);
    }
    Ok((total, proto))
}

/// Translates an IPv4 TCP/UDP packet that starts at `packet[20..]` (20 free bytes in front of
/// it) into an IPv6 packet from `packet[0..]` with `new`'s addresses and ports; returns its
/// length (IPv4 total length + 20). TOS becomes the traffic class, TTL - 1 the hop limit
/// (`TtlExpired` when the TTL is 0 or 1). A TCP SYN's MSS is lowered to `mss_max`. A UDP
/// checksum of 0 (none, in IPv4) is computed, as IPv6 requires (RFC 7915 4.5). Options or a
/// fragment: `Unsupported`.
pub fn v4_to_v6(packet: &mut [u8], new: &Rewrite6, mss_max: u16) -> Result<usize, XlateError> {
    let ip = packet.get(NAT64_SHRINK..).ok_or(XlateError::Malformed)?;
    let (total, proto) = ipv4_layout(ip)?;
    if ip[8] <= 1 {
        return Err(XlateError::TtlExpired);
    }
    let (tos, ttl) = (ip[1], ip[8] - 1);
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let end = NAT64_SHRINK + total;
    let l4 = &mut packet[IPV6_HEADER_LEN..end];
    let udp_unsummed = proto == IpProtocol::UDP && l4[6..8] == [0, 0];
    patch_transport(l4, proto, &v4_pair(src, dst), &v6_pair(new.src, new.dst), new.sport, new.dport);
    if udp_unsummed {
        let s = sum(l4) + pseudo_header_v6(new.src, new.dst, proto.0, l4.len() as u32);
        let c = match !fold(s) {
            0 => 0xffff,
            c => c,
        };
        l4[6..8].copy_from_slice(&c.to_be_bytes());
    }
    if proto == IpProtocol::TCP {
        clamp_mss(l4, mss_max);
    }
    let payload_len = total - IPV4_HEADER_LEN;
    write_ipv6_header(&mut packet[..IPV6_HEADER_LEN], tos, payload_len, proto.0, ttl, new.src, new.dst);
    Ok(end)
}

/// What an ICMPv4 error becomes in ICMPv6 (RFC 7915 4.2): (type, code, the 4 bytes after the
/// checksum). None for messages that are not translated (and so dropped): parameter problem
/// (its pointer maps field by field; not done here), source quench, redirects, anything else.
/// `mtu_cap`: the largest IPv6 packet the client's side takes, for a packet too big.
fn icmp6_kind(msg_type: u8, code: u8, rest: [u8; 4], mtu_cap: u16) -> Option<(u8, u8, [u8; 4])> {
    const UNREACH: u8 = 1;
    const TOO_BIG: u8 = 2;
    const TIME_EXCEEDED: u8 = 3;
    const PARAM_PROBLEM: u8 = 4;
    match (msg_type, code) {
        // Net, host, source route failed, unknown net/host, isolated, TOS unreachables: no route.
        (3, 0 | 1 | 5 | 6 | 7 | 8 | 11 | 12) => Some((UNREACH, 0, [0; 4])),
        // Protocol unreachable: the next header field (byte 6) is the problem.
        (3, 2) => Some((PARAM_PROBLEM, 1, 6u32.to_be_bytes())),
        (3, 3) => Some((UNREACH, 4, [0; 4])),
        (3, 4) => {
            // Fragmentation needed: the IPv6 MTU is the IPv4 one plus the header growth, at
            // least the IPv6 minimum and at most what the client's side takes. A router that
            // says 0 (before RFC 1191) gets the minimum.
            let mtu4 = u16::from_be_bytes([rest[2], rest[3]]);
            let mtu6 = if mtu4 == 0 {
                IPV6_MIN_MTU as u32
            } else {
                (u32::from(mtu4) + NAT64_SHRINK as u32).min(u32::from(mtu_cap)).max(IPV6_MIN_MTU as u32)
            };
            Some((TOO_BIG, 0, mtu6.to_be_bytes()))
        }
        // Administratively prohibited (net, host, communication): code 1.
        (3, 9 | 10 | 13) => Some((UNREACH, 1, [0; 4])),
        (11, 0 | 1) => Some((TIME_EXCEEDED, code, [0; 4])),
        _ => None,
    }
}

/// Translates an ICMPv4 error (`packet`: its IPv4 packet, as received) quoting an IPv4 TCP/UDP
/// packet of a NAT64 connection into the ICMPv6 error its client gets, written to `out`:
/// outer IPv6 header from `outer_src` to `outer_dst` (hop limit the TTL - 1), the ICMPv6
/// message (see `icmp6_kind`; `mtu_cap` bounds a packet too big's MTU), and the quoted packet
/// as the client sent it: an IPv6 header with `quoted`'s addresses, its ports and checksum
/// patched (when quoted), the rest of the quote as it came, cut to keep the error within
/// 1280 bytes. The ICMPv4 checksum is verified (`Malformed` when wrong), the ICMPv6 one
/// computed. The error is at most `packet.len() + 40` bytes and at most 1280; `out` must
/// hold it. Returns its length.
pub fn icmp4_error_to_v6(
    packet: &[u8],
    out: &mut [u8],
    outer_src: Ipv6Addr,
    outer_dst: Ipv6Addr,
    quoted: &Rewrite6,
    mtu_cap: u16,
) -> Result<usize, XlateError> {
    let Some(h) = packet.first_chunk::<IPV4_HEADER_LEN>() else { return Err(XlateError::Malformed) };
    let header_len = usize::from(h[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if h[0] >> 4 != 4 || header_len < IPV4_HEADER_LEN || total > packet.len() || total < header_len {
        return Err(XlateError::Malformed);
    }
    if IpProtocol(h[9]) != IpProtocol::ICMP {
        return Err(XlateError::Unsupported);
    }
    let icmp = &packet[header_len..total];
    if icmp.len() < ICMP_HEADER_LEN + IPV4_HEADER_LEN + 8 {
        return Err(XlateError::Malformed);
    }
    if fold(sum(icmp)) != 0xffff {
        return Err(XlateError::Malformed);
    }
    if h[8] <= 1 {
        return Err(XlateError::TtlExpired);
    }
    let rest = [icmp[4], icmp[5], icmp[6], icmp[7]];
    let (msg_type, code, rest) = icmp6_kind(icmp[0], icmp[1], rest, mtu_cap).ok_or(XlateError::Unsupported)?;
    let q = &icmp[ICMP_HEADER_LEN..];
    if q[0] >> 4 != 4 || q[0] & 0x0f != 5 {
        // The quoted packet must be one we sent: option-less IPv4.
        return Err(XlateError::Unsupported);
    }
    let proto = IpProtocol(q[9]);
    if proto != IpProtocol::TCP && proto != IpProtocol::UDP {
        return Err(XlateError::Unsupported);
    }
    let head = IPV6_HEADER_LEN + ICMP_HEADER_LEN + IPV6_HEADER_LEN;
    let quoted_l4 = &q[IPV4_HEADER_LEN..];
    let l4_len = quoted_l4.len().min(IPV6_MIN_MTU - head);
    let len = head + l4_len;
    if out.len() < len {
        return Err(XlateError::Malformed);
    }
    // The quoted packet as the client sent it.
    let (q_src, q_dst) = (Ipv4Addr::new(q[12], q[13], q[14], q[15]), Ipv4Addr::new(q[16], q[17], q[18], q[19]));
    let q_payload = usize::from(u16::from_be_bytes([q[2], q[3]])).saturating_sub(IPV4_HEADER_LEN);
    let inner = &mut out[IPV6_HEADER_LEN + ICMP_HEADER_LEN..len];
    write_ipv6_header(inner, q[1], q_payload, proto.0, q[8], quoted.src, quoted.dst);
    let inner_l4 = &mut inner[IPV6_HEADER_LEN..];
    inner_l4.copy_from_slice(&quoted_l4[..l4_len]);
    patch_transport(
        inner_l4,
        proto,
        &v4_pair(q_src, q_dst),
        &v6_pair(quoted.src, quoted.dst),
        quoted.sport,
        quoted.dport,
    );
    let m = &mut out[IPV6_HEADER_LEN..IPV6_HEADER_LEN + ICMP_HEADER_LEN];
    m[0] = msg_type;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&rest);
    write_ipv6_header(
        &mut out[..IPV6_HEADER_LEN],
        h[1],
        len - IPV6_HEADER_LEN,
        IpProtocol::ICMPV6.0,
        h[8] - 1,
        outer_src,
        outer_dst,
    );
    let message = &mut out[IPV6_HEADER_LEN..len];
    let s = sum(message) + pseudo_header_v6(outer_src, outer_dst, IpProtocol::ICMPV6.0, message.len() as u32);
    let c = !fold(s);
    message[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(len)
}
