//! kmodules conditions and the condition types / reasons Stash sets.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kmodules `Condition`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: ConditionType,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `True`, `False` or `Unknown`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// Every condition type Stash sets on its objects.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionType {
    // BackupConfiguration / BackupBatch / RestoreSession / RestoreBatch
    RepositoryFound,
    BackendSecretFound,
    BackupTargetFound,
    StashSidecarInjected,
    CronJobCreated,
    ValidationPassed,
    // BackupSession, session level
    BackendRepositoryInitialized,
    RetentionPolicyApplied,
    RepositoryIntegrityVerified,
    RepositoryMetricsPushed,
    BackupSkipped,
    BackupHistoryCleaned,
    MetricsPushed,
    DeadlineExceeded,
    GlobalPreBackupHookSucceeded,
    GlobalPostBackupHookSucceeded,
    // BackupSession, target level
    TargetBackupInitiated,
    BackupExecutorEnsured,
    PreBackupHookExecutionSucceeded,
    PostBackupHookExecutionSucceeded,
    // RestoreSession / RestoreBatch
    RestoreTargetFound,
    StashInitContainerInjected,
    RestoreJobCreated,
    RestoreExecutorEnsured,
    RestoreCompleted,
    PreRestoreHookExecutionSucceeded,
    PostRestoreHookExecutionSucceeded,
    GlobalPreRestoreHookSucceeded,
    GlobalPostRestoreHookSucceeded,
}

/// Condition reasons Stash uses (free-form strings on the wire).
pub mod reason {
    pub const REPOSITORY_AVAILABLE: &str = "RepositoryAvailable";
    pub const REPOSITORY_NOT_AVAILABLE: &str = "RepositoryNotAvailable";
    pub const UNABLE_TO_CHECK_REPOSITORY_AVAILABILITY: &str = "UnableToCheckRepositoryAvailability";
    pub const BACKEND_SECRET_AVAILABLE: &str = "BackendSecretAvailable";
    pub const BACKEND_SECRET_NOT_AVAILABLE: &str = "BackendSecretNotAvailable";
    pub const UNABLE_TO_CHECK_BACKEND_SECRET_AVAILABILITY: &str =
        "UnableToCheckBackendSecretAvailability";
    pub const TARGET_AVAILABLE: &str = "TargetAvailable";
    pub const TARGET_NOT_AVAILABLE: &str = "TargetNotAvailable";
    pub const UNABLE_TO_CHECK_TARGET_AVAILABILITY: &str = "UnableToCheckTargetAvailability";
    pub const SIDECAR_INJECTION_SUCCEEDED: &str = "SidecarInjectionSucceeded";
    pub const SIDECAR_INJECTION_FAILED: &str = "SidecarInjectionFailed";
    pub const INIT_CONTAINER_INJECTION_SUCCEEDED: &str = "InitContainerInjectionSucceeded";
    pub const INIT_CONTAINER_INJECTION_FAILED: &str = "InitContainerInjectionFailed";
    pub const CRON_JOB_CREATION_SUCCEEDED: &str = "CronJobCreationSucceeded";
    pub const CRON_JOB_CREATION_FAILED: &str = "CronJobCreationFailed";
    pub const RESOURCE_VALIDATION_PASSED: &str = "ResourceValidationPassed";
    pub const RESOURCE_VALIDATION_FAILED: &str = "ResourceValidationFailed";
    pub const BACKEND_REPOSITORY_FOUND: &str = "BackendRepositoryFound";
    pub const FAILED_TO_INITIALIZE_BACKEND_REPOSITORY: &str = "FailedToInitializeBackendRepository";
    pub const SKIPPED_TAKING_NEW_BACKUP: &str = "SkippedTakingNewBackup";
    pub const FAILED_TO_COMPLETE_WITHIN_DEADLINE: &str = "FailedToCompleteWithinDeadline";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_round_trips_with_stash_field_names() {
        let json = serde_json::json!({
            "type": "BackupSkipped",
            "status": "True",
            "reason": "SkippedTakingNewBackup",
            "lastTransitionTime": "2022-12-11T10:00:00Z",
            "observedGeneration": 2
        });
        let c: Condition = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(c.type_, ConditionType::BackupSkipped);
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(serde_json::to_value(&c).unwrap(), json);
    }
}
