//! Invokers (who asked for a backup or restore) and their targets (what is backed up or restored), the
//! split Stash's `invoker` package makes: a BackupConfiguration has one target, a BackupBatch one per
//! member, and every builder works on one [`BackupTargetInfo`] / [`RestoreTargetInfo`] at a time.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;
use serde_json::{Value, json};
use stash_api::common::{
    BackupTarget, Driver, EmptyDirSettings, RepositoryRef, RestoreTarget, RuntimeSettings,
    TargetRef, TaskRef,
};
use stash_api::v1beta1::{BackupBatch, BackupConfiguration, RestoreBatch, RestoreSession};

use crate::workload::{APPS_V1, Workload, WorkloadKind};

/// API version of every invoker kind.
pub const STASH_V1BETA1: &str = "stash.appscode.com/v1beta1";

/// The kinds that ask for backups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackupInvokerKind {
    BackupConfiguration,
    BackupBatch,
}

/// The kinds that ask for restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RestoreInvokerKind {
    RestoreSession,
    RestoreBatch,
}

impl BackupInvokerKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BackupConfiguration => "BackupConfiguration",
            Self::BackupBatch => "BackupBatch",
        }
    }

    #[must_use]
    pub fn from_kind(kind: &str) -> Option<Self> {
        [Self::BackupConfiguration, Self::BackupBatch]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }
}

impl RestoreInvokerKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestoreSession => "RestoreSession",
            Self::RestoreBatch => "RestoreBatch",
        }
    }

    #[must_use]
    pub fn from_kind(kind: &str) -> Option<Self> {
        [Self::RestoreSession, Self::RestoreBatch]
            .into_iter()
            .find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for BackupInvokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RestoreInvokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backup invoker as read from the API server.
#[derive(Clone, Copy, Debug)]
pub enum BackupInvoker<'a> {
    Configuration(&'a BackupConfiguration),
    Batch(&'a BackupBatch),
}

/// A restore invoker as read from the API server.
#[derive(Clone, Copy, Debug)]
pub enum RestoreInvoker<'a> {
    Session(&'a RestoreSession),
    Batch(&'a RestoreBatch),
}

/// One target of a backup invoker with the settings that apply to its executor (Stash's `TargetInfo`).
#[derive(Clone, Copy, Debug)]
pub struct BackupTargetInfo<'a> {
    pub invoker: BackupInvoker<'a>,
    /// 0 for a BackupConfiguration, the member index for a BackupBatch.
    pub index: usize,
    pub target: Option<&'a BackupTarget>,
    pub task: Option<&'a TaskRef>,
    pub runtime_settings: Option<&'a RuntimeSettings>,
    pub temp_dir: Option<&'a EmptyDirSettings>,
}

/// One target of a restore invoker with the settings that apply to its executor.
#[derive(Clone, Copy, Debug)]
pub struct RestoreTargetInfo<'a> {
    pub invoker: RestoreInvoker<'a>,
    pub index: usize,
    pub target: Option<&'a RestoreTarget>,
    pub task: Option<&'a TaskRef>,
    pub runtime_settings: Option<&'a RuntimeSettings>,
    pub temp_dir: Option<&'a EmptyDirSettings>,
}

impl<'a> BackupInvoker<'a> {
    #[must_use]
    pub fn kind(self) -> BackupInvokerKind {
        match self {
            Self::Configuration(_) => BackupInvokerKind::BackupConfiguration,
            Self::Batch(_) => BackupInvokerKind::BackupBatch,
        }
    }

    #[must_use]
    pub fn metadata(self) -> &'a ObjectMeta {
        match self {
            Self::Configuration(bc) => &bc.metadata,
            Self::Batch(bb) => &bb.metadata,
        }
    }

    #[must_use]
    pub fn name(self) -> &'a str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn namespace(self) -> &'a str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn schedule(self) -> Option<&'a str> {
        match self {
            Self::Configuration(bc) => bc.spec.schedule.as_deref(),
            Self::Batch(bb) => bb.spec.schedule.as_deref(),
        }
    }

    #[must_use]
    pub fn paused(self) -> bool {
        match self {
            Self::Configuration(bc) => bc.spec.paused,
            Self::Batch(bb) => bb.spec.paused,
        }
        .unwrap_or(false)
    }

    #[must_use]
    pub fn driver(self) -> Driver {
        match self {
            Self::Configuration(bc) => bc.spec.driver(),
            Self::Batch(bb) => bb.spec.driver(),
        }
    }

    #[must_use]
    pub fn repository(self) -> Option<&'a RepositoryRef> {
        match self {
            Self::Configuration(bc) => bc.spec.repository.as_ref(),
            Self::Batch(bb) => bb.spec.repository.as_ref(),
        }
    }

    /// The invoker-level runtime settings: what the trigger CronJob gets (§9.1).
    #[must_use]
    pub fn runtime_settings(self) -> Option<&'a RuntimeSettings> {
        match self {
            Self::Configuration(bc) => bc.spec.runtime_settings.as_ref(),
            Self::Batch(bb) => bb.spec.runtime_settings.as_ref(),
        }
    }

    /// Every target, in order.
    #[must_use]
    pub fn targets(self) -> Vec<BackupTargetInfo<'a>> {
        match self {
            Self::Configuration(bc) => vec![BackupTargetInfo {
                invoker: self,
                index: 0,
                target: bc.spec.target.as_ref(),
                task: bc.spec.task.as_ref(),
                runtime_settings: bc.spec.runtime_settings.as_ref(),
                temp_dir: bc.spec.temp_dir.as_ref(),
            }],
            Self::Batch(bb) => bb
                .spec
                .members
                .iter()
                .flatten()
                .enumerate()
                .map(|(index, member)| BackupTargetInfo {
                    invoker: self,
                    index,
                    target: member.target.as_ref(),
                    task: member.task.as_ref(),
                    runtime_settings: member.runtime_settings.as_ref(),
                    temp_dir: member.temp_dir.as_ref(),
                })
                .collect(),
        }
    }

    /// The target that names `workload` (§8.2), if any.
    #[must_use]
    pub fn target_for(self, workload: &Workload) -> Option<BackupTargetInfo<'a>> {
        self.targets().into_iter().find(|info| {
            info.target
                .is_some_and(|t| names_workload(&t.reference, self.namespace(), workload))
        })
    }

    /// A controller reference to the invoker, so what it creates is garbage-collected with it.
    #[must_use]
    pub fn owner_reference(self) -> Option<OwnerReference> {
        owner_reference(self.kind().as_str(), self.metadata())
    }

    /// The value of `stash.appscode.com/last-applied-backup-invoker` (§8.2): the invoker with its metadata
    /// trimmed and its status dropped.
    pub fn applied_json(self) -> Result<String, serde_json::Error> {
        match self {
            Self::Configuration(bc) => applied_json(self.kind().as_str(), &bc.metadata, &bc.spec),
            Self::Batch(bb) => applied_json(self.kind().as_str(), &bb.metadata, &bb.spec),
        }
    }
}

impl fmt::Display for BackupInvoker<'_> {
    /// `BackupConfiguration demo/deployment-backup`, the form errors use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind(), self.namespace(), self.name())
    }
}

impl<'a> BackupTargetInfo<'a> {
    /// Where the target sits in the invoker's spec, for messages that name the field to fix.
    #[must_use]
    pub fn target_field(&self) -> String {
        match self.invoker {
            BackupInvoker::Configuration(_) => "spec.target".to_owned(),
            BackupInvoker::Batch(_) => format!("spec.members[{}].target", self.index),
        }
    }

    /// `target.ref.namespace`, defaulted to the invoker's namespace (Stash v0.20+).
    #[must_use]
    pub fn target_namespace(&self) -> &'a str {
        self.target
            .and_then(|t| t.reference.namespace.as_deref())
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| self.invoker.namespace())
    }

    /// Whether this target is backed up by a sidecar (§8.1): Restic, no task, a workload kind.
    #[must_use]
    pub fn uses_sidecar(&self) -> bool {
        self.invoker.driver() == Driver::Restic
            && self
                .task
                .and_then(|t| t.name.as_deref())
                .is_none_or(str::is_empty)
            && self.target.is_some_and(|t| {
                WorkloadKind::from_kind(&t.reference.kind)
                    .is_some_and(WorkloadKind::has_sidecar_model)
            })
    }

    /// `!tempDir.disableCaching`: whether restic keeps its cache (§2.6).
    #[must_use]
    pub fn enable_cache(&self) -> bool {
        !self
            .temp_dir
            .and_then(|t| t.disable_caching)
            .unwrap_or(false)
    }

    /// The pod-template hash (`…-backup-invoker-hash`, §8.2): FNV-64a, in decimal, of the parts of the
    /// invoker that shape the injected sidecar. `paused`, the schedule, retention, hooks, history and retry
    /// settings, other batch members, metadata and status are left out, so none of them restarts the
    /// workload's pods.
    #[must_use]
    pub fn spec_hash(&self) -> String {
        executor_hash(&json!({
            "invokerKind": self.invoker.kind().as_str(),
            "invokerName": self.invoker.name(),
            "driver": self.invoker.driver(),
            "repository": self.invoker.repository(),
            "target": self.target,
            "task": self.task,
            "container": self.runtime_settings.and_then(|r| r.container.as_ref()),
            "tempDir": self.temp_dir,
        }))
    }
}

impl<'a> RestoreInvoker<'a> {
    #[must_use]
    pub fn kind(self) -> RestoreInvokerKind {
        match self {
            Self::Session(_) => RestoreInvokerKind::RestoreSession,
            Self::Batch(_) => RestoreInvokerKind::RestoreBatch,
        }
    }

    #[must_use]
    pub fn metadata(self) -> &'a ObjectMeta {
        match self {
            Self::Session(rs) => &rs.metadata,
            Self::Batch(rb) => &rb.metadata,
        }
    }

    #[must_use]
    pub fn name(self) -> &'a str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn namespace(self) -> &'a str {
        self.metadata().namespace.as_deref().unwrap_or_default()
    }

    #[must_use]
    pub fn driver(self) -> Driver {
        match self {
            Self::Session(rs) => rs.spec.driver(),
            Self::Batch(rb) => rb.spec.driver(),
        }
    }

    #[must_use]
    pub fn repository(self) -> Option<&'a RepositoryRef> {
        match self {
            Self::Session(rs) => rs.spec.repository.as_ref(),
            Self::Batch(rb) => rb.spec.repository.as_ref(),
        }
    }

    /// Every target, in order.
    #[must_use]
    pub fn targets(self) -> Vec<RestoreTargetInfo<'a>> {
        match self {
            Self::Session(rs) => vec![RestoreTargetInfo {
                invoker: self,
                index: 0,
                target: rs.spec.target.as_ref(),
                task: rs.spec.task.as_ref(),
                runtime_settings: rs.spec.runtime_settings.as_ref(),
                temp_dir: rs.spec.temp_dir.as_ref(),
            }],
            Self::Batch(rb) => rb
                .spec
                .members
                .iter()
                .flatten()
                .enumerate()
                .map(|(index, member)| RestoreTargetInfo {
                    invoker: self,
                    index,
                    target: member.target.as_ref(),
                    task: member.task.as_ref(),
                    runtime_settings: member.runtime_settings.as_ref(),
                    temp_dir: member.temp_dir.as_ref(),
                })
                .collect(),
        }
    }

    /// The target that names `workload`, if any.
    #[must_use]
    pub fn target_for(self, workload: &Workload) -> Option<RestoreTargetInfo<'a>> {
        self.targets().into_iter().find(|info| {
            info.target
                .and_then(|t| t.reference.as_ref())
                .is_some_and(|r| names_workload(r, self.namespace(), workload))
        })
    }

    #[must_use]
    pub fn owner_reference(self) -> Option<OwnerReference> {
        owner_reference(self.kind().as_str(), self.metadata())
    }

    /// The value of `stash.appscode.com/last-applied-restore-invoker` (§8.2).
    pub fn applied_json(self) -> Result<String, serde_json::Error> {
        match self {
            Self::Session(rs) => applied_json(self.kind().as_str(), &rs.metadata, &rs.spec),
            Self::Batch(rb) => applied_json(self.kind().as_str(), &rb.metadata, &rb.spec),
        }
    }
}

impl fmt::Display for RestoreInvoker<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind(), self.namespace(), self.name())
    }
}

impl<'a> RestoreTargetInfo<'a> {
    #[must_use]
    pub fn target_field(&self) -> String {
        match self.invoker {
            RestoreInvoker::Session(_) => "spec.target".to_owned(),
            RestoreInvoker::Batch(_) => format!("spec.members[{}].target", self.index),
        }
    }

    #[must_use]
    pub fn target_ref(&self) -> Option<&'a TargetRef> {
        self.target.and_then(|t| t.reference.as_ref())
    }

    /// `target.ref.namespace`, defaulted to the invoker's namespace.
    #[must_use]
    pub fn target_namespace(&self) -> &'a str {
        self.target_ref()
            .and_then(|r| r.namespace.as_deref())
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| self.invoker.namespace())
    }

    /// Whether this target is restored by an init-container (§8.1, §10).
    #[must_use]
    pub fn uses_init_container(&self) -> bool {
        self.invoker.driver() == Driver::Restic
            && self
                .task
                .and_then(|t| t.name.as_deref())
                .is_none_or(str::is_empty)
            && self.target_ref().is_some_and(|r| {
                WorkloadKind::from_kind(&r.kind).is_some_and(WorkloadKind::has_sidecar_model)
            })
    }

    #[must_use]
    pub fn enable_cache(&self) -> bool {
        !self
            .temp_dir
            .and_then(|t| t.disable_caching)
            .unwrap_or(false)
    }

    /// The pod-template hash (`…-restore-invoker-hash`): as [`BackupTargetInfo::spec_hash`], over what
    /// shapes the init-container.
    #[must_use]
    pub fn spec_hash(&self) -> String {
        executor_hash(&json!({
            "invokerKind": self.invoker.kind().as_str(),
            "invokerName": self.invoker.name(),
            "driver": self.invoker.driver(),
            "repository": self.invoker.repository(),
            "target": self.target,
            "task": self.task,
            "container": self.runtime_settings.and_then(|r| r.container.as_ref()),
            "tempDir": self.temp_dir,
        }))
    }
}

/// Stash's target match (§8.2): apiVersion, kind and name equal, namespace defaulted to the invoker's.
fn names_workload(reference: &TargetRef, invoker_namespace: &str, workload: &Workload) -> bool {
    let namespace = reference
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .unwrap_or(invoker_namespace);
    reference.api_version.as_deref() == Some(APPS_V1)
        && reference.kind == workload.kind().as_str()
        && reference.name == workload.name()
        && workload.namespace().is_none_or(|ns| ns == namespace)
}

fn owner_reference(kind: &str, meta: &ObjectMeta) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: STASH_V1BETA1.to_owned(),
        kind: kind.to_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// Only the identifying metadata goes into the annotation: resourceVersion, managedFields and timestamps
/// change on every write and would make the workload look out of date forever.
fn applied_json<S: Serialize>(
    kind: &str,
    meta: &ObjectMeta,
    spec: &S,
) -> Result<String, serde_json::Error> {
    let trimmed = ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        generation: meta.generation,
        labels: meta.labels.clone(),
        annotations: meta.annotations.clone(),
        owner_references: meta.owner_references.clone(),
        ..ObjectMeta::default()
    };
    serde_json::to_string(&json!({
        "apiVersion": STASH_V1BETA1,
        "kind": kind,
        "metadata": trimmed,
        "spec": spec,
    }))
}

/// FNV-64a over the canonical JSON of `view` (serde_json sorts object keys), in decimal as Stash writes it.
fn executor_hash(view: &Value) -> String {
    fnv1a_64(view.to_string().as_bytes()).to_string()
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_64_matches_the_reference_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
