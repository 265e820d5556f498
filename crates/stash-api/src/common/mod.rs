//! Types shared by several kinds.

pub mod backend;
pub mod hooks;
pub mod retention_policy;
pub mod runtime_settings;
pub mod target;
pub mod volume_source;

pub use backend::{
    AzureSpec, B2Spec, Backend, GcsSpec, LocalSpec, Provider, RestServerSpec, S3Spec, SwiftSpec,
};
pub use hooks::{
    BackupHooks, FormEntry, HTTPPostAction, Handler, HookExecutionPolicy, PostHookSpec,
    RestoreHooks,
};
pub use retention_policy::RetentionPolicy;
pub use runtime_settings::{
    ContainerRuntimeSettings, EmptyDirSettings, IONiceSettings, NiceSettings, PodRuntimeSettings,
    RuntimeSettings,
};
pub use target::{BackupTarget, RestoreTarget, Rule, TargetRef};
pub use volume_source::VolumeSource;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `spec.repository` of an invoker: the Repository to use.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryRef {
    /// Repository name.
    pub name: String,
    /// Repository namespace; empty means the invoker's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.task`: the Task that runs the backup/restore in the job model.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    /// Task name; empty for workload (sidecar) backups and KubeDB-managed databases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Values for the Task's variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Param>>,
}

/// A `name`/`value` pair handed to a Task or Function.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// A reference to an object by name only (obsolete `BackupSession.spec.backupConfiguration`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    pub name: String,
}

/// `retryConfig` (Stash v0.23+): how a failed BackupSession is retried.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryConfig {
    /// How many times a failed session is retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1))]
    pub max_retry: Option<i32>,
    /// Go duration to wait before retrying (e.g. `10m`); empty retries immediately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
}

/// Backup mechanism.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Driver {
    /// restic through the sidecar/init-container or a job.
    #[default]
    Restic,
    /// CSI VolumeSnapshots.
    VolumeSnapshotter,
}

/// How the members of a batch run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExecutionOrder {
    #[default]
    Parallel,
    Sequential,
}

/// A PVC template (kmodules offshoot `PersistentVolumeClaim`): only `metadata` and `spec`, so manifests
/// round-trip without gaining an `apiVersion`/`kind`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersistentVolumeClaimTemplate {
    /// Name (may contain `${POD_ORDINAL}`), labels and annotations of the PVC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<k8s_openapi::api::core::v1::PersistentVolumeClaimSpec>,
}

impl PersistentVolumeClaimTemplate {
    /// `metadata.name`, if set.
    #[must_use]
    pub fn name(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.name.as_deref())
    }
}
