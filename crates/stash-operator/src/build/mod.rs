//! Pure builders: spec in, Kubernetes objects out. Shared by the mutating webhook (which edits the object
//! in the admission request) and the controllers (which apply the result), so both inject exactly the same
//! thing. Nothing here talks to the API server.

pub mod cronjob;
pub mod init_container;
pub mod job;
pub mod rbac;
pub mod sidecar;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, LocalObjectReference,
    ObjectFieldSelector, PodSpec, ResourceRequirements, Volume, VolumeMount,
};
use stash_api::common::{ContainerRuntimeSettings, EmptyDirSettings};
use stash_api::labels;
use stash_api::v1alpha1::Repository;

use crate::settings::Settings;
use crate::workload::Workload;

/// Longest valid object name (DNS-1123 label).
pub const MAX_NAME_LENGTH: usize = 63;
/// Longest CronJob name: the CronJob controller appends an 11-character suffix to name its Jobs.
pub const MAX_CRONJOB_NAME_LENGTH: usize = 52;

/// The `NODE_NAME` and `POD_NAME` downward-API variables every in-pod executor reads (§8.4, §8.5).
fn executor_env() -> Vec<EnvVar> {
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    vec![
        field(labels::ENV_NODE_NAME, "spec.nodeName"),
        field(labels::ENV_POD_NAME, "metadata.name"),
    ]
}

/// The mounts of an in-pod executor: `tmp-dir` at `/tmp` first, then the target's volumes, then the local
/// backend (§8.4). Only name, mountPath and subPath of the target mounts are copied, as Stash does.
fn executor_mounts(target_mounts: &[VolumeMount], repository: &Repository) -> Vec<VolumeMount> {
    let mut mounts = vec![VolumeMount {
        name: labels::VOLUME_TMP_DIR.to_owned(),
        mount_path: labels::TMP_DIR_MOUNT_PATH.to_owned(),
        ..VolumeMount::default()
    }];
    mounts.extend(target_mounts.iter().map(|m| VolumeMount {
        name: m.name.clone(),
        mount_path: m.mount_path.clone(),
        sub_path: m.sub_path.clone(),
        ..VolumeMount::default()
    }));
    if let Some(local) = &repository.spec.backend.local {
        mounts.push(VolumeMount {
            name: labels::VOLUME_LOCAL_BACKEND.to_owned(),
            mount_path: local.mount_path.clone(),
            sub_path: local.sub_path.clone(),
            ..VolumeMount::default()
        });
    }
    mounts
}

/// The pod volumes an in-pod executor needs: the `tmp-dir` emptyDir shaped by `tempDir`, and the local
/// backend's volume as `stash-local` (the stash-rs preamble: local repositories are mounted, as in v0.9).
fn executor_volumes(temp_dir: Option<&EmptyDirSettings>, repository: &Repository) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: labels::VOLUME_TMP_DIR.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: temp_dir.and_then(|t| t.medium.clone()),
            size_limit: temp_dir.and_then(|t| t.size_limit.clone()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }];
    if let Some(local) = &repository.spec.backend.local {
        volumes.push(local.volume_source.to_volume(labels::VOLUME_LOCAL_BACKEND));
    }
    volumes
}

/// The volumes [`executor_volumes`] may add, by name.
const EXECUTOR_VOLUMES: [&str; 2] = [labels::VOLUME_TMP_DIR, labels::VOLUME_LOCAL_BACKEND];

/// Stash's `ApplyContainerRuntimeSettings`: each setting that is present replaces the container's, env
/// entries are upserted by name, envFrom is appended and nice/ionice become environment variables the
/// agent wraps restic with. Unlike Stash, requests are applied even without limits (Stash only looked at
/// limits for both, dropping requests-only settings).
fn apply_container_runtime_settings(
    container: &mut Container,
    settings: &ContainerRuntimeSettings,
) {
    if let Some(resources) = &settings.resources {
        let target = container
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        if resources.limits.as_ref().is_some_and(|l| !l.is_empty()) {
            target.limits.clone_from(&resources.limits);
        }
        if resources.requests.as_ref().is_some_and(|r| !r.is_empty()) {
            target.requests.clone_from(&resources.requests);
        }
        if *target == ResourceRequirements::default() {
            container.resources = None;
        }
    }
    if settings.liveness_probe.is_some() {
        container
            .liveness_probe
            .clone_from(&settings.liveness_probe);
    }
    if settings.readiness_probe.is_some() {
        container
            .readiness_probe
            .clone_from(&settings.readiness_probe);
    }
    if settings.lifecycle.is_some() {
        container.lifecycle.clone_from(&settings.lifecycle);
    }
    if settings.security_context.is_some() {
        container
            .security_context
            .clone_from(&settings.security_context);
    }
    if let Some(env_from) = settings.env_from.as_ref().filter(|e| !e.is_empty()) {
        container
            .env_from
            .get_or_insert_with(Vec::new)
            .extend(env_from.iter().cloned());
    }
    let env = container.env.get_or_insert_with(Vec::new);
    for var in settings.env.iter().flatten() {
        upsert_env(env, var.clone());
    }
    let mut set = |name: &str, value: Option<i32>| {
        if let Some(value) = value {
            upsert_env(
                env,
                EnvVar {
                    name: name.to_owned(),
                    value: Some(value.to_string()),
                    ..EnvVar::default()
                },
            );
        }
    };
    set(
        labels::ENV_NICE_ADJUSTMENT,
        settings.nice.as_ref().and_then(|n| n.adjustment),
    );
    set(
        labels::ENV_IONICE_CLASS,
        settings.ionice.as_ref().and_then(|i| i.class),
    );
    set(
        labels::ENV_IONICE_CLASS_DATA,
        settings.ionice.as_ref().and_then(|i| i.class_data),
    );
    if container.env.as_ref().is_some_and(Vec::is_empty) {
        container.env = None;
    }
}

fn upsert_env(env: &mut Vec<EnvVar>, var: EnvVar) {
    match env.iter_mut().find(|e| e.name == var.name) {
        Some(existing) => *existing = var,
        None => env.push(var),
    }
}

/// Replaces the container of the same name in place, or appends it: re-injecting never reorders the
/// user's containers, so applying twice equals applying once.
fn upsert_container(containers: &mut Vec<Container>, container: Container) {
    match containers.iter_mut().find(|c| c.name == container.name) {
        Some(existing) => *existing = container,
        None => containers.push(container),
    }
}

fn upsert_volumes(pod: &mut PodSpec, volumes: Vec<Volume>) {
    let existing = pod.volumes.get_or_insert_with(Vec::new);
    for volume in volumes {
        match existing.iter_mut().find(|v| v.name == volume.name) {
            Some(slot) => *slot = volume,
            None => existing.push(volume),
        }
    }
}

/// Drops the executor volumes once no stash container is left to mount them: the sidecar and the restore
/// init-container share `tmp-dir` and `stash-local`.
fn remove_executor_volumes_if_unused(pod: &mut PodSpec) {
    let in_use = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .any(|c| c.name == labels::CONTAINER_SIDECAR || c.name == labels::CONTAINER_INIT);
    if in_use {
        return;
    }
    if let Some(volumes) = pod.volumes.as_mut() {
        volumes.retain(|v| !EXECUTOR_VOLUMES.contains(&v.name.as_str()));
        if volumes.is_empty() {
            pod.volumes = None;
        }
    }
}

/// The copy of an operator image-pull Secret next to an invoker's executors (§8.3):
/// `<secret>-<lowercase-invoker-kind>-<invoker-name>`.
#[must_use]
pub fn image_pull_secret_name(secret: &str, invoker_kind: &str, invoker_name: &str) -> String {
    valid_name_with_prefix_and_suffix(
        secret,
        &invoker_kind.to_ascii_lowercase(),
        invoker_name,
        MAX_NAME_LENGTH,
    )
}

fn image_pull_secrets(
    settings: &Settings,
    invoker_kind: &str,
    invoker_name: &str,
) -> Vec<LocalObjectReference> {
    settings
        .image_pull_secrets
        .iter()
        .map(|s| LocalObjectReference {
            name: image_pull_secret_name(s, invoker_kind, invoker_name),
        })
        .collect()
}

fn add_image_pull_secrets(pod: &mut PodSpec, secrets: Vec<LocalObjectReference>) {
    if secrets.is_empty() {
        return;
    }
    let existing = pod.image_pull_secrets.get_or_insert_with(Vec::new);
    for secret in secrets {
        if !existing.contains(&secret) {
            existing.push(secret);
        }
    }
}

fn remove_image_pull_secrets(pod: &mut PodSpec, secrets: &[LocalObjectReference]) {
    if let Some(existing) = pod.image_pull_secrets.as_mut() {
        existing.retain(|s| !secrets.contains(s));
        if existing.is_empty() {
            pod.image_pull_secrets = None;
        }
    }
}

/// The names a workload's pods can mount: its pod volumes plus, for a StatefulSet, its claim templates.
fn workload_volume_names(workload: &Workload) -> Vec<String> {
    let mut names: Vec<String> = workload
        .pod_spec()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    if let Workload::StatefulSet(sts) = workload {
        names.extend(
            sts.spec
                .volume_claim_templates
                .iter()
                .flatten()
                .filter_map(|t| t.metadata.name.clone()),
        );
    }
    names
}

/// A problem with `target.volumeMounts` that would make the pod invalid or the backup empty.
#[derive(Debug, PartialEq, Eq)]
enum MountProblem {
    UnknownVolume { index: usize, volume: String },
    ReservedPath { index: usize, mount_path: String },
}

fn check_target_mounts(mounts: &[VolumeMount], workload: &Workload) -> Option<MountProblem> {
    let volumes = workload_volume_names(workload);
    mounts.iter().enumerate().find_map(|(index, m)| {
        if m.mount_path.trim_end_matches('/') == labels::TMP_DIR_MOUNT_PATH {
            Some(MountProblem::ReservedPath {
                index,
                mount_path: m.mount_path.clone(),
            })
        } else if !volumes.contains(&m.name) {
            Some(MountProblem::UnknownVolume {
                index,
                volume: m.name.clone(),
            })
        } else {
            None
        }
    })
}

/// kmodules' `ValidNameWithPrefixNSuffix`: `<prefix>-<name>-<suffix>`, cut in the middle when longer than
/// `max` (first half of the prefix end, second half of the suffix end) and trimmed of `-`.
#[must_use]
pub fn valid_name_with_prefix_and_suffix(
    prefix: &str,
    name: &str,
    suffix: &str,
    max: usize,
) -> String {
    let out = format!("{prefix}-{name}-{suffix}");
    let n = out.len();
    if n <= max {
        return out.trim_matches('-').to_owned();
    }
    let head = floor_char_boundary(&out, max.div_ceil(2));
    let tail = ceil_char_boundary(&out, n - max / 2);
    format!("{}{}", &out[..head], &out[tail..])
        .trim_matches('-')
        .to_owned()
}

/// kmodules' `ValidNameWithSuffix`: `<name>-<suffix>`, keeping the last `max` bytes and trimmed of `-`.
#[must_use]
pub fn valid_name_with_suffix(name: &str, suffix: &str, max: usize) -> String {
    let out = format!("{name}-{suffix}");
    let start = ceil_char_boundary(&out, out.len().saturating_sub(max));
    out[start..].trim_matches('-').to_owned()
}

fn floor_char_boundary(s: &str, mut index: usize) -> usize {
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(s: &str, mut index: usize) -> usize {
    while !s.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// `app.kubernetes.io/managed-by` plus `app.kubernetes.io/component`, the labels every object the operator
/// creates carries (§5.2, §9.1).
fn managed_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::LABEL_COMPONENT.to_owned(), component.to_owned()),
        (
            labels::LABEL_MANAGED_BY.to_owned(),
            labels::MANAGED_BY.to_owned(),
        ),
    ])
}

/// The annotations that remember which invoker a workload carries (§8.2): the invoker's JSON and
/// kind on the workload, the hash of its spec on the pod template (changing it rolls the pods).
pub(crate) struct InvokerAnnotations {
    invoker: &'static str,
    kind: &'static str,
    hash: &'static str,
}

pub(crate) const BACKUP_INVOKER_ANNOTATIONS: InvokerAnnotations = InvokerAnnotations {
    invoker: labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER,
    kind: labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND,
    hash: labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH,
};

pub(crate) const RESTORE_INVOKER_ANNOTATIONS: InvokerAnnotations = InvokerAnnotations {
    invoker: labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER,
    kind: labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_KIND,
    hash: labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH,
};

impl InvokerAnnotations {
    pub(crate) fn invoker_key(&self) -> &'static str {
        self.invoker
    }

    pub(crate) fn record(
        &self,
        workload: &mut Workload,
        applied: String,
        kind: &str,
        hash: String,
    ) {
        workload.set_template_annotation(self.hash, hash);
        workload.set_annotation(self.invoker, applied);
        workload.set_annotation(self.kind, kind.to_owned());
    }

    pub(crate) fn forget(&self, workload: &mut Workload) {
        workload.remove_template_annotation(self.hash);
        workload.remove_annotation(self.invoker);
        workload.remove_annotation(self.kind);
    }

    /// Kind and name of the invoker recorded on `workload`.
    pub(crate) fn recorded<'w>(&self, workload: &'w Workload) -> Option<(&'w str, String)> {
        let kind = workload.annotation(self.kind)?;
        let applied: serde_json::Value =
            serde_json::from_str(workload.annotation(self.invoker)?).ok()?;
        let name = applied.pointer("/metadata/name")?.as_str()?.to_owned();
        Some((kind, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_name_is_joined_with_hyphens() {
        assert_eq!(
            valid_name_with_prefix_and_suffix("stash-sidecar", "deployment", "stash-demo", 63),
            "stash-sidecar-deployment-stash-demo"
        );
    }

    #[test]
    fn a_long_name_keeps_both_ends() {
        let name = "a".repeat(40);
        let out = valid_name_with_prefix_and_suffix("stash-sidecar", "statefulset", &name, 63);
        assert_eq!(out.len(), 63);
        assert!(out.starts_with("stash-sidecar-statefulset-"));
        assert!(out.ends_with(&"a".repeat(31)));
    }

    #[test]
    fn an_empty_middle_part_leaves_a_double_hyphen_only_inside() {
        assert_eq!(
            valid_name_with_prefix_and_suffix("stash-trigger", "", "backup", 52),
            "stash-trigger--backup"
        );
    }

    #[test]
    fn a_long_suffixed_name_keeps_its_end() {
        let name = "b".repeat(60);
        let out = valid_name_with_suffix("stash-trigger", &name, 52);
        assert_eq!(out, "b".repeat(52));
    }

    #[test]
    fn requests_without_limits_are_applied() {
        let mut container = Container::default();
        let settings: ContainerRuntimeSettings =
            serde_json::from_str(r#"{"resources":{"requests":{"memory":"64Mi"}}}"#).unwrap();
        apply_container_runtime_settings(&mut container, &settings);
        let requests = container.resources.unwrap().requests.unwrap();
        assert_eq!(requests["memory"].0, "64Mi");
    }

    #[test]
    fn nice_and_ionice_become_environment_variables() {
        let mut container = Container::default();
        let settings: ContainerRuntimeSettings = serde_json::from_str(
            r#"{"nice":{"adjustment":5},"ionice":{"class":2,"classData":4},"env":[{"name":"A","value":"1"}]}"#,
        )
        .unwrap();
        apply_container_runtime_settings(&mut container, &settings);
        let env: Vec<(String, Option<String>)> = container
            .env
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert_eq!(
            env,
            [
                ("A".to_owned(), Some("1".to_owned())),
                ("NICE_ADJUSTMENT".to_owned(), Some("5".to_owned())),
                ("IONICE_CLASS".to_owned(), Some("2".to_owned())),
                ("IONICE_CLASS_DATA".to_owned(), Some("4".to_owned())),
            ]
        );
    }
}
