//! One run of the `stash-init` init-container (§10, docs/session-protocol.md step 3): skip when
//! there is nothing left to do, wait for the operator's `totalHosts`, take the restore Lease,
//! restore this host's rule into `/`, report the host's entry and push its metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use stash_api::common::{Rule, TargetRef};
use stash_api::v1beta1::{HostProgress, HostRestoreStats, RestoreSession};
use stash_engine::{Control, Engine, EngineError, ProgressSink, ProgressUpdate};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::host::{HostError, host_name, lease_name};
use super::metrics::push_host;
use super::options::RestoreOptions;
use super::rules::{RestorePlan, RuleError, SnapshotChoice, plan};
use super::status::{self, HostStatus, StatusError, already_done};
use crate::lease::{self, LeaseError};
use crate::repository::{self, ConnectOptions, RepositoryError};

/// How often the operator's `totalHosts` is looked for.
const TOTAL_HOSTS_POLL: Duration = Duration::from_secs(2);
/// Progress reaches the status at most this often.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// Entries that could not be restored, named in the host's error (the rest are counted).
const NAMED_FAILURES: usize = 5;

/// Why the restore of this host did not succeed; every message names the object or field to fix.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Status(#[from] Box<StatusError>),
    #[error(
        "RestoreSession {namespace}/{name} has no spec.target.ref and no --target-kind/--target-name; name the workload to restore into"
    )]
    NoTarget { namespace: String, name: String },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("RestoreSession {namespace}/{name}: {error}")]
    Rules {
        namespace: String,
        name: String,
        error: RuleError,
    },
    #[error(
        "RestoreSession {namespace}/{name} has no spec.repository; name the Repository to restore from"
    )]
    NoRepository { namespace: String, name: String },
    #[error(transparent)]
    Repository(#[from] Box<RepositoryError>),
    #[error("failed to restore {what}")]
    Engine {
        what: String,
        #[source]
        source: Box<EngineError>,
    },
    /// Not [`Self::Engine`]: the engine's hint names `--password-file`, which a pod does not have.
    #[error(
        "failed to restore {what}: {}",
        repository::wrong_password_message(location)
    )]
    WrongPassword { what: String, location: String },
    #[error("{count} entries of {what} could not be restored: {named}")]
    Incomplete {
        what: String,
        count: usize,
        named: String,
    },
    #[error("interrupted")]
    Cancelled,
}

impl From<StatusError> for RestoreError {
    fn from(err: StatusError) -> Self {
        Self::Status(Box::new(err))
    }
}

impl From<RepositoryError> for RestoreError {
    fn from(err: RepositoryError) -> Self {
        Self::Repository(Box::new(err))
    }
}

/// What a successful run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to do; the reason says why (session final, host final).
    Skipped(String),
    /// The host's entry as written: `Succeeded` with its duration.
    Restored(HostRestoreStats),
}

/// Restores this pod's host of RestoreSession `options.namespace/options.invoker_name`. A failure
/// after the host is known is written into its entry (`Failed` with the reason) before it is
/// returned; an interruption leaves the entry `Running`, so the restarted pod restores again.
pub async fn run(
    client: Client,
    options: &RestoreOptions,
    cancel: CancellationToken,
) -> Result<Outcome, RestoreError> {
    let span = tracing::info_span!(
        "restore",
        kind = %options.invoker_kind,
        namespace = %options.namespace,
        name = %options.invoker_name
    );
    Box::pin(run_in_span(client, options, cancel))
        .instrument(span)
        .await
}

async fn run_in_span(
    client: Client,
    options: &RestoreOptions,
    cancel: CancellationToken,
) -> Result<Outcome, RestoreError> {
    let (namespace, name) = (options.namespace.as_str(), options.invoker_name.as_str());
    let probe = HostStatus::new(client.clone(), namespace, name, "");
    let session = probe.read().await?;
    let target = target_ref(options, &session).ok_or_else(|| RestoreError::NoTarget {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })?;
    let alias = session
        .spec
        .target
        .as_ref()
        .and_then(|t| t.alias.as_deref());
    let host = host_name(
        &target.kind,
        alias,
        options.pod_name.as_deref(),
        options.node_name.as_deref(),
    )?;
    let status = HostStatus::new(client.clone(), namespace, name, &host);
    if let Some(reason) = already_done(&session, &host) {
        tracing::info!(host, "nothing to restore: {reason}");
        return Ok(Outcome::Skipped(reason));
    }
    if let Some(reason) = wait_for_total_hosts(&status, &host, &cancel).await? {
        return Ok(Outcome::Skipped(reason));
    }

    let lease = lease_name(&target.kind, &target.name);
    let Some(leadership) = lease::acquire(
        &client,
        namespace,
        &lease,
        &lease::identity(options.pod_name.as_deref()),
        &cancel,
    )
    .await?
    else {
        return Err(RestoreError::Cancelled);
    };
    let outcome = restore_as_leader(&client, options, &status, &target, &cancel).await;
    leadership.release().await;
    outcome
}

/// The rest of the run, holding the Lease: look again (the previous holder may have restored this
/// host), then restore and report.
async fn restore_as_leader(
    client: &Client,
    options: &RestoreOptions,
    status: &HostStatus,
    target: &TargetRef,
    cancel: &CancellationToken,
) -> Result<Outcome, RestoreError> {
    let session = status.read().await?;
    if let Some(reason) = already_done(&session, status.host()) {
        tracing::info!(host = status.host(), "nothing to restore: {reason}");
        return Ok(Outcome::Skipped(reason));
    }
    status.running(None).await?;
    let started = Instant::now();
    let progress = ProgressWriter::start(status.clone());
    let restored = restore_host(client, options, &session, status.host(), &progress, cancel).await;
    let last_progress = progress.finish().await;
    match restored {
        Ok(()) => {
            let entry = status.succeeded(started.elapsed(), last_progress).await?;
            tracing::info!(host = status.host(), duration = ?entry.duration, "restore succeeded");
            push_host(options, &session, target, &entry).await;
            Ok(Outcome::Restored(entry))
        }
        Err(RestoreError::Cancelled) => Err(RestoreError::Cancelled),
        Err(err) => {
            let message = error_chain(&err);
            tracing::error!(host = status.host(), error = %message, "restore failed");
            match status.failed(&message).await {
                Ok(entry) => push_host(options, &session, target, &entry).await,
                Err(write) => tracing::error!(
                    error = &write as &dyn std::error::Error,
                    "the failure could not be written into the status"
                ),
            }
            Err(err)
        }
    }
}

/// Connects to the Repository and restores every snapshot of the host's plan into `/`.
async fn restore_host(
    client: &Client,
    options: &RestoreOptions,
    session: &RestoreSession,
    host: &str,
    progress: &ProgressWriter,
    cancel: &CancellationToken,
) -> Result<(), RestoreError> {
    let plan = host_plan(options, session, host)?;
    if plan.snapshots.is_empty() {
        tracing::info!(host, "no rule applies to this host; nothing to restore");
        return Ok(());
    }
    let engine = connect(client, options, session).await?;
    let control =
        Control::new(cancel.clone()).with_progress(progress.sink(), Duration::from_secs(1));
    for choice in &plan.snapshots {
        restore_one(&engine, &plan, choice, &control).await?;
    }
    Ok(())
}

fn host_plan(
    options: &RestoreOptions,
    session: &RestoreSession,
    host: &str,
) -> Result<RestorePlan, RestoreError> {
    let target = session.spec.target.as_ref();
    let rules: &[Rule] = target
        .and_then(|t| t.rules.as_deref())
        .filter(|r| !r.is_empty())
        .or(session.spec.rules.as_deref())
        .unwrap_or_default();
    let args = target.and_then(|t| t.args.as_deref()).unwrap_or_default();
    plan(rules, host, args).map_err(|error| RestoreError::Rules {
        namespace: options.namespace.clone(),
        name: options.invoker_name.clone(),
        error,
    })
}

async fn connect(
    client: &Client,
    options: &RestoreOptions,
    session: &RestoreSession,
) -> Result<Engine, RestoreError> {
    let reference = session
        .spec
        .repository
        .as_ref()
        .filter(|r| !r.name.is_empty())
        .ok_or_else(|| RestoreError::NoRepository {
            namespace: options.namespace.clone(),
            name: options.invoker_name.clone(),
        })?;
    let repository_namespace = reference
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(&options.namespace);
    let repository = repository::fetch(client, repository_namespace, &reference.name).await?;
    let connect_options = ConnectOptions {
        cache_dir: options.cache_dir.clone(),
        max_connections: Some(options.max_connections),
    };
    Ok(repository::connect(client, &repository, &connect_options).await?)
}

async fn restore_one(
    engine: &Engine,
    plan: &RestorePlan,
    choice: &SnapshotChoice,
    control: &Control,
) -> Result<(), RestoreError> {
    let what = choice.describe();
    tracing::info!("restoring {what} into /");
    let report = match engine.restore(plan.request(choice), control).await {
        Ok(report) => report,
        Err(EngineError::Cancelled) => return Err(RestoreError::Cancelled),
        Err(EngineError::WrongPassword { location }) => {
            return Err(RestoreError::WrongPassword { what, location });
        }
        Err(source) => {
            return Err(RestoreError::Engine {
                what,
                source: Box::new(source),
            });
        }
    };
    for skipped in &report.skipped_special {
        tracing::warn!(path = %skipped.display(), "device, FIFO or socket not recreated");
    }
    if !report.is_complete() {
        let named: Vec<String> = report
            .failures
            .iter()
            .take(NAMED_FAILURES)
            .map(|f| format!("{}: {}", f.path.display(), f.error))
            .collect();
        return Err(RestoreError::Incomplete {
            what,
            count: report.failures.len(),
            named: named.join("; "),
        });
    }
    tracing::info!(
        snapshot = %report.snapshot_id,
        files = report.files_restored,
        bytes = report.bytes_restored,
        "restored {what}"
    );
    Ok(())
}

/// The workload restored into: `--target-kind`/`--target-name` when given, else `spec.target.ref`.
fn target_ref(options: &RestoreOptions, session: &RestoreSession) -> Option<TargetRef> {
    let from_session = session
        .spec
        .target
        .as_ref()
        .and_then(|t| t.reference.clone());
    let mut target = from_session.unwrap_or_default();
    if !options.target.kind.is_empty() {
        target.kind.clone_from(&options.target.kind);
    }
    if !options.target.name.is_empty() {
        target.name.clone_from(&options.target.name);
    }
    (!target.kind.is_empty() && !target.name.is_empty()).then_some(target)
}

/// Waits until the operator has set `totalHosts` (it does so when it injects the init-container; a
/// pod can start before that write lands). Returns why there is nothing to do when the session or
/// the host turned final meanwhile.
async fn wait_for_total_hosts(
    status: &HostStatus,
    host: &str,
    cancel: &CancellationToken,
) -> Result<Option<String>, RestoreError> {
    let mut logged = false;
    loop {
        let session = status.read().await?;
        if let Some(reason) = already_done(&session, host) {
            return Ok(Some(reason));
        }
        if session
            .status
            .as_ref()
            .and_then(|s| s.total_hosts)
            .is_some()
        {
            return Ok(None);
        }
        if !logged {
            tracing::info!("waiting for the operator to set status.totalHosts");
            logged = true;
        }
        tokio::select! {
            () = cancel.cancelled() => return Err(RestoreError::Cancelled),
            () = tokio::time::sleep(TOTAL_HOSTS_POLL) => {}
        }
    }
}

/// Engine progress, written into the host's entry at most every [`PROGRESS_INTERVAL`] by a task of
/// its own so a slow API server never slows the restore.
struct ProgressWriter {
    updates: Arc<watch::Sender<Option<ProgressUpdate>>>,
    finished: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

struct WatchSink(Arc<watch::Sender<Option<ProgressUpdate>>>);

impl ProgressSink for WatchSink {
    fn update(&self, progress: &ProgressUpdate) {
        self.0.send_replace(Some(progress.clone()));
    }
}

impl ProgressWriter {
    fn start(status: HostStatus) -> Self {
        let (sender, mut receiver) = watch::channel(None::<ProgressUpdate>);
        let finished = CancellationToken::new();
        let stop = finished.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = stop.cancelled() => return,
                    changed = receiver.changed() => if changed.is_err() { return },
                }
                let figures = receiver.borrow_and_update().as_ref().map(status::progress);
                if let Err(err) = status.running(figures).await {
                    tracing::warn!(
                        error = &err as &dyn std::error::Error,
                        "failed to write restore progress"
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(PROGRESS_INTERVAL) => {}
                }
            }
        });
        Self {
            updates: Arc::new(sender),
            finished,
            task,
        }
    }

    fn sink(&self) -> Arc<dyn ProgressSink> {
        Arc::new(WatchSink(Arc::clone(&self.updates)))
    }

    /// Stops the writer (no write can land after this returns) and gives the last figures.
    async fn finish(self) -> Option<HostProgress> {
        self.finished.cancel();
        let _ = self.task.await;
        self.updates.borrow().as_ref().map(status::progress)
    }
}

/// `err` and its sources, as one line for the status and stderr.
fn error_chain(err: &dyn std::error::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_password_names_the_secret_key_and_the_repository_field_not_a_flag() {
        let err = RestoreError::WrongPassword {
            what: "the latest snapshot of host-0".to_owned(),
            location: "s3:http://127.0.0.1:9000/bucket/demo".to_owned(),
        };
        let message = error_chain(&err);
        assert!(
            message.contains("RESTIC_PASSWORD")
                && message.contains("spec.backend.storageSecretName")
                && message.contains("the latest snapshot of host-0"),
            "{message}"
        );
        assert!(!message.contains("--password-file"), "{message}");
    }
}
