//! A table of invalid manifests, each rejected with the field path and a message a user can act on.

use stash_api::validation::{Outcome, Severity, validate_manifests};

const REPO: &str = "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata: {name: r, namespace: demo}\n";
const BC: &str = "apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: bc, namespace: demo}\n";
const RS: &str = "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata: {name: rs, namespace: demo}\n";
const RETAIN: &str = "  retentionPolicy: {name: keep-last-5, keepLast: 5, prune: true}\n";
const DEPLOY: &str = "    ref: {apiVersion: apps/v1, kind: Deployment, name: app}\n    volumeMounts: [{name: data, mountPath: /data}]\n";

fn bc(spec: &str) -> String {
    format!("{BC}spec:\n  repository: {{name: gcs-repo}}\n{spec}")
}

/// (case, manifest, field path, message fragment, fix fragment)
fn cases() -> Vec<(
    &'static str,
    String,
    &'static str,
    &'static str,
    &'static str,
)> {
    vec![
        ("two backends", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    s3: {{endpoint: s3.amazonaws.com, bucket: b}}\n    gcs: {{bucket: b}}\n"),
            "spec.backend", "2 storage providers are set (s3, gcs)", "keep one of `s3`, `gcs`"),
        ("no backend", format!("{REPO}spec:\n  backend: {{storageSecretName: s}}\n"),
            "spec.backend", "no storage provider is set", "set exactly one of `local`"),
        ("local mountPath under /stash", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    local: {{mountPath: /stash/repo, hostPath: {{path: /data}}}}\n"),
            "spec.backend.local.mountPath", "`/stash/repo` is `/stash` or under it", "mount the repository elsewhere"),
        ("local mountPath is /stash", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    local: {{mountPath: /stash, hostPath: {{path: /data}}}}\n"),
            "spec.backend.local.mountPath", "`/stash` is `/stash` or under it", "elsewhere"),
        ("local without volume", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    local: {{mountPath: /safe/data}}\n"),
            "spec.backend.local", "no volume source is set", "persistentVolumeClaim"),
        ("local without mountPath", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    local: {{hostPath: {{path: /data}}}}\n"),
            "spec.backend.local.mountPath", "required field `mountPath` is missing", "add `mountPath`"),
        ("wipeOut on b2", format!("{REPO}spec:\n  wipeOut: true\n  backend:\n    storageSecretName: s\n    b2: {{bucket: b}}\n"),
            "spec.wipeOut", "not supported for the `b2` backend", "wipeOut: false"),
        ("s3 without bucket", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    s3: {{endpoint: s3.amazonaws.com}}\n"),
            "spec.backend.s3.bucket", "required field `bucket` is missing", "add `bucket`"),
        ("bad cron", bc(&format!("  schedule: '*/5 * * *'\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.schedule", "has 4 fields, a cron schedule needs exactly 5", "five space-separated fields"),
        ("cron out of range", bc(&format!("  schedule: '0 25 * * *'\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.schedule", "25 is out of range 0-23", "`*/5 * * * *`"),
        ("missing retentionPolicy", bc(&format!("  schedule: '@daily'\n  target:\n{DEPLOY}    paths: [/data]\n")),
            "spec.retentionPolicy", "required field `retentionPolicy` is missing", "add `retentionPolicy` under `spec`"),
        ("retentionPolicy without prune", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  retentionPolicy: {{name: k, keepLast: 5}}\n")),
            "spec.retentionPolicy.prune", "required field `prune` is missing", "add `prune`"),
        ("prune as a string", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  retentionPolicy: {{name: k, keepLast: 5, prune: 'true'}}\n")),
            "spec.retentionPolicy.prune", "expected true or false, got the string \"true\"", "remove the quotes"),
        ("negative keepLast", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  retentionPolicy: {{name: k, keepLast: -1, prune: true}}\n")),
            "spec.retentionPolicy.keepLast", "-1 is negative", "positive `keepLast`"),
        ("ReplicationController target", bc(&format!("  target:\n    ref: {{apiVersion: v1, kind: ReplicationController, name: app}}\n    paths: [/data]\n{RETAIN}")),
            "spec.target.ref.kind", "`ReplicationController` targets were removed in Stash v0.18", "target the Deployment"),
        ("Pod target", bc(&format!("  target:\n    ref: {{apiVersion: v1, kind: Pod, name: app}}\n    paths: [/data]\n{RETAIN}")),
            "spec.target.ref.kind", "unsupported target kind `Pod`", "Deployment, StatefulSet, DaemonSet"),
        ("lowercase kind", bc(&format!("  target:\n    ref: {{apiVersion: apps/v1, kind: deployment, name: app}}\n    paths: [/data]\n{RETAIN}")),
            "spec.target.ref.kind", "unsupported target kind `deployment`", "write `Deployment`"),
        ("old Deployment apiVersion", bc(&format!("  target:\n    ref: {{apiVersion: extensions/v1beta1, kind: Deployment, name: app}}\n    volumeMounts: [{{name: d, mountPath: /data}}]\n    paths: [/data]\n{RETAIN}")),
            "spec.target.ref.apiVersion", "exact apiVersion `apps/v1`", "set `apiVersion: apps/v1`"),
        ("sidecar without paths", bc(&format!("  target:\n{DEPLOY}{RETAIN}")),
            "spec.target.paths", "no paths to back up", "paths: [/source/data]"),
        ("relative path", bc(&format!("  target:\n{DEPLOY}    paths: [data]\n{RETAIN}")),
            "spec.target.paths[0]", "`data` is not an absolute path", "absolute path"),
        ("misspelled field", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n    path: [/data]\n{RETAIN}")),
            "spec.target.path", "unknown field `path`", "did you mean `paths`?"),
        ("lowercase driver", bc(&format!("  driver: restic\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.driver", "unsupported value `restic`", "write `Restic`"),
        ("bad timeOut", bc(&format!("  timeOut: 1d\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.timeOut", "unknown unit `d`", "Go duration"),
        ("bad retry delay", bc(&format!("  retryConfig: {{maxRetry: 2, delay: '10'}}\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.retryConfig.delay", "missing unit", "Go duration"),
        ("no repository", format!("{BC}spec:\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}"),
            "spec.repository", "the Restic driver needs a Repository", "spec.repository.name"),
        ("PVC without task", bc(&format!("  target:\n    ref: {{apiVersion: v1, kind: PersistentVolumeClaim, name: data}}\n{RETAIN}")),
            "spec.task.name", "needs a Task", "task.name: pvc-backup"),
        ("hook without action", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  hooks:\n    preBackup: {{containerName: app}}\n{RETAIN}")),
            "spec.hooks.preBackup", "the hook has no action", "exec"),
        ("bad hook policy", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  hooks:\n    postBackup: {{executionPolicy: Sometimes, exec: {{command: [sh]}}}}\n{RETAIN}")),
            "spec.hooks.postBackup.executionPolicy", "unsupported value `Sometimes`", "Always, OnSuccess, OnFailure"),
        ("bad tempDir medium", bc(&format!("  target:\n{DEPLOY}    paths: [/data]\n  tempDir: {{medium: Disk}}\n{RETAIN}")),
            "spec.tempDir.medium", "unsupported emptyDir medium `Disk`", "Memory"),
        ("int32 overflow", bc(&format!("  backupHistoryLimit: 9999999999\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}")),
            "spec.backupHistoryLimit", "does not fit in a 32-bit integer", "between"),
        ("snapshots and paths in one rule", format!("{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{snapshots: [latest], paths: [/data]}}\n"),
            "spec.target.rules[0]", "`snapshots` and `paths` are both set", "keep `snapshots` or `paths`"),
        ("two catch-all rules", format!("{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{paths: [/data]}}\n    - {{paths: [/other]}}\n"),
            "spec.target.rules[1].targetHosts", "all have empty `targetHosts`", "give all but one"),
        ("host in two rules", format!("{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{targetHosts: [host-0], paths: [/data]}}\n    - {{targetHosts: [host-0], paths: [/other]}}\n"),
            "spec.target.rules[1].targetHosts", "host `host-0` is already listed in rule 0", "remove `host-0`"),
        ("VolumeSnapshotter restore without templates", format!("{RS}spec:\n  driver: VolumeSnapshotter\n  target:\n    replicas: 3\n"),
            "spec.target.volumeClaimTemplates", "none is set", "dataSource"),
        ("deprecated rules also invalid", format!("{RS}spec:\n  repository: {{name: r}}\n  task: {{name: pvc-restore}}\n  target:\n    ref: {{apiVersion: v1, kind: PersistentVolumeClaim, name: d}}\n  rules:\n  - {{snapshots: [latest], paths: [/x]}}\n"),
            "spec.rules[0]", "`snapshots` and `paths` are both set", "keep `snapshots` or `paths`"),
        ("BackupSession invoker kind", "apiVersion: stash.appscode.com/v1beta1\nkind: BackupSession\nmetadata: {name: s, namespace: demo}\nspec:\n  invoker: {kind: Deployment, name: app}\n".to_owned(),
            "spec.invoker.kind", "unsupported invoker kind `Deployment`", "`BackupConfiguration` or `BackupBatch`"),
        ("BackupSession without invoker", "apiVersion: stash.appscode.com/v1beta1\nkind: BackupSession\nmetadata: {name: s, namespace: demo}\nspec: {}\n".to_owned(),
            "spec.invoker", "does not name its invoker", "spec.invoker"),
        ("legacy Restic kind", "apiVersion: stash.appscode.com/v1alpha1\nkind: Restic\nmetadata: {name: r}\nspec: {}\n".to_owned(),
            "kind", "`Restic` (stash.appscode.com/v1alpha1) was removed in Stash v0.18", "Repository plus a BackupConfiguration"),
        ("Repository in v1beta1", "apiVersion: stash.appscode.com/v1beta1\nkind: Repository\nmetadata: {name: r}\nspec: {}\n".to_owned(),
            "kind", "not served as stash.appscode.com/v1beta1", "stash.appscode.com/v1alpha1"),
        ("missing name", "apiVersion: stash.appscode.com/v1beta1\nkind: Task\nmetadata: {}\nspec: {steps: [{name: update-status}]}\n".to_owned(),
            "metadata.name", "`metadata.name` is missing", "metadata.generateName"),
        ("bad name", "apiVersion: stash.appscode.com/v1beta1\nkind: Task\nmetadata: {name: My_Task}\nspec: {steps: [{name: update-status}]}\n".to_owned(),
            "metadata.name", "not a valid object name", "lowercase letters"),
        ("task without steps", "apiVersion: stash.appscode.com/v1beta1\nkind: Task\nmetadata: {name: t}\nspec: {}\n".to_owned(),
            "spec.steps", "at least one step", "spec.steps[].name"),
        ("function without image", "apiVersion: stash.appscode.com/v1beta1\nkind: Function\nmetadata: {name: f}\nspec: {args: [x]}\n".to_owned(),
            "spec.image", "required field `image` is missing", "add `image`"),
        ("param value not a string", "apiVersion: stash.appscode.com/v1beta1\nkind: Task\nmetadata: {name: t}\nspec: {steps: [{name: f, params: [{name: n, value: 5}]}]}\n".to_owned(),
            "spec.steps[0].params[0].value", "expected a string, got the number 5", "quote the value"),
        ("no apiVersion", "kind: Repository\nmetadata: {name: r}\n".to_owned(),
            "apiVersion", "`apiVersion` is missing", "apiVersion: stash.appscode.com/v1beta1"),
        ("YAML syntax", format!("{REPO}spec:\n  backend: [unclosed\n"),
            "", "cannot parse the document at line", "fix the YAML syntax"),
        ("BackupBatch without members", format!("apiVersion: stash.appscode.com/v1beta1\nkind: BackupBatch\nmetadata: {{name: b, namespace: demo}}\nspec:\n  repository: {{name: r}}\n{RETAIN}"),
            "spec.members", "at least one member", "spec.members[].target"),
        ("usage policy selector missing", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    gcs: {{bucket: b}}\n  usagePolicy:\n    allowedNamespaces: {{from: Selector}}\n"),
            "spec.usagePolicy.allowedNamespaces.selector", "needs a namespace selector", "matchLabels"),
    ]
}

#[test]
fn each_invalid_manifest_is_rejected_with_its_field_message_and_fix() {
    let mut failures = Vec::new();
    for (case, yaml, field, message, fix) in cases() {
        let v = validate_manifests("case.yaml", &yaml);
        assert!(
            v.has_errors(),
            "{case}: expected an error, got {:?}",
            v.diagnostics().collect::<Vec<_>>()
        );
        let errors: Vec<_> = v
            .diagnostics()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        let hit = errors
            .iter()
            .any(|d| d.field == field && d.message.contains(message) && d.fix.contains(fix));
        if !hit {
            failures.push(format!(
                "{case}: want field `{field}`, message ~ `{message}`, fix ~ `{fix}`; got:\n  {}",
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
        for d in &errors {
            assert_eq!(d.file, "case.yaml");
            assert_eq!(d.document, 1, "{case}");
            assert!(!d.fix.is_empty(), "{case}: every error has a fix");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn obsolete_directories_field_is_a_warning_that_names_its_replacement() {
    let v = validate_manifests(
        "old.yaml",
        &bc(&format!(
            "  target:\n{DEPLOY}    directories: [/data]\n{RETAIN}"
        )),
    );
    let w: Vec<_> = v
        .diagnostics()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert!(
        w.iter().any(|d| d.field == "spec.target.directories"
            && d.fix
                .contains("rename `spec.target.directories` to `spec.target.paths`")),
        "{w:?}"
    );
    // The data would be pruned, so the sidecar has nothing to back up: still an error.
    assert!(
        v.diagnostics()
            .any(|d| d.severity == Severity::Error && d.field == "spec.target.paths")
    );
}

#[test]
fn a_stash_v0_17_replicaset_target_is_accepted_with_a_deprecation_warning_naming_the_deployment_fix() {
    let v = validate_manifests(
        "v0.17.yaml",
        &bc(&format!(
            "  schedule: '@daily'\n  target:\n    ref: {{apiVersion: apps/v1, kind: ReplicaSet, name: app}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n    paths: [/data]\n{RETAIN}"
        )),
    );
    assert_eq!(v.error_count(), 0, "{:?}", v.diagnostics().collect::<Vec<_>>());
    let w: Vec<_> = v
        .diagnostics()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert!(
        w.iter().any(|d| d.field == "spec.target.ref.kind"
            && d.message.contains("deprecated since Stash v0.18")
            && d.fix.contains("target the Deployment")),
        "{w:?}"
    );
}

#[test]
fn multi_document_files_report_each_document_by_index_and_skip_other_kinds() {
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\nspec: {{}}\n---\n{REPO}spec:\n  backend:\n    storageSecretName: s\n    gcs: {{bucket: b}}\n---\n{}\n---\n",
        bc(&format!(
            "  schedule: 'nope'\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}"
        ))
    );
    let v = validate_manifests("all.yaml", &text);
    let outcomes: Vec<_> = v
        .documents
        .iter()
        .map(|d| (d.index, d.outcome, d.has_errors()))
        .collect();
    assert_eq!(
        outcomes[..3],
        [
            (1, Outcome::Skipped, false),
            (2, Outcome::Checked, false),
            (3, Outcome::Checked, true)
        ]
    );
    let e: Vec<_> = v.diagnostics().collect();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (
            e[0].document,
            e[0].field.as_str(),
            e[0].kind.as_deref(),
            e[0].name.as_deref()
        ),
        (
            3,
            "spec.schedule",
            Some("BackupConfiguration"),
            Some("demo/bc")
        )
    );
    assert!(
        e[0].to_string().starts_with(
            "error: all.yaml (document 3, BackupConfiguration demo/bc): spec.schedule: "
        ),
        "{}",
        e[0]
    );
}

#[test]
fn valid_variants_are_accepted() {
    for (case, yaml) in [
        ("cross-namespace repository", bc(&format!("  schedule: '@every 6h'\n  target:\n{DEPLOY}    paths: [/data/sub]\n{RETAIN}")).replace("{name: gcs-repo}", "{name: gcs-repo, namespace: backup}")),
        ("VolumeSnapshotter backup without repository", format!("{BC}spec:\n  driver: VolumeSnapshotter\n  schedule: '0 */6 * * *'\n  target:\n    ref: {{apiVersion: apps/v1, kind: StatefulSet, name: db}}\n    replicas: 1\n    snapshotClassName: csi\n{RETAIN}")),
        ("DeploymentConfig", bc(&format!("  target:\n    ref: {{apiVersion: apps.openshift.io/v1, kind: DeploymentConfig, name: app}}\n    volumeMounts: [{{name: d, mountPath: /data}}]\n    paths: [/data]\n{RETAIN}"))),
        ("rules with target hosts", format!("{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{targetHosts: [host-1], sourceHost: host-0, paths: [/data]}}\n    - {{paths: [/data]}}\n")),
        ("repository usable from all namespaces", format!("{REPO}spec:\n  backend:\n    storageSecretName: s\n    rest: {{url: 'https://rest:8000/repo'}}\n  usagePolicy:\n    allowedNamespaces: {{from: All}}\n")),
        ("JSON document", r#"{"apiVersion":"stash.appscode.com/v1beta1","kind":"Task","metadata":{"name":"t"},"spec":{"steps":[{"name":"update-status"}]}}"#.to_owned()),
    ] {
        let v = validate_manifests("ok.yaml", &yaml);
        assert!(!v.has_errors(), "{case}: {:?}", v.diagnostics().map(ToString::to_string).collect::<Vec<_>>());
    }
}
