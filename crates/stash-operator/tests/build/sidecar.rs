//! The backup sidecar (§8.2-§8.4), built from Stash's own BackupConfiguration examples.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use pretty_assertions::assert_eq;
use stash_api::labels;
use stash_api::v1beta1::{BackupBatch, BackupConfigurationStatus};
use stash_operator::build::sidecar::{
    InjectSidecarError, inject_sidecar, inject_sidecar_into_workload, remove_sidecar,
    remove_sidecar_from_workload, sidecar_container, sidecar_is_current,
};
use stash_operator::{BackupInvoker, Settings, Workload};

use crate::support::{
    backup_configuration, container, expect_yaml, repository, settings, stash_example, workload,
};

/// The three workload guides of the Stash docs: example, workload fixture.
const GUIDES: [&str; 3] = ["deployment", "statefulset", "daemonset"];

fn injected(example: &str, fixture: &str) -> Workload {
    let bc = backup_configuration(example);
    let repo = repository("gcs");
    let mut w = workload(fixture);
    let invoker = BackupInvoker::Configuration(&bc);
    let target = invoker
        .target_for(&w)
        .expect("the example targets the fixture");
    inject_sidecar_into_workload(&mut w, &target, &repo, &settings()).unwrap();
    w
}

fn sidecar_of(w: &Workload) -> Container {
    container(w.pod_spec().unwrap(), "stash").clone()
}

#[test]
fn the_deployment_guide_gets_the_sidecar_stash_v0_24_injects() {
    expect_yaml(
        "backupconfiguration-deployment.workload.yaml",
        &[injected("deployment", "deployment").to_value()],
    );
}

#[test]
fn the_statefulset_guide_gets_the_sidecar_and_a_rolling_update_strategy() {
    let w = injected("statefulset", "statefulset");
    expect_yaml(
        "backupconfiguration-statefulset.workload.yaml",
        &[w.to_value()],
    );
    assert_eq!(
        w.to_value()["spec"]["updateStrategy"]["type"],
        "RollingUpdate"
    );
}

#[test]
fn the_daemonset_guide_gets_the_sidecar_and_rolls_one_pod_at_a_time() {
    let w = injected("daemonset", "daemonset");
    expect_yaml(
        "backupconfiguration-daemonset.workload.yaml",
        &[w.to_value()],
    );
    let strategy = &w.to_value()["spec"]["updateStrategy"];
    assert_eq!(strategy["type"], "RollingUpdate");
    assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 1);
}

#[test]
fn sidecar_arguments_are_stash_v0_24_run_backup_flags_in_order() {
    let sidecar = sidecar_of(&injected("deployment", "deployment"));
    assert_eq!(sidecar.name, "stash");
    assert_eq!(sidecar.image.as_deref(), Some("appscode/stash:v0.1.0"));
    assert_eq!(
        sidecar.args.unwrap(),
        [
            "run-backup",
            "--invoker-name=deployment-backup",
            "--invoker-kind=BackupConfiguration",
            "--target-name=stash-demo",
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
fn sidecar_mounts_tmp_dir_first_then_the_target_volumes_at_their_mount_paths() {
    for guide in GUIDES {
        let sidecar = sidecar_of(&injected(guide, guide));
        let mounts: Vec<(String, String)> = sidecar
            .volume_mounts
            .unwrap()
            .into_iter()
            .map(|m| (m.name, m.mount_path))
            .collect();
        assert_eq!(
            mounts,
            [
                ("tmp-dir".to_owned(), "/tmp".to_owned()),
                ("source-data".to_owned(), "/source/data".to_owned()),
            ],
            "{guide}"
        );
    }
}

#[test]
fn sidecar_reads_node_and_pod_name_from_the_downward_api() {
    let env = sidecar_of(&injected("daemonset", "daemonset")).env.unwrap();
    let fields: Vec<(&str, &str)> = env
        .iter()
        .map(|e| {
            let path = e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
            (e.name.as_str(), path.field_path.as_str())
        })
        .collect();
    assert_eq!(
        fields,
        [
            ("NODE_NAME", "spec.nodeName"),
            ("POD_NAME", "metadata.name")
        ]
    );
}

#[test]
fn the_tmp_dir_volume_is_an_empty_dir_shaped_by_temp_dir() {
    let mut bc = backup_configuration("deployment");
    bc.spec.temp_dir =
        Some(serde_json::from_str(r#"{"medium":"Memory","sizeLimit":"2Gi"}"#).unwrap());
    let repo = repository("gcs");
    let mut pod = PodSpec::default();
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    inject_sidecar(&mut pod, &target, &repo, &settings()).unwrap();
    let volume = &pod.volumes.unwrap()[0];
    assert_eq!(volume.name, "tmp-dir");
    let empty_dir = volume.empty_dir.as_ref().unwrap();
    assert_eq!(empty_dir.medium.as_deref(), Some("Memory"));
    assert_eq!(empty_dir.size_limit.as_ref().unwrap().0, "2Gi");
}

#[test]
fn injecting_twice_equals_injecting_once() {
    for guide in GUIDES {
        let bc = backup_configuration(guide);
        let repo = repository("gcs");
        let once = injected(guide, guide);
        let mut twice = once.clone();
        let target = BackupInvoker::Configuration(&bc)
            .target_for(&twice)
            .unwrap();
        inject_sidecar_into_workload(&mut twice, &target, &repo, &settings()).unwrap();
        assert_eq!(twice, once, "{guide}");
    }
}

#[test]
fn reinjecting_replaces_a_stale_stash_container_in_place() {
    let bc = backup_configuration("deployment");
    let repo = repository("gcs");
    let mut w = injected("deployment", "deployment");
    let old = Settings {
        image_tag: "v0.0.9".to_owned(),
        ..settings()
    };
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repo, &old).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repo, &settings()).unwrap();
    let names: Vec<&str> = w
        .pod_spec()
        .unwrap()
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["busybox", "stash"]);
    assert_eq!(w, injected("deployment", "deployment"));
}

#[test]
fn removing_the_sidecar_restores_the_original_workload() {
    for guide in GUIDES {
        let original = workload(guide);
        let mut w = injected(guide, guide);
        remove_sidecar_from_workload(&mut w, &settings());
        // The update strategy stays forced: the removal must reach the pods too (§8.3).
        let mut expected = original.clone();
        expected.force_rolling_update();
        assert_eq!(w, expected, "{guide}");
    }
}

#[test]
fn removing_the_sidecar_from_a_pod_spec_restores_it() {
    let bc = backup_configuration("deployment");
    let repo = repository("gcs");
    let original = workload("deployment").pod_spec().unwrap().clone();
    let mut pod = original.clone();
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    inject_sidecar(&mut pod, &target, &repo, &settings()).unwrap();
    assert_ne!(pod, original);
    remove_sidecar(&mut pod);
    assert_eq!(pod, original);
}

#[test]
fn the_template_hash_is_stable_across_reinjection_and_unrelated_changes() {
    let bc = backup_configuration("deployment");
    let hash = BackupInvoker::Configuration(&bc).targets()[0].spec_hash();
    assert!(hash.parse::<u64>().is_ok(), "a decimal FNV-64a: {hash}");

    let mut changed = bc.clone();
    changed.spec.paused = Some(true);
    changed.spec.schedule = Some("0 * * * *".to_owned());
    changed.spec.retention_policy.keep_last = Some(10);
    changed.spec.backup_history_limit = Some(5);
    changed.metadata.resource_version = Some("4711".to_owned());
    changed.metadata.generation = Some(7);
    changed.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
    changed.status = Some(BackupConfigurationStatus::default());
    assert_eq!(
        BackupInvoker::Configuration(&changed).targets()[0].spec_hash(),
        hash
    );

    let w = injected("deployment", "deployment");
    assert_eq!(
        w.template_annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH),
        Some(hash.as_str())
    );
}

#[test]
fn the_template_hash_changes_when_what_is_injected_changes() {
    let bc = backup_configuration("deployment");
    let hash = BackupInvoker::Configuration(&bc).targets()[0].spec_hash();
    let mut moved = bc.clone();
    moved
        .spec
        .target
        .as_mut()
        .unwrap()
        .volume_mounts
        .as_mut()
        .unwrap()[0]
        .mount_path = "/data".to_owned();
    assert_ne!(
        BackupInvoker::Configuration(&moved).targets()[0].spec_hash(),
        hash
    );
    let mut uncached = bc.clone();
    uncached.spec.temp_dir = Some(serde_json::from_str(r#"{"disableCaching":true}"#).unwrap());
    assert_ne!(
        BackupInvoker::Configuration(&uncached).targets()[0].spec_hash(),
        hash
    );
}

#[test]
fn pausing_the_backup_does_not_touch_the_pod_template() {
    let mut bc = backup_configuration("deployment");
    let before = injected("deployment", "deployment");
    bc.spec.paused = Some(true);
    let mut after = before.clone();
    let target = BackupInvoker::Configuration(&bc)
        .target_for(&after)
        .unwrap();
    inject_sidecar_into_workload(&mut after, &target, &repository("gcs"), &settings()).unwrap();
    assert_eq!(after.pod_template(), before.pod_template());
}

#[test]
fn the_workload_records_the_invoker_without_volatile_metadata() {
    let mut bc = backup_configuration("deployment");
    bc.metadata.resource_version = Some("4711".to_owned());
    bc.metadata.managed_fields = Some(Vec::new());
    bc.status = Some(BackupConfigurationStatus::default());
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap();
    assert_eq!(
        w.annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND),
        Some("BackupConfiguration")
    );
    let applied: serde_json::Value = serde_json::from_str(
        w.annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(applied["apiVersion"], "stash.appscode.com/v1beta1");
    assert_eq!(applied["kind"], "BackupConfiguration");
    assert_eq!(
        applied["metadata"],
        serde_json::json!({
            "name": "deployment-backup",
            "namespace": "demo",
            "uid": bc.metadata.uid,
            "generation": 1,
        })
    );
    assert_eq!(applied["spec"], serde_json::to_value(&bc.spec).unwrap());
    assert!(applied.get("status").is_none());
}

#[test]
fn disable_caching_turns_the_restic_cache_off() {
    let mut bc = backup_configuration("deployment");
    bc.spec.temp_dir = Some(serde_json::from_str(r#"{"disableCaching":true}"#).unwrap());
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    let sidecar = sidecar_container(&target, &repository("gcs"), &settings()).unwrap();
    assert!(
        sidecar
            .args
            .unwrap()
            .contains(&"--enable-cache=false".to_owned())
    );
}

#[test]
fn max_connections_come_from_the_repository_backend() {
    let bc = backup_configuration("deployment");
    let mut repo = repository("gcs");
    repo.spec.backend.gcs.as_mut().unwrap().max_connections = Some(8);
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    let sidecar = sidecar_container(&target, &repo, &settings()).unwrap();
    assert!(
        sidecar
            .args
            .unwrap()
            .contains(&"--max-connections=8".to_owned())
    );
}

#[test]
fn a_local_repository_is_mounted_into_the_sidecar_at_its_mount_path() {
    let bc = backup_configuration("deployment");
    let repo = repository("local-hostpath");
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repo, &settings()).unwrap();
    let pod = w.pod_spec().unwrap();
    let mount = container(pod, "stash")
        .volume_mounts
        .as_ref()
        .unwrap()
        .last()
        .unwrap();
    assert_eq!(
        (mount.name.as_str(), mount.mount_path.as_str()),
        ("stash-local", "/safe/data")
    );
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "stash-local")
        .unwrap();
    assert_eq!(
        volume.host_path.as_ref().unwrap().path,
        "/data/stash-test/repo"
    );

    remove_sidecar_from_workload(&mut w, &settings());
    assert_eq!(w, workload("deployment"));
}

#[test]
fn container_runtime_settings_reach_the_sidecar() {
    let bc = backup_configuration("deployment-full-featured");
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    let sidecar = sidecar_container(&target, &repository("gcs"), &settings()).unwrap();
    let resources = sidecar.resources.unwrap();
    assert_eq!(resources.limits.unwrap()["memory"].0, "256M");
    assert_eq!(resources.requests.unwrap()["memory"].0, "256M");
    let security = sidecar.security_context.unwrap();
    assert_eq!(
        (security.run_as_user, security.run_as_group),
        (Some(2000), Some(2000))
    );
    let env: Vec<(String, Option<String>)> = sidecar
        .env
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value))
        .skip(2)
        .collect();
    assert_eq!(
        env,
        [
            ("NICE_ADJUSTMENT".to_owned(), Some("5".to_owned())),
            ("IONICE_CLASS".to_owned(), Some("2".to_owned())),
            ("IONICE_CLASS_DATA".to_owned(), Some("4".to_owned())),
        ]
    );
}

#[test]
fn pod_runtime_settings_never_reach_the_workload() {
    let bc = backup_configuration("deployment-full-featured");
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap();
    let pod = w.pod_spec().unwrap();
    assert_eq!(pod.service_account_name, None);
    assert_eq!(pod.image_pull_secrets, None);
}

#[test]
fn a_target_volume_missing_from_the_pod_is_refused_with_the_field_to_fix() {
    let mut bc = backup_configuration("deployment");
    bc.spec
        .target
        .as_mut()
        .unwrap()
        .volume_mounts
        .as_mut()
        .unwrap()[0]
        .name = "sourcedata".to_owned();
    let mut w = workload("deployment");
    let before = w.clone();
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    let err =
        inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap_err();
    assert!(matches!(err, InjectSidecarError::UnknownVolume { .. }));
    assert_eq!(
        err.to_string(),
        "BackupConfiguration demo/deployment-backup: spec.target.volumeMounts[0] mounts volume `sourcedata`, which Deployment demo/stash-demo does not have; add the volume to the pod template or correct the name"
    );
    assert_eq!(w, before, "a refused injection leaves the workload alone");
}

#[test]
fn a_target_mounted_over_tmp_is_refused() {
    let mut bc = backup_configuration("deployment");
    bc.spec
        .target
        .as_mut()
        .unwrap()
        .volume_mounts
        .as_mut()
        .unwrap()[0]
        .mount_path = "/tmp".to_owned();
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    let err =
        inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap_err();
    assert!(matches!(err, InjectSidecarError::ReservedMountPath { .. }));
}

#[test]
fn a_target_for_another_workload_is_refused() {
    let bc = backup_configuration("deployment");
    let mut w = workload("deployment-recovered");
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    assert!(BackupInvoker::Configuration(&bc).target_for(&w).is_none());
    let err =
        inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "BackupConfiguration demo/deployment-backup: spec.target.ref names Deployment demo/stash-demo (apps/v1), not Deployment demo/stash-recovered (apps/v1); inject the sidecar into the workload the target names"
    );
}

#[test]
fn a_target_in_another_namespace_does_not_name_a_same_named_workload_here() {
    let mut bc = backup_configuration("deployment");
    bc.spec.target.as_mut().unwrap().reference.namespace = Some("prod".to_owned());
    assert!(
        BackupInvoker::Configuration(&bc)
            .target_for(&workload("deployment"))
            .is_none()
    );
}

#[test]
fn a_backup_with_a_task_runs_as_a_job_not_a_sidecar() {
    let mut bc = backup_configuration("deployment");
    bc.spec.task = Some(serde_json::from_str(r#"{"name":"pvc-backup"}"#).unwrap());
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    assert!(!target.uses_sidecar());
    let err =
        inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings()).unwrap_err();
    assert!(matches!(err, InjectSidecarError::NotSidecarModel { .. }));
}

#[test]
fn a_backup_batch_member_gets_a_sidecar_of_its_own() {
    let batch: BackupBatch = stash_example("backupbatch.yaml");
    let invoker = BackupInvoker::Batch(&batch);
    let mut w = workload("deployment");
    if let Workload::Deployment(d) = &mut w {
        d.metadata.name = Some("wordpress".to_owned());
        let pod = d.spec.template.spec.as_mut().unwrap();
        pod.volumes.as_mut().unwrap()[0].name = "wordpress-persistent-storage".to_owned();
    }
    let target = invoker.target_for(&w).expect("member 1 targets wordpress");
    assert_eq!(target.index, 1);
    assert_eq!(target.target_field(), "spec.members[1].target");
    inject_sidecar_into_workload(&mut w, &target, &repository("s3-minio"), &settings()).unwrap();
    let args = sidecar_of(&w).args.unwrap();
    assert_eq!(
        args[..6],
        [
            "run-backup",
            "--invoker-name=deploy-backup-batch",
            "--invoker-kind=BackupBatch",
            "--target-name=wordpress",
            "--target-namespace=demo",
            "--target-kind=Deployment",
        ]
    );
    assert_eq!(
        w.annotation(labels::ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND),
        Some("BackupBatch")
    );
}

#[test]
fn operator_image_pull_secrets_are_copied_per_invoker_and_removed_with_the_sidecar() {
    let settings = Settings {
        image_pull_secrets: vec!["regcred".to_owned()],
        ..settings()
    };
    let bc = backup_configuration("deployment");
    let mut w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    inject_sidecar_into_workload(&mut w, &target, &repository("gcs"), &settings).unwrap();
    let secrets: Vec<&str> = w
        .pod_spec()
        .unwrap()
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(secrets, ["regcred-backupconfiguration-deployment-backup"]);
    remove_sidecar_from_workload(&mut w, &settings);
    assert_eq!(w, workload("deployment"));
}

#[test]
fn removing_the_sidecar_keeps_tmp_dir_while_the_restore_init_container_needs_it() {
    let mut pod = workload("deployment").pod_spec().unwrap().clone();
    let bc = backup_configuration("deployment");
    let target = BackupInvoker::Configuration(&bc).targets()[0];
    inject_sidecar(&mut pod, &target, &repository("gcs"), &settings()).unwrap();
    pod.init_containers = Some(vec![Container {
        name: "stash-init".to_owned(),
        ..Container::default()
    }]);
    remove_sidecar(&mut pod);
    assert!(pod.volumes.unwrap().iter().any(|v| v.name == "tmp-dir"));
}

#[test]
fn the_sidecar_is_current_after_injection_and_not_before() {
    let bc = backup_configuration("deployment");
    let repo = repository("gcs");
    let w = workload("deployment");
    let target = BackupInvoker::Configuration(&bc).target_for(&w).unwrap();
    assert!(!sidecar_is_current(&w, &target, &repo, &settings()));
    let w = injected("deployment", "deployment");
    assert!(sidecar_is_current(&w, &target, &repo, &settings()));
    let upgraded = Settings {
        image_tag: "v0.2.0".to_owned(),
        ..settings()
    };
    assert!(!sidecar_is_current(&w, &target, &repo, &upgraded));
}
