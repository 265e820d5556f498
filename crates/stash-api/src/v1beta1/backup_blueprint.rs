//! `BackupBlueprint` (cluster scoped): template for auto-backup of annotated workloads, PVCs and AppBindings.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Backend, BackupHooks, EmptyDirSettings, RetentionPolicy, RetryConfig, RuntimeSettings, TaskRef,
};
use crate::v1alpha1::UsagePolicy;

/// Spec of a BackupBlueprint: an inline RepositorySpec plus a BackupConfiguration template.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "stash.appscode.com",
    version = "v1beta1",
    kind = "BackupBlueprint",
    plural = "backupblueprints",
    singular = "backupblueprint",
    derive = "PartialEq",
    doc = "Template for the Repository and BackupConfiguration of auto-backed-up targets.",
    shortname = "bb",
    category = "stash",
    category = "appscode",
    printcolumn(name = "Task", type_ = "string", json_path = ".spec.task.name"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupBlueprintSpec {
    /// Repository backend; prefixes may use `${TARGET_NAMESPACE}`, `${TARGET_KIND}`, `${TARGET_NAME}`.
    pub backend: Backend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wipe_out: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_policy: Option<UsagePolicy>,
    /// Namespace of the generated BackupConfiguration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_namespace: Option<String>,
    /// Namespace of the generated Repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    pub retention_policy: RetentionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<EmptyDirSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<crate::common::PersistentVolumeClaimTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1))]
    pub backup_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
}
