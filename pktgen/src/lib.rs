//! The packet logic of `fvs-pktgen`, on byte slices and testable without DPDK: the flows a
//! run sends, the frames it builds (with a timestamp in every packet), what it makes of the
//! frames it receives (through IPIP and GUE, as ferrovs' TUN mode sends them), the ARP
//! answers it gives on behalf of the addresses it stands in for, and a latency histogram.

use std::net::Ipv4Addr;

use dataplane::net::MacAddr;
use dataplane::testkit::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr, UdpRepr};
use dataplane::wire::{checksum, TcpFlags};

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const TCP_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// Smallest frame built (without FCS): Ethernet's 60-byte minimum, 64 B on the wire.
pub const MIN_FRAME: usize = 60;
/// Largest frame built (without FCS): a 1500-byte IP packet.
pub const MAX_FRAME: usize = 1514;

/// What a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// UDP over `flows` tuples, round and round.
    Udp,
    /// TCP SYNs, each from a tuple never used before in the run: every one is a new connection.
    Syn,
    /// TCP ACKs over `flows` tuples that a SYN opened first (the open phase).
    TcpEstablished,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "udp" => Ok(Mode::Udp),
            "syn" => Ok(Mode::Syn),
            "tcp-est" => Ok(Mode::TcpEstablished),
            _ => Err(format!("unknown mode '{s}' (want udp, syn or tcp-est)")),
        }
    }
}

/// Source hosts per /24: .1 to .254, never the network or broadcast address.
const HOSTS: u32 = 254;
const FIRST_SPORT: u32 = 1024;
const SPORTS: u32 = 65536 - FIRST_SPORT;
/// Distinct client tuples a run can use: a SYN flood cycles through them.
pub const TUPLE_SPACE: u64 = HOSTS as u64 * SPORTS as u64;

/// The i-th client tuple: source host varies fastest, so consecutive packets spread over
/// hosts as real clients do. `i` wraps at [`TUPLE_SPACE`].
pub fn client_tuple(base: Ipv4Addr, i: u64) -> (Ipv4Addr, u16) {
    let i = (i % TUPLE_SPACE) as u32;
    let [a, b, c, _] = base.octets();
    let host = 1 + (i % HOSTS) as u8;
    (Ipv4Addr::new(a, b, c, host), (FIRST_SPORT + i / HOSTS) as u16)
}

/// How a run's packets are spread over the tx queues: flow `f` always goes out on queue
/// `f % queues`, and each queue cycles through its own flows in order, as its own stream (a
/// queue whose ring is full never holds the others back). With one queue it is the plain
/// sequence 0, 1, 2... (modulo `flows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spread {
    /// Distinct flows, cycled through; `u64::MAX`: never repeat (a SYN flood).
    pub flows: u64,
    /// Tx queues, at least 1.
    pub queues: u16,
}

/// How many of the flows `0..m` go out on queue `q` of `n`.
fn flows_below(m: u64, n: u64, q: u64) -> u64 {
    if m > q {
        (m - q - 1) / n + 1
    } else {
        0
    }
}

impl Spread {
    pub fn new(flows: u64, queues: u16) -> Spread {
        assert!(queues >= 1, "at least one queue");
        Spread { flows, queues }
    }

    /// The queue flow `f` goes out on.
    pub fn queue_of(&self, f: u64) -> u16 {
        (f % u64::from(self.queues)) as u16
    }

    /// How many distinct flows go out on queue `q` (0 when there are fewer flows than queues).
    pub fn flows_on(&self, q: u16) -> u64 {
        flows_below(self.flows, u64::from(self.queues), u64::from(q))
    }

    /// The flow (tuple index) of the `k`-th packet (from 0) queue `q` sends. Queue `q` must
    /// have flows (see [`Spread::flows_on`]).
    pub fn flow(&self, q: u16, k: u64) -> u64 {
        let n = u64::from(self.queues);
        if self.flows == u64::MAX {
            u64::from(q).wrapping_add(k.wrapping_mul(n))
        } else {
            u64::from(q) + (k % self.flows_on(q)) * n
        }
    }

    /// Queue `q`'s share of a phase of `count` packets: how many of the first `count` packets
    /// of the single sequence (packet s is flow `s % flows`) are its flows'. So a phase that
    /// sends every flow twice (`count` = 2 x flows) sends every flow twice on its queue.
    pub fn share(&self, count: u64, q: u16) -> u64 {
        let (n, q) = (u64::from(self.queues), u64::from(q));
        let cycles = count / self.flows;
        cycles.saturating_mul(flows_below(self.flows, n, q)).saturating_add(flows_below(count % self.flows, n, q))
    }

    /// Queue `q`'s fraction of the packets sent: of a fixed rate, the part it sends.
    pub fn fraction(&self, q: u16) -> f64 {
        if self.flows == u64::MAX {
            1.0 / f64::from(self.queues)
        } else {
            self.flows_on(q) as f64 / self.flows as f64
        }
    }
}

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;

/// One stream's frame, built once; [`Template::stamp`] writes what changes per packet.
pub struct Template {
    bytes: Vec<u8>,
    proto: u8,
    /// Sum of the IPv4 header with the source address and checksum zero.
    ip_sum: u32,
    /// Sum of the L4 pseudo-header, header and payload with the source address, source port,
    /// timestamp and checksum zero.
    l4_sum: u32,
}

/// Where the timestamp goes: the TCP sequence number (ferrovs never rewrites it), or the
/// first four payload bytes of UDP.
fn stamp_offset(proto: u8) -> usize {
    if proto == 6 {
        ETH_LEN + IP_LEN + 4
    } else {
        ETH_LEN + IP_LEN + UDP_LEN
    }
}

impl Template {
    /// A frame of `size` bytes (without FCS) to `dst:dport`. `tcp_flags` is ignored for UDP.
    pub fn new(
        src_mac: MacAddr,
        dst_mac: MacAddr,
        proto: u8,
        dst: Ipv4Addr,
        dport: u16,
        tcp_flags: u8,
        size: usize,
    ) -> Result<Template, String> {
        let l4_len = if proto == 6 { TCP_LEN } else { UDP_LEN };
        let min = (ETH_LEN + IP_LEN + l4_len + 4).max(MIN_FRAME);
        if !(min..=MAX_FRAME).contains(&size) {
            return Err(format!("frame size {size} is outside {min}..={MAX_FRAME} (bytes without the FCS)"));
        }
        // The base frame from the test kit's builders: source address, source port and
        // timestamp zero (stamp writes them), DF as TCP stacks send and TUN's PMTU logic reads.
        let ip_total = size - ETH_LEN;
        let ip = Ipv4Repr { ident: 0, ..Ipv4Repr::new(Ipv4Addr::UNSPECIFIED, dst) };
        let payload = vec![0u8; ip_total - IP_LEN - l4_len];
        let l4 = if proto == 6 {
            let ack = if tcp_flags & TCP_ACK != 0 { 1 } else { 0 };
            let flags = TcpFlags::from_bits_retain(tcp_flags);
            L4Repr::Tcp(TcpRepr { seq: 0, ack, ..TcpRepr::new(0, dport, flags) }.with_payload(&payload))
        } else {
            L4Repr::Udp(UdpRepr { sport: 0, dport, payload: &payload })
        };
        let mut b = EthRepr { dst: dst_mac, src: src_mac }.frame_v4(&ip, &l4);
        // Checksums zero: stamp's sums below are of everything but them.
        b[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let at = ETH_LEN + IP_LEN + if proto == 6 { 16 } else { 6 };
        b[at..at + 2].fill(0);
        let ip_sum = checksum::sum(&b[ETH_LEN..ETH_LEN + IP_LEN]);
        let l4_total = (ip_total - IP_LEN) as u32;
        let l4_sum = checksum::pseudo_header_v4(Ipv4Addr::UNSPECIFIED, dst, proto, l4_total)
            + checksum::sum(&b[ETH_LEN + IP_LEN..]);
        Ok(Template { bytes: b, proto, ip_sum, l4_sum })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes the frame from `src:sport` with timestamp `stamp` into `out` (`len()` bytes).
    #[inline]
    pub fn stamp(&self, out: &mut [u8], src: Ipv4Addr, sport: u16, stamp: u32) {
        out.copy_from_slice(&self.bytes);
        let s = src.octets();
        out[ETH_LEN + 12..ETH_LEN + 16].copy_from_slice(&s);
        let src_words = u32::from(u16::from_be_bytes([s[0], s[1]])) + u32::from(u16::from_be_bytes([s[2], s[3]]));
        let ip_checksum = !checksum::fold(self.ip_sum + src_words);
        out[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&ip_checksum.to_be_bytes());
        let l4 = ETH_LEN + IP_LEN;
        out[l4..l4 + 2].copy_from_slice(&sport.to_be_bytes());
        let at = stamp_offset(self.proto);
        out[at..at + 4].copy_from_slice(&stamp.to_be_bytes());
        // The source address counts twice: in the pseudo-header and (its words) nowhere else.
        let sum = self.l4_sum + src_words + u32::from(sport) + (stamp >> 16) + (stamp & 0xffff);
        let mut l4_checksum = !checksum::fold(sum);
        if self.proto == 17 && l4_checksum == 0 {
            l4_checksum = 0xffff; // UDP: zero means "no checksum".
        }
        let at = if self.proto == 6 { l4 + 16 } else { l4 + 6 };
        out[at..at + 2].copy_from_slice(&l4_checksum.to_be_bytes());
    }
}

/// What a received frame is to the generator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// An ARP request for `target`, from `sender`.
    ArpRequest { sender: Ipv4Addr, target: Ipv4Addr },
    /// One of the generator's packets (possibly inside IPIP or GUE) with its timestamp.
    Stamped(u32),
    /// Anything else.
    Other,
}

/// Classifies a received frame. `gue_port` is the UDP port GUE arrives on (0: none).
pub fn classify(frame: &[u8], gue_port: u16) -> Received {
    if frame.len() < ETH_LEN {
        return Received::Other;
    }
    match [frame[12], frame[13]] {
        [0x08, 0x06] => classify_arp(&frame[ETH_LEN..]),
        [0x08, 0x00] => classify_ipv4(&frame[ETH_LEN..], gue_port, 2),
        _ => Received::Other,
    }
}

fn classify_arp(arp: &[u8]) -> Received {
    // Ethernet/IPv4 request: htype 1, ptype 0x0800, hlen 6, plen 4, op 1.
    if arp.len() < 28 || arp[0..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return Received::Other;
    }
    let sender = Ipv4Addr::new(arp[14], arp[15], arp[16], arp[17]);
    let target = Ipv4Addr::new(arp[24], arp[25], arp[26], arp[27]);
    Received::ArpRequest { sender, target }
}

/// `depth` bounds how many encapsulations are unwrapped.
fn classify_ipv4(ip: &[u8], gue_port: u16, depth: u8) -> Received {
    if ip.len() < IP_LEN || ip[0] >> 4 != 4 {
        return Received::Other;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ihl < IP_LEN || ip.len() < ihl {
        return Received::Other;
    }
    let l4 = &ip[ihl..];
    match ip[9] {
        4 if depth > 0 => classify_ipv4(l4, gue_port, depth - 1),
        17 if depth > 0 && gue_port != 0 && l4.len() >= UDP_LEN + 4 && l4[2..4] == gue_port.to_be_bytes() => {
            // GUE variant 0 with no options: a 4-byte header whose hlen is 0 (ferrovs sends
            // variant 1, IP directly after UDP, which starts with the version nibble 4).
            let inner = &l4[UDP_LEN..];
            if inner[0] >> 4 == 4 {
                classify_ipv4(inner, gue_port, depth - 1)
            } else {
                classify_ipv4(&inner[4..], gue_port, depth - 1)
            }
        }
        6 if l4.len() >= TCP_LEN => Received::Stamped(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]])),
        17 if l4.len() >= UDP_LEN + 4 => Received::Stamped(u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]])),
        _ => Received::Other,
    }
}

/// Turns an ARP request frame (as [`classify`] found it) into the reply from `our_mac`, in
/// place. The frame keeps its length.
pub fn arp_reply_in_place(frame: &mut [u8], our_mac: MacAddr) {
    let requester_mac: [u8; 6] = frame[6..12].try_into().expect("ARP frame checked by classify");
    frame[0..6].copy_from_slice(&requester_mac);
    frame[6..12].copy_from_slice(&our_mac.0);
    let arp = &mut frame[ETH_LEN..];
    arp[7] = 2; // reply
    let sender_ip: [u8; 4] = arp[14..18].try_into().expect("checked");
    let target_ip: [u8; 4] = arp[24..28].try_into().expect("checked");
    arp[8..14].copy_from_slice(&our_mac.0);
    arp[14..18].copy_from_slice(&target_ip);
    arp[18..24].copy_from_slice(&requester_mac);
    arp[24..28].copy_from_slice(&sender_ip);
}

/// An IPv4 prefix the generator answers ARP for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl std::str::FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
        let addr = addr.parse().map_err(|_| format!("'{s}': not an IPv4 address or prefix"))?;
        let len =
            len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("'{s}': prefix length must be 0..=32"))?;
        Ok(Prefix { addr, len })
    }
}

/// Latency in TSC cycles, in log-linear buckets: 8 per power of two, so a reported value is
/// within 12.5% of the true one. Fixed size: recording allocates nothing.
pub struct Histogram {
    buckets: [u64; 64 * 8],
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { buckets: [0; 64 * 8], count: 0, max: 0 }
    }
}

fn bucket(v: u64) -> usize {
    if v < 8 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as usize;
    (msb - 2) * 8 + ((v >> (msb - 3)) & 7) as usize
}

/// The smallest value of bucket `b`.
fn bucket_floor(b: usize) -> u64 {
    if b < 8 {
        return b as u64;
    }
    let msb = b / 8 + 2;
    (8 + (b % 8) as u64) << (msb - 3)
}

impl Histogram {
    #[inline]
    pub fn record(&mut self, v: u64) {
        self.buckets[bucket(v)] += 1;
        self.count += 1;
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below which a fraction `q` (0..=1) of the samples lie (a bucket's floor).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_floor(b);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests;
