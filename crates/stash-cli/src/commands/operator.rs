//! `stash operator` (alias `run`, the subcommand Stash's chart calls): the controllers, their
//! metrics/health endpoints and leader election, until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stash_operator::{LeaderElection, OperatorConfig};
use tokio_util::sync::CancellationToken;

use crate::exit_code::ExitCode;

/// Stash's operator flags (§15), each also read from an environment variable.
// The bools are Stash's independent on/off flags.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// Registry of the image injected as sidecar, init-container and trigger.
    #[arg(long, env = "STASH_DOCKER_REGISTRY", default_value = "appscode")]
    pub docker_registry: String,
    /// Name of that image.
    #[arg(long, env = "STASH_IMAGE", default_value = "stash")]
    pub image: String,
    /// Tag of that image (default: this binary's version).
    #[arg(long, env = "STASH_IMAGE_TAG")]
    pub image_tag: Option<String>,
    /// Pull secrets (in the operator's namespace) copied for the injected containers.
    #[arg(long, env = "STASH_IMAGE_PULL_SECRETS", value_delimiter = ',')]
    pub image_pull_secrets: Vec<String>,
    /// Prometheus Pushgateway the sidecars and the operator push metrics to.
    #[arg(long, env = "STASH_PUSHGATEWAY_URL")]
    pub pushgateway_url: Option<String>,
    /// Serve the mutating webhook for workloads.
    #[arg(long, env = "STASH_ENABLE_MUTATING_WEBHOOK", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_mutating_webhook: bool,
    /// Serve the validating webhook for the stash kinds.
    #[arg(long, env = "STASH_ENABLE_VALIDATING_WEBHOOK", default_value_t = false, action = clap::ArgAction::Set)]
    pub enable_validating_webhook: bool,
    /// Use the API server's FQDN in injected containers on AKS.
    #[arg(long, env = "STASH_USE_KUBEAPISERVER_FQDN_FOR_AKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// Port of the webhook server (HTTPS).
    #[arg(long, env = "STASH_SECURE_PORT", default_value_t = stash_operator::config::DEFAULT_SECURE_PORT)]
    pub secure_port: u16,
    /// Certificate of the webhook server (PEM).
    #[arg(long, env = "STASH_TLS_CERT_FILE", value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// Private key of the webhook server (PEM).
    #[arg(long, env = "STASH_TLS_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve `kubectl get snapshots` (Stash's aggregated API `repositories.stash.appscode.com`) on
    /// this HTTPS port, with the webhook certificate.
    #[arg(long, env = "STASH_SNAPSHOT_API_PORT")]
    pub snapshot_api_port: Option<u16>,
    /// Where /metrics, /healthz and /readyz are served (plain HTTP).
    #[arg(long, env = "STASH_METRICS_ADDRESS", default_value = stash_operator::config::DEFAULT_METRICS_ADDRESS)]
    pub metrics_address: SocketAddr,
    /// Watch only this namespace (default: the whole cluster).
    #[arg(long, env = "STASH_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Elect a leader among replicas on a Lease in the pod's namespace (`MY_POD_NAMESPACE`,
    /// `MY_POD_NAME`); without those variables a single replica runs at once.
    #[arg(long, env = "STASH_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Log verbosity as Stash's `--v` (accepted; use -v or `RUST_LOG` for stash-rs's own logs).
    #[arg(long = "v", value_name = "LEVEL")]
    pub klog_level: Option<u8>,
}

impl OperatorArgs {
    fn config(&self) -> OperatorConfig {
        let defaults = OperatorConfig::default();
        let leader_election = match (
            std::env::var("MY_POD_NAMESPACE"),
            std::env::var("MY_POD_NAME"),
        ) {
            (Ok(namespace), Ok(name)) if self.leader_elect => {
                Some(LeaderElection::new(namespace, name))
            }
            _ => None,
        };
        OperatorConfig {
            docker_registry: self.docker_registry.clone(),
            image: self.image.clone(),
            image_tag: self.image_tag.clone().unwrap_or(defaults.image_tag),
            image_pull_secrets: self.image_pull_secrets.clone(),
            pushgateway_url: self
                .pushgateway_url
                .clone()
                .unwrap_or(defaults.pushgateway_url),
            use_kubeapiserver_fqdn_for_aks: self.use_kubeapiserver_fqdn_for_aks,
            log_level: self.klog_level.or(defaults.log_level),
            enable_mutating_webhook: self.enable_mutating_webhook,
            enable_validating_webhook: self.enable_validating_webhook,
            secure_port: self.secure_port,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_private_key_file: self.tls_private_key_file.clone(),
            snapshot_api_port: self.snapshot_api_port,
            metrics_address: self.metrics_address,
            watch_namespace: self.watch_namespace.clone(),
            leader_election,
            ..defaults
        }
    }
}

pub async fn run(args: &OperatorArgs, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    stash_operator::run(args.config(), cancel.clone())
        .await
        .context("the operator stopped")?;
    Ok(ExitCode::Ok)
}
