//! Calls every view's constructor, getters and setters on arbitrary bytes. Shared by the
//! property tests and the fuzz target so that a new accessor only has to be added here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    summarize, ArpOperation, ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, Icmpv4Type, Icmpv6Packet, Icmpv6Type,
    IpProtocol, Ipv4Packet, Ipv6Packet, TcpFlags, TcpPacket, UdpPacket,
};
use crate::net::MacAddr;

/// Mixes every value read so the calls cannot be optimised away.
struct Acc(u64);

impl Acc {
    fn add(&mut self, v: u64) {
        self.0 = self.0.rotate_left(5) ^ v.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn bytes(&mut self, b: &[u8]) {
        self.add(b.len() as u64);
        for x in b.iter().take(64) {
            self.add(*x as u64);
        }
    }
    fn mac(&mut self, m: MacAddr) {
        self.bytes(&m.0);
    }
    fn v4(&mut self, a: Ipv4Addr) {
        self.add(u32::from(a) as u64);
    }
    fn v6(&mut self, a: Ipv6Addr) {
        let v = u128::from(a);
        self.add(v as u64 ^ (v >> 64) as u64);
    }
}

fn eth<T: AsRef<[u8]>>(p: &EthernetFrame<T>, a: &mut Acc) {
    a.mac(p.dst());
    a.mac(p.src());
    a.add(p.ethertype().0 as u64);
    a.bytes(p.payload());
    a.bytes(p.as_bytes());
}

/// The lifetime-preserving payloads, for views over plain slices.
fn into_payloads(d: &[u8], a: &mut Acc) {
    if let Ok(p) = EthernetFrame::new_checked(d) {
        a.bytes(p.into_payload());
    }
    if let Ok(p) = Ipv4Packet::new_checked(d) {
        a.bytes(p.into_payload());
    }
    if let Ok(p) = Ipv6Packet::new_checked(d) {
        a.bytes(p.into_payload());
    }
    if let Ok(p) = TcpPacket::new_checked(d) {
        a.bytes(p.into_payload());
    }
    if let Ok(p) = UdpPacket::new_checked(d) {
        a.bytes(p.into_payload());
    }
}

fn arp<T: AsRef<[u8]>>(p: &ArpPacket<T>, a: &mut Acc) {
    a.add(p.hardware_type() as u64);
    a.add(p.protocol_type() as u64);
    a.add(p.hardware_len() as u64);
    a.add(p.protocol_len() as u64);
    a.add(p.operation().0 as u64);
    a.mac(p.sender_mac());
    a.v4(p.sender_ip());
    a.mac(p.target_mac());
    a.v4(p.target_ip());
}

fn ipv4<T: AsRef<[u8]>>(p: &Ipv4Packet<T>, a: &mut Acc) {
    a.add(p.version() as u64);
    a.add(p.header_len() as u64);
    a.add(p.dscp() as u64);
    a.add(p.ecn() as u64);
    a.add(p.total_len() as u64);
    a.add(p.ident() as u64);
    a.add(p.dont_frag() as u64);
    a.add(p.more_frags() as u64);
    a.add(p.frag_offset() as u64);
    a.add(p.is_fragment() as u64);
    a.add(p.ttl() as u64);
    a.add(p.protocol().0 as u64);
    a.add(p.checksum() as u64);
    a.v4(p.src_addr());
    a.v4(p.dst_addr());
    a.bytes(p.header());
    a.bytes(p.options());
    a.bytes(p.payload());
    a.add(p.verify_checksum() as u64);
}

fn ipv6<T: AsRef<[u8]>>(p: &Ipv6Packet<T>, a: &mut Acc) {
    a.add(p.version() as u64);
    a.add(p.traffic_class() as u64);
    a.add(p.flow_label() as u64);
    a.add(p.payload_len() as u64);
    a.add(p.next_header().0 as u64);
    a.add(p.hop_limit() as u64);
    a.v6(p.src_addr());
    a.v6(p.dst_addr());
    a.bytes(p.payload());
}

fn icmpv4<T: AsRef<[u8]>>(p: &Icmpv4Packet<T>, a: &mut Acc) {
    a.add(p.msg_type().0 as u64);
    a.add(p.code() as u64);
    a.add(p.checksum() as u64);
    a.add(p.echo_ident() as u64);
    a.add(p.echo_seq_no() as u64);
    a.add(p.next_hop_mtu() as u64);
    a.bytes(p.data());
    a.add(p.verify_checksum() as u64);
}

fn icmpv6<T: AsRef<[u8]>>(p: &Icmpv6Packet<T>, a: &mut Acc, src: Ipv6Addr, dst: Ipv6Addr) {
    a.add(p.msg_type().0 as u64);
    a.add(p.code() as u64);
    a.add(p.checksum() as u64);
    a.add(p.echo_ident() as u64);
    a.add(p.echo_seq_no() as u64);
    a.add(p.mtu() as u64);
    a.bytes(p.data());
    if let Some(t) = p.ndisc_target() {
        a.v6(t);
    }
    a.add(p.na_router() as u64);
    a.add(p.na_solicited() as u64);
    a.add(p.na_override() as u64);
    // Bounded by the buffer: every item consumes at least 8 bytes or ends the walk.
    for o in p.ndisc_options() {
        match o {
            Ok(o) => {
                a.add(o.kind as u64);
                a.bytes(o.data);
            }
            Err(e) => a.add(e as u64),
        }
    }
    a.add(format_result(p.source_link_addr()));
    a.add(format_result(p.target_link_addr()));
    a.add(p.verify_checksum(src, dst) as u64);
}

fn format_result(r: Result<Option<MacAddr>, super::WireError>) -> u64 {
    match r {
        Ok(Some(m)) => m.0.iter().fold(1, |x, b| x * 31 + *b as u64),
        Ok(None) => 2,
        Err(e) => 3 + e as u64,
    }
}

fn tcp<T: AsRef<[u8]>>(p: &TcpPacket<T>, a: &mut Acc, src: IpAddr, dst: IpAddr) {
    a.add(p.src_port() as u64);
    a.add(p.dst_port() as u64);
    a.add(p.seq_number() as u64);
    a.add(p.ack_number() as u64);
    a.add(p.header_len() as u64);
    a.add(p.flags().bits() as u64);
    a.add(p.window() as u64);
    a.add(p.checksum() as u64);
    a.add(p.urgent() as u64);
    a.bytes(p.options());
    a.bytes(p.payload());
    a.add(p.verify_checksum(src, dst) as u64);
}

fn udp<T: AsRef<[u8]>>(p: &UdpPacket<T>, a: &mut Acc, src: IpAddr, dst: IpAddr) {
    a.add(p.src_port() as u64);
    a.add(p.dst_port() as u64);
    a.add(p.length() as u64);
    a.add(p.checksum() as u64);
    a.bytes(p.payload());
    a.add(p.verify_checksum(src, dst) as u64);
}

/// Every view on `d` at offset 0, read-only.
fn read_all(d: &[u8], a: &mut Acc) {
    let (s4, d4) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([198, 51, 100, 7]));
    let (s6, d6) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(p) = EthernetFrame::new_checked(d) {
        eth(&p, a);
    }
    if let Ok(p) = ArpPacket::new_checked(d) {
        arp(&p, a);
    }
    if let Ok(p) = Ipv4Packet::new_checked(d) {
        ipv4(&p, a);
    }
    if let Ok(p) = Ipv6Packet::new_checked(d) {
        ipv6(&p, a);
    }
    if let Ok(p) = Icmpv4Packet::new_checked(d) {
        icmpv4(&p, a);
    }
    if let Ok(p) = Icmpv6Packet::new_checked(d) {
        icmpv6(&p, a, s6, d6);
    }
    if let Ok(p) = TcpPacket::new_checked(d) {
        tcp(&p, a, s4, d4);
        tcp(&p, a, s6.into(), d6.into());
        tcp(&p, a, s4, d6.into());
    }
    if let Ok(p) = UdpPacket::new_checked(d) {
        udp(&p, a, s4, d4);
        udp(&p, a, s6.into(), d6.into());
    }
}

/// Every view on a mutable copy: set fields from the input's own bytes (which can make the
/// header inconsistent with what was checked), then read everything again.
fn write_all(d: &mut [u8], a: &mut Acc) {
    let seed = d.iter().fold(0u64, |x, b| x.rotate_left(7) ^ *b as u64);
    let (b8, b16, b32) = (seed as u8, seed as u16, seed as u32);
    let mac = MacAddr([b8, b8 ^ 1, b8 ^ 2, b8 ^ 3, b8 ^ 4, b8 ^ 5]);
    let v4 = Ipv4Addr::from(b32);
    let v6 = Ipv6Addr::from((seed as u128) << 64 | seed as u128);

    if let Ok(mut p) = EthernetFrame::new_checked(&mut *d) {
        p.set_dst(mac);
        p.set_src(mac);
        p.set_ethertype(EtherType(b16));
        p.payload_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        eth(&p, a);
    }
    if let Ok(mut p) = ArpPacket::new_checked(&mut *d) {
        p.set_operation(ArpOperation(b16));
        p.set_sender_mac(mac);
        p.set_sender_ip(v4);
        p.set_target_mac(mac);
        p.set_target_ip(v4);
        p.set_hardware_type(b16);
        p.set_protocol_type(b16);
        p.set_hardware_len(b8);
        p.set_protocol_len(b8);
        arp(&p, a);
    }
    if let Ok(mut p) = Ipv4Packet::new_checked(&mut *d) {
        p.set_version(b8);
        p.set_header_len(b8);
        p.set_dscp(b8);
        p.set_ecn(b8);
        p.set_total_len(b16);
        p.set_ident(b16);
        p.set_dont_frag(b8 & 1 != 0);
        p.set_more_frags(b8 & 2 != 0);
        p.set_frag_offset(b16);
        p.set_ttl(b8);
        p.set_protocol(IpProtocol(b8));
        p.set_src_addr(v4);
        p.set_dst_addr(v4);
        p.fill_checksum();
        p.options_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        p.payload_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        ipv4(&p, a);
    }
    if let Ok(mut p) = Ipv6Packet::new_checked(&mut *d) {
        p.set_version(b8);
        p.set_traffic_class(b8);
        p.set_flow_label(b32);
        p.set_payload_len(b16);
        p.set_next_header(IpProtocol(b8));
        p.set_hop_limit(b8);
        p.set_src_addr(v6);
        p.set_dst_addr(v6);
        p.payload_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        ipv6(&p, a);
    }
    if let Ok(mut p) = Icmpv4Packet::new_checked(&mut *d) {
        p.set_msg_type(Icmpv4Type(b8));
        p.set_code(b8);
        p.set_echo_ident(b16);
        p.set_echo_seq_no(b16);
        p.set_next_hop_mtu(b16);
        p.data_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        p.fill_checksum();
        icmpv4(&p, a);
    }
    if let Ok(mut p) = Icmpv6Packet::new_checked(&mut *d) {
        p.set_msg_type(Icmpv6Type(b8));
        p.set_code(b8);
        p.set_echo_ident(b16);
        p.set_echo_seq_no(b16);
        p.set_mtu(b32);
        p.set_na_router(b8 & 1 != 0);
        p.set_na_solicited(b8 & 2 != 0);
        p.set_na_override(b8 & 4 != 0);
        if p.as_bytes().len() >= 24 {
            p.set_ndisc_target(v6);
        }
        p.data_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        p.fill_checksum(v6, v6);
        icmpv6(&p, a, v6, v6);
    }
    if let Ok(mut p) = TcpPacket::new_checked(&mut *d) {
        p.set_src_port(b16);
        p.set_dst_port(b16);
        p.set_seq_number(b32);
        p.set_ack_number(b32);
        p.set_header_len(b8);
        p.set_flags(TcpFlags::from_bits_retain(b8));
        p.set_window(b16);
        p.set_urgent(b16);
        p.fill_checksum(v4.into(), v4.into());
        p.options_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        p.payload_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        tcp(&p, a, v4.into(), v4.into());
    }
    if let Ok(mut p) = UdpPacket::new_checked(&mut *d) {
        p.set_src_port(b16);
        p.set_dst_port(b16);
        p.set_length(b16);
        p.fill_checksum(v6.into(), v6.into());
        p.payload_mut().iter_mut().take(4).for_each(|x| *x ^= b8);
        udp(&p, a, v6.into(), v6.into());
    }
}

/// Runs `summarize` and every view (at offset 0 and at each layer's payload) on `data`,
/// calling every getter, then every setter on a copy of up to 1500 bytes. Panics only if an
/// accessor does. For tests and fuzzing; not part of the data path.
#[doc(hidden)]
pub fn exercise_views(data: &[u8]) -> u64 {
    let mut a = Acc(0);
    match summarize(data) {
        Ok(s) => a.add(s.ethertype.0 as u64 ^ s.ports.map_or(0, |p| p.0 as u64)),
        Err(e) => a.add(e.as_str().len() as u64),
    }
    read_all(data, &mut a);
    into_payloads(data, &mut a);
    if let Ok(e) = EthernetFrame::new_checked(data) {
        let l3 = e.payload();
        read_all(l3, &mut a);
        if let Ok(ip) = Ipv4Packet::new_checked(l3) {
            read_all(ip.payload(), &mut a);
        }
        if let Ok(ip) = Ipv6Packet::new_checked(l3) {
            read_all(ip.payload(), &mut a);
        }
    }
    let mut copy = [0u8; 1500];
    let n = data.len().min(copy.len());
    copy[..n].copy_from_slice(&data[..n]);
    write_all(&mut copy[..n], &mut a);
    if n >= 14 {
        write_all(&mut copy[14..n], &mut a);
    }
    a.0
}
