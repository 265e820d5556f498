use stash_engine::{CheckRequest, Control};

use super::repo;
use crate::cli::{CheckArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &CheckArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let request = CheckRequest {
        read_data: args.read_data,
        read_data_subset: args.read_data_subset.clone(),
    };
    let report = engine.check(request, control).await?;
    print_report(&report, repo_args.json)?;
    if report.is_ok() {
        Ok(ExitCode::Ok)
    } else {
        eprintln!(
            "Fatal: repository contains errors ({} found)",
            report.errors.len()
        );
        Ok(ExitCode::Error)
    }
}

/// A check report as restic prints it (warnings and errors on stderr), or as JSON.
pub(crate) fn print_report(report: &stash_engine::CheckReport, json: bool) -> anyhow::Result<()> {
    if json {
        return repo::print_json(report);
    }
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    if report.is_ok() {
        println!("no errors were found");
    }
    Ok(())
}
