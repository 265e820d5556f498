//! `deploy/` as an operator install: a fresh control plane (its own: the operator watches every namespace
//! and registers cluster-wide webhooks, which would reach into the other tests), `deploy/embedded/install`
//! (CRDs, deploy/operator with the loopback overlay, the certificate of deploy/operator/webhook-cert), and
//! then the installed operator, running with its ServiceAccount's token, proves itself: its pod is Ready
//! and holds the leader Lease, the validating webhook refuses an invalid BackupConfiguration through the
//! ExternalName Service, the mutating webhook injects the sidecar into a Deployment created after its
//! BackupConfiguration, and the controller brings that BackupConfiguration to Ready under its RBAC.

// Kind names (BackupConfiguration, ClusterRole) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::phase::BackupInvokerPhase;
use stash_api::v1beta1::BackupConfiguration;
use stash_operator::build::rbac;
use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{Options, TestEnv, paths, servers, wait_for};

use crate::TIMEOUT;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);
const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=stash,app.kubernetes.io/component=operator";

/// Runs `deploy/embedded/install` against `env` on free loopback ports, as `scripts/cluster up` does.
fn install_operator(env: &TestEnv, pushgateway_url: &str) {
    let secure_port = servers::free_port();
    let metrics_port = std::iter::repeat_with(servers::free_port)
        .find(|&p| p != secure_port)
        .unwrap();
    let script = paths::repo_root().join("deploy/embedded/install");
    let output = Command::new(&script)
        .args(["--pushgateway-url", pushgateway_url])
        .args(["--secure-port", &secure_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("KUBECTL", env.control_plane().bin_dir().join("kubectl"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn operator_pod(client: &Client) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), "kube-system");
    let list = pods
        .list(&ListParams::default().labels(OPERATOR_SELECTOR))
        .await
        .expect("list the operator's pods");
    assert_eq!(list.items.len(), 1, "one operator pod in kube-system");
    list.items.into_iter().next().unwrap()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Namespace `demo`, as Stash's examples have it (the control plane is this test's own).
async fn demo_namespace(client: &Client) -> String {
    let name = "demo".to_owned();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .expect("create the demo namespace");
    name
}

/// The operator installed in kube-system is Ready, leads, and its webhooks answer through the Service:
/// an invalid BackupConfiguration is refused, a Deployment created after its BackupConfiguration gets
/// the sidecar. Also the proof of the Helm chart's rendering (`helm_chart`).
pub(crate) async fn the_installed_operator_answers(client: Client) {
    let pod = operator_pod(&client).await;
    assert!(
        is_ready(&pod),
        "the operator pod {} is Ready",
        pod.name_any()
    );
    let container = &pod.spec.as_ref().unwrap().containers[0];
    assert_eq!(container.name, "operator");
    assert_eq!(container.image.as_deref(), Some("stash-rs/stash:test"));

    let leases = Api::<Lease>::namespaced(client.clone(), "kube-system");
    wait_for("the operator to hold its leader Lease", TIMEOUT, || async {
        let lease = leases
            .get_opt("stash-operator")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no Lease kube-system/stash-operator yet")?;
        let holder = lease.spec.and_then(|s| s.holder_identity);
        if holder.as_deref() == Some(pod.name_any().as_str()) {
            Ok(())
        } else {
            Err(format!("held by {holder:?}"))
        }
    })
    .await;

    let ns = demo_namespace(&client).await;
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    let mut invalid: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    invalid.metadata.name = Some("every-noon".to_owned());
    invalid.spec.schedule = Some("every day at noon".to_owned());
    let refusal = bcs
        .create(&PostParams::default(), &invalid)
        .await
        .expect_err(
            "the validating webhook refuses a BackupConfiguration whose schedule is no cron",
        );
    let message = refusal.to_string();
    assert!(
        message.contains("admission webhook") && message.contains("schedule"),
        "refused by stash's webhook, naming the field: {message}"
    );

    crate::create_gcs_repository(&client, &ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gcs-secret"},
        "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create Secret gcs-secret");
    let bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bcs.create(&PostParams::default(), &bc)
        .await
        .expect("the validating webhook admits Stash's deployment example");
    let created = crate::support::demo_deployment_created_once_the_webhook_injects(
        &Api::namespaced(client.clone(), &ns),
    )
    .await;
    assert!(
        crate::support::template_has_sidecar(Some(&created.spec.template)),
        "the Deployment as created carries the sidecar from the mutating webhook"
    );

    // The controllers under the operator's own ServiceAccount: trigger CronJob, executor RBAC (bound
    // to the ClusterRoles of deploy/), status. A missing permission shows up in the status here.
    wait_for(
        "BackupConfiguration deployment-backup to be Ready under the operator's RBAC",
        TIMEOUT,
        || async {
            let bc = bcs
                .get("deployment-backup")
                .await
                .map_err(|e| e.to_string())?;
            let status = bc.status.unwrap_or_default();
            if status.phase == Some(BackupInvokerPhase::Ready) {
                Ok(())
            } else {
                Err(format!("status is {status:?}"))
            }
        },
    )
    .await;
}

#[test]
fn the_operator_installed_from_deploy_runs_in_the_embedded_cluster_and_serves_its_webhooks() {
    let env = TestEnv::start(&Options {
        dir: None,
        install_crds: false,
        pod_runner: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{}", stash_testenv::error_chain(&e)));
    let pushgateway = Pushgateway::start();
    install_operator(&env, &pushgateway.url());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { Box::pin(the_installed_operator_answers(env.client())).await });
    drop(runtime);
    drop(env);
}

fn deployed_cluster_roles(file: &Path) -> Vec<ClusterRole> {
    let text = std::fs::read_to_string(file).unwrap();
    text.split("\n---\n")
        .map(|doc| {
            serde_yaml::from_str(doc)
                .unwrap_or_else(|e| panic!("{}: not a ClusterRole: {e}", file.display()))
        })
        .collect()
}

#[test]
fn the_executor_cluster_roles_in_deploy_are_the_ones_the_operator_builds() {
    let deployed = deployed_cluster_roles(
        &paths::repo_root().join("deploy/operator/executor-cluster-roles.yaml"),
    );
    let built = [
        rbac::sidecar_cluster_role(),
        rbac::restore_init_container_cluster_role(),
        rbac::cron_job_cluster_role(&[]),
    ];
    assert_eq!(deployed.len(), built.len());
    for (deployed, built) in deployed.iter().zip(&built) {
        assert_eq!(deployed.metadata.name, built.metadata.name);
        assert_eq!(
            deployed.metadata.labels, built.metadata.labels,
            "labels of {:?}",
            built.metadata.name
        );
        assert_eq!(
            deployed.rules, built.rules,
            "rules of ClusterRole {:?}: deploy/operator/executor-cluster-roles.yaml must match crates/stash-operator/src/build/rbac.rs",
            built.metadata.name
        );
    }
}
