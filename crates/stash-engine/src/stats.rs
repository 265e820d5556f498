//! `stats`: what Stash puts in Repository.status (size and snapshot count).

use serde::Serialize;

use crate::{Engine, EngineError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepositoryStats {
    pub snapshot_count: u64,
    /// Bytes of all blobs as stored (restic `stats --mode raw-data`).
    pub total_size: u64,
    /// Bytes of all blobs before compression.
    pub total_uncompressed_size: u64,
    pub total_blob_count: u64,
}

impl Engine {
    pub fn stats(&self) -> Result<RepositoryStats, EngineError> {
        let (repo, _lock) = self.open_locked(crate::repo::LockKind::Shared)?;
        let snapshot_count = repo
            .get_all_snapshots()
            .map_err(EngineError::repository("list snapshots"))?
            .len() as u64;
        let index = repo
            .infos_index()
            .map_err(EngineError::repository("read the repository index"))?;
        let (mut total_size, mut total_uncompressed_size, mut total_blob_count) = (0, 0, 0);
        for blob in &index.blobs {
            total_size += blob.size;
            total_uncompressed_size += blob.data_size;
            total_blob_count += blob.count;
        }
        Ok(RepositoryStats {
            snapshot_count,
            total_size,
            total_uncompressed_size,
            total_blob_count,
        })
    }
}
