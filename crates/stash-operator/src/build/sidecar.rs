//! The `stash` backup sidecar (§8.4) and its injection into a workload (§8.2, §8.3).
//!
//! Injection is idempotent: the container, volumes and annotations are upserted by name/key and the hash
//! depends only on the invoker's target, so applying twice changes nothing the second time (no rollout
//! loop, Stash issue #1308). Removal undoes exactly what injection added.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use stash_api::labels;
use stash_api::v1alpha1::Repository;

use super::{
    MountProblem, add_image_pull_secrets, apply_container_runtime_settings, check_target_mounts,
    executor_env, executor_mounts, executor_volumes, image_pull_secrets,
    remove_executor_volumes_if_unused, remove_image_pull_secrets, upsert_container, upsert_volumes,
};
use crate::invoker::{BackupInvokerKind, BackupTargetInfo};
use crate::settings::Settings;
use crate::workload::Workload;

/// Building or injecting the sidecar failed; each message names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum InjectSidecarError {
    #[error("{invoker} has no {field}; set {field}.ref to the workload to back up")]
    MissingTarget { invoker: String, field: String },
    #[error(
        "{invoker} is not backed up by a sidecar: it needs driver Restic, no task and a Deployment, StatefulSet or DaemonSet target (§8.1); the operator runs a backup Job for it instead"
    )]
    NotSidecarModel { invoker: String },
    #[error(
        "{invoker}: {field}.ref names {target}, not {workload}; inject the sidecar into the workload the target names"
    )]
    TargetMismatch {
        invoker: String,
        field: String,
        target: String,
        workload: String,
    },
    #[error(
        "{invoker}: {field}.volumeMounts[{index}] mounts volume `{volume}`, which {workload} does not have; add the volume to the pod template or correct the name"
    )]
    UnknownVolume {
        invoker: String,
        field: String,
        index: usize,
        volume: String,
        workload: String,
    },
    #[error(
        "{invoker}: {field}.volumeMounts[{index}] mounts at {mount_path}, where the sidecar keeps its tmp-dir; mount the volume elsewhere"
    )]
    ReservedMountPath {
        invoker: String,
        field: String,
        index: usize,
        mount_path: String,
    },
    #[error("failed to write {invoker} into annotation {annotation}")]
    SerializeInvoker {
        invoker: String,
        annotation: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The `stash` container that runs `run-backup` next to the workload's containers (§8.4, v0.24 form).
pub fn sidecar_container(
    target: &BackupTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<Container, InjectSidecarError> {
    let invoker = target.invoker;
    let backup_target = target
        .target
        .ok_or_else(|| InjectSidecarError::MissingTarget {
            invoker: invoker.to_string(),
            field: target.target_field(),
        })?;
    let mut args = vec![
        "run-backup".to_owned(),
        format!("--invoker-name={}", invoker.name()),
        format!("--invoker-kind={}", invoker.kind()),
        format!("--target-name={}", backup_target.reference.name),
        format!("--target-namespace={}", target.target_namespace()),
        format!("--target-kind={}", backup_target.reference.kind),
        format!("--enable-cache={}", target.enable_cache()),
        format!(
            "--max-connections={}",
            repository.spec.backend.max_connections()
        ),
    ];
    args.extend(settings.executor_flags());

    let mut container = Container {
        name: labels::CONTAINER_SIDECAR.to_owned(),
        image: Some(settings.image_ref()),
        args: Some(args),
        env: Some(executor_env()),
        volume_mounts: Some(executor_mounts(
            backup_target.volume_mounts.as_deref().unwrap_or_default(),
            repository,
        )),
        ..Container::default()
    };
    if let Some(runtime) = target.runtime_settings.and_then(|r| r.container.as_ref()) {
        apply_container_runtime_settings(&mut container, runtime);
    }
    Ok(container)
}

/// Puts the sidecar and its volumes into `pod`: replaces an existing `stash` container in place, upserts
/// `tmp-dir` (and `stash-local` for a local backend). Applying twice equals applying once.
pub fn inject_sidecar(
    pod: &mut PodSpec,
    target: &BackupTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<(), InjectSidecarError> {
    let container = sidecar_container(target, repository, settings)?;
    upsert_container(&mut pod.containers, container);
    upsert_volumes(pod, executor_volumes(target.temp_dir, repository));
    Ok(())
}

/// Takes the sidecar out of `pod`, and `tmp-dir`/`stash-local` unless the restore init-container still
/// mounts them.
pub fn remove_sidecar(pod: &mut PodSpec) {
    pod.containers
        .retain(|c| c.name != labels::CONTAINER_SIDECAR);
    remove_executor_volumes_if_unused(pod);
}

/// Everything the operator does to a workload for a sidecar backup (§8.2-§8.4): checks that the target
/// names this workload and mounts volumes it has, injects the sidecar and the copied image-pull Secrets,
/// marks the pod template with the invoker hash and the workload with the invoker, and makes StatefulSets
/// and DaemonSets roll.
pub fn inject_sidecar_into_workload(
    workload: &mut Workload,
    target: &BackupTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<(), InjectSidecarError> {
    let invoker = target.invoker;
    let field = target.target_field();
    let backup_target = target
        .target
        .ok_or_else(|| InjectSidecarError::MissingTarget {
            invoker: invoker.to_string(),
            field: field.clone(),
        })?;
    if !target.uses_sidecar() {
        return Err(InjectSidecarError::NotSidecarModel {
            invoker: invoker.to_string(),
        });
    }
    if invoker.target_for(workload).map(|t| t.index) != Some(target.index) {
        let r = &backup_target.reference;
        return Err(InjectSidecarError::TargetMismatch {
            invoker: invoker.to_string(),
            field,
            target: format!(
                "{} {}/{} ({})",
                r.kind,
                target.target_namespace(),
                r.name,
                r.api_version.as_deref().unwrap_or("no apiVersion")
            ),
            workload: format!("{workload} (apps/v1)"),
        });
    }
    let mounts = backup_target.volume_mounts.as_deref().unwrap_or_default();
    match check_target_mounts(mounts, workload) {
        Some(MountProblem::UnknownVolume { index, volume }) => {
            return Err(InjectSidecarError::UnknownVolume {
                invoker: invoker.to_string(),
                field,
                index,
                volume,
                workload: workload.to_string(),
            });
        }
        Some(MountProblem::ReservedPath { index, mount_path }) => {
            return Err(InjectSidecarError::ReservedMountPath {
                invoker: invoker.to_string(),
                field,
                index,
                mount_path,
            });
        }
        None => {}
    }
    let applied =
        invoker
            .applied_json()
            .map_err(|source| InjectSidecarError::SerializeInvoker {
                invoker: invoker.to_string(),
                annotation: super::BACKUP_INVOKER_ANNOTATIONS.invoker_key(),
                source,
            })?;

    let pod = workload.pod_spec_mut();
    inject_sidecar(pod, target, repository, settings)?;
    add_image_pull_secrets(
        pod,
        image_pull_secrets(settings, invoker.kind().as_str(), invoker.name()),
    );
    super::BACKUP_INVOKER_ANNOTATIONS.record(
        workload,
        applied,
        invoker.kind().as_str(),
        target.spec_hash(),
    );
    workload.force_rolling_update();
    Ok(())
}

/// Undoes [`inject_sidecar_into_workload`]: the sidecar, its volumes, the image-pull Secret copies of the
/// invoker recorded in the workload's annotations, the hash and the invoker annotations.
pub fn remove_sidecar_from_workload(workload: &mut Workload, settings: &Settings) {
    let recorded = applied_invoker(workload);
    let pod = workload.pod_spec_mut();
    remove_sidecar(pod);
    if let Some((kind, name)) = recorded {
        remove_image_pull_secrets(pod, &image_pull_secrets(settings, kind.as_str(), &name));
    }
    super::BACKUP_INVOKER_ANNOTATIONS.forget(workload);
    workload.force_rolling_update();
}

/// Whether the workload already carries the sidecar for exactly this target: same container, same hash.
/// A controller that finds this true has nothing to patch.
#[must_use]
pub fn sidecar_is_current(
    workload: &Workload,
    target: &BackupTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> bool {
    let Ok(wanted) = sidecar_container(target, repository, settings) else {
        return false;
    };
    let present = workload
        .pod_spec()
        .and_then(|s| s.containers.iter().find(|c| c.name == wanted.name));
    present == Some(&wanted)
        && workload.template_annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH)
            == Some(target.spec_hash().as_str())
}

/// The invoker kind and name recorded by the last injection, if readable.
fn applied_invoker(workload: &Workload) -> Option<(BackupInvokerKind, String)> {
    let (kind, name) = super::BACKUP_INVOKER_ANNOTATIONS.recorded(workload)?;
    Some((BackupInvokerKind::from_kind(kind)?, name))
}
