//! The job model of a starting session (§9.2 step 6, §11.1): every target that is a standalone
//! PersistentVolumeClaim gets its backup Job (with the service account and RBAC it runs as) before the
//! target is marked Running. [`build`] is pure; [`ensure`] reads the Repository and applies the result
//! (server-side apply, so a second reconcile of the same session changes nothing).

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use stash_api::common::RetentionPolicy;
use stash_api::condition::ConditionType;
use stash_api::labels;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupSession, BackupSessionStatus};

use super::build::EXECUTOR_NOT_ENSURED;
use super::dereference::InvokerObject;
use super::status::{condition, set_condition};
use crate::build::job::{BuildJobError, backup_job, backup_job_rbac, is_pvc};
use crate::build::rbac::ExecutorRbac;
use crate::controllers::apply::{ApplyError, apply, apply_rbac};
use crate::settings::Settings;

/// Ensuring the backup Jobs failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{invoker} has no spec.repository; name the Repository its backup Job writes to")]
    NoRepository { invoker: String },
    #[error("failed to read Repository {namespace}/{name} for the backup Job")]
    ReadRepository {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Repository {namespace}/{name} does not exist; create it or correct spec.repository of the invoker"
    )]
    RepositoryNotFound { namespace: String, name: String },
    #[error("failed to build the backup Job")]
    Build {
        #[from]
        source: BuildJobError,
    },
    #[error("failed to list the backup Jobs of the BackupSession")]
    ListJobs {
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// One claim target's Job and the RBAC it runs with.
#[derive(Clone, Debug)]
pub struct BackupJob {
    pub job: Job,
    pub rbac: ExecutorRbac,
}

fn retention_policy(invoker: &InvokerObject) -> &RetentionPolicy {
    match invoker {
        InvokerObject::Configuration(bc) => &bc.spec.retention_policy,
        InvokerObject::Batch(bb) => &bb.spec.retention_policy,
    }
}

/// Whether any target of `invoker` is a standalone claim.
#[must_use]
pub fn has_claim_targets(invoker: &InvokerObject) -> bool {
    invoker
        .invoker()
        .targets()
        .iter()
        .any(|t| t.target.is_some_and(|t| is_pvc(&t.reference)))
}

/// The Jobs of `session`'s claim targets (none when it has none).
pub fn build(
    session: &BackupSession,
    invoker: &InvokerObject,
    repository: &Repository,
    settings: &Settings,
) -> Result<Vec<BackupJob>, BuildJobError> {
    invoker
        .invoker()
        .targets()
        .iter()
        .filter(|t| t.target.is_some_and(|t| is_pvc(&t.reference)))
        .map(|info| {
            Ok(BackupJob {
                job: backup_job(
                    session,
                    info,
                    retention_policy(invoker),
                    repository,
                    settings,
                )?,
                rbac: backup_job_rbac(info, repository)?,
            })
        })
        .collect()
}

/// Reads the invoker's Repository and applies the backup Job of every claim target of `session`;
/// returns the Jobs' names.
pub async fn ensure(
    client: &Client,
    settings: &Settings,
    session: &BackupSession,
    invoker: &InvokerObject,
) -> Result<Vec<String>, JobError> {
    if !has_claim_targets(invoker) {
        return Ok(Vec::new());
    }
    let reference = invoker
        .invoker()
        .repository()
        .ok_or_else(|| JobError::NoRepository {
            invoker: invoker.invoker().to_string(),
        })?;
    let namespace = reference
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| invoker.invoker().namespace().to_owned());
    let repository = Api::<Repository>::namespaced(client.clone(), &namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|source| JobError::ReadRepository {
            namespace: namespace.clone(),
            name: reference.name.clone(),
            source,
        })?
        .ok_or_else(|| JobError::RepositoryNotFound {
            namespace: namespace.clone(),
            name: reference.name.clone(),
        })?;
    let jobs = build(session, invoker, &repository, settings)?;
    let mut names = Vec::with_capacity(jobs.len());
    for BackupJob { job, rbac } in &jobs {
        apply_rbac(client, rbac).await?;
        // Server-side apply of the same Job is a no-op, so a session reconciled twice still has one.
        apply(client, job).await?;
        names.push(job.name_any());
    }
    Ok(names)
}

/// The claim a backup Job mounts (volume `stash-volume`) and, if the Job failed, why: a Job whose
/// pod died before `update-status` ran leaves the host without an entry, so the session would wait
/// for its deadline (or forever without `timeOut`).
#[must_use]
pub fn failed_claim(job: &Job) -> Option<(String, String)> {
    let failed = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True")?;
    let claim = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.as_ref())
        .into_iter()
        .flatten()
        .find(|v| v.name == labels::VOLUME_PVC_TARGET)
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())?;
    let why = [failed.reason.as_deref(), failed.message.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    Some((
        claim,
        format!(
            "backup Job {}/{} failed ({why}) before recording the host; read the logs of its pod's containers",
            job.metadata.namespace.as_deref().unwrap_or_default(),
            job.name_any()
        ),
    ))
}

/// Marks `BackupExecutorEnsured=False` on each claim target whose Job failed and whose host has no
/// final entry, so the target is Failed (§5.4) and the session can conclude. Returns whether anything
/// changed.
pub fn record_failed_jobs(
    status: &mut BackupSessionStatus,
    failed: &[(String, String)],
    now: Timestamp,
) -> bool {
    let mut changed = false;
    for target in status.targets.iter_mut().flatten() {
        let Some(reference) = target.reference.as_ref().filter(|r| is_pvc(r)) else {
            continue;
        };
        let hosts_final = target
            .stats
            .iter()
            .flatten()
            .filter(|h| h.phase.is_some())
            .count();
        let total = target
            .total_hosts
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1);
        if hosts_final >= total {
            continue;
        }
        let Some((_, message)) = failed.iter().find(|(claim, _)| *claim == reference.name) else {
            continue;
        };
        let already = target.conditions.iter().flatten().any(|c| {
            c.type_ == ConditionType::BackupExecutorEnsured
                && c.status == stash_api::condition::ConditionStatus::False
        });
        if !already {
            set_condition(
                &mut target.conditions,
                condition(
                    ConditionType::BackupExecutorEnsured,
                    false,
                    EXECUTOR_NOT_ENSURED,
                    message.clone(),
                    now,
                ),
            );
            changed = true;
        }
    }
    changed
}

/// The failed backup Jobs `session` owns, as (claim, message).
pub async fn failed_jobs(
    client: &Client,
    session: &BackupSession,
) -> Result<Vec<(String, String)>, kube::Error> {
    let Some(uid) = session.metadata.uid.as_deref() else {
        return Ok(Vec::new());
    };
    let jobs = Api::<Job>::namespaced(client.clone(), &session.namespace().unwrap_or_default())
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            labels::LABEL_MANAGED_BY,
            labels::MANAGED_BY
        )))
        .await?;
    Ok(jobs
        .items
        .iter()
        .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
        .filter_map(failed_claim)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_api::v1beta1::BackupConfiguration;

    const PVC_EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-pvc-job-model.yaml"
    );
    const DEPLOYMENT_EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn invoker(yaml: &str) -> InvokerObject {
        let mut bc: BackupConfiguration = serde_yaml::from_str(yaml).unwrap();
        bc.metadata.uid = Some("bc-1".to_owned());
        InvokerObject::Configuration(Box::new(bc))
    }

    fn repository() -> Repository {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: b\n    storageSecretName: gcs-secret\n",
        )
        .unwrap()
    }

    fn session() -> BackupSession {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1beta1\nkind: BackupSession\nmetadata:\n  name: s-1\n  namespace: demo\n  uid: bs-1\nspec:\n  invoker:\n    apiGroup: stash.appscode.com\n    kind: BackupConfiguration\n    name: nfs-pvc-backup\n",
        )
        .unwrap()
    }

    #[test]
    fn a_failed_job_fails_its_claim_target_once_and_a_recorded_host_is_left_alone() {
        let pvc = invoker(PVC_EXAMPLE);
        let mut job = build(&session(), &pvc, &repository(), &Settings::default())
            .unwrap()
            .remove(0)
            .job;
        assert_eq!(failed_claim(&job), None);
        job.status = serde_json::from_value(serde_json::json!({"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
             "message": "Job has reached the specified backoff limit"}]}))
        .unwrap();
        let failed = vec![failed_claim(&job).unwrap()];
        assert_eq!(failed[0].0, "nfs-pvc");
        assert!(
            failed[0].1.contains("BackoffLimitExceeded"),
            "{}",
            failed[0].1
        );

        let targets = super::super::build::initial_targets(
            pvc.invoker(),
            &std::collections::BTreeMap::new(),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let mut status = BackupSessionStatus {
            targets: Some(targets),
            ..BackupSessionStatus::default()
        };
        assert!(record_failed_jobs(
            &mut status,
            &failed,
            Timestamp::UNIX_EPOCH
        ));
        assert!(!record_failed_jobs(
            &mut status,
            &failed,
            Timestamp::UNIX_EPOCH
        ));
        let target = &status.targets.as_ref().unwrap()[0];
        assert_eq!(
            super::super::phase::target_phase(target),
            stash_api::phase::TargetPhase::Failed
        );
        assert!(super::super::phase::backup_completed(
            &BackupSessionStatus {
                targets: Some(vec![target.clone()]),
                ..BackupSessionStatus::default()
            }
        ));

        let mut recorded = BackupSessionStatus {
            targets: Some(
                super::super::build::initial_targets(
                    pvc.invoker(),
                    &std::collections::BTreeMap::new(),
                    Timestamp::UNIX_EPOCH,
                )
                .unwrap(),
            ),
            ..BackupSessionStatus::default()
        };
        recorded.targets.as_mut().unwrap()[0].stats = Some(vec![
            serde_json::from_value(
                serde_json::json!({"hostname": "host-0", "phase": "Failed", "error": "boom"}),
            )
            .unwrap(),
        ]);
        assert!(!record_failed_jobs(
            &mut recorded,
            &failed,
            Timestamp::UNIX_EPOCH
        ));
    }

    #[test]
    fn a_claim_target_gets_one_job_and_one_running_host_and_a_workload_target_no_job() {
        let pvc = invoker(PVC_EXAMPLE);
        assert!(has_claim_targets(&pvc));
        let jobs = build(&session(), &pvc, &repository(), &Settings::default()).unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].job.name_any(), "stash-backup-s-1-0");

        let targets = super::super::build::initial_targets(
            pvc.invoker(),
            &std::collections::BTreeMap::new(),
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(targets[0].total_hosts, Some(1));
        assert_eq!(
            targets[0].phase,
            Some(stash_api::phase::TargetPhase::Running)
        );

        let deployment = invoker(DEPLOYMENT_EXAMPLE);
        assert!(!has_claim_targets(&deployment));
        assert!(
            build(&session(), &deployment, &repository(), &Settings::default())
                .unwrap()
                .is_empty()
        );
    }
}
