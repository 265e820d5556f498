//! The `stash-init` restore init-container (§10) and its injection into a workload.
//!
//! It goes first among the init-containers, so the data is in place before any of the user's init
//! containers (migrations, permission fixers) look at it.

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};
use serde_json::Value;
use stash_api::labels;
use stash_api::v1alpha1::Repository;

use super::{
    MountProblem, add_image_pull_secrets, apply_container_runtime_settings, check_target_mounts,
    executor_env, executor_mounts, executor_volumes, image_pull_secrets,
    remove_executor_volumes_if_unused, remove_image_pull_secrets, upsert_volumes,
};
use crate::invoker::{RestoreInvokerKind, RestoreTargetInfo};
use crate::settings::Settings;
use crate::workload::Workload;

/// Building or injecting the restore init-container failed; each message names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum InjectInitContainerError {
    #[error("{invoker} has no {field}.ref; set it to the workload to restore into")]
    MissingTarget { invoker: String, field: String },
    #[error(
        "{invoker} is not restored by an init-container: it needs driver Restic, no task and a Deployment, StatefulSet or DaemonSet target (§8.1); the operator runs a restore Job for it instead"
    )]
    NotInitContainerModel { invoker: String },
    #[error(
        "{invoker}: {field}.ref names {target}, not {workload}; inject the init-container into the workload the target names"
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
        "{invoker}: {field}.volumeMounts[{index}] mounts at {mount_path}, where the init-container keeps its tmp-dir; mount the volume elsewhere"
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

/// The `stash-init` container that runs `restore` before the workload starts (§10, v0.24 form).
pub fn init_container(
    target: &RestoreTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<Container, InjectInitContainerError> {
    let invoker = target.invoker;
    let reference = target
        .target_ref()
        .ok_or_else(|| InjectInitContainerError::MissingTarget {
            invoker: invoker.to_string(),
            field: target.target_field(),
        })?;
    let mut args = vec![
        "restore".to_owned(),
        format!("--invoker-kind={}", invoker.kind()),
        format!("--invoker-name={}", invoker.name()),
        format!("--target-name={}", reference.name),
        format!("--target-namespace={}", target.target_namespace()),
        format!("--target-kind={}", reference.kind),
        format!("--enable-cache={}", target.enable_cache()),
        format!(
            "--max-connections={}",
            repository.spec.backend.max_connections()
        ),
    ];
    args.extend(settings.executor_flags());

    let mounts = target
        .target
        .and_then(|t| t.volume_mounts.as_deref())
        .unwrap_or_default();
    let mut container = Container {
        name: labels::CONTAINER_INIT.to_owned(),
        image: Some(settings.image_ref()),
        args: Some(args),
        env: Some(executor_env()),
        volume_mounts: Some(executor_mounts(mounts, repository)),
        ..Container::default()
    };
    let runtime = target.runtime_settings.and_then(|r| r.container.as_ref());
    if let Some(runtime) = runtime {
        apply_container_runtime_settings(&mut container, runtime);
    }
    container.security_context = Some(restore_security_context(
        runtime.and_then(|r| r.security_context.as_ref()),
    ));
    Ok(container)
}

/// Root by default, so restored files keep their owners (the image runs as 65535); every field the user
/// sets in `runtimeSettings.container.securityContext` overrides the default one by one (§10).
fn restore_security_context(user: Option<&SecurityContext>) -> SecurityContext {
    let root = SecurityContext {
        run_as_user: Some(0),
        run_as_group: Some(0),
        ..SecurityContext::default()
    };
    let Some(user) = user else {
        return root;
    };
    let mut merged = serde_json::to_value(root).expect("SecurityContext serializes");
    if let (Value::Object(base), Ok(Value::Object(over))) =
        (&mut merged, serde_json::to_value(user))
    {
        base.extend(over);
    }
    serde_json::from_value(merged).expect("a merged SecurityContext deserializes")
}

/// Puts `stash-init` first among the init-containers (dropping an older `stash-init` wherever it was) and
/// upserts its volumes. Applying twice equals applying once.
pub fn inject_init_container(
    pod: &mut PodSpec,
    target: &RestoreTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<(), InjectInitContainerError> {
    let container = init_container(target, repository, settings)?;
    let mut init_containers = vec![container];
    init_containers.extend(
        pod.init_containers
            .take()
            .into_iter()
            .flatten()
            .filter(|c| c.name != labels::CONTAINER_INIT),
    );
    pod.init_containers = Some(init_containers);
    upsert_volumes(pod, executor_volumes(target.temp_dir, repository));
    Ok(())
}

/// Takes `stash-init` out of `pod`, and `tmp-dir`/`stash-local` unless the backup sidecar still mounts them.
pub fn remove_init_container(pod: &mut PodSpec) {
    if let Some(init_containers) = pod.init_containers.as_mut() {
        init_containers.retain(|c| c.name != labels::CONTAINER_INIT);
        if init_containers.is_empty() {
            pod.init_containers = None;
        }
    }
    remove_executor_volumes_if_unused(pod);
}

/// Everything the operator does to a workload for an init-container restore (§10, §8.2): checks the
/// target, injects `stash-init` and the copied image-pull Secrets, marks the pod template with the restore
/// hash and the workload with the invoker, and makes StatefulSets and DaemonSets roll.
pub fn inject_init_container_into_workload(
    workload: &mut Workload,
    target: &RestoreTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<(), InjectInitContainerError> {
    let invoker = target.invoker;
    let field = target.target_field();
    let reference = target
        .target_ref()
        .ok_or_else(|| InjectInitContainerError::MissingTarget {
            invoker: invoker.to_string(),
            field: field.clone(),
        })?;
    if !target.uses_init_container() {
        return Err(InjectInitContainerError::NotInitContainerModel {
            invoker: invoker.to_string(),
        });
    }
    if invoker.target_for(workload).map(|t| t.index) != Some(target.index) {
        return Err(InjectInitContainerError::TargetMismatch {
            invoker: invoker.to_string(),
            field,
            target: format!(
                "{} {}/{} ({})",
                reference.kind,
                target.target_namespace(),
                reference.name,
                reference.api_version.as_deref().unwrap_or("no apiVersion")
            ),
            workload: format!("{workload} (apps/v1)"),
        });
    }
    let mounts = target
        .target
        .and_then(|t| t.volume_mounts.as_deref())
        .unwrap_or_default();
    match check_target_mounts(mounts, workload) {
        Some(MountProblem::UnknownVolume { index, volume }) => {
            return Err(InjectInitContainerError::UnknownVolume {
                invoker: invoker.to_string(),
                field,
                index,
                volume,
                workload: workload.to_string(),
            });
        }
        Some(MountProblem::ReservedPath { index, mount_path }) => {
            return Err(InjectInitContainerError::ReservedMountPath {
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
            .map_err(|source| InjectInitContainerError::SerializeInvoker {
                invoker: invoker.to_string(),
                annotation: super::RESTORE_INVOKER_ANNOTATIONS.invoker_key(),
                source,
            })?;

    let pod = workload.pod_spec_mut();
    inject_init_container(pod, target, repository, settings)?;
    add_image_pull_secrets(
        pod,
        image_pull_secrets(settings, invoker.kind().as_str(), invoker.name()),
    );
    super::RESTORE_INVOKER_ANNOTATIONS.record(
        workload,
        applied,
        invoker.kind().as_str(),
        target.spec_hash(),
    );
    workload.force_rolling_update();
    Ok(())
}

/// Undoes [`inject_init_container_into_workload`] (when the RestoreSession is deleted, §6.2).
pub fn remove_init_container_from_workload(workload: &mut Workload, settings: &Settings) {
    let recorded = applied_invoker(workload);
    let pod = workload.pod_spec_mut();
    remove_init_container(pod);
    if let Some((kind, name)) = recorded {
        remove_image_pull_secrets(pod, &image_pull_secrets(settings, kind.as_str(), &name));
    }
    super::RESTORE_INVOKER_ANNOTATIONS.forget(workload);
    workload.force_rolling_update();
}

fn applied_invoker(workload: &Workload) -> Option<(RestoreInvokerKind, String)> {
    let (kind, name) = super::RESTORE_INVOKER_ANNOTATIONS.recorded(workload)?;
    Some((RestoreInvokerKind::from_kind(kind)?, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_security_context_is_root_unless_the_user_overrides_a_field() {
        let user = SecurityContext {
            run_as_user: Some(2000),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        };
        let merged = restore_security_context(Some(&user));
        assert_eq!(merged.run_as_user, Some(2000));
        assert_eq!(merged.run_as_group, Some(0));
        assert_eq!(merged.read_only_root_filesystem, Some(true));
    }
}
