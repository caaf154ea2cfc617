//! The client's address for FullNAT backends (a FullNAT backend sees only our local
//! address): the PROXY protocol header (v1 text or v2 binary, haproxy's spec) at the start of
//! the connection's stream toward the backend, or the TOA TCP option (LVS/DPVS: kind 254,
//! port and address) on its first segments.
//!
//! The PROXY header is `len` bytes the client never sent, placed at the client's sequence
//! number ISN + 1 in the backend's stream. Every client -> backend segment after it has
//! `seq += len`; every backend -> client segment has `ack -= len` and its SACK edges
//! `-= len` (an acknowledgement inside the header becomes ISN + 1: nothing of the client's
//! yet). The segment that starts at ISN + 1 while the backend has not acknowledged the
//! header carries it: the handshake-completing ACK (so a server that speaks first gets it at
//! once), the client's first data segment, and any retransmission of them, each time with the
//! same bytes at the same sequence number, so a lost header is sent again exactly as the
//! client retransmits. The backend's SYN-ACK MSS is lowered by `len` so that a full-sized
//! first segment still fits with the header; should it not (a smaller MTU toward the
//! backend, no room in the buffer), the header goes alone and the client's payload is
//! dropped (it is sent again, after the backend's ACK of the header shows nothing of it).
//!
//! The shifts are `seqadj::to_client`/`seqadj::to_backend` (the SYN proxy's) with the
//! delta negated: the PROXY header moves the client's sequence space where the SYN proxy
//! moves the backend's, so on a connection that has both, each field gets one of the two.
//!
//! Everything here works from the IP header (IPv4, or IPv6 without extension headers) and
//! the TCP header's offset in it, so one code serves IPv4, IPv6 and NAT64 (where the header
//! names the client's IPv6 addresses, whatever family the backend speaks).

use std::net::IpAddr;

use super::{seqadj, XlateError, TCP_HEADER_LEN};
use crate::wire::checksum::{fold, sum, update_bytes, update_u16, update_u32};
use crate::wire::tcp::{next_option, OPT_MSS};
use crate::wire::TcpFlags;

/// How a service tells its backends the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ClientAddr {
    #[default]
    Off,
    /// The PROXY protocol v1 line (`PROXY TCP4 client vip cport vport\r\n`).
    ProxyV1,
    /// The PROXY protocol v2 binary header (signature, PROXY command, TCP over IPv4/IPv6).
    ProxyV2,
    /// The TOA TCP option (kind 254: port and IPv4 address, length 8; IPv6, length 20).
    Toa,
}

impl ClientAddr {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAddr::Off => "off",
            ClientAddr::ProxyV1 => "proxy_v1",
            ClientAddr::ProxyV2 => "proxy_v2",
            ClientAddr::Toa => "toa",
        }
    }

    /// A PROXY protocol header (bytes in the stream), not an option.
    #[inline]
    pub fn in_stream(self) -> bool {
        matches!(self, ClientAddr::ProxyV1 | ClientAddr::ProxyV2)
    }
}

/// The connection as the client made it: what the header tells the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub client: IpAddr,
    pub vip: IpAddr,
    pub cport: u16,
    pub vport: u16,
}

/// The longest header: a v1 line between two IPv6 addresses of 39 characters (104 bytes;
/// the spec's limit is 107).
pub const MAX_LEN: usize = 108;
/// The PROXY protocol v2 signature.
pub const V2_SIGNATURE: [u8; 12] = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
/// TOA's option kind (LVS, DPVS).
pub const TOA_KIND: u8 = 254;
/// TCP options may take at most 40 bytes (data offset 15).
const MAX_TCP_HEADER_LEN: usize = 60;
/// Linux's TCP_MIN_MSS: the MSS is never lowered below it.
const MIN_MSS: u16 = 88;

/// Writes the header (PROXY v1/v2 line or TOA option) for `ep` into `buf`; returns its
/// length, 0 for `Off`.
pub fn write_header(kind: ClientAddr, ep: &Endpoints, buf: &mut [u8; MAX_LEN]) -> usize {
    match kind {
        ClientAddr::Off => 0,
        ClientAddr::ProxyV1 => write_v1(ep, buf),
        ClientAddr::ProxyV2 => write_v2(ep, buf),
        ClientAddr::Toa => write_toa(ep, buf),
    }
}

fn write_v1(ep: &Endpoints, buf: &mut [u8; MAX_LEN]) -> usize {
    use std::io::Write;
    let family = if ep.client.is_ipv4() { "TCP4" } else { "TCP6" };
    let mut w = &mut buf[..];
    // At most 104 bytes into 108: formatting into a slice neither allocates nor fails here.
    let _ = write!(w, "PROXY {family} {} {} {} {}\r\n", ep.client, ep.vip, ep.cport, ep.vport);
    let left = w.len();
    MAX_LEN - left
}

fn write_v2(ep: &Endpoints, buf: &mut [u8; MAX_LEN]) -> usize {
    buf[..12].copy_from_slice(&V2_SIGNATURE);
    // Version 2, command PROXY.
    buf[12] = 0x21;
    let at = match (ep.client, ep.vip) {
        (IpAddr::V4(c), IpAddr::V4(v)) => {
            // TCP over IPv4, 12 bytes of addresses.
            buf[13] = 0x11;
            buf[14..16].copy_from_slice(&12u16.to_be_bytes());
            buf[16..20].copy_from_slice(&c.octets());
            buf[20..24].copy_from_slice(&v.octets());
            24
        }
        (c, v) => {
            // TCP over IPv6, 36 bytes (an IPv4 VIP of an IPv6 client cannot happen; mapped).
            buf[13] = 0x21;
            buf[14..16].copy_from_slice(&36u16.to_be_bytes());
            buf[16..32].copy_from_slice(&to_v6(c).octets());
            buf[32..48].copy_from_slice(&to_v6(v).octets());
            48
        }
    };
    buf[at..at + 2].copy_from_slice(&ep.cport.to_be_bytes());
    buf[at + 2..at + 4].copy_from_slice(&ep.vport.to_be_bytes());
    at + 4
}

fn to_v6(a: IpAddr) -> std::net::Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn write_toa(ep: &Endpoints, buf: &mut [u8; MAX_LEN]) -> usize {
    buf[0] = TOA_KIND;
    buf[2..4].copy_from_slice(&ep.cport.to_be_bytes());
    match ep.client {
        IpAddr::V4(c) => {
            buf[1] = 8;
            buf[4..8].copy_from_slice(&c.octets());
            8
        }
        IpAddr::V6(c) => {
            buf[1] = 20;
            buf[4..20].copy_from_slice(&c.octets());
            20
        }
    }
}

/// A connection's client-address state (8 bytes, kept per connection slot by the core).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shift {
    /// The client's initial sequence number: the header sits at ISN + 1.
    pub isn: u32,
    /// The header's length (PROXY: bytes added to the client's stream; TOA: the option's).
    pub len: u8,
    pub kind: ClientAddr,
    /// The backend acknowledged the header (PROXY) or a byte of the client's (TOA): the
    /// header is no longer sent.
    pub acked: bool,
    /// The connection is SYN-proxied too (its backend sequence numbers shift as well).
    pub syn_proxied: bool,
}

impl Shift {
    pub fn new(kind: ClientAddr, isn: u32, ep: &Endpoints, syn_proxied: bool) -> Shift {
        let mut buf = [0u8; MAX_LEN];
        let len = write_header(kind, ep, &mut buf) as u8;
        Shift { isn, len, kind, acked: false, syn_proxied }
    }

    /// Bytes the header adds to the client's sequence space (0 for TOA, an option).
    #[inline]
    pub fn stream_len(&self) -> u32 {
        if self.kind.in_stream() {
            u32::from(self.len)
        } else {
            0
        }
    }
}

/// What `client_segment` did to a client -> backend segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToBackend {
    /// Nothing to do (a SYN; TOA after the first segments).
    Unchanged,
    /// Its sequence number moved past the header.
    Shifted,
    /// The header (or TOA option) was inserted: the packet now ends here.
    Inserted(usize),
    /// The segment would not fit with the header: the header went alone, the client's
    /// payload (and FIN) dropped, to come again. The packet now ends here.
    HeaderAlone(usize),
    /// TOA only: no option space (40 bytes of options), or no room in the MTU or buffer:
    /// sent without.
    NoRoom,
    /// PROXY only: a SYN carrying data (TCP Fast Open) lost its data, which would reach the
    /// backend ahead of the header; the client sends it again once the SYN-ACK acknowledges
    /// only the SYN. The packet now ends here.
    SynTrimmed(usize),
}

/// The TCP header's flags, sequence number and header length, when the segment holds them.
fn tcp_fields(packet: &[u8], l4_at: usize, end: usize) -> Result<(u8, u32, usize), XlateError> {
    let seg = packet.get(l4_at..end).ok_or(XlateError::Malformed)?;
    if seg.len() < TCP_HEADER_LEN {
        return Err(XlateError::Malformed);
    }
    let header_len = usize::from(seg[12] >> 4) * 4;
    if !(TCP_HEADER_LEN..=seg.len()).contains(&header_len) {
        return Err(XlateError::Malformed);
    }
    Ok((seg[13], u32::from_be_bytes([seg[4], seg[5], seg[6], seg[7]]), header_len))
}

/// A client -> backend segment of a connection with `shift` (the packet from its IP header,
/// TCP at `l4_at`, the IP packet ending at `end`; `room`: the largest the IP packet may grow
/// to, at most `packet.len()`). Inserts the header where the segment starts at ISN + 1 and
/// the backend has not acknowledged it; shifts the sequence number of the others (PROXY).
/// Lengths and checksums (IPv4 header, TCP) are fixed. On `Err` nothing was written.
pub fn client_segment(
    packet: &mut [u8],
    l4_at: usize,
    end: usize,
    room: usize,
    shift: &Shift,
    ep: &Endpoints,
) -> Result<ToBackend, XlateError> {
    let (flags, seq, header_len) = tcp_fields(packet, l4_at, end)?;
    if flags & TcpFlags::SYN.bits() != 0 {
        return syn_segment(packet, l4_at, end, shift);
    }
    if shift.kind == ClientAddr::Off {
        return Ok(ToBackend::Unchanged);
    }
    let at_header = seq == shift.isn.wrapping_add(1) && !shift.acked;
    let reset = flags & TcpFlags::RST.bits() != 0;
    if !at_header || reset {
        // A RST at ISN + 1 before the header was acknowledged keeps its sequence number: the
        // backend may not have the header yet.
        if shift.kind.in_stream() && !at_header {
            seqadj::to_client(packet, l4_at, end, shift.stream_len().wrapping_neg());
            return Ok(ToBackend::Shifted);
        }
        return Ok(ToBackend::Unchanged);
    }
    let mut header = [0u8; MAX_LEN];
    let n = write_header(shift.kind, ep, &mut header);
    let room = room.min(packet.len());
    if shift.kind == ClientAddr::Toa {
        if header_len + n > MAX_TCP_HEADER_LEN || end + n > room {
            return Ok(ToBackend::NoRoom);
        }
        // First among the options: anything after an end-of-options would be ignored.
        let at = l4_at + TCP_HEADER_LEN;
        let new_end = insert(packet, l4_at, end, at, &header[..n], true)?;
        return Ok(ToBackend::Inserted(new_end));
    }
    let payload_at = l4_at + header_len;
    if end + n <= room {
        return Ok(ToBackend::Inserted(insert(packet, l4_at, end, payload_at, &header[..n], false)?));
    }
    if payload_at + n > room {
        return Err(XlateError::Unsupported);
    }
    // The header alone: the payload (and a FIN after it) come again from the client.
    let seg = &mut packet[l4_at..end];
    let old = u16::from_be_bytes([seg[12], seg[13]]);
    seg[13] &= !TcpFlags::FIN.bits();
    let new = u16::from_be_bytes([seg[12], seg[13]]);
    let c = update_u16(u16::from_be_bytes([seg[16], seg[17]]), old, new);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    set_ip_len(packet, l4_at, end, payload_at)?;
    let new_end = insert(packet, l4_at, payload_at, payload_at, &header[..n], false)?;
    Ok(ToBackend::HeaderAlone(new_end))
}

/// A client's SYN (the first, or a retransmission) of a connection with `shift`: left alone
/// (it precedes the header), but for the data of a TCP Fast Open SYN on a PROXY connection,
/// dropped (see [`ToBackend::SynTrimmed`]).
pub fn syn_segment(packet: &mut [u8], l4_at: usize, end: usize, shift: &Shift) -> Result<ToBackend, XlateError> {
    let (_, _, header_len) = tcp_fields(packet, l4_at, end)?;
    let payload_at = l4_at + header_len;
    if !shift.kind.in_stream() || end == payload_at {
        return Ok(ToBackend::Unchanged);
    }
    set_ip_len(packet, l4_at, end, payload_at)?;
    tcp_checksum(packet, l4_at, payload_at);
    Ok(ToBackend::SynTrimmed(payload_at))
}

/// A backend -> client segment of a connection with `shift`: its acknowledgement and SACK
/// edges move back over the header (PROXY), the SYN-ACK's MSS is lowered by the header's
/// length, and `shift.acked` is set once the backend acknowledges the header (TOA: a byte of
/// the client's). Returns whether `shift` changed.
pub fn backend_segment(packet: &mut [u8], l4_at: usize, end: usize, shift: &mut Shift) -> Result<bool, XlateError> {
    let (flags, _, header_len) = tcp_fields(packet, l4_at, end)?;
    let was = shift.acked;
    let has_ack = flags & TcpFlags::ACK.bits() != 0;
    let seg = &mut packet[l4_at..end];
    let first = shift.isn.wrapping_add(1);
    let ack = u32::from_be_bytes([seg[8], seg[9], seg[10], seg[11]]);
    let past = ack.wrapping_sub(first);
    let len = shift.stream_len();
    // Acknowledges the header (at least one byte of the client's, for TOA), and not from
    // before ISN + 1.
    if has_ack && past >= len.max(1) && past < 1 << 31 {
        shift.acked = true;
    }
    if len == 0 {
        return Ok(was != shift.acked);
    }
    if flags & (TcpFlags::SYN | TcpFlags::ACK).bits() == (TcpFlags::SYN | TcpFlags::ACK).bits() {
        lower_mss(seg, header_len, len as u16);
    }
    if has_ack && past < len {
        // Inside the header: nothing of the client's acknowledged yet (ISN + 1 once shifted).
        patch_word(seg, 8, first.wrapping_add(len));
    }
    seqadj::to_backend(packet, l4_at, end, len.wrapping_neg());
    Ok(was != shift.acked)
}

/// The MSS of a client's SYN-ACK lowered for a header of `len` bytes (never below 88).
#[inline]
pub fn mss_for_header(mss: u16, len: u32) -> u16 {
    mss.saturating_sub(len as u16).max(MIN_MSS)
}

/// Lowers the MSS option of a SYN-ACK (options within `header_len`) by `by`.
fn lower_mss(seg: &mut [u8], header_len: usize, by: u16) {
    let mut at = TCP_HEADER_LEN;
    while let Some(o) = next_option(seg, header_len, &mut at) {
        if o.kind == OPT_MSS && o.len == 4 {
            let mss = u16::from_be_bytes([seg[o.at + 2], seg[o.at + 3]]);
            let new = mss_for_header(mss, u32::from(by)).min(mss);
            patch_bytes(seg, o.at + 2, &new.to_be_bytes());
            return;
        }
    }
}

/// Writes the 32-bit word at `at` (even) and patches the TCP checksum.
fn patch_word(seg: &mut [u8], at: usize, new: u32) {
    let old = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
    seg[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let c = update_u32(u16::from_be_bytes([seg[16], seg[17]]), old, new);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Writes `new` at `at` (any alignment, within the TCP header) and patches the checksum
/// over the 16-bit words it touches.
fn patch_bytes(seg: &mut [u8], at: usize, new: &[u8]) {
    let from = at & !1;
    let to = (at + new.len() + 1) & !1;
    let mut old = [0u8; 8];
    let old = &mut old[..to - from];
    old.copy_from_slice(&seg[from..to]);
    seg[at..at + new.len()].copy_from_slice(new);
    let c = update_bytes(u16::from_be_bytes([seg[16], seg[17]]), old, &seg[from..to]);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

/// Sets the IP packet's length to `new_end` (IPv4 total length and header checksum; IPv6
/// payload length, the TCP header right after the fixed header).
fn set_ip_len(packet: &mut [u8], l4_at: usize, end: usize, new_end: usize) -> Result<(), XlateError> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let (old, new) = (end as u16, u16::try_from(new_end).map_err(|_| XlateError::Unsupported)?);
            packet[2..4].copy_from_slice(&new.to_be_bytes());
            let c = update_u16(u16::from_be_bytes([packet[10], packet[11]]), old, new);
            packet[10..12].copy_from_slice(&c.to_be_bytes());
            Ok(())
        }
        Some(6) if l4_at == 40 => {
            let len = u16::try_from(new_end - 40).map_err(|_| XlateError::Unsupported)?;
            packet[4..6].copy_from_slice(&len.to_be_bytes());
            Ok(())
        }
        _ => Err(XlateError::Unsupported),
    }
}

/// Inserts `bytes` at `at` (within the TCP segment at `l4_at`, which ends at `end`), moving
/// what follows; `option`: they are TCP options (the data offset grows, `bytes.len()` a
/// multiple of 4). Fixes the IP length and recomputes the TCP checksum (the bytes after `at`
/// move by an arbitrary count: a patch would need them summed anyway). Returns the new end.
fn insert(
    packet: &mut [u8],
    l4_at: usize,
    end: usize,
    at: usize,
    bytes: &[u8],
    option: bool,
) -> Result<usize, XlateError> {
    let n = bytes.len();
    let new_end = end + n;
    if new_end > packet.len() || !(l4_at + TCP_HEADER_LEN..=end).contains(&at) {
        return Err(XlateError::Unsupported);
    }
    set_ip_len(packet, l4_at, end, new_end)?;
    packet.copy_within(at..end, at + n);
    packet[at..at + n].copy_from_slice(bytes);
    if option {
        let words = (packet[l4_at + 12] >> 4) + (n / 4) as u8;
        packet[l4_at + 12] = words << 4 | (packet[l4_at + 12] & 0x0f);
    }
    tcp_checksum(packet, l4_at, new_end);
    Ok(new_end)
}

/// Recomputes the TCP checksum of the segment at `l4_at..end` from scratch (pseudo-header
/// from the IPv4 or IPv6 header).
fn tcp_checksum(packet: &mut [u8], l4_at: usize, end: usize) {
    let addrs = if packet[0] >> 4 == 4 { 12..20 } else { 8..40 };
    let len = (end - l4_at) as u32;
    packet[l4_at + 16..l4_at + 18].copy_from_slice(&[0, 0]);
    let s = sum(&packet[addrs]) + 6 + (len >> 16) + (len & 0xffff) + sum(&packet[l4_at..end]);
    let c = !fold(s);
    packet[l4_at + 16..l4_at + 18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
#[path = "clientaddr_tests.rs"]
mod tests;
