//! rustic's `ReadBackend` + `WriteBackend` over an opendal operator, for every object store
//! (s3, gcs, azblob, b2, swift). Unlike `rustic_backend::OpenDALBackend` it owns its HTTP
//! client (custom CA, insecure TLS, pool size) and runs on the caller's tokio runtime.
//!
//! Layout is restic's: `config`, `data/<2 hex>/<id>`, `index/<id>`, `snapshots/<id>`,
//! `keys/<id>`, `locks/<id>` under the prefix. Object stores have no directories, so `create`
//! writes nothing (restic writes no directory markers on S3 either).

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use opendal::layers::{ConcurrentLimitLayer, LoggingLayer};
use opendal::options::{ListOptions, ReadOptions};
use opendal::{HttpTransporter, Operator, services};
use rustic_core::{BytesList, FileType, Id, ReadBackend, RusticResult, WriteBackend};
use tokio::runtime::Handle;

use super::config::{BackendConfig, Credentials, Provider, keys};
use super::{BackendError, tls};

/// Retries of a temporary failure, as restic and `rustic_backend` do.
const MAX_RETRIES: u32 = 5;
/// First wait before a retry; doubled each time (plus up to 50% jitter), capped at a minute.
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
const MAX_RETRY_DELAY: Duration = Duration::from_mins(1);

/// A blocking opendal operator for one repository. Its calls block on the runtime handle it was
/// built with: call them from `spawn_blocking` or plain threads, never from async code.
#[derive(Clone, Debug)]
pub(crate) struct OpendalBackend {
    operator: opendal::blocking::Operator,
    /// The repository string, for messages.
    location: String,
    provider: &'static str,
    /// The prefix inside the bucket (no leading or trailing `/`), for `warmup_path`.
    prefix: String,
}

impl OpendalBackend {
    pub(crate) fn new(
        config: &BackendConfig,
        location: &str,
        rt: &Handle,
    ) -> Result<Self, BackendError> {
        let provider = config.provider.kind();
        let prefix = match &config.provider {
            Provider::S3 { prefix, .. }
            | Provider::Gcs { prefix, .. }
            | Provider::Azure { prefix, .. }
            | Provider::Swift { prefix, .. }
            | Provider::B2 { prefix, .. } => prefix.trim_matches('/').to_string(),
            Provider::Local { .. } | Provider::Rest { .. } => {
                unreachable!("local and rest repositories use rustic_backend")
            }
        };
        let operator = service_operator(config, &prefix, location)?;
        let client = {
            let _guard = rt.enter();
            tls::http_client(&config.tls, config.connection_limit(), location)?
        };
        let context = operator
            .base_context()
            .with_http_transport(HttpTransporter::new(tls::Transport::new(client)));
        // Retries happen in `retrying`, not in opendal's RetryLayer: that one marks every error
        // it returns "persistent", which would hide whether a failure was temporary.
        let mut operator = operator.with_context(context);
        if let Some(n) = config.connection_limit() {
            operator = operator.layer(ConcurrentLimitLayer::new(n).with_http_concurrent_limit(n));
        }
        let operator = operator.layer(LoggingLayer::default());
        let _guard = rt.enter();
        let operator = opendal::blocking::Operator::new(operator).map_err(|source| {
            BackendError::BuildOperator {
                provider,
                location: location.to_string(),
                source: Box::new(source),
            }
        })?;
        Ok(Self {
            operator,
            location: location.to_string(),
            provider,
            prefix,
        })
    }

    fn error(
        &self,
        action: &'static str,
        path: &str,
    ) -> impl FnOnce(opendal::Error) -> BackendError {
        move |source| BackendError::storage(action, path, &self.location, self.provider, source)
    }

    pub(crate) fn read(&self, path: &str) -> Result<Bytes, BackendError> {
        retrying(path, || self.operator.read(path))
            .map(|buffer| buffer.to_bytes())
            .map_err(self.error("read", path))
    }

    pub(crate) fn write(
        &self,
        path: &str,
        data: impl Into<opendal::Buffer>,
    ) -> Result<(), BackendError> {
        let data = data.into();
        retrying(path, || self.operator.write(path, data.clone()))
            .map(|_| ())
            .map_err(self.error("write", path))
    }

    pub(crate) fn delete(&self, path: &str) -> Result<(), BackendError> {
        retrying(path, || self.operator.delete(path)).map_err(self.error("delete", path))
    }

    /// Names and sizes of the files under `dir` (`locks/`, `data/`, …), recursively; a missing
    /// directory is empty.
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<(String, u64)>, BackendError> {
        let options = ListOptions {
            recursive: true,
            ..ListOptions::default()
        };
        let listed = retrying(dir, || {
            let lister = match self.operator.lister_options(dir, options.clone()) {
                Ok(lister) => lister,
                Err(err) if err.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(err) => return Err(err),
            };
            let mut files = Vec::new();
            for entry in lister {
                // A listing cut short fails as a whole: prune must never act on a partial list.
                let entry = entry?;
                if entry.metadata().is_file() {
                    files.push((entry.name().to_string(), entry.metadata().content_length()));
                }
            }
            Ok(files)
        });
        listed.map_err(self.error("list", dir))
    }

    /// Size of `path`, `None` when it does not exist.
    fn size(&self, path: &str) -> Result<Option<u64>, BackendError> {
        match retrying(path, || self.operator.stat(path)) {
            Ok(meta) => Ok(Some(meta.content_length())),
            Err(err) if err.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.error("stat", path)(err)),
        }
    }

    /// Creates the bucket (S3, path-style or virtual-host): a PUT on the bucket URL. Tests use
    /// it against moto; `init` may later, like restic, when the bucket is missing.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn create_bucket(
        config: &BackendConfig,
        location: &str,
        rt: &Handle,
    ) -> Result<(), BackendError> {
        let mut at_root = config.clone();
        if let Provider::S3 { prefix, .. } = &mut at_root.provider {
            prefix.clear();
        } else {
            return Err(BackendError::Unsupported {
                provider: config.provider.kind(),
                what: "create its bucket",
                fix: "create the bucket with the provider's tools first",
            });
        }
        let backend = Self::new(&at_root, location, rt)?;
        // With root `/`, the directory `/` is the bucket URL itself: `PUT /bucket/` = CreateBucket.
        backend
            .operator
            .create_dir("/")
            .map_err(backend.error("create bucket", "/"))
    }
}

/// Runs `op` again while it fails temporarily (5xx, 429, connection and timeout errors, as
/// opendal classifies them), with exponential backoff, [`MAX_RETRIES`] times at most. Blocks
/// the calling thread while waiting, like every call of the blocking operator.
fn retrying<T>(path: &str, op: impl FnMut() -> opendal::Result<T>) -> opendal::Result<T> {
    retrying_with(path, FIRST_RETRY_DELAY, op)
}

fn retrying_with<T>(
    path: &str,
    first_delay: Duration,
    mut op: impl FnMut() -> opendal::Result<T>,
) -> opendal::Result<T> {
    let mut delay = first_delay;
    let mut attempt = 0;
    loop {
        match op() {
            Err(err) if err.is_temporary() && attempt < MAX_RETRIES => {
                attempt += 1;
                let jitter = delay.mul_f64(rand::random_range(0.0..0.5));
                tracing::warn!(path, attempt, error = %err, "storage request failed; retrying");
                std::thread::sleep(delay + jitter);
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            result => return result,
        }
    }
}

/// The path of a repository file under the prefix, restic's layout.
fn file_path(tpe: FileType, id: &Id) -> String {
    let hex = id.to_hex();
    match tpe {
        FileType::Config => "config".to_string(),
        FileType::Pack => format!("data/{}/{}", &hex[..2], &*hex),
        _ => format!("{}/{}", tpe.dirname(), &*hex),
    }
}

/// The S3 endpoint URL: no scheme means HTTPS, as for restic and Stash.
pub(crate) fn s3_endpoint(endpoint: &str) -> String {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        // restic and Stash: no scheme means HTTPS.
        format!("https://{endpoint}")
    }
}

fn s3_operator(
    endpoint: &str,
    bucket: &str,
    region: Option<&str>,
    path_style: bool,
    credentials: &Credentials,
    root: &str,
) -> opendal::Result<Operator> {
    let mut s3 = services::S3::default()
        .endpoint(&s3_endpoint(endpoint))
        .bucket(bucket)
        .root(root)
        .region(region.unwrap_or("us-east-1"));
    if !path_style {
        s3 = s3.enable_virtual_host_style();
    }
    if let Credentials::S3(creds) = credentials {
        if let Some(id) = &creds.access_key_id {
            s3 = s3.access_key_id(id.expose());
        }
        if let Some(secret) = &creds.secret_access_key {
            s3 = s3.secret_access_key(secret.expose());
        }
        if let Some(token) = &creds.session_token {
            s3 = s3.session_token(token.expose());
        }
    }
    Operator::new(s3)
}

/// The opendal service for the provider, without transport or layers.
fn service_operator(
    config: &BackendConfig,
    prefix: &str,
    location: &str,
) -> Result<Operator, BackendError> {
    let provider = config.provider.kind();
    let root = format!("/{prefix}");
    let operator = match (&config.provider, &config.credentials) {
        (
            Provider::S3 {
                endpoint,
                bucket,
                region,
                path_style,
                ..
            },
            credentials,
        ) => s3_operator(
            endpoint,
            bucket,
            region.as_deref(),
            *path_style,
            credentials,
            &root,
        ),
        (Provider::Gcs { bucket, .. }, credentials) => {
            let mut gcs = services::Gcs::default().bucket(bucket).root(&root);
            if let Credentials::Gcs(creds) = credentials {
                if let Some(json) = &creds.service_account_json {
                    // opendal wants the key file's content base64-encoded.
                    let encoded = base64::engine::general_purpose::STANDARD.encode(json.expose());
                    gcs = gcs.credential(&encoded);
                } else if let Some(path) = &creds.credentials_file {
                    gcs = gcs.credential_path(&path.to_string_lossy());
                }
            }
            Operator::new(gcs)
        }
        (Provider::Azure { container, .. }, Credentials::Azure(creds)) => {
            let suffix = creds
                .endpoint_suffix
                .as_deref()
                .unwrap_or("core.windows.net");
            let mut azure = services::Azblob::default()
                .container(container)
                .root(&root)
                .endpoint(&format!("https://{}.blob.{suffix}", creds.account_name))
                .account_name(&creds.account_name);
            if let Some(key) = &creds.account_key {
                azure = azure.account_key(key.expose());
            }
            if let Some(sas) = &creds.sas_token {
                azure = azure.sas_token(sas.expose());
            }
            Operator::new(azure)
        }
        (Provider::B2 { bucket, .. }, Credentials::B2(creds)) => {
            // opendal addresses B2 buckets by id, which Stash's Secret does not carry.
            let bucket_id = creds
                .bucket_id
                .as_deref()
                .ok_or(BackendError::MissingSecretKey {
                    provider,
                    key: keys::B2_BUCKET_ID,
                })?;
            Operator::new(
                services::B2::default()
                    .bucket(bucket)
                    .bucket_id(bucket_id)
                    .application_key_id(creds.account_id.expose())
                    .application_key(creds.account_key.expose())
                    .root(&root),
            )
        }
        (Provider::Swift { container, .. }, Credentials::Swift(creds)) => {
            let (Some(url), Some(token)) = (&creds.storage_url, &creds.auth_token) else {
                return Err(BackendError::Unsupported {
                    provider,
                    what: "authenticate with keystone (ST_AUTH, OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_*) yet",
                    fix: "put a pre-authenticated OS_STORAGE_URL and OS_AUTH_TOKEN in the storage Secret",
                });
            };
            Operator::new(
                services::Swift::default()
                    .endpoint(url)
                    .container(container)
                    .root(&root)
                    .token(token.expose()),
            )
        }
        _ => {
            // `BackendConfig::validate` lets only these through without credentials.
            return Err(BackendError::MissingSecretKey {
                provider,
                key: match provider {
                    "azure" => keys::AZURE_ACCOUNT_NAME,
                    "b2" => keys::B2_ACCOUNT_ID,
                    _ => keys::OS_STORAGE_URL,
                },
            });
        }
    };
    operator.map_err(|source| BackendError::BuildOperator {
        provider,
        location: location.to_string(),
        source: Box::new(source),
    })
}

impl ReadBackend for OpendalBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        if tpe == FileType::Config {
            return Ok(self
                .size("config")
                .map_err(BackendError::into_rustic)?
                .map(|size| (Id::default(), u32::try_from(size).unwrap_or(u32::MAX)))
                .into_iter()
                .collect());
        }
        let dir = format!("{}/", tpe.dirname());
        Ok(self
            .list(&dir)
            .map_err(BackendError::into_rustic)?
            .into_iter()
            .filter_map(|(name, size)| {
                let id = Id::parse_some(&name, tpe)?;
                let size = u32::try_from(size)
                    .inspect_err(|_| tracing::error!("{dir}{name}: size {size} exceeds 4 GiB"))
                    .ok()?;
                Some((id, size))
            })
            .collect())
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<Bytes> {
        self.read(&file_path(tpe, id))
            .map_err(BackendError::into_rustic)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<Bytes> {
        let path = file_path(tpe, id);
        let options = ReadOptions {
            range: (u64::from(offset)..u64::from(offset) + u64::from(length)).into(),
            ..ReadOptions::default()
        };
        retrying(&path, || self.operator.read_options(&path, options.clone()))
            .map(|buffer| buffer.to_bytes())
            .map_err(|err| self.error("read", &path)(err).into_rustic())
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        let path = file_path(tpe, id);
        if self.prefix.is_empty() {
            path
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

impl WriteBackend for OpendalBackend {
    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        _cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.write(&file_path(tpe, id), content.into_vec())
            .map_err(BackendError::into_rustic)
    }

    fn remove(&self, tpe: FileType, id: &Id, _cacheable: bool) -> RusticResult<()> {
        self.delete(&file_path(tpe, id))
            .map_err(BackendError::into_rustic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_follow_restics_layout() {
        let id: Id = "03dc1178e4e54f69beaf35dd9d4256a5a600e9fa3452b9db80bd649938923e67"
            .parse()
            .unwrap();
        assert_eq!(file_path(FileType::Config, &id), "config");
        assert_eq!(
            file_path(FileType::Pack, &id),
            format!("data/03/{}", &*id.to_hex())
        );
        for (tpe, dir) in [
            (FileType::Index, "index"),
            (FileType::Snapshot, "snapshots"),
            (FileType::Key, "keys"),
        ] {
            assert_eq!(file_path(tpe, &id), format!("{dir}/{}", &*id.to_hex()));
        }
    }

    #[test]
    fn temporary_failures_are_retried_and_permanent_ones_returned_at_once() {
        let mut calls = 0;
        let result = retrying_with("p", Duration::from_millis(1), || {
            calls += 1;
            if calls < 3 {
                Err(opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let err = retrying_with("p", Duration::from_millis(1), || -> opendal::Result<()> {
            calls += 1;
            Err(opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary())
        })
        .unwrap_err();
        assert_eq!(calls, 1 + MAX_RETRIES);
        // Still temporary after giving up: the caller may try again later.
        assert!(err.is_temporary());

        let mut calls = 0;
        let err = retrying_with("p", Duration::from_millis(1), || -> opendal::Result<()> {
            calls += 1;
            Err(opendal::Error::new(
                opendal::ErrorKind::PermissionDenied,
                "403",
            ))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(!err.is_temporary());
    }

    #[test]
    fn an_endpoint_without_scheme_means_https() {
        assert_eq!(s3_endpoint("s3.amazonaws.com"), "https://s3.amazonaws.com");
        assert_eq!(
            s3_endpoint("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
    }
}
