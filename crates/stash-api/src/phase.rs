//! Phases, serialized exactly as Stash writes them (PascalCase strings).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `status.phase` of BackupConfiguration and BackupBatch (Stash v0.18+).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackupInvokerPhase {
    Invalid,
    Ready,
    NotReady,
}

/// `status.phase` of a BackupSession.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum BackupSessionPhase {
    Pending,
    Skipped,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl BackupSessionPhase {
    /// Whether the session will not change any more.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped)
    }
}

/// `status.targets[].phase` of a BackupSession.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TargetPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// `status.targets[].stats[].phase` of a BackupSession.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HostBackupPhase {
    Succeeded,
    Failed,
}

/// `status.phase` of RestoreSession and RestoreBatch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RestorePhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
    Invalid,
}

impl RestorePhase {
    /// Whether the restore will not change any more.
    #[must_use]
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Unknown | Self::Invalid
        )
    }
}

/// `status.members[].phase` of a RestoreBatch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RestoreTargetPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// `stats[].phase` of a restored host.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HostRestorePhase {
    Succeeded,
    Failed,
    Running,
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_serialize_as_stash_pascal_case_strings() {
        assert_eq!(
            serde_json::to_value(BackupInvokerPhase::NotReady).unwrap(),
            "NotReady"
        );
        assert_eq!(
            serde_json::to_value(BackupSessionPhase::Skipped).unwrap(),
            "Skipped"
        );
        assert_eq!(
            serde_json::to_value(RestorePhase::Invalid).unwrap(),
            "Invalid"
        );
        let parsed: HostRestorePhase = serde_json::from_value("Running".into()).unwrap();
        assert_eq!(parsed, HostRestorePhase::Running);
    }
}
