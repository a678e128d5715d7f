//! `roostctl`: the Roost command line. Thin over `roostctl::run`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = roostctl::Cli::parse();
    match roostctl::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roostctl: {e:#}");
            ExitCode::from(2)
        }
    }
}
