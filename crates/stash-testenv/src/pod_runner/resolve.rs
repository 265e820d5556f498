//! What the kubelet computes before starting a container: environment
//! (downward API, Secret and `ConfigMap` references, `$(VAR)` expansion),
//! volumes as host directories and the container's mounts of them, and the container's
//! command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, ObjectFieldSelector, Pod, Secret, Volume};
use kube::Client;
use kube::api::Api;

use super::mounts::BindMount;

/// Why a container cannot run here; becomes the pod's failure message.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("env {var}: {reason}")]
    Env { var: String, reason: String },
    #[error("volume {volume}: {reason}")]
    Volume { volume: String, reason: String },
    #[error("container {container}: {reason}")]
    Command { container: String, reason: String },
}

/// The value of a downward-API field path of `pod` (as the kubelet resolves it).
pub fn field_ref(pod: &Pod, sel: &ObjectFieldSelector, pod_ip: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let path = sel.field_path.as_str();
    let map_entry = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = map_entry("metadata.labels['", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = map_entry("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_owned(),
        "status.podIP" | "status.podIPs" => pod_ip.to_owned(),
        other => {
            return Err(format!(
                "fieldRef {other} is not supported by the stash-testenv pod runner"
            ));
        }
    })
}

/// `key="value"` lines, as the kubelet writes labels and annotations into downward-API files.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .unwrap_or_default()
}

async fn secret(client: &Client, ns: &str, name: &str) -> Result<Option<Secret>, String> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {name}: {e}"))
}

async fn config_map(client: &Client, ns: &str, name: &str) -> Result<Option<ConfigMap>, String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading ConfigMap {name}: {e}"))
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    out.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
    );
    out
}

fn config_map_data(c: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = c
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    out.extend(
        c.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    out
}

/// The container's environment, in order, with `$(VAR)` references expanded.
#[allow(
    clippy::too_many_lines,
    reason = "one branch per kind of env source, as the kubelet has them"
)]
pub async fn env(
    client: &Client,
    pod: &Pod,
    c: &Container,
    pod_ip: &str,
) -> Result<Vec<(String, String)>, ResolveError> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, what) = if let Some(r) = &from.secret_ref {
            let s = secret(client, &ns, &r.name)
                .await
                .map_err(|reason| ResolveError::Env {
                    var: "envFrom".into(),
                    reason,
                })?;
            (
                s.as_ref().map(secret_data),
                r.optional.unwrap_or(false),
                format!("Secret {}", r.name),
            )
        } else if let Some(r) = &from.config_map_ref {
            let c = config_map(client, &ns, &r.name)
                .await
                .map_err(|reason| ResolveError::Env {
                    var: "envFrom".into(),
                    reason,
                })?;
            (
                c.as_ref().map(config_map_data),
                r.optional.unwrap_or(false),
                format!("ConfigMap {}", r.name),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut vars,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None => {
                return Err(ResolveError::Env {
                    var: "envFrom".into(),
                    reason: format!("{what} not found"),
                });
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            let err = |reason: String| ResolveError::Env {
                var: e.name.clone(),
                reason,
            };
            if let Some(f) = &from.field_ref {
                field_ref(pod, f, pod_ip).map_err(err)?
            } else if let Some(r) = &from.secret_key_ref {
                let data = secret(client, &ns, &r.name)
                    .await
                    .map_err(err)?
                    .as_ref()
                    .map(secret_data);
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional.unwrap_or(false) => continue,
                    None => {
                        return Err(err(format!(
                            "Secret {} has no key {} (or does not exist)",
                            r.name, r.key
                        )));
                    }
                }
            } else if let Some(r) = &from.config_map_key_ref {
                let data = config_map(client, &ns, &r.name)
                    .await
                    .map_err(err)?
                    .as_ref()
                    .map(config_map_data);
                match data.and_then(|d| d.get(&r.key).cloned()) {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None if r.optional.unwrap_or(false) => continue,
                    None => {
                        return Err(err(format!(
                            "ConfigMap {} has no key {} (or does not exist)",
                            r.name, r.key
                        )));
                    }
                }
            } else {
                return Err(err("only fieldRef, secretKeyRef and configMapKeyRef are supported by the pod runner".into()));
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

/// Kubernetes' `$(VAR)` expansion: `$$` escapes, unknown references stay as they are.
#[must_use]
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            if let Some(end) = inner.find(')') {
                let name = &inner[..end];
                if let Some((_, v)) = vars.iter().rev().find(|(k, _)| k == name) {
                    out.push_str(v);
                } else {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
                rest = &inner[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Materializes the pod's volumes under `pod_dir/volumes` (or the shared PVC and hostPath roots)
/// and returns each volume's host directory. Unsupported volume types map to `Err` for that
/// volume only: they fail a container only if a stash container mounts them.
pub async fn volumes(
    client: &Client,
    pod: &Pod,
    work: &Path,
    pod_dir: &Path,
    pod_ip: &str,
) -> BTreeMap<String, Result<PathBuf, ResolveError>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out = BTreeMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let res = volume(client, pod, &ns, v, work, pod_dir, pod_ip).await;
        out.insert(
            v.name.clone(),
            res.map_err(|reason| ResolveError::Volume {
                volume: v.name.clone(),
                reason,
            }),
        );
    }
    out
}

async fn volume(
    client: &Client,
    pod: &Pod,
    ns: &str,
    v: &Volume,
    work: &Path,
    pod_dir: &Path,
    pod_ip: &str,
) -> Result<PathBuf, String> {
    let own = pod_dir.join("volumes").join(&v.name);
    let mkdir =
        |p: &Path| std::fs::create_dir_all(p).map_err(|e| format!("creating {}: {e}", p.display()));
    let write_all = |dir: &Path, files: Vec<(String, Vec<u8>)>| -> Result<(), String> {
        for (name, data) in files {
            let path = dir.join(&name);
            if let Some(parent) = path.parent() {
                mkdir(parent)?;
            }
            std::fs::write(&path, data).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
        Ok(())
    };
    let pick =
        |data: BTreeMap<String, Vec<u8>>,
         items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>| match items {
            None => data.into_iter().collect::<Vec<_>>(),
            Some(items) => items
                .iter()
                .filter_map(|i| data.get(&i.key).map(|d| (i.path.clone(), d.clone())))
                .collect(),
        };
    if v.empty_dir.is_some() {
        mkdir(&own)?;
        Ok(own)
    } else if let Some(h) = &v.host_path {
        Ok(super::host_path(work, &h.path))
    } else if let Some(c) = &v.persistent_volume_claim {
        Ok(super::pvc_dir(work, ns, &c.claim_name))
    } else if let Some(s) = &v.secret {
        mkdir(&own)?;
        let name = s.secret_name.clone().unwrap_or_default();
        match secret(client, ns, &name).await? {
            Some(sec) => write_all(&own, pick(secret_data(&sec), s.items.as_ref()))?,
            None if s.optional.unwrap_or(false) => {}
            None => return Err(format!("Secret {name} not found")),
        }
        Ok(own)
    } else if let Some(c) = &v.config_map {
        mkdir(&own)?;
        match config_map(client, ns, &c.name).await? {
            Some(cm) => write_all(&own, pick(config_map_data(&cm), c.items.as_ref()))?,
            None if c.optional.unwrap_or(false) => {}
            None => return Err(format!("ConfigMap {} not found", c.name)),
        }
        Ok(own)
    } else if let Some(d) = &v.downward_api {
        mkdir(&own)?;
        let mut files = Vec::new();
        for item in d.items.iter().flatten() {
            let Some(f) = &item.field_ref else {
                return Err("only fieldRef items are supported in downwardAPI volumes".into());
            };
            files.push((item.path.clone(), field_ref(pod, f, pod_ip)?.into_bytes()));
        }
        write_all(&own, files)?;
        Ok(own)
    } else {
        Err("only emptyDir, hostPath, persistentVolumeClaim, secret, configMap and downwardAPI volumes are supported \
             by the stash-testenv pod runner"
            .into())
    }
}

/// The container's volume mounts as bind mounts (subPath applied, created if missing). Secret,
/// `ConfigMap` and downwardAPI volumes are read-only, as the kubelet mounts them.
pub fn mounts(
    c: &Container,
    pod: &Pod,
    volumes: &BTreeMap<String, Result<PathBuf, ResolveError>>,
) -> Result<Vec<BindMount>, ResolveError> {
    let err = |volume: &str, reason: String| ResolveError::Volume {
        volume: volume.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let dir = match volumes.get(&m.name) {
            Some(Ok(dir)) => dir.clone(),
            Some(Err(e)) => return Err(err(&m.name, e.to_string())),
            None => return Err(err(&m.name, "not defined in the pod".into())),
        };
        let source = match m.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() => {
                let sub_path = Path::new(sub);
                if sub_path.is_absolute()
                    || sub_path
                        .components()
                        .any(|c| c == std::path::Component::ParentDir)
                {
                    return Err(err(
                        &m.name,
                        format!("subPath {sub:?} must be a relative path without '..'"),
                    ));
                }
                let d = dir.join(sub_path);
                if !d.exists() {
                    // The kubelet creates a missing subPath as a directory.
                    std::fs::create_dir_all(&d)
                        .map_err(|e| err(&m.name, format!("creating {}: {e}", d.display())))?;
                }
                d
            }
            _ => dir,
        };
        let read_only = m.read_only.unwrap_or(false) || always_read_only(pod, &m.name);
        out.push(BindMount {
            source,
            target: m.mount_path.clone(),
            read_only,
        });
    }
    Ok(out)
}

/// Whether the kubelet mounts the volume read-only whatever the mount says.
fn always_read_only(pod: &Pod, volume: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name == volume)
        .is_some_and(|v| {
            v.secret.is_some()
                || v.config_map.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        })
}

/// The arguments for the stash binary: `command[1..] + args` (or `args` without a command),
/// `$(VAR)`-expanded.
pub fn stash_args(c: &Container, env: &[(String, String)]) -> Result<Vec<String>, ResolveError> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(cmd) = c.command.as_ref().filter(|c| !c.is_empty()) {
        let exe = Path::new(&cmd[0])
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !exe.starts_with("stash") {
            return Err(ResolveError::Command {
                container: c.name.clone(),
                reason: format!(
                    "command {:?} is not the stash binary; the pod runner only runs stash (image {})",
                    cmd[0],
                    c.image.as_deref().unwrap_or_default()
                ),
            });
        }
        argv.extend(cmd[1..].iter().cloned());
    }
    argv.extend(c.args.iter().flatten().cloned());
    Ok(argv.iter().map(|a| expand(a, env)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_paren_references_expand_like_the_kubelet() {
        let vars = vec![
            ("A".to_owned(), "1".to_owned()),
            ("B".to_owned(), "x y".to_owned()),
        ];
        assert_eq!(expand("$(A)-$(B)", &vars), "1-x y");
        assert_eq!(expand("$$(A) $(C) $ $(", &vars), "$(A) $(C) $ $(");
    }

    #[test]
    fn commands_other_than_stash_are_refused() {
        let c: Container =
            serde_yaml::from_str("{name: c, image: stash-rs/stash:test, command: [sh, -c, ls]}")
                .unwrap();
        assert!(stash_args(&c, &[]).is_err());
        let c: Container = serde_yaml::from_str(
            "{name: c, image: stash-rs/stash:test, command: [/stash], args: [backup, $(X)]}",
        )
        .unwrap();
        assert_eq!(
            stash_args(&c, &[("X".into(), "/d".into())]).unwrap(),
            ["backup", "/d"]
        );
    }
}
