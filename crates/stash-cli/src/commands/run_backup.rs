//! `stash run-backup`: the `stash` sidecar the operator injects into workloads (§8.4). Parses the
//! flags Stash's operators of v0.9–v0.24 pass and calls `stash_agent::run_backup`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stash_agent::InvokerKind;
use stash_agent::run_backup::RunBackupOptions;
use tokio_util::sync::CancellationToken;

use crate::exit_code::ExitCode;

/// The sidecar's flags, as the operator writes them (`--flag=value`).
// The bools are Stash's independent `--flag=true|false` switches; kind names are plain words in --help.
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct RunBackupArgs {
    /// Kind of the invoker: BackupConfiguration or BackupBatch (v0.9: --invoker-type).
    #[arg(long, alias = "invoker-type", value_name = "KIND")]
    pub invoker_kind: InvokerKind,
    /// Name of the invoker, in the pod's namespace.
    #[arg(long, value_name = "NAME")]
    pub invoker_name: String,
    /// Kind of the workload this sidecar runs in: Deployment, StatefulSet, DaemonSet, ...
    #[arg(long, value_name = "KIND")]
    pub target_kind: String,
    /// Name of the workload this sidecar runs in.
    #[arg(long, value_name = "NAME")]
    pub target_name: String,
    /// Namespace of the workload (absent before v0.18: the pod's namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub target_namespace: Option<String>,
    /// Keep restic's cache under /tmp (`tempDir.disableCaching` turns it off).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_cache: bool,
    /// Parallel connections to the backend (0: the Repository's setting).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections: usize,
    /// Push host and repository metrics to --pushgateway-url.
    #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub metrics_enabled: bool,
    /// The Pushgateway the operator runs beside itself.
    #[arg(long, value_name = "URL")]
    pub pushgateway_url: Option<String>,
    /// Accepted for Stash compatibility: the API server address comes from the in-cluster config.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// Deprecated (Stash ≤ v0.17): the storage Secret is read through the API; accepted and ignored.
    #[arg(long, value_name = "DIR", hide = true)]
    pub secret_dir: Option<PathBuf>,
    /// Log verbosity as Stash's `--v` (accepted; use -v or `RUST_LOG` for stash-rs's own logs).
    #[arg(long = "v", value_name = "LEVEL")]
    pub klog_level: Option<u8>,
}

impl RunBackupArgs {
    /// The agent's options from these flags, the pod's namespace and `POD_NAME` / `NODE_NAME`.
    pub fn options(
        &self,
        namespace: String,
        pod_name: Option<String>,
        node_name: Option<String>,
    ) -> anyhow::Result<RunBackupOptions> {
        let pod_name = pod_name.context(
            "POD_NAME is not set; the stash sidecar needs it from the downward API (fieldRef metadata.name)",
        )?;
        Ok(RunBackupOptions {
            invoker_kind: self.invoker_kind,
            invoker_name: self.invoker_name.clone(),
            target_kind: self.target_kind.clone(),
            target_name: self.target_name.clone(),
            target_namespace: self
                .target_namespace
                .clone()
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| namespace.clone()),
            namespace,
            pod_name,
            node_name,
            cache_dir: RunBackupOptions::cache_dir_for(self.enable_cache),
            max_connections: self.max_connections,
            pushgateway_url: RunBackupOptions::pushgateway_for(
                self.metrics_enabled,
                self.pushgateway_url.as_deref(),
            ),
        })
    }
}

pub async fn run(args: &RunBackupArgs, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    if args.secret_dir.is_some() {
        tracing::warn!(
            "--secret-dir is deprecated (Stash v0.17 and older) and ignored: the storage Secret is read through the API"
        );
    }
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let namespace =
        stash_agent::namespace_from_env().unwrap_or_else(|| client.default_namespace().to_owned());
    let (pod_name, node_name) = RunBackupOptions::pod_env();
    let options = args.options(namespace, pod_name, node_name)?;
    stash_agent::run_backup::run(client, options, cancel.clone())
        .await
        .context("the stash sidecar stopped")?;
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RunBackupArgs,
    }

    fn parse(args: &[&str]) -> RunBackupArgs {
        Wrapper::try_parse_from(std::iter::once("run-backup").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    #[test]
    fn the_v0_24_sidecar_args_the_operator_injects_parse() {
        let args = parse(&[
            "--invoker-name=deployment-backup",
            "--invoker-kind=BackupConfiguration",
            "--target-name=stash-demo",
            "--target-namespace=demo",
            "--target-kind=Deployment",
            "--enable-cache=false",
            "--max-connections=4",
            "--metrics-enabled=true",
            "--pushgateway-url=http://stash.kube-system.svc:56789",
            "--use-kubeapiserver-fqdn-for-aks=true",
            "--v=3",
        ]);
        let options = args
            .options("demo".into(), Some("stash-demo-7d9f-x2k4".into()), None)
            .unwrap();
        assert_eq!(options.invoker_kind, InvokerKind::BackupConfiguration);
        assert_eq!(options.target_namespace, "demo");
        assert_eq!(options.cache_dir, None);
        assert_eq!(options.max_connections, 4);
        assert_eq!(
            options.pushgateway_url.as_deref(),
            Some("http://stash.kube-system.svc:56789")
        );
        assert_eq!(args.klog_level, Some(3));
    }

    #[test]
    fn the_v0_9_to_v0_17_forms_parse_with_invoker_type_secret_dir_and_no_target_namespace() {
        let args = parse(&[
            "--invoker-type=BackupConfiguration",
            "--invoker-name=ss-backup",
            "--target-name=stash-demo",
            "--target-kind=StatefulSet",
            "--secret-dir=/etc/stash/repository/secret",
            "--enable-cache=true",
            "--max-connections=0",
        ]);
        let options = args
            .options("demo".into(), Some("stash-demo-0".into()), None)
            .unwrap();
        assert_eq!(options.target_namespace, "demo");
        assert!(options.cache_dir.is_some());
        assert_eq!(options.pushgateway_url, None);
    }

    #[test]
    fn a_missing_pod_name_is_named_with_the_downward_api_fix() {
        let args = parse(&[
            "--invoker-kind=BackupConfiguration",
            "--invoker-name=b",
            "--target-name=t",
            "--target-kind=Deployment",
        ]);
        let err = args.options("demo".into(), None, None).unwrap_err();
        assert!(err.to_string().contains("POD_NAME"), "{err}");
    }
}
