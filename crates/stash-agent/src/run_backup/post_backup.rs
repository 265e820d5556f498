//! The post-backup actions the last host of the last target runs (protocol step 6, §8.6 step 8):
//! retention, integrity check, repository metrics and status. Each runs only if its condition is
//! absent, so a restarted sidecar resumes where it stopped.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use stash_api::condition::ConditionType;
use stash_api::labels;
use stash_api::units::format_size;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupTargetStatus;
use stash_engine::{CheckRequest, Control, Engine, RetentionPolicy, SnapshotFilter};

use super::backup::error_chain;
use super::invoker::TargetSettings;
use super::metrics::MetricsPusher;
use super::{SessionHandle, status};

pub const APPLY_RETENTION_POLICY: &str = "ApplyRetentionPolicy";
pub const VERIFY_REPOSITORY_INTEGRITY: &str = "VerifyRepositoryIntegrity";
pub const SEND_REPOSITORY_METRICS: &str = "SendRepositoryMetrics";

/// Stash's condition reasons for the three actions.
pub mod reason {
    pub const RETENTION_APPLIED: &str = "SuccessfullyAppliedRetentionPolicy";
    pub const RETENTION_FAILED: &str = "FailedToApplyRetentionPolicy";
    pub const INTEGRITY_VERIFIED: &str = "SuccessfullyVerifiedRepositoryIntegrity";
    pub const INTEGRITY_FAILED: &str = "FailedToVerifyRepositoryIntegrity";
    pub const METRICS_PUSHED: &str = "SuccessfullyPushedRepositoryMetrics";
    pub const METRICS_FAILED: &str = "FailedToPushRepositoryMetrics";
}

/// When the repository cannot be reached at all, each listed post action fails with why, so the
/// operator can finish the session (the sidecar's last host and the job model's `update-status`).
pub(crate) async fn fail_post_actions(handle: &SessionHandle, actions: &[String], message: &str) {
    let types = [
        (
            APPLY_RETENTION_POLICY,
            ConditionType::RetentionPolicyApplied,
            reason::RETENTION_FAILED,
        ),
        (
            VERIFY_REPOSITORY_INTEGRITY,
            ConditionType::RepositoryIntegrityVerified,
            reason::INTEGRITY_FAILED,
        ),
        (
            SEND_REPOSITORY_METRICS,
            ConditionType::RepositoryMetricsPushed,
            reason::METRICS_FAILED,
        ),
    ];
    let written = status::update(&handle.api, &handle.namespace, &handle.name, |s| {
        for (action, type_, reason) in types {
            if actions.iter().any(|a| a == action) && status::condition(s, type_).is_none() {
                status::set_condition(
                    &mut s.conditions,
                    status::new_condition(type_, Err(message), reason),
                );
            }
        }
    })
    .await;
    if let Err(err) = written {
        tracing::error!(error = %err, "could not record the failed post-backup actions");
    }
}

/// Whether this host runs the post-backup actions: its final entry was the one that made
/// (succeeded + failed) == `totalHosts` on a target that carries them. `written` is this host's
/// target entry as its final write left it.
#[must_use]
pub fn runs_post_actions(written: &BackupTargetStatus) -> bool {
    let has_actions = written
        .post_backup_actions
        .as_ref()
        .is_some_and(|actions| !actions.is_empty());
    let total = written.total_hosts.and_then(|n| usize::try_from(n).ok());
    has_actions && total.is_some_and(|total| status::final_hosts(written) == total)
}

/// The engine's retention policy from Stash's (counts ≤ 0 are "not set", as Stash omits them).
#[must_use]
pub fn engine_policy(policy: &stash_api::common::RetentionPolicy) -> RetentionPolicy {
    let count = |n: Option<i64>| {
        n.filter(|&n| n > 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    RetentionPolicy {
        keep_last: count(policy.keep_last),
        keep_hourly: count(policy.keep_hourly),
        keep_daily: count(policy.keep_daily),
        keep_weekly: count(policy.keep_weekly),
        keep_monthly: count(policy.keep_monthly),
        keep_yearly: count(policy.keep_yearly),
        keep_tags: policy.keep_tags.clone().unwrap_or_default(),
    }
}

/// What the post actions share.
pub struct PostBackup<'a> {
    pub engine: &'a Engine,
    pub control: &'a Control,
    pub session: &'a SessionHandle,
    pub settings: &'a TargetSettings,
    pub repository: &'a Repository,
    pub metrics: &'a MetricsPusher,
    pub client: &'a kube::Client,
}

impl PostBackup<'_> {
    /// Runs the actions `actions` lists, each unless its condition already exists; `hosts`
    /// are all hosts of the target (retention looks at their snapshots only).
    pub async fn run(&self, actions: &[String], hosts: Vec<String>, session_created: Option<Time>) {
        let mut removed = None;
        let mut integrity = None;
        if self
            .wants(
                actions,
                APPLY_RETENTION_POLICY,
                ConditionType::RetentionPolicyApplied,
            )
            .await
        {
            let outcome = self.apply_retention(hosts).await;
            removed = outcome.as_ref().ok().copied();
            let message = outcome.map(|n| {
                format!(
                    "{n} snapshot(s) removed by retention policy {}",
                    self.settings.retention_policy.name
                )
            });
            self.set(
                ConditionType::RetentionPolicyApplied,
                message,
                reason::RETENTION_APPLIED,
                reason::RETENTION_FAILED,
            )
            .await;
        }
        if self
            .wants(
                actions,
                VERIFY_REPOSITORY_INTEGRITY,
                ConditionType::RepositoryIntegrityVerified,
            )
            .await
        {
            let outcome = self.verify().await;
            integrity = Some(outcome.is_ok());
            self.set(
                ConditionType::RepositoryIntegrityVerified,
                outcome.map(|()| "repository integrity verified".to_owned()),
                reason::INTEGRITY_VERIFIED,
                reason::INTEGRITY_FAILED,
            )
            .await;
        }
        if self
            .wants(
                actions,
                SEND_REPOSITORY_METRICS,
                ConditionType::RepositoryMetricsPushed,
            )
            .await
        {
            let outcome = self.send_metrics(integrity, removed, session_created).await;
            self.set(
                ConditionType::RepositoryMetricsPushed,
                outcome,
                reason::METRICS_PUSHED,
                reason::METRICS_FAILED,
            )
            .await;
        }
    }

    /// The action is listed and its condition is absent in the freshest status.
    async fn wants(&self, actions: &[String], action: &str, condition: ConditionType) -> bool {
        if !actions.iter().any(|a| a == action) {
            return false;
        }
        match self.session.api.get(&self.session.name).await {
            Ok(fresh) => fresh
                .status
                .as_ref()
                .is_none_or(|s| status::condition(s, condition).is_none()),
            Err(err) => {
                tracing::warn!(
                    error = &err as &dyn std::error::Error,
                    "could not re-read the session; running {action}"
                );
                true
            }
        }
    }

    async fn set(
        &self,
        type_: ConditionType,
        outcome: Result<String, String>,
        ok: &str,
        failed: &str,
    ) {
        let (result, reason) = match &outcome {
            Ok(message) => (Ok(message.as_str()), ok),
            Err(message) => {
                tracing::warn!(condition = ?type_, error = %message, "post-backup action failed");
                (Err(message.as_str()), failed)
            }
        };
        let condition = status::new_condition(type_, result, reason);
        let written = status::update(
            &self.session.api,
            &self.session.namespace,
            &self.session.name,
            |s| {
                status::set_condition(&mut s.conditions, condition.clone());
            },
        )
        .await;
        if let Err(err) = written {
            tracing::error!(error = &err as &dyn std::error::Error, condition = ?type_, "could not record the condition");
        }
    }

    /// forget (and prune) as the invoker's `retentionPolicy` says; the number of snapshots removed.
    async fn apply_retention(&self, hosts: Vec<String>) -> Result<u64, String> {
        let stash_policy = &self.settings.retention_policy;
        let policy = engine_policy(stash_policy);
        if policy.is_empty() {
            // Stash runs no forget without a keep rule.
            return Ok(0);
        }
        let dry_run = stash_policy.dry_run.unwrap_or(false);
        let filter = SnapshotFilter {
            hosts,
            ..SnapshotFilter::default()
        };
        let report = self
            .engine
            .forget(policy, filter, dry_run, self.control)
            .await
            .map_err(|err| {
                format!(
                    "forget with retention policy {} failed: {}",
                    stash_policy.name,
                    error_chain(&err)
                )
            })?;
        if stash_policy.prune && !dry_run {
            self.engine
                .prune(false, self.control)
                .await
                .map_err(|err| format!("prune after forget failed: {}", error_chain(&err)))?;
        }
        Ok(if dry_run {
            0
        } else {
            report.remove.len() as u64
        })
    }

    async fn verify(&self) -> Result<(), String> {
        let report = self
            .engine
            .check(CheckRequest::default(), self.control)
            .await
            .map_err(|err| format!("check failed: {}", error_chain(&err)))?;
        if report.is_ok() {
            Ok(())
        } else {
            Err(format!(
                "repository check found errors: {}",
                report.errors.join("; ")
            ))
        }
    }

    /// Repository status (§3.3) and repository metrics.
    async fn send_metrics(
        &self,
        integrity: Option<bool>,
        removed: Option<u64>,
        session_created: Option<Time>,
    ) -> Result<String, String> {
        let stats =
            self.engine.stats(self.control).await.map_err(|err| {
                format!("reading the repository size failed: {}", error_chain(&err))
            })?;
        let namespace = &self.settings.repository_namespace;
        let name = &self.settings.repository_name;
        let mut repository_status = serde_json::json!({
            "lastBackupTime": session_created.unwrap_or(Time(Timestamp::now())),
            "totalSize": format_size(stats.total_size),
            "snapshotCount": stats.snapshot_count,
        });
        if let Some(integrity) = integrity {
            repository_status["integrity"] = integrity.into();
        }
        if let Some(removed) = removed {
            repository_status["snapshotsRemovedOnLastCleanup"] = removed.into();
        }
        let params = PatchParams {
            field_manager: Some(labels::FIELD_MANAGER_AGENT.to_owned()),
            ..PatchParams::default()
        };
        Api::<Repository>::namespaced(self.client.clone(), namespace)
            .patch_status(
                name,
                &params,
                &Patch::Merge(serde_json::json!({ "status": repository_status })),
            )
            .await
            .map_err(|err| {
                format!(
                    "failed to update the status of Repository {namespace}/{name}: {}",
                    error_chain(&err)
                )
            })?;
        let pushed = self
            .metrics
            .push_repository(
                self.repository,
                integrity,
                stats.total_size,
                stats.snapshot_count,
                removed.unwrap_or(0),
            )
            .await?;
        Ok(if pushed {
            "repository status updated and metrics pushed".to_owned()
        } else {
            "repository status updated (metrics are disabled)".to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    use stash_api::phase::HostBackupPhase;
    use stash_api::v1beta1::HostBackupStats;

    use super::*;

    fn target(total: i32, phases: &[Option<HostBackupPhase>], post: bool) -> BackupTargetStatus {
        BackupTargetStatus {
            total_hosts: Some(total),
            stats: Some(
                phases
                    .iter()
                    .enumerate()
                    .map(|(i, phase)| HostBackupStats {
                        hostname: Some(format!("host-{i}")),
                        phase: *phase,
                        ..HostBackupStats::default()
                    })
                    .collect(),
            ),
            post_backup_actions: post.then(|| {
                vec![
                    APPLY_RETENTION_POLICY.to_owned(),
                    VERIFY_REPOSITORY_INTEGRITY.to_owned(),
                    SEND_REPOSITORY_METRICS.to_owned(),
                ]
            }),
            ..BackupTargetStatus::default()
        }
    }

    #[test]
    fn the_host_completing_the_last_target_runs_the_post_actions_failed_hosts_included() {
        use HostBackupPhase::{Failed, Succeeded};
        assert!(runs_post_actions(&target(1, &[Some(Succeeded)], true)));
        assert!(runs_post_actions(&target(
            3,
            &[Some(Succeeded), Some(Failed), Some(Succeeded)],
            true
        )));
        assert!(!runs_post_actions(&target(
            3,
            &[Some(Succeeded), None, Some(Succeeded)],
            true
        )));
        assert!(!runs_post_actions(&target(
            3,
            &[Some(Succeeded), Some(Succeeded)],
            true
        )));
    }

    #[test]
    fn a_target_without_post_actions_never_runs_them() {
        assert!(!runs_post_actions(&target(
            1,
            &[Some(HostBackupPhase::Succeeded)],
            false
        )));
    }

    #[test]
    fn unset_and_zero_counts_are_left_out_of_the_engine_policy() {
        let policy: stash_api::common::RetentionPolicy = serde_json::from_value(serde_json::json!({
            "name": "keep-last-5", "keepLast": 5, "keepDaily": 0, "keepTags": ["weekly"], "prune": true
        }))
        .unwrap();
        let engine = engine_policy(&policy);
        assert_eq!(engine.keep_last, Some(5));
        assert_eq!(engine.keep_daily, None);
        assert_eq!(engine.keep_tags, vec!["weekly".to_owned()]);
        let empty: stash_api::common::RetentionPolicy =
            serde_json::from_value(serde_json::json!({"name": "none", "prune": false})).unwrap();
        assert!(engine_policy(&empty).is_empty());
    }
}
