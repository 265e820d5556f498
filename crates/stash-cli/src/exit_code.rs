//! restic's documented exit codes, so scripts written for restic keep working.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Error = 1,
    SourceUnreadable = 3,
    NoRepository = 10,
    LockFailed = 11,
    WrongPassword = 12,
    Interrupted = 130,
}

impl ExitCode {
    pub fn from_error(_err: &anyhow::Error) -> Self {
        ExitCode::Error
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}
