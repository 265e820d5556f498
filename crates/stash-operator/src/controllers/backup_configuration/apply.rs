//! Stage 4: write the desired objects. CronJob and RBAC go through server-side apply with the operator's
//! field manager; the workload is written only when its sidecar is not current, as a whole-object update
//! guarded by its resourceVersion (a conflict is retried by the controller), so the builders' injection
//! and removal are exactly what lands and there is no rollout loop.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stash_api::labels;
use stash_api::v1beta1::BackupConfiguration;

use super::build::Resources;
use crate::build::rbac::{ExecutorRbac, sidecar_rbac_names};
use crate::workload::{Workload, managing_deployment};

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
    #[error("failed to list the pods of {workload}")]
    ListPods {
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
        restart_stale_pods(client, &sidecar.workload).await?;
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
    recorded_backup_configuration(workload.metadata()).is_some_and(|(ns, name)| {
        Some(&ns) == bc.metadata.namespace.as_ref() && Some(&name) == bc.metadata.name.as_ref()
    })
}

/// The BackupConfiguration (namespace, name) a workload's last-applied annotations record, if they
/// record one. A ReplicaSet a Deployment manages carries its Deployment's annotations (the Deployment
/// controller copies them), but the record is the Deployment's, so it counts for nothing here.
#[must_use]
pub fn recorded_backup_configuration(metadata: &ObjectMeta) -> Option<(String, String)> {
    if managing_deployment(metadata).is_some() {
        return None;
    }
    let annotations = metadata.annotations.as_ref()?;
    if annotations
        .get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND)
        .map(String::as_str)
        != Some("BackupConfiguration")
    {
        return None;
    }
    let applied: serde_json::Value =
        serde_json::from_str(annotations.get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER)?)
            .ok()?;
    let field = |f: &str| {
        applied
            .pointer(&format!("/metadata/{f}"))
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let namespace = field("namespace").or_else(|| metadata.namespace.clone())?;
    Some((namespace, field("name")?))
}

/// Deletes the pods of a ReplicaSet that do not match its pod template's executors and hashes, as Stash
/// v0.17 did (§8.3): a ReplicaSet never replaces a running pod after a template change, and it creates
/// the replacements from the new template. Other kinds roll by themselves; nothing is done for them.
pub async fn restart_stale_pods(client: &Client, workload: &Workload) -> Result<usize, ApplyError> {
    let Workload::ReplicaSet(rs) = workload else {
        return Ok(0);
    };
    let Some(uid) = rs.metadata.uid.as_deref() else {
        return Ok(0);
    };
    let namespace = workload.namespace().unwrap_or_default().to_owned();
    let selector = rs
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods = Api::<Pod>::namespaced(client.clone(), &namespace);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| ApplyError::ListPods {
            workload: workload.to_string(),
            source,
        })?;
    let mut restarted = 0;
    for pod in listed.items.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.owner_references().iter().any(|o| o.uid == uid)
            && !workload.pod_is_current(p)
    }) {
        delete_ignoring_absent(&pods, &pod.name_any(), "Pod", &namespace).await?;
        tracing::info!(target = %workload, pod = %pod.name_any(), "deleted a pod created from the old pod template");
        restarted += 1;
    }
    Ok(restarted)
}

async fn delete_ignoring_absent<K>(
    api: &Api<K>,
    name: &str,
    kind: &str,
    namespace: &str,
) -> Result<(), ApplyError>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ApplyError::Delete {
            kind: kind.to_owned(),
            name: format!("{namespace}/{name}"),
            source,
        }),
    }
}

/// Deletes the sidecar's RBAC for `workload` ([`sidecar_rbac_names`]): the `stash-sidecar` RoleBinding in
/// its namespace and the Repository Role and RoleBinding in `repository_namespace`.
pub async fn delete_sidecar_rbac(
    client: &Client,
    workload: &Workload,
    repository_namespace: &str,
) -> Result<(), ApplyError> {
    let (binding, access) = sidecar_rbac_names(workload);
    let namespace = workload.namespace().unwrap_or_default();
    delete_role_binding(client, namespace, &binding).await?;
    delete_repository_access(client, repository_namespace, &access).await
}

/// Deletes RoleBinding `namespace/name`, if it exists.
pub async fn delete_role_binding(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ApplyError> {
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), namespace);
    delete_ignoring_absent(&bindings, name, "RoleBinding", namespace).await
}

/// Deletes the Repository Role `namespace/name` and its RoleBinding of the same name, if they exist.
pub async fn delete_repository_access(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ApplyError> {
    delete_role_binding(client, namespace, name).await?;
    delete_ignoring_absent(
        &Api::<Role>::namespaced(client.clone(), namespace),
        name,
        "Role",
        namespace,
    )
    .await
}

/// Deletes a trigger CronJob of `bc` that is no longer its current one (its name follows the target's
/// namespace) with the RoleBinding and, when `bc` owns it, the ServiceAccount of the same name.
pub async fn delete_trigger(
    client: &Client,
    bc: &BackupConfiguration,
    name: &str,
) -> Result<(), ApplyError> {
    let namespace = bc.namespace().unwrap_or_default();
    delete_cronjob(client, bc, name).await?;
    delete_ignoring_absent(
        &Api::<RoleBinding>::namespaced(client.clone(), &namespace),
        name,
        "RoleBinding",
        &namespace,
    )
    .await?;
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &namespace);
    let owned = accounts
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .is_some_and(|sa| {
            sa.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == bc.metadata.uid.as_ref())
        });
    if owned {
        delete_ignoring_absent(&accounts, name, "ServiceAccount", &namespace).await?;
    }
    Ok(())
}
