//! What the sidecar reads from its invoker: the target it backs up (paths, excludes, alias), the
//! Repository and the retention policy.

use kube::{Api, Client};
use stash_api::common::{BackupTarget, RetentionPolicy};
use stash_api::v1beta1::{BackupBatch, BackupConfiguration};

use super::RunBackupOptions;
use crate::InvokerKind;

/// The invoker's settings for this sidecar's target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSettings {
    pub target: BackupTarget,
    /// The Repository, `namespace/name`.
    pub repository_namespace: String,
    pub repository_name: String,
    pub retention_policy: RetentionPolicy,
    /// `Restic` or `VolumeSnapshotter` (for metric labels).
    pub driver: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokerError {
    #[error(
        "{kind} {namespace}/{name} not found; fix --invoker-kind/--invoker-name of the stash sidecar or recreate the invoker"
    )]
    NotFound {
        kind: InvokerKind,
        namespace: String,
        name: String,
    },
    #[error(
        "failed to read {kind} {namespace}/{name}; check the sidecar's service account may get it"
    )]
    Read {
        kind: InvokerKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {namespace}/{name} has no target {target_kind}/{target_name}; the sidecar's --target-kind/--target-name do not match the invoker (re-apply it so the operator updates the sidecar)"
    )]
    NoSuchTarget {
        kind: InvokerKind,
        namespace: String,
        name: String,
        target_kind: String,
        target_name: String,
    },
    #[error("{kind} {namespace}/{name} has no spec.repository; name the Repository to back up to")]
    NoRepository {
        kind: InvokerKind,
        namespace: String,
        name: String,
    },
}

/// Reads the invoker and picks this sidecar's target from it.
pub async fn read(
    client: &Client,
    options: &RunBackupOptions,
) -> Result<TargetSettings, InvokerError> {
    let kind = options.invoker_kind;
    let namespace = options.namespace.clone();
    let name = options.invoker_name.clone();
    let read_error = |source: kube::Error| match source {
        kube::Error::Api(e) if e.code == 404 => InvokerError::NotFound {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
        },
        source => InvokerError::Read {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        },
    };
    let (targets, repository, retention_policy, driver) = match kind {
        InvokerKind::BackupConfiguration => {
            let bc = Api::<BackupConfiguration>::namespaced(client.clone(), &namespace)
                .get(&name)
                .await
                .map_err(read_error)?;
            let driver = format!("{:?}", bc.spec.driver());
            (
                bc.spec.target.into_iter().collect::<Vec<_>>(),
                bc.spec.repository,
                bc.spec.retention_policy,
                driver,
            )
        }
        InvokerKind::BackupBatch => {
            let bb = Api::<BackupBatch>::namespaced(client.clone(), &namespace)
                .get(&name)
                .await
                .map_err(read_error)?;
            let driver = format!("{:?}", bb.spec.driver());
            (
                bb.spec
                    .members
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| m.target)
                    .collect(),
                bb.spec.repository,
                bb.spec.retention_policy,
                driver,
            )
        }
    };
    let target = targets
        .into_iter()
        .find(|t| {
            t.reference.kind == options.target_kind && t.reference.name == options.target_name
        })
        .ok_or_else(|| InvokerError::NoSuchTarget {
            kind,
            namespace: namespace.clone(),
            name: name.clone(),
            target_kind: options.target_kind.clone(),
            target_name: options.target_name.clone(),
        })?;
    let repository = repository.ok_or_else(|| InvokerError::NoRepository {
        kind,
        namespace: namespace.clone(),
        name: name.clone(),
    })?;
    Ok(TargetSettings {
        target,
        repository_namespace: repository
            .namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| namespace.clone()),
        repository_name: repository.name,
        retention_policy,
        driver,
    })
}
