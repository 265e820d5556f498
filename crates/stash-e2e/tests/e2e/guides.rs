//! Stash's three workload guides, end to end on the real control plane, with nothing stubbed: a Secret,
//! an S3 Repository (moto), the guide's BackupConfiguration, the operator injecting the `stash` sidecar
//! and creating the trigger CronJob, the CronJob's Job creating a BackupSession, every host backing up
//! its own volume, metrics in a real Pushgateway, then the guide's RestoreSession restoring into a fresh
//! workload through `stash-init`, byte for byte.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase, RestorePhase};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession, RestoreSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{TestEnv, TestNamespace, restic, s3, tree, wait_for};

use crate::operator::Operator;

/// A whole backup and restore on two shared cores: generous on purpose.
const FLOW_TIMEOUT: Duration = Duration::from_mins(4);
const PASSWORD: &str = "guide-password";

/// Which guide: the workload kind and the hosts that back up (§8.5).
struct Guide {
    kind: &'static str,
    backup_example: &'static str,
    restore_example: &'static str,
    hosts: Vec<String>,
}

#[tokio::test]
async fn the_deployment_guide_backs_up_through_the_trigger_and_restores_into_a_new_deployment() {
    Box::pin(run(Guide {
        kind: "Deployment",
        backup_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
        ),
        restore_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml"
        ),
        hosts: vec!["host-0".into()],
    }))
    .await;
}

#[tokio::test]
async fn the_statefulset_guide_backs_up_every_replica_as_its_own_host_and_restores_each() {
    Box::pin(run(Guide {
        kind: "StatefulSet",
        backup_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-statefulset.yaml"
        ),
        restore_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/restoresession-statefulset.yaml"
        ),
        hosts: (0..3).map(|i| format!("host-{i}")).collect(),
    }))
    .await;
}

#[tokio::test]
async fn the_daemonset_guide_backs_up_each_node_under_its_node_name_and_restores_it() {
    Box::pin(run(Guide {
        kind: "DaemonSet",
        backup_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-daemonset.yaml"
        ),
        restore_example: include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/restoresession-daemonset.yaml"
        ),
        hosts: vec![stash_testenv::pod_runner::NODE_NAME.to_owned()],
    }))
    .await;
}

async fn run(guide: Guide) {
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

    let sources = source_volumes(&guide, &ns);
    for (i, dir) in sources.iter().enumerate() {
        tree::full(dir, false);
        tree::write(&dir.join("host.txt"), format!("volume {i}\n").as_bytes());
    }
    create_workload(&client, &ns, guide.kind, "stash-demo").await;
    let bc = create_from_example::<BackupConfiguration>(&client, &ns, guide.backup_example).await;

    let session = trigger_and_wait(&client, &ns, &bc.name_any()).await;
    let stats = session.status.as_ref().and_then(|s| s.targets.as_ref());
    let hosts: BTreeSet<String> = stats
        .into_iter()
        .flatten()
        .flat_map(|t| t.stats.iter().flatten())
        .filter_map(|h| h.hostname.clone())
        .collect();
    assert_eq!(
        hosts,
        guide.hosts.iter().cloned().collect(),
        "the hosts of the session, as §8.5 names them"
    );
    assert_eq!(
        snapshot_hosts(&bucket, &ns),
        hosts,
        "restic lists one snapshot per host"
    );
    assert_metrics(&pushgateway, &bc.name_any(), &guide.hosts);

    for dir in &sources {
        std::fs::rename(dir, dir.with_extension("orig")).expect("move the source away");
    }
    create_workload(&client, &ns, guide.kind, "stash-recovered").await;
    let restore = create_from_example::<RestoreSession>(&client, &ns, guide.restore_example).await;
    wait_restored(&client, &ns, &restore.name_any()).await;
    for (source, restored) in sources.iter().zip(recovered_volumes(&guide, &ns)) {
        tree::assert_same(&source.with_extension("orig"), &restored);
    }
    operator.stop().await;
}

/// The host directories of the guide workload's volumes, one per host, in host order.
fn source_volumes(guide: &Guide, ns: &TestNamespace) -> Vec<PathBuf> {
    volumes(guide, ns, "stash-demo")
}

fn recovered_volumes(guide: &Guide, ns: &TestNamespace) -> Vec<PathBuf> {
    volumes(guide, ns, "stash-recovered")
}

fn volumes(guide: &Guide, ns: &TestNamespace, workload: &str) -> Vec<PathBuf> {
    match guide.kind {
        "StatefulSet" => (0..guide.hosts.len())
            .map(|i| ns.pvc_dir(&format!("source-data-{workload}-{i}")))
            .collect(),
        "DaemonSet" => vec![ns.host_path(&format!("/stash-e2e/{}/{workload}", ns.name()))],
        _ => vec![ns.pvc_dir(&format!("{workload}-data"))],
    }
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
            "s3": {"endpoint": s3::shared().endpoint(), "bucket": bucket, "prefix": "guide"},
            "storageSecretName": "s3-secret"}}
    }))
    .unwrap();
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create the Repository the guides name (gcs-repo, here on S3)");
}

/// Pods run with their service account's token, so the RBAC the operator grants the sidecar, the
/// init-container and the trigger is what they get: a missing permission fails the guide.
fn service_account_identity() -> Value {
    json!({ stash_testenv::pod_runner::IDENTITY_ANNOTATION: "service-account" })
}

/// The guide's workload: one busybox container with the `source-data` volume at `/source/data`.
async fn create_workload(client: &Client, ns: &TestNamespace, kind: &str, name: &str) {
    let labels = json!({"app": name});
    let container = json!({"name": "busybox", "image": "busybox",
        "command": ["sleep", "3600"],
        "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]});
    let mut spec = json!({
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels, "annotations": service_account_identity()},
                     "spec": {"containers": [container]}}
    });
    match kind {
        "StatefulSet" => {
            spec["replicas"] = json!(3);
            spec["serviceName"] = json!(name);
            spec["volumeClaimTemplates"] = json!([{
                "metadata": {"name": "source-data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]);
        }
        "DaemonSet" => {
            spec["template"]["spec"]["volumes"] = json!([{"name": "source-data",
                "hostPath": {"path": format!("/stash-e2e/{}/{name}", ns.name())}}]);
        }
        _ => {
            spec["replicas"] = json!(1);
            spec["template"]["spec"]["volumes"] = json!([{"name": "source-data",
                "persistentVolumeClaim": {"claimName": format!("{name}-data")}}]);
        }
    }
    let object = json!({"apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "labels": labels}, "spec": spec});
    let gvk = GroupVersionKind::gvk("apps", "v1", kind);
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk));
    api.create(
        &PostParams::default(),
        &serde_json::from_value(object).unwrap(),
    )
    .await
    .unwrap_or_else(|e| panic!("create {kind} {name}: {e}"));
}

/// Creates the guide's object in `ns`, naming the Repository as the guides do.
async fn create_from_example<K>(client: &Client, ns: &str, example: &str) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let mut object: Value = serde_yaml::from_str(example).expect("the example parses");
    object["metadata"]["namespace"] = json!(ns);
    let object: K = serde_json::from_value(object).expect("the example is a valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()))
}

/// Runs the trigger as a user would (`kubectl create job --from=cronjob/…`) once the operator made the
/// CronJob, then waits for the session to succeed.
async fn trigger_and_wait(client: &Client, ns: &str, invoker: &str) -> BackupSession {
    // A session of an invoker that is not Ready yet is Skipped (§9.2), as in Stash.
    let bcs: Api<BackupConfiguration> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("BackupConfiguration {invoker} to be Ready"),
        FLOW_TIMEOUT,
        || async {
            let bc = bcs.get(invoker).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                other => Err(format!("{other:?}")),
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
        &format!("a BackupSession of {invoker} to succeed"),
        FLOW_TIMEOUT,
        || async {
            let list = sessions
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let session = list
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
        &format!("RestoreSession {name} to succeed"),
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
        .arg(s3::shared().repository(bucket, "guide"))
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

/// The session, host and repository gauges Stash pushes (§13), with the invoker's labels.
fn assert_metrics(pushgateway: &Pushgateway, invoker: &str, hosts: &[String]) {
    let session = pushgateway.samples("stash_backup_session_success");
    assert!(
        session
            .iter()
            .any(|s| s.contains(&format!("invoker_name=\"{invoker}\"")) && s.ends_with(" 1")),
        "stash_backup_session_success of {invoker} is 1: {session:?}"
    );
    let host_success = pushgateway.samples("stash_backup_host_backup_success");
    for host in hosts {
        assert!(
            host_success
                .iter()
                .any(|s| s.contains(&format!("hostname=\"{host}\"")) && s.ends_with(" 1")),
            "stash_backup_host_backup_success of {host}: {host_success:?}"
        );
    }
    assert!(
        !pushgateway
            .samples("stash_repository_snapshot_count")
            .is_empty(),
        "the last host pushed the repository metrics"
    );
}
