//! Debian's `restic`, the reference client that stash's repositories must stay readable by,
//! and [`require_tool`], which turns a missing tool into a panic that says how to install it
//! (tests never skip themselves).
//!
//! ```no_run
//! use stash_testenv::restic;
//! # let scratch = std::path::Path::new("/tmp/x");
//! let out = restic::command(scratch)          // RESTIC_PASSWORD = restic::PASSWORD
//!     .args(["-r", "/tmp/x/repo", "snapshots", "--json"])
//!     .output()
//!     .unwrap();
//! # let _ = out;
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository password every black-box test uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// How to install restic (`scripts/setup` does it).
pub const INSTALL: &str = "apt-get install -y restic";

/// Finds `tool` on `PATH` or panics with how to install it (`scripts/setup` installs every
/// tool the tests use; `install` is the single command for this one).
#[must_use]
pub fn require_tool(tool: &str, install: &str) -> PathBuf {
    find_on_path(tool).unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed but this test needs it: run `scripts/setup` (or `{install}`)"
        )
    })
}

/// `tool` in a directory of `PATH`, if it is there.
#[must_use]
pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// The `restic` binary (panics with the install command when missing).
#[must_use]
pub fn binary() -> PathBuf {
    require_tool("restic", INSTALL)
}

/// `restic` with [`PASSWORD`], a cache of its own in `<dir>/restic-cache` and `HOME=<dir>`,
/// and otherwise only `PATH` from the environment (no `RESTIC_*` or `AWS_*` leaks in).
#[must_use]
pub fn command(dir: &Path) -> Command {
    command_with_password(dir, PASSWORD)
}

/// [`command`] with another password.
#[must_use]
pub fn command_with_password(dir: &Path, password: &str) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RESTIC_PASSWORD", password)
        .env("RESTIC_CACHE_DIR", dir.join("restic-cache"))
        .env("HOME", dir);
    cmd
}

/// restic's version, e.g. `0.14.0`.
#[must_use]
pub fn version() -> String {
    let out = Command::new(binary())
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("failed to run restic version: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}
