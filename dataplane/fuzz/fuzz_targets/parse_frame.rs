//! Arbitrary bytes as an Ethernet frame: `summarize`, then every wire view (checked
//! constructors, every getter, every setter on a copy) at each layer. Any panic is a bug.
//!
//! Run: `cd dataplane/fuzz && cargo fuzz run parse_frame` (nightly or RUSTC_BOOTSTRAP=1).
#![no_main]

use dataplane::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = wire::summarize(data) {
        // A summary only holds what the checked views accepted; re-derive it to be sure
        // the walk is deterministic.
        assert_eq!(wire::summarize(data), Ok(s));
    }
    std::hint::black_box(wire::exercise_views(data));
});
