use stash_engine::CheckRequest;

use super::repo;
use crate::cli::{CheckArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub fn run(repo_args: &RepoArgs, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let report = engine.check(&CheckRequest {
        read_data: args.read_data,
        read_data_subset: args.read_data_subset.clone(),
    })?;
    if repo_args.json {
        repo::print_json(&report)?;
    } else {
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        for error in &report.errors {
            eprintln!("error: {error}");
        }
        if report.is_ok() {
            println!("no errors were found");
        }
    }
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
