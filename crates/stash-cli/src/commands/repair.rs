//! `stash repair index|snapshots`: restic's repair commands.

use clap::{Args, Subcommand};
use stash_engine::{Control, RepairIndexRequest, RepairSnapshotsRequest};

use super::repo;
use crate::cli::RepoArgs;
use crate::exit_code::ExitCode;

#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(subcommand)]
    pub what: RepairCommand,
}

#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the packs the repository holds.
    Index(RepairIndexArgs),
    /// Save copies of damaged snapshots without the data they lost.
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Debug, Args)]
pub struct RepairIndexArgs {
    /// Read every pack's header, not only those of packs missing from the index.
    #[arg(long)]
    pub read_all_packs: bool,
}

#[derive(Debug, Args)]
pub struct RepairSnapshotsArgs {
    /// Remove each damaged original once its repaired copy is saved.
    #[arg(long)]
    pub forget: bool,
    /// Only show what would be repaired.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Snapshots to repair (ids or `latest`); all when none is given.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}

pub async fn run(
    repo_args: &RepoArgs,
    args: &RepairArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    match &args.what {
        RepairCommand::Index(index) => {
            let request = RepairIndexRequest {
                read_all_packs: index.read_all_packs,
            };
            engine.repair_index(request, control).await?;
            if repo_args.json {
                repo::print_json(&serde_json::json!({ "repaired": "index" }))?;
            } else {
                println!("index repaired");
            }
        }
        RepairCommand::Snapshots(snapshots) => {
            let request = RepairSnapshotsRequest {
                snapshots: snapshots.snapshots.clone(),
                forget: snapshots.forget,
                dry_run: snapshots.dry_run,
            };
            let report = engine.repair_snapshots(request, control).await?;
            if repo_args.json {
                repo::print_json(&report)?;
            } else {
                for snapshot in &report.repaired {
                    println!("saved repaired snapshot {}", &snapshot.id[..8]);
                }
                for snapshot in &report.removed {
                    println!("removed damaged snapshot {}", &snapshot.id[..8]);
                }
                if report.repaired.is_empty() && !report.dry_run {
                    println!("no snapshot needed repair");
                }
            }
        }
    }
    Ok(ExitCode::Ok)
}
