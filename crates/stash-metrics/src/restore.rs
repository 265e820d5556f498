//! Restore metrics: one session, each target, each host (§13.2). On failure only the `*_success`
//! gauge is pushed, at 0; durations and counts only on success.

use std::time::Duration;

use stash_api::phase::HostRestorePhase;
use stash_api::units::parse_go_duration;
use stash_api::v1beta1::HostRestoreStats;

use crate::labels::{SessionLabels, TargetLabels, host_labels, session_labels, target_labels};
use crate::metric::{Metric, bool_value, count, push};

pub const SESSION_SUCCESS: &str = "stash_restore_session_success";
pub const SESSION_DURATION_SECONDS: &str = "stash_restore_session_duration_seconds";
pub const TARGET_COUNT_TOTAL: &str = "stash_restore_target_count_total";

pub const TARGET_SUCCESS: &str = "stash_restore_target_success";
pub const TARGET_HOST_COUNT_TOTAL: &str = "stash_restore_target_host_count_total";

pub const HOST_RESTORE_SUCCESS: &str = "stash_restore_host_restore_success";
pub const HOST_RESTORE_DURATION_SECONDS: &str = "stash_restore_host_restore_duration_seconds";

/// Session gauges: `success`; on success also duration and target count.
#[must_use]
pub fn session(
    l: &SessionLabels,
    succeeded: bool,
    duration: Duration,
    target_count: usize,
) -> Vec<Metric> {
    let labels = session_labels(l);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        SESSION_SUCCESS,
        "Indicates whether the entire restore session was succeeded or not",
        &labels,
        bool_value(succeeded),
    );
    if succeeded {
        push(
            &mut metrics,
            SESSION_DURATION_SECONDS,
            "Indicates the total time taken to complete the entire restore session",
            &labels,
            duration.as_secs_f64(),
        );
        push(
            &mut metrics,
            TARGET_COUNT_TOTAL,
            "Indicates the total number of targets that were restored in this restore session",
            &labels,
            count(target_count),
        );
    }
    metrics
}

/// Target gauges: `success`; on success also the host count.
#[must_use]
pub fn target(
    l: &SessionLabels,
    t: &TargetLabels,
    succeeded: bool,
    host_count: usize,
) -> Vec<Metric> {
    let labels = target_labels(l, t);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        TARGET_SUCCESS,
        "Indicates whether the restore for a target has succeeded or not",
        &labels,
        bool_value(succeeded),
    );
    if succeeded {
        push(
            &mut metrics,
            TARGET_HOST_COUNT_TOTAL,
            "Indicates the total number of hosts that were restored for this restore target",
            &labels,
            count(host_count),
        );
    }
    metrics
}

/// Host gauges from the host's `stats[]` entry: `success` (1 only for phase `Succeeded`); on
/// success also its duration, parsed back from the status string (left out, with a warning, if
/// it does not parse).
#[must_use]
pub fn host(l: &SessionLabels, t: &TargetLabels, stats: &HostRestoreStats) -> Vec<Metric> {
    let hostname = stats.hostname.as_deref().unwrap_or_default();
    let labels = host_labels(l, t, hostname);
    let succeeded = stats.phase == Some(HostRestorePhase::Succeeded);
    let mut metrics = Vec::new();
    push(
        &mut metrics,
        HOST_RESTORE_SUCCESS,
        "Indicates whether the restore process was succeeded for a host",
        &labels,
        bool_value(succeeded),
    );
    if !succeeded {
        return metrics;
    }
    let Some(seconds) = stats.duration.as_deref().and_then(parse_go_duration) else {
        tracing::warn!(
            invoker = %l.invoker_name,
            namespace = %l.namespace,
            host = hostname,
            duration = ?stats.duration,
            "the restore duration in the session status does not parse; its metric is not pushed"
        );
        return metrics;
    };
    push(
        &mut metrics,
        HOST_RESTORE_DURATION_SECONDS,
        "Indicates the total time taken to complete the restore process for a host",
        &labels,
        seconds,
    );
    metrics
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "gauge values in tests are exact in f64")]
mod tests {
    use super::*;
    use crate::metric::v2022_name;

    fn session_labels() -> SessionLabels {
        SessionLabels {
            invoker_kind: "RestoreSession".into(),
            invoker_name: "restore-web".into(),
            namespace: "demo".into(),
            driver: "Restic".into(),
            repository: Some("s3-repo".into()),
        }
    }

    fn target_labels() -> TargetLabels {
        TargetLabels {
            kind: "StatefulSet".into(),
            group: "apps".into(),
            name: "db".into(),
        }
    }

    fn names(metrics: &[Metric]) -> Vec<&str> {
        metrics.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn a_succeeded_restore_session_pushes_success_duration_and_target_count_under_both_names() {
        let metrics = session(&session_labels(), true, Duration::from_secs(30), 1);
        assert_eq!(
            names(&metrics),
            [
                SESSION_SUCCESS,
                "stash_appscode_com_restoresession_success",
                SESSION_DURATION_SECONDS,
                "stash_appscode_com_restoresession_duration_seconds",
                TARGET_COUNT_TOTAL,
                "stash_appscode_com_restoresession_target_count_total",
            ]
        );
        assert_eq!(
            metrics.iter().map(|m| m.value).collect::<Vec<_>>(),
            [1.0, 1.0, 30.0, 30.0, 1.0, 1.0]
        );
    }

    #[test]
    fn a_failed_restore_session_or_target_pushes_only_success_zero() {
        let metrics = session(&session_labels(), false, Duration::from_secs(30), 1);
        assert_eq!(
            names(&metrics),
            [SESSION_SUCCESS, &v2022_name(SESSION_SUCCESS)]
        );
        assert!(metrics.iter().all(|m| m.value == 0.0));
        let metrics = target(&session_labels(), &target_labels(), false, 3);
        assert_eq!(
            names(&metrics),
            [TARGET_SUCCESS, &v2022_name(TARGET_SUCCESS)]
        );
        assert!(metrics.iter().all(|m| m.value == 0.0));
    }

    #[test]
    fn a_restored_host_has_success_and_duration_with_the_hostname_label() {
        let stats = HostRestoreStats {
            hostname: Some("db-1".into()),
            phase: Some(HostRestorePhase::Succeeded),
            duration: Some("1m5s".into()),
            ..HostRestoreStats::default()
        };
        let metrics = host(&session_labels(), &target_labels(), &stats);
        assert_eq!(
            names(&metrics),
            [
                HOST_RESTORE_SUCCESS,
                "stash_appscode_com_restoresession_host_restore_success",
                HOST_RESTORE_DURATION_SECONDS,
                "stash_appscode_com_restoresession_host_restore_duration_seconds",
            ]
        );
        assert_eq!(metrics[2].value, 65.0);
        assert_eq!(metrics[0].label("hostname"), Some("db-1"));
        assert_eq!(metrics[0].label("kind"), Some("StatefulSet"));
    }

    #[test]
    fn a_host_still_running_or_failed_pushes_only_success_zero() {
        for phase in [HostRestorePhase::Failed, HostRestorePhase::Running] {
            let stats = HostRestoreStats {
                hostname: Some("db-0".into()),
                phase: Some(phase),
                duration: Some("3s".into()),
                ..HostRestoreStats::default()
            };
            let metrics = host(&session_labels(), &target_labels(), &stats);
            assert_eq!(
                names(&metrics),
                [HOST_RESTORE_SUCCESS, &v2022_name(HOST_RESTORE_SUCCESS)]
            );
            assert!(metrics.iter().all(|m| m.value == 0.0));
        }
    }
}
