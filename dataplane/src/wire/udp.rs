//! UDP headers (RFC 768).

use std::net::IpAddr;

use super::checksum;
use super::{clamped, clamped_mut, read_u16, write_u16, IpProtocol, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP datagram. The datagram is `0..length`; bytes past it are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const HEADER_LEN: usize = field::PAYLOAD;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Checks: at least 8 bytes, `8 <= length <= len`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = UdpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let l = p.length() as usize;
        if l < Self::HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if l > len {
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
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus payload.
    #[inline]
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes `8..length`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::PAYLOAD, self.length() as usize)
    }

    /// The datagram (`0..length`), clamped to the buffer.
    #[inline]
    fn datagram(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, self.length() as usize)
    }

    #[inline]
    fn sum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let d = self.datagram();
        // The pseudo-header carries the length field, like the datagram itself.
        let ph = checksum::pseudo_header(src, dst, IpProtocol::UDP.0, self.length() as u32);
        checksum::fold(ph + checksum::sum(d))
    }

    /// True when the checksum is correct. Over IPv4 a zero checksum means "none" and passes;
    /// over IPv6 it is mandatory (RFC 8200), so zero fails.
    #[inline]
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        self.sum(src, dst) == 0xffff
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// Like `payload()`, but borrowing the underlying buffer rather than the view, so the
    /// next layer's view can outlive this one.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let l = self.length() as usize;
        clamped(self.buffer, field::PAYLOAD, l)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    #[inline]
    pub fn set_length(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, v)
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.length() as usize;
        clamped_mut(self.buffer.as_mut(), field::PAYLOAD, l)
    }

    /// Computes the checksum and stores it. A computed 0 is sent as 0xffff (RFC 768), since 0
    /// means "no checksum".
    #[inline]
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let c = !self.sum(src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn dns() -> &'static [u8] {
        &golden::UDP_DNS_QUERY[34..]
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";

    #[test]
    fn parse_golden_dns() {
        let p = UdpPacket::new_checked(dns()).unwrap();
        assert_eq!(p.src_port(), 53000);
        assert_eq!(p.dst_port(), 53);
        assert_eq!(p.length(), 37);
        assert_eq!(p.checksum(), 0x7ca8);
        assert_eq!(p.payload(), QUERY);
        assert!(p.verify_checksum(v4(192, 168, 1, 100), v4(8, 8, 8, 8)));
        assert!(!p.verify_checksum(v4(192, 168, 1, 101), v4(8, 8, 8, 8)));
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 37];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(53000);
        p.set_dst_port(53);
        p.set_length(37);
        p.payload_mut().copy_from_slice(QUERY);
        p.fill_checksum(v4(192, 168, 1, 100), v4(8, 8, 8, 8));
        assert_eq!(&b[..], dns());
    }

    #[test]
    fn trailing_bytes_are_ignored() {
        let mut b = dns().to_vec();
        b.extend_from_slice(&[0xde, 0xad]);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), QUERY);
        assert!(p.verify_checksum(v4(192, 168, 1, 100), v4(8, 8, 8, 8)));
    }

    #[test]
    fn zero_checksum() {
        let mut b = dns().to_vec();
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        p.set_checksum(0);
        assert!(p.verify_checksum(v4(1, 1, 1, 1), v4(2, 2, 2, 2)), "IPv4: 0 means no checksum");
        let s6: IpAddr = "2001:db8::1".parse::<Ipv6Addr>().unwrap().into();
        assert!(!p.verify_checksum(s6, s6), "IPv6: checksum is mandatory");
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose the source port so that the full sum is 0xffff (computed checksum 0).
        let (s, d) = (v4(10, 0, 0, 1), v4(10, 0, 0, 2));
        let mut b = [0u8; 8];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.set_length(8);
        p.set_dst_port(53);
        let partial = checksum::fold(checksum::pseudo_header(s, d, 17, 8) + checksum::sum(p.as_bytes()));
        p.set_src_port(0xffff - partial);
        p.fill_checksum(s, d);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(s, d));
    }

    #[test]
    fn rejects_bad_headers() {
        for n in 0..8 {
            assert_eq!(UdpPacket::new_checked(&dns()[..n]).unwrap_err(), WireError::Truncated);
        }
        assert_eq!(UdpPacket::new_checked(&dns()[..36]).unwrap_err(), WireError::Truncated);
        let mut b = dns().to_vec();
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap_err(), WireError::BadLength);
    }

    proptest! {
        #[test]
        fn round_trip(sp in any::<u16>(), dp in any::<u16>(), len in 8u16..=40, c in any::<u16>()) {
            let mut b = [0u8; 40];
            let mut p = UdpPacket::new_unchecked(&mut b[..]);
            p.set_src_port(sp);
            p.set_dst_port(dp);
            p.set_length(len);
            p.set_checksum(c);
            let p = UdpPacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.src_port(), sp);
            prop_assert_eq!(p.dst_port(), dp);
            prop_assert_eq!(p.length(), len);
            prop_assert_eq!(p.checksum(), c);
            prop_assert_eq!(p.payload().len(), len as usize - 8);
        }

        #[test]
        fn incremental_dnat(
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            sport in any::<u16>(), src in any::<u32>(), dst in any::<u32>(), new_dst in any::<u32>(),
            new_port in any::<u16>(),
        ) {
            let (s, d, nd) = (IpAddr::from(Ipv4Addr::from(src)), Ipv4Addr::from(dst), Ipv4Addr::from(new_dst));
            let mut b = vec![0u8; 8 + payload.len()];
            let len = b.len() as u16;
            let mut p = UdpPacket::new_unchecked(&mut b[..]);
            p.set_src_port(sport);
            p.set_dst_port(53);
            p.set_length(len);
            p.payload_mut().copy_from_slice(&payload);
            p.fill_checksum(s, d.into());
            // A sender's 0xffff stands for a computed 0; eqn. 3 treats it as the same value
            // (one's-complement -0 = +0) so no special case is needed on the way in. On the
            // way out the result must again avoid 0, which means "no checksum".
            let mut c = checksum::update_u32(p.checksum(), d.into(), nd.into());
            c = checksum::update_u16(c, 53, new_port);
            if c == 0 {
                c = 0xffff;
            }
            p.set_dst_port(new_port);
            p.set_checksum(c);
            prop_assert!(p.verify_checksum(s, nd.into()));
            p.fill_checksum(s, nd.into());
            prop_assert_eq!(p.checksum(), c);
        }
    }
}
