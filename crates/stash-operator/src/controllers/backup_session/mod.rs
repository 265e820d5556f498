//! The BackupSession controller (§9.2, the operator rows of `docs/session-protocol.md`): a new session
//! is skipped or started (target entries with `totalHosts` and the pre/post-backup actions, the
//! deadline); a running one is recomputed on every status change the agents make until every host is
//! final and the post-backup actions answered — or the deadline passed — and then concluded: history
//! cleaned, session and target metrics pushed, phase (§5.4) and duration written. A Failed session with
//! retries left is retried (§9.5).
//!
//! Stages: [`dereference`] → [`validate`] (skip rules) → [`build`] / [`phase`] / [`history`] /
//! [`retry`] (pure) → [`apply`] → [`status`].

pub mod apply;
pub mod build;
pub mod dereference;
pub mod history;
pub mod job;
pub mod metrics;
pub mod phase;
pub mod retry;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use stash_api::phase::BackupSessionPhase;
use stash_api::v1beta1::BackupSession;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use self::apply::ApplyError;
use self::build::Outcome;
use self::dereference::{DereferenceError, InvokerKey, InvokerObject, invoker_key, read_invoker};
use self::retry::RetryStep;
use self::status::StatusError;
use crate::context::Context;

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "backupsession";
/// How soon a session whose DaemonSet target has no hosts counted yet is looked at again.
pub const HOSTS_RECHECK: Duration = Duration::from_secs(5);
/// How often a running session is looked at without any change (the agents' writes wake it sooner).
pub const RESYNC: Duration = Duration::from_mins(5);

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("failed to read the objects the BackupSession names")]
    Dereference {
        #[from]
        source: DereferenceError,
    },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Job(#[from] job::JobError),
}

impl ReconcileError {
    /// PascalCase reason for Events and the failure metric.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Dereference { .. } => "ReadFailed",
            Self::Status(_) => "StatusWriteFailed",
            Self::Apply(_) => "RetryFailed",
            Self::Job(_) => "BackupJobFailed",
        }
    }
}

fn key(session: &BackupSession) -> String {
    format!(
        "backupsession/{}/{}",
        session.namespace().unwrap_or_default(),
        session.name_any()
    )
}

/// One reconcile: the step the session's phase calls for.
pub async fn reconcile(
    session: Arc<BackupSession>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!(
        "reconcile",
        kind = "BackupSession",
        namespace = %session.namespace().unwrap_or_default(),
        name = %session.name_any()
    );
    async move {
        let _timer = ctx.metrics.reconcile_started(CONTROLLER);
        let now = Timestamp::now();
        let phase = session.status.as_ref().and_then(|s| s.phase);
        let action = match phase {
            Some(p) if p.is_final() => Box::pin(retry(&session, &ctx, now)).await?,
            Some(BackupSessionPhase::Running) => Box::pin(running(&session, &ctx, now)).await?,
            _ => Box::pin(start(&session, &ctx, now)).await?,
        };
        ctx.reset_backoff(&key(&session));
        Ok(action)
    }
    .instrument(span)
    .await
}

/// Every failure here is an API error or a conflict, worth retrying with backoff.
#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run calls
pub fn error_policy(
    session: Arc<BackupSession>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, err.reason());
    warn!(
        kind = "BackupSession",
        namespace = %session.namespace().unwrap_or_default(),
        name = %session.name_any(),
        reason = err.reason(),
        error = err as &dyn std::error::Error,
        "reconcile failed"
    );
    Action::requeue(ctx.next_backoff(&key(&session)))
}

fn created(session: &BackupSession, now: Timestamp) -> Timestamp {
    session
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0)
}

/// `until − now`, at least a second so a deadline just reached is handled on the next pass.
fn until(until: Timestamp, now: Timestamp) -> Duration {
    until
        .duration_since(now)
        .unsigned_abs()
        .max(Duration::from_secs(1))
}

/// A new session (no phase, or Pending): skip it, or write its targets and make it Running.
async fn start(
    session: &BackupSession,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    let key = invoker_key(session);
    let (invoker, siblings) = match &key {
        Ok(k) => (
            read_invoker(&ctx.client, k).await?,
            dereference::list_sessions(&ctx.client, k).await?,
        ),
        Err(_) => (None, Vec::new()),
    };
    if let Some(why) = validate::skip_reason(session, key.as_ref(), invoker.as_ref(), &siblings) {
        return skip(session, ctx, key.ok().as_ref(), invoker.as_ref(), why, now).await;
    }
    let Some(invoker) = invoker else {
        // skip_reason names a missing invoker; nothing is left to do.
        return Ok(Action::await_change());
    };
    let workloads = dereference::read_workloads(&ctx.client, invoker.invoker()).await?;
    let Some(targets) = build::initial_targets(invoker.invoker(), &workloads, now) else {
        info!("a DaemonSet target has no scheduled pods counted yet; looking again shortly");
        return Ok(Action::requeue(HOSTS_RECHECK));
    };
    let jobs = job::ensure(&ctx.client, &ctx.settings, session, &invoker).await?;
    if !jobs.is_empty() {
        info!(jobs = ?jobs, "the backup Job of each PersistentVolumeClaim target is in place");
    }
    let deadline = invoker.time_out().and_then(|time_out| {
        build::session_deadline(created(session, now), time_out)
            .inspect_err(|problem| warn!(%problem, "ignoring the invoker's timeOut"))
            .ok()
    });
    let (written, changed) = status::update(ctx, session, |_, status| {
        if status
            .phase
            .is_some_and(|p| p != BackupSessionPhase::Pending)
            || status.targets.is_some()
        {
            return;
        }
        status.targets = Some(targets.clone());
        status.session_deadline.clone_from(&deadline);
        status.phase = Some(phase::session_phase(status));
    })
    .await?;
    if changed {
        let described: Vec<String> = targets
            .iter()
            .filter_map(|t| {
                let r = t.reference.as_ref()?;
                Some(match t.total_hosts {
                    Some(n) => format!(
                        "{} {}/{} ({n} host(s))",
                        r.kind,
                        r.namespace.as_deref().unwrap_or_default(),
                        r.name
                    ),
                    None => format!(
                        "{} {}/{} (cannot be backed up)",
                        r.kind,
                        r.namespace.as_deref().unwrap_or_default(),
                        r.name
                    ),
                })
            })
            .collect();
        info!(targets = ?described, "backup session running");
        status::publish(
            ctx,
            &written,
            EventType::Normal,
            "BackupSessionRunning",
            format!("Backing up {}.", described.join(", ")),
        )
        .await;
    }
    Ok(match deadline {
        Some(d) => Action::requeue(until(d.0, now).min(RESYNC)),
        None => Action::requeue(RESYNC),
    })
}

/// Skip (§9.2 step 4): `BackupSkipped`, history cleaned, session metrics pushed, phase Skipped.
async fn skip(
    session: &BackupSession,
    ctx: &Context,
    key: Option<&InvokerKey>,
    invoker: Option<&InvokerObject>,
    why: String,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    let mut outcome = Outcome {
        skipped: Some(why.clone()),
        ..Outcome::default()
    };
    if let Some(key) = key {
        let limit = invoker.and_then(InvokerObject::backup_history_limit);
        outcome.history = Some(apply::clean_history(&ctx.client, key, limit).await);
        let labels = metrics::session_labels(key, invoker);
        let gauges =
            stash_metrics::backup::session(&labels, false, Duration::ZERO, 0, SystemTime::now());
        outcome.metrics =
            Some(metrics::push(&ctx.settings.pushgateway_url, &labels, &gauges).await);
    }
    let start = created(session, now);
    let (written, changed) = status::update(ctx, session, |_, status| {
        if status.phase.is_some_and(BackupSessionPhase::is_final) || status.targets.is_some() {
            return;
        }
        build::conclude(status, &outcome, start, now);
    })
    .await?;
    if changed {
        info!(reason = %why, "backup session skipped");
        status::publish(
            ctx,
            &written,
            EventType::Warning,
            "BackupSessionSkipped",
            why,
        )
        .await;
    }
    Ok(Action::await_change())
}

/// A running session: conclude it once the backup is completed or the deadline passed.
async fn running(
    session: &BackupSession,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    let mut current = session.status.clone().unwrap_or_default();
    if !phase::backup_completed(&current) {
        let failed = job::failed_jobs(&ctx.client, session)
            .await
            .map_err(|source| job::JobError::ListJobs { source })?;
        if !failed.is_empty() {
            let (written, _) = status::update(ctx, session, |_, status| {
                job::record_failed_jobs(status, &failed, now);
            })
            .await?;
            current = written.status.unwrap_or_default();
        }
    }
    let completed = phase::backup_completed(&current);
    if !completed && !phase::deadline_passed(&current, now) {
        return Ok(match &current.session_deadline {
            Some(deadline) => Action::requeue(until(deadline.0, now).min(RESYNC)),
            None => Action::requeue(RESYNC),
        });
    }
    let key = invoker_key(session).ok();
    let invoker = match &key {
        Some(k) => read_invoker(&ctx.client, k).await?,
        None => None,
    };
    let mut outcome = Outcome::default();
    if !completed {
        outcome.deadline_exceeded = Some(format!(
            "The backup did not complete within timeOut {} (deadline {}).",
            invoker
                .as_ref()
                .and_then(InvokerObject::time_out)
                .unwrap_or("of the invoker"),
            current
                .session_deadline
                .as_ref()
                .map(|d| d.0.to_string())
                .unwrap_or_default()
        ));
    }
    let start = created(session, now);
    if let Some(key) = &key {
        let limit = invoker
            .as_ref()
            .and_then(InvokerObject::backup_history_limit);
        outcome.history = Some(apply::clean_history(&ctx.client, key, limit).await);
        // What the phase will be once the metrics are pushed, for their `success` gauges.
        let mut expected = current.clone();
        build::conclude(
            &mut expected,
            &Outcome {
                metrics: Some(Ok(())),
                ..outcome.clone()
            },
            start,
            now,
        );
        let succeeded = expected.phase == Some(BackupSessionPhase::Succeeded);
        let labels = metrics::session_labels(key, invoker.as_ref());
        let elapsed = now.duration_since(start).unsigned_abs();
        let gauges =
            metrics::session_metrics(&labels, &expected, succeeded, elapsed, SystemTime::now());
        outcome.metrics =
            Some(metrics::push(&ctx.settings.pushgateway_url, &labels, &gauges).await);
    }
    let (written, changed) = status::update(ctx, session, |_, status| {
        if status.phase != Some(BackupSessionPhase::Running) {
            return;
        }
        build::conclude(status, &outcome, start, now);
    })
    .await?;
    if changed {
        announce(ctx, &written).await;
    }
    Ok(Action::await_change())
}

/// The Event of a concluded session.
async fn announce(ctx: &Context, session: &BackupSession) {
    let status = session.status.clone().unwrap_or_default();
    let duration = status.session_duration.clone().unwrap_or_default();
    let problems: Vec<String> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| {
            matches!(
                (c.type_, c.status),
                (
                    stash_api::condition::ConditionType::DeadlineExceeded,
                    stash_api::condition::ConditionStatus::True
                )
            ) || (c.status == stash_api::condition::ConditionStatus::False)
        })
        .map(|c| format!("{:?}: {}", c.type_, c.message.clone().unwrap_or_default()))
        .chain(status.targets.iter().flatten().flat_map(|t| {
            t.stats.iter().flatten().filter_map(|h| {
                h.error
                    .as_ref()
                    .map(|e| format!("host {}: {e}", h.hostname.as_deref().unwrap_or_default()))
            })
        }))
        .collect();
    match status.phase {
        Some(BackupSessionPhase::Succeeded) => {
            info!(phase = "Succeeded", duration, "backup session succeeded");
            status::publish(
                ctx,
                session,
                EventType::Normal,
                "BackupSessionSucceeded",
                format!("Backup session succeeded in {duration}."),
            )
            .await;
        }
        Some(BackupSessionPhase::Failed) => {
            warn!(phase = "Failed", duration, problems = ?problems, "backup session failed");
            status::publish(
                ctx,
                session,
                EventType::Warning,
                "BackupSessionFailed",
                format!(
                    "Backup session failed after {duration}: {}",
                    if problems.is_empty() {
                        "a target failed".to_owned()
                    } else {
                        problems.join("; ")
                    }
                ),
            )
            .await;
        }
        _ => {}
    }
}

/// A final session: retry a Failed one that has retries left (§9.5).
async fn retry(
    session: &BackupSession,
    ctx: &Context,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    if session.status.as_ref().and_then(|s| s.phase) != Some(BackupSessionPhase::Failed) {
        return Ok(Action::await_change());
    }
    let Ok(key) = invoker_key(session) else {
        return Ok(Action::await_change());
    };
    let Some(invoker) = read_invoker(&ctx.client, &key).await? else {
        return Ok(Action::await_change());
    };
    match retry::retry_step(session, invoker.retry_config(), now) {
        RetryStep::Nothing => Ok(Action::await_change()),
        RetryStep::WaitUntil(at) => Ok(Action::requeue(until(at, now))),
        RetryStep::Schedule(at) => {
            status::update(ctx, session, |_, status| {
                if status.next_retry.is_none() {
                    status.next_retry = Some(Time(at));
                }
            })
            .await?;
            Ok(Action::requeue(until(at, now)))
        }
        RetryStep::CreateNow => {
            let retry_left = session.spec.retry_left.unwrap_or(0) - 1;
            let name = apply::create_retry_session(&ctx.client, &key, &invoker, retry_left).await?;
            let (written, _) = status::update(ctx, session, |_, status| {
                status.retried = Some(true);
            })
            .await?;
            info!(retry = %name, retry_left, "retrying the failed backup");
            status::publish(
                ctx,
                &written,
                EventType::Normal,
                "BackupSessionRetried",
                format!("Retrying the failed backup with BackupSession {name} ({retry_left} retries left after it)."),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

/// Runs the controller until `shutdown` is cancelled. `namespace` limits the watch to one namespace.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    context: Context,
    shutdown: CancellationToken,
) {
    // The backup Jobs of claim targets (job model): a failed one concludes its session.
    let jobs = match namespace.as_deref() {
        Some(ns) => Api::<k8s_openapi::api::batch::v1::Job>::namespaced(client.clone(), ns),
        None => Api::<k8s_openapi::api::batch::v1::Job>::all(client.clone()),
    };
    let api = match namespace.as_deref() {
        Some(ns) => Api::<BackupSession>::namespaced(client, ns),
        None => Api::<BackupSession>::all(client),
    };
    let managed = format!(
        "{}={}",
        stash_api::labels::LABEL_MANAGED_BY,
        stash_api::labels::MANAGED_BY
    );
    Controller::new(api, watcher::Config::default().any_semantic())
        .owns(
            jobs,
            watcher::Config::default().any_semantic().labels(&managed),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, Arc::new(context))
        .for_each(|result| {
            if let Err(err) = result {
                tracing::debug!(
                    controller = CONTROLLER,
                    error = &err as &dyn std::error::Error,
                    "controller event"
                );
            }
            futures::future::ready(())
        })
        .await;
}
