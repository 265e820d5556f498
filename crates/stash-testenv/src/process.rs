//! Child processes that never outlive the harness.
//!
//! Every child (etcd, kube-apiserver, kube-controller-manager, the `stash`
//! processes of the pod runner) is spawned through `setpriv --pdeathsig KILL`
//! from one dedicated, never-ending thread. `PR_SET_PDEATHSIG` fires when the
//! *thread* that forked the child exits, and the test harness runs each test on
//! its own short-lived thread, so spawning from a test thread would kill the
//! shared control plane as soon as the first test finishes. From the spawner
//! thread the signal fires only when the whole process goes away: normal exit
//! (statics are never dropped), a panic that ends the process, SIGINT, or even
//! SIGKILL of the test binary.
//!
//! On top of that, [`Proc`] stops its process on drop (SIGTERM, then SIGKILL
//! after a grace period), and [`install_panic_hook`] kills every registered
//! process on a panic where that is fatal. Only PIDs recorded here are ever
//! signalled, never processes found by name.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What to run: the binary, its arguments, environment and log file.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables (added to the inherited environment unless `clear_env`).
    pub env: Vec<(String, String)>,
    pub clear_env: bool,
    pub cwd: Option<PathBuf>,
    /// stdout and stderr both go to this file (appended).
    pub log: PathBuf,
}

impl Spec {
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        log: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            clear_env: false,
            cwd: None,
            log: log.into(),
        }
    }

    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// A running child process, stopped when dropped.
#[derive(Debug)]
pub struct Proc {
    name: String,
    pid: u32,
    log: PathBuf,
    child: Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("failed to open log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to start {program} (through setpriv --pdeathsig KILL; setpriv is in Debian's util-linux)"
    )]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the process spawner thread is gone")]
    SpawnerGone,
}

type Request = (Spec, mpsc::Sender<Result<Child, SpawnError>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("stash-testenv-spawner".into())
            .spawn(move || {
                // Lives as long as the process: the sender is in a static.
                for (spec, reply) in rx {
                    let _ = reply.send(spawn_here(&spec));
                }
                // Unreachable in practice; park so children keep their parent thread.
                loop {
                    std::thread::park();
                }
            })
            .expect("failed to start the stash-testenv spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_here(spec: &Spec) -> Result<Child, SpawnError> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(|source| SpawnError::Log {
            path: spec.log.clone(),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| SpawnError::Log {
        path: spec.log.clone(),
        source,
    })?;
    let mut cmd = Command::new("setpriv");
    cmd.arg("--pdeathsig")
        .arg("KILL")
        .arg("--")
        .arg(&spec.program)
        .args(&spec.args);
    if spec.clear_env {
        cmd.env_clear();
        // setpriv itself must be found.
        cmd.env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
        );
    }
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    cmd.spawn().map_err(|source| SpawnError::Spawn {
        program: spec.program.clone(),
        source,
    })
}

fn registry() -> &'static Mutex<BTreeMap<u32, String>> {
    static REG: OnceLock<Mutex<BTreeMap<u32, String>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// PIDs (and names) of every child currently alive under this harness.
#[must_use]
pub fn live_children() -> Vec<(u32, String)> {
    registry()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|(p, n)| (*p, n.clone()))
        .collect()
}

impl Proc {
    /// Start `spec` from the spawner thread.
    pub fn spawn(spec: Spec) -> Result<Self, SpawnError> {
        let (tx, rx) = mpsc::channel();
        let name = spec.name.clone();
        let log = spec.log.clone();
        spawner()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send((spec, tx))
            .map_err(|_| SpawnError::SpawnerGone)?;
        let child = rx.recv().map_err(|_| SpawnError::SpawnerGone)??;
        let pid = child.id();
        registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(pid, name.clone());
        Ok(Self {
            name,
            pid,
            log,
            child: Mutex::new(child),
            exit: Mutex::new(None),
        })
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status if the process has ended (reaps it).
    pub fn try_wait(&self) -> Option<ExitStatus> {
        let mut exit = self
            .exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if exit.is_none() {
            let mut child = self
                .child
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Ok(Some(status)) = child.try_wait() {
                *exit = Some(status);
                registry()
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&self.pid);
            }
        }
        *exit
    }

    /// The last `n` lines of the log, for error messages.
    #[must_use]
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }

    /// Sends `signal` unless the process has already been reaped.
    pub fn signal(&self, signal: Signal) {
        if self.try_wait().is_none() {
            let _ = kill(
                Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX)),
                signal,
            );
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; always reaps.
    pub fn stop(&self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.try_wait() {
            return Some(status);
        }
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(Signal::SIGKILL);
        let status = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .wait()
            .ok();
        *self
            .exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = status;
        registry()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.pid);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(10));
    }
}

pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Installs a panic hook (once per process; chains the previous hook).
///
/// With `kill_children` (the `stash-testenv-cluster` process, where any panic
/// is fatal), every registered child is killed by its recorded PID. Test
/// binaries pass `false`: the harness catches a test's panic and the other
/// tests still use the shared control plane, which `PR_SET_PDEATHSIG` removes
/// when the process ends; the hook then only says where the logs are.
pub fn install_panic_hook(log_dir: PathBuf, kill_children: bool) {
    static ONCE: Once = Once::new();
    ONCE.call_once(move || {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if kill_children {
                for (pid, _) in live_children() {
                    let _ = kill(
                        Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX)),
                        Signal::SIGKILL,
                    );
                }
            } else {
                eprintln!(
                    "stash-testenv: control plane and pod logs are in {}",
                    log_dir.display()
                );
            }
        }));
    });
}
