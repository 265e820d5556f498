//! stash's own archiver for backups without a parent snapshot (first backups, `--force`).
//!
//! `rustic_core`'s archiver pays per file what restic pays per repository: it builds the Rabin
//! chunker's tables for every file, a zstd context for every blob, and hands every file and
//! blob between threads one at a time (`docs/benchmarks.md`, issue 12: 3× restic's CPU on many
//! small files). Its packer and chunker are private, so this archiver is built from the crates
//! it uses (`rustic_cdc`, `sha2`, `zstd`, `aes256ctr_poly1305aes`) and its public types (`Node`,
//! `Tree`, `SnapshotFile`, `IndexFile`): the walk, the nodes and their metadata are
//! `rustic_core`'s `LocalSource`'s, the trees serialise through `Tree::serialize`, so the
//! snapshot's tree ids are the ones `rustic_core` gives for the same input.
//!
//! Backups with a parent stay with `rustic_core` (its parent matching skips unchanged files).
//! `STASH_ARCHIVER=rustic` sends every backup there (an escape hatch and the reference for the
//! tests that compare the two).

mod chunker;
mod files;
mod pack;
mod sealers;
mod store;
mod trees;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};

use rustic_core::repofile::{BlobType, Chunker as ChunkerKind, Node, NodeType, SnapshotFile};
use rustic_core::{
    Id, OpenStatus, ReadSource, ReadSourceEntry, Repository, RusticError, RusticResult, StringList,
    WriteBackend,
};

use self::chunker::Chunker;
use self::files::{Batch, BatchReply, FileJob, FileOutcome};
use self::pack::{PackBuilder, Sealed, Sealer};
use self::sealers::Sealers;
use self::store::{KnownBlobs, Store};
use self::trees::{Shape, Step, TreeBuilder};
use crate::cipher::RepoCipher;
use crate::progress::Tracker;
use crate::source::WatchedSource;

/// Environment switch: `rustic` routes every backup through `rustic_core`'s archiver.
pub(crate) const SWITCH: &str = "STASH_ARCHIVER";

/// Files per batch handed to a worker.
const BATCH_FILES: usize = 64;
/// Bytes per batch (by the walk's sizes).
const BATCH_BYTES: u64 = 2 << 20;
/// Batches handed out ahead of the oldest one whose files are not all in the trees yet.
const BATCHES_AHEAD_PER_WORKER: u64 = 8;

/// What every thread of the archiver shares.
pub(crate) struct Shared {
    cipher: RepoCipher,
    level: i32,
    verify: bool,
    chunker: Chunker,
    known: KnownBlobs,
    store: Store,
    data_pack_size: usize,
    /// The data pack all file workers fill.
    data_pack: Mutex<PackBuilder>,
    /// Buffers of data packs already written, for the next packs.
    spare_pack_buffers: Mutex<Vec<Vec<u8>>>,
    /// The file workers' sealers.
    sealers: Sealers,
    tree_pack_size: usize,
    tracker: Arc<Tracker>,
}

impl Shared {
    /// The archiver for `repo`, or `None` when the repository has settings it does not write
    /// (format 1 or no compression, a fixed-size chunker, a hot/cold split); `rustic_core`'s
    /// archiver handles those.
    pub(crate) fn for_repository(
        repo: &Repository<OpenStatus>,
        backend: Arc<dyn WriteBackend>,
        has_hot_part: bool,
        tracker: Arc<Tracker>,
    ) -> Option<RusticResult<Self>> {
        if std::env::var(SWITCH).is_ok_and(|v| v == "rustic") || has_hot_part {
            return None;
        }
        let config = repo.config();
        let level = config.zstd().ok().flatten()?;
        if config.chunker() != ChunkerKind::Rabin {
            return None;
        }
        let chunker = Chunker::new(
            config.poly().ok()?,
            config.chunk_size(),
            config.chunk_min_size(),
            config.chunk_max_size(),
        )?;
        let cipher = RepoCipher::new(&repo.key());
        let verify = config.extra_verify();
        let (data_size, data_grow, data_limit) =
            config.packsize(rustic_core::repofile::BlobType::Data);
        let (tree_size, tree_grow, tree_limit) =
            config.packsize(rustic_core::repofile::BlobType::Tree);
        Some(KnownBlobs::load(repo).map(|(known, sizes)| {
            let data_pack_size = pack_size(data_size, data_grow, data_limit, sizes.data);
            let data_pack = Mutex::new(new_data_pack(data_pack_size, &chunker));
            Self {
                store: Store::new(backend, cipher.clone(), level),
                cipher,
                level,
                verify,
                chunker,
                known,
                data_pack_size,
                data_pack,
                spare_pack_buffers: Mutex::new(Vec::new()),
                sealers: Sealers::new(file_workers()),
                tree_pack_size: pack_size(tree_size, tree_grow, tree_limit, sizes.trees),
                tracker,
            }
        }))
    }

    /// Adds a sealed data blob to the shared data pack; the thread that fills the pack writes
    /// it out, without holding the lock.
    fn add_data_blob(
        &self,
        id: [u8; 32],
        sealed: &Sealed<'_>,
        plain_len: usize,
    ) -> RusticResult<()> {
        let full = {
            let mut pack = self.data_pack.lock().expect("data pack poisoned");
            pack.add(id, sealed, plain_len)
                .then(|| std::mem::replace(&mut *pack, self.next_data_pack()))
        };
        match full {
            Some(mut pack) => self.save_data_pack(&mut pack),
            None => Ok(()),
        }
    }

    /// Writes out the last, partly filled data pack.
    fn flush_data_pack(&self) -> RusticResult<()> {
        let mut pack = std::mem::replace(
            &mut *self.data_pack.lock().expect("data pack poisoned"),
            new_data_pack(self.data_pack_size, &self.chunker),
        );
        self.save_data_pack(&mut pack)
    }

    fn next_data_pack(&self) -> PackBuilder {
        let spare = self
            .spare_pack_buffers
            .lock()
            .expect("pack buffers poisoned")
            .pop();
        match spare {
            Some(buffer) => new_data_pack(self.data_pack_size, &self.chunker).reusing(buffer),
            None => new_data_pack(self.data_pack_size, &self.chunker),
        }
    }

    fn save_data_pack(&self, pack: &mut PackBuilder) -> RusticResult<()> {
        if pack.is_empty() {
            return Ok(());
        }
        let (file, finished) = pack.finish(&self.cipher);
        if let Some(buffer) = self.store.save_pack(file, finished)? {
            let mut spare = self
                .spare_pack_buffers
                .lock()
                .expect("pack buffers poisoned");
            // Two: one being filled while another is written.
            if spare.len() < 2 {
                spare.push(buffer);
            }
        }
        Ok(())
    }

    fn sealer(&self) -> RusticResult<Sealer> {
        Sealer::new(self.cipher.clone(), self.level, self.verify).map_err(|err| {
            RusticError::with_source(
                rustic_core::ErrorKind::Internal,
                "Failed to set up zstd compression.",
                err,
            )
        })
    }
}

/// An empty data pack with room for the largest blob the chunker cuts, sealed.
fn new_data_pack(target_size: usize, chunker: &Chunker) -> PackBuilder {
    let largest_blob = zstd::zstd_safe::compress_bound(chunker.max_size())
        + crate::cipher::IV_LEN
        + crate::cipher::MAC_LEN;
    PackBuilder::with_headroom(
        BlobType::Data,
        target_size,
        largest_blob.max(target_size / 8),
    )
}

/// File worker threads: one per core, at most eight.
fn file_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// restic's and `rustic_core`'s pack size: a base that grows with the square root of what the
/// repository holds of the type, within the configured limit and 4076 MiB.
fn pack_size(base: u32, grow: u32, limit: u32, current: u64) -> usize {
    let grown = u64::from(base) + current.isqrt() * u64::from(grow);
    let capped = grown.min(u64::from(limit)).min(4076 << 20);
    usize::try_from(capped).unwrap_or(usize::MAX)
}

pub(crate) fn internal(reason: String) -> Box<RusticError> {
    RusticError::new(rustic_core::ErrorKind::Internal, reason)
}

pub(crate) fn id_bytes(id: Id) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(id.to_hex().to_string(), &mut bytes)
        .expect("an id's hex form decodes to 32 bytes");
    bytes
}

/// Backs up `source` (walked from `paths`) into a new snapshot made from `snapshot`. A
/// cancelled backup writes out its packs and their index and saves no snapshot
/// (`Ok(None)`).
pub(crate) fn archive(
    shared: &Shared,
    source: &WatchedSource,
    mut snapshot: SnapshotFile,
    paths: &[PathBuf],
    cancelled: &dyn Fn() -> bool,
) -> RusticResult<Option<SnapshotFile>> {
    let mut summary = snapshot.summary.take().unwrap_or_default();
    summary.backup_start = jiff::Zoned::now();
    let mut listed = StringList::default();
    for path in paths {
        listed.add(path.to_string_lossy().into_owned());
    }
    snapshot.paths = listed;

    let workers = file_workers();
    let (batches, queue) = sync_channel::<Batch>(workers * 2);
    let queue = Mutex::new(queue);
    let (tree, summary, data) = std::thread::scope(|scope| -> RusticResult<_> {
        if shared.tracker.observed {
            // The size scan, beside the backup, as `rustic_core` does when progress is shown.
            scope.spawn(|| {
                if let Ok(Some(bytes)) = source.size() {
                    shared.tracker.set_bytes_total(bytes);
                }
            });
        }
        let handles: Vec<_> = (0..workers)
            .map(|n| {
                let queue = &queue;
                std::thread::Builder::new()
                    .name(format!("stash-file-{n}"))
                    .spawn_scoped(scope, move || files::work(shared, queue))
                    .expect("a file worker thread could not be started")
            })
            .collect();
        let mut feeder = Feeder {
            builder: TreeBuilder::new(shared, summary)?,
            batches: Some(batches),
            queue: VecDeque::new(),
            in_flight: VecDeque::new(),
            first_seq: 0,
            next_seq: 0,
            current: Vec::new(),
            current_bytes: 0,
            min_chunk: shared.chunker.min_size() as u64,
            ahead: BATCHES_AHEAD_PER_WORKER * workers as u64,
        };
        let walked = feeder.walk(source);
        // Every worker finishes its batches, also after an error.
        drop(feeder.batches.take());
        let mut worker_error = None;
        for handle in handles {
            if let Err(err) = handle.join().expect("a file worker panicked") {
                worker_error = worker_error.or(Some(err));
            }
        }
        let data = shared.sealers.stats();
        // Written also after an error: a next backup reuses the packs already uploaded.
        let flushed = shared.flush_data_pack();
        walked?;
        if let Some(err) = worker_error {
            return Err(err);
        }
        flushed?;
        let (tree, summary) = feeder.builder.finish()?;
        Ok((tree, summary, data))
    })?;
    shared.store.flush_index()?;
    if cancelled() {
        return Ok(None);
    }

    let mut summary = summary;
    summary.data_blobs += data.blobs;
    summary.data_added += data.plain;
    summary.data_added_packed += data.packed;
    summary.data_added_files += data.plain;
    summary.data_added_files_packed += data.packed;
    let end = jiff::Zoned::now();
    summary.backup_duration = seconds_between(&summary.backup_start, &end);
    summary.total_duration = seconds_between(&snapshot.time, &end);
    summary.backup_end = end;
    snapshot.tree = tree;
    snapshot.summary = Some(summary);
    shared.store.save_snapshot(&mut snapshot)?;
    Ok(Some(snapshot))
}

fn seconds_between(start: &jiff::Zoned, end: &jiff::Zoned) -> f64 {
    end.since(start)
        .and_then(|span| span.total(jiff::Unit::Second))
        .unwrap_or_default()
}

/// An entry of a tree waiting for its place: trees are built in walk order, files' blob ids
/// come back from the workers later.
enum Pending {
    Step(Step),
    Entry(Node),
    File { node: Node, seq: u64, index: usize },
}

struct InFlight {
    reply: Receiver<BatchReply>,
    outcomes: Option<Vec<FileOutcome>>,
}

/// Turns the walk into batches for the workers and the workers' answers into trees, in order.
struct Feeder<'a> {
    builder: TreeBuilder<'a>,
    batches: Option<SyncSender<Batch>>,
    queue: VecDeque<Pending>,
    in_flight: VecDeque<InFlight>,
    /// Sequence number of `in_flight[0]`.
    first_seq: u64,
    /// Sequence number `current` gets when handed out.
    next_seq: u64,
    current: Vec<FileJob>,
    current_bytes: u64,
    min_chunk: u64,
    ahead: u64,
}

impl Feeder<'_> {
    fn walk(&mut self, source: &WatchedSource) -> RusticResult<()> {
        let mut shape = Shape::default();
        let mut steps = Vec::new();
        for entry in source.entries() {
            // An unreadable entry was recorded by the source and is left out.
            let Ok(ReadSourceEntry { path, node, open }) = entry else {
                continue;
            };
            let Some(tree_path) = tree_path_of(&path, &node) else {
                continue;
            };
            let entry = shape.place(tree_path, node, &mut steps);
            self.queue.extend(steps.drain(..).map(Pending::Step));
            if let Some(node) = entry {
                self.add(node, open)?;
            }
            self.settle(self.next_seq.saturating_sub(self.ahead))?;
        }
        shape.finish(&mut steps);
        self.queue.extend(steps.drain(..).map(Pending::Step));
        self.settle(u64::MAX)
    }

    fn add(&mut self, node: Node, open: Option<crate::source::WatchedOpen>) -> RusticResult<()> {
        if node.node_type != NodeType::File {
            self.queue.push_back(Pending::Entry(node));
            return Ok(());
        }
        // `rustic_core` leaves a file it cannot open out of the snapshot.
        let Some(open) = open else {
            return Ok(());
        };
        let size = node.meta.size;
        if size >= self.min_chunk && !self.current.is_empty() {
            self.hand_out()?;
        }
        self.queue.push_back(Pending::File {
            node,
            seq: self.next_seq,
            index: self.current.len(),
        });
        self.current.push(FileJob { open, size });
        self.current_bytes += size;
        if self.current.len() >= BATCH_FILES
            || self.current_bytes >= BATCH_BYTES
            || size >= self.min_chunk
        {
            self.hand_out()?;
        }
        Ok(())
    }

    fn hand_out(&mut self) -> RusticResult<()> {
        let jobs = std::mem::take(&mut self.current);
        self.current_bytes = 0;
        let (reply, answer) = sync_channel(1);
        let batches = self
            .batches
            .as_ref()
            .expect("batches are handed out while walking");
        batches
            .send(Batch { jobs, reply })
            .map_err(|_| internal("every file worker stopped".into()))?;
        self.in_flight.push_back(InFlight {
            reply: answer,
            outcomes: None,
        });
        self.next_seq += 1;
        Ok(())
    }

    /// Puts the queued entries into the trees as far as the workers have answered, waiting for
    /// the answers of batches older than `wait_below` (all of them with `u64::MAX`).
    fn settle(&mut self, wait_below: u64) -> RusticResult<()> {
        while let Some(front) = self.queue.front() {
            let (seq, index) = match front {
                Pending::File { seq, index, .. } => (*seq, *index),
                Pending::Step(_) | Pending::Entry(_) => {
                    match self.queue.pop_front() {
                        Some(Pending::Step(step)) => self.builder.step(step)?,
                        Some(Pending::Entry(node)) => self.builder.add(node, 0),
                        _ => unreachable!("the front was a step or an entry"),
                    }
                    continue;
                }
            };
            if seq == self.next_seq {
                if wait_below != u64::MAX {
                    return Ok(());
                }
                self.hand_out()?;
            }
            let slot = usize::try_from(seq - self.first_seq).expect("few batches in flight");
            let batch = &mut self.in_flight[slot];
            if batch.outcomes.is_none() {
                let answer = if seq < wait_below {
                    batch.reply.recv().ok()
                } else {
                    match batch.reply.try_recv() {
                        Ok(answer) => Some(answer),
                        Err(TryRecvError::Empty) => return Ok(()),
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                let answer = answer.ok_or_else(|| internal("a file worker stopped".into()))?;
                batch.outcomes = Some(answer?);
            }
            let outcomes = batch.outcomes.as_mut().expect("just filled");
            let outcome = outcomes[index].take();
            let last = index + 1 == outcomes.len();
            let Some(Pending::File { mut node, .. }) = self.queue.pop_front() else {
                unreachable!("the front was a file");
            };
            if last {
                self.in_flight.pop_front();
                self.first_seq += 1;
            }
            if let Some((ids, bytes)) = outcome {
                node.content = Some(ids);
                self.builder.add(node, bytes);
            }
        }
        Ok(())
    }
}

/// The tree an entry goes into: a directory's own path (it opens that tree), a file's parent.
fn tree_path_of<'p>(path: &'p Path, node: &Node) -> Option<&'p Path> {
    if node.is_dir() {
        Some(path)
    } else {
        path.parent()
    }
}
