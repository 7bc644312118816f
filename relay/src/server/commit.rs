//! Group commit: the store's writer thread. The hot writes (deposits, acks
//! and every other signed recipient command) come here as
//! [`WriteOp`]s from the connection tasks, and a batch of them is applied
//! and made durable together ([`Store::apply`]: one redb transaction and
//! one `fdatasync`). The rarer writes a request makes itself (a new
//! mailbox, a link) wait here for a [`Store::flush`] instead. Either way,
//! an answer that promises durability (`Accepted`, a created, secured or
//! deleted mailbox, an ack) goes out only once its write is on disk.
//!
//! One OS thread does the writing, so no request takes a blocking thread
//! of its own to wait for the disk. A batch is whatever queued up during
//! the previous commit, at most [`MAX_BATCH`] jobs: an idle relay commits
//! at once (no added latency), a busy one once for many requests. The
//! thread decides nothing about a request; it applies what the service
//! decided and reports the store's result, and a write whose commit failed
//! is never confirmed.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::store::{Store, StoreError, WriteOp, Written};

/// The most jobs one commit takes: a bound on how long the first of them
/// waits behind the others' CPU work (sealing, B-tree updates).
const MAX_BATCH: usize = 256;

/// What the commit thread writes to: the store (a trait so the tests can
/// put a slow or failing disk behind it).
pub(crate) trait Sink: Send + 'static {
    /// [`Store::apply`].
    fn apply(&self, ops: &[WriteOp]) -> Vec<Result<Written, StoreError>>;
    /// [`Store::flush`].
    fn flush(&self) -> Result<(), StoreError>;
}

impl Sink for Arc<dyn Store> {
    fn apply(&self, ops: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
        (**self).apply(ops)
    }

    fn flush(&self) -> Result<(), StoreError> {
        (**self).flush()
    }
}

enum Job {
    /// Wait until every write completed before it is durable.
    Sync(oneshot::Sender<bool>),
    /// Apply this write in the next batch.
    Write(
        WriteOp,
        Option<oneshot::Sender<Result<Written, StoreError>>>,
    ),
}

/// Hands writes and durability waits to the commit thread.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Sync(_) => f.write_str("Sync"),
            Job::Write(op, _) => write!(f, "Write({op:?})"),
        }
    }
}

impl Committer {
    /// Starts the commit thread on `sink`. It ends when every `Committer`
    /// clone is dropped.
    pub(crate) fn start(
        sink: impl Sink,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> std::io::Result<Committer> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tropa-commit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Everything queued during the previous commit: an idle
                    // relay commits at once (no added latency), a busy one
                    // once for many requests.
                    let batch: Vec<Job> = std::iter::once(first)
                        .chain(rx.try_iter().take(MAX_BATCH - 1))
                        .collect();
                    commit(&sink, batch, &metrics);
                }
            })?;
        Ok(Committer { tx })
    }

    /// Waits until every write completed before this call is durable.
    /// `false` if the sync failed (or the commit thread is gone).
    pub(crate) async fn durable(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Sync(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Applies `op` in the next batch; its result once it is durable.
    pub(crate) async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Write(op, Some(tx))).is_err() {
            return Err(StoreError::CommitFailed);
        }
        rx.await.unwrap_or(Err(StoreError::CommitFailed))
    }

    /// Applies `op` in the next batch, with nobody waiting for it.
    pub(crate) fn write_detached(&self, op: WriteOp) {
        let _ = self.tx.send(Job::Write(op, None));
    }
}

/// One batch: the writes in one [`Store::apply`], then one flush if
/// anyone waits for writes made outside the batch.
fn commit(sink: &impl Sink, batch: Vec<Job>, metrics: &crate::metrics::Metrics) {
    let mut ops = Vec::new();
    let mut replies = Vec::new();
    let mut syncs = Vec::new();
    for job in batch {
        match job {
            Job::Sync(tx) => syncs.push(tx),
            Job::Write(op, tx) => {
                ops.push(op);
                replies.push(tx);
            }
        }
    }
    metrics.inc(&metrics.commits);
    metrics.add(&metrics.committed, (ops.len() + syncs.len()) as u64);
    if !ops.is_empty() {
        for (result, reply) in sink.apply(&ops).into_iter().zip(replies) {
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
    }
    if !syncs.is_empty() {
        // Every write whose waiter is in `syncs` completed before the
        // waiter was queued, so before this sync starts.
        let ok = match sink.flush() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    "sync failed; {} answers are not confirmed: {e}",
                    syncs.len()
                );
                false
            }
        };
        for waiter in syncs {
            let _ = waiter.send(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;
    use crate::store::{MemoryStore, RecipientWrite};

    /// A store behind a slow disk that counts its commits and can fail.
    struct SlowDisk {
        store: Arc<dyn Store>,
        commits: Arc<AtomicU64>,
        fail: Arc<AtomicBool>,
    }

    impl SlowDisk {
        fn commit(&self) -> Result<(), StoreError> {
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.commits.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                Err(StoreError::Io(std::io::Error::other("disk gone")))
            } else {
                Ok(())
            }
        }
    }

    impl Sink for SlowDisk {
        fn apply(&self, ops: &[WriteOp]) -> Vec<Result<Written, StoreError>> {
            let results = self.store.apply(ops);
            match self.commit() {
                Ok(()) => results,
                Err(_) => ops.iter().map(|_| Err(StoreError::CommitFailed)).collect(),
            }
        }

        fn flush(&self) -> Result<(), StoreError> {
            self.commit()
        }
    }

    /// 200 durability waits and 200 writes at once share few commits, each
    /// write gets its own result, and a failed commit confirms nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writes_share_few_commits_and_a_failed_commit_confirms_nothing() {
        let commits = Arc::new(AtomicU64::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rid = [7u8; 24];
        let mut rec = crate::store::tests::record(1, 0);
        rec.fresh = false;
        store.create_mailbox(&rid, &rec).unwrap();
        let disk = SlowDisk {
            store,
            commits: commits.clone(),
            fail: fail.clone(),
        };
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let c = Committer::start(disk, metrics.clone()).unwrap();
        let mut set = tokio::task::JoinSet::new();
        for i in 0..400u32 {
            let c = c.clone();
            set.spawn(async move {
                if i % 2 == 0 {
                    c.durable().await
                } else {
                    // Every other write names a mailbox that does not exist:
                    // its own refusal, not the batch's.
                    let missing = i % 4 == 1;
                    let op = WriteOp::Recipient {
                        recipient_id: if missing { [9u8; 24] } else { rid },
                        hour: 5,
                        action: RecipientWrite::Touch,
                    };
                    let r = c.write(op).await;
                    if missing {
                        matches!(r, Err(StoreError::NoMailbox))
                    } else {
                        matches!(r, Ok(Written::Done))
                    }
                }
            });
        }
        while let Some(r) = set.join_next().await {
            assert!(r.unwrap(), "each job gets its own answer");
        }
        let n = commits.load(Ordering::SeqCst);
        assert!((1..100).contains(&n), "{n} commits for 400 jobs");
        assert_eq!(metrics.committed.load(Ordering::SeqCst), 400);
        fail.store(true, Ordering::SeqCst);
        assert!(!c.durable().await, "a failed sync must not confirm");
        let op = WriteOp::Recipient {
            recipient_id: rid,
            hour: 6,
            action: RecipientWrite::Touch,
        };
        assert!(
            matches!(c.write(op).await, Err(StoreError::CommitFailed)),
            "a failed commit must not confirm a write"
        );
    }
}
