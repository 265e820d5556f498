//! What an invoker backs up or restores into: the target kind and apiVersion Stash matches on, paths,
//! volume mounts, and what each driver needs from the target.

use k8s_openapi::api::core::v1::VolumeMount;

use super::session;
use crate::common::{BackupTarget, Driver, RestoreTarget, TargetRef, TaskRef};
use crate::validation::Issue;

/// What a target kind is to Stash.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TargetClass {
    /// Backed up by a sidecar / restored by an init-container (Restic, no task).
    Workload,
    Pvc,
    AppBinding,
}

/// `(kind, apiVersion Stash matches, class)`.
const TARGET_KINDS: [(&str, &str, TargetClass); 7] = [
    ("Deployment", "apps/v1", TargetClass::Workload),
    // Stash v0.9-v0.17 manifests (§8.1): still backed up by a sidecar, with a deprecation warning.
    ("ReplicaSet", "apps/v1", TargetClass::Workload),
    ("StatefulSet", "apps/v1", TargetClass::Workload),
    ("DaemonSet", "apps/v1", TargetClass::Workload),
    (
        "DeploymentConfig",
        "apps.openshift.io/v1",
        TargetClass::Workload,
    ),
    ("PersistentVolumeClaim", "v1", TargetClass::Pvc),
    (
        "AppBinding",
        "appcatalog.appscode.com/v1alpha1",
        TargetClass::AppBinding,
    ),
];

fn target_ref(
    r: &TargetRef,
    driver: Driver,
    path: &str,
    out: &mut Vec<Issue>,
) -> Option<TargetClass> {
    let p = format!("{path}.ref");
    if r.name.trim().is_empty() {
        out.push(Issue::error(
            &format!("{p}.name"),
            "the target name is empty",
            "set the name of the object to back up or restore",
        ));
    }
    let Some(&(kind, api_version, class)) = TARGET_KINDS.iter().find(|(k, _, _)| *k == r.kind)
    else {
        let (message, fix) = match r.kind.as_str() {
            "ReplicationController" => (
                format!("`{}` targets were removed in Stash v0.18", r.kind),
                "target the Deployment (or StatefulSet/DaemonSet) that owns the pods instead".to_owned(),
            ),
            other => match TARGET_KINDS.iter().find(|(k, _, _)| k.eq_ignore_ascii_case(other)) {
                Some((k, _, _)) => (format!("unsupported target kind `{other}`"), format!("kinds are case-sensitive: write `{k}`")),
                None => (
                    format!("unsupported target kind `{other}`"),
                    "use one of Deployment, StatefulSet, DaemonSet, DeploymentConfig, PersistentVolumeClaim, AppBinding".to_owned(),
                ),
            },
        };
        out.push(Issue::error(&format!("{p}.kind"), message, fix));
        return None;
    };
    let given = r.api_version.as_deref().unwrap_or_default();
    if given != api_version {
        let shown = if given.is_empty() {
            "empty".to_owned()
        } else {
            format!("`{given}`")
        };
        if class == TargetClass::Workload {
            out.push(Issue::error(
                &format!("{p}.apiVersion"),
                format!("apiVersion is {shown}, but Stash matches the {kind} by its exact apiVersion `{api_version}`, so the stash container would never be injected"),
                format!("set `apiVersion: {api_version}`"),
            ));
        } else {
            out.push(Issue::warning(
                &format!("{p}.apiVersion"),
                format!("apiVersion is {shown}; {kind} is served as `{api_version}`"),
                format!("set `apiVersion: {api_version}`"),
            ));
        }
    }
    if kind == "ReplicaSet" {
        out.push(Issue::warning(
            &format!("{p}.kind"),
            "`ReplicaSet` targets are deprecated since Stash v0.18; the sidecar is injected into the ReplicaSet's pod template and its pods are restarted as Stash v0.17 did, and a ReplicaSet owned by a Deployment is ignored",
            "target the Deployment (or StatefulSet/DaemonSet) that owns the pods instead",
        ));
    }
    if driver == Driver::VolumeSnapshotter && class == TargetClass::AppBinding {
        out.push(Issue::error(
            &format!("{p}.kind"),
            "the VolumeSnapshotter driver cannot snapshot an AppBinding",
            "use the Restic driver with a database Task, or target the workload/PVC",
        ));
    }
    Some(class)
}

fn has_task(t: Option<&TaskRef>) -> bool {
    t.and_then(|t| t.name.as_deref())
        .is_some_and(|n| !n.trim().is_empty())
}

pub(super) fn backup_target(
    t: &BackupTarget,
    driver: Driver,
    task: Option<&TaskRef>,
    path: &str,
    out: &mut Vec<Issue>,
) {
    let class = target_ref(&t.reference, driver, path, out);
    let paths = t.paths.as_deref().unwrap_or_default();
    for (i, p) in paths.iter().enumerate() {
        if !p.starts_with('/') {
            out.push(Issue::error(
                &format!("{path}.paths[{i}]"),
                format!("`{p}` is not an absolute path"),
                "use the absolute path as seen inside the pod, e.g. `/source/data`",
            ));
        }
    }
    let mounts = t.volume_mounts.as_deref().unwrap_or_default();
    volume_mounts(mounts, &format!("{path}.volumeMounts"), out);
    match driver {
        Driver::Restic => {
            if class == Some(TargetClass::Workload) && !has_task(task) {
                if paths.is_empty() {
                    out.push(Issue::error(
                        &format!("{path}.paths"),
                        "no paths to back up: the stash sidecar backs up exactly the listed paths",
                        "list the absolute directories to back up, e.g. `paths: [/source/data]`",
                    ));
                }
                if mounts.is_empty() {
                    out.push(Issue::warning(
                        &format!("{path}.volumeMounts"),
                        "no volumeMounts: the stash sidecar only sees volumes mounted into it",
                        "mount the pod volume that holds the paths, e.g. `volumeMounts: [{name: source-data, mountPath: /source/data}]`",
                    ));
                } else {
                    for (i, p) in paths.iter().enumerate() {
                        if !mounts.iter().any(|m| under(p, &m.mount_path)) {
                            out.push(Issue::warning(
                                &format!("{path}.paths[{i}]"),
                                format!("`{p}` is not under any of the target's volumeMounts, so the sidecar would back up its own filesystem"),
                                "add a volumeMount whose mountPath contains this path",
                            ));
                        }
                    }
                }
            }
            if class == Some(TargetClass::Pvc) && !has_task(task) {
                out.push(Issue::error(
                    "spec.task.name",
                    "a PersistentVolumeClaim target is backed up by a job and needs a Task",
                    "set `task.name: pvc-backup`",
                ));
            }
            if t.snapshot_class_name.is_some() || t.replicas.is_some() {
                out.push(Issue::warning(
                    path,
                    "`snapshotClassName`/`replicas` are only used by the VolumeSnapshotter driver",
                    "remove them, or set `driver: VolumeSnapshotter`",
                ));
            }
        }
        Driver::VolumeSnapshotter => {
            if t.exclude.is_some() || t.args.is_some() {
                out.push(Issue::warning(
                    path,
                    "`exclude`/`args` are restic options and are ignored by the VolumeSnapshotter driver",
                    "remove them, or use `driver: Restic`",
                ));
            }
        }
    }
    if let Some(n) = t.replicas
        && n < 0
    {
        out.push(Issue::error(
            &format!("{path}.replicas"),
            format!("{n} is negative"),
            "use 0 or more",
        ));
    }
}

pub(super) fn restore_target(
    t: &RestoreTarget,
    driver: Driver,
    task: Option<&TaskRef>,
    deprecated_rules: bool,
    path: &str,
    out: &mut Vec<Issue>,
) {
    let class = if let Some(r) = &t.reference {
        target_ref(r, driver, path, out)
    } else {
        if driver == Driver::Restic {
            out.push(Issue::error(
                &format!("{path}.ref"),
                "the restore target has no `ref`",
                "set `ref` to the workload, PVC or AppBinding to restore into",
            ));
        }
        None
    };
    volume_mounts(
        t.volume_mounts.as_deref().unwrap_or_default(),
        &format!("{path}.volumeMounts"),
        out,
    );
    let rules = t.rules.as_deref().unwrap_or_default();
    session::restore_rules(rules, &format!("{path}.rules"), out);
    let templates = t.volume_claim_templates.as_deref().unwrap_or_default();
    match driver {
        Driver::VolumeSnapshotter => {
            if templates.is_empty() {
                out.push(Issue::error(
                    &format!("{path}.volumeClaimTemplates"),
                    "the VolumeSnapshotter driver restores by creating PVCs from volumeClaimTemplates, and none is set",
                    "add `volumeClaimTemplates` whose `spec.dataSource` names the VolumeSnapshot",
                ));
            }
        }
        Driver::Restic => {
            if class == Some(TargetClass::Workload)
                && !has_task(task)
                && rules.is_empty()
                && !deprecated_rules
            {
                out.push(Issue::warning(
                    &format!("{path}.rules"),
                    "no restore rules: the init-container restores nothing",
                    "add a rule, e.g. `rules: [{paths: [/source/data]}]` or `rules: [{snapshots: [latest]}]`",
                ));
            }
            if class == Some(TargetClass::Pvc) && !has_task(task) {
                out.push(Issue::error(
                    "spec.task.name",
                    "a PersistentVolumeClaim target is restored by a job and needs a Task",
                    "set `task.name: pvc-restore`",
                ));
            }
        }
    }
    for (i, tpl) in templates.iter().enumerate() {
        if tpl.name().is_none_or(str::is_empty) {
            out.push(Issue::error(
                &format!("{path}.volumeClaimTemplates[{i}].metadata.name"),
                "the PVC template has no name",
                "set `metadata.name`; it may contain `${POD_ORDINAL}`",
            ));
        }
    }
    if let Some(n) = t.replicas
        && n < 0
    {
        out.push(Issue::error(
            &format!("{path}.replicas"),
            format!("{n} is negative"),
            "use 0 or more",
        ));
    }
}

fn volume_mounts(mounts: &[VolumeMount], path: &str, out: &mut Vec<Issue>) {
    for (i, m) in mounts.iter().enumerate() {
        if !m.mount_path.starts_with('/') {
            out.push(Issue::error(
                &format!("{path}[{i}].mountPath"),
                format!("`{}` is not an absolute path", m.mount_path),
                "use an absolute path",
            ));
        }
    }
}

fn under(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    dir.is_empty()
        || path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}
