//! The host's restore gauges (§13.2) to the Pushgateway, once its entry is final. A push that fails
//! is logged: the data is restored either way and the pod must not restart for a metric.

use stash_api::common::TargetRef;
use stash_api::v1beta1::{HostRestoreStats, RestoreSession};
use stash_metrics::{Pushgateway, SessionLabels, TargetLabels, job_name};

use super::options::RestoreOptions;

/// Pushes `entry`'s gauges when metrics are enabled.
pub async fn push_host(
    options: &RestoreOptions,
    session: &RestoreSession,
    target: &TargetRef,
    entry: &HostRestoreStats,
) {
    let Some(url) = options.pushgateway_url.as_deref() else {
        return;
    };
    let gateway = match Pushgateway::new(url) {
        Ok(gateway) => gateway,
        Err(err) => {
            tracing::warn!(
                url,
                error = &err as &dyn std::error::Error,
                "cannot push restore metrics"
            );
            return;
        }
    };
    let kind = options.invoker_kind.as_str();
    let labels = SessionLabels {
        invoker_kind: kind.to_owned(),
        invoker_name: options.invoker_name.clone(),
        namespace: options.namespace.clone(),
        driver: format!("{:?}", session.spec.driver()),
        repository: session.spec.repository.as_ref().map(|r| r.name.clone()),
    };
    let metrics =
        stash_metrics::restore::host(&labels, &TargetLabels::from_target_ref(target), entry);
    let job = job_name(kind, &options.namespace, &options.invoker_name);
    // One group per host: a plain push under the job would replace the other hosts' gauges.
    let hostname = entry.hostname.as_deref().unwrap_or_default();
    match gateway
        .push_grouped(&job, &[("hostname", hostname)], &metrics)
        .await
    {
        Ok(()) => tracing::info!(job, url, "pushed the host's restore metrics"),
        Err(err) => tracing::warn!(
            job,
            url,
            error = &err as &dyn std::error::Error,
            "failed to push the host's restore metrics"
        ),
    }
}
