//! One module per subcommand; `dispatch` routes parsed options to them.

mod backup;
pub mod backup_pvc;
mod check;
pub mod crd;
pub mod create_backupsession;
mod forget;
mod init;
pub mod kubectl;
pub mod operator;
mod prune;
pub mod repair;
mod repo;
mod restore;
pub mod restore_pvc;
pub mod run_backup;
mod snapshots;
mod stats;
mod unlock;
pub mod update_status;
pub mod validate;

use tokio_util::sync::CancellationToken;

use crate::cli::{Command, Opts};
use crate::exit_code::ExitCode;

pub async fn dispatch(opts: Opts, cancel: &CancellationToken) -> anyhow::Result<ExitCode> {
    let repo = &opts.repo;
    let control = repo::control(repo, cancel);
    match opts.command {
        Command::Init(args) => init::run(repo, &args, &control).await,
        Command::Backup(args) => backup::run(repo, &args, &control).await,
        Command::Restore(args) => restore::run(repo, &args, &control).await,
        Command::Snapshots(args) => snapshots::run(repo, &args, &control).await,
        Command::Forget(args) => forget::run(repo, &args, &control).await,
        Command::Prune(args) => prune::run(repo, &args, &control).await,
        Command::Check(args) => check::run(repo, &args, &control).await,
        Command::Unlock(args) => unlock::run(repo, &args, &control).await,
        Command::Stats(args) => stats::run(repo, &args, &control).await,
        Command::Repair(args) => repair::run(repo, &args, &control).await,
        Command::Operator(args) => operator::run(&args, cancel).await,
        Command::CreateBackupsession(args) => create_backupsession::run(&args).await,
        Command::RunBackup(args) => run_backup::run(&args, cancel).await,
        Command::BackupPvc(args) => backup_pvc::run(&args, cancel).await,
        Command::RestorePvc(args) => restore_pvc::run(&args, cancel).await,
        Command::UpdateStatus(args) => update_status::run(&args, cancel).await,
        Command::Crd(args) => crd::run(&args),
        Command::Validate(args) => validate::run(&args, repo.json),
        Command::Kubectl(args) => kubectl::run(args, repo.json, &control).await,
    }
}
