//! The file workers: each reads the files of a batch, cuts them into blobs, stores the blobs
//! the repository lacks in a data pack of its own, and answers with the files' blob ids.
//!
//! Files come in batches (one hand-over per batch, not per file or per blob), each worker
//! keeps its zstd contexts for the whole backup, all workers fill one data pack (one pack
//! buffer per worker put stash's peak RSS above restic's, issue 12), and a file smaller than the
//! minimum chunk is read whole and is one blob without any chunking. A large file is cut on the
//! worker's thread while a helper thread compresses, encrypts and packs its new blobs, so one
//! large file keeps two cores busy.

use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustic_core::repofile::BlobType;
use rustic_core::{DataId, Id, ReadSourceOpen, RusticResult};
use sha2::{Digest, Sha256};

use super::Shared;
use super::pack::Sealer;
use crate::source::WatchedOpen;

/// A file to read: its opener and the size the walk saw.
pub(crate) struct FileJob {
    pub(crate) open: WatchedOpen,
    pub(crate) size: u64,
}

/// What became of a file: its blobs and the bytes read, or `None` when it could not be read
/// (the source recorded why; the file is left out of the snapshot, as `rustic_core` does).
pub(crate) type FileOutcome = Option<(Vec<DataId>, u64)>;

pub(crate) type BatchReply = RusticResult<Vec<FileOutcome>>;

pub(crate) struct Batch {
    pub(crate) jobs: Vec<FileJob>,
    pub(crate) reply: SyncSender<BatchReply>,
}

/// New data blobs and their sizes before and after sealing.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DataStats {
    pub(crate) blobs: u64,
    pub(crate) plain: u64,
    pub(crate) packed: u64,
}

impl DataStats {
    pub(crate) fn add(&mut self, other: Self) {
        self.blobs += other.blobs;
        self.plain += other.plain;
        self.packed += other.packed;
    }
}

/// A worker's sealer; the sealed blobs go into the archiver's shared data pack.
struct Packing<'a> {
    shared: &'a Shared,
    sealer: Sealer,
    stats: DataStats,
}

/// Chunk buffers go from the chunker to the sealing thread and back, so a worker cuts a large
/// file into a few buffers it reuses instead of a fresh allocation per chunk, which glibc kept
/// resident in its per-thread arenas (issue 12).
struct Recycler {
    give_back: SyncSender<Vec<u8>>,
    take: Receiver<Vec<u8>>,
}

impl Recycler {
    /// Buffers kept for reuse: about the chunks in flight to the sealing thread.
    const SPARE: usize = 3;

    fn new() -> Self {
        let (give_back, take) = sync_channel(Self::SPARE);
        Self { give_back, take }
    }
}

impl Packing<'_> {
    fn store(&mut self, id: [u8; 32], plain: &[u8]) -> RusticResult<()> {
        let sealed = self.sealer.seal(plain).map_err(super::internal)?;
        self.stats.blobs += 1;
        self.stats.plain += plain.len() as u64;
        self.stats.packed += sealed.len() as u64;
        self.shared.add_data_blob(id, &sealed, plain.len())
    }
}

/// Serves batches until the sender is dropped.
pub(crate) fn work(shared: &Shared, batches: &Mutex<Receiver<Batch>>) -> RusticResult<DataStats> {
    let mut packing = Packing {
        shared,
        sealer: shared.sealer()?,
        stats: DataStats::default(),
    };
    let recycler = Recycler::new();
    loop {
        let batch = batches.lock().expect("batch queue poisoned").recv();
        let Ok(Batch { jobs, reply }) = batch else {
            break;
        };
        let outcome: BatchReply = jobs
            .into_iter()
            .map(|job| read_file(&mut packing, &recycler, job))
            .collect();
        let failed = outcome.is_err();
        // The archiver may have stopped listening (it failed elsewhere); nothing to do then.
        let _ = reply.send(outcome);
        if failed {
            return Ok(packing.stats);
        }
    }
    Ok(packing.stats)
}

fn read_file(
    packing: &mut Packing<'_>,
    recycler: &Recycler,
    job: FileJob,
) -> RusticResult<FileOutcome> {
    let Ok(mut reader) = job.open.open() else {
        return Ok(None);
    };
    let shared = packing.shared;
    let min = shared.chunker.min_size();
    if job.size >= min as u64 {
        return read_large(packing, recycler, reader);
    }
    let mut data = Vec::with_capacity(usize::try_from(job.size).unwrap_or(0) + 1);
    if reader.read_to_end(&mut data).is_err() {
        return Ok(None);
    }
    if data.len() >= min {
        // It grew since the walk saw it.
        return read_large(packing, recycler, Cursor::new(data).chain(reader));
    }
    if data.is_empty() {
        return Ok(Some((Vec::new(), 0)));
    }
    let id: [u8; 32] = Sha256::digest(&data).into();
    if shared.known.claim(BlobType::Data, id) {
        packing.store(id, &data)?;
    }
    shared.tracker.add_bytes(data.len() as u64);
    Ok(Some((vec![DataId::from(Id::new(id))], data.len() as u64)))
}

/// Cuts on this thread; a helper seals and packs the new chunks.
fn read_large(
    packing: &mut Packing<'_>,
    recycler: &Recycler,
    reader: impl Read,
) -> RusticResult<FileOutcome> {
    let shared = packing.shared;
    let (chunks, new_chunks) = sync_channel::<([u8; 32], Vec<u8>)>(2);
    let give_back = recycler.give_back.clone();
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("stash-seal".into())
            .spawn_scoped(scope, || -> RusticResult<()> {
                for (id, chunk) in new_chunks {
                    packing.store(id, &chunk)?;
                    // Full: enough buffers wait already; this one is freed.
                    let _ = give_back.try_send(chunk);
                }
                Ok(())
            })
            .expect("the sealing thread could not be started");
        let mut ids = Vec::new();
        let mut bytes = 0u64;
        let mut complete = true;
        for chunk in shared.chunker.chunks(reader, &recycler.take) {
            let Ok(chunk) = chunk else {
                complete = false;
                break;
            };
            let id: [u8; 32] = Sha256::digest(&chunk).into();
            ids.push(DataId::from(Id::new(id)));
            bytes += chunk.len() as u64;
            shared.tracker.add_bytes(chunk.len() as u64);
            // A failed send means the helper stopped on an error, which its join returns.
            if shared.known.claim(BlobType::Data, id) && chunks.send((id, chunk)).is_err() {
                break;
            }
        }
        drop(chunks);
        helper.join().expect("the sealing thread panicked")?;
        Ok(complete.then_some((ids, bytes)))
    })
}
