//! `stash backup-pvc`: the data step of the job model's backup Job for a standalone
//! PersistentVolumeClaim (§11.1). Parses the flags of Stash's `pvc-backup` Function and calls
//! `stash_agent::backup_pvc`. [`JobArgs`] are the flags every container of Stash's default Functions
//! shares (`update-status` and `restore-pvc` take them too).

// Kind names (PersistentVolumeClaim, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use stash_agent::InvokerKind;
use stash_agent::backup_pvc::BackupPvcOptions;
use stash_agent::run_backup::RunBackupOptions;
use stash_api::labels;
use tokio_util::sync::CancellationToken;

use crate::exit_code::ExitCode;

/// Where `--output-dir` points by default: the Tasks' `outputDir` param.
pub const DEFAULT_OUTPUT_DIR: &str = "/tmp/output";

/// The flags Stash's default Functions pass to every job-model container.
// The bools are Stash's independent `--flag=true|false` switches; kind names are plain words in --help.
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)]
#[derive(Clone, Debug, Args)]
pub struct JobArgs {
    /// Storage provider of the Repository (accepted: the Repository is read through the API).
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,
    /// Bucket or container of the Repository (accepted, see --provider).
    #[arg(long, value_name = "BUCKET")]
    pub bucket: Option<String>,
    /// Endpoint of the Repository (accepted, see --provider).
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Region of the Repository (accepted, see --provider).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Prefix of the Repository (accepted, see --provider).
    #[arg(long, value_name = "PREFIX")]
    pub path: Option<String>,
    /// Deprecated: the storage Secret is read through the API; accepted and ignored.
    #[arg(long, value_name = "DIR", hide = true)]
    pub secret_dir: Option<PathBuf>,
    /// Scratch space (the Job's tmp-dir volume); restic's cache lives under it.
    #[arg(long, value_name = "DIR")]
    pub scratch_dir: Option<PathBuf>,
    /// Keep restic's cache in the scratch directory (`tempDir.disableCaching` turns it off).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_cache: bool,
    /// Parallel connections to the backend (0: the Repository's setting).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections: usize,
    /// Namespace of the session and its invoker (default: the pod's).
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    /// Kind of the invoker: BackupConfiguration, BackupBatch or RestoreSession.
    #[arg(long, value_name = "KIND")]
    pub invoker_kind: String,
    /// Name of the invoker.
    #[arg(long, value_name = "NAME")]
    pub invoker_name: String,
    /// Kind of the target: PersistentVolumeClaim.
    #[arg(long, value_name = "KIND", default_value = "PersistentVolumeClaim")]
    pub target_kind: String,
    /// Name of the claim.
    #[arg(long, value_name = "NAME")]
    pub target_name: String,
    /// Namespace of the claim (default: --namespace).
    #[arg(long, value_name = "NAMESPACE")]
    pub target_namespace: Option<String>,
    /// The directory the data step leaves output.json in for update-status.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUTPUT_DIR)]
    pub output_dir: PathBuf,
    /// Push host and repository metrics to the Pushgateway.
    #[arg(long, value_name = "BOOL", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub metrics_enabled: bool,
    /// The Pushgateway the operator runs beside itself (update-status's --metrics-pushgateway-url).
    #[arg(long, alias = "metrics-pushgateway-url", value_name = "URL")]
    pub pushgateway_url: Option<String>,
    /// Accepted for Stash compatibility: the job name is stash-rs's own (§13).
    #[arg(long, value_name = "NAME")]
    pub prom_job_name: Option<String>,
    /// Accepted for Stash compatibility: the API server address comes from the in-cluster config.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// Log verbosity as Stash's `--v` (accepted; use -v or `RUST_LOG` for stash-rs's own logs).
    #[arg(long = "v", value_name = "LEVEL")]
    pub klog_level: Option<u8>,
}

impl JobArgs {
    /// `--namespace`, else the pod's.
    #[must_use]
    pub fn namespace_or(&self, pod_namespace: String) -> String {
        self.namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or(pod_namespace)
    }

    /// `--target-namespace`, else the session's namespace.
    #[must_use]
    pub fn target_namespace_or(&self, namespace: &str) -> String {
        self.target_namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| namespace.to_owned())
    }

    /// restic's cache directory: under --scratch-dir, or none with `--enable-cache=false`.
    #[must_use]
    pub fn cache_dir(&self) -> Option<PathBuf> {
        match &self.scratch_dir {
            Some(dir) => self.enable_cache.then(|| dir.join("stash-cache")),
            None => RunBackupOptions::cache_dir_for(self.enable_cache),
        }
    }

    /// The Pushgateway, when metrics are on.
    #[must_use]
    pub fn pushgateway(&self) -> Option<String> {
        RunBackupOptions::pushgateway_for(self.metrics_enabled, self.pushgateway_url.as_deref())
    }
}

/// Comma-separated list flags as Stash writes them (`--backup-paths=/a,/b`).
pub fn split_list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `backup-pvc`'s flags.
#[derive(Debug, Args)]
pub struct BackupPvcArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The BackupSession to back up for.
    #[arg(long, value_name = "NAME")]
    pub backupsession: String,
    /// restic's `--host`: the target's alias or host-0 (§8.5).
    #[arg(long, value_name = "HOST", default_value = labels::DEFAULT_HOST)]
    pub hostname: String,
    /// Where the claim is mounted, comma-separated (default: the invoker's target.paths).
    #[arg(long, value_name = "PATHS")]
    pub backup_paths: Option<String>,
    /// Patterns to leave out, comma-separated (default: the invoker's target.exclude).
    #[arg(long, value_name = "PATTERNS")]
    pub exclude: Option<String>,
    /// Extra restic arguments (accepted; target.args are read from the invoker).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub args: Option<String>,
    /// The Repository's Secret (accepted: read through the Repository).
    #[arg(long, value_name = "NAME")]
    pub storage_secret_name: Option<String>,
    /// Namespace of the Repository's Secret (accepted, see --storage-secret-name).
    #[arg(long, value_name = "NAMESPACE")]
    pub storage_secret_namespace: Option<String>,
    /// Retention flags of the invoker (accepted: `update-status` applies the invoker's
    /// retentionPolicy as the post-backup action `ApplyRetentionPolicy`).
    #[arg(long, value_name = "N")]
    pub retention_keep_last: Option<i64>,
    #[arg(long, value_name = "N")]
    pub retention_keep_hourly: Option<i64>,
    #[arg(long, value_name = "N")]
    pub retention_keep_daily: Option<i64>,
    #[arg(long, value_name = "N")]
    pub retention_keep_weekly: Option<i64>,
    #[arg(long, value_name = "N")]
    pub retention_keep_monthly: Option<i64>,
    #[arg(long, value_name = "N")]
    pub retention_keep_yearly: Option<i64>,
    #[arg(long, value_name = "TAGS")]
    pub retention_keep_tags: Option<String>,
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub retention_prune: Option<bool>,
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub retention_dry_run: Option<bool>,
}

impl BackupPvcArgs {
    /// The agent's options, given the pod's namespace.
    pub fn options(&self, pod_namespace: String) -> anyhow::Result<BackupPvcOptions> {
        let invoker_kind: InvokerKind = self
            .job
            .invoker_kind
            .parse()
            .map_err(|e| anyhow::anyhow!("--invoker-kind: {e}"))?;
        let namespace = self.job.namespace_or(pod_namespace);
        Ok(BackupPvcOptions {
            target_namespace: self.job.target_namespace_or(&namespace),
            namespace,
            backup_session: self.backupsession.clone(),
            invoker_kind,
            invoker_name: self.job.invoker_name.clone(),
            target_kind: self.job.target_kind.clone(),
            target_name: self.job.target_name.clone(),
            hostname: self.hostname.clone(),
            backup_paths: split_list(self.backup_paths.as_deref()),
            exclude: split_list(self.exclude.as_deref()),
            output_dir: self.job.output_dir.clone(),
            cache_dir: self.job.cache_dir(),
            max_connections: self.job.max_connections,
            pushgateway_url: self.job.pushgateway(),
        })
    }
}

/// A client for the pod's service account (or KUBECONFIG) and the pod's namespace.
pub async fn client() -> anyhow::Result<(kube::Client, String)> {
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let namespace =
        stash_agent::namespace_from_env().unwrap_or_else(|| client.default_namespace().to_owned());
    Ok((client, namespace))
}

pub async fn run(args: &BackupPvcArgs, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client().await?;
    let options = args.options(namespace)?;
    stash_agent::backup_pvc::run(client, &options, cancel.clone())
        .await
        .context("backup-pvc stopped")?;
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stash_operator::build::job::backup_job;
    use stash_operator::invoker::BackupInvoker;
    use stash_operator::settings::Settings;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BackupPvcArgs,
    }

    #[test]
    fn the_args_the_operator_gives_the_backup_job_parse() {
        let mut bc: stash_api::v1beta1::BackupConfiguration = serde_yaml::from_str(include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-pvc-job-model.yaml"
        ))
        .unwrap();
        bc.metadata.uid = Some("bc-1".into());
        let session: stash_api::v1beta1::BackupSession = serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1beta1\nkind: BackupSession\nmetadata:\n  name: s-1\n  namespace: demo\n  uid: bs-1\nspec: {}\n",
        )
        .unwrap();
        let info = BackupInvoker::Configuration(&bc).targets().remove(0);
        let job = backup_job(
            &session,
            &info,
            &bc.spec.retention_policy,
            &serde_yaml::from_str(
                "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: b\n      prefix: p\n    storageSecretName: s\n",
            )
            .unwrap(),
            &Settings::default(),
        )
        .unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let container_args = pod.init_containers.unwrap()[0].args.clone().unwrap();
        let parsed = Wrapper::try_parse_from(container_args.iter().map(String::as_str))
            .unwrap_or_else(|e| panic!("{e}"))
            .args;
        let options = parsed.options("elsewhere".into()).unwrap();
        assert_eq!(options.namespace, "demo");
        assert_eq!(options.backup_session, "s-1");
        assert_eq!(options.invoker_kind, InvokerKind::BackupConfiguration);
        assert_eq!(options.target_name, "nfs-pvc");
        assert_eq!(options.hostname, "host-0");
        assert_eq!(options.backup_paths, ["/stash-data"]);
        assert_eq!(options.output_dir, PathBuf::from("/tmp/output"));
        assert!(options.cache_dir.unwrap().starts_with("/tmp"));
    }

    #[test]
    fn a_wrong_invoker_kind_is_named() {
        let args = Wrapper::try_parse_from([
            "backup-pvc",
            "--invoker-kind=RestoreSession",
            "--invoker-name=x",
            "--target-name=c",
            "--backupsession=s",
        ])
        .unwrap()
        .args;
        let err = args.options("demo".into()).unwrap_err();
        assert!(err.to_string().contains("--invoker-kind"), "{err}");
    }
}
