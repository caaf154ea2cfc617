//! The `ferrovs` daemon's command line, here rather than in the binary so that `xtask` can
//! render its man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::Parser;

/// ferrovs: a DPDK userspace L4 load balancer.
///
/// Reads the YAML config, starts DPDK on the configured ports and worker lcores, and serves
/// the admin API (`fvs`) on a Unix socket until SIGINT or SIGTERM. Under systemd
/// (`Type=notify`) it reports readiness once ports, workers and the API run, and pings the
/// watchdog from its control thread.
#[derive(Parser, Debug)]
#[command(name = "ferrovs", version)]
pub struct Args {
    /// The config file (see conf/demo.yaml, conf/appliance.yaml; installed: /etc/ferrovs/ferrovs.yaml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Check the config and print the EAL arguments it gives, then exit. Besides the config
    /// itself, this checks what a start checks on the machine it runs on (the online CPUs for
    /// eal.main_lcore, workers.lcores and workers.cpus), with the same message; run it on the
    /// target machine. Devices, hugepages and memory are found by DPDK only at start.
    #[arg(long)]
    pub check: bool,
    /// With --check: the config is for another machine; skip the checks against this one
    /// (and say which were skipped).
    #[arg(long, requires = "check")]
    pub for_other_machine: bool,
    /// Probe this machine for the config and report, each finding with its fix: hugepages per
    /// NUMA node against what the config needs, IOMMU and vfio, each port's driver and NUMA
    /// node, worker CPUs on their NICs' node, isolated, their frequency governor, the kernel
    /// interfaces' devices, bird2 and keepalived. Exit code 0 when ferrovs can start here
    /// (warnings do not count), 1 when it cannot, 2 when the config is refused.
    #[arg(long, conflicts_with = "check")]
    pub doctor: bool,
    /// With --doctor: read DIR/sys, DIR/proc and DIR/dev instead of the machine's (a fake tree).
    #[arg(long, value_name = "DIR", requires = "doctor")]
    pub root: Option<PathBuf>,
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    <Args as clap::CommandFactory>::command()
}
