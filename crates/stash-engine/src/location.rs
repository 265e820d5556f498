//! restic repository strings (`/path`, `local:/path`, `s3:http://host/bucket/prefix`, `rest:http://…`,
//! `gs:bucket:/prefix`, `azure:container:/prefix`, `b2:bucket:/prefix`, `swift:container:/prefix`)
//! and Stash backends, both turned into one typed [`BackendConfig`]. Credentials come from the
//! same names restic and Stash's storage Secrets use (`AWS_ACCESS_KEY_ID`, `B2_ACCOUNT_ID`,
//! `CA_CERT_DATA`, …).

use std::path::Path;

use tokio::runtime::Handle;

use crate::EngineError;
use crate::backend::{
    self, BackendConfig, BackendError, Credentials, Provider, RestCredentials, Secret, TlsOptions,
    keys, redact_userinfo,
};
use crate::lock::LockStore;

/// Where a repository lives plus the credentials to reach it.
#[derive(Clone)]
pub struct RepositoryLocation {
    /// The repository string as the user wrote it (shown in messages, never with secrets).
    display: String,
    config: BackendConfig,
}

impl std::fmt::Debug for RepositoryLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options carry secrets (keys, passwords); only the location is safe to print.
        f.debug_struct("RepositoryLocation")
            .field("repository", &self.display)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for RepositoryLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl RepositoryLocation {
    /// Parses a restic repository string, reading backend credentials from the process environment.
    pub fn from_env(repository: &str) -> Result<Self, EngineError> {
        Self::parse(repository, |key| std::env::var(key).ok())
    }

    /// Parses a restic repository string; `env` answers credential variables by name
    /// (the process environment for the CLI, the storage Secret's keys for the agent),
    /// including `CA_CERT_DATA` (a PEM bundle).
    pub fn parse(
        repository: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EngineError> {
        let invalid = |reason: String| EngineError::InvalidRepository {
            repository: redact_userinfo(repository),
            reason,
        };
        let repository = repository.trim();
        if repository.is_empty() {
            return Err(invalid(
                "empty; pass -r/--repo or set RESTIC_REPOSITORY".into(),
            ));
        }
        let config = parse_config(repository, &env).map_err(invalid)?;
        Ok(Self::build(redact_userinfo(repository), config))
    }

    /// A location from a typed configuration (the agent builds it from a Stash `Repository`
    /// and its storage Secret). A relative local path is made absolute; `user:password@` in a
    /// REST URL moves into [`Credentials::Rest`].
    pub fn from_config(mut config: BackendConfig) -> Result<Self, BackendError> {
        if let Provider::Local { path } = &mut config.provider {
            *path = std::path::absolute(&*path).map_err(|e| BackendError::InvalidConfig {
                provider: "local",
                field: "path",
                reason: format!("`{}` cannot be made absolute: {e}", path.display()),
            })?;
        }
        if let Provider::Rest { url } = &mut config.provider
            && config.credentials == Credentials::None
            && let Some((clean, creds)) = split_rest_userinfo(url)
        {
            *url = clean;
            config.credentials = Credentials::Rest(creds);
        }
        config.validate()?;
        Ok(Self::build(config.provider.to_string(), config))
    }

    /// The same location with other TLS settings (the CLI's `--cacert` / `--insecure-tls`).
    pub fn with_tls(self, tls: TlsOptions) -> Result<Self, BackendError> {
        let mut config = self.config;
        config.tls = tls;
        config.validate()?;
        Ok(Self::build(self.display, config))
    }

    /// The typed configuration behind this location.
    #[must_use]
    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    fn build(display: String, config: BackendConfig) -> Self {
        Self { display, config }
    }

    /// The `rustic_core` backends of this repository. Object stores run on `rt` (opendal's
    /// blocking operator): call the backends from `spawn_blocking`, not from async code.
    pub(crate) fn backends(
        &self,
        rt: &Handle,
    ) -> Result<rustic_core::RepositoryBackends, BackendError> {
        backend::repository_backends(&self.config, &self.display, rt)
    }

    /// Where the lock files of this repository go, through the same backend settings.
    pub(crate) fn lock_store(&self, rt: &Handle) -> Result<Box<dyn LockStore>, BackendError> {
        backend::locks::store(&self.config, &self.display, rt)
    }

    /// The directory of a local repository.
    pub(crate) fn local_path(&self) -> Option<&Path> {
        match &self.config.provider {
            Provider::Local { path } => Some(path),
            _ => None,
        }
    }
}

/// The typed configuration of a restic repository string; `Err` is the reason it is invalid.
fn parse_config(
    repository: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<BackendConfig, String> {
    let (scheme, rest) = split_scheme(repository);
    let provider = match scheme {
        None | Some("local") => {
            if rest.is_empty() {
                return Err("the local path is empty".into());
            }
            let path = std::path::absolute(rest)
                .map_err(|_| "the local path cannot be made absolute".to_string())?;
            Provider::Local { path }
        }
        Some("rest") => {
            if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                return Err("a rest repository must look like rest:http://host:8000/path".into());
            }
            let mut url = rest.to_string();
            if !url.ends_with('/') {
                url.push('/');
            }
            Provider::Rest { url }
        }
        Some("s3") => {
            let s3 = parse_s3(rest).ok_or("an s3 repository must look like s3:http://host:9000/bucket/prefix or s3:s3.amazonaws.com/bucket")?;
            Provider::S3 {
                endpoint: s3.endpoint,
                bucket: s3.bucket,
                prefix: s3.prefix,
                region: env(keys::AWS_DEFAULT_REGION).or_else(|| env(keys::AWS_REGION)),
                // Stash users point at MinIO and other S3-compatibles, which want path-style
                // URLs; AWS itself accepts both.
                path_style: true,
            }
        }
        Some(scheme @ ("gs" | "azure" | "b2" | "swift")) => {
            let (name, prefix) = parse_bucket_prefix(rest).ok_or(match scheme {
                "gs" => "a gcs repository must look like gs:bucket:/prefix",
                "azure" => "an azure repository must look like azure:container:/prefix",
                "b2" => "a b2 repository must look like b2:bucket:/prefix",
                _ => "a swift repository must look like swift:container:/prefix",
            })?;
            match scheme {
                "gs" => Provider::Gcs {
                    bucket: name,
                    prefix,
                },
                "azure" => Provider::Azure {
                    container: name,
                    prefix,
                },
                "b2" => Provider::B2 {
                    bucket: name,
                    prefix,
                },
                _ => Provider::Swift {
                    container: name,
                    prefix,
                },
            }
        }
        Some(other) => {
            return Err(format!(
                "unknown backend `{other}:`; use a path, local:, s3:, rest:, gs:, azure:, b2: or swift:"
            ));
        }
    };
    let mut config = BackendConfig {
        credentials: Credentials::from_secret(&provider, env).map_err(|e| e.to_string())?,
        tls: TlsOptions::from_secret(env),
        max_connections: None,
        provider,
    };
    // restic's `user:password@` in the URL wins over Stash's REST_SERVER_* keys.
    if let Provider::Rest { url } = &mut config.provider
        && let Some((clean, creds)) = split_rest_userinfo(url)
    {
        *url = clean;
        config.credentials = Credentials::Rest(creds);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

/// Splits `user:password@` off a URL.
fn split_rest_userinfo(url: &str) -> Option<(String, RestCredentials)> {
    let mut parsed = reqwest::Url::parse(url).ok()?;
    if parsed.username().is_empty() {
        return None;
    }
    let creds = RestCredentials {
        username: parsed.username().to_string(),
        password: Secret::new(parsed.password().unwrap_or_default()),
    };
    parsed.set_username("").ok()?;
    parsed.set_password(None).ok()?;
    Some((parsed.to_string(), creds))
}

/// Splits `scheme:rest`; a bare path (or a Windows-free absolute path) has no scheme.
fn split_scheme(repository: &str) -> (Option<&str>, &str) {
    if repository.starts_with('/') || repository.starts_with('.') {
        return (None, repository);
    }
    match repository.split_once(':') {
        Some((scheme, rest)) if scheme.chars().all(|c| c.is_ascii_alphanumeric()) => {
            (Some(scheme), rest)
        }
        _ => (None, repository),
    }
}

struct S3Location {
    endpoint: String,
    bucket: String,
    prefix: String,
}

fn parse_s3(rest: &str) -> Option<S3Location> {
    let (scheme, without_scheme) = if let Some(r) = rest.strip_prefix("https://") {
        ("https://", r)
    } else if let Some(r) = rest.strip_prefix("http://") {
        ("http://", r)
    } else {
        // restic: `s3:s3.amazonaws.com/bucket` means HTTPS.
        ("https://", rest)
    };
    let mut parts = without_scheme.splitn(3, '/');
    let host = parts.next().filter(|h| !h.is_empty())?;
    let bucket = parts.next().filter(|b| !b.is_empty())?;
    let prefix = parts.next().unwrap_or("").trim_matches('/');
    Some(S3Location {
        endpoint: format!("{scheme}{host}"),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

fn parse_bucket_prefix(rest: &str) -> Option<(String, String)> {
    let (bucket, prefix) = rest.split_once(':').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn bare_and_local_paths_become_the_local_backend() {
        for repo in ["/srv/repo", "local:/srv/repo"] {
            let loc = RepositoryLocation::parse(repo, no_env).unwrap();
            assert_eq!(loc.local_path(), Some(std::path::Path::new("/srv/repo")));
            assert_eq!(loc.to_string(), repo);
        }
    }

    #[test]
    fn s3_repository_string_maps_endpoint_bucket_prefix_and_credentials() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("id".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let loc = RepositoryLocation::parse("s3:http://127.0.0.1:9000/bucket/demo/deployment", env)
            .unwrap();
        let Provider::S3 {
            endpoint,
            bucket,
            prefix,
            region,
            path_style,
        } = &loc.config().provider
        else {
            panic!("an S3 provider: {:?}", loc.config().provider);
        };
        assert_eq!(backend::s3_endpoint(endpoint), "http://127.0.0.1:9000");
        assert_eq!(
            (bucket.as_str(), prefix.as_str()),
            ("bucket", "demo/deployment")
        );
        assert_eq!(region.as_deref().unwrap_or("us-east-1"), "us-east-1");
        assert!(
            path_style,
            "MinIO and other S3-compatibles want path-style URLs"
        );
        let Credentials::S3(keys) = &loc.config().credentials else {
            panic!("S3 credentials")
        };
        assert_eq!(keys.access_key_id.as_ref().map(Secret::expose), Some("id"));
        assert_eq!(
            keys.secret_access_key.as_ref().map(Secret::expose),
            Some("secret")
        );
    }

    #[test]
    fn s3_without_scheme_means_https() {
        let loc = RepositoryLocation::parse("s3:s3.amazonaws.com/stash-demo", no_env).unwrap();
        let Provider::S3 {
            endpoint, prefix, ..
        } = &loc.config().provider
        else {
            panic!("an S3 provider")
        };
        assert_eq!(backend::s3_endpoint(endpoint), "https://s3.amazonaws.com");
        assert_eq!(prefix, "");
    }

    #[test]
    fn rest_credentials_from_stash_secret_keys_go_into_the_url_but_not_into_messages() {
        let env = |k: &str| match k {
            "REST_SERVER_USERNAME" => Some("u".to_string()),
            "REST_SERVER_PASSWORD" => Some("p".to_string()),
            _ => None,
        };
        let loc = RepositoryLocation::parse("rest:http://127.0.0.1:8000/repo", env).unwrap();
        let Provider::Rest { url } = &loc.config().provider else {
            panic!("a REST provider")
        };
        assert_eq!(
            backend::rest_url_with_credentials(loc.config(), url).unwrap(),
            "http://u:p@127.0.0.1:8000/repo/"
        );
        let loc = RepositoryLocation::parse("rest:http://a:secret@host/repo", no_env).unwrap();
        assert_eq!(loc.to_string(), "rest:http://***@host/repo");
    }

    #[test]
    fn unknown_scheme_names_the_supported_ones() {
        let err = RepositoryLocation::parse("ftp:host/x", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown backend `ftp:`"), "{err}");
        assert!(err.contains("s3:"), "{err}");
    }

    #[test]
    fn malformed_s3_string_is_rejected_with_the_expected_shape() {
        let err = RepositoryLocation::parse("s3:http://host:9000", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("s3:http://host:9000/bucket/prefix"), "{err}");
    }

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_string())
        }
    }

    const SECRETS: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "aws-id-secret"),
        ("AWS_SECRET_ACCESS_KEY", "aws-key-secret"),
        ("AWS_DEFAULT_REGION", "eu-central-1"),
        ("GOOGLE_PROJECT_ID", "proj"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/gcs.json"),
        ("AZURE_ACCOUNT_NAME", "acct"),
        ("AZURE_ACCOUNT_KEY", "azure-key-secret"),
        ("B2_ACCOUNT_ID", "b2-id-secret"),
        ("B2_ACCOUNT_KEY", "b2-key-secret"),
        ("OS_STORAGE_URL", "https://swift.example/v1/AUTH_x"),
        ("OS_AUTH_TOKEN", "swift-token-secret"),
        ("REST_SERVER_USERNAME", "u"),
        ("REST_SERVER_PASSWORD", "rest-pass-secret"),
    ];

    #[test]
    fn every_scheme_parses_into_the_typed_config_without_showing_secrets() {
        let env = env_of(SECRETS);
        let cases = [
            (
                "/srv/repo",
                Provider::Local {
                    path: "/srv/repo".into(),
                },
            ),
            (
                "s3:https://minio:9000/bucket/a/b",
                Provider::S3 {
                    endpoint: "https://minio:9000".into(),
                    bucket: "bucket".into(),
                    prefix: "a/b".into(),
                    region: Some("eu-central-1".into()),
                    path_style: true,
                },
            ),
            (
                "rest:https://rest:8000/repo",
                Provider::Rest {
                    url: "https://rest:8000/repo/".into(),
                },
            ),
            (
                "gs:bucket:/a/b",
                Provider::Gcs {
                    bucket: "bucket".into(),
                    prefix: "a/b".into(),
                },
            ),
            (
                "azure:container:/a",
                Provider::Azure {
                    container: "container".into(),
                    prefix: "a".into(),
                },
            ),
            (
                "b2:bucket:/a",
                Provider::B2 {
                    bucket: "bucket".into(),
                    prefix: "a".into(),
                },
            ),
            (
                "swift:container:/a",
                Provider::Swift {
                    container: "container".into(),
                    prefix: "a".into(),
                },
            ),
        ];
        for (repository, provider) in cases {
            let loc = RepositoryLocation::parse(repository, &env).unwrap();
            assert_eq!(loc.config().provider, provider, "{repository}");
            assert_eq!(
                loc.config().credentials.clone() == Credentials::None,
                repository.starts_with('/')
            );
            for shown in [
                format!("{loc}"),
                format!("{loc:?}"),
                format!("{:?}", loc.config()),
            ] {
                assert!(!shown.contains("-secret"), "{repository}: {shown}");
            }
            // The same type comes out of `from_config`, the agent's path.
            let again = RepositoryLocation::from_config(loc.config().clone()).unwrap();
            assert_eq!(again.config(), loc.config());
        }
    }

    #[test]
    fn the_credentials_of_each_scheme_come_from_the_stash_secret_keys() {
        let env = env_of(SECRETS);
        let creds = |repo: &str| {
            RepositoryLocation::parse(repo, &env)
                .unwrap()
                .config()
                .credentials
                .clone()
        };
        let Credentials::S3(s3) = creds("s3:https://minio:9000/bucket") else {
            panic!()
        };
        assert_eq!(s3.secret_access_key.unwrap().expose(), "aws-key-secret");
        let Credentials::Gcs(gcs) = creds("gs:b:/") else {
            panic!()
        };
        assert_eq!(
            gcs.credentials_file.unwrap(),
            std::path::Path::new("/var/run/gcs.json")
        );
        let Credentials::Azure(azure) = creds("azure:c:/") else {
            panic!()
        };
        assert_eq!(azure.account_name, "acct");
        let Credentials::B2(b2) = creds("b2:b:/") else {
            panic!()
        };
        assert_eq!(b2.account_id.expose(), "b2-id-secret");
        let Credentials::Swift(swift) = creds("swift:c:/") else {
            panic!()
        };
        assert_eq!(swift.auth_token.unwrap().expose(), "swift-token-secret");
        let Credentials::Rest(rest) = creds("rest:http://host/") else {
            panic!()
        };
        assert_eq!(
            (rest.username.as_str(), rest.password.expose()),
            ("u", "rest-pass-secret")
        );
    }

    #[test]
    fn restic_userinfo_in_a_rest_url_becomes_credentials_and_is_never_shown() {
        let loc =
            RepositoryLocation::parse("rest:https://al:pw-secret@host:8000/r", no_env).unwrap();
        assert_eq!(
            loc.config().provider,
            Provider::Rest {
                url: "https://host:8000/r/".into()
            }
        );
        let Credentials::Rest(rest) = &loc.config().credentials else {
            panic!("{loc:?}")
        };
        assert_eq!(
            (rest.username.as_str(), rest.password.expose()),
            ("al", "pw-secret")
        );
        assert_eq!(loc.to_string(), "rest:https://***@host:8000/r");
        // A Stash Repository with credentials in `rest.url` gets the same treatment.
        let config = BackendConfig {
            provider: Provider::Rest {
                url: "https://al:pw-secret@host:8000/r/".into(),
            },
            credentials: Credentials::None,
            tls: TlsOptions::default(),
            max_connections: None,
        };
        let loc = RepositoryLocation::from_config(config).unwrap();
        assert_eq!(loc.to_string(), "rest:https://host:8000/r/");
        assert!(matches!(loc.config().credentials, Credentials::Rest(_)));
    }

    #[test]
    fn required_keys_missing_from_the_environment_are_named() {
        for (repo, key) in [
            ("azure:c:/p", "AZURE_ACCOUNT_NAME"),
            ("b2:b:/p", "B2_ACCOUNT_ID"),
            ("swift:c:/p", "OS_STORAGE_URL"),
        ] {
            let err = RepositoryLocation::parse(repo, no_env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{repo}: {err}");
        }
    }

    #[test]
    fn the_ca_bundle_comes_from_ca_cert_data_and_tls_can_be_replaced() {
        let err = RepositoryLocation::parse(
            "s3:https://minio:9000/b",
            env_of(&[("CA_CERT_DATA", "garbage")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CA_CERT_DATA"), "{err}");
        let loc = RepositoryLocation::parse("s3:https://minio:9000/b", no_env)
            .unwrap()
            .with_tls(TlsOptions {
                ca_cert_pem: None,
                insecure_skip_verify: true,
            })
            .unwrap();
        assert!(loc.config().tls.insecure_skip_verify);
        assert_eq!(loc.to_string(), "s3:https://minio:9000/b");
        let rest = RepositoryLocation::parse("rest:https://h/", no_env).unwrap();
        assert!(rest.with_tls(loc.config().tls.clone()).is_err());
    }

    #[test]
    fn stash_max_connections_reaches_the_backend_options() {
        let mut config = RepositoryLocation::parse("gs:b:/p", no_env)
            .unwrap()
            .config()
            .clone();
        config.max_connections = Some(8);
        let loc = RepositoryLocation::from_config(config).unwrap();
        assert_eq!(loc.config().max_connections, Some(8));
        assert_eq!(loc.to_string(), "gs:b:/p");
    }

    #[test]
    fn backends_are_built_for_local_and_rest_without_a_network() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let loc = RepositoryLocation::parse(&dir.path().display().to_string(), no_env).unwrap();
        assert_eq!(loc.local_path(), Some(dir.path()));
        let be = loc.backends(rt.handle()).unwrap().repository();
        assert!(be.location().contains(&*dir.path().display().to_string()));
        let rest =
            RepositoryLocation::parse("rest:http://u:pw-secret@127.0.0.1:1/r", no_env).unwrap();
        let be = rest.backends(rt.handle()).unwrap().repository();
        assert!(!be.location().contains("pw-secret"), "{}", be.location());
        // rustic_backend's REST backend gets the CA bundle through a temporary file.
        let mut params = rcgen::CertificateParams::new(vec!["ca".to_string()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .pem();
        let tls = TlsOptions {
            ca_cert_pem: Some(ca.into_bytes()),
            insecure_skip_verify: false,
        };
        rest.with_tls(tls).unwrap().backends(rt.handle()).unwrap();
    }
}
