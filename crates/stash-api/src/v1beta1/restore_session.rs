//! `RestoreSession`: one restore of a Repository into a target.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    Driver, EmptyDirSettings, RepositoryRef, RestoreHooks, RestoreTarget, Rule, RuntimeSettings,
    TaskRef,
};
use crate::condition::Condition;
use crate::phase::{HostRestorePhase, RestorePhase};

/// Spec of a RestoreSession. Immutable after creation.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "stash.appscode.com",
    version = "v1beta1",
    kind = "RestoreSession",
    plural = "restoresessions",
    singular = "restoresession",
    namespaced,
    status = "RestoreSessionStatus",
    derive = "PartialEq",
    doc = "Restores data from a Repository into a target.",
    shortname = "restore",
    category = "stash",
    category = "appscode",
    category = "all",
    printcolumn(
        name = "Repository",
        type_ = "string",
        json_path = ".spec.repository.name"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Duration",
        type_ = "string",
        json_path = ".status.sessionDuration"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionSpec {
    /// `Restic` (default) or `VolumeSnapshotter`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Restic"))]
    pub driver: Option<Driver>,
    /// Repository to restore from (not needed for VolumeSnapshotter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<RepositoryRef>,
    /// Task for the job model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskRef>,
    /// Where to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RestoreTarget>,
    /// Deprecated: use `spec.target.rules`. Moved there on admission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<RuntimeSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_dir: Option<EmptyDirSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interim_volume_template: Option<crate::common::PersistentVolumeClaimTemplate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<RestoreHooks>,
    /// Session deadline (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<String>,
}

impl RestoreSessionSpec {
    /// The driver, defaulted to `Restic`.
    #[must_use]
    pub fn driver(&self) -> Driver {
        self.driver.unwrap_or_default()
    }
}

impl RestoreSession {
    /// What Stash's mutating webhook does: move the deprecated `spec.rules` into `spec.target.rules`
    /// when the latter is empty, and clear `spec.rules`. Returns whether anything changed.
    pub fn migrate_deprecated_rules(&mut self) -> bool {
        let Some(rules) = self.spec.rules.take() else {
            return false;
        };
        let target = self.spec.target.get_or_insert_with(RestoreTarget::default);
        if target.rules.as_ref().is_none_or(Vec::is_empty) {
            target.rules = Some(rules);
        }
        true
    }
}

/// Status of a RestoreSession.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_hosts: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_deadline: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<HostRestoreStats>>,
}

/// Restore result of one host.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostRestoreStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<HostRestorePhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Live progress of the restore (a stash-rs addition, as for backups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<super::HostProgress>,
}
