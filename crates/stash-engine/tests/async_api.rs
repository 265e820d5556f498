//! The engine as the agent uses it: async operations in a tokio runtime, cancelled through a
//! token, observed through a progress sink. Debian's restic checks what every cancelled
//! operation leaves behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use stash_engine::{
    BackupRequest, Control, Engine, EngineError, InitOptions, Password, ProgressSink,
    ProgressUpdate, RepositoryLocation, RestoreRequest, SnapshotFilter,
};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    dir: tempfile::TempDir,
    engine: Engine,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("stash-engine-")
            .tempdir()
            .expect("a temp dir");
        let repo = dir.path().join("repo");
        let location = RepositoryLocation::parse(repo.to_str().unwrap(), |_| None)
            .expect("a local repository");
        let engine = Engine::new(location, Password::new(PASSWORD))
            .with_cache_dir(Some(dir.path().join("cache")));
        engine
            .init(&InitOptions::default(), &Control::default())
            .await
            .expect("init");
        Self { dir, engine }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn lock_files(&self) -> usize {
        std::fs::read_dir(self.path("repo/locks")).map_or(0, Iterator::count)
    }

    /// `restic check --read-data` on the repository: the oracle for "left usable".
    fn restic_check_passes(&self) {
        let restic = which("restic");
        let output = Command::new(restic)
            .args([
                "-r",
                self.path("repo").to_str().unwrap(),
                "check",
                "--read-data",
            ])
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("RESTIC_CACHE_DIR", self.path("restic-cache"))
            .output()
            .expect("run restic");
        assert!(
            output.status.success(),
            "restic check --read-data failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn which(tool: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(tool))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is not on PATH: run scripts/setup (apt-get install -y {tool})")
        })
}

/// Incompressible content from a seed (xorshift), so every file costs real chunking and I/O.
fn write_noise(path: &Path, len: usize, seed: u64) {
    let mut state = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn make_tree(root: &Path, files: usize, size: usize) {
    for i in 0..files {
        write_noise(&root.join(format!("d{}/f{i}", i % 7)), size, i as u64 + 1);
    }
}

/// Records every update; cancels the token once `cancel_when` says so.
struct Recorder {
    updates: Mutex<Vec<ProgressUpdate>>,
    cancel: CancellationToken,
    cancel_when: Box<dyn Fn(&ProgressUpdate) -> bool + Send + Sync>,
}

impl Recorder {
    fn new(
        cancel: CancellationToken,
        cancel_when: impl Fn(&ProgressUpdate) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            updates: Mutex::default(),
            cancel,
            cancel_when: Box::new(cancel_when),
        })
    }

    fn updates(&self) -> Vec<ProgressUpdate> {
        self.updates.lock().unwrap().clone()
    }
}

impl ProgressSink for Recorder {
    fn update(&self, progress: &ProgressUpdate) {
        if (self.cancel_when)(progress) {
            self.cancel.cancel();
        }
        self.updates.lock().unwrap().push(progress.clone());
    }
}

fn control_with(recorder: &Arc<Recorder>) -> Control {
    Control::new(recorder.cancel.clone()).with_progress(recorder.clone(), Duration::from_millis(10))
}

fn backup_of(path: PathBuf) -> BackupRequest {
    BackupRequest {
        paths: vec![path],
        host: Some("host-0".into()),
        ..BackupRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_of_a_backup_only_grows_and_ends_at_the_totals() {
    let fx = Fixture::new().await;
    make_tree(&fx.path("src"), 40, 256 << 10);
    let recorder = Recorder::new(CancellationToken::new(), |_| false);
    let report = fx
        .engine
        .backup(backup_of(fx.path("src")), &control_with(&recorder))
        .await
        .expect("backup");
    let updates = recorder.updates();
    assert!(
        updates.len() >= 2,
        "at least one running and the final update: {updates:?}"
    );
    for pair in updates.windows(2) {
        assert!(
            pair[1].files_done >= pair[0].files_done,
            "files only grow: {pair:?}"
        );
        assert!(
            pair[1].bytes_done >= pair[0].bytes_done,
            "bytes only grow: {pair:?}"
        );
    }
    let last = updates.last().unwrap();
    assert!(last.finished, "the last update says so");
    assert!(
        updates[..updates.len() - 1].iter().all(|u| !u.finished),
        "only the last is final"
    );
    assert_eq!(last.files_done, report.total_files_processed);
    assert_eq!(last.files_total, Some(report.total_files_processed));
    assert_eq!(last.bytes_done, report.total_bytes_processed);
    assert_eq!(last.bytes_total, Some(report.total_bytes_processed));
    assert_eq!(report.total_files_processed, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backup_releases_its_lock_saves_no_snapshot_and_leaves_the_repository_checkable()
 {
    let fx = Fixture::new().await;
    make_tree(&fx.path("src"), 24, 8 << 20);
    // Cancel once the backup is well under way, whatever this machine's speed.
    let recorder = Recorder::new(CancellationToken::new(), |u| u.bytes_done >= 16 << 20);
    let outcome = fx
        .engine
        .backup(backup_of(fx.path("src")), &control_with(&recorder))
        .await;
    assert!(
        matches!(outcome, Err(EngineError::Cancelled)),
        "{outcome:?}"
    );

    let snapshots = fx
        .engine
        .snapshots(SnapshotFilter::default(), &Control::default())
        .await
        .unwrap();
    assert!(
        snapshots.is_empty(),
        "no snapshot of a cancelled backup: {snapshots:?}"
    );
    assert_eq!(fx.lock_files(), 0, "the lock is released");
    fx.restic_check_passes();

    // The next backup completes and reuses what the cancelled one uploaded.
    let report = fx
        .engine
        .backup(backup_of(fx.path("src")), &Control::default())
        .await
        .expect("second backup");
    assert!(
        report.data_added < report.total_bytes_processed,
        "packs of the cancelled run are reused: added {} of {}",
        report.data_added,
        report.total_bytes_processed
    );
    fx.restic_check_passes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_keeps_the_files_it_finished_and_leaves_the_repository_checkable() {
    let fx = Fixture::new().await;
    make_tree(&fx.path("src"), 1000, 128 << 10);
    fx.engine
        .backup(backup_of(fx.path("src")), &Control::default())
        .await
        .expect("backup");

    let recorder = Recorder::new(CancellationToken::new(), |u| u.files_done >= 20);
    let mut request = RestoreRequest::new("latest", fx.path("target"));
    request.workers = 1;
    let outcome = fx.engine.restore(request, &control_with(&recorder)).await;
    assert!(
        matches!(outcome, Err(EngineError::Cancelled)),
        "{outcome:?}"
    );
    assert_eq!(fx.lock_files(), 0, "the lock is released");

    // A finished file carries its snapshot mtime; every such file has its full content.
    let restored_root = fx
        .path("target")
        .join(fx.path("src").strip_prefix("/").unwrap());
    let mut finished = 0;
    for i in 0..1000 {
        let rel = format!("d{}/f{i}", i % 7);
        let (source, restored) = (fx.path("src").join(&rel), restored_root.join(&rel));
        let Ok(meta) = std::fs::metadata(&restored) else {
            continue;
        };
        if meta.modified().unwrap() == std::fs::metadata(&source).unwrap().modified().unwrap() {
            assert_eq!(
                std::fs::read(&restored).unwrap(),
                std::fs::read(&source).unwrap(),
                "{rel} is intact"
            );
            finished += 1;
        }
    }
    assert!(
        finished >= 20,
        "the files finished before the cancel are there ({finished})"
    );
    assert!(
        finished < 1000,
        "the restore stopped early ({finished} of 1000 finished)"
    );
    fx.restic_check_passes();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_cancelled_before_it_starts_touches_nothing() {
    let fx = Fixture::new().await;
    let cancel = CancellationToken::new();
    cancel.cancel();
    let outcome = fx.engine.stats(&Control::new(cancel)).await;
    assert!(
        matches!(outcome, Err(EngineError::Cancelled)),
        "{outcome:?}"
    );
    assert_eq!(fx.lock_files(), 0);
}
