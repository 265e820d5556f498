//! Transitional entry to the lock stores, which now live in `crate::backend::locks` and are
//! built by [`RepositoryLocation::lock_store`] with the caller's tokio runtime handle.

use super::LockStore;
use crate::location::RepositoryLocation;

/// The lock store of `location` for callers that do not pass a runtime handle yet: the current
/// runtime when there is one, otherwise a one-worker runtime owned by (and dropped with) the
/// store. Callers should move to `location.lock_store(&handle)`.
pub(super) fn store_for(location: &RepositoryLocation) -> Result<Box<dyn LockStore>, String> {
    let text = |err: crate::backend::BackendError| crate::backend::one_line(&err);
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return location.lock_store(&handle).map_err(text);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stash-lock-io")
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the I/O runtime for lock files: {e}"))?;
    let store = location.lock_store(runtime.handle()).map_err(text)?;
    Ok(Box::new(WithRuntime {
        store: Some(store),
        runtime: Some(runtime),
    }))
}

/// A store plus the runtime its I/O runs on; the store goes first when dropped.
struct WithRuntime {
    store: Option<Box<dyn LockStore>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl WithRuntime {
    fn store(&self) -> &dyn LockStore {
        self.store.as_deref().expect("present until drop")
    }
}

impl Drop for WithRuntime {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Some(runtime) = self.runtime.take() {
            // Never blocks, so dropping the store inside async code cannot panic.
            runtime.shutdown_background();
        }
    }
}

impl LockStore for WithRuntime {
    fn list(&self) -> Result<Vec<String>, String> {
        self.store().list()
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, String> {
        self.store().read(name)
    }

    fn write(&self, name: &str, data: &[u8]) -> Result<(), String> {
        self.store().write(name, data)
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.store().remove(name)
    }
}
