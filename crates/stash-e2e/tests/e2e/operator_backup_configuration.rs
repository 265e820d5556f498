//! The operator, started in-process by each test (one per test namespace, with leader election in that
//! namespace), against Stash's BackupConfiguration example: the trigger CronJob, the sidecar in the
//! Deployment, pause, deletion, and a missing Secret that appears later.

// Kind names (BackupConfiguration, CronJob) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::{ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::BackupInvokerPhase;
use stash_api::v1beta1::BackupConfiguration;
use stash_testenv::{TestEnv, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

async fn create_objects(client: &Client, ns: &str, with_secret: bool) -> BackupConfiguration {
    let pp = PostParams::default();
    crate::create_gcs_repository(client, ns).await;
    if with_secret {
        create_secret(client, ns).await;
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stash-demo", "labels": {"app": "stash-demo"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "stash-demo"}},
            "template": {
                "metadata": {"labels": {"app": "stash-demo"}},
                "spec": {
                    "containers": [{"name": "busybox", "image": "busybox",
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data", "configMap": {"name": "stash-sample-data"}}]
                }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&pp, &deployment)
        .await
        .expect("create Deployment stash-demo");
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bc.metadata.namespace = Some(ns.to_owned());
    Api::<BackupConfiguration>::namespaced(client.clone(), ns)
        .create(&pp, &bc)
        .await
        .expect("create the BackupConfiguration of Stash's deployment example")
}

async fn create_secret(client: &Client, ns: &str) {
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

async fn wait_for_phase(
    bcs: &Api<BackupConfiguration>,
    phase: BackupInvokerPhase,
    hint: &str,
) -> BackupConfiguration {
    wait_for(
        &format!("BackupConfiguration deployment-backup to be {phase:?} ({hint})"),
        TIMEOUT,
        || async {
            let bc = bcs
                .get("deployment-backup")
                .await
                .map_err(|e| e.to_string())?;
            let status = bc.status.clone().unwrap_or_default();
            if status.phase == Some(phase) {
                Ok(bc)
            } else {
                Err(format!("status is {status:?}"))
            }
        },
    )
    .await
}

fn condition_status(
    bc: &BackupConfiguration,
    type_: ConditionType,
) -> Option<(ConditionStatus, String)> {
    bc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.message.clone().unwrap_or_default()))
}

/// Deletes the BackupConfiguration and waits until its finalizer has run.
async fn delete_and_wait(bcs: &Api<BackupConfiguration>) {
    bcs.delete("deployment-backup", &DeleteParams::default())
        .await
        .expect("delete BackupConfiguration deployment-backup");
    wait_for(
        "BackupConfiguration deployment-backup to be gone (the operator's finalizer probably did not run)",
        TIMEOUT,
        || async {
            match bcs.get_opt("deployment-backup").await {
                Ok(None) => Ok(()),
                Ok(Some(bc)) => Err(format!("still there, finalizers {:?}", bc.finalizers())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

fn has_sidecar(deployment: &Deployment) -> bool {
    deployment.spec.template.spec.as_ref().is_some_and(|p| {
        p.containers
            .iter()
            .any(|c| c.name == labels::CONTAINER_SIDECAR)
    })
}

fn template_annotation<'a>(deployment: &'a Deployment, key: &str) -> Option<&'a String> {
    deployment
        .spec
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(key)
}

async fn pausing_suspends_the_cronjob_and_leaves_the_pods_alone(
    bcs: &Api<BackupConfiguration>,
    cronjobs: &Api<CronJob>,
    deployments: &Api<Deployment>,
    generation: Option<i64>,
) {
    // Pausing suspends the CronJob and leaves the Deployment's pods alone.
    bcs.patch(
        "deployment-backup",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .expect("pause the BackupConfiguration");
    wait_for(
        "the CronJob to be suspended after pausing (the CronJob apply probably did not run)",
        TIMEOUT,
        || async {
            let c = cronjobs
                .get("stash-trigger-deployment-backup")
                .await
                .map_err(|e| e.to_string())?;
            match c.spec.suspend {
                Some(true) => Ok(()),
                other => Err(format!("suspend is {other:?}")),
            }
        },
    )
    .await;
    let after_pause = deployments.get("stash-demo").await.unwrap();
    assert_eq!(
        after_pause.metadata.generation, generation,
        "pausing restarted the workload"
    );
}

async fn deleting_removes_the_sidecar_the_annotations_and_the_cronjob(
    bcs: &Api<BackupConfiguration>,
    cronjobs: &Api<CronJob>,
    deployments: &Api<Deployment>,
) {
    // Deleting takes the sidecar, the annotations and the CronJob away.
    delete_and_wait(bcs).await;
    let deployment = wait_for(
        "the stash sidecar to leave Deployment stash-demo (the finalizer probably did not update it)",
        TIMEOUT,
        || async {
            let d = deployments.get("stash-demo").await.map_err(|e| e.to_string())?;
            if has_sidecar(&d) { Err("stash container still there".to_owned()) } else { Ok(d) }
        },
    )
    .await;
    assert_eq!(
        template_annotation(
            &deployment,
            labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH
        ),
        None
    );
    assert!(
        !deployment
            .annotations()
            .keys()
            .any(|k| k.starts_with("stash.appscode.com/")),
        "{:?}",
        deployment.annotations()
    );
    let volumes: Vec<String> = deployment
        .spec
        .template
        .spec
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(volumes, ["source-data"]);
    assert!(
        cronjobs
            .get_opt("stash-trigger-deployment-backup")
            .await
            .unwrap()
            .is_none(),
        "the CronJob outlived its BackupConfiguration"
    );
}

#[tokio::test]
async fn a_backup_configuration_gets_an_owned_cronjob_and_its_deployment_the_sidecar_until_it_is_deleted()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let created = create_objects(&client, &ns, true).await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    let cronjobs = Api::<CronJob>::namespaced(client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);

    let bc = wait_for_phase(
        &bcs,
        BackupInvokerPhase::Ready,
        "the operator probably never reconciled it, or never got the leader Lease",
    )
    .await;
    assert_eq!(bc.uid(), created.uid());
    for type_ in [
        ConditionType::RepositoryFound,
        ConditionType::BackendSecretFound,
        ConditionType::BackupTargetFound,
        ConditionType::ValidationPassed,
        ConditionType::StashSidecarInjected,
        ConditionType::CronJobCreated,
    ] {
        assert_eq!(
            condition_status(&bc, type_).map(|c| c.0),
            Some(ConditionStatus::True),
            "{type_:?} in {:?}",
            bc.status
        );
    }
    assert!(
        bc.finalizers()
            .iter()
            .any(|f| f == labels::INVOKER_FINALIZER)
    );

    let cronjob = cronjobs
        .get("stash-trigger-deployment-backup")
        .await
        .expect("the trigger CronJob stash-trigger-deployment-backup exists");
    let owner = &cronjob.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), Some(&owner.uid)),
        (
            "BackupConfiguration",
            "deployment-backup",
            bc.uid().as_ref()
        )
    );
    let spec = cronjob.spec.clone();
    assert_eq!(spec.schedule, "*/5 * * * *");
    assert_eq!(spec.suspend, Some(false));

    let deployment = wait_for(
        "the stash sidecar in Deployment stash-demo (the operator probably did not update it)",
        TIMEOUT,
        || async {
            let d = deployments
                .get("stash-demo")
                .await
                .map_err(|e| e.to_string())?;
            if has_sidecar(&d) {
                Ok(d)
            } else {
                Err("no stash container yet".to_owned())
            }
        },
    )
    .await;
    assert!(
        template_annotation(
            &deployment,
            labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH
        )
        .is_some()
    );
    assert_eq!(
        deployment
            .annotations()
            .get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND)
            .map(String::as_str),
        Some("BackupConfiguration")
    );
    let generation = deployment.metadata.generation;

    // The operator serves its metrics and health.
    let metrics = String::from_utf8(operator.get("/metrics").await.body).unwrap();
    assert!(
        metrics.contains(r#"stash_operator_reconciles_total{controller="backupconfiguration"}"#),
        "{metrics}"
    );
    assert_eq!(operator.get("/healthz").await.status, 200);
    assert_eq!(operator.get("/readyz").await.status, 200);

    pausing_suspends_the_cronjob_and_leaves_the_pods_alone(
        &bcs,
        &cronjobs,
        &deployments,
        generation,
    )
    .await;
    deleting_removes_the_sidecar_the_annotations_and_the_cronjob(&bcs, &cronjobs, &deployments)
        .await;
    operator.stop().await;
}

#[tokio::test]
async fn a_backup_configuration_whose_secret_is_missing_is_not_ready_until_the_secret_is_created() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_objects(&client, &ns, false).await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);

    let bc = wait_for_phase(
        &bcs,
        BackupInvokerPhase::NotReady,
        "the operator probably never reconciled it",
    )
    .await;
    let (status, message) = condition_status(&bc, ConditionType::BackendSecretFound)
        .expect("a BackendSecretFound condition");
    assert_eq!(status, ConditionStatus::False);
    assert!(message.contains("Secret `gcs-secret`"), "{message}");
    assert_eq!(
        condition_status(&bc, ConditionType::RepositoryFound).map(|c| c.0),
        Some(ConditionStatus::True)
    );
    assert!(
        Api::<CronJob>::namespaced(client.clone(), &ns)
            .get_opt("stash-trigger-deployment-backup")
            .await
            .unwrap()
            .is_none(),
        "a CronJob was created for a BackupConfiguration without its Secret"
    );
    let events = wait_for(
        "a SecretNotFound Event on the BackupConfiguration",
        TIMEOUT,
        || async {
            let events = Api::<Event>::namespaced(client.clone(), &ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let found: Vec<Event> = events
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("SecretNotFound"))
                .collect();
            if found.is_empty() {
                Err("no such Event yet".to_owned())
            } else {
                Ok(found)
            }
        },
    )
    .await;
    assert_eq!(
        events[0].involved_object.name.as_deref(),
        Some("deployment-backup")
    );

    // The Secret appears; the operator, watching Secrets, makes the BackupConfiguration Ready.
    create_secret(&client, &ns).await;
    let bc = wait_for_phase(
        &bcs,
        BackupInvokerPhase::Ready,
        "the Secret watch probably did not trigger a reconcile",
    )
    .await;
    assert_eq!(
        condition_status(&bc, ConditionType::BackendSecretFound).map(|c| c.0),
        Some(ConditionStatus::True)
    );

    delete_and_wait(&bcs).await;
    operator.stop().await;
}

/// The invoker name recorded in the Deployment's `last-applied-backup-invoker` annotation.
fn recorded_invoker(deployment: &Deployment) -> Option<String> {
    let applied: serde_json::Value = serde_json::from_str(
        deployment
            .annotations()
            .get(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER)?,
    )
    .ok()?;
    applied
        .pointer("/metadata/name")?
        .as_str()
        .map(str::to_owned)
}

async fn wait_for_recorded_invoker(deployments: &Api<Deployment>, name: &str, hint: &str) {
    wait_for(
        &format!("Deployment stash-demo to carry the sidecar of {name} ({hint})"),
        TIMEOUT,
        || async {
            let d = deployments
                .get("stash-demo")
                .await
                .map_err(|e| e.to_string())?;
            match recorded_invoker(&d) {
                Some(n) if n == name && has_sidecar(&d) => Ok(()),
                other => Err(format!("recorded invoker is {other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn of_two_backup_configurations_on_one_deployment_the_newer_injects_and_the_older_takes_over_when_it_goes()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_objects(&client, &ns, true).await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    wait_for_phase(
        &bcs,
        BackupInvokerPhase::Ready,
        "the operator probably never reconciled it",
    )
    .await;
    wait_for_recorded_invoker(&deployments, "deployment-backup", "the first injection").await;

    // creationTimestamp has a resolution of one second: make sure the second one is newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut newer: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    newer.metadata.name = Some("newer-backup".to_owned());
    newer.metadata.namespace = Some(ns.to_string());
    bcs.create(&PostParams::default(), &newer)
        .await
        .expect("create the second BackupConfiguration");
    wait_for_recorded_invoker(
        &deployments,
        "newer-backup",
        "the newer one should win (§8.2)",
    )
    .await;
    let older = wait_for(
        "the older BackupConfiguration to report that it lost the sidecar",
        TIMEOUT,
        || async {
            let bc = bcs
                .get("deployment-backup")
                .await
                .map_err(|e| e.to_string())?;
            match condition_status(&bc, ConditionType::StashSidecarInjected) {
                Some((ConditionStatus::False, message)) => Ok(message),
                other => Err(format!("StashSidecarInjected is {other:?}")),
            }
        },
    )
    .await;
    assert!(older.contains("newer-backup"), "{older}");

    bcs.delete("newer-backup", &DeleteParams::default())
        .await
        .expect("delete the newer BackupConfiguration");
    wait_for_recorded_invoker(
        &deployments,
        "deployment-backup",
        "the Deployment watch probably did not re-enqueue the older one after the newer one's finalizer ran",
    )
    .await;

    delete_and_wait(&bcs).await;
    operator.stop().await;
}
