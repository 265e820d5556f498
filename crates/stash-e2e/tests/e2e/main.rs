//! End-to-end tests against the real control plane of stash-testenv.
//!
//! One test binary, so one control plane for all of them (it starts once, in
//! `TestEnv::shared`). Needs `scripts/build-k8s` (the Kubernetes binaries),
//! `cargo build -p stash-cli` (the `stash` binary the pod runner executes) and
//! `deploy/crds/`; a missing one fails the tests with the command to run.

mod agent_create_backupsession;
mod control_plane;
mod job_runs_stash;
mod operator_backup_configuration;
mod operator_binary;
mod operator_webhook;
mod stash_examples;
mod status_subresource;
mod trigger_binary;

use std::time::Duration;

/// Generous: the machine has 2 cores shared with builds.
pub const TIMEOUT: Duration = Duration::from_mins(2);
