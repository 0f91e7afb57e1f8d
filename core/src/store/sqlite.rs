//! The embedded SQLite store: one writer thread that commits queued writes in batches,
//! and a small pool of read-only connections.
//!
//! Why this shape: SQLite allows one writer at a time, and a transaction's commit is the
//! expensive part. A single thread that drains everything queued and commits it as one
//! transaction turns many small writes (event batches from many nodes, audit entries,
//! token uses) into one commit, and makes read-modify-write operations such as consuming
//! a token atomic without any locking: they run one after another on that thread.
//! Each write runs inside its own SAVEPOINT, so a failing write is undone without undoing
//! its neighbours, and every caller is answered only after COMMIT.

use super::codec::{
    EventRow, corrupt, ct_eq, encode, labels_from_json, labels_to_json, push_or_skip,
};
use super::rollup::{self, Deltas};
use super::{
    CaptureRecord, CertRecord, DeviceActivity, HealthRow, InsertOutcome, NodeRecord, StoreError,
    TokenRecord, TokenRefusal, effective_limit,
};
use honeybee_proto::admin::{AuditEntry, EventQuery, StoredEvent, TokenInfo};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::event::{Event, EventKind};
use honeybee_proto::{NodeId, Role, Serial, SessionId, TokenId};
use rusqlite::types::Value;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior, params,
    params_from_iter,
};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_v2_modules.sql"),
    include_str!("schema_v3_search.sql"),
    include_str!("schema_v4_session.sql"),
    include_str!("schema_v5_time_order.sql"),
    include_str!("schema_v6_counts.sql"),
];
/// The schema version this binary writes.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const READERS: usize = 2;
/// A batch stops growing at this many writes …
const MAX_BATCH_OPS: usize = 4096;
/// … or at this many events, so one commit never grows without bound.
const MAX_BATCH_WEIGHT: usize = 10_000;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_CACHE: usize = 64;

/// The SQLite store. Cheap to clone; all clones share one writer thread and reader pool.
/// Dropping the last clone flushes queued writes and waits for the writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

struct Inner {
    path: PathBuf,
    // Field order matters: `tx` drops before `writer`, and a closed channel is what tells
    // the writer thread to finish, which `writer`'s drop then waits for.
    tx: mpsc::UnboundedSender<Msg>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    writer: WriterThread,
}

struct WriterThread(Mutex<Option<JoinHandle<()>>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        let handle = self
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            tracing::error!("store writer thread panicked");
        }
    }
}

/// What the writer thread receives. The channel is unbounded on purpose: every caller but
/// [`SqliteStore::audit_nowait`] waits for its answer, so the queue is bounded by the
/// number of concurrent callers, and a bounded queue would make fire-and-forget writes
/// either block or drop.
enum Msg {
    Op(Box<dyn WriteOp>),
    Shutdown,
}

/// One queued write, type-erased so a batch can hold writes with different results.
trait WriteOp: Send {
    /// How much this write counts against [`MAX_BATCH_WEIGHT`].
    fn weight(&self) -> usize;
    /// Runs the write inside the batch transaction; false if it failed and must be undone.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct Job<T, F> {
    weight: usize,
    run: Option<F>,
    out: Option<Result<T, StoreError>>,
    /// None for fire-and-forget writes.
    reply: Option<oneshot::Sender<Result<T, StoreError>>>,
}

impl<T, F> WriteOp for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn weight(&self) -> usize {
        self.weight
    }

    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(run) = self.run.take() else {
            return false;
        };
        // A bug in one write must not take the writer thread, and every later write, down.
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| run(conn)))
            .unwrap_or_else(|_| Err(StoreError::Worker("a store write panicked".into())));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let result = match (self.out, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(why)) => Err(StoreError::BatchFailed(why.to_owned())),
            (None, Ok(())) => Err(StoreError::Worker("write was not applied".into())),
        };
        match self.reply {
            // The caller may have gone away; the write stands regardless.
            Some(reply) => drop(reply.send(result)),
            None => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "fire-and-forget store write failed");
                }
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date and
    /// starts the writer thread. Refuses a database whose schema is newer than this binary,
    /// and a database another live store (in any process) has open.
    ///
    /// Synchronous: it is a start-up step, does a little file I/O and fails fast when the
    /// database is locked, so it is fine to call from async code once.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_blocking(path.to_owned())
    }

    fn open_blocking(path: PathBuf) -> Result<SqliteStore, StoreError> {
        let lock = take_lock(&path)?;
        let mut conn = Connection::open(&path).map_err(|e| open_err(&path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_err(&path, e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_err(&path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "store could not switch to WAL mode");
        }
        // In WAL mode NORMAL never corrupts; it may lose the last commits on power loss,
        // not on a process crash, and it saves an fsync per commit.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_err(&path, e))?;
        migrate(&mut conn, &path)?;
        backfill_counts(&conn).map_err(|e| open_err(&path, e))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);

        let readers = (0..READERS)
            .map(|_| open_reader(&path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;

        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("honeybee-store".into())
            .spawn(move || writer_main(conn, lock, rx))
            .map_err(|e| StoreError::Worker(format!("cannot start writer thread: {e}")))?;
        tracing::info!(path = %path.display(), schema = SCHEMA_VERSION, "store opened");
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                tx,
                readers,
                next_reader: AtomicUsize::new(0),
                writer: WriterThread(Mutex::new(Some(thread))),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes on disk: the database file and its write-ahead log.
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let mut wal = self.inner.path.clone().into_os_string();
        wal.push("-wal");
        Ok([self.inner.path.as_os_str(), wal.as_os_str()]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum())
    }

    /// Commits everything queued so far and stops the writer thread; returns when it has
    /// ended and released the database. Later writes fail with [`StoreError::Closed`];
    /// reads keep working until the last clone is dropped.
    pub async fn close(&self) -> Result<(), StoreError> {
        // Fails only if the writer is already gone, which is what we want anyway.
        let _ = self.inner.tx.send(Msg::Shutdown);
        let handle = self
            .inner
            .writer
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| StoreError::Worker(format!("close task failed: {e}")))?
                .map_err(|_| StoreError::Worker("store writer thread panicked".into()))?;
        }
        Ok(())
    }

    /// Queues a write and waits until it is committed.
    pub(super) async fn write<T, F>(&self, weight: usize, run: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            weight,
            run: Some(run),
            out: None,
            reply: Some(reply),
        };
        self.inner
            .tx
            .send(Msg::Op(Box::new(job)))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a pooled read-only connection off the async threads.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let n = inner.readers.len();
            let start = inner.next_reader.fetch_add(1, Ordering::Relaxed) % n;
            for i in 0..n {
                match inner.readers[(start + i) % n].try_lock() {
                    Ok(conn) => return f(&conn),
                    // A panic while reading leaves the connection usable.
                    Err(TryLockError::Poisoned(p)) => return f(&p.into_inner()),
                    Err(TryLockError::WouldBlock) => {}
                }
            }
            let conn = inner.readers[start]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Worker(format!("read task failed: {e}")))?
    }

    // ---------------------------------------------------------------- events

    pub async fn insert_events(
        &self,
        node: &NodeId,
        received_ms: i64,
        events: Vec<Event>,
    ) -> Result<InsertOutcome, StoreError> {
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        // Encoding happens on the caller's task so the single writer thread only writes.
        let rows = events
            .into_iter()
            .map(EventRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        let node = node.as_str().to_owned();
        self.write(rows.len(), move |c| {
            let mut stmt = c.prepare_cached(
                "INSERT OR IGNORE INTO events (node, seq, time_ms, received_ms, service, kind, \
                 src_ip, src_port, session, username, body, password, command, search_text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            let mut out = InsertOutcome::default();
            let mut counts = Deltas::default();
            for r in &rows {
                let n = stmt.execute(params![
                    node,
                    r.seq,
                    r.time_ms,
                    received_ms,
                    r.service,
                    r.kind,
                    r.src_ip,
                    r.src_port,
                    r.session,
                    r.username,
                    r.body,
                    r.password,
                    r.command,
                    r.search_text,
                ])?;
                if n == 1 {
                    out.inserted += 1;
                    out.new_seqs.push(r.seq as u64);
                    out.new_ids.push(c.last_insert_rowid());
                    counts.add(&node, r.time_ms, &r.service, r.kind, 1);
                } else {
                    out.duplicates += 1;
                }
            }
            add_counts(c, &counts)?;
            Ok(out)
        })
        .await
    }

    /// Retention (see `Store::prune_events`): one write per batch, so other writes queue
    /// between batches.
    pub async fn prune_events(&self, before_ms: i64, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut gone = 0u64;
        // Bounded: each round deletes a full batch or ends the loop.
        loop {
            let n = self
                .write(1, move |c| {
                    c.prepare_cached(
                        "DELETE FROM enrichments WHERE (node, seq) IN (SELECT node, seq \
                         FROM events WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2)",
                    )?
                    .execute(params![before_ms, batch])?;
                    // The deleted rows' counts come off in the same transaction.
                    let mut counts = Deltas::default();
                    let mut stmt = c.prepare_cached(
                        "DELETE FROM events WHERE id IN (SELECT id FROM events \
                         WHERE time_ms < ?1 ORDER BY time_ms LIMIT ?2) \
                         RETURNING node, time_ms, service, kind",
                    )?;
                    let mut rows = stmt.query(params![before_ms, batch])?;
                    let mut n = 0u64;
                    while let Some(r) = rows.next()? {
                        let (node, t, service, kind): (String, i64, String, String) =
                            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
                        counts.add(&node, t, &service, &kind, -1);
                        n += 1;
                    }
                    drop(rows);
                    add_counts(c, &counts)?;
                    let below = rollup::minute_of(before_ms).saturating_add(1);
                    for sql in rollup::DROP_EMPTY {
                        c.prepare_cached(sql)?.execute([below])?;
                    }
                    Ok(n)
                })
                .await?;
            gone += n;
            if n < batch as u64 {
                return Ok(gone);
            }
        }
    }

    /// The highest seq stored for `node`, 0 if none.
    pub async fn max_seq(&self, node: &NodeId) -> Result<u64, StoreError> {
        let node = node.as_str().to_owned();
        self.read(move |c| {
            let max: Option<i64> = c
                .prepare_cached("SELECT MAX(seq) FROM events WHERE node = ?1")?
                .query_row([node], |r| r.get(0))?;
            Ok(max.unwrap_or(0).max(0) as u64)
        })
        .await
    }

    pub async fn query_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(kind) = &q.kind
            && !EventKind::NAMES.contains(&kind.as_str())
        {
            return Err(StoreError::InvalidQuery(format!(
                "unknown event kind {kind:?}; expected one of {}",
                EventKind::NAMES.join(", ")
            )));
        }
        let mut sql = String::from("SELECT node, received_ms, body, id FROM events");
        let mut clauses = Vec::new();
        let mut args = Vec::new();
        if let Some(node) = &q.node {
            clauses.push("node = ?");
            args.push(Value::Text(node.as_str().to_owned()));
        }
        if let Some(service) = &q.service {
            clauses.push("service = ?");
            args.push(Value::Text(service.clone()));
        }
        if let Some(kind) = &q.kind {
            clauses.push("kind = ?");
            args.push(Value::Text(kind.clone()));
        }
        if let Some(since) = q.since_ms {
            clauses.push("time_ms >= ?");
            args.push(Value::Integer(since));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(" ORDER BY time_ms DESC, id DESC LIMIT ?");
        args.push(Value::Integer(effective_limit(q.limit).into()));

        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(3)?;
                match stored_event_from_row(row) {
                    Ok(ev) => out.push(ev),
                    Err(StoreError::Corrupt { why, .. }) => {
                        tracing::warn!(row = id, why, "skipping unreadable stored event");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }

    /// Events stored after row id `after_id`, oldest first (store order), at most `limit`,
    /// each with its row id; and the newest row id stored now (0 if none). Lets a live
    /// reader that lost its subscription resume exactly where it stopped.
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<(Vec<(i64, StoredEvent)>, i64), StoreError> {
        self.read(move |c| {
            let newest: Option<i64> = c
                .prepare_cached("SELECT MAX(id) FROM events")?
                .query_row([], |r| r.get(0))?;
            let mut stmt = c.prepare_cached(
                "SELECT node, received_ms, body, id FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after_id, limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let id: i64 = row.get(3)?;
                match stored_event_from_row(row) {
                    Ok(ev) => out.push((id, ev)),
                    Err(StoreError::Corrupt { why, .. }) => {
                        tracing::warn!(row = id, why, "skipping unreadable stored event");
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok((out, newest.unwrap_or(0)))
        })
        .await
    }

    pub async fn count_events(&self, node: Option<&NodeId>) -> Result<u64, StoreError> {
        let node = node.map(|n| n.as_str().to_owned());
        self.read(move |c| {
            let n: i64 = match node {
                Some(node) => c
                    .prepare_cached("SELECT COUNT(*) FROM events WHERE node = ?1")?
                    .query_row([node], |r| r.get(0))?,
                None => c
                    .prepare_cached("SELECT COUNT(*) FROM events")?
                    .query_row([], |r| r.get(0))?,
            };
            Ok(n.max(0) as u64)
        })
        .await
    }

    // ---------------------------------------------------------------- nodes

    pub async fn upsert_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        let labels = labels_to_json(&rec.labels)?;
        let health = rec
            .health
            .as_ref()
            .map(|h| encode("node health", h))
            .transpose()?;
        let config = encode("node config", &rec.config)?;
        self.write(1, move |c| {
            // A node on the denylist stays revoked whatever the caller says: un-revoking
            // must be a deliberate act, not a side effect of a registry refresh.
            c.prepare_cached(
                "INSERT INTO nodes (id, name, role, labels, serial, cert_not_after_ms, \
                 first_seen_ms, last_seen_ms, addr, online, revoked, health, config, via_relay) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
                   ?10 AND NOT EXISTS (SELECT 1 FROM revoked_nodes WHERE node = ?1), \
                   ?11 OR EXISTS (SELECT 1 FROM revoked_nodes WHERE node = ?1), \
                   ?12, ?13, ?14) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
                   labels = excluded.labels, serial = excluded.serial, \
                   cert_not_after_ms = excluded.cert_not_after_ms, \
                   first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms, \
                   addr = excluded.addr, online = excluded.online, revoked = excluded.revoked, \
                   health = excluded.health, config = excluded.config, \
                   via_relay = excluded.via_relay",
            )?
            .execute(params![
                rec.id.as_str(),
                rec.name,
                rec.role.as_str(),
                labels,
                rec.serial.to_hex(),
                rec.cert_not_after_ms,
                rec.first_seen_ms,
                rec.last_seen_ms,
                rec.addr,
                rec.online,
                rec.revoked,
                health,
                config,
                rec.via_relay.as_ref().map(NodeId::as_str),
            ])?;
            Ok(())
        })
        .await
    }

    pub async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes WHERE id = ?1"))?;
            let mut rows = stmt.query([id])?;
            match rows.next()? {
                Some(row) => node_from_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY id"))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                push_or_skip(&mut out, node_from_row(row))?;
            }
            Ok(out)
        })
        .await
    }

    pub async fn set_node_online(
        &self,
        id: &NodeId,
        online: bool,
        addr: Option<String>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        self.write(1, move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE nodes SET online = (?2 AND NOT revoked), addr = COALESCE(?3, addr), \
                     last_seen_ms = ?4 WHERE id = ?1",
                )?
                .execute(params![id, online, addr, now_ms])?;
            Ok(n > 0)
        })
        .await
    }

    /// Sets the relay a node is assigned to (`None`: none). False if there is no such node.
    pub async fn set_node_relay(
        &self,
        id: &NodeId,
        relay: Option<&NodeId>,
    ) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        let relay = relay.map(|r| r.as_str().to_owned());
        self.write(1, move |c| {
            let n = c
                .prepare_cached("UPDATE nodes SET via_relay = ?2 WHERE id = ?1")?
                .execute(params![id, relay])?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn set_nodes_health(&self, rows: Vec<HealthRow>) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        // Encoded here, on the caller's task, so the writer thread only writes.
        let rows = rows
            .into_iter()
            .map(|r| Ok((r.node, encode("node health", &r.health)?, r.time_ms)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        self.write(rows.len(), move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE nodes SET health = ?2, last_seen_ms = MAX(last_seen_ms, ?3) WHERE id = ?1",
            )?;
            let mut n = 0;
            for (id, health, time_ms) in &rows {
                n += stmt.execute(params![id.as_str(), health, time_ms])?;
            }
            Ok(n)
        })
        .await
    }

    /// Agent time of the node's newest stored event (index `events_node_time`).
    pub async fn last_event_ms(&self, id: &NodeId) -> Result<Option<i64>, StoreError> {
        let id = id.as_str().to_owned();
        self.read(move |c| {
            Ok(
                c.prepare_cached("SELECT MAX(time_ms) FROM events WHERE node = ?1")?
                    .query_row([id], |r| r.get::<_, Option<i64>>(0))?,
            )
        })
        .await
    }

    /// Per (node, aggregator service, device address): the newest device event's time and
    /// how many there are.
    pub async fn device_activity(&self) -> Result<Vec<DeviceActivity>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(super::DEVICE_ACTIVITY_SQL)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (node, service, address, last_ms, n) = row?;
                // A node id that no longer parses cannot be listed under a node.
                if let Ok(node) = NodeId::new(&node) {
                    out.push(DeviceActivity {
                        node,
                        service,
                        address,
                        last_ms,
                        events: n.max(0) as u64,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    pub async fn set_node_config(
        &self,
        id: &NodeId,
        config: &NodeConfig,
    ) -> Result<bool, StoreError> {
        let id = id.as_str().to_owned();
        let config = encode("node config", config)?;
        self.write(1, move |c| {
            let n = c
                .prepare_cached("UPDATE nodes SET config = ?2 WHERE id = ?1")?
                .execute(params![id, config])?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn mark_all_offline(&self) -> Result<u64, StoreError> {
        self.write(1, |c| {
            let n = c
                .prepare_cached("UPDATE nodes SET online = 0 WHERE online != 0")?
                .execute([])?;
            Ok(n as u64)
        })
        .await
    }

    // ---------------------------------------------------------------- certificates

    pub async fn record_cert(
        &self,
        serial: Serial,
        node: &NodeId,
        role: Role,
        issued_ms: i64,
        not_after_ms: i64,
    ) -> Result<(), StoreError> {
        let node = node.as_str().to_owned();
        self.write(1, move |c| {
            // Born revoked if its node already is: closes the race where a renewal is
            // signed just before the revocation commits and recorded just after.
            c.prepare_cached(
                "INSERT INTO certs (serial, node, role, issued_ms, not_after_ms, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5, EXISTS (SELECT 1 FROM revoked_nodes WHERE node = ?2))",
            )?
            .execute(params![
                serial.to_hex(),
                node,
                role.as_str(),
                issued_ms,
                not_after_ms
            ])?;
            Ok(())
        })
        .await
    }

    pub async fn supersede_cert(
        &self,
        node: &NodeId,
        old: Serial,
        new: Serial,
        new_not_after_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let node = node.clone();
        self.write(1, move |c| {
            let owner: Option<String> = c
                .prepare_cached("SELECT node FROM certs WHERE serial = ?1")?
                .query_row([old.to_hex()], |r| r.get(0))
                .optional()?;
            if owner.as_deref() != Some(node.as_str()) {
                return Err(StoreError::UnknownCert { serial: old, node });
            }
            c.prepare_cached(
                "INSERT OR IGNORE INTO certs (serial, node, role, issued_ms, not_after_ms, revoked) \
                 SELECT ?2, node, role, ?3, ?4, \
                   EXISTS (SELECT 1 FROM revoked_nodes WHERE node = certs.node) \
                 FROM certs WHERE serial = ?1",
            )?
            .execute(params![old.to_hex(), new.to_hex(), now_ms, new_not_after_ms])?;
            c.prepare_cached("UPDATE certs SET superseded_by = ?2 WHERE serial = ?1")?
                .execute(params![old.to_hex(), new.to_hex()])?;
            c.prepare_cached(
                "UPDATE nodes SET serial = ?2, cert_not_after_ms = ?3 WHERE id = ?1",
            )?
            .execute(params![node.as_str(), new.to_hex(), new_not_after_ms])?;
            Ok(())
        })
        .await
    }

    pub async fn cert(&self, serial: Serial) -> Result<Option<CertRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT serial, node, role, issued_ms, not_after_ms, superseded_by, revoked \
                 FROM certs WHERE serial = ?1",
            )?;
            let mut rows = stmt.query([serial.to_hex()])?;
            match rows.next()? {
                Some(row) => cert_from_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    // ---------------------------------------------------------------- revocation

    pub async fn revoke_node(&self, id: &NodeId, now_ms: i64) -> Result<Vec<Serial>, StoreError> {
        let id = id.as_str().to_owned();
        self.write(1, move |c| {
            c.prepare_cached(
                "INSERT OR IGNORE INTO revoked_nodes (node, revoked_ms) VALUES (?1, ?2)",
            )?
            .execute(params![id, now_ms])?;
            c.prepare_cached("UPDATE nodes SET revoked = 1, online = 0 WHERE id = ?1")?
                .execute([&id])?;
            c.prepare_cached("UPDATE certs SET revoked = 1 WHERE node = ?1")?
                .execute([&id])?;
            let mut stmt = c.prepare_cached(
                "SELECT serial FROM certs WHERE node = ?1 \
                 UNION SELECT serial FROM nodes WHERE id = ?1",
            )?;
            let mut rows = stmt.query([&id])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                push_or_skip(&mut out, serial_col(row, 0, "certificate"))?;
            }
            Ok(out)
        })
        .await
    }

    pub async fn revoked(&self) -> Result<(Vec<Serial>, Vec<NodeId>), StoreError> {
        self.read(|c| {
            let mut serials = Vec::new();
            let mut stmt = c.prepare_cached(
                "SELECT serial FROM certs WHERE revoked != 0 \
                 UNION SELECT serial FROM nodes WHERE revoked != 0",
            )?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                push_or_skip(&mut serials, serial_col(row, 0, "certificate"))?;
            }
            let mut nodes = Vec::new();
            let mut stmt = c.prepare_cached("SELECT node FROM revoked_nodes ORDER BY node")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                push_or_skip(&mut nodes, node_id_col(row, 0, "revoked node"))?;
            }
            Ok((serials, nodes))
        })
        .await
    }

    // ---------------------------------------------------------------- tokens

    pub async fn create_token(&self, rec: TokenRecord) -> Result<(), StoreError> {
        let labels = labels_to_json(&rec.labels)?;
        self.write(1, move |c| {
            c.prepare_cached(
                "INSERT INTO tokens (id, secret_hash, role, name, labels, created_ms, \
                 expires_ms, uses_total, uses_left, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                rec.id.to_hex(),
                rec.secret_hash,
                rec.role.as_str(),
                rec.name,
                labels,
                rec.created_ms,
                rec.expires_ms,
                rec.uses_total,
                rec.uses_left,
                rec.revoked,
            ])?;
            Ok(())
        })
        .await
    }

    pub async fn consume_token(
        &self,
        id: TokenId,
        presented_secret_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Result<TokenRecord, TokenRefusal>, StoreError> {
        // Atomic because every write runs in turn on the one writer thread: nothing can
        // use the token between the check and the decrement.
        self.write(1, move |c| {
            let mut stmt =
                c.prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = ?1"))?;
            let mut rows = stmt.query([id.to_hex()])?;
            let Some(row) = rows.next()? else {
                return Ok(Err(TokenRefusal::Unknown));
            };
            let mut rec = token_from_row(row)?;
            drop(rows);
            if !ct_eq(&rec.secret_hash, &presented_secret_hash) {
                return Ok(Err(TokenRefusal::BadSecret));
            }
            if rec.revoked {
                return Ok(Err(TokenRefusal::Revoked));
            }
            if now_ms >= rec.expires_ms {
                return Ok(Err(TokenRefusal::Expired));
            }
            if rec.uses_left == 0 {
                return Ok(Err(TokenRefusal::UsedUp));
            }
            c.prepare_cached("UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?1")?
                .execute([id.to_hex()])?;
            rec.uses_left -= 1;
            Ok(Ok(rec))
        })
        .await
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_ms DESC, id"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                push_or_skip(&mut out, token_from_row(row).map(|t| t.info()))?;
            }
            Ok(out)
        })
        .await
    }

    pub async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        self.write(1, move |c| {
            let n = c
                .prepare_cached("UPDATE tokens SET revoked = 1 WHERE id = ?1")?
                .execute([id.to_hex()])?;
            Ok(n > 0)
        })
        .await
    }

    // ---------------------------------------------------------------- audit

    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(1, move |c| insert_audit(c, &entry)).await
    }

    /// Queues an audit entry without waiting for it to be committed. A failure is logged.
    /// Never blocks, so it may be called from synchronous code and from `Drop`.
    pub fn audit_nowait(&self, entry: AuditEntry) {
        let job = Job {
            weight: 1,
            run: Some(move |c: &Connection| insert_audit(c, &entry)),
            out: None,
            reply: None,
        };
        if self.inner.tx.send(Msg::Op(Box::new(job))).is_err() {
            tracing::warn!("store is closed; audit entry dropped");
        }
    }

    /// Retention: deletes audit rows older than `before_ms` and the oldest rows past the
    /// newest `max_rows`. Returns how many rows went. Rows are deleted by id range (ids
    /// only grow and rows are only ever deleted oldest first), so the cost is the rows
    /// deleted, not the table.
    pub async fn prune_audit(&self, max_rows: u64, before_ms: i64) -> Result<u64, StoreError> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        self.write(1, move |c| {
            let mut gone = 0u64;
            let first_kept: Option<i64> = c
                .prepare_cached("SELECT id FROM audit WHERE time_ms >= ?1 ORDER BY id LIMIT 1")?
                .query_row([before_ms], |r| r.get(0))
                .optional()?;
            gone += match first_kept {
                Some(id) => c
                    .prepare_cached("DELETE FROM audit WHERE id < ?1")?
                    .execute([id])?,
                None => c.prepare_cached("DELETE FROM audit")?.execute([])?,
            } as u64;
            gone += c
                .prepare_cached("DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?1")?
                .execute([max_rows])? as u64;
            Ok(gone)
        })
        .await
    }

    /// How many audit rows are stored.
    pub async fn count_audit(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            let n: i64 = c
                .prepare_cached("SELECT count(*) FROM audit")?
                .query_row([], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }

    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT time_ms, actor, action, outcome, source, detail FROM audit \
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(AuditEntry {
                    time_ms: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    outcome: r.get(3)?,
                    source: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    // ---------------------------------------------------------------- captures

    pub async fn insert_capture(&self, rec: CaptureRecord) -> Result<bool, StoreError> {
        let meta = labels_to_json(&rec.meta)?;
        let size = i64::try_from(rec.size).map_err(|_| StoreError::Encode {
            what: "capture size",
            why: format!("{} does not fit a signed 64-bit integer", rec.size),
        })?;
        self.write(1, move |c| {
            let sha = hex::encode(rec.sha256);
            let session = rec.session.map(|s| s.to_hex());
            let new =
                c.prepare_cached(
                    "INSERT OR IGNORE INTO captures (sha256, size, kind, node, service, session, \
                     time_ms, meta) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?
                .execute(params![
                    sha,
                    size,
                    rec.kind,
                    rec.node.as_str(),
                    rec.service,
                    session,
                    rec.time_ms,
                    meta
                ])? == 1;
            c.prepare_cached(
                "INSERT INTO capture_sightings (sha256, node, service, session, time_ms, meta) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                sha,
                rec.node.as_str(),
                rec.service,
                session,
                rec.time_ms,
                meta
            ])?;
            Ok(new)
        })
        .await
    }

    pub async fn list_captures(&self, limit: u32) -> Result<Vec<CaptureRecord>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT sha256, size, kind, node, service, session, time_ms, meta FROM captures \
                 ORDER BY time_ms DESC, rowid DESC LIMIT ?1",
            )?;
            let mut rows = stmt.query([limit])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                push_or_skip(&mut out, capture_from_row(row))?;
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_capture(&self, sha256: [u8; 32]) -> Result<Option<CaptureRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT sha256, size, kind, node, service, session, time_ms, meta FROM captures \
                 WHERE sha256 = ?1",
            )?;
            let mut rows = stmt.query([hex::encode(sha256)])?;
            match rows.next()? {
                Some(row) => capture_from_row(row).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn capture_sightings(
        &self,
        sha256: [u8; 32],
    ) -> Result<Vec<CaptureRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT s.sha256, c.size, c.kind, s.node, s.service, s.session, s.time_ms, s.meta \
                 FROM capture_sightings s JOIN captures c ON c.sha256 = s.sha256 \
                 WHERE s.sha256 = ?1 ORDER BY s.time_ms, s.id",
            )?;
            let mut rows = stmt.query([hex::encode(sha256)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                push_or_skip(&mut out, capture_from_row(row))?;
            }
            Ok(out)
        })
        .await
    }
}

// -------------------------------------------------------------------- opening

/// Any SQLite error met after opening: boxed, so rusqlite's types stay in this file.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(Box::new(e))
    }
}

fn open_err(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked {
            path: path.to_owned(),
        },
        _ => StoreError::Open {
            location: path.display().to_string(),
            source: Box::new(e),
        },
    }
}

/// Takes an exclusive lock that lives as long as the writer thread, so a second store on
/// the same file — another core process, or a second `open` in this one — is refused
/// with a clear error instead of silently interleaving writes. It is an OS file lock, so a
/// crashed process leaves nothing stale behind.
///
/// Why a side file: SQLite's exclusive locking mode on the database itself would also
/// shut out this store's own read connections.
fn take_lock(path: &Path) -> Result<Connection, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push("-lock");
    let lock = Connection::open(PathBuf::from(lock_path)).map_err(|e| open_err(path, e))?;
    let locked = (|| -> rusqlite::Result<()> {
        // No busy timeout: a held lock means a live holder, waiting would not help.
        lock.busy_timeout(Duration::ZERO)?;
        lock.query_row("PRAGMA journal_mode = MEMORY", [], |_| Ok(()))?;
        lock.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        lock.execute_batch(
            "BEGIN EXCLUSIVE; \
             CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY, pid INTEGER, since_ms INTEGER);",
        )?;
        lock.execute(
            "INSERT OR REPLACE INTO holder (id, pid, since_ms) VALUES (1, ?1, ?2)",
            params![std::process::id(), crate::now_ms()],
        )?;
        // In exclusive locking mode the lock outlives the commit.
        lock.execute_batch("COMMIT")
    })();
    locked.map_err(|e| open_err(path, e))?;
    Ok(lock)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |e| open_err(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(err)?;
    let found: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .map_err(err)?;
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: path.display().to_string(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        for sql in &MIGRATIONS[found.max(0) as usize..] {
            tx.execute_batch(sql).map_err(err)?;
        }
        if (1..3).contains(&found) {
            backfill_v3(&tx).map_err(err)?;
        }
        tx.execute("DELETE FROM schema_version", []).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )
        .map_err(err)?;
        tracing::info!(path = %path.display(), from = found, to = SCHEMA_VERSION, "store schema migrated");
    }
    tx.commit().map_err(err)
}

/// Adds `d` to the count tables (see `rollup`).
fn add_counts(c: &Connection, d: &Deltas) -> rusqlite::Result<()> {
    if d.is_empty() {
        return Ok(());
    }
    let mut ev = c.prepare_cached(rollup::UPSERT_EVENT_COUNT)?;
    for (m, service, kind, n) in d.event_rows() {
        ev.execute(params![m, service, kind, n])?;
    }
    let mut nodes = c.prepare_cached(rollup::UPSERT_NODE_COUNT)?;
    for (m, node, n) in d.node_rows() {
        nodes.execute(params![m, node, n])?;
    }
    Ok(())
}

/// Counts the events stored before schema version 6 into the count tables, one
/// transaction per [`rollup::BACKFILL_IDS`] ids, resuming where a stopped backfill left
/// off. Runs at open, before the writer starts, so no insert or retention interleaves.
fn backfill_counts(conn: &Connection) -> rusqlite::Result<()> {
    let [add_events, add_nodes] = rollup::add_ids_sql();
    let started = Instant::now();
    let mut batches = 0u64;
    loop {
        let tx = conn.unchecked_transaction()?;
        let Some((next, end)) = tx
            .query_row("SELECT next_id, end_id FROM count_backfill", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        else {
            break;
        };
        if next >= end {
            tx.execute("DELETE FROM count_backfill", [])?;
            tx.commit()?;
            break;
        }
        let to = next.saturating_add(rollup::BACKFILL_IDS).min(end);
        tx.execute(&add_events, [next, to])?;
        tx.execute(&add_nodes, [next, to])?;
        tx.execute("UPDATE count_backfill SET next_id = ?1", [to])?;
        tx.commit()?;
        batches += 1;
        if batches.is_multiple_of(10) {
            tracing::info!(next_id = to, end_id = end, "counting stored events");
        }
    }
    if batches > 0 {
        tracing::info!(
            batches,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "stored events counted for the overview and analytics"
        );
    }
    Ok(())
}

/// Fills the columns schema version 3 added into rows stored before it, in SQL so the
/// rows never cross into Rust one by one; the decoding functions exist only for this.
fn backfill_v3(c: &Connection) -> rusqlite::Result<()> {
    super::analytics::register_backfill_functions(c)?;
    c.execute_batch(
        "UPDATE events SET search_text = COALESCE(hb_text(body), ''), \
           password = hb_password(body), command = hb_command(body); \
         UPDATE enrichments SET \
           geo_country = CASE json_type(data, '$.\"source.geo.country_iso_code\"') \
             WHEN 'text' THEN json_extract(data, '$.\"source.geo.country_iso_code\"') \
             WHEN 'integer' THEN CAST(json_extract(data, '$.\"source.geo.country_iso_code\"') AS TEXT) END, \
           geo_lat = CASE WHEN json_type(data, '$.\"source.geo.location.lat\"') IN ('real', 'integer') \
             THEN json_extract(data, '$.\"source.geo.location.lat\"') END, \
           geo_lon = CASE WHEN json_type(data, '$.\"source.geo.location.lon\"') IN ('real', 'integer') \
             THEN json_extract(data, '$.\"source.geo.location.lon\"') END \
         WHERE json_valid(data);",
    )?;
    for f in ["hb_text", "hb_password", "hb_command"] {
        c.remove_function(f, 1)?;
    }
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| open_err(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| open_err(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

// -------------------------------------------------------------------- the writer thread

fn writer_main(conn: Connection, lock: Connection, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<Box<dyn WriteOp>> = Vec::new();
    let mut stopping = false;
    while !stopping {
        match rx.blocking_recv() {
            Some(Msg::Op(op)) => batch.push(op),
            Some(Msg::Shutdown) | None => break,
        }
        let mut weight = batch[0].weight();
        while batch.len() < MAX_BATCH_OPS && weight < MAX_BATCH_WEIGHT {
            match rx.try_recv() {
                Ok(Msg::Op(op)) => {
                    weight += op.weight();
                    batch.push(op);
                }
                Ok(Msg::Shutdown) => {
                    stopping = true;
                    break;
                }
                Err(_) => break,
            }
        }
        run_batch(&conn, &mut batch);
    }
    // Writes queued after a shutdown are dropped here; their callers see `Closed`.
    rx.close();
    drop(rx);
    // Fold the WAL back into the database so a stopped store is one tidy file.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "store checkpoint at close failed");
    }
    drop(conn);
    drop(lock);
    tracing::debug!("store writer stopped");
}

/// Runs a batch in one transaction, each write in its own savepoint, then answers every
/// caller with the outcome of the commit.
fn run_batch(conn: &Connection, batch: &mut Vec<Box<dyn WriteOp>>) {
    let started = Instant::now();
    let exec = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
    let mut failed = 0usize;
    let result = (|| -> rusqlite::Result<()> {
        exec("BEGIN IMMEDIATE")?;
        for op in batch.iter_mut() {
            exec("SAVEPOINT op")?;
            if !op.apply(conn) {
                failed += 1;
                exec("ROLLBACK TO op")?;
            }
            exec("RELEASE op")?;
        }
        exec("COMMIT")
    })();
    let committed = match result {
        Ok(()) => Ok(()),
        Err(e) => {
            if !conn.is_autocommit()
                && let Err(e) = conn.execute_batch("ROLLBACK")
            {
                tracing::error!(error = %e, "store rollback failed");
            }
            tracing::error!(error = %e, ops = batch.len(), "store write batch failed");
            Err(e.to_string())
        }
    };
    tracing::trace!(
        ops = batch.len(),
        failed,
        elapsed_us = started.elapsed().as_micros() as u64,
        "store batch committed"
    );
    for op in batch.drain(..) {
        op.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
}

// -------------------------------------------------------------------- row mapping

const NODE_COLS: &str = "id, name, role, labels, serial, cert_not_after_ms, first_seen_ms, \
    last_seen_ms, addr, online, revoked, health, config, via_relay";

const TOKEN_COLS: &str = "id, secret_hash, role, name, labels, created_ms, expires_ms, \
    uses_total, uses_left, revoked";

fn role_col(what: &'static str, key: &str, s: &str) -> Result<Role, StoreError> {
    s.parse().map_err(|e| corrupt(what, key, e))
}

fn serial_col(row: &Row<'_>, idx: usize, what: &'static str) -> Result<Serial, StoreError> {
    let s: String = row.get(idx)?;
    Serial::from_hex(&s).map_err(|e| corrupt(what, s.clone(), e))
}

fn node_id_col(row: &Row<'_>, idx: usize, what: &'static str) -> Result<NodeId, StoreError> {
    let s: String = row.get(idx)?;
    NodeId::new(s.clone()).map_err(|e| corrupt(what, s, e))
}

/// Adds the event in `row` (node, received_ms, body, id) to `out`, skipping it with a
/// warning if it does not decode.
pub(super) fn push_stored_event(
    out: &mut Vec<StoredEvent>,
    row: &Row<'_>,
) -> Result<(), StoreError> {
    let id: i64 = row.get(3)?;
    match stored_event_from_row(row) {
        Ok(ev) => out.push(ev),
        Err(StoreError::Corrupt { why, .. }) => {
            tracing::warn!(row = id, why, "skipping unreadable stored event");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

fn stored_event_from_row(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let id: i64 = row.get(3)?;
    let node = node_id_col(row, 0, "event")?;
    let body: Vec<u8> = row.get(2)?;
    let event: Event =
        postcard::from_bytes(&body).map_err(|e| corrupt("event", id.to_string(), e))?;
    Ok(StoredEvent {
        node,
        received_ms: row.get(1)?,
        event,
        enrichments: Vec::new(),
    })
}

fn node_from_row(row: &Row<'_>) -> Result<NodeRecord, StoreError> {
    const W: &str = "node";
    let id = node_id_col(row, 0, W)?;
    let key = id.as_str();
    let role: String = row.get(2)?;
    let labels: String = row.get(3)?;
    let health: Option<Vec<u8>> = row.get(11)?;
    let config: Vec<u8> = row.get(12)?;
    let via_relay: Option<String> = row.get(13)?;
    Ok(NodeRecord {
        name: row.get(1)?,
        role: role_col(W, key, &role)?,
        labels: labels_from_json(W, key, &labels)?,
        serial: serial_col(row, 4, W)?,
        cert_not_after_ms: row.get(5)?,
        first_seen_ms: row.get(6)?,
        last_seen_ms: row.get(7)?,
        addr: row.get(8)?,
        online: row.get(9)?,
        revoked: row.get(10)?,
        health: health
            .map(|h| postcard::from_bytes(&h))
            .transpose()
            .map_err(|e| corrupt(W, key, format!("health: {e}")))?,
        config: postcard::from_bytes(&config)
            .map_err(|e| corrupt(W, key, format!("config: {e}")))?,
        via_relay: via_relay
            .map(NodeId::new)
            .transpose()
            .map_err(|e| corrupt(W, key, format!("via_relay: {e}")))?,
        id,
    })
}

fn cert_from_row(row: &Row<'_>) -> Result<CertRecord, StoreError> {
    const W: &str = "certificate";
    let serial = serial_col(row, 0, W)?;
    let key = serial.to_hex();
    let role: String = row.get(2)?;
    let superseded_by: Option<String> = row.get(5)?;
    Ok(CertRecord {
        serial,
        node: node_id_col(row, 1, W)?,
        role: role_col(W, &key, &role)?,
        issued_ms: row.get(3)?,
        not_after_ms: row.get(4)?,
        superseded_by: superseded_by
            .map(|s| Serial::from_hex(&s))
            .transpose()
            .map_err(|e| corrupt(W, key, e))?,
        revoked: row.get(6)?,
    })
}

fn token_from_row(row: &Row<'_>) -> Result<TokenRecord, StoreError> {
    const W: &str = "token";
    let id: String = row.get(0)?;
    let hash: Vec<u8> = row.get(1)?;
    let role: String = row.get(2)?;
    let labels: String = row.get(4)?;
    Ok(TokenRecord {
        id: TokenId::from_hex(&id).map_err(|e| corrupt(W, id.clone(), e))?,
        secret_hash: hash
            .try_into()
            .map_err(|_| corrupt(W, id.clone(), "secret hash is not 32 bytes"))?,
        role: role_col(W, &id, &role)?,
        name: row.get(3)?,
        labels: labels_from_json(W, &id, &labels)?,
        created_ms: row.get(5)?,
        expires_ms: row.get(6)?,
        uses_total: row.get(7)?,
        uses_left: row.get(8)?,
        revoked: row.get(9)?,
    })
}

fn capture_from_row(row: &Row<'_>) -> Result<CaptureRecord, StoreError> {
    const W: &str = "capture";
    let sha: String = row.get(0)?;
    let size: i64 = row.get(1)?;
    let session: Option<String> = row.get(5)?;
    let meta: String = row.get(7)?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&sha, &mut sha256).map_err(|e| corrupt(W, sha.clone(), e))?;
    Ok(CaptureRecord {
        sha256,
        size: u64::try_from(size).map_err(|e| corrupt(W, sha.clone(), e))?,
        kind: row.get(2)?,
        node: node_id_col(row, 3, W)?,
        service: row.get(4)?,
        session: session
            .map(|s| SessionId::from_hex(&s))
            .transpose()
            .map_err(|e| corrupt(W, sha.clone(), e))?,
        time_ms: row.get(6)?,
        meta: labels_from_json(W, &sha, &meta)?,
    })
}

fn insert_audit(c: &Connection, e: &AuditEntry) -> Result<(), StoreError> {
    c.prepare_cached(
        "INSERT INTO audit (time_ms, actor, action, outcome, source, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        e.time_ms, e.actor, e.action, e.outcome, e.source, e.detail
    ])?;
    Ok(())
}
