//! Stage 4: write the desired objects. The RBAC goes through server-side apply with the operator's field
//! manager; the workload is written only when it does not carry the init-container yet, as a whole-object
//! update guarded by its resourceVersion (a conflict is retried by the controller), exactly as the
//! BackupConfiguration controller writes its sidecar.

use kube::Client;
use kube::ResourceExt;
use stash_api::labels;
use stash_api::v1beta1::RestoreSession;

use super::build::Resources;
use crate::build::RESTORE_INVOKER_ANNOTATIONS;
use crate::controllers::apply::{ApplyError, apply_rbac, restart_stale_pods, update_workload};
use crate::invoker::RestoreInvokerKind;
use crate::workload::Workload;

/// What [`update_workload`] says it was for, putting `stash-init` in and taking it out.
pub const INJECTING_INIT_CONTAINER: &str = "injecting the stash-init init-container";
pub const REMOVING_INIT_CONTAINER: &str = "removing the stash-init init-container";

/// Stage 4 of the pipeline: RBAC before the init-container that runs under it. Returns whether the
/// workload was written.
pub async fn apply(client: &Client, resources: &Resources) -> Result<bool, ApplyError> {
    apply_rbac(client, &resources.rbac).await?;
    if resources.current {
        return Ok(false);
    }
    update_workload(client, &resources.workload, INJECTING_INIT_CONTAINER).await?;
    restart_stale_pods(client, &resources.workload).await?;
    Ok(true)
}

/// Whether the init-container in `workload` was put there for `rs` (per the last-applied annotations),
/// so deleting another RestoreSession never takes it out.
#[must_use]
pub fn injected_for(workload: &Workload, rs: &RestoreSession) -> bool {
    let Some((kind, name)) = RESTORE_INVOKER_ANNOTATIONS.recorded(workload) else {
        return false;
    };
    let namespace = workload
        .annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER)
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .and_then(|v| {
            v.pointer("/metadata/namespace")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .or_else(|| workload.namespace().map(str::to_owned));
    kind == RestoreInvokerKind::RestoreSession.as_str()
        && Some(name) == rs.metadata.name
        && namespace == rs.namespace()
}
