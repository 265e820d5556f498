//! Stage 2 (pure): is what the BackupConfiguration names there and usable? Every problem is collected,
//! so the status can say at once that the Repository is there but its Secret is not. Messages name the
//! object, the field and the fix (convention 3).

use std::fmt;
use std::sync::Arc;

use kube::ResourceExt;
use stash_api::condition::ConditionType;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::BackupConfiguration;

use super::dereference::{Dereferenced, repository_key, storage_secret_name, workload_key};
use crate::invoker::BackupInvoker;
use crate::workload::Workload;

/// The key of the storage Secret restic's repository password is read from (§3.2).
pub const RESTIC_PASSWORD: &str = "RESTIC_PASSWORD";

/// One reason the BackupConfiguration cannot be made Ready.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error(
        "{invoker} has no spec.repository; set spec.repository.name to the Repository to back up into"
    )]
    MissingRepositoryRef { invoker: String },
    #[error("{invoker} has no spec.target; set spec.target.ref to the workload to back up")]
    MissingTarget { invoker: String },
    #[error("{invoker} has no spec.schedule; set it to a cron expression such as \"*/5 * * * *\"")]
    MissingSchedule { invoker: String },
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
            Self::MissingRepositoryRef { .. } => "MissingRepositoryRef",
            Self::MissingTarget { .. } => "MissingTarget",
            Self::MissingSchedule { .. } => "MissingSchedule",
            Self::RepositoryNotFound { .. } => "RepositoryNotFound",
            Self::MissingStorageSecretName { .. } => "MissingStorageSecretName",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::SecretKeyMissing { .. } => "SecretKeyMissing",
            Self::TargetNotFound { .. } => "TargetNotFound",
            Self::TargetManagedByDeployment { .. } => "TargetManagedByDeployment",
        }
    }

    /// Whether something other than the BackupConfiguration's own spec may fix it (an object appearing):
    /// then the controller retries with backoff; otherwise it waits for the spec to change.
    #[must_use]
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            Self::MissingRepositoryRef { .. }
                | Self::MissingTarget { .. }
                | Self::MissingSchedule { .. }
                | Self::TargetManagedByDeployment { .. }
        )
    }

    /// The condition this problem makes False.
    #[must_use]
    pub fn condition_type(&self) -> ConditionType {
        match self {
            Self::MissingRepositoryRef { .. }
            | Self::MissingTarget { .. }
            | Self::MissingSchedule { .. } => ConditionType::ValidationPassed,
            Self::RepositoryNotFound { .. } => ConditionType::RepositoryFound,
            Self::MissingStorageSecretName { .. }
            | Self::SecretNotFound { .. }
            | Self::SecretKeyMissing { .. } => ConditionType::BackendSecretFound,
            Self::TargetNotFound { .. } | Self::TargetManagedByDeployment { .. } => {
                ConditionType::BackupTargetFound
            }
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

/// What the sidecar stage is to do with the target workload.
#[derive(Clone, Copy, Debug)]
pub enum SidecarTarget<'a> {
    /// Not a sidecar target (job model: PVC, task, VolumeSnapshotter): no workload to edit.
    None,
    /// This BackupConfiguration is the newest of those targeting the workload: inject.
    Inject(&'a Workload),
    /// A newer BackupConfiguration targets the same workload and owns its sidecar (§8.2).
    Superseded {
        workload: &'a Workload,
        winner: &'a BackupConfiguration,
    },
}

/// A BackupConfiguration whose references all resolved.
#[derive(Clone, Copy, Debug)]
pub struct ValidBackupConfiguration<'a> {
    pub bc: &'a BackupConfiguration,
    pub repository: &'a Repository,
    pub sidecar: SidecarTarget<'a>,
}

/// Among BackupConfigurations targeting one workload, the newest wins; on equal creation timestamps the
/// name that sorts first (§8.2).
#[must_use]
pub fn winner(contenders: &[Arc<BackupConfiguration>]) -> Option<&BackupConfiguration> {
    contenders.iter().map(AsRef::as_ref).max_by(|a, b| {
        let created = |bc: &BackupConfiguration| {
            bc.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_nanosecond())
        };
        created(a)
            .cmp(&created(b))
            .then_with(|| b.name_any().cmp(&a.name_any()))
    })
}

/// What the sidecar stage does with the target workload; a missing target, or a ReplicaSet a Deployment
/// manages, is a problem.
fn sidecar_target<'a>(
    bc: &'a BackupConfiguration,
    deref: &'a Dereferenced,
    invoker: &str,
    problems: &mut Vec<ValidateError>,
) -> SidecarTarget<'a> {
    let uses_sidecar = BackupInvoker::Configuration(bc)
        .targets()
        .first()
        .is_some_and(crate::invoker::BackupTargetInfo::uses_sidecar);
    let mut sidecar = SidecarTarget::None;
    if let Some((kind, namespace, name)) = workload_key(bc) {
        match &deref.workload {
            None => problems.push(ValidateError::TargetNotFound {
                invoker: invoker.to_owned(),
                kind: kind.to_string(),
                namespace,
                name,
            }),
            Some(workload) if workload.managing_deployment().is_some() => {
                problems.push(ValidateError::TargetManagedByDeployment {
                    invoker: invoker.to_owned(),
                    workload: workload.to_string(),
                    deployment: workload
                        .managing_deployment()
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
            Some(workload) if uses_sidecar => {
                sidecar = match winner(&deref.contenders) {
                    Some(winner) if winner.uid() != bc.uid() => {
                        SidecarTarget::Superseded { workload, winner }
                    }
                    _ => SidecarTarget::Inject(workload),
                };
            }
            Some(_) => {}
        }
    }

    sidecar
}

/// Stage 2 of the pipeline.
pub fn validate<'a>(
    bc: &'a BackupConfiguration,
    deref: &'a Dereferenced,
) -> Result<ValidBackupConfiguration<'a>, ValidateErrors> {
    let invoker = BackupInvoker::Configuration(bc).to_string();
    let mut problems = Vec::new();

    if bc
        .spec
        .schedule
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        problems.push(ValidateError::MissingSchedule {
            invoker: invoker.clone(),
        });
    }
    match repository_key(bc) {
        None => problems.push(ValidateError::MissingRepositoryRef {
            invoker: invoker.clone(),
        }),
        Some((namespace, name)) => match &deref.repository {
            None => problems.push(ValidateError::RepositoryNotFound {
                invoker: invoker.clone(),
                namespace,
                name,
            }),
            Some(repository) => match storage_secret_name(repository) {
                None => problems.push(ValidateError::MissingStorageSecretName {
                    invoker: invoker.clone(),
                    repository: format!("{namespace}/{name}"),
                }),
                Some(secret_name) => match &deref.secret {
                    None => problems.push(ValidateError::SecretNotFound {
                        invoker: invoker.clone(),
                        namespace,
                        name: secret_name.to_owned(),
                    }),
                    Some(secret) => {
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
                                invoker: invoker.clone(),
                                name: secret_name.to_owned(),
                            });
                        }
                    }
                },
            },
        },
    }

    let target = bc.spec.target.as_ref();
    if target.is_none() {
        problems.push(ValidateError::MissingTarget {
            invoker: invoker.clone(),
        });
    }
    let sidecar = sidecar_target(bc, deref, &invoker, &mut problems);

    match (&deref.repository, problems.is_empty()) {
        (Some(repository), true) => Ok(ValidBackupConfiguration {
            bc,
            repository,
            sidecar,
        }),
        _ => Err(ValidateErrors(problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Secret;
    use pretty_assertions::assert_eq;

    const EXAMPLE: &str = include_str!(
        "../../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-deployment.yaml"
    );

    fn with_uid(mut bc: BackupConfiguration, uid: &str, created: &str) -> BackupConfiguration {
        bc.metadata.uid = Some(uid.to_owned());
        bc.metadata.creation_timestamp = Some(serde_json::from_value(created.into()).unwrap());
        bc
    }

    fn backup_configuration() -> BackupConfiguration {
        with_uid(
            serde_yaml::from_str(EXAMPLE).unwrap(),
            "uid-1",
            "2026-01-01T00:00:00Z",
        )
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
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stash-demo\n  namespace: demo\n  uid: d-1\nspec:\n  selector:\n    matchLabels:\n      app: stash-demo\n  template:\n    metadata:\n      labels:\n        app: stash-demo\n    spec:\n      containers:\n      - name: busybox\n        image: busybox\n        volumeMounts:\n        - name: source-data\n          mountPath: /source/data\n      volumes:\n      - name: source-data\n        configMap:\n          name: stash-sample-data\n",
        )
        .unwrap()
    }

    fn everything(bc: &BackupConfiguration) -> Dereferenced {
        Dereferenced {
            repository: Some(repository()),
            secret: Some(secret("  RESTIC_PASSWORD: changeit\n")),
            workload: Some(deployment()),
            contenders: vec![Arc::new(bc.clone())],
        }
    }

    fn problems(bc: &BackupConfiguration, deref: &Dereferenced) -> Vec<String> {
        match validate(bc, deref) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_deployment_example_with_its_repository_secret_and_deployment_is_valid_and_injects() {
        let bc = backup_configuration();
        let deref = everything(&bc);
        let valid = validate(&bc, &deref).unwrap();
        assert!(matches!(valid.sidecar, SidecarTarget::Inject(w) if w.name() == "stash-demo"));
    }

    fn replica_set_target(bc: &mut BackupConfiguration, name: &str) {
        let target = bc.spec.target.as_mut().unwrap();
        target.reference.kind = "ReplicaSet".to_owned();
        target.reference.name = name.to_owned();
    }

    fn replica_set(owner: Option<&str>) -> Workload {
        let mut yaml = deployment().to_value();
        yaml["kind"] = "ReplicaSet".into();
        yaml["metadata"]["name"] = "stash-demo-7d9f".into();
        if let Some(owner) = owner {
            yaml["metadata"]["ownerReferences"] = serde_json::json!([{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": owner, "uid": "d-1", "controller": true
            }]);
        }
        Workload::from_value(yaml).unwrap()
    }

    #[test]
    fn a_standalone_replicaset_target_of_an_old_manifest_is_valid_and_injects() {
        let mut bc = backup_configuration();
        replica_set_target(&mut bc, "stash-demo-7d9f");
        let deref = Dereferenced {
            workload: Some(replica_set(None)),
            ..everything(&bc)
        };
        let valid = validate(&bc, &deref).unwrap();
        assert!(matches!(valid.sidecar, SidecarTarget::Inject(w) if w.kind().is_deprecated()));
    }

    #[test]
    fn a_replicaset_a_deployment_manages_is_refused_naming_the_deployment_to_target() {
        let mut bc = backup_configuration();
        replica_set_target(&mut bc, "stash-demo-7d9f");
        let deref = Dereferenced {
            workload: Some(replica_set(Some("stash-demo"))),
            ..everything(&bc)
        };
        assert_eq!(
            problems(&bc, &deref),
            [
                "BackupConfiguration demo/deployment-backup: ReplicaSet demo/stash-demo-7d9f is managed by Deployment `stash-demo`, and a ReplicaSet a Deployment manages is never injected (its pod template is the Deployment's); set spec.target.ref to `apiVersion: apps/v1, kind: Deployment, name: stash-demo`"
            ]
        );
        let errors = validate(&bc, &deref).unwrap_err();
        assert!(!errors.retryable());
        assert!(
            errors
                .for_condition(ConditionType::BackupTargetFound)
                .is_some()
        );
    }

    #[test]
    fn a_secret_without_restic_password_is_named_with_the_fix() {
        let bc = backup_configuration();
        let deref = Dereferenced {
            secret: Some(secret("  GOOGLE_PROJECT_ID: p\n")),
            ..everything(&bc)
        };
        assert_eq!(
            problems(&bc, &deref),
            [
                "BackupConfiguration demo/deployment-backup: Secret `gcs-secret` has no key `RESTIC_PASSWORD`; add it to the Secret"
            ]
        );
        let errors = validate(&bc, &deref).unwrap_err();
        assert_eq!(errors.reason(), "SecretKeyMissing");
        assert!(errors.retryable());
    }

    #[test]
    fn a_missing_secret_is_retryable_and_concerns_the_backend_secret_condition() {
        let bc = backup_configuration();
        let deref = Dereferenced {
            secret: None,
            ..everything(&bc)
        };
        let errors = validate(&bc, &deref).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "BackupConfiguration demo/deployment-backup: Secret `gcs-secret` does not exist in namespace `demo`; create it with key `RESTIC_PASSWORD` or correct spec.backend.storageSecretName of the Repository"
        );
        assert!(errors.retryable());
        assert!(
            errors
                .for_condition(ConditionType::BackendSecretFound)
                .is_some()
        );
    }

    #[test]
    fn a_missing_repository_and_a_missing_deployment_are_both_reported() {
        let bc = backup_configuration();
        let deref = Dereferenced {
            repository: None,
            secret: None,
            workload: None,
            contenders: Vec::new(),
        };
        assert_eq!(
            problems(&bc, &deref),
            [
                "BackupConfiguration demo/deployment-backup: Repository `gcs-repo` does not exist in namespace `demo`; create it or correct spec.repository",
                "BackupConfiguration demo/deployment-backup: Deployment `stash-demo` does not exist in namespace `demo`; create it or correct spec.target.ref",
            ]
        );
    }

    #[test]
    fn a_backup_configuration_without_schedule_waits_for_a_spec_change() {
        let mut bc = backup_configuration();
        bc.spec.schedule = None;
        let deref = everything(&bc);
        let errors = validate(&bc, &deref).unwrap_err();
        assert_eq!(errors.reason(), "MissingSchedule");
        assert!(!errors.retryable());
    }

    #[test]
    fn the_repository_namespace_defaults_to_the_backup_configuration_namespace() {
        let mut bc = backup_configuration();
        let deref = Dereferenced {
            repository: None,
            ..everything(&bc)
        };
        bc.spec.repository.as_mut().unwrap().namespace = Some("stash-repos".to_owned());
        assert_eq!(
            problems(&bc, &deref),
            [
                "BackupConfiguration demo/deployment-backup: Repository `gcs-repo` does not exist in namespace `stash-repos`; create it or correct spec.repository"
            ]
        );
    }

    #[test]
    fn of_two_backup_configurations_on_one_deployment_the_newer_injects() {
        let older = backup_configuration();
        let mut newer = with_uid(backup_configuration(), "uid-2", "2026-02-01T00:00:00Z");
        newer.metadata.name = Some("newer".to_owned());
        let contenders = vec![Arc::new(older.clone()), Arc::new(newer.clone())];
        let deref = Dereferenced {
            contenders,
            ..everything(&older)
        };
        let older_valid = validate(&older, &deref).unwrap();
        assert!(
            matches!(older_valid.sidecar, SidecarTarget::Superseded { winner, .. } if winner.name_any() == "newer")
        );
        let newer_valid = validate(&newer, &deref).unwrap();
        assert!(matches!(newer_valid.sidecar, SidecarTarget::Inject(_)));
    }

    #[test]
    fn of_two_backup_configurations_created_at_the_same_second_the_first_name_injects() {
        let a = backup_configuration();
        let mut b = with_uid(backup_configuration(), "uid-2", "2026-01-01T00:00:00Z");
        b.metadata.name = Some("a-first".to_owned());
        let contenders = vec![Arc::new(a), Arc::new(b)];
        assert_eq!(winner(&contenders).unwrap().name_any(), "a-first");
    }
}
