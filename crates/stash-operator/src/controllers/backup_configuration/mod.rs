//! The BackupConfiguration controller (§4.3): dereference → validate → build → apply → status, with a
//! finalizer that takes the sidecar back out of the workload and deletes the trigger CronJob.
//!
//! It owns the trigger CronJobs and watches Repositories, Secrets and the workload kinds, so a
//! BackupConfiguration becomes Ready as soon as its missing Repository or Secret appears, and a workload
//! whose pod template lost the sidecar (e.g. re-applied by its owner) gets it back.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod release;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use stash_api::labels;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupConfiguration;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info_span, warn};

use self::apply::{delete_cronjob, delete_trigger, recorded_backup_configuration};
use self::build::BuildError;
use self::dereference::{DereferenceError, repository_key, storage_secret_name, workload_key};
use self::release::ReleaseError;
use self::status::{Report, SidecarOutcome, StatusError};
use self::validate::{SidecarTarget, ValidateErrors};
use crate::context::Context;
use crate::controllers::apply::ApplyError;
use crate::controllers::deprecation::warn_if_deprecated;
use crate::invoker::BackupInvoker;
use crate::workload::Workload;

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "backupconfiguration";
/// How often a Ready BackupConfiguration is looked at again without any change.
pub const RESYNC: Duration = Duration::from_mins(10);

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("failed to read the objects the BackupConfiguration names")]
    Dereference {
        #[from]
        source: DereferenceError,
    },
    #[error(transparent)]
    Validate(#[from] ValidateErrors),
    #[error("failed to build the objects of the BackupConfiguration: {message}")]
    Build {
        message: String,
        #[source]
        source: BuildError,
    },
    #[error("failed to apply the objects of the BackupConfiguration")]
    Apply {
        #[from]
        source: ApplyError,
    },
    #[error("failed to let go of a workload the BackupConfiguration no longer targets")]
    Release {
        #[from]
        source: ReleaseError,
    },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("failed to list the trigger CronJobs in namespace {namespace}")]
    ListCronJobs {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to add finalizer `stash.appscode.com` to the BackupConfiguration")]
    AddFinalizer {
        #[source]
        source: kube::Error,
    },
    #[error("failed to remove finalizer `stash.appscode.com` from the BackupConfiguration")]
    RemoveFinalizer {
        #[source]
        source: kube::Error,
    },
    #[error("failed to run the finalizer: {message}")]
    Finalizer { message: String },
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
            Self::Release { .. } => "ReleaseFailed",
            Self::Status(_) => "StatusWriteFailed",
            Self::ListCronJobs { .. } => "ListFailed",
            Self::AddFinalizer { .. } => "AddFinalizerFailed",
            Self::RemoveFinalizer { .. } => "RemoveFinalizerFailed",
            Self::Finalizer { .. } => "FinalizerFailed",
        }
    }

    /// Whether retrying may help without a spec change: missing objects and API errors are retried
    /// with backoff, a spec the builders or validation reject waits for a change.
    #[must_use]
    pub fn retryable(&self) -> bool {
        match self {
            Self::Validate(e) => e.retryable(),
            Self::Build { .. } | Self::Finalizer { .. } => false,
            _ => true,
        }
    }
}

fn key(bc: &BackupConfiguration) -> String {
    format!("{}/{}", bc.namespace().unwrap_or_default(), bc.name_any())
}

/// One reconcile, wrapped in the finalizer helper.
pub async fn reconcile(
    bc: Arc<BackupConfiguration>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!(
        "reconcile",
        kind = "BackupConfiguration",
        namespace = %bc.namespace().unwrap_or_default(),
        name = %bc.name_any()
    );
    async move {
        let _timer = ctx.metrics.reconcile_started(CONTROLLER);
        let api = Api::<BackupConfiguration>::namespaced(
            ctx.client.clone(),
            &bc.namespace().unwrap_or_default(),
        );
        Box::pin(finalizer(
            &api,
            labels::INVOKER_FINALIZER,
            bc,
            |event| async {
                match event {
                    finalizer::Event::Apply(bc) => Box::pin(reconcile_apply(bc, &ctx)).await,
                    finalizer::Event::Cleanup(bc) => Box::pin(cleanup(bc, &ctx)).await,
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

/// Retryable failures come back with backoff (5 s doubling to 5 min); the others wait for a change.
#[allow(clippy::needless_pass_by_value)] // the signature kube's Controller::run calls
pub fn error_policy(
    bc: Arc<BackupConfiguration>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.reconcile_failed(CONTROLLER, err.reason());
    warn!(
        kind = "BackupConfiguration",
        namespace = %bc.namespace().unwrap_or_default(),
        name = %bc.name_any(),
        reason = err.reason(),
        error = err as &dyn std::error::Error,
        "reconcile failed"
    );
    if err.retryable() {
        Action::requeue(ctx.next_backoff(&key(&bc)))
    } else {
        Action::await_change()
    }
}

async fn reconcile_apply(
    bc: Arc<BackupConfiguration>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let deref = dereference::dereference(ctx, &bc).await?;
    for workload in release::release_previous_targets(ctx, &bc).await? {
        tracing::info!(target = %workload, "released a workload the BackupConfiguration no longer targets");
    }
    let mut report = Report {
        deref: &deref,
        problems: None,
        build_problem: None,
        sidecar: SidecarOutcome::NotApplicable,
        cronjob: None,
    };
    let valid = match validate::validate(&bc, &deref) {
        Ok(valid) => valid,
        Err(problems) => {
            report.problems = Some(&problems);
            let status = status::desired_status(&bc, &report, jiff::Timestamp::now());
            status::write(
                ctx,
                &bc,
                status,
                (EventType::Warning, problems.reason(), problems.to_string()),
            )
            .await?;
            return Err(problems.into());
        }
    };
    let resources = match build::build(&valid, &ctx.settings) {
        Ok(resources) => resources,
        Err(err) => {
            let message = err.user_message();
            report.build_problem = Some(message.clone());
            if matches!(err, BuildError::Sidecar { .. }) {
                report.sidecar = SidecarOutcome::Failed {
                    message: message.clone(),
                };
            }
            let status = status::desired_status(&bc, &report, jiff::Timestamp::now());
            status::write(
                ctx,
                &bc,
                status,
                (EventType::Warning, err.reason(), message.clone()),
            )
            .await?;
            return Err(ReconcileError::Build {
                message,
                source: err,
            });
        }
    };
    let applied = apply::apply(&ctx.client, &resources).await?;
    for stale in owned_cronjobs(ctx, &bc)
        .await?
        .into_iter()
        .filter(|name| *name != applied.cronjob_name)
    {
        delete_trigger(&ctx.client, &bc, &stale).await?;
    }
    if applied.workload_updated == Some(true)
        && let Some(sidecar) = &resources.sidecar
    {
        tracing::info!(target = %sidecar.workload, "injected the stash sidecar");
        let invoker = BackupInvoker::Configuration(&bc).to_string();
        warn_if_deprecated(ctx, bc.as_ref(), &invoker, &sidecar.workload, "sidecar").await;
    }
    report.sidecar = match valid.sidecar {
        SidecarTarget::None => SidecarOutcome::NotApplicable,
        SidecarTarget::Inject(workload) => SidecarOutcome::Injected {
            workload: workload.to_string(),
        },
        SidecarTarget::Superseded { workload, winner } => SidecarOutcome::Failed {
            message: format!(
                "{}: {workload} is backed up by the newer {}; only the newest BackupConfiguration of a workload injects its sidecar, delete one of them",
                BackupInvoker::Configuration(&bc),
                BackupInvoker::Configuration(winner),
            ),
        },
    };
    report.cronjob = Some(Ok(applied.cronjob_name.clone()));
    let status = status::desired_status(&bc, &report, jiff::Timestamp::now());
    let note = match &report.sidecar {
        SidecarOutcome::Injected { workload } => format!(
            "CronJob {} triggers the backups; the stash sidecar is in {workload}",
            applied.cronjob_name
        ),
        _ => format!("CronJob {} triggers the backups", applied.cronjob_name),
    };
    let why = match status.phase {
        Some(stash_api::phase::BackupInvokerPhase::Ready) => "Ready",
        _ => "NotReady",
    };
    status::write(ctx, &bc, status, (EventType::Normal, why, note)).await?;
    ctx.reset_backoff(&key(&bc));
    Ok(Action::requeue(RESYNC))
}

/// The names of the trigger CronJobs `bc` owns.
async fn owned_cronjobs(
    ctx: &Context,
    bc: &BackupConfiguration,
) -> Result<Vec<String>, ReconcileError> {
    let namespace = bc.namespace().unwrap_or_default();
    let managed = Api::<CronJob>::namespaced(ctx.client.clone(), &namespace)
        .list_metadata(&ListParams::default().labels(&format!(
            "{}={}",
            labels::LABEL_MANAGED_BY,
            labels::MANAGED_BY
        )))
        .await
        .map_err(|source| ReconcileError::ListCronJobs {
            namespace: namespace.clone(),
            source,
        })?;
    let uid = bc.uid();
    Ok(managed
        .items
        .iter()
        .filter(|c| {
            c.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .map(ResourceExt::name_any)
        .collect())
}

/// Deletion (§4.3 step 1): the trigger CronJobs this BackupConfiguration owns, then the sidecar and the
/// annotations in every workload that records this BackupConfiguration, and the sidecar's RBAC unless
/// another BackupConfiguration still backs the workload up. The trigger's ServiceAccount and RoleBinding
/// are owned by the BackupConfiguration and go with it (garbage collection).
async fn cleanup(bc: Arc<BackupConfiguration>, ctx: &Context) -> Result<Action, ReconcileError> {
    for cronjob in owned_cronjobs(ctx, &bc).await? {
        delete_cronjob(&ctx.client, &bc, &cronjob).await?;
    }
    release::release_all(ctx, &bc).await?;
    ctx.reset_backoff(&key(&bc));
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

/// The BackupConfigurations whose target names `workload`, and the one its annotations record (which
/// takes its sidecar back out once it targets something else).
fn targeting(
    store: &Store<BackupConfiguration>,
    workload: &Workload,
) -> Vec<ObjectRef<BackupConfiguration>> {
    let mut out: Vec<ObjectRef<BackupConfiguration>> = store
        .state()
        .iter()
        .filter(|bc| workload_key(bc).is_some())
        .filter(|bc| {
            BackupInvoker::Configuration(bc)
                .target_for(workload)
                .is_some()
        })
        .map(|bc| ObjectRef::from_obj(bc.as_ref()))
        .collect();
    if let Some((namespace, name)) = recorded_backup_configuration(workload.metadata()) {
        let recorded = ObjectRef::new(&name).within(&namespace);
        if !out.contains(&recorded) {
            out.push(recorded);
        }
    }
    out
}

/// The BackupConfigurations that use Repository `namespace/name`.
fn using_repository(
    store: &Store<BackupConfiguration>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<BackupConfiguration>> {
    store
        .state()
        .iter()
        .filter(|bc| repository_key(bc).is_some_and(|(ns, n)| ns == namespace && n == name))
        .map(|bc| ObjectRef::from_obj(bc.as_ref()))
        .collect()
}

/// Runs the controller until `shutdown` is cancelled. `namespace` limits every watch to one namespace.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    make_context: impl FnOnce(Store<BackupConfiguration>, Store<Repository>) -> Context,
    shutdown: CancellationToken,
) {
    let ns = namespace.as_deref();
    let config = watcher::Config::default().any_semantic();
    let managed = config.clone().labels(&format!(
        "{}={}",
        labels::LABEL_MANAGED_BY,
        labels::MANAGED_BY
    ));

    let (repositories, repository_writer) = reflector::store::<Repository>();
    let repository_reflector = reflector::reflector(
        repository_writer,
        watcher(api::<Repository>(&client, ns), config.clone()),
    )
    .default_backoff()
    .touched_objects()
    .for_each(|_| futures::future::ready(()));

    let controller = Controller::new(api::<BackupConfiguration>(&client, ns), config.clone())
        .owns(api::<CronJob>(&client, ns), managed);
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
        // Standalone ReplicaSets are Stash v0.9-v0.17 targets; those a Deployment manages map to nothing.
        .watches(api::<ReplicaSet>(&client, ns), config, move |w| {
            let workload = Workload::from(w);
            if workload.managing_deployment().is_some() {
                Vec::new()
            } else {
                targeting(&by_replicaset, &workload)
            }
        })
        .graceful_shutdown_on(shutdown.clone().cancelled_owned());

    let context = Arc::new(make_context(store, repositories));
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
