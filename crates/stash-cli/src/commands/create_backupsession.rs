//! `stash create-backupsession`: what the trigger `CronJob` runs on every tick (§9.1).

use anyhow::Context;
use clap::Args;
use stash_agent::{CreateBackupSession, InvokerKind};

use crate::exit_code::ExitCode;

// Doc comments are the --help text: kind names stay plain words there.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct CreateBackupSessionArgs {
    /// Kind of the invoker: BackupConfiguration or BackupBatch.
    #[arg(long, alias = "invoker-type", value_name = "KIND")]
    pub invoker_kind: InvokerKind,
    /// Name of the invoker, in the pod's namespace.
    #[arg(long, value_name = "NAME")]
    pub invoker_name: String,
    /// Namespace of the invoker (default: the pod's, from `MY_POD_NAMESPACE` or the service account).
    #[arg(long, env = "MY_POD_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

pub async fn run(args: &CreateBackupSessionArgs) -> anyhow::Result<ExitCode> {
    let namespace = args.namespace.clone().or_else(stash_agent::namespace_from_env).context(
        "cannot tell the invoker's namespace: pass --namespace or set MY_POD_NAMESPACE (in a pod the service account's namespace is used)",
    )?;
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let request = CreateBackupSession {
        invoker_kind: args.invoker_kind,
        invoker_name: args.invoker_name.clone(),
        namespace,
    };
    let created = stash_agent::create_backupsession::run(client, &request).await?;
    println!("backupsession {created} created");
    Ok(ExitCode::Ok)
}
