//! Opening and initialising repositories, and the async façade every operation goes through:
//! the blocking rustic work runs under `spawn_blocking` with a cancellation token and a progress
//! tracker, and its panics come back as errors.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustic_core::{
    ConfigOptions, Credentials, KeyOptions, OpenStatus, Repository, RepositoryBackends,
    RepositoryOptions,
};
use tokio_util::sync::CancellationToken;

use crate::cancel::{AfterCancel, CancellableBackend};
use crate::error::RusticCause;
use crate::index_compat::{IndexCompat, IndexCompatBackend};
use crate::lock::{self, LockGuard, Sealer};
use crate::progress::{Operation, Tracker, TrackerBars};
use crate::{Control, EngineError, Password, RepositoryLocation};

/// A handle on one repository: where it is, how to unlock it, how to lock and cache. Cheap to
/// clone; every operation opens the repository afresh, so a handle never holds stale index
/// state between operations. Every operation is an `async fn` taking a [`Control`].
#[derive(Debug, Clone)]
pub struct Engine {
    location: RepositoryLocation,
    password: Password,
    cache_dir: Option<PathBuf>,
    no_cache: bool,
    no_lock: bool,
    lock_wait: Duration,
}

/// Which lock an operation needs, as restic takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// Readers that only look (restore, snapshots, stats).
    Shared,
    /// A shared lock for a writer that adds data; first repairs what a crashed writer left.
    Backup,
    /// Operations that remove data or need a quiet repository (forget, prune, check).
    Exclusive,
}

/// What one blocking run of an operation gets from the façade.
pub(crate) struct Op {
    /// The caller's runtime, for backends that drive async clients from blocking code.
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) cancel: CancellationToken,
    pub(crate) tracker: Arc<Tracker>,
    /// Index files as restic reads them (mixed packs, the pre-0.2 format); see [`IndexCompat`].
    pub(crate) index_compat: Arc<IndexCompat>,
}

impl Op {
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Stops between steps that cannot be interrupted themselves.
    pub(crate) fn checkpoint(&self) -> Result<(), EngineError> {
        if self.cancelled() {
            Err(EngineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Options of `init`. New repositories use format 2 (compressed); `rustic_core` cannot create
/// format 1, though it reads and writes existing ones.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {}

impl Engine {
    #[must_use]
    pub fn new(location: RepositoryLocation, password: Password) -> Self {
        Self {
            location,
            password,
            cache_dir: None,
            no_cache: false,
            no_lock: false,
            lock_wait: Duration::ZERO,
        }
    }

    /// Uses `dir` for the local cache of index and tree packs (restic's `--cache-dir`).
    #[must_use]
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Disables the local cache (restic's `--no-cache`, Stash's `--enable-cache=false`).
    #[must_use]
    pub fn without_cache(mut self, no_cache: bool) -> Self {
        self.no_cache = no_cache;
        self
    }

    /// Skips locking (restic's `--no-lock`): only for read-only repositories.
    #[must_use]
    pub fn without_lock(mut self, no_lock: bool) -> Self {
        self.no_lock = no_lock;
        self
    }

    /// Waits up to `wait` for a conflicting lock to go away (restic's `--retry-lock`).
    #[must_use]
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    #[must_use]
    pub fn location(&self) -> &RepositoryLocation {
        &self.location
    }

    /// Runs `work` on a blocking thread, reporting progress to the caller's sink every
    /// `control.interval` and once at the end. A cancelled operation returns
    /// [`EngineError::Cancelled`] once its blocking work has unwound (it is never abandoned
    /// while it holds a lock); a panic in rustic comes back as [`EngineError::Panicked`].
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        operation: Operation,
        control: &Control,
        work: impl FnOnce(&Engine, &Op) -> Result<T, EngineError> + Send + 'static,
    ) -> Result<T, EngineError> {
        if control.cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let tracker = Arc::new(Tracker::new(operation, control.sink.is_some()));
        let op = Op {
            runtime: tokio::runtime::Handle::current(),
            cancel: control.cancel.clone(),
            tracker: tracker.clone(),
            index_compat: Arc::default(),
        };
        let engine = self.clone();
        let mut task = tokio::task::spawn_blocking(move || work(&engine, &op));
        let joined = match &control.sink {
            None => task.await,
            Some(sink) => {
                let mut ticks = tokio::time::interval(control.interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let joined = loop {
                    tokio::select! {
                        joined = &mut task => break joined,
                        _ = ticks.tick() => sink.update(&tracker.snapshot(false)),
                    }
                };
                sink.update(&tracker.snapshot(true));
                joined
            }
        };
        match joined {
            Ok(Err(_)) if control.cancel.is_cancelled() => Err(EngineError::Cancelled),
            Ok(result) => result,
            Err(join) => Err(EngineError::Panicked {
                operation: operation.name(),
                message: panic_message(join),
            }),
        }
    }

    pub(crate) fn backends(
        &self,
        op: &Op,
        after: AfterCancel,
    ) -> Result<RepositoryBackends, EngineError> {
        let backends =
            self.location
                .backends(&op.runtime)
                .map_err(|source| EngineError::Backend {
                    repository: self.location.to_string(),
                    source,
                })?;
        let repository = CancellableBackend::wrap(backends.repository(), op.cancel.clone(), after);
        let repository = IndexCompatBackend::wrap(repository, op.index_compat.clone());
        Ok(RepositoryBackends::new(repository, backends.repo_hot()))
    }

    fn unopened(&self, op: &Op, after: AfterCancel) -> Result<Repository<()>, EngineError> {
        let backends = self.backends(op, after)?;
        let mut options = RepositoryOptions::default().no_cache(self.no_cache);
        if let Some(dir) = self.cache_root() {
            options = options.cache_dir(dir);
        }
        Repository::new_with_progress(&options, &backends, TrackerBars(op.tracker.clone())).map_err(
            |source| EngineError::OpenRepository {
                location: self.location.to_string(),
                source: RusticCause::new(source),
            },
        )
    }

    /// The cache of stash, in a directory of its own under the configured one (restic's
    /// `RESTIC_CACHE_DIR` holds restic's caches of the same repositories): index files are
    /// cached as `IndexCompat` rewrote them, which restic's cached copies are not.
    fn cache_root(&self) -> Option<PathBuf> {
        let base = self.cache_dir.clone().or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        })?;
        Some(base.join("stash-rs"))
    }

    fn lock_store(&self, op: &Op) -> Result<Box<dyn lock::LockStore>, EngineError> {
        self.location
            .lock_store(&op.runtime)
            .map_err(|err| EngineError::LockFiles {
                action: "reach the lock files",
                reason: err.to_string(),
            })
    }

    /// Opens the repository, telling a missing repository apart from a wrong password.
    pub(crate) fn open(
        &self,
        op: &Op,
        after: AfterCancel,
    ) -> Result<Repository<OpenStatus>, EngineError> {
        let repo = self.unopened(op, after)?;
        let location = || self.location.to_string();
        match repo.config_id() {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(EngineError::RepositoryNotFound {
                    location: location(),
                    source: None,
                });
            }
            Err(source) => {
                op.checkpoint()?;
                return Err(EngineError::RepositoryNotFound {
                    location: location(),
                    source: Some(source.into()),
                });
            }
        }
        let repo = repo
            .open(&Credentials::password(self.password.expose()))
            .map_err(|source| {
                let source = RusticCause::new(source);
                if let Some(legacy) = self.legacy_layout() {
                    legacy
                } else if source.is_incorrect_password() {
                    EngineError::WrongPassword {
                        location: location(),
                    }
                } else {
                    EngineError::OpenRepository {
                        location: location(),
                        source,
                    }
                }
            })?;
        op.index_compat.set_key(&repo.key());
        Ok(repo)
    }

    /// restic's s3legacy layout (restic < 0.7: `key/`, `snapshot/`, a flat `data/`), which
    /// `rustic_core` cannot read: named, so it is not mistaken for a wrong password.
    fn legacy_layout(&self) -> Option<EngineError> {
        let root = self.location.local_path()?;
        (root.join("key").is_dir() && !root.join("keys").exists()).then(|| {
            EngineError::LegacyLayout {
                location: self.location.to_string(),
            }
        })
    }

    /// Opens the repository and takes the lock `kind` on it for as long as the guard lives.
    pub(crate) fn open_locked(
        &self,
        op: &Op,
        kind: LockKind,
    ) -> Result<(Repository<OpenStatus>, Option<LockGuard>), EngineError> {
        let after = if kind == LockKind::Backup {
            AfterCancel::RefuseSnapshots
        } else {
            AfterCancel::RefuseAll
        };
        let repo = self.open(op, after)?;
        if self.no_lock {
            return Ok((repo, None));
        }
        if kind == LockKind::Backup {
            self.recover_after_crash(op, &repo);
        }
        let store = self.lock_store(op)?;
        let guard = lock::acquire(
            store,
            Sealer::new(&repo.key()),
            kind == LockKind::Exclusive,
            self.lock_wait,
            &op.cancel,
        )?;
        Ok((repo, Some(guard)))
    }

    /// After a crash (a stale lock is left), indexes the packs the dead process uploaded but never
    /// indexed, so the next backup reuses them instead of uploading the data again. Runs only
    /// when the repository can be locked exclusively at once; otherwise the data is simply
    /// uploaded again, which is safe.
    pub(crate) fn recover_after_crash(&self, op: &Op, repo: &Repository<OpenStatus>) {
        let Ok(store) = self.lock_store(op) else {
            return;
        };
        let sealer = Sealer::new(&repo.key());
        if !lock::any_stale(&*store, &sealer) {
            return;
        }
        let Ok(_guard) = lock::acquire(
            store,
            sealer,
            true,
            Duration::ZERO,
            &CancellationToken::new(),
        ) else {
            return;
        };
        tracing::info!(repository = %self.location, "a previous run died; indexing the packs it uploaded");
        if let Err(err) = repo.repair_index(&rustic_core::RepairIndexOptions::default(), false) {
            tracing::warn!(error = %err.display_log(), "could not index the packs of the previous run; they will be uploaded again");
        }
    }

    /// Removes stale locks (all locks with `remove_all`); returns the lock ids removed.
    pub async fn unlock(
        &self,
        remove_all: bool,
        control: &Control,
    ) -> Result<Vec<String>, EngineError> {
        self.run(Operation::Unlock, control, move |engine, op| {
            let repo = engine.open(op, AfterCancel::RefuseAll)?;
            let store = engine.lock_store(op)?;
            lock::unlock(&*store, &Sealer::new(&repo.key()), remove_all)
        })
        .await
    }

    /// Creates a new repository; refuses to touch one that already exists. Returns its id.
    pub async fn init(
        &self,
        _options: &InitOptions,
        control: &Control,
    ) -> Result<String, EngineError> {
        self.run(Operation::Init, control, |engine, op| {
            engine.init_blocking(op)
        })
        .await
    }

    fn init_blocking(&self, op: &Op) -> Result<String, EngineError> {
        let repo = self.unopened(op, AfterCancel::RefuseAll)?;
        if matches!(repo.config_id(), Ok(Some(_))) {
            return Err(EngineError::RepositoryExists {
                location: self.location.to_string(),
            });
        }
        // Data packs of 16 MiB, restic's size, instead of rustic's 32 MiB: the packer holds a pack
        // while it fills and another while it is written, so this lowers peak RSS of a backup by
        // ~20 MiB (130 -> 108 MiB on the 1 GiB benchmark set) at no measurable cost in speed.
        // Packs still grow with the square root of the repository size, as rustic's do.
        //
        // zstd level 1 instead of rustic's default (zstd's 3): a third of the compression CPU on
        // the benchmark sets and, per blob, a small fraction of level 3's context set-up, which
        // dominated compression on small files; repositories grow by 0-12% depending on the
        // data (docs/benchmarks.md, "compression level"). restic ignores the setting; its own
        // writes keep its level.
        let config = ConfigOptions::default()
            .set_version(Some(2))
            .set_datapack_size(Some(bytesize::ByteSize::mib(16)))
            .set_compression(Some(1));
        let repo = repo
            .init(
                &Credentials::password(self.password.expose()),
                &KeyOptions::default(),
                &config,
            )
            .map_err(|source| EngineError::InitRepository {
                location: self.location.to_string(),
                source: source.into(),
            })?;
        self.rewrap_key(op, &repo)?;
        Ok(repo.config().id.to_hex().to_string())
    }

    /// Re-encrypts the new repository's master key under scrypt parameters with restic's memory
    /// footprint. `rustic_core` always writes N=2^17, r=8, p=1: 128 MiB of RAM in every later
    /// command, which then peaks at 150 MiB for a `snapshots`. N=2^15, r=8, p=4 costs the same CPU
    /// work (N·p is equal, so a password is as hard to guess) in 32 MiB, as restic's own key
    /// files do (restic calibrates to N=2^15, r=8, p=3..6 on ordinary machines).
    fn rewrap_key(&self, op: &Op, repo: &Repository<OpenStatus>) -> Result<(), EngineError> {
        use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
        use aes256ctr_poly1305aes::aead::{Aead, Nonce};
        use base64::Engine as _;
        use rand::Rng;
        use rustic_core::{FileType, Id, WriteBackend};
        use sha2::Digest;

        const LOG_N: u8 = 15;
        const R: u32 = 8;
        const P: u32 = 4;
        let failed = |reason: String| EngineError::WriteKeyFile {
            location: self.location.to_string(),
            reason,
        };
        let Some(old_id) = *repo.key_id() else {
            return Ok(());
        };
        let backend = self
            .location
            .backends(&op.runtime)
            .map_err(|err| failed(err.to_string()))?
            .repository();
        let old: Id = *old_id;
        let mut keyfile: serde_json::Value = serde_json::from_slice(
            &backend
                .read_full(FileType::Key, &old)
                .map_err(|err| failed(err.display_log()))?,
        )
        .map_err(|err| failed(err.to_string()))?;

        let mut salt = [0u8; 64];
        rand::rng().fill_bytes(&mut salt);
        let params = scrypt::Params::new(LOG_N, R, P).map_err(|err| failed(err.to_string()))?;
        let mut derived = [0u8; 64];
        scrypt::scrypt(
            self.password.expose().as_bytes(),
            &salt,
            &params,
            &mut derived,
        )
        .map_err(|err| failed(err.to_string()))?;
        // restic's layout of the derived key: AES key, then Poly1305 k and r.
        let cipher = Aes256CtrPoly1305Aes::new(aes256ctr_poly1305aes::Key::from_slice(&derived));
        let mut nonce = Nonce::<Aes256CtrPoly1305Aes>::default();
        rand::rng().fill_bytes(&mut nonce);
        let master = serde_json::to_vec(&repo.key()).map_err(|err| failed(err.to_string()))?;
        let mut data = nonce.to_vec();
        data.extend(
            cipher
                .encrypt(&nonce, master.as_slice())
                .map_err(|_| failed("encryption failed".into()))?,
        );

        let b64 = base64::engine::general_purpose::STANDARD;
        keyfile["N"] = (1u32 << LOG_N).into();
        keyfile["r"] = R.into();
        keyfile["p"] = P.into();
        keyfile["salt"] = b64.encode(salt).into();
        keyfile["data"] = b64.encode(&data).into();
        let bytes = serde_json::to_vec(&keyfile).map_err(|err| failed(err.to_string()))?;
        let new = Id::new(sha2::Sha256::digest(&bytes).into());
        backend
            .write_bytes(FileType::Key, &new, false, bytes.into())
            .map_err(|err| failed(err.display_log()))?;
        backend
            .remove(FileType::Key, &old, false)
            .map_err(|err| failed(err.display_log()))?;
        Ok(())
    }
}

impl Operation {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Backup => "backup",
            Self::Restore => "restore",
            Self::Snapshots => "snapshots",
            Self::Forget => "forget",
            Self::Prune => "prune",
            Self::Check => "check",
            Self::Unlock => "unlock",
            Self::Stats => "stats",
            Self::Repair => "repair",
        }
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => panic_text(&*payload),
        Err(join) => join.to_string(),
    }
}

pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}
