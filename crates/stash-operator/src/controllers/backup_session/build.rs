//! Stage 3: what the operator writes when a session starts (§9.2 steps 6–7, protocol step 3): one target
//! entry per invoker target with `totalHosts` (§8.5) and the pre/post-backup actions, and the session
//! deadline. Pure: the invoker and its workloads in, the status parts out.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stash_api::common::{Driver, TargetRef};
use stash_api::condition::{ConditionType, reason};
use stash_api::phase::TargetPhase;
use stash_api::units::format_go_duration;
use stash_api::v1beta1::{BackupSessionStatus, BackupTargetStatus};

use super::phase::{session_phase, target_phase};
use super::status::{condition, set_condition};
use crate::invoker::{BackupInvoker, BackupTargetInfo};
use crate::workload::Workload;

/// Pre-backup action of the first target (§5.5).
pub const INITIALIZE_BACKEND_REPOSITORY: &str = "InitializeBackendRepository";
/// Post-backup actions of the last target, in the order the agent runs them (§5.5).
pub const POST_BACKUP_ACTIONS: [&str; 3] = [
    "ApplyRetentionPolicy",
    "VerifyRepositoryIntegrity",
    "SendRepositoryMetrics",
];
/// `BackupExecutorEnsured` reasons, as Stash writes them.
pub const EXECUTOR_ENSURED: &str = "SuccessfullyEnsuredBackupExecutor";
pub const EXECUTOR_NOT_ENSURED: &str = "FailedToEnsureBackupExecutor";

/// `BackupHistoryCleaned` and `MetricsPushed` reasons, as Stash writes them.
pub const HISTORY_CLEANED: &str = "SuccessfullyCleanedBackupHistory";
pub const HISTORY_NOT_CLEANED: &str = "FailedToCleanBackupHistory";
pub const METRICS_PUSHED: &str = "SuccessfullyPushedMetrics";
pub const METRICS_NOT_PUSHED: &str = "FailedToPushMetrics";

/// What the final steps of a session found (§9.2 step 2): each `None` when the step did not run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `BackupSkipped`: why the session was skipped.
    pub skipped: Option<String>,
    /// `DeadlineExceeded`: the message.
    pub deadline_exceeded: Option<String>,
    /// `BackupHistoryCleaned`: the deleted sessions, or the error.
    pub history: Option<Result<Vec<String>, String>>,
    /// `MetricsPushed`: the error, if the push failed.
    pub metrics: Option<Result<(), String>>,
}

/// Writes `outcome` into `status` and concludes it: the conditions, each target's phase, the session
/// phase (§5.4), and `sessionDuration` the first time the phase is final.
pub fn conclude(
    status: &mut BackupSessionStatus,
    outcome: &Outcome,
    created: Timestamp,
    now: Timestamp,
) {
    let conditions = &mut status.conditions;
    if let Some(message) = &outcome.skipped {
        set_condition(
            conditions,
            condition(
                ConditionType::BackupSkipped,
                true,
                reason::SKIPPED_TAKING_NEW_BACKUP,
                message.clone(),
                now,
            ),
        );
    }
    if let Some(message) = &outcome.deadline_exceeded {
        set_condition(
            conditions,
            condition(
                ConditionType::DeadlineExceeded,
                true,
                reason::FAILED_TO_COMPLETE_WITHIN_DEADLINE,
                message.clone(),
                now,
            ),
        );
    }
    match &outcome.history {
        None => {}
        Some(Ok(deleted)) => set_condition(
            conditions,
            condition(
                ConditionType::BackupHistoryCleaned,
                true,
                HISTORY_CLEANED,
                if deleted.is_empty() {
                    "No old BackupSession beyond backupHistoryLimit.".to_owned()
                } else {
                    format!(
                        "Deleted the BackupSessions beyond backupHistoryLimit: {}.",
                        deleted.join(", ")
                    )
                },
                now,
            ),
        ),
        Some(Err(message)) => set_condition(
            conditions,
            condition(
                ConditionType::BackupHistoryCleaned,
                false,
                HISTORY_NOT_CLEANED,
                message.clone(),
                now,
            ),
        ),
    }
    match &outcome.metrics {
        None => {}
        Some(Ok(())) => set_condition(
            conditions,
            condition(
                ConditionType::MetricsPushed,
                true,
                METRICS_PUSHED,
                "Pushed the session and target metrics to the Pushgateway.".to_owned(),
                now,
            ),
        ),
        Some(Err(message)) => set_condition(
            conditions,
            condition(
                ConditionType::MetricsPushed,
                false,
                METRICS_NOT_PUSHED,
                message.clone(),
                now,
            ),
        ),
    }
    for target in status.targets.iter_mut().flatten() {
        target.phase = Some(target_phase(target));
    }
    let phase = session_phase(status);
    status.phase = Some(phase);
    if phase.is_final() && status.session_duration.is_none() {
        let elapsed = now
            .duration_since(created)
            .max(SignedDuration::ZERO)
            .unsigned_abs();
        status.session_duration = Some(format_go_duration(elapsed));
    }
}

/// How many hosts back a target up (§8.5), or why that is not known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hosts {
    Known(i32),
    /// A DaemonSet whose controller has not counted its nodes yet: look again shortly.
    NotScheduledYet,
    /// The target cannot be backed up; the message names it and the fix.
    Problem(String),
}

/// §8.5: Deployment and ReplicaSet 1 (one leader pod), StatefulSet `spec.replicas` (default 1),
/// DaemonSet `status.desiredNumberScheduled` (`None` while it is still 0).
#[must_use]
pub fn total_hosts(workload: &Workload) -> Option<i32> {
    match workload {
        Workload::Deployment(_) | Workload::ReplicaSet(_) => Some(1),
        Workload::StatefulSet(s) => Some(s.spec.replicas.unwrap_or(1)),
        Workload::DaemonSet(d) => desired_number_scheduled(d),
    }
}

fn desired_number_scheduled(daemon_set: &DaemonSet) -> Option<i32> {
    daemon_set
        .status
        .as_ref()
        .map(|s| s.desired_number_scheduled)
        .filter(|n| *n > 0)
}

/// The target's `ref` as the session records it: the namespace defaulted to the invoker's.
#[must_use]
pub fn target_ref(info: &BackupTargetInfo<'_>) -> Option<TargetRef> {
    let target = info.target?;
    Some(TargetRef {
        namespace: Some(info.target_namespace().to_owned()),
        ..target.reference.clone()
    })
}

/// How many hosts back up the target `info`, given its workload if it exists.
#[must_use]
pub fn hosts(info: &BackupTargetInfo<'_>, workload: Option<&Workload>) -> Hosts {
    let Some(target) = info.target else {
        return Hosts::Problem(format!(
            "{} names no target; set {}.ref",
            info.invoker,
            info.target_field()
        ));
    };
    let reference = &target.reference;
    let described = format!(
        "{} {}/{}",
        reference.kind,
        info.target_namespace(),
        reference.name
    );
    if info.invoker.driver() == Driver::Restic && crate::build::job::is_pvc(reference) {
        // §8.5: the backup Job is the one host of a standalone claim.
        return Hosts::Known(1);
    }
    if !info.uses_sidecar() {
        return Hosts::Problem(format!(
            "{described} ({}) is backed up by a backup Job or VolumeSnapshotter in Stash, which \
             stash-rs does not run yet; back up a Deployment, StatefulSet or DaemonSet with the \
             Restic driver and no task",
            info.target_field()
        ));
    }
    match workload {
        None => Hosts::Problem(format!(
            "{described} not found; create it or fix {}.ref",
            info.target_field()
        )),
        Some(w) => total_hosts(w).map_or(Hosts::NotScheduledYet, Hosts::Known),
    }
}

/// The target entries of a starting session, or `None` while a DaemonSet target has no hosts counted.
/// The first target gets `InitializeBackendRepository`, the last the post-backup actions (Restic only).
#[must_use]
pub fn initial_targets(
    invoker: BackupInvoker<'_>,
    workloads: &BTreeMap<usize, Workload>,
    now: Timestamp,
) -> Option<Vec<BackupTargetStatus>> {
    let infos: Vec<_> = invoker
        .targets()
        .into_iter()
        .filter(|i| i.target.is_some())
        .collect();
    let restic = invoker.driver() == Driver::Restic;
    let last = infos.len().saturating_sub(1);
    let mut out = Vec::with_capacity(infos.len());
    for (position, info) in infos.iter().enumerate() {
        let hosts = hosts(info, workloads.get(&info.index));
        let (total_hosts, phase, ensured) = match hosts {
            Hosts::NotScheduledYet => return None,
            Hosts::Known(n) => (
                Some(n),
                TargetPhase::Running,
                condition(
                    ConditionType::BackupExecutorEnsured,
                    true,
                    EXECUTOR_ENSURED,
                    format!(
                        "{} {} backs up {} host(s).",
                        if info.uses_sidecar() {
                            "The stash sidecar in"
                        } else {
                            "The backup Job of"
                        },
                        target_ref(info).map_or_else(String::new, |r| format!(
                            "{} {}/{}",
                            r.kind,
                            r.namespace.unwrap_or_default(),
                            r.name
                        )),
                        n
                    ),
                    now,
                ),
            ),
            Hosts::Problem(message) => (
                None,
                TargetPhase::Failed,
                condition(
                    ConditionType::BackupExecutorEnsured,
                    false,
                    EXECUTOR_NOT_ENSURED,
                    message,
                    now,
                ),
            ),
        };
        out.push(BackupTargetStatus {
            reference: target_ref(info),
            total_hosts,
            phase: Some(phase),
            stats: None,
            pre_backup_actions: (restic && position == 0)
                .then(|| vec![INITIALIZE_BACKEND_REPOSITORY.to_owned()]),
            post_backup_actions: (restic && position == last)
                .then(|| POST_BACKUP_ACTIONS.map(str::to_owned).to_vec()),
            conditions: Some(vec![ensured]),
        });
    }
    Some(out)
}

/// `creationTimestamp + timeOut` (Go duration), or the problem with `timeOut`.
pub fn session_deadline(created: Timestamp, time_out: &str) -> Result<Time, String> {
    let nanos = stash_api::validation::duration::parse(time_out)?;
    let nanos = i64::try_from(nanos).map_err(|_| format!("timeOut `{time_out}` is too long"))?;
    created
        .checked_add(SignedDuration::from_nanos(nanos))
        .map(Time)
        .map_err(|_| format!("timeOut `{time_out}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_api::condition::ConditionStatus;
    use stash_api::v1beta1::{BackupBatch, BackupConfiguration};

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn now() -> Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    fn workload(yaml: &str) -> Workload {
        Workload::from_yaml(yaml).unwrap()
    }

    fn deployment() -> Workload {
        workload(
            "{apiVersion: apps/v1, kind: Deployment, metadata: {name: stash-demo, namespace: demo}, spec: {selector: {}, template: {}}}",
        )
    }

    #[test]
    fn total_hosts_is_one_for_a_deployment_the_replicas_of_a_statefulset_and_the_scheduled_pods_of_a_daemonset()
     {
        assert_eq!(total_hosts(&deployment()), Some(1));
        let sts = workload(
            "{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s}, spec: {replicas: 3, selector: {}, serviceName: s, template: {}}}",
        );
        assert_eq!(total_hosts(&sts), Some(3));
        let sts_default = workload(
            "{apiVersion: apps/v1, kind: StatefulSet, metadata: {name: s}, spec: {selector: {}, serviceName: s, template: {}}}",
        );
        assert_eq!(total_hosts(&sts_default), Some(1));
        let ds = |desired: i32| {
            workload(&format!(
                "{{apiVersion: apps/v1, kind: DaemonSet, metadata: {{name: d}}, spec: {{selector: {{}}, template: {{}}}},
                  status: {{desiredNumberScheduled: {desired}, currentNumberScheduled: 0, numberMisscheduled: 0, numberReady: 0}}}}"
            ))
        };
        assert_eq!(total_hosts(&ds(2)), Some(2));
        assert_eq!(total_hosts(&ds(0)), None);
    }

    #[test]
    fn the_deployment_example_gets_one_running_target_with_both_action_lists() {
        let bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        let workloads = BTreeMap::from([(0, deployment())]);
        let targets =
            initial_targets(BackupInvoker::Configuration(&bc), &workloads, now()).unwrap();
        assert_eq!(targets.len(), 1);
        let t = &targets[0];
        assert_eq!(
            t.reference,
            Some(TargetRef {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: "stash-demo".to_owned(),
                namespace: Some("demo".to_owned()),
            })
        );
        assert_eq!(t.total_hosts, Some(1));
        assert_eq!(t.phase, Some(TargetPhase::Running));
        assert_eq!(
            t.pre_backup_actions.as_deref(),
            Some(&["InitializeBackendRepository".to_owned()][..])
        );
        assert_eq!(
            t.post_backup_actions.clone().unwrap(),
            [
                "ApplyRetentionPolicy",
                "VerifyRepositoryIntegrity",
                "SendRepositoryMetrics"
            ]
        );
        let ensured = &t.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (ensured.type_, ensured.status),
            (ConditionType::BackupExecutorEnsured, ConditionStatus::True)
        );
    }

    #[test]
    fn a_missing_workload_fails_its_target_naming_it_and_the_field() {
        let bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        let targets =
            initial_targets(BackupInvoker::Configuration(&bc), &BTreeMap::new(), now()).unwrap();
        let t = &targets[0];
        assert_eq!(t.total_hosts, None);
        assert_eq!(t.phase, Some(TargetPhase::Failed));
        let ensured = &t.conditions.as_ref().unwrap()[0];
        assert_eq!(ensured.status, ConditionStatus::False);
        assert_eq!(
            ensured.message.as_deref(),
            Some("Deployment demo/stash-demo not found; create it or fix spec.target.ref")
        );
    }

    #[test]
    fn a_daemonset_without_scheduled_pods_postpones_the_start() {
        let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        bc.spec.target.as_mut().unwrap().reference.kind = "DaemonSet".to_owned();
        let ds = workload(
            "{apiVersion: apps/v1, kind: DaemonSet, metadata: {name: stash-demo}, spec: {selector: {}, template: {}}}",
        );
        let workloads = BTreeMap::from([(0, ds)]);
        assert_eq!(
            initial_targets(BackupInvoker::Configuration(&bc), &workloads, now()),
            None
        );
    }

    #[test]
    fn a_batch_puts_the_pre_action_on_its_first_member_and_the_post_actions_on_its_last() {
        let batch: BackupBatch = serde_yaml::from_str(
            "
            apiVersion: stash.appscode.com/v1beta1
            kind: BackupBatch
            metadata: {name: batch, namespace: demo}
            spec:
              repository: {name: repo}
              retentionPolicy: {name: keep, keepLast: 5, prune: true}
              members:
              - target: {ref: {apiVersion: apps/v1, kind: Deployment, name: a}, paths: [/a]}
              - target: {ref: {apiVersion: apps/v1, kind: Deployment, name: b}, paths: [/b]}
            ",
        )
        .unwrap();
        let workloads = BTreeMap::from([(0, deployment()), (1, deployment())]);
        let targets = initial_targets(BackupInvoker::Batch(&batch), &workloads, now()).unwrap();
        assert!(targets[0].pre_backup_actions.is_some());
        assert!(targets[0].post_backup_actions.is_none());
        assert!(targets[1].pre_backup_actions.is_none());
        assert!(targets[1].post_backup_actions.is_some());
    }

    fn concluded(base: &str, outcome: &Outcome) -> BackupSessionStatus {
        let mut status: BackupSessionStatus = serde_yaml::from_str(base).unwrap();
        let created = "2026-12-01T09:57:20Z".parse().unwrap();
        conclude(&mut status, outcome, created, now());
        status
    }

    const HOST_DONE: &str = "
      conditions:
      - {type: RetentionPolicyApplied, status: \"True\"}
      - {type: RepositoryIntegrityVerified, status: \"True\"}
      - {type: RepositoryMetricsPushed, status: \"True\"}
      targets:
      - ref: {apiVersion: apps/v1, kind: Deployment, name: stash-demo, namespace: demo}
        totalHosts: 1
        phase: Running
        postBackupActions: [ApplyRetentionPolicy, VerifyRepositoryIntegrity, SendRepositoryMetrics]
        stats: [{hostname: host-0, phase: Succeeded}]
    ";

    #[test]
    fn a_completed_session_whose_metrics_were_pushed_succeeds_with_its_duration() {
        let status = concluded(
            HOST_DONE,
            &Outcome {
                history: Some(Ok(vec![])),
                metrics: Some(Ok(())),
                ..Outcome::default()
            },
        );
        assert_eq!(
            status.phase,
            Some(stash_api::phase::BackupSessionPhase::Succeeded)
        );
        assert_eq!(status.session_duration.as_deref(), Some("2m40s"));
        assert_eq!(
            status.targets.unwrap()[0].phase,
            Some(TargetPhase::Succeeded)
        );
    }

    #[test]
    fn a_failed_metrics_push_fails_the_session_with_the_error_as_message() {
        let status = concluded(
            HOST_DONE,
            &Outcome {
                history: Some(Ok(vec![])),
                metrics: Some(Err("gateway down".to_owned())),
                ..Outcome::default()
            },
        );
        assert_eq!(
            status.phase,
            Some(stash_api::phase::BackupSessionPhase::Failed)
        );
        let pushed = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == ConditionType::MetricsPushed)
            .unwrap();
        assert_eq!(pushed.status, ConditionStatus::False);
        assert_eq!(pushed.message.as_deref(), Some("gateway down"));
    }

    #[test]
    fn an_exceeded_deadline_fails_a_running_session_and_leaves_its_unfinished_target_running() {
        let status = concluded(
            "targets: [{ref: {kind: Deployment, name: d}, totalHosts: 1, phase: Running}]",
            &Outcome {
                deadline_exceeded: Some("not done within 5s".to_owned()),
                history: Some(Ok(vec![])),
                metrics: Some(Ok(())),
                ..Outcome::default()
            },
        );
        assert_eq!(
            status.phase,
            Some(stash_api::phase::BackupSessionPhase::Failed)
        );
        assert_eq!(status.targets.unwrap()[0].phase, Some(TargetPhase::Running));
        assert!(status.session_duration.is_some());
    }

    #[test]
    fn a_skipped_session_is_skipped_and_keeps_its_first_duration() {
        let status = concluded(
            "sessionDuration: 1s",
            &Outcome {
                skipped: Some("another runs".to_owned()),
                history: Some(Ok(vec!["old".to_owned()])),
                metrics: Some(Ok(())),
                ..Outcome::default()
            },
        );
        assert_eq!(
            status.phase,
            Some(stash_api::phase::BackupSessionPhase::Skipped)
        );
        assert_eq!(status.session_duration.as_deref(), Some("1s"));
    }

    #[test]
    fn the_deadline_is_the_creation_time_plus_the_go_duration_time_out() {
        assert_eq!(
            session_deadline(now(), "1h30m").unwrap().0,
            "2026-12-01T11:30:00Z".parse::<Timestamp>().unwrap()
        );
        assert!(session_deadline(now(), "ten minutes").is_err());
    }
}
