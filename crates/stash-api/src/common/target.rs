//! What an invoker backs up or restores: `spec.target` of BackupConfiguration / RestoreSession and the
//! `members[].target` of the batch kinds (Stash's `BackupTarget`, `RestoreTarget`, `TargetRef`, `Rule`).

use k8s_openapi::api::core::v1::VolumeMount;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The object an invoker points at (`target.ref`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API version of the referent, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent, e.g. `Deployment`.
    pub kind: String,
    /// Name of the referent.
    pub name: String,
    /// Namespace of the referent; empty means the invoker's namespace (Stash v0.20+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `spec.target` of a backup invoker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// Identifier used to build the restic `--host` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The object to back up.
    #[serde(rename = "ref")]
    pub reference: TargetRef,
    /// Absolute paths to back up; one restic snapshot per path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Mounts added to the stash sidecar/job; the volumes must already exist in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// How many StatefulSet replicas to snapshot (VolumeSnapshotter only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// VolumeSnapshotClass to use (VolumeSnapshotter only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_class_name: Option<String>,
    /// restic `--exclude` patterns (Restic driver only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// Extra arguments appended to `restic backup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

/// `spec.target` of a restore invoker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreTarget {
    /// Identifier used to build the restic `--host` value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The object to restore into (absent for VolumeSnapshotter restores that only create PVCs).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<TargetRef>,
    /// Mounts added to the stash init-container/job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<VolumeMount>>,
    /// Number of replicas to restore for `volumeClaimTemplates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// PVC templates; names may contain `${POD_ORDINAL}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_templates: Option<Vec<crate::common::PersistentVolumeClaimTemplate>>,
    /// Which data to restore on which host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    /// Extra arguments appended to `restic restore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

/// A restore selection rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Hosts this rule applies to; empty means all hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_hosts: Option<Vec<String>>,
    /// Host whose data is restored; empty means the restoring host itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_host: Option<String>,
    /// Explicit snapshot ids (or `latest`); mutually exclusive with `paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Vec<String>>,
    /// Paths to restore from the latest snapshot of `sourceHost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// restic `--include` patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// restic `--exclude` patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
}

impl Rule {
    /// The rule's target hosts (empty when it applies to every host).
    #[must_use]
    pub fn target_hosts(&self) -> &[String] {
        self.target_hosts.as_deref().unwrap_or_default()
    }
}
