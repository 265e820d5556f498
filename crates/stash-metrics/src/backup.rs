//! Backup metrics: one session, each target, each host (§13.2). On failure only the `*_success`
//! gauge is pushed, at 0; durations, counts and times only on success.

use std::time::{Duration, SystemTime};

use stash_api::phase::HostBackupPhase;
use stash_api::units::{parse_go_duration, parse_processing_time, parse_size};
use stash_api::v1beta1::{HostBackupStats, SnapshotStats};

use crate::labels::{SessionLabels, TargetLabels, host_labels, session_labels, target_labels};
use crate::metric::{Metric, bool_value, count, push};

pub const SESSION_SUCCESS: &str = "stash_backup_session_success";
pub const SESSION_DURATION_SECONDS: &str = "stash_backup_session_duration_seconds";
pub const TARGET_COUNT_TOTAL: &str = "stash_backup_target_count_total";
pub const LAST_SUCCESS_TIME_SECONDS: &str = "stash_backup_last_success_time_seconds";

pub const TARGET_SUCCESS: &str = "stash_backup_target_success";
pub const TARGET_HOST_COUNT_TOTAL: &str = "stash_backup_target_host_count_total";
pub const TARGET_LAST_SUCCESS_TIME_SECONDS: &str = "stash_backup_target_last_success_time_seconds";

pub const HOST_BACKUP_SUCCESS: &str = "stash_backup_host_backup_success";
pub const HOST_BACKUP_DURATION_SECONDS: &str = "stash_backup_host_backup_duration_seconds";
pub const HOST_DATA_SIZE_BYTES: &str = "stash_backup_host_data_size_bytes";
pub const HOST_DATA_UPLOADED_BYTES: &str = "stash_backup_host_data_uploaded_bytes";
pub const HOST_DATA_PROCESSING_TIME_SECONDS: &str =
    "stash_backup_host_data_processing_time_seconds";
pub const HOST_FILES_TOTAL: &str = "stash_backup_host_files_total";
pub const HOST_FILES_NEW: &str = "stash_backup_host_files_new";
pub const HOST_FILES_MODIFIED: &str = "stash_backup_host_files_modified";
pub const HOST_FILES_UNMODIFIED: &str = "stash_backup_host_files_unmodified";

/// Session gauges: `success`; on success also duration, target count and last success time.
#[must_use]
pub fn session(
    l: &SessionLabels,
    succeeded: bool,
    duration: Duration,
    target_count: usize,
    finished_at: SystemTime,
) -> Vec<Metric> {
    let labels = session_labels(l);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        SESSION_SUCCESS,
        "Indicates whether the entire backup session was succeeded or not",
        &labels,
        bool_value(succeeded),
    );
    if succeeded {
        push(
            &mut metrics,
            SESSION_DURATION_SECONDS,
            "Indicates total time taken to complete the entire backup session",
            &labels,
            duration.as_secs_f64(),
        );
        push(
            &mut metrics,
            TARGET_COUNT_TOTAL,
            "Indicates the total number of targets that were backed up in this backup session",
            &labels,
            count(target_count),
        );
        push(
            &mut metrics,
            LAST_SUCCESS_TIME_SECONDS,
            "Indicates the time (in Unix epoch) when the last backup session was succeeded",
            &labels,
            unix_seconds(finished_at),
        );
    }
    metrics
}

/// Target gauges: `success`; on success also host count and last success time.
#[must_use]
pub fn target(
    l: &SessionLabels,
    t: &TargetLabels,
    succeeded: bool,
    host_count: usize,
    finished_at: SystemTime,
) -> Vec<Metric> {
    let labels = target_labels(l, t);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        TARGET_SUCCESS,
        "Indicates whether the backup for a target has succeeded or not",
        &labels,
        bool_value(succeeded),
    );
    if succeeded {
        push(
            &mut metrics,
            TARGET_HOST_COUNT_TOTAL,
            "Indicates the total number of hosts that was backed up for this target",
            &labels,
            count(host_count),
        );
        push(
            &mut metrics,
            TARGET_LAST_SUCCESS_TIME_SECONDS,
            "Indicates the time (in Unix epoch) when the last backup was successful for this target",
            &labels,
            unix_seconds(finished_at),
        );
    }
    metrics
}

/// Host gauges from the host's `stats[]` entry: `success` (1 only for phase `Succeeded`); on
/// success also its duration and, summed over its snapshots, sizes, processing time and file
/// counts, parsed back from the status strings. A figure whose string does not parse is left
/// out (with a warning) rather than pushed as a wrong 0.
#[must_use]
pub fn host(l: &SessionLabels, t: &TargetLabels, stats: &HostBackupStats) -> Vec<Metric> {
    let hostname = stats.hostname.as_deref().unwrap_or_default();
    let labels = host_labels(l, t, hostname);
    let succeeded = stats.phase == Some(HostBackupPhase::Succeeded);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        HOST_BACKUP_SUCCESS,
        "Indicates whether the backup for a host succeeded or not",
        &labels,
        bool_value(succeeded),
    );
    if !succeeded {
        return metrics;
    }
    let parsed = |field: &str, value: Option<f64>| {
        if value.is_none() {
            tracing::warn!(
                invoker = %l.invoker_name,
                namespace = %l.namespace,
                host = hostname,
                field,
                "a backup figure in the session status does not parse; its metric is not pushed"
            );
        }
        value
    };
    let duration = stats.duration.as_deref().and_then(parse_go_duration);
    if let Some(seconds) = parsed("duration", duration) {
        push(
            &mut metrics,
            HOST_BACKUP_DURATION_SECONDS,
            "Indicates total time taken to complete the backup process for a host",
            &labels,
            seconds,
        );
    }
    let snapshots = stats.snapshots.as_deref().unwrap_or_default();
    let sizes = [
        (
            HOST_DATA_SIZE_BYTES,
            "Total size of the target data to backup for a host (in bytes)",
            "snapshots[].totalSize",
            sum(snapshots, |s| s.total_size.as_deref().and_then(parse_size)),
        ),
        (
            HOST_DATA_UPLOADED_BYTES,
            "Amount of data uploaded to the repository for a host (in bytes)",
            "snapshots[].uploaded",
            sum(snapshots, |s| s.uploaded.as_deref().and_then(parse_size)),
        ),
        (
            HOST_DATA_PROCESSING_TIME_SECONDS,
            "Total time taken to process the target data for a host",
            "snapshots[].processingTime",
            sum(snapshots, |s| {
                s.processing_time.as_deref().and_then(parse_processing_time)
            }),
        ),
    ];
    let files = [
        (
            HOST_FILES_TOTAL,
            "Total number of files that has been backed up for a host",
            "snapshots[].fileStats.totalFiles",
            sum(snapshots, |s| file_count(s, |f| f.total_files)),
        ),
        (
            HOST_FILES_NEW,
            "Total number of new files that has been created since last backup for a host",
            "snapshots[].fileStats.newFiles",
            sum(snapshots, |s| file_count(s, |f| f.new_files)),
        ),
        (
            HOST_FILES_MODIFIED,
            "Total number of files that has been modified since last backup for a host",
            "snapshots[].fileStats.modifiedFiles",
            sum(snapshots, |s| file_count(s, |f| f.modified_files)),
        ),
        (
            HOST_FILES_UNMODIFIED,
            "Total number of files that has not been changed since last backup for a host",
            "snapshots[].fileStats.unmodifiedFiles",
            sum(snapshots, |s| file_count(s, |f| f.unmodified_files)),
        ),
    ];
    for (name, help, field, total) in sizes.into_iter().chain(files) {
        #[allow(clippy::cast_precision_loss, reason = "a gauge value")]
        if let Some(total) = parsed(field, total.map(|t| t as f64)) {
            push(&mut metrics, name, help, &labels, total);
        }
    }
    metrics
}

/// The sum of `figure` over the snapshots; `None` if any snapshot lacks it or it does not parse.
fn sum(snapshots: &[SnapshotStats], figure: impl Fn(&SnapshotStats) -> Option<u64>) -> Option<u64> {
    snapshots.iter().map(figure).sum()
}

fn file_count(
    snapshot: &SnapshotStats,
    field: impl Fn(&stash_api::v1beta1::FileStats) -> Option<i64>,
) -> Option<u64> {
    snapshot
        .file_stats
        .as_ref()
        .and_then(field)
        .and_then(|n| u64::try_from(n).ok())
}

/// Seconds since the Unix epoch (0 for a clock before it).
fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "gauge values in tests are exact in f64")]
mod tests {
    use super::*;
    use crate::metric::v2022_name;
    use stash_api::v1beta1::FileStats;

    fn session_labels() -> SessionLabels {
        SessionLabels {
            invoker_kind: "BackupConfiguration".into(),
            invoker_name: "deployment-backup".into(),
            namespace: "demo".into(),
            driver: "Restic".into(),
            repository: Some("gcs-repo".into()),
        }
    }

    fn target_labels() -> TargetLabels {
        TargetLabels {
            kind: "Deployment".into(),
            group: "apps".into(),
            name: "stash-demo".into(),
        }
    }

    fn names(metrics: &[Metric]) -> Vec<&str> {
        metrics.iter().map(|m| m.name.as_str()).collect()
    }

    fn value(metrics: &[Metric], name: &str) -> f64 {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", names(metrics)))
            .value
    }

    fn label_names(metric: &Metric) -> Vec<&str> {
        metric.labels.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn succeeded_host() -> HostBackupStats {
        let snapshot = |size: &str, uploaded: &str, time: &str, files: [i64; 4]| SnapshotStats {
            name: Some("1a2b3c4d".into()),
            path: Some("/source/data".into()),
            total_size: Some(size.into()),
            uploaded: Some(uploaded.into()),
            processing_time: Some(time.into()),
            file_stats: Some(FileStats {
                total_files: Some(files[0]),
                new_files: Some(files[1]),
                modified_files: Some(files[2]),
                unmodified_files: Some(files[3]),
            }),
        };
        HostBackupStats {
            hostname: Some("host-0".into()),
            phase: Some(HostBackupPhase::Succeeded),
            duration: Some("2m40s".into()),
            error: None,
            snapshots: Some(vec![
                snapshot("1.500 KiB", "512 B", "0:07", [10, 2, 3, 5]),
                snapshot("2.000 MiB", "1.000 MiB", "2:00", [5, 5, 0, 0]),
            ]),
            progress: None,
        }
    }

    #[test]
    fn a_succeeded_session_pushes_success_duration_target_count_and_last_success_time_under_both_names()
     {
        let finished = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let metrics = session(
            &session_labels(),
            true,
            Duration::from_millis(42_500),
            2,
            finished,
        );
        let legacy = [
            SESSION_SUCCESS,
            SESSION_DURATION_SECONDS,
            TARGET_COUNT_TOTAL,
            LAST_SUCCESS_TIME_SECONDS,
        ];
        let expected: Vec<String> = legacy
            .iter()
            .flat_map(|n| [(*n).to_owned(), v2022_name(n)])
            .collect();
        assert_eq!(names(&metrics), expected);
        assert_eq!(
            names(&metrics)[1],
            "stash_appscode_com_backupsession_success"
        );
        assert!((value(&metrics, SESSION_SUCCESS) - 1.0).abs() < f64::EPSILON);
        assert!((value(&metrics, SESSION_DURATION_SECONDS) - 42.5).abs() < 1e-9);
        assert!((value(&metrics, TARGET_COUNT_TOTAL) - 2.0).abs() < f64::EPSILON);
        assert!((value(&metrics, LAST_SUCCESS_TIME_SECONDS) - 1.7e9).abs() < 1e-3);
        for metric in &metrics {
            assert_eq!(
                label_names(metric),
                [
                    "invoker_kind",
                    "invoker_name",
                    "namespace",
                    "driver",
                    "repository"
                ]
            );
            assert_eq!(metric.label("repository"), Some("gcs-repo"));
        }
    }

    #[test]
    fn a_failed_session_pushes_only_success_zero() {
        let metrics = session(
            &session_labels(),
            false,
            Duration::from_secs(9),
            1,
            SystemTime::now(),
        );
        assert_eq!(
            names(&metrics),
            [SESSION_SUCCESS, "stash_appscode_com_backupsession_success"]
        );
        assert!(metrics.iter().all(|m| m.value == 0.0));
    }

    #[test]
    fn target_metrics_add_kind_group_and_name_and_a_failed_target_pushes_only_success_zero() {
        let ok = target(
            &session_labels(),
            &target_labels(),
            true,
            3,
            SystemTime::now(),
        );
        assert_eq!(
            names(&ok),
            [
                TARGET_SUCCESS,
                "stash_appscode_com_backupsession_target_success",
                TARGET_HOST_COUNT_TOTAL,
                "stash_appscode_com_backupsession_target_host_count_total",
                TARGET_LAST_SUCCESS_TIME_SECONDS,
                "stash_appscode_com_backupsession_target_last_success_time_seconds",
            ]
        );
        assert!((value(&ok, TARGET_HOST_COUNT_TOTAL) - 3.0).abs() < f64::EPSILON);
        assert_eq!(
            label_names(&ok[0]),
            [
                "invoker_kind",
                "invoker_name",
                "namespace",
                "driver",
                "repository",
                "kind",
                "group",
                "name"
            ]
        );
        assert_eq!(ok[0].label("group"), Some("apps"));

        let failed = target(
            &session_labels(),
            &target_labels(),
            false,
            3,
            SystemTime::now(),
        );
        assert_eq!(
            names(&failed),
            [TARGET_SUCCESS, &v2022_name(TARGET_SUCCESS)]
        );
        assert!(failed.iter().all(|m| m.value == 0.0));
    }

    #[test]
    fn host_sizes_times_and_file_counts_are_summed_over_snapshots_from_the_status_strings() {
        let metrics = host(&session_labels(), &target_labels(), &succeeded_host());
        assert_eq!(metrics.len(), 2 * 9);
        let expect = [
            (HOST_BACKUP_SUCCESS, 1.0),
            (HOST_BACKUP_DURATION_SECONDS, 160.0),
            (HOST_DATA_SIZE_BYTES, 1536.0 + 2.0 * 1024.0 * 1024.0),
            (HOST_DATA_UPLOADED_BYTES, 512.0 + 1024.0 * 1024.0),
            (HOST_DATA_PROCESSING_TIME_SECONDS, 127.0),
            (HOST_FILES_TOTAL, 15.0),
            (HOST_FILES_NEW, 7.0),
            (HOST_FILES_MODIFIED, 3.0),
            (HOST_FILES_UNMODIFIED, 5.0),
        ];
        for (name, expected) in expect {
            assert!(
                (value(&metrics, name) - expected).abs() < 1e-9,
                "{name}: {} != {expected}",
                value(&metrics, name)
            );
            assert!(
                (value(&metrics, &v2022_name(name)) - expected).abs() < 1e-9,
                "v2022 {name}"
            );
        }
        for metric in &metrics {
            assert_eq!(
                label_names(metric),
                [
                    "invoker_kind",
                    "invoker_name",
                    "namespace",
                    "driver",
                    "repository",
                    "kind",
                    "group",
                    "name",
                    "hostname"
                ]
            );
            assert_eq!(metric.label("hostname"), Some("host-0"));
        }
    }

    #[test]
    fn a_failed_host_pushes_only_success_zero() {
        let stats = HostBackupStats {
            phase: Some(HostBackupPhase::Failed),
            error: Some("repository locked".into()),
            ..succeeded_host()
        };
        let metrics = host(&session_labels(), &target_labels(), &stats);
        assert_eq!(
            names(&metrics),
            [
                HOST_BACKUP_SUCCESS,
                "stash_appscode_com_backupsession_host_backup_success"
            ]
        );
        assert!(metrics.iter().all(|m| m.value == 0.0));
    }

    #[test]
    fn a_host_figure_that_does_not_parse_is_left_out_instead_of_pushed_as_zero() {
        let mut stats = succeeded_host();
        stats.snapshots.as_mut().unwrap()[1].total_size = Some("lots".into());
        let metrics = host(&session_labels(), &target_labels(), &stats);
        assert!(!names(&metrics).contains(&HOST_DATA_SIZE_BYTES));
        assert!(names(&metrics).contains(&HOST_DATA_UPLOADED_BYTES));
    }
}
