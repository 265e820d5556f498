//! Stash v0.9-v0.17 manifests that back up a standalone ReplicaSet (§8.1, §8.3), with the operator started
//! in-process: the sidecar goes into the ReplicaSet's pod template, the pods made from the old template
//! are deleted so the ReplicaSet re-creates them with the sidecar (as v0.17 did), a `DeprecatedTarget`
//! Warning Event says to target the Deployment instead, and deletion undoes it all. A ReplicaSet created
//! after its BackupConfiguration is admitted with the sidecar by the mutating webhook, so its first pod
//! already runs it. A ReplicaSet a Deployment manages is never touched.

// Kind names (BackupConfiguration, ReplicaSet) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::{ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::v1beta1::BackupConfiguration;
use stash_operator::{CancellationToken, OperatorConfig};
use stash_testenv::certs::Ca;
use stash_testenv::{TestEnv, servers, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;
use crate::support::wait_for_warning;

const POD_TEMPLATE: &str = r#"{
    "metadata": {"labels": {"app": "stash-demo"}},
    "spec": {
        "containers": [{"name": "busybox", "image": "busybox",
                        "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
        "volumes": [{"name": "source-data", "configMap": {"name": "stash-sample-data"}}]
    }
}"#;

async fn create_repository(client: &Client, ns: &str) {
    crate::create_gcs_repository(client, ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gcs-secret"},
        "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret gcs-secret");
}

/// A BackupConfiguration as Stash v0.17's ReplicaSet guide wrote it (v1beta1, `kind: ReplicaSet`).
async fn create_backup_configuration(client: &Client, ns: &str, replica_set: &str) {
    let bc: BackupConfiguration = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupConfiguration",
        "metadata": {"name": "rs-backup", "namespace": ns},
        "spec": {
            "repository": {"name": "gcs-repo"},
            "schedule": "*/5 * * * *",
            "target": {
                "ref": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set},
                "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}],
                "paths": ["/source/data"]
            },
            "retentionPolicy": {"name": "keep-last-5", "keepLast": 5, "prune": true}
        }
    }))
    .unwrap();
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bc)
        .await
        .expect("create BackupConfiguration rs-backup");
}

fn names_sidecar(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> bool {
    spec.is_some_and(|s| {
        s.containers
            .iter()
            .any(|c| c.name == labels::CONTAINER_SIDECAR)
    })
}

fn template_has_sidecar(rs: &ReplicaSet) -> bool {
    names_sidecar(rs.spec.template.as_ref().and_then(|t| t.spec.as_ref()))
}

fn pod_hash(pod: &Pod) -> Option<String> {
    pod.annotations()
        .get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH)
        .cloned()
}

/// The live (not terminating) pods of the ReplicaSet: (name, has the sidecar, hash annotation).
async fn live_pods(
    pods: &Api<Pod>,
    rs_uid: &str,
) -> Result<Vec<(String, bool, Option<String>)>, String> {
    Ok(pods
        .list(&ListParams::default().labels("app=stash-demo"))
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.owner_references().iter().any(|o| o.uid == rs_uid))
        .map(|p| (p.name_any(), names_sidecar(p.spec.as_ref()), pod_hash(&p)))
        .collect())
}

fn replica_set() -> ReplicaSet {
    let template: serde_json::Value = serde_json::from_str(POD_TEMPLATE).unwrap();
    serde_json::from_value(json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stash-demo"}}, "template": template}
    }))
    .unwrap()
}

/// Waits for the sidecar in ReplicaSet stash-demo's pod template; returns the template's invoker hash.
async fn wait_for_injection(replica_sets: &Api<ReplicaSet>) -> String {
    let injected = wait_for(
        "the stash sidecar in ReplicaSet stash-demo's pod template (the operator probably refused or ignored the ReplicaSet target)",
        TIMEOUT,
        || async {
            let rs = replica_sets.get("stash-demo").await.map_err(|e| e.to_string())?;
            if template_has_sidecar(&rs) { Ok(rs) } else { Err("no sidecar yet".to_owned()) }
        },
    )
    .await;
    assert!(
        injected
            .annotations()
            .contains_key(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER),
        "{:?}",
        injected.annotations()
    );
    injected
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH))
        .cloned()
        .expect("the pod template carries the invoker hash")
}

/// Waits for rs-backup to report the sidecar injected and for its DeprecatedTarget Warning Event;
/// returns the Event's message.
async fn wait_for_deprecation_warning(client: &Client, ns: &str) -> String {
    let bc = wait_for(
        "BackupConfiguration rs-backup to report the sidecar injected",
        TIMEOUT,
        || async {
            let bc = Api::<BackupConfiguration>::namespaced(client.clone(), ns)
                .get("rs-backup")
                .await
                .map_err(|e| e.to_string())?;
            let injected = bc
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.type_ == ConditionType::StashSidecarInjected)
                        .map(|c| c.status)
                });
            if injected == Some(ConditionStatus::True) {
                Ok(bc)
            } else {
                Err(format!("status {:?}", bc.status))
            }
        },
    )
    .await;
    wait_for_warning(client, ns, bc.uid(), "DeprecatedTarget").await
}

#[tokio::test]
async fn a_standalone_replicaset_of_a_stash_v0_17_manifest_gets_the_sidecar_with_a_deprecation_warning_and_its_pods_are_restarted()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository(&client, &ns).await;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let rs = replica_sets
        .create(&PostParams::default(), &replica_set())
        .await
        .expect("create ReplicaSet stash-demo");
    let rs_uid = rs.uid().unwrap();
    let first_pod = wait_for(
        "the ReplicaSet's first pod (kube-controller-manager's ReplicaSet controller)",
        TIMEOUT,
        || async {
            let live = live_pods(&pods, &rs_uid).await?;
            live.first()
                .map(|p| p.0.clone())
                .ok_or_else(|| "no pod yet".to_owned())
        },
    )
    .await;

    create_backup_configuration(&client, &ns, "stash-demo").await;
    let operator = Operator::start(client.clone(), &ns, |_| {});

    let hash = wait_for_injection(&replica_sets).await;

    let restarted = wait_for(
        "the pod made from the old template to be replaced by one with the sidecar (the operator probably did not delete the stale pod)",
        TIMEOUT,
        || async {
            let live = live_pods(&pods, &rs_uid).await?;
            match live.as_slice() {
                [(name, true, Some(h))] if *name != first_pod && *h == hash => Ok(name.clone()),
                other => Err(format!("live pods {other:?}")),
            }
        },
    )
    .await;
    assert!(
        pods.get_opt(&first_pod)
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some()),
        "the pod without the sidecar is still live"
    );

    let warning = wait_for_deprecation_warning(&client, &ns).await;
    assert!(warning.contains("target the Deployment"), "{warning}");

    // Deleting the BackupConfiguration takes the sidecar out and restarts the pods once more.
    Api::<BackupConfiguration>::namespaced(client.clone(), &ns)
        .delete("rs-backup", &DeleteParams::default())
        .await
        .expect("delete BackupConfiguration rs-backup");
    wait_for(
        "ReplicaSet stash-demo and its pods without the sidecar after the deletion",
        TIMEOUT,
        || async {
            let rs = replica_sets
                .get("stash-demo")
                .await
                .map_err(|e| e.to_string())?;
            let live = live_pods(&pods, &rs_uid).await?;
            let stash_annotations = rs
                .annotations()
                .keys()
                .filter(|k| k.starts_with("stash.appscode.com/"))
                .count();
            match live.as_slice() {
                [(name, false, None)]
                    if *name != restarted
                        && !template_has_sidecar(&rs)
                        && stash_annotations == 0 =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "template sidecar {}, {stash_annotations} annotations, live pods {other:?}",
                    template_has_sidecar(&rs)
                )),
            }
        },
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_replicaset_a_deployment_manages_is_never_injected_and_the_backup_configuration_names_the_deployment()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository(&client, &ns).await;
    let template: serde_json::Value = serde_json::from_str(POD_TEMPLATE).unwrap();
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "stash-demo"}}, "template": template}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment stash-demo");
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let owned = wait_for("the Deployment's ReplicaSet", TIMEOUT, || async {
        replica_sets
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| "no ReplicaSet yet".to_owned())
    })
    .await;
    let owned_name = owned.name_any();
    create_backup_configuration(&client, &ns, &owned_name).await;
    let operator = Operator::start(client.clone(), &ns, |_| {});

    let message = wait_for(
        "BackupConfiguration rs-backup to say its ReplicaSet is the Deployment's",
        TIMEOUT,
        || async {
            let bc = Api::<BackupConfiguration>::namespaced(client.clone(), &ns)
                .get("rs-backup")
                .await
                .map_err(|e| e.to_string())?;
            bc.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| {
                    c.iter()
                        .find(|c| c.type_ == ConditionType::BackupTargetFound)
                })
                .filter(|c| c.status == ConditionStatus::False)
                .and_then(|c| c.message.clone())
                .ok_or_else(|| format!("status {:?}", bc.status))
        },
    )
    .await;
    assert!(
        message.contains("managed by Deployment `stash-demo`")
            && message.contains("kind: Deployment, name: stash-demo"),
        "{message}"
    );
    let rs = replica_sets.get(&owned_name).await.unwrap();
    assert!(
        !template_has_sidecar(&rs),
        "the Deployment's ReplicaSet was injected"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("stash-demo")
        .await
        .unwrap();
    assert!(!names_sidecar(deployment.spec.template.spec.as_ref()));
    operator.stop().await;
}

/// The webhook for this namespace's ReplicaSets, as deploy/'s `replicasetmutator`, pointing at the
/// in-process operator on loopback.
fn replica_set_webhook(name: &str, ns: &str, port: u16, ca: &Ca) -> MutatingWebhookConfiguration {
    let ca_bundle = k8s_openapi::ByteString(ca.cert_pem().into_bytes());
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "replicasetmutator.admission.stash.appscode.com",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/apis/admission.stash.appscode.com/v1alpha1/replicasetmutators"), "caBundle": ca_bundle},
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["replicasets"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "timeoutSeconds": 10,
        }]
    }))
    .unwrap()
}

/// Starts the operator with its mutating webhook on a loopback port and registers the ReplicaSet webhook
/// for `ns`: (the configuration's name, the shutdown token, the operator task).
async fn start_operator_with_webhook(
    client: &Client,
    ns: &str,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), stash_operator::RunError>>,
) {
    let ca = Ca::new("stash-e2e-webhook-ca").unwrap();
    let serving = ca.serving("stash-webhook", &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &serving.cert_pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let port = servers::free_port();
    let config = OperatorConfig {
        docker_registry: "e2e.invalid".to_owned(),
        image: "stash-placeholder".to_owned(),
        image_tag: "test".to_owned(),
        metrics_address: ([127, 0, 0, 1], servers::free_port()).into(),
        watch_namespace: Some(ns.to_owned()),
        enable_mutating_webhook: true,
        secure_port: port,
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        ..OperatorConfig::default()
    };
    let shutdown = CancellationToken::new();
    let operator = tokio::spawn(stash_operator::run_with_client(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    let name = format!("stash-e2e-rs-{ns}");
    let webhooks = Api::<MutatingWebhookConfiguration>::all(client.clone());
    webhooks
        .create(
            &PostParams::default(),
            &replica_set_webhook(&name, ns, port, &ca),
        )
        .await
        .expect("create the MutatingWebhookConfiguration");
    (name, shutdown, operator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_replicaset_created_after_its_backup_configuration_is_admitted_with_the_sidecar_so_its_first_pod_runs_it()
 {
    let env = TestEnv::shared().await;
    let namespace = env.namespace().await;
    let ns = namespace.name().to_owned();
    let client = env.client();
    create_repository(&client, &ns).await;
    create_backup_configuration(&client, &ns, "stash-demo").await;

    let (name, shutdown, operator) = start_operator_with_webhook(&client, &ns).await;
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    // The API server picks the configuration up asynchronously (failurePolicy Ignore admits silently
    // meanwhile): dry-run until the webhook answers.
    wait_for(
        "a dry-run ReplicaSet to come back with the sidecar from the webhook",
        TIMEOUT,
        || async {
            let dry = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let created = replica_sets
                .create(&dry, &replica_set())
                .await
                .map_err(|e| e.to_string())?;
            if template_has_sidecar(&created) {
                Ok(())
            } else {
                Err("no sidecar yet".to_owned())
            }
        },
    )
    .await;
    let created = replica_sets
        .create(&PostParams::default(), &replica_set())
        .await
        .expect("create ReplicaSet stash-demo");
    assert!(
        template_has_sidecar(&created),
        "the ReplicaSet as created carries the sidecar"
    );
    let rs_uid = created.uid().unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    let first = wait_for("the ReplicaSet's first pod", TIMEOUT, || async {
        let live = live_pods(&pods, &rs_uid).await?;
        live.into_iter()
            .next()
            .ok_or_else(|| "no pod yet".to_owned())
    })
    .await;
    assert!(
        first.1,
        "the first pod {} already runs the sidecar",
        first.0
    );

    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the MutatingWebhookConfiguration");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("the operator stops within 30 s")
        .expect("the operator task panicked")
        .expect("the operator returned an error");
}
