//! Stage 1: read what a RestoreSession names: its Repository (in `spec.repository.namespace`, else its
//! own), the Repository's storage Secret and the target workload. Absent objects are `None`; only failed
//! reads are errors.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::RestoreSession;

use crate::controllers::backup_configuration::dereference::{get_workload, storage_secret_name};
use crate::invoker::RestoreInvoker;
use crate::workload::{APPS_V1, Workload, WorkloadKind};

/// Everything the later stages need from the cluster.
#[derive(Clone, Debug, Default)]
pub struct Dereferenced {
    pub repository: Option<Repository>,
    pub secret: Option<Secret>,
    /// The target, when it is a Deployment, StatefulSet, DaemonSet or ReplicaSet of `apps/v1` that exists.
    pub workload: Option<Workload>,
}

/// Reading a referenced object failed (not: the object is missing).
#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error("failed to read Repository {namespace}/{name} (RestoreSession.spec.repository)")]
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
    #[error("failed to read {kind} {namespace}/{name} (RestoreSession.spec.target.ref)")]
    ReadTarget {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// `spec.repository` as (namespace, name), the namespace defaulted to the RestoreSession's.
#[must_use]
pub fn repository_key(rs: &RestoreSession) -> Option<(String, String)> {
    let reference = rs.spec.repository.as_ref()?;
    let namespace = reference
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| rs.namespace().unwrap_or_default());
    Some((namespace, reference.name.clone()))
}

/// `spec.target.ref` as a workload kind, namespace and name, if it names an `apps/v1` kind that is
/// restored by an init-container.
#[must_use]
pub fn workload_key(rs: &RestoreSession) -> Option<(WorkloadKind, String, String)> {
    let info = RestoreInvoker::Session(rs).targets().into_iter().next()?;
    let reference = info.target_ref()?;
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

/// Reads the target workload named by `rs`, if it names one.
pub async fn read_workload(
    client: &Client,
    rs: &RestoreSession,
) -> Result<Option<Workload>, DereferenceError> {
    let Some((kind, namespace, name)) = workload_key(rs) else {
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
    client: &Client,
    rs: &RestoreSession,
) -> Result<Dereferenced, DereferenceError> {
    let mut out = Dereferenced::default();
    if let Some((namespace, name)) = repository_key(rs) {
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
    out.workload = read_workload(client, rs).await?;
    Ok(out)
}
