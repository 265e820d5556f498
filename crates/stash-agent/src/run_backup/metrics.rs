//! Host and repository metrics to the Pushgateway (§13): pushed when `--metrics-enabled` and a
//! `--pushgateway-url` are given; a failed push is logged and reported, never fails the backup.

use stash_api::common::TargetRef;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::HostBackupStats;
use stash_metrics::repository::RepositoryLabels;
use stash_metrics::{Pushgateway, SessionLabels, TargetLabels, job_name};

use super::invoker::TargetSettings;
use super::options::RunBackupOptions;

/// Where and under which labels this sidecar pushes.
pub struct MetricsPusher {
    gateway: Option<Pushgateway>,
    session: SessionLabels,
    target: TargetLabels,
}

impl MetricsPusher {
    /// A pusher for `options`; `None` gateway (nothing pushed) when metrics are off. An invalid
    /// URL is logged once and treated as off.
    #[must_use]
    pub fn new(options: &RunBackupOptions, settings: &TargetSettings) -> Self {
        let gateway =
            options
                .pushgateway_url
                .as_deref()
                .and_then(|url| match Pushgateway::new(url) {
                    Ok(gateway) => Some(gateway),
                    Err(err) => {
                        tracing::warn!(
                            url,
                            error = &err as &dyn std::error::Error,
                            "--pushgateway-url is not usable; no metrics are pushed"
                        );
                        None
                    }
                });
        let reference: &TargetRef = &settings.target.reference;
        Self {
            gateway,
            session: SessionLabels {
                invoker_kind: options.invoker_kind.as_str().to_owned(),
                invoker_name: options.invoker_name.clone(),
                namespace: options.namespace.clone(),
                driver: settings.driver.clone(),
                repository: Some(settings.repository_name.clone()),
            },
            target: TargetLabels::from_target_ref(reference),
        }
    }

    fn job(&self) -> String {
        job_name(
            &self.session.invoker_kind,
            &self.session.namespace,
            &self.session.invoker_name,
        )
    }

    /// Pushes the host's metrics; a failure is logged.
    pub async fn push_host(&self, stats: &HostBackupStats) {
        let Some(gateway) = &self.gateway else {
            return;
        };
        let metrics = stash_metrics::backup::host(&self.session, &self.target, stats);
        // One group per host: a plain push under the job would replace the other hosts' gauges.
        let hostname = stats.hostname.as_deref().unwrap_or_default();
        if let Err(err) = gateway
            .push_grouped(&self.job(), &[("hostname", hostname)], &metrics)
            .await
        {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "could not push the host metrics"
            );
        }
    }

    /// Pushes the repository's metrics. `Ok(false)` when metrics are off.
    pub async fn push_repository(
        &self,
        repository: &Repository,
        integrity: Option<bool>,
        size_bytes: u64,
        snapshot_count: u64,
        snapshots_removed: u64,
    ) -> Result<bool, String> {
        let Some(gateway) = &self.gateway else {
            return Ok(false);
        };
        let metrics = stash_metrics::repository::metrics(
            &repository_labels(repository),
            integrity,
            size_bytes,
            snapshot_count,
            snapshots_removed,
        );
        gateway
            .push(&self.job(), &metrics)
            .await
            .map(|()| true)
            .map_err(|err| {
                format!(
                    "failed to push the repository metrics to {}: {}",
                    gateway.url(),
                    super::backup::error_chain(&err)
                )
            })
    }
}

/// §13.3 repository labels: backend name, and bucket/prefix where the backend has them.
#[must_use]
pub fn repository_labels(repository: &Repository) -> RepositoryLabels {
    let backend = &repository.spec.backend;
    let (name, bucket, prefix) = if let Some(s3) = &backend.s3 {
        ("s3", Some(s3.bucket.clone()), s3.prefix.clone())
    } else if let Some(gcs) = &backend.gcs {
        ("gcs", Some(gcs.bucket.clone()), gcs.prefix.clone())
    } else if let Some(azure) = &backend.azure {
        ("azure", Some(azure.container.clone()), azure.prefix.clone())
    } else if let Some(swift) = &backend.swift {
        ("swift", Some(swift.container.clone()), swift.prefix.clone())
    } else if let Some(b2) = &backend.b2 {
        ("b2", Some(b2.bucket.clone()), b2.prefix.clone())
    } else if backend.rest.is_some() {
        ("rest", None, None)
    } else if let Some(local) = &backend.local {
        ("local", None, Some(local.mount_path.clone()))
    } else {
        ("unknown", None, None)
    };
    RepositoryLabels {
        name: repository.metadata.name.clone().unwrap_or_default(),
        namespace: repository.metadata.namespace.clone().unwrap_or_default(),
        backend: name.to_owned(),
        bucket: bucket.filter(|b| !b.is_empty()),
        prefix: prefix.filter(|p| !p.is_empty()),
    }
}
