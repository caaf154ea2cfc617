//! TUN mode: the outer headers that carry a client's packet to a backend (IP-in-IP, RFC 2003;
//! GUE variant 1, draft-ietf-intarea-gue section 4), and the ICMP fragmentation-needed that
//! answers a packet that no longer fits once encapsulated (RFC 1191).
//!
//! Same conventions as the rest of `xlate`: a packet starts at its IPv4 header, bytes past its
//! total length are padding, and everything is validated before the first write, so on `Err`
//! the buffer is unchanged. Unlike the NAT rewrites these write new headers, so their checksums
//! are summed in full (over at most 576 bytes).

use std::net::Ipv4Addr;

use super::{
    Tuple4, XlateError, ICMP_HEADER_LEN, ICMP_PARAMETER_PROBLEM, ICMP_SOURCE_QUENCH, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};
use crate::service::Encap;
use crate::wire::icmpv4::CODE_FRAG_NEEDED;
use crate::wire::{checksum, Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet, UdpPacket};

#[cfg(test)]
#[path = "encap_tests.rs"]
mod tests;

/// Bytes IPIP puts in front of the inner packet: one IPv4 header. Equal to
/// [`Tunnel::overhead`](crate::service::Tunnel::overhead) (a test pins it).
const IPIP_OVERHEAD: usize = IPV4_HEADER_LEN;
/// Bytes GUE variant 1 puts in front of the inner packet: an IPv4 and a UDP header.
const GUE_OVERHEAD: usize = IPV4_HEADER_LEN + UDP_HEADER_LEN;
/// TTL of the outer headers and of the ICMP errors this box originates.
const OUTER_TTL: u8 = 64;

/// GUE source ports are drawn from the dynamic range (RFC 6335): 49152..=65535, 2^14 ports.
const GUE_SOURCE_PORT_BASE: u16 = 49152;
const GUE_SOURCE_PORT_BITS: u32 = 14;

/// An ICMP error is at most 576 bytes (RFC 1812 section 4.3.2.3), so it is never fragmented.
const ICMP_ERROR_MAX_LEN: usize = 576;
/// The headers of an ICMP error: IPv4 without options, then the ICMP header.
const ICMP_ERROR_HEADERS_LEN: usize = IPV4_HEADER_LEN + ICMP_HEADER_LEN;
/// The most of the offending packet a fragmentation-needed quotes.
const FRAG_NEEDED_MAX_QUOTE: usize = ICMP_ERROR_MAX_LEN - ICMP_ERROR_HEADERS_LEN;
/// DSCP of the ICMP errors we send: CS6, TOS 0xc0, precedence "internetwork control" (as
/// Linux sends them).
const ICMP_ERROR_DSCP: u8 = 48;
/// ICMP redirect (RFC 792): an error too, never answered with another one.
const ICMP_REDIRECT: Icmpv4Type = Icmpv4Type(5);

/// Encapsulates, in place, the inner IPv4 packet that follows `encap`'s overhead (20 bytes for
/// IPIP, 28 for GUE) in `buf`: writes the outer IPv4 header from `src` to `dst` into that room
/// (and for GUE the UDP header from `gue_source_port` to the GUE port) and returns the outer
/// packet's length, overhead plus the inner total length (the caller trims any padding).
///
/// The outer header copies the inner TOS (so DSCP and ECN survive the tunnel, RFC 6040 normal
/// mode), identification and DF bit (RFC 2003 section 3.1), so a DF packet still gets a
/// fragmentation-needed on the way; TTL is 64. The GUE UDP checksum is 0 (allowed for UDP over
/// IPv4: the inner packet carries its own checksums). The inner packet is not modified, not
/// even its TTL. `Malformed` for a bad or truncated inner header or a buffer shorter than the
/// overhead; `Unsupported` when the outer packet would exceed 65535 bytes.
pub fn encap_v4(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    encap: Encap,
    gue_source_port: u16,
) -> Result<usize, XlateError> {
    let overhead = match encap {
        Encap::Ipip => IPIP_OVERHEAD,
        Encap::Gue { .. } => GUE_OVERHEAD,
    };
    let inner = buf.get(overhead..).ok_or(XlateError::Malformed)?;
    let inner = Ipv4Packet::new_checked(inner).map_err(|_| XlateError::Malformed)?;
    let inner_len = inner.total_len();
    let outer_len = u16::try_from(overhead + usize::from(inner_len)).map_err(|_| XlateError::Unsupported)?;
    let inner = inner.as_bytes();
    // TOS (DSCP and ECN), identification, and of the flags DF alone.
    let (tos, ident, dont_frag) = (inner[1], [inner[4], inner[5]], inner[6] & 0x40);
    let proto = match encap {
        Encap::Ipip => IpProtocol::IPIP,
        Encap::Gue { .. } => IpProtocol::UDP,
    };

    // Built whole in a local array and summed in one pass: this runs for every TUN packet.
    let mut h = [0u8; IPV4_HEADER_LEN];
    h[0] = 0x45; // version 4, header length 20
    h[1] = tos;
    h[2..4].copy_from_slice(&outer_len.to_be_bytes());
    h[4..6].copy_from_slice(&ident);
    h[6] = dont_frag;
    h[8] = OUTER_TTL;
    h[9] = proto.0;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = checksum::ipv4_header_checksum(&h);
    h[10..12].copy_from_slice(&sum);
    let (ip_header, udp_header) = buf[..overhead].split_at_mut(IPV4_HEADER_LEN);
    ip_header.copy_from_slice(&h);
    if let Encap::Gue { port } = encap {
        udp_header.fill(0);
        let mut udp = UdpPacket::new_unchecked(udp_header);
        udp.set_src_port(gue_source_port);
        udp.set_dst_port(port);
        // At most outer_len - 20: fits.
        udp.set_length(UDP_HEADER_LEN as u16 + inner_len);
    }
    Ok(usize::from(outer_len))
}

/// The outer UDP source port of a GUE flow: a hash of the inner 5-tuple mapped onto
/// 49152..=65535. Same flow, same port (the backend's RSS keeps it on one queue, in order);
/// different flows spread over the range (the backend's RSS spreads them over its cores).
///
/// The hash is murmur3's 64-bit finalizer over the addresses, xored with the finalized ports
/// and protocol: a few multiplies per packet, no seed, so every box of a fleet picks the same
/// port for a flow. The port's top 2 bits are the range's, the other 14 the hash's top bits.
pub fn gue_source_port(t: &Tuple4) -> u16 {
    let addrs = u64::from(u32::from(t.src)) << 32 | u64::from(u32::from(t.dst));
    let ports_proto = u64::from(t.sport) << 24 | u64::from(t.dport) << 8 | u64::from(t.proto.0);
    let hash = fmix64(addrs ^ fmix64(ports_proto));
    // 14 bits: below 2^14, so the cast keeps them all.
    GUE_SOURCE_PORT_BASE | (hash >> (64 - GUE_SOURCE_PORT_BITS)) as u16
}

/// murmur3's 64-bit finalizer: a bijection whose every output bit depends on every input bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Turns the IPv4 packet at the start of `buf`, in place, into the ICMP "destination
/// unreachable, fragmentation needed and DF set" (type 3 code 4) that tells its source to send
/// at most `mtu` bytes (RFC 1191 next-hop MTU), sent from `from`. Returns the error's length.
///
/// The error quotes the first min(total length, 548) bytes of the packet, so it is at most 576
/// bytes (RFC 1812 section 4.3.2.3); `buf` needs room for 28 bytes of headers plus that quote
/// (`Malformed` otherwise). Outer header: TOS 0xc0, identification 0, no flags, TTL 64;
/// checksums computed in full. Following RFC 1122 section 3.2.2, no error is made
/// (`Unsupported`) about an ICMP error, a non-first fragment, a packet to a multicast or the
/// limited broadcast address, or from an address that is not one host's (0.0.0.0/8, loopback,
/// multicast, 240.0.0.0/4 and broadcast).
pub fn icmp_frag_needed_v4(buf: &mut [u8], from: Ipv4Addr, mtu: u16) -> Result<usize, XlateError> {
    let offending = Ipv4Packet::new_checked(&*buf).map_err(|_| XlateError::Malformed)?;
    if offending.frag_offset() != 0 {
        return Err(XlateError::Unsupported);
    }
    if offending.protocol() == IpProtocol::ICMP {
        let icmp = Icmpv4Packet::new_checked(offending.payload()).map_err(|_| XlateError::Malformed)?;
        if is_icmp_error(icmp.msg_type()) {
            return Err(XlateError::Unsupported);
        }
    }
    let (to, offending_dst) = (offending.src_addr(), offending.dst_addr());
    if !is_one_host(to) || offending_dst.is_multicast() || offending_dst.is_broadcast() {
        return Err(XlateError::Unsupported);
    }
    let quote_len = usize::from(offending.total_len()).min(FRAG_NEEDED_MAX_QUOTE);
    let len = ICMP_ERROR_HEADERS_LEN + quote_len;
    if buf.len() < len {
        return Err(XlateError::Malformed);
    }

    buf.copy_within(..quote_len, ICMP_ERROR_HEADERS_LEN);
    let (ip_header, message) = buf[..len].split_at_mut(IPV4_HEADER_LEN);
    ip_header.fill(0);
    let mut ip = Ipv4Packet::new_unchecked(ip_header);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    ip.set_dscp(ICMP_ERROR_DSCP);
    // At most 576.
    ip.set_total_len(len as u16);
    ip.set_ttl(OUTER_TTL);
    ip.set_protocol(IpProtocol::ICMP);
    ip.set_src_addr(from);
    ip.set_dst_addr(to);
    ip.fill_checksum();
    message[..ICMP_HEADER_LEN].fill(0);
    let mut icmp = Icmpv4Packet::new_unchecked(message);
    icmp.set_msg_type(Icmpv4Type::DEST_UNREACHABLE);
    icmp.set_code(CODE_FRAG_NEEDED);
    icmp.set_next_hop_mtu(mtu);
    icmp.fill_checksum();
    Ok(len)
}

/// The ICMP types that are errors (RFC 792): destination unreachable, source quench, redirect,
/// time exceeded, parameter problem.
fn is_icmp_error(t: Icmpv4Type) -> bool {
    t == Icmpv4Type::DEST_UNREACHABLE
        || t == ICMP_SOURCE_QUENCH
        || t == ICMP_REDIRECT
        || t == Icmpv4Type::TIME_EXCEEDED
        || t == ICMP_PARAMETER_PROBLEM
}

/// False for the source addresses RFC 1122 section 3.2.2 says "do not define a single host":
/// 0.0.0.0/8 ("this network"), loopback, multicast, and class E with the broadcast address.
fn is_one_host(addr: Ipv4Addr) -> bool {
    let first = addr.octets()[0];
    first != 0 && !addr.is_loopback() && !addr.is_multicast() && first < 240
}
