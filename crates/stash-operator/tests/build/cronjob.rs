//! The trigger CronJob (§9.1), built from Stash's BackupConfiguration examples.

use pretty_assertions::assert_eq;
use stash_api::v1beta1::{BackupBatch, BackupConfiguration};
use stash_operator::BackupInvoker;
use stash_operator::build::cronjob::{
    BuildCronJobError, trigger_cronjob, trigger_cronjob_name, trigger_service_account_name,
};

use crate::support::{backup_configuration, expect_yaml, settings, stash_example};

#[test]
fn each_workload_guide_gets_the_trigger_cronjob_stash_creates() {
    for guide in ["deployment", "statefulset", "daemonset"] {
        let bc = backup_configuration(guide);
        let cronjob = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap();
        expect_yaml(
            &format!("backupconfiguration-{guide}.cronjob.yaml"),
            &[cronjob],
        );
    }
}

#[test]
fn the_trigger_container_creates_a_backup_session_for_its_invoker() {
    let bc = backup_configuration("deployment");
    let cronjob = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    let pod = cronjob
        .spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let container = &pod.containers[0];
    assert_eq!(container.name, "stash-trigger");
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        container.args.as_deref().unwrap(),
        [
            "create-backupsession",
            "--invoker-name=deployment-backup",
            "--invoker-kind=BackupConfiguration",
        ]
    );
}

#[test]
fn paused_true_suspends_the_cronjob_and_false_resumes_it() {
    fn suspend(bc: &BackupConfiguration) -> Option<bool> {
        trigger_cronjob(BackupInvoker::Configuration(bc), &settings())
            .unwrap()
            .spec
            .suspend
    }
    let mut bc = backup_configuration("deployment");
    assert_eq!(suspend(&bc), Some(false));
    bc.spec.paused = Some(true);
    assert_eq!(suspend(&bc), Some(true));
}

#[test]
fn the_cronjob_is_owned_by_its_invoker_and_runs_on_its_schedule() {
    let bc = backup_configuration("statefulset");
    let cronjob = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    assert_eq!(cronjob.spec.schedule, "*/5 * * * *");
    let owner = &cronjob.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str()
        ),
        (
            "stash.appscode.com/v1beta1",
            "BackupConfiguration",
            "ss-backup"
        )
    );
    assert_eq!(owner.uid, bc.metadata.uid.unwrap());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
}

#[test]
fn jobs_of_the_cronjob_are_deleted_on_completion_and_carry_the_invoker_labels() {
    let mut bc = backup_configuration("deployment");
    bc.metadata.labels = Some([("team".to_owned(), "storage".to_owned())].into());
    let cronjob = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    let job_labels = cronjob.spec.job_template.metadata.unwrap().labels.unwrap();
    assert_eq!(
        job_labels["stash.appscode.com/delete-job-on-completion"],
        "true"
    );
    assert_eq!(job_labels["team"], "storage");
    let labels = cronjob.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/component"], "stash-backup");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "stash.appscode.com");
    assert_eq!(labels["team"], "storage");
}

#[test]
fn the_cronjob_name_is_stash_trigger_and_the_invoker_name() {
    let bc = backup_configuration("deployment");
    assert_eq!(
        trigger_cronjob_name(BackupInvoker::Configuration(&bc)),
        "stash-trigger-deployment-backup"
    );
}

#[test]
fn the_cronjob_name_carries_the_invoker_namespace_for_a_target_elsewhere() {
    let mut bc = backup_configuration("deployment");
    bc.spec.target.as_mut().unwrap().reference.namespace = Some("prod".to_owned());
    assert_eq!(
        trigger_cronjob_name(BackupInvoker::Configuration(&bc)),
        "stash-trigger-demo-deployment-backup"
    );
}

#[test]
fn the_cronjob_name_replaces_dots_and_fits_52_characters() {
    let mut bc = backup_configuration("deployment");
    bc.metadata.name = Some("app.v2".to_owned());
    assert_eq!(
        trigger_cronjob_name(BackupInvoker::Configuration(&bc)),
        "stash-trigger-app-v2"
    );
    bc.metadata.name = Some(format!("backup-{}", "x".repeat(50)));
    let name = trigger_cronjob_name(BackupInvoker::Configuration(&bc));
    assert_eq!(name.len(), 52);
    assert!(name.ends_with(&"x".repeat(50)));
}

#[test]
fn a_backup_configuration_without_a_schedule_is_refused_with_the_field_to_fix() {
    let mut bc = backup_configuration("deployment");
    bc.spec.schedule = None;
    let err = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap_err();
    assert!(matches!(err, BuildCronJobError::MissingSchedule { .. }));
    assert_eq!(
        err.to_string(),
        "BackupConfiguration demo/deployment-backup has no spec.schedule; set it to a cron expression such as \"*/5 * * * *\""
    );
}

#[test]
fn an_invoker_not_read_back_from_the_api_server_is_refused() {
    let mut bc = backup_configuration("deployment");
    bc.metadata.uid = None;
    let err = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "BackupConfiguration demo/deployment-backup has no metadata.uid; build the CronJob from the invoker as stored by the API server"
    );
}

#[test]
fn the_cronjob_gets_the_container_settings_that_make_sense_and_every_pod_setting() {
    let bc = backup_configuration("deployment-full-featured");
    let cronjob = trigger_cronjob(BackupInvoker::Configuration(&bc), &settings()).unwrap();
    let pod = cronjob
        .spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container
            .resources
            .as_ref()
            .unwrap()
            .limits
            .as_ref()
            .unwrap()["memory"]
            .0,
        "256M"
    );
    assert_eq!(
        container.security_context.as_ref().unwrap().run_as_user,
        Some(2000)
    );
    // nice/ionice wrap restic; the trigger runs no restic.
    assert_eq!(container.env, None);
    assert_eq!(pod.service_account_name.as_deref(), Some("my-backup-svc"));
    assert_eq!(
        pod.image_pull_secrets.unwrap()[0].name,
        "my-private-registry-secret"
    );
    assert_eq!(
        trigger_service_account_name(BackupInvoker::Configuration(&bc)),
        "my-backup-svc"
    );
}

#[test]
fn a_backup_batch_gets_one_cronjob_with_its_batch_level_settings() {
    let mut batch: BackupBatch = stash_example("backupbatch.yaml");
    batch.spec.paused = Some(true);
    let cronjob = trigger_cronjob(BackupInvoker::Batch(&batch), &settings()).unwrap();
    assert_eq!(
        cronjob.metadata.name.as_deref(),
        Some("stash-trigger-deploy-backup-batch")
    );
    assert_eq!(cronjob.spec.schedule, "*/3 * * * *");
    assert_eq!(cronjob.spec.suspend, Some(true));
    let pod = cronjob
        .spec
        .job_template
        .spec
        .unwrap()
        .template
        .spec
        .unwrap();
    assert_eq!(
        pod.containers[0].args.as_deref().unwrap(),
        [
            "create-backupsession",
            "--invoker-name=deploy-backup-batch",
            "--invoker-kind=BackupBatch",
        ]
    );
}
