//! Repository metrics, pushed after a backup's post-actions (`SendRepositoryMetrics`, §13.2).

use crate::labels::pair;
use crate::metric::{Metric, bool_value, push};

pub const INTEGRITY: &str = "stash_repository_integrity";
pub const SIZE_BYTES: &str = "stash_repository_size_bytes";
pub const SNAPSHOT_COUNT: &str = "stash_repository_snapshot_count";
pub const SNAPSHOT_CLEANED: &str = "stash_repository_snapshot_cleaned";

/// Which Repository (§13.3): `bucket` and `prefix` become labels only when non-empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepositoryLabels {
    pub name: String,
    /// Namespace of the Repository.
    pub namespace: String,
    /// The backend provider: `s3`, `gcs`, `azure`, `local`, `rest`, `b2`, `swift`.
    pub backend: String,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
}

impl RepositoryLabels {
    /// `name`, `namespace`, `backend`, then `bucket` and `prefix` when set and non-empty.
    #[must_use]
    pub fn to_labels(&self) -> Vec<(String, String)> {
        let mut labels = vec![
            pair("name", &self.name),
            pair("namespace", &self.namespace),
            pair("backend", &self.backend),
        ];
        for (key, value) in [("bucket", &self.bucket), ("prefix", &self.prefix)] {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                labels.push(pair(key, value));
            }
        }
        labels
    }
}

/// Integrity (when the check ran: `None` leaves it out), size, snapshot count and the snapshots
/// the retention policy removed.
#[must_use]
pub fn metrics(
    l: &RepositoryLabels,
    integrity: Option<bool>,
    size_bytes: u64,
    snapshot_count: u64,
    snapshots_removed: u64,
) -> Vec<Metric> {
    let labels = l.to_labels();
    let mut metrics = Vec::new();
    if let Some(integrity) = integrity {
        push(
            &mut metrics,
            INTEGRITY,
            "Result of repository integrity check after the last backup",
            &labels,
            bool_value(integrity),
        );
    }
    #[allow(clippy::cast_precision_loss, reason = "gauge values")]
    let figures = [
        (
            SIZE_BYTES,
            "Indicates size of repository after last backup (in bytes)",
            size_bytes as f64,
        ),
        (
            SNAPSHOT_COUNT,
            "Indicates the number of snapshots stored in the repository",
            snapshot_count as f64,
        ),
        (
            SNAPSHOT_CLEANED,
            "Indicates the number of old snapshots cleaned up according to retention policy on last backup session",
            snapshots_removed as f64,
        ),
    ];
    for (name, help, value) in figures {
        push(&mut metrics, name, help, &labels, value);
    }
    metrics
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "gauge values in tests are exact in f64")]
mod tests {
    use super::*;

    fn names(metrics: &[Metric]) -> Vec<&str> {
        metrics.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn repository_metrics_carry_name_namespace_backend_bucket_and_prefix_under_both_names() {
        let labels = RepositoryLabels {
            name: "s3-repo".into(),
            namespace: "demo".into(),
            backend: "s3".into(),
            bucket: Some("stash-backups".into()),
            prefix: Some("demo/deployment".into()),
        };
        let metrics = metrics(&labels, Some(true), 4096, 3, 1);
        assert_eq!(
            names(&metrics),
            [
                INTEGRITY,
                "stash_appscode_com_repository_integrity",
                SIZE_BYTES,
                "stash_appscode_com_repository_size_bytes",
                SNAPSHOT_COUNT,
                "stash_appscode_com_repository_snapshot_count",
                SNAPSHOT_CLEANED,
                "stash_appscode_com_repository_snapshot_cleaned",
            ]
        );
        assert_eq!(
            metrics.iter().map(|m| m.value).collect::<Vec<_>>(),
            [1.0, 1.0, 4096.0, 4096.0, 3.0, 3.0, 1.0, 1.0]
        );
        assert_eq!(
            metrics[0].labels,
            [
                pair("name", "s3-repo"),
                pair("namespace", "demo"),
                pair("backend", "s3"),
                pair("bucket", "stash-backups"),
                pair("prefix", "demo/deployment"),
            ]
        );
    }

    #[test]
    fn empty_bucket_and_prefix_are_not_labels_and_an_unchecked_repository_has_no_integrity() {
        let labels = RepositoryLabels {
            name: "local-repo".into(),
            namespace: "demo".into(),
            backend: "local".into(),
            bucket: Some(String::new()),
            prefix: None,
        };
        let metrics = metrics(&labels, None, 0, 0, 0);
        assert!(!names(&metrics).contains(&INTEGRITY));
        let keys: Vec<_> = metrics[0].labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["name", "namespace", "backend"]);
        let failed = super::metrics(&labels, Some(false), 0, 0, 0);
        assert_eq!(failed[0].name, INTEGRITY);
        assert_eq!(failed[0].value, 0.0);
    }
}
