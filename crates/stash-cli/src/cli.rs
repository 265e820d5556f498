//! Command-line surface of `stash`: one `Command` variant per subcommand.
//!
//! The repository verbs mirror restic (`-r/--repo`, `RESTIC_REPOSITORY`, `RESTIC_PASSWORD`,
//! `--json`, exit codes) so a restic user is at home.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stash",
    version,
    about = "Kubernetes backup and restore operator, restic-compatible"
)]
pub struct Opts {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Back up files and directories into a new snapshot.
    Backup(BackupArgs),
    /// Restore a snapshot into a directory.
    Restore(RestoreArgs),
    /// List snapshots.
    Snapshots(SnapshotsArgs),
    /// Remove snapshots according to a retention policy.
    Forget(ForgetArgs),
    /// Remove data no snapshot references.
    Prune(PruneArgs),
    /// Verify the repository's structure and, optionally, its data.
    Check(CheckArgs),
    /// Remove stale locks left by processes that died.
    Unlock(UnlockArgs),
    /// Show repository size and snapshot count.
    Stats(StatsArgs),
    /// Repair the index or damaged snapshots.
    Repair(crate::commands::repair::RepairArgs),
    /// Run the operator: controllers, webhooks, metrics (Stash's chart calls it `run`).
    #[command(alias = "run")]
    Operator(crate::commands::operator::OperatorArgs),
    /// Create a backup session for an invoker now (what the trigger cron job runs).
    CreateBackupsession(crate::commands::create_backupsession::CreateBackupSessionArgs),
    /// Run the stash sidecar: back up this pod for each backup session of its invoker (§8.4).
    RunBackup(crate::commands::run_backup::RunBackupArgs),
    /// Back up a standalone `PersistentVolumeClaim` for a backup session (the backup Job, §11.1).
    BackupPvc(crate::commands::backup_pvc::BackupPvcArgs),
    /// Restore into a standalone `PersistentVolumeClaim` (the restore Job, §11.1).
    RestorePvc(crate::commands::restore_pvc::RestorePvcArgs),
    /// Record a backup or restore Job's output in its session (the Job's last container, §11.1).
    UpdateStatus(crate::commands::update_status::UpdateStatusArgs),
    /// Print the `CustomResourceDefinitions` of every Stash kind (or write them with --output-dir).
    Crd(crate::commands::crd::CrdArgs),
    /// Check Stash manifests offline: schema, semantics and obsolete shapes (exit 1 on any error).
    Validate(crate::commands::validate::ValidateArgs),
    /// The `kubectl stash` plugin verbs (what the binary runs as when installed as `kubectl-stash`).
    Kubectl(crate::commands::kubectl::KubectlArgs),
}

/// How much `stash` logs, and in which form.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log more: -v info, -vv debug, -vvv trace (`RUST_LOG` overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as text (for people) or JSON (for log collectors in pods).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "STASH_LOG_FORMAT", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the repository is and how to open it; shared by every repository verb.
// The bools are independent restic flags; the help text shows repository strings verbatim.
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)]
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository: a path, local:/path, s3:http://host:9000/bucket/prefix, rest:http://host:8000/, gs:, azure:, b2:, swift:.
    #[arg(
        short = 'r',
        long = "repo",
        env = "RESTIC_REPOSITORY",
        global = true,
        value_name = "REPOSITORY"
    )]
    pub repo: Option<String>,
    /// Read the repository password from the first line of this file (else `RESTIC_PASSWORD`).
    #[arg(
        short = 'p',
        long,
        env = "RESTIC_PASSWORD_FILE",
        global = true,
        value_name = "FILE"
    )]
    pub password_file: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less: no progress bars, only errors and the result.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Do not use a local cache of index and tree data.
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Directory of the local cache.
    #[arg(long, env = "RESTIC_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not lock the repository (only for read-only media; unsafe with concurrent writers).
    #[arg(long, global = true)]
    pub no_lock: bool,
    /// Trust the CA certificates in this PEM file for the backend's TLS (restic's --cacert;
    /// Stash's `CA_CERT_DATA` Secret key is read from the environment too).
    #[arg(long, env = "RESTIC_CACERT", global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Skip TLS certificate verification of the backend (restic's --insecure-tls; Stash's `insecureTLS`).
    #[arg(long, global = true)]
    pub insecure_tls: bool,
    /// Wait this long for another process's lock to go away (e.g. 5m, 30s).
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_duration)]
    pub retry_lock: Option<std::time::Duration>,
}

/// Go-style durations as restic accepts them: `90s`, `5m`, `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let span: jiff::Span = text
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; use e.g. 30s, 5m or 1h30m"))?;
    let signed = span
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|err| format!("`{text}`: {err}"))?;
    std::time::Duration::try_from(signed).map_err(|_| format!("`{text}` must not be negative"))
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Repository format: 2 (compressed; restic 0.14+ reads it). Format 1 repositories made by restic are read and written too.
    #[arg(long, value_name = "VERSION")]
    pub repository_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Leave out entries matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    #[arg(short = 'H', long, alias = "hostname")]
    pub host: Option<String>,
    /// Tag the snapshot (repeatable, or comma-separated).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Treat files as unchanged when path, size and mtime match, whatever their inode.
    #[arg(long)]
    pub ignore_inode: bool,
    /// Treat files as unchanged when path, size and mtime match, whatever their ctime.
    #[arg(long)]
    pub ignore_ctime: bool,
    /// Read all files, ignoring the parent snapshot.
    #[arg(short, long)]
    pub force: bool,
    /// Record this time in the snapshot instead of now (RFC 3339, e.g. 2026-01-31T10:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub time: Option<jiff::Timestamp>,
}

#[derive(Debug, Args)]
pub struct SnapshotFilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots containing this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots with this tag (repeatable, or comma-separated).
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
}

/// `stash restore` in two forms: restic's standalone restore (`SNAPSHOT --target DIR`), and, when
/// `--invoker-name` or `--invoker-kind` is given, the `stash-init` init-container's restore of a
/// `RestoreSession` (§10) with the flags the operator injects.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id (or prefix), or `latest` (not with --invoker-name).
    #[arg(
        value_name = "SNAPSHOT",
        required_unless_present_any = IN_POD_FLAGS,
        conflicts_with_all = IN_POD_FLAGS
    )]
    pub snapshot: Option<String>,
    /// Directory to restore into; each snapshot path is recreated below it (not with --invoker-name).
    #[arg(
        short,
        long,
        value_name = "DIR",
        required_unless_present_any = IN_POD_FLAGS,
        conflicts_with_all = IN_POD_FLAGS
    )]
    pub target: Option<PathBuf>,
    #[command(flatten)]
    pub in_pod: InPodRestoreArgs,
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Restore only entries matching this pattern (repeatable).
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    pub includes: Vec<String>,
    /// Do not restore entries matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// Write runs of zeros instead of leaving holes.
    #[arg(long)]
    pub no_sparse: bool,
    /// Accepted for restic compatibility: restores are sparse unless --no-sparse.
    #[arg(long, hide = true)]
    pub sparse: bool,
}

/// The flags that make `stash restore` the init-container's restore.
const IN_POD_FLAGS: [&str; 2] = ["invoker_name", "invoker_kind"];

/// The init-container form of `stash restore`, with the flags Stash's operator passes (§10).
// The bools are Stash's independent `--flag=true|false` switches; kind names are plain words in --help.
#[allow(clippy::struct_excessive_bools, clippy::doc_markdown)]
#[derive(Debug, Args)]
#[command(next_help_heading = "Init-container restore (what the operator's stash-init runs)")]
pub struct InPodRestoreArgs {
    /// Kind of the invoker whose restore this pod performs: RestoreSession.
    #[arg(long, value_name = "KIND", requires = "invoker_name")]
    pub invoker_kind: Option<String>,
    /// Name of the RestoreSession, in the pod's namespace (v0.9's --restore-session is accepted).
    #[arg(long, alias = "restore-session", value_name = "NAME")]
    pub invoker_name: Option<String>,
    /// Namespace of the invoker (default: the pod's, from `MY_POD_NAMESPACE` or the service account,
    /// then --target-namespace).
    #[arg(long, value_name = "NAMESPACE", requires = "invoker_name")]
    pub namespace: Option<String>,
    /// Kind of the workload restored into (default: the RestoreSession's spec.target.ref).
    #[arg(long, value_name = "KIND", requires = "invoker_name")]
    pub target_kind: Option<String>,
    /// Name of the workload restored into (default: the RestoreSession's spec.target.ref).
    #[arg(long, value_name = "NAME", requires = "invoker_name")]
    pub target_name: Option<String>,
    /// Namespace of the workload restored into (it is the invoker's).
    #[arg(long, value_name = "NAMESPACE", requires = "invoker_name")]
    pub target_namespace: Option<String>,
    /// Keep restic's cache in the scratch directory (`tempDir.disableCaching` turns it off).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub enable_cache: bool,
    /// Parallel connections to the backend (0: the Repository's setting).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_connections: usize,
    /// Push the host's restore metrics to --pushgateway-url.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub metrics_enabled: bool,
    /// The Pushgateway the operator runs beside itself.
    #[arg(long, value_name = "URL")]
    pub pushgateway_url: Option<String>,
    /// Accepted for Stash compatibility: the API server address comes from the in-cluster config.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub use_kubeapiserver_fqdn_for_aks: bool,
    /// Deprecated (Stash ≤ v0.17): the storage Secret is read through the API; accepted and ignored.
    #[arg(long, value_name = "DIR", hide = true)]
    pub secret_dir: Option<PathBuf>,
    /// Log verbosity as Stash's `--v` (accepted; use -v or `RUST_LOG` for stash-rs's own logs).
    #[arg(long = "v", value_name = "LEVEL")]
    pub klog_level: Option<u8>,
}

impl InPodRestoreArgs {
    /// Whether this is the init-container's restore rather than restic's.
    #[must_use]
    pub fn is_present(&self) -> bool {
        self.invoker_name.is_some() || self.invoker_kind.is_some()
    }
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Keep the last N snapshots.
    #[arg(short = 'l', long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the last N hourly snapshots.
    #[arg(short = 'H', long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the last N daily snapshots.
    #[arg(short = 'd', long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the last N weekly snapshots.
    #[arg(short = 'w', long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the last N monthly snapshots.
    #[arg(short = 'm', long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the last N yearly snapshots.
    #[arg(short = 'y', long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Also remove the data that is no longer referenced.
    #[arg(long)]
    pub prune: bool,
    /// Only show what would be removed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only show what would be removed.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read and verify all data packs.
    #[arg(long)]
    pub read_data: bool,
    /// Read and verify a subset of packs: n/m, x% or a size such as 1G.
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Also remove locks that are not stale (only when you know no other process uses the repository).
    #[arg(long)]
    pub remove_all: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        super::Opts::command().debug_assert();
    }
}
