//! Stage 4: the objects the session controller changes besides the session status: old sessions of the
//! invoker deleted beyond `backupHistoryLimit` (§9.4), and the retry session created (§9.5).

use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use stash_api::labels;
use stash_api::v1beta1::BackupSession;

use super::dereference::{InvokerKey, InvokerObject, list_sessions};
use super::history::{self, PastSession};
use super::retry::retry_session;

/// How many names (one per second) the retry tries when a name is taken.
const MAX_NAME_ATTEMPTS: i64 = 5;

/// Creating the retry session failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("failed to create retry BackupSession {namespace}/{name} for {invoker}")]
    CreateRetry {
        invoker: InvokerKey,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{invoker} has no metadata.uid, so its retry BackupSession cannot be owned by it; this is a bug"
    )]
    InvokerWithoutUid { invoker: InvokerKey },
    #[error(
        "failed to create a retry BackupSession for {invoker}: {MAX_NAME_ATTEMPTS} names in a row were taken; delete stale BackupSessions"
    )]
    NamesTaken { invoker: InvokerKey },
}

/// Deletes the invoker's sessions beyond its `backupHistoryLimit`; the names deleted, or the message
/// for `BackupHistoryCleaned=False`.
pub async fn clean_history(
    client: &Client,
    key: &InvokerKey,
    limit: Option<i32>,
) -> Result<Vec<String>, String> {
    let sessions = list_sessions(client, key).await.map_err(|e| chain(&e))?;
    let past = sessions
        .iter()
        .map(|s| PastSession {
            name: s.name_any(),
            created: s.metadata.creation_timestamp.as_ref().map(|t| t.0),
            phase: s.status.as_ref().and_then(|st| st.phase),
        })
        .collect();
    let doomed = history::to_delete(past, limit);
    let api = Api::<BackupSession>::namespaced(client.clone(), &key.namespace);
    for name in &doomed {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(format!(
                    "failed to delete BackupSession {}/{name} beyond backupHistoryLimit: {}",
                    key.namespace,
                    chain(&e)
                ));
            }
        }
    }
    Ok(doomed)
}

/// Creates the retry session of `invoker` with `retry_left` retries, named after the current second (or
/// the next free one); returns its name.
pub async fn create_retry_session(
    client: &Client,
    key: &InvokerKey,
    invoker: &InvokerObject,
    retry_left: i32,
) -> Result<String, ApplyError> {
    let api = Api::<BackupSession>::namespaced(client.clone(), &key.namespace);
    let params = PostParams {
        field_manager: Some(labels::FIELD_MANAGER_OPERATOR.to_owned()),
        ..PostParams::default()
    };
    let now = jiff::Timestamp::now().as_second();
    for second in now..now + MAX_NAME_ATTEMPTS {
        let session = retry_session(invoker, retry_left, second).ok_or_else(|| {
            ApplyError::InvokerWithoutUid {
                invoker: key.clone(),
            }
        })?;
        let name = session.name_any();
        match api.create(&params, &session).await {
            Ok(_) => return Ok(name),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(source) => {
                return Err(ApplyError::CreateRetry {
                    invoker: key.clone(),
                    namespace: key.namespace.clone(),
                    name,
                    source,
                });
            }
        }
    }
    Err(ApplyError::NamesTaken {
        invoker: key.clone(),
    })
}

/// The error and its sources on one line, for a condition message.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
