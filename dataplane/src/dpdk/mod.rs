//! The safe layer over DPDK: EAL, mempools, mbufs, ports, lcore launch. The only `unsafe`
//! outside `dpdk-sys`; every block says why it is sound.
//!
//! Ownership: an [`Mbuf`] owns one packet buffer and frees it on drop. A [`Port`] is a port id;
//! the queues a worker uses belong to that worker alone (DPDK queues are not thread-safe).

//!
//! [`prefetch`] is built without the `dpdk` feature too: the pure packet path uses it.

#[cfg(feature = "dpdk")]
mod eal;
#[cfg(feature = "dpdk")]
mod mbuf;
#[cfg(feature = "dpdk")]
mod port;
mod prefetch;
#[cfg(feature = "dpdk")]
mod ring;
#[cfg(feature = "dpdk")]
mod rss;

#[cfg(feature = "dpdk")]
pub use eal::{launch, rdtsc, tsc_hz, wait_lcore, Eal};
#[cfg(feature = "dpdk")]
pub use mbuf::{Flushed, Mbuf, Mempool, MempoolRef, RxBurst, TxBuffer, BURST_SIZE};
#[cfg(feature = "dpdk")]
pub use port::{LinkStatus, Port, PortConf, PortInfo, PortSetup};
pub use prefetch::prefetch;
#[cfg(feature = "dpdk")]
pub use ring::{handoff_ring, RingConsumer, RingProducer};
#[cfg(feature = "dpdk")]
pub use rss::soft_rss_ipv4_l4;

#[cfg(feature = "dpdk")]
use std::ffi::CStr;
#[cfg(feature = "dpdk")]
use std::fmt;

/// A failed DPDK call: which call, on what, and DPDK's own words for the error code.
#[cfg(feature = "dpdk")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub call: String,
    pub code: i32,
}

#[cfg(feature = "dpdk")]
impl DpdkError {
    /// `code` is a negative errno as ethdev returns, or a positive rte_errno.
    pub(crate) fn new(call: impl Into<String>, code: i32) -> DpdkError {
        DpdkError { call: call.into(), code: code.abs() }
    }

    /// For calls that report through rte_errno (rte_eal_init, mempool creation, ...).
    pub(crate) fn from_errno(call: impl Into<String>) -> DpdkError {
        // SAFETY: reads this thread's rte_errno through a C helper; no preconditions.
        let code = unsafe { dpdk_sys::fvs_rte_errno() };
        DpdkError::new(call, code)
    }
}

#[cfg(feature = "dpdk")]
impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
        // string for any value.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.code)) };
        write!(f, "{} failed: {} (errno {})", self.call, text.to_string_lossy(), self.code)
    }
}

#[cfg(feature = "dpdk")]
impl std::error::Error for DpdkError {}
