//! A Repository named on the command line, read with its storage Secret, to an engine.

use kube::Client;
use stash_agent::repository::{self as agent_repository, ConnectOptions};
use stash_engine::Engine;

use crate::KubectlError;

/// The Repository a verb works on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryRef {
    pub namespace: String,
    pub name: String,
}

impl RepositoryRef {
    #[must_use]
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// The engine of `repository`, with the password and credentials of its storage Secret. No cache:
/// the plugin is a one-off command on a person's machine.
pub async fn open(client: &Client, repository: &RepositoryRef) -> Result<Engine, KubectlError> {
    let object = agent_repository::fetch(client, &repository.namespace, &repository.name).await?;
    Ok(agent_repository::connect(client, &object, &ConnectOptions::default()).await?)
}
