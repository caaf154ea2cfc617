//! Ethernet II frames. VLAN tags are not parsed: a tagged frame shows ethertype 0x8100.

use super::{read_mac, read_u16, write_mac, write_u16, EtherType, WireError};
use crate::net::MacAddr;

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// A view of an Ethernet II frame (without FCS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps a buffer without checking it.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer holding at least the 14-byte header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(EthernetFrame { buffer })
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
    pub fn dst(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src(&self) -> MacAddr {
        read_mac(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn ethertype(&self) -> EtherType {
        EtherType(read_u16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[field::PAYLOAD.min(d.len())..]
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// Like `payload()`, but borrowing the underlying buffer rather than the view, so the
    /// next layer's view can outlive this one.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        &self.buffer[field::PAYLOAD.min(self.buffer.len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_dst(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::DST, v)
    }

    #[inline]
    pub fn set_src(&mut self, v: MacAddr) {
        write_mac(self.buffer.as_mut(), field::SRC, v)
    }

    #[inline]
    pub fn set_ethertype(&mut self, v: EtherType) {
        write_u16(self.buffer.as_mut(), field::ETHERTYPE, v.0)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let d = self.buffer.as_mut();
        let start = field::PAYLOAD.min(d.len());
        &mut d[start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    #[test]
    fn parse_golden_arp_frame() {
        let f = EthernetFrame::new_checked(&golden::ARP_REQUEST[..]).unwrap();
        assert_eq!(f.dst(), MacAddr::BROADCAST);
        assert_eq!(f.src(), MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        assert_eq!(f.ethertype(), EtherType::ARP);
        assert_eq!(f.payload().len(), golden::ARP_REQUEST.len() - 14);
    }

    #[test]
    fn vlan_is_not_parsed() {
        let mut b = [0u8; 18];
        b[12] = 0x81;
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::VLAN);
        assert_eq!(f.payload().len(), 4);
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 14];
        let mut f = EthernetFrame::new_unchecked(&mut b[..]);
        f.set_dst(MacAddr::BROADCAST);
        f.set_src(MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]));
        f.set_ethertype(EtherType::ARP);
        assert_eq!(&b[..], &golden::ARP_REQUEST[..14]);
    }

    #[test]
    fn rejects_truncated() {
        for n in 0..14 {
            assert_eq!(EthernetFrame::new_checked(&golden::ARP_REQUEST[..n]).unwrap_err(), WireError::Truncated);
        }
        assert!(EthernetFrame::new_checked(&golden::ARP_REQUEST[..14]).is_ok());
    }

    proptest! {
        #[test]
        fn round_trip(dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(), et in any::<u16>(), extra in 0usize..20) {
            let mut b = vec![0u8; 14 + extra];
            let mut f = EthernetFrame::new_checked(&mut b[..]).unwrap();
            f.set_dst(MacAddr(dst));
            f.set_src(MacAddr(src));
            f.set_ethertype(EtherType(et));
            f.payload_mut().fill(0xaa);
            prop_assert_eq!(f.dst(), MacAddr(dst));
            prop_assert_eq!(f.src(), MacAddr(src));
            prop_assert_eq!(f.ethertype(), EtherType(et));
            prop_assert_eq!(f.payload().len(), extra);
            prop_assert!(f.payload().iter().all(|b| *b == 0xaa));
        }
    }
}
