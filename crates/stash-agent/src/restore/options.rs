//! What the `stash-init` init-container is told: Stash's `restore` flags (§10) and the pod's
//! environment (`POD_NAME`, `NODE_NAME`), gathered into one value the run works from.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use stash_api::labels;

/// The invoker whose restore the init-container performs (`--invoker-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreInvokerKind {
    RestoreSession,
}

impl RestoreInvokerKind {
    /// The kind as Stash writes it (`--invoker-kind`, metric labels, job names).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestoreSession => "RestoreSession",
        }
    }
}

impl fmt::Display for RestoreInvokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `--invoker-kind` names no restore invoker this agent restores.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownRestoreInvokerKind {
    #[error(
        "--invoker-kind=RestoreBatch: stash-rs's init-container restores RestoreSessions only; restore each member with its own RestoreSession"
    )]
    RestoreBatch,
    #[error("unknown invoker kind `{0}`; the init-container restores a RestoreSession")]
    Unknown(String),
}

impl FromStr for RestoreInvokerKind {
    type Err = UnknownRestoreInvokerKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "RestoreSession" => Ok(Self::RestoreSession),
            "RestoreBatch" => Err(UnknownRestoreInvokerKind::RestoreBatch),
            other => Err(UnknownRestoreInvokerKind::Unknown(other.to_owned())),
        }
    }
}

/// The workload the init-container runs in (`--target-kind`, `--target-name`, `--target-namespace`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetWorkload {
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// Everything one run of the init-container needs to know before it talks to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    pub invoker_kind: RestoreInvokerKind,
    pub invoker_name: String,
    /// Namespace of the invoker (the pod's).
    pub namespace: String,
    /// Empty fields fall back to the RestoreSession's `spec.target.ref`.
    pub target: TargetWorkload,
    /// Where restic's cache lives; `None` when `--enable-cache=false`.
    pub cache_dir: Option<PathBuf>,
    /// `--max-connections` (0: the Repository's own setting).
    pub max_connections: usize,
    /// The Pushgateway to push host metrics to; `None` when `--metrics-enabled=false`.
    pub pushgateway_url: Option<String>,
    /// `POD_NAME`: the StatefulSet ordinal and the leader-election identity.
    pub pod_name: Option<String>,
    /// `NODE_NAME`: the DaemonSet host name.
    pub node_name: Option<String>,
}

impl RestoreOptions {
    /// `POD_NAME` and `NODE_NAME` from the environment, as the operator sets them (§10); empty ones
    /// count as unset.
    #[must_use]
    pub fn with_pod_env(mut self) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        self.pod_name = var(labels::ENV_POD_NAME);
        self.node_name = var(labels::ENV_NODE_NAME);
        self
    }
}

/// The cache directory of an init-container: restic's `restic-cache` in the scratch directory
/// (`tmp-dir` is mounted at `/tmp`, or `$TMPDIR` outside a pod), unless another is named.
#[must_use]
pub fn cache_dir(enable_cache: bool, explicit: Option<PathBuf>) -> Option<PathBuf> {
    enable_cache.then(|| explicit.unwrap_or_else(|| std::env::temp_dir().join("restic-cache")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_session_is_the_kind_the_init_container_restores() {
        assert_eq!(
            "RestoreSession".parse::<RestoreInvokerKind>(),
            Ok(RestoreInvokerKind::RestoreSession)
        );
    }

    #[test]
    fn a_restore_batch_is_refused_with_what_to_do_instead() {
        let err = "RestoreBatch".parse::<RestoreInvokerKind>().unwrap_err();
        assert!(err.to_string().contains("its own RestoreSession"), "{err}");
        let err = "BackupConfiguration"
            .parse::<RestoreInvokerKind>()
            .unwrap_err();
        assert!(err.to_string().contains("BackupConfiguration"), "{err}");
    }

    #[test]
    fn the_cache_is_off_when_disabled_and_in_the_scratch_directory_otherwise() {
        assert_eq!(cache_dir(false, Some("/x".into())), None);
        assert_eq!(
            cache_dir(true, Some("/x".into())),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            cache_dir(true, None),
            Some(std::env::temp_dir().join("restic-cache"))
        );
    }
}
