//! TCP headers (RFC 9293).

use std::net::IpAddr;

use bitflags::bitflags;

use super::checksum;
use super::{clamped, clamped_mut, read_u16, read_u32, write_u16, write_u32, IpProtocol, WireError};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

bitflags! {
    /// The eight TCP flags of byte 13 (the historic NS bit is not included).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct TcpFlags: u8 {
        const FIN = 0x01;
        const SYN = 0x02;
        const RST = 0x04;
        const PSH = 0x08;
        const ACK = 0x10;
        const URG = 0x20;
        const ECE = 0x40;
        const CWR = 0x80;
    }
}

/// A view of a TCP segment. The buffer should be exactly the segment (the IP payload): the
/// payload runs to its end and the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = field::OPTIONS;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Checks: at least 20 bytes, `20 <= header_len <= len`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = TcpPacket { buffer };
        let len = p.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let hl = p.header_len() as usize;
        if hl < Self::HEADER_LEN {
            return Err(WireError::BadHeaderLength);
        }
        if hl > len {
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_retain(self.buffer.as_ref()[field::FLAGS])
    }

    #[inline]
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Option bytes, between the fixed header and `header_len`.
    #[inline]
    pub fn options(&self) -> &[u8] {
        clamped(self.buffer.as_ref(), field::OPTIONS, self.header_len() as usize)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        clamped(d, self.header_len() as usize, d.len())
    }

    /// Checksum over the pseudo-header (length = buffer length) and the whole buffer.
    #[inline]
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP.0, d.len() as u32);
        checksum::fold(ph + checksum::sum(d)) == 0xffff
    }
}

impl<'a> TcpPacket<&'a [u8]> {
    /// Like `payload()`, but borrowing the underlying buffer rather than the view, so the
    /// next layer's view can outlive this one.
    #[inline]
    pub fn into_payload(self) -> &'a [u8] {
        let h = self.header_len() as usize;
        clamped(self.buffer, h, self.buffer.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT, v)
    }

    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT, v)
    }

    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::SEQ, v)
    }

    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::ACK, v)
    }

    /// Sets the header length in bytes, stored as data offset = len / 4 (reserved bits kept).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | ((len / 4) << 4);
    }

    #[inline]
    pub fn set_flags(&mut self, v: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = v.bits()
    }

    #[inline]
    pub fn set_window(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::WINDOW, v)
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT, v)
    }

    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        clamped_mut(self.buffer.as_mut(), field::OPTIONS, hl)
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len() as usize;
        let d = self.buffer.as_mut();
        let len = d.len();
        clamped_mut(d, hl, len)
    }

    /// Computes the checksum (pseudo-header by address family + whole buffer) and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header(src, dst, IpProtocol::TCP.0, d.len() as u32);
        let c = !checksum::fold(ph + checksum::sum(d));
        self.set_checksum(c);
    }
}

/// TCP option kinds (RFC 9293, 2018, 7323).
pub const OPT_END: u8 = 0;
pub const OPT_NOP: u8 = 1;
pub const OPT_MSS: u8 = 2;
pub const OPT_WSCALE: u8 = 3;
pub const OPT_SACK_PERMITTED: u8 = 4;
pub const OPT_SACK: u8 = 5;
pub const OPT_TIMESTAMPS: u8 = 8;

/// One option of a TCP header: its kind, its offset in the segment and its length (kind and
/// length bytes included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpOption {
    pub kind: u8,
    pub at: usize,
    pub len: usize,
}

/// The option at or after `*at` in `segment` (a TCP segment from its header on), among the
/// options up to `header_len`, skipping NOPs; `None` at the end, at End of options, or at a
/// malformed option (no length byte, a length under 2 or past the header). `*at` moves past
/// what is returned, so a caller walks the options with `while let`, free to change the
/// bytes between calls (indices, not borrows, are returned).
#[inline]
pub fn next_option(segment: &[u8], header_len: usize, at: &mut usize) -> Option<TcpOption> {
    let end = header_len.min(segment.len());
    while *at < end {
        let kind = segment[*at];
        match kind {
            OPT_END => return None,
            OPT_NOP => *at += 1,
            _ => {
                let len = usize::from(*segment.get(*at + 1)?);
                if len < 2 || *at + len > end {
                    return None;
                }
                let option = TcpOption { kind, at: *at, len };
                *at += len;
                return Some(option);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn options_of(segment: &[u8], header_len: usize) -> Vec<TcpOption> {
        let mut at = field::OPTIONS;
        std::iter::from_fn(|| next_option(segment, header_len, &mut at)).collect()
    }

    #[test]
    fn next_option_walks_the_options_skipping_nops_and_stops_at_the_end_or_a_bad_length() {
        let mut seg = vec![0u8; 20];
        // MSS, NOP, NOP, SACK-permitted, NOP, window scale, then a timestamp at an odd offset.
        seg.extend_from_slice(&[2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0]);
        let want =
            |v: &[(u8, usize, usize)]| v.iter().map(|&(kind, at, len)| TcpOption { kind, at, len }).collect::<Vec<_>>();
        assert_eq!(options_of(&seg, 42), want(&[(2, 20, 4), (4, 26, 2), (3, 29, 3), (8, 32, 10)]));
        // The header ends before the timestamp does: it is malformed, and the walk stops.
        assert_eq!(options_of(&seg, 40), want(&[(2, 20, 4), (4, 26, 2), (3, 29, 3)]));
        // End of options ends it; so does a length under 2.
        let mut ended = seg.clone();
        ended[26] = OPT_END;
        assert_eq!(options_of(&ended, 42), want(&[(2, 20, 4)]));
        ended[21] = 1;
        assert_eq!(options_of(&ended, 42), want(&[]));
        // A segment shorter than its header length is read only as far as it goes.
        assert_eq!(options_of(&seg[..24], 42), want(&[(2, 20, 4)]));
        assert_eq!(options_of(&seg[..21], 42), want(&[]));
    }

    fn syn() -> &'static [u8] {
        &golden::TCP_SYN[34..]
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    const SYN_OPTIONS: [u8; 20] = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0x0a, 0x1b, 0x2c, 0x3d, 0, 0, 0, 0, 1, 3, 3, 7];

    #[test]
    fn parse_golden_syn() {
        let p = TcpPacket::new_checked(syn()).unwrap();
        assert_eq!(p.src_port(), 54321);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x9a3b2c1d);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert_eq!(p.window(), 64240);
        assert_eq!(p.checksum(), 0x67da);
        assert_eq!(p.urgent(), 0);
        assert_eq!(p.options(), &SYN_OPTIONS);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(v4(10, 0, 0, 1), v4(10, 0, 0, 2)));
        assert!(!p.verify_checksum(v4(10, 0, 0, 1), v4(10, 0, 0, 3)));
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = [0u8; 40];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_src_port(54321);
        p.set_dst_port(80);
        p.set_seq_number(0x9a3b2c1d);
        p.set_header_len(40);
        p.set_flags(TcpFlags::SYN);
        p.set_window(64240);
        p.options_mut().copy_from_slice(&SYN_OPTIONS);
        p.fill_checksum(v4(10, 0, 0, 1), v4(10, 0, 0, 2));
        assert_eq!(&b[..], syn());
    }

    #[test]
    fn rejects_bad_headers() {
        for n in 0..20 {
            assert_eq!(TcpPacket::new_checked(&syn()[..n]).unwrap_err(), WireError::Truncated);
        }
        // Options cut off.
        assert_eq!(TcpPacket::new_checked(&syn()[..39]).unwrap_err(), WireError::Truncated);
        let mut b = syn().to_vec();
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).unwrap_err(), WireError::BadHeaderLength);
    }

    #[test]
    fn odd_length_ipv6_checksum() {
        let (s, d): (Ipv6Addr, Ipv6Addr) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
        let mut b = [0u8; 23];
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        p.set_header_len(20);
        p.set_flags(TcpFlags::PSH | TcpFlags::ACK);
        p.payload_mut().copy_from_slice(b"abc");
        p.fill_checksum(s.into(), d.into());
        assert!(p.verify_checksum(s.into(), d.into()));
        // The same bytes checked against IPv4 addresses must fail.
        assert!(!p.verify_checksum(v4(1, 2, 3, 4), v4(5, 6, 7, 8)));
        // Mixed families do not panic.
        let _ = p.verify_checksum(s.into(), v4(1, 2, 3, 4));
    }

    proptest! {
        #[test]
        fn round_trip(
            sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), off in 5u8..16,
            flags in any::<u8>(), win in any::<u16>(), urg in any::<u16>(),
        ) {
            let mut b = [0u8; 64];
            let mut p = TcpPacket::new_unchecked(&mut b[..]);
            p.set_src_port(sp);
            p.set_dst_port(dp);
            p.set_seq_number(seq);
            p.set_ack_number(ack);
            p.set_header_len(off * 4);
            p.set_flags(TcpFlags::from_bits_retain(flags));
            p.set_window(win);
            p.set_urgent(urg);
            let p = TcpPacket::new_checked(&b[..]).unwrap();
            prop_assert_eq!(p.src_port(), sp);
            prop_assert_eq!(p.dst_port(), dp);
            prop_assert_eq!(p.seq_number(), seq);
            prop_assert_eq!(p.ack_number(), ack);
            prop_assert_eq!(p.header_len(), off * 4);
            prop_assert_eq!(p.flags().bits(), flags);
            prop_assert_eq!(p.window(), win);
            prop_assert_eq!(p.urgent(), urg);
            prop_assert_eq!(p.options().len(), off as usize * 4 - 20);
            prop_assert_eq!(p.payload().len(), 64 - off as usize * 4);
        }

        /// What the load balancer does on every packet: rewrite the destination address and
        /// port, patching the checksum incrementally instead of summing the payload again.
        #[test]
        fn incremental_dnat(
            payload in proptest::collection::vec(any::<u8>(), 0..100),
            src in any::<u32>(), dst in any::<u32>(), new_dst in any::<u32>(), new_port in any::<u16>(),
            v6 in any::<bool>(), src6 in any::<u128>(), dst6 in any::<u128>(), new_dst6 in any::<u128>(),
        ) {
            let mut b = vec![0u8; 20 + payload.len()];
            let mut p = TcpPacket::new_unchecked(&mut b[..]);
            p.set_src_port(40000);
            p.set_dst_port(80);
            p.set_header_len(20);
            p.set_flags(TcpFlags::ACK);
            p.payload_mut().copy_from_slice(&payload);
            let (s, d, nd): (IpAddr, IpAddr, IpAddr) = if v6 {
                (Ipv6Addr::from(src6).into(), Ipv6Addr::from(dst6).into(), Ipv6Addr::from(new_dst6).into())
            } else {
                (Ipv4Addr::from(src).into(), Ipv4Addr::from(dst).into(), Ipv4Addr::from(new_dst).into())
            };
            p.fill_checksum(s, d);
            let mut c = p.checksum();
            c = match (d, nd) {
                (IpAddr::V4(o), IpAddr::V4(n)) => checksum::update_u32(c, o.into(), n.into()),
                (IpAddr::V6(o), IpAddr::V6(n)) => checksum::update_bytes(c, &o.octets(), &n.octets()),
                _ => unreachable!(),
            };
            c = checksum::update_u16(c, 80, new_port);
            p.set_dst_port(new_port);
            p.set_checksum(c);
            prop_assert!(p.verify_checksum(s, nd));
            // The pseudo-header's length and protocol words are non-zero, so the full sum is
            // never zero and the full result is never 0xffff: the two agree exactly.
            p.fill_checksum(s, nd);
            prop_assert_eq!(p.checksum(), c);
        }
    }
}
