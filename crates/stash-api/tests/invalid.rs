//! A table of invalid manifests, each rejected with the field path and a message a user can act on.

use stash_api::validation::{Outcome, Severity, validate_manifests};

#[path = "support/invalid_manifests.rs"]
mod invalid_manifests;

use invalid_manifests::{BC, DEPLOY, REPO, RETAIN, RS, bc, cases};

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
fn a_stash_v0_17_replicaset_target_is_accepted_with_a_deprecation_warning_naming_the_deployment_fix()
 {
    let v = validate_manifests(
        "v0.17.yaml",
        &bc(&format!(
            "  schedule: '@daily'\n  target:\n    ref: {{apiVersion: apps/v1, kind: ReplicaSet, name: app}}\n    volumeMounts: [{{name: data, mountPath: /data}}]\n    paths: [/data]\n{RETAIN}"
        )),
    );
    assert_eq!(
        v.error_count(),
        0,
        "{:?}",
        v.diagnostics().collect::<Vec<_>>()
    );
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
