//! The operator's BackupSession controller, in-process against the real control plane and a real
//! Pushgateway, with the test playing the agent (protocol steps 4–6): it writes the host stats and the
//! post-backup conditions through the status subresource and watches the operator start, skip,
//! conclude, clean up, time out and retry sessions.

// Kind names (BackupSession, BackupConfiguration) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use stash_api::condition::{Condition, ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase, HostBackupPhase, TargetPhase};
use stash_api::v1beta1::{BackupConfiguration, BackupSession, HostBackupStats};
use stash_testenv::{Pushgateway, TestEnv, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);
const INVOKER: &str = "deployment-backup";

/// Repository, Secret, Deployment `stash-demo` and Stash's BackupConfiguration example with `spec`
/// merged in; returns once the BackupConfiguration is Ready.
async fn create_invoker(client: &Client, ns: &str, spec: serde_json::Value) {
    let pp = PostParams::default();
    crate::create_gcs_repository(client, ns).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "gcs-secret"},
        "stringData": {"RESTIC_PASSWORD": "changeit", "GOOGLE_PROJECT_ID": "e2e"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &secret)
        .await
        .expect("create Secret gcs-secret");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stash-demo"},
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
    let mut bc: serde_json::Value = serde_yaml::from_str(EXAMPLE).unwrap();
    bc["metadata"]["namespace"] = json!(ns);
    for (key, value) in spec.as_object().unwrap() {
        bc["spec"][key] = value.clone();
    }
    let bc: BackupConfiguration = serde_json::from_value(bc).unwrap();
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), ns);
    bcs.create(&pp, &bc)
        .await
        .expect("create the BackupConfiguration of Stash's deployment example");
    wait_for(
        "BackupConfiguration deployment-backup to be Ready (the operator probably never reconciled it)",
        TIMEOUT,
        || async {
            let bc = bcs.get(INVOKER).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                _ => Err(format!("status {:?}", bc.status)),
            }
        },
    )
    .await;
}

/// A session as the trigger creates it (§5.2): the invoker labels and `spec.invoker`.
async fn create_session(sessions: &Api<BackupSession>, name: &str, retry_left: Option<i32>) {
    let session: BackupSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
        "metadata": {"name": name, "labels": {
            labels::LABEL_INVOKER_TYPE: "BackupConfiguration",
            labels::LABEL_INVOKER_NAME: INVOKER,
        }},
        "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration", "name": INVOKER},
                 "retryLeft": retry_left},
    }))
    .unwrap();
    sessions
        .create(&PostParams::default(), &session)
        .await
        .unwrap_or_else(|e| panic!("create BackupSession {name}: {e}"));
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

fn condition(session: &BackupSession, type_: ConditionType) -> Option<Condition> {
    session
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn post_action_condition(type_: ConditionType) -> Condition {
    serde_json::from_value(json!({
        "type": type_, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
        "reason": "E2ePlayedAgent", "message": "written by the test playing the agent",
    }))
    .unwrap()
}

/// The agent's part (protocol steps 5–6) for the one host of the Deployment: its final stats entry and
/// the three post-backup conditions, read-modify-written with the resourceVersion.
async fn play_agent(sessions: &Api<BackupSession>, name: &str, phase: HostBackupPhase) {
    for _ in 0..10 {
        let mut session = sessions.get(name).await.expect("read the BackupSession");
        let status = session
            .status
            .as_mut()
            .expect("a started session has a status");
        let target = &mut status
            .targets
            .as_mut()
            .expect("targets written by the operator")[0];
        target.stats = Some(vec![HostBackupStats {
            hostname: Some("host-0".to_owned()),
            phase: Some(phase),
            duration: Some("2s".to_owned()),
            error: (phase == HostBackupPhase::Failed)
                .then(|| "read /source/data/a: permission denied".to_owned()),
            ..HostBackupStats::default()
        }]);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        for type_ in [
            ConditionType::RetentionPolicyApplied,
            ConditionType::RepositoryIntegrityVerified,
            ConditionType::RepositoryMetricsPushed,
        ] {
            conditions.push(post_action_condition(type_));
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

async fn session_names(sessions: &Api<BackupSession>) -> Vec<String> {
    let mut names: Vec<String> = sessions
        .list(&ListParams::default())
        .await
        .expect("list BackupSessions")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

async fn event_reasons(client: &Client, ns: &str, session: &str) -> Vec<String> {
    Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(session))
        .filter_map(|e| e.reason)
        .collect()
}

/// Runs a session through the agent's part to Succeeded.
async fn run_to_success(sessions: &Api<BackupSession>, name: &str) -> BackupSession {
    create_session(sessions, name, None).await;
    wait_for_phase(
        sessions,
        name,
        BackupSessionPhase::Running,
        "the operator did not start it",
    )
    .await;
    play_agent(sessions, name, HostBackupPhase::Succeeded).await;
    wait_for_phase(
        sessions,
        name,
        BackupSessionPhase::Succeeded,
        "the operator did not conclude it",
    )
    .await
}

/// Protocol step 3 for the Deployment: one target, one host, both action lists, the executor ensured.
fn assert_started_for_the_deployment(running: &BackupSession, ns: &str) {
    let target = &running.status.as_ref().unwrap().targets.as_ref().unwrap()[0];
    let reference = target.reference.as_ref().unwrap();
    assert_eq!(
        (
            reference.kind.as_str(),
            reference.name.as_str(),
            reference.namespace.as_deref()
        ),
        ("Deployment", "stash-demo", Some(ns))
    );
    assert_eq!(target.total_hosts, Some(1));
    assert_eq!(target.phase, Some(TargetPhase::Running));
    assert_eq!(
        target.pre_backup_actions.clone().unwrap(),
        ["InitializeBackendRepository"]
    );
    assert_eq!(
        target.post_backup_actions.clone().unwrap(),
        [
            "ApplyRetentionPolicy",
            "VerifyRepositoryIntegrity",
            "SendRepositoryMetrics"
        ]
    );
    let ensured = &target.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (ensured.type_, ensured.status),
        (ConditionType::BackupExecutorEnsured, ConditionStatus::True)
    );
}

#[tokio::test]
async fn a_deployment_session_runs_skips_a_second_one_succeeds_with_metrics_and_keeps_the_history_limit()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let gateway = Pushgateway::start();
    let operator = Operator::start(client.clone(), &ns, |c| c.pushgateway_url = gateway.url());
    create_invoker(&client, &ns, json!({})).await;
    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns);

    // Started: one target, one host, both action lists, the executor ensured.
    create_session(&sessions, "deployment-backup-1", None).await;
    let running = wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Running,
        "the operator did not start it",
    )
    .await;
    assert_started_for_the_deployment(&running, &ns);

    // A second session while the first runs is skipped, naming the running one.
    create_session(&sessions, "deployment-backup-2", None).await;
    let skipped = wait_for_phase(
        &sessions,
        "deployment-backup-2",
        BackupSessionPhase::Skipped,
        "the operator did not skip it",
    )
    .await;
    let why = condition(&skipped, ConditionType::BackupSkipped).expect("BackupSkipped");
    assert_eq!(why.status, ConditionStatus::True);
    assert_eq!(why.reason.as_deref(), Some("SkippedTakingNewBackup"));
    assert!(
        why.message
            .as_deref()
            .unwrap()
            .contains("deployment-backup-1"),
        "{why:?}"
    );

    // The agent reports: the first succeeds, with its duration, and its metrics are pushed.
    play_agent(&sessions, "deployment-backup-1", HostBackupPhase::Succeeded).await;
    let done = wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Succeeded,
        "the operator did not conclude it",
    )
    .await;
    let status = done.status.clone().unwrap();
    assert!(status.session_duration.is_some(), "{status:?}");
    assert_eq!(
        status.targets.unwrap()[0].phase,
        Some(TargetPhase::Succeeded)
    );
    for type_ in [
        ConditionType::MetricsPushed,
        ConditionType::BackupHistoryCleaned,
    ] {
        assert_eq!(
            condition(&done, type_).map(|c| c.status),
            Some(ConditionStatus::True),
            "{type_:?}"
        );
    }
    let job = format!("job=\"backupconfiguration-{ns}-{INVOKER}\"", ns = ns.name());
    let success = gateway.samples("stash_backup_session_success");
    assert!(
        success
            .iter()
            .any(|l| l.contains(&job) && l.ends_with(" 1")),
        "{success:?}"
    );
    let hosts = gateway.samples("stash_backup_target_host_count_total");
    assert!(
        hosts
            .iter()
            .any(|l| l.contains(&job) && l.contains("name=\"stash-demo\"") && l.ends_with(" 1")),
        "{hosts:?}"
    );
    let reasons = wait_for("the BackupSessionSucceeded Event", TIMEOUT, || async {
        let reasons = event_reasons(&client, &ns, "deployment-backup-1").await;
        if reasons.iter().any(|r| r == "BackupSessionSucceeded") {
            Ok(reasons)
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;
    assert!(
        reasons.iter().any(|r| r == "BackupSessionRunning"),
        "{reasons:?}"
    );

    // History (backupHistoryLimit defaults to 1): the completing session and the newest completed
    // one stay; older final ones go, the skipped one first.
    run_to_success(&sessions, "deployment-backup-3").await;
    assert_eq!(
        session_names(&sessions).await,
        ["deployment-backup-1", "deployment-backup-3"]
    );
    run_to_success(&sessions, "deployment-backup-4").await;
    assert_eq!(
        session_names(&sessions).await,
        ["deployment-backup-3", "deployment-backup-4"]
    );
    operator.stop().await;
}

#[tokio::test]
async fn a_failed_host_fails_the_session_whose_retry_then_exceeds_its_deadline() {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    let gateway = Pushgateway::start();
    let operator = Operator::start(client.clone(), &ns, |c| c.pushgateway_url = gateway.url());
    create_invoker(
        &client,
        &ns,
        json!({"timeOut": "45s", "retryConfig": {"maxRetry": 1}}),
    )
    .await;
    let sessions = Api::<BackupSession>::namespaced(client.clone(), &ns);

    create_session(&sessions, "deployment-backup-1", Some(1)).await;
    let running = wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Running,
        "the operator did not start it",
    )
    .await;
    assert!(
        running.status.unwrap().session_deadline.is_some(),
        "no sessionDeadline although the invoker has a timeOut"
    );
    play_agent(&sessions, "deployment-backup-1", HostBackupPhase::Failed).await;
    let failed = wait_for_phase(
        &sessions,
        "deployment-backup-1",
        BackupSessionPhase::Failed,
        "the operator did not conclude it",
    )
    .await;
    assert_eq!(
        failed.status.as_ref().unwrap().targets.as_ref().unwrap()[0].phase,
        Some(TargetPhase::Failed)
    );
    assert_eq!(condition(&failed, ConditionType::DeadlineExceeded), None);
    let job = format!("job=\"backupconfiguration-{ns}-{INVOKER}\"", ns = ns.name());
    let success = gateway.samples("stash_backup_session_success");
    assert!(
        success
            .iter()
            .any(|l| l.contains(&job) && l.ends_with(" 0")),
        "{success:?}"
    );

    // Retried at once (no delay): a new session of the invoker with one retry less.
    let retry = wait_for(
        "the retry BackupSession (the operator probably did not retry the failed one)",
        TIMEOUT,
        || async {
            let list = sessions
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .into_iter()
                .find(|s| s.name_any() != "deployment-backup-1")
                .ok_or_else(|| "only the failed session".to_owned())
        },
    )
    .await;
    assert_eq!(retry.spec.retry_left, Some(0));
    assert_eq!(retry.labels()[labels::LABEL_INVOKER_NAME], INVOKER);
    assert_eq!(retry.owner_references()[0].name, INVOKER);
    let original = sessions.get("deployment-backup-1").await.unwrap();
    assert_eq!(original.status.unwrap().retried, Some(true));

    // Nobody backs the retry up: its timeOut passes and it fails with DeadlineExceeded.
    let name = retry.name_any();
    wait_for_phase(
        &sessions,
        &name,
        BackupSessionPhase::Running,
        "the operator did not start it",
    )
    .await;
    let timed_out = wait_for(
        &format!("BackupSession {name} to fail after its 45 s timeOut"),
        TIMEOUT,
        || async {
            let s = sessions.get(&name).await.map_err(|e| e.to_string())?;
            if s.status.as_ref().and_then(|st| st.phase) == Some(BackupSessionPhase::Failed) {
                Ok(s)
            } else {
                Err(format!("status {:?}", s.status))
            }
        },
    )
    .await;
    let exceeded =
        condition(&timed_out, ConditionType::DeadlineExceeded).expect("DeadlineExceeded");
    assert_eq!(exceeded.status, ConditionStatus::True);
    assert_eq!(
        exceeded.reason.as_deref(),
        Some("FailedToCompleteWithinDeadline")
    );
    assert!(timed_out.status.unwrap().session_duration.is_some());
    operator.stop().await;
}
