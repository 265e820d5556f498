//! The operator, started in-process, when a BackupConfiguration lets go of a workload: retargeting it
//! from one Deployment to another moves the sidecar, the annotations and the sidecar's RBAC and keeps one
//! trigger CronJob; deleting it removes the RBAC it was given (the trigger's by garbage collection, the
//! sidecar's by the finalizer), except a binding another BackupConfiguration of the same workload still
//! needs.

// Kind names (BackupConfiguration, RoleBinding) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use stash_api::labels;
use stash_api::v1beta1::BackupConfiguration;
use stash_operator::Workload;
use stash_testenv::{TestEnv, wait_for};

use crate::TIMEOUT;
use crate::operator::Operator;

const EXAMPLE: &str = include_str!(
    "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
);

async fn create_deployment(client: &Client, ns: &str, name: &str) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
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
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("create Deployment {name}: {e}"));
}

/// Repository `gcs-repo` with its Secret, and Deployment `stash-demo` of Stash's example.
async fn create_repository_and_deployment(client: &Client, ns: &str) {
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
    create_deployment(client, ns, "stash-demo").await;
}

/// Stash's example BackupConfiguration under `name`.
async fn create_backup_configuration(bcs: &Api<BackupConfiguration>, ns: &str, name: &str) {
    let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
    bc.metadata.name = Some(name.to_owned());
    bc.metadata.namespace = Some(ns.to_owned());
    bcs.create(&PostParams::default(), &bc)
        .await
        .unwrap_or_else(|e| panic!("create BackupConfiguration {name}: {e}"));
}

fn has_sidecar(deployment: &Deployment) -> bool {
    deployment.spec.template.spec.as_ref().is_some_and(|p| {
        p.containers
            .iter()
            .any(|c| c.name == labels::CONTAINER_SIDECAR)
    })
}

/// The BackupConfiguration the Deployment's `last-applied-backup-invoker` annotation names.
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

async fn wait_for_sidecar_of(
    deployments: &Api<Deployment>,
    deployment: &str,
    invoker: &str,
    hint: &str,
) {
    wait_for(
        &format!("Deployment {deployment} to carry the sidecar of {invoker} ({hint})"),
        TIMEOUT,
        || async {
            let d = deployments
                .get(deployment)
                .await
                .map_err(|e| e.to_string())?;
            match recorded_invoker(&d) {
                Some(n) if n == invoker && has_sidecar(&d) => Ok(()),
                other => Err(format!(
                    "recorded invoker {other:?}, sidecar {}",
                    has_sidecar(&d)
                )),
            }
        },
    )
    .await;
}

/// Waits until the Deployment carries nothing of stash: no sidecar, no `stash.appscode.com/` annotation
/// on it or its pod template, only its own volume.
async fn wait_for_clean(deployments: &Api<Deployment>, deployment: &str, hint: &str) {
    wait_for(
        &format!("Deployment {deployment} to be as before the injection ({hint})"),
        TIMEOUT,
        || async {
            let d = deployments
                .get(deployment)
                .await
                .map_err(|e| e.to_string())?;
            let template_annotations = d
                .spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.annotations.clone())
                .unwrap_or_default();
            let stash_annotations: Vec<&String> = d
                .annotations()
                .keys()
                .chain(template_annotations.keys())
                .filter(|k| k.starts_with("stash.appscode.com/"))
                .collect();
            let volumes: Vec<String> = d
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.volumes.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.name)
                .collect();
            if has_sidecar(&d) || !stash_annotations.is_empty() || volumes != ["source-data"] {
                Err(format!(
                    "sidecar {}, annotations {stash_annotations:?}, volumes {volumes:?}",
                    has_sidecar(&d)
                ))
            } else {
                Ok(())
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

async fn wait_gone<K>(api: &Api<K>, kind: &str, name: &str, hint: &str)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    wait_for(
        &format!("{kind} {name} to be gone ({hint})"),
        TIMEOUT,
        || async {
            if exists(api, name).await {
                Err("still there".to_owned())
            } else {
                Ok(())
            }
        },
    )
    .await;
}

async fn wait_present<K>(api: &Api<K>, kind: &str, name: &str, hint: &str) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    wait_for(
        &format!("{kind} {name} to exist ({hint})"),
        TIMEOUT,
        || async {
            api.get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not there".to_owned())
        },
    )
    .await
}

async fn delete_and_wait(bcs: &Api<BackupConfiguration>, name: &str) {
    bcs.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete BackupConfiguration {name}: {e}"));
    wait_gone(
        bcs,
        "BackupConfiguration",
        name,
        "the operator's finalizer probably did not run",
    )
    .await;
}

/// The names the sidecar's RBAC has for Deployment `name` (§8.3; long names are shortened the way the
/// operator's builder does it).
fn sidecar_rbac_names(ns: &str, deployment: &str) -> (String, String) {
    let workload = Workload::from(Deployment {
        metadata: ObjectMeta {
            name: Some(deployment.to_owned()),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        ..Deployment::default()
    });
    stash_operator::build::rbac::sidecar_rbac_names(&workload)
}

/// Exactly one trigger CronJob, and a change to the old target does not bring the sidecar back.
async fn one_cronjob_and_the_old_target_stays_clean(client: &Client, ns: &str) {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let cronjobs: Vec<String> = Api::<CronJob>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list CronJobs")
        .items
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert_eq!(cronjobs, ["stash-trigger-deployment-backup"]);

    // A change to the old Deployment does not bring the sidecar back.
    deployments
        .patch(
            "stash-demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .expect("touch Deployment stash-demo");
    tokio::time::sleep(Duration::from_secs(2)).await;
    wait_for_clean(
        &deployments,
        "stash-demo",
        "a touch of the old target re-injected it",
    )
    .await;
}

/// Deletes deployment-backup, the last BackupConfiguration of stash-demo: the sidecar's RBAC goes (the
/// finalizer) and so does the trigger's (garbage collection).
async fn deleting_the_last_one_removes_all_rbac(client: &Client, ns: &str) {
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), ns);
    let roles = Api::<Role>::namespaced(client.clone(), ns);
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let (sidecar_binding, repository_access) = sidecar_rbac_names(ns, "stash-demo");
    delete_and_wait(&bcs, "deployment-backup").await;
    wait_for_clean(
        &deployments,
        "stash-demo",
        "the last BackupConfiguration is gone",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        &sidecar_binding,
        "no BackupConfiguration needs it any more",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        &repository_access,
        "no BackupConfiguration needs it any more",
    )
    .await;
    wait_gone(
        &roles,
        "Role",
        &repository_access,
        "no BackupConfiguration needs it any more",
    )
    .await;
    wait_gone(
        &accounts,
        "ServiceAccount",
        "stash-trigger-deployment-backup",
        "garbage collection",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        "stash-trigger-deployment-backup",
        "garbage collection",
    )
    .await;
}

#[tokio::test]
async fn retargeting_a_backup_configuration_moves_the_sidecar_annotations_and_rbac_to_the_new_deployment_and_keeps_one_cronjob()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository_and_deployment(&client, &ns).await;
    create_deployment(&client, &ns, "other-demo").await;
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    create_backup_configuration(&bcs, &ns, "deployment-backup").await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &ns);
    let roles = Api::<Role>::namespaced(client.clone(), &ns);
    let (old_binding, old_access) = sidecar_rbac_names(&ns, "stash-demo");
    let (new_binding, new_access) = sidecar_rbac_names(&ns, "other-demo");

    wait_for_sidecar_of(
        &deployments,
        "stash-demo",
        "deployment-backup",
        "the first injection",
    )
    .await;
    wait_present(&bindings, "RoleBinding", &old_binding, "the sidecar's RBAC").await;

    bcs.patch(
        "deployment-backup",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"target": {"ref": {"name": "other-demo"}}}})),
    )
    .await
    .expect("retarget the BackupConfiguration to Deployment other-demo");

    wait_for_sidecar_of(
        &deployments,
        "other-demo",
        "deployment-backup",
        "the retarget should inject the new target",
    )
    .await;
    wait_for_clean(
        &deployments,
        "stash-demo",
        "the operator probably never looked for the workloads whose annotations still name the BackupConfiguration",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        &old_binding,
        "the old target's sidecar RBAC",
    )
    .await;
    wait_gone(
        &roles,
        "Role",
        &old_access,
        "the old target's Repository Role",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        &old_access,
        "the old target's Repository RoleBinding",
    )
    .await;
    assert!(
        exists(&bindings, &new_binding).await,
        "RoleBinding {new_binding} of the new target"
    );
    assert!(
        exists(&roles, &new_access).await,
        "Role {new_access} of the new target"
    );

    one_cronjob_and_the_old_target_stays_clean(&client, &ns).await;

    delete_and_wait(&bcs, "deployment-backup").await;
    wait_for_clean(
        &deployments,
        "other-demo",
        "deleting the BackupConfiguration",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        &new_binding,
        "deleting the BackupConfiguration",
    )
    .await;
    operator.stop().await;
}

#[tokio::test]
async fn deleting_a_backup_configuration_removes_its_rbac_but_keeps_the_sidecar_binding_another_one_still_needs()
 {
    let env = TestEnv::shared().await;
    let ns = env.namespace().await;
    let client = env.client();
    create_repository_and_deployment(&client, &ns).await;
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), &ns);
    create_backup_configuration(&bcs, &ns, "deployment-backup").await;
    let operator = Operator::start(client.clone(), &ns, |_| {});
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), &ns);
    let roles = Api::<Role>::namespaced(client.clone(), &ns);
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    let (sidecar_binding, repository_access) = sidecar_rbac_names(&ns, "stash-demo");

    wait_for_sidecar_of(
        &deployments,
        "stash-demo",
        "deployment-backup",
        "the first injection",
    )
    .await;
    for trigger in ["stash-trigger-deployment-backup"] {
        wait_present(
            &accounts,
            "ServiceAccount",
            trigger,
            "the trigger's identity",
        )
        .await;
        wait_present(&bindings, "RoleBinding", trigger, "the trigger's binding").await;
    }

    // A second, newer BackupConfiguration of the same Deployment: it shares the sidecar's RBAC.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create_backup_configuration(&bcs, &ns, "newer-backup").await;
    wait_for_sidecar_of(
        &deployments,
        "stash-demo",
        "newer-backup",
        "the newer one wins (§8.2)",
    )
    .await;
    wait_present(
        &accounts,
        "ServiceAccount",
        "stash-trigger-newer-backup",
        "the newer trigger's identity",
    )
    .await;
    let shared = wait_present(
        &bindings,
        "RoleBinding",
        &sidecar_binding,
        "the shared sidecar binding",
    )
    .await;

    delete_and_wait(&bcs, "newer-backup").await;
    wait_for_sidecar_of(
        &deployments,
        "stash-demo",
        "deployment-backup",
        "the older one takes over",
    )
    .await;
    wait_gone(
        &accounts,
        "ServiceAccount",
        "stash-trigger-newer-backup",
        "the garbage collector removes what the deleted BackupConfiguration owned",
    )
    .await;
    wait_gone(
        &bindings,
        "RoleBinding",
        "stash-trigger-newer-backup",
        "garbage collection",
    )
    .await;
    let kept = bindings
        .get(&sidecar_binding)
        .await
        .expect("the sidecar binding deployment-backup still needs was deleted");
    assert_eq!(
        kept.uid(),
        shared.uid(),
        "the shared sidecar binding was deleted and re-created instead of kept"
    );
    assert!(exists(&roles, &repository_access).await);

    deleting_the_last_one_removes_all_rbac(&client, &ns).await;
    operator.stop().await;
}
