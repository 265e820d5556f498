//! The stash-rs operator. So far: the pure layer of pod-spec surgery shared by the mutating webhook and
//! the controllers — the backup sidecar, the restore init-container, the trigger CronJob and the RBAC they
//! need — built from the invoker, the Repository and the operator [`Settings`] without a client.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod build;
pub mod invoker;
pub mod settings;
pub mod workload;

pub use invoker::{
    BackupInvoker, BackupInvokerKind, BackupTargetInfo, RestoreInvoker, RestoreInvokerKind,
    RestoreTargetInfo,
};
pub use settings::Settings;
pub use workload::{Workload, WorkloadKind};
