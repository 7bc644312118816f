//! Group commit: every answer that promises durability (`Accepted`, a
//! created or secured mailbox, a deleted one, an ack) waits here until the
//! write behind it is on disk, and one sync covers every such write made
//! while the previous sync ran.
//!
//! One OS thread does the syncing, so no request takes a blocking thread of
//! its own to wait for the disk. A batch is whatever queued up during the
//! previous sync: an idle relay syncs at once (no added latency), a busy one
//! syncs once for many requests. The thread never decides anything about a
//! request; it only reports whether the sync succeeded, and a request whose
//! sync failed is answered as an internal error, never as accepted.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::store::StoreError;

/// Hands durability waits to the commit thread.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<oneshot::Sender<bool>>,
}

impl Committer {
    /// Starts the commit thread; `sync` makes every completed write
    /// durable (the store's `flush`). It ends when every `Committer` clone
    /// is dropped.
    pub(crate) fn start(
        sync: impl Fn() -> Result<(), StoreError> + Send + 'static,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel::<oneshot::Sender<bool>>();
        std::thread::Builder::new()
            .name("tropa-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    // Every write whose waiter is in `batch` completed before
                    // the waiter was queued, so before this sync starts.
                    let ok = match sync() {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(
                                "sync failed; {} answers are not confirmed: {e}",
                                batch.len()
                            );
                            false
                        }
                    };
                    metrics.inc(&metrics.commits);
                    metrics.add(&metrics.committed, batch.len() as u64);
                    for waiter in batch {
                        let _ = waiter.send(ok);
                    }
                }
            })?;
        Ok(Committer { tx })
    }

    /// Waits until every write completed before this call is durable.
    /// `false` if the sync failed (or the commit thread is gone).
    pub(crate) async fn durable(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(tx).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_waiters_share_few_syncs_and_a_failed_sync_confirms_nothing() {
        // A slow sync, so waiters pile up during it; counted, and able to fail.
        let flushes = Arc::new(AtomicU64::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let (f, x) = (flushes.clone(), fail.clone());
        let sync = move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            f.fetch_add(1, Ordering::SeqCst);
            if x.load(Ordering::SeqCst) {
                Err(StoreError::Io(std::io::Error::other("disk gone")))
            } else {
                Ok(())
            }
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let c = Committer::start(sync, metrics.clone()).unwrap();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..200 {
            let c = c.clone();
            set.spawn(async move { c.durable().await });
        }
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap(), "a successful sync confirms");
        }
        let syncs = flushes.load(Ordering::SeqCst);
        assert!((1..50).contains(&syncs), "{syncs} syncs for 200 waiters");
        assert_eq!(metrics.committed.load(Ordering::SeqCst), 200);
        assert_eq!(metrics.commits.load(Ordering::SeqCst), syncs);
        fail.store(true, Ordering::SeqCst);
        assert!(!c.durable().await, "a failed sync must not confirm");
    }
}
