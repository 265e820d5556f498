//! `kubectl stash`: the real `stash` binary run through a `kubectl-stash` symlink (as kubectl runs
//! a plugin), against the real API server, an in-process operator and a real restic repository
//! made by Debian's restic; `trigger` also against a real backup (the `stash` sidecar run by the pod
//! runner into an S3 repository on moto).

// Kind names (BackupConfiguration, CronJob, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::wait::wait_for;
use stash_testenv::{TestEnv, TestNamespace, paths, s3, tree};

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
    /// Runs the plugin and returns its output whatever its exit status.
    fn output(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| {
            Command::new(&self.bin)
                .args(args)
                .args(["-n", &self.namespace])
                .env("KUBECONFIG", &self.kubeconfig)
                .output()
                .expect("run kubectl-stash")
        })
    }

    /// Runs the plugin and fails the test unless it exits 0.
    fn run(&self, args: &[&str]) -> Output {
        let out = self.output(args);
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

/// `pause backup` / `resume backup` set `spec.paused` and the operator suspends and resumes the
/// trigger CronJob.
async fn pause_and_resume_flip_the_trigger_cronjob(
    client: &kube::Client,
    ns: &str,
    plugin: &Plugin,
    bcs: &Api<BackupConfiguration>,
) {
    let cronjobs = Api::<CronJob>::namespaced(client.clone(), ns);
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
}

/// The Repository `gcs-repo` (never dialled), its Secret, the Deployment `stash-demo` and Stash's
/// example BackupConfiguration `deployment-backup` of it.
async fn gcs_deployment_and_its_backup_configuration(
    client: &kube::Client,
    ns: &str,
) -> Api<BackupConfiguration> {
    crate::create_gcs_repository(client, ns).await;
    create::<Secret>(
        client,
        ns,
        json!({
            "metadata": {"name": "gcs-secret"},
            "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
        }),
    )
    .await;
    create::<Deployment>(client, ns, json!({
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
    bc.metadata.namespace = Some(ns.to_owned());
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), ns);
    bcs.create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");
    bcs
}

/// The Repository `gcs-repo` (as Stash's example names it) on moto's S3, its Secret, and the
/// Deployment `stash-demo` whose pods run with their service account, with a file in its volume.
async fn s3_repository_and_a_deployment_with_data(client: &kube::Client, ns: &TestNamespace) {
    let bucket = ns.name().to_owned();
    s3::shared().create_bucket(&bucket);
    let mut secret = serde_json::Map::new();
    secret.insert("RESTIC_PASSWORD".into(), PASSWORD.into());
    for (key, value) in s3::env() {
        secret.insert(key.into(), value.into());
    }
    create::<Secret>(
        client,
        ns,
        json!({"metadata": {"name": "s3-secret"}, "stringData": secret}),
    )
    .await;
    create::<Repository>(client, ns, json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "gcs-repo"},
        "spec": {"backend": {"s3": {"endpoint": s3::shared().endpoint(), "bucket": bucket, "prefix": "trigger"},
                             "storageSecretName": "s3-secret"}}
    }))
    .await;
    let source = ns.pvc_dir("stash-demo-data");
    tree::write(
        &source.join("note.txt"),
        b"backed up through kubectl stash trigger\n",
    );
    // Pods run with their service account's token, so the sidecar has the RBAC the operator grants.
    let identity = json!({ stash_testenv::pod_runner::IDENTITY_ANNOTATION: "service-account" });
    create::<Deployment>(client, ns, json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "stash-demo"}},
            "template": {
                "metadata": {"labels": {"app": "stash-demo"}, "annotations": identity},
                "spec": {
                    "containers": [{"name": "busybox", "image": "busybox", "command": ["sleep", "3600"],
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data",
                                 "persistentVolumeClaim": {"claimName": "stash-demo-data"}}]
                }
            }
        }
    }))
    .await;
}

/// Waits until BackupConfiguration `name` is Ready: a session of an invoker that is not is
/// Skipped (§9.2).
async fn wait_ready(bcs: &Api<BackupConfiguration>, name: &str) {
    wait_for(
        &format!("BackupConfiguration {name} to be Ready"),
        TIMEOUT,
        || async {
            let bc = bcs.get(name).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_no_wait_creates_a_backup_session_a_waiting_trigger_names_why_it_was_skipped_and_pause_and_resume_flip_the_trigger_cronjob()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = Pushgateway::start();
    let bcs = gcs_deployment_and_its_backup_configuration(&client, &ns).await;
    // The image is one the pod runner does not run: the session this test triggers stays Running.
    let operator = Operator::start(client.clone(), &ns, |c| {
        c.pushgateway_url = pushgateway.url();
    });
    let dir = tempfile::tempdir().expect("a temp dir");
    let plugin = Plugin {
        bin: plugin(dir.path()),
        kubeconfig: env.kubeconfig_path().to_owned(),
        namespace: ns.name().to_owned(),
    };
    wait_ready(&bcs, "deployment-backup").await;

    // --no-wait: returns once the session exists, as the trigger CronJob does.
    let out = plugin.run(&["trigger", "deployment-backup", "--no-wait"]);
    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns);
    let listed = sessions
        .list(&ListParams::default())
        .await
        .expect("list BackupSessions");
    assert_eq!(listed.items.len(), 1, "one BackupSession per trigger");
    let session = &listed.items[0];
    let invoker = session.spec.invoker.as_ref().expect("spec.invoker");
    assert_eq!(
        (invoker.kind.as_str(), invoker.name.as_str()),
        ("BackupConfiguration", "deployment-backup")
    );
    let running = session.metadata.name.clone().unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        format!("backupsession {}/{running} created", ns.name())
    );

    // Waiting: a second session while the first is Running is Skipped; trigger says so and why.
    wait_for(
        &format!("BackupSession {running} to be Running"),
        TIMEOUT,
        || async {
            let phase = sessions
                .get(&running)
                .await
                .map_err(|e| e.to_string())?
                .status
                .and_then(|s| s.phase);
            match phase {
                Some(BackupSessionPhase::Running) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let skipped = plugin.output(&["trigger", "deployment-backup", "--timeout=2m"]);
    let stdout = String::from_utf8_lossy(&skipped.stdout);
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert_eq!(skipped.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains(" Skipped"), "{stdout}");
    assert!(
        stderr.contains("ended Skipped")
            && stderr.contains(&format!("Previous BackupSession: {running} is \"Running\"")),
        "{stderr}"
    );

    pause_and_resume_flip_the_trigger_cronjob(&client, &ns, &plugin, &bcs).await;
    operator.stop().await;
}

/// Stash's Deployment guide with the `stash` sidecar really running (pod runner, image
/// `stash-rs/stash:test`) into an S3 repository on moto; `kubectl stash trigger` creates the
/// session and watches it until it succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_waits_for_a_real_backup_and_prints_succeeded_with_the_host_and_its_snapshot() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = Pushgateway::start();
    s3_repository_and_a_deployment_with_data(&client, &ns).await;
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.name().to_owned());
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    bcs.create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");
    let operator = Operator::start(client.clone(), &ns, |c| {
        "stash-rs".clone_into(&mut c.docker_registry);
        "stash".clone_into(&mut c.image);
        c.pushgateway_url = pushgateway.url();
        c.leader_election = None;
    });
    let dir = tempfile::tempdir().expect("a temp dir");
    let plugin = Plugin {
        bin: plugin(dir.path()),
        kubeconfig: env.kubeconfig_path().to_owned(),
        namespace: ns.name().to_owned(),
    };
    wait_ready(&bcs, "deployment-backup").await;

    let out = plugin.run(&["trigger", "deployment-backup", "--timeout=4m"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed = Api::<BackupSession>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect("list BackupSessions");
    let [session] = listed.items.as_slice() else {
        panic!("one BackupSession per trigger: {listed:?}");
    };
    let status = session.status.as_ref().expect("a final status");
    assert_eq!(
        status.phase,
        Some(BackupSessionPhase::Succeeded),
        "{stdout}"
    );
    let name = session.metadata.name.as_deref().unwrap_or_default();
    assert!(
        stdout.contains(&format!("BackupSession {}/{name} Succeeded in ", ns.name())),
        "{stdout}"
    );
    assert!(
        stdout.contains("Deployment/stash-demo: Succeeded (1/1 hosts)"),
        "{stdout}"
    );
    let snapshot = status
        .targets
        .iter()
        .flatten()
        .flat_map(|t| t.stats.iter().flatten())
        .flat_map(|h| h.snapshots.iter().flatten())
        .find_map(|s| s.name.clone())
        .expect("the host's snapshot in the session status");
    assert!(stdout.contains("host-0"), "{stdout}");
    assert!(
        stdout.contains(&format!("snapshot {snapshot} /source/data")),
        "{stdout}"
    );
    operator.stop().await;
}
