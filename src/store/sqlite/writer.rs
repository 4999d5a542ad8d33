//! The single writer thread: it drains every waiting write, commits them in
//! one transaction (one fsync), feeds the new events in commit order, then
//! answers each caller. When the store is closed (or every handle is gone)
//! it checkpoints the WAL and stops.

use super::{
    history::{self, HistoryWrite},
    jobs::{self, JobWrite, JobWritten},
    log::{self, Outcome},
    monitors::{self, MonitorWrite},
    now_ms, unavailable,
    webhooks::WebhookOp,
};
use crate::{
    config::Retention,
    store::{Appended, Draft, Feed, StoreError},
};
use rusqlite::{Connection, TransactionBehavior};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Writes committed together at most; bounds one transaction's latency.
const MAX_BATCH: usize = 512;

/// A write handed to the writer thread, with the caller to answer.
pub(super) enum WriteOp {
    Append(Draft, oneshot::Sender<Result<Appended, StoreError>>),
    Monitor(MonitorWrite, oneshot::Sender<Result<bool, StoreError>>),
    History(HistoryWrite, oneshot::Sender<Result<bool, StoreError>>),
    Job(JobWrite, oneshot::Sender<Result<JobWritten, StoreError>>),
    Trim(oneshot::Sender<Result<u64, StoreError>>),
    /// A webhook registry or outbox write, in a transaction of its own.
    Webhook(WebhookOp),
    /// Commit what is pending, checkpoint, answer, stop.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// A write waiting in the current batch, with the caller to answer.
enum Pending {
    Append(Draft, oneshot::Sender<Result<Appended, StoreError>>),
    Monitor(MonitorWrite, oneshot::Sender<Result<bool, StoreError>>),
    History(HistoryWrite, oneshot::Sender<Result<bool, StoreError>>),
    Job(JobWrite, oneshot::Sender<Result<JobWritten, StoreError>>),
}

impl Pending {
    fn fail(self, e: StoreError) {
        match self {
            Pending::Append(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Pending::Monitor(_, reply) | Pending::History(_, reply) => {
                let _ = reply.send(Err(e));
            }
            Pending::Job(_, reply) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A pending write's result before commit.
enum Written {
    Append(Result<Outcome, StoreError>),
    Monitor(bool),
    Job(Result<JobWritten, StoreError>),
}

pub(super) struct Writer {
    conn: Connection,
    retention: Retention,
    feed: Feed,
}

impl Writer {
    /// Starts the writer thread on `conn`; returns where to send writes.
    pub(super) fn spawn(
        conn: Connection,
        retention: Retention,
        feed: Feed,
    ) -> Result<mpsc::Sender<WriteOp>, StoreError> {
        let (writes, rx) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                Writer {
                    conn,
                    retention,
                    feed,
                }
                .run(rx)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start writer thread: {e}")))?;
        Ok(writes)
    }

    fn run(mut self, mut ops: mpsc::Receiver<WriteOp>) {
        let mut closer = None;
        while let Some(first) = ops.blocking_recv() {
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(op) = next.take() {
                match op {
                    WriteOp::Append(draft, reply) => batch.push(Pending::Append(draft, reply)),
                    WriteOp::Monitor(write, reply) => batch.push(Pending::Monitor(write, reply)),
                    WriteOp::History(write, reply) => batch.push(Pending::History(write, reply)),
                    WriteOp::Job(write, reply) => batch.push(Pending::Job(write, reply)),
                    WriteOp::Trim(reply) => {
                        let _ = reply.send(self.trim().map_err(unavailable));
                    }
                    WriteOp::Webhook(op) => op.run(&mut self.conn),
                    WriteOp::Close(reply) => closer = Some(reply),
                }
                if closer.is_none() && batch.len() < MAX_BATCH {
                    next = ops.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            if closer.is_some() {
                break;
            }
        }
        // Writes queued behind `close` are refused (their callers see the
        // writer stopped), and no new ones can be queued.
        ops.close();
        while ops.try_recv().is_ok() {}
        // Closed or every handle is gone: leave a compact database behind.
        let result = self
            .conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .map_err(unavailable);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        if let Some(reply) = closer {
            let _ = reply.send(result);
        }
    }

    /// Commits a batch in one transaction, feeds the new events in order,
    /// then answers each caller. A storage error fails the whole batch:
    /// nothing of it is stored or acknowledged.
    fn commit(&mut self, batch: Vec<Pending>) {
        match self.write_batch(&batch) {
            Ok(results) => {
                for (pending, written) in batch.into_iter().zip(results) {
                    match (pending, written) {
                        (Pending::Append(_, reply), Written::Append(outcome)) => {
                            let _ = reply.send(outcome.map(|o| self.announce(o)));
                        }
                        (Pending::Monitor(_, reply), Written::Monitor(done))
                        | (Pending::History(_, reply), Written::Monitor(done)) => {
                            let _ = reply.send(Ok(done));
                        }
                        (Pending::Job(_, reply), Written::Job(done)) => {
                            let _ = reply.send(done);
                        }
                        // `write_batch` answers each write in kind; never reached.
                        (pending, _) => {
                            pending.fail(StoreError::Unavailable("batch mismatch".into()))
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, batch = batch.len(), "write batch failed");
                for pending in batch {
                    pending.fail(unavailable(&e));
                }
            }
        }
    }

    /// Hands a committed event to the feed and makes its answer.
    fn announce(&self, outcome: Outcome) -> Appended {
        match outcome {
            Outcome::New(event) => {
                let receipt = log::receipt_of(&event);
                // A closed feed only means the hub is shutting down.
                let _ = self.feed.blocking_send(Arc::new(event));
                Appended::New(receipt)
            }
            Outcome::Replayed(receipt) => Appended::Replayed(receipt),
        }
    }

    fn write_batch(&mut self, batch: &[Pending]) -> rusqlite::Result<Vec<Written>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = now_ms();
        let mut heads = log::Heads::default();
        let mut results = Vec::with_capacity(batch.len());
        for pending in batch {
            results.push(match pending {
                Pending::Append(draft, _) => Written::Append(log::append_one(
                    &tx,
                    draft,
                    &mut heads,
                    &self.retention,
                    now,
                )?),
                Pending::Monitor(write, _) => {
                    Written::Monitor(monitors::write_monitor(&tx, write, now)?)
                }
                Pending::History(write, _) => Written::Monitor(history::write_history(&tx, write)?),
                Pending::Job(write, _) => Written::Job(jobs::write_job(&tx, write, now)?),
            });
        }
        heads.save(&tx, &self.retention)?;
        tx.commit()?;
        Ok(results)
    }

    fn trim(&mut self) -> rusqlite::Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let dropped = log::trim(&tx, &self.retention, now_ms())?;
        tx.commit()?;
        Ok(dropped)
    }
}
