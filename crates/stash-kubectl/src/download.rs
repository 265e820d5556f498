//! `kubectl stash download <repository> --snapshots=<id>,… --destination=<dir>`: restore each
//! snapshot through the engine into `<dir>/<id>` on this machine, as Stash's plugin lays them out
//! (without the docker container Stash's plugin needs).

use std::path::{Path, PathBuf};

use kube::Client;
use stash_engine::{Control, RestoreReport, RestoreRequest};

use crate::KubectlError;
use crate::repository::{self, RepositoryRef};

/// Where snapshot `snapshot` is restored below `destination`.
#[must_use]
pub fn snapshot_dir(destination: &Path, snapshot: &str) -> PathBuf {
    destination.join(snapshot)
}

/// Restores every snapshot in order; stops at the first that cannot be restored completely.
pub async fn run(
    client: &Client,
    repository: &RepositoryRef,
    snapshots: &[String],
    destination: &Path,
    control: &Control,
) -> Result<Vec<RestoreReport>, KubectlError> {
    let engine = repository::open(client, repository).await?;
    let mut reports = Vec::with_capacity(snapshots.len());
    for snapshot in snapshots {
        let target = snapshot_dir(destination, snapshot);
        let report = engine
            .restore(
                RestoreRequest::new(snapshot.clone(), target.clone()),
                control,
            )
            .await
            .map_err(KubectlError::engine("downloading a snapshot", repository))?;
        for failure in &report.failures {
            tracing::error!(path = %failure.path.display(), error = %failure.error, "not restored");
        }
        if !report.is_complete() {
            return Err(KubectlError::IncompleteDownload {
                snapshot: snapshot.clone(),
                namespace: repository.namespace.clone(),
                name: repository.name.clone(),
                destination: target.display().to_string(),
                failures: report.failures.len(),
            });
        }
        reports.push(report);
    }
    Ok(reports)
}
