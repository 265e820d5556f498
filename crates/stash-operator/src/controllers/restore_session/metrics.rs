//! The restore session and target metrics (§13) the operator pushes once a restore is over; the hosts
//! push their own. Pushed to the operator's `--pushgateway-url` under Stash's job name
//! `restoresession-<namespace>-<name>`.

use std::time::Duration;

use kube::ResourceExt;
use stash_api::v1beta1::RestoreSession;
use stash_metrics::{Pushgateway, SessionLabels, TargetLabels, job_name, restore};

use super::completion::HostCounts;
use crate::invoker::{RestoreInvoker, RestoreInvokerKind};

/// What one push is about.
#[derive(Clone, Copy, Debug)]
pub struct RestoreOutcome {
    pub succeeded: bool,
    pub duration: Duration,
    pub hosts: HostCounts,
}

/// The labels of the session (§13.3): invoker, namespace, driver and, for Restic, the repository.
#[must_use]
pub fn session_labels(rs: &RestoreSession) -> SessionLabels {
    let invoker = RestoreInvoker::Session(rs);
    let driver = invoker.driver();
    SessionLabels {
        invoker_kind: RestoreInvokerKind::RestoreSession.as_str().to_owned(),
        invoker_name: rs.name_any(),
        namespace: rs.namespace().unwrap_or_default(),
        driver: serde_json::to_value(driver)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        repository: (driver == stash_api::common::Driver::Restic)
            .then(|| invoker.repository().map(|r| r.name.clone()))
            .flatten(),
    }
}

/// The labels of the target: kind, API group and name of `spec.target.ref`.
#[must_use]
pub fn target_labels(rs: &RestoreSession) -> TargetLabels {
    let reference = rs.spec.target.as_ref().and_then(|t| t.reference.as_ref());
    TargetLabels {
        kind: reference.map(|r| r.kind.clone()).unwrap_or_default(),
        group: reference
            .and_then(|r| r.api_version.as_deref())
            .and_then(|v| v.rsplit_once('/').map(|(group, _)| group.to_owned()))
            .unwrap_or_default(),
        name: reference.map(|r| r.name.clone()).unwrap_or_default(),
    }
}

/// Pushes the session and target gauges of `rs`; the error message says where to and why it failed.
pub async fn push(url: &str, rs: &RestoreSession, outcome: RestoreOutcome) -> Result<(), String> {
    let session = session_labels(rs);
    let mut metrics = restore::session(&session, outcome.succeeded, outcome.duration, 1);
    metrics.extend(restore::target(
        &session,
        &target_labels(rs),
        outcome.succeeded,
        usize::try_from(outcome.hosts.total).unwrap_or_default(),
    ));
    let job = job_name(
        RestoreInvokerKind::RestoreSession.as_str(),
        &session.namespace,
        &session.invoker_name,
    );
    let gateway = Pushgateway::new(url).map_err(|err| {
        format!(
            "failed to push the restore metrics: the Pushgateway URL `{url}` is not usable ({}); correct --pushgateway-url",
            chain(&err)
        )
    })?;
    gateway.push(&job, &metrics).await.map_err(|err| {
        format!(
            "failed to push the restore metrics to the Pushgateway at {url} (job {job}): {}",
            chain(&err)
        )
    })
}

/// `err` and its sources, `: `-joined: the condition message is all a user sees of the failure.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
