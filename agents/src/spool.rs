//! The disk spool: every event is journaled here (SQLite, WAL) before it is sent, and
//! deleted only when the core acknowledges it, so a core restart or a cut link loses
//! nothing. Bounded: when full, the oldest events go and the loss is counted.
//!
//! One thread owns the database; callers send it operations and await the answers.
//! Appends that arrive together share one transaction.

use crate::sink::NewEvent;
use honeybee_proto::event::Event;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use tokio::sync::{Notify, mpsc, oneshot};

/// Most events the ingest task gathers into one append.
const APPEND_BATCH: usize = 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    #[error("spool database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("spool write failed: {0}")]
    Write(String),
    #[error("spool is closed")]
    Closed,
}

enum Op {
    Append(Vec<NewEvent>, oneshot::Sender<Result<(), SpoolError>>),
    Ack(u64, u64),
    Read {
        after: u64,
        max: usize,
        reply: oneshot::Sender<Result<Vec<Event>, SpoolError>>,
    },
    EnsureAfter(u64),
    Close(oneshot::Sender<()>),
}

/// What one batch changed, applied to the counters only once it is committed.
#[derive(Debug, Default)]
struct Batch {
    added: u64,
    removed: u64,
    dropped: u64,
    last_seq: Option<u64>,
}

/// Counters shared with health reports.
#[derive(Debug, Default)]
pub struct SpoolStats {
    pub depth: AtomicU64,
    pub dropped: AtomicU64,
    pub last_seq: AtomicU64,
}

/// Handle to the spool; cheap to clone.
#[derive(Clone)]
pub struct Spool {
    tx: std_mpsc::Sender<Op>,
    pub stats: Arc<SpoolStats>,
    /// Signalled whenever new events are durable in the spool.
    pub appended: Arc<Notify>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("stats", &self.stats).finish()
    }
}

impl Spool {
    /// Opens (or creates) the spool at `path`, holding at most `max_events`.
    pub fn open(path: &Path, max_events: u64) -> Result<Spool, SpoolError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);",
        )?;
        let max_seq = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
            r.get::<_, i64>(0)
        })? as u64;
        let meta_seq = conn
            .query_row("SELECT v FROM meta WHERE k = 'last_seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap_or(0) as u64;
        let depth =
            conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64;
        let stats = Arc::new(SpoolStats::default());
        stats.depth.store(depth, Ordering::Relaxed);
        stats
            .last_seq
            .store(max_seq.max(meta_seq), Ordering::Relaxed);
        let (tx, rx) = std_mpsc::channel();
        let appended = Arc::new(Notify::new());
        let worker = Worker {
            conn,
            stats: stats.clone(),
            max_events: max_events.max(1),
            appended: appended.clone(),
        };
        std::thread::Builder::new()
            .name("honeybee-spool".into())
            .spawn(move || worker.run(rx))
            .map_err(|_| SpoolError::Closed)?;
        Ok(Spool {
            tx,
            stats,
            appended,
        })
    }

    /// Journals events durably, assigning their sequence numbers.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Append(events, reply))
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Drains a service sink into the spool until every sender is gone.
    pub async fn ingest(self, mut rx: mpsc::Receiver<NewEvent>) {
        let mut buf = Vec::with_capacity(APPEND_BATCH);
        while rx.recv_many(&mut buf, APPEND_BATCH).await > 0 {
            if let Err(e) = self.append(std::mem::take(&mut buf)).await {
                tracing::error!(error = %e, "events could not be spooled");
                return;
            }
        }
    }

    /// Forgets events `first..=last`, which the core has stored.
    pub fn ack(&self, first: u64, last: u64) {
        let _ = self.tx.send(Op::Ack(first, last));
    }

    /// Events with a sequence number above `after`, oldest first.
    pub async fn read_after(&self, after: u64, max: usize) -> Result<Vec<Event>, SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Op::Read { after, max, reply })
            .map_err(|_| SpoolError::Closed)?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Makes every future sequence number larger than `seq` (the core's highest for us).
    pub fn ensure_after(&self, seq: u64) {
        let _ = self.tx.send(Op::EnsureAfter(seq));
    }

    /// Finishes queued work and closes the database.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Op::Close(reply)).is_ok() {
            let _ = rx.await;
        }
    }

    pub fn depth(&self) -> u64 {
        self.stats.depth.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

struct Worker {
    conn: Connection,
    stats: Arc<SpoolStats>,
    max_events: u64,
    appended: Arc<Notify>,
}

impl Worker {
    fn run(mut self, rx: std_mpsc::Receiver<Op>) {
        while let Ok(first) = rx.recv() {
            // Take everything already queued: the whole batch (acks and appends alike)
            // shares one transaction, so one WAL commit covers it. Every statement is
            // cached; at a few events per attacker connection, preparing and committing
            // were most of the spool's cost.
            let mut ops = vec![first];
            while ops.len() < 256 {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let mut batch = Batch::default();
            let mut appends = Vec::new();
            let mut close = None;
            // Without a transaction nothing is written: a write outside one could not be
            // undone if the batch then failed.
            let mut result = self.exec("BEGIN", []);
            let writable = result.is_ok();
            for op in ops {
                match op {
                    Op::Append(events, reply) => appends.push((events, reply)),
                    Op::Ack(first, last) if writable => self.ack(first, last, &mut batch),
                    Op::EnsureAfter(seq) if writable => self.ensure_after(seq, &mut batch),
                    Op::Ack(..) | Op::EnsureAfter(_) => {}
                    Op::Read { after, max, reply } => {
                        let _ = reply.send(self.read(after, max));
                    }
                    Op::Close(reply) => close = Some(reply),
                }
            }
            if result.is_ok() && !appends.is_empty() {
                result = self.append(
                    appends.iter_mut().flat_map(|(e, _)| std::mem::take(e)),
                    &mut batch,
                );
            }
            if result.is_ok() {
                result = self.exec("COMMIT", []);
            }
            let appended_any = batch.added > 0;
            match &result {
                Ok(()) => self.apply(batch),
                Err(e) => {
                    // Nothing of the batch happened: appends are refused to their callers,
                    // acked events stay and are sent again (the core drops duplicates).
                    tracing::error!(error = %e, "spool write failed");
                    if writable {
                        let _ = self.exec("ROLLBACK", []);
                    }
                }
            }
            let ok = result.is_ok();
            for (_, reply) in appends {
                let _ = reply.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(SpoolError::Write(e.to_string())),
                });
            }
            if ok && appended_any {
                self.appended.notify_waiters();
                self.appended.notify_one();
            }
            if let Some(reply) = close {
                let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Runs one cached statement.
    fn exec(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), rusqlite::Error> {
        self.conn.prepare_cached(sql)?.execute(params).map(|_| ())
    }

    /// The counters once a batch is committed.
    fn apply(&self, batch: Batch) {
        if let Some(seq) = batch.last_seq {
            self.stats.last_seq.store(seq, Ordering::Relaxed);
        }
        let _ = self
            .stats
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some((d + batch.added).saturating_sub(batch.removed))
            });
        if batch.dropped > 0 {
            let total = self
                .stats
                .dropped
                .fetch_add(batch.dropped, Ordering::Relaxed)
                + batch.dropped;
            tracing::warn!(
                dropped = batch.dropped,
                total,
                max = self.max_events,
                "spool full: oldest events discarded"
            );
        }
    }

    /// The sequence number the next event follows, counting this batch.
    fn last_seq(&self, batch: &Batch) -> u64 {
        batch
            .last_seq
            .unwrap_or_else(|| self.stats.last_seq.load(Ordering::Relaxed))
    }

    fn ensure_after(&mut self, seq: u64, batch: &mut Batch) {
        let cur = self.last_seq(batch);
        if seq > cur {
            tracing::warn!(
                seq,
                cur,
                "core has newer sequence numbers than this spool; continuing above them"
            );
            if let Err(e) = self.exec(
                "INSERT OR REPLACE INTO meta (k, v) VALUES ('last_seq', ?1)",
                params![seq as i64],
            ) {
                tracing::error!(error = %e, "spool sequence update failed");
            }
            batch.last_seq = Some(seq);
        }
    }

    fn append(
        &mut self,
        events: impl Iterator<Item = NewEvent>,
        batch: &mut Batch,
    ) -> Result<(), rusqlite::Error> {
        let mut seq = self.last_seq(batch);
        let mut added = 0u64;
        {
            let mut stmt = self
                .conn
                .prepare_cached("INSERT INTO events (seq, body) VALUES (?1, ?2)")?;
            for e in events {
                seq += 1;
                let event = Event {
                    seq,
                    time_ms: e.time_ms,
                    service: e.service,
                    session: e.session,
                    src: e.src,
                    dst: e.dst,
                    kind: e.kind,
                };
                let body = postcard::to_allocvec(&event)
                    .map_err(|err| rusqlite::Error::ToSqlConversionFailure(err.into()))?;
                stmt.execute(params![seq as i64, body])?;
                added += 1;
            }
        }
        self.exec(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('last_seq', ?1)",
            params![seq as i64],
        )?;
        let depth = (self.stats.depth.load(Ordering::Relaxed) + batch.added + added)
            .saturating_sub(batch.removed);
        if depth > self.max_events {
            let dropped = depth - self.max_events;
            let n = self
                .conn
                .prepare_cached(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?1)",
                )?
                .execute(params![dropped as i64])? as u64;
            batch.removed += n;
            batch.dropped += n;
        }
        batch.added += added;
        batch.last_seq = Some(seq);
        Ok(())
    }

    fn ack(&mut self, first: u64, last: u64, batch: &mut Batch) {
        let deleted = self
            .conn
            .prepare_cached("DELETE FROM events WHERE seq BETWEEN ?1 AND ?2")
            .and_then(|mut s| s.execute(params![first as i64, last as i64]));
        match deleted {
            Ok(n) => batch.removed += n as u64,
            Err(e) => tracing::error!(error = %e, "spool ack failed"),
        }
    }

    fn read(&mut self, after: u64, max: usize) -> Result<Vec<Event>, SpoolError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?;
        let rows = stmt.query_map(params![after as i64, max as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        for body in rows {
            match postcard::from_bytes::<Event>(&body?) {
                Ok(e) => out.push(e),
                Err(e) => tracing::error!(error = %e, "corrupt spool row skipped"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::event::EventKind;

    fn ev() -> NewEvent {
        NewEvent::now("banner", None, None, None, EventKind::Connect)
    }

    #[tokio::test]
    async fn append_read_ack_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.db");
        let s = Spool::open(&path, 100).unwrap();
        s.append(vec![ev(), ev(), ev()]).await.unwrap();
        let got = s.read_after(0, 10).await.unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        s.ack(1, 2);
        assert_eq!(s.read_after(0, 10).await.unwrap().len(), 1);
        s.close().await;
        let s = Spool::open(&path, 100).unwrap();
        assert_eq!(s.depth(), 1);
        s.append(vec![ev()]).await.unwrap();
        // Sequence numbers are never reused, even after acks and a restart.
        let seqs: Vec<u64> = s
            .read_after(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
        s.ensure_after(100);
        s.append(vec![ev()]).await.unwrap();
        assert_eq!(s.read_after(4, 10).await.unwrap()[0].seq, 101);
    }

    #[tokio::test]
    async fn acks_and_appends_sharing_a_batch_keep_the_counts_true() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let s = Spool::open(&path, 4).unwrap();
        s.append(vec![ev(), ev(), ev()]).await.unwrap();
        // Queued back to back, so the worker usually takes them as one batch; either
        // way the ack frees room first and nothing is dropped.
        s.ack(1, 2);
        s.append(vec![ev(), ev(), ev()]).await.unwrap();
        assert_eq!((s.depth(), s.dropped()), (4, 0));
        let seqs: Vec<u64> = s
            .read_after(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4, 5, 6]);
        s.append(vec![ev()]).await.unwrap();
        assert_eq!((s.depth(), s.dropped()), (4, 1));
        s.close().await;
        let s = Spool::open(&path, 4).unwrap();
        assert_eq!(s.depth(), 4);
        s.append(vec![ev()]).await.unwrap();
        assert_eq!(s.read_after(0, 10).await.unwrap().last().unwrap().seq, 8);
    }

    #[tokio::test]
    async fn bounded_drops_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(&dir.path().join("s.db"), 5).unwrap();
        s.append((0..8).map(|_| ev()).collect()).await.unwrap();
        assert_eq!(s.depth(), 5);
        assert_eq!(s.dropped(), 3);
        let seqs: Vec<u64> = s
            .read_after(0, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![4, 5, 6, 7, 8]);
    }
}
