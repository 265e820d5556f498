//! Every real Stash manifest from the docs (`tests/fixtures/stash-examples/`, a copy of
//! `../shared/stash-examples/`) parses into our types, validates, and round-trips without losing a field.

use std::path::{Path, PathBuf};

use pretty_assertions::assert_eq;
use serde::Deserialize;
use serde_json::Value;
use stash_api::validation::{Outcome, Severity, StashObject, validate_manifests};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/stash-examples")
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures directory exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 28,
        "expected the 28 Stash examples, found {}",
        files.len()
    );
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

#[test]
fn fixture_copy_matches_the_shared_stash_examples() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/stash-examples");
    if !shared.is_dir() {
        // CI clones main with shared/ beside it; a bare checkout has only the copy.
        eprintln!(
            "{} not present; checking the in-repo copy only",
            shared.display()
        );
        return;
    }
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        let copy = fixtures().join(path.file_name().unwrap());
        assert!(
            copy.exists(),
            "{} is missing from tests/fixtures/stash-examples; copy it there",
            path.display()
        );
        assert_eq!(
            read(&copy),
            read(&path),
            "{} differs from the shared example",
            copy.display()
        );
    }
}

#[test]
fn every_stash_example_parses_and_validates_without_errors() {
    for path in example_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let v = validate_manifests(&name, &read(&path));
        assert_eq!(v.documents.len(), 1, "{name}: one document per file");
        let doc = &v.documents[0];
        assert_eq!(doc.outcome, Outcome::Checked, "{name}");
        let errors: Vec<String> = v
            .diagnostics()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect();
        assert!(
            errors.is_empty(),
            "{name} has errors:\n{}",
            errors.join("\n")
        );
        assert!(doc.object.is_some(), "{name}: parsed into a typed object");
    }
}

#[test]
fn every_stash_example_round_trips_with_no_field_lost() {
    // Kubernetes types in these examples (Quantity, IntOrString, Time) keep their text as is, so the
    // re-serialized JSON equals the input exactly; nothing needs normalizing.
    for path in example_files() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = read(&path);
        let input = docs(&text).remove(0);
        let v = validate_manifests(&name, &text);
        let object = v.documents[0]
            .object
            .as_ref()
            .unwrap_or_else(|| panic!("{name} parsed"));
        assert_eq!(object.to_value().unwrap(), input, "{name} round-trip");
    }
}

fn warnings_of(file: &str) -> Vec<(String, String)> {
    let v = validate_manifests(file, &read(&fixtures().join(file)));
    v.diagnostics()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| (d.field.clone(), d.message.clone()))
        .collect()
}

#[test]
fn instant_backupsession_with_only_the_obsolete_label_is_accepted_with_a_warning_naming_the_invoker_labels()
 {
    let v = validate_manifests(
        "backupsession-instant-manual.yaml",
        &read(&fixtures().join("backupsession-instant-manual.yaml")),
    );
    assert!(!v.has_errors());
    let w: Vec<_> = v
        .diagnostics()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].field, "metadata.labels");
    assert!(
        w[0].message
            .contains("stash.appscode.com/backup-configuration"),
        "{}",
        w[0].message
    );
    assert!(
        w[0].fix
            .contains("stash.appscode.com/invoker-type: BackupConfiguration"),
        "{}",
        w[0].fix
    );
    assert!(
        w[0].fix
            .contains("stash.appscode.com/invoker-name: deployment-backup"),
        "{}",
        w[0].fix
    );
}

#[test]
fn deprecated_restoresession_spec_rules_are_accepted_with_a_warning_and_migrated_to_target_rules() {
    let file = "restoresession-appbinding-posthook-deprecated-spec-rules.yaml";
    let v = validate_manifests(file, &read(&fixtures().join(file)));
    assert!(!v.has_errors());
    assert_eq!(
        warnings_of(file)
            .iter()
            .filter(|(f, _)| f == "spec.rules")
            .count(),
        1,
        "{:?}",
        warnings_of(file)
    );
    let doc = &v.documents[0];
    let migrated = doc.migrated.as_ref().expect("migrated RestoreSession");
    assert_eq!(migrated.spec.rules, None);
    let rules = migrated
        .spec
        .target
        .as_ref()
        .unwrap()
        .rules
        .as_ref()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].snapshots.as_deref(),
        Some(&["latest".to_owned()][..])
    );
    // The parsed object itself is untouched (what the user wrote).
    let Some(StashObject::RestoreSession(rs)) = &doc.object else {
        panic!("RestoreSession")
    };
    assert!(rs.spec.rules.is_some());
}

#[test]
fn restoresessions_already_using_target_rules_are_not_migrated() {
    let file = "restoresession-deployment.yaml";
    let v = validate_manifests(file, &read(&fixtures().join(file)));
    assert!(v.documents[0].migrated.is_none());
    assert!(warnings_of(file).is_empty(), "{:?}", warnings_of(file));
}

#[test]
fn snapshot_is_accepted_with_a_read_only_warning() {
    let w = warnings_of("snapshot-aggregated-api.yaml");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].1.contains("read-only"), "{w:?}");
}

#[test]
fn backupbatch_appbinding_with_apps_v1_api_version_is_accepted_with_a_warning() {
    let w = warnings_of("backupbatch.yaml");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, "spec.members[0].target.ref.apiVersion");
    assert!(w[0].1.contains("appcatalog.appscode.com/v1alpha1"), "{w:?}");
}

#[test]
fn the_plain_workload_examples_have_no_warnings() {
    for file in [
        "backupconfiguration-deployment.yaml",
        "backupconfiguration-statefulset.yaml",
        "backupconfiguration-daemonset.yaml",
        "backupconfiguration-pvc-job-model.yaml",
        "backupconfiguration-deployment-full-featured.yaml",
        "repository-gcs.yaml",
        "repository-local-pvc.yaml",
        "restoresession-statefulset.yaml",
        "restoresession-pvc-job-model.yaml",
        "restoresession-statefulset-volumesnapshotter-vct.yaml",
        "task-postgres-backup.yaml",
        "function-postgres-backup.yaml",
        "backupblueprint-workload.yaml",
    ] {
        assert!(
            warnings_of(file).is_empty(),
            "{file}: {:?}",
            warnings_of(file)
        );
    }
}
