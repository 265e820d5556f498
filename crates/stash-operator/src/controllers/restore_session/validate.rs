//! Stage 2 (pure): is the RestoreSession valid (the same offline validation as `stash validate` and the
//! validating webhook) and is what it names there and usable? Every problem is collected, so the status
//! can say at once that the Repository is there but its Secret is not. Messages name the object, the
//! field and the fix (convention 3).

use std::fmt;

use stash_api::condition::ConditionType;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::RestoreSession;
use stash_api::validation::{Severity, validate_value};

use super::dereference::{Dereferenced, repository_key, workload_key};
use crate::controllers::backup_configuration::dereference::storage_secret_name;
use crate::controllers::backup_configuration::validate::RESTIC_PASSWORD;
use crate::invoker::RestoreInvoker;
use crate::workload::Workload;

/// The "file" stash-api's diagnostics are labelled with.
const SOURCE: &str = "RestoreSession";

/// One reason the RestoreSession cannot run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("{invoker} is invalid: {details}")]
    Invalid { invoker: String, details: String },
    #[error(
        "{invoker}: Repository `{name}` does not exist in namespace `{namespace}`; create it or correct spec.repository"
    )]
    RepositoryNotFound {
        invoker: String,
        namespace: String,
        name: String,
    },
    #[error(
        "{invoker}: Repository {repository} has no spec.backend.storageSecretName; name the Secret that holds RESTIC_PASSWORD"
    )]
    MissingStorageSecretName { invoker: String, repository: String },
    #[error(
        "{invoker}: Secret `{name}` does not exist in namespace `{namespace}`; create it with key `RESTIC_PASSWORD` or correct spec.backend.storageSecretName of the Repository"
    )]
    SecretNotFound {
        invoker: String,
        namespace: String,
        name: String,
    },
    #[error("{invoker}: Secret `{name}` has no key `RESTIC_PASSWORD`; add it to the Secret")]
    SecretKeyMissing { invoker: String, name: String },
    #[error(
        "{invoker}: {kind} `{name}` does not exist in namespace `{namespace}`; create it or correct spec.target.ref"
    )]
    TargetNotFound {
        invoker: String,
        kind: String,
        namespace: String,
        name: String,
    },
    #[error(
        "{invoker}: {target} is restored by a restore Job (the job model of §8.1: a task, a VolumeSnapshotter or a target that is not a Deployment, StatefulSet or DaemonSet of apps/v1), which this operator does not run; restore into a Deployment, StatefulSet or DaemonSet"
    )]
    JobModelUnsupported { invoker: String, target: String },
    #[error(
        "{invoker}: {workload} is managed by Deployment `{deployment}`, and a ReplicaSet a Deployment manages is never injected (its pod template is the Deployment's); set spec.target.ref to `apiVersion: apps/v1, kind: Deployment, name: {deployment}`"
    )]
    TargetManagedByDeployment {
        invoker: String,
        workload: String,
        deployment: String,
    },
}

impl ValidateError {
    /// The PascalCase reason of Events and metric labels.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "ValidationFailed",
            Self::RepositoryNotFound { .. } => "RepositoryNotFound",
            Self::MissingStorageSecretName { .. } => "MissingStorageSecretName",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::SecretKeyMissing { .. } => "SecretKeyMissing",
            Self::TargetNotFound { .. } => "TargetNotFound",
            Self::JobModelUnsupported { .. } => "JobModelUnsupported",
            Self::TargetManagedByDeployment { .. } => "TargetManagedByDeployment",
        }
    }

    /// Whether something other than the (immutable) spec may fix it, an object appearing or changing:
    /// then the controller retries with backoff; otherwise it waits for a change.
    #[must_use]
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            Self::Invalid { .. }
                | Self::JobModelUnsupported { .. }
                | Self::TargetManagedByDeployment { .. }
        )
    }

    /// The condition this problem makes False.
    #[must_use]
    pub fn condition_type(&self) -> ConditionType {
        match self {
            Self::Invalid { .. } => ConditionType::ValidationPassed,
            Self::RepositoryNotFound { .. } => ConditionType::RepositoryFound,
            Self::MissingStorageSecretName { .. }
            | Self::SecretNotFound { .. }
            | Self::SecretKeyMissing { .. } => ConditionType::BackendSecretFound,
            Self::TargetNotFound { .. } | Self::TargetManagedByDeployment { .. } => {
                ConditionType::RestoreTargetFound
            }
            Self::JobModelUnsupported { .. } => ConditionType::RestoreExecutorEnsured,
        }
    }
}

/// All problems found, first one first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidateErrors(pub Vec<ValidateError>);

impl fmt::Display for ValidateErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for ValidateErrors {}

impl ValidateErrors {
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.0.first().map_or("Invalid", ValidateError::reason)
    }

    /// Retryable only if every problem is.
    #[must_use]
    pub fn retryable(&self) -> bool {
        self.0.iter().all(ValidateError::retryable)
    }

    /// The first problem that makes `condition` False.
    #[must_use]
    pub fn for_condition(&self, condition: ConditionType) -> Option<&ValidateError> {
        self.0.iter().find(|e| e.condition_type() == condition)
    }
}

/// A RestoreSession whose references all resolved, restored by an init-container in `workload`.
#[derive(Clone, Copy, Debug)]
pub struct ValidRestoreSession<'a> {
    pub rs: &'a RestoreSession,
    pub repository: &'a Repository,
    pub workload: &'a Workload,
}

/// stash-api's errors about the RestoreSession (schema and semantics), each as `field: message; fix`.
/// Warnings (deprecated `spec.rules`) do not make it invalid.
#[must_use]
pub fn spec_errors(rs: &RestoreSession) -> Vec<String> {
    let mut value = serde_json::to_value(rs).expect("a RestoreSession always serializes");
    // The status is the operator's and the agent's, not the user's; metadata.managedFields and the
    // like are checked by the API server already.
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.retain(|k, _| {
                matches!(k.as_str(), "name" | "namespace" | "labels" | "annotations")
            });
        }
    }
    validate_value(SOURCE, 1, &value)
        .diagnostics
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| {
            if d.field.is_empty() {
                format!("{}; fix: {}", d.message, d.fix)
            } else {
                format!("{}: {}; fix: {}", d.field, d.message, d.fix)
            }
        })
        .collect()
}

/// Stage 2 of the pipeline.
pub fn validate<'a>(
    rs: &'a RestoreSession,
    deref: &'a Dereferenced,
) -> Result<ValidRestoreSession<'a>, ValidateErrors> {
    let invoker = RestoreInvoker::Session(rs).to_string();
    let mut problems = Vec::new();
    let errors = spec_errors(rs);
    if !errors.is_empty() {
        problems.push(ValidateError::Invalid {
            invoker: invoker.clone(),
            details: errors.join("; "),
        });
    }
    if let Some((namespace, name)) = repository_key(rs) {
        repository_problems(&invoker, namespace, name, deref, &mut problems);
    }
    let target = RestoreInvoker::Session(rs).targets().into_iter().next();
    let init_container_model = target.is_some_and(|t| t.uses_init_container());
    match (workload_key(rs), target.and_then(|t| t.target_ref())) {
        (Some((kind, namespace, name)), _) if deref.workload.is_none() => {
            problems.push(ValidateError::TargetNotFound {
                invoker: invoker.clone(),
                kind: kind.to_string(),
                namespace,
                name,
            });
        }
        (Some(_), _)
            if let Some(deployment) = deref
                .workload
                .as_ref()
                .and_then(Workload::managing_deployment) =>
        {
            problems.push(ValidateError::TargetManagedByDeployment {
                invoker: invoker.clone(),
                workload: deref
                    .workload
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                deployment: deployment.to_owned(),
            });
        }
        (_, Some(reference)) if !init_container_model => {
            problems.push(ValidateError::JobModelUnsupported {
                invoker: invoker.clone(),
                target: format!(
                    "{} {} ({})",
                    reference.kind,
                    reference.name,
                    reference.api_version.as_deref().unwrap_or("no apiVersion")
                ),
            });
        }
        _ => {}
    }
    match (&deref.repository, &deref.workload, problems.is_empty()) {
        (Some(repository), Some(workload), true) => Ok(ValidRestoreSession {
            rs,
            repository,
            workload,
        }),
        _ => Err(ValidateErrors(problems)),
    }
}

pub(crate) fn repository_problems(
    invoker: &str,
    namespace: String,
    name: String,
    deref: &Dereferenced,
    problems: &mut Vec<ValidateError>,
) {
    let invoker = invoker.to_owned();
    let Some(repository) = &deref.repository else {
        problems.push(ValidateError::RepositoryNotFound {
            invoker,
            namespace,
            name,
        });
        return;
    };
    let Some(secret_name) = storage_secret_name(repository) else {
        problems.push(ValidateError::MissingStorageSecretName {
            invoker,
            repository: format!("{namespace}/{name}"),
        });
        return;
    };
    let Some(secret) = &deref.secret else {
        problems.push(ValidateError::SecretNotFound {
            invoker,
            namespace,
            name: secret_name.to_owned(),
        });
        return;
    };
    let has_key = secret
        .data
        .as_ref()
        .is_some_and(|d| d.contains_key(RESTIC_PASSWORD))
        || secret
            .string_data
            .as_ref()
            .is_some_and(|d| d.contains_key(RESTIC_PASSWORD));
    if !has_key {
        problems.push(ValidateError::SecretKeyMissing {
            invoker,
            name: secret_name.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use pretty_assertions::assert_eq;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/restoresession-deployment.yaml"
    );
    const PVC_EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
    );

    fn restore_session() -> RestoreSession {
        serde_yaml::from_str(EXAMPLE).unwrap()
    }

    fn repository() -> Repository {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: stash-testing\n      prefix: /demo/deployment\n    storageSecretName: gcs-secret\n",
        )
        .unwrap()
    }

    fn secret(keys: &str) -> Secret {
        serde_yaml::from_str(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gcs-secret\n  namespace: demo\nstringData:\n{keys}"
        ))
        .unwrap()
    }

    fn deployment() -> Workload {
        Workload::from_yaml(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stash-recovered\n  namespace: demo\n  uid: d-1\nspec:\n  selector:\n    matchLabels:\n      app: r\n  template:\n    metadata:\n      labels:\n        app: r\n    spec:\n      containers:\n      - name: busybox\n        image: busybox\n      volumes:\n      - name: source-data\n        emptyDir: {}\n",
        )
        .unwrap()
    }

    fn everything() -> Dereferenced {
        Dereferenced {
            repository: Some(repository()),
            secret: Some(secret("  RESTIC_PASSWORD: changeit\n")),
            workload: Some(deployment()),
        }
    }

    fn problems(rs: &RestoreSession, deref: &Dereferenced) -> Vec<String> {
        match validate(rs, deref) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_deployment_example_with_its_repository_secret_and_deployment_is_valid() {
        let rs = restore_session();
        let deref = everything();
        let valid = validate(&rs, &deref).unwrap();
        assert_eq!(valid.workload.name(), "stash-recovered");
    }

    #[test]
    fn a_status_written_by_the_operator_and_the_agent_does_not_make_it_invalid() {
        let mut rs = restore_session();
        rs.metadata.uid = Some("u-1".to_owned());
        rs.status = Some(
            serde_yaml::from_str(
                "phase: Running\ntotalHosts: 1\nstats:\n- hostname: host-0\n  phase: Succeeded\n  duration: 3s\n",
            )
            .unwrap(),
        );
        assert_eq!(spec_errors(&rs), Vec::<String>::new());
    }

    #[test]
    fn a_missing_repository_is_named_with_the_fix_and_retried() {
        let rs = restore_session();
        let deref = Dereferenced {
            repository: None,
            secret: None,
            ..everything()
        };
        assert_eq!(
            problems(&rs, &deref),
            [
                "RestoreSession demo/deployment-restore: Repository `gcs-repo` does not exist in namespace `demo`; create it or correct spec.repository"
            ]
        );
        let errors = validate(&rs, &deref).unwrap_err();
        assert!(errors.retryable());
        assert!(
            errors
                .for_condition(ConditionType::RepositoryFound)
                .is_some()
        );
    }

    #[test]
    fn a_secret_without_restic_password_and_a_missing_deployment_are_both_reported() {
        let rs = restore_session();
        let deref = Dereferenced {
            secret: Some(secret("  GOOGLE_PROJECT_ID: p\n")),
            workload: None,
            ..everything()
        };
        assert_eq!(
            problems(&rs, &deref),
            [
                "RestoreSession demo/deployment-restore: Secret `gcs-secret` has no key `RESTIC_PASSWORD`; add it to the Secret",
                "RestoreSession demo/deployment-restore: Deployment `stash-recovered` does not exist in namespace `demo`; create it or correct spec.target.ref",
            ]
        );
        let errors = validate(&rs, &deref).unwrap_err();
        assert!(
            errors
                .for_condition(ConditionType::RestoreTargetFound)
                .is_some()
        );
    }

    /// The RestoreSession example retargeted at ReplicaSet `stash-recovered` (a Stash v0.17 manifest),
    /// with that ReplicaSet, owned by Deployment `owner` if given.
    fn replica_set_target(owner: Option<&str>) -> (RestoreSession, Dereferenced) {
        let mut rs = restore_session();
        rs.spec
            .target
            .as_mut()
            .unwrap()
            .reference
            .as_mut()
            .unwrap()
            .kind = "ReplicaSet".to_owned();
        let mut yaml: serde_json::Value = deployment().to_value();
        yaml["kind"] = "ReplicaSet".into();
        if let Some(owner) = owner {
            yaml["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": "d", "controller": true
            }]);
        }
        let workload = Workload::from_yaml(&serde_json::to_string(&yaml).unwrap()).unwrap();
        let deref = Dereferenced {
            workload: Some(workload),
            ..everything()
        };
        (rs, deref)
    }

    #[test]
    fn a_standalone_replicaset_target_is_restored_by_the_init_container_like_a_deployment() {
        let (rs, deref) = replica_set_target(None);
        let valid = validate(&rs, &deref).unwrap();
        assert_eq!(
            valid.workload.to_string(),
            "ReplicaSet demo/stash-recovered"
        );
        assert_eq!(super::super::build::total_hosts(valid.workload), 1);
    }

    #[test]
    fn a_replicaset_a_deployment_manages_is_refused_naming_the_deployment() {
        let (rs, deref) = replica_set_target(Some("web"));
        let errors = validate(&rs, &deref).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "RestoreSession demo/deployment-restore: ReplicaSet demo/stash-recovered is managed by Deployment `web`, and a ReplicaSet a Deployment manages is never injected (its pod template is the Deployment's); set spec.target.ref to `apiVersion: apps/v1, kind: Deployment, name: web`"
        );
        assert_eq!(errors.reason(), "TargetManagedByDeployment");
        assert!(!errors.retryable());
        assert!(
            errors
                .for_condition(ConditionType::RestoreTargetFound)
                .is_some()
        );
    }

    #[test]
    fn a_rule_with_both_snapshots_and_paths_is_invalid_and_waits_for_a_change() {
        let mut rs = restore_session();
        let rules = rs.spec.target.as_mut().unwrap().rules.as_mut().unwrap();
        rules[0].snapshots = Some(vec!["latest".to_owned()]);
        let errors = validate(&rs, &everything()).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.reason(), "ValidationFailed");
        assert!(!errors.retryable());
        let message = errors.to_string();
        assert!(
            message.starts_with(
                "RestoreSession demo/deployment-restore is invalid: spec.target.rules[0]"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_pvc_target_is_the_job_model_which_is_reported_not_retried() {
        let rs: RestoreSession = serde_yaml::from_str(PVC_EXAMPLE).unwrap();
        let deref = Dereferenced {
            workload: None,
            ..everything()
        };
        let errors = validate(&rs, &deref).unwrap_err();
        assert_eq!(errors.reason(), "JobModelUnsupported");
        assert!(!errors.retryable());
        assert!(
            errors
                .for_condition(ConditionType::RestoreExecutorEnsured)
                .is_some_and(|e| e.to_string().contains("PersistentVolumeClaim nfs-pvc (v1)"))
        );
    }
}
