//! RBAC for the executors (§8.3, §9.1, §15): the ClusterRoles keep Stash's names (`stash-sidecar`,
//! `stash-restore-init-container`, `stash-cron-job`) so existing bindings and audits still read the same,
//! but hold only what each executor does. Stash's wildcard on the stash API groups and its Secret access
//! are replaced by a Role that reads exactly one Repository and its storage Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::Value;
use stash_api::labels;
use stash_api::v1alpha1::Repository;

use super::cronjob::{trigger_cronjob_name, trigger_labels, trigger_service_account_name};
use super::{MAX_NAME_LENGTH, managed_labels, valid_name_with_prefix_and_suffix};
use crate::invoker::BackupInvoker;
use crate::settings::Settings;
use crate::workload::{Workload, WorkloadKind};

pub const SIDECAR_CLUSTER_ROLE: &str = "stash-sidecar";
pub const RESTORE_INIT_CONTAINER_CLUSTER_ROLE: &str = "stash-restore-init-container";
pub const CRON_JOB_CLUSTER_ROLE: &str = "stash-cron-job";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Building RBAC failed; each message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildRbacError {
    #[error(
        "{object} has no metadata.uid; build its RBAC from the object as stored by the API server, so the bindings are garbage-collected with it"
    )]
    MissingUid { object: String },
    #[error(
        "Repository {repository} has no spec.backend.storageSecretName; name the Secret that holds RESTIC_PASSWORD"
    )]
    MissingStorageSecret { repository: String },
}

/// What one executor needs to run: a binding of its ClusterRole to the pod's service account, and read
/// access to its Repository and Secret in the Repository's namespace.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorRbac {
    /// Only when stash owns the service account (the trigger CronJob's); workloads keep their own.
    pub service_account: Option<ServiceAccount>,
    pub cluster_role: ClusterRole,
    /// Binds `cluster_role` to the service account in the executor's namespace.
    pub role_binding: RoleBinding,
    /// Exactly one Repository and its storage Secret (absent for the CronJob, which reads neither).
    pub repository_access: Option<(Role, RoleBinding)>,
}

impl ExecutorRbac {
    /// The objects in apply order (roles before the bindings that name them).
    #[must_use]
    pub fn objects(&self) -> Vec<Value> {
        let to_value =
            |v: serde_json::Result<Value>| v.expect("k8s-openapi types always serialize");
        let mut out = Vec::new();
        if let Some(sa) = &self.service_account {
            out.push(to_value(serde_json::to_value(sa)));
        }
        out.push(to_value(serde_json::to_value(&self.cluster_role)));
        out.push(to_value(serde_json::to_value(&self.role_binding)));
        if let Some((role, binding)) = &self.repository_access {
            out.push(to_value(serde_json::to_value(role)));
            out.push(to_value(serde_json::to_value(binding)));
        }
        out
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |s: &[&str]| s.iter().map(|&s| s.to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..PolicyRule::default()
    }
}

pub(crate) fn named_rule(group: &str, resource: &str, name: &str, verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(vec![name.to_owned()]),
        ..rule(&[group], &[resource], verbs)
    }
}

/// Leader election (§8.6): a ConfigMap lock up to v0.20, ConfigMap+Lease from v0.21; events for the
/// session's progress. Both in-pod executors need these.
fn in_pod_executor_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[""], &["pods"], &["get"]),
        rule(&[""], &["pods/exec"], &["create"]),
        rule(&[""], &["configmaps"], &["get", "create", "update"]),
        // kube-lease-manager watches its Lease and takes, renews and releases it by patch.
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["get", "list", "watch", "create", "update", "patch"],
        ),
        rule(&[""], &["events"], &["create"]),
    ]
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                labels::LABEL_MANAGED_BY.to_owned(),
                labels::MANAGED_BY.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
        aggregation_rule: None,
    }
}

/// `stash-sidecar`: watch and update this namespace's BackupSessions, read the invokers and the workload,
/// run hooks (pods/exec), elect a leader, record events.
#[must_use]
pub fn sidecar_cluster_role() -> ClusterRole {
    let mut rules = vec![
        rule(
            &[labels::GROUP],
            &["backupsessions"],
            &["get", "list", "watch", "patch", "update"],
        ),
        rule(
            &[labels::GROUP],
            &["backupsessions/status"],
            &["get", "patch", "update"],
        ),
        rule(
            &[labels::GROUP],
            &["backupconfigurations", "backupbatches"],
            &["get", "list", "watch"],
        ),
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            &["get"],
        ),
    ];
    rules.extend(in_pod_executor_rules());
    cluster_role(SIDECAR_CLUSTER_ROLE, rules)
}

/// `stash-restore-init-container`: read the restore invoker and write its status, run hooks, elect a leader.
#[must_use]
pub fn restore_init_container_cluster_role() -> ClusterRole {
    let mut rules = vec![
        rule(
            &[labels::GROUP],
            &["restoresessions", "restorebatches"],
            &["get", "list", "watch"],
        ),
        rule(
            &[labels::GROUP],
            &["restoresessions/status", "restorebatches/status"],
            &["get", "patch", "update"],
        ),
    ];
    rules.extend(in_pod_executor_rules());
    cluster_role(RESTORE_INIT_CONTAINER_CLUSTER_ROLE, rules)
}

/// `stash-cron-job`: read the invoker and its target, create the BackupSession. `psp` names the
/// PodSecurityPolicies the pod may use (Stash's `--cron-job-psp`; none on clusters without PSP).
#[must_use]
pub fn cron_job_cluster_role(psp: &[String]) -> ClusterRole {
    let mut rules = vec![
        rule(
            &[labels::GROUP],
            &["backupsessions"],
            &["get", "list", "create"],
        ),
        rule(
            &[labels::GROUP],
            &["backupconfigurations", "backupbatches"],
            &["get"],
        ),
        rule(&[""], &["events"], &["create"]),
        rule(
            &["apps"],
            &["deployments", "statefulsets", "daemonsets"],
            &["get"],
        ),
        rule(&[""], &["persistentvolumeclaims"], &["get"]),
        rule(&["apps.openshift.io"], &["deploymentconfigs"], &["get"]),
        rule(&["appcatalog.appscode.com"], &["appbindings"], &["get"]),
    ];
    if !psp.is_empty() {
        rules.push(PolicyRule {
            resource_names: Some(psp.to_vec()),
            ..rule(&["policy"], &["podsecuritypolicies"], &["use"])
        });
    }
    cluster_role(CRON_JOB_CLUSTER_ROLE, rules)
}

/// `stash-sidecar-<lowercase-kind>-<workload-name>` (§8.3).
#[must_use]
pub fn sidecar_role_binding_name(kind: WorkloadKind, workload_name: &str) -> String {
    valid_name_with_prefix_and_suffix(
        SIDECAR_CLUSTER_ROLE,
        &kind.lowercase(),
        workload_name,
        MAX_NAME_LENGTH,
    )
}

/// `stash-restore-init-container-<lowercase-kind>-<workload-name>`. Stash named it after the kind alone,
/// so two restored Deployments in one namespace shared (and fought over) one binding.
#[must_use]
pub fn restore_init_container_role_binding_name(kind: WorkloadKind, workload_name: &str) -> String {
    valid_name_with_prefix_and_suffix(
        RESTORE_INIT_CONTAINER_CLUSTER_ROLE,
        &kind.lowercase(),
        workload_name,
        MAX_NAME_LENGTH,
    )
}

const SIDECAR_REPOSITORY_ACCESS_PREFIX: &str = "stash-sidecar-repository";

/// `<prefix>-<workload-namespace>-<lowercase-kind>-<workload-name>`: the Role (and its binding) that reads
/// one Repository, in the Repository's namespace, so it carries the workload's namespace too.
fn repository_access_name(
    prefix: &str,
    kind: WorkloadKind,
    workload_namespace: &str,
    workload_name: &str,
) -> String {
    valid_name_with_prefix_and_suffix(
        prefix,
        &format!("{workload_namespace}-{}", kind.lowercase()),
        workload_name,
        MAX_NAME_LENGTH,
    )
}

/// The names [`sidecar_rbac`] gives its objects for `workload`: the `stash-sidecar` RoleBinding (in the
/// workload's namespace) and the Repository Role and RoleBinding (one name, in the Repository's
/// namespace). They depend on the workload alone, so every invoker backing it up shares them; the
/// controller removes them when the last of those invokers lets the workload go.
#[must_use]
pub fn sidecar_rbac_names(workload: &Workload) -> (String, String) {
    (
        sidecar_role_binding_name(workload.kind(), workload.name()),
        repository_access_name(
            SIDECAR_REPOSITORY_ACCESS_PREFIX,
            workload.kind(),
            workload.namespace().unwrap_or_default(),
            workload.name(),
        ),
    )
}

const RESTORE_REPOSITORY_ACCESS_PREFIX: &str = "stash-restore-repository";

/// The names [`restore_init_container_rbac`] gives its objects for the workload `kind`
/// `namespace/name`: the `stash-restore-init-container` RoleBinding (in the workload's namespace) and the
/// Repository Role and RoleBinding (one name, in the Repository's namespace). Like the sidecar's they
/// depend on the workload alone, so every RestoreSession of the workload shares them (and no
/// BackupConfiguration does: its objects are `stash-sidecar-…`).
#[must_use]
pub fn restore_init_container_rbac_names(
    kind: WorkloadKind,
    namespace: &str,
    name: &str,
) -> (String, String) {
    (
        restore_init_container_role_binding_name(kind, name),
        repository_access_name(RESTORE_REPOSITORY_ACCESS_PREFIX, kind, namespace, name),
    )
}

/// Object metadata of an RBAC object the operator creates.
pub(crate) fn rbac_meta(
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: owner.map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// A RoleBinding of `role` (a `ClusterRole` or `Role`) to one service account.
pub(crate) fn binding(
    metadata: ObjectMeta,
    role_kind: &str,
    role: &str,
    service_account: &str,
    service_account_namespace: &str,
) -> RoleBinding {
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.to_owned()),
            kind: role_kind.to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: service_account.to_owned(),
            namespace: Some(service_account_namespace.to_owned()),
            api_group: None,
        }]),
    }
}

/// The in-pod executors' objects: the ClusterRole binding in the workload's namespace and the Repository
/// Role+binding in the Repository's, both owned by the workload when in its namespace (a cross-namespace
/// Role cannot be, so the controller deletes it with the invoker).
fn in_pod_executor_rbac(
    workload: &Workload,
    repository: &Repository,
    cluster_role: ClusterRole,
    binding_name: String,
    repository_prefix: &str,
    component: &str,
    repository_verbs: &[PolicyRule],
) -> Result<ExecutorRbac, BuildRbacError> {
    let owner = workload
        .owner_reference()
        .ok_or_else(|| BuildRbacError::MissingUid {
            object: workload.to_string(),
        })?;
    let workload_namespace = workload.namespace().unwrap_or_default();
    let service_account = workload.service_account_name();
    let role_name = cluster_role.metadata.name.clone().unwrap_or_default();
    let role_binding = binding(
        rbac_meta(
            binding_name,
            workload_namespace,
            managed_labels(component),
            Some(owner.clone()),
        ),
        "ClusterRole",
        &role_name,
        service_account,
        workload_namespace,
    );

    let repository_namespace = repository
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(workload_namespace);
    let access_name = repository_access_name(
        repository_prefix,
        workload.kind(),
        workload_namespace,
        workload.name(),
    );
    let access_owner = (repository_namespace == workload_namespace).then_some(owner);
    let access_meta = rbac_meta(
        access_name.clone(),
        repository_namespace,
        managed_labels(component),
        access_owner,
    );
    let role = Role {
        metadata: access_meta.clone(),
        rules: Some(repository_verbs.to_vec()),
    };
    let role_binding_repo = binding(
        access_meta,
        "Role",
        &access_name,
        service_account,
        workload_namespace,
    );
    Ok(ExecutorRbac {
        service_account: None,
        cluster_role,
        role_binding,
        repository_access: Some((role, role_binding_repo)),
    })
}

pub(crate) fn repository_identity(repository: &Repository) -> Result<(&str, &str), BuildRbacError> {
    let name = repository.metadata.name.as_deref().unwrap_or_default();
    let secret = repository
        .spec
        .backend
        .storage_secret_name
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BuildRbacError::MissingStorageSecret {
            repository: format!(
                "{}/{name}",
                repository.metadata.namespace.as_deref().unwrap_or_default()
            ),
        })?;
    Ok((name, secret))
}

/// RBAC for the backup sidecar of `workload`: `stash-sidecar` bound to the pods' service account, plus
/// reading the Repository (and updating its status after the backup, §8.6 step 8) and its Secret.
pub fn sidecar_rbac(
    workload: &Workload,
    repository: &Repository,
) -> Result<ExecutorRbac, BuildRbacError> {
    let (repo, secret) = repository_identity(repository)?;
    in_pod_executor_rbac(
        workload,
        repository,
        sidecar_cluster_role(),
        sidecar_role_binding_name(workload.kind(), workload.name()),
        SIDECAR_REPOSITORY_ACCESS_PREFIX,
        labels::COMPONENT_BACKUP,
        &[
            named_rule(labels::GROUP, "repositories", repo, &["get"]),
            named_rule(
                labels::GROUP,
                "repositories/status",
                repo,
                &["get", "patch", "update"],
            ),
            named_rule("", "secrets", secret, &["get"]),
        ],
    )
}

/// RBAC for the restore init-container of `workload`: `stash-restore-init-container` bound to the pods'
/// service account, plus reading the Repository and its Secret.
pub fn restore_init_container_rbac(
    workload: &Workload,
    repository: &Repository,
) -> Result<ExecutorRbac, BuildRbacError> {
    let (repo, secret) = repository_identity(repository)?;
    in_pod_executor_rbac(
        workload,
        repository,
        restore_init_container_cluster_role(),
        restore_init_container_role_binding_name(workload.kind(), workload.name()),
        RESTORE_REPOSITORY_ACCESS_PREFIX,
        labels::COMPONENT_RESTORE,
        &[
            named_rule(labels::GROUP, "repositories", repo, &["get"]),
            named_rule("", "secrets", secret, &["get"]),
        ],
    )
}

/// RBAC for the trigger CronJob (§9.1): its own ServiceAccount named like the CronJob (unless
/// `runtimeSettings.pod.serviceAccountName` names one), bound to `stash-cron-job` by a RoleBinding of the
/// same name; all owned by the invoker.
pub fn trigger_cronjob_rbac(
    invoker: BackupInvoker<'_>,
    settings: &Settings,
) -> Result<ExecutorRbac, BuildRbacError> {
    let owner = invoker
        .owner_reference()
        .ok_or_else(|| BuildRbacError::MissingUid {
            object: invoker.to_string(),
        })?;
    let namespace = invoker.namespace();
    let labels = trigger_labels(invoker);
    let cronjob = trigger_cronjob_name(invoker);
    let service_account = trigger_service_account_name(invoker);
    let pod_settings = invoker.runtime_settings().and_then(|r| r.pod.as_ref());
    let owns_service_account = service_account == cronjob;
    let service_account_object = owns_service_account.then(|| ServiceAccount {
        metadata: ObjectMeta {
            name: Some(service_account.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            annotations: pod_settings.and_then(|p| p.service_account_annotations.clone()),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    });
    let role_binding = binding(
        rbac_meta(cronjob, namespace, labels, Some(owner)),
        "ClusterRole",
        CRON_JOB_CLUSTER_ROLE,
        &service_account,
        namespace,
    );
    Ok(ExecutorRbac {
        service_account: service_account_object,
        cluster_role: cron_job_cluster_role(&settings.cron_job_psp),
        role_binding,
        repository_access: None,
    })
}
