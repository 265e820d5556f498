//! Label and annotation keys, container/volume names and other wire constants of Stash.

/// `StashKey`.
pub const STASH_KEY: &str = "stash.appscode.com";
/// API group of the CRDs.
pub const GROUP: &str = "stash.appscode.com";
/// API group of the aggregated Snapshot API.
pub const REPOSITORIES_GROUP: &str = "repositories.stash.appscode.com";

// Labels on BackupSessions, CronJobs, Jobs.
pub const LABEL_INVOKER_TYPE: &str = "stash.appscode.com/invoker-type";
pub const LABEL_INVOKER_NAME: &str = "stash.appscode.com/invoker-name";
pub const LABEL_TARGET_KIND: &str = "stash.appscode.com/target-kind";
pub const LABEL_TARGET_NAME: &str = "stash.appscode.com/target-name";
pub const LABEL_TARGET_NAMESPACE: &str = "stash.appscode.com/target-namespace";
/// Obsolete (v0.9.0-rc.0…rc.2) BackupSession label; sessions are selected by invoker-type/invoker-name.
pub const LABEL_BACKUP_CONFIGURATION_OBSOLETE: &str = "stash.appscode.com/backup-configuration";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const COMPONENT_BACKUP: &str = "stash-backup";
pub const COMPONENT_RESTORE: &str = "stash-restore";
pub const MANAGED_BY: &str = "stash.appscode.com";
pub const LABEL_DELETE_JOB_ON_COMPLETION: &str = "stash.appscode.com/delete-job-on-completion";
/// Snapshot labels.
pub const LABEL_SNAPSHOT_REPOSITORY: &str = "repository";
pub const LABEL_SNAPSHOT_HOSTNAME: &str = "hostname";

// Workload annotations (§8.2).
pub const ANNOTATION_LAST_APPLIED_BACKUP_INVOKER: &str =
    "stash.appscode.com/last-applied-backup-invoker";
pub const ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_KIND: &str =
    "stash.appscode.com/last-applied-backup-invoker-kind";
pub const ANNOTATION_LAST_APPLIED_BACKUP_INVOKER_HASH: &str =
    "stash.appscode.com/last-applied-backup-invoker-hash";
pub const ANNOTATION_LAST_APPLIED_RESTORE_INVOKER: &str =
    "stash.appscode.com/last-applied-restore-invoker";
pub const ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_KIND: &str =
    "stash.appscode.com/last-applied-restore-invoker-kind";
pub const ANNOTATION_LAST_APPLIED_RESTORE_INVOKER_HASH: &str =
    "stash.appscode.com/last-applied-restore-invoker-hash";

// Auto-backup (BackupBlueprint) annotations.
pub const ANNOTATION_BACKUP_BLUEPRINT: &str = "stash.appscode.com/backup-blueprint";
pub const ANNOTATION_TARGET_PATHS: &str = "stash.appscode.com/target-paths";
pub const ANNOTATION_VOLUME_MOUNTS: &str = "stash.appscode.com/volume-mounts";
pub const ANNOTATION_SCHEDULE: &str = "stash.appscode.com/schedule";
pub const ANNOTATION_PARAMS_PREFIX: &str = "params.stash.appscode.com/";

// Container names.
pub const CONTAINER_SIDECAR: &str = "stash";
pub const CONTAINER_INIT: &str = "stash-init";
pub const CONTAINER_TRIGGER: &str = "stash-trigger";
pub const CONTAINER_PRE_TASK_HOOK: &str = "pre-task-hook";
pub const CONTAINER_POST_TASK_HOOK: &str = "post-task-hook";

// Environment of the executor containers (sidecar, init-container, jobs): the operator sets them, the
// agent reads them.
/// Node of the pod (downward API `spec.nodeName`); the DaemonSet host name (§8.5).
pub const ENV_NODE_NAME: &str = "NODE_NAME";
/// Name of the pod (downward API `metadata.name`); the StatefulSet ordinal comes from it (§8.5).
pub const ENV_POD_NAME: &str = "POD_NAME";
/// `runtimeSettings.container.nice.adjustment`.
pub const ENV_NICE_ADJUSTMENT: &str = "NICE_ADJUSTMENT";
/// `runtimeSettings.container.ionice.class`.
pub const ENV_IONICE_CLASS: &str = "IONICE_CLASS";
/// `runtimeSettings.container.ionice.classData`.
pub const ENV_IONICE_CLASS_DATA: &str = "IONICE_CLASS_DATA";

// Volumes and paths.
pub const VOLUME_TMP_DIR: &str = "tmp-dir";
pub const VOLUME_LOCAL_BACKEND: &str = "stash-local";
pub const VOLUME_PVC_TARGET: &str = "stash-volume";
pub const TMP_DIR_MOUNT_PATH: &str = "/tmp";
pub const INTERIM_VOLUME_MOUNT_PATH: &str = "/stash-interim-volume";
/// Where the stash binary lives in the image; a local backend may not be mounted here.
pub const STASH_BINARY_DIR: &str = "/stash";
pub const DEFAULT_TARGET_MOUNT_PATH: &str = "/stash-data";

// Finalizers and field managers.
pub const REPOSITORY_FINALIZER: &str = "stash";
pub const INVOKER_FINALIZER: &str = "stash.appscode.com";
pub const FIELD_MANAGER_OPERATOR: &str = "stash.appscode.com/operator";
pub const FIELD_MANAGER_AGENT: &str = "stash.appscode.com/agent";

/// The field manager a Lease candidate writes with: `<manager>/<identity>`, at most 128 bytes.
///
/// Taking a free Lease is a server-side apply without a resourceVersion, so two candidates under
/// one field manager would both "win" (the apiserver sees one owner updating its own field); a
/// manager per identity makes the second apply conflict, which is what elects one of them.
#[must_use]
pub fn lease_field_manager(manager: &str, identity: &str) -> String {
    const MAX_FIELD_MANAGER_BYTES: usize = 128;
    let mut name = format!("{manager}/{identity}");
    if name.len() > MAX_FIELD_MANAGER_BYTES {
        // Pod names end in their unique part, so keep the end.
        let mut cut = name.len() - MAX_FIELD_MANAGER_BYTES;
        while !name.is_char_boundary(cut) {
            cut += 1;
        }
        name.drain(..cut);
    }
    name
}

/// Default restic host name.
pub const DEFAULT_HOST: &str = "host-0";
/// Length of a short snapshot id.
pub const SNAPSHOT_ID_LENGTH: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lease_candidate_writes_with_its_own_field_manager() {
        assert_eq!(
            lease_field_manager(FIELD_MANAGER_AGENT, "app-0"),
            "stash.appscode.com/agent/app-0"
        );
        assert_ne!(
            lease_field_manager(FIELD_MANAGER_AGENT, "app-0"),
            lease_field_manager(FIELD_MANAGER_AGENT, "app-1")
        );
    }

    #[test]
    fn a_long_identity_keeps_its_unique_end_within_128_bytes() {
        let identity = format!("{}-x2x9q", "a".repeat(200));
        let manager = lease_field_manager(FIELD_MANAGER_AGENT, &identity);
        assert_eq!(manager.len(), 128);
        assert!(manager.ends_with("-x2x9q"));
    }
}
