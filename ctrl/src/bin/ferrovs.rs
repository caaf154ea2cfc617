//! `ferrovs -c FILE`: the load balancer daemon. Its command line is `ctrl::ferrovs_args`.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use ctrl::ferrovs_args::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    if args.doctor {
        return doctor(&args);
    }
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

/// `--doctor`: what this machine lacks for the config, and whether ferrovs can start.
fn doctor(args: &Args) -> ExitCode {
    let (config, kernel) = match ctrl::doctor::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrovs: {e}");
            return ExitCode::from(2);
        }
    };
    let root = args.root.as_deref().unwrap_or(Path::new("/"));
    let report =
        ctrl::doctor::diagnose(&ctrl::doctor::Tree::new(root), config, &kernel, &args.config.display().to_string());
    print!("{}", report.render());
    if report.can_start() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
