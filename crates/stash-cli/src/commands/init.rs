use anyhow::bail;
use stash_engine::{Control, InitOptions};

use super::repo;
use crate::cli::{InitArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &InitArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    match args.repository_version.as_deref() {
        None | Some("latest" | "stable" | "2") => {}
        Some("1") => bail!(
            "stash creates repository format 2 only; create a format 1 repository with `restic init --repository-version 1` (stash reads and writes it)"
        ),
        Some(other) => {
            bail!("--repository-version {other} is not supported; use 2, latest or stable")
        }
    }
    let engine = repo::engine(repo_args)?;
    let id = engine.init(&InitOptions::default(), control).await?;
    if repo_args.json {
        repo::print_json(
            &serde_json::json!({"message_type": "initialized", "id": id, "repository": engine.location().to_string()}),
        )?;
    } else {
        println!(
            "created restic repository {} at {}",
            &id[..10],
            engine.location()
        );
        println!(
            "\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is\nirrecoverably lost."
        );
    }
    Ok(ExitCode::Ok)
}
