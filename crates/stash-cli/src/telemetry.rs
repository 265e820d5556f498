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
    installed.map_err(|err| anyhow::anyhow!("cannot install the logger: {err}"))
}
