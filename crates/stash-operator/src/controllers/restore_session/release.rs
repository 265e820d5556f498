//! Deletion, the RBAC half (§6.2): the finalizer deletes what the operator created for a RestoreSession
//! and garbage collection would not remove with it.
//!
//! - Init-container model: the `stash-restore-init-container-<kind>-<workload>` RoleBinding and the
//!   `stash-restore-repository-…` Role and RoleBinding are named after the workload and owned by it, so
//!   every RestoreSession of the workload shares them (BackupConfigurations do not: theirs are
//!   `stash-sidecar-…`). They are deleted unless another live RestoreSession still restores into the
//!   workload (the Repository Role only if that one reads a Repository in the same namespace), as the
//!   BackupConfiguration controller does with the sidecar's RBAC.
//! - Job model (claim targets): the ServiceAccount, RoleBinding and Repository Role the RestoreSession
//!   owns go with it; only a Repository Role in another namespace cannot be owned, so it is deleted here.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use stash_api::v1beta1::RestoreSession;

use super::dereference::{repository_key, workload_key};
use crate::build::job::{restore_job_repository_access_name, restores_a_claim};
use crate::build::rbac::restore_init_container_rbac_names;
use crate::controllers::apply::{ApplyError, delete_if_present, delete_repository_access};
use crate::controllers::backup_configuration::release::another_needs;
use crate::invoker::RestoreInvoker;
use crate::workload::WorkloadKind;

/// Deleting a RestoreSession's RBAC failed.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "failed to list the RestoreSessions of namespace {namespace} to find those that still restore into {workload}"
    )]
    ListRestoreSessions {
        namespace: String,
        workload: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete the RBAC of the RestoreSession")]
    Delete {
        #[from]
        source: ApplyError,
    },
}

/// The workload a RestoreSession restores into with an init-container: kind, namespace, name.
type WorkloadKey = (WorkloadKind, String, String);

/// `rs`'s init-container target, if it has one.
fn init_container_target(rs: &RestoreSession) -> Option<WorkloadKey> {
    let uses_init_container = RestoreInvoker::Session(rs)
        .targets()
        .first()
        .is_some_and(crate::invoker::RestoreTargetInfo::uses_init_container);
    workload_key(rs).filter(|_| uses_init_container)
}

/// Whether `rs` (as it is now) still restores into `workload` with an init-container.
#[must_use]
pub fn still_restores(rs: &RestoreSession, workload: &WorkloadKey) -> bool {
    rs.metadata.deletion_timestamp.is_none() && init_container_target(rs).as_ref() == Some(workload)
}

/// Which of the shared init-container RBAC objects of `leaving`'s workload another RestoreSession of
/// `all` still needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StillNeeded {
    /// The `stash-restore-init-container` RoleBinding in the workload's namespace.
    pub binding: bool,
    /// The Repository Role and RoleBinding in `leaving`'s Repository namespace.
    pub repository_access: bool,
}

/// What another live RestoreSession still needs of the RBAC `leaving` shares with it.
#[must_use]
pub fn still_needed(
    leaving: &RestoreSession,
    workload: &WorkloadKey,
    all: &[Arc<RestoreSession>],
) -> StillNeeded {
    let repository_namespace = |rs: &RestoreSession| repository_key(rs).map(|(ns, _)| ns);
    StillNeeded {
        binding: another_needs(leaving, all, |other| still_restores(other, workload)),
        repository_access: another_needs(leaving, all, |other| {
            still_restores(other, workload)
                && repository_namespace(other) == repository_namespace(leaving)
        }),
    }
}

/// The RestoreSessions that could restore into `workload`: those in its namespace and in `rs`'s (v0.20+
/// targets may name another namespace).
async fn candidates(
    client: &Client,
    rs: &RestoreSession,
    workload: &WorkloadKey,
) -> Result<Vec<Arc<RestoreSession>>, ReleaseError> {
    let mut namespaces = vec![rs.namespace().unwrap_or_default()];
    if !namespaces.contains(&workload.1) {
        namespaces.push(workload.1.clone());
    }
    let mut out = Vec::new();
    for namespace in namespaces {
        let listed = Api::<RestoreSession>::namespaced(client.clone(), &namespace)
            .list(&ListParams::default())
            .await
            .map_err(|source| ReleaseError::ListRestoreSessions {
                namespace: namespace.clone(),
                workload: format!("{} {}/{}", workload.0, workload.1, workload.2),
                source,
            })?;
        out.extend(listed.items.into_iter().map(Arc::new));
    }
    Ok(out)
}

/// Deletes the RBAC of `rs` that nothing else needs; returns the names of what was deleted (or found
/// absent) for the log.
pub async fn release_rbac(
    client: &Client,
    rs: &RestoreSession,
) -> Result<Vec<String>, ReleaseError> {
    let namespace = rs.namespace().unwrap_or_default();
    let repository_namespace = repository_key(rs).map_or_else(|| namespace.clone(), |(ns, _)| ns);
    if restores_a_claim(rs) {
        if repository_namespace == namespace {
            return Ok(Vec::new());
        }
        let access = restore_job_repository_access_name(&namespace, &rs.name_any());
        delete_repository_access(client, &repository_namespace, &access).await?;
        return Ok(vec![format!(
            "Role+RoleBinding {repository_namespace}/{access}"
        )]);
    }
    let Some(workload) = init_container_target(rs) else {
        return Ok(Vec::new());
    };
    let (binding, access) = restore_init_container_rbac_names(workload.0, &workload.1, &workload.2);
    let needed = still_needed(rs, &workload, &candidates(client, rs, &workload).await?);
    let mut deleted = Vec::new();
    if !needed.binding {
        delete_if_present::<RoleBinding>(client, &workload.1, &binding).await?;
        deleted.push(format!("RoleBinding {}/{binding}", workload.1));
    }
    if !needed.repository_access {
        delete_repository_access(client, &repository_namespace, &access).await?;
        deleted.push(format!("Role+RoleBinding {repository_namespace}/{access}"));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml"
    );

    fn restore_session(name: &str, uid: &str, target: &str) -> Arc<RestoreSession> {
        let mut rs: RestoreSession = serde_yaml::from_str(EXAMPLE).unwrap();
        rs.metadata.name = Some(name.to_owned());
        rs.metadata.uid = Some(uid.to_owned());
        rs.spec
            .target
            .as_mut()
            .unwrap()
            .reference
            .as_mut()
            .unwrap()
            .name = target.to_owned();
        Arc::new(rs)
    }

    fn key(name: &str) -> WorkloadKey {
        (WorkloadKind::Deployment, "demo".to_owned(), name.to_owned())
    }

    #[test]
    fn the_restore_rbac_of_a_workload_is_kept_while_another_live_restore_session_restores_into_it()
    {
        let leaving = restore_session("first", "u1", "stash-recovered");
        let other = restore_session("second", "u2", "stash-recovered");
        let elsewhere = restore_session("third", "u3", "other");
        let workload = key("stash-recovered");
        assert_eq!(
            still_needed(
                &leaving,
                &workload,
                &[Arc::clone(&leaving), other, Arc::clone(&elsewhere)]
            ),
            StillNeeded {
                binding: true,
                repository_access: true
            }
        );
        assert_eq!(
            still_needed(&leaving, &workload, &[Arc::clone(&leaving), elsewhere]),
            StillNeeded {
                binding: false,
                repository_access: false
            }
        );
    }

    #[test]
    fn a_restore_session_being_deleted_needs_nothing_of_the_workload_it_restored() {
        let leaving = restore_session("first", "u1", "stash-recovered");
        let mut going = (*restore_session("second", "u2", "stash-recovered")).clone();
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let workload = key("stash-recovered");
        assert!(!still_restores(&going, &workload));
        assert!(!still_needed(&leaving, &workload, &[Arc::new(going)]).binding);
    }

    #[test]
    fn another_restore_session_reading_a_repository_elsewhere_keeps_only_the_binding() {
        let leaving = restore_session("first", "u1", "stash-recovered");
        let mut other = (*restore_session("second", "u2", "stash-recovered")).clone();
        other.spec.repository.as_mut().unwrap().namespace = Some("backups".to_owned());
        assert_eq!(
            still_needed(&leaving, &key("stash-recovered"), &[Arc::new(other)]),
            StillNeeded {
                binding: true,
                repository_access: false
            }
        );
    }
}
