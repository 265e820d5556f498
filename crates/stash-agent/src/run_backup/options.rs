//! What the sidecar is told: its flags (§8.4, parsed by the CLI) and the pod's environment.

use std::path::PathBuf;

use stash_api::labels;

use crate::InvokerKind;

/// Everything `run-backup` needs to know before it talks to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunBackupOptions {
    /// `--invoker-kind` (v0.9: `--invoker-type`).
    pub invoker_kind: InvokerKind,
    /// `--invoker-name`; the invoker lives in the pod's namespace.
    pub invoker_name: String,
    /// The pod's namespace: where the invoker, its sessions and the Lease live.
    pub namespace: String,
    /// `--target-kind`, e.g. `Deployment`.
    pub target_kind: String,
    /// `--target-name`.
    pub target_name: String,
    /// `--target-namespace` (absent before v0.18: the pod's namespace).
    pub target_namespace: String,
    /// `POD_NAME` (downward API `metadata.name`).
    pub pod_name: String,
    /// `NODE_NAME` (downward API `spec.nodeName`); only DaemonSet hosts need it.
    pub node_name: Option<String>,
    /// `--enable-cache=false` turns the restic cache off; otherwise it lives here.
    pub cache_dir: Option<PathBuf>,
    /// `--max-connections` (0: the Repository's own setting).
    pub max_connections: usize,
    /// `--pushgateway-url` when `--metrics-enabled` is true and a URL is given.
    pub pushgateway_url: Option<String>,
}

impl RunBackupOptions {
    /// `POD_NAME` and `NODE_NAME` from the environment as the injected container sets them (§8.4).
    #[must_use]
    pub fn pod_env() -> (Option<String>, Option<String>) {
        let read = |var| std::env::var(var).ok().filter(|v: &String| !v.is_empty());
        (read(labels::ENV_POD_NAME), read(labels::ENV_NODE_NAME))
    }

    /// Where the restic cache lives when `--enable-cache` is on: under the sidecar's `tmp-dir`
    /// volume, which the operator mounts at `/tmp` (§8.4), so it survives container restarts.
    #[must_use]
    pub fn cache_dir_for(enable_cache: bool) -> Option<PathBuf> {
        enable_cache.then(|| std::env::temp_dir().join("stash-cache"))
    }

    /// The pushgateway to push to: none when metrics are off or no URL is given.
    #[must_use]
    pub fn pushgateway_for(metrics_enabled: bool, url: Option<&str>) -> Option<String> {
        url.map(str::trim)
            .filter(|url| metrics_enabled && !url.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_pushed_only_when_enabled_and_a_url_is_given() {
        assert_eq!(
            RunBackupOptions::pushgateway_for(true, Some("http://stash.kube-system.svc:56789")),
            Some("http://stash.kube-system.svc:56789".to_owned())
        );
        assert_eq!(
            RunBackupOptions::pushgateway_for(false, Some("http://a:1")),
            None
        );
        assert_eq!(RunBackupOptions::pushgateway_for(true, Some(" ")), None);
        assert_eq!(RunBackupOptions::pushgateway_for(true, None), None);
    }

    #[test]
    fn the_cache_is_off_when_enable_cache_is_false() {
        assert_eq!(RunBackupOptions::cache_dir_for(false), None);
        assert!(RunBackupOptions::cache_dir_for(true).is_some());
    }
}
