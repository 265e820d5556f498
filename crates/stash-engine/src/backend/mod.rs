//! Storage backends: the typed [`BackendConfig`] and what is built from it — the `rustic_core`
//! backends of a repository and its lock store.
//!
//! Local directories and REST servers use `rustic_backend`'s backends; every object store
//! (s3, gcs, azblob, b2, swift) uses our own opendal backend, whose HTTP client carries the
//! repository's CA (`CA_CERT_DATA`), insecure-TLS and connection-limit settings. Nothing here
//! starts a tokio runtime: builders take the caller's `Handle`, and the blocking calls of the
//! built backends must run outside async code (in `spawn_blocking`).

mod config;
mod error;
pub(crate) mod locks;
mod opendal;
#[cfg(test)]
mod s3_tls_tests;
mod tls;

use std::sync::Arc;

use rustic_core::{RepositoryBackends, WriteBackend};
use tokio::runtime::Handle;

#[cfg(test)]
pub(crate) use self::opendal::s3_endpoint;
pub(crate) use config::redact_userinfo;
pub use config::{
    AzureCredentials, B2Credentials, BackendConfig, Credentials, GcsCredentials, Provider,
    RestCredentials, S3Credentials, Secret, SwiftCredentials, TlsOptions, keys,
};
pub use error::BackendError;

/// The `rustic_core` backends of the repository described by `config`.
pub(crate) fn repository_backends(
    config: &BackendConfig,
    location: &str,
    rt: &Handle,
) -> Result<RepositoryBackends, BackendError> {
    let backend: Arc<dyn WriteBackend> = match &config.provider {
        Provider::Local { path } => {
            let path = path.to_str().ok_or_else(|| BackendError::InvalidConfig {
                provider: "local",
                field: "path",
                reason: format!("`{}` is not valid UTF-8", path.display()),
            })?;
            Arc::new(
                rustic_backend::LocalBackend::new(path, Vec::new())
                    .map_err(rustic_failed("local", location))?,
            )
        }
        Provider::Rest { url } => Arc::new(rest_backend(config, url, location)?),
        _ => Arc::new(opendal::OpendalBackend::new(config, location, rt)?),
    };
    Ok(RepositoryBackends::new(backend, None))
}

fn rustic_failed(
    provider: &'static str,
    location: &str,
) -> impl FnOnce(Box<rustic_core::RusticError>) -> BackendError {
    let location = location.to_string();
    move |source| BackendError::BuildRusticBackend {
        provider,
        location,
        source,
    }
}

/// The REST URL with credentials as userinfo, as `rustic_backend` expects them.
pub(crate) fn rest_url_with_credentials(
    config: &BackendConfig,
    url: &str,
) -> Result<String, BackendError> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| BackendError::InvalidConfig {
        provider: "rest",
        field: "url",
        reason: e.to_string(),
    })?;
    if let Credentials::Rest(creds) = &config.credentials {
        let invalid = |()| BackendError::InvalidConfig {
            provider: "rest",
            field: "url",
            reason: "the URL cannot carry credentials".into(),
        };
        parsed.set_username(&creds.username).map_err(invalid)?;
        let password = creds.password.expose();
        parsed
            .set_password((!password.is_empty()).then_some(password))
            .map_err(invalid)?;
    }
    let mut url = parsed.to_string();
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// `rustic_backend`'s REST backend; it reads its CA from a file, so the PEM bundle goes to a
/// temporary one for the time of construction.
fn rest_backend(
    config: &BackendConfig,
    url: &str,
    location: &str,
) -> Result<rustic_backend::RestBackend, BackendError> {
    let url = rest_url_with_credentials(config, url)?;
    let Some(pem) = &config.tls.ca_cert_pem else {
        return rustic_backend::RestBackend::new(url, Vec::new())
            .map_err(rustic_failed("rest", location));
    };
    tls::parse_ca_bundle(pem)?;
    let write_failed = |source| BackendError::WriteCaFile { source };
    let mut file = tempfile::NamedTempFile::new().map_err(write_failed)?;
    std::io::Write::write_all(&mut file, pem).map_err(write_failed)?;
    let options = vec![(
        "cacert".to_string(),
        file.path().to_string_lossy().into_owned(),
    )];
    rustic_backend::RestBackend::new(url, options).map_err(rustic_failed("rest", location))
}
