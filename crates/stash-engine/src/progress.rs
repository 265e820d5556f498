//! How a caller controls and observes one operation: a cancellation token and a progress sink.
//!
//! The engine keeps the figures in a [`Tracker`] (atomics, cheap to bump from the blocking
//! workers) and the async façade hands a [`ProgressUpdate`] to the caller's sink at a fixed
//! interval and once more at the end, so a slow sink (a Kubernetes status write, a metrics push)
//! never slows the backup down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustic_core::{ProgressBars, ProgressType, RusticProgress};
use tokio_util::sync::CancellationToken;

/// Which engine operation a progress update belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Init,
    Backup,
    Restore,
    Snapshots,
    Forget,
    Prune,
    Check,
    Unlock,
    Stats,
    Repair,
}

/// A point-in-time view of an operation, as a progress bar or a session status shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProgressUpdate {
    pub operation: Operation,
    /// What the operation is doing now (e.g. "backing up...", "reading index...").
    pub phase: String,
    pub files_done: u64,
    /// `None` until known (a backup learns it from a scan that runs beside the backup).
    pub files_total: Option<u64>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// The file most recently started.
    pub current_file: Option<PathBuf>,
    pub elapsed: Duration,
    /// Average over the whole operation so far.
    pub bytes_per_second: f64,
    /// Remaining time at the average rate, once the total is known.
    pub eta: Option<Duration>,
    /// True for the last update of an operation; its figures are the final ones.
    pub finished: bool,
}

/// Receives progress updates. Called from the async façade (never from a blocking worker), at
/// most once per [`Control::interval`] plus once at the end; keep it quick.
pub trait ProgressSink: Send + Sync {
    fn update(&self, progress: &ProgressUpdate);
}

/// Cancellation and progress for one operation.
#[derive(Clone)]
pub struct Control {
    pub cancel: CancellationToken,
    pub(crate) sink: Option<Arc<dyn ProgressSink>>,
    pub interval: Duration,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("cancelled", &self.cancel.is_cancelled())
            .field("sink", &self.sink.is_some())
            .field("interval", &self.interval)
            .finish()
    }
}

impl Default for Control {
    fn default() -> Self {
        Self::new(CancellationToken::new())
    }
}

impl Control {
    /// No progress reporting; cancelled through `cancel`.
    #[must_use]
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            sink: None,
            interval: Duration::from_secs(1),
        }
    }

    /// Reports progress to `sink` every `interval` and at the end. Without a sink the engine
    /// skips the work that only progress needs (a backup's size scan).
    #[must_use]
    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>, interval: Duration) -> Self {
        self.sink = Some(sink);
        self.interval = interval;
        self
    }
}

/// Figures of a running operation, bumped by the blocking workers.
#[derive(Debug)]
pub(crate) struct Tracker {
    operation: Operation,
    started: Instant,
    phase: Mutex<String>,
    current_file: Mutex<Option<PathBuf>>,
    files_done: AtomicU64,
    files_total: AtomicU64,
    bytes_done: AtomicU64,
    bytes_total: AtomicU64,
    /// Whether anybody listens: rustic then shows (and computes) its progress.
    pub(crate) observed: bool,
}

const UNKNOWN: u64 = u64::MAX;

impl Tracker {
    pub(crate) fn new(operation: Operation, observed: bool) -> Self {
        Self {
            operation,
            started: Instant::now(),
            phase: Mutex::new(String::new()),
            current_file: Mutex::new(None),
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(UNKNOWN),
            bytes_done: AtomicU64::new(0),
            bytes_total: AtomicU64::new(UNKNOWN),
            observed,
        }
    }

    pub(crate) fn set_phase(&self, phase: &str) {
        phase.clone_into(&mut self.phase.lock().expect("progress lock poisoned"));
    }

    pub(crate) fn file_started(&self, path: &std::path::Path) {
        if self.observed {
            *self.current_file.lock().expect("progress lock poisoned") = Some(path.to_path_buf());
        }
    }

    pub(crate) fn add_files(&self, n: u64) {
        self.files_done.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_bytes(&self, n: u64) {
        self.bytes_done.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_files_total(&self, n: u64) {
        self.files_total.store(n, Ordering::Relaxed);
    }

    pub(crate) fn set_bytes_total(&self, n: u64) {
        self.bytes_total.store(n, Ordering::Relaxed);
    }

    /// A new byte-counting phase starts from zero (e.g. prune's repacking after its planning).
    fn restart_bytes(&self) {
        self.bytes_done.store(0, Ordering::Relaxed);
        self.bytes_total.store(UNKNOWN, Ordering::Relaxed);
    }

    /// The figures now. The final update reports what was done as the totals, so a bar ends
    /// full even when files appeared or vanished after the size scan.
    pub(crate) fn snapshot(&self, finished: bool) -> ProgressUpdate {
        let known = |v: u64| (v != UNKNOWN).then_some(v);
        let files_done = self.files_done.load(Ordering::Relaxed);
        let bytes_done = self.bytes_done.load(Ordering::Relaxed);
        let (files_total, bytes_total) = if finished {
            (Some(files_done), Some(bytes_done))
        } else {
            (
                known(self.files_total.load(Ordering::Relaxed)).map(|t| t.max(files_done)),
                known(self.bytes_total.load(Ordering::Relaxed)).map(|t| t.max(bytes_done)),
            )
        };
        let elapsed = self.started.elapsed();
        #[allow(clippy::cast_precision_loss)]
        let bytes_per_second = if elapsed.as_secs_f64() > 0.0 {
            bytes_done as f64 / elapsed.as_secs_f64()
        } else {
            0.0
        };
        #[allow(clippy::cast_precision_loss)]
        let eta = bytes_total.filter(|_| bytes_per_second > 0.0).map(|total| {
            if finished {
                Duration::ZERO
            } else {
                Duration::from_secs_f64((total - bytes_done) as f64 / bytes_per_second)
            }
        });
        ProgressUpdate {
            operation: self.operation,
            phase: self.phase.lock().expect("progress lock poisoned").clone(),
            files_done,
            files_total,
            bytes_done,
            bytes_total,
            current_file: self
                .current_file
                .lock()
                .expect("progress lock poisoned")
                .clone(),
            elapsed,
            bytes_per_second,
            eta,
            finished,
        }
    }
}

/// rustic's progress reporting, fed into a [`Tracker`]: byte progress becomes the byte figures,
/// every bar's title the phase. Hidden (so rustic skips the work behind it) when nobody observes.
#[derive(Debug, Clone)]
pub(crate) struct TrackerBars(pub(crate) Arc<Tracker>);

impl ProgressBars for TrackerBars {
    fn progress(&self, progress_type: ProgressType, prefix: &str) -> rustic_core::Progress {
        if !self.0.observed {
            return rustic_core::Progress::hidden();
        }
        if !prefix.is_empty() {
            self.0.set_phase(prefix);
        }
        match progress_type {
            ProgressType::Bytes => {
                self.0.restart_bytes();
                rustic_core::Progress::new(BytesProgress(self.0.clone()))
            }
            ProgressType::Counter | ProgressType::Spinner => rustic_core::Progress::hidden(),
        }
    }
}

#[derive(Debug)]
struct BytesProgress(Arc<Tracker>);

impl RusticProgress for BytesProgress {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_bytes_total(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_phase(title);
    }
    fn inc(&self, inc: u64) {
        self.0.add_bytes(inc);
    }
    fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_update_reports_what_was_done_as_the_totals() {
        let tracker = Tracker::new(Operation::Backup, true);
        tracker.set_files_total(10);
        tracker.set_bytes_total(1000);
        tracker.add_files(3);
        tracker.add_bytes(300);
        let running = tracker.snapshot(false);
        assert_eq!((running.files_done, running.files_total), (3, Some(10)));
        assert_eq!((running.bytes_done, running.bytes_total), (300, Some(1000)));
        assert!(!running.finished);
        tracker.add_files(5);
        tracker.add_bytes(500);
        let last = tracker.snapshot(true);
        assert_eq!((last.files_done, last.files_total), (8, Some(8)));
        assert_eq!((last.bytes_done, last.bytes_total), (800, Some(800)));
        assert_eq!(last.eta.unwrap_or_default(), Duration::ZERO);
    }

    #[test]
    fn a_total_never_reads_below_what_is_done() {
        let tracker = Tracker::new(Operation::Backup, true);
        tracker.set_bytes_total(10);
        tracker.add_bytes(25);
        assert_eq!(tracker.snapshot(false).bytes_total, Some(25));
        assert_eq!(
            tracker.snapshot(false).files_total,
            None,
            "unknown until the scan says"
        );
    }
}
