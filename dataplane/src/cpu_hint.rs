//! Cache prefetch and a byte compare, the CPU instructions the packet path needs that safe
//! Rust does not offer.
//!
//! The second `unsafe` island of this crate (the other is `dpdk`), kept out of `dpdk` so that
//! the packet core imports nothing from the DPDK wrapper. Built with and without the `dpdk`
//! feature: the pure tests, the fuzz targets and the benchmarks use it too.

/// Starts loading the cache line holding `x` into every cache level, without waiting for it:
/// a burst issues one per packet so that their memory latencies overlap.
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetcht0 is a hint: it never faults or changes memory, for any address; and
    // SSE, which provides it, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((x as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Bit i set where byte i of the 16 bytes `lo` (bytes 0..8, little-endian) and `hi` (8..16)
/// equals `b`: one SSE2 compare and byte mask.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn bytes_equal_mask(lo: u64, hi: u64, b: u8) -> u16 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set1_epi8, _mm_set_epi64x};
    // SAFETY: these intrinsics only compute on values (no memory access), and SSE2, which
    // provides them, is part of the x86_64 baseline.
    unsafe {
        let eq = _mm_cmpeq_epi8(_mm_set_epi64x(hi as i64, lo as i64), _mm_set1_epi8(b as i8));
        _mm_movemask_epi8(eq) as u16
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn bytes_equal_mask_marks_each_equal_byte() {
        let bytes: [u8; 16] = [7, 0, 7, 255, 1, 7, 7, 0, 9, 7, 0, 0, 7, 3, 7, 7];
        let lo = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let hi = u64::from_le_bytes(bytes[8..].try_into().unwrap());
        for b in [0u8, 7, 255, 42] {
            let want = (0..16).fold(0u16, |m, i| m | u16::from(bytes[i] == b) << i);
            assert_eq!(bytes_equal_mask(lo, hi, b), want, "byte {b}");
        }
    }
}
