use stash_engine::Control;

use super::repo;
use crate::cli::{RepoArgs, UnlockArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &UnlockArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let removed = engine.unlock(args.remove_all, control).await?;
    if repo_args.json {
        repo::print_json(&serde_json::json!({"removed": removed}))?;
    } else {
        println!("removed {} stale locks", removed.len());
    }
    Ok(ExitCode::Ok)
}
