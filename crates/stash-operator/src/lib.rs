//! The stash-rs operator, a library that `stash operator` (alias `run`) starts: [`run`] with an
//! [`OperatorConfig`] and a shutdown token. It runs the BackupConfiguration controller
//! ([`controllers::backup_configuration`]), serves `/metrics`, `/healthz` and `/readyz`, and elects a
//! leader among replicas with a Lease.
//!
//! Underneath is the pure layer of pod-spec surgery shared by the mutating webhook and the controllers —
//! the backup sidecar, the restore init-container, the trigger CronJob and the RBAC they need — built from
//! the invoker, the Repository and the operator [`Settings`] without a client.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

pub mod build;
pub mod config;
pub mod context;
pub mod controllers;
pub mod invoker;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod snapshot_api;
pub mod webhook;
pub mod workload;

pub use config::{LeaderElection, OperatorConfig};
pub use invoker::{
    BackupInvoker, BackupInvokerKind, BackupTargetInfo, RestoreInvoker, RestoreInvokerKind,
    RestoreTargetInfo,
};
pub use runtime::{RunError, run, run_with_client};
pub use settings::Settings;
pub use tokio_util::sync::CancellationToken;
pub use workload::{Workload, WorkloadKind};
