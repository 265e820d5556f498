//! The operator process: metrics/health server, leader election, the controllers, one shutdown token.

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use stash_api::labels;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{LeaderElection, OperatorConfig};
use crate::context::Context;
use crate::controllers::{backup_configuration, backup_session, restore_session};
use crate::metrics::Metrics;
use crate::server::{self, Health};
use crate::webhook;

/// Name of the operator in Events (`reportingController`).
pub const REPORTING_CONTROLLER: &str = "stash-operator";

/// The operator could not start, or stopped for a reason other than the shutdown token.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "failed to create a Kubernetes client; set KUBECONFIG or run in a pod with a service account"
    )]
    CreateClient {
        #[source]
        source: kube::Error,
    },
    #[error("failed to reach the Kubernetes API server")]
    ReachApiServer {
        #[source]
        source: kube::Error,
    },
    #[error(
        "failed to listen on {address} for /metrics, /healthz and /readyz; choose a free address with the metrics address flag"
    )]
    BindMetrics {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to load the admission webhook certificate")]
    WebhookTls {
        #[source]
        source: webhook::tls::TlsError,
    },
    #[error(
        "failed to listen on {address} for the admission webhooks; choose a free port with --secure-port"
    )]
    BindWebhook {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to start the snapshot API (kubectl get snapshots)")]
    SnapshotApi {
        #[source]
        source: crate::snapshot_api::StartError,
    },
    #[error("failed to serve /metrics, /healthz and /readyz")]
    Serve {
        #[source]
        source: std::io::Error,
    },
    #[error("failed to set up leader election with Lease {namespace}/{name}")]
    LeaderElection {
        namespace: String,
        name: String,
        #[source]
        source: LeaseManagerError,
    },
    #[error(
        "lost the leader Lease {namespace}/{name}; exiting so the replica restarts as a follower"
    )]
    LostLeadership { namespace: String, name: String },
}

/// Runs the operator with a client from `KUBECONFIG` or the pod's service account until `shutdown`.
pub async fn run(config: OperatorConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let client = Client::try_default()
        .await
        .map_err(|source| RunError::CreateClient { source })?;
    Box::pin(run_with_client(client, config, shutdown)).await
}

/// Runs the operator with `client` until `shutdown` is cancelled (or leadership is lost).
pub async fn run_with_client(
    client: Client,
    config: OperatorConfig,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let webhook_stop = shutdown.child_token();
    let webhook = start_webhook(&client, &config, webhook_stop.clone()).await?;
    let snapshot_api = crate::snapshot_api::start(&client, &config, webhook_stop.clone())
        .await
        .map_err(|source| RunError::SnapshotApi { source })?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener = TcpListener::bind(config.metrics_address)
        .await
        .map_err(|source| RunError::BindMetrics {
            address: config.metrics_address,
            source,
        })?;
    info!(address = %config.metrics_address, "serving /metrics, /healthz and /readyz");
    let server_stop = shutdown.child_token();
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&metrics),
        Arc::clone(&health),
        server_stop.clone(),
    ));

    let result = Box::pin(run_controllers(client, &config, metrics, &health, shutdown)).await;
    server_stop.cancel();
    webhook_stop.cancel();
    if let Some(webhook) = webhook {
        let _ = webhook.await;
    }
    if let Some(snapshot_api) = snapshot_api {
        let _ = snapshot_api.await;
    }
    let server_result = server
        .await
        .expect("the metrics server task does not panic");
    result?;
    server_result.map_err(|source| RunError::Serve { source })
}

/// Starts the admission webhook server when a webhook flag is on: HTTPS on the secure port, on the IP
/// the metrics server listens on.
async fn start_webhook(
    client: &Client,
    config: &OperatorConfig,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<()>>, RunError> {
    if !config.enable_mutating_webhook && !config.enable_validating_webhook {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_private_key_file) else {
        return Err(RunError::WebhookTls {
            source: webhook::tls::TlsError::Missing,
        });
    };
    let tls =
        webhook::tls::server_config(cert, key).map_err(|source| RunError::WebhookTls { source })?;
    let address = SocketAddr::new(config.metrics_address.ip(), config.secure_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::BindWebhook { address, source })?;
    info!(%address, mutating = config.enable_mutating_webhook, validating = config.enable_validating_webhook, "serving the admission webhooks");
    let (invokers, watches) = if config.enable_mutating_webhook {
        let (cache, watches) = webhook::InvokerCache::start(client, shutdown.clone());
        let invokers = webhook::InvokerSource::Cached {
            cache,
            client: client.clone(),
        };
        (invokers, Some(watches))
    } else {
        (webhook::InvokerSource::Client(client.clone()), None)
    };
    let router = webhook::server::router(webhook::WebhookState {
        settings: config.settings(),
        invokers,
        mutating: config.enable_mutating_webhook,
        validating: config.enable_validating_webhook,
    });
    Ok(Some(tokio::spawn(async move {
        webhook::server::serve(listener, tls, router, shutdown).await;
        if let Some(watches) = watches {
            let _ = watches.await;
        }
    })))
}

async fn run_controllers(
    client: Client,
    config: &OperatorConfig,
    metrics: Arc<Metrics>,
    health: &Health,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    client
        .apiserver_version()
        .await
        .map_err(|source| RunError::ReachApiServer { source })?;
    health.set_ready(true);
    match &config.leader_election {
        None => {
            Box::pin(start_controllers(client, config, metrics, shutdown)).await;
            Ok(())
        }
        Some(election) => {
            Box::pin(run_as_leader(client, config, election, metrics, shutdown)).await
        }
    }
}

async fn start_controllers(
    client: Client,
    config: &OperatorConfig,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let settings = config.settings();
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.to_owned(),
        instance: config.leader_election.as_ref().map(|l| l.identity.clone()),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let context_client = client.clone();
    let stop = shutdown.clone();
    let restore_session_controller = restore_session::run(
        client.clone(),
        config.watch_namespace.clone(),
        {
            let (client, settings, metrics, recorder) = (
                client.clone(),
                settings.clone(),
                Arc::clone(&metrics),
                recorder.clone(),
            );
            // It reads no BackupConfiguration: an empty cache.
            move |repositories| {
                let no_bcs = kube::runtime::reflector::store().0;
                Context::new(client, settings, metrics, recorder, no_bcs, repositories)
            }
        },
        shutdown.clone(),
    );
    let backup_session_controller = backup_session::run(
        client.clone(),
        config.watch_namespace.clone(),
        // It reads the invokers from the API server, not from a cache: empty ones.
        Context::new(
            client.clone(),
            settings.clone(),
            Arc::clone(&metrics),
            recorder.clone(),
            kube::runtime::reflector::store().0,
            kube::runtime::reflector::store().0,
        ),
        shutdown.clone(),
    );
    info!(namespace = ?config.watch_namespace, "starting the BackupConfiguration and RestoreSession controllers");
    let backup_configuration_controller = backup_configuration::run(
        client,
        config.watch_namespace.clone(),
        move |bcs, repositories| {
            Context::new(
                context_client,
                settings,
                metrics,
                recorder,
                bcs,
                repositories,
            )
        },
        shutdown,
    );
    let controllers = async {
        tokio::join!(
            Box::pin(backup_configuration_controller),
            Box::pin(restore_session_controller),
            Box::pin(backup_session_controller)
        );
    };
    // A kube-runtime Controller stopped before its store holds the initial list never ends: its
    // runner holds the queue until the store is ready, and the watch that would fill the store has
    // already stopped with the queue. So the graceful shutdown is bounded; past the bound no reconcile
    // can be running, or it is abandoned (its task is aborted with the controller).
    tokio::select! {
        () = controllers => info!("the BackupConfiguration and RestoreSession controllers stopped"),
        () = drain_deadline(&stop) => warn!(
            seconds = CONTROLLERS_DRAIN.as_secs(),
            "the controllers did not stop within the drain time after shutdown (one was stopped before its first list); dropping them"
        ),
    }
}

/// How long the controllers get after shutdown to finish the reconciles they are running.
const CONTROLLERS_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

async fn drain_deadline(shutdown: &CancellationToken) {
    shutdown.cancelled().await;
    tokio::time::sleep(CONTROLLERS_DRAIN).await;
}

/// Waits for the Lease, runs the controllers while holding it, and releases it on shutdown.
async fn run_as_leader(
    client: Client,
    config: &OperatorConfig,
    election: &LeaderElection,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let lease_error = |source| RunError::LeaderElection {
        namespace: election.namespace.clone(),
        name: election.lease_name.clone(),
        source,
    };
    let duration = election.lease_duration_seconds.max(3);
    let manager = LeaseManagerBuilder::new(client.clone(), &election.lease_name)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .with_field_manager(labels::lease_field_manager(
            labels::FIELD_MANAGER_OPERATOR,
            &election.identity,
        ))
        .build()
        .await
        .map_err(lease_error)?;
    let (mut leader, lease_task) = manager.watch().await;
    info!(lease = %election.lease_name, identity = %election.identity, "waiting for the leader Lease");
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            () = shutdown.cancelled() => {
                drop(leader);
                let _ = lease_task.await;
                return Ok(());
            }
            changed = leader.changed() => {
                if changed.is_err() {
                    return finish_lease(lease_task, lease_error).await;
                }
            }
        }
    }
    info!(lease = %election.lease_name, identity = %election.identity, "became the leader");

    let controllers_stop = shutdown.child_token();
    let controllers = start_controllers(client, config, metrics, controllers_stop.clone());
    tokio::pin!(controllers);
    let mut lost = false;
    loop {
        tokio::select! {
            () = &mut controllers => break,
            changed = leader.changed(), if !lost => {
                if changed.is_err() || !*leader.borrow_and_update() {
                    warn!(lease = %election.lease_name, "lost the leader Lease; stopping the controllers");
                    lost = true;
                    controllers_stop.cancel();
                }
            }
        }
    }
    drop(leader);
    let _ = lease_task.await;
    if lost && !shutdown.is_cancelled() {
        return Err(RunError::LostLeadership {
            namespace: election.namespace.clone(),
            name: election.lease_name.clone(),
        });
    }
    Ok(())
}

async fn finish_lease(
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    lease_error: impl FnOnce(LeaseManagerError) -> RunError,
) -> Result<(), RunError> {
    match task.await {
        Ok(Err(err)) => Err(lease_error(err)),
        _ => Ok(()),
    }
}
