//! A backup source that remembers what it could not read.
//!
//! `rustic_core` logs unreadable entries and leaves them out of the snapshot. A backup with silent
//! holes is how users of every restic-based tool lose data, so this wrapper records each failure
//! with its path; the backup then reports them and the CLI exits with restic's code 3.
//!
//! The same wrapper counts files for the progress figures and is where a backup notices it was
//! cancelled: the walk stops and open files stop reading.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustic_core::{LocalSource, ReadSource, ReadSourceEntry, ReadSourceOpen, RusticResult};
use tokio_util::sync::CancellationToken;

use crate::backup::UnreadableEntry;
use crate::progress::Tracker;
use crate::walk_ahead::WalkAhead;

type Failures = Arc<Mutex<Vec<UnreadableEntry>>>;

pub(crate) struct WatchedSource {
    inner: LocalSource,
    failures: Failures,
    tracker: Arc<Tracker>,
    cancel: CancellationToken,
}

impl WatchedSource {
    pub(crate) fn new(
        inner: LocalSource,
        tracker: Arc<Tracker>,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner,
            failures: Failures::default(),
            tracker,
            cancel,
        }
    }

    pub(crate) fn failures(&self) -> Vec<UnreadableEntry> {
        let mut failures = self
            .failures
            .lock()
            .expect("failure list lock poisoned")
            .clone();
        failures.sort_by(|a, b| a.path.cmp(&b.path));
        failures.dedup_by(|a, b| a.path == b.path);
        failures
    }
}

fn record(failures: &Failures, path: PathBuf, error: String) {
    failures
        .lock()
        .expect("failure list lock poisoned")
        .push(UnreadableEntry { path, error });
}

impl ReadSource for WatchedSource {
    type Open = WatchedOpen;
    type Iter = WatchedIter;

    /// rustic asks for the size only when progress is observed, in a scan beside the backup;
    /// the same walk gives the number of files.
    fn size(&self) -> RusticResult<Option<u64>> {
        let (mut files, mut bytes) = (0u64, 0u64);
        for entry in self.inner.entries() {
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            let Ok(entry) = entry else { continue };
            if !entry.node.is_dir() {
                files += 1;
                bytes += entry.node.meta.size;
            }
        }
        self.tracker.set_files_total(files);
        Ok(Some(bytes))
    }

    fn entries(&self) -> Self::Iter {
        WatchedIter {
            inner: WalkAhead::spawn(self.inner.entries(), self.cancel.clone()),
            failures: self.failures.clone(),
            tracker: self.tracker.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

type LocalEntry = RusticResult<ReadSourceEntry<<LocalSource as ReadSource>::Open>>;

pub(crate) struct WatchedIter {
    inner: WalkAhead<LocalEntry>,
    failures: Failures,
    tracker: Arc<Tracker>,
    cancel: CancellationToken,
}

impl Iterator for WatchedIter {
    type Item = RusticResult<ReadSourceEntry<WatchedOpen>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.cancel.is_cancelled() {
            return None;
        }
        let item = self.inner.next()?;
        Some(match item {
            Ok(ReadSourceEntry { path, node, open }) => {
                if !node.is_dir() {
                    self.tracker.add_files(1);
                }
                Ok(ReadSourceEntry {
                    open: open.map(|inner| WatchedOpen {
                        inner,
                        path: path.clone(),
                        failures: self.failures.clone(),
                        tracker: self.tracker.clone(),
                        cancel: self.cancel.clone(),
                    }),
                    path,
                    node,
                })
            }
            Err(err) => {
                // The walker's error names the path in its source chain (e.g. a directory
                // without read permission).
                let message = error_chain(&*err);
                record(&self.failures, path_in(&message), message);
                Err(err)
            }
        })
    }
}

pub(crate) struct WatchedOpen {
    inner: <LocalSource as ReadSource>::Open,
    path: PathBuf,
    failures: Failures,
    tracker: Arc<Tracker>,
    cancel: CancellationToken,
}

impl ReadSourceOpen for WatchedOpen {
    type Reader = WatchedReader;

    fn open(self) -> RusticResult<Self::Reader> {
        self.tracker.file_started(&self.path);
        match self.inner.open() {
            Ok(reader) => Ok(WatchedReader {
                inner: reader,
                path: self.path,
                failures: self.failures,
                cancel: self.cancel,
            }),
            Err(err) => {
                record(&self.failures, self.path, error_chain(&*err));
                Err(err)
            }
        }
    }
}

pub(crate) struct WatchedReader {
    inner: <<LocalSource as ReadSource>::Open as ReadSourceOpen>::Reader,
    path: PathBuf,
    failures: Failures,
    cancel: CancellationToken,
}

impl Read for WatchedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not recorded as unreadable: the snapshot this file would go into is never saved.
            // (`Interrupted` would make std's read loops retry forever.)
            return Err(std::io::Error::other("the backup was cancelled"));
        }
        self.inner.read(buf).inspect_err(|err| {
            record(&self.failures, self.path.clone(), err.to_string());
        })
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Best effort: the first absolute path mentioned in a walker error.
fn path_in(message: &str) -> PathBuf {
    message
        .split_whitespace()
        .map(|word| {
            word.trim_matches(|c: char| c == ':' || c == '`' || c == '"' || c == '\'' || c == ',')
        })
        .find(|word| word.starts_with('/'))
        .map_or_else(
            || PathBuf::from("<unknown>"),
            |p| Path::new(p).to_path_buf(),
        )
}
