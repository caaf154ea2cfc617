//! Rings of mbufs from one worker to another: the hand-off path for packets that arrive on a
//! core that does not own their connection. One producer and one consumer per ring, so
//! DPDK's single-producer/single-consumer mode applies: each side moves its index with plain
//! loads and stores, no compare-and-swap, once per burst.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::rte_ring;

use super::error::DpdkError;
use super::mbuf::Mbuf;

/// rte_ring.h's RING_F_SP_ENQ and RING_F_SC_DEQ (macros bindgen does not see).
const RING_F_SP_ENQ: u32 = 0x0001;
const RING_F_SC_DEQ: u32 = 0x0002;

struct Ring {
    raw: NonNull<rte_ring>,
}

// SAFETY: the ring is shared by exactly one producer and one consumer (the halves below are
// not Clone and enqueue/dequeue take &mut self); DPDK's SP/SC ring is safe for that pair on
// different threads.
unsafe impl Send for Ring {}
// SAFETY: as above; `&Ring` is only used through the halves, each owned by one thread.
unsafe impl Sync for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // Both halves are gone: free what is still in the ring, then the ring.
        let mut objs = [std::ptr::null_mut(); 32];
        loop {
            // SAFETY: no producer or consumer is left; objs has room for 32 pointers.
            let n = unsafe {
                dpdk_sys::rte_ring_sc_dequeue_burst(self.raw.as_ptr(), objs.as_mut_ptr(), 32, std::ptr::null_mut())
            };
            if n == 0 {
                break;
            }
            for obj in &objs[..n as usize] {
                // SAFETY: only owned mbufs are ever enqueued.
                drop(unsafe { Mbuf::from_raw(obj.cast()) });
            }
        }
        // SAFETY: created by rte_ring_create; freed once, here.
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) };
    }
}

/// The sending end, owned by the worker that hands packets off.
pub struct RingProducer(Arc<Ring>);

/// The receiving end, owned by the worker that owns the packets' connections.
pub struct RingConsumer(Arc<Ring>);

/// A ring of `size` (a power of two; it holds `size - 1`) on NUMA `socket`, split into its
/// two ends. `name` must be unique in the process.
pub fn handoff_ring(name: &str, size: u32, socket: i32) -> Result<(RingProducer, RingConsumer), DpdkError> {
    let cname = CString::new(name).map_err(|_| DpdkError::new("ring name has a NUL byte", 22))?;
    // SAFETY: valid NUL-terminated name (DPDK copies it); called after rte_eal_init.
    let raw = unsafe { dpdk_sys::rte_ring_create(cname.as_ptr(), size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ) };
    let raw = NonNull::new(raw).ok_or_else(|| DpdkError::from_errno(format!("rte_ring_create({name}, {size})")))?;
    let ring = Arc::new(Ring { raw });
    Ok((RingProducer(ring.clone()), RingConsumer(ring)))
}

impl RingProducer {
    /// Enqueues as many of `frames` as fit, in order; returns those that did not.
    #[inline]
    pub(crate) fn enqueue(&mut self, frames: &[*mut dpdk_sys::rte_mbuf]) -> usize {
        if frames.is_empty() {
            return 0;
        }
        // SAFETY: this is the ring's only producer; the pointers are owned mbufs whose
        // ownership passes to the ring for the first `n`.
        let n = unsafe {
            dpdk_sys::rte_ring_sp_enqueue_burst(
                self.0.raw.as_ptr(),
                frames.as_ptr().cast(),
                frames.len() as u32,
                std::ptr::null_mut(),
            )
        };
        frames.len() - n as usize
    }
}

impl RingConsumer {
    /// Dequeues up to `out.len()` mbufs into `out`; returns how many.
    #[inline]
    pub(crate) fn dequeue(&mut self, out: &mut [*mut dpdk_sys::rte_mbuf]) -> usize {
        // SAFETY: this is the ring's only consumer; `out` has room for out.len() pointers,
        // which become owned by the caller.
        let n = unsafe {
            dpdk_sys::rte_ring_sc_dequeue_burst(
                self.0.raw.as_ptr(),
                out.as_mut_ptr().cast(),
                out.len() as u32,
                std::ptr::null_mut(),
            )
        };
        n as usize
    }
}
