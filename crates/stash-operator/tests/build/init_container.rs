//! The restore init-container (§10), built from Stash's RestoreSession examples.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use pretty_assertions::assert_eq;
use stash_api::labels;
use stash_operator::build::init_container::{
    InjectInitContainerError, init_container, inject_init_container,
    inject_init_container_into_workload, remove_init_container,
    remove_init_container_from_workload,
};
use stash_operator::{RestoreInvoker, Workload};

use crate::support::{expect_yaml, repository, restore_session, settings, workload};

fn injected() -> Workload {
    let rs = restore_session("deployment");
    let mut w = workload("deployment-recovered");
    let target = RestoreInvoker::Session(&rs).target_for(&w).unwrap();
    inject_init_container_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap();
    w
}

fn init_names(pod: &PodSpec) -> Vec<&str> {
    pod.init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect()
}

#[test]
fn the_deployment_restore_guide_gets_the_init_container_stash_v0_24_injects() {
    expect_yaml(
        "restoresession-deployment.workload.yaml",
        &[injected().to_value()],
    );
}

#[test]
fn restore_arguments_are_stash_v0_24_restore_flags_in_order() {
    let w = injected();
    let init = &w.pod_spec().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.args.as_ref().unwrap(),
        &[
            "restore",
            "--invoker-kind=RestoreSession",
            "--invoker-name=deployment-restore",
            "--target-name=stash-recovered",
            "--target-namespace=demo",
            "--target-kind=Deployment",
            "--enable-cache=true",
            "--max-connections=0",
            "--metrics-enabled=true",
            "--pushgateway-url=http://stash.kube-system.svc:56789",
            "--use-kubeapiserver-fqdn-for-aks=true",
            "--v=3",
        ]
    );
}

#[test]
fn the_init_container_goes_first_among_the_init_containers() {
    let w = injected();
    assert_eq!(
        init_names(w.pod_spec().unwrap()),
        ["stash-init", "fix-permissions"]
    );
}

#[test]
fn an_old_init_container_elsewhere_in_the_list_is_replaced_by_one_in_front() {
    let rs = restore_session("deployment");
    let mut pod = workload("deployment-recovered").pod_spec().unwrap().clone();
    pod.init_containers.as_mut().unwrap().push(Container {
        name: "stash-init".to_owned(),
        image: Some("appscode/stash:v0.9.0".to_owned()),
        ..Container::default()
    });
    let target = RestoreInvoker::Session(&rs).targets()[0];
    inject_init_container(&mut pod, &target, &repository("gcs"), &settings()).unwrap();
    assert_eq!(init_names(&pod), ["stash-init", "fix-permissions"]);
    assert_eq!(
        pod.init_containers.unwrap()[0].image.as_deref(),
        Some("appscode/stash:v0.1.0")
    );
}

#[test]
fn injecting_the_init_container_twice_equals_injecting_it_once() {
    let rs = restore_session("deployment");
    let once = injected();
    let mut twice = once.clone();
    let target = RestoreInvoker::Session(&rs).target_for(&twice).unwrap();
    inject_init_container_into_workload(&mut twice, &target, &repository("gcs"), &settings())
        .unwrap();
    assert_eq!(twice, once);
}

#[test]
fn removing_the_init_container_restores_the_original_workload() {
    let mut w = injected();
    remove_init_container_from_workload(&mut w, &settings());
    assert_eq!(w, workload("deployment-recovered"));

    let rs = restore_session("deployment");
    let original = workload("deployment-recovered").pod_spec().unwrap().clone();
    let mut pod = original.clone();
    let target = RestoreInvoker::Session(&rs).targets()[0];
    inject_init_container(&mut pod, &target, &repository("gcs"), &settings()).unwrap();
    remove_init_container(&mut pod);
    assert_eq!(pod, original);
}

#[test]
fn the_init_container_runs_as_root_to_keep_file_ownership() {
    let rs = restore_session("deployment");
    let target = RestoreInvoker::Session(&rs).targets()[0];
    let init = init_container(&target, &repository("gcs"), &settings()).unwrap();
    let security = init.security_context.unwrap();
    assert_eq!(
        (security.run_as_user, security.run_as_group),
        (Some(0), Some(0))
    );
}

#[test]
fn a_user_security_context_overrides_root_field_by_field() {
    let mut rs = restore_session("deployment");
    rs.spec.runtime_settings = Some(
        serde_json::from_str(r#"{"container":{"securityContext":{"runAsUser":1000}}}"#).unwrap(),
    );
    let target = RestoreInvoker::Session(&rs).targets()[0];
    let init = init_container(&target, &repository("gcs"), &settings()).unwrap();
    let security = init.security_context.unwrap();
    assert_eq!(
        (security.run_as_user, security.run_as_group),
        (Some(1000), Some(0))
    );
}

#[test]
fn the_workload_records_the_restore_invoker_and_hash() {
    let rs = restore_session("deployment");
    let w = injected();
    assert_eq!(
        w.annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_KIND),
        Some("RestoreSession")
    );
    let target = RestoreInvoker::Session(&rs).targets()[0];
    assert_eq!(
        w.template_annotation(labels::ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH),
        Some(target.spec_hash().as_str())
    );
}

#[test]
fn backup_sidecar_and_restore_init_container_share_one_tmp_dir() {
    use stash_operator::BackupInvoker;
    use stash_operator::build::sidecar::inject_sidecar_into_workload;

    let bc = crate::support::backup_configuration("deployment");
    let mut w = workload("deployment");
    let backup = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &backup, &repository("gcs"), &settings()).unwrap();
    let mut rs = restore_session("deployment");
    rs.spec
        .target
        .as_mut()
        .unwrap()
        .reference
        .as_mut()
        .unwrap()
        .name = "stash-demo".to_owned();
    let restore = RestoreInvoker::Session(&rs).target_for(&w).unwrap();
    inject_init_container_into_workload(&mut w, &restore, &repository("gcs"), &settings()).unwrap();
    let tmp_dirs = w
        .pod_spec()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name == "tmp-dir")
        .count();
    assert_eq!(tmp_dirs, 1);

    remove_init_container_from_workload(&mut w, &settings());
    let pod = w.pod_spec().unwrap();
    assert!(pod.containers.iter().any(|c| c.name == "stash"));
    assert!(pod.volumes.iter().flatten().any(|v| v.name == "tmp-dir"));
}

#[test]
fn a_restore_without_a_target_ref_is_refused_with_the_field_to_fix() {
    let mut rs = restore_session("deployment");
    rs.spec.target.as_mut().unwrap().reference = None;
    let target = RestoreInvoker::Session(&rs).targets()[0];
    let err = init_container(&target, &repository("gcs"), &settings()).unwrap_err();
    assert!(matches!(
        err,
        InjectInitContainerError::MissingTarget { .. }
    ));
    assert_eq!(
        err.to_string(),
        "RestoreSession demo/deployment-restore has no spec.target.ref; set it to the workload to restore into"
    );
}
