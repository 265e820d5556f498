//! `stash backup-pvc`: the data step of the backup Job of a standalone PersistentVolumeClaim (§11.1).
//! The claim is mounted in the Job pod; this backs up `--backup-paths` as `--hostname` for one
//! BackupSession, with the sidecar's own pieces (the `InitializeBackendRepository` pre-action, the
//! engine, live progress in the session) and leaves the host's final entry in
//! `<output-dir>/output.json` for `update-status`, which writes it and runs the post-backup actions.
//!
//! Like Stash's, a backup that fails still writes its (Failed) output and exits 0, so that
//! `update-status` runs and the session learns why; only an interruption exits non-zero.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kube::{Api, Client};
use stash_api::common::TargetRef;
use stash_api::v1beta1::{BackupSession, HostBackupStats};
use stash_engine::{Control, Engine};
use tokio_util::sync::CancellationToken;

use crate::InvokerKind;
use crate::job_output::{JobOutput, OutputError};
use crate::repository::{self, ConnectOptions};
use crate::run_backup::backup::{self, BackupOutcome, error_chain};
use crate::run_backup::init_repo::{self, InitState};
use crate::run_backup::invoker::{self, TargetSettings};
use crate::run_backup::{RunBackupOptions, SessionHandle, Step, stats, status, step};

/// How often the session is looked at while the operator has not marked the target Running.
const WAIT_INTERVAL: Duration = Duration::from_secs(2);

/// Everything `backup-pvc` needs before it talks to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPvcOptions {
    /// The Job's namespace: the session's and the invoker's.
    pub namespace: String,
    /// `--backupsession`.
    pub backup_session: String,
    pub invoker_kind: InvokerKind,
    pub invoker_name: String,
    /// `--target-kind`/`--target-name`/`--target-namespace`: the claim.
    pub target_kind: String,
    pub target_name: String,
    pub target_namespace: String,
    /// `--hostname`: restic's `--host` and the `stats[]` entry (`host-0` or the alias).
    pub hostname: String,
    /// `--backup-paths`: where the claim is mounted; empty means the invoker's `target.paths`.
    pub backup_paths: Vec<String>,
    /// `--exclude`; empty means the invoker's `target.exclude`.
    pub exclude: Vec<String>,
    /// `--output-dir`: where `output.json` goes.
    pub output_dir: PathBuf,
    pub cache_dir: Option<PathBuf>,
    pub max_connections: usize,
    pub pushgateway_url: Option<String>,
}

impl BackupPvcOptions {
    /// The sidecar's options for the same invoker and target, for the pieces shared with it.
    #[must_use]
    pub fn run_backup_options(&self) -> RunBackupOptions {
        let (pod_name, node_name) = RunBackupOptions::pod_env();
        RunBackupOptions {
            invoker_kind: self.invoker_kind,
            invoker_name: self.invoker_name.clone(),
            namespace: self.namespace.clone(),
            target_kind: self.target_kind.clone(),
            target_name: self.target_name.clone(),
            target_namespace: self.target_namespace.clone(),
            pod_name: pod_name.unwrap_or_else(|| self.hostname.clone()),
            node_name,
            cache_dir: self.cache_dir.clone(),
            max_connections: self.max_connections,
            pushgateway_url: self.pushgateway_url.clone(),
        }
    }

    /// The session as this Job writes to it.
    #[must_use]
    pub fn handle(&self, client: &Client) -> SessionHandle {
        SessionHandle {
            api: Api::namespaced(client.clone(), &self.namespace),
            namespace: self.namespace.clone(),
            name: self.backup_session.clone(),
            target: TargetRef {
                api_version: None,
                kind: self.target_kind.clone(),
                name: self.target_name.clone(),
                namespace: Some(self.target_namespace.clone()),
            },
        }
    }
}

/// Why `backup-pvc` exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum BackupPvcError {
    #[error("BackupSession {namespace}/{name}: {message}")]
    Session {
        namespace: String,
        name: String,
        message: String,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("interrupted before the backup finished; nothing was recorded")]
    Cancelled,
}

/// What one run did.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Nothing to do (the session or this host is final); the output carries no entry.
    Skipped,
    /// The host's final entry, as written to the output.
    Finished(Box<HostBackupStats>),
}

/// Backs the claim up for `options.backup_session` and writes the output file.
pub async fn run(
    client: Client,
    options: &BackupPvcOptions,
    cancel: CancellationToken,
) -> Result<Outcome, BackupPvcError> {
    let span = tracing::info_span!(
        "backup-pvc",
        kind = "BackupSession",
        namespace = %options.namespace,
        name = %options.backup_session,
        host = %options.hostname
    );
    let outcome =
        tracing::Instrument::instrument(Box::pin(back_up(&client, options, &cancel)), span).await?;
    let handle = options.handle(&client);
    let output = JobOutput::Backup {
        target: handle.target,
        host: match &outcome {
            Outcome::Skipped => None,
            Outcome::Finished(entry) => Some((**entry).clone()),
        },
    };
    let path = output.write(&options.output_dir)?;
    tracing::info!(output = %path.display(), "wrote the backup output for update-status");
    Ok(outcome)
}

fn session_error(options: &BackupPvcOptions, message: String) -> BackupPvcError {
    BackupPvcError::Session {
        namespace: options.namespace.clone(),
        name: options.backup_session.clone(),
        message,
    }
}

/// Waits for the operator to mark the target Running; `None` when there is nothing to do.
async fn wait_for_turn(
    handle: &SessionHandle,
    options: &BackupPvcOptions,
    cancel: &CancellationToken,
) -> Result<Option<BackupSession>, BackupPvcError> {
    let mut logged = false;
    loop {
        let session = handle
            .api
            .get_opt(&handle.name)
            .await
            .map_err(|e| session_error(options, error_chain(&e)))?
            .ok_or_else(|| {
                session_error(
                    options,
                    "not found; it was deleted, so this Job has nothing to back up".to_owned(),
                )
            })?;
        match step(
            session.status.as_ref(),
            &handle.target,
            &handle.namespace,
            &options.hostname,
        ) {
            Step::Skip => return Ok(None),
            Step::Go => return Ok(Some(session)),
            Step::Wait => {}
        }
        if !logged {
            tracing::info!("waiting for the operator to mark the target Running");
            logged = true;
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(BackupPvcError::Cancelled),
            () = tokio::time::sleep(WAIT_INTERVAL) => {}
        }
    }
}

async fn connect(
    client: &Client,
    options: &BackupPvcOptions,
    settings: &TargetSettings,
) -> Result<Engine, String> {
    let repository = repository::fetch(
        client,
        &settings.repository_namespace,
        &settings.repository_name,
    )
    .await
    .map_err(|e| error_chain(&e))?;
    let connect_options = ConnectOptions {
        cache_dir: options.cache_dir.clone(),
        max_connections: Some(options.max_connections),
    };
    repository::connect(client, &repository, &connect_options)
        .await
        .map_err(|e| error_chain(&e))
}

async fn back_up(
    client: &Client,
    options: &BackupPvcOptions,
    cancel: &CancellationToken,
) -> Result<Outcome, BackupPvcError> {
    let handle = options.handle(client);
    let host = options.hostname.as_str();
    let Some(session) = wait_for_turn(&handle, options, cancel).await? else {
        tracing::info!("nothing to back up: the session or this host is already final");
        return Ok(Outcome::Skipped);
    };
    let started = Instant::now();
    let failed = |message: String| {
        Ok(Outcome::Finished(Box::new(stats::failed(
            host,
            message,
            started.elapsed(),
            None,
        ))))
    };
    let status = session.status.clone().unwrap_or_default();
    let own_actions = handle
        .target_of(&status)
        .and_then(|t| t.pre_backup_actions.clone());
    let init = init_repo::state(&status, own_actions.as_deref());
    if let InitState::Failed(message) = &init {
        return failed(format!(
            "the backend repository is not initialised: {message}"
        ));
    }
    let settings = match invoker::read(client, &options.run_backup_options()).await {
        Ok(settings) => settings,
        Err(err) => return failed(error_chain(&err)),
    };
    let connected = connect(client, options, &settings).await;
    if init == InitState::ToDo {
        let control = Control::new(cancel.clone());
        let outcome = match &connected {
            Ok(engine) => init_repo::ensure(engine, &control).await,
            Err(message) => Err(message.clone()),
        };
        if cancel.is_cancelled() {
            return Err(BackupPvcError::Cancelled);
        }
        let condition = init_repo::condition(outcome.as_ref().copied().map_err(String::as_str));
        status::update(&handle.api, &handle.namespace, &handle.name, |s| {
            status::set_condition(&mut s.conditions, condition.clone());
        })
        .await
        .map_err(|e| session_error(options, error_chain(&e)))?;
        if let Err(message) = outcome {
            return failed(message);
        }
    }
    let engine = match connected {
        Ok(engine) => engine,
        Err(message) => return failed(message),
    };
    let mut target = settings.target.clone();
    if !options.backup_paths.is_empty() {
        target.paths = Some(options.backup_paths.clone());
    }
    if !options.exclude.is_empty() {
        target.exclude = Some(options.exclude.clone());
    }
    match backup::run(&engine, &handle, host, &target, cancel).await {
        BackupOutcome::Cancelled => Err(BackupPvcError::Cancelled),
        BackupOutcome::Finished(entry) => {
            tracing::info!(phase = ?entry.phase, error = ?entry.error, "backup of the claim finished");
            Ok(Outcome::Finished(entry))
        }
    }
}
