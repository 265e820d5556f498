//! The HTTP client every HTTPS backend uses: extra CA roots (`CA_CERT_DATA`, `--cacert`),
//! optional insecure TLS, a pool sized to the connection limit; and recognising "certificate
//! not trusted" in an error chain, so it is reported with its fix and never retried.

use std::error::Error as StdError;
use std::time::Duration;

use opendal::{Buffer, HttpBody, HttpTransport};
use opendal_http_transport_reqwest::ReqwestTransport;

use super::{BackendError, TlsOptions};

/// Time to establish a TCP + TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence while reading a response (packs are large; no limit on the whole request).
const READ_TIMEOUT: Duration = Duration::from_mins(5);

/// The certificates of a PEM bundle; an error when it holds none.
pub(crate) fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, BackendError> {
    let certs =
        reqwest::Certificate::from_pem_bundle(pem).map_err(|err| BackendError::InvalidCaCert {
            reason: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(BackendError::InvalidCaCert {
            reason: "no `-----BEGIN CERTIFICATE-----` block found".into(),
        });
    }
    Ok(certs)
}

/// An async client with the repository's TLS settings; `max_connections` caps idle
/// connections kept per host.
pub(crate) fn http_client(
    tls: &TlsOptions,
    max_connections: Option<usize>,
    location: &str,
) -> Result<reqwest::Client, BackendError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("stash-rs/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    if let Some(pem) = &tls.ca_cert_pem {
        builder = builder.tls_certs_merge(parse_ca_bundle(pem)?);
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(n) = max_connections {
        builder = builder.pool_max_idle_per_host(n);
    }
    builder
        .build()
        .map_err(|source| BackendError::BuildHttpClient {
            location: location.to_string(),
            source,
        })
}

/// Whether `err` (or anything in its source chain) is a rejected server certificate.
pub(crate) fn is_untrusted_certificate(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>()
            && matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        {
            return true;
        }
        // `io::Error::source` skips the error it wraps; tokio-rustls puts the rustls error there.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_untrusted_certificate(inner)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// opendal's reqwest transport over our client. A rejected certificate is marked permanent so
/// opendal's retry layer gives up at once instead of backing off five times.
pub(crate) struct Transport(ReqwestTransport);

impl Transport {
    pub(crate) fn new(client: reqwest::Client) -> Self {
        Self(ReqwestTransport::new(client))
    }
}

impl HttpTransport for Transport {
    async fn fetch(&self, req: http::Request<Buffer>) -> opendal::Result<http::Response<HttpBody>> {
        self.0.fetch(req).await.map_err(|err| {
            if is_untrusted_certificate(&err) {
                err.set_permanent()
            } else {
                err
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_with_two_certificates_yields_both() {
        let pem = |cn: &str| {
            let mut params = rcgen::CertificateParams::new(vec![cn.to_string()]).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().pem()
        };
        let bundle = format!("{}{}", pem("one"), pem("two"));
        assert_eq!(parse_ca_bundle(bundle.as_bytes()).unwrap().len(), 2);
        let tls = TlsOptions {
            ca_cert_pem: Some(bundle.into_bytes()),
            insecure_skip_verify: false,
        };
        http_client(&tls, Some(4), "s3:https://x/b").unwrap();
    }

    #[test]
    fn text_that_is_not_pem_is_rejected_naming_the_secret_key() {
        let err = parse_ca_bundle(b"not a certificate")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CA_CERT_DATA"), "{err}");
        assert!(err.contains("--cacert"), "{err}");
    }

    #[test]
    fn a_certificate_error_is_found_behind_an_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let wrapped = opendal::Error::new(opendal::ErrorKind::Unexpected, "send").set_source(io);
        assert!(is_untrusted_certificate(&wrapped));
        let other = opendal::Error::new(opendal::ErrorKind::Unexpected, "send")
            .set_source(std::io::Error::other("connection refused"));
        assert!(!is_untrusted_certificate(&other));
    }
}
