//! The single `stash` binary: parse arguments, dispatch to a command, map the outcome to an exit code.

mod cli;
mod commands;
mod exit_code;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let opts = cli::Opts::parse();
    match commands::dispatch(opts) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("stash: error: {err:#}");
            exit_code::ExitCode::from_error(&err).into()
        }
    }
}
