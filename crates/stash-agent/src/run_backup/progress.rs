//! The host's `progress` in the session status while it backs up, written at most every
//! [`WRITE_INTERVAL`] so a large backup does not flood the API server.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use stash_api::v1beta1::HostProgress;
use stash_engine::{ProgressSink, ProgressUpdate};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::status;
use super::{SessionHandle, stats};

/// The protocol's bound on progress writes (docs/session-protocol.md, step 5).
pub const WRITE_INTERVAL: Duration = Duration::from_secs(5);

/// How often the engine reports; the writer keeps only the latest figures.
pub const ENGINE_INTERVAL: Duration = Duration::from_secs(1);

/// The status `progress` of an engine update.
#[must_use]
pub fn host_progress(update: &ProgressUpdate) -> HostProgress {
    HostProgress {
        files_done: Some(update.files_done),
        files_total: update.files_total,
        bytes_done: Some(update.bytes_done),
        bytes_total: update.bytes_total,
        eta_seconds: update.eta.map(|eta| eta.as_secs()),
        updated_at: Some(Time(Timestamp::now())),
    }
}

/// The engine's sink: keeps the latest figures for the writer (the engine calls it from async
/// code, so it must not block on the API server).
pub struct LatestProgress {
    sender: watch::Sender<Option<HostProgress>>,
}

impl ProgressSink for LatestProgress {
    fn update(&self, progress: &ProgressUpdate) {
        self.sender.send_replace(Some(host_progress(progress)));
    }
}

/// A running progress writer for one host's backup.
pub struct ProgressWriter {
    sink: Arc<LatestProgress>,
    latest: watch::Receiver<Option<HostProgress>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ProgressWriter {
    /// Starts writing the progress of `host` into `session` until [`ProgressWriter::finish`].
    #[must_use]
    pub fn start(session: SessionHandle, host: String) -> Self {
        let (sender, latest) = watch::channel(None);
        let stop = CancellationToken::new();
        let task = tokio::spawn(write_loop(session, host, latest.clone(), stop.clone()));
        Self {
            sink: Arc::new(LatestProgress { sender }),
            latest,
            stop,
            task,
        }
    }

    /// The sink to hand the engine.
    #[must_use]
    pub fn sink(&self) -> Arc<dyn ProgressSink> {
        self.sink.clone()
    }

    /// Stops writing (after a write in flight) and returns the last figures, which the final
    /// entry keeps.
    pub async fn finish(self) -> Option<HostProgress> {
        self.stop.cancel();
        let _ = self.task.await;
        self.latest.borrow().clone()
    }
}

async fn write_loop(
    session: SessionHandle,
    host: String,
    mut latest: watch::Receiver<Option<HostProgress>>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            changed = latest.changed() => if changed.is_err() { return },
        }
        let Some(progress) = latest.borrow_and_update().clone() else {
            continue;
        };
        let entry = stats::running(&host, progress);
        let written = status::update(&session.api, &session.namespace, &session.name, |s| {
            // A final entry is never turned back into a running one.
            let current = session
                .target_of(s)
                .and_then(|t| status::host_entry(t, &host))
                .and_then(|h| h.phase);
            if current.is_none() {
                status::upsert_host(s, &session.target, &session.namespace, entry.clone());
            }
        })
        .await;
        if let Err(err) = written {
            tracing::warn!(
                error = &err as &dyn std::error::Error,
                "could not write the backup progress"
            );
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(WRITE_INTERVAL) => {}
        }
    }
}
