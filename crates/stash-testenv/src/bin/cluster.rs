//! `stash-testenv-cluster --dir <state-dir>`: the test control plane and pod
//! runner for a person, in the foreground until SIGTERM or SIGINT.
//! `scripts/cluster up` runs it in the background.
//!
//! Writes into the state directory: `env` (one line, `export KUBECONFIG=…`,
//! written once ready), `pids` (`<pid> <name>` of every process it started),
//! and the run directory `run/` (kubeconfig, certificates, `logs/`, `node/`).

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use stash_testenv::{Options, TestEnv, error_chain, process};

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
    }) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("stash-testenv-cluster: error: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let pids = process::live_children()
        .iter()
        .fold(String::new(), |mut out, (pid, name)| {
            let _ = writeln!(out, "{pid} {name}");
            out
        });
    let line = format!("export KUBECONFIG={}\n", env.kubeconfig_path().display());
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
        "stash-testenv-cluster: ready in {:.1}s at {} (node {}, logs in {})",
        env.started_in().as_secs_f64(),
        env.control_plane().api_url(),
        env.pod_runner().node_name(),
        env.control_plane().log_dir().display()
    );

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
    eprintln!("stash-testenv-cluster: stopping");
    let _ = std::fs::remove_file(dir.join("env"));
    drop(env);
    let left = process::live_children();
    if !left.is_empty() {
        eprintln!("stash-testenv-cluster: error: still running after stop: {left:?}");
        return ExitCode::FAILURE;
    }
    let _ = std::fs::remove_file(dir.join("pids"));
    ExitCode::SUCCESS
}
