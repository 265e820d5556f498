use stash_engine::Control;

use super::repo::{self, human_bytes};
use crate::cli::{PruneArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &PruneArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let report = engine.prune(args.dry_run, control).await?;
    if repo_args.json {
        repo::print_json(&report)?;
    } else {
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!(
            "{verb} {} packs ({}), repacked {} packs",
            report.packs_removed,
            human_bytes(report.bytes_removed),
            report.packs_repacked
        );
    }
    Ok(ExitCode::Ok)
}
