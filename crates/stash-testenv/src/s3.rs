//! An S3 server on loopback: moto's `moto_server` (Python package `moto[server]`, installed by
//! `scripts/setup`), in memory, accepting any credentials.
//!
//! ```no_run
//! use stash_testenv::s3;
//! let server = s3::shared();                       // one per test binary
//! server.create_bucket("conformance");
//! let repo = server.repository("conformance", "stash/demo");
//! // repo == "s3:http://127.0.0.1:<port>/conformance/stash/demo"; give the client s3::env()
//! # let _ = repo;
//! ```

use std::path::Path;
use std::sync::OnceLock;

use crate::process::Proc;
use crate::restic::require_tool;
use crate::servers::{self, Launch};

/// How to install moto's server (`scripts/setup` does it).
pub const INSTALL: &str = "pip install 'moto[server]==5.*'";

/// Credentials moto accepts (it accepts any), as a client's environment.
pub const ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "stash-test"),
    ("AWS_SECRET_ACCESS_KEY", "stash-test-secret"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

/// [`ENV`] as owned pairs, for `Command::envs`.
#[must_use]
pub fn env() -> Vec<(&'static str, String)> {
    ENV.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// A running `moto_server` on `127.0.0.1:<port>`, stopped when dropped.
#[derive(Debug)]
pub struct S3Server {
    port: u16,
    proc: Proc,
    // Holds the log; after `proc` so the process stops first.
    dir: tempfile::TempDir,
}

/// The test binary's S3 server, started on first use and shared by all its tests (buckets
/// are the unit of separation). It ends with the test process.
pub fn shared() -> &'static S3Server {
    static SHARED: OnceLock<S3Server> = OnceLock::new();
    SHARED.get_or_init(S3Server::start)
}

impl S3Server {
    /// Starts a server of the caller's own. Panics with the install command if `moto_server`
    /// is missing, or with its log if it does not answer.
    #[must_use]
    pub fn start() -> Self {
        let program = require_tool("moto_server", INSTALL);
        let dir = servers::run_dir("s3");
        let (proc, port) = servers::launch(&Launch {
            name: "moto_server",
            program,
            args: vec![
                "-H".into(),
                "127.0.0.1".into(),
                "-p".into(),
                "{port}".into(),
            ],
            // pyenv shims need the inherited environment.
            env: None,
            log: dir.path().join("moto.log"),
            ready_path: None,
        });
        Self { port, proc, dir }
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The restic repository string for `prefix` in `bucket`:
    /// `s3:http://127.0.0.1:<port>/<bucket>/<prefix>`.
    #[must_use]
    pub fn repository(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3:{}/{bucket}/{}",
            self.endpoint(),
            prefix.trim_start_matches('/')
        )
    }

    /// Creates `bucket` (moto takes unsigned requests; an existing bucket is fine). Panics
    /// if the server refuses.
    pub fn create_bucket(&self, bucket: &str) {
        let url = format!("{}/{bucket}", self.endpoint());
        let response = servers::request("PUT", &url, &[], &[])
            .unwrap_or_else(|e| panic!("creating bucket {bucket}: {e}\n{}", self.describe()));
        assert!(
            response.is_success(),
            "creating bucket {bucket} failed: {} {}",
            response.status,
            response.text()
        );
    }

    /// The names of the objects in `bucket` (at most 1000; for assertions).
    #[must_use]
    pub fn list_objects(&self, bucket: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2", self.endpoint());
        let response = servers::get(&url)
            .unwrap_or_else(|e| panic!("listing bucket {bucket}: {e}\n{}", self.describe()));
        assert!(
            response.is_success(),
            "listing bucket {bucket} failed: {} {}",
            response.status,
            response.text()
        );
        response
            .text()
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }

    /// The server's log file.
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

    fn describe(&self) -> String {
        servers::describe(&self.proc)
    }
}
