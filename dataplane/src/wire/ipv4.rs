//! IPv4 headers (RFC 791).

use std::net::Ipv4Addr;

use super::checksum;
use super::{clamped, clamped_mut, read_ipv4, read_u16, write_ipv4, write_u16, IpProtocol, WireError};

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet. The buffer may extend past `total_len` (Ethernet padding):
/// `payload()` stops at `total_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = field::OPTIONS;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Checks: at least 20 bytes, version 4, `20 <= header_len <= len`,
    /// `header_len <= total_len <= len`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Ipv4Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if p.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let hl = p.header_len() as usize;
        if hl < Self::HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if hl > len {
            return Err(WireError::Truncated);
        }
        let tl = p.total_len() as usize;
        if tl < hl {
            return Err(WireError::BadTotalLength);
        }
        if tl > len {
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
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::TOTAL_LEN)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_MASK) << 3
    }

    /// True for any fragment, first included: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & (FLAG_MF | FRAG_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol(self.buffer.as_ref()[field::PROTOCOL])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        read_ipv4(self.buffer.as_ref(), field::DST)
    }

    /// The header bytes (options included).
    #[inline]
    pub fn header(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), 0, self.header_len() as usize)
    }

    /// Option bytes, between the fixed header and `header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len() as usize)
    }

    /// Bytes `header_len..total_len`: link-layer padding is excluded.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), self.header_len() as usize, self.total_len() as usize)
    }

    /// True when the header checksum is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        match header.first_chunk() {
            Some(h) if header.len() == field::OPTIONS => checksum::ipv4_header_ok(h),
            _ => checksum::fold(checksum::sum(header)) == 0xffff,
        }
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// Like `payload()`, but borrowing the underlying buffer rather than the view, so the
    /// next layer's view can outlive this one.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let (h, t) = (self.header_len() as usize, self.total_len() as usize);
        clamped(self.buffer, h, t)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes; it is stored as IHL = len / 4 (low 4 bits kept).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    #[inline]
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (v << 2);
    }

    #[inline]
    pub fn set_ecn(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (v & 0x03);
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::TOTAL_LEN, v)
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT, v)
    }

    #[inline]
    fn set_flags_frag(&mut self, mask: u16, v: u16) {
        let d = self.buffer.as_mut();
        let old = read_u16(d, field::FLAGS_FRAG);
        write_u16(d, field::FLAGS_FRAG, (old & !mask) | (v & mask));
    }

    #[inline]
    pub fn set_dont_frag(&mut self, v: bool) {
        self.set_flags_frag(FLAG_DF, if v { FLAG_DF } else { 0 })
    }

    #[inline]
    pub fn set_more_frags(&mut self, v: bool) {
        self.set_flags_frag(FLAG_MF, if v { FLAG_MF } else { 0 })
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        self.set_flags_frag(FRAG_MASK, bytes >> 3)
    }

    #[inline]
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v
    }

    #[inline]
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.0
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_src_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::SRC, v)
    }

    #[inline]
    pub fn set_dst_addr(&mut self, v: Ipv4Addr) {
        write_ipv4(self.buffer.as_mut(), field::DST, v)
    }

    /// Computes the header checksum and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len() as usize;
        let buf = self.buffer.as_mut();
        match buf.first_chunk_mut::<{ field::OPTIONS }>() {
            Some(h) if hl == field::OPTIONS => {
                let c = checksum::ipv4_header_checksum(h);
                h[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&c);
            }
            _ => {
                let c = checksum::checksum(self.header());
                self.set_checksum(c);
            }
        }
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        clamped_mut(self.buffer.as_mut(), field::OPTIONS, hl)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len() as usize, self.total_len() as usize);
        clamped_mut(self.buffer.as_mut(), hl, tl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    fn icmp_ip() -> &'static [u8] {
        &golden::ICMP_ECHO_REQUEST[14..]
    }

    #[test]
    fn parse_golden_ping() {
        let p = Ipv4Packet::new_checked(icmp_ip()).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.dscp(), 0);
        assert_eq!(p.ecn(), 0);
        assert_eq!(p.total_len(), 84);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpProtocol::ICMP);
        assert_eq!(p.checksum(), 0xa906);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 122, 10));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 122, 1));
        assert!(p.options().is_empty());
        assert_eq!(p.payload().len(), 64);
        assert_eq!(p.payload()[0], 8);
    }

    #[test]
    fn parse_golden_dns_and_syn() {
        let p = Ipv4Packet::new_checked(&golden::UDP_DNS_QUERY[14..]).unwrap();
        assert_eq!(p.checksum(), 0xfcca);
        assert!(p.verify_checksum());
        assert!(!p.dont_frag());
        assert_eq!(p.ident(), 0xabcd);
        assert_eq!(p.protocol(), IpProtocol::UDP);
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 1, 100));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(8, 8, 8, 8));
        assert_eq!(p.total_len(), 57);
        let p = Ipv4Packet::new_checked(&golden::TCP_SYN[14..]).unwrap();
        assert_eq!(p.checksum(), 0xda5b);
        assert!(p.verify_checksum());
        assert_eq!(p.protocol(), IpProtocol::TCP);
        assert_eq!(p.total_len(), 60);
    }

    #[test]
    fn corrupted_checksum_fails() {
        let mut b = icmp_ip().to_vec();
        b[8] -= 1; // TTL
        assert!(!Ipv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
    }

    #[test]
    fn padding_is_excluded_from_payload() {
        // A 46-byte minimum Ethernet payload carrying a 28-byte IPv4 packet.
        let mut b = [0u8; 46];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(28);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 20];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_total_len(84);
        p.set_ident(0x1c46);
        p.set_dont_frag(true);
        p.set_ttl(64);
        p.set_protocol(IpProtocol::ICMP);
        p.set_src_addr(Ipv4Addr::new(192, 168, 122, 10));
        p.set_dst_addr(Ipv4Addr::new(192, 168, 122, 1));
        p.fill_checksum();
        assert_eq!(&b[..], &icmp_ip()[..20]);
    }

    #[test]
    fn options_and_fragments() {
        let mut b = [0u8; 40];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(24);
        p.set_total_len(40);
        p.options_mut().copy_from_slice(&[1, 1, 1, 0]);
        p.set_more_frags(true);
        p.set_frag_offset(1480);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 16);
        assert!(p.more_frags() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        let mut b2 = b;
        let mut p = Ipv4Packet::new_unchecked(&mut b2[..]);
        p.set_more_frags(false);
        assert!(p.is_fragment(), "last fragment has offset != 0");
        p.set_frag_offset(0);
        assert!(!p.is_fragment());
    }

    #[test]
    fn rejects_bad_headers() {
        let good = icmp_ip();
        for n in 0..20 {
            assert_eq!(Ipv4Packet::new_checked(&good[..n]).unwrap_err(), WireError::Truncated);
        }
        // Shorter than total_len.
        assert_eq!(Ipv4Packet::new_checked(&good[..83]).unwrap_err(), WireError::Truncated);
        let with = |at: usize, v: u8| {
            let mut b = good.to_vec();
            b[at] = v;
            Ipv4Packet::new_checked(b).map(|_| ())
        };
        assert_eq!(with(0, 0x65), Err(WireError::BadVersion));
        assert_eq!(with(0, 0x44), Err(WireError::BadHeaderLength));
        assert_eq!(with(0, 0x4f), Ok(()), "a 60-byte header still fits in total_len 84");
        let mut b = good[..40].to_vec();
        b[0] = 0x4f;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), WireError::Truncated);
        assert_eq!(with(3, 19), Err(WireError::BadTotalLength));
        assert_eq!(with(2, 1), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn round_trip(
            dscp in 0u8..64, ecn in 0u8..4, tl in 20u16..=60, ident in any::<u16>(), df in any::<bool>(),
            mf in any::<bool>(), off in 0u16..0x2000, ttl in any::<u8>(), proto in any::<u8>(),
            src in any::<u32>(), dst in any::<u32>(),
        ) {
            let mut b = [0u8; 60];
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_version(4);
            p.set_header_len(20);
            p.set_dscp(dscp);
            p.set_ecn(ecn);
            p.set_total_len(tl);
            p.set_ident(ident);
            p.set_dont_frag(df);
            p.set_more_frags(mf);
            p.set_frag_offset(off * 8);
            p.set_ttl(ttl);
            p.set_protocol(IpProtocol(proto));
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            p.fill_checksum();
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.version(), 4);
            prop_assert_eq!(p.header_len(), 20);
            prop_assert_eq!(p.dscp(), dscp);
            prop_assert_eq!(p.ecn(), ecn);
            prop_assert_eq!(p.total_len(), tl);
            prop_assert_eq!(p.ident(), ident);
            prop_assert_eq!(p.dont_frag(), df);
            prop_assert_eq!(p.more_frags(), mf);
            prop_assert_eq!(p.frag_offset(), off * 8);
            prop_assert_eq!(p.is_fragment(), mf || off != 0);
            prop_assert_eq!(p.ttl(), ttl);
            prop_assert_eq!(p.protocol(), IpProtocol(proto));
            prop_assert_eq!(p.src_addr(), Ipv4Addr::from(src));
            prop_assert_eq!(p.dst_addr(), Ipv4Addr::from(dst));
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(p.payload().len(), tl as usize - 20);
        }

        #[test]
        fn incremental_address_rewrite(
            src in any::<u32>(), dst in any::<u32>(), new_src in any::<u32>(), new_dst in any::<u32>(),
            ttl in any::<u8>(), ident in any::<u16>(),
        ) {
            let mut b = [0u8; 20];
            let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
            p.set_version(4);
            p.set_header_len(20);
            p.set_total_len(20);
            p.set_ttl(ttl);
            p.set_ident(ident);
            p.set_src_addr(src.into());
            p.set_dst_addr(dst.into());
            p.fill_checksum();
            // What a NAT does: rewrite both addresses, patch the checksum.
            let c = checksum::update_u32(p.checksum(), src, new_src);
            let c = checksum::update_bytes(c, &dst.to_be_bytes(), &new_dst.to_be_bytes());
            p.set_src_addr(new_src.into());
            p.set_dst_addr(new_dst.into());
            p.set_checksum(c);
            prop_assert!(p.verify_checksum());
            // The version nibble keeps the header non-zero, so the full computation can never
            // produce 0xffff and the two must agree bit for bit.
            p.fill_checksum();
            prop_assert_eq!(p.checksum(), c);
            // Decrementing TTL touches the 16-bit TTL/protocol word.
            let old = read_u16(p.as_bytes(), field::TTL);
            p.set_ttl(ttl.wrapping_sub(1));
            let c = checksum::update_u16(c, old, read_u16(p.as_bytes(), field::TTL));
            p.fill_checksum();
            prop_assert_eq!(p.checksum(), c);
        }
    }
}
