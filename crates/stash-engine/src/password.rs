//! The repository password, found the way restic finds it.

use std::path::{Path, PathBuf};

use crate::EngineError;

/// A repository password. Debug output never shows it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    #[must_use]
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// `--password-file` wins, then `RESTIC_PASSWORD_FILE`, then `RESTIC_PASSWORD` (restic's order).
    pub fn resolve(password_file: Option<&Path>) -> Result<Self, EngineError> {
        let file = password_file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("RESTIC_PASSWORD_FILE").map(PathBuf::from));
        if let Some(path) = file {
            return Self::from_file(&path);
        }
        match std::env::var("RESTIC_PASSWORD") {
            Ok(password) => Ok(Self(password)),
            Err(_) => Err(EngineError::MissingPassword),
        }
    }

    /// Reads a password file; like restic, only the first line counts.
    pub fn from_file(path: &Path) -> Result<Self, EngineError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| EngineError::ReadPasswordFile {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self(text.lines().next().unwrap_or_default().to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}
