//! What tests, benches, fuzz targets and the traffic generator share: frame builders.
//! Built for dataplane's own tests and, for other crates, with the `testkit` feature.

pub mod packet;
