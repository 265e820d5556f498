//! `restore`: a snapshot into a directory, laid out as restic does (each snapshot path under the
//! target), with contents, modes, ownership (when permitted), mtimes, symlinks, empty
//! directories and holes for runs of zeros.
//!
//! Built on blob reads rather than `rustic_core`'s restore command: that one plans the whole
//! restore in memory (about the size of the data for large trees) and aborts the process on an
//! I/O error. Here the [`walker`] streams trees one at a time and gathers the blobs of a few
//! files into a batch; the [`plan`] sorts a batch by pack and offset and cuts it into reads of
//! neighbouring blobs (one request for many small files, as restic does), which a few
//! [`reader`] workers fetch, decrypt and write with pwrite. Memory stays at index + one read
//! (4 MiB locally, 16 MiB remotely) per worker, and every failure is returned with the file it
//! concerns. A cancelled restore stops walking and writing; files already finished keep their
//! content and metadata.

mod files;
mod plan;
mod reader;
mod walker;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cipher::RepoCipher;
use crate::error::RusticCause;
use crate::pattern::PatternSet;
use crate::progress::{Operation, Tracker};
use crate::repo::{LockKind, Op};
use crate::{Control, Engine, EngineError, SnapshotFilter};
use files::apply_metadata;
use plan::{Batch, ReadJob, ReadPlan};
use walker::Walker;

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// `latest` or a snapshot id (prefix).
    pub snapshot: String,
    /// Narrows which snapshots `latest` (or the prefix) may pick.
    pub filter: SnapshotFilter,
    pub target: PathBuf,
    /// Restore only entries matching one of these (restic `--include`).
    pub includes: Vec<String>,
    /// Skip entries matching one of these (restic `--exclude`).
    pub excludes: Vec<String>,
    /// Leave runs of zeros as holes instead of writing them.
    pub sparse: bool,
    /// Parallel file writers; 0 means one per CPU (at least two).
    pub workers: usize,
}

impl RestoreRequest {
    #[must_use]
    pub fn new(snapshot: impl Into<String>, target: impl Into<PathBuf>) -> Self {
        Self {
            snapshot: snapshot.into(),
            filter: SnapshotFilter::default(),
            target: target.into(),
            includes: Vec::new(),
            excludes: Vec::new(),
            sparse: true,
            workers: 0,
        }
    }
}

/// One entry that could not be restored.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoreFailure {
    pub path: PathBuf,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub snapshot_id: String,
    pub files_restored: u64,
    pub dirs_restored: u64,
    pub symlinks_restored: u64,
    pub bytes_restored: u64,
    /// Sockets are not recreated (restic does not recreate them either).
    pub skipped_special: Vec<PathBuf>,
    pub failures: Vec<RestoreFailure>,
    #[serde(with = "crate::backup::duration_secs")]
    pub duration: Duration,
}

impl RestoreReport {
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }
}

impl Engine {
    /// Restores `request.snapshot` into `request.target`. Per-entry failures are collected in
    /// the report; an `Err` means nothing could be restored (or the restore was cancelled).
    pub async fn restore(
        &self,
        request: RestoreRequest,
        control: &Control,
    ) -> Result<RestoreReport, EngineError> {
        self.run(Operation::Restore, control, move |engine, op| {
            engine.restore_blocking(&request, op)
        })
        .await
    }

    fn restore_blocking(
        &self,
        request: &RestoreRequest,
        op: &Op,
    ) -> Result<RestoreReport, EngineError> {
        let _span = tracing::info_span!("restore", repository = %self.location(), snapshot = %request.snapshot)
            .entered();
        let started = std::time::Instant::now();
        let includes = PatternSet::new("--include", &request.includes)?;
        let excludes = PatternSet::new("--exclude", &request.excludes)?;
        let (repo, _lock) = self.open_locked(op, LockKind::Shared)?;
        let snapshot = crate::snapshots::select(&repo, &request.snapshot, &request.filter)?;
        if let Some(summary) = snapshot
            .summary
            .as_ref()
            .filter(|_| includes.is_empty() && excludes.is_empty())
        {
            op.tracker.set_files_total(summary.total_files_processed);
            op.tracker.set_bytes_total(summary.total_bytes_processed);
        }
        op.tracker.set_phase("reading index...");
        let repo = repo
            .to_indexed()
            .map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
        op.checkpoint()?;

        fs::create_dir_all(&request.target).map_err(|source| EngineError::RestoreTarget {
            path: request.target.clone(),
            action: "cannot create the target directory",
            source,
        })?;

        let mut plan = if self.location().local_path().is_some() {
            ReadPlan::local()
        } else {
            ReadPlan::remote()
        };
        if request.workers != 0 {
            plan.workers = request.workers;
        }
        let workers = plan.workers;
        // Packs are read straight from the backend (data packs are never cached) and their
        // blobs decrypted here, so that one request serves many blobs.
        let backend = self
            .backends(op, crate::cancel::AfterCancel::RefuseAll)?
            .repository();
        let cipher = RepoCipher::new(&repo.key());
        let state = RestoreState::new(op.tracker.clone(), op.cancel.clone());
        let (sender, receiver) = sync_channel::<ReadJob>(workers * 2);
        let receiver = Mutex::new(receiver);
        let mut dirs = Vec::new();
        op.tracker.set_phase("restoring...");

        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    reader::read_jobs(&*backend, &cipher, &receiver, &state, request.sparse);
                });
            }
            let mut walker = Walker {
                repo: &repo,
                includes: &includes,
                excludes: &excludes,
                state: &state,
                jobs: sender,
                dirs: &mut dirs,
                batch: Batch::default(),
                plan,
                hardlinks: std::collections::HashMap::new(),
            };
            walker.walk_tree(snapshot.tree, Path::new("/"), &request.target, false);
            walker.flush();
            // Dropping the walker closes the channel; workers drain it and stop.
        });
        op.checkpoint()?;

        // Directory times last, children before parents: writing into a directory changes its mtime.
        for (path, meta) in dirs.iter().rev() {
            if let Err(err) = apply_metadata(path, meta, false) {
                state.fail(path, &err);
            }
        }

        let mut failures = state
            .failures
            .into_inner()
            .expect("failure list lock poisoned");
        failures.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(RestoreReport {
            snapshot_id: snapshot.id.to_hex().to_string(),
            files_restored: state.files.into_inner(),
            dirs_restored: state.dirs.into_inner(),
            symlinks_restored: state.symlinks.into_inner(),
            bytes_restored: state.bytes.into_inner(),
            skipped_special: state.skipped.into_inner().expect("skip list lock poisoned"),
            failures,
            duration: started.elapsed(),
        })
    }
}

/// What the walker and the workers share: counters, failures, progress and the token.
struct RestoreState {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    failures: Mutex<Vec<RestoreFailure>>,
    skipped: Mutex<Vec<PathBuf>>,
    tracker: Arc<Tracker>,
    cancel: CancellationToken,
}

impl RestoreState {
    fn new(tracker: Arc<Tracker>, cancel: CancellationToken) -> Self {
        Self {
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            symlinks: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: Mutex::default(),
            skipped: Mutex::default(),
            tracker,
            cancel,
        }
    }

    fn fail(&self, path: &Path, error: &dyn std::fmt::Display) {
        tracing::error!(path = %path.display(), error = %error, "restore failed for this entry");
        self.failures
            .lock()
            .expect("failure list lock poisoned")
            .push(RestoreFailure {
                path: path.to_path_buf(),
                error: error.to_string(),
            });
    }

    fn file_finished(&self) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.tracker.add_files(1);
    }

    fn bytes_written(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.tracker.add_bytes(n);
    }
}
