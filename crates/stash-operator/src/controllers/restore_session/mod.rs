//! The RestoreSession controller (§6, §10, session protocol): dereference → validate → build → apply →
//! status. It puts `stash-init` first among the target workload's init-containers, binds the pods'
//! service account to `stash-restore-init-container`, sets `totalHosts`, then waits for the hosts'
//! `stats[]` entries; once every host reported (or the deadline passed) it pushes the restore metrics
//! and sets the final phase. Its finalizer takes `stash-init` back out of the workload.
//!
//! It watches Repositories, Secrets and the workload kinds, so a Pending RestoreSession goes on as soon
//! as its missing Repository, Secret or workload appears.

pub mod apply;
pub mod build;
pub mod completion;
pub mod dereference;
pub mod job;
pub mod metrics;
pub mod release;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use stash_api::labels;
use stash_api::phase::RestorePhase;
use stash_api::units::format_go_duration;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::RestoreSession;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use self::apply::{REMOVING_INIT_CONTAINER, injected_for};
use self::build::BuildError;
use self::completion::{Completion, HostCounts};
use self::dereference::{DereferenceError, read_workload, repository_key, workload_key};
use self::metrics::RestoreOutcome;
use self::status::{Finish, InjectionOutcome, Report, StatusError};
use self::validate::ValidateErrors;
use crate::build::init_container::remove_init_container_from_workload;
use crate::context::Context;
use crate::controllers::apply::{ApplyError, restart_stale_pods, update_workload};
use crate::controllers::backup_configuration::dereference::storage_secret_name;
use crate::controllers::deprecation::warn_if_deprecated;
use crate::invoker::RestoreInvoker;
use crate::workload::Workload;

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "restoresession";
/// How often a running RestoreSession is looked at without any change (hosts report through watch
/// events; this only bounds how late a missed one is noticed).
pub const RESYNC: Duration = Duration::from_mins(1);

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("failed to read the objects the RestoreSession names")]
    Dereference {
        #[from]
        source: DereferenceError,
    },
    #[error(transparent)]
    Validate(#[from] ValidateErrors),
    #[error("failed to build the objects of the RestoreSession: {message}")]
    Build {
        message: String,
        #[source]
        source: BuildError,
    },
    #[error("failed to apply the objects of the RestoreSession")]
    Apply {
        #[from]
        source: ApplyError,
    },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("failed to add finalizer `stash.appscode.com` to the RestoreSession")]
    AddFinalizer {
        #[source]
        source: kube::Error,
    },
    #[error("failed to remove finalizer `stash.appscode.com` from the RestoreSession")]
    RemoveFinalizer {
        #[source]
        source: kube::Error,
    },
    #[error("failed to run the finalizer: {message}")]
    Finalizer { message: String },
    #[error(transparent)]
    Job(#[from] crate::controllers::backup_session::job::JobError),
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
}

impl ReconcileError {
    /// PascalCase reason for Events and the failure metric.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Dereference { .. } => "ReadFailed",
            Self::Validate(e) => e.reason(),
            Self::Build { source, .. } => source.reason(),
            Self::Apply { .. } => "ApplyFailed",
            Self::Status(_) => "StatusWriteFailed",
            Self::AddFinalizer { .. } => "AddFinalizerFailed",
            Self::RemoveFinalizer { .. } => "RemoveFinalizerFailed",
            Self::Finalizer { .. } => "FinalizerFailed",
            Self::Job(_) => "RestoreJobFailed",
            Self::Release(_) => "ReleaseFailed",
        }
    }

    /// Whether retrying may help without a change: missing objects and API errors are retried with
    /// backoff; a spec that validation or the builders reject waits for a change.
    #[must_use]
    pub fn retryable(&self) -> bool {
        match self {
            Self::Validate(e) => e.retryable(),
            Self::Build { .. } | Self::Finalizer { .. } => false,
            _ => true,
        }
    }
}

fn key(rs: &RestoreSession) -> String {
    format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any())
}

/// One reconcile, wrapped in the finalizer helper.
pub async fn reconcile(
    rs: Arc<RestoreSession>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!(
        "reconcile",
        kind = "RestoreSession",
        namespace = %rs.namespace().unwrap_or_default(),
        name = %rs.name_any()
    );
    async move {
        let _timer = ctx.metrics.reconcile_started(CONTROLLER);
        let api = Api::<RestoreSession>::namespaced(
            ctx.client.clone(),
            &rs.namespace().unwrap_or_default(),
        );
        Box::pin(finalizer(
            &api,
            labels::INVOKER_FINALIZER,
            rs,
            |event| async {
                match event {
                    finalizer::Event::Apply(rs) => Box::pin(reconcile_apply(rs, &ctx)).await,
                    finalizer::Event::Cleanup(rs) => Box::pin(cleanup(rs, &ctx)).await,
                }
            },
        ))
        .await
        .map_err(|err| match err {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            finalizer::Error::AddFinalizer(source) => ReconcileError::AddFinalizer { source },
            finalizer::Error::RemoveFinalizer(source) => ReconcileError::RemoveFinalizer { source },
            other => ReconcileError::Finalizer {
                message: other.to_string(),
            },
        })
    }
    .instrument(span)
    .await
}

/// Retryable failures come back with backoff (5 s doubling to 5 min); the others wait for a change. A
/// status write that lost a race with an agent is retried at once: the agent's write is the change.
#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run calls
pub fn error_policy(rs: Arc<RestoreSession>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    if let ReconcileError::Status(status) = err
        && status.is_conflict()
    {
        return Action::requeue(Duration::from_millis(200));
    }
    ctx.metrics.reconcile_failed(CONTROLLER, err.reason());
    warn!(
        kind = "RestoreSession",
        namespace = %rs.namespace().unwrap_or_default(),
        name = %rs.name_any(),
        reason = err.reason(),
        error = err as &dyn std::error::Error,
        "reconcile failed"
    );
    if err.retryable() {
        Action::requeue(ctx.next_backoff(&key(&rs)))
    } else {
        Action::await_change()
    }
}

async fn reconcile_apply(rs: Arc<RestoreSession>, ctx: &Context) -> Result<Action, ReconcileError> {
    // A final session is left as it is: its init-container stays until the RestoreSession is deleted
    // and exits at once on later pod starts (§10).
    if rs
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(RestorePhase::is_final)
    {
        ctx.reset_backoff(&key(&rs));
        return Ok(Action::await_change());
    }
    let deref = dereference::dereference(&ctx.client, &rs).await?;
    if crate::build::job::restores_a_claim(&rs) {
        return Box::pin(job::reconcile(&rs, ctx, &deref, Timestamp::now())).await;
    }
    let mut report = Report {
        deref: &deref,
        problems: None,
        injection: InjectionOutcome::NotApplicable,
        total_hosts: None,
        deadline: None,
        finish: None,
    };
    let now = Timestamp::now();
    let valid = match validate::validate(&rs, &deref) {
        Ok(valid) => valid,
        Err(problems) => {
            report.problems = Some(&problems);
            let status = status::desired_status(&rs, &report, HostCounts::default(), now);
            let event = (EventType::Warning, problems.reason(), problems.to_string());
            status::write(ctx, &rs, status, event).await?;
            return Err(problems.into());
        }
    };
    let resources = match build::build(&valid, &ctx.settings) {
        Ok(resources) => resources,
        Err(err) => {
            let message = err.user_message();
            report.injection = InjectionOutcome::Failed {
                message: message.clone(),
            };
            let status = status::desired_status(&rs, &report, HostCounts::default(), now);
            let event = (EventType::Warning, err.reason(), message.clone());
            status::write(ctx, &rs, status, event).await?;
            return Err(ReconcileError::Build {
                message,
                source: err,
            });
        }
    };
    match apply::apply(&ctx.client, &resources).await {
        Ok(true) => {
            info!(target = %valid.workload, "injected the stash-init init-container");
            let invoker = RestoreInvoker::Session(&rs).to_string();
            let executor = "stash-init init-container";
            warn_if_deprecated(ctx, rs.as_ref(), &invoker, valid.workload, executor).await;
        }
        Ok(false) => {}
        Err(err) => {
            let message = err.to_string();
            report.injection = InjectionOutcome::Failed {
                message: message.clone(),
            };
            let status = status::desired_status(&rs, &report, HostCounts::default(), now);
            let event = (
                EventType::Warning,
                stash_api::condition::reason::INIT_CONTAINER_INJECTION_FAILED,
                message,
            );
            status::write(ctx, &rs, status, event).await?;
            return Err(err.into());
        }
    }
    report.injection = InjectionOutcome::Injected {
        workload: valid.workload.to_string(),
    };
    Box::pin(track_hosts(&rs, ctx, report, resources.total_hosts, now)).await
}

/// Running (session protocol step 4): waits for every host's final `stats[]` entry or the deadline,
/// then pushes the metrics and writes the final phase.
async fn track_hosts(
    rs: &RestoreSession,
    ctx: &Context,
    mut report: Report<'_>,
    total_hosts: i32,
    now: Timestamp,
) -> Result<Action, ReconcileError> {
    let status = rs.status.as_ref();
    // A DaemonSet whose pods are not scheduled yet has no host: `totalHosts` waits for one, since the
    // agent starts restoring once it is set and a total of 0 would never complete.
    let total = status
        .and_then(|s| s.total_hosts)
        .filter(|t| *t > 0)
        .unwrap_or(total_hosts);
    report.total_hosts = (total > 0).then_some(total);
    let deadline = status
        .and_then(|s| s.session_deadline.as_ref())
        .map(|t| t.0)
        .or_else(|| completion::deadline(rs));
    report.deadline = deadline;
    let mut hosts = HostCounts::of(rs, total);
    let job_failed = matches!(report.injection, InjectionOutcome::JobFailed { .. });

    let Some(done) = completion::completion(hosts, deadline, job_failed, now) else {
        let status = status::desired_status(rs, &report, hosts, now);
        let workload = match &report.injection {
            InjectionOutcome::Injected { workload } => workload.as_str(),
            _ => "the workload",
        };
        let note = format!(
            "stash-init is the first init-container of {workload}; waiting for {total} host(s) to restore"
        );
        let event = (EventType::Normal, "RestoreSessionRunning", note);
        status::write(ctx, rs, status, event).await?;
        ctx.reset_backoff(&key(rs));
        let until_deadline = deadline
            .and_then(|d| Duration::try_from(now.duration_until(d)).ok())
            .map_or(RESYNC, |d| d.min(RESYNC) + Duration::from_millis(100));
        return Ok(Action::requeue(until_deadline));
    };

    if done == Completion::JobFailed {
        hosts = hosts.unreported_failed();
    }
    let elapsed = completion::elapsed(rs, now);
    let deadline_exceeded = done == Completion::DeadlineExceeded;
    let succeeded = !deadline_exceeded && hosts.failed == 0;
    let pushed = metrics::push(
        &ctx.settings.pushgateway_url,
        rs,
        RestoreOutcome {
            succeeded,
            duration: elapsed,
            hosts,
        },
    )
    .await;
    report.finish = Some(Finish {
        metrics: pushed,
        deadline_exceeded,
        duration: format_go_duration(elapsed),
    });
    let status = status::desired_status(rs, &report, hosts, now);
    let event = final_event(rs, status.phase, hosts, &report);
    status::write(ctx, rs, status, event).await?;
    ctx.reset_backoff(&key(rs));
    Ok(Action::await_change())
}

/// The Event of the final write: why it succeeded or failed.
fn final_event(
    rs: &RestoreSession,
    phase: Option<RestorePhase>,
    hosts: HostCounts,
    report: &Report<'_>,
) -> (EventType, &'static str, String) {
    let invoker = RestoreInvoker::Session(rs);
    let finish = report.finish.as_ref();
    let duration = finish.map(|f| f.duration.clone()).unwrap_or_default();
    if phase == Some(RestorePhase::Succeeded) {
        return (
            EventType::Normal,
            "RestoreSessionSucceeded",
            format!(
                "{invoker}: all {} host(s) restored in {duration}",
                hosts.total
            ),
        );
    }
    let mut why = Vec::new();
    if finish.is_some_and(|f| f.deadline_exceeded) {
        why.push(format!(
            "the deadline (spec.timeOut) passed with {} of {} host(s) reported",
            hosts.succeeded + hosts.failed,
            hosts.total
        ));
    }
    let failed = completion::host_errors(rs);
    if !failed.is_empty() {
        why.push(format!("host(s) failed: {}", failed.join("; ")));
    }
    if let InjectionOutcome::JobFailed { message, .. } = &report.injection {
        why.push(message.clone());
    }
    if let Some(Err(message)) = finish.map(|f| &f.metrics) {
        why.push(message.clone());
    }
    (
        EventType::Warning,
        "RestoreSessionFailed",
        format!("{invoker} failed after {duration}: {}", why.join("; ")),
    )
}

/// Deletion (§6.2): `stash-init` and the restore annotations leave the workload, if they are this
/// RestoreSession's (a standalone ReplicaSet's pods that still run it are restarted), and the RBAC it
/// created goes unless another RestoreSession of the workload still needs it ([`release`]).
async fn cleanup(rs: Arc<RestoreSession>, ctx: &Context) -> Result<Action, ReconcileError> {
    if let Some(mut workload) = read_workload(&ctx.client, &rs).await?
        && injected_for(&workload, &rs)
    {
        remove_init_container_from_workload(&mut workload, &ctx.settings);
        update_workload(&ctx.client, &workload, REMOVING_INIT_CONTAINER).await?;
        restart_stale_pods(&ctx.client, &workload).await?;
        info!(target = %workload, "removed the stash-init init-container");
    }
    let deleted = release::release_rbac(&ctx.client, &rs).await?;
    if !deleted.is_empty() {
        info!(objects = %deleted.join(", "), "deleted the RBAC of the RestoreSession");
    }
    ctx.reset_backoff(&key(&rs));
    Ok(Action::await_change())
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The RestoreSessions whose target names `workload`.
fn targeting(store: &Store<RestoreSession>, workload: &Workload) -> Vec<ObjectRef<RestoreSession>> {
    store
        .state()
        .iter()
        .filter(|rs| workload_key(rs).is_some())
        .filter(|rs| RestoreInvoker::Session(rs).target_for(workload).is_some())
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// The RestoreSessions that restore from Repository `namespace/name`.
fn using_repository(
    store: &Store<RestoreSession>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<RestoreSession>> {
    store
        .state()
        .iter()
        .filter(|rs| repository_key(rs).is_some_and(|(ns, n)| ns == namespace && n == name))
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` is cancelled. `namespace` limits every watch to one namespace;
/// `make_context` gets the cache of Repositories the controller keeps.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    make_context: impl FnOnce(Store<Repository>) -> Context,
    shutdown: CancellationToken,
) {
    let ns = namespace.as_deref();
    let config = watcher::Config::default().any_semantic();

    let (repositories, repository_writer) = reflector::store::<Repository>();
    let repository_reflector = reflector::reflector(
        repository_writer,
        watcher(api::<Repository>(&client, ns), config.clone()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));

    // The restore Jobs of claim targets (job model): a failed one concludes its RestoreSession at once.
    let managed = format!("{}={}", labels::LABEL_MANAGED_BY, labels::MANAGED_BY);
    let controller = Controller::new(api::<RestoreSession>(&client, ns), config.clone())
        .owns(api::<Job>(&client, ns), config.clone().labels(&managed));
    let store = controller.store();
    let by_repository = store.clone();
    let by_secret = store.clone();
    let secret_repositories = repositories.clone();
    let (by_deployment, by_statefulset, by_daemonset, by_replicaset) =
        (store.clone(), store.clone(), store.clone(), store.clone());
    let controller = controller
        .watches(
            api::<Repository>(&client, ns),
            config.clone(),
            move |repo| {
                using_repository(
                    &by_repository,
                    &repo.namespace().unwrap_or_default(),
                    &repo.name_any(),
                )
            },
        )
        .watches(api::<Secret>(&client, ns), config.clone(), move |secret| {
            let namespace = secret.namespace().unwrap_or_default();
            let name = secret.name_any();
            secret_repositories
                .state()
                .iter()
                .filter(|r| {
                    r.namespace().as_deref() == Some(namespace.as_str())
                        && storage_secret_name(r) == Some(name.as_str())
                })
                .flat_map(|r| using_repository(&by_secret, &namespace, &r.name_any()))
                .collect::<Vec<_>>()
        })
        .watches(api::<Deployment>(&client, ns), config.clone(), move |w| {
            targeting(&by_deployment, &Workload::from(w))
        })
        .watches(api::<StatefulSet>(&client, ns), config.clone(), move |w| {
            targeting(&by_statefulset, &Workload::from(w))
        })
        .watches(api::<DaemonSet>(&client, ns), config.clone(), move |w| {
            targeting(&by_daemonset, &Workload::from(w))
        })
        // Standalone ReplicaSets are Stash v0.9-v0.17 targets; one a Deployment manages is named only by
        // a RestoreSession that is refused, and goes on when the ReplicaSet changes.
        .watches(api::<ReplicaSet>(&client, ns), config, move |w| {
            targeting(&by_replicaset, &Workload::from(w))
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned());

    let context = Arc::new(make_context(repositories));
    let controller = controller
        .run(reconcile, error_policy, context)
        .for_each(|result| {
            if let Err(err) = result {
                tracing::debug!(
                    controller = CONTROLLER,
                    error = &err as &dyn std::error::Error,
                    "controller event"
                );
            }
            futures::future::ready(())
        });
    tokio::select! {
        () = controller => {}
        () = repository_reflector => {}
    }
}
