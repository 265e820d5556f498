//! restic's documented exit codes, so scripts written for restic keep working.

use stash_engine::EngineError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Error = 1,
    /// The backup finished but some source files could not be read.
    SourceUnreadable = 3,
    NoRepository = 10,
    LockFailed = 11,
    WrongPassword = 12,
    Interrupted = 130,
}

impl ExitCode {
    pub fn from_error(err: &anyhow::Error) -> Self {
        match err.downcast_ref::<EngineError>() {
            Some(EngineError::RepositoryNotFound { .. }) => Self::NoRepository,
            Some(EngineError::WrongPassword { .. }) => Self::WrongPassword,
            Some(EngineError::LockConflict { .. } | EngineError::LockFiles { .. }) => {
                Self::LockFailed
            }
            Some(EngineError::Cancelled) => Self::Interrupted,
            _ => Self::Error,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
