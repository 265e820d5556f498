//! From a `Repository` and its storage Secret, read through the API as Stash v0.18+ does, to an
//! [`Engine`] that reaches the restic repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use stash_api::common::Backend;
use stash_api::v1alpha1::Repository;
use stash_engine::{BackendConfig, BackendError, Engine, Password, Provider, RepositoryLocation};

/// The storage Secret key holding the repository password.
pub const RESTIC_PASSWORD: &str = "RESTIC_PASSWORD";

/// Why the agent cannot reach a Repository; every message names the object and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    #[error(
        "Repository {namespace}/{name} not found; create it or fix the repository name in the invoker"
    )]
    RepositoryNotFound { namespace: String, name: String },
    #[error("failed to read Repository {namespace}/{name}")]
    ReadRepository {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "Repository {namespace}/{name} has no spec.backend.storageSecretName; name the Secret holding RESTIC_PASSWORD and the backend credentials"
    )]
    NoStorageSecret { namespace: String, name: String },
    #[error(
        "storage Secret {namespace}/{name} not found; create it with RESTIC_PASSWORD and the backend credentials (Repository spec.backend.storageSecretName)"
    )]
    SecretNotFound { namespace: String, name: String },
    #[error("failed to read storage Secret {namespace}/{name}")]
    ReadSecret {
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error(
        "storage Secret {namespace}/{name} has no key {key}; add it (kubectl create secret generic {name} --from-literal={key}=...)"
    )]
    MissingSecretKey {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error(
        "Repository {namespace}/{name} has no backend in spec.backend; set one of local, s3, gcs, azure, swift, b2, rest"
    )]
    NoBackend { namespace: String, name: String },
    #[error("Repository {namespace}/{name}: {reason}")]
    InvalidBackend {
        namespace: String,
        name: String,
        reason: String,
    },
    #[error("Repository {namespace}/{name}: the storage Secret {secret} does not fit the backend")]
    Backend {
        namespace: String,
        name: String,
        secret: String,
        #[source]
        source: Box<BackendError>,
    },
}

/// A wrong password as a pod's user must read it: the password comes from the Repository's
/// storage Secret, not from the flag or file the engine's own hint names.
#[must_use]
pub fn wrong_password_message(location: &str) -> String {
    format!(
        "wrong password for repository `{location}`: {RESTIC_PASSWORD} of the Repository's storage Secret (spec.backend.storageSecretName) opens no key in keys/; set it to the password the repository was initialised with"
    )
}

/// How the agent opens the repository, from its flags.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--enable-cache`: where the restic cache lives (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// `--max-connections` (0 or `None`: the Repository's own setting).
    pub max_connections: Option<usize>,
}

/// The Repository `namespace/name`, read through the API.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Repository, RepositoryError> {
    let api: Api<Repository> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(repository)) => Ok(repository),
        Ok(None) => Err(RepositoryError::RepositoryNotFound {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }),
        Err(source) => Err(RepositoryError::ReadRepository {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// An [`Engine`] for `repository`, with the password and credentials of its storage Secret.
pub async fn connect(
    client: &Client,
    repository: &Repository,
    options: &ConnectOptions,
) -> Result<Engine, RepositoryError> {
    let (namespace, name) = identity(repository);
    let secret_name = repository
        .spec
        .backend
        .storage_secret_name
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RepositoryError::NoStorageSecret {
            namespace: namespace.clone(),
            name: name.clone(),
        })?;
    let data = secret_data(client, &namespace, &secret_name).await?;
    engine_for(repository, &secret_name, &data, options)
}

/// [`connect`] with the Secret's data already read: pure, so the mapping is tested without a cluster.
pub fn engine_for(
    repository: &Repository,
    secret_name: &str,
    data: &BTreeMap<String, String>,
    options: &ConnectOptions,
) -> Result<Engine, RepositoryError> {
    let (namespace, name) = identity(repository);
    let password = data
        .get(RESTIC_PASSWORD)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| RepositoryError::MissingSecretKey {
            namespace: namespace.clone(),
            name: secret_name.to_owned(),
            key: RESTIC_PASSWORD,
        })?;
    let provider = provider(&repository.spec.backend).map_err(|reason| match reason {
        None => RepositoryError::NoBackend {
            namespace: namespace.clone(),
            name: name.clone(),
        },
        Some(reason) => RepositoryError::InvalidBackend {
            namespace: namespace.clone(),
            name: name.clone(),
            reason,
        },
    })?;
    let backend_error = |source| RepositoryError::Backend {
        namespace: namespace.clone(),
        name: name.clone(),
        secret: secret_name.to_owned(),
        source: Box::new(source),
    };
    let mut config =
        BackendConfig::from_secret(provider, |key| data.get(key).cloned()).map_err(|source| {
            match source {
                BackendError::MissingSecretKey { key, .. } => RepositoryError::MissingSecretKey {
                    namespace: namespace.clone(),
                    name: secret_name.to_owned(),
                    key,
                },
                other => backend_error(other),
            }
        })?;
    config.tls.insecure_skip_verify = repository
        .spec
        .backend
        .s3
        .as_ref()
        .and_then(|s3| s3.insecure_tls)
        .unwrap_or(false);
    let from_repository = usize::try_from(repository.spec.backend.max_connections()).ok();
    config.max_connections = options
        .max_connections
        .filter(|&n| n > 0)
        .or(from_repository)
        .filter(|&n| n > 0);
    let location = RepositoryLocation::from_config(config).map_err(backend_error)?;
    Ok(Engine::new(location, Password::new(password.clone()))
        .with_cache_dir(options.cache_dir.clone())
        .without_cache(options.cache_dir.is_none()))
}

/// The engine's provider for Stash's `spec.backend`: `Err(None)` when no backend is set,
/// `Err(Some(reason))` when it cannot be used.
pub fn provider(backend: &Backend) -> Result<Provider, Option<String>> {
    let prefix = |p: &Option<String>| p.as_deref().unwrap_or("").trim_matches('/').to_owned();
    if let Some(local) = &backend.local {
        let mut path = PathBuf::from(&local.mount_path);
        if !path.is_absolute() {
            return Err(Some(format!(
                "spec.backend.local.mountPath `{}` must be an absolute path",
                local.mount_path
            )));
        }
        if let Some(sub) = local.sub_path.as_deref().filter(|s| !s.is_empty()) {
            path = path.join(Path::new(sub.trim_start_matches('/')));
        }
        return Ok(Provider::Local { path });
    }
    if let Some(s3) = &backend.s3 {
        return Ok(Provider::S3 {
            endpoint: s3.endpoint.clone(),
            bucket: s3.bucket.clone(),
            prefix: prefix(&s3.prefix),
            region: s3.region.clone().filter(|r| !r.is_empty()),
            // AWS serves virtual-hosted URLs; MinIO and the other S3-compatibles Stash users run
            // want path-style ones.
            path_style: !s3.endpoint.contains("amazonaws.com"),
        });
    }
    if let Some(gcs) = &backend.gcs {
        return Ok(Provider::Gcs {
            bucket: gcs.bucket.clone(),
            prefix: prefix(&gcs.prefix),
        });
    }
    if let Some(azure) = &backend.azure {
        return Ok(Provider::Azure {
            container: azure.container.clone(),
            prefix: prefix(&azure.prefix),
        });
    }
    if let Some(swift) = &backend.swift {
        return Ok(Provider::Swift {
            container: swift.container.clone(),
            prefix: prefix(&swift.prefix),
        });
    }
    if let Some(b2) = &backend.b2 {
        return Ok(Provider::B2 {
            bucket: b2.bucket.clone(),
            prefix: prefix(&b2.prefix),
        });
    }
    if let Some(rest) = &backend.rest {
        let url = rest.url.clone().filter(|u| !u.is_empty()).ok_or_else(|| {
            Some("spec.backend.rest.url is empty; set the REST server URL".into())
        })?;
        return Ok(Provider::Rest { url });
    }
    Err(None)
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, RepositoryError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match api.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(RepositoryError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        }
        Err(source) => {
            return Err(RepositoryError::ReadSecret {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                source: Box::new(source),
            });
        }
    };
    let mut data: BTreeMap<String, String> = secret.string_data.unwrap_or_default();
    for (key, value) in secret.data.unwrap_or_default() {
        data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
    }
    Ok(data)
}

fn identity(repository: &Repository) -> (String, String) {
    (
        repository
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        repository.metadata.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository(yaml: &str) -> Repository {
        serde_yaml::from_str(yaml).expect("a Repository")
    }

    fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const S3: &str = r"
apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata: {name: s3-repo, namespace: demo}
spec:
  backend:
    s3: {endpoint: 'http://127.0.0.1:9000', bucket: stash, prefix: /demo/deployment/}
    storageSecretName: s3-secret
";

    #[test]
    fn an_s3_repository_maps_endpoint_bucket_prefix_and_path_style() {
        let backend = repository(S3).spec.backend;
        let Ok(Provider::S3 {
            endpoint,
            bucket,
            prefix,
            path_style,
            ..
        }) = provider(&backend)
        else {
            panic!("an S3 provider");
        };
        assert_eq!(endpoint, "http://127.0.0.1:9000");
        assert_eq!(bucket, "stash");
        assert_eq!(prefix, "demo/deployment");
        assert!(path_style);
    }

    #[test]
    fn a_secret_without_restic_password_is_refused_naming_the_secret_and_the_key() {
        let Err(err) = engine_for(
            &repository(S3),
            "s3-secret",
            &secret(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "b")]),
            &ConnectOptions::default(),
        ) else {
            panic!("a Secret without RESTIC_PASSWORD is refused");
        };
        let message = err.to_string();
        assert!(message.contains("demo/s3-secret"), "{message}");
        assert!(message.contains("RESTIC_PASSWORD"), "{message}");
    }

    #[test]
    fn a_complete_secret_gives_an_engine() {
        let engine = engine_for(
            &repository(S3),
            "s3-secret",
            &secret(&[
                ("RESTIC_PASSWORD", "pw"),
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
            ]),
            &ConnectOptions::default(),
        );
        assert!(engine.is_ok(), "{:?}", engine.err());
    }

    #[test]
    fn a_local_repository_is_the_mount_path_joined_with_the_sub_path() {
        let backend = repository(
            r"
apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata: {name: local-repo, namespace: demo}
spec:
  backend:
    local: {mountPath: /safe/data, subPath: repo, hostPath: {path: /data/stash-test/repo}}
    storageSecretName: local-secret
",
        )
        .spec
        .backend;
        assert_eq!(
            provider(&backend).ok(),
            Some(Provider::Local {
                path: PathBuf::from("/safe/data/repo")
            })
        );
    }

    #[test]
    fn a_repository_without_a_backend_says_which_blocks_exist() {
        let backend = repository(
            r"
apiVersion: stash.appscode.com/v1alpha1
kind: Repository
metadata: {name: empty, namespace: demo}
spec:
  backend: {storageSecretName: s}
",
        )
        .spec
        .backend;
        assert_eq!(provider(&backend).err(), Some(None));
        let Err(err) = engine_for(
            &repository(
                "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata: {name: empty, namespace: demo}\nspec:\n  backend: {storageSecretName: s}\n",
            ),
            "s",
            &secret(&[("RESTIC_PASSWORD", "pw")]),
            &ConnectOptions::default(),
        ) else {
            panic!("a Repository without a backend is refused");
        };
        assert!(err.to_string().contains("local, s3, gcs"), "{err}");
    }
}
