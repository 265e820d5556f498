//! `kubectl stash trigger <backupconfiguration>`: a BackupSession now, created exactly as the
//! trigger CronJob's `stash create-backupsession` creates it.

use kube::Client;
use stash_agent::{BackupSessionRef, CreateBackupSession, InvokerKind};

use crate::KubectlError;

#[tracing::instrument(skip(client), fields(kind = "BackupConfiguration"))]
pub async fn run(
    client: Client,
    namespace: &str,
    backup_configuration: &str,
) -> Result<BackupSessionRef, KubectlError> {
    let request = CreateBackupSession {
        invoker_kind: InvokerKind::BackupConfiguration,
        invoker_name: backup_configuration.to_owned(),
        namespace: namespace.to_owned(),
    };
    Ok(stash_agent::create_backupsession::run(client, &request).await?)
}
