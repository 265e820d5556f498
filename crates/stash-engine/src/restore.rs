//! `restore`: a snapshot into a directory, laid out as restic does (each snapshot path under the
//! target), with contents, modes, ownership (when permitted), mtimes, symlinks, empty
//! directories and holes for runs of zeros.
//!
//! Built on blob reads rather than `rustic_core`'s restore command: that one plans the whole
//! restore in memory (about the size of the data for large trees) and aborts the process on an
//! I/O error. Here the walker streams trees one at a time and gathers the blobs of a few files
//! into a batch; a batch is sorted by pack and offset and cut into reads of neighbouring blobs
//! (one request for many small files, as restic does), which a few workers fetch, decrypt and
//! write with pwrite. Memory stays at index + one read (4 MiB locally, 16 MiB remotely) per worker, and
//! every failure is returned with the file it concerns.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::num::NonZeroU32;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::{Aead, Nonce};
use rustic_core::repofile::{Metadata, Node, NodeType, PackId};
use rustic_core::{DataId, FileType, IndexedFull, Repository, TreeId, WriteBackend};
use serde::Serialize;

use crate::pattern::PatternSet;
use crate::{Engine, EngineError, SnapshotFilter};

/// How blobs are grouped into reads.
#[derive(Debug, Clone, Copy)]
struct ReadPlan {
    /// A batch is cut into reads once it holds this many files ...
    batch_files: usize,
    /// ... or this many bytes of content.
    batch_bytes: u64,
    /// Longest single read from a pack: bounds memory per worker; large files still spread
    /// over several workers.
    max_read: u32,
    /// Neighbouring blobs of a pack are read together when at most this far apart (reading
    /// the gap is cheaper than another request).
    max_gap: u32,
    workers: usize,
}

impl ReadPlan {
    /// Local disk: small reads are cheap, one worker per CPU keeps the CPUs busy.
    fn local() -> Self {
        Self {
            batch_files: 64,
            batch_bytes: 16 << 20,
            max_read: 4 << 20,
            max_gap: 256 << 10,
            workers: std::thread::available_parallelism()
                .map_or(2, std::num::NonZero::get)
                .max(2),
        }
    }

    /// Object stores: every request costs a round trip (and money), so batches and reads are
    /// larger and a few more workers wait on the network at once. Memory: `workers × max_read`.
    fn remote() -> Self {
        Self {
            batch_files: 1024,
            batch_bytes: 64 << 20,
            max_read: 16 << 20,
            max_gap: 1 << 20,
            workers: 4,
        }
    }
}

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
        let repo = repo
            .to_indexed()
            .map_err(EngineError::repository("read the repository index"))?;

        fs::create_dir_all(&request.target).map_err(|source| EngineError::RestoreTarget {
            path: request.target.clone(),
            action: "cannot create the target directory",
            source,
        })?;

        let mut plan = if self.location().local_path.is_some() {
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
            .location()
            .backend
            .to_backends()
            .map_err(|source| EngineError::InvalidRepository {
                repository: self.location().to_string(),
                reason: source.display_log(),
            })?
            .repository();
        let cipher = BlobCipher::new(&repo.key());
        let state = RestoreState::default();
        let (sender, receiver) = sync_channel::<ReadJob>(workers * 2);
        let receiver = Mutex::new(receiver);
        let mut dirs = Vec::new();

        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| read_jobs(&*backend, &cipher, &receiver, &state, request.sparse));
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
            };
            walker.walk_tree(snapshot.tree, Path::new("/"), &request.target, false);
            walker.flush();
            // Dropping the walker closes the channel; workers drain it and stop.
        });

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
            .push(RestoreFailure {
                path: path.to_path_buf(),
                error: error.to_string(),
            });
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

/// One blob of a file: where it is in its pack and where it goes.
struct Piece {
    pack: PackId,
    offset: u32,
    length: u32,
    uncompressed_length: Option<NonZeroU32>,
    id: DataId,
    file: Arc<FileInProgress>,
    file_offset: u64,
}

/// Pieces of a few files, gathered until worth cutting into reads.
#[derive(Default)]
struct Batch {
    pieces: Vec<Piece>,
    files: usize,
    bytes: u64,
}

/// A blob to decrypt once and write to every place it appears (a blob of zeros may appear
/// hundreds of times in one file).
struct BlobWrite {
    id: DataId,
    offset: u32,
    length: u32,
    uncompressed_length: Option<NonZeroU32>,
    targets: Vec<(Arc<FileInProgress>, u64)>,
}

/// One request to the backend: `start..end` of a pack, covering `blobs`.
struct ReadJob {
    pack: PackId,
    start: u32,
    end: u32,
    blobs: Vec<BlobWrite>,
}

/// Sorts pieces by pack and offset and cuts them into reads of neighbouring blobs.
fn plan_reads(mut pieces: Vec<Piece>, plan: ReadPlan) -> Vec<ReadJob> {
    pieces.sort_by_key(|p| (p.pack, p.offset));
    let mut jobs: Vec<ReadJob> = Vec::new();
    for piece in pieces {
        let end = piece.offset + piece.length;
        if let Some(job) = jobs.last_mut()
            && job.pack == piece.pack
        {
            if let Some(last) = job.blobs.last_mut()
                && last.offset == piece.offset
            {
                last.targets.push((piece.file, piece.file_offset));
                continue;
            }
            if piece.offset >= job.end
                && piece.offset - job.end <= plan.max_gap
                && end - job.start <= plan.max_read
            {
                job.end = end;
                job.blobs.push(BlobWrite {
                    id: piece.id,
                    offset: piece.offset,
                    length: piece.length,
                    uncompressed_length: piece.uncompressed_length,
                    targets: vec![(piece.file, piece.file_offset)],
                });
                continue;
            }
        }
        jobs.push(ReadJob {
            pack: piece.pack,
            start: piece.offset,
            end,
            blobs: vec![BlobWrite {
                id: piece.id,
                offset: piece.offset,
                length: piece.length,
                uncompressed_length: piece.uncompressed_length,
                targets: vec![(piece.file, piece.file_offset)],
            }],
        });
    }
    jobs
}

/// restic's blob encryption (IV ‖ AES-256-CTR ‖ Poly1305-AES under the master key), with the
/// zstd compression of repository format 2 on top.
struct BlobCipher(Aes256CtrPoly1305Aes);

impl BlobCipher {
    fn new(master: &rustic_core::repofile::MasterKey) -> Self {
        let mut key = aes256ctr_poly1305aes::Key::default();
        key[0..32].copy_from_slice(&master.encrypt);
        key[32..48].copy_from_slice(&master.mac.k);
        key[48..64].copy_from_slice(&master.mac.r);
        Self(Aes256CtrPoly1305Aes::new(&key))
    }

    /// `zstd` is the worker's own decompression context: reusing it and decompressing straight
    /// into a buffer of the size the index gives saves a context and several reallocations per blob.
    fn open(
        &self,
        sealed: &[u8],
        uncompressed_length: Option<NonZeroU32>,
        zstd: Option<&mut zstd::bulk::Decompressor<'static>>,
    ) -> Result<Vec<u8>, String> {
        if sealed.len() < 32 {
            return Err(
                "the blob is shorter than its IV and MAC; the pack is truncated or corrupt".into(),
            );
        }
        let plain = self
            .0
            .decrypt(
                Nonce::<Aes256CtrPoly1305Aes>::from_slice(&sealed[..16]),
                &sealed[16..],
            )
            .map_err(|_| {
                "the blob fails its MAC check; the pack is corrupt or was written with another key"
                    .to_string()
            })?;
        let Some(length) = uncompressed_length else {
            return Ok(plain);
        };
        let data = match zstd {
            Some(zstd) => zstd.decompress(&plain, length.get() as usize),
            None => zstd::decode_all(&*plain),
        }
        .map_err(|err| format!("cannot decompress the blob: {err}"))?;
        if data.len() != length.get() as usize {
            return Err(format!(
                "the blob decompresses to {} bytes, the index says {length}",
                data.len()
            ));
        }
        Ok(data)
    }
}

struct Walker<'a, S: IndexedFull> {
    repo: &'a Repository<S>,
    includes: &'a PatternSet,
    excludes: &'a PatternSet,
    state: &'a RestoreState,
    jobs: std::sync::mpsc::SyncSender<ReadJob>,
    dirs: &'a mut Vec<(PathBuf, Metadata)>,
    batch: Batch,
    plan: ReadPlan,
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
            if !matches!(
                Path::new(&name).components().collect::<Vec<_>>().as_slice(),
                [std::path::Component::Normal(_)]
            ) {
                // A hostile or corrupt tree must not write outside the target.
                self.state.fail(
                    &dest.join(&name),
                    &"refusing a node name that is not a single path component",
                );
                continue;
            }
            let inside = inside.join(&name);
            let dest = dest.join(&name);
            if self.excludes.matches(&inside) {
                continue;
            }
            let included =
                included_above || self.includes.is_empty() || self.includes.matches(&inside);
            match &node.node_type {
                NodeType::Dir => self.restore_dir(&node, &inside, &dest, included),
                _ if !included => {}
                NodeType::File => self.restore_file(node, dest),
                NodeType::Symlink { .. } => self.restore_symlink(&node, &dest),
                _ => {
                    self.state
                        .skipped
                        .lock()
                        .expect("skip list lock poisoned")
                        .push(dest);
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

    fn restore_file(&mut self, node: Node, dest: PathBuf) {
        let opened = (|| -> io::Result<File> {
            ensure_parent(&dest)?;
            clear_non_dir(&dest)?;
            let handle = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&dest)?;
            // Zero-filled without writing: blobs of zeros are then skipped and stay holes.
            handle.set_len(node.meta.size)?;
            Ok(handle)
        })();
        let handle = match opened {
            Ok(handle) => handle,
            Err(err) => return self.state.fail(&dest, &err),
        };
        let content = node.content.clone().unwrap_or_default();
        let mut located = Vec::with_capacity(content.len());
        let mut offset = 0u64;
        for id in &content {
            match self.repo.get_index_entry(id) {
                Ok(entry) => {
                    located.push((*id, entry.pack, entry.location, offset));
                    offset += u64::from(entry.data_length());
                }
                Err(err) => {
                    return self.state.fail(
                        &dest,
                        &format!("blob {id} is missing from the index: {}", err.display_log()),
                    );
                }
            }
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
            pending: AtomicUsize::new(located.len()),
            failed: AtomicBool::new(false),
        });
        if located.is_empty() {
            finish_file(&file, self.state);
            return;
        }
        for (id, pack, location, file_offset) in located {
            self.batch.pieces.push(Piece {
                pack,
                offset: location.offset,
                length: location.length,
                uncompressed_length: location.uncompressed_length,
                id,
                file: file.clone(),
                file_offset,
            });
        }
        self.batch.files += 1;
        self.batch.bytes += offset;
        if self.batch.files >= self.plan.batch_files || self.batch.bytes >= self.plan.batch_bytes {
            self.flush();
        }
    }

    /// Hands the gathered pieces to the workers as reads.
    fn flush(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        for job in plan_reads(batch.pieces, self.plan) {
            if self.jobs.send(job).is_err() {
                // Workers only stop early when they panic; the scope re-raises that.
                return;
            }
        }
    }
}

/// A blob's id is the SHA-256 of its plaintext: checking it catches a pack that decrypts but
/// holds other data than the index says (restic's restorer checks the same).
fn verified(plain: Vec<u8>, id: &DataId) -> Result<Vec<u8>, String> {
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(&plain)) == id.to_hex().as_str() {
        Ok(plain)
    } else {
        Err("its content does not match its id (the pack is corrupt); run `stash check --read-data`".into())
    }
}

fn read_jobs(
    backend: &dyn WriteBackend,
    cipher: &BlobCipher,
    jobs: &Mutex<Receiver<ReadJob>>,
    state: &RestoreState,
    sparse: bool,
) {
    let mut decompressor = zstd::bulk::Decompressor::new().ok();
    loop {
        let Ok(job) = jobs.lock().expect("job queue lock poisoned").recv() else {
            return;
        };
        let wanted = job.blobs.iter().any(|b| {
            b.targets
                .iter()
                .any(|(file, _)| !file.failed.load(Ordering::Relaxed))
        });
        let raw = if wanted {
            backend
                .read_partial(
                    FileType::Pack,
                    &job.pack,
                    false,
                    job.start,
                    job.end - job.start,
                )
                .map_err(|err| err.display_log())
        } else {
            Err(String::new())
        };
        for blob in &job.blobs {
            let data = match &raw {
                Ok(raw) => {
                    let at = (blob.offset - job.start) as usize;
                    match raw.get(at..at + blob.length as usize) {
                        Some(sealed) => cipher
                            .open(sealed, blob.uncompressed_length, decompressor.as_mut())
                            .and_then(|plain| verified(plain, &blob.id)),
                        None => Err(format!(
                            "the pack {} is shorter than the index says",
                            job.pack
                        )),
                    }
                }
                Err(err) => Err(err.clone()),
            }
            .map_err(|err| format!("cannot read blob {}: {err}", blob.id));
            let zeros = sparse && data.as_ref().is_ok_and(|d| d.iter().all(|b| *b == 0));
            for (file, offset) in &blob.targets {
                if !file.failed.load(Ordering::Relaxed) {
                    let written = data.as_ref().map_err(Clone::clone).and_then(|data| {
                        if !zeros {
                            file.handle
                                .write_all_at(data, *offset)
                                .map_err(|err| err.to_string())?;
                        }
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
                        }
                    }
                }
                if file.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    finish_file(file, state);
                }
            }
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
            filetime::FileTime::from_unix_time(
                t.as_second(),
                u32::try_from(t.subsec_nanosecond()).unwrap_or(0),
            )
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
    use super::{FileInProgress, Piece, ReadPlan, plan_reads, unix_permissions};
    use rustic_core::DataId;
    use rustic_core::repofile::{Metadata, PackId};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    fn piece(file: &Arc<FileInProgress>, pack: u8, offset: u32, length: u32, blob: u8) -> Piece {
        let mut pack_id = [0u8; 32];
        pack_id[0] = pack;
        let mut blob_id = [0u8; 32];
        blob_id[0] = blob;
        Piece {
            pack: PackId::from(rustic_core::Id::new(pack_id)),
            offset,
            length,
            uncompressed_length: None,
            id: DataId::from(rustic_core::Id::new(blob_id)),
            file: file.clone(),
            file_offset: 0,
        }
    }

    #[test]
    fn reads_cover_neighbouring_blobs_of_a_pack_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = Arc::new(FileInProgress {
            handle: std::fs::File::create(&path).unwrap(),
            path,
            meta: Metadata::default(),
            pending: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
        });
        let plan = ReadPlan::local();
        let (max_gap, max_read) = (plan.max_gap, plan.max_read);
        let pieces = vec![
            piece(&file, 2, 0, 100, 5),
            piece(&file, 1, 200, 100, 2),
            piece(&file, 1, 0, 100, 1),
            piece(&file, 1, 0, 100, 1), // the same blob twice: read and decrypted once
            piece(&file, 1, 300 + max_gap + 1, 100, 3), // too far from the previous one
            piece(&file, 1, max_read, 100, 4),
        ];
        // Contiguous 1 MiB blobs: a read stops before it grows past max_read.
        let mib = 1 << 20;
        let contiguous: Vec<_> = (0..5)
            .map(|i| piece(&file, 3, i * mib, mib, 10 + u8::try_from(i).unwrap()))
            .collect();
        let jobs = plan_reads(pieces.into_iter().chain(contiguous).collect(), plan);
        let shape: Vec<_> = jobs
            .iter()
            .map(|j| {
                (
                    j.pack.to_hex()[..2].to_string(),
                    j.start,
                    j.end,
                    j.blobs.len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            vec![
                ("01".to_string(), 0, 300, 2),
                ("01".to_string(), 300 + max_gap + 1, 300 + max_gap + 101, 1),
                ("01".to_string(), max_read, max_read + 100, 1),
                ("02".to_string(), 0, 100, 1),
                ("03".to_string(), 0, max_read, 4),
                ("03".to_string(), max_read, max_read + mib, 1),
            ]
        );
        assert_eq!(
            jobs[0].blobs[0].targets.len(),
            2,
            "both places of the repeated blob are written"
        );
    }

    #[test]
    fn go_file_modes_map_to_unix_permission_bits() {
        assert_eq!(unix_permissions(0o644), 0o644);
        assert_eq!(
            unix_permissions((1 << 31) | 0o755),
            0o755,
            "the directory bit is not a permission"
        );
        assert_eq!(unix_permissions((1 << 23) | 0o755), 0o4755);
        assert_eq!(unix_permissions((1 << 20) | 0o777), 0o1777);
    }
}
