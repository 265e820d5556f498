//! `BackupBatch`: several targets backed up together into one Repository.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::backup_configuration::BackupConfigurationTemplateSpec;
use crate::common::{
    BackupHooks, Driver, ExecutionOrder, RepositoryRef, RetentionPolicy, RetryConfig,
    RuntimeSettings, TargetRef,
};
use crate::condition::Condition;
use crate::phase::BackupInvokerPhase;

/// Spec of a BackupBatch.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "stash.appscode.com",
    version = "v1beta1",
    kind = "BackupBatch",
    plural = "backupbatches",
    singular = "backupbatch",
    namespaced,
    status = "BackupBatchStatus",
    derive = "PartialEq",
    doc = "Periodic backup of several targets into one Repository.",
    category = "stash",
    category = "appscode",
    category = "all",
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
pub struct BackupBatchSpec {
    /// The targets; each is a separate target in the BackupSession.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<BackupConfigurationTemplateSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Restic"))]
    pub driver: Option<Driver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryRef>,
    pub retention_policy: RetentionPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = 1))]
    pub backup_history_limit: Option<i32>,
    /// Global hooks, run by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<BackupHooks>,
    /// `Parallel` (default) or `Sequential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Parallel"))]
    pub execution_order: Option<ExecutionOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_config: Option<RetryConfig>,
}

impl BackupBatchSpec {
    /// The driver, defaulted to `Restic`.
    #[must_use]
    pub fn driver(&self) -> Driver {
        self.driver.unwrap_or_default()
    }
}

/// Status of a BackupBatch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupBatchStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_conditions: Option<Vec<MemberConditions>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<BackupInvokerPhase>,
}

/// Conditions of one batch member.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberConditions {
    pub target: TargetRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
