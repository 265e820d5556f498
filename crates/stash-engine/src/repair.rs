//! `repair index` and `repair snapshots`, as restic has them.

use std::collections::BTreeSet;

use rustic_core::{RepairIndexOptions, RepairSnapshotsOptions};
use serde::Serialize;

use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::LockKind;
use crate::snapshots::{SnapshotFilter, SnapshotInfo, select};
use crate::{Control, Engine, EngineError};

#[derive(Debug, Clone, Default)]
pub struct RepairIndexRequest {
    /// Read every pack's header, not only those of packs the index misses (restic
    /// `--read-all-packs`).
    pub read_all_packs: bool,
}

#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsRequest {
    /// Snapshot ids (prefixes) or `latest`; empty means every snapshot.
    pub snapshots: Vec<String>,
    /// Remove each damaged original once its repaired copy is saved (restic `--forget`).
    pub forget: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairSnapshotsReport {
    /// The snapshots written in place of damaged ones.
    pub repaired: Vec<SnapshotInfo>,
    /// The damaged originals removed (`forget`).
    pub removed: Vec<SnapshotInfo>,
    pub dry_run: bool,
}

impl Engine {
    /// Rewrites the index from the packs the repository really holds, under an exclusive lock.
    pub async fn repair_index(
        &self,
        request: RepairIndexRequest,
        control: &Control,
    ) -> Result<(), EngineError> {
        self.run(Operation::Repair, control, move |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Exclusive)?;
            // Read the whole index first: only then is it known whether there are mixed packs.
            let repo = repo
                .to_indexed_ids()
                .map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
            // rustic_core sees each mixed pack as two entries (see `index_compat`) and would write
            // them so into the new index, which restic does not read as one pack.
            if !op.index_compat.mixed_packs().is_empty() {
                return Err(EngineError::MixedPacksRepairIndex {
                    location: engine.location().to_string(),
                });
            }
            op.checkpoint()?;
            let options = RepairIndexOptions::default().read_all(request.read_all_packs);
            repo.repair_index(&options, false)
                .map_err(|source| EngineError::RepairIndex(RusticCause::new(source)))
        })
        .await
    }

    /// Saves a copy of each damaged snapshot without the trees and file contents it lost (files
    /// missing data get a `.repaired` suffix, the copy the tag `repaired`), as restic does.
    pub async fn repair_snapshots(
        &self,
        request: RepairSnapshotsRequest,
        control: &Control,
    ) -> Result<RepairSnapshotsReport, EngineError> {
        self.run(Operation::Repair, control, move |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Exclusive)?;
            let repo = repo
                .to_indexed()
                .map_err(|source| EngineError::ReadIndex(RusticCause::new(source)))?;
            let all = repo
                .get_all_snapshots()
                .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?;
            let chosen = if request.snapshots.is_empty() {
                all.clone()
            } else {
                request
                    .snapshots
                    .iter()
                    .map(|spec| select(&repo, spec, &SnapshotFilter::default()))
                    .collect::<Result<Vec<_>, _>>()?
            };
            op.checkpoint()?;
            let options = RepairSnapshotsOptions::default().delete(request.forget);
            repo.repair_snapshots(&options, chosen, request.dry_run)
                .map_err(|source| EngineError::RepairSnapshots(RusticCause::new(source)))?;
            let after = repo
                .get_all_snapshots()
                .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?;
            let before_ids: BTreeSet<_> = all.iter().map(|s| s.id).collect();
            let after_ids: BTreeSet<_> = after.iter().map(|s| s.id).collect();
            Ok(RepairSnapshotsReport {
                repaired: after
                    .iter()
                    .filter(|s| !before_ids.contains(&s.id))
                    .map(SnapshotInfo::from)
                    .collect(),
                removed: all
                    .iter()
                    .filter(|s| !after_ids.contains(&s.id))
                    .map(SnapshotInfo::from)
                    .collect(),
                dry_run: request.dry_run,
            })
        })
        .await
    }
}
