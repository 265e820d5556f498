//! The file workers' sealers, lent from one pool with as many sealers as workers.
//!
//! A sealer's zstd contexts and blob-sized buffers are most of the archiver's memory (issue 12:
//! peak RSS at or under restic's). A worker borrows one for each batch; a large file borrows a
//! second one for a second sealing thread only when another worker is not using it: one 2 GiB
//! file then keeps both cores busy (sealing took 56% of the CPU, cutting 40%), while two workers
//! cutting large files at once hold no more sealers than before.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard};

use rustic_core::RusticResult;

use super::Shared;
use super::files::DataStats;
use super::pack::Sealer;

/// A sealer and what it sealed; the sealed blobs go into the archiver's shared data pack.
pub(crate) struct Sealing {
    sealer: Sealer,
    stats: DataStats,
}

impl Sealing {
    pub(crate) fn store(
        &mut self,
        shared: &Shared,
        id: [u8; 32],
        plain: &[u8],
    ) -> RusticResult<()> {
        let sealed = self.sealer.seal(plain).map_err(super::internal)?;
        self.stats.blobs += 1;
        self.stats.plain += plain.len() as u64;
        self.stats.packed += sealed.len() as u64;
        shared.add_data_blob(id, &sealed, plain.len())
    }
}

#[derive(Default)]
struct Pool {
    free: Vec<Sealing>,
    /// Sealers made so far, lent or free.
    made: usize,
}

pub(crate) struct Sealers {
    pool: Mutex<Pool>,
    given_back: Condvar,
    limit: usize,
}

impl Sealers {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            pool: Mutex::new(Pool::default()),
            given_back: Condvar::new(),
            limit: limit.max(1),
        }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().expect("sealer pool poisoned")
    }

    /// A sealer, waiting for one to be given back when all are lent. No deadlock: a worker
    /// waits here holding none, and a second sealer goes back when its file is cut.
    pub(crate) fn take<'s>(&'s self, shared: &Shared) -> RusticResult<Lent<'s>> {
        let mut pool = self.pool();
        loop {
            if let Some(sealing) = pool.free.pop() {
                return Ok(self.lend(sealing));
            }
            if pool.made < self.limit {
                pool.made += 1;
                drop(pool);
                return self.make(shared);
            }
            pool = self.given_back.wait(pool).expect("sealer pool poisoned");
        }
    }

    /// A sealer if one is free or may still be made; `None` when all are lent.
    pub(crate) fn try_take<'s>(&'s self, shared: &Shared) -> RusticResult<Option<Lent<'s>>> {
        let mut pool = self.pool();
        if let Some(sealing) = pool.free.pop() {
            return Ok(Some(self.lend(sealing)));
        }
        if pool.made < self.limit {
            pool.made += 1;
            drop(pool);
            return self.make(shared).map(Some);
        }
        Ok(None)
    }

    fn make<'s>(&'s self, shared: &Shared) -> RusticResult<Lent<'s>> {
        match shared.sealer() {
            Ok(sealer) => Ok(self.lend(Sealing {
                sealer,
                stats: DataStats::default(),
            })),
            Err(err) => {
                self.pool().made -= 1;
                self.given_back.notify_one();
                Err(err)
            }
        }
    }

    fn lend(&self, sealing: Sealing) -> Lent<'_> {
        Lent {
            sealers: self,
            sealing: Some(sealing),
        }
    }

    /// What the sealers have sealed; called once every lent one is back.
    pub(crate) fn stats(&self) -> DataStats {
        let pool = self.pool();
        let mut stats = DataStats::default();
        for sealing in &pool.free {
            stats.add(sealing.stats);
        }
        stats
    }
}

/// A lent sealer; it goes back to the pool when dropped, also when its thread fails.
pub(crate) struct Lent<'s> {
    sealers: &'s Sealers,
    sealing: Option<Sealing>,
}

impl Deref for Lent<'_> {
    type Target = Sealing;

    fn deref(&self) -> &Sealing {
        self.sealing
            .as_ref()
            .expect("a lent sealer is there until dropped")
    }
}

impl DerefMut for Lent<'_> {
    fn deref_mut(&mut self) -> &mut Sealing {
        self.sealing
            .as_mut()
            .expect("a lent sealer is there until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        // A poisoned pool means a worker panicked, which fails the backup: nothing to give back.
        if let (Some(sealing), Ok(mut pool)) = (self.sealing.take(), self.sealers.pool.lock()) {
            pool.free.push(sealing);
            self.sealers.given_back.notify_one();
        }
    }
}
