//! Which bytes to read: a batch of file pieces sorted by pack and offset and cut into reads of
//! neighbouring blobs, so one request serves many small files (as restic's restorer does).

use std::fs::File;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use rustic_core::DataId;
use rustic_core::repofile::{Metadata, PackId};

/// How blobs are grouped into reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadPlan {
    /// A batch is cut into reads once it holds this many files ...
    pub(super) batch_files: usize,
    /// ... or this many bytes of content.
    pub(super) batch_bytes: u64,
    /// Longest single read from a pack: bounds memory per worker; large files still spread
    /// over several workers.
    pub(super) max_read: u32,
    /// Neighbouring blobs of a pack are read together when at most this far apart (reading
    /// the gap is cheaper than another request).
    pub(super) max_gap: u32,
    pub(super) workers: usize,
}

impl ReadPlan {
    /// Local disk: small reads are cheap, one worker per CPU keeps the CPUs busy.
    pub(super) fn local() -> Self {
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
    pub(super) fn remote() -> Self {
        Self {
            batch_files: 1024,
            batch_bytes: 64 << 20,
            max_read: 16 << 20,
            max_gap: 1 << 20,
            workers: 4,
        }
    }
}

/// A file being restored; shared by the jobs writing its chunks. The last job to finish
/// sets its metadata.
pub(super) struct FileInProgress {
    pub(super) path: PathBuf,
    pub(super) handle: File,
    pub(super) meta: Metadata,
    pub(super) pending: AtomicUsize,
    pub(super) failed: AtomicBool,
}

/// One blob of a file: where it is in its pack and where it goes.
pub(super) struct Piece {
    pub(super) pack: PackId,
    pub(super) offset: u32,
    pub(super) length: u32,
    pub(super) uncompressed_length: Option<NonZeroU32>,
    pub(super) id: DataId,
    pub(super) file: Arc<FileInProgress>,
    pub(super) file_offset: u64,
}

/// Pieces of a few files, gathered until worth cutting into reads.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) pieces: Vec<Piece>,
    pub(super) files: usize,
    pub(super) bytes: u64,
}

/// A blob to decrypt once and write to every place it appears (a blob of zeros may appear
/// hundreds of times in one file).
pub(super) struct BlobWrite {
    pub(super) id: DataId,
    pub(super) offset: u32,
    pub(super) length: u32,
    pub(super) uncompressed_length: Option<NonZeroU32>,
    pub(super) targets: Vec<(Arc<FileInProgress>, u64)>,
}

/// One request to the backend: `start..end` of a pack, covering `blobs`.
pub(super) struct ReadJob {
    pub(super) pack: PackId,
    pub(super) start: u32,
    pub(super) end: u32,
    pub(super) blobs: Vec<BlobWrite>,
}

/// Sorts pieces by pack and offset and cuts them into reads of neighbouring blobs.
pub(super) fn plan_reads(mut pieces: Vec<Piece>, plan: ReadPlan) -> Vec<ReadJob> {
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

#[cfg(test)]
mod tests {
    use super::{FileInProgress, Piece, ReadPlan, plan_reads};
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
}
