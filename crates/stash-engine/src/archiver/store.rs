//! What the archiver writes to the repository besides blobs' bytes: packs, the index files
//! listing them, the snapshot; and the blobs the repository already has.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustic_core::repofile::{BlobType, IndexFile, SnapshotFile};
use rustic_core::{FileType, Id, Repository, RusticError, RusticResult, WriteBackend};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::pack::FinishedPack;
use crate::cipher::RepoCipher;

/// restic writes an index file once it lists this many blobs ("full" in restic's index code).
const BLOBS_PER_INDEX_FILE: usize = 50_000;

/// Blob ids the repository has or this backup has claimed: each blob is stored once.
#[derive(Default)]
pub(crate) struct KnownBlobs {
    data: Mutex<HashSet<Id>>,
    trees: Mutex<HashSet<Id>>,
}

/// Sizes of the blobs the index lists, per type: packs grow with the repository.
#[derive(Default, Clone, Copy)]
pub(crate) struct IndexedSizes {
    pub(crate) data: u64,
    pub(crate) trees: u64,
}

impl KnownBlobs {
    /// The blobs of every index file of `repo` (packs marked for deletion excluded: their blobs
    /// are stored again).
    pub(crate) fn load<S: rustic_core::Open>(
        repo: &Repository<S>,
    ) -> RusticResult<(Self, IndexedSizes)> {
        let known = Self::default();
        let mut sizes = IndexedSizes::default();
        {
            let mut data = known.data.lock().expect("blob set poisoned");
            let mut trees = known.trees.lock().expect("blob set poisoned");
            for file in repo.stream_files::<IndexFile>()? {
                let (_, file) = file?;
                for pack in file.packs {
                    for blob in pack.blobs {
                        let length = u64::from(blob.location.length);
                        let id: Id = *blob.id;
                        match blob.tpe {
                            BlobType::Data => {
                                sizes.data += length;
                                data.insert(id);
                            }
                            BlobType::Tree => {
                                sizes.trees += length;
                                trees.insert(id);
                            }
                        }
                    }
                }
            }
        }
        Ok((known, sizes))
    }

    /// True when `id` is new: the caller stores it; any later claim of the same id is false.
    pub(crate) fn claim(&self, blob_type: BlobType, id: [u8; 32]) -> bool {
        let id = Id::new(id);
        let set = match blob_type {
            BlobType::Data => &self.data,
            BlobType::Tree => &self.trees,
        };
        set.lock().expect("blob set poisoned").insert(id)
    }
}

/// restic's index file, as JSON.
#[derive(Serialize)]
struct IndexJson {
    packs: Vec<IndexPackJson>,
}

#[derive(Serialize)]
struct IndexPackJson {
    id: String,
    blobs: Vec<IndexBlobJson>,
    size: u32,
}

#[derive(Serialize)]
struct IndexBlobJson {
    id: String,
    #[serde(rename = "type")]
    blob_type: &'static str,
    offset: u32,
    length: u32,
    uncompressed_length: u32,
}

/// Uploads files to the repository and keeps the index of the packs written.
pub(crate) struct Store {
    backend: Arc<dyn WriteBackend>,
    cipher: RepoCipher,
    level: i32,
    unindexed: Mutex<Vec<FinishedPack>>,
}

impl Store {
    pub(crate) fn new(backend: Arc<dyn WriteBackend>, cipher: RepoCipher, level: i32) -> Self {
        Self {
            backend,
            cipher,
            level,
            unindexed: Mutex::default(),
        }
    }

    /// Uploads a pack; its blobs go into the next index file.
    /// Writes a pack and indexes it; gives the pack's buffer back for the next pack when the
    /// backend kept no reference to it.
    pub(crate) fn save_pack(
        &self,
        file: Vec<u8>,
        pack: FinishedPack,
    ) -> RusticResult<Option<Vec<u8>>> {
        // Tree packs are cached (as `rustic_core` does): later backups and restores read them.
        let cacheable = pack.blob_type == BlobType::Tree;
        let file = Bytes::from(file);
        self.backend.write_bytes(
            FileType::Pack,
            &Id::new(pack.id),
            cacheable,
            file.clone().into(),
        )?;
        let buffer = file.try_into_mut().ok().map(Vec::from);
        let full = {
            let mut unindexed = self.unindexed.lock().expect("index list poisoned");
            unindexed.push(pack);
            let blobs: usize = unindexed.iter().map(|p| p.blobs.len()).sum();
            (blobs >= BLOBS_PER_INDEX_FILE).then(|| std::mem::take(&mut *unindexed))
        };
        if let Some(packs) = full {
            self.save_index(&packs)?;
        }
        Ok(buffer)
    }

    /// Writes the index file of the packs not yet indexed.
    pub(crate) fn flush_index(&self) -> RusticResult<()> {
        let packs = std::mem::take(&mut *self.unindexed.lock().expect("index list poisoned"));
        if packs.is_empty() {
            return Ok(());
        }
        self.save_index(&packs)
    }

    fn save_index(&self, packs: &[FinishedPack]) -> RusticResult<()> {
        let json = IndexJson {
            packs: packs
                .iter()
                .map(|pack| IndexPackJson {
                    id: hex::encode(pack.id),
                    size: pack.size,
                    blobs: pack
                        .blobs
                        .iter()
                        .map(|blob| IndexBlobJson {
                            id: hex::encode(blob.id),
                            blob_type: match pack.blob_type {
                                BlobType::Data => "data",
                                BlobType::Tree => "tree",
                            },
                            offset: blob.offset,
                            length: blob.length,
                            uncompressed_length: blob.uncompressed_length,
                        })
                        .collect(),
                })
                .collect(),
        };
        let plain = serde_json::to_vec(&json).map_err(|err| {
            RusticError::with_source(
                rustic_core::ErrorKind::Internal,
                "Failed to serialize an index file.",
                err,
            )
        })?;
        self.save_file(FileType::Index, &plain).map(|_| ())
    }

    /// Saves the snapshot; its id is set.
    pub(crate) fn save_snapshot(&self, snapshot: &mut SnapshotFile) -> RusticResult<()> {
        let plain = serde_json::to_vec(&*snapshot).map_err(|err| {
            RusticError::with_source(
                rustic_core::ErrorKind::Internal,
                "Failed to serialize the snapshot.",
                err,
            )
        })?;
        snapshot.id = self.save_file(FileType::Snapshot, &plain)?.into();
        Ok(())
    }

    /// An unpacked file of format 2: a 2 (compressed) and the zstd frame, encrypted; named by
    /// the SHA-256 of the encrypted bytes.
    fn save_file(&self, file_type: FileType, plain: &[u8]) -> RusticResult<Id> {
        let mut compressed = vec![2u8];
        compressed.extend(zstd::bulk::compress(plain, self.level).map_err(|err| {
            RusticError::with_source(
                rustic_core::ErrorKind::Internal,
                "Failed to compress a repository file.",
                err,
            )
        })?);
        let sealed = self.cipher.seal(&compressed);
        let id = Id::new(Sha256::digest(&sealed).into());
        self.backend
            .write_bytes(file_type, &id, true, sealed.into())?;
        Ok(id)
    }
}
