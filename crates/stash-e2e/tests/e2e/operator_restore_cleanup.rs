//! What deleting a RestoreSession leaves behind, and standalone ReplicaSet targets, with the operator
//! started in-process and the test playing the agent (it writes the hosts' `stats[]` entries as
//! `stash-init` would). The init-container RBAC is named after the workload, so it is shared by every
//! RestoreSession of the workload: deleting one keeps it while another still restores into the workload,
//! and deleting the last one removes it. A standalone ReplicaSet (a Stash v0.17 manifest) is restored
//! like a Deployment, its pods restarted with `stash-init`; one a Deployment manages is refused naming it.

// Kind names (RestoreSession, Deployment, ReplicaSet) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use stash_api::condition::{ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::{HostRestorePhase, RestorePhase};
use stash_api::v1beta1::{HostRestoreStats, RestoreSession};
use stash_operator::build::rbac::restore_init_container_rbac_names;
use stash_operator::workload::WorkloadKind;
use stash_testenv::{TestEnv, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;
use crate::support::wait_for_warning;

const WORKLOAD: &str = "stash-recovered";

fn pod_template() -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": WORKLOAD}},
        "spec": {
            "containers": [{"name": "busybox", "image": "busybox",
                            "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}]}],
            "volumes": [{"name": "source-data", "emptyDir": {}}]
        }
    })
}

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

/// RestoreSession `name` restoring `gcs-repo` into `kind` `target` (Stash's v1beta1 example shape).
async fn create_restore_session(client: &Client, ns: &str, name: &str, kind: &str, target: &str) {
    let rs: RestoreSession = serde_json::from_value(json!({
        "apiVersion": "stash.appscode.com/v1beta1", "kind": "RestoreSession",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "repository": {"name": "gcs-repo"},
            "target": {
                "ref": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                "volumeMounts": [{"name": "source-data", "mountPath": "/source/data"}],
                "rules": [{"paths": ["/source/data"]}]
            }
        }
    }))
    .unwrap();
    Api::<RestoreSession>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rs)
        .await
        .unwrap_or_else(|e| panic!("create RestoreSession {name}: {e}"));
}

/// Waits until RestoreSession `name` has a final phase: with no Pushgateway to push its metrics to it
/// ends Failed (MetricsPushed False) though its host succeeded; what matters here is that it is done and
/// no longer writes its objects.
async fn wait_until_final(sessions: &Api<RestoreSession>, name: &str) {
    wait_for(
        &format!("RestoreSession {name} to be final"),
        TIMEOUT,
        || async {
            let rs = sessions.get(name).await.map_err(|e| e.to_string())?;
            let status = rs.status.clone().unwrap_or_default();
            if status.phase.is_some_and(RestorePhase::is_final) {
                Ok(())
            } else {
                Err(format!("status is {status:?}"))
            }
        },
    )
    .await;
}

async fn wait_for_phase(
    sessions: &Api<RestoreSession>,
    name: &str,
    phase: RestorePhase,
) -> RestoreSession {
    wait_for(
        &format!("RestoreSession {name} to be {phase:?}"),
        TIMEOUT,
        || async {
            let rs = sessions.get(name).await.map_err(|e| e.to_string())?;
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

/// What `stash-init` does when `host-0` is done: upsert its `stats[]` entry (again after a conflict).
async fn report_host_succeeded(sessions: &Api<RestoreSession>, name: &str) {
    let entry = HostRestoreStats {
        hostname: Some("host-0".to_owned()),
        phase: Some(HostRestorePhase::Succeeded),
        duration: Some("2s".to_owned()),
        error: None,
        progress: None,
    };
    for _ in 0..20 {
        let mut rs = sessions.get(name).await.expect("read the RestoreSession");
        let entries = rs
            .status
            .get_or_insert_with(Default::default)
            .stats
            .get_or_insert_with(Vec::new);
        entries.retain(|h| h.hostname != entry.hostname);
        entries.push(entry.clone());
        match sessions
            .replace_status(name, &PostParams::default(), &rs)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(err) => panic!("failed to write the host's stats entry: {err}"),
        }
    }
    panic!("the host's stats entry kept conflicting with other writes");
}

/// Runs RestoreSession `name` to its end: Running with one host, then the test reports `host-0`.
async fn restore(sessions: &Api<RestoreSession>, name: &str) {
    let rs = wait_for_phase(sessions, name, RestorePhase::Running).await;
    assert_eq!(rs.status.and_then(|s| s.total_hosts), Some(1));
    report_host_succeeded(sessions, name).await;
    wait_until_final(sessions, name).await;
}

async fn delete_and_wait(sessions: &Api<RestoreSession>, name: &str) {
    sessions
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete RestoreSession {name}: {e}"));
    wait_for(
        &format!(
            "RestoreSession {name} to be gone (the operator's finalizer probably did not run)"
        ),
        TIMEOUT,
        || async {
            match sessions.get_opt(name).await {
                Ok(None) => Ok(()),
                Ok(Some(rs)) => Err(format!("still there, finalizers {:?}", rs.finalizers())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("read {name}: {e}"))
        .is_some()
}

/// Waits until the init-container RBAC of `kind` `ns/WORKLOAD` is all there (`present`) or all gone.
async fn wait_for_rbac(client: &Client, ns: &str, kind: WorkloadKind, present: bool, hint: &str) {
    let (binding, access) = restore_init_container_rbac_names(kind, ns, WORKLOAD);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), ns);
    let roles = Api::<Role>::namespaced(client.clone(), ns);
    wait_for(
        &format!(
            "RoleBinding {binding} and Role+RoleBinding {access} to exist: {present} ({hint})"
        ),
        TIMEOUT,
        || async {
            let found = [
                exists(&bindings, &binding).await,
                exists(&bindings, &access).await,
                exists(&roles, &access).await,
            ];
            if found.iter().all(|f| *f == present) {
                Ok(())
            } else {
                Err(format!(
                    "binding, access binding, access role exist: {found:?}"
                ))
            }
        },
    )
    .await;
}

fn init_containers(template: Option<&PodTemplateSpec>) -> Vec<String> {
    template
        .and_then(|t| t.spec.as_ref())
        .and_then(|p| p.init_containers.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect()
}

fn recorded_restore_invoker(
    annotations: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    let applied: serde_json::Value =
        serde_json::from_str(annotations.get(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER)?)
            .ok()?;
    applied
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

#[tokio::test]
async fn deleting_a_restore_session_keeps_the_init_container_rbac_another_one_of_the_workload_needs_and_deleting_the_last_removes_it()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository(&client, &ns).await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": WORKLOAD},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": WORKLOAD}}, "template": pod_template()}
    }))
    .unwrap();
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment stash-recovered");
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), &ns);

    // Both end, so neither writes its RBAC again: what stays is what the finalizer kept.
    create_restore_session(&client, &ns, "first", "Deployment", WORKLOAD).await;
    restore(&sessions, "first").await;
    create_restore_session(&client, &ns, "second", "Deployment", WORKLOAD).await;
    restore(&sessions, "second").await;
    wait_for_rbac(
        &client,
        &ns,
        WorkloadKind::Deployment,
        true,
        "the operator probably did not apply it",
    )
    .await;

    delete_and_wait(&sessions, "first").await;
    let d = deployments.get(WORKLOAD).await.unwrap();
    assert_eq!(
        recorded_restore_invoker(d.annotations()).as_deref(),
        Some("second")
    );
    assert_eq!(init_containers(Some(&d.spec.template)), ["stash-init"]);
    wait_for_rbac(
        &client,
        &ns,
        WorkloadKind::Deployment,
        true,
        "RestoreSession second still restores into the Deployment",
    )
    .await;

    delete_and_wait(&sessions, "second").await;
    wait_for_rbac(
        &client,
        &ns,
        WorkloadKind::Deployment,
        false,
        "the finalizer of the last RestoreSession probably left it",
    )
    .await;
    let d = deployments.get(WORKLOAD).await.unwrap();
    assert_eq!(
        init_containers(Some(&d.spec.template)),
        Vec::<String>::new()
    );
    operator.stop().await;
}

/// The live pods of ReplicaSet `uid`, each as whether it runs `stash-init`.
async fn live_pods(pods: &Api<Pod>, uid: &str) -> Result<Vec<bool>, String> {
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={WORKLOAD}")))
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.owner_references().iter().any(|o| o.uid == uid))
        .map(|p| {
            p.spec
                .and_then(|s| s.init_containers)
                .unwrap_or_default()
                .iter()
                .any(|c| c.name == labels::CONTAINER_INIT)
        })
        .collect())
}

async fn wait_for_pods(pods: &Api<Pod>, uid: &str, with_init: bool, hint: &str) {
    wait_for(
        &format!("one live pod of ReplicaSet {WORKLOAD}, running stash-init: {with_init} ({hint})"),
        TIMEOUT,
        || async {
            match live_pods(pods, uid).await?.as_slice() {
                [has] if *has == with_init => Ok(()),
                other => Err(format!("live pods running stash-init: {other:?}")),
            }
        },
    )
    .await;
}

/// A Deployment's ReplicaSet named by a RestoreSession is refused, and the message names the Deployment.
async fn a_deployments_replicaset_is_refused_naming_the_deployment(client: &Client, ns: &str) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "busybox", "image": "busybox"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create Deployment web");
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), ns);
    let owned = wait_for(
        "Deployment web's ReplicaSet (the KCM makes it)",
        TIMEOUT,
        || async {
            replica_sets
                .list(&ListParams::default().labels("app=web"))
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .next()
                .map(|r| r.name_any())
                .ok_or_else(|| "none yet".to_owned())
        },
    )
    .await;
    create_restore_session(client, ns, "managed", "ReplicaSet", &owned).await;
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), ns);
    let message = wait_for(
        "RestoreTargetFound False on RestoreSession managed",
        TIMEOUT,
        || async {
            let rs = sessions.get("managed").await.map_err(|e| e.to_string())?;
            rs.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .find(|c| {
                    c.type_ == ConditionType::RestoreTargetFound
                        && c.status == ConditionStatus::False
                })
                .and_then(|c| c.message.clone())
                .ok_or_else(|| format!("status is {:?}", rs.status))
        },
    )
    .await;
    assert!(
        message.contains("is managed by Deployment `web`"),
        "{message}"
    );
    assert!(message.contains("kind: Deployment, name: web"), "{message}");
    let template = replica_sets.get(&owned).await.unwrap().spec.template;
    assert!(init_containers(template.as_ref()).is_empty());
}

#[tokio::test]
async fn a_standalone_replicaset_is_restored_like_a_deployment_and_its_deletion_removes_stash_init_and_rbac()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository(&client, &ns).await;
    let replica_set: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": WORKLOAD, "labels": {"app": WORKLOAD}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": WORKLOAD}}, "template": pod_template()}
    }))
    .unwrap();
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    let uid = replica_sets
        .create(&PostParams::default(), &replica_set)
        .await
        .expect("create ReplicaSet stash-recovered")
        .uid()
        .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    wait_for_pods(
        &pods,
        &uid,
        false,
        "the KCM probably did not create the pod",
    )
    .await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let sessions = Api::<RestoreSession>::namespaced(client.clone(), &ns);

    create_restore_session(&client, &ns, "rs-restore", "ReplicaSet", WORKLOAD).await;
    let running = wait_for_phase(&sessions, "rs-restore", RestorePhase::Running).await;
    assert_eq!(running.status.as_ref().and_then(|s| s.total_hosts), Some(1));
    let warning = wait_for_warning(&client, &ns, running.uid(), "DeprecatedTarget").await;
    assert!(
        warning.contains("ReplicaSet")
            && warning.contains("stash-init")
            && warning.contains("target the Deployment"),
        "the RestoreSession is warned as the BackupConfiguration is: {warning}"
    );
    let template = replica_sets.get(WORKLOAD).await.unwrap().spec.template;
    assert_eq!(init_containers(template.as_ref()), ["stash-init"]);
    wait_for_pods(
        &pods,
        &uid,
        true,
        "the operator probably did not restart the old pod",
    )
    .await;
    wait_for_rbac(
        &client,
        &ns,
        WorkloadKind::ReplicaSet,
        true,
        "the operator probably did not apply it",
    )
    .await;
    report_host_succeeded(&sessions, "rs-restore").await;
    wait_until_final(&sessions, "rs-restore").await;

    delete_and_wait(&sessions, "rs-restore").await;
    let template = replica_sets.get(WORKLOAD).await.unwrap().spec.template;
    assert!(init_containers(template.as_ref()).is_empty());
    wait_for_pods(
        &pods,
        &uid,
        false,
        "the finalizer probably did not restart the pod",
    )
    .await;
    wait_for_rbac(
        &client,
        &ns,
        WorkloadKind::ReplicaSet,
        false,
        "the finalizer probably left it",
    )
    .await;

    a_deployments_replicaset_is_refused_naming_the_deployment(&client, &ns).await;
    operator.stop().await;
}
