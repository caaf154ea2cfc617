//! The safe layer over DPDK: EAL, mempools, mbufs, ports, lcore launch. The only `unsafe`
//! outside `dpdk-sys`; every block says why it is sound.
//!
//! Ownership: an [`Mbuf`] owns one packet buffer and frees it on drop. A [`Port`] is a port id;
//! the queues a worker uses belong to that worker alone (DPDK queues are not thread-safe).
//!
//! Imports point one way: `error` <- `mbuf` <- `ring`, `port` <- `burst`; `eal` and `rss`
//! stand alone. This file only declares and re-exports.

#[cfg(feature = "dpdk")]
mod burst;
#[cfg(feature = "dpdk")]
mod eal;
#[cfg(feature = "dpdk")]
mod error;
#[cfg(feature = "dpdk")]
mod mbuf;
#[cfg(feature = "dpdk")]
mod port;
#[cfg(feature = "dpdk")]
mod ring;
#[cfg(feature = "dpdk")]
mod rss;
#[cfg(feature = "dpdk")]
pub mod telemetry;

#[cfg(feature = "dpdk")]
pub use burst::{Flushed, RxBurst, TxBuffer, BURST_SIZE};
#[cfg(feature = "dpdk")]
pub use eal::{launch, pdump_init, pdump_uninit, rdtsc, tsc_hz, wait_lcore, Eal};
#[cfg(feature = "dpdk")]
pub use error::DpdkError;
#[cfg(feature = "dpdk")]
pub use mbuf::{Mbuf, Mempool, MempoolRef};
#[cfg(feature = "dpdk")]
pub use port::{LinkStatus, Port, PortConf, PortInfo, PortSetup};
#[cfg(feature = "dpdk")]
pub use ring::{handoff_ring, RingConsumer, RingProducer};
#[cfg(feature = "dpdk")]
pub use rss::soft_rss_ipv4_l4;
