//! `stash update-status`: the last container of a job-model Job (§11.1). Parses the flags of Stash's
//! `update-status` Function and calls `stash_agent::update_status`, which records the output the
//! data step (`backup-pvc` or `restore-pvc`) left in `--output-dir`.

// Kind names (PersistentVolumeClaim, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

use anyhow::Context;
use clap::Args;
use stash_agent::update_status::Session;
use stash_api::labels;
use tokio_util::sync::CancellationToken;

use super::backup_pvc::{BackupPvcArgs, JobArgs, client};
use crate::exit_code::ExitCode;

/// `update-status`'s flags.
#[derive(Debug, Args)]
pub struct UpdateStatusArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The BackupSession a backup Job reports into.
    #[arg(long, value_name = "NAME", conflicts_with = "restoresession")]
    pub backupsession: Option<String>,
    /// The RestoreSession a restore Job reports into (default: --invoker-name when
    /// --invoker-kind=RestoreSession).
    #[arg(long, value_name = "NAME")]
    pub restoresession: Option<String>,
    /// The Repository (accepted: read through the invoker).
    #[arg(long, value_name = "NAME")]
    pub repository: Option<String>,
    /// The host whose result is recorded when the output names none (the data step crashed).
    #[arg(long, value_name = "HOST", default_value = labels::DEFAULT_HOST)]
    pub hostname: String,
}

impl UpdateStatusArgs {
    /// Which session to update, given the pod's namespace.
    pub fn session(&self, pod_namespace: String) -> anyhow::Result<Session> {
        let restore_name = self.restoresession.clone().or_else(|| {
            (self.job.invoker_kind == "RestoreSession").then(|| self.job.invoker_name.clone())
        });
        if let Some(name) = restore_name {
            return Ok(Session::Restore {
                namespace: self.job.namespace_or(pod_namespace),
                name,
                hostname: self.hostname.clone(),
                output_dir: self.job.output_dir.clone(),
            });
        }
        let backupsession = self.backupsession.clone().context(
            "update-status needs --backupsession=<name> (backup Job) or --invoker-kind=RestoreSession (restore Job)",
        )?;
        let backup = BackupPvcArgs {
            job: self.job.clone(),
            backupsession,
            hostname: self.hostname.clone(),
            backup_paths: None,
            exclude: None,
            args: None,
            storage_secret_name: None,
            storage_secret_namespace: None,
            retention_keep_last: None,
            retention_keep_hourly: None,
            retention_keep_daily: None,
            retention_keep_weekly: None,
            retention_keep_monthly: None,
            retention_keep_yearly: None,
            retention_keep_tags: None,
            retention_prune: None,
            retention_dry_run: None,
        };
        Ok(Session::Backup(Box::new(backup.options(pod_namespace)?)))
    }
}

pub async fn run(args: &UpdateStatusArgs, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    let (client, namespace) = client().await?;
    let session = args.session(namespace)?;
    stash_agent::update_status::run(client, &session, cancel.clone())
        .await
        .context("update-status failed")?;
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: UpdateStatusArgs,
    }

    fn parse(args: &[&str]) -> UpdateStatusArgs {
        Wrapper::try_parse_from(std::iter::once("update-status").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{e}"))
            .args
    }

    #[test]
    fn stash_s_update_status_function_args_name_the_backup_session() {
        let args = parse(&[
            "--provider=gcs",
            "--bucket=b",
            "--path=p",
            "--secret-dir=/etc/repository/secret",
            "--scratch-dir=/tmp",
            "--enable-cache=true",
            "--max-connections=0",
            "--namespace=demo",
            "--backupsession=s-1",
            "--repository=gcs-repo",
            "--invoker-kind=BackupConfiguration",
            "--invoker-name=nfs-pvc-backup",
            "--target-kind=PersistentVolumeClaim",
            "--target-name=nfs-pvc",
            "--output-dir=/tmp/output",
            "--metrics-enabled=true",
            "--metrics-pushgateway-url=http://stash.kube-system.svc:56789",
            "--prom-job-name=",
        ]);
        let Session::Backup(options) = args.session("x".into()).unwrap() else {
            panic!("a backup session");
        };
        assert_eq!(options.backup_session, "s-1");
        assert_eq!(options.namespace, "demo");
        assert_eq!(options.target_namespace, "demo");
        assert_eq!(
            options.pushgateway_url.as_deref(),
            Some("http://stash.kube-system.svc:56789")
        );
    }

    #[test]
    fn a_restore_session_invoker_makes_it_update_the_restore_session() {
        let args = parse(&[
            "--invoker-kind=RestoreSession",
            "--invoker-name=nfs-pvc-restore",
            "--target-name=nfs-pvc",
        ]);
        assert!(matches!(
            args.session("demo".into()).unwrap(),
            Session::Restore { name, .. } if name == "nfs-pvc-restore"
        ));
        let neither = parse(&[
            "--invoker-kind=BackupConfiguration",
            "--invoker-name=b",
            "--target-name=c",
        ]);
        let err = neither.session("demo".into()).unwrap_err();
        assert!(err.to_string().contains("--backupsession"), "{err}");
    }
}
