//! `fvs`: the ferrovs command line. See `ctrl::cli`.
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(ctrl::cli::main_with_args(std::env::args_os()));
}
