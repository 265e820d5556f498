//! Stage 5: conditions, phase (§6.2), `totalHosts`, `sessionDeadline` and `sessionDuration` from what the
//! earlier stages found, written through the status subresource only when they changed, with an Event
//! saying why. `stats[]` belongs to the agent: it is kept as read, and the write is guarded by the
//! resourceVersion so that an entry written meanwhile is never lost (session protocol).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use stash_api::condition::{Condition, ConditionStatus, ConditionType, reason};
use stash_api::phase::RestorePhase;
use stash_api::v1beta1::{RestoreSession, RestoreSessionStatus};

use super::completion::HostCounts;
use super::dereference::{Dereferenced, repository_key};
use super::validate::ValidateErrors;
use crate::context::Context;
use crate::controllers::conditions::{condition, repository_conditions};

/// Reasons of the conditions only the RestoreSession controller sets.
pub mod reasons {
    pub const METRICS_PUSH_SUCCEEDED: &str = "SuccessfullyPushedMetrics";
    pub const METRICS_PUSH_FAILED: &str = "FailedToPushMetrics";
    pub const DEADLINE_EXCEEDED: &str = super::reason::FAILED_TO_COMPLETE_WITHIN_DEADLINE;
    pub const JOB_MODEL_UNSUPPORTED: &str = "RestoreJobNotSupported";
    pub const RESTORE_JOB_CREATED: &str = "RestoreJobCreationSucceeded";
    pub const RESTORE_JOB_FAILED: &str = "RestoreJobFailed";
}

/// What happened to the init-container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectionOutcome {
    /// Not got that far.
    NotApplicable,
    Injected {
        workload: String,
    },
    /// The restore Job of a PersistentVolumeClaim target is in place.
    JobCreated {
        job: String,
    },
    /// The restore Job failed before its host was recorded; `message` says why (Job and pod).
    JobFailed {
        job: String,
        message: String,
    },
    Failed {
        message: String,
    },
}

/// How the restore ended, once it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    /// `Ok(())` when the metrics were pushed, `Err(message)` otherwise.
    pub metrics: Result<(), String>,
    /// The deadline passed before every host reported.
    pub deadline_exceeded: bool,
    /// `sessionDuration`.
    pub duration: String,
}

/// The outcome of one reconcile, as far as it got.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    pub deref: &'a Dereferenced,
    pub problems: Option<&'a ValidateErrors>,
    pub injection: InjectionOutcome,
    /// `totalHosts`, once the init-container is in.
    pub total_hosts: Option<i32>,
    /// `sessionDeadline`, once running.
    pub deadline: Option<Timestamp>,
    pub finish: Option<Finish>,
}

/// Writing the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to write the status of RestoreSession {namespace}/{name}")]
    ReplaceStatus {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl StatusError {
    /// The RestoreSession changed since it was read (an agent wrote its host): the change itself
    /// triggers the next reconcile.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        let Self::ReplaceStatus { source, .. } = self;
        matches!(source, kube::Error::Api(status) if status.code == 409)
    }
}

/// The conditions of §6.2, without transition times.
#[must_use]
pub fn conditions(rs: &RestoreSession, report: &Report<'_>) -> Vec<Condition> {
    let problem = |t| report.problems.and_then(|p| p.for_condition(t));
    let mut out = Vec::new();
    out.extend(repository_conditions(
        repository_key(rs),
        problem(ConditionType::RepositoryFound).map(ToString::to_string),
        problem(ConditionType::BackendSecretFound).map(ToString::to_string),
        report.deref.repository.as_ref(),
    ));
    if let Some(p) = problem(ConditionType::RestoreTargetFound) {
        out.push(condition(
            ConditionType::RestoreTargetFound,
            false,
            reason::TARGET_NOT_AVAILABLE,
            p.to_string(),
        ));
    } else if let Some(w) = &report.deref.workload {
        out.push(condition(
            ConditionType::RestoreTargetFound,
            true,
            reason::TARGET_AVAILABLE,
            format!("{w} exists."),
        ));
    }
    out.push(match problem(ConditionType::ValidationPassed) {
        Some(p) => condition(
            ConditionType::ValidationPassed,
            false,
            reason::RESOURCE_VALIDATION_FAILED,
            p.to_string(),
        ),
        None => condition(
            ConditionType::ValidationPassed,
            true,
            reason::RESOURCE_VALIDATION_PASSED,
            "The RestoreSession is valid.".to_owned(),
        ),
    });
    if let Some(p) = problem(ConditionType::RestoreExecutorEnsured) {
        out.push(condition(
            ConditionType::RestoreExecutorEnsured,
            false,
            reasons::JOB_MODEL_UNSUPPORTED,
            p.to_string(),
        ));
    }
    out.extend(injection_conditions(&report.injection));
    if let Some(finish) = &report.finish {
        out.extend(finish_conditions(finish));
    }
    out
}

/// What injecting the init-container or creating the restore Job came to.
fn injection_conditions(injection: &InjectionOutcome) -> Vec<Condition> {
    let mut out = Vec::new();
    match injection {
        InjectionOutcome::NotApplicable => {}
        InjectionOutcome::Injected { workload } => out.push(condition(
            ConditionType::StashInitContainerInjected,
            true,
            reason::INIT_CONTAINER_INJECTION_SUCCEEDED,
            format!("The stash-init init-container is the first init-container of {workload}."),
        )),
        InjectionOutcome::JobCreated { job } => out.push(job_created(job)),
        InjectionOutcome::JobFailed { job, message } => {
            out.push(job_created(job));
            out.push(condition(
                ConditionType::RestoreCompleted,
                false,
                reasons::RESTORE_JOB_FAILED,
                message.clone(),
            ));
        }
        InjectionOutcome::Failed { message } => out.push(condition(
            ConditionType::StashInitContainerInjected,
            false,
            reason::INIT_CONTAINER_INJECTION_FAILED,
            message.clone(),
        )),
    }
    out
}

fn job_created(job: &str) -> Condition {
    condition(
        ConditionType::RestoreJobCreated,
        true,
        reasons::RESTORE_JOB_CREATED,
        format!("Restore Job {job} restores the PersistentVolumeClaim."),
    )
}

/// `DeadlineExceeded` (only when it was) and `MetricsPushed`.
fn finish_conditions(finish: &Finish) -> Vec<Condition> {
    let mut out = Vec::new();
    if finish.deadline_exceeded {
        out.push(condition(
            ConditionType::DeadlineExceeded,
            true,
            reasons::DEADLINE_EXCEEDED,
            "The restore did not finish within spec.timeOut; the hosts that had not reported count as failed.".to_owned(),
        ));
    }
    out.push(match &finish.metrics {
        Ok(()) => condition(
            ConditionType::MetricsPushed,
            true,
            reasons::METRICS_PUSH_SUCCEEDED,
            "The restore metrics were pushed to the Pushgateway.".to_owned(),
        ),
        Err(message) => condition(
            ConditionType::MetricsPushed,
            false,
            reasons::METRICS_PUSH_FAILED,
            message.clone(),
        ),
    });
    out
}

/// The phase rules of §6.2: Failed when the metrics could not be pushed, the deadline passed or the
/// restore Job failed without recording its host;
/// Pending without conditions, while the Repository, its Secret or the target is missing, or while the
/// executor is not in place; Invalid when validation failed; once every host reported, Running until
/// `MetricsPushed` is set, then Succeeded (every host succeeded), Failed (one failed) or Unknown;
/// Running otherwise.
#[must_use]
pub fn phase(conditions: &[Condition], hosts: HostCounts) -> RestorePhase {
    use ConditionStatus::{False, True};
    use ConditionType as T;
    let has = |t, s| conditions.iter().any(|c| c.type_ == t && c.status == s);
    let exists = |t| conditions.iter().any(|c| c.type_ == t);
    if conditions.is_empty() {
        return RestorePhase::Pending;
    }
    if has(T::MetricsPushed, False)
        || (has(T::MetricsPushed, True)
            && (has(T::DeadlineExceeded, True) || has(T::RestoreCompleted, False)))
    {
        return RestorePhase::Failed;
    }
    if has(T::RepositoryFound, False)
        || has(T::BackendSecretFound, False)
        || has(T::RestoreTargetFound, False)
    {
        return RestorePhase::Pending;
    }
    if has(T::ValidationPassed, False) {
        return RestorePhase::Invalid;
    }
    if !has(T::StashInitContainerInjected, True) && !has(T::RestoreJobCreated, True) {
        return RestorePhase::Pending;
    }
    if exists(T::MetricsPushed) {
        return if hosts.failed > 0 {
            RestorePhase::Failed
        } else if hosts.all_done() {
            RestorePhase::Succeeded
        } else {
            RestorePhase::Unknown
        };
    }
    RestorePhase::Running
}

/// The status to write: the computed conditions, keeping the transition time of each whose status did
/// not change, `stats[]` as read, and the fields set once (`totalHosts`, `sessionDeadline`,
/// `sessionDuration`) kept once set.
#[must_use]
pub fn desired_status(
    rs: &RestoreSession,
    report: &Report<'_>,
    hosts: HostCounts,
    now: Timestamp,
) -> RestoreSessionStatus {
    let old = rs.status.clone().unwrap_or_default();
    let old_conditions = old.conditions.as_deref().unwrap_or_default();
    let mut conditions = conditions(rs, report);
    for c in &mut conditions {
        c.observed_generation = rs.metadata.generation;
        c.last_transition_time = old_conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .and_then(|o| o.last_transition_time.clone())
            .or(Some(Time(now)));
    }
    let phase = phase(&conditions, hosts);
    RestoreSessionStatus {
        phase: Some(phase),
        total_hosts: old.total_hosts.filter(|t| *t > 0).or(report.total_hosts),
        session_duration: old
            .session_duration
            .or_else(|| report.finish.as_ref().map(|f| f.duration.clone())),
        session_deadline: old.session_deadline.or_else(|| report.deadline.map(Time)),
        conditions: Some(conditions),
        stats: old.stats,
    }
}

/// Equal but for transition times.
fn same(a: &RestoreSessionStatus, b: &RestoreSessionStatus) -> bool {
    let strip = |s: &RestoreSessionStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// Stage 5 of the pipeline: replaces the status if it changed (guarded by the resourceVersion of `rs`)
/// and records an Event (`reason`, `note`) when it did.
pub async fn write(
    ctx: &Context,
    rs: &RestoreSession,
    status: RestoreSessionStatus,
    event: (EventType, &str, String),
) -> Result<(), StatusError> {
    if rs.status.as_ref().is_some_and(|old| same(old, &status)) {
        return Ok(());
    }
    let namespace = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let mut updated = rs.clone();
    updated.status = Some(status);
    Api::<RestoreSession>::namespaced(ctx.client.clone(), &namespace)
        .replace_status(
            &name,
            &PostParams {
                field_manager: Some(stash_api::labels::FIELD_MANAGER_OPERATOR.to_owned()),
                ..PostParams::default()
            },
            &updated,
        )
        .await
        .map_err(|source| StatusError::ReplaceStatus {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    let (type_, why, note) = event;
    let published = ctx
        .recorder
        .publish(
            &Event {
                type_,
                reason: why.to_owned(),
                note: Some(note),
                action: "Reconcile".to_owned(),
                secondary: None,
            },
            &rs.object_ref(&()),
        )
        .await;
    if let Err(err) = published {
        tracing::warn!(
            error = &err as &dyn std::error::Error,
            "failed to record an Event"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionStatus::{False, True};
    use ConditionType as T;

    fn c(type_: ConditionType, status: ConditionStatus) -> Condition {
        condition(type_, status == True, "", String::new())
    }

    fn found() -> Vec<Condition> {
        vec![
            c(T::RepositoryFound, True),
            c(T::BackendSecretFound, True),
            c(T::RestoreTargetFound, True),
            c(T::ValidationPassed, True),
        ]
    }

    fn injected() -> Vec<Condition> {
        let mut out = found();
        out.push(c(T::StashInitContainerInjected, True));
        out
    }

    fn hosts(total: i32, succeeded: i32, failed: i32) -> HostCounts {
        HostCounts {
            total,
            succeeded,
            failed,
        }
    }

    #[test]
    fn a_session_without_conditions_is_pending() {
        assert_eq!(phase(&[], hosts(0, 0, 0)), RestorePhase::Pending);
    }

    #[test]
    fn a_missing_repository_keeps_the_session_pending_even_if_validation_failed() {
        let conditions = [c(T::RepositoryFound, False), c(T::ValidationPassed, False)];
        assert_eq!(phase(&conditions, hosts(0, 0, 0)), RestorePhase::Pending);
    }

    #[test]
    fn failed_validation_with_everything_found_is_invalid() {
        let mut conditions = found();
        conditions[3] = c(T::ValidationPassed, False);
        assert_eq!(phase(&conditions, hosts(0, 0, 0)), RestorePhase::Invalid);
    }

    #[test]
    fn a_session_is_pending_until_the_init_container_is_in_and_then_running() {
        assert_eq!(phase(&found(), hosts(0, 0, 0)), RestorePhase::Pending);
        let mut failed = found();
        failed.push(c(T::StashInitContainerInjected, False));
        assert_eq!(phase(&failed, hosts(0, 0, 0)), RestorePhase::Pending);
        assert_eq!(phase(&injected(), hosts(2, 1, 0)), RestorePhase::Running);
    }

    #[test]
    fn all_hosts_done_stays_running_until_the_metrics_are_pushed() {
        assert_eq!(phase(&injected(), hosts(1, 1, 0)), RestorePhase::Running);
        let mut pushed = injected();
        pushed.push(c(T::MetricsPushed, True));
        assert_eq!(phase(&pushed, hosts(1, 1, 0)), RestorePhase::Succeeded);
        assert_eq!(phase(&pushed, hosts(2, 1, 1)), RestorePhase::Failed);
    }

    #[test]
    fn a_failed_metrics_push_fails_the_session_even_if_every_host_succeeded() {
        let mut conditions = injected();
        conditions.push(c(T::MetricsPushed, False));
        assert_eq!(phase(&conditions, hosts(1, 1, 0)), RestorePhase::Failed);
    }

    #[test]
    fn an_exceeded_deadline_fails_the_session_once_the_metrics_are_pushed() {
        let mut conditions = injected();
        conditions.push(c(T::DeadlineExceeded, True));
        assert_eq!(phase(&conditions, hosts(2, 1, 0)), RestorePhase::Running);
        conditions.push(c(T::MetricsPushed, True));
        assert_eq!(phase(&conditions, hosts(2, 1, 0)), RestorePhase::Failed);
    }

    #[test]
    fn pushed_metrics_with_hosts_neither_done_nor_failed_is_unknown() {
        let mut conditions = injected();
        conditions.push(c(T::MetricsPushed, True));
        assert_eq!(phase(&conditions, hosts(2, 1, 0)), RestorePhase::Unknown);
    }

    #[test]
    fn a_total_of_zero_hosts_is_replaced_once_there_are_hosts() {
        let rs: RestoreSession = serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata:\n  name: r\n  namespace: demo\nspec: {}\nstatus:\n  totalHosts: 0\n",
        )
        .unwrap();
        let deref = Dereferenced::default();
        let report = Report {
            deref: &deref,
            problems: None,
            injection: InjectionOutcome::NotApplicable,
            total_hosts: Some(2),
            deadline: None,
            finish: None,
        };
        let status = desired_status(&rs, &report, hosts(2, 0, 0), Timestamp::UNIX_EPOCH);
        assert_eq!(status.total_hosts, Some(2));
    }

    #[test]
    fn the_agents_stats_and_the_fields_set_once_are_kept() {
        let rs: RestoreSession = serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata:\n  name: r\n  namespace: demo\nspec:\n  repository:\n    name: gcs-repo\nstatus:\n  totalHosts: 3\n  sessionDuration: 5s\n  stats:\n  - hostname: host-0\n    phase: Succeeded\n",
        )
        .unwrap();
        let deref = Dereferenced::default();
        let report = Report {
            deref: &deref,
            problems: None,
            injection: InjectionOutcome::NotApplicable,
            total_hosts: Some(1),
            deadline: None,
            finish: Some(Finish {
                metrics: Ok(()),
                deadline_exceeded: false,
                duration: "9s".to_owned(),
            }),
        };
        let status = desired_status(&rs, &report, hosts(3, 1, 0), Timestamp::UNIX_EPOCH);
        assert_eq!(status.total_hosts, Some(3));
        assert_eq!(status.session_duration.as_deref(), Some("5s"));
        assert_eq!(status.stats, rs.status.unwrap().stats);
    }
}
