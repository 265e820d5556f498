//! Stage 4: write the desired objects. The RBAC goes through server-side apply with the operator's field
//! manager; the workload is written only when it does not carry the init-container yet, as a whole-object
//! update guarded by its resourceVersion (a conflict is retried by the controller), exactly as the
//! BackupConfiguration controller writes its sidecar.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stash_api::labels;
use stash_api::v1beta1::RestoreSession;

use super::build::Resources;
use crate::build::RESTORE_INVOKER_ANNOTATIONS;
use crate::build::rbac::ExecutorRbac;
use crate::invoker::RestoreInvokerKind;
use crate::workload::Workload;

/// Writing an object failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("failed to apply {kind} {name}")]
    Apply {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update {workload} ({action} the stash-init init-container)")]
    UpdateWorkload {
        workload: String,
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("failed to restart the pods of {workload} that do not run its current pod template")]
    RestartPods {
        workload: String,
        #[source]
        source: crate::controllers::backup_configuration::apply::ApplyError,
    },
}

fn params() -> PatchParams {
    PatchParams::apply(labels::FIELD_MANAGER_OPERATOR).force()
}

async fn apply_namespaced<K>(client: &Client, object: &K) -> Result<(), ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), &namespace)
        .patch(&name, &params(), &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|source| ApplyError::Apply {
            kind: K::kind(&()).into_owned(),
            name: format!("{namespace}/{name}"),
            source,
        })
}

async fn apply_cluster_role(client: &Client, role: &ClusterRole) -> Result<(), ApplyError> {
    let name = role.name_any();
    Api::<ClusterRole>::all(client.clone())
        .patch(&name, &params(), &Patch::Apply(role))
        .await
        .map(drop)
        .map_err(|source| ApplyError::Apply {
            kind: "ClusterRole".to_owned(),
            name,
            source,
        })
}

async fn apply_rbac(client: &Client, rbac: &ExecutorRbac) -> Result<(), ApplyError> {
    apply_cluster_role(client, &rbac.cluster_role).await?;
    apply_namespaced(client, &rbac.role_binding).await?;
    if let Some((role, binding)) = &rbac.repository_access {
        apply_namespaced(client, role).await?;
        apply_namespaced(client, binding).await?;
    }
    Ok(())
}

/// Replaces `workload` as read (its resourceVersion guards against lost updates).
pub async fn update_workload(
    client: &Client,
    workload: &Workload,
    action: &'static str,
) -> Result<(), ApplyError> {
    let namespace = workload.namespace().unwrap_or_default().to_owned();
    let name = workload.name().to_owned();
    let pp = PostParams {
        field_manager: Some(labels::FIELD_MANAGER_OPERATOR.to_owned()),
        ..PostParams::default()
    };
    let result = match workload {
        Workload::Deployment(w) => Api::<Deployment>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::StatefulSet(w) => Api::<StatefulSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::DaemonSet(w) => Api::<DaemonSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::ReplicaSet(w) => Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
    };
    result.map_err(|source| ApplyError::UpdateWorkload {
        workload: workload.to_string(),
        action,
        source,
    })
}

/// Deletes the pods of a standalone ReplicaSet that do not match its pod template (it never replaces a
/// running pod itself), so `stash-init` runs in (or leaves) every pod; other kinds roll by themselves.
pub async fn restart_stale_pods(client: &Client, workload: &Workload) -> Result<(), ApplyError> {
    crate::controllers::backup_configuration::apply::restart_stale_pods(client, workload)
        .await
        .map(drop)
        .map_err(|source| ApplyError::RestartPods {
            workload: workload.to_string(),
            source,
        })
}

/// Stage 4 of the pipeline: RBAC before the init-container that runs under it. Returns whether the
/// workload was written.
pub async fn apply(client: &Client, resources: &Resources) -> Result<bool, ApplyError> {
    apply_rbac(client, &resources.rbac).await?;
    if resources.current {
        return Ok(false);
    }
    update_workload(client, &resources.workload, "injecting").await?;
    restart_stale_pods(client, &resources.workload).await?;
    Ok(true)
}

/// Whether the init-container in `workload` was put there for `rs` (per the last-applied annotations),
/// so deleting another RestoreSession never takes it out.
#[must_use]
pub fn injected_for(workload: &Workload, rs: &RestoreSession) -> bool {
    let Some((kind, name)) = RESTORE_INVOKER_ANNOTATIONS.recorded(workload) else {
        return false;
    };
    let namespace = workload
        .annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER)
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .and_then(|v| {
            v.pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| workload.namespace().map(str::to_owned));
    kind == RestoreInvokerKind::RestoreSession.as_str()
        && Some(name) == rs.metadata.name
        && namespace == rs.namespace()
}
