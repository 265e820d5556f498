//! The job model for standalone PersistentVolumeClaims (§9.3, §11.1): one backup Job per BackupSession
//! target and one restore Job per RestoreSession, each resolving Stash's default Tasks (`pvc-backup` →
//! `update-status`, `pvc-restore` → `update-status`): the data step is the init-container, `update-status`
//! the main container, and the two share `/tmp/output` through the `tmp-dir` emptyDir. The claim is mounted
//! as volume `stash-volume` at `TARGET_MOUNT_PATH` (the target's first volumeMount, default `/stash-data`).
//!
//! The executors reuse the ClusterRoles of the in-pod executors (`stash-sidecar` for backup Jobs,
//! `stash-restore-init-container` for restore Jobs), bound to a ServiceAccount the operator creates per
//! invoker, plus the per-Repository Role, so no new ClusterRole has to be installed with the operator.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use stash_api::common::{Backend, RetentionPolicy, RuntimeSettings, TargetRef};
use stash_api::labels;
use stash_api::v1alpha1::Repository;
use stash_api::v1beta1::{BackupSession, RestoreSession};

use super::cronjob::apply_pod_runtime_settings;
use super::rbac::{
    BuildRbacError, ExecutorRbac, binding, named_rule, rbac_meta, repository_identity,
    restore_init_container_cluster_role, sidecar_cluster_role,
};
use super::{
    MAX_NAME_LENGTH, apply_container_runtime_settings, executor_env, executor_volumes,
    image_pull_secrets, managed_labels, valid_name_with_prefix_and_suffix, valid_name_with_suffix,
};
use crate::invoker::{BackupTargetInfo, RestoreInvoker, RestoreTargetInfo};
use crate::settings::Settings;

/// `kind` of a standalone claim target.
pub const PVC_KIND: &str = "PersistentVolumeClaim";
/// Backup Job names: `stash-backup-<session>-<target-index>` (§9.3).
pub const BACKUP_JOB_PREFIX: &str = "stash-backup";
/// Restore Job names: `stash-restore-<restoresession>-<index>` (§9.3).
pub const RESTORE_JOB_PREFIX: &str = "stash-restore";
/// The Functions of Stash's default Tasks (§7), which name the containers.
pub const FUNCTION_PVC_BACKUP: &str = "pvc-backup";
pub const FUNCTION_PVC_RESTORE: &str = "pvc-restore";
pub const FUNCTION_UPDATE_STATUS: &str = "update-status";
/// Where the data step leaves its result for `update-status` (the Tasks' `outputDir` param).
pub const OUTPUT_DIR: &str = "/tmp/output";
/// The host a claim is backed up as, without an alias (§8.5).
pub const PVC_HOST: &str = labels::DEFAULT_HOST;
/// Job pods run as this user unless `runtimeSettings.pod.securityContext` says otherwise (§11.1).
pub const JOB_RUN_AS_USER: i64 = 65535;

/// Whether `reference` names a standalone claim (`v1`, kind PersistentVolumeClaim).
#[must_use]
pub fn is_pvc(reference: &TargetRef) -> bool {
    reference.kind == PVC_KIND
        && reference
            .api_version
            .as_deref()
            .is_none_or(|v| v.is_empty() || v == "v1")
}

/// Building a Job failed; each message names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildJobError {
    #[error(
        "{object} has no metadata.{field}; build its Job from the object as stored by the API server"
    )]
    MissingMetadata { object: String, field: &'static str },
    #[error("{object} names no target; set {field}.ref to the PersistentVolumeClaim")]
    MissingTarget { object: String, field: String },
    #[error(
        "{object}: {field}.ref names {kind} {name}, not a PersistentVolumeClaim of v1; only standalone claims run in a Job"
    )]
    NotAClaim {
        object: String,
        field: String,
        kind: String,
        name: String,
    },
    #[error(transparent)]
    Rbac(#[from] BuildRbacError),
}

/// `<prefix>-<owner>-<index>`, dots replaced, at most 63 characters.
fn job_name(prefix: &str, owner: &str, index: usize) -> String {
    valid_name_with_prefix_and_suffix(
        prefix,
        &owner.replace('.', "-"),
        &index.to_string(),
        MAX_NAME_LENGTH,
    )
}

/// `stash-backup-<session>-<target-index>`.
#[must_use]
pub fn backup_job_name(session: &str, index: usize) -> String {
    job_name(BACKUP_JOB_PREFIX, session, index)
}

/// `stash-restore-<restoresession>-<index>`.
#[must_use]
pub fn restore_job_name(restore_session: &str, index: usize) -> String {
    job_name(RESTORE_JOB_PREFIX, restore_session, index)
}

/// The service account a backup Job of invoker `invoker_name` runs as when no
/// `runtimeSettings.pod.serviceAccountName` is given: `stash-backup-job-<invoker>`.
#[must_use]
pub fn backup_service_account_name(invoker_name: &str) -> String {
    valid_name_with_suffix("stash-backup-job", invoker_name, MAX_NAME_LENGTH)
}

/// `stash-restore-job-<restoresession>`.
#[must_use]
pub fn restore_service_account_name(invoker_name: &str) -> String {
    valid_name_with_suffix("stash-restore-job", invoker_name, MAX_NAME_LENGTH)
}

fn controller_reference(kind: &str, meta: &ObjectMeta) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: format!("{}/v1beta1", labels::GROUP),
        kind: kind.to_owned(),
        name: meta.name.clone()?,
        uid: meta.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The Repository's backend as Stash's Function flags (`--provider`, `--bucket`, `--endpoint`,
/// `--region`, `--path`); the agent reads the Repository itself, these document the Job.
fn backend_flags(backend: &Backend) -> Vec<String> {
    let (provider, bucket, endpoint, region, prefix) = if let Some(s3) = &backend.s3 {
        (
            "s3",
            Some(s3.bucket.clone()),
            Some(s3.endpoint.clone()),
            s3.region.clone(),
            s3.prefix.clone(),
        )
    } else if let Some(gcs) = &backend.gcs {
        (
            "gcs",
            Some(gcs.bucket.clone()),
            None,
            None,
            gcs.prefix.clone(),
        )
    } else if let Some(azure) = &backend.azure {
        (
            "azure",
            Some(azure.container.clone()),
            None,
            None,
            azure.prefix.clone(),
        )
    } else if let Some(swift) = &backend.swift {
        (
            "swift",
            Some(swift.container.clone()),
            None,
            None,
            swift.prefix.clone(),
        )
    } else if let Some(b2) = &backend.b2 {
        ("b2", Some(b2.bucket.clone()), None, None, b2.prefix.clone())
    } else if let Some(rest) = &backend.rest {
        ("rest", None, rest.url.clone(), None, None)
    } else if let Some(local) = &backend.local {
        (
            "local",
            Some(local.mount_path.clone()),
            None,
            None,
            local.sub_path.clone(),
        )
    } else {
        return Vec::new();
    };
    let mut flags = vec![format!("--provider={provider}")];
    let mut push = |flag: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            flags.push(format!("--{flag}={v}"));
        }
    };
    push("bucket", bucket);
    push("endpoint", endpoint);
    push("region", region);
    push("path", prefix);
    flags
}

fn retention_flags(policy: &RetentionPolicy) -> Vec<String> {
    let mut flags = Vec::new();
    for (name, value) in [
        ("last", policy.keep_last),
        ("hourly", policy.keep_hourly),
        ("daily", policy.keep_daily),
        ("weekly", policy.keep_weekly),
        ("monthly", policy.keep_monthly),
        ("yearly", policy.keep_yearly),
    ] {
        if let Some(n) = value {
            flags.push(format!("--retention-keep-{name}={n}"));
        }
    }
    if let Some(tags) = policy.keep_tags.as_ref().filter(|t| !t.is_empty()) {
        flags.push(format!("--retention-keep-tags={}", tags.join(",")));
    }
    flags.push(format!("--retention-prune={}", policy.prune));
    flags.push(format!(
        "--retention-dry-run={}",
        policy.dry_run.unwrap_or(false)
    ));
    flags
}

/// The claim's mount: volume `stash-volume` at the first volumeMount's path (default `/stash-data`).
fn target_mount(volume_mounts: Option<&[VolumeMount]>) -> VolumeMount {
    let first = volume_mounts.and_then(<[VolumeMount]>::first);
    VolumeMount {
        name: labels::VOLUME_PVC_TARGET.to_owned(),
        mount_path: first.map_or_else(
            || labels::DEFAULT_TARGET_MOUNT_PATH.to_owned(),
            |m| m.mount_path.clone(),
        ),
        sub_path: first.and_then(|m| m.sub_path.clone()),
        ..VolumeMount::default()
    }
}

/// What differs between the backup and the restore Job; [`assemble`] builds the rest alike.
struct JobParts<'a> {
    name: String,
    namespace: &'a str,
    owner: OwnerReference,
    invoker_labels: Option<&'a BTreeMap<String, String>>,
    component: &'a str,
    common: CommonFlags<'a>,
    /// The data step's Function and its own flags, after the common ones and `--hostname`.
    function: &'a str,
    data_args: Vec<String>,
    host: String,
    target_mount: VolumeMount,
    runtime: Option<&'a RuntimeSettings>,
    temp_dir: Option<&'a stash_api::common::EmptyDirSettings>,
    default_service_account: String,
    run_as_user: i64,
}

fn assemble(parts: JobParts<'_>, settings: &Settings) -> Job {
    let JobParts {
        name,
        namespace,
        owner,
        invoker_labels,
        component,
        common,
        function,
        data_args,
        host,
        target_mount,
        runtime,
        temp_dir,
        default_service_account,
        run_as_user,
    } = parts;
    let repository = common.repository;
    let command = if function == FUNCTION_PVC_BACKUP {
        "backup-pvc"
    } else {
        "restore-pvc"
    };
    let mut args = vec![command.to_owned()];
    args.extend(common.flags());
    args.push(format!("--hostname={host}"));
    args.extend(data_args);
    args.extend(settings.executor_flags());
    let mut data_container = container(function, 0, settings, args);
    let mut update_status = container(
        FUNCTION_UPDATE_STATUS,
        1,
        settings,
        common.update_status_args(settings),
    );
    let mut pod_labels = invoker_labels.cloned().unwrap_or_default();
    pod_labels.extend(managed_labels(component));
    let (service_account, _) = service_account_for(runtime, default_service_account);
    let pull_secrets = image_pull_secrets(settings, common.invoker_kind, common.invoker_name);
    let base_mounts = executor_mounts(repository);
    let mut data_mounts = base_mounts.clone();
    data_mounts.push(target_mount);
    for (container, mounts) in [
        (&mut data_container, data_mounts),
        (&mut update_status, base_mounts),
    ] {
        container.image_pull_policy = Some("IfNotPresent".to_owned());
        container.env = Some(executor_env());
        container.volume_mounts = Some(mounts);
        if let Some(c) = runtime.and_then(|r| r.container.as_ref()) {
            apply_container_runtime_settings(container, c);
        }
    }
    let volumes = job_volumes(temp_dir, repository, &common.reference.name);
    let mut pod = PodSpec {
        init_containers: Some(vec![data_container]),
        containers: vec![update_status],
        restart_policy: Some("Never".to_owned()),
        service_account_name: Some(service_account),
        image_pull_secrets: (!pull_secrets.is_empty()).then_some(pull_secrets),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(run_as_user),
            ..PodSecurityContext::default()
        }),
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    if let Some(p) = runtime.and_then(|r| r.pod.as_ref()) {
        apply_pod_runtime_settings(&mut pod, p);
    }
    let annotations = runtime
        .and_then(|r| r.pod.as_ref())
        .and_then(|p| p.pod_annotations.clone());
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(pod_labels.clone()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations,
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The executor's scratch space and, for a local backend, the repository's volume.
fn executor_mounts(repository: &Repository) -> Vec<VolumeMount> {
    let mut mounts = vec![VolumeMount {
        name: labels::VOLUME_TMP_DIR.to_owned(),
        mount_path: labels::TMP_DIR_MOUNT_PATH.to_owned(),
        ..VolumeMount::default()
    }];
    if let Some(local) = &repository.spec.backend.local {
        mounts.push(VolumeMount {
            name: labels::VOLUME_LOCAL_BACKEND.to_owned(),
            mount_path: local.mount_path.clone(),
            sub_path: local.sub_path.clone(),
            ..VolumeMount::default()
        });
    }
    mounts
}

/// The executor's volumes plus the target claim.
fn job_volumes(
    temp_dir: Option<&stash_api::common::EmptyDirSettings>,
    repository: &Repository,
    claim_name: &str,
) -> Vec<Volume> {
    let mut volumes = executor_volumes(temp_dir, repository);
    volumes.push(Volume {
        name: labels::VOLUME_PVC_TARGET.to_owned(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.to_owned(),
            read_only: None,
        }),
        ..Volume::default()
    });
    volumes
}

fn container(name: &str, index: usize, settings: &Settings, args: Vec<String>) -> Container {
    Container {
        name: format!("{name}-{index}"),
        image: Some(settings.image_ref()),
        args: Some(args),
        ..Container::default()
    }
}

fn service_account_for(runtime: Option<&RuntimeSettings>, default: String) -> (String, bool) {
    match runtime
        .and_then(|r| r.pod.as_ref())
        .and_then(|p| p.service_account_name.clone())
        .filter(|s| !s.is_empty())
    {
        Some(given) => (given, false),
        None => (default, true),
    }
}

/// The flags both containers of a Job share (Stash passes the same set to every Function).
struct CommonFlags<'a> {
    namespace: &'a str,
    backup_session: Option<&'a str>,
    invoker_kind: &'a str,
    invoker_name: &'a str,
    reference: &'a TargetRef,
    target_namespace: &'a str,
    enable_cache: bool,
    repository: &'a Repository,
}

impl CommonFlags<'_> {
    fn flags(&self) -> Vec<String> {
        let mut args = backend_flags(&self.repository.spec.backend);
        args.extend([
            format!("--scratch-dir={}", labels::TMP_DIR_MOUNT_PATH),
            format!("--enable-cache={}", self.enable_cache),
            format!(
                "--max-connections={}",
                self.repository.spec.backend.max_connections()
            ),
            format!("--namespace={}", self.namespace),
        ]);
        if let Some(session) = self.backup_session {
            args.push(format!("--backupsession={session}"));
        }
        args.extend([
            format!("--invoker-kind={}", self.invoker_kind),
            format!("--invoker-name={}", self.invoker_name),
            format!("--target-kind={}", self.reference.kind),
            format!("--target-name={}", self.reference.name),
            format!("--target-namespace={}", self.target_namespace),
            format!("--output-dir={OUTPUT_DIR}"),
        ]);
        args
    }

    /// `update-status`'s args: the common flags, the Repository and the Pushgateway.
    fn update_status_args(&self, settings: &Settings) -> Vec<String> {
        let mut args = vec!["update-status".to_owned()];
        args.extend(self.flags());
        args.extend([
            format!(
                "--repository={}",
                self.repository.metadata.name.as_deref().unwrap_or_default()
            ),
            "--metrics-enabled=true".to_owned(),
            format!("--metrics-pushgateway-url={}", settings.pushgateway_url),
        ]);
        args.extend(settings.logger_flags());
        args
    }
}

/// The restore rules as `pvc-restore`'s flags: `--restore-paths`, `--snapshots`, `--include`,
/// `--exclude` (comma-joined over the rules) and the first `--source-hostname`.
fn rule_flags(rules: &[stash_api::common::Rule]) -> Vec<String> {
    let joined = |pick: fn(&stash_api::common::Rule) -> Option<&Vec<String>>| {
        rules
            .iter()
            .filter_map(pick)
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut restore_args = Vec::new();
    for (flag, value) in [
        ("restore-paths", joined(|r| r.paths.as_ref())),
        ("snapshots", joined(|r| r.snapshots.as_ref())),
        ("include", joined(|r| r.include.as_ref())),
        ("exclude", joined(|r| r.exclude.as_ref())),
    ] {
        if !value.is_empty() {
            restore_args.push(format!("--{flag}={value}"));
        }
    }
    if let Some(source) = rules
        .iter()
        .find_map(|r| r.source_host.clone())
        .filter(|s| !s.is_empty())
    {
        restore_args.push(format!("--source-hostname={source}"));
    }
    restore_args
}

/// `alias`, else `host-0` (§8.5).
fn host_of(alias: Option<&String>) -> String {
    alias
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| PVC_HOST.to_owned())
}

/// The backup Job of one claim target of `session` (§9.3, §11.1): owned by the session, labelled like
/// the invoker, running `backup-pvc` then `update-status` as host `alias` or `host-0`.
pub fn backup_job(
    session: &BackupSession,
    info: &BackupTargetInfo<'_>,
    retention: &RetentionPolicy,
    repository: &Repository,
    settings: &Settings,
) -> Result<Job, BuildJobError> {
    let object = format!(
        "BackupSession {}/{}",
        session.metadata.namespace.as_deref().unwrap_or_default(),
        session.metadata.name.as_deref().unwrap_or_default()
    );
    let missing = |field| BuildJobError::MissingMetadata {
        object: object.clone(),
        field,
    };
    let session_name = session
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| missing("name"))?;
    let namespace = session
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| missing("namespace"))?;
    let owner =
        controller_reference("BackupSession", &session.metadata).ok_or_else(|| missing("uid"))?;
    let target = info.target.ok_or_else(|| BuildJobError::MissingTarget {
        object: info.invoker.to_string(),
        field: info.target_field(),
    })?;
    let reference = &target.reference;
    if !is_pvc(reference) {
        return Err(BuildJobError::NotAClaim {
            object: info.invoker.to_string(),
            field: info.target_field(),
            kind: reference.kind.clone(),
            name: reference.name.clone(),
        });
    }
    let invoker = info.invoker;
    let mount = target_mount(target.volume_mounts.as_deref());
    let paths = target
        .paths
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| vec![mount.mount_path.clone()]);
    let (_, secret) = repository_identity(repository)?;
    let repository_namespace = repository
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(namespace);
    let mut backup_args = vec![
        format!("--backup-paths={}", paths.join(",")),
        format!("--storage-secret-name={secret}"),
        format!("--storage-secret-namespace={repository_namespace}"),
    ];
    if let Some(exclude) = target.exclude.as_ref().filter(|e| !e.is_empty()) {
        backup_args.push(format!("--exclude={}", exclude.join(",")));
    }
    if let Some(args) = target.args.as_ref().filter(|a| !a.is_empty()) {
        backup_args.push(format!("--args={}", args.join(" ")));
    }
    backup_args.extend(retention_flags(retention));
    let kind = invoker.kind().to_string();
    let parts = JobParts {
        name: backup_job_name(session_name, info.index),
        namespace,
        owner,
        invoker_labels: invoker.metadata().labels.as_ref(),
        component: labels::COMPONENT_BACKUP,
        common: CommonFlags {
            namespace,
            backup_session: Some(session_name),
            invoker_kind: &kind,
            invoker_name: invoker.name(),
            reference,
            target_namespace: info.target_namespace(),
            enable_cache: info.enable_cache(),
            repository,
        },
        function: FUNCTION_PVC_BACKUP,
        data_args: backup_args,
        host: host_of(target.alias.as_ref()),
        target_mount: mount,
        runtime: info.runtime_settings,
        temp_dir: info.temp_dir,
        default_service_account: backup_service_account_name(invoker.name()),
        run_as_user: JOB_RUN_AS_USER,
    };
    Ok(assemble(parts, settings))
}

/// The restore Job of a RestoreSession whose target is a claim (§9.3, §11.1): owned by the
/// RestoreSession, running `restore-pvc` then `update-status` as host `alias` or `host-0`. It runs as
/// root by default, as the restore init-container does (§10), so restored files keep their owners.
pub fn restore_job(
    info: &RestoreTargetInfo<'_>,
    repository: &Repository,
    settings: &Settings,
) -> Result<Job, BuildJobError> {
    let invoker = info.invoker;
    let RestoreInvoker::Session(rs) = invoker else {
        return Err(BuildJobError::MissingTarget {
            object: invoker.to_string(),
            field: info.target_field(),
        });
    };
    let object = invoker.to_string();
    let missing = |field| BuildJobError::MissingMetadata {
        object: object.clone(),
        field,
    };
    if invoker.name().is_empty() {
        return Err(missing("name"));
    }
    let namespace = rs
        .metadata
        .namespace
        .as_deref()
        .ok_or_else(|| missing("namespace"))?;
    let owner =
        controller_reference("RestoreSession", &rs.metadata).ok_or_else(|| missing("uid"))?;
    let target = info.target.ok_or_else(|| BuildJobError::MissingTarget {
        object: object.clone(),
        field: info.target_field(),
    })?;
    let reference = info.target_ref().filter(|r| is_pvc(r)).ok_or_else(|| {
        let r = info.target_ref();
        BuildJobError::NotAClaim {
            object: object.clone(),
            field: info.target_field(),
            kind: r.map(|r| r.kind.clone()).unwrap_or_default(),
            name: r.map(|r| r.name.clone()).unwrap_or_default(),
        }
    })?;
    let rules = target
        .rules
        .as_deref()
        .filter(|r| !r.is_empty())
        .or(rs.spec.rules.as_deref())
        .unwrap_or_default();
    let kind = invoker.kind().to_string();
    let parts = JobParts {
        name: restore_job_name(invoker.name(), info.index),
        namespace,
        owner,
        invoker_labels: invoker.metadata().labels.as_ref(),
        component: labels::COMPONENT_RESTORE,
        common: CommonFlags {
            namespace,
            backup_session: None,
            invoker_kind: &kind,
            invoker_name: invoker.name(),
            reference,
            target_namespace: info.target_namespace(),
            enable_cache: info.enable_cache(),
            repository,
        },
        function: FUNCTION_PVC_RESTORE,
        data_args: rule_flags(rules),
        host: host_of(target.alias.as_ref()),
        target_mount: target_mount(target.volume_mounts.as_deref()),
        runtime: info.runtime_settings,
        temp_dir: info.temp_dir,
        default_service_account: restore_service_account_name(invoker.name()),
        run_as_user: 0,
    };
    Ok(assemble(parts, settings))
}

/// `<prefix>-<invoker-namespace>-<invoker>`: the Role (and its binding) of a Job executor that reads one
/// Repository, in the Repository's namespace.
fn job_repository_access_name(prefix: &str, namespace: &str, invoker_name: &str) -> String {
    valid_name_with_prefix_and_suffix(prefix, namespace, invoker_name, MAX_NAME_LENGTH)
}

const RESTORE_JOB_REPOSITORY_ACCESS_PREFIX: &str = "stash-restore-job-repository";

/// The name of the Repository Role and RoleBinding of RestoreSession `namespace/name`'s restore Job. In
/// another namespace than the RestoreSession they cannot be owned by it, so its finalizer deletes them.
#[must_use]
pub fn restore_job_repository_access_name(namespace: &str, restore_session: &str) -> String {
    job_repository_access_name(
        RESTORE_JOB_REPOSITORY_ACCESS_PREFIX,
        namespace,
        restore_session,
    )
}

/// One Job executor's RBAC: its ServiceAccount (unless the user names one), `cluster_role` bound to it,
/// and the Role reading exactly one Repository and its Secret.
struct JobRbacParts<'a> {
    namespace: &'a str,
    owner: OwnerReference,
    service_account: (String, bool),
    cluster_role: ClusterRole,
    access_prefix: &'a str,
    invoker_name: &'a str,
    component: &'a str,
    repository: &'a Repository,
    repository_rules: Vec<PolicyRule>,
}

fn job_rbac(parts: JobRbacParts<'_>) -> ExecutorRbac {
    let JobRbacParts {
        namespace,
        owner,
        service_account: (service_account, owned),
        cluster_role,
        access_prefix,
        invoker_name,
        component,
        repository,
        repository_rules,
    } = parts;
    let component_labels = managed_labels(component);
    let service_account_object = owned.then(|| ServiceAccount {
        metadata: rbac_meta(
            service_account.clone(),
            namespace,
            component_labels.clone(),
            Some(owner.clone()),
        ),
        ..ServiceAccount::default()
    });
    let role_name = cluster_role.metadata.name.clone().unwrap_or_default();
    let role_binding = binding(
        rbac_meta(
            valid_name_with_suffix(&role_name, invoker_name, MAX_NAME_LENGTH),
            namespace,
            component_labels.clone(),
            Some(owner.clone()),
        ),
        "ClusterRole",
        &role_name,
        &service_account,
        namespace,
    );
    let repository_namespace = repository
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(namespace);
    let access_name = job_repository_access_name(access_prefix, namespace, invoker_name);
    let access_meta = rbac_meta(
        access_name.clone(),
        repository_namespace,
        component_labels,
        (repository_namespace == namespace).then_some(owner),
    );
    let role = Role {
        metadata: access_meta.clone(),
        rules: Some(repository_rules),
    };
    let access_binding = binding(
        access_meta,
        "Role",
        &access_name,
        &service_account,
        namespace,
    );
    ExecutorRbac {
        service_account: service_account_object,
        cluster_role,
        role_binding,
        repository_access: Some((role, access_binding)),
    }
}

/// RBAC of the backup Jobs of `info`'s invoker: `stash-sidecar` (the same rights the sidecar has) bound to
/// `stash-backup-job-<invoker>`, and the Repository (with its status) and its Secret. Owned by the invoker.
pub fn backup_job_rbac(
    info: &BackupTargetInfo<'_>,
    repository: &Repository,
) -> Result<ExecutorRbac, BuildRbacError> {
    let invoker = info.invoker;
    let owner = invoker
        .owner_reference()
        .ok_or_else(|| BuildRbacError::MissingUid {
            object: invoker.to_string(),
        })?;
    let (repo, secret) = repository_identity(repository)?;
    Ok(job_rbac(JobRbacParts {
        namespace: invoker.namespace(),
        owner,
        service_account: service_account_for(
            info.runtime_settings,
            backup_service_account_name(invoker.name()),
        ),
        cluster_role: sidecar_cluster_role(),
        access_prefix: "stash-backup-job-repository",
        invoker_name: invoker.name(),
        component: labels::COMPONENT_BACKUP,
        repository,
        repository_rules: vec![
            named_rule(labels::GROUP, "repositories", repo, &["get"]),
            named_rule(
                labels::GROUP,
                "repositories/status",
                repo,
                &["get", "patch", "update"],
            ),
            named_rule("", "secrets", secret, &["get"]),
        ],
    }))
}

/// RBAC of the restore Job: `stash-restore-init-container` bound to `stash-restore-job-<restoresession>`,
/// and the Repository and its Secret. Owned by the RestoreSession.
pub fn restore_job_rbac(
    info: &RestoreTargetInfo<'_>,
    repository: &Repository,
) -> Result<ExecutorRbac, BuildRbacError> {
    let invoker = info.invoker;
    let owner = invoker
        .owner_reference()
        .ok_or_else(|| BuildRbacError::MissingUid {
            object: invoker.to_string(),
        })?;
    let (repo, secret) = repository_identity(repository)?;
    Ok(job_rbac(JobRbacParts {
        namespace: invoker.namespace(),
        owner,
        service_account: service_account_for(
            info.runtime_settings,
            restore_service_account_name(invoker.name()),
        ),
        cluster_role: restore_init_container_cluster_role(),
        access_prefix: RESTORE_JOB_REPOSITORY_ACCESS_PREFIX,
        invoker_name: invoker.name(),
        component: labels::COMPONENT_RESTORE,
        repository,
        repository_rules: vec![
            named_rule(labels::GROUP, "repositories", repo, &["get"]),
            named_rule("", "secrets", secret, &["get"]),
        ],
    }))
}

/// Whether `rs`'s first target is a standalone claim restored by a Job.
#[must_use]
pub fn restores_a_claim(rs: &RestoreSession) -> bool {
    RestoreInvoker::Session(rs)
        .targets()
        .first()
        .and_then(RestoreTargetInfo::target_ref)
        .is_some_and(is_pvc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invoker::BackupInvoker;
    use pretty_assertions::assert_eq;
    use stash_api::v1beta1::BackupConfiguration;

    const BACKUP_EXAMPLE: &str = include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/backupconfiguration-pvc-job-model.yaml"
    );
    const RESTORE_EXAMPLE: &str = include_str!(
        "../../../stash-api/tests/fixtures/stash-examples/restoresession-pvc-job-model.yaml"
    );

    fn repository() -> Repository {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata:\n  name: gcs-repo\n  namespace: demo\nspec:\n  backend:\n    gcs:\n      bucket: stash-testing\n      prefix: /demo/pvc\n    storageSecretName: gcs-secret\n",
        )
        .unwrap()
    }

    fn backup_configuration() -> BackupConfiguration {
        let mut bc: BackupConfiguration = serde_yaml::from_str(BACKUP_EXAMPLE).unwrap();
        bc.metadata.uid = Some("bc-1".to_owned());
        bc
    }

    fn session() -> BackupSession {
        serde_yaml::from_str(
            "apiVersion: stash.appscode.com/v1beta1\nkind: BackupSession\nmetadata:\n  name: nfs-pvc-backup-1700000000\n  namespace: demo\n  uid: bs-1\n  labels:\n    stash.appscode.com/invoker-type: BackupConfiguration\n    stash.appscode.com/invoker-name: nfs-pvc-backup\nspec:\n  invoker:\n    apiGroup: stash.appscode.com\n    kind: BackupConfiguration\n    name: nfs-pvc-backup\n",
        )
        .unwrap()
    }

    fn args(container: &Container) -> Vec<String> {
        container.args.clone().unwrap()
    }

    #[test]
    fn the_pvc_backup_example_becomes_a_job_owned_by_the_session_running_backup_pvc_then_update_status()
     {
        let bc = backup_configuration();
        let info = BackupInvoker::Configuration(&bc).targets().remove(0);
        let job = backup_job(
            &session(),
            &info,
            &bc.spec.retention_policy,
            &repository(),
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("stash-backup-nfs-pvc-backup-1700000000-0")
        );
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("BackupSession", "bs-1", Some(true))
        );
        let spec = job.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("stash-backup-job-nfs-pvc-backup")
        );
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "pvc-backup-0");
        let backup = args(init);
        assert_eq!(backup[0], "backup-pvc");
        for expected in [
            "--provider=gcs",
            "--bucket=stash-testing",
            "--path=/demo/pvc",
            "--hostname=host-0",
            "--backup-paths=/stash-data",
            "--backupsession=nfs-pvc-backup-1700000000",
            "--invoker-kind=BackupConfiguration",
            "--invoker-name=nfs-pvc-backup",
            "--target-kind=PersistentVolumeClaim",
            "--target-name=nfs-pvc",
            "--target-namespace=demo",
            "--storage-secret-name=gcs-secret",
            "--retention-keep-last=5",
            "--retention-prune=true",
            "--output-dir=/tmp/output",
        ] {
            assert!(
                backup.contains(&expected.to_owned()),
                "{expected} in {backup:?}"
            );
        }
        let mounts = init.volume_mounts.as_ref().unwrap();
        assert!(
            mounts
                .iter()
                .any(|m| m.name == "stash-volume" && m.mount_path == "/stash-data")
        );
        assert!(mounts.iter().any(|m| m.mount_path == "/tmp"));
        let main = &pod.containers[0];
        assert_eq!(main.name, "update-status-1");
        assert_eq!(args(main)[0], "update-status");
        let claim = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "stash-volume")
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .unwrap();
        assert_eq!(claim.claim_name, "nfs-pvc");
        assert_eq!(
            pod.security_context.unwrap().run_as_user,
            Some(JOB_RUN_AS_USER)
        );
    }

    #[test]
    fn the_first_volume_mount_moves_the_claim_and_the_default_backup_path() {
        let mut bc = backup_configuration();
        bc.spec.target.as_mut().unwrap().volume_mounts = Some(vec![VolumeMount {
            name: "data".to_owned(),
            mount_path: "/source/data".to_owned(),
            ..VolumeMount::default()
        }]);
        let info = BackupInvoker::Configuration(&bc).targets().remove(0);
        let job = backup_job(
            &session(),
            &info,
            &bc.spec.retention_policy,
            &repository(),
            &Settings::default(),
        )
        .unwrap();
        let pod = job.spec.unwrap().template.spec.unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert!(args(init).contains(&"--backup-paths=/source/data".to_owned()));
        assert!(
            init.volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m.name == "stash-volume" && m.mount_path == "/source/data")
        );
    }

    #[test]
    fn a_long_session_name_gives_a_job_name_of_at_most_63_characters() {
        let name = backup_job_name(&"a.b".repeat(30), 0);
        assert!(name.len() <= 63, "{name}");
        assert!(!name.contains('.'));
        assert!(name.starts_with("stash-backup-"));
    }

    #[test]
    fn the_pvc_restore_example_becomes_a_restore_job_of_the_latest_snapshot_run_as_root() {
        let mut rs: RestoreSession = serde_yaml::from_str(RESTORE_EXAMPLE).unwrap();
        rs.metadata.uid = Some("rs-1".to_owned());
        assert!(restores_a_claim(&rs));
        let info = RestoreInvoker::Session(&rs).targets().remove(0);
        let job = restore_job(&info, &repository(), &Settings::default()).unwrap();
        assert_eq!(
            job.metadata.name.as_deref(),
            Some("stash-restore-nfs-pvc-restore-0")
        );
        let pod = job.spec.unwrap().template.spec.unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "pvc-restore-0");
        let restore = args(init);
        assert_eq!(restore[0], "restore-pvc");
        assert!(
            restore.contains(&"--snapshots=latest".to_owned()),
            "{restore:?}"
        );
        assert!(restore.contains(&"--invoker-kind=RestoreSession".to_owned()));
        assert!(restore.contains(&"--hostname=host-0".to_owned()));
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(0));
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("stash-restore-job-nfs-pvc-restore")
        );
    }

    #[test]
    fn the_job_rbac_binds_the_executor_cluster_role_and_one_repository_to_the_job_service_account()
    {
        let bc = backup_configuration();
        let info = BackupInvoker::Configuration(&bc).targets().remove(0);
        let rbac = backup_job_rbac(&info, &repository()).unwrap();
        assert_eq!(
            rbac.service_account.unwrap().metadata.name.as_deref(),
            Some("stash-backup-job-nfs-pvc-backup")
        );
        assert_eq!(rbac.role_binding.role_ref.name, "stash-sidecar");
        let subject = &rbac.role_binding.subjects.as_ref().unwrap()[0];
        assert_eq!(subject.name, "stash-backup-job-nfs-pvc-backup");
        let (role, _) = rbac.repository_access.unwrap();
        let rules = role.rules.unwrap();
        assert!(
            rules
                .iter()
                .any(|r| r.resource_names.as_deref() == Some(&["gcs-secret".to_owned()][..]))
        );
    }

    #[test]
    fn a_deployment_target_is_not_built_into_a_job() {
        let mut bc = backup_configuration();
        let target = bc.spec.target.as_mut().unwrap();
        target.reference.kind = "Deployment".to_owned();
        target.reference.api_version = Some("apps/v1".to_owned());
        let info = BackupInvoker::Configuration(&bc).targets().remove(0);
        let err = backup_job(
            &session(),
            &info,
            &bc.spec.retention_policy,
            &repository(),
            &Settings::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("not a PersistentVolumeClaim"),
            "{err}"
        );
    }
}
