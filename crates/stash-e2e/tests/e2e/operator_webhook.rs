//! The operator's mutating webhook on the real control plane: a MutatingWebhookConfiguration pointing at
//! `https://127.0.0.1:<port>/mutate-workloads` (test CA as caBundle, failurePolicy Ignore, only this test's
//! namespace), the operator started in-process with the webhook on, a BackupConfiguration created first
//! and the Deployment after it: the Deployment as created, and its first ReplicaSet, already carry the
//! sidecar — the webhook's work, not the controller's later patch.

// Kind names (BackupConfiguration, ReplicaSet) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::v1beta1::BackupConfiguration;
use stash_operator::{CancellationToken, OperatorConfig};
use stash_testenv::certs::Ca;
use stash_testenv::{TestEnv, servers, wait_for};

use crate::TIMEOUT;
use crate::support::{demo_deployment_created_once_the_webhook_injects, template_has_sidecar};

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

async fn create_invoker(client: &Client, ns: &str) {
    let pp = PostParams::default();
    crate::create_gcs_repository(client, ns).await;
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bc.metadata.namespace = Some(ns.to_owned());
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&pp, &bc)
        .await
        .expect("create the BackupConfiguration of Stash's deployment example");
}

/// A mutating webhook for this namespace's Deployments, pointing at the in-process operator on
/// loopback and trusting the test CA; `failurePolicy: Ignore` as Stash's chart has it.
fn mutating_webhook(name: &str, ns: &str, port: u16, ca: &Ca) -> MutatingWebhookConfiguration {
    let ca_bundle = k8s_openapi::ByteString(ca.cert_pem().into_bytes());
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "deployment.admission.stash.appscode.com",
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate-workloads"), "caBundle": ca_bundle},
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["deployments"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "timeoutSeconds": 10,
        }]
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_created_after_its_backup_configuration_is_admitted_with_the_sidecar() {
    let env = TestEnv::shared().await;
    let namespace = env.namespace().await;
    let ns = namespace.name().to_owned();
    let client = env.client();

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
        watch_namespace: Some(ns.clone()),
        enable_mutating_webhook: true,
        enable_validating_webhook: true,
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

    let name = format!("stash-e2e-{ns}");
    let webhook = mutating_webhook(&name, &ns, port, &ca);
    let webhooks = Api::<MutatingWebhookConfiguration>::all(client.clone());
    webhooks
        .create(&PostParams::default(), &webhook)
        .await
        .expect("create the MutatingWebhookConfiguration");

    create_invoker(&client, &ns).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let created = demo_deployment_created_once_the_webhook_injects(&deployments).await;
    assert!(
        template_has_sidecar(Some(&created.spec.template)),
        "the Deployment as created carries the sidecar"
    );
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let first = wait_for("the Deployment's first ReplicaSet", TIMEOUT, || async {
        let list = replica_sets
            .list(&ListParams::default().labels("app=stash-demo"))
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .into_iter()
            .min_by_key(|rs| rs.creation_timestamp().map(|t| t.0))
            .ok_or_else(|| "no ReplicaSet yet".to_owned())
    })
    .await;
    assert!(
        template_has_sidecar(first.spec.template.as_ref()),
        "the first ReplicaSet {} already runs the sidecar",
        first.name_any()
    );

    webhooks
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
