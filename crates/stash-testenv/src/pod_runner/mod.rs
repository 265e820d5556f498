//! A stand-in for the scheduler and the kubelet, small on purpose: it exists
//! only to run our own containers.
//!
//! - Registers one Node ([`NODE_NAME`]), Ready, without taints.
//! - Binds every pending pod (empty `spec.nodeName`, `schedulerName:
//!   default-scheduler`, no scheduling gates) whose node selector and required
//!   node affinity (including the `DaemonSet` controller's `metadata.name`
//!   match field) allow that node.
//! - Runs each bound pod: containers whose image is the stash image
//!   ([`is_stash_image`]) run as local processes of the real `stash` binary with
//!   the container's args and env (downward API, Secret and `ConfigMap` values
//!   resolved); init containers first, one after another. Every other
//!   container is reported Running without being executed.
//! - Maps volumes to directories under its work directory: emptyDir, Secret,
//!   `ConfigMap` and downwardAPI → a per-pod directory; PVC → one directory per
//!   claim; hostPath → `<work>/hostpath/<path>`. Each stash container runs in a
//!   mount namespace of its own with every volumeMount bind-mounted at its
//!   `mountPath` (`subPath` and `readOnly` honoured; Secret, `ConfigMap` and
//!   downwardAPI volumes read-only), as a kubelet would: see `mounts`. Args,
//!   env and paths are passed as written in the pod.
//! - Reports pod status like the kubelet: Running and Ready, then Succeeded or
//!   Failed with each container's exit code; restarts per `restartPolicy`.
//! - Acts as the kubelet on deletion: stops the processes and deletes the pod
//!   with grace period 0.
//!
//! With [`PodIdentity::Admin`] (the default) the processes get `KUBECONFIG` (the
//! admin kubeconfig, bound at [`ADMIN_KUBECONFIG`]), so agents reach the API as
//! admin. With [`PodIdentity::ServiceAccount`] they get what a kubelet gives a
//! pod: a `TokenRequest` token for the pod's service account, bound to the pod,
//! with `ca.crt` and `namespace` at [`SERVICE_ACCOUNT_DIR`], and
//! `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`, so RBAC applies; a pod's
//! [`IDENTITY_ANNOTATION`] picks its identity whatever [`Config::identity`] says.
//! The working directory is the container's `workingDir` or `/`, `HOME` is `/`,
//! and `/tmp` is the host's unless the pod mounts a volume there.

mod identity;
mod mounts;
mod pod;
mod resolve;

pub use identity::{IDENTITY_ANNOTATION, InCluster, PodIdentity, SERVICE_ACCOUNT_DIR};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

/// The image the pod runner executes as the local `stash` binary.
pub const STASH_IMAGE: &str = "stash-rs/stash:test";
/// The name of the Node the runner registers and binds pods to.
pub const NODE_NAME: &str = "stash-testenv-node";

/// Whether the runner executes containers of `image`: [`STASH_IMAGE`], or any
/// image whose repository's last path component is `stash` (e.g.
/// `stashed/stash:v0.34.0`, as in Stash's own charts).
#[must_use]
pub fn is_stash_image(image: &str) -> bool {
    if image == STASH_IMAGE {
        return true;
    }
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let repo = last.split(':').next().unwrap_or(last);
    repo == "stash"
}

/// Where stash containers find the admin kubeconfig (`KUBECONFIG`): a directory bound
/// read-only into their mount namespace, outside any path a pod mounts a volume at.
pub const ADMIN_KUBECONFIG: &str = "/var/run/secrets/stash-testenv/kubeconfig";

/// Configuration of a [`PodRunner`].
#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// The binary run for stash-image containers.
    pub stash_bin: PathBuf,
    /// Root of volumes, pod directories and container logs.
    pub work_dir: PathBuf,
    /// The admin kubeconfig, seen by processes at [`ADMIN_KUBECONFIG`] (set as `KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// Whose credentials stash containers get (a pod's [`IDENTITY_ANNOTATION`] overrides it).
    pub identity: PodIdentity,
    /// The API server as pods reach it; needed for [`PodIdentity::ServiceAccount`].
    pub in_cluster: Option<InCluster>,
}

/// Handle to the running pod runner (the watch loop lives on the runtime it was started on).
#[derive(Debug, Clone)]
pub struct PodRunner {
    cfg: Arc<Config>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("failed to register Node {node}")]
    RegisterNode {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create the pod runner's work directory {path}")]
    WorkDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Per-pod state shared with the watch loop.
#[derive(Debug, Default)]
struct State {
    /// Running pod tasks by uid: sending on the channel asks the task to stop and delete the pod.
    tasks: HashMap<String, tokio::sync::watch::Sender<bool>>,
    /// Pods already force-deleted or being bound (by uid), so repeated watch events do nothing.
    handled: HashMap<String, &'static str>,
    next_ip: u32,
}

impl PodRunner {
    /// Registers the node and starts the watch loop on the current tokio runtime.
    pub async fn start(client: Client, cfg: Config) -> Result<Self, RunnerError> {
        for dir in [
            cfg.work_dir.join("pods"),
            cfg.work_dir.join("pvc"),
            cfg.work_dir.join("hostpath"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| RunnerError::WorkDir {
                path: dir.clone(),
                source,
            })?;
        }
        if let Some(kc) = &cfg.kubeconfig {
            let copy = admin_credentials(&cfg.work_dir).source;
            std::fs::create_dir_all(&copy)
                .and_then(|()| std::fs::copy(kc, copy.join("kubeconfig")))
                .map_err(|source| RunnerError::WorkDir {
                    path: copy.clone(),
                    source,
                })?;
        }
        register_node(&client, &cfg.node_name)
            .await
            .map_err(|source| RunnerError::RegisterNode {
                node: cfg.node_name.clone(),
                source,
            })?;
        let cfg = Arc::new(cfg);
        let state = Arc::new(Mutex::new(State::default()));
        tokio::spawn(watch_loop(client, Arc::clone(&cfg), state));
        Ok(Self { cfg })
    }

    #[must_use]
    pub fn node_name(&self) -> &str {
        &self.cfg.node_name
    }

    #[must_use]
    pub fn stash_bin(&self) -> &Path {
        &self.cfg.stash_bin
    }

    #[must_use]
    pub fn work_dir(&self) -> &Path {
        &self.cfg.work_dir
    }

    /// The directory a `hostPath` volume with `path` maps to (created).
    #[must_use]
    pub fn host_path(&self, path: &str) -> PathBuf {
        host_path(&self.cfg.work_dir, path)
    }

    /// The directory a `persistentVolumeClaim` volume of `claim` in `namespace` maps to (created).
    #[must_use]
    pub fn pvc_dir(&self, namespace: &str, claim: &str) -> PathBuf {
        pvc_dir(&self.cfg.work_dir, namespace, claim)
    }

    /// Path of a container's log file (stdout and stderr), whether or not it exists yet.
    #[must_use]
    pub fn container_log_path(&self, namespace: &str, pod: &str, container: &str) -> PathBuf {
        self.cfg
            .work_dir
            .join("pods")
            .join(namespace)
            .join(pod)
            .join("logs")
            .join(format!("{container}.log"))
    }

    /// The service-account token the runner gave a pod (`None` if it has none), as the pod's
    /// processes read it from [`SERVICE_ACCOUNT_DIR`].
    #[must_use]
    pub fn service_account_token(&self, namespace: &str, pod: &str) -> Option<String> {
        let dir = self.cfg.work_dir.join("pods").join(namespace).join(pod);
        std::fs::read_to_string(dir.join("serviceaccount").join("token")).ok()
    }

    /// A container's log so far (empty if it never ran).
    #[must_use]
    pub fn container_log(&self, namespace: &str, pod: &str, container: &str) -> String {
        std::fs::read_to_string(self.container_log_path(namespace, pod, container))
            .unwrap_or_default()
    }
}

/// The host directory holding the admin kubeconfig, and where containers see it.
fn admin_credentials(work: &Path) -> mounts::BindMount {
    mounts::BindMount {
        source: work.join("credentials").join("admin"),
        target: Path::new(ADMIN_KUBECONFIG)
            .parent()
            .expect("an absolute file path")
            .display()
            .to_string(),
        read_only: true,
    }
}

pub(crate) fn host_path(work: &Path, path: &str) -> PathBuf {
    let dir = work.join("hostpath").join(path.trim_start_matches('/'));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

pub(crate) fn pvc_dir(work: &Path, namespace: &str, claim: &str) -> PathBuf {
    let dir = work.join("pvc").join(namespace).join(claim);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn node_labels(node: &str) -> BTreeMap<String, String> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), node.to_owned()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), arch.to_owned()),
    ])
}

async fn register_node(client: &Client, name: &str) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let now = jiff::Timestamp::now().to_string();
    let cond = |type_: &str, status: &str, reason: &str| {
        serde_json::json!({"type": type_, "status": status, "reason": reason, "message": "stash-testenv pod runner",
            "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let resources = serde_json::json!({"cpu": "2", "memory": "24Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    let labels = node_labels(name);
    let status = serde_json::json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
        "conditions": [
            cond("Ready", "True", "KubeletReady"),
            cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            cond("PIDPressure", "False", "KubeletHasSufficientPID"),
        ],
        "nodeInfo": {
            "machineID": "stash-testenv", "systemUUID": "stash-testenv", "bootID": "stash-testenv",
            "kernelVersion": "", "osImage": "stash-testenv pod runner", "containerRuntimeVersion": "stash-testenv://0",
            "kubeletVersion": crate::paths::k8s_version(), "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": labels["kubernetes.io/arch"],
        },
    });
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
        "status": status,
    }))
    .expect("static Node");
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e),
    }
    // Status is dropped on create by some versions and stale on re-registration: set it through the subresource.
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": status})),
    )
    .await?;
    // Remove any taint (e.g. from TaintNodesByCondition if it is enabled).
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"taints": null}})),
    )
    .await?;
    Ok(())
}

async fn watch_loop(client: Client, cfg: Arc<Config>, state: Arc<Mutex<State>>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut stream = watcher(pods, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                on_pod(&client, &cfg, &state, pod);
            }
            Ok(watcher::Event::Delete(pod)) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let mut st = state.lock().expect("pod runner state");
                if let Some(stop) = st.tasks.remove(&uid) {
                    let _ = stop.send(true);
                }
                st.handled.remove(&uid);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = &e as &dyn std::error::Error,
                "pod runner watch error"
            ),
        }
    }
}

fn on_pod(client: &Client, cfg: &Arc<Config>, state: &Arc<Mutex<State>>, pod: Pod) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let node = spec.node_name.clone().unwrap_or_default();
    let deleting = pod.metadata.deletion_timestamp.is_some();
    let mut st = state.lock().expect("pod runner state");

    if node.is_empty() {
        if deleting || st.handled.contains_key(&uid) || !schedulable_here(&pod, &cfg.node_name) {
            return;
        }
        st.handled.insert(uid.clone(), "binding");
        let (client, node, state) = (client.clone(), cfg.node_name.clone(), Arc::clone(state));
        tokio::spawn(async move {
            let api: Api<Pod> = Api::namespaced(client, &ns);
            let binding = serde_json::json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            match api
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                Ok(_) => tracing::debug!(namespace = %ns, name = %name, "bound pod"),
                Err(e) => {
                    tracing::warn!(namespace = %ns, name = %name, error = &e as &dyn std::error::Error, "failed to bind pod");
                    // Let a later event retry.
                    state.lock().expect("pod runner state").handled.remove(&uid);
                }
            }
        });
        return;
    }
    if node != cfg.node_name {
        return;
    }
    if deleting {
        if let Some(stop) = st.tasks.get(&uid) {
            let _ = stop.send(true);
        } else if st.handled.get(&uid) != Some(&"deleting") {
            st.handled.insert(uid.clone(), "deleting");
            let client = client.clone();
            tokio::spawn(async move { force_delete(&client, &ns, &name, &uid).await });
        }
        return;
    }
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let started = matches!(st.handled.get(&uid), Some(&("running" | "deleting")));
    if st.tasks.contains_key(&uid) || started || phase == "Succeeded" || phase == "Failed" {
        return;
    }
    st.next_ip += 1;
    let ip = st.next_ip;
    let pod_ip = format!("10.244.{}.{}", ip / 250, ip % 250 + 2);
    let (tx, rx) = tokio::sync::watch::channel(false);
    st.tasks.insert(uid.clone(), tx);
    st.handled.insert(uid.clone(), "running");
    let (client, cfg, state) = (client.clone(), Arc::clone(cfg), Arc::clone(state));
    tokio::spawn(async move {
        pod::run(client, cfg, pod, pod_ip, rx).await;
        state.lock().expect("pod runner state").tasks.remove(&uid);
    });
}

/// Deletes a pod with grace period 0 (what the kubelet does once its containers are gone).
pub(crate) async fn force_delete(client: &Client, ns: &str, name: &str, uid: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => tracing::debug!(namespace = %ns, name = %name, "deleted pod"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(e) => {
            tracing::warn!(namespace = %ns, name = %name, error = &e as &dyn std::error::Error, "failed to delete pod");
        }
    }
}

fn schedulable_here(pod: &Pod, node: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    if spec
        .scheduler_name
        .as_deref()
        .is_some_and(|s| s != "default-scheduler")
    {
        return false;
    }
    if spec
        .scheduling_gates
        .as_ref()
        .is_some_and(|g| !g.is_empty())
    {
        return false;
    }
    let labels = node_labels(node);
    if let Some(sel) = &spec.node_selector
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone());
    match terms {
        None => true,
        Some(terms) => terms.iter().any(|term| {
            let by_label = term
                .match_expressions
                .iter()
                .flatten()
                .all(|req| requirement_matches(req, |k| labels.get(k).cloned()));
            let by_field = term.match_fields.iter().flatten().all(|req| {
                requirement_matches(req, |k| (k == "metadata.name").then(|| node.to_owned()))
            });
            by_label && by_field
        }),
    }
}

fn requirement_matches(
    req: &NodeSelectorRequirement,
    value_of: impl Fn(&str) -> Option<String>,
) -> bool {
    let value = value_of(&req.key);
    let values = req.values.clone().unwrap_or_default();
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        // Gt/Lt compare integers; our node has no integer labels.
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stash_images_are_the_test_image_and_any_repository_named_stash() {
        for image in [
            STASH_IMAGE,
            "stashed/stash:v0.34.0",
            "ghcr.io/stashed/stash@sha256:abc",
            "stash",
        ] {
            assert!(is_stash_image(image), "{image}");
        }
        for image in [
            "busybox",
            "stashed/stash-enterprise:v0.34.0",
            "registry:5000/nginx:stash",
        ] {
            assert!(!is_stash_image(image), "{image}");
        }
    }

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("test pod yaml")
    }

    #[test]
    fn daemonset_pods_pinned_to_another_node_are_not_bound_here() {
        let pinned = |node: &str| {
            pod(&format!(
                "metadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: x}}]\n  affinity:\n    nodeAffinity:\n      \
                 requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchFields:\n          \
                 - {{key: metadata.name, operator: In, values: [{node}]}}\n"
            ))
        };
        assert!(schedulable_here(&pinned(NODE_NAME), NODE_NAME));
        assert!(!schedulable_here(&pinned("other"), NODE_NAME));
    }

    #[test]
    fn node_selectors_and_scheduling_gates_are_honoured() {
        let linux = pod(
            "spec: {containers: [{name: c, image: x}], nodeSelector: {kubernetes.io/os: linux}}",
        );
        let windows = pod(
            "spec: {containers: [{name: c, image: x}], nodeSelector: {kubernetes.io/os: windows}}",
        );
        let gated =
            pod("spec: {containers: [{name: c, image: x}], schedulingGates: [{name: wait}]}");
        let other_scheduler =
            pod("spec: {containers: [{name: c, image: x}], schedulerName: custom}");
        assert!(schedulable_here(&linux, NODE_NAME));
        assert!(!schedulable_here(&windows, NODE_NAME));
        assert!(!schedulable_here(&gated, NODE_NAME));
        assert!(!schedulable_here(&other_scheduler, NODE_NAME));
    }
}
