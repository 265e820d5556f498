//! Stash API types (`stash.appscode.com` v1alpha1/v1beta1), the CRDs generated from them and the offline
//! validation shared by `stash validate` and the admission webhook.
//!
//! No client and no async runtime here: these types are the contract between operator, agent and CLI.

// Kind names (BackupConfiguration, RestoreSession, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]
// kube's `CustomResource` derive takes repeated `printcolumn`/`category` attributes by design.
#![allow(clippy::duplicated_attributes)]

pub mod common;
pub mod condition;
pub mod crd;
pub mod labels;
pub mod phase;
pub mod units;
pub mod v1alpha1;
pub mod v1beta1;
pub mod validation;

pub use validation::{Diagnostic, Document, Severity, StashObject, Validation, validate_manifests};
