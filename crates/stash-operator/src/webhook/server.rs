//! The admission webhook server: HTTPS (rustls) on the secure port, stopped by the shutdown token.
//!
//! Routes (POST, an `admission.k8s.io/v1` or `v1beta1` AdmissionReview in, the same version out):
//! * Stash's paths `/apis/admission.stash.appscode.com/<version>/<resource>`: the workload mutators
//!   (`deploymentmutators`, `statefulsetmutators`, `daemonsetmutators`, `replicasetmutators`) and the
//!   validators (`backupconfigurationvalidators`, `restoresessionvalidators`, `repositoryvalidators`, and
//!   any other `<kind>validators` of a Stash kind);
//! * `/mutate-workloads` and `/validate-stash`, the same handlers under short names.
//!
//! `GET /healthz` answers `ok`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use kube::api::ListParams;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::{Api, Client};
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, RestoreSession};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::invoker_cache::InvokerCache;
use super::mutate_workload::{NamespaceInvokers, mutate_workload, repository_key};
use super::validate_stash_objects::validate_stash_object;
use crate::invoker::{BackupInvoker, RestoreInvoker};
use crate::settings::Settings;

/// Stash's admission API group; its webhook paths are `/apis/<group>/<version>/<resource>`.
pub const ADMISSION_GROUP: &str = "admission.stash.appscode.com";
/// The short path of the workload mutating webhook.
pub const MUTATE_WORKLOADS_PATH: &str = "/mutate-workloads";
/// The short path of the Stash validating webhook.
pub const VALIDATE_STASH_PATH: &str = "/validate-stash";

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the mutating webhook gets the invokers of a namespace from.
#[derive(Clone)]
pub enum InvokerSource {
    /// Listed from the API server on each request.
    Client(Client),
    /// Read from the webhook's reflector stores; listed from the API server (as `Client`) until every
    /// store holds its initial list, so a fresh replica neither answers from an empty cache nor turns
    /// admissions away while it fills.
    Cached { cache: InvokerCache, client: Client },
    /// A fixed set, whatever the namespace (tests).
    Fixed(Arc<NamespaceInvokers>),
}

impl InvokerSource {
    async fn invokers(&self, namespace: &str) -> Result<Arc<NamespaceInvokers>, kube::Error> {
        match self {
            InvokerSource::Fixed(invokers) => Ok(Arc::clone(invokers)),
            InvokerSource::Cached { cache, .. } if cache.is_ready() => {
                Ok(Arc::new(cache.invokers(namespace)))
            }
            InvokerSource::Client(client) | InvokerSource::Cached { client, .. } => {
                Ok(Arc::new(list_invokers(client, namespace).await?))
            }
        }
    }
}

/// The BackupConfigurations, RestoreSessions and Repositories of `namespace`, plus the Repositories in
/// other namespaces that those invokers name.
pub async fn list_invokers(
    client: &Client,
    namespace: &str,
) -> Result<NamespaceInvokers, kube::Error> {
    let params = ListParams::default();
    let bcs = Api::<BackupConfiguration>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?;
    let rss = Api::<RestoreSession>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?;
    let repositories = Api::<Repository>::namespaced(client.clone(), namespace)
        .list(&params)
        .await?;
    let mut out = NamespaceInvokers {
        backup_configurations: bcs.items.into_iter().map(Arc::new).collect(),
        restore_sessions: rss.items.into_iter().map(Arc::new).collect(),
        repositories: repositories.items.into_iter().map(Arc::new).collect(),
    };
    let mut elsewhere: Vec<(String, String)> = out
        .backup_configurations
        .iter()
        .filter_map(|bc| {
            let invoker = BackupInvoker::Configuration(bc);
            Some(repository_key(invoker.repository()?, invoker.namespace()))
        })
        .chain(out.restore_sessions.iter().filter_map(|rs| {
            let invoker = RestoreInvoker::Session(rs);
            Some(repository_key(invoker.repository()?, invoker.namespace()))
        }))
        .filter(|(ns, _)| ns != namespace)
        .collect();
    elsewhere.sort();
    elsewhere.dedup();
    for (ns, name) in elsewhere {
        if let Some(repository) = Api::<Repository>::namespaced(client.clone(), &ns)
            .get_opt(&name)
            .await?
        {
            out.repositories.push(Arc::new(repository));
        }
    }
    Ok(out)
}

/// What the server serves.
#[derive(Clone)]
pub struct WebhookState {
    /// The builder settings (the operator flags), as the controller uses them.
    pub settings: Settings,
    pub invokers: InvokerSource,
    /// Serve the workload mutating webhook.
    pub mutating: bool,
    /// Serve the Stash validating webhook.
    pub validating: bool,
}

/// The routes, for tests that call them without a socket.
pub fn router(state: WebhookState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            &format!("/apis/{ADMISSION_GROUP}/{{version}}/{{resource}}"),
            post(stash_path),
        );
    if state.mutating {
        router = router.route(MUTATE_WORKLOADS_PATH, post(mutate));
    }
    if state.validating {
        router = router.route(VALIDATE_STASH_PATH, post(validate));
    }
    router.with_state(Arc::new(state))
}

type Shared = Arc<WebhookState>;

async fn stash_path(
    State(state): State<Shared>,
    Path((_version, resource)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match resource.as_str() {
        "deploymentmutators"
        | "statefulsetmutators"
        | "daemonsetmutators"
        | "replicasetmutators"
            if state.mutating =>
        {
            mutate(State(state), body).await
        }
        r if r.ends_with("validators") && state.validating => validate(State(state), body).await,
        _ => (
            StatusCode::NOT_FOUND,
            format!("no admission webhook {resource} is served"),
        )
            .into_response(),
    }
}

async fn mutate(State(state): State<Shared>, body: Bytes) -> Response {
    let request = match read_review(&body) {
        Ok(request) => request,
        Err(response) => return reply(*response),
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let invokers = match state.invokers.invokers(&namespace).await {
        Ok(invokers) => invokers,
        Err(err) => {
            warn!(%namespace, error = %err, "cannot list the Stash invokers; admitting the workload unchanged");
            let mut response = AdmissionResponse::from(&request);
            response.warnings = Some(vec![format!(
                "stash: cannot list the BackupConfigurations and RestoreSessions in {namespace}: {err}"
            )]);
            return reply(response);
        }
    };
    let response = mutate_workload(&request, &invokers, &state.settings);
    if response.patch.is_some() {
        info!(kind = %request.kind.kind, %namespace, name = %request.name, "injected Stash into the workload at admission");
    }
    reply(response)
}

async fn validate(State(_state): State<Shared>, body: Bytes) -> Response {
    match read_review(&body) {
        Ok(request) => {
            let response = validate_stash_object(&request);
            if !response.allowed {
                info!(kind = %request.kind.kind, name = %request.name, "refused at admission: {}", response.result.message);
            }
            reply(response)
        }
        Err(response) => reply(*response),
    }
}

/// The request of an AdmissionReview body (v1 or v1beta1), or the response refusing a malformed one.
fn read_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Box<AdmissionResponse>> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body).map_err(|err| {
        Box::new(AdmissionResponse::invalid(format!(
            "not an AdmissionReview: {err}"
        )))
    })?;
    review.try_into().map_err(|_| {
        Box::new(AdmissionResponse::invalid(
            "the AdmissionReview has no request",
        ))
    })
}

fn reply(response: AdmissionResponse) -> Response {
    match review_json(response) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// Serves HTTPS on `listener` until `shutdown` is cancelled, then lets open connections finish (briefly).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "the webhook server failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        connections.spawn(serve_connection(
            acceptor.clone(),
            tcp,
            peer,
            router.clone(),
            shutdown.clone(),
        ));
        while connections.try_join_next().is_some() {}
    }
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        connections.abort_all();
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            debug!(%peer, error = %err, "webhook TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "webhook TLS handshake timed out");
            return;
        }
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                debug!(%peer, error = %err, "webhook connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The AdmissionReview answering with `response`, as JSON: the patch as a base64 string, as the API
/// server's Go types encode `[]byte` (kube serializes it as an array of numbers).
pub fn review_json(response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let patch = response.patch.clone();
    let mut review = serde_json::to_value(response.into_review())?;
    if let (Some(patch), Some(slot)) = (patch, review.pointer_mut("/response/patch")) {
        *slot = serde_json::to_value(k8s_openapi::ByteString(patch))?;
    }
    serde_json::to_vec(&review)
}
