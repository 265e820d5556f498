use stash_engine::Control;

use super::repo::{self, human_bytes};
use crate::cli::{RepoArgs, StatsArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    _args: &StatsArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let stats = engine.stats(control).await?;
    if repo_args.json {
        repo::print_json(&stats)?;
    } else {
        println!("Stats in raw-data mode:");
        println!("     Snapshots processed:  {}", stats.snapshot_count);
        println!("        Total Blob Count:  {}", stats.total_blob_count);
        println!(
            " Total Uncompressed Size:  {}",
            human_bytes(stats.total_uncompressed_size)
        );
        println!(
            "              Total Size:  {}",
            human_bytes(stats.total_size)
        );
    }
    Ok(ExitCode::Ok)
}
