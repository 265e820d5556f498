//! Checks the schema cannot express: cron schedules, retention rules, target kinds, backends, restore
//! rules, hooks, durations, deprecated shapes. Pure functions over the typed objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::VolumeMount;

use super::{Issue, StashObject, cron, duration};
use crate::common::{
    Backend, BackupHooks, BackupTarget, Driver, EmptyDirSettings, Handler, RestoreHooks,
    RestoreTarget, RetentionPolicy, RetryConfig, Rule, TargetRef, TaskRef,
};
use crate::labels::{
    GROUP, LABEL_BACKUP_CONFIGURATION_OBSOLETE, LABEL_INVOKER_NAME, LABEL_INVOKER_TYPE,
    STASH_BINARY_DIR,
};
use crate::v1alpha1::{FromNamespaces, UsagePolicy};

#[allow(clippy::too_many_lines)] // one arm per kind reads best as a table
pub fn check(object: &StashObject, out: &mut Vec<Issue>) {
    match object {
        StashObject::Repository(r) => {
            backend(&r.spec.backend, "spec.backend", false, out);
            wipe_out(r.spec.wipe_out, &r.spec.backend, out);
            usage_policy(r.spec.usage_policy.as_ref(), out);
        }
        StashObject::BackupConfiguration(bc) => {
            let s = &bc.spec;
            schedule(s.schedule.as_deref(), "spec.schedule", out);
            let driver = s.driver();
            repository_needed(driver, s.repository.is_some(), out);
            match &s.target {
                Some(t) => backup_target(t, driver, s.task.as_ref(), "spec.target", out),
                None if driver == Driver::VolumeSnapshotter => out.push(Issue::error(
                    "spec.target",
                    "the VolumeSnapshotter driver needs a target",
                    "set `spec.target.ref` to the workload or PVC to snapshot",
                )),
                None => {}
            }
            retention(&s.retention_policy, "spec.retentionPolicy", out);
            invoker_common(
                s.backup_history_limit,
                s.time_out.as_deref(),
                s.retry_config.as_ref(),
                out,
            );
            temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
            backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
        }
        StashObject::BackupBatch(bb) => {
            let s = &bb.spec;
            schedule(s.schedule.as_deref(), "spec.schedule", out);
            let driver = s.driver();
            repository_needed(driver, s.repository.is_some(), out);
            let members = s.members.as_deref().unwrap_or_default();
            if members.is_empty() {
                out.push(Issue::error(
                    "spec.members",
                    "a BackupBatch needs at least one member",
                    "add `spec.members[].target`",
                ));
            }
            for (i, m) in members.iter().enumerate() {
                let p = format!("spec.members[{i}]");
                match &m.target {
                    Some(t) => {
                        backup_target(t, driver, m.task.as_ref(), &format!("{p}.target"), out);
                    }
                    None => out.push(Issue::error(
                        &format!("{p}.target"),
                        "the member has no target",
                        "set `target.ref` of the member",
                    )),
                }
                temp_dir(m.temp_dir.as_ref(), &format!("{p}.tempDir"), out);
                backup_hooks(m.hooks.as_ref(), &format!("{p}.hooks"), out);
            }
            retention(&s.retention_policy, "spec.retentionPolicy", out);
            invoker_common(
                s.backup_history_limit,
                s.time_out.as_deref(),
                s.retry_config.as_ref(),
                out,
            );
            backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
        }
        StashObject::BackupBlueprint(bp) => {
            let s = &bp.spec;
            backend(&s.backend, "spec.backend", true, out);
            wipe_out(s.wipe_out, &s.backend, out);
            usage_policy(s.usage_policy.as_ref(), out);
            schedule(s.schedule.as_deref(), "spec.schedule", out);
            retention(&s.retention_policy, "spec.retentionPolicy", out);
            invoker_common(
                s.backup_history_limit,
                s.time_out.as_deref(),
                s.retry_config.as_ref(),
                out,
            );
            temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
            backup_hooks(s.hooks.as_ref(), "spec.hooks", out);
        }
        StashObject::BackupSession(bs) => backup_session(bs, out),
        StashObject::RestoreSession(rs) => {
            let s = &rs.spec;
            let driver = s.driver();
            restore_repository(driver, s.repository.is_some(), out);
            if let Some(rules) = &s.rules {
                let target_rules = s
                    .target
                    .as_ref()
                    .and_then(|t| t.rules.as_ref())
                    .is_some_and(|r| !r.is_empty());
                if target_rules {
                    out.push(Issue::warning(
                        "spec.rules",
                        "`spec.rules` is deprecated and is ignored because `spec.target.rules` is also set",
                        "delete `spec.rules` (or merge it into `spec.target.rules`)",
                    ));
                } else {
                    out.push(Issue::warning(
                        "spec.rules",
                        "`spec.rules` is deprecated; it is moved to `spec.target.rules` on admission",
                        "move the rules under `spec.target.rules`",
                    ));
                }
                restore_rules(rules, "spec.rules", out);
            }
            match &s.target {
                Some(t) => restore_target(t, driver, s.task.as_ref(), s.rules.is_some(), "spec.target", out),
                None => out.push(Issue::error(
                    "spec.target",
                    "a RestoreSession needs a target",
                    "set `spec.target.ref` (or, for VolumeSnapshotter, `spec.target.volumeClaimTemplates`)",
                )),
            }
            timeout(s.time_out.as_deref(), "spec.timeOut", out);
            temp_dir(s.temp_dir.as_ref(), "spec.tempDir", out);
            restore_hooks(s.hooks.as_ref(), "spec.hooks", out);
        }
        StashObject::RestoreBatch(rb) => {
            let s = &rb.spec;
            let driver = s.driver();
            restore_repository(driver, s.repository.is_some(), out);
            let members = s.members.as_deref().unwrap_or_default();
            if members.is_empty() {
                out.push(Issue::error(
                    "spec.members",
                    "a RestoreBatch needs at least one member",
                    "add `spec.members[].target`",
                ));
            }
            for (i, m) in members.iter().enumerate() {
                let p = format!("spec.members[{i}]");
                match &m.target {
                    Some(t) => restore_target(
                        t,
                        driver,
                        m.task.as_ref(),
                        false,
                        &format!("{p}.target"),
                        out,
                    ),
                    None => out.push(Issue::error(
                        &format!("{p}.target"),
                        "the member has no target",
                        "set `target.ref` of the member",
                    )),
                }
                temp_dir(m.temp_dir.as_ref(), &format!("{p}.tempDir"), out);
                restore_hooks(m.hooks.as_ref(), &format!("{p}.hooks"), out);
            }
            timeout(s.time_out.as_deref(), "spec.timeOut", out);
            restore_hooks(s.hooks.as_ref(), "spec.hooks", out);
        }
        StashObject::Function(f) => {
            if f.spec.image.trim().is_empty() {
                out.push(Issue::error(
                    "spec.image",
                    "the Function has no image",
                    "set `spec.image`, e.g. `appscode/stash:v0.24.0`",
                ));
            }
        }
        StashObject::Task(t) => {
            let steps = t.spec.steps.as_deref().unwrap_or_default();
            if steps.is_empty() {
                out.push(Issue::error(
                    "spec.steps",
                    "a Task needs at least one step",
                    "add `spec.steps[].name` naming a Function",
                ));
            }
            for (i, step) in steps.iter().enumerate() {
                if step.name.trim().is_empty() {
                    out.push(Issue::error(
                        &format!("spec.steps[{i}].name"),
                        "the step has no Function name",
                        "set it to the name of a Function",
                    ));
                }
            }
        }
        StashObject::Snapshot(_) => {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// Backends

#[allow(clippy::too_many_lines)] // one block per provider
fn backend(b: &Backend, path: &str, blueprint: bool, out: &mut Vec<Issue>) {
    let providers = b.providers();
    match providers.len() {
        0 => out.push(Issue::error(
            path,
            "no storage provider is set",
            "set exactly one of `local`, `s3`, `gcs`, `azure`, `swift`, `b2`, `rest`",
        )),
        1 => {}
        _ => {
            let names: Vec<&str> = providers.iter().map(|p| p.as_str()).collect();
            out.push(Issue::error(
                path,
                format!(
                    "{} storage providers are set ({}); a Repository has exactly one backend",
                    names.len(),
                    names.join(", ")
                ),
                format!(
                    "keep one of `{}` and move the others to their own Repository",
                    names.join("`, `")
                ),
            ));
        }
    }
    if b.storage_secret_name
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        out.push(Issue::warning(
            &format!("{path}.storageSecretName"),
            "no storage Secret is named, but every backend needs `RESTIC_PASSWORD` from it",
            "set `storageSecretName` to a Secret in the Repository's namespace holding RESTIC_PASSWORD (and the provider's credentials)",
        ));
    }
    if let Some(local) = &b.local {
        let p = format!("{path}.local");
        let mp = local.mount_path.trim_end_matches('/');
        if !local.mount_path.starts_with('/') {
            out.push(Issue::error(
                &format!("{p}.mountPath"),
                format!("`{}` is not an absolute path", local.mount_path),
                "use an absolute directory such as `/safe/data`",
            ));
        } else if mp.is_empty() {
            out.push(Issue::error(
                &format!("{p}.mountPath"),
                "`/` cannot be the repository directory",
                "use a dedicated directory such as `/safe/data`",
            ));
        } else if mp == STASH_BINARY_DIR || local.mount_path.starts_with("/stash/") {
            out.push(Issue::error(
                &format!("{p}.mountPath"),
                format!(
                    "`{}` is `/stash` or under it, where the stash binary lives",
                    local.mount_path
                ),
                "mount the repository elsewhere, e.g. `/safe/data`",
            ));
        }
        let sources = local.volume_source.set_sources();
        match sources.len() {
            0 => out.push(Issue::error(
                &p,
                "no volume source is set for the local backend",
                "add one volume source next to mountPath, e.g. `persistentVolumeClaim: {claimName: repo-pvc}`, `hostPath: {path: /data}` or `nfs: {server: ..., path: ...}`",
            )),
            1 => {}
            _ => out.push(Issue::error(
                &p,
                format!("several volume sources are set ({})", sources.join(", ")),
                "keep exactly one volume source",
            )),
        }
    }
    if let Some(s3) = &b.s3 {
        non_empty(
            &s3.endpoint,
            &format!("{path}.s3.endpoint"),
            "set the S3 server, e.g. `s3.amazonaws.com` or `https://minio.example:9000`",
            out,
        );
        non_empty(
            &s3.bucket,
            &format!("{path}.s3.bucket"),
            "set the bucket name",
            out,
        );
    }
    if let Some(gcs) = &b.gcs {
        non_empty(
            &gcs.bucket,
            &format!("{path}.gcs.bucket"),
            "set the bucket name",
            out,
        );
        max_conn(
            gcs.max_connections,
            &format!("{path}.gcs.maxConnections"),
            out,
        );
    }
    if let Some(az) = &b.azure {
        non_empty(
            &az.container,
            &format!("{path}.azure.container"),
            "set the blob container name",
            out,
        );
        max_conn(
            az.max_connections,
            &format!("{path}.azure.maxConnections"),
            out,
        );
    }
    if let Some(sw) = &b.swift {
        non_empty(
            &sw.container,
            &format!("{path}.swift.container"),
            "set the Swift container name",
            out,
        );
    }
    if let Some(b2) = &b.b2 {
        non_empty(
            &b2.bucket,
            &format!("{path}.b2.bucket"),
            "set the bucket name",
            out,
        );
        max_conn(
            b2.max_connections,
            &format!("{path}.b2.maxConnections"),
            out,
        );
    }
    if let Some(rest) = &b.rest {
        let url = rest.url.as_deref().unwrap_or_default();
        if url.trim().is_empty() {
            out.push(Issue::error(
                &format!("{path}.rest.url"),
                "the REST server URL is empty",
                "set `url`, e.g. `http://rest-server.demo.svc:8000/my-repo`",
            ));
        } else if !(url.starts_with("http://") || url.starts_with("https://")) {
            out.push(Issue::error(
                &format!("{path}.rest.url"),
                format!("`{url}` is not an http(s) URL"),
                "write the URL with its scheme, e.g. `http://rest-server.demo.svc:8000/my-repo`",
            ));
        }
    }
    let _ = blueprint; // prefixes of blueprints may carry ${TARGET_*} variables: nothing else differs
}

fn non_empty(v: &str, path: &str, fix: &str, out: &mut Vec<Issue>) {
    if v.trim().is_empty() {
        out.push(Issue::error(path, "the value is empty", fix));
    }
}

fn max_conn(v: Option<i64>, path: &str, out: &mut Vec<Issue>) {
    if let Some(n) = v
        && n < 0
    {
        out.push(Issue::error(
            path,
            format!("{n} is negative"),
            "use 0 (restic's default) or a positive number of connections",
        ));
    }
}

fn wipe_out(wipe: Option<bool>, b: &Backend, out: &mut Vec<Issue>) {
    if wipe == Some(true) {
        for (set, name) in [(b.local.is_some(), "local"), (b.b2.is_some(), "b2")] {
            if set {
                out.push(Issue::error(
                    "spec.wipeOut",
                    format!("`wipeOut: true` is not supported for the `{name}` backend"),
                    "set `wipeOut: false` and delete the data by hand",
                ));
            }
        }
    }
}

fn usage_policy(up: Option<&UsagePolicy>, out: &mut Vec<Issue>) {
    let Some(an) = up.and_then(|u| u.allowed_namespaces.as_ref()) else {
        return;
    };
    let path = "spec.usagePolicy.allowedNamespaces";
    match (an.from.unwrap_or_default(), an.selector.is_some()) {
        (FromNamespaces::Selector, false) => out.push(Issue::error(
            &format!("{path}.selector"),
            "`from: Selector` needs a namespace selector",
            "add `selector.matchLabels` (labels of the namespaces allowed to use this Repository)",
        )),
        (FromNamespaces::Same | FromNamespaces::All, true) => out.push(Issue::warning(
            &format!("{path}.selector"),
            "`selector` is ignored unless `from` is `Selector`",
            "set `from: Selector` or remove `selector`",
        )),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------------------
// Invokers

fn schedule(s: Option<&str>, path: &str, out: &mut Vec<Issue>) {
    if let Some(s) = s
        && let Err(e) = cron::check(s)
    {
        out.push(Issue::error(path, e.message, e.fix));
    }
}

fn repository_needed(driver: Driver, has_repo: bool, out: &mut Vec<Issue>) {
    match (driver, has_repo) {
        (Driver::Restic, false) => out.push(Issue::error(
            "spec.repository",
            "the Restic driver needs a Repository",
            "set `spec.repository.name` to a Repository (and `namespace` if it lives in another namespace)",
        )),
        (Driver::VolumeSnapshotter, true) => out.push(Issue::warning(
            "spec.repository",
            "the VolumeSnapshotter driver does not use a Repository",
            "remove `spec.repository`",
        )),
        _ => {}
    }
}

fn restore_repository(driver: Driver, has_repo: bool, out: &mut Vec<Issue>) {
    repository_needed(driver, has_repo, out);
}

fn invoker_common(
    history: Option<i32>,
    time_out: Option<&str>,
    retry: Option<&RetryConfig>,
    out: &mut Vec<Issue>,
) {
    if let Some(n) = history
        && n < 0
    {
        out.push(Issue::error(
            "spec.backupHistoryLimit",
            format!("{n} is negative"),
            "use 0 or more (default 1)",
        ));
    }
    timeout(time_out, "spec.timeOut", out);
    if let Some(r) = retry {
        if let Some(n) = r.max_retry
            && n < 0
        {
            out.push(Issue::error(
                "spec.retryConfig.maxRetry",
                format!("{n} is negative"),
                "use 0 or more (default 1)",
            ));
        }
        if let Some(d) = &r.delay {
            go_duration(d, "spec.retryConfig.delay", out);
        }
    }
}

fn timeout(t: Option<&str>, path: &str, out: &mut Vec<Issue>) {
    if let Some(t) = t {
        go_duration(t, path, out);
    }
}

fn go_duration(d: &str, path: &str, out: &mut Vec<Issue>) {
    match duration::parse(d) {
        Ok(n) if n < 0 => out.push(Issue::error(
            path,
            format!("`{d}` is negative"),
            "use a positive Go duration such as `30m` or `1h30m`",
        )),
        Ok(_) => {}
        Err(e) => out.push(Issue::error(
            path,
            e,
            "use a Go duration such as `30m`, `2h` or `1h30m`",
        )),
    }
}

fn retention(r: &RetentionPolicy, path: &str, out: &mut Vec<Issue>) {
    if r.name.trim().is_empty() {
        out.push(Issue::error(
            &format!("{path}.name"),
            "the retention policy has no name",
            "set `name`, e.g. `keep-last-5`",
        ));
    }
    for (field, n) in r.keep_counts() {
        if let Some(n) = n
            && n < 0
        {
            out.push(Issue::error(
                &format!("{path}.{field}"),
                format!("{n} is negative"),
                format!("use a positive `{field}` or remove it"),
            ));
        }
    }
    if let Some(tags) = &r.keep_tags {
        for (i, t) in tags.iter().enumerate() {
            if t.trim().is_empty() {
                out.push(Issue::error(
                    &format!("{path}.keepTags[{i}]"),
                    "the tag is empty",
                    "remove the empty entry",
                ));
            }
        }
    }
    if !r.has_keep_rule() {
        out.push(Issue::warning(
            path,
            "no keep rule is set (keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepTags), so no snapshot is ever forgotten",
            "add a keep rule, e.g. `keepLast: 5`",
        ));
    }
    if r.dry_run == Some(true) {
        out.push(Issue::warning(
            &format!("{path}.dryRun"),
            "`dryRun: true` only reports what would be forgotten; nothing is removed",
            "set `dryRun: false` once the policy looks right",
        ));
    }
}

fn temp_dir(t: Option<&EmptyDirSettings>, path: &str, out: &mut Vec<Issue>) {
    if let Some(m) = t.and_then(|t| t.medium.as_deref())
        && !(m.is_empty() || m == "Memory" || m == "HugePages" || m.starts_with("HugePages-"))
    {
        out.push(Issue::error(
            &format!("{path}.medium"),
            format!("unsupported emptyDir medium `{m}`"),
            "use `Memory`, or leave `medium` empty for node disk",
        ));
    }
}

fn handler(h: &Handler, path: &str, out: &mut Vec<Issue>) {
    if !h.has_action() {
        out.push(Issue::error(
            path,
            "the hook has no action",
            "set one of `exec`, `httpGet`, `httpPost`, `tcpSocket`",
        ));
    }
    if let Some(exec) = &h.exec
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        out.push(Issue::error(
            &format!("{path}.exec.command"),
            "the exec hook has no command",
            "set `command`, e.g. `[\"/bin/sh\", \"-c\", \"echo hello\"]`",
        ));
    }
}

fn backup_hooks(h: Option<&BackupHooks>, path: &str, out: &mut Vec<Issue>) {
    let Some(h) = h else { return };
    if let Some(pre) = &h.pre_backup {
        handler(pre, &format!("{path}.preBackup"), out);
    }
    if let Some(post) = &h.post_backup {
        handler(&post.handler, &format!("{path}.postBackup"), out);
    }
}

fn restore_hooks(h: Option<&RestoreHooks>, path: &str, out: &mut Vec<Issue>) {
    let Some(h) = h else { return };
    if let Some(pre) = &h.pre_restore {
        handler(pre, &format!("{path}.preRestore"), out);
    }
    if let Some(post) = &h.post_restore {
        handler(&post.handler, &format!("{path}.postRestore"), out);
    }
}

// ---------------------------------------------------------------------------------------------------------
// Targets

/// What a target kind is to Stash.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TargetClass {
    /// Backed up by a sidecar / restored by an init-container (Restic, no task).
    Workload,
    Pvc,
    AppBinding,
}

/// `(kind, apiVersion Stash matches, class)`.
const TARGET_KINDS: [(&str, &str, TargetClass); 6] = [
    ("Deployment", "apps/v1", TargetClass::Workload),
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
            "ReplicaSet" | "ReplicationController" => (
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

fn backup_target(
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

fn restore_target(
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
    restore_rules(rules, &format!("{path}.rules"), out);
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

fn restore_rules(rules: &[Rule], path: &str, out: &mut Vec<Issue>) {
    let mut catch_all = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let hosts = r.target_hosts();
        if hosts.is_empty() {
            catch_all.push(i);
        }
        for h in hosts {
            if let Some(prev) = seen.insert(h.as_str(), i)
                && prev != i
            {
                out.push(Issue::error(
                    &format!("{p}.targetHosts"),
                    format!("host `{h}` is already listed in rule {prev}; a host may appear in only one rule"),
                    format!("remove `{h}` from one of the rules"),
                ));
            }
        }
        let snaps = r.snapshots.as_ref().is_some_and(|s| !s.is_empty());
        let paths = r.paths.as_ref().is_some_and(|s| !s.is_empty());
        if snaps && paths {
            out.push(Issue::error(
                &p,
                "`snapshots` and `paths` are both set; a rule restores either explicit snapshots or the latest snapshot of paths",
                "keep `snapshots` or `paths`, and split the other into its own rule",
            ));
        }
        if !snaps && !paths {
            out.push(Issue::warning(
                &p,
                "the rule has neither `snapshots` nor `paths`, so it restores nothing",
                "add `paths: [...]` or `snapshots: [latest]`",
            ));
        }
        for (j, rp) in r.paths.iter().flatten().enumerate() {
            if !rp.starts_with('/') {
                out.push(Issue::error(
                    &format!("{p}.paths[{j}]"),
                    format!("`{rp}` is not an absolute path"),
                    "use the absolute path that was backed up",
                ));
            }
        }
    }
    if catch_all.len() > 1 {
        out.push(Issue::error(
            &format!("{path}[{}].targetHosts", catch_all[1]),
            format!("rules {catch_all:?} all have empty `targetHosts`; at most one rule may apply to every host"),
            "give all but one of them `targetHosts`",
        ));
    }
}

// ---------------------------------------------------------------------------------------------------------
// BackupSession

fn backup_session(bs: &crate::v1beta1::BackupSession, out: &mut Vec<Issue>) {
    let s = &bs.spec;
    let labels = bs.metadata.labels.clone().unwrap_or_default();
    if let Some(old) = &s.backup_configuration {
        out.push(Issue::warning(
            "spec.backupConfiguration",
            "`spec.backupConfiguration` is the v0.9.0-rc.0…rc.2 shape",
            format!("replace it by `spec.invoker: {{apiGroup: stash.appscode.com, kind: BackupConfiguration, name: {}}}`", old.name),
        ));
    }
    let invoker = match (&s.invoker, &s.backup_configuration) {
        (Some(inv), _) => {
            if !matches!(inv.kind.as_str(), "BackupConfiguration" | "BackupBatch") {
                out.push(Issue::error(
                    "spec.invoker.kind",
                    format!("unsupported invoker kind `{}`", inv.kind),
                    "use `BackupConfiguration` or `BackupBatch`",
                ));
            }
            if let Some(g) = &inv.api_group
                && g != GROUP
            {
                out.push(Issue::error(
                    "spec.invoker.apiGroup",
                    format!("unsupported apiGroup `{g}`"),
                    "use `stash.appscode.com` or leave it empty",
                ));
            }
            if inv.name.trim().is_empty() {
                out.push(Issue::error(
                    "spec.invoker.name",
                    "the invoker name is empty",
                    "set the name of the BackupConfiguration/BackupBatch",
                ));
            }
            Some((inv.kind.clone(), inv.name.clone()))
        }
        (None, Some(old)) => Some(("BackupConfiguration".to_owned(), old.name.clone())),
        (None, None) => {
            out.push(Issue::error(
                "spec.invoker",
                "the BackupSession does not name its invoker",
                "set `spec.invoker: {apiGroup: stash.appscode.com, kind: BackupConfiguration, name: <name>}`",
            ));
            None
        }
    };
    if let Some(n) = s.retry_left
        && n < 0
    {
        out.push(Issue::error(
            "spec.retryLeft",
            format!("{n} is negative"),
            "use 0 or more",
        ));
    }
    let Some((kind, name)) = invoker else { return };
    let has_type = labels.contains_key(LABEL_INVOKER_TYPE);
    let has_name = labels.contains_key(LABEL_INVOKER_NAME);
    if has_type && has_name {
        for (key, want) in [(LABEL_INVOKER_TYPE, &kind), (LABEL_INVOKER_NAME, &name)] {
            if labels.get(key).is_some_and(|v| v != want) {
                out.push(Issue::error(
                    &format!("metadata.labels.{key}"),
                    format!(
                        "label `{key}` is `{}` but spec.invoker says `{want}`",
                        labels[key]
                    ),
                    format!("set the label to `{want}`"),
                ));
            }
        }
    } else {
        let obsolete = if labels.contains_key(LABEL_BACKUP_CONFIGURATION_OBSOLETE) {
            format!(
                " (the obsolete label `{LABEL_BACKUP_CONFIGURATION_OBSOLETE}` is no longer used)"
            )
        } else {
            String::new()
        };
        out.push(Issue::warning(
            "metadata.labels",
            format!("the session lacks the invoker labels{obsolete}, so a workload's stash sidecar never picks it up"),
            format!("add labels `{LABEL_INVOKER_TYPE}: {kind}` and `{LABEL_INVOKER_NAME}: {name}`"),
        ));
    }
}
