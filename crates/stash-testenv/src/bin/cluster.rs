//! `stash-testenv-cluster --dir <state-dir>`: the test control plane, pod
//! runner, a Pushgateway on loopback and the stash operator installed from
//! `deploy/` (`deploy/embedded/install`, so the pod runner runs the operator's
//! pod as a local `stash operator` process), for a person, in the foreground
//! until SIGTERM or SIGINT. `scripts/cluster up` runs it in the background.
//!
//! Writes into the state directory: `env` (`export KUBECONFIG=…` and
//! `export STASH_PUSHGATEWAY_URL=…`, written once the operator is Ready),
//! `pids` (`<pid> <name>` of every process it started), and the run directory
//! `run/` (kubeconfig, certificates, `logs/`, `node/`; the operator's log is
//! `node/pods/kube-system/<pod>/logs/operator.log`).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use stash_testenv::pushgateway::Pushgateway;
use stash_testenv::{Options, TestEnv, error_chain, paths, process, servers};

/// Runs `deploy/embedded/install` against `env`: the CRDs and the operator from `deploy/`, its
/// webhooks and metrics on free loopback ports, pushing to `pushgateway_url`; returns once the
/// operator answers `/readyz`.
fn install_operator(env: &TestEnv, pushgateway_url: &str) -> Result<(), String> {
    let secure_port = servers::free_port();
    let metrics_port = std::iter::repeat_with(servers::free_port)
        .find(|&p| p != secure_port)
        .expect("an endless iterator finds a second free port");
    let script = paths::repo_root().join("deploy/embedded/install");
    let status = Command::new(&script)
        .args(["--pushgateway-url", pushgateway_url])
        .args(["--secure-port", &secure_port.to_string()])
        .args(["--metrics-port", &metrics_port.to_string()])
        .env("KUBECONFIG", env.kubeconfig_path())
        .env("KUBECTL", env.control_plane().bin_dir().join("kubectl"))
        .stdout(std::process::Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({status}); its output is above",
            script.display()
        ))
    }
}

/// Blocks until SIGTERM (`scripts/cluster down`) or SIGINT.
fn wait_for_stop_signal() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("signal runtime");
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "stash_testenv=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let dir = if let (Some("--dir"), Some(dir)) = (args.next().as_deref(), args.next()) {
        PathBuf::from(dir)
    } else {
        eprintln!("usage: stash-testenv-cluster --dir <state-dir>");
        return ExitCode::from(2);
    };
    let run = dir.join("run");
    let _ = std::fs::remove_dir_all(&run);
    if let Err(e) = std::fs::create_dir_all(&run) {
        eprintln!(
            "stash-testenv-cluster: error: cannot create {}: {e}",
            run.display()
        );
        return ExitCode::FAILURE;
    }
    // Any panic here is fatal: kill every child by recorded PID first.
    process::install_panic_hook(run.join("logs"), true);
    let crds = stash_testenv::crds::dir();
    let install_crds = stash_testenv::crds::load(&crds).is_ok();
    if !install_crds {
        eprintln!(
            "stash-testenv-cluster: warning: no CRDs in {}; starting without them",
            crds.display()
        );
    }
    let env = match TestEnv::start(&Options {
        dir: Some(run.clone()),
        install_crds,
        pod_runner: true,
        // As on a real cluster: every pod acts with its service account, so the RBAC that
        // deploy/ and the operator grant is what the operator, sidecars and jobs get.
        pod_identity: stash_testenv::pod_runner::PodIdentity::ServiceAccount,
    }) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("stash-testenv-cluster: error: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let pushgateway = Pushgateway::start();
    if let Err(e) = install_operator(&env, &pushgateway.url()) {
        eprintln!("stash-testenv-cluster: error: installing the operator from deploy/: {e}");
        return ExitCode::FAILURE;
    }
    let pids = process::live_children()
        .iter()
        .fold(String::new(), |mut out, (pid, name)| {
            let _ = writeln!(out, "{pid} {name}");
            out
        });
    let line = format!(
        "export KUBECONFIG={}\nexport STASH_PUSHGATEWAY_URL={}\n",
        env.kubeconfig_path().display(),
        pushgateway.url()
    );
    let write = |name: &str, text: &str| -> std::io::Result<()> {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::File::create(&tmp)?.write_all(text.as_bytes())?;
        std::fs::rename(&tmp, dir.join(name))
    };
    if let Err(e) = write("pids", &pids).and_then(|()| write("env", &line)) {
        eprintln!(
            "stash-testenv-cluster: error: cannot write state files in {}: {e}",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    eprintln!(
        "stash-testenv-cluster: ready in {:.1}s at {} (node {}, logs in {}, Pushgateway {}, operator in kube-system)",
        env.started_in().as_secs_f64(),
        env.control_plane().api_url(),
        env.pod_runner().node_name(),
        env.control_plane().log_dir().display(),
        pushgateway.url()
    );

    wait_for_stop_signal();
    eprintln!("stash-testenv-cluster: stopping");
    let _ = std::fs::remove_file(dir.join("env"));
    drop(env);
    drop(pushgateway);
    let left = process::live_children();
    if !left.is_empty() {
        eprintln!("stash-testenv-cluster: error: still running after stop: {left:?}");
        return ExitCode::FAILURE;
    }
    let _ = std::fs::remove_file(dir.join("pids"));
    ExitCode::SUCCESS
}
