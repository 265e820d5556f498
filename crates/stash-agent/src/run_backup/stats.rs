//! The host's `stats[]` entry (§5.3) from the engine's backup reports: one snapshot per target path,
//! as Stash runs one `restic backup` per path.

use std::fmt::Write as _;
use std::time::Duration;

use stash_api::phase::HostBackupPhase;
use stash_api::units::{format_go_duration, format_processing_time, format_size};
use stash_api::v1beta1::{FileStats, HostBackupStats, HostProgress, SnapshotStats};
use stash_engine::BackupReport;

/// Unreadable files named in the error at most; the count says how many more.
const MAX_NAMED_FILES: usize = 10;

/// The `snapshots[]` entry of one path.
#[must_use]
pub fn snapshot_stats(path: &str, report: &BackupReport) -> SnapshotStats {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    SnapshotStats {
        name: Some(report.short_id.clone()),
        path: Some(path.to_owned()),
        total_size: Some(format_size(report.total_bytes_processed)),
        uploaded: Some(format_size(report.data_added)),
        processing_time: Some(format_processing_time(report.duration)),
        file_stats: Some(FileStats {
            total_files: Some(count(report.total_files_processed)),
            new_files: Some(count(report.files_new)),
            modified_files: Some(count(report.files_changed)),
            unmodified_files: Some(count(report.files_unmodified)),
        }),
    }
}

/// The final entry after every path was backed up: Succeeded, or Failed naming the files that
/// could not be read (their snapshots exist but lack them, so the backup is not complete).
#[must_use]
pub fn finished(
    host: &str,
    reports: &[(String, BackupReport)],
    elapsed: Duration,
    progress: Option<HostProgress>,
) -> HostBackupStats {
    let unreadable: Vec<_> = reports
        .iter()
        .flat_map(|(_, report)| report.unreadable.iter())
        .collect();
    let error = (!unreadable.is_empty()).then(|| {
        let mut message = format!(
            "{} file(s) could not be read and are missing from the snapshot: ",
            unreadable.len()
        );
        for (i, entry) in unreadable.iter().take(MAX_NAMED_FILES).enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            let _ = write!(
                message,
                "{} ({})",
                entry.path.display(),
                cause(&entry.error)
            );
        }
        if unreadable.len() > MAX_NAMED_FILES {
            let _ = write!(message, " and {} more", unreadable.len() - MAX_NAMED_FILES);
        }
        message
            .push_str("; give the sidecar read access to them or exclude them in target.exclude");
        message
    });
    HostBackupStats {
        hostname: Some(host.to_owned()),
        phase: Some(if error.is_some() {
            HostBackupPhase::Failed
        } else {
            HostBackupPhase::Succeeded
        }),
        duration: Some(format_go_duration(elapsed)),
        error,
        snapshots: Some(
            reports
                .iter()
                .map(|(path, report)| snapshot_stats(path, report))
                .collect(),
        ),
        progress,
    }
}

/// The innermost cause of an unreadable entry's error, e.g. `Permission denied (os error 13)`:
/// the status is one line, and the `rustic_core` text around the cause (a bug-report plea, and a
/// backtrace when `RUST_BACKTRACE` is set) tells the user nothing the path and cause do not.
fn cause(error: &str) -> &str {
    let last_line = error
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or_default();
    last_line
        .rsplit(": ")
        .map(str::trim)
        .find(|part| !part.is_empty())
        .unwrap_or(last_line)
}

/// The final entry of a host whose backup could not run or broke off.
#[must_use]
pub fn failed(
    host: &str,
    error: String,
    elapsed: Duration,
    progress: Option<HostProgress>,
) -> HostBackupStats {
    HostBackupStats {
        hostname: Some(host.to_owned()),
        phase: Some(HostBackupPhase::Failed),
        duration: Some(format_go_duration(elapsed)),
        error: Some(error),
        snapshots: None,
        progress,
    }
}

/// The entry while the backup runs: no phase yet, only progress.
#[must_use]
pub fn running(host: &str, progress: HostProgress) -> HostBackupStats {
    HostBackupStats {
        hostname: Some(host.to_owned()),
        progress: Some(progress),
        ..HostBackupStats::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use stash_engine::UnreadableEntry;

    use super::*;

    fn report(unreadable: Vec<UnreadableEntry>) -> BackupReport {
        BackupReport {
            snapshot_id: "4f9ea5b3c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef0123".into(),
            short_id: "4f9ea5b3".into(),
            parent: None,
            hostname: "host-0".into(),
            paths: vec!["/source/data".into()],
            files_new: 3,
            files_changed: 1,
            files_unmodified: 6,
            dirs_new: 1,
            dirs_changed: 0,
            dirs_unmodified: 0,
            total_files_processed: 10,
            total_bytes_processed: 2048,
            data_added: 1536,
            data_added_packed: 900,
            duration: Duration::from_secs(75),
            unreadable,
        }
    }

    #[test]
    fn a_complete_backup_gives_a_succeeded_entry_with_one_snapshot_per_path_in_stash_units() {
        let entry = finished(
            "host-0",
            &[("/source/data".into(), report(Vec::new()))],
            Duration::from_secs(83),
            None,
        );
        assert_eq!(entry.phase, Some(HostBackupPhase::Succeeded));
        assert_eq!(entry.error, None);
        assert_eq!(entry.duration.as_deref(), Some("1m23s"));
        let snapshots = entry.snapshots.unwrap();
        assert_eq!(
            snapshots,
            vec![SnapshotStats {
                name: Some("4f9ea5b3".into()),
                path: Some("/source/data".into()),
                total_size: Some("2.000 KiB".into()),
                uploaded: Some("1.500 KiB".into()),
                processing_time: Some("1:15".into()),
                file_stats: Some(FileStats {
                    total_files: Some(10),
                    new_files: Some(3),
                    modified_files: Some(1),
                    unmodified_files: Some(6),
                }),
            }]
        );
    }

    #[test]
    fn unreadable_files_make_the_host_failed_and_are_named_in_the_error() {
        let unreadable = (0..12)
            .map(|i| UnreadableEntry {
                path: PathBuf::from(format!("/source/data/secret-{i}")),
                error: "permission denied".into(),
            })
            .collect();
        let entry = finished(
            "host-0",
            &[("/source/data".into(), report(unreadable))],
            Duration::from_secs(1),
            None,
        );
        assert_eq!(entry.phase, Some(HostBackupPhase::Failed));
        let error = entry.error.unwrap();
        assert!(error.contains("12 file(s)"), "{error}");
        assert!(
            error.contains("/source/data/secret-0 (permission denied)"),
            "{error}"
        );
        assert!(error.contains("and 2 more"), "{error}");
        assert_eq!(entry.snapshots.map(|s| s.len()), Some(1));
    }

    #[test]
    fn an_unreadable_entry_is_named_with_its_cause_alone_on_one_line() {
        let rustic = "`rustic_core` experienced an error related to `input/output operations`.\n\n\
            Message:\nFailed to open file at `/source/data/locked.txt`.\n\n\
            Caused by:\nPermission denied (os error 13)\n\n\
            Backtrace:\n   0: rustic_core::error::RusticError::new\n\
            : Permission denied (os error 13)";
        let walker = "walk failed\n: /source/data/dir: IO error for operation on /source/data/dir: Permission denied (os error 13)";
        let unreadable = [
            ("/source/data/locked.txt", rustic),
            ("/source/data/dir", walker),
            ("/source/data/bad", "Input/output error (os error 5)"),
        ]
        .map(|(path, error)| UnreadableEntry {
            path: PathBuf::from(path),
            error: error.into(),
        })
        .to_vec();
        let entry = finished(
            "host-0",
            &[("/source/data".into(), report(unreadable))],
            Duration::from_secs(1),
            None,
        );
        let error = entry.error.unwrap();
        assert!(!error.contains('\n'), "{error}");
        assert!(
            error.contains(
                "/source/data/locked.txt (Permission denied (os error 13)), \
                 /source/data/dir (Permission denied (os error 13)), \
                 /source/data/bad (Input/output error (os error 5))"
            ),
            "{error}"
        );
    }

    #[test]
    fn a_running_entry_has_progress_and_no_phase() {
        let entry = running(
            "host-1",
            HostProgress {
                files_done: Some(5),
                ..HostProgress::default()
            },
        );
        assert_eq!(entry.phase, None);
        assert_eq!(entry.progress.and_then(|p| p.files_done), Some(5));
    }
}
