//! Stage 5: conditions and phase (§4.2) from what the earlier stages found, written through the status
//! subresource only when they changed, with an Event saying why.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use stash_api::condition::{Condition, ConditionStatus, ConditionType, reason};
use stash_api::labels;
use stash_api::phase::BackupInvokerPhase;
use stash_api::v1beta1::{BackupConfiguration, BackupConfigurationStatus};

use super::dereference::{Dereferenced, repository_key};
use super::validate::ValidateErrors;
use crate::context::Context;
use crate::controllers::conditions::{condition, repository_conditions};

/// What happened to the sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SidecarOutcome {
    /// Not the sidecar model, or not got that far.
    NotApplicable,
    Injected {
        workload: String,
    },
    Failed {
        message: String,
    },
}

/// The outcome of one reconcile, as far as it got.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    pub deref: &'a Dereferenced,
    pub problems: Option<&'a ValidateErrors>,
    /// A spec problem the builders found (unknown volume, no uid, ...).
    pub build_problem: Option<String>,
    pub sidecar: SidecarOutcome,
    /// `Ok(name)` once the CronJob is applied, `Err(message)` if that failed.
    pub cronjob: Option<Result<String, String>>,
}

/// Writing the status failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to write the status of BackupConfiguration {namespace}/{name}")]
    PatchStatus {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The conditions of §4.2, without transition times.
#[must_use]
pub fn conditions(bc: &BackupConfiguration, report: &Report<'_>) -> Vec<Condition> {
    let problem = |t| report.problems.and_then(|p| p.for_condition(t));
    let mut out = Vec::new();
    out.extend(repository_conditions(
        repository_key(bc),
        problem(ConditionType::RepositoryFound).map(ToString::to_string),
        problem(ConditionType::BackendSecretFound).map(ToString::to_string),
        report.deref.repository.as_ref(),
    ));
    if let Some(p) = problem(ConditionType::BackupTargetFound) {
        out.push(condition(
            ConditionType::BackupTargetFound,
            false,
            reason::TARGET_NOT_AVAILABLE,
            p.to_string(),
        ));
    } else if let Some(w) = &report.deref.workload {
        out.push(condition(
            ConditionType::BackupTargetFound,
            true,
            reason::TARGET_AVAILABLE,
            format!("{w} exists."),
        ));
    }
    let spec_problem = problem(ConditionType::ValidationPassed)
        .map(ToString::to_string)
        .or_else(|| report.build_problem.clone());
    out.push(match spec_problem {
        Some(message) => condition(
            ConditionType::ValidationPassed,
            false,
            reason::RESOURCE_VALIDATION_FAILED,
            message,
        ),
        None => condition(
            ConditionType::ValidationPassed,
            true,
            reason::RESOURCE_VALIDATION_PASSED,
            "The BackupConfiguration is valid.".to_owned(),
        ),
    });
    out.extend(outcome_conditions(report));
    out
}

/// `StashSidecarInjected` and `CronJobCreated`, from what stage 4 did.
fn outcome_conditions(report: &Report<'_>) -> Vec<Condition> {
    let mut out = Vec::new();
    match &report.sidecar {
        SidecarOutcome::NotApplicable => {}
        SidecarOutcome::Injected { workload } => out.push(condition(
            ConditionType::StashSidecarInjected,
            true,
            reason::SIDECAR_INJECTION_SUCCEEDED,
            format!("The stash sidecar is in the pod template of {workload}."),
        )),
        SidecarOutcome::Failed { message } => out.push(condition(
            ConditionType::StashSidecarInjected,
            false,
            reason::SIDECAR_INJECTION_FAILED,
            message.clone(),
        )),
    }
    match &report.cronjob {
        None => {}
        Some(Ok(name)) => out.push(condition(
            ConditionType::CronJobCreated,
            true,
            reason::CRON_JOB_CREATION_SUCCEEDED,
            format!("CronJob {name} triggers the backups."),
        )),
        Some(Err(message)) => out.push(condition(
            ConditionType::CronJobCreated,
            false,
            reason::CRON_JOB_CREATION_FAILED,
            message.clone(),
        )),
    }
    out
}

/// §4.2: NotReady while the Repository or its Secret is missing; Invalid if validation failed; Ready
/// when validation passed and the CronJob exists; NotReady otherwise.
#[must_use]
pub fn phase(conditions: &[Condition]) -> BackupInvokerPhase {
    let is_true = |t| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == ConditionStatus::True)
    };
    if !is_true(ConditionType::RepositoryFound) || !is_true(ConditionType::BackendSecretFound) {
        return BackupInvokerPhase::NotReady;
    }
    if conditions
        .iter()
        .any(|c| c.type_ == ConditionType::ValidationPassed && c.status == ConditionStatus::False)
    {
        return BackupInvokerPhase::Invalid;
    }
    if is_true(ConditionType::ValidationPassed) && is_true(ConditionType::CronJobCreated) {
        BackupInvokerPhase::Ready
    } else {
        BackupInvokerPhase::NotReady
    }
}

/// The status to write: the computed conditions, keeping the transition time of each whose status did
/// not change.
#[must_use]
pub fn desired_status(
    bc: &BackupConfiguration,
    report: &Report<'_>,
    now: Timestamp,
) -> BackupConfigurationStatus {
    let old = bc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let mut conditions = conditions(bc, report);
    for c in &mut conditions {
        c.observed_generation = bc.metadata.generation;
        c.last_transition_time = old
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status)
            .and_then(|o| o.last_transition_time.clone())
            .or(Some(Time(now)));
    }
    BackupConfigurationStatus {
        observed_generation: bc.metadata.generation,
        phase: Some(phase(&conditions)),
        conditions: Some(conditions),
    }
}

/// Equal but for transition times.
fn same(a: &BackupConfigurationStatus, b: &BackupConfigurationStatus) -> bool {
    let strip = |s: &BackupConfigurationStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// Stage 5 of the pipeline: patches the status if it changed and records an Event (`reason`, `note`)
/// when it did.
pub async fn write(
    ctx: &Context,
    bc: &BackupConfiguration,
    status: BackupConfigurationStatus,
    event: (EventType, &str, String),
) -> Result<(), StatusError> {
    if bc.status.as_ref().is_some_and(|old| same(old, &status)) {
        return Ok(());
    }
    let namespace = bc.namespace().unwrap_or_default();
    let name = bc.name_any();
    let patch = json!({
        "apiVersion": BackupConfiguration::api_version(&()),
        "kind": BackupConfiguration::kind(&()),
        "status": status,
    });
    Api::<BackupConfiguration>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &name,
            &PatchParams::apply(labels::FIELD_MANAGER_OPERATOR).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| StatusError::PatchStatus {
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
            &bc.object_ref(&()),
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

    fn c(type_: ConditionType, status: ConditionStatus) -> Condition {
        Condition {
            type_,
            status,
            observed_generation: None,
            last_transition_time: None,
            reason: None,
            message: None,
        }
    }

    #[test]
    fn a_missing_secret_makes_the_phase_not_ready_even_if_validation_failed() {
        use ConditionStatus::{False, True};
        let conditions = [
            c(ConditionType::RepositoryFound, True),
            c(ConditionType::BackendSecretFound, False),
            c(ConditionType::ValidationPassed, False),
        ];
        assert_eq!(phase(&conditions), BackupInvokerPhase::NotReady);
    }

    #[test]
    fn failed_validation_with_repository_and_secret_present_is_invalid() {
        use ConditionStatus::{False, True};
        let conditions = [
            c(ConditionType::RepositoryFound, True),
            c(ConditionType::BackendSecretFound, True),
            c(ConditionType::ValidationPassed, False),
        ];
        assert_eq!(phase(&conditions), BackupInvokerPhase::Invalid);
    }

    #[test]
    fn validation_passed_and_the_cronjob_created_is_ready() {
        use ConditionStatus::True;
        let conditions = [
            c(ConditionType::RepositoryFound, True),
            c(ConditionType::BackendSecretFound, True),
            c(ConditionType::ValidationPassed, True),
            c(ConditionType::CronJobCreated, True),
        ];
        assert_eq!(phase(&conditions), BackupInvokerPhase::Ready);
    }
}
