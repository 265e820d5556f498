use stash_engine::Control;

use super::repo;
use crate::cli::{RepoArgs, SnapshotsArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &SnapshotsArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let snapshots = engine
        .snapshots(repo::filter(&args.filter), control)
        .await?;
    if repo_args.json {
        repo::print_json(&snapshots)?;
        return Ok(ExitCode::Ok);
    }
    println!(
        "{:<9} {:<20} {:<16} {:<16} Paths",
        "ID", "Time", "Host", "Tags"
    );
    println!("{}", "-".repeat(80));
    let indent = " ".repeat(9 + 1 + 20 + 1 + 16 + 1 + 16 + 1);
    for snapshot in &snapshots {
        // Like restic: seconds precision, no zone suffix (times are UTC).
        let time = snapshot
            .time
            .get(..19)
            .unwrap_or(&snapshot.time)
            .replace('T', " ");
        println!(
            "{:<9} {:<20} {:<16} {:<16} {}",
            snapshot.short_id,
            time,
            snapshot.hostname,
            snapshot.tags.join(","),
            snapshot.paths.join(&format!("\n{indent}"))
        );
    }
    println!("{}", "-".repeat(80));
    println!("{} snapshots", snapshots.len());
    Ok(ExitCode::Ok)
}
