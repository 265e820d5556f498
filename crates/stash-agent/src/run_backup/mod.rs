//! `stash run-backup`: the `stash` sidecar the operator injects into Deployments, StatefulSets and
//! DaemonSets (§8.4–§8.6). It watches its invoker's BackupSessions and, for each, takes its turn
//! (the workload's Lease), initialises the repository if its target asks, backs up the target's
//! paths as its host, writes its `stats[]` entry, and if it finished last runs the post-backup
//! actions. Who writes what is fixed in docs/session-protocol.md.
//!
//! - [`options`]: flags and pod environment; [`host`]: host name and election (§8.5);
//!   [`lease`](crate::lease): the Lease; [`watch`]: the session watch; [`invoker`]: the target's settings;
//!   [`init_repo`]: `InitializeBackendRepository`; [`backup`]: the backup itself; [`progress`]:
//!   progress in the status; [`stats`]: the `stats[]` entry; [`status`]: status read-modify-write;
//!   [`post_backup`]: retention, check, repository status; [`metrics`]: the Pushgateway.

pub mod backup;
pub mod host;
pub mod init_repo;
pub mod invoker;
pub mod metrics;
pub mod options;
pub mod post_backup;
pub mod progress;
pub mod stats;
pub mod status;
pub mod watch;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use stash_api::common::TargetRef;
use stash_api::phase::TargetPhase;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupSession, BackupSessionStatus, BackupTargetStatus, HostBackupStats};
use stash_engine::{Control, Engine};
use tokio_util::sync::CancellationToken;

use self::backup::{BackupOutcome, error_chain};
use self::host::{Election, Host, HostError};
use self::init_repo::InitState;
use self::invoker::{InvokerError, TargetSettings};
use self::metrics::MetricsPusher;
pub use self::options::RunBackupOptions;
use crate::lease::{self, HeldLease, LeaseError};
use crate::repository::{self, ConnectOptions};

/// How often sessions waiting for the operator or for the repository are looked at again
/// (besides every watch event), as Stash requeues them.
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Why the sidecar stops (it is restarted by the kubelet and resumes).
#[derive(Debug, thiserror::Error)]
pub enum RunBackupError {
    #[error(transparent)]
    Invoker(#[from] InvokerError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error(
        "lost the Lease {namespace}/{name} to another pod; exiting so that this sidecar restarts as a follower"
    )]
    LostLeadership { namespace: String, name: String },
    #[error("the watch of BackupSessions in {namespace} ended")]
    WatchEnded { namespace: String },
}

/// One BackupSession as this sidecar writes to it.
#[derive(Clone)]
pub struct SessionHandle {
    pub api: Api<BackupSession>,
    pub namespace: String,
    pub name: String,
    /// This sidecar's target.
    pub target: TargetRef,
}

impl SessionHandle {
    /// The status entry of this sidecar's target.
    #[must_use]
    pub fn target_of<'a>(&self, status: &'a BackupSessionStatus) -> Option<&'a BackupTargetStatus> {
        status::target_entry(status, &self.target, &self.namespace)
    }
}

/// What to do with a session, from its status alone (§8.6 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing for this host: the session or this host is final.
    Skip,
    /// The operator has not started this target yet.
    Wait,
    /// Back up.
    Go,
}

/// [`Step`] for `host` of `target` (whose namespace defaults to `namespace`).
#[must_use]
pub fn step(
    status: Option<&BackupSessionStatus>,
    target: &TargetRef,
    namespace: &str,
    host: &str,
) -> Step {
    let Some(status) = status else {
        return Step::Wait;
    };
    if status
        .phase
        .is_some_and(stash_api::phase::BackupSessionPhase::is_final)
    {
        return Step::Skip;
    }
    let Some(target) = status::target_entry(status, target, namespace) else {
        return Step::Wait;
    };
    match target.phase {
        Some(TargetPhase::Running) => {}
        Some(TargetPhase::Succeeded | TargetPhase::Failed) => return Step::Skip,
        Some(TargetPhase::Pending) | None => return Step::Wait,
    }
    if target.total_hosts.is_none() {
        return Step::Wait;
    }
    if status::host_entry(target, host).is_some_and(|h| h.phase.is_some()) {
        return Step::Skip;
    }
    Step::Go
}

/// How handling a session ended.
enum Handled {
    Done,
    Wait,
    Cancelled,
}

/// Runs the sidecar until `cancel` (SIGTERM). Returns `Ok` when cancelled.
pub async fn run(
    client: Client,
    options: RunBackupOptions,
    cancel: CancellationToken,
) -> Result<(), RunBackupError> {
    let settings = invoker::read(&client, &options).await?;
    let host = host::host_for(
        &options.target_kind,
        &options.target_name,
        settings.target.alias.as_deref(),
        &options.pod_name,
        options.node_name.as_deref(),
    )?;
    tracing::info!(host = %host.name, election = ?host.election, lease = %host.lease_name, "run-backup starting");
    let sidecar = Sidecar {
        client,
        options,
        host,
        cancel,
    };
    let leader = if sidecar.host.election == Election::Leader {
        match sidecar.acquire_lease().await? {
            Some(lease) => Some(lease),
            None => return Ok(()),
        }
    } else {
        None
    };
    let result = Box::pin(sidecar.watch_sessions(leader.as_ref())).await;
    if let Some(lease) = leader {
        lease.release().await;
    }
    result
}

struct Sidecar {
    client: Client,
    options: RunBackupOptions,
    host: Host,
    cancel: CancellationToken,
}

impl Sidecar {
    async fn acquire_lease(&self) -> Result<Option<HeldLease>, LeaseError> {
        lease::acquire(
            &self.client,
            &self.options.target_namespace,
            &self.host.lease_name,
            &self.options.pod_name,
            &self.cancel,
        )
        .await
    }

    fn api(&self) -> Api<BackupSession> {
        Api::namespaced(self.client.clone(), &self.options.namespace)
    }

    fn handle(&self, name: String) -> SessionHandle {
        SessionHandle {
            api: self.api(),
            namespace: self.options.namespace.clone(),
            name,
            target: TargetRef {
                api_version: None,
                kind: self.options.target_kind.clone(),
                name: self.options.target_name.clone(),
                namespace: Some(self.options.target_namespace.clone()),
            },
        }
    }

    async fn watch_sessions(&self, leader: Option<&HeldLease>) -> Result<(), RunBackupError> {
        let stream = watch::sessions(
            self.api(),
            self.options.invoker_kind,
            &self.options.invoker_name,
        );
        let mut stream = std::pin::pin!(stream);
        let mut waiting = BTreeSet::new();
        let mut recheck = tokio::time::interval(RECHECK_INTERVAL);
        loop {
            if let Some(lease) = leader
                && !lease.is_held()
            {
                return Err(RunBackupError::LostLeadership {
                    namespace: self.options.target_namespace.clone(),
                    name: self.host.lease_name.clone(),
                });
            }
            let sessions = tokio::select! {
                () = self.cancel.cancelled() => return Ok(()),
                event = stream.next() => match event {
                    None => return Err(RunBackupError::WatchEnded { namespace: self.options.namespace.clone() }),
                    Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => vec![s.name_any()],
                    Some(Ok(watcher::Event::Delete(s))) => {
                        waiting.remove(&s.name_any());
                        Vec::new()
                    }
                    Some(Ok(_)) => Vec::new(),
                    Some(Err(err)) => {
                        tracing::warn!(error = &err as &dyn std::error::Error, "BackupSession watch failed; retrying");
                        Vec::new()
                    }
                },
                _ = recheck.tick(), if !waiting.is_empty() => waiting.iter().cloned().collect(),
            };
            for name in sessions {
                let span = tracing::info_span!("backupsession", namespace = %self.options.namespace, name = %name, host = %self.host.name);
                let handled = Box::pin(tracing::Instrument::instrument(
                    self.consider(name.clone()),
                    span,
                ))
                .await;
                match handled {
                    Ok(Handled::Done) => {
                        waiting.remove(&name);
                    }
                    Ok(Handled::Wait) => {
                        waiting.insert(name);
                    }
                    Ok(Handled::Cancelled) => return Ok(()),
                    Err(err) => {
                        tracing::warn!(error = %err, session = %name, "will try the session again");
                        waiting.insert(name);
                    }
                }
            }
        }
    }

    /// Looks at session `name` as it is now and does this host's part if it is its turn.
    async fn consider(&self, name: String) -> Result<Handled, String> {
        let handle = self.handle(name);
        let Some(session) = handle
            .api
            .get_opt(&handle.name)
            .await
            .map_err(|e| error_chain(&e))?
        else {
            return Ok(Handled::Done);
        };
        match step(
            session.status.as_ref(),
            &handle.target,
            &handle.namespace,
            &self.host.name,
        ) {
            Step::Skip => return Ok(Handled::Done),
            Step::Wait => return Ok(Handled::Wait),
            Step::Go => {}
        }
        if self.host.election == Election::Leader {
            return Box::pin(self.back_up(&handle)).await;
        }
        let Some(lease) = self.acquire_lease().await.map_err(|e| error_chain(&e))? else {
            return Ok(Handled::Cancelled);
        };
        let handled = Box::pin(self.back_up(&handle)).await;
        lease.release().await;
        handled
    }

    /// This host's part of a session, holding its turn.
    async fn back_up(&self, handle: &SessionHandle) -> Result<Handled, String> {
        // Read again: while this pod waited for its turn another one may have moved the session on.
        let session = handle
            .api
            .get(&handle.name)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = session.status.clone().unwrap_or_default();
        match step(
            Some(&status),
            &handle.target,
            &handle.namespace,
            &self.host.name,
        ) {
            Step::Skip => return Ok(Handled::Done),
            Step::Wait => return Ok(Handled::Wait),
            Step::Go => {}
        }
        let own_actions = handle
            .target_of(&status)
            .and_then(|t| t.pre_backup_actions.clone());
        let init = init_repo::state(&status, own_actions.as_deref());
        let started = Instant::now();
        match &init {
            InitState::Waiting => return Ok(Handled::Wait),
            InitState::Failed(message) => {
                let entry = stats::failed(
                    &self.host.name,
                    format!("the backend repository is not initialised: {message}"),
                    started.elapsed(),
                    None,
                );
                return self.finish(handle, &session, entry, None).await;
            }
            InitState::Ready | InitState::ToDo => {}
        }
        let settings = invoker::read(&self.client, &self.options)
            .await
            .map_err(|e| error_chain(&e))?;
        let control = Control::new(self.cancel.clone());
        let connected = self.connect(&settings).await;
        if init == InitState::ToDo {
            let outcome = match &connected {
                Ok((_, engine)) => init_repo::ensure(engine, &control).await,
                Err(message) => Err(message.clone()),
            };
            if self.cancel.is_cancelled() {
                return Ok(Handled::Cancelled);
            }
            let condition = init_repo::condition(outcome.as_ref().copied().map_err(String::as_str));
            status::update(&handle.api, &handle.namespace, &handle.name, |s| {
                status::set_condition(&mut s.conditions, condition.clone());
            })
            .await
            .map_err(|e| error_chain(&e))?;
            if let Err(message) = outcome {
                let entry = stats::failed(&self.host.name, message, started.elapsed(), None);
                return self.finish(handle, &session, entry, None).await;
            }
        }
        let (repository, engine) = match connected {
            Ok(connected) => connected,
            Err(message) => {
                let entry = stats::failed(&self.host.name, message, started.elapsed(), None);
                return self.finish(handle, &session, entry, None).await;
            }
        };
        match backup::run(
            &engine,
            handle,
            &self.host.name,
            &settings.target,
            &self.cancel,
        )
        .await
        {
            BackupOutcome::Cancelled => Ok(Handled::Cancelled),
            BackupOutcome::Finished(entry) => {
                self.finish(
                    handle,
                    &session,
                    *entry,
                    Some((&settings, &repository, &engine)),
                )
                .await
            }
        }
    }

    /// The Repository of the invoker and an engine on it; the error names the object and fix.
    async fn connect(&self, settings: &TargetSettings) -> Result<(Repository, Engine), String> {
        let repository = repository::fetch(
            &self.client,
            &settings.repository_namespace,
            &settings.repository_name,
        )
        .await
        .map_err(|e| error_chain(&e))?;
        let options = ConnectOptions {
            cache_dir: self.options.cache_dir.clone(),
            max_connections: Some(self.options.max_connections),
        };
        let engine = repository::connect(&self.client, &repository, &options)
            .await
            .map_err(|e| error_chain(&e))?;
        Ok((repository, engine))
    }

    /// Writes the host's final entry, pushes its metrics, and runs the post-backup actions when
    /// this entry completed the target that carries them.
    async fn finish(
        &self,
        handle: &SessionHandle,
        session: &BackupSession,
        entry: HostBackupStats,
        backed_up: Option<(&TargetSettings, &Repository, &Engine)>,
    ) -> Result<Handled, String> {
        match (&entry.phase, &entry.error) {
            (Some(phase), Some(error)) => {
                tracing::warn!(?phase, error = %error, "host backup finished");
            }
            (phase, _) => tracing::info!(?phase, "host backup finished"),
        }
        let written = status::update(&handle.api, &handle.namespace, &handle.name, |s| {
            let already_final = handle
                .target_of(s)
                .and_then(|t| status::host_entry(t, &self.host.name))
                .is_some_and(|h| h.phase.is_some());
            if !already_final {
                status::upsert_host(s, &handle.target, &handle.namespace, entry.clone());
            }
        })
        .await
        .map_err(|e| error_chain(&e))?;
        let settings = match backed_up {
            Some((settings, ..)) => settings.clone(),
            None => invoker::read(&self.client, &self.options)
                .await
                .map_err(|e| error_chain(&e))?,
        };
        let pusher = MetricsPusher::new(&self.options, &settings);
        pusher.push_host(&entry).await;

        let Some(target) = written.status.as_ref().and_then(|s| handle.target_of(s)) else {
            return Ok(Handled::Done);
        };
        if !post_backup::runs_post_actions(target) {
            return Ok(Handled::Done);
        }
        let actions = target.post_backup_actions.clone().unwrap_or_default();
        let hosts: Vec<String> = target
            .stats
            .iter()
            .flatten()
            .filter_map(|s| s.hostname.clone())
            .collect();
        let owned;
        let (repository, engine) = match backed_up {
            Some((_, repository, engine)) => (repository, engine),
            None => match self.connect(&settings).await {
                Ok(connected) => {
                    owned = connected;
                    (&owned.0, &owned.1)
                }
                Err(message) => {
                    post_backup::fail_post_actions(handle, &actions, &message).await;
                    return Ok(Handled::Done);
                }
            },
        };
        tracing::info!(
            ?actions,
            ?hosts,
            "this host finished last; running the post-backup actions"
        );
        let control = Control::new(self.cancel.clone());
        post_backup::PostBackup {
            engine,
            control: &control,
            session: handle,
            settings: &settings,
            repository,
            metrics: &pusher,
            client: &self.client,
        }
        .run(&actions, hosts, session.metadata.creation_timestamp.clone())
        .await;
        Ok(Handled::Done)
    }
}

#[cfg(test)]
mod tests {
    use stash_api::phase::{BackupSessionPhase, HostBackupPhase};

    use super::*;

    fn target() -> TargetRef {
        TargetRef {
            api_version: None,
            kind: "Deployment".into(),
            name: "app".into(),
            namespace: Some("demo".into()),
        }
    }

    fn at(status: Option<&BackupSessionStatus>, host: &str) -> Step {
        step(status, &target(), "demo", host)
    }

    fn status(phase: Option<TargetPhase>, host: Option<HostBackupPhase>) -> BackupSessionStatus {
        BackupSessionStatus {
            phase: Some(BackupSessionPhase::Running),
            targets: Some(vec![BackupTargetStatus {
                reference: Some(TargetRef {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "app".into(),
                    namespace: Some("demo".into()),
                }),
                total_hosts: Some(1),
                phase,
                stats: Some(vec![HostBackupStats {
                    hostname: Some("host-0".into()),
                    phase: host,
                    ..HostBackupStats::default()
                }]),
                ..BackupTargetStatus::default()
            }]),
            ..BackupSessionStatus::default()
        }
    }

    #[test]
    fn a_host_backs_up_only_once_the_operator_marked_its_target_running() {
        assert_eq!(at(None, "host-0"), Step::Wait);
        assert_eq!(at(Some(&status(None, None)), "host-0"), Step::Wait);
        assert_eq!(
            at(Some(&status(Some(TargetPhase::Pending), None)), "host-0"),
            Step::Wait
        );
        assert_eq!(
            at(Some(&status(Some(TargetPhase::Running), None)), "host-0"),
            Step::Go
        );
    }

    #[test]
    fn final_sessions_and_hosts_already_final_are_skipped() {
        let done = status(Some(TargetPhase::Running), Some(HostBackupPhase::Succeeded));
        assert_eq!(at(Some(&done), "host-0"), Step::Skip);
        assert_eq!(at(Some(&done), "host-1"), Step::Go);
        let mut skipped = status(Some(TargetPhase::Running), None);
        skipped.phase = Some(BackupSessionPhase::Skipped);
        assert_eq!(at(Some(&skipped), "host-0"), Step::Skip);
    }
}
