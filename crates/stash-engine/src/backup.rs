//! `backup`: paths into a new snapshot, with the parent chosen like restic does.

use std::path::PathBuf;
use std::time::Duration;

use rustic_core::{
    BackupOptions, Excludes, LocalSource, ParentOptions, PathList, SnapshotGroup,
    SnapshotGroupCriterion, SnapshotOptions,
};
use serde::Serialize;

use crate::archiver;
use crate::cancel::AfterCancel;
use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::{LockKind, Op};
use crate::source::WatchedSource;
use crate::{Control, Engine, EngineError};

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupRequest {
    /// Absolute paths; one snapshot holds them all.
    pub paths: Vec<PathBuf>,
    /// restic `--exclude` patterns.
    pub excludes: Vec<String>,
    /// Snapshot host name; defaults to this machine's.
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// Decide "unchanged" by path, size and mtime only, ignoring ctime and inode. Pods that move
    /// to another node and volumes restored from a clone change every inode and ctime; without
    /// this every byte would be read again.
    pub ignore_inode_and_ctime: bool,
    /// Read every file even when the parent says it is unchanged.
    pub force: bool,
    /// Snapshot time instead of now (restic `--time`), e.g. when importing old data.
    pub time: Option<jiff::Timestamp>,
}

/// A file or directory the backup could not read; it is missing from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreadableEntry {
    pub path: PathBuf,
    pub error: String,
}

/// Outcome of a backup, with the figures Stash reports per host.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub snapshot_id: String,
    pub short_id: String,
    pub parent: Option<String>,
    pub hostname: String,
    pub paths: Vec<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub total_files_processed: u64,
    pub total_bytes_processed: u64,
    /// Bytes of new blobs before compression.
    pub data_added: u64,
    /// Bytes of new blobs as stored.
    pub data_added_packed: u64,
    #[serde(with = "duration_secs")]
    pub duration: Duration,
    /// Entries left out of the snapshot because they could not be read.
    pub unreadable: Vec<UnreadableEntry>,
}

impl BackupReport {
    /// True when the snapshot is complete.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty()
    }
}

impl Engine {
    /// Backs up `request.paths` into a new snapshot. A cancelled backup stops reading, writes
    /// out the packs and index it has (the next backup reuses them) and saves no snapshot.
    pub async fn backup(
        &self,
        request: BackupRequest,
        control: &Control,
    ) -> Result<BackupReport, EngineError> {
        self.run(Operation::Backup, control, move |engine, op| {
            engine.backup_blocking(&request, op)
        })
        .await
    }

    fn backup_blocking(
        &self,
        request: &BackupRequest,
        op: &Op,
    ) -> Result<BackupReport, EngineError> {
        let _span = tracing::info_span!("backup", repository = %self.location()).entered();
        let path_list = absolute_paths(request)?;

        let (repo, _lock) = self.open_locked(op, LockKind::Backup)?;
        let snapshot = snapshot_template(request)?;
        let excludes = Excludes::default().globs(
            request
                .excludes
                .iter()
                .map(|p| format!("!{p}"))
                .collect::<Vec<_>>(),
        );
        let options = BackupOptions::default().excludes(excludes.clone());
        let source_paths = path_list.paths();
        let watched_source = || -> Result<WatchedSource, EngineError> {
            let local = LocalSource::new(
                options.ignore_save_opts,
                &excludes,
                &options.ignore_filter_opts,
                &source_paths,
            )
            .map_err(|source| EngineError::PrepareSource(RusticCause::new(source)))?;
            Ok(WatchedSource::new(
                local,
                op.tracker.clone(),
                op.cancel.clone(),
            ))
        };

        let unicode_paths = source_paths.iter().all(|p| p.to_str().is_some());
        if unicode_paths && (request.force || !has_parent(&repo, &snapshot, &source_paths)) {
            let backends = self.backends(op, AfterCancel::RefuseSnapshots)?;
            if let Some(shared) = archiver::Shared::for_repository(
                &repo,
                backends.repository(),
                backends.repo_hot().is_some(),
                op.tracker.clone(),
            ) {
                let shared =
                    shared.map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
                op.checkpoint()?;
                let source = watched_source()?;
                let started = std::time::Instant::now();
                let saved = archiver::archive(&shared, &source, snapshot, &source_paths, &|| {
                    op.cancelled()
                })
                .map_err(|err| EngineError::Backup {
                    paths: path_list.to_string(),
                    source: RusticCause::new(err),
                })?;
                let Some(snapshot) = saved else {
                    return Err(EngineError::Cancelled);
                };
                return Ok(report_of(&snapshot, started, source.failures()));
            }
        }

        let repo = repo
            .to_indexed_ids()
            .map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
        op.checkpoint()?;

        // rustic_core 0.13 compares inodes only when `ignore_inode` is *true* (the flag reads
        // inverted in its parent matcher), so restic's default, "a new inode is a change", needs
        // `true` and trusting path + size + mtime needs `false`. The round-trip tests pin both.
        let parent = ParentOptions::default()
            .force(request.force)
            .ignore_ctime(request.ignore_inode_and_ctime)
            .ignore_inode(!request.ignore_inode_and_ctime);
        let options = options.clone().parent_opts(parent);
        let source = watched_source()?;

        let started = std::time::Instant::now();
        let snapshot = repo
            .archive(&options, &source, snapshot, &source_paths)
            .map_err(|source| EngineError::Backup {
                paths: path_list.to_string(),
                source: RusticCause::new(source),
            })?;
        Ok(report_of(&snapshot, started, source.failures()))
    }
}

/// Whether `rustic_core` would find a parent for this backup: a snapshot of the same host,
/// label and paths (its default grouping). When the snapshots cannot be read, yes: the backup
/// then goes through `rustic_core`, which decides for itself.
fn has_parent(
    repo: &rustic_core::Repository<rustic_core::OpenStatus>,
    template: &rustic_core::repofile::SnapshotFile,
    paths: &[PathBuf],
) -> bool {
    let mut snapshot = template.clone();
    let mut listed = rustic_core::StringList::default();
    for path in paths {
        listed.add(path.to_string_lossy().into_owned());
    }
    snapshot.paths = listed;
    let group = SnapshotGroup::from_snapshot(&snapshot, SnapshotGroupCriterion::default());
    repo.get_matching_snapshots(|candidate| group.matches(candidate))
        .map_or(true, |found| !found.is_empty())
}

fn report_of(
    snapshot: &rustic_core::repofile::SnapshotFile,
    started: std::time::Instant,
    unreadable: Vec<UnreadableEntry>,
) -> BackupReport {
    for entry in &unreadable {
        tracing::warn!(path = %entry.path.display(), error = %entry.error, "could not read; left out of the snapshot");
    }
    let summary = snapshot.summary.clone().unwrap_or_default();
    let id = snapshot.id.to_hex().to_string();
    tracing::info!(snapshot_id = %id, files_new = summary.files_new, bytes_added = summary.data_added, "backup finished");
    BackupReport {
        short_id: id[..8].to_string(),
        snapshot_id: id,
        parent: snapshot.parent.map(|p| p.to_hex().to_string()),
        hostname: snapshot.hostname.clone(),
        paths: snapshot.paths.iter().cloned().collect(),
        files_new: summary.files_new,
        files_changed: summary.files_changed,
        files_unmodified: summary.files_unmodified,
        dirs_new: summary.dirs_new,
        dirs_changed: summary.dirs_changed,
        dirs_unmodified: summary.dirs_unmodified,
        total_files_processed: summary.total_files_processed,
        total_bytes_processed: summary.total_bytes_processed,
        data_added: summary.data_added,
        data_added_packed: summary.data_added_packed,
        duration: started.elapsed(),
        unreadable,
    }
}

/// The request's paths, made absolute and checked to exist (a missing path is an error, as in
/// restic, not an empty snapshot).
fn absolute_paths(request: &BackupRequest) -> Result<PathList, EngineError> {
    if request.paths.is_empty() {
        return Err(EngineError::NoBackupPaths);
    }
    let mut paths = Vec::with_capacity(request.paths.len());
    for path in &request.paths {
        let absolute = std::path::absolute(path).map_err(|source| EngineError::SourceMissing {
            path: path.clone(),
            source,
        })?;
        std::fs::symlink_metadata(&absolute).map_err(|source| EngineError::SourceMissing {
            path: absolute.clone(),
            source,
        })?;
        paths.push(absolute);
    }
    paths
        .iter()
        .cloned()
        .collect::<PathList>()
        .sanitize()
        .map_err(|err| EngineError::InvalidBackupPaths {
            reason: err.to_string(),
        })
}

/// The new snapshot's host, time and tags, before the archiver fills in its tree.
fn snapshot_template(
    request: &BackupRequest,
) -> Result<rustic_core::repofile::SnapshotFile, EngineError> {
    let mut snapshot_options = SnapshotOptions::default();
    if let Some(host) = &request.host {
        snapshot_options = snapshot_options.host(host.clone());
    }
    if let Some(time) = request.time {
        snapshot_options = snapshot_options.time(time.to_zoned(jiff::tz::TimeZone::UTC));
    }
    if !request.tags.is_empty() {
        let tags = request.tags.join(",");
        snapshot_options =
            snapshot_options
                .add_tags(&tags)
                .map_err(|source| EngineError::InvalidTags {
                    tags,
                    source: RusticCause::new(source),
                })?;
    }
    snapshot_options
        .to_snapshot()
        .map_err(|source| EngineError::PrepareSnapshot(RusticCause::new(source)))
}

pub(crate) mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
