//! The restic-format repository engine of stash-rs.
//!
//! This is the only crate that names `rustic_core` / `rustic_backend` types. Everything above it
//! (CLI, agent, operator) speaks in the plain request/report types re-exported here.
//!
//! Every operation is an `async fn` on [`Engine`] taking a [`Control`] (a cancellation token and
//! an optional [`ProgressSink`]); the blocking rustic work runs under `spawn_blocking` inside.
//! Call it from a multi-threaded tokio runtime.

mod archiver;
mod backend;
mod backup;
mod cancel;
mod check;
mod cipher;
mod error;
mod index_compat;
mod location;
mod lock;
mod password;
mod pattern;
mod progress;
mod repair;
mod repo;
mod restore;
mod retention;
mod snapshots;
mod source;
mod stats;
mod walk_ahead;

pub use backend::{
    AzureCredentials, B2Credentials, BackendConfig, BackendError, Credentials, GcsCredentials,
    Provider, RestCredentials, S3Credentials, Secret, SwiftCredentials, TlsOptions, keys,
};
pub use backup::{BackupReport, BackupRequest, UnreadableEntry};
pub use check::{CheckReport, CheckRequest};
pub use error::{EngineError, Retry, RusticCause};
pub use location::RepositoryLocation;
pub use password::Password;
pub use progress::{Control, Operation, ProgressSink, ProgressUpdate};
pub use repair::{RepairIndexRequest, RepairSnapshotsReport, RepairSnapshotsRequest};
pub use repo::{Engine, InitOptions};
pub use restore::{RestoreFailure, RestoreReport, RestoreRequest};
pub use retention::{ForgetReport, PruneReport, RetentionPolicy};
pub use snapshots::{SnapshotFilter, SnapshotInfo};
pub use stats::RepositoryStats;
