//! `stash restore --invoker-kind=RestoreSession …`, what the operator's `stash-init` init-container
//! runs (§10): the real binary, with the flags the operator injects, against the real API server and a
//! real S3 server holding a repository that Debian's restic made as Stash's sidecar does
//! (`--host host-0`). The test plays the operator: it sets `totalHosts`.

// Kind names (RestoreSession, Repository) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use stash_api::phase::HostRestorePhase;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{HostRestoreStats, RestoreSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{TestEnv, paths, restic, s3, tree};

const PREFIX: &str = "demo/deployment";

/// Backs `data` up with restic into a fresh S3 repository in `bucket`, as host `host-0`.
fn backup_with_restic(scratch: &Path, data: &Path, bucket: &str) {
    let server = s3::shared();
    server.create_bucket(bucket);
    let repo = server.repository(bucket, PREFIX);
    let restic = |args: &[&str]| {
        let out = restic::command(scratch)
            .envs(s3::env())
            .args(["-r", &repo])
            .args(args)
            .output()
            .expect("run restic");
        assert!(
            out.status.success(),
            "restic {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    restic(&["init"]);
    restic(&["backup", "--host", "host-0", &data.display().to_string()]);
}

/// The Repository `s3-repo` on the test S3 server and its storage Secret `s3-secret`.
async fn create_repository(client: &kube::Client, ns: &str, bucket: &str) {
    let mut secret = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-secret"},
        "stringData": {"RESTIC_PASSWORD": restic::PASSWORD}
    });
    for (key, value) in s3::env() {
        secret["stringData"][key] = value.into();
    }
    let secret: Secret = serde_json::from_value(secret).expect("a Secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the storage Secret");
    let repository: Repository = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "s3-repo"},
        "spec": {"backend": {
            "s3": {"endpoint": s3::shared().endpoint(), "bucket": bucket,
                   "prefix": format!("/{PREFIX}"), "region": "us-east-1"},
            "storageSecretName": "s3-secret"}}
    }))
    .expect("a Repository");
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create the Repository");
}

/// A RestoreSession of Deployment `stash-demo` with `rule`, as the user creates it.
async fn create_restore_session(
    client: &kube::Client,
    ns: &str,
    name: &str,
    rule: serde_json::Value,
) {
    let api = Api::<RestoreSession>::namespaced(client.clone(), ns);
    let session: RestoreSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "RestoreSession",
        "metadata": {"name": name},
        "spec": {
            "repository": {"name": "s3-repo"},
            "target": {"ref": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "stash-demo"},
                       "rules": [rule]}
        }
    }))
    .expect("a RestoreSession");
    api.create(&PostParams::default(), &session)
        .await
        .expect("create the RestoreSession");
}

/// `totalHosts: 1`, as the operator sets it when it injects the init-container.
async fn set_total_hosts(client: &kube::Client, ns: &str, name: &str) {
    Api::<RestoreSession>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "totalHosts": 1}})),
        )
        .await
        .expect("set totalHosts as the operator does");
}

/// `stash restore` with the operator's arguments, as the init-container of Deployment pod `pod`.
fn init_container(
    env: &TestEnv,
    ns: &str,
    session: &str,
    scratch: &Path,
    pushgateway: &str,
    pod: &str,
) -> Command {
    let stash = paths::stash_bin().expect("target/debug/stash is built by scripts/test");
    let mut command = Command::new(stash);
    command
        .args([
            "restore",
            "--invoker-kind=RestoreSession",
            &format!("--invoker-name={session}"),
            "--target-name=stash-demo",
            &format!("--target-namespace={ns}"),
            "--target-kind=Deployment",
            "--enable-cache=true",
            "--max-connections=0",
            "--metrics-enabled=true",
            &format!("--pushgateway-url={pushgateway}"),
            "--use-kubeapiserver-fqdn-for-aks=true",
            "--v=3",
            "-v",
        ])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("MY_POD_NAMESPACE", ns)
        .env("POD_NAME", pod)
        .env("NODE_NAME", "node-0")
        .env("TMPDIR", scratch)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn output(mut command: Command) -> Output {
    command.output().expect("run stash restore")
}

/// Starts one command per pod at the same time and waits for all of them.
fn run_at_once(pods: &[&str], command: impl Fn(&str) -> Command) -> Vec<Output> {
    let children: Vec<_> = pods
        .iter()
        .map(|pod| command(pod).spawn().expect("start stash restore"))
        .collect();
    children
        .into_iter()
        .map(|child| child.wait_with_output().expect("wait for stash restore"))
        .collect()
}

async fn host_entry(client: &kube::Client, ns: &str, name: &str) -> HostRestoreStats {
    let session = Api::<RestoreSession>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("read the RestoreSession");
    let stats = session.status.and_then(|s| s.stats).unwrap_or_default();
    assert_eq!(stats.len(), 1, "one entry for the one host: {stats:?}");
    assert_eq!(stats[0].hostname.as_deref(), Some("host-0"));
    stats[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_replicas_restores_host_0_to_its_original_paths_and_a_later_run_does_nothing() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let data = scratch.path().join("data");
    tree::full(&data, false);
    let before = tree::describe(&data);
    let bucket = format!("agent-restore-{}", std::process::id());
    tokio::task::block_in_place(|| backup_with_restic(scratch.path(), &data, &bucket));
    std::fs::remove_dir_all(&data).expect("delete the backed-up tree");
    create_repository(&client, ns.name(), &bucket).await;
    create_restore_session(
        &client,
        ns.name(),
        "deployment-restore",
        json!({"paths": [data.display().to_string()]}),
    )
    .await;
    set_total_hosts(&client, ns.name(), "deployment-restore").await;
    let gateway = Pushgateway::start();

    // Two replicas of the Deployment start at once; both restore host-0 unless the Lease serialises them.
    let replicas = ["stash-demo-6d4c8b9f7-x2x9q", "stash-demo-6d4c8b9f7-p8k4z"];
    let outs = tokio::task::block_in_place(|| {
        run_at_once(&replicas, |pod| {
            init_container(
                env,
                ns.name(),
                "deployment-restore",
                scratch.path(),
                &gateway.url(),
                pod,
            )
        })
    });
    for out in &outs {
        assert!(
            out.status.success(),
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let restored = outs
        .iter()
        .filter(|out| String::from_utf8_lossy(&out.stdout).contains("restored host host-0"))
        .count();
    assert_eq!(restored, 1, "exactly one replica restores host-0");
    assert_eq!(
        tree::describe(&data),
        before,
        "the tree is back at its original absolute path"
    );
    let entry = host_entry(&client, ns.name(), "deployment-restore").await;
    assert_eq!(entry.phase, Some(HostRestorePhase::Succeeded), "{entry:?}");
    assert!(entry.duration.is_some(), "{entry:?}");
    assert_eq!(entry.error, None);
    let progress = entry
        .progress
        .clone()
        .expect("the final figures stay in the entry");
    assert!(
        progress.files_done.unwrap_or_default() > 0 && progress.bytes_done.unwrap_or_default() > 0,
        "{progress:?}"
    );
    let success = gateway.samples("stash_restore_host_restore_success");
    assert!(
        success
            .iter()
            .any(|s| s.contains("hostname=\"host-0\"") && s.ends_with(" 1")),
        "the host's success gauge is pushed: {success:?}"
    );

    std::fs::remove_dir_all(&data).expect("delete the restored tree");
    let again = tokio::task::block_in_place(|| {
        output(init_container(
            env,
            ns.name(),
            "deployment-restore",
            scratch.path(),
            &gateway.url(),
            replicas[0],
        ))
    });
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("nothing to restore"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    assert!(!data.exists(), "a final host is not restored twice");
    assert_eq!(
        host_entry(&client, ns.name(), "deployment-restore").await,
        entry,
        "the second run leaves the entry alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_waiting_for_total_hosts_a_snapshot_that_does_not_exist_fails_the_host_naming_it() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let data = scratch.path().join("data");
    tree::full(&data, false);
    let bucket = format!("agent-restore-missing-{}", std::process::id());
    tokio::task::block_in_place(|| backup_with_restic(scratch.path(), &data, &bucket));
    create_repository(&client, ns.name(), &bucket).await;
    create_restore_session(
        &client,
        ns.name(),
        "missing-snapshot",
        json!({"snapshots": ["deadbeef"]}),
    )
    .await;
    let gateway = Pushgateway::start();

    let mut pod = init_container(
        env,
        ns.name(),
        "missing-snapshot",
        scratch.path(),
        &gateway.url(),
        "stash-demo-6d4c8b9f7-x2x9q",
    )
    .spawn()
    .expect("start stash restore");
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    assert!(
        pod.try_wait().expect("poll stash restore").is_none(),
        "the init-container waits for the operator's totalHosts"
    );
    let session = Api::<RestoreSession>::namespaced(client.clone(), ns.name())
        .get("missing-snapshot")
        .await
        .expect("read the RestoreSession");
    assert_eq!(session.status, None, "nothing is written before totalHosts");
    set_total_hosts(&client, ns.name(), "missing-snapshot").await;
    let out =
        tokio::task::block_in_place(|| pod.wait_with_output().expect("wait for stash restore"));
    assert!(!out.status.success(), "a failed restore exits non-zero");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("deadbeef"),
        "stderr names the snapshot: {stderr}"
    );
    let entry = host_entry(&client, ns.name(), "missing-snapshot").await;
    assert_eq!(entry.phase, Some(HostRestorePhase::Failed), "{entry:?}");
    let error = entry.error.unwrap_or_default();
    assert!(
        error.contains("deadbeef"),
        "the entry names the snapshot: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_whose_password_does_not_open_the_repository_fails_the_host_naming_the_secret_key()
{
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let data = scratch.path().join("data");
    tree::full(&data, false);
    let bucket = format!("agent-restore-password-{}", std::process::id());
    tokio::task::block_in_place(|| backup_with_restic(scratch.path(), &data, &bucket));
    create_repository(&client, ns.name(), &bucket).await;
    Api::<Secret>::namespaced(client.clone(), ns.name())
        .patch(
            "s3-secret",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"RESTIC_PASSWORD": "not-the-password"}})),
        )
        .await
        .expect("change the Secret's password");
    create_restore_session(
        &client,
        ns.name(),
        "wrong-password",
        json!({"paths": [data.display().to_string()]}),
    )
    .await;
    set_total_hosts(&client, ns.name(), "wrong-password").await;
    let gateway = Pushgateway::start();

    let out = tokio::task::block_in_place(|| {
        output(init_container(
            env,
            ns.name(),
            "wrong-password",
            scratch.path(),
            &gateway.url(),
            "stash-demo-6d4c8b9f7-x2x9q",
        ))
    });
    assert!(!out.status.success(), "a failed restore exits non-zero");
    let entry = host_entry(&client, ns.name(), "wrong-password").await;
    assert_eq!(entry.phase, Some(HostRestorePhase::Failed), "{entry:?}");
    let error = entry.error.unwrap_or_default();
    assert!(
        error.contains("wrong password")
            && error.contains("RESTIC_PASSWORD")
            && error.contains("spec.backend.storageSecretName")
            && !error.contains("--password-file"),
        "the entry names the Secret key and the Repository field, not a flag: {error}"
    );
}
