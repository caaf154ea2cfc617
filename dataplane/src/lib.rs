//! The ferrovs data path.
//!
//! Everything here except `dpdk` and `worker` is pure: it works on byte slices, takes time as
//! an argument and is driven by unit tests with plain buffers. `dpdk` and `cpu_hint` (the cache
//! prefetch the connection table issues) are the only modules with `unsafe` outside
//! `dpdk-sys`: the compiler holds every other module to that.
//!
//! Layering: the packet core (every module but `dpdk` and `worker`) imports nothing from
//! `dpdk`, so it builds without DPDK (`--no-default-features`); `dpdk` implements the
//! pipeline's frame traits for mbufs, and `worker` joins the two. The test `layering` (in
//! `tests/layering.rs`) fails the build's tests when a packet-core file names `dpdk`.
#![deny(unsafe_code)]

pub mod conn;
pub mod counters;
pub mod defence;
pub mod handshake;
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
pub mod trace;
pub mod wire;
pub mod xlate;

#[allow(unsafe_code)]
pub mod cpu_hint;
#[allow(unsafe_code)]
pub mod dpdk;
#[cfg(feature = "dpdk")]
pub mod worker;
