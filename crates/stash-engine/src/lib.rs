//! The restic-format repository engine of stash-rs.
//!
//! This is the only crate that names `rustic_core` / `rustic_backend` types. Everything above it
//! (CLI, agent, operator) speaks in the plain request/report types re-exported here.
//! The API is blocking, like `rustic_core`'s (rayon inside); async callers wrap it in
//! `spawn_blocking`.

mod backend;
mod backup;
mod check;
mod error;
mod location;
mod lock;
mod password;
mod pattern;
mod progress;
mod repo;
mod restore;
mod retention;
mod snapshots;
mod source;
mod stats;

pub use backend::{
    AzureCredentials, B2Credentials, BackendConfig, BackendError, Credentials, GcsCredentials,
    Provider, RestCredentials, S3Credentials, Secret, SwiftCredentials, TlsOptions, keys,
};
pub use backup::{BackupReport, BackupRequest, UnreadableEntry};
pub use check::{CheckReport, CheckRequest};
pub use error::{EngineError, Retry};
pub use location::RepositoryLocation;
pub use lock::release_all as release_held_locks;
pub use password::Password;
pub use progress::Progress;
pub use repo::{Engine, InitOptions};
pub use restore::{RestoreReport, RestoreRequest};
pub use retention::{ForgetReport, PruneReport, RetentionPolicy};
pub use snapshots::{SnapshotFilter, SnapshotInfo};
pub use stats::RepositoryStats;
