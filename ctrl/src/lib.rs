//! ferrovs control plane: the YAML config model and its validation (`config`, with services in `lbconf`), the admin
//! API's messages (`proto`), its Unix socket server (`api`) and client (`client`), and the
//! `fvs` command line (`cli`).
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod client;
pub mod config;
#[cfg(feature = "dpdk")]
pub mod daemon;
pub mod lbconf;
pub mod lbstate;
pub mod proto;
