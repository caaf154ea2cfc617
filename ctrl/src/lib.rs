//! ferrovs control plane: the YAML config model and its validation (`config`: error, l3 and
//! lb, imported one way), the load-balancing state (`lbstate`), what start-up
//! checks against the machine (`machine`), what this machine lacks for a config (`doctor`),
//! the daemon's command line (`ferrovs_args`), the control state that turns each admin change
//! into one transaction (`state`), the kernel interfaces' rtnetlink calls (`netlink`), the VIPs
//! as kernel routes for routing daemons (`announce`), the admin API's messages (`proto`), its
//! Unix socket server (`api`) and client (`client`), the Prometheus exposition and DPDK
//! telemetry dicts (`metrics`), `fvs trace`'s sessions (`trace`), the daemon (`daemon`, with DPDK, and what it tells systemd:
//! `systemd`) and the `fvs` command line (`cli`). Everything but `daemon` builds and tests
//! without DPDK (`--no-default-features`).
#![forbid(unsafe_code)]

pub mod acl;
pub mod announce;
pub mod api;
pub mod cli;
pub mod client;
pub mod config;
#[cfg(feature = "dpdk")]
pub mod daemon;
pub mod doctor;
pub mod ferrovs_args;
pub mod health;
pub mod lbstate;
pub mod machine;
pub mod metrics;
pub mod netlink;
pub mod proto;
pub mod state;
#[cfg(feature = "dpdk")]
pub mod systemd;
pub mod trace;
