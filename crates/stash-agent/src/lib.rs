//! Code that runs inside pods started by the operator: one module per in-pod command.
//!
//! - [`create_backupsession`]: what the trigger CronJob runs on every tick (`stash create-backupsession
//!   --invoker-kind=… --invoker-name=…`, spec §9.1): create the BackupSession of the invoker (§5.2).
//!
//! - [`lease`]: taking turns on a Lease (backup leader election, one restorer at a time).
//!
//! - [`repository`]: a Repository and its storage Secret, read through the API, to an engine.
//!
//! - [`run_backup`]: the `stash` sidecar (`stash run-backup`, §8.4–§8.6): backs up its host for each
//!   BackupSession of its invoker and runs the post-backup actions when it finishes last.
//!
//! - [`restore`]: the `stash-init` init-container (`stash restore --invoker-kind=RestoreSession …`, §10).
//!
//! - [`backup_pvc`], [`restore_pvc`], [`update_status`]: the containers of the job model's backup and
//!   restore Jobs for standalone PersistentVolumeClaims (§11.1), which share [`job_output`].
//!
//! The CLI only parses Stash's flags and calls in here.

// Kind names (BackupConfiguration, BackupSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod backup_pvc;
pub mod create_backupsession;
pub mod job_output;
pub mod lease;
pub mod pod;
pub mod repository;
pub mod restore;
pub mod restore_pvc;
pub mod run_backup;
pub mod update_status;

pub use create_backupsession::{
    BackupSessionRef, CreateBackupSession, CreateBackupSessionError, InvokerKind,
};
pub use pod::namespace_from_env;
