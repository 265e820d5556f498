//! `stash restore-pvc`: the data step of the restore Job of a standalone PersistentVolumeClaim (§11.1).
//! The claim is mounted where it was backed up from (`/stash-data` by default), so restoring the
//! snapshot's absolute paths into `/` fills it. The restore itself is the init-container's
//! ([`crate::restore::run`]: rules, host entry, progress and metrics in the RestoreSession); this adds
//! the output file `update-status` reads. A failed restore still writes its output and exits 0, as
//! Stash's does, so that `update-status` runs; only an interruption exits non-zero.

use std::path::PathBuf;

use kube::Client;
use stash_api::common::TargetRef;
use stash_api::phase::HostRestorePhase;
use stash_api::v1beta1::HostRestoreStats;
use tokio_util::sync::CancellationToken;

use crate::job_output::{JobOutput, OutputError};
use crate::restore::{self, Outcome, RestoreError, RestoreOptions};

/// `restore-pvc`'s own flags next to the init-container's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestorePvcOptions {
    pub restore: RestoreOptions,
    /// `--hostname`: the host this Job restores (`host-0` or the alias).
    pub hostname: String,
    /// `--output-dir`.
    pub output_dir: PathBuf,
}

/// Why `restore-pvc` exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum RestorePvcError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("interrupted before the restore finished; nothing final was recorded")]
    Cancelled,
}

/// Restores the claim and writes the output file; returns the host's entry when there was one.
pub async fn run(
    client: Client,
    options: &RestorePvcOptions,
    cancel: CancellationToken,
) -> Result<Option<HostRestoreStats>, RestorePvcError> {
    let target = TargetRef {
        api_version: Some("v1".to_owned()),
        kind: options.restore.target.kind.clone(),
        name: options.restore.target.name.clone(),
        namespace: Some(options.restore.target.namespace.clone()),
    };
    let host = match restore::run(client, &options.restore, cancel).await {
        Ok(Outcome::Skipped(reason)) => {
            tracing::info!(reason, "nothing to restore");
            None
        }
        Ok(Outcome::Restored(entry)) => Some(entry),
        Err(RestoreError::Cancelled) => return Err(RestorePvcError::Cancelled),
        Err(err) => {
            tracing::error!(
                error = &err as &dyn std::error::Error,
                "the restore of the claim failed"
            );
            Some(HostRestoreStats {
                hostname: Some(options.hostname.clone()),
                phase: Some(HostRestorePhase::Failed),
                error: Some(crate::run_backup::backup::error_chain(&err)),
                ..HostRestoreStats::default()
            })
        }
    };
    let output = JobOutput::Restore {
        target,
        host: host.clone(),
    };
    let path = output.write(&options.output_dir)?;
    tracing::info!(output = %path.display(), "wrote the restore output for update-status");
    Ok(host)
}
