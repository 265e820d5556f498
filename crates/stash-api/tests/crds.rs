//! The generated CRDs: committed under `deploy/crds/` (the snapshot, checked for drift here), structural,
//! and with Stash's names, scopes, subresources and printer columns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use pretty_assertions::assert_eq;
use stash_api::crd;

const REGENERATE: &str =
    "run `cargo run -p stash-cli -- crd --output-dir deploy/crds` and commit the result";

fn deploy_crds() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

#[test]
fn committed_crds_match_the_types() {
    let dir = deploy_crds();
    let mut expected = BTreeSet::new();
    for c in crd::all() {
        let name = crd::file_name(&c);
        let path = dir.join(&name);
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("deploy/crds/{name} cannot be read ({e}); {REGENERATE}"));
        let generated = crd::to_yaml(&c).unwrap();
        assert!(
            committed == generated,
            "deploy/crds/{name} is out of date with the types in stash-api; {REGENERATE}"
        );
        expected.insert(name);
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("yaml"))
        })
        .collect();
    let stale: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "deploy/crds has files no type generates: {stale:?}; delete them or {REGENERATE}"
    );
}

/// (plural, kind, version, scope, shortNames, categories, status subresource, printer columns)
type Expect = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    bool,
    &'static [(&'static str, &'static str, &'static str)],
);

const AGE: (&str, &str, &str) = ("Age", "date", ".metadata.creationTimestamp");
const EXPECTED: [Expect; 9] = [
    (
        "repositories",
        "Repository",
        "v1alpha1",
        "Namespaced",
        &["repo"],
        &["stash", "appscode"],
        true,
        &[
            ("Integrity", "boolean", ".status.integrity"),
            ("Size", "string", ".status.totalSize"),
            ("Snapshot-Count", "integer", ".status.snapshotCount"),
            ("Last-Successful-Backup", "date", ".status.lastBackupTime"),
            AGE,
        ],
    ),
    (
        "backupconfigurations",
        "BackupConfiguration",
        "v1beta1",
        "Namespaced",
        &["bc"],
        &["stash", "appscode", "all"],
        true,
        &[
            ("Task", "string", ".spec.task.name"),
            ("Schedule", "string", ".spec.schedule"),
            ("Paused", "boolean", ".spec.paused"),
            ("Phase", "string", ".status.phase"),
            AGE,
        ],
    ),
    (
        "backupsessions",
        "BackupSession",
        "v1beta1",
        "Namespaced",
        &[],
        &["stash", "appscode", "all"],
        true,
        &[
            ("Invoker-Type", "string", ".spec.invoker.kind"),
            ("Invoker-Name", "string", ".spec.invoker.name"),
            ("Phase", "string", ".status.phase"),
            ("Duration", "string", ".status.sessionDuration"),
            AGE,
        ],
    ),
    (
        "restoresessions",
        "RestoreSession",
        "v1beta1",
        "Namespaced",
        &["restore"],
        &["stash", "appscode", "all"],
        true,
        &[
            ("Repository", "string", ".spec.repository.name"),
            ("Phase", "string", ".status.phase"),
            ("Duration", "string", ".status.sessionDuration"),
            AGE,
        ],
    ),
    (
        "backupbatches",
        "BackupBatch",
        "v1beta1",
        "Namespaced",
        &[],
        &["stash", "appscode", "all"],
        true,
        &[
            ("Schedule", "string", ".spec.schedule"),
            ("Paused", "boolean", ".spec.paused"),
            ("Phase", "string", ".status.phase"),
            AGE,
        ],
    ),
    (
        "restorebatches",
        "RestoreBatch",
        "v1beta1",
        "Namespaced",
        &[],
        &["stash", "appscode", "all"],
        true,
        &[
            ("Repository", "string", ".spec.repository.name"),
            ("Phase", "string", ".status.phase"),
            ("Duration", "string", ".status.sessionDuration"),
            AGE,
        ],
    ),
    (
        "backupblueprints",
        "BackupBlueprint",
        "v1beta1",
        "Cluster",
        &["bb"],
        &["stash", "appscode"],
        false,
        &[
            ("Task", "string", ".spec.task.name"),
            ("Schedule", "string", ".spec.schedule"),
            AGE,
        ],
    ),
    (
        "functions",
        "Function",
        "v1beta1",
        "Cluster",
        &["fn"],
        &["stash", "appscode"],
        false,
        &[AGE],
    ),
    (
        "tasks",
        "Task",
        "v1beta1",
        "Cluster",
        &["task"],
        &["stash", "appscode"],
        false,
        &[AGE],
    ),
];

fn find(plural: &str) -> CustomResourceDefinition {
    crd::all()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD for {plural}"))
}

#[test]
fn crds_have_stash_names_scopes_subresources_and_printer_columns() {
    assert_eq!(crd::all().len(), EXPECTED.len());
    for (plural, kind, version, scope, short, categories, status, columns) in EXPECTED {
        let c = find(plural);
        assert_eq!(
            c.metadata.name.as_deref(),
            Some(format!("{plural}.stash.appscode.com").as_str())
        );
        assert_eq!(c.spec.group, "stash.appscode.com");
        assert_eq!(c.spec.names.kind, kind);
        assert_eq!(c.spec.scope, scope, "{kind} scope");
        assert_eq!(
            c.spec.names.short_names.clone().unwrap_or_default(),
            short.to_vec(),
            "{kind} shortNames"
        );
        assert_eq!(
            c.spec.names.categories.clone().unwrap_or_default(),
            categories.to_vec(),
            "{kind} categories"
        );
        assert_eq!(c.spec.versions.len(), 1);
        let v = &c.spec.versions[0];
        assert_eq!(v.name, version);
        assert!(v.served && v.storage);
        let has_status = v.subresources.as_ref().is_some_and(|s| s.status.is_some());
        assert_eq!(has_status, status, "{kind} status subresource");
        let got: Vec<(String, String, String)> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|col| (col.name.clone(), col.type_.clone(), col.json_path.clone()))
            .collect();
        let want: Vec<(String, String, String)> = columns
            .iter()
            .map(|(n, t, p)| ((*n).to_owned(), (*t).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(got, want, "{kind} printer columns");
    }
}

/// The rules the API server applies to `apiextensions.k8s.io/v1` schemas: every node has a type (or is
/// int-or-string / preserve-unknown-fields), and no value validation (anyOf/oneOf/allOf) carries types.
fn assert_structural(s: &JSONSchemaProps, path: &str) {
    let typed = s.type_.is_some()
        || s.x_kubernetes_int_or_string == Some(true)
        || s.x_kubernetes_preserve_unknown_fields == Some(true);
    assert!(typed, "{path}: no type");
    for list in [&s.any_of, &s.one_of, &s.all_of].into_iter().flatten() {
        for alt in list {
            assert!(
                alt.type_.is_none() && alt.properties.is_none(),
                "{path}: typed anyOf/oneOf/allOf branch"
            );
        }
    }
    if let Some(values) = &s.enum_ {
        assert!(
            values.iter().all(|v| !v.0.is_null()),
            "{path}: null in enum"
        );
    }
    if let (Some(ty), Some(d)) = (&s.type_, &s.default) {
        let ok = match ty.as_str() {
            "string" => d.0.is_string(),
            "integer" => d.0.is_i64(),
            "boolean" => d.0.is_boolean(),
            _ => true,
        };
        assert!(ok, "{path}: default {:?} is not a {ty}", d.0);
    }
    for (k, child) in s.properties.iter().flatten() {
        assert_structural(child, &format!("{path}.{k}"));
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = &s.items {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(JSONSchemaPropsOrBool::Schema(add)) = &s.additional_properties {
        assert_structural(add, &format!("{path}{{}}"));
    }
}

#[test]
fn crd_schemas_are_structural() {
    for c in crd::all() {
        let schema = c.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap();
        assert_structural(schema, &c.spec.names.kind);
    }
}

fn spec_schema(plural: &str) -> JSONSchemaProps {
    let c = find(plural);
    let root = c.spec.versions[0]
        .schema
        .clone()
        .unwrap()
        .open_api_v3_schema
        .unwrap();
    root.properties.unwrap()["spec"].clone()
}

fn at(s: &JSONSchemaProps, path: &[&str]) -> JSONSchemaProps {
    let mut cur = s.clone();
    for p in path {
        cur = cur
            .properties
            .as_ref()
            .unwrap_or_else(|| panic!("no properties before {p}"))[*p]
            .clone();
    }
    cur
}

#[test]
fn crd_schemas_require_what_stash_requires_and_default_what_stash_defaults() {
    let bc = spec_schema("backupconfigurations");
    assert_eq!(
        bc.required.as_deref(),
        Some(&["retentionPolicy".to_owned()][..])
    );
    let rp = at(&bc, &["retentionPolicy"]);
    let mut req = rp.required.clone().unwrap();
    req.sort();
    assert_eq!(req, vec!["name".to_owned(), "prune".to_owned()]);
    assert_eq!(at(&bc, &["driver"]).default.unwrap().0, "Restic");
    assert_eq!(at(&bc, &["backupHistoryLimit"]).default.unwrap().0, 1);
    assert_eq!(at(&bc, &["retryConfig", "maxRetry"]).default.unwrap().0, 1);
    assert_eq!(
        at(&bc, &["hooks", "postBackup", "executionPolicy"])
            .default
            .unwrap()
            .0,
        "Always"
    );
    let enum_values: Vec<_> = at(&bc, &["driver"])
        .enum_
        .unwrap()
        .into_iter()
        .map(|v| v.0.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(enum_values, ["Restic", "VolumeSnapshotter"]);
    assert_eq!(
        at(&spec_schema("backupbatches"), &["executionOrder"])
            .default
            .unwrap()
            .0,
        "Parallel"
    );
    // local backend: VolumeSource inlined next to mountPath (required).
    let local = at(&spec_schema("repositories"), &["backend", "local"]);
    assert!(local.required.unwrap().contains(&"mountPath".to_owned()));
    for source in [
        "hostPath",
        "persistentVolumeClaim",
        "nfs",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "azureDisk",
        "storageos",
        "downwardAPI",
        "scaleIO",
    ] {
        assert!(
            local.properties.as_ref().unwrap().contains_key(source),
            "local backend lacks {source}"
        );
    }
    let s3 = at(&spec_schema("repositories"), &["backend", "s3"]);
    let mut req = s3.required.unwrap();
    req.sort();
    assert_eq!(req, ["bucket", "endpoint"]);
    assert!(s3.properties.unwrap().contains_key("insecureTLS"));
}
