//! `kubectl stash`: the real `stash` binary run through a `kubectl-stash` symlink (as kubectl runs
//! a plugin), against the real API server, an in-process operator and a real restic repository
//! made by Debian's restic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession};
use stash_testenv::wait::wait_for;
use stash_testenv::{TestEnv, paths};

use crate::TIMEOUT;
use crate::operator::Operator;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);
const PASSWORD: &str = "kubectl-stash-e2e";

/// `kubectl-stash` in a directory of its own, pointing at `target/debug/stash`.
fn plugin(dir: &Path) -> PathBuf {
    let link = dir.join("kubectl-stash");
    std::os::unix::fs::symlink(
        paths::stash_bin().expect("target/debug/stash is built by scripts/test"),
        &link,
    )
    .expect("symlink kubectl-stash");
    link
}

struct Plugin {
    bin: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
}

impl Plugin {
    fn run(&self, args: &[&str]) -> Output {
        let out = tokio::task::block_in_place(|| {
            Command::new(&self.bin)
                .args(args)
                .args(["-n", &self.namespace])
                .env("KUBECONFIG", &self.kubeconfig)
                .output()
                .expect("run kubectl-stash")
        });
        assert!(
            out.status.success(),
            "kubectl-stash {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn restic(repo: &Path) -> Command {
    let mut command = Command::new("restic");
    command
        .arg("-r")
        .arg(repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_CACHE_DIR", repo.with_extension("cache"));
    command
}

fn checked(mut command: Command) -> Vec<u8> {
    let out = command.output().expect("run restic");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn snapshot_ids(json: &[u8]) -> Vec<String> {
    let list: Vec<serde_json::Value> = serde_json::from_slice(json).expect("snapshots as JSON");
    list.iter()
        .map(|s| s["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// The lock files in `locks/`: 64 hex digits, not restic's temporary file it renames into place.
fn lock_files(repo: &Path) -> Vec<PathBuf> {
    let is_lock = |path: &Path| {
        path.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    std::fs::read_dir(repo.join("locks"))
        .map(|dir| {
            dir.map(|e| e.expect("a lock entry").path())
                .filter(|p| is_lock(p))
                .collect()
        })
        .unwrap_or_default()
}

async fn create<K>(client: &kube::Client, ns: &str, value: serde_json::Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(value).expect("a valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .expect("create the object");
}

/// A repository written by Debian's restic (one snapshot of a small tree, host `e2e`) and the
/// Secret and Repository `local-repo` that name it; returns the repository, the tree and the
/// contents of its `blob.bin`.
async fn restic_repository_and_its_objects(
    client: &kube::Client,
    ns: &str,
    dir: &std::path::Path,
) -> (PathBuf, PathBuf, Vec<u8>) {
    let repo = dir.join("repo");
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("nested")).unwrap();
    let contents: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(data.join("blob.bin"), &contents).unwrap();
    std::fs::write(data.join("nested/note.txt"), b"kubectl stash download\n").unwrap();
    checked({
        let mut c = restic(&repo);
        c.arg("init");
        c
    });
    checked({
        let mut c = restic(&repo);
        c.arg("backup").arg(&data).args(["--host", "e2e"]);
        c
    });

    create::<Secret>(
        client,
        ns,
        json!({
            "metadata": {"name": "local-secret"},
            "stringData": {"RESTIC_PASSWORD": PASSWORD}
        }),
    )
    .await;
    create::<Repository>(
        client,
        ns,
        json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "local-repo"},
            "spec": {"backend": {"local": {"mountPath": repo, "hostPath": {"path": repo}},
                                 "storageSecretName": "local-secret"}}
        }),
    )
    .await;
    (repo, data, contents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_verbs_list_download_check_and_unlock_a_restic_repository_named_by_its_repository_object()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let dir = tempfile::tempdir().expect("a temp dir");
    let (repo, data, contents) =
        restic_repository_and_its_objects(&client, ns.name(), dir.path()).await;
    let plugin = Plugin {
        bin: plugin(dir.path()),
        kubeconfig: env.kubeconfig_path().to_owned(),
        namespace: ns.name().to_owned(),
    };

    let version = String::from_utf8(plugin.run(&["version"]).stdout).unwrap();
    assert!(version.starts_with("kubectl-stash "), "{version}");

    // snapshots: what Debian's restic lists, as JSON and as restic's table.
    let expected = snapshot_ids(&checked({
        let mut c = restic(&repo);
        c.args(["snapshots", "--json"]);
        c
    }));
    let listed = snapshot_ids(&plugin.run(&["snapshots", "local-repo", "--json"]).stdout);
    assert_eq!(listed, expected);
    let table = String::from_utf8(plugin.run(&["snapshots", "local-repo"]).stdout).unwrap();
    assert!(table.contains(&expected[0][..8]), "{table}");
    assert!(table.contains("1 snapshots"), "{table}");

    // download: byte for byte into DIR/<snapshot>/<the path backed up>.
    let destination = dir.path().join("downloaded");
    let short = &expected[0][..8];
    plugin.run(&[
        "download",
        "local-repo",
        &format!("--snapshots={short}"),
        &format!("--destination={}", destination.display()),
    ]);
    let restored = destination
        .join(short)
        .join(data.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("blob.bin")).unwrap(), contents);
    assert_eq!(
        std::fs::read(restored.join("nested/note.txt")).unwrap(),
        b"kubectl stash download\n"
    );

    // check
    let checked_out = plugin.run(&["check", "local-repo"]);
    assert!(String::from_utf8_lossy(&checked_out.stdout).contains("no errors were found"));

    // unlock: a live restic (waiting on its stdin) keeps its lock; once killed, its lock is stale.
    let mut live = restic(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "live"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start restic backup --stdin");
    let lock = wait_for("restic's lock in locks/", TIMEOUT, || async {
        match lock_files(&repo).as_slice() {
            [lock] => Ok(lock.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    plugin.run(&["unlock", "local-repo"]);
    assert!(lock.exists(), "unlock removed the lock of a live restic");
    live.kill().expect("kill restic");
    live.wait().expect("reap restic");
    assert!(lock.exists(), "a killed restic leaves its lock behind");
    let unlocked = String::from_utf8(plugin.run(&["unlock", "local-repo"]).stdout).unwrap();
    assert!(!lock.exists(), "unlock left the stale lock: {unlocked}");

    // errors name the object and the fix
    let missing = tokio::task::block_in_place(|| {
        Command::new(&plugin.bin)
            .args(["snapshots", "no-such-repo", "-n", ns.name()])
            .env("KUBECONFIG", env.kubeconfig_path())
            .output()
            .expect("run kubectl-stash")
    });
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(&format!("Repository {}/no-such-repo not found", ns.name())),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_creates_a_backup_session_and_pause_and_resume_flip_the_trigger_cronjob() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    crate::create_gcs_repository(&client, &ns).await;
    create::<Secret>(
        &client,
        &ns,
        json!({
            "metadata": {"name": "gcs-secret"},
            "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
        }),
    )
    .await;
    create::<Deployment>(&client, &ns, json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "stash-demo"}},
            "template": {
                "metadata": {"labels": {"app": "stash-demo"}},
                "spec": {
                    "containers": [{"name": "busybox", "image": "busybox",
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data", "emptyDir": {}}]
                }
            }
        }
    }))
    .await;
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.name().to_owned());
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    bcs.create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let dir = tempfile::tempdir().expect("a temp dir");
    let plugin = Plugin {
        bin: plugin(dir.path()),
        kubeconfig: env.kubeconfig_path().to_owned(),
        namespace: ns.name().to_owned(),
    };

    let out = plugin.run(&["trigger", "deployment-backup"]);
    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("list BackupSessions");
    assert_eq!(sessions.items.len(), 1, "one BackupSession per trigger");
    let session = &sessions.items[0];
    let invoker = session.spec.invoker.as_ref().expect("spec.invoker");
    assert_eq!(
        (invoker.kind.as_str(), invoker.name.as_str()),
        ("BackupConfiguration", "deployment-backup")
    );
    let name = session.metadata.name.clone().unwrap_or_default();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));

    let cronjobs = Api::<CronJob>::namespaced(client.clone(), &ns);
    let suspended = |want: bool| {
        let cronjobs = cronjobs.clone();
        async move {
            wait_for(
                &format!("CronJob stash-trigger-deployment-backup with suspend {want}"),
                TIMEOUT,
                || async {
                    let cronjob = cronjobs
                        .get("stash-trigger-deployment-backup")
                        .await
                        .map_err(|e| e.to_string())?;
                    let suspend = cronjob.spec.suspend;
                    if suspend == Some(want) {
                        Ok(())
                    } else {
                        Err(format!("suspend {suspend:?}"))
                    }
                },
            )
            .await;
        }
    };
    let paused = || async {
        bcs.get("deployment-backup")
            .await
            .expect("get the BackupConfiguration")
            .spec
            .paused
    };
    suspended(false).await;
    plugin.run(&["pause", "backup", "--backupconfig=deployment-backup"]);
    assert_eq!(paused().await, Some(true));
    suspended(true).await;
    plugin.run(&["resume", "backup", "--backupconfig=deployment-backup"]);
    assert_eq!(paused().await, Some(false));
    suspended(false).await;
    operator.stop().await;
}
