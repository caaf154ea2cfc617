//! Cache prefetch, the one CPU hint the packet path needs that safe Rust does not offer.
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
