//! `kubectl get snapshots` (§14.1) on the embedded cluster: the operator installed from deploy/
//! (`deploy/embedded/install --snapshot-api-port`) serves Stash's aggregated API
//! `repositories.stash.appscode.com/v1alpha1` behind the APIService and the ExternalName Service;
//! kube-apiserver's front proxy reaches it with its client certificate, and every request is
//! authorized for the user kubectl runs as. The repositories are written by Debian's restic, and
//! restic is the judge of what the API lists and forgets.

// Kind names (Repository, APIService) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{Options, TestEnv, paths, servers};

const PASSWORD: &str = "snapshot-api-e2e";
const NAMESPACE: &str = "backups";

fn restic(repo: &Path) -> Command {
    let mut command = Command::new("restic");
    command
        .arg("-r")
        .arg(repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"));
    command
}

fn succeeded(mut command: Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A restic repository with one snapshot per host in `hosts`.
fn restic_repository(dir: &Path, name: &str, hosts: &[&str]) -> PathBuf {
    let repo = dir.join(name);
    let data = dir.join(format!("{name}-data"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("note.txt"), format!("{name}\n")).unwrap();
    succeeded({
        let mut c = restic(&repo);
        c.arg("init");
        c
    });
    for host in hosts {
        succeeded({
            let mut c = restic(&repo);
            c.arg("backup").arg(&data).args(["--host", host]);
            c
        });
    }
    repo
}

/// restic's own list: full snapshot ids, oldest first.
fn restic_ids(repo: &Path) -> Vec<String> {
    let json = succeeded({
        let mut c = restic(repo);
        c.args(["snapshots", "--json", "--no-lock"]);
        c
    });
    let list: Vec<Value> = serde_json::from_slice(&json).expect("restic snapshots --json");
    list.iter()
        .map(|s| s["id"].as_str().expect("an id").to_owned())
        .collect()
}

fn names(repository: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("{repository}-{}", &id[..8]))
        .collect()
}

fn kubectl(env: &TestEnv, args: &[&str]) -> Output {
    env.kubectl()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl {args:?}: {e}"))
}

fn kubectl_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = kubectl(env, args);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kubectl prints UTF-8")
}

fn apply(env: &TestEnv, manifest: &Value) {
    let mut child = env
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl apply");
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        manifest.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply {manifest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Secret and Repository `name` in [`NAMESPACE`], naming the restic repository at `repo` (the
/// operator runs as a local process, so it opens the path itself).
fn repository_objects(env: &TestEnv, name: &str, repo: &Path) {
    apply(
        env,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("{name}-secret"), "namespace": NAMESPACE},
            "stringData": {"RESTIC_PASSWORD": PASSWORD}
        }),
    );
    apply(
        env,
        &serde_json::json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"team": "e2e"}},
            "spec": {"backend": {"local": {"mountPath": repo, "hostPath": {"path": repo}},
                                 "storageSecretName": format!("{name}-secret")}}
        }),
    );
}

/// `deploy/embedded/install` with the snapshot API on its own free loopback port.
fn install_operator(env: &TestEnv, pushgateway_url: &str) {
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let port = servers::free_port();
        if !ports.contains(&port) {
            ports.push(port);
        }
    }
    let script = paths::repo_root().join("deploy/embedded/install");
    let output = Command::new(&script)
        .args(["--pushgateway-url", pushgateway_url])
        .args(["--secure-port", &ports[0].to_string()])
        .args(["--metrics-port", &ports[1].to_string()])
        .args(["--snapshot-api-port", &ports[2].to_string()])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("KUBECTL", env.control_plane().bin_dir().join("kubectl"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn item_names(list: &str) -> Vec<String> {
    let list: Value = serde_json::from_str(list).expect("a list as JSON");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|s| s["metadata"]["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names
}

/// `kubectl get snapshots` (table, JSON, `-l repository=`) lists exactly restic's snapshots, and
/// `kubectl get snapshot <name>` is Stash's Snapshot.
fn list_and_get(env: &TestEnv, app_names: &[String], db_names: &[String], db_full_id: &str) {
    let listed = item_names(&kubectl_ok(
        env,
        &["get", "snapshots", "-n", NAMESPACE, "-o", "json"],
    ));
    assert_eq!(
        sorted(listed),
        sorted([app_names, db_names].concat()),
        "kubectl get snapshots lists what restic snapshots lists"
    );
    // kubectl -o json re-wraps the items in a v1 List; the API's own answer is a SnapshotList.
    let raw: Value = serde_json::from_str(&kubectl_ok(
        env,
        &[
            "get",
            "--raw",
            &format!(
                "/apis/repositories.stash.appscode.com/v1alpha1/namespaces/{NAMESPACE}/snapshots"
            ),
        ],
    ))
    .unwrap();
    assert_eq!(raw["kind"], "SnapshotList");
    assert_eq!(
        raw["apiVersion"],
        "repositories.stash.appscode.com/v1alpha1"
    );
    assert_eq!(
        raw["items"].as_array().map(Vec::len),
        Some(app_names.len() + db_names.len())
    );
    let table = kubectl_ok(env, &["get", "snapshots", "-n", NAMESPACE]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ID", "REPOSITORY", "HOSTNAME", "CREATED"],
        "{table}"
    );
    for name in app_names.iter().chain(db_names) {
        assert!(
            table.contains(name.as_str()),
            "{name} in the table:\n{table}"
        );
    }
    let only_db = item_names(&kubectl_ok(
        env,
        &[
            "get",
            "snapshots",
            "-n",
            NAMESPACE,
            "-l",
            "repository=db-repo",
            "-o",
            "json",
        ],
    ));
    assert_eq!(only_db, db_names, "-l repository=db-repo");

    let snapshot: Value = serde_json::from_str(&kubectl_ok(
        env,
        &[
            "get",
            "snapshot",
            &db_names[0],
            "-n",
            NAMESPACE,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(snapshot["kind"], "Snapshot");
    assert_eq!(snapshot["metadata"]["uid"], db_full_id);
    assert_eq!(snapshot["metadata"]["labels"]["repository"], "db-repo");
    assert_eq!(snapshot["metadata"]["labels"]["team"], "e2e");
    assert_eq!(snapshot["status"]["hostname"], "db-0");
    assert_eq!(snapshot["status"]["repository"], "db-repo");
    let missing = kubectl(
        env,
        &["get", "snapshot", "db-repo-00000000", "-n", NAMESPACE],
    );
    assert!(
        !missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("NotFound"),
        "an unknown snapshot is NotFound: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// A ServiceAccount with no RBAC on snapshots is refused by the SubjectAccessReview.
fn refused_without_rbac(env: &TestEnv, name: &str) {
    let nobody = format!("system:serviceaccount:{NAMESPACE}:nobody");
    for args in [
        vec!["get", "snapshots", "-n", NAMESPACE, "--as", &nobody],
        vec!["delete", "snapshot", name, "-n", NAMESPACE, "--as", &nobody],
    ] {
        let refused = kubectl(env, &args);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains("forbidden"),
            "kubectl {args:?} as {nobody} is forbidden: {stderr}"
        );
    }
}

#[test]
fn kubectl_get_snapshots_lists_what_restic_lists_gets_one_by_name_refuses_a_user_without_rbac_and_delete_forgets_it()
 {
    let env = TestEnv::start(&Options {
        dir: None,
        install_crds: false,
        pod_runner: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{}", stash_testenv::error_chain(&e)));
    let pushgateway = Pushgateway::start();
    install_operator(&env, &pushgateway.url());

    // Not under /tmp: the operator pod has an emptyDir there, which hides the host's /tmp.
    let dir = tempfile::tempdir_in(paths::repo_root().join("target")).unwrap();
    let app = restic_repository(dir.path(), "app-repo", &["app-0", "app-1"]);
    let db = restic_repository(dir.path(), "db-repo", &["db-0"]);
    kubectl_ok(&env, &["create", "namespace", NAMESPACE]);
    repository_objects(&env, "app-repo", &app);
    repository_objects(&env, "db-repo", &db);
    let app_names = names("app-repo", &restic_ids(&app));
    let db_ids = restic_ids(&db);
    let db_names = names("db-repo", &db_ids);
    assert_eq!((app_names.len(), db_names.len()), (2, 1));

    list_and_get(&env, &app_names, &db_names, &db_ids[0]);
    refused_without_rbac(&env, &app_names[0]);
    assert_eq!(
        restic_ids(&app).len(),
        2,
        "a refused delete forgets nothing"
    );

    // delete: restic forgets the snapshot; the other one stays.
    let deleted = kubectl_ok(
        &env,
        &["delete", "snapshot", &app_names[0], "-n", NAMESPACE],
    );
    assert!(deleted.contains(&app_names[0]), "{deleted}");
    assert_eq!(
        names("app-repo", &restic_ids(&app)),
        app_names[1..],
        "restic no longer lists the deleted snapshot"
    );
    let listed = item_names(&kubectl_ok(
        &env,
        &[
            "get",
            "snapshots",
            "-n",
            NAMESPACE,
            "-l",
            "repository=app-repo",
            "-o",
            "json",
        ],
    ));
    assert_eq!(listed, app_names[1..]);

    // A Repository that cannot be read does not hide the others: kubectl prints a warning.
    let missing = dir.path().join("never-initialised");
    repository_objects(&env, "broken-repo", &missing);
    let out = kubectl(&env, &["get", "snapshots", "-n", NAMESPACE, "-o", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        sorted(item_names(&String::from_utf8_lossy(&out.stdout))),
        sorted([&app_names[1..], &db_names[..]].concat()),
    );
    assert!(
        stderr.contains("Warning:") && stderr.contains("broken-repo"),
        "kubectl warns about the unreadable Repository: {stderr}"
    );
    let only_broken = kubectl(
        &env,
        &[
            "get",
            "snapshots",
            "-n",
            NAMESPACE,
            "-l",
            "repository=broken-repo",
        ],
    );
    assert!(
        !only_broken.status.success(),
        "listing only the unreadable Repository is an error"
    );
    drop(env);
}
