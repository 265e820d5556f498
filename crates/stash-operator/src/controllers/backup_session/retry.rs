//! §9.5: a Failed session with `spec.retryLeft > 0` that was not retried yet gets `status.nextRetry =
//! now + retryConfig.delay`; once that time has come, the next session of the invoker is created (named,
//! labelled and owned as the trigger does, §5.2) with one retry less, and `status.retried = true`. Pure.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stash_api::common::RetryConfig;
use stash_api::labels::{
    COMPONENT_BACKUP, GROUP, LABEL_COMPONENT, LABEL_INVOKER_NAME, LABEL_INVOKER_TYPE,
    LABEL_MANAGED_BY, LABEL_TARGET_KIND, LABEL_TARGET_NAME, LABEL_TARGET_NAMESPACE, MANAGED_BY,
};
use stash_api::phase::BackupSessionPhase;
use stash_api::v1beta1::{BackupInvokerRef, BackupSession, BackupSessionSpec};

use super::dereference::InvokerObject;
use crate::invoker::BackupInvoker;

/// Longest BackupSession name (a DNS-1123 label).
pub const MAX_NAME_LENGTH: usize = 63;

/// What to do about a final session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryStep {
    /// Not failed, no retries left, already retried, or the invoker has no `retryConfig`.
    Nothing,
    /// Record `status.nextRetry` at this time.
    Schedule(Timestamp),
    /// `status.nextRetry` is in the future.
    WaitUntil(Timestamp),
    /// Create the next session now.
    CreateNow,
}

/// The retry step for `session`, whose invoker has `retry_config`.
#[must_use]
pub fn retry_step(
    session: &BackupSession,
    retry_config: Option<&RetryConfig>,
    now: Timestamp,
) -> RetryStep {
    let status = session.status.clone().unwrap_or_default();
    let wants_retry = status.phase == Some(BackupSessionPhase::Failed)
        && session.spec.retry_left.unwrap_or(0) > 0
        && status.retried != Some(true);
    let Some(config) = retry_config.filter(|_| wants_retry) else {
        return RetryStep::Nothing;
    };
    match status.next_retry {
        None => RetryStep::Schedule(now.saturating_add(delay(config)).unwrap_or(now)),
        Some(next) if now >= next.0 => RetryStep::CreateNow,
        Some(next) => RetryStep::WaitUntil(next.0),
    }
}

/// `retryConfig.delay`; empty or unparsable (validation rejects it) retries at once.
fn delay(config: &RetryConfig) -> SignedDuration {
    config
        .delay
        .as_deref()
        .filter(|d| !d.is_empty())
        .and_then(|d| stash_api::validation::duration::parse(d).ok())
        .and_then(|nanos| i64::try_from(nanos).ok())
        .map_or(SignedDuration::ZERO, SignedDuration::from_nanos)
}

/// `<invoker-name>-<unix-seconds>`, the invoker name cut so the whole fits [`MAX_NAME_LENGTH`], as the
/// trigger names sessions (kmodules' `meta.NameWithSuffix`).
#[must_use]
pub fn session_name(invoker_name: &str, unix_seconds: i64) -> String {
    let suffix = unix_seconds.to_string();
    let room = MAX_NAME_LENGTH.saturating_sub(suffix.len() + 1);
    let mut cut = room.min(invoker_name.len());
    while !invoker_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{suffix}", &invoker_name[..cut])
        .trim_matches('-')
        .to_owned()
}

/// The retry session of `invoker` at `unix_seconds` with `retry_left` retries, or `None` when the
/// invoker has no uid to own it by.
#[must_use]
pub fn retry_session(
    invoker: &InvokerObject,
    retry_left: i32,
    unix_seconds: i64,
) -> Option<BackupSession> {
    let inv = invoker.invoker();
    let kind = inv.kind().as_str();
    let mut labels: BTreeMap<String, String> = inv.metadata().labels.clone().unwrap_or_default();
    labels.insert(LABEL_COMPONENT.to_owned(), COMPONENT_BACKUP.to_owned());
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned());
    labels.insert(LABEL_INVOKER_TYPE.to_owned(), kind.to_owned());
    labels.insert(LABEL_INVOKER_NAME.to_owned(), inv.name().to_owned());
    if let BackupInvoker::Configuration(_) = inv
        && let Some(info) = inv.targets().into_iter().next()
        && let Some(target) = info.target
    {
        labels.insert(LABEL_TARGET_KIND.to_owned(), target.reference.kind.clone());
        labels.insert(LABEL_TARGET_NAME.to_owned(), target.reference.name.clone());
        labels.insert(
            LABEL_TARGET_NAMESPACE.to_owned(),
            info.target_namespace().to_owned(),
        );
    }
    Some(BackupSession {
        metadata: ObjectMeta {
            name: Some(session_name(inv.name(), unix_seconds)),
            namespace: Some(inv.namespace().to_owned()),
            labels: Some(labels),
            owner_references: Some(vec![inv.owner_reference()?]),
            ..ObjectMeta::default()
        },
        spec: BackupSessionSpec {
            invoker: Some(BackupInvokerRef {
                api_group: Some(GROUP.to_owned()),
                kind: kind.to_owned(),
                name: inv.name().to_owned(),
            }),
            retry_left: Some(retry_left),
            backup_configuration: None,
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_api::v1beta1::BackupConfiguration;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn now() -> Timestamp {
        "2026-12-01T10:00:00Z".parse().unwrap()
    }

    fn session(yaml_status: &str, retry_left: i32) -> BackupSession {
        let mut s: BackupSession = serde_json::from_value(serde_json::json!({
            "apiVersion": "stash.appscode.com/v1beta1", "kind": "BackupSession",
            "metadata": {"name": "deployment-backup-1", "namespace": "demo"},
            "spec": {"invoker": {"kind": "BackupConfiguration", "name": "deployment-backup"},
                     "retryLeft": retry_left},
        }))
        .unwrap();
        s.status = Some(serde_yaml::from_str(yaml_status).unwrap());
        s
    }

    fn config(delay: &str) -> RetryConfig {
        RetryConfig {
            max_retry: Some(2),
            delay: Some(delay.to_owned()),
        }
    }

    #[test]
    fn a_failed_session_with_retries_left_schedules_its_retry_after_the_delay() {
        let s = session("{phase: Failed}", 1);
        assert_eq!(
            retry_step(&s, Some(&config("10m")), now()),
            RetryStep::Schedule("2026-12-01T10:10:00Z".parse().unwrap())
        );
        assert_eq!(
            retry_step(&s, Some(&config("")), now()),
            RetryStep::Schedule(now())
        );
    }

    #[test]
    fn a_scheduled_retry_waits_for_its_time_then_creates_the_next_session() {
        let s = session("{phase: Failed, nextRetry: 2026-12-01T10:10:00Z}", 1);
        assert_eq!(
            retry_step(&s, Some(&config("10m")), now()),
            RetryStep::WaitUntil("2026-12-01T10:10:00Z".parse().unwrap())
        );
        let later = "2026-12-01T10:10:01Z".parse().unwrap();
        assert_eq!(
            retry_step(&s, Some(&config("10m")), later),
            RetryStep::CreateNow
        );
    }

    #[test]
    fn succeeded_retried_exhausted_or_unconfigured_sessions_are_not_retried() {
        let c = config("1m");
        assert_eq!(
            retry_step(&session("{phase: Succeeded}", 1), Some(&c), now()),
            RetryStep::Nothing
        );
        assert_eq!(
            retry_step(
                &session("{phase: Failed, retried: true}", 1),
                Some(&c),
                now()
            ),
            RetryStep::Nothing
        );
        assert_eq!(
            retry_step(&session("{phase: Failed}", 0), Some(&c), now()),
            RetryStep::Nothing
        );
        assert_eq!(
            retry_step(&session("{phase: Failed}", 1), None, now()),
            RetryStep::Nothing
        );
    }

    #[test]
    fn the_retry_session_is_named_labelled_and_owned_like_the_triggers_with_one_retry_less() {
        let mut bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        bc.metadata.uid = Some("uid-1".to_owned());
        let invoker = InvokerObject::Configuration(Box::new(bc));
        let s = retry_session(&invoker, 1, 1_764_000_000).unwrap();
        assert_eq!(
            s.metadata.name.as_deref(),
            Some("deployment-backup-1764000000")
        );
        let labels = s.metadata.labels.unwrap();
        assert_eq!(labels[LABEL_INVOKER_TYPE], "BackupConfiguration");
        assert_eq!(labels[LABEL_INVOKER_NAME], "deployment-backup");
        assert_eq!(labels[LABEL_TARGET_NAME], "stash-demo");
        assert_eq!(labels[LABEL_TARGET_NAMESPACE], "demo");
        assert_eq!(s.metadata.owner_references.unwrap()[0].uid, "uid-1");
        assert_eq!(s.spec.retry_left, Some(1));
    }

    #[test]
    fn a_long_invoker_name_is_cut_so_the_session_name_fits_63_characters() {
        let name = session_name(&"a".repeat(80), 1_764_000_000);
        assert_eq!(name.len(), 63);
    }
}
