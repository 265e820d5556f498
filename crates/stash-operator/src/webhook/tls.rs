//! The webhook server's TLS configuration: a PEM certificate chain and private key (the operator's TLS
//! cert/key flags), served with rustls on the ring provider, HTTP/1.1 only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "the webhook server needs a certificate and a private key; set the TLS cert file and TLS private key file flags"
    )]
    Missing,
    #[error(
        "failed to read the webhook certificate chain from {path}; give a PEM file with a CERTIFICATE block"
    )]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "the webhook certificate file {path} holds no certificate; give a PEM file with a CERTIFICATE block"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "failed to read the webhook private key from {path}; give a PEM file with a PKCS#8, PKCS#1 or SEC1 key"
    )]
    PrivateKey {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error(
        "the webhook certificate and private key do not make a TLS configuration; check that the key belongs to the certificate"
    )]
    Config {
        #[source]
        source: rustls::Error,
    },
}

/// A rustls server configuration from PEM files.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|source| TlsError::Certificate {
            path: cert_file.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_file.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| TlsError::PrivateKey {
        path: key_file.to_owned(),
        source,
    })?;
    server_config_from(certs, key)
}

/// A rustls server configuration from a parsed chain and key.
pub fn server_config_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Config { source })?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Config { source })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
