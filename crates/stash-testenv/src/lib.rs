//! Test support for stash-rs: a real Kubernetes control plane on loopback.
//!
//! ```no_run
//! # async fn t() {
//! let env = stash_testenv::TestEnv::shared().await;   // once per test binary
//! let ns = env.namespace().await;                      // one per test, deleted on drop
//! let client = env.client();                           // admin (system:masters)
//! # let _ = (ns, client);
//! # }
//! ```
//!
//! [`TestEnv`] starts etcd, kube-apiserver and kube-controller-manager (built by
//! `scripts/build-k8s`; see [`paths::k8s_bin_dir`]) on free loopback ports with
//! generated certificates, installs the CRDs of `deploy/crds/`, and runs a
//! [`PodRunner`] in place of the scheduler and kubelet. A missing binary is a
//! panic that says how to build it, never a skipped test.
//!
//! Processes never outlive the test binary: see [`process`].

pub mod certs;
pub mod control_plane;
pub mod crds;
pub mod paths;
pub mod pod_runner;
pub mod process;
pub mod pushgateway;
pub mod rest_server;
pub mod restic;
pub mod s3;
pub mod servers;
pub mod tree;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

pub use control_plane::ControlPlane;
pub use pod_runner::{NODE_NAME, PodRunner, STASH_IMAGE, is_stash_image};
pub use pushgateway::Pushgateway;
pub use rest_server::RestServer;
pub use restic::require_tool;
pub use s3::S3Server;
pub use wait::wait_for;

/// Label put on every namespace made by [`TestEnv::namespace`].
pub const NAMESPACE_LABEL: &str = "stash-testenv/test";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to start the control plane")]
    Start(#[from] control_plane::StartError),
    #[error("failed to install the stash CRDs")]
    Crds(#[from] crds::CrdError),
    #[error("failed to start the pod runner")]
    Runner(#[from] pod_runner::RunnerError),
    #[error(transparent)]
    Binary(#[from] paths::BinaryError),
    #[error("failed to create the tokio runtime of the test environment")]
    Runtime(#[source] std::io::Error),
    #[error("failed to create a client")]
    Client(#[source] kube::Error),
}

/// Formats an error with its sources, one per line.
#[must_use]
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str("\n  caused by: ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Options for [`TestEnv::start`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Where certificates, etcd data, logs and pod volumes go. `None`: a fresh
    /// `run-<pid>-<n>` directory under `$STASH_TESTENV_DIR` (default
    /// `$TMPDIR/stash-testenv`), where run directories of dead processes are removed.
    pub dir: Option<PathBuf>,
    /// Install `deploy/crds/*.yaml` (required to exist when true).
    pub install_crds: bool,
    /// Start the pod runner (needs the `stash` binary, see [`paths::stash_bin`]).
    pub pod_runner: bool,
    /// Whose credentials the pod runner hands a pod that does not choose with
    /// [`pod_runner::IDENTITY_ANNOTATION`].
    pub pod_identity: pod_runner::PodIdentity,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dir: None,
            install_crds: true,
            pod_runner: true,
            pod_identity: pod_runner::PodIdentity::default(),
        }
    }
}

/// A running control plane, CRDs and pod runner.
///
/// Its own multi-threaded tokio runtime hosts the pod runner and namespace
/// clean-up, so it works the same from every test's runtime. Dropping it stops
/// everything (a shared one lives until the process exits, when
/// `PR_SET_PDEATHSIG` kills the processes).
pub struct TestEnv {
    // Drop order: runtime (pod runner, its processes) first, then the control plane.
    runtime: Option<tokio::runtime::Runtime>,
    control_plane: ControlPlane,
    runner: Option<PodRunner>,
    dir: PathBuf,
    config: kube::Config,
    started_in: Duration,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("dir", &self.dir)
            .field("api_url", &self.control_plane.api_url())
            .finish_non_exhaustive()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        self.control_plane.stop();
    }
}

fn runs_root() -> PathBuf {
    std::env::var_os("STASH_TESTENV_DIR")
        .map_or_else(|| std::env::temp_dir().join("stash-testenv"), PathBuf::from)
}

/// Removes `run-<pid>-*` directories whose process is gone (interrupted runs).
fn remove_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn fresh_run_dir() -> std::io::Result<PathBuf> {
    static N: AtomicU32 = AtomicU32::new(0);
    let root = runs_root();
    std::fs::create_dir_all(&root)?;
    remove_stale_runs(&root);
    let dir = root.join(format!(
        "run-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Installs rustls' ring provider as the process default (once). When a build
/// unifies both ring and aws-lc-rs into rustls (e.g. with stash-cli's
/// dependencies), rustls cannot pick one by itself and kube's client panics.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only means another thread installed one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

static SHARED: OnceLock<Result<TestEnv, String>> = OnceLock::new();

impl TestEnv {
    /// The test binary's shared environment, started on first use. Panics with
    /// the reason (and how to fix it) if it cannot start; every later caller
    /// gets the same panic message instead of a second attempt.
    pub async fn shared() -> &'static TestEnv {
        match tokio::task::spawn_blocking(Self::shared_blocking_result).await {
            Ok(Ok(env)) => env,
            Ok(Err(msg)) => panic!("{msg}"),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// [`TestEnv::shared`] for synchronous callers.
    #[must_use]
    pub fn shared_blocking() -> &'static TestEnv {
        match Self::shared_blocking_result() {
            Ok(env) => env,
            Err(msg) => panic!("{msg}"),
        }
    }

    fn shared_blocking_result() -> Result<&'static TestEnv, String> {
        SHARED
            .get_or_init(|| {
                // Started on a plain thread: TestEnv::start blocks on its own runtime.
                std::thread::spawn(|| Self::start(&Options::default()))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
                    .map_err(|e| format!("stash-testenv: {}", error_chain(&e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Starts a new environment owned by the caller (stopped on drop). Must not
    /// be called from within a tokio runtime (it blocks on its own).
    pub fn start(opts: &Options) -> Result<TestEnv, Error> {
        let started = Instant::now();
        install_crypto_provider();
        let stash_bin = if opts.pod_runner {
            Some(paths::stash_bin()?)
        } else {
            None
        };
        let _ = paths::k8s_bin_dir()?;
        let dir = match &opts.dir {
            Some(d) => d.clone(),
            None => fresh_run_dir().map_err(|source| control_plane::StartError::RunDir {
                path: runs_root(),
                source,
            })?,
        };
        process::install_panic_hook(dir.join("logs"), false);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("stash-testenv")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let (control_plane, runner, config) = runtime.block_on(async {
            let cp = ControlPlane::start(&control_plane::Options::in_dir(dir.clone())).await?;
            let config = cp.config().await;
            let client = Client::try_from(config.clone()).map_err(Error::Client)?;
            if opts.install_crds {
                crds::install(&client, &crds::dir()).await?;
            }
            let runner = match stash_bin {
                Some(stash_bin) => Some(
                    PodRunner::start(
                        client,
                        pod_runner::Config {
                            node_name: NODE_NAME.to_owned(),
                            stash_bin,
                            work_dir: dir.join("node"),
                            kubeconfig: Some(cp.kubeconfig_path().to_path_buf()),
                            identity: opts.pod_identity,
                            in_cluster: Some(pod_runner::InCluster {
                                port: cp.api_port(),
                                ca_file: cp.serving_ca_file(),
                            }),
                        },
                    )
                    .await?,
                ),
                None => None,
            };
            Ok::<_, Error>((cp, runner, config))
        })?;
        let started_in = started.elapsed();
        tracing::info!(?started_in, dir = %dir.display(), "stash-testenv control plane ready");
        Ok(TestEnv {
            runtime: Some(runtime),
            control_plane,
            runner,
            dir,
            config,
            started_in,
        })
    }

    /// A new admin client. Call it from the test's own runtime (a client is tied
    /// to the runtime it was made on).
    #[must_use]
    pub fn client(&self) -> Client {
        Client::try_from(self.config.clone()).expect("a client from the generated kubeconfig")
    }

    /// The admin client configuration.
    #[must_use]
    pub fn config(&self) -> &kube::Config {
        &self.config
    }

    /// The admin kubeconfig file (what `KUBECONFIG` should point at).
    #[must_use]
    pub fn kubeconfig_path(&self) -> &Path {
        self.control_plane.kubeconfig_path()
    }

    #[must_use]
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The pod runner. Panics if the environment was started without one.
    #[must_use]
    pub fn pod_runner(&self) -> &PodRunner {
        self.runner
            .as_ref()
            .expect("this TestEnv was started without a pod runner (Options::pod_runner)")
    }

    /// The run directory (certificates, etcd data, `logs/`, `node/`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long startup took (processes, CRDs, pod runner).
    #[must_use]
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// `kubectl` (the one built with the control plane) with `KUBECONFIG` set.
    #[must_use]
    pub fn kubectl(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.control_plane.bin_dir().join("kubectl"));
        cmd.env("KUBECONFIG", self.kubeconfig_path());
        cmd
    }

    /// A fresh namespace named after the current test, labelled
    /// [`NAMESPACE_LABEL`]; deleted (in the background) when the guard drops,
    /// unless `STASH_TESTENV_KEEP_NAMESPACES` is set.
    pub async fn namespace(&'static self) -> TestNamespace {
        static N: AtomicU32 = AtomicU32::new(0);
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .rsplit("::")
            .next()
            .unwrap_or("test")
            .to_owned();
        let mut base: String = test
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect::<String>()
            .trim_matches('-')
            .to_owned();
        base.truncate(40);
        let base = base.trim_end_matches('-');
        let name = format!(
            "{}-{}-{}",
            if base.is_empty() { "t" } else { base },
            std::process::id() % 10000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let client = self.client();
        let api: Api<Namespace> = Api::all(client);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {NAMESPACE_LABEL: "true"}}
        }))
        .expect("static namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("failed to create test namespace {name}: {e}"));
        TestNamespace { name, env: self }
    }
}

/// A namespace for one test; deleted when dropped.
pub struct TestNamespace {
    name: String,
    env: &'static TestEnv,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestNamespace {
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host directory that a `hostPath` volume with `path` maps to. Use a
    /// path that contains the namespace name to keep tests apart.
    #[must_use]
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.env.pod_runner().host_path(path)
    }

    /// The host directory that the claim `claim` of this namespace maps to.
    #[must_use]
    pub fn pvc_dir(&self, claim: &str) -> PathBuf {
        self.env.pod_runner().pvc_dir(&self.name, claim)
    }

    /// A container's output (stdout and stderr) from the pod runner.
    #[must_use]
    pub fn container_log(&self, pod: &str, container: &str) -> String {
        self.env
            .pod_runner()
            .container_log(&self.name, pod, container)
    }
}

impl std::ops::Deref for TestNamespace {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("STASH_TESTENV_KEEP_NAMESPACES").is_some() {
            return;
        }
        let Some(rt) = &self.env.runtime else { return };
        let (config, name) = (self.env.config.clone(), self.name.clone());
        rt.spawn(async move {
            if let Ok(client) = Client::try_from(config) {
                let _ = Api::<Namespace>::all(client)
                    .delete(&name, &DeleteParams::background())
                    .await;
            }
        });
    }
}
