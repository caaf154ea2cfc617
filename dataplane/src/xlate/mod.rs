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
use std::net::Ipv4Addr;

use crate::wire::checksum::{self, fold, update_bytes, update_u32};
use crate::wire::{Icmpv4Packet, Icmpv4Type, IpProtocol, Ipv4Packet, TcpFlags, TcpPacket, UdpPacket};

pub mod clientaddr;
mod encap;
pub mod nat64;
#[cfg(test)]
mod nat64_tests;
pub mod seqadj;
#[cfg(test)]
mod tests;
pub mod v6;

pub use encap::{encap_v4, gue_source_port, icmp_frag_needed_v4};

const IPV4_HEADER_LEN: usize = Ipv4Packet::<&[u8]>::HEADER_LEN;
const TCP_HEADER_LEN: usize = TcpPacket::<&[u8]>::HEADER_LEN;
const UDP_HEADER_LEN: usize = UdpPacket::<&[u8]>::HEADER_LEN;
const ICMP_HEADER_LEN: usize = Icmpv4Packet::<&[u8]>::HEADER_LEN;

/// A TCP header is quoted up to and including its checksum (bytes 16..18) when this many bytes
/// of it are there.
const TCP_THROUGH_CHECKSUM: usize = 18;
/// IPv4 flags and fragment offset (bytes 6..8): more fragments, and the offset.
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;
/// Bytes 10..20 of an IPv4 header: checksum, source and destination, the only ones NAT changes
/// in a quoted header. Contiguous and 16-bit aligned, so one `update_bytes` covers them.
const IPV4_NAT_FIELDS: std::ops::Range<usize> = 10..20;

/// ICMP types (RFC 792) whose body quotes the offending datagram, besides those `Icmpv4Type`
/// names.
const ICMP_SOURCE_QUENCH: Icmpv4Type = Icmpv4Type(4);
const ICMP_PARAMETER_PROBLEM: Icmpv4Type = Icmpv4Type(12);

/// TTL of the TCP segments this box originates (resets, the SYN proxy's handshakes).
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

/// A TCP/UDP packet [`parse_v4`] accepted: its tuple, its TCP flags and where its transport
/// header is, so the caller can look it up and then [`rewrite_parsed_v4`] it without parsing
/// it again. It describes the buffer it was parsed from, as long as that is not changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed4 {
    pub tuple: Tuple4,
    /// Byte 13 of the TCP header; empty for UDP.
    pub tcp_flags: TcpFlags,
    /// The IPv4 header length: where the TCP/UDP header starts.
    l4_at: u8,
    /// The IPv4 total length: the packet's end.
    end: u16,
}

impl Parsed4 {
    /// The IPv4 header length.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.l4_at)
    }

    /// The IPv4 total length.
    #[inline]
    pub fn total_len(&self) -> usize {
        usize::from(self.end)
    }
}

/// The packet's 5-tuple. Checks the IPv4 header, that the protocol is TCP or UDP, that the
/// packet is not a non-first fragment (`Unsupported`: no ports) and that the TCP header (with
/// its options) or the UDP header is within `total_len`.
pub fn tuple_v4(packet: &[u8]) -> Result<Tuple4, XlateError> {
    parse_v4(packet).map(|p| p.tuple)
}

/// What [`tuple_v4`] checks and returns, with the TCP flags and the header layout. One pass
/// over fixed offsets: this runs for every load-balanced packet (inlined into its caller).
#[inline(always)]
pub fn parse_v4(packet: &[u8]) -> Result<Parsed4, XlateError> {
    let Some(h) = packet.first_chunk::<IPV4_HEADER_LEN>() else { return Err(XlateError::Malformed) };
    let len = packet.len();
    let total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    // Ipv4Packet::new_checked's conditions; nearly every packet has no options (0x45), and
    // `first_chunk` showed the 20 bytes are there.
    let header_len = if h[0] == 0x45 {
        IPV4_HEADER_LEN
    } else {
        let header_len = usize::from(h[0] & 0x0f) * 4;
        if h[0] >> 4 != 4 || header_len < IPV4_HEADER_LEN || header_len > len {
            return Err(XlateError::Malformed);
        }
        header_len
    };
    if total_len < header_len || total_len > len {
        return Err(XlateError::Malformed);
    }
    let proto = IpProtocol(h[9]);
    if proto != IpProtocol::TCP && proto != IpProtocol::UDP {
        return Err(XlateError::Unsupported);
    }
    // Only the first fragment carries the transport header.
    let flags_frag = u16::from_be_bytes([h[6], h[7]]);
    if flags_frag & FRAG_OFFSET_MASK != 0 {
        return Err(XlateError::Unsupported);
    }
    let l4 = &packet[header_len..total_len];
    let (ports_ok, tcp_flags) = if proto == IpProtocol::TCP {
        // TcpPacket::new_checked's conditions.
        match l4.first_chunk::<TCP_HEADER_LEN>() {
            Some(t) => {
                let data_offset = usize::from(t[12] >> 4) * 4;
                (data_offset >= TCP_HEADER_LEN && data_offset <= l4.len(), TcpFlags::from_bits_retain(t[13]))
            }
            None => (false, TcpFlags::empty()),
        }
    } else {
        // UdpPacket::new_checked's; but a first fragment's UDP length counts the whole
        // datagram, beyond this fragment.
        let ok = l4.first_chunk::<UDP_HEADER_LEN>().is_some_and(|u| {
            let udp_len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            udp_len >= UDP_HEADER_LEN && (udp_len <= l4.len() || flags_frag & FLAG_MF != 0)
        });
        (ok, TcpFlags::empty())
    };
    if !ports_ok {
        return Err(XlateError::Malformed);
    }
    let tuple = Tuple4 {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        sport: u16::from_be_bytes([l4[0], l4[1]]),
        dport: u16::from_be_bytes([l4[2], l4[3]]),
        proto,
    };
    // header_len <= 60 and total_len came from a u16.
    Ok(Parsed4 { tuple, tcp_flags, l4_at: header_len as u8, end: total_len as u16 })
}

/// Rewrites the addresses and ports of a TCP or UDP packet in place and decrements its TTL:
/// we are a router hop. A TTL of 0 or 1 on arrival gives `TtlExpired`. The IP and TCP/UDP
/// checksums are patched for every changed field, the addresses counting for the L4 checksum
/// through the pseudo-header. A UDP checksum of 0 ("none") stays 0; a patched UDP checksum of 0
/// is written 0xffff.
pub fn rewrite_v4(packet: &mut [u8], new: &Rewrite4) -> Result<(), XlateError> {
    let parsed = parse_v4(packet)?;
    rewrite_parsed_v4(packet, &parsed, new)
}

/// [`rewrite_v4`] of a packet `parse_v4` accepted as `parsed` and that has not changed since:
/// only the TTL is left to check. (Given another packet it may panic or write nonsense, but
/// only inside `packet`.)
#[inline(always)]
pub fn rewrite_parsed_v4(packet: &mut [u8], parsed: &Parsed4, new: &Rewrite4) -> Result<(), XlateError> {
    let (ip, l4) = packet[..usize::from(parsed.end)].split_at_mut(usize::from(parsed.l4_at));
    // The addresses' change counts in the L4 checksum too (pseudo-header): summed once.
    let addrs = forward_ip_header(ip, new.src, new.dst)?;
    set_ports(l4, parsed.tuple.proto, addrs, new);
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
    Some(Tuple4 { src: quoted.src_addr(), dst: quoted.dst_addr(), sport, dport, proto: layout.quoted_proto })
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

    write_tcp_segment_v4(packet, us, peer, our_port, peer_port, seq, ack, reset_flags, 0, &[])
}

/// Writes a whole TCP segment this box originates over `packet` (at least its length: a bare
/// header plus `options`), TTL [`RESET_TTL`], DF set: IPv4 `src -> dst`, TCP with `flags` and
/// `options` (already padded to a multiple of 4 bytes, at most 40). Checksums computed from
/// scratch.
#[allow(clippy::too_many_arguments)]
fn write_tcp_segment_v4(
    packet: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    window: u16,
    options: &[u8],
) -> Result<usize, XlateError> {
    let len = RESET_LEN + options.len();
    if packet.len() < len || !options.len().is_multiple_of(4) || options.len() > 40 {
        return Err(XlateError::Unsupported);
    }
    let (ip_header, tcp_header) = packet[..len].split_at_mut(IPV4_HEADER_LEN);
    // Written field by field into fixed offsets, checksums summed once each: a segment this
    // box sends per SYN under a flood (the SYN proxy's SYN-ACK).
    let ip_header: &mut [u8; IPV4_HEADER_LEN] = ip_header.try_into().expect("split at the header length");
    let total_len = (len as u16).to_be_bytes();
    // Version 4, header length 5 words; DF; no options.
    *ip_header = [
        0x45,
        0,
        total_len[0],
        total_len[1],
        0,
        0,
        0x40,
        0,
        RESET_TTL,
        IpProtocol::TCP.0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    ip_header[12..16].copy_from_slice(&src.octets());
    ip_header[16..20].copy_from_slice(&dst.octets());
    let ip_checksum = checksum::ipv4_header_checksum(ip_header);
    ip_header[10..12].copy_from_slice(&ip_checksum);
    let tcp_len = len - IPV4_HEADER_LEN;
    let (fixed, opts) = tcp_header.split_at_mut(TCP_HEADER_LEN);
    fixed[0..2].copy_from_slice(&sport.to_be_bytes());
    fixed[2..4].copy_from_slice(&dport.to_be_bytes());
    fixed[4..8].copy_from_slice(&seq.to_be_bytes());
    fixed[8..12].copy_from_slice(&ack.to_be_bytes());
    fixed[12] = ((tcp_len / 4) as u8) << 4;
    fixed[13] = flags.bits();
    fixed[14..16].copy_from_slice(&window.to_be_bytes());
    fixed[16..20].fill(0);
    opts.copy_from_slice(options);
    let sum = checksum::pseudo_header_v4(src, dst, IpProtocol::TCP.0, tcp_len as u32) + checksum::sum(tcp_header);
    tcp_header[16..18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    Ok(len)
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
    let parsed = parse_v4(packet)?;
    Ok(TransportLayout { l4_at: usize::from(parsed.l4_at), end: usize::from(parsed.end), proto: parsed.tuple.proto })
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

// Checksum patches (RFC 1624 eqn. 3) are summed in native byte order, which a one's-complement
// sum does not care about (RFC 1071 section 2(B)): no byte swaps. Fields are read with
// `from_ne_bytes` and patched checksums written with `to_ne_bytes`.

/// RFC 1624 eqn. 3 for several changed fields at once: `delta` is the sum, over the changed
/// 16-bit words, of `!old + new`. Patching once with the sum of the changes gives the same
/// checksum as patching field by field (every sum involved is positive, so each fold picks the
/// same representative), with one fold instead of one per field.
#[inline(always)]
fn patch(csum: u16, delta: u32) -> u16 {
    !fold(u32::from(!csum) + delta)
}

/// `!old + new` over the words of two addresses changing (source and destination): their
/// share of a patch, in the IP header and in the pseudo-header. At most 0x1fffe.
#[inline(always)]
fn addrs_delta(old_src: [u8; 4], old_dst: [u8; 4], src: Ipv4Addr, dst: Ipv4Addr) -> u32 {
    let ne = |a: [u8; 4]| u64::from(u32::from_ne_bytes(a));
    // Four 32-bit values; 2^32 = 2^16 = 1 modulo 0xffff, so folding keeps the sum's class.
    let s = (ne(old_src) ^ 0xffff_ffff) + (ne(old_dst) ^ 0xffff_ffff) + ne(src.octets()) + ne(dst.octets());
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    ((s >> 16) + (s & 0xffff)) as u32
}

/// Moves an IPv4 header one hop on with new addresses: TTL decremented, header checksum
/// patched. Returns the addresses' `addrs_delta`, for the L4 checksum. Writes nothing when the
/// TTL has expired.
#[inline(always)]
fn forward_ip_header(packet: &mut [u8], src: Ipv4Addr, dst: Ipv4Addr) -> Result<u32, XlateError> {
    let h: &mut [u8; IPV4_HEADER_LEN] = packet.first_chunk_mut().ok_or(XlateError::Malformed)?;
    let ttl = h[8];
    if ttl <= 1 {
        return Err(XlateError::TtlExpired);
    }
    let addrs = addrs_delta([h[12], h[13], h[14], h[15]], [h[16], h[17], h[18], h[19]], src, dst);
    // TTL shares its 16-bit word with the protocol: one less in its first byte takes
    // `from_ne_bytes([1, 0])` off the word, whatever the two bytes were (RFC 1624: the patch
    // is !old + new, here the constant !from_ne_bytes([1, 0])).
    let ttl_delta = u32::from(!u16::from_ne_bytes([1, 0]));
    let sum = patch(u16::from_ne_bytes([h[10], h[11]]), addrs + ttl_delta);
    h[8] = ttl - 1;
    h[10..12].copy_from_slice(&sum.to_ne_bytes());
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    Ok(addrs)
}

/// Sets the ports of a TCP/UDP header and patches its checksum for them and for the
/// pseudo-header's addresses changing from `old_src`/`old_dst` to `new`'s. `l4` may be a quote
/// cut short: a TCP checksum past its end is left alone.
fn rewrite_transport(l4: &mut [u8], proto: IpProtocol, old_src: Ipv4Addr, old_dst: Ipv4Addr, new: &Rewrite4) {
    set_ports(l4, proto, addrs_delta(old_src.octets(), old_dst.octets(), new.src, new.dst), new);
}

/// `rewrite_transport` with the addresses' share of the patch given (`addrs_delta`). `l4`
/// holds at least a UDP header's 8 bytes (every caller checked that).
#[inline(always)]
fn set_ports(l4: &mut [u8], proto: IpProtocol, addrs_delta: u32, new: &Rewrite4) {
    let Some(ports) = l4.first_chunk_mut::<UDP_HEADER_LEN>() else { return };
    let (old_sport, old_dport) = (u16::from_ne_bytes([ports[0], ports[1]]), u16::from_ne_bytes([ports[2], ports[3]]));
    let (sport, dport) = (new.sport.to_be_bytes(), new.dport.to_be_bytes());
    ports[0..2].copy_from_slice(&sport);
    ports[2..4].copy_from_slice(&dport);
    let delta = addrs_delta
        + u32::from(!old_sport)
        + u32::from(u16::from_ne_bytes(sport))
        + u32::from(!old_dport)
        + u32::from(u16::from_ne_bytes(dport));
    if proto == IpProtocol::TCP {
        if let Some(tcp) = l4.first_chunk_mut::<TCP_THROUGH_CHECKSUM>() {
            let sum = patch(u16::from_ne_bytes([tcp[16], tcp[17]]), delta);
            tcp[16..18].copy_from_slice(&sum.to_ne_bytes());
        }
    } else {
        // 0 means the sender computed none. A patched sum of 0 is sent as 0xffff, its other
        // one's-complement form (RFC 768); both read the same in either byte order.
        let old = u16::from_ne_bytes([ports[6], ports[7]]);
        if old != 0 {
            let sum = patch(old, delta);
            ports[6..8].copy_from_slice(&if sum == 0 { 0xffff_u16 } else { sum }.to_ne_bytes());
        }
    }
}
