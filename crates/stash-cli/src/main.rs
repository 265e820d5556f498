//! The single `stash` binary: parse arguments, set up logging and the runtime, turn SIGINT and
//! SIGTERM into cancellation, dispatch to a command, map the outcome to an exit code.

mod cli;
mod commands;
mod exit_code;
mod progress;
mod telemetry;

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> std::process::ExitCode {
    let opts = cli::Opts::parse_from(commands::kubectl::args(std::env::args_os()));
    if let Err(err) = telemetry::init(&opts.log) {
        eprintln!("stash: error: {err:#}");
        return exit_code::ExitCode::Error.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("stash: error: cannot start the async runtime: {err}");
            return exit_code::ExitCode::Error.into();
        }
    };
    let cancel = CancellationToken::new();
    let outcome = runtime.block_on(async {
        tokio::spawn(cancel_on_signals(cancel.clone()));
        commands::dispatch(opts, &cancel).await
    });
    match outcome {
        Ok(code) => code.into(),
        Err(err) => {
            let code = exit_code::ExitCode::from_error(&err);
            if code == exit_code::ExitCode::Interrupted {
                eprintln!("stash: interrupted");
            } else {
                eprintln!("stash: error: {err:#}");
            }
            code.into()
        }
    }
}

/// The first Ctrl-C or SIGTERM cancels the running operation, which then releases its lock and
/// returns (exit 130, as restic). A second one quits at once; the lock it leaves is stale (its
/// process is gone) and blocks nobody.
async fn cancel_on_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!(
            "stash: warning: cannot handle interrupts; an interrupted run may leave a stale lock"
        );
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("interrupted; cancelling the running operation");
    cancel.cancel();
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("stash: interrupted twice; quitting at once");
    std::process::exit(exit_code::ExitCode::Interrupted as i32);
}
