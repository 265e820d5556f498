//! One restorer at a time per workload (§10): every pod's init-container takes the Lease
//! `lock-<kind>-<name>-restore` before it restores, so of a Deployment's replicas (which share
//! `host-0`) only the first restores and the others find the host final when their turn comes.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use stash_api::labels::FIELD_MANAGER_AGENT;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A dead holder blocks the others this long.
const LEASE_SECONDS: u64 = 15;
/// The holder renews this long before expiry.
const GRACE_SECONDS: u64 = 5;

/// The Lease could not be taken; the message names it.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("failed to set up leader election on Lease {namespace}/{name}")]
    Setup {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error(
        "leader election on Lease {namespace}/{name} stopped before this pod became the leader"
    )]
    Stopped { namespace: String, name: String },
    #[error("interrupted while waiting for the Lease {namespace}/{name}")]
    Cancelled { namespace: String, name: String },
}

/// The Lease of a restore target: `lock-<lowercase kind>-<name>-restore`.
#[must_use]
pub fn lease_name(target_kind: &str, target_name: &str) -> String {
    format!("lock-{}-{target_name}-restore", target_kind.to_lowercase())
}

/// Who this process is in the Lease: the pod's name, else this machine and process.
#[must_use]
pub fn identity(pod_name: Option<&str>) -> String {
    pod_name.map_or_else(
        || {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default();
            format!("{host}-{}", std::process::id())
        },
        str::to_owned,
    )
}

/// The held Lease; [`Leadership::release`] hands it to the next pod at once.
pub struct Leadership {
    receiver: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    lease: String,
}

impl Leadership {
    /// Waits until this process holds Lease `namespace/name` (or `cancel` fires).
    pub async fn acquire(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        cancel: &CancellationToken,
    ) -> Result<Self, LeaderError> {
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(LEASE_SECONDS)
            .with_grace(GRACE_SECONDS)
            .with_field_manager(FIELD_MANAGER_AGENT)
            .build()
            .await
            .map_err(|source| LeaderError::Setup {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source,
            })?;
        let (mut receiver, task) = manager.watch().await;
        tracing::info!(lease = name, identity, "waiting for the restore Lease");
        loop {
            if *receiver.borrow_and_update() {
                tracing::info!(lease = name, identity, "holding the restore Lease");
                return Ok(Self {
                    receiver,
                    task,
                    lease: format!("{namespace}/{name}"),
                });
            }
            tokio::select! {
                () = cancel.cancelled() => {
                    drop(receiver);
                    let _ = task.await;
                    return Err(LeaderError::Cancelled {
                        namespace: namespace.to_owned(),
                        name: name.to_owned(),
                    });
                }
                changed = receiver.changed() => {
                    if changed.is_err() {
                        return Err(match task.await {
                            Ok(Err(source)) => LeaderError::Setup {
                                namespace: namespace.to_owned(),
                                name: name.to_owned(),
                                source,
                            },
                            _ => LeaderError::Stopped {
                                namespace: namespace.to_owned(),
                                name: name.to_owned(),
                            },
                        });
                    }
                }
            }
        }
    }

    /// Gives the Lease up (the watcher releases it once nobody listens); a failure only delays the
    /// next pod until the Lease expires, so it is logged.
    pub async fn release(self) {
        drop(self.receiver);
        match self.task.await {
            Ok(Ok(_)) => tracing::debug!(lease = %self.lease, "released the restore Lease"),
            Ok(Err(err)) => tracing::warn!(
                lease = %self.lease,
                error = &err as &dyn std::error::Error,
                "failed to release the restore Lease; the next pod waits until it expires"
            ),
            Err(err) => {
                tracing::warn!(lease = %self.lease, error = %err, "the Lease watcher ended abnormally");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_named_after_the_lowercase_target_kind_and_name() {
        assert_eq!(
            lease_name("StatefulSet", "sample-sts"),
            "lock-statefulset-sample-sts-restore"
        );
    }

    #[test]
    fn the_identity_is_the_pod_name_when_known() {
        assert_eq!(identity(Some("app-0")), "app-0");
        assert!(identity(None).ends_with(&format!("-{}", std::process::id())));
    }
}
