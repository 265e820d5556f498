//! Stage 4: write the desired objects. CronJob and RBAC go through server-side apply with the operator's
//! field manager; the workload is written only when its sidecar is not current, as a whole-object update
//! guarded by its resourceVersion (a conflict is retried by the controller), so the builders' injection
//! and removal are exactly what lands and there is no rollout loop.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stash_api::labels;
use stash_api::v1beta1::BackupConfiguration;

use super::build::Resources;
use crate::build::rbac::ExecutorRbac;
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
    #[error("failed to update {workload} with the stash sidecar")]
    UpdateWorkload {
        workload: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {kind} {name}")]
    Delete {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What stage 4 did, for the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub cronjob_name: String,
    /// `Some(true)`: the workload was updated; `Some(false)`: it was already current.
    pub workload_updated: Option<bool>,
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
    if let Some(sa) = &rbac.service_account {
        apply_namespaced(client, sa).await?;
    }
    apply_cluster_role(client, &rbac.cluster_role).await?;
    apply_namespaced(client, &rbac.role_binding).await?;
    if let Some((role, binding)) = &rbac.repository_access {
        apply_namespaced(client, role).await?;
        apply_namespaced(client, binding).await?;
    }
    Ok(())
}

/// Replaces `workload` as read (its resourceVersion guards against lost updates).
pub async fn update_workload(client: &Client, workload: &Workload) -> Result<(), ApplyError> {
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
        Workload::ReplicaSet(w) => {
            Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), &namespace)
                .replace(&name, &pp, w)
                .await
                .map(drop)
        }
    };
    result.map_err(|source| ApplyError::UpdateWorkload {
        workload: workload.to_string(),
        source,
    })
}

/// Stage 4 of the pipeline: RBAC before what runs under it.
pub async fn apply(client: &Client, resources: &Resources) -> Result<Applied, ApplyError> {
    apply_rbac(client, &resources.cronjob_rbac).await?;
    apply_namespaced(client, &resources.cronjob).await?;
    let mut workload_updated = None;
    if let Some(sidecar) = &resources.sidecar {
        apply_rbac(client, &sidecar.rbac).await?;
        if !sidecar.current {
            update_workload(client, &sidecar.workload).await?;
        }
        workload_updated = Some(!sidecar.current);
    }
    Ok(Applied {
        cronjob_name: resources.cronjob.name_any(),
        workload_updated,
    })
}

/// Deletes the trigger CronJob `name` of `bc` (garbage collection would, too, but not at once).
pub async fn delete_cronjob(
    client: &Client,
    bc: &BackupConfiguration,
    name: &str,
) -> Result<(), ApplyError> {
    let namespace = bc.namespace().unwrap_or_default();
    match Api::<CronJob>::namespaced(client.clone(), &namespace)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            kind: "CronJob".to_owned(),
            name: format!("{namespace}/{name}"),
            source,
        }),
    }
}

/// Whether the sidecar in `workload` was put there for `bc` (per the last-applied annotations).
#[must_use]
pub fn injected_for(workload: &Workload, bc: &BackupConfiguration) -> bool {
    if workload.annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND)
        != Some("BackupConfiguration")
    {
        return false;
    }
    let Some(applied) = workload
        .annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER)
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
    else {
        return false;
    };
    let field = |f: &str| {
        applied
            .pointer(&format!("/metadata/{f}"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    field("name") == bc.metadata.name
        && field("namespace")
            .or_else(|| workload.namespace().map(str::to_owned))
            .as_deref()
            == bc.namespace().as_deref()
}
