//! The operator's own metrics (not the backup metrics of §13, which the executors push): reconciles,
//! failures by reason and durations per controller, in the OpenMetrics text format on `/metrics`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    pub reason: String,
}

/// Counters and histograms shared by all controllers, registered under the `stash_operator` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
}

fn duration_histogram() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("stash_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register("reconciles", "Reconciles started", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long reconciles took",
            durations.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            durations: Family::clone(&durations),
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `controller`; the returned guard records its duration when dropped.
    #[must_use]
    pub fn reconcile_started(&self, controller: &str) -> ReconcileTimer<'_> {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        ReconcileTimer {
            metrics: self,
            labels,
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile of `controller` under `reason` (the error's PascalCase reason).
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                controller: controller.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Records the duration of one reconcile when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    labels: ControllerLabels,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .durations
            .get_or_create(&self.labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_reconcile_shows_up_with_controller_and_reason() {
        let metrics = Metrics::default();
        drop(metrics.reconcile_started("backupconfiguration"));
        metrics.reconcile_failed("backupconfiguration", "SecretNotFound");
        let text = metrics.encode();
        assert!(
            text.contains(r#"stash_operator_reconciles_total{controller="backupconfiguration"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"stash_operator_reconcile_failures_total{controller="backupconfiguration",reason="SecretNotFound"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("stash_operator_reconcile_duration_seconds_count"),
            "{text}"
        );
    }
}
