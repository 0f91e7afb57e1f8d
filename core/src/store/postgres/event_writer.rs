//! Group commit of event batches. One writer task takes every batch queued (at most
//! [`GROUP_EVENTS`] events per transaction), takes the events advisory lock once, sends each
//! batch's `INSERT … SELECT FROM UNNEST … ON CONFLICT (node, seq) DO NOTHING RETURNING`
//! pipelined, commits once and only then answers each caller with its own outcome. Rows a
//! batch inserted earlier in the same transaction conflict like committed ones, so
//! duplicates across the batches of one group are reported as duplicates.
//!
//! If the shared transaction fails before COMMIT, each batch is retried alone in its own
//! transaction, so one bad batch cannot fail the others. If COMMIT itself fails, whether
//! it took effect is unknown: every caller gets an error (nothing is acknowledged that may
//! not be stored; a resend is deduplicated).

use super::{EVENTS_LOCK, pool_error};
use crate::store::codec::EventRow;
use crate::store::{InsertOutcome, StoreError};
use deadpool_postgres::Pool;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

/// Most events one group transaction carries (a larger single batch goes alone).
pub(super) const GROUP_EVENTS: usize = 10_000;
/// Batches queued for the writer at most; a caller beyond waits (backpressure).
pub(super) const QUEUE_BATCHES: usize = 64;

const INSERT_SQL: &str = "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, \
       src_ip, src_port, session, username, password, command, search_text, body) \
     SELECT $1, u.seq, u.t, $2, u.service, u.kind, u.src_ip, u.src_port, u.session, \
       u.username, u.password, u.command, u.search_text, u.body \
     FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
       $8::int[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
       $14::bytea[]) WITH ORDINALITY AS u(seq, t, service, kind, src_ip, src_port, \
       session, username, password, command, search_text, body, ord) \
     ORDER BY u.ord \
     ON CONFLICT (node, seq) DO NOTHING RETURNING id, seq";

/// One batch as the statement's array parameters.
pub(super) struct Columns {
    node: String,
    received_ms: i64,
    seq: Vec<i64>,
    time: Vec<i64>,
    service: Vec<String>,
    kind: Vec<&'static str>,
    src_ip: Vec<Option<String>>,
    src_port: Vec<Option<i32>>,
    session: Vec<Option<String>>,
    username: Vec<Option<String>>,
    password: Vec<Option<String>>,
    command: Vec<Option<String>>,
    text: Vec<String>,
    body: Vec<Vec<u8>>,
}

impl Columns {
    pub(super) fn new(node: &str, received_ms: i64, rows: Vec<EventRow>) -> Columns {
        let n = rows.len();
        let mut c = Columns {
            node: node.to_owned(),
            received_ms,
            seq: Vec::with_capacity(n),
            time: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            src_ip: Vec::with_capacity(n),
            src_port: Vec::with_capacity(n),
            session: Vec::with_capacity(n),
            username: Vec::with_capacity(n),
            password: Vec::with_capacity(n),
            command: Vec::with_capacity(n),
            text: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
        };
        for r in rows {
            c.seq.push(r.seq);
            c.time.push(r.time_ms);
            c.service.push(r.service);
            c.kind.push(r.kind);
            c.src_ip.push(r.src_ip);
            c.src_port.push(r.src_port.map(i32::from));
            c.session.push(r.session);
            c.username.push(r.username);
            c.password.push(r.password);
            c.command.push(r.command);
            c.text.push(r.search_text);
            c.body.push(r.body);
        }
        c
    }

    fn len(&self) -> usize {
        self.seq.len()
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 14] {
        [
            &self.node,
            &self.received_ms,
            &self.seq,
            &self.time,
            &self.service,
            &self.kind,
            &self.src_ip,
            &self.src_port,
            &self.session,
            &self.username,
            &self.password,
            &self.command,
            &self.text,
            &self.body,
        ]
    }
}

/// A queued batch and where its outcome goes.
pub(super) struct Batch {
    pub cols: Columns,
    pub reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// What the writer shares with the store: a gate tests hold to keep the writer from
/// taking a group, and the count of group transactions committed.
#[derive(Default)]
pub(super) struct WriterState {
    /// Taken after the first batch of a group is received, before the rest are.
    pub gate: tokio::sync::Mutex<()>,
    /// First batches of a group received from the queue.
    pub received: AtomicU64,
    pub groups_committed: AtomicU64,
}

/// The writer task: runs until every sender is gone and the queue is drained.
pub(super) async fn writer(
    pool: Pool,
    location: String,
    mut rx: mpsc::Receiver<Batch>,
    state: Arc<WriterState>,
) {
    let mut group: Vec<Batch> = Vec::new();
    let mut carry: Option<Batch> = None;
    loop {
        let first = match carry.take() {
            Some(b) => b,
            None => match rx.recv().await {
                Some(b) => {
                    state.received.fetch_add(1, Ordering::Relaxed);
                    b
                }
                None => return,
            },
        };
        drop(state.gate.lock().await);
        let mut events = first.cols.len();
        group.push(first);
        // Bounded: stops at GROUP_EVENTS events or an empty queue.
        while events < GROUP_EVENTS {
            match rx.try_recv() {
                Ok(b) if events + b.cols.len() > GROUP_EVENTS => {
                    carry = Some(b);
                    break;
                }
                Ok(b) => {
                    events += b.cols.len();
                    group.push(b);
                }
                Err(_) => break,
            }
        }
        store_group(&pool, &location, &state, &mut group).await;
    }
}

/// Why a transaction did not commit.
enum Failure {
    /// Before COMMIT: nothing was stored.
    Before(StoreError),
    /// COMMIT failed: whether it took effect is unknown.
    Commit(StoreError),
}

impl Failure {
    fn into_error(self) -> StoreError {
        match self {
            Failure::Before(e) | Failure::Commit(e) => e,
        }
    }
}

/// Stores one group and answers each of its callers.
async fn store_group(pool: &Pool, location: &str, state: &WriterState, group: &mut Vec<Batch>) {
    let all: Vec<&Columns> = group.iter().map(|b| &b.cols).collect();
    let results: Vec<Result<InsertOutcome, StoreError>> = match insert_together(
        pool, location, &all,
    )
    .await
    {
        Ok(outcomes) => {
            state.groups_committed.fetch_add(1, Ordering::Relaxed);
            outcomes.into_iter().map(Ok).collect()
        }
        Err(f) if all.len() == 1 => vec![Err(f.into_error())],
        Err(Failure::Commit(e)) => {
            tracing::warn!(error = %e, batches = all.len(), "event group COMMIT failed");
            let why = e.to_string();
            all.iter()
                .map(|_| Err(StoreError::BatchFailed(why.clone())))
                .collect()
        }
        Err(Failure::Before(e)) => {
            tracing::debug!(error = %e, batches = all.len(), "event group failed; retrying each batch alone");
            let mut out = Vec::with_capacity(all.len());
            for cols in &all {
                out.push(match insert_together(pool, location, &[cols]).await {
                    Ok(mut o) => {
                        state.groups_committed.fetch_add(1, Ordering::Relaxed);
                        o.pop().ok_or(StoreError::BatchFailed("no outcome".into()))
                    }
                    Err(f) => Err(f.into_error()),
                });
            }
            out
        }
    };
    drop(all);
    for (b, r) in group.drain(..).zip(results) {
        // A caller that stopped waiting no longer needs its answer.
        drop(b.reply.send(r));
    }
}

/// One transaction: the lock, every batch's statement pipelined, COMMIT.
async fn insert_together(
    pool: &Pool,
    location: &str,
    batches: &[&Columns],
) -> Result<Vec<InsertOutcome>, Failure> {
    let before = |e: tokio_postgres::Error| Failure::Before(e.into());
    let mut c = pool
        .get()
        .await
        .map_err(|e| Failure::Before(pool_error(location, e)))?;
    let tx = c.transaction().await.map_err(before)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&EVENTS_LOCK])
        .await
        .map_err(before)?;
    let stmt = tx.prepare_cached(INSERT_SQL).await.map_err(before)?;
    let params: Vec<[&(dyn ToSql + Sync); 14]> = batches.iter().map(|b| b.params()).collect();
    let rows = join_all(params.iter().map(|p| tx.query(&stmt, p)).collect()).await;
    let mut out = Vec::with_capacity(batches.len());
    for (b, rows) in batches.iter().zip(rows) {
        let rows = rows.map_err(before)?;
        // Ids were assigned in batch order, so id order is batch order.
        let mut got = rows
            .iter()
            .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, i64>(1)?)))
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(before)?;
        got.sort_unstable();
        out.push(InsertOutcome {
            inserted: got.len() as u64,
            duplicates: (b.len() - got.len()) as u64,
            new_seqs: got.iter().map(|&(_, s)| s as u64).collect(),
            new_ids: got.iter().map(|&(id, _)| id).collect(),
        });
    }
    tx.commit().await.map_err(|e| Failure::Commit(e.into()))?;
    Ok(out)
}

/// Polls every future together, in order, so the driver pipelines their statements (each
/// is sent on its first poll); returns their outputs in the same order.
async fn join_all<F: Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *o = Some(v),
                    Poll::Pending => done = false,
                }
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    out.into_iter().flatten().collect()
}
