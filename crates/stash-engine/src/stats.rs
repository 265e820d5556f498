//! `stats`: what Stash puts in Repository.status (size and snapshot count).

use serde::Serialize;

use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::LockKind;
use crate::{Control, Engine, EngineError};

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
    pub async fn stats(&self, control: &Control) -> Result<RepositoryStats, EngineError> {
        self.run(Operation::Stats, control, |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Shared)?;
            let snapshot_count = repo
                .get_all_snapshots()
                .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?
                .len() as u64;
            let index = repo
                .infos_index()
                .map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
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
        })
        .await
    }
}
