//! Engine errors: one variant per failed action, the cause kept as the source, and the user's
//! next step in the message. [`EngineError::retryable`] tells a caller (the agent's retry loop,
//! an operator's backoff) whether trying again can help.

use std::path::PathBuf;

/// Whether retrying the same operation later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A passing fault (network, backend busy, lock held): retry with backoff.
    Temporary,
    /// May clear up, but not soon (a backend answering with errors we cannot classify): retry
    /// with a long backoff.
    Persistent,
    /// Retrying will not help until the input or the repository changes.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid repository `{repository}`: {reason}")]
    InvalidRepository { repository: String, reason: String },

    #[error("cannot set up the backend of repository `{repository}`")]
    Backend {
        repository: String,
        #[source]
        source: crate::backend::BackendError,
    },

    #[error(
        "no repository found at `{location}`: run `stash init -r {location}` to create one, or check the location and credentials"
    )]
    RepositoryNotFound {
        location: String,
        #[source]
        source: Option<RusticCause>,
    },

    #[error(
        "repository at `{location}` already exists (config file present); refusing to initialize it again"
    )]
    RepositoryExists { location: String },

    #[error(
        "wrong password for repository `{location}`: no key in `keys/` opens with it; check RESTIC_PASSWORD / --password-file"
    )]
    WrongPassword { location: String },

    #[error(
        "repository `{location}` uses restic's s3legacy layout (restic < 0.7: `key/`, `snapshot/`, a flat `data/`), which stash does not read; convert it with `restic migrate s3_layout` (restic 0.7 to 0.17, an older restic than today's), then run stash again"
    )]
    LegacyLayout { location: String },

    #[error(
        "repository `{location}` has packs holding both tree and data blobs (written by restic before 0.12); stash reads, checks and restores them, but cannot yet prune them safely: run `restic prune` once (it repacks them), then prune with stash"
    )]
    MixedPacksPrune { location: String },

    #[error(
        "repository `{location}` has packs holding both tree and data blobs (written by restic before 0.12); stash reads them but cannot yet write index entries restic reads for them: run `restic repair index` instead"
    )]
    MixedPacksRepairIndex { location: String },

    #[error(
        "no repository password given: set RESTIC_PASSWORD, RESTIC_PASSWORD_FILE or pass --password-file"
    )]
    MissingPassword,

    #[error("failed to read password file `{path}`")]
    ReadPasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("failed to open repository `{location}`")]
    OpenRepository {
        location: String,
        #[source]
        source: RusticCause,
    },

    #[error("failed to initialize repository `{location}`")]
    InitRepository {
        location: String,
        #[source]
        source: RusticCause,
    },

    #[error("failed to write the key file of repository `{location}`: {reason}")]
    WriteKeyFile { location: String, reason: String },

    #[error("failed to read the repository index")]
    ReadIndex(#[source] RusticCause),

    #[error("failed to list snapshots")]
    ListSnapshots(#[source] RusticCause),

    #[error("no snapshot matches `{spec}`{filter}")]
    SnapshotNotFound { spec: String, filter: String },

    #[error("snapshot id prefix `{spec}` is ambiguous: give more characters of the id")]
    AmbiguousSnapshot { spec: String },

    #[error("invalid {option} pattern `{pattern}`")]
    InvalidPattern {
        option: &'static str,
        pattern: String,
        #[source]
        source: globset::Error,
    },

    #[error("invalid snapshot tags `{tags}`: tags are words separated by commas")]
    InvalidTags {
        tags: String,
        #[source]
        source: RusticCause,
    },

    #[error(
        "no paths to back up: name at least one file or directory (Stash: `spec.target.paths`)"
    )]
    NoBackupPaths,

    #[error("backup source `{path}` does not exist or cannot be read")]
    SourceMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot use the backup paths as given: {reason}")]
    InvalidBackupPaths { reason: String },

    #[error(
        "failed to prepare the backup source (check the --exclude patterns / `spec.target.exclude`)"
    )]
    PrepareSource(#[source] RusticCause),

    #[error("failed to prepare the snapshot")]
    PrepareSnapshot(#[source] RusticCause),

    #[error("failed to back up {paths}")]
    Backup {
        paths: String,
        #[source]
        source: RusticCause,
    },

    #[error("restore target `{path}`: {action}")]
    RestoreTarget {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid --read-data-subset `{value}`: use n/m, x% or a size such as 1G")]
    InvalidReadDataSubset {
        value: String,
        #[source]
        source: RusticCause,
    },

    #[error("failed to check the repository")]
    Check(#[source] RusticCause),

    #[error(
        "retention policy has no keep rule: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly, keepTags"
    )]
    NoRetentionRule,

    #[error("retention policy: {field} {value} is too large (at most {max})", max = i32::MAX)]
    RetentionCountTooLarge { field: &'static str, value: u32 },

    #[error("retention policy: keepTags {tags:?} are not valid tags: {reason}")]
    InvalidKeepTags { tags: Vec<String>, reason: String },

    #[error("failed to apply the retention policy")]
    ApplyRetention(#[source] RusticCause),

    #[error("failed to remove forgotten snapshots")]
    RemoveSnapshots(#[source] RusticCause),

    #[error("failed to plan the prune")]
    PlanPrune(#[source] RusticCause),

    #[error("failed to prune the repository")]
    Prune(#[source] RusticCause),

    #[error("failed to repair the index")]
    RepairIndex(#[source] RusticCause),

    #[error("failed to repair the snapshots")]
    RepairSnapshots(#[source] RusticCause),

    #[error(
        "unable to take {kind} lock: the repository is already locked with {holder}; wait for it to finish (or pass --retry-lock), and if that process is gone run `stash unlock`",
        kind = if *.exclusive { "an exclusive" } else { "a shared" }
    )]
    LockConflict { exclusive: bool, holder: String },

    #[error("failed to {action} in the repository's `locks/`: {reason}")]
    LockFiles {
        action: &'static str,
        reason: String,
    },

    #[error("the operation was cancelled")]
    Cancelled,

    #[error(
        "internal error during {operation}: {message}; the repository is left as a crash would leave it (run `stash check`), please report this"
    )]
    Panicked {
        operation: &'static str,
        message: String,
    },
}

impl EngineError {
    /// Whether a retry can succeed without a change of input.
    #[must_use]
    pub fn retryable(&self) -> Retry {
        match self {
            Self::Backend { source, .. } => source.retry(),
            Self::OpenRepository { source, .. }
            | Self::InitRepository { source, .. }
            | Self::Backup { source, .. }
            | Self::ReadIndex(source)
            | Self::ListSnapshots(source)
            | Self::Check(source)
            | Self::ApplyRetention(source)
            | Self::RemoveSnapshots(source)
            | Self::PlanPrune(source)
            | Self::Prune(source)
            | Self::RepairIndex(source)
            | Self::RepairSnapshots(source) => source.retry(),
            // A backend that does not answer looks like a missing repository; only a clean
            // "there is no config file" is certain.
            Self::RepositoryNotFound {
                source: Some(source),
                ..
            } => match source.retry() {
                Retry::Permanent => Retry::Permanent,
                _ => Retry::Temporary,
            },
            Self::LockConflict { .. } | Self::LockFiles { .. } => Retry::Temporary,
            Self::InvalidRepository { .. }
            | Self::RepositoryNotFound { source: None, .. }
            | Self::RepositoryExists { .. }
            | Self::WrongPassword { .. }
            | Self::LegacyLayout { .. }
            | Self::MixedPacksPrune { .. }
            | Self::MixedPacksRepairIndex { .. }
            | Self::MissingPassword
            | Self::ReadPasswordFile { .. }
            | Self::WriteKeyFile { .. }
            | Self::SnapshotNotFound { .. }
            | Self::AmbiguousSnapshot { .. }
            | Self::InvalidPattern { .. }
            | Self::InvalidTags { .. }
            | Self::NoBackupPaths
            | Self::SourceMissing { .. }
            | Self::InvalidBackupPaths { .. }
            | Self::PrepareSource(_)
            | Self::PrepareSnapshot(_)
            | Self::RestoreTarget { .. }
            | Self::InvalidReadDataSubset { .. }
            | Self::NoRetentionRule
            | Self::RetentionCountTooLarge { .. }
            | Self::InvalidKeepTags { .. }
            | Self::Cancelled
            | Self::Panicked { .. } => Retry::Permanent,
        }
    }
}

/// A `rustic_core` error as a cause: shown in one line (rustic's own report is long and
/// multi-line), classified for retry once, and kept whole for `{:?}`.
pub struct RusticCause {
    error: Box<rustic_core::RusticError>,
    line: String,
    retry: Retry,
}

impl RusticCause {
    pub(crate) fn new(error: Box<rustic_core::RusticError>) -> Self {
        let line = one_line(&error);
        let retry = classify(&error);
        Self { error, line, retry }
    }

    #[must_use]
    pub fn retry(&self) -> Retry {
        self.retry
    }

    pub(crate) fn is_incorrect_password(&self) -> bool {
        self.error.is_incorrect_password()
    }
}

impl From<Box<rustic_core::RusticError>> for RusticCause {
    fn from(error: Box<rustic_core::RusticError>) -> Self {
        Self::new(error)
    }
}

impl std::fmt::Display for RusticCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::fmt::Debug for RusticCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

// The one-line form already holds rustic's chain of causes; exposing it again as `source()`
// would print every cause twice in `{:#}` chains.
impl std::error::Error for RusticCause {}

/// `rustic_core`'s concise log form, with a hint for the faults users meet most.
pub(crate) fn one_line(err: &rustic_core::RusticError) -> String {
    let text = err.display_log();
    let text = text
        .strip_prefix("Error: ")
        .unwrap_or(&text)
        .replace('\n', " ");
    if text.contains("NoSuchBucket") {
        return format!(
            "the bucket does not exist; create it first (e.g. `aws s3 mb`), then retry ({text})"
        );
    }
    if text.contains("InvalidAccessKeyId")
        || text.contains("SignatureDoesNotMatch")
        || text.contains("AccessDenied")
    {
        return format!("access denied; check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY ({text})");
    }
    text
}

/// Retry class of a rustic error: from the first cause whose type says it (I/O, HTTP, object
/// store), else from rustic's own status and kind.
fn classify(err: &rustic_core::RusticError) -> Retry {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(current) = cause {
        if let Some(retry) = classify_cause(current) {
            return retry;
        }
        cause = current.source();
    }
    // rustic_core 0.13 keeps kind and status private; its Debug form is the only way to them.
    let debug = format!("{err:?}");
    if debug.contains("status: Some(Permanent)") {
        return Retry::Permanent;
    }
    if debug.contains("status: Some(Temporary)") {
        return Retry::Temporary;
    }
    if debug.contains("status: Some(Persistent)") {
        return Retry::Persistent;
    }
    match debug
        .split("kind: ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
    {
        Some("Backend") => Retry::Persistent,
        Some("InputOutput") => Retry::Temporary,
        _ => Retry::Permanent,
    }
}

fn classify_cause(cause: &(dyn std::error::Error + 'static)) -> Option<Retry> {
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return Some(classify_io(io.kind()));
    }
    if let Some(err) = cause.downcast_ref::<opendal::Error>() {
        return Some(classify_opendal(err));
    }
    if let Some(err) = cause.downcast_ref::<reqwest::Error>() {
        return Some(classify_http(
            err.status().map(|s| s.as_u16()),
            err.is_timeout() || err.is_connect(),
        ));
    }
    None
}

pub(crate) fn classify_io(kind: std::io::ErrorKind) -> Retry {
    use std::io::ErrorKind as K;
    match kind {
        K::TimedOut
        | K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::Interrupted
        | K::WouldBlock
        | K::UnexpectedEof
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::ResourceBusy
        | K::AddrInUse
        | K::StorageFull => Retry::Temporary,
        _ => Retry::Permanent,
    }
}

fn classify_opendal(err: &opendal::Error) -> Retry {
    use opendal::ErrorKind as K;
    if err.is_temporary() {
        return Retry::Temporary;
    }
    match err.kind() {
        K::RateLimited => Retry::Temporary,
        K::Unexpected => Retry::Persistent,
        _ => Retry::Permanent,
    }
}

/// HTTP answers: 408, 429 and 5xx pass; other 4xx (credentials, missing bucket) do not.
pub(crate) fn classify_http(status: Option<u16>, transport_failed: bool) -> Retry {
    match status {
        Some(408 | 429) => Retry::Temporary,
        Some(s) if s >= 500 => Retry::Temporary,
        Some(s) if s >= 400 => Retry::Permanent,
        _ if transport_failed => Retry::Temporary,
        _ => Retry::Persistent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustic_core::{ErrorKind, RusticError};
    use std::io;

    fn rustic(
        kind: ErrorKind,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> RusticCause {
        RusticCause::new(RusticError::with_source(kind, "the action failed", cause))
    }

    #[test]
    fn retry_classification_follows_the_cause() {
        let table: Vec<(&str, RusticCause, Retry)> = vec![
            (
                "network timeout",
                rustic(ErrorKind::Backend, io::Error::from(io::ErrorKind::TimedOut)),
                Retry::Temporary,
            ),
            (
                "connection refused",
                rustic(
                    ErrorKind::Backend,
                    io::Error::from(io::ErrorKind::ConnectionRefused),
                ),
                Retry::Temporary,
            ),
            (
                "connection reset",
                rustic(
                    ErrorKind::Backend,
                    io::Error::from(io::ErrorKind::ConnectionReset),
                ),
                Retry::Temporary,
            ),
            (
                "permission denied on a local repository",
                rustic(
                    ErrorKind::InputOutput,
                    io::Error::from(io::ErrorKind::PermissionDenied),
                ),
                Retry::Permanent,
            ),
            (
                "file not found",
                rustic(ErrorKind::Backend, io::Error::from(io::ErrorKind::NotFound)),
                Retry::Permanent,
            ),
            (
                "object store rate limit",
                rustic(
                    ErrorKind::Backend,
                    opendal::Error::new(opendal::ErrorKind::RateLimited, "slow down"),
                ),
                Retry::Temporary,
            ),
            (
                "object store temporary failure (5xx)",
                rustic(
                    ErrorKind::Backend,
                    opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary(),
                ),
                Retry::Temporary,
            ),
            (
                "object store permission denied (bad keys)",
                rustic(
                    ErrorKind::Backend,
                    opendal::Error::new(opendal::ErrorKind::PermissionDenied, "403"),
                ),
                Retry::Permanent,
            ),
            (
                "object store bad configuration",
                rustic(
                    ErrorKind::Backend,
                    opendal::Error::new(opendal::ErrorKind::ConfigInvalid, "bucket"),
                ),
                Retry::Permanent,
            ),
            (
                "wrong password",
                RusticCause::new(
                    RusticError::new(ErrorKind::Credentials, "no key").attach_error_code("C002"),
                ),
                Retry::Permanent,
            ),
            (
                "bad option",
                RusticCause::new(RusticError::new(ErrorKind::InvalidInput, "bad value")),
                Retry::Permanent,
            ),
            (
                "unclassified backend fault",
                RusticCause::new(RusticError::new(ErrorKind::Backend, "odd")),
                Retry::Persistent,
            ),
            (
                "status set by rustic wins over the kind",
                RusticCause::new(
                    RusticError::new(ErrorKind::Backend, "busy")
                        .attach_status(rustic_core::Status::Temporary),
                ),
                Retry::Temporary,
            ),
        ];
        for (case, cause, expected) in table {
            assert_eq!(cause.retry(), expected, "{case}: {cause}");
        }
    }

    #[test]
    fn http_status_classification() {
        assert_eq!(classify_http(Some(503), false), Retry::Temporary);
        assert_eq!(classify_http(Some(429), false), Retry::Temporary);
        assert_eq!(classify_http(Some(408), false), Retry::Temporary);
        assert_eq!(classify_http(Some(403), false), Retry::Permanent);
        assert_eq!(classify_http(Some(404), false), Retry::Permanent);
        assert_eq!(classify_http(None, true), Retry::Temporary);
    }

    #[test]
    fn engine_errors_that_need_the_user_are_permanent_and_lock_conflicts_pass() {
        let permanent = [
            EngineError::WrongPassword {
                location: "/r".into(),
            },
            EngineError::RepositoryNotFound {
                location: "/r".into(),
                source: None,
            },
            EngineError::MissingPassword,
            EngineError::NoBackupPaths,
            EngineError::NoRetentionRule,
            EngineError::Cancelled,
            EngineError::InvalidRepository {
                repository: "ftp:x".into(),
                reason: "unknown backend".into(),
            },
        ];
        for err in permanent {
            assert_eq!(err.retryable(), Retry::Permanent, "{err}");
        }
        let conflict = EngineError::LockConflict {
            exclusive: true,
            holder: "a lock by PID 1".into(),
        };
        assert_eq!(conflict.retryable(), Retry::Temporary);
        let unreachable = EngineError::RepositoryNotFound {
            location: "s3:http://127.0.0.1:1/b".into(),
            source: Some(rustic(
                ErrorKind::Backend,
                io::Error::from(io::ErrorKind::ConnectionRefused),
            )),
        };
        assert_eq!(
            unreachable.retryable(),
            Retry::Temporary,
            "an unreachable server is not a missing repository"
        );
    }

    #[test]
    fn a_rustic_cause_prints_in_one_line() {
        let cause = rustic(ErrorKind::Backend, io::Error::from(io::ErrorKind::TimedOut));
        assert!(!cause.to_string().contains('\n'), "{cause}");
        assert!(cause.to_string().contains("the action failed"), "{cause}");
    }
}
