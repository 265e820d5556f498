//! Cancellation of rustic's blocking operations, which take no token of their own.
//!
//! The repository's backend is wrapped so that, once the token fires, rustic's next request
//! fails and the operation unwinds through its ordinary error path: locks are released by
//! their guards and nothing is left half-written that a crash would not leave too. A backup is
//! stopped more gently (its source stops yielding files), and only the snapshot file is
//! refused, so the packs and index it already wrote stay usable by the next backup.

use std::sync::Arc;

use rustic_core::{
    BytesList, ErrorKind, FileType, Id, ReadBackend, RusticError, RusticResult, WriteBackend,
};
use tokio_util::sync::CancellationToken;

/// What a cancelled operation may still do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterCancel {
    /// Nothing: every request fails.
    RefuseAll,
    /// Everything but saving a snapshot: a cancelled backup flushes its packs and index (so the
    /// next backup reuses them) and leaves no snapshot.
    RefuseSnapshots,
}

#[derive(Debug)]
pub(crate) struct CancellableBackend {
    inner: Arc<dyn WriteBackend>,
    cancel: CancellationToken,
    after: AfterCancel,
}

impl CancellableBackend {
    pub(crate) fn wrap(
        inner: Arc<dyn WriteBackend>,
        cancel: CancellationToken,
        after: AfterCancel,
    ) -> Arc<dyn WriteBackend> {
        Arc::new(Self {
            inner,
            cancel,
            after,
        })
    }

    fn check(&self, write_of: Option<FileType>) -> RusticResult<()> {
        let refused = self.cancel.is_cancelled()
            && match self.after {
                AfterCancel::RefuseAll => true,
                AfterCancel::RefuseSnapshots => write_of == Some(FileType::Snapshot),
            };
        if refused {
            return Err(RusticError::new(
                ErrorKind::Backend,
                "the operation was cancelled",
            ));
        }
        Ok(())
    }

    fn check_read(&self) -> RusticResult<()> {
        if self.after == AfterCancel::RefuseAll {
            self.check(None)
        } else {
            Ok(())
        }
    }
}

impl ReadBackend for CancellableBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn list_with_size(&self, tpe: FileType) -> RusticResult<Vec<(Id, u32)>> {
        self.check_read()?;
        self.inner.list_with_size(tpe)
    }

    fn list(&self, tpe: FileType) -> RusticResult<Vec<Id>> {
        self.check_read()?;
        self.inner.list(tpe)
    }

    fn read_full(&self, tpe: FileType, id: &Id) -> RusticResult<bytes::Bytes> {
        self.check_read()?;
        self.inner.read_full(tpe, id)
    }

    fn read_partial(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        offset: u32,
        length: u32,
    ) -> RusticResult<bytes::Bytes> {
        self.check_read()?;
        self.inner.read_partial(tpe, id, cacheable, offset, length)
    }

    fn warmup_path(&self, tpe: FileType, id: &Id) -> String {
        self.inner.warmup_path(tpe, id)
    }

    fn needs_warm_up(&self) -> bool {
        self.inner.needs_warm_up()
    }

    fn warm_up(&self, tpe: FileType, id: &Id) -> RusticResult<()> {
        self.inner.warm_up(tpe, id)
    }
}

impl WriteBackend for CancellableBackend {
    fn create(&self) -> RusticResult<()> {
        self.check(Some(FileType::Config))?;
        self.inner.create()
    }

    fn write_bytes(
        &self,
        tpe: FileType,
        id: &Id,
        cacheable: bool,
        content: BytesList,
    ) -> RusticResult<()> {
        self.check(Some(tpe))?;
        self.inner.write_bytes(tpe, id, cacheable, content)
    }

    fn remove(&self, tpe: FileType, id: &Id, cacheable: bool) -> RusticResult<()> {
        self.check(Some(tpe))?;
        self.inner.remove(tpe, id, cacheable)
    }
}
