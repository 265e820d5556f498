//! `validate_stash_object`: the rules and messages of `stash validate`, plus RestoreSession immutability.

use serde_json::Value;
use stash_operator::webhook::validate_stash_object;

use crate::{request, review_body};

const REPO: &str = "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata: {name: r, namespace: demo}\n";
const BC: &str = "apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: bc, namespace: demo}\n";
const RS: &str = "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata: {name: rs, namespace: demo}\n";
const RETAIN: &str = "  retentionPolicy: {name: keep-last-5, keepLast: 5, prune: true}\n";
const DEPLOY: &str = "    ref: {apiVersion: apps/v1, kind: Deployment, name: app}\n    volumeMounts: [{name: data, mountPath: /data}]\n";

fn kind_of(object: &Value) -> (&'static str, &'static str, &'static str, &'static str) {
    match object["kind"].as_str().unwrap() {
        "Repository" => (
            "stash.appscode.com",
            "v1alpha1",
            "Repository",
            "repositories",
        ),
        "BackupConfiguration" => (
            "stash.appscode.com",
            "v1beta1",
            "BackupConfiguration",
            "backupconfigurations",
        ),
        "RestoreSession" => (
            "stash.appscode.com",
            "v1beta1",
            "RestoreSession",
            "restoresessions",
        ),
        other => panic!("no test kind {other}"),
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

fn decide(
    operation: &str,
    object: &Value,
    old: Option<&Value>,
) -> kube::core::admission::AdmissionResponse {
    let body = review_body(
        "admission.k8s.io/v1",
        operation,
        kind_of(object),
        object,
        old,
    );
    validate_stash_object(&request(&body))
}

/// Rows of stash-api's `tests/invalid.rs`: (manifest, field, message fragment, fix fragment).
fn invalid() -> Vec<(String, &'static str, &'static str, &'static str)> {
    vec![
        (
            format!(
                "{REPO}spec:\n  backend:\n    storageSecretName: s\n    s3: {{endpoint: s3.amazonaws.com, bucket: b}}\n    gcs: {{bucket: b}}\n"
            ),
            "spec.backend",
            "2 storage providers are set (s3, gcs)",
            "keep one of `s3`, `gcs`",
        ),
        (
            format!(
                "{BC}spec:\n  repository: {{name: gcs-repo}}\n  schedule: '*/5 * * *'\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}"
            ),
            "spec.schedule",
            "has 4 fields, a cron schedule needs exactly 5",
            "five space-separated fields",
        ),
        (
            format!("{BC}spec:\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}"),
            "spec.repository",
            "the Restic driver needs a Repository",
            "spec.repository.name",
        ),
        (
            format!(
                "{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{snapshots: [latest], paths: [/data]}}\n"
            ),
            "spec.target.rules[0]",
            "`snapshots` and `paths` are both set",
            "keep `snapshots` or `paths`",
        ),
    ]
}

#[test]
fn invalid_manifests_are_refused_with_the_field_and_the_fix_of_stash_validate() {
    for (manifest, field, message, fix) in invalid() {
        for operation in ["CREATE", "UPDATE"] {
            let object = yaml(&manifest);
            let response = decide(operation, &object, Some(&object));
            assert!(!response.allowed, "{operation} of {manifest} was allowed");
            let status = &response.result.message;
            assert!(
                status.contains(&format!("{field}: ")) && status.contains(message),
                "{status}"
            );
            assert!(status.contains("fix: ") && status.contains(fix), "{status}");
        }
    }
}

#[test]
fn a_valid_backup_configuration_as_the_api_server_sends_it_is_allowed() {
    let mut object = yaml(&format!(
        "{BC}spec:\n  repository: {{name: gcs-repo}}\n  schedule: '*/5 * * * *'\n  target:\n{DEPLOY}    paths: [/data]\n{RETAIN}"
    ));
    object["metadata"]["uid"] = "u".into();
    object["metadata"]["generation"] = 1.into();
    object["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z".into();
    object["metadata"]["managedFields"] =
        serde_json::json!([{"manager": "kubectl", "operation": "Update"}]);
    object["status"] = serde_json::json!({"phase": "Ready"});
    let response = decide("CREATE", &object, None);
    assert!(response.allowed, "{}", response.result.message);
    assert_eq!(response.warnings, None);
}

#[test]
fn a_restore_session_spec_is_immutable_but_its_metadata_is_not() {
    let old = yaml(&format!(
        "{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}    rules:\n    - {{paths: [/data]}}\n"
    ));
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = serde_json::json!({"team": "a"});
    assert!(decide("UPDATE", &relabelled, Some(&old)).allowed);

    let mut changed = old.clone();
    changed["spec"]["repository"]["name"] = "other".into();
    let response = decide("UPDATE", &changed, Some(&old));
    assert!(!response.allowed);
    assert!(
        response.result.message.contains("spec: ")
            && response.result.message.contains("immutable")
            && response.result.message.contains("fix: "),
        "{}",
        response.result.message
    );
    assert!(decide("CREATE", &changed, None).allowed);
}

#[test]
fn deprecated_restore_session_spec_rules_are_allowed_with_a_warning() {
    let object = yaml(&format!(
        "{RS}spec:\n  repository: {{name: r}}\n  target:\n{DEPLOY}  rules:\n  - {{paths: [/data]}}\n"
    ));
    let response = decide("CREATE", &object, None);
    assert!(response.allowed, "{}", response.result.message);
    let warnings = response.warnings.unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w.starts_with("spec.rules: ")),
        "{warnings:?}"
    );
}
