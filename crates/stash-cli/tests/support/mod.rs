//! Shared helpers for the black-box tests: run the built `stash` and Debian's `restic`.
//! Generating and comparing trees, restic itself and the loopback servers (S3, REST) come from
//! `stash-testenv` (`tree`, `restic`, `s3`, `rest_server`), which the end-to-end tests share;
//! only what needs this crate's `stash` binary lives here. A missing tool fails the test with
//! the command that installs it; nothing is skipped.

#![allow(dead_code, unused_imports)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use stash_testenv::restic::{PASSWORD, require_tool};
pub use stash_testenv::tree::{self, is_root};
pub use stash_testenv::{rest_server, s3};

/// A scratch area for one test: repository, sources, restore targets, cache.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("stash-test-")
            .tempdir()
            .expect("create a temp dir");
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `stash` with the password and a private cache for this test.
    pub fn stash(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stash"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", self.path("cache"));
        cmd
    }

    /// Debian's `restic`, with the same password (cache in `restic-cache`, `HOME` here).
    pub fn restic(&self) -> Command {
        stash_testenv::restic::command(self.dir.path())
    }
}

/// Runs `cmd` and returns its output; panics with stdout/stderr if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("failed to start {cmd:?}: {e}"))
}

/// Runs `cmd`, asserts exit code 0, returns stdout.
#[track_caller]
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `cmd` and asserts its exit code; returns stderr.
#[track_caller]
pub fn exits_with(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: unexpected exit code\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The path under a restore target where restic puts a snapshot path.
pub fn restored(target: &Path, original: &Path) -> PathBuf {
    target.join(original.strip_prefix("/").expect("absolute path"))
}
