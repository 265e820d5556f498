//! The snapshots behind the API: each Repository is read with its storage Secret through the API
//! (as the agent reads them) and opened with the engine. Listing is `restic snapshots`; deleting is
//! `restic forget <id>` without `--prune` (the data stays until the next retention run prunes).

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use stash_agent::repository::{self as agent_repository, ConnectOptions, RepositoryError};
use stash_api::v1alpha1::Repository;
use stash_engine::{Control, EngineError, SnapshotFilter};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::names::parse_snapshot_name;
use super::object::{self, Snapshot};

/// Why the snapshots could not be served; the message names the object and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("snapshots.repositories.stash.appscode.com \"{name}\" not found")]
    NotFound { name: String },
    #[error("failed to list the Repositories in {scope}")]
    ListRepositories {
        scope: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    #[error("Repository {namespace}/{name}: failed {action}")]
    Engine {
        namespace: String,
        name: String,
        action: &'static str,
        #[source]
        source: EngineError,
    },
}

/// What a list found: the snapshots of every Repository that could be read, and why the others
/// could not.
#[derive(Debug, Default)]
pub struct Listing {
    pub snapshots: Vec<Snapshot>,
    pub unreadable: Vec<StoreError>,
}

/// The snapshots of the Repositories in `namespace` (`None`: every namespace), or only of
/// Repository `only` there. One Repository that cannot be read (a wrong password, an unreachable
/// backend) does not hide the others' snapshots: it is reported in [`Listing::unreadable`]; only
/// when `only` names it is the list an error.
pub async fn list(
    client: &Client,
    namespace: Option<&str>,
    only: Option<&str>,
) -> Result<Listing, StoreError> {
    let repositories = if let (Some(ns), Some(name)) = (namespace, only) {
        Api::<Repository>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await
            .map_err(|source| StoreError::ListRepositories {
                scope: format!("namespace {ns}"),
                source,
            })?
            .into_iter()
            .collect()
    } else {
        let api = match namespace {
            Some(ns) => Api::<Repository>::namespaced(client.clone(), ns),
            None => Api::<Repository>::all(client.clone()),
        };
        let params = match only {
            Some(name) => ListParams::default().fields(&format!("metadata.name={name}")),
            None => ListParams::default(),
        };
        api.list(&params)
            .await
            .map_err(|source| StoreError::ListRepositories {
                scope: namespace
                    .map_or("all namespaces".to_owned(), |ns| format!("namespace {ns}")),
                source,
            })?
            .items
    };
    let mut listing = Listing::default();
    for repository in &repositories {
        match of_repository(client, repository).await {
            Ok(snapshots) => listing.snapshots.extend(snapshots),
            Err(err) if only.is_some() => return Err(err),
            Err(err) => listing.unreadable.push(err),
        }
    }
    Ok(listing)
}

/// The snapshots of one Repository, oldest first.
pub async fn of_repository(
    client: &Client,
    repository: &Repository,
) -> Result<Vec<Snapshot>, StoreError> {
    let engine = agent_repository::connect(client, repository, &ConnectOptions::default()).await?;
    let infos = engine
        .snapshots(SnapshotFilter::default(), &control())
        .await
        .map_err(engine_error(repository, "listing its snapshots"))?;
    Ok(infos
        .iter()
        .map(|info| object::snapshot(repository, info))
        .collect())
}

/// The Snapshot `name` in `namespace`.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<Snapshot, StoreError> {
    let not_found = || StoreError::NotFound {
        name: name.to_owned(),
    };
    let (repository, _) = parse_snapshot_name(name).ok_or_else(not_found)?;
    let Some(repository) = fetch(client, namespace, repository).await? else {
        return Err(not_found());
    };
    of_repository(client, &repository)
        .await?
        .into_iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .ok_or_else(not_found)
}

/// Forgets the snapshot behind Snapshot `name` in `namespace`; returns it as it was.
pub async fn delete(client: &Client, namespace: &str, name: &str) -> Result<Snapshot, StoreError> {
    let not_found = || StoreError::NotFound {
        name: name.to_owned(),
    };
    let (repository, short_id) = parse_snapshot_name(name).ok_or_else(not_found)?;
    let Some(repository) = fetch(client, namespace, repository).await? else {
        return Err(not_found());
    };
    let engine = agent_repository::connect(client, &repository, &ConnectOptions::default()).await?;
    let forgotten = match engine
        .forget_snapshot(short_id.to_owned(), &control())
        .await
    {
        Ok(forgotten) => forgotten,
        Err(EngineError::SnapshotNotFound { .. }) => return Err(not_found()),
        Err(source) => {
            return Err(engine_error(&repository, "forgetting the snapshot")(source));
        }
    };
    info!(%namespace, repository = %repository.name_any(), snapshot = %forgotten.id, "forgot the snapshot (kubectl delete snapshot); its data goes at the next prune");
    Ok(object::snapshot(&repository, &forgotten))
}

async fn fetch(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Repository>, StoreError> {
    match agent_repository::fetch(client, namespace, name).await {
        Ok(repository) => Ok(Some(repository)),
        Err(RepositoryError::RepositoryNotFound { .. }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// Nothing cancels a request's engine work: a client that hangs up lets it finish (a forget is short).
fn control() -> Control {
    Control::new(CancellationToken::new())
}

fn engine_error(
    repository: &Repository,
    action: &'static str,
) -> impl FnOnce(EngineError) -> StoreError {
    let namespace = repository.namespace().unwrap_or_default();
    let name = repository.name_any();
    move |source| StoreError::Engine {
        namespace,
        name,
        action,
        source,
    }
}
