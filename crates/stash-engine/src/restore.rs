//! `restore`: a snapshot into a directory, laid out as restic does (each snapshot path under the
//! target), with contents, modes, ownership (when permitted), mtimes, symlinks, empty
//! directories and holes for runs of zeros.
//!
//! Built on blob reads rather than rustic_core's restore command: that one plans the whole
//! restore in memory (about the size of the data for large trees) and aborts the process on an
//! I/O error. Here the walker streams trees one at a time and hands bounded chunks of file
//! content to a few workers, so memory stays at index + one blob per worker + a fixed cache,
//! and every failure is returned with the file it concerns.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustic_core::repofile::{BlobType, Metadata, Node, NodeType};
use rustic_core::{BlobId, DataId, IndexedFull, Repository, TreeId};
use serde::Serialize;

use crate::pattern::PatternSet;
use crate::{Engine, EngineError, SnapshotFilter};

/// Blobs handed to a worker at once: large files are restored by several workers in parallel.
const BLOBS_PER_JOB: usize = 16;

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
    /// Device nodes, FIFOs and sockets are not recreated.
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
    pub fn restore(&self, request: &RestoreRequest) -> Result<RestoreReport, EngineError> {
        let _span = tracing::info_span!("restore", repository = %self.location(), snapshot = %request.snapshot).entered();
        let started = std::time::Instant::now();
        let includes = PatternSet::new("--include", &request.includes)?;
        let excludes = PatternSet::new("--exclude", &request.excludes)?;
        let (repo, _lock) = self.open_locked(crate::repo::LockKind::Shared)?;
        let snapshot = crate::snapshots::select(&repo, &request.snapshot, &request.filter)?;
        let repo = repo.to_indexed().map_err(EngineError::repository("read the repository index"))?;

        fs::create_dir_all(&request.target).map_err(|source| EngineError::RestoreTarget {
            path: request.target.clone(),
            action: "cannot create the target directory",
            source,
        })?;

        let workers = if request.workers == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(2)
        } else {
            request.workers
        };
        let state = RestoreState::default();
        let (sender, receiver) = sync_channel::<FileJob>(workers * 2);
        let receiver = Mutex::new(receiver);
        let mut dirs = Vec::new();

        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| write_jobs(&repo, &receiver, &state, request.sparse));
            }
            let mut walker = Walker {
                repo: &repo,
                includes: &includes,
                excludes: &excludes,
                state: &state,
                jobs: sender,
                dirs: &mut dirs,
            };
            walker.walk_tree(snapshot.tree, Path::new("/"), &request.target, false);
            // Dropping the walker closes the channel; workers drain it and stop.
        });

        // Directory times last, children before parents: writing into a directory changes its mtime.
        for (path, meta) in dirs.iter().rev() {
            if let Err(err) = apply_metadata(path, meta, false) {
                state.fail(path, &err);
            }
        }

        let mut failures = state.failures.into_inner().expect("failure list lock poisoned");
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

#[derive(Default)]
struct RestoreState {
    files: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    bytes: AtomicU64,
    failures: Mutex<Vec<RestoreFailure>>,
    skipped: Mutex<Vec<PathBuf>>,
}

impl RestoreState {
    fn fail(&self, path: &Path, error: &dyn std::fmt::Display) {
        tracing::error!(path = %path.display(), error = %error, "restore failed for this entry");
        self.failures
            .lock()
            .expect("failure list lock poisoned")
            .push(RestoreFailure { path: path.to_path_buf(), error: error.to_string() });
    }
}

/// A file being restored; shared by the jobs writing its chunks. The last job to finish
/// sets its metadata.
struct FileInProgress {
    path: PathBuf,
    handle: File,
    meta: Metadata,
    pending: AtomicUsize,
    failed: AtomicBool,
}

struct FileJob {
    file: Arc<FileInProgress>,
    /// (blob, offset in the file)
    blobs: Vec<(DataId, u64)>,
}

struct Walker<'a, S: IndexedFull> {
    repo: &'a Repository<S>,
    includes: &'a PatternSet,
    excludes: &'a PatternSet,
    state: &'a RestoreState,
    jobs: std::sync::mpsc::SyncSender<FileJob>,
    dirs: &'a mut Vec<(PathBuf, Metadata)>,
}

impl<S: IndexedFull> Walker<'_, S> {
    /// `inside` is the path within the snapshot, `dest` where it goes on disk.
    fn walk_tree(&mut self, tree_id: TreeId, inside: &Path, dest: &Path, included_above: bool) {
        let tree = match self.repo.get_tree(&tree_id) {
            Ok(tree) => tree,
            Err(err) => {
                self.state.fail(dest, &err.display_log());
                return;
            }
        };
        for node in tree.nodes {
            let name = node.name();
            if !matches!(Path::new(&name).components().collect::<Vec<_>>().as_slice(), [std::path::Component::Normal(_)]) {
                // A hostile or corrupt tree must not write outside the target.
                self.state.fail(&dest.join(&name), &"refusing a node name that is not a single path component");
                continue;
            }
            let inside = inside.join(&name);
            let dest = dest.join(&name);
            if self.excludes.matches(&inside) {
                continue;
            }
            let included = included_above || self.includes.is_empty() || self.includes.matches(&inside);
            match &node.node_type {
                NodeType::Dir => self.restore_dir(&node, &inside, &dest, included),
                _ if !included => {}
                NodeType::File => self.restore_file(node, dest),
                NodeType::Symlink { .. } => self.restore_symlink(&node, &dest),
                _ => {
                    self.state.skipped.lock().expect("skip list lock poisoned").push(dest);
                }
            }
        }
    }

    fn restore_dir(&mut self, node: &Node, inside: &Path, dest: &Path, included: bool) {
        if included {
            if let Err(err) = ensure_dir(dest) {
                self.state.fail(dest, &err);
                return;
            }
            self.state.dirs.fetch_add(1, Ordering::Relaxed);
            self.dirs.push((dest.to_path_buf(), node.meta.clone()));
        }
        if let Some(subtree) = node.subtree {
            self.walk_tree(subtree, inside, dest, included);
        }
        if !included && dest.is_dir() {
            // Created on the way to an included entry: give it its snapshot metadata too.
            self.state.dirs.fetch_add(1, Ordering::Relaxed);
            self.dirs.push((dest.to_path_buf(), node.meta.clone()));
        }
    }

    fn restore_symlink(&self, node: &Node, dest: &Path) {
        let result = (|| -> io::Result<()> {
            ensure_parent(dest)?;
            clear_non_dir(dest)?;
            std::os::unix::fs::symlink(node.node_type.to_link(), dest)?;
            apply_metadata(dest, &node.meta, true)
        })();
        match result {
            Ok(()) => {
                self.state.symlinks.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self.state.fail(dest, &err),
        }
    }

    fn restore_file(&self, node: Node, dest: PathBuf) {
        let opened = (|| -> io::Result<File> {
            ensure_parent(&dest)?;
            clear_non_dir(&dest)?;
            let handle = OpenOptions::new().write(true).create(true).truncate(true).open(&dest)?;
            // Zero-filled without writing: blobs of zeros are then skipped and stay holes.
            handle.set_len(node.meta.size)?;
            Ok(handle)
        })();
        let handle = match opened {
            Ok(handle) => handle,
            Err(err) => return self.state.fail(&dest, &err),
        };
        let content = node.content.clone().unwrap_or_default();
        let mut chunks = Vec::new();
        let mut offset = 0u64;
        for ids in content.chunks(BLOBS_PER_JOB) {
            let mut blobs = Vec::with_capacity(ids.len());
            for id in ids {
                match self.repo.get_index_entry(id) {
                    Ok(entry) => {
                        blobs.push((*id, offset));
                        offset += u64::from(entry.data_length());
                    }
                    Err(err) => return self.state.fail(&dest, &format!("blob {id} is missing from the index: {}", err.display_log())),
                }
            }
            chunks.push(blobs);
        }
        if offset != node.meta.size {
            tracing::warn!(path = %dest.display(), expected = node.meta.size, actual = offset, "file size in the snapshot differs from its content; using the content");
            if let Err(err) = handle.set_len(offset) {
                return self.state.fail(&dest, &err);
            }
        }
        let file = Arc::new(FileInProgress {
            path: dest,
            handle,
            meta: node.meta,
            pending: AtomicUsize::new(chunks.len()),
            failed: AtomicBool::new(false),
        });
        if chunks.is_empty() {
            finish_file(&file, self.state);
            return;
        }
        for blobs in chunks {
            if self.jobs.send(FileJob { file: file.clone(), blobs }).is_err() {
                // Workers only stop early when they panic; the scope re-raises that.
                return;
            }
        }
    }
}

fn write_jobs<S: IndexedFull>(repo: &Repository<S>, jobs: &Mutex<Receiver<FileJob>>, state: &RestoreState, sparse: bool) {
    loop {
        let job = match jobs.lock().expect("job queue lock poisoned").recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let file = &job.file;
        if !file.failed.load(Ordering::Relaxed) {
            for (id, offset) in &job.blobs {
                let written = repo
                    .get_blob_cached(&BlobId::from(*id), BlobType::Data)
                    .map_err(|err| format!("cannot read blob {id}: {}", err.display_log()))
                    .and_then(|data| {
                        if sparse && data.iter().all(|b| *b == 0) {
                            return Ok(data.len());
                        }
                        file.handle.write_all_at(&data, *offset).map_err(|err| err.to_string())?;
                        Ok(data.len())
                    });
                match written {
                    Ok(len) => {
                        state.bytes.fetch_add(len as u64, Ordering::Relaxed);
                    }
                    Err(err) => {
                        if !file.failed.swap(true, Ordering::Relaxed) {
                            state.fail(&file.path, &err);
                        }
                        break;
                    }
                }
            }
        }
        if file.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            finish_file(file, state);
        }
    }
}

fn finish_file(file: &FileInProgress, state: &RestoreState) {
    if file.failed.load(Ordering::Relaxed) {
        return;
    }
    match apply_metadata(&file.path, &file.meta, false) {
        Ok(()) => {
            state.files.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => state.fail(&file.path, &err),
    }
}

fn ensure_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent),
        None => Ok(()),
    }
}

fn ensure_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => {
            // Never follow a symlink out of the target; replace it with the directory.
            fs::remove_file(path)?;
            fs::create_dir(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file is in the way of a directory from the snapshot; move it away and restore again",
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => fs::create_dir_all(path),
        Err(err) => Err(err),
    }
}

/// Makes room for a file or symlink; a directory in the way is an error, never deleted.
fn clear_non_dir(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a directory is in the way of a file from the snapshot; move it away and restore again",
        )),
        Ok(meta) if meta.file_type().is_symlink() => fs::remove_file(path),
        Ok(_) | Err(_) => Ok(()),
    }
}

/// Go's `os.FileMode` bits that restic stores, mapped to Unix permission bits.
fn unix_permissions(go_mode: u32) -> u32 {
    const GO_MODE_SETUID: u32 = 1 << 23;
    const GO_MODE_SETGID: u32 = 1 << 22;
    const GO_MODE_STICKY: u32 = 1 << 20;
    let mut mode = go_mode & 0o777;
    if go_mode & GO_MODE_SETUID != 0 {
        mode |= 0o4000;
    }
    if go_mode & GO_MODE_SETGID != 0 {
        mode |= 0o2000;
    }
    if go_mode & GO_MODE_STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

fn apply_metadata(path: &Path, meta: &Metadata, is_symlink: bool) -> io::Result<()> {
    if meta.uid.is_some() || meta.gid.is_some() {
        match std::os::unix::fs::lchown(path, meta.uid, meta.gid) {
            // Only root may give files away; as any other user keep our ownership, like restic.
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {}
            other => other?,
        }
    }
    if !is_symlink && let Some(mode) = meta.mode {
        fs::set_permissions(path, fs::Permissions::from_mode(unix_permissions(mode)))?;
    }
    if let Some(mtime) = meta.mtime {
        let to_filetime = |t: rustic_core::jiff::Timestamp| {
            filetime::FileTime::from_unix_time(t.as_second(), u32::try_from(t.subsec_nanosecond()).unwrap_or(0))
        };
        let mtime = to_filetime(mtime);
        let atime = meta.atime.map_or(mtime, to_filetime);
        if is_symlink {
            filetime::set_symlink_file_times(path, atime, mtime)?;
        } else {
            filetime::set_file_times(path, atime, mtime)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::unix_permissions;

    #[test]
    fn go_file_modes_map_to_unix_permission_bits() {
        assert_eq!(unix_permissions(0o644), 0o644);
        assert_eq!(unix_permissions((1 << 31) | 0o755), 0o755, "the directory bit is not a permission");
        assert_eq!(unix_permissions((1 << 23) | 0o755), 0o4755);
        assert_eq!(unix_permissions((1 << 20) | 0o777), 0o1777);
    }
}
