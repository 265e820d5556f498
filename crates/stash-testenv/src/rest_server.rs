//! A restic REST server on loopback: `rustic-server` from the crates.io package `rustic_server`
//! (AGPL-3.0, used here only as a test tool, never linked), pinned to [`VERSION`] and built by
//! `scripts/setup` into `${STASH_TOOLS_CACHE:-$HOME/.cache/stash-rs/tools}/rustic_server-<VERSION>`.
//! restic's own rest-server is not used because it cannot be fetched here.
//!
//! ```no_run
//! use stash_testenv::rest_server::{Options, RestServer};
//! let open = RestServer::start(&Options::default().repo("demo"));
//! assert!(open.url("demo").starts_with("rest:http://anonymous:anonymous@127.0.0.1:")); // ends in /demo/
//! let locked = RestServer::start(&Options::default().repo("demo").basic_auth("stash", "s3cret"));
//! // rest:http://stash:s3cret@127.0.0.1:<port>/demo/
//! # let _ = locked.url("demo");
//! ```
//!
//! rustic-server only serves repositories its ACL names (it is always on, and without a
//! per-repository entry a user may only use the repository named like itself, append-only), so
//! every repository a test uses is declared up front with [`Options::repo`]; each gets full
//! access (`Modify`) for the one user (or for anyone, without basic auth). A repository is a
//! single path segment: `http://127.0.0.1:<port>/<repo>/`.
//!
//! Without basic auth the server runs with `--no-auth` and checks no password. rustic-server
//! 0.4.4 aborts, though, on a listing request that carries no `Authorization` header at all (an
//! `unwrap` in its `files_list.rs`), so the URLs of such a server still carry placeholder
//! credentials, [`ANONYMOUS`], which it accepts without checking. A server that died before
//! its handle dropped says so on stderr (shown with the failing test's output), with its log.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::Proc;
use crate::restic::find_on_path;
use crate::servers::{self, Launch};

/// The pinned `rustic_server` version (`scripts/setup` installs the same; a unit test checks).
pub const VERSION: &str = "0.4.4";

/// The binary's name in the package.
pub const BINARY: &str = "rustic-server";

/// The user and password in the URLs of a server without basic auth (see the module docs).
pub const ANONYMOUS: (&str, &str) = ("anonymous", "anonymous");

/// Where `scripts/setup` installs test tools built from crates.io:
/// `$STASH_TOOLS_CACHE`, default `$HOME/.cache/stash-rs/tools`.
#[must_use]
pub fn tools_dir() -> PathBuf {
    std::env::var_os("STASH_TOOLS_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/stash-rs/tools")
        },
        PathBuf::from,
    )
}

/// The install command `scripts/setup` runs.
#[must_use]
pub fn install_command() -> String {
    format!(
        "cargo install --locked --root {} rustic_server@{VERSION}",
        tools_dir()
            .join(format!("rustic_server-{VERSION}"))
            .display()
    )
}

/// `rustic-server`: the cached build of [`VERSION`], else one on `PATH`, else a panic that
/// says how to install it.
#[must_use]
pub fn binary() -> PathBuf {
    let cached = tools_dir()
        .join(format!("rustic_server-{VERSION}"))
        .join("bin")
        .join(BINARY);
    if cached.is_file() {
        return cached;
    }
    find_on_path(BINARY).unwrap_or_else(|| {
        panic!(
            "`{BINARY}` {VERSION} is not installed (looked at {} and on PATH) but this test needs it: \
             run `scripts/setup` (or `{}`; a few minutes)",
            cached.display(),
            install_command()
        )
    })
}

/// How to start a [`RestServer`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Repositories that may be used (single path segments).
    pub repos: Vec<String>,
    /// `Some((user, password))`: require HTTP basic auth (an htpasswd file is made for the
    /// one user); `None`: `--no-auth` (URLs then carry [`ANONYMOUS`]).
    pub basic_auth: Option<(String, String)>,
}

impl Options {
    /// Declares a repository (see the module docs).
    #[must_use]
    pub fn repo(mut self, name: impl Into<String>) -> Self {
        self.repos.push(name.into());
        self
    }

    /// Requires HTTP basic auth with this user and password (keep both to letters and
    /// digits: they are put in URLs as they are).
    #[must_use]
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }
}

/// A running `rustic-server` on `127.0.0.1:<port>` with a temporary data directory; stopped
/// and removed when dropped.
#[derive(Debug)]
pub struct RestServer {
    port: u16,
    opts: Options,
    proc: Proc,
    // After `proc`: the process stops before its data directory goes.
    dir: tempfile::TempDir,
}

impl RestServer {
    /// Starts a server (a few hundred milliseconds). Panics with the install command if the
    /// binary is missing, or with the server's log if it does not answer.
    #[must_use]
    pub fn start(opts: &Options) -> Self {
        for repo in &opts.repos {
            assert!(
                !repo.is_empty()
                    && repo != "health"
                    && repo
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !repo.starts_with('.'),
                "REST repository name {repo:?}: use one path segment of letters, digits, - _ ."
            );
        }
        let program = binary();
        let dir = servers::run_dir("rest");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("create the REST data directory");

        // Full access to each declared repository for the one user; without auth for
        // ANONYMOUS and for requests without credentials (user "").
        let users = match &opts.basic_auth {
            Some((user, _)) => vec![user.as_str()],
            None => vec![ANONYMOUS.0, ""],
        };
        let mut acl = String::new();
        for repo in &opts.repos {
            let _ = writeln!(acl, "[\"{repo}\"]");
            for user in &users {
                let _ = writeln!(acl, "\"{user}\" = \"Modify\"");
            }
        }
        let acl_path = dir.path().join("acl.toml");
        std::fs::write(&acl_path, acl).expect("write the REST server's acl.toml");

        let mut args = vec![
            "serve".to_owned(),
            "--listen".into(),
            "127.0.0.1:{port}".into(),
            "--path".into(),
            data.display().to_string(),
            // clap insists on `--private-repos` (on anyway) before it takes `--acl-path`.
            "--private-repos".into(),
            "--acl-path".into(),
            acl_path.display().to_string(),
        ];
        if let Some((user, password)) = &opts.basic_auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = clean_command(&program)
                .args(["auth", "add", "-f"])
                .arg(&htpasswd)
                .args(["-u", user, "-p", password])
                .output()
                .unwrap_or_else(|e| panic!("failed to run {} auth add: {e}", program.display()));
            assert!(
                out.status.success() && htpasswd.metadata().is_ok_and(|m| m.len() > 0),
                "{} auth add failed ({}):\n{}{}",
                program.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            args.extend(["--htpasswd-file".into(), htpasswd.display().to_string()]);
        } else {
            args.push("--no-auth".into());
        }

        let (proc, port) = servers::launch(&Launch {
            name: BINARY,
            program,
            args,
            // A clean environment: rustic-server shuts itself down after 3 s when `CI` is set,
            // and reads RUSTIC_SERVER_* settings.
            env: Some(base_env()),
            log: dir.path().join("rustic-server.log"),
            ready_path: Some("/health/live"),
        });
        Self {
            port,
            opts: opts.clone(),
            proc,
            dir,
        }
    }

    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The restic repository string: `rest:http://<user>:<password>@127.0.0.1:<port>/<repo>/`
    /// ([`ANONYMOUS`] without basic auth).
    /// Panics if `repo` was not declared in [`Options::repo`].
    #[must_use]
    pub fn url(&self, repo: &str) -> String {
        format!("rest:{}", self.http_url(repo))
    }

    /// The same without `rest:`, for plain HTTP requests ([`crate::servers::request`] turns
    /// the userinfo into basic auth). [`RestServer::base_url`] has no credentials.
    #[must_use]
    pub fn http_url(&self, repo: &str) -> String {
        assert!(
            self.opts.repos.iter().any(|r| r == repo),
            "repository {repo:?} was not declared with Options::repo (declared: {:?})",
            self.opts.repos
        );
        let (user, password) = self
            .opts
            .basic_auth
            .as_ref()
            .map_or(ANONYMOUS, |(u, p)| (u.as_str(), p.as_str()));
        format!("http://{user}:{password}@127.0.0.1:{}/{repo}/", self.port)
    }

    /// Panics with the log if the server is no longer running.
    #[track_caller]
    pub fn assert_running(&self) {
        if let Some(status) = self.proc.try_wait() {
            panic!(
                "{BINARY} on port {} exited ({status}); {}",
                self.port,
                servers::describe(&self.proc)
            );
        }
    }

    /// `http://127.0.0.1:<port>` (no credentials).
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory the repositories are stored in.
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Where `repo` is stored on disk (to inspect or corrupt it).
    #[must_use]
    pub fn repo_dir(&self, repo: &str) -> PathBuf {
        self.data_dir().join(repo)
    }

    /// The server's log file.
    #[must_use]
    pub fn log_path(&self) -> &Path {
        self.proc.log_path()
    }

    /// The process, for tests of the harness itself.
    #[must_use]
    pub fn process(&self) -> &Proc {
        &self.proc
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        if let Some(status) = self.proc.try_wait() {
            eprintln!(
                "{BINARY} on port {} had exited ({status}) before its handle dropped; {}",
                self.port,
                servers::describe(&self.proc)
            );
        }
    }
}

fn base_env() -> Vec<(String, String)> {
    let mut env = vec![(
        "PATH".to_owned(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
    )];
    if let Ok(home) = std::env::var("HOME") {
        env.push(("HOME".into(), home));
    }
    env
}

fn clean_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear().envs(base_env());
    cmd
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripts_setup_installs_the_pinned_version() {
        let setup = include_str!("../../../scripts/setup");
        let pinned = format!("rustic_server_version={}", super::VERSION);
        assert!(
            setup.lines().any(|l| l.trim() == pinned),
            "scripts/setup must have the line `{pinned}` (rest_server::VERSION)"
        );
    }
}
