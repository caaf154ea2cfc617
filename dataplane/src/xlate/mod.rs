//! Header rewrites for NAT and FullNAT: addresses, ports and TTL of TCP/UDP packets, the ICMP
//! errors that quote them, and TCP resets; TUN-mode encapsulation (IPIP, GUE) and the
//! fragmentation-needed errors it sends.
//!
//! Every function takes an IPv4 packet starting at its IPv4 header. Bytes past `total_len`
//! (Ethernet padding) are neither read nor written. Each function validates everything it relies
//! on before its first write, so on `Err` the buffer is unchanged.
//!
//! Checksums are patched (RFC 1624), never re-summed: the cost does not grow with the payload,
//! and a checksum that was wrong on arrival stays wrong, so the receiver still drops a packet
//! corrupted before it reached us instead of accepting it with a fresh, valid checksum.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use crate::wire::checksum::{update_bytes, update_u16, update_u32};
use crate::wire::{Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket, WireError};

mod encap;
#[cfg(test)]
mod tests;

pub use encap::{encap_v4, gue_source_port, icmp_frag_needed_v4};

const IPV4_HEADER_LEN: usize = Ipv4Packet::<&[u8]>::HEADER_LEN;
const TCP_HEADER_LEN: usize = TcpPacket::<&[u8]>::HEADER_LEN;
const UDP_HEADER_LEN: usize = UdpPacket::<&[u8]>::HEADER_LEN;
const ICMP_HEADER_LEN: usize = Icmpv4Packet::<&[u8]>::HEADER_LEN;

/// A TCP header is quoted up to and including its checksum (bytes 16..18) when this many bytes
/// of it are there.
const TCP_THROUGH_CHECKSUM: usize = 18;
/// Bytes 10..20 of an IPv4 header: checksum, source and destination, the only ones NAT changes
/// in a quoted header. Contiguous and 16-bit aligned, so one `update_bytes` covers them.
const IPV4_NAT_FIELDS: std::ops::Range<usize> = 10..20;

/// ICMP types (RFC 792) whose body quotes the offending datagram, besides those `Icmpv4Type`
/// names.
const ICMP_SOURCE_QUENCH: Icmpv4Type = Icmpv4Type(4);
const ICMP_PARAMETER_PROBLEM: Icmpv4Type = Icmpv4Type(12);

/// TTL of the resets this box originates.
const RESET_TTL: u8 = 64;
/// A reset is a bare IPv4 header and a bare TCP header.
const RESET_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN;

/// New addresses and ports for a TCP/UDP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite4 {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

/// A TCP/UDP packet's 5-tuple: the same thing the connection table keys on.
pub type Tuple4 = crate::conn::ConnKey;

/// Why a packet was not translated. The buffer is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XlateError {
    /// Shorter than its headers claim, or a bad version, header length or length field (in the
    /// packet or in the datagram an ICMP error quotes).
    Malformed,
    /// TTL 0 or 1 on arrival: forwarding would take it to 0. The caller may send a time
    /// exceeded.
    TtlExpired,
    /// Well-formed but not translated here: another protocol, a non-first fragment (no ports),
    /// an ICMP message that is not an error about TCP/UDP, a reset to a reset.
    Unsupported,
}

impl XlateError {
    /// A snake_case name, for drop counters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            XlateError::Malformed => "malformed",
            XlateError::TtlExpired => "ttl_expired",
            XlateError::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for XlateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XlateError::Malformed => "malformed packet",
            XlateError::TtlExpired => "TTL expired in transit",
            XlateError::Unsupported => "packet not translatable",
        })
    }
}

impl std::error::Error for XlateError {}

/// The packet's 5-tuple. Checks the IPv4 header, that the protocol is TCP or UDP, that the
/// packet is not a non-first fragment (`Unsupported`: no ports) and that the TCP header (with
/// its options) or the UDP header is within `total_len`.
pub fn tuple_v4(packet: &[u8]) -> Result<Tuple4, XlateError> {
    let layout = transport_layout(packet)?;
    let ip = Ipv4Packet::new_unchecked(packet);
    let (sport, dport) = ports(&packet[layout.l4_at..]);
    Ok(Tuple4 { src: ip.src_addr(), dst: ip.dst_addr(), sport, dport, proto: layout.proto.0 })
}

/// Rewrites the addresses and ports of a TCP or UDP packet in place and decrements its TTL:
/// we are a router hop. A TTL of 0 or 1 on arrival gives `TtlExpired`. The IP and TCP/UDP
/// checksums are patched for every changed field, the addresses counting for the L4 checksum
/// through the pseudo-header. A UDP checksum of 0 ("none") stays 0; a patched UDP checksum of 0
/// is written 0xffff.
pub fn rewrite_v4(packet: &mut [u8], new: &Rewrite4) -> Result<(), XlateError> {
    let layout = transport_layout(packet)?;
    let (old_src, old_dst) = forward_ip_header(packet, new.src, new.dst)?;
    rewrite_transport(&mut packet[layout.l4_at..layout.end], layout.proto, old_src, old_dst, new);
    Ok(())
}

/// For an ICMPv4 error (destination unreachable, source quench, time exceeded, parameter
/// problem) quoting a TCP/UDP datagram: the quoted datagram's tuple. None for other ICMP
/// messages, for a quote too short to hold the quoted IPv4 header and 8 bytes of TCP/UDP, and
/// for a quoted non-first fragment.
pub fn icmp_error_quote_v4(packet: &[u8]) -> Option<Tuple4> {
    let layout = icmp_error_layout(packet).ok()?;
    let quoted = Ipv4Packet::new_unchecked(&packet[layout.quote_at..]);
    let (sport, dport) = ports(&packet[layout.quoted_l4_at..]);
    Some(Tuple4 { src: quoted.src_addr(), dst: quoted.dst_addr(), sport, dport, proto: layout.quoted_proto.0 })
}

/// Translates an ICMP error in place: the outer source and destination become `outer_src` and
/// `outer_dst` (TTL decremented as in [`rewrite_v4`]), the quoted datagram's addresses and
/// ports become `quoted`'s. Patched: the quoted IPv4 header checksum, the quoted TCP/UDP
/// checksum when the quote holds it (UDP always; TCP when 18 bytes of it are quoted; a quoted
/// UDP checksum of 0 stays 0), the ICMP checksum and the outer IP checksum. A quote ending
/// inside the TCP checksum leaves its one quoted byte alone: it cannot be patched without the
/// other (receivers match the quote by addresses and ports, never by a cut checksum). A
/// fragmentation-needed MTU is left as it is.
pub fn rewrite_icmp_error_v4(
    packet: &mut [u8],
    outer_src: Ipv4Addr,
    outer_dst: Ipv4Addr,
    quoted: &Rewrite4,
) -> Result<(), XlateError> {
    let layout = icmp_error_layout(packet)?;
    forward_ip_header(packet, outer_src, outer_dst)?;

    let message = &mut packet[layout.icmp_at..layout.end];
    let (icmp_header, quote) = message.split_at_mut(ICMP_HEADER_LEN);
    let quoted_l4_at = layout.quoted_l4_at - layout.quote_at;
    let (quoted_ip, quoted_l4) = quote.split_at_mut(quoted_l4_at);
    // The ICMP checksum covers the quote: every quoted word that changes is patched into it.
    let mut icmp_sum = Icmpv4Packet::new_unchecked(&*icmp_header).checksum();

    let mut before = [0u8; IPV4_NAT_FIELDS.end - IPV4_NAT_FIELDS.start];
    before.copy_from_slice(&quoted_ip[IPV4_NAT_FIELDS]);
    let mut ip = Ipv4Packet::new_unchecked(&mut *quoted_ip);
    let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
    let ip_sum = update_u32(ip.checksum(), old_src.into(), quoted.src.into());
    ip.set_checksum(update_u32(ip_sum, old_dst.into(), quoted.dst.into()));
    ip.set_src_addr(quoted.src);
    ip.set_dst_addr(quoted.dst);
    icmp_sum = update_bytes(icmp_sum, &before, &quoted_ip[IPV4_NAT_FIELDS]);

    // Ports and checksum lie within the first 18 bytes (TCP) or 8 (UDP). Unchanged words in
    // between (the TCP sequence numbers) add nothing to the patch.
    let touched = if layout.quoted_proto == IpProtocol::TCP && quoted_l4.len() >= TCP_THROUGH_CHECKSUM {
        TCP_THROUGH_CHECKSUM
    } else {
        UDP_HEADER_LEN
    };
    let mut before = [0u8; TCP_THROUGH_CHECKSUM];
    before[..touched].copy_from_slice(&quoted_l4[..touched]);
    rewrite_transport(quoted_l4, layout.quoted_proto, old_src, old_dst, quoted);
    icmp_sum = update_bytes(icmp_sum, &before[..touched], &quoted_l4[..touched]);

    Icmpv4Packet::new_unchecked(icmp_header).set_checksum(icmp_sum);
    Ok(())
}

/// Turns a received TCP segment into the reset answering it, in place (reset generation, RFC 793
/// section 3.4 / RFC 9293 section 3.5.2): to a segment with ACK, RST with seq = its ack; otherwise RST|ACK with seq 0 and
/// ack = its seq + payload length (+1 for SYN, +1 for FIN). Addresses and ports are swapped;
/// options and payload are dropped; TTL 64, DF set. Returns the new IP packet length (40): the
/// caller trims the frame to it. Never answers a reset (`Unsupported`), nor a fragment, whose
/// segment length is unknown.
pub fn tcp_reset_v4(packet: &mut [u8]) -> Result<usize, XlateError> {
    let layout = transport_layout(packet)?;
    let ip = Ipv4Packet::new_unchecked(&*packet);
    if layout.proto != IpProtocol::TCP || ip.is_fragment() {
        return Err(XlateError::Unsupported);
    }
    let (peer, us) = (ip.src_addr(), ip.dst_addr());
    let segment = TcpPacket::new_unchecked(&packet[layout.l4_at..layout.end]);
    let flags = segment.flags();
    if flags.contains(TcpFlags::RST) {
        return Err(XlateError::Unsupported);
    }
    let (peer_port, our_port) = (segment.src_port(), segment.dst_port());
    let (seq, ack, reset_flags) = if flags.contains(TcpFlags::ACK) {
        (segment.ack_number(), 0, TcpFlags::RST)
    } else {
        // Payload is at most 64 KiB, so the length fits in u32.
        let mut seg_len = segment.payload().len() as u32;
        seg_len += u32::from(flags.contains(TcpFlags::SYN)) + u32::from(flags.contains(TcpFlags::FIN));
        (0, segment.seq_number().wrapping_add(seg_len), TcpFlags::RST | TcpFlags::ACK)
    };

    let (ip_header, tcp_header) = packet[..RESET_LEN].split_at_mut(IPV4_HEADER_LEN);
    ip_header.fill(0);
    let mut ip = Ipv4Packet::new_unchecked(ip_header);
    ip.set_version(4);
    ip.set_header_len(IPV4_HEADER_LEN as u8);
    ip.set_total_len(RESET_LEN as u16);
    ip.set_dont_frag(true);
    ip.set_ttl(RESET_TTL);
    ip.set_protocol(IpProtocol::TCP);
    ip.set_src_addr(us);
    ip.set_dst_addr(peer);
    ip.fill_checksum();
    tcp_header.fill(0);
    let mut tcp = TcpPacket::new_unchecked(tcp_header);
    tcp.set_src_port(our_port);
    tcp.set_dst_port(peer_port);
    tcp.set_seq_number(seq);
    tcp.set_ack_number(ack);
    tcp.set_header_len(TCP_HEADER_LEN as u8);
    tcp.set_flags(reset_flags);
    tcp.fill_checksum(IpAddr::V4(us), IpAddr::V4(peer));
    Ok(RESET_LEN)
}

/// Where a validated TCP/UDP packet's transport header is.
struct TransportLayout {
    /// Offset of the TCP/UDP header (the IPv4 header length).
    l4_at: usize,
    /// The IPv4 total length: the packet's end.
    end: usize,
    proto: IpProtocol,
}

fn transport_layout(packet: &[u8]) -> Result<TransportLayout, XlateError> {
    let ip = Ipv4Packet::new_checked(packet).map_err(|_| XlateError::Malformed)?;
    let proto = ip.protocol();
    if proto != IpProtocol::TCP && proto != IpProtocol::UDP {
        return Err(XlateError::Unsupported);
    }
    // Only the first fragment carries the transport header.
    if ip.frag_offset() != 0 {
        return Err(XlateError::Unsupported);
    }
    let l4 = ip.payload();
    let header_ok = if proto == IpProtocol::TCP {
        TcpPacket::new_checked(l4).is_ok()
    } else {
        match UdpPacket::new_checked(l4) {
            Ok(_) => true,
            // A first fragment's UDP length counts the whole datagram, beyond this fragment.
            Err(WireError::Truncated) => ip.more_frags() && l4.len() >= UDP_HEADER_LEN,
            Err(_) => false,
        }
    };
    if !header_ok {
        return Err(XlateError::Malformed);
    }
    Ok(TransportLayout { l4_at: usize::from(ip.header_len()), end: usize::from(ip.total_len()), proto })
}

/// Where a validated ICMP error's parts are, as offsets into the packet.
struct IcmpErrorLayout {
    icmp_at: usize,
    /// The quoted IPv4 header.
    quote_at: usize,
    /// The quoted TCP/UDP header, of which at least 8 bytes are quoted.
    quoted_l4_at: usize,
    /// The outer IPv4 total length: the packet's end.
    end: usize,
    quoted_proto: IpProtocol,
}

fn icmp_error_layout(packet: &[u8]) -> Result<IcmpErrorLayout, XlateError> {
    let ip = Ipv4Packet::new_checked(packet).map_err(|_| XlateError::Malformed)?;
    if ip.protocol() != IpProtocol::ICMP || ip.frag_offset() != 0 {
        return Err(XlateError::Unsupported);
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).map_err(|_| XlateError::Malformed)?;
    if !quotes_datagram(icmp.msg_type()) {
        return Err(XlateError::Unsupported);
    }
    // The quote is cut short by design (RFC 792: header + 8 bytes; RFC 1812: up to 576), so
    // its total length and checksums cannot be checked, only that the bytes we touch are there.
    let quote = icmp.data();
    if quote.len() < IPV4_HEADER_LEN {
        return Err(XlateError::Malformed);
    }
    let quoted = Ipv4Packet::new_unchecked(quote);
    let quoted_header_len = usize::from(quoted.header_len());
    if quoted.version() != 4 || quoted_header_len < IPV4_HEADER_LEN {
        return Err(XlateError::Malformed);
    }
    let quoted_proto = quoted.protocol();
    if quoted_proto != IpProtocol::TCP && quoted_proto != IpProtocol::UDP || quoted.frag_offset() != 0 {
        return Err(XlateError::Unsupported);
    }
    if quote.len() < quoted_header_len + UDP_HEADER_LEN {
        return Err(XlateError::Malformed);
    }
    let quote_at = usize::from(ip.header_len()) + ICMP_HEADER_LEN;
    Ok(IcmpErrorLayout {
        icmp_at: usize::from(ip.header_len()),
        quote_at,
        quoted_l4_at: quote_at + quoted_header_len,
        end: usize::from(ip.total_len()),
        quoted_proto,
    })
}

fn quotes_datagram(t: Icmpv4Type) -> bool {
    t == Icmpv4Type::DEST_UNREACHABLE
        || t == Icmpv4Type::TIME_EXCEEDED
        || t == ICMP_SOURCE_QUENCH
        || t == ICMP_PARAMETER_PROBLEM
}

/// Source and destination ports: TCP and UDP headers both open with them, and the UDP view
/// needs only the 8 bytes an ICMP quote is sure to hold.
fn ports(l4: &[u8]) -> (u16, u16) {
    let header = UdpPacket::new_unchecked(l4);
    (header.src_port(), header.dst_port())
}

/// Moves an IPv4 header one hop on with new addresses: TTL decremented, header checksum
/// patched. Returns the old source and destination. Writes nothing when the TTL has expired.
fn forward_ip_header(packet: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<(Ipv4Addr, Ipv4Addr), XlateError> {
    let mut ip = Ipv4Packet::new_unchecked(packet);
    let ttl = ip.ttl();
    if ttl <= 1 {
        return Err(XlateError::TtlExpired);
    }
    let (old_src, old_dst) = (ip.src_addr(), ip.dst_addr());
    // TTL shares its 16-bit checksum word with the protocol byte.
    let proto = u16::from(ip.protocol().0);
    let mut sum = update_u32(ip.checksum(), old_src.into(), src.into());
    sum = update_u32(sum, old_dst.into(), dst.into());
    sum = update_u16(sum, u16::from(ttl) << 8 | proto, u16::from(ttl - 1) << 8 | proto);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.set_ttl(ttl - 1);
    ip.set_checksum(sum);
    Ok((old_src, old_dst))
}

/// Sets the ports of a TCP/UDP header and patches its checksum for them and for the
/// pseudo-header's addresses changing from `old_src`/`old_dst` to `new`'s. `l4` may be a quote
/// cut short: a TCP checksum past its end is left alone.
fn rewrite_transport(l4: &mut [u8], proto: IpProtocol, old_src: Ipv4Addr, old_dst: Ipv4Addr, new: &Rewrite4) {
    let patch = |sum: u16, old_ports: (u16, u16)| {
        let mut sum = update_u32(sum, old_src.into(), new.src.into());
        sum = update_u32(sum, old_dst.into(), new.dst.into());
        sum = update_u16(sum, old_ports.0, new.sport);
        update_u16(sum, old_ports.1, new.dport)
    };
    let old_ports = ports(l4);
    if proto == IpProtocol::TCP {
        let has_checksum = l4.len() >= TCP_THROUGH_CHECKSUM;
        let mut tcp = TcpPacket::new_unchecked(l4);
        tcp.set_src_port(new.sport);
        tcp.set_dst_port(new.dport);
        if has_checksum {
            tcp.set_checksum(patch(tcp.checksum(), old_ports));
        }
    } else {
        let mut udp = UdpPacket::new_unchecked(l4);
        udp.set_src_port(new.sport);
        udp.set_dst_port(new.dport);
        // 0 means the sender computed none. A patched sum of 0 is sent as 0xffff, its other
        // one's-complement form (RFC 768).
        if udp.checksum() != 0 {
            let sum = patch(udp.checksum(), old_ports);
            udp.set_checksum(if sum == 0 { 0xffff } else { sum });
        }
    }
}
