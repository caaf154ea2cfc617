//! A one-call parse of a whole frame, for tests, logs and the fuzz target.

use std::net::IpAddr;

use super::{
    ArpOperation, ArpPacket, EtherType, EthernetFrame, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv6Packet,
    TcpPacket, UdpPacket, WireError,
};

/// What `summarize` found in a frame. Fields a frame does not have are `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameSummary {
    pub ethertype: EtherType,
    /// IPv4 protocol or IPv6 next header (not walked past extension headers).
    pub protocol: Option<IpProtocol>,
    /// IP source and destination; for ARP the sender and target protocol addresses.
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    /// TCP or UDP (source, destination) ports.
    pub ports: Option<(u16, u16)>,
    /// ICMP or ICMPv6 (type, code).
    pub icmp: Option<(u8, u8)>,
    pub arp_op: Option<ArpOperation>,
    /// An IPv4 fragment: its L4 header is not parsed, even in the first fragment.
    pub fragment: bool,
}

/// Walks Ethernet -> ARP / IPv4 / IPv6 -> ICMP / ICMPv6 / TCP / UDP with the checked
/// constructors. Unknown ethertypes and protocols end the walk with `Ok`; a malformed header
/// at any layer is an `Err`. Checksums are not verified.
pub fn summarize(frame: &[u8]) -> Result<FrameSummary, WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut s = FrameSummary {
        ethertype: eth.ethertype(),
        protocol: None,
        src: None,
        dst: None,
        ports: None,
        icmp: None,
        arp_op: None,
        fragment: false,
    };
    match s.ethertype {
        EtherType::ARP => {
            let arp = ArpPacket::new_checked(eth.payload())?;
            s.arp_op = Some(arp.operation());
            s.src = Some(arp.sender_ip().into());
            s.dst = Some(arp.target_ip().into());
        }
        EtherType::IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            s.protocol = Some(ip.protocol());
            s.src = Some(ip.src_addr().into());
            s.dst = Some(ip.dst_addr().into());
            s.fragment = ip.is_fragment();
            if !s.fragment {
                l4(&mut s, ip.payload())?;
            }
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            s.protocol = Some(ip.next_header());
            s.src = Some(ip.src_addr().into());
            s.dst = Some(ip.dst_addr().into());
            l4(&mut s, ip.payload())?;
        }
        _ => {}
    }
    Ok(s)
}

fn l4(s: &mut FrameSummary, l4: &[u8]) -> Result<(), WireError> {
    match (s.ethertype, s.protocol) {
        (_, Some(IpProtocol::TCP)) => {
            let tcp = TcpPacket::new_checked(l4)?;
            s.ports = Some((tcp.src_port(), tcp.dst_port()));
        }
        (_, Some(IpProtocol::UDP)) => {
            let udp = UdpPacket::new_checked(l4)?;
            s.ports = Some((udp.src_port(), udp.dst_port()));
        }
        (EtherType::IPV4, Some(IpProtocol::ICMP)) => {
            let icmp = Icmpv4Packet::new_checked(l4)?;
            s.icmp = Some((icmp.msg_type().0, icmp.code()));
        }
        (EtherType::IPV6, Some(IpProtocol::ICMPV6)) => {
            let icmp = Icmpv6Packet::new_checked(l4)?;
            s.icmp = Some((icmp.msg_type().0, icmp.code()));
        }
        _ => {}
    }
    Ok(())
}
