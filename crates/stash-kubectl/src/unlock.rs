//! `kubectl stash unlock <repository>`: remove the locks of processes that are gone (every lock
//! with `--remove-all`, for when the user knows nothing else uses the repository).

use kube::Client;
use stash_engine::Control;

use crate::KubectlError;
use crate::repository::{self, RepositoryRef};

/// The ids of the locks removed.
pub async fn run(
    client: &Client,
    repository: &RepositoryRef,
    remove_all: bool,
    control: &Control,
) -> Result<Vec<String>, KubectlError> {
    let engine = repository::open(client, repository).await?;
    engine
        .unlock(remove_all, control)
        .await
        .map_err(KubectlError::engine("unlocking", repository))
}
