//! Lock file storage (`locks/<name>`) per backend kind, through the same settings as the
//! repository itself: a directory, our opendal operator (same TLS, retries, connection limit)
//! or a restic REST server (same CA).

use std::path::PathBuf;

use tokio::runtime::Handle;

use super::config::{BackendConfig, Credentials, Provider};
use super::error::one_line;
use super::opendal::OpendalBackend;
use super::{BackendError, tls};
use crate::lock::LockStore;

/// The lock store for `config`; `location` is the repository string for messages.
pub(crate) fn store(
    config: &BackendConfig,
    location: &str,
    rt: &Handle,
) -> Result<Box<dyn LockStore>, BackendError> {
    Ok(match &config.provider {
        Provider::Local { path } => Box::new(DirStore(path.join("locks"))),
        Provider::Rest { url } => Box::new(RestStore::new(config, url, location, rt)?),
        _ => Box::new(ObjectStore(OpendalBackend::new(config, location, rt)?)),
    })
}

/// Lock names are restic ids: 64 hex digits.
fn is_lock_name(name: &str) -> bool {
    name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())
}

fn text(err: &BackendError) -> String {
    one_line(err)
}

struct DirStore(PathBuf);

impl DirStore {
    fn io(action: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> BackendError {
        move |source| BackendError::Io {
            action,
            path,
            source,
        }
    }
}

impl LockStore for DirStore {
    fn list(&self) -> Result<Vec<String>, String> {
        let entries = match std::fs::read_dir(&self.0) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(text(&Self::io("list", self.0.clone())(err))),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_lock_name(n))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let path = self.0.join(name);
        std::fs::read(&path).map_err(|e| text(&Self::io("read", path)(e)))
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.0)
            .map_err(|e| text(&Self::io("create", self.0.clone())(e)))?;
        // Written beside and renamed into place, as restic's local backend does: a process
        // killed while writing must not leave a partial lock, which restic then cannot decode
        // (and refuses to lock beside). A leftover temporary name is not an id; both ignore it.
        let path = self.0.join(name);
        let write = || -> std::io::Result<()> {
            let mut partial = tempfile::Builder::new()
                .prefix(".lock-")
                .tempfile_in(&self.0)?;
            std::io::Write::write_all(&mut partial, data)?;
            partial.as_file().sync_all()?;
            partial.persist(&path).map_err(|err| err.error)?;
            Ok(())
        };
        write().map_err(|e| text(&Self::io("write", path)(e)))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let path = self.0.join(name);
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(text(&Self::io("remove", path)(err)))
            }
            _ => Ok(()),
        }
    }
}

struct ObjectStore(OpendalBackend);

impl LockStore for ObjectStore {
    fn list(&self) -> Result<Vec<String>, String> {
        Ok(self
            .0
            .list("locks/")
            .map_err(|e| text(&e))?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|n| is_lock_name(n))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        self.0
            .read(&format!("locks/{name}"))
            .map(|b| b.to_vec())
            .map_err(|e| text(&e))
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.0
            .write(&format!("locks/{name}"), data.to_vec())
            .map_err(|e| text(&e))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.0
            .delete(&format!("locks/{name}"))
            .map_err(|e| text(&e))
    }
}

/// Lock files on a restic REST server (`GET/POST/DELETE <url>/locks/<name>`).
struct RestStore {
    client: reqwest::Client,
    base: reqwest::Url,
    auth: Option<(String, String)>,
    location: String,
    rt: Handle,
}

impl RestStore {
    fn new(
        config: &BackendConfig,
        url: &str,
        location: &str,
        rt: &Handle,
    ) -> Result<Self, BackendError> {
        let invalid = |reason: String| BackendError::InvalidConfig {
            provider: "rest",
            field: "url",
            reason,
        };
        let mut base = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        // restic's `user:password@` in the URL, or Stash's REST_SERVER_* keys.
        let mut auth = (!base.username().is_empty()).then(|| {
            (
                base.username().to_string(),
                base.password().unwrap_or_default().to_string(),
            )
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if let Credentials::Rest(creds) = &config.credentials {
            auth = Some((creds.username.clone(), creds.password.expose().to_string()));
        }
        let client = {
            let _guard = rt.enter();
            tls::http_client(&config.tls, config.connection_limit(), location)?
        };
        Ok(Self {
            client,
            base,
            auth,
            location: location.to_string(),
            rt: rt.clone(),
        })
    }

    fn send(
        &self,
        action: &'static str,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Option<bytes::Bytes>, BackendError> {
        let fail = |source| BackendError::http(action, path, &self.location, source);
        let url = self
            .base
            .join(path)
            .map_err(|e| BackendError::InvalidConfig {
                provider: "rest",
                field: "url",
                reason: e.to_string(),
            })?;
        let mut request = self
            .client
            .request(method, url)
            .header("Accept", "application/vnd.x.restic.rest.v2");
        if let Some((user, pass)) = &self.auth {
            request = request.basic_auth(user, Some(pass));
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        self.rt.block_on(async {
            let response = request.send().await.map_err(fail)?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let response = response.error_for_status().map_err(fail)?;
            response.bytes().await.map(Some).map_err(fail)
        })
    }
}

/// An entry of a REST listing: `{"name": …}` in protocol v2, a bare name in v1.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ListEntry {
    V2 { name: String },
    V1(String),
}

impl LockStore for RestStore {
    fn list(&self) -> Result<Vec<String>, String> {
        let Some(body) = self
            .send("list", reqwest::Method::GET, "locks/", None)
            .map_err(|e| text(&e))?
        else {
            return Ok(Vec::new());
        };
        let entries: Vec<ListEntry> = serde_json::from_slice(&body).map_err(|source| {
            text(&BackendError::LockListing {
                location: self.location.clone(),
                source,
            })
        })?;
        Ok(entries
            .into_iter()
            .map(|e| match e {
                ListEntry::V2 { name } | ListEntry::V1(name) => name,
            })
            .filter(|n| is_lock_name(n))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let path = format!("locks/{name}");
        match self
            .send("read", reqwest::Method::GET, &path, None)
            .map_err(|e| text(&e))?
        {
            Some(body) => Ok(body.to_vec()),
            None => Err(format!(
                "lock `{path}` at `{}` does not exist",
                self.location
            )),
        }
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.send(
            "write",
            reqwest::Method::POST,
            &format!("locks/{name}"),
            Some(data.to_vec()),
        )
        .map(|_| ())
        .map_err(|e| text(&e))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.send(
            "delete",
            reqwest::Method::DELETE,
            &format!("locks/{name}"),
            None,
        )
        .map(|_| ())
        .map_err(|e| text(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_store_keeps_locks_under_locks_and_ignores_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let config = BackendConfig {
            provider: Provider::Local {
                path: dir.path().to_path_buf(),
            },
            credentials: Credentials::None,
            tls: super::super::TlsOptions::default(),
            max_connections: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = store(&config, "local", rt.handle()).unwrap();
        assert!(store.list().unwrap().is_empty());
        let name = "a".repeat(64);
        store.write(&name, b"lock").unwrap();
        std::fs::write(dir.path().join("locks/other"), b"x").unwrap();
        assert_eq!(store.list().unwrap(), vec![name.clone()]);
        assert_eq!(store.read(&name).unwrap(), b"lock");
        store.remove(&name).unwrap();
        store.remove(&name).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
