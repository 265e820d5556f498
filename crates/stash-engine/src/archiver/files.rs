//! The file workers: each reads the files of a batch, cuts them into blobs, stores the blobs
//! the repository lacks in the shared data pack, and answers with the files' blob ids.
//!
//! Files come in batches (one hand-over per batch, not per file or per blob), a worker borrows
//! a sealer (zstd contexts and buffers kept for the whole backup) from the archiver's pool for
//! each batch, all workers fill one data pack (one pack buffer per worker put stash's peak RSS
//! above restic's, issue 12), and a file smaller than the minimum chunk is read whole and is one
//! blob without any chunking. A large file is cut on the worker's thread while one or two helper
//! threads compress, encrypt and pack its new blobs, so one large file keeps two cores busy.

use std::io::{Cursor, Read};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rustic_core::repofile::BlobType;
use rustic_core::{DataId, Id, ReadSourceOpen, RusticResult};
use sha2::{Digest, Sha256};

use super::Shared;
use super::sealers::Sealing;
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

/// Files from this size on may get a second sealing thread (when a sealer is free, see
/// [`super::sealers::Sealers`]); smaller ones are cut faster than a second thread would start to help.
const SECOND_SEALER_BYTES: u64 = 16 << 20;

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

/// Serves batches until the sender is dropped.
pub(crate) fn work(shared: &Shared, batches: &Mutex<Receiver<Batch>>) -> RusticResult<()> {
    let recycler = Recycler::new();
    loop {
        let batch = batches.lock().expect("batch queue poisoned").recv();
        let Ok(Batch { jobs, reply }) = batch else {
            return Ok(());
        };
        let outcome: BatchReply = shared.sealers.take(shared).and_then(|mut sealing| {
            jobs.into_iter()
                .map(|job| read_file(shared, &mut sealing, &recycler, job))
                .collect()
        });
        let failed = outcome.is_err();
        // The archiver may have stopped listening (it failed elsewhere); nothing to do then.
        let _ = reply.send(outcome);
        if failed {
            return Ok(());
        }
    }
}

fn read_file(
    shared: &Shared,
    sealing: &mut Sealing,
    recycler: &Recycler,
    job: FileJob,
) -> RusticResult<FileOutcome> {
    let Ok(mut reader) = job.open.open() else {
        return Ok(None);
    };
    let min = shared.chunker.min_size();
    if job.size >= min as u64 {
        return read_large(shared, sealing, recycler, reader, job.size);
    }
    let mut data = Vec::with_capacity(usize::try_from(job.size).unwrap_or(0) + 1);
    if reader.read_to_end(&mut data).is_err() {
        return Ok(None);
    }
    if data.len() >= min {
        // It grew since the walk saw it.
        let size = data.len() as u64;
        return read_large(
            shared,
            sealing,
            recycler,
            Cursor::new(data).chain(reader),
            size,
        );
    }
    if data.is_empty() {
        return Ok(Some((Vec::new(), 0)));
    }
    let id: [u8; 32] = Sha256::digest(&data).into();
    if shared.known.claim(BlobType::Data, id) {
        sealing.store(shared, id, &data)?;
    }
    shared.tracker.add_bytes(data.len() as u64);
    Ok(Some((vec![DataId::from(Id::new(id))], data.len() as u64)))
}

/// Cuts on this thread; one helper with `sealing`, and a second one when the file is large (by
/// `size`, as the walk saw it) and a sealer is free, seal and pack the new chunks.
fn read_large(
    shared: &Shared,
    sealing: &mut Sealing,
    recycler: &Recycler,
    reader: impl Read,
    size: u64,
) -> RusticResult<FileOutcome> {
    let mut second = if size >= SECOND_SEALER_BYTES {
        shared.sealers.try_take(shared)?
    } else {
        None
    };
    let two = second.is_some();
    let (chunks, new_chunks) = sync_channel::<([u8; 32], Vec<u8>)>(if two { 3 } else { 2 });
    // A helper that fails drops the receiver, so the cutting stops at its next send.
    let new_chunks = Mutex::new(Some(new_chunks));
    let give_back = recycler.give_back.clone();
    let seal = |sealing: &mut Sealing| -> RusticResult<()> {
        loop {
            let next = match new_chunks.lock().expect("chunk queue poisoned").as_ref() {
                Some(queue) => queue.recv(),
                None => return Ok(()),
            };
            let Ok((id, chunk)) = next else {
                return Ok(());
            };
            if let Err(err) = sealing.store(shared, id, &chunk) {
                drop(new_chunks.lock().expect("chunk queue poisoned").take());
                return Err(err);
            }
            // Full: enough buffers wait already; this one is freed.
            let _ = give_back.try_send(chunk);
        }
    };
    let sealings = std::iter::once(sealing).chain(second.as_deref_mut());
    std::thread::scope(|scope| {
        let seal = &seal;
        let helpers: Vec<_> = sealings
            .map(|sealing| {
                std::thread::Builder::new()
                    .name("stash-seal".into())
                    .spawn_scoped(scope, move || seal(sealing))
                    .expect("a sealing thread could not be started")
            })
            .collect();
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
            // A failed send means a helper stopped on an error, which its join returns.
            if shared.known.claim(BlobType::Data, id) && chunks.send((id, chunk)).is_err() {
                break;
            }
        }
        drop(chunks);
        let mut failed = None;
        for helper in helpers {
            if let Err(err) = helper.join().expect("a sealing thread panicked") {
                failed = failed.or(Some(err));
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(complete.then_some((ids, bytes))),
        }
    })
}
