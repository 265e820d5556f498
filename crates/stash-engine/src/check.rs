//! `check`: structure always, pack contents on request.

use rustic_core::{CheckOptions, ReadSubsetOption};
use serde::Serialize;

use crate::error::RusticCause;
use crate::progress::Operation;
use crate::repo::{LockKind, Op};
use crate::{Control, Engine, EngineError};

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
    /// Checks the repository under an exclusive lock. A cancelled check stops at its next
    /// backend request.
    pub async fn check(
        &self,
        request: CheckRequest,
        control: &Control,
    ) -> Result<CheckReport, EngineError> {
        self.run(Operation::Check, control, move |engine, op| {
            engine.check_blocking(&request, op)
        })
        .await
    }

    fn check_blocking(&self, request: &CheckRequest, op: &Op) -> Result<CheckReport, EngineError> {
        let (repo, _lock) = self.open_locked(op, LockKind::Exclusive)?;
        let mut options = CheckOptions::default()
            .read_data(request.read_data || request.read_data_subset.is_some());
        if let Some(subset) = &request.read_data_subset {
            let subset: ReadSubsetOption =
                subset
                    .parse()
                    .map_err(|source| EngineError::InvalidReadDataSubset {
                        value: subset.clone(),
                        source: RusticCause::new(source),
                    })?;
            options = options.read_data_subset(subset);
        }
        let results = repo
            .check(options)
            .map_err(|source| EngineError::Check(RusticCause::new(source)))?;
        op.checkpoint()?;
        let mut report = CheckReport {
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        for (level, finding) in results.0 {
            let text = finding.to_string();
            if format!("{level:?}") == "Error" {
                report.errors.push(text);
            } else {
                report.warnings.push(text);
            }
        }
        Ok(report)
    }
}
