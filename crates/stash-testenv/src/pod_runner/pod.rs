//! One bound pod: run its stash containers, report its status, delete it when asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::identity::{self, PodIdentity};
use super::mounts;
use super::resolve::{self, ResolveError};
use super::{Config, is_stash_image};
use crate::process::{Proc, Spec};

fn now() -> String {
    let t = jiff::Timestamp::now();
    jiff::Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

#[derive(Debug, Clone)]
enum State {
    Waiting(&'static str),
    Running {
        started: String,
    },
    Terminated {
        code: i32,
        reason: &'static str,
        message: Option<String>,
        started: String,
        finished: String,
    },
}

#[derive(Debug, Clone)]
struct CStatus {
    name: String,
    image: String,
    state: State,
    restarts: i32,
    init: bool,
}

impl CStatus {
    fn new(c: &Container, init: bool) -> Self {
        let state = State::Waiting(if init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        });
        Self {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state,
            restarts: 0,
            init,
        }
    }

    fn json(&self, uid: &str) -> Value {
        let (state, running) = match &self.state {
            State::Waiting(reason) => (json!({"waiting": {"reason": reason}}), false),
            State::Running { started } => (json!({"running": {"startedAt": started}}), true),
            State::Terminated {
                code,
                reason,
                message,
                started,
                finished,
            } => (
                json!({"terminated": {"exitCode": code, "reason": reason, "message": message,
                    "startedAt": started, "finishedAt": finished}}),
                false,
            ),
        };
        let mut v = json!({
            "name": self.name, "image": self.image, "imageID": format!("stash-testenv://{}", self.image),
            "ready": running && !self.init, "started": running, "restartCount": self.restarts, "state": state,
        });
        if !matches!(self.state, State::Waiting(_)) {
            v["containerID"] = json!(format!("stash-testenv://{uid}/{}", self.name));
        }
        v
    }
}

struct PodRun {
    client: Client,
    cfg: Arc<Config>,
    pod: Pod,
    ns: String,
    name: String,
    uid: String,
    pod_ip: String,
    start_time: String,
    pod_dir: PathBuf,
    init: Vec<CStatus>,
    main: Vec<CStatus>,
    initialized: bool,
    message: Option<String>,
}

impl PodRun {
    async fn patch(&self, phase: &str) {
        let t = now();
        let cond = |type_: &str, ok: bool, reason: Option<&str>| {
            json!({"type": type_, "status": if ok { "True" } else { "False" }, "reason": reason, "lastTransitionTime": t,
                "lastProbeTime": null})
        };
        let all_running = self
            .main
            .iter()
            .all(|c| matches!(c.state, State::Running { .. }));
        let not_ready = if phase == "Succeeded" || phase == "Failed" {
            "PodCompleted"
        } else {
            "ContainersNotReady"
        };
        let ready_reason = (!all_running).then_some(not_ready);
        let status = json!({
            "phase": phase,
            "message": self.message,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "qosClass": "BestEffort",
            "conditions": [
                cond("PodScheduled", true, None),
                cond("Initialized", self.initialized, (!self.initialized).then_some("ContainersNotInitialized")),
                cond("ContainersReady", all_running, ready_reason),
                cond("Ready", all_running, ready_reason),
            ],
            "initContainerStatuses": self.init.iter().map(|c| c.json(&self.uid)).collect::<Vec<_>>(),
            "containerStatuses": self.main.iter().map(|c| c.json(&self.uid)).collect::<Vec<_>>(),
        });
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        if let Err(e) = api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            tracing::debug!(namespace = %self.ns, name = %self.name, error = &e as &dyn std::error::Error, "pod status patch failed");
        }
    }

    /// Starts a stash container as a process in a mount namespace of its own, or explains
    /// why it cannot run.
    async fn start(
        &self,
        c: &Container,
        volumes: &BTreeMap<String, Result<PathBuf, ResolveError>>,
    ) -> Result<Proc, String> {
        let mut binds = resolve::mounts(c, &self.pod, volumes).map_err(|e| e.to_string())?;
        let env = resolve::env(&self.client, &self.pod, c, &self.pod_ip)
            .await
            .map_err(|e| e.to_string())?;
        let args = resolve::stash_args(c, &env).map_err(|e| e.to_string())?;
        let logs = self.pod_dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
        let mut spec = Spec::new(
            format!("{}/{}/{}", self.ns, self.name, c.name),
            &self.cfg.stash_bin,
            logs.join(format!("{}.log", c.name)),
        );
        spec.clear_env = true;
        // What a container runtime sets when the image's user has no home directory.
        spec.env.push(("HOME".into(), "/".into()));
        for pass in ["RUST_LOG", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(pass) {
                spec.env.push((pass.into(), v));
            }
        }
        // A container that mounts its own volume at the service-account path keeps it, as with a
        // kubelet.
        let own_mount = binds
            .iter()
            .any(|b| b.target.trim_end_matches('/') == identity::SERVICE_ACCOUNT_DIR);
        match PodIdentity::of(&self.pod, self.cfg.identity)? {
            PodIdentity::Admin if self.cfg.kubeconfig.is_some() => {
                // Bound into the namespace like a kubelet's credentials, so no volume (an
                // emptyDir at /tmp, say) can hide the run directory's copy.
                binds.push(super::admin_credentials(&self.cfg.work_dir));
                spec.env
                    .push(("KUBECONFIG".into(), super::ADMIN_KUBECONFIG.to_owned()));
                // A kubelet always mounts the pod's namespace file, and in-pod code (Stash's
                // `meta.Namespace()`) finds its namespace there; only the token is admin here.
                if !own_mount && let Some(mount) = self.namespace_file()? {
                    binds.push(mount);
                }
            }
            PodIdentity::Admin => {}
            PodIdentity::ServiceAccount => {
                let in_cluster = self.cfg.in_cluster.as_ref().ok_or(
                    "the pod runner has no in-cluster API server address (Config::in_cluster) for a \
                     ServiceAccount identity",
                )?;
                if let Some(creds) =
                    identity::service_account(&self.client, &self.pod, in_cluster, &self.pod_dir)
                        .await?
                {
                    if !own_mount {
                        binds.push(creds.mount);
                    }
                    spec.env.extend(creds.env);
                }
            }
        }
        spec.env.extend(env);
        mounts::check(&binds)?;
        let workdir = c
            .working_dir
            .as_deref()
            .filter(|w| !w.is_empty())
            .unwrap_or("/");
        (spec.program, spec.args) = mounts::wrap(&binds, workdir, &self.cfg.stash_bin, &args);
        let proc = Proc::spawn(spec)
            .map_err(|e| format!("starting {}: {e}", self.cfg.stash_bin.display()))?;
        tracing::debug!(namespace = %self.ns, pod = %self.name, container = %c.name, pid = proc.pid(), "started container");
        Ok(proc)
    }

    /// The service-account directory with only the `namespace` file, unless the pod opts out
    /// of the automount.
    fn namespace_file(&self) -> Result<Option<mounts::BindMount>, String> {
        let opted_out = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.automount_service_account_token)
            == Some(false);
        if opted_out {
            return Ok(None);
        }
        let dir = self.pod_dir.join("serviceaccount-namespace");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let file = dir.join("namespace");
        std::fs::write(&file, &self.ns).map_err(|e| format!("writing {}: {e}", file.display()))?;
        Ok(Some(mounts::BindMount {
            source: dir,
            target: identity::SERVICE_ACCOUNT_DIR.to_owned(),
            read_only: true,
        }))
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

async fn stop_all(procs: Vec<Arc<Proc>>, grace: Duration) {
    let _ = tokio::task::spawn_blocking(move || {
        for p in &procs {
            p.signal(nix::sys::signal::Signal::SIGTERM);
        }
        for p in &procs {
            p.stop(grace);
        }
    })
    .await;
}

enum Outcome {
    Exited(i32),
    Stopped,
}

/// Waits for `proc` to exit, or for a stop request.
async fn wait(proc: &Proc, stop: &mut watch::Receiver<bool>) -> Outcome {
    loop {
        if *stop.borrow() {
            return Outcome::Stopped;
        }
        if let Some(status) = proc.try_wait() {
            return Outcome::Exited(exit_code(status));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Runs a pod bound to our node until it ends or is deleted.
#[allow(
    clippy::too_many_lines,
    reason = "the pod lifecycle reads best as one sequence: init, start, watch, end"
)]
pub async fn run(
    client: Client,
    cfg: Arc<Config>,
    pod: Pod,
    pod_ip: String,
    mut stop: watch::Receiver<bool>,
) {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let restart = spec
        .restart_policy
        .clone()
        .unwrap_or_else(|| "Always".into());
    let grace = Duration::from_secs(
        spec.termination_grace_period_seconds
            .unwrap_or(30)
            .clamp(1, 5)
            .unsigned_abs(),
    );
    let pod_dir = cfg.work_dir.join("pods").join(&ns).join(&name);
    let _ = std::fs::create_dir_all(pod_dir.join("logs"));
    let mut run = PodRun {
        client: client.clone(),
        init: spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| CStatus::new(c, true))
            .collect(),
        main: spec
            .containers
            .iter()
            .map(|c| CStatus::new(c, false))
            .collect(),
        cfg,
        ns: ns.clone(),
        name: name.clone(),
        uid: uid.clone(),
        pod_ip,
        start_time: now(),
        pod_dir,
        initialized: spec.init_containers.as_ref().is_none_or(Vec::is_empty),
        message: None,
        pod,
    };
    run.patch("Pending").await;
    let volumes = resolve::volumes(
        &client,
        &run.pod,
        &run.cfg.work_dir,
        &run.pod_dir,
        &run.pod_ip,
    )
    .await;

    // Init containers, one after another; each must succeed.
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        loop {
            let started = now();
            if !is_stash_image(c.image.as_deref().unwrap_or_default()) {
                // Not ours: reported as completed without running (running forever would block the pod).
                run.init[i].state = State::Terminated {
                    code: 0,
                    reason: "Completed",
                    message: None,
                    started: started.clone(),
                    finished: started,
                };
                break;
            }
            let proc = match run.start(c, &volumes).await {
                Ok(p) => p,
                Err(msg) => {
                    run.init[i].state = State::Terminated {
                        code: 128,
                        reason: "StartError",
                        message: Some(msg.clone()),
                        started: started.clone(),
                        finished: now(),
                    };
                    run.message = Some(format!("init container {}: {msg}", c.name));
                    run.patch("Failed").await;
                    return;
                }
            };
            run.init[i].state = State::Running {
                started: started.clone(),
            };
            run.patch("Pending").await;
            match wait(&proc, &mut stop).await {
                Outcome::Stopped => {
                    stop_all(vec![Arc::new(proc)], grace).await;
                    super::force_delete(&client, &ns, &name, &uid).await;
                    return;
                }
                Outcome::Exited(code) => {
                    let reason = if code == 0 { "Completed" } else { "Error" };
                    run.init[i].state = State::Terminated {
                        code,
                        reason,
                        message: None,
                        started,
                        finished: now(),
                    };
                    if code == 0 {
                        break;
                    }
                    if restart == "Never" {
                        run.message =
                            Some(format!("init container {} exited with code {code}", c.name));
                        run.patch("Failed").await;
                        return;
                    }
                    run.init[i].restarts += 1;
                    run.patch("Pending").await;
                    tokio::time::sleep(backoff(run.init[i].restarts)).await;
                }
            }
        }
    }
    run.initialized = true;

    // Main containers: stash ones as processes, the others only reported Running.
    let mut procs: Vec<Option<Arc<Proc>>> = vec![None; spec.containers.len()];
    for (i, c) in spec.containers.iter().enumerate() {
        let started = now();
        if !is_stash_image(c.image.as_deref().unwrap_or_default()) {
            run.main[i].state = State::Running { started };
            continue;
        }
        match run.start(c, &volumes).await {
            Ok(p) => {
                procs[i] = Some(Arc::new(p));
                run.main[i].state = State::Running { started };
            }
            Err(msg) => {
                run.main[i].state = State::Terminated {
                    code: 128,
                    reason: "StartError",
                    message: Some(msg.clone()),
                    started,
                    finished: now(),
                };
                run.message = Some(format!("container {}: {msg}", c.name));
            }
        }
    }
    run.patch("Running").await;

    let mut restart_at: Vec<Option<tokio::time::Instant>> = vec![None; spec.containers.len()];
    loop {
        if *stop.borrow() {
            stop_all(procs.iter().flatten().cloned().collect(), grace).await;
            super::force_delete(&client, &ns, &name, &uid).await;
            return;
        }
        let mut changed = false;
        for (i, c) in spec.containers.iter().enumerate() {
            if let Some(p) = &procs[i]
                && let Some(status) = p.try_wait()
            {
                let code = exit_code(status);
                let started = match &run.main[i].state {
                    State::Running { started } => started.clone(),
                    _ => now(),
                };
                run.main[i].state = State::Terminated {
                    code,
                    reason: if code == 0 { "Completed" } else { "Error" },
                    message: None,
                    started,
                    finished: now(),
                };
                procs[i] = None;
                let again = restart == "Always" || (restart == "OnFailure" && code != 0);
                if again {
                    run.main[i].restarts += 1;
                    restart_at[i] =
                        Some(tokio::time::Instant::now() + backoff(run.main[i].restarts));
                }
                changed = true;
            }
            if restart_at[i].is_some_and(|t| t <= tokio::time::Instant::now()) {
                restart_at[i] = None;
                match run.start(c, &volumes).await {
                    Ok(p) => {
                        procs[i] = Some(Arc::new(p));
                        run.main[i].state = State::Running { started: now() };
                    }
                    Err(msg) => run.message = Some(format!("container {}: {msg}", c.name)),
                }
                changed = true;
            }
        }
        let all_done = run
            .main
            .iter()
            .all(|c| matches!(c.state, State::Terminated { .. }))
            && restart_at.iter().all(Option::is_none);
        if all_done {
            run.patch(phase_of(&run.main)).await;
            // Terminal: nothing runs any more; deletion is the watch loop's job.
            return;
        }
        if changed {
            run.patch("Running").await;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => {}
        }
    }
}

fn phase_of(main: &[CStatus]) -> &'static str {
    let failed = main
        .iter()
        .any(|c| matches!(c.state, State::Terminated { code, .. } if code != 0));
    let done = main
        .iter()
        .all(|c| matches!(c.state, State::Terminated { .. }));
    match (done, failed) {
        (true, false) => "Succeeded",
        (true, true) => "Failed",
        _ => "Running",
    }
}

/// The kubelet's crash-loop back-off, shortened for tests: 1 s doubling up to 30 s.
fn backoff(restarts: i32) -> Duration {
    Duration::from_secs(1u64 << restarts.clamp(1, 6).unsigned_abs().saturating_sub(1))
        .min(Duration::from_secs(30))
}
