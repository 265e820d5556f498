//! Stash's three workload guides, end to end on the real control plane, with nothing stubbed: a Secret,
//! an S3 Repository (moto), the guide's BackupConfiguration, the operator injecting the `stash` sidecar
//! and creating the trigger CronJob, the CronJob's Job creating a BackupSession, every host backing up
//! its own volume, metrics in a real Pushgateway, then the guide's RestoreSession restoring into a fresh
//! workload through `stash-init`, byte for byte.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::v1beta1::{BackupConfiguration, RestoreSession};
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{TestEnv, TestNamespace, s3, tree};

use crate::operator::Operator;
use crate::support::{
    S3Repository, create, example, service_account_identity, trigger_and_wait, wait_restored,
};

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
    let repository = S3Repository {
        bucket: &bucket,
        prefix: "guide",
        password: PASSWORD,
    };
    repository.create(&client, &ns).await;
    let operator = Operator::start_running_stash(client.clone(), &ns, pushgateway.url());

    let sources = source_volumes(&guide, &ns);
    for (i, dir) in sources.iter().enumerate() {
        tree::full(dir, false);
        tree::write(&dir.join("host.txt"), format!("volume {i}\n").as_bytes());
    }
    create_workload(&client, &ns, guide.kind, "stash-demo").await;
    let bc: BackupConfiguration = create(&client, &ns, example(guide.backup_example)).await;

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
        repository.snapshot_hosts(),
        hosts,
        "restic lists one snapshot per host"
    );
    assert_metrics(&pushgateway, &bc.name_any(), &guide.hosts);

    for dir in &sources {
        std::fs::rename(dir, dir.with_extension("orig")).expect("move the source away");
    }
    create_workload(&client, &ns, guide.kind, "stash-recovered").await;
    let restore: RestoreSession = create(&client, &ns, example(guide.restore_example)).await;
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
