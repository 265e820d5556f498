//! The trigger CronJob of a backup invoker (§9.1): on every tick it runs `stash create-backupsession`,
//! and the BackupSession it creates is what the sidecars and the operator react to.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stash_api::common::PodRuntimeSettings;
use stash_api::labels;

use super::{
    MAX_CRONJOB_NAME_LENGTH, image_pull_secrets, managed_labels, valid_name_with_prefix_and_suffix,
    valid_name_with_suffix,
};
use crate::invoker::BackupInvoker;
use crate::settings::Settings;

/// Prefix of trigger CronJob names since Stash v0.16.
pub const PREFIX_STASH_TRIGGER: &str = "stash-trigger";

/// Building the trigger CronJob failed; each message names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildCronJobError {
    #[error("{invoker} has no spec.schedule; set it to a cron expression such as \"*/5 * * * *\"")]
    MissingSchedule { invoker: String },
    #[error(
        "{invoker} has no metadata.{field}; build the CronJob from the invoker as stored by the API server"
    )]
    MissingMetadata {
        invoker: String,
        field: &'static str,
    },
}

/// The CronJob's name (§9.1): `stash-trigger-<invoker-name>`, or `stash-trigger-<namespace>-<name>` when
/// the target lives in another namespace, dots replaced by `-` and shortened to 52 characters as kmodules
/// does. For the same-namespace case this is the v0.16-v0.22 name the docs show, not v0.23's
/// `stash-trigger--<name>`; controllers should find the CronJob by owner reference either way.
#[must_use]
pub fn trigger_cronjob_name(invoker: BackupInvoker<'_>) -> String {
    let name = invoker.name().replace('.', "-");
    let target_namespace = invoker
        .targets()
        .iter()
        .filter_map(|t| t.target.and_then(|t| t.reference.namespace.as_deref()))
        .find(|ns| !ns.is_empty())
        .unwrap_or(invoker.namespace());
    if target_namespace == invoker.namespace() {
        valid_name_with_suffix(PREFIX_STASH_TRIGGER, &name, MAX_CRONJOB_NAME_LENGTH)
    } else {
        valid_name_with_prefix_and_suffix(
            PREFIX_STASH_TRIGGER,
            invoker.namespace(),
            &name,
            MAX_CRONJOB_NAME_LENGTH,
        )
    }
}

/// The service account the trigger pods run as: `runtimeSettings.pod.serviceAccountName`, else one named
/// like the CronJob that the operator creates (see [`super::rbac::trigger_cronjob_rbac`]).
#[must_use]
pub fn trigger_service_account_name(invoker: BackupInvoker<'_>) -> String {
    invoker
        .runtime_settings()
        .and_then(|r| r.pod.as_ref())
        .and_then(|p| p.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| trigger_cronjob_name(invoker))
}

/// The invoker's labels with the component/managed-by labels on top (§9.1).
pub(crate) fn trigger_labels(invoker: BackupInvoker<'_>) -> BTreeMap<String, String> {
    let mut out = invoker.metadata().labels.clone().unwrap_or_default();
    out.extend(managed_labels(labels::COMPONENT_BACKUP));
    out
}

/// The trigger CronJob of `invoker` (§9.1): owned by the invoker, suspended while it is paused, running
/// `create-backupsession` in a `stash-trigger` container with only the container settings that make sense
/// there (resources, env, envFrom, securityContext) and all pod settings. Concurrency policy and history
/// limits are left to Kubernetes' defaults, as Stash leaves them.
pub fn trigger_cronjob(
    invoker: BackupInvoker<'_>,
    settings: &Settings,
) -> Result<CronJob, BuildCronJobError> {
    let missing = |field| BuildCronJobError::MissingMetadata {
        invoker: invoker.to_string(),
        field,
    };
    let schedule = invoker
        .schedule()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| BuildCronJobError::MissingSchedule {
            invoker: invoker.to_string(),
        })?;
    if invoker.name().is_empty() {
        return Err(missing("name"));
    }
    if invoker.namespace().is_empty() {
        return Err(missing("namespace"));
    }
    let owner = invoker.owner_reference().ok_or_else(|| missing("uid"))?;

    let labels = trigger_labels(invoker);
    let mut job_labels = labels.clone();
    job_labels.insert(
        labels::LABEL_DELETE_JOB_ON_COMPLETION.to_owned(),
        "true".to_owned(),
    );

    let runtime = invoker.runtime_settings();
    let mut container = Container {
        name: labels::CONTAINER_TRIGGER.to_owned(),
        image: Some(settings.image_ref()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        args: Some(vec![
            "create-backupsession".to_owned(),
            format!("--invoker-name={}", invoker.name()),
            format!("--invoker-kind={}", invoker.kind()),
        ]),
        ..Container::default()
    };
    if let Some(c) = runtime.and_then(|r| r.container.as_ref()) {
        container.resources.clone_from(&c.resources);
        container.env.clone_from(&c.env);
        container.env_from.clone_from(&c.env_from);
        container.security_context.clone_from(&c.security_context);
    }

    let pull_secrets = image_pull_secrets(settings, invoker.kind().as_str(), invoker.name());
    let mut pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".to_owned()),
        service_account_name: Some(trigger_service_account_name(invoker)),
        image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
        ..PodSpec::default()
    };
    if let Some(p) = runtime.and_then(|r| r.pod.as_ref()) {
        apply_pod_runtime_settings(&mut pod, p);
    }

    Ok(CronJob {
        metadata: ObjectMeta {
            name: Some(trigger_cronjob_name(invoker)),
            namespace: Some(invoker.namespace().to_owned()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: CronJobSpec {
            schedule: schedule.to_owned(),
            suspend: Some(invoker.paused()),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        status: None,
    })
}

/// kmodules' `ApplyPodRuntimeSettings`: each pod setting that is present replaces the pod's; image-pull
/// Secrets are merged.
pub(crate) fn apply_pod_runtime_settings(pod: &mut PodSpec, settings: &PodRuntimeSettings) {
    fn set<T: Clone>(target: &mut Option<T>, value: Option<&T>) {
        if let Some(value) = value {
            *target = Some(value.clone());
        }
    }
    set(
        &mut pod.node_selector,
        settings.node_selector.as_ref().filter(|m| !m.is_empty()),
    );
    set(
        &mut pod.service_account_name,
        settings
            .service_account_name
            .as_ref()
            .filter(|s| !s.is_empty()),
    );
    set(
        &mut pod.automount_service_account_token,
        settings.automount_service_account_token.as_ref(),
    );
    set(
        &mut pod.node_name,
        settings.node_name.as_ref().filter(|s| !s.is_empty()),
    );
    set(
        &mut pod.security_context,
        settings.security_context.as_ref(),
    );
    if let Some(secrets) = settings.image_pull_secrets.as_ref() {
        let existing = pod.image_pull_secrets.get_or_insert_with(Vec::new);
        for secret in secrets {
            if !existing.contains(secret) {
                existing.push(secret.clone());
            }
        }
        if existing.is_empty() {
            pod.image_pull_secrets = None;
        }
    }
    set(&mut pod.affinity, settings.affinity.as_ref());
    set(
        &mut pod.scheduler_name,
        settings.scheduler_name.as_ref().filter(|s| !s.is_empty()),
    );
    set(
        &mut pod.tolerations,
        settings.tolerations.as_ref().filter(|t| !t.is_empty()),
    );
    set(
        &mut pod.priority_class_name,
        settings
            .priority_class_name
            .as_ref()
            .filter(|s| !s.is_empty()),
    );
    set(&mut pod.priority, settings.priority.as_ref());
    set(
        &mut pod.readiness_gates,
        settings.readiness_gates.as_ref().filter(|g| !g.is_empty()),
    );
    set(
        &mut pod.runtime_class_name,
        settings.runtime_class_name.as_ref(),
    );
    set(
        &mut pod.enable_service_links,
        settings.enable_service_links.as_ref(),
    );
    set(
        &mut pod.topology_spread_constraints,
        settings.topology_spread_constraints.as_ref(),
    );
}
