//! Installs the CRDs of `deploy/crds/` and waits until they are served.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;

/// Field manager of everything stash-testenv applies.
pub const FIELD_MANAGER: &str = "stash-testenv";

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error(
        "no CRDs in {dir}: the test environment installs the stash CRDs from deploy/crds/*.yaml; \
         generate them with `cargo run -p stash-cli -- crd` (see deploy/crds/README or the stash-api crate)"
    )]
    None { dir: PathBuf },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a list of CustomResourceDefinition documents")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("the API server rejected CRD {name} (from {path})")]
    Apply {
        name: String,
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
    #[error("CRD {name} was not established and served within {timeout:?}: {last}")]
    NotEstablished {
        name: String,
        timeout: Duration,
        last: String,
    },
}

/// The CRD directory: `$STASH_TESTENV_CRDS`, else `<repo>/deploy/crds`.
#[must_use]
pub fn dir() -> PathBuf {
    std::env::var_os("STASH_TESTENV_CRDS").map_or_else(
        || crate::paths::repo_root().join("deploy/crds"),
        PathBuf::from,
    )
}

/// Reads every `CustomResourceDefinition` in `dir/*.yaml` (multi-document files allowed).
pub fn load(dir: &Path) -> Result<Vec<(PathBuf, CustomResourceDefinition)>, CrdError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CrdError::Read {
            path: path.clone(),
            source,
        })?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc).map_err(|source| CrdError::Parse {
                path: path.clone(),
                source,
            })?;
            if value.is_null() {
                continue;
            }
            if value.get("kind").and_then(serde_yaml::Value::as_str)
                != Some("CustomResourceDefinition")
            {
                continue;
            }
            let crd: CustomResourceDefinition =
                serde_yaml::from_value(value).map_err(|source| CrdError::Parse {
                    path: path.clone(),
                    source,
                })?;
            out.push((path.clone(), crd));
        }
    }
    if out.is_empty() {
        return Err(CrdError::None {
            dir: dir.to_path_buf(),
        });
    }
    Ok(out)
}

/// Applies every CRD of `dir` (server-side apply, strict field validation) and
/// waits until each is Established and its resources list through discovery.
pub async fn install(
    client: &Client,
    dir: &Path,
) -> Result<Vec<CustomResourceDefinition>, CrdError> {
    let crds = load(dir)?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut pp = PatchParams::apply(FIELD_MANAGER).force();
    pp.field_validation = Some(kube::api::ValidationDirective::Strict);
    for (path, crd) in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &pp, &Patch::Apply(crd))
            .await
            .map_err(|source| CrdError::Apply {
                name: name.clone(),
                path: path.clone(),
                source,
            })?;
    }
    let timeout = Duration::from_secs(30);
    let start = Instant::now();
    for (_, crd) in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let last = match served(client, &api, crd).await {
                Ok(()) => break,
                Err(last) => last,
            };
            if start.elapsed() > timeout {
                return Err(CrdError::NotEstablished {
                    name,
                    timeout,
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(crds.into_iter().map(|(_, c)| c).collect())
}

async fn served(
    client: &Client,
    api: &Api<CustomResourceDefinition>,
    crd: &CustomResourceDefinition,
) -> Result<(), String> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let live = api.get(&name).await.map_err(|e| e.to_string())?;
    let established = live
        .status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Established" && c.status == "True");
    if !established {
        return Err("not Established yet".into());
    }
    for v in crd.spec.versions.iter().filter(|v| v.served) {
        let path = format!(
            "/apis/{}/{}/{}?limit=1",
            crd.spec.group, v.name, crd.spec.names.plural
        );
        let req = http::Request::get(&path)
            .body(Vec::new())
            .map_err(|e| e.to_string())?;
        client
            .request_text(req)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
    }
    Ok(())
}
