//! Stage 4: write the desired objects. CronJob and RBAC go through server-side apply with the operator's
//! field manager; the workload is written only when its sidecar is not current, as a whole-object update
//! guarded by its resourceVersion (a conflict is retried by the controller), so the builders' injection
//! and removal are exactly what lands and there is no rollout loop.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Client, ResourceExt};
use stash_api::labels;
use stash_api::v1beta1::BackupConfiguration;

use super::build::Resources;
use crate::build::rbac::sidecar_rbac_names;
use crate::controllers::apply::{
    ApplyError, apply_rbac, delete_if_present, delete_repository_access, get_opt,
    restart_stale_pods, update_workload,
};
use crate::workload::{Workload, managing_deployment};

/// What [`update_workload`] says it was for when it injects the sidecar.
pub const INJECTING_SIDECAR: &str = "injecting the stash sidecar";

/// What stage 4 did, for the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub cronjob_name: String,
    /// `Some(true)`: the workload was updated; `Some(false)`: it was already current.
    pub workload_updated: Option<bool>,
}

/// Stage 4 of the pipeline: RBAC before what runs under it.
pub async fn apply(client: &Client, resources: &Resources) -> Result<Applied, ApplyError> {
    apply_rbac(client, &resources.cronjob_rbac).await?;
    crate::controllers::apply::apply(client, &resources.cronjob).await?;
    let mut workload_updated = None;
    if let Some(sidecar) = &resources.sidecar {
        apply_rbac(client, &sidecar.rbac).await?;
        if !sidecar.current {
            update_workload(client, &sidecar.workload, INJECTING_SIDECAR).await?;
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
    delete_if_present::<CronJob>(client, &bc.namespace().unwrap_or_default(), name).await
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

/// Deletes the sidecar's RBAC for `workload` ([`sidecar_rbac_names`]): the `stash-sidecar` RoleBinding in
/// its namespace and the Repository Role and RoleBinding in `repository_namespace`.
pub async fn delete_sidecar_rbac(
    client: &Client,
    workload: &Workload,
    repository_namespace: &str,
) -> Result<(), ApplyError> {
    let (binding, access) = sidecar_rbac_names(workload);
    let namespace = workload.namespace().unwrap_or_default();
    delete_if_present::<RoleBinding>(client, namespace, &binding).await?;
    delete_repository_access(client, repository_namespace, &access).await
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
    delete_if_present::<RoleBinding>(client, &namespace, name).await?;
    let owned = get_opt::<ServiceAccount>(client, &namespace, name)
        .await
        .ok()
        .flatten()
        .is_some_and(|sa| {
            sa.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == bc.metadata.uid.as_ref())
        });
    if owned {
        delete_if_present::<ServiceAccount>(client, &namespace, name).await?;
    }
    Ok(())
}
