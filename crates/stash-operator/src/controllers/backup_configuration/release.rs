//! Letting workloads go (§8.2 "remove when the annotation exists but no invoker matches"): when a
//! BackupConfiguration is deleted, or its `spec.target` now names another workload (or no longer a
//! sidecar target), every workload whose last-applied annotations still record it gets the sidecar, its
//! volumes, the image-pull Secret copies and the annotations taken out, and the sidecar's RBAC for that
//! workload is deleted unless another BackupConfiguration still backs the workload up.
//!
//! The workloads are found by their annotations, not by remembering the old target, so a retarget
//! while the operator was down, or a BackupConfiguration deleted and re-created under the same name
//! with another target, is cleaned up all the same.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use stash_api::v1beta1::BackupConfiguration;

use super::apply::{delete_sidecar_rbac, injected_for, recorded_backup_configuration};
use super::dereference::{get_workload, repository_key, workload_key};
use crate::build::sidecar::remove_sidecar_from_workload;
use crate::context::Context;
use crate::controllers::apply::{ApplyError, restart_stale_pods, update_workload};
use crate::invoker::BackupInvoker;
use crate::workload::{Workload, WorkloadKind};

/// Letting a workload go failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "failed to list the {kind}s of namespace {namespace} to find those that still carry the sidecar of this BackupConfiguration"
    )]
    ListWorkloads {
        kind: WorkloadKind,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read {kind} {namespace}/{name}")]
    ReadWorkload {
        kind: WorkloadKind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to take the stash sidecar and its RBAC out of a workload")]
    Apply {
        #[from]
        source: ApplyError,
    },
}

/// Whether `bc` (as it is now) still wants its sidecar in `workload`.
#[must_use]
pub fn still_targets(bc: &BackupConfiguration, workload: &Workload) -> bool {
    bc.metadata.deletion_timestamp.is_none()
        && workload.managing_deployment().is_none()
        && BackupInvoker::Configuration(bc)
            .target_for(workload)
            .is_some_and(|t| t.uses_sidecar())
}

/// Whether a live BackupConfiguration other than `bc` backs `workload` up with a sidecar, and so still
/// needs the sidecar's RBAC that every invoker of this workload shares.
#[must_use]
pub fn needed_by_another(
    bc: &BackupConfiguration,
    workload: &Workload,
    all: &[Arc<BackupConfiguration>],
) -> bool {
    another_needs(bc, all, |other| still_targets(other, workload))
}

/// Whether an object of `all` other than `leaving` (told apart by uid) `needs` what `leaving` would
/// delete: the RBAC objects the operator names after a workload are shared by every invoker of it.
#[must_use]
pub fn another_needs<K: ResourceExt>(
    leaving: &K,
    all: &[Arc<K>],
    needs: impl Fn(&K) -> bool,
) -> bool {
    all.iter()
        .any(|other| other.uid() != leaving.uid() && needs(other))
}

/// The namespaces a workload recording `bc` can be in: its own and its target's (v0.20+ targets may name
/// another namespace).
fn namespaces(bc: &BackupConfiguration) -> Vec<String> {
    let mut out = vec![bc.namespace().unwrap_or_default()];
    if let Some(target_namespace) = BackupInvoker::Configuration(bc)
        .targets()
        .first()
        .map(|t| t.target_namespace().to_owned())
        && !out.contains(&target_namespace)
    {
        out.push(target_namespace);
    }
    out
}

async fn list_metadata(
    client: &Client,
    kind: WorkloadKind,
    namespace: &str,
) -> Result<Vec<ObjectMeta>, kube::Error> {
    async fn metas<K>(api: Api<K>) -> Result<Vec<ObjectMeta>, kube::Error>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        Ok(api
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|m| m.metadata)
            .collect())
    }
    match kind {
        WorkloadKind::Deployment => {
            metas(Api::<Deployment>::namespaced(client.clone(), namespace)).await
        }
        WorkloadKind::StatefulSet => {
            metas(Api::<StatefulSet>::namespaced(client.clone(), namespace)).await
        }
        WorkloadKind::DaemonSet => {
            metas(Api::<DaemonSet>::namespaced(client.clone(), namespace)).await
        }
        WorkloadKind::ReplicaSet => {
            metas(Api::<ReplicaSet>::namespaced(client.clone(), namespace)).await
        }
    }
}

/// The workloads whose last-applied annotations record `bc`.
pub async fn recording(
    client: &Client,
    bc: &BackupConfiguration,
) -> Result<Vec<Workload>, ReleaseError> {
    let mut out = Vec::new();
    for namespace in namespaces(bc) {
        for kind in WorkloadKind::ALL {
            let metas = list_metadata(client, kind, &namespace)
                .await
                .map_err(|source| ReleaseError::ListWorkloads {
                    kind,
                    namespace: namespace.clone(),
                    source,
                })?;
            for meta in metas.iter().filter(|m| {
                recorded_backup_configuration(m).is_some_and(|(ns, name)| {
                    Some(&ns) == bc.metadata.namespace.as_ref()
                        && Some(&name) == bc.metadata.name.as_ref()
                })
            }) {
                let name = meta.name.clone().unwrap_or_default();
                let workload = get_workload(client, kind, &namespace, &name)
                    .await
                    .map_err(|source| ReleaseError::ReadWorkload {
                        kind,
                        namespace: namespace.clone(),
                        name,
                        source,
                    })?;
                out.extend(workload);
            }
        }
    }
    Ok(out)
}

/// Takes `bc`'s sidecar out of `workload` (if the annotations record `bc`) and restarts a ReplicaSet's
/// pods; deletes the sidecar's RBAC for the workload unless another BackupConfiguration still needs it.
pub async fn release(
    ctx: &Context,
    bc: &BackupConfiguration,
    mut workload: Workload,
) -> Result<(), ReleaseError> {
    if injected_for(&workload, bc) {
        remove_sidecar_from_workload(&mut workload, &ctx.settings);
        update_workload(&ctx.client, &workload, "removing the stash sidecar").await?;
        restart_stale_pods(&ctx.client, &workload).await?;
        tracing::info!(target = %workload, "removed the stash sidecar");
    }
    if !needed_by_another(bc, &workload, &ctx.backup_configurations.state()) {
        let repository_namespace = repository_key(bc).map_or_else(
            || workload.namespace().unwrap_or_default().to_owned(),
            |(ns, _)| ns,
        );
        delete_sidecar_rbac(&ctx.client, &workload, &repository_namespace).await?;
    }
    Ok(())
}

/// Releases every workload that records `bc` but is no longer its sidecar target; returns them.
pub async fn release_previous_targets(
    ctx: &Context,
    bc: &BackupConfiguration,
) -> Result<Vec<String>, ReleaseError> {
    let mut released = Vec::new();
    for workload in recording(&ctx.client, bc).await? {
        if !still_targets(bc, &workload) {
            released.push(workload.to_string());
            release(ctx, bc, workload).await?;
        }
    }
    Ok(released)
}

/// Deletion: releases every workload that records `bc`, and the current target as well (its RBAC, when
/// `bc` lost the workload to a newer BackupConfiguration that has since gone too).
pub async fn release_all(ctx: &Context, bc: &BackupConfiguration) -> Result<(), ReleaseError> {
    let mut workloads = recording(&ctx.client, bc).await?;
    if let Some((kind, namespace, name)) = workload_key(bc) {
        let known = workloads.iter().any(|w| {
            w.kind() == kind && w.namespace() == Some(namespace.as_str()) && w.name() == name
        });
        if !known
            && let Some(current) = get_workload(&ctx.client, kind, &namespace, &name)
                .await
                .map_err(|source| ReleaseError::ReadWorkload {
                    kind,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?
            && current.managing_deployment().is_none()
        {
            workloads.push(current);
        }
    }
    for workload in workloads {
        release(ctx, bc, workload).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::backup_configuration::apply::recorded_backup_configuration;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn backup_configuration(name: &str, uid: &str, target: &str) -> Arc<BackupConfiguration> {
        let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        bc.metadata.name = Some(name.to_owned());
        bc.metadata.uid = Some(uid.to_owned());
        bc.spec.target.as_mut().unwrap().reference.name = target.to_owned();
        Arc::new(bc)
    }

    fn deployment(name: &str, recorded: Option<&str>) -> Workload {
        let mut w = Workload::from_yaml(&format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: demo\nspec:\n  selector: {{}}\n  template: {{}}\n"
        ))
        .unwrap();
        if let Some(invoker) = recorded {
            w.set_annotation(
                stash_api::labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER,
                format!(r#"{{"metadata":{{"name":"{invoker}","namespace":"demo"}}}}"#),
            );
            w.set_annotation(
                stash_api::labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND,
                "BackupConfiguration".to_owned(),
            );
        }
        w
    }

    #[test]
    fn a_retargeted_backup_configuration_no_longer_targets_the_workload_its_annotations_name() {
        let bc = backup_configuration("deployment-backup", "u1", "other-demo");
        let old = deployment("stash-demo", Some("deployment-backup"));
        assert_eq!(
            recorded_backup_configuration(old.metadata()),
            Some(("demo".to_owned(), "deployment-backup".to_owned()))
        );
        assert!(injected_for(&old, &bc));
        assert!(!still_targets(&bc, &old));
        assert!(still_targets(&bc, &deployment("other-demo", None)));
    }

    #[test]
    fn the_sidecar_rbac_of_a_workload_is_needed_while_another_live_backup_configuration_targets_it()
    {
        let leaving = backup_configuration("deployment-backup", "u1", "stash-demo");
        let other = backup_configuration("newer-backup", "u2", "stash-demo");
        let elsewhere = backup_configuration("other-backup", "u3", "other-demo");
        let workload = deployment("stash-demo", Some("deployment-backup"));
        assert!(needed_by_another(
            &leaving,
            &workload,
            &[Arc::clone(&leaving), other, Arc::clone(&elsewhere)]
        ));
        assert!(!needed_by_another(
            &leaving,
            &workload,
            &[Arc::clone(&leaving), elsewhere]
        ));
    }

    #[test]
    fn a_replicaset_carrying_its_deployments_annotations_records_no_backup_configuration() {
        let mut meta = deployment("stash-demo-7d9f", Some("deployment-backup"))
            .metadata()
            .clone();
        meta.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "Deployment".to_owned(),
                name: "stash-demo".to_owned(),
                uid: "d".to_owned(),
                controller: Some(true),
                block_owner_deletion: None,
            },
        ]);
        assert_eq!(recorded_backup_configuration(&meta), None);
    }
}
