//! RestoreSessions whose target is a standalone PersistentVolumeClaim (§9.3, §11.1): validate (the
//! Repository, its Secret and the claim) → build the restore Job and its RBAC → apply → `RestoreJobCreated`
//! and `totalHosts` 1, after which the hosts are tracked exactly as for the init-container model.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::RestoreSession;

use super::completion::HostCounts;
use super::dereference::{Dereferenced, repository_key};
use super::status::{self, InjectionOutcome, Report};
use super::validate::{ValidateError, ValidateErrors, repository_problems, spec_errors};
use super::{ReconcileError, key, track_hosts};
use crate::build::job::{BuildJobError, restore_job, restore_job_rbac};
use crate::context::Context;
use crate::controllers::apply::{ApplyError, Operation, apply, apply_rbac, get_opt};
use crate::controllers::backup_session::job::JobError;
use crate::invoker::{RestoreInvoker, RestoreTargetInfo};

/// `totalHosts` of a claim restored by one Job (§8.5).
pub const CLAIM_HOSTS: i32 = 1;

/// Stage 2 for a claim target: the spec, the Repository and its Secret, and the claim itself
/// (`claim_exists`), every problem at once.
pub fn validate(
    rs: &RestoreSession,
    deref: &Dereferenced,
    claim_exists: bool,
) -> Result<(), ValidateErrors> {
    let invoker = RestoreInvoker::Session(rs).to_string();
    let mut problems = Vec::new();
    let errors = spec_errors(rs);
    if !errors.is_empty() {
        problems.push(ValidateError::Invalid {
            invoker: invoker.clone(),
            details: errors.join("; "),
        });
    }
    if let Some((namespace, name)) = repository_key(rs) {
        repository_problems(&invoker, namespace, name, deref, &mut problems);
    }
    if !claim_exists && let Some(info) = first_target(rs) {
        let reference = info.target_ref().cloned().unwrap_or_default();
        problems.push(ValidateError::TargetNotFound {
            invoker,
            kind: reference.kind,
            namespace: info.target_namespace().to_owned(),
            name: reference.name,
        });
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidateErrors(problems))
    }
}

fn first_target(rs: &RestoreSession) -> Option<RestoreTargetInfo<'_>> {
    RestoreInvoker::Session(rs).targets().into_iter().next()
}

async fn claim_exists(ctx: &Context, rs: &RestoreSession) -> Result<bool, ApplyError> {
    let Some(info) = first_target(rs) else {
        return Ok(false);
    };
    let Some(reference) = info.target_ref() else {
        return Ok(false);
    };
    get_opt::<PersistentVolumeClaim>(&ctx.client, info.target_namespace(), &reference.name)
        .await
        .map(|c| c.is_some())
}

/// Builds the restore Job and its RBAC and applies them (RBAC first); returns the Job's name.
async fn apply_job(
    ctx: &Context,
    info: &RestoreTargetInfo<'_>,
    repository: &Repository,
) -> Result<String, JobError> {
    let job = restore_job(info, repository, &ctx.settings)?;
    let rbac = restore_job_rbac(info, repository).map_err(BuildJobError::from)?;
    apply_rbac(&ctx.client, &rbac).await?;
    apply(&ctx.client, &job).await?;
    Ok(job.name_any())
}

/// The reconcile of a RestoreSession restoring into a claim.
pub async fn reconcile(
    rs: &RestoreSession,
    ctx: &Context,
    deref: &Dereferenced,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    let mut report = Report {
        deref,
        problems: None,
        injection: InjectionOutcome::NotApplicable,
        total_hosts: None,
        deadline: None,
        finish: None,
    };
    let exists = claim_exists(ctx, rs).await?;
    if let Err(problems) = validate(rs, deref, exists) {
        report.problems = Some(&problems);
        let status = status::desired_status(rs, &report, HostCounts::default(), now);
        let event = (EventType::Warning, problems.reason(), problems.to_string());
        status::write(ctx, rs, status, event).await?;
        return Err(problems.into());
    }
    let (Some(repository), Some(info)) = (&deref.repository, first_target(rs)) else {
        // validate names a missing Repository or target; nothing is left to do.
        return Ok(Action::await_change());
    };
    let job = match apply_job(ctx, &info, repository).await {
        Ok(job) => job,
        Err(err) => {
            let message = crate::controllers::backup_session::apply::chain(&err);
            report.injection = InjectionOutcome::Failed {
                message: message.clone(),
            };
            let status = status::desired_status(rs, &report, HostCounts::default(), now);
            let event = (EventType::Warning, "RestoreJobFailed", message);
            status::write(ctx, rs, status, event).await?;
            return Err(err.into());
        }
    };
    report.injection = match job_failure_of(ctx, rs, &job).await? {
        Some(message) => InjectionOutcome::JobFailed { job, message },
        None => InjectionOutcome::JobCreated { job },
    };
    let action = Box::pin(track_hosts(rs, ctx, report, CLAIM_HOSTS, now)).await?;
    ctx.reset_backoff(&key(rs));
    Ok(action)
}

/// Whether `job` failed: its `Failed` condition, or as many failed pods as `backoffLimit` allows
/// (the condition follows a moment later).
fn failed(job: &Job) -> Option<String> {
    let status = job.status.as_ref()?;
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")
    {
        let why = [c.reason.as_deref(), c.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": ");
        return Some(why);
    }
    let limit = job.spec.as_ref().and_then(|s| s.backoff_limit).unwrap_or(6);
    let pods_failed = status.failed.unwrap_or(0);
    (pods_failed > limit).then(|| format!("{pods_failed} pod(s) failed, backoffLimit is {limit}"))
}

/// What each container of `pod` that ended badly said, and where to read more.
fn container_failures(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let pod_name = pod.name_any();
    let namespace = pod.namespace().unwrap_or_default();
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|c| {
            let t = c.state.as_ref()?.terminated.as_ref()?;
            (t.exit_code != 0).then(|| {
                let said = t
                    .message
                    .as_deref()
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .or(t.reason.as_deref())
                    .unwrap_or("no message");
                format!(
                    "container {} of pod {pod_name} exited {}: {said} (kubectl logs -n {namespace} {pod_name} -c {})",
                    c.name, t.exit_code, c.name
                )
            })
        })
        .collect()
}

/// Why the restore Job failed, naming the Job, its Failed condition and its containers that exited
/// non-zero; `None` while it has not failed.
#[must_use]
pub fn job_failure(job: &Job, pods: &[Pod]) -> Option<String> {
    let why = failed(job)?;
    let containers = pods.iter().flat_map(container_failures).collect::<Vec<_>>();
    let detail = if containers.is_empty() {
        "read the logs of its pod's containers".to_owned()
    } else {
        containers.join("; ")
    };
    Some(format!(
        "restore Job {}/{} failed ({why}) before recording its host: {detail}",
        job.namespace().unwrap_or_default(),
        job.name_any()
    ))
}

/// Reads restore Job `name` of `rs` and, if it failed, its pods: why it failed, or `None`.
async fn job_failure_of(
    ctx: &Context,
    rs: &RestoreSession,
    name: &str,
) -> Result<Option<String>, ApplyError> {
    let namespace = rs.namespace().unwrap_or_default();
    let Some(job) = get_opt::<Job>(&ctx.client, &namespace, name).await? else {
        return Ok(None);
    };
    if failed(&job).is_none() {
        return Ok(None);
    }
    let selector = format!("job-name={name}");
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|error| ApplyError {
            action: Operation::List,
            kind: "Pod".to_owned(),
            object: format!("of restore Job {namespace}/{name} ({selector})"),
            error,
        })?;
    Ok(job_failure(&job, &pods.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use stash_api::v1alpha1::Repository;

    const PVC_EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
    );

    fn everything() -> Dereferenced {
        Dereferenced {
            repository: Some(
                serde_yaml::from_str(
                    "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: b\n    storageSecretName: gcs-secret\n",
                )
                .map(|r: Repository| r)
                .unwrap(),
            ),
            secret: Some(
                serde_yaml::from_str::<Secret>(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gcs-secret\n  namespace: demo\nstringData:\n  RESTIC_PASSWORD: x\n",
                )
                .unwrap(),
            ),
            workload: None,
        }
    }

    #[test]
    fn the_pvc_restore_example_with_its_repository_secret_and_claim_is_valid() {
        let rs: RestoreSession = serde_yaml::from_str(PVC_EXAMPLE).unwrap();
        assert_eq!(validate(&rs, &everything(), true), Ok(()));
    }

    #[test]
    fn a_missing_claim_is_named_with_the_fix_and_retried() {
        let rs: RestoreSession = serde_yaml::from_str(PVC_EXAMPLE).unwrap();
        let errors = validate(&rs, &everything(), false).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "RestoreSession demo/nfs-pvc-restore: PersistentVolumeClaim `nfs-pvc` does not exist in namespace `demo`; create it or correct spec.target.ref"
        );
        assert!(errors.retryable());
    }

    #[test]
    fn a_failed_restore_job_is_explained_by_its_condition_and_the_container_that_exited() {
        let rs: RestoreSession = serde_yaml::from_str(PVC_EXAMPLE).unwrap();
        let mut rs = rs;
        rs.metadata.uid = Some("rs-1".to_owned());
        let info = first_target(&rs).unwrap();
        let repository = everything().repository.unwrap();
        let mut job = restore_job(&info, &repository, &crate::Settings::default()).unwrap();
        assert_eq!(job_failure(&job, &[]), None);
        job.status = serde_json::from_value(serde_json::json!({"failed": 1})).unwrap();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "stash-restore-nfs-pvc-restore-0-abcde", "namespace": "demo"},
            "status": {"initContainerStatuses": [{
                "name": "pvc-restore-0", "image": "stash", "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 1, "reason": "Error",
                          "message": "wrong password: check RESTIC_PASSWORD\n"}}}]}
        }))
        .unwrap();
        let message = job_failure(&job, &[pod]).unwrap();
        assert_eq!(
            message,
            "restore Job demo/stash-restore-nfs-pvc-restore-0 failed (1 pod(s) failed, backoffLimit is 0) before recording its host: container pvc-restore-0 of pod stash-restore-nfs-pvc-restore-0-abcde exited 1: wrong password: check RESTIC_PASSWORD (kubectl logs -n demo stash-restore-nfs-pvc-restore-0-abcde -c pvc-restore-0)"
        );
        job.status = serde_json::from_value(serde_json::json!({"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}))
        .unwrap();
        assert!(
            job_failure(&job, &[])
                .unwrap()
                .contains("(BackoffLimitExceeded: Job has reached the specified backoff limit) before recording its host: read the logs"),
        );
    }
}
