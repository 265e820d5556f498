//! The reconcilers, one module per kind, each a pipeline dereference → validate → build → apply → status.

pub mod backup_configuration;
pub mod restore_session;
