//! The PostgreSQL store, for deployments whose data lives in a server their team already
//! runs and backs up.
//!
//! Driver: tokio-postgres with a deadpool-postgres pool. Why: it is the async PostgreSQL
//! driver the Rust ecosystem's other layers (sqlx excepted) build on, maintained with
//! rust-postgres; it speaks the protocol natively on tokio (no blocking threads, unlike
//! rusqlite), pipelines statements, caches prepared statements per connection and
//! speaks binary COPY (how event batches reach the server: `event_writer`).
//! sqlx would bring a second SQLite driver beside rusqlite and a query layer (macros,
//! compile-time checks against a live database) the store does not use.
//!
//! Guarantees as SQLite's: a write is answered after its transaction commits; events are
//! deduplicated by `UNIQUE (node, seq)` with `ON CONFLICT DO NOTHING`; a token's last use
//! goes to exactly one consumer (`SELECT … FOR UPDATE`). Event batches take a transaction
//! advisory lock so row ids are assigned in commit order, which `events_after` (live
//! readers resuming) relies on; audit entries go through one writer task, so an entry
//! queued without waiting is stored before any entry queued after it. Event batches go
//! through one writer task too (`event_writer`): group commit, many batches per
//! transaction, each caller answered after that COMMIT.
//!
//! TLS (`tls`): libpq's `sslmode` and `sslrootcert` in the URL, with rustls on ring.

mod event_writer;
pub(crate) mod listen;
pub(crate) mod outbox;
mod store;
pub(crate) mod tls;
mod trigram;

use super::StoreError;
use super::analytics::Arg;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use honeybee_proto::admin::AuditEntry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::types::ToSql;

/// Schema migrations; entry `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_v1.sql"),
    include_str!("schema_v2_session.sql"),
    include_str!("schema_v3_cluster.sql"),
    include_str!("schema_v4_origin.sql"),
    include_str!("schema_v5_core_load.sql"),
    include_str!("schema_v6_counts.sql"),
];
/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;
/// Serialises migrations of concurrent cores (`pg_advisory_xact_lock` key).
const MIGRATION_LOCK: i64 = 0x4842_5f4d_4947_5241; // "HB_MIGRA"
/// Serialises event batches so ids follow commit order.
const EVENTS_LOCK: i64 = 0x4842_5f45_5645_4e54; // "HB_EVENT"
/// Most audit entries one audit commit carries.
const AUDIT_BATCH: usize = 1024;

type AuditMsg = (AuditEntry, Option<oneshot::Sender<Result<(), StoreError>>>);

/// The PostgreSQL store. Cheap to clone; all clones share one pool and audit writer.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// The URL without its password, for logs and errors.
    location: String,
    closed: AtomicBool,
    audit_tx: Mutex<Option<mpsc::UnboundedSender<AuditMsg>>>,
    audit_task: Mutex<Option<JoinHandle<()>>>,
    events_tx: Mutex<Option<mpsc::Sender<event_writer::Batch>>>,
    events_task: Mutex<Option<JoinHandle<()>>>,
    /// How to open a connection outside the pool (the cluster's LISTEN connection).
    connect: (tokio_postgres::Config, tls::Connector),
    /// The writer's gate and counters (read by tests only) and its cluster origin.
    #[cfg_attr(not(test), allow(dead_code))]
    events_state: Arc<event_writer::WriterState>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Database(Box::new(e))
    }
}

/// The URL as safe to show: user, host, port and database; never the password.
pub fn redacted(cfg: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

/// Why a connection attempt failed, in the store's terms.
fn connect_error(location: &str, e: tokio_postgres::Error) -> StoreError {
    use tokio_postgres::error::SqlState;
    if let Some(refused) = tls::tls_refusal(location, &e) {
        return refused;
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return StoreError::AuthFailed {
                location: location.into(),
                why: db.message().into(),
            };
        }
        return StoreError::Open {
            location: location.into(),
            source: Box::new(e),
        };
    }
    let why = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| e.to_string());
    // The driver reports a missing password as a configuration error before any server
    // message; to an operator that is a credentials problem.
    if why.contains("password missing") {
        return StoreError::AuthFailed {
            location: location.into(),
            why: "no password given".into(),
        };
    }
    StoreError::Unreachable {
        location: location.into(),
        why,
    }
}

fn pool_error(location: &str, e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => connect_error(location, e),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unreachable {
            location: location.into(),
            why: other.to_string(),
        },
    }
}

/// `?` and `?N` placeholders (the SQL shared with SQLite) as PostgreSQL's `$N`.
pub(crate) fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 1;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '?' {
            out.push(c);
            continue;
        }
        out.push('$');
        if chars.peek().is_some_and(char::is_ascii_digit) {
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
        } else {
            out.push_str(&next.to_string());
            next += 1;
        }
    }
    out
}

/// Arguments of shared SQL as driver parameters.
pub(crate) fn pg_args(args: Vec<Arg>) -> Vec<Box<dyn ToSql + Sync + Send>> {
    args.into_iter()
        .map(|a| -> Box<dyn ToSql + Sync + Send> {
            match a {
                Arg::Int(i) => Box::new(i),
                Arg::Text(s) => Box::new(s),
            }
        })
        .collect()
}

pub(crate) fn arg_refs(args: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

impl PgStore {
    /// Connects to the database at `url` (a `postgres://` URL or key=value string; a
    /// password in it is used, but `password` wins; `sslmode` and `sslrootcert` as libpq's,
    /// see `tls.rs`), brings its schema up to date and starts the audit writer. Refuses a
    /// schema newer than this binary.
    pub async fn open(url: &str, password: Option<&str>) -> Result<PgStore, StoreError> {
        let tls = tls::settings(url)?;
        let mut cfg: tokio_postgres::Config =
            tls.driver_url
                .parse()
                .map_err(|e: tokio_postgres::Error| StoreError::Open {
                    location: "the [store] url".into(),
                    source: Box::new(e),
                })?;
        cfg.ssl_mode(tls.driver_mode());
        if let Some(p) = password {
            cfg.password(p);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(std::time::Duration::from_secs(10));
        }
        let location = redacted(&cfg);
        let connector = tls.connector()?;
        let connect = (cfg.clone(), connector.clone());
        let mgr = Manager::from_config(
            cfg,
            connector,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Worker(format!("cannot build the connection pool: {e}")))?;
        let mut client = pool.get().await.map_err(|e| pool_error(&location, e))?;
        migrate(&mut client, &location).await?;
        drop(client);

        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(audit_writer(pool.clone(), location.clone(), rx));
        let (events_tx, events_rx) = mpsc::channel(event_writer::QUEUE_BATCHES);
        let events_state = Arc::new(event_writer::WriterState::default());
        let events_task = tokio::spawn(event_writer::writer(
            pool.clone(),
            location.clone(),
            events_rx,
            events_state.clone(),
        ));
        tracing::info!(
            location,
            schema = SCHEMA_VERSION,
            "store opened (PostgreSQL)"
        );
        let store = PgStore {
            inner: Arc::new(Inner {
                pool,
                location,
                closed: AtomicBool::new(false),
                audit_tx: Mutex::new(Some(tx)),
                audit_task: Mutex::new(Some(task)),
                events_tx: Mutex::new(Some(events_tx)),
                events_task: Mutex::new(Some(events_task)),
                connect,
                events_state,
            }),
        };
        store.backfill_counts().await?;
        Ok(store)
    }

    /// Names the core this store writes for (its cluster identity): every event row it
    /// stores from now on carries it as `origin`, and each group commit notifies
    /// `channel` with `payload` (the other cores' module bus tailers, `cluster/tail.rs`).
    /// Set once, by `Cluster::open`, before the core ingests anything; a second call is
    /// ignored.
    pub fn set_origin(&self, core: &str, channel: &str, payload: &str) {
        let _ = self.inner.events_state.origin.set(event_writer::Origin {
            core: core.to_owned(),
            channel: channel.to_owned(),
            payload: payload.to_owned(),
        });
    }

    /// The URL without its password.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    /// A pooled connection for `store migrate` and the cluster's statements
    /// (`crate::cluster`).
    pub(crate) async fn raw_client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.client().await
    }

    /// A pooled connection, or why there is none.
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| pool_error(&self.inner.location, e))
    }

    /// Writes queued event batches and audit entries, then refuses further writes and
    /// closes the pool.
    pub async fn close(&self) -> Result<(), StoreError> {
        self.inner.closed.store(true, Ordering::Release);
        drop(
            self.inner
                .events_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let events_task = self
            .inner
            .events_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = events_task {
            t.await
                .map_err(|e| StoreError::Worker(format!("event writer failed: {e}")))?;
        }
        drop(
            self.inner
                .audit_tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let task = self
            .inner
            .audit_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            t.await
                .map_err(|e| StoreError::Worker(format!("audit writer failed: {e}")))?;
        }
        self.inner.pool.close();
        Ok(())
    }

    fn send_audit(&self, msg: AuditMsg) -> Result<(), StoreError> {
        let guard = self
            .inner
            .audit_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(tx) => tx.send(msg).map_err(|_| StoreError::Closed),
            None => Err(StoreError::Closed),
        }
    }

    /// Queues one batch for the event writer (waiting while its queue is full) and waits
    /// for the outcome, given after the COMMIT that stored it.
    async fn queue_events(
        &self,
        cols: event_writer::Columns,
    ) -> Result<super::InsertOutcome, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let tx = self
            .inner
            .events_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        tx.send(event_writer::Batch { cols, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(tx);
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Tests: keeps the event writer from taking a group while the guard lives.
    #[cfg(test)]
    pub(crate) async fn hold_event_writer(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.events_state.gate.lock().await
    }

    /// Tests: event batches queued and not yet taken by the writer.
    #[cfg(test)]
    pub(crate) fn queued_event_batches(&self) -> usize {
        self.inner
            .events_tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Tests: groups the event writer has started (first batches taken from its queue).
    #[cfg(test)]
    pub(crate) fn event_groups_started(&self) -> u64 {
        self.inner.events_state.received.load(Ordering::Relaxed)
    }

    /// Tests: event transactions committed so far (a group, or one batch retried alone).
    #[cfg(test)]
    pub(crate) fn event_groups_committed(&self) -> u64 {
        self.inner
            .events_state
            .groups_committed
            .load(Ordering::Relaxed)
    }

    /// Tests: the bounds of the event writer (events per group, batches queued).
    #[cfg(test)]
    pub(crate) const EVENT_GROUP_BOUNDS: (usize, usize) =
        (event_writer::GROUP_EVENTS, event_writer::QUEUE_BATCHES);

    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send_audit((entry, Some(reply)))?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues an audit entry without waiting for its commit; a failure is logged.
    pub fn audit_nowait(&self, entry: AuditEntry) {
        if self.send_audit((entry, None)).is_err() {
            tracing::warn!("store is closed; audit entry dropped");
        }
    }
}

/// Applies the migrations this database lacks, one transaction, one core at a time.
async fn migrate(client: &mut deadpool_postgres::Object, location: &str) -> Result<(), StoreError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    let found: Option<i64> = tx
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await?
        .get(0);
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: location.into(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        for sql in &MIGRATIONS[found.max(0) as usize..] {
            tx.batch_execute(sql).await?;
        }
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .await?;
        tracing::info!(
            location,
            from = found,
            to = SCHEMA_VERSION,
            "store schema migrated"
        );
    }
    trigram::ensure(&tx, location).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores audit entries in arrival order, many per commit, answering each after it.
async fn audit_writer(pool: Pool, location: String, mut rx: mpsc::UnboundedReceiver<AuditMsg>) {
    let mut batch: Vec<AuditMsg> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < AUDIT_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let result = write_audit(&pool, &location, &batch).await;
        for (_, reply) in batch.drain(..) {
            let r = result
                .as_ref()
                .map(|_| ())
                .map_err(|e| StoreError::BatchFailed(e.to_string()));
            match reply {
                Some(reply) => drop(reply.send(r)),
                None => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "fire-and-forget audit write failed");
                    }
                }
            }
        }
    }
}

async fn write_audit(pool: &Pool, location: &str, batch: &[AuditMsg]) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(|e| pool_error(location, e))?;
    let mut time = Vec::with_capacity(batch.len());
    let (mut actor, mut action, mut outcome, mut source, mut detail) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (e, _) in batch {
        time.push(e.time_ms);
        actor.push(e.actor.as_str());
        action.push(e.action.as_str());
        outcome.push(e.outcome.as_str());
        source.push(e.source.as_deref());
        detail.push(e.detail.as_str());
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO audit (time_ms, actor, action, outcome, source, detail) \
             SELECT t, a, ac, o, s, d FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
               $4::text[], $5::text[], $6::text[]) WITH ORDINALITY AS u(t, a, ac, o, s, d, n) \
             ORDER BY n",
        )
        .await?;
    client
        .execute(&stmt, &[&time, &actor, &action, &outcome, &source, &detail])
        .await?;
    Ok(())
}
