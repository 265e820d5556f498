//! §13: the session and target gauges the operator pushes once a session is over (protocol step 7),
//! labelled with the invoker, into the invoker's Pushgateway job. The host gauges are the agent's.

use std::time::{Duration, SystemTime};

use stash_api::common::Driver;
use stash_api::phase::TargetPhase;
use stash_api::v1beta1::BackupSessionStatus;
use stash_metrics::{Metric, Pushgateway, SessionLabels, TargetLabels, backup, job_name};

use super::apply::chain;
use super::dereference::{InvokerKey, InvokerObject};
use super::phase::target_phase;

/// The labels of the session's metrics: the invoker's kind, name, namespace, driver and Repository. An
/// invoker that no longer exists is labelled from the session (Restic, no Repository).
#[must_use]
pub fn session_labels(key: &InvokerKey, invoker: Option<&InvokerObject>) -> SessionLabels {
    let driver = invoker.map_or(Driver::Restic, |i| i.invoker().driver());
    SessionLabels {
        invoker_kind: key.kind.as_str().to_owned(),
        invoker_name: key.name.clone(),
        namespace: key.namespace.clone(),
        driver: match driver {
            Driver::Restic => "Restic",
            Driver::VolumeSnapshotter => "VolumeSnapshotter",
        }
        .to_owned(),
        repository: invoker
            .filter(|_| driver == Driver::Restic)
            .and_then(|i| i.invoker().repository())
            .map(|r| r.name.clone()),
    }
}

/// The session gauges and one set of target gauges per target of `status`.
#[must_use]
pub fn session_metrics(
    labels: &SessionLabels,
    status: &BackupSessionStatus,
    succeeded: bool,
    duration: Duration,
    finished_at: SystemTime,
) -> Vec<Metric> {
    let targets = status.targets.as_deref().unwrap_or_default();
    let mut metrics = backup::session(labels, succeeded, duration, targets.len(), finished_at);
    for target in targets {
        let Some(reference) = &target.reference else {
            continue;
        };
        let hosts = target
            .total_hosts
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        metrics.extend(backup::target(
            labels,
            &TargetLabels::from_target_ref(reference),
            target_phase(target) == TargetPhase::Succeeded,
            hosts,
            finished_at,
        ));
    }
    metrics
}

/// Pushes `metrics` to the invoker's job at `url`; the error is the message for `MetricsPushed=False`.
pub async fn push(url: &str, labels: &SessionLabels, metrics: &[Metric]) -> Result<(), String> {
    let job = job_name(
        &labels.invoker_kind,
        &labels.namespace,
        &labels.invoker_name,
    );
    let gateway = Pushgateway::new(url).map_err(|e| chain(&e))?;
    gateway.push(&job, metrics).await.map_err(|e| chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoker::BackupInvokerKind;
    use stash_api::v1beta1::BackupConfiguration;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn key() -> InvokerKey {
        InvokerKey {
            kind: BackupInvokerKind::BackupConfiguration,
            namespace: "demo".to_owned(),
            name: "deployment-backup".to_owned(),
        }
    }

    #[test]
    fn metrics_are_labelled_with_the_invoker_and_its_repository() {
        let bc: BackupConfiguration = serde_yaml::from_str(EXAMPLE).unwrap();
        let labels = session_labels(&key(), Some(&InvokerObject::Configuration(Box::new(bc))));
        assert_eq!(
            labels,
            SessionLabels {
                invoker_kind: "BackupConfiguration".to_owned(),
                invoker_name: "deployment-backup".to_owned(),
                namespace: "demo".to_owned(),
                driver: "Restic".to_owned(),
                repository: Some("gcs-repo".to_owned()),
            }
        );
        assert_eq!(session_labels(&key(), None).repository, None);
    }

    #[test]
    fn a_succeeded_session_pushes_session_and_target_gauges_and_a_failed_target_only_its_success() {
        let status: BackupSessionStatus = serde_yaml::from_str(
            "
            targets:
            - ref: {apiVersion: apps/v1, kind: Deployment, name: a, namespace: demo}
              totalHosts: 1
              stats: [{hostname: host-0, phase: Succeeded}]
            - ref: {apiVersion: apps/v1, kind: StatefulSet, name: b, namespace: demo}
              totalHosts: 2
              stats: [{hostname: host-0, phase: Succeeded}, {hostname: host-1, phase: Failed}]
            ",
        )
        .unwrap();
        let metrics = session_metrics(
            &session_labels(&key(), None),
            &status,
            false,
            Duration::from_secs(40),
            SystemTime::UNIX_EPOCH,
        );
        let value = |name: &str, target: Option<&str>| {
            metrics
                .iter()
                .find(|m| m.name == name && m.label("name") == target)
                .map(|m| m.value)
        };
        assert_eq!(value(backup::SESSION_SUCCESS, None), Some(0.0));
        assert_eq!(value(backup::SESSION_DURATION_SECONDS, None), None);
        assert_eq!(value(backup::TARGET_SUCCESS, Some("a")), Some(1.0));
        assert_eq!(value(backup::TARGET_HOST_COUNT_TOTAL, Some("a")), Some(1.0));
        assert_eq!(value(backup::TARGET_SUCCESS, Some("b")), Some(0.0));
        assert_eq!(value(backup::TARGET_HOST_COUNT_TOTAL, Some("b")), None);
    }
}
