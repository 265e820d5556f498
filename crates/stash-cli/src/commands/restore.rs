use stash_engine::{Control, RestoreRequest};

use super::repo::{self, human_bytes};
use crate::cli::{RepoArgs, RestoreArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &RestoreArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let mut request = RestoreRequest::new(args.snapshot.clone(), args.target.clone());
    request.filter = repo::filter(&args.filter);
    request.includes.clone_from(&args.includes);
    request.excludes.clone_from(&args.excludes);
    request.sparse = !args.no_sparse;
    if !repo_args.json && !repo_args.quiet {
        println!(
            "restoring snapshot {} to {}",
            args.snapshot,
            args.target.display()
        );
    }
    let report = engine.restore(request, control).await?;
    for failure in &report.failures {
        eprintln!("error: {}: {}", failure.path.display(), failure.error);
    }
    for skipped in &report.skipped_special {
        eprintln!(
            "warning: {}: device, FIFO or socket not recreated",
            skipped.display()
        );
    }
    if repo_args.json {
        let mut summary = serde_json::to_value(&report)?;
        summary["message_type"] = "summary".into();
        repo::print_json(&summary)?;
    } else if !repo_args.quiet {
        println!(
            "restored snapshot {}: {} files, {} dirs, {} symlinks, {} in {:.1}s",
            &report.snapshot_id[..8],
            report.files_restored,
            report.dirs_restored,
            report.symlinks_restored,
            human_bytes(report.bytes_restored),
            report.duration.as_secs_f64()
        );
    }
    if report.is_complete() {
        Ok(ExitCode::Ok)
    } else {
        eprintln!(
            "Fatal: {} entries could not be restored (listed above)",
            report.failures.len()
        );
        Ok(ExitCode::Error)
    }
}
