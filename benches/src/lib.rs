//! Benchmarks live in benches/benches; run `cargo bench -p ferrovs-benches`. This library holds
//! what several of them share.

pub mod lb6_rig;
pub mod lb_rig;
