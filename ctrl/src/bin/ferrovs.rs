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
    /// Check the config and print the EAL arguments it gives, then exit.
    #[arg(long)]
    check: bool,
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
        println!("{}: ok", args.config.display());
        println!("EAL arguments: {}", ctrl::daemon::eal_args(&config).join(" "));
        return ExitCode::SUCCESS;
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
