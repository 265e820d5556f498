//! restic repository strings (`/path`, `local:/path`, `s3:http://host/bucket/prefix`, `rest:http://…`,
//! `gs:bucket:/prefix`, `azure:container:/prefix`, `b2:bucket:/prefix`, `swift:container:/prefix`)
//! mapped onto `rustic_backend`'s options. Credentials come from the same environment variable names
//! restic and Stash's storage Secrets use (`AWS_ACCESS_KEY_ID`, `B2_ACCOUNT_ID`, …).

use std::collections::BTreeMap;

use rustic_backend::BackendOptions;

use crate::EngineError;

/// Where a repository lives plus the credentials to reach it.
#[derive(Clone)]
pub struct RepositoryLocation {
    /// The repository string as the user wrote it (shown in messages, never with secrets).
    display: String,
    pub(crate) backend: BackendOptions,
    /// Set for the local backend: lets lock handling and `init` work on the directory itself.
    pub(crate) local_path: Option<std::path::PathBuf>,
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
    /// (the process environment for the CLI, the storage Secret's keys for the agent).
    pub fn parse(
        repository: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, EngineError> {
        let invalid = |reason: &str| EngineError::InvalidRepository {
            repository: redact_userinfo(repository),
            reason: reason.to_string(),
        };
        let repository = repository.trim();
        if repository.is_empty() {
            return Err(invalid("empty; pass -r/--repo or set RESTIC_REPOSITORY"));
        }
        let (scheme, rest) = split_scheme(repository);
        let mut options = BTreeMap::new();
        let mut local_path = None;
        let rustic_repo = match scheme {
            None | Some("local") => {
                if rest.is_empty() {
                    return Err(invalid("the local path is empty"));
                }
                let path = std::path::absolute(rest)
                    .map_err(|_| invalid("the local path cannot be made absolute"))?;
                local_path = Some(path.clone());
                format!("local:{}", path.display())
            }
            Some("rest") => {
                if !(rest.starts_with("http://") || rest.starts_with("https://")) {
                    return Err(invalid(
                        "a rest repository must look like rest:http://host:8000/path",
                    ));
                }
                let mut url = rest.to_string();
                if !url.ends_with('/') {
                    url.push('/');
                }
                format!("rest:{}", with_rest_userinfo(&url, &env))
            }
            Some(scheme @ ("s3" | "gs" | "azure" | "b2" | "swift")) => {
                object_store(scheme, rest, &env, &mut options).map_err(invalid)?
            }
            Some(other) => {
                return Err(invalid(&format!(
                    "unknown backend `{other}:`; use a path, local:, s3:, rest:, gs:, azure:, b2: or swift:"
                )));
            }
        };
        Ok(Self {
            display: redact_userinfo(repository),
            backend: BackendOptions::default()
                .repository(rustic_repo)
                .options(options),
            local_path,
        })
    }
}

/// Options of `rustic_backend`'s opendal services for the object-store schemes; `Err` is the
/// reason the repository string is invalid.
fn object_store(
    scheme: &str,
    rest: &str,
    env: &impl Fn(&str) -> Option<String>,
    options: &mut BTreeMap<String, String>,
) -> Result<String, &'static str> {
    Ok(match scheme {
        "s3" => {
            let s3 = parse_s3(rest).ok_or("an s3 repository must look like s3:http://host:9000/bucket/prefix or s3:s3.amazonaws.com/bucket")?;
            options.insert("endpoint".into(), s3.endpoint);
            options.insert("bucket".into(), s3.bucket);
            options.insert("root".into(), format!("/{}", s3.prefix));
            let region = env("AWS_DEFAULT_REGION")
                .or_else(|| env("AWS_REGION"))
                .unwrap_or_else(|| "us-east-1".into());
            options.insert("region".into(), region);
            if let Some(key) = env("AWS_ACCESS_KEY_ID") {
                options.insert("access_key_id".into(), key);
            }
            if let Some(secret) = env("AWS_SECRET_ACCESS_KEY") {
                options.insert("secret_access_key".into(), secret);
            }
            if let Some(token) = env("AWS_SESSION_TOKEN") {
                options.insert("session_token".into(), token);
            }
            // Stash users point at MinIO and other S3-compatibles, which want path-style URLs;
            // AWS itself accepts both.
            options.insert("enable_virtual_host_style".into(), "false".into());
            "opendal:s3".to_string()
        }
        "gs" => {
            let (bucket, prefix) = parse_bucket_prefix(rest)
                .ok_or("a gcs repository must look like gs:bucket:/prefix")?;
            options.insert("bucket".into(), bucket);
            options.insert("root".into(), format!("/{prefix}"));
            if let Some(path) = env("GOOGLE_APPLICATION_CREDENTIALS") {
                options.insert("credential_path".into(), path);
            }
            "opendal:gcs".to_string()
        }
        "azure" => {
            let (container, prefix) = parse_bucket_prefix(rest)
                .ok_or("an azure repository must look like azure:container:/prefix")?;
            let account = env("AZURE_ACCOUNT_NAME").ok_or("AZURE_ACCOUNT_NAME is not set")?;
            options.insert("container".into(), container);
            options.insert("root".into(), format!("/{prefix}"));
            options.insert(
                "endpoint".into(),
                format!("https://{account}.blob.core.windows.net"),
            );
            options.insert("account_name".into(), account);
            if let Some(key) = env("AZURE_ACCOUNT_KEY") {
                options.insert("account_key".into(), key);
            }
            "opendal:azblob".to_string()
        }
        "b2" => {
            let (bucket, prefix) = parse_bucket_prefix(rest)
                .ok_or("a b2 repository must look like b2:bucket:/prefix")?;
            let id = env("B2_ACCOUNT_ID").ok_or("B2_ACCOUNT_ID is not set")?;
            let key = env("B2_ACCOUNT_KEY").ok_or("B2_ACCOUNT_KEY is not set")?;
            options.insert("bucket".into(), bucket);
            options.insert("root".into(), format!("/{prefix}"));
            options.insert("application_key_id".into(), id);
            options.insert("application_key".into(), key);
            if let Some(bucket_id) = env("B2_BUCKET_ID") {
                options.insert("bucket_id".into(), bucket_id);
            }
            "opendal:b2".to_string()
        }
        "swift" => {
            let (container, prefix) = parse_bucket_prefix(rest)
                .ok_or("a swift repository must look like swift:container:/prefix")?;
            let storage_url = env("OS_STORAGE_URL")
                .ok_or("swift needs OS_STORAGE_URL and OS_AUTH_TOKEN (token authentication)")?;
            options.insert("endpoint".into(), storage_url);
            options.insert("container".into(), container);
            options.insert("root".into(), format!("/{prefix}"));
            if let Some(token) = env("OS_AUTH_TOKEN") {
                options.insert("token".into(), token);
            }
            "opendal:swift".to_string()
        }
        _ => unreachable!("object_store is only called for object-store schemes"),
    })
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

/// Stash keeps REST credentials in the Secret, restic in the URL; accept both.
fn with_rest_userinfo(url: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let (Some(user), Some(pass)) = (env("REST_SERVER_USERNAME"), env("REST_SERVER_PASSWORD"))
    else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    if rest
        .split('/')
        .next()
        .is_some_and(|authority| authority.contains('@'))
    {
        return url.to_string();
    }
    format!("{scheme}://{user}:{pass}@{rest}")
}

/// Hides `user:password@` in URLs so messages never leak credentials.
fn redact_userinfo(repository: &str) -> String {
    let Some(idx) = repository.find("://") else {
        return repository.to_string();
    };
    let (head, tail) = repository.split_at(idx + 3);
    let authority_end = tail.find('/').unwrap_or(tail.len());
    match tail[..authority_end].rfind('@') {
        Some(at) => format!("{head}***@{}", &tail[at + 1..]),
        None => repository.to_string(),
    }
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
            assert_eq!(loc.backend.repository.as_deref(), Some("local:/srv/repo"));
            assert_eq!(
                loc.local_path.as_deref(),
                Some(std::path::Path::new("/srv/repo"))
            );
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
        let o = &loc.backend.options;
        assert_eq!(o["endpoint"], "http://127.0.0.1:9000");
        assert_eq!(o["bucket"], "bucket");
        assert_eq!(o["root"], "/demo/deployment");
        assert_eq!(o["access_key_id"], "id");
        assert_eq!(o["region"], "us-east-1");
    }

    #[test]
    fn s3_without_scheme_means_https() {
        let loc = RepositoryLocation::parse("s3:s3.amazonaws.com/stash-demo", no_env).unwrap();
        assert_eq!(loc.backend.options["endpoint"], "https://s3.amazonaws.com");
        assert_eq!(loc.backend.options["root"], "/");
    }

    #[test]
    fn rest_credentials_from_stash_secret_keys_go_into_the_url_but_not_into_messages() {
        let env = |k: &str| match k {
            "REST_SERVER_USERNAME" => Some("u".to_string()),
            "REST_SERVER_PASSWORD" => Some("p".to_string()),
            _ => None,
        };
        let loc = RepositoryLocation::parse("rest:http://127.0.0.1:8000/repo", env).unwrap();
        assert_eq!(
            loc.backend.repository.as_deref(),
            Some("rest:http://u:p@127.0.0.1:8000/repo/")
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
}
