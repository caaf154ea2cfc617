//! `cargo run -p xtask -- dist DIR`: renders what the Debian package ships beside the
//! binaries, from the same clap definitions the binaries parse with (`ctrl::ferrovs_args`,
//! `ctrl::cli`): DIR/man/ferrovs.8 and fvs.8 (clap_mangen), and DIR/completions/ for bash
//! (ferrovs, fvs), zsh (_ferrovs, _fvs) and fish (ferrovs.fish, fvs.fish) (clap_complete).
//! scripts/deb.sh runs it before cargo-deb.
#![forbid(unsafe_code)]

use std::path::Path;
use std::process::ExitCode;

use clap_complete::Shell;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [task, dir] if task == "dist" => match dist(Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo run -p xtask -- dist DIR   (man pages and shell completions into DIR)");
            ExitCode::from(2)
        }
    }
}

fn dist(dir: &Path) -> Result<(), String> {
    let (man, completions) = (dir.join("man"), dir.join("completions"));
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    for mut cmd in [ctrl::ferrovs_args::command(), ctrl::cli::command()] {
        let name = cmd.get_name().to_string();
        let path = man.join(format!("{name}.8"));
        let mut page = Vec::new();
        // Section 8: both are the administrator's (the daemon, and its root-only control).
        clap_mangen::Man::new(cmd.clone())
            .section("8")
            .render(&mut page)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, page).map_err(|e| format!("{}: {e}", path.display()))?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, &name, &completions)
                .map_err(|e| format!("{} completions for {name}: {e}", shell))?;
        }
    }
    Ok(())
}
