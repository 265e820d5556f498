//! The pure builders, checked from YAML: Stash's own example manifests go in, and what comes out is compared
//! with the committed snapshots in `tests/fixtures/expected/` (rewrite them with `UPDATE_EXPECT=1`).

// Kind names (BackupConfiguration, CronJob, ...) are prose in these docs, not code.
#![allow(clippy::doc_markdown)]

mod cronjob;
mod init_container;
mod rbac;
mod sidecar;
mod support;
