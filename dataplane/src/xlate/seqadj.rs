//! The SYN proxy's packet work, on IPv4 packets (from the IP header): SYN cookies, the
//! segments ferrovs builds in the client's and the backend's handshakes, and the sequence
//! shift of a proxied connection's packets afterwards.
//!
//! The client's handshake is answered with our initial sequence number, a SYN cookie; the
//! backend picks its own. `delta = backend ISN - cookie`, and for the rest of the connection
//! backend -> client packets get `seq -= delta`, client -> backend packets `ack += delta` and
//! their SACK blocks `+= delta` (each checksum patched incrementally).
//!
//! The cookie is Linux's (net/ipv4/syncookies.c), `H0 + client ISN + (count << 24) +
//! ((H1 + mss index) & 0xffffff)`, `count` the minute, valid for two minutes, with one change:
//! Linux's H0 hashes the tuple alone and H1 the tuple and the minute, two SipHash-2-4 calls per
//! SYN; here H0 and H1 are the two halves of one keyed SipHash-2-4 of the tuple and the minute
//! (secret drawn at boot), so a SYN costs one hash and a flood half as much, and an ACK tries
//! this minute's and the last (the cookie's top byte must also be the minute's low byte). The
//! sequence number keeps only the MSS.
//! As in Linux, a client that sends timestamps gets the rest in the low bits of our SYN-ACK's
//! TSval ([`cookie_tsval`]: its window scale in 4 bits, SACK-permitted in one), which it
//! echoes in the TSecr of its ACK; our SYN-ACK then offers SACK-permitted, timestamps and
//! window scale [`OUR_WSCALE`] back as the client asked. A client without timestamps gets an
//! MSS-only SYN-ACK (Linux clears the other options too: nowhere to keep them).
//!
//! The backend's SYN carries the client's MSS, window scale, SACK-permitted and timestamps
//! (TSval the one of the client's ACK), so the backend sees the client's options and clock.
//! Afterwards, besides the sequence shift, [`adjust_to_backend`] and [`adjust_to_client`]
//! translate what differs between the two handshakes ([`ProxyOpts`]):
//! - timestamps: the client knows our cookie TSval, the backend sends its own clock:
//!   `ts offset = backend's SYN-ACK TSval - cookie TSval`, TSval toward the client `-= offset`,
//!   TSecr toward the backend `+= offset` (nf_synproxy's `tsoff`);
//! - window scale: we offered the client [`OUR_WSCALE`], the backend picks its own. Linux's
//!   nf_synproxy does not translate (the SYNPROXY target's `--wscale` must be set to the
//!   backends' value); here the window field of backend -> client packets is rescaled,
//!   `(window << backend's scale) >> ours`, capped at 65535 and rounded down, so the client is
//!   never told more room than the backend gave. When the backend refuses window scaling the
//!   client's windows are scaled up for it the same way.

use std::net::Ipv4Addr;

use super::{write_tcp_segment_v4, XlateError, IPV4_HEADER_LEN, TCP_HEADER_LEN};
use crate::wire::checksum::update_u32;
use crate::wire::tcp::{next_option, OPT_MSS, OPT_NOP, OPT_SACK, OPT_SACK_PERMITTED, OPT_TIMESTAMPS, OPT_WSCALE};
use crate::wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpPacket};

/// MSS values a cookie can say (Linux's table): the client's MSS is rounded down to one.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];
const COOKIE_BITS: u32 = 24;
const COOKIE_MASK: u32 = (1 << COOKIE_BITS) - 1;
/// A cookie is good for the minute it was made in and the next one (Linux: MAX_SYNCOOKIE_AGE).
const MAX_COOKIE_AGE: u32 = 2;
/// A minute, the cookie's clock tick.
pub const COOKIE_TICK_MS: u64 = 60_000;
/// Our SYN-ACK and SYN at their longest: IPv4 header, TCP header and the MSS (4 bytes),
/// SACK-permitted and timestamps (12) and window scale (4) options.
pub const SYN_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN + 20;
/// The ACK we send the backend at its longest: headers and a timestamps option (12 bytes).
pub const ACK_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN + 12;
/// The window scale our SYN-ACK offers a client that asks for scaling (Linux's default with
/// the usual receive buffers): the window of backend -> client packets is rescaled to it.
pub const OUR_WSCALE: u8 = 7;
/// The largest window scale (RFC 7323).
const MAX_WSCALE: u8 = 14;
/// No window scaling (in [`ProxyOpts`]).
pub const NO_WSCALE: u8 = 0xff;
/// Low bits of a cookie TSval: the client's window scale (0xf: none), then SACK-permitted.
const TS_BITS: u32 = 6;
const TS_WSCALE_MASK: u32 = 0xf;
const TS_SACK: u32 = 1 << 4;

/// The TCP options of a SYN, SYN-ACK or ACK that matter to the proxy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOptions {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
}

/// What a SYN-proxied connection keeps besides its sequence word (8 bytes per connection).
/// Until the backend's SYN-ACK, `ts` is the TSval of our SYN-ACK (the cookie TSval, 0 without
/// timestamps); afterwards the timestamp offset (backend's clock - ours).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyOpts {
    pub ts: u32,
    /// The window field of the client's ACK, for the ACK that completes the backend's
    /// handshake.
    pub client_window: u16,
    /// The client's window scale, [`NO_WSCALE`] when scaling is off between it and us.
    pub client_wscale: u8,
    /// The backend's window scale, [`NO_WSCALE`] when scaling is off between it and us (or
    /// it has not answered yet).
    pub backend_wscale: u8,
}

impl ProxyOpts {
    /// Left and right shifts of a backend -> client window.
    fn client_shifts(&self) -> (u8, u8) {
        let left = if self.backend_wscale == NO_WSCALE { 0 } else { self.backend_wscale };
        let right = if self.client_wscale == NO_WSCALE { 0 } else { OUR_WSCALE };
        (left, right)
    }

    /// Left and right shifts of a client -> backend window: none while the backend scales
    /// as the client does, the client's scale when the backend refused scaling.
    fn backend_shifts(&self) -> (u8, u8) {
        if self.client_wscale == NO_WSCALE || self.backend_wscale != NO_WSCALE {
            (0, 0)
        } else {
            (self.client_wscale, 0)
        }
    }
}

/// A window field rescaled: `(window << left) >> right`, at most 65535.
fn rescale(window: u16, (left, right): (u8, u8)) -> u16 {
    ((u32::from(window) << left) >> right).min(0xffff) as u16
}

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

/// The keyed hash of a tuple and a minute: H0 in the low half, H1 in the high one.
fn cookie_hash(secret: &[u64; 2], t: &CookieTuple, count: u32) -> (u32, u32) {
    let addrs = u64::from(u32::from(t.client)) << 32 | u64::from(u32::from(t.vip));
    let ports = u64::from(t.cport) << 16 | u64::from(t.vport);
    let h = siphash(secret, [addrs, ports, u64::from(count)]);
    (h as u32, (h >> 32) as u32)
}

/// The index in [`MSS_TABLE`] of the largest MSS not above the client's (536 when it sent none).
pub fn mss_index(client_mss: Option<u16>) -> u32 {
    let mss = client_mss.unwrap_or(536);
    MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32
}

/// The cookie for a client's SYN with sequence number `isn`, made in minute `count`.
pub fn make_cookie(secret: &[u64; 2], t: &CookieTuple, isn: u32, count: u32, mss_index: u32) -> u32 {
    let (h0, h1) = cookie_hash(secret, t, count);
    h0.wrapping_add(isn).wrapping_add(count << COOKIE_BITS).wrapping_add(h1.wrapping_add(mss_index) & COOKIE_MASK)
}

/// The MSS a cookie encodes, when it is one we made for this tuple and this client ISN less
/// than two minutes ago (`count` is now's minute).
pub fn check_cookie(secret: &[u64; 2], t: &CookieTuple, isn: u32, cookie: u32, count: u32) -> Option<u16> {
    (0..MAX_COOKIE_AGE).find_map(|age| {
        let minute = count.wrapping_sub(age);
        let (h0, h1) = cookie_hash(secret, t, minute);
        let rest = cookie.wrapping_sub(h0).wrapping_sub(isn);
        if rest >> COOKIE_BITS != minute & (u32::MAX >> COOKIE_BITS) {
            return None;
        }
        MSS_TABLE.get((rest.wrapping_sub(h1) & COOKIE_MASK) as usize).copied()
    })
}

/// Our SYN-ACK's TSval for a client with timestamps (Linux's `cookie_init_timestamp`): the
/// millisecond clock with its low 6 bits replaced by the client's window scale (0xf: none)
/// and SACK-permitted, never ahead of the clock.
pub fn cookie_tsval(now_ms: u64, wscale: Option<u8>, sack_permitted: bool) -> u32 {
    let now = now_ms as u32;
    let mut bits = wscale.map_or(TS_WSCALE_MASK, |w| u32::from(w.min(MAX_WSCALE)));
    if sack_permitted {
        bits |= TS_SACK;
    }
    let ts = (now >> TS_BITS << TS_BITS) | bits;
    if ts > now {
        ts.wrapping_sub(1 << TS_BITS)
    } else {
        ts
    }
}

/// The client's window scale and SACK-permitted that a cookie TSval says (the TSecr of its
/// ACK). Four bits cannot say more than 14 but 15, which means none.
pub fn decode_cookie_tsval(tsecr: u32) -> (Option<u8>, bool) {
    let w = tsecr & TS_WSCALE_MASK;
    let wscale = (w != TS_WSCALE_MASK).then_some(w as u8);
    (wscale, tsecr & TS_SACK != 0)
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

/// The options of a checked IPv4 TCP packet that matter to the proxy. Malformed options
/// yield what was read before them.
pub fn syn_options(packet: &[u8]) -> SynOptions {
    match tcp_layout(packet) {
        Ok((at, end)) => syn_options_at(packet, at, end),
        Err(_) => SynOptions::default(),
    }
}

/// [`syn_options`] of a packet already parsed (`at`: the TCP header, `end`: the IP total
/// length, as `parse_v4` found them).
pub fn syn_options_at(packet: &[u8], at: usize, end: usize) -> SynOptions {
    let mut o = SynOptions::default();
    let Some(segment) = packet.get(at..end).filter(|s| s.len() >= TCP_HEADER_LEN) else { return o };
    // `options` is clamped to the segment.
    let segment = TcpPacket::new_unchecked(segment);
    let opts = segment.options();
    let word = |i: usize| u32::from_be_bytes([opts[i], opts[i + 1], opts[i + 2], opts[i + 3]]);
    let mut at = 0;
    while let Some(opt) = next_option(opts, opts.len(), &mut at) {
        let i = opt.at;
        match (opt.kind, opt.len) {
            (OPT_MSS, 4) => o.mss = Some(u16::from_be_bytes([opts[i + 2], opts[i + 3]])),
            (OPT_WSCALE, 3) => o.wscale = Some(opts[i + 2].min(MAX_WSCALE)),
            (OPT_SACK_PERMITTED, 2) => o.sack_permitted = true,
            (OPT_TIMESTAMPS, 10) => o.timestamps = Some((word(i + 2), word(i + 6))),
            _ => {}
        }
    }
    o
}

/// The MSS option of a TCP segment's options, if any.
pub fn syn_mss(packet: &[u8]) -> Option<u16> {
    syn_options(packet).mss
}

/// Options laid out as Linux lays out a SYN's: MSS, then SACK-permitted with timestamps (or
/// NOP NOP before timestamps, or NOP NOP before SACK-permitted alone), then NOP and window
/// scale. Returns the buffer and its used length (a multiple of 4).
fn build_options(o: &SynOptions) -> ([u8; 20], usize) {
    let mut b = [0u8; 20];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        b[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if let Some(mss) = o.mss {
        let m = mss.to_be_bytes();
        put(&[OPT_MSS, 4, m[0], m[1]]);
    }
    match (o.timestamps, o.sack_permitted) {
        (Some((val, ecr)), sack) => {
            put(&if sack { [OPT_SACK_PERMITTED, 2] } else { [OPT_NOP, OPT_NOP] });
            put(&[OPT_TIMESTAMPS, 10]);
            put(&val.to_be_bytes());
            put(&ecr.to_be_bytes());
        }
        (None, true) => put(&[OPT_NOP, OPT_NOP, OPT_SACK_PERMITTED, 2]),
        (None, false) => {}
    }
    if let Some(w) = o.wscale {
        put(&[OPT_NOP, OPT_WSCALE, 3, w]);
    }
    (b, n)
}

/// Turns a client's SYN into our SYN-ACK back to it, with `cookie` as our sequence number and
/// `mss` as the MSS we offer. `tsval`: our cookie TSval when the client sent timestamps
/// (`client_opts`, [`syn_options`] of this SYN); then the SYN-ACK also offers SACK-permitted
/// and window scale [`OUR_WSCALE`] when the client did. Returns the new length (at most
/// [`SYN_LEN`]; `packet` must hold it).
pub fn syn_ack_v4(
    packet: &mut [u8],
    cookie: u32,
    mss: u16,
    tsval: Option<u32>,
    client_opts: &SynOptions,
) -> Result<usize, XlateError> {
    let (at, end) = tcp_layout(packet)?;
    syn_ack_v4_at(packet, at, end, cookie, mss, tsval, client_opts)
}

/// [`syn_ack_v4`] of a packet already parsed (`at`: the TCP header, `end`: the IP total
/// length, as `parse_v4` found them; not a fragment): the pipeline's, which must not parse
/// every SYN of a flood twice.
pub fn syn_ack_v4_at(
    packet: &mut [u8],
    at: usize,
    end: usize,
    cookie: u32,
    mss: u16,
    tsval: Option<u32>,
    client_opts: &SynOptions,
) -> Result<usize, XlateError> {
    if end > packet.len() || at + TCP_HEADER_LEN > end {
        return Err(XlateError::Malformed);
    }
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (client, vip) = (ip.src_addr(), ip.dst_addr());
    let syn = TcpPacket::new_unchecked(&packet[at..end]);
    if syn.flags() & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST) != TcpFlags::SYN {
        return Err(XlateError::Unsupported);
    }
    let (cport, vport, isn) = (syn.src_port(), syn.dst_port(), syn.seq_number());
    let ours = match (tsval, client_opts.timestamps) {
        (Some(val), Some((client_val, _))) => SynOptions {
            mss: Some(mss),
            wscale: client_opts.wscale.map(|_| OUR_WSCALE),
            sack_permitted: client_opts.sack_permitted,
            timestamps: Some((val, client_val)),
        },
        _ => SynOptions { mss: Some(mss), ..SynOptions::default() },
    };
    let (opts, n) = build_options(&ours);
    let flags = TcpFlags::SYN | TcpFlags::ACK;
    write_tcp_segment_v4(packet, vip, client, vport, cport, cookie, isn.wrapping_add(1), flags, 65535, &opts[..n])
}

/// Turns the client's ACK that completed our handshake into the SYN that opens the
/// connection to the backend, still client -> VIP (the connection's rewrite follows): the
/// client's ISN, its window, the MSS the cookie said, and when the client sent timestamps
/// (`cookie_opts` from its TSecr) its window scale, SACK-permitted and timestamps with the
/// TSval of its ACK. Any payload is dropped (the client sends it again). Returns the new
/// length (at most [`SYN_LEN`]).
pub fn syn_from_ack_v4(packet: &mut [u8], mss: u16, cookie_opts: &SynOptions) -> Result<usize, XlateError> {
    let (at, end) = tcp_layout(packet)?;
    let ip = Ipv4Packet::new_unchecked(&*packet);
    let (client, vip) = (ip.src_addr(), ip.dst_addr());
    let ack = TcpPacket::new_unchecked(&packet[at..end]);
    let (cport, vport, window) = (ack.src_port(), ack.dst_port(), ack.window());
    let isn = ack.seq_number().wrapping_sub(1);
    let ours = match cookie_opts.timestamps {
        Some((val, _)) => SynOptions { mss: Some(mss), timestamps: Some((val, 0)), ..*cookie_opts },
        None => SynOptions { mss: Some(mss), ..SynOptions::default() },
    };
    let (opts, n) = build_options(&ours);
    write_tcp_segment_v4(packet, client, vip, cport, vport, isn, 0, TcpFlags::SYN, window, &opts[..n])
}

/// Turns the backend's SYN-ACK into the ACK that completes its handshake, written as the
/// client's packet (`client -> vip`, the connection's rewrite follows): `seq` the client's
/// ISN plus one (the SYN-ACK's ack), `ack` the backend's ISN plus one, the client's window
/// (`proxy.client_window`, rescaled when the backend refused window scaling) and, when the
/// backend sent timestamps, TSval the client's (echoed by the backend) and TSecr the
/// backend's. Returns (new length, at most [`ACK_LEN`], the backend's ISN, `proxy` completed:
/// the backend's window scale and the timestamp offset).
pub fn ack_from_syn_ack_v4(
    packet: &mut [u8],
    client: Ipv4Addr,
    vip: Ipv4Addr,
    cport: u16,
    vport: u16,
    proxy: ProxyOpts,
) -> Result<(usize, u32, ProxyOpts), XlateError> {
    let (at, end) = tcp_layout(packet)?;
    let backend_opts = syn_options(packet);
    let synack = TcpPacket::new_unchecked(&packet[at..end]);
    if synack.flags() & (TcpFlags::SYN | TcpFlags::ACK | TcpFlags::RST) != TcpFlags::SYN | TcpFlags::ACK {
        return Err(XlateError::Unsupported);
    }
    let (backend_isn, seq) = (synack.seq_number(), synack.ack_number());
    let mut done = proxy;
    // Scaling is on with the backend only when both SYNs carried the option.
    done.backend_wscale = match (proxy.client_wscale, backend_opts.wscale) {
        (NO_WSCALE, _) | (_, None) => NO_WSCALE,
        (_, Some(w)) => w,
    };
    let ours = match backend_opts.timestamps {
        Some((backend_val, client_val)) if proxy.ts != 0 => {
            done.ts = backend_val.wrapping_sub(proxy.ts);
            SynOptions { timestamps: Some((client_val, backend_val)), ..SynOptions::default() }
        }
        _ => {
            done.ts = 0;
            SynOptions::default()
        }
    };
    let (opts, n) = build_options(&ours);
    let window = rescale(proxy.client_window, done.backend_shifts());
    let ack = backend_isn.wrapping_add(1);
    let len = write_tcp_segment_v4(packet, client, vip, cport, vport, seq, ack, TcpFlags::ACK, window, &opts[..n])?;
    Ok((len, backend_isn, done))
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
    let mut at = TCP_HEADER_LEN;
    while let Some(opt) = next_option(seg, header_len, &mut at) {
        if opt.kind == OPT_SACK {
            // Blocks of two edges, at at + 2 + 8k; they may sit at odd offsets, which the
            // incremental update cannot patch: recompute from the whole sum then.
            let blocks = (opt.len - 2) / 8;
            for k in 0..blocks * 2 {
                let edge = opt.at + 2 + 4 * k;
                if edge.is_multiple_of(2) {
                    patch_u32(seg, edge, CSUM_AT, |e| e.wrapping_add(delta));
                } else {
                    patch_odd_u32(seg, edge, delta);
                }
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

const WINDOW_AT: usize = 14;
/// TSval and TSecr offsets in a timestamps option.
const TSVAL_AT: usize = 2;
const TSECR_AT: usize = 6;

/// The timestamps and window of a proxied connection's packet: the window field rescaled by
/// `shifts`, the timestamps option's word at `ts_at` (TSVAL_AT or TSECR_AT) `+= delta`.
/// Malformed options are left alone.
fn adjust(packet: &mut [u8], l4_at: usize, end: usize, shifts: (u8, u8), ts_at: usize, delta: u32) {
    let Some(seg) = packet.get_mut(l4_at..end) else { return };
    if seg.len() < TCP_HEADER_LEN {
        return;
    }
    if shifts != (0, 0) {
        let old = u16::from_be_bytes([seg[WINDOW_AT], seg[WINDOW_AT + 1]]);
        let new = rescale(old, shifts);
        seg[WINDOW_AT..WINDOW_AT + 2].copy_from_slice(&new.to_be_bytes());
        let c = u16::from_be_bytes([seg[CSUM_AT], seg[CSUM_AT + 1]]);
        let c = crate::wire::checksum::update_u16(c, old, new);
        seg[CSUM_AT..CSUM_AT + 2].copy_from_slice(&c.to_be_bytes());
    }
    let header_len = usize::from(seg[12] >> 4) * 4;
    if header_len <= TCP_HEADER_LEN || header_len > seg.len() {
        return;
    }
    let mut found = None;
    let mut at = TCP_HEADER_LEN;
    while let Some(opt) = next_option(seg, header_len, &mut at) {
        if opt.kind == OPT_TIMESTAMPS && opt.len == 10 {
            found = Some(opt.at + ts_at);
            break;
        }
    }
    if let Some(at) = found.filter(|_| delta != 0) {
        if at.is_multiple_of(2) {
            patch_u32(seg, at, CSUM_AT, |w| w.wrapping_add(delta));
        } else {
            patch_odd_u32(seg, at, delta);
        }
    }
}

/// A client -> backend packet of a proxied connection, after [`to_backend`]: its TSecr
/// `+= offset` (it echoes our clock, the backend wants its own) and, when the backend refused
/// window scaling, its window scaled up by the client's scale.
pub fn adjust_to_backend(packet: &mut [u8], l4_at: usize, end: usize, proxy: &ProxyOpts) {
    let shifts = proxy.backend_shifts();
    if proxy.ts == 0 && shifts == (0, 0) {
        return;
    }
    adjust(packet, l4_at, end, shifts, TSECR_AT, proxy.ts);
}

/// A backend -> client packet of a proxied connection, after [`to_client`]: its TSval
/// `-= offset` (the client saw our clock in the SYN-ACK) and its window rescaled from the
/// backend's window scale to ours.
pub fn adjust_to_client(packet: &mut [u8], l4_at: usize, end: usize, proxy: &ProxyOpts) {
    let shifts = proxy.client_shifts();
    if proxy.ts == 0 && shifts == (0, 0) {
        return;
    }
    adjust(packet, l4_at, end, shifts, TSVAL_AT, proxy.ts.wrapping_neg());
}

#[cfg(test)]
#[path = "seqadj_tests.rs"]
mod tests;
