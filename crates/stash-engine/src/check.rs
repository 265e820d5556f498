//! `check`: structure always, pack contents on request.

use rustic_core::{CheckOptions, ReadSubsetOption};
use serde::Serialize;

use crate::{Engine, EngineError};

#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    /// Read and verify every pack (restic `--read-data`).
    pub read_data: bool,
    /// Read a subset: `n/m`, `x%` or a size like `1G` (restic `--read-data-subset`).
    pub read_data_subset: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl CheckReport {
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

impl Engine {
    pub fn check(&self, request: &CheckRequest) -> Result<CheckReport, EngineError> {
        let (repo, _lock) = self.open_locked(crate::repo::LockKind::Exclusive)?;
        let mut options = CheckOptions::default()
            .read_data(request.read_data || request.read_data_subset.is_some());
        if let Some(subset) = &request.read_data_subset {
            let subset: ReadSubsetOption = subset.parse().map_err(EngineError::repository(
                "parse --read-data-subset (use n/m, x% or a size such as 1G)",
            ))?;
            options = options.read_data_subset(subset);
        }
        let results = repo
            .check(options)
            .map_err(EngineError::repository("check the repository"))?;
        let mut report = CheckReport {
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for (level, finding) in results.0 {
            let text = finding.to_string();
            if format!("{level:?}") == "Error" {
                report.errors.push(text)
            } else {
                report.warnings.push(text)
            }
        }
        Ok(report)
    }
}
