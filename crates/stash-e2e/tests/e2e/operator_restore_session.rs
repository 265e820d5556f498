//! The RestoreSession controller, with the operator started in-process (one per test namespace) and the
//! test playing the agent: it writes the hosts' `stats[]` entries through the status subresource as
//! `stash-init` would. Covers the init-container going first into a Deployment, Running with
//! `totalHosts`, Succeeded with the restore metrics in a real Pushgateway, Failed, a missing Repository
//! (Pending until it is created) and the finalizer taking `stash-init` out again.

// Kind names (RestoreSession, Deployment) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::{ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::{HostRestorePhase, RestorePhase};
use stash_api::v1beta1::{HostRestoreStats, RestoreSession};
use stash_testenv::{Pushgateway, TestEnv, servers, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;

const EXAMPLE: &str =
    include_str!("../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml");
const NAME: &str = "deployment-restore";
const DEPLOYMENT: &str = "stash-recovered";

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

/// The Deployment to restore into, with an init-container of its own that `stash-init` must precede.
async fn create_deployment(client: &Client, ns: &str) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": DEPLOYMENT, "labels": {"app": DEPLOYMENT}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": DEPLOYMENT}},
            "template": {
                "metadata": {"labels": {"app": DEPLOYMENT}},
                "spec": {
                    "initContainers": [{"name": "migrate", "image": "busybox"}],
                    "containers": [{"name": "busybox", "image": "busybox",
                                    "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
                    "volumes": [{"name": "source-data", "emptyDir": {}}]
                }
            }
        }
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment stash-recovered");
}

/// Stash's Deployment restore example, in this namespace.
async fn create_restore_session(client: &Client, ns: &str) {
    create_restore_session_with_timeout(client, ns, None).await;
}

async fn create_restore_session_with_timeout(client: &Client, ns: &str, time_out: Option<&str>) {
    let mut rs: RestoreSession = serde_yaml::from_str(EXAMPLE).unwrap();
    rs.metadata.namespace = Some(ns.to_owned());
    rs.spec.time_out = time_out.map(str::to_owned);
    Api::<RestoreSession>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rs)
        .await
        .expect("create the RestoreSession of Stash's deployment example");
}

async fn wait_for_phase(
    sessions: &Api<RestoreSession>,
    phase: RestorePhase,
    hint: &str,
) -> RestoreSession {
    wait_for(
        &format!("RestoreSession {NAME} to be {phase:?} ({hint})"),
        TIMEOUT,
        || async {
            let rs = sessions.get(NAME).await.map_err(|e| e.to_string())?;
            let status = rs.status.clone().unwrap_or_default();
            if status.phase == Some(phase) {
                Ok(rs)
            } else {
                Err(format!("status is {status:?}"))
            }
        },
    )
    .await
}

fn condition(rs: &RestoreSession, type_: ConditionType) -> Option<(ConditionStatus, String)> {
    rs.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status, c.message.clone().unwrap_or_default()))
}

/// What `stash-init` does when its host is done: upsert its `stats[]` entry, read-modify-write with
/// the resourceVersion, again after a conflict with the operator's own write.
async fn report_host(sessions: &Api<RestoreSession>, entry: HostRestoreStats) {
    for _ in 0..20 {
        let mut rs = sessions.get(NAME).await.expect("read the RestoreSession");
        let entries = rs
            .status
            .get_or_insert_with(Default::default)
            .stats
            .get_or_insert_with(Vec::new);
        entries.retain(|h| h.hostname != entry.hostname);
        entries.push(entry.clone());
        match sessions
            .replace_status(NAME, &PostParams::default(), &rs)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("failed to write the host's stats entry: {err}"),
        }
    }
    panic!("the host's stats entry kept conflicting with other writes");
}

fn host(phase: HostRestorePhase, duration: Option<&str>, error: Option<&str>) -> HostRestoreStats {
    HostRestoreStats {
        hostname: Some("host-0".to_owned()),
        phase: Some(phase),
        duration: duration.map(str::to_owned),
        error: error.map(str::to_owned),
        progress: None,
    }
}

fn init_containers(deployment: &Deployment) -> Vec<String> {
    deployment
        .spec
        .template
        .spec
        .as_ref()
        .and_then(|p| p.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

async fn wait_for_init_containers(
    deployments: &Api<Deployment>,
    wanted: &[&str],
    hint: &str,
) -> Deployment {
    wait_for(
        &format!("the init-containers of Deployment {DEPLOYMENT} to be {wanted:?} ({hint})"),
        TIMEOUT,
        || async {
            let d = deployments
                .get(DEPLOYMENT)
                .await
                .map_err(|e| e.to_string())?;
            let names = init_containers(&d);
            if names == wanted {
                Ok(d)
            } else {
                Err(format!("they are {names:?}"))
            }
        },
    )
    .await
}

/// The samples of `metric` in the Pushgateway, read off the runtime thread the operator runs on.
async fn samples(pushgateway: &Pushgateway, metric: &'static str) -> Vec<String> {
    let url = pushgateway.url();
    tokio::task::spawn_blocking(move || {
        let response =
            servers::get(&format!("{url}/metrics")).expect("GET the Pushgateway's /metrics");
        response
            .text()
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .map(str::to_owned)
            .collect()
    })
    .await
    .unwrap()
}

/// Deletes the RestoreSession and waits until its finalizer has run.
async fn delete_and_wait(sessions: &Api<RestoreSession>) {
    sessions
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete the RestoreSession");
    wait_for(
        "the RestoreSession to be gone (the operator's finalizer probably did not run)",
        TIMEOUT,
        || async {
            match sessions.get_opt(NAME).await {
                Ok(None) => Ok(()),
                Ok(Some(rs)) => Err(format!("still there, finalizers {:?}", rs.finalizers())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

/// The test as agent reports `host-0` Succeeded; the operator sets Succeeded, `sessionDuration` and
/// `MetricsPushed`, and the session and target gauges are in the Pushgateway.
async fn a_succeeded_host_makes_the_session_succeeded_with_metrics(
    sessions: &Api<RestoreSession>,
    pushgateway: &Pushgateway,
    ns: &str,
) {
    report_host(
        sessions,
        host(HostRestorePhase::Succeeded, Some("3s"), None),
    )
    .await;
    let rs = wait_for_phase(
        sessions,
        RestorePhase::Succeeded,
        "the operator probably did not see the host's Succeeded entry",
    )
    .await;
    let status = rs.status.clone().unwrap();
    assert!(status.session_duration.is_some(), "{status:?}");
    assert_eq!(
        condition(&rs, ConditionType::MetricsPushed).map(|c| c.0),
        Some(ConditionStatus::True)
    );
    let job = format!("job=\"restoresession-{ns}-{NAME}\"");
    let success = samples(pushgateway, "stash_restore_session_success").await;
    assert!(
        success
            .iter()
            .any(|s| s.contains(&job) && s.ends_with(" 1")),
        "{success:?}"
    );
    let hosts = samples(pushgateway, "stash_restore_target_host_count_total").await;
    assert!(
        hosts
            .iter()
            .any(|s| s.contains(&job) && s.contains("kind=\"Deployment\"") && s.ends_with(" 1")),
        "{hosts:?}"
    );
}

#[tokio::test]
async fn a_restore_session_puts_stash_init_first_into_its_deployment_and_succeeds_with_metrics_when_its_host_does()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = tokio::task::spawn_blocking(Pushgateway::start)
        .await
        .unwrap();
    crate::create_gcs_repository(&client, &ns).await;
    create_secret(&client, &ns).await;
    create_deployment(&client, &ns).await;
    create_restore_session(&client, &ns).await;
    let operator = Operator::start(client.clone(), &ns, |c| {
        c.pushgateway_url = pushgateway.url();
    });
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);

    let rs = wait_for_phase(
        &sessions,
        RestorePhase::Running,
        "the operator probably never reconciled it, or never got the leader Lease",
    )
    .await;
    let status = rs.status.clone().unwrap();
    assert_eq!(status.total_hosts, Some(1));
    for type_ in [
        ConditionType::RepositoryFound,
        ConditionType::BackendSecretFound,
        ConditionType::RestoreTargetFound,
        ConditionType::ValidationPassed,
        ConditionType::StashInitContainerInjected,
    ] {
        assert_eq!(
            condition(&rs, type_).map(|c| c.0),
            Some(ConditionStatus::True),
            "{type_:?} in {status:?}"
        );
    }
    assert!(
        rs.finalizers()
            .iter()
            .any(|f| f == labels::INVOKER_FINALIZER)
    );

    let deployment = wait_for_init_containers(
        &deployments,
        &["stash-init", "migrate"],
        "the operator probably did not update the Deployment",
    )
    .await;
    assert_eq!(
        deployment
            .annotations()
            .get(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_KIND)
            .map(String::as_str),
        Some("RestoreSession")
    );
    assert!(
        deployment
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.as_ref())
            .is_some_and(|a| a.contains_key(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH))
    );

    a_succeeded_host_makes_the_session_succeeded_with_metrics(&sessions, &pushgateway, ns.name())
        .await;

    delete_and_wait(&sessions).await;
    let deployment = wait_for_init_containers(
        &deployments,
        &["migrate"],
        "the finalizer probably did not update the Deployment",
    )
    .await;
    assert!(
        !deployment
            .annotations()
            .keys()
            .any(|k| k.starts_with("stash.appscode.com/")),
        "{:?}",
        deployment.annotations()
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_restore_session_waits_pending_for_its_missing_repository_and_fails_when_its_host_does() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = tokio::task::spawn_blocking(Pushgateway::start)
        .await
        .unwrap();
    create_secret(&client, &ns).await;
    create_deployment(&client, &ns).await;
    create_restore_session(&client, &ns).await;
    let operator = Operator::start(client.clone(), &ns, |c| {
        c.pushgateway_url = pushgateway.url();
    });
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), &ns);

    let rs = wait_for_phase(
        &sessions,
        RestorePhase::Pending,
        "the operator probably never reconciled it",
    )
    .await;
    let (found, message) =
        condition(&rs, ConditionType::RepositoryFound).expect("a RepositoryFound condition");
    assert_eq!(found, ConditionStatus::False);
    assert!(
        message.contains("Repository `gcs-repo` does not exist in namespace")
            && message.contains("create it"),
        "{message}"
    );

    crate::create_gcs_repository(&client, &ns).await;
    wait_for_phase(
        &sessions,
        RestorePhase::Running,
        "the operator probably did not notice the Repository appear",
    )
    .await;

    report_host(
        &sessions,
        host(
            HostRestorePhase::Failed,
            None,
            Some("snapshot latest not found"),
        ),
    )
    .await;
    let rs = wait_for_phase(
        &sessions,
        RestorePhase::Failed,
        "the operator probably did not see the host's Failed entry",
    )
    .await;
    assert!(rs.status.unwrap().session_duration.is_some());
    let job = format!("job=\"restoresession-{}-{NAME}\"", ns.name());
    let success = samples(&pushgateway, "stash_restore_session_success").await;
    assert!(
        success
            .iter()
            .any(|s| s.contains(&job) && s.ends_with(" 0")),
        "{success:?}"
    );
    delete_and_wait(&sessions).await;
    operator.stop().await;
}

#[tokio::test]
async fn a_restore_session_whose_host_does_not_report_within_its_timeout_fails_with_deadline_exceeded()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let pushgateway = tokio::task::spawn_blocking(Pushgateway::start)
        .await
        .unwrap();
    crate::create_gcs_repository(&client, &ns).await;
    create_secret(&client, &ns).await;
    create_deployment(&client, &ns).await;
    create_restore_session_with_timeout(&client, &ns, Some("5s")).await;
    let operator = Operator::start(client.clone(), &ns, |c| {
        c.pushgateway_url = pushgateway.url();
    });
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), &ns);

    let rs = wait_for_phase(
        &sessions,
        RestorePhase::Failed,
        "the operator probably did not requeue the session at its deadline",
    )
    .await;
    let status = rs.status.clone().unwrap();
    let created = rs.metadata.creation_timestamp.clone().unwrap().0;
    let deadline = status.session_deadline.clone().expect("sessionDeadline").0;
    assert_eq!(deadline.duration_since(created).as_secs(), 5, "{status:?}");
    assert!(status.session_duration.is_some(), "{status:?}");
    for type_ in [
        ConditionType::DeadlineExceeded,
        ConditionType::MetricsPushed,
    ] {
        assert_eq!(
            condition(&rs, type_).map(|c| c.0),
            Some(ConditionStatus::True),
            "{type_:?} in {status:?}"
        );
    }
    delete_and_wait(&sessions).await;
    operator.stop().await;
}
