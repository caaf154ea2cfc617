//! The ferrovs data path.
//!
//! Everything here except `dpdk` and `worker` is pure: it works on byte slices, takes time as
//! an argument and is driven by unit tests with plain buffers. `dpdk` is the only module with
//! `unsafe` outside `dpdk-sys`: the compiler holds every other module to that. Of `dpdk`, only
//! `dpdk::prefetch` (a CPU hint the pure packet path uses) builds without the `dpdk` feature.
#![deny(unsafe_code)]

pub mod conn;
pub mod counters;
pub mod l3;
pub mod lb;
pub mod net;
pub mod pipeline;
pub mod rcu;
pub mod rss;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod steer;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod wire;
pub mod xlate;

#[allow(unsafe_code)]
pub mod dpdk;
#[cfg(feature = "dpdk")]
pub mod worker;
