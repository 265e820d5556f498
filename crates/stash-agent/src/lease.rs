//! Taking turns on a Lease (§8.6 step 2, §10): the sidecars of a Deployment elect the one that backs
//! up `host-0`, the pods of a StatefulSet or DaemonSet back up one at a time, and the `stash-init`
//! containers of a workload restore one at a time.

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use stash_api::labels;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Stash's lease duration: a dead holder blocks the others this long.
const LEASE_SECONDS: u64 = 15;
/// The holder renews this long before the Lease would expire.
const GRACE_SECONDS: u64 = 5;

#[derive(Debug, thiserror::Error)]
#[error(
    "failed to take part in the election of Lease {namespace}/{name}; check that this pod's service account may get, list, watch, create, update and patch leases"
)]
pub struct LeaseError {
    namespace: String,
    name: String,
    #[source]
    source: LeaseManagerError,
}

/// Who this process is in a Lease: the pod's name, else this machine and process.
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

    /// Gives the Lease up so the next pod can go at once; a failure only makes the next pod wait
    /// until the Lease expires, so it is logged.
    pub async fn release(self) {
        drop(self.leader);
        match self.task.await {
            Ok(Err(err)) => tracing::warn!(
                error = &err as &dyn std::error::Error,
                "could not release the Lease; it expires by itself"
            ),
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
    let error = |source| LeaseError {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    let manager = LeaseManagerBuilder::new(client.clone(), name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_field_manager(labels::lease_field_manager(
            labels::FIELD_MANAGER_AGENT,
            identity,
        ))
        .build()
        .await
        .map_err(error)?;
    let (mut leader, task) = manager.watch().await;
    tracing::info!(lease = name, identity, "waiting for the Lease");
    loop {
        if *leader.borrow_and_update() {
            tracing::info!(lease = name, identity, "holding the Lease");
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
                    return Err(error(source));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_the_pod_name_when_known() {
        assert_eq!(identity(Some("app-0")), "app-0");
        assert!(identity(None).ends_with(&format!("-{}", std::process::id())));
    }
}
