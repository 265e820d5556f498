//! The typed description of where a repository lives: one [`Provider`] (Stash's
//! `Repository.spec.backend` block), the [`Credentials`] from the storage Secret, [`TlsOptions`]
//! and a connection limit. Both the restic-string parser and the agent (from a Stash `Repository`
//! plus its Secret) build this type; everything that talks to storage is built from it.

use std::fmt;
use std::path::PathBuf;

use super::BackendError;

/// Storage Secret keys (Stash §3.2), also the environment variable names restic reads.
pub mod keys {
    /// PEM bundle of the CA(s) that sign the storage server's certificate.
    pub const CA_CERT_DATA: &str = "CA_CERT_DATA";
    pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
    pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
    pub const AWS_REGION: &str = "AWS_REGION";
    pub const REST_SERVER_USERNAME: &str = "REST_SERVER_USERNAME";
    pub const REST_SERVER_PASSWORD: &str = "REST_SERVER_PASSWORD";
    pub const GOOGLE_PROJECT_ID: &str = "GOOGLE_PROJECT_ID";
    pub const GOOGLE_SERVICE_ACCOUNT_JSON_KEY: &str = "GOOGLE_SERVICE_ACCOUNT_JSON_KEY";
    pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
    pub const AZURE_ACCOUNT_NAME: &str = "AZURE_ACCOUNT_NAME";
    pub const AZURE_ACCOUNT_KEY: &str = "AZURE_ACCOUNT_KEY";
    pub const AZURE_ACCOUNT_SAS: &str = "AZURE_ACCOUNT_SAS";
    pub const AZURE_ENDPOINT_SUFFIX: &str = "AZURE_ENDPOINT_SUFFIX";
    pub const B2_ACCOUNT_ID: &str = "B2_ACCOUNT_ID";
    pub const B2_ACCOUNT_KEY: &str = "B2_ACCOUNT_KEY";
    /// Not a Stash key: opendal addresses B2 buckets by id.
    pub const B2_BUCKET_ID: &str = "B2_BUCKET_ID";
    pub const ST_AUTH: &str = "ST_AUTH";
    pub const ST_USER: &str = "ST_USER";
    pub const ST_KEY: &str = "ST_KEY";
    pub const OS_AUTH_URL: &str = "OS_AUTH_URL";
    pub const OS_REGION_NAME: &str = "OS_REGION_NAME";
    pub const OS_USERNAME: &str = "OS_USERNAME";
    pub const OS_PASSWORD: &str = "OS_PASSWORD";
    pub const OS_TENANT_ID: &str = "OS_TENANT_ID";
    pub const OS_TENANT_NAME: &str = "OS_TENANT_NAME";
    pub const OS_USER_DOMAIN_NAME: &str = "OS_USER_DOMAIN_NAME";
    pub const OS_PROJECT_NAME: &str = "OS_PROJECT_NAME";
    pub const OS_PROJECT_DOMAIN_NAME: &str = "OS_PROJECT_DOMAIN_NAME";
    pub const OS_APPLICATION_CREDENTIAL_ID: &str = "OS_APPLICATION_CREDENTIAL_ID";
    pub const OS_APPLICATION_CREDENTIAL_NAME: &str = "OS_APPLICATION_CREDENTIAL_NAME";
    pub const OS_APPLICATION_CREDENTIAL_SECRET: &str = "OS_APPLICATION_CREDENTIAL_SECRET";
    pub const OS_STORAGE_URL: &str = "OS_STORAGE_URL";
    pub const OS_AUTH_TOKEN: &str = "OS_AUTH_TOKEN";
}

/// A secret value (key, password, token). `Debug` prints `***`; there is no `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

/// Everything needed to reach a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendConfig {
    pub provider: Provider,
    pub credentials: Credentials,
    pub tls: TlsOptions,
    /// Parallel connections to the storage service (Stash's `maxConnections`); `None` or `0`
    /// means no limit beyond the engine's own parallelism.
    pub max_connections: Option<usize>,
}

/// TLS settings for HTTPS backends (object stores and REST).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM bundle (one or more certificates) trusted in addition to the system roots: the
    /// storage Secret's `CA_CERT_DATA`, the CLI's `--cacert` file.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Skip certificate verification (Stash `s3.insecureTLS`, restic `--insecure-tls`).
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field(
                "ca_cert_pem",
                &self
                    .ca_cert_pem
                    .as_ref()
                    .map(|pem| format!("<{} bytes of PEM>", pem.len())),
            )
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

impl TlsOptions {
    /// `CA_CERT_DATA` from the storage Secret (or environment).
    pub fn from_secret(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            ca_cert_pem: lookup(keys::CA_CERT_DATA)
                .filter(|pem| !pem.trim().is_empty())
                .map(String::into_bytes),
            insecure_skip_verify: false,
        }
    }
}

/// Where the repository lives: one block of Stash's `Repository.spec.backend`.
/// `prefix` is the path inside the bucket/container, without leading or trailing `/`.
#[derive(Clone, PartialEq, Eq)]
pub enum Provider {
    /// A directory (Stash: the `mountPath` of the `local` volume).
    Local {
        path: PathBuf,
    },
    /// Amazon S3 or an S3-compatible server.
    S3 {
        /// Server URL as Stash writes it (`s3.amazonaws.com`, `https://minio:9000`); no scheme
        /// means HTTPS.
        endpoint: String,
        bucket: String,
        prefix: String,
        /// `None`: `us-east-1`.
        region: Option<String>,
        /// Path-style URLs (`endpoint/bucket/key`), which `MinIO` and most S3-compatibles need.
        path_style: bool,
    },
    Gcs {
        bucket: String,
        prefix: String,
    },
    Azure {
        container: String,
        prefix: String,
    },
    Swift {
        container: String,
        prefix: String,
    },
    B2 {
        bucket: String,
        prefix: String,
    },
    /// A restic REST server; the URL's path is the repository. Credentials belong in
    /// [`Credentials::Rest`], not in the URL.
    Rest {
        url: String,
    },
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { path } => f.debug_struct("Local").field("path", path).finish(),
            Self::S3 {
                endpoint,
                bucket,
                prefix,
                region,
                path_style,
            } => f
                .debug_struct("S3")
                .field("endpoint", endpoint)
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("region", region)
                .field("path_style", path_style)
                .finish(),
            Self::Gcs { bucket, prefix } | Self::B2 { bucket, prefix } => f
                .debug_struct(self.kind())
                .field("bucket", bucket)
                .field("prefix", prefix)
                .finish(),
            Self::Azure { container, prefix } | Self::Swift { container, prefix } => f
                .debug_struct(self.kind())
                .field("container", container)
                .field("prefix", prefix)
                .finish(),
            Self::Rest { url } => f
                .debug_struct("Rest")
                .field("url", &redact_userinfo(url))
                .finish(),
        }
    }
}

/// The restic repository string of the provider (credentials in a REST URL shown as `***`).
impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |a: &str, b: &str| {
            if b.is_empty() {
                a.to_string()
            } else {
                format!("{a}/{b}")
            }
        };
        match self {
            Self::Local { path } => write!(f, "{}", path.display()),
            Self::S3 {
                endpoint,
                bucket,
                prefix,
                ..
            } => write!(f, "s3:{}", joined(&joined(endpoint, bucket), prefix)),
            Self::Gcs { bucket, prefix } => write!(f, "gs:{bucket}:/{prefix}"),
            Self::Azure { container, prefix } => write!(f, "azure:{container}:/{prefix}"),
            Self::Swift { container, prefix } => write!(f, "swift:{container}:/{prefix}"),
            Self::B2 { bucket, prefix } => write!(f, "b2:{bucket}:/{prefix}"),
            Self::Rest { url } => write!(f, "rest:{}", redact_userinfo(url)),
        }
    }
}

impl Provider {
    /// Stash's provider name (`local`, `s3`, `gcs`, `azure`, `swift`, `b2`, `rest`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local { .. } => "local",
            Self::S3 { .. } => "s3",
            Self::Gcs { .. } => "gcs",
            Self::Azure { .. } => "azure",
            Self::Swift { .. } => "swift",
            Self::B2 { .. } => "b2",
            Self::Rest { .. } => "rest",
        }
    }
}

/// Credentials from the storage Secret, one variant per provider. `Debug` never shows secrets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing given: anonymous access, or the provider's ambient credentials (IAM role,
    /// workload identity).
    #[default]
    None,
    S3(S3Credentials),
    Rest(RestCredentials),
    Gcs(GcsCredentials),
    Azure(AzureCredentials),
    B2(B2Credentials),
    Swift(Box<SwiftCredentials>),
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; all optional (IAM roles).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Credentials {
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
}

/// `REST_SERVER_USERNAME`, `REST_SERVER_PASSWORD` (or restic's `user:password@` in the URL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestCredentials {
    pub username: String,
    pub password: Secret,
}

/// `GOOGLE_PROJECT_ID`, `GOOGLE_SERVICE_ACCOUNT_JSON_KEY` (the key's JSON itself) or
/// `GOOGLE_APPLICATION_CREDENTIALS` (a path to it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcsCredentials {
    pub project_id: Option<String>,
    pub service_account_json: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
}

/// `AZURE_ACCOUNT_NAME` (required), `AZURE_ACCOUNT_KEY` or `AZURE_ACCOUNT_SAS`,
/// `AZURE_ENDPOINT_SUFFIX` (default `core.windows.net`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AzureCredentials {
    pub account_name: String,
    pub account_key: Option<Secret>,
    pub sas_token: Option<Secret>,
    pub endpoint_suffix: Option<String>,
}

/// `B2_ACCOUNT_ID`, `B2_ACCOUNT_KEY` (both required), `B2_BUCKET_ID`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct B2Credentials {
    pub account_id: Secret,
    pub account_key: Secret,
    pub bucket_id: Option<String>,
}

/// Every Swift authentication key Stash exports (all optional): keystone v1 (`ST_*`), v2/v3
/// (`OS_*`), application credentials, or a ready token (`OS_STORAGE_URL` + `OS_AUTH_TOKEN`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwiftCredentials {
    pub st_auth: Option<String>,
    pub st_user: Option<String>,
    pub st_key: Option<Secret>,
    pub auth_url: Option<String>,
    pub region_name: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tenant_id: Option<String>,
    pub tenant_name: Option<String>,
    pub user_domain_name: Option<String>,
    pub project_name: Option<String>,
    pub project_domain_name: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_name: Option<String>,
    pub application_credential_secret: Option<Secret>,
    pub storage_url: Option<String>,
    pub auth_token: Option<Secret>,
}

impl Credentials {
    /// Reads the provider's keys from the storage Secret (or environment); `lookup` answers a
    /// key by name. Fails only when a key the provider cannot work without is missing.
    pub fn from_secret(
        provider: &Provider,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BackendError> {
        let get = |key: &str| lookup(key).filter(|v| !v.is_empty());
        let secret = |key: &str| get(key).map(Secret::from);
        let required = |key: &'static str| {
            get(key).ok_or(BackendError::MissingSecretKey {
                provider: provider.kind(),
                key,
            })
        };
        Ok(match provider {
            Provider::Local { .. } => Self::None,
            Provider::S3 { .. } => {
                let s3 = S3Credentials {
                    access_key_id: secret(keys::AWS_ACCESS_KEY_ID),
                    secret_access_key: secret(keys::AWS_SECRET_ACCESS_KEY),
                    session_token: secret(keys::AWS_SESSION_TOKEN),
                };
                if s3 == S3Credentials::default() {
                    Self::None
                } else {
                    Self::S3(s3)
                }
            }
            Provider::Rest { .. } => match get(keys::REST_SERVER_USERNAME) {
                Some(username) => Self::Rest(RestCredentials {
                    username,
                    password: secret(keys::REST_SERVER_PASSWORD).unwrap_or_default(),
                }),
                None => Self::None,
            },
            Provider::Gcs { .. } => Self::Gcs(GcsCredentials {
                project_id: get(keys::GOOGLE_PROJECT_ID),
                service_account_json: secret(keys::GOOGLE_SERVICE_ACCOUNT_JSON_KEY),
                credentials_file: get(keys::GOOGLE_APPLICATION_CREDENTIALS).map(PathBuf::from),
            }),
            Provider::Azure { .. } => Self::Azure(AzureCredentials {
                account_name: required(keys::AZURE_ACCOUNT_NAME)?,
                account_key: secret(keys::AZURE_ACCOUNT_KEY),
                sas_token: secret(keys::AZURE_ACCOUNT_SAS),
                endpoint_suffix: get(keys::AZURE_ENDPOINT_SUFFIX),
            }),
            Provider::B2 { .. } => Self::B2(B2Credentials {
                account_id: required(keys::B2_ACCOUNT_ID)?.into(),
                account_key: required(keys::B2_ACCOUNT_KEY)?.into(),
                bucket_id: get(keys::B2_BUCKET_ID),
            }),
            Provider::Swift { .. } => Self::Swift(Box::new(SwiftCredentials {
                st_auth: get(keys::ST_AUTH),
                st_user: get(keys::ST_USER),
                st_key: secret(keys::ST_KEY),
                auth_url: get(keys::OS_AUTH_URL),
                region_name: get(keys::OS_REGION_NAME),
                username: get(keys::OS_USERNAME),
                password: secret(keys::OS_PASSWORD),
                tenant_id: get(keys::OS_TENANT_ID),
                tenant_name: get(keys::OS_TENANT_NAME),
                user_domain_name: get(keys::OS_USER_DOMAIN_NAME),
                project_name: get(keys::OS_PROJECT_NAME),
                project_domain_name: get(keys::OS_PROJECT_DOMAIN_NAME),
                application_credential_id: get(keys::OS_APPLICATION_CREDENTIAL_ID),
                application_credential_name: get(keys::OS_APPLICATION_CREDENTIAL_NAME),
                application_credential_secret: secret(keys::OS_APPLICATION_CREDENTIAL_SECRET),
                storage_url: get(keys::OS_STORAGE_URL),
                auth_token: secret(keys::OS_AUTH_TOKEN),
            })),
        })
    }

    fn kind(&self) -> Option<&'static str> {
        Some(match self {
            Self::None => return None,
            Self::S3(_) => "s3",
            Self::Rest(_) => "rest",
            Self::Gcs(_) => "gcs",
            Self::Azure(_) => "azure",
            Self::B2(_) => "b2",
            Self::Swift(_) => "swift",
        })
    }
}

impl BackendConfig {
    /// A provider with its credentials and `CA_CERT_DATA` read from the storage Secret;
    /// `lookup` answers a Secret key by name. TLS verification stays on and there is no
    /// connection limit: set `tls.insecure_skip_verify` (Stash `s3.insecureTLS`) and
    /// `max_connections` (Stash `maxConnections`) from the Repository afterwards.
    pub fn from_secret(
        provider: Provider,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, BackendError> {
        let credentials = Credentials::from_secret(&provider, &lookup)?;
        let config = Self {
            provider,
            credentials,
            tls: TlsOptions::from_secret(&lookup),
            max_connections: None,
        };
        config.validate()?;
        Ok(config)
    }

    /// `max_connections` with Stash's `0 = default` folded into `None`.
    pub(crate) fn connection_limit(&self) -> Option<usize> {
        self.max_connections.filter(|&n| n > 0)
    }

    /// Checks that the configuration can describe a reachable repository: required fields are
    /// set, credentials belong to the provider, the CA bundle parses.
    pub fn validate(&self) -> Result<(), BackendError> {
        let invalid = |field: &'static str, reason: &str| BackendError::InvalidConfig {
            provider: self.provider.kind(),
            field,
            reason: reason.to_string(),
        };
        let missing = |key: &'static str| BackendError::MissingSecretKey {
            provider: self.provider.kind(),
            key,
        };
        if let Some(kind) = self.credentials.kind()
            && kind != self.provider.kind()
        {
            return Err(invalid(
                "credentials",
                &format!("{kind} credentials cannot be used for this backend"),
            ));
        }
        match &self.provider {
            Provider::Local { path } => {
                if path.as_os_str().is_empty() {
                    return Err(invalid("path", "the local path is empty"));
                }
            }
            Provider::S3 {
                endpoint, bucket, ..
            } => {
                if endpoint.trim().is_empty() {
                    return Err(invalid(
                        "endpoint",
                        "empty; set spec.backend.s3.endpoint (e.g. s3.amazonaws.com or https://minio:9000)",
                    ));
                }
                if bucket.is_empty() {
                    return Err(invalid("bucket", "empty; set spec.backend.s3.bucket"));
                }
                if let Credentials::S3(s3) = &self.credentials {
                    match (&s3.access_key_id, &s3.secret_access_key) {
                        (Some(_), None) => return Err(missing(keys::AWS_SECRET_ACCESS_KEY)),
                        (None, Some(_)) => return Err(missing(keys::AWS_ACCESS_KEY_ID)),
                        _ => {}
                    }
                }
            }
            Provider::Gcs { bucket, .. } | Provider::B2 { bucket, .. } => {
                if bucket.is_empty() {
                    return Err(invalid("bucket", "the bucket name is empty"));
                }
                if matches!(self.provider, Provider::B2 { .. })
                    && !matches!(self.credentials, Credentials::B2(_))
                {
                    return Err(missing(keys::B2_ACCOUNT_ID));
                }
            }
            Provider::Azure { container, .. } => {
                if container.is_empty() {
                    return Err(invalid("container", "the container name is empty"));
                }
                match &self.credentials {
                    Credentials::Azure(azure) if !azure.account_name.is_empty() => {}
                    _ => return Err(missing(keys::AZURE_ACCOUNT_NAME)),
                }
            }
            Provider::Swift { container, .. } => {
                if container.is_empty() {
                    return Err(invalid("container", "the container name is empty"));
                }
                let Credentials::Swift(swift) = &self.credentials else {
                    return Err(missing(keys::OS_STORAGE_URL));
                };
                if !swift.authenticates() {
                    return Err(invalid(
                        "credentials",
                        "swift needs OS_STORAGE_URL and OS_AUTH_TOKEN (token authentication) in the storage Secret",
                    ));
                }
            }
            Provider::Rest { url } => self.validate_rest(url)?,
        }
        if let Some(pem) = &self.tls.ca_cert_pem {
            super::tls::parse_ca_bundle(pem)?;
        }
        Ok(())
    }
}

impl BackendConfig {
    fn validate_rest(&self, url: &str) -> Result<(), BackendError> {
        let invalid = |field: &'static str, reason: &str| BackendError::InvalidConfig {
            provider: "rest",
            field,
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                invalid(
                    "url",
                    "a rest repository must look like rest:http://host:8000/path",
                )
            })?;
        if parsed.password().is_some() && matches!(self.credentials, Credentials::Rest(_)) {
            return Err(invalid(
                "url",
                "credentials are both in the URL and in REST_SERVER_USERNAME/REST_SERVER_PASSWORD; keep one",
            ));
        }
        if self.tls.insecure_skip_verify {
            return Err(invalid(
                "insecureTLS",
                "skipping certificate verification is not available for REST servers; put the server's CA in the storage Secret key CA_CERT_DATA (CLI: --cacert) instead",
            ));
        }
        Ok(())
    }
}

impl SwiftCredentials {
    /// Whether any way to authenticate is given (a token, keystone v1, or keystone v2/v3).
    fn authenticates(&self) -> bool {
        (self.storage_url.is_some() && self.auth_token.is_some())
            || self.st_auth.is_some()
            || self.auth_url.is_some()
    }
}

/// Hides `user:password@` in URLs so messages never leak credentials.
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some(idx) = url.find("://") else {
        return url.to_string();
    };
    let (head, tail) = url.split_at(idx + 3);
    let authority_end = tail.find('/').unwrap_or(tail.len());
    match tail[..authority_end].rfind('@') {
        Some(at) => format!("{head}***@{}", &tail[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_keys(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn s3() -> Provider {
        Provider::S3 {
            endpoint: "https://minio.example:9000".into(),
            bucket: "stash".into(),
            prefix: "demo/app".into(),
            region: None,
            path_style: true,
        }
    }

    #[test]
    fn s3_config_from_a_stash_secret_reads_the_aws_keys_and_the_ca_and_redacts_them() {
        let lookup = secret_keys(&[
            ("AWS_ACCESS_KEY_ID", "AKIDSECRETID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-key"),
            ("CA_CERT_DATA", "-----BEGIN CERTIFICATE-----\n"),
            ("RESTIC_PASSWORD", "repo-password"),
        ]);
        // A PEM that holds no certificate is rejected, naming the key.
        let err = BackendConfig::from_secret(s3(), &lookup).unwrap_err();
        assert!(err.to_string().contains("CA_CERT_DATA"), "{err}");

        let lookup = secret_keys(&[
            ("AWS_ACCESS_KEY_ID", "AKIDSECRETID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-key"),
            ("AWS_SESSION_TOKEN", "session-secret"),
        ]);
        let config = BackendConfig::from_secret(s3(), &lookup).unwrap();
        let Credentials::S3(creds) = &config.credentials else {
            panic!("{config:?}")
        };
        assert_eq!(
            creds.secret_access_key.as_ref().unwrap().expose(),
            "very-secret-key"
        );
        let debug = format!("{config:?}");
        for secret in ["AKIDSECRETID", "very-secret-key", "session-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(
            config.provider.to_string(),
            "s3:https://minio.example:9000/stash/demo/app"
        );
    }

    #[test]
    fn s3_with_only_one_of_the_key_pair_names_the_missing_key() {
        let err = BackendConfig::from_secret(s3(), secret_keys(&[("AWS_ACCESS_KEY_ID", "id")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    }

    #[test]
    fn s3_without_keys_uses_ambient_credentials() {
        let config = BackendConfig::from_secret(s3(), secret_keys(&[])).unwrap();
        assert_eq!(config.credentials, Credentials::None);
        assert_eq!(config.tls, TlsOptions::default());
    }

    #[test]
    fn every_provider_is_expressible_from_stash_secret_keys() {
        let lookup = secret_keys(&[
            ("GOOGLE_PROJECT_ID", "proj"),
            (
                "GOOGLE_SERVICE_ACCOUNT_JSON_KEY",
                "{\"private_key\":\"gcs-secret\"}",
            ),
            ("AZURE_ACCOUNT_NAME", "acct"),
            ("AZURE_ACCOUNT_KEY", "azure-secret"),
            ("B2_ACCOUNT_ID", "b2-id-secret"),
            ("B2_ACCOUNT_KEY", "b2-key-secret"),
            ("REST_SERVER_USERNAME", "user"),
            ("REST_SERVER_PASSWORD", "rest-secret"),
            ("OS_AUTH_URL", "https://keystone:5000/v3"),
            ("OS_USERNAME", "swift-user"),
            ("OS_PASSWORD", "swift-secret"),
            ("OS_USER_DOMAIN_NAME", "Default"),
            ("OS_PROJECT_NAME", "backup"),
            ("OS_PROJECT_DOMAIN_NAME", "Default"),
            ("OS_REGION_NAME", "RegionOne"),
        ]);
        let providers = [
            Provider::Gcs {
                bucket: "b".into(),
                prefix: "p".into(),
            },
            Provider::Azure {
                container: "c".into(),
                prefix: "p".into(),
            },
            Provider::B2 {
                bucket: "b".into(),
                prefix: String::new(),
            },
            Provider::Rest {
                url: "https://rest.example:8000/repo/".into(),
            },
            Provider::Swift {
                container: "c".into(),
                prefix: "p".into(),
            },
            Provider::Local {
                path: "/srv/repo".into(),
            },
        ];
        for provider in providers {
            let kind = provider.kind();
            let config = BackendConfig::from_secret(provider, &lookup).unwrap();
            let debug = format!("{config:?}");
            assert!(!debug.contains("-secret"), "{kind}: {debug}");
            match (&config.provider, &config.credentials) {
                (Provider::Gcs { .. }, Credentials::Gcs(g)) => {
                    assert_eq!(g.project_id.as_deref(), Some("proj"));
                    assert!(g.service_account_json.is_some());
                }
                (Provider::Azure { .. }, Credentials::Azure(a)) => {
                    assert_eq!(a.account_name, "acct");
                }
                (Provider::B2 { .. }, Credentials::B2(b)) => {
                    assert_eq!(b.account_key.expose(), "b2-key-secret");
                }
                (Provider::Rest { .. }, Credentials::Rest(r)) => assert_eq!(r.username, "user"),
                (Provider::Swift { .. }, Credentials::Swift(s)) => {
                    assert_eq!(s.project_name.as_deref(), Some("backup"));
                    assert_eq!(s.password.as_ref().unwrap().expose(), "swift-secret");
                }
                (Provider::Local { .. }, Credentials::None) => {}
                other => panic!("{kind}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn hard_required_keys_are_named_in_the_error() {
        let b2 = Provider::B2 {
            bucket: "b".into(),
            prefix: String::new(),
        };
        let err = BackendConfig::from_secret(b2, secret_keys(&[("B2_ACCOUNT_ID", "id")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("B2_ACCOUNT_KEY"), "{err}");
        assert!(err.contains("storage Secret"), "{err}");
        let azure = Provider::Azure {
            container: "c".into(),
            prefix: String::new(),
        };
        let err = BackendConfig::from_secret(azure, secret_keys(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("AZURE_ACCOUNT_NAME"), "{err}");
    }

    #[test]
    fn credentials_of_another_provider_are_rejected() {
        let config = BackendConfig {
            provider: s3(),
            credentials: Credentials::Rest(RestCredentials::default()),
            tls: TlsOptions::default(),
            max_connections: Some(0),
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("rest credentials"), "{err}");
        assert_eq!(config.connection_limit(), None);
    }

    #[test]
    fn insecure_tls_is_refused_for_rest_with_the_ca_as_the_fix() {
        let config = BackendConfig {
            provider: Provider::Rest {
                url: "https://rest:8000/".into(),
            },
            credentials: Credentials::None,
            tls: TlsOptions {
                ca_cert_pem: None,
                insecure_skip_verify: true,
            },
            max_connections: None,
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("CA_CERT_DATA"), "{err}");
    }

    #[test]
    fn provider_display_is_the_restic_repository_string_without_credentials() {
        let cases = [
            (
                Provider::Gcs {
                    bucket: "b".into(),
                    prefix: "p/q".into(),
                },
                "gs:b:/p/q",
            ),
            (
                Provider::Azure {
                    container: "c".into(),
                    prefix: String::new(),
                },
                "azure:c:/",
            ),
            (
                Provider::Rest {
                    url: "http://u:pw@host:8000/repo/".into(),
                },
                "rest:http://***@host:8000/repo/",
            ),
            (
                Provider::S3 {
                    endpoint: "s3.amazonaws.com".into(),
                    bucket: "b".into(),
                    prefix: String::new(),
                    region: Some("eu-west-1".into()),
                    path_style: false,
                },
                "s3:s3.amazonaws.com/b",
            ),
        ];
        for (provider, expected) in cases {
            assert_eq!(provider.to_string(), expected);
            assert!(!format!("{provider:?}").contains("pw"));
        }
    }
}
