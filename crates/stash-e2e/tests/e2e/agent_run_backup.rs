//! `stash run-backup`, the `stash` sidecar, as a process with the args and env the operator gives it,
//! against the real API server, a real S3 server (moto), a real Pushgateway and Debian's restic. The
//! test plays the operator's part of docs/session-protocol.md (the target entry of the session);
//! the sidecar does the rest: initialises the repository, backs up its host, writes its stats and
//! progress, runs the post-backup actions and updates the Repository status.

// Kind names (BackupConfiguration, BackupSession) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use stash_api::condition::{ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::HostBackupPhase;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession, HostBackupStats};
use stash_testenv::{Pushgateway, TestEnv, paths, restic, s3, wait_for};

use crate::TIMEOUT;

const POD_NAME: &str = "stash-demo-5d4f8b7c9-x2k4p";
const PASSWORD: &str = "not@secret";

/// The sidecar process; killed if the test ends early.
struct Sidecar {
    child: Child,
    log: std::path::PathBuf,
}

impl Sidecar {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as the kubelet stops a container; the sidecar must exit 0.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .expect("SIGTERM the sidecar");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait for the sidecar") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the sidecar did not exit within 30 s of SIGTERM:\n{}",
            self.log()
        );
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Secret, Repository (on the shared S3 server, bucket `bucket`) and BackupConfiguration
/// `deployment-backup` backing up `data` of workload `kind`/`stash-demo`.
async fn create_objects(
    client: &kube::Client,
    ns: &str,
    bucket: &str,
    secret: &[(&str, &str)],
    data: &Path,
    kind: &str,
) {
    let server = s3::shared();
    server.create_bucket(bucket);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3-secret"},
        "stringData": secret.iter().map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v))).collect::<serde_json::Map<_, _>>(),
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the storage Secret");
    let repository: Repository = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "s3-repo"},
        "spec": {"backend": {
            "s3": {"endpoint": server.endpoint(), "bucket": bucket, "prefix": "/demo/deployment", "region": "us-east-1"},
            "storageSecretName": "s3-secret"}}
    }))
    .unwrap();
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create the Repository");
    let bc: BackupConfiguration = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupConfiguration",
        "metadata": {"name": "deployment-backup"},
        "spec": {
            "repository": {"name": "s3-repo"},
            "schedule": "*/5 * * * *",
            "target": {
                "ref": {"apiVersion": "apps/v1", "kind": kind, "name": "stash-demo"},
                "paths": [data.to_str().unwrap()],
                "exclude": ["*.tmp"],
            },
            "retentionPolicy": {"name": "keep-last-5", "keepLast": 5, "prune": true},
        }
    }))
    .unwrap();
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bc)
        .await
        .expect("create the BackupConfiguration");
}

/// A BackupSession of `deployment-backup` labelled as the trigger labels it (§5.2).
async fn create_session(client: &kube::Client, ns: &str) -> String {
    let session: BackupSession = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
        "metadata": {"name": "deployment-backup-1700000000", "labels": {
            labels::LABEL_INVOKER_TYPE: "BackupConfiguration",
            labels::LABEL_INVOKER_NAME: "deployment-backup",
        }},
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": "deployment-backup"}}
    }))
    .unwrap();
    Api::<BackupSession>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &session)
        .await
        .expect("create the BackupSession")
        .metadata
        .name
        .unwrap()
}

/// The operator's step 3: one target entry, Running, one host, with the pre and post actions.
async fn play_operator(client: &kube::Client, ns: &str, name: &str, kind: &str, total_hosts: i32) {
    let api = Api::<BackupSession>::namespaced(client.clone(), ns);
    let mut session = api.get(name).await.expect("read the session");
    session.status = Some(
        serde_json::from_value(serde_json::json!({
            "phase": "Running",
            "targets": [{
                "ref": {"apiVersion": "apps/v1", "kind": kind, "name": "stash-demo", "namespace": ns},
                "totalHosts": total_hosts,
                "phase": "Running",
                "preBackupActions": ["InitializeBackendRepository"],
                "postBackupActions": ["ApplyRetentionPolicy", "VerifyRepositoryIntegrity", "SendRepositoryMetrics"],
                "conditions": [{"type": "BackupExecutorEnsured", "status": "True", "reason": "SidecarInjectionSucceeded",
                                "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            }]
        }))
        .unwrap(),
    );
    api.replace_status(name, &PostParams::default(), &session)
        .await
        .expect("write the target entry as the operator does");
}

/// `stash run-backup` with the sidecar args of §8.4 and the pod's env.
fn start_sidecar(
    env: &TestEnv,
    ns: &str,
    dir: &Path,
    pushgateway: &str,
    kind: &str,
    pod: &str,
) -> Sidecar {
    let log = dir.join(format!("sidecar-{pod}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let tmp = dir.join(format!("tmp-{pod}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let child =
        Command::new(paths::stash_bin().expect("target/debug/stash is built by scripts/test"))
            .args([
                "run-backup",
                "--invoker-name=deployment-backup",
                "--invoker-kind=BackupConfiguration",
                "--target-name=stash-demo",
            ])
            .arg(format!("--target-namespace={ns}"))
            .args([
                "--enable-cache=true",
                "--max-connections=0",
                "--metrics-enabled=true",
            ])
            .arg(format!("--pushgateway-url={pushgateway}"))
            .arg(format!("--target-kind={kind}"))
            .args(["--use-kubeapiserver-fqdn-for-aks=true", "--v=3"])
            .env("KUBECONFIG", env.kubeconfig_path())
            .env("KUBE_NAMESPACE", ns)
            .env("POD_NAME", pod)
            .env("NODE_NAME", "node-1")
            .env("TMPDIR", &tmp)
            .env("RUST_LOG", "info,stash_agent=debug")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start stash run-backup");
    Sidecar { child, log }
}

/// Waits for the host's final `stats[]` entry.
async fn final_entry(
    client: &kube::Client,
    ns: &str,
    name: &str,
    sidecar: &Sidecar,
    host: &str,
) -> HostBackupStats {
    let api = Api::<BackupSession>::namespaced(client.clone(), ns);
    let entry = tokio::time::timeout(TIMEOUT, async {
        loop {
            let session = api.get(name).await.expect("read the session");
            let entry = session
                .status
                .and_then(|s| s.targets)
                .and_then(|t| t.into_iter().next())
                .and_then(|t| t.stats)
                .and_then(|s| s.into_iter().find(|h| h.hostname.as_deref() == Some(host)));
            if let Some(entry) = entry.filter(|e| e.phase.is_some()) {
                return entry;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    entry.unwrap_or_else(|_| {
        panic!(
            "{host} has no final stats entry; sidecar log:\n{}",
            sidecar.log()
        )
    })
}

/// Waits until the session has conditions `types`.
async fn conditions(
    client: &kube::Client,
    ns: &str,
    name: &str,
    types: &[ConditionType],
    sidecar: &Sidecar,
) -> Vec<stash_api::condition::Condition> {
    let api = Api::<BackupSession>::namespaced(client.clone(), ns);
    let found = tokio::time::timeout(TIMEOUT, async {
        loop {
            let session = api.get(name).await.expect("read the session");
            let conditions = session
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default();
            if types
                .iter()
                .all(|t| conditions.iter().any(|c| c.type_ == *t))
            {
                return conditions;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "conditions {types:?} not all set; sidecar log:\n{}",
            sidecar.log()
        )
    })
}

fn status_of(
    conditions: &[stash_api::condition::Condition],
    type_: ConditionType,
) -> (ConditionStatus, String) {
    let c = conditions.iter().find(|c| c.type_ == type_).unwrap();
    (c.status, c.message.clone().unwrap_or_default())
}

/// Incompressible bytes, so the backup takes long enough for progress to be reported.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

/// The sidecar of a Deployment backs up only once it holds the workload's Lease.
async fn wait_for_leader(client: &kube::Client, ns: &str) {
    let leases = Api::<Lease>::namespaced(client.clone(), ns);
    wait_for(
        "the sidecar to hold lock-deployment-stash-demo-backup",
        TIMEOUT,
        || {
            let leases = leases.clone();
            async move {
                let lease = leases
                    .get_opt("lock-deployment-stash-demo-backup")
                    .await
                    .map_err(|e| e.to_string())?;
                let holder = lease.and_then(|l| l.spec).and_then(|s| s.holder_identity);
                if holder.as_deref() == Some(POD_NAME) {
                    Ok(())
                } else {
                    Err(format!("holder {holder:?}"))
                }
            }
        },
    )
    .await;
}

/// Watches every version of session `name`; the flag turns true once a host entry with progress
/// and no phase (a backup under way) was written.
fn watch_progress(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let saw_progress = Arc::new(AtomicBool::new(false));
    let task = {
        let saw_progress = saw_progress.clone();
        let stream = watcher(
            Api::<BackupSession>::namespaced(client.clone(), ns),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        );
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) = event {
                    let running = s
                        .status
                        .and_then(|s| s.targets)
                        .into_iter()
                        .flatten()
                        .flat_map(|t| t.stats.unwrap_or_default())
                        .any(|h| {
                            h.phase.is_none()
                                && h.progress.is_some_and(|p| {
                                    p.bytes_total.is_some() || p.files_done.is_some()
                                })
                        });
                    if running {
                        saw_progress.store(true, Ordering::SeqCst);
                    }
                }
            }
        })
    };
    (saw_progress, task)
}

/// Debian's restic reads the repository: one snapshot, of `data`, by host `host-0`.
fn assert_restic_lists_host_0(bucket: &str, data: &Path, short_id: Option<&str>) {
    let restic_dir = tempfile::tempdir().unwrap();
    let out = restic::command_with_password(restic_dir.path(), PASSWORD)
        .envs(s3::env())
        .env(
            "RESTIC_REPOSITORY",
            s3::shared().repository(bucket, "demo/deployment"),
        )
        .args(["snapshots", "--json"])
        .output()
        .expect("run restic snapshots");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["hostname"], "host-0");
    assert_eq!(listed[0]["paths"][0], data.to_str().unwrap());
    assert_eq!(listed[0]["short_id"].as_str(), short_id);
}

/// The host's final entry: Succeeded, one snapshot of `data` with its stats, the last progress kept.
fn assert_succeeded_with_one_snapshot(
    entry: &HostBackupStats,
    data: &Path,
    sidecar: &Sidecar,
) -> stash_api::v1beta1::SnapshotStats {
    assert_eq!(
        entry.phase,
        Some(HostBackupPhase::Succeeded),
        "{entry:?}\n{}",
        sidecar.log()
    );
    assert_eq!(entry.error, None);
    assert!(entry.duration.is_some());
    let snapshots = entry.snapshots.clone().unwrap_or_default();
    assert_eq!(snapshots.len(), 1, "one snapshot per path: {snapshots:?}");
    let snapshot = snapshots[0].clone();
    assert_eq!(snapshot.path.as_deref(), data.to_str());
    assert_eq!(snapshot.name.as_ref().map(String::len), Some(8));
    let files = snapshot.file_stats.clone().unwrap();
    assert_eq!(
        files.total_files,
        Some(3),
        "skip.tmp is excluded: {files:?}"
    );
    assert_eq!(files.new_files, Some(3));
    assert!(
        snapshot
            .total_size
            .as_deref()
            .is_some_and(|s| s.ends_with("MiB")),
        "{snapshot:?}"
    );
    let progress = entry
        .progress
        .as_ref()
        .expect("the final entry keeps the progress figures");
    assert_eq!(progress.files_done, Some(3));
    snapshot
}

/// The Repository status the post-backup actions wrote (§3.3).
async fn assert_repository_status_after_one_backup(client: &kube::Client, ns: &str) {
    let repository = Api::<Repository>::namespaced(client.clone(), ns)
        .get("s3-repo")
        .await
        .unwrap();
    let status = repository.status.expect("Repository status");
    assert_eq!(status.snapshot_count, Some(1));
    assert_eq!(status.integrity, Some(true));
    assert_eq!(status.snapshots_removed_on_last_cleanup, Some(0));
    assert!(
        status.total_size.is_some() && status.last_backup_time.is_some(),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_backs_up_its_host_reports_progress_runs_the_post_actions_and_restic_sees_host_0()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("source-data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("a.txt"), "first file\n").unwrap();
    std::fs::write(data.join("sub/b.txt"), "second file\n").unwrap();
    std::fs::write(data.join("skip.tmp"), "excluded\n").unwrap();
    std::fs::write(data.join("big.bin"), pseudo_random(48 << 20)).unwrap();
    let bucket = format!("run-backup-{}", ns.name());
    let (access, secret) = (s3::ENV[0].1, s3::ENV[1].1);
    create_objects(
        &client,
        &ns,
        &bucket,
        &[
            ("RESTIC_PASSWORD", PASSWORD),
            ("AWS_ACCESS_KEY_ID", access),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
        &data,
        "Deployment",
    )
    .await;
    let pushgateway = Pushgateway::start();
    let sidecar = start_sidecar(
        env,
        &ns,
        dir.path(),
        &pushgateway.url(),
        "Deployment",
        POD_NAME,
    );

    wait_for_leader(&client, &ns).await;

    let name = create_session(&client, &ns).await;
    let (saw_progress, watch) = watch_progress(&client, &ns, &name);
    // Without the operator's target entry the sidecar waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untouched = Api::<BackupSession>::namespaced(client.clone(), &ns)
        .get(&name)
        .await
        .unwrap();
    assert_eq!(
        untouched.status, None,
        "the sidecar must wait for the operator's target entry"
    );
    play_operator(&client, &ns, &name, "Deployment", 1).await;

    let entry = final_entry(&client, &ns, &name, &sidecar, "host-0").await;
    let snapshot = assert_succeeded_with_one_snapshot(&entry, &data, &sidecar);

    let all = [
        ConditionType::BackendRepositoryInitialized,
        ConditionType::RetentionPolicyApplied,
        ConditionType::RepositoryIntegrityVerified,
        ConditionType::RepositoryMetricsPushed,
    ];
    let found = conditions(&client, &ns, &name, &all, &sidecar).await;
    for type_ in all {
        let (status, message) = status_of(&found, type_);
        assert_eq!(
            status,
            ConditionStatus::True,
            "{type_:?}: {message}\n{}",
            sidecar.log()
        );
    }
    assert!(
        saw_progress.load(Ordering::SeqCst),
        "no progress entry was ever written while backing up"
    );
    watch.abort();

    assert_repository_status_after_one_backup(&client, &ns).await;

    assert_restic_lists_host_0(&bucket, &data, snapshot.name.as_deref());

    // Host and repository metrics reached the Pushgateway.
    let host = pushgateway.samples("stash_backup_host_backup_success");
    assert!(
        host.iter()
            .any(|l| l.contains("hostname=\"host-0\"") && l.ends_with(" 1")),
        "{host:?}"
    );
    let count = pushgateway.samples("stash_repository_snapshot_count");
    assert!(count.iter().any(|l| l.ends_with(" 1")), "{count:?}");

    let exit = sidecar.terminate().await;
    assert!(exit.success(), "the sidecar exits 0 on SIGTERM: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_secret_without_restic_password_fails_the_host_naming_the_key() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("source-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "data\n").unwrap();
    let bucket = format!("run-backup-{}", ns.name());
    let (access, secret) = (s3::ENV[0].1, s3::ENV[1].1);
    create_objects(
        &client,
        &ns,
        &bucket,
        &[
            ("AWS_ACCESS_KEY_ID", access),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
        &data,
        "Deployment",
    )
    .await;
    let sidecar = start_sidecar(env, &ns, dir.path(), "", "Deployment", POD_NAME);
    let name = create_session(&client, &ns).await;
    play_operator(&client, &ns, &name, "Deployment", 1).await;

    let entry = final_entry(&client, &ns, &name, &sidecar, "host-0").await;
    assert_eq!(entry.phase, Some(HostBackupPhase::Failed));
    let error = entry.error.unwrap_or_default();
    assert!(
        error.contains("RESTIC_PASSWORD") && error.contains("s3-secret"),
        "{error}"
    );

    let found = conditions(
        &client,
        &ns,
        &name,
        &[
            ConditionType::BackendRepositoryInitialized,
            ConditionType::RepositoryMetricsPushed,
        ],
        &sidecar,
    )
    .await;
    let (status, message) = status_of(&found, ConditionType::BackendRepositoryInitialized);
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("RESTIC_PASSWORD"), "{message}");
    let (status, _) = status_of(&found, ConditionType::RepositoryMetricsPushed);
    assert_eq!(
        status,
        ConditionStatus::False,
        "the last host still ends the post actions so the operator can finish"
    );

    let exit = sidecar.terminate().await;
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backup_stops_it_without_a_final_entry_or_a_repository_lock_and_exits_0() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("source-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("big.bin"), pseudo_random(128 << 20)).unwrap();
    let bucket = format!("run-backup-{}", ns.name());
    let (access, secret) = (s3::ENV[0].1, s3::ENV[1].1);
    create_objects(
        &client,
        &ns,
        &bucket,
        &[
            ("RESTIC_PASSWORD", PASSWORD),
            ("AWS_ACCESS_KEY_ID", access),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
        &data,
        "Deployment",
    )
    .await;
    let sidecar = start_sidecar(env, &ns, dir.path(), "", "Deployment", POD_NAME);
    let name = create_session(&client, &ns).await;
    play_operator(&client, &ns, &name, "Deployment", 1).await;

    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns);
    let host_entry = |session: BackupSession| {
        session
            .status
            .and_then(|s| s.targets)
            .and_then(|t| t.into_iter().next())
            .and_then(|t| t.stats)
            .and_then(|s| s.into_iter().next())
    };
    wait_for("the sidecar to report progress", TIMEOUT, || {
        let sessions = sessions.clone();
        let name = name.clone();
        async move {
            let session = sessions.get(&name).await.map_err(|e| e.to_string())?;
            match host_entry(session) {
                Some(entry) if entry.phase.is_none() && entry.progress.is_some() => Ok(()),
                other => Err(format!("host entry {other:?}")),
            }
        }
    })
    .await;

    let log = sidecar.log.clone();
    let exit = sidecar.terminate().await;
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(
        exit.success(),
        "the sidecar exits 0 on SIGTERM: {exit:?}\n{log}"
    );
    let entry = host_entry(sessions.get(&name).await.unwrap()).expect("the progress entry stays");
    assert_eq!(
        entry.phase, None,
        "a cancelled backup writes no final entry, so the restarted sidecar backs up again:\n{log}"
    );
    let objects = s3::shared().list_objects(&bucket);
    assert!(
        objects.iter().any(|o| o.contains("/config")),
        "the repository was initialised: {objects:?}"
    );
    assert!(
        !objects.iter().any(|o| o.contains("/locks/")),
        "the cancelled backup removed its lock: {objects:?}"
    );
    assert!(
        !objects.iter().any(|o| o.contains("/snapshots/")),
        "no snapshot of a cancelled backup: {objects:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_statefulset_pods_back_up_in_turn_as_host_ordinal_and_the_last_one_runs_the_post_actions()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("source-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.txt"), "replica data\n").unwrap();
    let bucket = format!("run-backup-{}", ns.name());
    let (access, secret) = (s3::ENV[0].1, s3::ENV[1].1);
    create_objects(
        &client,
        &ns,
        &bucket,
        &[
            ("RESTIC_PASSWORD", PASSWORD),
            ("AWS_ACCESS_KEY_ID", access),
            ("AWS_SECRET_ACCESS_KEY", secret),
        ],
        &data,
        "StatefulSet",
    )
    .await;
    let first = start_sidecar(env, &ns, dir.path(), "", "StatefulSet", "stash-demo-0");
    let second = start_sidecar(env, &ns, dir.path(), "", "StatefulSet", "stash-demo-1");
    let name = create_session(&client, &ns).await;
    play_operator(&client, &ns, &name, "StatefulSet", 2).await;

    for (host, sidecar) in [("host-0", &first), ("host-1", &second)] {
        let entry = final_entry(&client, &ns, &name, sidecar, host).await;
        assert_eq!(
            entry.phase,
            Some(HostBackupPhase::Succeeded),
            "{entry:?}\n{}",
            sidecar.log()
        );
    }
    let all = [
        ConditionType::BackendRepositoryInitialized,
        ConditionType::RetentionPolicyApplied,
        ConditionType::RepositoryIntegrityVerified,
        ConditionType::RepositoryMetricsPushed,
    ];
    let found = conditions(&client, &ns, &name, &all, &first).await;
    for type_ in all {
        let (status, message) = status_of(&found, type_);
        assert_eq!(
            status,
            ConditionStatus::True,
            "{type_:?}: {message}\n{}\n{}",
            first.log(),
            second.log()
        );
    }
    let repository = Api::<Repository>::namespaced(client.clone(), &ns)
        .get("s3-repo")
        .await
        .unwrap();
    assert_eq!(
        repository.status.and_then(|s| s.snapshot_count),
        Some(2),
        "one snapshot per host"
    );

    let restic_dir = tempfile::tempdir().unwrap();
    let out = restic::command_with_password(restic_dir.path(), PASSWORD)
        .envs(s3::env())
        .env(
            "RESTIC_REPOSITORY",
            s3::shared().repository(&bucket, "demo/deployment"),
        )
        .args(["snapshots", "--json"])
        .output()
        .expect("run restic snapshots");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let mut hosts: Vec<_> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["hostname"].as_str().map(str::to_owned))
        .collect();
    hosts.sort();
    assert_eq!(hosts, ["host-0", "host-1"], "{listed}");

    for sidecar in [first, second] {
        let exit = sidecar.terminate().await;
        assert!(exit.success(), "{exit:?}");
    }
}
