//! RestoreSessions whose target is a standalone PersistentVolumeClaim (§9.3, §11.1): validate (the
//! Repository, its Secret and the claim) → build the restore Job and its RBAC → apply → `RestoreJobCreated`
//! and `totalHosts` 1, after which the hosts are tracked exactly as for the init-container model.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use stash_api::v1beta1::RestoreSession;

use super::completion::HostCounts;
use super::dereference::{Dereferenced, repository_key};
use super::status::{self, InjectionOutcome, Report};
use super::validate::{ValidateError, ValidateErrors, repository_problems, spec_errors};
use super::{ReconcileError, key, track_hosts};
use crate::build::job::{restore_job, restore_job_rbac};
use crate::context::Context;
use crate::controllers::backup_session::job::{JobError, apply_job, apply_rbac};
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

async fn claim_exists(ctx: &Context, rs: &RestoreSession) -> Result<bool, JobError> {
    let Some(info) = first_target(rs) else {
        return Ok(false);
    };
    let Some(reference) = info.target_ref() else {
        return Ok(false);
    };
    let namespace = info.target_namespace();
    Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map(|c| c.is_some())
        .map_err(|source| JobError::Apply {
            kind: "PersistentVolumeClaim (read)".to_owned(),
            name: format!("{namespace}/{}", reference.name),
            source,
        })
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
    let built = restore_job(&info, repository, &ctx.settings)
        .map_err(JobError::from)
        .and_then(|job| {
            restore_job_rbac(&info, repository)
                .map(|rbac| (job, rbac))
                .map_err(|e| JobError::from(crate::build::job::BuildJobError::from(e)))
        });
    let applied = match built {
        Ok((job, rbac)) => match apply_rbac(&ctx.client, &rbac).await {
            Ok(()) => apply_job(&ctx.client, &job).await.map(|()| job.name_any()),
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    let job = match applied {
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
    report.injection = InjectionOutcome::JobCreated { job };
    let action = Box::pin(track_hosts(rs, ctx, report, CLAIM_HOSTS, now)).await?;
    ctx.reset_backoff(&key(rs));
    Ok(action)
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
}
