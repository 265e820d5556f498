use stash_engine::{BackupRequest, Control};

use super::repo::{self, human_bytes};
use crate::cli::{BackupArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &BackupArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let request = BackupRequest {
        paths: args.paths.clone(),
        excludes: args.excludes.clone(),
        host: args.host.clone(),
        tags: args.tags.clone(),
        ignore_inode_and_ctime: args.ignore_inode || args.ignore_ctime,
        force: args.force,
        time: args.time,
    };
    let report = engine.backup(request, control).await?;
    for entry in &report.unreadable {
        eprintln!("error: {}: {}", entry.path.display(), entry.error);
    }
    if repo_args.json {
        let mut summary = serde_json::to_value(&report)?;
        summary["message_type"] = "summary".into();
        repo::print_json(&summary)?;
    } else if !repo_args.quiet || !report.is_complete() {
        println!(
            "Files:       {:>6} new, {:>6} changed, {:>6} unmodified",
            report.files_new, report.files_changed, report.files_unmodified
        );
        println!(
            "Dirs:        {:>6} new, {:>6} changed, {:>6} unmodified",
            report.dirs_new, report.dirs_changed, report.dirs_unmodified
        );
        println!(
            "Added to the repository: {} ({} stored)",
            human_bytes(report.data_added),
            human_bytes(report.data_added_packed)
        );
        println!(
            "\nprocessed {} files, {} in {:.1}s",
            report.total_files_processed,
            human_bytes(report.total_bytes_processed),
            report.duration.as_secs_f64()
        );
        println!("snapshot {} saved", report.short_id);
    }
    if report.is_complete() {
        Ok(ExitCode::Ok)
    } else {
        eprintln!(
            "Warning: at least one source file could not be read; snapshot {} is incomplete ({} entries missing, listed above)",
            report.short_id,
            report.unreadable.len()
        );
        Ok(ExitCode::SourceUnreadable)
    }
}
