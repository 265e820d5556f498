use stash_engine::{Control, RetentionPolicy};

use super::repo;
use crate::cli::{ForgetArgs, RepoArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &ForgetArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    let engine = repo::engine(repo_args)?;
    let policy = RetentionPolicy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_tags: args.keep_tags.clone(),
    };
    let forget = engine
        .forget(policy, repo::filter(&args.filter), args.dry_run, control)
        .await?;
    let prune = if args.prune && !forget.remove.is_empty() {
        Some(engine.prune(args.dry_run, control).await?)
    } else {
        None
    };
    if repo_args.json {
        repo::print_json(&serde_json::json!({"forget": forget, "prune": prune}))?;
        return Ok(ExitCode::Ok);
    }
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    println!(
        "keep {} snapshots, {verb} {} snapshots",
        forget.keep.len(),
        forget.remove.len()
    );
    for snapshot in &forget.remove {
        println!(
            "  {} {} {} {}",
            snapshot.short_id,
            snapshot.time,
            snapshot.hostname,
            snapshot.paths.join(",")
        );
    }
    if let Some(prune) = prune {
        println!(
            "prune: {verb} {} packs ({} bytes), repacked {} packs",
            prune.packs_removed, prune.bytes_removed, prune.packs_repacked
        );
    }
    Ok(ExitCode::Ok)
}
