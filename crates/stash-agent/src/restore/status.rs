//! This host's `stats[]` entry of the RestoreSession (docs/session-protocol.md, step 3): upserted
//! by `hostname` with a read-modify-write on the object's `resourceVersion`, retried on 409, since
//! every host writes the same list.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{Api, PostParams};
use stash_api::labels::FIELD_MANAGER_AGENT;
use stash_api::phase::HostRestorePhase;
use stash_api::units::format_go_duration;
use stash_api::v1beta1::{HostProgress, HostRestoreStats, RestoreSession};
use stash_engine::ProgressUpdate;

/// How often a write is retried after a 409 Conflict (another host wrote in between).
const CONFLICT_RETRIES: usize = 10;

/// Reading or writing the RestoreSession failed; each message names the object.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("RestoreSession {namespace}/{name} not found; create it or fix --invoker-name")]
    NotFound { namespace: String, name: String },
    #[error("failed to read RestoreSession {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to write host {host} into the status of RestoreSession {namespace}/{name}")]
    Write {
        namespace: String,
        name: String,
        host: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "gave up writing host {host} into RestoreSession {namespace}/{name}: it kept changing ({CONFLICT_RETRIES} conflicts)"
    )]
    Conflicts {
        namespace: String,
        name: String,
        host: String,
    },
}

/// The RestoreSession one host reports into.
#[derive(Clone)]
pub struct HostStatus {
    api: Api<RestoreSession>,
    namespace: String,
    name: String,
    host: String,
}

impl HostStatus {
    #[must_use]
    pub fn new(client: Client, namespace: &str, name: &str, host: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            host: host.to_owned(),
        }
    }

    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The RestoreSession as it is now.
    pub async fn read(&self) -> Result<RestoreSession, StatusError> {
        read(&self.api, &self.namespace, &self.name).await
    }

    /// `phase: Running`, with the figures so far.
    pub async fn running(&self, progress: Option<HostProgress>) -> Result<(), StatusError> {
        self.update(|entry| {
            entry.phase = Some(HostRestorePhase::Running);
            entry.duration = None;
            entry.error = None;
            if progress.is_some() {
                entry.progress.clone_from(&progress);
            }
        })
        .await
        .map(drop)
    }

    /// `phase: Succeeded` with the duration as Stash writes it; the final figures stay.
    pub async fn succeeded(
        &self,
        duration: Duration,
        progress: Option<HostProgress>,
    ) -> Result<HostRestoreStats, StatusError> {
        self.update(|entry| {
            entry.phase = Some(HostRestorePhase::Succeeded);
            entry.duration = Some(format_go_duration(duration));
            entry.error = None;
            if progress.is_some() {
                entry.progress.clone_from(&progress);
            }
        })
        .await
    }

    /// `phase: Failed` with the reason.
    pub async fn failed(&self, error: &str) -> Result<HostRestoreStats, StatusError> {
        self.update(|entry| {
            entry.phase = Some(HostRestorePhase::Failed);
            entry.error = Some(error.to_owned());
        })
        .await
    }

    /// Applies `change` to this host's entry (created when absent) of the freshest object and writes it
    /// through the status subresource; returns the entry as written.
    async fn update(
        &self,
        mut change: impl FnMut(&mut HostRestoreStats),
    ) -> Result<HostRestoreStats, StatusError> {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER_AGENT.to_owned()),
            ..PostParams::default()
        };
        for _ in 0..CONFLICT_RETRIES {
            let mut session = self.read().await?;
            let stats = session
                .status
                .get_or_insert_with(Default::default)
                .stats
                .get_or_insert_with(Vec::new);
            let index = if let Some(i) = stats
                .iter()
                .position(|s| s.hostname.as_deref() == Some(self.host.as_str()))
            {
                i
            } else {
                stats.push(HostRestoreStats {
                    hostname: Some(self.host.clone()),
                    ..HostRestoreStats::default()
                });
                stats.len() - 1
            };
            change(&mut stats[index]);
            let entry = stats[index].clone();
            match self.api.replace_status(&self.name, &params, &session).await {
                Ok(_) => return Ok(entry),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(source) => {
                    return Err(StatusError::Write {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        host: self.host.clone(),
                        source,
                    });
                }
            }
        }
        Err(StatusError::Conflicts {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            host: self.host.clone(),
        })
    }
}

async fn read(
    api: &Api<RestoreSession>,
    namespace: &str,
    name: &str,
) -> Result<RestoreSession, StatusError> {
    match api.get_opt(name).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(StatusError::NotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(source) => Err(StatusError::Read {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

/// `host`'s entry in `session`'s status, if it has one.
#[must_use]
pub fn host_entry<'a>(session: &'a RestoreSession, host: &str) -> Option<&'a HostRestoreStats> {
    session
        .status
        .as_ref()?
        .stats
        .as_ref()?
        .iter()
        .find(|s| s.hostname.as_deref() == Some(host))
}

/// Why this host has nothing to do, if it has nothing to do: the session is final, or its own entry is.
#[must_use]
pub fn already_done(session: &RestoreSession, host: &str) -> Option<String> {
    if let Some(phase) = session
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .filter(|p| p.is_final())
    {
        return Some(format!("the RestoreSession is already {phase:?}"));
    }
    host_entry(session, host)
        .and_then(|entry| entry.phase)
        .filter(|p| matches!(p, HostRestorePhase::Succeeded | HostRestorePhase::Failed))
        .map(|phase| format!("host {host} is already {phase:?}"))
}

/// The status figures of an engine progress update, stamped now.
#[must_use]
pub fn progress(update: &ProgressUpdate) -> HostProgress {
    HostProgress {
        files_done: Some(update.files_done),
        files_total: update.files_total,
        bytes_done: Some(update.bytes_done),
        bytes_total: update.bytes_total,
        eta_seconds: update.eta.map(|eta| eta.as_secs()),
        updated_at: Some(Time(jiff::Timestamp::now())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(yaml: &str) -> RestoreSession {
        serde_yaml::from_str(yaml).expect("a RestoreSession")
    }

    const HEAD: &str = "apiVersion: stash.appscode.com/v1beta1\nkind: RestoreSession\nmetadata: {name: r, namespace: demo}\nspec: {}\n";

    #[test]
    fn a_final_session_or_a_final_host_entry_leaves_nothing_to_do() {
        let done = session(&format!("{HEAD}status: {{phase: Succeeded}}"));
        assert!(already_done(&done, "host-0").unwrap().contains("Succeeded"));
        let failed_host = session(&format!(
            "{HEAD}status: {{phase: Running, stats: [{{hostname: host-0, phase: Failed}}]}}"
        ));
        assert!(already_done(&failed_host, "host-0").is_some());
        assert_eq!(already_done(&failed_host, "host-1"), None);
    }

    #[test]
    fn a_running_host_entry_is_not_final() {
        let running = session(&format!(
            "{HEAD}status: {{phase: Running, stats: [{{hostname: host-0, phase: Running}}]}}"
        ));
        assert_eq!(already_done(&running, "host-0"), None);
    }
}
