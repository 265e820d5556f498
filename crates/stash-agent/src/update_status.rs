//! `stash update-status`: the last container of a job-model Job (§11.1). It reads the output the data
//! step left in `--output-dir` and records it:
//!
//! - after `backup-pvc`: the host's final `stats[]` entry in the BackupSession (unless one is already
//!   final), the host metrics, and — as the host that completed the target — the post-backup actions
//!   (retention, check, repository metrics and the Repository status) exactly as the sidecar runs them;
//! - after `restore-pvc`: nothing when the RestoreSession already holds the host's final entry (the
//!   restore code writes it as it goes, as the init-container does), else the entry from the output.
//!
//! A missing output file (the data step crashed) becomes a Failed entry that says so, so the session
//! ends instead of waiting for its deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::Client;
use stash_api::phase::HostRestorePhase;
use stash_api::v1beta1::{HostBackupStats, RestoreSession};
use stash_engine::Control;
use tokio_util::sync::CancellationToken;

use crate::backup_pvc::BackupPvcOptions;
use crate::job_output::{JobOutput, OutputError};
use crate::repository::{self, ConnectOptions};
use crate::restore::status::{HostStatus, host_entry as restore_host_entry};
use crate::run_backup::backup::error_chain;
use crate::run_backup::metrics::MetricsPusher;
use crate::run_backup::post_backup::{self, PostBackup};
use crate::run_backup::{invoker, stats, status};

/// Which session the Job reports into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Session {
    /// `--backupsession`: the backup Job's options (invoker, target, host, output dir, metrics).
    Backup(Box<BackupPvcOptions>),
    /// `--invoker-kind=RestoreSession --invoker-name=…`.
    Restore {
        namespace: String,
        name: String,
        hostname: String,
        output_dir: PathBuf,
    },
}

/// Why `update-status` exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum UpdateStatusError {
    #[error("{kind} {namespace}/{name}: {message}")]
    Session {
        kind: &'static str,
        namespace: String,
        name: String,
        message: String,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Records the output of the data step.
pub async fn run(
    client: Client,
    session: &Session,
    cancel: CancellationToken,
) -> Result<(), UpdateStatusError> {
    match session {
        Session::Backup(options) => {
            let span = tracing::info_span!("update-status", kind = "BackupSession", namespace = %options.namespace, name = %options.backup_session);
            tracing::Instrument::instrument(Box::pin(backup(&client, options, &cancel)), span).await
        }
        Session::Restore {
            namespace,
            name,
            hostname,
            output_dir,
        } => {
            let span = tracing::info_span!("update-status", kind = "RestoreSession", namespace = %namespace, name = %name);
            let status = HostStatus::new(client, namespace, name, hostname);
            tracing::Instrument::instrument(restore(&status, output_dir), span).await
        }
    }
}

fn backup_error(options: &BackupPvcOptions, message: String) -> UpdateStatusError {
    UpdateStatusError::Session {
        kind: "BackupSession",
        namespace: options.namespace.clone(),
        name: options.backup_session.clone(),
        message,
    }
}

/// The host's entry from the output; a missing output file is a Failed entry naming it.
fn backup_entry(options: &BackupPvcOptions) -> Result<Option<HostBackupStats>, OutputError> {
    match JobOutput::read(&options.output_dir) {
        Ok(JobOutput::Backup { host, .. }) => Ok(host),
        Ok(JobOutput::Restore { .. }) => Ok(Some(stats::failed(
            &options.hostname,
            format!(
                "{} holds a restore output, not a backup's; check --output-dir",
                options.output_dir.display()
            ),
            Duration::ZERO,
            None,
        ))),
        Err(err @ OutputError::Missing { .. }) => Ok(Some(stats::failed(
            &options.hostname,
            err.to_string(),
            Duration::ZERO,
            None,
        ))),
        Err(err) => Err(err),
    }
}

async fn backup(
    client: &Client,
    options: &BackupPvcOptions,
    cancel: &CancellationToken,
) -> Result<(), UpdateStatusError> {
    let Some(entry) = backup_entry(options)? else {
        tracing::info!("backup-pvc had nothing to do; nothing to record");
        return Ok(());
    };
    let handle = options.handle(client);
    let host = options.hostname.clone();
    let written = status::update(&handle.api, &handle.namespace, &handle.name, |s| {
        let already_final = handle
            .target_of(s)
            .and_then(|t| status::host_entry(t, &host))
            .is_some_and(|h| h.phase.is_some());
        if !already_final {
            status::upsert_host(s, &handle.target, &handle.namespace, entry.clone());
        }
    })
    .await
    .map_err(|e| backup_error(options, error_chain(&e)))?;
    tracing::info!(host, phase = ?entry.phase, error = ?entry.error, "recorded the host's backup");
    let run_options = options.run_backup_options();
    let settings = invoker::read(client, &run_options)
        .await
        .map_err(|e| backup_error(options, error_chain(&e)))?;
    let pusher = MetricsPusher::new(&run_options, &settings);
    pusher.push_host(&entry).await;

    let Some(target) = written.status.as_ref().and_then(|s| handle.target_of(s)) else {
        return Ok(());
    };
    if !post_backup::runs_post_actions(target) {
        return Ok(());
    }
    let actions = target.post_backup_actions.clone().unwrap_or_default();
    let hosts: Vec<String> = target
        .stats
        .iter()
        .flatten()
        .filter_map(|s| s.hostname.clone())
        .collect();
    let connected = match repository::fetch(
        client,
        &settings.repository_namespace,
        &settings.repository_name,
    )
    .await
    {
        Ok(repository) => {
            let connect_options = ConnectOptions {
                cache_dir: options.cache_dir.clone(),
                max_connections: Some(options.max_connections),
            };
            repository::connect(client, &repository, &connect_options)
                .await
                .map(|engine| (repository, engine))
                .map_err(|e| error_chain(&e))
        }
        Err(err) => Err(error_chain(&err)),
    };
    let (repository, engine) = match connected {
        Ok(connected) => connected,
        Err(message) => {
            post_backup::fail_post_actions(&handle, &actions, &message).await;
            return Ok(());
        }
    };
    tracing::info!(?actions, "running the post-backup actions");
    let started = Instant::now();
    let control = Control::new(cancel.clone());
    PostBackup {
        engine: &engine,
        control: &control,
        session: &handle,
        settings: &settings,
        repository: &repository,
        metrics: &pusher,
        client,
    }
    .run(&actions, hosts, written.metadata.creation_timestamp.clone())
    .await;
    tracing::info!(elapsed = ?started.elapsed(), "post-backup actions done");
    Ok(())
}

async fn restore(
    status: &HostStatus,
    output_dir: &std::path::Path,
) -> Result<(), UpdateStatusError> {
    let session_error = |rs: Option<&RestoreSession>, message: String| UpdateStatusError::Session {
        kind: "RestoreSession",
        namespace: rs
            .and_then(|r| r.metadata.namespace.clone())
            .unwrap_or_default(),
        name: rs.and_then(|r| r.metadata.name.clone()).unwrap_or_default(),
        message,
    };
    let session = status
        .read()
        .await
        .map_err(|e| session_error(None, error_chain(&e)))?;
    if restore_host_entry(&session, status.host()).is_some_and(|h| {
        matches!(
            h.phase,
            Some(HostRestorePhase::Succeeded | HostRestorePhase::Failed)
        )
    }) {
        tracing::info!(
            host = status.host(),
            "the host's restore is already recorded"
        );
        return Ok(());
    }
    let written = match JobOutput::read(output_dir) {
        Ok(JobOutput::Restore { host: None, .. }) => {
            tracing::info!("restore-pvc had nothing to do; nothing to record");
            return Ok(());
        }
        Ok(JobOutput::Restore {
            host: Some(entry), ..
        }) => match (entry.phase, entry.error) {
            (Some(HostRestorePhase::Succeeded), _) => {
                let duration = entry
                    .duration
                    .as_deref()
                    .and_then(|d| stash_api::validation::duration::parse(d).ok())
                    .and_then(|nanos| u64::try_from(nanos).ok())
                    .map_or(Duration::ZERO, Duration::from_nanos);
                status.succeeded(duration, entry.progress).await
            }
            (_, error) => {
                status
                    .failed(error.as_deref().unwrap_or("restore-pvc did not finish"))
                    .await
            }
        },
        Ok(JobOutput::Backup { .. }) => {
            status
                .failed(&format!(
                    "{} holds a backup output, not a restore's; check --output-dir",
                    output_dir.display()
                ))
                .await
        }
        Err(err @ OutputError::Missing { .. }) => status.failed(&err.to_string()).await,
        Err(err) => return Err(err.into()),
    };
    written.map_err(|e| session_error(Some(&session), error_chain(&e)))?;
    tracing::info!(host = status.host(), "recorded the host's restore");
    Ok(())
}
