//! One module per subcommand; `dispatch` routes parsed options to them.

mod backup;
mod check;
pub mod crd;
mod forget;
mod init;
mod prune;
mod repo;
mod restore;
mod snapshots;
mod stats;
mod unlock;
pub mod validate;

use crate::cli::{Command, Opts};
use crate::exit_code::ExitCode;

pub fn dispatch(opts: Opts) -> anyhow::Result<ExitCode> {
    let repo = &opts.repo;
    match opts.command {
        Command::Init(args) => init::run(repo, &args),
        Command::Backup(args) => backup::run(repo, &args),
        Command::Restore(args) => restore::run(repo, &args),
        Command::Snapshots(args) => snapshots::run(repo, &args),
        Command::Forget(args) => forget::run(repo, &args),
        Command::Prune(args) => prune::run(repo, &args),
        Command::Check(args) => check::run(repo, &args),
        Command::Unlock(args) => unlock::run(repo, &args),
        Command::Stats(args) => stats::run(repo, &args),
        Command::Crd(args) => crd::run(&args),
        Command::Validate(args) => validate::run(&args, repo.json),
    }
}
