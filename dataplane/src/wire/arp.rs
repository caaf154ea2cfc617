//! ARP (RFC 826) for Ethernet and IPv4 only.

use std::net::Ipv4Addr;

use super::{read_ipv4, read_mac, read_u16, write_ipv4, write_mac, write_u16, EtherType, WireError};
use crate::net::MacAddr;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

const HTYPE_ETHERNET: u16 = 1;

/// An ARP operation code. Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArpOperation(pub u16);

impl ArpOperation {
    pub const REQUEST: ArpOperation = ArpOperation(1);
    pub const REPLY: ArpOperation = ArpOperation(2);
}

/// A view of an Ethernet/IPv4 ARP packet (28 bytes; trailing padding is ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const LEN: usize = field::END;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Checks the length and that the packet is for Ethernet (htype 1, hlen 6) and IPv4
    /// (ptype 0x0800, plen 4); anything else is `Unsupported`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = ArpPacket { buffer };
        if p.buffer.as_ref().len() < Self::LEN {
            return Err(WireError::Truncated);
        }
        if p.hardware_type() != HTYPE_ETHERNET
            || p.protocol_type() != EtherType::IPV4.0
            || p.hardware_len() != 6
            || p.protocol_len() != 4
        {
            return Err(WireError::Unsupported);
        }
        Ok(p)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PTYPE)
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> ArpOperation {
        ArpOperation(read_u16(self.buffer.as_ref(), field::OPER))
    }

    #[inline]
    pub fn sender_mac(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::SHA)
    }

    #[inline]
    pub fn sender_ip(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SPA)
    }

    #[inline]
    pub fn target_mac(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::THA)
    }

    #[inline]
    pub fn target_ip(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    #[inline]
    pub fn set_hardware_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::HTYPE, v)
    }

    #[inline]
    pub fn set_protocol_type(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PTYPE, v)
    }

    #[inline]
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v
    }

    #[inline]
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v
    }

    #[inline]
    pub fn set_operation(&mut self, v: ArpOperation) {
        write_u16(self.buffer.as_mut(), field::OPER, v.0)
    }

    #[inline]
    pub fn set_sender_mac(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::SHA, v)
    }

    #[inline]
    pub fn set_sender_ip(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SPA, v)
    }

    #[inline]
    pub fn set_target_mac(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::THA, v)
    }

    #[inline]
    pub fn set_target_ip(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::TPA, v)
    }
}

/// Writes a complete 28-byte Ethernet/IPv4 ARP packet into `buf[..28]` and returns 28.
/// Panics if `buf` is shorter than 28 bytes.
pub fn emit_arp(
    buf: &mut [u8],
    op: ArpOperation,
    sender_mac: MacAddr,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
) -> usize {
    let mut p = ArpPacket::new_unchecked(&mut buf[..field::END]);
    p.set_hardware_type(HTYPE_ETHERNET);
    p.set_protocol_type(EtherType::IPV4.0);
    p.set_hardware_len(6);
    p.set_protocol_len(4);
    p.set_operation(op);
    p.set_sender_mac(sender_mac);
    p.set_sender_ip(sender_ip);
    p.set_target_mac(target_mac);
    p.set_target_ip(target_ip);
    field::END
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    const A: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

    fn golden_arp() -> &'static [u8] {
        &golden::ARP_REQUEST[14..]
    }

    #[test]
    fn parse_golden_request() {
        let p = ArpPacket::new_checked(golden_arp()).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), 0x0800);
        assert_eq!(p.hardware_len(), 6);
        assert_eq!(p.protocol_len(), 4);
        assert_eq!(p.operation(), ArpOperation::REQUEST);
        assert_eq!(p.sender_mac(), A);
        assert_eq!(p.sender_ip(), Ipv4Addr::new(192, 168, 122, 10));
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), Ipv4Addr::new(192, 168, 122, 1));
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 28];
        let n = emit_arp(
            &mut b,
            ArpOperation::REQUEST,
            A,
            Ipv4Addr::new(192, 168, 122, 10),
            MacAddr::ZERO,
            Ipv4Addr::new(192, 168, 122, 1),
        );
        assert_eq!(n, 28);
        assert_eq!(&b[..], &golden_arp()[..28]);
    }

    #[test]
    fn rejects_truncated_and_unsupported() {
        for n in 0..28 {
            assert_eq!(ArpPacket::new_checked(&golden_arp()[..n]).unwrap_err(), WireError::Truncated);
        }
        for (at, v) in [(1, 6u8), (2, 0x86), (4, 16), (5, 16)] {
            let mut b = golden_arp().to_vec();
            b[at] = v;
            assert_eq!(ArpPacket::new_checked(&b[..]).unwrap_err(), WireError::Unsupported, "byte {at}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            op in any::<u16>(), sm in any::<[u8; 6]>(), si in any::<u32>(), tm in any::<[u8; 6]>(), ti in any::<u32>(),
        ) {
            let mut b = [0xeeu8; 28];
            emit_arp(&mut b, ArpOperation(op), MacAddr(sm), si.into(), MacAddr(tm), ti.into());
            let p = ArpPacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.operation(), ArpOperation(op));
            prop_assert_eq!(p.sender_mac(), MacAddr(sm));
            prop_assert_eq!(p.sender_ip(), Ipv4Addr::from(si));
            prop_assert_eq!(p.target_mac(), MacAddr(tm));
            prop_assert_eq!(p.target_ip(), Ipv4Addr::from(ti));
        }
    }
}
