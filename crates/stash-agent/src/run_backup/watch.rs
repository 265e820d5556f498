//! The BackupSessions this sidecar reacts to (§5.2, §8.6 step 1): those of its invoker in the pod's
//! namespace, selected by the invoker labels, from a watch (not polling).

use futures::Stream;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use stash_api::labels;
use stash_api::v1beta1::BackupSession;

use crate::InvokerKind;

/// The label selector of the invoker's sessions.
#[must_use]
pub fn selector(invoker_kind: InvokerKind, invoker_name: &str) -> String {
    format!(
        "{}={},{}={invoker_name}",
        labels::LABEL_INVOKER_TYPE,
        invoker_kind.as_str(),
        labels::LABEL_INVOKER_NAME,
    )
}

/// Watch events of the invoker's sessions; the watch re-lists (with backoff) after errors.
pub fn sessions(
    api: Api<BackupSession>,
    invoker_kind: InvokerKind,
    invoker_name: &str,
) -> impl Stream<Item = Result<watcher::Event<BackupSession>, watcher::Error>> + Send {
    watcher(
        api,
        watcher::Config::default().labels(&selector(invoker_kind, invoker_name)),
    )
    .default_backoff()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_selected_by_the_invoker_labels_stash_puts_on_them() {
        assert_eq!(
            selector(InvokerKind::BackupConfiguration, "deployment-backup"),
            "stash.appscode.com/invoker-type=BackupConfiguration,stash.appscode.com/invoker-name=deployment-backup"
        );
    }
}
