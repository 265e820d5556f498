//! `kubectl stash trigger <backupconfiguration>`: a BackupSession now, created exactly as the
//! trigger CronJob's `stash create-backupsession` creates it, then (unless `--no-wait`) watched
//! until it is final.

use std::pin::pin;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use kube::{Client, Error as KubeError};
use stash_agent::{BackupSessionRef, CreateBackupSession, InvokerKind};
use stash_api::v1beta1::BackupSession;
use stash_engine::Control;

use crate::KubectlError;
use crate::session_summary;

/// How long `trigger` waits for the session unless `--timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_mins(30);

#[tracing::instrument(skip(client), fields(kind = "BackupConfiguration"))]
pub async fn run(
    client: Client,
    namespace: &str,
    backup_configuration: &str,
) -> Result<BackupSessionRef, KubectlError> {
    let request = CreateBackupSession {
        invoker_kind: InvokerKind::BackupConfiguration,
        invoker_name: backup_configuration.to_owned(),
        namespace: namespace.to_owned(),
    };
    Ok(stash_agent::create_backupsession::run(client, &request).await?)
}

/// Watches `session` (one watch on its name, no polling) until its phase is final, for at most
/// `timeout`; Ctrl-C (`control`'s token) stops waiting without touching the session.
#[tracing::instrument(skip(client, control), fields(kind = "BackupSession", namespace = %session.namespace, name = %session.name))]
pub async fn wait_until_final(
    client: Client,
    session: &BackupSessionRef,
    timeout: Duration,
    control: &Control,
) -> Result<BackupSession, KubectlError> {
    let api: Api<BackupSession> = Api::namespaced(client, &session.namespace);
    tokio::select! {
        waited = tokio::time::timeout(timeout, final_state(api, session)) => match waited {
            Ok(result) => result,
            Err(_elapsed) => Err(KubectlError::WaitTimedOut {
                namespace: session.namespace.clone(),
                name: session.name.clone(),
                timeout: format!("{}s", timeout.as_secs()),
            }),
        },
        () = control.cancel.cancelled() => Err(KubectlError::WaitInterrupted {
            namespace: session.namespace.clone(),
            name: session.name.clone(),
        }),
    }
}

async fn final_state(
    api: Api<BackupSession>,
    session: &BackupSessionRef,
) -> Result<BackupSession, KubectlError> {
    // Transient watch failures (a restarted API server, a dropped connection) are retried with
    // kube's backoff; only a refusal the user must fix ends the wait.
    let mut updates = pin!(watcher::watch_object(api, &session.name).default_backoff());
    while let Some(update) = updates.next().await {
        match update {
            Ok(Some(object)) if session_summary::phase(&object).is_final() => return Ok(object),
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(KubectlError::SessionGone {
                    namespace: session.namespace.clone(),
                    name: session.name.clone(),
                });
            }
            Err(err) if is_refused(&err) => {
                return Err(KubectlError::Watch {
                    namespace: session.namespace.clone(),
                    source: Box::new(err),
                });
            }
            Err(err) => tracing::warn!(error = %err, "watching the BackupSession failed; retrying"),
        }
    }
    unreachable!("kube's watcher stream never ends")
}

/// Whether the API server refused the watch itself (no permission, no such resource): retrying
/// cannot help.
fn is_refused(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(KubeError::Api(status))
        | watcher::Error::WatchStartFailed(KubeError::Api(status)) => {
            matches!(status.code, 401 | 403 | 404)
        }
        _ => false,
    }
}
