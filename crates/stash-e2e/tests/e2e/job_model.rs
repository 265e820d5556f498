//! A standalone PersistentVolumeClaim backed up and restored through the job model (§9.3, §11.1), on the
//! real control plane with nothing stubbed: Stash's PVC BackupConfiguration and RestoreSession
//! examples, an S3 Repository (moto), the trigger's BackupSession, the operator's backup Job running
//! `backup-pvc` then `update-status` with the claim mounted at `/stash-data` (the pod runner runs its
//! containers as the real `stash` binary, with the service account the operator bound), a snapshot of
//! host `host-0` that Debian's restic lists, then a restore Job into a fresh claim, byte for byte.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::ConditionType;
use stash_api::phase::RestorePhase;
use stash_api::v1beta1::{BackupConfiguration, RestoreSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{TestEnv, s3, tree};

use crate::operator::Operator;
use crate::support::{
    S3Repository, create, example, service_account_identity, trigger_and_wait, wait_restore_final,
    wait_restored,
};

const PASSWORD: &str = "job-model-password";
const SOURCE_CLAIM: &str = "nfs-pvc";
const RESTORED_CLAIM: &str = "restored-pvc";
const BACKUP_EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-pvc-job-model.yaml"
);
const RESTORE_EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
);
/// A restore Job that fails ends its RestoreSession when the Job does, long before any deadline; this
/// leaves room for a pod start on two busy cores.
const FAILED_RESTORE_WITHIN: Duration = Duration::from_mins(1);

fn repository(bucket: &str) -> S3Repository<'_> {
    S3Repository {
        bucket,
        prefix: "pvc",
        password: PASSWORD,
    }
}

/// Stash's PVC RestoreSession example restoring into claim `RESTORED_CLAIM`, its Job running with the
/// service account the operator binds.
async fn create_restore_session(client: &Client, ns: &str) -> RestoreSession {
    create_claim(client, ns, RESTORED_CLAIM).await;
    let mut rs = example(RESTORE_EXAMPLE);
    rs["spec"]["target"]["ref"]["name"] = json!(RESTORED_CLAIM);
    rs["spec"]["runtimeSettings"] = json!({"pod": {"podAnnotations": service_account_identity()}});
    create(client, ns, rs).await
}

#[tokio::test]
async fn a_standalone_pvc_is_backed_up_and_restored_through_the_job_model() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = Pushgateway::start();
    let bucket = ns.name().to_owned();
    s3::shared().create_bucket(&bucket);
    repository(&bucket).create(&client, &ns).await;
    let operator = Operator::start_running_stash(client.clone(), &ns, pushgateway.url());

    create_claim(&client, &ns, SOURCE_CLAIM).await;
    let source = ns.pvc_dir(SOURCE_CLAIM);
    tree::full(&source, false);
    tree::write(&source.join("claim.txt"), b"a standalone claim\n");

    let mut bc = example(BACKUP_EXAMPLE);
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
        repository(&bucket).snapshot_hosts(),
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

    let rs = create_restore_session(&client, &ns).await;
    wait_restored(&client, &ns, &rs.name_any()).await;
    tree::assert_same(&source, &ns.pvc_dir(RESTORED_CLAIM));
    operator.stop().await;
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

#[tokio::test]
async fn a_restore_job_that_cannot_open_the_repository_fails_its_restore_session_at_once_naming_the_password_key()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = Pushgateway::start();
    let bucket = ns.name().to_owned();
    s3::shared().create_bucket(&bucket);
    let repository = repository(&bucket);
    // The repository exists, initialised with another password than the Secret holds.
    repository.restic("another-password", &["init"]);
    repository.create(&client, &ns).await;
    let operator = Operator::start_running_stash(client.clone(), &ns, pushgateway.url());

    let started = Instant::now();
    let rs = create_restore_session(&client, &ns).await;
    let ended = wait_restore_final(&client, &ns, &rs.name_any(), FAILED_RESTORE_WITHIN).await;
    let status = ended.status.as_ref().unwrap();
    assert_eq!(
        status.phase,
        Some(RestorePhase::Failed),
        "{status:#?} after {:?}",
        started.elapsed()
    );
    assert!(
        !status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == ConditionType::DeadlineExceeded),
        "the Job's failure ended it, not a deadline: {status:#?}"
    );
    let reasons: Vec<String> = status
        .stats
        .iter()
        .flatten()
        .filter_map(|h| h.error.clone())
        .chain(
            status
                .conditions
                .iter()
                .flatten()
                .filter(|c| c.type_ == ConditionType::RestoreCompleted)
                .filter_map(|c| c.message.clone()),
        )
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("RESTIC_PASSWORD")),
        "the reason names the Secret's key: {reasons:?}"
    );
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get(&format!("stash-restore-{}-0", rs.name_any()))
        .await
        .expect("the restore Job");
    assert_eq!(job.owner_references()[0].uid, rs.uid().unwrap());
    operator.stop().await;
}
