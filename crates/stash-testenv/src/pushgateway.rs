//! A Prometheus Pushgateway on loopback: Debian's `prometheus-pushgateway` (installed by
//! `scripts/setup`), in memory, for tests of what stash pushes after a backup.
//!
//! ```no_run
//! use stash_testenv::pushgateway::Pushgateway;
//! let gateway = Pushgateway::start();
//! let url = gateway.url();                 // http://127.0.0.1:<port>: give it to the code under test
//! // ... the code under test pushes ...
//! assert!(gateway.metrics_text().contains("restic_repo_size_bytes"));
//! # let _ = url;
//! ```

use std::path::{Path, PathBuf};

use crate::process::Proc;
use crate::restic::find_on_path;
use crate::servers::{self, Launch};

/// Where Debian's package puts the binary.
pub const DEBIAN_BINARY: &str = "/usr/bin/prometheus-pushgateway";

/// How to install it (`scripts/setup` does it).
pub const INSTALL: &str = "apt-get install -y prometheus-pushgateway";

/// The pushgateway binary: [`DEBIAN_BINARY`], else `prometheus-pushgateway` or `pushgateway`
/// on `PATH`, else a panic with the install command.
#[must_use]
pub fn binary() -> PathBuf {
    let debian = PathBuf::from(DEBIAN_BINARY);
    if debian.is_file() {
        return debian;
    }
    find_on_path("prometheus-pushgateway")
        .or_else(|| find_on_path("pushgateway"))
        .unwrap_or_else(|| {
            panic!(
                "the Prometheus Pushgateway is not installed but this test needs it: run `scripts/setup` (or `{INSTALL}`)"
            )
        })
}

/// A running pushgateway on `127.0.0.1:<port>`, stopped when dropped.
#[derive(Debug)]
pub struct Pushgateway {
    port: u16,
    proc: Proc,
    // After `proc`: the process stops before its directory goes.
    dir: tempfile::TempDir,
}

impl Pushgateway {
    /// Starts one and waits until `/-/ready` answers. Panics with the install command if the
    /// binary is missing, or with its log if it does not answer.
    #[must_use]
    pub fn start() -> Self {
        let program = binary();
        let dir = servers::run_dir("pushgateway");
        let (proc, port) = servers::launch(&Launch {
            name: "prometheus-pushgateway",
            program,
            // Debian's default persists to /var/lib/prometheus/pushgateway.data: keep it in memory.
            args: vec![
                "--web.listen-address=127.0.0.1:{port}".into(),
                "--persistence.file=".into(),
            ],
            env: Some(vec![(
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )]),
            log: dir.path().join("pushgateway.log"),
            ready_path: Some("/-/ready"),
        });
        Self { port, proc, dir }
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, the address clients push to.
    #[must_use]
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the gateway exposes (`GET /metrics`, Prometheus text format): pushed
    /// groups, each series labelled with its `job` and grouping labels, plus the gateway's own
    /// metrics.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let response = servers::get(&format!("{}/metrics", self.url()))
            .unwrap_or_else(|e| panic!("GET /metrics: {e}\n{}", servers::describe(&self.proc)));
        assert!(
            response.is_success(),
            "GET /metrics answered {}: {}",
            response.status,
            response.text()
        );
        response.text()
    }

    /// The lines of [`Pushgateway::metrics_text`] for metric `name` (samples only, no
    /// `# HELP`/`# TYPE` lines).
    #[must_use]
    pub fn samples(&self, name: &str) -> Vec<String> {
        self.metrics_text()
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .map(str::to_owned)
            .collect()
    }

    /// Replaces the group of `job` with `body` (text format), as a client would:
    /// `PUT /metrics/job/<job>`. Panics unless the gateway accepts it.
    pub fn push(&self, job: &str, body: &str) {
        let url = format!("{}/metrics/job/{job}", self.url());
        let response = servers::request(
            "PUT",
            &url,
            &[("Content-Type", "text/plain; version=0.0.4")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("PUT {url}: {e}\n{}", servers::describe(&self.proc)));
        assert!(
            response.is_success(),
            "PUT {url} answered {}: {}",
            response.status,
            response.text()
        );
    }

    /// The gateway's log file.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }

    /// The run directory (log).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process, for tests of the harness itself.
    #[must_use]
    pub fn process(&self) -> &Proc {
        &self.proc
    }
}
