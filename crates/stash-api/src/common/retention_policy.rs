//! `retentionPolicy`: which snapshots `restic forget` keeps after every BackupSession.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Stash's v1alpha1 `RetentionPolicy`. `name` and `prune` are required by the CRD schema.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    /// Name of the policy (informational).
    pub name: String,
    /// `--keep-last N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i64>,
    /// `--keep-hourly N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<i64>,
    /// `--keep-daily N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i64>,
    /// `--keep-weekly N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<i64>,
    /// `--keep-monthly N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<i64>,
    /// `--keep-yearly N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<i64>,
    /// Repeated `--keep-tag T`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_tags: Option<Vec<String>>,
    /// `--prune`: remove unreferenced data after forgetting snapshots.
    pub prune: bool,
    /// `--dry-run`: only report what would be removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}

impl RetentionPolicy {
    /// The `keep*` counts that are set, with their JSON field names, in restic's order.
    #[must_use]
    pub fn keep_counts(&self) -> [(&'static str, Option<i64>); 6] {
        [
            ("keepLast", self.keep_last),
            ("keepHourly", self.keep_hourly),
            ("keepDaily", self.keep_daily),
            ("keepWeekly", self.keep_weekly),
            ("keepMonthly", self.keep_monthly),
            ("keepYearly", self.keep_yearly),
        ]
    }

    /// Whether any `keep*` rule (count > 0 or a tag) is set.
    #[must_use]
    pub fn has_keep_rule(&self) -> bool {
        self.keep_counts()
            .iter()
            .any(|(_, n)| n.is_some_and(|n| n > 0))
            || self.keep_tags.as_ref().is_some_and(|t| !t.is_empty())
    }
}
