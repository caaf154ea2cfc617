//! Benchmarks live in benches/benches; run `cargo bench -p ferrovs-benches`.
