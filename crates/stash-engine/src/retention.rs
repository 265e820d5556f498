//! `forget` with Stash's retention policy, and `prune`.
//!
//! Grouping follows restic's default (host + paths), which is what Stash gets by running
//! `restic forget` without `--host`: `keepLast: 5` keeps five snapshots per host and path set.

use rustic_core::{
    ForgetGroups, Grouped, KeepOptions, PruneOptions, SnapshotGroupCriterion, StringList,
};
use serde::Serialize;

use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::{LockKind, Op};
use crate::snapshots::SnapshotInfo;
use crate::{Control, Engine, EngineError, SnapshotFilter};

/// Stash's `retentionPolicy` (v1alpha1 `RetentionPolicy`), minus `name` and `prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    /// True when no rule is set; Stash then does not run forget at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    fn keep_options(&self) -> Result<KeepOptions, EngineError> {
        if self.is_empty() {
            return Err(EngineError::NoRetentionRule);
        }
        let count = |field: &'static str, n: Option<u32>| -> Result<Option<i32>, EngineError> {
            n.map(|value| {
                i32::try_from(value)
                    .map_err(|_| EngineError::RetentionCountTooLarge { field, value })
            })
            .transpose()
        };
        let mut keep = KeepOptions::default()
            .keep_last(count("keepLast", self.keep_last)?)
            .keep_hourly(count("keepHourly", self.keep_hourly)?)
            .keep_daily(count("keepDaily", self.keep_daily)?)
            .keep_weekly(count("keepWeekly", self.keep_weekly)?)
            .keep_monthly(count("keepMonthly", self.keep_monthly)?)
            .keep_yearly(count("keepYearly", self.keep_yearly)?);
        if !self.keep_tags.is_empty() {
            let tags: StringList =
                self.keep_tags
                    .join(",")
                    .parse()
                    .map_err(|err| EngineError::InvalidKeepTags {
                        tags: self.keep_tags.clone(),
                        reason: format!("{err}"),
                    })?;
            keep = keep.keep_tags(vec![tags]);
        }
        Ok(keep)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub keep: Vec<SnapshotInfo>,
    pub remove: Vec<SnapshotInfo>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub bytes_removed: u64,
    pub dry_run: bool,
}

impl Engine {
    /// Removes the snapshots `policy` does not keep, among those matching `filter`.
    pub async fn forget(
        &self,
        policy: RetentionPolicy,
        filter: SnapshotFilter,
        dry_run: bool,
        control: &Control,
    ) -> Result<ForgetReport, EngineError> {
        let keep = policy.keep_options()?;
        self.run(Operation::Forget, control, move |engine, op| {
            engine.forget_blocking(&keep, &filter, dry_run, op)
        })
        .await
    }

    fn forget_blocking(
        &self,
        keep: &KeepOptions,
        filter: &SnapshotFilter,
        dry_run: bool,
        op: &Op,
    ) -> Result<ForgetReport, EngineError> {
        let (repo, _lock) = self.open_locked(op, LockKind::Exclusive)?;
        let snapshots = repo
            .get_matching_snapshots(|s| filter.matches(s))
            .map_err(|source| EngineError::ListSnapshots(RusticCause::new(source)))?;
        let criterion: SnapshotGroupCriterion = "host,paths"
            .parse()
            .expect("`host,paths` is a valid grouping criterion");
        let grouped = Grouped::from_items(snapshots, criterion);
        let now = jiff::Zoned::now();
        let groups = ForgetGroups::from_grouped_snapshots_with_retention(grouped, keep, &now)
            .map_err(|source| EngineError::ApplyRetention(RusticCause::new(source)))?;

        let mut report = ForgetReport {
            keep: Vec::new(),
            remove: Vec::new(),
            dry_run,
        };
        for group in &groups.0 {
            for item in &group.items {
                let info = SnapshotInfo::from(&item.snapshot);
                if item.keep {
                    report.keep.push(info);
                } else {
                    report.remove.push(info);
                }
            }
        }
        let ids = groups.into_forget_ids();
        op.checkpoint()?;
        if !dry_run && !ids.is_empty() {
            repo.delete_snapshots(&ids)
                .map_err(|source| EngineError::RemoveSnapshots(RusticCause::new(source)))?;
        }
        Ok(report)
    }

    /// Removes the snapshot whose id starts with `id` (restic `forget <id>`); its data stays until a
    /// [`prune`](Self::prune). Returns the snapshot removed.
    pub async fn forget_snapshot(
        &self,
        id: String,
        control: &Control,
    ) -> Result<SnapshotInfo, EngineError> {
        self.run(Operation::Forget, control, move |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Exclusive)?;
            let snapshot = crate::snapshots::select(&repo, &id, &SnapshotFilter::default())?;
            op.checkpoint()?;
            repo.delete_snapshots(&[snapshot.id])
                .map_err(|source| EngineError::RemoveSnapshots(RusticCause::new(source)))?;
            Ok(SnapshotInfo::from(&snapshot))
        })
        .await
    }

    /// Removes data no snapshot references any more. Cancelling stops at the next backend
    /// request; rustic's prune writes the new index before it deletes, so an interrupted prune
    /// leaves a usable repository.
    pub async fn prune(
        &self,
        dry_run: bool,
        control: &Control,
    ) -> Result<PruneReport, EngineError> {
        self.run(Operation::Prune, control, move |engine, op| {
            let (repo, _lock) = engine.open_locked(op, LockKind::Exclusive)?;
            // Delete unreferenced packs at once instead of after restic's two-phase grace period:
            // stash-rs holds an exclusive lock while pruning, like restic.
            let options = PruneOptions::default().instant_delete(true);
            let plan = repo.prune_plan(&options);
            // rustic_core plans each half of a mixed pack (see `index_compat`) on its own and
            // could delete a pack whose other half is still in use; it fails on some of them.
            if !op.index_compat.mixed_packs().is_empty() {
                return Err(EngineError::MixedPacksPrune {
                    location: engine.location().to_string(),
                });
            }
            let plan = plan.map_err(|source| EngineError::PlanPrune(RusticCause::new(source)))?;
            let stats = &plan.stats;
            let report = PruneReport {
                packs_removed: stats.packs_to_delete.remove,
                packs_repacked: stats.packs.repack,
                bytes_removed: stats.size_to_delete.remove + stats.size_sum().repackrm,
                dry_run,
            };
            op.checkpoint()?;
            if !dry_run {
                repo.prune(&options, plan)
                    .map_err(|source| EngineError::Prune(RusticCause::new(source)))?;
            }
            Ok(report)
        })
        .await
    }
}
