//! Black-box tests of `stash validate` and `stash crd`: run the built binary, check output and exit code.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stash(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stash"))
        .args(args)
        .output()
        .expect("run stash")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../stash-api/tests/fixtures/stash-examples")
}

const BAD_BC: &str = "apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata: {name: bc, namespace: demo}
spec:
  repository: {name: gcs-repo}
  schedule: '*/5 * * *'
  target:
    ref: {apiVersion: apps/v1, kind: Deployment, name: app}
    volumeMounts: [{name: data, mountPath: /data}]
    paths: [/data]
  retentionPolicy: {name: keep-last-5, keepLast: 5, prune: true}
";

#[test]
fn validate_accepts_every_stash_example_directory_with_exit_0_and_reports_warnings() {
    let o = stash(&["validate", "-f", examples().to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "ok: 28 documents in 28 files: 28 valid, 0 invalid, 0 skipped; 0 errors, 4 warnings"
        ),
        "{out}"
    );
    assert!(
        out.contains("warning: ") && out.contains("spec.rules: `spec.rules` is deprecated"),
        "{out}"
    );
}

#[test]
fn validate_rejects_a_bad_schedule_naming_file_document_field_and_fix_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bc.yaml");
    std::fs::write(&file, BAD_BC).unwrap();
    let o = stash(&["validate", "-f", file.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("error: "))
        .expect("an error line");
    assert!(
        line.contains(&format!(
            "{} (document 1, BackupConfiguration demo/bc): spec.schedule:",
            file.display()
        )),
        "{line}"
    );
    assert!(
        line.contains("has 4 fields") && line.contains("fix: use five space-separated fields"),
        "{line}"
    );
    assert!(
        out.contains("invalid: 1 documents in 1 files: 0 valid, 1 invalid"),
        "{out}"
    );
}

#[test]
fn validate_takes_several_files_and_directories_recursively_including_yml_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(nested.join("task.yml"), "apiVersion: stash.appscode.com/v1beta1\nkind: Task\nmetadata: {name: t}\nspec: {steps: [{name: update-status}]}\n").unwrap();
    std::fs::write(dir.path().join("fn.json"), r#"{"apiVersion":"stash.appscode.com/v1beta1","kind":"Function","metadata":{"name":"f"},"spec":{"image":"appscode/stash:v0.24.0"}}"#).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    let repo = examples().join("repository-gcs.yaml");
    let o = stash(&[
        "validate",
        "-f",
        dir.path().to_str().unwrap(),
        "-f",
        repo.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("ok: 3 documents in 3 files: 3 valid"), "{out}");
}

#[test]
fn validate_reports_a_missing_file_by_name_and_exits_1() {
    let o = stash(&["validate", "-f", "/definitely/not/here.yaml"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("error: /definitely/not/here.yaml: cannot read `/definitely/not/here.yaml`"),
        "{out}"
    );
}

#[test]
fn validate_json_output_lists_documents_and_diagnostics_for_ci() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    let deprecated = std::fs::read_to_string(
        examples().join("restoresession-appbinding-posthook-deprecated-spec-rules.yaml"),
    )
    .unwrap();
    std::fs::write(&file, format!("{deprecated}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app}}\n---\n{BAD_BC}")).unwrap();
    let o = stash(&["validate", "--json", "-f", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["valid"], false);
    assert_eq!(v["summary"]["documents"], 3);
    assert_eq!(v["summary"]["skipped"], 1);
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["warnings"], 1);
    let statuses: Vec<_> = v["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["valid", "skipped", "invalid"]);
    let diags = v["diagnostics"].as_array().unwrap();
    let err = diags.iter().find(|d| d["severity"] == "error").unwrap();
    assert_eq!(err["document"], 3);
    assert_eq!(err["field"], "spec.schedule");
    assert_eq!(err["kind"], "BackupConfiguration");
    assert!(
        err["fix"]
            .as_str()
            .unwrap()
            .contains("five space-separated fields")
    );
    let warn = diags.iter().find(|d| d["severity"] == "warning").unwrap();
    assert_eq!(
        (warn["document"].as_u64(), warn["field"].as_str()),
        (Some(1), Some("spec.rules"))
    );
}

#[test]
fn validate_without_f_is_a_usage_error() {
    let o = stash(&["validate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--filename"));
}

#[test]
fn crd_prints_every_crd_and_writes_the_committed_files() {
    let o = stash(&["crd"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(
        out.matches("kind: CustomResourceDefinition").count(),
        9,
        "{out:.200}"
    );
    for plural in [
        "repositories",
        "backupconfigurations",
        "backupsessions",
        "restoresessions",
        "backupbatches",
        "restorebatches",
        "backupblueprints",
        "functions",
        "tasks",
    ] {
        assert!(
            out.contains(&format!("name: {plural}.stash.appscode.com")),
            "{plural}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let o = stash(&["crd", "--output-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(committed.join(name)).unwrap(),
            "deploy/crds/{} is stale: run `stash crd --output-dir deploy/crds`",
            name.to_string_lossy()
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 9);
}
