//! Arbitrary frames through the whole pipeline (`CoreCtx::process_burst`) against a snapshot
//! with a service in every mode and SNAT, a connection table full or not, cut into bursts.
//! Any panic is a bug. The body (and the input format) is
//! `dataplane::testkit::fuzz::process_burst`, which `cargo test` also replays over
//! `dataplane/fuzz/regressions/process_burst/`.
//!
//! Run: `cd dataplane/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none process_burst` (stable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dataplane::testkit::fuzz::process_burst(data));
