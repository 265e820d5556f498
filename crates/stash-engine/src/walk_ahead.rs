//! Runs an iterator on a thread of its own, a bounded distance ahead of its consumer.
//!
//! `rustic_core`'s archiver pulls the directory walk (readdir, `lstat`, `listxattr`, owner names)
//! on the same thread that matches the parent snapshot and serialises the trees. On trees of
//! many small files that one thread is the limit while the file workers wait for it
//! (`docs/benchmarks.md`, "Where the time goes"). Walking on a second thread overlaps the two;
//! the entries and their order stay the same, so the snapshot's trees are identical.

use std::sync::mpsc::{Receiver, sync_channel};

use tokio_util::sync::CancellationToken;

/// Items travel in batches: one channel hand-over per item would cost a thread wake-up per file.
const BATCH: usize = 256;
/// Batches in flight: enough to ride out a slow directory, little memory (~4k entries).
const BATCHES_AHEAD: usize = 16;

pub(crate) struct WalkAhead<T> {
    batches: Receiver<Vec<T>>,
    current: std::vec::IntoIter<T>,
}

impl<T: Send + 'static> WalkAhead<T> {
    /// Starts driving `inner` on a new thread. The thread stops at the end of `inner`, when
    /// `cancel` fires, or when this iterator is dropped.
    pub(crate) fn spawn<I>(inner: I, cancel: CancellationToken) -> Self
    where
        I: Iterator<Item = T> + Send + 'static,
    {
        let (sender, batches) = sync_channel::<Vec<T>>(BATCHES_AHEAD);
        let mut inner = inner;
        std::thread::Builder::new()
            .name("stash-walk".into())
            .spawn(move || {
                loop {
                    let batch: Vec<T> = inner.by_ref().take(BATCH).collect();
                    // A failed send means the consumer is gone.
                    if batch.is_empty() || cancel.is_cancelled() || sender.send(batch).is_err() {
                        return;
                    }
                }
            })
            .expect("the walker thread could not be started");
        Self {
            batches,
            current: Vec::new().into_iter(),
        }
    }
}

impl<T> Iterator for WalkAhead<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            self.current = self.batches.recv().ok()?.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_arrives_once_and_in_order() {
        let n = BATCH * 5 + 7;
        let got: Vec<usize> = WalkAhead::spawn(0..n, CancellationToken::new()).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn dropping_the_consumer_stops_an_endless_walk() {
        let ahead = WalkAhead::spawn(0.., CancellationToken::new());
        let first: Vec<u64> = ahead.take(3).collect();
        assert_eq!(first, vec![0, 1, 2]);
        // The thread's next send fails and it returns; nothing to join, nothing leaks.
    }

    #[test]
    fn a_cancelled_walk_ends_early() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert_eq!(WalkAhead::spawn(0.., cancel).count(), 0);
    }
}
