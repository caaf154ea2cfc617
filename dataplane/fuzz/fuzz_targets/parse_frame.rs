//! Arbitrary bytes as an Ethernet frame: `summarize`, then every wire view (checked
//! constructors, every getter, every setter on a copy) at each layer. Any panic is a bug.
//! The body is `dataplane::testkit::fuzz::parse_frame`, which `cargo test` also replays over
//! `dataplane/fuzz/regressions/parse_frame/`.
//!
//! Run: `cd dataplane/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none parse_frame` (stable).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| dataplane::testkit::fuzz::parse_frame(data));
