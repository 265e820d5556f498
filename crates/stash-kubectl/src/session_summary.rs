//! What `kubectl stash trigger` prints once its BackupSession is final: the phase, one line per
//! target and host, and for a Failed or Skipped session why. Pure: reads only the session status.

use std::fmt::Write as _;

use stash_api::condition::{Condition, ConditionStatus, ConditionType};
use stash_api::phase::{BackupSessionPhase, HostBackupPhase};
use stash_api::v1beta1::{BackupSession, BackupTargetStatus, HostBackupStats};

/// The session's phase (`Unknown` while it has none).
#[must_use]
pub fn phase(session: &BackupSession) -> BackupSessionPhase {
    session
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .unwrap_or(BackupSessionPhase::Unknown)
}

/// `BackupSession demo/x Succeeded in 43s`, then per target `Deployment/stash-demo: Succeeded
/// (1/1 hosts)` and per host its phase, duration and snapshots, or its error.
#[must_use]
pub fn render(session: &BackupSession) -> String {
    let status = session.status.clone().unwrap_or_default();
    let mut out = format!(
        "BackupSession {}/{} {:?}",
        session.metadata.namespace.as_deref().unwrap_or_default(),
        session.metadata.name.as_deref().unwrap_or_default(),
        phase(session)
    );
    if let Some(duration) = &status.session_duration {
        let _ = write!(out, " in {duration}");
    }
    out.push('\n');
    for target in status.targets.iter().flatten() {
        render_target(&mut out, target);
    }
    out
}

fn render_target(out: &mut String, target: &BackupTargetStatus) {
    let name = target
        .reference
        .as_ref()
        .map_or_else(|| "target".to_owned(), |r| format!("{}/{}", r.kind, r.name));
    let hosts = target.stats.as_deref().unwrap_or_default();
    let done = hosts.iter().filter(|host| host.phase.is_some()).count();
    let total = target
        .total_hosts
        .map_or_else(|| "?".to_owned(), |n| n.to_string());
    let phase = target
        .phase
        .map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}"));
    let _ = writeln!(out, "  {name}: {phase} ({done}/{total} hosts)");
    for host in hosts {
        render_host(out, host);
    }
}

fn render_host(out: &mut String, host: &HostBackupStats) {
    let name = host.hostname.as_deref().unwrap_or("?");
    let phase = host
        .phase
        .map_or_else(|| "Running".to_owned(), |p| format!("{p:?}"));
    let _ = write!(out, "    {name:<16} {phase:<9}");
    if let Some(duration) = &host.duration {
        let _ = write!(out, " {duration}");
    }
    if host.phase == Some(HostBackupPhase::Failed) {
        let _ = write!(
            out,
            "  error: {}",
            host.error.as_deref().unwrap_or("unknown")
        );
    }
    out.push('\n');
    for snapshot in host.snapshots.iter().flatten() {
        let _ = write!(
            out,
            "      snapshot {} {}",
            snapshot.name.as_deref().unwrap_or("?"),
            snapshot.path.as_deref().unwrap_or_default()
        );
        if let Some(size) = &snapshot.total_size {
            let _ = write!(out, " ({size}");
            if let Some(uploaded) = &snapshot.uploaded {
                let _ = write!(out, ", {uploaded} uploaded");
            }
            out.push(')');
        }
        out.push('\n');
    }
}

/// Why a final session did not succeed: the `BackupSkipped` message of a Skipped session; for a
/// Failed one the errors of its failed hosts and every condition that reports a failure
/// (`status: False`, or `DeadlineExceeded`/`BackupSkipped` `True`). `None` for a Succeeded session.
#[must_use]
pub fn failure_reason(session: &BackupSession) -> Option<String> {
    let status = session.status.as_ref();
    let session_conditions = || {
        status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
    };
    let targets = || {
        status
            .and_then(|s| s.targets.as_ref())
            .into_iter()
            .flatten()
    };
    match phase(session) {
        BackupSessionPhase::Succeeded => None,
        BackupSessionPhase::Skipped => Some(
            session_conditions()
                .find(|c| c.type_ == ConditionType::BackupSkipped)
                .map_or_else(
                    || "the operator skipped it without saying why".to_owned(),
                    describe,
                ),
        ),
        _ => {
            let hosts = targets()
                .flat_map(|t| t.stats.iter().flatten())
                .filter(|h| h.phase == Some(HostBackupPhase::Failed))
                .map(|h| {
                    format!(
                        "host {}: {}",
                        h.hostname.as_deref().unwrap_or("?"),
                        h.error
                            .as_deref()
                            .unwrap_or("failed without an error message")
                    )
                });
            let failed_conditions = session_conditions()
                .chain(targets().flat_map(|t| t.conditions.iter().flatten()))
                .filter(|c| reports_failure(c))
                .map(describe);
            let reasons: Vec<String> = hosts.chain(failed_conditions).collect();
            Some(if reasons.is_empty() {
                "no host or condition names the cause; see kubectl describe backupsession"
                    .to_owned()
            } else {
                reasons.join("; ")
            })
        }
    }
}

/// `Ok` for a Succeeded session; otherwise the error naming the session, its phase and why.
pub fn verdict(session: &BackupSession) -> Result<(), crate::KubectlError> {
    match failure_reason(session) {
        None => Ok(()),
        Some(reason) => Err(crate::KubectlError::SessionNotSucceeded {
            namespace: session.metadata.namespace.clone().unwrap_or_default(),
            name: session.metadata.name.clone().unwrap_or_default(),
            phase: format!("{:?}", phase(session)),
            reason,
        }),
    }
}

fn reports_failure(condition: &Condition) -> bool {
    match condition.type_ {
        // A skipped session whose metrics push failed ends Failed; the skip is still the cause.
        ConditionType::DeadlineExceeded | ConditionType::BackupSkipped => {
            condition.status == ConditionStatus::True
        }
        _ => condition.status == ConditionStatus::False,
    }
}

/// `Type (Reason): message`, leaving out what the condition lacks.
fn describe(condition: &Condition) -> String {
    let mut text = format!("{:?}", condition.type_);
    if let Some(reason) = &condition.reason {
        let _ = write!(text, " ({reason})");
    }
    if let Some(message) = &condition.message {
        let _ = write!(text, ": {message}");
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stash_api::v1beta1::BackupSession;

    use super::{failure_reason, render};

    fn session(status: &serde_json::Value) -> BackupSession {
        serde_json::from_value(json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
            "metadata": {"name": "deployment-backup-1700000000", "namespace": "demo"},
            "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration",
                                 "name": "deployment-backup"}},
            "status": status
        }))
        .expect("a valid BackupSession")
    }

    #[test]
    fn a_succeeded_session_prints_its_duration_every_host_and_its_snapshots() {
        let s = session(&json!({
            "phase": "Succeeded", "sessionDuration": "43s",
            "targets": [{"ref": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db"},
                         "totalHosts": 2, "phase": "Succeeded",
                         "stats": [
                             {"hostname": "host-0", "phase": "Succeeded", "duration": "12s",
                              "snapshots": [{"name": "a1b2c3d4", "path": "/source/data",
                                             "totalSize": "1.2 MiB", "uploaded": "300 KiB"}]},
                             {"hostname": "host-1", "phase": "Succeeded", "duration": "9s"}]}]
        }));
        let text = render(&s);
        assert!(
            text.starts_with("BackupSession demo/deployment-backup-1700000000 Succeeded in 43s\n"),
            "{text}"
        );
        assert!(
            text.contains("StatefulSet/db: Succeeded (2/2 hosts)"),
            "{text}"
        );
        assert!(text.contains("host-0           Succeeded 12s"), "{text}");
        assert!(
            text.contains("snapshot a1b2c3d4 /source/data (1.2 MiB, 300 KiB uploaded)"),
            "{text}"
        );
        assert!(text.contains("host-1"), "{text}");
        assert_eq!(failure_reason(&s), None);
    }

    #[test]
    fn a_skipped_session_is_explained_by_its_backup_skipped_condition() {
        let s = session(&json!({
            "phase": "Skipped",
            "conditions": [
                {"type": "BackupSkipped", "status": "True", "reason": "SkippedTakingNewBackup",
                 "message": "Skipped taking new backup. Reason: Previous BackupSession: b-1 is \"Running\"."},
                {"type": "MetricsPushed", "status": "True"}]
        }));
        let reason = failure_reason(&s).expect("a reason");
        assert!(
            reason
                .starts_with("BackupSkipped (SkippedTakingNewBackup): Skipped taking new backup."),
            "{reason}"
        );
        assert!(reason.contains("b-1"), "{reason}");
    }

    #[test]
    fn a_failed_session_names_the_failed_hosts_and_the_conditions_that_failed() {
        let s = session(&json!({
            "phase": "Failed",
            "conditions": [
                {"type": "BackendRepositoryInitialized", "status": "True"},
                {"type": "RetentionPolicyApplied", "status": "False", "message": "forget: lock held"},
                {"type": "DeadlineExceeded", "status": "True", "reason": "FailedToCompleteWithinDeadline"}],
            "targets": [{"ref": {"kind": "Deployment", "name": "app"}, "totalHosts": 1, "phase": "Failed",
                         "stats": [{"hostname": "host-0", "phase": "Failed",
                                    "error": "cannot read /source/data/x: permission denied"}]}]
        }));
        let reason = failure_reason(&s).expect("a reason");
        assert_eq!(
            reason,
            "host host-0: cannot read /source/data/x: permission denied; \
             RetentionPolicyApplied: forget: lock held; \
             DeadlineExceeded (FailedToCompleteWithinDeadline)"
        );
        assert!(render(&s).contains("error: cannot read /source/data/x"));
    }
}
