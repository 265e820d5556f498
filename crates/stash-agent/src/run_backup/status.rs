//! Reading and writing the session status the operator and every host share
//! (docs/session-protocol.md): read-modify-write with the object's `resourceVersion`, again on 409.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::PostParams;
use stash_api::common::TargetRef;
use stash_api::condition::{Condition, ConditionStatus, ConditionType};
use stash_api::labels;
use stash_api::phase::HostBackupPhase;
use stash_api::v1beta1::{BackupSession, BackupSessionStatus, BackupTargetStatus, HostBackupStats};

/// Conflicts in a row before giving up: every host of a StatefulSet may write at once.
const CONFLICT_RETRIES: u32 = 20;

/// Why a status write failed.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("failed to read BackupSession {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "failed to write the status of BackupSession {namespace}/{name}; check the sidecar's service account may update backupsessions/status"
    )]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "BackupSession {namespace}/{name}: the status changed under us {CONFLICT_RETRIES} times in a row; giving up on this write"
    )]
    Conflicts { namespace: String, name: String },
}

/// Applies `change` to the freshest status of session `name` and writes it through the status
/// subresource (unless it changed nothing). Returns the session as written or as read.
pub async fn update(
    api: &Api<BackupSession>,
    namespace: &str,
    name: &str,
    mut change: impl FnMut(&mut BackupSessionStatus),
) -> Result<BackupSession, StatusError> {
    let params = PostParams {
        field_manager: Some(labels::FIELD_MANAGER_AGENT.to_owned()),
        ..PostParams::default()
    };
    for _ in 0..CONFLICT_RETRIES {
        let mut current = api.get(name).await.map_err(|source| StatusError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })?;
        let mut status = current.status.clone().unwrap_or_default();
        change(&mut status);
        if current.status.as_ref() == Some(&status) {
            return Ok(current);
        }
        current.status = Some(status);
        match api.replace_status(name, &params, &current).await {
            Ok(written) => return Ok(written),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(StatusError::Write {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    source,
                });
            }
        }
    }
    Err(StatusError::Conflicts {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// Whether a status target entry is the one for `target` (by kind, name and namespace; the
/// apiVersion is left out because clients write it in different forms).
#[must_use]
pub fn is_target(entry: &BackupTargetStatus, target: &TargetRef, default_namespace: &str) -> bool {
    entry.reference.as_ref().is_some_and(|r| {
        r.kind == target.kind
            && r.name == target.name
            && r.namespace.as_deref().unwrap_or(default_namespace)
                == target.namespace.as_deref().unwrap_or(default_namespace)
    })
}

/// The status entry of `target`, if the operator wrote one.
#[must_use]
pub fn target_entry<'a>(
    status: &'a BackupSessionStatus,
    target: &TargetRef,
    default_namespace: &str,
) -> Option<&'a BackupTargetStatus> {
    status
        .targets
        .iter()
        .flatten()
        .find(|t| is_target(t, target, default_namespace))
}

/// The host's entry in a target's `stats[]`.
#[must_use]
pub fn host_entry<'a>(target: &'a BackupTargetStatus, host: &str) -> Option<&'a HostBackupStats> {
    target
        .stats
        .iter()
        .flatten()
        .find(|s| s.hostname.as_deref() == Some(host))
}

/// Upserts `entry` by hostname into the target entry of `target`. Returns false when the
/// operator has not written that target entry (nothing to upsert into).
pub fn upsert_host(
    status: &mut BackupSessionStatus,
    target: &TargetRef,
    default_namespace: &str,
    entry: HostBackupStats,
) -> bool {
    let Some(target_status) = status
        .targets
        .iter_mut()
        .flatten()
        .find(|t| is_target(t, target, default_namespace))
    else {
        return false;
    };
    let host_entries = target_status.stats.get_or_insert_with(Vec::new);
    match host_entries
        .iter_mut()
        .find(|s| s.hostname == entry.hostname)
    {
        Some(old) => *old = entry,
        None => host_entries.push(entry),
    }
    true
}

/// Hosts of a target whose entry is final.
#[must_use]
pub fn final_hosts(target: &BackupTargetStatus) -> usize {
    target
        .stats
        .iter()
        .flatten()
        .filter(|s| {
            matches!(
                s.phase,
                Some(HostBackupPhase::Succeeded | HostBackupPhase::Failed)
            )
        })
        .count()
}

/// The session condition `type_`, if set.
#[must_use]
pub fn condition(status: &BackupSessionStatus, type_: ConditionType) -> Option<&Condition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// A condition set now: True with `reason`, or False with the error as message.
#[must_use]
pub fn new_condition(type_: ConditionType, outcome: Result<&str, &str>, reason: &str) -> Condition {
    let (status, message) = match outcome {
        Ok(message) => (ConditionStatus::True, message),
        Err(message) => (ConditionStatus::False, message),
    };
    Condition {
        type_,
        status,
        observed_generation: None,
        last_transition_time: Some(Time(Timestamp::now())),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
    }
}

/// Upserts `new` by type; `lastTransitionTime` changes only when the status does.
pub fn set_condition(conditions: &mut Option<Vec<Condition>>, mut new: Condition) {
    let list = conditions.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.take();
            }
            *old = new;
        }
        None => list.push(new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_ref(kind: &str, name: &str, ns: Option<&str>) -> TargetRef {
        TargetRef {
            api_version: Some("apps/v1".into()),
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(str::to_owned),
        }
    }

    fn host(name: &str, phase: Option<HostBackupPhase>) -> HostBackupStats {
        HostBackupStats {
            hostname: Some(name.into()),
            phase,
            ..HostBackupStats::default()
        }
    }

    #[test]
    fn a_host_entry_is_upserted_by_hostname_into_its_own_target_only() {
        let mut status = BackupSessionStatus {
            targets: Some(vec![
                BackupTargetStatus {
                    reference: Some(target_ref("Deployment", "a", Some("demo"))),
                    ..BackupTargetStatus::default()
                },
                BackupTargetStatus {
                    reference: Some(target_ref("StatefulSet", "b", None)),
                    stats: Some(vec![host("host-0", None), host("host-1", None)]),
                    ..BackupTargetStatus::default()
                },
            ]),
            ..BackupSessionStatus::default()
        };
        let b = target_ref("StatefulSet", "b", Some("demo"));
        assert!(upsert_host(
            &mut status,
            &b,
            "demo",
            host("host-1", Some(HostBackupPhase::Failed))
        ));
        let targets = status.targets.as_ref().unwrap();
        assert_eq!(targets[0].stats, None);
        assert_eq!(final_hosts(&targets[1]), 1);
        assert_eq!(targets[1].stats.as_ref().unwrap().len(), 2);
        assert!(!upsert_host(
            &mut status,
            &target_ref("DaemonSet", "c", None),
            "demo",
            host("n", None)
        ));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_stays() {
        let mut conditions = None;
        let mut first = new_condition(ConditionType::RetentionPolicyApplied, Ok("done"), "R");
        first.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
        set_condition(&mut conditions, first);
        set_condition(
            &mut conditions,
            new_condition(ConditionType::RetentionPolicyApplied, Ok("again"), "R"),
        );
        let list = conditions.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].message.as_deref(), Some("again"));
        assert_eq!(
            list[0].last_transition_time,
            Some(Time(Timestamp::UNIX_EPOCH))
        );
    }
}
