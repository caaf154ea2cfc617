//! Bursts of mbufs: received from a port or a hand-off ring, and buffered for a port's tx
//! queue or another worker's ring. Builds on `mbuf`, `port` and `ring`; nothing in `dpdk/`
//! imports it but the module's re-exports.

use dpdk_sys::rte_mbuf;

use super::mbuf::Mbuf;
use super::port::Port;
use super::ring::{RingConsumer, RingProducer};

/// Frames per rx/tx burst.
pub const BURST_SIZE: usize = 32;

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
