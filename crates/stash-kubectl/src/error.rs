//! Why a `kubectl stash` verb failed; every message names the object and the fix.

use stash_agent::CreateBackupSessionError;
use stash_agent::repository::RepositoryError;
use stash_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error(transparent)]
    Trigger(#[from] CreateBackupSessionError),
    #[error(
        "{verb} of Repository {namespace}/{name} failed; check the backend is reachable from this machine and its storage Secret's credentials"
    )]
    Engine {
        verb: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<EngineError>,
    },
    #[error(
        "{kind} {namespace}/{name} not found; check the name (kubectl get {plural} -n {namespace}) or pass -n/--namespace"
    )]
    InvokerNotFound {
        kind: &'static str,
        plural: &'static str,
        namespace: String,
        name: String,
    },
    #[error(
        "failed to set spec.paused of {kind} {namespace}/{name}; check the API server is reachable and you may patch {plural}"
    )]
    Patch {
        kind: &'static str,
        plural: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "snapshot {snapshot} of Repository {namespace}/{name}: {failures} entries could not be written below {destination}; check that directory is writable and has room"
    )]
    IncompleteDownload {
        snapshot: String,
        namespace: String,
        name: String,
        destination: String,
        failures: usize,
    },
    #[error(
        "Repository {namespace}/{name} has errors ({count} found, listed above); run `kubectl stash check {name} --read-data` and restore from a healthy copy"
    )]
    CheckFailed {
        namespace: String,
        name: String,
        count: usize,
    },
    #[error("BackupSession {namespace}/{name} ended {phase}: {reason}")]
    SessionNotSucceeded {
        namespace: String,
        name: String,
        phase: String,
        reason: String,
    },
    #[error(
        "BackupSession {namespace}/{name} is not final after {timeout}; it goes on in the cluster: follow it with `kubectl get backupsession {name} -n {namespace} -w` or wait longer with --timeout"
    )]
    WaitTimedOut {
        namespace: String,
        name: String,
        timeout: String,
    },
    #[error(
        "stopped waiting for BackupSession {namespace}/{name}; it goes on in the cluster (kubectl get backupsession {name} -n {namespace})"
    )]
    WaitInterrupted { namespace: String, name: String },
    #[error(
        "BackupSession {namespace}/{name} was deleted before it finished; see the BackupConfiguration's backupHistoryLimit and who deletes sessions"
    )]
    SessionGone { namespace: String, name: String },
    #[error(
        "cannot watch BackupSessions in namespace {namespace}; check you may watch backupsessions (kubectl auth can-i watch backupsessions -n {namespace}) or pass --no-wait"
    )]
    Watch {
        namespace: String,
        #[source]
        source: Box<kube::runtime::watcher::Error>,
    },
}

impl KubectlError {
    pub(crate) fn engine(
        verb: &'static str,
        repository: &crate::repository::RepositoryRef,
    ) -> impl FnOnce(EngineError) -> Self {
        let (namespace, name) = (repository.namespace.clone(), repository.name.clone());
        move |source| Self::Engine {
            verb,
            namespace,
            name,
            source: Box::new(source),
        }
    }

    /// Whether the failure was the user's interrupt (exit 130 like restic) rather than an error.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Engine { source, .. } => matches!(**source, EngineError::Cancelled),
            Self::WaitInterrupted { .. } => true,
            _ => false,
        }
    }
}
