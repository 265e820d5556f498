use super::repo;
use crate::cli::{RepoArgs, SnapshotsArgs};
use crate::exit_code::ExitCode;

pub fn run(repo_args: &RepoArgs, args: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let snapshots = engine.snapshots(&repo::filter(&args.filter))?;
    if repo_args.json {
        repo::print_json(&snapshots)?;
        return Ok(ExitCode::Ok);
    }
    println!("{:<9} {:<26} {:<16} {:<16} Paths", "ID", "Time", "Host", "Tags");
    println!("{}", "-".repeat(80));
    for snapshot in &snapshots {
        println!(
            "{:<9} {:<26} {:<16} {:<16} {}",
            snapshot.short_id,
            snapshot.time,
            snapshot.hostname,
            snapshot.tags.join(","),
            snapshot.paths.join("\n                                                                   ")
        );
    }
    println!("{}", "-".repeat(80));
    println!("{} snapshots", snapshots.len());
    Ok(ExitCode::Ok)
}
