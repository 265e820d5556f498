//! `stash restore`: restic's restore of a snapshot into a directory, or, with `--invoker-name`, the
//! `stash-init` init-container's restore of a `RestoreSession` (§10), which `stash_agent::restore`
//! carries out.

use anyhow::Context;
use stash_agent::restore::{
    Outcome, RestoreError, RestoreInvokerKind, RestoreOptions, TargetWorkload,
};
use stash_engine::{Control, RestoreRequest};

use super::repo::{self, human_bytes};
use crate::cli::{InPodRestoreArgs, RepoArgs, RestoreArgs};
use crate::exit_code::ExitCode;

pub async fn run(
    repo_args: &RepoArgs,
    args: &RestoreArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    if args.in_pod.is_present() {
        return run_in_pod(repo_args, &args.in_pod, control).await;
    }
    let (Some(snapshot), Some(target)) = (&args.snapshot, &args.target) else {
        anyhow::bail!(
            "stash restore needs SNAPSHOT and --target DIR (or --invoker-name for the init-container restore)"
        );
    };
    let engine = repo::engine(repo_args)?;
    let mut request = RestoreRequest::new(snapshot.clone(), target.clone());
    request.filter = repo::filter(&args.filter);
    request.includes.clone_from(&args.includes);
    request.excludes.clone_from(&args.excludes);
    request.sparse = !args.no_sparse;
    if !repo_args.json && !repo_args.quiet {
        println!("restoring snapshot {snapshot} to {}", target.display());
    }
    let report = engine.restore(request, control).await?;
    for failure in &report.failures {
        eprintln!("error: {}: {}", failure.path.display(), failure.error);
    }
    for skipped in &report.skipped_special {
        eprintln!(
            "warning: {}: a socket, not recreated (restic does not recreate sockets either)",
            skipped.display()
        );
    }
    if repo_args.json {
        let mut summary = serde_json::to_value(&report)?;
        summary["message_type"] = "summary".into();
        repo::print_json(&summary)?;
    } else if !repo_args.quiet {
        println!(
            "restored snapshot {}: {} files, {} dirs, {} symlinks, {} in {:.1}s",
            &report.snapshot_id[..8],
            report.files_restored,
            report.dirs_restored,
            report.symlinks_restored,
            human_bytes(report.bytes_restored),
            report.duration.as_secs_f64()
        );
    }
    if report.is_complete() {
        Ok(ExitCode::Ok)
    } else {
        eprintln!(
            "Fatal: {} entries could not be restored (listed above)",
            report.failures.len()
        );
        Ok(ExitCode::Error)
    }
}

/// The init-container's restore: Stash's flags into [`RestoreOptions`], the pod's namespace and
/// environment, then `stash_agent::restore::run`. Exit 0 on success or when there is nothing to do.
async fn run_in_pod(
    repo_args: &RepoArgs,
    args: &InPodRestoreArgs,
    control: &Control,
) -> anyhow::Result<ExitCode> {
    if args.secret_dir.is_some() {
        tracing::warn!(
            "--secret-dir is deprecated (Stash <= v0.17) and ignored: the storage Secret is read through the API"
        );
    }
    let invoker_kind: RestoreInvokerKind = args
        .invoker_kind
        .as_deref()
        .unwrap_or("RestoreSession")
        .parse()?;
    let invoker_name = args
        .invoker_name
        .clone()
        .context("--invoker-name is required with --invoker-kind")?;
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG)")?;
    let namespace = args
        .namespace
        .clone()
        .or_else(stash_agent::namespace_from_env)
        .or_else(|| args.target_namespace.clone())
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let options = RestoreOptions {
        invoker_kind,
        invoker_name,
        namespace: namespace.clone(),
        target: TargetWorkload {
            kind: args.target_kind.clone().unwrap_or_default(),
            name: args.target_name.clone().unwrap_or_default(),
            namespace: args.target_namespace.clone().unwrap_or(namespace),
        },
        cache_dir: stash_agent::restore::options::cache_dir(
            args.enable_cache && !repo_args.no_cache,
            repo_args.cache_dir.clone(),
        ),
        max_connections: args.max_connections,
        pushgateway_url: args
            .pushgateway_url
            .clone()
            .filter(|url| args.metrics_enabled && !url.is_empty()),
        pod_name: None,
        node_name: None,
    }
    .with_pod_env();
    match stash_agent::restore::run(client, &options, control.cancel.clone()).await {
        Ok(Outcome::Skipped(reason)) => {
            println!("nothing to restore: {reason}");
            Ok(ExitCode::Ok)
        }
        Ok(Outcome::Restored(entry)) => {
            println!(
                "restored host {} of {invoker_kind} {}/{} in {}",
                entry.hostname.as_deref().unwrap_or_default(),
                options.namespace,
                options.invoker_name,
                entry.duration.as_deref().unwrap_or("0s")
            );
            Ok(ExitCode::Ok)
        }
        Err(RestoreError::Cancelled) => {
            eprintln!("stash: interrupted");
            Ok(ExitCode::Interrupted)
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Command, Opts, RestoreArgs};

    fn parse(args: &[&str]) -> Result<RestoreArgs, clap::Error> {
        let opts = Opts::try_parse_from(std::iter::once("stash").chain(args.iter().copied()))?;
        match opts.command {
            Command::Restore(args) => Ok(args),
            other => panic!("not a restore: {other:?}"),
        }
    }

    #[test]
    fn the_standalone_form_parses_as_before() {
        let args = parse(&[
            "restore",
            "latest",
            "--target",
            "/restore",
            "--include",
            "/data",
        ])
        .expect("restic's form parses");
        assert_eq!(args.snapshot.as_deref(), Some("latest"));
        assert_eq!(
            args.target.as_deref(),
            Some(std::path::Path::new("/restore"))
        );
        assert_eq!(args.includes, ["/data"]);
        assert!(!args.in_pod.is_present());
    }

    #[test]
    fn the_standalone_form_still_needs_its_snapshot_and_target() {
        let err = parse(&["restore", "--target", "/restore"]).unwrap_err();
        assert!(err.to_string().contains("<SNAPSHOT>"), "{err}");
        let err = parse(&["restore", "latest"]).unwrap_err();
        assert!(err.to_string().contains("--target"), "{err}");
    }

    #[test]
    fn the_operator_s_init_container_arguments_parse_as_the_in_pod_form() {
        let args = parse(&[
            "restore",
            "--invoker-kind=RestoreSession",
            "--invoker-name=deployment-restore",
            "--target-name=stash-recovered",
            "--target-namespace=demo",
            "--target-kind=Deployment",
            "--enable-cache=false",
            "--max-connections=0",
            "--metrics-enabled=true",
            "--pushgateway-url=http://stash.kube-system.svc:56789",
            "--use-kubeapiserver-fqdn-for-aks=true",
            "--v=3",
        ])
        .expect("the operator's arguments parse");
        assert!(args.in_pod.is_present());
        assert_eq!(args.snapshot, None);
        assert_eq!(args.in_pod.invoker_kind.as_deref(), Some("RestoreSession"));
        assert_eq!(
            args.in_pod.invoker_name.as_deref(),
            Some("deployment-restore")
        );
        assert_eq!(args.in_pod.target_kind.as_deref(), Some("Deployment"));
        assert!(!args.in_pod.enable_cache);
        assert!(args.in_pod.metrics_enabled);
        assert_eq!(args.in_pod.klog_level, Some(3));
    }

    #[test]
    fn stash_v0_17_secret_dir_and_v0_9_restore_session_are_accepted() {
        let args = parse(&[
            "restore",
            "--restore-session=sample-restore",
            "--secret-dir=/etc/stash/repository/secret",
        ])
        .expect("old flags parse");
        assert_eq!(args.in_pod.invoker_name.as_deref(), Some("sample-restore"));
        assert!(args.in_pod.secret_dir.is_some());
    }

    #[test]
    fn the_two_forms_do_not_mix() {
        let err = parse(&["restore", "latest", "--target", "/r", "--invoker-name=x"]).unwrap_err();
        assert_eq!(
            err.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{err}"
        );
        let err = parse(&["restore", "--invoker-kind=RestoreSession"]).unwrap_err();
        assert!(err.to_string().contains("--invoker-name"), "{err}");
    }
}
