//! The operator's faults on the real control plane: the `stash operator` process SIGKILLed while a
//! BackupSession runs (restarted, it concludes the session from the host stats the agent wrote while it
//! was down, and leaves the sidecar and the trigger CronJob as they were), and the operator stopped
//! while users create and update Deployments (the mutating webhook's `failurePolicy: Ignore` admits
//! them; the controller injects the sidecar once the operator is back).

// Kind names (BackupSession, CronJob, Deployment) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::process::{Child, Command, Stdio};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::ConditionType;
use stash_api::labels;
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase, HostBackupPhase};
use stash_api::v1beta1::{BackupConfiguration, BackupSession, HostBackupStats};
use stash_testenv::{Pushgateway, TestEnv, paths, servers, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;
use crate::operator_validating_webhook::WebhookServing;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);
const INVOKER: &str = "deployment-backup";
const WORKLOAD: &str = "stash-demo";

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": WORKLOAD},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": WORKLOAD}},
            "template": {
                "metadata": {"labels": {"app": WORKLOAD}},
                "spec": {
                    "containers": [{"name": "busybox", "image": "busybox",
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data", "configMap": {"name": "stash-sample-data"}}]
                }
            }
        }
    }))
    .expect("a valid Deployment")
}

/// The Repository `gcs-repo`, its Secret and Stash's BackupConfiguration example for the Deployment.
async fn create_invoker(client: &Client, ns: &str) {
    let pp = PostParams::default();
    crate::create_gcs_repository(client, ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gcs-secret"},
        "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
    }))
    .expect("a valid Secret");
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &secret)
        .await
        .expect("create Secret gcs-secret");
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).expect("the example parses");
    bc.metadata.namespace = Some(ns.to_owned());
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&pp, &bc)
        .await
        .expect("create the BackupConfiguration of Stash's deployment example");
}

/// How many `stash` containers a pod template has: one when injected once.
fn stash_containers(template: &PodTemplateSpec) -> usize {
    template.spec.as_ref().map_or(0, |s| {
        s.containers.iter().filter(|c| c.name == "stash").count()
    })
}

/// The Deployment once the controller or the webhook has injected the sidecar.
async fn wait_for_the_sidecar(deployments: &Api<Deployment>, hint: &str) -> Deployment {
    wait_for(
        &format!("Deployment {WORKLOAD} to carry the stash sidecar ({hint})"),
        TIMEOUT,
        || async {
            let deployment = deployments.get(WORKLOAD).await.map_err(|e| e.to_string())?;
            if stash_containers(&deployment.spec.template) > 0 {
                Ok(deployment)
            } else {
                Err("no stash container yet".to_owned())
            }
        },
    )
    .await
}

async fn wait_for_ready(configs: &Api<BackupConfiguration>) {
    wait_for(
        &format!("BackupConfiguration {INVOKER} to be Ready"),
        TIMEOUT,
        || async {
            let bc = configs.get(INVOKER).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                _ => Err(format!("status {:?}", bc.status)),
            }
        },
    )
    .await;
}

async fn wait_for_phase(
    sessions: &Api<BackupSession>,
    name: &str,
    phase: BackupSessionPhase,
    hint: &str,
) -> BackupSession {
    wait_for(
        &format!("BackupSession {name} to be {phase:?} ({hint})"),
        TIMEOUT,
        || async {
            let s = sessions.get(name).await.map_err(|e| e.to_string())?;
            if s.status.as_ref().and_then(|st| st.phase) == Some(phase) {
                Ok(s)
            } else {
                Err(format!("status {:?}", s.status))
            }
        },
    )
    .await
}

/// The agent's part (protocol steps 5–6) for the Deployment's one host: its final stats entry and the
/// three post-backup conditions, read-modify-written through the status subresource.
async fn write_host_stats(sessions: &Api<BackupSession>, name: &str) {
    for _ in 0..10 {
        let mut session = sessions.get(name).await.expect("read the BackupSession");
        let status = session
            .status
            .as_mut()
            .expect("a started session has a status");
        status
            .targets
            .as_mut()
            .expect("targets written by the operator")[0]
            .stats = Some(vec![HostBackupStats {
            hostname: Some("host-0".to_owned()),
            phase: Some(HostBackupPhase::Succeeded),
            duration: Some("2s".to_owned()),
            ..HostBackupStats::default()
        }]);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in [
            ConditionType::RetentionPolicyApplied,
            ConditionType::RepositoryIntegrityVerified,
            ConditionType::RepositoryMetricsPushed,
        ] {
            conditions.push(
                serde_json::from_value(json!({
                    "type": type_, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                    "reason": "E2ePlayedAgent", "message": "written by the test playing the agent",
                }))
                .expect("a valid Condition"),
            );
        }
        match sessions
            .replace_status(name, &PostParams::default(), &session)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("write the host stats of BackupSession {name}: {e}"),
        }
    }
    panic!("10 conflicts in a row writing the host stats of BackupSession {name}");
}

/// `stash operator` as a process of its own, so that it can be SIGKILLed; killed when dropped.
struct OperatorProcess {
    child: Child,
    metrics_port: u16,
}

impl OperatorProcess {
    /// One replica (no leader election) watching `ns`, with an image the pod runner does not run: the
    /// test plays the agent.
    fn start(env: &TestEnv, ns: &str, pushgateway_url: &str) -> Self {
        let metrics_port = servers::free_port();
        let child =
            Command::new(paths::stash_bin().expect("target/debug/stash is built by scripts/test"))
                .args(["operator", "--watch-namespace", ns, "--leader-elect=false"])
                .args([
                    "--docker-registry",
                    "e2e.invalid",
                    "--image",
                    "stash-placeholder",
                ])
                .args(["--image-tag", "test", "--pushgateway-url", pushgateway_url])
                .args(["--metrics-address", &format!("127.0.0.1:{metrics_port}")])
                .env("KUBECONFIG", env.kubeconfig_path())
                .env_remove("MY_POD_NAME")
                .env_remove("MY_POD_NAMESPACE")
                .stdin(Stdio::null())
                .spawn()
                .expect("start stash operator");
        Self {
            child,
            metrics_port,
        }
    }

    fn sigkill(mut self) {
        self.child.kill().expect("SIGKILL the operator");
        self.child.wait().expect("reap the operator");
    }

    /// How many reconciles of `controller` this process has finished, from its `/metrics`.
    async fn finished_reconciles(&self, controller: &str) -> Result<u64, String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        let response = tokio::task::spawn_blocking(move || servers::get(&url))
            .await
            .expect("the GET task does not panic")
            .map_err(|e| e.to_string())?;
        let series = format!(
            "stash_operator_reconcile_duration_seconds_count{{controller=\"{controller}\"}} "
        );
        Ok(response
            .text()
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn cron_jobs(client: &Client, ns: &str) -> Vec<CronJob> {
    Api::<CronJob>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list CronJobs")
        .items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sigkilled_during_a_session_concludes_it_on_restart_without_injecting_twice() {
    let env = TestEnv::shared().await;
    let namespace = env.namespace().await;
    let ns = namespace.name().to_owned();
    let client = env.client();
    let gateway = Pushgateway::start();
    let operator = OperatorProcess::start(env, &ns, &gateway.url());

    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment())
        .await
        .expect("create Deployment stash-demo");
    create_invoker(&client, &ns).await;
    let configs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    wait_for_ready(&configs).await;
    wait_for_the_sidecar(&deployments, "the controller's patch").await;
    let cron_job = wait_for("the trigger CronJob", TIMEOUT, || async {
        let mut jobs = cron_jobs(&client, &ns).await;
        jobs.pop().ok_or_else(|| "no CronJob yet".to_owned())
    })
    .await;

    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns);
    let session: BackupSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
        "metadata": {"name": "deployment-backup-1", "labels": {
            labels::LABEL_INVOKER_TYPE: "BackupConfiguration",
            labels::LABEL_INVOKER_NAME: INVOKER,
        }},
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": INVOKER}},
    }))
    .expect("a valid BackupSession");
    sessions
        .create(&PostParams::default(), &session)
        .await
        .expect("create BackupSession deployment-backup-1");
    wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Running,
        "the operator did not start it",
    )
    .await;

    // Killed mid-session; the agent finishes its host meanwhile: nobody is watching when it reports.
    let injected = deployments
        .get(WORKLOAD)
        .await
        .expect("read the Deployment");
    operator.sigkill();
    write_host_stats(&sessions, "deployment-backup-1").await;

    let restarted = OperatorProcess::start(env, &ns, &gateway.url());
    let done = wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Succeeded,
        "the restarted operator did not conclude it",
    )
    .await;
    let status = done.status.unwrap();
    assert!(status.session_duration.is_some(), "{status:?}");
    let targets = status.targets.unwrap();
    assert_eq!(
        targets.len(),
        1,
        "one target, not one per operator start: {targets:?}"
    );
    assert_eq!(
        targets[0].stats.as_ref().map(Vec::len),
        Some(1),
        "{targets:?}"
    );

    // The restarted BackupConfiguration controller has looked at the injected Deployment too.
    wait_for(
        "a reconcile of the BackupConfiguration by the restarted operator",
        TIMEOUT,
        || async {
            match restarted.finished_reconciles("backupconfiguration").await? {
                0 => Err("none finished yet".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;
    wait_for_ready(&configs).await;
    let after = deployments.get(WORKLOAD).await.unwrap();
    let template = &after.spec.template;
    assert_eq!(
        stash_containers(template),
        1,
        "one stash sidecar: {template:?}"
    );
    assert_eq!(
        template, &injected.spec.template,
        "the restarted operator leaves the injected pod template as it was"
    );
    let jobs = cron_jobs(&client, &ns).await;
    assert_eq!(
        jobs.iter()
            .map(|j| (j.name_any(), j.uid()))
            .collect::<Vec<_>>(),
        [(cron_job.name_any(), cron_job.uid())],
        "the same single trigger CronJob as before the kill"
    );
}

/// A mutating webhook for this namespace's Deployments, `failurePolicy: Ignore` as Stash's chart has it.
fn mutating_webhook(
    name: &str,
    ns: &str,
    serving: &WebhookServing,
) -> MutatingWebhookConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "deploymentmutator.admission.stash.appscode.com",
            "clientConfig": serving.client_config("/mutate-workloads"),
            "rules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                       "resources": ["deployments"]}],
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1", "v1beta1"],
            "timeoutSeconds": 10,
        }]
    }))
    .expect("a valid MutatingWebhookConfiguration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_created_and_updated_while_the_operator_is_down_and_injected_once_it_is_back()
 {
    let env = TestEnv::shared().await;
    let namespace = env.namespace().await;
    let ns = namespace.name().to_owned();
    let client = env.client();
    let serving = WebhookServing::generate();
    let operator = Operator::start(client.clone(), &ns, |c| serving.configure(c, true, false));
    let name = format!("stash-e2e-{ns}");
    let webhooks = Api::<MutatingWebhookConfiguration>::all(client.clone());
    webhooks
        .create(
            &PostParams::default(),
            &mutating_webhook(&name, &ns, &serving),
        )
        .await
        .expect("create the MutatingWebhookConfiguration");
    create_invoker(&client, &ns).await;

    // The webhook is live for this namespace before the operator goes away.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait_for(
        "a dry-run Deployment to come back with the sidecar from the webhook",
        TIMEOUT,
        || async {
            let created = deployments
                .create(&dry_run, &deployment())
                .await
                .map_err(|e| e.to_string())?;
            match stash_containers(&created.spec.template) {
                0 => Err("no sidecar yet".to_owned()),
                _ => Ok(()),
            }
        },
    )
    .await;
    operator.stop().await;

    // Down: nothing answers on the webhook's port, and users are not blocked.
    let created = deployments
        .create(&PostParams::default(), &deployment())
        .await
        .expect("a Deployment is created while the operator is down (failurePolicy Ignore)");
    assert_eq!(
        stash_containers(&created.spec.template),
        0,
        "nothing injected it: the operator is down"
    );
    let update =
        json!({"spec": {"template": {"metadata": {"annotations": {"e2e/updated": "while-down"}}}}});
    let updated = deployments
        .patch(WORKLOAD, &PatchParams::default(), &Patch::Merge(&update))
        .await
        .expect("a Deployment is updated while the operator is down (failurePolicy Ignore)");
    assert_eq!(stash_containers(&updated.spec.template), 0);

    // Back: the BackupConfiguration controller patches the Deployment it missed, once.
    let operator = Operator::start(client.clone(), &ns, |c| serving.configure(c, true, false));
    let injected = wait_for_the_sidecar(&deployments, "the restarted operator's controller").await;
    let template = &injected.spec.template;
    assert_eq!(stash_containers(template), 1, "{template:?}");
    assert_eq!(
        template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()["e2e/updated"],
        "while-down",
        "the user's update made while the operator was down is kept"
    );
    wait_for_ready(&Api::namespaced(client.clone(), &ns)).await;

    webhooks
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the MutatingWebhookConfiguration");
    operator.stop().await;
}
