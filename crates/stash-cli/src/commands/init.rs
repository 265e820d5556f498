use anyhow::bail;
use stash_engine::InitOptions;

use super::repo;
use crate::cli::{RepoArgs, InitArgs};
use crate::exit_code::ExitCode;

pub fn run(repo_args: &RepoArgs, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let version = match args.repository_version.as_deref() {
        None | Some("latest" | "stable" | "2") => 2,
        Some("1") => 1,
        Some(other) => bail!("--repository-version {other} is not supported; use 1, 2, latest or stable"),
    };
    let engine = repo::engine(repo_args)?;
    let id = engine.init(&InitOptions { version: Some(version) })?;
    if repo_args.json {
        repo::print_json(&serde_json::json!({"message_type": "initialized", "id": id, "repository": engine.location().to_string()}))?;
    } else {
        println!("created restic repository {} at {}", &id[..10], engine.location());
        println!("\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is\nirrecoverably lost.");
    }
    Ok(ExitCode::Ok)
}
