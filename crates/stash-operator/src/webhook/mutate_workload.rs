//! The workload mutating webhook (§8.3): on CREATE/UPDATE of a Deployment, StatefulSet, DaemonSet or
//! ReplicaSet, inject the `stash` sidecar of the newest BackupConfiguration that targets it and the
//! `stash-init` init-container of the newest RestoreSession that targets it, with the same builders the
//! controller patches workloads with. The webhook runs with `failurePolicy: Ignore` and never blocks a
//! workload: every problem is a warning on an allowed response.

use std::sync::Arc;

use kube::ResourceExt;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;
use stash_api::common::RepositoryRef;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupConfiguration, RestoreSession};

use crate::build::init_container::inject_init_container_into_workload;
use crate::build::sidecar::inject_sidecar_into_workload;
use crate::controllers::backup_configuration::build::is_subset;
use crate::controllers::backup_configuration::validate::winner;
use crate::invoker::{BackupInvoker, RestoreInvoker};
use crate::settings::Settings;
use crate::workload::{APPS_V1, Workload, WorkloadKind};

/// The invokers (and the Repositories they name) the webhook decides with: those in the workload's
/// namespace, plus any Repository in another namespace that one of them names.
#[derive(Clone, Debug, Default)]
pub struct NamespaceInvokers {
    pub backup_configurations: Vec<Arc<BackupConfiguration>>,
    pub restore_sessions: Vec<Arc<RestoreSession>>,
    pub repositories: Vec<Arc<Repository>>,
}

impl NamespaceInvokers {
    /// The Repository `namespace/name`, if listed.
    #[must_use]
    pub fn repository(&self, namespace: &str, name: &str) -> Option<&Repository> {
        self.repositories
            .iter()
            .map(AsRef::as_ref)
            .find(|r| r.name_any() == name && r.namespace().as_deref() == Some(namespace))
    }
}

/// `reference` as (namespace, name), the namespace defaulted to the invoker's.
#[must_use]
pub fn repository_key(reference: &RepositoryRef, invoker_namespace: &str) -> (String, String) {
    let namespace = reference
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| invoker_namespace.to_owned());
    (namespace, reference.name.clone())
}

/// Whether the webhook handles objects of this request's kind (`apps/v1` workloads).
#[must_use]
pub fn is_workload_request(request: &AdmissionRequest<DynamicObject>) -> bool {
    request.kind.group == "apps" && WorkloadKind::from_kind(&request.kind.kind).is_some()
}

/// The admission decision for one workload: always allowed; a JSON patch when the sidecar or the
/// init-container is to be injected (none when the workload already carries them); problems as warnings.
#[must_use]
pub fn mutate_workload(
    request: &AdmissionRequest<DynamicObject>,
    invokers: &NamespaceInvokers,
    settings: &Settings,
) -> AdmissionResponse {
    let mut warnings = Vec::new();
    let mut response = AdmissionResponse::from(request);
    if let Some((before, after)) = mutate(request, invokers, settings, &mut warnings) {
        let patch = json_patch::diff(&before, &after);
        if !patch.0.is_empty() {
            response = match AdmissionResponse::from(request).with_patch(patch) {
                Ok(patched) => patched,
                Err(err) => {
                    warnings.push(format!("stash: cannot serialize the patch: {err}"));
                    response
                }
            };
        }
    }
    if !warnings.is_empty() {
        for warning in &warnings {
            tracing::warn!(uid = %request.uid, "{warning}");
        }
        response.warnings = Some(warnings);
    }
    response
}

/// The workload as received and as it is to be admitted, serialized by the same serializer.
fn mutate(
    request: &AdmissionRequest<DynamicObject>,
    invokers: &NamespaceInvokers,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Option<(Value, Value)> {
    if !matches!(request.operation, Operation::Create | Operation::Update)
        || !is_workload_request(request)
    {
        return None;
    }
    let object = request.object.as_ref()?;
    let mut value = match serde_json::to_value(object) {
        Ok(value) => value,
        Err(err) => {
            warnings.push(format!(
                "stash: cannot read the {}: {err}",
                request.kind.kind
            ));
            return None;
        }
    };
    if let Some(map) = value.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(APPS_V1.to_owned()));
        map.entry("kind")
            .or_insert_with(|| Value::String(request.kind.kind.clone()));
    }
    let mut workload = match Workload::from_value(value) {
        Ok(workload) => workload,
        Err(err) => {
            warnings.push(format!(
                "stash: cannot read the {}: {err}",
                request.kind.kind
            ));
            return None;
        }
    };
    if workload.namespace().is_none_or(str::is_empty) {
        workload
            .metadata_mut()
            .namespace
            .clone_from(&request.namespace);
    }
    // Its pod template is the Deployment's: Stash v0.17 ignored such ReplicaSets (§8.1).
    if workload.managing_deployment().is_some() {
        return None;
    }
    let before = workload.to_value();
    inject_backup(&mut workload, invokers, settings, warnings);
    inject_restore(&mut workload, invokers, settings, warnings);
    Some((before, workload.to_value()))
}

/// The sidecar of the newest live BackupConfiguration whose target is this workload, if any.
fn inject_backup(
    workload: &mut Workload,
    invokers: &NamespaceInvokers,
    settings: &Settings,
    warnings: &mut Vec<String>,
) {
    let contenders: Vec<Arc<BackupConfiguration>> = invokers
        .backup_configurations
        .iter()
        .filter(|bc| {
            bc.metadata.deletion_timestamp.is_none()
                && BackupInvoker::Configuration(bc)
                    .target_for(workload)
                    .is_some_and(|t| t.uses_sidecar())
        })
        .cloned()
        .collect();
    let Some(bc) = winner(&contenders) else {
        return;
    };
    let invoker = BackupInvoker::Configuration(bc);
    let Some(target) = invoker.target_for(workload) else {
        return;
    };
    let Some(repository) = find_repository(invoker.repository(), invoker.namespace(), invokers)
    else {
        warnings.push(format!(
            "stash: {invoker} names a Repository that does not exist; the sidecar is injected once it does"
        ));
        return;
    };
    let mut patched = workload.clone();
    match inject_sidecar_into_workload(&mut patched, &target, repository, settings) {
        Ok(()) => {
            // Everything the injection sets is already there (possibly with API-server defaults).
            if !is_subset(&patched.to_value(), &workload.to_value()) {
                *workload = patched;
            }
            if workload.kind().is_deprecated() {
                warnings.push(format!(
                    "stash: {invoker} targets {workload}, a deprecated target (Stash v0.9-v0.17): the sidecar is injected as Stash v0.17 did; target the Deployment that owns the pods instead"
                ));
            }
        }
        Err(err) => warnings.push(format!("stash: not injecting the sidecar: {err}")),
    }
}

/// The init-container of the newest live RestoreSession whose target is this workload, if any.
fn inject_restore(
    workload: &mut Workload,
    invokers: &NamespaceInvokers,
    settings: &Settings,
    warnings: &mut Vec<String>,
) {
    let Some(rs) = invokers
        .restore_sessions
        .iter()
        .map(AsRef::as_ref)
        .filter(|rs| {
            rs.metadata.deletion_timestamp.is_none()
                && RestoreInvoker::Session(rs)
                    .target_for(workload)
                    .is_some_and(|t| t.uses_init_container())
        })
        .max_by(|a, b| {
            let created = |rs: &RestoreSession| {
                rs.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_nanosecond())
            };
            created(a)
                .cmp(&created(b))
                .then_with(|| b.name_any().cmp(&a.name_any()))
        })
    else {
        return;
    };
    let invoker = RestoreInvoker::Session(rs);
    let Some(target) = invoker.target_for(workload) else {
        return;
    };
    let Some(repository) = find_repository(invoker.repository(), invoker.namespace(), invokers)
    else {
        warnings.push(format!(
            "stash: {invoker} names a Repository that does not exist; the init-container is injected once it does"
        ));
        return;
    };
    let mut patched = workload.clone();
    match inject_init_container_into_workload(&mut patched, &target, repository, settings) {
        Ok(()) => {
            if !is_subset(&patched.to_value(), &workload.to_value()) {
                *workload = patched;
            }
        }
        Err(err) => warnings.push(format!("stash: not injecting the init-container: {err}")),
    }
}

fn find_repository<'a>(
    reference: Option<&RepositoryRef>,
    invoker_namespace: &str,
    invokers: &'a NamespaceInvokers,
) -> Option<&'a Repository> {
    let (namespace, name) = repository_key(reference?, invoker_namespace);
    invokers.repository(&namespace, &name)
}
