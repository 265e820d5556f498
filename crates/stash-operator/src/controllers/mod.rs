//! The reconcilers, one module per kind, each a pipeline dereference → validate → build → apply → status.

pub mod apply;
pub mod backup_configuration;
pub mod backup_session;
pub mod conditions;
pub mod deprecation;
pub mod restore_session;
