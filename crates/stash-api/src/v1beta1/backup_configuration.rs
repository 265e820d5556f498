//! `BackupConfiguration`: what to back up, where, when, and what to keep.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    BackupHooks, BackupTarget, Driver, EmptyDirSettings, RepositoryRef, RetentionPolicy,
    RetryConfig, RuntimeSettings, TaskRef,
};
use crate::condition::Condition;
use crate::phase::BackupInvokerPhase;

/// Spec of a BackupConfiguration.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "stash.appscode.com",
    version = "v1beta1",
    kind = "BackupConfiguration",
    plural = "backupconfigurations",
    singular = "backupconfiguration",
    namespaced,
    status = "BackupConfigurationStatus",
    derive = "PartialEq",
    doc = "Periodic backup of one target into a Repository.",
    shortname = "bc",
    category = "stash",
    category = "appscode",
    category = "all",
    printcolumn(name = "Task", type_ = "string", json_path = ".spec.task.name"),
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationSpec {
    /// CronJob schedule, e.g. `*/5 * * * *` or `@every 1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// `Restic` (default) or `VolumeSnapshotter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Restic"))]
    pub driver: Option<Driver>,
    /// Repository to back up into (not needed for VolumeSnapshotter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryRef>,
    /// Task for the job model; empty for workload (sidecar) backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    /// What to back up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    /// Which snapshots to keep.
    pub retention_policy: RetentionPolicy,
    /// Suspend the trigger CronJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Completed BackupSessions to keep (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1))]
    pub backup_history_limit: Option<i32>,
    /// Session deadline (Go duration), counted from the BackupSession's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<String>,
    /// How failed sessions are retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
    /// Settings of the stash containers/pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    /// The emptyDir mounted at `/tmp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<EmptyDirSettings>,
    /// PVC template for intermediate data (job model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<crate::common::PersistentVolumeClaimTemplate>,
    /// Pre/post backup hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
}

/// One member of a BackupBatch (Stash's `BackupConfigurationTemplateSpec`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<EmptyDirSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<crate::common::PersistentVolumeClaimTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
}

/// Status of a BackupConfiguration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfigurationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// `Invalid`, `Ready` or `NotReady` (v0.18+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupInvokerPhase>,
}

impl BackupConfigurationSpec {
    /// The driver, defaulted to `Restic`.
    #[must_use]
    pub fn driver(&self) -> Driver {
        self.driver.unwrap_or_default()
    }
}
