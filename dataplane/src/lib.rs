//! The ferrovs data path.
//!
//! Everything here except `dpdk` and `worker` is pure: it works on byte slices, takes time as
//! an argument and is driven by unit tests with plain buffers. `dpdk` is the only module with
//! `unsafe` outside `dpdk-sys`.

pub mod counters;
pub mod l3;
pub mod net;
pub mod pipeline;
pub mod rcu;
pub mod snapshot;
pub mod wire;

#[cfg(feature = "dpdk")]
pub mod dpdk;
#[cfg(feature = "dpdk")]
pub mod worker;
