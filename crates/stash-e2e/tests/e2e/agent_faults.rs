//! Faults and retention of `stash run-backup`, the `stash` sidecar (issue #11), run as a process
//! against the real API server, the shared S3 server (moto) and Debian's restic. As in
//! agent_run_backup.rs the test plays the operator's part of docs/session-protocol.md (the target
//! entry, and failing a session the operator gave up on); the sidecar does the rest.
//!
//! Covered elsewhere and not repeated here: a Secret without `RESTIC_PASSWORD`
//! (agent_run_backup.rs), SIGTERM mid-backup (agent_run_backup.rs), and a repository made by
//! Debian's restic 0.14 restored through a RestoreSession (agent_restore.rs).

// Kind names (BackupSession, Repository) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use serde_json::json;
use stash_api::condition::{Condition, ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::{BackupSessionPhase, HostBackupPhase};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupSession, HostBackupStats};
use stash_testenv::{TestEnv, TestNamespace, paths, restic, s3, servers, tree};

use crate::TIMEOUT;

const POD_NAME: &str = "stash-demo-5d4f8b7c9-x2k4p";
const PASSWORD: &str = "not@secret";
const PREFIX: &str = "demo/deployment";
const POST_ACTIONS: [ConditionType; 4] = [
    ConditionType::BackendRepositoryInitialized,
    ConditionType::RetentionPolicyApplied,
    ConditionType::RepositoryIntegrityVerified,
    ConditionType::RepositoryMetricsPushed,
];

/// One test's namespace, scratch directory, source data and bucket.
struct Fixture {
    env: &'static TestEnv,
    ns: TestNamespace,
    client: kube::Client,
    dir: tempfile::TempDir,
    data: PathBuf,
    bucket: String,
}

impl Fixture {
    async fn new() -> Self {
        let env = TestEnv::shared().await;
        let ns = env.namespace().await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("source-data");
        std::fs::create_dir_all(&data).unwrap();
        let bucket = format!("faults-{}", ns.name());
        s3::shared().create_bucket(&bucket);
        Self {
            env,
            client: env.client(),
            ns,
            dir,
            data,
            bucket,
        }
    }

    fn sessions(&self) -> Api<BackupSession> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The storage Secret (S3 credentials and `password`), the Repository `s3-repo` and the
    /// BackupConfiguration `deployment-backup` of Deployment `stash-demo` with `retention`.
    async fn create_objects(&self, password: &str, retention: serde_json::Value) {
        let mut secret = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-secret"},
            "stringData": {"RESTIC_PASSWORD": password}
        });
        for (key, value) in s3::env() {
            secret["stringData"][key] = value.into();
        }
        let secret: Secret = serde_json::from_value(secret).unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create the storage Secret");
        let repository: Repository = serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "s3-repo"},
            "spec": {"backend": {
                "s3": {"endpoint": s3::shared().endpoint(), "bucket": self.bucket,
                       "prefix": format!("/{PREFIX}"), "region": "us-east-1"},
                "storageSecretName": "s3-secret"}}
        }))
        .unwrap();
        Api::<Repository>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &repository)
            .await
            .expect("create the Repository");
        let bc: stash_api::v1beta1::BackupConfiguration = serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupConfiguration",
            "metadata": {"name": "deployment-backup"},
            "spec": {
                "repository": {"name": "s3-repo"},
                "schedule": "*/5 * * * *",
                "target": {
                    "ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-demo"},
                    "paths": [self.data.to_str().unwrap()],
                },
                "retentionPolicy": retention,
            }
        }))
        .unwrap();
        Api::<stash_api::v1beta1::BackupConfiguration>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &bc)
            .await
            .expect("create the BackupConfiguration");
    }

    /// `stash run-backup` with the sidecar args of §8.4 and the pod's env, as root or, with
    /// `without_dac`, as root without the capabilities that let root read any file.
    fn start_sidecar(&self, label: &str, without_dac: bool) -> Sidecar {
        let log = self.dir.path().join(format!("sidecar-{label}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let tmp = self.dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let stash = paths::stash_bin().expect("target/debug/stash is built by scripts/test");
        let mut command = if without_dac {
            // Root passes every permission check through CAP_DAC_OVERRIDE and
            // CAP_DAC_READ_SEARCH; without them mode 000 bites as for any other user.
            let mut command = Command::new(restic::require_tool(
                "setpriv",
                "apt-get install -y util-linux",
            ));
            command.args([
                "--inh-caps=-dac_override,-dac_read_search",
                "--bounding-set=-dac_override,-dac_read_search",
                "--",
            ]);
            command.arg(stash);
            command
        } else {
            Command::new(stash)
        };
        let child = command
            .args([
                "run-backup",
                "--invoker-name=deployment-backup",
                "--invoker-kind=BackupConfiguration",
                "--target-name=stash-demo",
                &format!("--target-namespace={}", self.ns.name()),
                "--target-kind=Deployment",
                "--enable-cache=true",
                "--max-connections=0",
                "--metrics-enabled=false",
                "--v=3",
            ])
            .env("KUBECONFIG", self.env.kubeconfig_path())
            .env("KUBE_NAMESPACE", self.ns.name())
            .env("POD_NAME", POD_NAME)
            .env("NODE_NAME", "node-1")
            .env("TMPDIR", &tmp)
            .env("RUST_LOG", "info,stash_agent=debug,stash_engine=debug")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start stash run-backup");
        Sidecar { child, log }
    }

    /// A BackupSession `name` of `deployment-backup`, labelled as the trigger labels it (§5.2),
    /// with the target entry the operator writes when it starts the session (protocol step 3).
    async fn start_session(&self, name: &str) {
        let session: BackupSession = serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
            "metadata": {"name": name, "labels": {
                labels::LABEL_INVOKER_TYPE: "BackupConfiguration",
                labels::LABEL_INVOKER_NAME: "deployment-backup",
            }},
            "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": "deployment-backup"}}
        }))
        .unwrap();
        let api = self.sessions();
        let mut session = api
            .create(&PostParams::default(), &session)
            .await
            .expect("create the BackupSession");
        session.status = Some(
            serde_json::from_value(json!({
                "phase": "Running",
                "targets": [{
                    "ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-demo", "namespace": self.ns.name()},
                    "totalHosts": 1,
                    "phase": "Running",
                    "preBackupActions": ["InitializeBackendRepository"],
                    "postBackupActions": ["ApplyRetentionPolicy", "VerifyRepositoryIntegrity", "SendRepositoryMetrics"],
                }]
            }))
            .unwrap(),
        );
        api.replace_status(name, &PostParams::default(), &session)
            .await
            .expect("write the target entry as the operator does");
    }

    /// `host-0`'s entry in session `name`, if any.
    async fn host_entry(&self, name: &str) -> Option<HostBackupStats> {
        let session = self.sessions().get(name).await.expect("read the session");
        session
            .status
            .and_then(|s| s.targets)
            .and_then(|t| t.into_iter().next())
            .and_then(|t| t.stats)
            .and_then(|s| {
                s.into_iter()
                    .find(|h| h.hostname.as_deref() == Some("host-0"))
            })
    }

    /// Polls `check` every 200 ms until it returns `Some`, or panics with the sidecar's log.
    async fn poll<T, F, Fut>(&self, what: &str, sidecar: &Sidecar, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let found = tokio::time::timeout(TIMEOUT, async {
            loop {
                if let Some(found) = check().await {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "timed out after {TIMEOUT:?} waiting for {what}; sidecar log:\n{}",
                sidecar.log()
            )
        })
    }

    /// `host-0`'s final entry in session `name`.
    async fn final_entry(&self, name: &str, sidecar: &Sidecar) -> HostBackupStats {
        self.poll(
            &format!("host-0's final entry in {name}"),
            sidecar,
            move || async move { self.host_entry(name).await.filter(|e| e.phase.is_some()) },
        )
        .await
    }

    /// The session's conditions once all of `types` are set.
    async fn conditions(
        &self,
        name: &str,
        types: &[ConditionType],
        sidecar: &Sidecar,
    ) -> Vec<Condition> {
        self.poll(
            &format!("conditions {types:?} of {name}"),
            sidecar,
            move || async move {
                let session = self.sessions().get(name).await.expect("read the session");
                let conditions = session
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default();
                types
                    .iter()
                    .all(|t| conditions.iter().any(|c| c.type_ == *t))
                    .then_some(conditions)
            },
        )
        .await
    }

    /// Asserts that all four actions' conditions of session `name` are True.
    async fn assert_all_actions_succeeded(&self, name: &str, sidecar: &Sidecar) -> Vec<Condition> {
        let found = self.conditions(name, &POST_ACTIONS, sidecar).await;
        for type_ in POST_ACTIONS {
            let condition = found.iter().find(|c| c.type_ == type_).unwrap();
            assert_eq!(
                condition.status,
                ConditionStatus::True,
                "{name} {type_:?}: {:?}\n{}",
                condition.message,
                sidecar.log()
            );
        }
        found
    }

    /// Debian's restic on the repository, with `args`; its stdout, or a panic with its stderr.
    fn restic(&self, args: &[&str]) -> String {
        let scratch = tempfile::tempdir().unwrap();
        let out = restic::command_with_password(scratch.path(), PASSWORD)
            .envs(s3::env())
            .env(
                "RESTIC_REPOSITORY",
                s3::shared().repository(&self.bucket, PREFIX),
            )
            .args(args)
            .output()
            .expect("run restic");
        assert!(
            out.status.success(),
            "restic {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// restic's short ids of the snapshots in the repository, oldest first.
    fn restic_snapshot_ids(&self) -> Vec<String> {
        let listed: serde_json::Value =
            serde_json::from_str(&self.restic(&["snapshots", "--json"])).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["short_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The repository's objects under `dir/` (`data`, `locks`, …) and their sizes.
    fn objects(&self, dir: &str) -> BTreeMap<String, u64> {
        let url = format!(
            "{}/{}?list-type=2&prefix={PREFIX}/{dir}/",
            s3::shared().endpoint(),
            self.bucket
        );
        let listing = servers::get(&url).expect("list the bucket").text();
        assert!(
            !listing.contains("<IsTruncated>true</IsTruncated>"),
            "more than one page of {dir}/ objects"
        );
        listing
            .split("<Contents>")
            .skip(1)
            .map(|entry| {
                let field = |name: &str| {
                    let (_, rest) = entry.split_once(&format!("<{name}>")).unwrap();
                    rest.split_once(&format!("</{name}>")).unwrap().0.to_owned()
                };
                (field("Key"), field("Size").parse().unwrap())
            })
            .collect()
    }
}

/// The sidecar process; killed if the test ends early.
struct Sidecar {
    child: Child,
    log: PathBuf,
}

impl Sidecar {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as the kernel's OOM killer or a node failure ends a container: no cleanup at all.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the sidecar");
        self.child.wait().expect("reap the sidecar");
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn short_id(entry: &HostBackupStats) -> String {
    let snapshots = entry.snapshots.clone().unwrap_or_default();
    assert_eq!(
        snapshots.len(),
        1,
        "one snapshot of the one path: {entry:?}"
    );
    snapshots[0].name.clone().expect("the snapshot's short id")
}

fn total(objects: &BTreeMap<String, u64>) -> u64 {
    objects.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_mid_backup_blocks_nothing_and_the_next_session_reuses_its_uploaded_data()
{
    // Incompressible files, enough that the backup is still running when its first packs land.
    const FILES: u64 = 6;
    const FILE_SIZE: u64 = 32 << 20;
    let f = Fixture::new().await;
    let data_size = FILES * FILE_SIZE;
    for i in 0..FILES {
        tree::write(
            &f.data.join(format!("part-{i}.bin")),
            &tree::pseudo_random(i + 1, usize::try_from(FILE_SIZE).unwrap()),
        );
    }
    f.create_objects(
        PASSWORD,
        json!({"name": "keep-last-5", "keepLast": 5, "prune": true}),
    )
    .await;
    let first = f.start_sidecar("killed", false);
    f.start_session("deployment-backup-1").await;

    // Mid-backup: the session shows the host backing up, and its first packs are in the bucket.
    let fixture = &f;
    let done = f
        .poll("host-0 to back up and upload two packs", &first, move || async move {
            let entry = fixture.host_entry("deployment-backup-1").await?;
            assert_eq!(
                entry.phase, None,
                "the backup ended before it could be killed mid-way; make the data larger: {entry:?}"
            );
            let done = entry.progress?.bytes_done?;
            (fixture.objects("data").len() >= 2).then_some(done)
        })
        .await;
    first.kill();
    let left_behind = f.objects("data");
    assert!(
        f.objects("snapshots").is_empty(),
        "the backup was killed before its snapshot"
    );
    assert!(
        !f.objects("locks").is_empty(),
        "SIGKILL leaves the backup's lock in the repository (what this test is about)"
    );
    let uploaded = total(&left_behind);
    assert!(
        uploaded > 0 && uploaded < data_size,
        "killed mid-way: {uploaded} of {data_size} bytes in data/ (progress said {done})"
    );

    // The operator gives up on the session (its deadline), the kubelet restarts the sidecar, and
    // the next scheduled session comes.
    let mut session = f.sessions().get("deployment-backup-1").await.unwrap();
    session.status.as_mut().unwrap().phase = Some(BackupSessionPhase::Failed);
    f.sessions()
        .replace_status("deployment-backup-1", &PostParams::default(), &session)
        .await
        .expect("fail the abandoned session as the operator does");
    let second = f.start_sidecar("restarted", false);
    f.start_session("deployment-backup-2").await;

    let entry = f.final_entry("deployment-backup-2", &second).await;
    assert_eq!(
        entry.phase,
        Some(HostBackupPhase::Succeeded),
        "{entry:?}\n{}",
        second.log()
    );
    // Retention with prune took the repository's exclusive lock despite the dead one.
    f.assert_all_actions_succeeded("deployment-backup-2", &second)
        .await;
    assert_eq!(
        f.host_entry("deployment-backup-1")
            .await
            .and_then(|e| e.phase),
        None,
        "the failed session is left alone"
    );

    let stored = f.objects("data");
    let reused: Vec<_> = left_behind
        .keys()
        .filter(|key| !stored.contains_key(*key))
        .collect();
    assert!(
        reused.is_empty(),
        "the killed backup's packs hold the new snapshot's data, so prune keeps them; gone: {reused:?}\n{}",
        second.log()
    );
    let added: u64 = stored
        .iter()
        .filter(|(key, _)| !left_behind.contains_key(*key))
        .map(|(_, size)| size)
        .sum();
    assert!(
        added < data_size - uploaded / 2,
        "the second backup uploaded {added} bytes of {data_size} although {uploaded} were in the repository already"
    );
    assert!(
        f.objects("locks").is_empty(),
        "no lock is left: {:?}",
        f.objects("locks")
    );
    assert_eq!(f.restic_snapshot_ids(), [short_id(&entry)]);
    f.restic(&["check"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keep_last_2_the_last_host_leaves_the_two_newest_snapshots_after_three_sessions() {
    let f = Fixture::new().await;
    f.create_objects(
        PASSWORD,
        json!({"name": "keep-last-2", "keepLast": 2, "prune": true}),
    )
    .await;
    let sidecar = f.start_sidecar("retention", false);
    let mut ids = Vec::new();
    let mut last_conditions = Vec::new();
    for i in 1..=3 {
        // Each session sees other data, as a live application's volume would.
        std::fs::write(f.data.join("state.txt"), format!("version {i}\n")).unwrap();
        let name = format!("deployment-backup-{i}");
        f.start_session(&name).await;
        let entry = f.final_entry(&name, &sidecar).await;
        assert_eq!(
            entry.phase,
            Some(HostBackupPhase::Succeeded),
            "{entry:?}\n{}",
            sidecar.log()
        );
        ids.push(short_id(&entry));
        last_conditions = f.assert_all_actions_succeeded(&name, &sidecar).await;
    }

    let retention = last_conditions
        .iter()
        .find(|c| c.type_ == ConditionType::RetentionPolicyApplied)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        retention.contains("1 snapshot(s) removed") && retention.contains("keep-last-2"),
        "{retention}"
    );
    assert_eq!(
        f.restic_snapshot_ids(),
        ids[1..],
        "the oldest of the three is forgotten"
    );
    let status = Api::<Repository>::namespaced(f.client.clone(), &f.ns)
        .get("s3-repo")
        .await
        .unwrap()
        .status
        .expect("the Repository status");
    assert_eq!(status.snapshot_count, Some(2), "{status:?}");
    assert_eq!(
        status.snapshots_removed_on_last_cleanup,
        Some(1),
        "{status:?}"
    );
    f.restic(&["check"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_whose_password_does_not_open_the_repository_fails_the_host_saying_so() {
    let f = Fixture::new().await;
    std::fs::write(f.data.join("a.txt"), "data\n").unwrap();
    f.restic(&["init"]);
    f.create_objects(
        "not-the-password",
        json!({"name": "keep-last-5", "keepLast": 5, "prune": true}),
    )
    .await;
    let sidecar = f.start_sidecar("wrong-password", false);
    f.start_session("deployment-backup-1").await;

    let entry = f.final_entry("deployment-backup-1", &sidecar).await;
    assert_eq!(entry.phase, Some(HostBackupPhase::Failed), "{entry:?}");
    let error = entry.error.unwrap_or_default();
    assert!(
        error.contains("wrong password")
            && error.contains("RESTIC_PASSWORD")
            && error.contains("storageSecretName"),
        "{error}"
    );
    // The last host still ends the post actions, so the operator can finish the session.
    let found = f
        .conditions(
            "deployment-backup-1",
            &[ConditionType::RepositoryMetricsPushed],
            &sidecar,
        )
        .await;
    let metrics = found
        .iter()
        .find(|c| c.type_ == ConditionType::RepositoryMetricsPushed)
        .unwrap();
    assert_eq!(metrics.status, ConditionStatus::False, "{metrics:?}");
    assert!(
        f.objects("snapshots").is_empty() && f.objects("locks").is_empty(),
        "nothing written into the repository"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_the_sidecar_cannot_read_fail_its_host_naming_them_while_the_rest_is_saved() {
    let f = Fixture::new().await;
    std::fs::write(f.data.join("readable.txt"), "fine\n").unwrap();
    std::fs::write(f.data.join("locked.txt"), "secret\n").unwrap();
    std::fs::create_dir_all(f.data.join("locked-dir")).unwrap();
    std::fs::write(f.data.join("locked-dir/inside.txt"), "secret\n").unwrap();
    for locked in ["locked.txt", "locked-dir"] {
        std::fs::set_permissions(f.data.join(locked), std::fs::Permissions::from_mode(0o000))
            .unwrap();
    }
    f.create_objects(
        PASSWORD,
        json!({"name": "keep-last-5", "keepLast": 5, "prune": true}),
    )
    .await;
    let sidecar = f.start_sidecar("unreadable", true);
    f.start_session("deployment-backup-1").await;

    let entry = f.final_entry("deployment-backup-1", &sidecar).await;
    assert_eq!(
        entry.phase,
        Some(HostBackupPhase::Failed),
        "{entry:?}\n{}",
        sidecar.log()
    );
    let error = entry.error.clone().unwrap_or_default();
    assert!(
        !error.contains('\n'),
        "the status error is one line: {error}"
    );
    for name in [
        "locked.txt (Permission denied",
        "locked-dir (Permission denied",
        "could not be read",
    ] {
        assert!(error.contains(name), "{name} missing from: {error}");
    }
    assert!(
        !error.contains("readable.txt"),
        "only the unreadable entries are named: {error}"
    );
    let id = short_id(&entry);
    assert_eq!(
        f.restic_snapshot_ids(),
        std::slice::from_ref(&id),
        "the readable part is saved"
    );
    let listed = f.restic(&["ls", &id]);
    assert!(listed.contains("readable.txt"), "{listed}");
    assert!(!listed.contains("inside.txt"), "{listed}");
    for locked in ["locked.txt", "locked-dir"] {
        std::fs::set_permissions(f.data.join(locked), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
}
