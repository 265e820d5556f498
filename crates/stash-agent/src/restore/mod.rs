//! The `stash-init` init-container (`stash restore --invoker-kind=RestoreSession --invoker-name=…`,
//! §10): every pod of the target restores its own host from the Repository into the original
//! absolute paths before the workload's containers start, and reports it in the RestoreSession.
//!
//! - [`options`]: Stash's flags and the pod's environment.
//! - [`host`]: which host this pod restores (§8.5) and the Lease its pods take turns on.
//! - [`rules`]: which snapshots that host restores (§2.4).
//! - [`status`]: the host's `stats[]` entry.
//! - [`metrics`]: the host's gauges to the Pushgateway.
//! - [`run`](mod@run): the whole run, in that order.

pub mod host;
pub mod metrics;
pub mod options;
pub mod rules;
pub mod run;
pub mod status;

pub use options::{RestoreInvokerKind, RestoreOptions, TargetWorkload, UnknownRestoreInvokerKind};
pub use run::{Outcome, RestoreError, run};
