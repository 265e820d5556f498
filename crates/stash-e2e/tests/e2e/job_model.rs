//! A standalone PersistentVolumeClaim backed up and restored through the job model (§9.3, §11.1), on the
//! real control plane with nothing stubbed: Stash's PVC BackupConfiguration and RestoreSession
//! examples, an S3 Repository (moto), the trigger's BackupSession, the operator's backup Job running
//! `backup-pvc` then `update-status` with the claim mounted at `/stash-data` (the pod runner runs its
//! containers as the real `stash` binary, with the service account the operator bound), a snapshot of
//! host `host-0` that Debian's restic lists, then a restore Job into a fresh claim, byte for byte.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase, RestorePhase};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession, RestoreSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{TestEnv, restic, s3, tree, wait_for};

use crate::operator::Operator;

/// A whole backup and restore on two shared cores: generous on purpose.
const FLOW_TIMEOUT: Duration = Duration::from_mins(4);
const PASSWORD: &str = "job-model-password";
const SOURCE_CLAIM: &str = "nfs-pvc";
const RESTORED_CLAIM: &str = "restored-pvc";

#[tokio::test]
async fn a_standalone_pvc_is_backed_up_and_restored_through_the_job_model() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = Pushgateway::start();
    let bucket = ns.name().to_owned();
    s3::shared().create_bucket(&bucket);
    create_repository(&client, &ns, &bucket).await;
    let operator = Operator::start(client.clone(), &ns, |c| {
        "stash-rs".clone_into(&mut c.docker_registry);
        "stash".clone_into(&mut c.image);
        c.pushgateway_url = pushgateway.url();
        c.leader_election = None;
    });

    create_claim(&client, &ns, SOURCE_CLAIM).await;
    let source = ns.pvc_dir(SOURCE_CLAIM);
    tree::full(&source, false);
    tree::write(&source.join("claim.txt"), b"a standalone claim\n");

    let mut bc = example(include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-pvc-job-model.yaml"
    ));
    // Job pods run with the service account the operator binds, so its RBAC is what they get.
    bc["spec"]["runtimeSettings"] = json!({"pod": {"podAnnotations": service_account_identity()}});
    let bc: BackupConfiguration = create(&client, &ns, bc).await;
    let session = trigger_and_wait(&client, &ns, &bc.name_any()).await;

    let target = &session.status.as_ref().unwrap().targets.as_ref().unwrap()[0];
    assert_eq!(target.total_hosts, Some(1), "one host for a claim (§8.5)");
    let hosts: Vec<_> = target
        .stats
        .iter()
        .flatten()
        .filter_map(|h| h.hostname.clone())
        .collect();
    assert_eq!(hosts, ["host-0"]);
    let job_name = format!("stash-backup-{}-0", session.name_any());
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get(&job_name)
        .await
        .unwrap_or_else(|e| panic!("the backup Job {job_name}: {e}"));
    assert_eq!(
        job.owner_references()[0].uid,
        session.uid().unwrap(),
        "the backup Job is owned by its BackupSession"
    );
    assert_eq!(
        snapshot_hosts(&bucket, &ns),
        BTreeSet::from(["host-0".to_owned()]),
        "restic lists the claim's snapshot under host-0"
    );
    let host_success = pushgateway.samples("stash_backup_host_backup_success");
    assert!(
        host_success
            .iter()
            .any(|s| s.contains("hostname=\"host-0\"") && s.ends_with(" 1")),
        "update-status pushed the host's metrics: {host_success:?}"
    );

    create_claim(&client, &ns, RESTORED_CLAIM).await;
    let mut rs = example(include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
    ));
    rs["spec"]["target"]["ref"]["name"] = json!(RESTORED_CLAIM);
    rs["spec"]["runtimeSettings"] = json!({"pod": {"podAnnotations": service_account_identity()}});
    let rs: RestoreSession = create(&client, &ns, rs).await;
    wait_restored(&client, &ns, &rs.name_any()).await;
    tree::assert_same(&source, &ns.pvc_dir(RESTORED_CLAIM));
    operator.stop().await;
}

fn service_account_identity() -> Value {
    json!({ stash_testenv::pod_runner::IDENTITY_ANNOTATION: "service-account" })
}

fn example(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("the example parses")
}

async fn create<K>(client: &Client, ns: &str, mut object: Value) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    object["metadata"]["namespace"] = json!(ns);
    let object: K = serde_json::from_value(object).expect("the example is a valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()))
}

async fn create_claim(client: &Client, ns: &str, name: &str) {
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .unwrap();
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &claim)
        .await
        .unwrap_or_else(|e| panic!("create PersistentVolumeClaim {name}: {e}"));
}

async fn create_repository(client: &Client, ns: &str, bucket: &str) {
    let mut data = serde_json::Map::new();
    data.insert("RESTIC_PASSWORD".into(), PASSWORD.into());
    for (key, value) in s3::env() {
        data.insert(key.into(), value.into());
    }
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s3-secret"}, "stringData": data
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret s3-secret");
    let repository: Repository = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "gcs-repo"},
        "spec": {"backend": {
            "s3": {"endpoint": s3::shared().endpoint(), "bucket": bucket, "prefix": "pvc"},
            "storageSecretName": "s3-secret"}}
    }))
    .unwrap();
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create the Repository the examples name (gcs-repo, here on S3)");
}

/// Runs the trigger as a user would (`kubectl create job --from=cronjob/…`) once the
/// BackupConfiguration is Ready, then waits for the session to succeed.
async fn trigger_and_wait(client: &Client, ns: &str, invoker: &str) -> BackupSession {
    let bcs: Api<BackupConfiguration> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("BackupConfiguration {invoker} to be Ready"),
        FLOW_TIMEOUT,
        || async {
            let bc = bcs.get(invoker).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                other => Err(format!("{other:?}: {:?}", bc.status)),
            }
        },
    )
    .await;
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let cronjob = wait_for(
        "the operator to create the trigger CronJob",
        FLOW_TIMEOUT,
        || async {
            cronjobs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .next()
                .ok_or_else(|| "no CronJob yet".to_owned())
        },
    )
    .await;
    let mut template = cronjob.spec.job_template;
    if let Some(pod) = template.spec.as_mut().map(|s| &mut s.template) {
        pod.metadata.get_or_insert_default().annotations =
            serde_json::from_value(service_account_identity()).unwrap();
    }
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some("manual-trigger".into()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .expect("create a Job from the trigger CronJob");
    let sessions: Api<BackupSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("a BackupSession of {invoker} to succeed through its backup Job"),
        FLOW_TIMEOUT,
        || async {
            let session = sessions
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .next()
                .ok_or_else(|| "no BackupSession yet".to_owned())?;
            let phase = session.status.as_ref().and_then(|s| s.phase);
            match phase {
                Some(BackupSessionPhase::Succeeded) => Ok(session),
                Some(BackupSessionPhase::Failed | BackupSessionPhase::Skipped) => {
                    panic!("the session ended {phase:?}: {:#?}", session.status)
                }
                _ => Err(format!("{:?}", session.status)),
            }
        },
    )
    .await
}

async fn wait_restored(client: &Client, ns: &str, name: &str) {
    let sessions: Api<RestoreSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("RestoreSession {name} to succeed through its restore Job"),
        FLOW_TIMEOUT,
        || async {
            let session = sessions.get(name).await.map_err(|e| e.to_string())?;
            let phase = session.status.as_ref().and_then(|s| s.phase);
            match phase {
                Some(RestorePhase::Succeeded) => Ok(()),
                Some(RestorePhase::Failed | RestorePhase::Invalid) => {
                    panic!("the restore ended {phase:?}: {:#?}", session.status)
                }
                _ => Err(format!("{:?}", session.status)),
            }
        },
    )
    .await;
}

/// The hosts of the snapshots restic (Debian's, the oracle) sees in the repository.
fn snapshot_hosts(bucket: &str, ns: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = restic::command_with_password(dir.path(), PASSWORD)
        .envs(s3::env())
        .args(["--no-lock", "--json", "-r"])
        .arg(s3::shared().repository(bucket, "pvc"))
        .arg("snapshots")
        .output()
        .expect("run restic snapshots");
    assert!(
        out.status.success(),
        "restic snapshots in namespace {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshots: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    snapshots
        .iter()
        .filter_map(|s| s["hostname"].as_str().map(str::to_owned))
        .collect()
}
