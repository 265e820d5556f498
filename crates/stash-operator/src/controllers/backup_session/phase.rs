//! §5.4: the phase of each target and of the session, recomputed from the status on every write, and
//! whether the session is ready for its final steps (§9.2 step 2). Pure: the status in, the answer out.

use jiff::Timestamp;
use stash_api::condition::{Condition, ConditionStatus, ConditionType};
use stash_api::phase::{BackupSessionPhase, HostBackupPhase, TargetPhase};
use stash_api::v1beta1::{BackupSessionStatus, BackupTargetStatus};

/// The post-backup actions of the last target, each answered by one session condition (protocol step 6).
pub const POST_BACKUP_ACTION_CONDITIONS: [ConditionType; 3] = [
    ConditionType::RetentionPolicyApplied,
    ConditionType::RepositoryIntegrityVerified,
    ConditionType::RepositoryMetricsPushed,
];

/// Target-level conditions whose `False` fails the target.
const TARGET_FAILURE_CONDITIONS: [ConditionType; 3] = [
    ConditionType::BackupExecutorEnsured,
    ConditionType::PreBackupHookExecutionSucceeded,
    ConditionType::PostBackupHookExecutionSucceeded,
];

fn has_status(
    conditions: Option<&[Condition]>,
    type_: ConditionType,
    status: ConditionStatus,
) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == type_ && c.status == status)
}

/// Whether `type_` is `True` in `conditions`.
#[must_use]
pub fn is_true(conditions: Option<&[Condition]>, type_: ConditionType) -> bool {
    has_status(conditions, type_, ConditionStatus::True)
}

/// Whether `type_` is `False` in `conditions`.
#[must_use]
pub fn is_false(conditions: Option<&[Condition]>, type_: ConditionType) -> bool {
    has_status(conditions, type_, ConditionStatus::False)
}

/// Whether `conditions` hold `type_` with any status.
#[must_use]
pub fn has(conditions: Option<&[Condition]>, type_: ConditionType) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == type_)
}

/// Hosts of a target whose stats entry is final: (succeeded, failed).
#[must_use]
pub fn final_hosts(target: &BackupTargetStatus) -> (i32, i32) {
    target
        .stats
        .iter()
        .flatten()
        .fold((0, 0), |(ok, failed), host| match host.phase {
            Some(HostBackupPhase::Succeeded) => (ok + 1, failed),
            Some(HostBackupPhase::Failed) => (ok, failed + 1),
            None => (ok, failed),
        })
}

/// Whether every host of the target has a final stats entry.
#[must_use]
pub fn all_hosts_final(target: &BackupTargetStatus) -> bool {
    let (ok, failed) = final_hosts(target);
    target.total_hosts.is_some_and(|total| ok + failed >= total)
}

/// §5.4, target: Failed on a False executor/hook condition; Pending without `totalHosts`; once every
/// host is final, Failed if one failed, else Succeeded; Running before.
#[must_use]
pub fn target_phase(target: &BackupTargetStatus) -> TargetPhase {
    let conditions = target.conditions.as_deref();
    if TARGET_FAILURE_CONDITIONS
        .into_iter()
        .any(|t| is_false(conditions, t))
    {
        return TargetPhase::Failed;
    }
    let Some(total) = target.total_hosts else {
        return TargetPhase::Pending;
    };
    let (ok, failed) = final_hosts(target);
    if ok + failed >= total {
        if failed > 0 {
            TargetPhase::Failed
        } else {
            TargetPhase::Succeeded
        }
    } else {
        TargetPhase::Running
    }
}

fn target_completed(target: &BackupTargetStatus) -> bool {
    matches!(
        target_phase(target),
        TargetPhase::Succeeded | TargetPhase::Failed
    )
}

/// §5.4, session, rule by rule in Stash's order.
#[must_use]
pub fn session_phase(status: &BackupSessionStatus) -> BackupSessionPhase {
    let conditions = status.conditions.as_deref();
    if is_false(conditions, ConditionType::MetricsPushed) {
        return BackupSessionPhase::Failed;
    }
    if is_true(conditions, ConditionType::BackupSkipped) {
        return BackupSessionPhase::Skipped;
    }
    let metrics_pushed = is_true(conditions, ConditionType::MetricsPushed);
    if metrics_pushed
        && (is_true(conditions, ConditionType::DeadlineExceeded)
            || is_false(conditions, ConditionType::BackupHistoryCleaned)
            || is_false(conditions, ConditionType::GlobalPreBackupHookSucceeded)
            || is_false(conditions, ConditionType::GlobalPostBackupHookSucceeded))
    {
        return BackupSessionPhase::Failed;
    }
    let targets = status.targets.as_deref().unwrap_or_default();
    if targets
        .iter()
        .all(|t| target_phase(t) == TargetPhase::Pending)
    {
        // Also true of an empty list.
        return BackupSessionPhase::Pending;
    }
    if targets.iter().all(target_completed) && metrics_pushed {
        let failed = targets
            .iter()
            .any(|t| target_phase(t) == TargetPhase::Failed)
            || POST_BACKUP_ACTION_CONDITIONS
                .into_iter()
                .any(|t| is_false(conditions, t));
        return if failed {
            BackupSessionPhase::Failed
        } else {
            BackupSessionPhase::Succeeded
        };
    }
    BackupSessionPhase::Running
}

/// Whether the agent is done with every target (protocol step 7): each target completed, and the target
/// that carries `postBackupActions` — once its hosts are all final, since only then does the last host
/// run them — has a condition for each action.
#[must_use]
pub fn backup_completed(status: &BackupSessionStatus) -> bool {
    let targets = status.targets.as_deref().unwrap_or_default();
    let conditions = status.conditions.as_deref();
    !targets.is_empty()
        && targets.iter().all(|t| {
            target_completed(t)
                && (t
                    .post_backup_actions
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
                    || !all_hosts_final(t)
                    || POST_BACKUP_ACTION_CONDITIONS
                        .into_iter()
                        .all(|c| has(conditions, c)))
        })
}

/// Whether `sessionDeadline` is set and `now` is past it.
#[must_use]
pub fn deadline_passed(status: &BackupSessionStatus, now: Timestamp) -> bool {
    status
        .session_deadline
        .as_ref()
        .is_some_and(|deadline| now >= deadline.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status from YAML, as the API server would hand it over.
    fn status(yaml: &str) -> BackupSessionStatus {
        serde_yaml::from_str(yaml).expect("a valid BackupSessionStatus fixture")
    }

    fn target(yaml: &str) -> BackupTargetStatus {
        serde_yaml::from_str(yaml).expect("a valid BackupTargetStatus fixture")
    }

    const DONE_TARGET: &str = "
      targets:
      - ref: {apiVersion: apps/v1, kind: Deployment, name: stash-demo, namespace: demo}
        totalHosts: 1
        postBackupActions: [ApplyRetentionPolicy, VerifyRepositoryIntegrity, SendRepositoryMetrics]
        stats:
        - {hostname: host-0, phase: Succeeded, duration: 3s}
    ";

    fn with_conditions(base: &str, conditions: &[(&str, &str)]) -> BackupSessionStatus {
        let mut s = status(base);
        s.conditions = Some(
            conditions
                .iter()
                .map(|(t, st)| {
                    serde_yaml::from_str(&format!("{{type: {t}, status: \"{st}\"}}")).unwrap()
                })
                .collect(),
        );
        s
    }

    const POST_ACTIONS_DONE: [(&str, &str); 3] = [
        ("RetentionPolicyApplied", "True"),
        ("RepositoryIntegrityVerified", "True"),
        ("RepositoryMetricsPushed", "True"),
    ];

    #[test]
    fn a_target_with_a_false_executor_or_hook_condition_is_failed_even_without_hosts() {
        for condition in [
            "BackupExecutorEnsured",
            "PreBackupHookExecutionSucceeded",
            "PostBackupHookExecutionSucceeded",
        ] {
            let t = target(&format!(
                "{{ref: {{kind: Deployment, name: d}}, conditions: [{{type: {condition}, status: \"False\"}}]}}"
            ));
            assert_eq!(target_phase(&t), TargetPhase::Failed, "{condition}");
        }
    }

    #[test]
    fn a_target_without_total_hosts_is_pending() {
        assert_eq!(
            target_phase(&target("{ref: {kind: Deployment, name: d}}")),
            TargetPhase::Pending
        );
    }

    #[test]
    fn a_target_is_running_until_every_host_has_a_final_entry() {
        let t = target(
            "
            ref: {kind: StatefulSet, name: s}
            totalHosts: 3
            stats:
            - {hostname: host-0, phase: Succeeded}
            - {hostname: host-1, progress: {filesDone: 3}}
            ",
        );
        assert_eq!(final_hosts(&t), (1, 0));
        assert_eq!(target_phase(&t), TargetPhase::Running);
    }

    #[test]
    fn a_target_whose_hosts_all_finished_fails_if_one_failed_and_succeeds_otherwise() {
        let failed = target(
            "
            ref: {kind: StatefulSet, name: s}
            totalHosts: 2
            stats:
            - {hostname: host-0, phase: Succeeded}
            - {hostname: host-1, phase: Failed, error: disk gone}
            ",
        );
        assert_eq!(target_phase(&failed), TargetPhase::Failed);
        let succeeded = target(
            "{ref: {kind: Deployment, name: d}, totalHosts: 1, stats: [{hostname: host-0, phase: Succeeded}]}",
        );
        assert_eq!(target_phase(&succeeded), TargetPhase::Succeeded);
    }

    #[test]
    fn a_false_metrics_pushed_fails_the_session_before_any_other_rule() {
        let s = with_conditions(
            DONE_TARGET,
            &[("MetricsPushed", "False"), ("BackupSkipped", "True")],
        );
        assert_eq!(session_phase(&s), BackupSessionPhase::Failed);
    }

    #[test]
    fn a_skipped_session_is_skipped_without_targets() {
        let s = with_conditions(
            "{}",
            &[("BackupSkipped", "True"), ("MetricsPushed", "True")],
        );
        assert_eq!(session_phase(&s), BackupSessionPhase::Skipped);
    }

    #[test]
    fn deadline_history_and_global_hook_failures_fail_the_session_once_metrics_are_pushed() {
        for (condition, status) in [
            ("DeadlineExceeded", "True"),
            ("BackupHistoryCleaned", "False"),
            ("GlobalPreBackupHookSucceeded", "False"),
            ("GlobalPostBackupHookSucceeded", "False"),
        ] {
            let mut conditions = POST_ACTIONS_DONE.to_vec();
            conditions.push((condition, status));
            let before = with_conditions(DONE_TARGET, &conditions);
            assert_eq!(
                session_phase(&before),
                BackupSessionPhase::Running,
                "{condition} before MetricsPushed"
            );
            conditions.push(("MetricsPushed", "True"));
            let after = with_conditions(DONE_TARGET, &conditions);
            assert_eq!(
                session_phase(&after),
                BackupSessionPhase::Failed,
                "{condition}"
            );
        }
    }

    #[test]
    fn a_session_without_targets_or_with_only_pending_targets_is_pending() {
        assert_eq!(session_phase(&status("{}")), BackupSessionPhase::Pending);
        let pending = status("targets: [{ref: {kind: Deployment, name: d}}]");
        assert_eq!(session_phase(&pending), BackupSessionPhase::Pending);
    }

    #[test]
    fn a_finished_session_stays_running_until_the_operator_pushed_its_metrics() {
        let s = with_conditions(DONE_TARGET, &POST_ACTIONS_DONE);
        assert!(backup_completed(&s));
        assert_eq!(session_phase(&s), BackupSessionPhase::Running);
        let mut conditions = POST_ACTIONS_DONE.to_vec();
        conditions.push(("MetricsPushed", "True"));
        assert_eq!(
            session_phase(&with_conditions(DONE_TARGET, &conditions)),
            BackupSessionPhase::Succeeded
        );
    }

    #[test]
    fn a_failed_target_or_a_failed_post_backup_action_fails_the_completed_session() {
        let failed_host = "
          targets:
          - ref: {kind: Deployment, name: d}
            totalHosts: 1
            stats: [{hostname: host-0, phase: Failed, error: boom}]
        ";
        let s = with_conditions(failed_host, &[("MetricsPushed", "True")]);
        assert_eq!(session_phase(&s), BackupSessionPhase::Failed);
        for action in [
            "RetentionPolicyApplied",
            "RepositoryIntegrityVerified",
            "RepositoryMetricsPushed",
        ] {
            let mut conditions: Vec<(&str, &str)> = POST_ACTIONS_DONE
                .iter()
                .copied()
                .filter(|(t, _)| *t != action)
                .collect();
            conditions.push((action, "False"));
            conditions.push(("MetricsPushed", "True"));
            assert_eq!(
                session_phase(&with_conditions(DONE_TARGET, &conditions)),
                BackupSessionPhase::Failed,
                "{action}"
            );
        }
    }

    #[test]
    fn a_session_with_a_running_target_is_running() {
        let s = status(
            "
            targets:
            - {ref: {kind: Deployment, name: d}, totalHosts: 1}
            - {ref: {kind: Deployment, name: e}}
            ",
        );
        assert_eq!(session_phase(&s), BackupSessionPhase::Running);
    }

    #[test]
    fn the_backup_is_not_completed_until_each_post_backup_action_has_a_condition() {
        let two_of_three = with_conditions(DONE_TARGET, &POST_ACTIONS_DONE[..2]);
        assert!(!backup_completed(&two_of_three));
        assert!(!backup_completed(&status("{}")));
        // A target failed before its hosts ran: nobody will run the actions, so nothing to wait for.
        let failed_early = status(
            "
            targets:
            - ref: {kind: Deployment, name: d}
              totalHosts: 1
              postBackupActions: [ApplyRetentionPolicy]
              conditions: [{type: BackupExecutorEnsured, status: \"False\"}]
            ",
        );
        assert!(backup_completed(&failed_early));
    }

    #[test]
    fn the_deadline_passes_at_its_timestamp() {
        let s = status("sessionDeadline: 2026-12-01T10:00:00Z");
        assert!(!deadline_passed(
            &s,
            "2026-12-01T09:59:59Z".parse().unwrap()
        ));
        assert!(deadline_passed(&s, "2026-12-01T10:00:00Z".parse().unwrap()));
        assert!(!deadline_passed(
            &status("{}"),
            "2030-01-01T00:00:00Z".parse().unwrap()
        ));
    }
}
