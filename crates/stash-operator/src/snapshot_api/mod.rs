//! `kubectl get snapshots`: Stash's aggregated API `repositories.stash.appscode.com/v1alpha1`
//! (§14.1), served by the operator on its own HTTPS port (`--snapshot-api-port`) behind the
//! APIService `v1alpha1.repositories.stash.appscode.com`.
//!
//! Snapshots are not stored objects: each list opens the Repositories of the namespace with the
//! engine (as `restic snapshots`), a get finds one there, a delete forgets it (`restic forget <id>`,
//! no prune). Only the API server's front proxy may connect (a client certificate from the
//! requestheader CA, [`authn`]); each request is authorized for the user it names with a
//! SubjectAccessReview ([`authz`]).

pub mod authn;
pub mod authz;
pub mod discovery;
pub mod names;
pub mod object;
pub mod selector;
pub mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kube::Client;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::OperatorConfig;

/// The API group.
pub const GROUP: &str = "repositories.stash.appscode.com";
/// Its one version.
pub const VERSION: &str = "v1alpha1";
/// `<group>/<version>`.
pub const API_VERSION: &str = "repositories.stash.appscode.com/v1alpha1";
pub const KIND: &str = "Snapshot";
pub const LIST_KIND: &str = "SnapshotList";
pub const RESOURCE: &str = "snapshots";
pub const SINGULAR: &str = "snapshot";
/// The verbs served (§14.1): no create, update, patch, watch or deletecollection.
pub const VERBS: [&str; 3] = ["delete", "get", "list"];

/// The snapshot API could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the snapshot API needs the webhook certificate and private key; set the TLS cert file and TLS private key file flags with --snapshot-api-port"
    )]
    MissingCertificate,
    #[error(
        "failed to read the serving certificate chain from {path}; give a PEM file with a CERTIFICATE block"
    )]
    Certificate { path: PathBuf },
    #[error(
        "failed to read the serving private key from {path}; give a PEM file with a PKCS#8, PKCS#1 or SEC1 key"
    )]
    PrivateKey { path: PathBuf },
    #[error("cannot authenticate the API server's front proxy")]
    FrontProxy {
        #[source]
        source: authn::AuthnError,
    },
    #[error(
        "the serving certificate and key do not make a TLS configuration; check that the key belongs to the certificate"
    )]
    Tls {
        #[source]
        source: rustls::Error,
    },
    #[error(
        "failed to listen on {address} for the snapshot API; choose a free port with --snapshot-api-port"
    )]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Starts serving when `--snapshot-api-port` is set: reads the front proxy's CA from the API server,
/// binds the port on the metrics address's IP, and serves until `shutdown`.
pub async fn start(
    client: &Client,
    config: &OperatorConfig,
    shutdown: CancellationToken,
) -> Result<Option<JoinHandle<()>>, StartError> {
    let Some(port) = config.snapshot_api_port else {
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_private_key_file) else {
        return Err(StartError::MissingCertificate);
    };
    let request_header = authn::RequestHeader::read(client)
        .await
        .map_err(|source| StartError::FrontProxy { source })?;
    let tls = tls_config(cert, key, &request_header)?;
    let address = SocketAddr::new(config.metrics_address.ip(), port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind { address, source })?;
    info!(%address, allowed_names = ?request_header.allowed_names, "serving the snapshot API ({API_VERSION})");
    let router = server::router(server::ApiState {
        client: client.clone(),
        request_header: Arc::new(request_header),
    });
    Ok(Some(tokio::spawn(crate::webhook::server::serve(
        listener, tls, router, shutdown,
    ))))
}

/// The serving certificate, with front-proxy client certificates required.
fn tls_config(
    cert_file: &Path,
    key_file: &Path,
    request_header: &authn::RequestHeader,
) -> Result<Arc<ServerConfig>, StartError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .ok()
        .filter(|certs| !certs.is_empty())
        .ok_or_else(|| StartError::Certificate {
            path: cert_file.to_owned(),
        })?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| StartError::PrivateKey {
        path: key_file.to_owned(),
    })?;
    let verifier = request_header
        .verifier()
        .map_err(|source| StartError::FrontProxy { source })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| StartError::Tls { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|source| StartError::Tls { source })?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}
