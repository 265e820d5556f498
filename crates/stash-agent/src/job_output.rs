//! The file a job-model data step (`backup-pvc`, `restore-pvc`) leaves for `update-status` (§11.1):
//! `<output-dir>/output.json`, shaped like Stash's `BackupOutput` / `RestoreOutput`
//! (`{"backupTargetStatus": {"ref": …, "stats": [host entry]}}`, `{"restoreTargetStatus": …}`), so the
//! two containers of one Job pod share it through the `tmp-dir` emptyDir.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use stash_api::common::TargetRef;
use stash_api::v1beta1::{BackupTargetStatus, HostBackupStats, HostRestoreStats};

/// Stash's `restic.DefaultOutputFileName`.
pub const OUTPUT_FILE: &str = "output.json";

/// Reading or writing the output file failed; messages name the file.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("failed to write {path}; the job's --output-dir must be writable (the tmp-dir volume)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not exist: the data step of this Job left no result; read its container log"
    )]
    Missing { path: PathBuf },
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not the output of backup-pvc or restore-pvc")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What a data step reports for one target.
#[derive(Clone, Debug, PartialEq)]
pub enum JobOutput {
    /// `backup-pvc`: the host's final `stats[]` entry, or none when there was nothing to do.
    Backup {
        target: TargetRef,
        host: Option<HostBackupStats>,
    },
    /// `restore-pvc`: the host's final entry as it was written, or none when there was nothing to do.
    Restore {
        target: TargetRef,
        host: Option<HostRestoreStats>,
    },
}

/// `<dir>/output.json`.
#[must_use]
pub fn path_in(dir: &Path) -> PathBuf {
    dir.join(OUTPUT_FILE)
}

impl JobOutput {
    /// The JSON document, in Stash's shape.
    #[must_use]
    pub fn to_value(&self) -> Value {
        match self {
            Self::Backup { target, host } => {
                let status = BackupTargetStatus {
                    reference: Some(target.clone()),
                    stats: Some(host.iter().cloned().collect()),
                    ..BackupTargetStatus::default()
                };
                json!({ "backupTargetStatus": status })
            }
            Self::Restore { target, host } => json!({
                "restoreTargetStatus": { "ref": target, "stats": host.iter().collect::<Vec<_>>() }
            }),
        }
    }

    /// Reads the document back.
    pub fn from_value(value: &Value) -> Result<Self, serde_json::Error> {
        if let Some(backup) = value.get("backupTargetStatus") {
            let status: BackupTargetStatus = serde_json::from_value(backup.clone())?;
            return Ok(Self::Backup {
                target: status.reference.unwrap_or_default(),
                host: status.stats.unwrap_or_default().into_iter().next(),
            });
        }
        let restore = value
            .get("restoreTargetStatus")
            .cloned()
            .unwrap_or_default();
        let target: TargetRef =
            serde_json::from_value(restore.get("ref").cloned().unwrap_or_default())?;
        let stats: Vec<HostRestoreStats> =
            serde_json::from_value(restore.get("stats").cloned().unwrap_or(json!([])))?;
        Ok(Self::Restore {
            target,
            host: stats.into_iter().next(),
        })
    }

    /// Writes `<dir>/output.json`, creating `dir`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, OutputError> {
        let path = path_in(dir);
        let write_error = |source| OutputError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(write_error)?;
        let text =
            serde_json::to_string_pretty(&self.to_value()).expect("status types always serialize");
        std::fs::write(&path, text).map_err(write_error)?;
        Ok(path)
    }

    /// Reads `<dir>/output.json`.
    pub fn read(dir: &Path) -> Result<Self, OutputError> {
        let path = path_in(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OutputError::Missing { path });
            }
            Err(source) => return Err(OutputError::Read { path, source }),
        };
        let value: Value = serde_json::from_str(&text).map_err(|source| OutputError::Parse {
            path: path.clone(),
            source,
        })?;
        Self::from_value(&value).map_err(|source| OutputError::Parse { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stash_api::phase::{HostBackupPhase, HostRestorePhase};

    fn claim() -> TargetRef {
        TargetRef {
            api_version: Some("v1".into()),
            kind: "PersistentVolumeClaim".into(),
            name: "nfs-pvc".into(),
            namespace: Some("demo".into()),
        }
    }

    #[test]
    fn a_backup_output_is_written_in_stash_shape_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let output = JobOutput::Backup {
            target: claim(),
            host: Some(HostBackupStats {
                hostname: Some("host-0".into()),
                phase: Some(HostBackupPhase::Succeeded),
                ..HostBackupStats::default()
            }),
        };
        let path = output.write(&dir.path().join("output")).unwrap();
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            value["backupTargetStatus"]["stats"][0]["hostname"],
            "host-0"
        );
        assert_eq!(JobOutput::read(&dir.path().join("output")).unwrap(), output);
    }

    #[test]
    fn a_restore_output_round_trips_and_a_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let output = JobOutput::Restore {
            target: claim(),
            host: Some(HostRestoreStats {
                hostname: Some("host-0".into()),
                phase: Some(HostRestorePhase::Failed),
                error: Some("boom".into()),
                ..HostRestoreStats::default()
            }),
        };
        output.write(dir.path()).unwrap();
        assert_eq!(JobOutput::read(dir.path()).unwrap(), output);
        let err = JobOutput::read(&dir.path().join("none")).unwrap_err();
        assert!(err.to_string().contains("output.json"), "{err}");
    }
}
