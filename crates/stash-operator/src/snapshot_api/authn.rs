//! Who is asking, as an aggregated API server learns it: the front proxy (kube-apiserver's
//! aggregator) connects with a client certificate signed by the requestheader CA and one of the
//! allowed names, and passes the user it authenticated in `X-Remote-User` / `X-Remote-Group` /
//! `X-Remote-Extra-*`. The CA, names and header names come from ConfigMap
//! `kube-system/extension-apiserver-authentication`, which the API server publishes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// Namespace and name of the ConfigMap the API server publishes its requestheader settings in.
pub const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// Why the front proxy's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error(
        "failed to read ConfigMap kube-system/extension-apiserver-authentication; bind the operator's ServiceAccount to Role extension-apiserver-authentication-reader in kube-system"
    )]
    ReadConfigMap {
        #[source]
        source: kube::Error,
    },
    #[error(
        "ConfigMap kube-system/extension-apiserver-authentication has no requestheader-client-ca-file; start kube-apiserver with --requestheader-client-ca-file (the aggregation layer)"
    )]
    NoRequestHeaderCa,
    #[error(
        "the requestheader-client-ca-file in ConfigMap kube-system/extension-apiserver-authentication holds no usable CA certificate"
    )]
    BadRequestHeaderCa,
    #[error("failed to build the front-proxy client certificate verifier")]
    Verifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// The API server's requestheader settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestHeader {
    /// PEM of the CA that signs the front proxy's client certificate.
    pub client_ca_pem: String,
    /// Common names the front proxy's certificate may have; empty: any the CA signed.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefixes: Vec<String>,
}

impl RequestHeader {
    /// The settings in the ConfigMap's data (JSON string arrays, as the API server writes them).
    pub fn from_data(data: &BTreeMap<String, String>) -> Result<Self, AuthnError> {
        let list = |key: &str, default: &str| -> Vec<String> {
            data.get(key)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_else(|| vec![default.to_owned()])
                .into_iter()
                .filter(|s: &String| !s.is_empty())
                .collect()
        };
        let client_ca_pem = data
            .get("requestheader-client-ca-file")
            .filter(|pem| !pem.trim().is_empty())
            .ok_or(AuthnError::NoRequestHeaderCa)?
            .clone();
        Ok(Self {
            client_ca_pem,
            allowed_names: list("requestheader-allowed-names", ""),
            username_headers: list("requestheader-username-headers", "X-Remote-User"),
            group_headers: list("requestheader-group-headers", "X-Remote-Group"),
            extra_headers_prefixes: list("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        })
    }

    /// Reads the settings from the API server.
    pub async fn read(client: &Client) -> Result<Self, AuthnError> {
        let (namespace, name) = AUTHENTICATION_CONFIGMAP;
        let configmap = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get(name)
            .await
            .map_err(|source| AuthnError::ReadConfigMap { source })?;
        Self::from_data(&configmap.data.unwrap_or_default())
    }

    /// A verifier that accepts only the front proxy: a client certificate chaining to the
    /// requestheader CA, with an allowed common name.
    pub fn verifier(&self) -> Result<Arc<dyn ClientCertVerifier>, AuthnError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.client_ca_pem.as_bytes()) {
            let cert = cert.map_err(|_| AuthnError::BadRequestHeaderCa)?;
            roots
                .add(cert)
                .map_err(|_| AuthnError::BadRequestHeaderCa)?;
        }
        if roots.is_empty() {
            return Err(AuthnError::BadRequestHeaderCa);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|source| AuthnError::Verifier { source })?;
        Ok(Arc::new(FrontProxyVerifier {
            inner,
            allowed_names: self.allowed_names.clone(),
        }))
    }

    /// The user the front proxy authenticated, from its headers; `None` when it names none.
    #[must_use]
    pub fn user(&self, headers: &HeaderMap) -> Option<User> {
        let values = |name: &str| {
            headers
                .get_all(name)
                .into_iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let name = self
            .username_headers
            .iter()
            .flat_map(|h| values(h))
            .find(|u| !u.is_empty())?;
        let groups = self
            .group_headers
            .iter()
            .flat_map(|h| values(h))
            .filter(|g| !g.is_empty())
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (header, value) in headers {
            let header = header.as_str();
            let Some(key) = self.extra_headers_prefixes.iter().find_map(|prefix| {
                header
                    .get(..prefix.len())
                    .filter(|p| p.eq_ignore_ascii_case(prefix))
                    .map(|_| &header[prefix.len()..])
            }) else {
                continue;
            };
            if let Ok(value) = value.to_str() {
                extra
                    .entry(percent_decode(key).to_ascii_lowercase())
                    .or_default()
                    .push(value.to_owned());
            }
        }
        Some(User {
            name,
            groups,
            extra,
        })
    }
}

/// Percent-decoding, for extra keys (`X-Remote-Extra-Scopes%2Fa`) and query values.
pub(super) fn percent_decode(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A user as the front proxy passes it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// WebPKI client verification plus the requestheader allowed names.
#[derive(Debug)]
struct FrontProxyVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed_names: Vec<String>,
}

fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

impl ClientCertVerifier for FrontProxyVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed_names.is_empty() {
            return Ok(ClientCertVerified::assertion());
        }
        match common_name(end_entity) {
            Some(cn) if self.allowed_names.contains(&cn) => Ok(ClientCertVerified::assertion()),
            cn => Err(rustls::Error::General(format!(
                "client certificate common name {cn:?} is not among the requestheader allowed names {:?}",
                self.allowed_names
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn data() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("requestheader-client-ca-file".to_owned(), "PEM".to_owned()),
            (
                "requestheader-allowed-names".to_owned(),
                r#"["front-proxy-client"]"#.to_owned(),
            ),
            (
                "requestheader-username-headers".to_owned(),
                r#"["X-Remote-User"]"#.to_owned(),
            ),
            (
                "requestheader-group-headers".to_owned(),
                r#"["X-Remote-Group"]"#.to_owned(),
            ),
            (
                "requestheader-extra-headers-prefix".to_owned(),
                r#"["X-Remote-Extra-"]"#.to_owned(),
            ),
        ])
    }

    #[test]
    fn the_configmap_s_json_arrays_become_the_settings() {
        let settings = RequestHeader::from_data(&data()).unwrap();
        assert_eq!(settings.allowed_names, ["front-proxy-client"]);
        assert_eq!(settings.username_headers, ["X-Remote-User"]);
        assert_eq!(settings.group_headers, ["X-Remote-Group"]);
    }

    #[test]
    fn without_a_requestheader_ca_the_error_names_the_api_server_flag() {
        let err = RequestHeader::from_data(&BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("--requestheader-client-ca-file"));
    }

    #[test]
    fn the_user_groups_and_extras_come_from_the_front_proxy_headers() {
        let settings = RequestHeader::from_data(&data()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", HeaderValue::from_static("alice"));
        headers.append("x-remote-group", HeaderValue::from_static("dev"));
        headers.append(
            "x-remote-group",
            HeaderValue::from_static("system:authenticated"),
        );
        headers.insert(
            "x-remote-extra-scopes%2fa",
            HeaderValue::from_static("read"),
        );
        let user = settings.user(&headers).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", "system:authenticated"]);
        assert_eq!(user.extra["scopes/a"], ["read"]);
        assert_eq!(settings.user(&HeaderMap::new()), None);
    }
}
