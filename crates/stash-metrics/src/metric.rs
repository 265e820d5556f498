//! One gauge sample, and the v2022 duplicate every legacy name gets (§13.2).

/// Prefix of every legacy (community) name.
const LEGACY_PREFIX: &str = "stash_";

/// Legacy prefixes and the v2022 (Stash v0.21+) prefix that replaces each, longest first so that
/// `stash_backup_session_` wins over `stash_backup_`.
const V2022_PREFIXES: [(&str, &str); 5] = [
    ("stash_backup_session_", "stash_appscode_com_backupsession_"),
    ("stash_backup_", "stash_appscode_com_backupsession_"),
    (
        "stash_restore_session_",
        "stash_appscode_com_restoresession_",
    ),
    ("stash_restore_", "stash_appscode_com_restoresession_"),
    ("stash_repository_", "stash_appscode_com_repository_"),
];

/// A gauge sample: what [`crate::Pushgateway::push`] sends, one line of the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub help: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Metric {
    /// One sample of gauge `name`.
    #[must_use]
    pub fn gauge(name: &str, help: &str, labels: &[(String, String)], value: f64) -> Self {
        Self {
            name: name.to_owned(),
            help: help.to_owned(),
            labels: labels.to_vec(),
            value,
        }
    }

    /// The sample under its legacy name and under its v2022 name (same help, labels and value):
    /// Stash v0.21+ pushes both, so dashboards written for either keep working.
    #[must_use]
    pub fn legacy_and_v2022(
        legacy_name: &str,
        help: &str,
        labels: &[(String, String)],
        value: f64,
    ) -> [Self; 2] {
        [
            Self::gauge(legacy_name, help, labels, value),
            Self::gauge(&v2022_name(legacy_name), help, labels, value),
        ]
    }

    /// The value of label `name`, if the sample has it.
    #[must_use]
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The v2022 name of a legacy metric name (see the table in the crate docs):
/// `stash_backup_session_success` → `stash_appscode_com_backupsession_success`,
/// `stash_backup_host_files_new` → `stash_appscode_com_backupsession_host_files_new`,
/// `stash_repository_size_bytes` → `stash_appscode_com_repository_size_bytes`.
/// A name outside those families keeps its `stash_` prefix replaced by `stash_appscode_com_`.
#[must_use]
pub fn v2022_name(legacy_name: &str) -> String {
    for (legacy, v2022) in V2022_PREFIXES {
        if let Some(rest) = legacy_name.strip_prefix(legacy) {
            return format!("{v2022}{rest}");
        }
    }
    let rest = legacy_name
        .strip_prefix(LEGACY_PREFIX)
        .unwrap_or(legacy_name);
    format!("stash_appscode_com_{rest}")
}

/// Adds `extra` labels (Stash's `--metrics-labels key=value`) to every sample; a key the sample
/// already has keeps its own value, because the fixed labels of §13.3 identify the series.
pub fn add_labels(metrics: &mut [Metric], extra: &[(String, String)]) {
    for metric in metrics {
        for (key, value) in extra {
            if metric.label(key).is_none() {
                metric.labels.push((key.clone(), value.clone()));
            }
        }
    }
}

/// Appends the sample under both names (see [`Metric::legacy_and_v2022`]).
pub(crate) fn push(
    metrics: &mut Vec<Metric>,
    legacy_name: &str,
    help: &str,
    labels: &[(String, String)],
    value: f64,
) {
    metrics.extend(Metric::legacy_and_v2022(legacy_name, help, labels, value));
}

/// A `*_success` or `integrity` gauge value.
pub(crate) fn bool_value(yes: bool) -> f64 {
    if yes { 1.0 } else { 0.0 }
}

#[allow(clippy::cast_precision_loss, reason = "a gauge value")]
pub(crate) fn count(n: usize) -> f64 {
    n as f64
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "gauge values in tests are exact in f64")]
mod tests {
    use super::*;

    #[test]
    fn v2022_names_replace_the_family_prefix_with_the_kind_of_the_session() {
        assert_eq!(
            v2022_name("stash_backup_session_success"),
            "stash_appscode_com_backupsession_success"
        );
        assert_eq!(
            v2022_name("stash_backup_last_success_time_seconds"),
            "stash_appscode_com_backupsession_last_success_time_seconds"
        );
        assert_eq!(
            v2022_name("stash_backup_host_data_size_bytes"),
            "stash_appscode_com_backupsession_host_data_size_bytes"
        );
        assert_eq!(
            v2022_name("stash_restore_session_duration_seconds"),
            "stash_appscode_com_restoresession_duration_seconds"
        );
        assert_eq!(
            v2022_name("stash_restore_target_host_count_total"),
            "stash_appscode_com_restoresession_target_host_count_total"
        );
        assert_eq!(
            v2022_name("stash_repository_snapshot_cleaned"),
            "stash_appscode_com_repository_snapshot_cleaned"
        );
    }

    #[test]
    fn extra_labels_are_added_without_overriding_the_fixed_ones() {
        let labels = [("namespace".to_owned(), "demo".to_owned())];
        let mut metrics =
            Metric::legacy_and_v2022("stash_repository_size_bytes", "h", &labels, 1.0);
        add_labels(
            &mut metrics,
            &[
                ("namespace".to_owned(), "other".to_owned()),
                ("team".to_owned(), "db".to_owned()),
            ],
        );
        for metric in &metrics {
            assert_eq!(metric.label("namespace"), Some("demo"));
            assert_eq!(metric.label("team"), Some("db"));
        }
    }
}
