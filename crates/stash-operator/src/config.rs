//! What `stash operator` (alias `run`) is started with: Stash's operator flags (§15) as plain fields, so
//! the CLI maps its clap `Opts` onto this without the operator knowing about clap.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::settings::{DEFAULT_PUSHGATEWAY_URL, Settings};

/// Default of `--secure-port`.
pub const DEFAULT_SECURE_PORT: u16 = 8443;
/// Default metrics/health address: plain HTTP, Stash's chart scrapes `:8080`.
pub const DEFAULT_METRICS_ADDRESS: &str = "0.0.0.0:8080";
/// Name of the Lease the operator replicas elect their leader with.
pub const DEFAULT_LEASE_NAME: &str = "stash-operator";

/// The operator's configuration; one value per process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorConfig {
    /// `--docker-registry` (default `appscode`).
    pub docker_registry: String,
    /// `--image` (default `stash`).
    pub image: String,
    /// `--image-tag` (default: the operator's version).
    pub image_tag: String,
    /// `--image-pull-secrets`.
    pub image_pull_secrets: Vec<String>,
    /// `--pushgateway-url`.
    pub pushgateway_url: String,
    /// `--use-kubeapiserver-fqdn-for-aks`.
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// `--cron-job-psp`.
    pub cron_job_psp: Vec<String>,
    /// `--v`.
    pub log_level: Option<u8>,
    /// `--enable-mutating-webhook`: serve the workload mutators (sidecar and `stash-init` injection).
    pub enable_mutating_webhook: bool,
    /// `--enable-validating-webhook`: serve the validators of the stash kinds.
    pub enable_validating_webhook: bool,
    /// `--secure-port` of the webhook server (default 8443).
    pub secure_port: u16,
    /// `--tls-cert-file` of the webhook server.
    pub tls_cert_file: Option<PathBuf>,
    /// `--tls-private-key-file` of the webhook server.
    pub tls_private_key_file: Option<PathBuf>,
    /// Port of the aggregated API server for `snapshots.repositories.stash.appscode.com` (HTTPS, the
    /// webhook certificate, front-proxy client certificates only); `None` does not serve it.
    pub snapshot_api_port: Option<u16>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, plain HTTP. Port 0 picks a free port.
    pub metrics_address: SocketAddr,
    /// Only this namespace is watched (`None`: the whole cluster). Not a Stash flag; tests run one
    /// operator per namespace with it.
    pub watch_namespace: Option<String>,
    /// Leader election among replicas; `None` runs the controllers at once (a single replica).
    pub leader_election: Option<LeaderElection>,
}

/// Where the leader Lease lives and who this replica is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElection {
    /// Namespace of the Lease: the operator's own (`MY_POD_NAMESPACE`).
    pub namespace: String,
    /// Name of the Lease (default [`DEFAULT_LEASE_NAME`]).
    pub lease_name: String,
    /// This replica's identity: its pod name (`MY_POD_NAME`).
    pub identity: String,
    /// Seconds a lease is valid after its last renewal.
    pub lease_duration_seconds: u64,
}

impl LeaderElection {
    /// A Lease named [`DEFAULT_LEASE_NAME`] in `namespace`, held for 15 s.
    #[must_use]
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: DEFAULT_LEASE_NAME.to_owned(),
            identity: identity.into(),
            lease_duration_seconds: 15,
        }
    }
}

impl Default for OperatorConfig {
    fn default() -> Self {
        let settings = Settings::default();
        Self {
            docker_registry: settings.docker_registry,
            image: settings.image,
            image_tag: settings.image_tag,
            image_pull_secrets: Vec::new(),
            pushgateway_url: DEFAULT_PUSHGATEWAY_URL.to_owned(),
            use_kubeapiserver_fqdn_for_aks: settings.use_kubeapiserver_fqdn_for_aks,
            cron_job_psp: Vec::new(),
            log_level: settings.log_level,
            enable_mutating_webhook: false,
            enable_validating_webhook: false,
            secure_port: DEFAULT_SECURE_PORT,
            tls_cert_file: None,
            tls_private_key_file: None,
            snapshot_api_port: None,
            metrics_address: DEFAULT_METRICS_ADDRESS
                .parse()
                .expect("the default metrics address parses"),
            watch_namespace: None,
            leader_election: None,
        }
    }
}

impl OperatorConfig {
    /// The builder settings these flags amount to.
    #[must_use]
    pub fn settings(&self) -> Settings {
        Settings {
            docker_registry: self.docker_registry.clone(),
            image: self.image.clone(),
            image_tag: self.image_tag.clone(),
            image_pull_secrets: self.image_pull_secrets.clone(),
            pushgateway_url: self.pushgateway_url.clone(),
            use_kubeapiserver_fqdn_for_aks: self.use_kubeapiserver_fqdn_for_aks,
            log_level: self.log_level,
            cron_job_psp: self.cron_job_psp.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_maps_onto_the_default_settings() {
        assert_eq!(OperatorConfig::default().settings(), Settings::default());
    }

    #[test]
    fn image_flags_end_up_in_the_executor_image() {
        let config = OperatorConfig {
            docker_registry: "registry.local".to_owned(),
            image: "stash-rs".to_owned(),
            image_tag: "test".to_owned(),
            ..OperatorConfig::default()
        };
        assert_eq!(
            config.settings().image_ref(),
            "registry.local/stash-rs:test"
        );
    }
}
