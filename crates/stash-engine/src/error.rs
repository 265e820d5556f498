//! Engine errors: one variant per failed action, each with the user's next step in its message.

use std::path::PathBuf;

/// Whether retrying the same operation later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A passing fault (network, backend busy, lock held): retry with backoff.
    Temporary,
    /// Retrying will not help until the input or the repository changes.
    Permanent,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid repository `{repository}`: {reason}")]
    InvalidRepository { repository: String, reason: String },

    #[error(
        "no repository found at `{location}`: run `stash init -r {location}` to create one, or check the location and credentials{detail}"
    )]
    RepositoryNotFound { location: String, detail: String },

    #[error(
        "repository at `{location}` already exists (config file present); refusing to initialize it again"
    )]
    RepositoryExists { location: String },

    #[error(
        "wrong password for repository `{location}`: no key in `keys/` opens with it; check RESTIC_PASSWORD / --password-file"
    )]
    WrongPassword { location: String },

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

    /// `rustic_core`'s own report is long and multi-line; `detail` is its one-line form.
    #[error("failed to {action}: {detail}")]
    Repository {
        action: &'static str,
        detail: String,
    },

    #[error("no snapshot matches `{spec}`{filter}")]
    SnapshotNotFound { spec: String, filter: String },

    #[error("invalid {option} pattern `{pattern}`")]
    InvalidPattern {
        option: &'static str,
        pattern: String,
        #[source]
        source: globset::Error,
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

    #[error("restore target `{path}`: {action}")]
    RestoreTarget {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid retention policy: {0}")]
    InvalidRetention(String),

    #[error("repository lock: {0}")]
    Lock(String),

    #[error("interrupted")]
    Interrupted,
}

impl EngineError {
    pub(crate) fn repository(
        action: &'static str,
    ) -> impl FnOnce(Box<rustic_core::RusticError>) -> Self {
        move |source| Self::Repository {
            action,
            detail: one_line(&source),
        }
    }

    /// Whether a retry can succeed without a change of input.
    #[must_use]
    pub fn retryable(&self) -> Retry {
        match self {
            // Backend faults dominate what reaches this arm (network, throttling, a busy
            // server); the errors that retrying cannot fix have their own variants.
            Self::Repository { .. } | Self::Lock(_) => Retry::Temporary,
            _ => Retry::Permanent,
        }
    }
}

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
