//! ICMPv6 messages (RFC 4443) and neighbor discovery (RFC 4861).

use std::net::Ipv6Addr;

use super::checksum;
use super::{
    read_ipv6, read_mac, read_u16, read_u32, write_ipv6, write_mac, write_u16, write_u32, IpProtocol, WireError,
};
use crate::net::MacAddr;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const NA_FLAGS: usize = 4;
    pub const DATA: usize = 8;
    pub const NDISC_TARGET: usize = 8;
    /// Options of NS and NA follow the target address.
    pub const NDISC_OPTIONS: usize = 24;
}

const NA_ROUTER: u8 = 0x80;
const NA_SOLICITED: u8 = 0x40;
const NA_OVERRIDE: u8 = 0x20;

/// ND option type: source link-layer address.
pub const NDISC_OPT_SOURCE_LINK_ADDR: u8 = 1;
/// ND option type: target link-layer address.
pub const NDISC_OPT_TARGET_LINK_ADDR: u8 = 2;

/// Length of what `emit_neighbor_advert` / `emit_neighbor_solicit` write.
pub const NDISC_EMIT_LEN: usize = 32;

/// An ICMPv6 message type. Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Icmpv6Type(pub u8);

impl Icmpv6Type {
    pub const DEST_UNREACHABLE: Icmpv6Type = Icmpv6Type(1);
    pub const PACKET_TOO_BIG: Icmpv6Type = Icmpv6Type(2);
    pub const TIME_EXCEEDED: Icmpv6Type = Icmpv6Type(3);
    pub const ECHO_REQUEST: Icmpv6Type = Icmpv6Type(128);
    pub const ECHO_REPLY: Icmpv6Type = Icmpv6Type(129);
    pub const ROUTER_SOLICIT: Icmpv6Type = Icmpv6Type(133);
    pub const ROUTER_ADVERT: Icmpv6Type = Icmpv6Type(134);
    pub const NEIGHBOR_SOLICIT: Icmpv6Type = Icmpv6Type(135);
    pub const NEIGHBOR_ADVERT: Icmpv6Type = Icmpv6Type(136);
    pub const REDIRECT: Icmpv6Type = Icmpv6Type(137);

    /// Where ND options start for this message type, or `None` for non-ND messages.
    fn ndisc_options_offset(self) -> Option<usize> {
        match self {
            Self::ROUTER_SOLICIT => Some(8),
            Self::ROUTER_ADVERT => Some(16),
            Self::NEIGHBOR_SOLICIT | Self::NEIGHBOR_ADVERT => Some(field::NDISC_OPTIONS),
            Self::REDIRECT => Some(40),
            _ => None,
        }
    }
}

/// A view of an ICMPv6 message. The buffer should be exactly the message (the IPv6 payload):
/// the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    pub const HEADER_LEN: usize = field::DATA;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv6Packet { buffer }
    }

    /// Checks that the 8-byte header is there. ND accessors check their own lengths.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv6Packet { buffer })
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
    pub fn msg_type(&self) -> Icmpv6Type {
        Icmpv6Type(self.buffer.as_ref()[field::TYPE])
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// The MTU of a packet-too-big message (bytes 4..8).
    #[inline]
    pub fn mtu(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::MTU)
    }

    /// Everything after the 8-byte header.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[field::DATA.min(d.len())..]
    }

    /// The target address of a neighbor solicitation or advertisement; `None` for other types
    /// or when the message is too short to hold it.
    #[inline]
    pub fn ndisc_target(&self) -> Option<Ipv6Addr> {
        let d = self.buffer.as_ref();
        let t = self.msg_type();
        if (t == Icmpv6Type::NEIGHBOR_SOLICIT || t == Icmpv6Type::NEIGHBOR_ADVERT) && d.len() >= field::NDISC_OPTIONS {
            Some(read_ipv6(d, field::NDISC_TARGET))
        } else {
            None
        }
    }

    /// NA "router" flag (meaningless for other types).
    #[inline]
    pub fn na_router(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_ROUTER != 0
    }

    /// NA "solicited" flag.
    #[inline]
    pub fn na_solicited(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_SOLICITED != 0
    }

    /// NA "override" flag.
    #[inline]
    pub fn na_override(&self) -> bool {
        self.buffer.as_ref()[field::NA_FLAGS] & NA_OVERRIDE != 0
    }

    /// The ND options of RS, RA, NS, NA and redirect messages (empty for other types). A
    /// message too short for its fixed part, a zero-length option or an option running past
    /// the end yields one `Err` and ends the walk.
    #[inline]
    pub fn ndisc_options(&self) -> NdiscOptions<'_> {
        let d = self.buffer.as_ref();
        match self.msg_type().ndisc_options_offset() {
            Some(off) if off <= d.len() => NdiscOptions { rest: &d[off..], error: None },
            Some(_) => NdiscOptions { rest: &[], error: Some(WireError::Truncated) },
            None => NdiscOptions { rest: &[], error: None },
        }
    }

    /// The MAC in the first link-layer address option of type `kind`. All options are
    /// walked, so a malformed one anywhere is an error (RFC 4861 says to drop the message).
    fn link_layer_option(&self, kind: u8) -> Result<Option<MacAddr>, WireError> {
        let mut found = None;
        for opt in self.ndisc_options() {
            let opt = opt?;
            if found.is_none() && opt.kind == kind && opt.data.len() >= 6 {
                found = Some(read_mac(opt.data, 0));
            }
        }
        Ok(found)
    }

    /// The source link-layer address option (type 1), as sent in NS, RS and RA.
    #[inline]
    pub fn source_link_addr(&self) -> Result<Option<MacAddr>, WireError> {
        self.link_layer_option(NDISC_OPT_SOURCE_LINK_ADDR)
    }

    /// The target link-layer address option (type 2), as sent in NA and redirect.
    #[inline]
    pub fn target_link_addr(&self) -> Result<Option<MacAddr>, WireError> {
        self.link_layer_option(NDISC_OPT_TARGET_LINK_ADDR)
    }

    /// Checksum over the IPv6 pseudo-header and the whole buffer.
    #[inline]
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, d.len() as u32);
        checksum::fold(ph + checksum::sum(d)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: Icmpv6Type) {
        self.buffer.as_mut()[field::TYPE] = v.0
    }

    #[inline]
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v
    }

    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, v)
    }

    #[inline]
    pub fn set_echo_ident(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_IDENT, v)
    }

    #[inline]
    pub fn set_echo_seq_no(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::ECHO_SEQ, v)
    }

    #[inline]
    pub fn set_mtu(&mut self, v: u32) {
        write_u32(self.buffer.as_mut(), field::MTU, v)
    }

    #[inline]
    fn set_na_flag(&mut self, flag: u8, v: bool) {
        let b = &mut self.buffer.as_mut()[field::NA_FLAGS];
        *b = if v { *b | flag } else { *b & !flag };
    }

    #[inline]
    pub fn set_na_router(&mut self, v: bool) {
        self.set_na_flag(NA_ROUTER, v)
    }

    #[inline]
    pub fn set_na_solicited(&mut self, v: bool) {
        self.set_na_flag(NA_SOLICITED, v)
    }

    #[inline]
    pub fn set_na_override(&mut self, v: bool) {
        self.set_na_flag(NA_OVERRIDE, v)
    }

    /// Writes the NS/NA target address (bytes 8..24). Panics if the buffer is shorter.
    #[inline]
    pub fn set_ndisc_target(&mut self, v: Ipv6Addr) {
        write_ipv6(self.buffer.as_mut(), field::NDISC_TARGET, v)
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let d = self.buffer.as_mut();
        let start = field::DATA.min(d.len());
        &mut d[start..]
    }

    /// Computes the checksum (IPv6 pseudo-header + whole buffer) and stores it.
    #[inline]
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        self.set_checksum(0);
        let d = self.buffer.as_ref();
        let ph = checksum::pseudo_header_v6(src, dst, IpProtocol::ICMPV6.0, d.len() as u32);
        let c = !checksum::fold(ph + checksum::sum(d));
        self.set_checksum(c);
    }
}

/// One ND option: its type and its bytes after the type and length octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdiscOption<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterator over ND options; see `Icmpv6Packet::ndisc_options`.
#[derive(Debug, Clone)]
pub struct NdiscOptions<'a> {
    rest: &'a [u8],
    error: Option<WireError>,
}

impl<'a> Iterator for NdiscOptions<'a> {
    type Item = Result<NdiscOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            return Some(Err(e));
        }
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        // Stop after any error: the walk cannot resynchronise.
        self.rest = &[];
        if rest.len() < 2 {
            return Some(Err(WireError::Truncated));
        }
        // The length octet counts 8-byte units and includes the type and length octets.
        let len = rest[1] as usize * 8;
        if len == 0 {
            return Some(Err(WireError::BadLength));
        }
        if len > rest.len() {
            return Some(Err(WireError::Truncated));
        }
        self.rest = &rest[len..];
        Some(Ok(NdiscOption { kind: rest[0], data: &rest[2..len] }))
    }
}

/// Writes the common part of an NS / NA with one link-layer address option.
fn emit_ndisc(buf: &mut [u8], t: Icmpv6Type, flags: u8, target: Ipv6Addr, opt: u8, mac: MacAddr) -> usize {
    let b = &mut buf[..NDISC_EMIT_LEN];
    b[field::TYPE] = t.0;
    b[field::CODE] = 0;
    write_u16(b, field::CHECKSUM, 0);
    write_u32(b, field::NA_FLAGS, (flags as u32) << 24);
    write_ipv6(b, field::NDISC_TARGET, target);
    b[24] = opt;
    b[25] = 1; // 8 bytes
    write_mac(b, 26, mac);
    NDISC_EMIT_LEN
}

/// Writes a 32-byte neighbor advertisement for `target` with a target link-layer address
/// option and returns 32. The override flag is set (we answer for our own addresses); the
/// checksum is left 0 for the caller to fill once the IPv6 addresses are known.
/// Panics if `buf` is shorter than 32 bytes.
pub fn emit_neighbor_advert(buf: &mut [u8], target: Ipv6Addr, target_mac: MacAddr, solicited: bool) -> usize {
    let flags = NA_OVERRIDE | if solicited { NA_SOLICITED } else { 0 };
    emit_ndisc(buf, Icmpv6Type::NEIGHBOR_ADVERT, flags, target, NDISC_OPT_TARGET_LINK_ADDR, target_mac)
}

/// Writes a 32-byte neighbor solicitation for `target` with a source link-layer address
/// option and returns 32. The checksum is left 0. Panics if `buf` is shorter than 32 bytes.
pub fn emit_neighbor_solicit(buf: &mut [u8], target: Ipv6Addr, source_mac: MacAddr) -> usize {
    emit_ndisc(buf, Icmpv6Type::NEIGHBOR_SOLICIT, 0, target, NDISC_OPT_SOURCE_LINK_ADDR, source_mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    const A: MacAddr = MacAddr([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
    const B: MacAddr = MacAddr([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn ns() -> &'static [u8] {
        &golden::IPV6_NEIGHBOR_SOLICIT[54..]
    }

    #[test]
    fn parse_golden_ns() {
        let p = Icmpv6Packet::new_checked(ns()).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::NEIGHBOR_SOLICIT);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x7220);
        assert!(p.verify_checksum(ip("fe80::5054:ff:fe12:3456"), ip("ff02::1:ff00:2")));
        assert!(!p.verify_checksum(ip("fe80::5054:ff:fe12:3457"), ip("ff02::1:ff00:2")));
        assert_eq!(p.ndisc_target(), Some(ip("fe80::2")));
        assert_eq!(p.source_link_addr(), Ok(Some(A)));
        assert_eq!(p.target_link_addr(), Ok(None));
        let opts: Vec<_> = p.ndisc_options().collect();
        assert_eq!(opts, vec![Ok(NdiscOption { kind: 1, data: &[0x52, 0x54, 0x00, 0x12, 0x34, 0x56] })]);
    }

    #[test]
    fn parse_golden_na() {
        let b = &golden::ICMPV6_NEIGHBOR_ADVERT[..];
        let p = Icmpv6Packet::new_checked(b).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::NEIGHBOR_ADVERT);
        assert_eq!(p.checksum(), 0x7571);
        assert!(p.verify_checksum(ip("fe80::2"), ip("fe80::5054:ff:fe12:3456")));
        assert!(!p.na_router());
        assert!(p.na_solicited());
        assert!(p.na_override());
        assert_eq!(p.ndisc_target(), Some(ip("fe80::2")));
        assert_eq!(p.target_link_addr(), Ok(Some(B)));
        assert_eq!(p.source_link_addr(), Ok(None));
    }

    #[test]
    fn parse_golden_echo() {
        let b = &golden::ICMPV6_ECHO_REQUEST[54..];
        let p = Icmpv6Packet::new_checked(b).unwrap();
        assert_eq!(p.msg_type(), Icmpv6Type::ECHO_REQUEST);
        assert_eq!(p.checksum(), 0xe0a3);
        assert!(p.verify_checksum(ip("2001:db8::1"), ip("2001:db8::2")));
        assert_eq!(p.echo_ident(), 0x42);
        assert_eq!(p.echo_seq_no(), 7);
        assert_eq!(p.data(), b"abcdefghijklmnop");
        assert_eq!(p.ndisc_target(), None);
        assert_eq!(p.ndisc_options().count(), 0);
        assert_eq!(p.source_link_addr(), Ok(None));
    }

    #[test]
    fn emit_na_matches_golden() {
        let mut b = [0u8; 32];
        assert_eq!(emit_neighbor_advert(&mut b, ip("fe80::2"), B, true), 32);
        Icmpv6Packet::new_checked(&mut b[..]).unwrap().fill_checksum(ip("fe80::2"), ip("fe80::5054:ff:fe12:3456"));
        assert_eq!(b, golden::ICMPV6_NEIGHBOR_ADVERT);
        emit_neighbor_advert(&mut b, ip("fe80::2"), B, false);
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert!(!p.na_solicited() && p.na_override() && !p.na_router());
        assert_eq!(p.checksum(), 0);
    }

    #[test]
    fn emit_ns_matches_golden() {
        let mut b = [0xffu8; 40];
        assert_eq!(emit_neighbor_solicit(&mut b, ip("fe80::2"), A), 32);
        let mut p = Icmpv6Packet::new_checked(&mut b[..32]).unwrap();
        p.fill_checksum(ip("fe80::5054:ff:fe12:3456"), ip("ff02::1:ff00:2"));
        assert_eq!(&b[..32], ns());
        assert_eq!(&b[32..], &[0xff; 8], "nothing past 32 bytes is written");
    }

    #[test]
    fn echo_reply_and_packet_too_big() {
        let mut b = golden::ICMPV6_ECHO_REQUEST[54..].to_vec();
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        let c = checksum::update_u16(p.checksum(), 128 << 8, 129 << 8);
        p.set_msg_type(Icmpv6Type::ECHO_REPLY);
        p.set_checksum(c);
        // Replying swaps the addresses; the pseudo-header sum is symmetric in them.
        assert!(p.verify_checksum(ip("2001:db8::2"), ip("2001:db8::1")));
        let mut b = [0u8; 56];
        let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(Icmpv6Type::PACKET_TOO_BIG);
        p.set_mtu(1280);
        assert_eq!(p.mtu(), 1280);
        assert_eq!(&b[..8], &[2, 0, 0, 0, 0, 0, 5, 0]);
    }

    #[test]
    fn malformed_options() {
        // Zero-length option: an error, not a loop or a panic.
        let mut b = ns().to_vec();
        b[25] = 0;
        let p = Icmpv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.source_link_addr(), Err(WireError::BadLength));
        assert_eq!(p.ndisc_options().collect::<Vec<_>>(), vec![Err(WireError::BadLength)]);
        // Option running past the end.
        b[25] = 2;
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().source_link_addr(), Err(WireError::Truncated));
        // A lone type octet.
        b[25] = 1;
        b.push(1);
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().source_link_addr(), Err(WireError::Truncated));
        // Malformed after the wanted option still fails the message.
        let mut b = ns().to_vec();
        b.extend_from_slice(&[14, 0]);
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().source_link_addr(), Err(WireError::BadLength));
        // An unknown option before it is skipped.
        let mut b = ns()[..24].to_vec();
        b.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&ns()[24..]);
        assert_eq!(Icmpv6Packet::new_checked(&b[..]).unwrap().source_link_addr(), Ok(Some(A)));
        // NS too short for its target: no target, and the walk reports it.
        let p = Icmpv6Packet::new_checked(&ns()[..20]).unwrap();
        assert_eq!(p.ndisc_target(), None);
        assert_eq!(p.source_link_addr(), Err(WireError::Truncated));
        // Exactly the fixed part: no options.
        let p = Icmpv6Packet::new_checked(&ns()[..24]).unwrap();
        assert_eq!(p.ndisc_target(), Some(ip("fe80::2")));
        assert_eq!(p.source_link_addr(), Ok(None));
    }

    #[test]
    fn rejects_truncated() {
        for n in 0..8 {
            assert_eq!(Icmpv6Packet::new_checked(&ns()[..n]).unwrap_err(), WireError::Truncated);
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            t in any::<u8>(), code in any::<u8>(), id in any::<u16>(), seq in any::<u16>(),
            r in any::<bool>(), s in any::<bool>(), o in any::<bool>(), target in any::<u128>(),
            src in any::<u128>(), dst in any::<u128>(),
        ) {
            let mut b = [0u8; 24];
            let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
            p.set_msg_type(Icmpv6Type(t));
            p.set_code(code);
            p.set_echo_ident(id);
            p.set_echo_seq_no(seq);
            prop_assert_eq!(p.msg_type(), Icmpv6Type(t));
            prop_assert_eq!(p.code(), code);
            prop_assert_eq!(p.echo_ident(), id);
            prop_assert_eq!(p.echo_seq_no(), seq);
            prop_assert_eq!(p.mtu(), ((id as u32) << 16) | seq as u32);
            p.set_msg_type(Icmpv6Type::NEIGHBOR_ADVERT);
            p.set_mtu(0);
            p.set_na_router(r);
            p.set_na_solicited(s);
            p.set_na_override(o);
            p.set_ndisc_target(target.into());
            prop_assert_eq!((p.na_router(), p.na_solicited(), p.na_override()), (r, s, o));
            prop_assert_eq!(p.ndisc_target(), Some(Ipv6Addr::from(target)));
            p.fill_checksum(src.into(), dst.into());
            prop_assert!(p.verify_checksum(src.into(), dst.into()));
        }

        #[test]
        fn incremental_address_rewrite(
            data in proptest::collection::vec(any::<u8>(), 8..64),
            src in any::<u128>(), dst in any::<u128>(), new_dst in any::<u128>(),
        ) {
            let (src, dst, new_dst) = (Ipv6Addr::from(src), Ipv6Addr::from(dst), Ipv6Addr::from(new_dst));
            let mut b = data;
            b[0] = 128;
            let mut p = Icmpv6Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum(src, dst);
            let c = checksum::update_bytes(p.checksum(), &dst.octets(), &new_dst.octets());
            p.set_checksum(c);
            prop_assert!(p.verify_checksum(src, new_dst));
            p.fill_checksum(src, new_dst);
            prop_assert_eq!(p.checksum(), c);
        }
    }
}
