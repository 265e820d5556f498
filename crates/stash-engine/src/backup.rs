//! `backup`: paths into a new snapshot, with the parent chosen like restic does.

use std::path::PathBuf;
use std::time::Duration;

use rustic_core::{BackupOptions, Excludes, LocalSource, ParentOptions, PathList, SnapshotOptions};
use serde::Serialize;

use crate::source::WatchedSource;
use crate::{Engine, EngineError};

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
    /// Backs up `request.paths` into a new snapshot.
    pub fn backup(&self, request: &BackupRequest) -> Result<BackupReport, EngineError> {
        let _span = tracing::info_span!("backup", repository = %self.location()).entered();
        if request.paths.is_empty() {
            return Err(EngineError::NoBackupPaths);
        }
        let mut paths = Vec::with_capacity(request.paths.len());
        for path in &request.paths {
            let absolute =
                std::path::absolute(path).map_err(|source| EngineError::SourceMissing {
                    path: path.clone(),
                    source,
                })?;
            std::fs::symlink_metadata(&absolute).map_err(|source| EngineError::SourceMissing {
                path: absolute.clone(),
                source,
            })?;
            paths.push(absolute);
        }
        let path_list = paths
            .iter()
            .cloned()
            .collect::<PathList>()
            .sanitize()
            .map_err(|err| EngineError::InvalidRepository {
                repository: self.location().to_string(),
                reason: format!("cannot normalize the backup paths: {err}"),
            })?;

        let (repo, _lock) = self.open_locked(crate::repo::LockKind::Backup)?;
        let repo = repo
            .to_indexed_ids()
            .map_err(EngineError::repository("read the repository index"))?;

        let mut snapshot_options = SnapshotOptions::default();
        if let Some(host) = &request.host {
            snapshot_options = snapshot_options.host(host.clone());
        }
        if let Some(time) = request.time {
            snapshot_options = snapshot_options.time(time.to_zoned(jiff::tz::TimeZone::UTC));
        }
        if !request.tags.is_empty() {
            snapshot_options = snapshot_options
                .add_tags(&request.tags.join(","))
                .map_err(EngineError::repository("parse the snapshot tags"))?;
        }
        let snapshot = snapshot_options
            .to_snapshot()
            .map_err(EngineError::repository("prepare the snapshot"))?;

        // rustic_core 0.13 compares inodes only when `ignore_inode` is *true* (the flag reads
        // inverted in its parent matcher), so restic's default, "a new inode is a change", needs
        // `true` and trusting path + size + mtime needs `false`. The round-trip tests pin both.
        let parent = ParentOptions::default()
            .force(request.force)
            .ignore_ctime(request.ignore_inode_and_ctime)
            .ignore_inode(!request.ignore_inode_and_ctime);
        let excludes = Excludes::default().globs(
            request
                .excludes
                .iter()
                .map(|p| format!("!{p}"))
                .collect::<Vec<_>>(),
        );
        let options = BackupOptions::default()
            .parent_opts(parent)
            .excludes(excludes.clone());

        let source_paths = path_list.paths();
        let local = LocalSource::new(
            options.ignore_save_opts,
            &excludes,
            &options.ignore_filter_opts,
            &source_paths,
        )
        .map_err(EngineError::repository(
            "prepare the backup source (check the --exclude patterns)",
        ))?;
        let source = WatchedSource::new(local);

        let started = std::time::Instant::now();
        let snapshot = repo
            .archive(&options, &source, snapshot, &source_paths)
            .map_err(EngineError::repository("back up the source"))?;
        let unreadable = source.failures();
        for entry in &unreadable {
            tracing::warn!(path = %entry.path.display(), error = %entry.error, "could not read; left out of the snapshot");
        }

        let summary = snapshot.summary.clone().unwrap_or_default();
        let id = snapshot.id.to_hex().to_string();
        Ok(BackupReport {
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
        })
    }
}

pub(crate) mod duration_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}
