//! `check`: structure always, pack contents on request.

use std::collections::BTreeMap;

use rustic_core::{CheckOptions, ReadSubsetOption};
use serde::Serialize;

use rustic_core::repofile::{BlobType, IndexPack};
use rustic_core::{FileType, Id, ReadBackend};
use sha2::Digest;

use crate::cipher::RepoCipher;
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
        // A failure inside rustic_core (an error or a panic of its checker) is a finding, never a
        // crash: the report says where the check stopped.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let quiet = tracing::dispatcher::get_default(|current| {
                tracing::Dispatch::new(WithoutCheckerLog(current.clone()))
            });
            tracing::dispatcher::with_default(&quiet, || repo.check(options))
        }));
        op.checkpoint()?;
        let mut report = CheckReport {
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let findings = match results {
            Ok(Ok(results)) => results.0,
            Ok(Err(err)) => {
                report.errors.push(format!(
                    "the check could not finish: {}",
                    hints_for_stash(&err.display_log())
                ));
                Vec::new()
            }
            Err(panic) => {
                report.errors.push(format!(
                    "the check stopped on an internal failure of its repository library ({}); the findings above are incomplete",
                    crate::repo::panic_text(&*panic)
                ));
                Vec::new()
            }
        };
        let mixed = op.index_compat.mixed_packs();
        for (level, finding) in findings {
            let text = finding.to_string();
            if mixed_pack_artifact(&mixed, &text) {
                continue;
            }
            let text = hints_for_stash(&text);
            if format!("{level:?}") == "Error" {
                report.errors.push(text);
            } else {
                report.warnings.push(text);
            }
        }
        if !mixed.is_empty() {
            let backend = self
                .backends(op, crate::cancel::AfterCancel::RefuseAll)?
                .repository();
            let cipher = RepoCipher::new(&repo.key());
            for (id, pack) in &mixed {
                report.warnings.push(format!(
                    "pack {}: holds both tree and data blobs (written by restic before 0.12); stash reads it as restic does",
                    short(id)
                ));
                if request.read_data || request.read_data_subset.is_some() {
                    op.checkpoint()?;
                    if let Err(err) = verify_mixed_pack(&*backend, &cipher, pack) {
                        report.errors.push(format!("pack {}: {err}", short(id)));
                    }
                }
            }
        }
        for id in op.index_compat.legacy_index_files() {
            report.warnings.push(format!(
                "index {}: has restic's pre-0.2 format, which restic 0.17 and later refuse; rewrite it with `restic repair index` (restic 0.16), or `restic rebuild-index` with an older restic",
                short(&id)
            ));
        }
        Ok(report)
    }
}

fn short(id: &Id) -> String {
    id.to_hex()[..8].to_string()
}

/// `rustic_core` checks each half of a mixed pack (see `index_compat`) as if it were a pack of its
/// own, so it reports offsets, hashes and headers that do not add up; those packs are verified
/// whole by [`verify_mixed_pack`] instead.
fn mixed_pack_artifact(mixed: &BTreeMap<Id, IndexPack>, finding: &str) -> bool {
    let artifact = finding.contains("does not match")
        || finding.contains("Hash mismatch")
        || finding.contains("offset");
    artifact
        && mixed
            .keys()
            .any(|id| finding.starts_with(&format!("pack {}", short(id))))
}

/// `rustic_core`'s repair hints name `rustic` commands, which a stash user does not have; they
/// name the stash command doing the same instead.
fn hints_for_stash(text: &str) -> String {
    text.replace("'rustic repair index'", "`stash repair index`")
        .replace("'rustic repair snapshots'", "`stash repair snapshots`")
        .replace("'rustic ", "'stash ")
}

/// A mixed pack checked as restic checks any pack: its id is the hash of its bytes, every blob
/// decrypts to its id, and its header lists exactly the blobs the index lists.
fn verify_mixed_pack(
    backend: &dyn ReadBackend,
    cipher: &RepoCipher,
    pack: &IndexPack,
) -> Result<(), String> {
    let data = backend
        .read_full(FileType::Pack, &pack.id)
        .map_err(|err| format!("cannot read it: {}", err.display_log()))?;
    let computed: [u8; 32] = sha2::Sha256::digest(&data).into();
    if Id::new(computed) != *pack.id {
        return Err(format!(
            "its content does not hash to its id (computed {}); it is corrupt",
            hex::encode(&computed[..4])
        ));
    }
    let mut blobs = pack.blobs.clone();
    blobs.sort_unstable();
    for blob in &blobs {
        let start = blob.location.offset as usize;
        let sealed = data
            .get(start..start + blob.location.length as usize)
            .ok_or_else(|| format!("blob {} lies beyond the end of the pack", short(&blob.id)))?;
        let plain = cipher
            .open_blob(sealed, blob.location.uncompressed_length, None)
            .map_err(|err| format!("blob {}: {err}", short(&blob.id)))?;
        let computed: [u8; 32] = sha2::Sha256::digest(&plain).into();
        if Id::new(computed) != *blob.id {
            return Err(format!(
                "blob {} does not hash to its id; it is corrupt",
                short(&blob.id)
            ));
        }
    }
    let header = pack_header(cipher, &data)?;
    let listed: Vec<_> = blobs
        .iter()
        .map(|b| {
            (
                b.tpe,
                b.location.length,
                b.location
                    .uncompressed_length
                    .map(std::num::NonZeroU32::get),
                *b.id,
            )
        })
        .collect();
    if header != listed {
        return Err("its header does not list the blobs the index lists".to_string());
    }
    Ok(())
}

/// One blob of a pack header: type, length, uncompressed length (when compressed), id.
type HeaderEntry = (BlobType, u32, Option<u32>, Id);

/// The blobs restic's pack header lists, in pack order.
fn pack_header(cipher: &RepoCipher, data: &[u8]) -> Result<Vec<HeaderEntry>, String> {
    let corrupt = || "its header is truncated or corrupt".to_string();
    let len_at = data.len().checked_sub(4).ok_or_else(corrupt)?;
    let header_len = u32::from_le_bytes(data[len_at..].try_into().map_err(|_| corrupt())?) as usize;
    let sealed = data
        .get(len_at.checked_sub(header_len).ok_or_else(corrupt)?..len_at)
        .ok_or_else(corrupt)?;
    let plain = cipher
        .open(sealed)
        .map_err(|reason| format!("its header: {reason}"))?;
    let mut entries = Vec::new();
    let mut rest = plain.as_slice();
    while let Some((&kind, tail)) = rest.split_first() {
        let u32_at = |bytes: &[u8], at: usize| -> Result<u32, String> {
            Ok(u32::from_le_bytes(
                bytes
                    .get(at..at + 4)
                    .ok_or_else(corrupt)?
                    .try_into()
                    .map_err(|_| corrupt())?,
            ))
        };
        let (tpe, compressed) = match kind {
            0 => (BlobType::Data, false),
            1 => (BlobType::Tree, false),
            2 => (BlobType::Data, true),
            3 => (BlobType::Tree, true),
            _ => return Err(corrupt()),
        };
        let length = u32_at(tail, 0)?;
        let (uncompressed, id_at) = if compressed {
            (Some(u32_at(tail, 4)?), 8)
        } else {
            (None, 4)
        };
        let id: [u8; 32] = tail
            .get(id_at..id_at + 32)
            .ok_or_else(corrupt)?
            .try_into()
            .map_err(|_| corrupt())?;
        entries.push((tpe, length, uncompressed, Id::new(id)));
        rest = &tail[id_at + 32..];
    }
    Ok(entries)
}

/// The caller's logger minus `rustic_core`'s checker, which logs every finding (with hints naming
/// `rustic` commands) as it goes; the report carries each finding once, reworded for stash.
/// Installed for the checking thread only: the findings `rustic_core` logs from its own worker
/// threads (read-data) still show up twice.
struct WithoutCheckerLog(tracing::Dispatch);

impl WithoutCheckerLog {
    const TARGET: &'static str = "rustic_core::commands::check";
}

impl tracing::Subscriber for WithoutCheckerLog {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        !metadata.target().starts_with(Self::TARGET) && self.0.enabled(metadata)
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(span)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        self.0.record(span, values);
    }

    fn record_follows_from(&self, span: &tracing::span::Id, follows: &tracing::span::Id) {
        self.0.record_follows_from(span, follows);
    }

    fn event(&self, event: &tracing::Event<'_>) {
        if !event.metadata().target().starts_with(Self::TARGET) {
            self.0.event(event);
        }
    }

    fn enter(&self, span: &tracing::span::Id) {
        self.0.enter(span);
    }

    fn exit(&self, span: &tracing::span::Id) {
        self.0.exit(span);
    }

    fn clone_span(&self, id: &tracing::span::Id) -> tracing::span::Id {
        self.0.clone_span(id)
    }

    fn try_close(&self, id: tracing::span::Id) -> bool {
        self.0.try_close(id)
    }
}
