//! Writing the objects the controllers own, one way for all of them: server-side apply with the
//! operator's field manager (forced, so a second reconcile of the same object changes nothing), a
//! whole-object replace of a workload guarded by its resourceVersion (the builders' injection and removal
//! are exactly what lands, and a conflict is retried by the controller), deletes that count an absent
//! object as deleted, and the pod restarts a standalone ReplicaSet needs after a template change.

use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stash_api::labels;

use crate::build::rbac::ExecutorRbac;
use crate::workload::Workload;

/// What the operator was doing to an object when it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Read,
    List,
    /// A whole-object replace; the text says what the change was for.
    Update(&'static str),
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Self::Apply => "patch",
            Self::Read => "get",
            Self::List => "list",
            Self::Update(_) => "update",
            Self::Delete => "delete",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Apply => f.write_str("apply"),
            Self::Read => f.write_str("read"),
            Self::List => f.write_str("list"),
            Self::Update(purpose) => write!(f, "update ({purpose})"),
            Self::Delete => f.write_str("delete"),
        }
    }
}

/// Writing (or reading) an object failed. The message names the object, what the API server said and
/// the fix, on one line: it goes into conditions and Events as it is.
#[derive(Debug, thiserror::Error)]
#[error("failed to {action} {kind} {object}: {}", explain(*.action, .kind, .error))]
pub struct ApplyError {
    pub action: Operation,
    pub kind: String,
    /// `namespace/name`, `name` for a cluster-scoped object, or what was listed.
    pub object: String,
    /// Not a `#[source]`: its message is already part of this one.
    pub error: kube::Error,
}

impl ApplyError {
    fn new(action: Operation, kind: &str, object: String, error: kube::Error) -> Self {
        Self {
            action,
            kind: kind.to_owned(),
            object,
            error,
        }
    }

    /// The API server refused the write because the object changed since it was read.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(&self.error, kube::Error::Api(status) if status.code == 409)
    }
}

/// What the API server said and what fixes it.
fn explain(action: Operation, kind: &str, error: &kube::Error) -> String {
    let kube::Error::Api(status) = error else {
        return format!("{error}; the API server could not be reached, the controller retries");
    };
    let said = &status.message;
    match status.code {
        403 => format!(
            "{said}; grant the operator's ClusterRole `{}` on {kind} (deploy/ or the Helm chart)",
            action.verb()
        ),
        404 => format!("{said}; create what it names, or correct the reference to it"),
        409 => format!("{said}; it changed since it was read, the controller retries"),
        400 | 422 => format!("{said}; correct the field the API server names"),
        code => format!("{said} ({code}); the controller retries"),
    }
}

fn in_namespace(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Server-side apply with the operator's field manager, taking over fields other managers set.
#[must_use]
pub fn apply_params() -> PatchParams {
    PatchParams::apply(labels::FIELD_MANAGER_OPERATOR).force()
}

/// Server-side applies a namespaced object (its metadata names the namespace).
pub async fn apply<K>(client: &Client, object: &K) -> Result<(), ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + fmt::Debug,
{
    let name = object.name_any();
    let namespace = object.namespace().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), &namespace)
        .patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|error| {
            ApplyError::new(
                Operation::Apply,
                &K::kind(&()),
                in_namespace(&namespace, &name),
                error,
            )
        })
}

/// Server-side applies a cluster-scoped object.
pub async fn apply_cluster<K>(client: &Client, object: &K) -> Result<(), ApplyError>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + fmt::Debug,
{
    let name = object.name_any();
    Api::<K>::all(client.clone())
        .patch(&name, &apply_params(), &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|error| ApplyError::new(Operation::Apply, &K::kind(&()), name, error))
}

/// Applies an executor's RBAC, roles before the bindings that name them.
pub async fn apply_rbac(client: &Client, rbac: &ExecutorRbac) -> Result<(), ApplyError> {
    if let Some(sa) = &rbac.service_account {
        apply(client, sa).await?;
    }
    apply_cluster(client, &rbac.cluster_role).await?;
    apply(client, &rbac.role_binding).await?;
    if let Some((role, binding)) = &rbac.repository_access {
        apply(client, role).await?;
        apply(client, binding).await?;
    }
    Ok(())
}

/// Reads namespaced object `namespace/name`, `None` when it does not exist.
pub async fn get_opt<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|error| {
            ApplyError::new(
                Operation::Read,
                &K::kind(&()),
                in_namespace(namespace, name),
                error,
            )
        })
}

/// Replaces `workload` as read (its resourceVersion guards against lost updates); `purpose` says what
/// the change was, for the error.
pub async fn update_workload(
    client: &Client,
    workload: &Workload,
    purpose: &'static str,
) -> Result<(), ApplyError> {
    let namespace = workload.namespace().unwrap_or_default().to_owned();
    let name = workload.name().to_owned();
    let pp = PostParams {
        field_manager: Some(labels::FIELD_MANAGER_OPERATOR.to_owned()),
        ..PostParams::default()
    };
    let result = match workload {
        Workload::Deployment(w) => Api::<Deployment>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::StatefulSet(w) => Api::<StatefulSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::DaemonSet(w) => Api::<DaemonSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
        Workload::ReplicaSet(w) => Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
            .replace(&name, &pp, w)
            .await
            .map(drop),
    };
    result.map_err(|error| {
        ApplyError::new(
            Operation::Update(purpose),
            workload.kind().as_str(),
            in_namespace(&namespace, &name),
            error,
        )
    })
}

/// Deletes namespaced object `namespace/name` in the background; one that is already gone counts as
/// deleted.
pub async fn delete_if_present<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(ApplyError::new(
            Operation::Delete,
            &K::kind(&()),
            in_namespace(namespace, name),
            error,
        )),
    }
}

/// Deletes the Repository Role `namespace/name` and its RoleBinding of the same name, if they exist.
pub async fn delete_repository_access(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ApplyError> {
    delete_if_present::<RoleBinding>(client, namespace, name).await?;
    delete_if_present::<Role>(client, namespace, name).await
}

/// Deletes the pods of a standalone ReplicaSet that do not match its pod template's executors and
/// hashes, as Stash v0.17 did (§8.3): a ReplicaSet never replaces a running pod after a template
/// change, and it creates the replacements from the new template. Other kinds roll by themselves;
/// nothing is done for them. Returns how many pods were deleted.
pub async fn restart_stale_pods(client: &Client, workload: &Workload) -> Result<usize, ApplyError> {
    let Workload::ReplicaSet(rs) = workload else {
        return Ok(0);
    };
    let Some(uid) = rs.metadata.uid.as_deref() else {
        return Ok(0);
    };
    let namespace = workload.namespace().unwrap_or_default().to_owned();
    let selector = rs
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let listed = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|error| {
            ApplyError::new(
                Operation::List,
                "Pod",
                format!("of {workload} (selector {selector})"),
                error,
            )
        })?;
    let mut restarted = 0;
    for pod in listed.items.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.owner_references().iter().any(|o| o.uid == uid)
            && !workload.pod_is_current(p)
    }) {
        delete_if_present::<Pod>(client, &namespace, &pod.name_any()).await?;
        tracing::info!(target = %workload, pod = %pod.name_any(), "deleted a pod created from the old pod template");
        restarted += 1;
    }
    Ok(restarted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_forbidden_apply_names_the_object_the_verb_and_where_to_grant_it() {
        let err = ApplyError::new(
            Operation::Apply,
            "Job",
            in_namespace("demo", "stash-restore-r-0"),
            api_error(403, "jobs.batch is forbidden"),
        );
        assert_eq!(
            err.to_string(),
            "failed to apply Job demo/stash-restore-r-0: jobs.batch is forbidden; grant the operator's ClusterRole `patch` on Job (deploy/ or the Helm chart)"
        );
        assert!(!err.is_conflict());
    }

    #[test]
    fn a_conflicting_workload_update_says_what_it_was_for_and_that_it_is_retried() {
        let err = ApplyError::new(
            Operation::Update("injecting the stash-init init-container"),
            "Deployment",
            in_namespace("demo", "app"),
            api_error(409, "the object has been modified"),
        );
        assert_eq!(
            err.to_string(),
            "failed to update (injecting the stash-init init-container) Deployment demo/app: the object has been modified; it changed since it was read, the controller retries"
        );
        assert!(err.is_conflict());
    }
}
