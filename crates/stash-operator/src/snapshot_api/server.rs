//! The HTTPS routes of the aggregated API, behind the front proxy: discovery, and get / list /
//! delete of snapshots, each authorized with a SubjectAccessReview for the user the proxy names.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::Client;
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{debug, warn};

use super::authn::{RequestHeader, percent_decode};
use super::authz::{self, Request};
use super::object::{IncludeObject, Snapshot, SnapshotList, table};
use super::selector::Selector;
use super::store::{self, StoreError};
use super::{API_VERSION, GROUP, RESOURCE, discovery};

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The operator's client: reads Repositories and Secrets, asks SubjectAccessReviews.
    pub client: Client,
    pub request_header: Arc<RequestHeader>,
}

/// The routes, for tests that call them without a socket.
pub fn router(state: ApiState) -> Router {
    let base = format!("/apis/{API_VERSION}");
    Router::new()
        .route(
            "/apis",
            get(|| async { json_response(&discovery::api_group_list()) }),
        )
        .route(
            &format!("/apis/{GROUP}"),
            get(|| async { json_response(&discovery::api_group()) }),
        )
        .route(
            &base,
            get(|| async { json_response(&discovery::api_resource_list()) }),
        )
        .route(&format!("{base}/{RESOURCE}"), get(list_all))
        .route(
            &format!("{base}/namespaces/{{namespace}}/{RESOURCE}"),
            get(list_namespace),
        )
        .route(
            &format!("{base}/namespaces/{{namespace}}/{RESOURCE}/{{name}}"),
            get(get_one).delete(delete_one),
        )
        .fallback(not_served)
        .with_state(Arc::new(state))
}

type Shared = Arc<ApiState>;

async fn not_served(method: Method, uri: Uri) -> Response {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "{method} {} is not served by the stash snapshot API",
            uri.path()
        ),
    )
}

async fn list_all(State(state): State<Shared>, headers: HeaderMap, uri: Uri) -> Response {
    list(&state, &headers, &uri, None).await
}

async fn list_namespace(
    State(state): State<Shared>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    list(&state, &headers, &uri, Some(namespace)).await
}

async fn list(
    state: &ApiState,
    headers: &HeaderMap,
    uri: &Uri,
    namespace: Option<String>,
) -> Response {
    let query = |key: &str| query_value(uri, key);
    if query("watch").is_some_and(|w| w == "true" || w == "1") {
        return status_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "watch is not supported on snapshots.repositories.stash.appscode.com; list again instead",
        );
    }
    let request = Request {
        verb: "list",
        namespace: namespace.clone(),
        name: None,
    };
    if let Err(refusal) = authorize(state, headers, &request).await {
        return refusal;
    }
    let selector = match Selector::parse(
        query("labelSelector").as_deref(),
        query("fieldSelector").as_deref(),
    ) {
        Ok(selector) => selector,
        Err(err) => {
            return status_response(StatusCode::BAD_REQUEST, "BadRequest", &err.to_string());
        }
    };
    match store::list(&state.client, namespace.as_deref(), selector.repository()).await {
        Ok(listing) => {
            let items: Vec<Snapshot> = listing
                .snapshots
                .into_iter()
                .filter(|s| selector.matches(s))
                .collect();
            let mut response = if wants_table(headers) {
                let include = IncludeObject::from_query(query("includeObject").as_deref());
                json_response(&table(&items, include))
            } else {
                json_response(&SnapshotList::new(items))
            };
            for err in &listing.unreadable {
                let message = error_chain(err);
                warn!(error = %message, "a Repository's snapshots are left out of a list");
                response
                    .headers_mut()
                    .append(header::WARNING, warning_header(&message));
            }
            response
        }
        Err(err) => store_error(&err),
    }
}

/// A `Warning: 299 - "…"` header, which kubectl prints as `Warning: …` (how the API server
/// reports deprecations): the list still answers with what could be read.
fn warning_header(message: &str) -> HeaderValue {
    let text: String = message
        .chars()
        .map(|c| match c {
            '"' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect();
    HeaderValue::from_str(&format!("299 - \"{text}\""))
        .expect("printable ASCII is a valid header value")
}

async fn get_one(
    State(state): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let request = Request {
        verb: "get",
        namespace: Some(namespace.clone()),
        name: Some(name.clone()),
    };
    if let Err(refusal) = authorize(&state, &headers, &request).await {
        return refusal;
    }
    match store::get(&state.client, &namespace, &name).await {
        Ok(snapshot) if wants_table(&headers) => {
            let include = IncludeObject::from_query(query_value(&uri, "includeObject").as_deref());
            json_response(&table(&[snapshot], include))
        }
        Ok(snapshot) => json_response(&snapshot),
        Err(err) => store_error(&err),
    }
}

async fn delete_one(
    State(state): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let request = Request {
        verb: "delete",
        namespace: Some(namespace.clone()),
        name: Some(name.clone()),
    };
    if let Err(refusal) = authorize(&state, &headers, &request).await {
        return refusal;
    }
    match store::delete(&state.client, &namespace, &name).await {
        Ok(snapshot) => json_response(&snapshot),
        Err(err) => store_error(&err),
    }
}

/// Ok when the front proxy names a user who may make `request`; otherwise the refusal to send.
async fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    request: &Request,
) -> Result<(), Response> {
    let Some(user) = state.request_header.user(headers) else {
        return Err(status_response(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "no user in the front proxy's headers; call this API through the Kubernetes API server",
        ));
    };
    match authz::check(&state.client, &user, request).await {
        Ok(None) => {
            debug!(user = %user.name, verb = request.verb, namespace = ?request.namespace, name = ?request.name, "authorized");
            Ok(())
        }
        Ok(Some(reason)) => Err(status_response(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &authz::forbidden_message(&user, request, &reason),
        )),
        Err(err) => {
            warn!(user = %user.name, error = %err, "SubjectAccessReview failed");
            Err(status_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!(
                    "cannot authorize the request: the SubjectAccessReview failed ({err}); bind the operator's ServiceAccount to ClusterRole system:auth-delegator"
                ),
            ))
        }
    }
}

/// kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` first.
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let params: Vec<&str> = media.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}

fn query_value(uri: &Uri, key: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == key).then(|| percent_decode(&v.replace('+', " ")))
    })
}

fn store_error(err: &StoreError) -> Response {
    match err {
        StoreError::NotFound { .. } => {
            status_response(StatusCode::NOT_FOUND, "NotFound", &err.to_string())
        }
        other => {
            let message = error_chain(other);
            warn!(error = %message, "cannot serve snapshots");
            status_response(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", &message)
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn json_response(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response(),
    }
}

/// A `metav1.Status` failure, which kubectl prints as `Error from server (<reason>): <message>`.
fn status_response(code: StatusCode, reason: &str, message: &str) -> Response {
    let body: Value = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason,
        "details": {"group": GROUP, "kind": RESOURCE},
        "code": code.as_u16(),
    });
    (code, json_response(&body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_repository_becomes_a_warning_kubectl_prints() {
        let value = warning_header("Repository demo/r: wrong \"password\"\u{e9}\nagain");
        assert_eq!(
            value.to_str().unwrap(),
            "299 - \"Repository demo/r: wrong 'password'??again\""
        );
    }

    #[test]
    fn kubectl_s_accept_header_asks_for_a_table_and_a_client_s_does_not() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ),
        );
        assert!(wants_table(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_table(&headers));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let uri: Uri = "/x?labelSelector=repository%3Dlocal-repo&limit=500"
            .parse()
            .unwrap();
        assert_eq!(
            query_value(&uri, "labelSelector").as_deref(),
            Some("repository=local-repo")
        );
        assert_eq!(query_value(&uri, "fieldSelector"), None);
    }
}
