//! Frame builders for tests, benches and the traffic generator.
//!
//! A `Repr` says what a header holds; `emit` writes it with the lengths and checksums that
//! follow from it (smoltcp's `Repr` + `emit` split). Build a frame in one call (not run as a doctest:
//! doctests build without the `testkit` feature):
//!
//! ```ignore
//! use std::net::Ipv4Addr;
//! use dataplane::net::MacAddr;
//! use dataplane::testkit::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr};
//! use dataplane::wire::TcpFlags;
//!
//! let eth = EthRepr { dst: MacAddr([2, 0, 0, 0, 0, 1]), src: MacAddr([2, 0, 0, 0, 0, 2]) };
//! let ip = Ipv4Repr::new(Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 100));
//! let syn = TcpRepr::new(40000, 80, TcpFlags::SYN);
//! let frame = eth.frame_v4(&ip, &L4Repr::Tcp(syn));
//! assert_eq!(frame.len(), 14 + 20 + 20);
//! ```
//!
//! The checksums come from `wire::checksum`, whose own tests compare against golden bytes
//! computed independently (`wire/tests/golden.rs`); tests that must not trust this module
//! (the golden frames) keep their literal bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::MacAddr;
use crate::wire::checksum;
use crate::wire::icmpv4::{CODE_FRAG_NEEDED, CODE_PORT_UNREACHABLE};
use crate::wire::{emit_arp, ArpOperation, EtherType, Icmpv4Type, Icmpv6Type, IpProtocol, TcpFlags};

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const TCP_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
pub const ICMP_LEN: usize = 8;

/// An Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthRepr {
    pub dst: MacAddr,
    pub src: MacAddr,
}

impl EthRepr {
    /// The frame carrying `payload` as `ethertype`.
    pub fn frame(&self, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(ETH_LEN + payload.len());
        v.extend_from_slice(&self.dst.0);
        v.extend_from_slice(&self.src.0);
        v.extend_from_slice(&ethertype.0.to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    /// Ethernet + IPv4 + `l4`.
    pub fn frame_v4(&self, ip: &Ipv4Repr, l4: &L4Repr) -> Vec<u8> {
        self.frame(EtherType::IPV4, &ip.packet(l4))
    }

    /// Ethernet + IPv6 + `l4`.
    pub fn frame_v6(&self, ip: &Ipv6Repr, l4: &L4Repr) -> Vec<u8> {
        self.frame(EtherType::IPV6, &ip.packet(l4))
    }

    /// Ethernet + ARP. The Ethernet source is `self.src`, whatever `arp.sender_mac` says
    /// (a forged ARP differs).
    pub fn frame_arp(&self, arp: &ArpRepr) -> Vec<u8> {
        self.frame(EtherType::ARP, &arp.emit())
    }
}

/// An ARP message for IPv4 over Ethernet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpRepr {
    pub op: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    pub fn emit(&self) -> Vec<u8> {
        let mut v = vec![0u8; 28];
        let n = emit_arp(&mut v, self.op, self.sender_mac, self.sender_ip, self.target_mac, self.target_ip);
        v.truncate(n);
        v
    }
}

/// An IPv4 header without options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub dont_frag: bool,
    pub ident: u16,
    pub tos: u8,
}

impl Ipv4Repr {
    /// TTL 64, DF set (as TCP stacks send), ident 0x1234.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr) -> Ipv4Repr {
        Ipv4Repr { src, dst, ttl: 64, dont_frag: true, ident: 0x1234, tos: 0 }
    }

    /// The header for `payload_len` bytes of `proto`, checksum filled.
    pub fn header(&self, proto: IpProtocol, payload_len: usize) -> [u8; IPV4_LEN] {
        let total = u16::try_from(IPV4_LEN + payload_len).expect("IPv4 packet over 65535 bytes");
        let mut h = [0u8; IPV4_LEN];
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6] = if self.dont_frag { 0x40 } else { 0 };
        h[8] = self.ttl;
        h[9] = proto.0;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    /// The header at the start of `ip` (no options: panics on any), with its protocol and
    /// payload length, so a test can change a field and `header` it again.
    pub fn parse(ip: &[u8]) -> (Ipv4Repr, IpProtocol, usize) {
        assert!(ip.len() >= IPV4_LEN && ip[0] == 0x45, "an IPv4 header without options");
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let repr = Ipv4Repr {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            ttl: ip[8],
            dont_frag: ip[6] & 0x40 != 0,
            ident: u16::from_be_bytes([ip[4], ip[5]]),
            tos: ip[1],
        };
        assert_eq!(u16::from_be_bytes([ip[6], ip[7]]) & !0x4000, 0, "not a fragment");
        (repr, IpProtocol(ip[9]), total - IPV4_LEN)
    }

    /// Header + `l4` with every checksum right.
    pub fn packet(&self, l4: &L4Repr) -> Vec<u8> {
        let body = l4.emit(IpAddr::V4(self.src), IpAddr::V4(self.dst));
        let mut v = Vec::with_capacity(IPV4_LEN + body.len());
        v.extend_from_slice(&self.header(l4.protocol_v4(), body.len()));
        v.extend(body);
        v
    }
}

/// An IPv6 header without extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Hop limit 64.
    pub fn new(src: Ipv6Addr, dst: Ipv6Addr) -> Ipv6Repr {
        Ipv6Repr { src, dst, hop_limit: 64 }
    }

    pub fn header(&self, next_header: IpProtocol, payload_len: usize) -> [u8; IPV6_LEN] {
        let len = u16::try_from(payload_len).expect("IPv6 payload over 65535 bytes");
        let mut h = [0u8; IPV6_LEN];
        h[0] = 0x60;
        h[4..6].copy_from_slice(&len.to_be_bytes());
        h[6] = next_header.0;
        h[7] = self.hop_limit;
        h[8..24].copy_from_slice(&self.src.octets());
        h[24..40].copy_from_slice(&self.dst.octets());
        h
    }

    pub fn packet(&self, l4: &L4Repr) -> Vec<u8> {
        let body = l4.emit(IpAddr::V6(self.src), IpAddr::V6(self.dst));
        let mut v = Vec::with_capacity(IPV6_LEN + body.len());
        v.extend_from_slice(&self.header(l4.protocol_v6(), body.len()));
        v.extend(body);
        v
    }
}

/// A TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Raw option bytes, a multiple of 4 long (pad with NOP/EOL).
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Sequence 1000, acknowledgement 5000 when ACK is set (else 0), window 64240.
    pub fn new(sport: u16, dport: u16, flags: TcpFlags) -> TcpRepr<'a> {
        let ack = if flags.contains(TcpFlags::ACK) { 5000 } else { 0 };
        TcpRepr { sport, dport, seq: 1000, ack, flags, window: 64240, options: &[], payload: &[] }
    }

    pub fn with_payload(self, payload: &'a [u8]) -> TcpRepr<'a> {
        TcpRepr { payload, ..self }
    }

    pub fn with_seq(self, seq: u32) -> TcpRepr<'a> {
        TcpRepr { seq, ..self }
    }

    pub fn header_len(&self) -> usize {
        TCP_LEN + self.options.len()
    }
}

/// A UDP datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
}

/// An ICMPv4 message. Errors quote `quote` (an IP packet, as much of it as the caller gives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    PortUnreachable {
        quote: &'a [u8],
    },
    FragNeeded {
        mtu: u16,
        quote: &'a [u8],
    },
    DestUnreachable {
        code: u8,
        quote: &'a [u8],
    },
    TimeExceeded {
        quote: &'a [u8],
    },
    /// Any other message: type, code, and the bytes after the checksum.
    Other {
        ty: Icmpv4Type,
        code: u8,
        body: &'a [u8],
    },
}

/// An ICMPv6 message (not neighbour discovery: `wire::emit_neighbor_*` build those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv6Repr<'a> {
    EchoRequest {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq: u16,
        data: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        quote: &'a [u8],
    },
    DestUnreachable {
        code: u8,
        quote: &'a [u8],
    },
    TimeExceeded {
        quote: &'a [u8],
    },
    /// Any other message: type, code, and the bytes after the checksum.
    Other {
        ty: Icmpv6Type,
        code: u8,
        body: &'a [u8],
    },
}

/// What an IP packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Repr<'a> {
    Tcp(TcpRepr<'a>),
    Udp(UdpRepr<'a>),
    Icmpv4(Icmpv4Repr<'a>),
    Icmpv6(Icmpv6Repr<'a>),
    /// Bytes as given under `proto` (no checksum is touched): IPIP, junk, fragments.
    Raw {
        proto: IpProtocol,
        bytes: &'a [u8],
    },
}

impl L4Repr<'_> {
    fn protocol(&self) -> IpProtocol {
        match self {
            L4Repr::Tcp(_) => IpProtocol::TCP,
            L4Repr::Udp(_) => IpProtocol::UDP,
            L4Repr::Icmpv4(_) => IpProtocol::ICMP,
            L4Repr::Icmpv6(_) => IpProtocol::ICMPV6,
            L4Repr::Raw { proto, .. } => *proto,
        }
    }

    fn protocol_v4(&self) -> IpProtocol {
        assert!(!matches!(self, L4Repr::Icmpv6(_)), "ICMPv6 inside IPv4");
        self.protocol()
    }

    fn protocol_v6(&self) -> IpProtocol {
        assert!(!matches!(self, L4Repr::Icmpv4(_)), "ICMPv4 inside IPv6");
        self.protocol()
    }

    /// The transport bytes with their checksum computed for `src` -> `dst`.
    pub fn emit(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let proto = self.protocol();
        let (mut v, checksum_at) = match self {
            L4Repr::Tcp(t) => (emit_tcp(t), Some(16)),
            L4Repr::Udp(u) => (emit_udp(u), Some(6)),
            L4Repr::Icmpv4(m) => {
                let mut v = emit_icmpv4(m);
                let c = checksum::checksum(&v);
                v[2..4].copy_from_slice(&c.to_be_bytes());
                return v;
            }
            L4Repr::Icmpv6(m) => (emit_icmpv6(m), Some(2)),
            L4Repr::Raw { bytes, .. } => (bytes.to_vec(), None),
        };
        if let Some(at) = checksum_at {
            let sum = checksum::pseudo_header(src, dst, proto.0, v.len() as u32) + checksum::sum(&v);
            let mut c = !checksum::fold(sum);
            if proto == IpProtocol::UDP && c == 0 {
                c = 0xffff; // UDP: zero means "no checksum".
            }
            v[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        v
    }
}

fn emit_tcp(t: &TcpRepr) -> Vec<u8> {
    assert!(
        t.options.len().is_multiple_of(4) && t.options.len() <= 40,
        "TCP options: a multiple of 4, at most 40 bytes"
    );
    let mut v = Vec::with_capacity(t.header_len() + t.payload.len());
    v.extend_from_slice(&t.sport.to_be_bytes());
    v.extend_from_slice(&t.dport.to_be_bytes());
    v.extend_from_slice(&t.seq.to_be_bytes());
    v.extend_from_slice(&t.ack.to_be_bytes());
    v.push(((t.header_len() / 4) as u8) << 4);
    v.push(t.flags.bits());
    v.extend_from_slice(&t.window.to_be_bytes());
    v.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    v.extend_from_slice(t.options);
    v.extend_from_slice(t.payload);
    v
}

fn emit_udp(u: &UdpRepr) -> Vec<u8> {
    let len = u16::try_from(UDP_LEN + u.payload.len()).expect("UDP datagram over 65535 bytes");
    let mut v = Vec::with_capacity(usize::from(len));
    v.extend_from_slice(&u.sport.to_be_bytes());
    v.extend_from_slice(&u.dport.to_be_bytes());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(u.payload);
    v
}

/// Type, code, zero checksum, the 4 "rest of header" bytes, then `data`.
fn icmp_message(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ICMP_LEN + data.len());
    v.extend_from_slice(&[ty, code, 0, 0]);
    v.extend_from_slice(&rest);
    v.extend_from_slice(data);
    v
}

fn echo_rest(ident: u16, seq: u16) -> [u8; 4] {
    let (i, s) = (ident.to_be_bytes(), seq.to_be_bytes());
    [i[0], i[1], s[0], s[1]]
}

fn emit_icmpv4(m: &Icmpv4Repr) -> Vec<u8> {
    let unreachable = Icmpv4Type::DEST_UNREACHABLE.0;
    match *m {
        Icmpv4Repr::EchoRequest { ident, seq, data } => {
            icmp_message(Icmpv4Type::ECHO_REQUEST.0, 0, echo_rest(ident, seq), data)
        }
        Icmpv4Repr::EchoReply { ident, seq, data } => {
            icmp_message(Icmpv4Type::ECHO_REPLY.0, 0, echo_rest(ident, seq), data)
        }
        Icmpv4Repr::PortUnreachable { quote } => icmp_message(unreachable, CODE_PORT_UNREACHABLE, [0; 4], quote),
        Icmpv4Repr::FragNeeded { mtu, quote } => {
            let m = mtu.to_be_bytes();
            icmp_message(unreachable, CODE_FRAG_NEEDED, [0, 0, m[0], m[1]], quote)
        }
        Icmpv4Repr::DestUnreachable { code, quote } => icmp_message(unreachable, code, [0; 4], quote),
        Icmpv4Repr::TimeExceeded { quote } => icmp_message(Icmpv4Type::TIME_EXCEEDED.0, 0, [0; 4], quote),
        Icmpv4Repr::Other { ty, code, body } => {
            let mut v = vec![ty.0, code, 0, 0];
            v.extend_from_slice(body);
            v
        }
    }
}

fn emit_icmpv6(m: &Icmpv6Repr) -> Vec<u8> {
    match *m {
        Icmpv6Repr::EchoRequest { ident, seq, data } => {
            icmp_message(Icmpv6Type::ECHO_REQUEST.0, 0, echo_rest(ident, seq), data)
        }
        Icmpv6Repr::EchoReply { ident, seq, data } => {
            icmp_message(Icmpv6Type::ECHO_REPLY.0, 0, echo_rest(ident, seq), data)
        }
        Icmpv6Repr::PacketTooBig { mtu, quote } => {
            icmp_message(Icmpv6Type::PACKET_TOO_BIG.0, 0, mtu.to_be_bytes(), quote)
        }
        Icmpv6Repr::DestUnreachable { code, quote } => {
            icmp_message(Icmpv6Type::DEST_UNREACHABLE.0, code, [0; 4], quote)
        }
        Icmpv6Repr::TimeExceeded { quote } => icmp_message(Icmpv6Type::TIME_EXCEEDED.0, 0, [0; 4], quote),
        Icmpv6Repr::Other { ty, code, body } => {
            let mut v = vec![ty.0, code, 0, 0];
            v.extend_from_slice(body);
            v
        }
    }
}

/// Every checksum of an Ethernet + IPv4 frame verified from scratch: the IPv4 header, and
/// TCP, UDP (unless zero) or ICMP. Returns what is wrong, naming the header.
pub fn verify_v4_checksums(frame: &[u8]) -> Result<(), String> {
    let ip = frame.get(ETH_LEN..).ok_or("shorter than an Ethernet header")?;
    if ip.len() < IPV4_LEN {
        return Err("shorter than an IPv4 header".into());
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < IPV4_LEN || total < ihl || total > ip.len() {
        return Err(format!("IPv4 lengths: header {ihl}, total {total}, buffer {}", ip.len()));
    }
    if checksum::checksum(&ip[..ihl]) != 0 {
        return Err("IPv4 header checksum".into());
    }
    let (src, dst) = (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let l4 = &ip[ihl..total];
    match IpProtocol(ip[9]) {
        IpProtocol::ICMP if checksum::checksum(l4) != 0 => Err("ICMP checksum".into()),
        IpProtocol::UDP if l4.len() >= UDP_LEN && l4[6..8] == [0, 0] => Ok(()),
        p @ (IpProtocol::TCP | IpProtocol::UDP) => {
            let sum = checksum::pseudo_header_v4(src, dst, p.0, l4.len() as u32) + checksum::sum(l4);
            if checksum::fold(sum) == 0xffff {
                Ok(())
            } else {
                Err(format!("{} checksum", if p == IpProtocol::TCP { "TCP" } else { "UDP" }))
            }
        }
        _ => Ok(()),
    }
}

/// The addresses, ports and TTL of an Ethernet + IPv4 + TCP/UDP frame, after
/// [`verify_v4_checksums`] (panics naming what is wrong: for tests).
pub fn tuple_v4(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16, u8) {
    if let Err(e) = verify_v4_checksums(frame) {
        panic!("bad frame: {e}");
    }
    let ip = &frame[ETH_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = &ip[ihl..];
    (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        u16::from_be_bytes([l4[0], l4[1]]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        u16::from_be_bytes([l4[2], l4[3]]),
        ip[8],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EthernetFrame, Icmpv6Packet, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};

    const A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xa]);
    const B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0xb]);

    fn eth() -> EthRepr {
        EthRepr { dst: A, src: B }
    }

    #[test]
    fn tcp_over_ipv4_parses_back_with_valid_checksums() {
        let ip = Ipv4Repr::new(Ipv4Addr::new(192, 0, 2, 2), Ipv4Addr::new(192, 0, 2, 100));
        let opts = [2, 4, 0x05, 0xb4]; // MSS 1460
        let t = TcpRepr { options: &opts, ..TcpRepr::new(40000, 80, TcpFlags::SYN) }.with_payload(b"hi");
        let f = eth().frame_v4(&ip, &L4Repr::Tcp(t));
        verify_v4_checksums(&f).unwrap();
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src(), e.ethertype()), (A, B, EtherType::IPV4));
        let p = Ipv4Packet::new_checked(&f[ETH_LEN..]).unwrap();
        assert!(p.verify_checksum() && p.dont_frag());
        assert_eq!((p.src_addr(), p.dst_addr(), p.ttl(), p.protocol()), (ip.src, ip.dst, 64, IpProtocol::TCP));
        let s = TcpPacket::new_checked(p.payload()).unwrap();
        assert_eq!((s.src_port(), s.dst_port(), s.seq_number()), (40000, 80, 1000));
        assert_eq!(s.options(), &opts);
        assert_eq!(s.payload(), b"hi");
        assert_eq!(tuple_v4(&f), (ip.src, 40000, ip.dst, 80, 64));
        assert_eq!(Ipv4Repr::parse(&f[ETH_LEN..]), (ip, IpProtocol::TCP, TCP_LEN + 4 + 2));
        assert_eq!(&Ipv4Repr::parse(&f[ETH_LEN..]).0.header(IpProtocol::TCP, 26)[..], &f[ETH_LEN..ETH_LEN + IPV4_LEN]);
    }

    #[test]
    fn udp_and_icmp_over_ipv4_verify_and_corruption_is_named() {
        let ip = Ipv4Repr {
            dont_frag: false,
            ..Ipv4Repr::new(Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(203, 0, 113, 9))
        };
        let mut f = eth().frame_v4(&ip, &L4Repr::Udp(UdpRepr { sport: 53, dport: 5353, payload: b"abc" }));
        verify_v4_checksums(&f).unwrap();
        let u = UdpPacket::new_checked(&f[ETH_LEN + IPV4_LEN..]).unwrap();
        assert_eq!((u.length(), u.payload()), (11, &b"abc"[..]));
        *f.last_mut().unwrap() ^= 1;
        assert_eq!(verify_v4_checksums(&f), Err("UDP checksum".to_string()));

        let quote = ip.packet(&L4Repr::Udp(UdpRepr { sport: 1, dport: 2, payload: &[] }));
        let f = eth().frame_v4(&ip, &L4Repr::Icmpv4(Icmpv4Repr::FragNeeded { mtu: 1400, quote: &quote }));
        verify_v4_checksums(&f).unwrap();
        let icmp = &f[ETH_LEN + IPV4_LEN..];
        assert_eq!((icmp[0], icmp[1], u16::from_be_bytes([icmp[6], icmp[7]])), (3, 4, 1400));
        assert_eq!(&icmp[8..], &quote[..]);
    }

    #[test]
    fn icmpv6_over_ipv6_has_the_pseudo_header_checksum() {
        let ip = Ipv6Repr::new("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let f = eth().frame_v6(&ip, &L4Repr::Icmpv6(Icmpv6Repr::EchoRequest { ident: 7, seq: 1, data: b"ping" }));
        let p = Ipv6Packet::new_checked(&f[ETH_LEN..]).unwrap();
        assert_eq!((p.next_header(), p.payload_len()), (IpProtocol::ICMPV6, 12));
        let m = Icmpv6Packet::new_checked(p.payload()).unwrap();
        assert!(m.verify_checksum(ip.src, ip.dst));
        assert_eq!(m.msg_type(), Icmpv6Type::ECHO_REQUEST);
    }

    #[test]
    fn arp_frame_carries_the_forged_sender() {
        let arp = ArpRepr {
            op: ArpOperation::REPLY,
            sender_mac: MacAddr([0; 6]),
            sender_ip: Ipv4Addr::new(192, 0, 2, 2),
            target_mac: A,
            target_ip: Ipv4Addr::new(192, 0, 2, 1),
        };
        let f = eth().frame_arp(&arp);
        assert_eq!(f.len(), ETH_LEN + 28);
        let p = crate::wire::ArpPacket::new_checked(&f[ETH_LEN..]).unwrap();
        assert_eq!((p.sender_mac(), p.sender_ip()), (MacAddr([0; 6]), arp.sender_ip));
    }
}
