//! `stash.appscode.com/v1alpha1` (Repository) and `repositories.stash.appscode.com/v1alpha1` (Snapshot).

pub mod repository;
pub mod snapshot;

pub use repository::{
    AllowedNamespaces, FromNamespaces, Repository, RepositoryReference, RepositorySpec,
    RepositoryStatus, UsagePolicy,
};
pub use snapshot::{Snapshot, SnapshotStatus};
