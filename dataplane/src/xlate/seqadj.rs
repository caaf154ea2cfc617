//! The SYN proxy's packet work, on IPv4 packets (from the IP header): SYN cookies, the
//! segments ferrovs builds in the client's and the backend's handshakes, and the sequence
//! shift of a proxied connection's packets afterwards.
//!
//! The client's handshake is answered with our initial sequence number, a SYN cookie; the
//! backend picks its own. `delta = backend ISN - cookie`, and for the rest of the connection
//! backend -> client packets get `seq -= delta`, client -> backend packets `ack += delta` and
//! their SACK blocks `+= delta` (each checksum patched incrementally).
//!
//! The cookie is Linux's (net/ipv4/syncookies.c): `H0(tuple) + client ISN + (count << 24) +
//! ((H1(tuple, count) + mss index) & 0xffffff)`, `count` the minute, valid for two minutes,
//! H a keyed SipHash-2-4 with a secret drawn at boot. Only the MSS is encoded: the SYN-ACK
//! offers no window scaling, SACK or timestamps, so the client uses none of them with us and
//! the backend, asked with a SYN carrying only the MSS, none either (see README, Defence).

use std::net::Ipv4Addr;

use super::{write_tcp_segment_v4, XlateError, IPV4_HEADER_LEN, TCP_HEADER_LEN};
use crate::wire::checksum::update_u32;
use crate::wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpPacket};

/// MSS values a cookie can say (Linux's table): the client's MSS is rounded down to one.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// A cookie is good for the minute it was made in and the next one (Linux: MAX_SYNCOOKIE_AGE).
const MAX_COOKIE_AGE: u32 = 2;
/// A minute, the cookie's clock tick.
pub const COOKIE_TICK_MS: u64 = 60_000;
/// Our SYN-ACK and SYN: IPv4 header, TCP header and one MSS option.
pub const SYN_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN + 4;
/// The ACK we send the backend: bare headers.
pub const ACK_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN;
/// TCP option kinds.
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
pub(super) const OPT_MSS: u8 = 2;
const OPT_SACK: u8 = 5;

/// Who a cookie is for: the client's side of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieTuple {
    pub client: Ipv4Addr,
    pub vip: Ipv4Addr,
    pub cport: u16,
    pub vport: u16,
}

/// SipHash-2-4 of three words.
fn siphash(key: &[u64; 2], words: [u64; 3]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    // Three full words and the length byte in a fourth.
    for m in words.into_iter().chain(std::iter::once(24u64 << 56)) {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn cookie_hash(secret: &[u64; 2], t: &CookieTuple, count: u32, c: u64) -> u32 {
    let addrs = u64::from(u32::from(t.client)) << 32 | u64::from(u32::from(t.vip));
    let ports = u64::from(t.cport) << 16 | u64::from(t.vport);
    siphash(secret, [addrs, ports, u64::from(count) << 1 | c]) as u32
}

/// The index in [`MSS_TABLE`] of the largest MSS not above the client's (536 when it sent none).
pub fn mss_index(client_mss: Option<u16>) -> u32 {
    let mss = client_mss.unwrap_or(536);
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// The cookie for a client's SYN with sequence number `isn`, made in minute `count`.
pub fn make_cookie(secret: &[u64; 2], t: &CookieTuple, isn: u32, count: u32, mss_index: u32) -> u32 {
    cookie_hash(secret, t, 0, 0)
        .wrapping_add(isn)
        .wrapping_add(count << COOKIE_BITS)
        .wrapping_add(cookie_hash(secret, t, count, 1).wrapping_add(mss_index) & COOKIE_MASK)
}

/// The MSS a cookie encodes, when it is one we made for this tuple and this client ISN less
/// than two minutes ago (`count` is now's minute).
pub fn check_cookie(secret: &[u64; 2], t: &CookieTuple, isn: u32, cookie: u32, count: u32) -> Option<u16> {
    let rest = cookie.wrapping_sub(cookie_hash(secret, t, 0, 0)).wrapping_sub(isn);
    let age = count.wrapping_sub(rest >> COOKIE_BITS) & (u32::MAX >> COOKIE_BITS);
    if age >= MAX_COOKIE_AGE {
        return None;
    }
    let index = rest.wrapping_sub(cookie_hash(secret, t, count.wrapping_sub(age), 1)) & COOKIE_MASK;
    MSS_TABLE.get(index as usize).copied()
}

/// The TCP segment of a checked IPv4 packet: (header offset, packet end).
fn tcp_layout(packet: &[u8]) -> Result<(usize, usize), XlateError> {
    let parsed = super::parse_v4(packet)?;
    let ip = Ipv4Packet::new_unchecked(packet);
    if parsed.tuple.proto != IpProtocol::TCP || ip.is_fragment() {
        return Err(XlateError::Unsupported);
    }
    Ok((parsed.header_len(), parsed.total_len()))
}

/// The MSS option of a TCP segment's options, if any.
pub fn syn_mss(packet: &[u8]) -> Option<u16> {
    let (at, end) = tcp_layout(packet).ok()?;
    let segment = TcpPacket::new_unchecked(&packet[at..end]);
    let opts = segment.options();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_END => break,
            OPT_NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == OPT_MSS && len == 4 {
                    return Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]]));
                }
                i += len;
            }
        }
    }
    None
}

/// Turns a client's SYN into our SYN-ACK back to it, with `cookie` as our sequence number and
/// `mss` as the MSS we offer. Returns the new length ([`SYN_LEN`]; `packet` must hold it).
pub fn syn_ack_v4(packet: &mut [u8], cookie: u32, mss: u16) -> Result<usize, XlateError> {
    let (at, end) = tcp_layout(packet)?;
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (client, vip) = (ip.src_addr(), ip.dst_addr());
    let syn = TcpPacket::new_unchecked(&packet[at..end]);
    if syn.flags() & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST) != TcpFlags::SYN {
        return Err(XlateError::Unsupported);
    }
    let (cport, vport, isn) = (syn.src_port(), syn.dst_port(), syn.seq_number());
    let flags = TcpFlags::SYN | TcpFlags::ACK;
    write_tcp_segment_v4(packet, vip, client, vport, cport, cookie, isn.wrapping_add(1), flags, 65535, Some(mss))
}

/// Turns the client's ACK that completed our handshake into the SYN that opens the
/// connection to the backend, still client -> VIP (the connection's rewrite follows): the
/// client's ISN, its window, the MSS the cookie said; any payload is dropped (the client sends
/// it again). Returns the new length ([`SYN_LEN`]).
pub fn syn_from_ack_v4(packet: &mut [u8], mss: u16) -> Result<usize, XlateError> {
    let (at, end) = tcp_layout(packet)?;
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (client, vip) = (ip.src_addr(), ip.dst_addr());
    let ack = TcpPacket::new_unchecked(&packet[at..end]);
    let (cport, vport, window) = (ack.src_port(), ack.dst_port(), ack.window());
    let isn = ack.seq_number().wrapping_sub(1);
    write_tcp_segment_v4(packet, client, vip, cport, vport, isn, 0, TcpFlags::SYN, window, Some(mss))
}

/// Turns the backend's SYN-ACK into the ACK that completes its handshake, written as the
/// client's packet (`client -> vip`, the connection's rewrite follows): `seq` the client's
/// ISN plus one (the SYN-ACK's ack), `ack` the backend's ISN plus one. Returns (new length
/// [`ACK_LEN`], the backend's ISN).
pub fn ack_from_syn_ack_v4(
    packet: &mut [u8],
    client: Ipv4Addr,
    vip: Ipv4Addr,
    cport: u16,
    vport: u16,
) -> Result<(usize, u32), XlateError> {
    let (at, end) = tcp_layout(packet)?;
    let synack = TcpPacket::new_unchecked(&packet[at..end]);
    if synack.flags() & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST) != TcpFlags::SYN | TcpFlags::ACK {
        return Err(XlateError::Unsupported);
    }
    let (backend_isn, seq) = (synack.seq_number(), synack.ack_number());
    let len = write_tcp_segment_v4(
        packet,
        client,
        vip,
        cport,
        vport,
        seq,
        backend_isn.wrapping_add(1),
        TcpFlags::ACK,
        65535,
        None,
    )?;
    Ok((len, backend_isn))
}

/// Reads the 32-bit word at `at`, stores `f(word)` and patches the TCP checksum (at `csum`).
fn patch_u32(seg: &mut [u8], at: usize, csum: usize, f: impl FnOnce(u32) -> u32) {
    let old = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]);
    let new = f(old);
    seg[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let c = u16::from_be_bytes([seg[csum], seg[csum + 1]]);
    seg[csum..csum + 2].copy_from_slice(&update_u32(c, old, new).to_be_bytes());
}

const SEQ_AT: usize = 4;
const ACK_AT: usize = 8;
const CSUM_AT: usize = 16;

/// A client -> backend packet of a proxied connection (`l4_at`: the IPv4 header length, `end`
/// the total length, as `parse_v4` found them): `ack += delta` when it acknowledges, and
/// every SACK block's edges `+= delta`. Malformed options are left alone (the backend's
/// stack ignores them as it would have).
pub fn to_backend(packet: &mut [u8], l4_at: usize, end: usize, delta: u32) {
    let Some(seg) = packet.get_mut(l4_at..end) else { return };
    if seg.len() < TCP_HEADER_LEN {
        return;
    }
    if seg[13] & TcpFlags::ACK.bits() != 0 {
        patch_u32(seg, ACK_AT, CSUM_AT, |a| a.wrapping_add(delta));
    }
    let header_len = usize::from(seg[12] >> 4) * 4;
    if header_len <= TCP_HEADER_LEN || header_len > seg.len() {
        return;
    }
    let mut i = TCP_HEADER_LEN;
    while i < header_len {
        match seg[i] {
            OPT_END => break,
            OPT_NOP => i += 1,
            kind => {
                let Some(&len) = seg.get(i + 1) else { return };
                let len = usize::from(len);
                if len < 2 || i + len > header_len {
                    return;
                }
                if kind == OPT_SACK {
                    // Blocks of two edges, at i + 2 + 8k; they may sit at odd offsets, which
                    // the incremental update cannot patch: recompute from the whole sum then.
                    let blocks = (len - 2) / 8;
                    for k in 0..blocks * 2 {
                        let at = i + 2 + 4 * k;
                        if at.is_multiple_of(2) {
                            patch_u32(seg, at, CSUM_AT, |e| e.wrapping_add(delta));
                        } else {
                            patch_odd_u32(seg, at, delta);
                        }
                    }
                }
                i += len;
            }
        }
    }
}

/// `patch_u32` for a word at an odd offset: the checksum sums 16-bit words at even offsets,
/// so the word's bytes straddle three of them; the difference is taken over those.
fn patch_odd_u32(seg: &mut [u8], at: usize, delta: u32) {
    let (from, to) = (at - 1, at + 5);
    let mut old = [0u8; 6];
    old.copy_from_slice(&seg[from..to]);
    let word = u32::from_be_bytes([seg[at], seg[at + 1], seg[at + 2], seg[at + 3]]).wrapping_add(delta);
    seg[at..at + 4].copy_from_slice(&word.to_be_bytes());
    let c = u16::from_be_bytes([seg[CSUM_AT], seg[CSUM_AT + 1]]);
    let c = crate::wire::checksum::update_bytes(c, &old, &seg[from..to]);
    seg[CSUM_AT..CSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
}

/// A backend -> client packet of a proxied connection: `seq -= delta`.
pub fn to_client(packet: &mut [u8], l4_at: usize, end: usize, delta: u32) {
    let Some(seg) = packet.get_mut(l4_at..end) else { return };
    if seg.len() < TCP_HEADER_LEN {
        return;
    }
    patch_u32(seg, SEQ_AT, CSUM_AT, |s| s.wrapping_sub(delta));
}

#[cfg(test)]
#[path = "seqadj_tests.rs"]
mod tests;
