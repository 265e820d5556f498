//! Listing and selecting snapshots (`snapshots`, and `latest` / id prefixes for restore).

use rustic_core::repofile::SnapshotFile;
use serde::Serialize;

use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::LockKind;
use crate::{Control, Engine, EngineError};

/// Which snapshots an operation considers; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub hosts: Vec<String>,
    /// A snapshot matches when it contains every one of these paths (restic `--path`).
    pub paths: Vec<String>,
    /// A snapshot matches when it carries every one of these tags.
    pub tags: Vec<String>,
}

impl SnapshotFilter {
    pub(crate) fn matches(&self, snapshot: &SnapshotFile) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&snapshot.hostname))
            && self.paths.iter().all(|p| {
                snapshot
                    .paths
                    .iter()
                    .any(|sp| sp == p.trim_end_matches('/') || sp == p)
            })
            && self
                .tags
                .iter()
                .all(|t| snapshot.tags.iter().any(|st| st == t))
    }

    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("host {}", self.hosts.join(",")));
        }
        if !self.paths.is_empty() {
            parts.push(format!("path {}", self.paths.join(",")));
        }
        if !self.tags.is_empty() {
            parts.push(format!("tag {}", self.tags.join(",")));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" (filtered by {})", parts.join(", "))
        }
    }
}

/// One snapshot, shaped like restic's `snapshots --json` entries.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub tree: String,
    pub paths: Vec<String>,
    pub hostname: String,
    pub username: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub id: String,
    pub short_id: String,
}

impl From<&SnapshotFile> for SnapshotInfo {
    fn from(snapshot: &SnapshotFile) -> Self {
        let id = snapshot.id.to_hex().to_string();
        Self {
            time: snapshot.time.timestamp().to_string(),
            parent: snapshot.parent.map(|p| p.to_hex().to_string()),
            tree: snapshot.tree.to_hex().to_string(),
            paths: snapshot.paths.iter().cloned().collect(),
            hostname: snapshot.hostname.clone(),
            username: snapshot.username.clone(),
            uid: snapshot.uid,
            gid: snapshot.gid,
            tags: snapshot.tags.iter().cloned().collect(),
            short_id: id[..8].to_string(),
            id,
        }
    }
}

impl Engine {
    /// Snapshots matching `filter`, oldest first.
    pub async fn snapshots(
        &self,
        filter: SnapshotFilter,
        control: &Control,
    ) -> Result<Vec<SnapshotInfo>, EngineError> {
        self.run(Operation::Snapshots, control, move |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Shared)?;
            let mut snapshots = repo
                .get_matching_snapshots(|s| filter.matches(s))
                .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?;
            snapshots.sort_unstable();
            Ok(snapshots.iter().map(SnapshotInfo::from).collect())
        })
        .await
    }
}

/// Resolves `latest` or an id (prefix) among the snapshots matching `filter`.
pub(crate) fn select(
    repo: &rustic_core::Repository<impl rustic_core::Open>,
    spec: &str,
    filter: &SnapshotFilter,
) -> Result<SnapshotFile, EngineError> {
    let not_found = || EngineError::SnapshotNotFound {
        spec: spec.to_string(),
        filter: filter.describe(),
    };
    let mut snapshots = repo
        .get_matching_snapshots(|s| filter.matches(s))
        .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?;
    if spec == "latest" {
        snapshots.sort_unstable();
        return snapshots.pop().ok_or_else(not_found);
    }
    let mut found = snapshots
        .into_iter()
        .filter(|s| s.id.to_hex().starts_with(spec));
    let first = found.next().ok_or_else(not_found)?;
    if found.next().is_some() {
        return Err(EngineError::AmbiguousSnapshot {
            spec: spec.to_string(),
        });
    }
    Ok(first)
}
