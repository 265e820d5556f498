//! The Warning Event for a target kind Stash dropped in v0.18 (a standalone ReplicaSet, §8.1): the
//! operator still handles it as Stash v0.17 did, and says so once per injection, the same way for a
//! BackupConfiguration's sidecar and a RestoreSession's init-container.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use crate::context::Context;
use crate::workload::Workload;

/// The Event's reason.
pub const DEPRECATED_TARGET: &str = "DeprecatedTarget";

/// The Event's message: what was done to `workload` for `invoker` and the fix.
#[must_use]
pub fn deprecated_target_note(invoker: &str, workload: &Workload, executor: &str) -> String {
    format!(
        "{invoker}: {workload} is a deprecated target (Stash v0.9-v0.17); the {executor} is injected into its pod template and its pods are restarted as Stash v0.17 did; target the Deployment (or StatefulSet/DaemonSet) that owns the pods instead"
    )
}

/// Publishes the Warning Event on `object` (the invoker) when `workload` is of a deprecated kind;
/// `executor` names what went into it. A failed publish is logged, never an error of the reconcile.
pub async fn warn_if_deprecated<K>(
    ctx: &Context,
    object: &K,
    invoker: &str,
    workload: &Workload,
    executor: &str,
) where
    K: Resource<DynamicType = ()>,
{
    if !workload.kind().is_deprecated() {
        return;
    }
    let event = Event {
        type_: EventType::Warning,
        reason: DEPRECATED_TARGET.to_owned(),
        note: Some(deprecated_target_note(invoker, workload, executor)),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(
            error = &err as &dyn std::error::Error,
            "failed to publish the {DEPRECATED_TARGET} event"
        );
    }
}
