//! The Lease the pods of one workload take turns with (§8.6 step 2): held by the leader for the
//! sidecar's life (Deployment), or by one pod per session (StatefulSet, DaemonSet).

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use stash_api::labels;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Stash's lease duration; renewed a third of it before it ends.
const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
#[error(
    "failed to take part in the election of Lease {namespace}/{name}; check the sidecar's service account may get, create and update leases"
)]
pub struct LeaseError {
    namespace: String,
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// A Lease this pod holds, renewed in the background until released.
pub struct HeldLease {
    leader: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl HeldLease {
    /// Whether the Lease is still ours (renewal may fail, e.g. while the API server is away).
    #[must_use]
    pub fn is_held(&self) -> bool {
        *self.leader.borrow()
    }

    /// Gives the Lease up so the next pod can go at once.
    pub async fn release(self) {
        drop(self.leader);
        match self.task.await {
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "could not release the Lease; it expires by itself");
            }
            Err(err) => tracing::warn!(error = %err, "the Lease task failed"),
            Ok(Ok(_)) => {}
        }
    }
}

/// Waits until this pod (`identity`) holds Lease `namespace/name`; `None` when cancelled first.
pub async fn acquire(
    client: &Client,
    namespace: &str,
    name: &str,
    identity: &str,
    cancel: &CancellationToken,
) -> Result<Option<HeldLease>, LeaseError> {
    let manager = LeaseManagerBuilder::new(client.clone(), name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_field_manager(labels::FIELD_MANAGER_AGENT)
        .build()
        .await
        .map_err(|source| LeaseError {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
    let (mut leader, task) = manager.watch().await;
    tracing::debug!(lease = name, identity, "waiting for the Lease");
    loop {
        if *leader.borrow_and_update() {
            tracing::debug!(lease = name, identity, "holding the Lease");
            return Ok(Some(HeldLease { leader, task }));
        }
        tokio::select! {
            () = cancel.cancelled() => {
                HeldLease { leader, task }.release().await;
                return Ok(None);
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    let source = match task.await {
                        Ok(Err(err)) => err,
                        _ => LeaseManagerError::InconsistentState("the Lease task ended".into()),
                    };
                    return Err(LeaseError { namespace: namespace.to_owned(), name: name.to_owned(), source });
                }
            }
        }
    }
}
