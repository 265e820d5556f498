//! Code that runs inside pods started by the operator: one module per in-pod command.
//!
//! - [`create_backupsession`]: what the trigger CronJob runs on every tick (`stash create-backupsession
//!   --invoker-kind=… --invoker-name=…`, spec §9.1): create the BackupSession of the invoker (§5.2).
//!
//! - [`repository`]: a Repository and its storage Secret, read through the API, to an engine.
//!
//! - [`run_backup`]: the `stash` sidecar (`stash run-backup`, §8.4–§8.6): backs up its host for each
//!   BackupSession of its invoker and runs the post-backup actions when it finishes last.
//!
//! - [`restore`]: the `stash-init` init-container (`stash restore --invoker-kind=RestoreSession …`, §10).
//!
//! The CLI only parses Stash's flags and calls in here.

// Kind names (BackupConfiguration, BackupSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod create_backupsession;
pub mod pod;
pub mod repository;
pub mod restore;
pub mod run_backup;

pub use create_backupsession::{
    BackupSessionRef, CreateBackupSession, CreateBackupSessionError, InvokerKind,
};
pub use pod::namespace_from_env;
