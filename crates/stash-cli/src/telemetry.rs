//! Logging: a tracing subscriber on stderr (text for people, JSON lines for pods), with the
//! `log` records of `rustic_core` and its backends bridged in. `RUST_LOG` wins over `-v`.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// opendal's request signer prints the credential provider, secret key included, at debug
/// level. These directives are appended to every filter (even to `RUST_LOG`), so no verbosity
/// puts a secret into a pod's log.
const SECRET_LEAKING_TARGETS: [&str; 2] = ["reqsign_core=info", "reqsign_aws_v4=info"];

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let default = match args.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let directives = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => directives,
        // rustic_core's checker logs errors of its own on healthy mixed packs ("Hash mismatch");
        // `stash check` grades and reports every finding itself.
        _ => format!("{default},rustic_core::commands::check=off"),
    };
    let capped = format!("{directives},{}", SECRET_LEAKING_TARGETS.join(","));
    let filter =
        EnvFilter::try_new(&capped).with_context(|| format!("invalid RUST_LOG `{directives}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // `try_init` also installs the `log` bridge (tracing-subscriber's `tracing-log` feature).
    let installed = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    installed.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))?;
    log_panics();
    Ok(())
}

/// Panics go through the logger like every other error, so that in a pod they are one JSON line
/// and a panic the engine catches and reports (a failure inside `rustic_core`'s worker threads)
/// is not also printed as if the process had crashed. An uncaught panic still exits 101.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "internal failure: {message}; please report it with this line"
        );
        if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
        }
    }));
}
