//! Backing up this host's paths (§8.6 step 6): one snapshot per `target.paths` entry, with the
//! target's excludes and the host name, reporting progress into the session.

use std::path::PathBuf;
use std::time::Instant;

use stash_api::common::BackupTarget;
use stash_api::v1beta1::HostBackupStats;
use stash_engine::{BackupRequest, Control, Engine, EngineError};
use tokio_util::sync::CancellationToken;

use super::progress::{ENGINE_INTERVAL, ProgressWriter};
use super::{SessionHandle, stats};

/// How a host's backup ended.
pub enum BackupOutcome {
    /// The final `stats[]` entry to write (Succeeded or Failed).
    Finished(Box<HostBackupStats>),
    /// SIGTERM: nothing final is written, so the restarted sidecar backs up again.
    Cancelled,
}

/// Backs up `target.paths` as `host`. Paths are the real paths inside this pod (the volumes are
/// mounted there), so they go to the engine as they are.
pub async fn run(
    engine: &Engine,
    session: &SessionHandle,
    host: &str,
    target: &BackupTarget,
    cancel: &CancellationToken,
) -> BackupOutcome {
    let started = Instant::now();
    let paths = target.paths.clone().unwrap_or_default();
    if paths.is_empty() {
        return BackupOutcome::Finished(Box::new(stats::failed(
            host,
            format!(
                "target {}/{} has no paths; list the directories to back up in target.paths",
                target.reference.kind, target.reference.name
            ),
            started.elapsed(),
            None,
        )));
    }
    let writer = ProgressWriter::start(session.clone(), host.to_owned());
    let control = Control::new(cancel.clone()).with_progress(writer.sink(), ENGINE_INTERVAL);
    let mut reports = Vec::with_capacity(paths.len());
    let mut failure = None;
    for path in &paths {
        let request = BackupRequest {
            paths: vec![PathBuf::from(path)],
            excludes: target.exclude.clone().unwrap_or_default(),
            host: Some(host.to_owned()),
            ..BackupRequest::default()
        };
        tracing::info!(path, host, "backing up");
        match engine.backup(request, &control).await {
            Ok(report) => reports.push((path.clone(), report)),
            Err(EngineError::Cancelled) => {
                drop(control);
                let _ = writer.finish().await;
                return BackupOutcome::Cancelled;
            }
            Err(err) => {
                failure = Some(format!("backup of {path} failed: {}", describe(&err)));
                break;
            }
        }
    }
    drop(control);
    let progress = writer.finish().await;
    let elapsed = started.elapsed();
    BackupOutcome::Finished(Box::new(match failure {
        Some(error) => stats::failed(host, error, elapsed, progress),
        None => stats::finished(host, &reports, elapsed, progress),
    }))
}

/// The engine's error as the sidecar's user must read it: the password comes from the
/// Repository's storage Secret, not from the flag or file the engine's own hint names.
fn describe(err: &EngineError) -> String {
    match err {
        EngineError::WrongPassword { location } => {
            crate::repository::wrong_password_message(location)
        }
        other => error_chain(other),
    }
}

/// An error and its causes on one line, for status messages.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
