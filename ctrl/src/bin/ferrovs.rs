//! `ferrovs -c FILE`: the load balancer daemon.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// ferrovs: a DPDK userspace L4 load balancer.
///
/// Reads the YAML config, starts DPDK on the configured ports and worker lcores, and serves
/// the admin API (`fvs`) on a Unix socket until SIGINT or SIGTERM.
#[derive(Parser)]
#[command(name = "ferrovs", version)]
struct Args {
    /// The config file (see conf/demo.yaml, conf/appliance.yaml).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: PathBuf,
    /// Check the config and print the EAL arguments it gives, then exit. Besides the config
    /// itself, this checks what a start checks on the machine it runs on (the online CPUs for
    /// eal.main_lcore, workers.lcores and workers.cpus), with the same message; run it on the
    /// target machine. Devices, hugepages and memory are found by DPDK only at start.
    #[arg(long)]
    check: bool,
    /// With --check: the config is for another machine; skip the checks against this one
    /// (and say which were skipped).
    #[arg(long, requires = "check")]
    for_other_machine: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match ctrl::daemon::load_config(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrovs: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        return check(&args, config);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    match ctrl::daemon::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrovs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check`: the config is valid (already), then what a start checks on this machine.
fn check(args: &Args, mut config: ctrl::config::Config) -> ExitCode {
    let checks = ctrl::machine::MACHINE_CHECKS;
    if args.for_other_machine {
        println!("{}: ok (config only)", args.config.display());
        println!("skipped (--for-other-machine): {checks}");
    } else {
        // Exactly what a start does, so it fails with the message a start would give.
        if let Err(e) = ctrl::machine::resolve_lcores(&mut config, ctrl::machine::read_online_cpus()) {
            eprintln!("ferrovs: {e}");
            return ExitCode::FAILURE;
        }
        println!("{}: ok", args.config.display());
        println!("checked on this machine: {checks}");
    }
    println!("not checked before start: devices, hugepages and memory (DPDK finds them when ferrovs starts)");
    println!("EAL arguments: {}", ctrl::daemon::eal_args(&config).join(" "));
    ExitCode::SUCCESS
}
