//! Mempools and mbufs: packet buffers handed to the pipeline as byte slices.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys::{rte_mbuf, rte_mempool};

use super::port::Port;
use super::ring::{RingConsumer, RingProducer};
use super::DpdkError;
use crate::pipeline::{Frame, FramePool};

/// Frames per rx/tx burst.
pub const BURST_SIZE: usize = 32;

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
    fn into_raw(self) -> *mut rte_mbuf {
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
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back to its pool exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

/// A received burst: raw mbufs handed out one by one as owned [`Mbuf`]s.
pub struct RxBurst {
    pkts: [*mut rte_mbuf; BURST_SIZE],
    len: usize,
    next: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst { pkts: [std::ptr::null_mut(); BURST_SIZE], len: 0, next: 0 }
    }
}

impl RxBurst {
    /// Receives up to BURST_SIZE frames from `queue` of `port`. Frames not yet taken from
    /// the previous burst are freed first.
    #[inline]
    pub fn receive(&mut self, port: Port, queue: u16) -> usize {
        self.free_rest();
        // SAFETY: pkts has room for BURST_SIZE pointers; the calling worker owns this queue.
        let n = unsafe { dpdk_sys::rte_eth_rx_burst(port.id(), queue, self.pkts.as_mut_ptr(), BURST_SIZE as u16) };
        self.len = usize::from(n);
        self.next = 0;
        self.len
    }

    /// Takes up to BURST_SIZE frames another worker handed to this one. Frames not yet taken
    /// from the previous burst are freed first.
    #[inline]
    pub fn receive_ring(&mut self, ring: &mut RingConsumer) -> usize {
        self.free_rest();
        self.len = ring.dequeue(&mut self.pkts);
        self.next = 0;
        self.len
    }

    fn free_rest(&mut self) {
        while self.next < self.len {
            // SAFETY: entries next..len are mbufs from rx_burst not yet handed out.
            drop(unsafe { Mbuf::from_raw(self.pkts[self.next]) });
            self.next += 1;
        }
    }
}

impl Iterator for RxBurst {
    type Item = Mbuf;
    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.next >= self.len {
            return None;
        }
        let raw = self.pkts[self.next];
        self.next += 1;
        // SAFETY: each entry below len came from rx_burst and is handed out exactly once.
        unsafe { Mbuf::from_raw(raw) }
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.free_rest();
    }
}

/// Frames waiting to be sent on one port's tx queue.
pub struct TxBuffer {
    pkts: [*mut rte_mbuf; BURST_SIZE],
    len: usize,
}

impl Default for TxBuffer {
    fn default() -> Self {
        TxBuffer { pkts: [std::ptr::null_mut(); BURST_SIZE], len: 0 }
    }
}

impl TxBuffer {
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST_SIZE
    }

    /// Adds a frame; the caller flushes when full. Returns the frame back if there is no room.
    #[inline]
    pub fn push(&mut self, frame: Mbuf) -> Result<(), Mbuf> {
        if self.is_full() {
            return Err(frame);
        }
        self.pkts[self.len] = frame.into_raw();
        self.len += 1;
        Ok(())
    }

    /// Frames buffered, not yet sent.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sends what the NIC takes now and keeps the rest, in order, for the next call: a traffic
    /// generator retries instead of dropping. Returns how many were sent.
    #[inline]
    pub fn send_retaining(&mut self, port: Port, queue: u16) -> usize {
        if self.len == 0 {
            return 0;
        }
        // SAFETY: pkts[..len] are owned mbufs; tx_burst takes ownership of the first `sent`;
        // the caller owns this queue.
        let sent = usize::from(unsafe {
            dpdk_sys::rte_eth_tx_burst(port.id(), queue, self.pkts.as_mut_ptr(), self.len as u16)
        });
        self.pkts.copy_within(sent..self.len, 0);
        self.len -= sent;
        sent
    }

    /// Hands what is buffered to another worker's ring; frees and returns the count of
    /// frames the ring did not take (the caller counts them as drops).
    #[inline]
    pub fn flush_to_ring(&mut self, ring: &mut RingProducer) -> usize {
        let unsent = ring.enqueue(&self.pkts[..self.len]);
        for raw in &self.pkts[self.len - unsent..self.len] {
            // SAFETY: the ring did not take these; we still own them.
            drop(unsafe { Mbuf::from_raw(*raw) });
        }
        self.len = 0;
        unsent
    }

    /// Sends what is buffered on `queue` of `port` and frees the frames the NIC did not take.
    /// Says how many frames (and bytes) it took and how many it refused, for the caller to
    /// count.
    #[inline]
    pub fn flush(&mut self, port: Port, queue: u16) -> Flushed {
        if self.len == 0 {
            return Flushed::default();
        }
        // Summed before the burst: the frames the NIC takes are no longer ours to read.
        let mut bytes = 0;
        for raw in &self.pkts[..self.len] {
            // SAFETY: pkts[..len] are valid mbufs owned by this buffer.
            bytes += u64::from(unsafe { (**raw).pkt_len });
        }
        // SAFETY: pkts[..len] are owned mbufs; tx_burst takes ownership of the first `sent`;
        // the calling worker owns this queue.
        let sent = usize::from(unsafe {
            dpdk_sys::rte_eth_tx_burst(port.id(), queue, self.pkts.as_mut_ptr(), self.len as u16)
        });
        for raw in &self.pkts[sent..self.len] {
            // SAFETY: the NIC did not take these; we still own them.
            bytes -= u64::from(unsafe { (**raw).pkt_len });
            // SAFETY: as above; each is freed once, here.
            drop(unsafe { Mbuf::from_raw(*raw) });
        }
        let refused = self.len - sent;
        self.len = 0;
        Flushed { sent, sent_bytes: bytes, refused }
    }
}

/// What one [`TxBuffer::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Frames the NIC took, and their bytes.
    pub sent: usize,
    pub sent_bytes: u64,
    /// Frames it refused (freed).
    pub refused: usize,
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        for raw in &self.pkts[..self.len] {
            // SAFETY: buffered mbufs are still owned by this buffer.
            drop(unsafe { Mbuf::from_raw(*raw) });
        }
    }
}
