//! End-to-end tests against the real control plane of stash-testenv.
//!
//! One test binary, so one control plane for all of them (it starts once, in
//! `TestEnv::shared`). Needs `scripts/build-k8s` (the Kubernetes binaries),
//! `cargo build -p stash-cli` (the `stash` binary the pod runner executes) and
//! `deploy/crds/`; a missing one fails the tests with the command to run.

mod agent_create_backupsession;
mod agent_faults;
mod agent_lease;
mod agent_restore;
mod agent_run_backup;
mod container_image;
mod control_plane;
mod deploy_manifests;
mod guides;
mod helm_chart;
mod helm_release;
mod job_model;
mod job_runs_stash;
mod kubectl_plugin;
mod operator;
mod operator_backup_configuration;
mod operator_backup_session;
mod operator_binary;
mod operator_faults;
mod operator_replicaset;
mod operator_restore_cleanup;
mod operator_restore_session;
mod operator_retarget;
mod operator_validating_webhook;
mod operator_webhook;
mod pod_identity;
mod pod_volumes;
mod snapshot_api;
mod stash_examples;
mod status_subresource;
mod support;
mod trigger_binary;

use std::time::Duration;

use kube::api::{Api, PostParams};
use stash_api::v1alpha1::Repository;

/// Generous: the machine has 2 cores shared with builds.
pub const TIMEOUT: Duration = Duration::from_mins(2);

/// The Repository `gcs-repo` that Stash's `BackupConfiguration` examples name (never dialled: the
/// operator only reads it), with its storage Secret `gcs-secret`.
pub async fn create_gcs_repository(client: &kube::Client, ns: &str) {
    let repository: Repository = serde_json::from_value(serde_json::json!({
        "apiVersion": "stash.appscode.com/v1alpha1", "kind": "Repository",
        "metadata": {"name": "gcs-repo"},
        "spec": {"backend": {"gcs": {"bucket": "stash-testing", "prefix": "/demo/deployment"},
                             "storageSecretName": "gcs-secret"}}
    }))
    .expect("a valid Repository");
    Api::<Repository>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &repository)
        .await
        .expect("create Repository gcs-repo");
}
