//! `kubectl stash …`: the `stash` binary installed as `kubectl-stash` parses these verbs (kubectl
//! runs `kubectl-stash <args>`); `stash kubectl …` reaches them under any name. The work is in
//! `stash_kubectl`; this module parses, prints and maps outcomes to exit codes.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use stash_engine::{CheckRequest, Control};
use stash_kubectl::pause::PausableKind;
use stash_kubectl::repository::RepositoryRef;

use super::repo;
use crate::exit_code::ExitCode;

/// The file name kubectl looks for on the `PATH` for `kubectl stash`.
pub const PLUGIN_NAME: &str = "kubectl-stash";

/// The command line as `stash` parses it: when this binary runs as `kubectl-stash`, its arguments
/// are the `kubectl` subcommand's.
pub fn args(argv: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut argv: Vec<OsString> = argv.into_iter().collect();
    let invoked_as_plugin = argv
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .is_some_and(|name| name == PLUGIN_NAME);
    if invoked_as_plugin {
        argv.splice(0..1, [OsString::from("stash"), OsString::from("kubectl")]);
    }
    argv
}

#[derive(Debug, Args)]
pub struct KubectlArgs {
    /// Namespace of the objects (default: the kubeconfig context's, as kubectl).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
}

// Doc comments are the --help text: kind names stay plain words there.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create a BackupSession of a BackupConfiguration now (a backup outside its schedule) and
    /// wait until it is final: prints the phase and each host, exits 1 when it Failed or was Skipped.
    Trigger {
        /// Name of the BackupConfiguration.
        #[arg(value_name = "BACKUPCONFIGURATION")]
        name: String,
        /// Return as soon as the BackupSession is created.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this long (e.g. 90s, 10m, 1h); the session goes on.
        #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = crate::cli::parse_duration, conflicts_with = "no_wait")]
        timeout: std::time::Duration,
    },
    /// Pause a backup: no BackupSession is created until it is resumed (sets spec.paused).
    Pause {
        #[command(subcommand)]
        what: Pausable,
    },
    /// Resume a paused backup (clears spec.paused).
    Resume {
        #[command(subcommand)]
        what: Pausable,
    },
    /// List the snapshots of a Repository (as `restic snapshots`; --json as restic's).
    Snapshots {
        #[arg(value_name = "REPOSITORY")]
        repository: String,
    },
    /// Remove the stale locks of a Repository (those of processes that are gone).
    Unlock {
        #[arg(value_name = "REPOSITORY")]
        repository: String,
        /// Remove every lock, also live ones (only when nothing else uses the repository).
        #[arg(long)]
        remove_all: bool,
    },
    /// Verify a Repository's structure and, with --read-data, its data.
    Check {
        #[arg(value_name = "REPOSITORY")]
        repository: String,
        /// Read and verify all data packs.
        #[arg(long)]
        read_data: bool,
    },
    /// Restore snapshots of a Repository to this machine, each into DIR/<snapshot>.
    Download {
        #[arg(value_name = "REPOSITORY")]
        repository: String,
        /// Snapshot ids (or prefixes, or `latest`), comma-separated or repeated.
        #[arg(long, required = true, value_delimiter = ',', value_name = "ID")]
        snapshots: Vec<String>,
        /// Directory to restore into (created if missing).
        #[arg(long, value_name = "DIR")]
        destination: PathBuf,
    },
    /// Print the plugin's version.
    Version,
}

#[allow(clippy::doc_markdown)]
#[derive(Debug, Subcommand)]
pub enum Pausable {
    /// The scheduled backup of a BackupConfiguration or BackupBatch.
    Backup(PausableArgs),
}

#[allow(clippy::doc_markdown)]
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct PausableArgs {
    /// Name of the BackupConfiguration.
    #[arg(long, value_name = "NAME")]
    pub backupconfig: Option<String>,
    /// Name of the BackupBatch.
    #[arg(long, value_name = "NAME")]
    pub backupbatch: Option<String>,
}

impl PausableArgs {
    fn target(&self) -> (PausableKind, &str) {
        match (&self.backupconfig, &self.backupbatch) {
            (Some(name), _) => (PausableKind::BackupConfiguration, name),
            (None, Some(name)) => (PausableKind::BackupBatch, name),
            // clap's required group guarantees one of them.
            (None, None) => unreachable!("--backupconfig or --backupbatch is required"),
        }
    }
}

pub async fn run(args: KubectlArgs, json: bool, control: &Control) -> anyhow::Result<ExitCode> {
    if matches!(args.verb, Verb::Version) {
        println!("{}", stash_kubectl::version::line());
        return Ok(ExitCode::Ok);
    }
    // kube's client needs one process-wide rustls provider; ring and aws-lc-rs are both linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API: set KUBECONFIG or the current context (kubectl config current-context)")?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    match run_verb(args.verb, client, &namespace, json, control).await {
        Ok(()) => Ok(ExitCode::Ok),
        Err(err)
            if err
                .downcast_ref::<stash_kubectl::KubectlError>()
                .is_some_and(stash_kubectl::KubectlError::is_cancelled) =>
        {
            eprintln!("stash: interrupted");
            Ok(ExitCode::Interrupted)
        }
        Err(err) => Err(err),
    }
}

async fn run_verb(
    verb: Verb,
    client: kube::Client,
    namespace: &str,
    json: bool,
    control: &Control,
) -> anyhow::Result<()> {
    let repository = |name: &str| RepositoryRef::new(namespace, name);
    match verb {
        Verb::Version => unreachable!("answered above without a client"),
        Verb::Trigger {
            name,
            no_wait,
            timeout,
        } => trigger(client, namespace, &name, no_wait, timeout, json, control).await,
        Verb::Pause {
            what: Pausable::Backup(target),
        } => pause(client, namespace, &target, true).await,
        Verb::Resume {
            what: Pausable::Backup(target),
        } => pause(client, namespace, &target, false).await,
        Verb::Snapshots { repository: name } => {
            let snapshots =
                stash_kubectl::snapshots::list(&client, &repository(&name), control).await?;
            if json {
                repo::print_json(&snapshots)?;
            } else {
                print!("{}", stash_kubectl::snapshots::table(&snapshots));
            }
            Ok(())
        }
        Verb::Unlock {
            repository: name,
            remove_all,
        } => {
            let removed =
                stash_kubectl::unlock::run(&client, &repository(&name), remove_all, control)
                    .await?;
            if json {
                repo::print_json(&serde_json::json!({"removed": removed}))?;
            } else {
                println!("removed {} stale locks", removed.len());
            }
            Ok(())
        }
        Verb::Check {
            repository: name,
            read_data,
        } => check(&client, &repository(&name), read_data, json, control).await,
        Verb::Download {
            repository: name,
            snapshots,
            destination,
        } => {
            let reports = stash_kubectl::download::run(
                &client,
                &repository(&name),
                &snapshots,
                &destination,
                control,
            )
            .await?;
            for (snapshot, report) in snapshots.iter().zip(&reports) {
                println!(
                    "snapshot {} restored to {}: {} files, {} dirs, {}",
                    &report.snapshot_id[..8],
                    stash_kubectl::download::snapshot_dir(&destination, snapshot).display(),
                    report.files_restored,
                    report.dirs_restored,
                    repo::human_bytes(report.bytes_restored)
                );
            }
            Ok(())
        }
    }
}

async fn pause(
    client: kube::Client,
    namespace: &str,
    target: &PausableArgs,
    paused: bool,
) -> anyhow::Result<()> {
    let (kind, name) = target.target();
    stash_kubectl::pause::set_paused(client, kind, namespace, name, paused).await?;
    let verb = if paused { "paused" } else { "resumed" };
    println!("{kind:?} {namespace}/{name} {verb}");
    Ok(())
}

/// Creates a `BackupSession` of `name` and, unless `no_wait`, waits for its final phase.
async fn trigger(
    client: kube::Client,
    namespace: &str,
    name: &str,
    no_wait: bool,
    timeout: std::time::Duration,
    json: bool,
    control: &Control,
) -> anyhow::Result<()> {
    let created = stash_kubectl::trigger::run(client.clone(), namespace, name).await?;
    println!("backupsession {created} created");
    if no_wait {
        return Ok(());
    }
    let session =
        stash_kubectl::trigger::wait_until_final(client, &created, timeout, control).await?;
    if json {
        repo::print_json(&session)?;
    } else {
        print!("{}", stash_kubectl::session_summary::render(&session));
    }
    stash_kubectl::session_summary::verdict(&session).map_err(Into::into)
}

/// Checks the repository and prints what was found.
async fn check(
    client: &kube::Client,
    repository: &RepositoryRef,
    read_data: bool,
    json: bool,
    control: &Control,
) -> anyhow::Result<()> {
    let request = CheckRequest {
        read_data,
        read_data_subset: None,
    };
    let report = stash_kubectl::check::run(client, repository, request, control).await?;
    super::check::print_report(&report, json)?;
    stash_kubectl::check::verdict(repository, &report).map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::Parser;

    use super::{Pausable, Verb};
    use crate::cli::{Command, Opts};

    fn parse(command_line: &[&str]) -> super::KubectlArgs {
        let parsed = super::args(command_line.iter().map(OsString::from));
        match Opts::try_parse_from(parsed).expect("parses").command {
            Command::Kubectl(args) => args,
            other => panic!("not the plugin: {other:?}"),
        }
    }

    #[test]
    fn the_binary_named_kubectl_stash_parses_the_plugin_verbs() {
        let args = parse(&[
            "/usr/local/bin/kubectl-stash",
            "snapshots",
            "gcs-repo",
            "-n",
            "demo",
        ]);
        assert_eq!(args.namespace.as_deref(), Some("demo"));
        assert!(matches!(args.verb, Verb::Snapshots { repository } if repository == "gcs-repo"));
    }

    #[test]
    fn the_binary_named_stash_keeps_its_own_commands() {
        let argv = super::args(["/usr/bin/stash", "snapshots"].map(OsString::from));
        assert_eq!(argv[1], "snapshots");
    }

    #[test]
    fn pause_backup_takes_stash_s_backupconfig_flag() {
        let args = parse(&[
            "kubectl-stash",
            "pause",
            "backup",
            "--backupconfig=sample",
            "--namespace=demo",
        ]);
        let Verb::Pause {
            what: Pausable::Backup(target),
        } = args.verb
        else {
            panic!("a pause");
        };
        assert_eq!(target.backupconfig.as_deref(), Some("sample"));
    }

    #[test]
    fn download_splits_comma_separated_snapshots() {
        let args = parse(&[
            "kubectl-stash",
            "download",
            "repo",
            "--snapshots=a1b2c3d4,latest",
            "--destination=/tmp/d",
        ]);
        let Verb::Download { snapshots, .. } = args.verb else {
            panic!("a download");
        };
        assert_eq!(snapshots, ["a1b2c3d4", "latest"]);
    }
}
