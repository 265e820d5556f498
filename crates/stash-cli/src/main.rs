//! The single `stash` binary: parse arguments, dispatch to a command, map the outcome to an exit code.

mod cli;
mod commands;
mod exit_code;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let opts = cli::Opts::parse();
    install_interrupt_handler();
    match commands::dispatch(opts) {
        Ok(code) => code.into(),
        Err(err) => {
            eprintln!("stash: error: {err:#}");
            exit_code::ExitCode::from_error(&err).into()
        }
    }
}

/// Ctrl-C and SIGTERM remove the locks this process holds before it exits with restic's 130, so
/// an interrupted run never blocks the next one.
fn install_interrupt_handler() {
    let result = ctrlc::set_handler(|| {
        stash_engine::release_held_locks();
        eprintln!("stash: interrupted");
        std::process::exit(exit_code::ExitCode::Interrupted as i32);
    });
    if let Err(err) = result {
        eprintln!(
            "stash: warning: cannot handle interrupts ({err}); an interrupted run may leave a stale lock"
        );
    }
}
