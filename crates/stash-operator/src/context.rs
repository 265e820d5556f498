//! What every reconcile shares: the client, the builder settings, metrics, the event recorder and the
//! caches the controllers keep of the objects they watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupConfiguration;

use crate::metrics::Metrics;
use crate::settings::Settings;

/// First requeue after a retryable failure; doubled per consecutive failure (Stash requeues every 5 s).
pub const MIN_BACKOFF: Duration = Duration::from_secs(5);
/// Longest requeue after retryable failures.
pub const MAX_BACKOFF: Duration = Duration::from_mins(5);

/// Shared state of the controllers; one per operator process.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Every BackupConfiguration the controller sees: who else targets a workload (§8.2).
    pub backup_configurations: Store<BackupConfiguration>,
    /// Every Repository: which BackupConfigurations a Secret concerns.
    pub repositories: Store<Repository>,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    #[must_use]
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        backup_configurations: Store<BackupConfiguration>,
        repositories: Store<Repository>,
    ) -> Self {
        Self {
            client,
            settings,
            metrics,
            recorder,
            backup_configurations,
            repositories,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more failure: 5 s, 10 s, 20 s, ... up to 5 min.
    pub fn next_backoff(&self, key: &str) -> Duration {
        let mut failures = self
            .failures
            .lock()
            .expect("backoff map lock is never poisoned");
        let count = failures.entry(key.to_owned()).or_insert(0);
        let delay = MIN_BACKOFF.saturating_mul(2u32.saturating_pow(*count));
        *count = count.saturating_add(1);
        delay.min(MAX_BACKOFF)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn reset_backoff(&self, key: &str) {
        self.failures
            .lock()
            .expect("backoff map lock is never poisoned")
            .remove(key);
    }
}
