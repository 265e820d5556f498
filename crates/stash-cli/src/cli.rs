//! Command-line surface of `stash`: one `Command` variant per subcommand.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "stash", version, about = "Kubernetes backup and restore operator, restic-compatible")]
pub struct Opts {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
}
