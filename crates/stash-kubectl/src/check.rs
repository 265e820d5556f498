//! `kubectl stash check <repository>`: restic's check of the repository's structure (and data with
//! `--read-data`).

use kube::Client;
use stash_engine::{CheckReport, CheckRequest, Control};

use crate::KubectlError;
use crate::repository::{self, RepositoryRef};

/// The check's report; the caller prints it and then calls [`verdict`].
pub async fn run(
    client: &Client,
    repository: &RepositoryRef,
    request: CheckRequest,
    control: &Control,
) -> Result<CheckReport, KubectlError> {
    let engine = repository::open(client, repository).await?;
    engine
        .check(request, control)
        .await
        .map_err(KubectlError::engine("checking", repository))
}

/// An error naming the Repository when the report found errors.
pub fn verdict(repository: &RepositoryRef, report: &CheckReport) -> Result<(), KubectlError> {
    if report.is_ok() {
        Ok(())
    } else {
        Err(KubectlError::CheckFailed {
            namespace: repository.namespace.clone(),
            name: repository.name.clone(),
            count: report.errors.len(),
        })
    }
}
