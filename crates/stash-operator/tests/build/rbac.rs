//! RBAC for the executors (§8.3, §9.1, §15): Stash's ClusterRole names, least privilege inside.

use k8s_openapi::api::rbac::v1::PolicyRule;
use pretty_assertions::assert_eq;
use stash_operator::BackupInvoker;
use stash_operator::build::rbac::{
    BuildRbacError, cron_job_cluster_role, restore_init_container_cluster_role,
    restore_init_container_rbac, sidecar_cluster_role, sidecar_rbac, trigger_cronjob_rbac,
};
use stash_operator::{Settings, WorkloadKind};

use crate::support::{backup_configuration, expect_yaml, repository, settings, workload};

#[test]
fn the_deployment_sidecar_gets_its_cluster_role_binding_and_repository_access() {
    let rbac = sidecar_rbac(&workload("deployment"), &repository("gcs")).unwrap();
    expect_yaml("backupconfiguration-deployment.rbac.yaml", &rbac.objects());
}

#[test]
fn the_restore_init_container_gets_its_cluster_role_binding_and_read_only_repository_access() {
    let rbac =
        restore_init_container_rbac(&workload("deployment-recovered"), &repository("gcs")).unwrap();
    expect_yaml("restoresession-deployment.rbac.yaml", &rbac.objects());
}

#[test]
fn the_trigger_cronjob_gets_its_own_service_account_and_binding() {
    let bc = backup_configuration("deployment");
    let rbac = trigger_cronjob_rbac(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    expect_yaml(
        "backupconfiguration-deployment.cronjob-rbac.yaml",
        &rbac.objects(),
    );
}

#[test]
fn the_sidecar_binding_is_named_after_the_workload_kind_and_name_and_binds_its_service_account() {
    let rbac = sidecar_rbac(&workload("daemonset"), &repository("gcs")).unwrap();
    let binding = rbac.role_binding;
    assert_eq!(
        binding.metadata.name.as_deref(),
        Some("stash-sidecar-daemonset-stash-demo")
    );
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, "stash-sidecar");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "node-agent", Some("demo"))
    );
    assert_eq!(
        binding.metadata.owner_references.unwrap()[0].kind,
        WorkloadKind::DaemonSet.as_str()
    );
}

#[test]
fn executors_read_only_their_own_repository_and_secret() {
    let rbac = sidecar_rbac(&workload("deployment"), &repository("gcs")).unwrap();
    let (role, _) = rbac.repository_access.unwrap();
    for rule in role.rules.unwrap() {
        let names = rule
            .resource_names
            .expect("every repository rule names its object");
        let resource = &rule.resources.unwrap()[0];
        let expected = if resource == "secrets" {
            "gcs-secret"
        } else {
            "gcs-repo"
        };
        assert_eq!(names, [expected], "{resource}");
    }
    for role in [
        sidecar_cluster_role(),
        restore_init_container_cluster_role(),
    ] {
        assert!(
            !role.rules.unwrap().iter().any(|r| r
                .resources
                .as_ref()
                .unwrap()
                .contains(&"secrets".to_owned())),
            "no executor ClusterRole reads every Secret"
        );
    }
}

#[test]
fn no_executor_role_uses_a_wildcard() {
    let has_wildcard = |rules: &[PolicyRule]| {
        rules.iter().any(|r| {
            r.verbs.iter().any(|v| v == "*")
                || r.resources.iter().flatten().any(|v| v == "*")
                || r.api_groups.iter().flatten().any(|v| v == "*")
        })
    };
    for role in [
        sidecar_cluster_role(),
        restore_init_container_cluster_role(),
        cron_job_cluster_role(&[]),
    ] {
        assert!(
            !has_wildcard(role.rules.as_deref().unwrap()),
            "{:?}",
            role.metadata.name
        );
    }
}

#[test]
fn the_restore_init_container_cannot_write_the_repository() {
    let rbac =
        restore_init_container_rbac(&workload("deployment-recovered"), &repository("gcs")).unwrap();
    let (role, _) = rbac.repository_access.unwrap();
    assert!(role.rules.unwrap().iter().all(|r| r.verbs == ["get"]));
}

#[test]
fn a_repository_in_another_namespace_gets_an_unowned_role_there() {
    let mut repo = repository("gcs");
    repo.metadata.namespace = Some("backups".to_owned());
    let rbac = sidecar_rbac(&workload("deployment"), &repo).unwrap();
    let (role, binding) = rbac.repository_access.unwrap();
    assert_eq!(role.metadata.namespace.as_deref(), Some("backups"));
    assert_eq!(
        role.metadata.name.as_deref(),
        Some("stash-sidecar-repository-demo-deployment-stash-demo")
    );
    assert_eq!(role.metadata.owner_references, None);
    assert_eq!(binding.metadata.owner_references, None);
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(subject.namespace.as_deref(), Some("demo"));
}

#[test]
fn a_repository_without_a_storage_secret_is_refused_with_the_field_to_fix() {
    let mut repo = repository("gcs");
    repo.spec.backend.storage_secret_name = None;
    let err = sidecar_rbac(&workload("deployment"), &repo).unwrap_err();
    assert!(matches!(err, BuildRbacError::MissingStorageSecret { .. }));
    assert_eq!(
        err.to_string(),
        "Repository demo/gcs-repo has no spec.backend.storageSecretName; name the Secret that holds RESTIC_PASSWORD"
    );
}

#[test]
fn a_cronjob_running_as_a_named_service_account_creates_none() {
    let bc = backup_configuration("deployment-full-featured");
    let rbac = trigger_cronjob_rbac(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    assert_eq!(rbac.service_account, None);
    assert_eq!(rbac.role_binding.subjects.unwrap()[0].name, "my-backup-svc");
}

#[test]
fn pod_security_policies_are_granted_only_when_configured() {
    let bc = backup_configuration("deployment");
    let with_psp = Settings {
        cron_job_psp: vec!["baseline".to_owned()],
        ..settings()
    };
    let rules = |s: &Settings| {
        trigger_cronjob_rbac(BackupInvoker::Configuration(&bc), s)
            .unwrap()
            .cluster_role
            .rules
            .unwrap()
    };
    let psp = |rules: Vec<PolicyRule>| {
        rules
            .into_iter()
            .find(|r| r.api_groups.as_deref() == Some(&["policy".to_owned()]))
    };
    assert_eq!(psp(rules(&settings())), None);
    let rule = psp(rules(&with_psp)).unwrap();
    assert_eq!(rule.verbs, ["use"]);
    assert_eq!(rule.resource_names.unwrap(), ["baseline"]);
}
