//! Stash's Prometheus metrics (spec §13) and the Pushgateway push.
//!
//! Backup and restore code builds gauges with [`backup`], [`restore`] and [`repository`] from
//! [`SessionLabels`] / [`TargetLabels`] and session status, and pushes them with
//! [`Pushgateway::push`] to the job [`job_name`] (`<lowercase invoker kind>-<namespace>-<name>`),
//! with "add" (`POST`) semantics: a push replaces only the metrics of the names it carries, so
//! hosts of one target push into their own group ([`Pushgateway::push_grouped`] with
//! `("hostname", host)`) or the last host's samples replace the others'.
//!
//! - All metrics are gauges. On failure only the `*_success` gauge is pushed, with value 0;
//!   durations, counts and times only on success.
//! - Host sizes, processing times and file counts are summed over the host's snapshots, parsed
//!   back from the status strings with [`stash_api::units`].
//! - Labels (§13.3): session `invoker_kind`, `invoker_name`, `namespace`, `driver`, `repository`
//!   (Restic only); target adds `kind`, `group`, `name`; host adds `hostname`. Repository
//!   metrics: `name`, `namespace`, `backend`, and `bucket`/`prefix` only when non-empty.
//! - The text format is written by hand ([`text_format`]), with label values escaped (`\\`, `\"`,
//!   `\n`): the names are built at run time in pairs, which `prometheus-client`'s registry of
//!   static names does not fit.
//!
//! ## Legacy and v2022 names
//!
//! Every gauge is pushed twice: under its legacy (community) `stash_` name and under the name
//! Stash v0.21 (v2022.06) added, with the same help, labels and value. The v2022 name swaps the
//! family prefix ([`metric::v2022_name`]):
//!
//! | legacy prefix | v2022 prefix | example |
//! |---|---|---|
//! | `stash_backup_session_` | `stash_appscode_com_backupsession_` | `stash_backup_session_success` → `stash_appscode_com_backupsession_success` |
//! | `stash_backup_` | `stash_appscode_com_backupsession_` | `stash_backup_host_files_new` → `stash_appscode_com_backupsession_host_files_new` |
//! | `stash_restore_session_` | `stash_appscode_com_restoresession_` | `stash_restore_session_duration_seconds` → `stash_appscode_com_restoresession_duration_seconds` |
//! | `stash_restore_` | `stash_appscode_com_restoresession_` | `stash_restore_target_success` → `stash_appscode_com_restoresession_target_success` |
//! | `stash_repository_` | `stash_appscode_com_repository_` | `stash_repository_size_bytes` → `stash_appscode_com_repository_size_bytes` |
//!
//! ```no_run
//! # async fn demo(stats: &stash_api::v1beta1::HostBackupStats) -> Result<(), stash_metrics::PushError> {
//! use stash_metrics::{Pushgateway, SessionLabels, TargetLabels, backup, job_name};
//! let session = SessionLabels {
//!     invoker_kind: "BackupConfiguration".into(),
//!     invoker_name: "deployment-backup".into(),
//!     namespace: "demo".into(),
//!     driver: "Restic".into(),
//!     repository: Some("gcs-repo".into()),
//! };
//! let target = TargetLabels { kind: "Deployment".into(), group: "apps".into(), name: "stash-demo".into() };
//! let gateway = Pushgateway::new("http://127.0.0.1:56789")?;
//! let job = job_name(&session.invoker_kind, &session.namespace, &session.invoker_name);
//! gateway.push(&job, &backup::host(&session, &target, stats)).await?;
//! # Ok(()) }
//! ```

pub mod backup;
pub mod labels;
pub mod metric;
pub mod pushgateway;
pub mod repository;
pub mod restore;
pub mod text_format;

pub use labels::{SessionLabels, TargetLabels, job_name};
pub use metric::{Metric, add_labels};
pub use pushgateway::{PushError, Pushgateway};
