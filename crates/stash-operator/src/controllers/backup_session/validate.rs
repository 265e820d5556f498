//! Stage 2: whether a new session is skipped (§9.2 step 4): its invoker is missing or not Ready, or
//! another session of the same invoker is Running. Pure; the message is what `BackupSkipped` and the
//! Event say.

use kube::ResourceExt;
use stash_api::phase::{BackupInvokerPhase, BackupSessionPhase};
use stash_api::v1beta1::BackupSession;

use super::dereference::{InvokerKey, InvokerKeyProblem, InvokerObject};

/// Why `session` is skipped, or `None` if it runs.
#[must_use]
pub fn skip_reason(
    session: &BackupSession,
    key: Result<&InvokerKey, &InvokerKeyProblem>,
    invoker: Option<&InvokerObject>,
    siblings: &[BackupSession],
) -> Option<String> {
    let key = match key {
        Ok(key) => key,
        Err(InvokerKeyProblem::Missing) => {
            return Some(
                "Skipped taking backup. Reason: the BackupSession names no invoker; set spec.invoker \
                 (kind BackupConfiguration or BackupBatch, and name)."
                    .to_owned(),
            );
        }
        Err(InvokerKeyProblem::UnknownKind(kind)) => {
            return Some(format!(
                "Skipped taking backup. Reason: spec.invoker.kind `{kind}` is neither \
                 BackupConfiguration nor BackupBatch; fix spec.invoker.kind."
            ));
        }
    };
    let Some(invoker) = invoker else {
        return Some(format!(
            "Skipped taking backup. Reason: {key} not found; create it or fix spec.invoker."
        ));
    };
    if invoker.invoker().metadata().deletion_timestamp.is_some() {
        return Some(format!(
            "Skipped taking backup. Reason: {key} is being deleted."
        ));
    }
    match invoker.phase() {
        Some(BackupInvokerPhase::Ready) => {}
        phase => {
            let phase = phase.map_or_else(|| "no phase yet".to_owned(), |p| format!("phase {p:?}"));
            return Some(format!(
                "Skipped taking backup. Reason: {key} is not ready ({phase}); see its conditions."
            ));
        }
    }
    let own_name = session.name_any();
    siblings
        .iter()
        .find(|other| {
            other.name_any() != own_name
                && other.status.as_ref().and_then(|s| s.phase) == Some(BackupSessionPhase::Running)
        })
        .map(|running| {
            format!(
                "Skipped taking new backup. Reason: Previous BackupSession: {} is \"Running\".",
                running.name_any()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoker::BackupInvokerKind;
    use stash_api::v1beta1::BackupConfiguration;

    fn session(name: &str, phase: Option<&str>) -> BackupSession {
        let status = phase.map_or(serde_json::Value::Null, |p| serde_json::json!({"phase": p}));
        serde_json::from_value(serde_json::json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"invoker": {"apiGroup": "stash.appscode.com", "kind": "BackupConfiguration",
                                 "name": "deployment-backup"}},
            "status": status,
        }))
        .unwrap()
    }

    fn invoker(phase: &str) -> InvokerObject {
        let bc: BackupConfiguration = serde_yaml::from_str(&format!(
            "
            apiVersion: stash.appscode.com/v1beta1
            kind: BackupConfiguration
            metadata: {{name: deployment-backup, namespace: demo}}
            spec:
              repository: {{name: gcs-repo}}
              retentionPolicy: {{name: keep-last-5, keepLast: 5, prune: true}}
            status: {{phase: {phase}}}
            "
        ))
        .unwrap();
        InvokerObject::Configuration(Box::new(bc))
    }

    fn key() -> InvokerKey {
        InvokerKey {
            kind: BackupInvokerKind::BackupConfiguration,
            namespace: "demo".to_owned(),
            name: "deployment-backup".to_owned(),
        }
    }

    #[test]
    fn a_session_of_a_ready_invoker_with_no_running_sibling_runs() {
        let me = session("deployment-backup-2", None);
        let siblings = [
            me.clone(),
            session("deployment-backup-1", Some("Succeeded")),
        ];
        assert_eq!(
            skip_reason(&me, Ok(&key()), Some(&invoker("Ready")), &siblings),
            None
        );
    }

    #[test]
    fn a_session_is_skipped_while_another_of_its_invoker_runs() {
        let me = session("deployment-backup-2", None);
        let siblings = [me.clone(), session("deployment-backup-1", Some("Running"))];
        assert_eq!(
            skip_reason(&me, Ok(&key()), Some(&invoker("Ready")), &siblings).as_deref(),
            Some(
                "Skipped taking new backup. Reason: Previous BackupSession: deployment-backup-1 is \"Running\"."
            )
        );
    }

    #[test]
    fn a_session_of_an_invoker_that_is_not_ready_or_missing_is_skipped_naming_it() {
        let me = session("deployment-backup-2", None);
        let not_ready = skip_reason(&me, Ok(&key()), Some(&invoker("NotReady")), &[]).unwrap();
        assert_eq!(
            not_ready,
            "Skipped taking backup. Reason: BackupConfiguration demo/deployment-backup is not ready (phase NotReady); see its conditions."
        );
        let missing = skip_reason(&me, Ok(&key()), None, &[]).unwrap();
        assert!(
            missing.contains("BackupConfiguration demo/deployment-backup not found"),
            "{missing}"
        );
    }

    #[test]
    fn a_session_naming_no_invoker_or_an_unknown_kind_is_skipped_with_the_field_to_fix() {
        let me = session("x", None);
        let missing = skip_reason(&me, Err(&InvokerKeyProblem::Missing), None, &[]).unwrap();
        assert!(missing.contains("set spec.invoker"), "{missing}");
        let unknown = skip_reason(
            &me,
            Err(&InvokerKeyProblem::UnknownKind("RestoreSession".to_owned())),
            None,
            &[],
        )
        .unwrap();
        assert!(unknown.contains("`RestoreSession`"), "{unknown}");
    }
}
