//! Errors of building and using a storage backend: one variant per failed action, the cause kept
//! as the source, the message naming the field or Secret key and the fix.

use std::error::Error as StdError;
use std::path::PathBuf;

use crate::Retry;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error(
        "the {provider} backend needs `{key}`: add it to the storage Secret (Repository spec.backend.storageSecretName) or, for the CLI, to the environment"
    )]
    MissingSecretKey {
        provider: &'static str,
        key: &'static str,
    },

    #[error("invalid {provider} backend `{field}`: {reason}")]
    InvalidConfig {
        provider: &'static str,
        field: &'static str,
        reason: String,
    },

    #[error(
        "the CA certificate (storage Secret key CA_CERT_DATA, CLI --cacert) holds no usable PEM certificate: {reason}; give the PEM bundle of the CA that signed the server's certificate"
    )]
    InvalidCaCert { reason: String },

    #[error("the {provider} backend cannot {what}: {fix}")]
    Unsupported {
        provider: &'static str,
        what: &'static str,
        fix: &'static str,
    },

    #[error("failed to build the HTTP client for `{location}`")]
    BuildHttpClient {
        location: String,
        #[source]
        source: reqwest::Error,
    },

    #[error(
        "failed to set up the {provider} storage client for `{location}`; check the backend fields and the storage Secret"
    )]
    BuildOperator {
        provider: &'static str,
        location: String,
        #[source]
        source: Box<opendal::Error>,
    },

    #[error("failed to set up the {provider} backend for `{location}`")]
    BuildRusticBackend {
        provider: &'static str,
        location: String,
        #[source]
        source: Box<rustic_core::RusticError>,
    },

    #[error("failed to write the CA certificate to a temporary file for the REST backend")]
    WriteCaFile {
        #[source]
        source: std::io::Error,
    },

    #[error(
        "failed to {action} `{path}`: the TLS certificate of `{location}` is not trusted; put the CA that signed it in the storage Secret key CA_CERT_DATA (CLI: --cacert <file>), or skip verification with Repository spec.backend.s3.insecureTLS (CLI: --insecure-tls)"
    )]
    UntrustedCertificate {
        action: &'static str,
        path: String,
        location: String,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    #[error(
        "failed to {action} `{path}`: `{location}` denied access; check {keys} in the storage Secret"
    )]
    AccessDenied {
        action: &'static str,
        path: String,
        location: String,
        keys: &'static str,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },

    #[error(
        "failed to {action} `{path}`: the bucket of `{location}` does not exist; create it first (e.g. `aws s3 mb`), then retry"
    )]
    BucketMissing {
        action: &'static str,
        path: String,
        location: String,
        #[source]
        source: Box<opendal::Error>,
    },

    #[error("failed to {action} `{path}` at `{location}`")]
    Storage {
        action: &'static str,
        path: String,
        location: String,
        #[source]
        source: Box<opendal::Error>,
    },

    #[error("failed to {action} `{path}` at `{location}`")]
    Http {
        action: &'static str,
        path: String,
        location: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("failed to {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("unexpected lock listing from `{location}`")]
    LockListing {
        location: String,
        #[source]
        source: serde_json::Error,
    },
}

impl BackendError {
    /// Whether retrying the same operation later can succeed: timeouts, connection failures,
    /// 5xx and 429 answers are temporary (the backend already retried them five times with
    /// backoff); configuration, credentials, certificates and other 4xx answers are permanent.
    #[must_use]
    pub fn retry(&self) -> Retry {
        let temporary = match self {
            // opendal marks 5xx, 429 and connection failures temporary, and our retry loop
            // leaves that mark on an error it gave up on; "persistent" is how opendal's own
            // retry layer marks a temporary error it gave up on.
            Self::Storage { source, .. } => {
                source.is_temporary()
                    || source.is_persistent()
                    || source.kind() == opendal::ErrorKind::RateLimited
            }
            Self::Http { source, .. } => {
                source.is_timeout()
                    || source.is_connect()
                    || source
                        .status()
                        .map_or(source.is_request() || source.is_body(), |s| {
                            s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS
                        })
            }
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
            ),
            _ => false,
        };
        if temporary {
            Retry::Temporary
        } else {
            Retry::Permanent
        }
    }

    /// An opendal failure of `action` on `path`, classified into the variant whose message
    /// carries the fix.
    pub(crate) fn storage(
        action: &'static str,
        path: &str,
        location: &str,
        provider: &'static str,
        source: opendal::Error,
    ) -> Self {
        let (path, location) = (path.to_string(), location.to_string());
        if super::tls::is_untrusted_certificate(&source) {
            return Self::UntrustedCertificate {
                action,
                path,
                location,
                source: Box::new(source),
            };
        }
        match source.kind() {
            opendal::ErrorKind::PermissionDenied => Self::AccessDenied {
                action,
                path,
                location,
                keys: credential_keys(provider),
                source: Box::new(source),
            },
            opendal::ErrorKind::NotFound
                if source.message().contains("NoSuchBucket")
                    || source.message().contains("ContainerNotFound") =>
            {
                Self::BucketMissing {
                    action,
                    path,
                    location,
                    source: Box::new(source),
                }
            }
            _ => Self::Storage {
                action,
                path,
                location,
                source: Box::new(source),
            },
        }
    }

    /// A reqwest failure (REST lock files), classified like [`Self::storage`].
    pub(crate) fn http(
        action: &'static str,
        path: &str,
        location: &str,
        source: reqwest::Error,
    ) -> Self {
        let (path, location) = (path.to_string(), location.to_string());
        if super::tls::is_untrusted_certificate(&source) {
            return Self::UntrustedCertificate {
                action,
                path,
                location,
                source: Box::new(source),
            };
        }
        if matches!(
            source.status(),
            Some(reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN)
        ) {
            return Self::AccessDenied {
                action,
                path,
                location,
                keys: credential_keys("rest"),
                source: Box::new(source),
            };
        }
        Self::Http {
            action,
            path,
            location,
            source,
        }
    }

    /// The error handed to `rustic_core`: the backend error is its source (find it with
    /// `source()` / `downcast_ref::<BackendError>()`), its retry class its status.
    pub(crate) fn into_rustic(self) -> Box<rustic_core::RusticError> {
        let status = match self.retry() {
            Retry::Temporary => rustic_core::Status::Temporary,
            Retry::Permanent => rustic_core::Status::Permanent,
            Retry::Persistent => rustic_core::Status::Persistent,
        };
        rustic_core::RusticError::with_source(
            rustic_core::ErrorKind::Backend,
            "Storage backend request failed.",
            self,
        )
        .attach_status(status)
    }
}

/// The Secret keys that authenticate against `provider`.
fn credential_keys(provider: &str) -> &'static str {
    match provider {
        "s3" => "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        "gcs" => "GOOGLE_SERVICE_ACCOUNT_JSON_KEY (or GOOGLE_APPLICATION_CREDENTIALS)",
        "azure" => "AZURE_ACCOUNT_NAME / AZURE_ACCOUNT_KEY",
        "b2" => "B2_ACCOUNT_ID / B2_ACCOUNT_KEY",
        "swift" => "OS_STORAGE_URL / OS_AUTH_TOKEN",
        "rest" => "REST_SERVER_USERNAME / REST_SERVER_PASSWORD",
        _ => "the credentials",
    }
}

/// `err: source: source…` on one line, for the `String` errors of the lock store trait.
pub(crate) fn one_line(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(err: opendal::Error) -> BackendError {
        BackendError::storage("read", "config", "s3:https://host/b", "s3", err)
    }

    #[test]
    fn server_errors_and_throttling_are_temporary_the_rest_permanent() {
        let busy = opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary();
        assert_eq!(storage(busy).retry(), Retry::Temporary);
        let gave_up = opendal::Error::new(opendal::ErrorKind::Unexpected, "x").set_persistent();
        assert_eq!(storage(gave_up).retry(), Retry::Temporary);
        let throttled = opendal::Error::new(opendal::ErrorKind::RateLimited, "429");
        assert_eq!(storage(throttled).retry(), Retry::Temporary);
        let bad_request = opendal::Error::new(opendal::ErrorKind::Unexpected, "400");
        assert_eq!(storage(bad_request).retry(), Retry::Permanent);
        let missing = BackendError::MissingSecretKey {
            provider: "b2",
            key: "B2_ACCOUNT_KEY",
        };
        assert_eq!(missing.retry(), Retry::Permanent);
    }

    #[test]
    fn denied_access_names_the_credential_keys_and_is_permanent() {
        let err = storage(opendal::Error::new(
            opendal::ErrorKind::PermissionDenied,
            "AccessDenied",
        ));
        assert!(matches!(err, BackendError::AccessDenied { .. }), "{err:?}");
        assert!(err.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        assert_eq!(err.retry(), Retry::Permanent);
    }

    #[test]
    fn a_missing_bucket_says_to_create_it() {
        let err = storage(opendal::Error::new(
            opendal::ErrorKind::NotFound,
            "S3Error { code: \"NoSuchBucket\" }",
        ));
        assert!(err.to_string().contains("create it first"), "{err}");
    }

    #[test]
    fn the_rustic_error_keeps_the_backend_error_as_its_source() {
        let rustic =
            storage(opendal::Error::new(opendal::ErrorKind::Unexpected, "x").set_temporary())
                .into_rustic();
        let source = std::error::Error::source(&*rustic).expect("a source");
        let backend = source
            .downcast_ref::<BackendError>()
            .expect("a BackendError");
        assert_eq!(backend.retry(), Retry::Temporary);
        assert!(rustic.display_log().contains("failed to read `config`"));
    }
}
