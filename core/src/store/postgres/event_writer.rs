//! Group commit of event batches. One writer task takes every batch queued (at most
//! [`GROUP_EVENTS`] events per transaction), stores them all in one transaction, commits
//! once and only then answers each caller with its own outcome.
//!
//! Two ways in, both binary `COPY` (the cheapest way to get rows to the server: no
//! statement parameters to bind, and straight into a table the server inserts in bulk):
//!
//! - Direct (the usual case: no row of the group is stored yet): under the events
//!   advisory lock, `COPY events FROM STDIN`, then the new ids read back.
//! - Staged, when the unique index refuses the direct COPY (a resend after a lost ack, or
//!   one (node, seq) twice in the group): the group is copied into a temporary staging
//!   table, then, under the lock, one `INSERT … SELECT … ORDER BY ord ON CONFLICT (node,
//!   seq) DO NOTHING RETURNING`. Rows go in in group order, so of two rows with the same
//!   (node, seq), in one batch or two, the first is stored and the other reported as a
//!   duplicate of the batch that holds it.
//!
//! Either way `UNIQUE (node, seq)` is what keeps an event from being stored twice.
//!
//! If the shared transaction fails before COMMIT, each batch is retried alone in its own
//! transaction, so one bad batch cannot fail the others. If COMMIT itself fails, whether
//! it took effect is unknown: every caller gets an error (nothing is acknowledged that may
//! not be stored; a resend is deduplicated).

use super::{EVENTS_LOCK, pool_error};
use crate::store::codec::EventRow;
use crate::store::postgres::pg_sql;
use crate::store::rollup::{self, Deltas};
use crate::store::{InsertOutcome, StoreError};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

/// Most events one group transaction carries (a larger single batch goes alone).
pub(super) const GROUP_EVENTS: usize = 10_000;
/// Batches queued for the writer at most; a caller beyond waits (backpressure).
pub(super) const QUEUE_BATCHES: usize = 64;

/// The staging table: a temporary table of the connection's own (so cores sharing the
/// database never see each other's rows), emptied at every COMMIT or ROLLBACK, made the
/// first time a connection stores a group (`IF NOT EXISTS`: once per connection, then a
/// notice). `ord` is the row's place in its group. The memory a sort may take is raised
/// for this transaction so that sorting a whole group by `ord` stays in memory.
const STAGE_SQL: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS hb_events_stage (\
       ord INTEGER NOT NULL, node TEXT NOT NULL, seq BIGINT NOT NULL, \
       time_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL, service TEXT NOT NULL, \
       kind TEXT NOT NULL, src_ip TEXT, src_port INTEGER, session TEXT, username TEXT, \
       password TEXT, command TEXT, search_text TEXT NOT NULL, body BYTEA NOT NULL) \
     ON COMMIT DELETE ROWS; \
     SET LOCAL work_mem = '64MB'";

const COPY_SQL: &str = "COPY hb_events_stage (ord, node, seq, time_ms, received_ms, service, \
       kind, src_ip, src_port, session, username, password, command, search_text, body) \
     FROM STDIN (FORMAT binary)";

/// The column types of [`COPY_SQL`], in its order.
const COPY_TYPES: [Type; 15] = [
    Type::INT4,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
];

/// The whole group from the staging table in group order, so ids follow it and, of two
/// rows with one (node, seq), the earlier one is stored and the later one conflicts.
const INSERT_SQL: &str = "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, \
       src_ip, src_port, session, username, password, command, search_text, body) \
     SELECT node, seq, time_ms, received_ms, service, kind, src_ip, src_port, session, \
       username, password, command, search_text, body \
     FROM hb_events_stage ORDER BY ord \
     ON CONFLICT (node, seq) DO NOTHING RETURNING id, node, seq";

/// Straight into `events` (no duplicates in the group: see `insert_direct`).
const COPY_EVENTS_SQL: &str = "COPY events (node, seq, time_ms, received_ms, service, kind, \
       src_ip, src_port, session, username, password, command, search_text, body) \
     FROM STDIN (FORMAT binary)";

/// The rows `insert_direct` stored, in id order.
const READ_BACK_SQL: &str = "SELECT id, node, seq FROM events WHERE id > $1 ORDER BY id";

/// The count tables' deltas of a group (see `rollup`), one statement per table.
const ADD_EVENT_COUNTS: &str = "INSERT INTO event_counts (minute, service, kind, n) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[]) \
     ON CONFLICT (minute, service, kind) DO UPDATE SET n = event_counts.n + excluded.n";
const ADD_NODE_COUNTS: &str = "INSERT INTO node_counts (minute, node, n) \
     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[]) \
     ON CONFLICT (minute, node) DO UPDATE SET n = node_counts.n + excluded.n";

/// Adds a directly copied group's rows (all of them new) to the count tables.
async fn add_counts(
    tx: &deadpool_postgres::Transaction<'_>,
    batches: &[&Columns],
) -> Result<(), tokio_postgres::Error> {
    let mut d = Deltas::default();
    for b in batches {
        for r in &b.rows {
            d.add(&b.node, r.time_ms, &r.service, r.kind, 1);
        }
    }
    if d.is_empty() {
        return Ok(());
    }
    let ev = d.event_rows();
    let (m, s, k, n): (Vec<i64>, Vec<&str>, Vec<&str>, Vec<i64>) =
        ev.iter()
            .fold(Default::default(), |mut acc, &(m, s, k, n)| {
                acc.0.push(m);
                acc.1.push(s);
                acc.2.push(k);
                acc.3.push(n);
                acc
            });
    let stmt = tx.prepare_cached(ADD_EVENT_COUNTS).await?;
    tx.execute(&stmt, &[&m, &s, &k, &n]).await?;
    let nodes = d.node_rows();
    let m: Vec<i64> = nodes.iter().map(|r| r.0).collect();
    let node: Vec<&str> = nodes.iter().map(|r| r.1).collect();
    let n: Vec<i64> = nodes.iter().map(|r| r.2).collect();
    let stmt = tx.prepare_cached(ADD_NODE_COUNTS).await?;
    tx.execute(&stmt, &[&m, &node, &n]).await?;
    Ok(())
}

/// One batch: its node, when it was received and its rows.
pub(super) struct Columns {
    node: String,
    received_ms: i64,
    rows: Vec<EventRow>,
}

impl Columns {
    pub(super) fn new(node: &str, received_ms: i64, rows: Vec<EventRow>) -> Columns {
        Columns {
            node: node.to_owned(),
            received_ms,
            rows,
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }
}

/// A queued batch and where its outcome goes.
pub(super) struct Batch {
    pub cols: Columns,
    pub reply: oneshot::Sender<Result<InsertOutcome, StoreError>>,
}

/// The core this writer stores for, in a cluster (`PgStore::set_origin`).
pub(super) struct Origin {
    /// The core's id, 32 hex digits: the `origin` of every row (schema version 4).
    pub core: String,
    /// Notified inside each group transaction, so the other cores' module bus tailers
    /// wake once its rows are visible.
    pub channel: String,
    pub payload: String,
}

/// Takes the events lock and, in a cluster, names the storing core for the rows' `origin`
/// default and queues the commit's notification, in the same round trip.
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock($1)";
const LOCK_ORIGIN_SQL: &str = "SELECT pg_advisory_xact_lock($1), \
       set_config('honeybee.core', $2, true), pg_notify($3, $4)";

/// Takes the events lock (see [`LOCK_SQL`]).
async fn lock(
    tx: &deadpool_postgres::Transaction<'_>,
    origin: Option<&Origin>,
) -> Result<(), tokio_postgres::Error> {
    match origin {
        None => tx.execute(LOCK_SQL, &[&EVENTS_LOCK]).await?,
        Some(o) => {
            tx.execute(
                LOCK_ORIGIN_SQL,
                &[&EVENTS_LOCK, &o.core, &o.channel, &o.payload],
            )
            .await?
        }
    };
    Ok(())
}

/// What the writer shares with the store: a gate tests hold to keep the writer from
/// taking a group, the count of group transactions committed, and the cluster's origin.
#[derive(Default)]
pub(super) struct WriterState {
    /// Set once, when the core joins its cluster (before it ingests anything).
    pub origin: std::sync::OnceLock<Origin>,
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
    let origin = state.origin.get();
    let results: Vec<Result<InsertOutcome, StoreError>> = match insert_together(
        pool, location, origin, &all,
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
                out.push(
                    match insert_together(pool, location, origin, &[cols]).await {
                        Ok(mut o) => {
                            state.groups_committed.fetch_add(1, Ordering::Relaxed);
                            o.pop().ok_or(StoreError::BatchFailed("no outcome".into()))
                        }
                        Err(f) => Err(f.into_error()),
                    },
                );
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

/// Stores a group: straight into `events` with COPY when none of its rows is stored
/// already (the usual case), else through the staging table.
async fn insert_together(
    pool: &Pool,
    location: &str,
    origin: Option<&Origin>,
    batches: &[&Columns],
) -> Result<Vec<InsertOutcome>, Failure> {
    match insert_direct(pool, location, origin, batches).await? {
        Some(out) => Ok(out),
        None => insert_staged(pool, location, origin, batches).await,
    }
}

/// One transaction: the lock, the highest id so far, every row copied into `events`,
/// the new rows' ids read back, COMMIT. `None` (rolled back, nothing stored) if a row's
/// (node, seq) is stored already or repeats within the group: the unique index refuses
/// the COPY, and the staging path sorts out which rows are new.
///
/// Reading the ids back as "every row above the old highest id" is exact because every
/// writer of `events` holds the events lock until it commits, so no other rows can get
/// ids meanwhile (retention only deletes).
async fn insert_direct(
    pool: &Pool,
    location: &str,
    origin: Option<&Origin>,
    batches: &[&Columns],
) -> Result<Option<Vec<InsertOutcome>>, Failure> {
    use tokio_postgres::error::SqlState;
    let before = |e: tokio_postgres::Error| Failure::Before(e.into());
    let mut c = pool
        .get()
        .await
        .map_err(|e| Failure::Before(pool_error(location, e)))?;
    let tx = c.transaction().await.map_err(before)?;
    lock(&tx, origin).await.map_err(before)?;
    let top: i64 = tx
        .query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])
        .await
        .map_err(before)?
        .try_get(0)
        .map_err(before)?;
    let copy = tx.prepare_cached(COPY_EVENTS_SQL).await.map_err(before)?;
    match copy_rows(&tx, &copy, &COPY_TYPES[1..], batches, false).await {
        Ok(()) => {}
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => return Ok(None),
        Err(e) => return Err(before(e)),
    }
    add_counts(&tx, batches).await.map_err(before)?;
    let read = tx.prepare_cached(READ_BACK_SQL).await.map_err(before)?;
    let rows = tx.query(&read, &[&top]).await.map_err(before)?;
    let out = outcomes(batches, &rows)?;
    let stored: u64 = out.iter().map(|o| o.inserted).sum();
    let sent: usize = batches.iter().map(|b| b.len()).sum();
    if stored != sent as u64 {
        return Err(Failure::Before(StoreError::BatchFailed(format!(
            "copied {sent} events but read back {stored}"
        ))));
    }
    tx.commit().await.map_err(|e| Failure::Commit(e.into()))?;
    Ok(Some(out))
}

/// Every row of `batches` through one binary COPY; `ord` first if `with_ord`.
async fn copy_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    copy: &tokio_postgres::Statement,
    types: &[Type],
    batches: &[&Columns],
    with_ord: bool,
) -> Result<(), tokio_postgres::Error> {
    let sink = tx.copy_in(copy).await?;
    let writer = BinaryCopyInWriter::new(sink, types);
    let mut writer = std::pin::pin!(writer);
    let mut ord: i32 = 0;
    let skip = usize::from(!with_ord);
    for b in batches {
        for r in &b.rows {
            let port = r.src_port.map(i32::from);
            let row: [&(dyn ToSql + Sync); 15] = [
                &ord,
                &b.node,
                &r.seq,
                &r.time_ms,
                &b.received_ms,
                &r.service,
                &r.kind,
                &r.src_ip,
                &port,
                &r.session,
                &r.username,
                &r.password,
                &r.command,
                &r.search_text,
                &r.body,
            ];
            writer.as_mut().write(&row[skip..]).await?;
            ord += 1;
        }
    }
    writer.finish().await?;
    Ok(())
}

/// One transaction: every batch's rows copied into the staging table, the lock, one
/// `INSERT … SELECT` from the staging table, COMMIT.
async fn insert_staged(
    pool: &Pool,
    location: &str,
    origin: Option<&Origin>,
    batches: &[&Columns],
) -> Result<Vec<InsertOutcome>, Failure> {
    let before = |e: tokio_postgres::Error| Failure::Before(e.into());
    let mut c = pool
        .get()
        .await
        .map_err(|e| Failure::Before(pool_error(location, e)))?;
    let tx = c.transaction().await.map_err(before)?;
    tx.batch_execute(STAGE_SQL).await.map_err(before)?;
    // Copied before the lock is taken: other cores' writers wait only for the INSERT.
    let copy = tx.prepare_cached(COPY_SQL).await.map_err(before)?;
    copy_rows(&tx, &copy, &COPY_TYPES, batches, true)
        .await
        .map_err(before)?;
    lock(&tx, origin).await.map_err(before)?;
    let top: i64 = tx
        .query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])
        .await
        .map_err(before)?
        .try_get(0)
        .map_err(before)?;
    let insert = tx.prepare_cached(INSERT_SQL).await.map_err(before)?;
    let rows = tx.query(&insert, &[]).await.map_err(before)?;
    // Which rows were new only the server knows here: count them from `events` by id
    // (exact for the same reason as the direct path's read-back: the lock).
    for sql in rollup::add_ids_sql() {
        tx.execute(&pg_sql(&sql), &[&(top + 1), &i64::MAX])
            .await
            .map_err(before)?;
    }
    let out = outcomes(batches, &rows)?;
    tx.commit().await.map_err(|e| Failure::Commit(e.into()))?;
    Ok(out)
}

/// Each batch's outcome from the rows stored (`id, node, seq`): ids were assigned in
/// group order, so id order is group order.
fn outcomes(
    batches: &[&Columns],
    rows: &[tokio_postgres::Row],
) -> Result<Vec<InsertOutcome>, Failure> {
    let before = |e: tokio_postgres::Error| Failure::Before(e.into());
    let mut got = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<_, i64>(0)?,
                r.try_get::<_, &str>(1)?,
                r.try_get::<_, i64>(2)?,
            ))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(before)?;
    got.sort_unstable_by_key(|&(id, _, _)| id);
    let owner = Owners::new(batches);
    let mut out: Vec<InsertOutcome> = batches.iter().map(|_| InsertOutcome::default()).collect();
    for (id, node, seq) in got {
        let o = &mut out[owner.of(node, seq)?];
        o.inserted += 1;
        o.new_seqs.push(seq as u64);
        o.new_ids.push(id);
    }
    for (o, b) in out.iter_mut().zip(batches) {
        o.duplicates = (b.len() as u64).saturating_sub(o.inserted);
    }
    Ok(out)
}

/// Which batch of a group a stored row came from: the first batch of the row's node that
/// holds its seq (a later one holding it too was a duplicate).
struct Owners<'a> {
    /// Each node's batches, in group order.
    by_node: std::collections::HashMap<&'a str, Vec<usize>>,
    /// For a node with several batches in the group: the first batch holding each seq.
    by_seq: std::collections::HashMap<(&'a str, i64), usize>,
}

impl<'a> Owners<'a> {
    fn new(batches: &[&'a Columns]) -> Owners<'a> {
        let mut by_node: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for (i, b) in batches.iter().enumerate() {
            by_node.entry(b.node.as_str()).or_default().push(i);
        }
        let mut by_seq = std::collections::HashMap::new();
        for (node, list) in &by_node {
            if list.len() > 1 {
                for &i in list {
                    for r in &batches[i].rows {
                        by_seq.entry((*node, r.seq)).or_insert(i);
                    }
                }
            }
        }
        Owners { by_node, by_seq }
    }

    fn of(&self, node: &str, seq: i64) -> Result<usize, Failure> {
        let found = match self.by_node.get(node).map(Vec::as_slice) {
            Some([one]) => Some(*one),
            Some(_) => self.by_seq.get(&(node, seq)).copied(),
            None => None,
        };
        found.ok_or_else(|| {
            Failure::Before(StoreError::BatchFailed(format!(
                "stored an event no batch holds ({node}, {seq})"
            )))
        })
    }
}
