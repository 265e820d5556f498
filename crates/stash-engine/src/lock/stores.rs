//! Lock file storage per backend kind: a directory, an opendal operator, or a restic REST server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::LockStore;
use crate::location::RepositoryLocation;

pub(super) fn store_for(location: &RepositoryLocation) -> Result<Box<dyn LockStore>, String> {
    if let Some(path) = &location.local_path {
        return Ok(Box::new(DirStore(path.join("locks"))));
    }
    let repository = location.backend.repository.clone().unwrap_or_default();
    if let Some(scheme) = repository.strip_prefix("opendal:") {
        return OpendalStore::new(scheme, &location.backend.options)
            .map(|s| Box::new(s) as Box<dyn LockStore>);
    }
    if let Some(url) = repository.strip_prefix("rest:") {
        return RestStore::new(url).map(|s| Box::new(s) as Box<dyn LockStore>);
    }
    Err(format!("locks are not supported for `{location}`"))
}

struct DirStore(PathBuf);

impl LockStore for DirStore {
    fn list(&self) -> Result<Vec<String>, String> {
        let entries = match std::fs::read_dir(&self.0) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(format!("{}: {err}", self.0.display())),
        };
        Ok(entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.len() == 64 && n.chars().all(|c| c.is_ascii_hexdigit()))
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        std::fs::read(self.0.join(name)).map_err(|e| e.to_string())
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        std::fs::create_dir_all(&self.0).map_err(|e| format!("{}: {e}", self.0.display()))?;
        std::fs::write(self.0.join(name), data)
            .map_err(|e| format!("{}: {e}", self.0.join(name).display()))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        match std::fs::remove_file(self.0.join(name)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.to_string()),
            _ => Ok(()),
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime for the lock store")
    })
}

struct OpendalStore(opendal::blocking::Operator);

impl OpendalStore {
    fn new(scheme: &str, options: &BTreeMap<String, String>) -> Result<Self, String> {
        let operator =
            opendal::Operator::via_iter(scheme, options.clone()).map_err(|e| e.to_string())?;
        let _guard = runtime().enter();
        opendal::blocking::Operator::new(operator)
            .map(Self)
            .map_err(|e| e.to_string())
    }
}

impl LockStore for OpendalStore {
    fn list(&self) -> Result<Vec<String>, String> {
        let entries = match self.0.list("locks/") {
            Ok(entries) => entries,
            Err(err) if err.kind() == opendal::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(err.to_string()),
        };
        Ok(entries
            .into_iter()
            .map(|e| e.name().to_string())
            .filter(|n| n.len() == 64)
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        self.0
            .read(&format!("locks/{name}"))
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.0
            .write(&format!("locks/{name}"), data.to_vec())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.0
            .delete(&format!("locks/{name}"))
            .map_err(|e| e.to_string())
    }
}

struct RestStore {
    client: reqwest::blocking::Client,
    base: reqwest::Url,
}

impl RestStore {
    fn new(url: &str) -> Result<Self, String> {
        let base = reqwest::Url::parse(url).map_err(|e| format!("invalid REST URL: {e}"))?;
        let client = reqwest::blocking::Client::builder()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client, base })
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::blocking::RequestBuilder, String> {
        let mut url = self.base.join(path).map_err(|e| e.to_string())?;
        let (user, pass) = (
            url.username().to_string(),
            url.password().map(str::to_string),
        );
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let mut request = self.client.request(method, url);
        if !user.is_empty() {
            request = request.basic_auth(user, pass);
        }
        Ok(request)
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
        let response = self
            .request(reqwest::Method::GET, "locks/")?
            .header("Accept", "application/vnd.x.restic.rest.v2")
            .send()
            .map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let body = response
            .error_for_status()
            .map_err(|e| e.to_string())?
            .text()
            .map_err(|e| e.to_string())?;
        let entries: Vec<ListEntry> =
            serde_json::from_str(&body).map_err(|e| format!("unexpected lock listing: {e}"))?;
        Ok(entries
            .into_iter()
            .map(|e| match e {
                ListEntry::V2 { name } | ListEntry::V1(name) => name,
            })
            .collect())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        let response = self
            .request(reqwest::Method::GET, &format!("locks/{name}"))?
            .send()
            .map_err(|e| e.to_string())?;
        let bytes = response
            .error_for_status()
            .map_err(|e| e.to_string())?
            .bytes()
            .map_err(|e| e.to_string())?;
        Ok(bytes.to_vec())
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.request(reqwest::Method::POST, &format!("locks/{name}"))?
            .body(data.to_vec())
            .send()
            .and_then(reqwest::blocking::Response::error_for_status)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let response = self
            .request(reqwest::Method::DELETE, &format!("locks/{name}"))?
            .send()
            .map_err(|e| e.to_string())?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        response
            .error_for_status()
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
