//! IPv6 fixed headers (RFC 8200).
//!
//! Extension headers are not walked: `next_header()` is the fixed header's field, and
//! `payload()` starts right after the 40 fixed bytes, extension headers included.

use std::net::Ipv6Addr;

use super::{
    clamped, clamped_mut, read_ipv6, read_u16, read_u32, write_ipv6, write_u16, write_u32, IpProtocol, WireError,
};

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// A view of an IPv6 packet. The buffer may extend past the payload (Ethernet padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const HEADER_LEN: usize = field::PAYLOAD;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Checks: at least 40 bytes, version 6, `40 + payload_len <= len`.
    /// Jumbograms (payload length 0 with a hop-by-hop option) are not supported: they parse
    /// as an empty payload.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Ipv6Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if Self::HEADER_LEN + p.payload_len() as usize > len {
            return Err(WireError::Truncated);
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
    fn ver_tc_flow(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW)
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        read_ipv6(self.buffer.as_ref(), field::DST)
    }

    /// Bytes `40..40 + payload_len` (extension headers included, padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::PAYLOAD, field::PAYLOAD + self.payload_len() as usize)
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// Like `payload()`, but borrowing the underlying buffer rather than the view, so the
    /// next layer's view can outlive this one.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let end = field::PAYLOAD + self.payload_len() as usize;
        clamped(self.buffer, field::PAYLOAD, end)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline]
    fn set_ver_tc_flow(&mut self, mask: u32, v: u32) {
        let d = self.buffer.as_mut();
        let old = read_u32(d, field::VER_TC_FLOW);
        write_u32(d, field::VER_TC_FLOW, (old & !mask) | (v & mask));
    }

    #[inline]
    pub fn set_version(&mut self, v: u8) {
        self.set_ver_tc_flow(0xf000_0000, (v as u32) << 28)
    }

    #[inline]
    pub fn set_traffic_class(&mut self, v: u8) {
        self.set_ver_tc_flow(0x0ff0_0000, (v as u32) << 20)
    }

    /// Sets the flow label (only the low 20 bits are kept).
    #[inline]
    pub fn set_flow_label(&mut self, v: u32) {
        self.set_ver_tc_flow(0x000f_ffff, v)
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, v)
    }

    #[inline]
    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v.0
    }

    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v
    }

    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv6Addr) {
        write_ipv6(self.buffer.as_mut(), field::SRC, v)
    }

    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv6Addr) {
        write_ipv6(self.buffer.as_mut(), field::DST, v)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = field::PAYLOAD + self.payload_len() as usize;
        clamped_mut(self.buffer.as_mut(), field::PAYLOAD, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    #[test]
    fn parse_golden_echo() {
        let p = Ipv6Packet::new_checked(&golden::ICMPV6_ECHO_REQUEST[14..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 24);
        assert_eq!(p.next_header(), IpProtocol::ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 24);
        assert_eq!(p.payload()[0], 128);
    }

    #[test]
    fn parse_golden_ns() {
        let p = Ipv6Packet::new_checked(&golden::IPV6_NEIGHBOR_SOLICIT[14..]).unwrap();
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.payload_len(), 32);
        assert_eq!(p.src_addr(), "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 40];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_flow_label(0x12345);
        p.set_payload_len(24);
        p.set_next_header(IpProtocol::ICMPV6);
        p.set_hop_limit(64);
        p.set_src_addr("2001:db8::1".parse().unwrap());
        p.set_dst_addr("2001:db8::2".parse().unwrap());
        assert_eq!(&b[..], &golden::ICMPV6_ECHO_REQUEST[14..54]);
    }

    #[test]
    fn rejects_bad_headers() {
        let good = &golden::ICMPV6_ECHO_REQUEST[14..];
        for n in 0..40 {
            assert_eq!(Ipv6Packet::new_checked(&good[..n]).unwrap_err(), WireError::Truncated);
        }
        // Shorter than the payload length says.
        assert_eq!(Ipv6Packet::new_checked(&good[..good.len() - 1]).unwrap_err(), WireError::Truncated);
        let mut b = good.to_vec();
        b[0] = 0x45;
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap_err(), WireError::BadVersion);
    }

    proptest! {
        #[test]
        fn round_trip(
            tc in any::<u8>(), flow in 0u32..0x10_0000, plen in 0u16..=20, nh in any::<u8>(), hl in any::<u8>(),
            src in any::<u128>(), dst in any::<u128>(),
        ) {
            let mut b = [0u8; 60];
            let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
            p.set_version(6);
            p.set_traffic_class(tc);
            p.set_flow_label(flow);
            p.set_payload_len(plen);
            p.set_next_header(IpProtocol(nh));
            p.set_hop_limit(hl);
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.version(), 6);
            prop_assert_eq!(p.traffic_class(), tc);
            prop_assert_eq!(p.flow_label(), flow);
            prop_assert_eq!(p.payload_len(), plen);
            prop_assert_eq!(p.next_header(), IpProtocol(nh));
            prop_assert_eq!(p.hop_limit(), hl);
            prop_assert_eq!(p.src_addr(), Ipv6Addr::from(src));
            prop_assert_eq!(p.dst_addr(), Ipv6Addr::from(dst));
            prop_assert_eq!(p.payload().len(), plen as usize);
        }
    }
}
