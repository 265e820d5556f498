//! `stash restore-pvc`: the data step of the job model's restore Job for a standalone
//! PersistentVolumeClaim (§11.1). Parses the flags of Stash's `pvc-restore` Function and calls
//! `stash_agent::restore_pvc`. What to restore comes from the RestoreSession's rules (the same
//! rules the operator turned into --snapshots/--restore-paths/--include/--exclude), so those flags
//! are accepted for compatibility.

// Kind names (PersistentVolumeClaim, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use anyhow::Context;
use clap::Args;
use stash_agent::restore::options::cache_dir;
use stash_agent::restore::{RestoreInvokerKind, RestoreOptions, TargetWorkload};
use stash_agent::restore_pvc::RestorePvcOptions;
use stash_api::labels;
use tokio_util::sync::CancellationToken;

use super::backup_pvc::{JobArgs, client};
use crate::exit_code::ExitCode;

/// `restore-pvc`'s flags.
#[derive(Debug, Args)]
pub struct RestorePvcArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The host this Job restores: the target's alias or host-0 (§8.5).
    #[arg(long, value_name = "HOST", default_value = labels::DEFAULT_HOST)]
    pub hostname: String,
    /// The host whose snapshots are restored (accepted: the rule's sourceHost is read).
    #[arg(long, value_name = "HOST")]
    pub source_hostname: Option<String>,
    /// Paths to restore, comma-separated (accepted: the rules are read from the RestoreSession).
    #[arg(long, value_name = "PATHS")]
    pub restore_paths: Option<String>,
    /// Snapshots to restore, comma-separated (accepted, see --restore-paths).
    #[arg(long, value_name = "SNAPSHOTS")]
    pub snapshots: Option<String>,
    /// Include patterns, comma-separated (accepted, see --restore-paths).
    #[arg(long, value_name = "PATTERNS")]
    pub include: Option<String>,
    /// Exclude patterns, comma-separated (accepted, see --restore-paths).
    #[arg(long, value_name = "PATTERNS")]
    pub exclude: Option<String>,
}

impl RestorePvcArgs {
    /// The agent's options, given the pod's namespace and `POD_NAME`/`NODE_NAME`.
    pub fn options(
        &self,
        pod_namespace: String,
        pod_name: Option<String>,
        node_name: Option<String>,
    ) -> anyhow::Result<RestorePvcOptions> {
        let invoker_kind: RestoreInvokerKind = self
            .job
            .invoker_kind
            .parse()
            .map_err(|e| anyhow::anyhow!("--invoker-kind: {e}"))?;
        let namespace = self.job.namespace_or(pod_namespace);
        let explicit_cache = self
            .job
            .scratch_dir
            .as_ref()
            .map(|dir| dir.join("restic-cache"));
        Ok(RestorePvcOptions {
            restore: RestoreOptions {
                invoker_kind,
                invoker_name: self.job.invoker_name.clone(),
                target: TargetWorkload {
                    kind: self.job.target_kind.clone(),
                    name: self.job.target_name.clone(),
                    namespace: self.job.target_namespace_or(&namespace),
                },
                namespace,
                cache_dir: cache_dir(self.job.enable_cache, explicit_cache),
                max_connections: self.job.max_connections,
                pushgateway_url: self.job.pushgateway(),
                pod_name,
                node_name,
            },
            hostname: self.hostname.clone(),
            output_dir: self.job.output_dir.clone(),
        })
    }
}

pub async fn run(args: &RestorePvcArgs, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client().await?;
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let options = args.options(
        namespace,
        var(labels::ENV_POD_NAME),
        var(labels::ENV_NODE_NAME),
    )?;
    stash_agent::restore_pvc::run(client, &options, cancel.clone())
        .await
        .context("restore-pvc stopped")?;
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use stash_operator::build::job::restore_job;
    use stash_operator::invoker::RestoreInvoker;
    use stash_operator::settings::Settings;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RestorePvcArgs,
    }

    #[test]
    fn the_args_the_operator_gives_the_restore_job_parse() {
        let mut rs: stash_api::v1beta1::RestoreSession = serde_yaml::from_str(include_str!(
            "../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
        ))
        .unwrap();
        rs.metadata.uid = Some("rs-1".into());
        let info = RestoreInvoker::Session(&rs).targets().remove(0);
        let job = restore_job(
            &info,
            &serde_yaml::from_str(
                "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: b\n    storageSecretName: s\n",
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
        assert_eq!(parsed.snapshots.as_deref(), Some("latest"));
        let options = parsed
            .options(
                "x".into(),
                Some("stash-restore-nfs-pvc-restore-0-abcde".into()),
                None,
            )
            .unwrap();
        assert_eq!(
            options.restore.invoker_kind,
            RestoreInvokerKind::RestoreSession
        );
        assert_eq!(options.restore.invoker_name, "nfs-pvc-restore");
        assert_eq!(options.restore.namespace, "demo");
        assert_eq!(options.restore.target.kind, "PersistentVolumeClaim");
        assert_eq!(options.hostname, "host-0");
    }
}
