//! Setup and waits several end-to-end tests share: Stash's examples created in the test namespace, an
//! S3 Repository (moto) with its Secret, the trigger run as a user would, the final phases, restic's view
//! of the repository and the Events the operator records.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, PodTemplateSpec, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase, RestorePhase};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, BackupSession, RestoreSession};
use stash_testenv::{restic, s3, wait_for};

/// A whole backup and restore on two shared cores: generous on purpose.
pub const FLOW_TIMEOUT: Duration = Duration::from_mins(4);

/// Pods run with their service account's token, so the RBAC the operator grants the sidecar, the
/// init-container, the Jobs and the trigger is what they get: a missing permission fails the test.
pub fn service_account_identity() -> Value {
    json!({ stash_testenv::pod_runner::IDENTITY_ANNOTATION: "service-account" })
}

/// One of Stash's example manifests, as JSON to adjust before [`create`].
pub fn example(yaml: &str) -> Value {
    serde_yaml::from_str(yaml).expect("the example parses")
}

/// Creates `object` in `ns`.
pub async fn create<K>(client: &Client, ns: &str, mut object: Value) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    object["metadata"]["namespace"] = json!(ns);
    let object: K = serde_json::from_value(object).expect("the example is a valid object");
    Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", object.name_any()))
}

/// The S3 location (moto) of a test's repository: bucket and prefix.
#[derive(Clone, Copy, Debug)]
pub struct S3Repository<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub password: &'a str,
}

impl S3Repository<'_> {
    /// Secret `s3-secret` (the password and moto's credentials) and Repository `gcs-repo`, the name
    /// Stash's examples give it, here on S3.
    pub async fn create(&self, client: &Client, ns: &str) {
        let mut data = serde_json::Map::new();
        data.insert("RESTIC_PASSWORD".into(), self.password.into());
        for (key, value) in s3::env() {
            data.insert(key.into(), value.into());
        }
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "s3-secret"}, "stringData": data
        }))
        .unwrap();
        Api::<Secret>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &secret)
            .await
            .expect("create Secret s3-secret");
        let repository: Repository = serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
            "metadata": {"name": "gcs-repo"},
            "spec": {"backend": {
                "s3": {"endpoint": s3::shared().endpoint(), "bucket": self.bucket, "prefix": self.prefix},
                "storageSecretName": "s3-secret"}}
        }))
        .unwrap();
        Api::<Repository>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &repository)
            .await
            .expect("create the Repository the examples name (gcs-repo, here on S3)");
    }

    /// restic (Debian's, the oracle) run against the repository with `args`; its stdout.
    pub fn restic(&self, password: &str, args: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let out = restic::command_with_password(dir.path(), password)
            .envs(s3::env())
            .args(["--no-lock", "-r"])
            .arg(s3::shared().repository(self.bucket, self.prefix))
            .args(args)
            .output()
            .expect("run restic");
        assert!(
            out.status.success(),
            "restic {args:?} in bucket {}: {}",
            self.bucket,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// The hosts of the snapshots restic sees in the repository.
    pub fn snapshot_hosts(&self) -> BTreeSet<String> {
        let out = self.restic(self.password, &["--json", "snapshots"]);
        let snapshots: Vec<Value> = serde_json::from_slice(&out).unwrap();
        snapshots
            .iter()
            .filter_map(|s| s["hostname"].as_str().map(str::to_owned))
            .collect()
    }
}

/// Runs the trigger as a user would (`kubectl create job --from=cronjob/…`) once the
/// `BackupConfiguration` is Ready (a session of an invoker that is not is Skipped, §9.2, as in Stash) and
/// the operator made the `CronJob`, then waits for the session to succeed.
pub async fn trigger_and_wait(client: &Client, ns: &str, invoker: &str) -> BackupSession {
    let bcs: Api<BackupConfiguration> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("BackupConfiguration {invoker} to be Ready"),
        FLOW_TIMEOUT,
        || async {
            let bc = bcs.get(invoker).await.map_err(|e| e.to_string())?;
            match bc.status.as_ref().and_then(|s| s.phase) {
                Some(BackupInvokerPhase::Ready) => Ok(()),
                other => Err(format!("{other:?}: {:?}", bc.status)),
            }
        },
    )
    .await;
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), ns);
    let cronjob = wait_for(
        "the operator to create the trigger CronJob",
        FLOW_TIMEOUT,
        || async {
            cronjobs
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .next()
                .ok_or_else(|| "no CronJob yet".to_owned())
        },
    )
    .await;
    let mut template = cronjob.spec.job_template;
    if let Some(pod) = template.spec.as_mut().map(|s| &mut s.template) {
        pod.metadata.get_or_insert_default().annotations =
            serde_json::from_value(service_account_identity()).unwrap();
    }
    let job = Job {
        metadata: kube::api::ObjectMeta {
            name: Some("manual-trigger".into()),
            labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    Api::<Job>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &job)
        .await
        .expect("create a Job from the trigger CronJob");
    let sessions: Api<BackupSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("a BackupSession of {invoker} to succeed"),
        FLOW_TIMEOUT,
        || async {
            let session = sessions
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .next()
                .ok_or_else(|| "no BackupSession yet".to_owned())?;
            let phase = session.status.as_ref().and_then(|s| s.phase);
            match phase {
                Some(BackupSessionPhase::Succeeded) => Ok(session),
                Some(BackupSessionPhase::Failed | BackupSessionPhase::Skipped) => {
                    panic!("the session ended {phase:?}: {:#?}", session.status)
                }
                _ => Err(format!("{:?}", session.status)),
            }
        },
    )
    .await
}

/// Waits up to `timeout` for `RestoreSession` `name` to end; its last state.
pub async fn wait_restore_final(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> RestoreSession {
    let sessions: Api<RestoreSession> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("RestoreSession {name} to end"),
        timeout,
        || async {
            let session = sessions.get(name).await.map_err(|e| e.to_string())?;
            match session.status.as_ref().and_then(|s| s.phase) {
                Some(RestorePhase::Succeeded | RestorePhase::Failed | RestorePhase::Invalid) => {
                    Ok(session)
                }
                _ => Err(format!("{:?}", session.status)),
            }
        },
    )
    .await
}

/// Waits for `RestoreSession` `name` to succeed.
pub async fn wait_restored(client: &Client, ns: &str, name: &str) {
    let session = wait_restore_final(client, ns, name, FLOW_TIMEOUT).await;
    let phase = session.status.as_ref().and_then(|s| s.phase);
    assert_eq!(
        phase,
        Some(RestorePhase::Succeeded),
        "the restore ended {phase:?}: {:#?}",
        session.status
    );
}

/// Waits for a Warning Event with `reason` on the object with `uid`; returns its message.
pub async fn wait_for_warning(
    client: &Client,
    ns: &str,
    uid: Option<String>,
    reason: &str,
) -> String {
    wait_for(
        &format!("a {reason} Warning Event on object {uid:?}"),
        crate::TIMEOUT,
        || async {
            Api::<Event>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .find(|e| {
                    e.involved_object.uid == uid
                        && e.reason.as_deref() == Some(reason)
                        && e.type_.as_deref() == Some("Warning")
                })
                .and_then(|e| e.message)
                .ok_or_else(|| "no such Event yet".to_owned())
        },
    )
    .await
}

/// Deployment `stash-demo` of Stash's examples, the target of `backupconfiguration-deployment.yaml`.
pub fn demo_deployment() -> Deployment {
    serde_json::from_value(json!({
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
    .unwrap()
}

/// Whether a pod template carries stash's sidecar.
pub fn template_has_sidecar(template: Option<&PodTemplateSpec>) -> bool {
    template
        .and_then(|t| t.spec.as_ref())
        .is_some_and(|s| s.containers.iter().any(|c| c.name == "stash"))
}

/// [`demo_deployment`], created once a dry run of it comes back with the sidecar. The API server
/// picks a webhook configuration up asynchronously (failurePolicy Ignore admits silently
/// meanwhile), and the webhook decides from its own watch of `BackupConfigurations`, which sees one
/// just created a moment later (a Deployment admitted in between is patched by the controller
/// instead, as Stash's is).
pub async fn demo_deployment_created_once_the_webhook_injects(
    deployments: &Api<Deployment>,
) -> Deployment {
    wait_for(
        "a dry-run Deployment to come back with the sidecar from the webhook",
        crate::TIMEOUT,
        || async {
            let dry = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let created = deployments
                .create(&dry, &demo_deployment())
                .await
                .map_err(|e| e.to_string())?;
            if template_has_sidecar(Some(&created.spec.template)) {
                Ok(())
            } else {
                Err("no sidecar yet".to_owned())
            }
        },
    )
    .await;
    deployments
        .create(&PostParams::default(), &demo_deployment())
        .await
        .expect("create Deployment stash-demo")
}
