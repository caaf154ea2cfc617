//! The packet test kit: the in-memory frame and tx doubles, the frame builders (`packet`:
//! Repr + emit with checksums), the standard snapshot and service builders of the pipeline
//! tests, and the drivers the fuzz targets run.
//!
//! Built for this crate's own tests and, outside them, with the `testkit` feature (the fuzz
//! crate, the benches and fvs-pktgen use it). Nothing here is part of the data path: it
//! allocates freely and panics on bad test input. The pipeline tests reach everything here by
//! its old names (`pipeline/tests.rs` re-exports it); their short helpers (`l4`, `eth`,
//! `arp`, `parse`, ...) are thin wrappers over `packet`.

mod frames;
pub mod fuzz;
pub mod packet;
mod services;

pub use frames::*;
pub use services::*;
