//! ICMPv4 messages (RFC 792): the 8-byte header and the echo / frag-needed fields.

use super::checksum;
use super::{read_u16, write_u16, WireError};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const DATA: usize = 8;
}

/// An ICMPv4 message type. Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Icmpv4Type(pub u8);

impl Icmpv4Type {
    pub const ECHO_REPLY: Icmpv4Type = Icmpv4Type(0);
    pub const DEST_UNREACHABLE: Icmpv4Type = Icmpv4Type(3);
    pub const ECHO_REQUEST: Icmpv4Type = Icmpv4Type(8);
    pub const TIME_EXCEEDED: Icmpv4Type = Icmpv4Type(11);
}

/// Destination unreachable code: port unreachable.
pub const CODE_PORT_UNREACHABLE: u8 = 3;
/// Destination unreachable code: fragmentation needed and DF set (RFC 1191); see
/// `next_hop_mtu`.
pub const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMPv4 message. The buffer should be exactly the message (the IPv4 payload):
/// the checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    pub const HEADER_LEN: usize = field::DATA;

    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Checks that the 8-byte header is there.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Icmpv4Packet { buffer })
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
    pub fn msg_type(&self) -> Icmpv4Type {
        Icmpv4Type(self.buffer.as_ref()[field::TYPE])
    }

    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo request/reply identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo request/reply sequence number (bytes 6..8).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// Next-hop MTU of a fragmentation-needed message (bytes 6..8).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Everything after the 8-byte header (echo data, or the offending datagram's header).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let d = self.buffer.as_ref();
        &d[field::DATA.min(d.len())..]
    }

    /// True when the checksum over the whole buffer is correct.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: Icmpv4Type) {
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
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        write_u16(self.buffer.as_mut(), field::NEXT_HOP_MTU, v)
    }

    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let d = self.buffer.as_mut();
        let start = field::DATA.min(d.len());
        &mut d[start..]
    }

    /// Computes the checksum over the whole buffer and stores it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::golden;
    use proptest::prelude::*;

    fn ping() -> &'static [u8] {
        &golden::ICMP_ECHO_REQUEST[34..]
    }

    #[test]
    fn parse_golden_ping() {
        let p = Icmpv4Packet::new_checked(ping()).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Type::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert_eq!(p.checksum(), 0x72ea);
        assert!(p.verify_checksum());
        assert_eq!(p.echo_ident(), 0x0d2f);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data().len(), 56);
        assert_eq!(p.data()[16], 0x10);
        assert_eq!(p.data()[55], 0x37);
    }

    #[test]
    fn emit_matches_golden() {
        let mut b = ping().to_vec();
        b[..8].fill(0);
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(Icmpv4Type::ECHO_REQUEST);
        p.set_echo_ident(0x0d2f);
        p.set_echo_seq_no(1);
        p.fill_checksum();
        assert_eq!(&b[..], ping());
    }

    #[test]
    fn echo_reply_from_request() {
        // Turning a request into a reply: type 8 -> 0 is a 16-bit word change (type, code).
        let mut b = ping().to_vec();
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        let c = checksum::update_u16(p.checksum(), 0x0800, 0x0000);
        p.set_msg_type(Icmpv4Type::ECHO_REPLY);
        p.set_checksum(c);
        assert!(p.verify_checksum());
        b[10] ^= 1;
        assert!(!Icmpv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn frag_needed() {
        let mut b = [0u8; 36];
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_msg_type(Icmpv4Type::DEST_UNREACHABLE);
        p.set_code(CODE_FRAG_NEEDED);
        p.set_next_hop_mtu(1400);
        p.fill_checksum();
        assert_eq!(&b[..8], &[3, 4, 0xf7, 0x83, 0, 0, 0x05, 0x78]);
        assert!(Icmpv4Packet::new_checked(&b[..]).unwrap().verify_checksum());
    }

    #[test]
    fn rejects_truncated() {
        for n in 0..8 {
            assert_eq!(Icmpv4Packet::new_checked(&ping()[..n]).unwrap_err(), WireError::Truncated);
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            t in any::<u8>(), code in any::<u8>(), id in any::<u16>(), seq in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut b = vec![0u8; 8 + data.len()];
            let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
            p.set_msg_type(Icmpv4Type(t));
            p.set_code(code);
            p.set_echo_ident(id);
            p.set_echo_seq_no(seq);
            p.data_mut().copy_from_slice(&data);
            p.fill_checksum();
            prop_assert_eq!(p.msg_type(), Icmpv4Type(t));
            prop_assert_eq!(p.code(), code);
            prop_assert_eq!(p.echo_ident(), id);
            prop_assert_eq!(p.echo_seq_no(), seq);
            prop_assert_eq!(p.next_hop_mtu(), seq);
            prop_assert_eq!(p.data(), &data[..]);
            prop_assert!(p.verify_checksum());
        }
    }
}
