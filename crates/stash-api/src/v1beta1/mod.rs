//! `stash.appscode.com/v1beta1` kinds.

pub mod backup_batch;
pub mod backup_blueprint;
pub mod backup_configuration;
pub mod backup_session;
pub mod function;
pub mod restore_batch;
pub mod restore_session;
pub mod task;

pub use backup_batch::{BackupBatch, BackupBatchSpec, BackupBatchStatus, MemberConditions};
pub use backup_blueprint::{BackupBlueprint, BackupBlueprintSpec};
pub use backup_configuration::{
    BackupConfiguration, BackupConfigurationSpec, BackupConfigurationStatus,
    BackupConfigurationTemplateSpec,
};
pub use backup_session::{
    BackupInvokerRef, BackupSession, BackupSessionSpec, BackupSessionStatus, BackupTargetStatus,
    FileStats, HostBackupStats, HostProgress, SnapshotStats,
};
pub use function::{Function, FunctionSpec};
pub use restore_batch::{
    RestoreBatch, RestoreBatchSpec, RestoreBatchStatus, RestoreMemberStatus, RestoreTargetSpec,
};
pub use restore_session::{
    HostRestoreStats, RestoreSession, RestoreSessionSpec, RestoreSessionStatus,
};
pub use task::{FunctionRef, Task, TaskSpec};
