//! The internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! `sum` returns a partial one's-complement sum folded to at most 0xffff, so partial sums (data,
//! pseudo-header) can be added as plain `u32`s and folded once at the end. Only the last piece
//! may have an odd length: an odd trailing byte is padded with a zero byte.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, folded to at most 0xffff.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // A one's-complement sum of 64-bit words (end-around carry) is congruent to the 16-bit sum
    // modulo 0xffff, because 2^16 = 1 (mod 0xffff). Two accumulators let the adds overlap.
    let mut a: u64 = 0;
    let mut b: u64 = 0;
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        let x = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let y = u64::from_be_bytes([c[8], c[9], c[10], c[11], c[12], c[13], c[14], c[15]]);
        let (s, carry) = a.overflowing_add(x);
        a = s + carry as u64;
        let (s, carry) = b.overflowing_add(y);
        b = s + carry as u64;
    }
    let (s, carry) = a.overflowing_add(b);
    let mut acc = s + carry as u64;
    // At most 15 bytes left: plain adds of 16-bit words cannot overflow after a fold.
    let rest = chunks.remainder();
    let mut tail: u64 = 0;
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        tail += u16::from_be_bytes([w[0], w[1]]) as u64;
    }
    if let [last] = words.remainder() {
        tail += (*last as u64) << 8;
    }
    let (s, carry) = acc.overflowing_add(tail);
    acc = s + carry as u64;
    // 64 -> 32 -> 16 bits; each step keeps the value congruent modulo 0xffff.
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    fold(acc as u32) as u32
}

/// Folds a partial sum to 16 bits (not complemented).
#[inline]
pub fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// The value to store in a checksum field: the complemented folded sum of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The folded one's-complement sum of an IPv4 header without options, in native byte order
/// (`to_ne_bytes` gives the bytes it stands for): five 32-bit words in a u64. Their plain sum
/// is congruent to the 16-bit one's-complement sum modulo 0xffff (2^16 = 1) and zero only
/// when that is, so it folds to the same value; and a one's-complement sum taken in the other
/// byte order is the byte swap of the same result (RFC 1071 section 2(B)).
#[inline(always)]
fn header20_sum_ne(h: &[u8; 20]) -> u16 {
    let word = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let s = word(0) + word(4) + word(8) + word(12) + word(16);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    fold(s as u32)
}

/// True when an IPv4 header without options checksums correctly (sums to all ones, in either
/// byte order). The plain sum of its five 32-bit words folds to all ones exactly when it is a
/// nonzero multiple of 0xffff (see `header20_sum_ne`): one remainder instead of four folds.
#[inline(always)]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    let word = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let s = word(0) + word(4) + word(8) + word(12) + word(16);
    s != 0 && s % 0xffff == 0
}

/// The checksum field (bytes 10..12) of an IPv4 header without options whose checksum field
/// holds zero: `checksum(h).to_be_bytes()`, without byte swaps.
#[inline(always)]
pub fn ipv4_header_checksum(h: &[u8; 20]) -> [u8; 2] {
    (!header20_sum_ne(h)).to_ne_bytes()
}

/// Partial sum of the IPv4 pseudo-header (RFC 793 / RFC 768).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u32) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16) + (s & 0xffff) + (d >> 16) + (d & 0xffff) + proto as u32 + (len >> 16) + (len & 0xffff)
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut s = next_header as u32 + (len >> 16) + (len & 0xffff);
    for w in src.segments().iter().chain(dst.segments().iter()) {
        s += *w as u32;
    }
    s
}

/// Pseudo-header sum for either family. Mixed families cannot come from one IP header; they
/// are summed as IPv4-mapped IPv6 addresses rather than panicking.
#[inline]
pub fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: u32) -> u32 {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header_v4(s, d, proto, len),
        (IpAddr::V6(s), IpAddr::V6(d)) => pseudo_header_v6(s, d, proto, len),
        (s, d) => pseudo_header_v6(to_v6(s), to_v6(d), proto, len),
    }
}

fn to_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// RFC 1624 eqn. 3 for a 16-bit field changed from `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline]
pub fn update_u16(csum: u16, old: u16, new: u16) -> u16 {
    !fold(!csum as u32 + !old as u32 + new as u32)
}

/// RFC 1624 eqn. 3 for a 32-bit field (an IPv4 address, a TCP sequence number).
#[inline]
pub fn update_u32(csum: u16, old: u32, new: u32) -> u16 {
    let s = !csum as u32 + (!old >> 16) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(s)
}

/// RFC 1624 eqn. 3 for a field of `old.len()` bytes at an even offset (IPv4/IPv6 addresses).
/// `old` and `new` must have the same even length; extra bytes of the longer one are ignored.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    apply_change(csum, change(old, new))
}

/// The change from `old` to `new` (same even length; extra bytes of the longer one ignored)
/// for a one's-complement sum, unfolded: 32-bit words in native byte order summed into a u64,
/// `!old + new` each. A word's `!old + new` is congruent to its two 16-bit halves' change
/// modulo 0xffff (2^16 = 1 and 0xffff_ffff = 0), so one fold at the end (`apply_change`)
/// replaces a fold per 16-bit word, and changes of several fields add up before it. The
/// sum is zero only when every old word is all ones and every new one zero, as a
/// word-by-word sum would be, so results are the same to the bit.
#[inline]
pub fn change(old: &[u8], new: &[u8]) -> u64 {
    debug_assert!(old.len() == new.len() && old.len() & 1 == 0);
    let (old_words, new_words) = (old.chunks_exact(4), new.chunks_exact(4));
    let (old_rest, new_rest) = (old_words.remainder(), new_words.remainder());
    // Each term is below 2^33: a slice would need 2^31 words to overflow.
    let mut s = 0u64;
    for (o, n) in old_words.zip(new_words) {
        s += u64::from(!u32::from_ne_bytes([o[0], o[1], o[2], o[3]]))
            + u64::from(u32::from_ne_bytes([n[0], n[1], n[2], n[3]]));
    }
    if let (Some(o), Some(n)) = (old_rest.first_chunk::<2>(), new_rest.first_chunk::<2>()) {
        s += u64::from(!u16::from_ne_bytes(*o)) + u64::from(u16::from_ne_bytes(*n));
    }
    s
}

/// `csum` patched for the summed `change`s (RFC 1624 eqn. 3): folded once, and taken from
/// native to network byte order as a one's-complement sum can be (RFC 1071 section 2(B):
/// the sum in the other byte order is the byte swap of the same result).
#[inline]
pub fn apply_change(csum: u16, change: u64) -> u16 {
    let s = (change & 0xffff_ffff) + (change >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    let delta = u16::from_be_bytes(fold(s as u32).to_ne_bytes());
    !fold(u32::from(!csum) + u32::from(delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The textbook RFC 1071 loop, to check the fast `sum` against.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u16::from_be_bytes([data[i], data[i + 1]]) as u32;
            s = (s & 0xffff) + (s >> 16);
            i += 2;
        }
        if i < data.len() {
            s += (data[i] as u32) << 8;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12])), 0x1200);
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(fold(sum(&[])), 0);
    }

    #[test]
    fn carries_wrap_around() {
        // 0xffff + 0x0001 = 0x0001 in one's complement (end-around carry).
        assert_eq!(fold(sum(&[0xff, 0xff, 0x00, 0x01])), 0x0001);
        // Many 0xff bytes: every 64-bit add carries.
        let data = [0xffu8; 1000];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(fold(sum(&data)), reference_sum(&data));
    }

    #[test]
    fn ipv4_header_example() {
        // A well-known example header (Wikipedia "IPv4 header checksum"): checksum 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn ipv4_header_check_matches_the_sum() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert!(ipv4_header_ok(&h));
        for i in 0..20 {
            for bit in 0..8 {
                h[i] ^= 1 << bit;
                assert_eq!(ipv4_header_ok(&h), fold(sum(&h)) == 0xffff, "byte {i} bit {bit}");
                h[i] ^= 1 << bit;
            }
        }
        assert!(!ipv4_header_ok(&[0; 20]));
        assert!(ipv4_header_ok(&[0xff; 20]));
    }

    #[test]
    fn pseudo_headers() {
        let v4 = pseudo_header_v4(Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2), 6, 0x0014);
        let bytes = [192, 0, 2, 1, 198, 51, 100, 2, 0, 6, 0x00, 0x14];
        assert_eq!(fold(v4), fold(sum(&bytes)));
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::aa:bb".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&0x0001_0020u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(fold(pseudo_header_v6(src, dst, 58, 0x0001_0020)), fold(sum(&ph)));
    }

    #[test]
    fn rfc1624_example() {
        // RFC 1624 section 4: HC=0xdd2f, m=0x5555 -> m'=0x3285 gives HC'=0x0000.
        assert_eq!(update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    proptest! {
        #[test]
        fn fast_sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fold(sum(&data)), reference_sum(&data));
        }

        #[test]
        fn ipv4_header_check_matches_reference(h in any::<[u8; 20]>()) {
            prop_assert_eq!(ipv4_header_ok(&h), reference_sum(&h) == 0xffff);
        }

        #[test]
        fn ipv4_header_checksum_matches_reference(mut h in any::<[u8; 20]>()) {
            h[10] = 0;
            h[11] = 0;
            prop_assert_eq!(ipv4_header_checksum(&h), checksum(&h).to_be_bytes());
        }

        #[test]
        fn sums_compose_at_even_splits(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..300) {
            let cut = (cut.min(data.len())) & !1;
            prop_assert_eq!(fold(sum(&data[..cut]) + sum(&data[cut..])), fold(sum(&data)));
        }

        #[test]
        fn incremental_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 8..64),
            at in 0usize..32,
            new in any::<[u8; 4]>(),
        ) {
            // A field at an even offset; the checksum of a non-zero buffer is never 0xffff, so
            // the incremental result equals the full one exactly (no -0/+0 ambiguity), as long
            // as the buffer stays non-zero.
            data[0] |= 1;
            let at = (at % (data.len() - 4)) & !1;
            let before = checksum(&data);
            let old: [u8; 4] = data[at..at + 4].try_into().unwrap();
            let old16 = u16::from_be_bytes([old[0], old[1]]);
            let old32 = u32::from_be_bytes(old);
            let new16 = u16::from_be_bytes([new[0], new[1]]);
            let new32 = u32::from_be_bytes(new);
            let mut after = data.clone();
            after[at..at + 4].copy_from_slice(&new);
            prop_assume!(after.iter().any(|b| *b != 0));
            let full = checksum(&after);
            prop_assert_eq!(update_u32(before, old32, new32), full);
            prop_assert_eq!(update_bytes(before, &old, &new), full);
            let mut after16 = data.clone();
            after16[at..at + 2].copy_from_slice(&new[..2]);
            prop_assume!(after16.iter().any(|b| *b != 0));
            prop_assert_eq!(update_u16(before, old16, new16), checksum(&after16));
        }
    }
}
