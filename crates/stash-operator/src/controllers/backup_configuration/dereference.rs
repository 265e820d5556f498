//! Stage 1: read what a BackupConfiguration names: its Repository (in `spec.repository.namespace`, else
//! its own), the Repository's storage Secret, the target workload, and the other BackupConfigurations
//! that target the same workload. Absent objects are `None`; only failed reads are errors.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupConfiguration;

use crate::context::Context;
use crate::invoker::BackupInvoker;
use crate::workload::{APPS_V1, Workload, WorkloadKind};

/// Everything the later stages need from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    pub repository: Option<Repository>,
    pub secret: Option<Secret>,
    /// The target, when it is a Deployment, StatefulSet, DaemonSet or ReplicaSet of `apps/v1` that exists.
    pub workload: Option<Workload>,
    /// Live BackupConfigurations (this one included) whose target names `workload`.
    pub contenders: Vec<Arc<BackupConfiguration>>,
}

/// Reading a referenced object failed (not: the object is missing).
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("failed to read Repository {namespace}/{name} (BackupConfiguration.spec.repository)")]
    ReadRepository {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read Secret {namespace}/{name} (Repository.spec.backend.storageSecretName)")]
    ReadSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read {kind} {namespace}/{name} (BackupConfiguration.spec.target.ref)")]
    ReadTarget {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// `spec.repository` as (namespace, name), the namespace defaulted to the invoker's.
#[must_use]
pub fn repository_key(bc: &BackupConfiguration) -> Option<(String, String)> {
    let reference = bc.spec.repository.as_ref()?;
    let namespace = reference
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| bc.namespace().unwrap_or_default());
    Some((namespace, reference.name.clone()))
}

/// `spec.target.ref` as a workload kind, namespace and name, if it names an `apps/v1` workload kind.
#[must_use]
pub fn workload_key(bc: &BackupConfiguration) -> Option<(WorkloadKind, String, String)> {
    let info = BackupInvoker::Configuration(bc)
        .targets()
        .into_iter()
        .next()?;
    let reference = &info.target?.reference;
    let kind = WorkloadKind::from_kind(&reference.kind)?;
    if reference.api_version.as_deref() != Some(APPS_V1) || !kind.has_sidecar_model() {
        return None;
    }
    Some((
        kind,
        info.target_namespace().to_owned(),
        reference.name.clone(),
    ))
}

/// The storage Secret's name of a Repository, if it names one.
#[must_use]
pub fn storage_secret_name(repository: &Repository) -> Option<&str> {
    repository
        .spec
        .backend
        .storage_secret_name
        .as_deref()
        .filter(|s| !s.is_empty())
}

/// Reads one workload; `None` when it does not exist.
pub async fn get_workload(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> Result<Option<Workload>, kube::Error> {
    Ok(match kind {
        WorkloadKind::Deployment => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(Workload::from),
        WorkloadKind::StatefulSet => Api::<StatefulSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(Workload::from),
        WorkloadKind::DaemonSet => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(Workload::from),
        WorkloadKind::ReplicaSet => Api::<ReplicaSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(Workload::from),
    })
}

/// Reads the target workload named by `bc`, if it is one.
pub async fn read_workload(
    client: &Client,
    bc: &BackupConfiguration,
) -> Result<Option<Workload>, DereferenceError> {
    let Some((kind, namespace, name)) = workload_key(bc) else {
        return Ok(None);
    };
    get_workload(client, kind, &namespace, &name)
        .await
        .map_err(|source| DereferenceError::ReadTarget {
            kind,
            namespace,
            name,
            source,
        })
}

/// Stage 1 of the pipeline.
pub async fn dereference(
    ctx: &Context,
    bc: &Arc<BackupConfiguration>,
) -> Result<Dereferenced, DereferenceError> {
    let client = &ctx.client;
    let mut out = Dereferenced::default();
    if let Some((namespace, name)) = repository_key(bc) {
        out.repository = Api::<Repository>::namespaced(client.clone(), &namespace)
            .get_opt(&name)
            .await
            .map_err(|source| DereferenceError::ReadRepository {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        if let Some(secret_name) = out.repository.as_ref().and_then(storage_secret_name) {
            out.secret = Api::<Secret>::namespaced(client.clone(), &namespace)
                .get_opt(secret_name)
                .await
                .map_err(|source| DereferenceError::ReadSecret {
                    namespace: namespace.clone(),
                    name: secret_name.to_owned(),
                    source,
                })?;
        }
    }
    out.workload = read_workload(client, bc).await?;
    if let Some(workload) = &out.workload {
        out.contenders = contenders(bc, workload, ctx.backup_configurations.state());
    }
    Ok(out)
}

/// `bc` and every other live Restic BackupConfiguration in `all` whose target names `workload`.
#[must_use]
pub fn contenders(
    bc: &Arc<BackupConfiguration>,
    workload: &Workload,
    all: Vec<Arc<BackupConfiguration>>,
) -> Vec<Arc<BackupConfiguration>> {
    let mut out = vec![Arc::clone(bc)];
    out.extend(all.into_iter().filter(|other| {
        other.uid() != bc.uid()
            && other.metadata.deletion_timestamp.is_none()
            && BackupInvoker::Configuration(other)
                .target_for(workload)
                .is_some_and(|t| t.uses_sidecar())
    }));
    out
}
