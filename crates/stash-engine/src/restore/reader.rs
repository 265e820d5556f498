//! The workers: each takes a read, fetches that range of a pack, decrypts and verifies its
//! blobs and writes them to every place they belong; the last write of a file sets its metadata.

use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;

use rustic_core::{DataId, FileType, WriteBackend};

use super::RestoreState;
use super::files::apply_metadata;
use super::plan::{FileInProgress, ReadJob};
use crate::cipher::RepoCipher;

/// A blob's id is the SHA-256 of its plaintext: checking it catches a pack that decrypts but
/// holds other data than the index says (restic's restorer checks the same).
fn verified(plain: Vec<u8>, id: &DataId) -> Result<Vec<u8>, String> {
    use sha2::Digest;
    if hex::encode(sha2::Sha256::digest(&plain)) == id.to_hex().as_str() {
        Ok(plain)
    } else {
        Err("its content does not match its id (the pack is corrupt); run `stash check --read-data`".into())
    }
}

pub(super) fn read_jobs(
    backend: &dyn WriteBackend,
    cipher: &RepoCipher,
    jobs: &Mutex<Receiver<ReadJob>>,
    state: &RestoreState,
    sparse: bool,
) {
    let mut decompressor = zstd::bulk::Decompressor::new().ok();
    loop {
        let Ok(job) = jobs.lock().expect("job queue lock poisoned").recv() else {
            return;
        };
        if state.cancel.is_cancelled() {
            // Drain without writing: files not yet complete stay as they are, finished ones
            // keep their content and metadata.
            continue;
        }
        let wanted = job.blobs.iter().any(|b| {
            b.targets
                .iter()
                .any(|(file, _)| !file.failed.load(Ordering::Relaxed))
        });
        let raw = if wanted {
            backend
                .read_partial(
                    FileType::Pack,
                    &job.pack,
                    false,
                    job.start,
                    job.end - job.start,
                )
                .map_err(|err| err.display_log())
        } else {
            Err(String::new())
        };
        for blob in &job.blobs {
            let data = match &raw {
                Ok(raw) => {
                    let at = (blob.offset - job.start) as usize;
                    match raw.get(at..at + blob.length as usize) {
                        Some(sealed) => cipher
                            .open_blob(sealed, blob.uncompressed_length, decompressor.as_mut())
                            .and_then(|plain| verified(plain, &blob.id)),
                        None => Err(format!(
                            "the pack {} is shorter than the index says",
                            job.pack
                        )),
                    }
                }
                Err(err) => Err(err.clone()),
            }
            .map_err(|err| format!("cannot read blob {}: {err}", blob.id));
            let zeros = sparse && data.as_ref().is_ok_and(|d| d.iter().all(|b| *b == 0));
            for (file, offset) in &blob.targets {
                if !file.failed.load(Ordering::Relaxed) {
                    let written = data.as_ref().map_err(Clone::clone).and_then(|data| {
                        if !zeros {
                            file.handle
                                .write_all_at(data, *offset)
                                .map_err(|err| err.to_string())?;
                        }
                        Ok(data.len())
                    });
                    match written {
                        Ok(len) => {
                            state.bytes_written(len as u64);
                        }
                        Err(err) => {
                            if !file.failed.swap(true, Ordering::Relaxed) {
                                state.fail(&file.path, &err);
                            }
                        }
                    }
                }
                if file.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    finish_file(file, state);
                }
            }
        }
    }
}

pub(super) fn finish_file(file: &FileInProgress, state: &RestoreState) {
    if file.failed.load(Ordering::Relaxed) {
        return;
    }
    match apply_metadata(&file.path, &file.meta, false) {
        Ok(()) => state.file_finished(),
        Err(err) => state.fail(&file.path, &err),
    }
}
