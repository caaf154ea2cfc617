//! Mempools and mbufs: packet buffers handed to the pipeline as byte slices. Of `dpdk/`, this
//! imports only the error type; rings, ports and bursts build on it.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::{rte_mbuf, rte_mempool};

use super::error::DpdkError;
use crate::pipeline::{Frame, FramePool};

/// A packet mbuf pool. Shared by reference between the cores of one NUMA socket (DPDK
/// mempools are multi-producer/multi-consumer, with a per-lcore cache in front).
pub struct Mempool {
    raw: NonNull<rte_mempool>,
}

// SAFETY: rte_mempool get/put are thread-safe; the pointer is only freed in Drop, after all
// users (ports, workers) are gone.
unsafe impl Send for Mempool {}
// SAFETY: as above; no method mutates the pool except through DPDK's thread-safe calls.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `mbufs` buffers of the default 2 KiB data room (plus headroom) on `socket`.
    pub fn create(name: &str, mbufs: u32, cache_size: u32, socket: i32) -> Result<Arc<Mempool>, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("mempool name has a NUL byte", 22))?;
        // SAFETY: valid NUL-terminated name; DPDK copies it. Called after rte_eal_init.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                mbufs,
                cache_size,
                0,
                dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16,
                socket,
            )
        };
        NonNull::new(raw).map(|raw| Arc::new(Mempool { raw })).ok_or_else(|| {
            DpdkError::from_errno(format!("rte_pktmbuf_pool_create({name}, {mbufs} mbufs, socket {socket})"))
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.raw.as_ptr()
    }

    /// A fresh mbuf with zero length, or None when the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid for self's lifetime.
        NonNull::new(unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) }).map(Mbuf)
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: the last Arc is gone, so no worker or port uses the pool any more (the
        // daemon closes ports before dropping it).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) };
    }
}

/// A pool handle the pipeline allocates generated frames from.
pub struct MempoolRef<'a>(pub &'a Mempool);

impl FramePool<Mbuf> for MempoolRef<'_> {
    #[inline]
    fn alloc(&mut self) -> Option<Mbuf> {
        self.0.alloc()
    }
}

/// One single-segment packet buffer. Freed on drop.
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an mbuf is owned by one Mbuf value at a time; moving it between threads is how
// DPDK applications pass packets between cores.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf from an rx burst.
    ///
    /// # Safety
    /// `raw` must be a valid, single-segment mbuf that nothing else owns.
    #[inline]
    pub(super) unsafe fn from_raw(raw: *mut rte_mbuf) -> Option<Mbuf> {
        NonNull::new(raw).map(Mbuf)
    }

    #[inline]
    pub(super) fn into_raw(self) -> *mut rte_mbuf {
        let raw = self.0.as_ptr();
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf.
        unsafe { self.0.as_ref() }
    }

    /// Bytes from the start of the data to the end of the buffer.
    #[inline]
    fn capacity(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len) - usize::from(m.data_off)
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's buffer, which we
        // own for the lifetime of the borrow. (This is rte_pktmbuf_mtod.)
        unsafe {
            std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.raw();
            (m.buf_addr.cast::<u8>(), usize::from(m.data_off), usize::from(m.data_len))
        };
        // SAFETY: as in data(), and &mut self makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    #[inline]
    fn rx_port(&self) -> u16 {
        self.raw().port
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if len > self.capacity() || len > usize::from(u16::MAX) {
            return false;
        }
        // SAFETY: we own the mbuf; single segment, so pkt_len == data_len.
        let m = unsafe { self.0.as_mut() };
        m.data_len = len as u16;
        m.pkt_len = len as u32;
        true
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw();
        if n > usize::from(m.data_off) || usize::from(m.data_len) + n > usize::from(u16::MAX) {
            return false;
        }
        // SAFETY: we own the mbuf; the new data start stays inside its buffer (n <= data_off),
        // single segment, so pkt_len == data_len. (This is rte_pktmbuf_prepend.)
        let m = unsafe { self.0.as_mut() };
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }

    #[inline]
    fn trim_front(&mut self, n: usize) -> bool {
        if n > usize::from(self.raw().data_len) {
            return false;
        }
        // SAFETY: we own the mbuf; the new data start stays inside its data (n <= data_len),
        // single segment, so pkt_len == data_len. (This is rte_pktmbuf_adj.)
        let m = unsafe { self.0.as_mut() };
        m.data_off += n as u16;
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back to its pool exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}
