//! Turning the shared repository flags into an engine handle, and printing results.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use stash_engine::{Control, Engine, Password, RepositoryLocation, SnapshotFilter};
use tokio_util::sync::CancellationToken;

use crate::cli::{RepoArgs, SnapshotFilterArgs};

pub fn engine(args: &RepoArgs) -> anyhow::Result<Engine> {
    let repository = args
        .repo
        .as_deref()
        .context("no repository given: pass -r/--repo or set RESTIC_REPOSITORY")?;
    let mut location = RepositoryLocation::from_env(repository)?;
    if args.cacert.is_some() || args.insecure_tls {
        let mut tls = location.config().tls.clone();
        if let Some(path) = &args.cacert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --cacert `{}`", path.display()))?;
            tls.ca_cert_pem = Some(pem);
        }
        tls.insecure_skip_verify |= args.insecure_tls;
        location = location.with_tls(tls)?;
    }
    let password = Password::resolve(args.password_file.as_deref())?;
    Ok(Engine::new(location, password)
        .with_cache_dir(args.cache_dir.clone())
        .without_cache(args.no_cache)
        .without_lock(args.no_lock)
        .with_lock_wait(args.retry_lock.unwrap_or_default()))
}

/// Cancellation from the signal handler; a progress bar only for a person at a terminal.
pub fn control(args: &RepoArgs, cancel: &CancellationToken) -> Control {
    let control = Control::new(cancel.clone());
    if !args.quiet && !args.json && std::io::stderr().is_terminal() {
        control.with_progress(
            Arc::new(crate::progress::TerminalProgress::new()),
            Duration::from_millis(200),
        )
    } else {
        control
    }
}

pub fn filter(args: &SnapshotFilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        hosts: args.hosts.clone(),
        paths: args.paths.clone(),
        tags: args.tags.clone(),
    }
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!(
        "{}",
        serde_json::to_string(value).context("failed to encode the result as JSON")?
    );
    Ok(())
}

/// restic's human size format (`1.234 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.3} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_print_like_restic() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(2629), "2.567 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.000 GiB");
    }
}
