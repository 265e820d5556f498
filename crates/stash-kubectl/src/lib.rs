//! The verbs of `kubectl stash`: the `stash` binary installed as `kubectl-stash` on the `PATH`
//! (kubectl's plugin convention), so kubectl runs `kubectl-stash <verb> …`.
//!
//! Every verb reads its objects through the API as kubectl does (`KUBECONFIG`, the context's
//! namespace unless `-n/--namespace`); the repository verbs read the Repository and its storage
//! Secret and reach the restic repository through the engine, so no restic, docker or pod is needed.
//!
//! | Verb | What it does |
//! |---|---|
//! | `kubectl stash trigger <backupconfiguration> [--no-wait] [--timeout=30m]` | creates a BackupSession now, exactly as the trigger CronJob does, and watches it until it is final: prints the phase and each host; exits non-zero for Failed or Skipped naming why |
//! | `kubectl stash pause backup --backupconfig=<name>` | sets `spec.paused: true` (`--backupbatch=<name>` for a BackupBatch); the operator suspends the trigger CronJob |
//! | `kubectl stash resume backup --backupconfig=<name>` | sets `spec.paused: false` |
//! | `kubectl stash snapshots <repository> [--json]` | lists the snapshots as `restic snapshots` does |
//! | `kubectl stash unlock <repository> [--remove-all]` | removes stale locks (every lock with `--remove-all`) |
//! | `kubectl stash check <repository> [--read-data]` | verifies the repository as `restic check` does |
//! | `kubectl stash download <repository> --snapshots=<id>,… --destination=<dir>` | restores each snapshot into `<dir>/<id>` on this machine |
//! | `kubectl stash version` | prints the plugin's version |
//!
//! A `local` backend is opened at its `spec.backend.local.mountPath` on the machine running the
//! plugin (the path the pods mount), so it works where that path is reachable.

// Kind names (BackupConfiguration, Repository, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod check;
pub mod download;
pub mod error;
pub mod pause;
pub mod repository;
pub mod session_summary;
pub mod snapshots;
pub mod trigger;
pub mod unlock;
pub mod version;

pub use error::KubectlError;
